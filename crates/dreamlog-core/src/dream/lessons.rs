//! Which lessons the graded history supports, and why each other one is not written: the
//! decisions of the evidence dreamer v2, pure and explainable. Nothing here writes
//! memory; `core::dream::evidence` renders the candidates marked `Write`.
//!
//! - **Tool lessons** come only from within-task contrasts (`core::dream::contrast`): the
//!   stratified test over tasks with trials on both sides, Benjamini–Hochberg over every
//!   tool of the family, support counted in tasks. A call the graders expected in most
//!   sessions that made it is never advised against, and a call that ends runs (the last
//!   one, or right after a failed call) is not taken as evidence either way.
//! - **Label lessons** come from what graders recorded: an expected call missing or
//!   failing its check, a check failing — written when it happens in enough distinct
//!   tasks, not sessions, so the trials of one task are one piece of evidence.
//! - **Robustness**: a lesson must still be written without each of its sources (each
//!   agent, importer file and grader, where the family has more than one, strongest
//!   first; a source holding most of the family is exempt, as without it nothing is left
//!   to judge) and without the most supportive tenth of its tasks (a jackknife over
//!   tasks): a few crafted sessions cannot become a lesson.
//! - **Validation**: [`validate`] splits the tasks into K folds, learns on K−1 and
//!   measures on the held-out fold whether trials that followed each lesson did better
//!   than trials of the same task that did not.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dream::contrast::tool_contrasts;
use crate::dream::{Sources, Trial};
use crate::hash::{Digest, EventId};
use crate::stats::{mh_risk_difference, RiskDifference, Stratum};

/// What a lesson advises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    /// Call the tool (within tasks, trials that called it passed more).
    Call,
    /// Check before calling it (within tasks, trials that called it failed more).
    Avoid,
    /// Do not forget a call the graders expected (it was missing or failed its check).
    Expected,
    /// A check the graders made keeps failing.
    Check,
}

impl Advice {
    /// The word in a lesson's tag.
    pub fn tag(self) -> &'static str {
        match self {
            Advice::Call => "call",
            Advice::Avoid => "avoid",
            Advice::Expected => "expected",
            Advice::Check => "check",
        }
    }

    /// The advice of a tag word.
    pub fn from_tag(s: &str) -> Option<Advice> {
        [Advice::Call, Advice::Avoid, Advice::Expected, Advice::Check].into_iter().find(|a| a.tag() == s)
    }
}

/// Whether a candidate becomes a lesson, and if not, why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Written.
    Write,
    /// Not written, for this reason.
    Skip(String),
}

/// One task's counts behind a tool lesson.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StratumRow {
    /// The task.
    pub task: String,
    /// Trials that called the tool, and of those passed.
    pub with: (u64, u64),
    /// Trials that did not, and of those passed.
    pub without: (u64, u64),
}

/// The test behind a tool lesson.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    /// `exact` or `cmh`.
    pub method: String,
    /// Passes among trials that called it, in tasks with a contrast.
    pub observed: u64,
    /// Their expectation under no effect.
    pub expected: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Benjamini–Hochberg q-value among every tool of the family.
    pub q: f64,
}

/// A trial named in a lesson: its task, its trial, whether it passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    /// Task id (or `session:ID`).
    pub task: String,
    /// Trial label (the session id's `trial-N`, else the session id).
    pub trial: String,
    /// It passed.
    pub passed: bool,
}

/// How a lesson fared out of sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Folds (K).
    pub folds: u32,
    /// Folds that held tasks out (with fewer tasks than K, or by chance, some hold none).
    pub held_out_folds: u32,
    /// Folds whose training part (the other K−1) wrote the lesson.
    pub learned_in: u32,
    /// Held-out tasks (of folds that learned it) with trials that followed the advice and
    /// trials that did not.
    pub tasks: usize,
    /// Held-out trials in those tasks, and of those, how many followed the advice.
    pub sessions: u64,
    /// Of `sessions`, followed the advice.
    pub followed: u64,
    /// Pass rate of followers minus non-followers within held-out tasks, with its 95 %
    /// interval; `None` when no held-out task has both.
    pub lift: Option<RiskDifference>,
    /// `positive` (interval above zero), `inconclusive` (it includes zero), `negative`
    /// (below zero), `untested` (no held-out task to measure on, or never learned
    /// out of sample), `not_observable` (the advice is not a behaviour one can see).
    pub verdict: String,
}

impl Validation {
    /// The 95 % interval's upper bound is below zero.
    pub fn is_negative(&self) -> bool {
        self.verdict == "negative"
    }
}

