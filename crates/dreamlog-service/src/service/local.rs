//! [`Local`]: the service in process, over a store. The server's handlers and the
//! embedded CLI both call it, so every operation's rules are written here once.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::{
    AppendRequest, AppendedEvent, BackupReport, BackupRequest, BatchRequest, CheckpointCheckRequest, CheckpointVerdict,
    DiffQuery, DreamRequest, DriftQuery, EventsQuery, ForkRequest, Forked, Info, LinkedSession, Lookup, LookupRequest,
    MemoryFiles, MemoryView, PathQuery, PrincipalSummary, Principals, PrincipalsQuery, PromoteRequest, RedactRequest,
    Redacted, ReplayRequest, RevertRequest, RulesRequest, RulesSwitch, Service, SessionsLinkRequest, SessionsLinked,
    TagRequest, Tagged, ToolAnswer, ToolContext, VerifyQuery, ViewQuery,
};
use crate::core::dream::DreamerSpec;
use crate::core::memory::{MemoryDiff, ToolCall};
use crate::core::{Actor, EventId, EventJson};
use crate::dream::{DreamDetail, DreamRun, DreamSummary, Dreams, Replay, RunOptions};
use crate::error::{Error, Result};
use crate::error::{LogError, MemoryError};
use crate::ledger::{DriftReport, LessonRow};
use crate::memory::{ApplyOptions, BlameLine, MemoryStores, Preview};
use crate::sessions::{SessionDetail, SessionSummary, Stats};
use crate::store::{AppendBatch, Appended, ExpectedVersion, Store, StoredEvent, VerifyReport};
use crate::timeline::{TimelinePage, TimelineQuery};

/// Turns a request's dreamer name and config into the dreamer that runs: the server's
/// config (profiles hold endpoints, keys and programs; a request sets only tunables).
/// Without a policy (the embedded CLI, a trusted caller) the name is parsed as given.
pub type DreamerPolicy = Arc<dyn Fn(Option<&str>, Value) -> Result<DreamerSpec> + Send + Sync>;

/// Most bootstrap resamples a drift request may ask for (each costs a pass over the sessions).
pub const MAX_RESAMPLES: usize = 100_000;

/// The service over a store in this process.
#[derive(Clone)]
pub struct Local {
    mem: MemoryStores,
    dreams: Dreams,
    name: String,
    max_batch: usize,
    policy: Option<DreamerPolicy>,
    default_actor: Actor,
    /// The Ed25519 seed checkpoints are signed with.
    signing_seed: Option<[u8; 32]>,
    /// Drift's fold of the ledger, advanced by each request (clones share it).
    drift: crate::ledger::DriftCache,
}

impl Local {
    /// A revert through `m` (the stores themselves, or a dry run's planner).
    fn revert_with(&self, m: &MemoryStores, store: &str, req: &RevertRequest, actor: &Actor) -> Result<Vec<Appended>> {
        let actor = actor.clone();
        match (&req.event, &req.dream, &req.session, &req.to) {
            (Some(e), None, None, None) => {
                m.revert_event(store, &self.store().resolve_id(e)?, &req.reason, req.force, actor)
            }
            (None, Some(d), None, None) => {
                m.revert_dream(store, &self.store().resolve_id(d)?, &req.reason, req.force, actor)
            }
            (None, None, Some(s), None) => m.revert_session(store, s, &req.reason, req.force, actor),
            (None, None, None, Some(p)) => m.revert_to(store, m.resolve_point(p)?, &req.reason, actor),
            _ => Err(Error::Input {
                path: "revert".into(),
                line: 0,
                reason: "give exactly one of event, dream, session, to".into(),
            }),
        }
    }

