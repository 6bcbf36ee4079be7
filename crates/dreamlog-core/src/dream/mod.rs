//! Dreaming, pure: the dreamer interface — what a dreamer reads ([`DreamInput`]: the base
//! memory and the graded sessions of a log range) and what it writes ([`Planned`] memory
//! commands, each citing its evidence) — and the deterministic dreamers with their
//! statistics: [`evidence`] (v1), [`evidence2`] (v2), the decisions of v2 ([`lessons`])
//! and the within-task contrasts they rest on ([`contrast`]). Running, recording and
//! replaying dreams is the service crate's `dream/`; nothing here does I/O. The
//! statistical tests themselves are `crate::stats` (drift uses them too).

pub mod contrast;
pub mod evidence;
pub mod evidence2;
pub mod lessons;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::{Action, Grade, MemoryCommand, SessionEnd, SessionStart};
use crate::hash::{Digest, EventId};
use crate::memory::MemoryState;

/// A dreamer and the version and configuration it runs with: `NAME[@VERSION]` on the
/// command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DreamerSpec {
    /// Dreamer name: `evidence`, `llm`, `exec`.
    pub name: String,
    /// Version (`None`: the dreamer's current version).
    pub version: Option<String>,
    /// Configuration (`null`: the dreamer's defaults).
    pub config: Value,
}

impl FromStr for DreamerSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<DreamerSpec, String> {
        let (name, version) = match s.split_once('@') {
            Some((n, v)) if !v.is_empty() => (n, Some(v.to_owned())),
            Some(_) => return Err(format!("{s:?}: expected NAME or NAME@VERSION")),
            None => (s, None),
        };
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?}: a dreamer name is one word, e.g. evidence or evidence@1"));
        }
        Ok(DreamerSpec { name: name.to_owned(), version, config: Value::Null })
    }
}

impl fmt::Display for DreamerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// An event a dreamer reads: its id and position with its body's JSON form flattened in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence<T> {
    /// Event id: what a command's `causes` cite.
    pub id: EventId,
    /// Global position.
    pub position: u64,
    /// The body.
    #[serde(flatten)]
    pub body: T,
}

/// One session as a dreamer sees it: its start, tool calls, grades and end (messages are
/// not part of the input), every event at or before the dream's last position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionInput {
    /// Session id.
    pub session: String,
    /// `session.start`, when recorded.
    pub start: Option<Evidence<SessionStart>>,
    /// Tool calls in order.
    pub actions: Vec<Evidence<Action>>,
    /// Grades in order; a session is in the input because at least one of them lies in
    /// the dream's log range.
    pub grades: Vec<Evidence<Grade>>,
    /// `session.end`, when recorded.
    pub end: Option<Evidence<SessionEnd>>,
}

impl SessionInput {
    /// The last grade (the one that counts when a session was graded twice).
    pub fn grade(&self) -> Option<&Evidence<Grade>> {
        self.grades.last()
    }

    /// The task id, when the start names one.
    pub fn task_id(&self) -> Option<&str> {
        self.start.as_ref().and_then(|s| s.body.task_id.as_deref())
    }
}

/// Everything a dreamer reads, fixed and recorded by the `dream` event: replaying the
/// dream rebuilds exactly this value from the log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DreamInput {
    /// Dreamer name.
    pub dreamer: String,
    /// Dreamer version.
    pub version: String,
    /// The dreamer's effective configuration.
    pub config: Value,
    /// The input memory store.
    pub store: String,
    /// State hash of `memory`.
    pub base_state: Digest,
    /// First global position of the range read (inclusive).
    pub from_position: u64,
    /// Last global position of the range read (inclusive).
    pub to_position: u64,
    /// The input store's files: path → text.
    pub memory: BTreeMap<String, String>,
    /// The input store's memory rules when they are not 1 (see `core::memory::Rules`):
    /// 2 makes directories part of the state, and commands follow the SDK's reference.
    #[serde(skip_serializing_if = "is_rules_1")]
    pub memory_rules: u64,
    /// Rules 2: the input store's empty directories (those with files are implied).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memory_dirs: Vec<String>,
    /// Graded sessions, in the order of their last grade.
    pub sessions: Vec<SessionInput>,
    /// The input's format: 1 (the sessions graded in the log range), 2 (also every graded
    /// session up to the range's end as a [`Trial`], and the tasks' texts). A dreamer
    /// declares the format it reads; a recorded dream replays with the same one.
    #[serde(skip_serializing_if = "is_format_1")]
    pub format: u32,
    /// Format 2: every graded session at or before `to_position`, in the order of its last
    /// grade — the per-task tables over the graded history.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// Format 2: the text of every task of `trials` (task id → text).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, String>,
}

