//! Bandwidth adaptation in the room (docs/ARCHITECTURE.md, "Bandwidth adaptation"): each
//! receive transport's estimate is shared among its video consumers, each consumer gets
//! the best layer its share carries (`layers.rs` decides), a consumer nothing fits for
//! is stopped, and a single-layer producer is asked (REMB) to come down to what its
//! slowest consumer carries, not below `minProducerBitrate`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::layers::{self, with_margin, Change};
use super::{Cx, Room, RoomTimer};
use crate::config::LogLevel;
use crate::ids::{ConsumerId, ProducerKey, TransportKey};
use crate::media::BweSource;
use crate::ortc::Kind;
use crate::protocol::request::{Direction, Profile};

/// How often a receive transport's consumers are reconsidered.
pub const ADAPT_INTERVAL: Duration = Duration::from_millis(500);
/// How often a single-layer producer gets its limit.
pub const REMB_INTERVAL: Duration = Duration::from_secs(1);
/// What a consumer of a single-layer producer would like: the producer's rate follows
/// the limit it is given, so its current rate says nothing of what it could send; the
/// estimator probes for this much (a 720p camera's usual ceiling).
const SINGLE_LAYER_WANT: u64 = 2_500_000;
/// Share of a link's estimate planned for media: the rest is for resends and probes.
const HEADROOM: f64 = 0.9;
/// The rate a single-layer producer is asked not to exceed when nothing limits it.
const NO_LIMIT: u64 = 100_000_000;
/// Estimates of a transport without transport-cc feedback or REMB, from its receiver
/// reports' loss: down by half the loss above 10 %, up 8 % below 2 %, once a second.
const LOSS_STEP: Duration = Duration::from_secs(1);
const LOSS_DOWN: f32 = 0.10;
const LOSS_UP: f32 = 0.02;
const MIN_ESTIMATE: u64 = 30_000;
/// While its consumers would like more than its estimate, a transport's estimator is
/// asked this often to probe for it: str0m probes when the wanted rate rises above the
/// estimate, and an application-limited link (a consumer held on a low layer sends far
/// below its estimate) otherwise shows little more than it carries — an estimate would
/// stay where a limit left it after the limit is gone, and a consumer on the best layer
/// would be moved down by the layer's next burst.
const PROBE_INTERVAL: Duration = Duration::from_secs(3);
/// An estimate that has not moved by 1 % for this long while a consumer gets less than
/// it would like is stuck: after losses on an application-limited link, str0m's
/// estimator stays loss-limited at 1.5x what is sent and refuses to probe (seen here: an
/// estimate fixed at 277 kbit/s for 20 s after a 400 kbit/s limit was lifted). The
/// estimator is restarted from that estimate, and its start-up probes find the link.
const STUCK_AFTER: Duration = Duration::from_secs(8);

/// Where a link estimate comes from (a transport-cc estimate wins once seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Twcc,
    Remb,
    Loss,
}

/// What the link toward a receive transport's browser carries.
#[derive(Debug, Clone)]
pub struct Link {
    /// Bits per second.
    pub estimate: u64,
    pub source: Source,
    /// The worst receiver-report loss since the last loss step, and when that was.
    loss: f32,
    loss_at: Instant,
    /// When the estimator may next be asked to probe for more (see `PROBE_INTERVAL`).
    probe_at: Instant,
    /// Since when the estimate has stayed within 1 % of `steady` (see `STUCK_AFTER`).
    steady: u64,
    steady_since: Instant,
}

impl Link {
    fn new(estimate: u64, source: Source, now: Instant) -> Link {
        Link { estimate, source, loss: 0.0, loss_at: now, probe_at: now, steady: estimate, steady_since: now }
    }
}

impl Room {
    fn adapting(&self) -> bool {
        self.settings.adapt.enable_bwe
    }

