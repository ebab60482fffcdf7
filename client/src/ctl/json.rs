//! etcd messages rendered the way etcdctl's `-w json` renders them: Go's
//! `encoding/json` applied to the gogo-protobuf structs. That means the Go
//! struct's field order, `omitempty` on every scalar (zero values vanish),
//! bytes as padded base64, 64-bit integers as bare numbers, oneofs as
//! `{"Response":{"ResponsePut":{...}}}`, and Go's string escaping.

use base64::Engine as _;
use timon_proto::etcdserverpb::response_op::Response;
use timon_proto::etcdserverpb::{
    DeleteRangeResponse, Member, MemberAddResponse, MemberListResponse, PutResponse, RangeResponse, ResponseHeader,
    ResponseOp, StatusResponse, TxnResponse,
};
use timon_proto::mvccpb::{Event, KeyValue};

/// A JSON object built field by field in a fixed order.
pub struct Object {
    text: String,
    empty: bool,
}

impl Default for Object {
    fn default() -> Self {
        Object {
            text: String::from("{"),
            empty: true,
        }
    }
}

impl Object {
    /// Adds a field whose value is already JSON.
    pub fn raw(&mut self, name: &str, json: &str) -> &mut Self {
        if !self.empty {
            self.text.push(',');
        }
        self.empty = false;
        self.text.push_str(&string(name.as_bytes()));
        self.text.push(':');
        self.text.push_str(json);
        self
    }

    /// `omitempty` integer.
    pub fn int(&mut self, name: &str, value: impl Into<i128>) -> &mut Self {
        let value = value.into();
        if value != 0 {
            self.raw(name, &value.to_string());
        }
        self
    }

    /// `omitempty` bool.
    pub fn flag(&mut self, name: &str, value: bool) -> &mut Self {
        if value {
            self.raw(name, "true");
        }
        self
    }

    /// A bool that is printed even when false.
    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.raw(name, if value { "true" } else { "false" })
    }

    /// `omitempty` `[]byte`, as base64.
    pub fn bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        if !value.is_empty() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            self.raw(name, &format!("\"{encoded}\""));
        }
        self
    }

    /// `omitempty` string.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.raw(name, &string(value.as_bytes()));
        }
        self
    }

    /// A string that is printed even when empty.
    pub fn text_always(&mut self, name: &str, value: &str) -> &mut Self {
        self.raw(name, &string(value.as_bytes()))
    }

    /// `omitempty` slice, each element already JSON.
    pub fn list(&mut self, name: &str, items: impl IntoIterator<Item = String>) -> &mut Self {
        let items: Vec<String> = items.into_iter().collect();
        if !items.is_empty() {
            self.raw(name, &array(items));
        }
        self
    }

    /// `omitempty` pointer to a message.
    pub fn message(&mut self, name: &str, json: Option<String>) -> &mut Self {
        if let Some(json) = json {
            self.raw(name, &json);
        }
        self
    }

    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.text);
        text.push('}');
        text
    }
}

/// A JSON array of already-rendered elements.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    format!("[{}]", items.join(","))
}

/// A Go `encoding/json` string: invalid UTF-8 becomes U+FFFD, and `<`, `>`,
/// `&`, U+2028 and U+2029 are escaped as Go does for HTML safety.
pub fn string(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn header(header: &ResponseHeader) -> String {
    Object::default()
        .int("cluster_id", header.cluster_id)
        .int("member_id", header.member_id)
        .int("revision", header.revision)
        .int("raft_term", header.raft_term)
        .finish()
}

pub fn key_value(kv: &KeyValue) -> String {
    Object::default()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .finish()
}

pub fn range(response: &RangeResponse) -> String {
    Object::default()
        .message("header", response.header.as_ref().map(header))
        .list("kvs", response.kvs.iter().map(key_value))
        .flag("more", response.more)
        .int("count", response.count)
        .finish()
}

pub fn put(response: &PutResponse) -> String {
    Object::default()
        .message("header", response.header.as_ref().map(header))
        .message("prev_kv", response.prev_kv.as_ref().map(key_value))
        .finish()
}

pub fn delete(response: &DeleteRangeResponse) -> String {
    Object::default()
        .message("header", response.header.as_ref().map(header))
        .int("deleted", response.deleted)
        .list("prev_kvs", response.prev_kvs.iter().map(key_value))
        .finish()
}

pub fn txn(response: &TxnResponse) -> String {
    Object::default()
        .message("header", response.header.as_ref().map(header))
        .flag("succeeded", response.succeeded)
        .list("responses", response.responses.iter().map(response_op))
        .finish()
}

/// A oneof is a Go interface field without a json tag: the field name
/// `Response`, holding the wrapper struct whose only field is named after
/// the variant.
fn response_op(op: &ResponseOp) -> String {
    let inner = match &op.response {
        None => "null".to_owned(),
        Some(Response::ResponseRange(r)) => Object::default().raw("ResponseRange", &range(r)).finish(),
        Some(Response::ResponsePut(r)) => Object::default().raw("ResponsePut", &put(r)).finish(),
        Some(Response::ResponseDeleteRange(r)) => Object::default().raw("ResponseDeleteRange", &delete(r)).finish(),
        Some(Response::ResponseTxn(r)) => Object::default().raw("ResponseTxn", &txn(r)).finish(),
    };
    Object::default().raw("Response", &inner).finish()
}

/// A watch response as etcdctl prints it: clientv3's `WatchResponse`
/// struct, whose fields have no json tags (so capitalised names, no
/// `omitempty`), a header that is a value (`{}` when absent), and `null`
/// events for the responses clientv3 makes up for a closed stream.
pub struct WatchJson<'a> {
    pub header: Option<&'a ResponseHeader>,
    pub events: Option<&'a [Event]>,
    pub compact_revision: i64,
    pub canceled: bool,
    pub created: bool,
}

