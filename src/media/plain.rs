//! A plain RTP/RTCP transport: no ICE, no DTLS, no SRTP. It carries the producers of a
//! non-browser client (ffmpeg, GStreamer publishing into a room) and the streams of the
//! host's RTP streamers (a producer's media sent to a recorder). It shares the worker's
//! UDP socket: packets are accepted from the remote's declared RTP and RTCP addresses
//! only (or, in "comedia" mode, from the first address that sends a declared SSRC).
//!
//! What recorders need (docs/ARCHITECTURE.md, "Plain RTP"): a sender report right before
//! a stream's first packet and then every second, all from one NTP ↔ RTP mapping;
//! contiguous sequence numbers; a BYE per stream when it ends. Receivers' PLI/FIR and
//! NACKs are honoured (a short send history answers NACKs).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use str0m::media::{KeyframeRequestKind, Mid};
use str0m::rtp::ExtensionValues;

use super::packet::InPacket;
use super::{rtcp, rtp_peek, MediaEvent, TransportStats};
use crate::output::{Outbox, Proto, Transmit};

/// Sender reports of a stream, once it has started.
const SR_INTERVAL: Duration = Duration::from_secs(1);
/// Packets kept per outgoing stream to answer NACKs.
const HISTORY: usize = 512;

/// Where a plain transport's remote is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainRemote {
    pub rtp: SocketAddr,
    pub rtcp: SocketAddr,
}

struct RxStream {
    mid: String,
    ssrc: u32,
    highest: Option<u64>,
}

struct TxStream {
    mid: String,
    ssrc: u32,
    clock_rate: u32,
    cname: String,
    packets: u32,
    octets: u32,
    /// (monotonic, wall clock, RTP timestamp) of the first packet: the stream's one
    /// NTP ↔ RTP mapping.
    anchor: Option<(Instant, SystemTime, u32)>,
    next_sr: Option<Instant>,
    /// (sequence number, packet) of the last packets sent.
    history: VecDeque<(u16, Vec<u8>)>,
}

pub struct PlainTransport {
    local: SocketAddr,
    remote: Option<PlainRemote>,
    comedia: bool,
    rx: Vec<RxStream>,
    tx: Vec<TxStream>,
    created: Instant,
    last_rx: Option<Instant>,
    timeout: Duration,
    bytes_rx: u64,
    bytes_tx: u64,
    dead: Option<String>,
    closed: bool,
}

impl PlainTransport {
    pub fn new(now: Instant, local: SocketAddr, remote: Option<PlainRemote>, comedia: bool, timeout: Duration) -> Self {
        PlainTransport {
            local,
            remote,
            comedia,
            rx: Vec::new(),
            tx: Vec::new(),
            created: now,
            last_rx: None,
            timeout,
            bytes_rx: 0,
            bytes_tx: 0,
            dead: None,
            closed: false,
        }
    }

    pub fn remote(&self) -> Option<PlainRemote> {
        self.remote
    }

    /// The remote moved (`updateTransport` with `plainRtpParameters`).
    pub fn set_remote(&mut self, remote: PlainRemote) {
        self.remote = Some(remote);
    }

    /// Waiting for its remote to be learnt from the first packet (comedia).
    pub fn awaits_remote(&self) -> bool {
        self.comedia && self.remote.is_none()
    }

