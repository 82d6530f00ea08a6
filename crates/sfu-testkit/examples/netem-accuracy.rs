//! Measures how precisely the impairment proxy reproduces a delay and a rate limit, and prints
//! the figures (no assertion: run it on a quiet machine).
//!
//! `cargo run --release -p sfu-testkit --example netem-accuracy`
//!
//! A UDP echo server on 127.0.0.1 behind the proxy on 127.0.0.2; a client sends timestamped
//! datagrams and times the echoes.
//! - delay: 500 datagrams at 100/s, 50 ms up and 0 down; the round trip minus the median round
//!   trip of the same run through a clean proxy is the delay as released.
//! - rate: 1200-byte datagrams offered at twice the limit (1 Mbit/s and 400 kbit/s, 200 ms
//!   queue) for 5 s; the delivered rate is measured at the client between first and last echo.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sfu_testkit::netem::{LinkConfig, Netem, NetemConfig};

/// Echoes datagrams until `stop` is set.
fn echo(stop: Arc<AtomicBool>) -> (SocketAddr, thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let addr = sock.local_addr().unwrap();
    let t = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    });
    (addr, t)
}

/// Sends `n` datagrams of `size` bytes at `pps`; returns (arrival s, round trip ms) per echo.
fn probe(target: SocketAddr, n: usize, size: usize, pps: f64) -> Vec<(f64, f64)> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let rx = sock.try_clone().unwrap();
    let base = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let receiver = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let mut last = Instant::now();
        loop {
            match rx.recv(&mut buf) {
                Ok(len) if len >= 8 => {
                    last = Instant::now();
                    let sent = u64::from_le_bytes(buf[0..8].try_into().unwrap()) as f64 / 1e9;
                    let at = base.elapsed().as_secs_f64();
                    got.push((at, (at - sent) * 1e3));
                }
                _ if d.load(Ordering::Acquire) && last.elapsed() > Duration::from_millis(500) => break,
                _ => {}
            }
        }
        got
    });
    let mut payload = vec![0u8; size];
    let mut sent = 0;
    while sent < n {
        let due = ((base.elapsed().as_secs_f64() * pps) as usize + 1).min(n);
        while sent < due {
            payload[0..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
            sock.send_to(&payload, target).unwrap();
            sent += 1;
        }
        thread::sleep(Duration::from_micros(200));
    }
    done.store(true, Ordering::Release);
    receiver.join().unwrap()
}

fn pct(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[((xs.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let stop = Arc::new(AtomicBool::new(false));
    let (upstream, echo_thread) = echo(stop.clone());
    let start = |up: LinkConfig| {
        Netem::start(NetemConfig { upstream_udp: Some(upstream), up, ..Default::default() }).unwrap()
    };

    let clean = start(LinkConfig::default());
    let base: Vec<f64> = probe(clean.udp_addr().unwrap(), 500, 200, 100.0).into_iter().map(|r| r.1).collect();
    clean.stop();
    let base_med = pct(base.clone(), 0.5);
    println!("clean proxy round trip: median {:.3} ms, p99 {:.3} ms", base_med, pct(base, 0.99));

    let delayed = start(LinkConfig { delay: Duration::from_millis(50), ..Default::default() });
    let rtt: Vec<f64> = probe(delayed.udp_addr().unwrap(), 500, 200, 100.0).into_iter().map(|r| r.1).collect();
    let late = delayed.counters().up.released_late;
    delayed.stop();
    let err: Vec<f64> = rtt.iter().map(|r| r - base_med - 50.0).collect();
    println!(
        "delay 50 ms ({} samples): round trip min {:.3} median {:.3} p99 {:.3} max {:.3} ms; \
         released delay - 50 ms: median {:+.3} ms, p99 {:+.3} ms, max {:+.3} ms; \
         released >1 ms late by the relay: {late}",
        rtt.len(),
        pct(rtt.clone(), 0.0),
        pct(rtt.clone(), 0.5),
        pct(rtt.clone(), 0.99),
        pct(rtt, 1.0),
        pct(err.clone(), 0.5),
        pct(err.clone(), 0.99),
        pct(err, 1.0)
    );

    for rate in [1_000_000u64, 400_000] {
        let limited = start(LinkConfig { rate_bps: Some(rate), queue: Some(Duration::from_millis(200)), ..Default::default() });
        let pps = 2.0 * rate as f64 / 9600.0;
        let rx = probe(limited.udp_addr().unwrap(), (pps * 5.0) as usize, 1200, pps);
        let c = limited.counters();
        limited.stop();
        let span = rx.last().unwrap().0 - rx[0].0;
        let bps = (rx.len() - 1) as f64 * 9600.0 / span;
        let max_q = pct(rx.iter().map(|r| r.1).collect(), 1.0);
        println!(
            "rate {} kbit/s offered {} kbit/s for 5 s: delivered {:.1} kbit/s ({:+.2} %), {} delivered, \
             {} dropped by the queue, max round trip {:.1} ms",
            rate / 1000,
            2 * rate / 1000,
            bps / 1e3,
            (bps / rate as f64 - 1.0) * 100.0,
            c.up.delivered,
            c.up.dropped_queue,
            max_q
        );
    }
    stop.store(true, Ordering::Relaxed);
    echo_thread.join().unwrap();
}
