//! Drift: grades per memory state and per change of a store, from a fold of the ledger
//! kept between requests ([`DriftCache`]).
//!
//! The fold holds every session's latest record (the store and state it ran with, its
//! task) and last grade, and per store the changes (memory events and reverts, in order)
//! and, per *epoch* — the sessions between two changes — the sums of each (task, family)
//! cell. A request folds only what the log gained since the last one (new ledger entries,
//! new changes) and then reads the sums: its cost grows with states × tasks, not with
//! sessions. A redaction (which can change what states hash to) starts the fold afresh.
//! `drift` over a fresh cache and over one kept across appends answer the same (a
//! property test holds them to it).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::core::projection::{LedgerEntry, LEDGER_GRADES, LEDGER_RUNS};
use crate::core::stats::{bootstrap_diff_ci, cluster_diff_ci, cluster_mean_ci, ClusterSum, GradeStats};
use crate::core::{Digest, EventId, Kind};
use crate::error::Result;
use crate::memory::{stream_name, MemoryStores};
use crate::store::{SnapshotEpoch, Store};

/// A memory state sessions ran with.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StateRow {
    /// The state's hash.
    pub state: Digest,
    /// The first session's position.
    pub first_session: u64,
    /// Grades of the sessions that ran with it.
    pub grades: GradeStats,
    /// Bootstrap 95 % interval of their mean score, tasks resampled (a cluster bootstrap:
    /// sessions of one task are not independent); none with fewer than two tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<(f64, f64)>,
}

/// A change between two consecutive states sessions ran with.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Change {
    /// The change's memory events (and reverts), in order.
    pub events: Vec<EventId>,
    /// Position of its first event.
    pub position: u64,
    /// Dreams whose output it holds.
    pub dreams: Vec<EventId>,
    /// Grades with the state before.
    pub before: GradeStats,
    /// Grades with the state after.
    pub after: GradeStats,
    /// Mean score after minus before.
    pub delta: Option<f64>,
    /// 95 % interval of `delta`, tasks resampled on each side (a cluster bootstrap:
    /// sessions of one task are not independent evidence; a session without a task id is
    /// a task of its own).
    pub interval: Option<(f64, f64)>,
    /// Grades fell beyond the interval (its upper end is below zero).
    pub flagged: bool,
    /// Commands that undo the change.
    pub undo: Vec<String>,
    /// The same comparison within each task family (by grade rubric) with sessions on
    /// both sides: a change that hurts one family can hide in the mean of all of them.
    /// The change is flagged when any family (with enough sessions) is.
    #[serde(default)]
    pub families: Vec<FamilyChange>,
}

/// A change as one task family saw it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct FamilyChange {
    /// The family (the grades' rubric).
    pub family: String,
    /// Its grades with the state before.
    pub before: GradeStats,
    /// Its grades with the state after.
    pub after: GradeStats,
    /// Mean score after minus before.
    pub delta: Option<f64>,
    /// 95 % interval of `delta`, its tasks resampled on each side.
    pub interval: Option<(f64, f64)>,
    /// Its grades fell beyond the interval, with at least `min_sessions` on each side.
    pub flagged: bool,
}

/// `drift STORE`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct DriftReport {
    /// The store.
    pub store: String,
    /// Graded sessions that ran with it.
    pub sessions: u64,
    /// Sessions whose recorded state hash is not the store's state at their start.
    pub mismatched: u64,
    /// States in order.
    pub states: Vec<StateRow>,
    /// Changes between consecutive states.
    pub changes: Vec<Change>,
    /// How many changes are flagged.
    pub flagged: usize,
}

/// Options of `drift`.
#[derive(Clone, Copy, Debug)]
pub struct DriftOptions {
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Confidence level.
    pub level: f64,
    /// Sessions each side needs before a change can be flagged.
    pub min_sessions: u64,
}

impl Default for DriftOptions {
    fn default() -> DriftOptions {
        DriftOptions { resamples: 2000, level: 0.95, min_sessions: 3 }
    }
}

fn shell_quote(s: &str) -> String {
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./@:".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Drift's fold of the ledger, kept between requests (a service holds one; clones share
/// it).
#[derive(Clone, Default)]
pub struct DriftCache(Arc<Mutex<Option<Fold>>>);

impl std::fmt::Debug for DriftCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DriftCache")
    }
}

