//! openraft's `SnapshotData`: a snapshot's bytes in a file, or the promise
//! of them. A received snapshot is an ordinary file the leader's chunks are
//! written into ([`SnapshotFile::new`]); one about to be sent starts empty
//! and is written by a task of `snapshot_data` when first read or seeked
//! ([`SnapshotFile::later`]). A leaf: `types` names it in openraft's type
//! config, so it imports nothing of raft's.

use std::fs::File;
use std::future::Future;
use std::io::{self, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// openraft's `SnapshotData`: a snapshot's bytes in a file, or the promise
/// of them.
pub struct SnapshotFile {
    state: State,
    /// Where the file is, for a received snapshot to be renamed into place
    /// rather than copied; empty for data written to be sent.
    path: PathBuf,
    /// A seek asked for before the bytes existed.
    seek: Option<SeekFrom>,
}

enum State {
    Open(tokio::fs::File),
    Later(Writer),
}

/// The handles on the task that is to write the bytes.
struct Writer {
    /// Tells the writer to start (dropped unsent: to give up).
    start: Option<oneshot::Sender<()>>,
    written: oneshot::Receiver<io::Result<File>>,
    /// Set to stop a write in progress.
    cancel: Arc<AtomicBool>,
    /// Disconnected once the writer dropped the view and the engine.
    released: mpsc::Receiver<()>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        drop(self.start.take());
        // Returns when the writer is gone (it never sends).
        let _ = self.released.recv();
    }
}

fn not_written() -> io::Error {
    io::Error::other("the snapshot's data was not written: its writer stopped")
}

impl SnapshotFile {
    pub fn new(file: File, path: PathBuf) -> Self {
        Self {
            state: State::Open(tokio::fs::File::from_std(file)),
            path,
            seek: None,
        }
    }

    /// Data a writer has yet to write: `start` tells it to (dropped
    /// unsent: to give up), it answers the written file on `written`, stops
    /// early once `cancel` is set, and drops its `released` sender once it
    /// let go of what it reads from.
    pub fn later(
        start: oneshot::Sender<()>,
        written: oneshot::Receiver<io::Result<File>>,
        cancel: Arc<AtomicBool>,
        released: mpsc::Receiver<()>,
    ) -> Self {
        Self {
            state: State::Later(Writer {
                start: Some(start),
                written,
                cancel,
                released,
            }),
            path: PathBuf::new(),
            seek: None,
        }
    }

    /// The file (written first if it was not yet, and after every pending
    /// write completed) and its path.
    pub async fn into_std(mut self) -> io::Result<(File, PathBuf)> {
        std::future::poll_fn(|cx| self.poll_open(cx).map_ok(|_| ())).await?;
        let State::Open(file) = self.state else {
            unreachable!("poll_open answered Ready(Ok)")
        };
        let mut file = file.into_std().await;
        if let Some(pos) = self.seek {
            file.seek(pos)?;
        }
        Ok((file, self.path))
    }

    /// The open file, once its bytes are written.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut tokio::fs::File>> {
        if let State::Later(writer) = &mut self.state {
            if let Some(start) = writer.start.take() {
                let _ = start.send(());
            }
            let file = ready!(Pin::new(&mut writer.written).poll(cx)).map_err(|_| not_written())??;
            self.state = State::Open(tokio::fs::File::from_std(file));
        }
        match &mut self.state {
            State::Open(file) => Poll::Ready(Ok(file)),
            State::Later(_) => unreachable!("just opened"),
        }
    }

    /// The open file with any seek asked for before it existed started.
    fn poll_positioned(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut tokio::fs::File>> {
        ready!(self.poll_open(cx))?;
        let pending = self.seek.take();
        let State::Open(file) = &mut self.state else {
            unreachable!("poll_open answered Ready(Ok)")
        };
        if let Some(pos) = pending {
            Pin::new(&mut *file).start_seek(pos)?;
        }
        Poll::Ready(Ok(file))
    }
}

impl AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let file = ready!(self.get_mut().poll_positioned(cx))?;
        Pin::new(file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().state {
            State::Open(file) => Pin::new(file).poll_write(cx, buf),
            State::Later(_) => Poll::Ready(Err(io::Error::other("a snapshot being built is not writable"))),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Open(file) => Pin::new(file).poll_flush(cx),
            State::Later(_) => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Open(file) => Pin::new(file).poll_shutdown(cx),
            State::Later(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        match &mut this.state {
            State::Open(file) => Pin::new(file).start_seek(position),
            State::Later(_) => {
                this.seek = Some(position);
                Ok(())
            }
        }
    }
    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let file = ready!(self.get_mut().poll_positioned(cx))?;
        Pin::new(file).poll_complete(cx)
    }
}
