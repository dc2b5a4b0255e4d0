//! The static-file application (`uring-serve --static DIR`): serves the
//! files of a directory with GET and HEAD.
//!
//! What is decided without touching a file lives in pure modules: which
//! path a request names (`path`), which bytes a `Range` asks for
//! (`range`), what the validators and conditional headers say
//! (`validators`), and how a directory listing reads (`listing`). This
//! module opens and reads.
//!
//! Opening: `openat2` below the directory's descriptor with
//! `RESOLVE_BENEATH` (`sys::open_beneath`), so the kernel refuses any
//! symbolic link or `..` that would resolve outside it, whatever the path;
//! the request path was already stripped of `..`, encoded slashes and hidden
//! names. Sending is the connection's (`Body::File`), and does not wait
//! for a disk on the core:
//!
//! - a body under 16 KiB is read straight into the connection's write
//!   buffer after the head and goes out in one write: with one `preadv2`
//!   (`RWF_NOWAIT`) when it is in the page cache, else on the ring;
//! - a larger one goes out with `sendfile` on the core, after the head
//!   sent with `MSG_MORE` (nginx's `sendfile` and `tcp_nopush`), 2 MiB
//!   windows at a time while `cachestat` finds each in the page cache;
//! - from the first window that is not, the rest is spliced on the ring
//!   from the file into a pipe and from the pipe into the socket, a
//!   pipeful (512 KiB) at a time. io_uring runs every splice on its worker
//!   threads, which is why it is the path for what is not cached, not the
//!   one for hot files.
//!
//! The core can still wait for a disk when pages are evicted between the
//! check and the send, or were still being read in when checked: rare, and
//! what nginx's `sendfile` always risks.
//!
//! No file data is copied to user space but a small body, a download holds
//! at most one chunk in memory, and a client that stops reading is cut by
//! the write timeout. A file that shrinks under a response ends it short:
//! the connection closes, never a wrong `Content-Length`.
//!
//! Chosen by measurement beside nginx (`benches/static.sh`, requests/s
//! ratio to nginx for 64 KiB and 10 MiB files; one repeat each but the
//! last, see `bench-results/HISTORY.md`, static files):
//!
//! | reading | 64 KiB | 10 MiB |
//! |---|---|---|
//! | glommio's `BufferedFile` (its ring, a copy out of its buffer, streamed) | 0.29-0.39 | 0.22-0.35 |
//! | read on the socket ring into the write buffer (two copies) | 0.53-0.57 | 0.62-1.92 |
//! | spliced file → pipe → socket on the socket ring (no copy) | 0.98-1.12 | 0.91-0.99 |
//! | the same when not cached; when cached, `preadv2` or `sendfile` on the core | 0.93-1.15 | 0.97-1.10 |
//!
//! Through glommio every read waited for a turn of glommio's reactor; with
//! copies, `_copy_from_iter` and `_copy_to_iter` were a third of the
//! server's time. glommio's `DmaFile`, and `ImmutableFile` built on it,
//! were not tried: they bypass the page cache (`O_DIRECT`), which is what
//! keeps hot files in memory here, as it does for nginx.

mod listing;
mod path;
mod range;
mod validators;

use std::borrow::Cow;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tracing::error;

use crate::app::{App, Context, Request, Response};
use crate::http::{HttpDate, Method};
use crate::io::sys;
use listing::Entry;
use path::Relative;
use range::Selection;
use validators::Version;

/// The directory to serve, checked when the server starts.
#[derive(Debug, Clone)]
pub struct StaticDir {
    /// The directory, opened: what every core opens files below.
    dir: Arc<OwnedFd>,
    /// Whether names starting with `.` are served.
    hidden: bool,
    /// Whether a directory without `index.html` gets a listing (else 404).
    listing: bool,
}

/// At most this many entries of a directory are listed: a listing is read
/// in one go, and its page is held whole.
const LISTING_LIMIT: usize = 10_000;

impl StaticDir {
    /// Opens `root` for serving: an error (a line saying what is wrong)
    /// when it is missing, not a directory, or not readable. Hidden names
    /// are not served and directories are not listed unless asked for.
    pub fn open(root: &Path) -> Result<StaticDir, String> {
        let fail = |why: String| format!("--static {}: {why}", root.display());
        let meta = fs::metadata(root).map_err(|e| fail(e.to_string()))?;
        if !meta.is_dir() {
            return Err(fail("not a directory".into()));
        }
        fs::read_dir(root).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let dir = fs::File::open(root).map_err(|e| fail(format!("cannot open it: {e}")))?;
        Ok(StaticDir { dir: Arc::new(OwnedFd::from(dir)), hidden: false, listing: false })
    }

    /// Also serves (and lists) names starting with `.`: `.well-known`,
    /// but also `.git` and `.env`.
    pub fn hidden(mut self, on: bool) -> StaticDir {
        self.hidden = on;
        self
    }

