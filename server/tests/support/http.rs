//! A curl-like HTTP/1.1 client for the JSON gateway tests (hyper's
//! connection API over TCP or TLS): POST a body, read the answer whole or
//! line by line for streams.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Where the gateway is: a port, and the TLS client config if it is https.
#[derive(Clone)]
pub struct Target {
    pub port: u16,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// How long one answer may take (lease keep-alives and locks included).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: its status and its body stream; dropping it closes the
/// connection (a client that goes away).
pub struct Answer {
    pub status: u16,
    pub body: Incoming,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// Sends `method path` with `body` and `headers` on a new connection.
pub async fn try_send(
    target: &Target,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let tcp = TcpStream::connect(("127.0.0.1", target.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = {
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", target.port))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
    };
    let (resp, conn) = match &target.tls {
        None => exchange(TokioIo::new(tcp), req).await?,
        Some(config) => {
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            exchange(TokioIo::new(tls), req).await?
        }
    };
    let resp = resp.map_err(|e| format!("HTTP answer: {e}"))?;
    Ok(Answer {
        status: resp.status().as_u16(),
        body: resp.into_body(),
        conn,
    })
}

type Exchanged = (
    Result<http::Response<Incoming>, hyper::Error>,
    tokio::task::JoinHandle<()>,
);

/// An HTTP/1.1 handshake over `io` and one request; the connection runs in
/// a task until the answer is dropped.
async fn exchange<I>(io: I, req: http::Request<Full<Bytes>>) -> Result<Exchanged, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender.send_request(req).await, conn))
}

/// [`try_send`], panicking on a transport error.
pub async fn send(target: &Target, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    try_send(target, method, path, body, headers)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `curl -X POST -d body`: the status and the whole body.
pub async fn post(target: &Target, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    request(target, "POST", path, body, headers).await
}

pub async fn request(target: &Target, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let fut = async {
        let mut answer = send(target, method, path, body, headers).await;
        let bytes = (&mut answer.body).collect().await.expect("read the body").to_bytes();
        (answer.status, String::from_utf8_lossy(&bytes).into_owned())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} {body}: no answer within {ANSWER_TIMEOUT:?}"))
}

/// The lines of a streaming answer, read as they come.
pub struct Lines {
    answer: Answer,
    buf: Vec<u8>,
}

impl Lines {
    pub fn new(answer: Answer) -> Self {
        Lines {
            answer,
            buf: Vec::new(),
        }
    }

    /// The next line (without its newline); None at the end of the body.
    pub async fn next(&mut self) -> Option<String> {
        let fut = async {
            loop {
                if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=p).collect();
                    return Some(String::from_utf8_lossy(&line[..p]).into_owned());
                }
                match self.answer.body.frame().await {
                    Some(Ok(f)) => {
                        if let Ok(d) = f.into_data() {
                            self.buf.extend_from_slice(&d);
                        }
                    }
                    _ => {
                        if self.buf.is_empty() {
                            return None;
                        }
                        let rest = std::mem::take(&mut self.buf);
                        return Some(String::from_utf8_lossy(&rest).into_owned());
                    }
                }
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| panic!("no stream line within {ANSWER_TIMEOUT:?}"))
    }
}

/// `body` with `cluster_id`, `member_id` and `raft_term` dropped from every
/// `header` object, parsed as JSON when it is JSON (text otherwise).
pub fn normalized(body: &str) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(h)) = map.get_mut("header") {
                    for k in ["cluster_id", "member_id", "raft_term"] {
                        h.remove(k);
                    }
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut v) => {
            strip(&mut v);
            v
        }
        Err(_) => serde_json::Value::String(body.to_string()),
    }
}

/// `body` as text with the values of `cluster_id`, `member_id` and
/// `raft_term` blanked: equal texts mean the same fields in the same order
/// with the same escaping.
pub fn normalized_text(body: &str) -> String {
    let mut out = body.to_string();
    for key in ["\"cluster_id\":\"", "\"member_id\":\"", "\"raft_term\":\""] {
        let mut from = 0;
        while let Some(p) = out[from..].find(key) {
            let start = from + p + key.len();
            let end = start + out[start..].find('"').unwrap_or(0);
            out.replace_range(start..end, "");
            from = start;
        }
    }
    out
}

/// The same requests to etcd and to timon.
pub struct Pair {
    pub etcd: Target,
    pub timon: Target,
}

impl Pair {
    /// Plain HTTP to both.
    pub fn plain(etcd: &super::Member, timon: &super::Member) -> Pair {
        Pair {
            etcd: Target {
                port: etcd.client_port(),
                tls: None,
            },
            timon: Target {
                port: timon.client_port(),
                tls: None,
            },
        }
    }

    /// Posts to both; asserts equal answers; returns etcd's (normalized).
    pub async fn same(&self, path: &str, body: &str) -> Value {
        self.same_with(path, body, &[], &[]).await
    }

    /// [`Pair::same`] with headers, and with the top-level fields `masked`
    /// left out.
    pub async fn same_with(&self, path: &str, body: &str, headers: &[(&str, &str)], masked: &[&str]) -> Value {
        self.same_request("POST", path, body, headers, masked).await
    }

    pub async fn same_request(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
        masked: &[&str],
    ) -> Value {
        let (es, eb) = request(&self.etcd, method, path, body, headers).await;
        let (ts, tb) = request(&self.timon, method, path, body, headers).await;
        let (mut e, mut t) = (normalized(&eb), normalized(&tb));
        mask(&mut e, masked);
        mask(&mut t, masked);
        assert_eq!(
            (es, &e),
            (ts, &t),
            "{method} {path} {body}\n etcd:  {es} {eb}\n timon: {ts} {tb}"
        );
        if masked.is_empty() {
            assert_eq!(
                normalized_text(&eb),
                normalized_text(&tb),
                "{method} {path} {body}: field order or escaping"
            );
        }
        e
    }

    /// Opens the same stream on both; returns the two line readers.
    pub async fn open_stream(&self, path: &str, body: &str) -> (Lines, Lines) {
        let e = send(&self.etcd, "POST", path, body, &[]).await;
        let t = send(&self.timon, "POST", path, body, &[]).await;
        assert_eq!(e.status, t.status, "{path} {body}: status");
        (Lines::new(e), Lines::new(t))
    }
}

/// Drops each `masked` field of an object, in it and in every object
/// below it.
pub fn mask(v: &mut Value, masked: &[&str]) {
    if let Value::Object(map) = v {
        map.retain(|k, _| !masked.contains(&k.as_str()));
        for field in map.values_mut() {
            if let Value::Array(items) = field {
                items.iter_mut().for_each(|i| mask(i, masked));
            } else if let Value::Object(_) = field {
                mask(field, masked);
            }
        }
    }
}

/// The next line of both streams, equal.
pub async fn same_line(streams: &mut (Lines, Lines), what: &str) -> Value {
    let e = streams.0.next().await;
    let t = streams.1.next().await;
    let (ev, tv) = (e.as_deref().map(normalized), t.as_deref().map(normalized));
    assert_eq!(ev, tv, "{what}\n etcd:  {e:?}\n timon: {t:?}");
    let text = |l: &Option<String>| l.as_deref().map(normalized_text);
    assert_eq!(text(&e), text(&t), "{what}: field order or escaping");
    ev.unwrap_or(Value::Null)
}

pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
