//! The JSON forms match the schemas in schemas/, and JSON → event → JSON round-trips.

mod common;

use dreamlog::{AppendBatch, CanonicalJson, EventJson};
use serde_json::Value;

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(common::root().join("schemas").join(name)).expect("schema file");
    serde_json::from_str(&text).expect("schema is JSON")
}

fn validator(name: &str) -> jsonschema::Validator {
    // Schemas refer to each other by $id: all of them are in the registry.
    let registry = common::schema_registry();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_registry(&registry)
        .build(&load(name))
        .expect("schema compiles")
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

fn vectors() -> Vec<Value> {
    common::vector_files()
        .iter()
        .map(|f| serde_json::from_str::<Value>(&std::fs::read_to_string(f).unwrap()).unwrap()["event"].clone())
        .collect()
}

#[test]
fn every_schema_is_a_valid_2020_12_schema() {
    let all = common::schema_files();
    assert!(all.len() > 40, "{}", all.len());
    for (path, schema) in all {
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{}", path.display());
        let name = path.strip_prefix(common::root().join("schemas")).unwrap().to_string_lossy().into_owned();
        let _ = validator(&name);
    }
}

#[test]
fn every_vector_and_demo_event_matches_the_event_schema() {
    let v = validator("event.schema.json");
    let demo = include_str!("../src/cli/demo_session.jsonl");
    let samples: Vec<Value> =
        vectors().into_iter().chain(demo.lines().map(|l| serde_json::from_str(l).unwrap())).collect();
    assert!(samples.len() > 30);
    for s in &samples {
        let errs = errors(&v, s);
        assert!(errs.is_empty(), "{s}\n{errs:#?}");
    }
}

#[test]
fn the_event_schema_rejects_what_the_parser_rejects() {
    let v = validator("event.schema.json");
    let good = vectors()[0].clone();
    let mut cases = Vec::new();
    let mut c = good.clone();
    c["kind"] = "nope".into();
    cases.push(c);
    let mut c = good.clone();
    c["actor"] = "robot:x".into();
    cases.push(c);
    let mut c = good.clone();
    c["extra"] = 1.into();
    cases.push(c);
    let mut c = good.clone();
    c["body"].as_object_mut().unwrap().remove("agent");
    cases.push(c);
    let mut c = good.clone();
    c["parents"] = serde_json::json!(["abc"]);
    cases.push(c);
    let mut c = vectors().into_iter().find(|e| e["kind"] == "grade").unwrap();
    c["body"]["score"] = 1.5.into();
    cases.push(c);
    for c in cases {
        assert!(!errors(&v, &c).is_empty(), "schema accepted {c}");
        let parsed = serde_json::from_value::<EventJson>(c.clone()).map_err(|e| e.to_string()).and_then(|j| {
            let (t, p) = (j.time.unwrap_or(0), j.parents.clone().unwrap_or_default());
            j.into_draft(None).and_then(|d| d.seal(t, p)).map_err(|e| e.to_string())
        });
        assert!(parsed.is_err(), "parser accepted {c}");
    }
}

#[test]
fn json_to_event_to_json_round_trips() {
    for original in vectors() {
        let json: EventJson = serde_json::from_value(original.clone()).unwrap();
        let (t, p) = (json.time.unwrap(), json.parents.clone().unwrap());
        let sealed = json.into_draft(None).unwrap().seal(t, p).unwrap();
        let back = EventJson::from_sealed(&sealed, 5, 6);
        let back_value = serde_json::to_value(&back).unwrap();
        for field in ["stream", "kind", "actor", "time", "parents", "causes"] {
            assert_eq!(back_value[field], original[field], "{field} of {original}");
        }
        assert_eq!(
            CanonicalJson::from_value(&back_value["body"]),
            CanonicalJson::from_value(&original["body"]),
            "body of {original}"
        );
        // And the emitted form parses back to the identical event.
        let again = back.into_sealed().unwrap().1;
        assert_eq!(again, sealed);
    }
}

#[test]
fn log_and_export_output_match_the_export_line_schema() {
    let v = validator("export-line.schema.json");
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let demo = include_str!("../src/cli/demo_session.jsonl");
    let mut batch = AppendBatch::new();
    for line in demo.lines() {
        batch.events.push(EventJson::parse(line).unwrap().into_draft(Some("demo")).unwrap());
    }
    store.append(batch).unwrap();
    let mut out = Vec::new();
    dreamlog::exchange::export(&store, 0, &mut out, |_| {}).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 15);
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let errs = errors(&v, &value);
        assert!(errs.is_empty(), "{line}\n{errs:#?}");
    }
    let report = serde_json::to_value(store.verify(|_| {}).unwrap()).unwrap();
    assert!(errors(&validator("verify-report.schema.json"), &report).is_empty());
}

