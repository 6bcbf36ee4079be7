//! `dreamlog sync anthropic`, the dream part: hosted dreams (`GET /v1/dreams`) recorded
//! as dreams of an external dreamer, `anthropic-hosted` at the version of the model that
//! ran them, once they end (`completed`, `failed` or `canceled`).
//!
//! A dream reads a memory store and sessions and writes a reorganised store: by default
//! a new one that starts as a copy of its input (`create_new`), which the memory part
//! mirrors as a fork of the mirrored input at the dream's `created_at` (so `memory diff`
//! and `memory promote` apply); or the input itself (`update_existing`). Its commands are
//! the memory versions its session wrote, mirrored as any version (blame names that
//! session). The `dream` event records the input store and its state when the dream was
//! created, the output store and its state when the dream ended, the dream's request and
//! usage, and cites the start of each input session mirrored. It cannot be replayed — the
//! dreamer ran on Anthropic's side — and `dream show` and `dream replay` say so.
//!
//! Exactly once: each dream is its own stream, `anthropic.hosted-dream/ID`, appended only
//! while it does not exist.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::hosted::Hosted;
use super::mirror::{sync_actor, UnmappedObject};
use super::sessions::StoreStates;
use crate::core::{Body, CanonicalJson, Draft, Dream, ExpectedVersion};
use crate::error::{Error, Result};
use crate::service::{LookupRequest, Service};
use crate::store::AppendBatch;

/// The beta of the dream routes.
pub const DREAMS_BETA: &str = "dreaming-2026-04-21";
/// The dreamer name hosted dreams are recorded under.
pub const HOSTED_DREAMER: &str = "anthropic-hosted";
/// The stream of a hosted dream, by its id.
pub fn dream_stream(id: &str) -> String {
    format!("anthropic.hosted-dream/{id}")
}

/// What the dream part did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DreamsSync {
    /// Dreams the API listed.
    pub listed: usize,
    /// Dreams recorded by this sync.
    pub recorded: usize,
    /// Dreams an earlier sync recorded.
    pub already: usize,
    /// Dreams still `pending` or `running`: recorded once they end.
    pub running: usize,
    /// Dreams whose stores this sync did not mirror (not among `--store`, or refused).
    pub stores_not_mirrored: usize,
    /// Dreams that ended in the last ten minutes, or whose input sessions are not all
    /// mirrored yet: recorded by a later sync, whole.
    #[serde(default)]
    pub settling: usize,
    /// Why the dreams could not be listed (a key the dreams' research preview is not open
    /// to): nothing recorded, no store mirrored as a fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Every hosted dream, oldest first.
pub fn list_dreams(hosted: &Hosted) -> Result<Vec<Value>> {
    let mut dreams = Vec::new();
    let q = [("include_archived", "true".to_owned()), ("limit", "100".to_owned())];
    hosted.list("/v1/dreams", &q, DREAMS_BETA, |d| {
        if d["type"] == "dream" {
            dreams.push(d);
        }
        Ok(())
    })?;
    dreams.sort_by_key(|d| (time(&d["created_at"]), d["id"].as_str().unwrap_or_default().to_owned()));
    Ok(dreams)
}

/// The input store of a dream (its `memory_store` input).
fn input_store(d: &Value) -> Option<&str> {
    d["inputs"].as_array()?.iter().find(|i| i["type"] == "memory_store")?["memory_store_id"].as_str()
}

/// The store a dream wrote to: its output, or (`update_existing`) its input.
fn output_store(d: &Value) -> Option<&str> {
    match d["output_behavior"]["type"].as_str() {
        Some("update_existing") => d["output_behavior"]["memory_store_id"].as_str().or_else(|| input_store(d)),
        _ => d["outputs"].as_array()?.first()?["memory_store_id"].as_str(),
    }
}

/// The stores `create_new` dreams wrote, each with its input, the dream's `created_at` and
/// (once it ended) its `ended_at`.
pub fn forks(dreams: &[Value]) -> BTreeMap<String, (String, u64, Option<u64>)> {
    let mut out = BTreeMap::new();
    for d in dreams {
        if d["output_behavior"]["type"] == "update_existing" {
            continue;
        }
        if let (Some(input), Some(output), Some(at)) = (input_store(d), output_store(d), time(&d["created_at"])) {
            out.insert(output.to_owned(), (input.to_owned(), at, time(&d["ended_at"])));
        }
    }
    out
}

/// The earliest `created_at` of a `create_new` dream still pending or running that has not
/// named its new store yet (the API says `outputs` is empty until then).
pub fn unnamed_outputs_since(dreams: &[Value]) -> Option<u64> {
    dreams
        .iter()
        .filter(|d| matches!(d["status"].as_str(), Some("pending" | "running")))
        .filter(|d| d["output_behavior"]["type"] != "update_existing")
        .filter(|d| d["outputs"].as_array().is_none_or(Vec::is_empty))
        .filter_map(|d| time(&d["created_at"]))
        .min()
}

