//! Tamper evidence against the disk's owner: a signed checkpoint of the log's head,
//! kept elsewhere, proves that the log still extends it. A history rewritten with every
//! hash and chain recomputed verifies clean on its own — and fails the checkpoint.

mod common;

use common::server::{client, get, post, Server};
use dreamlog::{AppendBatch, Body, Draft, Note};
use serde_json::{json, Value};
use tempfile::tempdir;

fn cli(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::dreamlog_on(db, args, None)
}

#[test]
fn a_rewritten_history_with_recomputed_hashes_is_caught_by_a_checkpoint() {
    let dir = tempdir().unwrap();
    let (db, key, other) = (dir.path().join("db"), dir.path().join("key"), dir.path().join("other"));
    let public: Value =
        serde_json::from_str(&common::ok(&cli(&db, &["--json", "keygen", key.to_str().unwrap()]))).unwrap();
    let public = public["public_key"].as_str().unwrap().to_owned();
    assert!(!cli(&db, &["keygen", key.to_str().unwrap()]).status.success(), "keygen never overwrites a key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let other_public: Value =
        serde_json::from_str(&common::ok(&cli(&db, &["--json", "keygen", other.to_str().unwrap()]))).unwrap();

    // A log: grades, memory, notes on several streams.
    let store = common::open(&db);
    for i in 0..20 {
        store.append(AppendBatch::one(common::note(&format!("s{}", i % 3), i))).unwrap();
    }
    store.close().unwrap();
    drop(store);
    let create = r#"{"command":"create","path":"/memories/a.md","file_text":"- verify identity first\n"}"#;
    common::ok(&common::dreamlog_on(&db, &["memory", "apply", "m", create], None));
    let cp_file = dir.path().join("checkpoint.json");
    let cp: Value = serde_json::from_str(&common::ok(&cli(
        &db,
        &["--json", "checkpoint", "--key", key.to_str().unwrap(), "--out", cp_file.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!((cp["position"].as_u64(), cp["key"].as_str()), (Some(22), Some(public.as_str())), "{cp}");
    assert!(cp_file.exists());
    // The checkpoint is in the log itself too (and so in every export).
    let export = common::ok(&cli(&db, &["export"]));
    assert!(export.contains("dreamlog.checkpoint"), "export carries checkpoints");

    // The log grows: it still extends the checkpoint, with the trusted key.
    common::ok(&common::dreamlog_on(
        &db,
        &["memory", "apply", "m", r#"{"command":"delete","path":"/memories/a.md"}"#],
        None,
    ));
    let ok = common::ok(&cli(&db, &["verify", "--checkpoint", cp_file.to_str().unwrap(), "--trust", &public]));
    assert!(ok.starts_with("ok: the log") && ok.contains("trusted key"), "{ok}");
    // Another key is not trusted.
    let wrong = cli(
        &db,
        &["verify", "--checkpoint", cp_file.to_str().unwrap(), "--trust", other_public["public_key"].as_str().unwrap()],
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("not the trusted key"));
    // A checkpoint edited after signing fails its signature.
    let mut forged_cp = cp.clone();
    forged_cp["position"] = json!(21);
    let forged_file = dir.path().join("forged-checkpoint.json");
    std::fs::write(&forged_file, forged_cp.to_string()).unwrap();
    let out = cli(&db, &["verify", "--checkpoint", forged_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signature does not verify"), "{out:?}");

    // Someone with the disk rewrites one early event and recomputes every id and chain
    // after it: the forged log verifies clean on its own…
    let forged = dir.path().join("forged");
    {
        let (orig, copy) = (common::open(&db), common::open(&forged));
        for p in 0..orig.len() {
            let e = orig.get_at(p).unwrap();
            let mut body = e.event.body.clone();
            if p == 4 {
                body = Body::Note(Note {
                    note_type: "test".into(),
                    json: dreamlog::CanonicalJson::parse(r#"{"n":999}"#).unwrap(),
                });
            }
            let draft = Draft::new(e.event.header.stream.clone(), e.event.header.actor.clone(), body)
                .at(e.event.header.time)
                .caused_by(e.event.header.causes.clone());
            copy.append(AppendBatch::one(draft)).unwrap();
        }
        assert_eq!(copy.len(), orig.len());
        assert!(copy.verify(|_| ()).unwrap().is_clean(), "hash chains alone cannot tell");
        copy.close().unwrap();
        orig.close().unwrap();
    }
    // …and fails the checkpoint kept elsewhere.
    let out = cli(&forged, &["verify", "--checkpoint", cp_file.to_str().unwrap(), "--trust", &public]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("does NOT extend") && said.contains("history before it was rewritten"), "{said}");
    // A log cut back below the checkpoint fails it too.
    let short = dir.path().join("short");
    {
        let (orig, copy) = (common::open(&db), common::open(&short));
        for p in 0..10 {
            let e = orig.get_at(p).unwrap();
            copy.append(AppendBatch::one(
                Draft::new(e.event.header.stream.clone(), e.event.header.actor.clone(), e.event.body.clone())
                    .at(e.event.header.time),
            ))
            .unwrap();
        }
        copy.close().unwrap();
        orig.close().unwrap();
    }
    let out = cli(&short, &["verify", "--checkpoint", cp_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("events were removed"));
}

#[test]
fn a_server_signs_checkpoints_at_intervals_and_on_demand() {
    let dir = tempdir().unwrap();
    let key = dir.path().join("key");
    common::ok(&cli(&dir.path().join("unused"), &["keygen", key.to_str().unwrap()]));
    let cfg = dir.path().join("server.json");
    std::fs::write(&cfg, json!({"checkpoint_key": key, "checkpoint_every_secs": 1}).to_string()).unwrap();
    let server = Server::start(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let events: Vec<Value> =
        (0..5).map(|i| json!({"kind": "note", "actor": "system:t", "body": {"type": "t", "json": {"i": i}}})).collect();
    assert_eq!(post(&c, &server.url("/v1/events"), None, &json!({"stream": "a", "events": events})).0, 200);
    // The interval signs the grown log.
    let started = std::time::Instant::now();
    let signed = loop {
        let (status, page) = get(&c, &server.url("/v1/streams/checkpoints"), None);
        if status == 200 && !page["events"].as_array().unwrap().is_empty() {
            break page["events"][0]["body"]["json"].clone();
        }
        assert!(started.elapsed().as_secs() < 20, "no checkpoint signed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(signed["position"], 5, "{signed}");
    // On demand, and verified by the server against its own log.
    let (status, cp) = post(&c, &server.url("/v1/checkpoints"), None, &json!({}));
    assert_eq!(status, 200, "{cp}");
    let (status, verdict) =
        post(&c, &server.url("/v1/checkpoints/verify"), None, &json!({"checkpoint": cp, "key": signed["key"]}));
    assert_eq!(status, 200, "{verdict}");
    assert_eq!((verdict["extends"].as_bool(), verdict["key_trusted"].as_bool()), (Some(true), Some(true)), "{verdict}");
    assert!(server.stop().success());
}
