//! A test peer that plays the browser side of mediasoup-client v2.
//!
//! One [`BrowserTransport`] is what one RTCPeerConnection of mediasoup-client is: a full
//! (non-lite), ICE-controlling agent with one UDP host candidate on 127.0.0.1, doing
//! DTLS-SRTP and RTP/RTCP with str0m in RTP mode. A test creates one per mediasoup transport
//! (send or recv), feeds it the SFU's `createTransport` answer with [`BrowserTransport::connect`],
//! and drives it from the test thread with [`BrowserTransport::pump`] /
//! [`BrowserTransport::pump_until`]. Nothing runs in the background: the peer only moves while
//! it is pumped (or while a mutating call such as `send_rtp` runs).
//!
//! Every loop here is bounded in iterations and wall time; all sockets are loopback.
//!
//! Typical send-side use (see `tests/peer_selftest.rs` for complete examples):
//!
//! ```ignore
//! let mut p = BrowserTransport::new(Direction::Send, &codecs, &exts);
//! let req = json!({"method":"createTransport","id":1,"direction":"send","options":{},
//!                  "dtlsParameters": p.dtls_parameters()});
//! let resp = /* SFU answer */;
//! p.connect(&TransportParams::from_json(&resp)?);
//! p.add_send_stream("0", "video", 2001, Some(2002));
//! assert!(p.pump_until(Duration::from_secs(5), |p| p.is_connected()));
//! p.send_rtp(2001, 96, 1, 3000, true, &[1, 2, 3]);
//! ```
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::config::Fingerprint;
use str0m::format::{Codec, CodecConfig, FormatParams};
use str0m::media::{Frequency, KeyframeRequest, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{Extension, ExtensionMap, ExtensionValues, RtpWrite, Ssrc};
use str0m::stats::{MediaEgressStats, MediaIngressStats};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcConfig};

/// Read timeout of the peer's socket: the longest a `pump` iteration blocks.
const READ_TIMEOUT: Duration = Duration::from_millis(2);
/// Upper bound for a single `pump` / `pump_until` call, whatever the caller asks for.
const MAX_PUMP: Duration = Duration::from_secs(120);
/// Upper bound of `poll_output` calls in one drain (str0m always ends with a Timeout).
const MAX_DRAIN: usize = 100_000;
/// Caps on what we keep, so a runaway test cannot eat the machine's memory.
const MAX_RECEIVED: usize = 500_000;
const MAX_EVENTS: usize = 50_000;

pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// Which way media flows on this transport, from the browser's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The browser's send PC (producers). DTLS: we are "server" (passive), the SFU is client.
    Send,
    /// The browser's recv PC (consumers). DTLS: we are "client" (active), the SFU is server.
    Recv,
}

/// What the SFU answered to `createTransport` (ICE + DTLS part), parsed.
#[derive(Debug, Clone)]
pub struct TransportParams {
    pub ufrag: String,
    pub pwd: String,
    pub ice_lite: bool,
    /// `iceCandidates[].ip/.port` of the UDP candidates, in the order given.
    pub candidates: Vec<SocketAddr>,
    /// The same for the TCP (passive) candidates.
    pub tcp_candidates: Vec<SocketAddr>,
    /// LAST entry of `dtlsParameters.fingerprints` (that is the one mediasoup-client uses).
    pub fingerprint_algorithm: String,
    pub fingerprint_value: String,
    /// `dtlsParameters.role`: "client" (send transports) or "auto" (recv transports).
    pub server_role: String,
}

impl TransportParams {
    /// Parse a `createTransport` response. Accepts the bare response object
    /// (`{iceParameters, iceCandidates, dtlsParameters}`) or one wrapped as
    /// `{"ok": true, "data": {...}}` / `{"data": {...}}`.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let v = unwrap_data(v, "iceParameters");
        let ice = v
            .get("iceParameters")
            .ok_or_else(|| format!("no iceParameters in {v}"))?;
        let (ufrag, pwd, ice_lite) = parse_ice_parameters(ice)?;

        let cands = v
            .get("iceCandidates")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("no iceCandidates array in {v}"))?;
        let mut candidates = Vec::new();
        let mut tcp_candidates = Vec::new();
        for c in cands {
            let proto = c.get("protocol").and_then(Value::as_str).unwrap_or("udp");
            let tcp = proto.eq_ignore_ascii_case("tcp");
            if !tcp && !proto.eq_ignore_ascii_case("udp") {
                continue;
            }
            let ip = c
                .get("ip")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("candidate without ip: {c}"))?;
            let port = c
                .get("port")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("candidate without numeric port: {c}"))?;
            if port == 0 || port > 65535 {
                return Err(format!("candidate port out of range: {c}"));
            }
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|e| format!("candidate ip {ip:?}: {e}"))?;
            if tcp {
                tcp_candidates.push(SocketAddr::new(ip, port as u16));
            } else {
                candidates.push(SocketAddr::new(ip, port as u16));
            }
        }
        if candidates.is_empty() && tcp_candidates.is_empty() {
            return Err(format!("no udp or tcp candidate in {cands:?}"));
        }

        let dtls = v
            .get("dtlsParameters")
            .ok_or_else(|| format!("no dtlsParameters in {v}"))?;
        let server_role = dtls
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("dtlsParameters without role: {dtls}"))?
            .to_string();
        let fps = dtls
            .get("fingerprints")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("dtlsParameters without fingerprints: {dtls}"))?;
        let last = fps.last().ok_or("empty fingerprints list")?;
        let fingerprint_algorithm = last
            .get("algorithm")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("fingerprint without algorithm: {last}"))?
            .to_string();
        let fingerprint_value = last
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("fingerprint without value: {last}"))?
            .to_string();
        // Fail here rather than inside connect() if str0m cannot parse it.
        format!("{fingerprint_algorithm} {fingerprint_value}")
            .parse::<Fingerprint>()
            .map_err(|e| format!("bad fingerprint {fingerprint_value:?}: {e}"))?;

        Ok(TransportParams {
            ufrag,
            pwd,
            ice_lite,
            candidates,
            tcp_candidates,
            fingerprint_algorithm,
            fingerprint_value,
            server_role,
        })
    }
}

