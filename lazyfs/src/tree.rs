//! The filesystem's contents, in memory, in two layers: what processes see
//! (the *visible* layer, a page cache that never writes back by itself) and
//! what a power loss leaves (the *durable* layer). Nothing here knows FUSE:
//! every operation answers a value or an errno.
//!
//! Durability follows POSIX at its strictest, as Jepsen's LazyFS models it:
//! - a file's data reaches the durable layer only when the file is synced
//!   ([`Tree::sync`] of the file: fsync or fdatasync); only the pages
//!   written since the last sync are copied, plus the new length;
//! - a directory entry (create, link, unlink, rename, mkdir, rmdir) reaches
//!   it only when its directory is synced; a rename is two entries, each
//!   durable with its own directory;
//! - [`Tree::lose_unsynced`] replaces the visible layer with the durable
//!   one: a file synced but never linked durably is gone, an unlink not
//!   synced is undone.
//!
//! Inodes nobody can reach (by a visible or a durable entry, or an open
//! handle) are dropped after every operation that can orphan one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use libc::{c_int, EEXIST, EINVAL, EISDIR, ENOENT, ENOTDIR, ENOTEMPTY, EPERM};

pub type Ino = u64;
/// FUSE's root inode.
pub const ROOT: Ino = 1;
/// The unit [`Tree::sync`] copies: pages written since the last sync.
pub const PAGE: u64 = 4096;

/// An errno.
pub type Res<T> = Result<T, c_int>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// One inode: a file's two layers of data, or a directory's two layers of
/// entries, and the attributes `stat` shows (kept in the visible layer only).
#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Visible entries naming this inode.
    pub nlink: u32,
    data: Vec<u8>,
    durable_data: Vec<u8>,
    /// Pages whose visible bytes may differ from the durable ones.
    dirty: BTreeSet<u64>,
    entries: BTreeMap<OsString, Ino>,
    durable_entries: BTreeMap<OsString, Ino>,
}

impl Node {
    fn new(kind: Kind, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node {
            kind,
            perm,
            uid,
            gid,
            mtime: now,
            ctime: now,
            nlink: 0,
            data: Vec::new(),
            durable_data: Vec::new(),
            dirty: BTreeSet::new(),
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
        }
    }

    /// The visible length of a file (0 for a directory).
    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn mark_dirty(&mut self, start: u64, end: u64) {
        if end > start {
            self.dirty.extend(start / PAGE..end.div_ceil(PAGE));
        }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// The last write not yet synced: what a torn write keeps part of.
#[derive(Debug, Clone)]
struct LastWrite {
    ino: Ino,
    offset: u64,
    len: usize,
}

/// What [`Tree::lose_unsynced`] dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lost {
    /// Files whose visible data differed from their durable data.
    pub files: usize,
    /// Directories whose visible entries differed from their durable ones.
    pub dirs: usize,
    /// Bytes of the last unsynced write kept by a torn write.
    pub torn_bytes: usize,
}

/// The whole filesystem.
#[derive(Debug)]
pub struct Tree {
    nodes: HashMap<Ino, Node>,
    next: Ino,
    /// Open handles per inode (an unlinked open file stays readable).
    open: HashMap<Ino, u32>,
    last_write: Option<LastWrite>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty filesystem: the root directory, durable.
    pub fn new() -> Tree {
        let mut root = Node::new(Kind::Dir, 0o755, 0, 0);
        root.nlink = 1;
        Tree {
            nodes: HashMap::from([(ROOT, root)]),
            next: ROOT + 1,
            open: HashMap::new(),
            last_write: None,
        }
    }

    pub fn node(&self, ino: Ino) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(ENOENT)
    }

    fn dir(&self, ino: Ino) -> Res<&Node> {
        let n = self.node(ino)?;
        if n.kind != Kind::Dir {
            return Err(ENOTDIR);
        }
        Ok(n)
    }

    fn file_mut(&mut self, ino: Ino) -> Res<&mut Node> {
        let n = self.node_mut(ino)?;
        if n.kind != Kind::File {
            return Err(EISDIR);
        }
        Ok(n)
    }

    pub fn lookup(&self, parent: Ino, name: &OsStr) -> Res<Ino> {
        self.dir(parent)?.entries.get(name).copied().ok_or(ENOENT)
    }

    /// The visible entries of a directory, in name order.
    pub fn entries(&self, dir: Ino) -> Res<Vec<(OsString, Ino, Kind)>> {
        Ok(self
            .dir(dir)?
            .entries
            .iter()
            .map(|(name, ino)| (name.clone(), *ino, self.nodes[ino].kind))
            .collect())
    }

