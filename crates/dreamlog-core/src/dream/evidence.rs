//! The `evidence` dreamer: deterministic lessons from grades, no model.
//!
//! Per task family (by default the grade's rubric, e.g. `tau2/airline`) it counts, over
//! the graded sessions of the dream's input:
//! - **checks**: rubric criteria that fail repeatedly (`action:…`, `db_check`, `nl:…`);
//! - **expected actions**: tools a grade says were expected (`meta.actions[].name`) that
//!   the session never called;
//! - **tool patterns**: tools whose use separates passing from failing sessions (pass
//!   rate with against without).
//!
//! Lessons are lines of `/memories/lessons/FAMILY.md`, each tagged with a stable key and
//! its counts, e.g. `- [check:1a2b3c4d 7/12] …`. The tag is the dreamer's state: the
//! next dream adds the new slice's counts to it (consolidation), rewrites lines whose
//! numbers changed, retires lessons whose evidence no longer holds (with a lower
//! threshold than the one that created them, so lessons do not flicker), merges
//! duplicate keys, and keeps all lessons within a byte budget, strongest first. Each
//! lesson is its own command citing its own grades, so blame leads from a line to the
//! sessions behind it. Lines it did not write are left alone.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::body::{GradeResult, MemoryCommand};
use crate::dream::{DreamInput, Planned, SessionInput};
use crate::hash::{Digest, EventId};

/// The dreamer's name.
pub const NAME: &str = "evidence";
/// Its current version. Version 1 counts checks, expected actions and tool presence.
pub const VERSION: &str = "1";

/// What groups sessions into a task family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyBy {
    /// The grade's rubric (`tau2/airline`).
    Rubric,
    /// The task id up to its last `/` (`airline/12` → `airline`), else `tasks`.
    TaskPrefix,
    /// The session's agent.
    Agent,
}

/// Thresholds and limits; every field has a default. Recorded in full in the `dream`
/// event, so a replay uses exactly the same numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// How sessions are grouped into families.
    pub family: FamilyBy,
    /// Directory of the lesson files.
    pub dir: String,
    /// A lesson needs at least this many sessions showing the problem (failures for a
    /// check; sessions on each side for a tool pattern).
    pub min_support: u64,
    /// A check lesson is written when its failure rate reaches this…
    pub fail_rate: f64,
    /// …and retired when the combined rate falls below this.
    pub retire_fail_rate: f64,
    /// A tool-pattern lesson is written when pass rates with and without the tool differ
    /// by this much…
    pub min_lift: f64,
    /// …and retired when the difference falls below this.
    pub retire_lift: f64,
    /// A new tool-pattern lesson also needs a two-sided Fisher exact p-value at most
    /// this (pass/fail against with/without): chance differences are not lessons.
    pub max_p_value: f64,
    /// Criteria (by exact name) never turned into lessons.
    pub ignore_checks: Vec<String>,
    /// Sessions named as examples per lesson.
    pub examples: usize,
    /// Grades cited per lesson.
    pub max_causes: usize,
    /// All lesson files together stay under this many bytes; the weakest lessons give way.
    pub budget_bytes: usize,
}

impl Default for EvidenceConfig {
    fn default() -> EvidenceConfig {
        EvidenceConfig {
            family: FamilyBy::Rubric,
            dir: "/memories/lessons".into(),
            min_support: 3,
            fail_rate: 0.5,
            retire_fail_rate: 0.25,
            min_lift: 0.3,
            retire_lift: 0.15,
            max_p_value: 0.05,
            ignore_checks: Vec::new(),
            examples: 3,
            max_causes: 64,
            budget_bytes: 16 * 1024,
        }
    }
}

/// Counts behind a lesson, additive across dreams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// check/expected: failures or misses; tool: passes with the tool.
    a: u64,
    /// check/expected: sessions; tool: sessions with the tool.
    b: u64,
    /// tool: passes without the tool.
    c: u64,
    /// tool: sessions without the tool.
    d: u64,
}

