//! What the host asks of a room itself (docs/PROTOCOL.md, "Host requests"): RTP
//! streamers (a producer's media as plain RTP to a recorder), audio levels and the active
//! speaker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::{forward, Consumer, Cx, Room, RoomTimer, Transport};
use crate::error::{ReqError, ReqResult};
use crate::ids::{ConsumerId, PeerName, ProducerKey, TransportId, TransportKey};
use crate::media::plain::PlainRemote;
use crate::media::rewrite::ConsumerForwarding;
use crate::ortc::{self, Kind, RtpCodecInfo};
use crate::output::{EventKind, HostMessage};
use crate::protocol::host::{self, CreateRtpStreamer, HostRequest};
use crate::protocol::request::{Direction, Profile};
use crate::protocol::{self};

/// Keyframe requests toward the producer after a streamer starts: recorders bind their
/// ports a little after the answer and drop everything until a keyframe.
const STREAMER_KEYFRAMES: [Duration; 2] = [Duration::from_millis(1200), Duration::from_millis(2500)];

/// A producer's media sent as plain RTP to a recorder.
pub(super) struct Streamer {
    pub consumer: ConsumerId,
    pub transport: TransportKey,
    pub producer: ProducerKey,
    pub remote: PlainRemote,
    /// Keyframe requests still to make (index into `STREAMER_KEYFRAMES`).
    pub keyframes_sent: usize,
}

/// Audio levels of one producer over a reporting interval.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LevelAcc {
    sum: i64,
    n: u32,
}

impl LevelAcc {
    pub fn add(&mut self, dbov: i8) {
        self.sum += dbov as i64;
        self.n += 1;
    }

    fn take(&mut self) -> Option<f64> {
        let v = (self.n > 0).then(|| self.sum as f64 / self.n as f64);
        *self = LevelAcc::default();
        v
    }
}

/// `enableAudioLevels` / `enableActiveSpeaker` settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct LevelsCfg {
    pub interval: Duration,
    pub threshold: i8,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct SpeakerCfg {
    pub interval: Duration,
    pub threshold: i8,
    pub consecutive: u32,
}

/// The dominant speaker and the one that may replace it.
#[derive(Debug, Default)]
pub(super) struct SpeakerState {
    pub current: Option<ProducerKey>,
    pub candidate: Option<(ProducerKey, u32)>,
}

impl Room {
    fn host_respond(&self, cx: &mut Cx, request_id: u64, json: String) {
        cx.out.message(HostMessage {
            kind: EventKind::HostResponse,
            room: self.id.clone(),
            peer: Arc::from(""),
            request_id,
            json,
        });
    }

    /// A host event about the room (`peer_name` empty).
    pub(super) fn room_event(&self, cx: &mut Cx, fields: Value) {
        cx.out.message(HostMessage {
            kind: EventKind::Host,
            room: self.id.clone(),
            peer: Arc::from(""),
            request_id: 0,
            json: fields.to_string(),
        });
    }

    /// A host request: exactly one response, whatever the input.
    pub fn handle_host_request(&mut self, cx: &mut Cx, request_id: u64, bytes: &[u8]) {
        let result = protocol::decode(bytes, self.settings.max_message_size).and_then(|m| {
            let r = host::decode(&m)?;
            self.host_request(cx, r)
        });
        let json = match result {
            Ok(data) => protocol::ok_response(data),
            Err(e) => protocol::error_response(&e.0),
        };
        self.host_respond(cx, request_id, json);
    }

