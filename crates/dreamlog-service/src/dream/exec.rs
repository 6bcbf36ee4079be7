//! The `exec` dreamer: any program, in any language. It gets the dream input as one
//! JSON object on stdin (`schemas/dream-input.schema.json`) and prints its memory
//! commands as one JSON object on stdout (`schemas/dream-exec-output.schema.json`):
//! `{"commands": [{"input": {memory tool input}, "causes": [event ids]}], "summary": …}`.
//! A non-zero exit, a timeout or output that does not parse fails the dream with the
//! program's stderr; nothing is written. Replay runs the program again: it must be
//! deterministic in its input for `dream replay` to pass.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{dreamer_error, Dreamer, DreamerOutput};
use crate::core::dream::{DreamInput, Planned};
use crate::core::LlmExchange;
use crate::error::Result;

/// The dreamer's name.
pub const NAME: &str = "exec";

/// Configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Seconds before the program is killed.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The input format the program reads: 1 (the sessions graded in range) or 2 (also
    /// every graded session up to the range's end as a per-task trial, and the tasks'
    /// texts). Recorded only when 2, so configs recorded before it stay as they were.
    #[serde(default = "default_input", skip_serializing_if = "is_one")]
    pub input: u32,
}

fn default_timeout() -> u64 {
    300
}

fn default_input() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

/// What the program prints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecOutput {
    commands: Vec<Planned>,
    #[serde(default)]
    summary: Value,
}

/// Runs an external program as a dreamer.
pub struct ExecDreamer {
    version: String,
    cfg: ExecConfig,
}

impl ExecDreamer {
    /// `version` is the program's own version (recorded, compared on replay).
    pub fn from_config(version: String, v: &Value) -> Result<ExecDreamer> {
        let label = format!("{NAME}@{version}");
        let cfg: ExecConfig = serde_json::from_value(v.clone()).map_err(|e| {
            dreamer_error(&label, format!("bad config: {e} (expected {{\"command\": [\"program\", \"arg\", …]}})"))
        })?;
        if cfg.command.is_empty() || cfg.command[0].is_empty() {
            return Err(dreamer_error(&label, "bad config: command is empty"));
        }
        if !crate::core::dream::INPUT_FORMATS.contains(&cfg.input) {
            return Err(dreamer_error(
                &label,
                format!("bad config: input format {} (this build reads 1 or 2)", cfg.input),
            ));
        }
        Ok(ExecDreamer { version, cfg })
    }
}

impl Dreamer for ExecDreamer {
    fn name(&self) -> &str {
        NAME
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn config(&self) -> Value {
        serde_json::to_value(&self.cfg).unwrap_or(Value::Null)
    }
    fn input_format(&self) -> u32 {
        self.cfg.input
    }

    fn dream(&self, input: &DreamInput, _: Option<&[LlmExchange]>) -> Result<DreamerOutput> {
        let label = format!("{NAME}@{}", self.version);
        let fail = |reason: String| dreamer_error(&label, reason);
        let program = &self.cfg.command[0];
        let mut child = Command::new(program)
            .args(&self.cfg.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot start {program:?}: {e}")))?;
        let payload = serde_json::to_vec(input).map_err(|e| fail(format!("cannot encode the input: {e}")))?;
        // Feed stdin and drain stdout/stderr on their own threads so that no pipe fills.
        let mut stdin = child.stdin.take().ok_or_else(|| fail("no stdin".into()))?;
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&payload);
        });
        let mut stdout = child.stdout.take().ok_or_else(|| fail("no stdout".into()))?;
        let mut stderr = child.stderr.take().ok_or_else(|| fail("no stderr".into()))?;
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + Duration::from_secs(self.cfg.timeout_secs);
        let status = loop {
            match child.try_wait().map_err(|e| fail(format!("waiting for {program:?}: {e}")))? {
                Some(s) => break s,
                None if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!(
                        "{program:?} ran longer than {} s and was killed",
                        self.cfg.timeout_secs
                    )));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let _ = writer.join();
        let out = out_reader.join().unwrap_or_default();
        let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).trim().to_owned();
        let tail: String = err.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect();
        if !status.success() {
            return Err(fail(format!(
                "{program:?} exited with {status}{}",
                if tail.is_empty() { String::new() } else { format!("; its stderr:\n{tail}") }
            )));
        }
        let parsed: ExecOutput = serde_json::from_slice(&out).map_err(|e| {
            fail(format!(
                "{program:?} printed invalid output: {e} (expected {{\"commands\": [{{\"input\": {{…}}, \"causes\": […]}}]}}){}",
                if tail.is_empty() { String::new() } else { format!("; its stderr:\n{tail}") }
            ))
        })?;
        Ok(DreamerOutput { commands: parsed.commands, exchanges: Vec::new(), summary: parsed.summary })
    }
}
