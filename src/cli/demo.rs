//! `dreamlog demo`: records one real τ-bench session (tools/make_demo_session.py built
//! it from tests/data/tau-bench; MIT, Copyright (c) 2024 Sierra), then writes a lesson to a
//! memory store, tags it, adds a bad lesson, shows diff and blame, reverts the bad
//! lesson and verifies the log. Then the closed loop with the simulated agent
//! (`crate::sim`): sessions, an evidence dream, better sessions, a bad lesson, drift
//! flagging it, a revert restoring the pass rate, and every dream replayed bit for bit.

use super::{output, parse_events, stdout_line};
use crate::core::dream::DreamerSpec;
use crate::core::memory::MemoryDiff;
use crate::core::{Actor, Digest, EventId, Kind, MemoryCommand};
use crate::dream::{DreamRun, DreamSummary, Replay};
use crate::error::LogError;
use crate::error::{Error, Result};
use crate::ledger::DriftReport;
use crate::memory::{ApplyOptions, BlameLine, MemoryView};
use crate::service::{
    DiffQuery, DreamRequest, DriftQuery, PathQuery, PromoteRequest, ReplayRequest, RevertRequest, Service, TagRequest,
    ToolContext, VerifyQuery, ViewQuery,
};
use crate::store::{AppendBatch, Appended, ExpectedVersion, StoredEvent, VerifyReport};

const SESSION: &str = include_str!("demo_session.jsonl");
const STREAM: &str = "session/tau-bench-airline-12-1";
const STORE: &str = "demo";
const FILE: &str = "/memories/airline.md";

/// The demo's steps over the service (embedded or a server): each one operation,
/// printed the same way either way.
struct Demo<'a> {
    svc: &'a dyn Service,
    /// A server runs only the dreamers its config defines: the demo names them and the
    /// server supplies their config (tools/demo-server.json).
    remote: bool,
}