/// A session id, a task id or a family, shared by the fold's maps (one allocation each).
type Name = Arc<str>;

/// What the ledger says of one session.
#[derive(Clone, Debug, Default)]
struct Session {
    /// Its latest `session.start` that named a store: position, store, state.
    start: Option<(u64, String, Option<Digest>)>,
    /// Its latest `session.link`: the position it counts at, store, state.
    link: Option<(u64, String, Option<Digest>)>,
    /// Its task id.
    task: Option<Name>,
    /// Its last grade: score, passed, rubric.
    grade: Option<(f64, bool, Name)>,
}

impl Session {
    /// Where the session counts, for which store, with which recorded state: its latest
    /// link over its start.
    fn record(&self) -> Option<(u64, &str, Option<Digest>)> {
        self.link.as_ref().or(self.start.as_ref()).map(|(p, s, m)| (*p, s.as_str(), *m))
    }
}

/// A graded session's place in a store's fold.
#[derive(Clone, Debug, PartialEq)]
struct Member {
    epoch: usize,
    position: u64,
    cell: (Name, Name),
    score: f64,
    passed: bool,
    recorded: Option<Digest>,
}

/// The graded sessions of one (task, family) in one epoch, by (position, session).
#[derive(Clone, Debug, Default)]
struct Cell {
    members: BTreeMap<(u64, Name), (f64, bool)>,
    /// [`Cell::sums`], kept until the members change.
    sums: std::cell::OnceCell<(f64, u64, u64)>,
}

impl Cell {
    /// (sum of scores, count, passed), summed in position order.
    fn sums(&self) -> (f64, u64, u64) {
        *self.sums.get_or_init(|| {
            self.members.values().fold((0.0, 0, 0), |(s, n, p), (score, passed)| (s + score, n + 1, p + *passed as u64))
        })
    }
}

/// The sessions between two changes of a store.
#[derive(Clone, Debug, Default)]
struct Epoch {
    /// Graded sessions.
    count: usize,
    /// (task, family) → cell.
    cells: BTreeMap<(Name, Name), Cell>,
    /// Recorded state hash → sessions that recorded it.
    recorded: HashMap<Digest, u64>,
    /// Stamped from the store's counter on every change of the epoch: what its state row
    /// and the changes beside it were last computed at.
    stamp: u64,
}

/// A change of a store: position, event, the dream whose output it is, a revert.
type ChangeEvent = (u64, EventId, Option<EventId>, bool);

/// One store's part of the fold.
#[derive(Clone, Debug, Default)]
struct StoreFold {
    /// Its memory events and reverts, in order.
    changes: Vec<ChangeEvent>,
    /// The next stream version to read.
    next_version: u64,
    /// Epoch `e` holds the sessions after `e` changes.
    epochs: BTreeMap<usize, Epoch>,
    /// Where each graded session that ran with the store sits.
    members: HashMap<Name, Member>,
    /// The store's state hash at a position (never changes: a redaction starts a new
    /// fold).
    hashes: HashMap<u64, Digest>,
    /// Counts changes of epochs (their stamps).
    stamps: u64,
    /// The answers last computed, for the options they were computed with: per epoch
    /// (its stamp, its row, its mismatched sessions), per pair of epochs (their stamps,
    /// the change between them). An epoch nothing touched since is not computed again.
    rows: Option<Rows>,
}

/// Computed answers of a store's fold ([`StoreFold::rows`]).
#[derive(Clone, Debug)]
struct Rows {
    opts: (usize, u64, u64),
    states: HashMap<usize, (u64, StateRow, u64)>,
    changes: HashMap<(usize, usize), (u64, u64, Change)>,
}

impl StoreFold {
    fn remove(&mut self, session: &Name) {
        let Some(m) = self.members.remove(session) else { return };
        self.stamps += 1;
        if let Some(e) = self.epochs.get_mut(&m.epoch) {
            e.stamp = self.stamps;
            e.count -= 1;
            if let Some(c) = e.cells.get_mut(&m.cell) {
                c.members.remove(&(m.position, session.clone()));
                c.sums = std::cell::OnceCell::new();
                if c.members.is_empty() {
                    e.cells.remove(&m.cell);
                }
            }
            if let Some(d) = m.recorded {
                if let Some(n) = e.recorded.get_mut(&d) {
                    *n -= 1;
                    if *n == 0 {
                        e.recorded.remove(&d);
                    }
                }
            }
            if e.count == 0 {
                self.epochs.remove(&m.epoch);
            }
        }
    }

