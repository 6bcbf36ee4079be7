//! Memory stores as a pure projection: a tree of UTF-8 files under `/memories`, changed
//! only by the Claude memory tool's commands (`memory_20250818`). Result and error texts
//! are that tool's, verbatim (tests/memory_contract.rs holds every one), so an agent loop
//! can hand them straight back to the model.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod v2;

use super::body::MemoryCommand;
use super::hash::Digest;

/// The root every path lives under.
pub const ROOT: &str = "/memories";
/// Longest path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Deepest path, in segments below `/memories`.
pub const MAX_DEPTH: usize = 16;
/// Largest file, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Most lines `view` shows of one file.
pub const MAX_VIEW_LINES: usize = 999_999;

/// Why a memory command failed. `message` is the text the tool returns to the model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// The failure class (for HTTP status codes and JSON output).
    pub kind: ToolErrorKind,
    /// The tool's text.
    pub message: String,
}

/// Classes of memory command failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolErrorKind {
    /// The path does not exist.
    NotFound,
    /// The file or destination already exists.
    AlreadyExists,
    /// The input is not valid (path, line numbers, old_str not found or not unique).
    Invalid,
    /// A precondition on the file's content hash did not hold.
    Conflict,
    /// A size limit was exceeded.
    TooLarge,
}

impl ToolErrorKind {
    /// The class's name in JSON answers (`not_found`, `already_exists`, …).
    pub fn name(self) -> &'static str {
        match self {
            ToolErrorKind::NotFound => "not_found",
            ToolErrorKind::AlreadyExists => "already_exists",
            ToolErrorKind::Invalid => "invalid",
            ToolErrorKind::Conflict => "conflict",
            ToolErrorKind::TooLarge => "too_large",
        }
    }
}

fn err(kind: ToolErrorKind, message: impl Into<String>) -> ToolError {
    ToolError { kind, message: message.into() }
}

/// Checks a path and returns it normalised (one trailing `/` removed). Paths must be
/// `/memories` or below it, with no `.`/`..` segments (also percent-encoded or with
/// backslashes), no empty segments, no control characters, within the length and depth
/// bounds.
pub fn validate_path(path: &str) -> Result<String, ToolError> {
    check_path(path).map(str::to_owned)
}

/// [`validate_path`] without allocating: the normalised path is a slice of the input.
pub fn check_path(path: &str) -> Result<&str, ToolError> {
    let invalid = |reason: &str| err(ToolErrorKind::Invalid, format!("Error: Invalid path {path:?}: {reason}"));
    if path.len() > MAX_PATH_BYTES {
        return Err(invalid(&format!("longer than {MAX_PATH_BYTES} bytes")));
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(invalid(&format!("contains the control character U+{:04X}", c as u32)));
    }
    if let Some(c) = path.chars().find(|c| crate::validate::is_bidi_control(*c)) {
        return Err(invalid(&format!(
            "contains the bidirectional control character U+{:04X} (it makes a path display as another)",
            c as u32
        )));
    }
    if path.contains('\\') {
        return Err(invalid("backslashes are not allowed"));
    }
    let encoded = path.match_indices('%').any(|(i, _)| {
        let code = path.get(i + 1..i + 3).map(|c| c.to_ascii_lowercase());
        matches!(code.as_deref(), Some("2e" | "2f" | "5c" | "00"))
    });
    if encoded {
        return Err(invalid("percent-encoded dots, slashes and NUL are not allowed"));
    }
    let trimmed = if path.len() > 1 && path.ends_with('/') { &path[..path.len() - 1] } else { path };
    if trimmed != ROOT && !trimmed.starts_with("/memories/") {
        return Err(invalid("every path must be inside /memories"));
    }
    for (depth, s) in trimmed[ROOT.len()..].split('/').skip(1).enumerate() {
        if depth >= MAX_DEPTH {
            return Err(invalid(&format!("deeper than {MAX_DEPTH} levels")));
        }
        match s {
            "" => return Err(invalid("empty path segment")),
            "." | ".." => return Err(invalid("'.' and '..' segments are not allowed")),
            _ => {}
        }
    }
    Ok(trimmed)
}

/// Checks a path a new command brings (never a recorded one: a fold judges those by
/// [`check_path`] alone, as they were judged when written): a [`check_path`] with no
/// invisible or format character (`/zw\u{200B}.md` would list as `/zw.md`), in Unicode
/// NFC (a client sends NFC; paths read from a file system are normalised first), and no
/// segment that is `.` or `..` in another spelling (fullwidth `．．`, percent-encoded).
pub fn check_new_path(path: &str) -> Result<&str, ToolError> {
    let checked = check_path(path)?;
    let invalid = |reason: String| err(ToolErrorKind::Invalid, format!("Error: Invalid path {path:?}: {reason}"));
    if let Some(c) = crate::validate::hidden_char(path) {
        return Err(invalid(format!(
            "contains U+{:04X}, an invisible or format character (a path with one displays as another)",
            c as u32
        )));
    }
    if !unicode_normalization::is_nfc(path) {
        use unicode_normalization::UnicodeNormalization;
        let nfc: String = path.nfc().collect();
        return Err(invalid(format!("not in Unicode NFC (send it as {nfc:?})")));
    }
    if let Some(seg) = checked.split('/').find(|s| crate::validate::is_dot_segment(s)) {
        return Err(invalid(format!("segment {seg:?} means '.' or '..' once decoded")));
    }
    Ok(checked)
}

