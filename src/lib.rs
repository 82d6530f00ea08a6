//! # sfu — an embeddable WebRTC SFU speaking the mediasoup v2 protocol
//!
//! A host application (C/C++, Python, Node…) owns its signalling. It hands every JSON
//! message a browser sent (mediasoup-client 2.x) to the library together with the room
//! and the peer that sent it, and delivers what the library answers through a callback.
//!
//! Layers, each naming only the ones below it (docs/ARCHITECTURE.md):
//! * `ffi`: the C ABI (the only module with `unsafe`, besides the socket syscalls).
//! * `server`: the public [`Server`], its threads, and the sans-IO worker core.
//! * `room`: rooms, peers, transports, producers and consumers: the protocol's rules.
//! * `media`: one str0m `Rtc` per transport, a worker's table of them, forwarding helpers.
//! * `protocol` (the wire format), `ortc` (RTP negotiation), `net` (sockets, routing),
//!   and the primitives: `ids`, `output`, `timers`, `crypto`, `config`, `error`, `log`,
//!   `metrics`.
#![deny(unsafe_code)]

pub mod config;
mod crypto;
pub mod error;
mod ids;
mod log;
mod media;
mod metrics;
mod net;
mod ortc;
mod output;
mod protocol;
mod room;
mod server;
mod timers;
mod util;

#[allow(unsafe_code)]
mod ffi;

pub use config::ServerConfig;
pub use error::SfuError;
pub use log::{LogLevel, LogRecord, LogSink};
pub use server::{Event, EventKind, EventSink, Server};

/// The library version (`CARGO_PKG_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The sans-IO worker core, for simulated-time tests, fuzzing and custom I/O loops.
///
/// A [`core::WorkerCore`] is what one worker thread of a [`Server`] runs: feed it
/// commands, datagrams and time; take its output with `poll_output`. It is not needed
/// to use the library: [`Server`] (or the C API) runs cores on its own threads.
pub mod core {
    pub use crate::config::Limits;
    pub use crate::crypto::hmac_sha1;
    pub use crate::media::cert::{fingerprint as certificate_fingerprint, generate as generate_certificate};
    pub use crate::media::{AnnouncedCandidate, MediaEnv};
    pub use crate::ortc::RoomCaps;
    pub use crate::output::{EventKind, HostMessage, Output, Proto, Transmit};
    pub use crate::room::RoomSettings;
    pub use crate::server::core::{Command, CommandResult, CoreCounts, WorkerCore};

    /// The byte-stream side of ICE-TCP: what a connection's bytes do, without the socket.
    pub mod tcp {
        pub use crate::net::tcp::{ConnClose, ConnState, FrameFate, MAX_FRAME};
    }
}
