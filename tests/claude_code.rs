//! Claude Code recorded while it runs (issue 36), with the real Claude Code CLI
//! (tools/claude-code: the pinned npm package, installed by tools/bootstrap.sh) run
//! headless against a loopback stand-in of the Messages API built from the `anthropic`
//! SDK's types (tests/python/messages_standin.py), its hooks running `dreamlog hook`:
//! the live session equals the import of the finished transcript; embedded, the hooks
//! spool and the session lands at its end; a server stopped mid-run loses nothing;
//! 64 hook processes at once against one server.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::Server;
use common::{ok, run_dreamlog};
use serde_json::{json, Value};
use tempfile::tempdir;

const DREAMLOG: &str = env!("CARGO_BIN_EXE_dreamlog");

fn claude_bin() -> PathBuf {
    let p = common::root().join("tools/claude-code/node_modules/.bin/claude");
    assert!(p.exists(), "{} is missing: run `bash tools/bootstrap.sh` (it installs the pinned CLI)", p.display());
    p
}

/// The scripted run: a Bash call, a failing call, a Write, an Edit, a sub-agent (the
/// `Agent` tool) that runs a Bash call of its own, a final answer.
fn scenario(project: &Path) -> Value {
    let notes = project.join("notes.md").display().to_string();
    json!({"agents": [
        {"match": "MAIN", "turns": [
            [{"type": "text", "text": "Listing."},
             {"type": "tool_use", "id": "toolu_01bash", "name": "Bash",
              "input": {"command": "echo hello-from-bash", "description": "Say hello"}}],
            [{"type": "tool_use", "id": "toolu_02fail", "name": "Bash",
              "input": {"command": "ls /nonexistent-dir-xyz", "description": "List a missing dir"}}],
            [{"type": "tool_use", "id": "toolu_03write", "name": "Write",
              "input": {"file_path": notes, "content": "# Notes\nfirst line\n"}}],
            [{"type": "tool_use", "id": "toolu_04edit", "name": "Edit",
              "input": {"file_path": notes, "old_string": "first line", "new_string": "first line, edited"}}],
            [{"type": "tool_use", "id": "toolu_05agent", "name": "Agent",
              "input": {"description": "Check the folder", "prompt": "SUB: print the working directory",
                        "subagent_type": "general-purpose"}}],
            [{"type": "text", "text": "All done: notes written and edited."}]
        ]},
        {"match": "SUB:", "turns": [
            [{"type": "tool_use", "id": "toolu_11pwd", "name": "Bash",
              "input": {"command": "pwd", "description": "Print cwd"}}],
            [{"type": "text", "text": "The folder is the project."}]
        ]}
    ]})
}

