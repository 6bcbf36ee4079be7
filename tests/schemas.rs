//! The JSON forms match the schemas in schemas/, and JSON → event → JSON round-trips.

mod common;

use dreamlog::{AppendBatch, CanonicalJson, EventJson};
use serde_json::Value;

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(common::root().join("schemas").join(name)).expect("schema file");
    serde_json::from_str(&text).expect("schema is JSON")
}

fn validator(name: &str) -> jsonschema::Validator {
    // export-line.schema.json refers to event.schema.json by its $id.
    let registry = jsonschema::Registry::new()
        .add("https://dreamlog.dev/schemas/event.schema.json", load("event.schema.json"))
        .expect("add event schema")
        .prepare()
        .expect("prepare registry");
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
    for entry in std::fs::read_dir(common::root().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{}", path.display());
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
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
