//! A key of one counter table as the table stores it: its hash under the table's seed, computed once per
//! request and kept with the key (the shard, the probe and a rehash all use it), and its bytes inline up to
//! [`INLINE`] (an IPv4 or IPv6 address, most rule keys), so a lookup compares bytes already in the entry's
//! cache line instead of following a pointer to the heap.

use std::ops::Deref;

/// Key bytes stored in the key itself; longer keys (long header or parameter values) go to the heap.
pub(crate) const INLINE: usize = 22;

#[derive(Clone)]
enum Bytes {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

/// A table's key: its bytes and their hash under the table's seed ([`super::CounterTable::key`]).
#[derive(Clone)]
pub struct Key {
    pub(crate) hash: u64,
    bytes: Bytes,
}

impl Key {
    pub(crate) fn new(hash: u64, key: &[u8]) -> Self {
        let bytes = if key.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..key.len()].copy_from_slice(key);
            Bytes::Inline {
                len: key.len() as u8,
                buf,
            }
        } else {
            Bytes::Heap(key.into())
        };
        Key { hash, bytes }
    }

    /// Whether this is `key`, whose hash is `hash`.
    #[inline]
    pub(crate) fn is(&self, hash: u64, key: &[u8]) -> bool {
        self.hash == hash && **self == *key
    }
}

impl Deref for Key {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Inline { len, buf } => &buf[..usize::from(*len)],
            Bytes::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x?}", &**self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_keys_read_back() {
        for len in [0, 1, 4, 16, INLINE, INLINE + 1, 300] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let key = Key::new(7, &bytes);
            assert_eq!(&*key, &bytes[..]);
            assert!(key.is(7, &bytes));
            assert!(!key.is(8, &bytes));
            let mut other = bytes.clone();
            other.push(1);
            assert!(!key.is(7, &other));
        }
        assert!(size_of::<Key>() <= 32);
    }
}
