//! The media path inside a room: driving each transport's `Rtc`, forwarding a
//! producer's RTP to its consumers (rewritten per consumer), relaying keyframe
//! requests upstream with throttling, and closing dead transports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use str0m::media::KeyframeRequestKind;
use str0m::rtp::RtpPacket;

use super::{Demux, PKey, Room, TKey};
use crate::media::{keyframe, MediaEvent, Tx};

/// Keyframe requests toward a producer: at most one per this interval (mediasoup: 1/s).
pub const KEYFRAME_THROTTLE: Duration = Duration::from_secs(1);

/// The private MID of a consumer's stream in its transport's `Rtc`.
pub fn consumer_mid(id: u64) -> String {
    format!("c{id}")
}

fn consumer_id_of_mid(mid: &str) -> Option<u64> {
    mid.strip_prefix('c')?.parse().ok()
}

/// A sequence number this far ahead of the last one (RFC 3550 A.1's MAX_DROPOUT) or this
/// far behind it (a generous MAX_MISORDER: retransmissions arrive up to a second late) is
/// not part of the numbering in use.
const MAX_DROPOUT: u64 = 3000;
const MAX_MISORDER: u64 = 1000;
/// Padding packets remembered for late packets' numbering (see `skip`).
const MAX_SKIPPED: usize = 64;

/// Per-consumer rewriting of sequence numbers and timestamps: continuous across
/// pause/resume, producer changes and layer switches, and across input packets that are
/// not forwarded (padding).
#[derive(Debug, Clone, Default)]
pub struct ConsumerForwarding {
    started: bool,
    /// out_seq = in_seq + seq_delta (extended numbers), for packets after the last skip.
    seq_delta: i64,
    /// out_ts = in_ts + ts_delta (wrapping).
    ts_delta: u32,
    last_out_seq: u64,
    last_out_ts: u32,
    last_wallclock: Option<Instant>,
    /// The next packet re-bases the offsets to continue after the last one sent.
    resync: bool,
    /// Extended input sequence number the current offsets were based on.
    base_in_seq: u64,
    /// The highest input sequence number of the current numbering.
    last_in_seq: u64,
    /// Input numbers skipped (not forwarded) after which `seq_delta` was lowered by one.
    skipped: std::collections::VecDeque<u64>,
    /// A packet far outside the numbering was seen; the numbering moves there if the next
    /// packet is this one (two in a row, as RFC 3550 A.1 does).
    probation: Option<u64>,
    /// Simulcast: the encoding currently forwarded.
    pub layer: Option<u32>,
}

impl ConsumerForwarding {
    /// The source's numbering changes (new SSRCs, layer switch): re-base.
    pub fn source_changed(&mut self) {
        if self.started {
            self.resync = true;
        }
    }

    /// After a pause: re-base so the browser sees no gap.
    pub fn resumed(&mut self) {
        self.source_changed();
    }

    /// Where `in_seq` stands against the numbering in use.
    fn place(&self, in_seq: u64) -> Place {
        if in_seq > self.last_in_seq {
            if in_seq - self.last_in_seq <= MAX_DROPOUT {
                return Place::Ahead;
            }
        } else if self.last_in_seq - in_seq <= MAX_MISORDER {
            return if in_seq < self.base_in_seq { Place::BeforeBase } else { Place::Behind };
        }
        Place::Far
    }

    /// An input packet that will not be forwarded (padding): the packets after it are
    /// numbered one lower, so the consumer sees no gap. A skipped packet that is late (the
    /// packets after it went out already) cannot be hidden and is ignored.
    pub fn skip(&mut self, in_seq: u64) {
        if !self.started || self.resync || self.place(in_seq) != Place::Ahead {
            return;
        }
        self.seq_delta -= 1;
        self.last_in_seq = in_seq;
        if self.skipped.len() == MAX_SKIPPED {
            self.skipped.pop_front();
        }
        self.skipped.push_back(in_seq);
    }

