//! Accepted connections of one listener (TCP or a unix socket), plain,
//! TLS or both, as the stream tonic (and the metrics server) serve. TLS
//! handshakes run in their own tasks, bounded in time, so a client that
//! never finishes one (a plain-text client on a TLS port, say) holds up
//! nobody; a failed handshake is logged and the listener keeps serving.
//! Accepted TCP sockets get TCP_NODELAY, as grpc-go sets it: without it a
//! small answer waits for the client's delayed ACK (~40 ms on Linux).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream as Stream2;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Acceptor, ConnInfo};

/// Longest a TLS handshake (or, on a port serving both, the client's first
/// byte) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A bound listen URL: TCP, or a unix socket (`unix://` / `unixs://`),
/// whose file is removed when the listener closes, as etcd's is.
pub enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Socket {
    async fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>)> {
        match self {
            Socket::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                // Without it a small answer waits for the client's delayed ACK.
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), Some(addr)))
            }
            Socket::Unix(l, _) => Ok((Stream::Unix(l.accept().await?.0), None)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Socket::Tcp(l) => l.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            Socket::Unix(_, path) => format!("unix socket {}", path.display()),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Socket::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connected byte stream, TCP or unix.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// One accepted connection.
pub enum Conn {
    Plain(Stream, ConnInfo),
    Tls(Box<tokio_rustls::server::TlsStream<Stream>>, ConnInfo),
}

/// How a listener serves its connections: TLS (`https`), plain text
/// (`http`), or both on one address (etcd serves `http://` and `https://`
/// URLs of the same host and port on one listener, telling them apart by
/// the first byte).
pub struct Serve {
    pub tls: Option<Arc<Acceptor>>,
    pub plain: bool,
}

/// The connections `socket` accepts, served as `serve` says. The listener
/// closes when the stream is dropped (the server stopped), so a restarted
/// member can bind the address again.
pub fn incoming(socket: Socket, serve: Serve) -> impl Stream2<Item = io::Result<Conn>> + Send {
    let (tx, rx) = mpsc::channel::<io::Result<Conn>>(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = socket.accept() => a,
                _ = tx.closed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!("accept on {} failed: {e}", socket.describe());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let info = ConnInfo {
                remote_addr: remote,
                common_name: None,
            };
            match (&serve.tls, serve.plain) {
                (None, _) => {
                    if tx.send(Ok(Conn::Plain(stream, info))).await.is_err() {
                        return;
                    }
                }
                (Some(tls), plain) => {
                    let (tx, config) = (tx.clone(), tls.config());
                    tokio::spawn(handshake(stream, info, config, plain, tx));
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Runs one TLS handshake (after checking, on a port that also serves
/// plain text, that the client starts one) and hands the connection on.
async fn handshake(
    stream: Stream,
    mut info: ConnInfo,
    config: Arc<rustls::ServerConfig>,
    plain_too: bool,
    tx: mpsc::Sender<io::Result<Conn>>,
) {
    let peer = info
        .remote_addr
        .map_or_else(|| "a unix socket client".to_owned(), |a| a.to_string());
    let work = async {
        if plain_too && first_byte(&stream).await? != TLS_HANDSHAKE_RECORD {
            return Ok::<_, io::Error>(Conn::Plain(stream, info.clone()));
        }
        let tls = tokio_rustls::TlsAcceptor::from(config).accept(stream).await?;
        info.common_name = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| timon_tls::names::common_name(cert));
        Ok(Conn::Tls(Box::new(tls), info.clone()))
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, work).await {
        Ok(Ok(conn)) => {
            let _ = tx.send(Ok(conn)).await;
        }
        Ok(Err(e)) => tracing::warn!("rejected connection from {peer}: TLS handshake error: {e}"),
        Err(_) => tracing::warn!("rejected connection from {peer}: TLS handshake timed out"),
    }
}

/// The first byte the client sent, left unread. A unix socket serving both
/// `unix://` and `unixs://` is taken to speak TLS (tokio's unix streams
/// cannot peek; etcd's own clients never mix the two on one socket).
async fn first_byte(stream: &Stream) -> io::Result<u8> {
    let mut byte = [0u8; 1];
    let n = match stream {
        Stream::Tcp(s) => s.peek(&mut byte).await?,
        Stream::Unix(_) => return Ok(TLS_HANDSHAKE_RECORD),
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed before sending anything",
        ));
    }
    Ok(byte[0])
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        match self {
            Conn::Plain(_, info) | Conn::Tls(_, info) => info.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s, _) => s.is_write_vectored(),
            Conn::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Forwards each call to the TCP or unix stream inside.
macro_rules! both {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        both!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        both!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        both!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        both!(self, s => s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}