pub fn watch(response: &WatchJson<'_>) -> String {
    let events = match response.events {
        Some(events) => array(events.iter().map(event)),
        None => "null".to_owned(),
    };
    Object::default()
        .raw("Header", &response.header.map_or_else(|| "{}".to_owned(), header))
        .raw("Events", &events)
        .raw("CompactRevision", &response.compact_revision.to_string())
        .bool("Canceled", response.canceled)
        .bool("Created", response.created)
        .finish()
}

/// mvccpb's `Event`: the type is a bare number, omitted for PUT (0).
pub fn event(event: &Event) -> String {
    Object::default()
        .int("type", event.r#type)
        .message("kv", event.kv.as_ref().map(key_value))
        .message("prev_kv", event.prev_kv.as_ref().map(key_value))
        .finish()
}

pub fn status(response: &StatusResponse) -> String {
    let downgrade = response.downgrade_info.as_ref().map(|d| {
        Object::default()
            .flag("enabled", d.enabled)
            .text("targetVersion", &d.target_version)
            .finish()
    });
    Object::default()
        .message("header", response.header.as_ref().map(header))
        .text("version", &response.version)
        .int("dbSize", response.db_size)
        .int("leader", response.leader)
        .int("raftIndex", response.raft_index)
        .int("raftTerm", response.raft_term)
        .int("raftAppliedIndex", response.raft_applied_index)
        .list("errors", response.errors.iter().map(|e| string(e.as_bytes())))
        .int("dbSizeInUse", response.db_size_in_use)
        .flag("isLearner", response.is_learner)
        .text("storageVersion", &response.storage_version)
        .int("dbSizeQuota", response.db_size_quota)
        .message("downgradeInfo", downgrade)
        .finish()
}

pub fn member(member: &Member) -> String {
    let strings = |items: &[String]| items.iter().map(|s| string(s.as_bytes())).collect::<Vec<_>>();
    Object::default()
        .int("ID", member.id)
        .text("name", &member.name)
        .list("peerURLs", strings(&member.peer_ur_ls))
        .list("clientURLs", strings(&member.client_ur_ls))
        .flag("isLearner", member.is_learner)
        .finish()
}

pub fn member_list(response: &MemberListResponse) -> String {
    members_changed(&response.header, &response.members)
}

pub fn member_add(response: &MemberAddResponse) -> String {
    Object::default()
        .message("header", response.header.as_ref().map(header))
        .message("member", response.member.as_ref().map(member))
        .list("members", response.members.iter().map(member))
        .finish()
}

/// The shape shared by the list, remove, update and promote responses:
/// a header and the members after the change.
pub fn members_changed(response_header: &Option<ResponseHeader>, members: &[Member]) -> String {
    Object::default()
        .message("header", response_header.as_ref().map(header))
        .list("members", members.iter().map(member))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_fields_are_omitted_and_bytes_are_base64() {
        let kv = KeyValue {
            key: b"a".to_vec(),
            create_revision: 4,
            mod_revision: 4,
            version: 1,
            value: Vec::new(),
            lease: 0,
        };
        assert_eq!(
            key_value(&kv),
            r#"{"key":"YQ==","create_revision":4,"mod_revision":4,"version":1}"#
        );
    }

    #[test]
    fn u64_ids_are_printed_in_full() {
        let h = ResponseHeader {
            cluster_id: 15118495548433857066,
            member_id: 0,
            revision: 5,
            raft_term: 2,
        };
        assert_eq!(
            header(&h),
            r#"{"cluster_id":15118495548433857066,"revision":5,"raft_term":2}"#
        );
    }

    #[test]
    fn txn_responses_use_go_oneof_shape() {
        let response = TxnResponse {
            header: None,
            succeeded: true,
            responses: vec![ResponseOp {
                response: Some(Response::ResponsePut(PutResponse {
                    header: Some(ResponseHeader {
                        revision: 7,
                        ..ResponseHeader::default()
                    }),
                    prev_kv: None,
                })),
            }],
        };
        assert_eq!(
            txn(&response),
            r#"{"succeeded":true,"responses":[{"Response":{"ResponsePut":{"header":{"revision":7}}}}]}"#
        );
    }

    #[test]
    fn watch_responses_use_clientv3_struct_shape() {
        let delete = Event {
            r#type: 1,
            kv: Some(KeyValue {
                key: b"a".to_vec(),
                mod_revision: 4,
                ..KeyValue::default()
            }),
            prev_kv: None,
        };
        let h = ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 4,
            raft_term: 2,
        };
        let events = [delete];
        let response = WatchJson {
            header: Some(&h),
            events: Some(&events),
            compact_revision: 0,
            canceled: false,
            created: false,
        };
        assert_eq!(
            watch(&response),
            r#"{"Header":{"cluster_id":1,"member_id":2,"revision":4,"raft_term":2},"Events":[{"type":1,"kv":{"key":"YQ==","mod_revision":4}}],"CompactRevision":0,"Canceled":false,"Created":false}"#
        );
        let closed = WatchJson {
            header: None,
            events: None,
            compact_revision: 0,
            canceled: true,
            created: false,
        };
        assert_eq!(
            watch(&closed),
            r#"{"Header":{},"Events":null,"CompactRevision":0,"Canceled":true,"Created":false}"#
        );
    }

    #[test]
    fn strings_escape_like_go() {
        assert_eq!(
            string(b"a<b>&\"\x01\xff"),
            "\"a\\u003cb\\u003e\\u0026\\\"\\u0001\u{fffd}\""
        );
    }
}
