//! Writes a bbolt file ([`super::bolt`]'s format) in one pass from sorted
//! keys: the bulk load of a B+tree. Leaves are written as they fill; each
//! full leaf hands its first key and page id to the branch level above,
//! which is written as it fills in turn, so memory holds one page per level
//! of the tree whatever the file's size.
//!
//! The file: pages 0 and 1 the meta, 2 an empty freelist, then every
//! bucket's pages, then the root bucket's leaf. Every page below the
//! high-water mark is reachable, so bbolt's `Tx.Check` (run by `etcdctl
//! snapshot status`) finds nothing to complain about. Empty buckets are
//! inline, as bbolt makes a new bucket.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use super::bolt::{Meta, BRANCH_PAGE, BUCKET_LEAF, ELEMENT, FREELIST_PAGE, LEAF_PAGE, META_PAGE, PAGE_HEADER};

pub const PAGE_SIZE: usize = 4096;
const FREELIST_ID: u64 = 2;

fn page_header(id: u64, flags: u16, count: usize, overflow: u32) -> [u8; PAGE_HEADER] {
    let mut h = [0u8; PAGE_HEADER];
    h[0..8].copy_from_slice(&id.to_le_bytes());
    h[8..10].copy_from_slice(&flags.to_le_bytes());
    h[10..12].copy_from_slice(&(count as u16).to_le_bytes());
    h[12..16].copy_from_slice(&overflow.to_le_bytes());
    h
}

/// The keys (and values or child ids) of one page being filled.
#[derive(Default)]
struct Node {
    /// (key, value) for a leaf; (key, child page id as 8 bytes) for a branch.
    elements: Vec<(Vec<u8>, Vec<u8>, u32)>,
    bytes: usize,
}

impl Node {
    fn size(&self) -> usize {
        PAGE_HEADER + self.bytes
    }

    fn fits(&self, key: &[u8], value_len: usize) -> bool {
        self.elements.is_empty() || self.size() + ELEMENT + key.len() + value_len <= PAGE_SIZE
    }

    fn push(&mut self, key: Vec<u8>, value: Vec<u8>, flags: u32) {
        self.bytes += ELEMENT + key.len() + value.len();
        self.elements.push((key, value, flags));
    }

    /// The page's bytes, padded to whole pages; the first key.
    fn encode(self, id: u64, branch: bool) -> (Vec<u8>, Vec<u8>) {
        let pages = self.size().div_ceil(PAGE_SIZE);
        let mut page = Vec::with_capacity(pages * PAGE_SIZE);
        let flags = if branch { BRANCH_PAGE } else { LEAF_PAGE };
        page.extend_from_slice(&page_header(id, flags, self.elements.len(), (pages - 1) as u32));
        let count = self.elements.len();
        let mut data_at = PAGE_HEADER + count * ELEMENT;
        for (i, (key, value, el_flags)) in self.elements.iter().enumerate() {
            let pos = (data_at - (PAGE_HEADER + i * ELEMENT)) as u32;
            if branch {
                page.extend_from_slice(&pos.to_le_bytes());
                page.extend_from_slice(&(key.len() as u32).to_le_bytes());
                page.extend_from_slice(value);
            } else {
                page.extend_from_slice(&el_flags.to_le_bytes());
                page.extend_from_slice(&pos.to_le_bytes());
                page.extend_from_slice(&(key.len() as u32).to_le_bytes());
                page.extend_from_slice(&(value.len() as u32).to_le_bytes());
            }
            data_at += key.len() + if branch { 0 } else { value.len() };
        }
        for (key, value, _) in &self.elements {
            page.extend_from_slice(key);
            if !branch {
                page.extend_from_slice(value);
            }
        }
        page.resize(pages * PAGE_SIZE, 0);
        let first = self.elements.into_iter().next().map(|e| e.0).unwrap_or_default();
        (page, first)
    }
}

/// A bbolt file being written.
pub struct BoltWriter {
    out: BufWriter<File>,
    next_page: u64,
    /// Top-level buckets written so far: name and bucket value.
    buckets: Vec<(Vec<u8>, Vec<u8>)>,
}

impl BoltWriter {
    /// Starts a database in `file` (truncated).
    pub fn new(file: File) -> io::Result<Self> {
        file.set_len(0)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        // Meta pages are written last, once the root is known.
        out.write_all(&[0u8; 2 * PAGE_SIZE])?;
        let mut freelist = page_header(FREELIST_ID, FREELIST_PAGE, 0, 0).to_vec();
        freelist.resize(PAGE_SIZE, 0);
        out.write_all(&freelist)?;
        Ok(Self {
            out,
            next_page: 3,
            buckets: Vec::new(),
        })
    }

