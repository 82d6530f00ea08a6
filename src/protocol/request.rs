//! Client messages decoded into typed values. One table names every method of the
//! protocol and says whether it is a request (answered) or a notification (not);
//! docs/PROTOCOL.md lists them with their fields.
//!
//! Decoding happens in two steps so that the room can apply its rules in the protocol's
//! order: [`super::decode`] reads the envelope (JSON object, `method`), the room checks
//! that the peer has joined, then [`decode_body`] reads the method's fields. Every
//! failure is a reason string for the client that names the field.

use serde_json::Value;

use super::rtp::{DtlsParameters, RtpCapabilities, RtpParameters};
use super::Message;
use crate::error::{ReqError, ReqResult};
use crate::ids::{ConsumerId, ProducerId, TransportId};

/// Every method of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    QueryRoom,
    Join,
    CreateTransport,
    RestartTransport,
    CreateProducer,
    EnableConsumer,
    Leave,
    UpdateTransport,
    CloseTransport,
    EnableTransportStats,
    DisableTransportStats,
    UpdateProducer,
    PauseProducer,
    ResumeProducer,
    CloseProducer,
    EnableProducerStats,
    DisableProducerStats,
    PauseConsumer,
    ResumeConsumer,
    SetConsumerPreferredProfile,
    EnableConsumerStats,
    DisableConsumerStats,
}

/// (wire name, method, is a request).
const METHODS: &[(&str, Method, bool)] = &[
    ("queryRoom", Method::QueryRoom, true),
    ("join", Method::Join, true),
    ("createTransport", Method::CreateTransport, true),
    ("restartTransport", Method::RestartTransport, true),
    ("createProducer", Method::CreateProducer, true),
    ("enableConsumer", Method::EnableConsumer, true),
    ("leave", Method::Leave, false),
    ("updateTransport", Method::UpdateTransport, false),
    ("closeTransport", Method::CloseTransport, false),
    ("enableTransportStats", Method::EnableTransportStats, false),
    ("disableTransportStats", Method::DisableTransportStats, false),
    ("updateProducer", Method::UpdateProducer, false),
    ("pauseProducer", Method::PauseProducer, false),
    ("resumeProducer", Method::ResumeProducer, false),
    ("closeProducer", Method::CloseProducer, false),
    ("enableProducerStats", Method::EnableProducerStats, false),
    ("disableProducerStats", Method::DisableProducerStats, false),
    ("pauseConsumer", Method::PauseConsumer, false),
    ("resumeConsumer", Method::ResumeConsumer, false),
    ("setConsumerPreferredProfile", Method::SetConsumerPreferredProfile, false),
    ("enableConsumerStats", Method::EnableConsumerStats, false),
    ("disableConsumerStats", Method::DisableConsumerStats, false),
];

impl Method {
    pub fn from_name(name: &str) -> Option<Method> {
        METHODS.iter().find(|(n, _, _)| *n == name).map(|(_, m, _)| *m)
    }

    #[cfg(test)]
    fn name(self) -> &'static str {
        METHODS.iter().find(|(_, m, _)| *m == self).map(|(n, _, _)| *n).unwrap_or("")
    }

    /// Answered with a response (a request), as opposed to a notification.
    pub fn is_request(self) -> bool {
        METHODS.iter().any(|(_, m, r)| *m == self && *r)
    }

    /// Allowed before the peer has joined.
    pub fn before_join(self) -> bool {
        matches!(self, Method::QueryRoom | Method::Join)
    }
}

/// A transport's direction, as the client declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Send,
    Recv,
}

/// A consumer's simulcast profile preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    Low,
    Medium,
    High,
    Default,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        Some(match s {
            "low" => Profile::Low,
            "medium" => Profile::Medium,
            "high" => Profile::High,
            "default" => Profile::Default,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Low => "low",
            Profile::Medium => "medium",
            Profile::High => "high",
            Profile::Default => "default",
        }
    }
}

/// What a stats subscription is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsOf {
    Transport(TransportId),
    Producer(ProducerId),
    Consumer(ConsumerId),
}

/// A field read from the message whose error, if any, is reported when the room uses
/// it: the protocol checks the entities a message names (the transport, the consumer)
/// before some of its other fields, and the answers keep that order.
#[derive(Debug, Clone)]
pub struct Field<T>(ReqResult<T>);

