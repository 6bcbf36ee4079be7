//! Backup and restore: a consistent copy taken while a server takes appends from
//! concurrent writers holds every event acknowledged before it began, whole groups only,
//! each at its position with its id; it verifies deep, restores into a new folder, and
//! refuses to overwrite anything.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::server::{client, post, Server};
use serde_json::{json, Value};
use tempfile::tempdir;

#[test]
fn a_backup_under_load_holds_every_acknowledged_group_and_restores_verified() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let backups = dir.path().join("backups");
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, json!({"backup_root": backups}).to_string()).unwrap();
    let server = Server::start(&db, &["--config", cfg.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, acked, url) = (stop.clone(), acked.clone(), server.url("/v1/events"));
            std::thread::spawn(move || {
                let c = client();
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    // Groups of five: a copy holding part of one would show as a count
                    // that is not a multiple of five.
                    let events: Vec<Value> = (0..5)
                        .map(|k| json!({"kind": "note", "actor": "system:load", "body": {"type": "load", "json": {"w": w, "i": i, "k": k}}}))
                        .collect();
                    let (status, _) = post(&c, &url, None, &json!({"stream": format!("load/{w}"), "events": events}));
                    assert_eq!(status, 200);
                    acked.fetch_add(5, Ordering::SeqCst);
                    i += 1;
                }
            })
        })
        .collect();
    while acked.load(Ordering::SeqCst) < 500 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let before = acked.load(Ordering::SeqCst);
    // A folder named relative to the backup root (its missing parents are made).
    let backup = backups.join("nightly/1");
    let (status, report) = post(&client(), &server.url("/v1/backup"), None, &json!({"dir": "nightly/1", "deep": true}));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["dir"], backup.canonicalize().unwrap().to_str().unwrap(), "{report}");
    let after = acked.load(Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let events = report["events"].as_u64().unwrap();
    assert!(report["verify"]["problems"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["acknowledged"].as_u64().unwrap() >= before, "{report}");
    assert!(events >= before && events <= after + 15, "{before} ≤ {events} ≤ {after}: {report}");
    assert_eq!(events % 5, 0, "whole groups only: {report}");
    // A second backup into the same folder is refused; the first is untouched.
    let (status, refused) = post(&client(), &server.url("/v1/backup"), None, &json!({"dir": backup.to_str().unwrap()}));
    assert_eq!(status, 400, "{refused}");
    // Only below the backup root: not elsewhere, not up and out, never into a database.
    let tenant_folder = db.join("tenants/gamma");
    for (dir, says) in [
        (dir.path().join("elsewhere").to_str().unwrap().to_owned(), "below the backup root"),
        ("../db/tenants/gamma".to_owned(), "plain names"),
        (tenant_folder.to_str().unwrap().to_owned(), "below the backup root"),
        (String::new(), "plain names"),
    ] {
        let (status, refused) = post(&client(), &server.url("/v1/backup"), None, &json!({"dir": dir}));
        assert_eq!((status, refused["error"]["type"].as_str()), (400, Some("invalid_request")), "{dir}: {refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(says), "{dir}: {refused}");
    }
    assert!(!dir.path().join("elsewhere").exists() && !tenant_folder.exists(), "nothing was written");
    assert!(server.stop().success());

    // Restore into a new folder: verified deep, and a prefix of the live log, id by id.
    let restored = dir.path().join("restored");
    let out = common::dreamlog_on(&restored, &["--json", "restore", backup.to_str().unwrap()], None);
    let r: Value = serde_json::from_str(&common::ok(&out)).unwrap();
    assert_eq!((r["events"].as_u64(), r["verify"]["problems"].as_array().map(Vec::len)), (Some(events), Some(0)));
    let (live, copy) = (common::open(&db), common::open(&restored));
    assert!(live.len() > copy.len());
    assert_eq!(copy.len(), events);
    for p in 0..copy.len() {
        assert_eq!(copy.get_at(p).unwrap().id(), live.get_at(p).unwrap().id(), "position {p}");
    }
    drop((live, copy));
    // A restore never overwrites: into a folder that holds anything, it writes nothing.
    let out = common::dreamlog_on(&restored, &["restore", backup.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("new or empty folder"), "{out:?}");
}

#[test]
fn an_embedded_backup_keeps_memory_and_refuses_what_is_not_a_backup() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let create = r#"{"command":"create","path":"/memories/notes/a.md","file_text":"- keep this\n"}"#;
    common::ok(&common::dreamlog_on(&db, &["memory", "apply", "s", create], None));
    common::ok(&common::dreamlog_on(
        &db,
        &["memory", "apply", "s", r#"{"command":"delete","path":"/memories/notes/a.md"}"#],
        None,
    ));
    let backup = dir.path().join("b");
    let said = common::ok(&common::dreamlog_on(&db, &["backup", backup.to_str().unwrap(), "--deep"], None));
    assert!(said.contains("3 events") && said.contains("verify: clean"), "{said}");
    let restored = dir.path().join("r");
    common::ok(&common::dreamlog_on(&restored, &["restore", backup.to_str().unwrap()], None));
    let view = |d: &std::path::Path| common::ok(&common::dreamlog_on(d, &["memory", "view", "s", "/memories"], None));
    assert_eq!(view(&restored), view(&db));
    assert!(view(&restored).contains("/memories/notes/"), "the emptied directory is in the copy too");
    let out = common::dreamlog_on(&dir.path().join("x"), &["restore", db.join("nope").to_str().unwrap()], None);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not a dreamlog backup"));
    assert!(!dir.path().join("x").exists(), "nothing was written");
}

/// `dreamlog serve` on `db` with `config`, which must refuse to start: its stderr.
fn refused_start(db: &std::path::Path, config: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .arg("--db")
        .arg(db)
        .args(["serve", "--addr", "127.0.0.1:0", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 30.3: a tenant admin's backup can never become another tenant's database.
#[test]
fn backups_stay_below_their_root_and_a_tenant_never_opens_another_tenants_log() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let hash = dreamlog::hash_token;
    let tokens = json!([{"tenant": "acme", "role": "admin", "token_blake3": hash("acme-admin")}]);
    // No backup root: the server takes no backups over HTTP.
    let cfg = dir.path().join("plain.json");
    std::fs::write(&cfg, json!({"tokens": tokens}).to_string()).unwrap();
    let server = Server::start(&db, &["--config", cfg.to_str().unwrap()]);
    let (status, refused) = post(&client(), &server.url("/v1/backup"), Some("acme-admin"), &json!({"dir": "x"}));
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("sets no backup_root"), "{refused}");
    assert!(server.stop().success());
    // A backup root inside the database folder, or holding it, stops the server at start.
    for root in [db.join("tenants/backups"), dir.path().to_path_buf()] {
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, json!({"tokens": tokens, "backup_root": root}).to_string()).unwrap();
        let err = refused_start(&db, &bad);
        assert!(err.contains("backup_root"), "{err}");
    }
    // acme's backup, copied where tenant gamma is then configured: gamma's server refuses
    // it rather than showing acme's events to gamma's tokens.
    let cfg = dir.path().join("root.json");
    let backups = dir.path().join("backups");
    std::fs::write(&cfg, json!({"tokens": tokens, "backup_root": backups}).to_string()).unwrap();
    let server = Server::start(&db, &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let (status, _) = post(
        &c,
        &server.url("/v1/events"),
        Some("acme-admin"),
        &json!({"stream": "secret", "events": [common::server::note(1)]}),
    );
    assert_eq!(status, 200);
    let (status, report) = post(&c, &server.url("/v1/backup"), Some("acme-admin"), &json!({"dir": "acme-1"}));
    assert_eq!(status, 200, "{report}");
    assert!(server.stop().success());
    let copy_into = db.join("tenants/gamma");
    let out = std::process::Command::new("cp").arg("-r").arg(backups.join("acme-1")).arg(&copy_into).status().unwrap();
    assert!(out.success());
    let both = json!([{"tenant": "acme", "role": "admin", "token_blake3": hash("acme-admin")},
        {"tenant": "gamma", "role": "read", "token_blake3": hash("gamma-read")}]);
    std::fs::write(&cfg, json!({"tokens": both, "backup_root": backups}).to_string()).unwrap();
    // gamma's folder holds acme's log: the server must not serve it.
    let err = refused_start(&db, &cfg);
    assert!(err.contains("holds tenant \"acme\"'s log, not tenant \"gamma\"'s"), "{err}");
}
