//! Sessions: summaries, rendering and statistics over the `session/ID` streams.

use std::collections::BTreeMap;

use crate::core::Body;
use crate::error::{Error, Result};
use crate::store::{Store, StoredEvent};

/// The prefix of every session stream.
pub const PREFIX: &str = "session/";

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
    /// Time of the first event (ms).
    pub time: u64,
    /// Memory store and state hash the session ran with.
    pub store: Option<String>,
    /// State hash of that store.
    pub memory_state: Option<String>,
}

/// Summarises one session's events.
pub fn summarize(id: &str, events: &[StoredEvent]) -> SessionSummary {
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
        time: events.first().map(|e| e.event.header.time).unwrap_or(0),
        store: None,
        memory_state: None,
    };
    for e in events {
        match &e.event.body {
            Body::SessionStart(b) => {
                s.task = b.task_id.clone();
                s.agent = Some(b.agent.clone());
                s.model = b.model.clone();
                s.store = b.store.clone();
                s.memory_state = b.memory_state.map(|h| h.to_hex());
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
    s
}

/// Every session, in stream-name order.
pub fn list(store: &Store) -> Result<Vec<SessionSummary>> {
    let mut out = Vec::new();
    for (stream, _) in store.streams()? {
        if let Some(id) = stream.strip_prefix(PREFIX) {
            out.push(summarize(id, &store.read_stream(&stream, 0, usize::MAX)?));
        }
    }
    Ok(out)
}

/// The events of a session given by its id or a unique prefix of it.
pub fn events(store: &Store, id: &str) -> Result<(String, Vec<StoredEvent>)> {
    let exact = format!("{PREFIX}{id}");
    if store.stream_version(&exact)?.is_some() {
        return Ok((id.to_owned(), store.read_stream(&exact, 0, usize::MAX)?));
    }
    let matches: Vec<String> = store.streams()?.into_iter().map(|(s, _)| s).filter(|s| s.starts_with(&exact)).collect();
    match matches.as_slice() {
        [one] => Ok((one[PREFIX.len()..].to_owned(), store.read_stream(one, 0, usize::MAX)?)),
        [] => Err(Error::NotFound(format!("session {id}"))),
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