impl Counts {
    fn add(self, o: Counts) -> Counts {
        Counts { a: self.a + o.a, b: self.b + o.b, c: self.c + o.c, d: self.d + o.d }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LessonKind {
    Check,
    Expected,
    Tool,
}

impl LessonKind {
    fn tag(self) -> &'static str {
        match self {
            LessonKind::Check => "check",
            LessonKind::Expected => "expected",
            LessonKind::Tool => "tool",
        }
    }

    fn from_tag(s: &str) -> Option<LessonKind> {
        match s {
            "check" => Some(LessonKind::Check),
            "expected" => Some(LessonKind::Expected),
            "tool" => Some(LessonKind::Tool),
            _ => None,
        }
    }
}

/// What the slice says about one candidate lesson.
#[derive(Clone, Debug, Default)]
struct Tally {
    counts: Counts,
    /// Grades to cite, in log order.
    causes: Vec<EventId>,
    /// Sessions to name.
    examples: Vec<String>,
}

/// A candidate lesson: its subject and the slice's tally.
#[derive(Clone, Debug)]
struct Candidate {
    kind: LessonKind,
    subject: String,
    tally: Tally,
}

pub(crate) fn key_of(family: &str, kind: LessonKind, subject: &str) -> String {
    let d = Digest::of(format!("{family}\n{}\n{subject}", kind.tag()).as_bytes());
    d.short(8)
}

fn pct(a: u64, b: u64) -> u64 {
    (a * 100 + b / 2).checked_div(b).unwrap_or(0)
}

fn rate(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A short name for a session in lesson text: a UUID's first 8 characters, a path's
/// last two segments.
pub(crate) fn short_session(s: &str) -> String {
    let uuid_like = s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if uuid_like {
        return s[..8].to_owned();
    }
    let parts: Vec<&str> = s.rsplitn(3, '/').collect();
    if parts.len() == 3 {
        format!("{}/{}", parts[1], parts[0])
    } else {
        s.to_owned()
    }
}

/// A text on one line, cut at `n` characters (with an ellipsis).
pub fn clip(s: &str, n: usize) -> String {
    let s = s.replace(['\n', '\r'], " ");
    if s.chars().count() <= n {
        return s;
    }
    let mut out: String = s.chars().take(n).collect();
    out.push('…');
    out
}

/// One lesson line as written: `- [KIND:KEY COUNTS] text`.
fn render(kind: LessonKind, key: &str, subject: &str, c: Counts, examples: &[String]) -> String {
    let eg = if examples.is_empty() { String::new() } else { format!(" E.g. {}.", examples.join(", ")) };
    match kind {
        LessonKind::Check => {
            let tag = format!("- [check:{key} {}/{}]", c.a, c.b);
            let (what, advice) = if let Some(tool) = subject.strip_prefix("action:") {
                (
                    format!("The expected call `{tool}`"),
                    format!(" When the task calls for `{tool}`, make that call with exactly the arguments the policy and the user's data require."),
                )
            } else if let Some(text) = subject.strip_prefix("nl:") {
                (format!("The requirement \"{}\"", clip(text, 160)), String::new())
            } else {
                (format!("The check `{}`", clip(subject, 80)), String::new())
            };
            format!("{tag} {what} failed in {} of {} graded sessions ({}%).{advice}{eg}", c.a, c.b, pct(c.a, c.b))
        }
        LessonKind::Expected => format!(
            "- [expected:{key} {}/{}] `{subject}` was expected but never called in {} of {} sessions that needed it ({}%). Check whether the task needs `{subject}` before finishing.{eg}",
            c.a,
            c.b,
            c.a,
            c.b,
            pct(c.a, c.b)
        ),
        LessonKind::Tool => {
            let (with, without) = (rate(c.a, c.b), rate(c.c, c.d));
            let advice = if with >= without {
                format!("Call `{subject}` when the task allows it.")
            } else {
                format!("Before calling `{subject}`, check that the task and the policy really require it.")
            };
            format!(
                "- [tool:{key} {}/{} {}/{}] Sessions that call `{subject}` pass {}% ({} of {}); without it {}% ({} of {}). {advice}{eg}",
                c.a,
                c.b,
                c.c,
                c.d,
                pct(c.a, c.b),
                c.a,
                c.b,
                pct(c.c, c.d),
                c.c,
                c.d
            )
        }
    }
}

/// A lesson line of the dreamer's own, parsed back: kind, key, counts.
fn parse_line(line: &str) -> Option<(LessonKind, String, Counts)> {
    let rest = line.strip_prefix("- [")?;
    let (tag, _) = rest.split_once(']')?;
    let (head, nums) = tag.split_once(' ')?;
    let (kind, key) = head.split_once(':')?;
    let kind = LessonKind::from_tag(kind)?;
    if key.len() != 8 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut pairs = nums.split(' ').map(|p| {
        let (x, y) = p.split_once('/')?;
        Some((x.parse::<u64>().ok()?, y.parse::<u64>().ok()?))
    });
    let (a, b) = pairs.next()??;
    let counts = match kind {
        LessonKind::Tool => {
            let (c, d) = pairs.next()??;
            Counts { a, b, c, d }
        }
        _ => Counts { a, b, c: 0, d: 0 },
    };
    if pairs.next().is_some() || a > b || counts.c > counts.d {
        return None;
    }
    Some((kind, key.to_owned(), counts))
}

/// Does a lesson with these combined counts hold? `existing` lessons are held to the
/// lower retire thresholds.
fn holds(kind: LessonKind, c: Counts, cfg: &EvidenceConfig, existing: bool) -> bool {
    match kind {
        LessonKind::Check | LessonKind::Expected => {
            let threshold = if existing { cfg.retire_fail_rate } else { cfg.fail_rate };
            c.a >= cfg.min_support && rate(c.a, c.b) >= threshold
        }
        LessonKind::Tool => {
            // Without both sides there is nothing to compare: an existing lesson stays
            // (its advice may be why one side emptied), a new one is not written.
            if c.b < cfg.min_support || c.d < cfg.min_support {
                return existing;
            }
            let threshold = if existing { cfg.retire_lift } else { cfg.min_lift };
            let significant = existing || crate::stats::fisher_exact(c.a, c.b - c.a, c.c, c.d - c.c) <= cfg.max_p_value;
            significant && (rate(c.a, c.b) - rate(c.c, c.d)).abs() >= threshold
        }
    }
}

/// How strongly a lesson is supported: orders lessons for the budget.
fn strength(kind: LessonKind, c: Counts) -> f64 {
    match kind {
        LessonKind::Check | LessonKind::Expected => c.a as f64 * rate(c.a, c.b),
        LessonKind::Tool => (rate(c.a, c.b) - rate(c.c, c.d)).abs() * c.b.min(c.d) as f64,
    }
}

fn family_of(s: &SessionInput, by: FamilyBy) -> String {
    let rubric = s.grade().map(|g| g.body.rubric.as_str());
    family_key(by, rubric, s.task_id(), s.start.as_ref().map(|st| st.body.agent.as_str()))
}

/// A session's family, from its last grade's rubric, its task id and its agent: the
/// grouping lessons are written per (the lesson file is [`family_path`] of it), and the
/// sessions a lesson's before/after grades are compared over.
pub fn family_key(by: FamilyBy, rubric: Option<&str>, task_id: Option<&str>, agent: Option<&str>) -> String {
    match by {
        FamilyBy::Rubric => rubric.unwrap_or_default().to_owned(),
        FamilyBy::TaskPrefix => match task_id.and_then(|t| t.rsplit_once('/')) {
            Some((prefix, _)) => prefix.to_owned(),
            None => "tasks".into(),
        },
        FamilyBy::Agent => agent.unwrap_or("agent").to_owned(),
    }
}

/// The lesson file of a family: path-safe characters only.
pub fn family_path(dir: &str, family: &str) -> String {
    let slug: String = family
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .map(|seg| {
            seg.chars()
                .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/");
    let slug = if slug.is_empty() { "general".to_owned() } else { slug };
    format!("{}/{slug}.md", dir.trim_end_matches('/'))
}

pub(crate) fn header(family: &str) -> String {
    format!(
        "# Lessons: {family}\n\nWritten by the evidence dreamer from graded sessions. The tag of each line holds its counts; `dreamlog memory blame` shows the sessions and grades behind it.\n\n"
    )
}

fn push_evidence(t: &mut Tally, s: &SessionInput, cfg: &EvidenceConfig) {
    if let Some(g) = s.grade() {
        if t.causes.len() < cfg.max_causes {
            t.causes.push(g.id);
        }
    }
    if t.examples.len() < cfg.examples {
        t.examples.push(short_session(&s.session));
    }
}

/// A graded session: whether it passed and the tools it called.
type Graded<'a> = (&'a SessionInput, bool, BTreeSet<&'a str>);

/// Counts the slice: family → candidates by (kind, subject).
fn tally(input: &DreamInput, cfg: &EvidenceConfig) -> BTreeMap<String, Candidates> {
    let ignore: HashSet<&str> = cfg.ignore_checks.iter().map(String::as_str).collect();
    let mut out: BTreeMap<String, Candidates> = BTreeMap::new();
    // Tool presence needs every session of the family: collect per family first.
    let mut families: BTreeMap<String, Vec<Graded>> = BTreeMap::new();
    for s in &input.sessions {
        let Some(g) = s.grade() else { continue };
        let passed = g.body.result == GradeResult::Satisfied;
        let tools: BTreeSet<&str> = s.actions.iter().map(|a| a.body.name.as_str()).collect();
        families.entry(family_of(s, cfg.family)).or_default().push((s, passed, tools));
    }
    for (family, sessions) in &families {
        let cands = out.entry(family.clone()).or_default();
        let mut all_tools: BTreeSet<&str> = BTreeSet::new();
        for (s, _, tools) in sessions {
            all_tools.extend(tools.iter().copied());
            let g = s.grade().expect("graded");
            // A criterion may appear more than once in a grade (two expected calls of
            // one tool): a session counts once, failed if any instance failed.
            let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
            for c in &g.body.criteria {
                if ignore.contains(c.name.as_str()) {
                    continue;
                }
                let failed = c.passed == Some(false) || (c.passed.is_none() && c.score.is_some_and(|x| x < 1.0));
                *seen.entry(c.name.as_str()).or_default() |= failed;
            }
            for (name, failed) in seen {
                let cand = entry(cands, LessonKind::Check, name);
                cand.tally.counts.b += 1;
                if failed {
                    cand.tally.counts.a += 1;
                    push_evidence(&mut cand.tally, s, cfg);
                }
            }
            let expected = crate::dream::expected_in_meta(&g.body);
            for name in &expected {
                let cand = entry(cands, LessonKind::Expected, name);
                cand.tally.counts.b += 1;
                if !tools.contains(name.as_str()) {
                    cand.tally.counts.a += 1;
                    push_evidence(&mut cand.tally, s, cfg);
                }
            }
        }
        for tool in all_tools {
            let cand = entry(cands, LessonKind::Tool, tool);
            let c = &mut cand.tally.counts;
            for (_, passed, tools) in sessions {
                if tools.contains(tool) {
                    c.b += 1;
                    c.a += u64::from(*passed);
                } else {
                    c.d += 1;
                    c.c += u64::from(*passed);
                }
            }
            // Evidence: the sessions the advice rests on. "Call it": passing sessions
            // that called it and failing ones that did not; "avoid it": the reverse.
            let call_it = rate(c.a, c.b) >= rate(c.c, c.d);
            for (s, passed, tools) in sessions {
                if (tools.contains(tool) == *passed) == call_it {
                    push_evidence(&mut cand.tally, s, cfg);
                }
            }
        }
    }
    out
}

type Candidates = BTreeMap<(LessonKind, String), Candidate>;

fn entry<'a>(cands: &'a mut Candidates, kind: LessonKind, subject: &str) -> &'a mut Candidate {
    cands.entry((kind, subject.to_owned())).or_insert_with(|| Candidate {
        kind,
        subject: subject.to_owned(),
        tally: Tally::default(),
    })
}

/// A lesson in the plan: where it ends up and why.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    /// Orders lessons of equal strength (then the key does).
    pub rank: u8,
    pub key: String,
    pub line: String,
    pub strength: f64,
    pub causes: Vec<EventId>,
    /// The line it replaces, if it updates an existing one.
    pub old: Option<String>,
}

/// One lesson file's plan: the lessons wanted and the existing lines they replace or
/// retire.
pub(crate) struct FamilyPlan {
    pub path: String,
    pub family: String,
    pub existing: Option<String>,
    pub wanted: Vec<Wanted>,
    pub retire: Vec<String>,
}

/// What one evidence dream did, for the `dream` event's meta.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EvidenceSummary {
    /// Graded sessions read.
    pub sessions: u64,
    /// Families seen.
    pub families: u64,
    /// What happened to the lesson lines.
    #[serde(flatten)]
    pub lines: LineCounts,
}