    fn add(&mut self, session: &Name, m: Member) {
        self.stamps += 1;
        let e = self.epochs.entry(m.epoch).or_default();
        e.stamp = self.stamps;
        e.count += 1;
        let cell = e.cells.entry(m.cell.clone()).or_default();
        cell.members.insert((m.position, session.clone()), (m.score, m.passed));
        cell.sums = std::cell::OnceCell::new();
        if let Some(d) = m.recorded {
            *e.recorded.entry(d).or_default() += 1;
        }
        self.members.insert(session.clone(), m);
    }

    /// Puts `session` where its record and grade say, for store `name`.
    fn place(&mut self, name: &str, id: &Name, s: &Session) {
        let member = match (s.record(), &s.grade) {
            (Some((position, store, recorded)), Some((score, passed, rubric))) if store == name => {
                let task = s.task.clone().unwrap_or_else(|| Name::from(format!("session:{id}")));
                Some(Member {
                    epoch: self.changes.partition_point(|c| c.0 < position),
                    position,
                    cell: (task, rubric.clone()),
                    score: *score,
                    passed: *passed,
                    recorded,
                })
            }
            _ => None,
        };
        if self.members.get(id) == member.as_ref() {
            return;
        }
        self.remove(id);
        if let Some(m) = member {
            self.add(id, m);
        }
    }

    /// Reads the store's changes below `until` that the fold has not seen.
    fn read_changes(&mut self, store: &Store, name: &str, until: u64) -> Result<()> {
        let mut kinds: HashMap<EventId, bool> = HashMap::new();
        loop {
            let events = store.read_stream(&stream_name(name), self.next_version, 4096)?;
            if events.is_empty() {
                return Ok(());
            }
            for e in &events {
                if e.position >= until {
                    return Ok(());
                }
                self.next_version = e.version + 1;
                let kind = e.event.header.kind;
                if !matches!(kind, Kind::Memory | Kind::Revert) {
                    continue;
                }
                let dream = match e.event.header.causes.first() {
                    Some(c) if kind == Kind::Memory => {
                        let is_dream = match kinds.get(c) {
                            Some(b) => *b,
                            None => {
                                let b = store.get(c).map(|x| x.event.header.kind == Kind::Dream).unwrap_or(false);
                                kinds.insert(*c, b);
                                b
                            }
                        };
                        is_dream.then_some(*c)
                    }
                    _ => None,
                };
                self.changes.push((e.position, e.id(), dream, kind == Kind::Revert));
            }
            if events.len() < 4096 {
                return Ok(());
            }
        }
    }
}

/// The fold of the whole ledger up to `until`.
#[derive(Clone, Debug)]
pub(crate) struct Fold {
    until: u64,
    redactions: SnapshotEpoch,
    sessions: HashMap<Name, Session>,
    stores: HashMap<String, StoreFold>,
}

impl Fold {
    fn new(redactions: SnapshotEpoch) -> Fold {
        Fold { until: 0, redactions, sessions: HashMap::new(), stores: HashMap::new() }
    }

