//! The `llm` dreamer: a model reads a digest of the graded sessions and edits memory
//! through the memory tool, turn by turn, until it stops.
//!
//! It speaks the Anthropic Messages API (`POST /v1/messages` with `x-api-key`,
//! `anthropic-version`, the `memory_20250818` tool) or, with `"api": "openai"`, an
//! OpenAI-compatible `POST /v1/chat/completions` with a `memory` function tool (local
//! models). 429, 5xx and 529 responses are retried with exponential backoff (honouring
//! `retry-after`); other errors fail the dream with the API's own message. Every
//! request and response becomes an `llm.exchange` event of the dream, so a replay
//! answers each request from the record and never calls a model: a request that differs
//! from the recorded one is a divergence, reported with a diff.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{dreamer_error, Dreamer, DreamerOutput};
use crate::core::dream::{DreamInput, Planned};
use crate::core::memory::{ToolCall, ROOT};
use crate::core::{CanonicalJson, EventId, GradeResult, LlmExchange};
use crate::error::DreamError;
use crate::error::{Error, Result};

/// The dreamer's name.
pub const NAME: &str = "llm";
/// Its version: the prompt, digest and loop of this file.
pub const VERSION: &str = "1";

/// Which wire format to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI-compatible chat completions.
    Openai,
}

/// Configuration; every field has a default. The key itself is never recorded, only the
/// name of the environment variable holding it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Wire format.
    pub api: Api,
    /// Base URL (no trailing `/v1`).
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// `anthropic-version` header.
    pub anthropic_version: String,
    /// Tokens per response.
    pub max_tokens: u64,
    /// Model turns per dream.
    pub max_turns: u32,
    /// Retries per request on 429 / 5xx.
    pub max_retries: u32,
    /// First backoff; doubles each retry.
    pub retry_base_ms: u64,
    /// Per-request timeout.
    pub timeout_secs: u64,
    /// Most recent sessions put in the digest.
    pub max_sessions: usize,
    /// Grades cited by a lesson that names no session.
    pub max_causes: usize,
    /// Guidance added to the system prompt (the Managed-Agents API's `instructions`);
    /// absent from the effective config when unset, so older dreams replay unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

impl Default for LlmConfig {
    fn default() -> LlmConfig {
        LlmConfig {
            api: Api::Anthropic,
            base_url: "https://api.anthropic.com".into(),
            model: "claude-sonnet-4-5".into(),
            api_key_env: "ANTHROPIC_API_KEY".into(),
            anthropic_version: "2023-06-01".into(),
            max_tokens: 4096,
            max_turns: 16,
            max_retries: 4,
            retry_base_ms: 500,
            timeout_secs: 120,
            max_sessions: 200,
            max_causes: 256,
            instructions: None,
        }
    }
}

/// The model-driven dreamer.
pub struct LlmDreamer {
    cfg: LlmConfig,
}

impl LlmDreamer {
    /// Parses the config (unknown fields are an error).
    pub fn from_config(v: &Value) -> Result<LlmDreamer> {
        let cfg: LlmConfig =
            serde_json::from_value(v.clone()).map_err(|e| dreamer_error(NAME, format!("bad config: {e}")))?;
        if cfg.max_turns == 0 {
            return Err(dreamer_error(NAME, "bad config: max_turns must be at least 1"));
        }
        Ok(LlmDreamer { cfg })
    }

    fn api_name(&self) -> &'static str {
        match self.cfg.api {
            Api::Anthropic => "anthropic.messages",
            Api::Openai => "openai.chat",
        }
    }
}

const SYSTEM: &str = "You are the dreaming phase of an AI agent that learns between sessions. \
You get a digest of graded sessions (tasks, tool calls, grades and the rubric criteria that failed) \
and the agent's memory, a directory of files under /memories that the agent reads before every session. \
Distil durable, specific, actionable lessons that would have turned failures into passes, and write them \
into memory with the memory tool: prefer editing existing lesson files to creating new ones, merge \
duplicates, remove lessons the evidence contradicts, and keep memory short. End every lesson line with the \
ids of the sessions it rests on in square brackets, e.g. [session 1a2b3c4d]. Do not record anything else. \
When memory is up to date, stop.";

