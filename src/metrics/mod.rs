//! A server's metrics, for `sfu_server_metrics` (Prometheus text exposition format).
//!
//! Who writes what, and how it reaches the reader without a lock on the packet path:
//! * The sans-IO core counts traffic in plain `u64`s ([`Counters`]): the media layer
//!   (RTP, NACK/PLI/FIR, retransmissions) and the core's routing (unknown sources).
//! * The worker thread measures its own loop ([`LoopMeter`]: datagrams in and out per
//!   protocol, time busy and waiting, the latency of each input batch).
//! * At the end of every loop iteration, just before it waits in `poll`, the worker
//!   publishes both into its [`WorkerMetrics`] with relaxed atomic stores; the core's
//!   gauges (rooms, peers, transports by state...) cost a walk over its rooms and
//!   engines, so they are refreshed after a command and otherwise at most every
//!   [`GAUGE_PERIOD`] while anything happens. Every published counter is a copy of a
//!   monotonic plain counter, so what a reader sees is monotonic too.
//! * `Server::metrics` (any thread) loads them ([`WorkerMetrics::snapshot`]), adds the
//!   server's own figures and renders the text (`render.rs`, `expo.rs`).

pub mod expo;
pub mod procfs;
pub mod render;

use std::ops::{AddAssign, Index, IndexMut};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::output::Proto;

/// A traffic counter of a worker core: an index into [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctr {
    /// Packets no transport took: not a verified binding request for a live
    /// transport, nor from an address one has validated (UDP datagrams; TCP frames,
    /// whose connection the worker then closes).
    UdpDroppedUnknownSource,
    TcpDroppedUnknownSource,
    /// RTP packets str0m delivered from producers (decrypted; RTX unwrapped).
    RtpPacketsReceived,
    /// Their payload bytes (RTP headers not included).
    RtpPayloadBytesReceived,
    /// RTP packets the SFU wrote to consumers (forwarded, not retransmissions).
    RtpPacketsSent,
    RtpPayloadBytesSent,
    /// Datagrams sent on a consumer's RTX SSRC: retransmissions answering NACKs.
    RtpRetransmissions,
    /// RTCP feedback, from str0m's per-stream statistics (deltas, once a second):
    /// received from consumers' browsers / sent to producers' browsers.
    NacksReceived,
    NacksSent,
    PlisReceived,
    PlisSent,
    FirsReceived,
    FirsSent,
}

impl Ctr {
    pub(crate) const COUNT: usize = Ctr::FirsSent as usize + 1;

    pub fn dropped_unknown_source(p: Proto) -> Ctr {
        match p {
            Proto::Udp => Ctr::UdpDroppedUnknownSource,
            Proto::Tcp => Ctr::TcpDroppedUnknownSource,
        }
    }
}

/// A worker core's traffic counters (plain numbers, owned by the worker thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters(pub [u64; Ctr::COUNT]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; Ctr::COUNT])
    }
}

impl Index<Ctr> for Counters {
    type Output = u64;
    fn index(&self, c: Ctr) -> &u64 {
        &self.0[c as usize]
    }
}

impl IndexMut<Ctr> for Counters {
    fn index_mut(&mut self, c: Ctr) -> &mut u64 {
        &mut self.0[c as usize]
    }
}

impl AddAssign<&Counters> for Counters {
    fn add_assign(&mut self, o: &Counters) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a = a.wrapping_add(b);
        }
    }
}

/// A transport's state, as the `state` label of `sfu_transports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportState {
    /// No authenticated ICE check yet.
    New,
    /// An authenticated ICE check arrived; DTLS not done.
    Connecting,
    /// ICE and DTLS are up (SRTP keys in place).
    Connected,
    /// Dead (failed, silent too long, closed by the remote), about to be closed.
    Failed,
}

impl TransportState {
    pub const ALL: [TransportState; 4] =
        [TransportState::New, TransportState::Connecting, TransportState::Connected, TransportState::Failed];

    pub fn label(self) -> &'static str {
        match self {
            TransportState::New => "new",
            TransportState::Connecting => "connecting",
            TransportState::Connected => "connected",
            TransportState::Failed => "failed",
        }
    }
}

/// The transport protocols the series are rendered for.
pub const PROTOCOLS: [Proto; 2] = [Proto::Udp, Proto::Tcp];

fn proto_index(p: Proto) -> usize {
    match p {
        Proto::Udp => 0,
        Proto::Tcp => 1,
    }
}

/// A worker core's gauges (computed by walking its rooms and engines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub rooms: u64,
    pub peers: u64,
    pub producers: u64,
    pub consumers: u64,
    /// Transports by [protocol index, then 2 for "none"][`TransportState` index].
    pub transports: [[u64; 4]; 3],
}