    /// Folds the ledger's entries and the known stores' changes up to `until`, and
    /// builds `name`'s part if the fold has none yet.
    fn advance(&mut self, store: &Store, name: &str, until: u64) -> Result<()> {
        // The sessions whose record or grade changed, for the stores already folded (the
        // first request has none: it places every session once, below).
        let mut touched: HashSet<Name> = HashSet::new();
        let track = !self.stores.is_empty();
        if until > self.until {
            let sessions = &mut self.sessions;
            // The session's entry (its id allocated once, when it is first seen).
            fn session_entry(sessions: &mut HashMap<Name, Session>, id: String) -> (Name, &mut Session) {
                let key = match sessions.get_key_value(id.as_str()) {
                    Some((k, _)) => k.clone(),
                    None => Name::from(id),
                };
                let s = sessions.entry(key.clone()).or_default();
                (key, s)
            }
            store.ledger(LEDGER_RUNS, self.until, until, |position, entry| {
                match entry {
                    LedgerEntry::Start { session, store, memory_state, task_id, agent: _ } => {
                        // A start naming no store leaves an earlier one's record (as
                        // `sessions_with` does); its task holds either way.
                        let (id, s) = session_entry(sessions, session);
                        if let Some(store) = store {
                            s.start = Some((position, store, memory_state));
                        }
                        s.task = task_id.map(Name::from);
                        if track {
                            touched.insert(id);
                        }
                    }
                    LedgerEntry::Link { session, store, memory_state, at } => {
                        // A link made afterwards (`sessions link --at P`) says the session
                        // ran with the store as it stood at P, P included: it counts right
                        // after P (never later than the link itself). Drift's `mismatched`
                        // shows a link whose state is not the store's there.
                        let counts_at = at.map(|p| p.saturating_add(1)).filter(|&p| p < position).unwrap_or(position);
                        let (id, s) = session_entry(sessions, session);
                        s.link = Some((counts_at, store, memory_state));
                        if track {
                            touched.insert(id);
                        }
                    }
                    LedgerEntry::Grade { .. } => {}
                }
                true
            })?;
            store.ledger(LEDGER_GRADES, self.until, until, |_, entry| {
                if let LedgerEntry::Grade { session, score, passed, rubric } = entry {
                    let (id, s) = session_entry(sessions, session);
                    s.grade = Some((score, passed, Name::from(rubric)));
                    if track {
                        touched.insert(id);
                    }
                }
                true
            })?;
            for (n, f) in self.stores.iter_mut() {
                f.read_changes(store, n, until)?;
                for id in &touched {
                    if let Some(s) = self.sessions.get(id) {
                        f.place(n, id, s);
                    }
                }
            }
            self.until = until;
        }
        if !self.stores.contains_key(name) {
            let mut f = StoreFold::default();
            f.read_changes(store, name, self.until)?;
            for (id, s) in &self.sessions {
                f.place(name, id, s);
            }
            self.stores.insert(name.to_owned(), f);
        }
        Ok(())
    }
}

/// Grade statistics of summed cells.
fn grade_stats<'a>(cells: impl Iterator<Item = &'a Cell>) -> GradeStats {
    let (sum, n, passed) = cells.map(Cell::sums).fold((0.0, 0, 0), |(s, n, p), (a, b, c)| (s + a, n + b, p + c));
    if n == 0 {
        return GradeStats::default();
    }
    GradeStats { sessions: n, mean_score: Some(sum / n as f64), pass_rate: Some(passed as f64 / n as f64) }
}

/// The clusters (tasks) of some cells, as (sum, count), ordered by each task's first
/// session — so that with one session per task the draws are those of resampling
/// sessions in log order.
fn clusters<'a>(cells: impl Iterator<Item = (&'a (Name, Name), &'a Cell)>) -> Vec<ClusterSum> {
    let mut by_task: BTreeMap<&str, ((u64, &str), f64, f64)> = BTreeMap::new();
    for ((task, _), cell) in cells {
        let Some(((p, s), _)) = cell.members.first_key_value() else { continue };
        let (sum, n, _) = cell.sums();
        let slot = by_task.entry(&**task).or_insert(((*p, &**s), 0.0, 0.0));
        slot.0 = slot.0.min((*p, &**s));
        slot.1 += sum;
        slot.2 += n as f64;
    }
    let mut out: Vec<((u64, &str), f64, f64)> = by_task.into_values().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, s, n)| (s, n)).collect()
}

/// Grades per memory state and per change of `store`, with the changes after which
/// grades fell flagged (a fold of its own: [`DriftCache::drift`] keeps one between calls).
pub fn drift(mem: &MemoryStores, name: &str, opts: DriftOptions) -> Result<DriftReport> {
    DriftCache::default().drift(mem, name, opts)
}

impl DriftCache {
    /// [`drift`], folding only what the log gained since this cache's last call.
    pub fn drift(&self, mem: &MemoryStores, name: &str, opts: DriftOptions) -> Result<DriftReport> {
        report(&self.0, mem, name, opts)
    }

