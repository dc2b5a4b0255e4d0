//! The start of the last response head a core wrote (status line, `Server`,
//! `Date` and the application's headers), kept so that the next response
//! with the same status and headers starts with one copy.
//!
//! Only responses whose headers are all `&'static str` are kept: a static
//! string never changes, so such a response is recognised by the addresses
//! and lengths of its names and values, without reading them, and is known
//! to have been checked. An application that answers one endpoint with the
//! same content type again and again (the common case) hits every time.
//!
//! This module owns recognising a response and the kept bytes; encoding is
//! `http::ServerHeaders::encode_start`, checking is in `conn`. The cache
//! must be cleared whenever `Date` changes.

use std::borrow::Cow;

use crate::app::Response;

/// Most application headers a kept response may have.
const MAX_HEADERS: usize = 4;

/// One kept head start.
#[derive(Default)]
pub(crate) struct HeadCache {
    key: Option<Key>,
    start: Vec<u8>,
    /// Whether the kept response's headers ask to close the connection.
    close: bool,
}

/// What identifies a response's head start: its status and where each of
/// its static header names and values is.
#[derive(Clone, Copy)]
struct Key {
    status: u16,
    len: usize,
    headers: [[usize; 4]; MAX_HEADERS],
}

impl Key {
    /// `None` when a header is not static or there are too many.
    fn of(response: &Response) -> Option<Key> {
        let list = response.header_list();
        if list.len() > MAX_HEADERS {
            return None;
        }
        let mut headers = [[0; 4]; MAX_HEADERS];
        for (slot, header) in headers.iter_mut().zip(list) {
            let (Cow::Borrowed(name), Cow::Borrowed(value)) = header else {
                return None;
            };
            *slot = [name.as_ptr() as usize, name.len(), value.as_ptr() as usize, value.len()];
        }
        Some(Key { status: response.status(), len: list.len(), headers })
    }
}

impl PartialEq for Key {
    /// Only the headers in use are compared, each as one fixed-size block:
    /// comparing the whole key would be a call to `memcmp` per response.
    fn eq(&self, other: &Key) -> bool {
        self.status == other.status
            && self.len == other.len
            && (0..self.len.min(MAX_HEADERS)).all(|i| self.headers[i] == other.headers[i])
    }
}

impl HeadCache {
    /// Forgets the kept start (the `Date` in it is no longer current).
    pub(crate) fn clear(&mut self) {
        self.key = None;
    }

    /// If `response` has the kept start, appends it to `out` and returns
    /// whether its headers ask to close the connection.
    pub(crate) fn write_known(&self, response: &Response, out: &mut Vec<u8>) -> Option<bool> {
        let key = self.key?;
        if Key::of(response)? != key {
            return None;
        }
        out.extend_from_slice(&self.start);
        Some(self.close)
    }

    /// Keeps `start`, just written for `response` (checked and valid), if
    /// its headers are static.
    pub(crate) fn keep(&mut self, response: &Response, start: &[u8], close: bool) {
        self.key = Key::of(response);
        if self.key.is_some() {
            self.start.clear();
            self.start.extend_from_slice(start);
            self.close = close;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_of(cache: &HeadCache, response: &Response) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        cache.write_known(response, &mut out).map(|_| out)
    }

    #[test]
    fn a_response_with_the_same_status_and_static_headers_gets_the_kept_start() {
        // One pair of static strings, so the test does not depend on the
        // compiler merging equal literals.
        let (name, value) = ("content-type", "text/plain");
        let mut cache = HeadCache::default();
        let first = Response::new(200).header(name, value);
        cache.keep(&first, b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n", false);
        let next = Response::new(200).header(name, value);
        assert_eq!(
            start_of(&cache, &next).as_deref(),
            Some(&b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"[..])
        );
    }

    #[test]
    fn another_status_or_header_value_misses() {
        let (name, plain, html) = ("content-type", "text/plain", "text/html");
        let mut cache = HeadCache::default();
        cache.keep(&Response::new(200).header(name, plain), b"x", false);
        assert!(start_of(&cache, &Response::new(200).header(name, plain)).is_some());
        assert!(start_of(&cache, &Response::new(404).header(name, plain)).is_none());
        assert!(start_of(&cache, &Response::new(200).header(name, html)).is_none());
        assert!(start_of(&cache, &Response::new(200)).is_none());
    }

    #[test]
    fn a_response_with_an_owned_header_is_never_kept() {
        let mut cache = HeadCache::default();
        let owned = Response::new(200).header("x-id", String::from("7"));
        cache.keep(&owned, b"x", false);
        let again = Response::new(200).header("x-id", String::from("7"));
        assert!(start_of(&cache, &again).is_none());
    }

    #[test]
    fn a_cleared_cache_misses_and_remembers_close() {
        let (name, value) = ("connection", "close");
        let mut cache = HeadCache::default();
        let response = || Response::new(200).header(name, value);
        cache.keep(&response(), b"x", true);
        assert_eq!(cache.write_known(&response(), &mut Vec::new()), Some(true));
        cache.clear();
        assert_eq!(cache.write_known(&response(), &mut Vec::new()), None);
    }
}
