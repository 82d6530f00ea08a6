//! One function per client message (protocol.md §4, §5).

use std::time::Instant;

use serde_json::{json, Value};
use str0m::config::Fingerprint;

use super::codecs::{Kind, RoomCaps};
use super::stats::StatsTimer;
use super::{forward, Consumer, Dir, Peer, Producer, Room, Transport};
use crate::error::{ReqError, ReqResult};
use crate::media::TransportMedia;
use crate::protocol::rtp::{DtlsParameters, RtpCapabilities, RtpParameters};
use crate::protocol::Message;

/// Client -> server notifications (§5).
pub(crate) const NOTIFICATION_METHODS: &[&str] = &[
    "leave",
    "updateTransport",
    "closeTransport",
    "enableTransportStats",
    "disableTransportStats",
    "updateProducer",
    "pauseProducer",
    "resumeProducer",
    "closeProducer",
    "enableProducerStats",
    "disableProducerStats",
    "pauseConsumer",
    "resumeConsumer",
    "setConsumerPreferredProfile",
    "enableConsumerStats",
    "disableConsumerStats",
];

const PROFILES: &[&str] = &["default", "low", "medium", "high"];

/// The client's fingerprint we use: the last entry with an algorithm str0m
/// verifies (sha-256, sha-1), like mediasoup picks the last supported one.
pub(crate) fn remote_fingerprint(p: &DtlsParameters) -> ReqResult<Fingerprint> {
    let fp = p
        .fingerprints
        .iter()
        .rev()
        .find(|f| {
            f.algorithm.eq_ignore_ascii_case("sha-256") || f.algorithm.eq_ignore_ascii_case("sha-1")
        })
        .ok_or("invalid `dtlsParameters`: no sha-256 or sha-1 fingerprint")?;
    let len = if fp.algorithm.eq_ignore_ascii_case("sha-256") {
        32
    } else {
        20
    };
    let bytes: Option<Vec<u8>> = fp
        .value
        .split(':')
        .map(|h| {
            if h.len() == 2 {
                u8::from_str_radix(h, 16).ok()
            } else {
                None
            }
        })
        .collect();
    match bytes {
        Some(b) if b.len() == len => Ok(Fingerprint {
            hash_func: fp.algorithm.to_ascii_lowercase(),
            bytes: b,
        }),
        _ => Err(ReqError(format!(
            "invalid `dtlsParameters`: malformed {} fingerprint",
            fp.algorithm
        ))),
    }
}

/// Our DTLS role from the client's (§8.9): remote "client" -> we are server;
/// "server" or "auto" -> we are client. Returns `active` (we are the DTLS client).
fn our_dtls_active(p: &DtlsParameters) -> ReqResult<bool> {
    match p.role.as_deref() {
        None | Some("auto") | Some("server") => Ok(true),
        Some("client") => Ok(false),
        Some(r) => Err(ReqError(format!("invalid `dtlsParameters.role`: {r:?}"))),
    }
}

