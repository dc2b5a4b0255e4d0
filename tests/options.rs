//! `OPTIONS *` (asterisk-form, RFC 9112 §3.2.4) asks about the server, not
//! a resource: the server answers it, unless the application opts in.

mod support;

use std::cell::Cell;

use support::Client;
use uring_serve::{App, Context, Cores, OptionsAsterisk, Request, Response, Server, ServerHandle};

/// Answers everything with 200 `app` and counts what it was asked.
#[derive(Default)]
struct Counting {
    calls: Cell<u32>,
}

impl App for Counting {
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        self.calls.set(self.calls.get() + 1);
        Response::text(format!("app {} {}", self.calls.get(), req.path()))
    }
}

fn start(answer: OptionsAsterisk) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .options_asterisk(answer)
        .serve(|_| Counting::default())
        .expect("server starts")
}

#[test]
fn options_asterisk_is_answered_by_the_server_with_allow_and_no_body() {
    let server = start(OptionsAsterisk::Allow("GET, HEAD".into()));
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());
    // The connection goes on, and the application was never called.
    assert_eq!(c.get("/x").text(), "app 1 /x");
}

#[test]
fn the_default_answer_allows_the_methods_the_server_passes_on() {
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .serve(|_| Counting::default())
        .expect("server starts");
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("allow"), Some(uring_serve::config::defaults::ALLOW));
}

#[test]
fn an_application_that_opts_in_answers_options_asterisk_itself() {
    let server = start(OptionsAsterisk::App);
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "app 1 *"));
}

#[test]
fn options_on_a_path_still_goes_to_the_application() {
    let server = start(OptionsAsterisk::Allow("GET".into()));
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("OPTIONS /x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.text(), "app 1 /x");
}

#[test]
fn an_allow_list_that_is_no_header_value_is_a_configuration_error() {
    let started = Server::builder()
        .bind("127.0.0.1:0")
        .options_asterisk(OptionsAsterisk::Allow("GET\r\nX: y".into()))
        .serve(|_| Counting::default());
    assert!(matches!(started, Err(uring_serve::StartError::Config(_))));
}
