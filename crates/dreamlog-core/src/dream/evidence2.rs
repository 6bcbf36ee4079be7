//! The `evidence` dreamer, version 2: lessons that hold up on real runs.
//!
//! It reads input format 2 (every graded session up to the dream's end as a per-task
//! [`Trial`], and the tasks' texts) and recomputes each family's lessons from that whole
//! history with `core::dream::lessons`: tool lessons only from within-task contrasts, label
//! lessons from what the graders recorded, Benjamini–Hochberg over every candidate of a
//! family, support counted in tasks, every lesson checked without each of its sources and
//! its most supportive tasks, and (with `validate` ≥ 2) validated out of sample by task.
//! Every candidate's decision, with its strata, counts, test and validation, goes into
//! the dream's summary (`dream show`).
//!
//! Lesson lines keep version 1's form and files (`- [KIND:KEY COUNTS] text` in
//! `/memories/lessons/FAMILY.md`, one command per lesson citing its grades, within a
//! byte budget); the kinds are `call`, `avoid`, `expected` and `check`, and the counts are
//! tasks (`7t`) and sessions. Version 1's lines in those files are rewritten in place
//! when version 2 holds the same lesson and retired otherwise; lines the dreamer did not
//! write are left alone.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::dream::evidence::{
    clip, family_key, family_path, key_of as key_v1, plan_commands, FamilyBy, FamilyPlan, LessonKind, LineCounts,
    Wanted,
};
use crate::dream::lessons::{self, Advice, Candidate, Decision, LessonRules, Reading};
use crate::dream::{DreamInput, Planned, Trial};

/// This version.
pub const VERSION: &str = "2";

/// Version 3 (the default): the same rules and files, with the graders read as
/// [`Reading::V3`] says — a check outside its grade's reward basis never counts as a
/// failure, a check's failure rate is no lesson unless an agent can act on the check, and
/// no lesson rests only on sessions that passed. Version 2 stays so its dreams replay.
pub const VERSION3: &str = "3";

/// The configuration: where lessons go and the rules they must pass. Every field has a
/// default; recorded in full in the `dream` event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvidenceConfigV2 {
    /// How sessions are grouped into families (one lesson file each).
    pub family: FamilyBy,
    /// Directory of the lesson files.
    pub dir: String,
    /// Folds of the out-of-sample validation by task (0 or 1: none).
    pub validate: u32,
    /// All lesson files together stay under this many bytes; the weakest lessons give way.
    pub budget_bytes: usize,
    /// The rules a lesson must pass.
    #[serde(flatten)]
    pub rules: LessonRules,
}

impl Default for EvidenceConfigV2 {
    fn default() -> EvidenceConfigV2 {
        EvidenceConfigV2 {
            family: FamilyBy::Rubric,
            dir: "/memories/lessons".into(),
            validate: 5,
            budget_bytes: 16 * 1024,
            rules: LessonRules::default(),
        }
    }
}

