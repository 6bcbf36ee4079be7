//! Dreams: run a dreamer over a slice of the log, record it, list and show dreams, and
//! replay them as regression tests.
//!
//! A dream is one atomic batch on the output store's stream: (for a fork) the
//! `store.fork`, then every `llm.exchange` the dreamer had, then the `dream` event
//! (citing the exchanges), then its memory commands, each citing the dream first and its
//! evidence after. Nothing is written when the dreamer fails or its output does not
//! apply. The dream event fixes the input: store and base state hash, log range,
//! dreamer name, version and effective config; replay rebuilds the same input from the
//! log and compares the dreamer's output with what was committed.

pub mod exec;
pub mod llm;

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};

use crate::core::dream::evidence::{self, EvidenceConfig};
use crate::core::dream::evidence2::{self, EvidenceConfigV2};
use crate::core::dream::{check_plan, DreamInput, DreamerSpec, Evidence, Planned, SessionInput};
use crate::core::dream::{Sources, Trial};
use crate::core::memory::{diff_states, MemoryDiff, MemoryState};
use crate::core::streams::session as session_stream;
use crate::core::{
    Actor, Body, CanonicalJson, Digest, Draft, Dream, EventId, Kind, LlmExchange, MemoryCommand, StoreFork,
};
use crate::error::{DreamError, LogError, MemoryError};
use crate::error::{Error, Result};
use crate::memory::{stream_name, MemoryStores};
use crate::store::{AppendBatch, Appended, ExpectedVersion, Store, StoredEvent};

/// What a dreamer produced.
#[derive(Clone, Debug, Default)]
pub struct DreamerOutput {
    /// Memory commands with their evidence.
    pub commands: Vec<Planned>,
    /// Model exchanges, in order (recorded before the commands).
    pub exchanges: Vec<LlmExchange>,
    /// Dreamer-specific summary for the dream event's meta.
    pub summary: Value,
}

/// A dreamer: a deterministic function of its input, its version and its config (the
/// llm dreamer is made deterministic by replaying its recorded exchanges).
pub trait Dreamer {
    /// Name.
    fn name(&self) -> &str;
    /// Version.
    fn version(&self) -> &str;
    /// The effective configuration (defaults filled in), as recorded.
    fn config(&self) -> Value;
    /// Runs over `input`. `recorded` holds a replayed dream's exchanges: a dreamer that
    /// talks to a model must answer from them and never call out.
    fn dream(&self, input: &DreamInput, recorded: Option<&[LlmExchange]>) -> Result<DreamerOutput>;
    /// The input format it reads (`core::dream::INPUT_FORMATS`): 1, the sessions graded in
    /// the dream's range; 2, also the whole graded history as per-task trials.
    fn input_format(&self) -> u32 {
        1
    }
}

fn dreamer_error(spec: &str, reason: impl Into<String>) -> Error {
    Error::Dream(DreamError::Dreamer { dreamer: spec.to_owned(), reason: reason.into() })
}

/// The built-in deterministic dreamer.
pub struct EvidenceDreamer {
    cfg: EvidenceConfig,
}

impl Dreamer for EvidenceDreamer {
    fn name(&self) -> &str {
        evidence::NAME
    }
    fn version(&self) -> &str {
        evidence::VERSION
    }
    fn config(&self) -> Value {
        serde_json::to_value(&self.cfg).unwrap_or(Value::Null)
    }
    fn dream(&self, input: &DreamInput, _: Option<&[LlmExchange]>) -> Result<DreamerOutput> {
        let (commands, summary) = evidence::dream(input, &self.cfg);
        Ok(DreamerOutput {
            commands,
            exchanges: Vec::new(),
            summary: serde_json::to_value(summary).unwrap_or_default(),
        })
    }
}

/// The built-in deterministic dreamer, versions 2 and 3 (the default): the same rules,
/// with the graders read as the version says (`cfg.rules.reading`).
pub struct EvidenceDreamerV2 {
    cfg: EvidenceConfigV2,
}

impl Dreamer for EvidenceDreamerV2 {
    fn name(&self) -> &str {
        evidence::NAME
    }
    fn version(&self) -> &str {
        match self.cfg.rules.reading {
            crate::core::dream::lessons::Reading::V2 => evidence2::VERSION,
            crate::core::dream::lessons::Reading::V3 => evidence2::VERSION3,
        }
    }
    fn config(&self) -> Value {
        serde_json::to_value(&self.cfg).unwrap_or(Value::Null)
    }
    fn input_format(&self) -> u32 {
        2
    }
    fn dream(&self, input: &DreamInput, _: Option<&[LlmExchange]>) -> Result<DreamerOutput> {
        let (commands, summary) = evidence2::dream(input, &self.cfg);
        Ok(DreamerOutput {
            commands,
            exchanges: Vec::new(),
            summary: serde_json::to_value(summary).unwrap_or_default(),
        })
    }
}

