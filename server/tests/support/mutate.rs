//! Hostile request bodies for the fuzz tests: protobuf messages mutated
//! from valid seeds (bit flips, truncation, splices, repeated fields,
//! huge varints and length prefixes, deep nesting, unknown groups, invalid
//! UTF-8) or random, wrapped in gRPC frames that may lie (wrong length,
//! compressed flag, several frames, a body that ends mid-frame or stalls).
//!
//! Every input is a function of (seed, index): [`Input::generate`] rebuilds
//! any input a failure names.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::raw_grpc::{frame, frame_with};

/// One generated call body.
#[derive(Debug, Clone)]
pub struct Input {
    /// The request message (before framing), as the server would decode it.
    pub message: Vec<u8>,
    /// The bytes of the request body.
    pub body: Vec<u8>,
    /// False: the body stalls after `body` instead of ending.
    pub end_stream: bool,
    /// What was done, for reports.
    pub how: String,
}

/// The RNG of input `index` of a run with `seed`.
pub fn rng_for(seed: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.gen_range(0..=max);
    (0..len).map(|_| rng.gen()).collect()
}

/// A protobuf message mutated from `seed` (or random).
pub fn mutate_message(rng: &mut StdRng, seed: &[u8], seeds: &[Vec<u8>]) -> (Vec<u8>, &'static str) {
    let mut m = seed.to_vec();
    let how = match rng.gen_range(0..12) {
        0 => return (random_bytes(rng, 64), "random bytes"),
        1 => return (random_bytes(rng, 4096), "random bytes (long)"),
        2 => {
            for _ in 0..rng.gen_range(1..=8) {
                if !m.is_empty() {
                    let i = rng.gen_range(0..m.len());
                    m[i] ^= 1 << rng.gen_range(0..8);
                }
            }
            "bit flips"
        }
        3 => {
            let cut = rng.gen_range(0..=m.len());
            m.truncate(cut);
            "truncated"
        }
        4 => {
            // A length-delimited field whose length is a huge varint.
            let field = rng.gen_range(1..20u64);
            varint((field << 3) | 2, &mut m);
            varint(rng.gen_range(1u64 << 31..=u64::MAX), &mut m);
            m.extend(random_bytes(rng, 8));
            "huge length varint"
        }
        5 => {
            // A varint field holding an over-long (11-byte) varint.
            let field = rng.gen_range(1..20u64);
            varint(field << 3, &mut m);
            m.extend([0xff; 10]);
            m.push(0x01);
            "over-long varint"
        }
        6 => {
            // The whole message repeated: every field given again.
            let copies = rng.gen_range(2..50);
            m = m.repeat(copies);
            "repeated fields"
        }
        7 => {
            // Nested unknown groups (wire type 3/4), deeper than any
            // decoder's recursion limit.
            let depth = rng.gen_range(50..5000);
            let field = rng.gen_range(20..100u64);
            for _ in 0..depth {
                varint((field << 3) | 3, &mut m);
            }
            if rng.gen_bool(0.5) {
                for _ in 0..depth {
                    varint((field << 3) | 4, &mut m);
                }
            }
            "nested unknown groups"
        }
        8 => {
            // Deeply nested length-delimited messages in field 1..4 (a Txn
            // in a Txn in ...: RequestOp's request_txn is field 4).
            let depth = rng.gen_range(10..300);
            let field = rng.gen_range(1..5u64);
            let mut inner = m.clone();
            for _ in 0..depth {
                let mut outer = Vec::new();
                varint((field << 3) | 2, &mut outer);
                varint(inner.len() as u64, &mut outer);
                outer.extend(inner);
                inner = outer;
            }
            m = inner;
            "deep nesting"
        }
        9 => {
            // Invalid UTF-8 in place of a few bytes (etcd's string fields:
            // names, passwords, URLs).
            for _ in 0..rng.gen_range(1..4) {
                if !m.is_empty() {
                    let i = rng.gen_range(0..m.len());
                    m[i] = [0xff, 0xc3, 0xed, 0x80][rng.gen_range(0..4)];
                }
            }
            "invalid utf-8"
        }
        10 => {
            let other = &seeds[rng.gen_range(0..seeds.len())];
            let a = rng.gen_range(0..=m.len());
            let b = rng.gen_range(0..=other.len());
            m.truncate(a);
            m.extend_from_slice(&other[b..]);
            "splice"
        }
        _ => {
            let at = rng.gen_range(0..=m.len());
            let extra = random_bytes(rng, 16);
            m.splice(at..at, extra);
            "inserted bytes"
        }
    };
    (m, how)
}

/// Frames `message` as a gRPC request body, honestly or not.
pub fn frame_message(rng: &mut StdRng, message: &[u8]) -> (Vec<u8>, bool, &'static str) {
    let len = message.len() as u32;
    match rng.gen_range(0..16) {
        0 => (
            frame_with(0, len.saturating_add(rng.gen_range(1..1000)), message),
            true,
            "length too long, stream ends",
        ),
        1 => (
            frame_with(0, len.saturating_sub(rng.gen_range(1..=len.max(1))), message),
            true,
            "length too short",
        ),
        2 => (frame_with(0, u32::MAX, message), true, "length 4 GiB"),
        3 => (
            frame_with(0, rng.gen_range(1 << 24..1 << 31), message),
            false,
            "huge length, stalls",
        ),
        4 => (frame_with(1, len, message), true, "compressed flag, no compression"),
        5 => (frame_with(rng.gen_range(2..=255), len, message), true, "bad flag byte"),
        6 => {
            let f = frame(message);
            let cut = rng.gen_range(0..f.len().max(1));
            (f[..cut].to_vec(), true, "ends mid-frame")
        }
        7 => {
            let f = frame(message);
            let cut = rng.gen_range(0..f.len().max(1));
            (f[..cut].to_vec(), false, "stalls mid-frame")
        }
        8 => (frame(message).repeat(rng.gen_range(2..5)), true, "several frames"),
        9 => (Vec::new(), true, "empty body"),
        10 => (frame(message), false, "whole frame, stream never ends"),
        _ => (frame(message), true, "honest frame"),
    }
}

impl Input {
    /// Input `index` of a run with `seed`, from one of `seeds` (valid
    /// encoded requests of the method).
    pub fn generate(seed: u64, index: u64, seeds: &[Vec<u8>]) -> Input {
        let mut rng = rng_for(seed, index);
        let base = &seeds[rng.gen_range(0..seeds.len())];
        let (message, mutation) = if rng.gen_bool(0.15) {
            (base.clone(), "valid seed")
        } else {
            mutate_message(&mut rng, base, seeds)
        };
        let (body, end_stream, framing) = frame_message(&mut rng, &message);
        Input {
            message,
            body,
            end_stream,
            how: format!("{mutation}; {framing}"),
        }
    }
}
