//! Sequential read-and-decode throughput. Run: `cargo bench --bench read`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dreamlog::{Actor, AppendBatch, Body, CanonicalJson, Draft, Note, Options, Store, SyncMode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 200_000;

fn setup(dir: &std::path::Path) -> Store {
    let store = dreamlog::open(dir, Options { sync: SyncMode::None, ..Options::default() }).expect("open");
    for chunk in 0..EVENTS / 1000 {
        let batch = (0..1000u64).fold(AppendBatch::new(), |b, i| {
            let n = chunk * 1000 + i;
            let text = format!("{n:020}{}", "x".repeat(226));
            let body = Body::Note(Note { note_type: "bench".into(), json: CanonicalJson::from_value(&text.into()) });
            b.push(Draft::new(format!("s{}", n % 64), Actor::Agent("bench".into()), body))
        });
        store.append(batch).expect("append");
    }
    store
}

fn sequential(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = setup(dir.path());
    let mut g = c.benchmark_group("read");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(EVENTS));
    g.bench_function("scan_decode_200k", |b| {
        b.iter(|| {
            let mut n = 0u64;
            store
                .scan(0, |e| {
                    n += e.event.header.body_len;
                    true
                })
                .expect("scan");
            assert!(n > 0);
        })
    });
    g.finish();
}

criterion_group!(benches, sequential);
criterion_main!(benches);
