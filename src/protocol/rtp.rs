//! ORTC-style RTP structures of the mediasoup v2 protocol (docs/PROTOCOL.md, "RTP
//! capabilities and parameters").
//!
//! Decoding is lenient about unknown fields (browsers and client versions add some)
//! and strict about the types of the fields it uses.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{type, parameter?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcpFeedback {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl RtcpFeedback {
    pub fn new(kind: &str, parameter: Option<&str>) -> Self {
        RtcpFeedback {
            kind: kind.into(),
            parameter: parameter.map(Into::into),
        }
    }
    /// Same type and same parameter, an empty parameter meaning none.
    pub fn same(&self, o: &RtcpFeedback) -> bool {
        let p = |x: &Option<String>| x.clone().filter(|s| !s.is_empty());
        self.kind == o.kind && p(&self.parameter) == p(&o.parameter)
    }
}

/// One codec of an `RtpCapabilities` (room capabilities or a peer's join caps).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecCapability {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    pub clock_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default)]
    pub preferred_payload_type: Option<u8>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub rtcp_feedback: Option<Vec<RtcpFeedback>>,
}

/// One header extension of an `RtpCapabilities`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtensionCapability {
    #[serde(default)]
    pub kind: Option<String>,
    pub uri: String,
    pub preferred_id: u8,
    #[serde(default)]
    pub preferred_encrypt: Option<bool>,
}

/// `{codecs, headerExtensions, fecMechanisms}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCapabilities {
    pub codecs: Vec<RtpCodecCapability>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtensionCapability>,
    #[serde(default)]
    pub fec_mechanisms: Vec<Value>,
}

/// One codec of `RtpParameters` (a producer's or a consumer's).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecParameters {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    pub clock_rate: u32,
    pub payload_type: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub rtcp_feedback: Option<Vec<RtcpFeedback>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxptime: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptime: Option<Value>,
}

/// `{uri, id, encrypt?, parameters?}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RtpHeaderExtensionParameters {
    pub uri: String,
    pub id: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `{ssrc}` of an encoding's RTX stream.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RtxParameters {
    pub ssrc: u32,
}

/// One encoding (an RTP stream, or a simulcast layer).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEncodingParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec_payload_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtxParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<Value>,
}

/// `{cname?, reducedSize?, mux?, ssrc?}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtcpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduced_size: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mux: Option<bool>,
}

/// `{muxId?, codecs, headerExtensions?, encodings, rtcp?}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mux_id: Option<String>,
    pub codecs: Vec<RtpCodecParameters>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    #[serde(default)]
    pub encodings: Vec<RtpEncodingParameters>,
    #[serde(default)]
    pub rtcp: Option<RtcpParameters>,
}

/// `{algorithm, value}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtlsFingerprint {
    pub algorithm: String,
    pub value: String,
}

/// `{role?, fingerprints}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtlsParameters {
    #[serde(default)]
    pub role: Option<String>,
    pub fingerprints: Vec<DtlsFingerprint>,
}

/// The codec name of a codec entry: `name`, else the part of `mimeType` after '/'.
pub fn codec_name(name: &Option<String>, mime_type: &Option<String>) -> Option<String> {
    if let Some(n) = name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    mime_type
        .as_ref()
        .and_then(|m| m.split_once('/'))
        .map(|(_, n)| n.to_string())
        .filter(|n| !n.is_empty())
}

/// The kind part of a `mimeType` ("audio/opus" -> "audio").
pub fn mime_kind(mime_type: &Option<String>) -> Option<String> {
    mime_type
        .as_ref()
        .and_then(|m| m.split_once('/'))
        .map(|(k, _)| k.to_ascii_lowercase())
}

/// An integer fmtp parameter (JSON number, or a numeric string for leniency).
pub fn int_param(params: &Option<Map<String, Value>>, key: &str) -> Option<i64> {
    let v = params.as_ref()?.get(key)?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}
