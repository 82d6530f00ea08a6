//! The metric families of a server: names, help texts, and how the workers' figures
//! combine (summed over workers, or one series per worker). The README's "Metrics"
//! section lists the same names.

use super::expo::{Expo, Kind, Value};
use super::{Ctr, TransportState, WorkerSnapshot, LATENCY_BOUNDS, PROTOCOLS};
use crate::output::Proto;

/// What the server adds to its workers' figures.
#[derive(Debug, Clone, Default)]
pub struct ServerFigures {
    pub version: &'static str,
    /// Log records dropped because the callback queue held its maximum.
    pub log_records_dropped: u64,
    /// Messages (events and log records) waiting for the notifier thread.
    pub notifier_queue: u64,
    /// Datagrams the kernel dropped per worker socket (receive queue full); `None`
    /// where the kernel does not say (no `/proc`).
    pub socket_drops: Option<Vec<u64>>,
}

fn secs(ns: u64) -> Value {
    Value::Float(ns as f64 / 1e9)
}

/// The whole exposition text.
pub fn render(workers: &[WorkerSnapshot], srv: &ServerFigures) -> String {
    let mut e = Expo::default();
    let sum = |f: &dyn Fn(&WorkerSnapshot) -> u64| -> Value { Value::Int(workers.iter().map(f).sum()) };
    let one = |v: Value| -> Vec<(&[(&str, &str)], Value)> { vec![(&[], v)] };

    e.simple("sfu_build_info", Kind::Gauge, "Always 1; the library version as a label.", &[(&[("version", srv.version)], Value::Int(1))]);
    e.simple("sfu_workers", Kind::Gauge, "Worker threads (each owns its rooms and one UDP socket).", &one(Value::Int(workers.len() as u64)));

    // Gauges, refreshed by each worker after a command and otherwise at most every
    // 100 ms while it is active.
    e.simple("sfu_rooms", Kind::Gauge, "Open rooms.", &one(sum(&|w| w.gauges.rooms)));
    e.simple("sfu_peers", Kind::Gauge, "Joined peers, over all rooms.", &one(sum(&|w| w.gauges.peers)));
    e.simple("sfu_producers", Kind::Gauge, "Producers (media a peer sends), over all rooms.", &one(sum(&|w| w.gauges.producers)));
    e.simple("sfu_consumers", Kind::Gauge, "Consumers (media a peer receives), over all rooms.", &one(sum(&|w| w.gauges.consumers)));
    e.family(
        "sfu_transports",
        Kind::Gauge,
        "WebRTC transports by protocol and state. protocol: that of the selected (or last validated) ICE pair, none before any authenticated ICE check. state: new (no authenticated ICE check yet), connecting (an authenticated ICE check arrived, DTLS not done), connected (ICE and DTLS up), failed (dead, being closed).",
    );
    let protocols: Vec<(Option<Proto>, &str)> =
        PROTOCOLS.iter().map(|p| (Some(*p), p.as_str())).chain(std::iter::once((None, "none"))).collect();
    for (p, label) in protocols {
        for s in TransportState::ALL {
            let v = sum(&|w| w.gauges.transports(p, s));
            e.sample("sfu_transports", &[("protocol", label), ("state", s.label())], v);
        }
    }

    // Traffic at the sockets (the worker loop's counts).
    let per_proto = |f: &dyn Fn(&WorkerSnapshot, Proto) -> u64| -> Vec<(String, Value)> {
        PROTOCOLS.iter().map(|p| (p.as_str().to_string(), Value::Int(workers.iter().map(|w| f(w, *p)).sum()))).collect()
    };
    let proto_family = |e: &mut Expo, name: &str, help: &str, vals: Vec<(String, Value)>| {
        e.family(name, Kind::Counter, help);
        for (p, v) in vals {
            e.sample(name, &[("protocol", &p)], v);
        }
    };
    proto_family(&mut e, "sfu_datagrams_received_total", "Datagrams read from the workers' sockets (STUN, DTLS, SRTP, anything); over TCP, RFC 4571 frames.", per_proto(&|w, p| w.meter.received(p).0));
    proto_family(&mut e, "sfu_received_bytes_total", "Bytes of the datagrams (TCP: frames, without their length prefix) read from the workers' sockets.", per_proto(&|w, p| w.meter.received(p).1));
    proto_family(&mut e, "sfu_datagrams_sent_total", "Datagrams (TCP: frames) handed to the kernel by the workers (TCP: queued on the connection).", per_proto(&|w, p| w.meter.sent(p).0));
    proto_family(&mut e, "sfu_sent_bytes_total", "Bytes of the datagrams (TCP: frames, without their length prefix) sent by the workers.", per_proto(&|w, p| w.meter.sent(p).1));
    e.family(
        "sfu_datagrams_dropped_total",
        Kind::Counter,
        "Datagrams (TCP: frames) dropped, by reason: unknown_source (not a verified ICE binding request for a live transport, nor from an address one validated: not routed; a TCP connection is closed after it); socket_queue_overflow (the kernel dropped it because the worker's UDP socket receive queue was full; Linux only).",
    );
    for p in PROTOCOLS {
        let unknown = sum(&|w| w.core[Ctr::dropped_unknown_source(p)]);
        e.sample("sfu_datagrams_dropped_total", &[("protocol", p.as_str()), ("reason", "unknown_source")], unknown);
    }
    if let Some(d) = &srv.socket_drops {
        e.sample("sfu_datagrams_dropped_total", &[("protocol", "udp"), ("reason", "socket_queue_overflow")], d.iter().sum::<u64>());
    }

    // Media (the core's counts).
    let c = |ctr: Ctr| sum(&move |w| w.core[ctr]);
    e.simple("sfu_rtp_packets_received_total", Kind::Counter, "RTP packets received from producers (after SRTP; retransmissions unwrapped from RTX).", &one(c(Ctr::RtpPacketsReceived)));
    e.simple("sfu_rtp_payload_bytes_received_total", Kind::Counter, "Payload bytes of those RTP packets (headers not included).", &one(c(Ctr::RtpPayloadBytesReceived)));
    e.simple("sfu_rtp_packets_sent_total", Kind::Counter, "RTP packets forwarded to consumers (retransmissions not included).", &one(c(Ctr::RtpPacketsSent)));
    e.simple("sfu_rtp_payload_bytes_sent_total", Kind::Counter, "Payload bytes of those RTP packets (headers not included).", &one(c(Ctr::RtpPayloadBytesSent)));
    e.simple("sfu_rtp_retransmissions_total", Kind::Counter, "RTP packets resent to consumers on their RTX stream, answering NACKs.", &one(c(Ctr::RtpRetransmissions)));
    let fb = |e: &mut Expo, name: &str, help: &str, nack: Ctr, pli: Ctr, fir: Ctr| {
        e.simple(name, Kind::Counter, help, &[(&[("type", "nack")], c(nack)), (&[("type", "pli")], c(pli)), (&[("type", "fir")], c(fir))]);
    };
    fb(&mut e, "sfu_rtcp_feedback_received_total", "RTCP feedback messages received from consumers' browsers, by type (from str0m's stream statistics: up to 1 s late).", Ctr::NacksReceived, Ctr::PlisReceived, Ctr::FirsReceived);
    fb(&mut e, "sfu_rtcp_feedback_sent_total", "RTCP feedback messages sent to producers' browsers, by type (from str0m's stream statistics: up to 1 s late).", Ctr::NacksSent, Ctr::PlisSent, Ctr::FirsSent);

    // The worker loops.
    let ids: Vec<String> = (0..workers.len()).map(|i| i.to_string()).collect();
    e.family("sfu_worker_busy_seconds_total", Kind::Counter, "Time a worker spent handling input, timers and output (everything but waiting in poll).");
    for (w, id) in workers.iter().zip(&ids) {
        e.sample("sfu_worker_busy_seconds_total", &[("worker", id)], secs(w.meter.busy_ns));
    }
    e.family("sfu_worker_idle_seconds_total", Kind::Counter, "Time a worker spent waiting in poll for a datagram, a command or its next deadline.");
    for (w, id) in workers.iter().zip(&ids) {
        e.sample("sfu_worker_idle_seconds_total", &[("worker", id)], secs(w.meter.idle_ns));
    }
    e.family("sfu_worker_busy_ratio", Kind::Gauge, "Share of the worker's last window of about one second spent busy (0 to 1).");
    for (w, id) in workers.iter().zip(&ids) {
        e.sample("sfu_worker_busy_ratio", &[("worker", id)], Value::Float(w.meter.busy_ratio));
    }
    e.family(
        "sfu_worker_batch_latency_seconds",
        Kind::Histogram,
        "Per batch of datagrams read by one recvmmsg (up to 32): time from the moment the batch was read from the socket to the moment every datagram its handling produced had been handed to the kernel. Time spent queued in the socket before the read is not included.",
    );
    for (w, id) in workers.iter().zip(&ids) {
        e.histogram("sfu_worker_batch_latency_seconds", &[("worker", id)], &LATENCY_BOUNDS, &w.meter.latency, w.meter.latency_sum_ns as f64 / 1e9);
    }

    e.family("sfu_worker_handoff_dropped_total", Kind::Counter, "Packets this worker did not hand to consumers on another worker because that worker's inbox held 4096 messages (it could not keep up).");
    for (w, id) in workers.iter().zip(&ids) {
        e.sample("sfu_worker_handoff_dropped_total", &[("worker", id)], Value::Int(w.meter.cross_dropped));
    }
    e.simple("sfu_log_records_dropped_total", Kind::Counter, "Log records dropped because 1024 were already waiting for the notifier thread.", &one(Value::Int(srv.log_records_dropped)));
    e.simple("sfu_notifier_queue_messages", Kind::Gauge, "Events and log records waiting for the notifier thread (a slow host callback makes it grow).", &one(Value::Int(srv.notifier_queue)));
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Counters, Gauges, LoopStats, BUCKETS};
    use std::collections::{HashMap, HashSet};

    fn worker(seed: u64) -> WorkerSnapshot {
        let mut core = Counters::default();
        for (i, v) in core.0.iter_mut().enumerate() {
            *v = seed * 100 + i as u64;
        }
        let mut g = Gauges { rooms: seed, peers: 2 * seed, producers: 3 * seed, consumers: 4 * seed, ..Default::default() };
        g.add_transport(Some(Proto::Udp), TransportState::Connected);
        g.add_transport(None, TransportState::New);
        let mut meter = LoopStats { busy_ns: 1_500_000_000 * seed, idle_ns: 500_000_000, busy_ratio: 0.25, ..Default::default() };
        meter.received[0] = (10 * seed, 1000 * seed);
        meter.sent[0] = (20 * seed, 2000 * seed);
        meter.latency[0] = 3;
        meter.latency[BUCKETS - 1] = 1;
        meter.latency_sum_ns = 400_000_000;
        WorkerSnapshot { core, gauges: g, meter }
    }

    /// Every line is a comment or `name{labels} value`; returns (name, labels) -> value.
    fn samples(text: &str) -> HashMap<(String, String), String> {
        let mut out = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect(line);
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n.to_string(), l.trim_end_matches('}').to_string()),
                None => (series.to_string(), String::new()),
            };
            assert!(crate::metrics::expo::valid_name(&name), "{line}");
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
            assert!(out.insert((name, labels), value.to_string()).is_none(), "duplicate series: {line}");
        }
        out
    }

    #[test]
    fn every_family_is_declared_once_before_its_samples_and_sums_over_workers() {
        let srv = ServerFigures { version: "9.9.9", log_records_dropped: 4, notifier_queue: 2, socket_drops: Some(vec![5, 6]) };
        let text = render(&[worker(1), worker(2)], &srv);
        let mut declared = HashSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(declared.insert(name.to_string()), "{name} declared twice");
                assert!(["counter", "gauge", "histogram"].contains(&kind));
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{name}");
                }
                assert!(name.starts_with("sfu_"), "{name}");
                current = name.to_string();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&current), "{line} outside its family {current}");
            }
        }
        let s = samples(&text);
        let get = |n: &str, l: &str| s.get(&(n.to_string(), l.to_string())).unwrap_or_else(|| panic!("{n}{{{l}}} in\n{text}")).as_str();
        assert_eq!(get("sfu_build_info", "version=\"9.9.9\""), "1");
        assert_eq!(get("sfu_workers", ""), "2");
        assert_eq!(get("sfu_rooms", ""), "3");
        assert_eq!(get("sfu_consumers", ""), "12");
        assert_eq!(get("sfu_transports", "protocol=\"udp\",state=\"connected\""), "2");
        assert_eq!(get("sfu_transports", "protocol=\"udp\",state=\"new\""), "0");
        assert_eq!(get("sfu_transports", "protocol=\"none\",state=\"new\""), "2");
        assert_eq!(get("sfu_transports", "protocol=\"tcp\",state=\"connected\""), "0");
        assert_eq!(get("sfu_datagrams_received_total", "protocol=\"udp\""), "30");
        assert_eq!(get("sfu_sent_bytes_total", "protocol=\"udp\""), "6000");
        let unknown = Ctr::UdpDroppedUnknownSource as u64;
        assert_eq!(get("sfu_datagrams_dropped_total", "protocol=\"udp\",reason=\"unknown_source\""), (300 + 2 * unknown).to_string());
        assert_eq!(get("sfu_datagrams_dropped_total", "protocol=\"udp\",reason=\"socket_queue_overflow\""), "11");
        let rtx = Ctr::RtpRetransmissions as u64;
        assert_eq!(get("sfu_rtp_retransmissions_total", ""), (300 + 2 * rtx).to_string());
        let pli = Ctr::PlisSent as u64;
        assert_eq!(get("sfu_rtcp_feedback_sent_total", "type=\"pli\""), (300 + 2 * pli).to_string());
        assert_eq!(get("sfu_worker_busy_seconds_total", "worker=\"1\""), "3");
        assert_eq!(get("sfu_worker_idle_seconds_total", "worker=\"0\""), "0.5");
        assert_eq!(get("sfu_worker_busy_ratio", "worker=\"0\""), "0.25");
        assert_eq!(get("sfu_worker_batch_latency_seconds_bucket", "worker=\"0\",le=\"0.00005\""), "3");
        assert_eq!(get("sfu_worker_batch_latency_seconds_bucket", "worker=\"0\",le=\"0.25\""), "3");
        assert_eq!(get("sfu_worker_batch_latency_seconds_bucket", "worker=\"0\",le=\"+Inf\""), "4");
        assert_eq!(get("sfu_worker_batch_latency_seconds_count", "worker=\"1\""), "4");
        assert_eq!(get("sfu_worker_batch_latency_seconds_sum", "worker=\"1\""), "0.4");
        assert_eq!(get("sfu_log_records_dropped_total", ""), "4");
        assert_eq!(get("sfu_notifier_queue_messages", ""), "2");
    }

    #[test]
    fn without_kernel_figures_the_overflow_series_is_left_out() {
        let text = render(&[worker(1)], &ServerFigures { version: "0", ..Default::default() });
        assert!(text.contains("reason=\"unknown_source\""));
        assert!(!text.contains("socket_queue_overflow\"}"), "{text}");
    }
}
