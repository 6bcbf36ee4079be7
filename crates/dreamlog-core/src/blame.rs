//! Blame's pure rules: which event wrote each line of a file, carried through edits. The
//! I/O (reading a store's history through its path index, following forks and renames)
//! is in `memory.rs`; what one command does to a file's line origins is decided here.

use super::body::MemoryCommand;
use super::memory::{MemoryState, Rules};

/// Where one line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Position of the event that wrote the line first (for a line a revert or a promote
    /// put back: the event that wrote it before, not the act that put it back).
    pub event: u64,
    /// Position of the act that put the line back, when one did: a `revert` event, or the
    /// command a promote copied the line with.
    pub restored_by: Option<u64>,
}

impl Origin {
    /// A line written by the event at `event` itself.
    pub fn new(event: u64) -> Origin {
        Origin { event, restored_by: None }
    }
}

/// A file with the origin of each line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributed {
    /// The file's text.
    pub text: String,
    /// One origin per line.
    pub lines: Vec<Origin>,
}

/// The lines of a file's text (a final newline ends the last line; it does not start one).
pub fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n').unwrap_or(text).split('\n').collect()
}

/// Whether a command on `p` touches `path` (`p` is `path` or a directory above it).
pub fn covers(p: &str, path: &str) -> bool {
    p == path || (path.len() > p.len() && path.starts_with(p) && path.as_bytes()[p.len()] == b'/')
}

/// What one memory command does to the attribution of `path`.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The attribution after the command (`None`: no such file).
    Now(Option<Attributed>),
    /// The file is now what `from` was just before the command (a rename into `path`):
    /// its attribution is that file's, which the caller looks up.
    RenamedFrom(String),
}

/// Applies command `cmd` under memory `rules` to the attribution `cur` of `path`; the
/// lines it writes get `origin` (the command's own event, or for a promote's copy the
/// fork's command it copies, with the copy as the act that put them there).
pub fn step(cur: Option<Attributed>, path: &str, cmd: &MemoryCommand, origin: Origin, rules: Rules) -> Step {
    match cmd {
        MemoryCommand::Create { path: p, file_text } if p == path => {
            Step::Now(Some(Attributed { text: file_text.clone(), lines: vec![origin; line_count(file_text)] }))
        }
        MemoryCommand::Write { path: p, file_text } if p == path => Step::Now(Some(match cur {
            // A whole-file write keeps the origins of the lines it leaves unchanged.
            Some(old) => carry_origins(old, file_text.clone(), origin),
            None => Attributed { text: file_text.clone(), lines: vec![origin; line_count(file_text)] },
        })),
        MemoryCommand::StrReplace { path: p, .. } | MemoryCommand::Insert { path: p, .. } if p == path => {
            let Some(old) = cur else { return Step::Now(None) };
            let mut s = MemoryState::new().with_rules(rules);
            s.put(path, &old.text);
            if !s.replay(cmd) {
                return Step::Now(Some(old));
            }
            let new_text = s.file(path).map(|f| f.text.to_string()).unwrap_or_default();
            Step::Now(Some(match cmd {
                // Under rules 1 an insert only adds lines at `insert_line`: no diff needed
                // (rules 2 may also drop an empty last line).
                MemoryCommand::Insert { insert_line, .. } if rules == Rules::V1 => {
                    let added = line_count(&new_text).saturating_sub(old.lines.len());
                    let mut lines = old.lines;
                    let at = (*insert_line as usize).min(lines.len());
                    lines.splice(at..at, std::iter::repeat_n(origin, added));
                    Attributed { text: new_text, lines }
                }
                _ => carry_origins(old, new_text, origin),
            }))
        }
        MemoryCommand::Delete { path: p } if covers(p, path) => Step::Now(None),
        MemoryCommand::Rename { new_path, old_path } if covers(new_path, path) => {
            Step::RenamedFrom(format!("{old_path}{}", &path[new_path.len()..]))
        }
        MemoryCommand::Rename { old_path, .. } if covers(old_path, path) => Step::Now(None),
        _ => Step::Now(cur),
    }
}

/// A restore's result: the lines of `now` that the command at `command` wrote itself and
/// that are lines of `source` (the file as it was at the point restored, with its
/// origins) keep the origin they had there, with `restorer` as the act that put them
/// back. Lines the restore kept from the file it changed keep theirs; lines found in
/// neither stay the command's own.
pub fn restored(now: Attributed, command: u64, source: Option<&Attributed>, restorer: u64) -> Attributed {
    let Some(source) = source else { return now };
    let fresh = Origin::new(command);
    if !now.lines.contains(&fresh) {
        return now;
    }
    let (src_lines, new_lines) = (split_lines(&source.text), split_lines(&now.text));
    let mut lines = now.lines.clone();
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, &src_lines, &new_lines) {
        if let similar::DiffOp::Equal { old_index, new_index, len } = op {
            for k in 0..len {
                if lines[new_index + k] == fresh {
                    let was = source.lines[old_index + k];
                    lines[new_index + k] = Origin { event: was.event, restored_by: Some(restorer) };
                }
            }
        }
    }
    Attributed { text: now.text, lines }
}

