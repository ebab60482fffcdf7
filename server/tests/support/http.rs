//! A curl-like HTTP/1.1 client for the JSON gateway tests (hyper's
//! connection API over TCP or TLS): POST a body, read the answer whole or
//! line by line for streams.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the gateway is: a port, and the TLS client config if it is https.
#[derive(Clone)]
pub struct Target {
    pub port: u16,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// How long one answer may take (lease keep-alives and locks included).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `method path` with `body` and `headers`; the answer's status and
/// its body stream.
pub async fn send(target: &Target, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Incoming) {
    let tcp = TcpStream::connect(("127.0.0.1", target.port)).await.expect("connect");
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
    let resp = match &target.tls {
        None => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            sender.send_request(req).await
        }
        Some(config) => {
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            sender.send_request(req).await
        }
    };
    let resp = resp.expect("HTTP answer");
    (resp.status().as_u16(), resp.into_body())
}

/// `curl -X POST -d body`: the status and the whole body.
pub async fn post(target: &Target, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    request(target, "POST", path, body, headers).await
}

pub async fn request(target: &Target, method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let fut = async {
        let (status, body) = send(target, method, path, body, headers).await;
        let bytes = body.collect().await.expect("read the body").to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} {body}: no answer within {ANSWER_TIMEOUT:?}"))
}

/// The lines of a streaming answer, read as they come.
pub struct Lines {
    body: Incoming,
    buf: Vec<u8>,
}

impl Lines {
    pub fn new(body: Incoming) -> Self {
        Lines { body, buf: Vec::new() }
    }

    /// The next line (without its newline); None at the end of the body.
    pub async fn next(&mut self) -> Option<String> {
        let fut = async {
            loop {
                if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=p).collect();
                    return Some(String::from_utf8_lossy(&line[..p]).into_owned());
                }
                match self.body.frame().await {
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
