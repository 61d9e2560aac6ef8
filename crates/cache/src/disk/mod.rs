//! The disk tier: every object the memory cache stores is also written to a file under `disk_path`, within
//! the `disk_size` byte budget (least recently used files go first); a memory miss that the disk holds is read
//! back on tokio's blocking pool instead of going upstream; a restart rebuilds the index from the files'
//! metadata, so the cache survives it.
//!
//! The request path never writes: stores, purges and clears are queued (bounded) to one writer thread that
//! applies them in order. A full queue drops the write (counted), never waits. The index (key, variant, tags,
//! expiry and size of every file; no bodies) lives in memory behind one short lock.

mod codec;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

use hashlink::LinkedHashMap;
use http::HeaderMap;
use parking_lot::Mutex;

use crate::entry::{self, Entry};
use crate::vary;
use codec::Meta;

/// Writes and purges waiting for the writer thread at most; more are dropped (writes) or applied to the index
/// at once anyway (purges).
const QUEUE: usize = 4096;

/// `[domain.cache] disk_path` and `disk_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    pub path: PathBuf,
    /// Byte budget of the files (their sizes on disk, metadata included).
    pub size: u64,
}

/// One file's identity: a 128-bit hash of its key and variant, also its name.
type FileId = u128;

pub(crate) struct DiskTier {
    shared: Arc<DiskShared>,
    tx: SyncSender<Op>,
}

struct DiskShared {
    dir: PathBuf,
    budget: u64,
    index: Mutex<Index>,
    hits: AtomicU64,
    writes: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

#[derive(Default)]
struct Index {
    /// Front = least recently used.
    files: LinkedHashMap<FileId, Slot, RandomState>,
    by_key: HashMap<Box<str>, Vec<FileId>, RandomState>,
    bytes: u64,
}

struct Slot {
    meta: Meta,
    size: u64,
}

enum Op {
    Write(Box<str>, Arc<Entry>),
    /// Files already taken out of the index by the caller, and what else to take out (writes queued before
    /// the purge may have added matching files since).
    Purge(Vec<FileId>, Doomed),
    Clear,
    Flush(SyncSender<()>),
}

enum Doomed {
    Nothing,
    Keys(Vec<Box<str>>),
    Prefix(Box<str>),
    Tags(Vec<Box<str>>),
}

impl Doomed {
    fn matches(&self, meta: &Meta) -> bool {
        match self {
            Doomed::Nothing => false,
            Doomed::Keys(keys) => keys.contains(&meta.key),
            Doomed::Prefix(p) => meta.key.starts_with(&**p),
            Doomed::Tags(tags) => meta.tags.iter().any(|t| tags.contains(t)),
        }
    }
}

/// The disk tier's counters and gauges, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Memory misses answered from a file.
    pub hits: u64,
    /// Objects written.
    pub writes: u64,
    /// Writes dropped because the writer was behind.
    pub dropped: u64,
    /// Files that could not be written, read or decoded (each is then forgotten).
    pub errors: u64,
    pub bytes: u64,
    pub objects: u64,
}

impl DiskTier {
    /// Opens (creating it if needed) the folder and rebuilds the index from the files in it: temporaries and
    /// files that do not decode or are past being kept are deleted; if the files exceed the budget, the
    /// oldest go.
    pub fn open(config: &DiskConfig, now: SystemTime) -> io::Result<DiskTier> {
        fs::create_dir_all(&config.path)?;
        let probe = config.path.join(".probe.tmp");
        fs::write(&probe, b"")?;
        fs::remove_file(&probe)?;
        let mut found = Vec::new();
        scan(&config.path, now, &mut found)?;
        found.sort_by_key(|(_, slot)| slot.meta.stored_at);
        let mut index = Index::default();
        for (id, slot) in found {
            index.insert(id, slot);
        }
        let shared = Arc::new(DiskShared {
            dir: config.path.clone(),
            budget: config.size,
            index: Mutex::new(index),
            hits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        });
        let victims = shared.index.lock().evict_to(config.size);
        shared.unlink(&victims);
        let (tx, rx) = sync_channel(QUEUE);
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("edgeguard-cache-disk".into())
            .spawn(move || writer.run(rx))?;
        Ok(DiskTier { shared, tx })
    }

