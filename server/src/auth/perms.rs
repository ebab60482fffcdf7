//! Permission checks, as etcd's `isOpPermitted`, `IsAdminPermitted` and
//! `range_perm_cache.go`: a user's roles' key permissions merged into one
//! set of read intervals and one of write intervals; a single key is
//! permitted when an interval holds it, a range when the intervals cover it
//! without a gap. Intervals are etcd's "bytes affine" ones: an empty end is
//! above every key, so a permission or range ending in `\0` (from-key)
//! reaches to the end of the key space.
//!
//! Every check reads the store from the view it is given: in apply, the
//! state as of the previous entry, so every member decides alike.

use std::cmp::Ordering;

use timon_proto::authpb::permission::Type as PermType;
use timon_proto::authpb::User;

use super::{state, AuthError, AuthInfo, ROOT};
use crate::storage::KvRead;

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// etcd's `BytesAffineComparable`: the empty key is above every other.
fn affine(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.cmp(b),
    }
}

/// A half-open interval `[begin, end)`; an empty end is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    /// The single key `key`: `[key, key\0)`.
    fn point(key: &[u8]) -> Self {
        let mut end = key.to_vec();
        end.push(0);
        Interval {
            begin: key.to_vec(),
            end,
        }
    }

    fn overlaps(&self, other: &Interval) -> bool {
        affine(&self.begin, &other.end) == Ordering::Less && affine(&other.begin, &self.end) == Ordering::Less
    }
}

/// One user's merged permissions (etcd's `unifiedRangePermissions`).
#[derive(Debug, Default)]
pub struct Merged {
    read: Vec<Interval>,
    write: Vec<Interval>,
}

impl Merged {
    /// The permissions of `user`'s roles; roles that do not exist are skipped.
    pub fn of(view: &dyn KvRead, user: &User) -> Result<Self, AuthError> {
        let mut merged = Merged::default();
        for name in &user.roles {
            let Some(role) = state::role(view, name)? else {
                continue;
            };
            for perm in &role.key_permission {
                let ivl = if perm.range_end.is_empty() {
                    Interval::point(&perm.key)
                } else {
                    let end = if perm.range_end == [0] {
                        Vec::new()
                    } else {
                        perm.range_end.clone()
                    };
                    Interval {
                        begin: perm.key.clone(),
                        end,
                    }
                };
                match PermType::try_from(perm.perm_type).unwrap_or(PermType::Read) {
                    PermType::Read => merged.read.push(ivl),
                    PermType::Write => merged.write.push(ivl),
                    PermType::Readwrite => {
                        merged.read.push(ivl.clone());
                        merged.write.push(ivl);
                    }
                }
            }
        }
        Ok(merged)
    }

    /// Whether `access` to `key` (and up to `range_end`, if not empty) is
    /// permitted (etcd's `checkKeyPoint` / `checkKeyInterval`).
    pub fn permits(&self, key: &[u8], range_end: &[u8], access: Access) -> bool {
        let ivls = match access {
            Access::Read => &self.read,
            Access::Write => &self.write,
        };
        if range_end.is_empty() {
            let p = Interval::point(key);
            return ivls.iter().any(|i| i.overlaps(&p));
        }
        let end = if range_end == [0] { &[][..] } else { range_end };
        let want = Interval {
            begin: key.to_vec(),
            end: end.to_vec(),
        };
        covers(ivls, &want)
    }
}

/// etcd's `intervalTree.Contains`: the intervals overlapping `want`, in
/// order of their beginnings, join without a gap and span all of it.
fn covers(ivls: &[Interval], want: &Interval) -> bool {
    let mut hit: Vec<&Interval> = ivls.iter().filter(|i| i.overlaps(want)).collect();
    hit.sort_by(|a, b| affine(&a.begin, &b.begin).then_with(|| affine(&a.end, &b.end)));
    let Some(first) = hit.first() else {
        return false;
    };
    let mut max_end = &first.end;
    for i in &hit[1..] {
        if affine(max_end, &i.begin) == Ordering::Less {
            return false;
        }
        if affine(&i.end, max_end) == Ordering::Greater {
            max_end = &i.end;
        }
    }
    affine(max_end, &want.end) != Ordering::Less && affine(&first.begin, &want.begin) != Ordering::Greater
}

pub fn has_root_role(user: &User) -> bool {
    user.roles.binary_search_by(|r| r.as_str().cmp(ROOT)).is_ok()
}

/// etcd's `isOpPermitted`: nothing to check while auth is disabled; else
/// the request needs a user (`user name is empty`), a token not older than
/// the store (`revision of auth store is old`), and the user's permission.
pub fn check(view: &dyn KvRead, who: &AuthInfo, key: &[u8], range_end: &[u8], access: Access) -> Result<(), AuthError> {
    Checker::new(view, who)?.check(key, range_end, access)
}

/// [`check`] for many keys of one request: the store is read once.
pub enum Checker {
    /// Auth is disabled: everything is permitted.
    Disabled,
    /// Every check fails with this (no user, an old token, an unknown user).
    Refuse(AuthError),
    /// The user has the root role.
    Root,
    Perms(Merged),
}