/// The dreamers this build has: `evidence@3` (the default version), `evidence@2`, `evidence@1`,
/// `llm@1`, `exec` (any version: the version names the external program's own).
pub fn dreamer_for(spec: &DreamerSpec) -> Result<Box<dyn Dreamer>> {
    let config = |v: &Value| if v.is_null() { json!({}) } else { v.clone() };
    let check_version = |current: &str| match &spec.version {
        Some(v) if v != current => Err(dreamer_error(
            &spec.to_string(),
            format!("this build has {}@{current}; version {v} is not available", spec.name),
        )),
        _ => Ok(()),
    };
    match spec.name.as_str() {
        evidence::NAME => match spec.version.as_deref() {
            Some(evidence::VERSION) => {
                let cfg: EvidenceConfig = serde_json::from_value(config(&spec.config))
                    .map_err(|e| dreamer_error(&spec.to_string(), format!("bad config: {e}")))?;
                Ok(Box::new(EvidenceDreamer { cfg }))
            }
            v @ (None | Some(evidence2::VERSION) | Some(evidence2::VERSION3)) => {
                let mut cfg = EvidenceConfigV2::from_value(&config(&spec.config))
                    .map_err(|e| dreamer_error(&spec.to_string(), format!("bad config: {e}")))?;
                if v != Some(evidence2::VERSION) {
                    cfg.rules.reading = crate::core::dream::lessons::Reading::V3;
                }
                Ok(Box::new(EvidenceDreamerV2 { cfg }))
            }
            Some(v) => Err(dreamer_error(
                &spec.to_string(),
                format!("this build has evidence@1, evidence@2 and evidence@3; version {v} is not available"),
            )),
        },
        llm::NAME => {
            check_version(llm::VERSION)?;
            Ok(Box::new(llm::LlmDreamer::from_config(&config(&spec.config))?))
        }
        exec::NAME => Ok(Box::new(exec::ExecDreamer::from_config(
            spec.version.clone().unwrap_or_else(|| "1".into()),
            &config(&spec.config),
        )?)),
        other => Err(dreamer_error(other, "unknown dreamer (this build has evidence, llm and exec)")),
    }
}

/// Options of `dream run`.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// First global position to read (default: after the last dream of this dreamer
    /// already folded into the store, or 0).
    pub since: Option<u64>,
    /// The output store (default: a new fork `STORE.dream-N`).
    pub into: Option<String>,
    /// Write into the input store itself.
    pub in_place: bool,
    /// Dream over a store that has no event yet (by default such a store is refused as a
    /// typo).
    pub create: bool,
    /// Read only these sessions (recorded in the dream's `meta.selected_sessions`, so a
    /// replay reads the same); `None`: every graded session of the range.
    pub sessions: Option<std::collections::BTreeSet<String>>,
    /// Notes appended to the output stream after the commands, in the dream's batch.
    pub notes: Vec<crate::core::Note>,
    /// Set by another thread to stop the dream: checked before anything is written, so a
    /// canceled dream writes nothing.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Dream even when an earlier dream of the same dreamer and config read exactly this
    /// input into a fork that is still there (by default that is refused: it would write
    /// the same fork again).
    pub again: bool,
}

/// A committed dream.
#[derive(Clone, Debug)]
pub struct DreamRun {
    /// The dream event's id.
    pub id: EventId,
    /// Its position.
    pub position: u64,
    /// The recorded dream.
    pub dream: Dream,
    /// Graded sessions read.
    pub sessions: usize,
    /// Memory commands written.
    pub commands: usize,
    /// Model exchanges recorded.
    pub exchanges: usize,
}

/// A dream as listed.
#[derive(Clone, Debug, Serialize)]
pub struct DreamSummary {
    /// Dream event id.
    pub id: EventId,
    /// Its position.
    pub position: u64,
    /// Its time (ms).
    pub time: u64,
    /// The dream.
    #[serde(flatten)]
    pub dream: Dream,
}

/// One event cited as evidence, summarised.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct EvidenceRef {
    /// Event id.
    pub id: EventId,
    /// Its kind.
    pub kind: Kind,
    /// Its session, for session events.
    pub session: Option<String>,
    /// A grade's score.
    pub score: Option<f64>,
    /// A grade's result.
    pub result: Option<String>,
}

/// One command a dream wrote, with its evidence.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Lesson {
    /// The memory event.
    pub id: EventId,
    /// Its position.
    pub position: u64,
    /// The command.
    pub input: MemoryCommand,
    /// The evidence it cites.
    pub evidence: Vec<EvidenceRef>,
}

/// `dream show`.
#[derive(Clone, Debug, Serialize)]
pub struct DreamDetail {
    /// The dream.
    #[serde(flatten)]
    pub summary: DreamSummary,
    /// Model exchanges it recorded.
    pub exchanges: Vec<EventId>,
    /// What it wrote.
    pub lessons: Vec<Lesson>,
}

/// The result of replaying one dream.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Replay {
    /// The dream replayed.
    pub id: EventId,
    /// The dreamer it was recorded with.
    pub recorded: String,
    /// The dreamer replayed (the same, or another version or config).
    pub replayed: String,
    /// True when replayed with the recorded dreamer, version and config.
    pub same_dreamer: bool,
    /// The commands are identical (same dreamer) or lead to the same memory (another).
    pub identical: bool,
    /// Commands committed and commands replayed.
    pub committed: usize,
    /// Commands the replay produced.
    pub produced: usize,
    /// Line diff of the two command lists (JSON, one command per line) when they differ.
    pub command_diff: Option<String>,
    /// How the resulting memory differs (replayed against committed).
    pub memory_diff: MemoryDiff,
    /// The lesson diff: a unified diff of every file that differs, committed against
    /// replayed (empty when the memory is the same).
    pub lesson_diff: String,
}

