//! Within-task contrasts: what a behaviour is worth, measured only where it can be.
//!
//! Comparing sessions across tasks lets task difficulty pass for the effect of a tool (a
//! tool that hard tasks need looks harmful; a hand-over that ends tasks which then check
//! nothing looks helpful). Here the sessions of one task are a stratum: a tool's effect
//! is estimated only inside tasks where some trials called it and some did not, with the
//! exact stratified test (`stats::stratified_exact`), and the p-values of every tool
//! tested together are corrected for multiple comparisons (Benjamini–Hochberg). What the
//! graders recorded (expected calls) is kept beside each contrast: a call the graders
//! expected is never evidence against itself. Pure: the evidence dreamer v2 (issue 13)
//! builds its lessons on this.

use std::collections::{BTreeMap, BTreeSet};

use super::dream::SessionInput;
use super::stats::{benjamini_hochberg, stratified_exact, StratifiedTest, Stratum};
use super::{ActionStatus, Grade, GradeResult};

/// One tool's contrast over the tasks of a set of sessions.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolContrast {
    /// The tool.
    pub tool: String,
    /// Per task that has trials with and without the tool: its 2×2 counts.
    pub strata: Vec<(String, Stratum)>,
    /// The exact stratified test over those tasks.
    pub test: StratifiedTest,
    /// Benjamini–Hochberg q-value (two-sided) among every tool tested together.
    pub q: f64,
    /// Sessions that called the tool, and how many of those had it among the calls the
    /// graders expected.
    pub called: u64,
    /// Of `called`, sessions whose graders expected the call.
    pub expected_when_called: u64,
    /// Of `called`, sessions where the tool was the last call or came right after a
    /// failed call (a behaviour of runs that are already ending or failing).
    pub terminal_when_called: u64,
}

impl ToolContrast {
    /// Whether the graders expected the call in at least half of the sessions that made it.
    pub fn mostly_expected(&self) -> bool {
        self.called > 0 && 2 * self.expected_when_called >= self.called
    }
}

/// The calls a session's graders expected: τ-bench's `meta.actions[].name`, and τ²-bench's
/// `action:NAME` checks.
pub fn expected_calls(s: &SessionInput) -> BTreeSet<String> {
    let Some(g) = s.grade() else { return BTreeSet::new() };
    let mut out = expected_in_meta(&g.body);
    for c in &g.body.criteria {
        if let Some(name) = c.name.strip_prefix("action:") {
            out.insert(name.to_owned());
        }
    }
    out
}

