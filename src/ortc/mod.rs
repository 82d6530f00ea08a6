//! RTP negotiation (ORTC rules, docs/PROTOCOL.md "RTP capabilities and parameters"):
//! building the room's codecs from `mediaCodecs`, validating a peer's join capabilities,
//! mapping a producer's parameters to room payload types and extension ids, and deriving
//! a consumer's parameters. Pure functions of the protocol's types: no room, no media.

use serde_json::{json, Map, Value};

use crate::error::{ReqError, ReqResult};
use crate::protocol::rtp::{
    codec_name, int_param, mime_kind, RtcpFeedback, RtcpParameters, RtpCapabilities,
    RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtensionParameters, RtpParameters,
    RtxParameters,
};

/// Media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "audio" => Some(Kind::Audio),
            "video" => Some(Kind::Video),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

pub const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const URI_TWCC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const URI_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub const URI_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
pub const URI_TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";

/// The room's header extensions. The ids are Chrome's own (and str0m's
/// `ExtensionMap::standard()`), so a Chrome producer's ids equal the room's
/// (docs/PROTOCOL.md, "RTP capabilities and parameters"; str0m fixes the ids per `Rtc`:
/// docs/ARCHITECTURE.md, "str0m and the protocol"); transport-wide-cc is included so
/// that str0m's TWCC feedback drives the browser's bandwidth estimation.
const ROOM_EXTENSIONS: &[(Kind, &str, u8)] = &[
    (Kind::Audio, URI_AUDIO_LEVEL, 1),
    (Kind::Audio, URI_ABS_SEND_TIME, 2),
    (Kind::Audio, URI_TWCC, 3),
    (Kind::Audio, URI_MID, 4),
    (Kind::Video, URI_ABS_SEND_TIME, 2),
    (Kind::Video, URI_TWCC, 3),
    (Kind::Video, URI_MID, 4),
    (Kind::Video, URI_RID, 10),
    (Kind::Video, URI_VIDEO_ORIENTATION, 13),
    (Kind::Video, URI_TOFFSET, 14),
];

/// The room header-extension table (kind, URI, id).
pub fn room_extension_table() -> &'static [(Kind, &'static str, u8)] {
    ROOM_EXTENSIONS
}

/// A codec the SFU can carry: (kind, canonical name, clock rate, channels, static PT).
const SUPPORTED: &[(Kind, &str, u32, Option<u8>, Option<u8>)] = &[
    (Kind::Audio, "opus", 48000, Some(2), None),
    (Kind::Audio, "PCMU", 8000, Some(1), Some(0)),
    (Kind::Audio, "PCMA", 8000, Some(1), Some(8)),
    (Kind::Audio, "G722", 8000, Some(1), Some(9)),
    (Kind::Video, "VP8", 90000, None, None),
    (Kind::Video, "VP9", 90000, None, None),
    (Kind::Video, "H264", 90000, None, None),
];

/// Dynamic payload types in mediasoup's order (docs/PROTOCOL.md, "RTP capabilities and
/// parameters").
fn dynamic_pts() -> impl Iterator<Item = u8> {
    (100..=127).chain(96..=99).chain(77..=95).chain(35..=71)
}

/// One media codec of the room, with its RTX payload type if it has one.
#[derive(Debug, Clone)]
pub struct RoomCodec {
    pub kind: Kind,
    pub name: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    pub pt: u8,
    pub rtx_pt: Option<u8>,
    pub parameters: Map<String, Value>,
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

impl RoomCodec {
    pub fn mime_type(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }

    fn packetization_mode(&self) -> i64 {
        int_param(&Some(self.parameters.clone()), "packetization-mode").unwrap_or(0)
    }