    fn host_request(&mut self, cx: &mut Cx, r: HostRequest) -> ReqResult<Value> {
        match r {
            HostRequest::CreateRtpStreamer(c) => self.create_rtp_streamer(cx, c),
            HostRequest::CloseRtpStreamer { streamer_id } => {
                if !self.streamers.contains_key(&streamer_id) {
                    return Err("streamer not found".into());
                }
                self.close_streamer(cx, streamer_id, None);
                Ok(json!({}))
            }
            HostRequest::EnableAudioLevels { interval_ms, threshold_dbov } => {
                let interval = Duration::from_millis(interval_ms);
                self.levels = Some(LevelsCfg { interval, threshold: threshold_dbov });
                for p in self.producers.values_mut() {
                    p.levels = LevelAcc::default();
                }
                self.timers.set(RoomTimer::AudioLevels, None);
                self.arm_level_timers(cx.now);
                Ok(json!({}))
            }
            HostRequest::DisableAudioLevels => {
                self.levels = None;
                self.timers.set(RoomTimer::AudioLevels, None);
                Ok(json!({}))
            }
            HostRequest::EnableActiveSpeaker { interval_ms, threshold_dbov, consecutive } => {
                let interval = Duration::from_millis(interval_ms);
                self.speaker_cfg = Some(SpeakerCfg { interval, threshold: threshold_dbov, consecutive });
                self.speaker = SpeakerState::default();
                for p in self.producers.values_mut() {
                    p.speech = LevelAcc::default();
                }
                self.timers.set(RoomTimer::ActiveSpeaker, None);
                self.arm_level_timers(cx.now);
                Ok(json!({}))
            }
            HostRequest::DisableActiveSpeaker => {
                self.speaker_cfg = None;
                self.speaker = SpeakerState::default();
                self.timers.set(RoomTimer::ActiveSpeaker, None);
                Ok(json!({}))
            }
        }
    }

    /// The producer a host request names: by peer and id, or by id alone when unique.
    fn find_producer(&self, peer: Option<&str>, id: crate::ids::ProducerId) -> ReqResult<ProducerKey> {
        if let Some(name) = peer {
            return self.producer_key(name, id).ok_or_else(|| "producer not found".into());
        }
        let mut found = self.producers.iter().filter(|(_, p)| p.id == id).map(|(k, _)| *k);
        match (found.next(), found.next()) {
            (Some(k), None) => Ok(k),
            (None, _) => Err("producer not found".into()),
            (Some(_), Some(_)) => Err("producerId is not unique in the room: give `peerName`".into()),
        }
    }

    fn create_rtp_streamer(&mut self, cx: &mut Cx, c: CreateRtpStreamer) -> ReqResult<Value> {
        let pkey = self.find_producer(c.peer_name.as_deref(), c.producer_id)?;
        let remote = PlainRemote {
            rtp: SocketAddr::new(c.remote_ip, c.remote_port),
            rtcp: SocketAddr::new(c.remote_ip, c.remote_rtcp_port),
        };
        if self.streamers.values().any(|s| s.producer == pkey && s.remote.rtp == remote.rtp) {
            return Err(ReqError(format!("a streamer of this producer to {} exists", remote.rtp)));
        }
        if self.streamers.values().any(|s| s.remote.rtp == remote.rtp || s.remote.rtcp == remote.rtcp) {
            return Err(ReqError(format!("another streamer sends to {}", remote.rtp)));
        }
        let limit = self.settings.limits.max_rtp_streamers_per_room;
        if self.streamers.len() >= limit {
            return Err(ReqError(format!("too many RTP streamers in the room (limit {limit})")));
        }
        let (kind, source_peer, app_data) = {
            let p = &self.producers[&pkey];
            (p.kind, p.peer.clone(), p.app_data.clone())
        };
        // The room's own codecs, without RTX: recorders do not NACK through RTX.
        let caps = self.caps.all_as_peer_caps();
        let (ssrc, spare) = (self.new_ssrc(), self.new_ssrc());
        self.ssrcs.remove(&spare);
        let params = ortc::consumer_params(&self.caps, kind, &self.producers[&pkey].mapping, &caps, ssrc, spare, false);
        let Some(codec) = params.media_pts.first().and_then(|pt| self.caps.codec_by_pt(*pt)).map(RtpCodecInfo::of) else {
            self.ssrcs.remove(&ssrc);
            return Err("the producer has no codec a recorder can take".into());
        };
        let tkey = cx.keys.transport();
        let local = cx.media.create_plain(cx.now, tkey, self.slot, Some(remote), false);
        let streamer_id = self.next_streamer;
        self.next_streamer += 1;
        let id = self.new_consumer_id();
        let mid = forward::consumer_mid(id);
        cx.media.add_consumer(cx.now, tkey, &mid, kind, ssrc, None, codec.clock_rate, cx.out);
        let rtp_parameters = params.rtp.clone();
        self.consumers.insert(
            id,
            Consumer {
                id,
                peer: Arc::from(""),
                streamer: Some(streamer_id),
                producer: pkey,
                source_peer,
                kind,
                params,
                app_data,
                transport: Some(tkey),
                remote_paused: false,
                preferred_profile: Profile::Default,
                effective_profile: None,
                stats: None,
                fwd: ConsumerForwarding::default(),
                counters: Default::default(),
                choice: Default::default(),
                share: None,
            },
        );
        self.producers.get_mut(&pkey).expect("found").consumers.push(id);
        self.transports.insert(
            tkey,
            Transport {
                id: TransportId(0),
                peer: PeerName::from(""),
                dir: Direction::Recv,
                plain: true,
                dtls_applied: true,
                producers: Vec::new(),
                consumers: vec![id],
                stats: None,
                link: None,
                stats_waiting: false,
            },
        );
        self.streamers.insert(streamer_id, Streamer { consumer: id, transport: tkey, producer: pkey, remote, keyframes_sent: 0 });
        self.request_keyframe_upstream(cx, pkey, true);
        self.timers.set(RoomTimer::StreamerKeyframe(streamer_id), Some(cx.now + STREAMER_KEYFRAMES[0]));
        let sdp = streamer_sdp(streamer_id, remote, kind, &codec);
        Ok(json!({
            "streamerId": streamer_id,
            "localIp": local.ip().to_string(),
            "localPort": local.port(),
            "rtpParameters": rtp_parameters,
            "sdp": sdp,
        }))
    }

