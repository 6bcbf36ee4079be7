//! Memory stores over the log: apply commands, read any state as of any point, history,
//! diff, blame, revert, fork, promote and tags. The pure rules live in
//! `core::memory`; this module reads and appends events through [`Store`].
//!
//! A store `S` is the stream `memory/S`. Its state at a point is the fold of its
//! `memory` events up to that point, starting from its source's state when its first
//! event is a `store.fork`. Every `apply` checks the command against the current state
//! and appends with the stream's expected version, so concurrent writers can never
//! append a command that was checked against a stale state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::core::blame::{self, split_lines, Attributed, Origin};
use crate::core::memory::{
    diff_states, merge3, restore_commands, MemoryDiff, MemoryState, Rules, ToolError, CURRENT_RULES, RULES_NOTE,
};
use crate::core::{
    Actor, Body, Digest, Draft, EventId, Kind, Memory as MemoryBody, MemoryCommand, Revert, RevertTarget, StoreFork,
    Tag,
};
use crate::error::{Error, Result};
use crate::error::{LogError, MemoryError};
use crate::store::{AppendBatch, Appended, ExpectedVersion, Store, StoredEvent};

/// The stream of a memory store.
pub fn stream_name(store: &str) -> String {
    crate::core::streams::memory(store)
}

/// The stream tags are recorded in.
pub const TAG_STREAM: &str = crate::core::streams::TAGS;

/// Default: a snapshot of a store every this many of its events.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 1000;

/// Options of one memory command.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Who issues it.
    pub actor: Actor,
    /// The session it belongs to.
    pub session: Option<String>,
    /// Expected content hash of the file.
    pub precondition: Option<Digest>,
    /// Evidence the command derives from.
    pub causes: Vec<EventId>,
    /// The whole store's expected state hash before the commands (a conflict otherwise).
    pub state: Option<Digest>,
}

impl ApplyOptions {
    /// Options with just an actor.
    pub fn by(actor: Actor) -> ApplyOptions {
        ApplyOptions { actor, session: None, precondition: None, causes: Vec::new(), state: None }
    }
}

/// What a successful command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The tool's result text.
    pub text: String,
    /// Where its event landed.
    pub event: Appended,
}

/// Where a store stands at a point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreHead {
    /// Version of the store's last event at that point (`None`: no events).
    pub version: Option<u64>,
    /// Position of that event.
    pub position: Option<u64>,
}

/// The grade of the session that wrote a blamed line: its last grade as of the blamed
/// point (a session's score).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionVerdict {
    /// The grade event.
    pub grade: EventId,
    /// Its score in 0..1.
    pub score: f64,
    /// Its result (`satisfied`, `needs_revision`, `failed`, …).
    pub result: String,
    /// Who graded.
    pub evaluator: String,
}

/// One line of `blame`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlameLine {
    /// 1-based line number.
    pub line: usize,
    /// The line's text.
    pub text: String,
    /// The event that wrote it.
    pub id: EventId,
    /// Its position.
    pub position: u64,
    /// Its time (ms).
    pub time: u64,
    /// Its actor.
    pub actor: String,
    /// The dream that produced it, if any.
    pub dream: Option<EventId>,
    /// The evidence the event cites (sessions, grades…), without the dream itself.
    pub evidence: Vec<EventId>,
    /// The session that issued the command (an agent's own memory edit), if any.
    pub session: Option<String>,
    /// That session's grade as of the blamed point, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<SessionVerdict>,
    /// When a revert or a promote put the line back (the line above is then the event
    /// that wrote it before): that act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_by: Option<RestoredBy>,
    /// Who wrote that event (its batch's receipt), where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<crate::core::receipt::Received>,
}

/// The act that put a blamed line back where it was: a revert (its event) or a promote
/// (the command that copied the line from the fork).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoredBy {
    /// `revert` or `promote`.
    pub how: String,
    /// The act's event.
    pub id: EventId,
    /// Its position.
    pub position: u64,
    /// Its time (ms).
    pub time: u64,
    /// Its actor.
    pub actor: String,
    /// Who wrote it (its batch's receipt), where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<crate::core::receipt::Received>,
    /// A revert's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a memory command relates to lines written before it (blame).
enum PutBack {
    /// It wrote its own lines.
    No,
    /// A promote's copy of the fork's command at `from`: its lines are that command's.
    Copy { from: u64 },
    /// A restore to the state of `store` before `until`, by the act at `by`: lines found
    /// there keep their origin.
    Restore { store: String, until: u64, by: u64 },
}

/// Memory operations over a store.
#[derive(Clone)]
pub struct MemoryStores {
    store: Store,
    snapshot_every: u64,
    /// One lock per store name: writers in this process take turns, so their expected
    /// versions rarely clash; writers in other processes are caught by the expected
    /// version and retried.
    locks: Arc<std::sync::Mutex<HashMap<String, Arc<std::sync::Mutex<()>>>>>,
    /// Set by [`MemoryStores::dry_run`]: writes are planned and recorded here, never appended.
    preview: Option<Arc<std::sync::Mutex<Option<Preview>>>>,
}

/// What a write would append and how it would change the store, made without appending
/// (`?dry_run=true` on revert and promote; schemas/api/preview.schema.json).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preview {
    /// The store that would change.
    pub store: String,
    /// The events that would be appended, in their append form (no id, time or parents:
    /// the store stamps them).
    pub events: Vec<crate::core::EventJson>,
    /// The store's state hash now.
    pub state_before: crate::core::Digest,
    /// Its state hash after the events.
    pub state_after: crate::core::Digest,
    /// What would change, file by file (unified diffs).
    pub diff: MemoryDiff,
}

impl MemoryStores {
    /// The names of every memory store, sorted: the stores with at least one event, and
    /// those that sessions recorded running with (empty until their first command).
    pub fn stores(&self) -> Result<Vec<String>> {
        let mut names: std::collections::BTreeSet<String> = self
            .store
            .streams()?
            .into_iter()
            .filter_map(|(s, _)| s.strip_prefix("memory/").map(str::to_owned))
            .collect();
        names.extend(self.session_stores()?);
        Ok(names.into_iter().collect())
    }

    /// The stores sessions recorded running with (in `session.start` or `session.link`),
    /// from the ledger index.
    fn session_stores(&self) -> Result<std::collections::BTreeSet<String>> {
        Ok(self.store.session_stores()?.into_iter().collect())
    }

    /// Whether store `name` is a mirror of a hosted store (`sync anthropic` wrote its
    /// first event).
    pub fn is_mirror(&self, name: &str) -> Result<bool> {
        let first = self.store.read_stream(&stream_name(name), 0, 1)?;
        Ok(first.first().is_some_and(|e| e.event.header.actor == crate::core::managed::sync_actor()))
    }

    /// Refuses a change made here to a store `sync anthropic` mirrors (`what`: `revert`,
    /// `promote`): it is pushed to the hosted store instead (`managed::push`).
    pub fn refuse_mirror(&self, name: &str, what: &str) -> Result<()> {
        if self.is_mirror(name)? {
            return Err(Error::Managed(crate::error::ManagedError::Mirrored {
                store: name.to_owned(),
                what: what.to_owned(),
            }));
        }
        Ok(())
    }

