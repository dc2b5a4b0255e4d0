//! A directory listing (`--static-listing`) as HTML: pure, no I/O.
//!
//! Names come from the file system and may hold any byte but `/` and NUL,
//! so nothing of a name reaches the page unescaped: the text shown is the
//! name made valid UTF-8 with `&`, `<`, `>`, `"` and `'` escaped, and the
//! link is the name's bytes percent-encoded except letters, digits and
//! `-._~`. A name like `javascript:alert(1)` therefore links to
//! `javascript%3Aalert%281%29`, a relative path, never a scheme. Which
//! entries are listed (only what would be served) is the caller's choice.

use std::cmp::Ordering;
use std::fmt::Write;
use std::time::SystemTime;

use crate::http::HttpDate;

/// One entry of a listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The name in the directory (no `/`).
    pub(crate) name: Vec<u8>,
    /// Whether it is a directory (its link ends with `/`).
    pub(crate) directory: bool,
    /// Its size in bytes (not shown for a directory).
    pub(crate) len: u64,
    /// When it last changed.
    pub(crate) modified: SystemTime,
}

/// The listing page of the directory at `dir` (the relative path below
/// the served directory, empty for its root): a parent link unless it is
/// the root, directories first, then files, each by name. With `more`,
/// the directory holds more than these (the listing has a bound); the page
/// says so.
pub(crate) fn render(dir: &[u8], entries: &mut [Entry], more: bool) -> String {
    entries.sort_by(order);
    let mut title = String::from("/");
    escape_html(dir, &mut title);
    if !dir.is_empty() {
        title.push('/');
    }
    let mut page = String::with_capacity(512 + entries.len() * 160);
    page.push_str("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(page, "<title>Index of {title}</title>");
    page.push_str("</head>\n<body>\n");
    let _ = writeln!(page, "<h1>Index of {title}</h1>");
    page.push_str("<table>\n<tr><th>Name</th><th>Last modified</th><th>Size</th></tr>\n");
    if !dir.is_empty() {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in entries.iter() {
        let mut href = String::new();
        encode_link(&entry.name, &mut href);
        let mut shown = String::new();
        escape_html(&entry.name, &mut shown);
        let slash = if entry.directory { "/" } else { "" };
        let modified = HttpDate::from_system_time(entry.modified);
        let modified = String::from_utf8_lossy(modified.as_bytes());
        let _ = write!(
            page,
            "<tr><td><a href=\"{href}{slash}\">{shown}{slash}</a></td><td>{modified}</td><td>"
        );
        if entry.directory {
            page.push('-');
        } else {
            let _ = write!(page, "{}", entry.len);
        }
        page.push_str("</td></tr>\n");
    }
    page.push_str("</table>\n");
    if more {
        page.push_str("<p>More entries are not listed.</p>\n");
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// Directories before files, then by name (bytewise, as `ls` in the C
/// locale).
fn order(a: &Entry, b: &Entry) -> Ordering {
    b.directory.cmp(&a.directory).then_with(|| a.name.cmp(&b.name))
}

/// Appends `name` as text: invalid UTF-8 replaced, markup escaped.
fn escape_html(name: &[u8], out: &mut String) {
    for c in String::from_utf8_lossy(name).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

/// Appends `name` as one relative path segment: letters, digits and
/// `-._~` stay, every other byte is `%XX`.
fn encode_link(name: &[u8], out: &mut String) {
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &[u8], directory: bool, len: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            directory,
            len,
            modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
        }
    }

    #[test]
    fn directories_come_first_then_files_by_name() {
        let mut entries =
            vec![entry(b"b.txt", false, 2), entry(b"z", true, 0), entry(b"a.txt", false, 1)];
        let page = render(b"", &mut entries, false);
        let z = page.find("href=\"z/\"").unwrap();
        let a = page.find("href=\"a.txt\"").unwrap();
        let b = page.find("href=\"b.txt\"").unwrap();
        assert!(z < a && a < b, "{page}");
    }

    #[test]
    fn names_are_escaped_in_text_and_encoded_in_links() {
        let mut entries = vec![entry(b"<script>&'\".html", false, 5)];
        let page = render(b"", &mut entries, false);
        assert!(page.contains("href=\"%3Cscript%3E%26%27%22.html\""), "{page}");
        assert!(page.contains(">&lt;script&gt;&amp;&#39;&quot;.html</a>"), "{page}");
        assert!(!page.contains("<script>"));
    }

    #[test]
    fn a_name_that_looks_like_a_scheme_links_to_a_relative_path() {
        let mut entries = vec![entry(b"javascript:alert(1)", false, 0)];
        let page = render(b"", &mut entries, false);
        assert!(page.contains("href=\"javascript%3Aalert%281%29\""), "{page}");
    }

    #[test]
    fn invalid_utf8_names_are_shown_replaced_and_linked_exactly() {
        let mut entries = vec![entry(b"caf\xe9", false, 0)];
        let page = render(b"", &mut entries, false);
        assert!(page.contains("href=\"caf%E9\""), "{page}");
        assert!(page.contains(">caf\u{fffd}</a>"), "{page}");
    }

    #[test]
    fn a_subdirectory_has_a_parent_link_and_the_root_has_none() {
        let page = render(b"docs/<b>", &mut [], false);
        assert!(page.contains("<title>Index of /docs/&lt;b&gt;/</title>"), "{page}");
        assert!(page.contains("href=\"../\""));
        assert!(!render(b"", &mut [], false).contains("href=\"../\""));
    }

    #[test]
    fn sizes_dates_and_the_bound_are_shown() {
        let mut entries = vec![entry(b"f", false, 1234), entry(b"d", true, 4096)];
        let page = render(b"", &mut entries, true);
        assert!(page.contains("<td>Sun, 06 Nov 1994 08:49:37 GMT</td><td>1234</td>"), "{page}");
        assert!(page.contains("</a></td><td>Sun, 06 Nov 1994 08:49:37 GMT</td><td>-</td>"));
        assert!(page.contains("More entries are not listed."));
    }
}
