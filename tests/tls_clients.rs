//! HTTPS as common clients speak it: curl, Python's `ssl`, and
//! `openssl s_client` (versions, ALPN, resumption, old versions refused).
//! A client this machine lacks skips its test with a message, unless
//! `URING_SERVE_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs them).

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::tls::TestPki;
use support::{find_tool, skip_without};
use uring_serve::apps::BenchApp;
use uring_serve::tls::TlsSettings;
use uring_serve::{Cores, Server, ServerHandle};

fn start(pki: &TestPki) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .tls(TlsSettings::new(&pki.certfile, &pki.keyfile))
        .serve(BenchApp::new)
        .expect("server starts")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn curl_fetches_over_https_trusting_the_ca() {
    let Some(curl) = find_tool(&["curl"], &["--version"]) else {
        return skip_without("curl", "apt-get install curl");
    };
    let pki = TestPki::new("curl");
    let server = start(&pki);
    let url = format!("https://{}/plaintext", server.local_addr());
    let out = Command::new(curl)
        .args(["-sS", "--cacert", pki.cafile.to_str().unwrap(), &url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!");
}

const PYTHON_CLIENT: &str = r#"
import http.client, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[2]), context=context)
for _ in range(3):
    conn.request("POST", "/echo", body=b"x" * 100000)
    response = conn.getresponse()
    assert response.status == 200, response.status
    assert response.read() == b"x" * 100000
print(conn.sock.version())
"#;

#[test]
fn pythons_ssl_client_keeps_a_connection_alive_over_https() {
    let Some(python) = find_tool(&["python3", "/usr/bin/python3"], &["-c", "import ssl"]) else {
        return skip_without("python3", "apt-get install python3");
    };
    let pki = TestPki::new("python");
    let server = start(&pki);
    let port = server.local_addr().port().to_string();
    let out = Command::new(python)
        .args(["-c", PYTHON_CLIENT, pki.cafile.to_str().unwrap(), &port])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "TLSv1.3");
}

/// `openssl s_client` against the server with `args`, sending `input`
/// and reading until the server closes (`-ign_eof`).
fn s_client(server: &ServerHandle, pki: &TestPki, args: &[&str], input: &str) -> Option<Output> {
    let openssl = find_tool(&["openssl"], &["version"])?;
    let connect = server.local_addr().to_string();
    let mut child = Command::new(openssl)
        .args(["s_client", "-ign_eof", "-connect", &connect])
        .args(["-CAfile", pki.cafile.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    Some(child.wait_with_output().expect("openssl ends"))
}

const REQUEST: &str = "GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[test]
fn openssl_negotiates_tls_1_2_and_1_3_with_http_1_1() {
    let pki = TestPki::new("openssl-versions");
    let server = start(&pki);
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let Some(out) = s_client(&server, &pki, &[flag, "-alpn", "http/1.1"], REQUEST) else {
            return skip_without("openssl", "apt-get install openssl");
        };
        let text = text(&out);
        assert!(text.contains(&format!("New, {version}")), "{flag}: {text}");
        assert!(text.contains("ALPN protocol: http/1.1"), "{flag}: {text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{flag}: {text}");
        assert!(text.contains("Hello, World!"), "{flag}: {text}");
    }
}

#[test]
fn openssl_offering_only_tls_1_0_or_1_1_is_refused_with_an_alert() {
    let pki = TestPki::new("openssl-old");
    let server = start(&pki);
    // Debian's OpenSSL offers neither unless its security level allows it.
    for flag in ["-tls1", "-tls1_1"] {
        let args = [flag, "-cipher", "DEFAULT@SECLEVEL=0"];
        let Some(out) = s_client(&server, &pki, &args, "") else {
            return skip_without("openssl", "apt-get install openssl");
        };
        let text = text(&out);
        assert!(!out.status.success(), "{flag} was accepted: {text}");
        // The server read the hello and answered with an alert (rustls
        // sends handshake_failure when no version is in common).
        assert!(text.contains("SSL alert number"), "{flag}: {text}");
    }
}

#[test]
fn openssl_resumes_a_session_from_its_ticket() {
    let pki = TestPki::new("openssl-resume");
    let server = start(&pki);
    let session = pki.dir.join("session.pem");
    let session = session.to_str().unwrap();
    let Some(first) = s_client(&server, &pki, &["-sess_out", session], REQUEST) else {
        return skip_without("openssl", "apt-get install openssl");
    };
    assert!(text(&first).contains("New, TLSv1.3"), "{}", text(&first));
    let second = s_client(&server, &pki, &["-sess_in", session], REQUEST).unwrap();
    assert!(text(&second).contains("Reused, TLSv1.3"), "{}", text(&second));
}