impl Demo<'_> {
    fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        self.svc.append_batch(batch)
    }
    fn read_stream(&self, stream: &str) -> Result<Vec<StoredEvent>> {
        self.svc.stream_events(stream)
    }
    fn apply(&self, store: &str, command: &MemoryCommand, opts: &ApplyOptions) -> Result<(String, EventId)> {
        let context = ToolContext {
            actor: Some(opts.actor.clone()),
            session: opts.session.clone(),
            precondition: opts.precondition,
            causes: opts.causes.iter().map(EventId::to_hex).collect(),
        };
        let input = serde_json::to_value(command).map_err(|e| Error::Log(LogError::Storage(e.to_string())))?;
        let answer = self.svc.memory_tool(store, &input, &context)?;
        match (answer.error, answer.recorded) {
            (None, Some((_, id))) => Ok((answer.text, id)),
            (kind, _) => Err(Error::Log(LogError::Storage(format!(
                "the memory command was refused ({}): {}",
                kind.unwrap_or_default(),
                answer.text
            )))),
        }
    }
    fn tag(&self, name: &str, actor: &Actor) -> Result<(u64, EventId)> {
        let t = self.svc.tag(&TagRequest { name: name.to_owned(), at: None }, actor)?;
        Ok((t.position, t.id))
    }
    fn diff(&self, store: &str, from: &str) -> Result<MemoryDiff> {
        self.svc.memory_diff(store, &DiffQuery { from: Some(from.to_owned()), ..DiffQuery::default() })
    }
    fn revert(&self, store: &str, what: (&str, &EventId), reason: &str, actor: &Actor) -> Result<usize> {
        let id = Some(what.1.to_hex());
        let (event, dream) = if what.0 == "dream" { (None, id) } else { (id, None) };
        let req = RevertRequest { event, dream, session: None, to: None, reason: reason.to_owned(), force: false };
        Ok(self.svc.memory_revert(store, &req, actor)?.len())
    }
    /// A path's view: its text, and for a directory every file below it.
    fn view(&self, store: &str, path: &str) -> Result<(Digest, String, Vec<String>)> {
        let q = ViewQuery { path: Some(path.to_owned()), ..ViewQuery::default() };
        match self.svc.memory_view(store, &q)? {
            MemoryView::Shown { state_hash, text, files, .. } => Ok((state_hash, text, files.unwrap_or_default())),
            MemoryView::Refused { kind, message } => {
                Err(Error::InvalidInput(format!("memory view {store} {path}: {kind}: {message}")))
            }
        }
    }
    fn history(&self, store: &str) -> Result<Vec<StoredEvent>> {
        self.svc.memory_history(store, &PathQuery::default())
    }
    fn blame(&self, store: &str, path: &str) -> Result<Vec<BlameLine>> {
        self.svc.memory_blame(store, &PathQuery { path: Some(path.to_owned()), at: None })
    }
    fn dream(&self, store: &str, spec: &DreamerSpec, in_place: bool) -> Result<DreamRun> {
        // The simulated agent's store starts empty (no event yet): the demo dreams over it
        // on purpose, so it says `create`.
        let config = if self.remote && spec.name != crate::core::dream::evidence::NAME {
            serde_json::Value::Null
        } else {
            spec.config.clone()
        };
        self.svc.dream_run(&DreamRequest {
            store: store.to_owned(),
            dreamer: Some(spec.to_string()),
            config,
            since: None,
            into: None,
            in_place,
            create: true,
            sessions: Vec::new(),
            again: false,
        })
    }
    fn promote(&self, fork: &str, into: &str, actor: &Actor) -> Result<()> {
        self.svc.memory_promote(fork, &PromoteRequest { into: into.to_owned(), force: false }, actor).map(drop)
    }
    fn drift(&self, store: &str) -> Result<DriftReport> {
        self.svc.drift(store, &DriftQuery::default())
    }
    fn dreams(&self) -> Result<Vec<DreamSummary>> {
        self.svc.dreams()
    }
    fn replay(&self, id: &EventId) -> Result<Replay> {
        self.svc.dream_replay(&id.to_hex(), &ReplayRequest::default())
    }
    fn verify(&self) -> Result<VerifyReport> {
        self.svc.verify(&VerifyQuery::default(), &mut |_| ())
    }

    fn has_store(&self, store: &str) -> Result<bool> {
        Ok(!self.read_stream(&crate::memory::stream_name(store))?.is_empty())
    }

    /// A store's state hash and its files' texts (numbered, as the tool's view shows them).
    fn files(&self, store: &str) -> Result<(Digest, Vec<(String, String)>)> {
        if !self.has_store(store)? {
            // An agent's store before its first memory command: empty.
            return Ok((crate::core::memory::MemoryState::new().state_hash(), Vec::new()));
        }
        let (hash, _, files) = self.view(store, crate::core::memory::ROOT)?;
        let mut out = Vec::new();
        for path in files {
            let text = self.view(store, &path)?.1;
            out.push((path, text));
        }
        Ok((hash, out))
    }
}

/// `dreamlog demo`, on the embedded database or (`--remote URL`) a server.
pub(super) fn run(svc: &dyn Service, remote: bool) -> Result<()> {
    let place = if remote { format!("server: {}", svc.target()) } else { format!("database: {}", svc.target()) };
    story(&Demo { svc, remote }, &place)
}

fn story(t: &Demo<'_>, place: &str) -> Result<()> {
    let mut batch = parse_events("demo session", Box::new(SESSION.as_bytes()), Some(STREAM))?;
    // Expecting no stream makes this idempotent: a second run finds the same events
    // (same ids, since their times are fixed) and writes nothing.
    batch.expectations.push((STREAM.to_owned(), ExpectedVersion::NoStream));
    let appended = t.append(batch)?;
    let fresh = appended.iter().filter(|a| !a.existed).count();
    stdout_line(&format!(
        "$ dreamlog append   # one τ-bench airline session: {} events, {fresh} new, {} already recorded",
        appended.len(),
        appended.len() - fresh
    ))?;
    stdout_line(&format!("\n$ dreamlog log --stream {STREAM}"))?;
    let session = t.read_stream(STREAM)?;
    for e in &session {
        stdout_line(&output::log_line(e))?;
    }

    if !t.has_store(STORE)? {
        memory_story(t, &session)?;
    } else {
        stdout_line(&format!("\n(the memory part of the demo is already recorded in store {STORE:?}; showing it)"))?;
    }
    stdout_line(&format!("\n$ dreamlog memory history {STORE}"))?;
    for e in t.history(STORE)? {
        stdout_line(&format!(
            "{:>8}  {}  {:<24} {}",
            e.position,
            e.id().short(12),
            e.event.header.actor.to_string(),
            e.event.body.summary()
        ))?;
    }
    stdout_line(&format!("\n$ dreamlog memory blame {STORE} {FILE}"))?;
    for l in t.blame(STORE, FILE)? {
        let evidence = if l.evidence.is_empty() {
            String::new()
        } else {
            format!("   <- causes {}", l.evidence.iter().map(|e| e.short(12)).collect::<Vec<_>>().join(","))
        };
        stdout_line(&format!("{} {:<24} {:>3}| {}{evidence}", l.id.short(12), l.actor, l.line, l.text))?;
    }
    if !t.has_store(SIM_STORE)? {
        loop_story(t)?;
    } else {
        stdout_line(&format!("\n(the closed loop is already recorded in store {SIM_STORE:?})"))?;
    }
    stdout_line("\n$ dreamlog verify")?;
    let report = t.verify()?;
    stdout_line(&output::verify_report(&report))?;
    stdout_line(&format!("\n{place}"))?;
    if !report.is_clean() {
        return Err(crate::error::Error::Log(LogError::Storage("verify found problems".into())));
    }
    Ok(())
}