    /// Makes a file or directory named `name` in `parent`.
    pub fn create(&mut self, parent: Ino, name: &OsStr, kind: Kind, perm: u16, uid: u32, gid: u32) -> Res<Ino> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        let mut node = Node::new(kind, perm, uid, gid);
        node.nlink = 1;
        self.nodes.insert(ino, node);
        let p = self.node_mut(parent)?;
        p.entries.insert(name.to_owned(), ino);
        p.touch();
        Ok(ino)
    }

    /// Another name for a file.
    pub fn link(&mut self, ino: Ino, parent: Ino, name: &OsStr) -> Res<()> {
        if self.node(ino)?.kind == Kind::Dir {
            return Err(EPERM);
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(EEXIST);
        }
        self.node_mut(parent)?.entries.insert(name.to_owned(), ino);
        self.node_mut(ino)?.nlink += 1;
        Ok(())
    }

    /// Removes a file's name (`dir` false) or an empty directory (`dir` true).
    pub fn remove(&mut self, parent: Ino, name: &OsStr, dir: bool) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        let node = self.node(ino)?;
        match (node.kind, dir) {
            (Kind::Dir, false) => return Err(EISDIR),
            (Kind::File, true) => return Err(ENOTDIR),
            (Kind::Dir, true) if !node.entries.is_empty() => return Err(ENOTEMPTY),
            _ => {}
        }
        let p = self.node_mut(parent)?;
        p.entries.remove(name);
        p.touch();
        let n = self.node_mut(ino)?;
        n.nlink = n.nlink.saturating_sub(1);
        self.collect();
        Ok(())
    }

    /// rename(2) with `noreplace` for RENAME_NOREPLACE.
    pub fn rename(&mut self, parent: Ino, name: &OsStr, new_parent: Ino, new_name: &OsStr, noreplace: bool) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        let kind = self.node(ino)?.kind;
        if kind == Kind::Dir && self.is_ancestor(ino, new_parent) {
            return Err(EINVAL);
        }
        if let Ok(old) = self.lookup(new_parent, new_name) {
            if old == ino {
                return Ok(());
            }
            if noreplace {
                return Err(EEXIST);
            }
            let target = self.node(old)?;
            match (kind, target.kind) {
                (Kind::File, Kind::Dir) => return Err(EISDIR),
                (Kind::Dir, Kind::File) => return Err(ENOTDIR),
                (Kind::Dir, Kind::Dir) if !target.entries.is_empty() => return Err(ENOTEMPTY),
                _ => {}
            }
            let t = self.node_mut(old)?;
            t.nlink = t.nlink.saturating_sub(1);
        }
        let p = self.node_mut(parent)?;
        p.entries.remove(name);
        p.touch();
        let np = self.node_mut(new_parent)?;
        np.entries.insert(new_name.to_owned(), ino);
        np.touch();
        self.collect();
        Ok(())
    }

    /// Whether `dir` is `of` or one of its (visible) ancestors.
    fn is_ancestor(&self, dir: Ino, of: Ino) -> bool {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            if d == of {
                return true;
            }
            if let Some(n) = self.nodes.get(&d) {
                stack.extend(n.entries.values().copied());
            }
        }
        false
    }

    pub fn read(&self, ino: Ino, offset: u64, size: usize) -> Res<&[u8]> {
        let n = self.node(ino)?;
        if n.kind == Kind::Dir {
            return Err(EISDIR);
        }
        let start = (offset as usize).min(n.data.len());
        let end = start.saturating_add(size).min(n.data.len());
        Ok(&n.data[start..end])
    }

    /// Writes into the visible layer only.
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Res<usize> {
        let n = self.file_mut(ino)?;
        let start = usize::try_from(offset).map_err(|_| EINVAL)?;
        let end = start.checked_add(data.len()).ok_or(EINVAL)?;
        let old_len = n.data.len();
        if end > old_len {
            n.data.resize(end, 0);
            n.mark_dirty(old_len as u64, end as u64);
        }
        n.data[start..end].copy_from_slice(data);
        n.mark_dirty(start as u64, end as u64);
        n.touch();
        self.last_write = Some(LastWrite {
            ino,
            offset,
            len: data.len(),
        });
        Ok(data.len())
    }

    /// truncate(2) / extension of a file, in the visible layer.
    pub fn set_len(&mut self, ino: Ino, len: u64) -> Res<()> {
        let n = self.file_mut(ino)?;
        let len = usize::try_from(len).map_err(|_| EINVAL)?;
        let old = n.data.len();
        n.data.resize(len, 0);
        n.mark_dirty(old.min(len) as u64, old.max(len) as u64);
        n.touch();
        Ok(())
    }

    pub fn set_attrs(&mut self, ino: Ino, perm: Option<u16>, uid: Option<u32>, gid: Option<u32>) -> Res<()> {
        let n = self.node_mut(ino)?;
        if let Some(p) = perm {
            n.perm = p;
        }
        if let Some(u) = uid {
            n.uid = u;
        }
        if let Some(g) = gid {
            n.gid = g;
        }
        n.ctime = SystemTime::now();
        Ok(())
    }

    /// fsync(2): a file's data (written pages and length), or a
    /// directory's entries, become durable.
    pub fn sync(&mut self, ino: Ino) -> Res<()> {
        let n = self.node_mut(ino)?;
        match n.kind {
            Kind::Dir => n.durable_entries = n.entries.clone(),
            Kind::File => {
                n.durable_data.resize(n.data.len(), 0);
                let len = n.data.len() as u64;
                for page in std::mem::take(&mut n.dirty) {
                    let start = page * PAGE;
                    if start >= len {
                        break;
                    }
                    let (s, e) = (start as usize, (start + PAGE).min(len) as usize);
                    n.durable_data[s..e].copy_from_slice(&n.data[s..e]);
                }
                if self.last_write.as_ref().is_some_and(|w| w.ino == ino) {
                    self.last_write = None;
                }
            }
        }
        self.collect();
        Ok(())
    }

    /// What Linux does to a file whose writeback failed (the "fsyncgate"
    /// behaviour): the failed pages are marked clean though they never
    /// reached the disk, so a later fsync succeeds without writing them.
    /// The visible data stays until a power loss.
    pub fn forget_dirty(&mut self, ino: Ino) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.dirty.clear();
        }
        if self.last_write.as_ref().is_some_and(|w| w.ino == ino) {
            self.last_write = None;
        }
    }

    pub fn opened(&mut self, ino: Ino) -> Res<()> {
        self.node(ino)?;
        *self.open.entry(ino).or_default() += 1;
        Ok(())
    }

    pub fn released(&mut self, ino: Ino) {
        if let Some(c) = self.open.get_mut(&ino) {
            *c -= 1;
            if *c == 0 {
                self.open.remove(&ino);
            }
        }
        self.collect();
    }

    /// A power loss: every unsynced write and directory change is gone. With
    /// `tear`, the first half of the last unsynced write (if its file is
    /// still durably named) reaches the disk first, as a write torn by the
    /// power cut would. Every open handle is forgotten: the processes that
    /// held them are assumed dead.
    pub fn lose_unsynced(&mut self, tear: bool) -> Lost {
        let mut lost = Lost::default();
        if let Some(w) = self.last_write.take().filter(|_| tear) {
            if let Some(n) = self.nodes.get_mut(&w.ino) {
                let keep = w.len / 2;
                let (s, e) = (w.offset as usize, w.offset as usize + keep);
                if n.durable_data.len() < e {
                    n.durable_data.resize(e, 0);
                }
                let visible_end = e.min(n.data.len());
                if s < visible_end {
                    n.durable_data[s..visible_end].copy_from_slice(&n.data[s..visible_end]);
                }
                lost.torn_bytes = keep;
            }
        }
        for n in self.nodes.values_mut() {
            match n.kind {
                Kind::File if n.data != n.durable_data => {
                    lost.files += 1;
                    n.data = n.durable_data.clone();
                }
                Kind::Dir if n.entries != n.durable_entries => {
                    lost.dirs += 1;
                    n.entries = n.durable_entries.clone();
                }
                _ => {}
            }
            n.dirty.clear();
        }
        self.open.clear();
        self.collect();
        for n in self.nodes.values_mut() {
            n.nlink = 0;
        }
        let children: Vec<Ino> = self.nodes.values().flat_map(|n| n.entries.values().copied()).collect();
        for c in children {
            if let Some(n) = self.nodes.get_mut(&c) {
                n.nlink += 1;
            }
        }
        if let Some(root) = self.nodes.get_mut(&ROOT) {
            root.nlink = 1;
        }
        lost
    }

    /// Drops every inode no entry (visible or durable) and no handle reaches.
    fn collect(&mut self) {
        let mut live: BTreeSet<Ino> = BTreeSet::new();
        let mut stack: Vec<Ino> = vec![ROOT];
        stack.extend(self.open.keys().copied());
        while let Some(ino) = stack.pop() {
            if !live.insert(ino) {
                continue;
            }
            if let Some(n) = self.nodes.get(&ino) {
                stack.extend(n.entries.values().copied());
                stack.extend(n.durable_entries.values().copied());
            }
        }
        self.nodes.retain(|ino, _| live.contains(ino));
    }

    /// Bytes held in memory (visible plus durable data), for statfs.
    pub fn bytes_used(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| (n.data.len() + n.durable_data.len()) as u64)
            .sum()
    }

    /// How many inodes exist.
    pub fn inodes(&self) -> usize {
        self.nodes.len()
    }
}
