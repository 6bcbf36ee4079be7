//! Memory rules 2: the semantics and texts of the Anthropic SDK's reference backend
//! (`BetaLocalFilesystemMemoryTool`, `anthropic` 2.14), with directories as state.
//!
//! Where the reference is looser than the tool's contract, dreamlog refuses, in the
//! reference's wording where it has one: paths outside `/memories` (the reference also
//! takes `/memoriesX` and resolves `a/../b`), a file below a file and moving a directory
//! into itself (the reference lets the operating system's error through, host paths
//! and all), a `view_range` end below −1 (Python's negative slice), files over 1 MiB. A
//! refused command changes nothing (the reference makes the destination's parent
//! directories before it finds that a `rename` has no source). Texts name the path as
//! normalised (one trailing `/` removed). Error texts carry no `Error: ` prefix.

use super::{ancestors, err, File, MemoryState, ToolError, ToolErrorKind, MAX_VIEW_LINES, ROOT};
use crate::body::MemoryCommand;
use crate::hash::Digest;

/// Width of line numbers (the reference right-aligns them to `len("999999")`).
const WIDTH: usize = 6;

/// A path check with the rules-2 wording.
fn path(p: &str) -> Result<&str, ToolError> {
    super::check_path(p).map_err(|e| {
        if p.starts_with(ROOT) {
            unprefixed(e)
        } else {
            err(e.kind, format!("Path must start with /memories, got: {p}"))
        }
    })
}

/// A rules-1 text of dreamlog's own, without its `Error: ` prefix.
fn unprefixed(e: ToolError) -> ToolError {
    let message = e.message.strip_prefix("Error: ").unwrap_or(&e.message).to_owned();
    ToolError { kind: e.kind, message }
}

/// A size as the reference prints it: `0B`, `20B`, `1.5K`, `4K`, `1M`.
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0B".into();
    }
    let units = ["B", "K", "M", "G"];
    let i = (((63 - bytes.leading_zeros()) / 10) as usize).min(units.len() - 1);
    let size = bytes as f64 / 1024f64.powi(i as i32);
    if size == size.trunc() {
        format!("{}{}", size as u64, units[i])
    } else {
        format!("{size:.1}{}", units[i])
    }
}

fn numbered<'a>(lines: impl Iterator<Item = &'a str>, first: usize) -> String {
    lines.enumerate().map(|(i, l)| format!("{:>WIDTH$}\t{l}", first + i)).collect::<Vec<_>>().join("\n")
}

/// Lines as the reference's `insert` splits them: on `\n`, without the empty piece a
/// final newline leaves.
fn lines_without_tail(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
}

/// The directory `p` is in.
fn parent(p: &str) -> &str {
    p.rfind('/').map_or(ROOT, |i| &p[..i])
}

fn too_large(path: &str, len: usize) -> Result<(), ToolError> {
    MemoryState::check_size(path, len).map_err(unprefixed)
}

impl MemoryState {
    /// The entries directly in directory `dir`: (name, is a directory).
    fn children(&self, dir: &str) -> Vec<(&str, bool)> {
        let prefix = format!("{dir}/");
        let direct = |p: &str| !p[prefix.len()..].contains('/');
        let mut out: Vec<(&str, bool)> = self
            .dirs
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .filter(|p| direct(p))
            .map(|p| (&p[prefix.len()..], true))
            .collect();
        out.extend(
            self.files
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .filter(|(p, _)| direct(p))
                .map(|(p, _)| (&p[prefix.len()..], false)),
        );
        out.sort_unstable();
        out
    }

    /// A directory's size in listings: the bytes of every file below it (the reference
    /// shows the file system's size of the directory entry, which means nothing here).
    fn dir_size(&self, dir: &str) -> u64 {
        self.files_under(dir).map(|(_, f)| f.text.len() as u64).sum()
    }

