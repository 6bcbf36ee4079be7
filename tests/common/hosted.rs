//! The stand-in of the hosted Managed Agents API (tests/python/hosted_standin.py) and
//! `dreamlog sync anthropic` against it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::{dreamlog_on, ok, root};

pub const KEY: &str = "sk-ant-standin-key";

/// The stand-in, serving a scenario; killed when dropped.
pub struct StandIn {
    pub child: Child,
    pub url: String,
}

impl StandIn {
    pub fn start(scenario: &Value, dir: &Path, fail_every: u32) -> StandIn {
        StandIn::start_with(scenario, dir, fail_every, 0)
    }

    pub fn start_with(scenario: &Value, dir: &Path, fail_every: u32, delay_ms: u32) -> StandIn {
        StandIn::start_paged(scenario, dir, fail_every, delay_ms, 0)
    }

    /// With at most `max_page` items a page (0: the API's own limits).
    pub fn start_paged(scenario: &Value, dir: &Path, fail_every: u32, delay_ms: u32, max_page: u32) -> StandIn {
        let file = dir.join("scenario.json");
        std::fs::write(&file, scenario.to_string()).expect("scenario");
        let mut child = Command::new("python3")
            .arg("tests/python/hosted_standin.py")
            .args(["--scenario", file.to_str().expect("utf-8"), "--key", KEY])
            .args(["--log", dir.join("requests.jsonl").to_str().expect("utf-8")])
            .args(["--fail-every", &fail_every.to_string(), "--delay-ms", &delay_ms.to_string()])
            .args(["--max-page", &max_page.to_string()])
            .current_dir(root())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with the anthropic SDK (tools/bootstrap.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the stand-in's first line");
        let url = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("stand-in said {line:?}")).to_owned();
        StandIn { child, url }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sync(db: &Path, url: &str, args: &[&str]) -> std::process::Output {
    hosted(db, url, &[&["sync", "anthropic"], args].concat())
}

/// The fixture of a learning loop on the hosted platform (tests/fixtures/hosted).
pub fn learning() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/hosted/learning.json")).expect("fixture"))
        .expect("JSON")
}

/// The store's files now, read back with `memory view`.
pub fn files(db: &Path, store: &str) -> BTreeMap<String, String> {
    let root: Value =
        serde_json::from_str(&ok(&dreamlog_on(db, &["--json", "memory", "view", store, "/memories"], None)))
            .expect("a view");
    let mut out = BTreeMap::new();
    for f in root["files"].as_array().expect("files") {
        let path = f.as_str().expect("a path");
        let v: Value = serde_json::from_str(&ok(&dreamlog_on(db, &["--json", "memory", "view", store, path], None)))
            .expect("a view");
        // The view (rules 2) is a header line, then the file's lines numbered, the text
        // after a final newline included: the text after each tab, joined again.
        let shown = v["text"].as_str().expect("text");
        let numbered: Vec<&str> = shown.split('\n').skip(1).map(|l| l.split_once('\t').expect("numbered").1).collect();
        let text = numbered.join("\n");
        out.insert(path.to_owned(), text);
    }
    out
}

/// `dreamlog` with the stand-in as the hosted API.
pub fn hosted(db: &Path, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dreamlog"))
        .args(["--db", db.to_str().expect("utf-8")])
        .args(args)
        .env("DREAMLOG_SYNC", "none")
        .env("ANTHROPIC_BASE_URL", url)
        .env("ANTHROPIC_API_KEY", KEY)
        .env("USER", "ops-alice")
        .output()
        .expect("run dreamlog")
}
