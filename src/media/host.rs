//! A worker's engines: every transport's media engine (a str0m `Rtc`, or a plain RTP
//! transport), the routing table that finds the engine a packet is for, and the engines'
//! deadlines.
//!
//! Costs (docs/ARCHITECTURE.md, "Costs"): routing a packet is one hash lookup (two for a
//! first-contact STUN request, plus its HMAC); a write marks its engine due in O(1) (a
//! dirty list); a deadline change is O(log n) in a heap; `next_timeout` is O(1)
//! amortised. Nothing here walks every engine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::config::Fingerprint;
use str0m::media::KeyframeRequestKind;
use str0m::rtp::ExtensionValues;

use super::plain::{PlainRemote, PlainTransport};
use super::tally::Tally;
use super::transport::TransportMedia;
use super::{rtp_peek, MediaEnv, MediaEvent, TransportStats};
use crate::ids::{RoomSlot, TransportKey};
use crate::metrics::{Counters, Ctr, Gauges, TransportState};
use crate::net::routes::Routes;
use crate::net::stun;
use crate::ortc::{Kind, ProducerMapping, RoomCaps};
use crate::output::{Outbox, Proto};
use crate::protocol::request::Direction;
use crate::timers::Timers;

enum Media {
    Rtc(TransportMedia),
    Plain(PlainTransport),
}

struct Engine {
    media: Media,
    /// The room the engine reports to.
    owner: RoomSlot,
    /// On the dirty list.
    due: bool,
    tally: Tally,
}

impl Engine {
    fn next_timeout(&self) -> Option<Instant> {
        match &self.media {
            Media::Rtc(m) => m.next_timeout(),
            Media::Plain(p) => p.next_timeout(),
        }
    }
}

