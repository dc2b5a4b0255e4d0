//! The static-file application (`uring-serve --static DIR`): serves the
//! files of a directory with GET and HEAD.
//!
//! What is decided without touching a file lives in pure modules: which
//! path a request names (`path`), which bytes a `Range` asks for
//! (`range`), and what the validators and conditional headers say
//! (`validators`). Opening and reading files is the application's own
//! code, on the core.

mod path;
mod range;
mod validators;

/// The `Content-Type` of a file, from its name's extension:
/// `application/octet-stream` when unknown, `charset=utf-8` for text.
pub(crate) fn content_type(name: &[u8]) -> String {
    let extension = name.rsplit(|&b| b == b'.').next().filter(|ext| ext.len() < name.len());
    let extension = extension.and_then(|ext| std::str::from_utf8(ext).ok()).unwrap_or("");
    let mime = mime_guess::from_ext(extension).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml")
        || mime.suffix().is_some_and(|s| s == mime_guess::mime::XML || s == mime_guess::mime::JSON);
    if textual {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
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
