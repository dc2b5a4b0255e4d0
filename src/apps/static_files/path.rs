//! From a request path to a path below the served directory: pure, no I/O.
//!
//! A path that could leave the directory, or reach what is not served, is
//! refused here, before any file is touched: `..` and `.` segments (also
//! percent-encoded), an encoded `/` (`%2f`), a backslash, a NUL, and
//! hidden names (`.git`, `.env`) unless they are allowed. Symbolic links are
//! the file system's business: the opening code resolves them and refuses
//! what lands outside the directory.

/// A path below the served directory, as relative bytes (`a/b.txt`), and
/// whether the request named a directory (a trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relative {
    pub(crate) bytes: Vec<u8>,
    pub(crate) directory: bool,
}

/// The relative path a request path (`/a/b%20c.txt`, without the query)
/// names, or `None` when it must not be served.
pub(crate) fn relative_path(path: &str, hidden: bool) -> Option<Relative> {
    let rest = path.strip_prefix('/')?;
    let mut bytes = Vec::with_capacity(rest.len());
    for segment in rest.split('/').filter(|s| !s.is_empty()) {
        let start = bytes.len();
        if start > 0 {
            bytes.push(b'/');
        }
        let name_at = bytes.len();
        percent_decode(segment.as_bytes(), &mut bytes)?;
        if !is_served_name(&bytes[name_at..], hidden) {
            return None;
        }
    }
    Some(Relative { bytes, directory: path.ends_with('/') })
}

/// Whether a request may name `name` (one path segment, decoded): not
/// `.` or `..`, no `/`, backslash or NUL, and not hidden (a leading `.`)
/// unless hidden names are served.
pub(crate) fn is_served_name(name: &[u8], hidden: bool) -> bool {
    let forbidden = name.iter().any(|&b| matches!(b, b'/' | b'\\' | 0));
    let dots = name == b"." || name == b"..";
    !(forbidden || dots || (name.first() == Some(&b'.') && !hidden))
}

/// Appends `encoded` with its `%XX` escapes decoded; `None` for a broken
/// escape.
fn percent_decode(encoded: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = encoded.get(i + 1..i + 3)?;
            let value =
                std::str::from_utf8(hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok())?;
            out.push(value);
            i += 3;
        } else {
            out.push(encoded[i]);
            i += 1;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn served(path: &str) -> Option<String> {
        relative_path(path, false).map(|r| String::from_utf8(r.bytes).unwrap())
    }

    #[test]
    fn plain_paths_map_below_the_directory() {
        assert_eq!(served("/"), Some(String::new()));
        assert_eq!(served("/index.html"), Some("index.html".into()));
        assert_eq!(served("/a//b/c.txt"), Some("a/b/c.txt".into()));
        assert_eq!(served("/with%20space.txt"), Some("with space.txt".into()));
        assert!(relative_path("/docs/", false).unwrap().directory);
        assert!(!relative_path("/docs", false).unwrap().directory);
    }

    #[test]
    fn dot_segments_are_refused_plain_or_encoded() {
        for path in
            ["/../etc/passwd", "/a/../../b", "/./a", "/%2e%2e/etc/passwd", "/%2E%2e/x", "/a/%2e"]
        {
            assert_eq!(served(path), None, "{path}");
        }
    }

    #[test]
    fn encoded_slashes_backslashes_and_nul_are_refused() {
        for path in [
            "/a%2fb",
            "/a%2F..%2Fb",
            "/..%5c..%5cwin.ini",
            "/a\\b",
            "/a%00.txt",
            "/bad%zz",
            "/cut%2",
        ] {
            assert_eq!(served(path), None, "{path}");
        }
    }

    #[test]
    fn hidden_names_are_served_only_when_allowed() {
        assert_eq!(served("/.git/config"), None);
        assert_eq!(served("/app/.env"), None);
        assert_eq!(served("/%2eenv"), None);
        let allowed = relative_path("/.well-known/x", true).unwrap();
        assert_eq!(allowed.bytes, b".well-known/x");
        assert_eq!(relative_path("/..", true), None, "`..` is never a hidden name");
    }

    #[test]
    fn a_path_without_a_leading_slash_is_refused() {
        assert_eq!(served("index.html"), None);
        assert_eq!(served("*"), None);
    }

    proptest! {
        /// Whatever the request, the result has no segment that climbs, no
        /// separator other than `/`, and no NUL.
        #[test]
        fn no_request_path_climbs_out(path in "/[a-zA-Z0-9%./\\\\]{0,40}", hidden: bool) {
            if let Some(relative) = relative_path(&path, hidden) {
                for segment in relative.bytes.split(|&b| b == b'/') {
                    prop_assert!(segment != b".." && segment != b".");
                    prop_assert!(!segment.contains(&b'\\') && !segment.contains(&0));
                    prop_assert!(!segment.is_empty() || relative.bytes.is_empty());
                }
            }
        }
    }
}
