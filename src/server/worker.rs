//! A worker thread: one UDP socket and one [`WorkerCore`]. It only moves bytes and time:
//! commands from the host's calls, datagrams from the socket (`recvmmsg`), deadlines;
//! the core's output goes to the socket (`sendmmsg`) and to the notifier thread.
//! Nothing on the packet path takes a lock.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::core::{Command, CommandResult, WorkerCore};
use super::notifier::NotifierMsg;
use super::Inner;
use crate::config::{LogLevel, TcpLimits};
use crate::error::SfuError;
use crate::log::LogRecord;
use crate::media::remote::{self, CrossItem};
use crate::metrics::{LoopMeter, WorkerMetrics};
use crate::net::poll::{Poller, Ready};
use crate::net::socket::{self, SendBatch, Waker};
use crate::net::tcp::{FrameFate, TcpServer};
use crate::output::{EventKind, HostMessage, Output, Proto};
use crate::protocol;

/// What the host's calls send a worker.
pub(crate) enum WorkerMsg {
    /// A core command; the reply (if any) gets the core's result.
    Core(Command, Option<Sender<CommandResult>>),
    /// Items from another worker (`media/remote.rs`).
    Cross(Vec<CrossItem>),
    Shutdown,
}

pub(crate) struct WorkerHandle {
    pub tx: Sender<WorkerMsg>,
    pub waker: Arc<Waker>,
}

impl WorkerHandle {
    /// Enqueue and wake the worker. False when the worker is gone.
    pub fn send(&self, m: WorkerMsg) -> bool {
        let ok = self.tx.send(m).is_ok();
        self.waker.wake();
        ok
    }
}

const MAX_DATAGRAM: usize = 2048;
const BATCH: usize = 32;
/// Outputs above which the loop delivers them before reading on (bounds memory and
/// latency within a batch).
const MAX_QUEUED_OUTPUTS: usize = 256;
/// Poll tokens: the UDP socket, the waker, the TCP listener, then TCP connections.
const TOKEN_UDP: u64 = 0;
const TOKEN_WAKER: u64 = 1;
const TOKEN_LISTENER: u64 = 2;
const FIRST_CONN_TOKEN: u64 = 16;
/// Messages (commands, items from other workers) handled per loop iteration at most,
/// so a busy neighbour cannot keep a worker from its socket and timers.
const MAX_MESSAGES_PER_ITERATION: usize = 256;
/// Messages waiting in a worker's inbox above which packets for it are dropped (its
/// engines' operations and events still go): a worker that cannot keep up loses media,
/// as a full socket would, instead of growing a queue without bound.
const MAX_INBOX_BACKLOG: usize = 4096;
/// How often TCP connections are checked against their deadlines.
const TCP_SWEEP: Duration = Duration::from_secs(1);

/// A worker's sockets: UDP, and the ICE-TCP listener if TCP is enabled.
pub(crate) struct Sockets {
    pub udp: UdpSocket,
    /// The listener (and the address announced for it).
    pub tcp: Option<(TcpListener, SocketAddr)>,
    pub tcp_limits: TcpLimits,
}

