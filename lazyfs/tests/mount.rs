//! lazyfs through a real mount (needs /dev/fuse and root): what a power loss
//! keeps and drops, and the disk faults as a process sees them.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lazyfs::Mount;

struct Fixture {
    // Dropped before the directory: unmount first.
    mount: Mount,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mount = Mount::new(dir.path()).expect("mount lazyfs");
        Fixture { mount, _dir: dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mount.path().join(name)
    }

    fn lose(&self) -> lazyfs::Lost {
        self.mount.control().lose_unsynced(false)
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir).expect("open dir").sync_all().expect("fsync dir");
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)?.read_to_end(&mut v)?;
    Ok(v)
}

/// A file created and its entry made durable, but no data synced.
fn durable_empty_file(f: &Fixture, name: &str) -> File {
    let file = File::create(f.path(name)).expect("create");
    sync_dir(f.mount.path());
    file
}

#[test]
fn a_write_never_synced_is_lost() {
    let f = Fixture::new();
    let mut file = durable_empty_file(&f, "a");
    file.write_all(b"hello").unwrap();
    assert_eq!(read(&f.path("a")).unwrap(), b"hello", "the page cache shows the write");
    drop(file);
    let lost = f.lose();
    assert_eq!(lost.files, 1);
    assert_eq!(
        read(&f.path("a")).unwrap(),
        b"",
        "the unsynced write survived a power loss"
    );
}

#[test]
fn fsynced_and_fdatasynced_writes_are_kept() {
    let f = Fixture::new();
    let mut file = durable_empty_file(&f, "a");
    file.write_all(b"one").unwrap();
    file.sync_all().unwrap();
    file.write_all(b" two").unwrap();
    file.sync_data().unwrap();
    file.write_all(b" three").unwrap();
    drop(file);
    f.lose();
    assert_eq!(read(&f.path("a")).unwrap(), b"one two");
}

#[test]
fn overwrites_and_truncation_are_durable_only_when_synced() {
    let f = Fixture::new();
    let file = durable_empty_file(&f, "a");
    file.write_all_at(&[7u8; 10_000], 0).unwrap();
    file.sync_data().unwrap();
    file.write_all_at(b"xyz", 5_000).unwrap();
    file.set_len(6_000).unwrap();
    drop(file);
    f.lose();
    assert_eq!(read(&f.path("a")).unwrap(), vec![7u8; 10_000]);
}

#[test]
fn a_new_file_synced_without_its_directory_is_lost() {
    let f = Fixture::new();
    let mut file = File::create(f.path("new")).unwrap();
    file.write_all(b"data").unwrap();
    file.sync_all().unwrap();
    drop(file);
    f.lose();
    assert_eq!(read(&f.path("new")).unwrap_err().kind(), ErrorKind::NotFound);

    let mut file = File::create(f.path("new")).unwrap();
    file.write_all(b"data").unwrap();
    file.sync_all().unwrap();
    sync_dir(f.mount.path());
    drop(file);
    f.lose();
    assert_eq!(read(&f.path("new")).unwrap(), b"data");
}