    /// Runs a dream as [`Service::dream_run`] does, with `notes` appended to its output
    /// stream in the dream's batch, and stopped before it writes anything once `cancel`
    /// is set (the Managed-Agents dreams API's jobs).
    pub fn dream_run_with(
        &self,
        req: &DreamRequest,
        notes: Vec<crate::core::Note>,
        cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<DreamRun> {
        let spec = self.spec(req.dreamer.as_deref(), req.config.clone())?;
        let since = self.dreams.resolve_since(req.since.as_deref())?;
        let sessions = (!req.sessions.is_empty()).then(|| req.sessions.iter().cloned().collect());
        let opts = RunOptions {
            since,
            into: req.into.clone(),
            in_place: req.in_place,
            create: req.create,
            sessions,
            notes,
            cancel,
            again: req.again,
        };
        self.dreams.run(&req.store, &spec, &opts)
    }

    /// The service over `store`; memory snapshots every `snapshot_every` events of a store.
    pub fn new(store: Store, snapshot_every: u64) -> Local {
        let mem = MemoryStores::new(store.clone()).with_snapshot_every(snapshot_every);
        let name = store.path().map(|p| p.display().to_string()).unwrap_or_else(|| store.log().describe());
        let max_batch = store.options().max_batch_events;
        Local {
            dreams: Dreams::new(mem.clone()),
            mem,
            name,
            max_batch,
            policy: None,
            default_actor: Actor::Agent("local".into()),
            signing_seed: None,
            drift: crate::ledger::DriftCache::default(),
        }
    }

    /// Signs checkpoints with this Ed25519 seed.
    pub fn with_signing_seed(mut self, seed: [u8; 32]) -> Local {
        self.signing_seed = Some(seed);
        self
    }

    /// The service over `store` with the default snapshot interval.
    pub fn over(store: &Store) -> Local {
        Local::new(store.clone(), crate::memory::DEFAULT_SNAPSHOT_EVERY)
    }

    /// Names the service (a server's tenant) and sets its largest append batch (never
    /// above what the store takes: a cluster node's log of record caps it).
    pub fn named(mut self, name: &str, max_batch: usize) -> Local {
        self.name = name.to_owned();
        self.max_batch = max_batch.min(self.max_batch);
        self
    }

    /// Runs dreamers only as `policy` allows.
    pub fn with_policy(mut self, policy: DreamerPolicy) -> Local {
        self.policy = Some(policy);
        self
    }

    /// Who issues memory tool calls that name no actor.
    pub fn with_default_actor(mut self, actor: Actor) -> Local {
        self.default_actor = actor;
        self
    }

    /// The memory stores.
    pub fn memory(&self) -> &MemoryStores {
        &self.mem
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.mem.store()
    }

    fn spec(&self, dreamer: Option<&str>, config: Value) -> Result<DreamerSpec> {
        match &self.policy {
            Some(p) => p(dreamer, config),
            None => {
                let mut spec: DreamerSpec = dreamer
                    .unwrap_or(crate::core::dream::evidence::NAME)
                    .parse()
                    .map_err(|e: String| Error::Input { path: "dreamer".into(), line: 0, reason: e })?;
                spec.config = config;
                Ok(spec)
            }
        }
    }

    fn point(&self, at: Option<&str>) -> Result<u64> {
        self.mem.resolve_point(at.unwrap_or("head"))
    }
}

/// Reads a JSON `expect` value: `any`, `no-stream`, `exists` or a version.
fn expectation(stream: &str, v: &Value) -> Result<ExpectedVersion> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    text.parse().map_err(|e: String| Error::Input { path: format!("expect[{stream}]"), line: 0, reason: e })
}

impl Service for Local {
    fn follow(&self) -> Result<tokio::sync::watch::Receiver<u64>> {
        Ok(self.store().watch_len())
    }

    fn tail(&self, from: u64, budget: std::sync::Arc<crate::store::TailBudget>) -> Result<crate::store::Subscription> {
        Ok(self.store().subscribe_within(from, budget))
    }

    fn gauges(&self) -> Result<super::Gauges> {
        let store = self.store();
        Ok(super::Gauges {
            events: store.len(),
            append: store.append_stats(),
            poisoned: store.poisoned(),
            disk_bytes: store.disk_bytes(),
        })
    }

    fn reindex(&self, progress: Box<dyn FnMut(u64) + Send>) -> Result<crate::store::ReindexReport> {
        let r = self.store().reindex(progress);
        // Drift's fold read the indexes just rebuilt: the next request folds them afresh.
        self.drift.clear();
        r
    }

    fn close(&self) -> Result<()> {
        self.store().close()
    }

    fn target(&self) -> String {
        self.name.clone()
    }

    fn info(&self) -> Result<Info> {
        let store = self.store();
        Ok(Info {
            tenant: self.name.clone(),
            events: store.len(),
            max_batch: self.max_batch,
            log_of_record: store.log_of_record().map(|l| l.describe()),
            sync: None,
        })
    }

