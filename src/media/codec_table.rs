//! str0m codec and header-extension tables for our `Rtc`s.
//!
//! Receive transports speak the room's payload types and extension ids. Send
//! transports speak the browser's: str0m fixes both per `Rtc` at build time, and a
//! browser announces its payload types one producer at a time. The send `Rtc` is
//! therefore built at the first producer with that producer's exact table, and every
//! other payload type a browser may use later is registered too, so that a second
//! producer's packets are accepted; the producer's own mapping (PT and RTX) is applied
//! by the room when forwarding, and RTX is recognised by its SSRC.

use str0m::format::{Codec, CodecConfig, FormatParams};
use str0m::media::{Frequency, Pt};
use str0m::rtp::{Extension, ExtensionMap};

use crate::ortc::{self as codecs, Kind, ProducerMapping, RoomCaps, RoomCodec};

/// The str0m extension for a header-extension URI we forward.
pub fn ext_from_uri(uri: &str) -> Option<Extension> {
    Some(match uri {
        codecs::URI_AUDIO_LEVEL => Extension::AudioLevel,
        codecs::URI_ABS_SEND_TIME => Extension::AbsoluteSendTime,
        codecs::URI_TWCC => Extension::TransportSequenceNumber,
        codecs::URI_MID => Extension::RtpMid,
        codecs::URI_RID => Extension::RtpStreamId,
        codecs::URI_VIDEO_ORIENTATION => Extension::VideoOrientation,
        codecs::URI_TOFFSET => Extension::TransmissionTimeOffset,
        _ => return None,
    })
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
        _ => return None,
    })
}

fn format_of(c: &RoomCodec) -> FormatParams {
    let p = Some(c.parameters.clone());
    let int = |k: &str| crate::protocol::rtp::int_param(&p, k);
    let mut f = FormatParams::default();
    match c.name.as_str() {
        "opus" => {
            f.min_p_time = int("minptime").map(|v| v as u8);
            f.use_inband_fec = int("useinbandfec").map(|v| v == 1);
        }
        "H264" => {
            f.packetization_mode = Some(int("packetization-mode").unwrap_or(0) as u8);
            f.level_asymmetry_allowed = Some(true);
            f.profile_level_id = c
                .parameters
                .get("profile-level-id")
                .and_then(|v| v.as_str())
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .or(Some(0x42e01f));
        }
        "VP9" => f.profile_id = int("profile-id").map(|v| v as u32),
        _ => {}
    }
    f
}

fn freq(hz: u32) -> Frequency {
    Frequency::new(hz).unwrap_or(Frequency::NINETY_KHZ)
}

/// The room's codecs with room PTs and RTX (receive transports).
pub fn room_codec_config(caps: &RoomCaps) -> CodecConfig {
    let mut cfg = CodecConfig::empty();
    for c in &caps.codecs {
        if let Some(codec) = codec_of(&c.name) {
            cfg.add_config(
                Pt::new_with_value(c.pt),
                c.rtx_pt.map(Pt::new_with_value),
                codec,
                freq(c.clock_rate),
                c.channels,
                format_of(c),
            );
        }
    }
    cfg
}

/// The room's header extensions with room ids (receive transports).
pub fn room_ext_map(caps: &RoomCaps) -> ExtensionMap {
    let mut m = ExtensionMap::empty();
    for e in &caps.exts {
        if let Some(x) = ext_from_uri(e.uri) {
            m.set(e.id, x);
        }
    }
    m
}

/// Tables for a send transport built at its first producer: that producer's exact
/// PTs and extension ids, then the room's extensions at their room ids where the
/// browser has not used the id, then every other dynamic and common static PT.
pub fn send_codec_config(kind: Kind, mapping: &ProducerMapping) -> (ExtensionMap, CodecConfig) {
    let mut exts = ExtensionMap::empty();
    let mut used_ids = Vec::new();
    let mut used_uris = Vec::new();
    for e in &mapping.exts {
        if let Some(x) = ext_from_uri(e.uri) {
            exts.set(e.producer_id, x);
            used_ids.push(e.producer_id);
            used_uris.push(e.uri);
        }
    }
    for (_, uri, id) in codecs::room_extension_table() {
        if !used_ids.contains(id) && !used_uris.contains(uri) {
            if let Some(x) = ext_from_uri(uri) {
                exts.set(*id, x);
                used_ids.push(*id);
                used_uris.push(uri);
            }
        }
    }
    let mut cfg = CodecConfig::empty();
    let mut used_pts: Vec<u8> = Vec::new();
    let room = RoomCaps::from_options(None).expect("default codecs are valid");
    for m in &mapping.codecs {
        let rc = room.codecs.iter().find(|c| c.pt == m.room_pt);
        let (codec, hz, ch) = match rc {
            Some(rc) => (
                codec_of(&rc.name).unwrap_or(Codec::Vp8),
                rc.clock_rate,
                rc.channels,
            ),
            None if kind == Kind::Audio => (Codec::Opus, 48000, Some(2)),
            None => (Codec::Vp8, 90000, None),
        };
        cfg.add_config(
            Pt::new_with_value(m.producer_pt),
            m.producer_rtx_pt.map(Pt::new_with_value),
            codec,
            freq(hz),
            ch,
            FormatParams::default(),
        );
        used_pts.push(m.producer_pt);
        used_pts.extend(m.producer_rtx_pt);
    }
    let statics: [(u8, Codec, u32, Option<u8>); 4] = [
        (0, Codec::PCMU, 8000, Some(1)),
        (8, Codec::PCMA, 8000, Some(1)),
        (9, Codec::G722, 8000, Some(1)),
        (111, Codec::Opus, 48000, Some(2)),
    ];
    for (pt, codec, hz, ch) in statics {
        if !used_pts.contains(&pt) {
            cfg.add_config(
                Pt::new_with_value(pt),
                None,
                codec,
                freq(hz),
                ch,
                FormatParams::default(),
            );
            used_pts.push(pt);
        }
    }
    for pt in (96..=127u8).chain(35..=63) {
        if !used_pts.contains(&pt) {
            cfg.add_config(
                Pt::new_with_value(pt),
                None,
                Codec::Vp8,
                Frequency::NINETY_KHZ,
                None,
                FormatParams::default(),
            );
        }
    }
    (exts, cfg)
}
