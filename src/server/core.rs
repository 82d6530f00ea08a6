//! The sans-IO worker core: everything a worker thread does, without the thread, the
//! socket or the clock (str0m's shape, one level up).
//!
//! Inputs: [`WorkerCore::handle_command`] (a host call or a client message),
//! [`WorkerCore::handle_datagram`], [`WorkerCore::handle_timeout`]; outputs come out of
//! one queue, [`WorkerCore::poll_output`] (datagrams to send, messages for the host);
//! [`WorkerCore::poll_timeout`] says when to call `handle_timeout` next. The worker
//! thread (`worker.rs`) only moves bytes and time between these and the OS; the fuzz
//! harness and simulated-time tests drive the same core.
//!
//! A room's code runs inside `catch_unwind`: a panic closes that room (its peers get
//! `closed`, the host a `roomClosed` event), never the worker.
//! docs/ARCHITECTURE.md draws the path of a datagram and of a request through it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::config::LogLevel;
use crate::error::SfuError;
use crate::ids::{KeyGen, RoomSlot};
use crate::media::remote::{CrossItem, Spread};
use crate::media::{MediaEnv, MediaEvent, MediaHost};
use crate::metrics::{Counters, Ctr, Gauges};
use crate::ortc::RoomCaps;
use crate::output::{EventKind, HostMessage, Outbox, Output, Proto};
use crate::protocol;
use crate::room::{Cx, Room, RoomSettings};
use crate::timers::Timers;

/// A host call or a client message for the core.
#[derive(Debug)]
pub enum Command {
    CreateRoom { id: String, caps: RoomCaps },
    CloseRoom { id: String },
    ClosePeer { room: String, peer: String },
    Request { room: String, peer: String, request_id: u64, bytes: Vec<u8> },
    Notify { room: String, peer: String, bytes: Vec<u8> },
    HostRequest { room: String, request_id: u64, bytes: Vec<u8> },
}

/// What a command returns to its caller (the synchronous host calls wait for it).
#[derive(Debug, PartialEq, Eq)]
pub enum CommandResult {
    Done,
    RoomCreated(Result<(), SfuError>),
    /// `ClosePeer`: whether the peer existed.
    PeerClosed(bool),
}

/// Packets written and not yet sent above which the engines are driven at once, before
/// the rest of the input batch: bounds the latency that batching adds.
const MAX_PENDING_WRITES: usize = 1024;
/// Engine and room deadlines handled per `handle_timeout` call, at most.
const MAX_TIMEOUTS_PER_CALL: usize = 100_000;

/// One worker's rooms and engines.
pub struct WorkerCore {
    /// This worker's index.
    worker: usize,
    settings: RoomSettings,
    media: MediaHost,
    keys: KeyGen,
    /// Rooms by slot; a closed room leaves an empty slot that the next room reuses.
    rooms: Vec<Option<Room>>,
    by_id: HashMap<Arc<str>, RoomSlot>,
    room_timers: Timers<RoomSlot>,
    out: Outbox,
    /// Scratch list of media events (kept to reuse its allocation).
    evs: Vec<MediaEvent>,
    /// The core's own traffic counters (the media layer keeps its own).
    counters: Counters,
}

impl WorkerCore {
    /// A core whose rooms keep every transport on this worker.
    pub fn new(worker: usize, env: Arc<MediaEnv>, settings: RoomSettings) -> WorkerCore {
        WorkerCore::with_spread(worker, env, None, settings)
    }