    /// The file holding the variant of `key` a request with `headers` may be served, if any.
    pub fn find(&self, key: &str, headers: &HeaderMap) -> Option<FileId> {
        let mut index = self.shared.index.lock();
        let id = index.by_key.get(key)?.iter().copied().find(|id| {
            index
                .files
                .get(id)
                .is_some_and(|s| vary::matches(&s.meta.vary, headers))
        })?;
        index.files.to_back(&id);
        Some(id)
    }

    /// Reads file `id` back (blocking I/O: run it off the async workers). A file that fails to read or
    /// decode, or holds another key, is forgotten and deleted.
    pub fn read(&self, id: FileId, key: &str) -> Option<Entry> {
        let path = self.shared.path(id);
        let decoded = fs::read(&path)
            .ok()
            .and_then(|bytes| codec::decode(&bytes))
            .filter(|(k, _)| &**k == key);
        let Some((key, mut entry)) = decoded else {
            DiskShared::bump(&self.shared.errors);
            self.shared.index.lock().remove(id);
            let _ = fs::remove_file(&path);
            return None;
        };
        entry.size = entry::entry_size(&key, &entry.headers, &entry.vary, entry.body.len())
            + entry.tags.iter().map(|t| t.len() + 16).sum::<usize>();
        DiskShared::bump(&self.shared.hits);
        Some(entry)
    }

    /// Queues `entry` to be written; dropped (and counted) when the writer is behind.
    pub fn write(&self, key: &str, entry: Arc<Entry>) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Op::Write(key.into(), entry)) {
            DiskShared::bump(&self.shared.dropped);
        }
    }

    /// Forgets the file of `entry`'s variant of `key`.
    pub fn remove_variant(&self, key: &str, entry: &Entry) {
        let id = file_id(key, &entry.vary);
        self.shared.index.lock().remove(id);
        self.queue(Op::Purge(vec![id], Doomed::Nothing));
    }

    pub fn purge_keys(&self, keys: Vec<Box<str>>) {
        self.purge(Doomed::Keys(keys));
    }

    pub fn purge_prefix(&self, prefix: &str) {
        self.purge(Doomed::Prefix(prefix.into()));
    }

    pub fn purge_tags(&self, tags: Vec<Box<str>>) {
        self.purge(Doomed::Tags(tags));
    }

    /// Out of the index at once (no lookup finds them from now on), off the disk by the writer, which also
    /// catches files that writes queued before the purge add meanwhile.
    fn purge(&self, doomed: Doomed) {
        let ids = self.shared.index.lock().remove_where(|m| doomed.matches(m));
        self.queue(Op::Purge(ids, doomed));
    }

    pub fn clear(&self) {
        self.shared.index.lock().remove_where(|_| true);
        self.queue(Op::Clear);
    }

    /// Waits until everything queued so far is on disk.
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.tx.send(Op::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    pub fn stats(&self) -> DiskStats {
        let index = self.shared.index.lock();
        DiskStats {
            hits: self.shared.hits.load(Relaxed),
            writes: self.shared.writes.load(Relaxed),
            dropped: self.shared.dropped.load(Relaxed),
            errors: self.shared.errors.load(Relaxed),
            bytes: index.bytes,
            objects: index.files.len() as u64,
        }
    }

    /// Purges must reach the files even when the queue is full: wait for room (an admin operation).
    fn queue(&self, op: Op) {
        let _ = self.tx.send(op);
    }
}

impl DiskShared {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    fn path(&self, id: FileId) -> PathBuf {
        let name = format!("{id:032x}");
        self.dir.join(&name[..2]).join(format!("{name}.obj"))
    }

    fn unlink(&self, ids: &[FileId]) {
        for id in ids {
            let _ = fs::remove_file(self.path(*id));
        }
    }

    /// The writer thread: applies the queue in order until the tier is dropped.
    fn run(self: Arc<Self>, rx: Receiver<Op>) {
        while let Ok(op) = rx.recv() {
            match op {
                Op::Write(key, entry) => self.store(&key, &entry),
                Op::Flush(done) => {
                    let _ = done.send(());
                }
                Op::Purge(mut ids, doomed) => {
                    let mut index = self.index.lock();
                    for id in &ids {
                        index.remove(*id);
                    }
                    ids.extend(index.remove_where(|m| doomed.matches(m)));
                    drop(index);
                    self.unlink(&ids);
                }
                Op::Clear => {
                    self.index.lock().remove_where(|_| true);
                    let _ = clear_dir(&self.dir);
                }
            }
        }
    }

