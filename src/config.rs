//! Server configuration: the JSON given to `sfu_server_new`, validated key by key.
//!
//! Keys follow mediasoup v2's `Server` options where they exist. Unknown keys and
//! bad values are errors that name the key.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::SfuError;

/// Log verbosity (`logLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    None,
    Error,
    Warn,
    Debug,
}

/// Validated server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Worker threads (`numWorkers`); each owns its rooms and one UDP socket.
    pub num_workers: usize,
    /// `logLevel`: "debug", "warn", "error" or "none" (default "error"), for this server's
    /// records only. They go to the host's log callback, else to stderr (`log.rs`).
    pub log_level: LogLevel,
    /// `rtcIPv4`: the IPv4 address the UDP sockets bind to (default 127.0.0.1).
    pub rtc_ipv4: Ipv4Addr,
    /// `rtcAnnouncedIPv4`: the address put in ICE candidates instead (NAT, cloud).
    pub rtc_announced_ipv4: Option<Ipv4Addr>,
    /// `rtcMinPort` / `rtcMaxPort`: the port range the sockets are taken from.
    pub rtc_min_port: u16,
    pub rtc_max_port: u16,
    /// `dtlsCertificateFile` / `dtlsPrivateKeyFile`: PEM files of an ECDSA P-256
    /// certificate and its key. Both or neither; default: one generated per server.
    pub dtls_certificate_file: Option<String>,
    pub dtls_private_key_file: Option<String>,
    /// `maxMessageSize`: the largest request/notification accepted, in bytes.
    pub max_message_size: usize,
    /// `transportTimeout`: seconds without any datagram from a connected
    /// transport's browser (or, for a transport never connected, since it was
    /// created) before the server closes it with `transportClosed`.
    pub transport_timeout_secs: f64,
    /// Resource limits (`maxPeersPerRoom`, `maxTransportsPerPeer`,
    /// `maxProducersPerTransport`, `maxPendingRequestsPerPeer`).
    pub limits: Limits,
    /// `enableTcp`: each worker also listens on TCP (ICE-TCP, passive candidates).
    pub enable_tcp: bool,
    /// Bandwidth adaptation (`enableBwe`, `initialAvailableOutgoingBitrate`,
    /// `minProducerBitrate`).
    pub adapt: Adaptation,
    /// `spreadRooms` (default true): with several workers, a room's receive transports
    /// run on the least loaded worker, so one room's fan-out uses every core; false
    /// keeps each room's transports on its own worker.
    pub spread_rooms: bool,
    /// ICE-TCP bounds (`tcpMaxConnections`, `tcpMaxUnauthenticated`,
    /// `tcpMaxUnauthenticatedPerIp`, `tcpAuthTimeout`, `tcpIdleTimeout`,
    /// `tcpSendBufferSize`).
    pub tcp: TcpLimits,
}

/// Bounds of a worker's ICE-TCP side (see `net::tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections open at once, per worker.
    pub max_connections: usize,
    /// Connections that have not yet sent a valid binding request, per worker.
    pub max_unauthenticated: usize,
    /// The same, per source IP address.
    pub max_unauthenticated_per_ip: usize,
    /// An unauthenticated connection is closed after this.
    pub auth_timeout: Duration,
    /// An authenticated connection silent this long is closed.
    pub idle_timeout: Duration,
    /// Bytes queued for sending per connection, beyond which packets are dropped.
    pub send_buffer: usize,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 4096,
            max_unauthenticated: 256,
            max_unauthenticated_per_ip: 8,
            auth_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            send_buffer: 256 * 1024,
        }
    }
}

/// Bandwidth adaptation per consumer (docs/ARCHITECTURE.md, "Bandwidth adaptation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adaptation {
    /// `enableBwe` (default true): estimate each receive transport's link from the
    /// browser's transport-cc feedback and choose its consumers' layers by it; false
    /// forwards by the preferred profile alone, as a LAN deployment may want.
    pub enable_bwe: bool,
    /// `initialAvailableOutgoingBitrate` (bits per second, default 600000): the estimate a
    /// receive transport starts from.
    pub initial_outgoing_bitrate: u64,
    /// `minProducerBitrate` (bits per second, default 150000): the lowest rate a
    /// single-layer producer is asked (REMB) to come down to for a slow consumer; a
    /// consumer whose share is below it gets no video instead of dragging the room down.
    pub min_producer_bitrate: u64,
}