    /// Reconsider a receive transport's consumers soon (an estimate came, a consumer was
    /// enabled or resumed, a preference changed).
    pub(super) fn adapt_soon(&mut self, now: Instant, tk: TransportKey) {
        if !self.adapting() {
            return;
        }
        let soon = now + Duration::from_millis(50);
        if self.timers.get(RoomTimer::Adapt(tk)).is_none_or(|t| t > soon) {
            self.timers.set(RoomTimer::Adapt(tk), Some(soon));
        }
    }

    /// An estimate of a receive transport's link arrived from its engine.
    pub(super) fn on_estimate(&mut self, cx: &mut Cx, tk: TransportKey, estimate: u64, source: BweSource) {
        let Some(t) = self.transports.get_mut(&tk) else { return };
        let source = match source {
            BweSource::Twcc => Source::Twcc,
            BweSource::Remb => Source::Remb,
        };
        let first = t.link.is_none();
        let l = t.link.get_or_insert(Link::new(estimate, source, cx.now));
        if source == Source::Twcc || l.source != Source::Twcc {
            l.estimate = estimate;
            l.source = source;
            if estimate.abs_diff(l.steady) * 100 > l.steady {
                l.steady = estimate;
                l.steady_since = cx.now;
            }
        }
        if first {
            self.adapt_soon(cx.now, tk);
        }
    }

    /// A consumer stream's receiver-report loss (0..1): the estimate of a link that
    /// has no other.
    pub(super) fn on_loss(&mut self, tk: TransportKey, loss: f32) {
        if let Some(l) = self.transports.get_mut(&tk).and_then(|t| t.link.as_mut()) {
            l.loss = l.loss.max(loss);
        }
    }