    /// A core whose rooms may place receive transports on every worker of `spread`
    /// (docs/ARCHITECTURE.md, "A room on several workers"): what it asks of the other
    /// workers comes out as [`Output::Cross`], what they send goes to
    /// [`WorkerCore::handle_cross`].
    pub fn with_spread(worker: usize, env: Arc<MediaEnv>, spread: Option<Arc<Spread>>, settings: RoomSettings) -> WorkerCore {
        WorkerCore {
            worker,
            settings,
            media: MediaHost::new(worker, env, spread),
            keys: KeyGen::new(worker),
            rooms: Vec::new(),
            by_id: HashMap::new(),
            room_timers: Timers::default(),
            out: Outbox::default(),
            evs: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Records above `level` are not produced (default: `LogLevel::Error`).
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.out.set_log_level(level);
    }

    /// The traffic counters (monotonic), for the worker to publish.
    pub(crate) fn counters(&self) -> Counters {
        let mut c = self.counters;
        c += &self.media.counters;
        c
    }

    /// Rooms, peers, producers, consumers and transports by state: walks every room and
    /// engine, so the worker calls it only when the figures are due (metrics/mod.rs).
    pub(crate) fn gauges(&self) -> Gauges {
        let mut g = Gauges { rooms: self.by_id.len() as u64, ..Default::default() };
        for r in self.rooms.iter().flatten() {
            g.peers += r.peer_count() as u64;
            g.producers += r.producer_count() as u64;
            g.consumers += r.consumer_count() as u64;
        }
        self.media.count_transports(&mut g);
        g
    }

    /// The next output, in production order. What waits for other workers is handed
    /// out once the rest is, one batch per worker.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop() {
            return Some(o);
        }
        if self.media.has_outgoing() {
            let out = &mut self.out;
            self.media.take_outgoing(|worker, items| out.push(Output::Cross { worker, items }));
        }
        self.out.pop()
    }

    /// Outputs waiting (a batch for other workers counts as one).
    pub fn pending_outputs(&self) -> usize {
        self.out.len() + usize::from(self.media.has_outgoing())
    }

    /// Items from another worker, in the order it made them: operations and packets for
    /// the engines this worker runs, events of engines elsewhere for this worker's rooms.
    pub fn handle_cross(&mut self, now: Instant, items: Vec<CrossItem>) {
        for item in items {
            match item {
                CrossItem::Events { slot, key, mut evs } => {
                    self.media.observe(key, &evs);
                    self.with_room(slot, now, |r, cx| r.handle_media(cx, key, &mut evs));
                }
                other => self.media.apply(now, other, &mut self.out),
            }
        }
        if self.media.pending_writes() >= MAX_PENDING_WRITES {
            self.drive_engines(now);
        }
    }

    /// Hand an engine's events to its room: here, or on the room's worker.
    fn to_room(&mut self, now: Instant, key: crate::ids::TransportKey, slot: RoomSlot, evs: &mut Vec<MediaEvent>) {
        if key.home_worker() == self.worker {
            self.with_room(slot, now, |r, cx| r.handle_media(cx, key, evs));
            evs.clear();
        } else {
            self.media.export_events(key, slot, evs);
        }
    }

    /// When `handle_timeout` is next due (`now` if it is due already).
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        match (self.media.next_timeout(now), self.room_timers.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run `f` on a room with the worker's context; a panic closes the room.
    fn with_room<R>(&mut self, slot: RoomSlot, now: Instant, f: impl FnOnce(&mut Room, &mut Cx) -> R) -> Option<R> {
        let room = self.rooms.get_mut(slot.0 as usize)?.as_mut()?;
        let mut cx = Cx { now, out: &mut self.out, media: &mut self.media, keys: &mut self.keys };
        let r = catch_unwind(AssertUnwindSafe(|| {
            let r = f(room, &mut cx);
            (r, room.poll_timeout())
        }));
        match r {
            Ok((v, next)) => {
                self.room_timers.set(slot, next);
                Some(v)
            }
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                let id = self.rooms.get(slot.0 as usize).and_then(Option::as_ref).map(|r| r.id().clone());
                self.out.log(LogLevel::Error, module_path!(), || format!("room {}: panicked: {what}", id.as_deref().unwrap_or("?")));
                self.room_failed(slot, &what);
                None
            }
        }
    }

    /// A room panicked: tell its peers it is closed and forget it.
    fn room_failed(&mut self, slot: RoomSlot, what: &str) {
        let Some(room) = self.rooms.get_mut(slot.0 as usize).and_then(Option::take) else {
            return;
        };
        self.media.close_owner(slot, &mut self.out);
        self.room_timers.set(slot, None);
        let id = room.id().clone();
        self.by_id.remove(&id);
        let names = catch_unwind(AssertUnwindSafe(|| room.peer_names_legacy())).unwrap_or_default();
        for (n, legacy) in names {
            self.message(EventKind::Notification, &id, &n, 0, protocol::notification("closed", json!({})));
            if legacy {
                self.message(EventKind::Notification, &id, &n, 0, protocol::notification("roomClosed", json!({})));
            }
        }
        let ev = json!({"event": "roomClosed", "reason": format!("internal error: {what}")});
        self.message(EventKind::Host, &id, "", 0, ev.to_string());
        self.out.push(Output::RoomFailed(id));
        // Dropping a room in an unknown state could panic again: contain it.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(room)));
    }

    fn message(&mut self, kind: EventKind, room: &Arc<str>, peer: &str, request_id: u64, json: String) {
        self.out.message(HostMessage { kind, room: room.clone(), peer: Arc::from(peer), request_id, json });
    }

    /// A host call or a client message.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) -> CommandResult {
        match cmd {
            Command::CreateRoom { id, caps } => {
                if self.by_id.contains_key(id.as_str()) {
                    return CommandResult::RoomCreated(Err(SfuError::RoomExists(id)));
                }
                let free = self.rooms.iter().position(Option::is_none);
                let slot = RoomSlot(free.unwrap_or(self.rooms.len()) as u32);
                let room = Room::new(&id, slot, caps, self.settings);
                match free {
                    Some(i) => self.rooms[i] = Some(room),
                    None => self.rooms.push(Some(room)),
                }
                self.by_id.insert(Arc::from(id), slot);
                CommandResult::RoomCreated(Ok(()))
            }
            Command::CloseRoom { id } => {
                if let Some(slot) = self.by_id.remove(id.as_str()) {
                    self.with_room(slot, now, |r, cx| r.close(cx));
                    if let Some(s) = self.rooms.get_mut(slot.0 as usize) {
                        *s = None;
                    }
                    self.room_timers.set(slot, None);
                }
                CommandResult::Done
            }
            Command::ClosePeer { room, peer } => {
                let closed = match self.by_id.get(room.as_str()).copied() {
                    Some(slot) => self.with_room(slot, now, |r, cx| r.close_peer(cx, &peer)).unwrap_or(false),
                    None => false,
                };
                CommandResult::PeerClosed(closed)
            }
            Command::Request { room, peer, request_id, bytes } => {
                let reason = match self.by_id.get(room.as_str()).copied() {
                    Some(slot) => {
                        let answered = self.with_room(slot, now, |r, cx| r.handle_request(cx, &peer, request_id, &bytes));
                        answered.is_none().then_some("internal error: the room was closed")
                    }
                    None => Some("room not found"),
                };
                if let Some(reason) = reason {
                    let room: Arc<str> = Arc::from(room);
                    self.message(EventKind::Response, &room, &peer, request_id, protocol::error_response(reason));
                }
                CommandResult::Done
            }
            Command::Notify { room, peer, bytes } => {
                if let Some(slot) = self.by_id.get(room.as_str()).copied() {
                    self.with_room(slot, now, |r, cx| r.handle_notification(cx, &peer, &bytes));
                }
                CommandResult::Done
            }
            Command::HostRequest { room, request_id, bytes } => {
                let reason = match self.by_id.get(room.as_str()).copied() {
                    Some(slot) => {
                        let answered = self.with_room(slot, now, |r, cx| r.handle_host_request(cx, request_id, &bytes));
                        answered.is_none().then_some("internal error: the room was closed")
                    }
                    None => Some("room not found"),
                };
                if let Some(reason) = reason {
                    let room: Arc<str> = Arc::from(room);
                    self.message(EventKind::HostResponse, &room, "", request_id, protocol::error_response(reason));
                }
                CommandResult::Done
            }
        }
    }

    /// A packet received by the worker: a UDP datagram, or a frame of a TCP connection
    /// from `src`. Returns whether it was routed to a transport (a TCP connection that
    /// sends something that is not is closed by the I/O loop).
    pub fn handle_datagram(&mut self, now: Instant, proto: Proto, src: SocketAddr, data: &[u8]) -> bool {
        let Some((tk, slot)) = self.media.route(proto, src, data) else {
            self.counters[Ctr::dropped_unknown_source(proto)] += 1;
            return false;
        };
        let mut evs = std::mem::take(&mut self.evs);
        self.media.receive(now, tk, proto, src, data, &mut self.out, &mut evs);
        if !evs.is_empty() {
            self.to_room(now, tk, slot, &mut evs);
        }
        self.evs = evs;
        if self.media.pending_writes() >= MAX_PENDING_WRITES {
            self.drive_engines(now);
        }
        true
    }

    /// Deadlines: rooms' timers, then every engine that is due (those written to since
    /// the last call among them: their packets leave now).
    pub fn handle_timeout(&mut self, now: Instant) {
        for _ in 0..MAX_TIMEOUTS_PER_CALL {
            let Some(slot) = self.room_timers.pop_due(now) else { break };
            self.with_room(slot, now, |r, cx| r.handle_timeout(cx));
        }
        self.drive_engines(now);
    }

    fn drive_engines(&mut self, now: Instant) {
        let mut evs = std::mem::take(&mut self.evs);
        for _ in 0..MAX_TIMEOUTS_PER_CALL {
            let Some((tk, slot)) = self.media.pop_due(now) else { break };
            self.media.drive(now, tk, &mut self.out, &mut evs);
            if !evs.is_empty() {
                self.to_room(now, tk, slot, &mut evs);
            }
        }
        self.evs = evs;
    }

    /// Close every room (shutdown): peers get `closed`.
    pub fn close_all(&mut self, now: Instant) {
        for i in 0..self.rooms.len() {
            if self.rooms[i].is_some() {
                self.with_room(RoomSlot(i as u32), now, |r, cx| r.close(cx));
                self.rooms[i] = None;
            }
        }
        self.by_id.clear();
        self.room_timers = Timers::default();
    }

    /// Rooms, engines and routes in use (for tests and invariants).
    pub fn counts(&self) -> CoreCounts {
        let (engines, routes) = self.media.counts();
        CoreCounts {
            rooms: self.by_id.len(),
            room_slots: self.rooms.len(),
            engines,
            ufrag_routes: routes.0,
            addr_routes: routes.1,
        }
    }

    /// The room `id`'s peers and transports, if it exists.
    pub fn room_counts(&self, id: &str) -> Option<(usize, usize)> {
        let slot = self.by_id.get(id)?;
        let r = self.rooms.get(slot.0 as usize)?.as_ref()?;
        Some((r.peer_count(), r.transport_count()))
    }

    #[cfg(test)]
    pub(crate) fn room_mut(&mut self, id: &str) -> Option<(RoomSlot, &mut Room)> {
        let slot = *self.by_id.get(id)?;
        Some((slot, self.rooms.get_mut(slot.0 as usize)?.as_mut()?))
    }

    #[cfg(test)]
    pub(crate) fn with_room_for_test<R>(&mut self, slot: RoomSlot, f: impl FnOnce(&mut Room, &mut Cx) -> R) -> Option<R> {
        self.with_room(slot, Instant::now(), f)
    }
}