/// [`check_new_path`] of every path a new command brings into a store (a created or
/// written file, a directory made, a rename's new name). Paths it only names — an edit,
/// a delete, a rename's old name — are already there (or the command fails), so a path
/// recorded before these rules can still be edited, renamed to a sound name or removed.
pub fn check_new_command(cmd: &MemoryCommand) -> Result<(), ToolError> {
    match cmd {
        MemoryCommand::Create { path, .. } | MemoryCommand::Write { path, .. } | MemoryCommand::Mkdir { path } => {
            check_new_path(path).map(|_| ())
        }
        MemoryCommand::Rename { new_path, .. } => check_new_path(new_path).map(|_| ()),
        MemoryCommand::StrReplace { .. } | MemoryCommand::Insert { .. } | MemoryCommand::Delete { .. } => Ok(()),
    }
}

/// One file: its text and (computed when first asked for) its content hash.
#[derive(Clone, Debug)]
pub struct File {
    /// UTF-8 text.
    pub text: Arc<str>,
    hash: std::sync::OnceLock<Digest>,
}

impl File {
    /// A file holding `text`.
    pub fn new(text: &str) -> File {
        File { text: Arc::from(text), hash: std::sync::OnceLock::new() }
    }

    /// BLAKE3 of the text. Folds edit files far more often than they compare them, so
    /// the hash is computed lazily, once.
    pub fn hash(&self) -> Digest {
        *self.hash.get_or_init(|| Digest::of(self.text.as_bytes()))
    }
}

impl PartialEq for File {
    fn eq(&self, other: &File) -> bool {
        self.text == other.text
    }
}

impl Eq for File {}

/// The semantics a store's commands are folded with. Recorded per store (a `note` of
/// type [`RULES_NOTE`] on its stream): states written under rules 1 keep their state
/// hashes and replay as they were; a store follows rules 2 from its switch onward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rules {
    /// 1: directories are implied by the files in them; dreamlog's own texts, errors
    /// prefixed `Error: ` (every store written before rules 2 existed).
    #[default]
    V1,
    /// 2: the Anthropic SDK's reference backend (`BetaLocalFilesystemMemoryTool`):
    /// directories are state (made by creating or moving a file below them, kept when
    /// emptied, deleted and renamed whole), its texts verbatim, no `Error: ` prefix.
    V2,
}

/// The rules new stores start with.
pub const CURRENT_RULES: Rules = Rules::V2;

/// The `note` type that switches a store's rules: `{"rules": N}` on `memory/S`.
pub const RULES_NOTE: &str = "memory.rules";

impl Rules {
    /// The rules' number (1, 2).
    pub fn number(self) -> u64 {
        match self {
            Rules::V1 => 1,
            Rules::V2 => 2,
        }
    }

    /// The rules numbered `n`, if this build has them.
    pub fn from_number(n: u64) -> Option<Rules> {
        match n {
            1 => Some(Rules::V1),
            2 => Some(Rules::V2),
            _ => None,
        }
    }

    /// The rules a `memory.rules` note's content names (`{"rules": N}`, nothing else).
    pub fn from_note(json: &serde_json::Value) -> Option<Rules> {
        let obj = json.as_object().filter(|o| o.len() == 1)?;
        Rules::from_number(obj.get("rules")?.as_u64()?)
    }

    /// The rules an event switches its store to: a `memory.rules` note with valid content.
    pub fn switched_by(body: &super::body::Body) -> Option<Rules> {
        match body {
            super::body::Body::Note(n) if n.note_type == RULES_NOTE => Rules::from_note(&n.json.to_value()),
            _ => None,
        }
    }

    /// A note's content naming these rules.
    pub fn note(self) -> serde_json::Value {
        serde_json::json!({ "rules": self.number() })
    }
}

/// The state of a memory store: files by path, and (rules 2) every directory below the
/// root; under rules 1 directories are implied by file paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryState {
    files: BTreeMap<String, File>,
    dirs: BTreeSet<String>,
    rules: Rules,
}

/// The directories strictly above `path` and below the root, nearest first.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut p = path;
    std::iter::from_fn(move || {
        let i = p.rfind('/')?;
        p = &p[..i];
        (p.len() > ROOT.len()).then_some(p)
    })
}

/// Lines of a text: split on `\n`, without the empty piece after a final newline.
fn lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let t = text.strip_suffix('\n').unwrap_or(text);
    t.split('\n').collect()
}

fn numbered(lines: &[&str], first: usize) -> String {
    lines.iter().enumerate().map(|(i, l)| format!("{:>6}\t{l}", first + i)).collect::<Vec<_>>().join("\n")
}

/// Sizes as `du -h` prints them: bytes below 1K, then one decimal below 10 of a unit.
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut v = bytes as f64;
    for unit in ["K", "M", "G", "T"] {
        v /= 1024.0;
        if v < 1024.0 || unit == "T" {
            return if v < 10.0 {
                format!("{:.1}{unit}", (v * 10.0).ceil() / 10.0)
            } else {
                format!("{}{unit}", v.ceil() as u64)
            };
        }
    }
    unreachable!("the loop returns at T")
}

