//! The static-file application (`--static DIR`) over real sockets.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::Client;
use uring_serve::apps::{StaticDir, StaticFiles};
use uring_serve::{Cores, Server, ServerHandle};

/// A directory with a known tree, removed at the end of the test.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let root =
            std::env::temp_dir().join(format!("uring-serve-static-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join("hello.txt"), "hello, world\n").unwrap();
        fs::write(root.join("docs/index.html"), "<h1>docs</h1>\n").unwrap();
        fs::write(root.join(".env"), "SECRET=1\n").unwrap();
        fs::write(root.join(".git/config"), "[core]\n").unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(root.join("big.bin"), big).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("outside")).unwrap();
        std::os::unix::fs::symlink("hello.txt", root.join("inside")).unwrap();
        Tree(root)
    }

    fn serve(&self, hidden: bool) -> ServerHandle {
        self.serve_with(|dir| dir.hidden(hidden))
    }

    fn serve_with(&self, options: impl FnOnce(StaticDir) -> StaticDir) -> ServerHandle {
        let dir = options(StaticDir::open(&self.0).expect("the tree can be served"));
        Server::builder()
            .cores(Cores::Count(1))
            .bind("127.0.0.1:0")
            .serve(move |_| StaticFiles::new(&dir))
            .expect("server starts")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The status line of one raw request whose target is sent as written.
fn status_of(server: &ServerHandle, target: &str) -> u16 {
    let mut c = Client::connect(server.local_addr());
    c.roundtrip(&format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n")).status
}

#[test]
fn a_file_is_served_with_its_type_length_and_validators() {
    let tree = Tree::new("file");
    let server = tree.serve(false);
    let r = Client::connect(server.local_addr()).get("/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello, world\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("etag").is_some_and(|e| e.starts_with('"')));
    assert!(r.header("last-modified").is_some_and(|d| d.ends_with(" GMT")));
}

#[test]
fn head_gets_the_headers_without_the_body() {
    let tree = Tree::new("head");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_to(true);
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("3000000"), 0));
    assert_eq!(c.get("/hello.txt").text(), "hello, world\n", "the connection goes on");
}

#[test]
fn other_methods_get_405_with_allow() {
    let tree = Tree::new("methods");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("DELETE /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn a_directory_serves_its_index_else_404() {
    let tree = Tree::new("dirs");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/docs/");
    assert_eq!((r.status, r.text()), (200, "<h1>docs</h1>\n".to_string()));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = c.get("/docs?x=1");
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/?x=1")));
    assert_eq!(c.get("/empty/").status, 404);
    assert_eq!(c.get("/missing.txt").status, 404);
}

#[test]
fn a_directory_without_index_is_listed_with_static_listing() {
    let tree = Tree::new("listing");
    fs::write(tree.path("empty/<b>&.txt"), "x").unwrap();
    fs::write(tree.path("empty/.hidden"), "x").unwrap();
    fs::create_dir(tree.path("empty/sub")).unwrap();
    std::os::unix::fs::symlink("/etc", tree.path("empty/out")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", tree.path("empty/up")).unwrap();
    let server = tree.serve_with(|dir| dir.listing(true));
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/empty/");
    let page = r.text();
    assert_eq!(r.status, 200, "{page}");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.contains("<title>Index of /empty/</title>"), "{page}");
    assert!(page.contains("<a href=\"../\">"), "{page}");
    assert!(page.contains("<a href=\"sub/\">sub/</a>"), "{page}");
    assert!(page.contains("<a href=\"%3Cb%3E%26.txt\">&lt;b&gt;&amp;.txt</a>"), "{page}");
    assert!(page.contains("<a href=\"up\">up</a>"), "a link within the directory: {page}");
    assert!(!page.contains("hidden"), "hidden names are not listed: {page}");
    assert!(!page.contains("out"), "a link out is not listed: {page}");
    assert_eq!(c.get("/empty/%3Cb%3E%26.txt").text(), "x", "the link is served");
    assert_eq!(c.get("/docs/").text(), "<h1>docs</h1>\n", "an index is still served");
}

#[test]
fn an_unchanged_file_gets_304() {
    let tree = Tree::new("conditional");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    let first = c.get("/hello.txt");
    let etag = first.header("etag").unwrap().to_string();
    let modified = first.header("last-modified").unwrap().to_string();
    let r = c
        .roundtrip(&format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n"));
    assert_eq!((r.status, r.body.len(), r.header("etag")), (304, 0, Some(etag.as_str())));
    let r = c.roundtrip(&format!(
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {modified}\r\n\r\n"
    ));
    assert_eq!(r.status, 304);
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: \"stale\"\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn ranges_get_206_416_or_the_whole_file() {
    let tree = Tree::new("ranges");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=7-11\r\n\r\n");
    assert_eq!((r.status, r.text()), (206, "world".to_string()));
    assert_eq!(r.header("content-range"), Some("bytes 7-11/13"));
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=-6\r\n\r\n");
    assert_eq!((r.status, r.text()), (206, "world\n".to_string()));
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=100-\r\n\r\n");
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */13")));
    // Several ranges: the whole file, with 200 (see README).
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,3-4\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, "hello, world\n".to_string()));
    // A range of a large, streamed file.
    let r = c.roundtrip("GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=2999990-\r\n\r\n");
    let expected: Vec<u8> = (2_999_990..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!((r.status, r.body), (206, expected));
}

#[test]
fn a_large_file_streams_whole_and_the_connection_goes_on() {
    let tree = Tree::new("large");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, fs::read(tree.path("big.bin")).unwrap());
    assert_eq!(c.get("/hello.txt").status, 200);
}

/// Drops `path`'s pages from `from` on from the page cache; whether they
/// are gone (a file system may keep them, tmpfs always does).
fn evict(path: &Path, from: i64) -> bool {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: plain system calls on a descriptor open for the call; the
    // read goes into a local buffer of the size given.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), from, 0, libc::POSIX_FADV_DONTNEED);
        let mut byte = [0u8; 1];
        let iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        libc::preadv2(file.as_raw_fd(), &iov, 1, from, libc::RWF_NOWAIT) < 0
    }
}

