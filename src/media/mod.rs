//! One str0m `Rtc` per mediasoup transport: ICE-lite, DTLS, SRTP, RTP in and out.
//!
//! `TransportMedia` wraps the `Rtc` with what the mediasoup v2 protocol needs and str0m
//! does not do by itself (protocol.md §12, str0m-notes §2):
//! * the browser's ICE ufrag is learnt from its first authenticated binding request;
//! * a send transport's `Rtc` is built at its first `createProducer`, when the
//!   browser's header-extension ids are known (str0m fixes them per `Rtc`); datagrams
//!   arriving before are kept (bounded) and replayed;
//! * DTLS records that arrive before the DTLS role is known (`updateTransport`) are
//!   kept and replayed instead of lost;
//! * inactivity is watched: a transport silent for `transportTimeout` is dead.

pub mod cert;
mod codec_table;
pub mod keyframe;
mod rtp_peek;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::config::{DtlsCert, Fingerprint};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionMap, ExtensionValues, RtpPacket, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

use crate::room::codecs::{Kind, ProducerMapping, RoomCaps};
use crate::room::Dir;
pub use codec_table::{ext_from_uri, room_codec_config, room_ext_map, send_codec_config};

/// A host candidate as announced to browsers.
#[derive(Debug, Clone)]
pub struct AnnouncedCandidate {
    pub addr: SocketAddr,
    pub priority: u32,
}

/// What every transport of a worker shares.
pub struct MediaEnv {
    /// The address str0m's ICE agent uses as its local candidate and that incoming
    /// datagrams are addressed to (the announced address, which may differ from the
    /// socket's bound address behind NAT).
    pub ice_addr: SocketAddr,
    pub candidates: Vec<AnnouncedCandidate>,
    pub cert: DtlsCert,
    /// sha-256 fingerprint of `cert`, upper-case hex with colons.
    pub fingerprint: String,
    pub max_message_size: usize,
    pub transport_timeout: Duration,
    pub limits: crate::config::Limits,
}

/// Datagram sink: (source, destination, bytes).
pub type Tx<'a> = dyn FnMut(SocketAddr, SocketAddr, &[u8]) + 'a;

/// What a transport reports to its room.
#[derive(Debug)]
pub enum MediaEvent {
    /// ICE and DTLS are up; SRTP keys are in place.
    Connected,
    /// A validated remote address: route its datagrams here.
    RemoteAddr(SocketAddr),
    /// An RTP packet from the browser (producer side).
    Rtp(RtpPacket),
    /// The browser asks for a keyframe on one of our outgoing streams (consumer side).
    KeyframeRequest {
        mid: Mid,
        kind: KeyframeRequestKind,
    },
    Ingress(str0m::stats::MediaIngressStats),
    Egress(str0m::stats::MediaEgressStats),
    /// An RTX stream the browser never signalled was recognised (its payload type is the
    /// producer's RTX payload type) and is now unwrapped by str0m: `rtx` repairs `main`.
    RtxLearned { mid: String, main: u32, rtx: u32 },
    /// The transport can no longer carry media (failed, or silent too long).
    Dead(String),
}

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

/// How long a consumer's sent packets stay available for NACK-triggered resends.
pub const RTX_CACHE_AGE: Duration = Duration::from_secs(1);

/// Bound on datagrams kept before the `Rtc` exists / before DTLS can start.
const MAX_EARLY: usize = 128;

