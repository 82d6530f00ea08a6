//! Media-plane reliability on a one-worker server: every room's transports on one
//! worker. The cases are in `common/reliability.rs`; `two_workers.rs` runs them again
//! with a room spread over two workers.

/// Workers of the server the cases run against.
const WORKERS: usize = 1;

#[path = "common/reliability.rs"]
mod cases;
