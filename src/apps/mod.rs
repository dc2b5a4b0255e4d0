//! Applications built into the `uring-serve` binary.

pub mod bench;
#[allow(dead_code)] // wired to the CLI in the next step
mod static_files;

pub use bench::BenchApp;