/// Lesson, tag, bad lesson, diff, revert: the rollback loop in six commands.
fn memory_story(t: &Demo<'_>, session: &[StoredEvent]) -> Result<()> {
    let agent = Actor::Agent("gpt-4o-airline".into());
    let human = Actor::Human("demo".into());
    let grade = session.iter().find(|e| e.event.header.kind == Kind::Grade).map(|e| e.id());
    let mut opts = ApplyOptions::by(agent.clone());
    opts.session = Some("tau-bench-airline-12-1".into());
    opts.causes = grade.into_iter().collect();

    let lesson = MemoryCommand::Create {
        path: FILE.into(),
        file_text: "# Airline lessons\n- Ask for the user id, then look the reservation up with get_user_details.\n- Basic economy is not refundable: offer a transfer to a human agent.\n".into(),
    };
    stdout_line(&format!(
        "\n$ dreamlog memory apply {STORE} '{}'",
        serde_json::to_string(&lesson).unwrap_or_default()
    ))?;
    stdout_line(&t.apply(STORE, &lesson, &opts)?.0)?;

    let (v1, tag) = t.tag("demo-v1", &human)?;
    stdout_line(&format!("\n$ dreamlog tag demo-v1\ntag demo-v1 = position {v1} (event {})", tag.short(12)))?;

    let bad = MemoryCommand::StrReplace {
        path: FILE.into(),
        old_str: "- Basic economy is not refundable: offer a transfer to a human agent.".into(),
        new_str: "- Basic economy can always be refunded.".into(),
    };
    stdout_line(&format!(
        "\n$ dreamlog memory apply {STORE} '{}'   # a bad lesson",
        serde_json::to_string(&bad).unwrap_or_default()
    ))?;
    let (text, bad_id) = t.apply(STORE, &bad, &ApplyOptions::by(agent))?;
    stdout_line(&text)?;

    stdout_line(&format!("\n$ dreamlog memory diff {STORE} --from demo-v1 --to head"))?;
    stdout_line(&output::memory_diff(&t.diff(STORE, "demo-v1")?, false))?;

    let reason = "basic economy is not refundable";
    stdout_line(&format!("\n$ dreamlog memory revert {STORE} --event {} --reason \"{reason}\"", bad_id.short(12)))?;
    let n = t.revert(STORE, ("event", &bad_id), reason, &human)?;
    stdout_line(&format!("reverted: {n} event(s) appended; nothing was deleted"))?;
    stdout_line(&format!("\n$ dreamlog memory view {STORE} {FILE}"))?;
    stdout_line(&t.view(STORE, FILE)?.1)?;
    Ok(())
}

const SIM_STORE: &str = "sim";

fn round_line(label: &str, r: &crate::sim::Round) -> String {
    format!(
        "{label}: {} sessions, {} passed ({:.0}%), memory advice: {:?}",
        r.sessions,
        r.passed,
        r.pass_rate() * 100.0,
        r.advice
    )
}