/// The stand-in of the Messages API, serving until dropped.
struct ModelApi {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ModelApi {
    fn start(dir: &Path, scenario: &Value, delay_ms: u64) -> ModelApi {
        let file = dir.join("scenario.json");
        std::fs::write(&file, scenario.to_string()).unwrap();
        let log = dir.join("model-requests.jsonl");
        let mut child = Command::new("python3")
            .arg(common::root().join("tests/python/messages_standin.py"))
            .arg("--scenario")
            .arg(&file)
            .arg("--log")
            .arg(&log)
            .args(["--delay-ms", &delay_ms.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (run through tools/bootstrap.sh)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let url = line.trim().strip_prefix("listening ").expect(&line).to_owned();
        ModelApi { child, url, log }
    }

    fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log).map(|t| t.lines().count()).unwrap_or(0)
    }
}

impl Drop for ModelApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A project folder whose `.claude/settings.json` runs `hook_command` for every hook
/// event, and a home of its own (Claude Code keeps its transcripts under it).
struct Project {
    dir: PathBuf,
    home: PathBuf,
}

/// The hook events `hooks install` writes (tests that set settings up by hand use them).
const EVENTS: [&str; 10] = dreamlog::hooks::HOOK_EVENTS;

fn project(root: &Path, hook_command: &str) -> Project {
    let dir = root.join("project");
    let home = root.join("home");
    std::fs::create_dir_all(dir.join(".claude")).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let mut hooks = serde_json::Map::new();
    for e in EVENTS {
        let mut entry = json!({"hooks": [{"type": "command", "command": hook_command}]});
        if e.contains("ToolUse") {
            entry["matcher"] = json!("*");
        }
        hooks.insert(e.to_owned(), json!([entry]));
    }
    std::fs::write(dir.join(".claude/settings.json"), json!({"hooks": hooks}).to_string()).unwrap();
    Project { dir, home }
}

/// Runs `claude -p PROMPT --output-format json` headless in the project against the
/// stand-in; its JSON answer.
fn run_claude(p: &Project, model_url: &str, prompt: &str) -> Value {
    let out = Command::new(claude_bin())
        .args(["-p", prompt, "--output-format", "json", "--dangerously-skip-permissions"])
        .current_dir(&p.dir)
        .env("HOME", &p.home)
        .env("ANTHROPIC_BASE_URL", model_url)
        .env("ANTHROPIC_API_KEY", "sk-ant-standin")
        // Tests run as root: Claude Code then wants to know it is sandboxed.
        .env("IS_SANDBOX", "1")
        // Nothing but the stand-in is reachable from here.
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env_remove("DREAMLOG_REMOTE")
        .env_remove("DREAMLOG_DB")
        .output()
        .expect("run claude");
    assert!(
        out.status.success(),
        "claude: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["is_error"], false, "{answer}");
    answer
}

/// The transcripts folder of the project (`~/.claude/projects/<slug>/`).
fn transcripts(p: &Project) -> PathBuf {
    let projects = p.home.join(".claude/projects");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&projects).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// A session as calls and messages: what must be equal between sources.
fn shape(session: &Value) -> Vec<String> {
    session["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let b = &e["body"];
            match e["kind"].as_str().unwrap() {
                "action" => format!(
                    "action {} {} {} {}",
                    b["name"].as_str().unwrap(),
                    b["call_id"].as_str().unwrap_or("-"),
                    b["status"].as_str().unwrap(),
                    b["output"]
                ),
                "message" => format!("message {} {}", b["role"].as_str().unwrap(), b["content"]),
                k => format!("{k} {}", e["time"]),
            }
        })
        .collect()
}

fn session_json(target: &[&str], id: &str) -> Value {
    let mut args = target.to_vec();
    args.extend(["--json", "sessions", "show", id]);
    let out = ok(&run_dreamlog(&args, None));
    serde_json::from_str(out.trim()).unwrap()
}

/// Waits until `id` on `target` has an end (the session is whole).
fn ended(target: &[&str], id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut args = target.to_vec();
        args.extend(["--json", "sessions", "show", id]);
        let out = run_dreamlog(&args, None);
        if out.status.success() {
            let s: Value = serde_json::from_slice(&out.stdout).unwrap();
            if s["events"].as_array().unwrap().iter().any(|e| e["kind"] == "session.end") {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "{id} never ended on {target:?}: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the finished transcripts give, imported into a fresh database.
fn imported(dir: &Path, transcripts: &Path) -> PathBuf {
    let db = dir.join("imported.db");
    ok(&common::dreamlog_on(&db, &["import", "claude-code", transcripts.to_str().unwrap()], None));
    db
}

fn hook_notes(target: &[&str], session_id: &str) -> Vec<Value> {
    let stream = format!("claude-code.hooks/{session_id}");
    let mut args = target.to_vec();
    args.extend(["--json", "log", "--stream", &stream]);
    common::json_lines(&ok(&run_dreamlog(&args, None)))
}

#[test]
fn a_session_recorded_live_by_its_hooks_is_its_finished_transcripts_import() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    let model = ModelApi::start(dir.path(), &scenario(&dir.path().join("project")), 0);
    // Set up as the docs say: `hooks install` into the project's settings, beside a
    // setting of the project's own.
    let p = Project { dir: dir.path().join("project"), home: dir.path().join("home") };
    std::fs::create_dir_all(p.dir.join(".claude")).unwrap();
    std::fs::create_dir_all(&p.home).unwrap();
    let settings = p.dir.join(".claude/settings.json");
    std::fs::write(&settings, r#"{"permissions": {"allow": ["Bash(ls:*)"]}}"#).unwrap();
    let install = |extra: &[&str]| {
        let mut args = vec!["--remote", server.base.as_str(), "--json", "hooks", "install", "--project", "--dir"];
        args.push(p.dir.to_str().unwrap());
        args.extend_from_slice(extra);
        serde_json::from_str::<Value>(ok(&run_dreamlog(&args, None)).trim()).unwrap()
    };
    let first = install(&[]);
    assert_eq!(first["written"], true, "{first}");
    assert!(first["diff"].as_str().unwrap().contains("+    \"SessionEnd\""), "{first}");
    let installed = std::fs::read(&settings).unwrap();
    let second = install(&[]);
    assert_eq!((second["changed"].as_bool(), second["written"].as_bool()), (Some(false), Some(false)), "{second}");
    assert_eq!(std::fs::read(&settings).unwrap(), installed, "installing twice changes nothing");
    let written: Value = serde_json::from_slice(&installed).unwrap();
    assert_eq!(written["permissions"]["allow"][0], "Bash(ls:*)", "the project's own settings kept");
    let answer = run_claude(&p, &model.url, "MAIN: take notes");
    let sid = answer["session_id"].as_str().unwrap().to_owned();
    assert_eq!(model.requests(), 9, "six turns of the session and two of its sub-agent, one after the notice");

    let remote = ["--remote", server.base.as_str()];
    let main = format!("claude-code/{sid}");
    let live = ended(&remote, &main);
    let folder = transcripts(&p);
    let db = imported(dir.path(), &folder);
    let local = ["--db", db.to_str().unwrap()];
    let file = session_json(&local, &main);
    assert_eq!(shape(&live), shape(&file), "the live session is the transcript's import");
    let calls: Vec<String> = shape(&live).into_iter().filter(|l| l.starts_with("action")).collect();
    assert_eq!(calls.len(), 5, "{calls:#?}");
    assert!(calls[1].starts_with("action Bash toolu_02fail error"), "the failing call failed: {calls:#?}");
    assert!(calls[0].contains("hello-from-bash") && calls[2].starts_with("action Write toolu_03write ok"));

    // The sub-agent is a child session, its start caused by the session's.
    let agents: Vec<String> = std::fs::read_dir(folder.join(&sid).join("subagents"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".jsonl").map(str::to_owned))
        .collect();
    assert_eq!(agents.len(), 1, "{agents:?}");
    let child = format!("{main}/{}", agents[0]);
    let live_child = ended(&remote, &child);
    assert_eq!(shape(&live_child), shape(&session_json(&local, &child)));
    assert!(shape(&live_child).iter().any(|l| l.starts_with("action Bash toolu_11pwd ok")));
    assert_eq!(live_child["events"][0]["causes"][0], live["events"][0]["id"], "{live_child:#}");

    // Importing the finished transcripts into the live database doubles nothing.
    let again = ok(&run_dreamlog(
        &["--remote", &server.base, "--json", "import", "claude-code", folder.to_str().unwrap()],
        None,
    ));
    for line in common::json_lines(&again).iter().filter(|l| l.get("already_present").is_some()) {
        assert_eq!((line["sessions"].as_u64(), line["grown"].as_u64()), (Some(0), Some(0)), "{again}");
    }
    assert_eq!(shape(&session_json(&remote, &main)), shape(&live));

    // The payloads are kept whole: what the transcript lacks is in them.
    let notes = hook_notes(&remote, &sid);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("schemas/api/hook-delivery.schema.json")).unwrap(),
    )
    .unwrap();
    let check = jsonschema::options().with_draft(jsonschema::Draft::Draft202012).build(&schema).unwrap();
    for n in &notes {
        let errors: Vec<String> =
            check.iter_errors(&n["body"]["json"]).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "a delivery its schema refuses: {errors:?}");
    }
    let payloads: Vec<&Value> = notes.iter().map(|n| &n["body"]["json"]["payload"]).collect();
    let named = |e: &str| payloads.iter().filter(|p| p["hook_event_name"] == e).count();
    for e in ["SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop", "SessionEnd"] {
        assert!(named(e) >= 1, "{e} recorded: {payloads:#?}");
    }
    let failure = payloads.iter().find(|p| p["hook_event_name"] == "PostToolUseFailure").expect("the failure's hook");
    assert_eq!(failure["tool_use_id"], "toolu_02fail");
    assert!(failure["error"].as_str().unwrap().contains("nonexistent-dir-xyz") && failure["is_interrupt"] == false);
    let bash = payloads.iter().find(|p| p["tool_use_id"] == "toolu_01bash" && p["hook_event_name"] == "PostToolUse");
    assert_eq!(bash.unwrap()["tool_response"]["stdout"], "hello-from-bash");
    assert!(payloads.iter().any(|p| p["agent_id"].is_string() && p["hook_event_name"] == "SubagentStop"));
    // Nothing was left in the spool (under the home Claude Code ran the hooks with).
    let spools = p.home.join(".local/state/dreamlog/spool");
    for s in std::fs::read_dir(&spools).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default() {
        assert_eq!(std::fs::read_dir(s.path().join("pending")).map(|d| d.count()).unwrap_or(0), 0);
    }
    // Uninstalled: exactly the project's own settings are left.
    let removed = install(&["--uninstall"]);
    assert_eq!(removed["written"], true, "{removed}");
    let left: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(left, json!({"permissions": {"allow": ["Bash(ls:*)"]}}));
    assert!(server.stop().success());
}

#[test]
fn embedded_hooks_only_spool_and_the_session_lands_when_it_ends() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("live.db");
    let model = ModelApi::start(dir.path(), &scenario(&dir.path().join("project")), 0);
    let p = project(dir.path(), &format!("{DREAMLOG} --db {} hook", db.display()));
    let answer = run_claude(&p, &model.url, "MAIN: take notes");
    let sid = answer["session_id"].as_str().unwrap().to_owned();
    // The SessionEnd hook started `hook --flush` on its own, after Claude Code was told
    // the hook was done; it takes the database's lock when it is free.
    let target = ["--db", db.to_str().unwrap()];
    let live = ended(&target, &format!("claude-code/{sid}"));
    let pending = PathBuf::from(format!("{}.spool/pending", db.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&pending).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(Instant::now() < deadline, "the spool never emptied");
        std::thread::sleep(Duration::from_millis(100));
    }
    let file = imported(dir.path(), &transcripts(&p));
    assert_eq!(shape(&live), shape(&session_json(&["--db", file.to_str().unwrap()], &format!("claude-code/{sid}"))));
}