    /// The codec entry as in `rtpCapabilities.codecs`.
    fn capability_json(&self) -> Value {
        let mut c = json!({
            "kind": self.kind.as_str(),
            "name": self.name,
            "mimeType": self.mime_type(),
            "clockRate": self.clock_rate,
            "preferredPayloadType": self.pt,
            "parameters": self.parameters,
            "rtcpFeedback": self.rtcp_feedback,
        });
        if let Some(ch) = self.channels {
            c["channels"] = json!(ch);
        }
        c
    }

    fn rtx_capability_json(&self, rtx_pt: u8) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "name": "rtx",
            "mimeType": format!("{}/rtx", self.kind.as_str()),
            "clockRate": self.clock_rate,
            "preferredPayloadType": rtx_pt,
            "parameters": { "apt": self.pt },
            "rtcpFeedback": [],
        })
    }

    /// The codec entry as in `rtpParameters.codecs` (consumable parameters).
    fn parameters(&self, rtcp_feedback: Vec<RtcpFeedback>) -> RtpCodecParameters {
        RtpCodecParameters {
            name: Some(self.name.clone()),
            mime_type: Some(self.mime_type()),
            clock_rate: self.clock_rate,
            payload_type: self.pt,
            channels: self.channels,
            parameters: Some(self.parameters.clone()),
            rtcp_feedback: Some(rtcp_feedback),
            maxptime: None,
            ptime: None,
        }
    }

    fn rtx_parameters(&self, rtx_pt: u8) -> RtpCodecParameters {
        let mut apt = Map::new();
        apt.insert("apt".into(), json!(self.pt));
        RtpCodecParameters {
            name: Some("rtx".into()),
            mime_type: Some(format!("{}/rtx", self.kind.as_str())),
            clock_rate: self.clock_rate,
            payload_type: rtx_pt,
            channels: None,
            parameters: Some(apt),
            rtcp_feedback: Some(vec![]),
            maxptime: None,
            ptime: None,
        }
    }
}

/// What a session description needs of a codec.
#[derive(Debug, Clone)]
pub struct RtpCodecInfo {
    pub pt: u8,
    pub name: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
    /// `a=fmtp` parameters, `key=value` joined with `;`.
    pub fmtp: String,
}

impl RtpCodecInfo {
    pub fn of(c: &RoomCodec) -> RtpCodecInfo {
        let fmtp = c
            .parameters
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(";");
        RtpCodecInfo { pt: c.pt, name: c.name.clone(), clock_rate: c.clock_rate, channels: c.channels, fmtp }
    }
}

/// A header extension of the room.
#[derive(Debug, Clone)]
pub struct RoomExt {
    pub kind: Kind,
    pub uri: &'static str,
    pub id: u8,
}

/// The room's RTP capabilities.
#[derive(Debug, Clone)]
pub struct RoomCaps {
    pub codecs: Vec<RoomCodec>,
    pub exts: Vec<RoomExt>,
}

fn feedback_for(kind: Kind, name: &str) -> Vec<RtcpFeedback> {
    match kind {
        Kind::Video => vec![
            RtcpFeedback::new("nack", None),
            RtcpFeedback::new("nack", Some("pli")),
            RtcpFeedback::new("ccm", Some("fir")),
            RtcpFeedback::new("goog-remb", None),
            RtcpFeedback::new("transport-cc", None),
        ],
        Kind::Audio if name.eq_ignore_ascii_case("opus") => {
            vec![RtcpFeedback::new("transport-cc", None)]
        }
        Kind::Audio => vec![],
    }
}

/// The default `mediaCodecs` when a room is created without options.
pub fn default_media_codecs() -> Value {
    json!([
        { "kind": "audio", "name": "opus", "clockRate": 48000, "channels": 2,
          "parameters": { "useinbandfec": 1, "minptime": 10 } },
        { "kind": "video", "name": "VP8", "clockRate": 90000 },
        { "kind": "video", "name": "VP9", "clockRate": 90000, "parameters": { "profile-id": 0 } },
        { "kind": "video", "name": "H264", "clockRate": 90000,
          "parameters": { "packetization-mode": 1, "profile-level-id": "42e01f",
                          "level-asymmetry-allowed": 1 } },
    ])
}

