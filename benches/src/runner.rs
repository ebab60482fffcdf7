//! The closed loop: `--clients` tasks each send one request, wait for its
//! answer, record the latency and send the next, until `--total` requests
//! were claimed or `--duration` passed. Requests are numbered over all
//! clients (the number picks sequential keys); `--rate` spaces their starts.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::progress::Progress;
use crate::rate::Limiter;
use crate::recorder::{status_text, Recorder};

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many requests (successful or not).
    Total(u64),
    /// When this much time has passed (requests in flight finish).
    Duration(Duration),
}

/// What a request ended as when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Succeeded, and is counted under this note too (e.g. `conflicts`).
    Noted(&'static str),
}

/// One client's state (its gRPC client, key generator, streams): `call`
/// sends request number `seq` and waits for its answer.
pub trait Client: Send + 'static {
    fn call(&mut self, seq: u64) -> impl Future<Output = Result<Outcome, tonic::Status>> + Send;
}

/// Drives `clients` until `stop`; returns what they recorded and the wall
/// time from the first request to the last answer.
pub async fn run<C: Client>(
    clients: Vec<C>,
    stop: Stop,
    rate: f64,
    progress: &Progress,
) -> anyhow::Result<(Recorder, Duration)> {
    let next = Arc::new(AtomicU64::new(0));
    let limiter = Arc::new(Limiter::new(rate));
    let start = Instant::now();
    let deadline = match stop {
        Stop::Duration(d) => Some(start + d),
        Stop::Total(_) => None,
    };
    let mut tasks = Vec::with_capacity(clients.len());
    for mut client in clients {
        let (next, limiter, progress) = (next.clone(), limiter.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if let Stop::Total(n) = stop {
                    if seq >= n {
                        break;
                    }
                }
                limiter.wait().await;
                let sent = Instant::now();
                match client.call(seq).await {
                    Ok(outcome) => {
                        rec.ok(sent.elapsed());
                        if let Outcome::Noted(note) = outcome {
                            rec.note(note, 1);
                        }
                    }
                    Err(status) => rec.error(status_text(&status)),
                }
                progress.inc(1);
            }
            rec
        }));
    }
    let mut total = Recorder::default();
    for task in tasks {
        total.merge(task.await.context("client task panicked")?);
    }
    Ok((total, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake {
        fail_every: u64,
    }

    impl Client for Fake {
        async fn call(&mut self, seq: u64) -> Result<Outcome, tonic::Status> {
            tokio::task::yield_now().await;
            if seq.is_multiple_of(self.fail_every) {
                Err(tonic::Status::unavailable("down"))
            } else if seq.is_multiple_of(2) {
                Ok(Outcome::Noted("even"))
            } else {
                Ok(Outcome::Done)
            }
        }
    }

    #[tokio::test]
    async fn total_counts_every_request_once_across_clients() {
        let clients = (0..7).map(|_| Fake { fail_every: 10 }).collect();
        let (rec, _) = run(clients, Stop::Total(100), 0.0, &Progress::hidden()).await.unwrap();
        assert_eq!(rec.hist.len(), 90);
        assert_eq!(rec.errors["Unavailable: down"], 10);
        // Even numbers that are not multiples of 10: 50 - 10.
        assert_eq!(rec.notes["even"], 40);
    }

    #[tokio::test]
    async fn rate_limits_the_run() {
        let clients = (0..4).map(|_| Fake { fail_every: u64::MAX }).collect();
        let (rec, took) = run(clients, Stop::Total(21), 200.0, &Progress::hidden()).await.unwrap();
        assert_eq!(rec.hist.len() + rec.errors.values().sum::<u64>(), 21);
        // 21 requests at 200/s: the last starts 100 ms after the first.
        assert!(took >= Duration::from_millis(100), "took {took:?}");
    }

    #[tokio::test]
    async fn duration_stops_the_run() {
        let clients = (0..2).map(|_| Fake { fail_every: u64::MAX }).collect();
        let (rec, took) = run(
            clients,
            Stop::Duration(Duration::from_millis(50)),
            1000.0,
            &Progress::hidden(),
        )
        .await
        .unwrap();
        assert!(!rec.hist.is_empty());
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(5),
            "took {took:?}"
        );
    }
}