    /// Forgets the fold (after a reindex: the next request folds the ledger afresh).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

fn report(cache: &Mutex<Option<Fold>>, mem: &MemoryStores, name: &str, opts: DriftOptions) -> Result<DriftReport> {
    mem.require(name)?;
    let store = mem.store();
    // A request that panicked mid-fold may have left it half-changed: start afresh.
    let mut guard = cache.lock().unwrap_or_else(|poisoned| {
        let mut g = poisoned.into_inner();
        *g = None;
        g
    });
    let redactions = store.snapshot_epoch();
    if guard.as_ref().is_none_or(|f| f.redactions != redactions) {
        *guard = Some(Fold::new(redactions));
    }
    let Some(fold) = guard.as_mut() else { unreachable!("set above") };
    fold.advance(store, name, store.len())?;
    let Some(f) = fold.stores.get_mut(name) else { unreachable!("built by advance") };
    // What was computed with other options is computed again.
    let key = (opts.resamples, opts.level.to_bits(), opts.min_sessions);
    let mut rows = match f.rows.take() {
        Some(r) if r.opts == key => r,
        _ => Rows { opts: key, states: HashMap::new(), changes: HashMap::new() },
    };
    // The states sessions ran with: the epochs that hold graded sessions, in order.
    let epochs: Vec<usize> = f.epochs.keys().copied().collect();
    let mut mismatched = 0;
    let mut states = Vec::new();
    for &e in &epochs {
        let epoch = &f.epochs[&e];
        let (row, wrong) = match rows.states.get(&e) {
            Some((stamp, row, wrong)) if *stamp == epoch.stamp => (row.clone(), *wrong),
            _ => {
                let (row, wrong) = state_row(mem, name, &mut f.hashes, epoch, opts)?;
                rows.states.insert(e, (epoch.stamp, row.clone(), wrong));
                (row, wrong)
            }
        };
        mismatched += wrong;
        states.push(row);
    }
    rows.states.retain(|e, _| f.epochs.contains_key(e));
    let mut changes = Vec::new();
    for w in epochs.windows(2) {
        let (prev, next) = (&f.epochs[&w[0]], &f.epochs[&w[1]]);
        let change = match rows.changes.get(&(w[0], w[1])) {
            Some((a, b, c)) if (*a, *b) == (prev.stamp, next.stamp) => c.clone(),
            _ => {
                let c = change_row(name, prev, next, &f.changes[w[0]..w[1]], opts);
                rows.changes.insert((w[0], w[1]), (prev.stamp, next.stamp, c.clone()));
                c
            }
        };
        changes.push(change);
    }
    let pairs: HashSet<(usize, usize)> = epochs.windows(2).map(|w| (w[0], w[1])).collect();
    rows.changes.retain(|k, _| pairs.contains(k));
    f.rows = Some(rows);
    let flagged = changes.iter().filter(|c| c.flagged).count();
    let sessions = f.members.len() as u64;
    Ok(DriftReport { store: name.to_owned(), sessions, mismatched, states, changes, flagged })
}

/// A state's row and how many of its sessions recorded another state than its own.
fn state_row(
    mem: &MemoryStores,
    name: &str,
    hashes: &mut HashMap<u64, Digest>,
    epoch: &Epoch,
    opts: DriftOptions,
) -> Result<(StateRow, u64)> {
    let first =
        epoch.cells.values().filter_map(|c| c.members.first_key_value().map(|((p, _), _)| *p)).min().unwrap_or(0);
    let hash = match hashes.get(&first) {
        Some(h) => *h,
        None => {
            let h = mem.state_until(name, first)?.0.state_hash();
            hashes.insert(first, h);
            h
        }
    };
    let mismatched = epoch.recorded.iter().filter(|(d, _)| **d != hash).map(|(_, n)| n).sum::<u64>();
    // Tasks are the units: a session without a task id is a task of its own.
    let mut by_task: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for ((task, _), cell) in &epoch.cells {
        let (sum, n, _) = cell.sums();
        let slot = by_task.entry(&**task).or_default();
        slot.0 += sum;
        slot.1 += n as f64;
    }
    let tasks: Vec<ClusterSum> = by_task.into_values().collect();
    let seed = u64::from_le_bytes(hash.0[..8].try_into().unwrap_or_default()) ^ first;
    let interval = cluster_mean_ci(&tasks, opts.resamples, opts.level, seed);
    let row = StateRow { state: hash, first_session: first, grades: grade_stats(epoch.cells.values()), interval };
    Ok((row, mismatched))
}

/// An epoch's cells of one family.
fn family_cells<'a>(e: &'a Epoch, family: &str) -> Vec<(&'a (Name, Name), &'a Cell)> {
    e.cells.iter().filter(|((_, fam), _)| &**fam == family).collect()
}

