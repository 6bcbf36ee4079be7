//! A typed client for `dreamlog serve` (reqwest, blocking): what `--remote URL` uses.
//! Events come back in their JSON form and are rebuilt into [`StoredEvent`]s whose ids
//! are recomputed here, so a client never trusts an id it did not hash itself.

use std::time::Duration;

use serde_json::{json, Value};

use crate::core::{EventId, EventJson, Kind};
use crate::error::{Error, Result};
use crate::store::{Appended, StoredEvent, VerifyReport};

/// A memory tool call's answer from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolAnswer {
    /// The tool's text.
    pub text: String,
    /// The tool's error class when it refused (`not_found`, `invalid`, …).
    pub error: Option<String>,
    /// Where the recorded command landed: position and id.
    pub recorded: Option<(u64, EventId)>,
}

/// A server at a base URL, with an optional bearer token.
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

fn remote_error(status: u16, kind: &str, message: impl Into<String>) -> Error {
    Error::Remote { status, kind: kind.to_owned(), message: message.into() }
}

impl Remote {
    /// A client for `url` (e.g. `http://127.0.0.1:7700`).
    pub fn new(url: &str, token: Option<String>) -> Result<Remote> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| remote_error(0, "client", e.to_string()))?;
        Ok(Remote { base: url.trim_end_matches('/').to_owned(), token, http })
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<reqwest::blocking::Response> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().map_err(|e| remote_error(0, "connection", format!("{}: {e}", self.base)))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let text = resp.text().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let err = &v["error"];
        Err(remote_error(
            status,
            err["type"].as_str().unwrap_or("http"),
            err["message"].as_str().map(str::to_owned).unwrap_or(text),
        ))
    }

    fn json(&self, req: reqwest::blocking::RequestBuilder) -> Result<Value> {
        self.send(req)?.json().map_err(|e| remote_error(0, "response", e.to_string()))
    }

    fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.json(self.http.get(format!("{}{path}", self.base)).query(query))
    }

    fn post(&self, path: &str, body: &Value, headers: &[(&str, String)]) -> Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        self.json(req)
    }

    /// Rebuilds an event from its JSON form, recomputing its id.
    pub fn event_from_json(v: Value) -> Result<StoredEvent> {
        let j: EventJson = serde_json::from_value(v).map_err(|e| remote_error(0, "response", e.to_string()))?;
        let version = j.version.unwrap_or(0);
        let (position, sealed) = j.into_sealed()?;
        Ok(StoredEvent { position: position.unwrap_or(0), version, redacted: false, event: sealed.into_event() })
    }

    fn events(v: &Value) -> Result<Vec<StoredEvent>> {
        v["events"].as_array().cloned().unwrap_or_default().into_iter().map(Remote::event_from_json).collect()
    }

    /// Appends JSON events atomically; returns where each landed and its stream.
    pub fn append(
        &self,
        events: Vec<Value>,
        stream: Option<&str>,
        expect: Option<(&str, String)>,
    ) -> Result<Vec<(Appended, String)>> {
        let mut body = json!({ "events": events });
        if let Some(s) = stream {
            body["stream"] = json!(s);
        }
        if let Some((s, e)) = expect {
            body["expect"] = json!({ s: e });
        }
        let v = self.post("/v1/events", &body, &[])?;
        v["appended"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let id: EventId = a["id"].as_str().unwrap_or_default().parse()?;
                Ok((
                    Appended {
                        position: a["position"].as_u64().unwrap_or(0),
                        id,
                        version: a["version"].as_u64().unwrap_or(0),
                        existed: a["existed"].as_bool().unwrap_or(false),
                    },
                    a["stream"].as_str().unwrap_or_default().to_owned(),
                ))
            })
            .collect()
    }

    /// Events in log order from `from`.
    pub fn read_range(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        Remote::events(&self.get("/v1/events", &[("from", from.to_string()), ("limit", limit.to_string())])?)
    }

    /// A stream's events from a version.
    pub fn read_stream(&self, stream: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        match self.get(&format!("/v1/streams/{stream}"), &[("from", from.to_string()), ("limit", limit.to_string())]) {
            Err(Error::Remote { status: 404, .. }) => Ok(Vec::new()),
            other => Remote::events(&other?),
        }
    }

    /// Events of one kind from `from`.
    pub fn read_kind(&self, kind: Kind, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        Remote::events(
            &self.get(
                &format!("/v1/kinds/{}", kind.name()),
                &[("from", from.to_string()), ("limit", limit.to_string())],
            )?,
        )
    }

    /// One event by id or unique prefix.
    pub fn get_event(&self, id: &str) -> Result<StoredEvent> {
        Remote::event_from_json(self.get(&format!("/v1/events/{id}"), &[])?)
    }

    /// Verifies the server's database.
    pub fn verify(&self) -> Result<VerifyReport> {
        serde_json::from_value(self.post("/v1/verify", &json!({}), &[])?)
            .map_err(|e| remote_error(0, "response", e.to_string()))
    }

    /// A memory tool call through the tool endpoint: the tool's text, its error class
    /// (`None` on success), and where the recorded command landed.
    pub fn memory_tool(
        &self,
        store: &str,
        input: &Value,
        actor: Option<String>,
        session: Option<String>,
    ) -> Result<ToolAnswer> {
        let mut headers = Vec::new();
        if let Some(a) = actor {
            headers.push(("x-dreamlog-actor", a));
        }
        if let Some(s) = session {
            headers.push(("x-dreamlog-session", s));
        }
        let v = self.post(&format!("/v1/memory/{store}/tool"), input, &headers)?;
        let at = match (v["position"].as_u64(), v["id"].as_str()) {
            (Some(p), Some(id)) => Some((p, id.parse()?)),
            _ => None,
        };
        let error =
            v["is_error"].as_bool().unwrap_or(true).then(|| v["error_type"].as_str().unwrap_or("invalid").to_owned());
        Ok(ToolAnswer { text: v["content"].as_str().unwrap_or_default().to_owned(), error, recorded: at })
    }

    /// The view JSON of `GET /v1/memory/{store}/view`.
    pub fn memory_view(&self, store: &str, path: &str, at: &str, range: Option<&str>) -> Result<Value> {
        let mut q = vec![("path", path.to_owned()), ("at", at.to_owned())];
        if let Some(r) = range {
            q.push(("range", r.to_owned()));
        }
        self.get(&format!("/v1/memory/{store}/view"), &q)
    }

    /// Every change of a store or path.
    pub fn history(&self, store: &str, path: Option<&str>) -> Result<Vec<StoredEvent>> {
        let q: Vec<(&str, String)> = path.map(|p| vec![("path", p.to_owned())]).unwrap_or_default();
        Remote::events(&self.get(&format!("/v1/memory/{store}/history"), &q)?)
    }
}