/// Carries line origins from `old` to `new_text`: unchanged lines keep theirs, new lines
/// get `origin`. Edits are local, so only what lies between the lines the two texts share
/// at the head and at the tail is diffed; those are found on the bytes (one comparison
/// of each text, no split into lines), with the same lines as comparing
/// [`split_lines`] pairwise from each end would give.
pub fn carry_origins(old: Attributed, new_text: String, origin: Origin) -> Attributed {
    let (a, b) = (lines_of(&old.text), lines_of(&new_text));
    let (head, a, b) = shared_head(a, b);
    let (tail, a, b) = shared_tail(a, b);
    let (old_mid, new_mid) = (split(a), split(b));
    let mut lines = Vec::with_capacity(head + new_mid.len() + tail);
    lines.extend_from_slice(&old.lines[..head]);
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, &old_mid, &new_mid) {
        match op {
            similar::DiffOp::Equal { old_index, len, .. } => {
                lines.extend_from_slice(&old.lines[head + old_index..head + old_index + len]);
            }
            similar::DiffOp::Insert { new_len, .. } | similar::DiffOp::Replace { new_len, .. } => {
                lines.extend(std::iter::repeat_n(origin, new_len))
            }
            similar::DiffOp::Delete { .. } => {}
        }
    }
    lines.extend_from_slice(&old.lines[old.lines.len() - tail..]);
    Attributed { text: new_text, lines }
}

/// A run of lines as text: `None` has no line, `Some(s)` the lines `s.split('\n')` (so
/// `Some("")` is one empty line). A file's text is [`split_lines`]'s lines.
type Lines<'a> = Option<&'a str>;

fn split(run: Lines<'_>) -> Vec<&str> {
    run.map(|s| s.split('\n').collect()).unwrap_or_default()
}

fn lines_of(text: &str) -> Lines<'_> {
    (!text.is_empty()).then(|| text.strip_suffix('\n').unwrap_or(text))
}

fn newlines(s: &str) -> usize {
    s.bytes().filter(|&c| c == b'\n').count()
}

/// The number of leading lines `a` and `b` share, and what follows them in each.
fn shared_head<'a, 'b>(a: Lines<'a>, b: Lines<'b>) -> (usize, Lines<'a>, Lines<'b>) {
    let (Some(x), Some(y)) = (a, b) else { return (0, a, b) };
    let (xb, yb) = (x.as_bytes(), y.as_bytes());
    let n = xb.len().min(yb.len());
    let mut p = 0;
    while p + 64 <= n && xb[p..p + 64] == yb[p..p + 64] {
        p += 64;
    }
    p += xb[p..n].iter().zip(&yb[p..n]).take_while(|(c, d)| c == d).count();
    // One run ends where the other's line does: its lines are all shared.
    let ends_line = |t: &[u8]| t.len() == p || t[p] == b'\n';
    if p == xb.len() && ends_line(yb) {
        let rest = (p < yb.len()).then(|| &y[p + 1..]);
        return (newlines(x) + 1, None, rest);
    }
    if p == yb.len() && ends_line(xb) {
        return (newlines(y) + 1, Some(&x[p + 1..]), None);
    }
    // Otherwise each newline of the shared bytes ends a shared line.
    match xb[..p].iter().rposition(|&c| c == b'\n') {
        Some(k) => (newlines(&x[..=k]), Some(&x[k + 1..]), Some(&y[k + 1..])),
        None => (0, a, b),
    }
}

/// The number of trailing lines `a` and `b` share, and what precedes them in each.
fn shared_tail<'a, 'b>(a: Lines<'a>, b: Lines<'b>) -> (usize, Lines<'a>, Lines<'b>) {
    let (Some(x), Some(y)) = (a, b) else { return (0, a, b) };
    let (xb, yb) = (x.as_bytes(), y.as_bytes());
    let n = xb.len().min(yb.len());
    let mut q = 0;
    while q + 64 <= n && xb[xb.len() - q - 64..xb.len() - q] == yb[yb.len() - q - 64..yb.len() - q] {
        q += 64;
    }
    q += xb[..xb.len() - q].iter().rev().zip(yb[..yb.len() - q].iter().rev()).take_while(|(c, d)| c == d).count();
    // One run starts where the other's line does: its lines are all shared.
    let starts_line = |t: &[u8]| t.len() == q || t[t.len() - q - 1] == b'\n';
    if q == xb.len() && starts_line(yb) {
        let rest = (q < yb.len()).then(|| &y[..yb.len() - q - 1]);
        return (newlines(x) + 1, None, rest);
    }
    if q == yb.len() && starts_line(xb) {
        return (newlines(y) + 1, Some(&x[..xb.len() - q - 1]), None);
    }
    // Otherwise each newline of the shared bytes starts a shared line.
    match xb[xb.len() - q..].iter().position(|&c| c == b'\n') {
        Some(k) => {
            let k = xb.len() - q + k;
            (newlines(&x[k..]), Some(&x[..k]), Some(&y[..k + yb.len() - xb.len()]))
        }
        None => (0, a, b),
    }
}