    pub(super) fn view2(&self, raw: &str, range: Option<(i64, i64)>) -> Result<String, ToolError> {
        let p = path(raw)?;
        if let Some(f) = self.files.get(p) {
            let all: Vec<&str> = f.text.split('\n').collect();
            if all.len() > MAX_VIEW_LINES {
                return Err(err(
                    ToolErrorKind::TooLarge,
                    format!("File {p} exceeds maximum line limit of 999,999 lines."),
                ));
            }
            let (start, end) = match range {
                None => (0, all.len()),
                Some((s, e)) if e < -1 => {
                    return Err(err(
                        ToolErrorKind::Invalid,
                        format!("Invalid `view_range` parameter: [{s}, {e}]. Its end must be -1 (the last line) or a line number."),
                    ))
                }
                Some((s, e)) => {
                    let start = (s.max(1) - 1) as usize;
                    let end = if e == -1 { all.len() } else { (e as usize).min(all.len()) };
                    (start, end)
                }
            };
            let shown = if start < end { &all[start..end] } else { &all[..0] };
            return Ok(format!(
                "Here's the content of {p} with line numbers:\n{}",
                numbered(shown.iter().copied(), start + 1)
            ));
        }
        if !self.is_dir(p) {
            return Err(err(
                ToolErrorKind::NotFound,
                format!("The path {p} does not exist. Please provide a valid path."),
            ));
        }
        let mut lines = vec![format!("{}\t{p}", format_size(self.dir_size(p)))];
        self.list(p, 1, &mut lines);
        Ok(format!(
            "Here're the files and directories up to 2 levels deep in {p}, excluding hidden items:\n{}",
            lines.join("\n")
        ))
    }

    /// Pre-order listing of `dir` to depth 2, names sorted per level,
    /// hidden entries (`.name`) left out with everything below them.
    fn list(&self, dir: &str, depth: usize, out: &mut Vec<String>) {
        for (name, is_dir) in self.children(dir) {
            if name.starts_with('.') {
                continue;
            }
            let full = format!("{dir}/{name}");
            if is_dir {
                out.push(format!("{}\t{full}/", format_size(self.dir_size(&full))));
                if depth < 2 {
                    self.list(&full, depth + 1, out);
                }
            } else {
                let size = self.files.get(&full).map_or(0, |f| f.text.len() as u64);
                out.push(format!("{}\t{full}", format_size(size)));
            }
        }
    }

    pub(super) fn apply2(
        &mut self,
        cmd: &MemoryCommand,
        precondition: Option<&Digest>,
        snippet: bool,
    ) -> Result<String, ToolError> {
        let target = match cmd {
            MemoryCommand::Create { path: p, .. }
            | MemoryCommand::StrReplace { path: p, .. }
            | MemoryCommand::Insert { path: p, .. }
            | MemoryCommand::Delete { path: p }
            | MemoryCommand::Mkdir { path: p }
            | MemoryCommand::Write { path: p, .. } => path(p)?,
            MemoryCommand::Rename { old_path, .. } => path(old_path)?,
        };
        self.precondition_holds(target, precondition).map_err(|m| err(ToolErrorKind::Conflict, m))?;
        match cmd {
            MemoryCommand::Create { file_text, .. } => self.create2(target, file_text),
            MemoryCommand::StrReplace { old_str, new_str, .. } => self.str_replace2(target, old_str, new_str, snippet),
            MemoryCommand::Insert { insert_line, insert_text, .. } => self.insert2(target, *insert_line, insert_text),
            MemoryCommand::Delete { .. } => self.delete2(target),
            MemoryCommand::Rename { new_path, .. } => {
                let new = path(new_path)?;
                self.rename2(target, new)
            }
            MemoryCommand::Mkdir { .. } => self.mkdir2(target),
            MemoryCommand::Write { file_text, .. } => self.write2(target, file_text),
        }
    }