fn is_format_1(f: &u32) -> bool {
    *f <= 1
}

fn is_rules_1(r: &u64) -> bool {
    *r <= 1
}

/// The first input format, and the one with the graded history.
pub const INPUT_FORMATS: [u32; 2] = [1, 2];

/// One graded session of the history, reduced to what per-task tables need: its task,
/// outcome, calls, what the graders expected and checked, and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trial {
    /// Session id.
    pub session: String,
    /// Task id (from `session.start`), when recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task: Option<String>,
    /// The last grade's id (what a lesson cites).
    pub grade: EventId,
    /// Its position.
    pub position: u64,
    /// Its rubric.
    pub rubric: String,
    /// Its result was `satisfied`.
    pub passed: bool,
    /// Its score.
    pub score: f64,
    /// Tool calls in order: name and whether the call failed.
    pub calls: Vec<TrialCall>,
    /// Calls the graders expected (τ-bench's `meta.actions[].name`, τ²-bench's `action:NAME`
    /// criteria), sorted.
    pub expected: Vec<String>,
    /// Rubric criteria by name (each once, failed if any instance failed), sorted.
    pub labels: Vec<TrialLabel>,
    /// Where it came from: the agent, the importer and file (or the writer), the grader.
    pub sources: Sources,
}

/// One call of a [`Trial`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialCall {
    /// Tool name.
    pub name: String,
    /// The call failed.
    pub failed: bool,
}

/// One criterion of a [`Trial`]'s grade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialLabel {
    /// Criterion name (`action:NAME`, `db_check`, `nl:…`).
    pub name: String,
    /// It failed.
    pub failed: bool,
    /// The grade's score does not rest on it: τ²-bench's `reward_basis` names the kinds
    /// of check a task's reward counts, and this one's kind is not among them. Recorded,
    /// never a failure for evidence@3 (absent from the JSON when false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_reward: bool,
}

/// The kind of check a criterion is in τ²-bench's `reward_basis` terms, when it is one
/// of them: `db_check` → DB, `env:…` → ENV_ASSERTION, `action:…` → ACTION,
/// `communicate:…` → COMMUNICATE, `nl:…` → NL_ASSERTION.
pub fn reward_kind(criterion: &str) -> Option<&'static str> {
    let prefix = criterion.split_once(':').map_or(criterion, |(p, _)| p);
    match prefix {
        "db_check" => Some("DB"),
        "env" => Some("ENV_ASSERTION"),
        "action" => Some("ACTION"),
        "communicate" => Some("COMMUNICATE"),
        "nl" => Some("NL_ASSERTION"),
        _ => None,
    }
}

/// The kinds of check a grade's score rests on, when its metadata says
/// (`reward_basis`, as τ²-bench records it); `None`: every criterion counts.
pub fn reward_basis(g: &Grade) -> Option<std::collections::BTreeSet<String>> {
    let meta = g.meta.as_ref()?.to_value();
    let basis = meta.get("reward_basis")?.as_array()?;
    Some(basis.iter().filter_map(|b| b.as_str().map(str::to_owned)).collect())
}

/// Where a graded session came from: the dimensions a lesson must not rest on one value
/// of (leave-one-source-out).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// The agent (`session.start`).
    pub agent: String,
    /// The importer and file (`FORMAT:PATH` of its `session.link`), else the actor that
    /// wrote the session's start.
    pub origin: String,
    /// The actor that wrote the grade.
    pub grader: String,
}

impl Trial {
    /// The task the trial belongs to: its task id, else the session itself (one trial, so
    /// no contrast within it).
    pub fn task_key(&self) -> String {
        match &self.task {
            Some(t) => t.clone(),
            None => format!("session:{}", self.session),
        }
    }

    /// Whether it called `tool`.
    pub fn called(&self, tool: &str) -> bool {
        self.calls.iter().any(|c| c.name == tool)
    }

