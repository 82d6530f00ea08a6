//! [`Netem`]: the handle that starts the relay thread, changes links and reads counters.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::config::{ConfigError, Direction, LinkConfig, NetemConfig};
use super::counters::{Counters, Stats};
use super::relay::{Relay, Shared};
use super::tcp::TcpRelay;
use super::udp::UdpRelay;

/// A running impairment proxy. Dropping it stops the relay thread (like [`Netem::stop`]).
pub struct Netem {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
}

/// The local IP for upstream sockets: `bind`, or the unspecified address of `upstream`'s family.
fn bind_ip_for(bind: IpAddr, upstream: SocketAddr) -> IpAddr {
    match (bind.is_unspecified(), upstream) {
        (false, _) => bind,
        (true, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (true, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl Netem {
    /// Binds the listen sockets and starts the relay thread. Errors: an invalid configuration,
    /// a listen address or `bind_upstream` IP that cannot be bound.
    pub fn start(cfg: NetemConfig) -> io::Result<Netem> {
        cfg.validate()?;
        let stats = Arc::new(Stats::default());
        let udp = match cfg.upstream_udp {
            Some(upstream) => {
                let listen = UdpSocket::bind(cfg.listen)?;
                listen.set_nonblocking(true)?;
                let bind_ip = bind_ip_for(cfg.bind_upstream, upstream);
                // Fail now, not at the first client, if the upstream IP cannot be bound.
                drop(UdpSocket::bind(SocketAddr::new(bind_ip, 0))?);
                Some(UdpRelay::new(listen, upstream, bind_ip, cfg.udp_idle_timeout, cfg.max_udp_mappings, stats.clone()))
            }
            None => None,
        };
        let tcp = match cfg.upstream_tcp {
            Some(upstream) => {
                let listener = TcpListener::bind(cfg.listen)?;
                listener.set_nonblocking(true)?;
                let bind_ip = bind_ip_for(cfg.bind_upstream, upstream);
                drop(TcpListener::bind(SocketAddr::new(bind_ip, 0))?);
                Some((listener, upstream, bind_ip))
            }
            None => None,
        };
        let udp_addr = udp.as_ref().map(|u| u.local_addr()).transpose()?;
        let tcp_addr = tcp.as_ref().map(|(l, _, _)| l.local_addr()).transpose()?;
        let tcp = tcp.map(|(l, up, ip)| TcpRelay::new(l, up, ip, cfg.max_tcp_connections, stats.clone()));

        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let shared = Arc::new(Shared::new(stats, cfg.up, cfg.down, wake_tx));
        let relay = Relay::new(shared.clone(), wake_rx, cfg.seed, udp, tcp);
        let thread = std::thread::Builder::new().name("sfu-netem".into()).spawn(move || relay.run())?;
        Ok(Netem { shared, thread: Some(thread), udp: udp_addr, tcp: tcp_addr })
    }

    /// The UDP address clients send to (`None` without an upstream UDP address).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp
    }

    /// The TCP address clients connect to (`None` without an upstream TCP address).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// Replaces the impairments of one direction (the whole configuration: unset keys are
    /// clean). Every packet the relay reads after this returns goes through the new one;
    /// packets already delayed keep their release times.
    pub fn set_link(&self, dir: Direction, cfg: LinkConfig) -> Result<(), ConfigError> {
        cfg.validate()?;
        self.shared.set_link(dir, cfg);
        Ok(())
    }

    /// The configuration of one direction.
    pub fn link(&self, dir: Direction) -> LinkConfig {
        self.shared.link(dir)
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.stats.snapshot()
    }

    /// Why the relay thread stopped on its own (a failed `poll`), if it did.
    pub fn error(&self) -> Option<String> {
        self.shared.error()
    }

    /// Stops the relay thread and waits for it (within one loop turn). Datagrams still delayed
    /// are discarded; sockets are closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.request_stop();
            if let Err(panic) = thread.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        self.shutdown();
    }
}
