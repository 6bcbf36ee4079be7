//! The Claude Code hook benchmark (issue 36: `dreamlog hook` must never slow Claude Code;
//! target p99 ≤ 50 ms against a local server). Run: `bash tools/bootstrap.sh cargo bench
//! --bench hook`.
//!
//! One session of HOOK_BENCH_CALLS hook calls (default 400), one at a time as Claude Code
//! runs them: before each call the transcript grows by one tool call and its result (an
//! assistant line and a user line, about 1.5 kB), then `dreamlog --remote URL hook` runs
//! with a PreToolUse or PostToolUse payload on standard input. Each call is timed from
//! the process's start to its exit (what Claude Code waits for: process start, reading
//! the transcript's new lines, spooling them, the delivery and the server keeping it
//! durably; the server assembles the session after its answer). Reported: p50, p90, p99
//! and the worst call, over all calls and over the last 100 (a longer session costs the
//! server more per assembly, which then competes for the same two cores).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "shared/load.rs"]
mod load;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

fn report(what: &str, times: &[Duration]) {
    let mut t = times.to_vec();
    t.sort();
    println!(
        "{what}: {} calls; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, worst {:.1} ms",
        t.len(),
        pct(&t, 0.5),
        pct(&t, 0.9),
        pct(&t, 0.99),
        t[t.len() - 1].as_secs_f64() * 1000.0
    );
}

fn main() {
    let calls: usize = std::env::var("HOOK_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, base) = load::start_server(&dir.path().join("db"));
    let transcript = dir.path().join("bench-session.jsonl");
    let spool = dir.path().join("spool");
    let mut file = std::fs::File::create(&transcript).expect("transcript");
    let session = "0b9e2f40-bench-4a5b-8e6f-7a8b9c0d1e2f";
    let mut parent: Option<String> = None;
    let mut line = |f: &mut std::fs::File, uuid: String, v: serde_json::Value| {
        let mut v = v;
        v["uuid"] = serde_json::json!(uuid);
        v["parentUuid"] = serde_json::json!(parent);
        v["sessionId"] = serde_json::json!(session);
        writeln!(f, "{v}").expect("write");
        parent = Some(uuid);
    };
    line(
        &mut file,
        "u-0".into(),
        serde_json::json!({"type": "user", "timestamp": "2026-12-07T10:00:00.000Z",
            "message": {"role": "user", "content": "Fix the failing date parser test, then run the suite."}}),
    );
    let hook = |payload: &serde_json::Value| -> Duration {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
            .args(["--remote", &base, "hook", "--spool"])
            .arg(&spool)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dreamlog hook");
        child.stdin.take().expect("stdin").write_all(payload.to_string().as_bytes()).expect("payload");
        let out = child.wait_with_output().expect("hook");
        let took = started.elapsed();
        assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
        took
    };
    let mut times = Vec::with_capacity(calls);
    let output = "ok ".repeat(300);
    for i in 0..calls {
        let id = format!("toolu_bench_{i:05}");
        let second = 1 + i as u64;
        let ts = |ms: u64| format!("2026-12-07T10:{:02}:{:02}.{ms:03}Z", (second / 60) % 60, second % 60);
        if i % 2 == 0 {
            line(
                &mut file,
                format!("a-{i}"),
                serde_json::json!({"type": "assistant", "timestamp": ts(0), "message": {"role": "assistant",
                    "model": "claude-bench", "content": [{"type": "tool_use", "id": id, "name": "Bash",
                    "input": {"command": format!("cargo test -p parser date_{i}"), "description": "Run one test"}}]}}),
            );
        } else {
            let prev = format!("toolu_bench_{:05}", i - 1);
            line(
                &mut file,
                format!("r-{i}"),
                serde_json::json!({"type": "user", "timestamp": ts(500), "message": {"role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": prev, "content": output}]}}),
            );
        }
        file.flush().expect("flush");
        let payload = serde_json::json!({"session_id": session, "transcript_path": transcript,
            "cwd": "/work", "permission_mode": "default",
            "hook_event_name": if i % 2 == 0 { "PreToolUse" } else { "PostToolUse" },
            "tool_name": "Bash", "tool_input": {"command": format!("cargo test -p parser date_{i}")},
            "tool_use_id": id, "tool_response": if i % 2 == 0 { serde_json::Value::Null } else { serde_json::json!({"stdout": output}) }});
        times.push(hook(&payload));
    }
    report("all calls", &times);
    report("last 100 calls", &times[times.len().saturating_sub(100)..]);
    println!(
        "{} transcript lines, {} kB; machine: {} cores",
        calls + 1,
        std::fs::metadata(&transcript).map(|m| m.len() / 1024).unwrap_or(0),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let _ = server.kill();
}
