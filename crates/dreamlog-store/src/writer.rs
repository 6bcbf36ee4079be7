//! The single writer: group commit of concurrent appends.
//!
//! Every append request goes through one thread. It takes all requests waiting in its
//! queue, checks each against the log as the earlier ones of the group leave it, and
//! commits the accepted ones in one WriteBatch with one WAL sync; then it publishes the
//! new end of the log and acknowledges. A request that fails its checks is refused alone
//! and writes nothing. If the write itself fails, every request of the group gets the
//! error and the store is poisoned: it refuses further writes rather than pretend.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::layout;
use super::log::{Group, Log, Staged};
use super::replica::{self, Incoming, LogOfRecord, PublishError};
use super::{Committed, ExpectedVersion, Options, SyncMode};
use crate::core::projection::{self, Projected};
use crate::core::{Draft, EventId};
use crate::error::LogError;
use crate::error::{Error, Result};

/// Events to append atomically, with optional expected versions per stream (checked
/// against the streams as they were before the batch).
#[derive(Clone, Debug, Default)]
pub struct AppendBatch {
    /// The events, in order.
    pub events: Vec<Draft>,
    /// Expected versions, checked before any event is written.
    pub expectations: Vec<(String, ExpectedVersion)>,
    /// Records replaced in the same write: redactions (position → the redacted record,
    /// its header kept and a stand-in for its body). Only `Store::redact` sets these.
    pub rewrites: Vec<(u64, Vec<u8>)>,
    /// Derived spaces emptied in the same write (a redaction empties the snapshots, which
    /// may hold the removed text; they are rebuilt as folds need them).
    pub clear: Vec<crate::core::projection::Space>,
    /// Who hands the batch over: its receipt names them (`core::receipt`). Unset, the
    /// store takes the principal of the appending thread (`store::principal`); with none
    /// there either, the batch has no receipt.
    pub principal: Option<crate::core::receipt::Principal>,
}

impl AppendBatch {
    /// An empty batch.
    pub fn new() -> AppendBatch {
        AppendBatch::default()
    }

    /// A batch of one event.
    pub fn one(draft: Draft) -> AppendBatch {
        AppendBatch { events: vec![draft], ..AppendBatch::default() }
    }

    /// Adds an event.
    pub fn push(mut self, draft: Draft) -> AppendBatch {
        self.events.push(draft);
        self
    }

    /// Adds an expectation on a stream.
    pub fn expect(mut self, stream: impl Into<String>, expected: ExpectedVersion) -> AppendBatch {
        self.expectations.push((stream.into(), expected));
        self
    }
}

/// Where an appended event landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Global position.
    pub position: u64,
    /// Event id.
    pub id: EventId,
    /// Version in its stream.
    pub version: u64,
    /// True when the identical event was already in the log (nothing was written).
    pub existed: bool,
}

type Reply = oneshot::Sender<Result<Vec<Appended>>>;

/// Work that needs the log to itself (a rebuild of the derived indexes): it runs on the
/// writer thread between groups, so no append interleaves.
pub(crate) type Exclusive = Box<dyn FnOnce(&dyn Log, u64) -> Result<()> + Send>;

enum Job {
    Append {
        batch: AppendBatch,
        reply: Reply,
    },
    Exclusive {
        work: Exclusive,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Messages of the log of record to apply (a replicated store's follower sends them).
    Apply(Incoming),
}

/// The sending side of the writer's queue.
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Job>,
}

impl WriterHandle {
    pub(crate) fn submit(&self, batch: AppendBatch) -> Result<oneshot::Receiver<Result<Vec<Appended>>>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Append { batch, reply }).map_err(|_| Error::Log(LogError::Closed))?;
        Ok(rx)
    }

    pub(crate) fn exclusive(&self, work: Exclusive) -> Result<oneshot::Receiver<Result<()>>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job::Exclusive { work, reply }).map_err(|_| Error::Log(LogError::Closed))?;
        Ok(rx)
    }

    /// Where a replicated store's follower delivers the log of record's messages.
    pub(crate) fn sink(&self) -> replica::Sink {
        let tx = Mutex::new(self.tx.clone());
        Box::new(move |incoming| tx.lock().map(|tx| tx.send(Job::Apply(incoming)).is_ok()).unwrap_or(false))
    }
}