    /// Answers a directory without `index.html` with an HTML listing of
    /// what it serves (instead of 404). The listing is read on the core's
    /// blocking pool, at most 10 000 entries (the page says when there are
    /// more).
    pub fn listing(mut self, on: bool) -> StaticDir {
        self.listing = on;
        self
    }
}

/// What a request names, once opened.
enum Found {
    /// A regular file (perhaps a directory's `index.html`): its `stat` and
    /// the name that decides its type.
    File(OwnedFd, libc::stat, Vec<u8>),
    /// A directory without `index.html`, to list.
    Directory(OwnedFd),
}

/// The static-file application of one core.
#[derive(Debug)]
pub struct StaticFiles {
    dir: StaticDir,
}

impl StaticFiles {
    /// The methods it serves, for the server's answer to `OPTIONS *`.
    pub const ALLOW: &'static str = "GET, HEAD";

    /// Serves `dir`.
    pub fn new(dir: &StaticDir) -> StaticFiles {
        StaticFiles { dir: dir.clone() }
    }

    /// Opens what `relative` names: a regular file, a directory's
    /// `index.html`, or a directory to list. Returns it, or the response
    /// that refuses it.
    fn open(&self, req: &Request, relative: &Relative) -> Result<Found, Response> {
        let name = if relative.bytes.is_empty() { b".".to_vec() } else { relative.bytes.clone() };
        let (file, stat) = open_below(&self.dir.dir, &name).map_err(|e| refusal(&e))?;
        match stat.st_mode & libc::S_IFMT {
            libc::S_IFREG => Ok(Found::File(file, stat, name)),
            libc::S_IFDIR if !relative.directory => {
                // As nginx: the directory's URL ends with a slash, so that
                // the index's relative links resolve inside it. Built from
                // the checked path, not the request's: `//host` must not
                // become a redirect to another host.
                let mut location = String::from("/");
                percent_encode(&relative.bytes, &mut location);
                location.push('/');
                if let Some(query) = req.query() {
                    location.push('?');
                    location.push_str(query);
                }
                Err(Response::plain(301, "moved\n").header("location", location))
            }
            libc::S_IFDIR => {
                let directory = file;
                let mut index = name;
                index.extend_from_slice(b"/index.html");
                let (file, stat) = match open_below(&self.dir.dir, &index) {
                    Ok(opened) => opened,
                    Err(e) if self.dir.listing && e.raw_os_error() == Some(libc::ENOENT) => {
                        return Ok(Found::Directory(directory));
                    }
                    Err(e) => return Err(refusal(&e)),
                };
                if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(not_found());
                }
                Ok(Found::File(file, stat, index))
            }
            _ => Err(not_found()),
        }
    }

    /// The listing of `directory` (`relative` below the served directory),
    /// read on the core's blocking pool.
    async fn list(&self, cx: &Context, directory: OwnedFd, relative: Vec<u8>) -> Response {
        let root = Arc::clone(&self.dir.dir);
        let hidden = self.dir.hidden;
        match cx.blocking(move || read_listing(&root, directory, &relative, hidden)).await {
            Ok(Ok(page)) => Response::new(200)
                .header("content-type", "text/html; charset=utf-8")
                .header("cache-control", "no-cache")
                .body(page),
            Ok(Err(e)) => refusal(&e),
            Err(e) => e.into(),
        }
    }
}

/// Opens `name` below `root` (see `sys::open_beneath`) and reads its
/// `stat`.
fn open_below(root: &OwnedFd, name: &[u8]) -> io::Result<(OwnedFd, libc::stat)> {
    // The request path held no NUL (`path` refuses it), nor does a name
    // read from a directory.
    let path = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
    let file = sys::open_beneath(root.as_fd(), &path)?;
    let stat = sys::fstat(file.as_fd())?;
    Ok((file, stat))
}

/// Reads the directory `directory` (`relative` below `root`) and renders
/// its listing. Listed is only what a request could be served: names a
/// request may hold (`path::is_served_name`), which open below `root` (a
/// link that leads out is left out) as a regular file or a directory.
/// Devices, FIFOs and sockets are not even opened. What is not listed
/// does not count toward the bound.
fn read_listing(
    root: &OwnedFd,
    directory: OwnedFd,
    relative: &[u8],
    hidden: bool,
) -> io::Result<String> {
    let mut path = relative.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    let prefix = path.len();
    let served = |name: &[u8], kind: u8| {
        let openable =
            matches!(kind, libc::DT_REG | libc::DT_DIR | libc::DT_LNK | libc::DT_UNKNOWN);
        if !openable || !path::is_served_name(name, hidden) {
            return None;
        }
        path.truncate(prefix);
        path.extend_from_slice(name);
        let (_, stat) = open_below(root, &path).ok()?;
        let directory = match stat.st_mode & libc::S_IFMT {
            libc::S_IFDIR => true,
            libc::S_IFREG => false,
            _ => return None,
        };
        let Version { modified, len } = version_of(&stat);
        Some(Entry { name: name.to_vec(), directory, len, modified })
    };
    let (mut entries, more) = sys::directory_entries(directory, LISTING_LIMIT, served)?;
    Ok(listing::render(relative, &mut entries, more))
}