/// Whether a dream can be replayed here: not one recorded from elsewhere (its `meta`
/// says `"replayable": false`, as `sync anthropic` records hosted dreams).
pub fn replayable(d: &Dream) -> bool {
    d.meta.as_ref().and_then(|m| m.to_value().get("replayable").and_then(Value::as_bool)) != Some(false)
}

/// A unified diff of every file that differs between two states.
pub fn lesson_diff(a: &MemoryState, b: &MemoryState) -> String {
    let mut paths: Vec<&String> = a.files().keys().chain(b.files().keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out = String::new();
    for p in paths {
        let (x, y) =
            (a.file(p).map(|f| f.text.as_ref()).unwrap_or(""), b.file(p).map(|f| f.text.as_ref()).unwrap_or(""));
        if x != y || a.file(p).is_some() != b.file(p).is_some() {
            let old = if a.file(p).is_some() { format!("committed{p}") } else { "/dev/null".into() };
            let new = if b.file(p).is_some() { format!("replayed{p}") } else { "/dev/null".into() };
            out.push_str(&similar::TextDiff::from_lines(x, y).unified_diff().header(&old, &new).to_string());
        }
    }
    out
}

/// Splits a JSON object holding a dream's fields flattened with others: the `Dream`
/// (whose own fields are strict) and the rest.
fn split_dream<E: serde::de::Error>(
    v: Value,
    others: &[&str],
) -> std::result::Result<(Dream, serde_json::Map<String, Value>), E> {
    let Value::Object(mut map) = v else { return Err(E::custom("expected an object")) };
    let mut rest = serde_json::Map::new();
    for k in others {
        if let Some(x) = map.remove(*k) {
            rest.insert((*k).to_owned(), x);
        }
    }
    let dream: Dream = serde_json::from_value(Value::Object(map)).map_err(E::custom)?;
    Ok((dream, rest))
}

fn field<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    rest: &mut serde_json::Map<String, Value>,
    key: &str,
) -> std::result::Result<T, E> {
    serde_json::from_value(rest.remove(key).unwrap_or(Value::Null)).map_err(|e| E::custom(format!("{key}: {e}")))
}

impl<'de> serde::Deserialize<'de> for DreamSummary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (dream, mut rest) = split_dream(Value::deserialize(d)?, &["id", "position", "time"])?;
        Ok(DreamSummary {
            id: field(&mut rest, "id")?,
            position: field(&mut rest, "position")?,
            time: field(&mut rest, "time")?,
            dream,
        })
    }
}

impl<'de> serde::Deserialize<'de> for DreamDetail {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (dream, mut rest) =
            split_dream(Value::deserialize(d)?, &["id", "position", "time", "exchanges", "lessons"])?;
        Ok(DreamDetail {
            summary: DreamSummary {
                id: field(&mut rest, "id")?,
                position: field(&mut rest, "position")?,
                time: field(&mut rest, "time")?,
                dream,
            },
            exchanges: field(&mut rest, "exchanges")?,
            lessons: field(&mut rest, "lessons")?,
        })
    }
}

/// The JSON form `dream run --json` prints and `POST /v1/dreams` answers
/// (schemas/dream-run.schema.json): the dream's fields with `id`, `position` and the
/// counts.
impl serde::Serialize for DreamRun {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut v = serde_json::to_value(&self.dream).map_err(S::Error::custom)?;
        let Some(fields) = v.as_object_mut() else {
            return Err(S::Error::custom("a dream's form is not an object"));
        };
        fields.insert("id".into(), json!(self.id));
        fields.insert("position".into(), json!(self.position));
        fields.insert("sessions".into(), json!(self.sessions));
        fields.insert("commands".into(), json!(self.commands));
        fields.insert("exchanges".into(), json!(self.exchanges));
        v.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for DreamRun {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (dream, mut rest) =
            split_dream(Value::deserialize(d)?, &["id", "position", "sessions", "commands", "exchanges"])?;
        Ok(DreamRun {
            id: field(&mut rest, "id")?,
            position: field(&mut rest, "position")?,
            sessions: field(&mut rest, "sessions")?,
            commands: field(&mut rest, "commands")?,
            exchanges: field(&mut rest, "exchanges")?,
            dream,
        })
    }
}

/// What [`Dreams::collect`] read.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// The sessions graded in range.
    pub sessions: Vec<SessionInput>,
    /// With history: every graded session up to the range's end.
    pub trials: Vec<Trial>,
    /// With history: the tasks' texts.
    pub tasks: std::collections::BTreeMap<String, String>,
}

/// Dream operations over a store.
#[derive(Clone)]
pub struct Dreams {
    mem: MemoryStores,
}