/// What a dream of the evidence dreamer did to its lesson lines (both versions).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCounts {
    /// Lessons written new.
    pub added: u64,
    /// Lessons rewritten (their counts or text changed).
    pub updated: u64,
    /// Lessons retired because their evidence no longer holds.
    pub retired: u64,
    /// Duplicate lesson lines merged away.
    pub merged: u64,
    /// Lessons left out (new) or retired (existing) to stay within the budget.
    pub over_budget: u64,
}

/// Runs the evidence dreamer: the commands that bring the lesson files up to date with
/// the input's evidence.
pub fn dream(input: &DreamInput, cfg: &EvidenceConfig) -> (Vec<Planned>, EvidenceSummary) {
    let mut summary = EvidenceSummary {
        sessions: input.sessions.iter().filter(|s| s.grade().is_some()).count() as u64,
        ..EvidenceSummary::default()
    };
    let tallies = tally(input, cfg);
    summary.families = tallies.len() as u64;

    // Per family: the lessons wanted and the existing lines they replace or retire.
    let mut plans: Vec<FamilyPlan> = Vec::new();
    // Families with an existing file but no sessions in this slice keep their lessons
    // unchanged; only families in the slice are revisited.
    for (family, cands) in &tallies {
        let path = family_path(&cfg.dir, family);
        let existing = input.memory.get(&path).cloned();
        let mut old: BTreeMap<String, (LessonKind, Counts, String)> = BTreeMap::new();
        let mut retire = Vec::new();
        if let Some(text) = &existing {
            for line in text.lines() {
                let Some((kind, key, counts)) = parse_line(line) else { continue };
                match old.get_mut(&key) {
                    // A duplicate: keep the copy with more evidence, drop the other.
                    Some(prev) => {
                        summary.lines.merged += 1;
                        if counts.b + counts.d > prev.1.b + prev.1.d {
                            retire.push(std::mem::replace(&mut prev.2, line.to_owned()));
                            prev.1 = counts;
                        } else {
                            retire.push(line.to_owned());
                        }
                    }
                    None => {
                        old.insert(key, (kind, counts, line.to_owned()));
                    }
                }
            }
        }
        let mut wanted = Vec::new();
        for cand in cands.values() {
            let key = key_of(family, cand.kind, &cand.subject);
            let prev = old.get(&key);
            let counts = prev.map(|p| p.1).unwrap_or_default().add(cand.tally.counts);
            let was = prev.map(|p| p.2.clone());
            if !holds(cand.kind, counts, cfg, was.is_some()) {
                if let Some(w) = was {
                    summary.lines.retired += 1;
                    retire.push(w);
                }
                continue;
            }
            let line = render(cand.kind, &key, &cand.subject, counts, &cand.tally.examples);
            if was.as_deref() == Some(line.as_str()) {
                continue;
            }
            wanted.push(Wanted {
                rank: cand.kind as u8,
                key,
                line,
                strength: strength(cand.kind, counts),
                causes: cand.tally.causes.clone(),
                old: was,
            });
        }
        plans.push(FamilyPlan { path, family: family.clone(), existing, wanted, retire });
    }

    let out = plan_commands(input, &cfg.dir, cfg.budget_bytes, plans, &mut summary.lines);
    (out, summary)
}

