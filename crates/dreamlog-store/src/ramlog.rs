//! The in-memory backend: the same key spaces as RocksDB's column families, held in
//! ordered maps under one lock. A real second backend, not a mock: the property tests run
//! the same scenarios against it and RocksDB and compare everything they read back.
//! Nothing survives the process; [`RamLog`] is shared (`Arc`) so a test can close an
//! engine and open another over the same log, as a restart.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

use super::layout;
use super::log::{Group, Log};
use crate::core::projection::{self, IndexEntry, Projected, Space};
use crate::core::EventId;
use crate::error::LogError;
use crate::error::{Error, Result};

#[derive(Default)]
struct State {
    records: BTreeMap<u64, Vec<u8>>,
    ids: BTreeMap<[u8; 32], u64>,
    streams: BTreeMap<(String, u64), u64>,
    spaces: HashMap<Space, BTreeMap<Vec<u8>, Vec<u8>>>,
    marker: Option<u64>,
    projected: HashMap<String, u64>,
    receipts: BTreeMap<u64, Vec<u8>>,
    own: HashMap<String, Vec<u8>>,
}

/// A log held in memory.
#[derive(Default)]
pub struct RamLog {
    state: RwLock<State>,
}

impl RamLog {
    /// An empty log.
    pub fn new() -> RamLog {
        RamLog::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Log for RamLog {
    fn describe(&self) -> String {
        "in-memory log".into()
    }

    fn marker(&self) -> Result<Option<u64>> {
        Ok(self.read().marker)
    }

    fn stored_end(&self) -> Result<u64> {
        Ok(self.read().records.keys().next_back().map(|p| p + 1).unwrap_or(0))
    }

    fn truncate(&self, end: u64) -> Result<()> {
        let mut s = self.write_state();
        let dropped: Vec<(u64, Vec<u8>)> = s.records.split_off(&end).into_iter().collect();
        for (pos, raw) in dropped {
            if let Some(parts) = layout::split_record(&raw) {
                s.ids.remove(&parts.id.0);
            }
            if let Ok(e) = super::decode_record(pos, &raw) {
                s.streams.remove(&(e.event.header.stream.clone(), e.version));
                let mut entries = Vec::new();
                let body = Some(&e.event.body);
                projection::project(
                    &Projected { position: pos, version: e.version, header: &e.event.header, body },
                    &mut entries,
                );
                for x in entries {
                    s.spaces.entry(x.space).or_default().remove(&x.key);
                }
            }
        }
        s.receipts.split_off(&end);
        s.marker = Some(end);
        for c in s.projected.values_mut() {
            *c = (*c).min(end);
        }
        Ok(())
    }

    fn write(&self, group: &Group, _sync: bool) -> Result<()> {
        let mut s = self.write_state();
        for st in &group.events {
            let e = &st.event;
            s.records.insert(st.position, layout::encode_staged(st));
            s.ids.insert(e.id.0, st.position);
            s.streams.insert((e.header.stream.clone(), st.version), st.position);
            if let Some(r) = &st.receipt {
                s.receipts.insert(st.position, r.clone());
            }
        }
        for (position, record) in &group.rewrites {
            s.records.insert(*position, record.clone());
        }
        for space in &group.clear {
            s.spaces.remove(space);
        }
        for x in &group.index {
            s.spaces.entry(x.space).or_default().insert(x.key.clone(), x.value.clone());
        }
        s.marker = Some(group.end);
        Ok(())
    }

    fn record(&self, position: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.read().records.get(&position).cloned())
    }

    fn own(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.read().own.get(key).cloned())
    }

    fn set_own(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write_state().own.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn receipt_at_or_before(&self, position: u64) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(self.read().receipts.range(..=position).next_back().map(|(p, r)| (*p, r.clone())))
    }

    fn receipts(&self, from: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        let all: Vec<(u64, Vec<u8>)> = self.read().receipts.range(from..).map(|(p, r)| (*p, r.clone())).collect();
        for (p, r) in all {
            if !f(p, &r)? {
                break;
            }
        }
        Ok(())
    }

    fn scan(&self, from: u64, end: u64, f: &mut dyn FnMut(u64, &[u8]) -> Result<bool>) -> Result<()> {
        // Copy out in chunks so `f` never runs under the lock.
        let mut next = from;
        loop {
            let chunk: Vec<(u64, Vec<u8>)> =
                self.read().records.range(next..end).take(1024).map(|(p, r)| (*p, r.clone())).collect();
            let Some(last) = chunk.last().map(|(p, _)| *p) else { return Ok(()) };
            for (pos, raw) in chunk {
                if !f(pos, &raw)? {
                    return Ok(());
                }
            }
            next = last + 1;
        }
    }