#[test]
fn a_server_stopped_mid_run_loses_nothing_and_doubles_nothing() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let server = Server::start(&db, &[]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Slow answers, so the server can be stopped between the session's hooks.
    let model = ModelApi::start(dir.path(), &scenario(&dir.path().join("project")), 400);
    let spool = dir.path().join("spool");
    let p = project(
        dir.path(),
        &format!("{DREAMLOG} --remote {} hook --spool {} --timeout-ms 300", server.base, spool.display()),
    );
    let claude = {
        let p_dir = p.dir.clone();
        let home = p.home.clone();
        let url = model.url.clone();
        std::thread::spawn(move || run_claude(&Project { dir: p_dir, home }, &url, "MAIN: take notes"))
    };
    // Stopped after the second answer, started again after the fourth.
    wait_for(|| model.requests() >= 2);
    assert!(server.stop().success());
    wait_for(|| model.requests() >= 4);
    let spooled = std::fs::read_dir(spool.join("pending")).map(|d| d.count()).unwrap_or(0);
    assert!(spooled > 0, "hooks ran while the server was down: they spooled");
    let server = Server::start_at(&db, &addr, &[], &[]);
    let answer = claude.join().unwrap();
    let sid = answer["session_id"].as_str().unwrap().to_owned();
    let remote = ["--remote", server.base.as_str()];
    // Later hooks delivered the spool first; a flush finds nothing left.
    let flushed = ok(&run_dreamlog(
        &["--remote", &server.base, "--json", "hook", "--flush", "--spool", spool.to_str().unwrap()],
        None,
    ));
    assert_eq!(serde_json::from_str::<Value>(flushed.trim()).unwrap()["left"], 0, "{flushed}");
    let live = ended(&remote, &format!("claude-code/{sid}"));
    let file = imported(dir.path(), &transcripts(&p));
    assert_eq!(shape(&live), shape(&session_json(&["--db", file.to_str().unwrap()], &format!("claude-code/{sid}"))));
    // Every hook call once: as many notes as distinct payloads Claude Code sent.
    let notes = hook_notes(&remote, &sid);
    let mut seen = std::collections::HashSet::new();
    for n in &notes {
        assert!(seen.insert(n["body"]["json"].to_string()), "a delivery recorded twice");
    }
    assert!(notes.len() >= 14, "{} hook calls recorded", notes.len());
    assert!(server.stop().success());
}

