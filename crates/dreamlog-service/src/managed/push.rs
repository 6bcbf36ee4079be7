//! Push-back: a revert or a promote of a store `sync anthropic` mirrors, written to the
//! hosted store where its agents read it.
//!
//! A mirror holds what the hosted store did; a change made only in dreamlog would never
//! reach the agents and would make the mirror disagree with its source, so reverts and
//! promotes into a mirrored store go to the hosted API instead (`Local` refuses them
//! otherwise). The change is planned exactly as the local one would be (the same revert
//! or promote, as a dry run), then turned into API calls (`core::push`): an update per
//! memory with `precondition: {type: content_sha256}` of the content the mirror holds, a
//! delete with `expected_content_sha256`, a create (a new memory id) for a memory that
//! comes back. Before anything is sent the hosted store is listed: a memory that changed
//! there since the mirror saw it refuses the whole push, nothing written.
//!
//! The intent — who, why, what it undoes, the calls — is an `anthropic.push` note on the
//! store's stream, appended before the first call. The calls go one by one; at the first
//! that fails (a precondition, anything else) the rest are not sent and the report names
//! what was written, what was refused and what was not sent (a failure with no answer is
//! named as such: whether it was written is not known). The store is then mirrored: the
//! hosted versions the calls made are written once, as any version, citing the intent —
//! so blame keeps the restored lines' first origin and names the push that put them back.
//! A second push of the same revert finds the memories already written equal to what it
//! wants and sends only the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::hosted::{Hosted, MEMORY_BETA};
use super::mirror::{sync_actor, sync_memory, StoreSync, SyncOptions, BATCH_VERSIONS};
use crate::core::managed::memory_path;
use crate::core::memory::Rules;
use crate::core::push::{plan_calls, PushCall, PushIntent, PushRestore, PushResult, PUSH_NOTE, PUSH_RESULT_NOTE};
use crate::core::{Actor, Body, CanonicalJson, Draft, EventId, Note, RevertTarget};
use crate::error::{Error, ManagedError, Result};
use crate::service::{EventsQuery, PathQuery, PromoteRequest, RevertRequest, Service};
use crate::store::AppendBatch;

/// `POST /v1/memory/{store}/push`: exactly one of `revert`, `promote`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// A revert of the mirrored store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<RevertRequest>,
    /// A promote of a fork into the mirrored store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<PromoteFrom>,
    /// List the calls; send nothing, write nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The fork a push promotes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteFrom {
    /// The fork.
    pub fork: String,
    /// Promote lessons whose validated lift is negative too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// What a push did (`--json`; `schemas/push-report.schema.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushReport {
    /// The hosted store (`memstore_…`).
    pub store: String,
    /// `revert` or `promote`.
    pub op: String,
    /// Nothing was sent or written.
    pub dry_run: bool,
    /// The intent's event (none on a dry run, or when there was nothing to do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<EventId>,
    /// Each call, in the order they are sent.
    pub calls: Vec<CallOutcome>,
    /// Every call was written.
    pub complete: bool,
    /// The mirror of the store after the calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StoreSync>,
    /// Why that mirror failed (the calls' outcomes above stand; `sync anthropic` later
    /// records and links them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_error: Option<String>,
}

/// One call and what came of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallOutcome {
    /// The call.
    #[serde(flatten)]
    pub call: PushCall,
    /// `planned` (dry run), `written`, `refused` (its precondition failed: the memory
    /// changed on the hosted store), `failed` (refused for another reason: not written),
    /// `unknown` (no answer: whether it was written is not known), `not_sent`.
    pub status: String,
    /// The memory written (a create's new id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// The memory version it made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The API's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether `store` is one `sync anthropic` mirrors (its first event is the mirror's).
