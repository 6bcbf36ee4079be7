//! `tools/lesson_precision.py` scores the default dreamer's lessons against the expected
//! actions τ-bench stores for every task. It must catch the confounded lessons of
//! evidence@1 on real runs (the baseline the evidence@2 issue has to beat).

mod common;

use serde_json::Value;

fn precision(file: &str) -> (Vec<Value>, Value) {
    let out = std::process::Command::new("python3")
        .arg(common::root().join("tools/lesson_precision.py"))
        .arg(common::data(file))
        .args(["--dreamlog", env!("CARGO_BIN_EXE_dreamlog"), "--json"])
        .output()
        .expect("run tools/lesson_precision.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = common::json_lines(&String::from_utf8(out.stdout).unwrap());
    let summary = lines.pop().expect("a summary line")["summary"].clone();
    (lines, summary)
}

#[test]
fn the_precision_tool_catches_evidence_1s_confounded_lessons_on_real_runs() {
    let (lessons, summary) = precision("tau-bench/gpt-4o-airline.tasks-00-24.json");
    assert_eq!(summary["episodes"], 100);
    assert_eq!(summary["lessons"].as_u64(), Some(lessons.len() as u64));
    // "Call `transfer_to_human_agents`": sessions that hand over pass because those tasks
    // then check nothing; the call is expected in 1 of the 18 episodes that made it.
    let transfer = lessons
        .iter()
        .find(|l| l["text"].as_str().unwrap().contains("Call `transfer_to_human_agents`"))
        .expect("evidence@1 writes the hand-over lesson");
    assert_eq!(transfer["verdict"], "WRONG", "{transfer}");
    // Lessons from the graders' own labels (an expected call never made) are right.
    assert!(lessons
        .iter()
        .filter(|l| l["text"].as_str().unwrap().contains("was expected but never called"))
        .all(|l| l["verdict"] == "right"));
    let p = summary["precision"].as_f64().unwrap();
    assert!(p < 1.0 && p > 0.0, "{summary}");
}
