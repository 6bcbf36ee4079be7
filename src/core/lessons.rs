//! Which lessons the graded history supports, and why each other one is not written: the
//! decisions of the evidence dreamer v2 (issue 13), pure and explainable. Nothing here
//! writes memory; the dreamer renders the candidates marked `Write`.
//!
//! - **Tool lessons** come only from within-task contrasts (`core::contrast`): the exact
//!   stratified test over tasks with trials on both sides, Benjamini–Hochberg over every
//!   tool of the dream, support counted in tasks. A call the graders expected in most
//!   sessions that made it is never advised against, and a call that ends runs (the last
//!   one, or right after a failed call) is not taken as evidence either way.
//! - **Label lessons** come from what graders recorded: an expected call missing, a check
//!   failing — written when it happens in enough distinct tasks, not sessions, so the
//!   trials of one task are one piece of evidence.

use std::collections::{BTreeMap, BTreeSet};

use super::contrast::{expected_in_meta, task_of, tool_contrasts};
use super::dream::SessionInput;

/// What a lesson advises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    /// Call the tool (within tasks, trials that called it passed more).
    Call,
    /// Check before calling it (within tasks, trials that called it failed more).
    Avoid,
    /// Do not forget a call the graders expected (it was missing).
    Expected,
    /// A check the graders made keeps failing.
    Check,
}

/// Whether a candidate becomes a lesson, and if not, why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Written.
    Write,
    /// Not written, for this reason.
    Skip(String),
}

/// One candidate lesson with everything its decision rests on.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Candidate {
    /// The advice.
    pub advice: Advice,
    /// The tool or check.
    pub subject: String,
    /// Tasks that support it (tool lessons: tasks with a contrast; label lessons: tasks
    /// where the label failed).
    pub tasks: Vec<String>,
    /// Sessions behind it: for a tool, those that called it; for a label, those where it
    /// failed.
    pub sessions: u64,
    /// Out of: for a tool, sessions in its contrast tasks; for a label, sessions the
    /// graders checked it in.
    pub of: u64,
    /// Two-sided p-value of the stratified test (tool lessons).
    pub p: Option<f64>,
    /// Its Benjamini–Hochberg q-value among every tool of the dream.
    pub q: Option<f64>,
    /// Written or skipped, and why.
    pub decision: Decision,
}

/// The thresholds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LessonRules {
    /// Distinct tasks a lesson needs.
    pub min_tasks: usize,
    /// Largest false discovery rate (q-value) of a tool lesson.
    pub max_q: f64,
    /// A label lesson needs its label to fail in at least this share of the sessions it
    /// was checked in.
    pub fail_rate: f64,
}

impl Default for LessonRules {
    fn default() -> LessonRules {
        LessonRules { min_tasks: 3, max_q: 0.1, fail_rate: 0.5 }
    }
}

/// The candidates of one family's graded sessions, each with its decision: tool lessons
/// first (by q), then label lessons (by tasks, then name).
pub fn candidates(sessions: &[&SessionInput], rules: &LessonRules) -> Vec<Candidate> {
    let mut out = Vec::new();
    for c in tool_contrasts(sessions) {
        let advice = if c.test.p_greater <= c.test.p_less { Advice::Call } else { Advice::Avoid };
        let of = c.strata.iter().map(|(_, s)| s.exposed + s.unexposed).sum();
        let exposed: u64 = c.strata.iter().map(|(_, s)| s.exposed).sum();
        let decision = if c.test.informative == 0 {
            Decision::Skip("no task has trials both with and without it".into())
        } else if c.test.informative < rules.min_tasks {
            Decision::Skip(format!("only {} task(s) have trials with and without it", c.test.informative))
        } else if c.q > rules.max_q {
            Decision::Skip(format!("within tasks the difference may be chance (q = {:.2} > {})", c.q, rules.max_q))
        } else if advice == Advice::Avoid && c.mostly_expected() {
            Decision::Skip(format!(
                "the graders expected it in {} of the {} sessions that called it",
                c.expected_when_called, c.called
            ))
        } else if 2 * c.terminal_when_called >= c.called {
            Decision::Skip(format!(
                "it ended the run or followed a failed call in {} of {} sessions: a behaviour of runs already ending",
                c.terminal_when_called, c.called
            ))
        } else {
            Decision::Write
        };
        out.push(Candidate {
            advice,
            subject: c.tool,
            tasks: c.strata.iter().map(|(t, _)| t.clone()).collect(),
            sessions: exposed,
            of,
            p: Some(c.test.p_two_sided),
            q: Some(c.q),
            decision,
        });
    }
    // Labels: per label, the tasks and sessions it was checked in and failed in.
    #[derive(Default)]
    struct Label {
        checked: u64,
        failed: u64,
        tasks: BTreeSet<String>,
    }
    let mut labels: BTreeMap<(Advice, String), Label> = BTreeMap::new();
    for s in sessions {
        let Some(g) = s.grade() else { continue };
        let task = task_of(s);
        let called: BTreeSet<&str> = s.actions.iter().map(|a| a.body.name.as_str()).collect();
        // An expected call failed when it is missing (τ-bench lists the expected calls) or
        // its check failed (τ²-bench checks each expected call, arguments included).
        let mut expected: BTreeMap<String, bool> = BTreeMap::new();
        for name in expected_in_meta(&g.body) {
            let missed = !called.contains(name.as_str());
            *expected.entry(name).or_default() |= missed;
        }
        let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
        for c in &g.body.criteria {
            let failed = c.passed == Some(false) || (c.passed.is_none() && c.score.is_some_and(|x| x < 1.0));
            match c.name.strip_prefix("action:") {
                Some(name) => *expected.entry(name.to_owned()).or_default() |= failed,
                None => *seen.entry(c.name.as_str()).or_default() |= failed,
            }
        }
        for (name, failed) in expected {
            let l = labels.entry((Advice::Expected, name)).or_default();
            l.checked += 1;
            if failed {
                l.failed += 1;
                l.tasks.insert(task.clone());
            }
        }
        for (name, failed) in seen {
            let l = labels.entry((Advice::Check, name.to_owned())).or_default();
            l.checked += 1;
            if failed {
                l.failed += 1;
                l.tasks.insert(task.clone());
            }
        }
    }
    let mut label_out: Vec<Candidate> = labels
        .into_iter()
        .filter(|(_, l)| l.failed > 0)
        .map(|((advice, subject), l)| {
            let rate = l.failed as f64 / l.checked as f64;
            let decision = if l.tasks.len() < rules.min_tasks {
                Decision::Skip(format!("it failed in {} task(s) only", l.tasks.len()))
            } else if rate < rules.fail_rate {
                Decision::Skip(format!("it failed in {} of {} sessions ({:.0}%)", l.failed, l.checked, rate * 100.0))
            } else {
                Decision::Write
            };
            Candidate {
                advice,
                subject,
                tasks: l.tasks.into_iter().collect(),
                sessions: l.failed,
                of: l.checked,
                p: None,
                q: None,
                decision,
            }
        })
        .collect();
    label_out.sort_by(|a, b| b.tasks.len().cmp(&a.tasks.len()).then_with(|| a.subject.cmp(&b.subject)));
    out.extend(label_out);
    out
}
