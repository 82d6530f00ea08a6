//! Rooms: peers, transports, producers and consumers as sans-IO state.
//!
//! A `Room` receives decoded client messages, host calls, datagrams and timer ticks,
//! and produces outputs: responses and notifications for the notifier thread,
//! datagrams for the socket, and demultiplexing updates for the worker. It never
//! touches a thread, a socket or the clock.

pub mod codecs;
mod forward;
mod handlers;
mod stats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::media::{MediaEnv, TransportMedia};
use crate::protocol;
use crate::util::Rng;
use codecs::{ConsumerParams, Kind, PeerCaps, ProducerMapping, RoomCaps};
pub use forward::ConsumerForwarding;

/// What a room hands to its worker.
#[derive(Debug)]
pub enum Output {
    /// The answer to a request.
    Response {
        peer: String,
        request_id: u64,
        json: String,
    },
    /// A message the host must deliver to `peer` verbatim.
    Notification { peer: String, json: String },
    /// A host-facing event (`{"event": ...}`), not for the client.
    Host { peer: String, json: String },
}

/// Changes to the worker's datagram routing tables.
#[derive(Debug, Clone)]
pub enum Demux {
    /// Route STUN with this local ufrag to the transport.
    AddUfrag(String, TKey),
    RemoveUfrag(String),
    /// Route datagrams from this address to the transport.
    AddAddr(SocketAddr, TKey),
    /// The transport is gone: forget all its routes.
    RemoveTransport(TKey),
}

/// Room-internal transport key (unique per worker, never reused).
pub type TKey = u64;
/// Room-internal producer key (never reused).
pub type PKey = u64;

/// Direction of a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Send,
    Recv,
}

pub(crate) struct Peer {
    pub name: String,
    pub app_data: Value,
    pub spy: bool,
    /// Joined with the seed's shapes (no rtpCapabilities): gets `roomClosed` too.
    pub legacy: bool,
    pub caps: PeerCaps,
    /// Client transport id -> key.
    pub transports: HashMap<u64, TKey>,
    /// Client producer id -> key.
    pub producers: HashMap<u64, PKey>,
    /// Consumers this peer receives, in creation order.
    pub consumers: Vec<u64>,
    /// The transport most recently created without `dtlsParameters` (recv).
    pub last_recv_transport: Option<TKey>,
}

pub(crate) struct Transport {
    pub id: u64,
    pub peer: String,
    pub dir: Dir,
    pub dtls_applied: bool,
    pub media: TransportMedia,
    pub producers: Vec<PKey>,
    pub consumers: Vec<u64>,
    pub stats: Option<stats::StatsTimer>,
}

pub(crate) struct Producer {
    pub id: u64,
    pub peer: String,
    pub transport: TKey,
    pub kind: Kind,
    pub mapping: ProducerMapping,
    pub rtp_parameters: Value,
    pub app_data: Value,
    pub paused: bool,
    pub consumers: Vec<u64>,
    pub mid: String,
    pub stats: Option<stats::StatsTimer>,
    /// Last keyframe request sent upstream (throttling).
    pub last_keyframe_request: Option<Instant>,
    /// A keyframe request arrived while throttled: send it when allowed.
    pub keyframe_pending: bool,
    pub counters: stats::StreamCounters,
}

pub(crate) struct Consumer {
    pub id: u64,
    /// The receiving peer.
    pub peer: String,
    pub producer: PKey,
    /// The producing peer.
    pub source_peer: String,
    pub kind: Kind,
    pub params: ConsumerParams,
    pub app_data: Value,
    /// Bound to this transport by `enableConsumer`.
    pub transport: Option<TKey>,
    pub remote_paused: bool,
    pub use_rtx: bool,
    pub preferred_profile: String,
    pub effective_profile: Option<String>,
    pub stats: Option<stats::StatsTimer>,
    pub fwd: ConsumerForwarding,
    pub counters: stats::StreamCounters,
}

/// One room. Lives on one worker thread.
pub struct Room {
    pub id: String,
    pub(crate) caps: RoomCaps,
    pub(crate) env: Arc<MediaEnv>,
    pub(crate) peers: Vec<Peer>,
    pub(crate) transports: HashMap<TKey, Transport>,
    pub(crate) producers: HashMap<PKey, Producer>,
    pub(crate) consumers: HashMap<u64, Consumer>,
    pub(crate) out: Vec<Output>,
    pub(crate) demux: Vec<Demux>,
    /// Transports with RTP queued by `forward`, sent by `flush_writes`.
    pub(crate) pending_writes: Vec<TKey>,
    /// Packets queued since the last `flush_writes`.
    pub(crate) pending_write_count: usize,
    pub(crate) rng: Rng,
    consumer_counter: u64,
    consumer_id_offset: u64,
    next_key: u64,
    key_base: u64,
    pub(crate) closed: bool,
}