/// The digest the model reads: deterministic text from the input.
pub fn digest(input: &DreamInput, max_sessions: usize) -> String {
    let mut s = String::new();
    let sessions = &input.sessions[input.sessions.len().saturating_sub(max_sessions)..];
    s.push_str(&format!(
        "Memory store {:?} (state {}), log positions {}..={}; {} graded session(s){}.\n\n",
        input.store,
        input.base_state.short(12),
        input.from_position,
        input.to_position,
        input.sessions.len(),
        if sessions.len() < input.sessions.len() {
            format!(", the last {} shown", sessions.len())
        } else {
            String::new()
        }
    ));
    s.push_str("## Memory files\n");
    if input.memory.is_empty() {
        s.push_str("(empty)\n");
    }
    for (path, text) in &input.memory {
        s.push_str(&format!("- {path} ({} bytes)\n", text.len()));
    }
    s.push_str("\n## Sessions\n");
    for si in sessions {
        let Some(g) = si.grade() else { continue };
        s.push_str(&format!(
            "\n### session {} — task {} — {} (score {}, rubric {})\n",
            si.session,
            si.task_id().unwrap_or("?"),
            g.body.result.as_str(),
            g.body.score,
            g.body.rubric
        ));
        let calls: Vec<String> = si
            .actions
            .iter()
            .map(|a| match a.body.status {
                crate::core::ActionStatus::Error => format!("{} (error)", a.body.name),
                _ => a.body.name.clone(),
            })
            .collect();
        s.push_str(&format!("tool calls: {}\n", if calls.is_empty() { "none".into() } else { calls.join(", ") }));
        for c in g.body.criteria.iter().filter(|c| c.passed == Some(false)) {
            match &c.note {
                Some(n) => s.push_str(&format!("failed: {} — {}\n", c.name, n.replace('\n', " "))),
                None => s.push_str(&format!("failed: {}\n", c.name)),
            }
        }
        if g.body.result != GradeResult::Satisfied && g.body.criteria.is_empty() {
            s.push_str("failed (no criteria recorded)\n");
        }
    }
    s
}

/// Sends requests: over HTTP, or from a dream's record.
enum Transport<'a> {
    Live { client: reqwest::blocking::Client, key: String },
    Recorded { exchanges: &'a [LlmExchange], next: usize },
}

impl LlmDreamer {
    fn url(&self) -> String {
        let base = self.cfg.base_url.trim_end_matches('/');
        match self.cfg.api {
            Api::Anthropic => format!("{base}/v1/messages"),
            Api::Openai => format!("{base}/v1/chat/completions"),
        }
    }

    /// One request, retried on 429/5xx. Returns the response body and meta.
    fn send(&self, t: &mut Transport<'_>, request: &Value) -> Result<(Value, Value)> {
        match t {
            Transport::Recorded { exchanges, next } => {
                let Some(x) = exchanges.get(*next) else {
                    return Err(Error::Dream(DreamError::ReplayDiverged {
                        dream: String::new(),
                        reason: format!(
                            "the replay sends request #{} but the dream recorded only {}",
                            *next + 1,
                            exchanges.len()
                        ),
                    }));
                };
                let sent = CanonicalJson::from_value(request);
                if sent != x.request {
                    let diff = similar::TextDiff::from_lines(&pretty(&x.request.to_value()), &pretty(request))
                        .unified_diff()
                        .header("recorded request", "replayed request")
                        .to_string();
                    return Err(Error::Dream(DreamError::ReplayDiverged {
                        dream: String::new(),
                        reason: format!("request #{} differs from the recorded one:\n{diff}", *next + 1),
                    }));
                }
                *next += 1;
                Ok((x.response.to_value(), x.meta.as_ref().map(|m| m.to_value()).unwrap_or(Value::Null)))
            }
            Transport::Live { client, key } => {
                let started = Instant::now();
                let mut attempt = 0u32;
                loop {
                    let mut req = client.post(self.url()).json(request);
                    req = match self.cfg.api {
                        Api::Anthropic => req
                            .header("x-api-key", key.as_str())
                            .header("anthropic-version", &self.cfg.anthropic_version)
                            .header("anthropic-beta", "context-management-2025-06-27"),
                        Api::Openai => req.bearer_auth(key.as_str()),
                    };
                    let failure = match req.send() {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let retry_after = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.trim().parse::<f64>().ok());
                            let text =
                                resp.text().map_err(|e| llm_error(None, format!("reading the response: {e}")))?;
                            if status == 200 {
                                let body: Value = serde_json::from_str(&text).map_err(|e| {
                                    llm_error(Some(status), format!("the response is not JSON ({e}): {}", clip(&text)))
                                })?;
                                let meta = json!({"status": status, "attempts": attempt + 1,
                                    "latency_ms": started.elapsed().as_millis() as u64});
                                return Ok((body, meta));
                            }
                            let message = api_error_message(&text);
                            let retryable = matches!(status, 429 | 500 | 502 | 503 | 504 | 529);
                            if !retryable {
                                return Err(llm_error(Some(status), message));
                            }
                            (Some(status), message, retry_after)
                        }
                        Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => (None, e.to_string(), None),
                        Err(e) => return Err(llm_error(None, e.to_string())),
                    };
                    if attempt >= self.cfg.max_retries {
                        let (status, message, _) = failure;
                        return Err(llm_error(status, format!("{message} (gave up after {} attempts)", attempt + 1)));
                    }
                    let backoff = self.cfg.retry_base_ms.saturating_mul(1 << attempt.min(16));
                    let wait = failure.2.map(|s| (s * 1000.0) as u64).unwrap_or(backoff).min(60_000);
                    sleep_ms(wait);
                    attempt += 1;
                }
            }
        }
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn clip(s: &str) -> String {
    s.chars().take(300).collect()
}

