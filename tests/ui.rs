//! The web view (`/ui`): in a real browser (Debian's Chromium, headless, driven by
//! Playwright: tests/python/ui_browser.py) over a server holding real imported runs and
//! the demo's dreams; and over HTTP: the token-for-cookie exchange, its limits, the
//! security headers, and the routes the view reads (timeline, citations, dry runs).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::server::{client, get, post, Server};
use common::{dreamlog_on, ok};
use dreamlog::core::{Actor, Body, CanonicalJson, Draft, Kind, Note};
use dreamlog::service::{Local, Service, TimelineQuery};
use dreamlog::store::{AppendBatch, Store, StoredEvent};
use serde_json::{json, Value};
use tempfile::tempdir;

const ADMIN: &str = "admin-token";
const READ: &str = "read-token";

/// A server over one tenant (`audit`) with an admin and a read token; `extra` config.
fn ui_server(dir: &Path, extra: Value) -> (Server, PathBuf) {
    let hash = dreamlog::hash_token;
    let mut config = json!({"tokens": [
        {"tenant": "audit", "role": "admin", "token_blake3": hash(ADMIN)},
        {"tenant": "audit", "role": "read", "token_blake3": hash(READ)},
    ]});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        config[k] = v;
    }
    let cfg = dir.join("server.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    (Server::start(&dir.join("db"), &["--config", cfg.to_str().unwrap()]), cfg)
}

/// The tenant's database filled as an auditor finds it: the demo (a real τ-bench session,
/// the simulated agent's rounds, an evidence dream promoted, a bad dream, drift, a
/// revert), a second dream into a fork not yet promoted, and real runs imported (τ²-bench
/// airline, SWE-agent).
fn audited_db(dir: &Path) {
    let db = dir.join("db/tenants/audit");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    ok(&dreamlog_on(&db, &["demo"], None));
    // A bad edit of a dreamt lesson, reverted: the line the revert puts back keeps its
    // dream and evidence (the browser checks blame shows them with the revert).
    let file = "/memories/lessons/sim/refunds.md";
    let blame = common::json_lines(&ok(&dreamlog_on(&db, &["memory", "blame", "sim", file, "--json"], None)));
    let lesson = blame
        .iter()
        .find(|l| !l["dream"].is_null() && !l["evidence"].as_array().unwrap().is_empty())
        .expect("a dreamt lesson with evidence in the demo's store");
    let edit = serde_json::json!({"command": "str_replace", "path": file,
        "old_str": lesson["text"], "new_str": "- skip the checks"});
    let bad: Value = serde_json::from_str(
        ok(&dreamlog_on(&db, &["memory", "apply", "sim", &edit.to_string(), "--json"], None)).trim(),
    )
    .unwrap();
    ok(&dreamlog_on(
        &db,
        &["memory", "revert", "sim", "--event", bad["id"].as_str().unwrap(), "--reason", "a bad edit"],
        None,
    ));
    ok(&dreamlog_on(&db, &["dream", "run", "sim"], None));
    for f in [
        "tests/data/tau2-bench/gpt-4.1_airline_default_gpt-4.1_1trials.json",
        "tests/data/swe-agent/pydicom__pydicom-1458.traj",
    ] {
        ok(&dreamlog_on(&db, &["import", common::root().join(f).to_str().unwrap()], None));
    }
    // The τ²-bench runs ran with `sim` as it stood at position 10 (`sessions link`).
    let airline: Vec<String> = common::json_lines(&ok(&dreamlog_on(&db, &["--json", "sessions", "list"], None)))
        .into_iter()
        .filter(|s| s["task"].as_str().is_some_and(|t| t.starts_with("airline/")))
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(airline.len() >= 20, "{}", airline.len());
    let mut link = vec!["sessions", "link"];
    link.extend(airline.iter().map(String::as_str));
    link.extend(["--store", "sim", "--at", "10"]);
    ok(&dreamlog_on(&db, &link, None));
}