/// `dreamlog ARGS` (a hook) started with `payload` on its standard input.
fn spawn_hook(args: &[&str], env: &[(&str, &str)], payload: &Value) -> Child {
    let mut c = Command::new(DREAMLOG)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(payload.to_string().as_bytes()).unwrap();
    c
}

fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sixty_four_hook_processes_at_once_against_one_server() {
    let dir = tempdir().unwrap();
    let server = Server::start(&dir.path().join("db"), &[]);
    // A transcript of one session growing as 64 hooks of it run side by side.
    let transcript = dir.path().join("s64.jsonl");
    let line = |i: usize, parent: Option<String>| {
        json!({"type": "user", "uuid": format!("u{i:03}"), "parentUuid": parent, "sessionId": "s64",
               "timestamp": format!("2026-12-07T10:00:{:02}.{:03}Z", i / 1000, i % 1000),
               "message": {"role": "user", "content": format!("line {i}")}})
        .to_string()
    };
    let mut f = std::fs::File::create(&transcript).unwrap();
    let answer = json!({"type": "assistant", "uuid": "a000", "parentUuid": null, "sessionId": "s64",
        "timestamp": "2026-12-07T09:59:59.000Z",
        "message": {"role": "assistant", "model": "claude-test", "content": [{"type": "text", "text": "hi"}]}});
    writeln!(f, "{answer}").unwrap();
    let spool = dir.path().join("spool");
    let mut children = Vec::new();
    for i in 0..64 {
        writeln!(f, "{}", line(i, None)).unwrap();
        let payload = json!({"session_id": "s64", "transcript_path": transcript, "cwd": "/", "hook_event_name": "PreToolUse",
            "tool_name": "Bash", "tool_input": {"command": format!("echo {i}")}, "tool_use_id": format!("toolu_{i:03}")});
        let args = ["--remote", &server.base, "hook", "--spool", spool.to_str().unwrap(), "--timeout-ms", "10000"];
        children.push(spawn_hook(&args, &[], &payload));
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no hook said anything went wrong");
        assert!(out.stdout.is_empty(), "a hook prints nothing: Claude Code reads a hook's stdout");
    }
    let left = std::fs::read_dir(spool.join("pending")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "every hook's delivery reached the server");
    let remote = ["--remote", server.base.as_str()];
    assert_eq!(hook_notes(&remote, "s64").len(), 64);
    // Assembled after the answers: every line once, none twice.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run_dreamlog(&["--remote", &server.base, "--json", "sessions", "show", "claude-code/s64"], None);
        let messages = if out.status.success() {
            let s: Value = serde_json::from_slice(&out.stdout).unwrap();
            s["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "message").count()
        } else {
            0
        };
        assert!(messages <= 65, "a line recorded twice: {messages} messages");
        if messages == 65 {
            break;
        }
        assert!(Instant::now() < deadline, "{messages} of 65 messages assembled");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.stop().success());
}

