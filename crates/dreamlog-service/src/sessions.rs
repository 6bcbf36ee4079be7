//! Sessions: summaries, rendering and statistics over the `session/ID` streams.

use std::collections::BTreeMap;

use crate::core::{Body, SessionLink};
use crate::error::{Error, Result};
use crate::store::{Store, StoredEvent};

/// The prefix of every session stream.
pub const PREFIX: &str = crate::core::projection::SESSION_STREAM_PREFIX;

/// One row of `sessions list`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionSummary {
    /// Session id.
    pub id: String,
    /// Task id.
    pub task: Option<String>,
    /// Agent.
    pub agent: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Tool calls.
    pub steps: u64,
    /// Messages.
    pub messages: u64,
    /// Score of the last grade; `None` when ungraded.
    pub score: Option<f64>,
    /// Result of the last grade.
    pub result: Option<String>,
    /// How the session ended.
    pub status: Option<String>,
    /// Time of the first event (ms); `None` when the source has no timestamps.
    pub time: Option<u64>,
    /// Memory store the session ran with (from its latest `session.link`, else its start).
    pub store: Option<String>,
    /// State hash of that store.
    pub memory_state: Option<String>,
    /// What the agent's model calls cost, in US dollars, when the source says (a
    /// simulated user's are apart: `user_cost_usd`).
    pub cost_usd: Option<f64>,
    /// The agent's model input (prompt) tokens, when the source says.
    pub input_tokens: Option<u64>,
    /// The agent's model output (completion) tokens, when the source says.
    pub output_tokens: Option<u64>,
    /// What the simulated user's model calls cost (τ-bench, τ²-bench `user_cost`).
    pub user_cost_usd: Option<f64>,
    /// The simulated user's input tokens (usage on the user's messages).
    pub user_input_tokens: Option<u64>,
    /// The simulated user's output tokens.
    pub user_output_tokens: Option<u64>,
    /// Duration in milliseconds, when the source says or has timestamps.
    pub duration_ms: Option<u64>,
}

/// Sums what a source records of cost, tokens and duration: the totals of the closing
/// `session.end`'s metadata when it has them (ATIF `final_metrics`, τ²-bench costs and
/// duration, SWE-agent `model_stats`), else the sum of the messages' own `usage` and
/// `cost`.
fn usage(s: &mut SessionSummary, events: &[StoredEvent], timed: bool) {
    fn num(v: &serde_json::Value, keys: &[&str]) -> Option<f64> {
        keys.iter().find_map(|k| v.pointer(k).and_then(serde_json::Value::as_f64))
    }
    let end = events.iter().rev().find_map(|e| match &e.event.body {
        Body::SessionEnd(b) => Some((e.event.header.time, b.meta.as_ref().map(|m| m.to_value()))),
        _ => None,
    });
    let meta = end.as_ref().and_then(|(_, m)| m.clone()).unwrap_or(serde_json::Value::Null);
    // The agent's cost; a simulated user's (τ-bench, τ²-bench) is kept apart.
    let mut cost =
        num(&meta, &["/total_cost_usd", "/model_stats/instance_cost", "/model_stats/total_cost", "/agent_cost"]);
    s.user_cost_usd = num(&meta, &["/user_cost"]);
    // (Hosted Managed Agents sessions: the session's cumulative `usage`.)
    let mut input = num(&meta, &["/total_prompt_tokens", "/model_stats/tokens_sent", "/anthropic/usage/input_tokens"]);
    let mut output =
        num(&meta, &["/total_completion_tokens", "/model_stats/tokens_received", "/anthropic/usage/output_tokens"]);
    if input.is_none() && output.is_none() {
        let (mut i, mut o, mut c, mut any, mut any_cost) = (0.0, 0.0, 0.0, false, false);
        let (mut ui, mut uo, mut u_any, mut uc, mut u_cost) = (0.0, 0.0, false, 0.0, false);
        for e in events {
            // Sources keep usage and cost on the message itself (τ²-bench, Claude Code).
            let Body::Message(m) = &e.event.body else { continue };
            // A message the agent did not write that carries model usage is a simulated
            // user's (τ²-bench's user simulator): counted apart.
            let agent = matches!(e.event.header.actor, crate::core::Actor::Agent(_));
            // On the message itself, or (OpenTelemetry chat spans) in the metadata
            // dreamlog recorded beside it.
            let v = match m.meta.as_ref().map(|x| x.to_value()) {
                Some(meta) if meta.get("usage").is_some() => meta,
                _ => m.content.to_value(),
            };
            let prompt = num(&v, &["/usage/prompt_tokens", "/usage/input_tokens"]);
            let completion = num(&v, &["/usage/completion_tokens", "/usage/output_tokens"]);
            if !agent {
                ui += prompt.unwrap_or(0.0);
                uo += completion.unwrap_or(0.0);
                u_any |= prompt.is_some() || completion.is_some();
                if let Some(x) = num(&v, &["/cost"]) {
                    uc += x;
                    u_cost = true;
                }
                continue;
            }
            if let Some(x) = prompt {
                i += x;
                any = true;
            }
            if let Some(x) = completion {
                o += x;
                any = true;
            }
            if let Some(x) = num(&v, &["/cost"]) {
                c += x;
                any_cost = true;
            }
        }
        if any {
            (input, output) = (Some(i), Some(o));
        }
        if u_any {
            (s.user_input_tokens, s.user_output_tokens) = (Some(ui as u64), Some(uo as u64));
        }
        if s.user_cost_usd.is_none() && u_cost {
            s.user_cost_usd = Some(uc);
        }
        if cost.is_none() && any_cost {
            cost = Some(c);
        }
    }
    s.cost_usd = cost;
    s.input_tokens = input.map(|x| x as u64);
    s.output_tokens = output.map(|x| x as u64);
    s.duration_ms = num(&meta, &["/duration"]).map(|secs| (secs * 1000.0).round() as u64).or_else(|| {
        let (first, (last, _)) = (events.first()?.event.header.time, end?);
        timed.then(|| last.saturating_sub(first))
    });
}

