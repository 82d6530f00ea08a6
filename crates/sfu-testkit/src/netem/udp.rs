//! The UDP relay: one listen socket facing the clients, one upstream socket per client (so the
//! upstream sees one stable source per client), and a timer queue of delayed datagrams.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::Direction;
use super::counters::{bump, Stats};
use super::link::Release;
use super::relay::Links;
use super::sys::{self, pollfd, PollFd, POLLIN};

/// Most datagrams read from one socket per loop turn, so timers are served between batches.
const RECV_BATCH: usize = 64;
/// Bounds on datagrams waiting in the timer queue (whatever the link configuration); beyond
/// them a datagram counts as dropped by the queue.
const MAX_QUEUED_PACKETS: usize = 100_000;
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// A datagram sent later than this after its release time counts as `released_late`.
const LATE: Duration = Duration::from_millis(1);
/// Receive buffer asked for each socket (capped by the kernel's `net.core.rmem_max`).
const RECV_BUFFER: usize = 4 << 20;

struct Mapping {
    client: SocketAddr,
    sock: UdpSocket,
    last_active: Instant,
}

/// A datagram copy waiting for its release time.
struct Entry {
    at: Instant,
    /// Insertion order: equal release times leave in arrival order.
    order: u64,
    dir: Direction,
    mapping: u64,
    client: SocketAddr,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

pub(crate) struct UdpRelay {
    listen: UdpSocket,
    upstream: SocketAddr,
    bind_ip: IpAddr,
    by_client: HashMap<SocketAddr, u64>,
    mappings: HashMap<u64, Mapping>,
    next_id: u64,
    heap: BinaryHeap<Reverse<Entry>>,
    order: u64,
    queued_bytes: usize,
    /// Mapping id of each poll entry after the listen socket's, as registered last.
    polled: Vec<u64>,
    buf: Vec<u8>,
    releases: Vec<Release>,
    idle_timeout: Duration,
    max_mappings: usize,
    stats: Arc<Stats>,
}

impl UdpRelay {
    /// `listen` must be non-blocking.
    pub fn new(
        listen: UdpSocket,
        upstream: SocketAddr,
        bind_ip: IpAddr,
        idle_timeout: Duration,
        max_mappings: usize,
        stats: Arc<Stats>,
    ) -> UdpRelay {
        sys::set_recv_buffer(listen.as_raw_fd(), RECV_BUFFER);
        UdpRelay {
            listen,
            upstream,
            bind_ip,
            by_client: HashMap::new(),
            mappings: HashMap::new(),
            next_id: 0,
            heap: BinaryHeap::new(),
            order: 0,
            queued_bytes: 0,
            polled: Vec::new(),
            buf: vec![0; 65536],
            releases: Vec::new(),
            idle_timeout,
            max_mappings,
            stats,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listen.local_addr()
    }

    /// Opens the upstream socket of a new client.
    fn open(&mut self, client: SocketAddr, now: Instant) -> io::Result<u64> {
        let sock = UdpSocket::bind(SocketAddr::new(self.bind_ip, 0))?;
        sock.connect(self.upstream)?;
        sock.set_nonblocking(true)?;
        sys::set_recv_buffer(sock.as_raw_fd(), RECV_BUFFER);
        let id = self.next_id;
        self.next_id += 1;
        self.mappings.insert(id, Mapping { client, sock, last_active: now });
        self.by_client.insert(client, id);
        self.stats.udp_mappings.store(self.mappings.len() as u64, Relaxed);
        Ok(id)
    }

    /// Removes mappings idle for longer than the timeout.
    pub fn expire(&mut self, now: Instant) {
        let idle = self.idle_timeout;
        let before = self.mappings.len();
        self.mappings.retain(|_, m| now.saturating_duration_since(m.last_active) < idle);
        if self.mappings.len() != before {
            let live = &self.mappings;
            self.by_client.retain(|_, id| live.contains_key(id));
            self.stats.udp_mappings.store(self.mappings.len() as u64, Relaxed);
        }
    }

    pub fn register(&mut self, fds: &mut Vec<PollFd>) {
        fds.push(pollfd(self.listen.as_raw_fd(), POLLIN));
        self.polled.clear();
        for (id, m) in &self.mappings {
            fds.push(pollfd(m.sock.as_raw_fd(), POLLIN));
            self.polled.push(*id);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.0.at)
    }

    /// Reads what the poll set reported ready; `fds` are the entries pushed by `register`.
    pub fn on_ready(&mut self, fds: &[PollFd], links: &mut Links) {
        if fds[0].revents != 0 {
            self.read_clients(links);
        }
        for i in 0..self.polled.len() {
            if fds[1 + i].revents != 0 {
                self.read_upstream(self.polled[i], links);
            }
        }
    }

    fn read_clients(&mut self, links: &mut Links) {
        for _ in 0..RECV_BATCH {
            let (len, client) = match self.listen.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let now = Instant::now();
            let id = match self.by_client.get(&client) {
                Some(id) => *id,
                None => {
                    if self.mappings.len() >= self.max_mappings {
                        self.expire(now);
                    }
                    if self.mappings.len() >= self.max_mappings {
                        bump(&self.stats.udp_rejected);
                        continue;
                    }
                    match self.open(client, now) {
                        Ok(id) => id,
                        Err(_) => {
                            bump(&self.stats.udp_rejected);
                            continue;
                        }
                    }
                }
            };
            if let Some(m) = self.mappings.get_mut(&id) {
                m.last_active = now;
            }
            self.schedule(now, Direction::Up, id, client, len, links);
        }
    }

    fn read_upstream(&mut self, id: u64, links: &mut Links) {
        for _ in 0..RECV_BATCH {
            let Some(m) = self.mappings.get(&id) else { return };
            let client = m.client;
            let len = match m.sock.recv(&mut self.buf) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error (upstream port closed) is reported once; keep reading.
                Err(_) => continue,
            };
            let now = Instant::now();
            if let Some(m) = self.mappings.get_mut(&id) {
                m.last_active = now;
            }
            self.schedule(now, Direction::Down, id, client, len, links);
        }
    }

