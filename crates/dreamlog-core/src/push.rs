//! The hosted API calls that make a mirrored store's change on the hosted store itself
//! (`dreamlog memory revert` / `promote` of a store `sync anthropic` mirrors): pure, from
//! the store's files now, the hosted memory ids at their paths, and the commands a local
//! revert or promote would append.
//!
//! Each hosted memory the commands touch becomes at most one call: an update (new content
//! and/or new path, conditioned on the content it has now), or a delete (conditioned the
//! same way); a file the commands make where no memory is becomes a create (a new memory
//! id, unconditioned: the API has no "only if absent"). A delete and a create of the same
//! content are one update that moves the memory (it keeps its id). Deletes come first,
//! then updates, then creates, so that a path freed is free before it is taken.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::managed::{api_path, check_api_path, sha256_hex, MAX_CONTENT_BYTES};
use crate::memory::{MemoryState, Rules};
use crate::MemoryCommand;

/// The note type of a push's intent: recorded on the store's stream before the first call.
pub const PUSH_NOTE: &str = "anthropic.push";

/// One call to the hosted memory API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushCall {
    /// `create`, `update` or `delete`.
    pub op: String,
    /// The memory it changes (`mem_…`; none for a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_id: Option<String>,
    /// The memory's API path now (a create: the path it makes).
    pub path: String,
    /// An update that moves the memory: its new API path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_path: Option<String>,
    /// The `content_sha256` the memory must have for the call to apply (an update's
    /// `precondition`, a delete's `expected_content_sha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition: Option<String>,
    /// The SHA-256 of the content it writes (none when the content stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// The size of that content in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// The content it writes (not recorded in the intent: the log holds it).
    #[serde(skip)]
    pub content: Option<String>,
}

/// A push's intent (the `anthropic.push` note's JSON): recorded before the first call,
/// cited by the commands the mirror writes for the versions the calls made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushIntent {
    /// `revert` or `promote`.
    pub op: String,
    /// A revert's target as the `revert` event's JSON form names it (`{"session": ID}`,
    /// …); a promote's `{"fork": STORE}`.
    pub target: serde_json::Value,
    /// Why (a revert's reason).
    #[serde(default)]
    pub reason: String,
    /// Where the lines it puts back come from (what blame reads).
    pub restore: PushRestore,
    /// The calls, in the order they are sent.
    pub calls: Vec<PushCall>,
}

/// The note type that records what a push's calls did (after the last call).
pub const PUSH_RESULT_NOTE: &str = "anthropic.push.result";

/// What a push's calls did (the `anthropic.push.result` note's JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushResult {
    /// The intent.
    pub intent: crate::EventId,
    /// The memory version each written call made (call index → `memver_…`).
    #[serde(default)]
    pub versions: BTreeMap<usize, String>,
    /// The calls that wrote nothing (refused, failed, not sent).
    #[serde(default)]
    pub closed: Vec<usize>,
}

/// The store state a push restores: `store` before log position `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRestore {
    /// The store (a revert: the mirrored store; a promote: the fork).
    pub store: String,
    /// Its state before this log position.
    pub until: u64,
}

/// Why no calls can be planned: each problem names the memory path.
pub type PlanError = Vec<String>;