pub(crate) fn run(
    sockets: Sockets,
    mut core: WorkerCore,
    rx: Receiver<WorkerMsg>,
    waker: Arc<Waker>,
    inner: Arc<Inner>,
    metrics: Arc<WorkerMetrics>,
) {
    // The worker's own records (outside the core): the server's level applies too.
    let log_error = |inner: &Inner, message: String| {
        if inner.cfg.log_level.allows(LogLevel::Error) {
            inner.log_record(LogRecord { level: LogLevel::Error, target: module_path!(), message });
        }
    };
    let poller = match Poller::new() {
        Ok(p) => p,
        Err(e) => {
            log_error(&inner, format!("worker: cannot create its poll set: {e}"));
            return;
        }
    };
    let tcp = sockets
        .tcp
        .map(|(l, _)| TcpServer::new(l, sockets.tcp_limits, TOKEN_LISTENER, FIRST_CONN_TOKEN));
    let registered = poller
        .add(sockets.udp.as_raw_fd(), TOKEN_UDP, false)
        .and_then(|_| poller.add(waker.raw(), TOKEN_WAKER, false))
        .and_then(|_| tcp.as_ref().map_or(Ok(()), |t| t.register(&poller)));
    if let Err(e) = registered {
        log_error(&inner, format!("worker: cannot poll its sockets: {e}"));
        return;
    }
    let meter = LoopMeter::new(metrics, Instant::now());
    let mut io = Io { sock: sockets.udp, batch: SendBatch::default(), inner, poller, tcp, meter };
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect();
    let mut lens = [0usize; BATCH];
    let mut addrs = [None; BATCH];
    let mut ready = Vec::new();
    let mut next_sweep = Instant::now() + TCP_SWEEP;
    loop {
        // 1. Commands.
        waker.clear();
        let mut shutdown = false;
        for n in 0.. {
            if n == MAX_MESSAGES_PER_ITERATION {
                // More are waiting: come back to them right after this iteration.
                waker.wake();
                break;
            }
            let Ok(m) = rx.try_recv() else { break };
            match m {
                WorkerMsg::Cross(items) => {
                    core.handle_cross(Instant::now(), items);
                    if core.pending_outputs() >= MAX_QUEUED_OUTPUTS {
                        io.deliver(&mut core);
                    }
                }
                WorkerMsg::Shutdown => {
                    shutdown = true;
                    break;
                }
                WorkerMsg::Core(cmd, reply) => {
                    if let Command::Request { room, peer, .. } = &cmd {
                        io.inner.request_done(room, peer);
                    }
                    let r = core.handle_command(Instant::now(), cmd);
                    io.meter.command();
                    // Deliver what the command produced before its caller returns.
                    io.deliver(&mut core);
                    if let Some(reply) = reply {
                        let _ = reply.send(r);
                    }
                }
            }
        }
        if shutdown {
            shutdown_worker(&mut io, &mut core, &rx);
            return;
        }
        // 2. UDP datagrams, in batches, bounded per iteration so commands and timers run.
        for _ in 0..64 {
            let n = socket::recv_batch(&io.sock, &mut bufs, &mut lens, &mut addrs);
            if n == 0 {
                break;
            }
            let now = Instant::now();
            io.meter.received(Proto::Udp, n, lens[..n].iter().sum());
            for i in 0..n {
                if let Some(src) = addrs[i] {
                    core.handle_datagram(now, Proto::Udp, src, &bufs[i][..lens[i]]);
                    if core.pending_outputs() >= MAX_QUEUED_OUTPUTS {
                        io.deliver(&mut core);
                    }
                }
            }
            // The engines written to in this batch are due now: their packets leave.
            if core.poll_timeout(now).is_some_and(|t| t <= now) {
                core.handle_timeout(now);
            }
            io.deliver(&mut core);
            io.meter.batch_done(now);
        }
        // 3. TCP: new connections, frames, writable connections.
        if io.tcp.is_some() {
            let now = Instant::now();
            io.handle_tcp(&ready, now, &mut core);
            if now >= next_sweep {
                next_sweep = now + TCP_SWEEP;
                if let Some(t) = io.tcp.as_mut() {
                    t.sweep(now, &io.poller);
                }
            }
        }
        // 4. Deadlines.
        let now = Instant::now();
        if core.poll_timeout(now).is_some_and(|t| t <= now) {
            core.handle_timeout(now);
            io.deliver(&mut core);
            io.meter.timers();
        }
        let now = Instant::now();
        let mut wait = core
            .poll_timeout(now)
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        if io.tcp.is_some() {
            wait = wait.min(next_sweep.saturating_duration_since(now));
        }
        // Metrics: publish what this iteration counted, before waiting.
        io.meter.publish(now, &core.counters(), || core.gauges());
        let wait = io.meter.cap_wait(now, wait);
        io.poller.wait(wait, &mut ready);
        io.meter.woke(Instant::now());
    }
}

struct Io {
    sock: UdpSocket,
    batch: SendBatch,
    inner: Arc<Inner>,
    poller: Poller,
    tcp: Option<TcpServer>,
    meter: LoopMeter,
}