impl RoomCaps {
    /// Build the room capabilities from room options JSON (`None` = defaults).
    pub fn from_options(options: Option<&str>) -> Result<RoomCaps, String> {
        let codecs = match options.map(str::trim).filter(|s| !s.is_empty()) {
            None => default_media_codecs(),
            Some(s) => {
                let v: Value = serde_json::from_str(s)
                    .map_err(|e| format!("room options are not valid JSON: {e}"))?;
                let obj = v.as_object().ok_or("room options must be a JSON object")?;
                for k in obj.keys() {
                    if k != "mediaCodecs" {
                        return Err(format!("unknown room option `{k}`"));
                    }
                }
                match obj.get("mediaCodecs") {
                    None | Some(Value::Null) => default_media_codecs(),
                    Some(v) => v.clone(),
                }
            }
        };
        Self::from_media_codecs(&codecs)
    }

    /// Each entry must be a supported codec; PTs are assigned in order and every video
    /// codec gets an RTX codec right after it (docs/PROTOCOL.md, "RTP capabilities and
    /// parameters").
    pub fn from_media_codecs(list: &Value) -> Result<RoomCaps, String> {
        let list = list.as_array().ok_or("`mediaCodecs` must be an array")?;
        if list.is_empty() {
            return Err("`mediaCodecs` must not be empty".into());
        }
        let mut pts = dynamic_pts();
        let mut used: Vec<u8> = Vec::new();
        let mut next_pt = |used: &mut Vec<u8>| -> Result<u8, String> {
            for pt in pts.by_ref() {
                if !used.contains(&pt) {
                    used.push(pt);
                    return Ok(pt);
                }
            }
            Err("too many codecs: no payload type left".into())
        };
        let mut codecs: Vec<RoomCodec> = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let o = entry
                .as_object()
                .ok_or_else(|| format!("mediaCodecs[{i}] must be an object"))?;
            let kind_s = o
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("mediaCodecs[{i}].kind must be \"audio\" or \"video\""))?;
            let kind = Kind::parse(kind_s)
                .ok_or_else(|| format!("mediaCodecs[{i}].kind must be \"audio\" or \"video\""))?;
            let name = o
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| {
                    codec_name(
                        &None,
                        &o.get("mimeType")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                })
                .ok_or_else(|| format!("mediaCodecs[{i}].name must be a string"))?;
            let clock_rate = o
                .get("clockRate")
                .and_then(Value::as_u64)
                .filter(|c| *c > 0 && *c <= 1_000_000)
                .ok_or_else(|| format!("mediaCodecs[{i}].clockRate must be a positive integer"))?
                as u32;
            let channels = match o.get("channels") {
                None | Some(Value::Null) => None,
                Some(c) => Some(c.as_u64().filter(|c| (1..=8).contains(c)).ok_or_else(|| {
                    format!("mediaCodecs[{i}].channels must be an integer in 1..=8")
                })? as u8),
            };
            let parameters = match o.get("parameters") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err(format!("mediaCodecs[{i}].parameters must be an object")),
            };
            if name.eq_ignore_ascii_case("rtx") {
                return Err(format!(
                    "mediaCodecs[{i}]: rtx is added by the room, do not list it"
                ));
            }
            let sup = SUPPORTED
                .iter()
                .find(|(k, n, c, ch, _)| {
                    *k == kind
                        && n.eq_ignore_ascii_case(&name)
                        && *c == clock_rate
                        && match kind {
                            // opus is always stereo in SDP; other audio defaults to mono.
                            Kind::Audio => {
                                channels.unwrap_or(*ch.as_ref().unwrap_or(&1)) == ch.unwrap_or(1)
                            }
                            Kind::Video => true,
                        }
                })
                .ok_or_else(|| {
                    format!(
                        "mediaCodecs[{i}]: unsupported codec {}/{name}/{clock_rate}{}",
                        kind.as_str(),
                        channels.map(|c| format!("/{c}")).unwrap_or_default()
                    )
                })?;
            if sup.1 == "H264" {
                let pm = int_param(&Some(parameters.clone()), "packetization-mode").unwrap_or(0);
                if pm != 0 && pm != 1 {
                    return Err(format!(
                        "mediaCodecs[{i}]: H264 packetization-mode must be 0 or 1"
                    ));
                }
                if let Some(p) = parameters.get("profile-level-id") {
                    let ok = p
                        .as_str()
                        .map(|s| s.len() == 6 && u32::from_str_radix(s, 16).is_ok())
                        .unwrap_or(false);
                    if !ok {
                        return Err(format!(
                            "mediaCodecs[{i}]: H264 profile-level-id must be 6 hex digits"
                        ));
                    }
                }
            }
            for (k, v) in &parameters {
                if !(v.is_string() || v.is_number()) {
                    return Err(format!(
                        "mediaCodecs[{i}].parameters.{k} must be a string or a number"
                    ));
                }
            }
            let pt = match sup.4 {
                Some(static_pt) => {
                    if used.contains(&static_pt) {
                        return Err(format!("mediaCodecs[{i}]: duplicate codec {}", sup.1));
                    }
                    used.push(static_pt);
                    static_pt
                }
                None => next_pt(&mut used)?,
            };
            let channels = match kind {
                Kind::Audio => Some(sup.3.unwrap_or(1)),
                Kind::Video => None,
            };
            let mut codec = RoomCodec {
                kind,
                name: sup.1.to_string(),
                clock_rate,
                channels,
                pt,
                rtx_pt: None,
                parameters,
                rtcp_feedback: feedback_for(kind, sup.1),
            };
            // The same codec twice (H264 with two packetization modes is distinct).
            if codecs.iter().any(|c| {
                c.kind == codec.kind
                    && c.name == codec.name
                    && c.clock_rate == codec.clock_rate
                    && c.packetization_mode() == codec.packetization_mode()
                    && c.parameters == codec.parameters
            }) {
                return Err(format!(
                    "mediaCodecs[{i}]: duplicate codec {}",
                    codec.mime_type()
                ));
            }
            if kind == Kind::Video {
                codec.rtx_pt = Some(next_pt(&mut used)?);
            }
            codecs.push(codec);
        }
        let exts = ROOM_EXTENSIONS
            .iter()
            .map(|(k, u, id)| RoomExt {
                kind: *k,
                uri: u,
                id: *id,
            })
            .collect();
        Ok(RoomCaps { codecs, exts })
    }

    /// `rtpCapabilities` as sent in `queryRoom`/`join` responses.
    pub fn to_json(&self) -> Value {
        let mut codecs = Vec::new();
        for c in &self.codecs {
            codecs.push(c.capability_json());
            if let Some(rtx) = c.rtx_pt {
                codecs.push(c.rtx_capability_json(rtx));
            }
        }
        let exts: Vec<Value> = self
            .exts
            .iter()
            .map(|e| json!({"kind": e.kind.as_str(), "uri": e.uri, "preferredId": e.id, "preferredEncrypt": false}))
            .collect();
        json!({ "codecs": codecs, "headerExtensions": exts, "fecMechanisms": [] })
    }

    pub fn codec_by_pt(&self, pt: u8) -> Option<&RoomCodec> {
        self.codecs.iter().find(|c| c.pt == pt)
    }

    pub fn codec_by_rtx_pt(&self, pt: u8) -> Option<&RoomCodec> {
        self.codecs.iter().find(|c| c.rtx_pt == Some(pt))
    }

    pub fn ext_by_uri(&self, uri: &str) -> Option<&RoomExt> {
        self.exts.iter().find(|e| e.uri == uri)
    }

    /// A peer without join capabilities (seed-shaped join) receives everything.
    pub fn all_as_peer_caps(&self) -> PeerCaps {
        let mut codecs = Vec::new();
        for c in &self.codecs {
            codecs.push((c.pt, c.rtcp_feedback.clone()));
            if let Some(r) = c.rtx_pt {
                codecs.push((r, vec![]));
            }
        }
        PeerCaps {
            codecs,
            ext_ids: self.exts.iter().map(|e| e.id).collect(),
        }
    }

    /// Validate a peer's `join.rtpCapabilities` (docs/PROTOCOL.md, "RTP capabilities and
    /// parameters").
    pub fn validate_peer_caps(&self, caps: &RtpCapabilities) -> ReqResult<PeerCaps> {
        let mut out = PeerCaps {
            codecs: Vec::new(),
            ext_ids: Vec::new(),
        };
        for c in &caps.codecs {
            let name = codec_name(&c.name, &c.mime_type)
                .ok_or("unsupported codec [missing name/mimeType]")?;
            let pt = c.preferred_payload_type.ok_or_else(|| {
                ReqError(format!(
                    "unsupported codec [{name}: missing preferredPayloadType]"
                ))
            })?;
            let describe = || format!("unsupported codec [name:{name}, payloadType:{pt}]");
            let kind = c
                .kind
                .as_deref()
                .map(str::to_string)
                .or_else(|| mime_kind(&c.mime_type));
            if name.eq_ignore_ascii_case("rtx") {
                let rc = self
                    .codec_by_rtx_pt(pt)
                    .ok_or_else(|| ReqError(describe()))?;
                if c.clock_rate != rc.clock_rate
                    || kind.as_deref().is_some_and(|k| k != rc.kind.as_str())
                {
                    return Err(ReqError(describe()));
                }
                out.codecs.push((pt, vec![]));
                continue;
            }
            let rc = self.codec_by_pt(pt).ok_or_else(|| ReqError(describe()))?;
            let pm = int_param(&c.parameters, "packetization-mode").unwrap_or(0);
            let compatible = rc.name.eq_ignore_ascii_case(&name)
                && rc.clock_rate == c.clock_rate
                && kind.as_deref().is_none_or(|k| k == rc.kind.as_str())
                && (rc.kind == Kind::Video || c.channels.unwrap_or(1) == rc.channels.unwrap_or(1))
                && (!rc.name.eq_ignore_ascii_case("H264") || pm == rc.packetization_mode());
            if !compatible {
                return Err(ReqError(describe()));
            }
            let fb = c.rtcp_feedback.clone().unwrap_or_default();
            out.codecs.push((pt, fb));
        }
        for e in &caps.header_extensions {
            let ok = self.exts.iter().any(|re| {
                re.id == e.preferred_id
                    && re.uri == e.uri
                    && e.kind
                        .as_deref()
                        .is_none_or(|k| k.is_empty() || k == re.kind.as_str())
            });
            if !ok {
                return Err(ReqError(format!(
                    "unsupported header extension [uri:{}, preferredId:{}]",
                    e.uri, e.preferred_id
                )));
            }
            if !out.ext_ids.contains(&e.preferred_id) {
                out.ext_ids.push(e.preferred_id);
            }
        }
        Ok(out)
    }

    /// Validate a producer's `rtpParameters` and map them to the room (docs/PROTOCOL.md,
    /// "Producer mapping").
    pub fn map_producer(&self, kind: Kind, p: &RtpParameters) -> ReqResult<ProducerMapping> {
        let wrong = |m: String| ReqError(format!("wrong RTP parameters: {m}"));
        if let Some(mid) = &p.mux_id {
            if mid.is_empty() {
                return Err(wrong("empty muxId".into()));
            }
        }
        if p.codecs.is_empty() {
            return Err(wrong("no codecs".into()));
        }
        let mut seen = Vec::new();
        for c in &p.codecs {
            if seen.contains(&c.payload_type) {
                return Err(wrong(format!("duplicated payloadType {}", c.payload_type)));
            }
            if c.payload_type > 127 {
                return Err(wrong(format!("invalid payloadType {}", c.payload_type)));
            }
            seen.push(c.payload_type);
        }
        let mut map = ProducerMapping::default();
        // Media codecs first.
        for c in &p.codecs {
            let name = codec_name(&c.name, &c.mime_type)
                .ok_or_else(|| wrong("codec without name or mimeType".into()))?;
            if name.eq_ignore_ascii_case("rtx") {
                continue;
            }
            if let Some(k) = mime_kind(&c.mime_type) {
                if k != kind.as_str() {
                    return Err(wrong(format!(
                        "codec {name} is not of kind {}",
                        kind.as_str()
                    )));
                }
            }
            let pm = int_param(&c.parameters, "packetization-mode").unwrap_or(0);
            let rc = self
                .codecs
                .iter()
                .find(|rc| {
                    rc.kind == kind
                        && rc.name.eq_ignore_ascii_case(&name)
                        && rc.clock_rate == c.clock_rate
                        && (kind == Kind::Video
                            || c.channels.unwrap_or(1) == rc.channels.unwrap_or(1))
                        && (!rc.name.eq_ignore_ascii_case("H264") || pm == rc.packetization_mode())
                })
                .ok_or_else(|| {
                    wrong(format!(
                        "unsupported codec {}/{name}/{}",
                        kind.as_str(),
                        c.clock_rate
                    ))
                })?;
            map.codecs.push(CodecMap {
                producer_pt: c.payload_type,
                room_pt: rc.pt,
                producer_rtx_pt: None,
                room_rtx_pt: None,
            });
        }
        if map.codecs.is_empty() {
            return Err(wrong("no media codec".into()));
        }
        // Then RTX, which must point at a mapped media codec.
        for c in &p.codecs {
            let name = codec_name(&c.name, &c.mime_type).unwrap_or_default();
            if !name.eq_ignore_ascii_case("rtx") {
                continue;
            }
            let apt = int_param(&c.parameters, "apt")
                .ok_or_else(|| wrong(format!("RTX codec {} without apt", c.payload_type)))?;
            let cm = map
                .codecs
                .iter_mut()
                .find(|m| apt == m.producer_pt as i64)
                .ok_or_else(|| wrong(format!("RTX apt {apt} points to no media codec")))?;
            let room_rtx = self
                .codec_by_pt(cm.room_pt)
                .and_then(|rc| rc.rtx_pt)
                .ok_or_else(|| {
                    wrong(format!(
                        "the room has no RTX for payloadType {}",
                        cm.room_pt
                    ))
                })?;
            if cm.producer_rtx_pt.is_some() {
                return Err(wrong(format!("two RTX codecs for payloadType {apt}")));
            }
            cm.producer_rtx_pt = Some(c.payload_type);
            cm.room_rtx_pt = Some(room_rtx);
        }
        for e in &p.header_extensions {
            if !(1..=14).contains(&e.id) {
                return Err(wrong(format!(
                    "header extension id {} out of range 1..=14",
                    e.id
                )));
            }
            if let Some(re) = self.ext_by_uri(&e.uri) {
                if map.exts.iter().any(|x| x.producer_id == e.id) {
                    return Err(wrong(format!("duplicated header extension id {}", e.id)));
                }
                map.exts.push(ExtMap {
                    uri: re.uri,
                    producer_id: e.id,
                    room_id: re.id,
                });
            }
            // Unknown URIs are dropped (mediasoup's worker does the same).
        }
        // Encodings.
        if p.encodings.is_empty() {
            return Err(wrong("no encodings".into()));
        }
        let mut profiles: Vec<&str> = Vec::new();
        let mut ssrcs: Vec<u32> = Vec::new();
        for enc in &p.encodings {
            if let Some(pt) = enc.codec_payload_type {
                if !map.codecs.iter().any(|m| m.producer_pt == pt) {
                    return Err(wrong(format!(
                        "encoding codecPayloadType {pt} is not a media codec"
                    )));
                }
            }
            if let Some(prof) = enc.profile.as_deref() {
                if !matches!(prof, "low" | "medium" | "high" | "default" | "none") {
                    return Err(wrong(format!("invalid encoding profile {prof:?}")));
                }
                if profiles.contains(&prof) {
                    return Err(wrong(format!("duplicated encoding profile {prof:?}")));
                }
                profiles.push(prof);
            }
            for s in enc.ssrc.iter().chain(enc.rtx.as_ref().map(|r| &r.ssrc)) {
                if ssrcs.contains(s) {
                    return Err(wrong(format!("duplicated ssrc {s}")));
                }
                ssrcs.push(*s);
            }
            if enc.ssrc.is_none() && enc.encoding_id.is_none() {
                return Err(wrong("an encoding needs an ssrc (or an encodingId)".into()));
            }
        }
        if p.encodings.len() == 1
            && p.encodings[0]
                .profile
                .as_deref()
                .is_some_and(|x| x != "default")
        {
            return Err(wrong("a single encoding must not carry a profile".into()));
        }
        // Consumable parameters (docs/PROTOCOL.md, "Consumer parameters"): room codecs in
        // the producer's order, each with its room RTX; mapped extensions minus sdes:mid.
        for m in &map.codecs {
            let rc = self.codec_by_pt(m.room_pt).expect("mapped");
            map.consumable.push((rc.pt, false));
            if let Some(r) = rc.rtx_pt {
                map.consumable.push((r, true));
            }
        }
        map.encodings = p.encodings.clone();
        map.rtcp = p.rtcp.clone().unwrap_or_default();
        Ok(map)
    }
}

