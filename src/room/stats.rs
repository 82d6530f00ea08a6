//! Periodic `transportStats` / `producerStats` / `consumerStats` notifications
//! (docs/PROTOCOL.md, "Statistics"). Each subscription is one timer of the room.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::{Cx, Room, RoomTimer};
use crate::ids::{ConsumerId, ProducerKey, TransportKey};

/// A periodic timer for one stats subscription.
#[derive(Debug, Clone)]
pub struct StatsTimer {
    pub interval: Duration,
    pub next: Instant,
    /// Counter values at the previous emission (bitrate computation).
    pub last_bytes: u64,
    pub last_at: Instant,
}

impl StatsTimer {
    pub fn new(now: Instant, interval: Duration) -> Self {
        StatsTimer {
            interval,
            next: now + interval,
            last_bytes: 0,
            last_at: now,
        }
    }

    /// Bits per second since the previous emission, and re-arm.
    fn tick(&mut self, now: Instant, bytes: u64) -> u64 {
        let dt = now.saturating_duration_since(self.last_at).as_secs_f64();
        let rate = if dt > 0.0 {
            (bytes.saturating_sub(self.last_bytes) as f64 * 8.0 / dt) as u64
        } else {
            0
        };
        self.last_bytes = bytes;
        self.last_at = now;
        while self.next <= now {
            self.next += self.interval;
        }
        rate
    }
}

/// Counters kept by the forwarding path, plus the latest str0m statistics.
#[derive(Debug, Clone, Default)]
pub struct StreamCounters {
    pub packets: u64,
    pub bytes: u64,
    pub nacks: u64,
    pub plis: u64,
    pub firs: u64,
    /// Losses the producer did not repair in time (a keyframe was requested).
    pub unrecovered: u64,
    pub loss: Option<f32>,
    pub jitter: Option<u32>,
    pub rtt_ms: Option<f64>,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Room {
    pub(super) fn emit_transport_stats(&mut self, cx: &mut Cx, k: TransportKey) {
        let Some(t) = self.transports.get_mut(&k) else { return };
        let Some(timer) = t.stats.as_mut() else { return };
        if cx.media.is_remote(k) && !t.stats_waiting {
            // The engine runs on another worker: ask it for fresh figures and emit when
            // they come (or, if they do not within 200 ms, from the last ones known).
            t.stats_waiting = true;
            cx.media.request_snapshot(k);
            self.timers.set(RoomTimer::TransportStats(k), Some(cx.now + Duration::from_millis(200)));
            return;
        }
        t.stats_waiting = false;
        let Some(m) = cx.media.stats(k) else { return };
        let rate = timer.tick(cx.now, m.bytes_received);
        self.timers.set(RoomTimer::TransportStats(k), Some(timer.next));
        let tuple = m.selected_tuple.map(|(l, r, proto)| {
            json!({"localIP": l.ip().to_string(), "localPort": l.port(), "remoteIP": r.ip().to_string(),
                   "remotePort": r.port(), "protocol": proto.as_str()})
        });
        let body = json!({"id": t.id.0, "stats": [{
            "type": "transport", "timestamp": epoch_ms(), "id": t.id.0,
            "bytesReceived": m.bytes_received, "bytesSent": m.bytes_sent,
            "recvBitrate": rate,
            "iceSelectedTuple": tuple,
            "iceConnectionState": m.ice_state, "dtlsState": m.dtls_state,
            "availableOutgoingBitrate": m.available_outgoing_bitrate,
            "sendQueueDelay": m.send_queue_ms,
            "rtt": m.rtt_ms,
        }]});
        let peer = t.peer.clone();
        self.notify(cx, &peer, "transportStats", body);
    }

    pub(super) fn emit_producer_stats(&mut self, cx: &mut Cx, k: ProducerKey) {
        let Some(p) = self.producers.get_mut(&k) else { return };
        let Some(timer) = p.stats.as_mut() else { return };
        let c = &p.counters;
        let rate = timer.tick(cx.now, c.bytes);
        self.timers.set(RoomTimer::ProducerStats(k), Some(timer.next));
        if p.paused {
            return; // mediasoup skips emission while paused
        }
        let ssrc = p.mapping.encodings.first().and_then(|e| e.ssrc);
        let body = json!({"id": p.id.0, "stats": [{
            "type": "inbound-rtp", "timestamp": epoch_ms(), "ssrc": ssrc, "kind": p.kind.as_str(),
            "packetCount": c.packets, "byteCount": c.bytes, "bitrate": rate,
            "fractionLost": c.loss, "jitter": c.jitter, "nackCount": c.nacks, "pliCount": c.plis,
            "firCount": c.firs, "roundTripTime": c.rtt_ms,
        }]});
        let peer = p.peer.clone();
        self.notify(cx, &peer, "producerStats", body);
    }

    pub(super) fn emit_consumer_stats(&mut self, cx: &mut Cx, id: ConsumerId) {
        let Some(c) = self.consumers.get_mut(&id) else { return };
        let Some(timer) = c.stats.as_mut() else { return };
        let k = &c.counters;
        let rate = timer.tick(cx.now, k.bytes);
        self.timers.set(RoomTimer::ConsumerStats(id), Some(timer.next));
        let producer_paused = self.producers.get(&c.producer).is_some_and(|p| p.paused);
        if c.remote_paused || c.transport.is_none() || producer_paused {
            return;
        }
        let body = json!({"id": c.id.0, "peerName": &*c.source_peer, "stats": [{
            "type": "outbound-rtp", "timestamp": epoch_ms(), "ssrc": c.params.ssrc, "kind": c.kind.as_str(),
            "packetCount": k.packets, "byteCount": k.bytes, "bitrate": rate,
            "fractionLost": k.loss, "jitter": k.jitter, "nackCount": k.nacks, "pliCount": k.plis,
            "firCount": k.firs, "roundTripTime": k.rtt_ms,
        }]});
        let peer = c.peer.clone();
        self.notify(cx, &peer, "consumerStats", body);
    }
}
