//! A cluster on loopback (tools/cluster.sh): three NATS servers and three dreamlog nodes.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

/// A cluster started by tools/cluster.sh in a temporary folder; stopped when dropped.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
    /// The environment tools/cluster.sh (and so every node it starts) runs with.
    pub extra: Vec<(String, String)>,
}

impl Cluster {
    pub fn up() -> Cluster {
        Cluster::up_with(&[])
    }

    /// With these environment variables for the script and its nodes.
    pub fn up_with(extra: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::Builder::new().prefix("dreamlog-cluster-test").tempdir().expect("temp dir");
        let extra = extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut c = Cluster { dir, env: HashMap::new(), extra };
        let out = c.sh(&["up"]);
        assert!(out.status.success(), "cluster.sh up failed:\n{}", text(&out));
        let env = std::fs::read_to_string(c.dir.path().join("cluster.env")).expect("cluster.env");
        c.env = env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        c
    }

    pub fn sh(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(super::root().join("tools/cluster.sh"))
            .args(args)
            .env("DREAMLOG_CLUSTER_DIR", self.dir.path())
            .env("DREAMLOG_BIN", env!("CARGO_BIN_EXE_dreamlog"))
            .envs(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run tools/cluster.sh")
    }

    pub fn member(&self, verb: &str, member: &str) {
        let out = self.sh(&[verb, member]);
        assert!(out.status.success(), "cluster.sh {verb} {member}:\n{}", text(&out));
    }

    pub fn node(&self, n: usize) -> String {
        self.env.get(&format!("NODE{n}")).cloned().unwrap_or_else(|| {
            let base: u16 = self.env["BASE"].parse().expect("BASE");
            format!("http://127.0.0.1:{}", base + 30 + n as u16)
        })
    }

    pub fn nodes(&self) -> Vec<String> {
        (1..=3).map(|n| self.node(n)).collect()
    }

    pub fn nats_health(&self, n: u16) -> String {
        let base: u16 = self.env["BASE"].parse().expect("BASE");
        format!("http://127.0.0.1:{}/healthz", base + 20 + n)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.sh(&["down"]);
    }
}

pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