    fn append(&self, req: &AppendRequest) -> Result<Vec<AppendedEvent>> {
        if req.events.is_empty() {
            return Err(Error::Input { path: "events".into(), line: 0, reason: "no events to append".into() });
        }
        if req.events.len() > self.max_batch {
            return Err(Error::Log(LogError::BatchTooLarge { len: req.events.len(), limit: self.max_batch }));
        }
        let mut batch = AppendBatch::new();
        for (index, v) in req.events.iter().enumerate() {
            let draft = EventJson::from_value(v)
                .map_err(|e| e.to_string())
                .and_then(|j| appendable(j, req.stream.as_deref()))
                .map_err(|reason| Error::EventJson { index, reason })?;
            batch.events.push(draft);
        }
        for (stream, v) in &req.expect {
            batch.expectations.push((stream.clone(), expectation(stream, v)?));
        }
        let streams: Vec<String> = batch.events.iter().map(|d| d.stream.clone()).collect();
        let appended = self.store().append(batch)?;
        Ok(appended
            .into_iter()
            .zip(streams)
            .map(|(a, stream)| AppendedEvent {
                position: a.position,
                id: a.id,
                stream,
                version: a.version,
                existed: a.existed,
            })
            .collect())
    }

    fn append_batch(&self, batch: AppendBatch) -> Result<Vec<Appended>> {
        self.store().append(batch)
    }

    fn events(&self, q: &EventsQuery) -> Result<Vec<StoredEvent>> {
        let limit = q.limit.unwrap_or(usize::MAX);
        match (&q.stream, q.kind) {
            (Some(stream), _) => {
                if self.store().stream_version(stream)?.is_none() {
                    return Err(Error::NotFound(format!("no stream {stream:?}")));
                }
                self.store().read_stream(stream, q.from, limit)
            }
            (None, Some(kind)) => self.store().read_kind(kind, q.from, limit),
            (None, None) => self.store().read_range(q.from, limit),
        }
        .and_then(|mut events| {
            self.store().with_received(&mut events)?;
            Ok(events)
        })
    }

    fn event(&self, id: &str) -> Result<StoredEvent> {
        let id = self.store().resolve_id(id)?;
        let mut e = self.store().get(&id)?;
        e.received = self.store().received(e.position)?;
        Ok(e)
    }

    fn timeline(&self, q: &TimelineQuery) -> Result<TimelinePage> {
        let mut page = crate::timeline::page(self.store(), q)?;
        self.store().with_received(&mut page.events)?;
        Ok(page)
    }

    fn cited_by(&self, id: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let id = self.store().resolve_id(id)?;
        let positions = self.store().cited_by(&id, from, limit)?;
        self.store().get_positions(&positions)
    }

    fn lookup(&self, req: &LookupRequest) -> Result<Lookup> {
        let store = self.store();
        let positions = req.ids.iter().map(|id| store.position_of(id)).collect::<Result<_>>()?;
        let heads = req.streams.iter().map(|s| store.stream_head(s)).collect::<Result<_>>()?;
        Ok((positions, heads))
    }

    fn verify(&self, q: &VerifyQuery, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        if q.deep {
            self.mem.verify_deep(progress)
        } else {
            self.store().verify(progress)
        }
    }

    fn checkpoint(&self, actor: &Actor) -> Result<crate::core::checkpoint::Checkpoint> {
        use crate::core::checkpoint;
        let seed = self.signing_seed.ok_or_else(|| {
            Error::Forbidden(
                "no signing key: create one with `dreamlog keygen FILE`, then `dreamlog checkpoint --key FILE` (or the server config's `checkpoint_key`)"
                    .into(),
            )
        })?;
        let store = self.store();
        let position = store.len();
        let head = match position {
            0 => None,
            n => Some(store.get_at(n - 1)?.id()),
        };
        let heads = store.stream_heads_at(position)?;
        let cp = checkpoint::sign(&seed, position, head, &heads, crate::store::now_ms());
        let json = serde_json::to_value(&cp)
            .map_err(|e| Error::Format(crate::core::FormatError::field("checkpoint", e.to_string())))?;
        let body = crate::core::Body::Note(crate::core::Note {
            note_type: checkpoint::NOTE_TYPE.to_owned(),
            json: crate::core::CanonicalJson::from_value(&json),
        });
        store.append(crate::store::AppendBatch::one(crate::core::Draft::new(
            checkpoint::STREAM,
            actor.clone(),
            body,
        )))?;
        Ok(cp)
    }

