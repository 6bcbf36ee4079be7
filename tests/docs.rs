//! The docs are tested like code (issue 33). Three checks:
//!
//! 1. Every shell block in `README.md` and `docs/**/*.md` runs against a fresh database,
//!    page by page, and a transcript's shown output still matches (docs/dev/docs.md has the
//!    conventions: `sh`/`bash`/`shell`/`console` fences run; `$ ` lines are commands
//!    followed by their output, `…` matches any text; `<!-- doc-check: skip (why) -->`
//!    before a fence keeps it from running, and must say why). Relative links must lead
//!    to a file, and their `#anchor` to a heading in it.
//! 2. `docs/reference/cli.md` is the `--help` text of every command, generated.
//! 3. `docs/reference/http.md` is `schemas/openapi.json`, rendered.
//!
//! `DREAMLOG_BLESS=1 cargo test --release --test docs` rewrites the two generated pages;
//! `DREAMLOG_DOCS_PAGE=docs/guide/memory.md` runs one page's blocks only.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The whole check's time budget (CI: 2 cores).
const BUDGET: Duration = Duration::from_secs(180);
/// One block's (or one transcript command's) time limit.
const BLOCK_LIMIT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `README.md` and every Markdown file under `docs/`, sorted, relative to the root.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p.strip_prefix(root()).unwrap().to_path_buf());
            }
        }
    }
    let mut out = vec![PathBuf::from("README.md")];
    walk(&root().join("docs"), &mut out);
    out.sort();
    out
}

/// A fenced code block of a page.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    lines: Vec<String>,
    /// `Some(reason)` when marked not to run.
    skip: Option<String>,
}

impl Block {
    fn runs(&self) -> bool {
        matches!(self.lang.as_str(), "sh" | "bash" | "shell" | "console")
    }
}

const SKIP: &str = "<!-- doc-check: skip";

/// A page's fenced blocks (``` or ~~~, indented up to a list item's depth), and the lines
/// outside them (for links and headings).
fn parse(text: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut open: Option<(String, usize, Block)> = None;
    let mut previous = String::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        let indent = raw.len() - trimmed.len();
        match &mut open {
            Some((fence, fence_indent, block)) => {
                if trimmed.starts_with(fence.as_str()) && trimmed.trim_end().chars().all(|c| c == '`' || c == '~') {
                    blocks.push(open.take().unwrap().2);
                } else {
                    // A list item's block is indented: its lines lose that indentation.
                    let cut = (*fence_indent).min(raw.len() - raw.trim_start().len());
                    block.lines.push(raw[cut..].to_owned());
                }
            }
            None => {
                let fence: String = trimmed.chars().take_while(|c| *c == '`' || *c == '~').collect();
                if fence.len() >= 3 && (fence.chars().all(|c| c == '`') || fence.chars().all(|c| c == '~')) {
                    let lang = trimmed[fence.len()..].split_whitespace().next().unwrap_or("").to_owned();
                    let skip = previous.trim().strip_prefix(SKIP).map(|rest| {
                        rest.trim()
                            .trim_end_matches("-->")
                            .trim()
                            .trim_start_matches('(')
                            .trim_end_matches(')')
                            .to_owned()
                    });
                    open = Some((fence, indent, Block { line: i + 1, lang, lines: Vec::new(), skip }));
                } else {
                    prose.push((i + 1, raw.to_owned()));
                }
            }
        }
        if !raw.trim().is_empty() {
            previous = raw.to_owned();
        }
    }
    (blocks, prose)
}

/// GitHub's anchor for a heading: lowercase; letters, digits, `-` and `_` kept, spaces to
/// `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A page's anchors: its headings' slugs (GitHub numbers repeats `-1`, `-2`, …).
fn anchors(text: &str) -> BTreeSet<String> {
    let (_, prose) = parse(text);
    let mut seen = BTreeSet::new();
    for (_, line) in prose {
        let Some(heading) = line.strip_prefix('#') else { continue };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut s = base.clone();
        let mut n = 0;
        while seen.contains(&s) {
            n += 1;
            s = format!("{base}-{n}");
        }
        seen.insert(s);
    }
    seen
}

