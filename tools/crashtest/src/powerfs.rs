//! powerfs: an in-memory FUSE filesystem that can lose power.
//!
//! Every write reaches the filesystem at once (no kernel write-back cache), exactly as
//! it reaches a disk's volatile cache; what a file held at its last `fsync` is what a
//! power loss leaves. Each file keeps an undo log of the changes since its last sync
//! (an append is undone by a truncation, an overwrite or a shrink by the bytes it
//! replaced); `fsync`/`fdatasync` clears it, and [`Tree::power_loss`] applies every
//! log backwards, so each file returns to its synced bytes exactly. Names (create,
//! rename, unlink, mkdir) are durable at once — the ordered-metadata model of ext4's
//! `data=ordered` journal after its commit, as LazyFS also assumes: a file created and
//! written but never synced survives as an empty file.
//!
//! The tree lives in the harness process, so it outlives the mounts: a "reboot" is
//! power loss, unmount (the kernel's caches go with it) and a fresh mount of the tree.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Attributes are never cached by the kernel: sizes change under power loss.
const TTL: Duration = Duration::ZERO;

/// How to undo one change to a file's bytes.
enum Undo {
    /// The file was longer than this before: cut it back.
    Truncate(u64),
    /// These bytes stood at this offset before.
    Restore(u64, Vec<u8>),
}

enum Body {
    File { data: Vec<u8>, undo: Vec<Undo> },
    Dir { entries: BTreeMap<OsString, u64> },
}

struct Node {
    body: Body,
    mode: u16,
    mtime: SystemTime,
    /// Names the node has (hard links); it goes with the last.
    links: u32,
}

/// What the "disk" holds: the namespace and every file's current and synced bytes.
pub struct Tree {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Syncs served and bytes dropped by power losses, for the harness's report.
    pub syncs: u64,
    pub lost_bytes: u64,
    /// A lying disk (the harness's self-test): fsync succeeds and persists nothing.
    pub ignore_fsync: bool,
}

impl Tree {
    pub fn new() -> Arc<Mutex<Tree>> {
        let root =
            Node { body: Body::Dir { entries: BTreeMap::new() }, mode: 0o755, mtime: SystemTime::now(), links: 1 };
        Arc::new(Mutex::new(Tree {
            nodes: HashMap::from([(1, root)]),
            next_ino: 2,
            syncs: 0,
            lost_bytes: 0,
            ignore_fsync: false,
        }))
    }

    /// Drops everything not synced: every file back to its bytes at its last fsync.
    /// Returns the number of files that changed.
    pub fn power_loss(&mut self) -> usize {
        let mut changed = 0;
        let mut lost = 0u64;
        for node in self.nodes.values_mut() {
            if let Body::File { data, undo } = &mut node.body {
                if undo.is_empty() {
                    continue;
                }
                changed += 1;
                let before = data.len() as u64;
                for u in undo.drain(..).rev() {
                    match u {
                        Undo::Truncate(len) => data.truncate(len as usize),
                        Undo::Restore(at, bytes) => {
                            let end = at as usize + bytes.len();
                            if data.len() < end {
                                data.resize(end, 0);
                            }
                            data[at as usize..end].copy_from_slice(&bytes);
                            lost += bytes.len() as u64;
                        }
                    }
                }
                lost += before.saturating_sub(data.len() as u64);
            }
        }
        self.lost_bytes += lost;
        changed
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, size, nlink) = match &node.body {
            Body::File { data, .. } => (FileType::RegularFile, data.len() as u64, node.links),
            Body::Dir { .. } => (FileType::Directory, 4096, 2),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.mode,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        match self.nodes.get(&parent).map(|n| &n.body) {
            Some(Body::Dir { entries }) => entries.get(name).copied().ok_or(Errno::ENOENT),
            Some(Body::File { .. }) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.nodes.get_mut(&dir).map(|n| &mut n.body) {
            Some(Body::Dir { entries }) => Ok(entries),
            Some(Body::File { .. }) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn make(&mut self, parent: u64, name: &OsStr, body: Body, mode: u32) -> Result<FileAttr, Errno> {
        if self.child(parent, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.entries_mut(parent)?.insert(name.to_owned(), ino);
        self.nodes.insert(ino, Node { body, mode: (mode & 0o7777) as u16, mtime: SystemTime::now(), links: 1 });
        self.attr(ino).ok_or(Errno::EIO)
    }

    fn file_mut(&mut self, ino: u64) -> Result<(&mut Vec<u8>, &mut Vec<Undo>), Errno> {
        let node = self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        node.mtime = SystemTime::now();
        match &mut node.body {
            Body::File { data, undo } => Ok((data, undo)),
            Body::Dir { .. } => Err(Errno::EISDIR),
        }
    }

    fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        let (data, undo) = self.file_mut(ino)?;
        let (at, end) = (offset as usize, offset as usize + bytes.len());
        let old_len = data.len();
        if at < old_len {
            let overlap = end.min(old_len);
            undo.push(Undo::Restore(offset, data[at..overlap].to_vec()));
        }
        if end > old_len {
            undo.push(Undo::Truncate(old_len as u64));
            data.resize(end, 0);
        }
        data[at..end].copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        let (data, undo) = self.file_mut(ino)?;
        let len = len as usize;
        if len < data.len() {
            undo.push(Undo::Restore(len as u64, data[len..].to_vec()));
            data.truncate(len);
        } else if len > data.len() {
            undo.push(Undo::Truncate(data.len() as u64));
            data.resize(len, 0);
        }
        Ok(())
    }

    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        self.syncs += 1;
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::File { undo, .. }) => {
                if !self.ignore_fsync {
                    undo.clear();
                }
                Ok(())
            }
            Some(Body::Dir { .. }) => Ok(()),
            None => Err(Errno::ENOENT),
        }
    }

    fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        match (&self.nodes[&ino].body, dir) {
            (Body::Dir { entries }, true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir { .. }, false) => return Err(Errno::EISDIR),
            (Body::File { .. }, true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.entries_mut(parent)?.remove(name);
        // Open handles keep no reference here: the data goes with the last name, which
        // RocksDB (unlinking only obsolete files) never reads again.
        self.unlink_node(ino);
        Ok(())
    }

    fn unlink_node(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.links = node.links.saturating_sub(1);
            if node.links == 0 {
                self.nodes.remove(&ino);
            }
        }
    }

    /// A hard link (RocksDB's checkpoints; dreamlog's open guard).
    fn link(&mut self, ino: u64, newparent: u64, newname: &OsStr) -> Result<FileAttr, Errno> {
        if !matches!(self.nodes.get(&ino).map(|n| &n.body), Some(Body::File { .. })) {
            return Err(Errno::EPERM);
        }
        if self.child(newparent, newname).is_ok() {
            return Err(Errno::EEXIST);
        }
        self.entries_mut(newparent)?.insert(newname.to_owned(), ino);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.links += 1;
        }
        self.attr(ino).ok_or(Errno::EIO)
    }

    fn rename(&mut self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        if let Ok(existing) = self.child(newparent, newname) {
            if existing == ino {
                return Ok(());
            }
            let is_dir = matches!(self.nodes[&ino].body, Body::Dir { .. });
            match &self.nodes[&existing].body {
                Body::Dir { entries } if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
                Body::Dir { .. } if !is_dir => return Err(Errno::EISDIR),
                Body::File { .. } if is_dir => return Err(Errno::ENOTDIR),
                _ => {}
            }
            self.unlink_node(existing);
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(newparent)?.insert(newname.to_owned(), ino);
        Ok(())
    }
}

/// The FUSE face of a [`Tree`], with the harness's trip wire on every mutating request.
pub struct PowerFs {
    pub tree: Arc<Mutex<Tree>>,
    pub trip: Arc<crate::Trip>,
}

impl PowerFs {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tree for a mutating request, or None when the disk has frozen (the request
    /// fails with EIO; its process has been killed by then).
    fn mutate(&self) -> Option<MutexGuard<'_, Tree>> {
        self.trip.pass().then(|| self.tree())
    }
}