/// The engines of one worker.
pub struct MediaHost {
    env: Arc<MediaEnv>,
    engines: HashMap<TransportKey, Engine>,
    routes: Routes<TransportKey>,
    /// Plain transports waiting for their remote (comedia), by the SSRCs they expect.
    comedia: HashMap<u32, TransportKey>,
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
            comedia: HashMap::new(),
            timers: Timers::default(),
            due: Vec::new(),
            pending_writes: 0,
            counters: Counters::default(),
        }
    }

    pub fn env(&self) -> &Arc<MediaEnv> {
        &self.env
    }

    /// Create a WebRTC engine for a new transport; its ICE ufrag routes to it.
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
        let ice = IceParameters { ufrag: media.ice_ufrag().to_string(), password: media.ice_password().to_string() };
        self.routes.add_ufrag(&ice.ufrag, key);
        self.engines.insert(key, Engine { media: Media::Rtc(media), owner, due: false, tally: Tally::default() });
        self.reschedule(now, key);
        ice
    }

    /// Create a plain RTP engine: packets from `remote` (RTP and RTCP addresses) route to
    /// it; without a remote and with `comedia`, the first packet of a declared SSRC sets
    /// it. Returns the local address the remote sends to.
    pub fn create_plain(
        &mut self,
        now: Instant,
        key: TransportKey,
        owner: RoomSlot,
        remote: Option<PlainRemote>,
        comedia: bool,
    ) -> SocketAddr {
        let local = self.env.ice_addr;
        let p = PlainTransport::new(now, local, remote, comedia, self.env.transport_timeout);
        if let Some(r) = remote {
            self.routes.add_addr((Proto::Udp, r.rtp), key);
            self.routes.add_addr((Proto::Udp, r.rtcp), key);
        }
        self.engines.insert(key, Engine { media: Media::Plain(p), owner, due: false, tally: Tally::default() });
        self.reschedule(now, key);
        local
    }

    /// A plain transport's remote moved.
    pub fn set_plain_remote(&mut self, key: TransportKey, remote: PlainRemote) -> bool {
        let Some(Engine { media: Media::Plain(p), .. }) = self.engines.get_mut(&key) else {
            return false;
        };
        p.set_remote(remote);
        self.routes.remove(key);
        self.routes.add_addr((Proto::Udp, remote.rtp), key);
        self.routes.add_addr((Proto::Udp, remote.rtcp), key);
        true
    }

    /// Which engine a packet is for: a STUN binding request by the local ufrag it names
    /// (and only if it verifies); anything else by its validated source; an RTP packet
    /// from an unknown source by its SSRC, if a comedia plain transport expects it.
    pub fn route(&self, proto: Proto, src: SocketAddr, data: &[u8]) -> Option<(TransportKey, RoomSlot)> {
        if stun::looks_like_stun(data) {
            if let Some(k) = stun::with_binding_request_local_ufrag(data, |u| self.routes.by_ufrag(u)) {
                let e = self.engines.get(&k)?;
                let Media::Rtc(m) = &e.media else { return None };
                return stun::verify(data, m.ice_password()).then_some((k, e.owner));
            }
        }
        if let Some(k) = self.routes.by_addr(&(proto, src)) {
            return Some((k, self.engines.get(&k)?.owner));
        }
        if proto == Proto::Udp && !self.comedia.is_empty() {
            let h = rtp_peek::peek(data)?;
            let k = *self.comedia.get(&h.ssrc)?;
            return Some((k, self.engines.get(&k)?.owner));
        }
        None
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
        match &mut e.media {
            Media::Rtc(m) => m.receive(now, proto, src, data, out, evs),
            Media::Plain(p) => {
                let waited = p.awaits_remote();
                p.receive(now, src, data, out, evs);
                if waited && !p.awaits_remote() {
                    let ssrcs: Vec<u32> = p.rx_ssrcs().collect();
                    for s in ssrcs {
                        self.comedia.remove(&s);
                    }
                }
            }
        }
        for ev in &evs[first..] {
            if let MediaEvent::RemoteAddr(p, a) = ev {
                self.routes.add_addr((*p, *a), key);
            }
        }
        if let Some(e) = self.engines.get_mut(&key) {
            e.tally.account(&mut self.counters, &evs[first..], out, out_first);
        }
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
        match &mut e.media {
            Media::Rtc(m) => m.handle_timeout(now, out, evs),
            Media::Plain(p) => p.handle_timeout(now, out, evs),
        }
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
        match e.next_timeout() {
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

    /// Run `f` on a WebRTC engine, then reschedule it.
    fn with_rtc<R>(&mut self, now: Instant, key: TransportKey, f: impl FnOnce(&mut TransportMedia) -> R) -> Option<R> {
        let Some(Engine { media: Media::Rtc(m), .. }) = self.engines.get_mut(&key) else {
            return None;
        };
        let r = f(m);
        self.reschedule(now, key);
        Some(r)
    }

    /// Forget an engine: its routes and its deadline go with it (a plain transport says
    /// BYE for its streams).
    pub fn close(&mut self, key: TransportKey, out: &mut Outbox) {
        if let Some(mut e) = self.engines.remove(&key) {
            match &mut e.media {
                Media::Rtc(m) => m.close(),
                Media::Plain(p) => {
                    p.close(out);
                    self.comedia.retain(|_, k| *k != key);
                }
            }
            if e.due {
                self.due.retain(|k| *k != key);
            }
        }
        self.routes.remove(key);
        self.timers.set(key, None);
    }

    pub fn restart_ice(&mut self, now: Instant, key: TransportKey, out: &mut Outbox) -> Option<IceParameters> {
        let (old, ice) = self.with_rtc(now, key, |m| {
            let old = m.ice_ufrag().to_string();
            m.restart_ice(now, out);
            (old, IceParameters { ufrag: m.ice_ufrag().to_string(), password: m.ice_password().to_string() })
        })?;
        self.routes.remove_ufrag(&old);
        self.routes.add_ufrag(&ice.ufrag, key);
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
        self.with_rtc(now, key, |m| m.start_dtls(now, fp, active, out))
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
        let Some(e) = self.engines.get_mut(&key) else { return };
        match &mut e.media {
            Media::Rtc(m) => m.add_producer(now, mid, kind, streams, mapping, out),
            Media::Plain(p) => {
                p.add_producer(mid, streams);
                if p.awaits_remote() {
                    for (s, _) in streams {
                        self.comedia.insert(*s, key);
                    }
                }
            }
        }
        self.reschedule(now, key);
    }

    pub fn remove_producer(
        &mut self,
        now: Instant,
        key: TransportKey,
        mid: &str,
        streams: &[(u32, Option<u32>)],
        out: &mut Outbox,
    ) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        e.tally.stream_removed(mid, None);
        match &mut e.media {
            Media::Rtc(m) => m.remove_producer(now, mid, streams, out),
            Media::Plain(p) => {
                p.remove_producer(mid);
                for (s, _) in streams {
                    if self.comedia.get(s) == Some(&key) {
                        self.comedia.remove(s);
                    }
                }
            }
        }
        self.reschedule(now, key);
    }

    /// Declare a consumer's outgoing stream (`clock_rate`: of its codec, for the plain
    /// transports' sender reports).
    #[allow(clippy::too_many_arguments)]
    pub fn add_consumer(
        &mut self,
        now: Instant,
        key: TransportKey,
        mid: &str,
        kind: Kind,
        ssrc: u32,
        rtx: Option<u32>,
        clock_rate: u32,
        out: &mut Outbox,
    ) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        e.tally.consumer_added(ssrc, rtx);
        match &mut e.media {
            Media::Rtc(m) => m.add_consumer(now, mid, kind, ssrc, rtx, out),
            Media::Plain(p) => p.add_consumer(mid, ssrc, clock_rate),
        }
        self.reschedule(now, key);
    }

    pub fn remove_consumer(&mut self, now: Instant, key: TransportKey, mid: &str, ssrc: u32, out: &mut Outbox) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        e.tally.stream_removed(mid, Some(ssrc));
        match &mut e.media {
            Media::Rtc(m) => m.remove_consumer(now, mid, ssrc, out),
            Media::Plain(p) => p.remove_consumer(ssrc, out),
        }
        self.reschedule(now, key);
    }

    pub fn request_keyframe(
        &mut self,
        now: Instant,
        key: TransportKey,
        ssrc: u32,
        kind: KeyframeRequestKind,
        out: &mut Outbox,
    ) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        match &mut e.media {
            Media::Rtc(m) => m.request_keyframe(now, ssrc, kind, out),
            Media::Plain(p) => p.request_keyframe(ssrc, out),
        }
        self.reschedule(now, key);
    }

    /// Queue one RTP packet on a consumer's stream. A WebRTC engine is driven (and the
    /// packet sent) at the next timeout handling, once for all packets written to it until
    /// then; a plain transport sends it at once.
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
        let sent = match &mut e.media {
            Media::Rtc(m) => {
                let sent = m.write_rtp(now, ssrc, pt, seq, ts, wallclock, marker, ext, payload, out);
                if sent {
                    self.pending_writes += 1;
                    if !e.due {
                        e.due = true;
                        self.due.push(key);
                    }
                }
                sent
            }
            Media::Plain(p) => {
                let sent = p.write_rtp(now, ssrc, pt, seq, ts, marker, &payload, out);
                if sent {
                    self.reschedule(now, key);
                }
                sent
            }
        };
        if sent {
            self.counters[Ctr::RtpPacketsSent] += 1;
            self.counters[Ctr::RtpPayloadBytesSent] += len;
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
    pub fn close_owner(&mut self, owner: RoomSlot, out: &mut Outbox) {
        let keys: Vec<TransportKey> = self.engines.iter().filter(|(_, e)| e.owner == owner).map(|(k, _)| *k).collect();
        for k in keys {
            self.close(k, out);
        }
    }

    pub fn is_connected(&self, key: TransportKey) -> bool {
        self.engines.get(&key).is_some_and(|e| match &e.media {
            Media::Rtc(m) => m.is_connected(),
            Media::Plain(p) => p.remote().is_some(),
        })
    }

    pub fn stats(&self, key: TransportKey) -> Option<TransportStats> {
        self.engines.get(&key).map(|e| match &e.media {
            Media::Rtc(m) => m.stats(),
            Media::Plain(p) => p.stats(),
        })
    }

    /// Count the engines by protocol and state into `g` (walks every engine: for the
    /// metrics gauges, not the packet path). A plain RTP transport counts as UDP,
    /// connected once its remote is known.
    pub fn count_transports(&self, g: &mut Gauges) {
        for (k, e) in &self.engines {
            let Some(st) = self.stats(*k) else { continue };
            // The selected pair, else the last address an authenticated check came from.
            let proto = st.selected_tuple.map(|(_, _, p)| p);
            let state = if self.is_connected(*k) {
                TransportState::Connected
            } else if st.dtls_state == "failed" {
                TransportState::Failed
            } else if proto.is_some() && matches!(e.media, Media::Rtc(_)) {
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
