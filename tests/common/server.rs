//! A `dreamlog serve` process on 127.0.0.1 and a real HTTP client, for the server tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// A running `dreamlog serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    /// The server's stderr after its first line, as it arrives.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::start_env(db, extra, &[])
    }

    /// With these environment variables set for the server.
    pub fn start_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_at(db, "127.0.0.1:0", extra, env)
    }

    /// On `addr` (a server started again where clients know it).
    pub fn start_at(db: &Path, addr: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dreamlog"))
            .arg("--db")
            .arg(db)
            .args(["serve", "--addr", addr])
            .args(extra)
            .env("DREAMLOG_SYNC", "fsync")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start server");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let scheme = if line.contains(" on https://") { "https" } else { "http" };
        let addr = line.split("://").nth(1).and_then(|r| r.split_whitespace().next()).expect(&line).to_owned();
        // Keep draining stderr so the server never blocks on it.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        let drain = std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Server { child, base: format!("{scheme}://{addr}"), log, drain: Some(drain) }
    }

    /// Sends the server a signal (`HUP`, …).
    #[allow(dead_code)]
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args([format!("-{name}"), self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// The server's process id.
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stop(self) -> std::process::ExitStatus {
        self.stop_with_log().0
    }

    /// SIGTERM, then the exit status and everything the server wrote to stderr.
    pub fn stop_with_log(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        if let Some(d) = self.drain.take() {
            d.join().unwrap();
        }
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// One sample of the server's `GET /metrics`: `name` with its labels as printed (e.g.
/// `dreamlog_subscribers` or `dreamlog_config_reloads_total{result="refused"}`).
pub fn metric(server: &Server, token: Option<&str>, name: &str) -> f64 {
    let mut req = client().get(server.url("/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    assert_eq!(status, 200, "GET /metrics: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap()
}

pub fn note(n: u64) -> Value {
    json!({"kind": "note", "actor": "agent:test", "body": {"type": "n", "json": {"n": n}}})
}

pub fn post(c: &reqwest::blocking::Client, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut r = c.post(url).json(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

pub fn get(c: &reqwest::blocking::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = c.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// Reads `n` SSE events (id, data) from a tail.
pub fn read_sse(resp: reqwest::blocking::Response, n: usize) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    let mut id = None;
    for line in BufReader::new(resp).lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("id: ").or_else(|| line.strip_prefix("id:")) {
            id = Some(v.trim().parse::<u64>().unwrap());
        } else if let Some(d) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
            out.push((id.take().unwrap(), serde_json::from_str(d).unwrap()));
            if out.len() == n {
                break;
            }
        }
    }
    out
}