/// Parse an `iceParameters` object (`{usernameFragment, password, iceLite}`), or a
/// `restartTransport` response `{iceParameters: {...}}` (optionally wrapped in `data`).
pub fn parse_ice_parameters(v: &Value) -> Result<(String, String, bool), String> {
    let v = unwrap_data(v, "iceParameters");
    let ice = v.get("iceParameters").unwrap_or(v);
    let ufrag = ice
        .get("usernameFragment")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("iceParameters without usernameFragment: {ice}"))?;
    let pwd = ice
        .get("password")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("iceParameters without password: {ice}"))?;
    if ufrag.is_empty() || pwd.is_empty() {
        return Err(format!("empty ICE ufrag/password: {ice}"));
    }
    let lite = ice.get("iceLite").and_then(Value::as_bool).unwrap_or(false);
    Ok((ufrag.to_string(), pwd.to_string(), lite))
}

fn unwrap_data<'a>(v: &'a Value, key: &str) -> &'a Value {
    if v.get(key).is_none() {
        if let Some(d) = v.get("data") {
            return d;
        }
    }
    v
}

/// One entry of the PT table an Rtc is built with.
#[derive(Debug, Clone)]
pub struct CodecSpec {
    pub pt: u8,
    pub rtx_pt: Option<u8>,
    /// "audio" | "video"
    pub kind: &'static str,
    /// "opus", "VP8", "VP9", "H264" (also "PCMU", "PCMA", "G722", "AV1"); case-insensitive.
    pub name: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

impl CodecSpec {
    pub fn opus(pt: u8) -> Self {
        CodecSpec {
            pt,
            rtx_pt: None,
            kind: "audio",
            name: "opus".into(),
            clock_rate: 48000,
            channels: Some(2),
        }
    }
    pub fn vp8(pt: u8, rtx_pt: Option<u8>) -> Self {
        CodecSpec {
            pt,
            rtx_pt,
            kind: "video",
            name: "VP8".into(),
            clock_rate: 90000,
            channels: None,
        }
    }
    pub fn vp9(pt: u8, rtx_pt: Option<u8>) -> Self {
        CodecSpec {
            pt,
            rtx_pt,
            kind: "video",
            name: "VP9".into(),
            clock_rate: 90000,
            channels: None,
        }
    }
    pub fn h264(pt: u8, rtx_pt: Option<u8>) -> Self {
        CodecSpec {
            pt,
            rtx_pt,
            kind: "video",
            name: "H264".into(),
            clock_rate: 90000,
            channels: None,
        }
    }

    /// Build a PT table from a JSON codec list: either room/peer capabilities
    /// (`rtpCapabilities.codecs`, PT in `preferredPayloadType`) or `rtpParameters.codecs`
    /// (PT in `payloadType`). `rtx` entries are attached to their `parameters.apt` codec.
    /// Codecs this peer does not know are skipped. Accepts the list itself or an object with
    /// a `codecs` field.
    pub fn list_from_json(v: &Value) -> Vec<CodecSpec> {
        let list = v.get("codecs").unwrap_or(v);
        let Some(list) = list.as_array() else {
            return Vec::new();
        };
        let pt_of = |c: &Value| {
            c.get("payloadType")
                .or_else(|| c.get("preferredPayloadType"))
                .and_then(Value::as_u64)
                .map(|p| p as u8)
        };
        let name_of = |c: &Value| {
            c.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let mut out: Vec<CodecSpec> = Vec::new();
        for c in list {
            let name = name_of(c);
            if name.eq_ignore_ascii_case("rtx") || codec_of(&name).is_none() {
                continue;
            }
            let Some(pt) = pt_of(c) else { continue };
            let kind = match c.get("kind").and_then(Value::as_str) {
                Some("audio") => "audio",
                Some("video") => "video",
                _ => {
                    if c.get("mimeType")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.starts_with("audio/"))
                    {
                        "audio"
                    } else if c
                        .get("mimeType")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.starts_with("video/"))
                    {
                        "video"
                    } else if codec_of(&name).is_some_and(|c| c.is_audio()) {
                        "audio"
                    } else {
                        "video"
                    }
                }
            };
            let clock_rate = c.get("clockRate").and_then(Value::as_u64).unwrap_or(90000) as u32;
            let channels = c.get("channels").and_then(Value::as_u64).map(|n| n as u8);
            out.push(CodecSpec {
                pt,
                rtx_pt: None,
                kind,
                name,
                clock_rate,
                channels,
            });
        }
        for c in list {
            if !name_of(c).eq_ignore_ascii_case("rtx") {
                continue;
            }
            let (Some(pt), Some(apt)) = (
                pt_of(c),
                c.pointer("/parameters/apt").and_then(Value::as_u64),
            ) else {
                continue;
            };
            if let Some(m) = out.iter_mut().find(|m| m.pt as u64 == apt) {
                m.rtx_pt = Some(pt);
            }
        }
        out
    }
}

/// Header extension `(id, uri)` pairs from a JSON list: `rtpCapabilities.headerExtensions`
/// (`preferredId`) or `rtpParameters.headerExtensions` (`id`). Accepts the list or an object
/// with a `headerExtensions` field. Duplicate ids (one per kind) are kept once.
pub fn ext_ids_from_json(v: &Value) -> Vec<(u8, String)> {
    let list = v.get("headerExtensions").unwrap_or(v);
    let mut out: Vec<(u8, String)> = Vec::new();
    for e in list.as_array().map(|a| a.as_slice()).unwrap_or(&[]) {
        let id = e
            .get("id")
            .or_else(|| e.get("preferredId"))
            .and_then(Value::as_u64);
        let uri = e.get("uri").and_then(Value::as_str);
        if let (Some(id), Some(uri)) = (id, uri) {
            if !out.iter().any(|(i, u)| *i as u64 == id && u == uri) {
                out.push((id as u8, uri.to_string()));
            }
        }
    }
    out
}

/// Borrow helper for [`ext_ids_from_json`]'s output: `&[(u8, String)]` → `Vec<(u8, &str)>`.
pub fn ext_refs(v: &[(u8, String)]) -> Vec<(u8, &str)> {
    v.iter().map(|(i, u)| (*i, u.as_str())).collect()
}

