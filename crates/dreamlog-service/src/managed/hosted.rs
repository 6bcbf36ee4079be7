//! A client of the hosted Claude Managed Agents API, reading it as the official SDK
//! (`anthropic` 2.14.0, pinned in tools/requirements.txt) does: the key as a bearer token,
//! its `anthropic-version`, the beta header each route needs, `next_page` cursors, and
//! 429 and 5xx answers retried after the server's `retry-after` (bounded).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, ManagedError, Result};

/// The `anthropic-version` the pinned SDK sends.
pub const API_VERSION: &str = "2026-10-21";
/// The beta of the memory store routes.
pub const MEMORY_BETA: &str = "agent-memory-2026-07-22";
/// The beta of the session routes (sessions, their events and threads).
pub const SESSIONS_BETA: &str = "managed-agents-2026-04-01";
/// The beta of the Files API.
pub const FILES_BETA: &str = "files-api-2025-04-14";
/// Where the hosted API is when `ANTHROPIC_BASE_URL` does not say.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// Attempts per request (the first and its retries).
const ATTEMPTS: u32 = 8;
/// The longest wait between attempts, whatever `retry-after` says.
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// The hosted API, with the key and base URL of the environment.
pub struct Hosted {
    http: reqwest::blocking::Client,
    base: String,
    key: String,
    workspace: Option<String>,
    /// Requests answered, retries included (the report's count).
    pub requests: AtomicU64,
    /// Answers that were retried (429 and 5xx).
    pub retried: AtomicU64,
}

impl Hosted {
    /// The API at `ANTHROPIC_BASE_URL` (or the hosted one) with `ANTHROPIC_API_KEY`; the
    /// key is never read from anywhere else.
    pub fn from_env(workspace: Option<String>) -> Result<Hosted> {
        let key = std::env::var("ANTHROPIC_API_KEY").ok().filter(|k| !k.is_empty()).ok_or_else(|| {
            Error::InvalidInput("ANTHROPIC_API_KEY is not set: the hosted API needs a key to be read".into())
        })?;
        let base = std::env::var("ANTHROPIC_BASE_URL").ok().filter(|b| !b.is_empty());
        Hosted::new(base.as_deref().unwrap_or(DEFAULT_BASE_URL), &key, workspace)
    }

    /// The API at `base` with `key`.
    pub fn new(base: &str, key: &str, workspace: Option<String>) -> Result<Hosted> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("dreamlog/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| hosted_error("the client", 0, e.to_string()))?;
        Ok(Hosted {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            workspace,
            requests: AtomicU64::new(0),
            retried: AtomicU64::new(0),
        })
    }

    /// `GET path?query` under `beta`, retried on 429 and 5xx.
    pub fn get(&self, path: &str, query: &[(&str, String)], beta: &str) -> Result<Value> {
        let text = self.fetch(path, query, beta, "application/json")?;
        serde_json::from_str(&text)
            .map_err(|e| hosted_error(&format!("GET {path}"), 200, format!("not JSON ({e}): {}", clip(&text))))
    }

    /// A file's content as text (`GET /v1/files/{id}/content`).
    pub fn file_text(&self, id: &str) -> Result<String> {
        self.fetch(&format!("/v1/files/{id}/content"), &[], FILES_BETA, "application/binary")
    }

