//! Applications built into the `uring-serve` binary.

pub mod bench;
mod static_files;

pub use bench::BenchApp;
pub use static_files::{StaticDir, StaticFiles};
