//! A deterministic simulated agent whose success depends on what its memory says: the
//! closed-loop proof of the product (sessions → grades → dream → better sessions; a bad
//! lesson → worse sessions → drift flags it → revert restores them). Used by the tests,
//! the demo and the benchmarks.
//!
//! The task family `sim/refunds`: refund an order. The evaluator passes a session only
//! when the agent called `verify_identity` before `issue_refund`. Without advice the
//! agent verifies 30 % of the time; when a memory line says "Call `verify_identity`" it
//! does 95 % of the time; when a line says "Avoid `verify_identity`" it never does; when a
//! line says "Call `transfer_to_human_agents`" it hands every task over and refunds
//! nothing (a harmful habit, the one [`plan_crafted`]'s poisoned sessions teach).
//! Every session records the store and state hash it ran with; randomness comes from a
//! seed, so runs are reproducible.

use serde_json::json;

use crate::core::stats::SplitMix64;
use crate::core::streams::session as session_stream;
use crate::core::{
    Action, ActionStatus, Actor, Body, CanonicalJson, Criterion, Digest, Draft, Grade, GradeResult, SessionEnd,
    SessionStart,
};
use crate::error::Result;
use crate::memory::MemoryStores;
use crate::store::{AppendBatch, ExpectedVersion};

/// The tool the evaluator requires.
pub const KEY_TOOL: &str = "verify_identity";

/// The hand-over a poisoned lesson teaches.
pub const HAND_OVER: &str = "transfer_to_human_agents";

/// What the agent's memory tells it about the key tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// Nothing.
    None,
    /// Call it.
    Call,
    /// Avoid it (wins over `Call`).
    Avoid,
    /// Hand every task to a human (wins over both).
    HandOver,
}

/// Reads the advice from memory files.
pub fn advice<'a>(texts: impl IntoIterator<Item = &'a str>) -> Advice {
    let mut out = Advice::None;
    for t in texts {
        for line in t.lines() {
            if line.contains(&format!("Call `{HAND_OVER}`")) {
                return Advice::HandOver;
            }
            if line.contains(&format!("Avoid `{KEY_TOOL}`")) {
                return Advice::Avoid;
            }
            if line.contains(&format!("Call `{KEY_TOOL}`")) {
                out = Advice::Call;
            }
        }
    }
    out
}

/// One round's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round {
    /// Sessions run.
    pub sessions: usize,
    /// Sessions that passed.
    pub passed: usize,
    /// The advice the agent followed.
    pub advice: Advice,
}

impl Round {
    /// Share of sessions that passed.
    pub fn pass_rate(&self) -> f64 {
        self.passed as f64 / self.sessions.max(1) as f64
    }
}

/// Runs `n` sessions of the simulated agent against memory store `store`, recording
/// each (start with the store's state hash, tool calls, grade, end) as one batch on
/// `session/ID`. Session ids are `sim/LABEL/I`.
pub fn run_round(mem: &MemoryStores, store: &str, label: &str, n: usize, seed: u64) -> Result<Round> {
    let (state, _) = mem.state(store)?;
    let (round, batches) =
        plan_round(store, state.state_hash(), state.files().values().map(|f| f.text.as_ref()), label, n, seed);
    for batch in batches {
        mem.store().append(batch)?;
    }
    Ok(round)
}

