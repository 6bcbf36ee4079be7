//! The lesson ledger and drift: grades attached to memory states.
//!
//! Every `session.start` records the memory store and state hash the session ran with,
//! and every grade names its session; so each memory state, each dream and each lesson
//! line has the grades of the sessions that ran with it. `lessons` lists the lines a
//! dream put in a store with their evidence and the grades before and after they
//! appeared; `drift` compares grades before and after every change of the store and
//! flags the changes after which grades fell beyond a bootstrap confidence interval,
//! with the `memory revert` command that undoes each.

use std::collections::HashMap;

use serde::Serialize;

use crate::core::projection::{LedgerEntry, LEDGER_GRADES, LEDGER_RUNS};
use crate::core::stats::{GradeStats, Outcome};
use crate::core::{Body, Digest, EventId};

mod drift;
use crate::error::Result;
use crate::memory::MemoryStores;
use crate::store::Store;
pub use drift::{drift, Change, DriftCache, DriftOptions, DriftReport, FamilyChange, StateRow};

/// A session that ran with a store, and its last grade.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SessionRun {
    /// Session id.
    pub session: String,
    /// Position of its `session.start`.
    pub position: u64,
    /// The state hash it recorded.
    pub memory_state: Option<Digest>,
    /// Its last grade's score.
    pub score: Option<f64>,
    /// Its last grade's result was `satisfied`.
    pub passed: Option<bool>,
    /// Its last grade's rubric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rubric: Option<String>,
    /// Its task id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Its agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

impl SessionRun {
    fn outcome(&self) -> Option<Outcome> {
        Some(Outcome { score: self.score?, passed: self.passed? })
    }
}

/// Sessions that recorded running with `store`, before `until`, in log order. A session
/// records it in its `session.start` (live agents) or in a `session.link` beside it
/// (imports); the latest record before `until` holds, and the session takes its place in
/// the log at that record (for a link: when the run was imported with the store in the
/// state it names).
pub fn sessions_with(store: &Store, name: &str, until: u64) -> Result<Vec<SessionRun>> {
    // Read from the ledger index (`projection::Space::Ledger`): the sessions' records and
    // grades, compact, in log order — not the events themselves.
    // session → (position of its record, store, state): starts, then links over them.
    let mut starts: HashMap<String, (u64, String, Option<Digest>)> = HashMap::new();
    let mut links: HashMap<String, (u64, String, Option<Digest>)> = HashMap::new();
    // session → (task id, agent), for the families lessons are compared over.
    let mut about: HashMap<String, (Option<String>, String)> = HashMap::new();
    store.ledger(LEDGER_RUNS, 0, until, |position, entry| {
        match entry {
            LedgerEntry::Start { session, store, memory_state, task_id, agent } => {
                if let Some(st) = store {
                    starts.insert(session.clone(), (position, st, memory_state));
                }
                about.insert(session, (task_id, agent));
            }
            LedgerEntry::Link { session, store, memory_state, at } => {
                // A link made afterwards (`sessions link --at P`) says the session ran
                // with the store as it stood at P, P included: it counts right after P
                // (never later than the link itself). Drift's `mismatched` shows a link
                // whose state is not the store's there.
                let position = at.map(|p| p.saturating_add(1)).filter(|&p| p < position).unwrap_or(position);
                links.insert(session, (position, store, memory_state));
            }
            LedgerEntry::Grade { .. } => {}
        }
        true
    })?;
    // A session's latest link holds over its start.
    starts.extend(links);
    let mut runs: Vec<SessionRun> = starts
        .into_iter()
        .filter(|(_, (_, st, _))| st == name)
        .map(|(session, (position, _, memory_state))| {
            let (task_id, agent) = about.remove(&session).map(|(t, a)| (t, Some(a))).unwrap_or_default();
            SessionRun { session, position, memory_state, score: None, passed: None, rubric: None, task_id, agent }
        })
        .collect();
    // Sessions linked together share a position: by id then, so reports do not depend on
    // hash order (the bootstrap resamples by index).
    runs.sort_by(|a, b| a.position.cmp(&b.position).then_with(|| a.session.cmp(&b.session)));
    if runs.is_empty() {
        return Ok(runs);
    }
    let index: HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.session.clone(), i)).collect();
    // A session's last grade is its score, wherever it stands in the log (an imported
    // session's come before its link; drift's fold reads them so too).
    store.ledger(LEDGER_GRADES, 0, until, |_, entry| {
        if let LedgerEntry::Grade { session, score, passed, rubric } = entry {
            if let Some(&i) = index.get(&session) {
                runs[i].score = Some(score);
                runs[i].passed = Some(passed);
                runs[i].rubric = Some(rubric);
            }
        }
        true
    })?;
    Ok(runs)
}

fn stats(runs: &[&SessionRun]) -> GradeStats {
    GradeStats::of(&runs.iter().filter_map(|r| r.outcome()).collect::<Vec<_>>())
}

/// One lesson line of a store.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct LessonRow {
    /// File.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// Text.
    pub text: String,
    /// The memory event that wrote the line.
    pub id: EventId,
    /// Its position.
    pub position: u64,
    /// The dream it came from.
    pub dream: Option<EventId>,
    /// That dream's `NAME@VERSION`.
    pub dreamer: Option<String>,
    /// Events cited as evidence.
    pub evidence: Vec<EventId>,
    /// Sessions named by the evidence (distinct, in order).
    pub evidence_sessions: Vec<String>,
    /// The task family the lesson was written for (lessons of the evidence dreamer: the
    /// family of its file); `before` and `after` then count only that family's sessions.
    /// Absent: every session that ran with the store counts.
    #[serde(default)]
    pub family: Option<String>,
    /// When a revert or a promote put the line back in this store: that act (`id` and
    /// `position` above stay the event that wrote it first; `before` and `after` count
    /// from this act, when the line entered the store again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_by: Option<crate::memory::RestoredBy>,
    /// Grades of sessions (of its family) that ran with the store before the line was written.
    pub before: GradeStats,
    /// Grades of sessions (of its family) that ran with the store while the line was in it.
    pub after: GradeStats,
}

