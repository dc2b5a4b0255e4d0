//! Per-thread recycling of the memory every request needs: a response's
//! header list, a connection's read and write buffers, the block of the
//! future that handles a request, and (on a [`BoxShelf`] that `http` keeps)
//! a parsed head's parts with their bytes and header index.
//!
//! With one executor per core, "per thread" means per core: the vectors a
//! finished request gives back are taken by the next one, so a keep-alive
//! connection in its steady state allocates nothing for them. Bounded: at
//! most [`KEEP`] vectors or boxes of each kind wait per thread, no vector
//! holding more than [`MAX_BYTES`]; anything else is freed as usual. A
//! vector always comes back empty, with its capacity.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};
use std::thread::LocalKey;

/// Most vectors of one kind kept per thread.
const KEEP: usize = 256;
/// Largest vector (in bytes of capacity) worth keeping.
const MAX_BYTES: usize = 16 << 10;

/// Spare vectors of one kind.
pub(crate) type Shelf<T> = RefCell<Vec<Vec<T>>>;

thread_local! {
    /// A connection's read buffer, while the connection is idle.
    pub(crate) static READ_BUFS: Shelf<u8> = const { RefCell::new(Vec::new()) };
    /// A connection's write buffer, while the connection is idle.
    pub(crate) static WRITE_BUFS: Shelf<u8> = const { RefCell::new(Vec::new()) };
    /// The request's part of an access-log line.
    pub(crate) static LOG_LINES: Shelf<u8> = const { RefCell::new(Vec::new()) };
    /// A response's headers.
    pub(crate) static RESPONSE_HEADERS: Shelf<(Cow<'static, str>, Cow<'static, str>)> =
        const { RefCell::new(Vec::new()) };
}

/// An empty vector from `shelf` (a new one if the shelf is empty).
pub(crate) fn take<T: 'static>(shelf: &'static LocalKey<Shelf<T>>) -> Vec<T> {
    pop(shelf).unwrap_or_default()
}

/// A spare from `shelf`, if it has one (none during thread exit).
fn pop<S: 'static>(shelf: &'static LocalKey<RefCell<Vec<S>>>) -> Option<S> {
    shelf.try_with(|s| s.borrow_mut().pop()).ok().flatten()
}

/// Puts `spare` on `shelf` unless the shelf is full (or gone, during thread
/// exit): then `spare` is freed.
fn push<S: 'static>(shelf: &'static LocalKey<RefCell<Vec<S>>>, spare: S) {
    let _ = shelf.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEEP {
            s.push(spare);
        }
    });
}

/// Whether `v`'s memory is worth keeping: small enough that holding it
/// while spare costs little.
pub(crate) fn is_worth_keeping<T>(v: &Vec<T>) -> bool {
    v.capacity().saturating_mul(std::mem::size_of::<T>()) <= MAX_BYTES
}

/// Puts `v` back on `shelf`, emptied, if it is worth keeping.
pub(crate) fn give<T: 'static>(shelf: &'static LocalKey<Shelf<T>>, mut v: Vec<T>) {
    if v.capacity() == 0 || !is_worth_keeping(&v) {
        return;
    }
    v.clear();
    push(shelf, v);
}

/// Spare boxes of one kind (each holding its own recycled vectors).
pub(crate) type BoxShelf<T> = RefCell<Vec<Box<T>>>;

/// A box from `shelf`, if it has one.
pub(crate) fn take_box<T: 'static>(shelf: &'static LocalKey<BoxShelf<T>>) -> Option<Box<T>> {
    pop(shelf)
}

/// Puts `b` back on `shelf` (freed if the shelf is full).
pub(crate) fn give_box<T: 'static>(shelf: &'static LocalKey<BoxShelf<T>>, b: Box<T>) {
    push(shelf, b);
}

/// A heap value whose memory block is recycled per thread, like the
/// vectors above: for a future that lives only while a request is handled,
/// so an idle connection does not carry its size, and a busy one does not
/// allocate for it.
pub(crate) struct Recycled<T> {
    ptr: NonNull<T>,
}