/// The calls that turn the hosted store, holding `files` (dreamlog paths → texts, as the
/// mirror holds them) with the hosted memory ids `ids` (dreamlog path → `mem_…`), into
/// the state `commands` leave. Refused, naming every problem, when a command does not
/// apply, a path is outside `/memories` or not one the API takes, a content is over the
/// API's limit, or a memory the commands change has no known hosted id.
pub fn plan_calls(
    files: &BTreeMap<String, String>,
    rules: Rules,
    ids: &BTreeMap<String, String>,
    commands: &[MemoryCommand],
) -> Result<Vec<PushCall>, PlanError> {
    let mut state = MemoryState::from_files(files.iter().map(|(p, t)| (p.clone(), t.clone()))).with_rules(rules);
    // Where each memory held now is after each command (index into `files`' order), and
    // the files the commands made anew.
    let originals: Vec<(&String, &String)> = files.iter().collect();
    let mut at: BTreeMap<String, Option<usize>> =
        originals.iter().enumerate().map(|(i, (p, _))| ((*p).clone(), Some(i))).collect();
    for cmd in commands {
        if let Err(e) = state.apply(cmd, None) {
            return Err(vec![format!(
                "{}: the change does not apply to the store as mirrored: {}",
                path_of(cmd),
                e.message
            )]);
        }
        match cmd {
            MemoryCommand::Create { path, .. } | MemoryCommand::Write { path, .. } => {
                at.entry(path.clone()).or_insert(None);
            }
            MemoryCommand::Delete { path } => at.retain(|p, _| !covers(path, p)),
            MemoryCommand::Rename { old_path, new_path } => {
                let moved: Vec<(String, Option<usize>)> = at
                    .iter()
                    .filter(|(p, _)| covers(old_path, p))
                    .map(|(p, i)| (format!("{new_path}{}", &p[old_path.len()..]), *i))
                    .collect();
                at.retain(|p, _| !covers(old_path, p));
                at.extend(moved);
            }
            _ => {}
        }
    }
    let after = state.files();
    let mut problems = Vec::new();
    let api = |path: &str, problems: &mut Vec<String>| -> String {
        match api_path(path) {
            Some(a) => {
                if let Err(reason) = check_api_path(a) {
                    problems.push(format!("{path}: the hosted API refuses this path: {reason}"));
                }
                a.to_owned()
            }
            None => {
                problems.push(format!("{path}: outside /memories, where the hosted store keeps its memories"));
                path.to_owned()
            }
        }
    };
    let mut deletes = Vec::new();
    let mut updates = Vec::new();
    let mut creates = Vec::new();
    let now: BTreeMap<usize, &String> = at.iter().filter_map(|(p, i)| i.map(|i| (i, p))).collect();
    for (i, (path, text)) in originals.iter().enumerate() {
        let was = sha256_hex(text);
        let moved_to = now.get(&i);
        let unchanged = moved_to.is_some_and(|q| *q == *path && after.get(*q).is_some_and(|f| *f.text == ***text));
        if unchanged {
            continue;
        }
        let Some(id) = ids.get(*path) else {
            problems.push(format!("{path}: no hosted memory is known at this path (run `dreamlog sync anthropic`)"));
            continue;
        };
        let from = api(path, &mut problems);
        match moved_to {
            None => deletes.push(PushCall {
                op: "delete".into(),
                memory_id: Some(id.clone()),
                path: from,
                new_path: None,
                precondition: Some(was),
                content_sha256: None,
                size: None,
                content: None,
            }),
            Some(q) => {
                let text = after.get(*q).map(|f| f.text.to_string()).unwrap_or_default();
                let sha = sha256_hex(&text);
                let new_path = (*q != *path).then(|| api(q, &mut problems));
                let changed = sha != was;
                updates.push(PushCall {
                    op: "update".into(),
                    memory_id: Some(id.clone()),
                    path: from,
                    new_path,
                    precondition: Some(was),
                    content_sha256: changed.then(|| sha.clone()),
                    size: changed.then_some(text.len()),
                    content: changed.then_some(text),
                });
            }
        }
    }
    for (p, i) in &at {
        if i.is_none() {
            let text = after.get(p).map(|f| f.text.to_string()).unwrap_or_default();
            creates.push(PushCall {
                op: "create".into(),
                memory_id: None,
                path: api(p, &mut problems),
                new_path: None,
                precondition: None,
                content_sha256: Some(sha256_hex(&text)),
                size: Some(text.len()),
                content: Some(text),
            });
        }
    }
    // A delete and a create at the same path: the memory's content replaced (it keeps its
    // id; a file emptied, then written, is planned so).
    deletes.retain(|d| {
        let Some(c) = creates.iter().position(|c| c.path == d.path) else { return true };
        let c = creates.remove(c);
        updates.push(PushCall {
            op: "update".into(),
            memory_id: d.memory_id.clone(),
            path: d.path.clone(),
            new_path: None,
            precondition: d.precondition.clone(),
            content_sha256: c.content_sha256,
            size: c.size,
            content: c.content,
        });
        false
    });
    // A delete and a create of the same content: the memory moves (it keeps its id).
    deletes.retain(|d| {
        let Some(c) = creates.iter().position(|c| c.content_sha256 == d.precondition) else { return true };
        let c = creates.remove(c);
        updates.push(PushCall {
            op: "update".into(),
            memory_id: d.memory_id.clone(),
            path: d.path.clone(),
            new_path: Some(c.path),
            precondition: d.precondition.clone(),
            content_sha256: None,
            size: None,
            content: None,
        });
        false
    });
    for c in updates.iter().chain(&creates) {
        if let Some(n) = c.size.filter(|n| *n > MAX_CONTENT_BYTES) {
            let path = c.new_path.as_ref().unwrap_or(&c.path);
            problems.push(format!(
                "{path}: {n} bytes, over the hosted API's limit of {MAX_CONTENT_BYTES} bytes (100 kB) for a memory"
            ));
        }
    }
    // A memory that moves to a path another one leaves goes after it.
    let updates = match order_moves(updates) {
        Ok(u) => u,
        Err(cycle) => {
            problems.push(format!(
                "{cycle}: memories would swap paths, which the hosted API cannot do without a third path (move one first)"
            ));
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(deletes.into_iter().chain(updates).chain(creates).collect())
}

/// Updates ordered so that one moving into a path comes after the one moving out of it;
/// a cycle of moves is an error naming its paths.
fn order_moves(mut pending: Vec<PushCall>) -> Result<Vec<PushCall>, String> {
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|c| {
            c.new_path.as_ref().is_none_or(|to| !pending.iter().any(|o| o.path == *to && o.new_path.is_some()))
        });
        match ready {
            Some(i) => out.push(pending.remove(i)),
            None => {
                return Err(pending.iter().map(|c| c.path.as_str()).collect::<Vec<_>>().join(" → "));
            }
        }
    }
    Ok(out)
}

