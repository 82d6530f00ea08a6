//! ICE-TCP, passive side (RFC 6544): one listening socket per worker and the connections
//! browsers open to it, framed per RFC 4571 (`framing`).
//!
//! A connection is unauthenticated until one of its frames is routed to a transport
//! (a STUN binding request whose USERNAME names a transport and whose
//! MESSAGE-INTEGRITY verifies). Until then it holds at most one frame's worth of bytes,
//! it is closed at its first frame that is not routed, at a bad frame length, or when
//! `auth_timeout` passes; and the number of such connections is bounded per source
//! address and per worker. An authenticated connection is closed when a frame no longer
//! routes (its transport is gone) or after `idle_timeout` without data. What is sent on
//! a connection is buffered up to `send_buffer` bytes; beyond, packets are dropped, so
//! a slow receiver never blocks the worker.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::framing::{frame_into, FrameReader};
pub use super::framing::MAX_FRAME;
use crate::config::TcpLimits;
use super::poll::Poller;

/// Why a connection was closed or a packet dropped (counted for the operators).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TcpCounters {
    pub accepted: u64,
    pub refused_limit: u64,
    pub closed_unrouted: u64,
    pub closed_bad_frame: u64,
    pub closed_auth_timeout: u64,
    pub closed_idle: u64,
    pub closed_by_peer: u64,
    pub dropped_send_full: u64,
}

/// What a connection's bytes do, independent of the socket (also what the fuzz target
/// feeds): frames are handed out in order; the first that does not route, or a bad
/// frame length, ends the connection.
#[derive(Debug, Default)]
pub struct ConnState {
    reader: FrameReader,
    authenticated: bool,
}

/// Why a connection is closed by its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnClose {
    /// A frame that no transport takes.
    Unrouted,
    /// A zero or oversized frame length.
    BadFrame,
}

impl ConnState {
    /// At most this many bytes are needed now (one header plus one frame).
    pub fn room(&self) -> usize {
        self.reader.room()
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Bytes from the stream. Returns whether the connection became authenticated.
    pub fn on_bytes(&mut self, data: &[u8], mut deliver: impl FnMut(&[u8]) -> FrameFate) -> Result<bool, ConnClose> {
        let was = self.authenticated;
        self.reader.feed(data);
        loop {
            match self.reader.next_frame() {
                Ok(Some(f)) => match deliver(f) {
                    FrameFate::Routed => self.authenticated = true,
                    FrameFate::Unrouted => return Err(ConnClose::Unrouted),
                },
                Ok(None) => return Ok(!was && self.authenticated),
                Err(_) => return Err(ConnClose::BadFrame),
            }
        }
    }
}

struct Conn {
    stream: TcpStream,
    remote: SocketAddr,
    state: ConnState,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    out_start: usize,
    opened: Instant,
    last_rx: Instant,
    /// EPOLLOUT is armed.
    want_write: bool,
}

/// The listener and the connections of one worker. Tokens from `first_token` up are
/// its connections in the worker's poll set; `listener_token` is the listener.
pub struct TcpServer {
    listener: TcpListener,
    limits: TcpLimits,
    listener_token: u64,
    conns: HashMap<u64, Conn>,
    by_remote: HashMap<SocketAddr, u64>,
    unauth_by_ip: HashMap<IpAddr, usize>,
    unauthenticated: usize,
    next_token: u64,
    pub counters: TcpCounters,
}

/// What a frame did when handed to the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFate {
    Routed,
    Unrouted,
}

impl TcpServer {
    /// `listener` must be non-blocking.
    pub fn new(listener: TcpListener, limits: TcpLimits, listener_token: u64, first_token: u64) -> TcpServer {
        TcpServer {
            listener,
            limits,
            listener_token,
            conns: HashMap::new(),
            by_remote: HashMap::new(),
            unauth_by_ip: HashMap::new(),
            unauthenticated: 0,
            next_token: first_token,
            counters: TcpCounters::default(),
        }
    }

    pub fn listener_token(&self) -> u64 {
        self.listener_token
    }

    pub fn register(&self, poller: &Poller) -> io::Result<()> {
        poller.add(self.listener.as_raw_fd(), self.listener_token, false)
    }

    pub fn owns(&self, token: u64) -> bool {
        self.conns.contains_key(&token)
    }

