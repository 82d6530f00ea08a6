//! Periodic `transportStats` / `producerStats` / `consumerStats` (protocol.md §6.3, §6.11).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::Room;

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
    pub(crate) fn emit_due_stats(&mut self, now: Instant) {
        let ts = epoch_ms();
        let mut notes: Vec<(String, &'static str, Value)> = Vec::new();
        for t in self.transports.values_mut() {
            let Some(timer) = t.stats.as_mut().filter(|s| s.next <= now) else {
                continue;
            };
            let m = &t.media;
            let rate = timer.tick(now, m.bytes_received());
            let tuple = m.selected_tuple().map(|(l, r)| {
                json!({"localIP": l.ip().to_string(), "localPort": l.port(), "remoteIP": r.ip().to_string(),
                       "remotePort": r.port(), "protocol": "udp"})
            });
            notes.push((
                t.peer.clone(),
                "transportStats",
                json!({"id": t.id, "stats": [{
                    "type": "transport", "timestamp": ts, "id": t.id,
                    "bytesReceived": m.bytes_received(), "bytesSent": m.bytes_sent(),
                    "recvBitrate": rate,
                    "iceSelectedTuple": tuple,
                    "iceConnectionState": m.ice_state_name(), "dtlsState": m.dtls_state_name(),
                    "availableOutgoingBitrate": m.bwe_bps(),
                    "rtt": m.rtt_ms(),
                }]}),
            ));
        }
        for p in self.producers.values_mut() {
            let Some(timer) = p.stats.as_mut().filter(|s| s.next <= now) else {
                continue;
            };
            let c = &p.counters;
            let rate = timer.tick(now, c.bytes);
            if p.paused {
                continue; // mediasoup skips emission while paused
            }
            let ssrc = p.mapping.encodings.first().and_then(|e| e.ssrc);
            notes.push((
                p.peer.clone(),
                "producerStats",
                json!({"id": p.id, "stats": [{
                    "type": "inbound-rtp", "timestamp": ts, "ssrc": ssrc, "kind": p.kind.as_str(),
                    "packetCount": c.packets, "byteCount": c.bytes, "bitrate": rate,
                    "fractionLost": c.loss, "jitter": c.jitter, "nackCount": c.nacks, "pliCount": c.plis,
                    "firCount": c.firs, "roundTripTime": c.rtt_ms,
                }]}),
            ));
        }
        let paused_producers: Vec<super::PKey> = self
            .producers
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(k, _)| *k)
            .collect();
        for c in self.consumers.values_mut() {
            let Some(timer) = c.stats.as_mut().filter(|s| s.next <= now) else {
                continue;
            };
            let k = &c.counters;
            let rate = timer.tick(now, k.bytes);
            if c.remote_paused || c.transport.is_none() || paused_producers.contains(&c.producer) {
                continue;
            }
            notes.push((
                c.peer.clone(),
                "consumerStats",
                json!({"id": c.id, "peerName": c.source_peer, "stats": [{
                    "type": "outbound-rtp", "timestamp": ts, "ssrc": c.params.ssrc, "kind": c.kind.as_str(),
                    "packetCount": k.packets, "byteCount": k.bytes, "bitrate": rate,
                    "fractionLost": k.loss, "jitter": k.jitter, "nackCount": k.nacks, "pliCount": k.plis,
                    "firCount": k.firs, "roundTripTime": k.rtt_ms,
                }]}),
            ));
        }
        for (peer, method, body) in notes {
            self.notify(&peer, method, body);
        }
    }
}