/// Summarises one session's events.
pub fn summarize(id: &str, events: &[StoredEvent]) -> SessionSummary {
    summarize_linked(id, events, None)
}

/// Summarises one session's events with its latest `session.link`, if any.
pub fn summarize_linked(id: &str, events: &[StoredEvent], link: Option<&SessionLink>) -> SessionSummary {
    let mut s = SessionSummary {
        id: id.to_owned(),
        task: None,
        agent: None,
        model: None,
        steps: 0,
        messages: 0,
        score: None,
        result: None,
        status: None,
        time: events.first().map(|e| e.event.header.time),
        store: None,
        memory_state: None,
        cost_usd: None,
        input_tokens: None,
        output_tokens: None,
        user_cost_usd: None,
        user_input_tokens: None,
        user_output_tokens: None,
        duration_ms: None,
    };
    let mut timed = true;
    for e in events {
        match &e.event.body {
            Body::SessionStart(b) => {
                s.task = b.task_id.clone();
                s.agent = Some(b.agent.clone());
                s.model = b.model.clone();
                s.store = b.store.clone();
                s.memory_state = b.memory_state.map(|h| h.to_hex());
                timed = b.meta.as_ref().and_then(|m| m.to_value().get("times").cloned())
                    != Some(serde_json::Value::String(crate::core::body::UNTIMED.into()));
            }
            Body::Action(_) => s.steps += 1,
            Body::Message(_) => s.messages += 1,
            Body::Grade(g) => {
                s.score = Some(g.score);
                s.result = Some(g.result.as_str().to_owned());
            }
            Body::SessionEnd(b) => s.status = Some(b.status.clone()),
            _ => {}
        }
    }
    if !timed {
        s.time = None;
    }
    if let Some(l) = link.filter(|l| l.store.is_some()) {
        s.store = l.store.clone();
        s.memory_state = l.memory_state.map(|h| h.to_hex());
    }
    usage(&mut s, events, timed);
    s
}

/// The latest `session.link` of a session, if any.
pub fn link(store: &Store, id: &str) -> Result<Option<SessionLink>> {
    let stream = crate::core::streams::session_link(id);
    let Some(v) = store.stream_version(&stream)? else { return Ok(None) };
    Ok(store.read_stream(&stream, v, 1)?.into_iter().find_map(|e| match e.event.body {
        Body::SessionLink(l) => Some(l),
        _ => None,
    }))
}

/// A memory command a session made, with the memory tool's answer to it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemoryCommandRow {
    /// The `memory` event.
    pub id: crate::core::EventId,
    /// Its position.
    pub position: u64,
    /// The store.
    pub store: String,
    /// The command, in the memory tool's JSON form.
    pub command: serde_json::Value,
    /// The memory tool's answer (the command applied to the store as it was then).
    pub result: String,
}