    /// The body of a 200 answer to `GET path?query`, retried on 429 and 5xx.
    fn fetch(&self, path: &str, query: &[(&str, String)], beta: &str, accept: &str) -> Result<String> {
        let route = format!("GET {path}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .get(format!("{}{path}", self.base))
                .query(query)
                .bearer_auth(&self.key)
                .header("anthropic-version", API_VERSION)
                .header("anthropic-beta", beta)
                .header("accept", accept);
            if let Some(w) = &self.workspace {
                req = req.header("anthropic-workspace-id", w);
            }
            let (status, wait, text) = match req.send() {
                Ok(resp) => {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let status = resp.status().as_u16();
                    let wait = retry_after(resp.headers());
                    match resp.text() {
                        Ok(text) => (status, wait, text),
                        // The answer broke off: retried like no answer.
                        Err(e) => (0, wait, e.to_string()),
                    }
                }
                // No answer: retried like an overloaded server.
                Err(e) => (0, None, e.to_string()),
            };
            if status == 200 {
                return Ok(text);
            }
            let retry = status == 0 || status == 429 || status >= 500;
            if !retry || attempt >= ATTEMPTS {
                let message = match serde_json::from_str::<Value>(&text) {
                    Ok(v) => v["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| clip(&text)),
                    Err(_) => clip(&text),
                };
                let tried = if retry { format!(" (after {attempt} attempts)") } else { String::new() };
                return Err(hosted_error(&route, status, format!("{status} {message}{tried}")));
            }
            self.retried.fetch_add(1, Ordering::Relaxed);
            let backoff = Duration::from_millis(500 << (attempt - 1).min(4));
            std::thread::sleep(wait.unwrap_or(backoff).min(LONGEST_WAIT));
        }
    }

    /// A write (`POST` or `DELETE` on `path`): its JSON answer. Retried only on answers
    /// that say nothing was done (429, 503, 529, after `retry-after`); any other failure
    /// is an error with its status (0: no answer, or an answer broken off — whether the
    /// write happened is not known).
    pub fn write(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        beta: &str,
    ) -> Result<Value> {
        let route = format!("{method} {path}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let url = format!("{}{path}", self.base);
            let mut req = match method {
                "DELETE" => self.http.delete(url),
                _ => self.http.post(url),
            }
            .query(query)
            .bearer_auth(&self.key)
            .header("anthropic-version", API_VERSION)
            .header("anthropic-beta", beta)
            .header("accept", "application/json");
            if let Some(w) = &self.workspace {
                req = req.header("anthropic-workspace-id", w);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let (status, wait, should_retry, text) = match req.send() {
                Ok(resp) => {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    let status = resp.status().as_u16();
                    let wait = retry_after(resp.headers());
                    let should =
                        resp.headers().get("x-should-retry").and_then(|v| v.to_str().ok()).map(|v| v == "true");
                    match resp.text() {
                        Ok(text) => (status, wait, should, text),
                        Err(e) => (0, wait, Some(false), format!("the answer broke off: {e}")),
                    }
                }
                Err(e) => (0, None, Some(false), format!("no answer: {e}")),
            };
            if status == 200 {
                return serde_json::from_str(&text).map_err(|e| {
                    hosted_error(&route, 0, format!("an answer that is not JSON ({e}): {}", clip(&text)))
                });
            }
            // The server's `x-should-retry` decides (as the SDK reads it: a 409 that is a
            // lock timeout says true); without it, only answers that did nothing.
            let refused_unread = should_retry.unwrap_or(matches!(status, 429 | 503 | 529));
            if !refused_unread || attempt >= ATTEMPTS {
                let message = match serde_json::from_str::<Value>(&text) {
                    Ok(v) => v["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| clip(&text)),
                    Err(_) => clip(&text),
                };
                let message = if status == 0 { message } else { format!("{status} {message}") };
                return Err(hosted_error(&route, status, message));
            }
            self.retried.fetch_add(1, Ordering::Relaxed);
            let backoff = Duration::from_millis(500 << (attempt - 1).min(4));
            std::thread::sleep(wait.unwrap_or(backoff).min(LONGEST_WAIT));
        }
    }

    /// Every item of a list, page after page (`next_page` → `page`), in the API's order.
    pub fn list(
        &self,
        path: &str,
        query: &[(&str, String)],
        beta: &str,
        mut f: impl FnMut(Value) -> Result<()>,
    ) -> Result<()> {
        let mut cursor: Option<String> = None;
        let mut cursors = std::collections::HashSet::new();
        loop {
            let mut q = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("page", c.clone()));
            }
            let page = self.get(path, &q, beta)?;
            let Some(items) = page["data"].as_array() else {
                return Err(hosted_error(&format!("GET {path}"), 200, "a list answer without `data`".into()));
            };
            for item in items {
                f(item.clone())?;
            }
            match page["next_page"].as_str() {
                // A cursor seen before would go round in a circle: the list ends there.
                Some(next) if !next.is_empty() && cursors.insert(next.to_owned()) => cursor = Some(next.to_owned()),
                _ => return Ok(()),
            }
        }
    }
}

/// A time the API gives (RFC 3339) in ms since the epoch; `None` when it is not one.
pub fn api_time(v: &Value) -> Option<u64> {
    let t = v.as_str()?;
    chrono::DateTime::parse_from_rfc3339(t).ok().and_then(|d| u64::try_from(d.timestamp_millis()).ok())
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let ms = headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
    let secs = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
    ms.map(|m| m / 1000.0).or(secs).filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

fn clip(text: &str) -> String {
    text.chars().take(300).collect()
}

fn hosted_error(route: &str, status: u16, message: String) -> Error {
    Error::Managed(ManagedError::Hosted { route: route.to_owned(), status, message })
}
