//! The FUSE side: each kernel request is answered from the shared
//! [`Tree`], with the [`Faults`] in force applied. Files are opened with
//! direct I/O and every attribute and entry has a zero TTL, so the kernel
//! caches nothing a power loss must take away: every read and every lookup
//! comes here. A delayed fsync is answered from its own thread, so a slow
//! disk stalls only the process that syncs, not every read and write.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    consts::FOPEN_DIRECT_IO, FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use libc::{c_int, EINVAL, EIO, ENOSPC};

use crate::faults::Faults;
use crate::tree::{Ino, Kind, Node, Tree};

/// The kernel caches no attribute and no entry.
const TTL: Duration = Duration::ZERO;
/// fallocate's FALLOC_FL_KEEP_SIZE: allocate without changing the length.
const KEEP_SIZE: i32 = 1;
/// renameat2's RENAME_NOREPLACE.
const NOREPLACE: u32 = 1;
/// What statfs reports as the disk's size (1 TiB).
const CAPACITY: u64 = 1 << 40;

/// State shared by the FUSE loop, the threads of delayed fsyncs, and
/// [`crate::Control`].
#[derive(Default)]
pub struct Shared {
    pub tree: Mutex<Tree>,
    pub faults: Mutex<Faults>,
}

impl Shared {
    pub fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn faults(&self) -> Faults {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An fsync as the faults now in force let it happen.
    fn sync(&self, ino: Ino) -> Result<(), c_int> {
        let mut tree = self.tree();
        if self.faults().fsync_error {
            tree.forget_dirty(ino);
            return Err(EIO);
        }
        tree.sync(ino)
    }
}

/// The filesystem the kernel talks to.
pub struct LazyFs {
    pub shared: Arc<Shared>,
}

fn attr(ino: Ino, n: &Node) -> FileAttr {
    let size = n.size();
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: n.mtime,
        mtime: n.mtime,
        ctime: n.ctime,
        crtime: UNIX_EPOCH,
        kind: match n.kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
        },
        perm: n.perm,
        nlink: if n.kind == Kind::Dir { 2 } else { n.nlink },
        uid: n.uid,
        gid: n.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl LazyFs {
    fn entry(&self, ino: Result<Ino, c_int>, reply: ReplyEntry) {
        let tree = self.shared.tree();
        match ino.and_then(|i| tree.node(i).map(|n| attr(i, n))) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn disk_full(&self) -> bool {
        self.shared.faults().disk_full
    }

    /// Answers an fsync now, or from a thread after the slow disk's delay.
    fn fsync_reply(&self, ino: Ino, reply: ReplyEmpty) {
        let delay = self.shared.faults().fsync_delay;
        let answer = move |shared: &Shared, reply: ReplyEmpty| match shared.sync(ino) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        };
        if delay.is_zero() {
            answer(&self.shared, reply);
        } else {
            let shared = self.shared.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                answer(&shared, reply);
            });
        }
    }
}

fn done(result: Result<(), c_int>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for LazyFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let ino = self.shared.tree().lookup(parent, name);
        self.entry(ino, reply);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyAttr) {
        match self.shared.tree().node(ino) {
            Ok(n) => reply.attr(&TTL, &attr(ino, n)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let disk_full = self.disk_full();
        let mut tree = self.shared.tree();
        let result = (|| {
            if let Some(len) = size {
                if disk_full && len > tree.node(ino)?.size() {
                    return Err(ENOSPC);
                }
                tree.set_len(ino, len)?;
            }
            let perm = mode.map(|m| (m & 0o7777) as u16);
            tree.set_attrs(ino, perm, uid, gid)?;
            tree.node(ino).map(|n| attr(ino, n))
        })();
        match result {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let perm = (mode & !umask & 0o7777) as u16;
        let ino = self
            .shared
            .tree()
            .create(parent, name, Kind::Dir, perm, req.uid(), req.gid());
        self.entry(ino, reply);
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        done(self.shared.tree().remove(parent, name, false), reply);
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        done(self.shared.tree().remove(parent, name, true), reply);
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if flags & !NOREPLACE != 0 {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled.
            return reply.error(EINVAL);
        }
        let result = self
            .shared
            .tree()
            .rename(parent, name, newparent, newname, flags & NOREPLACE != 0);
        done(result, reply);
    }

    fn link(&mut self, _req: &Request<'_>, ino: u64, newparent: u64, newname: &OsStr, reply: ReplyEntry) {
        let linked = self.shared.tree().link(ino, newparent, newname).map(|()| ino);
        self.entry(linked, reply);
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.shared.tree().opened(ino) {
            Ok(()) => reply.opened(ino, FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let perm = (mode & !umask & 0o7777) as u16;
        let mut tree = self.shared.tree();
        let made = tree
            .create(parent, name, Kind::File, perm, req.uid(), req.gid())
            .and_then(|ino| tree.opened(ino).map(|()| ino));
        match made.and_then(|ino| tree.node(ino).map(|n| attr(ino, n))) {
            Ok(a) => reply.created(&TTL, &a, 0, a.ino, FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(EINVAL);
        };
        match self.shared.tree().read(ino, offset, size as usize) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        if self.disk_full() {
            return reply.error(ENOSPC);
        }
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(EINVAL);
        };
        match self.shared.tree().write(ino, offset, data) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.tree().released(ino);
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        self.fsync_reply(ino, reply);
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.shared.tree().node(ino) {
            Ok(n) if n.kind == Kind::Dir => reply.opened(0, 0),
            Ok(_) => reply.error(libc::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let entries = match self.shared.tree().entries(ino) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let dots = [(".".into(), ino, Kind::Dir), ("..".into(), ino, Kind::Dir)];
        let all = dots.into_iter().chain(entries);
        for (i, (name, child, kind)) in all.enumerate().skip(offset.max(0) as usize) {
            let kind = match kind {
                Kind::File => FileType::RegularFile,
                Kind::Dir => FileType::Directory,
            };
            if reply.add(child, (i + 1) as i64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _flags: i32, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _datasync: bool, reply: ReplyEmpty) {
        self.fsync_reply(ino, reply);
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let block = 4096u64;
        let (used, files) = {
            let t = self.shared.tree();
            (t.bytes_used(), t.inodes() as u64)
        };
        let blocks = CAPACITY / block;
        let free = if self.disk_full() {
            0
        } else {
            blocks.saturating_sub(used.div_ceil(block))
        };
        reply.statfs(
            blocks,
            free,
            free,
            1 << 20,
            (1 << 20) - files,
            block as u32,
            255,
            block as u32,
        );
    }

    fn fallocate(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if self.disk_full() {
            return reply.error(ENOSPC);
        }
        if mode & !KEEP_SIZE != 0 {
            // Punching holes and zeroing ranges are not modelled.
            return reply.error(libc::EOPNOTSUPP);
        }
        let (Ok(offset), Ok(length)) = (u64::try_from(offset), u64::try_from(length)) else {
            return reply.error(EINVAL);
        };
        let mut tree = self.shared.tree();
        let result = tree.node(ino).map(|n| n.size()).and_then(|size| {
            let end = offset.saturating_add(length);
            if mode & KEEP_SIZE == 0 && end > size {
                tree.set_len(ino, end)
            } else {
                Ok(())
            }
        });
        done(result, reply);
    }
}
