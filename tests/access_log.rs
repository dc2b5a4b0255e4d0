//! The access log (`--access-log`): one line per response, in the text
//! (combined + duration + core) or JSON format.

mod support;

use std::path::{Path, PathBuf};

use support::Client;
use uring_serve::apps::BenchApp;
use uring_serve::{AccessLogTarget, Cores, LogFormat, Server, ServerHandle};

/// A fresh file path under the system's temporary directory.
fn log_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("uring-serve-{name}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn logging_to(path: &Path, format: LogFormat) -> ServerHandle {
    Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .access_log(Some(AccessLogTarget::File(path.to_path_buf())), format)
        .serve(BenchApp::new)
        .expect("server starts")
}

/// Sends a known mix: a 200 with a user agent, a 404, and a refused request.
fn known_load(server: &ServerHandle) {
    let mut c = Client::connect(server.local_addr());
    let r =
        c.roundtrip("GET /plaintext?x=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: probe \"1\"\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/missing").status, 404);
    let mut bad = Client::connect(server.local_addr());
    assert_eq!(bad.roundtrip("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").status, 400);
}

/// Stops the server (which writes out every line) and reads the log.
fn stop_and_read(server: ServerHandle, path: &Path) -> Vec<String> {
    server.shutdown();
    server.join().unwrap();
    let text = std::fs::read_to_string(path).expect("the access log exists");
    let _ = std::fs::remove_file(path);
    text.lines().map(str::to_string).collect()
}

#[test]
fn every_response_gets_one_combined_format_line() {
    let path = log_path("text");
    let server = logging_to(&path, LogFormat::Text);
    let core = server.cores()[0];
    known_load(&server);
    let lines = stop_and_read(server, &path);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let ok = &lines[0];
    assert!(ok.starts_with("127.0.0.1 - - ["), "{ok}");
    assert!(
        ok.contains(" +0000] \"GET /plaintext?x=1 HTTP/1.1\" 200 13 \"-\" \"probe \\x221\\x22\" "),
        "{ok}"
    );
    let fields: Vec<&str> = ok.rsplitn(3, ' ').collect();
    assert_eq!(fields[0], core.to_string(), "the core ends the line: {ok}");
    assert!(fields[1].parse::<u64>().is_ok(), "then the duration in µs: {ok}");
    assert!(lines[1].contains("\"GET /missing HTTP/1.1\" 404 "), "{}", lines[1]);
    assert!(
        lines[2].contains("] \"-\" 400 "),
        "a refused request has no request line: {}",
        lines[2]
    );
}

#[test]
fn json_lines_are_objects_with_every_field() {
    let path = log_path("json");
    let server = logging_to(&path, LogFormat::Json);
    known_load(&server);
    let lines = stop_and_read(server, &path);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let objects: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str(l).expect("a JSON object per line")).collect();
    let ok = &objects[0];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["target"], "/plaintext?x=1");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["bytes"], 13);
    assert_eq!(ok["user_agent"], "probe \"1\"");
    assert_eq!(ok["referer"], serde_json::Value::Null);
    assert_eq!(ok["client"], "127.0.0.1");
    assert!(ok["duration_us"].is_u64());
    assert!(ok["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 20), "{ok}");
    assert_eq!(objects[1]["status"], 404);
    assert_eq!(
        (objects[2]["status"].clone(), objects[2]["method"].clone()),
        (400.into(), serde_json::Value::Null)
    );
}

#[test]
fn an_access_log_that_cannot_be_opened_stops_the_start() {
    let path = PathBuf::from("/nonexistent-dir/access.log");
    let error = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .access_log(Some(AccessLogTarget::File(path)), LogFormat::Text)
        .serve(BenchApp::new)
        .expect_err("no such directory");
    assert!(
        error.to_string().starts_with("--access-log: cannot open /nonexistent-dir/access.log"),
        "{error}"
    );
}
