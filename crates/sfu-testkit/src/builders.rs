//! The messages a mediasoup-client 2.4.12 sends, as the Chrome70 and Firefox65 handlers
//! build them: join capabilities, producer parameters with each browser's payload types
//! and header-extension ids, DTLS parameters.

use serde_json::{json, Value};

/// What mediasoup-client computes from the room caps for a Chrome that supports every
/// room codec: room PTs, room ids, RTX kept.
pub fn client_caps(room: &Value) -> Value {
    let codecs: Vec<Value> = room["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut o = json!({
                "name": c["name"], "mimeType": c["mimeType"], "kind": c["kind"],
                "clockRate": c["clockRate"], "preferredPayloadType": c["preferredPayloadType"],
                "parameters": c["parameters"],
            });
            if c["name"] != "rtx" {
                o["rtcpFeedback"] = c["rtcpFeedback"].clone();
            }
            if !c["channels"].is_null() {
                o["channels"] = c["channels"].clone();
            }
            o
        })
        .collect();
    let exts: Vec<Value> = room["headerExtensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!({"kind": e["kind"], "uri": e["uri"], "preferredId": e["preferredId"]}))
        .collect();
    json!({"codecs": codecs, "headerExtensions": exts, "fecMechanisms": []})
}

/// Chrome's own ids (the browser's side of a send transport).
pub const CHROME_AUDIO_EXTS: &[(u8, &str)] = &[
    (1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
    (2, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    (3, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
    (4, "urn:ietf:params:rtp-hdrext:sdes:mid"),
];
pub const CHROME_VIDEO_EXTS: &[(u8, &str)] = &[
    (14, "urn:ietf:params:rtp-hdrext:toffset"),
    (2, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
    (13, "urn:3gpp:video-orientation"),
    (3, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
    (4, "urn:ietf:params:rtp-hdrext:sdes:mid"),
    (10, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
];

/// createProducer.rtpParameters as Chrome70's handler sends them (browser PTs:
/// opus 111, VP8 96 + RTX 97).
pub fn producer_params(kind: &str, mid: &str, ssrc: u32, rtx_ssrc: Option<u32>) -> Value {
    if kind == "audio" {
        json!({
            "muxId": mid,
            "codecs": [{"name": "opus", "mimeType": "audio/opus", "clockRate": 48000, "payloadType": 111,
                        "channels": 2, "rtcpFeedback": [{"type": "transport-cc"}], "parameters": {"useinbandfec": 1}}],
            "headerExtensions": CHROME_AUDIO_EXTS.iter().map(|(id, uri)| json!({"uri": uri, "id": id})).collect::<Vec<_>>(),
            "encodings": [{"ssrc": ssrc}],
            "rtcp": {"cname": format!("cname-{ssrc}"), "reducedSize": true, "mux": true},
        })
    } else {
        let mut codecs = vec![json!({"name": "VP8", "mimeType": "video/VP8", "clockRate": 90000, "payloadType": 96,
            "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"},
                             {"type": "goog-remb"}, {"type": "transport-cc"}], "parameters": {}})];
        let mut enc = json!({"ssrc": ssrc});
        if let Some(r) = rtx_ssrc {
            codecs.push(json!({"name": "rtx", "mimeType": "video/rtx", "clockRate": 90000, "payloadType": 97, "parameters": {"apt": 96}}));
            enc["rtx"] = json!({"ssrc": r});
        }
        json!({
            "muxId": mid,
            "codecs": codecs,
            "headerExtensions": CHROME_VIDEO_EXTS.iter().map(|(id, uri)| json!({"uri": uri, "id": id})).collect::<Vec<_>>(),
            "encodings": [enc],
            "rtcp": {"cname": format!("cname-{ssrc}"), "reducedSize": true, "mux": true},
        })
    }
}

/// A syntactically valid browser DTLS fingerprint.
pub fn fake_dtls(role: &str) -> Value {
    let value = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect::<Vec<_>>().join(":");
    json!({"role": role, "fingerprints": [{"algorithm": "sha-256", "value": value}]})
}

pub const URI_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const URI_ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const URI_TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub const URI_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const URI_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub const URI_TOFFSET: &str = "urn:ietf:params:rtp-hdrext:toffset";

/// Firefox's payload types: opus 109, VP8 120 with RTX 124.
pub const FIREFOX_OPUS_PT: u8 = 109;
pub const FIREFOX_VP8_PT: u8 = 120;
pub const FIREFOX_RTX_PT: u8 = 124;

/// Firefox 153's ids: audio-level 1, mid 3, abs-send-time 4, toffset 5, transport-cc 7,
/// rtp-stream-id 9 (one map for the whole PeerConnection).
pub const FIREFOX_EXTS: &[(u8, &str)] = &[
    (1, URI_AUDIO_LEVEL),
    (3, URI_MID),
    (4, URI_ABS_SEND_TIME),
    (5, URI_TOFFSET),
    (7, URI_TWCC),
    (9, URI_RID),
];

/// `createProducer.rtpParameters` as the Firefox65 handler sends them: muxId "0" for
/// audio and "1" for video, Firefox's ids, and a video producer that lists `rtx` in its
/// codecs but carries no RTX SSRC in its encodings (Firefox never signals it).
pub fn firefox_producer_params(kind: &str, ssrc: u32) -> Value {
    if kind == "audio" {
        json!({
            "muxId": "0",
            "codecs": [{"name": "opus", "mimeType": "audio/opus", "clockRate": 48000, "payloadType": FIREFOX_OPUS_PT,
                        "channels": 2, "rtcpFeedback": [{"type": "transport-cc"}],
                        "parameters": {"maxplaybackrate": 48000, "stereo": 1, "useinbandfec": 1}}],
            "headerExtensions": [{"uri": URI_AUDIO_LEVEL, "id": 1}, {"uri": URI_TWCC, "id": 7}, {"uri": URI_MID, "id": 3}],
            "encodings": [{"ssrc": ssrc}],
            "rtcp": {"cname": "{ff-cname}", "reducedSize": false, "mux": true},
        })
    } else {
        json!({
            "muxId": "1",
            "codecs": [
                {"name": "VP8", "mimeType": "video/VP8", "clockRate": 90000, "payloadType": FIREFOX_VP8_PT,
                 "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"},
                                  {"type": "ccm", "parameter": "fir"}, {"type": "goog-remb"}, {"type": "transport-cc"}],
                 "parameters": {"max-fs": 12288, "max-fr": 60}},
                {"name": "rtx", "mimeType": "video/rtx", "clockRate": 90000, "payloadType": FIREFOX_RTX_PT,
                 "parameters": {"apt": FIREFOX_VP8_PT}},
            ],
            "headerExtensions": [{"uri": URI_ABS_SEND_TIME, "id": 4}, {"uri": URI_TWCC, "id": 7}, {"uri": URI_MID, "id": 3},
                                 {"uri": URI_RID, "id": 9}, {"uri": URI_TOFFSET, "id": 5}],
            "encodings": [{"ssrc": ssrc}],
            "rtcp": {"cname": "{ff-cname}", "reducedSize": false, "mux": true},
        })
    }
}