impl Dreams {
    /// Dream operations over `mem`'s store.
    pub fn new(mem: MemoryStores) -> Dreams {
        Dreams { mem }
    }

    fn store(&self) -> &Store {
        self.mem.store()
    }

    /// The graded sessions of `[from, to]` with everything of theirs up to `to`.
    pub fn collect_sessions(&self, from: u64, to: u64) -> Result<Vec<SessionInput>> {
        Ok(self.collect(from, to, false)?.sessions)
    }

    /// The graded sessions of `[from, to]` (`sessions`) and, with `history`, every graded
    /// session up to `to` as a trial, with the tasks' texts.
    pub fn collect(&self, from: u64, to: u64, history: bool) -> Result<Collected> {
        let store = self.store();
        // Sessions in the order of their last grade; whether one lies in range.
        let mut order: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut in_range: HashMap<String, bool> = HashMap::new();
        let mut loose: HashMap<String, Vec<StoredEvent>> = HashMap::new();
        store.scan_kind(Kind::Grade, if history { 0 } else { from }, |e| {
            if e.position > to {
                return false;
            }
            let Body::Grade(g) = &e.event.body else { return true };
            let s = g.session.clone();
            if let Some(i) = index.remove(&s) {
                order[i].clear();
            }
            index.insert(s.clone(), order.len());
            order.push(s.clone());
            *in_range.entry(s.clone()).or_default() |= e.position >= from;
            loose.entry(s).or_default().push(e);
            true
        })?;
        let mut out = Collected::default();
        for s in order.into_iter().filter(|s| !s.is_empty()) {
            let events = store.read_stream(&session_stream(&s), 0, usize::MAX)?;
            let events: Vec<StoredEvent> = if events.is_empty() {
                // Grades recorded outside a session stream: the dreamer sees just them.
                loose.remove(&s).unwrap_or_default()
            } else {
                events.into_iter().filter(|e| e.position <= to).collect()
            };
            let mut si =
                SessionInput { session: s.clone(), start: None, actions: Vec::new(), grades: Vec::new(), end: None };
            let mut sources = Sources::default();
            for e in events {
                let (id, position) = (e.id(), e.position);
                let actor = e.event.header.actor.to_string();
                match e.event.body {
                    Body::SessionStart(b) if b.session == s => {
                        sources.agent = b.agent.clone();
                        sources.origin = b.source.clone().unwrap_or(actor);
                        si.start = Some(Evidence { id, position, body: b })
                    }
                    Body::Action(b) if b.session == s => si.actions.push(Evidence { id, position, body: b }),
                    Body::Grade(b) if b.session == s => {
                        sources.grader = actor;
                        si.grades.push(Evidence { id, position, body: b })
                    }
                    Body::SessionEnd(b) if b.session == s => si.end = Some(Evidence { id, position, body: b }),
                    _ => {}
                }
            }
            if history {
                // The importer and file, from the session's link (imports since links).
                let links = store.read_stream(&crate::core::streams::session_link(&s), 0, usize::MAX)?;
                if let Some(src) = links.iter().rev().filter(|e| e.position <= to).find_map(|e| match &e.event.body {
                    Body::SessionLink(l) => l.source.clone(),
                    _ => None,
                }) {
                    sources.origin = src;
                }
                sources.origin = origin_file(&sources.origin).to_owned();
                if let (Some(id), Some(text)) = (si.task_id(), si.start.as_ref().and_then(|st| st.body.task.as_ref())) {
                    out.tasks.entry(id.to_owned()).or_insert_with(|| text.clone());
                }
                if let Some(t) = Trial::of(&si, sources) {
                    out.trials.push(t);
                }
            }
            if in_range.get(&s).copied().unwrap_or(false) {
                out.sessions.push(si);
            }
        }
        Ok(out)
    }

    /// The first position a new dream of `dreamer` over `store` reads by default: after
    /// the last dream of that dreamer whose output is part of the store (written in
    /// place, or promoted from its fork), following the store back through forks.
    pub fn default_since(&self, store: &str, dreamer: &str) -> Result<u64> {
        let mut best: Option<u64> = None;
        let mut checked: HashMap<EventId, Option<u64>> = HashMap::new();
        let mut name = store.to_owned();
        let mut until = u64::MAX;
        loop {
            let events = self.store().read_stream(&stream_name(&name), 0, usize::MAX)?;
            let mut next = None;
            for e in events.iter().filter(|e| e.position < until) {
                let mut consider = |d: &Dream| {
                    if d.dreamer == dreamer {
                        best = best.max(Some(d.to_position + 1));
                    }
                };
                match &e.event.body {
                    Body::Dream(d) => consider(d),
                    Body::StoreFork(f) if e.version == 0 => next = Some((f.source.clone(), f.position + 1)),
                    Body::Memory(_) => {
                        let Some(first) = e.event.header.causes.first() else { continue };
                        let to = match checked.get(first) {
                            Some(v) => *v,
                            None => {
                                let v = match self.store().get(first) {
                                    Ok(c) => match &c.event.body {
                                        Body::Dream(d) if d.dreamer == dreamer => Some(d.to_position + 1),
                                        _ => None,
                                    },
                                    Err(Error::NotFound(_)) => None,
                                    Err(err) => return Err(err),
                                };
                                checked.insert(*first, v);
                                v
                            }
                        };
                        best = best.max(to);
                    }
                    _ => {}
                }
            }
            match next {
                Some((source, at)) => {
                    name = source;
                    until = at;
                }
                None => break,
            }
        }
        Ok(best.unwrap_or(0))
    }

