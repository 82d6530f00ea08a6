//! Rooms: peers, transports, producers and consumers, and the protocol's rules about
//! them, as sans-IO state.
//!
//! A `Room` receives decoded client messages, host calls, media events and timer ticks
//! through a [`Cx`] that lends it the worker's [`MediaHost`] (the transports' engines)
//! and the [`Outbox`] its responses, notifications and host events go to. It never
//! touches a thread, a socket or the clock. docs/ARCHITECTURE.md draws the layers.
//!
//! Split by subject: `handlers` (one function per client message), `forward` (the
//! media path), `stats` (periodic statistics), `timers` (what the room waits for).

mod adapt;
mod forward;
mod handlers;
mod host;
mod layers;
mod loss;
mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::{Adaptation, Limits, LogLevel};
use crate::error::{ReqError, ReqResult};
use crate::ids::{ConsumerId, KeyGen, PeerName, ProducerId, ProducerKey, RoomSlot, TransportId, TransportKey};
use crate::media::rewrite::ConsumerForwarding;
use crate::media::{MediaEvent, MediaHost};
use crate::ortc::{self, ConsumerParams, Kind, PeerCaps, ProducerMapping, RoomCaps};
use crate::output::{EventKind, HostMessage, Outbox};
use crate::protocol::request::{self, AppData, ClientMessage, Direction, Method, Profile};
use crate::protocol::{self, Message};
use crate::timers::Timers;
use crate::util::Rng;
use stats::{StatsTimer, StreamCounters};

/// What a room borrows from its worker for one call.
pub struct Cx<'a> {
    pub now: Instant,
    pub out: &'a mut Outbox,
    pub media: &'a mut MediaHost,
    pub keys: &'a mut KeyGen,
}

/// Room settings from the server configuration.
#[derive(Debug, Clone, Copy)]
pub struct RoomSettings {
    pub limits: Limits,
    pub max_message_size: usize,
    pub adapt: Adaptation,
}

pub(crate) struct Peer {
    name: PeerName,
    app_data: AppData,
    spy: bool,
    /// Joined with the seed's shapes (no rtpCapabilities): gets `roomClosed` too.
    legacy: bool,
    caps: PeerCaps,
    transports: HashMap<TransportId, TransportKey>,
    producers: HashMap<ProducerId, ProducerKey>,
    /// Consumers this peer receives, in creation order.
    consumers: Vec<ConsumerId>,
    /// The transport most recently created without `dtlsParameters` (recv).
    last_recv_transport: Option<TransportKey>,
}

pub(crate) struct Transport {
    id: TransportId,
    peer: PeerName,
    dir: Direction,
    /// A plain RTP transport (no ICE, no DTLS): a non-browser client's, or a streamer's.
    plain: bool,
    dtls_applied: bool,
    producers: Vec<ProducerKey>,
    consumers: Vec<ConsumerId>,
    stats: Option<StatsTimer>,
    /// What the link toward a receive transport's browser carries (adapt.rs).
    link: Option<adapt::Link>,
    /// `transportStats` is due and waits for fresh statistics from the engine's worker.
    stats_waiting: bool,
}

pub(crate) struct Producer {
    id: ProducerId,
    peer: PeerName,
    transport: TransportKey,
    kind: Kind,
    mapping: ProducerMapping,
    app_data: AppData,
    paused: bool,
    consumers: Vec<ConsumerId>,
    /// The producer's MID in its transport's engine.
    mid: String,
    stats: Option<StatsTimer>,
    /// Last keyframe request sent upstream (throttling).
    last_keyframe_request: Option<Instant>,
    /// A keyframe request arrived while throttled: sent when the interval ends.
    keyframe_pending: bool,
    /// Unrecovered losses, per encoding (layer).
    loss: Vec<loss::LossWatch>,
    /// Audio levels since the last `audioLevels` report and active-speaker decision.
    levels: host::LevelAcc,
    speech: host::LevelAcc,
    counters: StreamCounters,
    /// Each layer's measured rate (adapt.rs).
    meter: layers::LayerMeter,
}

