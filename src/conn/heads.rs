//! [`ResponseHeads`]: the start of every response head a core writes, from
//! its caches: `Server` and `Date` (re-rendered once a second), and the
//! last head's start, reused while `Date` stands for a response with the
//! same status and static headers (see `head_cache`).

use std::cell::RefCell;

use tracing::error;

use super::head_cache::HeadCache;
use crate::app::{Body, Response};
use crate::http::{self, HttpDate, ServerHeaders};

/// A core's response-head caches.
pub(crate) struct ResponseHeads {
    /// `Server` and `Date`.
    server: RefCell<ServerHeaders>,
    /// The start of the last response head, while `Date` stands.
    last: RefCell<HeadCache>,
}

impl ResponseHeads {
    pub(crate) fn new(date: HttpDate, server: Option<&str>) -> ResponseHeads {
        ResponseHeads {
            server: RefCell::new(ServerHeaders::new(date, server)),
            last: RefCell::new(HeadCache::default()),
        }
    }

    /// A new `Date`: every kept head start is stale.
    pub(crate) fn set_date(&self, date: HttpDate) {
        self.server.borrow_mut().set_date(date);
        self.last.borrow_mut().clear();
    }

    /// Checks `response` and writes the start of its head (status line,
    /// `Server`, `Date`, the application's headers); a response with an
    /// invalid status or header is replaced by a 500 first. Returns
    /// whether its headers ask to close the connection. The end of the
    /// head is `http::encode_end`.
    pub(crate) fn start(&self, response: &mut Response, out: &mut Vec<u8>) -> bool {
        let mut last = self.last.borrow_mut();
        if let Some(close) = last.write_known(response, out) {
            return close;
        }
        // 101 only with the connection to hand over (`Response::upgrade`).
        let status = match (response.status(), response.body_ref()) {
            (101, Body::Upgrade(_)) => 200,
            (status, _) => status,
        };
        if !http::is_sendable_head(status, response.headers()) {
            error!(
                status = response.status(),
                "application sent an invalid status or header; answered 500"
            );
            *response = Response::internal_error();
        }
        let close = response.headers().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection") && http::connection_has_close(v.as_bytes())
        });
        let at = out.len();
        self.server.borrow().encode_start(response.status(), response.headers(), out);
        last.keep(response, &out[at..], close);
        close
    }
}