/// One candidate lesson with everything its decision rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The advice.
    pub advice: Advice,
    /// The tool or check.
    pub subject: String,
    /// Stable key: family, advice and subject.
    pub key: String,
    /// The lesson was already in memory (judged by the lower thresholds that retire one).
    pub existing: bool,
    /// Tasks that support it (tool lessons: tasks with a contrast; label lessons: tasks
    /// where the label failed); a recorded candidate keeps [`RECORDED`] of them and
    /// `tasks_total` counts them all.
    pub tasks: Vec<String>,
    /// All supporting tasks.
    pub tasks_total: usize,
    /// Sessions behind it: for a tool, those that called it in contrast tasks (passes in
    /// `passed_with`); for a label, those where it failed.
    pub sessions: u64,
    /// Out of: for a tool, sessions in its contrast tasks; for a label, sessions the
    /// graders checked it in.
    pub of: u64,
    /// Tool lessons: passes with and without the tool in contrast tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<((u64, u64), (u64, u64))>,
    /// Tool lessons: per task (a recorded candidate keeps [`RECORDED`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strata: Vec<StratumRow>,
    /// Tool lessons: the test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestRecord>,
    /// Distinct sources of the supporting trials, per dimension (`agent`, `origin`,
    /// `grader`) with how many trials each gave.
    pub sources: BTreeMap<String, BTreeMap<String, u64>>,
    /// Words the supporting tasks share and the family's other tasks mostly lack: when
    /// the lesson applies.
    pub condition: Vec<String>,
    /// Trials named in the lesson.
    pub examples: Vec<Example>,
    /// Grades cited (the supporting trials').
    #[serde(skip)]
    pub causes: Vec<EventId>,
    /// Written or skipped, and why.
    pub decision: Decision,
    /// Out-of-sample validation, when run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

/// Lists of tasks and strata in a recorded candidate are cut at this many.
pub const RECORDED: usize = 50;

impl Candidate {
    /// A candidate with its decision and counts, nothing else filled in yet.
    #[allow(clippy::too_many_arguments)]
    fn bare(
        advice: Advice,
        subject: String,
        key: String,
        existing: bool,
        tasks: Vec<String>,
        sessions: u64,
        of: u64,
        decision: Decision,
    ) -> Candidate {
        Candidate {
            advice,
            subject,
            key,
            existing,
            tasks_total: tasks.len(),
            tasks,
            sessions,
            of,
            passes: None,
            strata: Vec::new(),
            test: None,
            sources: BTreeMap::new(),
            condition: Vec::new(),
            examples: Vec::new(),
            causes: Vec::new(),
            decision,
            validation: None,
        }
    }

    /// The form recorded in a dream event: task and stratum lists cut at [`RECORDED`].
    pub fn recorded(&self) -> Candidate {
        let mut c = self.clone();
        c.tasks.truncate(RECORDED);
        c.strata.truncate(RECORDED);
        c
    }
}

/// The thresholds. Every field has a default; recorded in full in the dream event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LessonRules {
    /// Distinct tasks a lesson needs.
    pub min_tasks: usize,
    /// Largest false discovery rate (q-value) of a new tool lesson…
    pub max_q: f64,
    /// …and of one already in memory (above it the lesson is retired).
    pub retire_q: f64,
    /// A new label lesson needs its label to fail in at least this share of the sessions
    /// it was checked in…
    pub fail_rate: f64,
    /// …and one already in memory at least this share.
    pub retire_fail_rate: f64,
    /// Leave out each source (agent, importer file, grader) and the most supportive tenth
    /// of the tasks (this share): the lesson must still hold.
    pub robust: bool,
    /// The share of supporting tasks the jackknife leaves out, rounded (so it starts at
    /// five supporting tasks with the default tenth).
    pub jackknife: f64,
    /// Examples named per lesson.
    pub examples: usize,
    /// Grades cited per lesson.
    pub max_causes: usize,
    /// How grades are read (set by the dreamer's version, not configured).
    #[serde(skip)]
    pub reading: Reading,
}

/// How the graders' labels are read: evidence@2's way, kept so its recorded dreams replay
/// bit for bit, or evidence@3's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reading {
    /// Every criterion counts, and a check's failure rate is a lesson.
    #[default]
    V2,
    /// A criterion outside its grade's reward basis is a diagnostic: never a failure in a
    /// session that passed (its reward did not rest on it), the named cause in one that
    /// failed. A check whose failure says nothing an agent can do (`db_check`, a reward
    /// component, an environment assertion) is not a lesson; nor is one every cited
    /// session of which passed.
    V3,
}

/// A check an agent can act on: a requirement in words (`nl:`), information to give the
/// user (`communicate:`), a call to guide the user through (`user_action:`).
pub fn is_actionable_check(name: &str) -> bool {
    ["nl:", "communicate:", "user_action:"].iter().any(|p| name.starts_with(p))
}

impl Default for LessonRules {
    fn default() -> LessonRules {
        LessonRules {
            min_tasks: 3,
            max_q: 0.1,
            retire_q: 0.2,
            fail_rate: 0.25,
            retire_fail_rate: 0.15,
            robust: true,
            jackknife: 0.1,
            examples: 3,
            max_causes: 64,
            reading: Reading::V2,
        }
    }
}

/// The stable key of a lesson of `family`.
pub fn key_of(family: &str, advice: Advice, subject: &str) -> String {
    Digest::of(format!("evidence@2\n{family}\n{}\n{subject}", advice.tag()).as_bytes()).short(8)
}

/// A trial's label in lesson text: the session id's `trial-N` (τ-bench, τ²-bench), else
/// the session's last path segment.
pub fn trial_label(t: &Trial) -> String {
    let last = t.session.rsplit('/').next().unwrap_or(&t.session);
    match last.strip_prefix("trial-") {
        Some(n) => n.to_owned(),
        None => last.to_owned(),
    }
}

