//! Keys and values. A key is an optional prefix followed by the key's index
//! in the key space, zero-padded to `--key-size` bytes, so keys sort in index
//! order and have exactly the requested size. Sequential mode walks the key
//! space in order; otherwise each client draws uniformly from its own seeded
//! generator (runs are repeatable).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Picks the keys of one client.
pub struct KeyGen {
    prefix: Vec<u8>,
    size: usize,
    space: u64,
    sequential: bool,
    rng: StdRng,
}

impl KeyGen {
    /// `client` seeds the random generator, so clients draw different keys.
    pub fn new(prefix: &[u8], size: usize, space: u64, sequential: bool, client: usize) -> KeyGen {
        KeyGen {
            prefix: prefix.to_vec(),
            size,
            space: space.max(1),
            sequential,
            rng: StdRng::seed_from_u64(0x7140_6e00 + client as u64),
        }
    }

    /// The index request `seq` uses.
    pub fn index(&mut self, seq: u64) -> u64 {
        if self.sequential {
            seq % self.space
        } else {
            self.rng.gen_range(0..self.space)
        }
    }

    /// The key of index `i`.
    pub fn key_at(&self, i: u64) -> Vec<u8> {
        key(&self.prefix, self.size, i)
    }

    /// The key request `seq` uses.
    pub fn next(&mut self, seq: u64) -> Vec<u8> {
        let i = self.index(seq);
        self.key_at(i)
    }
}

/// `prefix` + `i` zero-padded to `size` bytes (longer if `i` needs more digits).
pub fn key(prefix: &[u8], size: usize, i: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(format!("{i:0size$}").as_bytes());
    k
}

/// A value of `size` bytes.
pub fn value(size: usize) -> Vec<u8> {
    vec![b'v'; size]
}

/// The smallest key greater than every key starting with `prefix`
/// (etcd's `clientv3.GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size_and_sort_by_index() {
        assert_eq!(key(b"", 8, 42), b"00000042");
        assert_eq!(key(b"/p/", 3, 7), b"/p/007");
        assert!(key(b"", 8, 9) < key(b"", 8, 10));
    }

    #[test]
    fn sequential_keys_wrap_around_the_key_space() {
        let mut g = KeyGen::new(b"", 4, 3, true, 0);
        let idx: Vec<u64> = (0..5).map(|s| g.index(s)).collect();
        assert_eq!(idx, vec![0, 1, 2, 0, 1]);
    }

    #[test]
    fn random_keys_stay_in_the_key_space() {
        let mut g = KeyGen::new(b"", 4, 10, false, 3);
        assert!((0..1000).all(|s| g.index(s) < 10));
    }

    #[test]
    fn prefix_end_is_etcds() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