    /// Output (seq, ts) for an input packet; `None` drops it: older than the start of
    /// this consumer's numbering, or a first packet far outside the numbering in use.
    pub fn rewrite(
        &mut self,
        in_seq: u64,
        in_ts: u32,
        wallclock: Instant,
        clock_rate: u32,
    ) -> Option<(u64, u32)> {
        if self.started && !self.resync {
            match self.place(in_seq) {
                Place::Ahead => {}
                Place::Behind => {}
                Place::BeforeBase => return None,
                Place::Far if self.probation == Some(in_seq) => self.resync = true,
                Place::Far => {
                    self.probation = Some(in_seq + 1);
                    return None;
                }
            }
        }
        if !self.started || self.resync {
            let (out_seq, out_ts) = if !self.started {
                // The first packet must be below 65536 (SRTP ROC 0, see docs/ARCHITECTURE.md).
                (1000 + (in_seq % 1000), in_ts)
            } else {
                let elapsed = self
                    .last_wallclock
                    .map(|w| wallclock.saturating_duration_since(w))
                    .unwrap_or_default();
                let step = ((elapsed.as_secs_f64() * clock_rate as f64) as u32).max(1);
                (self.last_out_seq + 1, self.last_out_ts.wrapping_add(step))
            };
            self.seq_delta = out_seq as i64 - in_seq as i64;
            self.ts_delta = out_ts.wrapping_sub(in_ts);
            self.base_in_seq = in_seq;
            self.last_in_seq = in_seq;
            self.skipped.clear();
            self.started = true;
            self.resync = false;
        }
        self.probation = None;
        let delta = if in_seq > self.last_in_seq {
            self.last_in_seq = in_seq;
            self.seq_delta
        } else {
            // A late packet was numbered before the skips that came after it.
            let later_skips = self.skipped.iter().filter(|s| **s > in_seq).count();
            self.seq_delta + later_skips as i64
        };
        let out_seq = (in_seq as i64 + delta) as u64;
        let out_ts = in_ts.wrapping_add(self.ts_delta);
        if out_seq > self.last_out_seq || self.last_wallclock.is_none() {
            self.last_out_seq = out_seq;
            self.last_out_ts = out_ts;
            self.last_wallclock = Some(wallclock);
        }
        Some((out_seq, out_ts))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Newer than any packet of the numbering, within the dropout bound.
    Ahead,
    /// Older than the newest, within the misorder bound (late or retransmitted).
    Behind,
    /// Within the misorder bound but older than the first packet of this numbering.
    BeforeBase,
    /// Outside both bounds.
    Far,
}

impl Room {
    /// Feed a transport a datagram (or a tick) and act on what it reports.
    pub(crate) fn drive_transport(
        &mut self,
        now: Instant,
        tkey: TKey,
        input: Option<(SocketAddr, SocketAddr, &[u8])>,
        tx: &mut Tx,
    ) {
        let mut evs = Vec::new();
        {
            let Some(t) = self.transports.get_mut(&tkey) else {
                return;
            };
            t.media
                .handle_input(now, input.map(|(s, _, d)| (s, d)), &mut evs, tx);
        }
        let mut dead: Option<String> = None;
        for ev in evs {
            match ev {
                MediaEvent::Connected => self.on_connected(now, tkey),
                MediaEvent::RemoteAddr(a) => self.demux.push(Demux::AddAddr(a, tkey)),
                MediaEvent::Rtp(p) => self.forward(now, tkey, p, tx),
                MediaEvent::KeyframeRequest { mid, kind } => {
                    if let Some(cid) = consumer_id_of_mid(&mid) {
                        if let Some(c) = self.consumers.get_mut(&cid) {
                            match kind {
                                KeyframeRequestKind::Fir => c.counters.firs += 1,
                                _ => c.counters.plis += 1,
                            }
                            let pk = c.producer;
                            self.request_keyframe_upstream(now, pk, false);
                        }
                    }
                }
                MediaEvent::Ingress(s) => {
                    if let Some(p) = self
                        .producers
                        .values_mut()
                        .find(|p| p.transport == tkey && *s.mid == *p.mid)
                    {
                        p.counters.nacks = s.nacks;
                        p.counters.plis = s.plis;
                        p.counters.firs = s.firs;
                        p.counters.loss = s.loss;
                        p.counters.jitter = Some(s.jitter);
                        p.counters.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1000.0);
                    }
                }
                MediaEvent::Egress(s) => {
                    if let Some(c) =
                        consumer_id_of_mid(&s.mid).and_then(|id| self.consumers.get_mut(&id))
                    {
                        c.counters.nacks = s.nacks;
                        c.counters.loss = s.loss;
                        c.counters.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1000.0);
                        c.counters.jitter = s.remote.map(|r| r.jitter);
                    }
                }
                MediaEvent::RtxLearned { mid, main, rtx } => self.rtx_learned(tkey, &mid, main, rtx),
                MediaEvent::Dead(reason) => dead = Some(reason),
            }
        }
        if let Some(reason) = dead {
            self.transport_died(now, tkey, &reason);
        }
    }

    fn on_connected(&mut self, now: Instant, tkey: TKey) {
        if let Some(t) = self.transports.get(&tkey) {
            crate::log::log(crate::config::LogLevel::Debug, || {
                format!(
                    "room {}: transport {} of peer {} connected (ICE + DTLS)",
                    self.id, t.id, t.peer
                )
            });
        }
        // Consumers enabled before the transport connected need a keyframe now.
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        let producers: Vec<PKey> = t
            .consumers
            .iter()
            .filter_map(|c| self.consumers.get(c))
            .map(|c| c.producer)
            .collect();
        for pk in producers {
            self.request_keyframe_upstream(now, pk, false);
        }
    }

    pub(crate) fn transport_died(&mut self, now: Instant, tkey: TKey, reason: &str) {
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        let (peer, id) = (t.peer.clone(), t.id);
        crate::log::log(crate::config::LogLevel::Warn, || {
            format!(
                "room {}: closing transport {id} of peer {peer}: {reason}",
                self.id
            )
        });
        self.host_event(
            &peer,
            json!({"event": "transportClosed", "id": id, "reason": reason}),
        );
        self.close_transport(now, tkey, true);
    }

    /// Ask the producer's browser for a keyframe (video), at most once per
    /// `KEYFRAME_THROTTLE`; a throttled request is sent when the interval ends.
    pub(crate) fn request_keyframe_upstream(&mut self, now: Instant, pkey: PKey, force: bool) {
        let Some(p) = self.producers.get_mut(&pkey) else {
            return;
        };
        if p.kind != super::codecs::Kind::Video {
            return;
        }
        if !force
            && p.last_keyframe_request
                .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_THROTTLE)
        {
            p.keyframe_pending = true;
            return;
        }
        p.last_keyframe_request = Some(now);
        p.keyframe_pending = false;
        let ssrcs: Vec<u32> = p.mapping.encodings.iter().filter_map(|e| e.ssrc).collect();
        if let Some(t) = self.transports.get_mut(&p.transport) {
            for s in ssrcs {
                t.media.request_keyframe(now, s, KeyframeRequestKind::Pli);
            }
        }
    }

    /// Throttled keyframe requests whose interval has ended.
    pub(crate) fn send_pending_keyframe_requests(&mut self, now: Instant) {
        let due: Vec<PKey> = self
            .producers
            .iter()
            .filter(|(_, p)| {
                p.keyframe_pending
                    && p.last_keyframe_request
                        .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_THROTTLE)
            })
            .map(|(k, _)| *k)
            .collect();
        for pk in due {
            self.request_keyframe_upstream(now, pk, false);
        }
    }

    /// The earliest pending keyframe request.
    pub(crate) fn next_keyframe_deadline(&self) -> Option<Instant> {
        self.producers
            .values()
            .filter(|p| p.keyframe_pending)
            .filter_map(|p| p.last_keyframe_request.map(|t| t + KEYFRAME_THROTTLE))
            .min()
    }

    /// Send the RTP that `forward` queued (once per transport, whatever the number
    /// of packets). The worker calls it after each batch of input datagrams.
    pub fn flush_writes(&mut self, now: Instant, tx: &mut Tx) {
        self.pending_write_count = 0;
        for k in std::mem::take(&mut self.pending_writes) {
            if let Some(t) = self.transports.get_mut(&k) {
                t.media.flush_writes(now, tx);
            }
        }
    }

    /// RTP packets queued and not yet flushed.
    pub fn pending_writes(&self) -> usize {
        self.pending_write_count
    }

    /// Transmits queued by control-plane calls (keyframe requests, DTLS start...).
    pub fn flush(&mut self, tx: &mut Tx) {
        for t in self.transports.values_mut() {
            t.media.flush(tx);
        }
    }

    /// Forward one producer packet to every consumer that should get it.
    fn forward(&mut self, now: Instant, tkey: TKey, pkt: RtpPacket, tx: &mut Tx) {
        let ssrc = *pkt.header.ssrc;
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        // By SSRC (media, or RTX that str0m unwrapped onto its media SSRC); else by the
        // mid extension, for a media packet only: an RTX payload type on an SSRC that is
        // not a known media SSRC was not unwrapped and must never pass for media.
        let by_ssrc = t.producers.iter().copied().find_map(|pk| {
            let p = &self.producers[&pk];
            p.mapping
                .encodings
                .iter()
                .position(|e| e.ssrc == Some(ssrc))
                .map(|i| (pk, i as u32))
        });
        let found = by_ssrc.or_else(|| {
            let mid = pkt.header.ext_vals.mid?;
            t.producers.iter().copied().find(|pk| {
                let p = &self.producers[pk];
                *mid == *p.mid
                    && p.mapping
                        .room_pt(*pkt.header.payload_type)
                        .is_some_and(|(_, is_rtx)| !is_rtx)
            })
            .map(|pk| (pk, 0))
        });
        let Some((pkey, layer)) = found else { return };
        let Room {
            producers,
            consumers,
            transports,
            caps,
            pending_writes,
            pending_write_count,
            ..
        } = self;
        let p = producers.get_mut(&pkey).expect("found");
        p.counters.packets += 1;
        p.counters.bytes += pkt.payload.len() as u64;
        if p.paused {
            return;
        }
        let Some((mut room_pt, is_rtx)) = p.mapping.room_pt(*pkt.header.payload_type) else {
            return;
        };
        if is_rtx {
            // str0m unwrapped an RTX packet recognised by its SSRC.
            match p
                .mapping
                .codecs
                .iter()
                .find(|m| m.room_rtx_pt == Some(room_pt))
            {
                Some(m) => room_pt = m.room_pt,
                None => return,
            }
        }
        let Some(codec) = caps.codec_by_pt(room_pt) else {
            return;
        };
        let clock_rate = codec.clock_rate;
        let simulcast = p.mapping.encodings.len() > 1;
        // Padding (no payload) is never forwarded: the consumers' numbering skips it.
        let padding = pkt.payload.is_empty();
        let keyframe = simulcast && !padding && keyframe::is_keyframe(&codec.name, &pkt.payload);
        let layer_profile = p
            .mapping
            .encodings
            .get(layer as usize)
            .and_then(|e| e.profile.clone());
        let mut ext = pkt.header.ext_vals.clone();
        ext.transport_cc = None;
        ext.mid = None;
        ext.rid = None;
        ext.rid_repair = None;
        for cid in &p.consumers {
            let Some(c) = consumers.get_mut(cid) else {
                continue;
            };
            let Some(ctk) = c.transport else { continue };
            if c.remote_paused || !c.params.media_pts.contains(&room_pt) {
                continue;
            }
            if simulcast {
                let want = c.effective_profile.as_deref();
                let is_target = layer_profile.as_deref() == want
                    || (want == Some("default") && c.fwd.layer.is_none());
                match c.fwd.layer {
                    Some(l) if l == layer => {}
                    _ if is_target && (keyframe || c.fwd.layer.is_none()) && !padding => {
                        c.fwd.layer = Some(layer);
                        c.fwd.source_changed();
                    }
                    _ => continue,
                }
            }
            if padding {
                c.fwd.skip(*pkt.seq_no);
                continue;
            }
            let Some(ct) = transports.get_mut(&ctk) else {
                continue;
            };
            if !ct.media.is_connected() {
                continue;
            }
            let Some((seq, ts)) =
                c.fwd
                    .rewrite(*pkt.seq_no, pkt.header.timestamp, pkt.timestamp, clock_rate)
            else {
                continue;
            };
            let was_pending = ct.media.writes_pending();
            let sent = ct.media.write_rtp(
                now,
                c.params.ssrc,
                room_pt,
                seq,
                ts,
                pkt.timestamp,
                pkt.header.marker,
                ext.clone(),
                pkt.payload.clone(),
                tx,
            );
            if sent {
                c.counters.packets += 1;
                c.counters.bytes += pkt.payload.len() as u64;
                *pending_write_count += 1;
                if !was_pending {
                    pending_writes.push(ctk);
                }
            }
        }
    }

    /// The transport recognised the RTX SSRC of a producer stream the browser did not
    /// signal (see `TransportMedia::learn_rtx`): record it in the producer's mapping.
    fn rtx_learned(&mut self, tkey: TKey, mid: &str, main: u32, rtx: u32) {
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        for pk in &t.producers {
            let Some(p) = self.producers.get_mut(pk) else {
                continue;
            };
            if p.mid != mid {
                continue;
            }
            for e in p.mapping.encodings.iter_mut() {
                if e.ssrc == Some(main) && e.rtx.is_none() {
                    e.rtx = Some(crate::protocol::rtp::RtxParameters { ssrc: rtx });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_starts_below_65536_and_stays_continuous_across_resync() {
        let t0 = Instant::now();
        let mut f = ConsumerForwarding::default();
        let (s1, ts1) = f.rewrite(70_000, 5000, t0, 90000).unwrap();
        assert!(s1 < 65536);
        assert_eq!(ts1, 5000);
        let (s2, _) = f.rewrite(70_001, 8000, t0, 90000).unwrap();
        assert_eq!(s2, s1 + 1);
        // older than the base: dropped
        assert!(f.rewrite(69_999, 1, t0, 90000).is_none());
        // pause, the source jumps, resume: continuous output
        f.resumed();
        let (s3, ts3) = f
            .rewrite(90_000, 123, t0 + Duration::from_millis(500), 90000)
            .unwrap();
        assert_eq!(s3, s2 + 1);
        assert_eq!(ts3, 8000 + 45000);
        let (s4, ts4) = f.rewrite(90_001, 3123, t0, 90000).unwrap();
        assert_eq!((s4, ts4), (s3 + 1, ts3 + 3000));
    }

    #[test]
    fn skipped_padding_leaves_no_gap_and_late_packets_keep_their_numbers() {
        let t0 = Instant::now();
        let mut f = ConsumerForwarding::default();
        let out = |f: &mut ConsumerForwarding, s: u64| f.rewrite(s, 0, t0, 90000).unwrap().0;
        let a = out(&mut f, 100);
        assert_eq!(out(&mut f, 101), a + 1);
        // 103 is lost for now; 102 and 104 are padding.
        f.skip(102);
        f.skip(104);
        assert_eq!(out(&mut f, 105), a + 3, "101, (103), 105: no hole for the padding");
        // 103 arrives late (a retransmission): it keeps the number it would have had.
        assert_eq!(out(&mut f, 103), a + 2);
        assert_eq!(out(&mut f, 106), a + 4);
        // Padding before the first packet does not start the numbering.
        let mut g = ConsumerForwarding::default();
        g.skip(50_000);
        assert_eq!(g.rewrite(7, 0, t0, 90000).unwrap().0, 1007);
    }

    #[test]
    fn one_packet_far_off_is_dropped_and_a_new_numbering_is_taken_after_two_in_a_row() {
        let t0 = Instant::now();
        let mut f = ConsumerForwarding::default();
        let a = f.rewrite(12_069, 0, t0, 90000).unwrap().0; // a stray base (RTX space)
        // The media's own numbering is far behind: the first packet is held back...
        assert!(f.rewrite(1746, 0, t0, 90000).is_none());
        // ...the second in a row re-bases, continuing after the last output.
        assert_eq!(f.rewrite(1747, 0, t0, 90000).unwrap().0, a + 1);
        assert_eq!(f.rewrite(1748, 0, t0, 90000).unwrap().0, a + 2);
        // A single stray packet far ahead is dropped and changes nothing.
        assert!(f.rewrite(40_000, 0, t0, 90000).is_none());
        assert_eq!(f.rewrite(1749, 0, t0, 90000).unwrap().0, a + 3);
        // Retransmissions before this numbering's base are still dropped.
        assert!(f.rewrite(1740, 0, t0, 90000).is_none());
    }
}
