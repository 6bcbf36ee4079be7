//! The llm dreamer against a stand-in for the model APIs: a real HTTP server on
//! 127.0.0.1 that speaks the Anthropic Messages and OpenAI chat completions wire formats
//! (tool_use blocks, stop reasons, error bodies, 429 with retry-after). The stand-in
//! replaces only the external model; everything of ours is real.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::model_api::{message, serve, Shared};
use dreamlog::core::dream::DreamerSpec;
use dreamlog::dream::{Dreams, RunOptions};
use dreamlog::memory::MemoryStores;
use dreamlog::sim::run_round;
use dreamlog::DreamError;
use dreamlog::{Body, Error, Kind};
use serde_json::{json, Value};
use tempfile::tempdir;

fn spec(addr: SocketAddr, key_env: &str, extra: Value) -> DreamerSpec {
    let mut config = json!({"base_url": format!("http://{addr}"), "model": "claude-test", "api_key_env": key_env,
                            "retry_base_ms": 1});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    DreamerSpec { name: "llm".into(), version: None, config }
}

#[test]
fn anthropic_tool_use_loop_is_recorded_and_replays_offline() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mem = MemoryStores::new(store.clone());
    run_round(&mem, "live", "r1", 20, 1).unwrap();
    let script: Shared = Arc::default();
    {
        let mut s = script.lock().unwrap();
        s.replies.push_back((
            429,
            vec![("retry-after", "0".into())],
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
        ));
        s.replies.push_back(message(
            json!([{"type": "text", "text": "Let me look at memory first."},
                   {"type": "tool_use", "id": "toolu_01", "name": "memory", "input": {"command": "view", "path": "/memories"}}]),
            "tool_use",
        ));
        s.replies.push_back(message(
            json!([{"type": "tool_use", "id": "toolu_02", "name": "memory", "input": {"command": "create", "path": "/memories/lessons.md",
                     "file_text": "- Call `verify_identity` before `issue_refund` [session sim/r1/0]\n"}},
                   {"type": "tool_use", "id": "toolu_03", "name": "memory", "input": {"command": "str_replace", "path": "/memories/nope.md", "old_str": "a", "new_str": "b"}}]),
            "tool_use",
        ));
        s.replies.push_back(message(json!([{"type": "text", "text": "Memory is up to date."}]), "end_turn"));
    }
    let addr = serve(script.clone());
    std::env::set_var("DREAMLOG_TEST_KEY_A", "sk-test-a");
    let dreams = Dreams::new(mem.clone());
    let run = dreams.run("live", &spec(addr, "DREAMLOG_TEST_KEY_A", json!({})), &RunOptions::default()).unwrap();
    assert_eq!((run.exchanges, run.commands), (3, 1), "{run:?}");

    // What the model saw.
    let received = script.lock().unwrap().received.clone();
    assert_eq!(received.len(), 4, "one 429 retried, then three turns");
    let (h, first) = &received[0];
    assert_eq!(h["x-api-key"], "sk-test-a");
    assert_eq!(h["anthropic-version"], "2023-06-01");
    assert_eq!(first["tools"], json!([{"type": "memory_20250818", "name": "memory"}]));
    assert_eq!(first["model"], "claude-test");
    let digest = first["messages"][0]["content"].as_str().unwrap();
    assert!(digest.contains("### session sim/r1/0") && digest.contains("failed: action:verify_identity"), "{digest}");
    assert_eq!(received[0].1, received[1].1, "the retry repeats the request");
    let results = &received[2].1["messages"][2]["content"];
    assert_eq!(results[0]["tool_use_id"], "toolu_01");
    assert!(results[0]["content"].as_str().unwrap().starts_with("Here're the files and directories"));
    let results = &received[3].1["messages"][4]["content"];
    assert_eq!(results[0]["content"], "File created successfully at: /memories/lessons.md");
    assert_eq!(results[1]["is_error"], true);
    assert!(results[1]["content"].as_str().unwrap().contains("/memories/nope.md"));

    // What was recorded: exchanges before the dream, the dream citing them, the command
    // citing the dream and the grade of the session it names.
    let detail = dreams.show(&run.id).unwrap();
    assert_eq!(detail.exchanges.len(), 3);
    let first_exchange = store.get(&detail.exchanges[0]).unwrap();
    let Body::LlmExchange(x) = &first_exchange.event.body else { panic!("not an exchange") };
    assert_eq!(x.api, "anthropic.messages");
    assert_eq!(x.meta.as_ref().unwrap().to_value()["attempts"], 2);
    assert!(first_exchange.position < run.position);
    assert_eq!(detail.lessons.len(), 1);
    let ev = &detail.lessons[0].evidence;
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].session.as_deref()), (Kind::Grade, Some("sim/r1/0")));
    let text = mem.state(&run.dream.output_store).unwrap().0.file("/memories/lessons.md").unwrap().text.to_string();
    assert!(text.contains("verify_identity"));

    // Replay: no key, no network; bit for bit.
    std::env::remove_var("DREAMLOG_TEST_KEY_A");
    let r = dreams.replay(&run.id, None).unwrap();
    assert!(r.identical && r.same_dreamer, "{r:?}");
    assert_eq!(script.lock().unwrap().received.len(), 4, "the replay called nobody");

    // Another config asks the model anew and shows the lesson diff.
    std::env::set_var("DREAMLOG_TEST_KEY_A", "sk-test-a");
    script.lock().unwrap().replies.push_back(message(
        json!([{"type": "tool_use", "id": "toolu_09", "name": "memory", "input": {"command": "create", "path": "/memories/lessons.md",
                 "file_text": "- Verify identity first.\n"}}]),
        "tool_use",
    ));
    script.lock().unwrap().replies.push_back(message(json!([{"type": "text", "text": "Done."}]), "end_turn"));
    let other = spec(addr, "DREAMLOG_TEST_KEY_A", json!({"max_tokens": 1000}));
    let r = dreams.replay(&run.id, Some(&other)).unwrap();
    assert!(!r.same_dreamer && !r.identical);
    assert!(r.lesson_diff.contains("+- Verify identity first."), "{}", r.lesson_diff);
}