impl EvidenceConfigV2 {
    /// Parses a configuration, refusing fields it does not know (a typo must not pass
    /// silently for a default).
    pub fn from_value(v: &serde_json::Value) -> Result<EvidenceConfigV2, String> {
        let cfg: EvidenceConfigV2 = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let known = serde_json::to_value(&cfg).map_err(|e| e.to_string())?;
        if let (Some(given), Some(known)) = (v.as_object(), known.as_object()) {
            if let Some(k) = given.keys().find(|k| !known.contains_key(*k)) {
                return Err(format!(
                    "unknown field `{k}`, expected one of {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if cfg.rules.jackknife < 0.0 || cfg.rules.jackknife >= 1.0 {
            return Err("jackknife is a share of tasks, in [0, 1)".into());
        }
        Ok(cfg)
    }
}

/// One family's decisions, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FamilyDecisions {
    /// The family.
    pub family: String,
    /// Its lesson file.
    pub path: String,
    /// Graded sessions (trials) of the family up to the dream's end.
    pub trials: u64,
    /// Their distinct tasks.
    pub tasks: u64,
    /// Every candidate lesson with its decision (lists cut at `lessons::RECORDED`).
    pub candidates: Vec<Candidate>,
}

/// What one dream did, for the `dream` event's meta (`dream show`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryV2 {
    /// Graded sessions in the dream's log range.
    pub sessions: u64,
    /// Graded sessions up to its end (the history judged).
    pub trials: u64,
    /// Families revisited.
    pub families: u64,
    /// What happened to the lesson lines (a version 1 line rewritten in version 2's form
    /// counts as updated).
    #[serde(flatten)]
    pub lines: LineCounts,
    /// Folds of the validation (0: none).
    pub validation_folds: u32,
    /// Every family's decisions.
    pub decisions: Vec<FamilyDecisions>,
}

/// A lesson line of the evidence dreamer, either version: tag word and key
/// (`- [KIND:KEY …] …`).
pub fn lesson_tag(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("- [")?;
    let (tag, _) = rest.split_once(']')?;
    let head = tag.split(' ').next()?;
    let (kind, key) = head.split_once(':')?;
    let ours = matches!(kind, "call" | "avoid" | "expected" | "check" | "tool");
    (ours && key.len() == 8 && key.bytes().all(|b| b.is_ascii_hexdigit())).then_some((kind, key))
}

fn task_name(task: &str) -> &str {
    task.strip_prefix("session:").unwrap_or(task)
}

fn examples_text(c: &Candidate) -> String {
    if c.examples.is_empty() {
        return String::new();
    }
    let list: Vec<String> = c
        .examples
        .iter()
        .map(|e| {
            format!("task {} trial {} ({})", task_name(&e.task), e.trial, if e.passed { "passed" } else { "failed" })
        })
        .collect();
    format!(" E.g. {}.", list.join(", "))
}

fn validation_text(c: &Candidate) -> String {
    let Some(v) = &c.validation else { return String::new() };
    match (&v.lift, v.verdict.as_str()) {
        (_, "not_observable") => String::new(),
        (Some(l), _) => format!(
            " Held-out tasks: followers passed {:+.0} points more ({:+.0} to {:+.0}, {} tasks).",
            l.estimate * 100.0,
            l.interval.0 * 100.0,
            l.interval.1 * 100.0,
            v.tasks
        ),
        (None, _) => " Not validated on held-out tasks.".to_owned(),
    }
}

/// The lesson line of a candidate that is written, as the version reading `reading`
/// writes it.
pub fn render(family: &str, c: &Candidate, reading: Reading) -> String {
    let tasks = c.tasks_total;
    let mut applies = format!("In `{family}` tasks");
    if !c.condition.is_empty() {
        let words: Vec<String> = c.condition.iter().map(|w| format!("\u{201c}{w}\u{201d}")).collect();
        applies.push_str(&format!(" mentioning {}", words.join(", ")));
    }
    let eg = examples_text(c);
    let held = validation_text(c);
    let x = &c.subject;
    match c.advice {
        Advice::Call | Advice::Avoid => {
            let ((n1, y1), (n0, y0)) = c.passes.unwrap_or_default();
            let (p, q, method) =
                c.test.as_ref().map(|t| (t.p, t.q, t.method.as_str())).unwrap_or((1.0, 1.0, "exact"));
            let advice = if c.advice == Advice::Call {
                format!("Call `{x}` when the task allows it.")
            } else {
                format!("Before calling `{x}`, check that the task and the policy really require it.")
            };
            format!(
                "- [{}:{} {tasks}t {y1}/{n1} {y0}/{n0}] {applies}, trials that called `{x}` passed {y1} of {n1} and trials of the same tasks that did not {y0} of {n0} ({tasks} tasks with both; {method} stratified p = {p:.3}, q = {q:.3}). {advice}{held}{eg}",
                c.advice.tag(),
                c.key
            )
        }
        Advice::Expected => format!(
            "- [expected:{} {tasks}t {}/{}] {applies} that expect `{x}`, the call was missing or failed its check in {} of {} graded sessions ({tasks} tasks). When the task calls for `{x}`, make that call with the arguments the policy and the user's data require before finishing.{held}{eg}",
            c.key, c.sessions, c.of, c.sessions, c.of
        ),
        Advice::Check if reading == Reading::V3 => {
            let told = if let Some(text) = x.strip_prefix("nl:") {
                format!("Before finishing, make sure that: \"{}\"", clip(text, 160))
            } else if let Some(call) = x.strip_prefix("user_action:") {
                format!("When the task needs the user to call `{call}`, guide the user through it and confirm it was done")
            } else if let Some(info) = x.strip_prefix("communicate:") {
                format!("Tell the user \"{}\" when the task calls for it", clip(info, 160))
            } else {
                format!("Make sure the graders' check `{}` holds", clip(x, 80))
            };
            format!(
                "- [check:{} {tasks}t {}/{}] {applies}: {told}. The graders found it not done in {} of {} graded sessions ({tasks} tasks).{eg}",
                c.key, c.sessions, c.of, c.sessions, c.of
            )
        }
        Advice::Check => {
            let what = if let Some(text) = x.strip_prefix("nl:") {
                format!("the requirement \"{}\" was not met", clip(text, 160))
            } else if let Some(call) = x.strip_prefix("user_action:") {
                format!("the user was to call `{call}` (guided by the agent) and did not, or not as expected,")
            } else {
                format!("the graders' check `{}` failed", clip(x, 80))
            };
            format!(
                "- [check:{} {tasks}t {}/{}] {applies}, {what} in {} of {} graded sessions ({tasks} tasks).{eg}",
                c.key, c.sessions, c.of, c.sessions, c.of
            )
        }
    }
}

fn rank(a: Advice) -> u8 {
    match a {
        Advice::Call => 0,
        Advice::Avoid => 1,
        Advice::Expected => 2,
        Advice::Check => 3,
    }
}

fn strength(c: &Candidate) -> f64 {
    match c.advice {
        Advice::Call | Advice::Avoid => c.tasks_total as f64 * (1.0 - c.test.as_ref().map_or(1.0, |t| t.q)),
        Advice::Expected | Advice::Check => c.sessions as f64 * c.sessions as f64 / c.of.max(1) as f64,
    }
}

fn v1_kind(a: Advice) -> LessonKind {
    match a {
        Advice::Call | Advice::Avoid => LessonKind::Tool,
        Advice::Expected => LessonKind::Expected,
        Advice::Check => LessonKind::Check,
    }
}

/// Groups the input's trials into families.
pub fn families(input: &DreamInput, by: FamilyBy) -> BTreeMap<String, Vec<&Trial>> {
    let mut out: BTreeMap<String, Vec<&Trial>> = BTreeMap::new();
    for t in &input.trials {
        let family = family_key(by, Some(&t.rubric), t.task.as_deref(), Some(&t.sources.agent));
        out.entry(family).or_default().push(t);
    }
    out
}

/// Runs the dreamer: the commands that bring the lesson files up to date with the graded
/// history, and the record of every decision.
pub fn dream(input: &DreamInput, cfg: &EvidenceConfigV2) -> (Vec<Planned>, SummaryV2) {
    let mut summary = SummaryV2 {
        sessions: input.sessions.iter().filter(|s| s.grade().is_some()).count() as u64,
        trials: input.trials.len() as u64,
        validation_folds: if cfg.validate >= 2 { cfg.validate } else { 0 },
        ..SummaryV2::default()
    };
    // Only families with a session in the dream's range are revisited.
    let fresh: BTreeSet<&str> = input.sessions.iter().map(|s| s.session.as_str()).collect();
    let mut plans = Vec::new();
    for (family, trials) in families(input, cfg.family) {
        if !trials.iter().any(|t| fresh.contains(t.session.as_str())) {
            continue;
        }
        summary.families += 1;
        let path = family_path(&cfg.dir, &family);
        let existing_text = input.memory.get(&path).cloned();
        // The dreamer's lines in the file, by key (the first copy; later ones merge away).
        let mut lines: BTreeMap<String, String> = BTreeMap::new();
        let mut retire = Vec::new();
        for line in existing_text.as_deref().unwrap_or("").lines() {
            let Some((_, key)) = lesson_tag(line) else { continue };
            if lines.contains_key(key) {
                summary.lines.merged += 1;
                retire.push(line.to_owned());
            } else {
                lines.insert(key.to_owned(), line.to_owned());
            }
        }
        // Version 1's keys never equal version 2's: only version 2's lines are judged by
        // the lower thresholds that retire a lesson.
        let existing: BTreeSet<String> = lines.keys().cloned().collect();
        let mut cands = lessons::candidates(&family, &trials, &input.tasks, &cfg.rules, &existing);
        if summary.validation_folds > 0 {
            let (held_out, v) = lessons::validate(&family, &trials, &input.tasks, &cfg.rules, &existing, cfg.validate);
            for c in cands.iter_mut().filter(|c| c.decision == Decision::Write) {
                c.validation = Some(
                    v.get(&(c.advice, c.subject.clone()))
                        .cloned()
                        .unwrap_or_else(|| lessons::never_learned(cfg.validate, held_out, c.advice)),
                );
            }
        }
        let mut claimed: BTreeSet<String> = BTreeSet::new();
        let mut wanted = Vec::new();
        for c in cands.iter().filter(|c| c.decision == Decision::Write) {
            // The line it replaces: its own, else version 1's line of the same lesson.
            let v1 = key_v1(&family, v1_kind(c.advice), &c.subject);
            let old_key =
                if lines.contains_key(&c.key) { Some(c.key.clone()) } else { lines.contains_key(&v1).then_some(v1) };
            if let Some(k) = &old_key {
                claimed.insert(k.clone());
            }
            let old = old_key.and_then(|k| lines.get(&k).cloned());
            let line = render(&family, c, cfg.rules.reading);
            if old.as_deref() == Some(line.as_str()) {
                continue;
            }
            wanted.push(Wanted {
                rank: rank(c.advice),
                key: c.key.clone(),
                line,
                strength: strength(c),
                causes: c.causes.clone(),
                old,
            });
        }
        for (key, line) in &lines {
            if !claimed.contains(key) {
                summary.lines.retired += 1;
                retire.push(line.clone());
            }
        }
        let tasks: BTreeSet<String> = trials.iter().map(|t| t.task_key()).collect();
        summary.decisions.push(FamilyDecisions {
            family: family.clone(),
            path: path.clone(),
            trials: trials.len() as u64,
            tasks: tasks.len() as u64,
            candidates: cands.iter().map(Candidate::recorded).collect(),
        });
        plans.push(FamilyPlan { path, family, existing: existing_text, wanted, retire });
    }
    let out = plan_commands(input, &cfg.dir, cfg.budget_bytes, plans, &mut summary.lines);
    (out, summary)
}