#[test]
fn import_follow_grows_a_session_as_its_transcript_grows_and_waits_on_a_half_line() {
    let dir = tempdir().unwrap();
    let db = dir.path().join("db");
    let fixture =
        common::root().join("tests/fixtures/claude-code/-work-demo/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&fixture).unwrap().lines().map(str::to_owned).collect();
    let folder = dir.path().join("projects");
    std::fs::create_dir_all(&folder).unwrap();
    let growing = folder.join(fixture.file_name().unwrap());
    // The first four lines, and half of the fifth.
    let (head, tail) = lines[4].split_at(lines[4].len() / 2);
    std::fs::write(&growing, format!("{}\n{head}", lines[..4].join("\n"))).unwrap();
    let mut follow = Command::new(DREAMLOG)
        .arg("--db")
        .arg(&db)
        .args(["--json", "import", "claude-code", "--follow", "--poll-ms", "50"])
        .arg(&folder)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut pass = || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        serde_json::from_str::<Value>(&line).expect(&line)
    };
    let first = pass();
    assert_eq!(first["counts"]["sessions"], 1, "{first}");
    // The rest of the half line, then the rest of the file.
    let mut f = std::fs::OpenOptions::new().append(true).open(&growing).unwrap();
    write!(f, "{tail}\n{}\n", lines[5..].join("\n")).unwrap();
    drop(f);
    let second = pass();
    assert_eq!(second["counts"]["grown"], 1, "{second}");
    Command::new("kill").args(["-TERM", &follow.id().to_string()]).status().unwrap();
    let status = follow.wait().unwrap();
    assert!(status.success(), "{status}");
    // Followed, the session has no end; the finished file's import only adds the end,
    // and the session is then the file's import into a fresh database.
    let id = "claude-code/5d0c9a3e-7b1f-4c2a-9e4d-2f6b8a1c0d93";
    let target = ["--db", db.to_str().unwrap()];
    let open = session_json(&target, id);
    assert!(open["events"].as_array().unwrap().iter().all(|e| e["kind"] != "session.end"));
    let done = ok(&common::dreamlog_on(&db, &["--json", "import", "claude-code", growing.to_str().unwrap()], None));
    assert!(done.contains("\"grown\":1"), "{done}");
    let fresh = dir.path().join("fresh");
    ok(&common::dreamlog_on(&fresh, &["import", "claude-code", fixture.to_str().unwrap()], None));
    assert_eq!(shape(&session_json(&target, id)), shape(&session_json(&["--db", fresh.to_str().unwrap()], id)));
}