fn codec_of(name: &str) -> Option<Codec> {
    Some(match name.to_ascii_lowercase().as_str() {
        "opus" => Codec::Opus,
        "pcmu" => Codec::PCMU,
        "pcma" => Codec::PCMA,
        "g722" => Codec::G722,
        "vp8" => Codec::Vp8,
        "vp9" => Codec::Vp9,
        "h264" => Codec::H264,
        "av1" => Codec::Av1,
        _ => return None,
    })
}

/// Map a header-extension URI to str0m's `Extension`. `None` for URIs str0m does not know.
pub fn extension_for_uri(uri: &str) -> Option<Extension> {
    use Extension::*;
    [
        AbsoluteSendTime,
        AbsoluteCaptureTime,
        AudioLevel,
        TransmissionTimeOffset,
        VideoOrientation,
        TransportSequenceNumber,
        PlayoutDelay,
        VideoContentType,
        VideoTiming,
        RtpStreamId,
        RepairedRtpStreamId,
        RtpMid,
        FrameMarking,
        ColorSpace,
    ]
    .into_iter()
    .find(|e| e.as_uri() == uri)
}

/// Build a str0m `CodecConfig` from a PT table. Panics on a codec name it does not know
/// (a test bug); use [`CodecSpec::list_from_json`] to filter JSON lists first.
pub fn codec_config(codecs: &[CodecSpec]) -> CodecConfig {
    let mut c = CodecConfig::empty();
    for s in codecs {
        let codec = codec_of(&s.name)
            .unwrap_or_else(|| panic!("test peer: unsupported codec {:?}", s.name));
        let pt = Pt::new_with_value(s.pt);
        let rtx = s.rtx_pt.map(Pt::new_with_value);
        if codec == Codec::H264 {
            // mediasoup rooms use packetization-mode 1; profile-level-id is not compared.
            c.add_h264(pt, rtx, true, 0x42e01f);
            continue;
        }
        let freq = Frequency::new(s.clock_rate)
            .unwrap_or_else(|| panic!("test peer: clock rate 0 for {:?}", s.name));
        let format = if codec == Codec::Opus {
            FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                ..Default::default()
            }
        } else {
            FormatParams::default()
        };
        c.add_config(pt, rtx, codec, freq, s.channels, format);
    }
    c
}

/// Build a str0m `ExtensionMap` from `(id, uri)` pairs; unknown URIs and ids outside 1..=14
/// are skipped (a browser would not negotiate them either).
pub fn extension_map(ext_ids: &[(u8, &str)]) -> ExtensionMap {
    let mut m = ExtensionMap::empty();
    for (id, uri) in ext_ids {
        if !(1..=14).contains(id) {
            continue;
        }
        if let Some(e) = extension_for_uri(uri) {
            m.set(*id, e);
        }
    }
    m
}

/// Peeks at a plain RTP header (not encrypted in SRTP): `(ssrc, seq, pt)`. `None` for
/// STUN, DTLS, RTCP and anything too short.
pub fn peek_rtp(buf: &[u8]) -> Option<(u32, u16, u8)> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    // RFC 5761: second byte 192..=223 is RTCP (PT 200..=206 with the marker-bit position set).
    if (192..=223).contains(&buf[1]) {
        return None;
    }
    let seq = u16::from_be_bytes([buf[2], buf[3]]);
    let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    Some((ssrc, seq, buf[1] & 0x7f))
}

/// One RTP packet delivered by str0m on a receive stream (RTX already unwrapped).
#[derive(Clone)]
pub struct ReceivedRtp {
    pub ssrc: u32,
    pub pt: u8,
    pub seq: u16,
    /// Extended sequence number as str0m tracks it (upper bits = SRTP ROC).
    pub ext_seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
    /// Header extension values parsed with this peer's ext-id map.
    pub ext_vals: ExtensionValues,
    pub at: Instant,
}

impl std::fmt::Debug for ReceivedRtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedRtp")
            .field("ssrc", &self.ssrc)
            .field("pt", &self.pt)
            .field("seq", &self.seq)
            .field("ext_seq", &self.ext_seq)
            .field("timestamp", &self.timestamp)
            .field("marker", &self.marker)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Optional knobs, all defaulting to what a browser does.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// str0m `set_max_stun_rto`: also the interval of ICE keepalive checks on the selected pair
    /// (default 3 s, like str0m). Lower it to make an ICE restart take effect faster.
    pub max_stun_rto: Option<Duration>,
    /// str0m `set_stats_interval`, so `egress_stats`/`ingress_stats` get filled. Default 1 s.
    pub stats_interval: Option<Duration>,
    /// Send TWCC feedback when transport-wide-cc is in the ext map, as a browser does.
    /// Default false: the stand-in stamps arrivals when its single-threaded pump loop
    /// reads them, not when they arrive, and the SFU's estimator reads that jitter as
    /// congestion (it brought a 1 Mbit/s loopback stream down to 100 kbit/s). The
    /// bandwidth tests use real browsers; the decisions are tested on a simulated clock.
    pub twcc_feedback: bool,
    /// Connect over ICE-TCP (RFC 6544, active side) to the SFU's TCP candidate instead
    /// of UDP. Default false.
    pub tcp: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            max_stun_rto: None,
            stats_interval: Some(Duration::from_secs(1)),
            twcc_feedback: false,
            tcp: false,
        }
    }
}

/// Datagram predicate for the drop filters: return true to drop.
pub type DropFilter = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// The ICE-TCP connection of a peer in TCP mode.
struct TcpLink {
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    rx: Vec<u8>,
}

