//! bbolt's on-disk format (go.etcd.io/bbolt 1.3, the file etcd's backend
//! is) and a reader for it: enough to walk every bucket of an etcd snapshot
//! page by page, so memory stays bounded by the tree's height, never by
//! the file's size.
//!
//! ```text
//! page      id u64 | flags u16 | count u16 | overflow u32 | data
//! meta      magic u32 | version u32 | page size u32 | flags u32 | root bucket (root u64, sequence u64)
//!           | freelist u64 | high-water page id u64 | txid u64 | checksum u64 (FNV-1a of the rest)
//! branch    count elements (pos u32, key size u32, child page u64), keys after them
//! leaf      count elements (flags u32, pos u32, key size u32, value size u32), keys and values after
//! bucket    a leaf value flagged 1: root page u64 | sequence u64 [| an inline leaf page when root is 0]
//! ```
//!
//! Integers are little-endian (bbolt writes host order; etcd runs on
//! little-endian machines). `pos` counts from the element's own first byte.
//! Pages 0 and 1 hold two copies of the meta; the valid one with the larger
//! txid is current. A page spanning `overflow` more pages is one node.
//! The error texts of an unreadable file are bbolt's (`invalid database`,
//! `checksum error`, `version mismatch`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub const MAGIC: u32 = 0xED0C_DAED;
pub const VERSION: u32 = 2;
pub const PAGE_HEADER: usize = 16;
pub const ELEMENT: usize = 16;
pub const META_LEN: usize = 64;
pub const BRANCH_PAGE: u16 = 0x01;
pub const LEAF_PAGE: u16 = 0x02;
pub const META_PAGE: u16 = 0x04;
pub const FREELIST_PAGE: u16 = 0x10;
/// A leaf element whose value is a nested bucket.
pub const BUCKET_LEAF: u32 = 0x01;
/// Trees deeper than this are corrupt (a 4 KiB-page tree of 2^64 keys is
/// far shallower); it bounds the walk of a file whose pages loop.
const MAX_DEPTH: usize = 64;

/// Why a file is not a readable bbolt database.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("invalid database")]
    Invalid,
    #[error("version mismatch")]
    Version,
    #[error("checksum error")]
    Checksum,
    #[error("corrupt database: {0}")]
    Corrupt(String),
}

fn corrupt(what: impl Into<String>) -> BoltError {
    BoltError::Corrupt(what.into())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
pub fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The decoded meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub root: u64,
    pub freelist: u64,
    /// Pages in use: the file's size is `high_water * page_size`.
    pub high_water: u64,
    pub txid: u64,
}

impl Meta {
    /// The 64 bytes of a meta, checksum included.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&VERSION.to_le_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.root.to_le_bytes());
        b[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        b[40..48].copy_from_slice(&self.high_water.to_le_bytes());
        b[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv64a(&b[..56]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Result<Self, BoltError> {
        if b.len() < META_LEN || u32_at(b, 0) != MAGIC {
            return Err(BoltError::Invalid);
        }
        if u32_at(b, 4) != VERSION {
            return Err(BoltError::Version);
        }
        if u64_at(b, 56) != fnv64a(&b[..56]) {
            return Err(BoltError::Checksum);
        }
        Ok(Self {
            page_size: u32_at(b, 8),
            root: u64_at(b, 16),
            freelist: u64_at(b, 32),
            high_water: u64_at(b, 40),
            txid: u64_at(b, 48),
        })
    }
}

/// Where a bucket's tree starts: a page of the file, or a leaf page stored
/// inline in its parent's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketRoot {
    Page(u64),
    Inline(Vec<u8>),
}

impl BucketRoot {
    /// Decodes a bucket value (`root u64 | sequence u64 [| inline page]`).
    pub fn decode(value: &[u8]) -> Result<Self, BoltError> {
        if value.len() < 16 {
            return Err(corrupt("bucket value shorter than its header"));
        }
        match u64_at(value, 0) {
            0 => Ok(Self::Inline(value[16..].to_vec())),
            page => Ok(Self::Page(page)),
        }
    }
}

/// One key of a bucket: a value, or a nested bucket.
pub enum Item<'a> {
    Value(&'a [u8], &'a [u8]),
    Bucket(&'a [u8], BucketRoot),
}

/// A bbolt file opened for reading.
pub struct BoltReader {
    file: File,
    meta: Meta,
    file_len: u64,
}

impl BoltReader {
    /// Opens `file` whose bbolt data is its first `len` bytes (a snapshot
    /// carries a hash after them), checking the meta pages as bbolt does.
    pub fn open(file: File, len: u64) -> Result<Self, BoltError> {
        let mut first = vec![0u8; PAGE_HEADER + META_LEN];
        if len < first.len() as u64 {
            return Err(BoltError::Invalid);
        }
        file.read_exact_at(&mut first, 0)?;
        let meta0 = Meta::decode(&first[PAGE_HEADER..]);
        // The second copy sits one page further; the first copy's page size
        // says where (bbolt falls back to the OS page size when it is bad).
        let page_size = match &meta0 {
            Ok(m) => u64::from(m.page_size),
            Err(_) => 4096,
        };
        let mut second = vec![0u8; PAGE_HEADER + META_LEN];
        let meta1 = if len >= page_size + second.len() as u64 {
            file.read_exact_at(&mut second, page_size)?;
            Meta::decode(&second[PAGE_HEADER..])
        } else {
            Err(BoltError::Invalid)
        };
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(m), Err(_)) | (Err(_), Ok(m)) => m,
            (Err(e), Err(_)) => return Err(e),
        };
        if !(512..=1 << 20).contains(&meta.page_size) {
            return Err(corrupt(format!("page size {}", meta.page_size)));
        }
        if meta.high_water.saturating_mul(u64::from(meta.page_size)) > len {
            return Err(corrupt(format!(
                "file is {len} bytes, shorter than its {} pages of {} bytes (truncated?)",
                meta.high_water, meta.page_size
            )));
        }
        Ok(Self {
            file,
            meta,
            file_len: len,
        })
    }

    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// bbolt's `Tx.Size`: the bytes the database's pages span.
    pub fn size(&self) -> u64 {
        self.meta.high_water * u64::from(self.meta.page_size)
    }