    fn records(&self, positions: &[u64], f: &mut dyn FnMut(u64, &[u8]) -> Result<()>) -> Result<()> {
        let found: Vec<(u64, Option<Vec<u8>>)> = {
            let s = self.read();
            positions.iter().map(|p| (*p, s.records.get(p).cloned())).collect()
        };
        for (pos, raw) in found {
            let raw = raw.ok_or(Error::Log(LogError::Corrupt {
                position: pos,
                reason: "index points at a missing record".into(),
            }))?;
            f(pos, &raw)?;
        }
        Ok(())
    }

    fn position_of(&self, id: &EventId) -> Result<Option<u64>> {
        Ok(self.read().ids.get(&id.0).copied())
    }

    fn ids_from(&self, start: &[u8], f: &mut dyn FnMut(&[u8], Option<u64>) -> bool) -> Result<()> {
        let mut from = [0u8; 32];
        let n = start.len().min(32);
        from[..n].copy_from_slice(&start[..n]);
        let entries: Vec<([u8; 32], u64)> = self.read().ids.range(from..).map(|(k, v)| (*k, *v)).collect();
        for (k, v) in entries {
            if !f(&k, Some(v)) {
                break;
            }
        }
        Ok(())
    }

    fn stream_last(&self, stream: &str) -> Result<Option<(u64, u64)>> {
        let s = self.read();
        let range = (Bound::Included((stream.to_owned(), 0)), Bound::Included((stream.to_owned(), u64::MAX)));
        Ok(s.streams.range(range).next_back().map(|((_, v), p)| (*v, *p)))
    }

    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>> {
        Ok(self.read().streams.get(&(stream.to_owned(), version)).copied())
    }

    fn stream_positions(&self, stream: &str, from_version: u64, limit: usize) -> Result<Vec<u64>> {
        let s = self.read();
        let range = (stream.to_owned(), from_version)..=(stream.to_owned(), u64::MAX);
        Ok(s.streams.range(range).take(limit).map(|(_, p)| *p).collect())
    }

    fn streams(&self) -> Result<Vec<(String, u64)>> {
        let s = self.read();
        let mut out: Vec<(String, u64)> = Vec::new();
        for (name, version) in s.streams.keys() {
            match out.last_mut() {
                Some((n, v)) if n == name => *v = *version,
                _ => out.push((name.clone(), *version)),
            }
        }
        // Byte order of names, as RocksDB's keys sort (the 0x00 separator makes a name sort
        // before its extensions, which `String` order agrees with).
        Ok(out)
    }

    fn stream_entries(&self) -> Result<u64> {
        Ok(self.read().streams.len() as u64)
    }

    fn index_scan(&self, space: Space, from: &[u8], f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = match self.read().spaces.get(&space) {
            Some(m) => m.range(from.to_vec()..).map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => Vec::new(),
        };
        for (k, v) in entries {
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn index_last_at_or_before(&self, space: Space, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .read()
            .spaces
            .get(&space)
            .and_then(|m| m.range(..=key.to_vec()).next_back().map(|(k, v)| (k.clone(), v.clone()))))
    }

    fn index_put(&self, entries: &[IndexEntry]) -> Result<()> {
        let mut s = self.write_state();
        for x in entries {
            s.spaces.entry(x.space).or_default().insert(x.key.clone(), x.value.clone());
        }
        Ok(())
    }

    fn index_delete_range(&self, space: Space, from: &[u8], to: &[u8]) -> Result<()> {
        let mut s = self.write_state();
        if let Some(m) = s.spaces.get_mut(&space) {
            let keys: Vec<Vec<u8>> = m.range(from.to_vec()..to.to_vec()).map(|(k, _)| k.clone()).collect();
            for k in keys {
                m.remove(&k);
            }
        }
        Ok(())
    }

    fn index_clear(&self, space: Space) -> Result<()> {
        self.write_state().spaces.remove(&space);
        Ok(())
    }

    fn projected_to(&self, projector: &str) -> Result<Option<u64>> {
        let s = self.read();
        Ok(s.projected.get(projector).copied().or(s.marker))
    }

    fn set_projected_to(&self, projector: &str, position: Option<u64>) -> Result<()> {
        let mut s = self.write_state();
        match position {
            Some(p) => s.projected.insert(projector.to_owned(), p),
            None => s.projected.remove(projector),
        };
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