fn is_under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> MemoryState {
        MemoryState::default()
    }

    /// Files by path, in path order.
    pub fn files(&self) -> &BTreeMap<String, File> {
        &self.files
    }

    /// The file at `path`.
    pub fn file(&self, path: &str) -> Option<&File> {
        self.files.get(path)
    }

    /// The rules this state follows.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// Switches the rules: to 2, every directory implied by a file becomes state; to 1,
    /// directories are implied again (empty ones vanish).
    pub fn set_rules(&mut self, rules: Rules) {
        if rules == self.rules {
            return;
        }
        self.rules = rules;
        self.dirs = match rules {
            Rules::V1 => BTreeSet::new(),
            Rules::V2 => self.files.keys().flat_map(|p| ancestors(p)).map(str::to_owned).collect(),
        };
    }

    /// This state under `rules` (see [`MemoryState::set_rules`]).
    pub fn with_rules(mut self, rules: Rules) -> MemoryState {
        self.set_rules(rules);
        self
    }

    /// Every directory below the root, in path order (under rules 1: those files imply).
    pub fn dirs(&self) -> BTreeSet<String> {
        match self.rules {
            Rules::V1 => self.files.keys().flat_map(|p| ancestors(p)).map(str::to_owned).collect(),
            Rules::V2 => self.dirs.clone(),
        }
    }

    /// Directories with nothing in them (only under rules 2), in path order.
    pub fn empty_dirs(&self) -> impl Iterator<Item = &String> {
        self.dirs.iter().filter(move |d| !self.has_children(d))
    }

    /// Whether anything (a file or a directory) lies below `dir`.
    pub fn has_children(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.files.range(prefix.clone()..).next().is_some_and(|(p, _)| p.starts_with(&prefix))
            || self.dirs.range(prefix.clone()..).next().is_some_and(|p| p.starts_with(&prefix))
    }

    /// Makes directory `path` and those above it (rules 2; a no-op under rules 1, where
    /// directories are implied).
    pub fn make_dir(&mut self, path: &str) {
        if self.rules == Rules::V2 && path != ROOT {
            self.dirs.insert(path.to_owned());
            self.add_ancestors(path);
        }
    }

    /// Removes directory `path` and everything below it.
    pub fn remove_dir(&mut self, path: &str) {
        let prefix = format!("{path}/");
        let files: Vec<String> = self
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect();
        for p in files {
            self.files.remove(&p);
        }
        let dirs: Vec<String> =
            self.dirs.range(prefix.clone()..).take_while(|p| p.starts_with(&prefix)).cloned().collect();
        for d in dirs {
            self.dirs.remove(&d);
        }
        self.dirs.remove(path);
    }

    fn add_ancestors(&mut self, path: &str) {
        if self.rules == Rules::V2 {
            for a in ancestors(path) {
                if !self.dirs.insert(a.to_owned()) {
                    break;
                }
            }
        }
    }

    /// Whether `path` is a directory: the root, a recorded directory (rules 2), or an
    /// ancestor of some file (rules 1).
    pub fn is_dir(&self, path: &str) -> bool {
        if path == ROOT {
            return true;
        }
        if self.rules == Rules::V2 {
            return self.dirs.contains(path);
        }
        let prefix = format!("{path}/");
        self.files.range(prefix.clone()..).next().is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    fn files_under(&self, dir: &str) -> impl Iterator<Item = (&String, &File)> {
        let prefix = format!("{dir}/");
        self.files.range(prefix.clone()..).take_while(move |(p, _)| p.starts_with(&prefix))
    }

    /// A rules-1 state of these files (directories implied).
    pub fn from_files(files: impl IntoIterator<Item = (String, String)>) -> MemoryState {
        MemoryState {
            files: files
                .into_iter()
                .map(|(p, t)| {
                    let f = File::new(&t);
                    (p, f)
                })
                .collect(),
            ..MemoryState::default()
        }
    }

    /// A state under `rules` of these files and (rules 2) directories; the directories
    /// above every file and directory are added.
    pub fn from_tree(
        rules: Rules,
        files: impl IntoIterator<Item = (String, String)>,
        dirs: impl IntoIterator<Item = String>,
    ) -> MemoryState {
        let mut s = MemoryState::from_files(files).with_rules(rules);
        for d in dirs {
            s.make_dir(&d);
        }
        s
    }

    /// Sets a file's text directly (promote and revert build commands from this).
    pub fn put(&mut self, path: &str, text: &str) {
        self.files.insert(path.to_owned(), File::new(text));
        self.add_ancestors(path);
    }

    /// State hash: a Merkle tree over the leaves `(path, content hash)` of the files and
    /// (rules 2) `(path)` of the empty directories, in path order (docs/reference/FORMAT.md §8).
    /// Equal trees have equal hashes; a state without empty directories hashes the same
    /// under either rules.
    pub fn state_hash(&self) -> Digest {
        let leaf = |tag: u8, p: &str, content: Option<&Digest>| {
            let mut h = blake3::Hasher::new();
            h.update(&[tag]);
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
            if let Some(c) = content {
                h.update(&c.0);
            }
            *h.finalize().as_bytes()
        };
        let mut leaves: Vec<(&str, [u8; 32])> =
            self.files.iter().map(|(p, f)| (p.as_str(), leaf(0x00, p, Some(&f.hash())))).collect();
        let empty: Vec<&String> = self.empty_dirs().collect();
        if !empty.is_empty() {
            leaves.extend(empty.into_iter().map(|p| (p.as_str(), leaf(0x02, p, None))));
            leaves.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        super::hash::merkle_root(leaves.into_iter().map(|(_, h)| h).collect())
    }

    /// The tool's `view` of a file or directory.
    pub fn view(&self, path: &str, view_range: Option<(i64, i64)>) -> Result<String, ToolError> {
        if self.rules == Rules::V2 {
            return self.view2(path, view_range);
        }
        let path = validate_path(path)?;
        if let Some(f) = self.files.get(&path) {
            let all = lines(&f.text);
            if all.len() > MAX_VIEW_LINES {
                return Err(err(
                    ToolErrorKind::TooLarge,
                    format!("File {path} exceeds maximum line limit of 999,999 lines."),
                ));
            }
            let (start, end) = match view_range {
                None => (1, all.len()),
                Some((s, e)) => {
                    let n = all.len() as i64;
                    let end = if e == -1 { n } else { e };
                    if s < 1 || s > n.max(1) || end < s || end > n {
                        return Err(err(
                            ToolErrorKind::Invalid,
                            format!(
                                "Error: Invalid `view_range` parameter: [{s}, {e}]. It should be within the range of lines of the file: [1, {n}]"
                            ),
                        ));
                    }
                    (s as usize, end as usize)
                }
            };
            let shown = if all.is_empty() { &all[..] } else { &all[start - 1..end] };
            return Ok(format!("Here's the content of {path} with line numbers:\n{}", numbered(shown, start)));
        }
        if !self.is_dir(&path) {
            return Err(err(
                ToolErrorKind::NotFound,
                format!("The path {path} does not exist. Please provide a valid path."),
            ));
        }
        // Up to two levels below `path`; directories are sized by the files in them.
        let depth0 = path.matches('/').count();
        let mut entries: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0u64;
        for (p, f) in self.files_under(&path) {
            let size = f.text.len() as u64;
            total += size;
            let rel: Vec<&str> = p[path.len() + 1..].split('/').collect();
            if rel.iter().any(|s| s.starts_with('.') || *s == "node_modules") {
                continue;
            }
            for level in 1..=rel.len().min(2) {
                let entry = format!("{path}/{}", rel[..level].join("/"));
                *entries.entry(entry).or_default() += size;
            }
        }
        let _ = depth0;
        let mut out = format!(
            "Here're the files and directories up to 2 levels deep in {path}, excluding hidden items and node_modules:\n{}\t{path}",
            human_size(total)
        );
        for (p, size) in entries {
            out.push_str(&format!("\n{}\t{p}", human_size(size)));
        }
        Ok(out)
    }

    /// Checks a command against this state without changing it; returns the tool's
    /// success text. `precondition` is the expected content hash of the command's file.
    pub fn check(&self, cmd: &MemoryCommand, precondition: Option<&Digest>) -> Result<String, ToolError> {
        self.clone().apply(cmd, precondition)
    }

    /// Applies a command: on success the state changes and the tool's success text is
    /// returned; on failure nothing changes.
    pub fn apply(&mut self, cmd: &MemoryCommand, precondition: Option<&Digest>) -> Result<String, ToolError> {
        self.apply_mode(cmd, precondition, true)
    }

    /// Applies a recorded command during a fold: same effect as [`MemoryState::apply`]
    /// without building the result text. Returns whether it applied.
    pub fn replay(&mut self, cmd: &MemoryCommand) -> bool {
        self.apply_mode(cmd, None, false).is_ok()
    }

    fn apply_mode(
        &mut self,
        cmd: &MemoryCommand,
        precondition: Option<&Digest>,
        snippet: bool,
    ) -> Result<String, ToolError> {
        if self.rules == Rules::V2 {
            return self.apply2(cmd, precondition, snippet);
        }
        let target = match cmd {
            MemoryCommand::Create { path, .. }
            | MemoryCommand::StrReplace { path, .. }
            | MemoryCommand::Insert { path, .. }
            | MemoryCommand::Delete { path } => check_path(path)?,
            MemoryCommand::Rename { old_path, .. } => check_path(old_path)?,
            MemoryCommand::Mkdir { path } => check_path(path)?,
            MemoryCommand::Write { path, .. } => check_path(path)?,
        };
        if let Some(expected) = precondition {
            let actual = self.files.get(target).map(|f| f.hash());
            if actual.as_ref() != Some(expected) {
                return Err(err(
                    ToolErrorKind::Conflict,
                    format!(
                        "Error: Conflict: {target} {}, not the expected content hash {expected}",
                        actual.map(|a| format!("has content hash {a}")).unwrap_or_else(|| "does not exist".into())
                    ),
                ));
            }
        }
        match cmd {
            MemoryCommand::Create { file_text, .. } => self.create(target, file_text),
            MemoryCommand::StrReplace { old_str, new_str, .. } => self.str_replace(target, old_str, new_str, snippet),
            MemoryCommand::Insert { insert_line, insert_text, .. } => self.insert(target, *insert_line, insert_text),
            MemoryCommand::Delete { .. } => self.delete(target),
            MemoryCommand::Rename { new_path, .. } => {
                let new_path = check_path(new_path)?;
                self.rename(target, new_path)
            }
            MemoryCommand::Write { file_text, .. } => self.write(target, file_text),
            MemoryCommand::Mkdir { .. } => Err(err(
                ToolErrorKind::Invalid,
                format!("Error: mkdir {target}: this store follows memory rules 1, where directories exist only through the files in them; switch it to rules 2 first"),
            )),
        }
    }

    fn precondition_holds(&self, target: &str, precondition: Option<&Digest>) -> Result<(), String> {
        let Some(expected) = precondition else { return Ok(()) };
        let actual = self.files.get(target).map(|f| f.hash());
        if actual.as_ref() == Some(expected) {
            return Ok(());
        }
        Err(format!(
            "Conflict: {target} {}, not the expected content hash {expected}",
            actual.map(|a| format!("has content hash {a}")).unwrap_or_else(|| "does not exist".into())
        ))
    }

    pub(super) fn check_size(path: &str, len: usize) -> Result<(), ToolError> {
        if len > MAX_FILE_BYTES {
            return Err(err(
                ToolErrorKind::TooLarge,
                format!("Error: File {path} would be {len} bytes, over the limit of {MAX_FILE_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// The nearest ancestor of `path` (below the root) that is a file, if any.
    fn file_ancestor(&self, path: &str) -> Option<String> {
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if p.len() <= ROOT.len() {
                return None;
            }
            if self.files.contains_key(p) {
                return Some(p.to_owned());
            }
        }
        None
    }

    fn create(&mut self, path: &str, text: &str) -> Result<String, ToolError> {
        if self.files.contains_key(path) || self.is_dir(path) {
            return Err(err(ToolErrorKind::AlreadyExists, format!("Error: File {path} already exists")));
        }
        if let Some(file) = self.file_ancestor(path) {
            return Err(err(ToolErrorKind::Invalid, format!("Error: Cannot create {path}: {file} is a file")));
        }
        Self::check_size(path, text.len())?;
        self.files.insert(path.to_owned(), File::new(text));
        Ok(format!("File created successfully at: {path}"))
    }

    /// `write` under rules 1: a file's whole text, created or replaced.
    fn write(&mut self, path: &str, text: &str) -> Result<String, ToolError> {
        if path == ROOT || (self.is_dir(path) && !self.files.contains_key(path)) {
            return Err(err(ToolErrorKind::Invalid, format!("Error: Cannot write {path}: it is a directory")));
        }
        if let Some(file) = self.file_ancestor(path) {
            return Err(err(ToolErrorKind::Invalid, format!("Error: Cannot write {path}: {file} is a file")));
        }
        Self::check_size(path, text.len())?;
        let verb = if self.files.contains_key(path) { "written" } else { "created" };
        self.files.insert(path.to_owned(), File::new(text));
        Ok(format!("File {verb} successfully at: {path}"))
    }

    fn str_replace(&mut self, path: &str, old: &str, new: &str, snippet: bool) -> Result<String, ToolError> {
        let Some(f) = self.files.get(path) else {
            return Err(err(
                ToolErrorKind::NotFound,
                format!("Error: The path {path} does not exist. Please provide a valid path."),
            ));
        };
        let text = f.text.clone();
        let starts: Vec<usize> =
            if old.is_empty() { Vec::new() } else { text.match_indices(old).map(|(i, _)| i).collect() };
        match starts.len() {
            0 => {
                return Err(err(
                    ToolErrorKind::Invalid,
                    format!("No replacement was performed, old_str `{old}` did not appear verbatim in {path}."),
                ))
            }
            1 => {}
            _ => {
                let line_numbers: Vec<String> =
                    starts.iter().map(|i| (text[..*i].matches('\n').count() + 1).to_string()).collect();
                return Err(err(
                    ToolErrorKind::Invalid,
                    format!(
                        "No replacement was performed. Multiple occurrences of old_str `{old}` in lines: [{}]. Please ensure it is unique",
                        line_numbers.join(", ")
                    ),
                ));
            }
        }
        let at = starts[0];
        let mut updated = String::with_capacity(text.len() + new.len() - old.len().min(text.len() + new.len()));
        updated.push_str(&text[..at]);
        updated.push_str(new);
        updated.push_str(&text[at + old.len()..]);
        Self::check_size(path, updated.len())?;
        if !snippet {
            if let Some(f) = self.files.get_mut(path) {
                *f = File::new(&updated);
            }
            return Ok(String::new());
        }
        // A snippet of the edited region with four lines of context either side.
        let first_line = text[..at].matches('\n').count();
        let last_line = first_line + new.matches('\n').count();
        let all = lines(&updated);
        let from = first_line.saturating_sub(4);
        let to = (last_line + 5).min(all.len());
        let snippet = if from < to { numbered(&all[from..to], from + 1) } else { String::new() };
        self.files.insert(path.to_owned(), File::new(&updated));
        Ok(format!("The memory file has been edited.\n{snippet}"))
    }

    fn insert(&mut self, path: &str, line: u64, insert_text: &str) -> Result<String, ToolError> {
        let Some(f) = self.files.get(path) else {
            return Err(err(ToolErrorKind::NotFound, format!("Error: The path {path} does not exist")));
        };
        let text = f.text.clone();
        let mut all: Vec<&str> = lines(&text);
        let n = all.len() as u64;
        if line > n {
            return Err(err(
                ToolErrorKind::Invalid,
                format!(
                    "Error: Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: [0, {n}]"
                ),
            ));
        }
        let new_lines = if insert_text.is_empty() { vec![""] } else { lines(insert_text) };
        let at = line as usize;
        all.splice(at..at, new_lines);
        let mut updated = all.join("\n");
        if text.ends_with('\n') || text.is_empty() {
            updated.push('\n');
        }
        Self::check_size(path, updated.len())?;
        self.files.insert(path.to_owned(), File::new(&updated));
        Ok(format!("The file {path} has been edited."))
    }

    fn delete(&mut self, path: &str) -> Result<String, ToolError> {
        if path == ROOT {
            return Err(err(ToolErrorKind::Invalid, format!("Error: Cannot delete the memory root {ROOT}")));
        }
        if self.files.remove(path).is_none() {
            let under: Vec<String> = self.files_under(path).map(|(p, _)| p.clone()).collect();
            if under.is_empty() {
                return Err(err(ToolErrorKind::NotFound, format!("Error: The path {path} does not exist")));
            }
            for p in under {
                self.files.remove(&p);
            }
        }
        Ok(format!("Successfully deleted {path}"))
    }

    fn rename(&mut self, old: &str, new: &str) -> Result<String, ToolError> {
        let is_file = self.files.contains_key(old);
        if old == ROOT || (!is_file && !self.is_dir(old)) {
            return Err(err(ToolErrorKind::NotFound, format!("Error: The path {old} does not exist")));
        }
        if self.files.contains_key(new) || self.is_dir(new) {
            return Err(err(ToolErrorKind::AlreadyExists, format!("Error: The destination {new} already exists")));
        }
        if is_under(new, old) {
            return Err(err(ToolErrorKind::Invalid, format!("Error: Cannot move {old} into itself ({new})")));
        }
        if let Some(file) = self.file_ancestor(new) {
            return Err(err(ToolErrorKind::Invalid, format!("Error: Cannot rename to {new}: {file} is a file")));
        }
        if is_file {
            if let Some(f) = self.files.remove(old) {
                self.files.insert(new.to_owned(), f);
            }
        } else {
            let moved: Vec<(String, File)> =
                self.files_under(old).map(|(p, f)| (format!("{new}{}", &p[old.len()..]), f.clone())).collect();
            let gone: Vec<String> = self.files_under(old).map(|(p, _)| p.clone()).collect();
            for p in gone {
                self.files.remove(&p);
            }
            self.files.extend(moved);
        }
        Ok(format!("Successfully renamed {old} to {new}"))
    }
}

/// How two memory states differ.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemoryDiff {
    /// Files only in the second state.
    pub added: Vec<String>,
    /// Files only in the first state.
    pub removed: Vec<String>,
    /// Files moved with their content unchanged: (from, to).
    pub renamed: Vec<(String, String)>,
    /// Files in both with different content.
    pub changed: Vec<ChangedFile>,
    /// Directories only in the second state (when either follows memory rules 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs_added: Vec<String>,
    /// Directories only in the first state (when either follows memory rules 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs_removed: Vec<String>,
}

/// One changed file of a [`MemoryDiff`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangedFile {
    /// Path.
    pub path: String,
    /// Lines added.
    pub insertions: usize,
    /// Lines removed.
    pub deletions: usize,
    /// Unified diff (3 lines of context).
    pub unified: String,
}

impl MemoryDiff {
    /// True when the states are equal.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.renamed.is_empty()
            && self.changed.is_empty()
            && self.dirs_added.is_empty()
            && self.dirs_removed.is_empty()
    }
}

/// Compares two states: added, removed, renamed (same content under a new path) and
/// changed files with unified diffs.
pub fn diff_states(a: &MemoryState, b: &MemoryState) -> MemoryDiff {
    let mut d = MemoryDiff::default();
    let mut removed: Vec<(&String, &File)> = Vec::new();
    for (p, f) in &a.files {
        match b.files.get(p) {
            None => removed.push((p, f)),
            Some(g) if g.text != f.text => {
                let td = similar::TextDiff::from_lines(f.text.as_ref(), g.text.as_ref());
                let (mut ins, mut del) = (0, 0);
                for op in td.ops() {
                    for change in td.iter_changes(op) {
                        match change.tag() {
                            similar::ChangeTag::Insert => ins += 1,
                            similar::ChangeTag::Delete => del += 1,
                            similar::ChangeTag::Equal => {}
                        }
                    }
                }
                let unified =
                    td.unified_diff().context_radius(3).header(&format!("a{p}"), &format!("b{p}")).to_string();
                d.changed.push(ChangedFile { path: p.clone(), insertions: ins, deletions: del, unified });
            }
            Some(_) => {}
        }
    }
    let mut added: Vec<(&String, &File)> = b.files.iter().filter(|(p, _)| !a.files.contains_key(*p)).collect();
    // A removed file whose exact content reappears under an added path is a rename.
    removed.retain(|(rp, rf)| {
        if let Some(i) = added.iter().position(|(_, af)| af.text == rf.text) {
            let (ap, _) = added.remove(i);
            d.renamed.push(((*rp).clone(), ap.clone()));
            false
        } else {
            true
        }
    });
    d.removed = removed.into_iter().map(|(p, _)| p.clone()).collect();
    d.added = added.into_iter().map(|(p, _)| p.clone()).collect();
    if a.rules == Rules::V2 || b.rules == Rules::V2 {
        let (da, db) = (a.dirs(), b.dirs());
        d.dirs_added = db.difference(&da).cloned().collect();
        d.dirs_removed = da.difference(&db).cloned().collect();
    }
    d
}

/// Commands that turn `current` into `target` (for the given paths only, when given):
/// a missing file is created, an extra one deleted, a different one replaced whole; when
/// `current` follows memory rules 2, an extra directory is deleted (before the files,
/// with everything in it) and a missing one made (after them, where no created file made
/// it).
pub fn restore_commands(
    current: &MemoryState,
    target: &MemoryState,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Vec<MemoryCommand> {
    let wanted = |p: &String| only.is_none_or(|o| o.contains(p));
    let mut cmds = Vec::new();
    let mut gone: Vec<&String> = Vec::new();
    let target_dirs = target.dirs();
    if current.rules == Rules::V2 {
        for d in current.dirs.iter().filter(|d| wanted(d) && !target_dirs.contains(*d)) {
            if !gone.iter().any(|g| is_under(d, g)) {
                cmds.push(MemoryCommand::Delete { path: d.clone() });
                gone.push(d);
            }
        }
    }
    let mut paths: std::collections::BTreeSet<&String> = current.files.keys().chain(target.files.keys()).collect();
    paths.retain(|p| wanted(p) && !(current.files.contains_key(*p) && gone.iter().any(|g| is_under(p, g))));
    for p in paths {
        match (current.files.get(p), target.files.get(p)) {
            (Some(c), Some(t)) if c.text == t.text => {}
            // Replacing the whole text keeps blame of the unchanged lines (blame diffs
            // the before and after of every edit); an empty file cannot be matched.
            (Some(c), Some(t)) if !c.text.is_empty() => cmds.push(MemoryCommand::StrReplace {
                path: p.clone(),
                old_str: c.text.to_string(),
                new_str: t.text.to_string(),
            }),
            (Some(_), Some(t)) => {
                cmds.push(MemoryCommand::Delete { path: p.clone() });
                cmds.push(MemoryCommand::Create { path: p.clone(), file_text: t.text.to_string() });
            }
            (Some(_), None) => cmds.push(MemoryCommand::Delete { path: p.clone() }),
            (None, Some(t)) => cmds.push(MemoryCommand::Create { path: p.clone(), file_text: t.text.to_string() }),
            (None, None) => {}
        }
    }
    if current.rules == Rules::V2 {
        let mut after = current.clone();
        for c in &cmds {
            after.replay(c);
        }
        // Deepest first: making a directory makes those above it.
        for d in target_dirs.iter().rev().filter(|d| wanted(d)) {
            if !after.is_dir(d) {
                let mkdir = MemoryCommand::Mkdir { path: d.clone() };
                after.replay(&mkdir);
                cmds.push(mkdir);
            }
        }
    }
    cmds
}

/// The commands that turn `current` into `target` when a folder of memory files was
/// changed by some program: a file that disappeared while one with the same text
/// appeared is a rename (preferring the same file name, so a directory's rename is its
/// files' renames), then whole-text replacements, deletes and creates as
/// [`restore_commands`] makes them. Applied in order to `current`, they give `target`.
pub fn sync_commands(current: &MemoryState, target: &MemoryState) -> Vec<MemoryCommand> {
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    let mut added: BTreeMap<Digest, Vec<&String>> = BTreeMap::new();
    for (p, f) in &target.files {
        if !current.files.contains_key(p) {
            added.entry(f.hash()).or_default().push(p);
        }
    }
    let mut cmds = Vec::new();
    let mut moved = current.clone();
    for (p, f) in &current.files {
        if target.files.contains_key(p) {
            continue;
        }
        let Some(candidates) = added.get_mut(&f.hash()) else { continue };
        let Some(i) =
            candidates.iter().position(|a| name(a) == name(p)).or(if candidates.is_empty() { None } else { Some(0) })
        else {
            continue;
        };
        let new_path = candidates.remove(i).clone();
        let cmd = MemoryCommand::Rename { old_path: p.clone(), new_path };
        if moved.replay(&cmd) {
            cmds.push(cmd);
        }
    }
    cmds.extend(restore_commands(&moved, target, None));
    cmds
}

impl MemoryState {
    /// Snapshot bytes: the store version folded, then (path, text) pairs in path order,
    /// in the v1 encoding; a rules-2 state adds its directories in path order and the
    /// rules' number (docs/reference/FORMAT.md §8), so rules-1 snapshots keep their bytes.
    pub fn encode_snapshot(&self, version: u64) -> Vec<u8> {
        let files: Vec<(String, String)> = self.files.iter().map(|(p, f)| (p.clone(), f.text.to_string())).collect();
        match self.rules {
            Rules::V1 => super::wire::encode(&(version, files)),
            Rules::V2 => {
                let dirs: Vec<String> = self.dirs.iter().cloned().collect();
                super::wire::encode(&(version, files, dirs, self.rules.number()))
            }
        }
    }

    /// Decodes [`MemoryState::encode_snapshot`] bytes into (version, state).
    pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, MemoryState), super::FormatError> {
        type V2 = (u64, Vec<(String, String)>, Vec<String>, u64);
        if let Ok((version, files)) =
            super::wire::decode_exact::<(u64, Vec<(String, String)>)>(bytes, "memory snapshot")
        {
            return Ok((version, MemoryState::from_files(files)));
        }
        let (version, files, dirs, rules): V2 = super::wire::decode_exact(bytes, "memory snapshot")?;
        let rules = Rules::from_number(rules).ok_or_else(|| super::FormatError::Decode {
            what: "memory snapshot".into(),
            reason: format!("rules {rules} are not ones this build has"),
        })?;
        Ok((version, MemoryState::from_tree(rules, files, dirs)))
    }
}

impl MemoryState {
    /// Removes a file directly (revert builds target states with this); directories
    /// stay.
    pub fn remove(&mut self, path: &str) {
        self.files.remove(path);
    }
}

/// Three-way line merge: applies both the change `base → ours` and the change
/// `base → theirs`, or returns `None` when they touch the same or adjacent lines.
pub fn merge3(base: &str, ours: &str, theirs: &str) -> Option<String> {
    struct Change<'a> {
        start: usize,
        end: usize,
        lines: Vec<&'a str>,
    }
    fn changes<'a>(b: &[&str], other: &[&'a str]) -> Vec<Change<'a>> {
        let mut out = Vec::new();
        for op in similar::capture_diff_slices(similar::Algorithm::Myers, b, other) {
            let (old_index, old_len, new_index, new_len) = match op {
                similar::DiffOp::Equal { .. } => continue,
                similar::DiffOp::Delete { old_index, old_len, new_index } => (old_index, old_len, new_index, 0),
                similar::DiffOp::Insert { old_index, new_index, new_len } => (old_index, 0, new_index, new_len),
                similar::DiffOp::Replace { old_index, old_len, new_index, new_len } => {
                    (old_index, old_len, new_index, new_len)
                }
            };
            out.push(Change {
                start: old_index,
                end: old_index + old_len,
                lines: other[new_index..new_index + new_len].to_vec(),
            });
        }
        out
    }
    let (b, o, t) = (lines(base), lines(ours), lines(theirs));
    let mut all = changes(&b, &o);
    let mut theirs_changes = changes(&b, &t);
    // The same change made on both sides is made once (an undo that someone, or an
    // earlier part of the same undo, already made).
    theirs_changes.retain(|ct| !all.iter().any(|co| (co.start, co.end, &co.lines) == (ct.start, ct.end, &ct.lines)));
    for ct in &theirs_changes {
        // Closed intervals: touching changes conflict too.
        if all.iter().any(|co| co.start <= ct.end && ct.start <= co.end) {
            return None;
        }
    }
    all.extend(theirs_changes);
    all.sort_by_key(|c| (c.start, c.end));
    let mut merged: Vec<&str> = Vec::new();
    let mut at = 0;
    for c in &all {
        merged.extend_from_slice(&b[at..c.start]);
        merged.extend_from_slice(&c.lines);
        at = c.end;
    }
    merged.extend_from_slice(&b[at..]);
    let mut text = merged.join("\n");
    if !merged.is_empty() && (ours.ends_with('\n') || ours.is_empty()) {
        text.push('\n');
    }
    Some(text)
}

