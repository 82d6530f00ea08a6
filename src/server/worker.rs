//! A worker thread: owns rooms and one UDP socket; runs commands, datagrams and
//! timers in one loop. Nothing on the packet path takes a lock.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde_json::json;

use super::notifier::NotifierMsg;
use super::{EventKind, Inner};
use crate::config::LogLevel;
use crate::error::SfuError;
use crate::log::log;
use crate::media::MediaEnv;
use crate::net::routes::{Route, Routes};
use crate::net::socket::{self, SendBatch, Waker};
use crate::net::stun;
use crate::protocol;
use crate::room::codecs::RoomCaps;
use crate::room::{Demux, Output, Room};

pub(crate) enum Command {
    CreateRoom {
        id: String,
        caps: RoomCaps,
        reply: Sender<Result<(), SfuError>>,
    },
    CloseRoom {
        id: String,
        reply: Option<Sender<()>>,
    },
    ClosePeer {
        room: String,
        peer: String,
        reply: Sender<bool>,
    },
    Request {
        room: String,
        peer: String,
        request_id: u64,
        bytes: Vec<u8>,
    },
    Notify {
        room: String,
        peer: String,
        bytes: Vec<u8>,
    },
    Shutdown,
}

pub(crate) struct WorkerHandle {
    pub tx: Sender<Command>,
    pub waker: Arc<Waker>,
}

impl WorkerHandle {
    /// Enqueue and wake the worker. False when the worker is gone.
    pub fn send(&self, c: Command) -> bool {
        let ok = self.tx.send(c).is_ok();
        self.waker.wake();
        ok
    }
}

struct Worker {
    idx: usize,
    sock: UdpSocket,
    env: Arc<MediaEnv>,
    inner: Arc<Inner>,
    /// Rooms by slot; a closed room leaves an empty slot (slots are never reused
    /// while routes may point at them: routes are removed first).
    rooms: Vec<Option<Room>>,
    by_id: HashMap<String, usize>,
    routes: Routes,
    next_key_base: u64,
    /// Datagrams produced while handling input, sent together (`sendmmsg`) at the
    /// end of each batch (see `flush_sends`).
    out: SendBatch,
    /// Rooms that queued RTP during the current batch (see `flush_writes`).
    touched: Vec<usize>,
}

/// Queued RTP packets in a room above which they are sent before the batch ends:
/// bounds the latency that deferring sends to the end of a batch adds.
const MAX_PENDING_WRITES: usize = 1024;

const MAX_DATAGRAM: usize = 2048;
const BATCH: usize = 32;

pub(crate) fn run(
    idx: usize,
    sock: UdpSocket,
    env: Arc<MediaEnv>,
    rx: Receiver<Command>,
    waker: Arc<Waker>,
    inner: Arc<Inner>,
) {
    let mut w = Worker {
        idx,
        sock,
        env,
        inner,
        rooms: Vec::new(),
        by_id: HashMap::new(),
        routes: Routes::default(),
        next_key_base: 0,
        out: SendBatch::default(),
        touched: Vec::new(),
    };
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect();
    let mut lens = [0usize; BATCH];
    let mut addrs: [Option<SocketAddr>; BATCH] = [None; BATCH];
    let mut timeout: Option<Instant> = None;
    loop {
        // 1. Commands.
        waker.clear();
        let mut shutdown = false;
        while let Ok(cmd) = rx.try_recv() {
            if matches!(cmd, Command::Shutdown) {
                shutdown = true;
                break;
            }
            w.command(cmd);
        }
        w.flush_sends();
        if shutdown {
            w.shutdown(&rx);
            return;
        }
        // 2. Datagrams, in batches, bounded per iteration so commands and timers run.
        for _ in 0..64 {
            let n = socket::recv_batch(&w.sock, &mut bufs, &mut lens, &mut addrs);
            if n == 0 {
                break;
            }
            let now = Instant::now();
            for i in 0..n {
                if let Some(src) = addrs[i] {
                    w.datagram(now, src, &bufs[i][..lens[i]]);
                }
            }
            w.flush_writes(now);
            w.flush_sends();
        }
        // 3. Timers.
        let now = Instant::now();
        if timeout.is_none_or(|t| t <= now) {
            w.timers(now);
            w.flush_sends();
        }
        timeout = w.next_timeout();
        let wait = timeout.map(|t| t.saturating_duration_since(Instant::now()));
        if wait != Some(Duration::ZERO) {
            socket::wait(
                w.sock.as_raw_fd(),
                waker.raw(),
                wait.map(|d| d.min(Duration::from_secs(1)))
                    .or(Some(Duration::from_secs(1))),
            );
        }
    }
}