/// The memory commands session `id` made, in log order, with their results.
pub fn memory_commands(mem: &crate::memory::MemoryStores, id: &str) -> Result<Vec<MemoryCommandRow>> {
    let mut found = Vec::new();
    mem.store().scan_kind(crate::core::Kind::Memory, 0, |e| {
        if matches!(&e.event.body, Body::Memory(m) if m.session.as_deref() == Some(id)) {
            found.push(e);
        }
        true
    })?;
    let mut out = Vec::with_capacity(found.len());
    for e in found {
        let Body::Memory(m) = &e.event.body else { continue };
        let (mut state, _) = mem.state_until(&m.store, e.position)?;
        let result = state.apply(&m.command, m.precondition.as_ref()).unwrap_or_else(|err| err.to_string());
        out.push(MemoryCommandRow {
            id: e.id(),
            position: e.position,
            store: m.store.clone(),
            command: serde_json::to_value(&m.command).unwrap_or_default(),
            result,
        });
    }
    Ok(out)
}

/// Every session, in stream-name order.
pub fn list(store: &Store) -> Result<Vec<SessionSummary>> {
    let mut out = Vec::new();
    for id in store.session_ids()? {
        out.push(summary_of(store, &id)?);
    }
    Ok(out)
}

/// One session's summary, read from its stream and latest link.
fn summary_of(store: &Store, id: &str) -> Result<SessionSummary> {
    let events = store.read_stream(&format!("{PREFIX}{id}"), 0, usize::MAX)?;
    Ok(summarize_linked(id, &events, link(store, id)?.as_ref()))
}

/// `GET /v1/sessions?limit=…`: a page of sessions, newest first (by their first event).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsQuery {
    /// Sessions to skip.
    #[serde(default)]
    pub offset: usize,
    /// Most sessions (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only sessions whose id, agent, model, task id or memory store contains this text
    /// (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

/// One page of sessions and how many match in all.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SessionsPage {
    /// Their summaries, newest first.
    pub sessions: Vec<SessionSummary>,
    /// Sessions matching the query in all.
    pub total: usize,
}

/// A page of sessions newest first: only the page's sessions are read and summarised
/// (the order comes from the session index). `q` matches the id, or the agent, model,
/// task id or memory store its `session.start` names (read in chunks, bodies only of the
/// starts).
pub fn page(store: &Store, q: &SessionsQuery) -> Result<SessionsPage> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let needle = q.q.as_deref().map(str::to_lowercase).filter(|n| !n.is_empty());
    let mut starts = store.session_starts()?;
    if let Some(n) = &needle {
        let hit = |t: Option<&str>| t.is_some_and(|t| t.to_lowercase().contains(n.as_str()));
        let mut others: Vec<u64> = starts.iter().filter(|(id, _)| !hit(Some(id))).map(|(_, p)| *p).collect();
        others.sort_unstable();
        let mut matched = std::collections::HashSet::new();
        for chunk in others.chunks(4096) {
            for e in store.get_positions(chunk)? {
                if let Body::SessionStart(b) = &e.event.body {
                    let fields = [Some(b.agent.as_str()), b.model.as_deref(), b.task_id.as_deref(), b.store.as_deref()];
                    if fields.into_iter().any(hit) {
                        matched.insert(e.position);
                    }
                }
            }
        }
        starts.retain(|(id, p)| hit(Some(id)) || matched.contains(p));
    }
    starts.sort_by_key(|s| std::cmp::Reverse(s.1));
    let total = starts.len();
    let mut sessions = Vec::new();
    for (id, _) in starts.into_iter().skip(q.offset).take(limit) {
        sessions.push(summary_of(store, &id)?);
    }
    Ok(SessionsPage { sessions, total })
}

