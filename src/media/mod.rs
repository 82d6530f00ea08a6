//! The media layer: str0m engines (one `Rtc` per transport), the table of a worker's
//! engines with their routing and timers, and the per-packet helpers of forwarding
//! (keyframe detection, sequence-number rewriting, header peeking).
//!
//! It knows nothing of rooms, peers or the protocol's messages: the room layer drives it
//! with typed calls and receives [`MediaEvent`]s.

pub mod cert;
mod codec_table;
pub mod host;
pub mod keyframe;
pub mod packet;
pub mod plain;
pub mod remote;
pub mod rewrite;
mod rtcp;
mod rtp_peek;
mod tally;
pub mod transport;
pub mod vp8_ids;

use std::net::SocketAddr;
use std::time::Duration;

use str0m::config::DtlsCert;
use str0m::media::{KeyframeRequestKind, Mid};
use crate::output::Proto;
pub use packet::InPacket;

pub use host::MediaHost;

/// A host candidate as announced to browsers (over TCP: passive, RFC 6544).
#[derive(Debug, Clone)]
pub struct AnnouncedCandidate {
    pub addr: SocketAddr,
    pub proto: Proto,
}

/// What every transport of a worker shares.
pub struct MediaEnv {
    /// The address str0m's ICE agent uses as its local UDP candidate and that incoming
    /// datagrams are addressed to (the announced address, which may differ from the
    /// socket's bound address behind NAT).
    pub ice_addr: SocketAddr,
    /// The same for ICE-TCP, if the worker listens on TCP.
    pub tcp_addr: Option<SocketAddr>,
    /// What `createTransport` announces (UDP and, if enabled, TCP).
    pub candidates: Vec<AnnouncedCandidate>,
    pub cert: DtlsCert,
    /// sha-256 fingerprint of `cert`, upper-case hex with colons.
    pub fingerprint: String,
    pub transport_timeout: Duration,
    /// Bandwidth estimation on receive transports (transport-cc feedback), starting
    /// from this many bits per second; `None`: off (`enableBwe`).
    pub bwe_initial: Option<u64>,
}

/// What a transport reports to its room.
#[derive(Debug)]
pub enum MediaEvent {
    /// ICE and DTLS are up; SRTP keys are in place.
    Connected,
    /// A validated remote source (the host routes its packets to the transport).
    RemoteAddr(Proto, SocketAddr),
    /// An RTP packet from the client (producer side).
    Rtp(InPacket),
    /// The browser asks for a keyframe on one of our outgoing streams (consumer side).
    KeyframeRequest { mid: Mid, kind: KeyframeRequestKind },
    Ingress(str0m::stats::MediaIngressStats),
    Egress(str0m::stats::MediaEgressStats),
    /// An RTX stream the browser never signalled was recognised (its payload type is the
    /// producer's RTX payload type) and is now unwrapped by str0m: `rtx` repairs `main`.
    RtxLearned { mid: String, main: u32, rtx: u32 },
    /// The transport can no longer carry media (failed, or silent too long).
    Dead(String),
    /// The counters and states of an engine another worker runs, about once a second,
    /// for its owner's statistics.
    Snapshot(TransportStats),
    /// What the link toward a receive transport's browser carries, in bits per second
    /// (docs/ARCHITECTURE.md, "Bandwidth adaptation").
    Bwe { estimate: u64, source: BweSource },
    /// What a consumer's video stream had waited too long in the pacer was dropped
    /// (`transport::PACER_QUEUE_LIMIT`): its source should send a keyframe.
    QueueDropped { mid: String },
}

/// Where an estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BweSource {
    /// str0m's send-side estimator fed by the browser's transport-cc feedback.
    Twcc,
    /// The browser's own REMB (receivers without transport-cc).
    Remb,
}

/// A transport's counters and states, for `transportStats`.
#[derive(Debug, Clone)]
pub struct TransportStats {
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub rtt_ms: Option<f64>,
    pub available_outgoing_bitrate: Option<u64>,
    /// Receive transports with bandwidth estimation: how long the oldest packet waiting
    /// in the engine's pacer had waited (ms), sampled every adaptation pass.
    pub send_queue_ms: Option<u64>,
    /// (local, remote, protocol) of the selected ICE pair.
    pub selected_tuple: Option<(SocketAddr, SocketAddr, Proto)>,
    pub ice_state: &'static str,
    pub dtls_state: &'static str,
}
