//! [`ConnError`]: why a connection ended before its time. Each is logged
//! once, where the connection ends (`core::workers`), at a level that says
//! whose fault it was: the peer's or the network's at debug, the
//! application's at error.

use std::fmt;
use std::io;

use crate::app::BoxError;

/// Why a connection ended before its time.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The socket failed: the peer reset or left.
    Io(io::Error),
    /// A write took nothing for `--timeout-write`: the core's sweeper cut
    /// the connection.
    WriteStalled,
    /// A response body declared `len` bytes and the application produced
    /// more.
    BodyTooLong { len: u64 },
    /// A response body declared `len` bytes and ended at `sent`.
    BodyTooShort { sent: u64, len: u64 },
    /// The application's body stream failed.
    BodyStream(BoxError),
    /// The application's body stream panicked.
    BodyPanicked,
    /// A file body ended at `sent` of its `len` bytes (the file shrank).
    FileTooShort { sent: u64, len: u64 },
    /// Reading a file body failed.
    FileRead(io::Error),
}

impl ConnError {
    /// Whether the application caused it (logged at error; the rest at
    /// debug).
    pub(crate) fn is_application_fault(&self) -> bool {
        !matches!(self, ConnError::Io(_) | ConnError::WriteStalled)
    }
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> ConnError {
        ConnError::Io(e)
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::WriteStalled => {
                f.write_str("the client took nothing for --timeout-write; connection cut")
            }
            ConnError::BodyTooLong { len } => {
                write!(f, "response body ran past its length {len}; connection closed")
            }
            ConnError::BodyTooShort { sent, len } => {
                write!(f, "response body ended at {sent} of {len} bytes; connection closed")
            }
            ConnError::BodyStream(e) => write!(f, "response body stream failed: {e}"),
            ConnError::BodyPanicked => f.write_str("response body stream panicked"),
            ConnError::FileTooShort { sent, len } => {
                write!(f, "file ended at {sent} of {len} bytes; connection closed")
            }
            ConnError::FileRead(e) => write!(f, "file read failed: {e}"),
        }
    }
}
