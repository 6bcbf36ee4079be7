//! `dreamlog demo`: records one real τ-bench session (tools/make_demo_session.py built
//! it from ../shared/data; MIT, Copyright (c) 2024 Sierra), then writes a lesson to a
//! memory store, tags it, adds a bad lesson, shows diff and blame, reverts the bad
//! lesson and verifies the log. Then the closed loop with the simulated agent
//! (`crate::sim`): sessions, an evidence dream, better sessions, a bad lesson, drift
//! flagging it, a revert restoring the pass rate, and every dream replayed bit for bit.

use super::{open, output, parse_events, stdout_line, Cli};
use crate::core::{Actor, Kind, MemoryCommand};
use crate::error::Result;
use crate::memory::{ApplyOptions, Memory};
use crate::store::ExpectedVersion;

const SESSION: &str = include_str!("demo_session.jsonl");
const STREAM: &str = "session/tau-bench-airline-12-1";
const STORE: &str = "demo";
const FILE: &str = "/memories/airline.md";

pub(super) fn run(cli: &Cli) -> Result<()> {
    let store = open(cli, true)?;
    let mut batch = parse_events("demo session", Box::new(SESSION.as_bytes()), Some(STREAM))?;
    // Expecting no stream makes this idempotent: a second run finds the same events
    // (same ids, since their times are fixed) and writes nothing.
    batch.expectations.push((STREAM.to_owned(), ExpectedVersion::NoStream));
    let appended = store.append(batch)?;
    let fresh = appended.iter().filter(|a| !a.existed).count();
    stdout_line(&format!(
        "$ dreamlog append   # one τ-bench airline session: {} events, {fresh} new, {} already recorded",
        appended.len(),
        appended.len() - fresh
    ))?;
    stdout_line(&format!("\n$ dreamlog log --stream {STREAM}"))?;
    let session = store.read_stream(STREAM, 0, usize::MAX)?;
    for e in &session {
        stdout_line(&output::log_line(e))?;
    }

    let mem = Memory::new(store.clone());
    if store.stream_version(&crate::memory::stream_name(STORE))?.is_none() {
        memory_story(&mem, &session)?;
    } else {
        stdout_line(&format!("\n(the memory part of the demo is already recorded in store {STORE:?}; showing it)"))?;
    }
    stdout_line(&format!("\n$ dreamlog memory history {STORE}"))?;
    for e in mem.history(STORE, None)? {
        stdout_line(&format!(
            "{:>8}  {}  {:<24} {}",
            e.position,
            e.id().short(12),
            e.event.header.actor.to_string(),
            e.event.body.summary()
        ))?;
    }
    stdout_line(&format!("\n$ dreamlog memory blame {STORE} {FILE}"))?;
    for l in mem.blame(STORE, FILE, store.len())? {
        let evidence = if l.evidence.is_empty() {
            String::new()
        } else {
            format!("   <- causes {}", l.evidence.iter().map(|e| e.short(12)).collect::<Vec<_>>().join(","))
        };
        stdout_line(&format!("{} {:<24} {:>3}| {}{evidence}", l.id.short(12), l.actor, l.line, l.text))?;
    }
    if store.stream_version(&crate::memory::stream_name(SIM_STORE))?.is_none() {
        loop_story(&mem)?;
    } else {
        stdout_line(&format!("\n(the closed loop is already recorded in store {SIM_STORE:?})"))?;
    }
    stdout_line("\n$ dreamlog verify")?;
    let report = store.verify(|_| {})?;
    stdout_line(&output::verify_report(&report))?;
    stdout_line(&format!("\ndatabase: {}", cli.db.display()))?;
    store.close()?;
    if !report.is_clean() {
        return Err(crate::error::Error::Storage("verify found problems".into()));
    }
    Ok(())
}

