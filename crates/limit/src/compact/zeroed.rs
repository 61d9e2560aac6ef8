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

/// Cache-line alignment of every slice, so a bucket of 8 fingerprints is one line.
const ALIGN: usize = 64;
/// The alignment asked of the allocator. An allocator can hand out zeroed memory for free only at its natural
/// alignment (the system allocator's `calloc`; above it, Rust's `System` allocates and then writes zeros over the
/// whole block, which would make every page resident), so the slice is placed at a cache line inside a block
/// one line longer.
const ALLOC_ALIGN: usize = 16;

pub(crate) struct ZeroedSlice<T> {
    /// The first element, at a multiple of [`ALIGN`] inside the block.
    ptr: NonNull<T>,
    /// The block from the allocator.
    raw: *mut u8,
    len: usize,
}

// SAFETY: the slice owns its elements like a `Box<[T]>`; sending or sharing it sends or shares `T`s.
unsafe impl<T: Zeroable + Send> Send for ZeroedSlice<T> {}
// SAFETY: as above; shared access only gives `&T`.
unsafe impl<T: Zeroable + Sync> Sync for ZeroedSlice<T> {}

impl<T> ZeroedSlice<T> {
    /// The block for `len` elements, or `None` when they take no bytes.
    fn layout(len: usize) -> Option<Layout> {
        const { assert!(align_of::<T>() <= ALIGN) };
        let bytes = Layout::array::<T>(len)
            .expect("table array too large")
            .size();
        (bytes > 0).then(|| {
            Layout::from_size_align(bytes + ALIGN, ALLOC_ALIGN).expect("table array too large")
        })
    }
}

impl<T: Zeroable> ZeroedSlice<T> {
    /// `len` zero values, untouched until used.
    pub(crate) fn new(len: usize) -> Self {
        let Some(layout) = Self::layout(len) else {
            return Self {
                ptr: NonNull::dangling(),
                raw: std::ptr::null_mut(),
                len,
            };
        };
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        if raw.is_null() {
            handle_alloc_error(layout)
        }
        let offset = (raw as usize).next_multiple_of(ALIGN) - raw as usize;
        // SAFETY: the offset is below ALIGN, and the block is ALIGN bytes longer than the slice.
        let first = unsafe { raw.add(offset) };
        let ptr = NonNull::new(first.cast::<T>()).expect("non-null block");
        huge_pages(raw as usize, layout.size());
        Self { ptr, raw, len }
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
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: allocated in `new` with this same layout; the elements need no drop (`Zeroable: Copy`).
            unsafe { dealloc(self.raw, layout) };
        }
    }
}