    /// Decide every video consumer of a receive transport, then ask its estimator to
    /// probe for what they would like.
    pub(super) fn adapt(&mut self, cx: &mut Cx, tk: TransportKey) {
        let now = cx.now;
        let floor = self.settings.adapt.min_producer_bitrate;
        let initial = self.settings.adapt.initial_outgoing_bitrate;
        let Some(t) = self.transports.get_mut(&tk) else { return };
        if t.dir != Direction::Recv || t.plain {
            return;
        }
        let connected = cx.media.is_connected(tk);
        // The estimate; a link with neither transport-cc nor REMB lives on loss.
        let link = match &mut t.link {
            Some(l) => {
                if l.source == Source::Loss && now.saturating_duration_since(l.loss_at) >= LOSS_STEP {
                    if l.loss > LOSS_DOWN {
                        l.estimate = ((l.estimate as f64) * (1.0 - 0.5 * l.loss as f64)) as u64;
                    } else if l.loss < LOSS_UP {
                        l.estimate = (l.estimate as f64 * 1.08) as u64;
                    }
                    l.estimate = l.estimate.clamp(MIN_ESTIMATE, NO_LIMIT);
                    l.loss = 0.0;
                    l.loss_at = now;
                }
                Some(l.clone())
            }
            None if connected => {
                t.link = Some(Link::new(initial, Source::Loss, now));
                None
            }
            None => None,
        };
        let cids = t.consumers.clone();
        let mut audio = 0u64;
        // (consumer, its ranked layers, the best rank it may have, what it would like)
        let mut video: Vec<(ConsumerId, Vec<(u32, u64)>, usize, u64)> = Vec::new();
        let mut single_layer = Vec::new();
        for cid in &cids {
            let Some(c) = self.consumers.get(cid) else { continue };
            let Some(p) = self.producers.get(&c.producer) else { continue };
            if c.transport != Some(tk) || c.remote_paused || p.paused {
                continue;
            }
            if c.kind == Kind::Audio {
                audio += p.meter.bitrate(0, now);
                continue;
            }
            let n = p.mapping.encodings.len().max(1);
            let mut ranked = p.meter.ranked(n, now);
            let cap = cap_rank(c.preferred_profile, ranked.len());
            let mut want = with_margin(ranked.get(cap.min(ranked.len().saturating_sub(1))).map_or(0, |r| r.1));
            if n == 1 {
                want = want.max(SINGLE_LAYER_WANT);
                // A single layer comes down by REMB as far as the floor: it fits any
                // share above the floor (and would like its whole rate).
                if let Some(r) = ranked.first_mut() {
                    r.1 = r.1.min(floor);
                }
                single_layer.push(c.producer);
            }
            video.push((*cid, ranked, cap, want));
        }
        if video.is_empty() {
            return; // re-armed when a consumer is enabled or resumed
        }
        self.timers.set(RoomTimer::Adapt(tk), Some(now + ADAPT_INTERVAL));
        let Some(link) = link else {
            return; // no estimate yet: the preferred profile decides
        };
        let demands: Vec<u64> = video.iter().map(|v| v.3).collect();
        // Headroom for resends and probes: the engine's pacer sends everything, resends
        // included, at 1.1x the estimate, so media planned at the estimate would queue.
        let budget = ((link.estimate as f64 * HEADROOM) as u64).saturating_sub(audio);
        let shares = layers::shares(budget, &demands);
        let mut current = audio;
        // Whether a consumer gets less than it would like (stopped, or below its cap).
        let mut short = false;
        for ((cid, ranked, cap, _), share) in video.iter().zip(&shares) {
            let Some(c) = self.consumers.get_mut(cid) else { continue };
            c.share = Some(*share);
            let was_stopped = c.choice.stopped;
            let change = c.choice.decide(now, ranked, *cap, *share);
            short |= c.choice.stopped || c.choice.target.is_some_and(|l| ranked.iter().position(|r| r.0 == l) < Some(*cap));
            if let Some(l) = c.choice.target {
                current += ranked.iter().find(|r| r.0 == l).map_or(0, |r| r.1);
            } else if c.choice.stopped {
                // Probe for the lowest layer: the engine pads up to it (never above its
                // estimate), so the estimate can grow back to where the layer fits.
                current += ranked.first().map_or(0, |r| with_margin(r.1));
            }
            if let Some(ch) = change {
                let (id, peer) = (self.id.clone(), c.peer.clone());
                cx.out.log(LogLevel::Debug, module_path!(), || {
                    format!(
                        "room {id}: consumer {} of peer {peer}: {ch:?} (share {share} of {} bit/s by {:?}, layers {ranked:?})",
                        cid.0, link.estimate, link.source
                    )
                });
            }
            let Some(c) = self.consumers.get_mut(cid) else { continue };
            match change {
                Some(Change::Switch(l)) => {
                    if was_stopped {
                        c.fwd.resumed();
                    }
                    if c.fwd.layer != Some(l) || was_stopped {
                        let pk = c.producer;
                        self.request_keyframe_upstream(cx, pk, false);
                    }
                }
                Some(Change::Stop) => {
                    // A restart starts afresh, at a keyframe of the chosen layer; nothing
                    // sent before is resent.
                    c.fwd.layer = None;
                    if let Some(ctk) = c.transport {
                        cx.media.forget_queued(now, ctk, &super::forward::consumer_mid(*cid), cx.out);
                    }
                    self.effective_changed(cx, *cid, "none");
                }
                None => {
                    // Layers are named by measured rank, and ranks move as a browser's
                    // layers ramp up: the consumer's peer hears of a new name.
                    let (pk, fwd) = (c.producer, c.fwd.layer);
                    if let Some(name) = fwd.filter(|_| ranked.len() > 1).and_then(|l| self.layer_name(pk, l, now)) {
                        self.effective_changed(cx, *cid, &name);
                    }
                }
            }
        }
        for pk in single_layer {
            if self.timers.get(RoomTimer::Remb(pk)).is_none() {
                self.timers.set(RoomTimer::Remb(pk), Some(now));
            }
        }
        // Keep the media flowing; probe for what every consumer would like.
        let mut desired = (audio + demands.iter().sum::<u64>()).max(current);
        if let Some(l) = self.transports.get_mut(&tk).and_then(|t| t.link.as_mut()) {
            if short && l.source == Source::Twcc && now.saturating_duration_since(l.steady_since) >= STUCK_AFTER {
                l.steady_since = now;
                let (id, e) = (self.id.clone(), l.estimate);
                cx.out.log(LogLevel::Debug, module_path!(), || format!("room {id}: transport {}: estimate stuck at {e} bit/s: estimator restarted", tk.0));
                cx.media.restart_bwe(now, tk, e, cx.out);
            }
            if desired > l.estimate && now >= l.probe_at {
                // A rise of the wanted rate is what makes str0m probe: the next pass
                // brings it back down (the baseline of the next rise).
                desired += 1;
                l.probe_at = now + PROBE_INTERVAL;
            }
        }
        cx.media.set_bitrate(now, tk, current, desired, cx.out);
    }

