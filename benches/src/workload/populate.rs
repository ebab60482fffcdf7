//! Writes the keys a workload reads or updates before its measured phase,
//! with `--clients` puts in flight over the pool's channels. Unmeasured.

use anyhow::Context;
use futures::{stream, StreamExt, TryStreamExt};
use timon_proto::etcdserverpb::PutRequest;

use crate::conns::Pool;
use crate::keys;

/// Puts `prefix` + index for every index of `0..space`, each with `value`.
pub async fn keys(
    pool: &Pool,
    concurrency: usize,
    prefix: &[u8],
    size: usize,
    space: u64,
    value: &[u8],
) -> anyhow::Result<()> {
    stream::iter(0..space)
        .map(|i| {
            let mut kv = pool.kv(i as usize);
            let req = PutRequest {
                key: keys::key(prefix, size, i),
                value: value.to_vec(),
                ..Default::default()
            };
            async move { kv.put(req).await.with_context(|| format!("populate key {i}")) }
        })
        .buffer_unordered(concurrency.max(1))
        .try_for_each(|_| async { Ok(()) })
        .await
}