impl Room {
    pub(crate) fn join(&mut self, now: Instant, peer: &str, msg: &Message) -> ReqResult<Value> {
        let _ = now;
        if self.peer(peer).is_some() {
            return Err("peer already joined".into());
        }
        if peer.is_empty() {
            return Err("empty peer name".into());
        }
        let limit = self.env.limits.max_peers_per_room;
        if self.peers.len() >= limit {
            return Err(ReqError(format!(
                "too many peers in the room (limit {limit})"
            )));
        }
        let caps_in: Option<RtpCapabilities> = msg.opt_typed("rtpCapabilities")?;
        let spy = msg.opt_bool("spy")?.unwrap_or(false);
        let app_data = msg.opaque("appData");
        // `peerName` in the message is the client's claim; the host's name wins.
        if msg.has("peerName") {
            msg.str("peerName")?;
        }
        let (caps, legacy) = match &caps_in {
            Some(c) => (self.caps.validate_peer_caps(c)?, false),
            None => (self.caps.all_as_peer_caps(), true),
        };
        self.peers.push(Peer {
            name: peer.to_string(),
            app_data: app_data.clone(),
            spy,
            legacy,
            caps,
            transports: Default::default(),
            producers: Default::default(),
            consumers: Vec::new(),
            last_recv_transport: None,
        });
        // Consumers for every existing producer of the other peers (no notification:
        // they travel in the response).
        let mut existing: Vec<(u64, super::PKey)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.peer != peer)
            .map(|(k, p)| (p.id, *k))
            .collect();
        existing.sort_by_key(|(_, k)| *k);
        for (_, pk) in existing {
            self.create_consumer(peer, pk);
        }
        if !spy {
            let others: Vec<String> = self
                .peers
                .iter()
                .filter(|p| p.name != peer)
                .map(|p| p.name.clone())
                .collect();
            for o in others {
                self.notify(
                    &o,
                    "newPeer",
                    json!({"name": peer, "appData": app_data, "consumers": []}),
                );
            }
        }
        let me = self.peer(peer).expect("just added");
        let mut peers = Vec::new();
        for other in self.peers.iter().filter(|p| p.name != peer && !p.spy) {
            let consumers: Vec<Value> = me
                .consumers
                .iter()
                .filter_map(|cid| self.consumers.get(cid))
                .filter(|c| c.source_peer == other.name)
                .map(|c| self.consumer_info(c))
                .collect();
            peers.push(
                json!({"name": other.name, "appData": other.app_data, "consumers": consumers}),
            );
        }
        Ok(json!({
            "peers": peers,
            "rtpCapabilities": self.caps.to_json(),
            "mandatoryCodecPayloadTypes": [],
        }))
    }

    pub(crate) fn create_transport(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let id = msg.id("id")?;
        if self
            .peer(peer)
            .is_some_and(|p| p.transports.contains_key(&id))
        {
            return Err("transport already exists".into());
        }
        let limit = self.env.limits.max_transports_per_peer;
        if self.peer(peer).is_some_and(|p| p.transports.len() >= limit) {
            return Err(ReqError(format!(
                "too many transports for this peer (limit {limit})"
            )));
        }
        let dtls: Option<DtlsParameters> = msg.opt_typed("dtlsParameters")?;
        let dir = match msg.opt_str("direction")? {
            Some("send") => Dir::Send,
            Some("recv") => Dir::Recv,
            Some(d) => return Err(ReqError(format!("invalid `direction`: {d:?}"))),
            // Seed shape: every 2.x browser handler sends dtlsParameters for send only.
            None if dtls.is_some() => Dir::Send,
            None => Dir::Recv,
        };
        if let Some(o) = msg.body.get("options") {
            if !(o.is_object() || o.is_null()) {
                return Err("field `options` must be an object".into());
            }
        }
        let remote = match &dtls {
            Some(d) => Some((remote_fingerprint(d)?, our_dtls_active(d)?)),
            None => None,
        };
        let key = self.new_key();
        let mut media = TransportMedia::new(now, &self.env, dir, &self.caps);
        let mut role = "auto";
        let dtls_applied = remote.is_some();
        if let Some((fp, active)) = remote {
            media.start_dtls(now, fp, active).map_err(ReqError)?;
            role = if active { "client" } else { "server" };
        }
        let ice = json!({
            "usernameFragment": media.ice_ufrag(),
            "password": media.ice_password(),
            "iceLite": true,
        });
        let candidates: Vec<Value> = self
            .env
            .candidates
            .iter()
            .map(|c| {
                json!({
                    "foundation": "udpcandidate",
                    "priority": c.priority,
                    "ip": c.addr.ip().to_string(),
                    "port": c.addr.port(),
                    "protocol": "udp",
                    "type": "host",
                    "family": if c.addr.is_ipv4() { "ipv4" } else { "ipv6" },
                })
            })
            .collect();
        self.demux
            .push(super::Demux::AddUfrag(media.ice_ufrag().to_string(), key));
        self.transports.insert(
            key,
            Transport {
                id,
                peer: peer.to_string(),
                dir,
                dtls_applied,
                media,
                producers: Vec::new(),
                consumers: Vec::new(),
                stats: None,
            },
        );
        let p = self.peer_mut(peer).expect("joined");
        p.transports.insert(id, key);
        if dir == Dir::Recv {
            p.last_recv_transport = Some(key);
        }
        Ok(json!({
            "iceParameters": ice,
            "iceCandidates": candidates,
            "dtlsParameters": {
                "role": role,
                "fingerprints": [{ "algorithm": "sha-256", "value": self.env.fingerprint }],
            },
        }))
    }

    fn transport_key(&self, peer: &str, id: u64) -> ReqResult<super::TKey> {
        self.peer(peer)
            .and_then(|p| p.transports.get(&id).copied())
            .ok_or_else(|| "transport not found".into())
    }

    pub(crate) fn restart_transport(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let key = self.transport_key(peer, msg.id("id")?)?;
        let t = self.transports.get_mut(&key).expect("indexed");
        let old = t.media.ice_ufrag().to_string();
        t.media.restart_ice(now);
        let ice = json!({ "usernameFragment": t.media.ice_ufrag(), "password": t.media.ice_password(), "iceLite": true });
        let new = t.media.ice_ufrag().to_string();
        self.demux.push(super::Demux::RemoveUfrag(old));
        self.demux.push(super::Demux::AddUfrag(new, key));
        Ok(json!({ "iceParameters": ice }))
    }

    pub(crate) fn update_transport(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let key = self.transport_key(peer, msg.id("id")?)?;
        let Some(dtls) = msg.opt_typed::<DtlsParameters>("dtlsParameters")? else {
            return Ok(json!({})); // plainRtpParameters only: nothing for WebRTC transports
        };
        let t = self.transports.get_mut(&key).expect("indexed");
        if t.dtls_applied {
            return Err("DTLS parameters already set".into());
        }
        let fp = remote_fingerprint(&dtls)?;
        let active = our_dtls_active(&dtls)?;
        if let Err(e) = t.media.start_dtls(now, fp, active) {
            // mediasoup closes the transport when this fails.
            self.close_transport(now, key, true);
            return Err(ReqError(e));
        }
        t.dtls_applied = true;
        Ok(json!({}))
    }

    pub(crate) fn close_transport_by_client(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let key = self.transport_key(peer, msg.id("id")?)?;
        self.close_transport(now, key, false);
        Ok(json!({}))
    }

    pub(crate) fn create_producer(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let me = self.peer(peer).expect("joined");
        if me.spy {
            return Err("spy peers cannot create producers".into());
        }
        let id = msg.id("id")?;
        if me.producers.contains_key(&id) {
            return Err("producer already exists".into());
        }
        let kind_s = msg.str("kind")?;
        let kind =
            Kind::parse(kind_s).ok_or_else(|| ReqError(format!("unsupported kind: {kind_s}")))?;
        let tkey = self.transport_key(peer, msg.id("transportId")?)?;
        let params: RtpParameters = msg.typed("rtpParameters")?;
        let paused = msg.opt_bool("paused")?.unwrap_or(false);
        let app_data = msg.opaque("appData");
        let mapping = self.caps.map_producer(kind, &params)?;
        let t = &self.transports[&tkey];
        if t.dir == Dir::Recv {
            return Err("transport is not a send transport".into());
        }
        let limit = self.env.limits.max_producers_per_transport;
        if t.producers.len() >= limit {
            return Err(ReqError(format!(
                "too many producers on this transport (limit {limit})"
            )));
        }
        // SSRCs and MIDs must not collide with another producer of the transport.
        let mine: Vec<u32> = mapping.all_ssrcs().collect();
        for pk in &t.producers {
            let other = &self.producers[pk];
            if let Some(s) = other.mapping.all_ssrcs().find(|s| mine.contains(s)) {
                return Err(ReqError(format!(
                    "wrong RTP parameters: ssrc {s} already used on this transport"
                )));
            }
            if params.mux_id.is_some() && Some(&other.mid) == params.mux_id.as_ref() {
                return Err(ReqError(
                    "wrong RTP parameters: muxId already used on this transport".into(),
                ));
            }
        }
        let pkey = self.new_key();
        let mid = params.mux_id.clone().unwrap_or_else(|| format!("p{pkey}"));
        let streams: Vec<(u32, Option<u32>)> = mapping.streams();
        let t = self.transports.get_mut(&tkey).expect("indexed");
        t.media.add_producer(now, &mid, kind, &streams, &mapping);
        t.producers.push(pkey);
        let rtp_parameters = serde_json::to_value(&params).unwrap_or(Value::Null);
        self.producers.insert(
            pkey,
            Producer {
                id,
                peer: peer.to_string(),
                transport: tkey,
                kind,
                mapping,
                rtp_parameters,
                app_data,
                paused,
                consumers: Vec::new(),
                mid,
                stats: None,
                last_keyframe_request: None,
                keyframe_pending: false,
                counters: Default::default(),
            },
        );
        self.peer_mut(peer)
            .expect("joined")
            .producers
            .insert(id, pkey);
        // A consumer for every other peer, spies included; newConsumer before the answer.
        let others: Vec<String> = self
            .peers
            .iter()
            .filter(|p| p.name != peer)
            .map(|p| p.name.clone())
            .collect();
        for o in others {
            if let Some(cid) = self.create_consumer(&o, pkey) {
                let mut info = self.consumer_info(&self.consumers[&cid]);
                info["peerName"] = json!(peer);
                self.notify(&o, "newConsumer", info);
            }
        }
        Ok(json!({}))
    }

    fn producer_key(&self, peer: &str, id: u64) -> Option<super::PKey> {
        self.peer(peer).and_then(|p| p.producers.get(&id).copied())
    }

    pub(crate) fn update_producer(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let pkey = self
            .producer_key(peer, msg.id("id")?)
            .ok_or("producer not found")?;
        let params: RtpParameters = msg.typed("rtpParameters")?;
        let kind = self.producers[&pkey].kind;
        let mapping = self.caps.map_producer(kind, &params)?;
        let p = self.producers.get_mut(&pkey).expect("indexed");
        let old: Vec<(u32, Option<u32>)> = p.mapping.streams();
        let new: Vec<(u32, Option<u32>)> = mapping.streams();
        p.mapping.codecs = mapping.codecs;
        p.mapping.exts = mapping.exts;
        p.mapping.encodings = mapping.encodings;
        p.rtp_parameters = serde_json::to_value(&params).unwrap_or(Value::Null);
        let (mid, tk) = (p.mid.clone(), p.transport);
        if let Some(t) = self.transports.get_mut(&tk) {
            t.media.remove_producer(now, &mid, &old);
            t.media
                .add_producer(now, &mid, kind, &new, &self.producers[&pkey].mapping);
        }
        // Consumers continue with the same SSRCs; sequence numbers stay continuous.
        let cids = self.producers[&pkey].consumers.clone();
        for cid in cids {
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.fwd.source_changed();
            }
        }
        self.request_keyframe_upstream(now, pkey, true);
        Ok(json!({}))
    }

    pub(crate) fn set_producer_paused(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
        paused: bool,
    ) -> ReqResult<Value> {
        let pkey = self
            .producer_key(peer, msg.id("id")?)
            .ok_or("producer not found")?;
        self.apply_producer_pause(now, pkey, paused);
        Ok(json!({}))
    }

    /// Pause rules (§8.7, without mediasoup's stuck-pause bug): every consumer's peer
    /// hears about the source change, enabled or not.
    pub(crate) fn apply_producer_pause(&mut self, now: Instant, pkey: super::PKey, paused: bool) {
        let p = self.producers.get_mut(&pkey).expect("indexed");
        if p.paused == paused {
            return;
        }
        p.paused = paused;
        let source_peer = p.peer.clone();
        for cid in p.consumers.clone() {
            let Some(c) = self.consumers.get_mut(&cid) else {
                continue;
            };
            if !paused {
                c.fwd.resumed();
            }
            let (rp, app) = (c.peer.clone(), c.app_data.clone());
            let method = if paused {
                "consumerPaused"
            } else {
                "consumerResumed"
            };
            self.notify(
                &rp,
                method,
                json!({"id": cid, "peerName": source_peer, "appData": app}),
            );
        }
        if !paused {
            self.request_keyframe_upstream(now, pkey, true);
        }
    }

    pub(crate) fn close_producer_by_client(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        // Unknown ids are ignored: the client sends closeProducer after closeTransport
        // and after the server closed the producer (§5, §8.11.7).
        if let Some(pkey) = self.producer_key(peer, msg.id("id")?) {
            self.close_producer(now, pkey, true);
        }
        Ok(json!({}))
    }

    fn own_consumer(&self, peer: &str, id: u64) -> ReqResult<&Consumer> {
        self.consumers
            .get(&id)
            .filter(|c| c.peer == peer)
            .ok_or_else(|| "consumer not found".into())
    }

    pub(crate) fn enable_consumer(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let id = msg.id("id")?;
        let c = self.own_consumer(peer, id)?;
        if c.transport.is_some() {
            return Err("consumer already enabled".into());
        }
        let tkey = match msg.opt_id("transportId")? {
            Some(tid) => self.transport_key(peer, tid)?,
            // Seed shape: the peer's most recent receive transport.
            None => self
                .peer(peer)
                .and_then(|p| p.last_recv_transport)
                .ok_or("transport not found")?,
        };
        if self.transports[&tkey].dir == Dir::Send {
            return Err("transport is not a receive transport".into());
        }
        let remote_paused = msg.opt_bool("paused")?.unwrap_or(false);
        let preferred = match msg.opt_str("preferredProfile")? {
            None => None,
            Some(p) if PROFILES.contains(&p) => Some(p.to_string()),
            Some(p) => return Err(ReqError(format!("invalid `preferredProfile`: {p:?}"))),
        };
        let use_rtx = msg
            .body
            .get("rtpSettings")
            .and_then(|s| s.get("useRtx"))
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let c = self.consumers.get_mut(&id).expect("checked");
        c.transport = Some(tkey);
        c.remote_paused = remote_paused;
        c.use_rtx = use_rtx && c.params.rtx_ssrc.is_some();
        if let Some(p) = preferred {
            c.preferred_profile = p;
        }
        c.fwd = Default::default();
        let (kind, ssrc, rtx) = (
            c.kind,
            c.params.ssrc,
            if c.use_rtx { c.params.rtx_ssrc } else { None },
        );
        let pkey = c.producer;
        let t = self.transports.get_mut(&tkey).expect("indexed");
        t.consumers.push(id);
        t.media
            .add_consumer(now, &forward::consumer_mid(id), kind, ssrc, rtx);
        let connected = t.media.is_connected();
        let effective = self.effective_profile(id);
        let c = self.consumers.get_mut(&id).expect("checked");
        c.effective_profile = Some(effective.clone());
        let preferred = c.preferred_profile.clone();
        let paused = self.producers.get(&pkey).map(|p| p.paused).unwrap_or(false);
        if connected {
            self.request_keyframe_upstream(now, pkey, false);
        }
        Ok(
            json!({ "paused": paused, "preferredProfile": preferred, "effectiveProfile": effective }),
        )
    }

    /// The profile a consumer receives: simulcast producers offer their encodings'
    /// profiles; "default" means the best one.
    pub(crate) fn effective_profile(&self, cid: u64) -> String {
        let Some(c) = self.consumers.get(&cid) else {
            return "default".into();
        };
        let Some(p) = self.producers.get(&c.producer) else {
            return "default".into();
        };
        let available = p.mapping.profiles();
        if available.is_empty() {
            return "default".into();
        }
        let rank = |s: &str| match s {
            "low" => 1,
            "medium" => 2,
            "high" => 3,
            _ => 4,
        };
        let want = rank(&c.preferred_profile);
        let mut best: Option<&String> = None;
        for a in &available {
            if rank(a) <= want && best.is_none_or(|b| rank(b) < rank(a)) {
                best = Some(a);
            }
        }
        best.or_else(|| available.iter().min_by_key(|a| rank(a)))
            .cloned()
            .unwrap_or_else(|| "default".into())
    }

    pub(crate) fn set_consumer_paused(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
        paused: bool,
    ) -> ReqResult<Value> {
        let id = msg.id("id")?;
        self.own_consumer(peer, id)?;
        let c = self.consumers.get_mut(&id).expect("checked");
        if c.remote_paused == paused {
            return Ok(json!({}));
        }
        c.remote_paused = paused;
        if !paused {
            c.fwd.resumed();
            let (pkey, enabled) = (c.producer, c.transport.is_some());
            if enabled {
                self.request_keyframe_upstream(now, pkey, false);
            }
        }
        Ok(json!({}))
    }

    pub(crate) fn set_consumer_preferred_profile(
        &mut self,
        _now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let id = msg.id("id")?;
        let profile = msg.str("profile")?;
        if !PROFILES.contains(&profile) {
            return Err(ReqError(format!("invalid `profile`: {profile:?}")));
        }
        self.own_consumer(peer, id)?;
        self.consumers
            .get_mut(&id)
            .expect("checked")
            .preferred_profile = profile.to_string();
        let effective = self.effective_profile(id);
        let c = self.consumers.get_mut(&id).expect("checked");
        if c.transport.is_some() && c.effective_profile.as_deref() != Some(effective.as_str()) {
            c.effective_profile = Some(effective.clone());
            let (rp, sp) = (c.peer.clone(), c.source_peer.clone());
            c.fwd.source_changed();
            self.notify(
                &rp,
                "consumerEffectiveProfileChanged",
                json!({"id": id, "peerName": sp, "profile": effective}),
            );
        }
        Ok(json!({}))
    }

    pub(crate) fn set_stats(
        &mut self,
        now: Instant,
        peer: &str,
        msg: &Message,
    ) -> ReqResult<Value> {
        let id = msg.id("id")?;
        let enable = msg.method.starts_with("enable");
        let interval = Room::interval_ms(msg.opt_f64("interval")?);
        let timer = enable.then(|| StatsTimer::new(now, interval));
        if msg.method.ends_with("TransportStats") {
            let k = self.transport_key(peer, id)?;
            self.transports.get_mut(&k).expect("indexed").stats = timer;
        } else if msg.method.ends_with("ProducerStats") {
            let k = self.producer_key(peer, id).ok_or("producer not found")?;
            self.producers.get_mut(&k).expect("indexed").stats = timer;
        } else {
            self.own_consumer(peer, id)?;
            self.consumers.get_mut(&id).expect("checked").stats = timer;
        }
        Ok(json!({}))
    }
}

#[allow(dead_code)]
fn _assert_caps(_: &RoomCaps) {}