/// One browser RTCPeerConnection (one mediasoup transport), see the module docs.
pub struct BrowserTransport {
    direction: Direction,
    rtc: Rtc,
    local_fp: Fingerprint,
    socket: UdpSocket,
    local: SocketAddr,
    tcp_wanted: bool,
    /// The ICE-TCP connection, in TCP mode.
    tcp: Option<TcpLink>,
    next_timeout: Instant,
    remote: Option<TransportParams>,
    connect_called: bool,
    connected_event: bool,
    ice_state: IceConnectionState,
    error: Option<String>,
    silent: bool,
    recv_filter: Option<DropFilter>,
    send_filter: Option<DropFilter>,
    drop_in: Vec<(u32, u16)>,
    drop_out: Vec<(u32, u16)>,
    /// Outgoing RTP (ssrc, seq) to hold back and send after the next packet.
    swap_out: Vec<(u32, u16)>,
    held_out: Option<(Protocol, SocketAddr, Vec<u8>)>,
    /// ssrc -> (kind, mid) of our declared send streams / recv streams.
    send_streams: HashMap<u32, (MediaKind, Mid)>,
    recv_streams: HashMap<u32, (MediaKind, Mid)>,
    received: Vec<ReceivedRtp>,
    keyframe_reqs: Vec<KeyframeRequest>,
    events: Vec<String>,
    egress_stats: HashMap<Mid, MediaEgressStats>,
    ingress_stats: HashMap<Mid, MediaIngressStats>,
    dgrams_in: u64,
    dgrams_out: u64,
    dropped_in: u64,
    dropped_out: u64,
    rtp_sent: u64,
}

impl BrowserTransport {
    /// A new browser PC. `codecs`: the PT table this Rtc uses (browser PTs for Send, room PTs
    /// for Recv). `ext_ids`: `(id, uri)` pairs for the Rtc's ExtensionMap.
    pub fn new(direction: Direction, codecs: &[CodecSpec], ext_ids: &[(u8, &str)]) -> Self {
        Self::with_options(direction, codecs, ext_ids, PeerOptions::default())
    }

    pub fn with_options(
        direction: Direction,
        codecs: &[CodecSpec],
        ext_ids: &[(u8, &str)],
        opts: PeerOptions,
    ) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("test peer: bind 127.0.0.1:0");
        socket
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("set_read_timeout");
        let local = socket.local_addr().expect("local_addr");

        let mut cfg = RtcConfig::new()
            .set_rtp_mode(true)
            .set_ice_lite(false)
            .set_extension_map(extension_map(ext_ids))
            .set_stats_interval(opts.stats_interval);
        *cfg.codec_config() = codec_config(codecs);
        if let Some(rto) = opts.max_stun_rto {
            cfg.set_max_stun_rto(rto);
        }
        // No cert given: str0m generates this PC's own ECDSA certificate, like a browser.
        let now = Instant::now();
        let mut rtc = cfg.build(now);
        let local_fp = rtc.direct_api().local_dtls_fingerprint().clone();
        let twcc = ext_ids.iter().any(|(_, u)| *u == TWCC_URI);

