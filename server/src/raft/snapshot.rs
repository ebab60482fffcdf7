//! The snapshot byte format: every pair of the state machine's column
//! families (`Kv`, `Meta`) read from one consistent engine view, written
//! through [`std::io::Write`] by [`encode`] and read back record by record by
//! [`Decoder`]. Neither side holds more than one record, so memory does not
//! grow with the size of the state machine.
//!
//! ```text
//! header   "TIMONSNP" | version u32 (= 1)
//! record   cf tag u8 (1 = Kv, 2 = Meta) | key len u32 | key | value len u32 | value
//! trailer  0 u8 | record count u64 | crc32 u32 of every byte before it
//! ```
//!
//! Integers are little-endian. A stream is complete only with a matching
//! trailer, so a truncated or corrupted snapshot is an error, never a
//! silently shorter state machine.

use std::io::{self, Read, Write};

use crate::storage::{try_scan, Cf, KvRead, StorageError};

const MAGIC: &[u8; 8] = b"TIMONSNP";
const VERSION: u32 = 1;
const END_TAG: u8 = 0;

/// The column families a snapshot carries, in stream order.
pub const STATE_MACHINE_CFS: [Cf; 2] = [Cf::Kv, Cf::Meta];

fn cf_tag(cf: Cf) -> u8 {
    match cf {
        Cf::Kv => 1,
        Cf::Meta => 2,
        // Only state-machine column families are ever written.
        Cf::RaftLog | Cf::RaftMeta => END_TAG,
    }
}

fn tag_cf(tag: u8) -> Option<Cf> {
    match tag {
        1 => Some(Cf::Kv),
        2 => Some(Cf::Meta),
        _ => None,
    }
}

/// Why a snapshot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("writing snapshot: {0}")]
    Io(#[from] io::Error),
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("reading snapshot: {0}")]
    Io(#[source] io::Error),
    #[error("malformed snapshot at byte {offset}: {what}")]
    Malformed { offset: u64, what: &'static str },
}

/// A writer that checksums what passes through it.
struct Summing<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn len_u32(len: usize) -> io::Result<[u8; 4]> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "snapshot key or value longer than 4 GiB"))
}

fn write_record(w: &mut impl Write, cf: Cf, key: &[u8], value: &[u8]) -> io::Result<()> {
    w.write_all(&[cf_tag(cf)])?;
    w.write_all(&len_u32(key.len())?)?;
    w.write_all(key)?;
    w.write_all(&len_u32(value.len())?)?;
    w.write_all(value)
}

/// Streams the state machine's column families from `view` into `out`,
/// skipping the meta keys in `skip_meta` (local bookkeeping that must not
/// travel). Answers `out` back (for the caller to flush and sync) and the
/// number of records written. `out` should be buffered: records are written
/// field by field.
pub fn encode<W: Write>(view: &dyn KvRead, skip_meta: &[&[u8]], out: W) -> Result<(W, u64), EncodeError> {
    let mut w = Summing {
        inner: out,
        crc: crc32fast::Hasher::new(),
    };
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    let mut records = 0u64;
    for cf in STATE_MACHINE_CFS {
        try_scan(view, cf, &[], None, &mut |k, v| {
            if cf == Cf::Meta && skip_meta.contains(&k) {
                return Ok(());
            }
            write_record(&mut w, cf, k, v)?;
            records += 1;
            Ok::<_, EncodeError>(())
        })?;
    }
    w.write_all(&[END_TAG])?;
    w.write_all(&records.to_le_bytes())?;
    let crc = w.crc.clone().finalize();
    w.inner.write_all(&crc.to_le_bytes())?;
    Ok((w.inner, records))
}

/// One key-value pair of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub cf: Cf,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Reads a snapshot one record at a time. `inner` should be buffered.
pub struct Decoder<R> {
    inner: R,
    crc: crc32fast::Hasher,
    offset: u64,
    records: u64,
    finished: bool,
}

fn truncated(offset: u64) -> DecodeError {
    DecodeError::Malformed {
        offset,
        what: "truncated",
    }
}