impl<T> Field<T> {
    pub fn get(self) -> ReqResult<T> {
        self.0
    }
}

/// `appData`: opaque to the server, echoed where the protocol says so.
pub type AppData = Value;

#[derive(Debug, Clone)]
pub struct Join {
    pub rtp_capabilities: Option<RtpCapabilities>,
    pub spy: bool,
    pub app_data: AppData,
}

#[derive(Debug, Clone)]
pub struct CreateTransport {
    pub id: TransportId,
    /// (dtlsParameters, direction): the direction is declared by the client, or derived
    /// from the seed shape (docs/PROTOCOL.md, "The two accepted shapes").
    pub dtls_and_direction: Field<(Option<DtlsParameters>, Direction)>,
    /// mediasoup v2 transport options (`udp`, `tcp`, `preferUdp`, `preferTcp`).
    pub options: Field<TransportOptions>,
    /// A plain RTP transport (a non-browser client): where its RTP comes from.
    pub plain: Field<Option<PlainRtpParameters>>,
}

/// `plainRtpParameters`: the client's address. Without `ip`/`port` (where the server
/// allows it) the first packet of a declared SSRC names it ("comedia").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainRtpParameters {
    pub remote: Option<(std::net::IpAddr, u16)>,
    /// The client's RTCP port: `rtcpPort`, else the RTP port with `rtcpMux`, else + 1.
    pub rtcp_port: Option<u16>,
}

/// `createTransport.options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportOptions {
    pub udp: bool,
    pub tcp: bool,
    pub prefer_udp: bool,
    pub prefer_tcp: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            udp: true,
            tcp: true,
            prefer_udp: false,
            prefer_tcp: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CreateProducer {
    pub id: ProducerId,
    pub kind: Field<String>,
    pub transport_id: Field<TransportId>,
    pub rtp_parameters: Field<RtpParameters>,
    pub paused: Field<bool>,
    pub app_data: AppData,
}

#[derive(Debug, Clone)]
pub struct EnableConsumer {
    pub id: ConsumerId,
    /// `None` in the seed shape: the peer's latest receive transport.
    pub transport_id: Field<Option<TransportId>>,
    pub paused: Field<bool>,
    pub preferred_profile: Field<Option<Profile>>,
    pub use_rtx: bool,
}

/// One decoded client message.
#[derive(Debug, Clone)]
pub enum ClientMessage {
    QueryRoom,
    Join(Join),
    CreateTransport(CreateTransport),
    RestartTransport { id: TransportId },
    CreateProducer(CreateProducer),
    EnableConsumer(EnableConsumer),
    Leave,
    UpdateTransport { id: TransportId, dtls_parameters: Option<DtlsParameters>, plain: Option<PlainRtpParameters> },
    CloseTransport { id: TransportId },
    UpdateProducer { id: ProducerId, rtp_parameters: RtpParameters },
    SetProducerPaused { id: ProducerId, paused: bool },
    CloseProducer { id: ProducerId },
    SetConsumerPaused { id: ConsumerId, paused: bool },
    SetConsumerPreferredProfile { id: ConsumerId, profile: Profile },
    SetStats { of: StatsOf, enable: bool, interval_ms: Option<f64> },
}