    /// The nearest directory above `p` that is a file, if any.
    fn file_above<'a>(&self, p: &'a str) -> Option<&'a str> {
        ancestors(p).find(|a| self.files.contains_key(*a))
    }

    fn create2(&mut self, p: &str, text: &str) -> Result<String, ToolError> {
        if p == ROOT || self.files.contains_key(p) || self.dirs.contains(p) {
            return Err(err(ToolErrorKind::AlreadyExists, format!("File {p} already exists")));
        }
        if let Some(file) = self.file_above(p) {
            return Err(err(ToolErrorKind::Invalid, format!("Cannot create {p}: {file} is a file")));
        }
        too_large(p, text.len())?;
        self.put(p, text);
        Ok(format!("File created successfully at: {p}"))
    }

    /// `write` under rules 2: a file's whole text, created (with the directories above
    /// it) or replaced; never over a directory or below a file.
    fn write2(&mut self, p: &str, text: &str) -> Result<String, ToolError> {
        if p == ROOT || self.dirs.contains(p) {
            return Err(err(ToolErrorKind::Invalid, format!("Cannot write {p}: it is a directory")));
        }
        if let Some(file) = self.file_above(p) {
            return Err(err(ToolErrorKind::Invalid, format!("Cannot write {p}: {file} is a file")));
        }
        too_large(p, text.len())?;
        let verb = if self.files.contains_key(p) { "written" } else { "created" };
        self.put(p, text);
        Ok(format!("File {verb} successfully at: {p}"))
    }

    fn mkdir2(&mut self, p: &str) -> Result<String, ToolError> {
        if p == ROOT || self.dirs.contains(p) {
            return Err(err(ToolErrorKind::AlreadyExists, format!("The directory {p} already exists")));
        }
        if self.files.contains_key(p) {
            return Err(err(ToolErrorKind::AlreadyExists, format!("File {p} already exists")));
        }
        if let Some(file) = self.file_above(p) {
            return Err(err(ToolErrorKind::Invalid, format!("Cannot create {p}: {file} is a file")));
        }
        self.make_dir(p);
        Ok(format!("Directory created successfully at: {p}"))
    }

    /// The file at `p` for an edit, or the reference's refusal.
    fn editable(&self, p: &str) -> Result<std::sync::Arc<str>, ToolError> {
        match self.files.get(p) {
            Some(f) => Ok(f.text.clone()),
            None if self.is_dir(p) => Err(err(ToolErrorKind::Invalid, format!("The path {p} is not a file."))),
            None => {
                Err(err(ToolErrorKind::NotFound, format!("The path {p} does not exist. Please provide a valid path.")))
            }
        }
    }

    fn str_replace2(&mut self, p: &str, old: &str, new: &str, snippet: bool) -> Result<String, ToolError> {
        let text = self.editable(p)?;
        // Python's `str.count`: non-overlapping; the empty string occurs before every
        // character and at the end.
        let count = if old.is_empty() { text.chars().count() + 1 } else { text.matches(old).count() };
        if count == 0 {
            return Err(err(
                ToolErrorKind::Invalid,
                format!("No replacement was performed, old_str `{old}` did not appear verbatim in {p}."),
            ));
        }
        if count > 1 {
            // The reference lists every start, overlapping ones too (it searches again
            // one character after each).
            let mut lines = Vec::new();
            let mut from = 0;
            while let Some(i) = text[from..].find(old).map(|i| from + i) {
                lines.push((text[..i].matches('\n').count() + 1).to_string());
                match text[i..].chars().next() {
                    Some(c) => from = i + c.len_utf8(),
                    None => break,
                }
            }
            return Err(err(
                ToolErrorKind::Invalid,
                format!(
                    "No replacement was performed. Multiple occurrences of old_str `{old}` in lines: {}. Please ensure it is unique",
                    lines.join(", ")
                ),
            ));
        }
        let at = text.find(old).unwrap_or(0);
        let mut updated = String::with_capacity(text.len() - old.len() + new.len());
        updated.push_str(&text[..at]);
        updated.push_str(new);
        updated.push_str(&text[at + old.len()..]);
        too_large(p, updated.len())?;
        let result = if snippet {
            let changed = text[..at].matches('\n').count();
            let all: Vec<&str> = updated.split('\n').collect();
            let from = changed.saturating_sub(2);
            let to = (changed + 3).min(all.len());
            format!(
                "The memory file has been edited. Here is the snippet showing the change (with line numbers):\n{}",
                numbered(all[from.min(to)..to].iter().copied(), from + 1)
            )
        } else {
            String::new()
        };
        self.files.insert(p.to_owned(), File::new(&updated));
        Ok(result)
    }

    fn insert2(&mut self, p: &str, line: u64, insert_text: &str) -> Result<String, ToolError> {
        let text = self.editable(p)?;
        let mut lines = lines_without_tail(&text);
        if line > lines.len() as u64 {
            return Err(err(
                ToolErrorKind::Invalid,
                format!("Invalid `insert_line` parameter: {line}. It should be within the range [0, {}].", lines.len()),
            ));
        }
        lines.insert(line as usize, insert_text.trim_end_matches('\n'));
        let mut updated = lines.join("\n");
        if !updated.ends_with('\n') {
            updated.push('\n');
        }
        too_large(p, updated.len())?;
        self.files.insert(p.to_owned(), File::new(&updated));
        Ok(format!("The file {p} has been edited."))
    }

    fn delete2(&mut self, p: &str) -> Result<String, ToolError> {
        if p == ROOT {
            return Err(err(ToolErrorKind::Invalid, "Cannot delete the /memories directory itself"));
        }
        if self.files.remove(p).is_none() {
            if !self.dirs.contains(p) {
                return Err(err(ToolErrorKind::NotFound, format!("The path {p} does not exist")));
            }
            self.remove_dir(p);
        }
        Ok(format!("Successfully deleted {p}"))
    }

    fn rename2(&mut self, old: &str, new: &str) -> Result<String, ToolError> {
        if old == ROOT {
            return Err(err(ToolErrorKind::Invalid, "Cannot rename the /memories directory itself"));
        }
        if new == ROOT || self.files.contains_key(new) || self.dirs.contains(new) {
            return Err(err(ToolErrorKind::AlreadyExists, format!("The destination {new} already exists")));
        }
        if let Some(file) = self.file_above(new) {
            // The reference then renames, and the system finds the source's missing
            // directory before the destination's file parent: its "does not exist".
            if parent(new) == file && !self.is_dir(parent(old)) && self.file_above(old).is_none() {
                return Err(err(ToolErrorKind::NotFound, format!("The path {old} does not exist")));
            }
            return Err(err(ToolErrorKind::Invalid, format!("Cannot rename to {new}: {file} is a file")));
        }
        let is_file = self.files.contains_key(old);
        if !is_file && !self.dirs.contains(old) {
            return Err(err(ToolErrorKind::NotFound, format!("The path {old} does not exist")));
        }
        if super::is_under(new, old) {
            return Err(err(ToolErrorKind::Invalid, format!("Cannot move {old} into itself ({new})")));
        }
        if let Some(f) = self.files.remove(old) {
            self.files.insert(new.to_owned(), f);
        } else {
            let prefix = format!("{old}/");
            let files: Vec<(String, File)> = self
                .files
                .range(prefix.clone()..)
                .take_while(|(q, _)| q.starts_with(&prefix))
                .map(|(q, f)| (format!("{new}{}", &q[old.len()..]), f.clone()))
                .collect();
            let dirs: Vec<String> = self
                .dirs
                .range(prefix.clone()..)
                .take_while(|q| q.starts_with(&prefix))
                .map(|q| format!("{new}{}", &q[old.len()..]))
                .collect();
            self.remove_dir(old);
            self.files.extend(files);
            self.dirs.extend(dirs);
            self.dirs.insert(new.to_owned());
        }
        self.add_ancestors(new);
        Ok(format!("Successfully renamed {old} to {new}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_printed_as_the_reference_prints_them() {
        let cases =
            [(0, "0B"), (20, "20B"), (1023, "1023B"), (1024, "1K"), (1536, "1.5K"), (1280, "1.2K"), (4096, "4K")];
        for (bytes, text) in cases {
            assert_eq!(format_size(bytes), text, "{bytes}");
        }
        assert_eq!(format_size(1 << 20), "1M");
        assert_eq!(format_size(5 << 30), "5G");
        assert_eq!(format_size(3 << 40), "3072G");
    }
}