    /// Ask a single-layer video producer to send no more than its slowest consumer's
    /// share (never below `minProducerBitrate`).
    pub(super) fn limit_producer(&mut self, cx: &mut Cx, pk: ProducerKey) {
        let floor = self.settings.adapt.min_producer_bitrate;
        let Some(p) = self.producers.get(&pk) else { return };
        if p.kind != Kind::Video || p.mapping.encodings.len() > 1 || p.consumers.is_empty() {
            return;
        }
        let limit = p
            .consumers
            .iter()
            .filter_map(|cid| self.consumers.get(cid))
            .filter(|c| c.transport.is_some() && !c.remote_paused)
            .filter_map(|c| c.share)
            .map(|s| s.max(floor))
            .min()
            .unwrap_or(NO_LIMIT);
        let (tk, ssrcs): (TransportKey, Vec<u32>) = (p.transport, p.mapping.encodings.iter().filter_map(|e| e.ssrc).collect());
        for s in ssrcs {
            cx.media.request_remb(cx.now, tk, s, limit, cx.out);
        }
        self.timers.set(RoomTimer::Remb(pk), Some(cx.now + REMB_INTERVAL));
    }

    /// The name of what a consumer now forwards (`consumerEffectiveProfileChanged`): a
    /// simulcast layer is named by its measured rank among the active layers (the
    /// lowest-rate one "low", then "medium", "high"), "none" when stopped.
    pub(super) fn layer_name(&self, pk: ProducerKey, layer: u32, now: Instant) -> Option<String> {
        let p = self.producers.get(&pk)?;
        let mut labels: Vec<Profile> = p.mapping.profiles().iter().filter_map(|s| Profile::parse(s)).collect();
        labels.sort();
        let ranked = p.meter.ranked(p.mapping.encodings.len().max(1), now);
        let rank = ranked.iter().position(|r| r.0 == layer);
        match rank.and_then(|r| labels.get(r)) {
            Some(l) => Some(l.as_str().to_string()),
            None => p.mapping.encodings.get(layer as usize).and_then(|e| e.profile.clone()),
        }
    }

    /// Tell the consumer's peer what it now receives, if that changed.
    pub(super) fn effective_changed(&mut self, cx: &mut Cx, cid: ConsumerId, profile: &str) {
        let Some(c) = self.consumers.get_mut(&cid) else { return };
        if c.effective_profile.as_deref() == Some(profile) || c.streamer.is_some() {
            return;
        }
        c.effective_profile = Some(profile.to_string());
        let (rp, sp) = (c.peer.clone(), c.source_peer.clone());
        self.notify(cx, &rp, "consumerEffectiveProfileChanged", json!({"id": cid.0, "peerName": &*sp, "profile": profile}));
    }
}

/// The best rank (0 = lowest rate) of `n` active layers a preferred profile allows.
fn cap_rank(p: Profile, n: usize) -> usize {
    let top = n.saturating_sub(1);
    match p {
        Profile::Low => 0,
        Profile::Medium => top.min(1),
        _ => top,
    }
}

