//! `dreamlog recover`: the explicit way out of a damaged database. Nothing is dropped
//! before it is kept aside and reported: a lost `CURRENT` is restored from the newest
//! MANIFEST; a damaged WAL is copied aside, every event that opening at the last good
//! point drops is listed by position and id in a report written before the open, then the
//! database is opened there and verified.

use std::path::{Path, PathBuf};

use dreamlog_store::error::LogError;
use dreamlog_store::error::{Error, Result};
use dreamlog_store::{Options, WalEvent};

use crate::wal;

/// What `recover` found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecoveryReport {
    /// The database.
    pub db: PathBuf,
    /// `CURRENT` was missing and now names this MANIFEST.
    pub restored_current: Option<String>,
    /// The WAL damage found, if any.
    pub damage: Option<wal::WalDamage>,
    /// Where the damaged WAL files were copied (kept, never deleted).
    pub kept_aside: Vec<PathBuf>,
    /// Events that were acknowledged but are not in the recovered log, by position and id
    /// (those of the damaged record itself as it seems to read, then those after it).
    pub lost: Vec<WalEvent>,
    /// Positions lost whose records could not be read at all (no id to name): the first
    /// [`UNIDENTIFIED_LISTED`] of them.
    pub unidentified: Vec<u64>,
    /// How many positions were lost unidentified in all.
    #[serde(default)]
    pub unidentified_count: u64,
    /// `ACKED` did not read as a count (or named an impossible one): why. The count of
    /// acknowledged events could then not be checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_damaged: Option<String>,
    /// Where this report was written before anything was dropped.
    pub report_file: Option<PathBuf>,
    /// Events in the log after recovery.
    pub events: u64,
    /// Whether the recovered log verifies clean.
    pub verified_clean: bool,
}

/// Most unidentified lost positions a report lists (the count says how many in all).
pub const UNIDENTIFIED_LISTED: u64 = 100_000;

/// The newest `MANIFEST-N` of a database folder.
fn newest_manifest(dir: &Path) -> Result<Option<String>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("MANIFEST-")?.parse::<u64>().ok()?;
            Some((n, name))
        })
        .max()
        .map(|(_, name)| name))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Recovers the database at `db` (see the module doc). `report` is where the report is
/// written before anything is dropped (default: inside the kept-aside folder).
pub fn recover(db: &Path, opts: Options, report: Option<&Path>) -> Result<RecoveryReport> {
    if !db.is_dir() {
        return Err(Error::Log(LogError::Open { path: db.display().to_string(), reason: "no such folder".into() }));
    }
    let mut out = RecoveryReport { db: db.to_path_buf(), ..RecoveryReport::default() };
    let stamp = dreamlog_store::now_ms();
    // CURRENT names the live MANIFEST: missing, empty or naming no MANIFEST here, it is
    // written again naming the newest one (a damaged one is kept aside first).
    let current = std::fs::read(db.join("CURRENT")).ok();
    let names_a_manifest = current.as_deref().is_some_and(|c| {
        let name = String::from_utf8_lossy(c).trim().to_owned();
        name.starts_with("MANIFEST-") && !name.contains('/') && db.join(&name).is_file()
    });
    if !names_a_manifest {
        if let Some(bytes) = &current {
            let aside = db.join("damaged").join(stamp.to_string());
            std::fs::create_dir_all(&aside)
                .map_err(|source| Error::Io { path: aside.display().to_string(), source })?;
            write_synced(&aside.join("CURRENT"), bytes)?;
            out.kept_aside.push(aside.join("CURRENT"));
        }
        let manifest = newest_manifest(db)?.ok_or_else(|| {
            Error::Log(LogError::Open {
                path: db.display().to_string(),
                reason: "CURRENT and every MANIFEST are missing: the table files cannot be put back in order here"
                    .into(),
            })
        })?;
        // CURRENT is one line naming the live MANIFEST; written and synced in place.
        let tmp = db.join("CURRENT.dreamlog-recover");
        write_synced(&tmp, format!("{manifest}\n").as_bytes())?;
        std::fs::rename(&tmp, db.join("CURRENT"))
            .map_err(|source| Error::Io { path: db.display().to_string(), source })?;
        out.restored_current = Some(manifest);
    }
    let scan = wal::scan(db)?;
    if let Some(d) = &scan.damage {
        let aside = db.join("damaged").join(stamp.to_string());
        out.kept_aside = wal::keep_aside(&scan, &aside)?;
        // The damaged record's own events are read past a failed checksum: keep only
        // positions that can be its (after the last intact one, before the first intact
        // record after the damage), so a flipped byte in a key cannot invent a position.
        let low = d.last_good.map_or(0, |p| p + 1);
        let high = d.after.iter().map(|e| e.position).min().unwrap_or(u64::MAX);
        let plausible = d.in_damaged.iter().filter(|e| (low..high).contains(&e.position));
        out.lost = plausible.chain(&d.after).copied().collect();
        out.damage = Some(d.clone());
        let file = report.map(Path::to_path_buf).unwrap_or_else(|| aside.join("recover-report.json"));
        let json = serde_json::to_vec_pretty(&out).unwrap_or_default();
        write_synced(&file, &json)?;
        out.report_file = Some(file);
    }
    let acked = match wal::acked(db) {
        wal::Acked::Count { count, .. } => Some(count),
        wal::Acked::Missing => None,
        wal::Acked::Damaged(why) => {
            out.acked_damaged = Some(why);
            None
        }
    };
    let store = crate::open(db, Options { create_if_missing: false, drop_damaged_wal_tail: true, ..opts })?;
    // What the WAL said was acknowledged and the recovered log does not hold.
    out.lost.retain(|e| store.get_at(e.position).map(|s| s.id() != e.id).unwrap_or(true));
    out.lost.sort_by_key(|e| e.position);
    out.lost.dedup_by_key(|e| e.position);
    // Positions acknowledged (by the WAL's records, or by the recorded count) but gone.
    let end = out.lost.last().map(|l| l.position + 1).max(acked).unwrap_or(0);
    let named: std::collections::HashSet<u64> = out.lost.iter().map(|e| e.position).collect();
    // Listed up to a bound (a count in a damaged file may be huge), counted in all.
    let missing = end.saturating_sub(store.len());
    out.unidentified_count = missing.saturating_sub(named.iter().filter(|p| **p >= store.len()).count() as u64);
    out.unidentified = (store.len()..end).filter(|p| !named.contains(p)).take(UNIDENTIFIED_LISTED as usize).collect();
    // The log as it is now is what later opens compare with.
    wal::write_acked(db, store.len()).map_err(|source| Error::Io { path: db.display().to_string(), source })?;
    if out.report_file.is_none() && (!out.unidentified.is_empty() || out.acked_damaged.is_some()) {
        let dir = db.join("damaged").join(stamp.to_string());
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        out.report_file = Some(report.map(Path::to_path_buf).unwrap_or_else(|| dir.join("recover-report.json")));
    }
    let verify = store.verify(|_| {})?;
    out.events = store.len();
    out.verified_clean = verify.is_clean();
    store.close()?;
    if let Some(file) = &out.report_file {
        write_synced(file, &serde_json::to_vec_pretty(&out).unwrap_or_default())?;
    }
    Ok(out)
}
