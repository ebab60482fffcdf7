//! The steady writer that runs while a defrag (or, in `scale`, a
//! compaction) is measured: `clients`
//! clients (one connection each unless `--conns` says otherwise) share one
//! `--rate` schedule and send each put when it is due without waiting for
//! their earlier puts (open loop, as a fleet of independent writers does).
//! A put's latency counts from when it was due, so when the server stops
//! writing every put due meanwhile shows the wait. When stopped, the writer
//! still sends every put due before the stop and waits for its answer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use timon_proto::etcdserverpb::PutRequest;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::bulk::{self, KeySpace};
use crate::conns::Pool;
use crate::rate::Limiter;
use crate::recorder::status_text;

/// One put.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was due (and sent: puts do not wait for each other).
    pub slot: Instant,
    /// When it was answered.
    pub done: Instant,
    /// The error, if it failed.
    pub error: Option<String>,
}

/// A put that takes this long is an error (the run goes on).
const PUT_TIMEOUT: Duration = Duration::from_secs(600);

pub struct Writer {
    stop_at: Arc<Mutex<Option<Instant>>>,
    tasks: Vec<JoinHandle<Vec<Sample>>>,
    pub started: Instant,
}

impl Writer {
    /// Starts writing `rate` puts/s of `value_size` random bytes to keys
    /// `0..keys` of `space`, from `clients` clients over `pool`.
    pub fn start(pool: &Pool, clients: usize, rate: f64, space: &KeySpace, keys: u64, value_size: usize) -> Writer {
        let started = Instant::now();
        let limiter = Arc::new(Limiter::new(rate));
        let stop_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let tasks = (0..clients)
            .map(|client| {
                let kv = pool.kv(client);
                let (limiter, stop_at, space) = (limiter.clone(), stop_at.clone(), space.clone());
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(0x5734_d000 + client as u64);
                    let mut puts = JoinSet::new();
                    loop {
                        let slot = limiter.reserve().unwrap_or_else(Instant::now);
                        let stopped = |slot| stop_at.lock().expect("stop lock").is_some_and(|at| slot >= at);
                        if stopped(slot) {
                            break;
                        }
                        tokio::time::sleep_until(slot).await;
                        if stopped(slot) {
                            break;
                        }
                        let req = PutRequest {
                            key: space.key(rng.gen_range(0..keys.max(1))),
                            value: bulk::random_value(&mut rng, value_size),
                            ..Default::default()
                        };
                        let mut kv = kv.clone();
                        puts.spawn(async move {
                            let error = match tokio::time::timeout(PUT_TIMEOUT, kv.put(req)).await {
                                Ok(Ok(_)) => None,
                                Ok(Err(status)) => Some(status_text(&status)),
                                Err(_) => Some(format!("no answer within {PUT_TIMEOUT:?}")),
                            };
                            Sample {
                                slot,
                                done: Instant::now(),
                                error,
                            }
                        });
                    }
                    puts.join_all().await
                })
            })
            .collect();
        Writer {
            stop_at,
            tasks,
            started,
        }
    }

    /// Stops scheduling puts from now on, waits for every put due before
    /// now, and returns now and all puts ordered by slot.
    pub async fn stop(self) -> anyhow::Result<(Instant, Vec<Sample>)> {
        let now = Instant::now();
        *self.stop_at.lock().expect("stop lock") = Some(now);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await?);
        }
        all.sort_by_key(|s| s.slot);
        Ok((now, all))
    }
}