#[cfg(test)]
mod tests {
    //! The room's adaptation on a simulated clock: requests and packets go straight
    //! into a `Room`; the engines exist but never connect, which the decisions do not
    //! need (what a consumer forwards is observable in its state and notifications).

    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::ids::{KeyGen, RoomSlot};
    use crate::media::{cert, AnnouncedCandidate, InPacket, MediaEnv, MediaHost};
    use crate::ortc::RoomCaps;
    use crate::output::{Outbox, Output, Proto};
    use crate::room::RoomSettings;

    const SSRCS: [u32; 3] = [100, 110, 120];
    /// Per-layer rates the fake browser sends, not in layer order (as Chrome does).
    const RATES: [u64; 3] = [1_400_000, 150_000, 480_000];

    struct Sim {
        room: Room,
        media: MediaHost,
        out: Outbox,
        keys: KeyGen,
        now: Instant,
        seq: [u64; 3],
        alice_send: TransportKey,
        bob_recv: TransportKey,
        cid: ConsumerId,
    }

    impl Sim {
        fn with<R>(&mut self, f: impl FnOnce(&mut Room, &mut Cx) -> R) -> R {
            let mut cx = Cx { now: self.now, out: &mut self.out, media: &mut self.media, keys: &mut self.keys };
            f(&mut self.room, &mut cx)
        }

        fn req(&mut self, peer: &str, v: Value) -> Value {
            let bytes = v.to_string().into_bytes();
            self.with(|r, cx| r.handle_request(cx, peer, 1, &bytes));
            let mut answer = Value::Null;
            while let Some(o) = self.out.pop() {
                if let Output::Message(m) = o {
                    if m.request_id == 1 && m.kind == crate::output::EventKind::Response {
                        answer = serde_json::from_str(&m.json).unwrap();
                    }
                }
            }
            assert_eq!(answer["ok"], true, "{v}: {answer}");
            answer["data"].clone()
        }

        /// `consumerEffectiveProfileChanged` profiles sent to bob since the last call.
        fn changes(&mut self) -> Vec<String> {
            let mut v = Vec::new();
            while let Some(o) = self.out.pop() {
                if let Output::Message(m) = o {
                    let j: Value = serde_json::from_str(&m.json).unwrap();
                    if j["method"] == "consumerEffectiveProfileChanged" && &*m.peer == "bob" {
                        v.push(j["profile"].as_str().unwrap().to_string());
                    }
                }
            }
            v
        }