thread_local! {
    /// Free blocks by layout (a connection has one or two kinds).
    static BLOCKS: RefCell<Vec<(Layout, Vec<NonNull<u8>>)>> = const { RefCell::new(Vec::new()) };
}

impl<T> Recycled<T> {
    /// The value `make` returns, in a recycled block. Inlined, so the value
    /// can be built in its block: a large future is not first built on the
    /// stack and then copied whole. If `make` panics, the block goes back.
    #[inline(always)]
    pub(crate) fn with(make: impl FnOnce() -> T) -> Recycled<T> {
        let layout = Layout::new::<T>();
        if layout.size() == 0 {
            let ptr = NonNull::<T>::dangling();
            // SAFETY: a dangling pointer is aligned and valid for a
            // zero-sized write.
            unsafe { ptr.as_ptr().write(make()) };
            return Recycled { ptr };
        }
        let block = Block { layout, ptr: take_block(layout).unwrap_or_else(|| new_block(layout)) };
        let ptr: NonNull<T> = block.ptr.cast();
        // SAFETY: the block has `T`'s layout and holds nothing.
        unsafe { ptr.as_ptr().write(make()) };
        std::mem::forget(block);
        Recycled { ptr }
    }
}

/// A block taken for a value still being made: given back if making it
/// panics.
struct Block {
    layout: Layout,
    ptr: NonNull<u8>,
}

impl Drop for Block {
    fn drop(&mut self) {
        give_block(self.layout, self.ptr);
    }
}

impl<T> Drop for Recycled<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` holds the `T` written in `new`, dropped only here.
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        let layout = Layout::new::<T>();
        if layout.size() != 0 {
            give_block(layout, self.ptr.cast());
        }
    }
}

impl<F: Future> Future for Recycled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the value lives in its heap block until `drop`, never
        // moved even when `Recycled` is: it is pinned.
        unsafe { Pin::new_unchecked(&mut *self.ptr.as_ptr()) }.poll(cx)
    }
}

fn new_block(layout: Layout) -> NonNull<u8> {
    // SAFETY: `layout` has a non-zero size (checked by the caller).
    let raw = unsafe { alloc(layout) };
    NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
}

fn take_block(layout: Layout) -> Option<NonNull<u8>> {
    let taken = BLOCKS.try_with(|b| {
        let mut b = b.borrow_mut();
        b.iter_mut().find(|(l, _)| *l == layout).and_then(|(_, free)| free.pop())
    });
    taken.ok().flatten()
}

fn give_block(layout: Layout, block: NonNull<u8>) {
    let kept = BLOCKS.try_with(|b| {
        let mut b = b.borrow_mut();
        let free = match b.iter().position(|(l, _)| *l == layout) {
            Some(i) => &mut b[i].1,
            None => {
                b.push((layout, Vec::new()));
                &mut b.last_mut().expect("just pushed").1
            }
        };
        if free.len() < KEEP {
            free.push(block);
            true
        } else {
            false
        }
    });
    if kept != Ok(true) {
        // SAFETY: `block` came from `alloc` with this layout and holds no
        // value any more.
        unsafe { dealloc(block.as_ptr(), layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_vector_is_taken_again_empty_with_its_capacity() {
        let mut v = take(&READ_BUFS);
        v.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        give(&READ_BUFS, v);
        let again = take(&READ_BUFS);
        assert!(again.is_empty());
        assert_eq!((again.as_ptr(), again.capacity()), (ptr, cap));
    }

    #[test]
    fn a_recycled_block_is_reused_for_the_same_layout() {
        let first = Recycled::with(|| [7u64; 16]);
        let ptr = first.ptr.cast::<u8>();
        drop(first);
        let second = Recycled::with(|| [9u64; 16]);
        assert_eq!(second.ptr.cast::<u8>(), ptr);
        // SAFETY: `second` holds an initialised value.
        assert_eq!(unsafe { second.ptr.as_ref() }[3], 9);
    }

    #[test]
    fn oversized_vectors_are_not_kept() {
        let v: Vec<u8> = Vec::with_capacity(MAX_BYTES + 1);
        give(&READ_BUFS, v);
        assert_eq!(take(&READ_BUFS).capacity(), 0);
    }
}