/// How long a replicated append may take in all (retries while the log of record elects
/// a leader or reconnects, catching up with other nodes) before it is refused; below the
/// server's default request timeout (30 s), so a client gets this store's own answer.
const REPLICATION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// A stream's last event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    version: u64,
    id: EventId,
    position: u64,
}

/// Stream heads already looked up, bounded so a log with millions of streams does not
/// grow the writer without limit.
const HEAD_CACHE_MAX: usize = 1 << 20;

struct Writer {
    log: Arc<dyn Log>,
    opts: Options,
    next: u64,
    heads: HashMap<String, Option<Head>>,
    committed: Arc<Committed>,
    poisoned: Arc<Mutex<Option<String>>>,
    /// The replicated log of record, when the local log is its projection.
    replica: Option<Arc<dyn LogOfRecord>>,
    /// Jobs taken from the queue while waiting for the log of record, run next.
    deferred: VecDeque<Job>,
}

pub(crate) fn spawn(
    log: Arc<dyn Log>,
    opts: Options,
    next: u64,
    committed: Arc<Committed>,
    poisoned: Arc<Mutex<Option<String>>>,
    replica: Option<Arc<dyn LogOfRecord>>,
) -> Result<(WriterHandle, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Job>();
    let mut w =
        Writer { log, opts, next, heads: HashMap::new(), committed, poisoned, replica, deferred: VecDeque::new() };
    let thread = std::thread::Builder::new()
        .name("dreamlog-writer".into())
        .spawn(move || w.run(rx))
        .map_err(|e| Error::Log(LogError::Storage(format!("cannot start the writer thread: {e}"))))?;
    Ok((WriterHandle { tx }, thread))
}

/// What one job adds to the group, before it is known to be accepted.
#[derive(Default)]
struct JobStage {
    staged: Vec<Staged>,
    appended: Vec<Appended>,
    heads: HashMap<String, Option<Head>>,
    ids: HashMap<EventId, (u64, u64)>,
}

/// What the accepted jobs of the group have added so far.
#[derive(Default)]
struct GroupState {
    heads: HashMap<String, Option<Head>>,
    ids: HashMap<EventId, (u64, u64)>,
    next: u64,
}