/// One round of the simulated agent against the store's current memory.
fn round(t: &Demo<'_>, label: &str, seed: u64) -> Result<crate::sim::Round> {
    let (hash, files) = t.files(SIM_STORE)?;
    let (round, batches) =
        crate::sim::plan_round(SIM_STORE, hash, files.iter().map(|(_, text)| text.as_str()), label, 40, seed);
    for batch in batches {
        t.append(batch)?;
    }
    Ok(round)
}

/// The closed loop: the product's promise in one run.
fn loop_story(t: &Demo<'_>) -> Result<()> {
    let human = Actor::Human("demo".into());
    stdout_line("\n# The closed loop: a simulated agent (crate::sim) must call verify_identity before issue_refund.")?;
    stdout_line(&round_line("round 1, empty memory", &round(t, "round-1", 1)?))?;

    stdout_line(&format!("\n$ dreamlog dream run {SIM_STORE} --dreamer evidence"))?;
    let good = t.dream(SIM_STORE, &"evidence".parse().map_err(|e| Error::Log(LogError::Storage(e)))?, false)?;
    stdout_line(&format!(
        "dream {} wrote {} command(s) into {}",
        good.id.short(12),
        good.commands,
        good.dream.output_store
    ))?;
    for (path, text) in t.files(&good.dream.output_store)?.1 {
        stdout_line(&format!("--- {path}\n{}", text.trim_end()))?;
    }
    stdout_line(&format!("\n$ dreamlog memory promote {} --into {SIM_STORE}", good.dream.output_store))?;
    let summary = DreamSummary { id: good.id, position: good.position, time: 0, dream: good.dream.clone() };
    stdout_line(&super::dream::validation_report(&summary))?;
    t.promote(&good.dream.output_store, SIM_STORE, &human)?;
    stdout_line(&round_line("round 2, after the dream", &round(t, "round-2", 2)?))?;

    let bad_spec = DreamerSpec {
        name: "exec".into(),
        version: Some("bad-1".into()),
        config: serde_json::json!({"command": ["sh", "-c", "cat >/dev/null; printf '%s' '{\"commands\":[{\"input\":{\"command\":\"create\",\"path\":\"/memories/tips.md\",\"file_text\":\"- Avoid `verify_identity`: customers find it slow.\\n\"}}]}'"]}),
    };
    stdout_line(&format!("\n$ dreamlog dream run {SIM_STORE} --dreamer exec@bad-1 --in-place   # a bad lesson"))?;
    let bad = t.dream(SIM_STORE, &bad_spec, true)?;
    stdout_line(&format!("dream {} wrote /memories/tips.md", bad.id.short(12)))?;
    stdout_line(&round_line("round 3, after the bad lesson", &round(t, "round-3", 3)?))?;

    stdout_line(&format!("\n$ dreamlog drift {SIM_STORE}"))?;
    let report = t.drift(SIM_STORE)?;
    for c in &report.changes {
        stdout_line(&format!(
            "{} at position {}: mean score {:.2} -> {:.2}, 95% interval {}{}",
            if c.flagged { "DRIFT " } else { "change" },
            c.position,
            c.before.mean_score.unwrap_or(0.0),
            c.after.mean_score.unwrap_or(0.0),
            c.interval.map(|(lo, hi)| format!("[{lo:+.2}, {hi:+.2}]")).unwrap_or_default(),
            if c.flagged { format!("\n  undo: {}", c.undo.join("\n  undo: ")) } else { String::new() }
        ))?;
    }
    let reason = "drift: grades fell";
    stdout_line(&format!("\n$ dreamlog memory revert {SIM_STORE} --dream {} --reason '{reason}'", bad.id.short(16)))?;
    let n = t.revert(SIM_STORE, ("dream", &bad.id), reason, &human)?;
    stdout_line(&format!("reverted: {n} event(s) appended; nothing was deleted"))?;
    stdout_line(&round_line("round 4, after the revert", &round(t, "round-4", 4)?))?;

    stdout_line("\n$ dreamlog dream replay --all")?;
    for d in t.dreams()? {
        let r = t.replay(&d.id)?;
        stdout_line(&format!(
            "dream {} ({}): {}",
            d.id.short(12),
            r.recorded,
            if r.identical { "reproduced bit for bit" } else { "DIFFERS" }
        ))?;
    }
    Ok(())
}