fn is_failed_label(t: &Trial, name: &str) -> Option<bool> {
    t.labels.iter().find(|l| l.name == name).map(|l| l.failed)
}

/// The candidates of one family's graded trials, each with its decision: tool lessons
/// first (by q), then label lessons (by tasks, then name). `existing` holds the keys of
/// the family's lessons already in memory. With `rules.robust`, every lesson that would
/// be written is checked without each source and without its strongest tasks.
pub fn candidates(
    family: &str,
    trials: &[&Trial],
    tasks: &BTreeMap<String, String>,
    rules: &LessonRules,
    existing: &BTreeSet<String>,
) -> Vec<Candidate> {
    let mut out = decide(family, trials, rules, existing);
    if rules.robust {
        let fragile: Vec<Option<String>> = out
            .iter()
            .map(|c| (c.decision == Decision::Write).then(|| fragile(family, trials, rules, existing, c)).flatten())
            .collect();
        for (c, why) in out.iter_mut().zip(fragile) {
            if let Some(why) = why {
                c.decision = Decision::Skip(why);
            }
        }
    }
    for c in &mut out {
        c.condition = condition_words(trials, tasks, c, rules.reading);
    }
    out
}

/// The trials behind a candidate: for "call", trials that called it and passed and
/// trials that did not and failed, in its contrast tasks (the reverse for "avoid"); for a
/// label, the trials where it failed.
fn supporting<'a>(c: &Candidate, trials: &[&'a Trial], reading: Reading) -> Vec<&'a Trial> {
    let contrast: BTreeSet<&str> = c.strata.iter().map(|s| s.task.as_str()).collect();
    trials
        .iter()
        .copied()
        .filter(|t| match c.advice {
            Advice::Call | Advice::Avoid => {
                contrast.contains(t.task_key().as_str())
                    && (t.called(&c.subject) == t.passed) == (c.advice == Advice::Call)
            }
            Advice::Expected => expected_failed_as(t, &c.subject, reading),
            Advice::Check => is_failed_label(t, &c.subject) == Some(true) && diagnostic_holds(t, &c.subject, reading),
        })
        .collect()
}

/// An expected call that a trial missed (τ-bench lists the expected calls) or whose check
/// failed (τ²-bench checks each expected call, arguments included).
fn expected_failed(t: &Trial, name: &str) -> bool {
    if !t.expected.iter().any(|e| e == name) {
        return false;
    }
    match is_failed_label(t, &format!("action:{name}")) {
        Some(failed) => failed,
        None => !t.called(name),
    }
}

/// An expected call `t` missed or got wrong, as `reading` counts it: evidence@3 takes a
/// call check outside the reward basis as a diagnostic — a failure only in a session
/// whose reward failed, never in one that passed.
fn expected_failed_as(t: &Trial, name: &str, reading: Reading) -> bool {
    expected_failed(t, name) && diagnostic_holds(t, &format!("action:{name}"), reading)
}

/// Whether a failed label of `t` counts as a failure under `reading`: always for
/// evidence@2; for evidence@3, when its check is within the grade's reward basis or the
/// session failed (the label loop of `decide` reads the same off the label it holds).
fn diagnostic_holds(t: &Trial, label: &str, reading: Reading) -> bool {
    reading == Reading::V2 || !t.passed || !t.labels.iter().any(|l| l.name == label && l.outside_reward)
}

