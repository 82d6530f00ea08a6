//! A worker's engines: every `TransportMedia` of the worker, the routing table that
//! finds the engine a datagram is for, and the engines' deadlines.
//!
//! Costs (docs/ARCHITECTURE.md, "Costs"): routing a datagram is one hash lookup (two
//! for a first-contact STUN request, plus its HMAC); a write marks its engine due in
//! O(1) (a dirty list); a deadline change is O(log n) in a heap; `next_timeout` is O(1)
//! amortised. Nothing here walks every engine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::config::Fingerprint;
use str0m::media::KeyframeRequestKind;
use str0m::rtp::ExtensionValues;

use super::tally::Tally;
use super::transport::TransportMedia;
use super::{MediaEnv, MediaEvent, TransportStats};
use crate::ids::{RoomSlot, TransportKey};
use crate::metrics::{Counters, Ctr, Gauges, TransportState};
use crate::net::routes::Routes;
use crate::net::stun;
use crate::ortc::{Kind, ProducerMapping, RoomCaps};
use crate::output::{Outbox, Proto};
use crate::protocol::request::Direction;
use crate::timers::Timers;

struct Engine {
    media: TransportMedia,
    /// The room the engine reports to.
    owner: RoomSlot,
    /// On the dirty list.
    due: bool,
    tally: Tally,
}

/// The engines of one worker.
pub struct MediaHost {
    env: Arc<MediaEnv>,
    engines: HashMap<TransportKey, Engine>,
    routes: Routes<TransportKey>,
    timers: Timers<TransportKey>,
    /// Engines due now (a packet was written to them): driven at the next timeout
    /// handling without going through the heap.
    due: Vec<TransportKey>,
    /// Packets written since the dirty list was last emptied.
    pending_writes: usize,
    /// The worker's media counters (`media/tally.rs`); published by the worker thread.
    pub(crate) counters: Counters,
}

/// ICE credentials of a new or restarted transport.
#[derive(Debug, Clone)]
pub struct IceParameters {
    pub ufrag: String,
    pub password: String,
}

impl MediaHost {
    pub fn new(env: Arc<MediaEnv>) -> MediaHost {
        MediaHost {
            env,
            engines: HashMap::new(),
            routes: Routes::default(),
            timers: Timers::default(),
            due: Vec::new(),
            pending_writes: 0,
            counters: Counters::default(),
        }
    }

    pub fn env(&self) -> &Arc<MediaEnv> {
        &self.env
    }

    /// Create an engine for a new transport; its ICE ufrag routes to it.
    pub fn create(
        &mut self,
        now: Instant,
        key: TransportKey,
        owner: RoomSlot,
        dir: Direction,
        caps: &RoomCaps,
        out: &mut Outbox,
    ) -> IceParameters {
        let media = TransportMedia::new(now, &self.env, dir, caps, out);
        let ice = IceParameters {
            ufrag: media.ice_ufrag().to_string(),
            password: media.ice_password().to_string(),
        };
        self.routes.add_ufrag(&ice.ufrag, key);
        self.engines.insert(key, Engine { media, owner, due: false, tally: Tally::default() });
        self.reschedule(now, key);
        ice
    }

    /// Which engine a datagram is for: a STUN binding request by the local ufrag it
    /// names (and only if it verifies), anything else by its validated source address.
    pub fn route(&self, proto: Proto, src: SocketAddr, data: &[u8]) -> Option<(TransportKey, RoomSlot)> {
        if stun::looks_like_stun(data) {
            if let Some(k) = stun::with_binding_request_local_ufrag(data, |u| self.routes.by_ufrag(u)) {
                let e = self.engines.get(&k)?;
                return stun::verify(data, e.media.ice_password()).then_some((k, e.owner));
            }
        }
        let k = self.routes.by_addr(&(proto, src))?;
        Some((k, self.engines.get(&k)?.owner))
    }