pub struct TransportMedia {
    env: Arc<MediaEnv>,
    dir: Dir,
    creds: IceCreds,
    rtc: Option<Rtc>,
    /// Datagrams received before `rtc` was built.
    early: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    /// DTLS records received before DTLS was started.
    early_dtls: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    remote_dtls: Option<(Fingerprint, bool)>,
    dtls_started: bool,
    remote_ufrag: Option<String>,
    remote_addrs: Vec<SocketAddr>,
    connected: bool,
    ice_state: IceConnectionState,
    selected: Option<SocketAddr>,
    /// Transmits produced by calls that had no sink; flushed by the worker.
    queued: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    next_rtc_timeout: Option<Instant>,
    created: Instant,
    last_rx: Option<Instant>,
    bytes_rx: u64,
    bytes_tx: u64,
    rtt_ms: Option<f64>,
    bwe_bps: Option<u64>,
    dead: bool,
    closed: bool,
    /// `write_rtp` queued packets that leave at the next `flush_writes`.
    writes_pending: bool,
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
    pub fn new(now: Instant, env: &Arc<MediaEnv>, dir: Dir, caps: &RoomCaps) -> TransportMedia {
        let mut t = TransportMedia {
            env: env.clone(),
            dir,
            creds: IceCreds::new(),
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
            queued: Vec::new(),
            next_rtc_timeout: None,
            created: now,
            last_rx: None,
            bytes_rx: 0,
            bytes_tx: 0,
            rtt_ms: None,
            bwe_bps: None,
            dead: false,
            closed: false,
            writes_pending: false,
            pending_rx: Vec::new(),
            rx_decls: Vec::new(),
            mid_ext_id: None,
        };
        if dir == Dir::Recv {
            t.build(now, room_ext_map(caps), room_codec_config(caps));
        }
        t
    }

    fn build(&mut self, now: Instant, exts: ExtensionMap, codecs: str0m::format::CodecConfig) {
        self.mid_ext_id = exts.id_of(str0m::rtp::Extension::RtpMid);
        let mut cfg = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(self.env.cert.clone())
            .set_local_ice_credentials(self.creds.clone())
            .set_extension_map(exts)
            .set_stats_interval(Some(Duration::from_secs(1)));
        *cfg.codec_config() = codecs;
        let mut rtc = cfg.build(now);
        if let Ok(c) = Candidate::host(self.env.ice_addr, "udp") {
            rtc.add_local_candidate(c);
        }
        self.rtc = Some(rtc);
        self.drain(now, None);
        self.with_rtc(now, None, |rtc| {
            rtc.handle_input(Input::Timeout(now)).map(|_| ())
        });
        if self.dir == Dir::Send {
            self.with_rtc(now, None, |rtc| {
                rtc.direct_api().enable_twcc_feedback();
                Ok(())
            });
        }
        if let Some(remote) = self.remote_ufrag.clone() {
            self.set_remote_ufrag(now, remote);
        }
        if let Some((fp, active)) = self.remote_dtls.clone() {
            self.start_dtls_now(now, fp, active);
        }
        for (mid, kind, streams) in std::mem::take(&mut self.pending_rx) {
            self.declare_rx(now, &mid, kind, &streams);
        }
        let early: Vec<_> = self.early.drain(..).collect();
        for (at, src, data) in early {
            self.receive(at.max(now), src, &data, &mut Vec::new(), None);
        }
    }

    /// Run `f` on the Rtc (if built) and drain its output. Errors make the transport dead.
    fn with_rtc(
        &mut self,
        now: Instant,
        tx: Option<&mut Tx>,
        f: impl FnOnce(&mut Rtc) -> Result<(), str0m::RtcError>,
    ) {
        let Some(rtc) = self.rtc.as_mut() else { return };
        if let Err(e) = f(rtc) {
            self.mark_dead(format!("rtc error: {e}"));
        }
        let mut evs = Vec::new();
        self.drain_into(now, &mut evs, tx);
        // Events from control-plane mutations are rare; keep those that matter.
        for e in evs {
            if let MediaEvent::Dead(r) = e {
                self.mark_dead(r);
            }
        }
    }

    fn drain(&mut self, now: Instant, tx: Option<&mut Tx>) {
        let mut evs = Vec::new();
        self.drain_into(now, &mut evs, tx);
    }

