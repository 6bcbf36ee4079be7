//! `dreamlog demo`: records one real τ-bench session (tools/make_demo_session.py built
//! it from tests/data/tau-bench; MIT, Copyright (c) 2024 Sierra), then writes a lesson to a
//! memory store, tags it, adds a bad lesson, shows diff and blame, reverts the bad
//! lesson and verifies the log. Then the closed loop with the simulated agent
//! (`crate::sim`): sessions, an evidence dream, better sessions, a bad lesson, drift
//! flagging it, a revert restoring the pass rate, and every dream replayed bit for bit.

use super::{open, output, parse_events, stdout_line, Cli};
use crate::core::dream::DreamerSpec;
use crate::core::memory::MemoryDiff;
use crate::core::{Actor, Digest, EventId, Kind, MemoryCommand};
use crate::dream::{DreamRun, DreamSummary, Dreams, Replay, RunOptions};
use crate::error::Result;
use crate::ledger::DriftReport;
use crate::memory::{ApplyOptions, BlameLine, Memory};
use crate::remote::{Remote, ToolContext};
use crate::store::{AppendBatch, Appended, ExpectedVersion, Store, StoredEvent, VerifyReport};

const SESSION: &str = include_str!("demo_session.jsonl");
const STREAM: &str = "session/tau-bench-airline-12-1";
const STORE: &str = "demo";
const FILE: &str = "/memories/airline.md";

/// What the demo runs against: the embedded database or a server. Each step is one
/// library call (or one request), printed the same way either way.
trait Target {
    fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>>;
    fn read_stream(&self, stream: &str) -> Result<Vec<StoredEvent>>;
    fn apply(&self, store: &str, command: &MemoryCommand, opts: &ApplyOptions) -> Result<(String, EventId)>;
    fn tag(&self, name: &str, actor: &Actor) -> Result<(u64, EventId)>;
    fn diff(&self, store: &str, from: &str) -> Result<MemoryDiff>;
    fn revert(&self, store: &str, what: (&str, &EventId), reason: &str, actor: &Actor) -> Result<usize>;
    fn view(&self, store: &str, path: &str) -> Result<serde_json::Value>;
    fn history(&self, store: &str) -> Result<Vec<StoredEvent>>;
    fn blame(&self, store: &str, path: &str) -> Result<Vec<BlameLine>>;
    fn dream(&self, store: &str, spec: &DreamerSpec, in_place: bool) -> Result<DreamRun>;
    fn promote(&self, fork: &str, into: &str, actor: &Actor) -> Result<()>;
    fn drift(&self, store: &str) -> Result<DriftReport>;
    fn dreams(&self) -> Result<Vec<DreamSummary>>;
    fn replay(&self, id: &EventId) -> Result<Replay>;
    fn verify(&self) -> Result<VerifyReport>;

    fn has_store(&self, store: &str) -> Result<bool> {
        Ok(!self.read_stream(&crate::memory::stream_name(store))?.is_empty())
    }

    /// A store's state hash and its files' texts (numbered, as the tool's view shows them).
    fn files(&self, store: &str) -> Result<(Digest, Vec<(String, String)>)> {
        if !self.has_store(store)? {
            // An agent's store before its first memory command: empty.
            return Ok((crate::core::memory::MemoryState::new().state_hash(), Vec::new()));
        }
        let root = self.view(store, crate::core::memory::ROOT)?;
        let hash: Digest = root["state_hash"].as_str().unwrap_or_default().parse()?;
        let mut out = Vec::new();
        for path in root["files"].as_array().into_iter().flatten().filter_map(|p| p.as_str()) {
            out.push((path.to_owned(), self.view(store, path)?["text"].as_str().unwrap_or_default().to_owned()));
        }
        Ok((hash, out))
    }
}

struct Local {
    mem: Memory,
    dreams: Dreams,
}

impl Local {
    fn store(&self) -> &Store {
        self.mem.store()
    }
}