    /// Refuses a store that is not known — no event of its own and no session that ran
    /// with it — (`error: no memory store "x" (known: …)`), so a typo reads nothing and
    /// writes nothing.
    pub fn require(&self, name: &str) -> Result<()> {
        crate::core::validate::check_store_name("store", name)?;
        if self.store.stream_version(&stream_name(name))?.is_some() || self.store.has_sessions_with(name)? {
            return Ok(());
        }
        Err(self.no_such_store(name))
    }

    fn no_such_store(&self, name: &str) -> Error {
        let known = self.stores().unwrap_or_default();
        let known = if known.is_empty() {
            "none".to_owned()
        } else if known.len() > 12 {
            format!("{}, … {} in all", known[..12].join(", "), known.len())
        } else {
            known.join(", ")
        };
        Error::Memory(MemoryError::NoSuchStore { name: name.to_owned(), known })
    }

    /// Memory operations over `store`, snapshotting every [`DEFAULT_SNAPSHOT_EVERY`] events.
    pub fn new(store: Store) -> MemoryStores {
        MemoryStores { store, snapshot_every: DEFAULT_SNAPSHOT_EVERY, locks: Arc::default(), preview: None }
    }

    /// Sets the snapshot interval (0 disables snapshots).
    pub fn with_snapshot_every(mut self, n: u64) -> MemoryStores {
        self.snapshot_every = n;
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Resolves a point to an exclusive end position ("the log up to here"): `head`, a
    /// global position (inclusive), a tag, a time — RFC 3339, a date (`2026-12-01`) or
    /// relative to now (`-5m`, `-2h`, `-7d`) — meaning event time (every event up to the
    /// first one stamped later), or an event id / unique id prefix (inclusive).
    pub fn resolve_point(&self, at: &str) -> Result<u64> {
        let len = self.store.len();
        let at = at.trim();
        if at.is_empty() {
            return Err(Error::Memory(MemoryError::UnknownPoint(
                "an empty point (give a position, an id, a tag, a time (RFC 3339, a date, or -5m) or head)".into(),
            )));
        }
        if at == "head" {
            return Ok(len);
        }
        if at.len() < 16 && at.bytes().all(|b| b.is_ascii_digit()) {
            let p: u64 = at.parse().map_err(|_| Error::Memory(MemoryError::UnknownPoint(at.to_owned())))?;
            if p >= len {
                return Err(Error::Log(LogError::NoSuchPosition(p)));
            }
            return Ok(p + 1);
        }
        if let Some(p) = self.tag_position(at)? {
            return Ok(p + 1);
        }
        if let Some(ms) = crate::core::time::parse_time(at, crate::store::now_ms()) {
            let ms = ms.map_err(|why| Error::Memory(MemoryError::PointOutOfRange(why)))?;
            let mut until = 0;
            self.store.scan(0, |e| {
                if e.event.header.time > ms {
                    return false;
                }
                until = e.position + 1;
                true
            })?;
            return Ok(until);
        }
        match self.store.resolve_id(at) {
            Ok(id) => {
                Ok(self.store.position_of(&id)?.ok_or_else(|| Error::NotFound(format!("no event with id {at}")))? + 1)
            }
            Err(Error::BadIdPrefix(_)) | Err(Error::NotFound(_)) => {
                Err(Error::Memory(MemoryError::UnknownPoint(at.to_owned())))
            }
            Err(e) => Err(e),
        }
    }

    /// The position a tag names (the last tag of that name), from the marks index.
    pub fn tag_position(&self, name: &str) -> Result<Option<u64>> {
        use crate::core::projection::{be_u64, mark_prefix, Space, MARK_TAG};
        let mut found = None;
        self.store.index_prefix(Space::Marks, &mark_prefix(MARK_TAG, name), |_, middle, v| {
            if middle.is_empty() {
                found = be_u64(v);
            }
            true
        })?;
        Ok(found)
    }

    /// Records a tag naming the last position before `until`.
    pub fn tag(&self, name: &str, until: u64, actor: Actor) -> Result<Appended> {
        if let Some(position) = self.tag_position(name)? {
            return Err(Error::Memory(MemoryError::TagExists { name: name.to_owned(), position }));
        }
        let position =
            until.checked_sub(1).ok_or_else(|| Error::Memory(MemoryError::UnknownPoint("an empty log".into())))?;
        let body = Body::Tag(Tag { name: name.to_owned(), position });
        Ok(self.store.append(AppendBatch::one(Draft::new(TAG_STREAM, actor, body)))?.remove(0))
    }

    /// The state of `name` from the log up to (excluding) position `until`. A store with
    /// no events by then is empty under the rules its first write records
    /// ([`CURRENT_RULES`]).
    pub fn state_until(&self, name: &str, until: u64) -> Result<(MemoryState, StoreHead)> {
        let (state, head) = self.fold_until(name, until)?;
        if head.version.is_none() {
            return Ok((MemoryState::new().with_rules(CURRENT_RULES), head));
        }
        Ok((state, head))
    }

    /// The fold of `name`'s events before `until`, exactly as recorded: a store with no
    /// events is empty under rules 1. A fork starts from this state of its source (forks
    /// and dreams of a store that did not exist yet were recorded so, and replay so), and
    /// a dream reads this state as its base.
    pub fn fold_until(&self, name: &str, until: u64) -> Result<(MemoryState, StoreHead)> {
        let stream = stream_name(name);
        let epoch = self.store.snapshot_epoch();
        let (mut state, mut head) = (MemoryState::new(), StoreHead::default());
        let mut from_version = 0;
        if self.snapshot_every > 0 && until > 0 {
            if let Some((pos, bytes)) = self.store.snapshot_at_or_before(&stream, until - 1)? {
                let (version, s) = MemoryState::decode_snapshot(&bytes)?;
                state = s;
                head = StoreHead { version: Some(version), position: Some(pos) };
                from_version = version + 1;
            }
        }
        self.each_until(&stream, from_version, until, |e| {
            self.fold_event(&mut state, &e)?;
            head = StoreHead { version: Some(e.version), position: Some(e.position) };
            if self.snapshot_every > 0 && (e.version + 1).is_multiple_of(self.snapshot_every) {
                self.store.put_snapshot(&stream, e.position, &state.encode_snapshot(e.version), epoch)?;
            }
            Ok(())
        })?;
        Ok((state, head))
    }

    /// Calls `f` with each event of `stream` from `from_version` whose position is below
    /// `until`, in order (read in chunks).
    fn each_until(
        &self,
        stream: &str,
        mut from_version: u64,
        until: u64,
        mut f: impl FnMut(StoredEvent) -> Result<()>,
    ) -> Result<()> {
        loop {
            let chunk = self.store.read_stream(stream, from_version, 1024)?;
            let Some(last) = chunk.last() else { return Ok(()) };
            from_version = last.version + 1;
            for e in chunk {
                if e.position >= until {
                    return Ok(());
                }
                f(e)?;
            }
        }
    }

    /// The fold of `name` before `until` as it will read once the events in `stand_ins`
    /// (position → stand-in body) are redacted: what a redaction of several events
    /// computes each later stand-in from, so that none copies text an earlier one removes
    /// (no snapshots: they hold the text).
    pub fn fold_standing_in(
        &self,
        name: &str,
        until: u64,
        stand_ins: &std::collections::HashMap<u64, Body>,
    ) -> Result<MemoryState> {
        if stand_ins.is_empty() {
            return Ok(self.fold_until(name, until)?.0);
        }
        let mut state = MemoryState::new();
        self.each_until(&stream_name(name), 0, until, |e| {
            match stand_ins.get(&e.position).unwrap_or(&e.event.body) {
                Body::StoreFork(f) if e.version == 0 => {
                    state = self.fold_standing_in(&f.source, f.position + 1, stand_ins)?;
                }
                body => Self::fold_body(&mut state, body),
            }
            Ok(())
        })?;
        Ok(state)
    }

    fn fold_event(&self, state: &mut MemoryState, e: &StoredEvent) -> Result<()> {
        match &e.event.body {
            Body::StoreFork(f) if e.version == 0 => {
                *state = self.fold_until(&f.source, f.position + 1)?.0;
            }
            body => Self::fold_body(state, body),
        }
        Ok(())
    }

    /// One event's effect on a store's state (a fork's start aside).
    fn fold_body(state: &mut MemoryState, body: &Body) {
        match body {
            // A command that fails does nothing, exactly as the tool would have done
            // (appends through `apply` are checked; raw appends are not).
            Body::Memory(m) => {
                state.replay(&m.command);
            }
            // The store's rules switch here (a note whose content is not rules is refused
            // on append; one that slipped in raw changes nothing).
            body => {
                if let Some(rules) = Rules::switched_by(body) {
                    state.set_rules(rules);
                }
            }
        }
    }

    /// The memory tool's `view` of `path` in store `name` as of point `at`, with lines
    /// `range` (`START:END`) of a file, in its JSON form (schemas/memory-view.schema.json):
    /// `{ok: true, store, path, until, state_hash, text}` or `{ok: false, error: {type,
    /// message}}` when the tool refuses. What `memory view` and `GET …/view` answer.
    pub fn view(&self, name: &str, path: &str, at: &str, range: Option<&str>) -> Result<MemoryView> {
        self.require(name)?;
        let until = self.resolve_point(at)?;
        let (state, _) = self.state_until(name, until)?;
        let range = match range {
            None => None,
            Some(r) => {
                let bad = || Error::Memory(MemoryError::UnknownPoint(format!("range {r} (want START:END)")));
                let (a, b) = r.split_once(':').ok_or_else(bad)?;
                Some((a.trim().parse::<i64>().map_err(|_| bad())?, b.trim().parse::<i64>().map_err(|_| bad())?))
            }
        };
        Ok(match state.view(path, range) {
            Ok(text) => {
                // A directory: its files too, for clients that read them one by one.
                let files = state.file(path).is_none().then(|| {
                    let dir = format!("{}/", path.trim_end_matches('/'));
                    state.files().keys().filter(|p| p.starts_with(&dir)).cloned().collect()
                });
                MemoryView::Shown {
                    store: name.to_owned(),
                    path: path.to_owned(),
                    until,
                    state_hash: state.state_hash(),
                    text,
                    files,
                }
            }
            Err(e) => MemoryView::Refused { kind: e.kind.name().to_owned(), message: e.message },
        })
    }

    /// `verify --deep`: the log and its indexes (`Store::verify`), every block of every
    /// table file (`Store::verify_storage`), and every projection snapshot against a full
    /// replay.
    pub fn verify_deep(&self, progress: impl FnMut(u64)) -> Result<crate::store::VerifyReport> {
        let mut report = self.store.verify(progress)?;
        self.store.verify_storage(&mut report)?;
        self.verify_snapshots(&mut report)?;
        Ok(report)
    }

    /// The projection half of `verify --deep`: every memory snapshot (derived data that
    /// only shortens folds) must equal a full replay of its store up to its position.
    /// Each store is folded once from its first event, compared at each snapshot.
    pub fn verify_snapshots(&self, report: &mut crate::store::VerifyReport) -> Result<()> {
        let full = self.clone().with_snapshot_every(0);
        let mut by_store: std::collections::BTreeMap<String, Vec<(u64, Vec<u8>)>> = Default::default();
        for (k, v) in self.store.snapshots()? {
            let split = k.len().checked_sub(9).filter(|&i| k[i] == 0);
            let parsed = split.and_then(|i| {
                let name = std::str::from_utf8(&k[..i]).ok()?.strip_prefix("memory/")?.to_owned();
                Some((name, u64::from_be_bytes(k[i + 1..].try_into().ok()?)))
            });
            match parsed {
                Some((name, position)) => by_store.entry(name).or_default().push((position, v.to_vec())),
                None => report.problems.push(crate::store::VerifyProblem {
                    position: None,
                    id: None,
                    problem: format!("a snapshot key that names no memory store: {}", hex::encode(&k)),
                }),
            }
        }
        let mut checked = 0u64;
        for (name, mut snaps) in by_store {
            snaps.sort_by_key(|(p, _)| *p);
            let mut complain = |position: u64, problem: String| {
                report.problems.push(crate::store::VerifyProblem { position: Some(position), id: None, problem });
            };
            let (mut state, mut version, mut from_version) = (MemoryState::new(), None, 0u64);
            let mut at = 0; // snapshots compared so far
            'fold: loop {
                let chunk = self.store.read_stream(&stream_name(&name), from_version, 1024)?;
                let done = chunk.is_empty();
                for e in &chunk {
                    while at < snaps.len() && snaps[at].0 < e.position {
                        let (p, bytes) = &snaps[at];
                        checked += 1;
                        check_snapshot(&name, *p, bytes, &state, version, &mut complain);
                        at += 1;
                    }
                    full.fold_event(&mut state, e)?;
                    version = Some(e.version);
                    from_version = e.version + 1;
                }
                if done {
                    break 'fold;
                }
            }
            for (p, bytes) in &snaps[at..] {
                checked += 1;
                check_snapshot(&name, *p, bytes, &state, version, &mut complain);
            }
        }
        report.deep.get_or_insert_with(Default::default).snapshots = checked;
        Ok(())
    }