/// The events of a session given by its id or a unique prefix of it.
pub fn events(store: &Store, id: &str) -> Result<(String, Vec<StoredEvent>)> {
    let exact = format!("{PREFIX}{id}");
    if store.stream_version(&exact)?.is_some() {
        return Ok((id.to_owned(), store.read_stream(&exact, 0, usize::MAX)?));
    }
    let matches: Vec<String> =
        store.session_ids()?.into_iter().filter(|s| s.starts_with(id)).map(|s| format!("{PREFIX}{s}")).collect();
    match matches.as_slice() {
        [one] => Ok((one[PREFIX.len()..].to_owned(), store.read_stream(one, 0, usize::MAX)?)),
        [] => Err(Error::NotFound(format!("no session {id:?} (sessions list shows them)"))),
        many => Err(Error::Input {
            path: "session".into(),
            line: 0,
            reason: format!(
                "{id:?} matches {} sessions: {}",
                many.len(),
                many.iter().take(8).map(|s| &s[PREFIX.len()..]).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// A session in full: its events, its latest `session.link` and the memory commands it
/// made (what `sessions show` prints, and `GET /v1/session/ID` answers).
#[derive(Clone, Debug)]
pub struct SessionDetail {
    /// Session id.
    pub session: String,
    /// Its events, in order.
    pub events: Vec<StoredEvent>,
    /// What it ran with and where it came from.
    pub link: Option<SessionLink>,
    /// The memory commands it made, with their results.
    pub memory: Vec<MemoryCommandRow>,
}

/// The JSON form `{session, summary, link, memory, events}`
/// (schemas/api/session-events.schema.json): the summary is derived from the events.
impl serde::Serialize for SessionDetail {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Form<'a> {
            session: &'a str,
            summary: SessionSummary,
            link: Option<serde_json::Value>,
            memory: &'a [MemoryCommandRow],
            events: &'a [StoredEvent],
        }
        Form {
            session: &self.session,
            summary: summarize_linked(&self.session, &self.events, self.link.as_ref()),
            link: self.link.as_ref().map(|l| Body::SessionLink(l.clone()).to_json()),
            memory: &self.memory,
            events: &self.events,
        }
        .serialize(s)
    }
}

/// From that form: the events' ids recomputed, the link read as a `session.link` body;
/// the summary (derived) is not read.
impl<'de> serde::Deserialize<'de> for SessionDetail {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(serde::Deserialize)]
        struct Form {
            session: String,
            link: Option<serde_json::Value>,
            memory: Vec<MemoryCommandRow>,
            events: Vec<StoredEvent>,
        }
        let f = Form::deserialize(d)?;
        let link = match f.link {
            None => None,
            Some(l) => match Body::from_json(crate::core::Kind::SessionLink, l).map_err(D::Error::custom)? {
                Body::SessionLink(l) => Some(l),
                _ => return Err(D::Error::custom("link: not a session.link body")),
            },
        };
        Ok(SessionDetail { session: f.session, events: f.events, link, memory: f.memory })
    }
}

/// The session given by its id or a unique prefix, in full.
pub fn detail(mem: &crate::memory::MemoryStores, id: &str) -> Result<SessionDetail> {
    let (session, events) = self::events(mem.store(), id)?;
    let link = link(mem.store(), &session)?;
    let memory = memory_commands(mem, &session)?;
    Ok(SessionDetail { session, events, link, memory })
}

/// Pass counts and mean scores, overall and by task and agent.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Sessions.
    pub sessions: u64,
    /// Graded sessions.
    pub graded: u64,
    /// Graded sessions with score 1.
    pub passed: u64,
    /// Tool calls.
    pub steps: u64,
    /// Per task.
    pub by_task: BTreeMap<String, GroupStats>,
    /// Per agent.
    pub by_agent: BTreeMap<String, GroupStats>,
}

/// Counts of one group.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GroupStats {
    /// Sessions.
    pub sessions: u64,
    /// Graded.
    pub graded: u64,
    /// Passed (score 1).
    pub passed: u64,
    /// Mean score of the graded ones.
    pub mean_score: Option<f64>,
}

/// Statistics over summaries.
pub fn stats(rows: &[SessionSummary]) -> Stats {
    let mut st = Stats::default();
    let mut sums: BTreeMap<(bool, String), f64> = BTreeMap::new();
    for r in rows {
        st.sessions += 1;
        st.steps += r.steps;
        let groups = [
            (false, r.task.clone().unwrap_or_else(|| "(none)".into())),
            (true, r.agent.clone().unwrap_or_else(|| "(none)".into())),
        ];
        for (is_agent, key) in groups {
            let g = if is_agent {
                st.by_agent.entry(key.clone()).or_default()
            } else {
                st.by_task.entry(key.clone()).or_default()
            };
            g.sessions += 1;
            if let Some(score) = r.score {
                g.graded += 1;
                if score >= 1.0 {
                    g.passed += 1;
                }
                *sums.entry((is_agent, key)).or_default() += score;
            }
        }
        if let Some(score) = r.score {
            st.graded += 1;
            if score >= 1.0 {
                st.passed += 1;
            }
        }
    }
    for ((is_agent, key), sum) in sums {
        let g = if is_agent { st.by_agent.get_mut(&key) } else { st.by_task.get_mut(&key) };
        if let Some(g) = g {
            g.mean_score = Some(sum / g.graded as f64);
        }
    }
    st
}