    /// The root bucket, whose keys are the top-level buckets.
    pub fn root(&self) -> BucketRoot {
        BucketRoot::Page(self.meta.root)
    }

    /// Reads page `id` with its overflow pages.
    fn page(&self, id: u64) -> Result<Vec<u8>, BoltError> {
        let ps = u64::from(self.meta.page_size);
        if id < 2 || id >= self.meta.high_water {
            return Err(corrupt(format!("page {id} out of range")));
        }
        let mut head = vec![0u8; ps as usize];
        self.file.read_exact_at(&mut head, id * ps)?;
        let overflow = u64::from(u32_at(&head, 12));
        if overflow == 0 {
            return Ok(head);
        }
        let end = id.checked_add(overflow + 1).unwrap_or(u64::MAX);
        if end > self.meta.high_water || end * ps > self.file_len {
            return Err(corrupt(format!("page {id} overflows past the end")));
        }
        let mut page = vec![0u8; ((overflow + 1) * ps) as usize];
        self.file.read_exact_at(&mut page, id * ps)?;
        Ok(page)
    }

    /// Visits every key of the bucket rooted at `root` in key order.
    pub fn for_each(
        &self,
        root: &BucketRoot,
        f: &mut dyn FnMut(Item<'_>) -> Result<(), BoltError>,
    ) -> Result<(), BoltError> {
        match root {
            BucketRoot::Inline(page) => visit_leaf(page, f),
            BucketRoot::Page(id) => self.walk(*id, 0, f),
        }
    }

    fn walk(
        &self,
        id: u64,
        depth: usize,
        f: &mut dyn FnMut(Item<'_>) -> Result<(), BoltError>,
    ) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(corrupt("tree too deep (pages loop?)"));
        }
        let page = self.page(id)?;
        match u16_at(&page, 8) {
            LEAF_PAGE => visit_leaf(&page, f),
            BRANCH_PAGE => {
                let count = usize::from(u16_at(&page, 10));
                check_elements(&page, count)?;
                for i in 0..count {
                    let child = u64_at(&page, PAGE_HEADER + i * ELEMENT + 8);
                    self.walk(child, depth + 1, f)?;
                }
                Ok(())
            }
            other => Err(corrupt(format!("page {id}: unexpected flags {other:#x}"))),
        }
    }

    /// The bucket named `name` among the top-level buckets.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<BucketRoot>, BoltError> {
        let mut found = None;
        self.for_each(&self.root(), &mut |item| {
            if let Item::Bucket(n, root) = item {
                if n == name {
                    found = Some(root);
                }
            }
            Ok(())
        })?;
        Ok(found)
    }
}

fn check_elements(page: &[u8], count: usize) -> Result<(), BoltError> {
    if PAGE_HEADER + count * ELEMENT > page.len() {
        return Err(corrupt("page elements past its end"));
    }
    Ok(())
}

fn slice(page: &[u8], at: usize, len: usize) -> Result<&[u8], BoltError> {
    page.get(at..at.saturating_add(len))
        .ok_or_else(|| corrupt("key or value past its page"))
}

fn visit_leaf(page: &[u8], f: &mut dyn FnMut(Item<'_>) -> Result<(), BoltError>) -> Result<(), BoltError> {
    if page.len() < PAGE_HEADER || u16_at(page, 8) != LEAF_PAGE {
        return Err(corrupt("bucket root is not a leaf page"));
    }
    let count = usize::from(u16_at(page, 10));
    check_elements(page, count)?;
    for i in 0..count {
        let el = PAGE_HEADER + i * ELEMENT;
        let flags = u32_at(page, el);
        let pos = u32_at(page, el + 4) as usize;
        let ksize = u32_at(page, el + 8) as usize;
        let vsize = u32_at(page, el + 12) as usize;
        let key = slice(page, el + pos, ksize)?;
        let value = slice(page, el + pos + ksize, vsize)?;
        if flags & BUCKET_LEAF != 0 {
            f(Item::Bucket(key, BucketRoot::decode(value)?))?;
        } else {
            f(Item::Value(key, value))?;
        }
    }
    Ok(())
}