/// The relative link targets of a line (`[text](target)`, images too), with inline code
/// spans left out.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' {
            in_code = !in_code;
        } else if !in_code && chars[i] == ']' && chars.get(i + 1) == Some(&'(') {
            let rest: String = chars[i + 2..].iter().collect();
            if let Some(end) = rest.find(')') {
                let target = rest[..end].split_whitespace().next().unwrap_or("").to_owned();
                if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
                    out.push(target);
                }
            }
        }
        i += 1;
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_leads_somewhere() {
    let mut problems = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(root().join(&page)).unwrap();
        let (_, prose) = parse(&text);
        for (line, content) in prose {
            for target in links(&content) {
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let path =
                    if file.is_empty() { root().join(&page) } else { root().join(&page).parent().unwrap().join(file) };
                if !path.exists() {
                    problems.push(format!("{}:{line}: {target}: no such file", page.display()));
                    continue;
                }
                if let Some(anchor) = anchor.filter(|_| path.extension().is_some_and(|x| x == "md")) {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if !anchors(&text).contains(anchor) {
                        problems.push(format!("{}:{line}: {target}: no heading with that anchor", page.display()));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} broken links:\n{}", problems.len(), problems.join("\n"));
}

/// Whether `actual` matches the shown lines, where `…` inside a line matches any text and
/// a line that is only `…` matches any number of lines.
fn lines_match(shown: &[String], actual: &[String]) -> bool {
    fn line(pattern: &str, text: &str) -> bool {
        let parts: Vec<&str> = pattern.split('…').collect();
        if parts.len() == 1 {
            return pattern == text;
        }
        let (first, last) = (parts[0], parts[parts.len() - 1]);
        if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
            return false;
        }
        let mut rest = &text[first.len()..text.len() - last.len()];
        for part in &parts[1..parts.len() - 1] {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        true
    }
    // matched[i][j]: shown[i..] matches actual[j..].
    let (n, m) = (shown.len(), actual.len());
    let mut matched = vec![vec![false; m + 1]; n + 1];
    matched[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            matched[i][j] = if shown[i] == "…" {
                matched[i + 1][j] || (j < m && matched[i][j + 1])
            } else {
                j < m && line(&shown[i], &actual[j]) && matched[i + 1][j + 1]
            };
        }
    }
    matched[0][0]
}

#[test]
fn the_shown_output_matcher_reads_ellipses_as_the_docs_mean_them() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(lines_match(&s(&["a", "…", "d"]), &s(&["a", "b", "c", "d"])));
    assert!(lines_match(&s(&["a", "…", "d"]), &s(&["a", "d"])));
    assert!(!lines_match(&s(&["a", "…", "d"]), &s(&["a", "b"])));
    assert!(lines_match(&s(&["x … z"]), &s(&["x y y z"])));
    assert!(!lines_match(&s(&["x … z"]), &s(&["x y y"])));
    assert!(!lines_match(&s(&["a"]), &s(&["a", "b"])), "every line shown or elided");
    assert!(lines_match(&s(&["…a…"]), &s(&["bab"])));
    assert!(!lines_match(&s(&["ab…ba"]), &s(&["aba"])), "the ends do not overlap");
}

/// One run of a shell command in a page's scratch directory: its exit code and output
/// (stdout and stderr together, in order).
struct Ran {
    code: Option<i32>,
    output: String,
    took: Duration,
}

/// Runs `script` with bash in `dir`, in its own process group (recorded in `groups`, so
/// what it leaves running in the background is stopped when the page ends). Output goes
/// to a file, not a pipe: a server left in the background would hold a pipe open.
fn run(dir: &Path, script: &str, groups: &mut Groups) -> Ran {
    // A file of its own: a process a command leaves running cannot write into the next
    // command's output.
    let out_path = dir.join(format!(".doc-check-output-{}", groups.0.len()));
    let out = File::create(&out_path).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_dreamlog"));
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.arg("-euo").arg("pipefail").arg("-c").arg(script).current_dir(dir);
    without_dreamlog_env(&mut cmd);
    cmd.env("PATH", path).env("HOME", dir.join("home")).env("NO_COLOR", "1");
    cmd.stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out).process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("bash");
    groups.0.push(child.id());
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > BLOCK_LIMIT {
            kill_group(child.id());
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap()).into_owned();
    Ran { code, output, took: start.elapsed() }
}