impl Io {
    /// Everything the core produced: datagrams to the sockets, messages to the notifier.
    fn deliver(&mut self, core: &mut WorkerCore) {
        while let Some(o) = core.poll_output() {
            match o {
                Output::Transmit(t) => {
                    self.meter.sent(t.proto, t.data.len());
                    match t.proto {
                        Proto::Udp => self.batch.push(&self.sock, t.remote, &t.data),
                        Proto::Tcp => {
                            if let Some(tcp) = self.tcp.as_mut() {
                                tcp.send(t.remote, &t.data, &self.poller);
                            }
                        }
                    }
                }
                Output::Message(m) => {
                    let _ = self.inner.notify_tx.send(NotifierMsg::Message(m));
                }
                Output::RoomFailed(id) => self.inner.forget_room(&id),
                Output::Log(r) => self.inner.log_record(r),
                Output::Cross { worker, mut items } => {
                    let Some(to) = self.inner.workers.get(worker) else { continue };
                    if to.tx.len() >= MAX_INBOX_BACKLOG {
                        let n = remote::drop_writes(&mut items);
                        self.meter.cross_dropped(n);
                        if items.is_empty() {
                            continue;
                        }
                    }
                    to.send(WorkerMsg::Cross(items));
                }
            }
        }
        if !self.batch.is_empty() {
            self.batch.flush(&self.sock);
        }
    }

    /// The TCP side's readiness from the last wait.
    fn handle_tcp(&mut self, ready: &[Ready], now: Instant, core: &mut WorkerCore) {
        for r in ready {
            let Some(tcp) = self.tcp.as_mut() else { return };
            if r.token == tcp.listener_token() {
                tcp.accept(now, &self.poller);
                continue;
            }
            if !tcp.owns(r.token) {
                continue;
            }
            if r.writable {
                tcp.flush(r.token, &self.poller);
            }
            if r.readable || r.closed {
                let meter = &mut self.meter;
                tcp.read(r.token, now, &self.poller, |src, frame| {
                    meter.received(Proto::Tcp, 1, frame.len());
                    if core.handle_datagram(now, Proto::Tcp, src, frame) {
                        FrameFate::Routed
                    } else {
                        FrameFate::Unrouted
                    }
                });
                if core.pending_outputs() >= MAX_QUEUED_OUTPUTS {
                    self.deliver(core);
                }
            }
        }
        if core.poll_timeout(now).is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
        self.deliver(core);
    }
}

/// Answer whatever is still queued, close every room, and stop.
fn shutdown_worker(io: &mut Io, core: &mut WorkerCore, rx: &Receiver<WorkerMsg>) {
    while let Ok(m) = rx.try_recv() {
        let WorkerMsg::Core(cmd, reply) = m else { continue };
        match cmd {
            Command::Request { room, peer, request_id, .. } => {
                let _ = io.inner.notify_tx.send(NotifierMsg::Message(HostMessage {
                    kind: EventKind::Response,
                    room: Arc::from(room),
                    peer: Arc::from(peer),
                    request_id,
                    json: protocol::error_response("server closed"),
                }));
            }
            Command::HostRequest { room, request_id, .. } => {
                let _ = io.inner.notify_tx.send(NotifierMsg::Message(HostMessage {
                    kind: EventKind::HostResponse,
                    room: Arc::from(room),
                    peer: Arc::from(""),
                    request_id,
                    json: protocol::error_response("server closed"),
                }));
            }
            Command::CreateRoom { .. } => {
                if let Some(r) = reply {
                    let _ = r.send(CommandResult::RoomCreated(Err(SfuError::ServerClosed)));
                }
            }
            Command::ClosePeer { .. } => {
                if let Some(r) = reply {
                    let _ = r.send(CommandResult::PeerClosed(false));
                }
            }
            Command::CloseRoom { .. } | Command::Notify { .. } => {
                if let Some(r) = reply {
                    let _ = r.send(CommandResult::Done);
                }
            }
        }
    }
    core.close_all(Instant::now());
    io.deliver(core);
}
