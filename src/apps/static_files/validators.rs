//! Validators of a file (`ETag`, `Last-Modified`) and the conditional
//! requests that use them (RFC 9110 §13): pure, no I/O.
//!
//! The entity tag is the file's modification time and size, as nginx makes
//! it: a file rewritten in place gets a new one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a file's validators are made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    /// Modification time.
    pub(crate) modified: SystemTime,
    /// Size in bytes.
    pub(crate) len: u64,
}

impl Version {
    /// The strong entity tag: `"<mtime seconds, hex>.<nanoseconds, hex>-<size, hex>"`.
    pub(crate) fn etag(&self) -> String {
        let since = self.modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        format!("\"{:x}.{:x}-{:x}\"", since.as_secs(), since.subsec_nanos(), self.len)
    }

    /// The modification time in whole seconds, as `Last-Modified` says it.
    fn modified_secs(&self) -> u64 {
        self.modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
    }
}

/// Whether the request's preconditions fail, for 412 Precondition Failed
/// (RFC 9110 §13.2.2, steps 1 and 2): `If-Match` decides when present
/// (strong comparison; `*` matches the file); else `If-Unmodified-Since`,
/// when it is a valid date and the file is newer.
pub(crate) fn precondition_fails(
    version: &Version,
    etag: &str,
    if_match: Option<&[u8]>,
    if_unmodified_since: Option<&[u8]>,
) -> bool {
    if let Some(list) = if_match {
        let list = list.trim_ascii();
        return list != b"*"
            && !list.split(|&b| b == b',').any(|tag| tag.trim_ascii() == etag.as_bytes());
    }
    match if_unmodified_since.and_then(parse_date) {
        Some(since) => version.modified_secs() > since,
        None => false,
    }
}

/// Whether a GET or HEAD with these conditions gets 304 Not Modified
/// (RFC 9110 §13.2.2): `If-None-Match` decides when present (weak
/// comparison); else `If-Modified-Since`, when it is a valid date and the
/// file is not newer.
pub(crate) fn is_not_modified(
    version: &Version,
    etag: &str,
    if_none_match: Option<&[u8]>,
    if_modified_since: Option<&[u8]>,
) -> bool {
    if let Some(list) = if_none_match {
        return matches_weakly(list, etag);
    }
    match if_modified_since.and_then(parse_date) {
        Some(since) => version.modified_secs() <= since,
        None => false,
    }
}

/// Whether a `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5):
/// no `If-Range`, or one that names this version exactly: its strong
/// entity tag, or its `Last-Modified` date when that is a strong
/// validator (the file has not changed within the last second, so no other
/// version can carry the same date).
pub(crate) fn range_applies(version: &Version, etag: &str, if_range: Option<&[u8]>) -> bool {
    let Some(value) = if_range else { return true };
    let value = value.trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return value == etag.as_bytes();
    }
    let settled = SystemTime::now()
        .duration_since(version.modified)
        .is_ok_and(|age| age >= Duration::from_secs(1));
    settled && parse_date(value).is_some_and(|date| date == version.modified_secs())
}

/// Whether a list of entity tags (`"a", W/"b"`, or `*`) matches `etag`
/// by weak comparison (the `W/` prefix does not matter).
fn matches_weakly(list: &[u8], etag: &str) -> bool {
    let list = list.trim_ascii();
    list == b"*"
        || list
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|tag| tag.strip_prefix(b"W/").unwrap_or(tag) == etag.as_bytes())
}

/// Seconds since the epoch of an HTTP date (IMF-fixdate or the obsolete
/// forms), or `None`.
fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().as_ref().map(Duration::as_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version() -> Version {
        Version { modified: UNIX_EPOCH + Duration::new(784_111_777, 500), len: 1234 }
    }

    #[test]
    fn the_etag_follows_time_and_size() {
        let v = version();
        assert_eq!(v.etag(), "\"2ebc98a1.1f4-4d2\"");
        let bigger = Version { len: 1235, ..v };
        assert_ne!(bigger.etag(), v.etag());
    }

    #[test]
    fn if_none_match_decides_with_weak_comparison() {
        let v = version();
        let etag = v.etag();
        let inm = |list: &str| is_not_modified(&v, &etag, Some(list.as_bytes()), None);
        assert!(inm(&etag));
        assert!(inm(&format!("\"x\", W/{etag}")));
        assert!(inm("*"));
        assert!(!inm("\"other\""));
        // If-None-Match wins over If-Modified-Since.
        let later = "Sun, 06 Nov 2050 08:49:37 GMT".as_bytes();
        assert!(!is_not_modified(&v, &etag, Some(b"\"other\""), Some(later)));
    }

    #[test]
    fn if_match_and_if_unmodified_since_guard_the_request() {
        let v = version();
        let etag = v.etag();
        let fails = |im: Option<&str>, ius: Option<&str>| {
            precondition_fails(&v, &etag, im.map(str::as_bytes), ius.map(str::as_bytes))
        };
        assert!(!fails(None, None));
        assert!(!fails(Some(&etag), None));
        assert!(!fails(Some("*"), None));
        assert!(!fails(Some(&format!("\"x\", {etag}")), None));
        assert!(fails(Some("\"x\""), None));
        assert!(fails(Some(&format!("W/{etag}")), None), "If-Match compares strongly");
        assert!(!fails(None, Some("Sun, 06 Nov 1994 08:49:37 GMT")));
        assert!(fails(None, Some("Sun, 06 Nov 1994 08:49:36 GMT")));
        assert!(!fails(None, Some("not a date")));
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let v = version();
        let etag = v.etag();
        let ims = |date: &str| is_not_modified(&v, &etag, None, Some(date.as_bytes()));
        assert!(ims("Sun, 06 Nov 1994 08:49:37 GMT"), "the same second");
        assert!(ims("Sun, 06 Nov 1994 08:49:38 GMT"));
        assert!(!ims("Sun, 06 Nov 1994 08:49:36 GMT"));
        assert!(!ims("yesterday"), "an invalid date is ignored");
    }

    #[test]
    fn if_range_needs_an_exact_validator() {
        let v = version();
        let etag = v.etag();
        assert!(range_applies(&v, &etag, None));
        assert!(range_applies(&v, &etag, Some(etag.as_bytes())));
        assert!(!range_applies(&v, &etag, Some(format!("W/{etag}").as_bytes())));
        assert!(!range_applies(&v, &etag, Some(b"\"old\"")));
        assert!(range_applies(&v, &etag, Some(b"Sun, 06 Nov 1994 08:49:37 GMT")));
        assert!(!range_applies(&v, &etag, Some(b"Sun, 06 Nov 1994 08:49:38 GMT")));
    }
}
