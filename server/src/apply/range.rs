//! Range requests (etcd's `applierV3backend.Range`): used inside txns and by
//! `rpc/` for reads that do not go through raft.

use std::cmp::Ordering;

use timon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use timon_proto::etcdserverpb::{RangeRequest, RangeResponse};
use timon_proto::mvccpb::KeyValue;

use super::{header, EtcdError};
use crate::mvcc::{RangeOptions, ReadView};

/// Reads `[key, range_end)` as etcd does:
/// - `count` is the number of keys in the range at the revision, computed
///   before the min/max revision filters and ignoring `limit`;
/// - sorting or filtering fetches the whole range and truncates afterwards;
///   otherwise one key more than `limit` is fetched to set `more`;
/// - a sort target other than KEY with order NONE sorts ascending (keys come
///   sorted by key already). Ties keep key order (a stable sort);
/// - the header revision is the view's revision, not the one read at.
pub fn range(view: &impl ReadView, r: &RangeRequest) -> Result<RangeResponse, EtcdError> {
    let filtered =
        r.min_mod_revision != 0 || r.max_mod_revision != 0 || r.min_create_revision != 0 || r.max_create_revision != 0;
    let mut limit = r.limit;
    if r.sort_order != SortOrder::None as i32 || filtered {
        limit = 0;
    }
    if limit > 0 {
        // Saturating: a huge limit still means "everything" (etcd wraps to a
        // negative limit, which means the same).
        limit = limit.saturating_add(1);
    }
    let opts = RangeOptions {
        limit,
        rev: r.revision,
        count_only: r.count_only,
        // Sorting by value needs the values.
        keys_only: r.keys_only && r.sort_target != SortTarget::Value as i32,
    };
    let rr = view.range(&r.key, &r.range_end, opts)?;
    let mut kvs = rr.kvs;

    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }

    sort(&mut kvs, r.sort_order, r.sort_target);

    let mut more = false;
    if r.limit > 0 && kvs.len() as i64 > r.limit {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: header(rr.rev),
        kvs,
        more,
        count: rr.count,
    })
}

/// Sorts by `target` in `order`. Unknown enum values sort nothing (etcd
/// would pick no sorter).
fn sort(kvs: &mut [KeyValue], order: i32, target: i32) {
    let Ok(target) = SortTarget::try_from(target) else {
        return;
    };
    let mut order = SortOrder::try_from(order).ok();
    if target != SortTarget::Key && order == Some(SortOrder::None) {
        order = Some(SortOrder::Ascend);
    }
    let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        Some(SortOrder::Ascend) => kvs.sort_by(cmp),
        Some(SortOrder::Descend) => kvs.sort_by(|a, b| cmp(b, a)),
        _ => {}
    }
}