/// The calls a grade's metadata lists as expected (τ-bench's `actions[].name`).
pub fn expected_in_meta(g: &Grade) -> BTreeSet<String> {
    g.meta
        .as_ref()
        .and_then(|m| m.to_value().get("actions").and_then(|a| a.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .collect()
}

/// The stratum (task) of a session: its task id, else the session itself (one trial: no
/// contrast possible).
pub fn task_of(s: &SessionInput) -> String {
    s.task_id().map(str::to_owned).unwrap_or_else(|| format!("session:{}", s.session))
}

/// Every tool called in `sessions` (graded ones), with its within-task contrast; sorted
/// by q-value, then name.
pub fn tool_contrasts(sessions: &[&SessionInput]) -> Vec<ToolContrast> {
    struct Trial<'a> {
        passed: bool,
        tools: BTreeSet<&'a str>,
        terminal: BTreeSet<&'a str>,
        expected: BTreeSet<String>,
    }
    let mut tasks: BTreeMap<String, Vec<Trial<'_>>> = BTreeMap::new();
    let mut all: BTreeSet<&str> = BTreeSet::new();
    for s in sessions {
        let Some(g) = s.grade() else { continue };
        let tools: BTreeSet<&str> = s.actions.iter().map(|a| a.body.name.as_str()).collect();
        let mut terminal: BTreeSet<&str> = BTreeSet::new();
        if let Some(last) = s.actions.last() {
            terminal.insert(last.body.name.as_str());
        }
        for pair in s.actions.windows(2) {
            if pair[0].body.status == ActionStatus::Error {
                terminal.insert(pair[1].body.name.as_str());
            }
        }
        all.extend(tools.iter().copied());
        let trial =
            Trial { passed: g.body.result == GradeResult::Satisfied, tools, terminal, expected: expected_calls(s) };
        tasks.entry(task_of(s)).or_default().push(trial);
    }
    let mut out: Vec<ToolContrast> = all
        .into_iter()
        .map(|tool| {
            let mut strata = Vec::new();
            let (mut called, mut expected, mut terminal) = (0, 0, 0);
            for (task, trials) in &tasks {
                let mut st = Stratum::default();
                for t in trials {
                    if t.tools.contains(tool) {
                        st.exposed += 1;
                        st.exposed_passed += u64::from(t.passed);
                        called += 1;
                        expected += u64::from(t.expected.contains(tool));
                        terminal += u64::from(t.terminal.contains(tool));
                    } else {
                        st.unexposed += 1;
                        st.unexposed_passed += u64::from(t.passed);
                    }
                }
                if st.is_informative() {
                    strata.push((task.clone(), st));
                }
            }
            let test = stratified_exact(&strata.iter().map(|(_, s)| *s).collect::<Vec<_>>());
            ToolContrast {
                tool: tool.to_owned(),
                strata,
                test,
                q: 1.0,
                called,
                expected_when_called: expected,
                terminal_when_called: terminal,
            }
        })
        .collect();
    let q = benjamini_hochberg(&out.iter().map(|c| c.test.p_two_sided).collect::<Vec<_>>());
    for (c, q) in out.iter_mut().zip(q) {
        c.q = q;
    }
    out.sort_by(|a, b| a.q.total_cmp(&b.q).then_with(|| a.tool.cmp(&b.tool)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::dream::Evidence;
    use crate::core::{Action, CanonicalJson, EventId, SessionStart};

    fn session(task: &str, trial: usize, tools: &[&str], passed: bool) -> SessionInput {
        let id = format!("{task}/trial-{trial}");
        let ev = |n: u8| EventId([n; 32]);
        SessionInput {
            session: id.clone(),
            start: Some(Evidence {
                id: ev(1),
                position: 0,
                body: SessionStart {
                    session: id.clone(),
                    agent: "a".into(),
                    model: None,
                    task_id: Some(task.into()),
                    task: None,
                    store: None,
                    memory_state: None,
                    source: None,
                    meta: None,
                },
            }),
            actions: tools
                .iter()
                .map(|t| Evidence {
                    id: ev(2),
                    position: 1,
                    body: Action {
                        session: id.clone(),
                        name: (*t).into(),
                        call_id: None,
                        input: CanonicalJson::null(),
                        output: None,
                        status: ActionStatus::Ok,
                        meta: None,
                    },
                })
                .collect(),
            grades: vec![Evidence {
                id: ev(3),
                position: 2,
                body: Grade {
                    session: id,
                    target: None,
                    rubric: "r".into(),
                    evaluator: "e".into(),
                    score: if passed { 1.0 } else { 0.0 },
                    result: if passed { GradeResult::Satisfied } else { GradeResult::Failed },
                    criteria: Vec::new(),
                    meta: None,
                },
            }],
            end: None,
        }
    }

    #[test]
    fn a_tool_that_only_hard_tasks_use_is_not_judged_across_tasks() {
        // Hard tasks need `book` and fail; easy ones do not and pass: no task has a
        // contrast, so nothing is said about `book`. `verify` helps within every task.
        let mut all = Vec::new();
        for t in 0..4 {
            all.push(session(&format!("hard-{t}"), 0, &["book", "verify"], false));
            all.push(session(&format!("hard-{t}"), 1, &["book", "verify"], false));
            all.push(session(&format!("easy-{t}"), 0, &["verify"], true));
            all.push(session(&format!("easy-{t}"), 1, &["lookup"], false));
        }
        let refs: Vec<&SessionInput> = all.iter().collect();
        let c = tool_contrasts(&refs);
        let book = c.iter().find(|c| c.tool == "book").expect("book tested");
        assert_eq!((book.test.informative, book.test.p_two_sided), (0, 1.0));
        let verify = c.iter().find(|c| c.tool == "verify").expect("verify tested");
        assert_eq!(verify.strata.len(), 4, "the easy tasks contrast it");
        assert!(verify.test.p_greater < 0.1 && verify.test.observed == 4, "{verify:?}");
        assert_eq!(c[0].tool, "lookup", "sorted by q: lookup and verify are the two sides of the same contrast");
    }
}