/// Requests (answered) and notifications (fire-and-forget) of the protocol.
const REQUEST_METHODS: &[&str] = &[
    "queryRoom",
    "join",
    "createTransport",
    "restartTransport",
    "createProducer",
    "enableConsumer",
];

impl Room {
    /// `key_base` makes transport keys unique across the rooms of a worker.
    pub fn new(id: String, caps: RoomCaps, env: Arc<MediaEnv>, key_base: u64) -> Room {
        let mut rng = Rng::from_entropy();
        let consumer_id_offset = rng.range(0, 89_999_999);
        Room {
            id,
            caps,
            env,
            peers: Vec::new(),
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            out: Vec::new(),
            demux: Vec::new(),
            pending_writes: Vec::new(),
            pending_write_count: 0,
            rng,
            consumer_counter: 0,
            consumer_id_offset,
            next_key: 1,
            key_base,
            closed: false,
        }
    }

    pub fn caps(&self) -> &RoomCaps {
        &self.caps
    }

    /// Outputs produced so far, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Outputs or routing changes are waiting.
    pub fn has_pending_outputs(&self) -> bool {
        !self.out.is_empty() || !self.demux.is_empty()
    }

    /// Routing changes produced so far, in order.
    pub fn take_demux(&mut self) -> Vec<Demux> {
        std::mem::take(&mut self.demux)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn has_peer(&self, name: &str) -> bool {
        self.peer(name).is_some()
    }

    pub(crate) fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    pub(crate) fn peer_mut(&mut self, name: &str) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.name == name)
    }

    pub(crate) fn new_key(&mut self) -> u64 {
        let k = self.key_base + self.next_key;
        self.next_key += 1;
        k
    }

    /// Server-chosen consumer ids: 8-digit like mediasoup's, unique in the room and
    /// never reused (a bijection of a counter over the 90M-number range).
    pub(crate) fn new_consumer_id(&mut self) -> u64 {
        const SPAN: u64 = 90_000_000;
        self.consumer_counter += 1;
        // 7919 is coprime with 90,000,000 = 2^7 * 3^2 * 5^7.
        10_000_000 + (self.consumer_counter.wrapping_mul(7919) + self.consumer_id_offset) % SPAN
    }

    /// A random SSRC not used by any stream of this room.
    pub(crate) fn new_ssrc(&mut self) -> u32 {
        loop {
            let s = self.rng.range(10_000_000, 0xFFFF_FFF0) as u32;
            let used = self
                .consumers
                .values()
                .any(|c| c.params.ssrc == s || c.params.rtx_ssrc == Some(s))
                || self
                    .producers
                    .values()
                    .any(|p| p.mapping.all_ssrcs().any(|x| x == s));
            if !used {
                return s;
            }
        }
    }

    pub(crate) fn respond_ok(&mut self, peer: &str, request_id: u64, data: Value) {
        self.out.push(Output::Response {
            peer: peer.to_string(),
            request_id,
            json: protocol::ok_response(data),
        });
    }

    pub(crate) fn respond_err(&mut self, peer: &str, request_id: u64, reason: &str) {
        self.out.push(Output::Response {
            peer: peer.to_string(),
            request_id,
            json: protocol::error_response(reason),
        });
    }

    pub(crate) fn notify(&mut self, peer: &str, method: &str, fields: Value) {
        self.out.push(Output::Notification {
            peer: peer.to_string(),
            json: protocol::notification(method, fields),
        });
    }

    pub(crate) fn host_event(&mut self, peer: &str, fields: Value) {
        self.out.push(Output::Host {
            peer: peer.to_string(),
            json: fields.to_string(),
        });
    }

    /// A client request: exactly one response is produced, whatever the input.
    pub fn handle_request(&mut self, now: Instant, peer: &str, request_id: u64, bytes: &[u8]) {
        crate::log::log(crate::config::LogLevel::Debug, || {
            format!(
                "room {}: request {request_id} from {peer}: {}",
                self.id,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        });
        let msg = match protocol::decode(bytes, self.env.max_message_size) {
            Ok(m) => m,
            Err(e) => return self.respond_err(peer, request_id, &e.0),
        };
        if msg.notification_flag {
            return self.respond_err(
                peer,
                request_id,
                "a request must not carry `notification: true`",
            );
        }
        let result = self.dispatch(now, peer, &msg, true);
        match result {
            Ok(data) => self.respond_ok(peer, request_id, data),
            Err(e) => self.respond_err(peer, request_id, &e.0),
        }
    }

    /// A client notification: no response; failures become host events.
    pub fn handle_notification(&mut self, now: Instant, peer: &str, bytes: &[u8]) {
        crate::log::log(crate::config::LogLevel::Debug, || {
            format!(
                "room {}: notification from {peer}: {}",
                self.id,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        });
        let msg = match protocol::decode(bytes, self.env.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                return self.host_event(
                    peer,
                    json!({"event": "notificationError", "method": null, "error": e.0}),
                )
            }
        };
        if REQUEST_METHODS.contains(&msg.method.as_str()) {
            let reason = format!(
                "`{}` is a request and cannot be sent as a notification",
                msg.method
            );
            return self.host_event(
                peer,
                json!({"event": "notificationError", "method": msg.method, "error": reason}),
            );
        }
        if let Err(e) = self.dispatch(now, peer, &msg, false) {
            self.host_event(
                peer,
                json!({"event": "notificationError", "method": msg.method, "error": e.0}),
            );
        }
    }

    fn dispatch(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &protocol::Message,
        _is_request: bool,
    ) -> crate::error::ReqResult<Value> {
        let m = msg.method.as_str();
        match m {
            "queryRoom" => {
                return Ok(
                    json!({ "rtpCapabilities": self.caps.to_json(), "mandatoryCodecPayloadTypes": [] }),
                )
            }
            "join" => return self.join(now, peer, msg),
            _ => {}
        }
        let known = REQUEST_METHODS.contains(&m) || handlers::NOTIFICATION_METHODS.contains(&m);
        if !known {
            return Err(format!("unknown method `{m}`").into());
        }
        if self.peer(peer).is_none() {
            return Err("peer not joined".into());
        }
        match m {
            "createTransport" => self.create_transport(now, peer, msg),
            "restartTransport" => self.restart_transport(now, peer, msg),
            "createProducer" => self.create_producer(now, peer, msg),
            "enableConsumer" => self.enable_consumer(now, peer, msg),
            "leave" => {
                self.remove_peer(now, peer, false);
                Ok(json!({}))
            }
            "updateTransport" => self.update_transport(now, peer, msg),
            "closeTransport" => self.close_transport_by_client(now, peer, msg),
            "updateProducer" => self.update_producer(now, peer, msg),
            "pauseProducer" => self.set_producer_paused(now, peer, msg, true),
            "resumeProducer" => self.set_producer_paused(now, peer, msg, false),
            "closeProducer" => self.close_producer_by_client(now, peer, msg),
            "pauseConsumer" => self.set_consumer_paused(now, peer, msg, true),
            "resumeConsumer" => self.set_consumer_paused(now, peer, msg, false),
            "setConsumerPreferredProfile" => self.set_consumer_preferred_profile(now, peer, msg),
            "enableTransportStats"
            | "disableTransportStats"
            | "enableProducerStats"
            | "disableProducerStats"
            | "enableConsumerStats"
            | "disableConsumerStats" => self.set_stats(now, peer, msg),
            _ => Err(format!("unknown method `{m}`").into()),
        }
    }

    /// The host closes one peer: `closed` to it, then as if it had left.
    pub fn close_peer(&mut self, now: Instant, name: &str) -> bool {
        let Some(p) = self.peer(name) else {
            return false;
        };
        let legacy = p.legacy;
        self.notify(name, "closed", json!({}));
        if legacy {
            self.notify(name, "roomClosed", json!({}));
        }
        self.remove_peer(now, name, true);
        true
    }

    /// Close the room: `closed` to every peer; everything is released.
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let names: Vec<String> = self.peers.iter().map(|p| p.name.clone()).collect();
        for n in &names {
            let legacy = self.peer(n).map(|p| p.legacy).unwrap_or(false);
            self.notify(n, "closed", json!({}));
            if legacy {
                self.notify(n, "roomClosed", json!({}));
            }
        }
        let keys: Vec<TKey> = self.transports.keys().copied().collect();
        for k in keys {
            if let Some(mut t) = self.transports.remove(&k) {
                t.media.close(now);
                self.demux.push(Demux::RemoveTransport(k));
            }
        }
        self.peers.clear();
        self.producers.clear();
        self.consumers.clear();
        self.closed = true;
    }

    /// Consumer info as in `newConsumer`, join's `peers[].consumers` and `newPeer.consumers`.
    pub(crate) fn consumer_info(&self, c: &Consumer) -> Value {
        let paused = self
            .producers
            .get(&c.producer)
            .map(|p| p.paused)
            .unwrap_or(false);
        json!({
            "id": c.id,
            "kind": c.kind.as_str(),
            "peerName": c.source_peer,
            "rtpParameters": c.params.json,
            "paused": paused,
            "preferredProfile": c.preferred_profile,
            "effectiveProfile": c.effective_profile,
            "appData": c.app_data,
        })
    }

    /// Create a (disabled) consumer of `pkey` for `peer_name`. Returns its id.
    pub(crate) fn create_consumer(&mut self, peer_name: &str, pkey: PKey) -> Option<u64> {
        let (kind, source_peer, app_data) = {
            let p = self.producers.get(&pkey)?;
            (p.kind, p.peer.clone(), p.app_data.clone())
        };
        let ssrc = self.new_ssrc();
        let rtx_ssrc = loop {
            let s = self.new_ssrc();
            if s != ssrc {
                break s;
            }
        };
        let caps = self.peer(peer_name)?.caps.clone();
        let params = codecs::consumer_params(
            &self.caps,
            kind,
            &self.producers[&pkey].mapping,
            &caps,
            ssrc,
            rtx_ssrc,
            true,
        );
        let id = self.new_consumer_id();
        let consumer = Consumer {
            id,
            peer: peer_name.to_string(),
            producer: pkey,
            source_peer,
            kind,
            params,
            app_data,
            transport: None,
            remote_paused: false,
            use_rtx: true,
            preferred_profile: "default".into(),
            effective_profile: None,
            stats: None,
            fwd: ConsumerForwarding::default(),
            counters: Default::default(),
        };
        self.consumers.insert(id, consumer);
        self.producers.get_mut(&pkey)?.consumers.push(id);
        self.peer_mut(peer_name)?.consumers.push(id);
        Some(id)
    }

    /// Close a producer and all its consumers. `notify_receivers`: send
    /// `consumerClosed` to each receiving peer still open.
    pub(crate) fn close_producer(&mut self, now: Instant, pkey: PKey, notify_receivers: bool) {
        let Some(p) = self.producers.remove(&pkey) else {
            return;
        };
        if let Some(t) = self.transports.get_mut(&p.transport) {
            t.producers.retain(|k| *k != pkey);
            let ssrcs: Vec<(u32, Option<u32>)> = p.mapping.streams();
            t.media.remove_producer(now, &p.mid, &ssrcs);
        }
        if let Some(owner) = self.peer_mut(&p.peer) {
            owner.producers.retain(|_, k| *k != pkey);
        }
        for cid in p.consumers {
            let Some(c) = self.consumers.remove(&cid) else {
                continue;
            };
            self.detach_consumer(now, &c);
            if let Some(rp) = self.peer_mut(&c.peer) {
                rp.consumers.retain(|x| *x != cid);
            }
            if notify_receivers && self.peer(&c.peer).is_some() {
                self.notify(
                    &c.peer,
                    "consumerClosed",
                    json!({"id": cid, "peerName": p.peer, "appData": c.app_data}),
                );
            }
        }
    }

    /// Unbind a consumer from its transport (media streams removed).
    pub(crate) fn detach_consumer(&mut self, now: Instant, c: &Consumer) {
        if let Some(tk) = c.transport {
            if let Some(t) = self.transports.get_mut(&tk) {
                t.consumers.retain(|x| *x != c.id);
                t.media
                    .remove_consumer(now, &forward::consumer_mid(c.id), c.params.ssrc);
            }
        }
    }

    /// Close a transport. `by_server`: the client did not ask (send `transportClosed`).
    pub(crate) fn close_transport(&mut self, now: Instant, tkey: TKey, by_server: bool) {
        let Some(t) = self.transports.get(&tkey) else {
            return;
        };
        let (peer, id) = (t.peer.clone(), t.id);
        let producers = t.producers.clone();
        let consumers = t.consumers.clone();
        // Producers close silently for their owner; their consumers close for others.
        for pk in producers {
            self.close_producer(now, pk, true);
        }
        // Consumers on it become unhandled, not closed.
        for cid in consumers {
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.transport = None;
                c.fwd = ConsumerForwarding::default();
            }
        }
        if let Some(mut t) = self.transports.remove(&tkey) {
            t.media.close(now);
        }
        self.demux.push(Demux::RemoveTransport(tkey));
        if let Some(p) = self.peer_mut(&peer) {
            p.transports.retain(|_, k| *k != tkey);
            if p.last_recv_transport == Some(tkey) {
                p.last_recv_transport = None;
            }
        }
        if by_server && self.peer(&peer).is_some() {
            self.notify(&peer, "transportClosed", json!({"id": id}));
        }
    }

    /// Remove a peer (leave or host close). Others get `peerClosed` first; the
    /// redundant `consumerClosed` for its producers' consumers are not sent (§8.8).
    pub(crate) fn remove_peer(&mut self, now: Instant, name: &str, _by_server: bool) {
        let Some(idx) = self.peers.iter().position(|p| p.name == name) else {
            return;
        };
        let peer = self.peers.remove(idx);
        if !peer.spy {
            for other in self
                .peers
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
            {
                self.notify(
                    &other,
                    "peerClosed",
                    json!({"name": peer.name, "appData": peer.app_data}),
                );
            }
        }
        for pk in peer.producers.values().copied().collect::<Vec<_>>() {
            self.close_producer(now, pk, false);
        }
        for cid in &peer.consumers {
            if let Some(c) = self.consumers.remove(cid) {
                self.detach_consumer(now, &c);
                if let Some(p) = self.producers.get_mut(&c.producer) {
                    p.consumers.retain(|x| x != cid);
                }
            }
        }
        for tk in peer.transports.values().copied().collect::<Vec<_>>() {
            if let Some(mut t) = self.transports.remove(&tk) {
                t.media.close(now);
            }
            self.demux.push(Demux::RemoveTransport(tk));
        }
    }

    /// The earliest time this room wants `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        for tr in self.transports.values() {
            if let Some(x) = tr.media.next_timeout() {
                min(x);
            }
            if let Some(s) = &tr.stats {
                min(s.next);
            }
        }
        for p in self.producers.values() {
            if let Some(s) = &p.stats {
                min(s.next);
            }
        }
        if let Some(k) = self.next_keyframe_deadline() {
            min(k);
        }
        for c in self.consumers.values() {
            if let Some(s) = &c.stats {
                min(s.next);
            }
        }
        t
    }

    /// Timer tick: drive every transport, emit due stats, close dead transports.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        tx: &mut dyn FnMut(SocketAddr, SocketAddr, &[u8]),
    ) {
        let keys: Vec<TKey> = self.transports.keys().copied().collect();
        for k in keys {
            let due = self
                .transports
                .get(&k)
                .and_then(|t| t.media.next_timeout())
                .is_some_and(|x| x <= now);
            if due {
                self.drive_transport(now, k, None, tx);
            }
        }
        self.send_pending_keyframe_requests(now);
        self.emit_due_stats(now);
    }

    /// A datagram routed to transport `tkey`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        tkey: TKey,
        src: SocketAddr,
        dst: SocketAddr,
        data: &[u8],
        tx: &mut dyn FnMut(SocketAddr, SocketAddr, &[u8]),
    ) {
        self.drive_transport(now, tkey, Some((src, dst, data)), tx);
    }

    /// Transport keys and their local ufrags (for the worker's routing table).
    pub fn transport_for_ufrag(&self, ufrag: &str) -> Option<(TKey, String)> {
        self.transports
            .iter()
            .find(|(_, t)| t.media.ice_ufrag() == ufrag)
            .map(|(k, t)| (*k, t.media.ice_password().to_string()))
    }

    /// `Duration` helper for stats intervals.
    pub(crate) fn interval_ms(ms: Option<f64>) -> Duration {
        Duration::from_millis(ms.unwrap_or(1000.0).clamp(1000.0, 3_600_000.0) as u64)
    }
}

impl Room {
    /// The ICE password of a transport (for routing first-contact STUN).
    pub fn transport_password(&self, tkey: TKey) -> Option<&str> {
        self.transports.get(&tkey).map(|t| t.media.ice_password())
    }

    /// (peer name, legacy) of every peer.
    pub fn peer_names_legacy(&self) -> Vec<(String, bool)> {
        self.peers
            .iter()
            .map(|p| (p.name.clone(), p.legacy))
            .collect()
    }
}
