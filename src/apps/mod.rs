//! Applications built into the `uring-serve` binary.

pub mod bench;

pub use bench::BenchApp;
