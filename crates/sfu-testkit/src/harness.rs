//! Drives a `sfu::Server` through its public Rust API like a host would: requests and
//! notifications in, responses, notifications and host events out, every wait bounded.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use serde_json::{json, Value};
use sfu::{EventKind, Server};

use crate::builders::client_caps;

/// One callback invocation, owned.
#[derive(Debug, Clone)]
pub struct Got {
    pub kind: EventKind,
    pub room: String,
    pub peer: String,
    pub request_id: u64,
    pub json: Value,
}

pub struct Harness {
    pub server: Server,
    rx: Receiver<Got>,
    log: RefCell<Vec<Got>>,
    next_id: RefCell<u64>,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Harness {
    pub fn new(config: Option<&str>) -> Harness {
        let (tx, rx) = unbounded();
        let server = Server::new(
            config,
            Box::new(move |ev| {
                let json = serde_json::from_str(ev.json).expect("the library only emits JSON");
                let _ = tx.send(Got {
                    kind: ev.kind,
                    room: ev.room_id.to_string(),
                    peer: ev.peer_name.to_string(),
                    request_id: ev.request_id,
                    json,
                });
            }),
        )
        .expect("server starts");
        Harness { server, rx, log: RefCell::new(Vec::new()), next_id: RefCell::new(1) }
    }

    /// Default single-worker config on loopback.
    pub fn local() -> Harness {
        Harness::new(Some(r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#))
    }

    fn pump(&self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(g) => {
                self.log.borrow_mut().push(g);
                while let Ok(g) = self.rx.try_recv() {
                    self.log.borrow_mut().push(g);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Send raw bytes as a request; wait for its response (the whole envelope).
    pub fn request_raw(&self, room: &str, peer: &str, bytes: &[u8]) -> Value {
        let id = {
            let mut n = self.next_id.borrow_mut();
            *n += 1;
            *n
        };
        self.server.request(room, peer, id, bytes).expect("request accepted");
        let deadline = Instant::now() + WAIT;
        loop {
            let pos = self.log.borrow().iter().position(|g| g.kind == EventKind::Response && g.request_id == id);
            if let Some(pos) = pos {
                let g = self.log.borrow_mut().remove(pos);
                assert_eq!(g.peer, peer, "response for the requesting peer");
                assert_eq!(g.room, room);
                // Exactly one response per request.
                return g.json;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no response to request {id} within {WAIT:?}");
            self.pump(left);
        }
    }

    /// A request; Ok(data) or Err(reason).
    pub fn request(&self, room: &str, peer: &str, req: Value) -> Result<Value, String> {
        let r = self.request_raw(room, peer, req.to_string().as_bytes());
        if r["ok"] == true {
            Ok(r["data"].clone())
        } else {
            assert_eq!(r["ok"], false, "{r}");
            Err(r["error"].as_str().expect("error reason is a string").to_string())
        }
    }

    /// A host request about a room; Ok(data) or Err(reason).
    pub fn host_request(&self, room: &str, req: Value) -> Result<Value, String> {
        let id = {
            let mut n = self.next_id.borrow_mut();
            *n += 1;
            *n
        };
        self.server.host_request(room, id, req.to_string().as_bytes()).expect("host request accepted");
        let deadline = Instant::now() + WAIT;
        loop {
            let pos = self.log.borrow().iter().position(|g| g.kind == EventKind::HostResponse && g.request_id == id);
            if let Some(pos) = pos {
                let g = self.log.borrow_mut().remove(pos);
                assert_eq!((g.peer.as_str(), g.room.as_str()), ("", room));
                return if g.json["ok"] == true {
                    Ok(g.json["data"].clone())
                } else {
                    Err(g.json["error"].as_str().expect("error reason is a string").to_string())
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no answer to host request {id} within {WAIT:?}");
            self.pump(left);
        }
    }

    pub fn notify(&self, room: &str, peer: &str, n: Value) {
        self.server.notify(room, peer, n.to_string().as_bytes()).expect("notify accepted");
    }

    /// Let queued work finish: a round trip through the room's worker.
    pub fn sync(&self, room: &str) {
        let _ = self.request(room, "__sync__", json!({"method": "queryRoom", "target": "room"}));
    }

    /// Wait until every event produced before this call has reached the callback: the
    /// answer to a request for a room that does not exist is queued behind them on the one
    /// callback queue (see the threading contract in include/sfu.h).
    pub fn barrier(&self) {
        let _ = self.request_raw("__barrier__: no such room", "__barrier__", br#"{"method":"queryRoom"}"#);
    }

    /// Notifications for `peer` produced so far (drained).
    pub fn notifications(&self, peer: &str) -> Vec<Value> {
        self.barrier();
        while self.pump(Duration::from_millis(0)) {}
        let mut log = self.log.borrow_mut();
        let (mine, rest): (Vec<Got>, Vec<Got>) =
            log.drain(..).partition(|g| g.kind == EventKind::Notification && g.peer == peer);
        *log = rest;
        mine.into_iter().map(|g| g.json).collect()
    }

    /// Host events produced so far (drained).
    pub fn host_events(&self) -> Vec<Got> {
        self.barrier();
        while self.pump(Duration::from_millis(0)) {}
        let mut log = self.log.borrow_mut();
        let (mine, rest): (Vec<Got>, Vec<Got>) = log.drain(..).partition(|g| g.kind == EventKind::Host);
        *log = rest;
        mine
    }

    /// Wait for a notification `method` to `peer` (others before it are kept).
    pub fn wait_notification(&self, peer: &str, method: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut log = self.log.borrow_mut();
                if let Some(pos) = log
                    .iter()
                    .position(|g| g.kind == EventKind::Notification && g.peer == peer && g.json["method"] == method)
                {
                    return Some(log.remove(pos).json);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    /// Wait for a host event named `name`.
    pub fn wait_host_event(&self, name: &str, timeout: Duration) -> Option<Got> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut log = self.log.borrow_mut();
                if let Some(pos) = log.iter().position(|g| g.kind == EventKind::Host && g.json["event"] == name) {
                    return Some(log.remove(pos));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    /// queryRoom + join with caps computed from the room's like the client does.
    pub fn join(&self, room: &str, peer: &str) -> Value {
        let q = self.request(room, peer, json!({"method": "queryRoom", "target": "room"})).expect("queryRoom");
        let caps = client_caps(&q["rtpCapabilities"]);
        self.request(
            room,
            peer,
            json!({"method": "join", "target": "room", "peerName": peer, "rtpCapabilities": caps,
                   "spy": false, "appData": {"n": peer}}),
        )
        .expect("join")
    }
}