    /// Builds a trial from a session's events: its start, calls and last grade.
    pub fn of(s: &SessionInput, sources: Sources) -> Option<Trial> {
        let g = s.grade()?;
        let mut labels: BTreeMap<String, bool> = BTreeMap::new();
        let mut expected: std::collections::BTreeSet<String> = expected_in_meta(&g.body);
        let by_user = user_actions(&g.body);
        let basis = reward_basis(&g.body);
        let mut outside: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for c in &g.body.criteria {
            let failed = c.passed == Some(false) || (c.passed.is_none() && c.score.is_some_and(|x| x < 1.0));
            let name = match c.name.strip_prefix("action:") {
                // τ²-bench also checks calls the simulated user was to make (guided by
                // the agent): not calls the agent could make.
                Some(n) if by_user.contains(n) => format!("user_action:{n}"),
                Some(n) => {
                    expected.insert(n.to_owned());
                    c.name.clone()
                }
                None => c.name.clone(),
            };
            if let (Some(basis), Some(kind)) = (&basis, reward_kind(&c.name)) {
                if !basis.contains(kind) {
                    outside.insert(name.clone());
                }
            }
            *labels.entry(name).or_default() |= failed;
        }
        Some(Trial {
            session: s.session.clone(),
            task: s.task_id().map(str::to_owned),
            grade: g.id,
            position: g.position,
            rubric: g.body.rubric.clone(),
            passed: g.body.result == crate::GradeResult::Satisfied,
            score: g.body.score,
            calls: s
                .actions
                .iter()
                .map(|a| TrialCall { name: a.body.name.clone(), failed: a.body.status == crate::ActionStatus::Error })
                .collect(),
            expected: expected.into_iter().collect(),
            labels: labels
                .into_iter()
                .map(|(name, failed)| TrialLabel { outside_reward: outside.contains(&name), name, failed })
                .collect(),
            sources,
        })
    }
}

/// The calls τ²-bench's graders (`meta.action_checks[].action`) expected of the simulated
/// user only (`requestor: "user"`), never of the agent.
fn user_actions(g: &Grade) -> std::collections::BTreeSet<String> {
    let meta = g.meta.as_ref().map(|m| m.to_value()).unwrap_or_default();
    let checks = meta.get("action_checks").and_then(|a| a.as_array()).cloned().unwrap_or_default();
    let mut user = std::collections::BTreeSet::new();
    let mut agent = std::collections::BTreeSet::new();
    for c in &checks {
        let Some(name) = c.pointer("/action/name").and_then(|n| n.as_str()) else { continue };
        match c.pointer("/action/requestor").and_then(|r| r.as_str()) {
            Some("user") => user.insert(name.to_owned()),
            _ => agent.insert(name.to_owned()),
        };
    }
    user.difference(&agent).cloned().collect()
}

/// The calls a grade's metadata lists as expected (τ-bench's `actions[].name`).
pub fn expected_in_meta(g: &Grade) -> std::collections::BTreeSet<String> {
    g.meta
        .as_ref()
        .and_then(|m| m.to_value().get("actions").and_then(|a| a.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect()
}

impl DreamInput {
    /// What the dream reads, as a digest: everything but the log range it was read from
    /// (a later range with no new graded session reads the same). Two dreams with one
    /// digest ran the same dreamer, version and config over the same memory, sessions,
    /// history and tasks.
    pub fn digest(&self) -> Digest {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("from_position");
            o.remove("to_position");
        }
        Digest::of(crate::canonical_json::CanonicalJson::from_value(&v).as_str().as_bytes())
    }

    /// The base memory as a state.
    pub fn memory_state(&self) -> MemoryState {
        let rules = crate::memory::Rules::from_number(self.memory_rules).unwrap_or_default();
        MemoryState::from_tree(rules, self.memory.iter().map(|(p, t)| (p.clone(), t.clone())), self.memory_dirs.clone())
    }

    /// Every event id the input holds (what commands may cite): the sessions' events
    /// and, in format 2, the history's grades.
    pub fn evidence_ids(&self) -> impl Iterator<Item = EventId> + '_ {
        self.sessions
            .iter()
            .flat_map(|s| {
                s.start
                    .iter()
                    .map(|e| e.id)
                    .chain(s.actions.iter().map(|e| e.id))
                    .chain(s.grades.iter().map(|e| e.id))
                    .chain(s.end.iter().map(|e| e.id))
            })
            .chain(self.trials.iter().map(|t| t.grade))
    }
}