/// The wall clock in milliseconds since the epoch (what events are stamped with).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        // A replicated group is one atomic publish, which the log of record caps.
        let limit = match &self.replica {
            Some(r) => self.opts.max_group_events.min(r.max_batch()),
            None => self.opts.max_group_events,
        };
        loop {
            let first = match self.deferred.pop_front() {
                Some(job) => job,
                None => match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            let (batch, reply) = match first {
                Job::Append { batch, reply } => (batch, reply),
                Job::Exclusive { work, reply } => {
                    let _ = reply.send(self.run_exclusive(work));
                    continue;
                }
                Job::Apply(incoming) => {
                    let _ = self.apply_or_poison(incoming); // logged; the store refuses writes from here
                    continue;
                }
            };
            let mut events = batch.events.len();
            let mut jobs = vec![(batch, reply)];
            while events < limit {
                let next = match self.deferred.pop_front() {
                    Some(job) => job,
                    None => match rx.try_recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    },
                };
                match next {
                    Job::Append { batch, reply } if self.replica.is_none() || events + batch.events.len() <= limit => {
                        events += batch.events.len();
                        jobs.push((batch, reply));
                    }
                    Job::Apply(incoming) => {
                        let _ = self.apply_or_poison(incoming); // logged; the group is then refused
                    }
                    other => {
                        self.deferred.push_front(other);
                        break;
                    }
                }
            }
            if self.replica.is_some() {
                self.commit_replicated(jobs, &rx);
            } else {
                self.commit_group(jobs);
            }
        }
    }

    fn run_exclusive(&mut self, work: Exclusive) -> Result<()> {
        if let Some(reason) = self.poisoned.lock().map(|p| p.clone()).unwrap_or_else(|e| e.into_inner().clone()) {
            return Err(Error::Log(LogError::Poisoned(reason)));
        }
        work(self.log.as_ref(), self.next)
    }

    fn commit_group(&mut self, jobs: Vec<(AppendBatch, Reply)>) {
        let poisoned = self.poisoned.lock().map(|p| p.clone()).unwrap_or_else(|e| e.into_inner().clone());
        if let Some(reason) = poisoned {
            for (_, reply) in jobs {
                let _ = reply.send(Err(Error::Log(LogError::Poisoned(reason.clone()))));
            }
            return;
        }
        let now = now_ms();
        let mut group = GroupState { next: self.next, ..Default::default() };
        let mut write =
            Group { events: Vec::new(), index: Vec::new(), end: self.next, rewrites: Vec::new(), clear: Vec::new() };
        let mut outcomes: Vec<(Reply, Result<Vec<Appended>>)> = Vec::with_capacity(jobs.len());
        for (mut batch, reply) in jobs {
            let (rewrites, clear) = (std::mem::take(&mut batch.rewrites), std::mem::take(&mut batch.clear));
            match self.stage_job(batch, &group, now) {
                Ok(stage) => {
                    write.rewrites.extend(rewrites);
                    write.clear.extend(clear);
                    group.next += stage.staged.len() as u64;
                    group.heads.extend(stage.heads);
                    group.ids.extend(stage.ids);
                    write.events.extend(stage.staged);
                    outcomes.push((reply, Ok(stage.appended)));
                }
                Err(e) => outcomes.push((reply, Err(e))),
            }
        }
        if group.next > self.next {
            for s in &write.events {
                let e = &s.event;
                let seen =
                    Projected { position: s.position, version: s.version, header: &e.header, body: Some(&e.body) };
                projection::project(&seen, &mut write.index);
            }
            write.end = group.next;
            if let Err(e) = self.log.write(&write, self.opts.sync == SyncMode::Fsync) {
                let reason = e.to_string();
                if let Ok(mut p) = self.poisoned.lock() {
                    *p = Some(reason.clone());
                }
                // Heads may now be wrong; forget them (the next open re-reads the log).
                self.heads.clear();
                for (reply, outcome) in outcomes {
                    let err = match outcome {
                        Ok(_) => Err(Error::Log(LogError::Poisoned(reason.clone()))),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(err);
                }
                return;
            }
            self.next = group.next;
            if self.heads.len() + group.heads.len() > HEAD_CACHE_MAX {
                self.heads.clear();
            }
            self.heads.extend(group.heads);
            self.publish();
        }
        for (reply, outcome) in outcomes {
            let _ = reply.send(outcome);
        }
    }

    fn publish(&self) {
        if let Ok(mut c) = self.committed.count.lock() {
            *c = self.next;
        }
        self.committed.changed.notify_all();
        self.committed.watch.send_replace(self.next);
    }

    /// Applies the log of record's messages; a failure poisons the store (it stops
    /// applying and refuses writes; reads go on), with the reason in the log.
    fn apply_or_poison(&mut self, incoming: Incoming) -> Result<()> {
        self.apply(incoming).map_err(|e| self.stop_applying(e))
    }

    /// A local write of the log of record's events failed, or a message cannot be
    /// applied: the store is poisoned (the first reason kept) and its cached heads dropped.
    fn stop_applying(&mut self, e: Error) -> Error {
        tracing::error!("{}: this node stops applying the log of record: {e}", self.log.describe());
        if let Ok(mut p) = self.poisoned.lock() {
            if p.is_none() {
                *p = Some(e.to_string());
            }
        }
        self.heads.clear();
        e
    }

    /// Writes the log of record's messages into the local log at their positions (those
    /// already applied are skipped): each event's chain is checked against its stream's
    /// head here, its version is the next one, and the projectors run as for any group.
    fn apply(&mut self, incoming: Incoming) -> Result<()> {
        if let Some(reason) = self.poisoned.lock().map(|p| p.clone()).unwrap_or_else(|e| e.into_inner().clone()) {
            return Err(Error::Log(LogError::Poisoned(reason)));
        }
        let mut staged: Vec<Staged> = Vec::new();
        let mut heads: HashMap<String, Head> = HashMap::new();
        for (i, payload) in incoming.payloads.iter().enumerate() {
            let position = incoming.first + i as u64;
            if position < self.next {
                continue;
            }
            let due = self.next + staged.len() as u64;
            if position != due {
                return Err(Error::Log(LogError::Corrupt {
                    position: due,
                    reason: format!("the follower delivered position {position} where {due} was due"),
                }));
            }
            let (event, receipt) = replica::decode_message_with_receipt(position, payload)?;
            let stream = &event.header.stream;
            let head = match heads.get(stream) {
                Some(h) => Some(*h),
                None => self.committed_head(stream)?,
            };
            let chained = head.map(|h| vec![h.id]).unwrap_or_default();
            if event.header.parents != chained {
                return Err(Error::Log(LogError::Corrupt {
                    position,
                    reason: format!(
                        "the log of record's event {} on stream {stream:?} chains to {}, but the stream's head there is {}: it was not written by a dreamlog node",
                        event.id,
                        event.header.parents.first().map(|p| p.to_hex()).unwrap_or_else(|| "nothing".into()),
                        head.map(|h| h.id.to_hex()).unwrap_or_else(|| "nothing (a new stream)".into())
                    ),
                }));
            }
            let version = head.map_or(0, |h| h.version + 1);
            let new = Head { version, id: event.id, position };
            match heads.get_mut(stream) {
                Some(h) => *h = new,
                None => {
                    heads.insert(stream.clone(), new);
                }
            }
            staged.push(Staged { position, version, event, receipt });
        }
        self.commit_local(staged, heads)
    }

    /// Writes events of the log of record at the local log's end (their positions are
    /// the next ones, their versions and chains checked), with their projector entries;
    /// then `heads` (each stream's last event among them) are the committed heads.
    fn commit_local(&mut self, events: Vec<Staged>, heads: impl IntoIterator<Item = (String, Head)>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut write = Group { events, index: Vec::new(), end: self.next, rewrites: Vec::new(), clear: Vec::new() };
        for s in &write.events {
            let e = &s.event;
            let seen = Projected { position: s.position, version: s.version, header: &e.header, body: Some(&e.body) };
            projection::project(&seen, &mut write.index);
        }
        write.end = self.next + write.events.len() as u64;
        self.log.write(&write, self.opts.sync == SyncMode::Fsync)?;
        self.next = write.end;
        let heads: Vec<(String, Head)> = heads.into_iter().collect();
        if self.heads.len() + heads.len() > HEAD_CACHE_MAX {
            self.heads.clear();
        }
        self.heads.extend(heads.into_iter().map(|(stream, h)| (stream, Some(h))));
        self.publish();
        Ok(())
    }

    /// Applies what the follower delivers until the local log reaches `target`; appends
    /// and other work that arrive meanwhile wait their turn.
    fn catch_up_to(&mut self, target: u64, rx: &mpsc::Receiver<Job>, deadline: std::time::Instant) -> Result<()> {
        while self.next < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(self.replication_error(format!(
                    "this node has applied the log of record up to position {} but needs {target}, and the follower delivered nothing more within {} s",
                    self.next,
                    REPLICATION_DEADLINE.as_secs()
                )));
            }
            match rx.recv_timeout(left.min(std::time::Duration::from_secs(1))) {
                Ok(Job::Apply(incoming)) => self.apply_or_poison(incoming)?,
                Ok(other) => self.deferred.push_back(other),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Log(LogError::Closed)),
            }
        }
        Ok(())
    }

    fn replication_error(&self, reason: String) -> Error {
        let log = self.replica.as_ref().map(|r| r.describe()).unwrap_or_default();
        Error::Log(LogError::Replication { log, reason })
    }

    /// Catches up with everything the log of record holds now.
    fn catch_up_to_end(&mut self, rx: &mpsc::Receiver<Job>, deadline: std::time::Instant) -> Result<()> {
        let end = match &self.replica {
            Some(r) => r.end()?,
            None => return Ok(()),
        };
        self.catch_up_to(end, rx, deadline)
    }

    /// A replicated group: checked against the local log like any group, published to the
    /// log of record as one atomic batch conditional on the heads it chained to, and
    /// acknowledged once this node has applied it. A conflict (another node wrote to one
    /// of its streams first) or a refusal that the node's lag may explain (an expected
    /// version, a parent, a cause) is checked again after catching up.
    fn commit_replicated(&mut self, jobs: Vec<(AppendBatch, Reply)>, rx: &mpsc::Receiver<Job>) {
        let Some(replica) = self.replica.clone() else { return };
        let poisoned = self.poisoned.lock().map(|p| p.clone()).unwrap_or_else(|e| e.into_inner().clone());
        let jobs: Vec<(AppendBatch, Reply)> = jobs
            .into_iter()
            .filter_map(|(batch, reply)| {
                if let Some(reason) = &poisoned {
                    let _ = reply.send(Err(Error::Log(LogError::Poisoned(reason.clone()))));
                    return None;
                }
                if !batch.rewrites.is_empty() || !batch.clear.is_empty() {
                    let _ = reply.send(Err(Error::Log(LogError::Unsupported(format!(
                        "redaction is not possible on a node of a replicated log ({}): the log of record's messages are immutable there; redact on an embedded store",
                        replica.describe()
                    )))));
                    return None;
                }
                Some((batch, reply))
            })
            .collect();
        if jobs.is_empty() {
            return;
        }
        let deadline = std::time::Instant::now() + REPLICATION_DEADLINE;
        let mut caught_up = false;
        // An attempt whose outcome was unknown and then conflicted: its outcomes, their
        // base position and its first event. It may be what the conflict was with.
        let mut uncertain: Option<Uncertain> = None;
        loop {
            if let Some((earlier, earlier_base, first_id)) = uncertain.take() {
                match self.log.position_of(&first_id) {
                    // Stored (the batch is atomic: all of it): that attempt is the answer.
                    Ok(Some(first)) => return reply_rebased(jobs, earlier, earlier_base, first),
                    Ok(None) => {}
                    Err(e) => return reply_all(jobs, &e),
                }
            }
            let now = now_ms();
            let base = self.next;
            let mut group = GroupState { next: base, ..Default::default() };
            let mut events: Vec<Staged> = Vec::new();
            let mut outcomes: Vec<Result<Vec<Appended>>> = Vec::with_capacity(jobs.len());
            // Staged from copies: after a conflict the same jobs are staged again.
            for (batch, _) in &jobs {
                match self.stage_job(batch.clone(), &group, now) {
                    Ok(stage) => {
                        group.next += stage.staged.len() as u64;
                        group.heads.extend(stage.heads);
                        group.ids.extend(stage.ids);
                        events.extend(stage.staged);
                        outcomes.push(Ok(stage.appended));
                    }
                    Err(e) => outcomes.push(Err(e)),
                }
            }
            let stale = outcomes.iter().any(|o| {
                matches!(
                    o,
                    Err(Error::Log(
                        LogError::WrongExpectedVersion { .. }
                            | LogError::ParentMismatch { .. }
                            | LogError::UnknownCause { .. }
                    ))
                )
            });
            if stale && !caught_up {
                if let Err(e) = self.catch_up_to_end(rx, deadline) {
                    return reply_all(jobs, &e);
                }
                caught_up = true;
                continue;
            }
            if events.is_empty() {
                for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
                return;
            }
            let heads = match self.chained_heads(&events) {
                Ok(h) => h,
                Err(e) => return reply_all(jobs, &e),
            };
            let mut unknown = None;
            let published = loop {
                match replica.publish(&events, &heads) {
                    Err(PublishError::Unknown(why)) => {
                        unknown = Some(why);
                        if std::time::Instant::now() >= deadline {
                            break Err(PublishError::Unknown(unknown.take().unwrap_or_default()));
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                    other => break other,
                }
            };
            match published {
                Ok(first) => {
                    let end = first + events.len() as u64;
                    // Once everything before the batch is applied, the batch is applied
                    // from what was staged (the follower's copy is then skipped); if the
                    // follower delivered part of it meanwhile, the rest comes from it.
                    if let Err(e) = self.catch_up_to(first, rx, deadline) {
                        return reply_all(jobs, &e);
                    }
                    if self.next == first {
                        let own: Vec<Staged> = events
                            .into_iter()
                            .map(|mut s| {
                                s.position = s.position - base + first;
                                s
                            })
                            .collect();
                        let heads = group.heads.into_iter().filter_map(|(stream, h)| {
                            h.map(|h| (stream, Head { position: h.position - base + first, ..h }))
                        });
                        if let Err(e) = self.commit_local(own, heads) {
                            let e = self.stop_applying(e);
                            return reply_all(jobs, &e);
                        }
                    } else if let Err(e) = self.catch_up_to(end, rx, deadline) {
                        return reply_all(jobs, &e);
                    }
                    return reply_rebased(jobs, outcomes, base, first);
                }
                Err(PublishError::Conflict(why)) => {
                    if std::time::Instant::now() >= deadline {
                        let e = self.replication_error(format!(
                            "the batch conflicted with other writers until the deadline ({} s): {why}",
                            REPLICATION_DEADLINE.as_secs()
                        ));
                        return reply_all(jobs, &e);
                    }
                    if let Err(e) = self.catch_up_to_end(rx, deadline) {
                        return reply_all(jobs, &e);
                    }
                    caught_up = true;
                    if unknown.is_some() {
                        uncertain = Some((outcomes, base, events[0].event.id));
                    }
                }
                Err(PublishError::Unknown(why)) => {
                    let e = self.replication_error(format!(
                        "no answer within {} s ({why}); the batch may have been stored: sending it again is safe",
                        REPLICATION_DEADLINE.as_secs()
                    ));
                    return reply_all(jobs, &e);
                }
                Err(PublishError::Refused(e)) => {
                    for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
                        let _ = reply.send(match outcome {
                            Ok(_) => Err(clone_error(&e)),
                            Err(own) => Err(own),
                        });
                    }
                    return;
                }
            }
        }
    }

    /// For the first event of each stream in a group: the position of the committed head
    /// it chained to (`None` for a stream's first event).
    fn chained_heads(&self, events: &[Staged]) -> Result<Vec<(usize, Option<u64>)>> {
        let mut seen = std::collections::HashSet::new();
        let mut heads = Vec::new();
        for (i, s) in events.iter().enumerate() {
            if !seen.insert(s.event.header.stream.as_str()) {
                continue;
            }
            let stream = &s.event.header.stream;
            let at = match s.version {
                0 => None,
                // Staging looked the head up (cached); the log only if it was evicted since.
                v => match self.heads.get(stream) {
                    Some(Some(h)) if h.version == v - 1 => Some(h.position),
                    _ => Some(self.log.stream_position(stream, v - 1)?.ok_or_else(|| {
                        Error::Log(LogError::Corrupt {
                            position: s.position,
                            reason: format!("stream {stream:?} has no version {} to chain to", v - 1),
                        })
                    })?),
                },
            };
            heads.push((i, at));
        }
        Ok(heads)
    }

    /// The head of a stream as the job sees it: its own changes, then the group's, then
    /// the committed log.
    fn head(&mut self, stream: &str, stage: &JobStage, group: &GroupState) -> Result<Option<Head>> {
        if let Some(h) = stage.heads.get(stream).or_else(|| group.heads.get(stream)) {
            return Ok(*h);
        }
        self.committed_head(stream)
    }

    /// The head of a stream in the committed log (cached).
    fn committed_head(&mut self, stream: &str) -> Result<Option<Head>> {
        if let Some(h) = self.heads.get(stream) {
            return Ok(*h);
        }
        let head = self.lookup_head(stream, None)?;
        if self.heads.len() >= HEAD_CACHE_MAX {
            self.heads.clear();
        }
        self.heads.insert(stream.to_owned(), head);
        Ok(head)
    }

    /// Reads a stream's last event (or the event at `version`) from the committed log.
    fn lookup_head(&self, stream: &str, version: Option<u64>) -> Result<Option<Head>> {
        let (version, pos) = match version {
            Some(v) => match self.log.stream_position(stream, v)? {
                Some(p) => (v, p),
                None => return Ok(None),
            },
            None => match self.log.stream_last(stream)? {
                Some(vp) => vp,
                None => return Ok(None),
            },
        };
        let raw = self.log.record(pos)?.ok_or_else(|| {
            Error::Log(LogError::Corrupt {
                position: pos,
                reason: format!("stream {stream:?} indexes a missing record"),
            })
        })?;
        let parts = layout::split_record(&raw).ok_or_else(|| {
            Error::Log(LogError::Corrupt { position: pos, reason: "record layout is invalid".into() })
        })?;
        Ok(Some(Head { version, id: parts.id, position: pos }))
    }

    /// Where an id already is: in this job, in the group, or in the committed log.
    fn existing(&self, id: &EventId, stage: &JobStage, group: &GroupState) -> Result<Option<(u64, u64)>> {
        if let Some(pv) = stage.ids.get(id).or_else(|| group.ids.get(id)) {
            return Ok(Some(*pv));
        }
        let Some(pos) = self.log.position_of(id)? else {
            return Ok(None);
        };
        let raw = self.log.record(pos)?.ok_or_else(|| {
            Error::Log(LogError::Corrupt { position: pos, reason: "id index points at a missing record".into() })
        })?;
        let parts = layout::split_record(&raw).ok_or_else(|| {
            Error::Log(LogError::Corrupt { position: pos, reason: "record layout is invalid".into() })
        })?;
        Ok(Some((pos, parts.version)))
    }

    /// Whether an id is an event: in this job, in the group, or in the committed log (one
    /// id-index lookup; unlike [`Writer::existing`] it does not read the record).
    fn is_event(&self, id: &EventId, stage: &JobStage, group: &GroupState) -> Result<bool> {
        if stage.ids.contains_key(id) || group.ids.contains_key(id) {
            return Ok(true);
        }
        Ok(self.log.position_of(id)?.is_some())
    }

    /// Checks one job against the log and stages its events, or refuses it whole.
    fn stage_job(&mut self, batch: AppendBatch, group: &GroupState, now: u64) -> Result<JobStage> {
        let mut stage = JobStage::default();
        let principal = batch.principal.clone();
        // Streams whose expectation failed: the batch may still be a retry of one that
        // was committed. Its events are then chained from the expected head and must all
        // exist already.
        let mut replay: HashMap<String, (Option<Head>, Error)> = HashMap::new();
        let mut replay_touched: std::collections::HashSet<String> = std::collections::HashSet::new();
        for (stream, expected) in &batch.expectations {
            let head = self.head(stream, &stage, group)?;
            let current = head.map(|h| h.version);
            let ok = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current.is_none(),
                ExpectedVersion::StreamExists => current.is_some(),
                ExpectedVersion::Exact(v) => current == Some(*v),
            };
            if ok {
                continue;
            }
            let err =
                Error::Log(LogError::WrongExpectedVersion { stream: stream.clone(), expected: *expected, current });
            let replay_from = match expected {
                ExpectedVersion::NoStream => None,
                ExpectedVersion::Exact(v) if current.is_some_and(|c| c > *v) => {
                    match self.lookup_head(stream, Some(*v))? {
                        Some(h) => Some(h),
                        None => return Err(err),
                    }
                }
                _ => return Err(err),
            };
            replay.insert(stream.clone(), (replay_from, err));
        }

        for (index, mut draft) in batch.events.into_iter().enumerate() {
            // An event as an export carries it (its time and parents given): history being
            // copied, judged by the rules it was written under (an old export imports).
            let copied = draft.time.is_some() && draft.parents.is_some();
            let time = draft.time.unwrap_or(now);
            if let Some((from, err)) = replay.get_mut(draft.stream.as_str()) {
                replay_touched.insert(draft.stream.clone());
                let parents = draft.parents.take().unwrap_or_else(|| from.map(|h| vec![h.id]).unwrap_or_default());
                let sealed = draft
                    .into_sealed(time, parents)
                    .map_err(|source| Error::Log(LogError::InvalidEvent { index, source }))?;
                match self.existing(&sealed.id, &stage, group)? {
                    Some((position, version)) => {
                        *from = Some(Head { version, id: sealed.id, position });
                        stage.appended.push(Appended { position, id: sealed.id, version, existed: true });
                        continue;
                    }
                    None => {
                        return Err(std::mem::replace(err, Error::Log(LogError::Closed)));
                    }
                }
            }

            let head = self.head(&draft.stream, &stage, group)?;
            let head_parents = head.map(|h| vec![h.id]).unwrap_or_default();
            let parents = draft.parents.take().unwrap_or_else(|| head_parents.clone());
            let stream = draft.stream.clone();
            let sealed = draft
                .into_sealed(time, parents)
                .map_err(|source| Error::Log(LogError::InvalidEvent { index, source }))?;
            if sealed.header.body_len > self.opts.max_body_bytes {
                return Err(Error::Log(LogError::BodyTooLarge {
                    index,
                    len: sealed.header.body_len,
                    limit: self.opts.max_body_bytes,
                }));
            }
            if sealed.header.parents != head_parents {
                // Chained from the current head, an event cannot exist yet (its stream
                // would have a successor of the head). Chained elsewhere, it must exist.
                match self.existing(&sealed.id, &stage, group)? {
                    Some((position, version)) => {
                        stage.appended.push(Appended { position, id: sealed.id, version, existed: true });
                        continue;
                    }
                    None => {
                        return Err(Error::Log(LogError::ParentMismatch {
                            index,
                            stream,
                            given: sealed.header.parents.first().map(|p| p.to_hex()).unwrap_or_else(|| "none".into()),
                            head: head.map(|h| (h.version, h.id)),
                        }))
                    }
                }
            }
            // A new event's time is bounded: not further ahead of this store's clock than
            // the skew allowed, never past what a time can name. Past times stay (imports).
            let latest = now.saturating_add(self.opts.max_clock_skew_ms).min(crate::core::MAX_TIME_MS);
            if sealed.header.time > latest {
                return Err(Error::Log(LogError::TimeAhead {
                    index,
                    time: sealed.header.time,
                    now,
                    skew_ms: self.opts.max_clock_skew_ms,
                }));
            }
            // A new event's names take today's care (stored and copied ones keep the rules
            // they were written by): its stream's segments, a memory command's paths.
            if !copied {
                crate::core::validate::check_new_event(&sealed.header.stream, &sealed.body)
                    .map_err(|source| Error::Log(LogError::InvalidEvent { index, source }))?;
            }
            // Provenance must point at something: every cause is in the log, or earlier in
            // this batch or group.
            for cause in &sealed.header.causes {
                if !self.is_event(cause, &stage, group)? {
                    return Err(Error::Log(LogError::UnknownCause { index, id: cause.to_hex() }));
                }
            }
            let version = head.map(|h| h.version + 1).unwrap_or(0);
            let position = group.next + stage.staged.len() as u64;
            stage.heads.insert(stream, Some(Head { version, id: sealed.id, position }));
            stage.ids.insert(sealed.id, (position, version));
            stage.appended.push(Appended { position, id: sealed.id, version, existed: false });
            stage.staged.push(Staged { position, version, event: sealed, receipt: None });
        }
        // The batch's receipt: who handed it over, when, and exactly what it wrote.
        if let (Some(who), Some(first)) = (principal, stage.staged.first()) {
            let ids: Vec<EventId> = stage.staged.iter().map(|s| s.event.id).collect();
            let receipt = crate::core::receipt::Receipt::new(who, now, &ids).encode();
            debug_assert_eq!(first.position + ids.len() as u64 - 1, stage.staged[ids.len() - 1].position);
            stage.staged[0].receipt = Some(receipt);
        }
        // A failed expectation is forgiven only for a complete retry: every event of the
        // batch already stored, and each failing stream named by at least one of them.
        if !replay.is_empty() && (!stage.staged.is_empty() || replay_touched.len() < replay.len()) {
            let mut errs: Vec<Error> = replay.into_values().map(|(_, e)| e).collect();
            errs.sort_by_key(|e| e.to_string());
            return Err(errs.swap_remove(0));
        }
        Ok(stage)
    }
}