fn cli(db: &std::path::Path, args: &[&str]) -> String {
    common::ok(&common::dreamlog_on(db, args, None))
}

fn check_lines(schema: &str, text: &str, at_least: usize) {
    let v = validator(schema);
    let mut n = 0;
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        let errs = errors(&v, &value);
        assert!(errs.is_empty(), "{schema}: {line}\n{errs:#?}");
        n += 1;
    }
    assert!(n >= at_least, "{schema}: {n} lines");
}

#[test]
fn dream_outputs_and_the_exec_protocol_match_their_schemas() {
    use dreamlog::core::dream::DreamerSpec;
    use dreamlog::dream::{Dreams, RunOptions};
    use dreamlog::memory::MemoryStores;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let captured = dir.path().join("input.json");
    let captured2 = dir.path().join("input2.json");
    let dream_id;
    {
        let store = common::open(&db);
        let mem = MemoryStores::new(store.clone());
        dreamlog::sim::run_round(&mem, "live", "a", 30, 1).unwrap();
        let dreams = Dreams::new(mem.clone());
        let good = dreams.run("live", &"evidence".parse().unwrap(), &RunOptions::default()).unwrap();
        mem.promote(&good.dream.output_store, "live", dreamlog::Actor::Human("t".into()), false).unwrap();
        dreamlog::sim::run_round(&mem, "live", "b", 30, 2).unwrap();
        // An exec dreamer that keeps a copy of its input and writes nothing.
        let tee = DreamerSpec {
            name: "exec".into(),
            version: Some("tee".into()),
            config: serde_json::json!({"command": ["sh", "-c", "cat > \"$0\"; echo '{\"commands\": []}'", captured.display().to_string()]}),
        };
        dreams.run("live", &tee, &RunOptions { since: Some(0), ..RunOptions::default() }).unwrap();
        // The same program asking for input format 2.
        let tee2 = DreamerSpec {
            name: "exec".into(),
            version: Some("tee2".into()),
            config: serde_json::json!({"input": 2, "command": ["sh", "-c", "cat > \"$0\"; echo '{\"commands\": []}'", captured2.display().to_string()]}),
        };
        dreams.run("live", &tee2, &RunOptions { since: Some(0), ..RunOptions::default() }).unwrap();
        dream_id = good.id.to_hex();
        store.close().unwrap();
    }
    let input: Value = serde_json::from_str(&std::fs::read_to_string(&captured).unwrap()).unwrap();
    assert_eq!(input["sessions"].as_array().unwrap().len(), 60);
    assert!(input.get("trials").is_none(), "format 1 unless asked for");
    let errs = errors(&validator("dream-input.schema.json"), &input);
    assert!(errs.is_empty(), "{errs:#?}");
    let input2: Value = serde_json::from_str(&std::fs::read_to_string(&captured2).unwrap()).unwrap();
    assert_eq!((input2["format"].as_u64(), input2["trials"].as_array().unwrap().len()), (Some(2), 60));
    assert_eq!(input2["tasks"].as_object().unwrap().len(), 5);
    let errs = errors(&validator("dream-input.schema.json"), &input2);
    assert!(errs.is_empty(), "{errs:#?}");
    // The Python example's output for that input.
    let out = std::process::Command::new("python3")
        .args(["tools/dreamers/failing_tasks.py", "--min-failures", "1"])
        .current_dir(common::root())
        .stdin(std::fs::File::open(&captured).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!printed["commands"].as_array().unwrap().is_empty());
    let errs = errors(&validator("dream-exec-output.schema.json"), &printed);
    assert!(errs.is_empty(), "{errs:#?}");

    check_lines("dream-run.schema.json", &cli(&db, &["dream", "run", "live", "--since", "start", "--json"]), 1);
    check_lines("dream-summary.schema.json", &cli(&db, &["dream", "list", "--json"]), 4);
    check_lines("dream-show.schema.json", &cli(&db, &["dream", "show", &dream_id, "--json"]), 1);
    let show: Value = serde_json::from_str(&cli(&db, &["dream", "show", &dream_id, "--json"])).unwrap();
    let summary = &show["meta"]["summary"];
    assert!(!summary["decisions"][0]["candidates"].as_array().unwrap().is_empty(), "{summary}");
    let errs = errors(&validator("evidence-summary.schema.json"), summary);
    assert!(errs.is_empty(), "{errs:#?}");
    check_lines("dream-replay.schema.json", &cli(&db, &["dream", "replay", "--all", "--json"]), 4);
    check_lines(
        "dream-replay.schema.json",
        &cli(&db, &["dream", "replay", &dream_id, "--config", "{\"min_tasks\": 50}", "--json"]),
        1,
    );
    check_lines("drift-report.schema.json", &cli(&db, &["drift", "live", "--json"]), 1);
    check_lines("lesson.schema.json", &cli(&db, &["memory", "lessons", "live", "--json"]), 2);
}

