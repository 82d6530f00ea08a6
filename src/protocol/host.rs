//! Requests the host makes about a room (not on behalf of a peer), answered once through
//! the callback as `SFU_EVENT_KIND_HOST_RESPONSE` (docs/PROTOCOL.md, "Host requests").

use std::net::IpAddr;

use super::Message;
use crate::error::{ReqError, ReqResult};
use crate::ids::ProducerId;

/// (wire name, method).
const HOST_METHODS: &[(&str, HostMethod)] = &[
    ("createRtpStreamer", HostMethod::CreateRtpStreamer),
    ("closeRtpStreamer", HostMethod::CloseRtpStreamer),
    ("enableAudioLevels", HostMethod::EnableAudioLevels),
    ("disableAudioLevels", HostMethod::DisableAudioLevels),
    ("enableActiveSpeaker", HostMethod::EnableActiveSpeaker),
    ("disableActiveSpeaker", HostMethod::DisableActiveSpeaker),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMethod {
    CreateRtpStreamer,
    CloseRtpStreamer,
    EnableAudioLevels,
    DisableAudioLevels,
    EnableActiveSpeaker,
    DisableActiveSpeaker,
}

impl HostMethod {
    pub fn from_name(name: &str) -> Option<HostMethod> {
        HOST_METHODS.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }
}

#[derive(Debug, Clone)]
pub struct CreateRtpStreamer {
    /// The producing peer; optional when the producer id is unique in the room.
    pub peer_name: Option<String>,
    pub producer_id: ProducerId,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    /// Where RTCP goes: `remoteRtcpPort`, else the RTP port with `rtcpMux`, else RTP + 1.
    pub remote_rtcp_port: u16,
}

#[derive(Debug, Clone)]
pub enum HostRequest {
    CreateRtpStreamer(CreateRtpStreamer),
    CloseRtpStreamer { streamer_id: u64 },
    EnableAudioLevels { interval_ms: u64, threshold_dbov: i8 },
    DisableAudioLevels,
    EnableActiveSpeaker { interval_ms: u64, threshold_dbov: i8, consecutive: u32 },
    DisableActiveSpeaker,
}

/// A UDP port in 1..=65535 from field `key`.
pub fn port(m: &Message, key: &str) -> ReqResult<u16> {
    let n = m.id(key)?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ReqError(format!("field `{key}` must be a port in 1..=65535")))
}

/// An IP address literal from field `key`.
pub fn ip(m: &Message, key: &str) -> ReqResult<IpAddr> {
    let s = m.str(key)?;
    s.parse::<IpAddr>()
        .ok()
        .filter(|a| !a.is_unspecified() && !a.is_multicast())
        .ok_or_else(|| ReqError(format!("field `{key}` must be a unicast IP address, not {s:?}")))
}

fn dbov(m: &Message, key: &str, default: i8) -> ReqResult<i8> {
    match m.opt_f64(key)? {
        None => Ok(default),
        Some(v) if (-127.0..=0.0).contains(&v) => Ok(v.round() as i8),
        Some(_) => Err(ReqError(format!("field `{key}` must be a level in -127..=0 dBov"))),
    }
}

fn interval(m: &Message, default: u64) -> ReqResult<u64> {
    match m.opt_f64("intervalMs")? {
        None => Ok(default),
        Some(v) if (100.0..=60_000.0).contains(&v) => Ok(v as u64),
        Some(_) => Err("field `intervalMs` must be in 100..=60000".into()),
    }
}

/// Read a host request's fields.
pub fn decode(m: &Message) -> ReqResult<HostRequest> {
    let method =
        HostMethod::from_name(&m.method).ok_or_else(|| ReqError(format!("unknown host method `{}`", m.method)))?;
    Ok(match method {
        HostMethod::CreateRtpStreamer => {
            let peer_name = m.opt_str("peerName")?.map(str::to_string);
            let producer_id = ProducerId(m.id("producerId")?);
            let remote_ip = ip(m, "remoteIp")?;
            let remote_port = port(m, "remotePort")?;
            let rtcp_mux = m.opt_bool("rtcpMux")?.unwrap_or(false);
            let remote_rtcp_port = if m.has("remoteRtcpPort") {
                port(m, "remoteRtcpPort")?
            } else if rtcp_mux {
                remote_port
            } else {
                remote_port.checked_add(1).ok_or("field `remotePort` is 65535: RTCP would go to port 65536; give `remoteRtcpPort` or `rtcpMux`")?
            };
            HostRequest::CreateRtpStreamer(CreateRtpStreamer { peer_name, producer_id, remote_ip, remote_port, remote_rtcp_port })
        }
        HostMethod::CloseRtpStreamer => HostRequest::CloseRtpStreamer { streamer_id: m.id("streamerId")? },
        HostMethod::EnableAudioLevels => HostRequest::EnableAudioLevels {
            interval_ms: interval(m, 1000)?,
            threshold_dbov: dbov(m, "thresholdDbov", -80)?,
        },
        HostMethod::DisableAudioLevels => HostRequest::DisableAudioLevels,
        HostMethod::EnableActiveSpeaker => HostRequest::EnableActiveSpeaker {
            interval_ms: interval(m, 300)?,
            threshold_dbov: dbov(m, "thresholdDbov", -80)?,
            consecutive: match m.opt_f64("consecutive")? {
                None => 4,
                Some(v) if (1.0..=100.0).contains(&v) => v as u32,
                Some(_) => return Err("field `consecutive` must be in 1..=100".into()),
            },
        },
        HostMethod::DisableActiveSpeaker => HostRequest::DisableActiveSpeaker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(json: &str) -> ReqResult<HostRequest> {
        decode(&super::super::decode(json.as_bytes(), 1 << 16)?)
    }

    #[test]
    fn streamer_addresses_are_checked_and_rtcp_defaults_to_the_next_port() {
        match dec(r#"{"method":"createRtpStreamer","producerId":3,"remoteIp":"127.0.0.1","remotePort":5004}"#).unwrap() {
            HostRequest::CreateRtpStreamer(c) => assert_eq!((c.remote_port, c.remote_rtcp_port), (5004, 5005)),
            other => panic!("{other:?}"),
        }
        match dec(r#"{"method":"createRtpStreamer","producerId":3,"remoteIp":"::1","remotePort":5004,"rtcpMux":true}"#).unwrap() {
            HostRequest::CreateRtpStreamer(c) => assert_eq!(c.remote_rtcp_port, 5004),
            other => panic!("{other:?}"),
        }
        for (bad, what) in [
            (r#"{"method":"createRtpStreamer","producerId":3,"remoteIp":"nope","remotePort":5004}"#, "remoteIp"),
            (r#"{"method":"createRtpStreamer","producerId":3,"remoteIp":"0.0.0.0","remotePort":5004}"#, "remoteIp"),
            (r#"{"method":"createRtpStreamer","producerId":3,"remoteIp":"127.0.0.1","remotePort":0}"#, "remotePort"),
            (r#"{"method":"createRtpStreamer","producerId":3,"remoteIp":"127.0.0.1","remotePort":70000}"#, "remotePort"),
            (r#"{"method":"createRtpStreamer","producerId":3,"remoteIp":"127.0.0.1","remotePort":65535}"#, "remotePort"),
            (r#"{"method":"enableAudioLevels","thresholdDbov":5}"#, "thresholdDbov"),
            (r#"{"method":"enableAudioLevels","intervalMs":1}"#, "intervalMs"),
            (r#"{"method":"fly"}"#, "unknown host method"),
        ] {
            let e = dec(bad).unwrap_err();
            assert!(e.0.contains(what), "{bad}: {e}");
        }
    }
}