    fn write_node(&mut self, node: Node, branch: bool) -> io::Result<(Vec<u8>, u64)> {
        let id = self.next_page;
        let (page, first) = node.encode(id, branch);
        self.next_page += (page.len() / PAGE_SIZE) as u64;
        self.out.write_all(&page)?;
        Ok((first, id))
    }

    /// Starts the top-level bucket `name`; its keys must come in ascending
    /// order, and it must be finished before the next one starts.
    pub fn bucket(&mut self, name: &[u8]) -> BucketWriter<'_> {
        BucketWriter {
            db: self,
            name: name.to_vec(),
            leaf: Node::default(),
            branches: Vec::new(),
            last_key: None,
        }
    }

    /// Writes the root bucket and the meta pages; answers the file (synced)
    /// and its size in bytes.
    pub fn finish(mut self) -> io::Result<(File, u64)> {
        self.buckets.sort();
        let mut root = Node::default();
        for (name, value) in std::mem::take(&mut self.buckets) {
            root.push(name, value, BUCKET_LEAF);
        }
        let (_, root_id) = self.write_node(root, false)?;
        let high_water = self.next_page;
        let file = self.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        for (id, txid) in [(0u64, 0u64), (1, 1)] {
            let meta = Meta {
                page_size: PAGE_SIZE as u32,
                root: root_id,
                freelist: FREELIST_ID,
                high_water,
                txid,
            };
            let mut page = page_header(id, META_PAGE, 0, 0).to_vec();
            page.extend_from_slice(&meta.encode());
            file.write_all_at(&page, id * PAGE_SIZE as u64)?;
        }
        file.sync_all()?;
        let mut file = file;
        let size = file.seek(SeekFrom::End(0))?;
        Ok((file, size))
    }
}

/// One bucket being written.
pub struct BucketWriter<'a> {
    db: &'a mut BoltWriter,
    name: Vec<u8>,
    leaf: Node,
    /// The branch pages being filled, lowest level first.
    branches: Vec<Node>,
    last_key: Option<Vec<u8>>,
}

impl BucketWriter<'_> {
    /// Adds `key`, which must sort after every key added before.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if self.last_key.as_deref().is_some_and(|last| last >= key) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bolt keys out of order"));
        }
        self.last_key = Some(key.to_vec());
        if !self.leaf.fits(key, value.len()) {
            self.flush_leaf()?;
        }
        self.leaf.push(key.to_vec(), value.to_vec(), 0);
        Ok(())
    }

    fn flush_leaf(&mut self) -> io::Result<()> {
        let leaf = std::mem::take(&mut self.leaf);
        let (first, id) = self.db.write_node(leaf, false)?;
        self.add_child(0, first, id)
    }

    /// Adds a child page to the branch at `level`, writing that branch
    /// first when the child does not fit.
    fn add_child(&mut self, level: usize, first: Vec<u8>, id: u64) -> io::Result<()> {
        if self.branches.len() == level {
            self.branches.push(Node::default());
        }
        if !self.branches[level].fits(&first, 0) {
            let full = std::mem::take(&mut self.branches[level]);
            let (bfirst, bid) = self.db.write_node(full, true)?;
            self.add_child(level + 1, bfirst, bid)?;
        }
        self.branches[level].push(first, id.to_le_bytes().to_vec(), 0);
        Ok(())
    }

    /// Writes what is still open and records the bucket in the root.
    pub fn finish(mut self) -> io::Result<()> {
        let mut value = vec![0u8; 16];
        if self.last_key.is_none() {
            // An empty bucket: inline, with an empty leaf page.
            value.extend_from_slice(&page_header(0, LEAF_PAGE, 0, 0));
        } else {
            self.flush_leaf()?;
            let mut level = 0;
            let root = loop {
                let node = std::mem::take(&mut self.branches[level]);
                let top = level + 1 == self.branches.len();
                if top && node.elements.len() == 1 {
                    // The one child is the root.
                    let child = &node.elements[0].1;
                    break u64::from_le_bytes(child[..8].try_into().unwrap_or_default());
                }
                let (first, id) = self.db.write_node(node, true)?;
                self.add_child(level + 1, first, id)?;
                level += 1;
            };
            value[0..8].copy_from_slice(&root.to_le_bytes());
        }
        self.db.buckets.push((std::mem::take(&mut self.name), value));
        Ok(())
    }
}
