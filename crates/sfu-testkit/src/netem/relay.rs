//! The relay thread: one loop that sleeps in `ppoll` until a socket is readable or the earliest
//! release time (a timer) comes, serves both relays, and applies configuration changes.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::{Direction, LinkConfig};
use super::counters::Stats;
use super::link::Link;
use super::sys::{self, pollfd, PollFd, POLLIN};
use super::tcp::TcpRelay;
use super::udp::UdpRelay;

/// Housekeeping period (idle UDP mappings); also the longest sleep of an idle relay.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// State shared by the handle and the relay thread.
pub(crate) struct Shared {
    pub stats: Arc<Stats>,
    /// Link configurations set by the handle, not yet taken by the thread.
    pending: Mutex<[Option<LinkConfig>; 2]>,
    /// The configuration in force (or about to be), for `Netem::link`.
    current: Mutex<[LinkConfig; 2]>,
    dirty: AtomicBool,
    stop: AtomicBool,
    wake_tx: UnixStream,
    /// Why the relay thread stopped on its own, if it did.
    error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(stats: Arc<Stats>, up: LinkConfig, down: LinkConfig, wake_tx: UnixStream) -> Shared {
        Shared {
            stats,
            pending: Mutex::new([None, None]),
            current: Mutex::new([up, down]),
            dirty: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            wake_tx,
            error: Mutex::new(None),
        }
    }

    fn wake(&self) {
        // A full (non-blocking) socket already holds a wake-up: the error is of no consequence.
        let _ = (&self.wake_tx).write(&[1]);
    }

    /// Hands a new configuration to the thread. Every datagram the relay reads after this call
    /// returns goes through the new configuration.
    pub fn set_link(&self, dir: Direction, cfg: LinkConfig) {
        lock(&self.current)[dir.index()] = cfg.clone();
        lock(&self.pending)[dir.index()] = Some(cfg);
        self.dirty.store(true, Ordering::Release);
        self.wake();
    }

    pub fn link(&self, dir: Direction) -> LinkConfig {
        lock(&self.current)[dir.index()].clone()
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    pub fn error(&self) -> Option<String> {
        lock(&self.error).clone()
    }
}

/// The two links; every access first takes a pending configuration change.
pub(crate) struct Links {
    links: [Link; 2],
    shared: Arc<Shared>,
}

impl Links {
    pub fn get(&mut self, dir: Direction) -> &mut Link {
        if self.shared.dirty.load(Ordering::Acquire) {
            self.refresh();
        }
        &mut self.links[dir.index()]
    }

    fn refresh(&mut self) {
        self.shared.dirty.store(false, Ordering::Release);
        let mut pending = lock(&self.shared.pending);
        for (link, cfg) in self.links.iter_mut().zip(pending.iter_mut()) {
            if let Some(cfg) = cfg.take() {
                link.set_config(cfg);
            }
        }
    }
}

pub(crate) struct Relay {
    pub shared: Arc<Shared>,
    pub wake_rx: UnixStream,
    pub links: Links,
    pub udp: Option<UdpRelay>,
    pub tcp: Option<TcpRelay>,
}

impl Relay {
    pub fn new(shared: Arc<Shared>, wake_rx: UnixStream, seed: u64, udp: Option<UdpRelay>, tcp: Option<TcpRelay>) -> Relay {
        let [up, down] = lock(&shared.current).clone();
        let links = Links {
            links: [
                Link::new(up, seed, Direction::Up, shared.stats.clone()),
                Link::new(down, seed, Direction::Down, shared.stats.clone()),
            ],
            shared: shared.clone(),
        };
        Relay { shared, wake_rx, links, udp, tcp }
    }

    /// Runs until stopped (or until `poll` fails, which is recorded as the relay's error).
    pub fn run(mut self) {
        let mut fds: Vec<PollFd> = Vec::new();
        let mut housekeeping = Instant::now() + HOUSEKEEPING;
        let mut drain = [0u8; 64];
        while !self.shared.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if self.shared.dirty.load(Ordering::Acquire) {
                self.links.refresh();
            }
            if let Some(u) = &mut self.udp {
                u.release_due(now, &mut self.links);
            }
            if let Some(t) = &mut self.tcp {
                t.release_due(now, &mut self.links);
            }
            if now >= housekeeping {
                if let Some(u) = &mut self.udp {
                    u.expire(now);
                }
                housekeeping = now + HOUSEKEEPING;
            }

            fds.clear();
            fds.push(pollfd(self.wake_rx.as_raw_fd(), POLLIN));
            let udp_at = fds.len();
            if let Some(u) = &mut self.udp {
                u.register(&mut fds);
            }
            let tcp_at = fds.len();
            if let Some(t) = &mut self.tcp {
                t.register(&mut fds, now);
            }
            let deadline = [
                Some(housekeeping),
                self.udp.as_ref().and_then(UdpRelay::next_deadline),
                self.tcp.as_ref().and_then(TcpRelay::next_deadline),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("housekeeping is always set");
            let timeout = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = sys::poll(&mut fds, timeout) {
                *lock(&self.shared.error) = Some(format!("poll: {e}"));
                return;
            }
            if fds[0].revents != 0 {
                for _ in 0..16 {
                    if !matches!(self.wake_rx.read(&mut drain), Ok(n) if n > 0) {
                        break;
                    }
                }
            }
            if let Some(u) = &mut self.udp {
                u.on_ready(&fds[udp_at..tcp_at], &mut self.links);
            }
            if let Some(t) = &mut self.tcp {
                t.on_ready(&fds[tcp_at..], &mut self.links);
            }
        }
    }
}