impl Target for Local {
    fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        self.store().append(batch)
    }
    fn read_stream(&self, stream: &str) -> Result<Vec<StoredEvent>> {
        self.store().read_stream(stream, 0, usize::MAX)
    }
    fn apply(&self, store: &str, command: &MemoryCommand, opts: &ApplyOptions) -> Result<(String, EventId)> {
        let a = self.mem.apply(store, command.clone(), opts.clone())?;
        Ok((a.text, a.event.id))
    }
    fn tag(&self, name: &str, actor: &Actor) -> Result<(u64, EventId)> {
        let at = self.store().len();
        Ok((at - 1, self.mem.tag(name, at, actor.clone())?.id))
    }
    fn diff(&self, store: &str, from: &str) -> Result<MemoryDiff> {
        self.mem.diff(store, self.mem.resolve_point(from)?, store, self.store().len())
    }
    fn revert(&self, store: &str, what: (&str, &EventId), reason: &str, actor: &Actor) -> Result<usize> {
        let appended = match what.0 {
            "dream" => self.mem.revert_dream(store, what.1, reason, false, actor.clone())?,
            _ => self.mem.revert_event(store, what.1, reason, false, actor.clone())?,
        };
        Ok(appended.len())
    }
    fn view(&self, store: &str, path: &str) -> Result<serde_json::Value> {
        self.mem.view(store, path, "head", None)
    }
    fn history(&self, store: &str) -> Result<Vec<StoredEvent>> {
        self.mem.history(store, None)
    }
    fn blame(&self, store: &str, path: &str) -> Result<Vec<BlameLine>> {
        self.mem.blame(store, path, self.store().len())
    }
    fn dream(&self, store: &str, spec: &DreamerSpec, in_place: bool) -> Result<DreamRun> {
        // The simulated agent's store starts empty (no event yet): the demo dreams over it
        // on purpose, so it says `create`.
        self.dreams.run(store, spec, &RunOptions { in_place, create: true, ..RunOptions::default() })
    }
    fn promote(&self, fork: &str, into: &str, actor: &Actor) -> Result<()> {
        self.mem.promote(fork, into, actor.clone()).map(drop)
    }
    fn drift(&self, store: &str) -> Result<DriftReport> {
        crate::ledger::drift(&self.mem, store, crate::ledger::DriftOptions::default())
    }
    fn dreams(&self) -> Result<Vec<DreamSummary>> {
        self.dreams.list(None)
    }
    fn replay(&self, id: &EventId) -> Result<Replay> {
        self.dreams.replay(id, None)
    }
    fn verify(&self) -> Result<VerifyReport> {
        self.store().verify(|_| {})
    }
}