fn entry(reply: ReplyEntry, r: Result<FileAttr, Errno>) {
    match r {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let tree = self.tree();
        entry(reply, tree.child(parent.0, name).and_then(|ino| tree.attr(ino).ok_or(Errno::ENOENT)));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree().attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        if let Some(len) = size {
            if let Err(e) = tree.set_len(ino.0, len) {
                return reply.error(e);
            }
        }
        if let (Some(mode), Some(node)) = (mode, tree.nodes.get_mut(&ino.0)) {
            node.mode = (mode & 0o7777) as u16;
        }
        match tree.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        entry(reply, tree.make(parent.0, name, Body::Dir { entries: BTreeMap::new() }, mode));
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        entry(reply, tree.make(parent.0, name, Body::File { data: Vec::new(), undo: Vec::new() }, mode));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        match tree.make(parent.0, name, Body::File { data: Vec::new(), undo: Vec::new() }, mode) {
            Ok(attr) => reply.created(&TTL, &attr, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        empty(reply, tree.remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        empty(reply, tree.remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        empty(reply, tree.rename(parent.0, name, newparent.0, newname));
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        entry(reply, tree.link(ino.0, newparent.0, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree().attr(ino.0) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let tree = self.tree();
        match tree.nodes.get(&ino.0).map(|n| &n.body) {
            Some(Body::File { data, .. }) => {
                let at = (offset as usize).min(data.len());
                let end = (at + size as usize).min(data.len());
                reply.data(&data[at..end]);
            }
            Some(Body::Dir { .. }) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        match tree.write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        empty(reply, tree.sync(ino.0));
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.tree().syncs += 1;
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let Some(mut tree) = self.mutate() else { return reply.error(Errno::EIO) };
        let r = if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            // Space reserved beyond the end: nothing a reader can see.
            tree.attr(ino.0).map(|_| ()).ok_or(Errno::ENOENT)
        } else if mode != 0 {
            Err(Errno::EOPNOTSUPP)
        } else {
            match tree.attr(ino.0) {
                Some(a) if a.size < offset + length => tree.set_len(ino.0, offset + length),
                Some(_) => Ok(()),
                None => Err(Errno::ENOENT),
            }
        };
        empty(reply, r);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let tree = self.tree();
        let Some(Body::Dir { entries }) = tree.nodes.get(&ino.0).map(|n| &n.body) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all = vec![(ino.0, FileType::Directory, OsString::from(".")), (1, FileType::Directory, "..".into())];
        for (name, child) in entries {
            let kind = match tree.nodes.get(child).map(|n| &n.body) {
                Some(Body::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // 16 GiB free of 32, in 4 KiB blocks: RocksDB never finds the disk full.
        reply.statfs(8 << 20, 4 << 20, 4 << 20, 1 << 20, 1 << 19, 4096, 255, 4096);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tree: &mut Tree) -> u64 {
        tree.make(1, OsStr::new("f"), Body::File { data: Vec::new(), undo: Vec::new() }, 0o644).unwrap().ino.0
    }

    fn bytes(tree: &Tree, ino: u64) -> Vec<u8> {
        match &tree.nodes[&ino].body {
            Body::File { data, .. } => data.clone(),
            Body::Dir { .. } => panic!("a directory"),
        }
    }

    #[test]
    fn power_loss_returns_every_file_to_its_synced_bytes() {
        let arc = Tree::new();
        let mut tree = arc.lock().unwrap();
        let ino = file(&mut tree);
        tree.write(ino, 0, b"hello world").unwrap();
        tree.sync(ino).unwrap();
        tree.write(ino, 11, b" and more").unwrap();
        tree.write(ino, 0, b"HELLO").unwrap();
        tree.set_len(ino, 3).unwrap();
        tree.write(ino, 30, b"far").unwrap();
        tree.set_len(ino, 100).unwrap();
        assert_eq!(tree.power_loss(), 1);
        assert_eq!(bytes(&tree, ino), b"hello world");
        // A file never synced comes back empty; a second loss changes nothing.
        let other = tree.make(1, OsStr::new("g"), Body::File { data: Vec::new(), undo: Vec::new() }, 0o644).unwrap();
        tree.write(other.ino.0, 0, b"unsynced").unwrap();
        assert_eq!(tree.power_loss(), 1);
        assert!(bytes(&tree, other.ino.0).is_empty());
        assert_eq!(tree.power_loss(), 0);
        assert_eq!(bytes(&tree, ino), b"hello world");
    }

    #[test]
    fn synced_changes_survive_and_names_are_durable_at_once() {
        let arc = Tree::new();
        let mut tree = arc.lock().unwrap();
        let ino = file(&mut tree);
        tree.write(ino, 0, b"abc").unwrap();
        tree.sync(ino).unwrap();
        tree.rename(1, OsStr::new("f"), 1, OsStr::new("renamed")).unwrap();
        tree.power_loss();
        assert_eq!(tree.child(1, OsStr::new("renamed")).unwrap(), ino);
        assert_eq!(bytes(&tree, ino), b"abc");
        assert_eq!(tree.child(1, OsStr::new("f")), Err(Errno::ENOENT));
    }

    #[test]
    fn a_hard_link_shares_the_bytes_and_the_file_goes_with_its_last_name() {
        let arc = Tree::new();
        let mut tree = arc.lock().unwrap();
        let ino = file(&mut tree);
        tree.write(ino, 0, b"table").unwrap();
        tree.sync(ino).unwrap();
        assert_eq!(tree.link(ino, 1, OsStr::new("kept")).unwrap().nlink, 2);
        tree.remove(1, OsStr::new("f"), false).unwrap();
        assert_eq!(bytes(&tree, tree.child(1, OsStr::new("kept")).unwrap()), b"table");
        tree.remove(1, OsStr::new("kept"), false).unwrap();
        assert!(!tree.nodes.contains_key(&ino));
    }
}
