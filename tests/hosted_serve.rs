//! The mirror of hosted Managed Agents inside `serve` (the config's `sync.anthropic`):
//! it runs at start and on `POST /v1/sync/anthropic`, its state in `/v1/info` and
//! `/metrics`, and a server killed in the middle of a run resumes at its next start with
//! every version mirrored once — against the SDK-typed stand-in of the hosted API.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::hosted::{files, learning, sync, StandIn, KEY};
use common::server::{client, get, post, Server};
use common::{dreamlog_on, ok};
use serde_json::{json, Value};

const STORE: &str = "memstore_02learn";

/// The learning fixture with `n` more versions of one memory of its store.
fn world(n: usize) -> Value {
    let mut w = learning();
    let by = json!({"type": "api_actor", "api_key_id": "apikey_01ops"});
    let versions = w["versions"].as_array_mut().expect("versions");
    for i in 0..n {
        versions.push(json!({"id": format!("memver_bulk{i:04}"), "memory_store_id": STORE,
            "memory_id": "mem_bulk", "operation": if i == 0 { "created" } else { "modified" },
            "path": "/bulk.md", "content": format!("line {i}\n"),
            "created_at": format!("2026-11-06T{:02}:{:02}:{:02}Z", i / 3600, (i / 60) % 60, i % 60), "created_by": by}));
    }
    w
}

fn start(db: &Path, dir: &Path, url: &str) -> Server {
    let cfg = dir.join("server.json");
    let config = json!({"sync": {"anthropic": {"every_secs": 3600, "sessions": false, "batch": 1}}});
    std::fs::write(&cfg, config.to_string()).expect("config");
    Server::start_env(
        db,
        &["--config", cfg.to_str().expect("utf-8")],
        &[("ANTHROPIC_BASE_URL", url), ("ANTHROPIC_API_KEY", KEY)],
    )
}

fn info(server: &Server) -> Value {
    let (status, v) = get(&client(), &server.url("/v1/info"), None);
    assert_eq!(status, 200, "{v}");
    v
}

/// Waits until `f` holds of `/v1/info`, at most 60 s.
fn wait_for(server: &Server, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = info(server);
        if f(&v) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {v}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn serve_keeps_the_mirror_current_and_a_killed_run_resumes_with_nothing_doubled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let standin = StandIn::start(&world(400), dir.path(), 0);

    // The first run starts with the server; killed once some of its batches are in.
    let server = start(&db, dir.path(), &standin.url);
    let first = wait_for(&server, "a run writing", |v| v["sync"]["running"] == true && v["events"].as_u64() > Some(20));
    server.signal("KILL");
    drop(server);
    let killed_at = first["events"].as_u64().expect("events");

    // Restarted: the run at start finishes what the killed one began.
    let server = start(&db, dir.path(), &standin.url);
    let done = wait_for(&server, "a run that succeeded", |v| v["sync"]["runs"] == 1);
    let s = &done["sync"];
    assert_eq!((s["failures"].as_u64(), s["running"].as_bool()), (Some(0), Some(false)), "{done}");
    assert!(s["last_error"].is_null() && s["lag_ms"].is_u64(), "{done}");
    assert!(s["events"].as_u64() > Some(0), "the restarted run had work left: {done}");
    assert!(s["cursors"][STORE].is_u64(), "{done}");
    assert!(done["events"].as_u64() > Some(killed_at));
    let (status, metrics) = {
        let r = client().get(server.url("/metrics")).send().expect("metrics");
        (r.status().as_u16(), r.text().expect("text"))
    };
    assert_eq!(status, 200);
    assert!(metrics.contains("dreamlog_sync_runs_total{tenant=\"default\",result=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("dreamlog_sync_lag_seconds{tenant=\"default\"}"), "{metrics}");

    // On demand: a version added upstream is mirrored by the admin route, once.
    let mut w: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("scenario.json")).unwrap()).unwrap();
    w["versions"].as_array_mut().unwrap().push(json!({"id": "memver_new", "memory_store_id": STORE,
        "memory_id": "mem_new", "operation": "created", "path": "/new.md", "content": "new\n",
        "created_at": "2026-11-07T00:00:00Z", "created_by": {"type": "user_actor", "user_id": "user_01alice"}}));
    std::fs::write(dir.path().join("scenario.json"), w.to_string()).unwrap();
    let (status, report) = post(&client(), &server.url("/v1/sync/anthropic"), None, &json!({}));
    assert_eq!(status, 200, "{report}");
    let live = report["stores"].as_array().unwrap().iter().find(|s| s["store"] == STORE).expect("the store").clone();
    assert_eq!(live["mirrored"], 1, "{report}");
    assert_eq!(info(&server)["sync"]["runs"], 2);
    assert!(server.stop().success());

    // Every version once: the files are the hosted ones, and a sync from the command line
    // finds nothing to add.
    let before = ok(&dreamlog_on(&db, &["log", "--json"], None)).lines().count();
    let again: Value =
        serde_json::from_slice(&sync(&db, &standin.url, &["--json", "--no-sessions"]).stdout).expect("report");
    assert!(again["stores"].as_array().unwrap().iter().all(|s| s["mirrored"] == 0), "{again}");
    assert_eq!(ok(&dreamlog_on(&db, &["log", "--json"], None)).lines().count(), before);
    let f = files(&db, STORE);
    assert_eq!(f["/memories/bulk.md"], "line 399\n");
    assert_eq!(f["/memories/new.md"], "new\n");
}

#[test]
fn a_config_naming_no_tenant_among_several_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = dreamlog::hash_token;
    let cfg = dir.path().join("server.json");
    let config = json!({"tokens": [
        {"tenant": "a", "role": "admin", "token_blake3": hash("a")},
        {"tenant": "b", "role": "admin", "token_blake3": hash("b")}],
        "sync": {"anthropic": {"every_secs": 60}}});
    std::fs::write(&cfg, config.to_string()).unwrap();
    let out = dreamlog_on(
        &dir.path().join("db"),
        &["serve", "--addr", "127.0.0.1:0", "--config", cfg.to_str().unwrap()],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the one the mirror writes into"), "{out:?}");
}