    /// One of the keyframe requests after a streamer started.
    pub(super) fn streamer_keyframe(&mut self, cx: &mut Cx, streamer_id: u64) {
        let Some(s) = self.streamers.get_mut(&streamer_id) else { return };
        s.keyframes_sent += 1;
        let (pkey, n) = (s.producer, s.keyframes_sent);
        self.request_keyframe_upstream(cx, pkey, true);
        let next = STREAMER_KEYFRAMES.get(n).map(|d| cx.now + (*d - STREAMER_KEYFRAMES[n - 1]));
        self.timers.set(RoomTimer::StreamerKeyframe(streamer_id), next);
    }

    /// Close a streamer (its stream says BYE). `reason`: closed by the room, not by the
    /// host (a host event says why).
    pub(super) fn close_streamer(&mut self, cx: &mut Cx, streamer_id: u64, reason: Option<&str>) {
        let Some(s) = self.streamers.remove(&streamer_id) else { return };
        self.timers.set(RoomTimer::StreamerKeyframe(streamer_id), None);
        if let Some(c) = self.consumers.remove(&s.consumer) {
            if let Some(p) = self.producers.get_mut(&c.producer) {
                p.consumers.retain(|x| *x != s.consumer);
            }
            self.drop_consumer(cx, &c);
        }
        self.transports.remove(&s.transport);
        cx.media.close(s.transport, cx.out);
        if let Some(reason) = reason {
            self.room_event(cx, json!({"event": "rtpStreamerClosed", "streamerId": streamer_id, "reason": reason}));
        }
    }