#[test]
fn a_hook_never_fails_claude_code_even_misconfigured() {
    let dir = tempdir().unwrap();
    let payload =
        json!({"session_id": "s1", "transcript_path": dir.path().join("none.jsonl"), "hook_event_name": "PreToolUse"});
    let run = |args: &[&str], env: &[(&str, &str)]| spawn_hook(args, env, &payload).wait_with_output().unwrap();
    let spool = dir.path().join("spool");
    let spool = spool.to_str().unwrap();
    // A bad environment (clap would exit 2, which blocks the tool), a server that is not
    // there, a payload that is not JSON: exit 0, stdout empty, the reason on stderr.
    for (args, env) in [
        (vec!["--remote", "http://127.0.0.1:9", "hook", "--spool", spool], vec![("DREAMLOG_HOOK_TIMEOUT_MS", "soon")]),
        (vec!["--remote", "http://127.0.0.1:9", "hook", "--spool", spool, "--timeout-ms", "200"], vec![]),
        (vec!["hook", "--no-such-flag"], vec![]),
    ] {
        let out = run(&args, &env);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: the reason is said");
    }
    // The unreachable server's delivery waits in the spool.
    assert_eq!(std::fs::read_dir(dir.path().join("spool/pending")).unwrap().count(), 1);
}