/// Records the dreams that ended and are not recorded yet: once they ended before
/// `settled` (the sync's start less the margin, so their last versions are in) and no input
/// session is left for a later sync (`later_sessions`), so the record is whole.
pub fn record_dreams(
    svc: &dyn Service,
    dreams: &[Value],
    mirrored: &BTreeSet<String>,
    later_sessions: &BTreeSet<String>,
    settled: u64,
    unmapped: &mut Vec<UnmappedObject>,
) -> Result<DreamsSync> {
    let mut out = DreamsSync { listed: dreams.len(), ..DreamsSync::default() };
    let streams: Vec<String> = dreams.iter().map(|d| dream_stream(d["id"].as_str().unwrap_or_default())).collect();
    let mut exists = Vec::with_capacity(streams.len());
    for page in streams.chunks(crate::service::PAGE) {
        let (_, heads) = svc.lookup(&LookupRequest { ids: Vec::new(), streams: page.to_vec() })?;
        exists.extend(heads.iter().map(Option::is_some));
    }
    let mut states = StoreStates::default();
    for ((d, stream), exists) in dreams.iter().zip(streams).zip(exists) {
        let id = d["id"].as_str().unwrap_or_default();
        if exists {
            out.already += 1;
            continue;
        }
        if !matches!(d["status"].as_str(), Some("completed" | "failed" | "canceled")) {
            out.running += 1;
            continue;
        }
        let (Some(input), Some(created)) = (input_store(d), time(&d["created_at"])) else {
            let reason = "no memory store input, or no created_at".to_owned();
            unmapped.push(UnmappedObject { object: id.to_owned(), reason });
            continue;
        };
        let output = output_store(d);
        if !mirrored.contains(input) || output.is_some_and(|o| !mirrored.contains(o)) {
            out.stores_not_mirrored += 1;
            continue;
        }
        let ended = time(&d["ended_at"]).unwrap_or(created);
        if ended >= settled {
            out.settling += 1;
            continue;
        }
        let Some((base_state, base_at)) = states.state_at(svc, input, created)? else {
            out.stores_not_mirrored += 1;
            continue;
        };
        // What it ended with: its output store when it ended (a dream that wrote nothing
        // leaves its input as it was).
        let wrote = output.is_some();
        let (output, result_state) = match output {
            Some(o) => match states.state_at(svc, o, ended)? {
                Some((state, _)) => (o.to_owned(), state),
                None => (o.to_owned(), base_state),
            },
            None => (input.to_owned(), base_state),
        };
        // The sessions it read, those mirrored: cited.
        let sessions: Vec<String> = d["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["type"] == "sessions")
            .flat_map(|i| i["session_ids"].as_array().into_iter().flatten().filter_map(Value::as_str))
            .map(str::to_owned)
            .collect();
        let starts: Vec<String> = sessions.iter().map(|s| crate::core::streams::session(s)).collect();
        let mut causes = Vec::new();
        let mut missing = false;
        for (ids, page) in sessions.chunks(crate::service::PAGE).zip(starts.chunks(crate::service::PAGE)) {
            let (_, heads) = svc.lookup(&LookupRequest { ids: Vec::new(), streams: page.to_vec() })?;
            for ((sid, stream), head) in ids.iter().zip(page).zip(heads) {
                if head.is_none() {
                    // Left for a later sync: so is the dream. (One that cannot be mapped,
                    // or has nothing to map yet, is not cited.)
                    missing |= later_sessions.contains(sid);
                    continue;
                }
                {
                    let q = crate::service::EventsQuery {
                        limit: Some(1),
                        stream: Some(stream.clone()),
                        ..Default::default()
                    };
                    causes.extend(svc.events(&q)?.first().map(|e| e.id()));
                }
            }
        }
        if missing {
            out.settling += 1;
            continue;
        }
        let model = d["model"]["id"].as_str().unwrap_or("unknown").to_owned();
        let dream = Dream {
            dreamer: HOSTED_DREAMER.to_owned(),
            version: model,
            config: CanonicalJson::from_value(&json!({
                "id": id,
                "instructions": d["instructions"],
                "model": d["model"],
                "inputs": d["inputs"],
                "output_behavior": d["output_behavior"],
            })),
            store: input.to_owned(),
            base_state,
            from_position: base_at.unwrap_or(0),
            to_position: base_at.unwrap_or(0),
            output_store: output,
            result_state,
            meta: Some(CanonicalJson::from_value(&json!({
                "replayable": false,
                // A dream that ended before it named a store wrote nothing: its output is
                // its input as it was.
                "wrote": wrote,
                "sessions": sessions,
                "anthropic": {
                    "id": id,
                    "status": d["status"],
                    "error": d["error"],
                    "usage": d["usage"],
                    "session_id": d["session_id"],
                    "outputs": d["outputs"],
                    "created_at": d["created_at"],
                    "ended_at": d["ended_at"],
                },
            }))),
        };
        let mut draft = Draft::new(stream.clone(), sync_actor(), Body::Dream(dream)).caused_by(causes);
        draft.time = Some(ended);
        let batch =
            AppendBatch { events: vec![draft], ..Default::default() }.expect(&stream, ExpectedVersion::NoStream);
        match svc.append_batch(batch) {
            Ok(_) => out.recorded += 1,
            // Recorded meanwhile (another sync): nothing to add.
            Err(Error::Log(crate::error::LogError::WrongExpectedVersion { .. })) => out.already += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

use super::hosted::api_time as time;