#[test]
fn the_openapi_document_lists_exactly_the_server_routes() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(common::root().join("schemas/openapi.json")).unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every `.route("PATH", get(..).post(..))` of the routers (dreamlog's own and the
    // Managed-Agents API's), with its methods.
    let mut routes = std::collections::BTreeSet::new();
    // The web view's files (`asset(…)`: HTML, script, style) are not part of the JSON API.
    for file in [
        "crates/dreamlog-server/src/api.rs",
        "crates/dreamlog-server/src/anthropic.rs",
        "crates/dreamlog-server/src/ui.rs",
    ] {
        let source = std::fs::read_to_string(common::root().join(file)).unwrap();
        for part in source.split(".route(").skip(1) {
            let Some(part) = part.trim_start().strip_prefix('"') else { continue };
            let (path, rest) = part.split_once('"').unwrap();
            let call = rest.split(")\n").next().unwrap();
            if call.contains("asset(") {
                continue;
            }
            let path = path.replace("{*", "{");
            for method in ["get", "post", "delete"] {
                if call.contains(&format!("{method}(")) {
                    routes.insert(format!("{method} {path}"));
                }
            }
        }
    }
    let mut documented = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert(format!("{method} {path}"));
        }
    }
    assert!(routes.len() >= 25, "{routes:?}");
    assert_eq!(routes, documented);
    // Every schema the document refers to exists.
    let text = doc.to_string();
    for r in text.split("https://dreamlog.dev/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(common::root().join("schemas").join(name).exists(), "{name}");
    }
}

