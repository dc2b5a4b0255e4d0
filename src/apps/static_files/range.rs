//! The `Range` header of a GET (RFC 9110 §14.2): which bytes of a file of
//! known length to send. Pure, no I/O.
//!
//! One range is answered with 206 and that range. Several ranges are
//! answered with 200 and the whole file (allowed by §14.2: a server may
//! ignore `Range`), as is a header that does not parse or names another
//! unit. A range that starts past the end is 416.

/// What to send of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    /// All of it (200).
    Whole,
    /// Bytes `first..=last` (206).
    Part { first: u64, last: u64 },
    /// None: the range starts past the end (416).
    Unsatisfiable,
}

/// The selection a `Range` header value makes of `len` bytes.
pub(crate) fn select(range: Option<&[u8]>, len: u64) -> Selection {
    // An empty file is sent whole (200), as nginx does: no range of it
    // has a first byte to name.
    if len == 0 {
        return Selection::Whole;
    }
    let Some(spec) = range.and_then(|r| std::str::from_utf8(r).ok()) else {
        return Selection::Whole;
    };
    let Some((unit, set)) = spec.trim().split_once('=') else { return Selection::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Selection::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return Selection::Whole };
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-N`: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => Selection::Unsatisfiable,
            Some(_) if len == 0 => Selection::Unsatisfiable,
            Some(n) => Selection::Part { first: len.saturating_sub(n), last: len - 1 },
            None => Selection::Whole,
        },
        // `N-` or `N-M`.
        (false, open) => {
            let Some(first) = number(first) else { return Selection::Whole };
            let last = if open { Some(u64::MAX) } else { number(last) };
            match last {
                None => Selection::Whole,
                Some(last) if last < first => Selection::Whole,
                Some(_) if first >= len => Selection::Unsatisfiable,
                Some(last) => Selection::Part { first, last: last.min(len - 1) },
            }
        }
        (true, true) => Selection::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(range: &str, len: u64) -> Selection {
        select(Some(range.as_bytes()), len)
    }

    #[test]
    fn one_range_selects_its_bytes() {
        assert_eq!(sel("bytes=0-99", 1000), Selection::Part { first: 0, last: 99 });
        assert_eq!(sel("bytes=500-", 1000), Selection::Part { first: 500, last: 999 });
        assert_eq!(sel("bytes=-100", 1000), Selection::Part { first: 900, last: 999 });
        assert_eq!(sel("bytes=990-2000", 1000), Selection::Part { first: 990, last: 999 });
        assert_eq!(sel("Bytes = 0-0", 10), Selection::Part { first: 0, last: 0 });
        assert_eq!(sel("bytes=-5000", 1000), Selection::Part { first: 0, last: 999 });
    }

    #[test]
    fn a_range_past_the_end_is_unsatisfiable() {
        assert_eq!(sel("bytes=1000-", 1000), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=1000-1001", 1000), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=-0", 1000), Selection::Unsatisfiable);
        assert_eq!(sel("bytes=0-", 0), Selection::Whole, "an empty file is sent whole");
        assert_eq!(sel("bytes=-1", 0), Selection::Whole);
    }

    #[test]
    fn what_is_not_one_byte_range_is_ignored() {
        for range in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes",
            "bytes=+1-2",
        ] {
            assert_eq!(sel(range, 1000), Selection::Whole, "{range}");
        }
        assert_eq!(select(None, 1000), Selection::Whole);
        assert_eq!(select(Some(b"bytes=\xff-1"), 1000), Selection::Whole);
    }
}