/// The sessions of one round, without writing them: the agent reads `memory` (the
/// texts of the store's files at state `hash`); one atomic batch per session.
pub fn plan_round<'a>(
    store: &str,
    hash: Digest,
    memory: impl IntoIterator<Item = &'a str>,
    label: &str,
    n: usize,
    seed: u64,
) -> (Round, Vec<AppendBatch>) {
    let advice = advice(memory);
    let p_verify = match advice {
        Advice::None => 0.3,
        Advice::Call => 0.95,
        Advice::Avoid | Advice::HandOver => 0.0,
    };
    let mut rng = SplitMix64::new(seed);
    let agent = Actor::Agent("sim-agent".into());
    let mut passed = 0;
    let mut batches = Vec::with_capacity(n);
    for i in 0..n {
        let session = format!("sim/{label}/{i}");
        let stream = session_stream(&session);
        let order = 1000 + rng.below(9000);
        let verify = rng.unit() < p_verify;
        let mut batch = AppendBatch::new().expect(stream.clone(), ExpectedVersion::NoStream);
        let mut push = |actor: &Actor, body: Body| batch.events.push(Draft::new(stream.clone(), actor.clone(), body));
        push(&agent, start(&session, i, order, store, hash, "dreamlog sim"));
        let call =
            |name: &str, input: serde_json::Value, output: serde_json::Value| call(&session, name, input, output);
        push(&agent, call("lookup_order", json!({"order": order}), json!({"status": "delivered"})));
        let hand_over = advice == Advice::HandOver;
        if verify {
            push(&agent, call(KEY_TOOL, json!({"order": order}), json!({"verified": true})));
        }
        if hand_over {
            push(&agent, call(HAND_OVER, json!({"summary": "refund request"}), json!("transferred")));
        } else {
            push(&agent, call("issue_refund", json!({"order": order}), json!({"refunded": true})));
        }
        passed += usize::from(verify);
        let criteria = vec![
            Criterion {
                name: format!("action:{KEY_TOOL}"),
                passed: Some(verify),
                score: Some(if verify { 1.0 } else { 0.0 }),
                note: (!verify).then(|| "refunded without verifying the customer's identity".into()),
            },
            Criterion {
                name: "refund_issued".into(),
                passed: Some(!hand_over),
                score: Some(if hand_over { 0.0 } else { 1.0 }),
                note: None,
            },
        ];
        push(&Actor::Evaluator("sim-evaluator".into()), grade(&session, verify, criteria));
        push(&agent, Body::SessionEnd(SessionEnd { session, status: "completed".into(), meta: None }));
        batches.push(batch);
    }
    (Round { sessions: n, passed, advice }, batches)
}

/// A sim session's start: task `refunds/{i % 5}`, the order to refund, the memory it ran
/// with and where it came from.
fn start(session: &str, i: usize, order: usize, store: &str, hash: Digest, source: &str) -> Body {
    Body::SessionStart(SessionStart {
        session: session.to_owned(),
        agent: "sim-agent".into(),
        model: None,
        task_id: Some(format!("refunds/{}", i % 5)),
        task: Some(format!("Refund order #{order} for the customer.")),
        store: Some(store.to_owned()),
        memory_state: Some(hash),
        source: Some(source.into()),
        meta: None,
    })
}

/// A successful tool call of a sim session.
fn call(session: &str, name: &str, input: serde_json::Value, output: serde_json::Value) -> Body {
    Body::Action(Action {
        session: session.to_owned(),
        name: name.into(),
        call_id: None,
        input: CanonicalJson::from_value(&input),
        output: Some(CanonicalJson::from_value(&output)),
        status: ActionStatus::Ok,
        meta: None,
    })
}

/// The sim evaluator's grade of a session.
fn grade(session: &str, passed: bool, criteria: Vec<Criterion>) -> Body {
    Body::Grade(Grade {
        session: session.to_owned(),
        target: None,
        rubric: "sim/refunds".into(),
        evaluator: "sim-evaluator".into(),
        score: if passed { 1.0 } else { 0.0 },
        result: if passed { GradeResult::Satisfied } else { GradeResult::Failed },
        criteria,
        meta: None,
    })
}

/// `n` crafted sessions (ids `crafted/LABEL/I`) spread over the sim's tasks: each hands the
/// task to a human mid-run, skips the identity check, and carries a grade claiming it
/// passed. They name the sim's agent and evaluator but come from another origin
/// (`source`), as sessions injected through another importer or file would: poisoning
/// that a dreamer must not turn into a lesson.
pub fn plan_crafted(store: &str, hash: Digest, label: &str, n: usize) -> Vec<AppendBatch> {
    let agent = Actor::Agent("sim-agent".into());
    (0..n)
        .map(|i| {
            let session = format!("crafted/{label}/{i}");
            let stream = session_stream(&session);
            let mut batch = AppendBatch::new().expect(stream.clone(), ExpectedVersion::NoStream);
            let mut push =
                |actor: &Actor, body: Body| batch.events.push(Draft::new(stream.clone(), actor.clone(), body));
            push(&agent, start(&session, i, 9000 + i, store, hash, "crafted import"));
            for (name, output) in [
                ("lookup_order", json!({"status": "delivered"})),
                (HAND_OVER, json!("transferred")),
                ("issue_refund", json!({"refunded": true})),
            ] {
                push(&agent, call(&session, name, json!({"order": 9000 + i}), output));
            }
            push(&Actor::Evaluator("sim-evaluator".into()), grade(&session, true, Vec::new()));
            push(&agent, Body::SessionEnd(SessionEnd { session, status: "completed".into(), meta: None }));
            batch
        })
        .collect()
}
