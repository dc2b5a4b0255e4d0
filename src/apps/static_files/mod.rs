//! The static-file application (`uring-serve --static DIR`): serves the
//! files of a directory with GET and HEAD.
//!
//! What is decided without touching a file lives in pure modules: which
//! path a request names (`path`), which bytes a `Range` asks for
//! (`range`), and what the validators and conditional headers say
//! (`validators`). This module opens and reads.
//!
//! Opening: `openat2` below the directory's descriptor with
//! `RESOLVE_BENEATH` (`sys::open_beneath`), so the kernel refuses any
//! symbolic link or `..` that would resolve outside it, whatever the path;
//! the request path was already stripped of `..`, encoded slashes and hidden
//! names. Sending is the connection's (`Body::File`), on the core's socket
//! ring: a body under 16 KiB is read straight into the connection's write
//! buffer after the head and goes out in one write; a larger one is
//! spliced from the file into a pipe and from the pipe into the socket, a
//! pipeful (512 KiB) at a time, without copying it (what nginx's `sendfile`
//! does). Either way a download holds at most one chunk in memory, and a
//! client that stops reading is cut by the write timeout. A file that
//! shrinks under a response ends it short: the connection closes, never a
//! wrong `Content-Length`.
//!
//! Chosen by measurement beside nginx (`benches/static.sh`, one repeat
//! each, requests/s ratio to nginx for 64 KiB and 10 MiB files):
//!
//! | reading | 64 KiB | 10 MiB |
//! |---|---|---|
//! | glommio's `BufferedFile` (its ring, a copy out of its buffer, streamed) | 0.29-0.39 | 0.22-0.35 |
//! | read on the socket ring into the write buffer (two copies) | 0.53-0.57 | 0.62-1.92 |
//! | spliced file → pipe → socket on the socket ring (no copy) | 0.98-1.12 | 0.91-0.99 |
//!
//! Through glommio every read waited for a turn of glommio's reactor; with
//! copies, `_copy_from_iter` and `_copy_to_iter` were a third of the
//! server's time. glommio's `DmaFile` was not tried: it bypasses the page
//! cache, which is what keeps hot files in memory here.

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
use crate::sys;
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
}

impl StaticDir {
    /// Opens `root` for serving: an error (a line saying what is wrong)
    /// when it is missing, not a directory, or not readable.
    pub fn open(root: &Path, hidden: bool) -> Result<StaticDir, String> {
        let fail = |why: String| format!("--static {}: {why}", root.display());
        let meta = fs::metadata(root).map_err(|e| fail(e.to_string()))?;
        if !meta.is_dir() {
            return Err(fail("not a directory".into()));
        }
        fs::read_dir(root).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let dir = fs::File::open(root).map_err(|e| fail(format!("cannot open it: {e}")))?;
        Ok(StaticDir { dir: Arc::new(OwnedFd::from(dir)), hidden })
    }
}

/// The static-file application of one core.
#[derive(Debug)]
pub struct StaticFiles {
    dir: StaticDir,
}

impl StaticFiles {
    /// Serves `dir`.
    pub fn new(dir: &StaticDir) -> StaticFiles {
        StaticFiles { dir: dir.clone() }
    }

    /// Opens what `relative` names: a regular file, or a directory's
    /// `index.html`. Returns it with its `stat` and the name that decides
    /// its type, or the response that refuses it.
    fn open(
        &self,
        req: &Request,
        relative: &Relative,
    ) -> Result<(OwnedFd, libc::stat, Vec<u8>), Response> {
        let name = if relative.bytes.is_empty() { b".".to_vec() } else { relative.bytes.clone() };
        let (file, stat) = self.open_one(&name)?;
        match stat.st_mode & libc::S_IFMT {
            libc::S_IFREG => {
                blocking_reads(&file)?;
                Ok((file, stat, name))
            }
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
                Err(text(301, "moved\n").header("location", location))
            }
            libc::S_IFDIR => {
                let mut index = name;
                index.extend_from_slice(b"/index.html");
                let (file, stat) = self.open_one(&index)?;
                if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(not_found());
                }
                blocking_reads(&file)?;
                Ok((file, stat, index))
            }
            _ => Err(not_found()),
        }
    }

    fn open_one(&self, name: &[u8]) -> Result<(OwnedFd, libc::stat), Response> {
        // The request path held no NUL (`path` refuses it).
        let path = CString::new(name).map_err(|_| not_found())?;
        let file = sys::open_beneath(self.dir.dir.as_fd(), &path).map_err(|e| refusal(&e))?;
        let stat = sys::fstat(file.as_fd()).map_err(|e| refusal(&e))?;
        Ok((file, stat))
    }
}

impl App for StaticFiles {
    async fn call(&self, req: Request, _cx: &Context) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return text(405, "GET or HEAD\n").header("allow", "GET, HEAD");
        }
        let Some(relative) = path::relative_path(req.path(), self.dir.hidden) else {
            return not_found();
        };
        let (file, stat, name) = match self.open(&req, &relative) {
            Ok(found) => found,
            Err(refused) => return refused,
        };
        let len = u64::try_from(stat.st_size).unwrap_or(0);
        let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
        let modified = UNIX_EPOCH + Duration::new(u64::try_from(stat.st_mtime).unwrap_or(0), nanos);
        let version = Version { modified, len };
        let etag = version.etag();
        let last_modified = HttpDate::from_system_time(modified);
        let last_modified = String::from_utf8_lossy(last_modified.as_bytes()).into_owned();
        let validated = |response: Response| {
            response.header("etag", etag.clone()).header("last-modified", last_modified.clone())
        };
        let failed = validators::precondition_fails(
            &version,
            &etag,
            req.header("if-match"),
            req.header("if-unmodified-since"),
        );
        if failed {
            return validated(text(412, "precondition failed\n"));
        }
        let not_modified = validators::is_not_modified(
            &version,
            &etag,
            req.header("if-none-match"),
            req.header("if-modified-since"),
        );
        if not_modified {
            return validated(Response::new(304));
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
                return text(416, "range not satisfiable\n")
                    .header("content-range", format!("bytes */{len}"));
            }
        };
        let mut response = validated(Response::new(status))
            .header("content-type", content_type(&name))
            .header("accept-ranges", "bytes");
        if status == 206 {
            let last = first + count - 1;
            response = response.header("content-range", format!("bytes {first}-{last}/{len}"));
        }
        response.file(fs::File::from(file), first, count)
    }
}

/// A regular file opened non-blocking (so that opening a FIFO cannot stall
/// the core) reads blocking again: io_uring then waits for the disk
/// instead of failing with `EAGAIN` on a file not in the page cache.
fn blocking_reads(file: &OwnedFd) -> Result<(), Response> {
    use std::os::fd::AsRawFd;
    sys::set_nonblocking(file.as_raw_fd(), false).map_err(|e| refusal(&e))
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
        Some(libc::EACCES | libc::EPERM) => text(403, "forbidden\n"),
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

fn not_found() -> Response {
    text(404, "not found\n")
}

fn text(status: u16, body: &'static str) -> Response {
    Response::new(status).header("content-type", "text/plain; charset=utf-8").body(body)
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