/// The decisions before the robustness checks.
fn decide(family: &str, trials: &[&Trial], rules: &LessonRules, existing: &BTreeSet<String>) -> Vec<Candidate> {
    let mut out = Vec::new();
    for c in tool_contrasts(trials) {
        let advice = if c.test.p_greater <= c.test.p_less { Advice::Call } else { Advice::Avoid };
        let key = key_of(family, advice, &c.tool);
        let was = existing.contains(&key);
        let max_q = if was { rules.retire_q } else { rules.max_q };
        let (mut with, mut without) = ((0, 0), (0, 0));
        for (_, s) in &c.strata {
            with = (with.0 + s.exposed, with.1 + s.exposed_passed);
            without = (without.0 + s.unexposed, without.1 + s.unexposed_passed);
        }
        let decision = if c.test.informative == 0 {
            Decision::Skip("no task has trials both with and without it".into())
        } else if c.test.informative < rules.min_tasks {
            Decision::Skip(format!("only {} task(s) have trials with and without it", c.test.informative))
        } else if c.q > max_q {
            Decision::Skip(format!("within tasks the difference may be chance (q = {:.2} > {max_q})", c.q))
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
        let mut strata: Vec<StratumRow> = c
            .strata
            .iter()
            .map(|(task, s)| StratumRow {
                task: task.clone(),
                with: (s.exposed, s.exposed_passed),
                without: (s.unexposed, s.unexposed_passed),
            })
            .collect();
        strata.sort_by(|a, b| natural_cmp(&a.task, &b.task));
        let tasks = strata.iter().map(|s| s.task.clone()).collect();
        let mut cand = Candidate {
            passes: Some((with, without)),
            strata,
            test: Some(TestRecord {
                method: c.test.method.to_owned(),
                observed: c.test.observed,
                expected: c.test.expected,
                p: c.test.p_two_sided,
                q: c.q,
            }),
            ..Candidate::bare(advice, c.tool.clone(), key, was, tasks, with.0, with.0 + without.0, decision)
        };
        finish(&mut cand, trials, rules);
        only_passes(&mut cand, trials, rules);
        out.push(cand);
    }
    // Labels: per label, the sessions it was checked in and the tasks it failed in.
    #[derive(Default)]
    struct Label {
        checked: u64,
        failed: u64,
        tasks: BTreeSet<String>,
    }
    let mut labels: BTreeMap<(Advice, String), Label> = BTreeMap::new();
    let v3 = rules.reading == Reading::V3;
    for t in trials {
        let task = t.task_key();
        for name in &t.expected {
            let l = labels.entry((Advice::Expected, name.clone())).or_default();
            l.checked += 1;
            if expected_failed_as(t, name, rules.reading) {
                l.failed += 1;
                l.tasks.insert(task.clone());
            }
        }
        for label in t.labels.iter().filter(|l| !l.name.starts_with("action:")) {
            let l = labels.entry((Advice::Check, label.name.clone())).or_default();
            l.checked += 1;
            if label.failed && (!v3 || !t.passed || !label.outside_reward) {
                l.failed += 1;
                l.tasks.insert(task.clone());
            }
        }
    }
    let mut label_out: Vec<Candidate> = labels
        .into_iter()
        .filter(|(_, l)| l.failed > 0)
        .map(|((advice, subject), l)| {
            let key = key_of(family, advice, &subject);
            let was = existing.contains(&key);
            let threshold = if was { rules.retire_fail_rate } else { rules.fail_rate };
            let rate = l.failed as f64 / l.checked as f64;
            let decision = if v3 && advice == Advice::Check && !is_actionable_check(&subject) {
                Decision::Skip(format!(
                    "a check's failure rate is not advice ({} of {} sessions): it does not say what the failing sessions did differently",
                    l.failed, l.checked
                ))
            } else if l.tasks.len() < rules.min_tasks {
                Decision::Skip(format!("it failed in {} task(s) only", l.tasks.len()))
            } else if rate < threshold {
                Decision::Skip(format!("it failed in {} of {} sessions ({:.0}%)", l.failed, l.checked, rate * 100.0))
            } else {
                Decision::Write
            };
            let mut tasks: Vec<String> = l.tasks.into_iter().collect();
            tasks.sort_by(|a, b| natural_cmp(a, b));
            let mut cand = Candidate::bare(advice, subject, key, was, tasks, l.failed, l.checked, decision);
            finish(&mut cand, trials, rules);
            only_passes(&mut cand, trials, rules);
            cand
        })
        .collect();
    label_out.sort_by(|a, b| b.tasks_total.cmp(&a.tasks_total).then_with(|| a.subject.cmp(&b.subject)));
    out.extend(label_out);
    out
}

/// evidence@3: a lesson every cited session of which passed is not written — passing
/// sessions are no evidence of a failure to avoid.
fn only_passes(c: &mut Candidate, trials: &[&Trial], rules: &LessonRules) {
    if rules.reading == Reading::V3 && c.decision == Decision::Write {
        let support = supporting(c, trials, rules.reading);
        if support.iter().all(|t| t.passed) {
            c.decision = Decision::Skip(format!(
                "every session it cites passed ({}): no evidence that anything failed",
                support.len()
            ));
        }
    }
}

/// Fills in a candidate's sources, examples and causes from its supporting trials.
fn finish(c: &mut Candidate, trials: &[&Trial], rules: &LessonRules) {
    let support = supporting(c, trials, rules.reading);
    for t in &support {
        for (dim, value) in source_values(&t.sources) {
            *c.sources.entry(dim.to_owned()).or_default().entry(value.to_owned()).or_default() += 1;
        }
        if c.causes.len() < rules.max_causes {
            c.causes.push(t.grade);
        }
    }
    // Examples from distinct tasks first.
    let mut seen = BTreeSet::new();
    for t in &support {
        if c.examples.len() >= rules.examples {
            break;
        }
        if seen.insert(t.task_key()) {
            c.examples.push(Example { task: t.task_key(), trial: trial_label(t), passed: t.passed });
        }
    }
}

fn source_values(s: &Sources) -> [(&'static str, &str); 3] {
    [("agent", s.agent.as_str()), ("origin", s.origin.as_str()), ("grader", s.grader.as_str())]
}

/// Why a lesson that would be written rests on too little: one source, or a few tasks.
fn fragile(
    family: &str,
    trials: &[&Trial],
    rules: &LessonRules,
    existing: &BTreeSet<String>,
    c: &Candidate,
) -> Option<String> {
    let still = |subset: &[&Trial]| -> Result<(), String> {
        match decide(family, subset, rules, existing)
            .into_iter()
            .find(|x| x.advice == c.advice && x.subject == c.subject)
        {
            Some(x) if x.decision == Decision::Write => Ok(()),
            Some(Candidate { decision: Decision::Skip(why), .. }) => Err(why),
            _ => Err("nothing left to judge it on".into()),
        }
    };
    // Leave out each source of each dimension that has more than one in the family.
    for dim in ["agent", "origin", "grader"] {
        let mut share: BTreeMap<&str, usize> = BTreeMap::new();
        for t in trials {
            let v = source_values(&t.sources).into_iter().find(|(d, _)| *d == dim).map(|(_, v)| v).unwrap_or("");
            *share.entry(v).or_default() += 1;
        }
        if share.len() < 2 {
            continue;
        }
        // Strongest first: the source with the most trials showing the behaviour (calling
        // the tool; failing the label).
        let mut backing: BTreeMap<&str, u64> = BTreeMap::new();
        for t in supporting(c, trials, rules.reading) {
            let shows = match c.advice {
                Advice::Call | Advice::Avoid => t.called(&c.subject),
                Advice::Expected | Advice::Check => true,
            };
            let v = source_values(&t.sources).into_iter().find(|(d, _)| *d == dim).map(|(_, v)| v).unwrap_or("");
            *backing.entry(v).or_default() += u64::from(shows);
        }
        let mut backing: Vec<(&str, u64)> = backing.into_iter().collect();
        backing.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        // A source holding most of the family is what the family is: without it nothing
        // is left to judge. Every other source must be one the lesson can do without.
        for (value, _) in backing.into_iter().filter(|(v, _)| 2 * share.get(v).copied().unwrap_or(0) <= trials.len()) {
            let subset: Vec<&Trial> = trials
                .iter()
                .copied()
                .filter(|t| source_values(&t.sources).iter().all(|(d, v)| *d != dim || *v != value))
                .collect();
            if let Err(why) = still(&subset) {
                return Some(format!(
                    "it rests on one source: without {dim} {value:?} it would not be written ({why})"
                ));
            }
        }
    }
    // The jackknife: leave out the most supportive tenth of its tasks.
    let mut weight: BTreeMap<String, f64> = BTreeMap::new();
    match c.advice {
        Advice::Call | Advice::Avoid => {
            let sign = if c.advice == Advice::Call { 1.0 } else { -1.0 };
            for s in &c.strata {
                let (n1, n0) = (s.with.0 as f64, s.without.0 as f64);
                let passed = (s.with.1 + s.without.1) as f64;
                let expected = n1 * passed / (n1 + n0);
                weight.insert(s.task.clone(), sign * (s.with.1 as f64 - expected));
            }
        }
        Advice::Expected | Advice::Check => {
            for t in supporting(c, trials, rules.reading) {
                *weight.entry(t.task_key()).or_default() += 1.0;
            }
        }
    }
    let mut order: Vec<(String, f64)> = weight.into_iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    // A tenth of 4 tasks is no whole task: the jackknife starts at 5 (half rounds up).
    let k = (c.tasks_total as f64 * rules.jackknife).round() as usize;
    if k == 0 {
        return None;
    }
    let drop: BTreeSet<&str> = order.iter().take(k).map(|(t, _)| t.as_str()).collect();
    let subset: Vec<&Trial> = trials.iter().copied().filter(|t| !drop.contains(t.task_key().as_str())).collect();
    if let Err(why) = still(&subset) {
        let names: Vec<&str> = drop.iter().copied().collect();
        return Some(format!(
            "it rests on a few tasks: without {} of its {} tasks ({}) it would not be written ({why})",
            drop.len(),
            c.tasks_total,
            names.join(", ")
        ));
    }
    None
}

const STOPWORDS: &[&str] = &[
    "about",
    "after",
    "again",
    "also",
    "always",
    "another",
    "anything",
    "because",
    "been",
    "before",
    "being",
    "both",
    "but",
    "call",
    "can",
    "could",
    "does",
    "doesn",
    "don't",
    "dont",
    "each",
    "either",
    "else",
    "even",
    "every",
    "first",
    "from",
    "have",
    "having",
    "here",
    "however",
    "into",
    "just",
    "know",
    "like",
    "make",
    "many",
    "more",
    "most",
    "much",
    "must",
    "need",
    "needs",
    "never",
    "next",
    "only",
    "other",
    "otherwise",
    "over",
    "please",
    "prefer",
    "really",
    "said",
    "same",
    "should",
    "since",
    "some",
    "still",
    "such",
    "sure",
    "than",
    "that",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "under",
    "until",
    "very",
    "want",
    "wants",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "will",
    "with",
    "would",
    "your",
    "yours",
    "you're",
    "user",
    "agent",
    "task",
    "tasks",
    "without",
    "within",
    "able",
    "cannot",
    "okay",
];

/// Orders task ids with their numbers as numbers (`2` before `10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x, y) {
            ((true, n), (true, m)) => n.len().cmp(&m.len()).then(n.cmp(m)),
            ((_, n), (_, m)) => n.cmp(m),
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len()).then(a.cmp(b))
}

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphabetic() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| w.chars().count() >= 4 && !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// Up to three words that most of the supporting tasks' texts contain and the family's
/// other tasks mostly do not (by the difference of the two shares, at least 0.25).
fn condition_words(
    trials: &[&Trial],
    tasks: &BTreeMap<String, String>,
    c: &Candidate,
    reading: Reading,
) -> Vec<String> {
    let all: BTreeSet<String> = trials.iter().filter_map(|t| t.task.clone()).collect();
    let support: BTreeSet<String> = supporting(c, trials, reading).iter().filter_map(|t| t.task.clone()).collect();
    let others: Vec<&String> = all.iter().filter(|t| !support.contains(*t)).collect();
    if support.is_empty() || others.is_empty() {
        return Vec::new();
    }
    let count = |set: &mut dyn Iterator<Item = &String>| -> (BTreeMap<String, usize>, usize) {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        let mut n = 0;
        for t in set {
            let Some(text) = tasks.get(t) else { continue };
            n += 1;
            for w in words(text) {
                *m.entry(w).or_default() += 1;
            }
        }
        (m, n)
    };
    let (inside, n_in) = count(&mut support.iter());
    let (outside, n_out) = count(&mut others.into_iter());
    if n_in == 0 || n_out == 0 {
        return Vec::new();
    }
    let mut scored: Vec<(f64, String)> = inside
        .into_iter()
        .filter_map(|(w, k)| {
            let share_in = k as f64 / n_in as f64;
            let share_out = outside.get(&w).copied().unwrap_or(0) as f64 / n_out as f64;
            (share_in >= 0.5 && share_in - share_out >= 0.25).then_some((share_in - share_out, w))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(3).map(|(_, w)| w).collect()
}

/// Whether a held-out trial followed a lesson's advice, when that can be seen: `None`
/// when the lesson does not apply to the trial (an expected call its graders did not
/// expect) or its advice is not a behaviour.
fn followed(advice: Advice, subject: &str, t: &Trial) -> Option<bool> {
    match advice {
        Advice::Call => Some(t.called(subject)),
        Advice::Avoid => Some(!t.called(subject)),
        Advice::Expected => t.expected.iter().any(|e| e == subject).then(|| t.called(subject)),
        Advice::Check => None,
    }
}

/// The fold (0..k) of a task: by the hash of its id, so folds do not depend on order.
pub fn fold_of(task: &str, k: u32) -> u32 {
    let d = Digest::of(task.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    (u64::from_le_bytes(b) % u64::from(k.max(1))) as u32
}

/// Out-of-sample validation by task: K folds; for each, lessons are learned (with every
/// rule, robustness included) on the other K−1 folds' trials and measured on its own.
/// Returns the folds that held tasks out, and per (advice, subject) of every lesson
/// learned in some fold its validation; lessons never learned out of sample are absent.
pub fn validate(
    family: &str,
    trials: &[&Trial],
    tasks: &BTreeMap<String, String>,
    rules: &LessonRules,
    existing: &BTreeSet<String>,
    k: u32,
) -> (u32, BTreeMap<(Advice, String), Validation>) {
    let mut strata: BTreeMap<(Advice, String), (u32, Vec<Stratum>)> = BTreeMap::new();
    let mut held_out_folds = 0;
    for f in 0..k {
        let (train, test): (Vec<&Trial>, Vec<&Trial>) =
            trials.iter().copied().partition(|t| fold_of(&t.task_key(), k) != f);
        if train.is_empty() || test.is_empty() {
            continue;
        }
        held_out_folds += 1;
        let learned = candidates(family, &train, tasks, rules, existing);
        for c in learned.into_iter().filter(|c| c.decision == Decision::Write) {
            let entry = strata.entry((c.advice, c.subject.clone())).or_default();
            entry.0 += 1;
            let mut by_task: BTreeMap<String, Stratum> = BTreeMap::new();
            for t in &test {
                let Some(yes) = followed(c.advice, &c.subject, t) else { continue };
                let s = by_task.entry(t.task_key()).or_default();
                if yes {
                    s.exposed += 1;
                    s.exposed_passed += u64::from(t.passed);
                } else {
                    s.unexposed += 1;
                    s.unexposed_passed += u64::from(t.passed);
                }
            }
            entry.1.extend(by_task.into_values());
        }
    }
    let out = strata
        .into_iter()
        .map(|((advice, subject), (learned_in, strata))| {
            let both: Vec<&Stratum> = strata.iter().filter(|s| s.exposed > 0 && s.unexposed > 0).collect();
            let lift = mh_risk_difference(&strata);
            let verdict = match (advice, &lift) {
                (Advice::Check, _) => "not_observable",
                (_, None) => "untested",
                (_, Some(rd)) if rd.interval.1 < 0.0 => "negative",
                (_, Some(rd)) if rd.interval.0 > 0.0 => "positive",
                _ => "inconclusive",
            };
            let v = Validation {
                folds: k,
                held_out_folds,
                learned_in,
                tasks: both.len(),
                sessions: both.iter().map(|s| s.exposed + s.unexposed).sum(),
                followed: both.iter().map(|s| s.exposed).sum(),
                lift: if advice == Advice::Check { None } else { lift },
                verdict: verdict.to_owned(),
            };
            ((advice, subject), v)
        })
        .collect();
    (held_out_folds, out)
}

/// The validation of a lesson never learned on any training part: it rests on tasks that
/// one fold holds.
pub fn never_learned(k: u32, held_out_folds: u32, advice: Advice) -> Validation {
    Validation {
        folds: k,
        held_out_folds,
        learned_in: 0,
        tasks: 0,
        sessions: 0,
        followed: 0,
        lift: None,
        verdict: if advice == Advice::Check { "not_observable" } else { "untested" }.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dream::{TrialCall, TrialLabel};

    fn trial(task: &str, n: usize, calls: &[&str], passed: bool, agent: &str) -> Trial {
        Trial {
            session: format!("{task}/trial-{n}"),
            task: Some(task.into()),
            grade: EventId::of(format!("{task}/{n}/{agent}").as_bytes()),
            position: 0,
            rubric: "r".into(),
            passed,
            score: if passed { 1.0 } else { 0.0 },
            calls: calls
                .iter()
                .map(|c| TrialCall { name: (*c).into(), failed: false })
                .chain(std::iter::once(TrialCall { name: "finish".into(), failed: false }))
                .collect(),
            expected: vec!["verify".into()],
            labels: vec![TrialLabel {
                name: "action:verify".into(),
                failed: !calls.contains(&"verify"),
                outside_reward: false,
            }],
            sources: Sources { agent: agent.into(), origin: format!("file-{agent}"), grader: "g".into() },
        }
    }

    fn texts() -> BTreeMap<String, String> {
        (0..8).map(|t| (format!("t{t}"), format!("Refund order {t} after checking identity"))).collect()
    }

    /// Eight tasks, four trials each: verifying passes, skipping fails.
    fn honest() -> Vec<Trial> {
        let mut out = Vec::new();
        for t in 0..8 {
            for n in 0..4 {
                let verify = (n + t) % 2 == 0;
                let calls: &[&str] = if verify { &["lookup", "verify"] } else { &["lookup"] };
                out.push(trial(&format!("t{t}"), n, calls, verify, "a"));
            }
        }
        out
    }

    fn v3() -> LessonRules {
        LessonRules { reading: Reading::V3, ..LessonRules::default() }
    }

    /// τ²-bench telecom as the user saw it: one trial per task, the reward resting on
    /// the environment's assertions only; `db_check` fails in half the sessions, passing
    /// ones included, and the expected call `verify` is checked outside the basis too.
    fn outside_basis() -> Vec<Trial> {
        (0..8)
            .map(|t| {
                let passed = t % 2 == 0;
                let mut tr = trial(&format!("t{t}"), 0, &["lookup"], passed, "a");
                tr.labels = vec![
                    TrialLabel { name: "action:verify".into(), failed: true, outside_reward: true },
                    TrialLabel { name: "db_check".into(), failed: t < 6, outside_reward: true },
                    TrialLabel { name: "env:assert_ok".into(), failed: !passed, outside_reward: false },
                ];
                tr
            })
            .collect()
    }

    #[test]
    fn checks_outside_the_reward_count_only_where_the_session_failed() {
        let all = outside_basis();
        let refs: Vec<&Trial> = all.iter().collect();
        let find = |c: &[Candidate], a: Advice, s: &str| c.iter().find(|c| c.advice == a && c.subject == s).cloned();
        // evidence@2 counts db_check's failures in passing sessions too: 6 of 8.
        let v2 = candidates("r", &refs, &texts(), &LessonRules::default(), &BTreeSet::new());
        let db = find(&v2, Advice::Check, "db_check").unwrap();
        assert_eq!((db.sessions, db.of, &db.decision), (6, 8, &Decision::Write));
        let verify = find(&v2, Advice::Expected, "verify").unwrap();
        assert_eq!((verify.sessions, verify.of), (8, 8));
        // evidence@3: outside the basis, a failure only in the 4 sessions that failed…
        let v3c = candidates("r", &refs, &texts(), &v3(), &BTreeSet::new());
        let verify = find(&v3c, Advice::Expected, "verify").unwrap();
        assert_eq!((verify.sessions, verify.of), (4, 8), "{verify:?}");
        assert!(verify.examples.iter().all(|e| !e.passed), "{verify:?}");
        // …and no check's failure rate is a lesson: it says nothing the agent can do.
        for name in ["db_check", "env:assert_ok"] {
            let c = find(&v3c, Advice::Check, name).unwrap();
            assert!(matches!(&c.decision, Decision::Skip(w) if w.contains("not advice")), "{c:?}");
        }
    }

    #[test]
    fn a_lesson_citing_only_passing_sessions_is_not_written() {
        // The expected call's check fails in passing sessions only (within the basis: the
        // graders' checks and the reward disagree).
        let all: Vec<Trial> = (0..8)
            .map(|t| {
                let mut tr = trial(&format!("t{t}"), 0, &["lookup"], true, "a");
                tr.labels = vec![TrialLabel { name: "action:verify".into(), failed: t < 4, outside_reward: false }];
                tr
            })
            .collect();
        let refs: Vec<&Trial> = all.iter().collect();
        let v2 = candidates("r", &refs, &texts(), &LessonRules::default(), &BTreeSet::new());
        let c = v2.iter().find(|c| c.advice == Advice::Expected).unwrap();
        assert_eq!(c.decision, Decision::Write, "evidence@2 writes it: {c:?}");
        let v3c = candidates("r", &refs, &texts(), &v3(), &BTreeSet::new());
        let c = v3c.iter().find(|c| c.advice == Advice::Expected).unwrap();
        assert!(matches!(&c.decision, Decision::Skip(w) if w.contains("every session it cites passed")), "{c:?}");
    }

    #[test]
    fn a_helpful_call_is_learned_within_tasks_and_validates_out_of_sample() {
        let all = honest();
        let refs: Vec<&Trial> = all.iter().collect();
        let c = candidates("r", &refs, &texts(), &LessonRules::default(), &BTreeSet::new());
        let call = c.iter().find(|c| c.advice == Advice::Call && c.subject == "verify").unwrap();
        assert_eq!(call.decision, Decision::Write, "{call:?}");
        assert_eq!((call.tasks_total, call.sessions, call.of), (8, 16, 32));
        assert!(call.examples.iter().all(|e| e.task.starts_with('t')) && call.examples.len() == 3);
        let expected = c.iter().find(|c| c.advice == Advice::Expected && c.subject == "verify").unwrap();
        assert_eq!(expected.decision, Decision::Write, "half the sessions missed it, in every task: {expected:?}");
        let (_, v) = validate("r", &refs, &texts(), &LessonRules::default(), &BTreeSet::new(), 4);
        let vc = &v[&(Advice::Call, "verify".to_owned())];
        assert_eq!(vc.verdict, "positive", "{vc:?}");
        assert!(vc.learned_in >= 3 && vc.tasks > 0);
    }

    #[test]
    fn a_handful_of_crafted_sessions_from_one_source_is_not_a_lesson() {
        // Honest trials never hand over; one crafted source hands over mid-run in every
        // task and is graded a pass.
        let mut all = honest();
        for t in 0..8 {
            all.push(trial(&format!("t{t}"), 9, &["handover", "lookup"], true, "crafted"));
        }
        let refs: Vec<&Trial> = all.iter().collect();
        let fragile_rules = LessonRules { robust: false, ..LessonRules::default() };
        let naive = candidates("r", &refs, &texts(), &fragile_rules, &BTreeSet::new());
        let h = naive.iter().find(|c| c.subject == "handover").unwrap();
        assert_eq!((h.advice, &h.decision), (Advice::Call, &Decision::Write), "without the checks it would be: {h:?}");
        let robust = candidates("r", &refs, &texts(), &LessonRules::default(), &BTreeSet::new());
        let h = robust.iter().find(|c| c.subject == "handover").unwrap();
        assert!(matches!(&h.decision, Decision::Skip(why) if why.contains("without agent \"crafted\"")), "{h:?}");
        assert_eq!(h.sources["agent"]["crafted"], 8);
        // The honest lesson survives.
        let v = robust.iter().find(|c| c.subject == "verify" && c.advice == Advice::Call).unwrap();
        assert_eq!(v.decision, Decision::Write);
    }

    #[test]
    fn a_lesson_resting_on_one_task_fails_the_jackknife() {
        // "extra" helps only in t0 (strongly, 10 trials); elsewhere it makes no difference.
        let mut all = Vec::new();
        for n in 0..10 {
            all.push(trial("t0", n, if n < 5 { &["extra", "verify"] } else { &["verify"] }, n < 5, "a"));
        }
        for t in 1..5 {
            for n in 0..4 {
                all.push(trial(
                    &format!("t{t}"),
                    n,
                    if n < 2 { &["extra", "verify"] } else { &["verify"] },
                    n % 2 == 0,
                    "a",
                ));
            }
        }
        let refs: Vec<&Trial> = all.iter().collect();
        let rules = LessonRules { max_q: 0.5, ..LessonRules::default() };
        let naive = candidates("r", &refs, &texts(), &LessonRules { robust: false, ..rules.clone() }, &BTreeSet::new());
        let e = naive.iter().find(|c| c.subject == "extra").unwrap();
        assert_eq!(e.decision, Decision::Write, "{e:?}");
        let robust = candidates("r", &refs, &texts(), &rules, &BTreeSet::new());
        let e = robust.iter().find(|c| c.subject == "extra").unwrap();
        assert!(
            matches!(&e.decision, Decision::Skip(why) if why.contains("rests on a few tasks") && why.contains("t0")),
            "{e:?}"
        );
    }

    #[test]
    fn task_ids_sort_with_numbers_as_numbers() {
        let mut v = vec!["10", "9", "airline/12", "airline/2", "b", "1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["1", "9", "10", "airline/2", "airline/12", "b"]);
    }

    #[test]
    fn folds_are_stable_and_spread() {
        let folds: Vec<u32> = (0..100).map(|i| fold_of(&format!("task-{i}"), 5)).collect();
        assert_eq!(folds, (0..100).map(|i| fold_of(&format!("task-{i}"), 5)).collect::<Vec<_>>());
        for f in 0..5 {
            let n = folds.iter().filter(|x| **x == f).count();
            assert!((8..=32).contains(&n), "fold {f}: {n}");
        }
    }
}