        fn new(encodings: usize) -> Sim {
            let c = cert::generate().unwrap();
            let addr = "127.0.0.1:40000".parse().unwrap();
            let env = Arc::new(MediaEnv {
                ice_addr: addr,
                tcp_addr: None,
                candidates: vec![AnnouncedCandidate { addr, proto: Proto::Udp }],
                fingerprint: cert::fingerprint(&c),
                cert: c,
                transport_timeout: Duration::from_secs(3600),
                bwe_initial: Some(600_000),
            });
            let settings = RoomSettings { limits: Default::default(), max_message_size: 65536, adapt: Default::default() };
            let room = Room::new("r", RoomSlot(0), RoomCaps::from_options(None).unwrap(), settings);
            let mut s = Sim {
                room,
                media: MediaHost::new(0, env, None),
                out: Outbox::default(),
                keys: KeyGen::new(0),
                now: Instant::now(),
                seq: [0; 3],
                alice_send: TransportKey(0),
                bob_recv: TransportKey(0),
                cid: ConsumerId(0),
            };
            s.req("alice", json!({"method": "join", "peerName": "alice", "rtpCapabilities": caps(), "appData": {}}));
            s.req("bob", json!({"method": "join", "peerName": "bob", "rtpCapabilities": caps(), "appData": {}}));
            let fp = json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": (0..32).map(|i| format!("{:02X}", i)).collect::<Vec<_>>().join(":")}]});
            s.req("alice", json!({"method": "createTransport", "id": 1, "direction": "send", "options": {}, "dtlsParameters": fp}));
            s.req("bob", json!({"method": "createTransport", "id": 2, "direction": "recv", "options": {}}));
            let profiles = ["low", "medium", "high"];
            let encs: Vec<Value> = if encodings == 1 {
                vec![json!({"ssrc": SSRCS[0]})]
            } else {
                (0..encodings).map(|i| json!({"ssrc": SSRCS[i], "profile": profiles[i]})).collect()
            };
            let params = json!({"muxId": "0", "codecs": [{"name": "VP8", "mimeType": "video/VP8", "clockRate": 90000, "payloadType": 96,
                "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "transport-cc"}], "parameters": {}}],
                "headerExtensions": [], "encodings": encs, "rtcp": {"cname": "c", "reducedSize": true, "mux": true}});
            s.req("alice", json!({"method": "createProducer", "id": 7, "kind": "video", "transportId": 1, "rtpParameters": params, "paused": false}));
            let cid = *s.room.consumers.keys().next().unwrap();
            s.req("bob", json!({"method": "enableConsumer", "id": cid.0, "transportId": 2, "paused": false, "preferredProfile": "default"}));
            s.cid = cid;
            let keys: Vec<TransportKey> = s.room.transports.keys().copied().collect();
            s.alice_send = *keys.iter().find(|k| s.room.transports[k].dir == Direction::Send).unwrap();
            s.bob_recv = *keys.iter().find(|k| s.room.transports[k].dir == Direction::Recv).unwrap();
            s.changes();
            s
        }

        /// `ms` milliseconds of media: every active layer sends 50 packets per second at
        /// its rate (a keyframe on each layer whose index is in `key` at the start).
        fn media(&mut self, ms: u64, layers: &[usize], key: &[usize]) {
            for k in 0..ms / 20 {
                for &l in layers {
                    let bytes = (RATES[l] / 8 / 50) as usize - layers::PACKET_OVERHEAD;
                    let keyframe = k == 0 && key.contains(&l);
                    let mut payload = vec![0u8; bytes];
                    payload[0] = 0x10;
                    payload[1] = if keyframe { 0x00 } else { 0x01 };
                    self.seq[l] += 1;
                    let p = InPacket {
                        ssrc: SSRCS[l],
                        pt: 96,
                        seq: self.seq[l],
                        timestamp: (self.seq[l] * 1800) as u32,
                        marker: true,
                        ext: Default::default(),
                        payload: Arc::from(payload),
                        arrival: self.now,
                    };
                    let tk = self.alice_send;
                    self.with(|r, cx| r.forward(cx, tk, p));
                }
                self.now += Duration::from_millis(20);
                self.with(|r, cx| r.handle_timeout(cx));
            }
        }

        fn estimate(&mut self, bps: u64) {
            let tk = self.bob_recv;
            self.with(|r, cx| r.on_estimate(cx, tk, bps, BweSource::Twcc));
        }

        fn consumer(&self) -> &crate::room::Consumer {
            &self.room.consumers[&self.cid]
        }

        fn keyframe_requested_since(&self, t: Instant) -> bool {
            let pk = self.consumer().producer;
            self.room.producers[&pk].last_keyframe_request.is_some_and(|k| k >= t)
        }
    }

    fn caps() -> Value {
        RoomCaps::from_options(None).unwrap().to_json()
    }

    #[test]
    fn a_slow_link_moves_the_consumer_down_at_once_and_up_only_after_a_steady_estimate() {
        let mut s = Sim::new(3);
        s.estimate(3_000_000);
        s.media(1000, &[0, 1, 2], &[0, 1, 2]);
        // Measured ranks: layer 1 (150k) low, layer 2 (480k) medium, layer 0 (1.4M) high.
        assert_eq!(s.consumer().choice.target, Some(0), "the best layer fits 3 Mbit/s");
        s.media(500, &[0, 1, 2], &[0]);
        assert_eq!(s.consumer().fwd.layer, Some(0));
        // The link drops to 700 kbit/s: down at once to the medium-rate layer (it fits with
        // the margin), which is asked for a keyframe and forwarded from it.
        s.changes();
        let t = s.now;
        s.estimate(700_000);
        s.media(600, &[0, 1, 2], &[]);
        assert_eq!(s.consumer().choice.target, Some(2));
        assert!(s.keyframe_requested_since(t), "a keyframe of the target is asked for");
        assert_eq!(s.consumer().fwd.layer, Some(0), "no switch before the target's keyframe");
        s.media(100, &[0, 1, 2], &[2]);
        assert_eq!(s.consumer().fwd.layer, Some(2), "switched at the keyframe");
        assert_eq!(s.changes(), ["medium"], "named by its measured rank");
        // The link recovers: the high layer fits again, but up waits for a steady fit.
        s.estimate(3_000_000);
        s.media(2000, &[0, 1, 2], &[]);
        assert_eq!(s.consumer().choice.target, Some(2), "not yet after 2 s");
        s.media(1600, &[0, 1, 2], &[]);
        assert_eq!(s.consumer().choice.target, Some(0), "up after a steady 3 s");
        s.media(100, &[0, 1, 2], &[0]);
        assert_eq!(s.consumer().fwd.layer, Some(0));
        assert_eq!(s.changes(), ["high"]);
    }

    #[test]
    fn a_consumer_short_of_its_best_layer_gets_probes_and_a_stuck_estimate_a_restart() {
        let mut s = Sim::new(3);
        s.estimate(1_000_000);
        s.media(1500, &[0, 1, 2], &[0, 1, 2]);
        let link = |s: &Sim| s.room.transports[&s.bob_recv].link.clone().unwrap();
        assert_ne!(s.consumer().choice.target, Some(0), "the best layer (1.4 Mbit/s) does not fit 1 Mbit/s");
        // Probes every PROBE_INTERVAL: the next one is planned after each.
        let p1 = link(&s).probe_at;
        s.media(3100, &[0, 1, 2], &[]);
        let p2 = link(&s).probe_at;
        assert!(p2 > p1 && p2 <= s.now + PROBE_INTERVAL, "a probe was asked for within the interval");
        // The estimate has not moved since it came: 8 s after, the estimator is restarted
        // (its steadiness is counted again from then), and not again before 8 more.
        let since = link(&s).steady_since;
        s.media(3500, &[0, 1, 2], &[]);
        let restarted = link(&s).steady_since;
        assert!(restarted > since, "restarted once stuck for {STUCK_AFTER:?}");
        s.media(4000, &[0, 1, 2], &[]);
        assert_eq!(link(&s).steady_since, restarted, "not again within {STUCK_AFTER:?}");
        // An estimate that moves is not stuck.
        let before = link(&s).steady_since;
        for k in 0..10 {
            s.estimate(1_000_000 + (k % 2) * 50_000);
            s.media(1000, &[0, 1, 2], &[]);
        }
        assert!(link(&s).steady_since > before + Duration::from_secs(8), "moving estimates keep it fresh");
        assert!(s.now.saturating_duration_since(link(&s).steady_since) < STUCK_AFTER);
    }

    #[test]
    fn nothing_fits_stops_the_video_and_it_restarts_with_a_keyframe() {
        let mut s = Sim::new(3);
        s.estimate(3_000_000);
        s.media(1500, &[0, 1, 2], &[0, 1, 2]);
        s.changes();
        s.estimate(100_000);
        s.media(600, &[0, 1, 2], &[]);
        assert_eq!(s.consumer().choice.target, Some(1), "the lowest layer first");
        assert!(!s.consumer().choice.stopped);
        s.media(100, &[0, 1, 2], &[1]);
        s.media(2000, &[0, 1, 2], &[]);
        assert!(!s.consumer().choice.stopped, "not before 3 s of nothing fitting");
        s.media(1000, &[0, 1, 2], &[]);
        assert!(s.consumer().choice.stopped);
        assert_eq!(s.changes(), ["low", "none"]);
        // While stopped nothing is forwarded to bob (his rewrite state does not move).
        let before = s.consumer().counters.packets;
        s.media(1000, &[0, 1, 2], &[0, 1, 2]);
        assert_eq!(s.consumer().counters.packets, before);
        // 200 kbit/s carries the 150k layer with the margin: restart after 3 s, with a
        // keyframe request, at that layer.
        let t = s.now;
        s.estimate(200_000);
        s.media(2500, &[0, 1, 2], &[]);
        assert!(s.consumer().choice.stopped, "not before the hold");
        s.media(1000, &[0, 1, 2], &[]);
        assert_eq!(s.consumer().choice.target, Some(1));
        assert!(!s.consumer().choice.stopped);
        assert!(s.keyframe_requested_since(t));
        s.media(100, &[0, 1, 2], &[1]);
        assert_eq!(s.consumer().fwd.layer, Some(1));
        assert_eq!(s.changes(), ["low"]);
    }

    #[test]
    fn a_paused_consumer_is_left_out_and_resumes_where_its_share_allows() {
        let mut s = Sim::new(3);
        s.estimate(3_000_000);
        s.media(1500, &[0, 1, 2], &[0, 1, 2]);
        let cid = s.cid.0;
        s.req("bob", json!({"method": "pauseConsumer", "id": cid}));
        s.estimate(100_000);
        s.media(2000, &[0, 1, 2], &[]);
        assert!(!s.consumer().choice.stopped, "a paused consumer is not decided");
        assert_eq!(s.consumer().choice.target, Some(0));
        s.req("bob", json!({"method": "resumeConsumer", "id": cid}));
        s.media(600, &[0, 1, 2], &[]);
        assert_eq!(s.consumer().choice.target, Some(1), "resumed onto a link that carries nothing: the lowest first");
        s.media(3000, &[0, 1, 2], &[]);
        assert!(s.consumer().choice.stopped, "then stopped");
    }

    #[test]
    fn the_preferred_profile_caps_the_layer_by_measured_rank() {
        let mut s = Sim::new(3);
        s.estimate(3_000_000);
        s.media(1500, &[0, 1, 2], &[0, 1, 2]);
        assert_eq!(s.consumer().choice.target, Some(0));
        let cid = s.cid.0;
        s.req("bob", json!({"method": "setConsumerPreferredProfile", "id": cid, "profile": "low"}));
        s.media(600, &[0, 1, 2], &[]);
        assert_eq!(s.consumer().choice.target, Some(1), "low: the lowest-rate layer, whatever its position");
    }

    #[test]
    fn a_single_layer_producer_is_limited_to_its_slowest_consumer_not_below_the_floor() {
        let mut s = Sim::new(1);
        s.estimate(3_000_000);
        s.media(1500, &[0], &[0]);
        assert_eq!(s.consumer().choice.target, Some(0));
        s.estimate(400_000);
        s.media(1500, &[0], &[]);
        let share = s.consumer().share.unwrap();
        assert!((300_000..=400_000).contains(&share), "{share}");
        assert!(!s.consumer().choice.stopped, "above the floor the producer comes down instead");
        // A link below the floor: the consumer's video stops, the producer is not asked
        // below the floor.
        s.estimate(120_000);
        s.media(4000, &[0], &[]);
        assert!(s.consumer().choice.stopped);
        let pk = s.consumer().producer;
        let limit = s.room.producers[&pk]
            .consumers
            .iter()
            .filter_map(|c| s.room.consumers[c].share)
            .map(|x| x.max(s.room.settings.adapt.min_producer_bitrate))
            .min();
        assert_eq!(limit, Some(150_000));
        assert!(s.room.timers.get(RoomTimer::Remb(pk)).is_some(), "the limit is sent every second");
    }
}