impl Target for Remote {
    fn append(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        self.append_drafts(batch)
    }
    fn read_stream(&self, stream: &str) -> Result<Vec<StoredEvent>> {
        let mut out: Vec<StoredEvent> = Vec::new();
        loop {
            let page = Remote::read_stream(self, stream, out.len() as u64, 1000)?;
            let done = page.len() < 1000;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
    fn apply(&self, store: &str, command: &MemoryCommand, opts: &ApplyOptions) -> Result<(String, EventId)> {
        let context = ToolContext {
            actor: Some(opts.actor.clone()),
            session: opts.session.clone(),
            precondition: opts.precondition,
            causes: opts.causes.iter().map(EventId::to_hex).collect(),
        };
        let input = serde_json::to_value(command).map_err(|e| crate::error::Error::Storage(e.to_string()))?;
        let answer = self.memory_tool(store, &input, &context)?;
        match (answer.error, answer.recorded) {
            (None, Some((_, id))) => Ok((answer.text, id)),
            (kind, _) => Err(crate::error::Error::Storage(format!(
                "the server refused the memory command ({}): {}",
                kind.unwrap_or_default(),
                answer.text
            ))),
        }
    }
    fn tag(&self, name: &str, actor: &Actor) -> Result<(u64, EventId)> {
        let (position, id, _) = Remote::tag(self, name, "head", actor)?;
        Ok((position, id))
    }
    fn diff(&self, store: &str, from: &str) -> Result<MemoryDiff> {
        Remote::diff(self, store, None, from, "head", "head")
    }
    fn revert(&self, store: &str, what: (&str, &EventId), reason: &str, actor: &Actor) -> Result<usize> {
        Ok(Remote::revert(self, store, (what.0, &what.1.to_hex()), reason, false, actor)?.len())
    }
    fn view(&self, store: &str, path: &str) -> Result<serde_json::Value> {
        self.memory_view(store, path, "head", None)
    }
    fn history(&self, store: &str) -> Result<Vec<StoredEvent>> {
        Remote::history(self, store, None)
    }
    fn blame(&self, store: &str, path: &str) -> Result<Vec<BlameLine>> {
        Remote::blame(self, store, path, "head")
    }
    fn dream(&self, store: &str, spec: &DreamerSpec, in_place: bool) -> Result<DreamRun> {
        // A server runs only the dreamers its config defines (tools/demo-server.json
        // defines the demo's bad-lesson program): name it, the server supplies its config.
        let mut spec = spec.clone();
        if spec.name != crate::core::evidence::NAME {
            spec.config = serde_json::Value::Null;
        }
        self.dream_run(store, &spec, None, None, in_place, true)
    }
    fn promote(&self, fork: &str, into: &str, actor: &Actor) -> Result<()> {
        Remote::promote(self, fork, into, actor).map(drop)
    }
    fn drift(&self, store: &str) -> Result<DriftReport> {
        let defaults = crate::ledger::DriftOptions::default();
        Remote::drift(self, store, defaults.resamples, defaults.min_sessions)
    }
    fn dreams(&self) -> Result<Vec<DreamSummary>> {
        Remote::dreams(self)
    }
    fn replay(&self, id: &EventId) -> Result<Replay> {
        self.dream_replay(&id.to_hex(), None, None)
    }
    fn verify(&self) -> Result<VerifyReport> {
        Remote::verify(self, false)
    }
}

/// `dreamlog demo` on the embedded database.
pub(super) fn run(cli: &Cli) -> Result<()> {
    let store = open(cli, true)?;
    let mem = Memory::new(store.clone());
    let local = Local { dreams: Dreams::new(mem.clone()), mem };
    let result = story(&local, &format!("database: {}", cli.db.display()));
    store.close()?;
    result
}

/// `dreamlog --remote URL demo`: the same story against a server.
pub(super) fn run_remote(remote: &Remote, url: &str) -> Result<()> {
    story(remote, &format!("server: {url}"))
}

fn story(t: &dyn Target, place: &str) -> Result<()> {
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
        return Err(crate::error::Error::Storage("verify found problems".into()));
    }
    Ok(())
}

/// Lesson, tag, bad lesson, diff, revert: the rollback loop in six commands.
fn memory_story(t: &dyn Target, session: &[StoredEvent]) -> Result<()> {
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
    stdout_line(t.view(STORE, FILE)?["text"].as_str().unwrap_or_default())?;
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
fn round(t: &dyn Target, label: &str, seed: u64) -> Result<crate::sim::Round> {
    let (hash, files) = t.files(SIM_STORE)?;
    let (round, batches) =
        crate::sim::plan_round(SIM_STORE, hash, files.iter().map(|(_, text)| text.as_str()), label, 40, seed);
    for batch in batches {
        t.append(batch)?;
    }
    Ok(round)
}

/// The closed loop: the product's promise in one run.
fn loop_story(t: &dyn Target) -> Result<()> {
    let human = Actor::Human("demo".into());
    stdout_line("\n# The closed loop: a simulated agent (crate::sim) must call verify_identity before issue_refund.")?;
    stdout_line(&round_line("round 1, empty memory", &round(t, "round-1", 1)?))?;

    stdout_line(&format!("\n$ dreamlog dream run {SIM_STORE} --dreamer evidence"))?;
    let good = t.dream(SIM_STORE, &"evidence".parse().map_err(crate::error::Error::Storage)?, false)?;
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