fn llm_error(status: Option<u16>, message: String) -> Error {
    Error::Dream(DreamError::Llm { status, message })
}

/// The message of an API error body (`{"type":"error","error":{"type","message"}}` or
/// OpenAI's `{"error":{"message"}}`), else the body itself.
fn api_error_message(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let err = v.get("error");
    let kind = err.and_then(|e| e.get("type")).and_then(Value::as_str);
    let msg = err.and_then(|e| e.get("message")).and_then(Value::as_str);
    match (kind, msg) {
        (Some(k), Some(m)) => format!("{k}: {m}"),
        (None, Some(m)) => m.to_owned(),
        _ => clip(text),
    }
}

/// One tool call the model asked for.
struct Call {
    id: String,
    input: Value,
}

impl Dreamer for LlmDreamer {
    fn name(&self) -> &str {
        NAME
    }
    fn version(&self) -> &str {
        VERSION
    }
    fn config(&self) -> Value {
        serde_json::to_value(&self.cfg).unwrap_or(Value::Null)
    }

    fn dream(&self, input: &DreamInput, recorded: Option<&[LlmExchange]>) -> Result<DreamerOutput> {
        let mut transport = match recorded {
            Some(exchanges) => Transport::Recorded { exchanges, next: 0 },
            None => {
                let key = std::env::var(&self.cfg.api_key_env).map_err(|_| {
                    dreamer_error(NAME, format!("the API key variable {} is not set", self.cfg.api_key_env))
                })?;
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(self.cfg.timeout_secs))
                    .build()
                    .map_err(|e| llm_error(None, e.to_string()))?;
                Transport::Live { client, key }
            }
        };
        let mut state = input.memory_state();
        let digest = digest(input, self.cfg.max_sessions);
        let system = match &self.cfg.instructions {
            Some(i) => format!("{SYSTEM}\n\nInstructions for this dream: {i}"),
            None => SYSTEM.to_owned(),
        };
        let mut messages: Vec<Value> = match self.cfg.api {
            Api::Anthropic => vec![json!({"role": "user", "content": digest})],
            Api::Openai => {
                vec![json!({"role": "system", "content": system}), json!({"role": "user", "content": digest})]
            }
        };
        // Grades by session, for citations.
        let mut grades: BTreeMap<String, Vec<EventId>> = BTreeMap::new();
        for s in &input.sessions {
            grades.entry(s.session.clone()).or_default().extend(s.grades.iter().map(|g| g.id));
        }
        let all_grades: Vec<EventId> = grades.values().flatten().copied().take(self.cfg.max_causes).collect();
        let mut commands = Vec::new();
        let mut exchanges = Vec::new();
        let mut stop = String::new();
        for _turn in 0..self.cfg.max_turns {
            let request = match self.cfg.api {
                Api::Anthropic => json!({
                    "model": self.cfg.model, "max_tokens": self.cfg.max_tokens, "temperature": 0,
                    "system": system, "messages": messages,
                    "tools": [{"type": "memory_20250818", "name": "memory"}],
                }),
                Api::Openai => json!({
                    "model": self.cfg.model, "max_tokens": self.cfg.max_tokens, "temperature": 0,
                    "messages": messages, "tools": [openai_memory_tool()],
                }),
            };
            let (response, meta) = self.send(&mut transport, &request)?;
            exchanges.push(LlmExchange {
                api: self.api_name().into(),
                model: self.cfg.model.clone(),
                request: CanonicalJson::from_value(&request),
                response: CanonicalJson::from_value(&response),
                meta: (!meta.is_null()).then(|| CanonicalJson::from_value(&meta)),
            });
            let (calls, reason, assistant) = match self.cfg.api {
                Api::Anthropic => parse_anthropic(&response)?,
                Api::Openai => parse_openai(&response)?,
            };
            stop = reason;
            messages.push(assistant);
            if calls.is_empty() {
                break;
            }
            let mut results = Vec::new();
            for call in calls {
                let (text, is_error) = match ToolCall::parse(&call.input) {
                    Err(e) => (format!("Error: {e}"), true),
                    Ok(tc) => match tc.run(&mut state) {
                        Ok(text) => {
                            if let ToolCall::Change(c) = tc {
                                let causes = cite(&c, &grades).unwrap_or_else(|| all_grades.clone());
                                commands.push(Planned { input: c, causes });
                            }
                            (text, false)
                        }
                        Err(e) => (e.message, true),
                    },
                };
                results.push((call.id, text, is_error));
            }
            match self.cfg.api {
                Api::Anthropic => {
                    messages.push(json!({"role": "user", "content": results.iter().map(|(id, text, err)| {
                    let mut r = json!({"type": "tool_result", "tool_use_id": id, "content": text});
                    if *err { r["is_error"] = json!(true); }
                    r
                }).collect::<Vec<_>>()}))
                }
                Api::Openai => {
                    for (id, text, _) in results {
                        messages.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                    }
                }
            }
        }
        let summary = json!({"turns": exchanges.len(), "stop_reason": stop, "root": ROOT});
        Ok(DreamerOutput { commands, exchanges, summary })
    }
}