pub(crate) struct Consumer {
    id: ConsumerId,
    /// The receiving peer (empty for a streamer's consumer).
    peer: PeerName,
    /// The RTP streamer this consumer feeds, if the host's.
    streamer: Option<u64>,
    producer: ProducerKey,
    /// The producing peer.
    source_peer: PeerName,
    kind: Kind,
    params: ConsumerParams,
    app_data: AppData,
    /// Bound to this transport by `enableConsumer`.
    transport: Option<TransportKey>,
    remote_paused: bool,
    preferred_profile: Profile,
    effective_profile: Option<String>,
    stats: Option<StatsTimer>,
    fwd: ConsumerForwarding,
    counters: StreamCounters,
    /// The layer bandwidth allows it (adapt.rs).
    choice: layers::LayerChoice,
    /// Its share of its transport's estimate at the last decision (bits per second).
    share: Option<u64>,
}

/// What a room waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum RoomTimer {
    TransportStats(TransportKey),
    ProducerStats(ProducerKey),
    ConsumerStats(ConsumerId),
    /// A throttled keyframe request may go out.
    Keyframe(ProducerKey),
    /// A producer's oldest loss may have to be given up.
    LossCheck(ProducerKey),
    /// The next `audioLevels` report.
    AudioLevels,
    /// The next active-speaker decision.
    ActiveSpeaker,
    /// A keyframe request for a streamer that started.
    StreamerKeyframe(u64),
    /// The next layer decision for a receive transport's consumers.
    Adapt(TransportKey),
    /// The next bitrate limit (REMB) for a single-layer video producer.
    Remb(ProducerKey),
}

/// Keyframe requests toward a producer: at most one per this interval (mediasoup: 1/s).
pub const KEYFRAME_THROTTLE: Duration = Duration::from_secs(1);

/// One room. Lives on one worker thread.
pub struct Room {
    id: Arc<str>,
    slot: RoomSlot,
    caps: Arc<RoomCaps>,
    settings: RoomSettings,
    /// By join order (a counter), and the names to it.
    peers: BTreeMap<u64, Peer>,
    peer_index: HashMap<PeerName, u64>,
    next_peer: u64,
    transports: HashMap<TransportKey, Transport>,
    /// By creation order (keys grow).
    producers: BTreeMap<ProducerKey, Producer>,
    consumers: HashMap<ConsumerId, Consumer>,
    /// Every SSRC a stream of this room uses (producers' and consumers').
    ssrcs: HashSet<u32>,
    timers: Timers<RoomTimer>,
    /// RTP streamers by id.
    streamers: BTreeMap<u64, host::Streamer>,
    next_streamer: u64,
    levels: Option<host::LevelsCfg>,
    /// The last `audioLevels` report listed someone.
    levels_were_loud: bool,
    speaker_cfg: Option<host::SpeakerCfg>,
    speaker: host::SpeakerState,
    rng: Rng,
    consumer_counter: u64,
    consumer_id_offset: u64,
    closed: bool,
}

