//! Export of the log as JSON Lines: every event in its JSON form with position, id,
//! version, time and parents, so the receiver can recompute every id; and the reading
//! of such a file back (`service::import_export` writes it into any service).

use std::io::{BufRead, Write};

use crate::core::{EventJson, SealedEvent};
use crate::error::{Error, Result};
use crate::store::Store;

/// Events per append batch during an import.
pub(crate) const IMPORT_BATCH: usize = 2000;

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Lines (events) read.
    pub events: u64,
    /// Events appended.
    pub appended: u64,
    /// Events that were already in the store (same id).
    pub existing: u64,
    /// Whether positions in the file equal the positions the events now have.
    pub same_positions: bool,
}

/// Writes every event from `from` on as JSON Lines; returns the number written.
/// `progress` gets the count every few thousand events.
pub fn export(store: &Store, from: u64, out: &mut dyn Write, mut progress: impl FnMut(u64)) -> Result<u64> {
    let mut n = 0u64;
    let mut failed: Option<std::io::Error> = None;
    let mut receipts = store.received_cursor();
    let mut lookup_failed = None;
    store.scan(from, |e| {
        let mut json = e.to_json();
        match receipts.at(e.position) {
            Ok(r) => json.received = r,
            Err(err) => {
                lookup_failed = Some(err);
                return false;
            }
        }
        let mut line = json.to_line();
        line.push('\n');
        if let Err(err) = out.write_all(line.as_bytes()) {
            failed = Some(err);
            return false;
        }
        n += 1;
        if n.is_multiple_of(4096) {
            progress(n);
        }
        true
    })?;
    if let Some(err) = lookup_failed {
        return Err(err);
    }
    if let Some(source) = failed {
        return Err(Error::Io { path: "export output".into(), source });
    }
    out.flush().map_err(|source| Error::Io { path: "export output".into(), source })?;
    progress(n);
    Ok(n)
}

pub(crate) fn parse_line(path: &str, line_no: usize, line: &str) -> Result<(Option<u64>, SealedEvent)> {
    let input = |reason: String| Error::Input { path: path.to_owned(), line: line_no, reason };
    let json = EventJson::parse(line).map_err(|e| input(e.to_string()))?;
    json.into_sealed().map_err(|e| input(e.to_string()))
}

pub(crate) fn for_each_line(
    path: &str,
    reader: Box<dyn BufRead>,
    mut f: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| Error::Io { path: path.to_owned(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        f(i + 1, &line)?;
    }
    Ok(())
}
