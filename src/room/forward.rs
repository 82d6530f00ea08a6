//! The media path inside a room: a producer's RTP to its consumers (rewritten per
//! consumer), keyframe requests relayed upstream with throttling, media events of the
//! transports (docs/ARCHITECTURE.md, "Forwarding a producer's packets").

use serde_json::json;
use str0m::media::KeyframeRequestKind;

use super::{Cx, Room, RoomTimer, KEYFRAME_THROTTLE};
use crate::config::LogLevel;
use crate::ids::{ConsumerId, ProducerKey, TransportKey};
use crate::media::{keyframe, InPacket, MediaEvent};
use crate::ortc::Kind;
use crate::protocol::request::Profile;
use crate::protocol::rtp::RtxParameters;

/// The private MID of a consumer's stream in its transport's engine.
pub fn consumer_mid(id: ConsumerId) -> String {
    format!("c{}", id.0)
}

fn consumer_id_of_mid(mid: &str) -> Option<ConsumerId> {
    mid.strip_prefix('c')?.parse().ok().map(ConsumerId)
}

impl Room {
    /// A media event other than RTP and death (see `handle_media`).
    pub(super) fn on_media_event(&mut self, cx: &mut Cx, tkey: TransportKey, ev: MediaEvent) {
        match ev {
            MediaEvent::Connected => self.on_connected(cx, tkey),
            MediaEvent::KeyframeRequest { mid, kind } => {
                let Some(c) = consumer_id_of_mid(&mid).and_then(|id| self.consumers.get_mut(&id)) else {
                    return;
                };
                match kind {
                    KeyframeRequestKind::Fir => c.counters.firs += 1,
                    _ => c.counters.plis += 1,
                }
                let pk = c.producer;
                self.request_keyframe_upstream(cx, pk, false);
            }
            MediaEvent::Ingress(s) => {
                let Some(t) = self.transports.get(&tkey) else { return };
                let found = t.producers.iter().find(|pk| self.producers.get(pk).is_some_and(|p| *s.mid == *p.mid));
                if let Some(p) = found.copied().and_then(|pk| self.producers.get_mut(&pk)) {
                    p.counters.nacks = s.nacks;
                    p.counters.plis = s.plis;
                    p.counters.firs = s.firs;
                    p.counters.loss = s.loss;
                    p.counters.jitter = Some(s.jitter);
                    p.counters.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1000.0);
                }
            }
            MediaEvent::Egress(s) => {
                if let Some(loss) = s.loss {
                    self.on_loss(tkey, loss);
                }
                if let Some(c) = consumer_id_of_mid(&s.mid).and_then(|id| self.consumers.get_mut(&id)) {
                    c.counters.nacks = s.nacks;
                    c.counters.loss = s.loss;
                    c.counters.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1000.0);
                    c.counters.jitter = s.remote.map(|r| r.jitter);
                }
            }
            MediaEvent::RtxLearned { mid, main, rtx } => self.rtx_learned(tkey, &mid, main, rtx),
            // Routing is the media host's; RTP and death are handled by the caller.
            MediaEvent::RemoteAddr(..) | MediaEvent::Rtp(_) | MediaEvent::Dead(_) => {}
            // The media host keeps it (its view of an engine on another worker); a
            // `transportStats` waiting for it goes out now.
            MediaEvent::Snapshot(_) => {
                if self.transports.get(&tkey).is_some_and(|t| t.stats_waiting) {
                    self.emit_transport_stats(cx, tkey);
                }
            }
            MediaEvent::Bwe { estimate, source } => self.on_estimate(cx, tkey, estimate, source),
            MediaEvent::QueueDropped { mid } => {
                let Some(c) = consumer_id_of_mid(&mid).and_then(|id| self.consumers.get(&id)) else {
                    return;
                };
                let pk = c.producer;
                self.request_keyframe_upstream(cx, pk, false);
            }
        }
    }

    fn on_connected(&mut self, cx: &mut Cx, tkey: TransportKey) {
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        cx.out.log(LogLevel::Debug, module_path!(), || {
            format!("room {}: transport {} of peer {} connected (ICE + DTLS)", self.id, t.id, t.peer)
        });
        // Consumers enabled before the transport connected need a keyframe now.
        let producers: Vec<ProducerKey> =
            t.consumers.iter().filter_map(|c| self.consumers.get(c)).map(|c| c.producer).collect();
        for pk in producers {
            self.request_keyframe_upstream(cx, pk, false);
        }
    }

    pub(super) fn transport_died(&mut self, cx: &mut Cx, tkey: TransportKey, reason: &str) {
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        let (peer, id) = (t.peer.clone(), t.id);
        cx.out.log(LogLevel::Warn, module_path!(), || format!("room {}: closing transport {id} of peer {peer}: {reason}", self.id));
        self.host_event(cx, &peer, json!({"event": "transportClosed", "id": id.0, "reason": reason}));
        self.close_transport(cx, tkey, true);
    }

    /// Ask the producer's browser for a keyframe (video), at most once per
    /// `KEYFRAME_THROTTLE`; a throttled request is sent when the interval ends.
    pub(super) fn request_keyframe_upstream(&mut self, cx: &mut Cx, pkey: ProducerKey, force: bool) {
        let Some(p) = self.producers.get_mut(&pkey) else {
            return;
        };
        if p.kind != Kind::Video {
            return;
        }
        if let Some(last) = p.last_keyframe_request {
            if !force && cx.now.saturating_duration_since(last) < KEYFRAME_THROTTLE {
                p.keyframe_pending = true;
                self.timers.set(RoomTimer::Keyframe(pkey), Some(last + KEYFRAME_THROTTLE));
                return;
            }
        }
        p.last_keyframe_request = Some(cx.now);
        p.keyframe_pending = false;
        self.timers.set(RoomTimer::Keyframe(pkey), None);
        for e in &p.mapping.encodings {
            if let Some(s) = e.ssrc {
                cx.media.request_keyframe(cx.now, p.transport, s, KeyframeRequestKind::Pli, cx.out);
            }
        }
    }

    /// A producer's losses that were not recovered in time: ask for a keyframe (they
    /// broke every consumer's picture), and watch the next ones.
    pub(super) fn check_losses(&mut self, cx: &mut Cx, pkey: ProducerKey) {
        let Some(p) = self.producers.get_mut(&pkey) else { return };
        let mut lost = false;
        for w in p.loss.iter_mut() {
            lost |= w.expire(cx.now);
        }
        let next = p.loss.iter().filter_map(|w| w.deadline()).min();
        if lost {
            p.counters.unrecovered += 1;
            cx.out.log(LogLevel::Debug, module_path!(), || format!("room {}: producer {} lost packets for good: keyframe requested", self.id, p.id));
            self.request_keyframe_upstream(cx, pkey, false);
        }
        self.timers.set(RoomTimer::LossCheck(pkey), next);
    }

    /// Forward one producer packet to every consumer that should get it.
    pub(super) fn forward(&mut self, cx: &mut Cx, tkey: TransportKey, pkt: InPacket) {
        let ssrc = pkt.ssrc;
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        // By SSRC (media, or RTX that str0m unwrapped onto its media SSRC); else by the
        // mid extension, for a media packet only: an RTX payload type on an SSRC that is
        // not a known media SSRC was not unwrapped and must never pass for media.
        let by_ssrc = t.producers.iter().find_map(|pk| {
            let p = &self.producers[pk];
            p.mapping.encodings.iter().position(|e| e.ssrc == Some(ssrc)).map(|i| (*pk, i as u32))
        });
        let found = by_ssrc.or_else(|| {
            let mid = pkt.ext.mid?;
            t.producers
                .iter()
                .find(|pk| {
                    let p = &self.producers[*pk];
                    *mid == *p.mid
                        && p.mapping.room_pt(pkt.pt).is_some_and(|(_, is_rtx)| !is_rtx)
                })
                .map(|pk| (*pk, 0))
        });
        let Some((pkey, layer)) = found else { return };
        let Room { producers, consumers, caps, timers, .. } = self;
        let p = producers.get_mut(&pkey).expect("found");
        p.counters.packets += 1;
        p.counters.bytes += pkt.payload.len() as u64;
        if p.kind == Kind::Video {
            if p.loss.len() <= layer as usize {
                p.loss.resize_with(layer as usize + 1, Default::default);
            }
            let w = &mut p.loss[layer as usize];
            let before = w.deadline();
            w.packet(pkt.seq, cx.now);
            match w.deadline() {
                Some(d) if before != Some(d) && timers.get(RoomTimer::LossCheck(pkey)).is_none_or(|t| d < t) => {
                    timers.set(RoomTimer::LossCheck(pkey), Some(d));
                }
                _ => {}
            }
        }
        if p.paused {
            return;
        }
        let Some((mut room_pt, is_rtx)) = p.mapping.room_pt(pkt.pt) else {
            return;
        };
        if is_rtx {
            // str0m unwrapped an RTX packet recognised by its SSRC.
            match p.mapping.codecs.iter().find(|m| m.room_rtx_pt == Some(room_pt)) {
                Some(m) => room_pt = m.room_pt,
                None => return,
            }
        }
        let Some(codec) = caps.codec_by_pt(room_pt) else {
            return;
        };
        if !is_rtx && !pkt.payload.is_empty() {
            p.meter.packet(layer, pkt.payload.len(), cx.now);
        }
        if let Some(level) = pkt.ext.audio_level {
            // RFC 6464: -dBov, read by str0m as a negative level (silence is -127).
            p.levels.add(level);
            p.speech.add(level);
        }
        let clock_rate = codec.clock_rate;
        let simulcast = p.mapping.encodings.len() > 1;
        let simulcast_vp8 = simulcast && codec.name.eq_ignore_ascii_case("vp8");
        // Padding (no payload) is never forwarded: the consumers' numbering skips it.
        let padding = pkt.payload.is_empty();
        let keyframe = simulcast && !padding && keyframe::is_keyframe(&codec.name, &pkt.payload);
        let layer_profile = p.mapping.encodings.get(layer as usize).and_then(|e| e.profile.as_deref());
        let mut ext = pkt.ext.clone();
        ext.transport_cc = None;
        ext.mid = None;
        ext.rid = None;
        ext.rid_repair = None;
        let mut switched: Vec<ConsumerId> = Vec::new();
        for cid in &p.consumers {
            let Some(c) = consumers.get_mut(cid) else {
                continue;
            };
            let Some(ctk) = c.transport else { continue };
            if c.remote_paused || c.choice.stopped || !c.params.media_pts.contains(&room_pt) {
                continue;
            }
            if simulcast {
                // The layer bandwidth chose (adapt.rs); before the first decision, the
                // one the preferred profile names.
                let is_target = match c.choice.target {
                    Some(t) => t == layer,
                    None => {
                        let want = c.effective_profile.as_deref();
                        layer_profile == want || (want == Some(Profile::Default.as_str()) && c.fwd.layer.is_none())
                    }
                };
                match c.fwd.layer {
                    Some(l) if l == layer => {}
                    _ if is_target && (keyframe || c.fwd.layer.is_none()) && !padding => {
                        if c.fwd.layer.is_some() || c.choice.target.is_some() {
                            switched.push(*cid);
                        }
                        if c.fwd.layer.is_some() {
                            // The old layer's packets are of no use past this keyframe.
                            cx.media.forget_queued(cx.now, ctk, &consumer_mid(*cid), cx.out);
                        }
                        if keyframe {
                            c.fwd.vp8.rebase();
                        }
                        c.fwd.layer = Some(layer);
                        c.fwd.source_changed();
                    }
                    _ => continue,
                }
            }
            if padding {
                c.fwd.skip(pkt.seq);
                continue;
            }
            if !cx.media.is_connected(ctk) {
                continue;
            }
            let Some((seq, ts)) = c.fwd.rewrite(pkt.seq, pkt.timestamp, pkt.arrival, clock_rate) else {
                continue;
            };
            let vp8 = if simulcast_vp8 { c.fwd.vp8.patch(&pkt.payload) } else { None };
            let sent = cx.media.write_rtp(
                cx.now,
                ctk,
                c.params.ssrc,
                room_pt,
                seq,
                ts,
                pkt.arrival,
                pkt.marker,
                ext.clone(),
                pkt.payload.clone(),
                vp8,
                cx.out,
            );
            if sent {
                c.counters.packets += 1;
                c.counters.bytes += pkt.payload.len() as u64;
            }
        }
        // Consumers that moved to another layer say so.
        if let Some(name) = switched.first().and_then(|_| self.layer_name(pkey, layer, cx.now)) {
            for cid in switched {
                self.effective_changed(cx, cid, &name);
            }
        }
    }

    /// The transport recognised the RTX SSRC of a producer stream the browser did not
    /// signal: record it in the producer's mapping.
    fn rtx_learned(&mut self, tkey: TransportKey, mid: &str, main: u32, rtx: u32) {
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
                    e.rtx = Some(RtxParameters { ssrc: rtx });
                    self.ssrcs.insert(rtx);
                }
            }
        }
    }
}