impl Room {
    pub fn new(id: &str, slot: RoomSlot, caps: RoomCaps, settings: RoomSettings) -> Room {
        let mut rng = Rng::from_entropy();
        let consumer_id_offset = rng.range(0, 89_999_999);
        Room {
            id: Arc::from(id),
            slot,
            caps: Arc::new(caps),
            settings,
            peers: BTreeMap::new(),
            peer_index: HashMap::new(),
            next_peer: 0,
            transports: HashMap::new(),
            producers: BTreeMap::new(),
            consumers: HashMap::new(),
            ssrcs: HashSet::new(),
            timers: Timers::default(),
            streamers: BTreeMap::new(),
            next_streamer: 1,
            levels: None,
            levels_were_loud: false,
            speaker_cfg: None,
            speaker: host::SpeakerState::default(),
            rng,
            consumer_counter: 0,
            consumer_id_offset,
            closed: false,
        }
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn transport_count(&self) -> usize {
        self.transports.len()
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    pub fn has_peer(&self, name: &str) -> bool {
        self.peer_index.contains_key(name)
    }

    fn peer(&self, name: &str) -> Option<&Peer> {
        self.peer_index.get(name).and_then(|k| self.peers.get(k))
    }

    fn peer_mut(&mut self, name: &str) -> Option<&mut Peer> {
        let k = self.peer_index.get(name)?;
        self.peers.get_mut(k)
    }

    /// Server-chosen consumer ids: 8-digit like mediasoup's, unique in the room and
    /// never reused (a bijection of a counter over the 90M-number range).
    fn new_consumer_id(&mut self) -> ConsumerId {
        const SPAN: u64 = 90_000_000;
        self.consumer_counter += 1;
        // 7919 is coprime with 90,000,000 = 2^7 * 3^2 * 5^7.
        ConsumerId(10_000_000 + (self.consumer_counter.wrapping_mul(7919) + self.consumer_id_offset) % SPAN)
    }

    /// A random SSRC not used by any stream of this room (O(1) expected).
    fn new_ssrc(&mut self) -> u32 {
        loop {
            let s = self.rng.range(10_000_000, 0xFFFF_FFF0) as u32;
            if self.ssrcs.insert(s) {
                return s;
            }
        }
    }

    fn message(&self, cx: &mut Cx, kind: EventKind, peer: &PeerName, request_id: u64, json: String) {
        cx.out.message(HostMessage {
            kind,
            room: self.id.clone(),
            peer: peer.clone(),
            request_id,
            json,
        });
    }

    fn notify(&self, cx: &mut Cx, peer: &PeerName, method: &str, fields: Value) {
        self.message(cx, EventKind::Notification, peer, 0, protocol::notification(method, fields));
    }

    fn host_event(&self, cx: &mut Cx, peer: &PeerName, fields: Value) {
        self.message(cx, EventKind::Host, peer, 0, fields.to_string());
    }

    /// A client request: exactly one response is produced, whatever the input.
    pub fn handle_request(&mut self, cx: &mut Cx, peer: &str, request_id: u64, bytes: &[u8]) {
        cx.out.log(LogLevel::Debug, module_path!(), || {
            format!(
                "room {}: request {request_id} from {peer}: {}",
                self.id,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        });
        let name: PeerName = self.peer(peer).map(|p| p.name.clone()).unwrap_or_else(|| Arc::from(peer));
        let result = match protocol::decode(bytes, self.settings.max_message_size) {
            Err(e) => Err(e),
            Ok(m) if m.notification_flag => Err("a request must not carry `notification: true`".into()),
            Ok(m) => self.dispatch(cx, &name, &m).map(|(_, data)| data),
        };
        let json = match result {
            Ok(data) => protocol::ok_response(data),
            Err(e) => protocol::error_response(&e.0),
        };
        self.message(cx, EventKind::Response, &name, request_id, json);
    }

    /// A client notification: no response; failures become host events.
    pub fn handle_notification(&mut self, cx: &mut Cx, peer: &str, bytes: &[u8]) {
        cx.out.log(LogLevel::Debug, module_path!(), || {
            format!(
                "room {}: notification from {peer}: {}",
                self.id,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        });
        let name: PeerName = self.peer(peer).map(|p| p.name.clone()).unwrap_or_else(|| Arc::from(peer));
        let m = match protocol::decode(bytes, self.settings.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                return self.host_event(
                    cx,
                    &name,
                    json!({"event": "notificationError", "method": null, "error": e.0}),
                )
            }
        };
        if Method::from_name(&m.method).is_some_and(Method::is_request) {
            let reason = format!("`{}` is a request and cannot be sent as a notification", m.method);
            return self.host_event(
                cx,
                &name,
                json!({"event": "notificationError", "method": m.method, "error": reason}),
            );
        }
        if let Err(e) = self.dispatch(cx, &name, &m) {
            self.host_event(
                cx,
                &name,
                json!({"event": "notificationError", "method": m.method, "error": e.0}),
            );
        }
    }

    /// Apply one message: the method must be known, the peer joined (but for
    /// `queryRoom` and `join`), then the method's fields are read and applied.
    fn dispatch(&mut self, cx: &mut Cx, peer: &PeerName, m: &Message) -> ReqResult<(Method, Value)> {
        let method = Method::from_name(&m.method).ok_or_else(|| ReqError(format!("unknown method `{}`", m.method)))?;
        if !method.before_join() && !self.has_peer(peer) {
            return Err("peer not joined".into());
        }
        let msg = request::decode_body(method, m)?;
        let data = match msg {
            ClientMessage::QueryRoom => {
                json!({ "rtpCapabilities": self.caps.to_json(), "mandatoryCodecPayloadTypes": [] })
            }
            ClientMessage::Join(j) => self.join(cx, peer, j)?,
            ClientMessage::CreateTransport(c) => self.create_transport(cx, peer, c)?,
            ClientMessage::RestartTransport { id } => self.restart_transport(cx, peer, id)?,
            ClientMessage::CreateProducer(c) => self.create_producer(cx, peer, c)?,
            ClientMessage::EnableConsumer(e) => self.enable_consumer(cx, peer, e)?,
            ClientMessage::Leave => {
                self.remove_peer(cx, peer);
                json!({})
            }
            ClientMessage::UpdateTransport { id, dtls_parameters, plain } => {
                self.update_transport(cx, peer, id, dtls_parameters, plain)?
            }
            ClientMessage::CloseTransport { id } => {
                let key = self.transport_key(peer, id)?;
                self.close_transport(cx, key, false);
                json!({})
            }
            ClientMessage::UpdateProducer { id, rtp_parameters } => {
                self.update_producer(cx, peer, id, &rtp_parameters)?
            }
            ClientMessage::SetProducerPaused { id, paused } => {
                let pkey = self.producer_key(peer, id).ok_or("producer not found")?;
                self.apply_producer_pause(cx, pkey, paused);
                json!({})
            }
            ClientMessage::CloseProducer { id } => {
                // Unknown ids are ignored: the client sends closeProducer after
                // closeTransport and after the server closed the producer.
                if let Some(pkey) = self.producer_key(peer, id) {
                    self.close_producer(cx, pkey, true);
                }
                json!({})
            }
            ClientMessage::SetConsumerPaused { id, paused } => self.set_consumer_paused(cx, peer, id, paused)?,
            ClientMessage::SetConsumerPreferredProfile { id, profile } => {
                self.set_consumer_preferred_profile(cx, peer, id, profile)?
            }
            ClientMessage::SetStats { of, enable, interval_ms } => self.set_stats(cx, peer, of, enable, interval_ms)?,
        };
        Ok((method, data))
    }

    /// The host closes one peer: `closed` to it, then as if it had left.
    pub fn close_peer(&mut self, cx: &mut Cx, name: &str) -> bool {
        let Some(p) = self.peer(name) else {
            return false;
        };
        let (name, legacy) = (p.name.clone(), p.legacy);
        self.notify(cx, &name, "closed", json!({}));
        if legacy {
            self.notify(cx, &name, "roomClosed", json!({}));
        }
        self.remove_peer(cx, &name);
        true
    }

    /// Close the room: `closed` to every peer; everything is released.
    pub fn close(&mut self, cx: &mut Cx) {
        if self.closed {
            return;
        }
        for p in self.peers.values() {
            self.notify(cx, &p.name, "closed", json!({}));
            if p.legacy {
                self.notify(cx, &p.name, "roomClosed", json!({}));
            }
        }
        for (k, _) in self.transports.drain() {
            cx.media.close(k, cx.out);
        }
        self.peers.clear();
        self.peer_index.clear();
        self.producers.clear();
        self.consumers.clear();
        self.streamers.clear();
        self.ssrcs.clear();
        self.timers = Timers::default();
        self.closed = true;
    }

    /// Consumer info as in `newConsumer`, join's `peers[].consumers` and `newPeer.consumers`.
    fn consumer_info(&self, c: &Consumer) -> Value {
        let paused = self.producers.get(&c.producer).map(|p| p.paused).unwrap_or(false);
        json!({
            "id": c.id.0,
            "kind": c.kind.as_str(),
            "peerName": &*c.source_peer,
            "rtpParameters": c.params.rtp,
            "paused": paused,
            "preferredProfile": c.preferred_profile.as_str(),
            "effectiveProfile": c.effective_profile,
            "appData": c.app_data,
        })
    }

    /// Create a (disabled) consumer of `pkey` for `peer`. Returns its id.
    fn create_consumer(&mut self, peer: &PeerName, pkey: ProducerKey) -> Option<ConsumerId> {
        let (kind, source_peer, app_data) = {
            let p = self.producers.get(&pkey)?;
            (p.kind, p.peer.clone(), p.app_data.clone())
        };
        let caps = self.peer(peer)?.caps.clone();
        let (ssrc, rtx_ssrc) = (self.new_ssrc(), self.new_ssrc());
        let params = ortc::consumer_params(&self.caps, kind, &self.producers[&pkey].mapping, &caps, ssrc, rtx_ssrc, true);
        if params.rtx_ssrc.is_none() {
            self.ssrcs.remove(&rtx_ssrc);
        }
        let id = self.new_consumer_id();
        self.consumers.insert(
            id,
            Consumer {
                id,
                peer: peer.clone(),
                streamer: None,
                producer: pkey,
                source_peer,
                kind,
                params,
                app_data,
                transport: None,
                remote_paused: false,
                preferred_profile: Profile::Default,
                effective_profile: None,
                stats: None,
                fwd: ConsumerForwarding::default(),
                counters: Default::default(),
                choice: Default::default(),
                share: None,
            },
        );
        self.producers.get_mut(&pkey)?.consumers.push(id);
        self.peer_mut(peer)?.consumers.push(id);
        Some(id)
    }

    /// Forget a consumer: its stream leaves its transport, its SSRCs are free again.
    fn drop_consumer(&mut self, cx: &mut Cx, c: &Consumer) {
        self.detach_consumer(cx, c);
        self.ssrcs.remove(&c.params.ssrc);
        if let Some(r) = c.params.rtx_ssrc {
            self.ssrcs.remove(&r);
        }
        self.timers.set(RoomTimer::ConsumerStats(c.id), None);
    }

    /// Close a producer and all its consumers. `notify_receivers`: send
    /// `consumerClosed` to each receiving peer still there.
    fn close_producer(&mut self, cx: &mut Cx, pkey: ProducerKey, notify_receivers: bool) {
        for s in self.streamers_of(pkey) {
            self.close_streamer(cx, s, Some("producer closed"));
        }
        self.producer_gone_from_speaker(cx, pkey);
        let Some(p) = self.producers.remove(&pkey) else {
            return;
        };
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers.retain(|k| *k != pkey);
            cx.media.remove_producer(cx.now, p.transport, &p.mid, &p.mapping.streams(), cx.out);
        }
        for s in p.mapping.all_ssrcs() {
            self.ssrcs.remove(&s);
        }
        self.timers.set(RoomTimer::ProducerStats(pkey), None);
        self.timers.set(RoomTimer::Remb(pkey), None);
        self.timers.set(RoomTimer::Keyframe(pkey), None);
        self.timers.set(RoomTimer::LossCheck(pkey), None);
        if let Some(owner) = self.peer_mut(&p.peer) {
            owner.producers.retain(|_, k| *k != pkey);
        }
        for cid in p.consumers {
            let Some(c) = self.consumers.remove(&cid) else {
                continue;
            };
            self.drop_consumer(cx, &c);
            if let Some(rp) = self.peer_mut(&c.peer) {
                rp.consumers.retain(|x| *x != cid);
            }
            if notify_receivers && self.has_peer(&c.peer) {
                self.notify(
                    cx,
                    &c.peer,
                    "consumerClosed",
                    json!({"id": cid.0, "peerName": &*p.peer, "appData": c.app_data}),
                );
            }
        }
    }

    /// Unbind a consumer from its transport (its stream leaves the engine).
    fn detach_consumer(&mut self, cx: &mut Cx, c: &Consumer) {
        if let Some(tk) = c.transport {
            if let Some(t) = self.transports.get_mut(&tk) {
                t.consumers.retain(|x| *x != c.id);
                cx.media.remove_consumer(cx.now, tk, &forward::consumer_mid(c.id), c.params.ssrc, cx.out);
            }
        }
    }

    /// Close a transport. `by_server`: the client did not ask (send `transportClosed`).
    fn close_transport(&mut self, cx: &mut Cx, tkey: TransportKey, by_server: bool) {
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        let (peer, id) = (t.peer.clone(), t.id);
        let producers = t.producers.clone();
        let consumers = t.consumers.clone();
        // Producers close silently for their owner; their consumers close for others.
        for pk in producers {
            self.close_producer(cx, pk, true);
        }
        // Consumers on it become unhandled, not closed.
        for cid in consumers {
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.transport = None;
                c.fwd = ConsumerForwarding::default();
                c.choice = Default::default();
                c.share = None;
            }
        }
        self.transports.remove(&tkey);
        cx.media.close(tkey, cx.out);
        self.timers.set(RoomTimer::TransportStats(tkey), None);
        self.timers.set(RoomTimer::Adapt(tkey), None);
        if let Some(p) = self.peer_mut(&peer) {
            p.transports.retain(|_, k| *k != tkey);
            if p.last_recv_transport == Some(tkey) {
                p.last_recv_transport = None;
            }
        }
        if by_server && self.has_peer(&peer) {
            self.notify(cx, &peer, "transportClosed", json!({"id": id.0}));
        }
    }

    /// Remove a peer (leave or host close). Others get `peerClosed` first; the
    /// redundant `consumerClosed` for its producers' consumers are not sent.
    fn remove_peer(&mut self, cx: &mut Cx, name: &str) {
        let Some(k) = self.peer_index.remove(name) else {
            return;
        };
        let Some(peer) = self.peers.remove(&k) else {
            return;
        };
        if !peer.spy {
            for other in self.peers.values() {
                self.notify(
                    cx,
                    &other.name,
                    "peerClosed",
                    json!({"name": &*peer.name, "appData": peer.app_data}),
                );
            }
        }
        for pk in peer.producers.values().copied().collect::<Vec<_>>() {
            self.close_producer(cx, pk, false);
        }
        for cid in &peer.consumers {
            if let Some(c) = self.consumers.remove(cid) {
                self.drop_consumer(cx, &c);
                if let Some(p) = self.producers.get_mut(&c.producer) {
                    p.consumers.retain(|x| x != cid);
                }
            }
        }
        for tk in peer.transports.values().copied() {
            self.transports.remove(&tk);
            cx.media.close(tk, cx.out);
            self.timers.set(RoomTimer::TransportStats(tk), None);
            self.timers.set(RoomTimer::Adapt(tk), None);
        }
    }

    /// Events of one of this room's engines.
    pub fn handle_media(&mut self, cx: &mut Cx, tkey: TransportKey, evs: &mut Vec<MediaEvent>) {
        if !self.transports.contains_key(&tkey) {
            // A closed transport's last events (from another worker, they may still be
            // on their way), or a slot's previous room's: not this room's business.
            evs.clear();
            return;
        }
        let mut dead: Option<String> = None;
        for ev in evs.drain(..) {
            match ev {
                MediaEvent::Rtp(p) => self.forward(cx, tkey, p),
                MediaEvent::Dead(reason) => dead = Some(reason),
                other => self.on_media_event(cx, tkey, other),
            }
        }
        if let Some(reason) = dead {
            self.transport_died(cx, tkey, &reason);
        }
    }

    /// The earliest time this room wants `handle_timeout`.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.timers.next()
    }