#[test]
fn api_errors_fail_the_dream_and_write_nothing() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mem = MemoryStores::new(store.clone());
    run_round(&mem, "live", "r1", 5, 1).unwrap();
    let script: Shared = Arc::default();
    let addr = serve(script.clone());
    std::env::set_var("DREAMLOG_TEST_KEY_B", "sk-test-b");
    let dreams = Dreams::new(mem.clone());
    let before = store.len();

    script.lock().unwrap().replies.push_back((
        400,
        vec![],
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: must be positive"}}),
    ));
    let err = dreams.run("live", &spec(addr, "DREAMLOG_TEST_KEY_B", json!({})), &RunOptions::default()).unwrap_err();
    assert!(matches!(&err, Error::Dream(DreamError::Llm { status: Some(400), .. })), "{err}");
    assert!(err.to_string().contains("invalid_request_error: max_tokens: must be positive"), "{err}");

    for _ in 0..3 {
        script.lock().unwrap().replies.push_back((
            529,
            vec![],
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ));
    }
    let err = dreams
        .run("live", &spec(addr, "DREAMLOG_TEST_KEY_B", json!({"max_retries": 2})), &RunOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("overloaded_error: Overloaded (gave up after 3 attempts)"), "{err}");

    // A tool_use of an unknown tool is a protocol error.
    script
        .lock()
        .unwrap()
        .replies
        .push_back(message(json!([{"type": "tool_use", "id": "t", "name": "bash", "input": {}}]), "tool_use"));
    let err = dreams.run("live", &spec(addr, "DREAMLOG_TEST_KEY_B", json!({})), &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("unknown tool \"bash\""), "{err}");

    let err =
        dreams.run("live", &spec(addr, "DREAMLOG_TEST_KEY_UNSET", json!({})), &RunOptions::default()).unwrap_err();
    assert!(err.to_string().contains("DREAMLOG_TEST_KEY_UNSET is not set"), "{err}");
    assert_eq!(store.len(), before, "nothing was written");
}

#[test]
fn openai_compatible_chat_completions() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let mem = MemoryStores::new(store.clone());
    run_round(&mem, "live", "r1", 5, 1).unwrap();
    let script: Shared = Arc::default();
    {
        let mut s = script.lock().unwrap();
        s.replies.push_back((
            200,
            vec![],
            json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "local",
                   "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
                     "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "memory",
                       "arguments": "{\"command\":\"create\",\"path\":\"/memories/notes.md\",\"file_text\":\"- verify first [session sim/r1/1]\\n\"}"}}]}}]}),
        ));
        s.replies.push_back((
            200,
            vec![],
            json!({"id": "chatcmpl-2", "object": "chat.completion", "model": "local",
                   "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Done."}}]}),
        ));
    }
    let addr = serve(script.clone());
    std::env::set_var("DREAMLOG_TEST_KEY_C", "sk-local");
    let dreams = Dreams::new(mem.clone());
    let run = dreams
        .run(
            "live",
            &spec(addr, "DREAMLOG_TEST_KEY_C", json!({"api": "openai", "model": "local"})),
            &RunOptions { in_place: true, ..RunOptions::default() },
        )
        .unwrap();
    assert_eq!((run.exchanges, run.commands), (2, 1));
    let received = script.lock().unwrap().received.clone();
    assert_eq!(received[0].0["authorization"], "Bearer sk-local");
    assert_eq!(received[0].1["tools"][0]["function"]["name"], "memory");
    assert_eq!(received[1].1["messages"][3]["role"], "tool");
    assert_eq!(received[1].1["messages"][3]["tool_call_id"], "call_1");
    assert_eq!(
        mem.state("live").unwrap().0.file("/memories/notes.md").unwrap().text.as_ref(),
        "- verify first [session sim/r1/1]\n"
    );
    assert!(dreams.replay(&run.id, None).unwrap().identical);
}
