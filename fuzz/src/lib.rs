//! The fuzz targets' inputs live in the test kit (crates/sfu-testkit/src/fuzz.rs), so
//! that the test command replays the corpora through the same code.
pub use sfu_testkit::fuzz as harness;