/// Read the fields of `method` from a decoded envelope.
pub fn decode_body(method: Method, m: &Message) -> ReqResult<ClientMessage> {
    use ClientMessage as C;
    Ok(match method {
        Method::QueryRoom => C::QueryRoom,
        Method::Join => {
            let rtp_capabilities = m.opt_typed("rtpCapabilities")?;
            let spy = m.opt_bool("spy")?.unwrap_or(false);
            // `peerName` is the client's claim (the host's name wins), but it must be a string.
            if m.has("peerName") {
                m.str("peerName")?;
            }
            C::Join(Join { rtp_capabilities, spy, app_data: m.opaque("appData") })
        }
        Method::CreateTransport => {
            let id = TransportId(m.id("id")?);
            let dtls_and_direction = Field((|| {
                let dtls: Option<DtlsParameters> = m.opt_typed("dtlsParameters")?;
                let direction = match m.opt_str("direction")? {
                    Some("send") => Direction::Send,
                    Some("recv") => Direction::Recv,
                    Some(d) => return Err(ReqError(format!("invalid `direction`: {d:?}"))),
                    // Seed shape: every 2.x browser handler sends dtlsParameters for send only.
                    None if dtls.is_some() => Direction::Send,
                    None => Direction::Recv,
                };
                Ok((dtls, direction))
            })());
            let options = Field(transport_options(m.body.get("options")));
            let plain = Field(plain_rtp_parameters(m, "plainRtpParameters"));
            C::CreateTransport(CreateTransport { id, dtls_and_direction, options, plain })
        }
        Method::RestartTransport => C::RestartTransport { id: TransportId(m.id("id")?) },
        Method::CreateProducer => {
            let id = ProducerId(m.id("id")?);
            let kind = Field(m.str("kind").map(str::to_string));
            let transport_id = Field(m.id("transportId").map(TransportId));
            let rtp_parameters = Field(m.typed("rtpParameters"));
            let paused = Field(m.opt_bool("paused").map(|p| p.unwrap_or(false)));
            C::CreateProducer(CreateProducer {
                id,
                kind,
                transport_id,
                rtp_parameters,
                paused,
                app_data: m.opaque("appData"),
            })
        }
        Method::EnableConsumer => {
            let id = ConsumerId(m.id("id")?);
            let transport_id = Field(m.opt_id("transportId").map(|t| t.map(TransportId)));
            let paused = Field(m.opt_bool("paused").map(|p| p.unwrap_or(false)));
            let preferred_profile = Field(m.opt_str("preferredProfile").and_then(|p| match p {
                None => Ok(None),
                Some(p) => Profile::parse(p)
                    .map(Some)
                    .ok_or_else(|| ReqError(format!("invalid `preferredProfile`: {p:?}"))),
            }));
            let use_rtx = m
                .body
                .get("rtpSettings")
                .and_then(|s| s.get("useRtx"))
                .and_then(Value::as_bool)
                .unwrap_or(true);
            C::EnableConsumer(EnableConsumer { id, transport_id, paused, preferred_profile, use_rtx })
        }
        Method::Leave => C::Leave,
        Method::UpdateTransport => C::UpdateTransport {
            id: TransportId(m.id("id")?),
            dtls_parameters: m.opt_typed("dtlsParameters")?,
            plain: plain_rtp_parameters(m, "plainRtpParameters")?,
        },
        Method::CloseTransport => C::CloseTransport { id: TransportId(m.id("id")?) },
        Method::UpdateProducer => C::UpdateProducer {
            id: ProducerId(m.id("id")?),
            rtp_parameters: m.typed("rtpParameters")?,
        },
        Method::PauseProducer | Method::ResumeProducer => C::SetProducerPaused {
            id: ProducerId(m.id("id")?),
            paused: method == Method::PauseProducer,
        },
        Method::CloseProducer => C::CloseProducer { id: ProducerId(m.id("id")?) },
        Method::PauseConsumer | Method::ResumeConsumer => C::SetConsumerPaused {
            id: ConsumerId(m.id("id")?),
            paused: method == Method::PauseConsumer,
        },
        Method::SetConsumerPreferredProfile => {
            let id = ConsumerId(m.id("id")?);
            let p = m.str("profile")?;
            let profile = Profile::parse(p).ok_or_else(|| ReqError(format!("invalid `profile`: {p:?}")))?;
            C::SetConsumerPreferredProfile { id, profile }
        }
        Method::EnableTransportStats
        | Method::DisableTransportStats
        | Method::EnableProducerStats
        | Method::DisableProducerStats
        | Method::EnableConsumerStats
        | Method::DisableConsumerStats => {
            let id = m.id("id")?;
            let of = match method {
                Method::EnableTransportStats | Method::DisableTransportStats => StatsOf::Transport(TransportId(id)),
                Method::EnableProducerStats | Method::DisableProducerStats => StatsOf::Producer(ProducerId(id)),
                _ => StatsOf::Consumer(ConsumerId(id)),
            };
            let enable = matches!(
                method,
                Method::EnableTransportStats | Method::EnableProducerStats | Method::EnableConsumerStats
            );
            C::SetStats { of, enable, interval_ms: m.opt_f64("interval")? }
        }
    })
}

