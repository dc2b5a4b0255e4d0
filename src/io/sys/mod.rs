//! The system calls the server makes outside io_uring, each in a small
//! function with its `SAFETY` line; one file per kind of descriptor. This
//! is the lowest layer: it uses nothing else of the crate.

mod event;
mod file;
mod socket;
mod uring;

pub(crate) use event::*;
pub(crate) use file::*;
pub(crate) use socket::*;
pub(crate) use uring::*;