/// A file's modification time and size, from its `stat`.
fn version_of(stat: &libc::stat) -> Version {
    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
    let modified = UNIX_EPOCH + Duration::new(u64::try_from(stat.st_mtime).unwrap_or(0), nanos);
    Version { modified, len: u64::try_from(stat.st_size).unwrap_or(0) }
}

impl App for StaticFiles {
    async fn call(&self, req: Request, cx: &Context) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::plain(405, "GET or HEAD\n").header("allow", Self::ALLOW);
        }
        let Some(relative) = path::relative_path(req.path(), self.dir.hidden) else {
            return not_found();
        };
        let (file, stat, name) = match self.open(&req, &relative) {
            Ok(Found::File(file, stat, name)) => (file, stat, name),
            Ok(Found::Directory(directory)) => {
                return self.list(cx, directory, relative.bytes).await;
            }
            Err(refused) => return refused,
        };
        let version = version_of(&stat);
        let len = version.len;
        let etag = version.etag();
        let failed = validators::precondition_fails(
            &version,
            &etag,
            req.header("if-match"),
            req.header("if-unmodified-since"),
        );
        if failed {
            return validated(Response::plain(412, "precondition failed\n"), &version, etag);
        }
        let not_modified = validators::is_not_modified(
            &version,
            &etag,
            req.header("if-none-match"),
            req.header("if-modified-since"),
        );
        if not_modified {
            return validated(Response::new(304), &version, etag);
        }
        // Range is for GET only (RFC 9110 §14.2).
        let is_get = req.method() == Method::Get;
        let selection =
            if is_get && validators::range_applies(&version, &etag, req.header("if-range")) {
                range::select(req.header("range"), len)
            } else {
                Selection::Whole
            };
        let (status, first, count) = match selection {
            Selection::Whole => (200, 0, len),
            Selection::Part { first, last } => (206, first, last - first + 1),
            Selection::Unsatisfiable => {
                return Response::plain(416, "range not satisfiable\n")
                    .header("content-range", format!("bytes */{len}"));
            }
        };
        let mut response = validated(Response::new(status), &version, etag)
            .header("content-type", content_type(&name))
            .header("accept-ranges", "bytes");
        if status == 206 {
            let last = first + count - 1;
            response = response.header("content-range", format!("bytes {first}-{last}/{len}"));
        }
        response.file(fs::File::from(file), first, count)
    }
}

/// Appends `bytes` (a checked relative path) to a URL path: `/` and the
/// characters a path segment may hold stay, every other byte is `%XX`.
fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// The answer to a file that cannot be opened.
fn refusal(e: &io::Error) -> Response {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Response::plain(403, "forbidden\n"),
        // Missing, not a directory on the way, outside the directory
        // (EXDEV), a link loop: not here.
        Some(libc::ENOENT | libc::ENOTDIR | libc::EXDEV | libc::ELOOP | libc::ENAMETOOLONG) => {
            not_found()
        }
        _ => {
            error!("static file open failed: {e}");
            Response::internal_error()
        }
    }
}

/// `response` with the file's validators: `ETag` and `Last-Modified`.
fn validated(response: Response, version: &Version, etag: String) -> Response {
    let last_modified = HttpDate::from_system_time(version.modified);
    let last_modified = String::from_utf8_lossy(last_modified.as_bytes()).into_owned();
    response.header("etag", etag).header("last-modified", last_modified)
}

fn not_found() -> Response {
    Response::plain(404, "not found\n")
}

/// The `Content-Type` of a file, from its name's extension:
/// `application/octet-stream` when unknown, `charset=utf-8` for text.
fn content_type(name: &[u8]) -> Cow<'static, str> {
    let extension = name.rsplit(|&b| b == b'.').next().filter(|ext| ext.len() < name.len());
    let extension = extension.and_then(|ext| std::str::from_utf8(ext).ok()).unwrap_or("");
    let essence = mime_guess::from_ext(extension).first_raw().unwrap_or("application/octet-stream");
    let textual = essence.starts_with("text/")
        || matches!(essence, "application/javascript" | "application/json" | "application/xml")
        || essence.ends_with("+xml")
        || essence.ends_with("+json");
    if textual {
        Cow::Owned(format!("{essence}; charset=utf-8"))
    } else {
        Cow::Borrowed(essence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_come_from_the_extension() {
        assert_eq!(content_type(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type(b"data.json"), "application/json; charset=utf-8");
        assert_eq!(content_type(b"logo.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type(b"photo.JPG"), "image/jpeg");
        assert_eq!(content_type(b"archive"), "application/octet-stream");
        assert_eq!(content_type(b"weird.zzzz"), "application/octet-stream");
    }
}