/// A peer's receive capabilities: the room PTs it accepts (with its RTCP feedback)
/// and the room header-extension ids.
#[derive(Debug, Clone, Default)]
pub struct PeerCaps {
    pub codecs: Vec<(u8, Vec<RtcpFeedback>)>,
    pub ext_ids: Vec<u8>,
}

impl PeerCaps {
    pub fn accepts_pt(&self, pt: u8) -> bool {
        self.codecs.iter().any(|(p, _)| *p == pt)
    }
    fn feedback(&self, pt: u8) -> Option<&Vec<RtcpFeedback>> {
        self.codecs.iter().find(|(p, _)| *p == pt).map(|(_, f)| f)
    }
}

/// Producer PT -> room PT (and RTX).
#[derive(Debug, Clone, Copy)]
pub struct CodecMap {
    pub producer_pt: u8,
    pub room_pt: u8,
    pub producer_rtx_pt: Option<u8>,
    pub room_rtx_pt: Option<u8>,
}

/// Producer header-extension id -> room id.
#[derive(Debug, Clone)]
pub struct ExtMap {
    pub uri: &'static str,
    pub producer_id: u8,
    pub room_id: u8,
}

/// The result of mapping a producer's parameters (docs/PROTOCOL.md, "Producer mapping").
#[derive(Debug, Clone, Default)]
pub struct ProducerMapping {
    pub codecs: Vec<CodecMap>,
    pub exts: Vec<ExtMap>,
    /// Room payload types in consumable order: (PT, is RTX).
    pub consumable: Vec<(u8, bool)>,
    pub encodings: Vec<RtpEncodingParameters>,
    pub rtcp: RtcpParameters,
}