impl<R: Read> Decoder<R> {
    /// Reads and checks the header.
    pub fn new(inner: R) -> Result<Self, DecodeError> {
        let mut d = Self {
            inner,
            crc: crc32fast::Hasher::new(),
            offset: 0,
            records: 0,
            finished: false,
        };
        let mut magic = [0u8; 8];
        d.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(DecodeError::Malformed {
                offset: 0,
                what: "not a timon snapshot",
            });
        }
        let mut version = [0u8; 4];
        d.read_exact(&mut version)?;
        if u32::from_le_bytes(version) != VERSION {
            return Err(DecodeError::Malformed {
                offset: 8,
                what: "unsupported snapshot version",
            });
        }
        Ok(d)
    }

    /// Reads exactly `buf.len()` bytes without checksumming them.
    fn read_raw(&mut self, buf: &mut [u8]) -> Result<(), DecodeError> {
        match self.inner.read_exact(buf) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(truncated(self.offset)),
            Err(e) => Err(DecodeError::Io(e)),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DecodeError> {
        self.read_raw(buf)?;
        self.crc.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Reads a length-prefixed field. The buffer grows with the bytes
    /// actually read, so a corrupt length cannot allocate beyond the input.
    fn read_field(&mut self) -> Result<Vec<u8>, DecodeError> {
        let mut len = [0u8; 4];
        self.read_exact(&mut len)?;
        let len = u64::from(u32::from_le_bytes(len));
        let mut buf = Vec::new();
        (&mut self.inner)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(DecodeError::Io)?;
        if buf.len() as u64 != len {
            return Err(truncated(self.offset + buf.len() as u64));
        }
        self.crc.update(&buf);
        self.offset += len;
        Ok(buf)
    }

    /// The next record, or `None` once the trailer has been read and checked.
    pub fn next_record(&mut self) -> Result<Option<Record>, DecodeError> {
        if self.finished {
            return Ok(None);
        }
        let at = self.offset;
        let mut tag = [0u8; 1];
        self.read_exact(&mut tag)?;
        if tag[0] == END_TAG {
            self.read_trailer()?;
            return Ok(None);
        }
        let cf = tag_cf(tag[0]).ok_or(DecodeError::Malformed {
            offset: at,
            what: "unknown column family tag",
        })?;
        let key = self.read_field()?;
        let value = self.read_field()?;
        self.records += 1;
        Ok(Some(Record { cf, key, value }))
    }

    fn read_trailer(&mut self) -> Result<(), DecodeError> {
        let at = self.offset;
        let mut count = [0u8; 8];
        self.read_exact(&mut count)?;
        if u64::from_le_bytes(count) != self.records {
            return Err(DecodeError::Malformed {
                offset: at,
                what: "record count mismatch",
            });
        }
        let expected = self.crc.clone().finalize();
        let mut crc = [0u8; 4];
        self.read_raw(&mut crc)?;
        if u32::from_le_bytes(crc) != expected {
            return Err(DecodeError::Malformed {
                offset: at + 8,
                what: "checksum mismatch",
            });
        }
        let mut extra = [0u8; 1];
        loop {
            match self.inner.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(DecodeError::Malformed {
                        offset: at + 12,
                        what: "bytes after the trailer",
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DecodeError::Io(e)),
            }
        }
        self.finished = true;
        Ok(())
    }
}

/// Reads a whole snapshot and checks its framing and checksum, keeping
/// nothing; answers the number of records.
pub fn verify(r: impl Read) -> Result<u64, DecodeError> {
    let mut d = Decoder::new(r)?;
    while d.next_record()?.is_some() {}
    Ok(d.records)
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, BufWriter, Seek, SeekFrom};

    use super::*;
    use crate::storage::mem::MemEngine;
    use crate::storage::{Engine, WriteBatch};

    fn decode_all(data: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let mut d = Decoder::new(data)?;
        let mut out = Vec::new();
        while let Some(r) = d.next_record()? {
            out.push(r);
        }
        Ok(out)
    }

    fn small_snapshot() -> Vec<u8> {
        let src = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, vec![0, 0, 1], b"v1".to_vec());
        b.put(Cf::Kv, vec![0, 0, 2], Vec::new());
        b.put(Cf::Meta, b"current_rev".to_vec(), b"x".to_vec());
        src.write(b, true).unwrap();
        encode(&src, &[], Vec::new()).unwrap().0
    }

    #[test]
    fn encode_decode_round_trip_skips_local_keys_and_other_cfs() {
        let src = MemEngine::new();
        let mut b = WriteBatch::new();
        b.put(Cf::Kv, vec![0, 0, 1], b"v1".to_vec());
        b.put(Cf::Kv, vec![0, 0, 2], Vec::new());
        b.put(Cf::Meta, b"applied".to_vec(), b"x".to_vec());
        b.put(Cf::Meta, b"local".to_vec(), b"skip me".to_vec());
        b.put(Cf::RaftLog, vec![1], b"not state machine".to_vec());
        src.write(b, true).unwrap();
        let (data, n) = encode(&src, &[b"local"], Vec::new()).unwrap();
        assert_eq!(n, 3);
        let rec = |cf, k: &[u8], v: &[u8]| Record {
            cf,
            key: k.to_vec(),
            value: v.to_vec(),
        };
        assert_eq!(
            decode_all(&data).unwrap(),
            vec![
                rec(Cf::Kv, &[0, 0, 1], b"v1"),
                rec(Cf::Kv, &[0, 0, 2], b""),
                rec(Cf::Meta, b"applied", b"x"),
            ]
        );
        assert_eq!(verify(&data[..]).unwrap(), 3);
    }

    #[test]
    fn empty_state_round_trips() {
        let (data, n) = encode(&MemEngine::new(), &[], Vec::new()).unwrap();
        assert_eq!(n, 0);
        assert_eq!(decode_all(&data).unwrap(), vec![]);
    }

    #[test]
    fn truncated_snapshot_is_an_error_not_a_panic() {
        let data = small_snapshot();
        for cut in 0..data.len() {
            assert!(decode_all(&data[..cut]).is_err(), "cut at {cut}");
            assert!(verify(&data[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_all(&data).is_ok());
    }

    #[test]
    fn corrupt_snapshot_is_an_error_not_a_panic() {
        let data = small_snapshot();
        for at in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[at] ^= flip;
                assert!(decode_all(&bad).is_err(), "byte {at} ^ {flip:#x}");
            }
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode_all(&longer).is_err(), "bytes after the trailer");
        assert!(decode_all(b"not a snapshot at all").is_err());
    }

    #[test]
    fn huge_length_prefix_does_not_allocate_it() {
        let mut data = Vec::new();
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&VERSION.to_le_bytes());
        data.push(cf_tag(Cf::Kv));
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(b"short");
        assert!(matches!(
            decode_all(&data),
            Err(DecodeError::Malformed { what: "truncated", .. })
        ));
    }

    /// A writer that keeps nothing: encoding must not need the whole stream.
    struct Counting(u64);

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn large_state_streams_through_a_file() {
        const KEYS: u32 = 200_000;
        let src = MemEngine::new();
        let mut b = WriteBatch::new();
        for i in 0..KEYS {
            b.put(Cf::Kv, i.to_be_bytes().to_vec(), format!("value {i}").into_bytes());
        }
        b.put(Cf::Meta, b"current_rev".to_vec(), b"r".to_vec());
        src.write(b, true).unwrap();

        let (counted, n) = encode(&src, &[], Counting(0)).unwrap();
        assert_eq!(n, u64::from(KEYS) + 1);

        let mut file = tempfile::tempfile().unwrap();
        let (w, _) = encode(&src, &[], BufWriter::new(&mut file)).unwrap();
        drop(w);
        assert_eq!(file.seek(SeekFrom::End(0)).unwrap(), counted.0);
        file.seek(SeekFrom::Start(0)).unwrap();

        let mut d = Decoder::new(BufReader::new(&mut file)).unwrap();
        let mut expected = 0u32;
        let mut meta_seen = false;
        while let Some(r) = d.next_record().unwrap() {
            match r.cf {
                Cf::Kv => {
                    assert_eq!(r.key, expected.to_be_bytes());
                    assert_eq!(r.value, format!("value {expected}").into_bytes());
                    expected += 1;
                }
                _ => meta_seen = true,
            }
        }
        assert_eq!(expected, KEYS);
        assert!(meta_seen);
    }
}
