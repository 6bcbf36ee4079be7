//! A graded session of five events (start, two tool calls, grade, end), as drafts: what
//! the benchmarks over many sessions (`ui`, `ledger`) write.

use dreamlog::core::{Draft, EventJson};
use serde_json::json;

/// Session `i`, stamped from `time`, run with memory store `store`.
pub fn session(i: u64, time: u64, store: &str) -> Vec<Draft> {
    let id = format!("bench/{i:07}");
    let s = format!("session/{id}");
    let passed = !i.is_multiple_of(3);
    let task = format!("refunds/{}", i % 40);
    [
        json!({"stream": s, "kind": "session.start", "actor": "agent:bench", "time": time,
               "body": {"session": id, "agent": "bench", "task_id": task, "task": "Refund the order.", "store": store}}),
        json!({"stream": s, "kind": "action", "actor": "agent:bench", "time": time + 1,
               "body": {"session": id, "name": "lookup_order", "input": {"order": i}, "output": {"status": "delivered"}, "status": "ok"}}),
        json!({"stream": s, "kind": "action", "actor": "agent:bench", "time": time + 2,
               "body": {"session": id, "name": "issue_refund", "input": {"order": i}, "output": {"refunded": passed}, "status": "ok"}}),
        json!({"stream": s, "kind": "grade", "actor": "evaluator:bench", "time": time + 3,
               "body": {"session": id, "evaluator": "bench", "rubric": "sim/refunds", "score": if passed { 1.0 } else { 0.0 },
                        "result": if passed { "satisfied" } else { "failed" },
                        "criteria": [{"name": "refund_issued", "passed": passed}]}}),
        json!({"stream": s, "kind": "session.end", "actor": "agent:bench", "time": time + 4,
               "body": {"session": id, "status": "completed"}}),
    ]
    .into_iter()
    .map(|v| EventJson::from_value(&v).expect("event").into_draft(None).expect("draft"))
    .collect()
}