/// What a core holds, for tests and invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreCounts {
    pub rooms: usize,
    pub room_slots: usize,
    pub engines: usize,
    pub ufrag_routes: usize,
    pub addr_routes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{cert, AnnouncedCandidate};
    use std::time::Duration;

    fn core() -> WorkerCore {
        let c = cert::generate().unwrap();
        let env = Arc::new(MediaEnv {
            ice_addr: "127.0.0.1:40000".parse().unwrap(),
            tcp_addr: None,
            candidates: vec![AnnouncedCandidate { addr: "127.0.0.1:40000".parse().unwrap(), proto: Proto::Udp }],
            fingerprint: cert::fingerprint(&c),
            cert: c,
            transport_timeout: Duration::from_secs(30),
            bwe_initial: None,
        });
        WorkerCore::new(0, env, RoomSettings { limits: Default::default(), max_message_size: 65536, adapt: Default::default() })
    }

    fn messages(c: &mut WorkerCore) -> Vec<HostMessage> {
        std::iter::from_fn(|| c.poll_output())
            .filter_map(|o| match o {
                Output::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn create(c: &mut WorkerCore, id: &str) {
        let r = c.handle_command(Instant::now(), Command::CreateRoom { id: id.into(), caps: RoomCaps::from_options(None).unwrap() });
        assert_eq!(r, CommandResult::RoomCreated(Ok(())));
    }

    #[test]
    fn a_panic_inside_a_room_closes_that_room_with_notifications() {
        let mut c = core();
        create(&mut c, "r");
        for p in ["a", "b"] {
            c.handle_command(
                Instant::now(),
                Command::Request { room: "r".into(), peer: p.into(), request_id: 1, bytes: br#"{"method":"join"}"#.to_vec() },
            );
        }
        messages(&mut c);
        let (slot, _) = c.room_mut("r").unwrap();
        assert!(c.with_room_for_test(slot, |_, _| panic!("boom")).is_none());
        let got: Vec<Output> = std::iter::from_fn(|| c.poll_output()).collect();
        let closed = got
            .iter()
            .filter(|o| matches!(o, Output::Message(m) if m.kind == EventKind::Notification && m.json.contains("\"closed\"")))
            .count();
        assert_eq!(closed, 2, "{got:?}");
        assert!(got.iter().any(|o| matches!(o, Output::Message(m)
            if m.kind == EventKind::Host && m.json.contains("roomClosed") && m.json.contains("boom"))));
        assert!(got.iter().any(|o| matches!(o, Output::RoomFailed(id) if &**id == "r")), "the server is told to forget it");
        assert_eq!(c.counts().rooms, 0);
        // Later requests to it are answered with an error, not silence.
        c.handle_command(
            Instant::now(),
            Command::Request { room: "r".into(), peer: "a".into(), request_id: 9, bytes: br#"{"method":"queryRoom"}"#.to_vec() },
        );
        let m = messages(&mut c);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].kind, m[0].request_id), (EventKind::Response, 9));
        assert!(m[0].json.contains("room not found"));
    }

    #[test]
    fn a_closed_room_slot_is_reused_so_room_churn_does_not_grow_the_worker() {
        let mut c = core();
        for i in 0..100 {
            let id = format!("r{i}");
            create(&mut c, &id);
            c.handle_command(Instant::now(), Command::CloseRoom { id });
        }
        assert_eq!(c.counts(), CoreCounts { rooms: 0, room_slots: 1, engines: 0, ufrag_routes: 0, addr_routes: 0 });
    }

    #[test]
    fn a_transport_gets_an_engine_and_a_route_that_leave_with_its_peer() {
        let mut c = core();
        create(&mut c, "r");
        let now = Instant::now();
        c.handle_command(now, Command::Request { room: "r".into(), peer: "a".into(), request_id: 1, bytes: br#"{"method":"join"}"#.to_vec() });
        c.handle_command(
            now,
            Command::Request {
                room: "r".into(),
                peer: "a".into(),
                request_id: 2,
                bytes: br#"{"method":"createTransport","id":7,"direction":"recv"}"#.to_vec(),
            },
        );
        let m = messages(&mut c);
        assert!(m.iter().all(|m| m.json.contains("\"ok\":true")), "{m:?}");
        assert_eq!((c.counts().engines, c.counts().ufrag_routes), (1, 1));
        assert!(c.poll_timeout(now).is_some(), "the engine has a deadline");
        c.handle_command(now, Command::Notify { room: "r".into(), peer: "a".into(), bytes: br#"{"method":"leave"}"#.to_vec() });
        assert_eq!((c.counts().engines, c.counts().ufrag_routes, c.counts().addr_routes), (0, 0, 0));
        assert_eq!(c.poll_timeout(now), None, "no timer is left");
    }

    #[test]
    fn log_records_are_outputs_in_order_only_at_or_above_the_level() {
        use crate::log::LogLevel;
        let mut c = core();
        create(&mut c, "r");
        let join = |c: &mut WorkerCore, id| {
            c.handle_command(Instant::now(), Command::Request { room: "r".into(), peer: "a".into(), request_id: id, bytes: br#"{"method":"join"}"#.to_vec() });
            std::iter::from_fn(|| c.poll_output()).collect::<Vec<Output>>()
        };
        let out = join(&mut c, 1);
        assert!(!out.iter().any(|o| matches!(o, Output::Log(_))), "error level: no debug record: {out:?}");
        c.set_log_level(LogLevel::Debug);
        let out = join(&mut c, 2);
        let log = out.iter().position(|o| matches!(o, Output::Log(r) if r.level == LogLevel::Debug
            && r.target == "sfu::room" && r.message.contains("request 2 from a")));
        let resp = out.iter().position(|o| matches!(o, Output::Message(m) if m.request_id == 2));
        assert!(log.is_some() && log < resp, "the request's record comes before its response: {out:?}");
        c.set_log_level(LogLevel::None);
        let (slot, _) = c.room_mut("r").unwrap();
        c.with_room_for_test(slot, |_, _| panic!("boom"));
        let out: Vec<Output> = std::iter::from_fn(|| c.poll_output()).collect();
        assert!(!out.iter().any(|o| matches!(o, Output::Log(_))), "none: not even errors");
    }

    #[test]
    fn a_panic_is_logged_as_an_error_naming_the_room() {
        let mut c = core();
        create(&mut c, "r9");
        let (slot, _) = c.room_mut("r9").unwrap();
        c.with_room_for_test(slot, |_, _| panic!("boom"));
        let out: Vec<Output> = std::iter::from_fn(|| c.poll_output()).collect();
        assert!(out.iter().any(|o| matches!(o, Output::Log(r) if r.level == crate::log::LogLevel::Error
            && r.message == "room r9: panicked: boom")), "{out:?}");
    }

    #[test]
    fn unrouted_datagrams_are_counted_and_gauges_count_what_the_core_holds() {
        let mut c = core();
        create(&mut c, "r");
        create(&mut c, "s");
        let now = Instant::now();
        for p in ["a", "b"] {
            c.handle_command(now, Command::Request { room: "r".into(), peer: p.into(), request_id: 1, bytes: br#"{"method":"join"}"#.to_vec() });
        }
        c.handle_command(
            now,
            Command::Request { room: "r".into(), peer: "a".into(), request_id: 2, bytes: br#"{"method":"createTransport","id":7,"direction":"recv"}"#.to_vec() },
        );
        messages(&mut c);
        let src: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        for d in [&b"garbage"[..], &[0x80u8; 40][..], &[0x00, 0x01, 0x00, 0x00][..]] {
            c.handle_datagram(now, Proto::Udp, src, d);
        }
        assert_eq!(c.counters()[Ctr::UdpDroppedUnknownSource], 3);
        let g = c.gauges();
        assert_eq!((g.rooms, g.peers, g.producers, g.consumers), (2, 2, 0, 0));
        use crate::metrics::TransportState;
        assert_eq!(g.transports(None, TransportState::New), 1, "{g:?}");
        assert_eq!(g.transports(Some(Proto::Udp), TransportState::Connected), 0);
    }
}
