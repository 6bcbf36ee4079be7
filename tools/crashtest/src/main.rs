//! dreamlog-crashtest: crashes dreamlog at random moments, with and without losing power,
//! and checks what survives.
//!
//! The database lives on powerfs (src/powerfs.rs), an in-memory FUSE filesystem mounted
//! by this process. Each round arms a trip wire: after a random number of the workload's
//! mutating filesystem requests (writes, syncs, creates, renames, unlinks), the next one
//! freezes the "disk". The harness then SIGKILLs the workload (and the server), and for a
//! power loss drops every byte not fsynced; it remounts (the kernel's caches go) and a
//! fresh process opens the database and checks it:
//!
//! - every acknowledged event is present exactly once, at its acknowledged position, and
//!   every acknowledged imported session is there (under `--sync none`, a power loss may
//!   instead lose a suffix of the log: every acknowledged event below the new length must
//!   still be in place, and what is gone is counted);
//! - no batch is partial (each append batch's notes carry the batch's size);
//! - positions are gapless and ids unique;
//! - `verify --deep` is clean: chains, body hashes, every projector against a rebuild,
//!   every table block's checksum, snapshots against a replay.
//!
//! The workload (the same binary, `workload`) runs concurrent appends, memory tool
//! commands, imports and dreams, embedded (`--mode embedded`) or through `dreamlog serve`
//! (`--mode server`); every `--rounds-per-db` rounds (25) it starts on a fresh disk.
//!
//! Every run prints its seed, every round its own: `--seed S` replays the same rounds —
//! the same workloads, the same crash points (counted in filesystem requests, not time)
//! and the same choice of power loss or SIGKILL; only the threads' interleaving differs.
//!
//! Usage: dreamlog-crashtest [--crashes N] [--seed S] [--mode embedded|server|both]
//!                           [--sync fsync|none] [--max-ops N] [--rounds-per-db N]
//!                           [--json] [--keep]
//!                           [--dreamlog PATH] [--disk-ignores-fsync]
//!
//! `--disk-ignores-fsync` is the harness's self-test: a disk that acknowledges every
//! fsync and keeps nothing, which the checks must catch.

mod powerfs;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use dreamlog::service::{AppendRequest, DreamRequest, Local, Remote, Service, ToolContext, VerifyQuery};
use dreamlog::{Options, SyncMode};
use serde_json::{json, Value};

