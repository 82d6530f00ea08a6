//! # sfu — an embeddable WebRTC SFU speaking the mediasoup v2 protocol
//!
//! A host application (C/C++, Python, Node…) owns its signalling. It hands every JSON
//! message a browser sent (mediasoup-client 2.x) to the library together with the room
//! and the peer that sent it, and delivers what the library answers through a callback.
//!
//! Layout:
//! * [`protocol`]: the mediasoup v2 wire format: decoding requests, encoding answers.
//! * [`room`]: rooms, peers, transports, producers and consumers as sans-IO state.
//! * [`media`]: one str0m `Rtc` per transport: ICE-lite, DTLS, SRTP, RTP forwarding.
//! * [`net`]: UDP sockets and datagram demultiplexing, the only OS I/O besides threads.
//! * [`server`]: worker threads, the notifier thread, start-up and shutdown.
//! * `ffi`: the C ABI (the only module with `unsafe`).
#![deny(unsafe_code)]

pub mod config;
pub mod error;
mod log;
pub mod media;
pub mod net;
pub mod protocol;
pub mod room;
pub mod server;
mod util;

#[allow(unsafe_code)]
mod ffi;

pub use config::ServerConfig;
pub use error::SfuError;
pub use server::{Event, EventKind, EventSink, Server};

/// The library version (`CARGO_PKG_VERSION`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
