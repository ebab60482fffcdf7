//! Distributed locks through the Lock service (etcd's `v3lockpb`), which
//! any etcd 3.4+ and timon serve.
//!
//! [`Client::lock`] waits for as long as the lock is held by others, so it
//! is not bounded by the request timeout and is sent once, never retried:
//! a retry is safe for the server (the same lease gets the same key back)
//! but a caller that gave up should unlock the key itself. The answer's
//! key is the lock's ownership (pass it to [`Client::unlock`]) and its
//! header revision is a fencing token that rises with every acquisition.

use timon_proto::v3lockpb::lock_client::LockClient;
use timon_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::retry::{self, Kind};

impl Client {
    /// Waits until lock `name` is held under `lease` (which must exist and
    /// be kept alive, e.g. by a [`Session`](crate::Session)) and answers
    /// the owning key and the acquisition's header.
    pub async fn lock(&self, name: impl Into<Vec<u8>>, lease: i64) -> Result<LockResponse> {
        let request = LockRequest {
            name: name.into(),
            lease,
        };
        let active = self.active();
        LockClient::new(active.channel)
            .lock(retry::request(request, true))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| Error::from_call(status, self.endpoint_uri(active.index)))
    }

    /// Releases the lock owned by `key` (deletes it).
    pub async fn unlock(&self, key: impl Into<Vec<u8>>) -> Result<UnlockResponse> {
        let key = key.into();
        self.call(Kind::Write, |channel| {
            let request = UnlockRequest { key: key.clone() };
            async move { LockClient::new(channel).unlock(retry::request(request, true)).await }
        })
        .await
    }
}