/// The interval of a difference of mean scores between two sides' cells: tasks
/// resampled on each side ([`cluster_diff_ci`]); with a single task on a side, that
/// side's sessions are all there is to resample — the comparison is within that task —
/// so the sessions are resampled ([`bootstrap_diff_ci`], in log order).
fn diff_interval(
    before: &[(&(Name, Name), &Cell)],
    after: &[(&(Name, Name), &Cell)],
    opts: DriftOptions,
    seed: u64,
) -> Option<(f64, f64)> {
    let (b, a) = (clusters(before.iter().copied()), clusters(after.iter().copied()));
    if b.len() >= 2 && a.len() >= 2 {
        return cluster_diff_ci(&b, &a, opts.resamples, opts.level, seed);
    }
    let scores = |cells: &[(&(Name, Name), &Cell)]| {
        let mut all: Vec<(&(u64, Name), f64)> =
            cells.iter().flat_map(|(_, c)| c.members.iter().map(|(k, (score, _))| (k, *score))).collect();
        all.sort_by(|x, y| x.0.cmp(y.0));
        all.into_iter().map(|(_, s)| s).collect::<Vec<f64>>()
    };
    bootstrap_diff_ci(&scores(before), &scores(after), opts.resamples, opts.level, seed)
}

/// The change between two consecutive states: `between` holds its events.
fn change_row(name: &str, prev: &Epoch, next: &Epoch, between: &[ChangeEvent], opts: DriftOptions) -> Change {
    let (before, after) = (grade_stats(prev.cells.values()), grade_stats(next.cells.values()));
    let delta = match (before.mean_score, after.mean_score) {
        (Some(x), Some(y)) => Some(y - x),
        _ => None,
    };
    let seed = u64::from_le_bytes(between[0].1 .0[..8].try_into().unwrap_or_default());
    let interval =
        diff_interval(&prev.cells.iter().collect::<Vec<_>>(), &next.cells.iter().collect::<Vec<_>>(), opts, seed);
    let enough = before.sessions >= opts.min_sessions && after.sessions >= opts.min_sessions;
    // Per family: the sessions of each rubric on both sides of the change.
    let all: BTreeSet<&str> = prev.cells.keys().chain(next.cells.keys()).map(|(_, fam)| &**fam).collect();
    let families: Vec<FamilyChange> = if all.len() < 2 {
        Vec::new() // one family: the change's own figures are its figures
    } else {
        all.into_iter()
            .filter_map(|family| {
                let (b, a) = (family_cells(prev, family), family_cells(next, family));
                if b.is_empty() || a.is_empty() {
                    return None;
                }
                let (before, after) = (grade_stats(b.iter().map(|x| x.1)), grade_stats(a.iter().map(|x| x.1)));
                let delta = match (before.mean_score, after.mean_score) {
                    (Some(x), Some(y)) => Some(y - x),
                    _ => None,
                };
                let seed = seed
                    ^ u64::from_le_bytes(
                        blake3::hash(family.as_bytes()).as_bytes()[..8].try_into().unwrap_or_default(),
                    );
                let interval = diff_interval(&b, &a, opts, seed);
                let enough = before.sessions >= opts.min_sessions && after.sessions >= opts.min_sessions;
                let flagged = enough && interval.is_some_and(|(_, hi)| hi < 0.0);
                Some(FamilyChange { family: family.to_owned(), before, after, delta, interval, flagged })
            })
            .collect()
    };
    let flagged = (enough && interval.is_some_and(|(_, hi)| hi < 0.0)) || families.iter().any(|f| f.flagged);
    let mut dreams: Vec<EventId> = Vec::new();
    let mut undo = Vec::new();
    let q = shell_quote(name);
    for (_, id, dream, is_revert) in between {
        match dream {
            Some(d) if !dreams.contains(d) => {
                dreams.push(*d);
                undo.push(format!("dreamlog memory revert {q} --dream {} --reason 'drift: grades fell'", d.short(16)));
            }
            Some(_) => {}
            None if !is_revert => {
                undo.push(format!("dreamlog memory revert {q} --event {} --reason 'drift: grades fell'", id.short(16)))
            }
            None => {}
        }
    }
    Change {
        events: between.iter().map(|c| c.1).collect(),
        position: between[0].0,
        dreams,
        before,
        after,
        delta,
        interval,
        flagged,
        undo,
        families,
    }
}
