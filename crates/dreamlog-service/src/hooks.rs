//! Claude Code recorded while it runs: what its hooks deliver ([`Delivery`]: the hook's
//! JSON payload and the transcript lines written since the hook before) becomes a raw
//! note on `claude-code.hooks/SESSION`, and the session is assembled from those notes as
//! an import of the transcript so far ([`record`]). The transcript is the source of
//! truth (its uuids, times, messages, calls and results); the payloads add what it lacks
//! (tool responses, durations, the permission mode, the hook events themselves) and are
//! kept whole in the raw notes, unknown events and fields included.
//!
//! Because the live session is the transcript's import, grown as lines arrive, importing
//! the finished transcript afterwards finds it present (nothing doubled), and a delivery
//! made twice is one note (content-addressed). Segments may arrive out of order (a hook
//! that spooled while a later one reached the server): a transcript is assembled up to
//! its first gap. A session is held back until its model is known (its first answer) or
//! it ended, so its start is the one the finished transcript gives; it and its
//! sub-agents end at `SessionEnd`, whose hook first waits for the transcripts to stop
//! growing ([`Spool::settle`]).
//!
//! [`Spool`] is the hook's side: the folder a hook process writes to when it cannot (or,
//! embedded, must not) reach the database, and the per-session offsets it reads the
//! transcripts from, under a file lock so concurrent hooks of one session read each line
//! once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::{Actor, Body, CanonicalJson, Draft, Kind, Note};
use crate::error::{Error, Result};
use crate::import::{Format, ImportCounts};
use crate::service::Service;
use crate::store::AppendBatch;

/// The note type of a delivery.
pub const NOTE_TYPE: &str = "claude-code.hook";
/// Deliveries of session `ID` are notes on `claude-code.hooks/ID`.
pub const STREAM_PREFIX: &str = "claude-code.hooks/";
/// The version of [`Delivery`] this build writes and reads.
pub const DELIVERY_VERSION: u32 = 1;
/// Most bytes of transcript one read takes (a longer line is read whole).
pub const MAX_SEGMENT: u64 = 4 << 20;
/// Most bytes of transcript lines one delivery carries (a server takes 16 MiB bodies,
/// and JSON escaping grows text): the rest waits for the next hook, or, at `Stop` and
/// `SessionEnd`, goes in further deliveries.
pub const MAX_DELIVERY: u64 = 4 << 20;

/// What one hook call delivers (schemas/hook-delivery.schema.json).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// [`DELIVERY_VERSION`].
    pub v: u32,
    /// When the hook ran (milliseconds since the Unix epoch): the raw note's time.
    pub at: u64,
    /// The hook's JSON payload as Claude Code gave it.
    pub payload: Value,
    /// Transcript lines written since the hook before, whole lines only.
    #[serde(default)]
    pub transcripts: Vec<Segment>,
}

/// Bytes `offset..offset + text.len()` of a transcript file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// The transcript's path, as Claude Code names it.
    pub path: String,
    /// The sub-agent whose transcript it is (`agent_id`), none for the session's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Where the text starts in the file.
    pub offset: u64,
    /// Whole lines (each ending in a newline).
    pub text: String,
}

/// What [`record`] did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Recorded {
    /// The session (`claude-code/ID`).
    pub session: String,
    /// The hook event delivered.
    pub hook_event: String,
    /// Whether the delivery was new (false: the same delivery was recorded before).
    pub new: bool,
    /// What the assembly wrote.
    pub assembled: ImportCounts,
    /// Sessions held back (no answer yet) or waiting for a gap in their transcript.
    pub waiting: Vec<String>,
    /// The assembly runs after the answer ([`keep_then`]): `assembled` and `waiting`
    /// are then empty.
    #[serde(default)]
    pub assembling: bool,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::Input { path: "hook delivery".into(), line: 0, reason: reason.into() }
}

/// Claude Code's session id from a payload: a name fit for a stream segment.
pub fn session_id(payload: &Value) -> Result<&str> {
    let id =
        payload.get("session_id").and_then(Value::as_str).ok_or_else(|| bad("the payload has no session_id string"))?;
    let fits = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.');
    if !fits {
        return Err(bad(format!("session_id {id:?}: expected 1 to 128 of A-Z a-z 0-9 - _ . (not starting with .)")));
    }
    Ok(id)
}

/// Checks a delivery before anything is written: its version, its session, whole lines.
pub fn check(d: &Delivery) -> Result<()> {
    if d.v != DELIVERY_VERSION {
        return Err(bad(format!("version {} (this build reads {DELIVERY_VERSION})", d.v)));
    }
    if !d.payload.is_object() {
        return Err(bad("the payload is not a JSON object"));
    }
    session_id(&d.payload)?;
    for s in &d.transcripts {
        if s.path.is_empty() {
            return Err(bad("a transcript segment has no path"));
        }
        if !s.text.is_empty() && !s.text.ends_with('\n') {
            return Err(bad(format!("the segment of {} at {} does not end with a whole line", s.path, s.offset)));
        }
        if s.agent_id
            .as_deref()
            .is_some_and(|a| !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(bad(format!("agent_id {:?} of {}: expected A-Z a-z 0-9 - _", s.agent_id, s.path)));
        }
    }
    Ok(())
}