    /// Timer tick: due keyframe requests and statistics.
    pub fn handle_timeout(&mut self, cx: &mut Cx) {
        // Bounded: each timer re-arms in the future, so this ends; the bound only
        // guards against a bug turning it into a spin.
        for _ in 0..100_000 {
            let Some(t) = self.timers.pop_due(cx.now) else {
                return;
            };
            match t {
                RoomTimer::Keyframe(pk) => self.request_keyframe_upstream(cx, pk, false),
                RoomTimer::LossCheck(pk) => self.check_losses(cx, pk),
                RoomTimer::AudioLevels => self.emit_audio_levels(cx),
                RoomTimer::ActiveSpeaker => self.detect_active_speaker(cx),
                RoomTimer::StreamerKeyframe(s) => self.streamer_keyframe(cx, s),
                RoomTimer::TransportStats(k) => self.emit_transport_stats(cx, k),
                RoomTimer::ProducerStats(k) => self.emit_producer_stats(cx, k),
                RoomTimer::ConsumerStats(k) => self.emit_consumer_stats(cx, k),
                RoomTimer::Adapt(k) => self.adapt(cx, k),
                RoomTimer::Remb(k) => self.limit_producer(cx, k),
            }
        }
    }

    /// (peer name, legacy) of every peer, in join order.
    pub fn peer_names_legacy(&self) -> Vec<(PeerName, bool)> {
        self.peers.values().map(|p| (p.name.clone(), p.legacy)).collect()
    }

    /// Stats intervals: 1 s to 1 h (default 1 s).
    fn interval(ms: Option<f64>) -> Duration {
        Duration::from_millis(ms.unwrap_or(1000.0).clamp(1000.0, 3_600_000.0) as u64)
    }
}