/// The path a command names first.
fn path_of(cmd: &MemoryCommand) -> &str {
    match cmd {
        MemoryCommand::Create { path, .. }
        | MemoryCommand::Write { path, .. }
        | MemoryCommand::StrReplace { path, .. }
        | MemoryCommand::Insert { path, .. }
        | MemoryCommand::Delete { path }
        | MemoryCommand::Mkdir { path } => path,
        MemoryCommand::Rename { old_path, .. } => old_path,
    }
}

/// Whether `path` is `dir` or below it.
fn covers(dir: &str, path: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(f: &[(&str, &str)]) -> BTreeMap<String, String> {
        f.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
    }

    fn ids(f: &[(&str, &str)]) -> BTreeMap<String, String> {
        files(f)
    }

    #[test]
    fn each_memory_is_one_call_with_the_hash_it_has_now() {
        let now = files(&[("/memories/a.md", "a\n"), ("/memories/b.md", "b\n"), ("/memories/c.md", "c\n")]);
        let id = ids(&[("/memories/a.md", "mem_a"), ("/memories/b.md", "mem_b"), ("/memories/c.md", "mem_c")]);
        let cmds = vec![
            MemoryCommand::StrReplace { path: "/memories/a.md".into(), old_str: "a".into(), new_str: "A".into() },
            MemoryCommand::Insert { path: "/memories/a.md".into(), insert_line: 0, insert_text: "top".into() },
            MemoryCommand::Delete { path: "/memories/b.md".into() },
            MemoryCommand::Create { path: "/memories/d.md".into(), file_text: "d\n".into() },
        ];
        let calls = plan_calls(&now, Rules::V2, &id, &cmds).expect("a plan");
        let ops: Vec<(&str, Option<&str>, &str)> =
            calls.iter().map(|c| (c.op.as_str(), c.memory_id.as_deref(), c.path.as_str())).collect();
        assert_eq!(
            ops,
            [("delete", Some("mem_b"), "/b.md"), ("update", Some("mem_a"), "/a.md"), ("create", None, "/d.md")]
        );
        assert_eq!(calls[0].precondition, Some(sha256_hex("b\n")));
        assert_eq!(calls[1].precondition, Some(sha256_hex("a\n")));
        assert_eq!(calls[1].content.as_deref(), Some("top\nA\n"));
        assert_eq!(calls[1].content_sha256, Some(sha256_hex("top\nA\n")));
        assert_eq!((calls[2].precondition.as_ref(), calls[2].content.as_deref()), (None, Some("d\n")));
    }

    #[test]
    fn a_move_keeps_the_memory_and_a_delete_with_a_create_of_its_content_is_one() {
        let now = files(&[("/memories/a.md", "a\n"), ("/memories/x/b.md", "b\n")]);
        let id = ids(&[("/memories/a.md", "mem_a"), ("/memories/x/b.md", "mem_b")]);
        let cmds = vec![
            MemoryCommand::Rename { old_path: "/memories/x".into(), new_path: "/memories/y".into() },
            MemoryCommand::Delete { path: "/memories/a.md".into() },
            MemoryCommand::Create { path: "/memories/z.md".into(), file_text: "a\n".into() },
        ];
        let calls = plan_calls(&now, Rules::V2, &id, &cmds).expect("a plan");
        assert_eq!(calls.len(), 2, "{calls:?}");
        for (c, (id, from, to)) in calls.iter().zip([("mem_b", "/x/b.md", "/y/b.md"), ("mem_a", "/a.md", "/z.md")]) {
            assert_eq!(
                (c.op.as_str(), c.memory_id.as_deref(), c.path.as_str(), c.new_path.as_deref(), c.content.as_ref()),
                ("update", Some(id), from, Some(to), None)
            );
        }
    }

    #[test]
    fn an_emptied_file_written_again_is_an_update_and_moves_go_in_an_order_that_frees_each_path() {
        let now = files(&[("/memories/a.md", ""), ("/memories/b.md", "b\n"), ("/memories/c.md", "c\n")]);
        let id = ids(&[("/memories/a.md", "mem_a"), ("/memories/b.md", "mem_b"), ("/memories/c.md", "mem_c")]);
        // (What restore_commands makes of an empty file: a delete, then a create.)
        let cmds = vec![
            MemoryCommand::Delete { path: "/memories/a.md".into() },
            MemoryCommand::Create { path: "/memories/a.md".into(), file_text: "a\n".into() },
            MemoryCommand::Rename { old_path: "/memories/c.md".into(), new_path: "/memories/d.md".into() },
            MemoryCommand::Rename { old_path: "/memories/b.md".into(), new_path: "/memories/c.md".into() },
        ];
        let calls = plan_calls(&now, Rules::V2, &id, &cmds).expect("a plan");
        let ops: Vec<(&str, &str, Option<&str>)> =
            calls.iter().map(|c| (c.op.as_str(), c.path.as_str(), c.new_path.as_deref())).collect();
        assert_eq!(
            ops,
            [("update", "/c.md", Some("/d.md")), ("update", "/b.md", Some("/c.md")), ("update", "/a.md", None)]
        );
        assert_eq!(
            (calls[2].memory_id.as_deref(), calls[2].precondition.clone()),
            (Some("mem_a"), Some(sha256_hex("")))
        );
        assert_eq!(calls[2].content.as_deref(), Some("a\n"));
        let swap = vec![
            MemoryCommand::Rename { old_path: "/memories/b.md".into(), new_path: "/memories/x.md".into() },
            MemoryCommand::Rename { old_path: "/memories/c.md".into(), new_path: "/memories/b.md".into() },
            MemoryCommand::Rename { old_path: "/memories/x.md".into(), new_path: "/memories/c.md".into() },
        ];
        let problems = plan_calls(&now, Rules::V2, &id, &swap).expect_err("a swap");
        assert!(problems[0].contains("swap paths"), "{problems:?}");
    }

    #[test]
    fn nothing_is_planned_when_any_memory_cannot_be_written() {
        let now = files(&[("/memories/a.md", "a\n"), ("/memories/copy.md", "c\n")]);
        let id = ids(&[("/memories/a.md", "mem_a")]);
        let big = "x".repeat(MAX_CONTENT_BYTES + 1);
        let cmds = vec![
            MemoryCommand::Write { path: "/memories/a.md".into(), file_text: big },
            MemoryCommand::Delete { path: "/memories/copy.md".into() },
        ];
        let problems = plan_calls(&now, Rules::V2, &id, &cmds).expect_err("refused");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("/memories/copy.md: no hosted memory")));
        assert!(problems.iter().any(|p| p.starts_with("/a.md: 102401 bytes, over")));
        let refused = vec![MemoryCommand::Delete { path: "/memories/nope.md".into() }];
        let problems = plan_calls(&now, Rules::V2, &id, &refused).expect_err("refused");
        assert!(problems[0].starts_with("/memories/nope.md: the change does not apply"), "{problems:?}");
    }
}