fn transport_row(p: Option<Proto>) -> usize {
    p.map_or(2, proto_index)
}

impl Gauges {
    /// Count a transport. `p`: the protocol of its selected (or last validated) ICE
    /// pair; `None` before any authenticated check.
    pub fn add_transport(&mut self, p: Option<Proto>, s: TransportState) {
        self.transports[transport_row(p)][s as usize] += 1;
    }

    pub fn transports(&self, p: Option<Proto>, s: TransportState) -> u64 {
        self.transports[transport_row(p)][s as usize]
    }

    fn to_array(self) -> [u64; GAUGE_WORDS] {
        let mut a = [0; GAUGE_WORDS];
        a[..4].copy_from_slice(&[self.rooms, self.peers, self.producers, self.consumers]);
        for (i, row) in self.transports.iter().enumerate() {
            a[4 + 4 * i..8 + 4 * i].copy_from_slice(row);
        }
        a
    }

    fn from_array(a: [u64; GAUGE_WORDS]) -> Gauges {
        let mut t = [[0; 4]; 3];
        for (i, row) in t.iter_mut().enumerate() {
            row.copy_from_slice(&a[4 + 4 * i..8 + 4 * i]);
        }
        Gauges { rooms: a[0], peers: a[1], producers: a[2], consumers: a[3], transports: t }
    }
}

const GAUGE_WORDS: usize = 16;

/// Upper bounds, in seconds, of the buckets of `sfu_worker_batch_latency_seconds`.
pub const LATENCY_BOUNDS: [f64; 12] = [50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3];
/// Buckets: one per bound, plus one for everything above the last.
pub const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// The worker loop's own figures (all monotonic but `busy_ratio`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopStats {
    /// Datagrams and bytes read from the sockets, by protocol index.
    pub received: [(u64, u64); 2],
    /// Datagrams and bytes handed to the kernel, by protocol index.
    pub sent: [(u64, u64); 2],
    pub busy_ns: u64,
    pub idle_ns: u64,
    /// Input batches by latency bucket (not cumulative).
    pub latency: [u64; BUCKETS],
    pub latency_sum_ns: u64,
    /// Share of the last completed window (about a second) spent busy, 0..=1.
    pub busy_ratio: f64,
    /// Packets for consumers on another worker dropped because its inbox was full.
    pub cross_dropped: u64,
}

impl Default for LoopStats {
    fn default() -> Self {
        LoopStats {
            received: [(0, 0); 2],
            sent: [(0, 0); 2],
            busy_ns: 0,
            idle_ns: 0,
            latency: [0; BUCKETS],
            latency_sum_ns: 0,
            busy_ratio: 0.0,
            cross_dropped: 0,
        }
    }
}

impl LoopStats {
    pub fn received(&self, p: Proto) -> (u64, u64) {
        self.received[proto_index(p)]
    }

    pub fn sent(&self, p: Proto) -> (u64, u64) {
        self.sent[proto_index(p)]
    }

    fn record_latency(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BOUNDS.iter().position(|b| s <= *b).unwrap_or(LATENCY_BOUNDS.len());
        self.latency[i] += 1;
        self.latency_sum_ns = self.latency_sum_ns.saturating_add(d.as_nanos() as u64);
    }

    const WORDS: usize = 4 + 4 + 2 + BUCKETS + 3;

    fn to_array(self) -> [u64; Self::WORDS] {
        let mut a = [0; Self::WORDS];
        let mut i = 0;
        let mut put = |v: u64| {
            a[i] = v;
            i += 1;
        };
        for (n, b) in self.received.into_iter().chain(self.sent) {
            put(n);
            put(b);
        }
        put(self.busy_ns);
        put(self.idle_ns);
        for v in self.latency {
            put(v);
        }
        put(self.latency_sum_ns);
        put(self.busy_ratio.to_bits());
        put(self.cross_dropped);
        a
    }

    fn from_array(a: [u64; Self::WORDS]) -> LoopStats {
        let mut it = a.into_iter();
        let mut next = || it.next().unwrap_or(0);
        let mut s = LoopStats::default();
        for slot in s.received.iter_mut().chain(s.sent.iter_mut()) {
            *slot = (next(), next());
        }
        s.busy_ns = next();
        s.idle_ns = next();
        for v in s.latency.iter_mut() {
            *v = next();
        }
        s.latency_sum_ns = next();
        s.busy_ratio = f64::from_bits(next());
        s.cross_dropped = next();
        s
    }
}