/// Records a delivery: its raw note, then the sessions assembled from every note of its
/// session so far. Nothing is written for a delivery that fails [`check`].
pub fn record(svc: &dyn Service, d: &Delivery) -> Result<Recorded> {
    let new = keep(svc, d)?;
    let id = session_id(&d.payload)?.to_owned();
    let hook_event = d.payload.get("hook_event_name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let (assembled, waiting) = assemble_now(svc, &id)?;
    Ok(Recorded { session: format!("claude-code/{id}"), hook_event, new, assembled, waiting, assembling: false })
}

/// What a server answers a hook with: the delivery kept (durable), and the session's
/// assembly left to `later` — run after the answer, so the hook does not wait for it —
/// except at `SessionEnd`, assembled before the answer so a session's end never waits
/// on work a shutdown could cut short. Assemblies of one session requested while one
/// runs are one more run after it ([`assemble_coalesced`]).
pub fn keep_then(svc: &dyn Service, d: &Delivery, later: impl FnOnce(String)) -> Result<Recorded> {
    if d.payload.get("hook_event_name").and_then(Value::as_str) == Some("SessionEnd") {
        return record(svc, d);
    }
    let new = keep(svc, d)?;
    let id = session_id(&d.payload)?.to_owned();
    let hook_event = d.payload.get("hook_event_name").and_then(Value::as_str).unwrap_or_default().to_owned();
    later(id.clone());
    Ok(Recorded {
        session: format!("claude-code/{id}"),
        hook_event,
        new,
        assembled: ImportCounts::default(),
        waiting: Vec::new(),
        assembling: true,
    })
}

/// [`assemble_now`], unless an assembly of the session is running: then that one runs
/// once more when it is done (and this returns `None` at once).
pub fn assemble_coalesced(svc: &dyn Service, id: &str) -> Option<Result<(ImportCounts, Vec<String>)>> {
    let key = scoped(svc, id);
    {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(again) = running.get_mut(&key) {
            *again = true;
            return None;
        }
        running.insert(key.clone(), false);
    }
    loop {
        let r = assemble_now(svc, id);
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        match running.get_mut(&key) {
            Some(again) if *again && r.is_ok() => *again = false,
            _ => {
                running.remove(&key);
                return Some(r);
            }
        }
    }
}

/// Sessions whose assembly runs, and whether another was asked for meanwhile.
static RUNNING: std::sync::Mutex<BTreeMap<String, bool>> = std::sync::Mutex::new(BTreeMap::new());

/// Keeps a delivery as its raw note (nothing else); whether it was new: a delivery
/// recorded before (a hook that spooled what had reached the server, a flush run twice)
/// is not written again. Nothing is written for a delivery that fails [`check`].
pub fn keep(svc: &dyn Service, d: &Delivery) -> Result<bool> {
    check(d)?;
    let id = session_id(&d.payload)?.to_owned();
    // Its own lock, not the assembly's: a delivery never waits for an assembly.
    let lock = lock_of(&KEEPING, &scoped(svc, &id));
    let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
    keep_locked(svc, d, &id)
}

/// A session's key in this process's maps: the tenant (or database) and the id.
fn scoped(svc: &dyn Service, id: &str) -> String {
    format!("{}\u{0}{id}", svc.target())
}

fn keep_locked(svc: &dyn Service, d: &Delivery, id: &str) -> Result<bool> {
    let stream = format!("{STREAM_PREFIX}{id}");
    let json = CanonicalJson::from_value(&serde_json::to_value(d).map_err(|e| bad(e.to_string()))?);
    let digest = crate::core::Digest::of(json.as_str().as_bytes());
    let key = scoped(svc, id);
    let mut tries = 0;
    loop {
        // The digests of the session's deliveries: this process's own record of them
        // while the stream's head is the one it last saw, else read from the stream.
        let (_, heads) =
            svc.lookup(&crate::service::LookupRequest { ids: Vec::new(), streams: vec![stream.clone()] })?;
        let head = heads.first().copied().flatten().map(|(version, _)| version);
        let known = {
            let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
            seen.get(&key).filter(|(at, _)| Some(*at) == head).map(|(_, set)| set.contains(&digest))
        };
        let known = match known {
            Some(k) => k,
            None => {
                let stored = stream_or_empty(svc, &stream)?;
                let set: std::collections::HashSet<crate::core::Digest> = stored
                    .iter()
                    .filter_map(|e| match &e.event.body {
                        Body::Note(n) if n.note_type == NOTE_TYPE => {
                            Some(crate::core::Digest::of(n.json.as_str().as_bytes()))
                        }
                        _ => None,
                    })
                    .collect();
                let k = set.contains(&digest);
                if let Some(v) = stored.last().map(|e| e.version) {
                    remember(&key, v, set);
                }
                k
            }
        };
        if known {
            return Ok(false);
        }
        let expected = match head {
            Some(v) => crate::store::ExpectedVersion::Exact(v),
            None => crate::store::ExpectedVersion::NoStream,
        };
        let note = Body::Note(Note { note_type: NOTE_TYPE.into(), json: json.clone() });
        let draft = Draft::new(stream.clone(), Actor::Agent("claude-code".into()), note).at(d.at);
        let batch = AppendBatch {
            events: vec![draft],
            expectations: vec![(stream.clone(), expected)],
            ..AppendBatch::default()
        };
        match svc.append_batch(batch) {
            // Another process (a cluster's other node) recorded one meanwhile: look again.
            Err(Error::Log(crate::error::LogError::WrongExpectedVersion { .. })) if tries < 20 => tries += 1,
            Err(e) => return Err(e),
            Ok(appended) => {
                let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
                if let (Some(entry), Some(a)) = (seen.get_mut(&key), appended.first()) {
                    if Some(entry.0) == head {
                        entry.0 = a.version;
                        entry.1.insert(digest);
                    }
                }
                return Ok(true);
            }
        }
    }
}

/// Per session: the stream version this process last saw and the digests of every
/// delivery up to it (deduplication without reading the stream on every delivery).
type Seen = BTreeMap<String, (u64, std::collections::HashSet<crate::core::Digest>)>;
static SEEN: std::sync::Mutex<Seen> = std::sync::Mutex::new(BTreeMap::new());
/// Sessions [`SEEN`] keeps at most (then it starts over).
const SEEN_SESSIONS: usize = 4096;

fn remember(id: &str, version: u64, set: std::collections::HashSet<crate::core::Digest>) {
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() >= SEEN_SESSIONS && !seen.contains_key(id) {
        seen.clear();
    }
    seen.insert(id.to_owned(), (version, set));
}

fn stream_or_empty(svc: &dyn Service, stream: &str) -> Result<Vec<crate::store::StoredEvent>> {
    match svc.stream_events(stream) {
        Ok(s) => Ok(s),
        Err(Error::NotFound(_)) | Err(Error::Remote { status: 404, .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Locks per session (keyed by [`scoped`]).
type Locks = std::sync::Mutex<BTreeMap<String, std::sync::Arc<std::sync::Mutex<()>>>>;

/// The lock of `key` in `locks` (made when first asked for; dropped when unused).
fn lock_of(locks: &Locks, key: &str) -> std::sync::Arc<std::sync::Mutex<()>> {
    let mut all = locks.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
    all.entry(key.to_owned()).or_default().clone()
}

/// Deliveries being kept, one per session at a time.
static KEEPING: Locks = std::sync::Mutex::new(BTreeMap::new());

/// [`assemble`] of session `id`, one at a time in this process, read again when another
/// process (a cluster's other node) moved the session meanwhile.
pub fn assemble_now(svc: &dyn Service, id: &str) -> Result<(ImportCounts, Vec<String>)> {
    let lock = lock_of(&ASSEMBLING, &scoped(svc, id));
    let _one = lock.lock().unwrap_or_else(|p| p.into_inner());
    assemble_retrying(svc, id)
}

fn assemble_retrying(svc: &dyn Service, id: &str) -> Result<(ImportCounts, Vec<String>)> {
    let mut tries = 0;
    loop {
        match assemble(svc, id) {
            Err(Error::Log(crate::error::LogError::WrongExpectedVersion { .. })) if tries < 5 => tries += 1,
            r => return r,
        }
    }
}

/// Sessions being assembled in this process, each behind its own lock.
static ASSEMBLING: Locks = std::sync::Mutex::new(BTreeMap::new());

/// The deliveries recorded for Claude Code session `id`, in the order they were recorded.
pub fn deliveries(svc: &dyn Service, id: &str) -> Result<Vec<Delivery>> {
    let stored = stream_or_empty(svc, &format!("{STREAM_PREFIX}{id}"))?;
    let mut out = Vec::with_capacity(stored.len());
    for e in stored {
        if let Body::Note(n) = &e.event.body {
            if n.note_type == NOTE_TYPE {
                if let Ok(d) = serde_json::from_value::<Delivery>(n.json.to_value()) {
                    out.push(d);
                }
            }
        }
    }
    Ok(out)
}

/// Transcript path → (the sub-agent it is of, its text so far).
type Texts = BTreeMap<String, (Option<String>, String)>;

/// Each transcript's text from its start up to the first gap, from the segments of
/// `deliveries` (overlaps are the same bytes of one file: each byte is taken once).
fn transcripts(deliveries: &[Delivery]) -> (Texts, Vec<String>) {
    let mut segments: BTreeMap<&str, Vec<&Segment>> = BTreeMap::new();
    for d in deliveries {
        for s in &d.transcripts {
            segments.entry(s.path.as_str()).or_default().push(s);
        }
    }
    let mut out = BTreeMap::new();
    let mut gaps = Vec::new();
    for (path, mut segs) in segments {
        segs.sort_by_key(|s| s.offset);
        let mut text = String::new();
        let agent = segs.iter().find_map(|s| s.agent_id.clone());
        for s in segs {
            let covered = text.len() as u64;
            if s.offset > covered {
                gaps.push(format!("{path} from byte {covered}"));
                break;
            }
            let skip = (covered - s.offset) as usize;
            if skip < s.text.len() && s.text.is_char_boundary(skip) {
                text.push_str(&s.text[skip..]);
            }
        }
        out.insert(path.to_owned(), (agent, text));
    }
    (out, gaps)
}

/// Assembles Claude Code session `id` from its deliveries: each transcript so far is
/// imported (new sessions written, grown ones grown), without an end until the session
/// (or sub-agent) ended, and not before its first answer names the model.
pub fn assemble(svc: &dyn Service, id: &str) -> Result<(ImportCounts, Vec<String>)> {
    let all = deliveries(svc, id)?;
    let event = |d: &&Delivery| d.payload.get("hook_event_name").and_then(Value::as_str).map(str::to_owned);
    // Claude Code writes a transcript after the hooks of what it records may have run (a
    // sub-agent's last lines can follow its SubagentStop): sessions and their sub-agents
    // end only at SessionEnd, whose hook reads the transcripts once they stopped growing.
    let ended = all.iter().any(|d| event(&d).as_deref() == Some("SessionEnd"));
    let (texts, mut waiting) = transcripts(&all);
    // A transcript with a gap is not whole: its session does not end before the gap is
    // filled (the missing delivery is still on its way).
    let ended = ended && waiting.is_empty();
    let files = texts.into_iter().map(|(path, (agent, text))| (path, agent.is_some(), text)).collect();
    let (counts, held) = import_transcripts(svc, files, ended)?;
    waiting.extend(held);
    Ok((counts, waiting))
}

/// Imports Claude Code transcripts as far as they are written — `(path, is a sub-agent's,
/// whole lines so far)` — as a live session: while not `ended`, without an end, and a
/// session is held back (named in the second value) until its first answer names the
/// model, with its sub-agents. What it writes is what importing the finished transcripts
/// writes, up to where they are.
pub fn import_transcripts(
    svc: &dyn Service,
    mut files: Vec<(String, bool, String)>,
    ended: bool,
) -> Result<(ImportCounts, Vec<String>)> {
    // The session's own transcript first: sub-agents start from its start.
    files.sort_by_key(|(_, agent, _)| *agent);
    let mut sessions = Vec::new();
    let mut held: BTreeSet<String> = BTreeSet::new();
    for (path, _, text) in files {
        if text.is_empty() {
            continue;
        }
        let parsed = match crate::import::parse(Format::ClaudeCode, &path, text.as_bytes()) {
            Ok(p) => p,
            // One transcript that does not parse holds back its own sessions, not others.
            Err(e) => {
                held.insert(format!("{path}: {e}"));
                continue;
            }
        };
        for mut s in parsed {
            if s.parent.as_ref().is_some_and(|p| held.contains(p)) {
                held.insert(s.session.clone());
                continue;
            }
            let named =
                s.events.first().is_some_and(|d| matches!(&d.body, Body::SessionStart(st) if st.model.is_some()));
            if !ended {
                if s.events.last().is_some_and(|d| d.body.kind() == Kind::SessionEnd) {
                    s.events.pop();
                }
                if !named {
                    held.insert(s.session.clone());
                    continue;
                }
            }
            sessions.push(s);
        }
    }
    let waiting = held.into_iter().map(|s| if s.contains(": ") { s } else { format!("{s}: no answer yet") }).collect();
    if sessions.is_empty() {
        return Ok((ImportCounts::default(), waiting));
    }
    let counts = crate::service::import_sessions(svc, sessions, None, |_| ())?;
    Ok((counts, waiting))
}

/// The route a server records deliveries at.
pub const ROUTE: &str = "/v1/hooks/claude-code";

/// A client that delivers to a server within `timeout` (connecting included): what a
/// hook waits at most before it spools instead.
pub fn client(timeout: std::time::Duration, ca: Option<&Path>) -> Result<reqwest::blocking::Client> {
    crate::service::http_client(reqwest::blocking::Client::builder().timeout(timeout).connect_timeout(timeout), ca)
}

/// Delivers `d` to the server at `base` ([`ROUTE`]).
pub fn deliver(http: &reqwest::blocking::Client, base: &str, token: Option<&str>, d: &Delivery) -> Result<Recorded> {
    let url = format!("{}{ROUTE}", base.trim_end_matches('/'));
    let mut req = http.post(&url).json(d);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().map_err(|e| Error::Remote {
        status: 0,
        kind: "connection".into(),
        message: format!("{url}: {e}"),
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    if !(200..300).contains(&status) {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        return Err(Error::Remote {
            status,
            kind: v["error"]["type"].as_str().unwrap_or("error").to_owned(),
            message: v["error"]["message"].as_str().map_or_else(|| text.clone(), str::to_owned),
        });
    }
    serde_json::from_str(&text).map_err(|e| Error::Remote {
        status,
        kind: "answer".into(),
        message: format!("{url}: not a hook answer: {e}"),
    })
}

/// `import claude-code --follow`: transcripts (files, or every `.jsonl` below a folder)
/// imported as they grow, whole lines only — a half-written last line waits for the rest
/// — as a live session ([`import_transcripts`]: no end, held until the model is known).
pub struct Follower {
    roots: Vec<PathBuf>,
    /// Each transcript's whole lines so far.
    texts: BTreeMap<PathBuf, String>,
}

/// What one pass of a [`Follower`] wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FollowPass {
    /// Transcripts that grew.
    pub grew: Vec<String>,
    /// What the import wrote.
    pub counts: ImportCounts,
    /// Sessions held back (no answer yet).
    pub waiting: Vec<String>,
}

impl Follower {
    /// Follows `roots` (files or folders).
    pub fn new(roots: Vec<PathBuf>) -> Follower {
        Follower { roots, texts: BTreeMap::new() }
    }

    fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "jsonl") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        for r in &self.roots {
            if r.is_dir() {
                walk(r, &mut out);
            } else {
                out.push(r.clone());
            }
        }
        out.sort();
        out
    }

    /// Reads what the transcripts gained and imports them when any grew; `None` when
    /// nothing did.
    pub fn pass(&mut self, svc: &dyn Service) -> Result<Option<FollowPass>> {
        let mut grew = Vec::new();
        for f in self.files() {
            let text = self.texts.entry(f.clone()).or_default();
            if let Some(new) = read_lines(&f, text.len() as u64)? {
                if !new.is_empty() {
                    text.push_str(&new);
                    grew.push(f.display().to_string());
                }
            }
        }
        if grew.is_empty() {
            return Ok(None);
        }
        let files = self
            .texts
            .iter()
            .map(|(p, t)| {
                let agent = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("agent-"));
                (p.display().to_string(), agent, t.clone())
            })
            .collect();
        let (counts, waiting) = import_transcripts(svc, files, false)?;
        Ok(Some(FollowPass { grew, counts, waiting }))
    }
}

/// Where a hook keeps what it could not deliver yet, and how far it read each transcript.
///
/// Layout: `DIR/pending/*.json` (one [`Delivery`] per file, named so they sort in the
/// order they were made), `DIR/state/SESSION.json` (transcript path → bytes read) with
/// its lock `DIR/state/SESSION.lock`.
pub struct Spool {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.display().to_string(), source }
}

impl Spool {
    /// The spool in `dir` (made when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Spool {
        Spool { dir: dir.into() }
    }

    /// Its folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn pending_dir(&self) -> PathBuf {
        self.dir.join("pending")
    }

    /// Spools what this hook call delivers — `payload` with what the transcripts it names
    /// gained since the last hook of its session — and only then moves their offsets past
    /// it, all under the session's lock, so a line is never read twice by concurrent
    /// hooks nor lost by a hook that dies before delivering (a hook killed between the
    /// two reads the same lines again: the same bytes, joined once). Returns the spooled
    /// files, oldest first, for the caller to deliver.
    ///
    /// The session's own transcript is `transcript_path`; a sub-agent's (`agent_id`) is
    /// `agent_transcript_path`, else `SESSION/subagents/agent-ID.jsonl` beside the
    /// session's; at `Stop`, `SubagentStop` and `SessionEnd` every sub-agent transcript of
    /// the session is read too, each to its end, in deliveries of at most
    /// [`MAX_DELIVERY`] bytes of lines (the ones before the last carry the payload
    /// `{session_id, transcript_path, hook_event_name: "dreamlog.transcript"}`). Only
    /// whole lines are taken: a half-written last line waits. A transcript that cannot be
    /// read is skipped (said on `warn`) and read again by the next hook.
    pub fn take(&self, payload: &Value, at: u64, warn: &mut dyn FnMut(String)) -> Result<Vec<PathBuf>> {
        let id = session_id(payload)?;
        let state_dir = self.dir.join("state");
        std::fs::create_dir_all(&state_dir).map_err(io(&state_dir))?;
        let lock_path = state_dir.join(format!("{id}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let state_path = state_dir.join(format!("{id}.json"));
        let mut offsets: BTreeMap<String, u64> = match std::fs::read(&state_path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io(&state_path)(e)),
        };
        let agent_ok =
            |a: &str| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let mut files: Vec<(String, Option<String>)> = Vec::new();
        let main = payload.get("transcript_path").and_then(Value::as_str).filter(|p| !p.is_empty());
        if let Some(main) = main {
            files.push((main.to_owned(), None));
        }
        let event = payload.get("hook_event_name").and_then(Value::as_str).unwrap_or_default();
        if let Some(agent) = payload.get("agent_id").and_then(Value::as_str).filter(|a| agent_ok(a)) {
            let path = match payload.get("agent_transcript_path").and_then(Value::as_str) {
                Some(p) => Some(p.to_owned()),
                None => main.map(|m| subagent_dir(m, id).join(format!("agent-{agent}.jsonl")).display().to_string()),
            };
            if let Some(p) = path {
                files.push((p, Some(agent.to_owned())));
            }
        }
        let to_the_end = matches!(event, "Stop" | "SessionEnd" | "SubagentStop");
        if to_the_end {
            if let Some(main) = main {
                let dir = subagent_dir(main, id);
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    found.sort();
                    for p in found {
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                        let Some(agent) = name.strip_prefix("agent-").and_then(|n| n.strip_suffix(".jsonl")) else {
                            continue;
                        };
                        let path = p.display().to_string();
                        if agent_ok(agent) && !files.iter().any(|(f, _)| *f == path) {
                            files.push((path, Some(agent.to_owned())));
                        }
                    }
                }
            }
        }
        let mut deliveries: Vec<Vec<Segment>> = vec![Vec::new()];
        let mut size = 0u64;
        'files: for (path, agent_id) in files {
            loop {
                let from = offsets.get(&path).copied().unwrap_or(0);
                let text = match read_lines(Path::new(&path), from) {
                    Ok(Some(t)) if !t.is_empty() => t,
                    Ok(_) => break,
                    Err(e) => {
                        warn(format!("{path} waits for the next hook: {e}"));
                        break;
                    }
                };
                offsets.insert(path.clone(), from + text.len() as u64);
                size += text.len() as u64;
                let last = deliveries.len() - 1;
                deliveries[last].push(Segment { path: path.clone(), agent_id: agent_id.clone(), offset: from, text });
                if size >= MAX_DELIVERY {
                    if !to_the_end {
                        break 'files; // the rest with the next hook
                    }
                    deliveries.push(Vec::new());
                    size = 0;
                }
                if !to_the_end {
                    break;
                }
            }
        }
        // The spool first, the offsets after: a crash between them reads lines again.
        let count = deliveries.len();
        let mut spooled = Vec::with_capacity(count);
        for (i, transcripts) in deliveries.into_iter().enumerate() {
            let payload = if i + 1 == count {
                payload.clone()
            } else {
                serde_json::json!({"session_id": id, "transcript_path": main, "hook_event_name": "dreamlog.transcript"})
            };
            spooled.push(self.put_nth(&Delivery { v: DELIVERY_VERSION, at, payload, transcripts }, i)?);
        }
        write_atomically(&state_path, &serde_json::to_vec(&offsets).map_err(|e| bad(e.to_string()))?)?;
        drop(lock);
        Ok(spooled)
    }

    /// Waits until the transcripts of `payload`'s session (its own and its sub-agents')
    /// stopped growing — no change for [`SETTLED`] — or [`SETTLE_LIMIT`] passed: at
    /// SessionEnd, Claude Code may still be writing the last lines.
    pub fn settle(&self, payload: &Value) {
        let Ok(id) = session_id(payload) else { return };
        let Some(main) = payload.get("transcript_path").and_then(Value::as_str) else { return };
        let size = || {
            let mut total = std::fs::metadata(main).map(|m| m.len()).unwrap_or(0);
            if let Ok(entries) = std::fs::read_dir(subagent_dir(main, id)) {
                for e in entries.flatten() {
                    total += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
            total
        };
        let (start, mut last, mut since) = (Instant::now(), size(), Instant::now());
        while start.elapsed() < SETTLE_LIMIT {
            std::thread::sleep(Duration::from_millis(25));
            let now = size();
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= SETTLED {
                return;
            }
        }
    }

    /// The lock of the one hook that delivers what earlier hooks left, if no other holds
    /// it (held until the value is dropped).
    pub fn try_drain_lock(&self) -> Option<std::fs::File> {
        std::fs::create_dir_all(&self.dir).ok()?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("drain.lock"))
            .ok()?;
        f.try_lock().ok()?;
        Some(f)
    }

    /// Keeps the `n`th delivery of one hook call until it is delivered (the files sort in
    /// the order they were made).
    fn put_nth(&self, d: &Delivery, n: usize) -> Result<PathBuf> {
        let dir = self.pending_dir();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut nonce = [0u8; 6];
        let _ = getrandom::fill(&mut nonce);
        let name = format!("{:016}-{:010}-{n:04}-{}.json", d.at, std::process::id(), hex::encode(nonce));
        let path = dir.join(name);
        write_atomically(&path, &serde_json::to_vec(d).map_err(|e| bad(e.to_string()))?)?;
        Ok(path)
    }

    /// The deliveries waiting, oldest first. A file that is not a delivery (cut short by a
    /// crash before its rename cannot be: files appear whole) is named in the error.
    pub fn pending(&self) -> Result<Vec<(PathBuf, Delivery)>> {
        let dir = self.pending_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            let bytes = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // delivered meanwhile
                Err(e) => return Err(io(&p)(e)),
            };
            match serde_json::from_slice::<Delivery>(&bytes) {
                Ok(d) => out.push((p, d)),
                // Not a delivery (written by something else): set aside, never in the way.
                Err(e) => {
                    let _ = self.reject(&p, &format!("not a hook delivery: {e}"));
                }
            }
        }
        Ok(out)
    }

    /// Moves a delivery the server refused for good (not one it could not take now) to
    /// `DIR/rejected/`, with the reason beside it: kept for a person, out of the way of the
    /// deliveries after it.
    pub fn reject(&self, path: &Path, why: &str) -> Result<PathBuf> {
        let dir = self.dir.join("rejected");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let to = dir.join(path.file_name().unwrap_or_default());
        std::fs::rename(path, &to).map_err(io(path))?;
        let _ = std::fs::write(to.with_extension("why.txt"), why);
        Ok(to)
    }

    /// The deliveries of `paths` still waiting (one delivered meanwhile by another hook
    /// is gone; one that is not a delivery is set aside).
    pub fn read(&self, paths: &[PathBuf]) -> Vec<(PathBuf, Delivery)> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            match std::fs::read(p).map(|b| serde_json::from_slice::<Delivery>(&b)) {
                Ok(Ok(d)) => out.push((p.clone(), d)),
                Ok(Err(e)) => {
                    let _ = self.reject(p, &format!("not a hook delivery: {e}"));
                }
                Err(_) => {}
            }
        }
        out
    }

    /// Forgets a delivery once it is recorded.
    pub fn done(&self, path: &Path) -> Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(path)(e)),
        }
    }
}

