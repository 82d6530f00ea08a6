//! One function per client message (docs/PROTOCOL.md, "Requests" and
//! "Notifications"). Each receives the message's decoded fields.

use std::net::SocketAddr;

use serde_json::{json, Value};
use str0m::config::Fingerprint;
use str0m::IceCreds;

use super::stats::StatsTimer;
use super::{forward, layers, Consumer, Cx, Peer, Producer, Room, RoomTimer, Transport};
use crate::error::{ReqError, ReqResult};
use crate::ids::{ConsumerId, PeerName, ProducerId, ProducerKey, TransportId, TransportKey};
use crate::ortc::Kind;
use crate::media::AnnouncedCandidate;
use crate::output::Proto;
use crate::media::plain::PlainRemote;
use crate::protocol::request::{
    CreateProducer, CreateTransport, Direction, EnableConsumer, Join, PlainRtpParameters, Profile, StatsOf,
    TransportOptions,
};
use crate::protocol::rtp::{DtlsParameters, RtpParameters};

/// The client's fingerprint we use: the last entry with an algorithm str0m
/// verifies (sha-256, sha-1), like mediasoup picks the last supported one.
fn remote_fingerprint(p: &DtlsParameters) -> ReqResult<Fingerprint> {
    let fp = p
        .fingerprints
        .iter()
        .rev()
        .find(|f| f.algorithm.eq_ignore_ascii_case("sha-256") || f.algorithm.eq_ignore_ascii_case("sha-1"))
        .ok_or("invalid `dtlsParameters`: no sha-256 or sha-1 fingerprint")?;
    let len = if fp.algorithm.eq_ignore_ascii_case("sha-256") { 32 } else { 20 };
    let bytes: Option<Vec<u8>> = fp
        .value
        .split(':')
        .map(|h| if h.len() == 2 { u8::from_str_radix(h, 16).ok() } else { None })
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

/// The candidates a transport announces under mediasoup v2's options: UDP and/or
/// passive TCP, the preferred protocol (UDP unless `preferTcp`) at the higher priority,
/// computed as mediasoup does: 2^24 * 64 + 2^8 * local preference + 255, the local
/// preference 20000, +5000 for the preferred protocol.
fn candidates(announced: &[AnnouncedCandidate], o: TransportOptions) -> Vec<Value> {
    let prefer_tcp = o.prefer_tcp && !o.prefer_udp;
    announced
        .iter()
        .filter(|c| match c.proto {
            Proto::Udp => o.udp,
            Proto::Tcp => o.tcp,
        })
        .map(|c| {
            let preferred = (c.proto == Proto::Tcp) == prefer_tcp;
            let local_pref: u32 = 20_000 + if preferred { 5_000 } else { 0 };
            let mut v = json!({
                "foundation": format!("{}candidate", c.proto.as_str()),
                "priority": (64u32 << 24) + (local_pref << 8) + 255,
                "ip": c.addr.ip().to_string(),
                "port": c.addr.port(),
                "protocol": c.proto.as_str(),
                "type": "host",
                "family": if c.addr.is_ipv4() { "ipv4" } else { "ipv6" },
            });
            if c.proto == Proto::Tcp {
                v["tcpType"] = json!("passive");
            }
            v
        })
        .collect()
}

/// Our DTLS role from the client's: remote "client" -> we are server; "server" or
/// "auto" -> we are client. Returns `active` (we are the DTLS client).
fn our_dtls_active(p: &DtlsParameters) -> ReqResult<bool> {
    match p.role.as_deref() {
        None | Some("auto") | Some("server") => Ok(true),
        Some("client") => Ok(false),
        Some(r) => Err(ReqError(format!("invalid `dtlsParameters.role`: {r:?}"))),
    }
}

impl Room {
    pub(super) fn join(&mut self, cx: &mut Cx, peer: &PeerName, j: Join) -> ReqResult<Value> {
        if self.has_peer(peer) {
            return Err("peer already joined".into());
        }
        if peer.is_empty() {
            return Err("empty peer name".into());
        }
        let limit = self.settings.limits.max_peers_per_room;
        if self.peers.len() >= limit {
            return Err(ReqError(format!("too many peers in the room (limit {limit})")));
        }
        let (caps, legacy) = match &j.rtp_capabilities {
            Some(c) => (self.caps.validate_peer_caps(c)?, false),
            None => (self.caps.all_as_peer_caps(), true),
        };
        let key = self.next_peer;
        self.next_peer += 1;
        self.peer_index.insert(peer.clone(), key);
        self.peers.insert(
            key,
            Peer {
                name: peer.clone(),
                app_data: j.app_data.clone(),
                spy: j.spy,
                legacy,
                caps,
                transports: Default::default(),
                producers: Default::default(),
                consumers: Vec::new(),
                last_recv_transport: None,
            },
        );
        // Consumers for every existing producer of the other peers, in creation order
        // (no notification: they travel in the response).
        let existing: Vec<ProducerKey> =
            self.producers.iter().filter(|(_, p)| p.peer != *peer).map(|(k, _)| *k).collect();
        for pk in existing {
            self.create_consumer(peer, pk);
        }
        if !j.spy {
            for o in self.peers.values().filter(|p| p.name != *peer) {
                self.notify(cx, &o.name, "newPeer", json!({"name": &**peer, "appData": j.app_data, "consumers": []}));
            }
        }
        let me = self.peer(peer).expect("just added");
        let mut peers = Vec::new();
        for other in self.peers.values().filter(|p| p.name != *peer && !p.spy) {
            let consumers: Vec<Value> = me
                .consumers
                .iter()
                .filter_map(|cid| self.consumers.get(cid))
                .filter(|c| c.source_peer == other.name)
                .map(|c| self.consumer_info(c))
                .collect();
            peers.push(json!({"name": &*other.name, "appData": other.app_data, "consumers": consumers}));
        }
        Ok(json!({
            "peers": peers,
            "rtpCapabilities": self.caps.to_json(),
            "mandatoryCodecPayloadTypes": [],
        }))
    }

    pub(super) fn create_transport(&mut self, cx: &mut Cx, peer: &PeerName, c: CreateTransport) -> ReqResult<Value> {
        let me = self.peer(peer).expect("joined");
        if me.transports.contains_key(&c.id) {
            return Err("transport already exists".into());
        }
        let limit = self.settings.limits.max_transports_per_peer;
        if me.transports.len() >= limit {
            return Err(ReqError(format!("too many transports for this peer (limit {limit})")));
        }
        if let Some(plain) = c.plain.get()? {
            return self.create_plain_transport(cx, peer, c.id, plain);
        }
        let (dtls_parameters, direction) = c.dtls_and_direction.get()?;
        let options = c.options.get()?;
        if candidates(&cx.media.env().candidates, options).is_empty() {
            return Err("no candidate for these transport options (TCP is disabled on this server)".into());
        }
        let remote = match &dtls_parameters {
            Some(d) => Some((remote_fingerprint(d)?, our_dtls_active(d)?)),
            None => None,
        };
        // A receive transport runs on the least loaded worker, a send transport on the
        // room's own (docs/ARCHITECTURE.md, "A room on several workers").
        let key = match direction {
            Direction::Recv => cx.keys.transport_on(cx.media.place_recv()),
            Direction::Send => cx.keys.transport(),
        };
        let candidates = candidates(&cx.media.env_of(key.engine_worker()).candidates, options);
        let ice = IceCreds::new();
        cx.media.create(cx.now, key, self.slot, direction, &self.caps, ice.clone(), cx.out);
        let mut role = "auto";
        let dtls_applied = remote.is_some();
        if let Some((fp, active)) = remote {
            cx.media.start_dtls(cx.now, key, fp, active, cx.out).map_err(ReqError)?;
            role = if active { "client" } else { "server" };
        }
        self.transports.insert(
            key,
            Transport {
                id: c.id,
                peer: peer.clone(),
                dir: direction,
                plain: false,
                dtls_applied,
                producers: Vec::new(),
                consumers: Vec::new(),
                stats: None,
                link: None,
                stats_waiting: false,
            },
        );
        let p = self.peer_mut(peer).expect("joined");
        p.transports.insert(c.id, key);
        if direction == Direction::Recv {
            p.last_recv_transport = Some(key);
        }
        Ok(json!({
            "iceParameters": { "usernameFragment": ice.ufrag, "password": ice.pass, "iceLite": true },
            "iceCandidates": candidates,
            "dtlsParameters": {
                "role": role,
                "fingerprints": [{ "algorithm": "sha-256", "value": cx.media.env().fingerprint }],
            },
        }))
    }

    /// A plain RTP transport for a non-browser client (ffmpeg, GStreamer): no ICE, no
    /// DTLS; its producers' packets are accepted from the address it declared (or, with
    /// `plainRtpComedia`, from the first address that sends a declared SSRC).
    fn create_plain_transport(&mut self, cx: &mut Cx, peer: &PeerName, id: TransportId, p: PlainRtpParameters) -> ReqResult<Value> {
        let me = self.peer(peer).expect("joined");
        let limits = self.settings.limits;
        let plain_count = me.transports.values().filter(|k| self.transports.get(k).is_some_and(|t| t.plain)).count();
        if plain_count >= limits.max_plain_transports_per_peer {
            return Err(ReqError(format!(
                "too many plain RTP transports for this peer (limit {})",
                limits.max_plain_transports_per_peer
            )));
        }
        let remote = match p.remote {
            Some((ip, port)) => Some(PlainRemote {
                rtp: SocketAddr::new(ip, port),
                rtcp: SocketAddr::new(ip, p.rtcp_port.unwrap_or(port)),
            }),
            None if limits.plain_rtp_comedia => None,
            None => return Err("`plainRtpParameters` needs `ip` and `port` (this server does not learn them)".into()),
        };
        let key = cx.keys.transport();
        let local = cx.media.create_plain(cx.now, key, self.slot, remote, limits.plain_rtp_comedia);
        self.transports.insert(
            key,
            Transport {
                id,
                peer: peer.clone(),
                dir: Direction::Send,
                plain: true,
                dtls_applied: true,
                producers: Vec::new(),
                consumers: Vec::new(),
                stats: None,
                link: None,
                stats_waiting: false,
            },
        );
        self.peer_mut(peer).expect("joined").transports.insert(id, key);
        Ok(json!({ "plainRtpParameters": { "ip": local.ip().to_string(), "port": local.port() } }))
    }

    pub(super) fn transport_key(&self, peer: &str, id: TransportId) -> ReqResult<TransportKey> {
        self.peer(peer)
            .and_then(|p| p.transports.get(&id).copied())
            .ok_or_else(|| "transport not found".into())
    }

    pub(super) fn restart_transport(&mut self, cx: &mut Cx, peer: &PeerName, id: TransportId) -> ReqResult<Value> {
        let key = self.transport_key(peer, id)?;
        let ice = IceCreds::new();
        if !cx.media.restart_ice(cx.now, key, ice.clone(), cx.out) {
            return Err("transport not found".into());
        }
        Ok(json!({ "iceParameters": { "usernameFragment": ice.ufrag, "password": ice.pass, "iceLite": true } }))
    }

    pub(super) fn update_transport(
        &mut self,
        cx: &mut Cx,
        peer: &PeerName,
        id: TransportId,
        dtls: Option<DtlsParameters>,
        plain: Option<PlainRtpParameters>,
    ) -> ReqResult<Value> {
        let key = self.transport_key(peer, id)?;
        if self.transports[&key].plain {
            let Some(PlainRtpParameters { remote: Some((ip, port)), rtcp_port }) = plain else {
                return Ok(json!({}));
            };
            let remote = PlainRemote { rtp: SocketAddr::new(ip, port), rtcp: SocketAddr::new(ip, rtcp_port.unwrap_or(port)) };
            cx.media.set_plain_remote(key, remote);
            return Ok(json!({}));
        }
        let Some(dtls) = dtls else {
            return Ok(json!({})); // plainRtpParameters only: nothing for WebRTC transports
        };
        if self.transports[&key].dtls_applied {
            return Err("DTLS parameters already set".into());
        }
        let fp = remote_fingerprint(&dtls)?;
        let active = our_dtls_active(&dtls)?;
        if let Err(e) = cx.media.start_dtls(cx.now, key, fp, active, cx.out) {
            // mediasoup closes the transport when this fails.
            self.close_transport(cx, key, true);
            return Err(ReqError(e));
        }
        self.transports.get_mut(&key).expect("indexed").dtls_applied = true;
        Ok(json!({}))
    }

    pub(super) fn create_producer(&mut self, cx: &mut Cx, peer: &PeerName, c: CreateProducer) -> ReqResult<Value> {
        let me = self.peer(peer).expect("joined");
        if me.spy {
            return Err("spy peers cannot create producers".into());
        }
        if me.producers.contains_key(&c.id) {
            return Err("producer already exists".into());
        }
        let kind_s = c.kind.get()?;
        let kind = Kind::parse(&kind_s).ok_or_else(|| ReqError(format!("unsupported kind: {kind_s}")))?;
        let tkey = self.transport_key(peer, c.transport_id.get()?)?;
        let rtp_parameters = c.rtp_parameters.get()?;
        let paused = c.paused.get()?;
        let mapping = self.caps.map_producer(kind, &rtp_parameters)?;
        let t = &self.transports[&tkey];
        if t.dir == Direction::Recv {
            return Err("transport is not a send transport".into());
        }
        let limit = self.settings.limits.max_producers_per_transport;
        if t.producers.len() >= limit {
            return Err(ReqError(format!("too many producers on this transport (limit {limit})")));
        }
        // SSRCs and MIDs must not collide with another producer of the transport.
        let mine: Vec<u32> = mapping.all_ssrcs().collect();
        for pk in &t.producers {
            let other = &self.producers[pk];
            if let Some(s) = other.mapping.all_ssrcs().find(|s| mine.contains(s)) {
                return Err(ReqError(format!("wrong RTP parameters: ssrc {s} already used on this transport")));
            }
            if rtp_parameters.mux_id.is_some() && Some(&other.mid) == rtp_parameters.mux_id.as_ref() {
                return Err(ReqError("wrong RTP parameters: muxId already used on this transport".into()));
            }
        }
        let pkey = cx.keys.producer();
        let mid = rtp_parameters.mux_id.clone().unwrap_or_else(|| format!("p{}", pkey.0));
        cx.media.add_producer(cx.now, tkey, &mid, kind, &mapping.streams(), &mapping, cx.out);
        // A producer's SSRCs are the browser's; consumers' fresh SSRCs avoid them.
        self.ssrcs.extend(mine);
        self.transports.get_mut(&tkey).expect("indexed").producers.push(pkey);
        self.producers.insert(
            pkey,
            Producer {
                id: c.id,
                peer: peer.clone(),
                transport: tkey,
                kind,
                mapping,
                app_data: c.app_data,
                paused,
                consumers: Vec::new(),
                mid,
                stats: None,
                last_keyframe_request: None,
                keyframe_pending: false,
                loss: Vec::new(),
                levels: Default::default(),
                speech: Default::default(),
                counters: Default::default(),
                meter: layers::LayerMeter::new(cx.now),
            },
        );
        self.peer_mut(peer).expect("joined").producers.insert(c.id, pkey);
        self.arm_level_timers(cx.now);
        // A consumer for every other peer, spies included; newConsumer before the answer.
        let others: Vec<PeerName> = self.peers.values().filter(|p| p.name != *peer).map(|p| p.name.clone()).collect();
        for o in others {
            if let Some(cid) = self.create_consumer(&o, pkey) {
                let info = self.consumer_info(&self.consumers[&cid]);
                self.notify(cx, &o, "newConsumer", info);
            }
        }
        Ok(json!({}))
    }

    pub(super) fn producer_key(&self, peer: &str, id: ProducerId) -> Option<ProducerKey> {
        self.peer(peer).and_then(|p| p.producers.get(&id).copied())
    }

    pub(super) fn update_producer(
        &mut self,
        cx: &mut Cx,
        peer: &PeerName,
        id: ProducerId,
        params: &RtpParameters,
    ) -> ReqResult<Value> {
        let pkey = self.producer_key(peer, id).ok_or("producer not found")?;
        let kind = self.producers[&pkey].kind;
        let mapping = self.caps.map_producer(kind, params)?;
        let p = self.producers.get_mut(&pkey).expect("indexed");
        let old = p.mapping.streams();
        for s in p.mapping.all_ssrcs() {
            self.ssrcs.remove(&s);
        }
        p.mapping.codecs = mapping.codecs;
        p.mapping.exts = mapping.exts;
        p.mapping.encodings = mapping.encodings;
        p.loss.clear();
        self.ssrcs.extend(p.mapping.all_ssrcs());
        let (mid, tk) = (p.mid.clone(), p.transport);
        cx.media.remove_producer(cx.now, tk, &mid, &old, cx.out);
        let p = &self.producers[&pkey];
        cx.media.add_producer(cx.now, tk, &mid, kind, &p.mapping.streams(), &p.mapping, cx.out);
        // Consumers continue with the same SSRCs; sequence numbers stay continuous.
        for cid in &p.consumers {
            if let Some(c) = self.consumers.get_mut(cid) {
                c.fwd.source_changed();
            }
        }
        self.request_keyframe_upstream(cx, pkey, true);
        Ok(json!({}))
    }

    /// Pause rules (without mediasoup's stuck-pause bug): every consumer's peer hears
    /// about the source change, enabled or not.
    pub(super) fn apply_producer_pause(&mut self, cx: &mut Cx, pkey: ProducerKey, paused: bool) {
        let p = self.producers.get_mut(&pkey).expect("indexed");
        if p.paused == paused {
            return;
        }
        p.paused = paused;
        let source_peer = p.peer.clone();
        let method = if paused { "consumerPaused" } else { "consumerResumed" };
        for cid in self.producers[&pkey].consumers.clone() {
            let Some(c) = self.consumers.get_mut(&cid) else {
                continue;
            };
            if !paused {
                c.fwd.resumed();
                if let Some(tk) = c.transport {
                    self.adapt_soon(cx.now, tk);
                }
            }
            let Some(c) = self.consumers.get(&cid) else { continue };
            if c.streamer.is_some() {
                continue;
            }
            let (rp, app) = (c.peer.clone(), c.app_data.clone());
            self.notify(cx, &rp, method, json!({"id": cid.0, "peerName": &*source_peer, "appData": app}));
        }
        if !paused {
            self.request_keyframe_upstream(cx, pkey, true);
        }
    }

    fn own_consumer(&self, peer: &str, id: ConsumerId) -> ReqResult<&Consumer> {
        self.consumers
            .get(&id)
            .filter(|c| &*c.peer == peer)
            .ok_or_else(|| "consumer not found".into())
    }

    pub(super) fn enable_consumer(&mut self, cx: &mut Cx, peer: &PeerName, e: EnableConsumer) -> ReqResult<Value> {
        let c = self.own_consumer(peer, e.id)?;
        if c.transport.is_some() {
            return Err("consumer already enabled".into());
        }
        let tkey = match e.transport_id.get()? {
            Some(tid) => self.transport_key(peer, tid)?,
            // Seed shape: the peer's most recent receive transport.
            None => self.peer(peer).and_then(|p| p.last_recv_transport).ok_or("transport not found")?,
        };
        if self.transports[&tkey].dir == Direction::Send {
            return Err("transport is not a receive transport".into());
        }
        let remote_paused = e.paused.get()?;
        let preferred = e.preferred_profile.get()?;
        let c = self.consumers.get_mut(&e.id).expect("checked");
        c.transport = Some(tkey);
        c.remote_paused = remote_paused;
        if let Some(p) = preferred {
            c.preferred_profile = p;
        }
        c.fwd = Default::default();
        let rtx = if e.use_rtx { c.params.rtx_ssrc } else { None };
        let (kind, ssrc, pkey) = (c.kind, c.params.ssrc, c.producer);
        let clock_rate = c.params.media_pts.first().and_then(|pt| self.caps.codec_by_pt(*pt)).map_or(90_000, |rc| rc.clock_rate);
        self.transports.get_mut(&tkey).expect("indexed").consumers.push(e.id);
        cx.media.add_consumer(cx.now, tkey, &forward::consumer_mid(e.id), kind, ssrc, rtx, clock_rate, cx.out);
        let effective = self.effective_profile(e.id);
        let c = self.consumers.get_mut(&e.id).expect("checked");
        c.effective_profile = Some(effective.clone());
        let preferred = c.preferred_profile;
        let paused = self.producers.get(&pkey).map(|p| p.paused).unwrap_or(false);
        if cx.media.is_connected(tkey) {
            self.request_keyframe_upstream(cx, pkey, false);
        }
        self.adapt_soon(cx.now, tkey);
        Ok(json!({ "paused": paused, "preferredProfile": preferred.as_str(), "effectiveProfile": effective }))
    }

    /// The profile a consumer receives: simulcast producers offer their encodings'
    /// profiles; "default" means the best one.
    fn effective_profile(&self, cid: ConsumerId) -> String {
        let Some(c) = self.consumers.get(&cid) else {
            return "default".into();
        };
        let Some(p) = self.producers.get(&c.producer) else {
            return "default".into();
        };
        let available: Vec<Profile> = p.mapping.profiles().iter().filter_map(|s| Profile::parse(s)).collect();
        let want = c.preferred_profile;
        let best = available.iter().filter(|a| **a <= want).max().or_else(|| available.iter().min());
        best.map(|p| p.as_str().to_string()).unwrap_or_else(|| "default".into())
    }

    pub(super) fn set_consumer_paused(
        &mut self,
        cx: &mut Cx,
        peer: &PeerName,
        id: ConsumerId,
        paused: bool,
    ) -> ReqResult<Value> {
        self.own_consumer(peer, id)?;
        let c = self.consumers.get_mut(&id).expect("checked");
        if c.remote_paused == paused {
            return Ok(json!({}));
        }
        c.remote_paused = paused;
        if !paused {
            c.fwd.resumed();
            let (pkey, transport) = (c.producer, c.transport);
            if let Some(tk) = transport {
                self.request_keyframe_upstream(cx, pkey, false);
                self.adapt_soon(cx.now, tk);
            }
        }
        Ok(json!({}))
    }

    pub(super) fn set_consumer_preferred_profile(
        &mut self,
        cx: &mut Cx,
        peer: &PeerName,
        id: ConsumerId,
        profile: Profile,
    ) -> ReqResult<Value> {
        self.own_consumer(peer, id)?;
        let c = self.consumers.get_mut(&id).expect("checked");
        c.preferred_profile = profile;
        if let (Some(tk), Some(_)) = (c.transport, c.choice.target) {
            // Bandwidth chooses the layer (adapt.rs): it reconsiders with the new cap.
            self.adapt_soon(cx.now, tk);
            return Ok(json!({}));
        }
        let effective = self.effective_profile(id);
        let c = self.consumers.get_mut(&id).expect("checked");
        if c.transport.is_some() && c.effective_profile.as_deref() != Some(effective.as_str()) {
            c.effective_profile = Some(effective.clone());
            let (rp, sp) = (c.peer.clone(), c.source_peer.clone());
            c.fwd.source_changed();
            self.notify(
                cx,
                &rp,
                "consumerEffectiveProfileChanged",
                json!({"id": id.0, "peerName": &*sp, "profile": effective}),
            );
        }
        Ok(json!({}))
    }

    pub(super) fn set_stats(
        &mut self,
        cx: &mut Cx,
        peer: &PeerName,
        of: StatsOf,
        enable: bool,
        interval_ms: Option<f64>,
    ) -> ReqResult<Value> {
        let timer = enable.then(|| StatsTimer::new(cx.now, Room::interval(interval_ms)));
        let next = timer.as_ref().map(|t| t.next);
        match of {
            StatsOf::Transport(id) => {
                let k = self.transport_key(peer, id)?;
                self.transports.get_mut(&k).expect("indexed").stats = timer;
                self.timers.set(RoomTimer::TransportStats(k), next);
            }
            StatsOf::Producer(id) => {
                let k = self.producer_key(peer, id).ok_or("producer not found")?;
                self.producers.get_mut(&k).expect("indexed").stats = timer;
                self.timers.set(RoomTimer::ProducerStats(k), next);
            }
            StatsOf::Consumer(id) => {
                self.own_consumer(peer, id)?;
                self.consumers.get_mut(&id).expect("checked").stats = timer;
                self.timers.set(RoomTimer::ConsumerStats(id), next);
            }
        }
        Ok(json!({}))
    }
}