        let mut p = BrowserTransport {
            direction,
            rtc,
            local_fp,
            socket,
            local,
            tcp_wanted: opts.tcp,
            tcp: None,
            next_timeout: now,
            remote: None,
            connect_called: false,
            connected_event: false,
            ice_state: IceConnectionState::New,
            error: None,
            silent: false,
            recv_filter: None,
            send_filter: None,
            drop_in: Vec::new(),
            drop_out: Vec::new(),
            swap_out: Vec::new(),
            held_out: None,
            send_streams: HashMap::new(),
            recv_streams: HashMap::new(),
            received: Vec::new(),
            keyframe_reqs: Vec::new(),
            events: Vec::new(),
            egress_stats: HashMap::new(),
            ingress_stats: HashMap::new(),
            dgrams_in: 0,
            dgrams_out: 0,
            dropped_in: 0,
            dropped_out: 0,
            rtp_sent: 0,
        };
        // str0m's clock starts in the past; give it "now" before anything is armed.
        p.tick();
        p.rtc.direct_api().set_ice_controlling(true);
        p.drain();
        let host = Candidate::host(local, "udp").expect("host candidate");
        if p.rtc.add_local_candidate(host).is_none() {
            panic!("test peer: str0m refused local candidate {local}");
        }
        p.drain();
        if twcc && opts.twcc_feedback {
            p.rtc.direct_api().enable_twcc_feedback();
            p.drain();
        }
        p
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Our DTLS role as mediasoup-client reports it: "server" for Send, "client" for Recv.
    pub fn dtls_role(&self) -> &'static str {
        match self.direction {
            Direction::Send => "server",
            Direction::Recv => "client",
        }
    }

    /// `{"role": "server"|"client", "fingerprints": [{"algorithm": "sha-256", "value": "AB:CD:.."}]}`
    /// — what the client sends as `dtlsParameters` in `createTransport` (Send) or
    /// `updateTransport` (Recv).
    pub fn dtls_parameters(&self) -> Value {
        let fp = &self.local_fp;
        let text = fp.to_string(); // "sha-256 AB:CD:.."
        let value = text
            .split_once(' ')
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        json!({
            "role": self.dtls_role(),
            "fingerprints": [{ "algorithm": fp.hash_func.clone(), "value": value }]
        })
    }

    /// Our ICE credentials (never signalled in mediasoup v2; useful for asserting the SFU
    /// learned them).
    pub fn local_ice_credentials(&mut self) -> IceCreds {
        self.rtc.direct_api().local_ice_credentials()
    }

    /// Apply the SFU's `createTransport` answer: remote ICE creds + candidates, remote
    /// fingerprint, then start DTLS (active iff Recv). Call once. Nothing is sent until pumped
    /// (well, the first checks may leave right here).
    pub fn connect(&mut self, params: &TransportParams) {
        assert!(!self.connect_called, "test peer: connect() called twice");
        self.connect_called = true;
        if !params.ice_lite {
            self.note("warning: SFU did not announce iceLite:true".to_string());
        }
        match (self.direction, params.server_role.as_str()) {
            (Direction::Send, "client")
            | (Direction::Recv, "auto")
            | (Direction::Recv, "server") => {}
            (d, r) => self.note(format!(
                "warning: unexpected SFU dtls role {r:?} for a {d:?} transport"
            )),
        }
        let fp: Fingerprint = format!(
            "{} {}",
            params.fingerprint_algorithm, params.fingerprint_value
        )
        .parse()
        .unwrap_or_else(|e| panic!("test peer: bad SFU fingerprint: {e}"));
        self.rtc.direct_api().set_remote_ice_credentials(IceCreds {
            ufrag: params.ufrag.clone(),
            pass: params.pwd.clone(),
        });
        self.drain();
        if self.tcp_wanted {
            let remote = *params.tcp_candidates.first().expect("test peer: TCP mode, but the SFU announced no TCP candidate");
            let stream = TcpStream::connect_timeout(&remote, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("test peer: TCP connect to {remote}: {e}"));
            stream.set_nonblocking(true).expect("set_nonblocking");
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().expect("local_addr");
            let lc = Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build().expect("tcp candidate");
            self.rtc.add_local_candidate(lc);
            self.drain();
            let rc = Candidate::builder().tcp().host(remote).tcptype(TcpType::Passive).build().expect("tcp candidate");
            self.rtc.add_remote_candidate(rc);
            self.drain();
            self.tcp = Some(TcpLink { stream, local, remote, rx: Vec::new() });
        } else {
            for addr in &params.candidates {
                match Candidate::host(*addr, "udp") {
                    Ok(c) => {
                        self.rtc.add_remote_candidate(c);
                        self.drain();
                    }
                    Err(e) => self.note(format!("warning: SFU candidate {addr} rejected: {e:?}")),
                }
            }
        }
        self.rtc.direct_api().set_remote_fingerprint(fp);
        self.drain();
        let active = self.direction == Direction::Recv;
        if let Err(e) = self.rtc.direct_api().start_dtls(active) {
            self.fail(format!("start_dtls({active}): {e}"));
        }
        self.drain();
        self.remote = Some(params.clone());
        self.tick();
    }

    /// ICE restart after `restartTransport`: fresh local credentials for us (a browser's
    /// `createOffer({iceRestart:true})` changes its own ufrag/pwd too) and the SFU's new ones.
    /// Pairs are kept (str0m's direct API has no real restart); the next check on the selected
    /// pair (within `max_stun_rto`, default 3 s) carries the new credentials.
    pub fn restart_ice(&mut self, new_ufrag: &str, new_pwd: &str) {
        self.rtc
            .direct_api()
            .set_local_ice_credentials(IceCreds::new());
        self.drain();
        self.rtc.direct_api().set_remote_ice_credentials(IceCreds {
            ufrag: new_ufrag.to_string(),
            pass: new_pwd.to_string(),
        });
        self.drain();
        if let Some(r) = self.remote.as_mut() {
            r.ufrag = new_ufrag.to_string();
            r.pwd = new_pwd.to_string();
        }
        self.tick();
    }

    /// [`Self::restart_ice`] from a `restartTransport` response (`{iceParameters}` or the
    /// iceParameters object itself, optionally wrapped in `data`).
    pub fn restart_ice_from_json(&mut self, v: &Value) -> Result<(), String> {
        let (u, p, _) = parse_ice_parameters(v)?;
        self.restart_ice(&u, &p);
        Ok(())
    }

    /// Drive the Rtc for `dur` of wall time (at least one iteration, at most 120 s): read
    /// datagrams (2 ms read timeout), fire due timers, send what str0m wants sent.
    pub fn pump(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur.min(MAX_PUMP);
        let mut buf = vec![0u8; 2048];
        // Each iteration either handles a datagram or waits <= READ_TIMEOUT, so this bound
        // is never the limiting factor unless something spins.
        let max_iters = 10_000 + (dur.min(MAX_PUMP).as_micros() as u64 / 100);
        for _ in 0..max_iters {
            if Instant::now() >= self.next_timeout {
                self.tick();
            }
            self.read_tcp();
            match self.socket.recv_from(&mut buf) {
                Ok((n, src)) => self.handle_datagram(src, &buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e)
                    if e.kind() == ErrorKind::ConnectionRefused
                        || e.kind() == ErrorKind::ConnectionReset =>
                {
                    // ICMP port unreachable from an earlier send (SFU socket closed): ignore.
                }
                Err(e) => {
                    self.note(format!("socket error: {e}"));
                    std::thread::sleep(READ_TIMEOUT);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        if Instant::now() >= self.next_timeout {
            self.tick();
        }
    }

    /// Pump in small slices until `cond` holds (checked before the first slice) or `timeout`
    /// passes. Returns whether `cond` held.
    pub fn pump_until(&mut self, timeout: Duration, mut cond: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout.min(MAX_PUMP);
        loop {
            if cond(self) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.pump((deadline - now).min(Duration::from_millis(5)));
        }
    }

    /// ICE + DTLS + SRTP up (str0m's `is_connected`).
    pub fn is_connected(&self) -> bool {
        self.rtc.is_connected()
    }

    /// Whether str0m emitted `Event::Connected` at some point.
    pub fn was_connected(&self) -> bool {
        self.connected_event
    }

    pub fn ice_state(&self) -> IceConnectionState {
        self.ice_state
    }

    /// The Rtc is alive and no str0m call failed (fingerprint mismatch, DTLS failure, ...).
    pub fn is_alive(&self) -> bool {
        self.error.is_none() && self.rtc.is_alive()
    }

    /// The first error str0m returned, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    // ---------------------------------------------------------------- producing (Send)

    /// Declare a media section (mid, like Chrome's transceiver mids "0", "1", ...) and a tx
    /// stream with `ssrc` (+ `rtx_ssrc`). Calling again with the same mid adds another stream
    /// to it (simulcast: use [`Self::add_send_stream_rid`] to label layers).
    pub fn add_send_stream(&mut self, mid: &str, kind: &str, ssrc: u32, rtx_ssrc: Option<u32>) {
        self.add_send_stream_rid(mid, kind, ssrc, rtx_ssrc, None)
    }

    pub fn add_send_stream_rid(
        &mut self,
        mid: &str,
        kind: &str,
        ssrc: u32,
        rtx_ssrc: Option<u32>,
        rid: Option<&str>,
    ) {
        let (mid, kind) = self.ensure_media(mid, kind);
        let rid: Option<Rid> = rid.map(Rid::from);
        self.rtc.direct_api().declare_stream_tx(
            Ssrc::from(ssrc),
            rtx_ssrc.map(Ssrc::from),
            mid,
            rid,
        );
        self.drain();
        self.send_streams.insert(ssrc, (kind, mid));
    }

    /// Send one RTP packet on a declared send stream. `seq` is the *extended* sequence number
    /// (its upper bits become the SRTP ROC: start below 65536). Nackable, so str0m answers
    /// the SFU's NACKs with RTX when the stream has an RTX ssrc and the PT an RTX PT. The
    /// packet leaves before this returns (unless silent / filtered).
    pub fn send_rtp(
        &mut self,
        ssrc: u32,
        pt: u8,
        seq: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) {
        self.send_rtp_ext(
            ssrc,
            pt,
            seq,
            timestamp,
            marker,
            payload,
            ExtensionValues::default(),
        )
    }

    /// [`Self::send_rtp`] with header-extension values (audio level, video orientation, ...),
    /// written with this peer's ext ids if they are in its map.
    #[allow(clippy::too_many_arguments)]
    pub fn send_rtp_ext(
        &mut self,
        ssrc: u32,
        pt: u8,
        seq: u64,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        ext: ExtensionValues,
    ) {
        assert!(
            self.send_streams.contains_key(&ssrc),
            "test peer: send_rtp on undeclared ssrc {ssrc}"
        );
        let now = Instant::now();
        {
            let mut api = self.rtc.direct_api();
            let tx = api
                .stream_tx(&Ssrc::from(ssrc))
                .expect("declared stream_tx");
            tx.write_rtp(
                RtpWrite::new(
                    Pt::new_with_value(pt),
                    seq.into(),
                    timestamp,
                    now,
                    payload.to_vec(),
                )
                .marker(marker)
                .nackable(true)
                .ext_vals(ext),
            );
        }
        self.drain();
        // write_rtp only queues; the packet leaves on the next timeout handling.
        self.tick();
        self.rtp_sent += 1;
    }

    /// Number of `KeyframeRequest` events seen (PLI/FIR from the SFU on our send streams).
    pub fn keyframe_requests(&self) -> usize {
        self.keyframe_reqs.len()
    }

    /// Keyframe requests for the media section `mid`.
    pub fn keyframe_requests_for(&self, mid: &str) -> usize {
        let mid = Mid::from(mid);
        self.keyframe_reqs.iter().filter(|k| k.mid == mid).count()
    }

    pub fn keyframe_request_log(&self) -> &[KeyframeRequest] {
        &self.keyframe_reqs
    }

    // ---------------------------------------------------------------- consuming (Recv)

    /// Declare a media section + rx stream for a consumer's ssrc (+ rtx), from `newConsumer`
    /// `rtpParameters.encodings[0]`. Declare it before the SFU starts sending (before
    /// `enableConsumer`), like the browser does via the remote offer. Audio without RTX gets
    /// NACKs suppressed.
    pub fn add_recv_stream(&mut self, mid: &str, kind: &str, ssrc: u32, rtx_ssrc: Option<u32>) {
        let (mid, kind) = self.ensure_media(mid, kind);
        {
            let mut api = self.rtc.direct_api();
            let rx = api.expect_stream_rx(Ssrc::from(ssrc), rtx_ssrc.map(Ssrc::from), mid, None);
            if kind == MediaKind::Audio && rtx_ssrc.is_none() {
                rx.suppress_nack(true);
            }
        }
        self.drain();
        self.recv_streams.insert(ssrc, (kind, mid));
    }

    /// [`Self::add_recv_stream`] from a `newConsumer` notification (or ConsumerInfo): mid is
    /// `<kind[0]><consumer id>` like the Chrome70 handler; ssrc/rtx from `encodings[0]`.
    /// Returns the media ssrc.
    pub fn add_recv_stream_from_consumer(&mut self, consumer: &Value) -> Result<u32, String> {
        let id = consumer
            .get("id")
            .map(|v| v.to_string())
            .ok_or("consumer without id")?;
        let kind = match consumer.get("kind").and_then(Value::as_str) {
            Some("audio") => "audio",
            Some("video") => "video",
            k => return Err(format!("consumer kind {k:?}")),
        };
        let enc = consumer
            .pointer("/rtpParameters/encodings/0")
            .ok_or("consumer without encodings[0]")?;
        let ssrc = enc
            .get("ssrc")
            .and_then(Value::as_u64)
            .ok_or("encodings[0] without ssrc")? as u32;
        let rtx = enc
            .pointer("/rtx/ssrc")
            .and_then(Value::as_u64)
            .map(|s| s as u32);
        let mid = format!("{}{}", &kind[..1], id);
        self.add_recv_stream(&mid, kind, ssrc, rtx);
        Ok(ssrc)
    }

    /// Everything received so far, in arrival order (RTX-repaired packets appear under the
    /// media ssrc when they arrive).
    pub fn received(&self) -> &[ReceivedRtp] {
        &self.received
    }

    pub fn received_for(&self, ssrc: u32) -> Vec<&ReceivedRtp> {
        self.received.iter().filter(|r| r.ssrc == ssrc).collect()
    }

    pub fn clear_received(&mut self) {
        self.received.clear();
    }

    /// Send a PLI upstream for a recv stream, as a browser consumer would.
    pub fn request_keyframe(&mut self, ssrc: u32) {
        self.request_keyframe_kind(ssrc, KeyframeRequestKind::Pli)
    }

    pub fn request_keyframe_kind(&mut self, ssrc: u32, kind: KeyframeRequestKind) {
        {
            let mut api = self.rtc.direct_api();
            let rx = api
                .stream_rx(&Ssrc::from(ssrc))
                .unwrap_or_else(|| panic!("test peer: request_keyframe on undeclared ssrc {ssrc}"));
            rx.request_keyframe(kind);
        }
        self.drain();
        self.tick();
    }

    // ---------------------------------------------------------------- loss / silence

    /// Drop chosen *incoming* datagrams before str0m sees them (the closure sees the raw
    /// datagram: STUN, DTLS or SRTP/SRTCP; use [`peek_rtp`] for RTP headers).
    pub fn set_drop_filter(&mut self, f: Option<DropFilter>) {
        self.recv_filter = f;
    }

    /// Drop chosen *outgoing* datagrams (simulates loss on the way to the SFU).
    pub fn set_send_drop_filter(&mut self, f: Option<DropFilter>) {
        self.send_filter = f;
    }

    /// Drop the next incoming RTP packet with this ssrc and 16-bit sequence number (once).
    /// RTX retransmissions use the RTX ssrc, so the repair is not dropped.
    pub fn drop_next_rtp_with_seq(&mut self, ssrc: u32, seq: u16) {
        self.drop_in.push((ssrc, seq));
    }

    /// Drop our next outgoing RTP packet with this ssrc and sequence number (once).
    pub fn drop_next_outgoing_rtp_with_seq(&mut self, ssrc: u32, seq: u16) {
        self.drop_out.push((ssrc, seq));
    }

    /// Reorder on the way to the SFU: the outgoing RTP packet (ssrc, seq) leaves right
    /// after the packet that follows it.
    pub fn swap_next_outgoing_rtp_with_seq(&mut self, ssrc: u32, seq: u16) {
        self.swap_out.push((ssrc, seq));
    }

    /// Stop sending anything (killed tab / network black hole). Incoming datagrams are read
    /// and discarded; timers still run but their output is discarded.
    pub fn go_silent(&mut self) {
        self.silent = true;
    }

    /// Undo [`Self::go_silent`] (network comes back).
    pub fn set_silent(&mut self, silent: bool) {
        self.silent = silent;
    }

    pub fn is_silent(&self) -> bool {
        self.silent
    }

    // ---------------------------------------------------------------- introspection

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Debug names of the str0m events seen, in order (RTP packets and stats not included;
    /// see `received()`, `egress_stats()`, `ingress_stats()`), plus "warning: ..." notes.
    pub fn events_seen(&self) -> Vec<String> {
        self.events.clone()
    }

    /// Last `MediaEgressStats` for a send mid (nacks/plis/firs received from the SFU, ...).
    pub fn egress_stats(&self, mid: &str) -> Option<&MediaEgressStats> {
        self.egress_stats.get(&Mid::from(mid))
    }

    /// Last `MediaIngressStats` for a recv mid (nacks/plis we sent, loss, ...).
    pub fn ingress_stats(&self, mid: &str) -> Option<&MediaIngressStats> {
        self.ingress_stats.get(&Mid::from(mid))
    }

    /// Counters: (datagrams received, datagrams sent, incoming dropped, outgoing dropped).
    pub fn datagram_counters(&self) -> (u64, u64, u64, u64) {
        (
            self.dgrams_in,
            self.dgrams_out,
            self.dropped_in,
            self.dropped_out,
        )
    }

    /// RTP packets written with `send_rtp*`.
    pub fn rtp_sent(&self) -> u64 {
        self.rtp_sent
    }

    /// The SFU parameters given to `connect` (ufrag/pwd updated by `restart_ice`).
    pub fn remote_params(&self) -> Option<&TransportParams> {
        self.remote.as_ref()
    }

    /// Escape hatch: run `f` on the Rtc, then drain its output (single-mutation rule).
    pub fn with_rtc<R>(&mut self, f: impl FnOnce(&mut Rtc) -> R) -> R {
        let r = f(&mut self.rtc);
        self.drain();
        self.tick();
        r
    }

    /// Tear the Rtc down at once (nothing more is sent or accepted, no close_notify).
    pub fn close(&mut self) {
        self.rtc.disconnect();
        self.drain();
    }

    /// Close like `pc.close()`: RTCP BYE + DTLS close_notify, then pump (at most 200 ms)
    /// until str0m has flushed them.
    pub fn close_graceful(&mut self) {
        if let Err(e) = self.rtc.close() {
            self.fail(format!("close: {e}"));
            return;
        }
        self.drain();
        self.tick();
        self.pump_until(Duration::from_millis(200), |p| !p.rtc.is_alive());
    }

    // ---------------------------------------------------------------- internals

    fn ensure_media(&mut self, mid: &str, kind: &str) -> (Mid, MediaKind) {
        let kind = match kind {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            k => panic!("test peer: kind must be \"audio\" or \"video\", got {k:?}"),
        };
        assert!(
            !mid.is_empty() && mid.len() <= 16,
            "test peer: mid {mid:?} must be 1..=16 bytes"
        );
        let mid = Mid::from(mid);
        if let Some(m) = self.rtc.media(mid) {
            assert_eq!(
                m.kind(),
                kind,
                "test peer: mid {mid} already declared with another kind"
            );
        } else {
            self.rtc.direct_api().declare_media(mid, kind);
            self.drain();
        }
        (mid, kind)
    }

    fn note(&mut self, s: String) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(s);
        }
    }

    fn fail(&mut self, s: String) {
        self.note(format!("error: {s}"));
        if self.error.is_none() {
            self.error = Some(s);
        }
    }

    /// `handle_input(Timeout(now))` + drain.
    fn tick(&mut self) {
        if self.error.is_some() {
            self.next_timeout = Instant::now() + Duration::from_secs(3600);
            return;
        }
        let now = Instant::now();
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.fail(format!("handle_input(Timeout): {e}"));
        }
        self.drain();
    }

    /// Frames that arrived on the ICE-TCP connection (RFC 4571: 2-byte length, data).
    fn read_tcp(&mut self) {
        let Some(link) = self.tcp.as_mut() else { return };
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match link.stream.read(&mut tmp) {
                Ok(0) => {
                    let msg = "TCP connection closed by the SFU".to_string();
                    self.tcp = None;
                    self.note(msg);
                    return;
                }
                Ok(n) => link.rx.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let msg = format!("TCP read: {e}");
                    self.tcp = None;
                    self.note(msg);
                    return;
                }
            }
        }
        let mut frames = Vec::new();
        let mut at = 0;
        while link.rx.len() >= at + 2 {
            let len = u16::from_be_bytes([link.rx[at], link.rx[at + 1]]) as usize;
            if link.rx.len() < at + 2 + len {
                break;
            }
            frames.push(link.rx[at + 2..at + 2 + len].to_vec());
            at += 2 + len;
        }
        link.rx.drain(..at);
        let (remote, local) = (link.remote, link.local);
        for f in frames {
            self.handle_packet(Protocol::Tcp, remote, local, &f);
        }
    }

    fn handle_datagram(&mut self, src: SocketAddr, buf: &[u8]) {
        let local = self.local;
        self.handle_packet(Protocol::Udp, src, local, buf);
    }

    fn handle_packet(&mut self, proto: Protocol, src: SocketAddr, dst: SocketAddr, buf: &[u8]) {
        self.dgrams_in += 1;
        if self.silent || self.error.is_some() {
            self.dropped_in += 1;
            return;
        }
        if let Some(f) = self.recv_filter.as_mut() {
            if f(buf) {
                self.dropped_in += 1;
                return;
            }
        }
        if !self.drop_in.is_empty() {
            if let Some((ssrc, seq, _)) = peek_rtp(buf) {
                if let Some(i) = self.drop_in.iter().position(|d| *d == (ssrc, seq)) {
                    self.drop_in.remove(i);
                    self.dropped_in += 1;
                    return;
                }
            }
        }
        let now = Instant::now();
        let r = match Receive::new(proto, src, dst, buf) {
            Ok(r) => r,
            Err(e) => {
                self.note(format!(
                    "warning: unparseable datagram from {src} ({} bytes): {e:?}",
                    buf.len()
                ));
                return;
            }
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, r)) {
            self.fail(format!("handle_input(Receive): {e}"));
        }
        self.drain();
    }

    fn drain(&mut self) {
        for _ in 0..MAX_DRAIN {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Output::Transmit(t)) => self.transmit(t.proto, t.destination, &t.contents),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.fail(format!("poll_output: {e}"));
                    self.next_timeout = Instant::now() + Duration::from_secs(3600);
                    return;
                }
            }
        }
        self.note("warning: drain did not reach a Timeout".to_string());
        self.next_timeout = Instant::now();
    }

    fn transmit(&mut self, proto: Protocol, dst: SocketAddr, buf: &[u8]) {
        if self.silent {
            self.dropped_out += 1;
            return;
        }
        if let Some(f) = self.send_filter.as_mut() {
            if f(buf) {
                self.dropped_out += 1;
                return;
            }
        }
        if !self.drop_out.is_empty() {
            if let Some((ssrc, seq, _)) = peek_rtp(buf) {
                if let Some(i) = self.drop_out.iter().position(|d| *d == (ssrc, seq)) {
                    self.drop_out.remove(i);
                    self.dropped_out += 1;
                    return;
                }
            }
        }
        if !self.swap_out.is_empty() {
            if let Some((ssrc, seq, _)) = peek_rtp(buf) {
                if let Some(i) = self.swap_out.iter().position(|d| *d == (ssrc, seq)) {
                    self.swap_out.remove(i);
                    self.held_out = Some((proto, dst, buf.to_vec()));
                    return;
                }
            }
        }
        self.send_now(proto, dst, buf);
        if peek_rtp(buf).is_some() {
            if let Some((p, d, b)) = self.held_out.take() {
                self.send_now(p, d, &b);
            }
        }
    }

    fn send_now(&mut self, proto: Protocol, dst: SocketAddr, buf: &[u8]) {
        if proto != Protocol::Udp {
            let Some(link) = self.tcp.as_mut() else {
                self.dropped_out += 1;
                return;
            };
            let mut framed = (buf.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(buf);
            let mut at = 0;
            let deadline = Instant::now() + Duration::from_secs(2);
            while at < framed.len() && Instant::now() < deadline {
                match link.stream.write(&framed[at..]) {
                    Ok(n) => at += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(200)),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if at == framed.len() {
                self.dgrams_out += 1;
            } else {
                self.note("warning: TCP write failed".to_string());
            }
            return;
        }
        match self.socket.send_to(buf, dst) {
            Ok(_) => self.dgrams_out += 1,
            Err(e) => self.note(format!("warning: send_to {dst}: {e}")),
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::RtpPacket(p) => {
                if self.received.len() < MAX_RECEIVED {
                    self.received.push(ReceivedRtp {
                        ssrc: *p.header.ssrc,
                        pt: *p.header.payload_type,
                        seq: p.header.sequence_number,
                        ext_seq: *p.seq_no,
                        timestamp: p.header.timestamp,
                        marker: p.header.marker,
                        payload: p.payload.to_vec(),
                        ext_vals: p.header.ext_vals.clone(),
                        at: p.timestamp,
                    });
                }
            }
            Event::KeyframeRequest(k) => {
                self.note(format!(
                    "KeyframeRequest({:?} mid={} rid={:?})",
                    k.kind, k.mid, k.rid
                ));
                self.keyframe_reqs.push(k);
            }
            Event::Connected => {
                self.connected_event = true;
                self.note("Connected".to_string());
            }
            Event::IceConnectionStateChange(s) => {
                self.ice_state = s;
                self.note(format!("IceConnectionStateChange({s:?})"));
            }
            Event::MediaEgressStats(s) => {
                self.egress_stats.insert(s.mid, s);
            }
            Event::MediaIngressStats(s) => {
                self.ingress_stats.insert(s.mid, s);
            }
            Event::PeerStats(_) => {}
            other => {
                let d = format!("{other:?}");
                // Keep it short: variant name plus a bounded amount of detail.
                let d: String = d.chars().take(200).collect();
                self.note(d);
            }
        }
    }
}

impl std::fmt::Debug for BrowserTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserTransport")
            .field("direction", &self.direction)
            .field("local", &self.local)
            .field("connected", &self.rtc.is_connected())
            .field("ice_state", &self.ice_state)
            .field("error", &self.error)
            .field("silent", &self.silent)
            .field("received", &self.received.len())
            .field("keyframe_requests", &self.keyframe_reqs.len())
            .field("datagrams_in_out", &(self.dgrams_in, self.dgrams_out))
            .finish()
    }
}

/// Pump several peers in turn for `dur` (each gets ~1 ms slices), so none of them starves
/// while the others are driven. At least one slice each.
pub fn pump_all(peers: &mut [&mut BrowserTransport], dur: Duration) {
    let deadline = Instant::now() + dur.min(MAX_PUMP);
    loop {
        for p in peers.iter_mut() {
            p.pump(Duration::from_millis(1));
        }
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// [`pump_all`] until `cond` holds (checked before the first round) or `timeout` passes.
pub fn pump_all_until(
    peers: &mut [&mut BrowserTransport],
    timeout: Duration,
    mut cond: impl FnMut(&[&mut BrowserTransport]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout.min(MAX_PUMP);
    loop {
        if cond(peers) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        for p in peers.iter_mut() {
            p.pump(Duration::from_millis(1));
        }
    }
}