    fn store(&self, key: &str, entry: &Entry) {
        let bytes = codec::encode(key, entry);
        let size = bytes.len() as u64;
        if size > self.budget {
            return;
        }
        let id = file_id(key, &entry.vary);
        let path = self.path(id);
        let tmp = path.with_extension("tmp");
        let written = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| fs::write(&tmp, &bytes))
            .and_then(|()| fs::rename(&tmp, &path));
        if written.is_err() {
            DiskShared::bump(&self.errors);
            let _ = fs::remove_file(&tmp);
            return;
        }
        let meta = Meta {
            stored_at: entry.stored_at,
            key: key.into(),
            vary: entry.vary.clone(),
            tags: entry.tags.clone(),
            keep_until: entry.keep_until,
        };
        let victims = {
            let mut index = self.index.lock();
            index.remove(id);
            let victims = index.evict_to(self.budget - size);
            index.insert(id, Slot { meta, size });
            victims
        };
        self.unlink(&victims);
        DiskShared::bump(&self.writes);
    }
}

impl Index {
    fn insert(&mut self, id: FileId, slot: Slot) {
        self.bytes += slot.size;
        let ids = self.by_key.entry(slot.meta.key.clone()).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
        self.files.insert(id, slot);
    }

    fn remove(&mut self, id: FileId) -> bool {
        let Some(slot) = self.files.remove(&id) else {
            return false;
        };
        self.bytes -= slot.size;
        if let Some(ids) = self.by_key.get_mut(&slot.meta.key) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_key.remove(&slot.meta.key);
            }
        }
        true
    }

    /// Removes the least recently used files until at most `budget` bytes are left; returns them.
    fn evict_to(&mut self, budget: u64) -> Vec<FileId> {
        let mut victims = Vec::new();
        while self.bytes > budget {
            let Some((&id, _)) = self.files.front() else {
                break;
            };
            self.remove(id);
            victims.push(id);
        }
        victims
    }

    fn remove_where(&mut self, doomed: impl Fn(&Meta) -> bool) -> Vec<FileId> {
        let ids: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, s)| doomed(&s.meta))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.remove(*id);
        }
        ids
    }
}

/// FNV-1a over the key and the variant's identity, twice with different bases: stable across restarts and
/// builds (std's hashers are not), 128 bits so distinct variants never share a file in practice; a file
/// read back is checked against its key anyway.
fn file_id(key: &str, vary: &[(http::HeaderName, Option<http::HeaderValue>)]) -> FileId {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            a = (a ^ u64::from(byte)).wrapping_mul(PRIME);
            b = (b ^ u64::from(byte)).wrapping_mul(PRIME).rotate_left(5);
        }
    };
    feed(key.as_bytes());
    feed(b"\0");
    vary::identity(vary, &mut feed);
    (u128::from(a) << 64) | u128::from(b)
}

/// Walks the tier's folder (one level of subfolders): collects the files worth keeping, deletes the rest.
fn scan(dir: &Path, now: SystemTime, found: &mut Vec<(FileId, Slot)>) -> io::Result<()> {
    for sub in fs::read_dir(dir)? {
        let sub = sub?.path();
        if !sub.is_dir() {
            continue;
        }
        for file in fs::read_dir(&sub)? {
            let path = file?.path();
            let id = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| u128::from_str_radix(s, 16).ok());
            let is_obj = path.extension().is_some_and(|e| e == "obj");
            let slot = id.filter(|_| is_obj).and_then(|_| read_meta(&path));
            match (id, slot) {
                (Some(id), Some(slot)) if slot.meta.keep_until > now => found.push((id, slot)),
                _ => {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
    Ok(())
}

/// The metadata of one file, without its body.
fn read_meta(path: &Path) -> Option<Slot> {
    let mut file = fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let mut head = [0u8; 8];
    file.read_exact(&mut head).ok()?;
    let meta_len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    if meta_len as u64 + 16 > size {
        return None;
    }
    let mut buf = vec![0u8; 8 + meta_len];
    buf[..8].copy_from_slice(&head);
    file.read_exact(&mut buf[8..]).ok()?;
    let (meta, _) = codec::decode_meta(&buf)?;
    Some(Slot { meta, size })
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    for sub in fs::read_dir(dir)? {
        let sub = sub?.path();
        if sub.is_dir() {
            fs::remove_dir_all(&sub)?;
        }
    }
    Ok(())
}