    /// The producers' average levels over the interval, loudest first, above `threshold`
    /// (paused producers and producers without level samples drop out).
    fn loudest(&mut self, threshold: i8, speech: bool) -> Vec<(ProducerKey, f64)> {
        let mut v: Vec<(ProducerKey, f64)> = Vec::new();
        for (k, p) in self.producers.iter_mut() {
            let acc = if speech { &mut p.speech } else { &mut p.levels };
            let Some(avg) = acc.take() else { continue };
            if p.kind == Kind::Audio && !p.paused && avg > threshold as f64 {
                v.push((*k, avg));
            }
        }
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// Level reports and speaker decisions tick only while the room has an audio
    /// producer (an empty room keeps no timer).
    pub(super) fn arm_level_timers(&mut self, now: std::time::Instant) {
        if !self.producers.values().any(|p| p.kind == Kind::Audio) {
            return;
        }
        if let Some(cfg) = self.levels {
            if self.timers.get(RoomTimer::AudioLevels).is_none() {
                self.timers.set(RoomTimer::AudioLevels, Some(now + cfg.interval));
            }
        }
        if let Some(cfg) = self.speaker_cfg {
            if self.timers.get(RoomTimer::ActiveSpeaker).is_none() {
                self.timers.set(RoomTimer::ActiveSpeaker, Some(now + cfg.interval));
            }
        }
    }

    pub(super) fn emit_audio_levels(&mut self, cx: &mut Cx) {
        let Some(cfg) = self.levels else { return };
        self.arm_level_timers(cx.now);
        let loud = self.loudest(cfg.threshold, false);
        if loud.is_empty() && !self.levels_were_loud {
            return; // silence stays silent: one empty report when it starts
        }
        self.levels_were_loud = !loud.is_empty();
        let levels: Vec<Value> = loud
            .iter()
            .map(|(k, avg)| {
                let p = &self.producers[k];
                json!({"peerName": &*p.peer, "producerId": p.id.0, "dBov": (avg * 10.0).round() / 10.0})
            })
            .collect();
        self.room_event(cx, json!({"event": "audioLevels", "levels": levels}));
    }

    /// The active speaker changes when another producer has been the loudest (above the
    /// threshold) in `consecutive` reports in a row, or at once when nobody was speaking.
    pub(super) fn detect_active_speaker(&mut self, cx: &mut Cx) {
        let Some(cfg) = self.speaker_cfg else { return };
        self.arm_level_timers(cx.now);
        let loud = self.loudest(cfg.threshold, true);
        let Some(&(top, _)) = loud.first() else {
            self.speaker.candidate = None;
            return;
        };
        if self.speaker.current == Some(top) {
            self.speaker.candidate = None;
            return;
        }
        let n = match self.speaker.candidate {
            Some((k, n)) if k == top => n + 1,
            _ => 1,
        };
        let current_speaking = self.speaker.current.is_some_and(|c| loud.iter().any(|(k, _)| *k == c));
        if n >= cfg.consecutive || !current_speaking {
            self.speaker = SpeakerState { current: Some(top), candidate: None };
            let p = &self.producers[&top];
            let ev = json!({"event": "activeSpeaker", "peerName": &*p.peer, "producerId": p.id.0});
            self.room_event(cx, ev);
        } else {
            self.speaker.candidate = Some((top, n));
        }
    }

    /// A producer leaves: it cannot stay the active speaker.
    pub(super) fn producer_gone_from_speaker(&mut self, cx: &mut Cx, pkey: ProducerKey) {
        if self.speaker.candidate.is_some_and(|(k, _)| k == pkey) {
            self.speaker.candidate = None;
        }
        if self.speaker.current == Some(pkey) {
            self.speaker.current = None;
            if self.speaker_cfg.is_some() {
                self.room_event(cx, json!({"event": "activeSpeaker", "peerName": null, "producerId": null}));
            }
        }
    }

    /// Streamers of a producer that closes.
    pub(super) fn streamers_of(&self, pkey: ProducerKey) -> Vec<u64> {
        self.streamers.iter().filter(|(_, s)| s.producer == pkey).map(|(k, _)| *k).collect()
    }

}

/// The session description a recorder (ffmpeg, GStreamer's sdpdemux) opens to receive a
/// streamer: one media section at the address the streamer sends to.
fn streamer_sdp(id: u64, remote: PlainRemote, kind: Kind, c: &RtpCodecInfo) -> String {
    let family = if remote.rtp.is_ipv4() { "IP4" } else { "IP6" };
    let ip = remote.rtp.ip();
    let mut s = format!(
        "v=0\r\no=- {id} 0 IN {family} {ip}\r\ns=sfu rtp streamer {id}\r\nc=IN {family} {ip}\r\nt=0 0\r\nm={} {} RTP/AVP {}\r\n",
        kind.as_str(),
        remote.rtp.port(),
        c.pt
    );
    match c.channels {
        Some(ch) if ch > 1 => s += &format!("a=rtpmap:{} {}/{}/{ch}\r\n", c.pt, c.name, c.clock_rate),
        _ => s += &format!("a=rtpmap:{} {}/{}\r\n", c.pt, c.name, c.clock_rate),
    }
    if !c.fmtp.is_empty() {
        s += &format!("a=fmtp:{} {}\r\n", c.pt, c.fmtp);
    }
    if remote.rtcp.port() != remote.rtp.port().wrapping_add(1) {
        s += &format!("a=rtcp:{}\r\n", remote.rtcp.port());
    }
    s += "a=recvonly\r\n";
    s
}