#[test]
fn a_rename_without_a_directory_fsync_is_lost() {
    let f = Fixture::new();
    let mut file = durable_empty_file(&f, "tmp");
    file.write_all(b"v1").unwrap();
    file.sync_all().unwrap();
    drop(file);
    fs::rename(f.path("tmp"), f.path("CURRENT")).unwrap();
    assert_eq!(read(&f.path("CURRENT")).unwrap(), b"v1");
    f.lose();
    assert_eq!(read(&f.path("CURRENT")).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(read(&f.path("tmp")).unwrap(), b"v1", "the old name is back");

    fs::rename(f.path("tmp"), f.path("CURRENT")).unwrap();
    sync_dir(f.mount.path());
    f.lose();
    assert_eq!(read(&f.path("CURRENT")).unwrap(), b"v1");
    assert_eq!(read(&f.path("tmp")).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn an_unlink_without_a_directory_fsync_is_undone() {
    let f = Fixture::new();
    let mut file = durable_empty_file(&f, "a");
    file.write_all(b"keep").unwrap();
    file.sync_all().unwrap();
    drop(file);
    fs::remove_file(f.path("a")).unwrap();
    f.lose();
    assert_eq!(read(&f.path("a")).unwrap(), b"keep");
}

#[test]
fn a_subdirectory_needs_its_parent_synced_and_its_own_entries_its_own_sync() {
    let f = Fixture::new();
    fs::create_dir(f.path("d")).unwrap();
    let file = File::create(f.path("d/x")).unwrap();
    file.sync_all().unwrap();
    drop(file);
    sync_dir(&f.path("d"));
    f.lose();
    assert!(!f.path("d").exists(), "d was never made durable in the root");

    fs::create_dir(f.path("d")).unwrap();
    sync_dir(f.mount.path());
    File::create(f.path("d/x")).unwrap();
    f.lose();
    assert!(f.path("d").is_dir());
    assert!(!f.path("d/x").exists());
}

#[test]
fn a_torn_write_keeps_the_first_half_of_the_last_unsynced_write() {
    let f = Fixture::new();
    let file = durable_empty_file(&f, "wal");
    file.write_all_at(b"AAAA", 0).unwrap();
    file.sync_data().unwrap();
    file.write_all_at(b"BBBBBBBB", 4).unwrap();
    drop(file);
    let lost = f.mount.control().lose_unsynced(true);
    assert_eq!(lost.torn_bytes, 4);
    assert_eq!(read(&f.path("wal")).unwrap(), b"AAAABBBB");
}

#[test]
fn fsync_fails_with_eio_and_the_failed_pages_are_forgotten() {
    let f = Fixture::new();
    let control = f.mount.control();
    let mut file = durable_empty_file(&f, "a");
    file.write_all(b"lost").unwrap();
    control.set_fsync_error(true);
    let err = file.sync_data().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert_eq!(
        File::open(f.mount.path())
            .unwrap()
            .sync_all()
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EIO),
        "a directory fsync fails too"
    );
    control.set_fsync_error(false);
    // Linux marks the failed pages clean: a retried fsync succeeds and
    // still writes nothing.
    file.sync_data().unwrap();
    drop(file);
    f.lose();
    assert_eq!(read(&f.path("a")).unwrap(), vec![0u8; 4]);
}

#[test]
fn a_full_disk_refuses_writes_with_enospc_until_space_returns() {
    let f = Fixture::new();
    let control = f.mount.control();
    let mut file = durable_empty_file(&f, "a");
    file.write_all(b"before").unwrap();
    control.set_disk_full(true);
    assert_eq!(file.write_all(b"x").unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(file.set_len(1 << 20).unwrap_err().raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(read(&f.path("a")).unwrap(), b"before", "nothing half-written");
    control.set_disk_full(false);
    file.write_all(b" after").unwrap();
    assert_eq!(read(&f.path("a")).unwrap(), b"before after");
}

#[test]
fn a_slow_disk_delays_fsync_but_not_reads() {
    let f = Fixture::new();
    let control = f.mount.control();
    let mut file = durable_empty_file(&f, "a");
    file.write_all(b"x").unwrap();
    let delay = Duration::from_secs(3);
    control.set_fsync_delay(delay);
    let path = f.path("a");
    let syncing = std::thread::spawn(move || {
        let start = Instant::now();
        file.sync_data().unwrap();
        start.elapsed()
    });
    // A read while the fsync waits completes first: the delay is the
    // fsync's own, not the whole filesystem's.
    assert_eq!(read(&path).unwrap(), b"x");
    assert!(!syncing.is_finished(), "the read waited for the slow fsync");
    let sync_took = syncing.join().unwrap();
    assert!(sync_took >= delay, "fsync took {sync_took:?}");
    control.set_fsync_delay(Duration::ZERO);
    f.lose();
    assert_eq!(read(&path).unwrap(), b"x", "the delayed fsync did sync");
}

#[test]
fn files_can_be_appended_read_back_listed_and_removed() {
    let f = Fixture::new();
    fs::create_dir_all(f.path("db/sub")).unwrap();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(f.path("db/LOG"))
        .unwrap();
    for i in 0..1000 {
        writeln!(file, "line {i}").unwrap();
    }
    drop(file);
    let text = String::from_utf8(read(&f.path("db/LOG")).unwrap()).unwrap();
    assert_eq!(text.lines().count(), 1000);
    fs::hard_link(f.path("db/LOG"), f.path("db/LOG.link")).unwrap();
    let mut names: Vec<String> = fs::read_dir(f.path("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["LOG", "LOG.link", "sub"]);
    fs::remove_dir_all(f.path("db")).unwrap();
    assert!(!f.path("db").exists());
}