#[test]
fn an_auditor_clicks_through_every_page_in_chromium() {
    let dir = tempdir().unwrap();
    audited_db(dir.path());
    let (server, _) = ui_server(dir.path(), json!({}));
    let shots = std::env::var_os("DREAMLOG_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("python3")
        .arg("tests/python/ui_browser.py")
        .args([&server.base, READ, ADMIN, shots.to_str().unwrap()])
        .current_dir(common::root())
        .output()
        .expect("python3 with playwright (tools/bootstrap.sh installs it and Chromium)");
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n{}\n{}",
        shots.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert!(summary["checks"].as_u64().unwrap() >= 50, "{summary}");
    for page in [
        "timeline", "event", "sessions", "session", "memory", "diff", "blame", "dream", "dreams", "drift", "promote",
        "revert",
    ] {
        let png = std::fs::read(shots.join(format!("{page}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{page}.png is a screenshot");
    }
}

/// A hosted dream's new store (a mirror of hosted Managed Agents) promoted from its dream's
/// page: the web view pushes it to the hosted store (the SDK-typed stand-in), listing the
/// calls first.
#[test]
fn a_hosted_dreams_store_is_pushed_from_the_web_view_in_chromium() {
    let dir = tempdir().unwrap();
    let standin = common::hosted::StandIn::start(&common::hosted::learning(), dir.path(), 0);
    let db = dir.path().join("db/tenants/audit");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    ok(&common::hosted::sync(&db, &standin.url, &[]));
    let dream = common::json_lines(&ok(&dreamlog_on(&db, &["--json", "dream", "list"], None)))
        .into_iter()
        .find(|d| d["output_store"] == "memstore_03dreamed")
        .expect("the hosted dream");
    let dream_id = dream["id"].as_str().unwrap().to_owned();
    let hash = dreamlog::hash_token;
    let cfg = dir.path().join("server.json");
    let config = json!({"tokens": [{"tenant": "audit", "role": "admin", "token_blake3": hash(ADMIN)}]});
    std::fs::write(&cfg, config.to_string()).unwrap();
    let env = [("ANTHROPIC_BASE_URL", standin.url.as_str()), ("ANTHROPIC_API_KEY", common::hosted::KEY)];
    let server = Server::start_env(&dir.path().join("db"), &["--config", cfg.to_str().unwrap()], &env);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("python3")
        .arg("tests/python/ui_push.py")
        .args([&server.base, ADMIN, &dream_id, shots.to_str().unwrap()])
        .current_dir(common::root())
        .output()
        .expect("python3 with playwright");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.stop().success());
    // The hosted store now holds the dream's store, as the mirror shows.
    assert_eq!(common::hosted::files(&db, "memstore_02learn"), common::hosted::files(&db, "memstore_03dreamed"));
    let sc: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("scenario.json")).unwrap()).unwrap();
    let pushed =
        sc["versions"].as_array().unwrap().iter().filter(|v| v["created_by"]["api_key_id"] == "apikey_standin");
    assert!(pushed.count() >= 1, "the calls reached the hosted store");
}

/// `POST /ui/session` with a token: the cookie it sets and its JSON.
fn sign_in(base: &str, token: &str) -> (u16, Option<String>, Value) {
    let r = client().post(format!("{base}/ui/session")).json(&json!({ "token": token })).send().unwrap();
    let status = r.status().as_u16();
    let cookie = r.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    (status, cookie, r.json().unwrap_or(Value::Null))
}