#[test]
fn a_file_not_in_the_page_cache_is_read_on_the_ring_whole() {
    let tree = Tree::new("cold");
    let small: Vec<u8> = (0..9_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(tree.path("small.bin"), &small).unwrap();
    let big = fs::read(tree.path("big.bin")).unwrap();
    let server = tree.serve(false);
    for _ in 0..2 {
        let evicted = evict(&tree.path("small.bin"), 0) & evict(&tree.path("big.bin"), 0);
        if !evicted {
            eprintln!("this file system keeps the pages: the cached paths are tested instead");
        }
        let mut c = Client::connect(server.local_addr());
        assert!(c.get("/small.bin").body == small, "a small file, read on the ring");
        assert!(c.get("/big.bin").body == big, "a large file, spliced on the ring");
        let r = c.roundtrip("GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1000000-\r\n\r\n");
        assert!(r.body == big[1_000_000..], "a range of it");
    }
}

#[test]
fn a_file_cached_only_in_part_is_sent_whole() {
    let tree = Tree::new("half-cold");
    let big = fs::read(tree.path("big.bin")).unwrap();
    let server = tree.serve(false);
    // The first 2 MiB window goes out with sendfile, the rest is spliced
    // (eviction is by folio: evicting from 2.5 MiB leaves the first window).
    if !evict(&tree.path("big.bin"), 5 << 19) {
        eprintln!("this file system keeps the pages: the cached path is tested instead");
    }
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/big.bin");
    assert_eq!(r.header("content-length"), Some("3000000"));
    assert!(r.body == big, "the whole file, in order");
    assert_eq!(c.get("/hello.txt").text(), "hello, world\n", "the connection goes on");
}

#[test]
fn dot_segments_plain_or_encoded_never_leave_the_directory() {
    let tree = Tree::new("dots");
    let server = tree.serve(false);
    for target in [
        "/../../etc/hostname",
        "/docs/../../etc/hostname",
        "/%2e%2e/etc/hostname",
        "/%2E%2E%2Fetc%2Fhostname",
    ] {
        let status = status_of(&server, target);
        assert!(matches!(status, 400 | 404), "{target}: {status}");
    }
}

#[test]
fn encoded_slashes_backslashes_and_nul_are_not_found() {
    let tree = Tree::new("encoded");
    let server = tree.serve(false);
    for target in
        ["/docs%2findex.html", "/docs%5cindex.html", "/hello.txt%00.png", "/docs\\index.html"]
    {
        let status = status_of(&server, target);
        assert!(matches!(status, 400 | 404), "{target}: {status}");
    }
}

#[test]
fn a_symlink_out_of_the_directory_is_not_followed() {
    let tree = Tree::new("symlinks");
    let server = tree.serve(false);
    assert_eq!(status_of(&server, "/outside"), 404);
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/inside").text(), "hello, world\n", "a link within the directory is");
}

#[test]
fn hidden_files_are_served_only_with_static_hidden() {
    let tree = Tree::new("hidden");
    let server = tree.serve(false);
    assert_eq!(status_of(&server, "/.env"), 404);
    assert_eq!(status_of(&server, "/.git/config"), 404);
    assert_eq!(status_of(&server, "/%2eenv"), 404);
    drop(server);
    let server = tree.serve(true);
    assert_eq!(status_of(&server, "/.env"), 200);
}

#[test]
fn a_directory_that_cannot_be_served_is_a_start_error() {
    let missing = Path::new("/nonexistent-uring-serve-dir");
    let error = StaticDir::open(missing).expect_err("missing");
    assert!(error.starts_with("--static /nonexistent-uring-serve-dir: "), "{error}");
    let tree = Tree::new("notdir");
    let error = StaticDir::open(&tree.path("hello.txt")).expect_err("a file");
    assert!(error.ends_with("not a directory"), "{error}");
}

#[test]
fn the_binary_exits_2_with_one_line_for_a_missing_directory() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uring-serve"))
        .args(["--cores", "1", "--port", "0", "--static", "/nonexistent-uring-serve-dir"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: --static /nonexistent-uring-serve-dir:"), "{stderr}");
}

#[test]
fn a_client_that_stops_reading_does_not_hold_the_core() {
    let tree = Tree::new("stall");
    let dir = StaticDir::open(&tree.0).unwrap();
    let server = Server::builder()
        .cores(Cores::Count(1))
        .bind("127.0.0.1:0")
        .timeout_write(Duration::from_millis(300))
        .serve(move |_| StaticFiles::new(&dir))
        .unwrap();
    // 64 MiB (sparse): more than the socket buffers on both sides hold.
    fs::File::create(tree.path("huge.bin")).unwrap().set_len(64 << 20).unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.local_addr().into()).unwrap();
    let mut stalled = TcpStream::from(socket);
    stalled.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // It never reads; others are served meanwhile.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(Client::connect(server.local_addr()).get("/hello.txt").status, 200);
    // After the write timeout the stalled connection is cut: reading it
    // ends short of the 64 MiB promised.
    std::thread::sleep(Duration::from_millis(800));
    stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let _ = stalled.read_to_end(&mut got);
    assert!(got.len() < 64 << 20, "the stalled response was not cut: {} bytes", got.len());
}

#[test]
fn a_file_that_shrinks_mid_response_closes_the_connection() {
    let tree = Tree::new("shrink");
    let server = tree.serve(false);
    let file = tree.path("huge.bin");
    fs::File::create(&file).unwrap().set_len(64 << 20).unwrap();
    let mut c = TcpStream::connect(server.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut start = vec![0u8; 64 << 10];
    c.read_exact(&mut start).unwrap();
    let head = String::from_utf8_lossy(&start).to_ascii_lowercase();
    assert!(head.contains("content-length: 67108864"), "{head}");
    fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(1 << 20).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("the server closes the connection");
    let body = start.len() + rest.len();
    assert!(body < 64 << 20, "a full-length body from a shrunk file: {body} bytes");
}

#[test]
fn a_directory_redirect_stays_on_this_host() {
    let tree = Tree::new("redirect");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    // `//docs/` would send a browser to the host `docs`.
    let r = c.roundtrip("GET //docs HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/")));
}

#[test]
fn range_is_ignored_for_head() {
    let tree = Tree::new("headrange");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    c.send(b"HEAD /hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\n\r\n");
    let r = c.read_response_to(true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("13")));
}

#[test]
fn a_failed_if_match_gets_412() {
    let tree = Tree::new("ifmatch");
    let server = tree.serve(false);
    let mut c = Client::connect(server.local_addr());
    let etag = c.get("/hello.txt").header("etag").unwrap().to_string();
    let r = c.roundtrip("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Match: \"old\"\r\n\r\n");
    assert_eq!(r.status, 412);
    let r = c.roundtrip(&format!("GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Match: {etag}\r\n\r\n"));
    assert_eq!((r.status, r.text()), (200, "hello, world\n".to_string()));
    let r = c.roundtrip(
        "GET /hello.txt HTTP/1.1\r\nHost: t\r\nIf-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
    );
    assert_eq!(r.status, 412);
}