pub fn is_mirror(svc: &dyn Service, store: &str) -> Result<bool> {
    let q = EventsQuery { from: 0, limit: Some(1), stream: Some(crate::memory::stream_name(store)), kind: None };
    match svc.events(&q) {
        Ok(first) => Ok(first.first().is_some_and(|e| e.event.header.actor == sync_actor())),
        Err(e) if e.class() == crate::error::ErrorClass::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Pushes a revert or a promote of mirrored store `store` to the hosted store.
pub fn push(svc: &dyn Service, hosted: &Hosted, store: &str, req: &PushRequest, actor: &Actor) -> Result<PushReport> {
    if !is_mirror(svc, store)? {
        return Err(Error::InvalidInput(format!(
            "memory store {store:?} is not a mirror of a hosted store (`dreamlog sync anthropic` makes those)"
        )));
    }
    let now = svc.memory_files(store, &PathQuery::default())?;
    let rules = Rules::from_number(now.rules).unwrap_or(Rules::V2);
    let mut commands = Vec::new();
    let mut revert_of: Option<(RevertTarget, Vec<EventId>)> = None;
    let op = match (&req.revert, &req.promote) {
        (Some(r), None) => {
            // Planned as the local revert: its dry run's commands.
            let preview = svc.memory_revert_dry_run(store, r, actor)?;
            for e in &preview.events {
                let draft =
                    e.clone().into_draft(None).map_err(|e| Error::InvalidInput(format!("a planned event: {e}")))?;
                match draft.body {
                    Body::Memory(m) => commands.push(m.command),
                    Body::Revert(r) => revert_of = Some((r.target, draft.causes.clone())),
                    _ => {}
                }
            }
            "revert"
        }
        (None, Some(p)) => {
            // The local promote's checks first (a lesson validated with a negative lift is
            // refused unless `force`); its plan is not used: a promote replays the fork's
            // commands, which a second push would replay again. Here each file the fork
            // changed since it was made is merged, line by line, into the store as it is
            // (so edits made on the hosted store since stay, and a push that stopped
            // midway, sent again, sends only what is still missing).
            let pr = PromoteRequest { into: store.to_owned(), force: p.force };
            svc.memory_promote_dry_run(&p.fork, &pr, actor)?;
            commands = promote_commands(svc, store, &p.fork, &now.files)?;
            "promote"
        }
        _ => return Err(Error::InvalidInput("a push is one of `revert`, `promote`".into())),
    };
    let mut report =
        PushReport { store: store.to_owned(), op: op.to_owned(), dry_run: req.dry_run, ..Default::default() };

    // The hosted memories now: their ids, and whether each is still as the mirror holds it.
    let mut hosted_now: BTreeMap<String, (String, String)> = BTreeMap::new();
    let q = [("view", "basic".to_owned()), ("limit", "100".to_owned())];
    hosted.list(&format!("/v1/memory_stores/{store}/memories"), &q, MEMORY_BETA, |m| {
        if let (Some(id), Some(path), Some(sha)) = (m["id"].as_str(), m["path"].as_str(), m["content_sha256"].as_str())
        {
            if m["type"] == "memory" {
                hosted_now.insert(memory_path(path), (id.to_owned(), sha.to_owned()));
            }
        }
        Ok(())
    })?;
    let ids: BTreeMap<String, String> = hosted_now.iter().map(|(p, (id, _))| (p.clone(), id.clone())).collect();
    let calls = plan_calls(&now.files, rules, &ids, &commands).map_err(|problems| refused(store, problems, false))?;
    // Refused whole, nothing sent, when a memory the calls touch is not as the mirror holds it.
    let mut changed = Vec::new();
    for c in &calls {
        let path = memory_path(&c.path);
        match (&c.memory_id, hosted_now.get(&path)) {
            (Some(_), Some((_, sha))) if Some(sha) != c.precondition.as_ref() => changed.push(format!(
                "{}: the hosted memory's content_sha256 is {sha}, the mirror holds {}",
                c.path,
                c.precondition.as_deref().unwrap_or("-")
            )),
            (None, Some((id, _))) if !vacated(&calls, &c.path) => {
                changed.push(format!("{}: memory {id} is at this path on the hosted store, not in the mirror", c.path))
            }
            _ => {}
        }
        if let Some(to) = &c.new_path {
            if let Some((id, _)) = hosted_now.get(&memory_path(to)).filter(|_| !vacated(&calls, to)) {
                changed.push(format!("{to}: memory {id} is at this path on the hosted store"));
            }
        }
    }
    if !changed.is_empty() {
        changed.push("run `dreamlog sync anthropic` to mirror the hosted store, then push again".into());
        return Err(refused(store, changed, true));
    }
    report.calls = calls
        .iter()
        .map(|c| CallOutcome { call: c.clone(), status: "planned".into(), memory: None, version: None, error: None })
        .collect();
    if req.dry_run || calls.is_empty() {
        report.complete = calls.is_empty();
        return Ok(report);
    }

    // The intent, before the first call.
    let (target, undone, restore) = match (op, revert_of) {
        ("revert", Some((target, undone))) => {
            let until = match &target {
                RevertTarget::Position(p) => p + 1,
                _ => match undone.first() {
                    Some(first) => svc.event(&first.to_hex())?.position,
                    None => now.until,
                },
            };
            (target_json(&target), undone, PushRestore { store: store.to_owned(), until })
        }
        _ => {
            let fork = req.promote.as_ref().map(|p| p.fork.clone()).unwrap_or_default();
            (json!({"fork": fork}), Vec::new(), PushRestore { store: fork, until: now.until })
        }
    };
    let reason = req.revert.as_ref().map(|r| r.reason.clone()).unwrap_or_default();
    let intent = PushIntent { op: op.to_owned(), target, reason, restore, calls: calls.clone() };
    let json = serde_json::to_value(&intent).map_err(|e| Error::InvalidInput(format!("push intent: {e}")))?;
    let note = Note { note_type: PUSH_NOTE.to_owned(), json: CanonicalJson::from_value(&json) };
    let draft = Draft::new(crate::memory::stream_name(store), actor.clone(), Body::Note(note)).caused_by(undone);
    let appended = svc.append_batch(AppendBatch::one(draft))?;
    report.intent = appended.first().map(|a| a.id);

    // The calls, one by one; the first that fails stops the rest.
    let mut stopped = false;
    for out in &mut report.calls {
        if stopped {
            out.status = "not_sent".into();
            continue;
        }
        match send(hosted, store, &out.call) {
            Ok(answer) => {
                out.status = "written".into();
                out.memory = answer["id"].as_str().map(str::to_owned).or_else(|| out.call.memory_id.clone());
                out.version = answer["memory_version_id"].as_str().map(str::to_owned);
            }
            Err(e) => {
                let status = match &e {
                    Error::Managed(ManagedError::Hosted { status: 409, .. }) => "refused",
                    Error::Managed(ManagedError::Hosted { status, .. }) if *status == 0 || *status >= 500 => "unknown",
                    _ => "failed",
                };
                out.status = status.into();
                out.error = Some(e.to_string());
                stopped = true;
            }
        }
    }
    report.complete = !stopped;
    // What each call did, for the mirror to link the versions by id: the versions the
    // calls made, and the calls that wrote nothing (never linked). A call whose answer
    // never came stays open: a version that matches it is linked when the mirror sees it.
    if let Some(intent) = report.intent {
        let result = PushResult {
            intent,
            versions: report.calls.iter().enumerate().filter_map(|(k, c)| c.version.clone().map(|v| (k, v))).collect(),
            closed: report
                .calls
                .iter()
                .enumerate()
                .filter(|(_, c)| matches!(c.status.as_str(), "refused" | "failed" | "not_sent"))
                .map(|(k, _)| k)
                .collect(),
        };
        let json = serde_json::to_value(&result).map_err(|e| Error::InvalidInput(format!("push result: {e}")))?;
        let note = Note { note_type: PUSH_RESULT_NOTE.to_owned(), json: CanonicalJson::from_value(&json) };
        svc.append_batch(AppendBatch::one(Draft::new(
            crate::memory::stream_name(store),
            actor.clone(),
            Body::Note(note),
        )))?;
    }

    // The mirror records what the calls wrote, citing the intent.
    let opts = SyncOptions {
        stores: vec![store.to_owned()],
        progress: None,
        batch: BATCH_VERSIONS,
        sessions: false,
        since: None,
        session_progress: None,
        redactions: false,
    };
    // (A mirror that fails now does not hide what the calls did: the report says both.)
    match sync_memory(svc, hosted, &opts) {
        Ok(synced) => report.mirror = synced.stores.into_iter().find(|s| s.store == store),
        Err(e) => report.mirror_error = Some(e.to_string()),
    }
    Ok(report)
}

/// One call to the hosted API.
fn send(hosted: &Hosted, store: &str, c: &PushCall) -> Result<Value> {
    let base = format!("/v1/memory_stores/{store}/memories");
    let id = c.memory_id.as_deref().unwrap_or_default();
    match c.op.as_str() {
        "create" => {
            let body = json!({"path": c.path, "content": c.content.as_deref().unwrap_or_default()});
            hosted.write("POST", &base, &[], Some(&body), MEMORY_BETA)
        }
        "update" => {
            let mut body = serde_json::Map::new();
            if let Some(content) = &c.content {
                body.insert("content".into(), json!(content));
            }
            if let Some(to) = &c.new_path {
                body.insert("path".into(), json!(to));
            }
            if let Some(sha) = &c.precondition {
                body.insert("precondition".into(), json!({"type": "content_sha256", "content_sha256": sha}));
            }
            hosted.write("POST", &format!("{base}/{id}"), &[], Some(&Value::Object(body)), MEMORY_BETA)
        }
        _ => {
            let q: Vec<(&str, String)> =
                c.precondition.iter().map(|sha| ("expected_content_sha256", sha.clone())).collect();
            hosted.write("DELETE", &format!("{base}/{id}"), &q, None, MEMORY_BETA)
        }
    }
}

fn target_json(t: &RevertTarget) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn refused(store: &str, problems: Vec<String>, conflict: bool) -> Error {
    Error::Managed(ManagedError::PushRefused { store: store.to_owned(), problems, conflict })
}

/// Whether a call of the plan frees `path` (a delete of it, a move away from it).
fn vacated(calls: &[PushCall], path: &str) -> bool {
    calls.iter().any(|d| d.path == path && (d.op == "delete" || d.new_path.is_some()))
}

/// A promote of `fork` into `store` as commands over the store's files now (`ours`): each
/// file the fork changed since it was made goes to the fork's content, merged line by line
/// with what changed in the store since (three-way, the fork point as the base); a file
/// both changed where their changes overlap refuses the push, naming it.
fn promote_commands(
    svc: &dyn Service,
    store: &str,
    fork: &str,
    ours: &BTreeMap<String, String>,
) -> Result<Vec<crate::core::MemoryCommand>> {
    use crate::core::MemoryCommand;
    let q = EventsQuery { from: 0, limit: Some(1), stream: Some(crate::memory::stream_name(fork)), kind: None };
    let position = match svc.events(&q)?.first().map(|e| &e.event.body) {
        Some(Body::StoreFork(f)) if f.source == store => f.position,
        _ => {
            return Err(Error::InvalidInput(format!(
                "memory store {fork:?} is not a fork of {store:?}: nothing to promote"
            )))
        }
    };
    let base = svc.memory_files(store, &PathQuery { path: None, at: Some(position.to_string()) })?.files;
    let theirs = svc.memory_files(fork, &PathQuery::default())?.files;
    let paths: std::collections::BTreeSet<&String> = base.keys().chain(theirs.keys()).collect();
    let mut commands = Vec::new();
    let mut overlapping = Vec::new();
    for p in paths {
        let (b, t, o) = (base.get(p), theirs.get(p), ours.get(p));
        if b == t || o == t {
            continue;
        }
        let wanted = if o == b {
            t.cloned()
        } else if let (Some(b), Some(o), Some(t)) = (b, o, t) {
            match crate::core::memory::merge3(b, o, t) {
                Some(m) => Some(m),
                None => {
                    overlapping.push(format!("{p}: changed in {fork} and here since the fork, in the same lines"));
                    continue;
                }
            }
        } else {
            overlapping.push(format!("{p}: changed in {fork} and here since the fork (made or deleted on one side)"));
            continue;
        };
        if wanted.as_ref() == o {
            continue;
        }
        commands.push(match wanted {
            Some(text) => MemoryCommand::Write { path: p.clone(), file_text: text },
            None => MemoryCommand::Delete { path: p.clone() },
        });
    }
    if !overlapping.is_empty() {
        return Err(refused(store, overlapping, true));
    }
    Ok(commands)
}
