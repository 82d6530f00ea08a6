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
use str0m::rtp::{ExtensionValues, Vp8Patch};

use str0m::IceCreds;

use super::plain::{PlainRemote, PlainTransport};
use super::remote::{CrossItem, EngineOp, RemoteWrite, Spread};
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
    /// Counted in the server's placement load (a receive transport placed by `place_recv`).
    placed: bool,
    /// For an engine whose owner is on another worker: when its next `Snapshot` is due.
    next_snapshot: Option<Instant>,
}

/// What the owner's worker knows of an engine another worker runs (from its events).
#[derive(Debug)]
struct RemoteView {
    owner: RoomSlot,
    connected: bool,
    stats: Option<TransportStats>,
}

/// How often an engine whose owner is on another worker sends it a `Snapshot`.
const SNAPSHOT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// This worker's index.
    worker: usize,
    env: Arc<MediaEnv>,
    /// The other workers, when rooms spread over them (docs/ARCHITECTURE.md, "A room on
    /// several workers").
    spread: Option<Arc<Spread>>,
    /// Items for other workers (by worker index), in the order they were made; the
    /// core hands them out with its output.
    outgoing: Vec<Vec<CrossItem>>,
    /// Engines of this worker's rooms that run on other workers.
    remote: HashMap<TransportKey, RemoteView>,
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