/// A memory tool call's input, parsed: a read or a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolCall {
    /// `view {path, view_range?}`.
    View {
        /// Path (default `/memories`).
        path: String,
        /// Line range, 1-based inclusive (`-1` as the end: to the last line).
        range: Option<(i64, i64)>,
    },
    /// Any command that changes the store.
    Change(MemoryCommand),
}

impl ToolCall {
    /// Parses a tool call's `input` object; the error names what is wrong.
    pub fn parse(value: &serde_json::Value) -> Result<ToolCall, String> {
        use serde_json::Value;
        if value.get("command").and_then(Value::as_str) == Some("mkdir") {
            return Err("invalid memory tool input: `mkdir` is not a memory tool command (dreamlog writes it in batches and reverts)".into());
        }
        if value.get("command").and_then(Value::as_str) == Some("view") {
            let path = value.get("path").and_then(Value::as_str).unwrap_or(ROOT).to_owned();
            let range = match value.get("view_range") {
                None | Some(Value::Null) => None,
                Some(r) => {
                    let pair =
                        r.as_array().filter(|a| a.len() == 2).and_then(|a| Some((a[0].as_i64()?, a[1].as_i64()?)));
                    Some(pair.ok_or_else(|| format!("view_range must be two integers, got {r}"))?)
                }
            };
            return Ok(ToolCall::View { path, range });
        }
        serde_json::from_value(value.clone())
            .map(ToolCall::Change)
            .map_err(|e| format!("invalid memory tool input: {e}"))
    }

