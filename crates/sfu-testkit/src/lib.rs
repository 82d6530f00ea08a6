//! The project's shared test kit, used by the integration tests, the benchmark and the
//! fuzz targets:
//! * [`peer`]: a str0m-based browser stand-in (one RTCPeerConnection per transport);
//! * [`harness`]: a `sfu::Server` driven like a host drives it;
//! * [`builders`]: the messages mediasoup-client sends from Chrome and Firefox;
//! * [`sim`]: the worker core in simulated time, with invariants checked on its output;
//! * [`fuzz`]: the fuzz targets' input formats (replayed by the test command);
//! * [`cbuild`]: building and running the C programs under sanitizers.

pub mod builders;
pub mod cbuild;
pub mod fuzz;
pub mod harness;
pub mod peer;
pub mod sim;