/// Clears every DREAMLOG_* variable of this process from `cmd`'s environment (the docs
/// show commands as a new user runs them; clap's help would show their values).
fn without_dreamlog_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("DREAMLOG_") {
            cmd.env_remove(k);
        }
    }
}

/// The process groups a page started: each killed when the page ends, however it ends
/// (a panic included), so no server it left running outlives it.
struct Groups(Vec<u32>);

impl Drop for Groups {
    fn drop(&mut self) {
        for g in self.0.drain(..) {
            kill_group(g);
        }
    }
}

/// SIGKILL to a process group. (`--` matters: procps' `kill -KILL -12345` reads `-1` as the
/// process and `2345` as garbage, and `kill(-1)` is every process the user may signal.)
fn kill_group(pgid: u32) {
    if pgid <= 1 {
        return; // not a process group of ours
    }
    let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
}

/// A transcript's commands: (line offset in the block, command, shown output).
fn transcript(block: &Block) -> Vec<(usize, String, Vec<String>)> {
    let mut out: Vec<(usize, String, Vec<String>)> = Vec::new();
    let mut continuing = false;
    for (i, l) in block.lines.iter().enumerate() {
        if continuing {
            let last = out.last_mut().unwrap();
            last.1.push('\n');
            last.1.push_str(l);
            continuing = l.trim_end().ends_with('\\');
        } else if let Some(cmd) = l.strip_prefix("$ ") {
            out.push((i, cmd.to_owned(), Vec::new()));
            continuing = cmd.trim_end().ends_with('\\');
        } else if let Some(last) = out.last_mut() {
            last.2.push(l.trim_end().to_owned());
        }
    }
    for t in &mut out {
        while t.2.last().is_some_and(|l| l.is_empty()) {
            t.2.pop();
        }
    }
    out
}

/// Runs a page's blocks in a fresh scratch directory, none once `deadline` has passed;
/// the problems found.
fn run_page(page: &Path, blocks: &[Block], took: &mut Vec<(String, Duration)>, deadline: Instant) -> Vec<String> {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir(dir.join("home")).unwrap();
    for name in ["tests", "tools", "schemas", "docs", "python", "src", "Cargo.toml"] {
        std::os::unix::fs::symlink(root().join(name), dir.join(name)).unwrap();
    }
    let mut groups = Groups(Vec::new());
    let mut problems = Vec::new();
    let start = Instant::now();
    for block in blocks.iter().filter(|b| b.runs() && b.skip.is_none()) {
        let at = format!("{}:{}", page.display(), block.line);
        if Instant::now() > deadline {
            problems.push(format!("{at}: not run: the doc check's budget of {BUDGET:?} is spent"));
            break;
        }
        if block.lines.iter().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with("$ ")) {
            for (offset, cmd, shown) in transcript(block) {
                let ran = run(dir, &cmd, &mut groups);
                let at = format!("{}:{}", page.display(), block.line + 1 + offset);
                let actual: Vec<String> = ran.output.lines().map(|l| l.trim_end().to_owned()).collect();
                let wants_error = shown.first().is_some_and(|l| l.starts_with("error:"));
                match ran.code {
                    None => problems.push(format!("{at}: `{cmd}` ran past {BLOCK_LIMIT:?}")),
                    Some(code) if (code == 0) == wants_error => problems.push(format!(
                        "{at}: `{cmd}` exited {code} (shown output {}):\n{}",
                        if wants_error { "is an error" } else { "is not an error" },
                        ran.output
                    )),
                    _ => {}
                }
                if !shown.is_empty() && !lines_match(&shown, &actual) {
                    problems.push(format!(
                        "{at}: `{cmd}` printed other than shown\n--- shown\n{}\n--- printed\n{}",
                        shown.join("\n"),
                        ran.output
                    ));
                }
            }
        } else {
            let ran = run(dir, &block.lines.join("\n"), &mut groups);
            match ran.code {
                Some(0) => {}
                Some(code) => problems.push(format!("{at}: the block exited {code}:\n{}", ran.output)),
                None => problems.push(format!("{at}: the block ran past {BLOCK_LIMIT:?}:\n{}", ran.output)),
            }
            if ran.took > BLOCK_LIMIT / 2 {
                eprintln!("{at}: took {:?} (the limit is {BLOCK_LIMIT:?})", ran.took);
            }
        }
    }
    drop(groups);
    took.push((page.display().to_string(), start.elapsed()));
    problems
}

