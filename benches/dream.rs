//! Dream benchmarks (issue: dreaming). Run: `cargo bench --bench dream`.
//!
//! - the evidence dreamer over 10,000 graded sessions (20 task families, 8 tool calls
//!   and 5 rubric criteria per session): the whole `dream run` — reading the sessions
//!   from the log, counting, writing the lessons into a fork — target under 2 s; for
//!   evidence@1 and for evidence@2 (the default: every graded session as a trial,
//!   within-task tests, robustness checks and 5-fold validation), with the sessions in
//!   100 tasks of 100 trials and in 2,500 tasks of 4 trials;
//! - replay of a recorded llm dream of 100 model exchanges, offline, bit for bit —
//!   target under 1 s. The dream is recorded against a loopback stand-in that speaks the
//!   Anthropic Messages wire format.
//!
//! DREAMLOG_BENCH_SESSIONS overrides the session count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::routing::post;
use axum::{Json, Router};
use dreamlog::core::dream::DreamerSpec;
use dreamlog::dream::{Dreams, RunOptions};
use dreamlog::memory::MemoryStores;
use dreamlog::{
    Action, ActionStatus, Actor, AppendBatch, Body, CanonicalJson, Criterion, Draft, Grade, GradeResult, Options,
    SessionStart, Store, SyncMode,
};
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// How graded sessions fall into tasks.
#[derive(Clone, Copy)]
enum Shape {
    /// 100 tasks of 100 trials (5 per family).
    FewLargeTasks,
    /// 2,500 tasks of 4 trials (125 per family): the exact tests' worst case.
    ManySmallTasks,
}

/// Writes `n` graded sessions: family f has tools t0..t11; calling t(f % 12) raises the
/// pass rate, calling t((f + 5) % 12) lowers it.
fn write_sessions(store: &Store, n: usize, shape: Shape) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let agent = Actor::Agent("bench".into());
    let mut batch = AppendBatch::new();
    for i in 0..n {
        let (family, task) = match shape {
            Shape::FewLargeTasks => (i % 20, format!("f{}/{}", i % 20, i % 50)),
            Shape::ManySmallTasks => ((i / 4) % 20, format!("f{}/{}", (i / 4) % 20, i / 4)),
        };
        let session = format!("bench/{i}");
        let stream = format!("session/{session}");
        let start = SessionStart {
            session: session.clone(),
            agent: "bench".into(),
            model: None,
            task_id: Some(task),
            task: None,
            store: Some("live".into()),
            memory_state: None,
            source: None,
            meta: None,
        };
        batch.events.push(Draft::new(stream.clone(), agent.clone(), Body::SessionStart(start)));
        let mut good = false;
        let mut bad = false;
        for _ in 0..8 {
            let t = (xorshift(&mut rng) % 12) as usize;
            good |= t == family % 12;
            bad |= t == (family + 5) % 12;
            let action = Action {
                session: session.clone(),
                name: format!("t{t}"),
                call_id: None,
                input: CanonicalJson::from_value(&json!({"k": t})),
                output: Some(CanonicalJson::from_value(&json!("ok"))),
                status: ActionStatus::Ok,
                meta: None,
            };
            batch.events.push(Draft::new(stream.clone(), agent.clone(), Body::Action(action)));
        }
        let p = 0.4 + if good { 0.4 } else { 0.0 } - if bad { 0.3 } else { 0.0 };
        let passed = (xorshift(&mut rng) % 1000) as f64 / 1000.0 < p;
        let criteria = (0..5)
            .map(|c| Criterion {
                name: format!("check-{c}"),
                passed: Some(passed || c > 1 || xorshift(&mut rng).is_multiple_of(2)),
                score: None,
                note: None,
            })
            .collect();
        let grade = Grade {
            session: session.clone(),
            target: None,
            rubric: format!("bench/f{family}"),
            evaluator: "bench".into(),
            score: if passed { 1.0 } else { 0.0 },
            result: if passed { GradeResult::Satisfied } else { GradeResult::Failed },
            criteria,
            meta: None,
        };
        batch.events.push(Draft::new(stream, Actor::Evaluator("bench".into()), Body::Grade(grade)));
        if batch.events.len() >= 2000 {
            store.append(std::mem::take(&mut batch)).expect("append");
        }
    }
    if !batch.events.is_empty() {
        store.append(batch).expect("append");
    }
}