impl MediaHost {
    /// The engines of worker `worker`; with `spread`, its rooms may place receive
    /// transports on every worker of `spread`.
    pub fn new(worker: usize, env: Arc<MediaEnv>, spread: Option<Arc<Spread>>) -> MediaHost {
        let n = spread.as_ref().map_or(0, |s| s.workers());
        MediaHost {
            worker,
            env,
            spread,
            outgoing: (0..n).map(|_| Vec::new()).collect(),
            remote: HashMap::new(),
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

    /// The environment of worker `w` (its candidates), this worker's if unknown.
    pub fn env_of(&self, w: usize) -> &Arc<MediaEnv> {
        match &self.spread {
            Some(s) if w < s.workers() => &s.envs[w],
            _ => &self.env,
        }
    }

    /// The worker a new receive transport of this worker's room runs on: the least
    /// loaded one when rooms spread, else this one.
    pub fn place_recv(&self) -> usize {
        match &self.spread {
            Some(s) => s.place(self.worker),
            None => self.worker,
        }
    }

    /// Whether `key`'s engine runs on another worker.
    pub fn is_remote(&self, key: TransportKey) -> bool {
        key.engine_worker() != self.worker
    }

    fn push_to(&mut self, w: usize, item: CrossItem) {
        if let Some(q) = self.outgoing.get_mut(w) {
            q.push(item);
        }
    }

    /// Create a WebRTC engine for a new transport (on the worker `key` names); its ICE
    /// ufrag routes to it.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        now: Instant,
        key: TransportKey,
        owner: RoomSlot,
        dir: Direction,
        caps: &Arc<RoomCaps>,
        creds: IceCreds,
        out: &mut Outbox,
    ) {
        if self.is_remote(key) {
            self.remote.insert(key, RemoteView { owner, connected: false, stats: None });
            let op = EngineOp::Create { key, slot: owner, dir, caps: caps.clone(), creds };
            self.push_to(key.engine_worker(), CrossItem::Op(op));
            return;
        }
        let placed = dir == Direction::Recv && self.spread.is_some();
        let media = TransportMedia::new(now, &self.env, dir, caps, creds, out);
        self.routes.add_ufrag(media.ice_ufrag(), key);
        let next_snapshot = (key.home_worker() != self.worker).then_some(now);
        let e = Engine { media: Media::Rtc(media), owner, due: false, tally: Tally::default(), placed, next_snapshot };
        self.engines.insert(key, e);
        self.reschedule(now, key);
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
        let e = Engine { media: Media::Plain(p), owner, due: false, tally: Tally::default(), placed: false, next_snapshot: None };
        self.engines.insert(key, e);
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
        self.snapshot_if_due(now, key, evs, first);
        self.reschedule(now, key);
    }

    /// An engine whose owner is on another worker adds a `Snapshot` of its stats to its
    /// events when it connects and then about once a second: the owner's view of it.
    fn snapshot_if_due(&mut self, now: Instant, key: TransportKey, evs: &mut Vec<MediaEvent>, first: usize) {
        let Some(e) = self.engines.get_mut(&key) else { return };
        let Some(at) = e.next_snapshot else { return };
        if now < at && !evs[first..].iter().any(|ev| matches!(ev, MediaEvent::Connected)) {
            return;
        }
        e.next_snapshot = Some(now + SNAPSHOT_INTERVAL);
        let st = match &e.media {
            Media::Rtc(m) => m.stats(),
            Media::Plain(p) => p.stats(),
        };
        evs.push(MediaEvent::Snapshot(st));
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
        self.snapshot_if_due(now, key, evs, first);
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
        if self.is_remote(key) {
            if self.remote.remove(&key).is_some() {
                self.push_to(key.engine_worker(), CrossItem::Op(EngineOp::Close { key }));
            }
            return;
        }
        if let Some(mut e) = self.engines.remove(&key) {
            if e.placed {
                if let Some(s) = &self.spread {
                    s.release(self.worker);
                }
            }
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

    /// New local ICE credentials for a WebRTC transport; false if there is none.
    pub fn restart_ice(&mut self, now: Instant, key: TransportKey, creds: IceCreds, out: &mut Outbox) -> bool {
        if self.is_remote(key) {
            if !self.remote.contains_key(&key) {
                return false;
            }
            self.push_to(key.engine_worker(), CrossItem::Op(EngineOp::RestartIce { key, creds }));
            return true;
        }
        let new = creds.ufrag.clone();
        let Some(old) = self.with_rtc(now, key, |m| {
            let old = m.ice_ufrag().to_string();
            m.restart_ice(now, creds, out);
            old
        }) else {
            return false;
        };
        self.routes.remove_ufrag(&old);
        self.routes.add_ufrag(&new, key);
        true
    }

    pub fn start_dtls(
        &mut self,
        now: Instant,
        key: TransportKey,
        fp: Fingerprint,
        active: bool,
        out: &mut Outbox,
    ) -> Result<(), String> {
        if self.is_remote(key) {
            // The room applies DTLS parameters once; the engine cannot refuse them.
            if !self.remote.contains_key(&key) {
                return Err("transport not found".into());
            }
            self.push_to(key.engine_worker(), CrossItem::Op(EngineOp::StartDtls { key, fp, active }));
            return Ok(());
        }
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
        if self.is_remote(key) {
            let op = EngineOp::AddConsumer { key, mid: mid.to_string(), kind, ssrc, rtx, clock_rate };
            self.push_to(key.engine_worker(), CrossItem::Op(op));
            return;
        }
        let Some(e) = self.engines.get_mut(&key) else { return };
        e.tally.consumer_added(ssrc, rtx);
        match &mut e.media {
            Media::Rtc(m) => m.add_consumer(now, mid, kind, ssrc, rtx, out),
            Media::Plain(p) => p.add_consumer(mid, ssrc, clock_rate),
        }
        self.reschedule(now, key);
    }

    pub fn remove_consumer(&mut self, now: Instant, key: TransportKey, mid: &str, ssrc: u32, out: &mut Outbox) {
        if self.is_remote(key) {
            let op = EngineOp::RemoveConsumer { key, mid: mid.to_string(), ssrc };
            self.push_to(key.engine_worker(), CrossItem::Op(op));
            return;
        }
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

    /// Ask a producer's browser to send one of its streams at most `bps` (REMB).
    pub fn request_remb(&mut self, now: Instant, key: TransportKey, ssrc: u32, bps: u64, out: &mut Outbox) {
        // A plain transport has no such feedback: nothing to ask.
        self.with_rtc(now, key, |m| m.request_remb(now, ssrc, bps, out));
    }

    /// Ask the worker of a remote engine for its statistics now (they come back as a
    /// `Snapshot` event to the room).
    pub fn request_snapshot(&mut self, key: TransportKey) {
        if self.is_remote(key) && self.remote.contains_key(&key) {
            self.push_to(key.engine_worker(), CrossItem::Op(EngineOp::Snapshot { key }));
        }
    }

    /// What a receive transport's estimator keeps up and probes for (bits per second).
    pub fn set_bitrate(&mut self, now: Instant, key: TransportKey, minimum: u64, desired: u64, out: &mut Outbox) {
        if self.is_remote(key) {
            self.push_to(key.engine_worker(), CrossItem::Op(EngineOp::SetBitrate { key, minimum, desired }));
            return;
        }
        self.with_rtc(now, key, |m| m.set_bitrate(now, minimum, desired, out));
    }

    /// Restart a receive transport's estimator from `estimate` (bit/s): it probes again
    /// as at start-up.
    pub fn restart_bwe(&mut self, now: Instant, key: TransportKey, estimate: u64, out: &mut Outbox) {
        if self.is_remote(key) {
            self.push_to(key.engine_worker(), CrossItem::Op(EngineOp::RestartBwe { key, estimate }));
            return;
        }
        self.with_rtc(now, key, |m| m.restart_bwe(now, estimate, out));
    }

    /// A consumer's stream forgets the packets it has queued and could resend (it
    /// changed layers). In order with the packets written after it, on a remote engine too.
    pub fn forget_queued(&mut self, now: Instant, key: TransportKey, mid: &str, out: &mut Outbox) {
        if self.is_remote(key) {
            self.push_to(key.engine_worker(), CrossItem::Op(EngineOp::ForgetQueued { key, mid: mid.to_string() }));
            return;
        }
        self.with_rtc(now, key, |m| m.forget_queued(now, mid, out));
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
        vp8: Option<Vp8Patch>,
        out: &mut Outbox,
    ) -> bool {
        if self.is_remote(key) {
            let w = RemoteWrite { key, ssrc, pt, seq, ts, wallclock, marker, ext, payload, vp8 };
            self.push_to(key.engine_worker(), CrossItem::Write(w));
            return true;
        }
        let Some(e) = self.engines.get_mut(&key) else {
            return false;
        };
        let len = payload.len() as u64;
        let sent = match &mut e.media {
            Media::Rtc(m) => {
                let sent = m.write_rtp(now, ssrc, pt, seq, ts, wallclock, marker, ext, payload, vp8, out);
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

    /// Forget every engine of one of this worker's rooms (a room that failed), here and
    /// on the other workers.
    pub fn close_owner(&mut self, owner: RoomSlot, out: &mut Outbox) {
        self.close_owner_of(self.worker, owner, out);
        self.remote.retain(|_, v| v.owner != owner);
        for w in 0..self.outgoing.len() {
            if w != self.worker {
                self.push_to(w, CrossItem::Op(EngineOp::CloseOwner { home: self.worker, slot: owner }));
            }
        }
    }

    /// Forget the engines here of room `owner` of worker `home`.
    fn close_owner_of(&mut self, home: usize, owner: RoomSlot, out: &mut Outbox) {
        let keys: Vec<TransportKey> = self
            .engines
            .iter()
            .filter(|(k, e)| e.owner == owner && k.home_worker() == home)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.close(k, out);
        }
    }

    /// Apply an item another worker sent about an engine of this one (an operation of
    /// its owner, or a packet for one of its consumers).
    pub fn apply(&mut self, now: Instant, item: CrossItem, out: &mut Outbox) {
        let op = match item {
            CrossItem::Write(w) => {
                if self.is_remote(w.key) {
                    return; // not ours: a bug elsewhere, never a reason to loop
                }
                let RemoteWrite { key, ssrc, pt, seq, ts, wallclock, marker, ext, payload, vp8 } = w;
                self.write_rtp(now, key, ssrc, pt, seq, ts, wallclock, marker, ext, payload, vp8, out);
                return;
            }
            CrossItem::Op(op) => op,
            CrossItem::Events { .. } => return,
        };
        match op {
            EngineOp::Create { key, slot, dir, caps, creds } if !self.is_remote(key) && !self.engines.contains_key(&key) => {
                self.create(now, key, slot, dir, &caps, creds, out)
            }
            EngineOp::Create { .. } => {}
            EngineOp::Close { key } if !self.is_remote(key) => self.close(key, out),
            EngineOp::Close { .. } => {}
            EngineOp::RestartIce { key, creds } if !self.is_remote(key) => {
                self.restart_ice(now, key, creds, out);
            }
            EngineOp::RestartIce { .. } => {}
            EngineOp::StartDtls { key, fp, active } if !self.is_remote(key) => {
                let _ = self.start_dtls(now, key, fp, active, out);
            }
            EngineOp::StartDtls { .. } => {}
            EngineOp::AddConsumer { key, mid, kind, ssrc, rtx, clock_rate } if !self.is_remote(key) => {
                self.add_consumer(now, key, &mid, kind, ssrc, rtx, clock_rate, out)
            }
            EngineOp::AddConsumer { .. } => {}
            EngineOp::RemoveConsumer { key, mid, ssrc } if !self.is_remote(key) => {
                self.remove_consumer(now, key, &mid, ssrc, out)
            }
            EngineOp::RemoveConsumer { .. } => {}
            EngineOp::SetBitrate { key, minimum, desired } if !self.is_remote(key) => {
                self.set_bitrate(now, key, minimum, desired, out)
            }
            EngineOp::SetBitrate { .. } => {}
            EngineOp::ForgetQueued { key, mid } if !self.is_remote(key) => self.forget_queued(now, key, &mid, out),
            EngineOp::ForgetQueued { .. } => {}
            EngineOp::RestartBwe { key, estimate } if !self.is_remote(key) => self.restart_bwe(now, key, estimate, out),
            EngineOp::RestartBwe { .. } => {}
            EngineOp::Snapshot { key } => {
                let (Some(st), Some(e)) = (self.stats(key), self.engines.get(&key)) else { return };
                if key.home_worker() != self.worker {
                    let slot = e.owner;
                    self.push_to(key.home_worker(), CrossItem::Events { slot, key, evs: vec![MediaEvent::Snapshot(st)] });
                }
            }
            EngineOp::CloseOwner { home, slot } => self.close_owner_of(home, slot, out),
        }
    }

    /// Events of an engine whose owner is on another worker: sent there.
    pub fn export_events(&mut self, key: TransportKey, slot: RoomSlot, evs: &mut Vec<MediaEvent>) {
        let evs = std::mem::take(evs);
        self.push_to(key.home_worker(), CrossItem::Events { slot, key, evs });
    }

    /// Events from an engine of this worker's room that runs on another worker: what
    /// the owner's view of it learns (connected, statistics) before the room sees them.
    pub fn observe(&mut self, key: TransportKey, evs: &[MediaEvent]) {
        let Some(v) = self.remote.get_mut(&key) else { return };
        for ev in evs {
            match ev {
                MediaEvent::Connected => v.connected = true,
                MediaEvent::Dead(_) => v.connected = false,
                MediaEvent::Snapshot(s) => v.stats = Some(s.clone()),
                _ => {}
            }
        }
    }

    /// Items made for other workers since the last call: (worker, items in order).
    pub fn take_outgoing(&mut self, mut f: impl FnMut(usize, Vec<CrossItem>)) {
        for (w, q) in self.outgoing.iter_mut().enumerate() {
            if !q.is_empty() {
                f(w, std::mem::take(q));
            }
        }
    }

    /// Whether anything waits for another worker.
    pub fn has_outgoing(&self) -> bool {
        self.outgoing.iter().any(|q| !q.is_empty())
    }

    pub fn is_connected(&self, key: TransportKey) -> bool {
        if self.is_remote(key) {
            return self.remote.get(&key).is_some_and(|v| v.connected);
        }
        self.engines.get(&key).is_some_and(|e| match &e.media {
            Media::Rtc(m) => m.is_connected(),
            Media::Plain(p) => p.remote().is_some(),
        })
    }

    pub fn stats(&self, key: TransportKey) -> Option<TransportStats> {
        if self.is_remote(key) {
            return self.remote.get(&key).and_then(|v| v.stats.clone());
        }
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