    fn verify_checkpoint(&self, req: &CheckpointCheckRequest) -> Result<CheckpointVerdict> {
        let cp = &req.checkpoint;
        if let Some(k) = &req.key {
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::InvalidInput(format!(
                    "trust: {:?} is not an Ed25519 public key (64 hex digits, as `dreamlog keygen` prints)",
                    k.chars().take(80).collect::<String>()
                )));
            }
        }
        let store = self.store();
        let events = store.len();
        let mut problems = Vec::new();
        let signature_ok = match cp.verify_signature(req.key.as_deref()) {
            Ok(()) => true,
            Err(e) => {
                problems.push(e.to_string());
                false
            }
        };
        if events < cp.position {
            problems.push(format!(
                "the log holds {events} events, fewer than the {} the checkpoint covers: events were removed",
                cp.position
            ));
        } else {
            let head = match cp.position {
                0 => None,
                n => Some(store.get_at(n - 1)?.id()),
            };
            problems.extend(cp.differences(head, &store.stream_heads_at(cp.position)?));
        }
        Ok(CheckpointVerdict {
            position: cp.position,
            events,
            signature_ok,
            key_trusted: req.key.is_some(),
            extends: problems.is_empty(),
            problems,
        })
    }

    fn backup(&self, req: &BackupRequest) -> Result<BackupReport> {
        let dir = std::path::Path::new(&req.dir);
        let acknowledged = self.store().backup(dir)?;
        let (events, verify) = super::check_copy(dir, req.deep)?;
        Ok(BackupReport { dir: req.dir.clone(), acknowledged, events, verify })
    }

    fn memory_tool(&self, store: &str, input: &Value, context: &ToolContext) -> Result<ToolAnswer> {
        crate::core::validate::check_store_name("store", store)?;
        let causes = context.causes.iter().map(|c| self.store().resolve_id(c)).collect::<Result<Vec<_>>>()?;
        let call = match ToolCall::parse(input) {
            Ok(c) => c,
            Err(e) => return Ok(ToolAnswer { text: e, error: Some("invalid".into()), recorded: None }),
        };
        match call {
            ToolCall::View { .. } => {
                let (mut state, _) = self.mem.state(store)?;
                Ok(match call.run(&mut state) {
                    Ok(text) => ToolAnswer { text, error: None, recorded: None },
                    Err(e) => ToolAnswer { text: e.message, error: Some(e.kind.name().to_owned()), recorded: None },
                })
            }
            ToolCall::Change(cmd) => {
                let opts = ApplyOptions {
                    actor: context.actor.clone().unwrap_or_else(|| self.default_actor.clone()),
                    session: context.session.clone(),
                    precondition: context.precondition,
                    causes,
                    state: None,
                };
                match self.mem.apply(store, cmd, opts) {
                    Ok(a) => {
                        Ok(ToolAnswer { text: a.text, error: None, recorded: Some((a.event.position, a.event.id)) })
                    }
                    Err(Error::Memory(MemoryError::Tool(e))) => {
                        Ok(ToolAnswer { text: e.message, error: Some(e.kind.name().to_owned()), recorded: None })
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn memory_stores(&self) -> Result<Vec<String>> {
        self.mem.stores()
    }

    fn memory_view(&self, store: &str, q: &ViewQuery) -> Result<MemoryView> {
        let path = q.path.as_deref().unwrap_or(crate::core::memory::ROOT);
        self.mem.view(store, path, q.at.as_deref().unwrap_or("head"), q.range.as_deref())
    }

    fn memory_files(&self, store: &str, q: &PathQuery) -> Result<MemoryFiles> {
        crate::core::validate::check_store_name("store", store)?;
        let until = self.point(q.at.as_deref())?;
        let (state, head) = self.mem.state_until(store, until)?;
        Ok(MemoryFiles {
            version: head.version,
            store: store.to_owned(),
            until,
            state_hash: state.state_hash(),
            files: state.files().iter().map(|(p, f)| (p.clone(), f.text.to_string())).collect(),
            rules: state.rules().number(),
            dirs: match state.rules() {
                crate::core::memory::Rules::V1 => Vec::new(),
                crate::core::memory::Rules::V2 => state.dirs().into_iter().collect(),
            },
        })
    }

    fn memory_history(&self, store: &str, q: &PathQuery) -> Result<Vec<StoredEvent>> {
        let mut events = self.mem.history(store, q.path.as_deref())?;
        self.store().with_received(&mut events)?;
        Ok(events)
    }

    fn memory_diff(&self, store: &str, q: &DiffQuery) -> Result<MemoryDiff> {
        match &q.other {
            Some(other) => {
                let at = self.point(q.at.as_deref())?;
                self.mem.diff(store, at, other, at)
            }
            None => {
                let from = self.point(q.from.as_deref())?;
                let to = self.point(q.to.as_deref())?;
                self.mem.diff(store, from, store, to)
            }
        }
    }

    fn memory_blame(&self, store: &str, q: &PathQuery) -> Result<Vec<BlameLine>> {
        let path = q.path.as_deref().ok_or_else(|| Error::Input {
            path: "path".into(),
            line: 0,
            reason: "blame needs the path of a file".into(),
        })?;
        self.mem.blame(store, path, self.point(q.at.as_deref())?)
    }

    fn memory_lessons(&self, store: &str, q: &PathQuery) -> Result<Vec<LessonRow>> {
        crate::ledger::lessons(&self.mem, store, self.point(q.at.as_deref())?)
    }

    fn memory_revert(&self, store: &str, req: &RevertRequest, actor: &Actor) -> Result<Vec<Appended>> {
        self.mem.refuse_mirror(store, "revert")?;
        self.revert_with(&self.mem, store, req, actor)
    }

    fn memory_revert_dry_run(&self, store: &str, req: &RevertRequest, actor: &Actor) -> Result<Preview> {
        self.mem.dry_run(store, |m| self.revert_with(m, store, req, actor))
    }

    fn memory_fork(&self, store: &str, req: &ForkRequest, actor: &Actor) -> Result<Forked> {
        let until = self.point(req.at.as_deref())?;
        let appended = self.mem.fork(store, &req.new, until, actor.clone())?;
        Ok(Forked { appended, position: until - 1 })
    }

    fn memory_promote(&self, store: &str, req: &PromoteRequest, actor: &Actor) -> Result<Vec<Appended>> {
        self.mem.refuse_mirror(&req.into, "promote")?;
        self.mem.promote(store, &req.into, actor.clone(), req.force)
    }

    fn memory_promote_dry_run(&self, store: &str, req: &PromoteRequest, actor: &Actor) -> Result<Preview> {
        self.mem.dry_run(&req.into, |m| m.promote(store, &req.into, actor.clone(), req.force))
    }

    fn memory_batch(&self, store: &str, req: &BatchRequest, actor: &Actor) -> Result<Vec<Appended>> {
        let opts = ApplyOptions {
            actor: actor.clone(),
            session: req.session.clone(),
            precondition: None,
            causes: Vec::new(),
            state: req.expected_state,
        };
        Ok(self.mem.apply_batch(store, req.commands.clone(), &opts)?.1)
    }

    fn memory_set_rules(&self, store: &str, req: &RulesRequest, actor: &Actor) -> Result<RulesSwitch> {
        let rules = crate::core::memory::Rules::from_number(req.rules).ok_or_else(|| {
            Error::Format(crate::core::FormatError::field(
                "rules",
                format!("memory rules {} do not exist (1 or 2)", req.rules),
            ))
        })?;
        let a = self.mem.set_rules(store, rules, actor.clone())?;
        Ok(RulesSwitch {
            store: store.to_owned(),
            rules: req.rules,
            event: a.as_ref().map(|a| a.id),
            position: a.as_ref().map(|a| a.position),
        })
    }

    fn redact(&self, req: &RedactRequest, actor: &Actor) -> Result<Redacted> {
        use crate::core::redact;
        use crate::service::{RedactKept, RedactedEvent};
        if req.reason.trim().is_empty() {
            return Err(Error::Format(crate::core::FormatError::field("reason", "a redaction says why")));
        }
        let store = self.store();
        let (what, asked) = match (&req.event, &req.session, &req.actor) {
            (Some(event), None, None) => {
                let id = store.resolve_id(event)?;
                (None, vec![store.get(&id)?])
            }
            (None, Some(session), None) => {
                let (id, mut events) = crate::sessions::events(store, session)?;
                store.scan_kind(crate::core::Kind::Memory, 0, |e| {
                    if matches!(&e.event.body, crate::core::Body::Memory(m) if m.session.as_deref() == Some(id.as_str())) {
                        events.push(e);
                    }
                    true
                })?;
                (Some(format!("session {id:?}")), events)
            }
            (None, None, Some(who)) => {
                let who: Actor = who.parse().map_err(Error::Format)?;
                let mut events = Vec::new();
                store.scan(0, |e| {
                    if e.event.header.actor == who && e.event.header.stream != redact::STREAM {
                        events.push(e);
                    }
                    true
                })?;
                (Some(format!("actor {who}")), events)
            }
            _ => {
                return Err(Error::Format(crate::core::FormatError::field(
                    "event",
                    "a redaction names one of: an event, a session or an actor",
                )))
            }
        };
        let mut asked = asked;
        asked.sort_by_key(|e| e.position);
        asked.dedup_by_key(|e| e.position);
        // Stand-ins in log order, each memory command's computed from its store as it
        // will read once the earlier ones stand in (so none copies text another removes).
        let (mut targets, mut already, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        let mut stand_ins: std::collections::HashMap<u64, crate::core::Body> = Default::default();
        for e in &asked {
            let id = e.id();
            if e.redacted {
                already.push(RedactedEvent { target: id, position: e.position, stand_in: e.event.body.to_json() });
                continue;
            }
            let before = match &e.event.body {
                crate::core::Body::Memory(m) => Some(self.mem.fold_standing_in(&m.store, e.position, &stand_ins)?),
                _ => None,
            };
            match redact::stand_in(&e.event.body, before.as_ref()) {
                Ok(stand_in) => {
                    stand_ins.insert(e.position, stand_in.clone());
                    targets.push((id, e.position, stand_in));
                }
                Err(reason) if what.is_none() => return Err(Error::NotRedactable { id: id.to_hex(), reason }),
                Err(reason) => kept.push(RedactKept { id, position: e.position, reason }),
            }
        }
        if targets.is_empty() && already.is_empty() {
            let what = what.unwrap_or_default();
            return Err(Error::InvalidInput(match kept.first() {
                None => format!("{what} has no events: nothing was redacted"),
                Some(k) => format!(
                    "none of the {} events of {what} holds text dreamlog redacts (e.g. event {}: {}): nothing was redacted",
                    kept.len(),
                    k.id,
                    k.reason
                ),
            }));
        }
        let limit = store.options().max_batch_events / 2;
        if targets.len() > limit {
            return Err(Error::InvalidInput(format!(
                "{} holds {} events to redact: more than one atomic write takes ({limit}); nothing was redacted",
                what.unwrap_or_default(),
                targets.len()
            )));
        }
        // Redacted before: the scrub runs again (it may not have finished), nothing is
        // recorded again.
        if !already.is_empty() {
            store.scrub(&already.iter().map(|a| a.position).collect::<Vec<_>>())?;
        }
        let mut drafts = Vec::with_capacity(targets.len() * 2);
        for (id, _, stand_in) in &targets {
            let note = crate::core::Note {
                note_type: redact::STAND_IN_NOTE.to_owned(),
                json: crate::core::CanonicalJson::from_value(&redact::stand_in_json(id, stand_in)),
            };
            let reason = match &what {
                Some(w) => format!("{} (a deletion request: every event of {w})", req.reason),
                None => req.reason.clone(),
            };
            drafts.push(
                crate::core::Draft::new(
                    redact::STREAM,
                    actor.clone(),
                    crate::core::Body::Redact(crate::core::Redact { target: *id, reason }),
                )
                .caused_by(vec![*id]),
            );
            drafts.push(
                crate::core::Draft::new(redact::STREAM, actor.clone(), crate::core::Body::Note(note))
                    .caused_by(vec![*id]),
            );
        }
        let appended = if targets.is_empty() {
            Vec::new()
        } else {
            store.redact_all(&targets.iter().map(|(_, p, b)| (*p, b.clone())).collect::<Vec<_>>(), drafts)?
        };
        let events: Vec<RedactedEvent> = targets
            .iter()
            .map(|(id, position, b)| RedactedEvent { target: *id, position: *position, stand_in: b.to_json() })
            .collect();
        let (first, event, event_position) = match (events.first(), appended.first()) {
            (Some(first), Some(a)) => (first.clone(), a.id, a.position),
            _ => {
                let first = already.first().cloned().ok_or(Error::Log(crate::error::LogError::Closed))?;
                let (event, position) = redaction_of(store, &first.target)?.ok_or_else(|| Error::NotRedactable {
                    id: first.target.to_hex(),
                    reason: "it is redacted, but no redaction of it is recorded".into(),
                })?;
                (first, event, position)
            }
        };
        Ok(Redacted {
            target: first.target,
            position: first.position,
            event,
            event_position,
            stand_in: first.stand_in,
            events: if what.is_some() { events } else { Vec::new() },
            already,
            kept,
        })
    }

    fn tag(&self, req: &TagRequest, actor: &Actor) -> Result<Tagged> {
        let until = self.point(req.at.as_deref())?;
        let a = self.mem.tag(&req.name, until, actor.clone())?;
        Ok(Tagged { position: until - 1, id: a.id, event_position: a.position })
    }

    fn sessions_link(&self, req: &SessionsLinkRequest, actor: &Actor) -> Result<SessionsLinked> {
        if req.sessions.is_empty() {
            return Err(Error::Input { path: "sessions".into(), line: 0, reason: "name at least one session".into() });
        }
        self.mem.require(&req.store)?;
        let until = self.point(req.at.as_deref())?;
        if until == 0 {
            return Err(Error::Memory(crate::error::MemoryError::UnknownPoint("an empty log".into())));
        }
        let (state, _) = self.mem.fold_until(&req.store, until)?;
        let hash = state.state_hash();
        let mut batch = AppendBatch::new();
        let mut ids = Vec::new();
        for given in &req.sessions {
            let (session, events) = crate::sessions::events(self.store(), given)?;
            if ids.contains(&session) {
                continue;
            }
            let start = events.first().map(|e| e.id());
            // Where it came from stays what its earlier link said.
            let source = crate::sessions::link(self.store(), &session)?.and_then(|l| l.source);
            let link = crate::core::Body::SessionLink(crate::core::SessionLink {
                session: session.clone(),
                store: Some(req.store.clone()),
                memory_state: Some(hash),
                source,
                meta: Some(crate::core::CanonicalJson::from_value(&serde_json::json!({"at": until - 1}))),
            });
            batch.events.push(
                crate::core::Draft::new(crate::core::streams::session_link(&session), actor.clone(), link)
                    .caused_by(start.into_iter().collect()),
            );
            ids.push(session);
        }
        let appended = self.store().append(batch)?;
        Ok(SessionsLinked {
            store: req.store.clone(),
            position: until - 1,
            memory_state: hash,
            linked: ids
                .into_iter()
                .zip(appended)
                .map(|(session, a)| LinkedSession { session, id: a.id, position: a.position })
                .collect(),
        })
    }

    fn sessions(&self) -> Result<Vec<SessionSummary>> {
        crate::sessions::list(self.store())
    }

    fn sessions_page(&self, q: &crate::sessions::SessionsQuery) -> Result<crate::sessions::SessionsPage> {
        crate::sessions::page(self.store(), q)
    }

    fn session_stats(&self) -> Result<Stats> {
        Ok(crate::sessions::stats(&crate::sessions::list(self.store())?))
    }

    fn session(&self, id: &str) -> Result<SessionDetail> {
        crate::sessions::detail(&self.mem, id)
    }

    fn drift(&self, store: &str, q: &DriftQuery) -> Result<DriftReport> {
        let mut opts = crate::ledger::DriftOptions::default();
        if let Some(n) = q.resamples {
            if n == 0 || n > MAX_RESAMPLES {
                return Err(Error::Input {
                    path: "resamples".into(),
                    line: 0,
                    reason: format!("resamples {n} is outside 1..={MAX_RESAMPLES}"),
                });
            }
            opts.resamples = n;
        }
        if let Some(n) = q.min_sessions {
            opts.min_sessions = n;
        }
        self.drift.drift(&self.mem, store, opts)
    }

    fn dreams(&self) -> Result<Vec<DreamSummary>> {
        self.dreams.list(None)
    }

    fn dream(&self, id: &str) -> Result<DreamDetail> {
        self.dreams.show(&self.store().resolve_id(id)?)
    }

    fn dream_run(&self, req: &DreamRequest) -> Result<DreamRun> {
        self.dream_run_with(req, Vec::new(), None)
    }

    fn dream_replay(&self, id: &str, req: &ReplayRequest) -> Result<Replay> {
        let id = self.store().resolve_id(id)?;
        let spec = match (&req.dreamer, &req.config, &self.policy) {
            (None, None, _) => None,
            (dreamer, config, None) => {
                let dreamer = match dreamer {
                    Some(d) => Some(d.parse::<DreamerSpec>().map_err(|e| Error::Input {
                        path: "dreamer".into(),
                        line: 0,
                        reason: e,
                    })?),
                    None => None,
                };
                self.dreams.replay_spec(&id, dreamer, config.clone())?
            }
            // Through a policy, a config alone re-runs the recorded dreamer with it: named
            // by its recorded name, so it resolves like any request.
            (dreamer, config, Some(policy)) => {
                let name = match dreamer {
                    Some(d) => d.clone(),
                    None => self.dreams.replay_spec(&id, None, Some(Value::Null))?.map(|s| s.name).unwrap_or_default(),
                };
                Some(policy(Some(&name), config.clone().unwrap_or(Value::Null))?)
            }
        };
        self.dreams.replay(&id, spec.as_ref())
    }

    fn export(&self, from: u64, out: &mut dyn std::io::Write, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        crate::exchange::export(self.store(), from, out, progress)
    }

    fn principals(&self, q: &PrincipalsQuery) -> Result<Principals> {
        let mut by: std::collections::BTreeMap<String, (PrincipalSummary, BTreeSet<String>)> = Default::default();
        let mut receipted = 0u64;
        let limit = q.limit.unwrap_or(100);
        let mut batches: std::collections::VecDeque<crate::core::receipt::Received> = Default::default();
        self.store().receipts(0, |position, r| {
            receipted += r.count;
            let (sum, roles) = by.entry(r.principal.name.clone()).or_insert_with(|| {
                let first = PrincipalSummary {
                    name: r.principal.name.clone(),
                    roles: String::new(),
                    batches: 0,
                    events: 0,
                    first_position: position,
                    first_at: r.received_at,
                    last_position: position,
                    last_at: r.received_at,
                };
                (first, BTreeSet::new())
            });
            sum.batches += 1;
            sum.events += r.count;
            sum.last_position = position;
            sum.last_at = r.received_at;
            roles.insert(r.principal.role.clone());
            if q.name.as_deref() == Some(r.principal.name.as_str()) {
                batches.push_front(r.received(position));
                batches.truncate(limit);
            }
            true
        })?;
        if let Some(name) = &q.name {
            if !by.contains_key(name) {
                return Err(Error::NotFound(format!("no batch was written by principal {name:?}")));
            }
        }
        Ok(Principals {
            principals: by
                .into_values()
                .map(|(mut s, roles)| {
                    s.roles = roles.into_iter().collect::<Vec<_>>().join(",");
                    s
                })
                .collect(),
            unreceipted_events: self.store().len().saturating_sub(receipted),
            batches: q.name.as_ref().map(|_| batches.into_iter().collect()),
        })
    }
}

/// An event of an append request as a draft. What only the store can say is refused,
/// never silently dropped: `position`, `version` and `received` (who wrote it); an `id`
/// is checked against the one the event's time and parents give (so it needs both).
fn appendable(j: EventJson, stream: Option<&str>) -> std::result::Result<crate::core::Draft, String> {
    for (field, given) in [("position", j.position.is_some()), ("version", j.version.is_some())] {
        if given {
            return Err(format!("{field}: the store assigns it; leave it out of an append"));
        }
    }
    if j.received.is_some() {
        return Err("received: who wrote an event is the store's receipt, never an input; leave it out".into());
    }
    let claimed = j.id;
    let (time, parents) = (j.time, j.parents.clone());
    let draft = j.into_draft(stream).map_err(|e| e.to_string())?;
    if let Some(id) = claimed {
        let (Some(time), Some(parents)) = (time, parents) else {
            return Err(
                "id: an id can only be checked against an event that gives its time and parents (the store stamps them otherwise); leave it out, or give both"
                    .into(),
            );
        };
        let sealed = draft.seal(time, parents).map_err(|e| e.to_string())?;
        if sealed.id != id {
            return Err(format!("id: {id} is not this event's id; its content hashes to {}", sealed.id));
        }
    }
    Ok(draft)
}

/// The `redact` event that recorded the redaction of `target` (its id and position).
fn redaction_of(store: &Store, target: &EventId) -> Result<Option<(EventId, u64)>> {
    Ok(store.read_stream(crate::core::redact::STREAM, 0, usize::MAX)?.into_iter().find_map(|e| match &e.event.body {
        crate::core::Body::Redact(r) if r.target == *target => Some((e.id(), e.position)),
        _ => None,
    }))
}