    /// Feed an engine a packet; its events are appended to `evs`.
    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &mut self,
        now: Instant,
        key: TransportKey,
        proto: Proto,
        src: SocketAddr,
        data: &[u8],
        out: &mut Outbox,
        evs: &mut Vec<MediaEvent>,
    ) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        let (first, out_first) = (evs.len(), out.len());
        e.media.receive(now, proto, src, data, out, evs);
        for ev in &evs[first..] {
            if let MediaEvent::RemoteAddr(p, a) = ev {
                self.routes.add_addr((*p, *a), key);
            }
        }
        e.tally.account(&mut self.counters, &evs[first..], out, out_first);
        self.reschedule(now, key);
    }

    /// The next engine due at `now` and its owner (taken off the dirty list or the heap).
    pub fn pop_due(&mut self, now: Instant) -> Option<(TransportKey, RoomSlot)> {
        if self.due.is_empty() {
            self.pending_writes = 0;
        }
        while let Some(k) = self.due.pop() {
            if let Some(e) = self.engines.get_mut(&k) {
                e.due = false;
                return Some((k, e.owner));
            }
        }
        while let Some(k) = self.timers.pop_due(now) {
            if let Some(e) = self.engines.get(&k) {
                return Some((k, e.owner));
            }
        }
        None
    }

    /// Drive an engine whose deadline has come.
    pub fn drive(&mut self, now: Instant, key: TransportKey, out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        let (first, out_first) = (evs.len(), out.len());
        e.media.handle_timeout(now, out, evs);
        e.tally.account(&mut self.counters, &evs[first..], out, out_first);
        self.reschedule(now, key);
    }

    /// The earliest deadline of any engine.
    pub fn next_timeout(&mut self, now: Instant) -> Option<Instant> {
        if !self.due.is_empty() {
            return Some(now);
        }
        self.timers.next()
    }

    /// Put an engine on the dirty list or in the heap, after anything touched it.
    fn reschedule(&mut self, now: Instant, key: TransportKey) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        match e.media.next_timeout() {
            Some(t) if t <= now => {
                if !e.due {
                    e.due = true;
                    self.due.push(key);
                }
                self.timers.set(key, None);
            }
            t => self.timers.set(key, t),
        }
    }

    fn with<R>(&mut self, now: Instant, key: TransportKey, f: impl FnOnce(&mut TransportMedia) -> R) -> Option<R> {
        let e = self.engines.get_mut(&key)?;
        let r = f(&mut e.media);
        self.reschedule(now, key);
        Some(r)
    }

    /// Forget an engine: its routes and its deadline go with it.
    pub fn close(&mut self, key: TransportKey) {
        if let Some(mut e) = self.engines.remove(&key) {
            e.media.close();
            if e.due {
                self.due.retain(|k| *k != key);
            }
        }
        self.routes.remove(key);
        self.timers.set(key, None);
    }

    pub fn restart_ice(&mut self, now: Instant, key: TransportKey, out: &mut Outbox) -> Option<IceParameters> {
        let e = self.engines.get_mut(&key)?;
        let old = e.media.ice_ufrag().to_string();
        e.media.restart_ice(now, out);
        let ice = IceParameters {
            ufrag: e.media.ice_ufrag().to_string(),
            password: e.media.ice_password().to_string(),
        };
        self.routes.remove_ufrag(&old);
        self.routes.add_ufrag(&ice.ufrag, key);
        self.reschedule(now, key);
        Some(ice)
    }

    pub fn start_dtls(
        &mut self,
        now: Instant,
        key: TransportKey,
        fp: Fingerprint,
        active: bool,
        out: &mut Outbox,
    ) -> Result<(), String> {
        self.with(now, key, |m| m.start_dtls(now, fp, active, out))
            .unwrap_or_else(|| Err("transport not found".into()))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add_producer(
        &mut self,
        now: Instant,
        key: TransportKey,
        mid: &str,
        kind: Kind,
        streams: &[(u32, Option<u32>)],
        mapping: &ProducerMapping,
        out: &mut Outbox,
    ) {
        self.with(now, key, |m| m.add_producer(now, mid, kind, streams, mapping, out));
    }

    pub fn remove_producer(
        &mut self,
        now: Instant,
        key: TransportKey,
        mid: &str,
        streams: &[(u32, Option<u32>)],
        out: &mut Outbox,
    ) {
        self.with(now, key, |m| m.remove_producer(now, mid, streams, out));
        if let Some(e) = self.engines.get_mut(&key) {
            e.tally.stream_removed(mid, None);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn add_consumer(
        &mut self,
        now: Instant,
        key: TransportKey,
        mid: &str,
        kind: Kind,
        ssrc: u32,
        rtx: Option<u32>,
        out: &mut Outbox,
    ) {
        self.with(now, key, |m| m.add_consumer(now, mid, kind, ssrc, rtx, out));
        if let Some(e) = self.engines.get_mut(&key) {
            e.tally.consumer_added(ssrc, rtx);
        }
    }

    pub fn remove_consumer(&mut self, now: Instant, key: TransportKey, mid: &str, ssrc: u32, out: &mut Outbox) {
        self.with(now, key, |m| m.remove_consumer(now, mid, ssrc, out));
        if let Some(e) = self.engines.get_mut(&key) {
            e.tally.stream_removed(mid, Some(ssrc));
        }
    }

    pub fn request_keyframe(
        &mut self,
        now: Instant,
        key: TransportKey,
        ssrc: u32,
        kind: KeyframeRequestKind,
        out: &mut Outbox,
    ) {
        self.with(now, key, |m| m.request_keyframe(now, ssrc, kind, out));
    }

    /// Queue one RTP packet on a consumer's stream; the engine is driven (and the packet
    /// sent) at the next timeout handling, once for all packets written to it until then.
    #[allow(clippy::too_many_arguments)]
    pub fn write_rtp(
        &mut self,
        now: Instant,
        key: TransportKey,
        ssrc: u32,
        pt: u8,
        seq: u64,
        ts: u32,
        wallclock: Instant,
        marker: bool,
        ext: ExtensionValues,
        payload: Arc<[u8]>,
        out: &mut Outbox,
    ) -> bool {
        let Some(e) = self.engines.get_mut(&key) else {
            return false;
        };
        let len = payload.len() as u64;
        let sent = e.media.write_rtp(now, ssrc, pt, seq, ts, wallclock, marker, ext, payload, out);
        if sent {
            self.counters[Ctr::RtpPacketsSent] += 1;
            self.counters[Ctr::RtpPayloadBytesSent] += len;
            self.pending_writes += 1;
            if !e.due {
                e.due = true;
                self.due.push(key);
            }
        }
        sent
    }

    /// Packets written and not yet sent (their engines are on the dirty list).
    pub fn pending_writes(&self) -> usize {
        if self.due.is_empty() {
            0
        } else {
            self.pending_writes
        }
    }

    /// Forget every engine of one owner (a room that failed).
    pub fn close_owner(&mut self, owner: RoomSlot) {
        let keys: Vec<TransportKey> = self.engines.iter().filter(|(_, e)| e.owner == owner).map(|(k, _)| *k).collect();
        for k in keys {
            self.close(k);
        }
    }

    pub fn is_connected(&self, key: TransportKey) -> bool {
        self.engines.get(&key).is_some_and(|e| e.media.is_connected())
    }

    pub fn stats(&self, key: TransportKey) -> Option<TransportStats> {
        self.engines.get(&key).map(|e| e.media.stats())
    }

    /// Count the engines by protocol and state into `g` (walks every engine: for the
    /// metrics gauges, not the packet path).
    pub fn count_transports(&self, g: &mut Gauges) {
        for e in self.engines.values() {
            let st = e.media.stats();
            // The selected pair, else the last address an authenticated check came from.
            let proto = st.selected_tuple.map(|(_, _, p)| p);
            let state = if e.media.is_connected() {
                TransportState::Connected
            } else if st.dtls_state == "failed" {
                TransportState::Failed
            } else if proto.is_some() {
                // An authenticated ICE check arrived (str0m's own ICE state says
                // "checking" from the start, so it cannot tell).
                TransportState::Connecting
            } else {
                TransportState::New
            };
            g.add_transport(proto, state);
        }
    }

    /// Number of engines, and of (ufrag, address) routes.
    pub fn counts(&self) -> (usize, (usize, usize)) {
        (self.engines.len(), self.routes.len())
    }
}