/// The hook events `hooks install` has Claude Code run `dreamlog hook` for.
pub const HOOK_EVENTS: [&str; 10] = [
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "PreCompact",
    "SessionEnd",
];

/// The `timeout` (seconds) `hooks install` gives the SessionEnd hook.
pub const SESSION_END_TIMEOUT_SECS: u64 = 15;

/// Whether a hook command is one `hooks install` wrote: a program named `dreamlog`
/// whose subcommand is `hook`.
pub fn is_ours(command: &str) -> bool {
    let command = command.trim_start();
    // The program, quoted when its path has spaces.
    let (program, rest) = match command.chars().next() {
        Some(q @ ('"' | '\'')) => match command[1..].find(q) {
            Some(end) => (&command[1..1 + end], &command[2 + end..]),
            None => return false,
        },
        _ => command.split_once(char::is_whitespace).unwrap_or((command, "")),
    };
    Path::new(program).file_name().is_some_and(|n| n == "dreamlog") && rest.split_whitespace().any(|w| w == "hook")
}

/// Claude Code settings (`settings.json`) with `command` run for every hook event
/// ([`HOOK_EVENTS`]; tool events for every tool), every other hook and setting kept;
/// an entry of ours with another command is replaced. With `uninstall`, exactly the
/// entries of ours are removed (and groups and events left empty by that). Settings
/// that are not a JSON object, or whose `hooks` is not one, are refused.
pub fn install_settings(settings: &Value, command: &str, uninstall: bool) -> Result<Value> {
    let mut out = match settings {
        Value::Null => serde_json::Map::new(),
        Value::Object(m) => m.clone(),
        _ => return Err(bad("the settings file is not a JSON object")),
    };
    let mut hooks = match out.remove("hooks") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(bad("the settings' \"hooks\" is not a JSON object")),
    };
    let names: Vec<String> =
        if uninstall { hooks.keys().cloned().collect() } else { HOOK_EVENTS.iter().map(|e| (*e).to_owned()).collect() };
    for event in names {
        let mut groups = match hooks.remove(&event) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(bad(format!("the settings' hooks.{event} is not an array"))),
        };
        // Ours out of every group (a group left empty goes).
        for g in &mut groups {
            if let Some(Value::Array(list)) = g.get_mut("hooks") {
                list.retain(|h| !h.get("command").and_then(Value::as_str).is_some_and(is_ours));
            }
        }
        groups.retain(|g| !matches!(g.get("hooks"), Some(Value::Array(l)) if l.is_empty()));
        if !uninstall {
            let mut group = serde_json::json!({"hooks": [{"type": "command", "command": command}]});
            // SessionEnd hooks get little time unless they ask: the hook waits for the
            // transcripts to settle, then delivers.
            if event == "SessionEnd" {
                group["hooks"][0]["timeout"] = Value::from(SESSION_END_TIMEOUT_SECS);
            }
            if event.contains("ToolUse") {
                group["matcher"] = Value::String("*".into());
            }
            groups.push(group);
        }
        if !groups.is_empty() {
            hooks.insert(event, Value::Array(groups));
        }
    }
    if !hooks.is_empty() {
        out.insert("hooks".into(), Value::Object(hooks));
    }
    Ok(Value::Object(out))
}

