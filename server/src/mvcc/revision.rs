//! Revisions and their on-disk key encoding (etcd's layout, so a data dir's
//! key order is the revision order).
//!
//! A key in [`Cf::Kv`](crate::storage::Cf::Kv) is 17 bytes: `main` as 8
//! bytes big-endian, a `'_'`, `sub` as 8 bytes big-endian. A deletion appends
//! one more byte, `'t'`, marking the revision as a tombstone. Big-endian with
//! non-negative numbers sorts bytewise exactly as `(main, sub)` sorts.

/// Length of an encoded revision without the tombstone mark.
pub const REV_BYTES_LEN: usize = 8 + 1 + 8;
/// Length of an encoded tombstone revision.
pub const MARKED_REV_BYTES_LEN: usize = REV_BYTES_LEN + 1;
const TOMBSTONE_MARK: u8 = b't';

/// One change of the key space. All changes of one write request share
/// `main`; `sub` numbers them 0..n in the order they were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The 17-byte storage key of this revision.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MARKED_REV_BYTES_LEN);
        b.extend_from_slice(&(self.main as u64).to_be_bytes());
        b.push(b'_');
        b.extend_from_slice(&(self.sub as u64).to_be_bytes());
        b
    }

    /// The 18-byte storage key of this revision as a tombstone.
    pub fn to_tombstone_bytes(self) -> Vec<u8> {
        let mut b = self.to_bytes();
        b.push(TOMBSTONE_MARK);
        b
    }

    /// Decodes a storage key (marked or not). `None` when it is too short
    /// to be a revision.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < REV_BYTES_LEN {
            return None;
        }
        let main = u64::from_be_bytes(b[0..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(b[9..17].try_into().ok()?) as i64;
        Some(Self { main, sub })
    }
}

/// Whether a storage key is a tombstone (a deletion) rather than a value.
pub fn is_tombstone(b: &[u8]) -> bool {
    b.len() == MARKED_REV_BYTES_LEN && b[MARKED_REV_BYTES_LEN - 1] == TOMBSTONE_MARK
}

/// The smallest storage key with main revision `main`: scans up to (but not
/// including) it cover every revision below `main`.
pub fn main_rev_start(main: i64) -> Vec<u8> {
    Revision::new(main, 0).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(2, 0),
            Revision::new(256, 3),
        ];
        for w in revs.windows(2) {
            assert!(w[0].to_bytes() < w[1].to_bytes());
            assert!(w[0].to_tombstone_bytes() < w[1].to_bytes());
        }
        for r in revs {
            assert_eq!(Revision::from_bytes(&r.to_bytes()), Some(r));
            assert_eq!(Revision::from_bytes(&r.to_tombstone_bytes()), Some(r));
            assert!(!is_tombstone(&r.to_bytes()));
            assert!(is_tombstone(&r.to_tombstone_bytes()));
        }
        assert_eq!(Revision::new(5, 2).to_bytes(), b"\0\0\0\0\0\0\0\x05_\0\0\0\0\0\0\0\x02");
        assert_eq!(Revision::from_bytes(b"short"), None);
    }
}
