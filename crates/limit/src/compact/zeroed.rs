//! A fixed-length slice allocated zeroed and aligned to cache lines, for the compact tables' arrays.
//!
//! Zeroed memory is what lets a big table cost only what it uses: the allocator takes it fresh from the kernel,
//! whose pages become resident when first written, and a zero fingerprint means an empty way, so nothing has to be
//! written up front. `Vec` gives that only for primitive element types; the states are structs.

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::table::shard::huge_pages;

/// Types for which all-zero bytes are a valid value.
///
/// # Safety
/// An implementor must be plain data (integers and arrays or structs of them): no references, no `NonZero`, no
/// enums without a zero discriminant.
pub(crate) unsafe trait Zeroable: Copy {}

// SAFETY: an integer of zero bytes is 0.
unsafe impl Zeroable for u64 {}

/// Cache-line alignment of every allocation, so a bucket of 8 fingerprints is one line.
const ALIGN: usize = 64;

pub(crate) struct ZeroedSlice<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the slice owns its elements like a `Box<[T]>`; sending or sharing it sends or shares `T`s.
unsafe impl<T: Zeroable + Send> Send for ZeroedSlice<T> {}
// SAFETY: as above; shared access only gives `&T`.
unsafe impl<T: Zeroable + Sync> Sync for ZeroedSlice<T> {}

impl<T> ZeroedSlice<T> {
    fn layout(len: usize) -> Layout {
        Layout::array::<T>(len)
            .and_then(|l| l.align_to(ALIGN))
            .expect("table array too large")
    }
}

impl<T: Zeroable> ZeroedSlice<T> {
    /// `len` zero values, untouched until used.
    pub(crate) fn new(len: usize) -> Self {
        let layout = Self::layout(len);
        if layout.size() == 0 {
            return Self {
                ptr: NonNull::dangling(),
                len,
            };
        }
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        huge_pages(raw as usize, layout.size());
        Self { ptr, len }
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.len * size_of::<T>()
    }
}

impl<T: Zeroable> Deref for ZeroedSlice<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised values (zero bytes are a valid `T`), owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> DerefMut for ZeroedSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for ZeroedSlice<T> {
    fn drop(&mut self) {
        let layout = Self::layout(self.len);
        if layout.size() != 0 {
            // SAFETY: allocated in `new` with this same layout; `T: Copy` has no destructor to run.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) };
        }
    }
}
