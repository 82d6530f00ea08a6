//! The signalling side of the load generator: a `sfu::Server` in this process,
//! driven through its public Rust API like a host that relays a mediasoup v2
//! client's messages. Requests may be pipelined (many in flight, answers matched by
//! request id).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use serde_json::{json, Value};
use sfu::{EventKind, Server};

struct Got {
    kind: EventKind,
    peer: String,
    request_id: u64,
    json: String,
}

pub struct Signal {
    pub server: Server,
    pub room: String,
    rx: Receiver<Got>,
    next_id: u64,
    responses: HashMap<u64, Value>,
    notifications: HashMap<String, Vec<Value>>,
    pub host_events: Vec<Value>,
}

pub const WAIT: Duration = Duration::from_secs(30);

impl Signal {
    pub fn new(config: &str, room: &str) -> Signal {
        let (tx, rx) = unbounded();
        let server = Server::new(
            Some(config),
            Box::new(move |ev| {
                // This runs on the library's notifier thread, whose CPU time counts as
                // the SFU's: copy and hand over, nothing more. `newPeer`/`peerClosed`
                // go to every peer of a room on each join/leave and nobody here reads them.
                if ev.kind == EventKind::Notification {
                    let j = ev.json;
                    if j.len() < 400 && (j.contains("\"method\":\"newPeer\"") || j.contains("\"method\":\"peerClosed\"")) {
                        return;
                    }
                }
                let _ = tx.send(Got {
                    kind: ev.kind,
                    peer: ev.peer_name.to_string(),
                    request_id: ev.request_id,
                    json: ev.json.to_string(),
                });
            }),
        )
        .expect("server starts");
        server.create_room(room, None).expect("create room");
        Signal {
            server,
            room: room.to_string(),
            rx,
            next_id: 1,
            responses: HashMap::new(),
            notifications: HashMap::new(),
            host_events: Vec::new(),
        }
    }

    fn absorb(&mut self, g: Got) {
        let v: Value = serde_json::from_str(&g.json).unwrap_or(Value::Null);
        match g.kind {
            EventKind::Response => {
                self.responses.insert(g.request_id, v);
            }
            EventKind::Notification => {
                // Only what the generator acts on is kept.
                if v["method"] == "newConsumer" {
                    self.notifications.entry(g.peer).or_default().push(v);
                }
            }
            EventKind::Host => {
                if self.host_events.len() < 10_000 {
                    self.host_events.push(v);
                }
            }
            // The generator makes no host requests (sfu_server_host_request).
            EventKind::HostResponse => {}
        }
    }

    fn pump(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(g) => {
                self.absorb(g);
                while let Ok(g) = self.rx.try_recv() {
                    self.absorb(g);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Send a request; returns its id (see `wait`).
    pub fn send(&mut self, peer: &str, req: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.server.request(&self.room, peer, id, req.to_string().as_bytes()).expect("request accepted");
        id
    }

    pub fn notify(&mut self, peer: &str, n: Value) {
        let _ = self.server.notify(&self.room, peer, n.to_string().as_bytes());
    }

    /// The answer to request `id`: Ok(data) or Err(reason).
    pub fn wait(&mut self, id: u64) -> Result<Value, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = self.responses.remove(&id) {
                return if v["ok"] == true {
                    Ok(v["data"].clone())
                } else {
                    Err(v["error"].as_str().unwrap_or("error").to_string())
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no response to request {id} within {WAIT:?}"));
            }
            self.pump(left);
        }
    }

    pub fn wait_all(&mut self, ids: &[u64]) -> Vec<Result<Value, String>> {
        ids.iter().map(|id| self.wait(*id)).collect()
    }

    pub fn call(&mut self, peer: &str, req: Value) -> Result<Value, String> {
        let id = self.send(peer, req);
        self.wait(id)
    }

    /// `newConsumer` notifications received for `peer` so far (drained).
    pub fn new_consumers(&mut self, peer: &str) -> Vec<Value> {
        while self.pump(Duration::ZERO) {}
        self.notifications.remove(peer).unwrap_or_default()
    }

    /// Let everything queued reach us: a round trip through the room's worker.
    pub fn sync(&mut self) {
        let _ = self.call("__sync__", json!({"method": "queryRoom", "target": "room"}));
    }
}