fn bench_evidence(n: usize, dreamer: &str, shape: Shape) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dreamlog::open(dir.path(), Options { sync: SyncMode::None, ..Options::default() }).expect("open");
    let t = Instant::now();
    write_sessions(&store, n, shape);
    let shape_name = match shape {
        Shape::FewLargeTasks => "100 tasks of 100 trials",
        Shape::ManySmallTasks => "2,500 tasks of 4 trials",
    };
    println!("wrote {n} graded sessions ({} events; {shape_name}) in {:.2} s", store.len(), t.elapsed().as_secs_f64());
    let dreams = Dreams::new(MemoryStores::new(store.clone()));
    let spec: DreamerSpec = dreamer.parse().expect("spec");
    let mut best = f64::MAX;
    for round in 0..3 {
        let t = Instant::now();
        let run = dreams
            .run(
                "live",
                &spec,
                &RunOptions { since: Some(0), into: Some(format!("fork-{round}")), ..RunOptions::default() },
            )
            .expect("dream");
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        println!(
            "evidence dream over {} sessions: {:.3} s ({} commands into {})",
            run.sessions, s, run.commands, run.dream.output_store
        );
    }
    println!("{dreamer} dream, {n} sessions ({shape_name}): best {best:.3} s (target < 2 s)");
}

fn bench_llm_replay(turns: usize) {
    // The stand-in: turn i < turns-1 inserts a line, the last turn ends.
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        rt.block_on(async move {
            let app = Router::new().route(
                "/v1/messages",
                post(move |Json(_): Json<Value>| {
                    let i = c.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let content = if i + 1 >= turns {
                            json!([{"type": "text", "text": "done"}])
                        } else if i == 0 {
                            json!([{"type": "tool_use", "id": format!("toolu_{i}"), "name": "memory",
                                    "input": {"command": "create", "path": "/memories/notes.md", "file_text": "# notes\n"}}])
                        } else {
                            json!([{"type": "tool_use", "id": format!("toolu_{i}"), "name": "memory",
                                    "input": {"command": "insert", "path": "/memories/notes.md", "insert_line": i,
                                              "insert_text": format!("- lesson {i} [session bench/{i}]\n")}}])
                        };
                        let stop = if i + 1 >= turns { "end_turn" } else { "tool_use" };
                        Json(json!({"id": format!("msg_{i}"), "type": "message", "role": "assistant", "model": "m",
                                    "content": content, "stop_reason": stop,
                                    "usage": {"input_tokens": 1000 + i, "output_tokens": 50}}))
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let addr = rx.recv().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dreamlog::open(dir.path(), Options { sync: SyncMode::None, ..Options::default() }).expect("open");
    write_sessions(&store, 200, Shape::FewLargeTasks);
    std::env::set_var("DREAMLOG_BENCH_KEY", "bench");
    let spec = DreamerSpec {
        name: "llm".into(),
        version: None,
        config: json!({"base_url": format!("http://{addr}"), "api_key_env": "DREAMLOG_BENCH_KEY",
                       "max_turns": turns, "max_sessions": 200}),
    };
    let dreams = Dreams::new(MemoryStores::new(store.clone()));
    let t = Instant::now();
    let run = dreams.run("live", &spec, &RunOptions::default()).expect("dream");
    println!(
        "recorded llm dream: {} exchanges, {} commands in {:.3} s (over loopback HTTP)",
        run.exchanges,
        run.commands,
        t.elapsed().as_secs_f64()
    );
    std::env::remove_var("DREAMLOG_BENCH_KEY");
    let calls = counter.load(Ordering::SeqCst);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let r = dreams.replay(&run.id, None).expect("replay");
        let s = t.elapsed().as_secs_f64();
        assert!(r.identical, "replay differs");
        best = best.min(s);
    }
    assert_eq!(counter.load(Ordering::SeqCst), calls, "replay called the model");
    println!(
        "llm dream replay, {} exchanges, offline, bit-identical: best {:.3} s (target < 1 s)",
        run.exchanges, best
    );
}

fn main() {
    let n = std::env::var("DREAMLOG_BENCH_SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    bench_evidence(n, "evidence@1", Shape::FewLargeTasks);
    bench_evidence(n, "evidence", Shape::FewLargeTasks);
    bench_evidence(n, "evidence", Shape::ManySmallTasks);
    bench_llm_replay(100);
}