/// Turns lesson-file plans into memory commands: over the byte budget the weakest wanted
/// lessons give way; then per file, retired lines go, updated lines are replaced in
/// place, and new lessons are appended strongest first, each its own command citing its
/// own evidence.
pub(crate) fn plan_commands(
    input: &DreamInput,
    dir: &str,
    budget_bytes: usize,
    mut plans: Vec<FamilyPlan>,
    counts: &mut LineCounts,
) -> Vec<Planned> {
    // The budget: every lesson file's size after the plan. Over it, the weakest wanted
    // lessons give way first (new ones dropped, updated ones retired).
    let mut total: usize = input
        .memory
        .iter()
        .filter(|(p, _)| p.starts_with(&format!("{}/", dir.trim_end_matches('/'))))
        .map(|(_, t)| t.len())
        .sum();
    for plan in &plans {
        if plan.existing.is_none() && !plan.wanted.is_empty() {
            total += header(&plan.family).len();
        }
        for w in &plan.wanted {
            total += w.line.len() + 1;
            total -= w.old.as_ref().map_or(0, |o| o.len() + 1);
        }
        total -= plan.retire.iter().map(|r| r.len() + 1).sum::<usize>();
    }
    if total > budget_bytes {
        let mut order: Vec<(f64, usize, usize)> = Vec::new();
        for (pi, plan) in plans.iter().enumerate() {
            for (wi, w) in plan.wanted.iter().enumerate() {
                order.push((w.strength, pi, wi));
            }
        }
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        let mut drop: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (_, pi, wi) in order {
            if total <= budget_bytes {
                break;
            }
            let w = &plans[pi].wanted[wi];
            total -= w.line.len() + 1;
            drop.insert((pi, wi));
            counts.over_budget += 1;
        }
        for (pi, plan) in plans.iter_mut().enumerate() {
            let wanted = std::mem::take(&mut plan.wanted);
            for (wi, w) in wanted.into_iter().enumerate() {
                if drop.contains(&(pi, wi)) {
                    if let Some(old) = w.old {
                        plan.retire.push(old);
                    }
                } else {
                    plan.wanted.push(w);
                }
            }
        }
    }

    // Commands: per family, retire and update lines in place, then append new lessons,
    // strongest first, each its own command citing its own grades.
    let mut out = Vec::new();
    for mut plan in plans {
        if plan.wanted.is_empty() && plan.retire.is_empty() {
            continue;
        }
        let mut text = match &plan.existing {
            Some(t) => t.clone(),
            None => {
                let h = header(&plan.family);
                out.push(Planned {
                    input: MemoryCommand::Create { path: plan.path.clone(), file_text: h.clone() },
                    causes: Vec::new(),
                });
                h
            }
        };
        for line in &plan.retire {
            replace_line(&mut out, &plan.path, &mut text, line, None, Vec::new());
        }
        plan.wanted.sort_by(|a, b| b.strength.total_cmp(&a.strength).then(a.rank.cmp(&b.rank)).then(a.key.cmp(&b.key)));
        for w in &plan.wanted {
            match &w.old {
                Some(old) => {
                    counts.updated += 1;
                    replace_line(&mut out, &plan.path, &mut text, old, Some(&w.line), w.causes.clone());
                }
                None => {
                    counts.added += 1;
                    // After the last line, as the tool inserts it (its own rules decide the
                    // newlines, so the text here stays what the store will hold).
                    let n = text.lines().count() as u64;
                    let insert_text = format!("{}\n", w.line);
                    let mut s =
                        crate::memory::MemoryState::from_files([(plan.path.clone(), std::mem::take(&mut text))]);
                    let cmd = MemoryCommand::Insert { path: plan.path.clone(), insert_line: n, insert_text };
                    if s.apply(&cmd, None).is_ok() {
                        out.push(Planned { input: cmd, causes: w.causes.clone() });
                    }
                    text = s.file(&plan.path).map(|f| f.text.to_string()).unwrap_or_default();
                }
            }
        }
    }
    out
}