    pub fn rx_ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.rx.iter().map(|r| r.ssrc)
    }

    fn send(&mut self, to: SocketAddr, data: Vec<u8>, out: &mut Outbox) {
        self.bytes_tx += data.len() as u64;
        out.transmit(Transmit { proto: Proto::Udp, local: self.local, remote: to, data });
    }

    pub fn add_producer(&mut self, mid: &str, streams: &[(u32, Option<u32>)]) {
        for (ssrc, _) in streams {
            self.rx.push(RxStream { mid: mid.to_string(), ssrc: *ssrc, highest: None });
        }
    }

    pub fn remove_producer(&mut self, mid: &str) {
        self.rx.retain(|r| r.mid != mid);
    }

    pub fn add_consumer(&mut self, mid: &str, ssrc: u32, clock_rate: u32) {
        self.tx.push(TxStream {
            mid: mid.to_string(),
            ssrc,
            clock_rate: clock_rate.max(1),
            cname: format!("sfu-{ssrc}"),
            packets: 0,
            octets: 0,
            anchor: None,
            next_sr: None,
            history: VecDeque::new(),
        });
    }

    /// The stream ends: one BYE, then nothing more.
    pub fn remove_consumer(&mut self, ssrc: u32, out: &mut Outbox) {
        if let Some(i) = self.tx.iter().position(|t| t.ssrc == ssrc) {
            let t = self.tx.remove(i);
            if t.anchor.is_some() {
                if let Some(r) = self.remote {
                    self.send(r.rtcp, rtcp::bye(t.ssrc), out);
                }
            }
        }
    }

    /// Ask a publishing client for a keyframe (a PLI to its RTCP address).
    pub fn request_keyframe(&mut self, ssrc: u32, out: &mut Outbox) {
        if let Some(r) = self.remote {
            let sender = self.tx.first().map(|t| t.ssrc).unwrap_or(1);
            self.send(r.rtcp, rtcp::pli(sender, ssrc), out);
        }
    }

    /// The SR of a stream at `now`, from its one mapping.
    fn sender_report(t: &TxStream, now: Instant) -> Option<Vec<u8>> {
        let (mono, wall, ts) = t.anchor?;
        let elapsed = now.saturating_duration_since(mono);
        let rtp_ts = ts.wrapping_add((elapsed.as_secs_f64() * t.clock_rate as f64) as u32);
        Some(rtcp::sender_report(t.ssrc, rtcp::ntp(wall + elapsed), rtp_ts, t.packets, t.octets, &t.cname))
    }

    /// Send one RTP packet on an outgoing stream (a sender report first, for its first
    /// packet). Returns false for an unknown stream or a transport without remote.
    #[allow(clippy::too_many_arguments)]
    pub fn write_rtp(
        &mut self,
        now: Instant,
        ssrc: u32,
        pt: u8,
        seq: u64,
        ts: u32,
        marker: bool,
        payload: &[u8],
        out: &mut Outbox,
    ) -> bool {
        let Some(remote) = self.remote else { return false };
        let Some(i) = self.tx.iter().position(|t| t.ssrc == ssrc) else {
            return false;
        };
        if self.tx[i].anchor.is_none() {
            self.tx[i].anchor = Some((now, SystemTime::now(), ts));
            self.tx[i].next_sr = Some(now + SR_INTERVAL);
            if let Some(sr) = Self::sender_report(&self.tx[i], now) {
                self.send(remote.rtcp, sr, out);
            }
        }
        let mut p = Vec::with_capacity(12 + payload.len());
        p.push(0x80);
        p.push(pt & 0x7f | if marker { 0x80 } else { 0 });
        p.extend_from_slice(&(seq as u16).to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        let t = &mut self.tx[i];
        t.packets = t.packets.wrapping_add(1);
        t.octets = t.octets.wrapping_add(payload.len() as u32);
        if t.history.len() == HISTORY {
            t.history.pop_front();
        }
        t.history.push_back((seq as u16, p.clone()));
        self.send(remote.rtp, p, out);
        true
    }

    /// A datagram from the remote (routed here by its source address).
    pub fn receive(&mut self, now: Instant, src: SocketAddr, data: &[u8], out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        if self.closed {
            return;
        }
        if self.awaits_remote() {
            // Comedia: the first packet of a declared SSRC names the remote.
            let Some(h) = rtp_peek::peek(data) else { return };
            if !self.rx.iter().any(|r| r.ssrc == h.ssrc) {
                return;
            }
            let rtcp = SocketAddr::new(src.ip(), src.port().wrapping_add(1));
            self.remote = Some(PlainRemote { rtp: src, rtcp });
            evs.push(MediaEvent::RemoteAddr(Proto::Udp, src));
            evs.push(MediaEvent::RemoteAddr(Proto::Udp, rtcp));
        }
        self.last_rx = Some(now);
        self.bytes_rx += data.len() as u64;
        if rtcp::is_rtcp(data) {
            for fb in rtcp::feedback(data) {
                match fb {
                    rtcp::Feedback::Keyframe { media, fir } => {
                        if let Some(t) = self.tx.iter().find(|t| t.ssrc == media) {
                            let kind = if fir { KeyframeRequestKind::Fir } else { KeyframeRequestKind::Pli };
                            evs.push(MediaEvent::KeyframeRequest { mid: Mid::from(t.mid.as_str()), kind });
                        }
                    }
                    rtcp::Feedback::Nack { media, seqs } => {
                        let Some(remote) = self.remote else { continue };
                        let resend: Vec<Vec<u8>> = self
                            .tx
                            .iter()
                            .filter(|t| t.ssrc == media)
                            .flat_map(|t| t.history.iter().filter(|(s, _)| seqs.contains(s)).map(|(_, p)| p.clone()))
                            .collect();
                        for p in resend {
                            self.send(remote.rtp, p, out);
                        }
                    }
                }
            }
            return;
        }
        let Some(h) = rtp_peek::peek(data) else { return };
        let Some(r) = self.rx.iter_mut().find(|r| r.ssrc == h.ssrc) else { return };
        let seq = extend(r.highest, h.seq);
        if r.highest.is_none_or(|x| seq > x) {
            r.highest = Some(seq);
        }
        let (payload, marker, ts) = match rtp_payload(data) {
            Some(p) => p,
            None => return,
        };
        evs.push(MediaEvent::Rtp(InPacket {
            ssrc: h.ssrc,
            pt: h.pt,
            seq,
            timestamp: ts,
            marker,
            ext: ExtensionValues { mid: Some(Mid::from(r.mid.as_str())), ..Default::default() },
            payload: Arc::from(payload),
            arrival: now,
        }));
    }

    /// Sender reports that are due, and inactivity of a publishing client.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        if self.closed {
            return;
        }
        if let Some(remote) = self.remote {
            let mut reports = Vec::new();
            for t in self.tx.iter_mut() {
                if t.next_sr.is_some_and(|d| d <= now) {
                    t.next_sr = Some(now + SR_INTERVAL);
                    reports.extend(Self::sender_report(t, now));
                }
            }
            for r in reports {
                self.send(remote.rtcp, r, out);
            }
        }
        if !self.rx.is_empty() || self.last_rx.is_some() {
            let since = self.last_rx.unwrap_or(self.created);
            if now.saturating_duration_since(since) > self.timeout {
                self.dead.get_or_insert(format!("no traffic for {:.0} s", self.timeout.as_secs_f64()));
            }
        }
        if let Some(reason) = self.dead.clone() {
            evs.push(MediaEvent::Dead(reason));
            self.closed = true;
        }
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let sr = self.tx.iter().filter_map(|t| t.next_sr).min();
        let dead = (!self.rx.is_empty() || self.last_rx.is_some())
            .then(|| self.last_rx.unwrap_or(self.created) + self.timeout + Duration::from_millis(1));
        match (sr, dead) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The transport ends: a BYE for every stream that has started.
    pub fn close(&mut self, out: &mut Outbox) {
        if self.closed {
            return;
        }
        let ssrcs: Vec<u32> = self.tx.iter().filter(|t| t.anchor.is_some()).map(|t| t.ssrc).collect();
        if let Some(r) = self.remote {
            for s in ssrcs {
                self.send(r.rtcp, rtcp::bye(s), out);
            }
        }
        self.closed = true;
    }

    pub fn stats(&self) -> TransportStats {
        TransportStats {
            bytes_received: self.bytes_rx,
            bytes_sent: self.bytes_tx,
            rtt_ms: None,
            available_outgoing_bitrate: None,
            send_queue_ms: None,
            selected_tuple: self.remote.map(|r| (self.local, r.rtp, Proto::Udp)),
            ice_state: "completed",
            dtls_state: "new",
        }
    }
}