/// `plainRtpParameters`: `{ip?, port?, rtcpPort?, rtcpMux?}` (null: absent).
fn plain_rtp_parameters(m: &Message, key: &str) -> ReqResult<Option<PlainRtpParameters>> {
    let v = match m.body.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(ReqError(format!("field `{key}` must be an object"))),
    };
    let inner = super::Message { method: String::new(), body: v.as_object().cloned().unwrap_or_default(), notification_flag: false };
    let remote = match (inner.has("ip"), inner.has("port")) {
        (false, false) => None,
        _ => Some((super::host::ip(&inner, "ip")?, super::host::port(&inner, "port")?)),
    };
    let rtcp_port = if inner.has("rtcpPort") {
        Some(super::host::port(&inner, "rtcpPort")?)
    } else if inner.opt_bool("rtcpMux")?.unwrap_or(false) {
        remote.map(|r| r.1)
    } else {
        remote.and_then(|r| r.1.checked_add(1))
    };
    Ok(Some(PlainRtpParameters { remote, rtcp_port }))
}

/// `createTransport.options`: an object (or null); known flags must be booleans.
fn transport_options(v: Option<&Value>) -> ReqResult<TransportOptions> {
    let mut o = TransportOptions::default();
    let map = match v {
        None | Some(Value::Null) => return Ok(o),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("field `options` must be an object".into()),
    };
    for (key, slot) in [
        ("udp", &mut o.udp),
        ("tcp", &mut o.tcp),
        ("preferUdp", &mut o.prefer_udp),
        ("preferTcp", &mut o.prefer_tcp),
    ] {
        match map.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => *slot = *b,
            Some(_) => return Err(ReqError(format!("field `options.{key}` must be a boolean"))),
        }
    }
    if !o.udp && !o.tcp {
        return Err("`options.udp` and `options.tcp` cannot both be false".into());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> ReqResult<ClientMessage> {
        let m = super::super::decode(json.as_bytes(), 1 << 20)?;
        let method = Method::from_name(&m.method).expect("known");
        // Surface the fields whose errors are deferred, as the room does.
        match decode_body(method, &m)? {
            ClientMessage::CreateTransport(c) => {
                c.dtls_and_direction.clone().get()?;
                c.options.clone().get()?;
                Ok(ClientMessage::CreateTransport(c))
            }
            ClientMessage::CreateProducer(c) => {
                c.transport_id.clone().get()?;
                Ok(ClientMessage::CreateProducer(c))
            }
            other => Ok(other),
        }
    }

    #[test]
    fn the_method_table_round_trips_and_classifies() {
        for (name, m, req) in METHODS {
            assert_eq!(Method::from_name(name), Some(*m));
            assert_eq!(m.name(), *name);
            assert_eq!(m.is_request(), *req);
        }
        assert_eq!(Method::from_name("nope"), None);
    }

    #[test]
    fn fields_are_named_in_errors() {
        let e = body(r#"{"method":"restartTransport"}"#).unwrap_err();
        assert!(e.0.contains("missing field `id`"), "{e}");
        let e = body(r#"{"method":"createProducer","id":1,"kind":"video","transportId":"x"}"#).unwrap_err();
        assert!(e.0.contains("`transportId`"), "{e}");
        let e = body(r#"{"method":"setConsumerPreferredProfile","id":1,"profile":"ultra"}"#).unwrap_err();
        assert!(e.0.contains("profile"), "{e}");
        let e = body(r#"{"method":"createTransport","id":1,"options":{"tcp":"yes"}}"#).unwrap_err();
        assert!(e.0.contains("options.tcp"), "{e}");
    }

    #[test]
    fn seed_shapes_decode() {
        match body(r#"{"method":"createTransport","id":3,"dtlsParameters":{"role":"server","fingerprints":[]}}"#).unwrap() {
            ClientMessage::CreateTransport(c) => assert_eq!(c.dtls_and_direction.get().unwrap().1, Direction::Send),
            other => panic!("{other:?}"),
        }
        match body(r#"{"method":"enableConsumer","id":9}"#).unwrap() {
            ClientMessage::EnableConsumer(e) => assert!(e.transport_id.get().unwrap().is_none() && e.use_rtx),
            other => panic!("{other:?}"),
        }
    }
}