    /// The input of a dream of `d` over `store` whose memory was `base`, reading the
    /// graded sessions of positions `from..=to` (none when `from > to`). Run and replay
    /// both build it here, so a replay reads exactly what the run read.
    fn input(
        &self,
        store: &str,
        base: &MemoryState,
        (from, to): (u64, u64),
        selected: Option<&std::collections::BTreeSet<String>>,
        d: &dyn Dreamer,
    ) -> Result<DreamInput> {
        let format = d.input_format();
        if !crate::core::dream::INPUT_FORMATS.contains(&format) {
            return Err(dreamer_error(d.name(), format!("input format {format} is not one this build has (1 or 2)")));
        }
        let Collected { mut sessions, mut trials, mut tasks } =
            if from <= to { self.collect(from, to, format >= 2)? } else { Collected::default() };
        if let Some(keep) = selected {
            sessions.retain(|s| keep.contains(&s.session));
            trials.retain(|t| keep.contains(&t.session));
            let used: std::collections::BTreeSet<&str> = trials.iter().filter_map(|t| t.task.as_deref()).collect();
            tasks.retain(|k, _| used.contains(k.as_str()));
        }
        Ok(DreamInput {
            dreamer: d.name().to_owned(),
            version: d.version().to_owned(),
            config: d.config(),
            store: store.to_owned(),
            base_state: base.state_hash(),
            from_position: from,
            to_position: to,
            memory: base.files().iter().map(|(p, f)| (p.clone(), f.text.to_string())).collect(),
            memory_rules: base.rules().number(),
            memory_dirs: base.empty_dirs().cloned().collect(),
            sessions,
            format,
            trials,
            tasks,
        })
    }

    fn free_fork_name(&self, store: &str) -> Result<String> {
        for n in 1u64.. {
            let name = format!("{store}.dream-{n}");
            if self.store().stream_version(&stream_name(&name))?.is_none() {
                return Ok(name);
            }
        }
        unreachable!("some fork name is free")
    }

    /// `--since`: `None` (after the last dream), `start` (the whole log), or a point
    /// (the log after it).
    pub fn resolve_since(&self, since: Option<&str>) -> Result<Option<u64>> {
        match since {
            None => Ok(None),
            Some("start") => Ok(Some(0)),
            Some(p) => Ok(Some(self.mem.resolve_point(p)?)),
        }
    }

    /// The dreamer a replay of dream `id` runs when given another `dreamer` and/or
    /// `config` (`None` when given neither: the recorded one). Another version of the
    /// same dreamer keeps the recorded config when it takes it, else runs with its own
    /// defaults (evidence@1 does not share the others' config fields).
    pub fn replay_spec(
        &self,
        id: &EventId,
        dreamer: Option<DreamerSpec>,
        config: Option<Value>,
    ) -> Result<Option<DreamerSpec>> {
        if dreamer.is_none() && config.is_none() {
            return Ok(None);
        }
        let (_, recorded) = self.dream_event(id)?;
        let mut spec = dreamer.unwrap_or(DreamerSpec {
            name: recorded.dreamer.clone(),
            version: Some(recorded.version.clone()),
            config: Value::Null,
        });
        spec.config = match config {
            Some(c) => c,
            None if spec.name == recorded.dreamer => {
                // The recorded config, when this version takes it.
                let with_recorded = DreamerSpec { config: recorded.config.to_value(), ..spec.clone() };
                if dreamer_for(&with_recorded).is_ok() {
                    with_recorded.config
                } else {
                    Value::Null
                }
            }
            None => Value::Null,
        };
        Ok(Some(spec))
    }