/// A request on the session cookie (`name=value` of a Set-Cookie), with `X-Dreamlog-UI`.
fn with_cookie(
    method: reqwest::Method,
    url: &str,
    set_cookie: &str,
    ui_header: bool,
    body: Option<&Value>,
) -> (u16, Value) {
    let pair = set_cookie.split(';').next().unwrap();
    let mut rb = client().request(method, url).header("cookie", pair);
    if ui_header {
        rb = rb.header("x-dreamlog-ui", "1");
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn a_token_is_exchanged_once_for_a_short_lived_same_site_cookie() {
    let dir = tempdir().unwrap();
    let (server, cfg) = ui_server(dir.path(), json!({"ui_session_secs": 2}));
    let (status, cookie, me) = sign_in(&server.base, READ);
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["tenant"].as_str(), me["role"].as_str()), (Some("audit"), Some("read")));
    let cookie = cookie.expect("a Set-Cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2"] {
        assert!(cookie.split("; ").any(|a| a == attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains(READ), "the cookie is not the token: {cookie}");
    assert!(!cookie.contains("Secure"), "no Secure flag on plain HTTP (a browser would drop the cookie)");
    let (status, info) = with_cookie(reqwest::Method::GET, &server.url("/v1/info"), &cookie, false, None);
    assert_eq!((status, info["tenant"].as_str()), (200, Some("audit")));

    // Refused: an unknown token (no cookie), no cookie at all.
    let (status, cookie_set, _) = sign_in(&server.base, "not-a-token");
    assert_eq!((status, cookie_set), (401, None));
    assert_eq!(get(&client(), &server.url("/v1/info"), None).0, 401);

    // Short-lived: after ui_session_secs the cookie is refused.
    std::thread::sleep(std::time::Duration::from_millis(2300));
    let (status, err) = with_cookie(reqwest::Method::GET, &server.url("/v1/info"), &cookie, false, None);
    assert_eq!(status, 401, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("sign in again"), "{err}");

    // A token removed from the config (SIGHUP) ends the sessions opened with it.
    let (_, fresh, _) = sign_in(&server.base, READ);
    let fresh = fresh.unwrap();
    assert_eq!(with_cookie(reqwest::Method::GET, &server.url("/ui/session"), &fresh, false, None).0, 200);
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    config["tokens"].as_array_mut().unwrap().retain(|t| t["role"] == "admin");
    std::fs::write(&cfg, config.to_string()).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while with_cookie(reqwest::Method::GET, &server.url("/v1/info"), &fresh, false, None).0 != 401 {
        assert!(std::time::Instant::now() < deadline, "the removed token's session still works");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Signing out forgets the cookie on the server too.
    let (_, admin, _) = sign_in(&server.base, ADMIN);
    let admin = admin.unwrap();
    let (status, out) = with_cookie(reqwest::Method::DELETE, &server.url("/ui/session"), &admin, true, None);
    assert_eq!((status, &out["signed_out"]), (200, &json!(true)), "{out}");
    assert_eq!(with_cookie(reqwest::Method::GET, &server.url("/v1/info"), &admin, false, None).0, 401);
}

#[test]
fn every_ui_answer_forbids_inline_scripts_and_framing() {
    let dir = tempdir().unwrap();
    let (server, _) = ui_server(dir.path(), json!({}));
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let r = client().get(server.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let h = r.headers();
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert!(h.get("content-type").unwrap().to_str().unwrap().starts_with(kind), "{path}");
    }
    // The page itself has no inline script or style, and the script never parses HTML.
    let html = client().get(server.url("/ui")).send().unwrap().text().unwrap();
    for tag in html.split("<script").skip(1) {
        assert!(tag.trim_start().starts_with("src=") && tag.contains("></script>"), "inline script: {tag}");
    }
    assert!(!html.contains("style=") && !html.contains("<style"), "inline style in the page");
    let js = client().get(server.url("/ui/app.js")).send().unwrap().text().unwrap();
    for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
        assert!(!js.contains(sink), "app.js uses {sink}");
    }
    // Without a token or cookie the page loads (to ask for the token); the data does not.
    assert_eq!(client().get(server.url("/ui/session")).send().unwrap().status().as_u16(), 401);
}

#[test]
fn writes_on_the_cookie_need_the_ui_header_and_dry_runs_preview_exactly_what_is_appended() {
    let dir = tempdir().unwrap();
    audited_db(dir.path());
    let (server, _) = ui_server(dir.path(), json!({}));
    let c = client();
    let len = || get(&c, &server.url("/v1/info"), Some(ADMIN)).1["events"].as_u64().unwrap();
    let dreams = get(&c, &server.url("/v1/dreams"), Some(ADMIN)).1["dreams"].as_array().unwrap().clone();
    let fork = dreams.iter().rev().find(|d| d["output_store"] != d["store"]).unwrap().clone();
    let promote = server.url(&format!("/v1/memory/{}/promote", fork["output_store"].as_str().unwrap()));
    let body = json!({"into": "sim"});

    let (_, admin, _) = sign_in(&server.base, ADMIN);
    let admin = admin.unwrap();
    let (_, read, _) = sign_in(&server.base, READ);
    let read = read.unwrap();
    let before = len();
    // A cross-site form could send the cookie but not the header: refused.
    let (status, err) = with_cookie(reqwest::Method::POST, &promote, &admin, false, Some(&body));
    assert_eq!(status, 403, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("x-dreamlog-ui"), "{err}");
    // A read session is read-only, header or not.
    assert_eq!(with_cookie(reqwest::Method::POST, &format!("{promote}?dry_run=true"), &read, true, Some(&body)).0, 403);
    assert_eq!(len(), before, "nothing written by refused requests");

    // The dry run: every event, nothing written.
    let (status, preview) =
        with_cookie(reqwest::Method::POST, &format!("{promote}?dry_run=true"), &admin, true, Some(&body));
    assert_eq!(status, 200, "{preview}");
    assert_eq!(len(), before, "a dry run writes nothing");
    let planned = preview["events"].as_array().unwrap().clone();
    assert!(!planned.is_empty(), "{preview}");
    assert_eq!(preview["diff"]["changed"].as_array().unwrap().len(), 1, "{preview}");

    // The write itself appends exactly the previewed events and reaches the previewed state.
    let (status, done) = with_cookie(reqwest::Method::POST, &promote, &admin, true, Some(&body));
    assert_eq!(status, 200, "{done}");
    let appended = done["appended"].as_array().unwrap();
    assert_eq!(appended.len(), planned.len());
    for (a, p) in appended.iter().zip(&planned) {
        let (_, e) = get(&c, &server.url(&format!("/v1/events/{}", a["id"].as_str().unwrap())), Some(ADMIN));
        for field in ["stream", "kind", "causes", "body"] {
            assert_eq!(e[field], p[field], "{field} of {e}");
        }
        assert!(e["actor"].as_str().unwrap().starts_with("human:"), "{e}");
    }
    let (_, files) = get(&c, &server.url("/v1/memory/sim/files"), Some(ADMIN));
    assert_eq!(files["state_hash"], preview["state_after"]);

    // A revert's dry run names the same revert the CLI's --dry-run plans.
    let (status, rev) = post(
        &c,
        &server.url("/v1/memory/sim/revert?dry_run=true"),
        Some(ADMIN),
        &json!({"dream": fork["id"], "reason": "checking"}),
    );
    assert_eq!(status, 200, "{rev}");
    assert_eq!(rev["events"][0]["kind"], "revert");
    assert_eq!(
        rev["state_after"],
        json!(preview["state_before"]),
        "reverting the promote restores the state before it"
    );
    assert_eq!(len(), before + planned.len() as u64);
}

fn draft(stream: &str, actor: Actor, time: u64, n: u64, causes: Vec<dreamlog::core::EventId>) -> Draft {
    let body = Body::Note(Note {
        note_type: format!("n{}", n % 3),
        json: CanonicalJson::parse(&format!("{{\"n\":{n}}}")).unwrap(),
    });
    let mut d = Draft::new(stream, actor, body).caused_by(causes);
    d.time = Some(time);
    d
}

/// A log of notes, grades-free but mixed: streams, actors, times out of order, causes.
fn mixed_log(store: &Store, n: u64) -> Vec<StoredEvent> {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let mut ids = Vec::new();
    for i in 0..n {
        let stream = match rnd(4) {
            0 => "session/s-1".to_owned(),
            1 => format!("notes/{}", rnd(3)),
            _ => "busy".to_owned(),
        };
        let actor = match rnd(3) {
            0 => Actor::Agent("a".into()),
            1 => Actor::Agent("b".into()),
            _ => Actor::Evaluator("e".into()),
        };
        let causes = if !ids.is_empty() && rnd(3) == 0 { vec![ids[rnd(ids.len() as u64) as usize]] } else { vec![] };
        let time = 1_000_000 + rnd(5_000);
        let a = store.append(AppendBatch::one(draft(&stream, actor, time, i, causes))).unwrap();
        ids.push(a[0].id);
    }
    store.read_range(0, n as usize).unwrap()
}

#[test]
fn timeline_pages_are_the_filtered_log_newest_first_and_citations_are_every_citer() {
    let dir = tempdir().unwrap();
    let store = common::open(dir.path());
    let all = mixed_log(&store, 700);
    let svc = Local::over(&store);
    let queries = [
        TimelineQuery::default(),
        TimelineQuery { actor: Some("agent:".into()), ..Default::default() },
        TimelineQuery {
            actor: Some("agent:b".into()),
            since: Some(1_001_000),
            until: Some(1_004_000),
            ..Default::default()
        },
        TimelineQuery { stream: Some("busy".into()), actor: Some("evaluator:e".into()), ..Default::default() },
        TimelineQuery { session: Some("s-1".into()), ..Default::default() },
        TimelineQuery { kind: Some(Kind::Note), before: Some(333), ..Default::default() },
        // A kind the log has none of: an empty answer, found from the kind index alone.
        TimelineQuery { kind: Some(Kind::Tag), ..Default::default() },
    ];
    for q in queries {
        let want: Vec<u64> = all
            .iter()
            .rev()
            .filter(|e| q.before.is_none_or(|b| e.position < b))
            .filter(|e| q.kind.is_none_or(|k| k == e.event.header.kind))
            .filter(|e| q.stream.as_deref().is_none_or(|s| s == e.event.header.stream))
            .filter(|e| q.session.as_deref().is_none_or(|s| e.event.header.stream == format!("session/{s}")))
            .filter(|e| {
                let a = e.event.header.actor.to_string();
                q.actor.as_deref().is_none_or(|x| a == x || (x.ends_with(':') && a.starts_with(x)))
            })
            .filter(|e| q.since.is_none_or(|t| e.event.header.time >= t))
            .filter(|e| q.until.is_none_or(|t| e.event.header.time < t))
            .map(|e| e.position)
            .collect();
        for limit in [1usize, 7, 50] {
            let mut got = Vec::new();
            let mut cursor = q.clone();
            cursor.limit = Some(limit);
            let mut pages = 0;
            loop {
                let page = svc.timeline(&cursor).unwrap();
                assert!(page.events.len() <= limit);
                got.extend(page.events.iter().map(|e| e.position));
                pages += 1;
                assert!(pages < 2000, "paging does not end: {q:?}");
                match page.next_before {
                    Some(b) => cursor.before = Some(b),
                    None => break,
                }
            }
            assert_eq!(got, want, "{q:?} limit {limit}");
        }
    }
    // Citations: the index answers what a scan of every event's causes finds.
    for e in all.iter().step_by(37) {
        let want: Vec<u64> =
            all.iter().filter(|x| x.event.header.causes.contains(&e.id())).map(|x| x.position).collect();
        let got: Vec<u64> = svc.cited_by(&e.id().to_hex(), 0, 1000).unwrap().iter().map(|x| x.position).collect();
        assert_eq!(got, want, "citers of #{}", e.position);
    }
    // The index is derived: verify checks it, and a reindex rebuilds the same answers.
    let report = store.verify(|_| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let cited = all.iter().find(|e| !store.cited_by(&e.id(), 0, 10).unwrap().is_empty()).unwrap().id();
    let before = store.cited_by(&cited, 0, 1000).unwrap();
    store.reindex(|_| {}).unwrap();
    assert_eq!(store.cited_by(&cited, 0, 1000).unwrap(), before);
}
