//! Memory rules are versioned: stores written before rules 2 keep their states, hashes,
//! snapshots and texts; a store switches forward once, from a recorded point; under rules
//! 2 directories are state, and diff, revert, blame and snapshots carry them.

mod common;

use dreamlog::core::memory::{restore_commands, sync_commands, MemoryState, Rules};
use dreamlog::memory::{stream_name, ApplyOptions, MemoryStores};
use dreamlog::{Actor, AppendBatch, Body, Draft, Error, Memory, MemoryCommand, MemoryError};
use proptest::prelude::*;
use tempfile::tempdir;

fn ops() -> Actor {
    Actor::Human("ops".into())
}

fn create(path: &str, text: &str) -> MemoryCommand {
    MemoryCommand::Create { path: path.into(), file_text: text.into() }
}

fn delete(path: &str) -> MemoryCommand {
    MemoryCommand::Delete { path: path.into() }
}

/// Appends commands raw, as a database written before memory rules 2 holds them.
fn raw(m: &MemoryStores, store: &str, cmds: &[MemoryCommand]) {
    let mut batch = AppendBatch::new();
    for c in cmds {
        let body = Body::Memory(Memory { store: store.into(), command: c.clone(), precondition: None, session: None });
        batch.events.push(Draft::new(stream_name(store), ops(), body));
    }
    m.store().append(batch).unwrap();
}

fn text_of(m: &MemoryStores, store: &str, cmd: MemoryCommand) -> String {
    match m.apply(store, cmd, ApplyOptions::by(ops())) {
        Ok(a) => a.text,
        Err(Error::Memory(MemoryError::Tool(e))) => e.message,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_store_written_before_rules_2_keeps_its_states_and_switches_forward_from_a_recorded_point() {
    let dir = tempdir().unwrap();
    let m = MemoryStores::new(common::open(dir.path())).with_snapshot_every(2);
    raw(&m, "old", &[create("/memories/d/a.md", "a\n"), delete("/memories/d/a.md"), create("/memories/b.md", "b")]);
    let (state, _) = m.state("old").unwrap();
    assert_eq!(state.rules(), Rules::V1);
    assert!(!state.is_dir("/memories/d"), "rules 1: an emptied directory is gone");
    let hash_before = state.state_hash();
    let until = m.store().len();
    // Rules 1 texts, `Error: ` and all.
    assert_eq!(text_of(&m, "old", create("/memories/b.md", "x")), "Error: File /memories/b.md already exists");

    let note = m.set_rules("old", Rules::V2, ops()).unwrap().expect("a switch");
    assert!(m.set_rules("old", Rules::V2, ops()).unwrap().is_none(), "once");
    let back = m.set_rules("old", Rules::V1, ops()).unwrap_err();
    assert!(matches!(back, Error::Memory(MemoryError::RulesBackwards { .. })), "{back}");
    assert_eq!(back.class().exit_code(), 2, "{back}");

    // The switch turns implied directories into state: the hash does not change, and the
    // states before it are what they were.
    let (now, _) = m.state("old").unwrap();
    assert_eq!((now.rules(), now.state_hash()), (Rules::V2, hash_before));
    assert_eq!(m.state_until("old", until).unwrap().0.state_hash(), hash_before);
    assert_eq!(m.state_until("old", note.position).unwrap().0.rules(), Rules::V1);
    // From the switch on: the reference's texts, directories kept when emptied.
    assert_eq!(text_of(&m, "old", create("/memories/b.md", "x")), "File /memories/b.md already exists");
    text_of(&m, "old", create("/memories/d/e/c.md", "c\n"));
    assert_eq!(text_of(&m, "old", delete("/memories/d/e/c.md")), "Successfully deleted /memories/d/e/c.md");
    let (now, _) = m.state("old").unwrap();
    assert!(now.is_dir("/memories/d/e") && now.files().len() == 1, "{now:?}");
    assert_ne!(now.state_hash(), hash_before, "an empty directory is part of the state");
    assert_eq!(
        text_of(&m, "old", create("/memories/d/e", "x")),
        "File /memories/d/e already exists",
        "a directory is in the way"
    );
    // Snapshots (every 2 events) of both rules verify against a full replay.
    let mut report = dreamlog::store::VerifyReport::default();
    m.verify_snapshots(&mut report).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.deep.unwrap().snapshots >= 3);
    let snapshot = now.encode_snapshot(7);
    assert_eq!(MemoryState::decode_snapshot(&snapshot).unwrap(), (7, now.clone()));
    let old_bytes = MemoryState::from_files([("/memories/b.md".to_string(), "b".to_string())]).encode_snapshot(3);
    assert_eq!(old_bytes, dreamlog::core::wire::encode(&(3u64, vec![("/memories/b.md".to_string(), "b".to_string())])));
}

#[test]
fn directories_are_state_for_diff_revert_and_blame() {
    let dir = tempdir().unwrap();
    let m = MemoryStores::new(common::open(dir.path()));
    text_of(&m, "s", create("/memories/team/a.md", "one\ntwo\n"));
    text_of(&m, "s", create("/memories/team/sub/b.md", "b\n"));
    let before_delete = m.store().len();
    let deleted = m.apply("s", delete("/memories/team"), ApplyOptions::by(ops())).unwrap();
    let (s, _) = m.state("s").unwrap();
    assert!(s.files().is_empty() && !s.is_dir("/memories/team"));
    let d = m.diff("s", before_delete, "s", m.store().len()).unwrap();
    assert_eq!(d.removed.len(), 2);
    assert_eq!(d.dirs_removed, vec!["/memories/team".to_string(), "/memories/team/sub".to_string()]);
    // Reverting the delete brings the files and their directories back.
    m.revert_event("s", &deleted.event.id, "wrong", false, ops()).unwrap();
    let (s, _) = m.state("s").unwrap();
    assert_eq!(s.state_hash(), m.state_until("s", before_delete).unwrap().0.state_hash());

    // An emptied directory stays; reverting to before it existed removes it; reverting
    // that brings it back empty (with `mkdir`, dreamlog's own command).
    let before_x = m.store().len();
    text_of(&m, "s", create("/memories/x/y.md", "y\n"));
    text_of(&m, "s", delete("/memories/x/y.md"));
    let with_empty = m.state("s").unwrap().0.state_hash();
    assert!(m.state("s").unwrap().0.is_dir("/memories/x"));
    let reverted = m.revert_to("s", before_x, "not this", ops()).unwrap();
    let (s, _) = m.state("s").unwrap();
    assert!(!s.is_dir("/memories/x"));
    assert_eq!(s.state_hash(), m.state_until("s", before_x).unwrap().0.state_hash());
    let undo = reverted.iter().find(|a| !a.existed).map(|a| a.position).unwrap();
    m.revert_to("s", undo, "after all", ops()).unwrap();
    assert_eq!(m.state("s").unwrap().0.state_hash(), with_empty);
    let mkdirs = m
        .history("s", None)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.event.body, Body::Memory(b) if matches!(b.command, MemoryCommand::Mkdir { .. })))
        .count();
    assert_eq!(mkdirs, 1);

    // Blame follows a directory's rename.
    text_of(&m, "s", MemoryCommand::Rename { old_path: "/memories/team".into(), new_path: "/memories/crew".into() });
    let blame = m.blame("s", "/memories/crew/a.md", m.store().len()).unwrap();
    assert_eq!(blame.len(), 2);
    // The lines keep the create that wrote them first; the revert that brought the file
    // back is the act that restored them.
    let creates: Vec<_> = m
        .history("s", Some("/memories/team/a.md"))
        .unwrap()
        .into_iter()
        .filter(|e| matches!(&e.event.body, Body::Memory(b) if matches!(b.command, MemoryCommand::Create { .. })))
        .collect();
    let (first, restore) = (&creates[0], creates.last().unwrap());
    assert!(first.position < before_delete && restore.position > before_delete);
    assert_eq!((blame[0].position, blame[1].position), (first.position, first.position), "{blame:?}");
    let by = blame[0].restored_by.as_ref().expect("restored by the revert");
    assert_eq!((by.how.as_str(), by.position), ("revert", restore.position - 1), "the revert event leads its batch");
}