#[test]
fn every_command_in_the_docs_runs_and_prints_what_it_shows() {
    let only = std::env::var("DREAMLOG_DOCS_PAGE").ok();
    if let Some(p) = &only {
        assert!(
            pages().iter().any(|q| q == Path::new(p)),
            "DREAMLOG_DOCS_PAGE={p}: no such page (README.md or docs/…)"
        );
    }
    let start = Instant::now();
    let deadline = start + BUDGET;
    let (mut problems, mut took, mut ran, mut skipped) = (Vec::new(), Vec::new(), 0, 0);
    for page in pages() {
        if only.as_deref().is_some_and(|p| Path::new(p) != page) {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&page)).unwrap();
        let (blocks, _) = parse(&text);
        for b in &blocks {
            match &b.skip {
                Some(reason) if reason.trim().is_empty() || reason.trim() == "-->" => {
                    problems.push(format!("{}:{}: a skipped block must say why it is not run", page.display(), b.line))
                }
                Some(_) if !b.runs() => problems.push(format!(
                    "{}:{}: a skip marker on a `{}` block, which never runs",
                    page.display(),
                    b.line,
                    b.lang
                )),
                Some(_) => skipped += 1,
                None if b.runs() => ran += 1,
                None => {}
            }
        }
        if blocks.iter().any(|b| b.runs() && b.skip.is_none()) {
            eprintln!("doc check: {}", page.display());
            problems.extend(run_page(&page, &blocks, &mut took, deadline));
        }
    }
    took.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    let elapsed = start.elapsed();
    eprintln!(
        "doc check: {ran} blocks run, {skipped} marked not run, in {elapsed:?}; slowest pages: {:?}",
        &took[..took.len().min(3)]
    );
    if only.is_none() {
        assert!(ran > 0, "no block ran: the docs hold no shell blocks, or the parser lost them");
        if elapsed > BUDGET {
            problems.push(format!(
                "the doc check took {elapsed:?}, past its budget of {BUDGET:?}; slowest pages: {took:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{} problems in the docs:\n\n{}", problems.len(), problems.join("\n\n"));
}

/// Compares a generated page with the checked-in one (or writes it, with DREAMLOG_BLESS=1).
fn check_generated(page: &str, generated: &str) {
    let path = root().join(page);
    if std::env::var_os("DREAMLOG_BLESS").is_some() {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        let first = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(current.lines().count().min(generated.lines().count()));
        panic!(
            "{page} is not what the sources generate (first difference at line {}: {:?} here, {:?} generated); \
             run `DREAMLOG_BLESS=1 cargo test --release --test docs` and commit it",
            first + 1,
            current.lines().nth(first).unwrap_or("<end>"),
            generated.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

/// `dreamlog ARGS --help`, with no DREAMLOG_* variable set (clap shows their values).
fn help(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dreamlog"));
    cmd.args(args).arg("--help");
    without_dreamlog_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "dreamlog {} --help: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help text lists under `Commands:` (not `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_cli_reference_is_the_help_of_every_command() {
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let text = help(&args);
        let subs = subcommands(&text);
        for s in subs.iter().rev() {
            let mut p = path.clone();
            p.push(s.clone());
            todo.push(p);
        }
        commands.push(path);
    }
    assert!(commands.len() > 20, "the command tree was not read: {commands:?}");
    let mut md = String::from(
        "# CLI reference\n\n\
         Generated from the `--help` text of every command by `tests/docs.rs` — do not edit: change the\n\
         help texts (`src/cli/`), then run `DREAMLOG_BLESS=1 cargo test --release --test docs`. CI fails when\n\
         this page and the binary disagree. For what the commands are for, start at the [guide](../guide/README.md).\n\n",
    );
    for path in &commands {
        let name = std::iter::once("dreamlog").chain(path.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
        let depth = path.len().saturating_sub(1);
        writeln!(md, "{}- [`{name}`](#{})", "  ".repeat(depth), slug(&name)).unwrap();
    }
    for path in &commands {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let name = std::iter::once("dreamlog").chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        write!(md, "\n## {name}\n\n```text\n{}```\n", help(&args)).unwrap();
    }
    check_generated("docs/reference/cli.md", &md);
}

/// Where a schema reference of the OpenAPI document is, as a link from docs/reference/.
fn schema_link(v: &Value) -> Option<String> {
    let r = v.get("$ref")?.as_str()?;
    if let Some(name) = r.strip_prefix("https://dreamlog.dev/schemas/") {
        return Some(format!("[`{name}`](../../schemas/{name})"));
    }
    if r == "#/components/schemas/Error" {
        return Some("[`api/error.schema.json`](../../schemas/api/error.schema.json)".into());
    }
    Some(format!("`{r}`"))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

#[test]
fn the_http_reference_is_the_openapi_document() {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("schemas/openapi.json")).unwrap()).unwrap();
    let mut md = String::from(
        "# HTTP API reference\n\n\
         Rendered from [`schemas/openapi.json`](../../schemas/openapi.json) by `tests/docs.rs` — do not edit: change\n\
         the OpenAPI document, then run `DREAMLOG_BLESS=1 cargo test --release --test docs`. Request and answer\n\
         bodies are the JSON Schemas linked. How to run and secure the server: [operations](../ops/server.md).\n\n",
    );
    writeln!(md, "{}\n", doc["info"]["description"].as_str().unwrap_or("")).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let group = |p: &str| {
        if p.starts_with("/v1/") {
            0
        } else if p.starts_with("/anthropic/") {
            1
        } else {
            2
        }
    };
    let mut ordered: Vec<(&String, &Value)> = paths.iter().collect();
    ordered.sort_by_key(|(p, _)| (group(p), p.to_string()));
    let titles = ["The dreamlog API (`/v1`)", "Managed-Agents memory API (`/anthropic/v1`)", "Other endpoints"];
    let mut current = usize::MAX;
    for (path, ops) in ordered {
        if group(path) != current {
            current = group(path);
            writeln!(md, "## {}\n", titles[current]).unwrap();
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = ops.get(method) else { continue };
            writeln!(md, "### {} {path}\n", method.to_uppercase()).unwrap();
            writeln!(md, "{}\n", one_line(op["summary"].as_str().unwrap_or(""))).unwrap();
            let role = op["x-role"].as_str().unwrap_or("read");
            let auth = if op["security"].as_array().is_some_and(|a| a.is_empty()) {
                "none".to_owned()
            } else {
                role.to_owned()
            };
            writeln!(md, "- Role: {auth}").unwrap();
            if let Some(params) = op["parameters"].as_array().filter(|a| !a.is_empty()) {
                md.push_str(
                    "- Parameters:\n\n  | name | in | type | required | description |\n  |---|---|---|---|---|\n",
                );
                for p in params {
                    let p = match p.get("$ref").and_then(Value::as_str) {
                        Some(r) => &doc["components"]["parameters"][r.rsplit('/').next().unwrap()],
                        None => p,
                    };
                    writeln!(
                        md,
                        "  | `{}` | {} | {} | {} | {} |",
                        p["name"].as_str().unwrap_or(""),
                        p["in"].as_str().unwrap_or(""),
                        p["schema"]["type"].as_str().unwrap_or(""),
                        if p["required"].as_bool().unwrap_or(false) { "yes" } else { "no" },
                        one_line(p["description"].as_str().unwrap_or(""))
                    )
                    .unwrap();
                }
                md.push('\n');
            }
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for (mime, c) in content {
                    let schema = schema_link(&c["schema"]).unwrap_or_else(|| one_line(&c["schema"].to_string()));
                    writeln!(md, "- Request body (`{mime}`): {schema}").unwrap();
                }
            }
            if let Some(responses) = op["responses"].as_object() {
                for (code, r) in responses {
                    let mut line = format!("- {code}: {}", one_line(r["description"].as_str().unwrap_or("")));
                    if let Some(content) = r["content"].as_object() {
                        for (mime, c) in content {
                            let schema = schema_link(&c["schema"]).unwrap_or_else(|| {
                                one_line(
                                    c["schema"]["description"]
                                        .as_str()
                                        .unwrap_or(c["schema"]["type"].as_str().unwrap_or("")),
                                )
                            });
                            write!(line, " — `{mime}`: {schema}").unwrap();
                        }
                    }
                    writeln!(md, "{line}").unwrap();
                }
            }
            md.push('\n');
        }
    }
    while md.ends_with("\n\n") {
        md.pop();
    }
    check_generated("docs/reference/http.md", &md);
}