impl ProducerMapping {
    /// Room PT for a producer PT (media or RTX): (room PT, is RTX).
    pub fn room_pt(&self, producer_pt: u8) -> Option<(u8, bool)> {
        for m in &self.codecs {
            if m.producer_pt == producer_pt {
                return Some((m.room_pt, false));
            }
            if m.producer_rtx_pt == Some(producer_pt) {
                return m.room_rtx_pt.map(|r| (r, true));
            }
        }
        None
    }

    /// (SSRC, RTX SSRC) of every encoding that has an SSRC.
    pub fn streams(&self) -> Vec<(u32, Option<u32>)> {
        self.encodings
            .iter()
            .filter_map(|e| e.ssrc.map(|s| (s, e.rtx.map(|r| r.ssrc))))
            .collect()
    }

    /// Every SSRC the producer uses, media and RTX.
    pub fn all_ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams()
            .into_iter()
            .flat_map(|(s, r)| std::iter::once(s).chain(r))
    }

    /// Simulcast profiles of the encodings, if any encoding carries one.
    pub fn profiles(&self) -> Vec<String> {
        self.encodings
            .iter()
            .filter_map(|e| e.profile.clone())
            .filter(|p| p != "default" && p != "none")
            .collect()
    }
}

/// The parameters of one consumer.
#[derive(Debug, Clone)]
pub struct ConsumerParams {
    /// The consumer's `rtpParameters`.
    pub rtp: RtpParameters,
    /// Room PTs of the media codecs kept, in order.
    pub media_pts: Vec<u8>,
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
}

