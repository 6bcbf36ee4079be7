//! Crash durability (DESIGN invariant 1): a child process appends with sync `fsync` and
//! is killed with SIGKILL at random moments. After each kill the store is reopened and
//! every acknowledged event must be there, with no partial event, gapless positions and a
//! clean verify. The child is this same test binary, re-run with DREAMLOG_CRASH_CHILD set.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use dreamlog::{AppendBatch, EventId, Options, Store, SyncMode};

const ITERATIONS: u64 = 24;

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The child: appends batches forever, printing `position id` for each acknowledged event.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var("DREAMLOG_CRASH_CHILD") else { return };
    let store = Store::open(&dir, Options { sync: SyncMode::Fsync, ..Options::default() }).expect("open");
    let mut seed: u64 = std::env::var("DREAMLOG_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7) | 1;
    let mut out = std::io::stdout().lock();
    loop {
        let n = 1 + xorshift(&mut seed) % 40;
        let batch = (0..n)
            .fold(AppendBatch::new(), |b, i| b.push(common::note(&format!("crash-{}", xorshift(&mut seed) % 5), i)));
        let acked = store.append(batch).expect("append");
        for a in acked {
            writeln!(out, "ACK {} {}", a.position, a.id).expect("stdout");
        }
        out.flush().expect("flush");
    }
}

#[test]
fn acknowledged_appends_survive_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut acked_total: Vec<(u64, EventId)> = Vec::new();
    for iteration in 0..ITERATIONS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_appender", "--nocapture", "--test-threads=1"])
            .env("DREAMLOG_CRASH_CHILD", dir.path())
            .env("DREAMLOG_CRASH_SEED", xorshift(&mut seed).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let (pos, id) = rest.split_once(' ').expect("ACK line");
                    acked.push((pos.parse::<u64>().unwrap(), id.parse::<EventId>().unwrap()));
                }
            }
            acked
        });
        // Let it open and write for a random while: sometimes before the first ack,
        // mostly in the middle of a stream of appends.
        std::thread::sleep(Duration::from_millis(20 + xorshift(&mut seed) % 400));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let acked = reader.join().unwrap();

        let store = Store::open(dir.path(), Options { sync: SyncMode::Fsync, ..Options::default() }).unwrap();
        for (pos, id) in acked_total.iter().chain(acked.iter()) {
            let e = store
                .get_at(*pos)
                .unwrap_or_else(|e| panic!("iteration {iteration}: acknowledged position {pos} lost: {e}"));
            assert_eq!(e.id(), *id, "iteration {iteration}: position {pos} holds another event");
        }
        let report = store.verify(|_| {}).unwrap();
        assert!(report.is_clean(), "iteration {iteration}: {:#?}", report.problems);
        assert_eq!(report.events, store.len(), "positions are gapless");
        let all = store.read_range(0, usize::MAX).unwrap();
        assert!(all.iter().enumerate().all(|(i, e)| e.position == i as u64));
        acked_total.extend(acked);
        store.close().unwrap();
    }
    assert!(acked_total.len() > 100, "the child acknowledged only {} events in all", acked_total.len());
    eprintln!("{} acknowledged events survived {ITERATIONS} kills", acked_total.len());
}
