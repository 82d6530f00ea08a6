//! The project's shared test kit, used by the integration tests, the benchmark and the
//! fuzz targets:
//! * [`peer`]: a str0m-based browser stand-in (one RTCPeerConnection per transport);
//! * [`harness`]: a `sfu::Server` driven like a host drives it;
//! * [`builders`]: the messages mediasoup-client sends from Chrome and Firefox;
//! * [`sim`]: the worker core in simulated time, with invariants checked on its output;
//! * [`fuzz`]: the fuzz targets' input formats (replayed by the test command);
//! * [`cbuild`]: building and running the C programs under sanitizers;
//! * [`netem`]: a userspace network impairment proxy (UDP and TCP relay with loss,
//!   delay, jitter, reordering, duplication and a rate limit per direction), in-process
//!   or as the `sfu-netem` command for the browser tests;
//! * [`prom`]: a strict reader of the Prometheus text `Server::metrics` returns.

#![deny(unsafe_code)]

pub mod builders;
pub mod cbuild;
pub mod fuzz;
pub mod harness;
pub mod netem;
pub mod peer;
pub mod prom;
pub mod sim;
