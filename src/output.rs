//! What the sans-IO core hands to its I/O loop: datagrams to send and events for the host.
//! Every layer that produces output pushes it into one [`Outbox`]; the worker core's
//! `poll_output` pops from it (docs/ARCHITECTURE.md, "One output path").

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::log::{LogLevel, LogRecord};

/// Transport protocol of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// One datagram (or, over TCP, one framed packet) to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub proto: Proto,
    /// Our address (which socket).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// What a callback delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The answer to a request (`request_id` is the host's id).
    Response,
    /// A message the host must deliver to the peer verbatim.
    Notification,
    /// A host-facing event (`{"event": ...}`): not for the client.
    Host,
    /// The answer to a host request (`request_id` is the host's id; no peer).
    HostResponse,
}

/// One message for the host, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMessage {
    pub kind: EventKind,
    pub room: Arc<str>,
    pub peer: Arc<str>,
    pub request_id: u64,
    pub json: String,
}

/// One output of the core.
#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    Message(HostMessage),
    /// A room closed itself after an internal error (its peers and the host were told):
    /// the server forgets its id.
    RoomFailed(Arc<str>),
    /// A log record that passed the core's level (`log.rs`).
    Log(LogRecord),
    /// Items for another worker of the server (a room's engines there, or an engine's
    /// events for its room there), in order (`media/remote.rs`).
    Cross { worker: usize, items: Vec<crate::media::remote::CrossItem> },
}

/// The queue every layer pushes its output into, in production order.
#[derive(Debug)]
pub struct Outbox {
    q: VecDeque<Output>,
    /// Records above this level are not even formatted.
    log_level: LogLevel,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox { q: VecDeque::new(), log_level: LogLevel::Error }
    }
}

impl Outbox {
    /// Queue a log record if `level` passes the outbox's level; `msg` runs only then,
    /// so a disabled record costs one comparison.
    pub fn log(&mut self, level: LogLevel, target: &'static str, msg: impl FnOnce() -> String) {
        if self.log_level.allows(level) {
            self.q.push_back(Output::Log(LogRecord { level, target, message: msg() }));
        }
    }

    pub fn set_log_level(&mut self, level: LogLevel) {
        self.log_level = level;
    }

    /// The outputs queued from position `start` on (what one call added, when `start`
    /// was `len()` before it).
    pub fn since(&self, start: usize) -> impl Iterator<Item = &Output> {
        self.q.range(start.min(self.q.len())..)
    }

    pub fn transmit(&mut self, t: Transmit) {
        self.q.push_back(Output::Transmit(t));
    }

    pub fn message(&mut self, m: HostMessage) {
        self.q.push_back(Output::Message(m));
    }

    pub fn push(&mut self, o: Output) {
        self.q.push_back(o);
    }

    pub fn pop(&mut self) -> Option<Output> {
        self.q.pop_front()
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }
}