/// The settings as `hooks install` writes them: two-space indented JSON and a newline.
pub fn settings_text(settings: &Value) -> String {
    let mut s = serde_json::to_string_pretty(settings).unwrap_or_default();
    s.push('\n');
    s
}

/// A unified diff of two texts of file `name` (empty when they are the same).
pub fn diff(name: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    similar::TextDiff::from_lines(old, new).unified_diff().header(name, name).to_string()
}

/// How long the transcripts must stay unchanged at SessionEnd to count as finished.
pub const SETTLED: Duration = Duration::from_millis(150);
/// The longest a SessionEnd hook waits for them.
pub const SETTLE_LIMIT: Duration = Duration::from_millis(1000);

/// Where Claude Code keeps session `id`'s sub-agent transcripts: `SESSION/subagents/`
/// beside the session's own.
fn subagent_dir(main: &str, id: &str) -> PathBuf {
    Path::new(main).parent().unwrap_or(Path::new(".")).join(id).join("subagents")
}

/// The whole lines of `path` from byte `from` (about [`MAX_SEGMENT`] bytes of them, or one
/// longer line whole); `None` when the file does not exist (yet). Claude Code only appends
/// to a transcript: a file no longer than `from` has nothing new.
fn read_lines(path: &Path, from: u64) -> Result<Option<String>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let len = f.metadata().map_err(io(path))?.len();
    if len <= from {
        return Ok(Some(String::new()));
    }
    f.seek(std::io::SeekFrom::Start(from)).map_err(io(path))?;
    let mut buf = Vec::new();
    let mut f = f.take(len - from);
    (&mut f).take(MAX_SEGMENT).read_to_end(&mut buf).map_err(io(path))?;
    // One line longer than MAX_SEGMENT (a large tool result) is read whole: else it
    // would never be taken.
    let mut whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    while whole == 0 && buf.len() as u64 >= MAX_SEGMENT && f.limit() > 0 {
        let before = buf.len();
        (&mut f).take(MAX_SEGMENT).read_to_end(&mut buf).map_err(io(path))?;
        whole = buf[before..].iter().rposition(|&b| b == b'\n').map_or(0, |i| before + i + 1);
        if buf.len() == before {
            break;
        }
    }
    buf.truncate(whole);
    match String::from_utf8(buf) {
        Ok(s) => Ok(Some(s)),
        Err(e) => Err(Error::Input {
            path: path.display().to_string(),
            line: 0,
            reason: format!("not UTF-8 after byte {from}: {e}"),
        }),
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it, synced.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut nonce = [0u8; 6];
    let _ = getrandom::fill(&mut nonce);
    let tmp = path.with_extension(format!("tmp-{}", hex::encode(nonce)));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn seg(path: &str, offset: u64, text: &str) -> Segment {
        Segment { path: path.into(), agent_id: None, offset, text: text.into() }
    }

    fn delivery(segs: Vec<Segment>) -> Delivery {
        Delivery { v: 1, at: 1, payload: serde_json::json!({"session_id": "s1"}), transcripts: segs }
    }

    #[test]
    fn transcripts_join_segments_in_any_order_up_to_the_first_gap() {
        let ds = vec![
            delivery(vec![seg("t", 4, "bb\n"), seg("u", 3, "late\n")]),
            delivery(vec![seg("t", 0, "aaa\n")]),
            delivery(vec![seg("t", 0, "aaa\n")]), // twice: taken once
        ];
        let (texts, gaps) = transcripts(&ds);
        assert_eq!(texts["t"].1, "aaa\nbb\n");
        assert_eq!(texts["u"].1, "", "u's bytes 0..3 never arrived");
        assert_eq!(gaps, ["u from byte 0"]);
    }

    #[test]
    fn install_keeps_every_other_hook_and_setting_and_uninstall_removes_only_its_own() {
        let theirs = serde_json::json!({"model": "opus", "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./check.sh"}]}],
            "Notification": [{"hooks": [{"type": "command", "command": "notify-send hi"}]}]}});
        let cmd = "/opt/bin/dreamlog --remote http://127.0.0.1:7070 hook";
        let once = install_settings(&theirs, cmd, false).unwrap();
        assert_eq!(install_settings(&once, cmd, false).unwrap(), once, "idempotent");
        assert_eq!(once["model"], "opus");
        assert_eq!(once["hooks"]["PreToolUse"][0]["hooks"][0]["command"], "./check.sh");
        assert_eq!(once["hooks"]["PreToolUse"][1]["matcher"], "*");
        assert_eq!(once["hooks"]["SessionEnd"][0]["hooks"][0]["command"], cmd);
        // Another target replaces ours, not adds a second.
        let moved = install_settings(&once, "/opt/bin/dreamlog --db /data/x.db hook", false).unwrap();
        assert_eq!(moved["hooks"]["Stop"].as_array().unwrap().len(), 1);
        assert_eq!(install_settings(&moved, cmd, true).unwrap(), theirs, "exactly ours removed");
        assert!(install_settings(&serde_json::json!([1]), cmd, false).is_err());
        assert!(is_ours("\"/a b/dreamlog\" hook") && is_ours("/a/dreamlog --db x hook"));
        assert!(!is_ours("/usr/bin/dreamlog-hook") && !is_ours("dreamlog serve"));
    }

    #[test]
    fn whole_lines_only_and_a_line_longer_than_a_segment_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t.jsonl");
        std::fs::write(&t, "{\"a\":1}\n{\"b\":").unwrap();
        assert_eq!(read_lines(&t, 0).unwrap().unwrap(), "{\"a\":1}\n", "the half line waits");
        assert_eq!(read_lines(&t, 8).unwrap().unwrap(), "");
        assert!(read_lines(&dir.path().join("none"), 0).unwrap().is_none());
        let long = format!("{{\"big\":\"{}\"}}\n", "x".repeat(MAX_SEGMENT as usize + 10));
        std::fs::write(&t, format!("{long}{{\"c\":3}}\n")).unwrap();
        std::fs::write(&t, format!("{long}{{\"c\":")).unwrap();
        assert_eq!(read_lines(&t, 0).unwrap().unwrap(), long, "one line past the segment size, whole");
        std::fs::write(&t, format!("{long}{{\"c\":3}}\n")).unwrap();
        assert_eq!(read_lines(&t, long.len() as u64).unwrap().unwrap(), "{\"c\":3}\n");
    }

    #[test]
    fn deliveries_are_checked_before_anything_is_written() {
        let mut d = delivery(vec![seg("t", 0, "half")]);
        assert!(check(&d).unwrap_err().to_string().contains("whole line"));
        d.transcripts.clear();
        d.payload = serde_json::json!({"session_id": "../x"});
        assert!(check(&d).unwrap_err().to_string().contains("session_id"));
        d.payload = serde_json::json!({"session_id": "0b9e-11"});
        check(&d).unwrap();
    }
}