impl Default for Adaptation {
    fn default() -> Self {
        Adaptation { enable_bwe: true, initial_outgoing_bitrate: 600_000, min_producer_bitrate: 150_000 }
    }
}

/// Per-room / per-peer resource limits: exceeding one is a clear error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_peers_per_room: usize,
    pub max_transports_per_peer: usize,
    pub max_producers_per_transport: usize,
    /// Requests of one peer queued and not yet processed.
    pub max_pending_requests_per_peer: usize,
    /// RTP streamers (host request `createRtpStreamer`) per room.
    pub max_rtp_streamers_per_room: usize,
    /// Plain RTP transports per peer (within `max_transports_per_peer`).
    pub max_plain_transports_per_peer: usize,
    /// A plain transport created without the client's address learns it from the first
    /// packet of a declared SSRC (`plainRtpComedia`); otherwise the address is required.
    pub plain_rtp_comedia: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_peers_per_room: 500,
            max_transports_per_peer: 8,
            max_producers_per_transport: 16,
            max_pending_requests_per_peer: 128,
            max_rtp_streamers_per_room: 32,
            max_plain_transports_per_peer: 4,
            plain_rtp_comedia: false,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            num_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            log_level: LogLevel::Error,
            rtc_ipv4: Ipv4Addr::LOCALHOST,
            rtc_announced_ipv4: None,
            rtc_min_port: 10000,
            rtc_max_port: 59999,
            dtls_certificate_file: None,
            dtls_private_key_file: None,
            max_message_size: 256 * 1024,
            transport_timeout_secs: 30.0,
            limits: Limits::default(),
            enable_tcp: true,
            spread_rooms: true,
            adapt: Adaptation::default(),
            tcp: TcpLimits::default(),
        }
    }
}

fn bad(key: &str, what: &str) -> SfuError {
    SfuError::InvalidConfig(format!("`{key}` {what}"))
}

fn uint(v: &Value, key: &str, lo: u64, hi: u64) -> Result<u64, SfuError> {
    match v.as_u64() {
        Some(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(bad(key, &format!("must be an integer in {lo}..={hi}"))),
    }
}

fn seconds(v: &Value, key: &str, lo: f64, hi: f64) -> Result<Duration, SfuError> {
    match v.as_f64() {
        Some(s) if s >= lo && s <= hi => Ok(Duration::from_secs_f64(s)),
        _ => Err(bad(key, &format!("must be a number of seconds in {lo}..={hi}"))),
    }
}

fn string<'a>(v: &'a Value, key: &str) -> Result<&'a str, SfuError> {
    v.as_str().ok_or_else(|| bad(key, "must be a string"))
}

fn ipv4(v: &Value, key: &str) -> Result<Ipv4Addr, SfuError> {
    let s = string(v, key)?;
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(a),
        Ok(IpAddr::V6(_)) => Err(bad(
            key,
            "must be an IPv4 address (IPv6 is not supported yet)",
        )),
        Err(_) => Err(bad(key, &format!("is not an IPv4 address: {s:?}"))),
    }
}