impl Checker {
    pub fn new(view: &dyn KvRead, who: &AuthInfo) -> Result<Self, AuthError> {
        if !state::enabled(view)? {
            return Ok(Checker::Disabled);
        }
        if who.revision == 0 {
            return Ok(Checker::Refuse(AuthError::UserEmpty));
        }
        if who.revision < state::revision(view)? {
            return Ok(Checker::Refuse(AuthError::AuthOldRevision));
        }
        Ok(match state::user(view, &who.username)? {
            None => Checker::Refuse(AuthError::PermissionDenied),
            Some(u) if has_root_role(&u) => Checker::Root,
            Some(u) => Checker::Perms(Merged::of(view, &u)?),
        })
    }

    pub fn check(&self, key: &[u8], range_end: &[u8], access: Access) -> Result<(), AuthError> {
        match self {
            Checker::Disabled | Checker::Root => Ok(()),
            Checker::Refuse(e) => Err(e.clone()),
            Checker::Perms(m) if m.permits(key, range_end, access) => Ok(()),
            Checker::Perms(_) => Err(AuthError::PermissionDenied),
        }
    }

    pub fn disabled(&self) -> bool {
        matches!(self, Checker::Disabled)
    }
}

/// etcd's `IsAdminPermitted`: with auth enabled, the user must exist and
/// have the root role.
pub fn check_admin(view: &dyn KvRead, who: Option<&AuthInfo>) -> Result<(), AuthError> {
    if !state::enabled(view)? {
        return Ok(());
    }
    let who = match who {
        Some(w) if !w.username.is_empty() => w,
        _ => return Err(AuthError::UserEmpty),
    };
    match state::user(view, &who.username)? {
        None => Err(AuthError::UserNotFound),
        Some(u) if has_root_role(&u) => Ok(()),
        Some(_) => Err(AuthError::PermissionDenied),
    }
}

/// Whether user `name` has role `role` (etcd's `HasRole`).
pub fn has_role(view: &dyn KvRead, name: &str, role: &str) -> Result<bool, AuthError> {
    Ok(state::user(view, name)?.is_some_and(|u| u.roles.iter().any(|r| r == role)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use timon_proto::authpb::Permission;

    fn merged(perms: &[(&[u8], &[u8], PermType)]) -> Merged {
        let mut m = Merged::default();
        for (k, e, t) in perms {
            let p = Permission {
                perm_type: *t as i32,
                key: k.to_vec(),
                range_end: e.to_vec(),
            };
            let ivl = if p.range_end.is_empty() {
                Interval::point(&p.key)
            } else if p.range_end == [0] {
                Interval {
                    begin: p.key.clone(),
                    end: vec![],
                }
            } else {
                Interval {
                    begin: p.key.clone(),
                    end: p.range_end.clone(),
                }
            };
            if *t != PermType::Write {
                m.read.push(ivl.clone());
            }
            if *t != PermType::Read {
                m.write.push(ivl);
            }
        }
        m
    }

    #[test]
    fn single_key_permission_allows_only_that_key() {
        let m = merged(&[(b"foo", b"", PermType::Readwrite)]);
        assert!(m.permits(b"foo", b"", Access::Read));
        assert!(m.permits(b"foo", b"", Access::Write));
        assert!(!m.permits(b"foo1", b"", Access::Read));
        assert!(!m.permits(b"fo", b"", Access::Read));
        // The range [foo, foo\0) is the key itself.
        assert!(m.permits(b"foo", b"foo\0", Access::Read));
        assert!(!m.permits(b"foo", b"fop", Access::Read));
    }

    #[test]
    fn prefix_permission_covers_ranges_inside_it() {
        // etcdctl role grant-permission --prefix r readwrite foo
        let m = merged(&[(b"foo", b"fop", PermType::Read)]);
        assert!(m.permits(b"foo/a", b"", Access::Read));
        assert!(m.permits(b"foo", b"fop", Access::Read));
        assert!(m.permits(b"foo/", b"foo0", Access::Read));
        assert!(!m.permits(b"foo", b"foq", Access::Read));
        assert!(!m.permits(b"fop", b"", Access::Read));
        assert!(!m.permits(b"foo/a", b"", Access::Write));
        assert!(!m.permits(b"foo", b"\0", Access::Read));
    }

    #[test]
    fn from_key_permission_reaches_the_end() {
        let m = merged(&[(b"m", b"\0", PermType::Write)]);
        assert!(m.permits(b"zzz", b"", Access::Write));
        assert!(m.permits(b"m", b"\0", Access::Write));
        assert!(m.permits(b"x", b"\0", Access::Write));
        assert!(!m.permits(b"a", b"\0", Access::Write));
        assert!(!m.permits(b"l", b"", Access::Write));
    }

    #[test]
    fn adjacent_permissions_join_but_gaps_do_not() {
        let m = merged(&[(b"a", b"c", PermType::Read), (b"c", b"e", PermType::Read)]);
        assert!(m.permits(b"a", b"e", Access::Read));
        let gap = merged(&[(b"a", b"c", PermType::Read), (b"d", b"e", PermType::Read)]);
        assert!(!gap.permits(b"a", b"e", Access::Read));
        assert!(gap.permits(b"d", b"e", Access::Read));
    }
}