/// The number of lines of a file's text (as [`split_lines`] counts them).
pub fn line_count(text: &str) -> usize {
    lines_of(text).map_or(0, |s| newlines(s) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(text: &str) -> MemoryCommand {
        MemoryCommand::Create { path: "/memories/a.md".into(), file_text: text.into() }
    }

    #[test]
    fn edits_keep_the_origins_of_unchanged_lines() {
        let path = "/memories/a.md";
        let o = Origin::new;
        let Step::Now(a) = step(None, path, &create("one\ntwo\nthree\n"), o(1), Rules::V1) else { panic!() };
        let replace = MemoryCommand::StrReplace { path: path.into(), old_str: "two".into(), new_str: "2".into() };
        let Step::Now(b) = step(a, path, &replace, o(2), Rules::V1) else { panic!() };
        assert_eq!(b.as_ref().expect("a file").lines, vec![o(1), o(2), o(1)]);
        let insert = MemoryCommand::Insert { path: path.into(), insert_line: 0, insert_text: "zero\n".into() };
        let Step::Now(c) = step(b, path, &insert, o(3), Rules::V1) else { panic!() };
        assert_eq!(c.as_ref().expect("a file").lines, vec![o(3), o(1), o(2), o(1)]);
        let failing = MemoryCommand::StrReplace { path: path.into(), old_str: "absent".into(), new_str: "x".into() };
        assert_eq!(
            step(c.clone(), path, &failing, o(4), Rules::V1),
            Step::Now(c),
            "a command that fails changes nothing"
        );
    }

    #[test]
    fn deletes_and_renames_of_a_directory_above_cover_the_file() {
        let path = "/memories/d/a.md";
        let cur = Some(Attributed { text: "x\n".into(), lines: vec![Origin::new(1)] });
        let delete = MemoryCommand::Delete { path: "/memories/d".into() };
        assert_eq!(step(cur.clone(), path, &delete, Origin::new(2), Rules::V1), Step::Now(None));
        let other = MemoryCommand::Delete { path: "/memories/dd".into() };
        assert_eq!(
            step(cur.clone(), path, &other, Origin::new(2), Rules::V1),
            Step::Now(cur.clone()),
            "/memories/dd is not above it"
        );
        let into = MemoryCommand::Rename { old_path: "/memories/e".into(), new_path: "/memories/d".into() };
        assert_eq!(step(None, path, &into, Origin::new(3), Rules::V1), Step::RenamedFrom("/memories/e/a.md".into()));
        let away = MemoryCommand::Rename { old_path: "/memories/d".into(), new_path: "/memories/f".into() };
        assert_eq!(step(cur, path, &away, Origin::new(4), Rules::V1), Step::Now(None));
        assert_eq!(split_lines("a\nb\n"), vec!["a", "b"]);
    }

    #[test]
    fn a_restore_gives_restored_lines_their_origin_back() {
        let o = Origin::new;
        // As it was at the point restored: lines from events 1 and 2.
        let source = Attributed { text: "head\nlesson\ntail\n".into(), lines: vec![o(1), o(2), o(1)] };
        // Before the restore a bad edit (7) replaced the lesson and a later edit (8) added a line.
        let cur = Attributed { text: "head\nbad\ntail\nlater\n".into(), lines: vec![o(1), o(7), o(1), o(8)] };
        // The restore (command 10, of revert 9) merges: the lesson back, the later line kept.
        let now = carry_origins(cur, "head\nlesson\ntail\nlater\nnew\n".into(), o(10));
        assert_eq!(now.lines, vec![o(1), o(10), o(1), o(8), o(10)]);
        let back = restored(now.clone(), 10, Some(&source), 9);
        let by9 = Origin { event: 2, restored_by: Some(9) };
        assert_eq!(back.lines, vec![o(1), by9, o(1), o(8), o(10)], "only the lesson came from the source");
        assert_eq!(restored(now.clone(), 10, None, 9), now, "no source: the command's own lines");
        // A line restored again keeps its first origin, with the newest restorer.
        let twice = restored(Attributed { text: "lesson\n".into(), lines: vec![o(12)] }, 12, Some(&back), 11);
        assert_eq!(twice.lines, vec![Origin { event: 2, restored_by: Some(11) }]);
        assert!(split_lines("").is_empty());
    }
}