    /// Drain `poll_output` until the next timeout (str0m's single-mutation rule).
    fn drain_into(&mut self, _now: Instant, evs: &mut Vec<MediaEvent>, mut tx: Option<&mut Tx>) {
        let Some(rtc) = self.rtc.as_mut() else { return };
        for _ in 0..100_000 {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_rtc_timeout = Some(t);
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.bytes_tx += t.contents.len() as u64;
                    match tx.as_deref_mut() {
                        Some(tx) => tx(t.source, t.destination, &t.contents),
                        None => self
                            .queued
                            .push((t.source, t.destination, t.contents.to_vec())),
                    }
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
                            evs.push(MediaEvent::Dead("ICE disconnected".into()));
                        }
                    }
                    Event::RtpPacket(p) => evs.push(MediaEvent::Rtp(p)),
                    Event::KeyframeRequest(k) => evs.push(MediaEvent::KeyframeRequest {
                        mid: k.mid,
                        kind: k.kind,
                    }),
                    Event::MediaIngressStats(s) => evs.push(MediaEvent::Ingress(s)),
                    Event::MediaEgressStats(s) => evs.push(MediaEvent::Egress(s)),
                    Event::PeerStats(s) => {
                        self.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1000.0);
                        self.bwe_bps = s.bwe_tx.map(|b| b.as_u64());
                        if let Some(pair) = s.selected_candidate_pair {
                            self.selected = Some(pair.remote.addr);
                        }
                    }
                    Event::Closed => evs.push(MediaEvent::Dead("closed by the remote".into())),
                    _ => {}
                },
                Err(e) => {
                    evs.push(MediaEvent::Dead(format!("rtc error: {e}")));
                    self.next_rtc_timeout = None;
                    return;
                }
            }
        }
    }

    fn mark_dead(&mut self, _reason: String) {
        self.dead = true;
    }

    pub fn ice_ufrag(&self) -> &str {
        &self.creds.ufrag
    }

    pub fn ice_password(&self) -> &str {
        &self.creds.pass
    }

    pub fn is_connected(&self) -> bool {
        self.connected && !self.dead && !self.closed
    }

    pub fn is_built(&self) -> bool {
        self.rtc.is_some()
    }

    /// New local ICE credentials (`restartTransport`); the browser's new ufrag is
    /// learnt from its next authenticated request.
    pub fn restart_ice(&mut self, now: Instant) {
        self.creds = IceCreds::new();
        let creds = self.creds.clone();
        self.with_rtc(now, None, |rtc| {
            rtc.direct_api().set_local_ice_credentials(creds);
            Ok(())
        });
    }

    /// Apply the client's DTLS parameters. `active`: we are the DTLS client.
    pub fn start_dtls(
        &mut self,
        now: Instant,
        fp: Fingerprint,
        active: bool,
    ) -> Result<(), String> {
        if self.dtls_started || self.remote_dtls.is_some() {
            return Err("DTLS parameters already set".into());
        }
        self.remote_dtls = Some((fp.clone(), active));
        if self.rtc.is_some() {
            self.start_dtls_now(now, fp, active);
        }
        Ok(())
    }

    fn start_dtls_now(&mut self, now: Instant, fp: Fingerprint, active: bool) {
        self.with_rtc(now, None, |rtc| {
            let mut api = rtc.direct_api();
            api.set_remote_fingerprint(fp);
            api.start_dtls(active)
        });
        self.dtls_started = true;
        let early: Vec<_> = self.early_dtls.drain(..).collect();
        for (at, src, data) in early {
            self.receive(at.max(now), src, &data, &mut Vec::new(), None);
        }
    }

    fn set_remote_ufrag(&mut self, now: Instant, ufrag: String) {
        self.with_rtc(now, None, |rtc| {
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
            self.pending_rx
                .push((mid.to_string(), kind, streams.to_vec()));
            let (exts, codecs) = send_codec_config(kind, mapping);
            self.build(now, exts, codecs);
            return;
        }
        self.declare_rx(now, mid, kind, streams);
    }

    fn declare_rx(&mut self, now: Instant, mid: &str, kind: Kind, streams: &[(u32, Option<u32>)]) {
        let mid: Mid = mid.into();
        let mk = media_kind(kind);
        self.with_rtc(now, None, |rtc| {
            if !has_media(rtc, mid) {
                rtc.direct_api().declare_media(mid, mk);
            }
            for (i, (ssrc, rtx)) in streams.iter().enumerate() {
                let rid =
                    (streams.len() > 1).then(|| str0m::media::Rid::from(format!("r{i}").as_str()));
                let mut api = rtc.direct_api();
                let rx = api.expect_stream_rx(Ssrc::from(*ssrc), rtx.map(Ssrc::from), mid, rid);
                if kind == Kind::Audio && rtx.is_none() {
                    rx.suppress_nack(true);
                }
            }
            Ok(())
        });
    }

    pub fn remove_producer(&mut self, now: Instant, mid: &str, streams: &[(u32, Option<u32>)]) {
        self.pending_rx.retain(|(m, _, _)| m != mid);
        self.rx_decls.retain(|d| d.mid != mid);
        let mid: Mid = mid.into();
        self.with_rtc(now, None, |rtc| {
            for (ssrc, _) in streams {
                rtc.direct_api().remove_stream_rx(Ssrc::from(*ssrc));
            }
            rtc.direct_api().remove_media(mid);
            Ok(())
        });
    }

    /// Declare a consumer's outgoing stream (receive transports).
    pub fn add_consumer(
        &mut self,
        now: Instant,
        mid: &str,
        kind: Kind,
        ssrc: u32,
        rtx: Option<u32>,
    ) {
        let mid: Mid = mid.into();
        let mk = media_kind(kind);
        self.with_rtc(now, None, |rtc| {
            if !has_media(rtc, mid) {
                rtc.direct_api().declare_media(mid, mk);
            }
            let mut api = rtc.direct_api();
            let tx = api.declare_stream_tx(Ssrc::from(ssrc), rtx.map(Ssrc::from), mid, None);
            // Answer NACKs for the last second (libwebrtc keeps at least 1 s of send
            // history too) instead of str0m's 3 s: each cached packet costs ~430 bytes
            // per consumer (the payload itself is shared), the largest part of a video
            // consumer's memory at steady state.
            tx.set_rtx_cache(1024, RTX_CACHE_AGE, Some(0.15));
            Ok(())
        });
    }

    pub fn remove_consumer(&mut self, now: Instant, mid: &str, ssrc: u32) {
        let mid: Mid = mid.into();
        self.with_rtc(now, None, |rtc| {
            rtc.direct_api().remove_stream_tx(Ssrc::from(ssrc));
            rtc.direct_api().remove_media(mid);
            Ok(())
        });
    }

    /// Ask the browser for a keyframe on an incoming stream (PLI, or FIR).
    pub fn request_keyframe(&mut self, now: Instant, ssrc: u32, kind: KeyframeRequestKind) {
        self.with_rtc(now, None, |rtc| {
            if let Some(rx) = rtc.direct_api().stream_rx(&Ssrc::from(ssrc)) {
                rx.request_keyframe(kind);
            }
            Ok(())
        });
    }

    /// Queue one RTP packet on a declared outgoing stream; it leaves at the next
    /// `flush_writes` (the caller flushes once per batch of input, so a transport
    /// that gets several packets in one batch pays str0m's timeout handling once).
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
        tx: &mut Tx,
    ) -> bool {
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
        // ("Should have RTX SSRC for resends") when the stream has none, which took the
        // whole room down. Consumers without RTX exist: a peer without RTX in its
        // capabilities, or `rtpSettings.useRtx: false`, while browsers still NACK.
        let nackable = stream.rtx().is_some();
        stream.write_rtp(
            RtpWrite::new(pt.into(), SeqNo::from(seq), ts, wallclock, payload)
                .marker(marker)
                .ext_vals(ext)
                .nackable(nackable),
        );
        drop(api);
        // A write is a mutation: drain (it yields only a Timeout, str0m-notes gotcha 4).
        let mut evs = Vec::new();
        self.drain_into(now, &mut evs, Some(tx));
        self.writes_pending = true;
        true
    }

    /// Packets queued by `write_rtp` wait for `flush_writes`.
    pub fn writes_pending(&self) -> bool {
        self.writes_pending
    }

    /// Send what `write_rtp` queued: str0m sends queued RTP on a timeout input.
    pub fn flush_writes(&mut self, now: Instant, tx: &mut Tx) {
        if !std::mem::take(&mut self.writes_pending) || self.closed {
            return;
        }
        let Some(rtc) = self.rtc.as_mut() else { return };
        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
            self.mark_dead(format!("rtc error: {e}"));
        }
        let mut evs = Vec::new();
        self.drain_into(now, &mut evs, Some(tx));
    }

    /// A datagram for this transport (`data`) or a timer tick (`None`).
    pub fn handle_input(
        &mut self,
        now: Instant,
        input: Option<(SocketAddr, &[u8])>,
        evs: &mut Vec<MediaEvent>,
        tx: &mut Tx,
    ) {
        if self.closed {
            return;
        }
        for (s, d, b) in std::mem::take(&mut self.queued) {
            tx(s, d, &b);
        }
        match input {
            Some((src, data)) => {
                // Counted here, once per datagram from the socket: `receive` also
                // replays kept datagrams (before the send Rtc is built, early DTLS),
                // which counting there would add a second time to `bytesReceived`.
                self.last_rx = Some(now);
                self.bytes_rx += data.len() as u64;
                self.receive(now, src, data, evs, Some(tx))
            }
            None => {
                if self.rtc.is_some() && self.next_rtc_timeout.is_none_or(|t| t <= now) {
                    if let Some(rtc) = self.rtc.as_mut() {
                        if let Err(e) = rtc.handle_input(Input::Timeout(now)) {
                            evs.push(MediaEvent::Dead(format!("rtc error: {e}")));
                        }
                    }
                    self.drain_into(now, evs, Some(tx));
                }
                if let Some(reason) = self.inactivity(now) {
                    evs.push(MediaEvent::Dead(reason));
                }
            }
        }
        if self.dead && !evs.iter().any(|e| matches!(e, MediaEvent::Dead(_))) {
            evs.push(MediaEvent::Dead("transport failed".into()));
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
    /// caller accounts for it: see `handle_input`).
    fn receive(
        &mut self,
        now: Instant,
        src: SocketAddr,
        data: &[u8],
        evs: &mut Vec<MediaEvent>,
        tx: Option<&mut Tx>,
    ) {
        let is_stun = data.len() >= 20 && data[0] < 2;
        if is_stun {
            if let Some(remote) = self.authenticated_remote_ufrag(data) {
                if !self.remote_addrs.contains(&src) {
                    if self.remote_addrs.len() >= 8 {
                        self.remote_addrs.remove(0);
                    }
                    self.remote_addrs.push(src);
                    evs.push(MediaEvent::RemoteAddr(src));
                }
                if self.remote_ufrag.as_deref() != Some(remote.as_str()) {
                    self.remote_ufrag = Some(remote.clone());
                    self.set_remote_ufrag(now, remote);
                }
            }
        }
        if self.rtc.is_none() {
            if self.early.len() < MAX_EARLY {
                self.early.push_back((now, src, data.to_vec()));
            }
            return;
        }
        // DTLS before the role is known (receive transports): keep it for later.
        let is_dtls = (20..=63).contains(&data.first().copied().unwrap_or(0));
        if is_dtls && !self.dtls_started {
            if self.early_dtls.len() < MAX_EARLY {
                self.early_dtls.push_back((now, src, data.to_vec()));
            }
            return;
        }
        if self.dir == Dir::Send && !is_stun && !is_dtls {
            self.learn_rtx(now, data, evs);
        }
        let Ok(r) = Receive::new(Protocol::Udp, src, self.env.ice_addr, data) else {
            return;
        };
        let rtc = self.rtc.as_mut().expect("built");
        let input = Input::Receive(now, r);
        if !rtc.accepts(&input) {
            return;
        }
        if let Err(e) = rtc.handle_input(input) {
            evs.push(MediaEvent::Dead(format!("rtc error: {e}")));
            return;
        }
        self.drain_into(now, evs, tx);
    }

    /// Firefox sends RTX (padding probes, retransmissions) on an SSRC it never signals.
    /// Left to itself, str0m would map such a packet by its mid extension as a new *main*
    /// SSRC of the stream whenever the transport's codec table (built from the first
    /// producer, often the audio one) does not know the RTX payload type, and the packet
    /// would reach the room as media. So before str0m sees a packet on an unknown SSRC
    /// whose payload type is a producer's RTX payload type, and exactly one stream of that
    /// producer (by mid extension, if present) has no RTX SSRC, that SSRC becomes the
    /// stream's RTX: str0m then drops its padding and unwraps its retransmissions.
    fn learn_rtx(&mut self, now: Instant, data: &[u8], evs: &mut Vec<MediaEvent>) {
        let Some(h) = rtp_peek::peek(data) else { return };
        if self
            .rx_decls
            .iter()
            .any(|d| d.main == h.ssrc || d.rtx == Some(h.ssrc))
        {
            return;
        }
        let mid = self
            .mid_ext_id
            .and_then(|id| h.extension(id))
            .and_then(|b| std::str::from_utf8(b).ok());
        let mut candidates = self.rx_decls.iter_mut().filter(|d| {
            d.rtx.is_none() && d.rtx_pts.contains(&h.pt) && mid.is_none_or(|m| m == d.mid)
        });
        let (Some(d), None) = (candidates.next(), candidates.next()) else {
            return;
        };
        d.rtx = Some(h.ssrc);
        let (main, mid, rid) = (d.main, d.mid.clone(), d.rid.clone());
        let rtx = h.ssrc;
        self.with_rtc(now, None, |rtc| {
            let rid = rid.as_deref().map(str0m::media::Rid::from);
            rtc.direct_api()
                .expect_stream_rx(Ssrc::from(main), Some(Ssrc::from(rtx)), mid.as_str().into(), rid);
            Ok(())
        });
        evs.push(MediaEvent::RtxLearned { mid, main, rtx });
    }

    /// The browser's ufrag from a binding request signed with our password.
    fn authenticated_remote_ufrag(&self, data: &[u8]) -> Option<String> {
        let msg = str0m::ice::StunMessage::parse(data).ok()?;
        if !msg.is_binding_request() {
            return None;
        }
        let (local, remote) = msg.split_username()?;
        if local != self.creds.ufrag || remote.is_empty() {
            return None;
        }
        if self.remote_ufrag.as_deref() == Some(remote) && self.connected {
            return Some(remote.to_string());
        }
        let hmac = crate::net::stun::hmac_provider();
        msg.verify(self.creds.pass.as_bytes(), |k, p| hmac.sha1_hmac(k, p))
            .then(|| remote.to_string())
    }

    /// When this transport next needs a tick.
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
        Some(if self.queued.is_empty() {
            t
        } else {
            self.created.min(t)
        })
    }

    /// Transmits queued by control-plane calls.
    pub fn flush(&mut self, tx: &mut Tx) {
        for (s, d, b) in std::mem::take(&mut self.queued) {
            tx(s, d, &b);
        }
    }

    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Some(rtc) = self.rtc.as_mut() {
            rtc.disconnect();
        }
        let _ = now;
        self.closed = true;
        self.queued.clear();
        self.early.clear();
        self.early_dtls.clear();
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes_rx
    }
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_tx
    }
    pub fn rtt_ms(&self) -> Option<f64> {
        self.rtt_ms
    }
    pub fn bwe_bps(&self) -> Option<u64> {
        self.bwe_bps
    }
    pub fn selected_tuple(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.selected
            .or(self.remote_addrs.last().copied())
            .map(|r| (self.env.ice_addr, r))
    }
    pub fn ice_state_name(&self) -> &'static str {
        if self.closed {
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
    pub fn dtls_state_name(&self) -> &'static str {
        if self.closed {
            "closed"
        } else if self.dead {
            "failed"
        } else if self.connected {
            "connected"
        } else if self.dtls_started {
            "connecting"
        } else {
            "new"
        }
    }
    pub fn direction(&self) -> Dir {
        self.dir
    }
}

fn has_media(rtc: &Rtc, mid: Mid) -> bool {
    rtc.media(mid).is_some()
}

pub fn media_kind(k: Kind) -> MediaKind {
    match k {
        Kind::Audio => MediaKind::Audio,
        Kind::Video => MediaKind::Video,
    }
}
