//! One str0m `Rtc` per mediasoup transport: ICE-lite, DTLS, SRTP, RTP in and out.
//!
//! `TransportMedia` wraps the `Rtc` with what the mediasoup v2 protocol needs and str0m
//! does not do by itself (docs/ARCHITECTURE.md, "str0m and the protocol"):
//! * the browser's ICE ufrag is learnt from its first authenticated binding request;
//! * a send transport's `Rtc` is built at its first `createProducer`, when the
//!   browser's header-extension ids are known (str0m fixes them per `Rtc`); datagrams
//!   arriving before are kept (bounded) and replayed;
//! * DTLS records that arrive before the DTLS role is known (`updateTransport`) are
//!   kept and replayed instead of lost;
//! * an RTX stream the browser never signalled is learnt before str0m sees it;
//! * inactivity is watched: a transport silent for `transportTimeout` is dead.
//!
//! Every call that can make str0m produce output takes the [`Outbox`]: datagrams go
//! there as they are produced. Events go to the caller's list, or, for calls made by the
//! control plane, are kept until the next `receive`/`handle_timeout`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::config::Fingerprint;
use str0m::media::{Direction as MediaDirection, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{ExtensionMap, ExtensionValues, RtpWrite, SeqNo, Ssrc, Vp8Patch};
use str0m::bwe::{Bitrate, BweKind};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

use super::codec_table::{room_codec_config, room_ext_map, send_codec_config};
use super::{rtp_peek, BweSource, MediaEnv, MediaEvent, TransportStats};
use crate::net::stun;
use crate::ortc::{Kind, ProducerMapping, RoomCaps};
use crate::output::{Outbox, Proto, Transmit};
use crate::protocol::request::Direction;

/// How long a consumer's sent packets stay available for NACK-triggered resends.
pub const RTX_CACHE_AGE: Duration = Duration::from_secs(1);
/// A consumer's video that has waited this long in the pacer (the estimate fell below
/// what is forwarded, as while a single-layer producer comes down after a REMB) is
/// dropped at the next adaptation pass and a keyframe asked for: str0m would otherwise
/// hold up to 2 s, and a receiver keeps that delay in its jitter buffer for seconds.
pub const PACER_QUEUE_LIMIT: Duration = Duration::from_millis(400);
/// Resends to a consumer stop (queued ones are dropped) while resent bytes exceed this
/// share of everything sent on the stream in the last second: 0.5 lets resends match the
/// media itself, which covers a link losing a quarter of its packets with every late
/// (reordered) packet asked for again, and still bounds what a receiver that NACKs
/// everything can pull to twice its stream. str0m's default, 0.15, starved a 3 % lossy,
/// jittery link (docs/ARCHITECTURE.md, "Forwarding a producer's packets").
pub const RTX_RATIO_CAP: f32 = 0.5;

/// Bound on datagrams kept before the `Rtc` exists / before DTLS can start.
const MAX_EARLY: usize = 128;
/// A browser silent this long when a str0m timer fails is why it failed.
const SILENCE_BEHIND_FAILURE: Duration = Duration::from_secs(5);
/// Bound on events kept from control-plane calls until the next drive.
const MAX_PENDING_EVENTS: usize = 256;

/// A producer stream declared on a send transport, as the RTX learning needs it.
#[derive(Debug, Clone)]
struct RxDecl {
    mid: String,
    rid: Option<String>,
    main: u32,
    rtx: Option<u32>,
    /// The producer's RTX payload types.
    rtx_pts: Vec<u8>,
}

pub struct TransportMedia {
    env: Arc<MediaEnv>,
    dir: Direction,
    creds: IceCreds,
    rtc: Option<Rtc>,
    /// Packets received before `rtc` was built.
    early: VecDeque<(Instant, Proto, SocketAddr, Vec<u8>)>,
    /// DTLS records received before DTLS was started.
    early_dtls: VecDeque<(Instant, Proto, SocketAddr, Vec<u8>)>,
    remote_dtls: Option<(Fingerprint, bool)>,
    dtls_started: bool,
    remote_ufrag: Option<String>,
    remote_addrs: Vec<(Proto, SocketAddr)>,
    connected: bool,
    ice_state: IceConnectionState,
    selected: Option<(Proto, SocketAddr)>,
    next_rtc_timeout: Option<Instant>,
    created: Instant,
    last_rx: Option<Instant>,
    bytes_rx: u64,
    bytes_tx: u64,
    rtt_ms: Option<f64>,
    bwe_bps: Option<u64>,
    /// The consumers' outgoing streams (receive transports): SSRC, mid, video or not.
    tx_streams: Vec<(u32, String, bool)>,
    /// How long the oldest packet waiting in the pacer had waited, at the last look
    /// (every adaptation pass, `set_bitrate`).
    send_queue_ms: Option<u64>,
    dead: Option<String>,
    closed: bool,
    /// Events of control-plane calls, handed out by the next `receive`/`handle_timeout`.
    pending_events: Vec<MediaEvent>,
    /// Streams declared before the Rtc existed (send transports): replayed at build.
    pending_rx: Vec<(String, Kind, Vec<(u32, Option<u32>)>)>,
    /// Every producer stream of a send transport (see `learn_rtx`).
    rx_decls: Vec<RxDecl>,
    /// The id of the sdes:mid header extension in this Rtc's map.
    mid_ext_id: Option<u8>,
}

impl TransportMedia {
    /// A new transport. Receive transports build their `Rtc` now (room ids and PTs);
    /// send transports wait for the first producer.
    pub fn new(
        now: Instant,
        env: &Arc<MediaEnv>,
        dir: Direction,
        caps: &RoomCaps,
        creds: IceCreds,
        out: &mut Outbox,
    ) -> TransportMedia {
        let mut t = TransportMedia {
            env: env.clone(),
            dir,
            creds,
            rtc: None,
            early: VecDeque::new(),
            early_dtls: VecDeque::new(),
            remote_dtls: None,
            dtls_started: false,
            remote_ufrag: None,
            remote_addrs: Vec::new(),
            connected: false,
            ice_state: IceConnectionState::New,
            selected: None,
            next_rtc_timeout: None,
            created: now,
            last_rx: None,
            bytes_rx: 0,
            bytes_tx: 0,
            rtt_ms: None,
            bwe_bps: None,
            tx_streams: Vec::new(),
            send_queue_ms: None,
            dead: None,
            closed: false,
            pending_events: Vec::new(),
            pending_rx: Vec::new(),
            rx_decls: Vec::new(),
            mid_ext_id: None,
        };
        if dir == Direction::Recv {
            t.build(now, room_ext_map(caps), room_codec_config(caps), out);
        }
        t
    }

    fn build(&mut self, now: Instant, exts: ExtensionMap, codecs: str0m::format::CodecConfig, out: &mut Outbox) {
        self.mid_ext_id = exts.id_of(str0m::rtp::Extension::RtpMid);
        let mut cfg = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(self.env.cert.clone())
            .set_local_ice_credentials(self.creds.clone())
            .set_extension_map(exts)
            .set_stats_interval(Some(Duration::from_secs(1)));
        if self.dir == Direction::Recv {
            if let Some(bps) = self.env.bwe_initial {
                cfg = cfg.enable_bwe(Some(Bitrate::bps(bps)));
            }
        }
        *cfg.codec_config() = codecs;
        let mut rtc = cfg.build(now);
        if let Ok(c) = Candidate::host(self.env.ice_addr, "udp") {
            rtc.add_local_candidate(c);
        }
        if let Some(tcp) = self.env.tcp_addr {
            if let Ok(c) = Candidate::builder().tcp().host(tcp).tcptype(TcpType::Passive).build() {
                rtc.add_local_candidate(c);
            }
        }
        self.rtc = Some(rtc);
        // str0m's clock starts in the past: give it "now" before anything is armed.
        self.with_rtc(now, out, |rtc| rtc.handle_input(Input::Timeout(now)).map(|_| ()));
        if self.dir == Direction::Send {
            self.with_rtc(now, out, |rtc| {
                rtc.direct_api().enable_twcc_feedback();
                Ok(())
            });
        }
        if let Some(remote) = self.remote_ufrag.clone() {
            self.set_remote_ufrag(now, remote, out);
        }
        if let Some((fp, active)) = self.remote_dtls.clone() {
            self.start_dtls_now(now, fp, active, out);
        }
        for (mid, kind, streams) in std::mem::take(&mut self.pending_rx) {
            self.declare_rx(now, &mid, kind, &streams, out);
        }
        let early: Vec<_> = self.early.drain(..).collect();
        let mut evs = std::mem::take(&mut self.pending_events);
        for (at, proto, src, data) in early {
            self.process(at.max(now), proto, src, &data, out, &mut evs);
        }
        self.keep_events(evs);
    }

    fn keep_events(&mut self, evs: Vec<MediaEvent>) {
        for e in evs {
            if self.pending_events.len() < MAX_PENDING_EVENTS {
                self.pending_events.push(e);
            }
        }
    }

    /// Run `f` on the Rtc (if built) and drain its output into `out` (str0m's single
    /// mutation rule); events are kept for the next drive. Errors make the transport dead.
    fn with_rtc(&mut self, now: Instant, out: &mut Outbox, f: impl FnOnce(&mut Rtc) -> Result<(), str0m::RtcError>) {
        let Some(rtc) = self.rtc.as_mut() else { return };
        if let Err(e) = f(rtc) {
            self.failed(now, e);
        }
        let mut evs = std::mem::take(&mut self.pending_events);
        self.drain(now, out, &mut evs);
        self.keep_events(evs);
    }

    /// str0m failed: the transport is dead. A failure after a long silence of the
    /// browser (a DTLS handshake that got no answer) is reported as that silence.
    fn failed(&mut self, now: Instant, e: str0m::RtcError) {
        let silent = now.saturating_duration_since(self.last_rx.unwrap_or(self.created));
        let reason = if silent >= SILENCE_BEHIND_FAILURE {
            format!("no traffic for {:.0} s (rtc error: {e})", silent.as_secs_f64())
        } else {
            format!("rtc error: {e}")
        };
        self.dead.get_or_insert(reason);
    }

    /// Drain `poll_output` until the next timeout.
    fn drain(&mut self, now: Instant, out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        let Some(rtc) = self.rtc.as_mut() else { return };
        for _ in 0..100_000 {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_rtc_timeout = Some(t);
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.bytes_tx += t.contents.len() as u64;
                    out.transmit(Transmit {
                        proto: if t.proto == Protocol::Udp { Proto::Udp } else { Proto::Tcp },
                        local: t.source,
                        remote: t.destination,
                        data: t.contents.into(),
                    });
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        evs.push(MediaEvent::Connected);
                    }
                    Event::IceConnectionStateChange(s) => {
                        self.ice_state = s;
                        if s == IceConnectionState::Disconnected && self.connected {
                            // ICE-lite: the browser stopped its consent checks.
                            self.dead.get_or_insert("ICE disconnected".into());
                        }
                    }
                    Event::RtpPacket(p) => evs.push(MediaEvent::Rtp(p.into())),
                    Event::KeyframeRequest(k) => evs.push(MediaEvent::KeyframeRequest { mid: k.mid, kind: k.kind }),
                    Event::EgressBitrateEstimate(k) => {
                        let (estimate, source) = match k {
                            BweKind::Twcc { estimate, .. } => (estimate, BweSource::Twcc),
                            BweKind::Remb { estimate, .. } => (estimate, BweSource::Remb),
                            _ => continue,
                        };
                        self.bwe_bps = Some(estimate.as_u64());
                        evs.push(MediaEvent::Bwe { estimate: estimate.as_u64(), source });
                    }
                    Event::MediaIngressStats(s) => evs.push(MediaEvent::Ingress(s)),
                    Event::MediaEgressStats(s) => evs.push(MediaEvent::Egress(s)),
                    Event::PeerStats(s) => {
                        self.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1000.0);
                        self.bwe_bps = s.bwe_tx.map(|b| b.as_u64());
                        if let Some(pair) = s.selected_candidate_pair {
                            // The pair's own protocol: the TCP listener shares the UDP
                            // socket's address, so the local address cannot tell them apart.
                            let proto = if pair.protocol == Protocol::Udp { Proto::Udp } else { Proto::Tcp };
                            self.selected = Some((proto, pair.remote.addr));
                        }
                    }
                    Event::Closed => {
                        self.dead.get_or_insert("closed by the remote".into());
                    }
                    _ => {}
                },
                Err(e) => {
                    self.failed(now, e);
                    self.next_rtc_timeout = None;
                    return;
                }
            }
        }
    }

    pub fn ice_ufrag(&self) -> &str {
        &self.creds.ufrag
    }

    pub fn ice_password(&self) -> &str {
        &self.creds.pass
    }

    pub fn is_connected(&self) -> bool {
        self.connected && self.dead.is_none() && !self.closed
    }

    /// New local ICE credentials (`restartTransport`); the browser's new ufrag is
    /// learnt from its next authenticated request.
    pub fn restart_ice(&mut self, now: Instant, creds: IceCreds, out: &mut Outbox) {
        self.creds = creds;
        let creds = self.creds.clone();
        self.with_rtc(now, out, |rtc| {
            rtc.direct_api().set_local_ice_credentials(creds);
            Ok(())
        });
    }

    /// Apply the client's DTLS parameters. `active`: we are the DTLS client.
    pub fn start_dtls(&mut self, now: Instant, fp: Fingerprint, active: bool, out: &mut Outbox) -> Result<(), String> {
        if self.dtls_started || self.remote_dtls.is_some() {
            return Err("DTLS parameters already set".into());
        }
        self.remote_dtls = Some((fp.clone(), active));
        if self.rtc.is_some() {
            self.start_dtls_now(now, fp, active, out);
        }
        Ok(())
    }

    fn start_dtls_now(&mut self, now: Instant, fp: Fingerprint, active: bool, out: &mut Outbox) {
        self.with_rtc(now, out, |rtc| {
            let mut api = rtc.direct_api();
            api.set_remote_fingerprint(fp);
            api.start_dtls(active)
        });
        self.dtls_started = true;
        let early: Vec<_> = self.early_dtls.drain(..).collect();
        let mut evs = std::mem::take(&mut self.pending_events);
        for (at, proto, src, data) in early {
            self.process(at.max(now), proto, src, &data, out, &mut evs);
        }
        self.keep_events(evs);
    }

    fn set_remote_ufrag(&mut self, now: Instant, ufrag: String, out: &mut Outbox) {
        self.with_rtc(now, out, |rtc| {
            rtc.direct_api().set_remote_ice_credentials(IceCreds {
                ufrag,
                pass: "unused-by-ice-lite".into(),
            });
            Ok(())
        });
    }

    /// Register a producer's streams (send transports; builds the Rtc on the first).
    pub fn add_producer(
        &mut self,
        now: Instant,
        mid: &str,
        kind: Kind,
        streams: &[(u32, Option<u32>)],
        mapping: &ProducerMapping,
        out: &mut Outbox,
    ) {
        let rtx_pts: Vec<u8> = mapping.codecs.iter().filter_map(|c| c.producer_rtx_pt).collect();
        for (i, (main, rtx)) in streams.iter().enumerate() {
            self.rx_decls.push(RxDecl {
                mid: mid.to_string(),
                rid: (streams.len() > 1).then(|| format!("r{i}")),
                main: *main,
                rtx: *rtx,
                rtx_pts: rtx_pts.clone(),
            });
        }
        if self.rtc.is_none() {
            self.pending_rx.push((mid.to_string(), kind, streams.to_vec()));
            let (exts, codecs) = send_codec_config(kind, mapping);
            self.build(now, exts, codecs, out);
            return;
        }
        self.declare_rx(now, mid, kind, streams, out);
    }

    fn declare_rx(&mut self, now: Instant, mid: &str, kind: Kind, streams: &[(u32, Option<u32>)], out: &mut Outbox) {
        let mid: Mid = mid.into();
        let mk = media_kind(kind);
        self.with_rtc(now, out, |rtc| {
            if rtc.media(mid).is_none() {
                rtc.direct_api().declare_media(mid, mk);
            }
            for (i, (ssrc, rtx)) in streams.iter().enumerate() {
                let rid = (streams.len() > 1).then(|| str0m::media::Rid::from(format!("r{i}").as_str()));
                let mut api = rtc.direct_api();
                let rx = api.expect_stream_rx(Ssrc::from(*ssrc), rtx.map(Ssrc::from), mid, rid);
                if kind == Kind::Audio && rtx.is_none() {
                    rx.suppress_nack(true);
                }
            }
            Ok(())
        });
    }

    pub fn remove_producer(&mut self, now: Instant, mid: &str, streams: &[(u32, Option<u32>)], out: &mut Outbox) {
        self.pending_rx.retain(|(m, _, _)| m != mid);
        self.rx_decls.retain(|d| d.mid != mid);
        let mid: Mid = mid.into();
        self.with_rtc(now, out, |rtc| {
            for (ssrc, _) in streams {
                rtc.direct_api().remove_stream_rx(Ssrc::from(*ssrc));
            }
            rtc.direct_api().remove_media(mid);
            Ok(())
        });
    }

    /// Declare a consumer's outgoing stream (receive transports).
    pub fn add_consumer(&mut self, now: Instant, mid: &str, kind: Kind, ssrc: u32, rtx: Option<u32>, out: &mut Outbox) {
        let mid: Mid = mid.into();
        let mk = media_kind(kind);
        self.with_rtc(now, out, |rtc| {
            if rtc.media(mid).is_none() {
                rtc.direct_api().declare_media(mid, mk);
            }
            let mut api = rtc.direct_api();
            let tx = api.declare_stream_tx(Ssrc::from(ssrc), rtx.map(Ssrc::from), mid, None);
            // Answer NACKs for the last second (libwebrtc keeps at least 1 s of send
            // history too) instead of str0m's 3 s: each cached packet costs ~430 bytes
            // per consumer (the payload itself is shared), the largest part of a video
            // consumer's memory at steady state.
            tx.set_rtx_cache(1024, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
            Ok(())
        });
        self.tx_streams.retain(|s| s.0 != ssrc);
        self.tx_streams.push((ssrc, mid.to_string(), kind == Kind::Video));
    }

    pub fn remove_consumer(&mut self, now: Instant, mid: &str, ssrc: u32, out: &mut Outbox) {
        let mid: Mid = mid.into();
        self.tx_streams.retain(|s| s.0 != ssrc);
        self.with_rtc(now, out, |rtc| {
            rtc.direct_api().remove_stream_tx(Ssrc::from(ssrc));
            rtc.direct_api().remove_media(mid);
            Ok(())
        });
    }

    /// Ask the browser for a keyframe on an incoming stream (PLI, or FIR).
    pub fn request_keyframe(&mut self, now: Instant, ssrc: u32, kind: KeyframeRequestKind, out: &mut Outbox) {
        self.with_rtc(now, out, |rtc| {
            if let Some(rx) = rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
                rx.request_keyframe(kind);
            }
            Ok(())
        });
    }

    /// Ask the browser to send a producer's stream at most `bps` (REMB).
    pub fn request_remb(&mut self, now: Instant, ssrc: u32, bps: u64, out: &mut Outbox) {
        self.with_rtc(now, out, |rtc| {
            if let Some(rx) = rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
                rx.request_remb(Bitrate::bps(bps));
            }
            Ok(())
        });
    }

    /// Whether this engine runs a bandwidth estimator (a receive transport, BWE on).
    fn estimates(&self) -> bool {
        self.dir == Direction::Recv && self.env.bwe_initial.is_some()
    }

    /// What the estimator should keep sending (`minimum`, padding fills the gap) and
    /// probe for (`desired`), in bits per second (receive transports with BWE only).
    pub fn set_bitrate(&mut self, now: Instant, minimum: u64, desired: u64, out: &mut Outbox) {
        if !self.estimates() {
            return;
        }
        let streams = std::mem::take(&mut self.tx_streams);
        // The longest wait in the pacer, as of each stream's last pacer sample (a sample
        // older than a second is not trusted: the stream may have been idle since).
        let mut oldest: Option<Duration> = None;
        let mut late: Vec<String> = Vec::new();
        self.with_rtc(now, out, |rtc| {
            rtc.bwe().set_bitrate(Bitrate::bps(minimum), Bitrate::bps(desired));
            let mut api = rtc.direct_api();
            for (ssrc, mid, video) in &streams {
                let waited = api
                    .stream_tx(&Ssrc::from(*ssrc))
                    .and_then(|tx| tx.queue_info())
                    .filter(|q| now.saturating_duration_since(q.created_at()) < Duration::from_secs(1))
                    .and_then(|q| q.first_unsent().map(|f| q.created_at().saturating_duration_since(f)));
                if let Some(w) = waited {
                    oldest = Some(oldest.map_or(w, |o| o.max(w)));
                    if *video && w > PACER_QUEUE_LIMIT {
                        late.push(mid.clone());
                    }
                }
            }
            Ok(())
        });
        self.tx_streams = streams;
        self.send_queue_ms = Some(oldest.map_or(0, |w| w.as_millis() as u64));
        // Video that waited this long is late for its receiver: drop it and ask its source
        // for a keyframe, rather than add the wait to the receiver's delay for good.
        for mid in late {
            self.forget_queued(now, &mid, out);
            self.keep_events(vec![MediaEvent::QueueDropped { mid }]);
        }
    }

    /// Restart the estimator from `estimate` (bit/s): its state is discarded and it
    /// probes as at start-up (`room/adapt.rs`, `STUCK_AFTER`).
    pub fn restart_bwe(&mut self, now: Instant, estimate: u64, out: &mut Outbox) {
        if !self.estimates() {
            return;
        }
        self.with_rtc(now, out, |rtc| {
            rtc.bwe().reset(Bitrate::bps(estimate));
            Ok(())
        });
    }

    /// Forget what a consumer's stream has queued and could resend: it moved to another
    /// simulcast layer (or stopped), and the old layer's packets, still paced out or
    /// resent on NACK, would take the link's room from the new layer's keyframe
    /// (docs/ARCHITECTURE.md, "Bandwidth adaptation"). str0m empties a stream's send
    /// queue, resends and cache when its media stops sending: the consumer's media
    /// (its own mid) is made inactive and at once sending again; no SDP is involved.
    pub fn forget_queued(&mut self, now: Instant, mid: &str, out: &mut Outbox) {
        let mid: Mid = mid.into();
        self.with_rtc(now, out, |rtc| {
            let Some(dir) = rtc.media(mid).map(|m| m.direction()) else { return Ok(()) };
            if dir.is_sending() {
                let mut api = rtc.sdp_api();
                api.set_direction(mid, MediaDirection::Inactive);
                api.set_direction(mid, dir);
            }
            Ok(())
        });
    }

    /// Queue one RTP packet on a declared outgoing stream. str0m sends queued packets
    /// when it is next driven: its deadline is now, and the host drives every such
    /// transport once at the end of the input batch (docs/ARCHITECTURE.md, "str0m and
    /// the protocol").
    #[allow(clippy::too_many_arguments)]
    pub fn write_rtp(
        &mut self,
        now: Instant,
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
        if self.closed {
            return false;
        }
        let Some(rtc) = self.rtc.as_mut() else {
            return false;
        };
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx(&Ssrc::from(ssrc)) else {
            return false;
        };
        // Nackable only with an RTX SSRC. str0m caches a nackable packet whenever the
        // PT has an RTX PT in the Rtc's codec table (receive transports carry the whole
        // room table), and on a NACK it resends it on the RTX SSRC, panicking
        // ("Should have RTX SSRC for resends") when the stream has none. Consumers
        // without RTX exist: a peer without RTX in its capabilities, or
        // `rtpSettings.useRtx: false`, while browsers still NACK.
        let nackable = stream.rtx().is_some();
        let mut w = RtpWrite::new(pt.into(), SeqNo::from(seq), ts, wallclock, payload)
            .marker(marker)
            .ext_vals(ext)
            .nackable(nackable);
        if let Some(p) = vp8 {
            w = w.vp8_patch(p);
        }
        stream.write_rtp(w);
        drop(api);
        // A write is a mutation: drain (str0m answers with a Timeout that is due now and
        // sends the packet when driven at that deadline).
        let mut evs = std::mem::take(&mut self.pending_events);
        self.drain(now, out, &mut evs);
        self.keep_events(evs);
        true
    }

    /// Take the events kept from control-plane calls.
    pub fn take_pending_events(&mut self, evs: &mut Vec<MediaEvent>) {
        evs.append(&mut self.pending_events);
    }

    /// A packet from the network (a UDP datagram or a TCP frame).
    pub fn receive(&mut self, now: Instant, proto: Proto, src: SocketAddr, data: &[u8], out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        if self.closed {
            return;
        }
        self.take_pending_events(evs);
        // Counted here, once per datagram from the socket: `process` also replays kept
        // datagrams, which counting there would add a second time to `bytesReceived`.
        self.last_rx = Some(now);
        self.bytes_rx += data.len() as u64;
        self.process(now, proto, src, data, out, evs);
        self.report_death(evs);
    }

    /// The timer: drive str0m if it is due, and watch for inactivity.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        if self.closed {
            return;
        }
        self.take_pending_events(evs);
        // A silent browser is the reason to report, whatever str0m would say about the
        // same silence (a DTLS handshake that timed out, say).
        if let Some(reason) = self.inactivity(now) {
            self.dead = Some(reason);
        } else if self.rtc.is_some() && self.next_rtc_timeout.is_none_or(|t| t <= now) {
            if let Some(rtc) = self.rtc.as_mut() {
                if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                    self.failed(now, e);
                }
            }
            self.drain(now, out, evs);
        }
        self.report_death(evs);
    }

    /// Once dead, say so (once).
    fn report_death(&mut self, evs: &mut Vec<MediaEvent>) {
        if let Some(reason) = &self.dead {
            if !self.closed {
                evs.push(MediaEvent::Dead(reason.clone()));
                // The room closes the transport on this event; until then, stay quiet.
                self.closed = true;
            }
        }
    }

    fn inactivity(&self, now: Instant) -> Option<String> {
        let limit = self.env.transport_timeout;
        match self.last_rx {
            Some(t) if now.saturating_duration_since(t) > limit => {
                Some(format!("no traffic for {:.0} s", limit.as_secs_f64()))
            }
            None if now.saturating_duration_since(self.created) > limit => {
                Some(format!("never connected in {:.0} s", limit.as_secs_f64()))
            }
            _ => None,
        }
    }

    /// Process one datagram, fresh from the socket or replayed from a buffer (the
    /// caller accounts for it: see `receive`).
    fn process(&mut self, now: Instant, proto: Proto, src: SocketAddr, data: &[u8], out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        let is_stun = data.len() >= 20 && data[0] < 2;
        if is_stun {
            let known = self.remote_ufrag.as_deref().filter(|_| self.connected);
            if let Some(remote) = stun::authenticated_remote_ufrag(data, &self.creds.ufrag, &self.creds.pass, known) {
                if !self.remote_addrs.contains(&(proto, src)) {
                    if self.remote_addrs.len() >= 8 {
                        self.remote_addrs.remove(0);
                    }
                    self.remote_addrs.push((proto, src));
                    evs.push(MediaEvent::RemoteAddr(proto, src));
                }
                if self.remote_ufrag.as_deref() != Some(remote.as_str()) {
                    self.remote_ufrag = Some(remote.clone());
                    self.set_remote_ufrag(now, remote, out);
                }
            }
        }
        if self.rtc.is_none() {
            if self.early.len() < MAX_EARLY {
                self.early.push_back((now, proto, src, data.to_vec()));
            }
            return;
        }
        // DTLS before the role is known (receive transports): keep it for later.
        let is_dtls = (20..=63).contains(&data.first().copied().unwrap_or(0));
        if is_dtls && !self.dtls_started {
            if self.early_dtls.len() < MAX_EARLY {
                self.early_dtls.push_back((now, proto, src, data.to_vec()));
            }
            return;
        }
        if self.dir == Direction::Send && !is_stun && !is_dtls {
            self.learn_rtx(now, data, out, evs);
        }
        let (sproto, local) = match (proto, self.env.tcp_addr) {
            (Proto::Tcp, Some(tcp)) => (Protocol::Tcp, tcp),
            (Proto::Tcp, None) => return,
            (Proto::Udp, _) => (Protocol::Udp, self.env.ice_addr),
        };
        let Ok(r) = Receive::new(sproto, src, local, data) else {
            return;
        };
        let rtc = self.rtc.as_mut().expect("built");
        let input = Input::Receive(now, r);
        if !rtc.accepts(&input) {
            return;
        }
        if let Err(e) = rtc.handle_input(input) {
            self.failed(now, e);
            return;
        }
        self.drain(now, out, evs);
    }

    /// Firefox sends RTX (padding probes, retransmissions) on an SSRC it never signals.
    /// Left to itself, str0m would map such a packet by its mid extension as a new *main*
    /// SSRC of the stream whenever the transport's codec table (built from the first
    /// producer, often the audio one) does not know the RTX payload type, and the packet
    /// would reach the room as media. So before str0m sees a packet on an unknown SSRC
    /// whose payload type is a producer's RTX payload type, and exactly one stream of that
    /// producer (by mid extension, if present) has no RTX SSRC, that SSRC becomes the
    /// stream's RTX: str0m then drops its padding and unwraps its retransmissions.
    fn learn_rtx(&mut self, now: Instant, data: &[u8], out: &mut Outbox, evs: &mut Vec<MediaEvent>) {
        let Some(h) = rtp_peek::peek(data) else { return };
        if self.rx_decls.iter().any(|d| d.main == h.ssrc || d.rtx == Some(h.ssrc)) {
            return;
        }
        let mid = self
            .mid_ext_id
            .and_then(|id| h.extension(id))
            .and_then(|b| std::str::from_utf8(b).ok());
        let mut candidates = self
            .rx_decls
            .iter_mut()
            .filter(|d| d.rtx.is_none() && d.rtx_pts.contains(&h.pt) && mid.is_none_or(|m| m == d.mid));
        let (Some(d), None) = (candidates.next(), candidates.next()) else {
            return;
        };
        d.rtx = Some(h.ssrc);
        let (main, mid, rid) = (d.main, d.mid.clone(), d.rid.clone());
        let rtx = h.ssrc;
        self.with_rtc(now, out, |rtc| {
            let rid = rid.as_deref().map(str0m::media::Rid::from);
            rtc.direct_api()
                .expect_stream_rx(Ssrc::from(main), Some(Ssrc::from(rtx)), mid.as_str().into(), rid);
            Ok(())
        });
        evs.push(MediaEvent::RtxLearned { mid, main, rtx });
    }

    /// When this transport next needs `handle_timeout`.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let limit = self.env.transport_timeout;
        let dead_at = self.last_rx.unwrap_or(self.created) + limit + Duration::from_millis(1);
        let t = match self.next_rtc_timeout {
            Some(t) if self.rtc.is_some() => t.min(dead_at),
            _ => dead_at,
        };
        Some(if self.pending_events.is_empty() && self.dead.is_none() {
            t
        } else {
            self.created.min(t)
        })
    }

    /// Stop: nothing is sent or received afterwards.
    pub fn close(&mut self) {
        if let Some(rtc) = self.rtc.as_mut() {
            rtc.disconnect();
        }
        self.closed = true;
        self.early.clear();
        self.early_dtls.clear();
        self.pending_events.clear();
    }

    pub fn stats(&self) -> TransportStats {
        TransportStats {
            bytes_received: self.bytes_rx,
            bytes_sent: self.bytes_tx,
            rtt_ms: self.rtt_ms,
            available_outgoing_bitrate: self.bwe_bps,
            send_queue_ms: self.send_queue_ms,
            selected_tuple: self.selected.or(self.remote_addrs.last().copied()).map(|(proto, r)| {
                let local = match proto {
                    Proto::Tcp => self.env.tcp_addr.unwrap_or(self.env.ice_addr),
                    Proto::Udp => self.env.ice_addr,
                };
                (local, r, proto)
            }),
            ice_state: self.ice_state_name(),
            dtls_state: self.dtls_state_name(),
        }
    }

    fn ice_state_name(&self) -> &'static str {
        if self.closed && self.dead.is_none() {
            return "closed";
        }
        match self.ice_state {
            IceConnectionState::New => "new",
            IceConnectionState::Checking => "checking",
            IceConnectionState::Connected => "connected",
            IceConnectionState::Completed => "completed",
            IceConnectionState::Disconnected => "disconnected",
        }
    }

    fn dtls_state_name(&self) -> &'static str {
        if self.dead.is_some() {
            "failed"
        } else if self.closed {
            "closed"
        } else if self.connected {
            "connected"
        } else if self.dtls_started {
            "connecting"
        } else {
            "new"
        }
    }
}

pub fn media_kind(k: Kind) -> MediaKind {
    match k {
        Kind::Audio => MediaKind::Audio,
        Kind::Video => MediaKind::Video,
    }
}
