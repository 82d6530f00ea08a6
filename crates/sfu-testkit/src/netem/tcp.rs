//! The TCP relay: accepts a client, connects upstream (from the configured local IP), and
//! relays both byte streams through the links' delay, jitter and rate limit.
//!
//! Loss, duplication and reordering make no sense for the bytes of a TCP stream (TCP would
//! repair them below the application), so the link applies only delay, jitter (order kept) and
//! the rate limit. A full rate-limiter queue is not a drop: the relay stops reading that socket,
//! and TCP flow control pushes back on the sender. Buffers are bounded per direction.
//!
//! Closing: when either side ends its stream (EOF), the bytes it sent before are delivered
//! after their delay, then both sockets are closed (no half-close); bytes still delayed in the
//! other direction are discarded. When a socket fails (reset), both are closed at once.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::Direction;
use super::counters::{bump, Stats};
use super::relay::Links;
use super::sys::{self, pollfd, PollFd, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

/// Bytes read per chunk: about one segment, so the rate limiter is smooth.
const CHUNK: usize = 1500;
/// Most chunks read from one socket per loop turn.
const READ_BATCH: usize = 32;
/// Bytes delayed plus bytes waiting to be written, per direction of a connection.
const MAX_HALF_BYTES: usize = 1 << 20;
/// Released bytes waiting for the destination socket, per direction of a connection.
const MAX_OUT_BYTES: usize = 256 << 10;
/// An upstream connection not established by then is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections accepted per loop turn.
const ACCEPT_BATCH: usize = 16;

/// One direction of a connection: `Up` reads the client and writes upstream, `Down` the reverse.
#[derive(Default)]
struct Half {
    pending: VecDeque<(Instant, Vec<u8>)>,
    pending_bytes: usize,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
    last_release: Option<Instant>,
    /// The rate limiter's queue is full until then: do not read.
    blocked_until: Option<Instant>,
}

impl Half {
    fn out_len(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn wants_read(&self, now: Instant) -> bool {
        !self.eof
            && self.pending_bytes + self.out_len() < MAX_HALF_BYTES
            && self.blocked_until.is_none_or(|t| t <= now)
    }

    fn done(&self) -> bool {
        self.eof && self.pending.is_empty() && self.out_len() == 0
    }
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Deadline of the upstream connection while it is being established.
    connecting: Option<Instant>,
    halves: [Half; 2],
    dead: bool,
}

impl Conn {
    fn src(&mut self, dir: Direction) -> &mut TcpStream {
        match dir {
            Direction::Up => &mut self.client,
            Direction::Down => &mut self.server,
        }
    }

    fn read(&mut self, dir: Direction, buf: &mut [u8], links: &mut Links) {
        for _ in 0..READ_BATCH {
            let now = Instant::now();
            if self.dead || !self.halves[dir.index()].wants_read(now) {
                return;
            }
            let link = links.get(dir);
            if let Err(t) = link.stream_fits(now, CHUNK) {
                self.halves[dir.index()].blocked_until = Some(t);
                return;
            }
            match self.src(dir).read(&mut buf[..CHUNK]) {
                Ok(0) => {
                    self.halves[dir.index()].eof = true;
                    return;
                }
                Ok(n) => {
                    let h = &mut self.halves[dir.index()];
                    let at = link.stream_chunk(now, n, h.last_release);
                    h.last_release = Some(at);
                    h.pending.push_back((at, buf[..n].to_vec()));
                    h.pending_bytes += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }

    /// Moves due chunks to the output buffer and writes what the destination accepts.
    fn release_and_write(&mut self, dir: Direction, now: Instant, links: &mut Links) {
        if self.connecting.is_some() || self.dead {
            return;
        }
        let (dst, h) = match dir {
            Direction::Up => (&mut self.server, &mut self.halves[0]),
            Direction::Down => (&mut self.client, &mut self.halves[1]),
        };
        if h.blocked_until.is_some_and(|t| t <= now) {
            h.blocked_until = None;
        }
        while h.out_len() < MAX_OUT_BYTES && h.pending.front().is_some_and(|(at, _)| *at <= now) {
            let (_, chunk) = h.pending.pop_front().expect("front");
            h.pending_bytes -= chunk.len();
            links.get(dir).stream_delivered(chunk.len());
            if h.out_pos > 0 {
                // Keep the buffer to what is still unwritten (bounded by MAX_OUT_BYTES).
                h.out.drain(..h.out_pos);
                h.out_pos = 0;
            }
            h.out.extend_from_slice(&chunk);
        }
        while h.out_len() > 0 {
            match dst.write(&h.out[h.out_pos..]) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => h.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if h.done() {
            // End of one stream: close both sides.
            self.dead = true;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.connecting;
        for h in &self.halves {
            let due = if h.out_len() < MAX_OUT_BYTES { h.pending.front().map(|(at, _)| *at) } else { None };
            for t in [due, h.blocked_until].into_iter().flatten() {
                // (A passed `blocked_until` is cleared at the next release, before the poll.)
                d = Some(d.map_or(t, |d: Instant| d.min(t)));
            }
        }
        d
    }
}

pub(crate) struct TcpRelay {
    listener: TcpListener,
    upstream: SocketAddr,
    bind_ip: IpAddr,
    conns: Vec<Conn>,
    max_conns: usize,
    stats: Arc<Stats>,
    buf: Vec<u8>,
}

impl TcpRelay {
    /// `listener` must be non-blocking.
    pub fn new(listener: TcpListener, upstream: SocketAddr, bind_ip: IpAddr, max_conns: usize, stats: Arc<Stats>) -> TcpRelay {
        TcpRelay { listener, upstream, bind_ip, conns: Vec::new(), max_conns, stats, buf: vec![0; CHUNK] }
    }

    pub fn register(&mut self, fds: &mut Vec<PollFd>, now: Instant) {
        fds.push(pollfd(self.listener.as_raw_fd(), POLLIN));
        for c in &self.conns {
            let [up, down] = &c.halves;
            let mut client_ev = 0;
            let mut server_ev = 0;
            if c.connecting.is_some() {
                server_ev |= POLLOUT;
            } else {
                if up.wants_read(now) {
                    client_ev |= POLLIN;
                }
                if down.wants_read(now) {
                    server_ev |= POLLIN;
                }
                if down.out_len() > 0 {
                    client_ev |= POLLOUT;
                }
                if up.out_len() > 0 {
                    server_ev |= POLLOUT;
                }
            }
            fds.push(pollfd(c.client.as_raw_fd(), client_ev));
            fds.push(pollfd(c.server.as_raw_fd(), server_ev));
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().filter_map(Conn::next_deadline).min()
    }

    /// Accepts, completes connections and reads what the poll set reported ready; `fds` are
    /// the entries pushed by `register` (the connections have not changed since).
    pub fn on_ready(&mut self, fds: &[PollFd], links: &mut Links) {
        for (i, c) in self.conns.iter_mut().enumerate() {
            let (cr, sr) = (fds[1 + 2 * i].revents, fds[2 + 2 * i].revents);
            if c.connecting.is_some() {
                if sr != 0 {
                    match c.server.take_error() {
                        Ok(None) if sr & (POLLERR | POLLHUP | POLLNVAL) == 0 => {
                            c.connecting = None;
                            let _ = c.server.set_nodelay(true);
                        }
                        _ => {
                            c.dead = true;
                            bump(&self.stats.tcp_rejected);
                        }
                    }
                }
                continue;
            }
            if cr & (POLLIN | POLLERR | POLLHUP) != 0 {
                c.read(Direction::Up, &mut self.buf, links);
            }
            if sr & (POLLIN | POLLERR | POLLHUP) != 0 {
                c.read(Direction::Down, &mut self.buf, links);
            }
            if (cr | sr) & POLLNVAL != 0 {
                c.dead = true;
            }
        }
        if fds[0].revents != 0 {
            self.accept();
        }
        self.release_due(Instant::now(), links);
    }

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let client = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            };
            bump(&self.stats.tcp_accepted);
            if self.conns.len() >= self.max_conns {
                bump(&self.stats.tcp_rejected);
                continue;
            }
            if client.set_nonblocking(true).is_err() {
                bump(&self.stats.tcp_rejected);
                continue;
            }
            let _ = client.set_nodelay(true);
            let server = match sys::tcp_connect_from(self.bind_ip, self.upstream) {
                Ok(s) => s,
                Err(_) => {
                    bump(&self.stats.tcp_rejected);
                    continue;
                }
            };
            self.conns.push(Conn {
                client,
                server,
                connecting: Some(Instant::now() + CONNECT_TIMEOUT),
                halves: Default::default(),
                dead: false,
            });
        }
        self.stats.tcp_connections.store(self.conns.len() as u64, Relaxed);
    }

    /// Releases due chunks, writes, retries reads the rate limiter had blocked, times out
    /// connects and closes finished connections.
    pub fn release_due(&mut self, now: Instant, links: &mut Links) {
        for c in &mut self.conns {
            if c.connecting.is_some_and(|d| d <= now) {
                c.dead = true;
                bump(&self.stats.tcp_rejected);
            }
            for dir in Direction::BOTH {
                c.release_and_write(dir, now, links);
            }
        }
        // The gauge first: a client that sees its connection closed then reads the new count.
        let live = self.conns.iter().filter(|c| !c.dead).count();
        if live != self.conns.len() {
            self.stats.tcp_connections.store(live as u64, Relaxed);
            self.conns.retain(|c| !c.dead);
        }
    }
}
