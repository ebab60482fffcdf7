//! etcd's alarms (`api/v3alarm` and the capped and corrupt appliers of
//! `etcdserver/apply.go`): which members raised NOSPACE or CORRUPT, kept in
//! the meta column family so every member, and every snapshot, agrees.
//!
//! Layout ([`meta::ALARM`]): `alarm/` followed by the `AlarmMember`'s
//! protobuf bytes (etcd's alarm bucket key) → empty.
//!
//! While a NOSPACE alarm is active, requests that grow the store fail with
//! `etcdserver: mvcc: database space exceeded`: Put, a Txn with a put in
//! either branch, LeaseGrant. Deletes, reads and compaction go on, so an
//! operator can make room, defragment and disarm. While a CORRUPT alarm is
//! active every KV and lease write fails with `etcdserver: corrupt
//! cluster`. CORRUPT is checked first, as etcd stacks its appliers.

use prost::Message;
use timon_proto::etcdserverpb::alarm_request::AlarmAction;
use timon_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType};
use timon_proto::timonpb::internal_raft_request::Request;

use super::EtcdError;
use crate::mvcc::WriteTxn;
use crate::storage::keys::{meta, prefix_end};
use crate::storage::{Cf, KvRead, Scan, StorageError};

fn key(m: &AlarmMember) -> Vec<u8> {
    [meta::ALARM, &m.encode_to_vec()].concat()
}

/// Every active alarm, ordered by (member, type) (etcd lists a Go map, in
/// no fixed order).
pub fn list(view: &dyn KvRead) -> Result<Vec<AlarmMember>, StorageError> {
    let mut out = Vec::new();
    let mut failure = None;
    let end = prefix_end(meta::ALARM);
    view.scan(Cf::Meta, meta::ALARM, Some(&end), &mut |k, _| {
        match AlarmMember::decode(&k[meta::ALARM.len()..]) {
            Ok(m) => out.push(m),
            Err(e) => {
                failure = Some(StorageError(format!("corrupt alarm key {k:?}: {e}")));
                return Scan::Stop;
            }
        }
        Scan::Continue
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    out.sort_by_key(|m| (m.member_id, m.alarm));
    Ok(out)
}

/// Applies an AlarmRequest as etcd's `applierV3backend.Alarm`: GET lists
/// the alarms of a type (NONE: all), ACTIVATE adds one (answering it, or
/// the one already there), DEACTIVATE removes one (answering it, or
/// nothing when it was not active).
pub fn alarm(txn: &mut WriteTxn<'_>, req: &AlarmRequest) -> Result<AlarmResponse, EtcdError> {
    let active = list(txn.engine()).map_err(|e| EtcdError::Internal(e.to_string()))?;
    let asked = AlarmMember {
        member_id: req.member_id,
        alarm: req.alarm,
    };
    let alarms = match AlarmAction::try_from(req.action) {
        Ok(AlarmAction::Get) => active
            .into_iter()
            .filter(|m| req.alarm == AlarmType::None as i32 || m.alarm == req.alarm)
            .collect(),
        Ok(AlarmAction::Activate) => {
            if !active.contains(&asked) {
                txn.staged_mut().put(Cf::Meta, key(&asked), Vec::new());
                if !active.iter().any(|m| m.alarm == asked.alarm) {
                    tracing::warn!(alarm = alarm_name(asked.alarm), from = %format!("{:x}", asked.member_id), "alarm raised");
                }
            }
            vec![asked]
        }
        Ok(AlarmAction::Deactivate) => {
            if !active.contains(&asked) {
                vec![]
            } else {
                txn.staged_mut().delete(Cf::Meta, key(&asked));
                if active.iter().filter(|m| m.alarm == asked.alarm).count() == 1 {
                    tracing::warn!(alarm = alarm_name(asked.alarm), from = %format!("{:x}", asked.member_id), "alarm disarmed");
                }
                vec![asked]
            }
        }
        // An action this version does not know: etcd answers nothing.
        Err(_) => vec![],
    };
    Ok(AlarmResponse { header: None, alarms })
}

/// Refuses `req` as etcd's capped (NOSPACE) and corrupt (CORRUPT) appliers
/// do while those alarms are active.
pub fn gate(view: &dyn KvRead, req: &Request) -> Result<(), EtcdError> {
    let gated = matches!(
        req,
        Request::Put(_)
            | Request::DeleteRange(_)
            | Request::Txn(_)
            | Request::Compaction(_)
            | Request::LeaseGrant(_)
            | Request::LeaseRevoke(_)
    );
    if !gated {
        return Ok(());
    }
    let active = list(view).map_err(|e| EtcdError::Internal(e.to_string()))?;
    if active.is_empty() {
        return Ok(());
    }
    if active.iter().any(|m| m.alarm == AlarmType::Corrupt as i32) {
        return Err(EtcdError::Corrupt);
    }
    if active.iter().any(|m| m.alarm == AlarmType::Nospace as i32) {
        let grows = match req {
            Request::Put(_) | Request::LeaseGrant(_) => true,
            Request::Txn(t) => super::quota::txn_cost(t) > 0,
            _ => false,
        };
        if grows {
            return Err(EtcdError::NoSpace);
        }
    }
    Ok(())
}

/// etcd's name of an alarm type, as its logs and `alarm list` print it.
pub fn alarm_name(alarm: i32) -> &'static str {
    AlarmType::try_from(alarm).map_or("UNKNOWN", |t| t.as_str_name())
}
