//! Per-thread recycling of the vectors every request and response carries:
//! a parsed head's bytes and header index, and a response's header list.
//!
//! With one executor per core, "per thread" means per core: the vectors a
//! finished request gives back are taken by the next one, so a keep-alive
//! connection in its steady state allocates nothing for them. Bounded: at
//! most [`KEEP`] vectors of each kind wait per thread, none holding more
//! than [`MAX_BYTES`]; anything else is freed as usual. A vector always
//! comes back empty, with its capacity.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ops::Range;
use std::thread::LocalKey;

/// Most vectors of one kind kept per thread.
const KEEP: usize = 256;
/// Largest vector (in bytes of capacity) worth keeping.
const MAX_BYTES: usize = 16 << 10;

/// Spare vectors of one kind.
pub(crate) type Shelf<T> = RefCell<Vec<Vec<T>>>;

thread_local! {
    /// A request head's bytes.
    pub(crate) static HEAD_BYTES: Shelf<u8> = const { RefCell::new(Vec::new()) };
    /// A request head's header name and value offsets.
    pub(crate) static HEAD_INDEX: Shelf<(Range<usize>, Range<usize>)> =
        const { RefCell::new(Vec::new()) };
    /// A response's headers.
    pub(crate) static RESPONSE_HEADERS: Shelf<(Cow<'static, str>, Cow<'static, str>)> =
        const { RefCell::new(Vec::new()) };
}

/// An empty vector from `shelf` (a new one if the shelf is empty).
pub(crate) fn take<T: 'static>(shelf: &'static LocalKey<Shelf<T>>) -> Vec<T> {
    shelf.try_with(|s| s.borrow_mut().pop()).ok().flatten().unwrap_or_default()
}

/// Puts `v` back on `shelf`, emptied, if it is worth keeping.
pub(crate) fn give<T: 'static>(shelf: &'static LocalKey<Shelf<T>>, mut v: Vec<T>) {
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    if v.capacity() == 0 || bytes > MAX_BYTES {
        return;
    }
    v.clear();
    // During thread exit the shelf may be gone: `v` is then freed.
    let _ = shelf.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEEP {
            s.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_vector_is_taken_again_empty_with_its_capacity() {
        let mut v = take(&HEAD_BYTES);
        v.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        give(&HEAD_BYTES, v);
        let again = take(&HEAD_BYTES);
        assert!(again.is_empty());
        assert_eq!((again.as_ptr(), again.capacity()), (ptr, cap));
    }

    #[test]
    fn oversized_vectors_are_not_kept() {
        let v: Vec<u8> = Vec::with_capacity(MAX_BYTES + 1);
        give(&HEAD_BYTES, v);
        assert_eq!(take(&HEAD_BYTES).capacity(), 0);
    }
}