    /// Runs the call against `state` (changes applied), returning the tool's text.
    pub fn run(&self, state: &mut MemoryState) -> Result<String, ToolError> {
        match self {
            ToolCall::View { path, range } => state.view(path, *range),
            ToolCall::Change(c) => state.apply(c, None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod sync_tests {
    use super::*;

    #[test]
    fn a_change_made_on_both_sides_merges_once_and_overlapping_ones_conflict() {
        // An undo of "S" already made (and "B" added since): nothing more to do.
        assert_eq!(merge3("S\nA\n", "A\nB\n", "A\n").as_deref(), Some("A\nB\n"));
        // Both sides change line 1 differently: a conflict.
        assert_eq!(merge3("S\nA\n", "X\nA\n", "Y\nA\n"), None);
        // Separate changes both land.
        assert_eq!(merge3("a\nb\nc\nd\n", "A\nb\nc\nd\n", "a\nb\nc\nD\n").as_deref(), Some("A\nb\nc\nD\n"));
    }

    fn state(files: &[(&str, &str)]) -> MemoryState {
        MemoryState::from_files(files.iter().map(|(p, t)| ((*p).to_owned(), (*t).to_owned())))
    }

    fn applied(current: &MemoryState, cmds: &[MemoryCommand]) -> MemoryState {
        let mut s = current.clone();
        for c in cmds {
            s.apply(c, None).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        }
        s
    }

    #[test]
    fn a_moved_directory_is_its_files_renamed_and_edits_are_replacements() {
        let before = state(&[
            ("/memories/a/x.md", "x\n"),
            ("/memories/a/y.md", "y\n"),
            ("/memories/notes.md", "one\n"),
            ("/memories/old.md", "gone\n"),
        ]);
        let after = state(&[
            ("/memories/b/x.md", "x\n"),
            ("/memories/b/y.md", "y\n"),
            ("/memories/notes.md", "one\ntwo\n"),
            ("/memories/new.md", "new\n"),
        ]);
        let cmds = sync_commands(&before, &after);
        assert_eq!(applied(&before, &cmds), after);
        let renames: Vec<_> = cmds.iter().filter(|c| matches!(c, MemoryCommand::Rename { .. })).collect();
        assert_eq!(renames.len(), 2, "{cmds:?}");
        assert!(cmds.contains(&MemoryCommand::Rename {
            old_path: "/memories/a/x.md".into(),
            new_path: "/memories/b/x.md".into()
        }));
        assert_eq!(cmds.len(), 5, "two renames, a replacement, a delete, a create: {cmds:?}");
        assert!(sync_commands(&after, &after).is_empty());
    }

    #[test]
    fn random_folders_sync_exactly() {
        let mut rng = super::super::stats::SplitMix64::new(7);
        let names = ["/memories/a.md", "/memories/b.md", "/memories/d/c.md", "/memories/d/e/f.md", "/memories/g.md"];
        let texts = ["", "x\n", "y\n", "x\ny\n"];
        let random = |rng: &mut super::super::stats::SplitMix64| {
            let mut files: Vec<(&str, &str)> = Vec::new();
            for n in names {
                if rng.below(2) == 0 {
                    files.push((n, texts[rng.below(texts.len())]));
                }
            }
            state(&files)
        };
        for _ in 0..2000 {
            let (a, b) = (random(&mut rng), random(&mut rng));
            assert_eq!(applied(&a, &sync_commands(&a, &b)), b, "{a:?} → {b:?}");
        }
    }
}