/// The service's request and answer types are the API's bodies: each type, filled in
/// full, names exactly the fields its schema lists and validates against it; a minimal one
/// validates too; and what the schema accepts reads back into the type unchanged.
#[test]
fn the_service_types_are_the_api_schemas() {
    use dreamlog::service::*;
    use serde::{de::DeserializeOwned, Serialize};
    use serde_json::json;

    fn check<T: Serialize + DeserializeOwned>(schema: &str, full: T, minimal: T) {
        let v = validator(&format!("api/{schema}.schema.json"));
        let full = serde_json::to_value(&full).unwrap();
        let mut fields: Vec<&String> = full.as_object().unwrap().keys().collect();
        fields.sort();
        let listed = load(&format!("api/{schema}.schema.json"))["properties"].clone();
        let mut listed: Vec<&String> = listed.as_object().unwrap().keys().collect::<Vec<_>>();
        listed.sort();
        assert_eq!(fields, listed, "{schema}: the type's fields and the schema's properties");
        for instance in [full.clone(), serde_json::to_value(&minimal).unwrap()] {
            assert!(errors(&v, &instance).is_empty(), "{schema}: {instance} → {:?}", errors(&v, &instance));
            let back: T = serde_json::from_value(instance.clone()).unwrap();
            assert_eq!(serde_json::to_value(&back).unwrap(), instance, "{schema} round trip");
        }
    }
    let id: dreamlog::EventId = "ab".repeat(32).parse().unwrap();
    check(
        "append-request",
        AppendRequest {
            events: vec![json!({"kind": "note", "actor": "human:a", "body": {"type": "t", "json": {}}})],
            stream: Some("s".into()),
            expect: [("s".to_owned(), json!("no-stream"))].into_iter().collect(),
        },
        AppendRequest {
            events: vec![json!({"kind": "note", "actor": "human:a", "body": {"type": "t", "json": {}}})],
            ..Default::default()
        },
    );
    check("lookup-request", LookupRequest { ids: vec![id], streams: vec!["s".into()] }, LookupRequest::default());
    check(
        "revert-request",
        RevertRequest {
            event: Some("ab".into()),
            dream: Some("cd".into()),
            session: Some("sesn_1".into()),
            to: Some("3".into()),
            reason: "r".into(),
            force: true,
        },
        RevertRequest { reason: "r".into(), ..Default::default() },
    );
    check(
        "push-request",
        dreamlog::managed::push::PushRequest {
            revert: Some(RevertRequest { session: Some("sesn_1".into()), reason: "r".into(), ..Default::default() }),
            promote: Some(dreamlog::managed::push::PromoteFrom { fork: "f".into(), force: true }),
            dry_run: true,
        },
        dreamlog::managed::push::PushRequest {
            promote: Some(dreamlog::managed::push::PromoteFrom { fork: "f".into(), force: false }),
            ..Default::default()
        },
    );
    check(
        "fork-request",
        ForkRequest { new: "n".into(), at: Some("head".into()) },
        ForkRequest { new: "n".into(), at: None },
    );
    check(
        "promote-request",
        PromoteRequest { into: "s".into(), force: true },
        PromoteRequest { into: "s".into(), force: false },
    );
    check(
        "memory-batch-request",
        BatchRequest {
            commands: vec![dreamlog::MemoryCommand::Delete { path: "/memories/a.md".into() }],
            expected_state: Some(dreamlog::Digest::of(b"s")),
            session: Some("s1".into()),
        },
        BatchRequest { commands: Vec::new(), expected_state: None, session: None },
    );
    check("memory-rules-request", RulesRequest { rules: 2 }, RulesRequest { rules: 1 });
    check(
        "memory-rules",
        RulesSwitch { store: "s".into(), rules: 2, event: Some(id), position: Some(3) },
        RulesSwitch { store: "s".into(), rules: 2, event: None, position: None },
    );
    let signed = dreamlog::core::checkpoint::sign(&[3; 32], 5, Some(id), &Default::default(), 7);
    check(
        "checkpoint-verify-request",
        CheckpointCheckRequest { checkpoint: signed.clone(), key: Some(signed.key.clone()) },
        CheckpointCheckRequest { checkpoint: signed.clone(), key: None },
    );
    check(
        "checkpoint-verdict",
        CheckpointVerdict {
            position: 5,
            events: 9,
            signature_ok: false,
            key_trusted: true,
            extends: false,
            problems: vec!["the stream heads differ".into()],
        },
        CheckpointVerdict {
            position: 0,
            events: 0,
            signature_ok: true,
            key_trusted: false,
            extends: true,
            problems: Vec::new(),
        },
    );
    check(
        "backup-request",
        BackupRequest { dir: "/backups/b1".into(), deep: true },
        BackupRequest { dir: "/backups/b1".into(), deep: false },
    );
    check(
        "tag-request",
        TagRequest { name: "v1".into(), at: Some("head".into()) },
        TagRequest { name: "v1".into(), at: None },
    );
    check(
        "dream-run-request",
        DreamRequest {
            store: "s".into(),
            dreamer: Some("evidence".into()),
            config: json!({"max_lessons": 3}),
            since: Some("start".into()),
            into: Some("s.dream".into()),
            in_place: false,
            create: true,
            sessions: vec!["s-1".into(), "s-2".into()],
            again: true,
        },
        DreamRequest {
            store: "s".into(),
            dreamer: None,
            config: json!(null),
            since: None,
            into: None,
            in_place: false,
            create: false,
            sessions: Vec::new(),
            again: false,
        },
    );
    check(
        "dream-replay-request",
        ReplayRequest { dreamer: Some("evidence@1".into()), config: Some(json!({})) },
        ReplayRequest::default(),
    );
    check("tag-response", Tagged { position: 4, id, event_position: 5 }, Tagged { position: 0, id, event_position: 1 });
    // A redaction names one of an event, a session or an actor: each form validates and
    // reads back, two at once do not validate.
    let v = validator("api/redact-request.schema.json");
    for req in [
        dreamlog::service::RedactRequest::event(id.to_hex(), "leaked key"),
        dreamlog::service::RedactRequest {
            event: None,
            session: Some("run-7".into()),
            actor: None,
            reason: "x".into(),
        },
        dreamlog::service::RedactRequest {
            event: None,
            session: None,
            actor: Some("human:ann".into()),
            reason: "x".into(),
        },
    ] {
        let value = serde_json::to_value(&req).unwrap();
        assert!(errors(&v, &value).is_empty(), "{value}: {:?}", errors(&v, &value));
        assert_eq!(serde_json::from_value::<dreamlog::service::RedactRequest>(value).unwrap(), req);
    }
    assert!(!errors(&v, &json!({"event": "ab", "session": "s", "reason": "x"})).is_empty());
    assert!(!errors(&v, &json!({"reason": "x"})).is_empty());
    let redacted = |stand_in: Value| dreamlog::service::Redacted {
        target: id,
        position: 3,
        event: id,
        event_position: 9,
        stand_in,
        events: Vec::new(),
        already: Vec::new(),
        kept: Vec::new(),
    };
    let one = |position: u64| dreamlog::service::RedactedEvent {
        target: id,
        position,
        stand_in: json!({"session": "s", "role": "user", "content": "[redacted]"}),
    };
    check(
        "redacted",
        dreamlog::service::Redacted {
            events: vec![one(3), one(4)],
            already: vec![one(1)],
            kept: vec![dreamlog::service::RedactKept {
                id,
                position: 2,
                reason: "a grade event holds no free text".into(),
            }],
            ..redacted(json!({"session": "s", "role": "user", "content": "[redacted]"}))
        },
        redacted(
            json!({"store": "s", "command": {"command": "write", "path": "/memories/a.md", "file_text": "[redacted]\n"}}),
        ),
    );
    check(
        "info",
        Info {
            tenant: "default".into(),
            events: 3,
            max_batch: 10,
            log_of_record: Some("JetStream stream DREAMLOG_default on nats://127.0.0.1:4222".into()),
            sync: Some(serde_json::json!({"source": "anthropic", "tenant": "default", "every_secs": 300,
                "running": false, "runs": 2, "failures": 1, "skipped": 0, "last_started": 1_764_000_000_000u64,
                "last_finished": 1_764_000_001_000u64, "last_success": 1_763_999_700_000u64, "lag_ms": 300_000,
                "last_error": "the hosted API's GET /v1/memory_stores: 503 overloaded (after 8 attempts)",
                "unmapped": 0, "events": 120, "cursors": {"memstore_01": 1_763_999_000_000u64}})),
        },
        Info { tenant: String::new(), events: 0, max_batch: 1, log_of_record: None, sync: None },
    );
}