use powerfs::{PowerFs, Tree};

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("workload") => workload(&args[1..]),
        Some("check") => check(&args[1..]),
        _ => harness(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dreamlog-crashtest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn has(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

/// splitmix64: one seed, many independent streams.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------------------------------
// The harness.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Embedded,
    Server,
}

/// The trip wire between the filesystem and the harness.
pub struct Trip {
    /// Mutating requests left before the disk freezes (≤ 0: disarmed).
    countdown: AtomicI64,
    armed: AtomicBool,
    frozen: Mutex<bool>,
    cv: Condvar,
}

impl Trip {
    fn new() -> Arc<Trip> {
        Arc::new(Trip {
            countdown: AtomicI64::new(0),
            armed: AtomicBool::new(false),
            frozen: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    fn arm(&self, after: u64) {
        self.countdown.store(after as i64, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Called by the filesystem before every mutating request: false = refuse it (EIO).
    /// The request that trips the wire blocks until the harness has killed the writers.
    pub fn pass(&self) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return true;
        }
        if self.countdown.fetch_sub(1, Ordering::SeqCst) > 1 {
            return true;
        }
        let mut frozen = self.frozen.lock().unwrap_or_else(|p| p.into_inner());
        if self.armed.load(Ordering::SeqCst) && !*frozen {
            *frozen = true;
            self.cv.notify_all();
            // Hold this request (its process cannot die before it is answered) until
            // the harness has sent every writer SIGKILL and disarmed.
            while self.armed.load(Ordering::SeqCst) {
                frozen = self.cv.wait(frozen).unwrap_or_else(|p| p.into_inner());
            }
            return false;
        }
        !self.armed.load(Ordering::SeqCst)
    }

    /// Waits until the wire trips or the time is up; true when it tripped.
    fn wait(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut frozen = self.frozen.lock().unwrap_or_else(|p| p.into_inner());
        while !*frozen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            frozen = self.cv.wait_timeout(frozen, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    fn disarm(&self) {
        let mut frozen = self.frozen.lock().unwrap_or_else(|p| p.into_inner());
        self.armed.store(false, Ordering::SeqCst);
        *frozen = false;
        self.cv.notify_all();
    }
}

/// What the workloads acknowledged, over all rounds.
#[derive(Default)]
struct Acked {
    /// position → event id.
    events: BTreeMap<u64, String>,
    /// imported session id → its events.
    sessions: BTreeMap<String, u64>,
    /// Acknowledgements by what made them (append, memory, dream, import, redact).
    by_kind: BTreeMap<String, u64>,
    /// position → the secret text of an event written to be redacted (`T` lines).
    secrets: BTreeMap<u64, String>,
    /// Positions whose redaction was acknowledged (`R` lines).
    redacted: BTreeSet<u64>,
}

impl Acked {
    fn take_line(&mut self, line: &str) {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("E"), Some(pos), Some(id)) => {
                if let Ok(pos) = pos.parse() {
                    self.events.insert(pos, id.to_owned());
                    *self.by_kind.entry(parts.next().unwrap_or("append").to_owned()).or_default() += 1;
                }
            }
            (Some("S"), Some(session), Some(n)) => {
                if let Ok(n) = n.parse() {
                    self.sessions.insert(session.to_owned(), n);
                    *self.by_kind.entry("import".to_owned()).or_default() += 1;
                }
            }
            (Some("T"), Some(pos), Some(secret)) => {
                if let Ok(pos) = pos.parse() {
                    self.secrets.insert(pos, secret.to_owned());
                }
            }
            (Some("R"), Some(pos), None) => {
                if let Ok(pos) = pos.parse() {
                    self.redacted.insert(pos);
                }
            }
            _ => {}
        }
    }

    fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for (pos, id) in &self.events {
            writeln!(out, "E {pos} {id}")?;
        }
        for (s, n) in &self.sessions {
            writeln!(out, "S {s} {n}")?;
        }
        for (pos, secret) in &self.secrets {
            writeln!(out, "T {pos} {secret}")?;
        }
        for pos in &self.redacted {
            writeln!(out, "R {pos}")?;
        }
        out.flush()
    }
}

struct Settings {
    crashes: u64,
    seed: u64,
    modes: Vec<Mode>,
    sync: SyncMode,
    json: bool,
    dreamlog: PathBuf,
    max_ops: u64,
    rounds_per_db: u64,
    keep: bool,
    /// The self-test: a disk that acknowledges fsync and keeps nothing (must be caught).
    ignore_fsync: bool,
}

fn settings(args: &[String]) -> Result<Settings, Failure> {
    let exe = std::env::current_exe()?;
    let dreamlog = match flag(args, "--dreamlog") {
        Some(p) => PathBuf::from(p),
        None => exe.with_file_name("dreamlog"),
    };
    let modes = match flag(args, "--mode").unwrap_or("both") {
        "embedded" => vec![Mode::Embedded],
        "server" => vec![Mode::Server],
        "both" => vec![Mode::Embedded, Mode::Server],
        other => return Err(format!("--mode {other:?}: expected embedded, server or both").into()),
    };
    let seed = match flag(args, "--seed") {
        Some(s) => s.parse().map_err(|_| format!("--seed {s:?}: expected an unsigned integer"))?,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
    };
    let number = |name: &str, default: u64| -> Result<u64, Failure> {
        match flag(args, name) {
            Some(s) => Ok(s.parse().map_err(|_| format!("{name} {s:?}: expected an unsigned integer"))?),
            None => Ok(default),
        }
    };
    Ok(Settings {
        crashes: number("--crashes", 50)?,
        seed,
        modes,
        sync: flag(args, "--sync").unwrap_or("fsync").parse().map_err(|e| format!("--sync: {e}"))?,
        json: has(args, "--json"),
        dreamlog,
        max_ops: number("--max-ops", 3000)?,
        rounds_per_db: number("--rounds-per-db", 25)?.max(1),
        keep: has(args, "--keep"),
        ignore_fsync: has(args, "--disk-ignores-fsync"),
    })
}

fn sync_name(s: SyncMode) -> &'static str {
    match s {
        SyncMode::Fsync => "fsync",
        SyncMode::None => "none",
    }
}

/// Everything a run counts: its rounds, acknowledgements by kind, and the disk's fsyncs
/// and unsynced bytes dropped by power losses.
#[derive(Default)]
struct Totals {
    rounds: Vec<Round>,
    kinds: BTreeMap<String, u64>,
    disk: (u64, u64),
}

/// One round's outcome, for the report.
#[derive(Debug)]
struct Round {
    mode: Mode,
    seed: u64,
    power_loss: bool,
    tripped: bool,
    after_ops: u64,
    acked: usize,
    events: u64,
    lost: usize,
}

fn harness(args: &[String]) -> Result<(), Failure> {
    let s = settings(args)?;
    if !s.dreamlog.exists() {
        return Err(format!("{}: no dreamlog binary (build it: cargo build --release)", s.dreamlog.display()).into());
    }
    let work = std::env::temp_dir().join(format!("dreamlog-crashtest-{}", std::process::id()));
    let mnt = work.join("mnt");
    std::fs::create_dir_all(&mnt)?;
    eprintln!(
        "crashtest: seed {} · {} crashes · modes {:?} · sync {} · work {}",
        s.seed,
        s.crashes,
        s.modes,
        sync_name(s.sync),
        work.display()
    );
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut failure = None;
    for (m, mode) in s.modes.iter().enumerate() {
        let per_mode = s.crashes / s.modes.len() as u64 + u64::from((m as u64) < s.crashes % s.modes.len() as u64);
        if let Err(e) = run_mode(&s, *mode, per_mode, &work, &mnt, &mut totals) {
            failure = Some(e);
            break;
        }
    }
    let Totals { rounds, kinds, disk } = totals;
    let losses = rounds.iter().filter(|r| r.power_loss).count();
    let tripped = rounds.iter().filter(|r| r.tripped).count();
    let acked: usize = rounds.iter().map(|r| r.acked).sum();
    let lost: usize = rounds.iter().map(|r| r.lost).sum();
    let summary = json!({
        "seed": s.seed,
        "sync": sync_name(s.sync),
        "crashes": rounds.len(),
        "power_losses": losses,
        "tripped_in_io": tripped,
        "acknowledged_events": acked,
        "lost_acknowledged_events": lost,
        "acknowledged_by_kind": kinds,
        "fsyncs": disk.0,
        "unsynced_bytes_dropped": disk.1,
        "rounds": rounds.iter().map(|r| json!({
            "mode": format!("{:?}", r.mode).to_lowercase(), "seed": r.seed, "power_loss": r.power_loss,
            "tripped": r.tripped, "after_requests": r.after_ops, "events": r.events, "acknowledged": r.acked, "lost": r.lost,
        })).collect::<Vec<_>>(),
        "seconds": started.elapsed().as_secs_f64(),
        "ok": failure.is_none(),
        "failure": failure.as_ref().map(|e| e.to_string()),
    });
    if s.json {
        println!("{summary}");
    } else {
        println!(
            "{} crashes ({} with power loss, {} frozen mid-I/O) · {} acknowledged events checked {:?} · {} lost{} · {:.0} s",
            rounds.len(),
            losses,
            tripped,
            acked,
            kinds,
            lost,
            if s.sync == SyncMode::None { " (allowed under --sync none: a suffix)" } else { "" },
            started.elapsed().as_secs_f64()
        );
    }
    if failure.is_none() && !s.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    match failure {
        Some(e) => {
            Err(format!("{e}\n(reproduce with --seed {} ; the database is kept in {})", s.seed, work.display()).into())
        }
        None => Ok(()),
    }
}

fn mount(tree: &Arc<Mutex<Tree>>, trip: &Arc<Trip>, mnt: &Path) -> Result<fuser::BackgroundSession, Failure> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![fuser::MountOption::FSName("powerfs".into()), fuser::MountOption::DefaultPermissions];
    Ok(fuser::spawn_mount(PowerFs { tree: tree.clone(), trip: trip.clone() }, mnt, &config).map_err(|e| {
        format!("mounting powerfs at {}: {e} (is /dev/fuse there and fusermount3 installed?)", mnt.display())
    })?)
}

/// Unmounts; the kernel may end the connection with ECONNABORTED rather than ENODEV
/// once the mount is gone, which is the end we asked for.
fn unmount(session: fuser::BackgroundSession) -> std::io::Result<()> {
    match session.umount_and_join() {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => Ok(()),
        other => other,
    }
}

/// Children started in a round; once `dead`, anything started is killed at once.
#[derive(Default)]
struct Pids {
    children: Vec<Child>,
    dead: bool,
}

fn register(pids: &Mutex<Pids>, mut child: Child) -> Option<u32> {
    let mut p = pids.lock().unwrap_or_else(|e| e.into_inner());
    if p.dead {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    let id = child.id();
    p.children.push(child);
    Some(id)
}

fn run_mode(
    s: &Settings,
    mode: Mode,
    crashes: u64,
    work: &Path,
    mnt: &Path,
    totals: &mut Totals,
) -> Result<(), Failure> {
    let Totals { rounds, kinds, disk } = totals;
    let fresh = || {
        let tree = Tree::new();
        tree.lock().unwrap_or_else(|e| e.into_inner()).ignore_fsync = s.ignore_fsync;
        tree
    };
    let mut tree = fresh();
    let trip = Trip::new();
    let mut session = Some(mount(&tree, &trip, mnt)?);
    let db = mnt.join("db");
    let mut acked = Acked::default();
    let exe = std::env::current_exe()?;
    for r in 0..crashes {
        if r > 0 && r % s.rounds_per_db == 0 {
            // A fresh disk now and then keeps each check's full verify short.
            if let Some(old) = session.take() {
                unmount(old)?;
            }
            let t = tree.lock().unwrap_or_else(|e| e.into_inner());
            disk.0 += t.syncs;
            disk.1 += t.lost_bytes;
            drop(t);
            for (k, n) in std::mem::take(&mut acked.by_kind) {
                *kinds.entry(k).or_default() += n;
            }
            acked = Acked::default();
            tree = fresh();
            session = Some(mount(&tree, &trip, mnt)?);
        }
        let seed = mix(s.seed ^ mix(r + 1) ^ if mode == Mode::Server { 0x5e5e } else { 0 });
        let mut rng = Rng(seed);
        let power = rng.below(3) != 0; // two in three lose power
        let after = 1 + rng.below(s.max_ops);
        let label = format!(
            "{mode:?} round {r} seed {seed}: {} after {after} mutating requests",
            if power { "power loss" } else { "SIGKILL" }
        );
        eprintln!("crashtest: {label}");

        let pids = Arc::new(Mutex::new(Pids::default()));
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        trip.arm(after);
        let starter = {
            let (pids, lines, exe, db, dreamlog, sync) =
                (pids.clone(), lines.clone(), exe.clone(), db.clone(), s.dreamlog.clone(), s.sync);
            std::thread::spawn(move || start_round(mode, seed, &exe, &dreamlog, &db, sync, &pids, &lines))
        };
        // Crash when the wire trips (mid-I/O), or at a random moment if the workload
        // does fewer requests than that.
        let tripped = trip.wait(Duration::from_millis(2000 + rng.below(6000)));
        {
            let mut p = pids.lock().unwrap_or_else(|e| e.into_inner());
            p.dead = true;
            for c in &mut p.children {
                let _ = c.kill();
            }
        }
        trip.disarm();
        {
            let mut p = pids.lock().unwrap_or_else(|e| e.into_inner());
            for c in &mut p.children {
                let _ = c.wait();
            }
        }
        let _ = starter.join();
        if power {
            tree.lock().unwrap_or_else(|e| e.into_inner()).power_loss();
        }
        if let Some(old) = session.take() {
            unmount(old).map_err(|e| format!("{label}: unmounting: {e}"))?;
        }
        session = Some(mount(&tree, &trip, mnt)?);

        let new: Vec<String> = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
        let before = acked.events.len();
        for l in &new {
            acked.take_line(l);
        }
        let round = |acked: usize, events: u64, lost: usize| Round {
            mode,
            seed,
            power_loss: power,
            tripped,
            after_ops: after,
            acked,
            events,
            lost,
        };
        let state = work.join("acked.txt");
        acked.write(&state)?;
        if !db.join("CURRENT").exists() && acked.events.is_empty() {
            // Crashed before the database was first made: nothing to check yet.
            rounds.push(round(0, 0, 0));
            continue;
        }
        let out = Command::new(&exe)
            .args(["check", "--sync", sync_name(s.sync), "--db"])
            .arg(&db)
            .arg("--acked")
            .arg(&state)
            .stderr(Stdio::inherit())
            .output()?;
        let report: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!("{label}: the check printed no report ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })?;
        let problems = report["problems"].as_array().cloned().unwrap_or_default();
        if !out.status.success() || !problems.is_empty() {
            return Err(format!("{label}: {}", serde_json::to_string_pretty(&report)?).into());
        }
        let events = report["events"].as_u64().unwrap_or(0);
        let lost: Vec<u64> = acked.events.range(events..).map(|(p, _)| *p).collect();
        if !lost.is_empty() && (s.sync == SyncMode::Fsync || !power) {
            return Err(format!("{label}: acknowledged positions {lost:?} are gone").into());
        }
        for p in &lost {
            acked.events.remove(p);
        }
        acked.secrets.retain(|p, _| *p < events);
        acked.redacted.retain(|p| *p < events);
        let lost_sessions: Vec<String> = report["missing_sessions"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        for sid in &lost_sessions {
            acked.sessions.remove(sid);
        }
        eprintln!(
            "crashtest:   ok: {} events, {} newly acknowledged, {} lost (tripped mid-I/O: {tripped}; table files kept aside: {}; redacted texts absent: {}, scrubs finished at open: {})",
            events,
            acked.events.len() + lost.len() - before,
            lost.len(),
            report["kept_aside"],
            report["redacted_checked"],
            report["scrubs_finished_at_open"]
        );
        rounds.push(round(acked.events.len() + lost.len() - before, events, lost.len()));
    }
    if let Some(old) = session.take() {
        unmount(old)?;
    }
    for (k, n) in &acked.by_kind {
        *kinds.entry(k.clone()).or_default() += n;
    }
    let t = tree.lock().unwrap_or_else(|e| e.into_inner());
    disk.0 += t.syncs;
    disk.1 += t.lost_bytes;
    Ok(())
}

/// Starts one round's processes: the workload, and for server mode `dreamlog serve`
/// first. Every line the workload prints is kept.
#[allow(clippy::too_many_arguments)]
fn start_round(
    mode: Mode,
    seed: u64,
    exe: &Path,
    dreamlog: &Path,
    db: &Path,
    sync: SyncMode,
    pids: &Mutex<Pids>,
    lines: &Arc<Mutex<Vec<String>>>,
) {
    let mut workload = Command::new(exe);
    workload.args(["workload", "--seed", &seed.to_string()]);
    match mode {
        Mode::Embedded => {
            workload.args(["--sync", sync_name(sync), "--db"]).arg(db);
        }
        Mode::Server => {
            let Ok(mut server) = Command::new(dreamlog)
                .arg("--db")
                .arg(db)
                .args(["--sync", sync_name(sync), "serve", "--addr", "127.0.0.1:0"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
            else {
                return;
            };
            let err = server.stderr.take();
            if register(pids, server).is_none() {
                return;
            }
            let Some(err) = err else { return };
            let mut err = BufReader::new(err);
            let mut first = String::new();
            if err.read_line(&mut first).unwrap_or(0) == 0 {
                return; // killed (or refused to start: the check will say why)
            }
            std::thread::spawn(move || for _ in err.lines().map_while(Result::ok) {});
            let Some(addr) = first.split("://").nth(1).and_then(|r| r.split_whitespace().next()) else { return };
            workload.args(["--remote", &format!("http://{addr}")]);
        }
    }
    let Ok(mut child) = workload.stdout(Stdio::piped()).stderr(Stdio::null()).spawn() else { return };
    let out = child.stdout.take();
    if register(pids, child).is_none() {
        return;
    }
    if let Some(out) = out {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The workload: concurrent appends, memory commands, imports and dreams. Prints
// `E position id` for every acknowledged event and `S session events` for every
// acknowledged imported session, each line written whole and flushed.

/// A Harbor trial (ATIF trajectory with a sub-agent, and its graded result.json), from
/// the importer's fixtures; each import renames its sessions.
const TRAJECTORY: &str = include_str!("../../../tests/fixtures/atif/trial-7/agent/trajectory.json");
const RESULT: &str = include_str!("../../../tests/fixtures/atif/trial-7/result.json");

fn workload(args: &[String]) -> Result<(), Failure> {
    let seed: u64 = flag(args, "--seed").ok_or("workload: --seed")?.parse()?;
    let svc: Arc<dyn Service> = match (flag(args, "--db"), flag(args, "--remote")) {
        (Some(db), _) => {
            let sync: SyncMode = flag(args, "--sync").unwrap_or("fsync").parse().map_err(|e| format!("--sync: {e}"))?;
            // Small memtables: flushes and compactions happen within a round.
            let opts = Options { sync, write_buffer_bytes: 256 << 10, ..Options::default() };
            Arc::new(Local::new(dreamlog::open(db, opts)?, 64))
        }
        (None, Some(url)) => Arc::new(Remote::new(url, None)?),
        (None, None) => return Err("workload: --db or --remote".into()),
    };
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = move |lines: Vec<String>| {
        let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
        let text: String = lines.into_iter().map(|l| l + "\n").collect();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    };
    let say = Arc::new(say);
    let mut threads = Vec::new();
    for t in 0..6u64 {
        let (svc, say) = (svc.clone(), say.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng(mix(seed ^ (t + 1)));
            for step in 0u64.. {
                let lines = match t {
                    0 | 1 => append(&*svc, &mut rng, seed, t, step),
                    2 => memory(&*svc, &mut rng),
                    3 => import(&*svc, seed, step),
                    4 => dream(&*svc, &mut rng),
                    _ => redact(&*svc, &mut rng, &*say),
                };
                match lines {
                    Ok(lines) => say(lines),
                    // The server is gone or the disk froze: wait for the end.
                    Err(e) => {
                        eprintln!("workload thread {t}: {e}");
                        std::thread::sleep(Duration::from_millis(20))
                    }
                }
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn acks(what: &str, appended: impl IntoIterator<Item = (u64, String)>) -> Vec<String> {
    appended.into_iter().map(|(p, id)| format!("E {p} {id} {what}")).collect()
}

fn append(svc: &dyn Service, rng: &mut Rng, seed: u64, t: u64, step: u64) -> Result<Vec<String>, Failure> {
    let most = if rng.below(10) == 0 { 200 } else { 20 };
    let n = 1 + rng.below(most);
    let batch = format!("{seed:x}-{t}-{step}");
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "stream": format!("crash/{}", rng.below(12)),
                "kind": "note",
                "actor": "agent:crashtest",
                "body": {"type": "crash", "json": {"batch": batch, "n": n, "i": i, "pad": "x".repeat(rng.below(400) as usize)}}
            })
        })
        .collect();
    let appended = svc.append(&AppendRequest { events, stream: None, expect: Default::default() })?;
    Ok(acks("append", appended.into_iter().map(|a| (a.position, a.id.to_string()))))
}

fn memory(svc: &dyn Service, rng: &mut Rng) -> Result<Vec<String>, Failure> {
    let path = format!("/memories/notes-{}.md", rng.below(6));
    let input = match rng.below(5) {
        0 | 1 => {
            json!({"command": "create", "path": path, "file_text": format!("line {}\n", rng.next()).repeat(1 + rng.below(30) as usize)})
        }
        2 => {
            json!({"command": "insert", "path": path, "insert_line": 0, "insert_text": format!("lesson {}", rng.next())})
        }
        3 => json!({"command": "str_replace", "path": path, "old_str": "line", "new_str": "Line"}),
        _ => json!({"command": "delete", "path": path}),
    };
    let answer = svc.memory_tool("crash", &input, &ToolContext::default())?;
    Ok(acks("memory", answer.recorded.map(|(p, id)| (p, id.to_string()))))
}

/// Writes an event holding a fresh secret (`T POS SECRET` once acknowledged), then
/// redacts it (`R POS` once that is acknowledged): the check finds every event that reads
/// back redacted with its secret in no file.
fn redact(svc: &dyn Service, rng: &mut Rng, say: &dyn Fn(Vec<String>)) -> Result<Vec<String>, Failure> {
    std::thread::sleep(Duration::from_millis(20 + rng.below(60)));
    // 24 letters of 52: two secrets rarely share a run of four (an LZ4 back-reference).
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let secret: String = (0..24).map(|_| LETTERS[rng.below(52) as usize] as char).collect();
    let events = vec![json!({
        "stream": "crash/secrets",
        "kind": "note",
        "actor": "agent:crashtest",
        "body": {"type": "crash-secret", "json": {"card": secret}}
    })];
    let a = svc.append(&AppendRequest { events, stream: None, expect: Default::default() })?.remove(0);
    say(vec![format!("E {} {} append", a.position, a.id), format!("T {} {secret}", a.position)]);
    let r =
        svc.redact(&dreamlog::service::RedactRequest::event(a.id.to_hex(), "crashtest"), &"human:crashtest".parse()?)?;
    Ok(vec![format!("E {} {} redact", r.event_position, r.event), format!("R {}", a.position)])
}

fn import(svc: &dyn Service, seed: u64, step: u64) -> Result<Vec<String>, Failure> {
    std::thread::sleep(Duration::from_millis(30));
    let id = format!("crash-{seed:x}-{step}");
    // The trial folder lives off the crashing disk, as an import's source would.
    let trial = std::env::temp_dir().join(format!("dreamlog-crashtest-trial-{}", std::process::id()));
    std::fs::create_dir_all(trial.join("agent"))?;
    std::fs::write(trial.join("result.json"), RESULT)?;
    let file = trial.join("agent/trajectory.json");
    let text = TRAJECTORY
        .replace("\"trial-7-main\"", &format!("\"{id}\""))
        .replace("\"reviewer\"", &format!("\"{id}-reviewer\""));
    std::fs::write(&file, &text)?;
    let sessions = dreamlog::import::parse(dreamlog::import::Format::Atif, &file.to_string_lossy(), text.as_bytes())?;
    let ids: Vec<String> = sessions.iter().map(|s| s.session.clone()).collect();
    dreamlog::service::import_sessions(svc, sessions, None, |_| {})?;
    Ok(ids.into_iter().map(|s| format!("S {s} 0")).collect())
}

fn dream(svc: &dyn Service, rng: &mut Rng) -> Result<Vec<String>, Failure> {
    std::thread::sleep(Duration::from_millis(100 + rng.below(200)));
    let run = svc.dream_run(&DreamRequest {
        store: "crash".into(),
        dreamer: None,
        config: Value::Null,
        since: Some("start".into()),
        into: None,
        in_place: rng.below(2) == 0,
        create: true,
        sessions: Vec::new(),
        // Every dream of the workload writes (one over an input already dreamed too).
        again: true,
    })?;
    Ok(acks("dream", [(run.position, run.id.to_string())]))
}

// ---------------------------------------------------------------------------------------
// The check, in a fresh process after each crash. Prints a JSON report; exits non-zero
// when anything is wrong.

fn check(args: &[String]) -> Result<(), Failure> {
    let db = flag(args, "--db").ok_or("check: --db")?;
    let sync: SyncMode = flag(args, "--sync").unwrap_or("fsync").parse().map_err(|e| format!("--sync: {e}"))?;
    let acked_file = flag(args, "--acked").ok_or("check: --acked")?;
    let mut problems: Vec<String> = Vec::new();
    let mut report = json!({});
    let store = match dreamlog::open(db, Options { sync, ..Options::default() }) {
        Ok(s) => s,
        Err(e) => {
            println!("{}", json!({"events": 0, "problems": [format!("the database does not open: {e}")]}));
            return Err("the database does not open".into());
        }
    };
    let len = store.len();
    let scrubs_finished = store.open_report().scrubs_finished.len();
    // Gapless positions, unique ids, whole batches.
    let mut ids: HashSet<dreamlog::EventId> = HashSet::new();
    let mut batches: HashMap<String, (u64, u64)> = HashMap::new();
    let mut expected = 0u64;
    store.scan(0, |e| {
        if e.position != expected {
            problems.push(format!("position {expected} is missing (the next event is at {})", e.position));
            expected = e.position;
        }
        expected += 1;
        if !ids.insert(e.id()) {
            problems.push(format!("event {} is stored twice (again at position {})", e.id(), e.position));
        }
        let j = serde_json::to_value(e.to_json()).unwrap_or(Value::Null);
        if j["body"]["type"] == "crash" {
            let b = &j["body"]["json"];
            if let (Some(batch), Some(n)) = (b["batch"].as_str(), b["n"].as_u64()) {
                batches.entry(batch.to_owned()).or_insert((n, 0)).1 += 1;
            }
        }
        true
    })?;
    if expected != len {
        problems.push(format!("the log says {len} events but {expected} were read"));
    }
    for (batch, (n, seen)) in &batches {
        if n != seen {
            problems.push(format!("batch {batch} is partial: {seen} of its {n} events"));
        }
    }
    // Acknowledged events at their positions (a suffix may be gone: the harness judges).
    let text = std::fs::read_to_string(acked_file)?;
    let mut checked = 0u64;
    let mut missing_sessions = Vec::new();
    let sessions: HashSet<String> = store.session_ids()?.into_iter().collect();
    let mut secrets: Vec<(u64, String)> = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["E", pos, id, ..] => {
                let pos: u64 = pos.parse()?;
                if pos < len {
                    checked += 1;
                    let e = store.get_at(pos)?;
                    if e.id().to_string() != *id {
                        problems.push(format!("acknowledged position {pos} holds {} instead of {id}", e.id()));
                    }
                }
            }
            ["S", session, _n] => {
                if !sessions.contains(*session) {
                    missing_sessions.push(session.to_string());
                }
            }
            ["T", pos, secret] => {
                let pos: u64 = pos.parse()?;
                if pos < len && store.get_at(pos)?.redacted {
                    secrets.push((pos, secret.to_string()));
                }
            }
            ["R", pos] => {
                let pos: u64 = pos.parse()?;
                if sync == SyncMode::Fsync && !store.get_at(pos).map(|e| e.redacted).unwrap_or(false) {
                    problems.push(format!("the acknowledged redaction of position {pos} is gone"));
                }
            }
            _ => problems.push(format!("unreadable line in {acked_file}: {line:?}")),
        }
    }
    // Redaction: every event that reads back redacted has its text in no file of the
    // database (the open finished any scrub the crash interrupted). Files kept aside
    // under damaged/ are outside what redaction reaches (docs/ops/redaction.md).
    let redacted_checked = secrets.len();
    if !secrets.is_empty() {
        let mut files = Vec::new();
        let mut dirs = vec![PathBuf::from(db)];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d)?.flatten() {
                let path = e.path();
                if path.is_dir() {
                    if e.file_name() != "damaged" {
                        dirs.push(path);
                    }
                } else {
                    files.push((path.clone(), std::fs::read(&path)?));
                }
            }
        }
        for (pos, secret) in &secrets {
            let needle = secret.as_bytes();
            for (path, bytes) in &files {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    problems.push(format!("redacted event {pos}'s text is still in {}", path.display()));
                }
            }
        }
    }
    if sync == SyncMode::Fsync && !missing_sessions.is_empty() {
        problems.push(format!("acknowledged imported sessions are gone: {missing_sessions:?}"));
    }
    // verify --deep: chains, hashes, projectors against a rebuild, table checksums, snapshots.
    let svc = Local::new(store, 64);
    let verify = svc.verify(&VerifyQuery { deep: true }, &mut |_| {})?;
    problems
        .extend(verify.problems.iter().map(|p| format!("verify --deep: {} (position {:?})", p.problem, p.position)));
    // Table files RocksDB's open removed after a crash (its own leftovers: a flush or
    // compaction whose MANIFEST record never landed), kept by dreamlog's open guard.
    let kept_aside = std::fs::read_dir(Path::new(db).join("damaged"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().ends_with("-removed-at-open"))
        .map(|d| std::fs::read_dir(d.path()).map(|r| r.count()).unwrap_or(0))
        .sum::<usize>();
    report["kept_aside"] = json!(kept_aside);
    report["events"] = json!(len);
    report["acknowledged_checked"] = json!(checked);
    report["batches"] = json!(batches.len());
    report["missing_sessions"] = json!(missing_sessions);
    report["redacted_checked"] = json!(redacted_checked);
    report["scrubs_finished_at_open"] = json!(scrubs_finished);
    report["problems"] = json!(problems);
    println!("{report}");
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} problems", problems.len()).into())
    }
}
