//! The runtime: worker threads that own rooms and sockets, and the notifier thread
//! that calls the host back. Every thread is started and joined here.
//!
//! Threading contract (copied into the C header):
//! * A room's state lives on one worker. All messages of a room are processed in order on
//!   that worker (the engines of its receive transports may run on other workers:
//!   docs/ARCHITECTURE.md, "A room on several workers"), and everything it produces goes, in order, through one channel to
//!   the notifier thread, which calls the host's callback. So callbacks never run
//!   concurrently and arrive per peer in production order.
//! * Calls from the host only validate, copy and enqueue (request/notify) or
//!   enqueue and wait for the worker's answer (create/close room, close peer).

pub mod core;
mod notifier;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};

use crossbeam_channel::{bounded, unbounded, Sender};
use parking_lot::{Mutex, RwLock};

use crate::config::ServerConfig;
use crate::error::SfuError;
use crate::log::{LogRecord, LogSink, MAX_QUEUED_RECORDS};
use crate::media::remote::Spread;
use crate::media::{cert, AnnouncedCandidate, MediaEnv};
use crate::metrics::{self, WorkerMetrics};
use crate::ortc::RoomCaps;
use crate::output::{HostMessage, Proto};
pub use crate::output::EventKind;
use crate::protocol;
use crate::room::RoomSettings;
use self::core::{Command, CommandResult, WorkerCore};
use notifier::NotifierMsg;
use worker::{WorkerHandle, WorkerMsg};

/// One callback invocation. Borrowed: copy what you keep.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub kind: EventKind,
    pub room_id: &'a str,
    pub peer_name: &'a str,
    pub request_id: u64,
    pub json: &'a str,
}

