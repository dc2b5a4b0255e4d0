//! The ring's provided-buffer ring: receive buffers the kernel picks from
//! when data arrives.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// Receive buffers in a provided-buffer ring.
pub(super) const PICK_COUNT: u16 = 128;

/// Bytes of one receive buffer.
pub(super) const PICK_BYTES: usize = 4 << 10;

/// The ring's buffer group id.
pub(super) const PICK_GROUP: u16 = 0;

/// Receive buffers the kernel picks from (a provided-buffer ring,
/// IORING_REGISTER_PBUF_RING): a connection waiting for its next request
/// holds no buffer; one is taken only when data arrives, and given back as
/// soon as the connection has copied the data out. A few hundred buffers
/// serve any number of idle connections.
pub(super) struct PickRing {
    /// `PICK_COUNT` descriptors shared with the kernel.
    entries: NonNull<BufRingEntry>,
    /// `PICK_COUNT` buffers of `PICK_BYTES`.
    data: NonNull<u8>,
    /// Descriptors published so far (wrapping).
    tail: u16,
}

impl PickRing {
    fn entries_layout() -> Layout {
        let bytes = usize::from(PICK_COUNT) * std::mem::size_of::<BufRingEntry>();
        Layout::from_size_align(bytes, 4096).expect("page-aligned descriptor ring")
    }

    fn data_layout() -> Layout {
        let bytes = usize::from(PICK_COUNT) * PICK_BYTES;
        Layout::from_size_align(bytes, 64).expect("buffer block")
    }

    pub(super) fn new(uring: &IoUring) -> io::Result<PickRing> {
        let entries = zeroed_block(Self::entries_layout()).cast::<BufRingEntry>();
        let data = zeroed_block(Self::data_layout());
        let mut picks = PickRing { entries, data, tail: 0 };
        // SAFETY: `entries` is a page-aligned, zeroed ring of `PICK_COUNT`
        // descriptors that outlives the registration: `PickRing` is dropped
        // after the io_uring it is registered with (field order).
        unsafe {
            uring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                PICK_COUNT,
                PICK_GROUP,
                0,
            )?;
        }
        for id in 0..PICK_COUNT {
            picks.give_back(id);
        }
        Ok(picks)
    }

    /// The first `len` bytes of buffer `id`, which the kernel filled.
    pub(super) fn data(&self, id: u16, len: usize) -> &[u8] {
        let id = usize::from(id % PICK_COUNT);
        // SAFETY: buffer `id` lies within `data`; the kernel wrote `len`
        // (at most `PICK_BYTES`) bytes to it and holds it no longer.
        unsafe {
            std::slice::from_raw_parts(self.data.as_ptr().add(id * PICK_BYTES), len.min(PICK_BYTES))
        }
    }

    /// Hands buffer `id` to the kernel again.
    pub(super) fn give_back(&mut self, id: u16) {
        let slot = usize::from(self.tail % PICK_COUNT);
        let addr = self.data.as_ptr() as u64 + (u64::from(id % PICK_COUNT) * PICK_BYTES as u64);
        // SAFETY: `slot` indexes the descriptor ring, which the kernel does
        // not read beyond the published tail.
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        entry.set_addr(addr);
        entry.set_len(PICK_BYTES as u32);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail shares the first descriptor's last field; the
        // kernel reads it with acquire ordering.
        let tail = unsafe { &*(BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for PickRing {
    fn drop(&mut self) {
        // SAFETY: both blocks came from `zeroed_block` with these layouts,
        // and the io_uring that used them is closed.
        unsafe {
            dealloc(self.entries.as_ptr().cast(), Self::entries_layout());
            dealloc(self.data.as_ptr(), Self::data_layout());
        }
    }
}

fn zeroed_block(layout: Layout) -> NonNull<u8> {
    // SAFETY: both layouts have a non-zero size.
    let raw = unsafe { alloc_zeroed(layout) };
    NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
}