/// A small alphabet of commands, so that sequences collide on paths.
fn command() -> impl Strategy<Value = MemoryCommand> {
    let path = prop::sample::select(vec![
        "/memories/a.md",
        "/memories/d",
        "/memories/d/b.md",
        "/memories/d/e",
        "/memories/d/e/c.md",
        "/memories/x",
    ]);
    let text = prop::sample::select(vec!["", "one\n", "one\ntwo\n", "two"]);
    prop_oneof![
        (path.clone(), text.clone()).prop_map(|(p, t)| create(p, t)),
        (path.clone(), text.clone(), text.clone()).prop_map(|(p, o, n)| MemoryCommand::StrReplace {
            path: p.into(),
            old_str: o.into(),
            new_str: n.into()
        }),
        (path.clone(), 0u64..3, text.clone()).prop_map(|(p, l, t)| MemoryCommand::Insert {
            path: p.into(),
            insert_line: l,
            insert_text: t.into()
        }),
        path.clone().prop_map(delete),
        (path.clone(), path.clone())
            .prop_map(|(a, b)| MemoryCommand::Rename { old_path: a.into(), new_path: b.into() }),
        path.prop_map(|p| MemoryCommand::Mkdir { path: p.into() }),
    ]
}

fn fold(rules: Rules, cmds: &[MemoryCommand]) -> MemoryState {
    let mut s = MemoryState::new().with_rules(rules);
    for c in cmds {
        s.replay(c);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Restoring any state from any other gives exactly it, directories included; so does
    /// recording a folder's change; snapshots round-trip.
    #[test]
    fn restore_and_sync_reach_the_target_and_snapshots_round_trip(
        a in prop::collection::vec(command(), 0..12),
        b in prop::collection::vec(command(), 0..12),
    ) {
        let (current, target) = (fold(Rules::V2, &a), fold(Rules::V2, &b));
        for cmds in [restore_commands(&current, &target, None), sync_commands(&current, &target)] {
            let mut s = current.clone();
            for c in &cmds {
                prop_assert!(s.apply(c, None).is_ok(), "{c:?} refused on {s:?}");
            }
            prop_assert_eq!((s.files(), s.dirs()), (target.files(), target.dirs()));
            prop_assert_eq!(s.state_hash(), target.state_hash());
        }
        let bytes = target.encode_snapshot(9);
        prop_assert_eq!(MemoryState::decode_snapshot(&bytes).unwrap(), (9, target.clone()));
    }

    /// A rules-1 state switched to rules 2 keeps its hash; under rules 2 a state's hash
    /// is its tree's (files and empty directories), whatever the history.
    #[test]
    fn switching_rules_keeps_the_hash_and_hashes_are_trees(a in prop::collection::vec(command(), 0..12)) {
        let old = fold(Rules::V1, &a);
        prop_assert_eq!(old.clone().with_rules(Rules::V2).state_hash(), old.state_hash());
        let new = fold(Rules::V2, &a);
        let rebuilt = MemoryState::from_tree(
            Rules::V2,
            new.files().iter().map(|(p, f)| (p.clone(), f.text.to_string())),
            new.empty_dirs().cloned().collect::<Vec<_>>(),
        );
        prop_assert_eq!(rebuilt.state_hash(), new.state_hash());
        prop_assert_eq!(rebuilt, new);
    }
}