/// Under `--json` a failure is one JSON object on stderr (cli-error.schema.json), with the
/// exit status it names; without, one line for people.
#[test]
fn cli_errors_under_json_are_json_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let event = r#"{"kind":"note","actor":"agent:a","body":{"type":"t","json":1}}"#;
    common::ok(&common::dreamlog_on(&db, &["append", "--stream", "s"], Some(event)));
    let v = validator("cli-error.schema.json");
    // A full id no event has: a short prefix could match the timed event above by chance.
    let unknown = "0".repeat(64);
    for (args, kind, code) in [
        (vec!["--json", "show", unknown.as_str()], "not_found", 3),
        (vec!["--json", "memory", "view", "nope", "/memories"], "not_found", 3),
        (vec!["--json", "append", "--stream", "a//b"], "invalid_request", 2),
    ] {
        let out = common::dreamlog_on(&db, &args, Some(event));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err: Value = serde_json::from_slice(&out.stderr).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(errors(&v, &err).is_empty(), "{err}");
        assert_eq!(
            (err["error"]["type"].as_str(), err["error"]["exit_code"].as_u64()),
            (Some(kind), Some(code as u64))
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let people = common::dreamlog_on(&db, &["show", &unknown], None);
    assert!(String::from_utf8_lossy(&people.stderr).starts_with("error: "));
}