    /// Passes the datagram in `self.buf[..len]` through the link and queues its copies.
    fn schedule(&mut self, now: Instant, dir: Direction, mapping: u64, client: SocketAddr, len: usize, links: &mut Links) {
        let link = links.get(dir);
        self.releases.clear();
        link.datagram(now, len, &mut self.releases);
        for r in &self.releases {
            if self.heap.len() >= MAX_QUEUED_PACKETS || self.queued_bytes + len > MAX_QUEUED_BYTES {
                link.drop_queue();
                continue;
            }
            self.order += 1;
            self.queued_bytes += len;
            let data = self.buf[..len].to_vec();
            self.heap.push(Reverse(Entry { at: r.at, order: self.order, dir, mapping, client, seq: r.seq, data }));
        }
    }

    /// Sends every datagram whose release time has come.
    pub fn release_due(&mut self, now: Instant, links: &mut Links) {
        while self.heap.peek().is_some_and(|e| e.0.at <= now) {
            let Reverse(e) = self.heap.pop().expect("peeked");
            self.queued_bytes -= e.data.len();
            let sent = match e.dir {
                Direction::Up => match self.mappings.get(&e.mapping) {
                    Some(m) => m.sock.send(&e.data).is_ok(),
                    None => false,
                },
                Direction::Down => self.listen.send_to(&e.data, e.client).is_ok(),
            };
            let link = links.get(e.dir);
            if now.saturating_duration_since(e.at) > LATE {
                link.released_late();
            }
            if sent {
                link.delivered(e.seq, e.data.len());
            } else {
                link.drop_other();
            }
        }
    }
}