/// Extend a 16-bit sequence number next to the highest one seen (RFC 3550 A.1 style).
fn extend(highest: Option<u64>, seq: u16) -> u64 {
    let Some(h) = highest else { return seq as u64 + (1 << 16) };
    let roc = h >> 16;
    let candidates = [roc.saturating_sub(1), roc, roc + 1].map(|r| (r << 16) | seq as u64);
    *candidates.iter().min_by_key(|c| c.abs_diff(h)).expect("three candidates")
}

/// (payload, marker, timestamp) of an RTP packet: after the CSRCs and the extension,
/// without padding.
fn rtp_payload(data: &[u8]) -> Option<(&[u8], bool, u32)> {
    if data.len() < 12 {
        return None;
    }
    let cc = (data[0] & 0x0f) as usize;
    let mut at = 12 + 4 * cc;
    if data[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*data.get(at + 2)?, *data.get(at + 3)?]) as usize;
        at += 4 + 4 * words;
    }
    let mut end = data.len();
    if data[0] & 0x20 != 0 {
        let pad = *data.last()? as usize;
        end = end.checked_sub(pad)?;
    }
    let payload = data.get(at..end)?;
    let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    Some((payload, data[1] & 0x80 != 0, ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_extend_across_the_wrap() {
        let a = extend(None, 65534);
        let b = extend(Some(a), 65535);
        let c = extend(Some(b), 0);
        let d = extend(Some(c), 65535); // late
        assert_eq!((b - a, c - b), (1, 1));
        assert_eq!(d, b);
    }

    #[test]
    fn payload_skips_csrcs_extensions_and_padding() {
        // CC=1, X=1, P=1; one CSRC; a one-word extension; payload [7,8]; 2 bytes of padding.
        let mut p = vec![0xB1, 0x80 | 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 5];
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xFF, 0, 0]);
        p.extend_from_slice(&[7, 8, 0, 2]);
        assert_eq!(rtp_payload(&p), Some((&[7u8, 8][..], true, 9)));
        assert_eq!(rtp_payload(&p[..11]), None);
    }

    #[test]
    fn a_streamer_sends_a_report_before_its_first_packet_and_a_bye_at_the_end() {
        let now = Instant::now();
        let remote = PlainRemote { rtp: "127.0.0.1:5004".parse().unwrap(), rtcp: "127.0.0.1:5005".parse().unwrap() };
        let mut t = PlainTransport::new(now, "127.0.0.1:40000".parse().unwrap(), Some(remote), false, Duration::from_secs(30));
        t.add_consumer("c1", 1234, 90000);
        let mut out = Outbox::default();
        assert!(t.write_rtp(now, 1234, 101, 1000, 5000, true, &[1, 2, 3], &mut out));
        assert!(t.write_rtp(now, 1234, 101, 1001, 8000, false, &[4], &mut out));
        let sent: Vec<Transmit> = std::iter::from_fn(|| match out.pop() {
            Some(crate::output::Output::Transmit(t)) => Some(t),
            _ => None,
        })
        .collect();
        assert_eq!(sent.len(), 3);
        assert_eq!((sent[0].remote, sent[0].data[1]), (remote.rtcp, 200), "SR first, to the RTCP port");
        assert_eq!(sent[1].remote, remote.rtp);
        assert_eq!(&sent[1].data[..4], &[0x80, 0x80 | 101, 0x03, 0xE8]);
        t.remove_consumer(1234, &mut out);
        match out.pop() {
            Some(crate::output::Output::Transmit(b)) => assert_eq!((b.data[1], b.data[9]), (201, 203), "RR then BYE"),
            other => panic!("{other:?}"),
        }
    }
}