/// The grades of the sessions a command's text names (full id or 8-character prefix).
fn cite(c: &crate::core::MemoryCommand, grades: &BTreeMap<String, Vec<EventId>>) -> Option<Vec<EventId>> {
    use crate::core::MemoryCommand::*;
    let text = match c {
        Create { file_text, .. } | Write { file_text, .. } => file_text.as_str(),
        StrReplace { new_str, .. } => new_str.as_str(),
        Insert { insert_text, .. } => insert_text.as_str(),
        Delete { .. } | Rename { .. } | Mkdir { .. } => return None,
    };
    let cited: Vec<EventId> = grades
        .iter()
        .filter(|(s, _)| text.contains(s.as_str()) || (s.len() > 8 && text.contains(&s[..8])))
        .flat_map(|(_, g)| g.iter().copied())
        .collect();
    (!cited.is_empty()).then_some(cited)
}

fn openai_memory_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "memory",
        "description": "View and edit the memory directory /memories: commands view, create, str_replace, insert, delete, rename.",
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "delete", "rename"]},
                "path": {"type": "string"}, "file_text": {"type": "string"}, "old_str": {"type": "string"},
                "new_str": {"type": "string"}, "insert_line": {"type": "integer"}, "insert_text": {"type": "string"},
                "old_path": {"type": "string"}, "new_path": {"type": "string"},
                "view_range": {"type": "array", "items": {"type": "integer"}}
            },
            "required": ["command"]
        }
    }})
}

fn bad_response(reason: impl Into<String>) -> Error {
    llm_error(Some(200), format!("unexpected response: {}", reason.into()))
}

/// Tool calls, stop reason and the assistant turn to send back, from a Messages response.
fn parse_anthropic(r: &Value) -> Result<(Vec<Call>, String, Value)> {
    let content = r.get("content").and_then(Value::as_array).ok_or_else(|| bad_response("no content array"))?;
    let stop = r.get("stop_reason").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut calls = Vec::new();
    for block in content {
        if block.get("type").and_then(Value::as_str) == Some("tool_use") {
            let id = block.get("id").and_then(Value::as_str).ok_or_else(|| bad_response("tool_use without id"))?;
            let name = block.get("name").and_then(Value::as_str).unwrap_or("");
            if name != "memory" {
                return Err(bad_response(format!("tool_use of unknown tool {name:?}")));
            }
            calls.push(Call { id: id.to_owned(), input: block.get("input").cloned().unwrap_or(Value::Null) });
        }
    }
    if stop != "tool_use" {
        // Only a tool_use stop asks for results; anything else ends the dream.
        calls.clear();
    }
    Ok((calls, stop, json!({"role": "assistant", "content": content})))
}

/// The same for a chat completions response.
fn parse_openai(r: &Value) -> Result<(Vec<Call>, String, Value)> {
    let choice = r.get("choices").and_then(|c| c.get(0)).ok_or_else(|| bad_response("no choices"))?;
    let message = choice.get("message").ok_or_else(|| bad_response("choice without message"))?;
    let stop = choice.get("finish_reason").and_then(Value::as_str).unwrap_or("").to_owned();
    let mut calls = Vec::new();
    for tc in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
        let id = tc.get("id").and_then(Value::as_str).ok_or_else(|| bad_response("tool call without id"))?;
        let f = tc.get("function").ok_or_else(|| bad_response("tool call without function"))?;
        if f.get("name").and_then(Value::as_str) != Some("memory") {
            return Err(bad_response("tool call of a function other than memory"));
        }
        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
        let input: Value =
            serde_json::from_str(args).unwrap_or_else(|_| json!({"command": "invalid", "arguments": args}));
        calls.push(Call { id: id.to_owned(), input });
    }
    Ok((calls, stop, message.clone()))
}