/// One memory command a dreamer wants applied, with the events it derives from. JSON
/// form: `{"input": <memory tool input>, "causes": [ids]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Planned {
    /// The memory tool command (`view` is not allowed: it changes nothing).
    pub input: MemoryCommand,
    /// Evidence: ids of events in the dream's input.
    #[serde(default)]
    pub causes: Vec<EventId>,
}

/// Why a dreamer's output cannot be committed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A command fails against the memory as the earlier commands left it.
    #[error("command #{index} ({command}) fails: {reason}")]
    Command {
        /// 0-based index in the output.
        index: usize,
        /// The command's name.
        command: &'static str,
        /// The memory tool's error text.
        reason: String,
    },
    /// A command cites an event that is not part of the dream's input.
    #[error("command #{index} cites {cause}, which is not an event of the dream's input")]
    UnknownCause {
        /// 0-based index in the output.
        index: usize,
        /// The unknown id.
        cause: EventId,
    },
    /// A command cites too many events.
    #[error("command #{index} cites {count} events, at most {max} allowed")]
    TooManyCauses {
        /// 0-based index in the output.
        index: usize,
        /// How many it cites.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// The name of a memory command, for messages.
pub fn command_name(c: &MemoryCommand) -> &'static str {
    match c {
        MemoryCommand::Create { .. } => "create",
        MemoryCommand::StrReplace { .. } => "str_replace",
        MemoryCommand::Insert { .. } => "insert",
        MemoryCommand::Delete { .. } => "delete",
        MemoryCommand::Rename { .. } => "rename",
        MemoryCommand::Mkdir { .. } => "mkdir",
        MemoryCommand::Write { .. } => "write",
    }
}

/// Applies `plan` to `base` in order, checking every command and that every cause is
/// `known`; returns the resulting state. Duplicate causes are removed (first kept).
pub fn check_plan(
    base: &MemoryState,
    plan: &mut [Planned],
    known: impl Fn(&EventId) -> bool,
) -> Result<MemoryState, PlanError> {
    let mut state = base.clone();
    // One cause slot is the dream itself.
    let max = crate::event::MAX_CAUSES - 1;
    for (index, p) in plan.iter_mut().enumerate() {
        let mut seen = std::collections::HashSet::new();
        p.causes.retain(|c| seen.insert(*c));
        if p.causes.len() > max {
            return Err(PlanError::TooManyCauses { index, count: p.causes.len(), max });
        }
        if let Some(c) = p.causes.iter().find(|c| !known(c)) {
            return Err(PlanError::UnknownCause { index, cause: *c });
        }
        state.apply(&p.input, None).map_err(|e| PlanError::Command {
            index,
            command: command_name(&p.input),
            reason: e.message,
        })?;
    }
    Ok(state)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_name_and_version() {
        let s: DreamerSpec = "evidence@1".parse().unwrap();
        assert_eq!((s.name.as_str(), s.version.as_deref()), ("evidence", Some("1")));
        let s: DreamerSpec = "llm".parse().unwrap();
        assert_eq!(s.version, None);
        assert!("evidence@".parse::<DreamerSpec>().is_err());
        assert!("two words".parse::<DreamerSpec>().is_err());
    }

    #[test]
    fn a_plan_is_checked_command_by_command() {
        let base = MemoryState::from_files([("/memories/a.md".to_string(), "x\n".to_string())]);
        let known = EventId::of(b"grade");
        let mut ok = vec![Planned {
            input: MemoryCommand::StrReplace {
                path: "/memories/a.md".into(),
                old_str: "x".into(),
                new_str: "y".into(),
            },
            causes: vec![known, known],
        }];
        let after = check_plan(&base, &mut ok, |c| *c == known).unwrap();
        assert_eq!(after.file("/memories/a.md").unwrap().text.as_ref(), "y\n");
        assert_eq!(ok[0].causes, vec![known], "duplicate causes are dropped");
        let mut bad =
            vec![Planned { input: MemoryCommand::Delete { path: "/memories/nope.md".into() }, causes: vec![] }];
        assert!(matches!(check_plan(&base, &mut bad, |_| true), Err(PlanError::Command { index: 0, .. })));
        let mut unknown = vec![Planned {
            input: MemoryCommand::Create { path: "/memories/b.md".into(), file_text: "b".into() },
            causes: vec![EventId::of(b"other")],
        }];
        assert!(matches!(check_plan(&base, &mut unknown, |c| *c == known), Err(PlanError::UnknownCause { .. })));
    }
}
