//! `GET /metrics`: a tenant's store in the Prometheus text exposition format (0.0.4).

use std::fmt::Write;

use crate::service::Gauges;
use crate::store::TailBudget;

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// What the server counts beside its stores.
pub struct ServerGauges {
    /// Live tails open (all tenants).
    pub subscribers: usize,
    /// The tenant's Managed-Agents dreams running now.
    pub dream_jobs: usize,
    /// SIGHUP reloads of the config's tokens: (applied, refused).
    pub reloads: (u64, u64),
    /// The mirror of hosted Managed Agents into the tenant, when the config has one.
    pub sync: Option<crate::sync::SyncState>,
}

/// The metrics of a store's gauges `g` (tenant `tenant`) and of the server (its gauges,
/// and the live tails' shared read-ahead budget `tails`).
pub fn render(tenant: &str, g: &Gauges, server: &ServerGauges, tails: &TailBudget) -> String {
    let subscribers = server.subscribers;
    let t = format!("tenant=\"{}\"", label(tenant));
    let s = &g.append;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (suffix_labels, value) in lines {
            let _ = writeln!(out, "{name}{suffix_labels} {value}");
        }
    };
    let one = |v: String| vec![(format!("{{{t}}}"), v)];
    metric("dreamlog_events", "gauge", "Events in the log.", &one(g.events.to_string()));
    metric("dreamlog_append_batches_total", "counter", "Append batches acknowledged.", &one(s.batches.to_string()));
    metric(
        "dreamlog_append_events_total",
        "counter",
        "Events in acknowledged append batches.",
        &one(s.events.to_string()),
    );
    metric("dreamlog_append_failures_total", "counter", "Appends refused or failed.", &one(s.failed.to_string()));
    metric(
        "dreamlog_append_waiting",
        "gauge",
        "Appends submitted and not yet answered (the writer's queue).",
        &one(s.waiting.to_string()),
    );
    let mut hist: Vec<(String, String)> =
        s.latency_buckets.iter().map(|(le, n)| (format!("_bucket{{{t},le=\"{le}\"}}"), n.to_string())).collect();
    hist.push((format!("_bucket{{{t},le=\"+Inf\"}}"), s.batches.to_string()));
    hist.push((format!("_sum{{{t}}}"), format!("{}", s.latency_sum_seconds)));
    hist.push((format!("_count{{{t}}}"), s.batches.to_string()));
    metric(
        "dreamlog_append_latency_seconds",
        "histogram",
        "Time from submitting an append batch to its acknowledgement.",
        &hist,
    );
    metric(
        "dreamlog_poisoned",
        "gauge",
        "1 when the store refuses writes after a failed write or sync.",
        &one(u8::from(g.poisoned.is_some()).to_string()),
    );
    metric("dreamlog_disk_bytes", "gauge", "Bytes of the store's files on disk.", &one(g.disk_bytes.to_string()));
    metric(
        "dreamlog_subscribers",
        "gauge",
        "Live tails open (all tenants).",
        &[(String::new(), subscribers.to_string())],
    );
    metric(
        "dreamlog_dream_jobs_running",
        "gauge",
        "Managed-Agents dreams running now (started by POST /anthropic/v1/dreams, not yet ended).",
        &one(server.dream_jobs.to_string()),
    );
    metric(
        "dreamlog_config_reloads_total",
        "counter",
        "SIGHUP reloads of the config's tokens, by outcome (refused: the old tokens stay).",
        &[
            ("{result=\"applied\"}".to_owned(), server.reloads.0.to_string()),
            ("{result=\"refused\"}".to_owned(), server.reloads.1.to_string()),
        ],
    );
    if let Some(m) = &server.sync {
        metric(
            "dreamlog_sync_runs_total",
            "counter",
            "Runs of the server's mirror of hosted Managed Agents, by outcome.",
            &[
                (format!("{{{t},result=\"ok\"}}"), (m.runs - m.failures).to_string()),
                (format!("{{{t},result=\"error\"}}"), m.failures.to_string()),
                (format!("{{{t},result=\"skipped\"}}"), m.skipped.to_string()),
            ],
        );
        metric(
            "dreamlog_sync_running",
            "gauge",
            "1 while a run of the mirror is under way.",
            &one(u8::from(m.running).to_string()),
        );
        metric(
            "dreamlog_sync_events_total",
            "counter",
            "Events the mirror's runs appended.",
            &one(m.events.to_string()),
        );
        if let Some(lag) = m.lag_ms {
            metric(
                "dreamlog_sync_lag_seconds",
                "gauge",
                "Time since the start of the mirror's last run that succeeded.",
                &one(format!("{}", lag as f64 / 1000.0)),
            );
        }
        if let Some(t) = m.last_success {
            metric(
                "dreamlog_sync_last_success_timestamp_seconds",
                "gauge",
                "When the mirror's last run that succeeded started (Unix time).",
                &one(format!("{}", t as f64 / 1000.0)),
            );
        }
        metric(
            "dreamlog_sync_unmapped",
            "gauge",
            "Objects the mirror's last run could not map.",
            &one(m.unmapped.to_string()),
        );
    }
    // The tails' shared read-ahead budget (server-wide, no tenant label).
    for (name, kind, help, value) in [
        (
            "dreamlog_tail_bytes_held",
            "gauge",
            "Bytes the live tails hold read ahead of their clients (all tenants).",
            tails.held(),
        ),
        (
            "dreamlog_tail_bytes_limit",
            "gauge",
            "The tails' shared read-ahead budget in bytes (max_tail_bytes).",
            tails.limit(),
        ),
        (
            "dreamlog_tail_events_sent_total",
            "counter",
            "Events the live tails handed to their clients (all tenants).",
            tails.sent(),
        ),
        (
            "dreamlog_tails_dropped_total",
            "counter",
            "Live tails dropped for leaving events unread while the budget was full.",
            tails.dropped(),
        ),
    ] {
        metric(name, kind, help, &[(String::new(), value.to_string())]);
    }
    out
}