/// What one worker publishes; read by `Server::metrics` from any thread.
pub struct WorkerMetrics {
    core: [AtomicU64; Ctr::COUNT],
    gauges: [AtomicU64; GAUGE_WORDS],
    meter: [AtomicU64; LoopStats::WORDS],
}

/// One worker's figures as loaded by a reader.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerSnapshot {
    pub core: Counters,
    pub gauges: Gauges,
    pub meter: LoopStats,
}

fn store(dst: &[AtomicU64], src: &[u64]) {
    for (d, s) in dst.iter().zip(src) {
        d.store(*s, Relaxed);
    }
}

fn load<const N: usize>(src: &[AtomicU64; N]) -> [u64; N] {
    std::array::from_fn(|i| src[i].load(Relaxed))
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics {
            core: std::array::from_fn(|_| AtomicU64::new(0)),
            gauges: std::array::from_fn(|_| AtomicU64::new(0)),
            meter: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl WorkerMetrics {
    /// Load everything (each value atomically; the set is not one instant, which
    /// the exposition format tolerates).
    pub fn snapshot(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            core: Counters(load(&self.core)),
            gauges: Gauges::from_array(load(&self.gauges)),
            meter: LoopStats::from_array(load(&self.meter)),
        }
    }
}

/// Gauges are refreshed at most this often, except right after a command.
pub const GAUGE_PERIOD: Duration = Duration::from_millis(100);
/// The busy ratio is computed over windows of at least this length.
const RATIO_WINDOW: Duration = Duration::from_secs(1);

/// The worker thread's side: measures the loop and publishes. Worker thread only.
pub struct LoopMeter {
    shared: Arc<WorkerMetrics>,
    stats: LoopStats,
    /// Start of the current busy stretch (the end of the last wait).
    busy_since: Instant,
    window_start: Instant,
    window_busy_ns: u64,
    gauges_at: Option<Instant>,
    /// Something happened since the gauges were last refreshed.
    gauges_stale: bool,
    /// A command ran: refresh the gauges at the next publication.
    gauges_now: bool,
}

impl LoopMeter {
    pub fn new(shared: Arc<WorkerMetrics>, now: Instant) -> LoopMeter {
        LoopMeter {
            shared,
            stats: LoopStats::default(),
            busy_since: now,
            window_start: now,
            window_busy_ns: 0,
            gauges_at: None,
            gauges_stale: true,
            gauges_now: true,
        }
    }

    pub fn received(&mut self, p: Proto, datagrams: usize, bytes: usize) {
        let c = &mut self.stats.received[proto_index(p)];
        c.0 += datagrams as u64;
        c.1 += bytes as u64;
        self.gauges_stale = true;
    }

    pub fn sent(&mut self, p: Proto, bytes: usize) {
        let c = &mut self.stats.sent[proto_index(p)];
        c.0 += 1;
        c.1 += bytes as u64;
    }

    /// An input batch read at `read_at` has been handled and its output sent.
    pub fn batch_done(&mut self, read_at: Instant) {
        self.stats.record_latency(read_at.elapsed());
    }

    /// Packets for another worker's consumers were dropped (its inbox was full).
    pub fn cross_dropped(&mut self, n: usize) {
        self.stats.cross_dropped += n as u64;
    }

    /// A command ran (rooms, peers, transports may have changed).
    pub fn command(&mut self) {
        self.gauges_now = true;
        self.gauges_stale = true;
    }

    /// Deadlines were handled (transports may have changed state).
    pub fn timers(&mut self) {
        self.gauges_stale = true;
    }

    /// How long the loop may wait: no longer than until stale gauges are due.
    pub fn cap_wait(&self, now: Instant, wait: Duration) -> Duration {
        match (self.gauges_stale, self.gauges_at) {
            (true, Some(at)) => wait.min((at + GAUGE_PERIOD).saturating_duration_since(now)),
            (true, None) => Duration::ZERO,
            (false, _) => wait,
        }
    }

    /// Publish, right before waiting: the counters always, the gauges when due
    /// (`gauges` runs only then).
    pub fn publish(&mut self, now: Instant, core: &Counters, gauges: impl FnOnce() -> Gauges) {
        self.stats.busy_ns += now.saturating_duration_since(self.busy_since).as_nanos() as u64;
        self.busy_since = now;
        let span = now.saturating_duration_since(self.window_start);
        if span >= RATIO_WINDOW {
            let busy = self.stats.busy_ns - self.window_busy_ns;
            self.stats.busy_ratio = (busy as f64 / span.as_nanos() as f64).clamp(0.0, 1.0);
            self.window_start = now;
            self.window_busy_ns = self.stats.busy_ns;
        }
        let due = self.gauges_now
            || (self.gauges_stale && self.gauges_at.is_none_or(|t| now.saturating_duration_since(t) >= GAUGE_PERIOD));
        if due {
            store(&self.shared.gauges, &gauges().to_array());
            self.gauges_at = Some(now);
            self.gauges_now = false;
            self.gauges_stale = false;
        }
        store(&self.shared.core, &core.0);
        store(&self.shared.meter, &self.stats.to_array());
    }

    /// The wait that followed `publish` ended.
    pub fn woke(&mut self, now: Instant) {
        self.stats.idle_ns += now.saturating_duration_since(self.busy_since).as_nanos() as u64;
        self.busy_since = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_figures_round_trip_through_the_atomics() {
        let shared = Arc::new(WorkerMetrics::default());
        let t0 = Instant::now();
        let mut m = LoopMeter::new(shared.clone(), t0);
        m.received(Proto::Udp, 3, 300);
        m.sent(Proto::Udp, 120);
        m.sent(Proto::Tcp, 7);
        m.stats.record_latency(Duration::from_micros(70));
        m.stats.record_latency(Duration::from_secs(2));
        let mut c = Counters::default();
        c[Ctr::RtpPacketsSent] = 42;
        let mut g = Gauges { rooms: 2, peers: 5, producers: 1, consumers: 4, ..Default::default() };
        g.add_transport(Some(Proto::Udp), TransportState::Connected);
        g.add_transport(Some(Proto::Tcp), TransportState::Connecting);
        g.add_transport(None, TransportState::New);
        m.publish(t0 + Duration::from_millis(10), &c, || g);
        let s = shared.snapshot();
        assert_eq!(s.core, c);
        assert_eq!(s.gauges, g);
        assert_eq!(s.meter.received(Proto::Udp), (3, 300));
        assert_eq!(s.meter.sent(Proto::Udp), (1, 120));
        assert_eq!(s.meter.sent(Proto::Tcp), (1, 7));
        assert_eq!(s.meter.latency[1], 1, "70 µs falls in the 100 µs bucket");
        assert_eq!(s.meter.latency[BUCKETS - 1], 1, "2 s is above the last bound");
        assert_eq!(s.meter.latency_sum_ns, 2_000_070_000);
        assert_eq!(s.meter.busy_ns, 10_000_000);
    }

    #[test]
    fn busy_and_idle_add_up_to_the_elapsed_time_and_give_the_ratio() {
        let shared = Arc::new(WorkerMetrics::default());
        let t0 = Instant::now();
        let mut m = LoopMeter::new(shared.clone(), t0);
        let ms = Duration::from_millis;
        // 4 iterations of 100 ms busy + 300 ms waiting: 1.6 s, a quarter busy.
        let mut t = t0;
        for _ in 0..4 {
            t += ms(100);
            m.publish(t, &Counters::default(), Gauges::default);
            t += ms(300);
            m.woke(t);
        }
        t += ms(1);
        m.publish(t, &Counters::default(), Gauges::default);
        let s = shared.snapshot().meter;
        assert_eq!(s.busy_ns + s.idle_ns, (t - t0).as_nanos() as u64);
        assert_eq!(s.idle_ns, 1_200_000_000);
        // The window closed at the first publication at least 1 s after t0 (1.3 s).
        assert!((s.busy_ratio - 400.0 / 1300.0).abs() < 1e-9, "{}", s.busy_ratio);
    }

    #[test]
    fn gauges_are_refreshed_after_a_command_and_at_most_every_period_otherwise() {
        let shared = Arc::new(WorkerMetrics::default());
        let t0 = Instant::now();
        let mut m = LoopMeter::new(shared.clone(), t0);
        let mut walks = 0;
        let mut publish = |m: &mut LoopMeter, at: Instant| {
            m.publish(at, &Counters::default(), || {
                walks += 1;
                Gauges::default()
            })
        };
        publish(&mut m, t0);
        assert_eq!(m.cap_wait(t0, Duration::from_secs(1)), Duration::from_secs(1), "nothing stale: wait freely");
        m.received(Proto::Udp, 1, 10);
        let t1 = t0 + Duration::from_millis(30);
        publish(&mut m, t1);
        assert_eq!(m.cap_wait(t1, Duration::from_secs(1)), Duration::from_millis(70), "stale gauges bound the wait");
        m.command();
        publish(&mut m, t1);
        let t2 = t1 + Duration::from_millis(150);
        m.timers();
        publish(&mut m, t2);
        drop(publish);
        assert_eq!(walks, 3, "first publication, after the command, after the period");
    }
}