/// An attempt whose outcome is unknown: each job's outcome, their base position, and the
/// batch's first event (found in the log once caught up if the attempt was stored).
type Uncertain = (Vec<Result<Vec<Appended>>>, u64, EventId);

/// Answers each job with its outcome, the positions of its new events moved from where
/// they were staged (from `base`) to where the log of record put them (from `first`).
fn reply_rebased(jobs: Vec<(AppendBatch, Reply)>, outcomes: Vec<Result<Vec<Appended>>>, base: u64, first: u64) {
    for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
        let _ = reply.send(outcome.map(|mut appended| {
            for a in appended.iter_mut().filter(|a| !a.existed) {
                a.position = a.position - base + first;
            }
            appended
        }));
    }
}

/// Sends one error to every job.
fn reply_all(jobs: Vec<(AppendBatch, Reply)>, e: &Error) {
    for (_, reply) in jobs {
        let _ = reply.send(Err(clone_error(e)));
    }
}

/// A copy of an error for each of the jobs it fails (errors are not `Clone`: the log's
/// own are rebuilt, others keep their text and class).
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Log(LogError::Replication { log, reason }) => {
            Error::Log(LogError::Replication { log: log.clone(), reason: reason.clone() })
        }
        Error::Log(LogError::Poisoned(r)) => Error::Log(LogError::Poisoned(r.clone())),
        Error::Log(LogError::Unsupported(r)) => Error::Log(LogError::Unsupported(r.clone())),
        Error::Log(LogError::BatchTooLarge { len, limit }) => {
            Error::Log(LogError::BatchTooLarge { len: *len, limit: *limit })
        }
        Error::Log(LogError::BodyTooLarge { index, len, limit }) => {
            Error::Log(LogError::BodyTooLarge { index: *index, len: *len, limit: *limit })
        }
        Error::Log(LogError::Closed) => Error::Log(LogError::Closed),
        Error::Log(LogError::Corrupt { position, reason }) => {
            Error::Log(LogError::Corrupt { position: *position, reason: reason.clone() })
        }
        Error::Log(LogError::Storage(r)) => Error::Log(LogError::Storage(r.clone())),
        other => Error::Log(LogError::Replication { log: String::new(), reason: other.to_string() }),
    }
}