    /// The current state of `name`.
    pub fn state(&self, name: &str) -> Result<(MemoryState, StoreHead)> {
        self.state_until(name, self.store.len())
    }

    /// Applies one memory tool command: checked against the current state, appended
    /// with the store's expected version (retried when another writer got there first).
    /// A refused command writes nothing and returns the tool's error text.
    pub fn apply(&self, name: &str, command: MemoryCommand, opts: ApplyOptions) -> Result<Applied> {
        let mut plan = vec![(command, opts.causes.clone())];
        let (texts, appended) = self.commit(name, Vec::new(), &mut plan, &opts)?;
        Ok(Applied {
            text: texts.into_iter().next().unwrap_or_default(),
            event: appended.into_iter().next_back().ok_or(Error::Log(LogError::Closed))?,
        })
    }

    /// Checks `commands` in order against the current state and appends `leading` events
    /// and them in one atomic batch on the store's stream. Returns the tool texts and
    /// where every event landed.
    fn commit(
        &self,
        name: &str,
        leading: Vec<Draft>,
        commands: &mut [(MemoryCommand, Vec<EventId>)],
        opts: &ApplyOptions,
    ) -> Result<(Vec<String>, Vec<Appended>)> {
        let stream = stream_name(name);
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(name.to_owned()).or_default().clone()
        };
        let _turn = lock.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..64u32 {
            if attempt > 0 {
                // Another process appended first: back off a little, then re-check.
                std::thread::sleep(std::time::Duration::from_micros(50 << attempt.min(10)));
            }
            let epoch = self.store.snapshot_epoch();
            let (mut state, head) = self.state(name)?;
            let mut batch = AppendBatch::new();
            if head.version.is_none() && leading.is_empty() {
                // A new store records the rules it follows as its first event.
                state.set_rules(CURRENT_RULES);
                batch.events.push(rules_note(name, CURRENT_RULES, opts.actor.clone()));
            }
            if let Some(expected) = &opts.state {
                let actual = state.state_hash();
                if actual != *expected {
                    return Err(Error::Memory(MemoryError::Tool(crate::core::memory::ToolError {
                        kind: crate::core::memory::ToolErrorKind::Conflict,
                        message: format!(
                            "Error: Conflict: memory store {name} has state hash {actual}, not the expected {expected}"
                        ),
                    })));
                }
            }
            let before = self.preview.as_ref().map(|_| state.clone());
            let mut texts = Vec::with_capacity(commands.len());
            batch.events.extend(leading.iter().cloned());
            for (i, (cmd, causes)) in commands.iter().enumerate() {
                let precondition = if i == 0 { opts.precondition } else { None };
                crate::core::memory::check_new_command(cmd)?;
                texts.push(state.apply(cmd, precondition.as_ref())?);
                let body = Body::Memory(MemoryBody {
                    store: name.to_owned(),
                    command: cmd.clone(),
                    precondition,
                    session: opts.session.clone(),
                });
                batch.events.push(Draft::new(stream.clone(), opts.actor.clone(), body).caused_by(causes.clone()));
            }
            if let (Some(slot), Some(before)) = (&self.preview, before) {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Preview {
                    store: name.to_owned(),
                    events: batch.events.iter().map(crate::core::EventJson::from_draft).collect(),
                    state_before: before.state_hash(),
                    state_after: state.state_hash(),
                    diff: diff_states(&before, &state),
                });
                return Ok((texts, Vec::new()));
            }
            let expected = head.version.map(ExpectedVersion::Exact).unwrap_or(ExpectedVersion::NoStream);
            match self.store.append(batch.expect(stream.clone(), expected)) {
                Ok(appended) => {
                    // Snapshot when this batch crossed a multiple of the interval.
                    if let Some(last) = appended.last() {
                        let after = (last.version + 1).checked_div(self.snapshot_every);
                        let before = head.version.map_or(Some(0), |v| (v + 1).checked_div(self.snapshot_every));
                        if after.is_some() && after > before {
                            self.store.put_snapshot(
                                &stream,
                                last.position,
                                &state.encode_snapshot(last.version),
                                epoch,
                            )?;
                        }
                    }
                    return Ok((texts, appended));
                }
                Err(Error::Log(LogError::WrongExpectedVersion { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Log(LogError::Storage(format!(
            "memory store {name:?}: too much contention, gave up after 64 attempts"
        ))))
    }

    /// Runs a write (a revert, a promote) as a dry run: every check and plan as for real,
    /// nothing appended; returns what would have been appended to `store` and the diff
    /// it makes (no events when the write has nothing to do).
    pub fn dry_run(&self, store: &str, write: impl FnOnce(&MemoryStores) -> Result<Vec<Appended>>) -> Result<Preview> {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let planner = MemoryStores { preview: Some(slot.clone()), ..self.clone() };
        write(&planner)?;
        let planned = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        match planned {
            Some(p) => Ok(p),
            None => {
                let now = self.state(store)?.0.state_hash();
                Ok(Preview {
                    store: store.to_owned(),
                    events: Vec::new(),
                    state_before: now,
                    state_after: now,
                    diff: MemoryDiff::default(),
                })
            }
        }
    }

    /// Applies `commands` to store `name` as one atomic batch (all or none), each citing
    /// `opts.causes`; with `opts.state`, only if the store's state hash is that one.
    /// Returns the tool's text of each and the appended events.
    pub fn apply_batch(
        &self,
        name: &str,
        commands: Vec<MemoryCommand>,
        opts: &ApplyOptions,
    ) -> Result<(Vec<String>, Vec<Appended>)> {
        crate::core::validate::check_store_name("store", name)?;
        let mut plan: Vec<(MemoryCommand, Vec<EventId>)> =
            commands.into_iter().map(|c| (c, opts.causes.clone())).collect();
        if plan.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.commit(name, Vec::new(), &mut plan, opts)
    }

    /// The rules store `name` follows now.
    pub fn rules(&self, name: &str) -> Result<Rules> {
        self.require(name)?;
        Ok(self.state(name)?.0.rules())
    }

    /// Switches store `name` to `rules` from here on (a `memory.rules` note on its
    /// stream); states before the switch keep their rules, hashes and replays. Returns
    /// the note, or `None` when the store already follows them. Rules only move forward.
    pub fn set_rules(&self, name: &str, rules: Rules, actor: Actor) -> Result<Option<Appended>> {
        self.require(name)?;
        let stream = stream_name(name);
        loop {
            let (state, head) = self.state(name)?;
            if state.rules() == rules {
                return Ok(None);
            }
            if state.rules() > rules {
                return Err(Error::Memory(MemoryError::RulesBackwards {
                    store: name.to_owned(),
                    current: state.rules().number(),
                    asked: rules.number(),
                }));
            }
            let expected = head.version.map(ExpectedVersion::Exact).unwrap_or(ExpectedVersion::NoStream);
            match self
                .store
                .append(AppendBatch::one(rules_note(name, rules, actor.clone())).expect(stream.clone(), expected))
            {
                Ok(mut a) => return Ok(Some(a.remove(0))),
                Err(Error::Log(LogError::WrongExpectedVersion { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Forks `source` as it was up to `until` into the new store `new`.
    pub fn fork(&self, source: &str, new: &str, until: u64, actor: Actor) -> Result<Appended> {
        self.require(source)?;
        let position =
            until.checked_sub(1).ok_or_else(|| Error::Memory(MemoryError::UnknownPoint("an empty log".into())))?;
        let body = Body::StoreFork(StoreFork { store: new.to_owned(), source: source.to_owned(), position });
        let stream = stream_name(new);
        let batch = AppendBatch::one(Draft::new(stream.clone(), actor, body)).expect(stream, ExpectedVersion::NoStream);
        match self.store.append(batch) {
            Ok(mut a) => Ok(a.remove(0)),
            Err(Error::Log(LogError::WrongExpectedVersion { .. })) => {
                Err(Error::Memory(MemoryError::StoreExists(new.to_owned())))
            }
            Err(e) => Err(e),
        }
    }

    /// Promotes a fork's changes into `into`. The fork's own commands not promoted yet
    /// are replayed onto `into` in order, each keeping its causes (so blame, lessons and
    /// `revert --dream` still find the dream and evidence behind every line) and citing
    /// the fork command it copies. Edits made to `into` since the fork stay. When a
    /// command no longer applies, `into` is instead made equal to the fork's state, the
    /// commands citing the fork event, as before.
    ///
    /// Lessons a dream validated out of sample with a negative lift (the 95 % interval
    /// below zero) are refused, nothing written, unless `force`.
    pub fn promote(&self, fork: &str, into: &str, actor: Actor, force: bool) -> Result<Vec<Appended>> {
        let events = self.store.read_stream(&stream_name(fork), 0, usize::MAX)?;
        let Some(fork_event) = events.first() else { return Err(self.no_such_store(fork)) };
        if !matches!(&fork_event.event.body, Body::StoreFork(f) if f.source == into) {
            return Err(Error::WrongEvent {
                id: fork_event.id().to_hex(),
                what: format!("the start of a fork of {into:?} (store {fork:?} is not one)"),
            });
        }
        // Fork commands already promoted are cited by events of `into`.
        let promoted: BTreeSet<EventId> = self
            .store
            .read_stream(&stream_name(into), 0, usize::MAX)?
            .iter()
            .filter(|e| e.position > fork_event.position)
            .flat_map(|e| e.event.header.causes.iter().copied())
            .collect();
        let (mut current, _) = self.state(into)?;
        let mut plan: Vec<(MemoryCommand, Vec<EventId>)> = Vec::new();
        let mut clean = true;
        let mut refused = Vec::new();
        let mut validations: std::collections::HashMap<EventId, std::collections::HashMap<String, String>> =
            Default::default();
        for e in &events[1..] {
            let Body::Memory(m) = &e.event.body else { continue };
            if promoted.contains(&e.id()) {
                continue;
            }
            if !force {
                if let Some(dream) = e.event.header.causes.first() {
                    if !validations.contains_key(dream) {
                        validations.insert(*dream, self.negative_lessons(dream)?);
                    }
                    let negative = &validations[dream];
                    let added = match &m.command {
                        MemoryCommand::Insert { insert_text, .. } => insert_text.as_str(),
                        MemoryCommand::StrReplace { new_str, .. } => new_str.as_str(),
                        MemoryCommand::Create { file_text, .. } | MemoryCommand::Write { file_text, .. } => {
                            file_text.as_str()
                        }
                        _ => "",
                    };
                    for line in added.lines() {
                        if let Some(why) =
                            crate::core::dream::evidence2::lesson_tag(line).and_then(|(_, k)| negative.get(k))
                        {
                            refused.push(format!("{} — {why}", crate::core::dream::evidence::clip(line, 120)));
                        }
                    }
                }
            }
            if current.apply(&m.command, None).is_err() {
                clean = false;
                break;
            }
            let mut causes = e.event.header.causes.clone();
            causes.truncate(crate::core::event::MAX_CAUSES - 1);
            causes.push(e.id());
            plan.push((m.command.clone(), causes));
        }
        if !refused.is_empty() {
            return Err(Error::Memory(MemoryError::FailedValidation { fork: fork.to_owned(), lessons: refused }));
        }
        if !clean {
            let (target, _) = self.state(fork)?;
            let (current, _) = self.state(into)?;
            plan = restore_commands(&current, &target, None).into_iter().map(|c| (c, vec![fork_event.id()])).collect();
        }
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.commit(into, Vec::new(), &mut plan, &ApplyOptions::by(actor))?.1)
    }

    /// The lessons a dream's record validated with a negative lift: key → lift text.
    fn negative_lessons(&self, dream: &EventId) -> Result<std::collections::HashMap<String, String>> {
        let mut out = std::collections::HashMap::new();
        let e = match self.store.get(dream) {
            Ok(e) => e,
            Err(Error::NotFound(_)) => return Ok(out),
            Err(err) => return Err(err),
        };
        let Body::Dream(d) = &e.event.body else { return Ok(out) };
        let Some(meta) = &d.meta else { return Ok(out) };
        let meta = meta.to_value();
        let Some(families) = meta.pointer("/summary/decisions").and_then(|v| v.as_array()) else { return Ok(out) };
        for f in families {
            for c in f.get("candidates").and_then(|v| v.as_array()).into_iter().flatten() {
                let Ok(c) = serde_json::from_value::<crate::core::dream::lessons::Candidate>(c.clone()) else {
                    continue;
                };
                if let Some(v) = c.validation.as_ref().filter(|v| v.is_negative()) {
                    let lift = v.lift.map(|l| {
                        format!(
                            "lift {:+.2} [{:+.2}, {:+.2}] over {} held-out task(s)",
                            l.estimate, l.interval.0, l.interval.1, v.tasks
                        )
                    });
                    out.insert(c.key.clone(), lift.unwrap_or_else(|| "negative".into()));
                }
            }
        }
        Ok(out)
    }

    /// Every change of a store (or of one path in it, including deletes and renames of
    /// the directories above it), in log order.
    pub fn history(&self, name: &str, path: Option<&str>) -> Result<Vec<StoredEvent>> {
        self.require(name)?;
        match path {
            None => self.store.read_stream(&stream_name(name), 0, usize::MAX),
            Some(path) => {
                let path = crate::core::memory::validate_path(path)?;
                let mut positions = BTreeSet::new();
                let mut p = path.as_str();
                loop {
                    positions.extend(self.store.memory_path_positions(name, p)?);
                    match p.rfind('/') {
                        Some(i) if i > 0 => p = &p[..i],
                        _ => break,
                    }
                }
                self.store.get_positions(&positions.into_iter().collect::<Vec<_>>())
            }
        }
    }

    /// Differences between two states of stores (the same or different) at points.
    pub fn diff(&self, a: &str, a_until: u64, b: &str, b_until: u64) -> Result<MemoryDiff> {
        self.require(a)?;
        self.require(b)?;
        Ok(diff_states(&self.state_until(a, a_until)?.0, &self.state_until(b, b_until)?.0))
    }

    /// Each line of `path` as of `until` with the event that wrote it and, when that
    /// event came from a dream, the dream and the evidence it cites.
    pub fn blame(&self, name: &str, path: &str, until: u64) -> Result<Vec<BlameLine>> {
        self.require(name)?;
        let path = crate::core::memory::validate_path(path)?;
        let Some(file) = self.attribute(name, &path, until)? else {
            return Err(Error::Memory(MemoryError::Tool(ToolError {
                kind: crate::core::memory::ToolErrorKind::NotFound,
                message: format!("The path {path} does not exist. Please provide a valid path."),
            })));
        };
        let mut cache: HashMap<u64, StoredEvent> = HashMap::new();
        let mut kinds: HashMap<EventId, Kind> = HashMap::new();
        let mut receipts: HashMap<u64, Option<crate::core::receipt::Received>> = HashMap::new();
        let mut received_of = |position: u64| -> Result<Option<crate::core::receipt::Received>> {
            if let Some(r) = receipts.get(&position) {
                return Ok(r.clone());
            }
            let r = self.store.received(position)?;
            receipts.insert(position, r.clone());
            Ok(r)
        };
        let mut verdicts: HashMap<String, Option<SessionVerdict>> = HashMap::new();
        let mut out = Vec::with_capacity(file.lines.len());
        for (i, (text, &origin)) in split_lines(&file.text).into_iter().zip(&file.lines).enumerate() {
            let restored_by = match origin.restored_by {
                None => None,
                Some(r) => {
                    let by = match cache.entry(r) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => v.insert(self.store.get_at(r)?),
                    };
                    let (how, reason) = match &by.event.body {
                        Body::Revert(x) => ("revert".to_owned(), Some(x.reason.clone())),
                        // A push to the hosted store (its intent).
                        Body::Note(n) => {
                            match serde_json::from_value::<crate::core::push::PushIntent>(n.json.to_value()) {
                                Ok(i) if i.op == "revert" => ("revert".to_owned(), Some(i.reason)),
                                _ => ("promote".to_owned(), None),
                            }
                        }
                        _ => ("promote".to_owned(), None),
                    };
                    Some(RestoredBy {
                        how,
                        id: by.id(),
                        position: by.position,
                        time: by.event.header.time,
                        actor: by.event.header.actor.to_string(),
                        received: received_of(by.position)?,
                        reason,
                    })
                }
            };
            let e = match cache.entry(origin.event) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(self.store.get_at(origin.event)?),
            };
            let mut dream = None;
            let mut evidence = Vec::new();
            for c in &e.event.header.causes {
                let kind = match kinds.get(c) {
                    Some(k) => *k,
                    None => {
                        let k = self.store.get(c).map(|x| x.event.header.kind).unwrap_or(Kind::Note);
                        kinds.insert(*c, k);
                        k
                    }
                };
                if kind == Kind::Dream && dream.is_none() {
                    dream = Some(*c);
                } else {
                    evidence.push(*c);
                }
            }
            let session = match &e.event.body {
                Body::Memory(m) => m.session.clone(),
                _ => None,
            };
            let verdict = match &session {
                Some(s) => match verdicts.get(s) {
                    Some(v) => v.clone(),
                    None => {
                        let v = self.verdict(s, until)?;
                        verdicts.insert(s.clone(), v.clone());
                        v
                    }
                },
                None => None,
            };
            out.push(BlameLine {
                line: i + 1,
                text: text.to_owned(),
                id: e.id(),
                position: e.position,
                time: e.event.header.time,
                actor: e.event.header.actor.to_string(),
                dream,
                evidence,
                session,
                verdict,
                received: received_of(e.position)?,
                restored_by,
            });
        }
        Ok(out)
    }

    /// Session `id`'s last grade before `until`, if any.
    fn verdict(&self, id: &str, until: u64) -> Result<Option<SessionVerdict>> {
        let events = match self.store.read_stream(&crate::core::streams::session(id), 0, usize::MAX) {
            Ok(events) => events,
            Err(e) if e.class() == crate::error::ErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(events.iter().rev().filter(|e| e.position < until).find_map(|e| match &e.event.body {
            Body::Grade(g) => Some(SessionVerdict {
                grade: e.id(),
                score: g.score,
                result: g.result.as_str().to_owned(),
                evaluator: g.evaluator.clone(),
            }),
            _ => None,
        }))
    }

    /// The file at `path` of store `name` before `until`, each line with its origin,
    /// following renames and forks; built from the path index, not a log scan.
    fn attribute(&self, name: &str, path: &str, until: u64) -> Result<Option<Attributed>> {
        let switches = self.rules_switches()?;
        self.attribute_with(&switches, name, path, until)
    }

    /// Every `memory.rules` note of the log: (store, position, rules), by store then
    /// position, from the marks index.
    fn rules_switches(&self) -> Result<Vec<(String, u64, Rules)>> {
        use crate::core::projection::{be_u64, Space, MARK_RULES};
        let mut out = Vec::new();
        self.store.index_prefix(Space::Marks, &[MARK_RULES], |position, middle, v| {
            let rules = be_u64(v).and_then(Rules::from_number);
            if let (Some(store), Some(rules)) = (middle.strip_suffix(&[0]), rules) {
                out.push((String::from_utf8_lossy(store).into_owned(), position, rules));
            }
            true
        })?;
        Ok(out)
    }

    /// The rules store `name` folds the event at `position` with.
    fn rules_at(&self, switches: &[(String, u64, Rules)], name: &str, position: u64) -> Result<Rules> {
        if let Some((_, _, r)) = switches.iter().rev().find(|(s, p, _)| s == name && *p < position) {
            return Ok(*r);
        }
        if let Some(first) = self.store.read_stream(&stream_name(name), 0, 1)?.first() {
            if let Body::StoreFork(f) = &first.event.body {
                return self.rules_at(switches, &f.source, f.position + 1);
            }
        }
        Ok(Rules::V1)
    }

    fn attribute_with(
        &self,
        switches: &[(String, u64, Rules)],
        name: &str,
        path: &str,
        until: u64,
    ) -> Result<Option<Attributed>> {
        // The base: the source store's file at the fork point, if this store is a fork.
        let mut cur: Option<Attributed> = None;
        if let Some(first) = self.store.read_stream(&stream_name(name), 0, 1)?.first() {
            if let Body::StoreFork(f) = &first.event.body {
                if first.position < until {
                    cur = self.attribute_with(switches, &f.source, path, f.position + 1)?;
                }
            }
        }
        for e in self.history(name, Some(path))? {
            if e.position >= until {
                break;
            }
            let Body::Memory(m) = &e.event.body else { continue };
            let rules = self.rules_at(switches, name, e.position)?;
            let put_back = self.put_back(name, &e)?;
            let origin = match put_back {
                PutBack::Copy { from } => Origin { event: from, restored_by: Some(e.position) },
                _ => Origin::new(e.position),
            };
            cur = match blame::step(cur, path, &m.command, origin, rules) {
                blame::Step::Now(c) => c,
                blame::Step::RenamedFrom(from) => self.attribute_with(switches, name, &from, e.position)?,
            };
            if let PutBack::Restore { store, until, by } = put_back {
                if let Some(now) = cur.take() {
                    let source = self.attribute_with(switches, &store, path, until)?;
                    cur = Some(blame::restored(now, e.position, source.as_ref(), by));
                }
            }
        }
        Ok(cur)
    }

    /// Whether memory event `e` of store `name` put back lines written before: a
    /// promote's copy of a fork's command (its causes are the copied command's, then that
    /// command), a promote that made the store equal to its fork (it cites the fork's
    /// start), or a command of a revert (its batch starts with the `revert` event, and
    /// every event of the batch cites the same undone events).
    fn put_back(&self, name: &str, e: &StoredEvent) -> Result<PutBack> {
        let Body::Memory(m) = &e.event.body else { return Ok(PutBack::No) };
        let causes = &e.event.header.causes;
        let (Some(first), Some(last)) = (causes.first(), causes.last()) else { return Ok(PutBack::No) };
        let get = |id: &EventId| match self.store.get(id) {
            Ok(x) => Ok(Some(x)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(err) => Err(err),
        };
        if let Some(src) = get(last)? {
            match &src.event.body {
                // A command the mirror wrote for a version a push made: the push's intent
                // names the state it put back.
                Body::Note(n) if causes.len() == 1 && n.note_type == crate::core::push::PUSH_NOTE => {
                    if src.event.header.stream == e.event.header.stream {
                        if let Ok(intent) = serde_json::from_value::<crate::core::push::PushIntent>(n.json.to_value()) {
                            return Ok(PutBack::Restore {
                                store: intent.restore.store,
                                until: intent.restore.until,
                                by: src.position,
                            });
                        }
                    }
                    return Ok(PutBack::No);
                }
                Body::Memory(copied) if copied.store != name && copied.command == m.command => {
                    let mut theirs = src.event.header.causes.clone();
                    theirs.truncate(crate::core::event::MAX_CAUSES - 1);
                    if theirs[..] == causes[..causes.len() - 1] {
                        return Ok(PutBack::Copy { from: src.position });
                    }
                }
                Body::StoreFork(f) if causes.len() == 1 && f.source == name => {
                    return Ok(PutBack::Restore { store: f.store.clone(), until: e.position, by: e.position });
                }
                _ => {}
            }
        }
        // A revert cites the memory events it undoes, first to last.
        let undone_from = match get(first)? {
            Some(x) if matches!(&x.event.body, Body::Memory(b) if b.store == name) => x.position,
            _ => return Ok(PutBack::No),
        };
        let mut p = e.position;
        while p > 0 {
            p -= 1;
            let x = self.store.get_at(p)?;
            if x.event.header.stream != e.event.header.stream || x.event.header.causes != *causes {
                break;
            }
            match &x.event.body {
                Body::Memory(_) => continue,
                Body::Revert(r) if r.store == name => {
                    let until = match r.target {
                        RevertTarget::Position(q) => q + 1,
                        RevertTarget::Event(_) | RevertTarget::Dream(_) | RevertTarget::Session(_) => undone_from,
                    };
                    return Ok(PutBack::Restore { store: name.to_owned(), until, by: x.position });
                }
                _ => break,
            }
        }
        Ok(PutBack::No)
    }

    /// Reverts one memory event of `name`: the files it changed go back to what they were
    /// before it. Refused when later events changed those files, unless `force`.
    pub fn revert_event(
        &self,
        name: &str,
        id: &EventId,
        reason: &str,
        force: bool,
        actor: Actor,
    ) -> Result<Vec<Appended>> {
        let e = self.store.get(id)?;
        match &e.event.body {
            Body::Memory(m) if m.store == name => {}
            _ => return Err(Error::WrongEvent { id: id.to_hex(), what: format!("a memory event of store {name:?}") }),
        }
        self.revert_span(name, vec![e], RevertTarget::Event(*id), reason, force, actor)
    }

    /// Reverts everything a dream wrote to `name`.
    pub fn revert_dream(
        &self,
        name: &str,
        dream: &EventId,
        reason: &str,
        force: bool,
        actor: Actor,
    ) -> Result<Vec<Appended>> {
        let d = self.store.get(dream)?;
        if d.event.header.kind != Kind::Dream {
            return Err(Error::WrongEvent { id: dream.to_hex(), what: "a dream event".into() });
        }
        let events: Vec<StoredEvent> = self
            .history(name, None)?
            .into_iter()
            .filter(|e| e.event.header.kind == Kind::Memory && e.event.header.causes.contains(dream))
            .collect();
        if events.is_empty() {
            return Err(Error::WrongEvent {
                id: dream.to_hex(),
                what: format!("a dream that wrote to store {name:?}"),
            });
        }
        self.revert_span(name, events, RevertTarget::Dream(*dream), reason, force, actor)
    }

    /// Reverts every memory command one session made to `name` (the commands whose
    /// `session` names it: a Managed-Agents session's edits, a Claude Code session's).
    /// As for a dream, the files go back to their state before the session's first
    /// command; later edits by others are merged with the undo, overlapping ones refused
    /// unless `force`.
    pub fn revert_session(
        &self,
        name: &str,
        session: &str,
        reason: &str,
        force: bool,
        actor: Actor,
    ) -> Result<Vec<Appended>> {
        let events: Vec<StoredEvent> = self
            .history(name, None)?
            .into_iter()
            .filter(|e| matches!(&e.event.body, Body::Memory(m) if m.session.as_deref() == Some(session)))
            .collect();
        if events.is_empty() {
            return Err(Error::Memory(MemoryError::NothingToRevert {
                store: name.to_owned(),
                what: format!("session {session:?} made no memory command in it"),
            }));
        }
        self.revert_span(name, events, RevertTarget::Session(session.to_owned()), reason, force, actor)
    }

    /// Restores `name` to its state before `until`, recording what was undone.
    pub fn revert_to(&self, name: &str, until: u64, reason: &str, actor: Actor) -> Result<Vec<Appended>> {
        self.require(name)?;
        let (target, _) = self.state_until(name, until)?;
        let (current, _) = self.state(name)?;
        let undone: Vec<EventId> = self
            .history(name, None)?
            .into_iter()
            .filter(|e| e.position >= until && e.event.header.kind == Kind::Memory)
            .map(|e| e.id())
            .collect();
        let causes: Vec<EventId> = undone.iter().rev().take(crate::core::event::MAX_CAUSES).rev().copied().collect();
        let position = until.saturating_sub(1);
        let mut plan: Vec<(MemoryCommand, Vec<EventId>)> =
            restore_commands(&current, &target, None).into_iter().map(|c| (c, causes.clone())).collect();
        let revert = Draft::new(
            stream_name(name),
            actor.clone(),
            Body::Revert(Revert {
                store: name.to_owned(),
                target: RevertTarget::Position(position),
                reason: reason.to_owned(),
            }),
        )
        .caused_by(causes);
        Ok(self.commit(name, vec![revert], &mut plan, &ApplyOptions::by(actor))?.1)
    }

    fn revert_span(
        &self,
        name: &str,
        events: Vec<StoredEvent>,
        target: RevertTarget,
        reason: &str,
        force: bool,
        actor: Actor,
    ) -> Result<Vec<Appended>> {
        let (current, _) = self.state(name)?;
        // The events as runs: each a stretch of the store's memory events with no other
        // memory event of it in between (a dream's output is one run; a session's edits
        // with someone else's between them are several). Runs are undone last first, each
        // against what the undo of the later ones left, so the edits between them stay.
        let wanted_ids: BTreeSet<EventId> = events.iter().map(|e| e.id()).collect();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut open: Option<(u64, u64)> = None;
        if events.len() == 1 {
            runs.push((events[0].position, events[0].position));
        } else {
            for e in self.history(name, None)?.iter().filter(|e| e.event.header.kind == Kind::Memory) {
                if wanted_ids.contains(&e.id()) {
                    open = Some(open.map_or((e.position, e.position), |(f, _)| (f, e.position)));
                } else if let Some(r) = open.take() {
                    runs.push(r);
                }
            }
            runs.extend(open);
        }
        // Each file a run touched goes back to its content before the run. Where later
        // edits changed it since, the undo is merged line by line with them (three-way,
        // with the run's result as the base); overlapping edits are a conflict.
        let mut wanted = current.clone();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        let mut touched_dirs: BTreeSet<String> = BTreeSet::new();
        let mut conflicts: BTreeMap<String, Vec<(u64, EventId)>> = BTreeMap::new();
        let mut states = Vec::with_capacity(runs.len());
        for &(first, run_last) in &runs {
            let (before, _) = self.state_until(name, first)?;
            let (after, _) = self.state_until(name, run_last + 1)?;
            let d = diff_states(&before, &after);
            let mut files: BTreeSet<String> = d.added.iter().chain(&d.removed).cloned().collect();
            files.extend(d.changed.iter().map(|c| c.path.clone()));
            for (a, b) in &d.renamed {
                files.insert(a.clone());
                files.insert(b.clone());
            }
            let dirs: BTreeSet<String> = d.dirs_added.iter().chain(&d.dirs_removed).cloned().collect();
            states.push((before, after, files, dirs, run_last));
        }
        // A file already as it was before the first run that touched it — undone since, by
        // a push whose rest is still to send, or by hand — has nothing left to undo.
        let mut undone: BTreeSet<String> = BTreeSet::new();
        let mut seen: BTreeSet<&String> = BTreeSet::new();
        for (before, _, files, _, _) in &states {
            for p in files {
                if seen.insert(p) && current.file(p).map(|f| &f.text) == before.file(p).map(|f| &f.text) {
                    undone.insert(p.clone());
                }
            }
        }
        for (before, after, files, dirs, run_last) in states.iter().rev() {
            let (run_last, files) =
                (*run_last, files.iter().filter(|p| !undone.contains(*p)).cloned().collect::<BTreeSet<_>>());
            let now_state = wanted.clone();
            for p in &files {
                let (now, then, was) = (now_state.file(p), after.file(p), before.file(p));
                let restored = if now.map(|f| &f.text) == then.map(|f| &f.text) {
                    Some(was.map(|f| f.text.to_string()))
                } else if let (Some(n), Some(t), Some(w)) = (now, then, was) {
                    merge3(&t.text, &n.text, &w.text).map(Some)
                } else {
                    None
                };
                let restored = match restored {
                    Some(r) => r,
                    None => {
                        let later: Vec<(u64, EventId)> = self
                            .history(name, Some(p))?
                            .into_iter()
                            .filter(|e| e.position > run_last && !wanted_ids.contains(&e.id()))
                            .map(|e| (e.position, e.id()))
                            .collect();
                        conflicts.entry(p.clone()).or_default().extend(later);
                        was.map(|f| f.text.to_string())
                    }
                };
                match restored {
                    Some(text) => wanted.put(p, &text),
                    None => wanted.remove(p),
                }
            }
            // Directories the run made go again when nothing is left in them; those it
            // removed come back.
            for dir in dirs.iter().rev() {
                if before.is_dir(dir) {
                    wanted.make_dir(dir);
                } else if !wanted.has_children(dir) {
                    wanted.remove_dir(dir);
                }
            }
            touched.extend(files);
            touched_dirs.extend(dirs.iter().cloned());
        }
        touched.extend(touched_dirs);
        if !conflicts.is_empty() && !force {
            return Err(Error::Memory(MemoryError::RevertConflict { conflicts: conflicts.into_iter().collect() }));
        }
        let causes: Vec<EventId> = events.iter().map(|e| e.id()).take(crate::core::event::MAX_CAUSES).collect();
        let mut plan: Vec<(MemoryCommand, Vec<EventId>)> =
            restore_commands(&current, &wanted, Some(&touched)).into_iter().map(|c| (c, causes.clone())).collect();
        let mut why = reason.to_owned();
        if !conflicts.is_empty() {
            why.push_str(&format!(" (forced: restored {} file(s) whole over later edits)", conflicts.len()));
        }
        let revert = Draft::new(
            stream_name(name),
            actor.clone(),
            Body::Revert(Revert { store: name.to_owned(), target, reason: why }),
        )
        .caused_by(causes);
        Ok(self.commit(name, vec![revert], &mut plan, &ApplyOptions::by(actor))?.1)
    }
}

/// The note that switches store `name` to `rules`.
fn rules_note(name: &str, rules: Rules, actor: Actor) -> Draft {
    let json = crate::core::CanonicalJson::from_value(&rules.note());
    Draft::new(stream_name(name), actor, Body::Note(crate::core::Note { note_type: RULES_NOTE.to_owned(), json }))
}

/// Compares one snapshot with the state a full replay reached at its position.
fn check_snapshot(
    name: &str,
    position: u64,
    bytes: &[u8],
    state: &MemoryState,
    version: Option<u64>,
    complain: &mut impl FnMut(u64, String),
) {
    match MemoryState::decode_snapshot(bytes) {
        Err(e) => complain(position, format!("the snapshot of memory store {name:?} does not decode: {e}")),
        Ok((v, snap)) => {
            if Some(v) != version || snap.state_hash() != state.state_hash() || snap.rules() != state.rules() {
                complain(
                    position,
                    format!(
                        "the snapshot of memory store {name:?} (version {v}, state {}) differs from a full replay (version {}, state {})",
                        snap.state_hash().short(16),
                        version.map_or("none".into(), |v| v.to_string()),
                        state.state_hash().short(16)
                    ),
                );
            }
        }
    }
}

/// What a view shows (schemas/memory-view.schema.json).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemoryView {
    /// A file's numbered lines, or a directory's listing (with every file below it).
    Shown {
        /// The store.
        store: String,
        /// The path shown.
        path: String,
        /// The view covers the log before this position.
        until: u64,
        /// The whole store's state hash.
        state_hash: Digest,
        /// The tool's text.
        text: String,
        /// For a directory: every file below it.
        files: Option<Vec<String>>,
    },
    /// The tool refused (a bad or missing path): its class and text.
    Refused {
        /// The tool's error class.
        kind: String,
        /// The tool's text.
        message: String,
    },
}

/// `MemoryView`'s JSON form: `{ok: true, store, path, until, state_hash, text, files?}`
/// or `{ok: false, error: {type, message}}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct ViewForm {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_hash: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ViewRefusal>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ViewRefusal {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

impl serde::Serialize for MemoryView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let form = match self.clone() {
            MemoryView::Shown { store, path, until, state_hash, text, files } => ViewForm {
                ok: true,
                store: Some(store),
                path: Some(path),
                until: Some(until),
                state_hash: Some(state_hash),
                text: Some(text),
                files,
                error: None,
            },
            MemoryView::Refused { kind, message } => ViewForm {
                ok: false,
                store: None,
                path: None,
                until: None,
                state_hash: None,
                text: None,
                files: None,
                error: Some(ViewRefusal { kind, message }),
            },
        };
        form.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for MemoryView {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let f = ViewForm::deserialize(d)?;
        if !f.ok {
            let e = f.error.ok_or_else(|| D::Error::missing_field("error"))?;
            return Ok(MemoryView::Refused { kind: e.kind, message: e.message });
        }
        Ok(MemoryView::Shown {
            store: f.store.ok_or_else(|| D::Error::missing_field("store"))?,
            path: f.path.ok_or_else(|| D::Error::missing_field("path"))?,
            until: f.until.ok_or_else(|| D::Error::missing_field("until"))?,
            state_hash: f.state_hash.ok_or_else(|| D::Error::missing_field("state_hash"))?,
            text: f.text.ok_or_else(|| D::Error::missing_field("text"))?,
            files: f.files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryView;
    use serde_json::json;

    #[test]
    fn a_view_reads_back_from_its_form_and_a_form_missing_a_field_is_refused_by_name() {
        let shown = MemoryView::Shown {
            store: "s".into(),
            path: "/memories".into(),
            until: 7,
            state_hash: crate::core::memory::MemoryState::new().state_hash(),
            text: "a listing".into(),
            files: Some(vec!["/memories/a.md".into()]),
        };
        let refused = MemoryView::Refused { kind: "not_found".into(), message: "no such path".into() };
        for view in [shown, refused] {
            let form = serde_json::to_value(&view).expect("a form");
            assert_eq!(serde_json::from_value::<MemoryView>(form).expect("read back"), view);
        }
        let file = json!({"ok": true, "store": "s", "path": "/memories/a.md", "until": 1,
                          "state_hash": crate::core::memory::MemoryState::new().state_hash(), "text": "1\ta"});
        let read: MemoryView = serde_json::from_value(file.clone()).expect("a file's form");
        assert_eq!(serde_json::to_value(&read).expect("a form"), file, "a file's form has no files");
        let mut short = file;
        short.as_object_mut().expect("an object").remove("text");
        let e = serde_json::from_value::<MemoryView>(short).expect_err("refused").to_string();
        assert!(e.contains("missing field `text`"), "{e}");
        let e = serde_json::from_value::<MemoryView>(json!({"ok": false})).expect_err("refused").to_string();
        assert!(e.contains("missing field `error`"), "{e}");
    }
}
