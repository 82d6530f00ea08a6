//! Per-worker figures of one measurement window: each `sfu-worker-N` thread's CPU
//! and run-queue wait (from /proc, see sys.rs), what the library's own metrics
//! (`Server::metrics()`) say about the worker loop (busy time, the busy-ratio gauge,
//! packets dropped at the hand-off to another worker), its socket's drops, and how
//! many of the room's receive transports it runs.
//!
//! Where a receive transport's engine runs is read from the `createTransport` answer:
//! its ICE candidates are the sockets of the worker the engine was placed on
//! (docs/ARCHITECTURE.md, "A room on several workers"), one UDP port per worker
//! (`Server::ports()`).

use serde_json::{json, Value};

/// What `Server::metrics()` reports per worker, read at one instant.
#[derive(Debug, Clone, Default)]
pub struct LoopSample {
    /// `sfu_worker_busy_seconds_total{worker}`.
    pub busy_s: f64,
    /// `sfu_worker_busy_ratio{worker}` (the library's last ~1 s window).
    pub busy_ratio: f64,
    /// `sfu_worker_handoff_dropped_total{worker}`.
    pub handoff_dropped: u64,
}

/// Per worker, from the Prometheus text of `Server::metrics()`.
pub fn parse_metrics(text: &str, workers: usize) -> Vec<LoopSample> {
    let mut v = vec![LoopSample::default(); workers];
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name_labels, val)) = line.rsplit_once(' ') else { continue };
        let Some((name, labels)) = name_labels.split_once('{') else { continue };
        let Some(w) = labels
            .split(',')
            .find_map(|l| l.strip_prefix("worker=\""))
            .and_then(|r| r.trim_end_matches('}').trim_end_matches('"').parse::<usize>().ok())
        else {
            continue;
        };
        let Some(slot) = v.get_mut(w) else { continue };
        let x: f64 = val.parse().unwrap_or(0.0);
        match name {
            "sfu_worker_busy_seconds_total" => slot.busy_s = x,
            "sfu_worker_busy_ratio" => slot.busy_ratio = x,
            "sfu_worker_handoff_dropped_total" => slot.handoff_dropped = x as u64,
            _ => {}
        }
    }
    v
}

/// One worker over one measurement window.
#[derive(Debug, Clone, Default)]
pub struct WorkerStep {
    /// CPU time of its thread (s).
    pub cpu_s: f64,
    /// Time its thread was runnable but waited for a CPU (s).
    pub wait_s: f64,
    /// Busy time by the library's own loop meter (s).
    pub busy_s: f64,
    /// The library's busy-ratio gauge at the end of the window.
    pub busy_ratio_gauge: f64,
    pub handoff_dropped: u64,
    pub udp_drops: u64,
    /// Receive transports of the room whose engine runs on this worker.
    pub recv_transports: usize,
    /// Send transports (producers' side): they stay on the room's home worker.
    pub send_transports: usize,
}

impl WorkerStep {
    pub fn json(&self, secs: f64) -> Value {
        json!({
            "cpu_s": self.cpu_s, "cpu_utilisation": self.cpu_s / secs,
            "runqueue_wait_s": self.wait_s, "runqueue_wait_share": self.wait_s / secs,
            "busy_s": self.busy_s, "busy_share": self.busy_s / secs,
            "busy_ratio_gauge": self.busy_ratio_gauge,
            "handoff_dropped": self.handoff_dropped, "udp_drops": self.udp_drops,
            "recv_transports": self.recv_transports, "send_transports": self.send_transports,
        })
    }
}

/// Index of the worker whose UDP port the answer's first candidate names.
pub fn worker_of(candidates: &[std::net::SocketAddr], ports: &[u16]) -> Option<usize> {
    candidates.iter().find_map(|a| ports.iter().position(|p| *p == a.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_per_worker_series() {
        let t = "# HELP x\nsfu_worker_busy_seconds_total{worker=\"0\"} 1.5\nsfu_worker_busy_seconds_total{worker=\"1\"} 2\n\
                 sfu_worker_busy_ratio{worker=\"1\"} 0.25\nsfu_worker_handoff_dropped_total{worker=\"0\"} 7\nsfu_rooms 1\n";
        let v = parse_metrics(t, 2);
        assert_eq!(v[0].busy_s, 1.5);
        assert_eq!(v[1].busy_s, 2.0);
        assert_eq!(v[1].busy_ratio, 0.25);
        assert_eq!(v[0].handoff_dropped, 7);
    }
}
