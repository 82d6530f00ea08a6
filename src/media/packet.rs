//! A producer's RTP packet as the room forwards it, whichever engine received it (a str0m
//! `Rtc`, RTX already unwrapped, or a plain RTP transport).

use std::sync::Arc;
use std::time::Instant;

use str0m::rtp::{ExtensionValues, RtpPacket};

#[derive(Debug, Clone)]
pub struct InPacket {
    pub ssrc: u32,
    pub pt: u8,
    /// Extended sequence number (no wrap).
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    /// Header-extension values, parsed with the transport's ids.
    pub ext: ExtensionValues,
    /// The payload, shared by every consumer that forwards it.
    pub payload: Arc<[u8]>,
    /// When the packet arrived.
    pub arrival: Instant,
}

impl From<RtpPacket> for InPacket {
    fn from(p: RtpPacket) -> Self {
        InPacket {
            ssrc: *p.header.ssrc,
            pt: *p.header.payload_type,
            seq: *p.seq_no,
            timestamp: p.header.timestamp,
            marker: p.header.marker,
            ext: p.header.ext_vals,
            payload: p.payload,
            arrival: p.timestamp,
        }
    }
}