/// A lesson's task family and the indexes of its sessions among the store's runs.
type Family = (String, Vec<usize>);

/// Which sessions a lesson's grades are compared over: for a lesson in an evidence
/// dream's family file, the sessions of that family (by the dream's recorded config).
fn lesson_family(dream: &crate::core::Dream, path: &str, runs: &[SessionRun]) -> Option<Family> {
    use crate::core::dream::evidence::{family_key, family_path, EvidenceConfig, NAME};
    if dream.dreamer != NAME {
        return None;
    }
    // Both versions place lessons by `family` and `dir` (the rest of their configs differ).
    let config = dream.config.to_value();
    let defaults = EvidenceConfig::default();
    let cfg = EvidenceConfig {
        family: config.get("family").and_then(|f| serde_json::from_value(f.clone()).ok()).unwrap_or(defaults.family),
        dir: config.get("dir").and_then(|d| d.as_str()).map(str::to_owned).unwrap_or(defaults.dir.clone()),
        ..defaults
    };
    let dir = format!("{}/", cfg.dir.trim_end_matches('/'));
    let stem = path.strip_prefix(&dir)?.strip_suffix(".md")?.to_owned();
    let mut family = None;
    let members: Vec<usize> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let f = family_key(cfg.family, r.rubric.as_deref(), r.task_id.as_deref(), r.agent.as_deref());
            let hit = family_path(&cfg.dir, &f) == path;
            if hit && family.is_none() {
                family = Some(f);
            }
            hit
        })
        .map(|(i, _)| i)
        .collect();
    Some((family.unwrap_or(stem), members))
}

/// The lessons of `store` as of `until`: every non-blank, non-heading line a dream wrote
/// (or that cites evidence), with its dream, evidence and the grades around it.
pub fn lessons(mem: &MemoryStores, name: &str, until: u64) -> Result<Vec<LessonRow>> {
    mem.require(name)?;
    let store = mem.store();
    let (state, _) = mem.state_until(name, until)?;
    let runs = sessions_with(store, name, until)?;
    let mut dreamers: HashMap<EventId, (String, Option<crate::core::Dream>)> = HashMap::new();
    let mut families: HashMap<(EventId, String), Option<Family>> = HashMap::new();
    let mut sessions_of: HashMap<EventId, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for path in state.files().keys() {
        for b in mem.blame(name, path, until)? {
            let t = b.text.trim();
            if t.is_empty() || t.starts_with('#') || (b.dream.is_none() && b.evidence.is_empty()) {
                continue;
            }
            if b.dream.is_some() && b.evidence.is_empty() && !(t.starts_with("- ") || t.starts_with("* ")) {
                // A dream's prose (a file's introduction), not a lesson.
                continue;
            }
            let (dreamer, family) = match b.dream {
                Some(d) => {
                    let (name, x) = match dreamers.entry(d) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            let x = match store.get(&d)?.event.body {
                                Body::Dream(x) => Some(x),
                                _ => None,
                            };
                            let name = x.as_ref().map(|x| format!("{}@{}", x.dreamer, x.version)).unwrap_or_default();
                            v.insert((name, x))
                        }
                    };
                    // One family per dream and file: every line of a file shares it.
                    let family = families
                        .entry((d, path.clone()))
                        .or_insert_with(|| x.as_ref().and_then(|x| lesson_family(x, path, &runs)))
                        .clone();
                    (Some(name.clone()), family)
                }
                None => (None, None),
            };
            let mut evidence_sessions: Vec<String> = Vec::new();
            for c in &b.evidence {
                let s = match sessions_of.get(c) {
                    Some(s) => s.clone(),
                    None => {
                        let s = store.get(c).ok().and_then(|e| match e.event.body {
                            Body::Grade(g) => Some(g.session),
                            Body::SessionStart(s) => Some(s.session),
                            Body::Action(a) => Some(a.session),
                            Body::SessionEnd(s) => Some(s.session),
                            _ => None,
                        });
                        sessions_of.insert(*c, s.clone());
                        s
                    }
                };
                if let Some(s) = s {
                    if !evidence_sessions.contains(&s) {
                        evidence_sessions.push(s);
                    }
                }
            }
            let counted: Vec<&SessionRun> = match &family {
                Some((_, members)) => members.iter().map(|i| &runs[*i]).collect(),
                None => runs.iter().collect(),
            };
            // Since the line entered this store: when written here, or put back by a revert or a promote.
            let since = b.restored_by.as_ref().map_or(b.position, |r| r.position);
            let before: Vec<&SessionRun> = counted.iter().copied().filter(|r| r.position < since).collect();
            let after: Vec<&SessionRun> = counted.iter().copied().filter(|r| r.position > since).collect();
            out.push(LessonRow {
                path: path.clone(),
                line: b.line,
                text: b.text,
                id: b.id,
                position: b.position,
                dream: b.dream,
                dreamer,
                evidence: b.evidence,
                evidence_sessions,
                family: family.map(|(f, _)| f),
                restored_by: b.restored_by,
                before: stats(&before),
                after: stats(&after),
            });
        }
    }
    Ok(out)
}
