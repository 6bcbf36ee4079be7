//! Text for people: log lines, event views, verify reports.

use crate::store::{StoredEvent, VerifyReport};

pub use crate::core::time_text;

/// One line of `log`.
pub fn log_line(e: &StoredEvent) -> String {
    let h = &e.event.header;
    format!(
        "{:>8}  {}  {}  {}@{}  {:<13} {:<28} {}",
        e.position,
        e.event.id.short(12),
        time_text(h.time),
        h.stream,
        e.version,
        h.kind.name(),
        h.actor.to_string(),
        if e.redacted { "(redacted)".to_owned() } else { e.event.body.summary() }
    )
}

/// The full view of one event for `show`.
pub fn show(e: &StoredEvent) -> String {
    let h = &e.event.header;
    let mut s = String::new();
    s.push_str(&format!("id        {}\n", e.event.id));
    s.push_str(&format!("position  {}\n", e.position));
    s.push_str(&format!("stream    {} (version {})\n", h.stream, e.version));
    s.push_str(&format!("kind      {}\n", h.kind));
    s.push_str(&format!("actor     {} (asserted by the writer)\n", h.actor));
    s.push_str(&format!("time      {} ({}; event time, as written)\n", time_text(h.time), h.time));
    match &e.received {
        Some(r) => s.push_str(&format!(
            "received  from {} ({}) at {}, in a batch of {} event(s) from position {}\n",
            r.principal,
            r.role,
            time_text(r.at),
            r.events,
            r.batch
        )),
        None => s.push_str("received  - (written without a receipt: before receipts, or by a library caller)\n"),
    }
    let list = |ids: &[crate::core::EventId]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>().join("\n          ")
        }
    };
    s.push_str(&format!("parents   {}\n", list(&h.parents)));
    s.push_str(&format!("causes    {}\n", list(&h.causes)));
    s.push_str(&format!("body      {} bytes, blake3 {}\n", h.body_len, h.body_hash));
    if e.redacted {
        // The stand-in: what the fold goes on with, none of the removed text.
        s.push_str("          (redacted; its stand-in:)\n");
        s.push_str(&serde_json::to_string_pretty(&e.event.body.to_json()).unwrap_or_default());
    } else {
        let pretty = serde_json::to_string_pretty(&e.event.body.to_json()).unwrap_or_default();
        s.push_str(&pretty);
    }
    s
}

/// The report of `verify`.
pub fn verify_report(r: &VerifyReport) -> String {
    let mut s = format!(
        "checked {} events in {} streams ({} bytes hashed, {} index entries)",
        r.events, r.streams, r.bytes, r.index_entries
    );
    if r.redacted > 0 {
        s.push_str(&format!(", {} redacted", r.redacted));
    }
    if r.receipts > 0 {
        s.push_str(&format!(", {} receipts", r.receipts));
    }
    if r.is_clean() {
        s.push_str(": all ids, body hashes, chains and indexes verify");
    } else {
        s.push_str(&format!(": {} problems", r.problems.len()));
        for p in &r.problems {
            s.push_str("\n  ");
            if let Some(pos) = p.position {
                s.push_str(&format!("position {pos}"));
            }
            if let Some(id) = &p.id {
                s.push_str(&format!(" (id {id})"));
            }
            s.push_str(&format!(": {}", p.problem));
        }
    }
    s
}

/// `memory diff` for people: a summary line per file, then unified diffs (not with --stat).
pub fn memory_diff(d: &crate::core::memory::MemoryDiff, stat: bool) -> String {
    if d.is_empty() {
        return "no differences".to_owned();
    }
    let mut lines = Vec::new();
    for p in &d.added {
        lines.push(format!("added    {p}"));
    }
    for p in &d.removed {
        lines.push(format!("removed  {p}"));
    }
    for (a, b) in &d.renamed {
        lines.push(format!("renamed  {a} -> {b}"));
    }
    for c in &d.changed {
        lines.push(format!("changed  {} | +{} -{}", c.path, c.insertions, c.deletions));
    }
    lines.push(format!(
        "{} added, {} removed, {} renamed, {} changed",
        d.added.len(),
        d.removed.len(),
        d.renamed.len(),
        d.changed.len()
    ));
    if !stat {
        for c in &d.changed {
            lines.push(c.unified.trim_end().to_owned());
        }
    }
    lines.join("\n")
}

/// What `recover` found and did, for people.
#[cfg(feature = "rocks")]
pub fn recovery_report(r: &crate::embedded::RecoveryReport) -> String {
    let mut out = Vec::new();
    if let Some(m) = &r.restored_current {
        out.push(format!("CURRENT was missing or named no MANIFEST: it now names {m} (the newest MANIFEST)"));
    }
    if let Some(why) = &r.acked_damaged {
        out.push(format!(
            "ACKED is damaged ({why}): the count of acknowledged events could not be checked; it now records the log as recovered"
        ));
    }
    match &r.damage {
        None => out.push("the write-ahead log is intact: nothing dropped".to_owned()),
        Some(d) => {
            out.push(format!(
                "the write-ahead log {} is damaged at byte {} ({}){}",
                d.file.display(),
                d.offset,
                d.reason,
                if d.torn_tail { "; an incomplete final record (a torn write)" } else { "" }
            ));
            for k in &r.kept_aside {
                out.push(format!("kept aside: {}", k.display()));
            }
            if let Some(f) = &r.report_file {
                out.push(format!("report (written before anything was dropped): {}", f.display()));
            }
            if r.lost.is_empty() {
                out.push("no acknowledged event was lost".to_owned());
            } else {
                out.push(format!("{} acknowledged event(s) lost:", r.lost.len()));
                for e in &r.lost {
                    out.push(format!("  {}  {}", e.position, e.id));
                }
            }
        }
    }
    if r.unidentified_count > 0 {
        out.push(format!(
            "{} acknowledged position(s) lost whose records could not be read (from {}{}); listed in the report",
            r.unidentified_count,
            r.unidentified.first().map(u64::to_string).unwrap_or_default(),
            if r.unidentified_count > r.unidentified.len() as u64 { ", the first 100,000 listed" } else { "" }
        ));
    }
    out.push(format!(
        "{} events now; verify {}",
        r.events,
        if r.verified_clean { "clean" } else { "FOUND PROBLEMS: run `dreamlog verify`" }
    ));
    out.join("\n")
}