/// Replaces (or with `new == None` removes) one line of `text`. When the line's text is
/// not unique in the file, the whole file is replaced instead (still one command).
fn replace_line(
    out: &mut Vec<Planned>,
    path: &str,
    text: &mut String,
    old: &str,
    new: Option<&str>,
    causes: Vec<EventId>,
) {
    let old_line = format!("{old}\n");
    let new_line = new.map(|n| format!("{n}\n")).unwrap_or_default();
    let at_start = text.starts_with(&old_line);
    let needle = format!("\n{old_line}");
    let occurrences = text.matches(&needle).count() + usize::from(at_start);
    let (old_str, new_str, updated) = if occurrences == 1 && text.matches(&old_line).count() == 1 {
        let updated = text.replacen(&old_line, &new_line, 1);
        (old_line, new_line, updated)
    } else {
        // Not unique as a substring: rewrite the first whole-line occurrence, sending
        // the full text (which occurs exactly once).
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let Some(i) = lines.iter().position(|l| *l == old_line) else { return };
        lines[i] = &new_line;
        let updated = lines.concat();
        (text.clone(), updated.clone(), updated)
    };
    out.push(Planned { input: MemoryCommand::StrReplace { path: path.to_owned(), old_str, new_str }, causes });
    *text = updated;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lesson_lines_parse_back_to_their_counts() {
        let c = Counts { a: 7, b: 12, c: 0, d: 0 };
        let line = render(LessonKind::Check, "1a2b3c4d", "action:get_user_details", c, &["s1".into()]);
        assert_eq!(parse_line(&line), Some((LessonKind::Check, "1a2b3c4d".into(), c)));
        let t = Counts { a: 8, b: 10, c: 3, d: 15 };
        let line = render(LessonKind::Tool, "00ff00ff", "refund", t, &[]);
        assert!(line.contains("pass 80% (8 of 10); without it 20% (3 of 15). Call `refund`"), "{line}");
        assert_eq!(parse_line(&line), Some((LessonKind::Tool, "00ff00ff".into(), t)));
        assert_eq!(parse_line("- [check:1a2b3c4d 9/3] impossible"), None);
        assert_eq!(parse_line("- a human's note"), None);
    }

    use crate::body::{Action, ActionStatus, Criterion, Grade};
    use crate::dream::Evidence;
    use crate::memory::MemoryState;
    use crate::CanonicalJson;

    /// `n` sessions of family `fam`: `fails` of them fail the check `c` and skip tool `t`.
    fn sessions(fam: &str, n: usize, fails: usize) -> Vec<SessionInput> {
        (0..n)
            .map(|i| {
                let passed = i >= fails;
                let session = format!("{fam}/{i}");
                let id = EventId::of(session.as_bytes());
                let actions = if passed {
                    vec![Evidence {
                        id: EventId::of(format!("{session}/a").as_bytes()),
                        position: 0,
                        body: Action {
                            session: session.clone(),
                            name: "t".into(),
                            call_id: None,
                            input: CanonicalJson::null(),
                            output: None,
                            status: ActionStatus::Ok,
                            meta: None,
                        },
                    }]
                } else {
                    Vec::new()
                };
                SessionInput {
                    session: session.clone(),
                    start: None,
                    actions,
                    grades: vec![Evidence {
                        id,
                        position: 1,
                        body: Grade {
                            session,
                            target: None,
                            rubric: fam.into(),
                            evaluator: "e".into(),
                            score: if passed { 1.0 } else { 0.0 },
                            result: if passed { GradeResult::Satisfied } else { GradeResult::Failed },
                            criteria: vec![Criterion {
                                name: "c".into(),
                                passed: Some(passed),
                                score: None,
                                note: None,
                            }],
                            meta: None,
                        },
                    }],
                    end: None,
                }
            })
            .collect()
    }

    fn input(memory: &MemoryState, sessions: Vec<SessionInput>) -> DreamInput {
        DreamInput {
            dreamer: NAME.into(),
            version: VERSION.into(),
            config: serde_json::Value::Null,
            store: "s".into(),
            base_state: memory.state_hash(),
            from_position: 0,
            to_position: 0,
            memory: memory.files().iter().map(|(p, f)| (p.clone(), f.text.to_string())).collect(),
            memory_rules: 1,
            memory_dirs: Vec::new(),
            sessions,
            format: 1,
            trials: Vec::new(),
            tasks: Default::default(),
        }
    }

    fn apply(memory: &mut MemoryState, plan: &[Planned]) {
        for p in plan {
            memory.apply(&p.input, None).unwrap();
        }
    }

    #[test]
    fn lessons_are_written_updated_retired_and_merged() {
        let cfg = EvidenceConfig::default();
        let mut memory = MemoryState::new();
        let (plan, summary) = dream(&input(&memory, sessions("fam", 20, 12)), &cfg);
        assert_eq!((summary.lines.added, summary.lines.updated, summary.lines.retired), (2, 0, 0), "{summary:?}");
        assert!(plan.iter().skip(1).all(|p| !p.causes.is_empty()), "every lesson cites grades");
        apply(&mut memory, &plan);
        let text = memory.file("/memories/lessons/fam.md").unwrap().text.to_string();
        assert!(text.contains("[check:") && text.contains(" 12/20]"), "{text}");
        assert!(text.contains("[tool:") && text.contains(" 8/8 0/12]"), "{text}");

        // A human adds a note and a duplicate of a lesson line.
        let check_line = text.lines().find(|l| l.starts_with("- [check:")).unwrap().to_owned();
        let edited = format!("{text}- a human's note\n{check_line}\n");
        let mut memory = MemoryState::from_files([("/memories/lessons/fam.md".to_string(), edited)]);
        // New sessions where the check mostly passes: counts are added up, and the check
        // lesson, now 13/60 (22 %), falls under the retire threshold (25 %).
        let (plan, summary) = dream(&input(&memory, sessions("fam", 40, 1)), &cfg);
        assert_eq!(summary.lines.merged, 1, "{summary:?}");
        assert_eq!(summary.lines.retired, 1, "{summary:?}");
        assert_eq!(summary.lines.updated, 1, "the tool lesson's counts change: {summary:?}");
        apply(&mut memory, &plan);
        let text = memory.file("/memories/lessons/fam.md").unwrap().text.to_string();
        assert!(!text.contains("[check:"), "{text}");
        assert!(text.contains(" 47/47 0/13]"), "tool counts cover all 60 sessions: {text}");
        assert!(text.contains("- a human's note\n"), "lines it did not write stay: {text}");
        // Nothing new: nothing to do.
        assert!(dream(&input(&memory, Vec::new()), &cfg).0.is_empty());
    }

    #[test]
    fn the_budget_keeps_the_strongest_lessons() {
        let cfg = EvidenceConfig { budget_bytes: 600, ..EvidenceConfig::default() };
        let mut all = sessions("a", 30, 20);
        all.extend(sessions("b", 30, 5));
        let mut memory = MemoryState::new();
        let (plan, summary) = dream(&input(&memory, all), &cfg);
        assert!(summary.lines.over_budget > 0, "{summary:?}");
        apply(&mut memory, &plan);
        let total: usize = memory.files().values().map(|f| f.text.len()).sum();
        assert!(total <= 600, "{total} bytes");
        let a = memory.file("/memories/lessons/a.md").map(|f| f.text.to_string()).unwrap_or_default();
        assert!(a.contains("[check:") && a.contains(" 20/30]"), "the strongest lesson stays: {a}");
    }

    #[test]
    fn family_paths_are_safe() {
        assert_eq!(family_path("/memories/lessons", "tau2/airline"), "/memories/lessons/tau2/airline.md");
        assert_eq!(family_path("/memories/lessons/", "../x y"), "/memories/lessons/x_y.md");
        assert_eq!(family_path("/memories/lessons", ""), "/memories/lessons/general.md");
    }
}