impl ServerConfig {
    /// Parse and validate the configuration JSON (`None` or empty = defaults).
    pub fn from_json(json: Option<&str>) -> Result<ServerConfig, SfuError> {
        let mut cfg = ServerConfig::default();
        let Some(json) = json else { return Ok(cfg) };
        if json.trim().is_empty() {
            return Ok(cfg);
        }
        let v: Value = serde_json::from_str(json)
            .map_err(|e| SfuError::InvalidConfig(format!("not valid JSON: {e}")))?;
        let obj: &Map<String, Value> = v
            .as_object()
            .ok_or_else(|| SfuError::InvalidConfig("must be a JSON object".into()))?;
        for (key, val) in obj {
            let k = key.as_str();
            match k {
                "numWorkers" => cfg.num_workers = uint(val, k, 1, 256)? as usize,
                "logLevel" => {
                    cfg.log_level = match string(val, k)? {
                        "debug" => LogLevel::Debug,
                        "warn" => LogLevel::Warn,
                        "error" => LogLevel::Error,
                        "none" => LogLevel::None,
                        other => {
                            return Err(bad(
                                k,
                                &format!(
                                "must be \"debug\", \"warn\", \"error\" or \"none\", not {other:?}"
                            ),
                            ))
                        }
                    }
                }
                "rtcIPv4" => {
                    let a = ipv4(val, k)?;
                    if a.is_multicast() || a.is_broadcast() || a.is_link_local() {
                        return Err(bad(k, "must be a unicast, non link-local address"));
                    }
                    cfg.rtc_ipv4 = a;
                }
                "rtcAnnouncedIPv4" => {
                    cfg.rtc_announced_ipv4 = if val.is_null() {
                        None
                    } else {
                        Some(ipv4(val, k)?)
                    };
                    if let Some(a) = cfg.rtc_announced_ipv4 {
                        if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                            return Err(bad(k, "must be a unicast address browsers can reach"));
                        }
                    }
                }
                "rtcMinPort" => cfg.rtc_min_port = uint(val, k, 1, 65535)? as u16,
                "rtcMaxPort" => cfg.rtc_max_port = uint(val, k, 1, 65535)? as u16,
                "dtlsCertificateFile" => {
                    cfg.dtls_certificate_file = Some(string(val, k)?.to_string())
                }
                "dtlsPrivateKeyFile" => {
                    cfg.dtls_private_key_file = Some(string(val, k)?.to_string())
                }
                "maxMessageSize" => {
                    cfg.max_message_size = uint(val, k, 1024, 64 * 1024 * 1024)? as usize
                }
                "transportTimeout" => {
                    let t = val.as_f64().filter(|t| *t >= 1.0 && *t <= 3600.0);
                    cfg.transport_timeout_secs =
                        t.ok_or_else(|| bad(k, "must be a number of seconds in 1..=3600"))?;
                }
                "maxPeersPerRoom" => {
                    cfg.limits.max_peers_per_room = uint(val, k, 1, 100_000)? as usize
                }
                "maxTransportsPerPeer" => {
                    cfg.limits.max_transports_per_peer = uint(val, k, 1, 1000)? as usize
                }
                "maxProducersPerTransport" => {
                    cfg.limits.max_producers_per_transport = uint(val, k, 1, 1000)? as usize
                }
                "maxPendingRequestsPerPeer" => {
                    cfg.limits.max_pending_requests_per_peer = uint(val, k, 1, 1_000_000)? as usize
                }
                "maxRtpStreamersPerRoom" => cfg.limits.max_rtp_streamers_per_room = uint(val, k, 0, 10_000)? as usize,
                "maxPlainTransportsPerPeer" => cfg.limits.max_plain_transports_per_peer = uint(val, k, 0, 1000)? as usize,
                "plainRtpComedia" => {
                    cfg.limits.plain_rtp_comedia = val.as_bool().ok_or_else(|| bad(k, "must be a boolean"))?
                }
                "enableTcp" => cfg.enable_tcp = val.as_bool().ok_or_else(|| bad(k, "must be a boolean"))?,
                "enableBwe" => cfg.adapt.enable_bwe = val.as_bool().ok_or_else(|| bad(k, "must be a boolean"))?,
                "initialAvailableOutgoingBitrate" => cfg.adapt.initial_outgoing_bitrate = uint(val, k, 30_000, 100_000_000)?,
                "minProducerBitrate" => cfg.adapt.min_producer_bitrate = uint(val, k, 10_000, 100_000_000)?,
                "spreadRooms" => cfg.spread_rooms = val.as_bool().ok_or_else(|| bad(k, "must be a boolean"))?,
                "tcpMaxConnections" => cfg.tcp.max_connections = uint(val, k, 1, 1_000_000)? as usize,
                "tcpMaxUnauthenticated" => cfg.tcp.max_unauthenticated = uint(val, k, 1, 1_000_000)? as usize,
                "tcpMaxUnauthenticatedPerIp" => {
                    cfg.tcp.max_unauthenticated_per_ip = uint(val, k, 1, 1_000_000)? as usize
                }
                "tcpAuthTimeout" => cfg.tcp.auth_timeout = seconds(val, k, 0.1, 60.0)?,
                "tcpIdleTimeout" => cfg.tcp.idle_timeout = seconds(val, k, 1.0, 3600.0)?,
                "tcpSendBufferSize" => cfg.tcp.send_buffer = uint(val, k, 16 * 1024, 64 * 1024 * 1024)? as usize,
                _ => return Err(SfuError::InvalidConfig(format!("unknown key `{k}`"))),
            }
        }
        if cfg.rtc_ipv4.is_unspecified() && cfg.rtc_announced_ipv4.is_none() {
            return Err(bad(
                "rtcAnnouncedIPv4",
                "is required when `rtcIPv4` is 0.0.0.0 (browsers need a concrete address)",
            ));
        }
        if cfg.rtc_min_port > cfg.rtc_max_port {
            return Err(bad("rtcMinPort", "must not be greater than `rtcMaxPort`"));
        }
        match (&cfg.dtls_certificate_file, &cfg.dtls_private_key_file) {
            (Some(_), None) => {
                return Err(bad(
                    "dtlsPrivateKeyFile",
                    "is required with `dtlsCertificateFile`",
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "dtlsCertificateFile",
                    "is required with `dtlsPrivateKeyFile`",
                ))
            }
            _ => {}
        }
        Ok(cfg)
    }

    /// The IP written into ICE candidates.
    pub fn announced_ip(&self) -> Ipv4Addr {
        self.rtc_announced_ipv4.unwrap_or(self.rtc_ipv4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_null_or_empty() {
        let c = ServerConfig::from_json(None).unwrap();
        assert_eq!(c.rtc_ipv4, Ipv4Addr::LOCALHOST);
        assert!(c.num_workers >= 1);
        ServerConfig::from_json(Some("{}")).unwrap();
    }

    #[test]
    fn unknown_key_is_named() {
        let e = ServerConfig::from_json(Some(r#"{"numWorkerz":2}"#)).unwrap_err();
        assert!(e.to_string().contains("numWorkerz"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (json, key) in [
            (r#"{"numWorkers":0}"#, "numWorkers"),
            (r#"{"numWorkers":"2"}"#, "numWorkers"),
            (r#"{"logLevel":"loud"}"#, "logLevel"),
            (r#"{"rtcIPv4":"1.2.3"}"#, "rtcIPv4"),
            (r#"{"rtcIPv4":"::1"}"#, "rtcIPv4"),
            (r#"{"rtcAnnouncedIPv4":"0.0.0.0"}"#, "rtcAnnouncedIPv4"),
            (r#"{"rtcMinPort":70000}"#, "rtcMinPort"),
            (r#"{"rtcMinPort":5000,"rtcMaxPort":4000}"#, "rtcMinPort"),
            (r#"{"dtlsCertificateFile":"/x.pem"}"#, "dtlsPrivateKeyFile"),
            (r#"{"transportTimeout":0}"#, "transportTimeout"),
            (r#"{"rtcIPv4":"0.0.0.0"}"#, "rtcAnnouncedIPv4"),
            (r#"{"maxPeersPerRoom":0}"#, "maxPeersPerRoom"),
            (r#"{"maxTransportsPerPeer":-1}"#, "maxTransportsPerPeer"),
            (
                r#"{"maxProducersPerTransport":"8"}"#,
                "maxProducersPerTransport",
            ),
            (
                r#"{"maxPendingRequestsPerPeer":0}"#,
                "maxPendingRequestsPerPeer",
            ),
            (r#"{"enableTcp":1}"#, "enableTcp"),
            (r#"{"tcpAuthTimeout":0}"#, "tcpAuthTimeout"),
            (r#"{"tcpMaxUnauthenticatedPerIp":0}"#, "tcpMaxUnauthenticatedPerIp"),
            (r#"{"tcpSendBufferSize":10}"#, "tcpSendBufferSize"),
        ] {
            let e = ServerConfig::from_json(Some(json)).unwrap_err().to_string();
            assert!(e.contains(key), "{json}: {e}");
        }
        assert!(ServerConfig::from_json(Some("[1]")).is_err());
        assert!(ServerConfig::from_json(Some("{")).is_err());
    }
}