impl Worker {
    /// Send the datagrams queued since the last flush.
    fn flush_sends(&mut self) {
        if !self.out.is_empty() {
            self.out.flush(&self.sock);
        }
    }

    fn send_out(&self, room: &str, outs: Vec<Output>) {
        for o in outs {
            let msg = match o {
                Output::Response {
                    peer,
                    request_id,
                    json,
                } => NotifierMsg::event(EventKind::Response, room, &peer, request_id, json),
                Output::Notification { peer, json } => {
                    NotifierMsg::event(EventKind::Notification, room, &peer, 0, json)
                }
                Output::Host { peer, json } => {
                    NotifierMsg::event(EventKind::Host, room, &peer, 0, json)
                }
            };
            let _ = self.inner.notify_tx.send(msg);
        }
    }

    /// Run `f` on a room, then deliver its outputs, apply its routing changes and send
    /// its queued datagrams. A panic closes the room (with `closed` to its peers).
    fn with_room<R>(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut Room, &mut dyn FnMut(SocketAddr, SocketAddr, &[u8])) -> R,
    ) -> Option<R> {
        let (sock, out) = (&self.sock, &mut self.out);
        let room = self.rooms.get_mut(slot)?.as_mut()?;
        let mut tx = |_src: SocketAddr, dst: SocketAddr, data: &[u8]| out.push(sock, dst, data);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let r = f(room, &mut tx);
            room.flush(&mut tx);
            r
        }));
        match r {
            Ok(v) => {
                self.after(slot);
                Some(v)
            }
            Err(p) => {
                let what = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                log(LogLevel::Error, || format!("room panicked: {what}"));
                self.room_failed(slot, &what);
                None
            }
        }
    }

    fn after(&mut self, slot: usize) {
        let Some(Some(room)) = self.rooms.get_mut(slot) else {
            return;
        };
        if !room.has_pending_outputs() {
            return; // the common case on the packet path: nothing to deliver
        }
        let outs = room.take_outputs();
        let demux = room.take_demux();
        let id = room.id.clone();
        for d in demux {
            match d {
                Demux::AddUfrag(u, k) => self.routes.add_ufrag(u, (slot, k)),
                Demux::RemoveUfrag(u) => self.routes.remove_ufrag(&u),
                Demux::AddAddr(a, k) => self.routes.add_addr(a, (slot, k)),
                Demux::RemoveTransport(k) => self.routes.remove_transport((slot, k)),
            }
        }
        self.send_out(&id, outs);
    }

    /// A room panicked: tell its peers it is closed and forget it.
    fn room_failed(&mut self, slot: usize, what: &str) {
        let Some(room) = self.rooms.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.routes.remove_room(slot);
        let id = room.id.clone();
        self.by_id.remove(&id);
        self.inner.forget_room(&id);
        // Whatever the room had produced before the panic goes out first.
        let mut room = room;
        let pending = catch_unwind(AssertUnwindSafe(|| {
            let outs = room.take_outputs();
            let names: Vec<(String, bool)> = room.peer_names_legacy();
            (outs, names)
        }));
        let (outs, names) = pending.unwrap_or_default();
        self.send_out(&id, outs);
        for (n, legacy) in names {
            let _ = self.inner.notify_tx.send(NotifierMsg::event(
                EventKind::Notification,
                &id,
                &n,
                0,
                protocol::notification("closed", json!({})),
            ));
            if legacy {
                let _ = self.inner.notify_tx.send(NotifierMsg::event(
                    EventKind::Notification,
                    &id,
                    &n,
                    0,
                    protocol::notification("roomClosed", json!({})),
                ));
            }
        }
        let ev = json!({"event": "roomClosed", "reason": format!("internal error: {what}")});
        let _ = self.inner.notify_tx.send(NotifierMsg::event(
            EventKind::Host,
            &id,
            "",
            0,
            ev.to_string(),
        ));
        // Dropping a room in an unknown state could panic again: contain it.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(room)));
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::CreateRoom { id, caps, reply } => {
                self.next_key_base += 1 << 32;
                let room = Room::new(id.clone(), caps, self.env.clone(), self.next_key_base);
                // Reuse the slot of a closed room (its routes went with it), so that
                // room churn does not grow `rooms`, and the timer scan, forever.
                let slot = match self.rooms.iter().position(Option::is_none) {
                    Some(free) => {
                        self.rooms[free] = Some(room);
                        free
                    }
                    None => {
                        self.rooms.push(Some(room));
                        self.rooms.len() - 1
                    }
                };
                self.by_id.insert(id, slot);
                let _ = reply.send(Ok(()));
            }
            Command::CloseRoom { id, reply } => {
                if let Some(slot) = self.by_id.remove(&id) {
                    self.with_room(slot, |r, _| r.close(now));
                    self.routes.remove_room(slot);
                    self.rooms[slot] = None;
                }
                if let Some(r) = reply {
                    let _ = r.send(());
                }
            }
            Command::ClosePeer { room, peer, reply } => {
                let ok = match self.by_id.get(&room).copied() {
                    Some(slot) => self
                        .with_room(slot, |r, _| r.close_peer(now, &peer))
                        .unwrap_or(false),
                    None => false,
                };
                let _ = reply.send(ok);
            }
            Command::Request {
                room,
                peer,
                request_id,
                bytes,
            } => {
                self.inner.request_done(&room, &peer);
                self.request(now, room, peer, request_id, bytes)
            }
            Command::Notify { room, peer, bytes } => {
                if let Some(slot) = self.by_id.get(&room).copied() {
                    self.with_room(slot, |r, _| r.handle_notification(now, &peer, &bytes));
                }
            }
            Command::Shutdown => {}
        }
    }

    fn request(
        &mut self,
        now: Instant,
        room: String,
        peer: String,
        request_id: u64,
        bytes: Vec<u8>,
    ) {
        match self.by_id.get(&room).copied() {
            Some(slot) => {
                let answered = self.with_room(slot, |r, _| {
                    r.handle_request(now, &peer, request_id, &bytes)
                });
                if answered.is_none() {
                    let _ = self.inner.notify_tx.send(NotifierMsg::event(
                        EventKind::Response,
                        &room,
                        &peer,
                        request_id,
                        protocol::error_response("internal error: the room was closed"),
                    ));
                }
            }
            None => {
                let _ = self.inner.notify_tx.send(NotifierMsg::event(
                    EventKind::Response,
                    &room,
                    &peer,
                    request_id,
                    protocol::error_response("room not found"),
                ));
            }
        }
    }

    /// Answer whatever is still queued, close every room, and stop.
    fn shutdown(&mut self, rx: &Receiver<Command>) {
        let now = Instant::now();
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Request {
                    room,
                    peer,
                    request_id,
                    ..
                } => {
                    let _ = self.inner.notify_tx.send(NotifierMsg::event(
                        EventKind::Response,
                        &room,
                        &peer,
                        request_id,
                        protocol::error_response("server closed"),
                    ));
                }
                Command::CreateRoom { reply, .. } => {
                    let _ = reply.send(Err(SfuError::ServerClosed));
                }
                Command::ClosePeer { reply, .. } => {
                    let _ = reply.send(false);
                }
                Command::CloseRoom { reply: Some(r), .. } => {
                    let _ = r.send(());
                }
                _ => {}
            }
        }
        for slot in 0..self.rooms.len() {
            if self.rooms[slot].is_some() {
                self.with_room(slot, |r, _| r.close(now));
                self.rooms[slot] = None;
            }
        }
        self.flush_sends();
        let _ = self.idx;
    }

    fn datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        let Some((slot, tkey)) = self.route(src, data) else {
            return;
        };
        let dst = self.env.ice_addr;
        self.with_room(slot, |r, tx| {
            r.handle_datagram(now, tkey, src, dst, data, tx)
        });
        let pending = self.rooms.get(slot).and_then(Option::as_ref).map_or(0, |r| r.pending_writes());
        if pending > 0 && !self.touched.contains(&slot) {
            self.touched.push(slot);
        }
        if pending >= MAX_PENDING_WRITES {
            self.with_room(slot, |r, tx| r.flush_writes(now, tx));
        }
    }

    /// Send the RTP that rooms queued while handling this batch of datagrams.
    fn flush_writes(&mut self, now: Instant) {
        for slot in std::mem::take(&mut self.touched) {
            self.with_room(slot, |r, tx| r.flush_writes(now, tx));
        }
    }

    /// Which transport a datagram is for. STUN binding requests are routed by our
    /// ufrag (and must verify); everything else by its validated source address.
    fn route(&self, src: SocketAddr, data: &[u8]) -> Option<Route> {
        if stun::looks_like_stun(data) {
            if let Some(r) = stun::with_binding_request_local_ufrag(data, |u| self.routes.by_ufrag(u)) {
                let room = self.rooms.get(r.0)?.as_ref()?;
                let pass = room.transport_password(r.1)?;
                return stun::verify(data, pass).then_some(r);
            }
        }
        self.routes.by_addr(&src)
    }

    fn timers(&mut self, now: Instant) {
        for slot in 0..self.rooms.len() {
            let due = self.rooms[slot]
                .as_ref()
                .and_then(|r| r.poll_timeout())
                .is_some_and(|t| t <= now);
            if due {
                self.with_room(slot, |r, tx| r.handle_timeout(now, tx));
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.rooms
            .iter()
            .flatten()
            .filter_map(|r| r.poll_timeout())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;
    use parking_lot::Mutex;
    use std::sync::atomic::AtomicBool;

    fn worker() -> (Worker, Receiver<NotifierMsg>) {
        let (notify_tx, notify_rx) = unbounded();
        let cfg = crate::config::ServerConfig::default();
        let inner = Arc::new(Inner {
            cfg,
            workers: Vec::new(),
            rooms: Mutex::new(HashMap::new()),
            notify_tx,
            closed: AtomicBool::new(false),
            gate: parking_lot::RwLock::new(()),
            pending: Mutex::new(HashMap::new()),
            stop_now: AtomicBool::new(false),
            notifier_thread: Mutex::new(None),
        });
        let sock = socket::bind_in_range(std::net::Ipv4Addr::LOCALHOST, 20000, 60000, 7).unwrap();
        let addr = sock.local_addr().unwrap();
        let cert = crate::media::cert::generate().unwrap();
        let env = Arc::new(MediaEnv {
            ice_addr: addr,
            candidates: vec![],
            fingerprint: crate::media::cert::fingerprint(&cert),
            cert,
            max_message_size: 65536,
            transport_timeout: Duration::from_secs(30),
            limits: Default::default(),
        });
        let w = Worker {
            idx: 0,
            sock,
            env,
            inner,
            rooms: Vec::new(),
            by_id: HashMap::new(),
            routes: Routes::default(),
            next_key_base: 0,
            out: SendBatch::default(),
            touched: Vec::new(),
        };
        (w, notify_rx)
    }

    #[test]
    fn a_panic_inside_a_room_closes_that_room_with_notifications() {
        let (mut w, rx) = worker();
        let (tx, _r) = crossbeam_channel::bounded(1);
        w.command(Command::CreateRoom {
            id: "r".into(),
            caps: RoomCaps::from_options(None).unwrap(),
            reply: tx,
        });
        w.inner.rooms.lock().insert("r".into(), 0);
        for p in ["a", "b"] {
            w.command(Command::Request {
                room: "r".into(),
                peer: p.into(),
                request_id: 1,
                bytes: br#"{"method":"join"}"#.to_vec(),
            });
        }
        while rx.try_recv().is_ok() {}
        // A request whose handling panics is still answered, and the room is closed.
        let slot = w.by_id["r"];
        assert!(w.with_room(slot, |_, _| panic!("boom")).is_none());
        let mut got = Vec::new();
        while let Ok(NotifierMsg::Event {
            kind, peer, json, ..
        }) = rx.try_recv()
        {
            got.push((kind, peer, json));
        }
        let closed: Vec<&String> = got
            .iter()
            .filter(|g| g.0 == EventKind::Notification && g.2.contains("\"closed\""))
            .map(|g| &g.1)
            .collect();
        assert_eq!(closed.len(), 2, "{got:?}");
        assert!(got
            .iter()
            .any(|g| g.0 == EventKind::Host && g.2.contains("roomClosed") && g.2.contains("boom")));
        assert!(w.rooms[slot].is_none());
        assert!(
            w.inner.rooms.lock().get("r").is_none(),
            "the server forgets the room"
        );
        // Later requests to it are answered with an error, not silence.
        w.command(Command::Request {
            room: "r".into(),
            peer: "a".into(),
            request_id: 9,
            bytes: br#"{"method":"queryRoom"}"#.to_vec(),
        });
        match rx.try_recv() {
            Ok(NotifierMsg::Event {
                kind: EventKind::Response,
                request_id: 9,
                json,
                ..
            }) => assert!(json.contains("room not found")),
            _ => panic!("no response"),
        }
    }

    #[test]
    fn a_closed_room_slot_is_reused_so_room_churn_does_not_grow_the_worker() {
        let (mut w, _rx) = worker();
        for i in 0..100 {
            let (tx, _r) = crossbeam_channel::bounded(1);
            let id = format!("r{i}");
            w.command(Command::CreateRoom {
                id: id.clone(),
                caps: RoomCaps::from_options(None).unwrap(),
                reply: tx,
            });
            w.command(Command::CloseRoom { id, reply: None });
        }
        assert_eq!(w.rooms.len(), 1, "one slot, reused");
        assert!(w.by_id.is_empty());
    }
}
