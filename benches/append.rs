//! Append throughput (issue: core log targets). Run: `cargo bench --bench append`.
//!
//! - dreamlog append, 256-byte bodies, batches of 1 / 100 / 1,000, sync none and fsync;
//! - raw RocksDB writing the same keys and values in the same batches (overhead ratio);
//! - group commit: 32 concurrent single-event appenders with fsync against one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dreamlog::{Actor, AppendBatch, Body, CanonicalJson, Draft, Note, Options, Store, SyncMode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A note whose body encodes to 256 bytes.
fn event(stream: &str) -> Draft {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let text = format!("{n:020}{}", "x".repeat(256 - 20 - 7 - 3));
    let body = Body::Note(Note { note_type: "bench".into(), json: CanonicalJson::from_value(&text.into()) });
    debug_assert_eq!(body.encode().len(), 256);
    Draft::new(stream, Actor::Agent("bench".into()), body)
}

fn open(dir: &std::path::Path, sync: SyncMode) -> Store {
    dreamlog::open(dir, Options { sync, ..Options::default() }).expect("open")
}

fn batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for sync in [SyncMode::None, SyncMode::Fsync] {
        for size in [1usize, 100, 1000] {
            if sync == SyncMode::Fsync && size == 1 {
                // covered by the group-commit benchmark (one appender)
                continue;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let store = open(dir.path(), sync);
            g.throughput(Throughput::Elements(size as u64));
            g.bench_function(BenchmarkId::new(format!("{sync:?}").to_lowercase(), size), |b| {
                b.iter_batched(
                    || (0..size).fold(AppendBatch::new(), |bt, i| bt.push(event(&format!("s{}", i % 64)))),
                    |batch| store.append(batch).expect("append"),
                    criterion::BatchSize::SmallInput,
                )
            });
            store.close().expect("close");
        }
    }
    g.finish();
}

/// The same key/value bytes dreamlog writes (record, id, stream and kind entries),
/// written straight to RocksDB in one WriteBatch of `size` events.
fn raw_rocksdb(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_rocksdb");
    g.sample_size(10).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for (sync, size) in [(false, 100usize), (false, 1000), (true, 1000)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_write_buffer_size(64 << 20);
        opts.set_allow_concurrent_memtable_write(false);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), dreamlog::store::ALL_CFS).expect("open");
        let mut pos = 0u64;
        let mut versions = std::collections::HashMap::<String, u64>::new();
        g.throughput(Throughput::Elements(size as u64));
        let name = if sync { "fsync" } else { "none" };
        g.bench_function(BenchmarkId::new(name, size), |b| {
            b.iter_batched(
                || {
                    (0..size)
                        .map(|i| {
                            let stream = format!("s{}", i % 64);
                            let v = versions.entry(stream.clone()).or_insert(0);
                            *v += 1;
                            (stream, *v, event(&format!("s{}", i % 64)))
                        })
                        .collect::<Vec<_>>()
                },
                |events| {
                    // Timed: encoding, hashing and the write, as in dreamlog's append
                    // (which adds validation, chaining and the group-commit handoff).
                    let (log, ids, streams, kinds) = (
                        db.cf_handle("log").expect("cf"),
                        db.cf_handle("ids").expect("cf"),
                        db.cf_handle("streams").expect("cf"),
                        db.cf_handle("kinds").expect("cf"),
                    );
                    let mut wb = rocksdb::WriteBatch::default();
                    for (stream, v, draft) in &events {
                        let e = draft.seal(1, vec![]).expect("seal");
                        let mut rec = Vec::with_capacity(45 + e.header_bytes.len() + e.body_bytes.len());
                        rec.push(0);
                        rec.extend_from_slice(&v.to_be_bytes());
                        rec.extend_from_slice(&e.id.0);
                        rec.extend_from_slice(&(e.header_bytes.len() as u32).to_be_bytes());
                        rec.extend_from_slice(&e.header_bytes);
                        rec.extend_from_slice(&e.body_bytes);
                        wb.put_cf(log, pos.to_be_bytes(), rec);
                        wb.put_cf(ids, e.id.0, pos.to_be_bytes());
                        let mut sk = stream.as_bytes().to_vec();
                        sk.push(0);
                        sk.extend_from_slice(&v.to_be_bytes());
                        wb.put_cf(streams, sk, pos.to_be_bytes());
                        let mut kk = vec![11u8];
                        kk.extend_from_slice(&pos.to_be_bytes());
                        wb.put_cf(kinds, kk, b"");
                        pos += 1;
                    }
                    let mut wo = rocksdb::WriteOptions::default();
                    wo.set_sync(sync);
                    wo.set_memtable_insert_hint_per_batch(true);
                    db.write_opt(wb, &wo).expect("write");
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit_fsync");
    g.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    for threads in [1usize, 32] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(open(dir.path(), SyncMode::Fsync));
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("appenders", threads), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads as u64);
                let start = Instant::now();
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let store = store.clone();
                        std::thread::spawn(move || {
                            for _ in 0..per {
                                store.append(AppendBatch::one(event(&format!("t{t}")))).expect("append");
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.join().expect("join");
                }
                // Normalise to the time for `iters` events.
                start.elapsed().mul_f64(iters as f64 / (per * threads as u64) as f64)
            })
        });
        store.close().expect("close");
    }
    g.finish();
}

criterion_group!(benches, batched, raw_rocksdb, group_commit);
criterion_main!(benches);