/// The host's callback. Runs on the notifier thread, never concurrently with itself.
pub type EventSink = Box<dyn FnMut(Event<'_>) + Send>;

pub(crate) struct Inner {
    pub cfg: ServerConfig,
    workers: Vec<WorkerHandle>,
    /// room id -> worker index. Touched by control calls only, never per packet.
    rooms: Mutex<HashMap<String, usize>>,
    notify_tx: Sender<NotifierMsg>,
    closed: AtomicBool,
    /// Held (shared) while a host call checks `closed` and enqueues; `close` takes it
    /// exclusively to set `closed`, so nothing is enqueued after shutdown began and
    /// every accepted request is answered.
    pub(crate) gate: RwLock<()>,
    /// Requests per (room, peer) queued and not yet processed
    /// (`maxPendingRequestsPerPeer`). Control path only.
    pending: Mutex<HashMap<(String, String), usize>>,
    /// Set by `close` called from the callback: the notifier delivers nothing more.
    pub(crate) stop_now: AtomicBool,
    notifier_thread: Mutex<Option<ThreadId>>,
    /// What each worker publishes for `metrics()` (metrics/mod.rs), and the inode of
    /// its socket (the kernel's drop count, metrics/procfs.rs).
    worker_metrics: Vec<Arc<WorkerMetrics>>,
    socket_inodes: Vec<Option<u64>>,
    /// Log records in the notifier's queue, and those dropped because it held
    /// `MAX_QUEUED_RECORDS` (log.rs).
    pub(crate) logs_queued: AtomicUsize,
    logs_dropped: AtomicU64,
}

/// An SFU server: worker threads, sockets, rooms.
pub struct Server {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    notifier: Mutex<Option<JoinHandle<()>>>,
    /// Serialises `close`: a second caller waits until the first has finished.
    close_lock: Mutex<()>,
    ports: Vec<u16>,
}

impl Server {
    /// Start a server. `config_json`: `None` for defaults (see [`ServerConfig`]).
    pub fn new(config_json: Option<&str>, sink: EventSink) -> Result<Server, SfuError> {
        let cfg = ServerConfig::from_json(config_json)?;
        let cert = match (&cfg.dtls_certificate_file, &cfg.dtls_private_key_file) {
            (Some(c), Some(k)) => cert::load(c, k)?,
            _ => cert::generate()?,
        };
        let fingerprint = cert::fingerprint(&cert);
        let (notify_tx, notify_rx) = unbounded::<NotifierMsg>();
        let seed = crate::util::Rng::from_entropy().next_u64();
        let mut sockets = Vec::new();
        for i in 0..cfg.num_workers {
            let s = crate::net::socket::bind_in_range(
                cfg.rtc_ipv4,
                cfg.rtc_min_port,
                cfg.rtc_max_port,
                seed + i as u64,
            )
            .map_err(|e| SfuError::Io(format!("binding a UDP socket on {}: {e}", cfg.rtc_ipv4)))?;
            sockets.push(s);
        }
        let mut workers = Vec::new();
        let mut starts = Vec::new();
        let mut ports = Vec::new();
        let mut worker_metrics = Vec::new();
        let socket_inodes: Vec<Option<u64>> =
            sockets.iter().map(|s| metrics::procfs::socket_inode(std::os::fd::AsRawFd::as_raw_fd(s))).collect();
        for (i, sock) in sockets.into_iter().enumerate() {
            let port = sock
                .local_addr()
                .map_err(|e| SfuError::Io(e.to_string()))?
                .port();
            ports.push(port);
            let announced = std::net::SocketAddr::from((cfg.announced_ip(), port));
            let mut candidates = vec![AnnouncedCandidate { addr: announced, proto: Proto::Udp }];
            let tcp = if cfg.enable_tcp {
                let l = crate::net::socket::bind_tcp_in_range(cfg.rtc_ipv4, cfg.rtc_min_port, cfg.rtc_max_port, port)
                    .map_err(|e| SfuError::Io(format!("binding a TCP socket on {}: {e}", cfg.rtc_ipv4)))?;
                let tcp_port = l.local_addr().map_err(|e| SfuError::Io(e.to_string()))?.port();
                let addr = std::net::SocketAddr::from((cfg.announced_ip(), tcp_port));
                candidates.push(AnnouncedCandidate { addr, proto: Proto::Tcp });
                Some((l, addr))
            } else {
                None
            };
            let env = Arc::new(MediaEnv {
                ice_addr: announced,
                tcp_addr: tcp.as_ref().map(|t| t.1),
                candidates,
                cert: cert.clone(),
                fingerprint: fingerprint.clone(),
                transport_timeout: std::time::Duration::from_secs_f64(cfg.transport_timeout_secs),
                bwe_initial: cfg.adapt.enable_bwe.then_some(cfg.adapt.initial_outgoing_bitrate),
            });
            let wm = Arc::new(WorkerMetrics::default());
            worker_metrics.push(wm.clone());
            let (tx, rx) = unbounded::<WorkerMsg>();
            let waker = Arc::new(
                crate::net::socket::Waker::new().map_err(|e| SfuError::Io(e.to_string()))?,
            );
            workers.push(WorkerHandle {
                tx,
                waker: waker.clone(),
            });
            let sockets = worker::Sockets { udp: sock, tcp, tcp_limits: cfg.tcp };
            starts.push((i, sockets, env, rx, waker, wm));
        }
        // Rooms spread their receive transports over every worker (docs/ARCHITECTURE.md,
        // "A room on several workers").
        let spread = (cfg.num_workers > 1 && cfg.spread_rooms)
            .then(|| Arc::new(Spread::new(starts.iter().map(|s| s.2.clone()).collect())));
        let settings = RoomSettings { limits: cfg.limits, max_message_size: cfg.max_message_size, adapt: cfg.adapt };
        let starts: Vec<_> = starts
            .into_iter()
            .map(|(i, sockets, env, rx, waker, wm)| {
                let mut core = WorkerCore::with_spread(i, env, spread.clone(), settings);
                core.set_log_level(cfg.log_level);
                (i, sockets, core, rx, waker, wm)
            })
            .collect();
        let inner = Arc::new(Inner {
            cfg,
            workers,
            rooms: Mutex::new(HashMap::new()),
            notify_tx,
            closed: AtomicBool::new(false),
            gate: RwLock::new(()),
            pending: Mutex::new(HashMap::new()),
            stop_now: AtomicBool::new(false),
            notifier_thread: Mutex::new(None),
            worker_metrics,
            socket_inodes,
            logs_queued: AtomicUsize::new(0),
            logs_dropped: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for (i, sockets, core, rx, waker, wm) in starts {
            let inner2 = inner.clone();
            let h = std::thread::Builder::new()
                .name(format!("sfu-worker-{i}"))
                .spawn(move || worker::run(sockets, core, rx, waker, inner2, wm))
                .map_err(|e| SfuError::Io(format!("spawning a worker: {e}")))?;
            threads.push(h);
        }
        let inner2 = inner.clone();
        let notifier = std::thread::Builder::new()
            .name("sfu-notifier".into())
            .spawn(move || notifier::run(notify_rx, sink, inner2))
            .map_err(|e| SfuError::Io(format!("spawning the notifier: {e}")))?;
        *inner.notifier_thread.lock() = Some(notifier.thread().id());
        Ok(Server {
            inner,
            threads: Mutex::new(threads),
            notifier: Mutex::new(Some(notifier)),
            close_lock: Mutex::new(()),
            ports,
        })
    }

    /// The UDP ports the workers listen on (one per worker).
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    fn check_open(&self) -> Result<(), SfuError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SfuError::ServerClosed);
        }
        Ok(())
    }

    /// Create a room (synchronous). `options_json`: `None` or `{"mediaCodecs": [...]}`.
    pub fn create_room(&self, room_id: &str, options_json: Option<&str>) -> Result<(), SfuError> {
        let _gate = self.inner.gate.read();
        self.check_open()?;
        if room_id.is_empty() {
            return Err(SfuError::InvalidArgument("empty room id".into()));
        }
        let caps = RoomCaps::from_options(options_json).map_err(SfuError::InvalidArgument)?;
        let widx = {
            let mut rooms = self.inner.rooms.lock();
            if rooms.contains_key(room_id) {
                return Err(SfuError::RoomExists(room_id.into()));
            }
            // The worker with the fewest rooms.
            let mut counts = vec![0usize; self.inner.workers.len()];
            for w in rooms.values() {
                counts[*w] += 1;
            }
            let widx = (0..counts.len()).min_by_key(|i| counts[*i]).unwrap_or(0);
            rooms.insert(room_id.to_string(), widx);
            widx
        };
        let r = match self.call(widx, Command::CreateRoom { id: room_id.to_string(), caps }) {
            Some(CommandResult::RoomCreated(r)) => r,
            _ => Err(SfuError::ServerClosed),
        };
        if r.is_err() {
            self.inner.rooms.lock().remove(room_id);
        }
        r
    }

    fn worker_of(&self, room_id: &str) -> Option<usize> {
        self.inner.rooms.lock().get(room_id).copied()
    }

    /// Close a room (synchronous): every peer gets `closed`.
    pub fn close_room(&self, room_id: &str) -> Result<(), SfuError> {
        let _gate = self.inner.gate.read();
        self.check_open()?;
        let w = self
            .inner
            .rooms
            .lock()
            .remove(room_id)
            .ok_or_else(|| SfuError::RoomNotFound(room_id.into()))?;
        self.call(w, Command::CloseRoom { id: room_id.to_string() });
        Ok(())
    }

    /// Close a peer (synchronous): `closed` to it, `peerClosed` to the others.
    pub fn close_peer(&self, room_id: &str, peer: &str) -> Result<(), SfuError> {
        let _gate = self.inner.gate.read();
        self.check_open()?;
        let w = self
            .worker_of(room_id)
            .ok_or_else(|| SfuError::RoomNotFound(room_id.into()))?;
        match self.call(w, Command::ClosePeer { room: room_id.into(), peer: peer.into() }) {
            Some(CommandResult::PeerClosed(true)) => Ok(()),
            Some(_) => Err(SfuError::PeerNotFound(peer.into())),
            None => Err(SfuError::ServerClosed),
        }
    }

    /// Send a command to worker `w` and wait for its result (`None`: the worker is gone).
    fn call(&self, w: usize, cmd: Command) -> Option<CommandResult> {
        let (rtx, rrx) = bounded(1);
        if !self.inner.workers[w].send(WorkerMsg::Core(cmd, Some(rtx))) {
            return None;
        }
        rrx.recv().ok()
    }

    /// Enqueue a client request. Exactly one response follows through the sink.
    pub fn request(
        &self,
        room_id: &str,
        peer: &str,
        request_id: u64,
        json: &[u8],
    ) -> Result<(), SfuError> {
        let _gate = self.inner.gate.read();
        self.check_open()?;
        let respond_err = |reason: &str| {
            self.inner.message(EventKind::Response, room_id, peer, request_id, protocol::error_response(reason));
        };
        if json.len() > self.inner.cfg.max_message_size {
            respond_err(&format!(
                "message too large ({} bytes, limit {})",
                json.len(),
                self.inner.cfg.max_message_size
            ));
            return Ok(());
        }
        let Some(w) = self.worker_of(room_id) else {
            respond_err("room not found");
            return Ok(());
        };
        {
            let limit = self.inner.cfg.limits.max_pending_requests_per_peer;
            let mut pending = self.inner.pending.lock();
            let n = pending
                .entry((room_id.to_string(), peer.to_string()))
                .or_insert(0);
            if *n >= limit {
                drop(pending);
                respond_err(&format!(
                    "too many pending requests for this peer (limit {limit})"
                ));
                return Ok(());
            }
            *n += 1;
        }
        let cmd = Command::Request {
            room: room_id.into(),
            peer: peer.into(),
            request_id,
            bytes: json.to_vec(),
        };
        if !self.inner.workers[w].send(WorkerMsg::Core(cmd, None)) {
            return Err(SfuError::ServerClosed);
        }
        Ok(())
    }

    /// Enqueue a host request about a room. Exactly one `HostResponse` follows through
    /// the sink.
    pub fn host_request(&self, room_id: &str, request_id: u64, json: &[u8]) -> Result<(), SfuError> {
        let _gate = self.inner.gate.read();
        self.check_open()?;
        let respond_err = |reason: &str| {
            self.inner.message(EventKind::HostResponse, room_id, "", request_id, protocol::error_response(reason));
        };
        if json.len() > self.inner.cfg.max_message_size {
            respond_err(&format!("message too large ({} bytes, limit {})", json.len(), self.inner.cfg.max_message_size));
            return Ok(());
        }
        let Some(w) = self.worker_of(room_id) else {
            respond_err("room not found");
            return Ok(());
        };
        let cmd = Command::HostRequest { room: room_id.into(), request_id, bytes: json.to_vec() };
        if !self.inner.workers[w].send(WorkerMsg::Core(cmd, None)) {
            return Err(SfuError::ServerClosed);
        }
        Ok(())
    }

    /// Enqueue a client notification (no response).
    pub fn notify(&self, room_id: &str, peer: &str, json: &[u8]) -> Result<(), SfuError> {
        let _gate = self.inner.gate.read();
        self.check_open()?;
        if json.len() > self.inner.cfg.max_message_size {
            let ev = serde_json::json!({"event": "notificationError", "method": null,
                "error": format!("message too large ({} bytes, limit {})", json.len(), self.inner.cfg.max_message_size)});
            self.inner.message(EventKind::Host, room_id, peer, 0, ev.to_string());
            return Ok(());
        }
        let Some(w) = self.worker_of(room_id) else {
            let ev = serde_json::json!({"event": "notificationError", "method": null, "error": "room not found"});
            self.inner.message(EventKind::Host, room_id, peer, 0, ev.to_string());
            return Ok(());
        };
        let cmd = Command::Notify { room: room_id.into(), peer: peer.into(), bytes: json.to_vec() };
        if !self.inner.workers[w].send(WorkerMsg::Core(cmd, None)) {
            return Err(SfuError::ServerClosed);
        }
        Ok(())
    }

    /// Stop every thread; blocks until they are joined. Idempotent; a concurrent
    /// second caller waits until the first has finished. Pending requests are
    /// answered with "server closed" and rooms send `closed` to their peers before the
    /// notifier stops.
    ///
    /// Called from the callback (the notifier thread), it cannot wait for itself: it
    /// stops the workers, no callback is delivered after the current one, and the
    /// notifier thread ends (dropping the sink) when the callback returns.
    pub fn close(&self) {
        {
            let _gate = self.inner.gate.write();
            self.inner.closed.store(true, Ordering::Release);
        }
        let on_notifier = *self.inner.notifier_thread.lock() == Some(std::thread::current().id());
        if on_notifier {
            self.inner.stop_now.store(true, Ordering::Release);
            for w in &self.inner.workers {
                w.send(WorkerMsg::Shutdown);
            }
            return;
        }
        let _serial = self.close_lock.lock();
        for w in &self.inner.workers {
            w.send(WorkerMsg::Shutdown);
        }
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
        let _ = self.inner.notify_tx.send(NotifierMsg::Stop);
        if let Some(h) = self.notifier.lock().take() {
            let _ = h.join();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// The server's metrics in the Prometheus text exposition format (README,
    /// "Metrics"). Reads what the workers published; never waits for a worker.
    pub fn metrics(&self) -> Result<String, SfuError> {
        self.check_open()?;
        let workers: Vec<_> = self.inner.worker_metrics.iter().map(|m| m.snapshot()).collect();
        let inodes: Option<Vec<u64>> = self.inner.socket_inodes.iter().copied().collect();
        let srv = metrics::render::ServerFigures {
            version: crate::VERSION,
            log_records_dropped: self.inner.logs_dropped.load(Ordering::Relaxed),
            notifier_queue: self.inner.notify_tx.len() as u64,
            socket_drops: inodes.and_then(|i| metrics::procfs::udp_drops(&i)),
        };
        Ok(metrics::render::render(&workers, &srv))
    }

    /// Where this server's log records go from now on: `sink`, or stderr with `None`.
    /// The sink runs on the notifier thread (see [`LogSink`]); records produced before
    /// this call went to the previous destination. The previous sink is dropped on the
    /// notifier thread after its last record. On error `sink` is dropped.
    pub fn set_log_sink(&self, sink: Option<LogSink>) -> Result<(), SfuError> {
        self.try_set_log_sink(sink).map_err(|(e, _)| e)
    }

    /// `set_log_sink`, giving the sink back on failure (the C API must not run its
    /// finalizer then).
    pub(crate) fn try_set_log_sink(&self, sink: Option<LogSink>) -> Result<(), (SfuError, Option<LogSink>)> {
        let _gate = self.inner.gate.read();
        if let Err(e) = self.check_open() {
            return Err((e, sink));
        }
        match self.inner.notify_tx.send(NotifierMsg::SetLogSink(sink)) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::SendError(m)) => match m {
                NotifierMsg::SetLogSink(s) => Err((SfuError::ServerClosed, s)),
                _ => Err((SfuError::ServerClosed, None)),
            },
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    /// Queue a message for the host (from a host call's thread).
    fn message(&self, kind: EventKind, room: &str, peer: &str, request_id: u64, json: String) {
        let _ = self.notify_tx.send(NotifierMsg::Message(HostMessage {
            kind,
            room: Arc::from(room),
            peer: Arc::from(peer),
            request_id,
            json,
        }));
    }

    /// A queued request of (room, peer) was taken by its worker.
    pub(crate) fn request_done(&self, room: &str, peer: &str) {
        let mut pending = self.pending.lock();
        let key = (room.to_string(), peer.to_string());
        if let Some(n) = pending.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&key);
            }
        }
    }

    /// Queue a log record for the notifier, unless `MAX_QUEUED_RECORDS` are waiting:
    /// then it is dropped and counted. Never blocks.
    pub(crate) fn log_record(&self, r: LogRecord) {
        if self.logs_queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_RECORDS {
            self.logs_queued.fetch_sub(1, Ordering::Relaxed);
            self.logs_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.notify_tx.send(NotifierMsg::Log(r)).is_err() {
            self.logs_queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A room closed itself (internal error): forget it.
    pub(crate) fn forget_room(&self, id: &str) {
        self.rooms.lock().remove(id);
    }
}
