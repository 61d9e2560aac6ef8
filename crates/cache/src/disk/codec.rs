//! The object file: one stored variant, its metadata first so a restart can rebuild the index without reading
//! bodies.
//!
//! ```text
//! "EGC2"  u32 meta_len  meta  u64 body_len  body  u32 crc
//! meta = u64 stored_at  u64 initial_age  u64 fresh_until  u64 stale_until  u64 keep_until  u64 swr_until
//!        (milliseconds; times since the Unix epoch)   u16 status   str key
//!        u16 n  n x (str name, u8 present, str value)      the Vary snapshot
//!        u16 n  n x str                                    purge tags
//!        u16 n  n x (str name, str value)                  stored headers
//! str = u32 len + bytes; integers little-endian; crc = CRC-32 (IEEE) of every byte before it
//! ```
//!
//! A file is written whole under a temporary name and renamed into place, so a crash leaves either the old
//! file, the new one, or a temporary that the next start deletes. Anything that does not decode (truncated,
//! another version, a length that disagrees with the file's size, a checksum that disagrees with the bytes: the
//! file renamed into place before its data reached the disk, when power went) is treated as absent and deleted,
//! never served.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::entry::Entry;
use crate::vary::VarySnapshot;

const MAGIC: &[u8; 4] = b"EGC2";
/// Metadata larger than this is not ours (headers are capped far below it).
const MAX_META: usize = 4 << 20;

/// What the index keeps of a file without its body.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub stored_at: SystemTime,
    pub key: Box<str>,
    pub vary: VarySnapshot,
    pub tags: Box<[Box<str>]>,
    pub keep_until: SystemTime,
}

pub(crate) fn encode(key: &str, e: &Entry) -> Vec<u8> {
    let mut meta = Vec::with_capacity(256 + key.len());
    for t in [
        e.stored_at,
        UNIX_EPOCH + e.initial_age,
        e.fresh_until,
        e.stale_until,
        e.keep_until,
        e.swr_until,
    ] {
        meta.extend_from_slice(&millis(t).to_le_bytes());
    }
    meta.extend_from_slice(&e.status.as_u16().to_le_bytes());
    put_str(&mut meta, key.as_bytes());
    put_count(&mut meta, e.vary.len());
    for (name, value) in e.vary.iter() {
        put_str(&mut meta, name.as_str().as_bytes());
        meta.push(u8::from(value.is_some()));
        put_str(
            &mut meta,
            value.as_ref().map_or(&[][..], HeaderValue::as_bytes),
        );
    }
    put_count(&mut meta, e.tags.len());
    for t in e.tags.iter() {
        put_str(&mut meta, t.as_bytes());
    }
    put_count(&mut meta, e.headers.len());
    for (name, value) in &e.headers {
        put_str(&mut meta, name.as_str().as_bytes());
        put_str(&mut meta, value.as_bytes());
    }
    let mut out = Vec::with_capacity(4 + 4 + meta.len() + 8 + e.body.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(e.body.len() as u64).to_le_bytes());
    out.extend_from_slice(&e.body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The metadata section of a file whose first bytes are `head` (at least the whole metadata), and the
/// offset where the body length starts.
pub(crate) fn decode_meta(head: &[u8]) -> Option<(Meta, usize)> {
    let mut r = Reader::new(head);
    if r.take(4)? != MAGIC {
        return None;
    }
    let meta_len = r.u32()? as usize;
    if meta_len > MAX_META {
        return None;
    }
    let end = 8 + meta_len;
    let mut r = Reader::new(head.get(8..end)?);
    let stored_at = time(r.u64()?);
    r.take(8 * 3)?;
    let keep_until = time(r.u64()?);
    r.take(8 + 2)?;
    let key = std::str::from_utf8(r.str()?).ok()?.into();
    let vary = read_vary(&mut r)?;
    let tags = read_tags(&mut r)?;
    Some((
        Meta {
            stored_at,
            key,
            vary,
            tags,
            keep_until,
        },
        end,
    ))
}

/// A whole file back into an entry (`size` is left for the caller to charge).
pub(crate) fn decode(file: &[u8]) -> Option<(Box<str>, Entry)> {
    let (file, crc) = file.split_at_checked(file.len().checked_sub(4)?)?;
    if crc32fast::hash(file).to_le_bytes() != crc {
        return None;
    }
    let mut r = Reader::new(file);
    if r.take(4)? != MAGIC {
        return None;
    }
    let meta_len = r.u32()? as usize;
    if meta_len > MAX_META {
        return None;
    }
    let stored_at = time(r.u64()?);
    let initial_age = Duration::from_millis(r.u64()?);
    let fresh_until = time(r.u64()?);
    let stale_until = time(r.u64()?);
    let keep_until = time(r.u64()?);
    let swr_until = time(r.u64()?);
    let status = StatusCode::from_u16(r.u16()?).ok()?;
    let key: Box<str> = std::str::from_utf8(r.str()?).ok()?.into();
    let vary = read_vary(&mut r)?;
    let tags = read_tags(&mut r)?;
    let n = r.u16()? as usize;
    let mut headers = HeaderMap::with_capacity(n);
    for _ in 0..n {
        let name = HeaderName::from_bytes(r.str()?).ok()?;
        let value = HeaderValue::from_bytes(r.str()?).ok()?;
        headers.append(name, value);
    }
    if r.pos != 8 + meta_len {
        return None;
    }
    let body_len = usize::try_from(r.u64()?).ok()?;
    let body = r.take(body_len)?;
    if r.pos != file.len() {
        return None;
    }
    let entry = Entry {
        status,
        headers,
        body: Bytes::copy_from_slice(body),
        stored_at,
        initial_age,
        fresh_until,
        stale_until,
        keep_until,
        swr_until,
        vary,
        tags,
        size: 0,
    };
    Some((key, entry))
}

fn read_vary(r: &mut Reader<'_>) -> Option<VarySnapshot> {
    let n = r.u16()? as usize;
    let mut vary = Vec::with_capacity(n);
    for _ in 0..n {
        let name = HeaderName::from_bytes(r.str()?).ok()?;
        let present = r.take(1)?[0] == 1;
        let value = r.str()?;
        let value = if present {
            Some(HeaderValue::from_bytes(value).ok()?)
        } else {
            None
        };
        vary.push((name, value));
    }
    Some(vary.into_boxed_slice())
}

fn read_tags(r: &mut Reader<'_>) -> Option<Box<[Box<str>]>> {
    let n = r.u16()? as usize;
    let mut tags = Vec::with_capacity(n);
    for _ in 0..n {
        tags.push(std::str::from_utf8(r.str()?).ok()?.into());
    }
    Some(tags.into_boxed_slice())
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