/// Derive a consumer's parameters from the producer's consumable parameters and the
/// receiving peer's capabilities (docs/PROTOCOL.md, "Consumer parameters").
pub fn consumer_params(
    room: &RoomCaps,
    kind: Kind,
    mapping: &ProducerMapping,
    peer: &PeerCaps,
    ssrc: u32,
    rtx_ssrc: u32,
    use_rtx: bool,
) -> ConsumerParams {
    let mut codecs = Vec::new();
    let mut media_pts = Vec::new();
    let mut has_rtx = false;
    for &(pt, is_rtx) in &mapping.consumable {
        if !peer.accepts_pt(pt) || (is_rtx && !use_rtx) {
            continue;
        }
        if is_rtx {
            let Some(owner) = room.codec_by_rtx_pt(pt) else {
                continue;
            };
            if !media_pts.contains(&owner.pt) {
                continue;
            }
            has_rtx = true;
            codecs.push(owner.rtx_parameters(pt));
        } else {
            let Some(rc) = room.codec_by_pt(pt) else {
                continue;
            };
            media_pts.push(pt);
            codecs.push(rc.parameters(peer.feedback(pt).cloned().unwrap_or_default()));
        }
    }
    let ext_ids: Vec<u8> = mapping
        .exts
        .iter()
        .filter(|e| e.uri != URI_MID && peer.ext_ids.contains(&e.room_id))
        .filter(|e| {
            room.exts
                .iter()
                .any(|re| re.id == e.room_id && re.kind == kind)
        })
        .map(|e| e.room_id)
        .collect();
    let header_extensions = mapping
        .exts
        .iter()
        .filter(|e| ext_ids.contains(&e.room_id))
        .map(|e| RtpHeaderExtensionParameters {
            uri: e.uri.to_string(),
            id: e.room_id,
            encrypt: None,
            parameters: None,
        })
        .collect();
    let encoding = RtpEncodingParameters {
        ssrc: Some(ssrc),
        codec_payload_type: None,
        rtx: has_rtx.then_some(RtxParameters { ssrc: rtx_ssrc }),
        encoding_id: None,
        profile: None,
        active: None,
        max_bitrate: None,
    };
    let rtcp = RtcpParameters {
        cname: Some(
            mapping
                .rtcp
                .cname
                .clone()
                .unwrap_or_else(|| format!("sfu-{ssrc}")),
        ),
        reduced_size: Some(mapping.rtcp.reduced_size.unwrap_or(true)),
        mux: Some(true),
    };
    ConsumerParams {
        rtp: RtpParameters {
            mux_id: None,
            codecs,
            header_extensions,
            encodings: vec![encoding],
            rtcp: Some(rtcp),
        },
        media_pts,
        ssrc,
        rtx_ssrc: has_rtx.then_some(rtx_ssrc),
    }
}
