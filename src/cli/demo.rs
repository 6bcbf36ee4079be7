//! `dreamlog demo`: records one real τ-bench session (tools/make_demo_session.py built
//! it from ../shared/data; MIT, Copyright (c) 2024 Sierra) and shows `log` and `verify`.

use super::{open, output, parse_events, stdout_line, Cli};
use crate::error::Result;
use crate::store::ExpectedVersion;

const SESSION: &str = include_str!("demo_session.jsonl");
const STREAM: &str = "session/tau-bench-airline-12-1";

pub(super) fn run(cli: &Cli) -> Result<()> {
    let store = open(cli, true)?;
    let mut batch = parse_events("demo session", Box::new(SESSION.as_bytes()), Some(STREAM))?;
    // Expecting no stream makes the demo idempotent: a second run finds the same events
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
    for e in store.read_stream(STREAM, 0, usize::MAX)? {
        stdout_line(&output::log_line(&e))?;
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
