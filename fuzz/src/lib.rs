//! The harness of the fuzz targets (also replayed by `tests/hardening.rs`).
#[path = "harness.rs"]
pub mod harness;
