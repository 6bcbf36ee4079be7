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

use crate::dream::Trial;
use crate::stats::{benjamini_hochberg, stratified_test, StratifiedTest, Stratum};

/// One tool's contrast over the tasks of a set of trials.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolContrast {
    /// The tool.
    pub tool: String,
    /// Per task that has trials with and without the tool: its 2×2 counts.
    pub strata: Vec<(String, Stratum)>,
    /// The stratified test over those tasks.
    pub test: StratifiedTest,
    /// Benjamini–Hochberg q-value (two-sided) among every tool tested together.
    pub q: f64,
    /// Sessions that called the tool.
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

/// The calls of a trial that came at the end of its run: the last one, and any right
/// after a failed call.
pub fn terminal_calls(t: &Trial) -> BTreeSet<&str> {
    let mut out: BTreeSet<&str> = BTreeSet::new();
    if let Some(last) = t.calls.last() {
        out.insert(last.name.as_str());
    }
    for pair in t.calls.windows(2) {
        if pair[0].failed {
            out.insert(pair[1].name.as_str());
        }
    }
    out
}

/// Every tool called in `trials`, with its within-task contrast; sorted by q-value, then
/// name.
pub fn tool_contrasts(trials: &[&Trial]) -> Vec<ToolContrast> {
    struct Row<'a> {
        passed: bool,
        tools: BTreeSet<&'a str>,
        terminal: BTreeSet<&'a str>,
        expected: BTreeSet<&'a str>,
    }
    let mut tasks: BTreeMap<String, Vec<Row<'_>>> = BTreeMap::new();
    let mut all: BTreeSet<&str> = BTreeSet::new();
    for t in trials {
        let tools: BTreeSet<&str> = t.calls.iter().map(|c| c.name.as_str()).collect();
        all.extend(tools.iter().copied());
        let row = Row {
            passed: t.passed,
            tools,
            terminal: terminal_calls(t),
            expected: t.expected.iter().map(String::as_str).collect(),
        };
        tasks.entry(t.task_key()).or_default().push(row);
    }
    let mut out: Vec<ToolContrast> = all
        .into_iter()
        .map(|tool| {
            let mut strata = Vec::new();
            let (mut called, mut expected, mut terminal) = (0, 0, 0);
            for (task, rows) in &tasks {
                let mut st = Stratum::default();
                for r in rows {
                    if r.tools.contains(tool) {
                        st.exposed += 1;
                        st.exposed_passed += u64::from(r.passed);
                        called += 1;
                        expected += u64::from(r.expected.contains(tool));
                        terminal += u64::from(r.terminal.contains(tool));
                    } else {
                        st.unexposed += 1;
                        st.unexposed_passed += u64::from(r.passed);
                    }
                }
                if st.is_informative() {
                    strata.push((task.clone(), st));
                }
            }
            let test = stratified_test(&strata.iter().map(|(_, s)| *s).collect::<Vec<_>>());
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
    use crate::dream::{Evidence, SessionInput, Sources};
    use crate::{Action, ActionStatus, CanonicalJson, EventId, Grade, GradeResult, SessionStart};

    fn session(task: &str, trial: usize, tools: &[&str], passed: bool) -> Trial {
        let id = format!("{task}/trial-{trial}");
        let ev = |n: u8| EventId([n; 32]);
        let s = SessionInput {
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
        };
        Trial::of(&s, Sources::default()).expect("graded")
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
        let refs: Vec<&Trial> = all.iter().collect();
        let c = tool_contrasts(&refs);
        let book = c.iter().find(|c| c.tool == "book").expect("book tested");
        assert_eq!((book.test.informative, book.test.p_two_sided), (0, 1.0));
        let verify = c.iter().find(|c| c.tool == "verify").expect("verify tested");
        assert_eq!(verify.strata.len(), 4, "the easy tasks contrast it");
        assert!(verify.test.p_greater < 0.1 && verify.test.observed == 4, "{verify:?}");
        assert_eq!(c[0].tool, "lookup", "sorted by q: lookup and verify are the two sides of the same contrast");
    }
}