    /// Runs a dreamer over `store` and commits its output (by default into a new fork).
    pub fn run(&self, store: &str, spec: &DreamerSpec, opts: &RunOptions) -> Result<DreamRun> {
        let started = Instant::now();
        // A store with no event yet (`--create`): the dream's fork is its first memory.
        let created = match self.mem.require(store) {
            Ok(_) => false,
            Err(e) if !opts.create => return Err(e),
            Err(_) => true,
        };
        let dreamer = dreamer_for(spec)?;
        let until = self.store().len();
        if until == 0 {
            return Err(Error::Memory(MemoryError::UnknownPoint("an empty log".into())));
        }
        let from = match opts.since {
            Some(p) => p,
            None => self.default_since(store, dreamer.name())?,
        };
        let (base, head) = self.mem.fold_until(store, until)?;
        let input = self.input(store, &base, (from, until - 1), opts.sessions.as_ref(), dreamer.as_ref())?;
        if input.sessions.is_empty() {
            return Err(Error::Dream(DreamError::NothingToDream { store: store.to_owned(), from }));
        }
        let digest = input.digest();
        if !opts.again && !opts.in_place && opts.into.is_none() {
            if let Some(same) = self.same_input(store, &digest)? {
                return Err(Error::Dream(DreamError::SameInput {
                    store: store.to_owned(),
                    dream: same.id.to_hex(),
                    fork: same.dream.output_store,
                }));
            }
        }
        let label = format!("{}@{}", dreamer.name(), dreamer.version());
        let mut out = dreamer.dream(&input, None)?;
        let canceled = || opts.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::SeqCst));
        if canceled() {
            return Err(Error::Dream(DreamError::Canceled { store: store.to_owned() }));
        }
        let known: std::collections::HashSet<EventId> = input.evidence_ids().collect();
        let result = check_plan(&base, &mut out.commands, |c| known.contains(c))
            .map_err(|e| dreamer_error(&label, format!("its output does not apply: {e}")))?;

        let out_store = if opts.in_place {
            store.to_owned()
        } else {
            match &opts.into {
                Some(n) => n.clone(),
                None => self.free_fork_name(store)?,
            }
        };
        let stream = stream_name(&out_store);
        let actor = Actor::Dreamer { name: dreamer.name().to_owned(), version: dreamer.version().to_owned() };
        let time = now_ms();
        let mut drafts: Vec<Draft> = Vec::new();
        let (expected, mut parent) = if opts.in_place {
            match head {
                crate::memory::StoreHead { version: Some(v), position: Some(p) } => {
                    (ExpectedVersion::Exact(v), Some(self.store().get_at(p)?.id()))
                }
                _ => (ExpectedVersion::NoStream, None),
            }
        } else {
            if self.store().stream_version(&stream)?.is_some() {
                return Err(Error::Memory(MemoryError::StoreExists(out_store)));
            }
            (ExpectedVersion::NoStream, None)
        };
        let mut chain = |draft: Draft, drafts: &mut Vec<Draft>| -> Result<EventId> {
            let sealed = draft.seal(time, parent.into_iter().collect())?;
            let id = sealed.id;
            drafts.push(draft.at(time).with_parents(parent.into_iter().collect()));
            parent = Some(id);
            Ok(id)
        };
        if !opts.in_place {
            let fork =
                Body::StoreFork(StoreFork { store: out_store.clone(), source: store.to_owned(), position: until - 1 });
            chain(Draft::new(stream.clone(), actor.clone(), fork), &mut drafts)?;
        }
        let mut exchange_ids = Vec::new();
        for x in &out.exchanges {
            exchange_ids
                .push(chain(Draft::new(stream.clone(), actor.clone(), Body::LlmExchange(x.clone())), &mut drafts)?);
        }
        let mut meta = json!({
            "input_digest": digest.to_hex(),
            "sessions": input.sessions.len(),
            "commands": out.commands.len(),
            "exchanges": out.exchanges.len(),
            "summary": out.summary,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        });
        if let Some(selected) = &opts.sessions {
            meta["selected_sessions"] = json!(selected);
        }
        if created {
            meta["input_store_created"] = json!(true);
        }
        let dream = Dream {
            dreamer: dreamer.name().to_owned(),
            version: dreamer.version().to_owned(),
            config: CanonicalJson::from_value(&input.config),
            store: store.to_owned(),
            base_state: input.base_state,
            from_position: from,
            to_position: until - 1,
            output_store: out_store.clone(),
            result_state: result.state_hash(),
            meta: Some(CanonicalJson::from_value(&meta)),
        };
        let dream_id = chain(
            Draft::new(stream.clone(), actor.clone(), Body::Dream(dream.clone())).caused_by(exchange_ids),
            &mut drafts,
        )?;
        for p in &out.commands {
            let body = Body::Memory(crate::core::Memory {
                store: out_store.clone(),
                command: p.input.clone(),
                precondition: None,
                session: None,
            });
            let causes = std::iter::once(dream_id).chain(p.causes.iter().copied()).collect();
            chain(Draft::new(stream.clone(), actor.clone(), body).caused_by(causes), &mut drafts)?;
        }
        for n in &opts.notes {
            chain(Draft::new(stream.clone(), actor.clone(), Body::Note(n.clone())), &mut drafts)?;
        }
        if canceled() {
            return Err(Error::Dream(DreamError::Canceled { store: store.to_owned() }));
        }
        let mut batch = AppendBatch::new().expect(stream, expected);
        batch.events = drafts;
        let appended = match self.store().append(batch) {
            Ok(a) => a,
            Err(Error::Log(LogError::WrongExpectedVersion { .. })) if opts.in_place => {
                return Err(dreamer_error(
                    &label,
                    format!("memory store {store:?} changed while the dreamer ran; run it again"),
                ))
            }
            Err(Error::Log(LogError::WrongExpectedVersion { .. })) => {
                return Err(Error::Memory(MemoryError::StoreExists(out_store)))
            }
            Err(e) => return Err(e),
        };
        let at: &Appended = appended
            .iter()
            .find(|a| a.id == dream_id)
            .ok_or_else(|| Error::Log(LogError::Storage("the dream event was not appended".into())))?;
        Ok(DreamRun {
            id: dream_id,
            position: at.position,
            dream,
            sessions: input.sessions.len(),
            commands: out.commands.len(),
            exchanges: out.exchanges.len(),
        })
    }

    /// The latest dream over `store` into a fork that is still there whose input digest
    /// (`meta.input_digest`) is `digest`: dreaming again would write that fork again.
    fn same_input(&self, store: &str, digest: &Digest) -> Result<Option<DreamSummary>> {
        let hex = digest.to_hex();
        for d in self.list(Some(store))?.into_iter().rev() {
            let recorded = d.dream.meta.as_ref().map(|m| m.to_value());
            let same = recorded.as_ref().and_then(|m| m.get("input_digest")).and_then(Value::as_str) == Some(&hex);
            if same
                && d.dream.store == store
                && d.dream.output_store != store
                && self.store().stream_version(&stream_name(&d.dream.output_store))?.is_some()
            {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// Every dream in log order (of one input store, when given).
    pub fn list(&self, store: Option<&str>) -> Result<Vec<DreamSummary>> {
        let mut out = Vec::new();
        if let Some(store) = store {
            // The dreams reading or writing the store, from the marks index.
            use crate::core::projection::{mark_prefix, Space, MARK_DREAM};
            let mut positions = Vec::new();
            self.store().index_prefix(Space::Marks, &mark_prefix(MARK_DREAM, store), |position, middle, _| {
                if middle.is_empty() {
                    positions.push(position);
                }
                true
            })?;
            for e in self.store().get_positions(&positions)? {
                if let Body::Dream(d) = &e.event.body {
                    let (id, position, time) = (e.id(), e.position, e.event.header.time);
                    out.push(DreamSummary { id, position, time, dream: d.clone() });
                }
            }
            return Ok(out);
        }
        self.store().scan_kind(Kind::Dream, 0, |e| {
            if let Body::Dream(d) = &e.event.body {
                out.push(DreamSummary {
                    id: e.id(),
                    position: e.position,
                    time: e.event.header.time,
                    dream: d.clone(),
                });
            }
            true
        })?;
        Ok(out)
    }

    fn dream_event(&self, id: &EventId) -> Result<(StoredEvent, Dream)> {
        let e = self.store().get(id)?;
        match &e.event.body {
            Body::Dream(d) => {
                let d = d.clone();
                Ok((e, d))
            }
            _ => Err(Error::WrongEvent { id: id.to_hex(), what: "a dream event".into() }),
        }
    }

    /// The memory events a dream wrote: the events of its output stream right after it
    /// that cite it first.
    fn written(&self, e: &StoredEvent, d: &Dream) -> Result<Vec<StoredEvent>> {
        let id = e.id();
        let events = self.store().read_stream(&stream_name(&d.output_store), e.version + 1, usize::MAX)?;
        Ok(events
            .into_iter()
            .take_while(|x| x.event.header.kind == Kind::Memory && x.event.header.causes.first() == Some(&id))
            .collect())
    }

    /// Summarises events cited as evidence.
    pub fn evidence_refs(&self, ids: &[EventId]) -> Result<Vec<EvidenceRef>> {
        ids.iter()
            .map(|c| {
                let e = self.store().get(c)?;
                let (session, score, result) = match &e.event.body {
                    Body::Grade(g) => (Some(g.session.clone()), Some(g.score), Some(g.result.as_str().to_owned())),
                    Body::SessionStart(s) => (Some(s.session.clone()), None, None),
                    Body::Action(a) => (Some(a.session.clone()), None, None),
                    Body::SessionEnd(s) => (Some(s.session.clone()), None, None),
                    _ => (None, None, None),
                };
                Ok(EvidenceRef { id: *c, kind: e.event.header.kind, session, score, result })
            })
            .collect()
    }

    /// A dream's inputs, the exchanges it recorded, and each command with its evidence.
    pub fn show(&self, id: &EventId) -> Result<DreamDetail> {
        let (e, d) = self.dream_event(id)?;
        let mut lessons = Vec::new();
        for w in self.written(&e, &d)? {
            let Body::Memory(m) = &w.event.body else { continue };
            lessons.push(Lesson {
                id: w.id(),
                position: w.position,
                input: m.command.clone(),
                evidence: self.evidence_refs(&w.event.header.causes[1..])?,
            });
        }
        Ok(DreamDetail {
            summary: DreamSummary { id: *id, position: e.position, time: e.event.header.time, dream: d },
            exchanges: e.event.header.causes.clone(),
            lessons,
        })
    }

    /// Runs the dream's dreamer again over its recorded input — or `other`, another
    /// version or config — and compares the output with what was committed.
    pub fn replay(&self, id: &EventId, other: Option<&DreamerSpec>) -> Result<Replay> {
        let (e, d) = self.dream_event(id)?;
        if !replayable(&d) {
            return Err(Error::Dream(DreamError::NotReplayable {
                dream: id.to_hex(),
                dreamer: format!("{}@{}", d.dreamer, d.version),
                reason: "it was recorded from where it ran (a hosted dream: its dreamer ran on Anthropic's side); \
                         `dream show` has its request, inputs and output"
                    .into(),
            }));
        }
        let recorded_spec =
            DreamerSpec { name: d.dreamer.clone(), version: Some(d.version.clone()), config: d.config.to_value() };
        let spec = other.cloned().unwrap_or_else(|| recorded_spec.clone());
        let dreamer = dreamer_for(&spec)?;
        let same_dreamer =
            dreamer.name() == d.dreamer && dreamer.version() == d.version && dreamer.config() == d.config.to_value();
        // The base: the output store just before the dream (a fork starts equal to its
        // source at the fork point).
        let (base, _) = self.mem.fold_until(&d.output_store, e.position)?;
        if base.state_hash() != d.base_state {
            return Err(Error::Dream(DreamError::ReplayDiverged {
                dream: id.to_hex(),
                reason: format!(
                    "the memory before the dream has state hash {}, the dream recorded {}",
                    base.state_hash(),
                    d.base_state
                ),
            }));
        }
        // The sessions the dream was given, when it was given some.
        let selected: Option<std::collections::BTreeSet<String>> = d
            .meta
            .as_ref()
            .and_then(|m| m.to_value().get("selected_sessions").cloned())
            .and_then(|v| serde_json::from_value(v).ok());
        let input =
            self.input(&d.store, &base, (d.from_position, d.to_position), selected.as_ref(), dreamer.as_ref())?;
        let recorded: Vec<LlmExchange> = e
            .event
            .header
            .causes
            .iter()
            .map(|c| match self.store().get(c)?.event.body {
                Body::LlmExchange(x) => Ok(x),
                _ => Err(Error::WrongEvent { id: c.to_hex(), what: "an llm.exchange event".into() }),
            })
            .collect::<Result<_>>()?;
        // The recorded dreamer answers from its record, offline; another version or
        // config asks anew (for the llm dreamer: the model).
        let recorded_ref = if same_dreamer { Some(recorded.as_slice()) } else { None };
        let mut out = dreamer.dream(&input, recorded_ref).map_err(|err| match err {
            Error::Dream(DreamError::ReplayDiverged { reason, .. }) => {
                Error::Dream(DreamError::ReplayDiverged { dream: id.to_hex(), reason })
            }
            other => other,
        })?;
        let committed: Vec<Planned> = self
            .written(&e, &d)?
            .into_iter()
            .filter_map(|w| match w.event.body {
                Body::Memory(m) => Some(Planned { input: m.command, causes: w.event.header.causes[1..].to_vec() }),
                _ => None,
            })
            .collect();
        let known: std::collections::HashSet<EventId> = input.evidence_ids().collect();
        let label = format!("{}@{}", dreamer.name(), dreamer.version());
        let replayed_state = check_plan(&base, &mut out.commands, |c| known.contains(c))
            .map_err(|err| dreamer_error(&label, format!("its replayed output does not apply: {err}")))?;
        let committed_state = check_plan(&base, &mut committed.clone(), |_| true)
            .map_err(|err| dreamer_error(&d.dreamer, format!("the committed output does not apply: {err}")))?;
        let memory_diff = diff_states(&committed_state, &replayed_state);
        let lesson_diff = lesson_diff(&committed_state, &replayed_state);
        let identical = if same_dreamer { out.commands == committed } else { memory_diff.is_empty() };
        let command_diff = (out.commands != committed).then(|| {
            let lines = |v: &[Planned]| {
                v.iter().map(|p| serde_json::to_string(p).unwrap_or_default() + "\n").collect::<String>()
            };
            similar::TextDiff::from_lines(&lines(&committed), &lines(&out.commands))
                .unified_diff()
                .header("committed", "replayed")
                .to_string()
        });
        Ok(Replay {
            id: *id,
            recorded: format!("{}@{}", d.dreamer, d.version),
            replayed: if dreamer.name() == d.dreamer && dreamer.version() == d.version && !same_dreamer {
                format!("{label} with another config")
            } else {
                label
            },
            same_dreamer,
            identical,
            committed: committed.len(),
            produced: out.commands.len(),
            command_diff,
            memory_diff,
            lesson_diff,
        })
    }
}

/// The file of an import's source `FORMAT:PATH` + JSON pointer (+ `#name`): up to the last
/// path segment with an extension (`tau2:runs/x.json/simulations/3` → `tau2:runs/x.json`).
pub fn origin_file(source: &str) -> &str {
    let source = source.split('#').next().unwrap_or(source);
    let mut end = source.len();
    let mut at = source.len();
    while let Some(i) = source[..at].rfind('/') {
        if source[i + 1..end].contains('.') {
            return &source[..end];
        }
        end = i;
        at = i;
    }
    source
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_origin_is_the_file_without_the_place_in_it() {
        assert_eq!(super::origin_file("tau2:runs/x.json/simulations/3"), "tau2:runs/x.json");
        assert_eq!(super::origin_file("tau-bench:d/a.b.json/35"), "tau-bench:d/a.b.json");
        assert_eq!(super::origin_file("atif:t/agent/trajectory.json#sub"), "atif:t/agent/trajectory.json");
        assert_eq!(super::origin_file("claude-code:s.jsonl"), "claude-code:s.jsonl");
        assert_eq!(super::origin_file("dreamlog sim"), "dreamlog sim");
    }
}