/// Lesson, tag, bad lesson, diff, revert: the rollback loop in six commands.
fn memory_story(mem: &Memory, session: &[crate::store::StoredEvent]) -> Result<()> {
    let agent = Actor::Agent("gpt-4o-airline".into());
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
    stdout_line(&mem.apply(STORE, lesson, opts.clone())?.text)?;

    let v1 = mem.store().len();
    let tag = mem.tag("demo-v1", v1, Actor::Human("demo".into()))?;
    stdout_line(&format!("\n$ dreamlog tag demo-v1\ntag demo-v1 = position {} (event {})", v1 - 1, tag.id.short(12)))?;

    let bad = MemoryCommand::StrReplace {
        path: FILE.into(),
        old_str: "- Basic economy is not refundable: offer a transfer to a human agent.".into(),
        new_str: "- Basic economy can always be refunded.".into(),
    };
    stdout_line(&format!(
        "\n$ dreamlog memory apply {STORE} '{}'   # a bad lesson",
        serde_json::to_string(&bad).unwrap_or_default()
    ))?;
    let bad_event = mem.apply(STORE, bad, ApplyOptions::by(agent))?;
    stdout_line(&bad_event.text)?;

    stdout_line(&format!("\n$ dreamlog memory diff {STORE} --from demo-v1 --to head"))?;
    let d = mem.diff(STORE, mem.resolve_point("demo-v1")?, STORE, mem.store().len())?;
    stdout_line(&output::memory_diff(&d, false))?;

    stdout_line(&format!(
        "\n$ dreamlog memory revert {STORE} --event {} --reason \"basic economy is not refundable\"",
        bad_event.event.id.short(12)
    ))?;
    let reverted = mem.revert_event(
        STORE,
        &bad_event.event.id,
        "basic economy is not refundable",
        false,
        Actor::Human("demo".into()),
    )?;
    stdout_line(&format!("reverted: {} event(s) appended; nothing was deleted", reverted.len()))?;
    stdout_line(&format!("\n$ dreamlog memory view {STORE} {FILE}"))?;
    let (state, _) = mem.state(STORE)?;
    stdout_line(&state.view(FILE, None)?)?;
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

/// The closed loop: the product's promise in one run.
fn loop_story(mem: &Memory) -> Result<()> {
    use crate::core::dream::DreamerSpec;
    use crate::dream::{Dreams, RunOptions};
    use crate::sim::run_round;

    let dreams = Dreams::new(mem.clone());
    let human = Actor::Human("demo".into());
    stdout_line("\n# The closed loop: a simulated agent (crate::sim) must call verify_identity before issue_refund.")?;
    stdout_line(&round_line("round 1, empty memory", &run_round(mem, SIM_STORE, "round-1", 40, 1)?))?;

    stdout_line(&format!("\n$ dreamlog dream run {SIM_STORE} --dreamer evidence"))?;
    let good =
        dreams.run(SIM_STORE, &"evidence".parse().map_err(crate::error::Error::Storage)?, &RunOptions::default())?;
    stdout_line(&format!(
        "dream {} wrote {} command(s) into {}",
        good.id.short(12),
        good.commands,
        good.dream.output_store
    ))?;
    let (fork, _) = mem.state(&good.dream.output_store)?;
    for (path, f) in fork.files() {
        stdout_line(&format!("--- {path}\n{}", f.text.trim_end()))?;
    }
    stdout_line(&format!("\n$ dreamlog memory promote {} --into {SIM_STORE}", good.dream.output_store))?;
    mem.promote(&good.dream.output_store, SIM_STORE, human.clone())?;
    stdout_line(&round_line("round 2, after the dream", &run_round(mem, SIM_STORE, "round-2", 40, 2)?))?;

    let bad_spec = DreamerSpec {
        name: "exec".into(),
        version: Some("bad-1".into()),
        config: serde_json::json!({"command": ["sh", "-c", "cat >/dev/null; printf '%s' '{\"commands\":[{\"input\":{\"command\":\"create\",\"path\":\"/memories/tips.md\",\"file_text\":\"- Avoid `verify_identity`: customers find it slow.\\n\"}}]}'"]}),
    };
    stdout_line(&format!("\n$ dreamlog dream run {SIM_STORE} --dreamer exec@bad-1 --in-place   # a bad lesson"))?;
    let bad = dreams.run(SIM_STORE, &bad_spec, &RunOptions { in_place: true, ..RunOptions::default() })?;
    stdout_line(&format!("dream {} wrote /memories/tips.md", bad.id.short(12)))?;
    stdout_line(&round_line("round 3, after the bad lesson", &run_round(mem, SIM_STORE, "round-3", 40, 3)?))?;

    stdout_line(&format!("\n$ dreamlog drift {SIM_STORE}"))?;
    let report = crate::ledger::drift(mem, SIM_STORE, crate::ledger::DriftOptions::default())?;
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
    stdout_line(&format!(
        "\n$ dreamlog memory revert {SIM_STORE} --dream {} --reason 'drift: grades fell'",
        bad.id.short(16)
    ))?;
    let reverted = mem.revert_dream(SIM_STORE, &bad.id, "drift: grades fell", false, human)?;
    stdout_line(&format!("reverted: {} event(s) appended; nothing was deleted", reverted.len()))?;
    stdout_line(&round_line("round 4, after the revert", &run_round(mem, SIM_STORE, "round-4", 40, 4)?))?;

    stdout_line("\n$ dreamlog dream replay --all")?;
    for d in dreams.list(None)? {
        let r = dreams.replay(&d.id, None)?;
        stdout_line(&format!(
            "dream {} ({}): {}",
            d.id.short(12),
            r.recorded,
            if r.identical { "reproduced bit for bit" } else { "DIFFERS" }
        ))?;
    }
    Ok(())
}