    /// Accept what is pending (bounded), within the limits.
    pub fn accept(&mut self, now: Instant, poller: &Poller) {
        for _ in 0..256 {
            let (stream, remote) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EMFILE and friends: try again at the next readiness.
                Err(_) => return,
            };
            let per_ip = self.unauth_by_ip.get(&remote.ip()).copied().unwrap_or(0);
            if self.conns.len() >= self.limits.max_connections
                || self.unauthenticated >= self.limits.max_unauthenticated
                || per_ip >= self.limits.max_unauthenticated_per_ip
                || stream.set_nonblocking(true).is_err()
            {
                self.counters.refused_limit += 1;
                continue; // dropped: closed
            }
            let _ = stream.set_nodelay(true);
            let token = self.next_token;
            self.next_token += 1;
            if poller.add(stream.as_raw_fd(), token, false).is_err() {
                continue;
            }
            self.counters.accepted += 1;
            *self.unauth_by_ip.entry(remote.ip()).or_insert(0) += 1;
            self.unauthenticated += 1;
            if let Some(old) = self.by_remote.insert(remote, token) {
                // The same remote address again (a reused port): the old one is gone.
                self.close(old, poller);
                self.by_remote.insert(remote, token);
            }
            self.conns.insert(
                token,
                Conn {
                    stream,
                    remote,
                    state: ConnState::default(),
                    out: Vec::new(),
                    out_start: 0,
                    opened: now,
                    last_rx: now,
                    want_write: false,
                },
            );
        }
    }

    /// Read what a connection has (bounded) and hand each frame to `deliver`.
    pub fn read(
        &mut self,
        token: u64,
        now: Instant,
        poller: &Poller,
        mut deliver: impl FnMut(SocketAddr, &[u8]) -> FrameFate,
    ) {
        let mut buf = [0u8; 2 + super::framing::MAX_FRAME];
        let mut close: Option<Option<ConnClose>> = None;
        let mut became_authenticated = false;
        let remote;
        {
            let Some(c) = self.conns.get_mut(&token) else { return };
            remote = c.remote;
            for _ in 0..64 {
                let room = c.state.room().max(1);
                let n = match c.stream.read(&mut buf[..room]) {
                    Ok(0) => {
                        close = Some(None);
                        break;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        close = Some(None);
                        break;
                    }
                };
                c.last_rx = now;
                match c.state.on_bytes(&buf[..n], |f| deliver(remote, f)) {
                    Ok(b) => became_authenticated |= b,
                    Err(why) => {
                        close = Some(Some(why));
                        break;
                    }
                }
            }
        }
        if became_authenticated {
            self.unauthenticated -= 1;
            self.forget_unauthenticated_ip(remote);
        }
        match close {
            None => {}
            Some(why) => {
                match why {
                    Some(ConnClose::Unrouted) => self.counters.closed_unrouted += 1,
                    Some(ConnClose::BadFrame) => self.counters.closed_bad_frame += 1,
                    None => self.counters.closed_by_peer += 1,
                }
                self.close(token, poller);
            }
        }
    }

    fn forget_unauthenticated_ip(&mut self, remote: SocketAddr) {
        if let Some(k) = self.unauth_by_ip.get_mut(&remote.ip()) {
            *k -= 1;
            if *k == 0 {
                self.unauth_by_ip.remove(&remote.ip());
            }
        }
    }

    /// Queue one packet to `remote` (framed); dropped if its connection's buffer is full
    /// or it has none. Written at once as far as the socket takes it.
    pub fn send(&mut self, remote: SocketAddr, data: &[u8], poller: &Poller) {
        let Some(&token) = self.by_remote.get(&remote) else { return };
        let Some(c) = self.conns.get_mut(&token) else { return };
        if c.out.len() - c.out_start + 2 + data.len() > self.limits.send_buffer {
            self.counters.dropped_send_full += 1;
            return;
        }
        if c.out_start > 0 && c.out_start == c.out.len() {
            c.out.clear();
            c.out_start = 0;
        }
        if !frame_into(&mut c.out, data) {
            return;
        }
        self.flush(token, poller);
    }

    /// Write what is buffered for a connection; arm or disarm writability.
    pub fn flush(&mut self, token: u64, poller: &Poller) {
        let mut failed = false;
        {
            let Some(c) = self.conns.get_mut(&token) else { return };
            while c.out_start < c.out.len() {
                match c.stream.write(&c.out[c.out_start..]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => c.out_start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            if !failed {
                if c.out_start == c.out.len() {
                    c.out.clear();
                    c.out_start = 0;
                } else if c.out_start > self.limits.send_buffer / 2 {
                    c.out.drain(..c.out_start);
                    c.out_start = 0;
                }
                let want = c.out_start < c.out.len();
                if want != c.want_write {
                    c.want_write = want;
                    let _ = poller.modify(c.stream.as_raw_fd(), token, want);
                }
            }
        }
        if failed {
            self.counters.closed_by_peer += 1;
            self.close(token, poller);
        }
    }

    /// Close connections past their deadlines. O(connections); the worker calls it
    /// about once per second.
    pub fn sweep(&mut self, now: Instant, poller: &Poller) {
        let mut late = Vec::new();
        for (t, c) in &self.conns {
            let auth = c.state.authenticated();
            if !auth && now.saturating_duration_since(c.opened) > self.limits.auth_timeout {
                late.push((*t, true));
            } else if auth && now.saturating_duration_since(c.last_rx) > self.limits.idle_timeout {
                late.push((*t, false));
            }
        }
        for (t, auth) in late {
            if auth {
                self.counters.closed_auth_timeout += 1;
            } else {
                self.counters.closed_idle += 1;
            }
            self.close(t, poller);
        }
    }

    pub fn close(&mut self, token: u64, poller: &Poller) {
        let Some(c) = self.conns.remove(&token) else { return };
        poller.remove(c.stream.as_raw_fd());
        if self.by_remote.get(&c.remote) == Some(&token) {
            self.by_remote.remove(&c.remote);
        }
        if !c.state.authenticated() {
            self.unauthenticated -= 1;
            self.forget_unauthenticated_ip(c.remote);
        }
    }
}
