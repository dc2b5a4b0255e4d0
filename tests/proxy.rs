//! Behind a proxy (`--proxy-headers`, `--forwarded-allow-ips`): the client
//! address and scheme an application sees, from trusted and untrusted peers.

mod support;

use support::Client;
use uring_serve::{App, Context, Cores, Request, Response, Server, ServerHandle, TrustedProxies};

/// Answers with the client address and scheme it was given.
struct Origin;

impl App for Origin {
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        let ip = |addr: Option<std::net::SocketAddr>| addr.map(|a| a.ip().to_string());
        let (client, peer) = (ip(req.client_addr()).unwrap(), ip(req.peer_addr()).unwrap());
        Response::text(format!("{client} {} {peer}", req.scheme()))
    }
}

fn behind(trusted: Option<&str>) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .proxy_headers(trusted.map(|list| list.parse::<TrustedProxies>().unwrap()))
        .serve(|_| Origin)
        .expect("server starts")
}

fn ask(server: &ServerHandle, headers: &str) -> String {
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip(&format!("GET / HTTP/1.1\r\nHost: t\r\n{headers}\r\n"));
    assert_eq!(r.status, 200);
    r.text()
}

#[test]
fn a_trusted_peer_names_the_client_and_the_scheme() {
    let server = behind(Some("127.0.0.1"));
    let seen = ask(&server, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n");
    assert_eq!(seen, "203.0.113.7 https 127.0.0.1");
}

#[test]
fn a_forged_hop_before_the_trusted_proxies_is_passed_over() {
    // The client sent "X-Forwarded-For: 6.6.6.6"; its proxy (10.0.0.5)
    // appended the client's real address, the last proxy (us, 127.0.0.1)
    // appended 10.0.0.5.
    let server = behind(Some("127.0.0.1, 10.0.0.0/8"));
    let seen =
        ask(&server, "X-Forwarded-For: 6.6.6.6, 198.51.100.4\r\nX-Forwarded-For: 10.0.0.5\r\n");
    assert_eq!(seen, "198.51.100.4 http 127.0.0.1");
}

#[test]
fn an_untrusted_peer_cannot_set_the_client_or_the_scheme() {
    let server = behind(Some("10.0.0.1"));
    let seen = ask(&server, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n");
    assert_eq!(seen, "127.0.0.1 http 127.0.0.1");
}

#[test]
fn without_proxy_headers_forwarding_headers_are_ignored() {
    let server = behind(None);
    let seen = ask(&server, "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n");
    assert_eq!(seen, "127.0.0.1 http 127.0.0.1");
}
