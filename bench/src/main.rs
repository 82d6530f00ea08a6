//! `sfu-load`: a load generator and forwarding benchmark for the `sfu` library.
//!
//! The SFU runs in this process through its public Rust API (`sfu::Server`); the
//! generator plays mediasoup-client peers (signalling through the same API, media
//! over loopback UDP with str0m: full ICE, DTLS, SRTP). CPU time is taken per thread
//! from /proc, so the SFU's threads (`sfu-worker-N`, `sfu-notifier`) are measured
//! apart from the generator's. See bench/README-perf.md.
//!
//! ```text
//! sfu-load run --scenario smoke|fanout|meeting|audio|churn [--workers N] [--out FILE.json] [options]
//! sfu-load run --half-knee RAMP.json[,RAMP2.json...] [--out FILE.json] [options]
//! sfu-load report --out-dir DIR FILE.json...
//! ```
//!
//! The SFU runs with `numWorkers` N (`--workers`, default 1) and the library's default
//! `spreadRooms`, so with N > 1 the room's receive transports are spread over every
//! worker; bandwidth estimation is off (`enableBwe: false`, see `default_config`).

mod alloc;
mod bare;
mod hist;
mod media;
mod report;
mod signal;
mod sys;
mod workers;

#[global_allocator]
static ALLOC: alloc::Tracking = alloc::Tracking;

use std::collections::HashMap;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use str0m::config::DtlsCert;

use media::{Client, Kind, MediaHandle, PubStream, PublishSpec, Shared, StreamSpec};
use sfu_testkit::peer::{self, CodecSpec, TransportParams};
use sfu_testkit::builders::{client_caps, producer_params, CHROME_AUDIO_EXTS, CHROME_VIDEO_EXTS};
use signal::Signal;

const ROOM: &str = "bench";

#[derive(Debug, Clone)]
struct Opts {
    scenario: String,
    out: Option<String>,
    steps: Option<Vec<usize>>,
    measure: Duration,
    bare_secs: Duration,
    budget: Duration,
    speakers: usize,
    cycles: usize,
    churn_peers: usize,
    loss_limit: f64,
    no_bare: bool,
    workers: usize,
    /// Which repetition of the benchmark this run is (`--round`, for the report).
    round: u64,
    /// A ramp's result file: measure one step at half its knee (see `half_knee_step`).
    half_knee: Option<String>,
    sfu_config: Option<String>,
}

/// The SFU configuration of a run with `workers` workers. `enableBwe` is off: the
/// generator's consumers hand str0m only one packet in 64 (the rest are counted from
/// the clear RTP header), so their transport-cc feedback and receiver reports would
/// describe a lossy link, and the per-transport estimator (starting at 600 kbit/s,
/// pacing at 1.1x its estimate) would hold video back; with it on, a 1 -> 5 fan-out
/// shows 8 % loss and 1.2 s of queueing. `spreadRooms` is the library's default (true).
fn default_config(workers: usize) -> String {
    format!(r#"{{"numWorkers":{workers},"rtcIPv4":"127.0.0.1","logLevel":"warn","maxPeersPerRoom":10000,"enableBwe":false}}"#)
}

fn usage() -> ! {
    eprintln!(
        "usage:\n  sfu-load run --scenario smoke|fanout|meeting|audio|churn [--workers N] [--out FILE.json] [--steps 10,100,...]\n\
         \x20          [--measure SECS] [--bare SECS] [--budget SECS] [--speakers N] [--cycles N] [--churn-peers N]\n\
         \x20          [--loss-limit PCT] [--no-bare] [--sfu-config JSON] [--round K]\n  sfu-load run --half-knee RAMP.json[,RAMP2.json...] [options]\n  sfu-load report --out-dir DIR FILE.json..."
    );
    std::process::exit(2)
}

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {
            let mut o = parse_run(&args[1..]);
            if let Some(f) = o.half_knee.clone() {
                match half_knee_step(&f) {
                    Ok((scen, workers, step, knee)) => {
                        println!("half the knee of {f}: {scen} at {workers} worker(s), knee {knee} -> step {step}");
                        o.scenario = scen;
                        o.workers = workers;
                        o.steps = Some(vec![step]);
                    }
                    Err(e) => {
                        // Nothing to measure (no step was under the loss limit): not a failure of this run.
                        println!("half the knee of {f}: {e}; skipped");
                        std::process::exit(0);
                    }
                }
            }
            let ok = run(&o);
            std::process::exit(if ok { 0 } else { 1 });
        }
        Some("bare") => {
            // sfu-load bare FANOUT SECS [sendto]: the bare data path alone (1 publisher).
            let fanout: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(300);
            let secs: f64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(5.0);
            let sendto = args.get(3).is_some_and(|v| v == "sendto");
            let b = bare::run_with(1, fanout, false, Duration::from_secs_f64(secs), sendto);
            println!("bare fanout {fanout} {}: {:.3} us per out packet ({} out, {} sink)", if sendto { "sendto" } else { "sendmmsg" }, b.ns_per_out / 1000.0, b.out_pkts, b.sink_pkts);
        }
        Some("report") => {
            let mut out_dir = "bench/results".to_string();
            let mut files = Vec::new();
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                if a == "--out-dir" {
                    out_dir = it.next().cloned().unwrap_or_else(|| usage());
                } else {
                    files.push(a.clone());
                }
            }
            if let Err(e) = report::report(&files, &out_dir) {
                eprintln!("report: {e}");
                std::process::exit(1);
            }
        }
        _ => usage(),
    }
}

fn parse_run(a: &[String]) -> Opts {
    let mut o = Opts {
        scenario: "smoke".into(),
        out: None,
        steps: None,
        measure: Duration::from_secs(3),
        bare_secs: Duration::from_millis(1500),
        budget: Duration::from_secs(120),
        speakers: 3,
        cycles: 10,
        churn_peers: 100,
        loss_limit: 1.0,
        no_bare: false,
        workers: 1,
        round: 1,
        half_knee: None,
        sfu_config: None,
    };
    let mut it = a.iter();
    let secs = |v: Option<&String>| Duration::from_secs_f64(v.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()));
    while let Some(k) = it.next() {
        match k.as_str() {
            "--scenario" => o.scenario = it.next().cloned().unwrap_or_else(|| usage()),
            "--out" => o.out = it.next().cloned(),
            "--steps" => {
                o.steps = Some(it.next().unwrap_or_else(|| usage()).split(',').map(|s| s.trim().parse().unwrap_or_else(|_| usage())).collect())
            }
            "--measure" => o.measure = secs(it.next()),
            "--bare" => o.bare_secs = secs(it.next()),
            "--budget" => o.budget = secs(it.next()),
            "--speakers" => o.speakers = it.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "--cycles" => o.cycles = it.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "--churn-peers" => o.churn_peers = it.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "--loss-limit" => o.loss_limit = it.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "--no-bare" => o.no_bare = true,
            "--sfu-config" => o.sfu_config = Some(it.next().cloned().unwrap_or_else(|| usage())),
            "--workers" => o.workers = it.next().and_then(|s| s.parse().ok()).filter(|n| *n >= 1).unwrap_or_else(|| usage()),
"--round" => o.round = it.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "--half-knee" => o.half_knee = Some(it.next().cloned().unwrap_or_else(|| usage())),
            _ => usage(),
        }
    }
    o
}

impl Opts {
    fn config(&self) -> String {
        self.sfu_config.clone().unwrap_or_else(|| default_config(self.workers))
    }
}

/// The step at half the knee of a ramp's result: (scenario, workers, step, knee).
/// Half the knee is half the forwarded packet rate of the last step under the loss
/// limit: half the consumers of a fan-out or audio room; in an N x N meeting (rate
/// ~ N(N-1)) the N whose rate is nearest half.
///
/// `files`: one ramp, or several (comma-separated) of the same scenario and worker
/// count (rounds): the one with the highest knee is used, as interference from other
/// work on the machine only ever lowers a knee.
fn half_knee_step(files: &str) -> Result<(String, usize, usize, usize), String> {
    let mut best: Option<Value> = None;
    for file in files.split(',') {
        let t = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let r: Value = serde_json::from_str(&t).map_err(|e| format!("{file}: {e}"))?;
        if best.as_ref().is_none_or(|b| report::knee_key(&r) > report::knee_key(b)) {
            best = Some(r);
        }
    }
    let r = best.ok_or("no ramp")?;
    let scen = r["scenario"].as_str().ok_or("no scenario")?.to_string();
    let workers = r["workers"].as_u64().unwrap_or(1) as usize;
    let k = r["knee"]["last_under"].as_u64().ok_or("no step under the loss limit")? as usize;
    let step = if scen == "meeting" {
        let want = (k * (k - 1)) as f64 / 2.0;
        (2..=k).min_by(|a, b| ((a * (a - 1)) as f64 - want).abs().total_cmp(&((b * (b - 1)) as f64 - want).abs())).unwrap_or(2)
    } else {
        (k / 2).max(1)
    };
    Ok((scen, workers, step, k))
}

fn raise_fd_limit() {
    // SAFETY: plain get/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

// ---------------------------------------------------------------- the generator

struct PeerRec {
    name: String,
    recv_tid: Option<usize>,
    send_tid: Option<usize>,
    /// Worker whose socket the receive / send transport's candidates name.
    recv_worker: Option<usize>,
    send_worker: Option<usize>,
    alive: bool,
    /// Consumer streams this peer receives.
    streams: usize,
}

struct Gen {
    sig: Signal,
    media: MediaHandle,
    shared: Arc<Shared>,
    cert: DtlsCert,
    room_caps: Value,
    room_codecs: Vec<CodecSpec>,
    room_exts: Vec<(u8, String)>,
    peers: Vec<PeerRec>,
    /// (publishing peer, kind) -> its stream table.
    sources: HashMap<(String, Kind), Arc<PubStream>>,
    pub_count: u32,
    next_ssrc: u32,
    next_id: u64,
    step: u16,
    join_to_media: Vec<Duration>,
    started: Instant,
}

fn kind_of(v: &Value) -> Kind {
    if v["kind"] == "audio" {
        Kind::Audio
    } else {
        Kind::Video
    }
}

impl Gen {
    fn new(sfu_config: &str) -> Gen {
        let shared = Arc::new(Shared { step: Default::default(), publishing: Default::default() });
        shared.publishing.store(true, SeqCst);
        let mut sig = Signal::new(sfu_config, ROOM);
        let q = sig.call("probe", json!({"method": "queryRoom", "target": "room"})).expect("queryRoom");
        let room_caps = q["rtpCapabilities"].clone();
        let room_codecs = CodecSpec::list_from_json(&room_caps);
        let room_exts = peer::ext_ids_from_json(&room_caps);
        let cert = str0m::crypto::from_feature_flags().dtls_provider.generate_certificate().expect("certificate");
        Gen {
            sig,
            media: MediaHandle::start(shared.clone()),
            shared,
            cert,
            room_caps,
            room_codecs,
            room_exts,
            peers: Vec::new(),
            sources: HashMap::new(),
            pub_count: 0,
            next_ssrc: 10_000,
            next_id: 1000,
            step: 0,
            join_to_media: Vec::new(),
            started: Instant::now(),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn join_req(&self, name: &str, spy: bool) -> Value {
        json!({"method": "join", "target": "room", "peerName": name, "rtpCapabilities": client_caps(&self.room_caps),
               "spy": spy, "appData": {}})
    }

    /// Join `names` (pipelined); returns per name the consumers from the join response.
    fn join_all(&mut self, names: &[String], spy: bool) -> Vec<(Instant, Vec<Value>)> {
        let mut ids = Vec::new();
        let mut at = Vec::new();
        for n in names {
            at.push(Instant::now());
            ids.push(self.sig.send(n, self.join_req(n, spy)));
        }
        let mut out = Vec::new();
        for (i, r) in self.sig.wait_all(&ids).into_iter().enumerate() {
            let r = r.unwrap_or_else(|e| panic!("join {}: {e}", names[i]));
            let mut cons = Vec::new();
            for p in r["peers"].as_array().cloned().unwrap_or_default() {
                for mut c in p["consumers"].as_array().cloned().unwrap_or_default() {
                    c["peerName"] = p["name"].clone();
                    cons.push(c);
                }
            }
            out.push((at[i], cons));
            self.peers.push(PeerRec { name: names[i].clone(), recv_tid: None, send_tid: None, recv_worker: None, send_worker: None, alive: true, streams: 0 });
        }
        out
    }

    fn peer_idx(&self, name: &str) -> usize {
        self.peers.iter().rposition(|p| p.name == name).expect("known peer")
    }

    /// Make an already joined peer a publisher (send transport + producers).
    fn publish(&mut self, name: &str, audio: bool, video: bool) {
        let exts: Vec<(u8, &str)> = CHROME_VIDEO_EXTS.iter().chain(CHROME_AUDIO_EXTS).copied().collect();
        let pi = self.peer_idx(name);
        let mut c = Client::new(true, &[CodecSpec::opus(111), CodecSpec::vp8(96, Some(97))], &exts, &self.cert, pi as u32, Instant::now());
        let resp = self
            .sig
            .call(name, json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "send", "options": {},
                               "dtlsParameters": c.dtls_parameters(), "appData": {}}))
            .expect("createTransport send");
        let tp = TransportParams::from_json(&resp).expect("transport params");
        self.peers[pi].send_worker = workers::worker_of(&tp.candidates, &self.sfu_ports());
        c.connect(&tp);
        let pub_idx = self.pub_count;
        self.pub_count += 1;
        let mut spec = PublishSpec { tid: 0, pub_idx, audio: None, video: None };
        let mut ids = Vec::new();
        if audio {
            let ssrc = self.next_ssrc;
            self.next_ssrc += 10;
            let id = self.id();
            ids.push(self.sig.send(name, json!({"method": "createProducer", "target": "peer", "id": id, "kind": "audio", "transportId": 1,
                "rtpParameters": producer_params("audio", "0", ssrc, None), "paused": false, "appData": {}})));
            c.add_send_stream("0", Kind::Audio, ssrc, None);
            let s = PubStream::new(Kind::Audio, ssrc, pub_idx);
            self.sources.insert((name.to_string(), Kind::Audio), s.clone());
            spec.audio = Some((s, 111));
        }
        if video {
            let ssrc = self.next_ssrc;
            self.next_ssrc += 10;
            let id = self.id();
            ids.push(self.sig.send(name, json!({"method": "createProducer", "target": "peer", "id": id, "kind": "video", "transportId": 1,
                "rtpParameters": producer_params("video", "1", ssrc, Some(ssrc + 1)), "paused": false, "appData": {}})));
            c.add_send_stream("1", Kind::Video, ssrc, Some(ssrc + 1));
            let s = PubStream::new(Kind::Video, ssrc, pub_idx);
            self.sources.insert((name.to_string(), Kind::Video), s.clone());
            spec.video = Some((s, 96));
        }
        for r in self.sig.wait_all(&ids) {
            r.expect("createProducer");
        }
        let tid = self.media.add(c);
        spec.tid = tid;
        self.media.publish(spec);
        self.peers[pi].send_tid = Some(tid);
    }

    fn stream_specs(&self, consumers: &[Value]) -> Vec<StreamSpec> {
        consumers
            .iter()
            .filter_map(|c| {
                let kind = kind_of(c);
                let src = self.sources.get(&(c["peerName"].as_str()?.to_string(), kind))?.clone();
                let ssrc = c.pointer("/rtpParameters/encodings/0/ssrc")?.as_u64()? as u32;
                let rtx = c.pointer("/rtpParameters/encodings/0/rtx/ssrc").and_then(Value::as_u64).map(|v| v as u32);
                let mid = format!("{}{}", if kind == Kind::Audio { "a" } else { "v" }, c["id"]);
                Some(StreamSpec { mid, kind, ssrc, rtx, src })
            })
            .collect()
    }

    /// Give joined peers a receive transport and enable `consumers[i]` on it.
    fn receive(&mut self, names: &[String], joined: Vec<(Instant, Vec<Value>)>) {
        let codecs = self.room_codecs.clone();
        let exts_owned = self.room_exts.clone();
        let exts = peer::ext_refs(&exts_owned);
        let mut clients = Vec::new();
        let mut ids = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let pi = self.peer_idx(n);
            clients.push(Client::new(false, &codecs, &exts, &self.cert, pi as u32, joined[i].0));
            ids.push(self.sig.send(n, json!({"method": "createTransport", "target": "peer", "id": 2, "direction": "recv", "options": {}, "appData": {}})));
        }
        let resps = self.sig.wait_all(&ids);
        let mut adds = Vec::new();
        for (i, (mut c, r)) in clients.into_iter().zip(resps).enumerate() {
            let n = &names[i];
            let r = r.unwrap_or_else(|e| panic!("createTransport recv {n}: {e}"));
            let tp = TransportParams::from_json(&r).expect("transport params");
            let w = workers::worker_of(&tp.candidates, &self.sfu_ports());
            c.connect(&tp);
            let dtls = c.dtls_parameters();
            self.sig.notify(n, json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": dtls}));
            let tid = self.media.add(c);
            let pi = self.peer_idx(n);
            self.peers[pi].recv_tid = Some(tid);
            self.peers[pi].recv_worker = w;
            adds.push((n.clone(), tid, joined[i].1.clone()));
        }
        self.enable(adds);
    }

    /// Declare the consumers' streams on the peers' receive transports, then enable them.
    fn enable(&mut self, list: Vec<(String, usize, Vec<Value>)>) {
        let mut decl = Vec::new();
        for (n, tid, cons) in &list {
            let specs = self.stream_specs(cons);
            let pi = self.peer_idx(n);
            self.peers[pi].streams += specs.len();
            decl.push((*tid, specs));
        }
        self.media.add_streams(decl);
        let mut ids = Vec::new();
        for (n, _, cons) in &list {
            for c in cons {
                ids.push(self.sig.send(n, json!({"method": "enableConsumer", "target": "peer", "id": c["id"], "transportId": 2,
                    "paused": false, "preferredProfile": "default"})));
            }
        }
        for r in self.sig.wait_all(&ids) {
            r.expect("enableConsumer");
        }
    }

    /// Peers that already have a receive transport take the `newConsumer`s sent to them.
    fn take_new_consumers(&mut self) {
        self.sig.sync();
        let mut list = Vec::new();
        for i in 0..self.peers.len() {
            let (name, tid, alive) = (self.peers[i].name.clone(), self.peers[i].recv_tid, self.peers[i].alive);
            let ncs = self.sig.new_consumers(&name);
            if let (Some(tid), true, false) = (tid, alive, ncs.is_empty()) {
                list.push((name, tid, ncs));
            }
        }
        if !list.is_empty() {
            self.enable(list);
        }
    }

    fn leave(&mut self, names: &[String]) {
        for n in names {
            self.sig.notify(n, json!({"method": "leave", "target": "peer", "notification": true, "appData": {}}));
            let pi = self.peer_idx(n);
            let p = &mut self.peers[pi];
            p.alive = false;
            for t in [p.recv_tid.take(), p.send_tid.take()].into_iter().flatten() {
                self.media.close(t);
            }
        }
        self.sig.sync();
    }

    fn alive_streams(&self) -> usize {
        self.peers.iter().filter(|p| p.alive).map(|p| p.streams).sum()
    }

    /// Wait until every consumer stream receives media (or `timeout`).
    fn wait_receiving(&mut self, timeout: Duration) -> media::Status {
        let want = self.alive_streams();
        let deadline = Instant::now() + timeout;
        loop {
            let mut s = self.media.status();
            self.join_to_media.append(&mut s.join_to_media);
            if s.receiving_streams >= want || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sfu_ports(&self) -> Vec<u16> {
        self.sig.server.ports().to_vec()
    }

    /// Per worker: (receive transports, send transports) of live peers.
    fn transports_per_worker(&self) -> Vec<(usize, usize)> {
        let mut v = vec![(0, 0); self.sfu_ports().len()];
        for p in self.peers.iter().filter(|p| p.alive) {
            if let (Some(w), Some(_)) = (p.recv_worker, p.recv_tid) {
                v[w].0 += 1;
            }
            if let (Some(w), Some(_)) = (p.send_worker, p.send_tid) {
                v[w].1 += 1;
            }
        }
        v
    }

    fn loop_sample(&self) -> Vec<workers::LoopSample> {
        let n = self.sfu_ports().len();
        workers::parse_metrics(&self.sig.server.metrics().unwrap_or_default(), n)
    }
}

// ---------------------------------------------------------------- one measurement

#[derive(Debug, Clone, Default)]
struct Step {
    label: String,
    consumers: usize,
    streams: usize,
    publishers: usize,
    fanout: usize,
    secs: f64,
    expected: u64,
    received: u64,
    loss: f64,
    worst_loss: f64,
    peers_over_1pct: usize,
    sfu_cpu_ns: u64,
    sfu_worker_ns: u64,
    sfu_worker_wait_ns: u64,
    sfu_notifier_ns: u64,
    gen_ns: u64,
    gen_media_ns: u64,
    machine_busy: f64,
    /// CPU of this process (SFU + generator) over the window, in cores.
    own_cores: f64,
    drops_sfu: u64,
    drops_gen: u64,
    lat_p50_us: f64,
    lat_p99_us: f64,
    lat_max_us: f64,
    lat_n: u64,
    sfu_heap: i64,
    gen_heap: i64,
    rss: u64,
    join_p50_ms: f64,
    join_p99_ms: f64,
    join_max_ms: f64,
    join_n: usize,
    bare: Option<bare::BareResult>,
    corrupt: u64,
    verified: u64,
    /// Per SFU worker, in worker order.
    workers: Vec<workers::WorkerStep>,
}

impl Step {
    fn out_pps(&self) -> f64 {
        self.received as f64 / self.secs
    }
    fn sfu_ns_per_out(&self) -> f64 {
        if self.received == 0 {
            0.0
        } else {
            self.sfu_cpu_ns as f64 / self.received as f64
        }
    }
    fn pps_per_core(&self) -> f64 {
        if self.sfu_cpu_ns == 0 {
            0.0
        } else {
            self.received as f64 / (self.sfu_cpu_ns as f64 / 1e9)
        }
    }
    fn ratio(&self) -> Option<f64> {
        self.bare.as_ref().filter(|b| b.ns_per_out > 0.0).map(|b| self.sfu_ns_per_out() / b.ns_per_out)
    }
    fn json(&self) -> Value {
        json!({
            "label": self.label, "consumers": self.consumers, "consumer_streams": self.streams,
            "publishers": self.publishers, "fanout": self.fanout, "secs": self.secs,
            "expected_packets": self.expected, "received_packets": self.received,
            "out_pps": self.out_pps(), "loss_pct": self.loss * 100.0, "worst_consumer_loss_pct": self.worst_loss * 100.0,
            "consumers_over_1pct_loss": self.peers_over_1pct,
            "sfu_cpu_s": self.sfu_cpu_ns as f64 / 1e9, "sfu_worker_cpu_s": self.sfu_worker_ns as f64 / 1e9,
            "sfu_notifier_cpu_s": self.sfu_notifier_ns as f64 / 1e9,
            "sfu_worker_runqueue_wait_s": self.sfu_worker_wait_ns as f64 / 1e9,
            "sfu_core_utilisation": self.sfu_cpu_ns as f64 / 1e9 / self.secs,
            "gen_cpu_s": self.gen_ns as f64 / 1e9, "gen_media_utilisation": self.gen_media_ns as f64 / 1e9 / self.secs,
            "machine_busy_cores": self.machine_busy, "own_process_cores": self.own_cores,
            "other_processes_cores": (self.machine_busy - self.own_cores).max(0.0),
            "udp_drops_sfu": self.drops_sfu, "udp_drops_gen": self.drops_gen,
            "pps_per_sfu_core": self.pps_per_core(), "sfu_us_per_out_packet": self.sfu_ns_per_out() / 1000.0,
            "bare": self.bare.as_ref().map(|b| json!({"pubs": b.pubs, "fanout": b.fanout, "in_packets": b.in_pkts,
                "out_packets": b.out_pkts, "cpu_s": b.cpu_ns as f64 / 1e9, "secs": b.secs, "us_per_out_packet": b.ns_per_out / 1000.0,
                "sink_packets": b.sink_pkts, "decrypt_failures": b.decrypt_failures})),
            "ratio_sfu_to_bare": self.ratio(),
            "latency_us": {"p50": self.lat_p50_us, "p99": self.lat_p99_us, "max": self.lat_max_us, "samples": self.lat_n},
            "sfu_heap_bytes": self.sfu_heap, "gen_heap_bytes": self.gen_heap, "rss_bytes": self.rss,
            "join_to_first_media_ms": {"p50": self.join_p50_ms, "p99": self.join_p99_ms, "max": self.join_max_ms, "n": self.join_n},
            "verified_packets": self.verified, "corrupt_packets": self.corrupt,
            "workers": self.workers.iter().map(|w| w.json(self.secs)).collect::<Vec<_>>(),
        })
    }
}

fn quantile_ms(v: &mut [Duration], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

impl Gen {
    /// Measure one step: bare path first (publishers paused), then the SFU.
    #[allow(clippy::too_many_arguments)]
    fn measure(&mut self, o: &Opts, label: &str, consumers: usize, publishers: usize, fanout: usize, audio_only: bool) -> Step {
        let st0 = self.wait_receiving(Duration::from_secs(20));
        let mut s = Step { label: label.into(), consumers, streams: self.alive_streams(), publishers, fanout, ..Default::default() };
        let mut j = std::mem::take(&mut self.join_to_media);
        s.join_n = j.len();
        s.join_p50_ms = quantile_ms(&mut j, 0.5);
        s.join_p99_ms = quantile_ms(&mut j, 0.99);
        s.join_max_ms = j.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
        if st0.receiving_streams < s.streams {
            eprintln!("  warning: only {}/{} consumer streams receive ({} transports failed: {:?})", st0.receiving_streams, s.streams, st0.failed, st0.errors);
        }
        if !o.no_bare && fanout > 0 {
            self.shared.publishing.store(false, SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            s.bare = Some(bare::run(publishers, fanout, audio_only, o.bare_secs));
            self.shared.publishing.store(true, SeqCst);
        }
        std::thread::sleep(Duration::from_millis(700));
        self.step += 1;
        let step = self.step;
        let ports = self.sfu_ports();
        let l0 = self.loop_sample();
        let c0 = sys::cpu_sample();
        let d0 = sys::udp_drops(&ports);
        let m0 = sys::machine_jiffies();
        let t0 = Instant::now();
        self.shared.step.store(step, SeqCst);
        std::thread::sleep(o.measure);
        self.shared.step.store(0, SeqCst);
        s.secs = t0.elapsed().as_secs_f64();
        let c1 = sys::cpu_sample();
        let m1 = sys::machine_jiffies();
        let l1 = self.loop_sample();
        std::thread::sleep(Duration::from_millis(1000)); // packets in flight (later ones count as lost)
        let d1 = sys::udp_drops(&ports);
        let snap = self.media.snapshot(step);
        s.sfu_cpu_ns = c1.sfu() - c0.sfu();
        s.sfu_worker_ns = c1.sfu_worker - c0.sfu_worker;
        s.sfu_worker_wait_ns = c1.sfu_worker_wait.saturating_sub(c0.sfu_worker_wait);
        s.sfu_notifier_ns = c1.sfu_notifier - c0.sfu_notifier;
        s.gen_ns = c1.generator.saturating_sub(c0.generator);
        s.gen_media_ns = c1.gen_media.saturating_sub(c0.gen_media);
        let hz = 100.0; // USER_HZ
        s.machine_busy = (m1.0 - m0.0) as f64 / hz / s.secs;
        s.own_cores = c1.total.saturating_sub(c0.total) as f64 / 1e9 / s.secs;
        s.drops_sfu = d1.0.iter().sum::<u64>() - d0.0.iter().sum::<u64>();
        s.drops_gen = d1.1 - d0.1;
        let tr = self.transports_per_worker();
        s.workers = (0..ports.len())
            .map(|w| {
                let cpu = |c: &sys::CpuSample| c.per_worker.get(w).copied().unwrap_or((0, 0));
                let (a, b) = (cpu(&c0), cpu(&c1));
                workers::WorkerStep {
                    cpu_s: b.0.saturating_sub(a.0) as f64 / 1e9,
                    wait_s: b.1.saturating_sub(a.1) as f64 / 1e9,
                    busy_s: l1[w].busy_s - l0[w].busy_s,
                    busy_ratio_gauge: l1[w].busy_ratio,
                    handoff_dropped: l1[w].handoff_dropped - l0[w].handoff_dropped,
                    udp_drops: d1.0[w].saturating_sub(d0.0[w]),
                    recv_transports: tr[w].0,
                    send_transports: tr[w].1,
                }
            })
            .collect();
        let mut worst = 0.0f64;
        for (_, exp, got) in &snap.per_peer {
            s.expected += exp;
            s.received += (*got).min(*exp);
            let l = if *exp > 0 { 1.0 - (*got as f64 / *exp as f64).min(1.0) } else { 0.0 };
            worst = worst.max(l);
            if l > 0.01 {
                s.peers_over_1pct += 1;
            }
        }
        s.worst_loss = worst;
        s.loss = if s.expected > 0 { 1.0 - s.received as f64 / s.expected as f64 } else { 1.0 };
        s.lat_n = snap.hist.n;
        s.lat_p50_us = snap.hist.quantile(0.5) as f64 / 1000.0;
        s.lat_p99_us = snap.hist.quantile(0.99) as f64 / 1000.0;
        s.lat_max_us = snap.hist.max as f64 / 1000.0;
        if std::env::var_os("SFU_LOAD_HEAP_SIZES").is_some() {
            for (sz, bytes, n) in alloc::sfu_by_size() {
                eprintln!("  sfu heap: allocations < {sz:>9} B: {n:>8} live, {:>10.1} kB", bytes as f64 / 1e3);
            }
        }
        let (sh, gh) = alloc::live();
        s.sfu_heap = sh;
        s.gen_heap = gh;
        s.rss = sys::rss_bytes();
        let st = self.media.status();
        s.verified = st.verified;
        s.corrupt = st.corrupt;
        print_progress(&self.started, &s);
        s
    }
}

fn print_progress(started: &Instant, s: &Step) {
    if s.workers.len() > 1 {
        let w: Vec<String> = s
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                format!(
                    "w{i}: {} recv tr, CPU {:.0}%, waited {:.0}%, busy {:.0}% (gauge {:.0}%)",
                    w.recv_transports,
                    w.cpu_s / s.secs * 100.0,
                    w.wait_s / s.secs * 100.0,
                    w.busy_s / s.secs * 100.0,
                    w.busy_ratio_gauge * 100.0
                )
            })
            .collect();
        println!("          {} | machine busy {:.2} cores (other processes {:.2})", w.join(" | "), s.machine_busy, (s.machine_busy - s.own_cores).max(0.0));
    }
    let bare = s.bare.as_ref().map(|b| format!("{:.2}", b.ns_per_out / 1000.0)).unwrap_or("-".into());
    let ratio = s.ratio().map(|r| format!("{r:.2}x")).unwrap_or("-".into());
    println!(
        "[{:>5.1}s] {:<14} consumers {:>5} streams {:>5} | out {:>7.0} pkt/s | SFU {:>5.1}% core, {:>7.0} pkt/s/core, {:>5.2} us/pkt (bare {bare} us, {ratio}) | loss {:>6.3}% (worst {:>5.1}%) | lat p50 {:>6.0} p99 {:>7.0} max {:>7.0} us | heap {:>6.1} MB rss {:>6.1} MB | join p50 {:>5.0} ms",
        started.elapsed().as_secs_f64(),
        s.label,
        s.consumers,
        s.streams,
        s.out_pps(),
        s.sfu_cpu_ns as f64 / 1e7 / s.secs,
        s.pps_per_core(),
        s.sfu_ns_per_out() / 1000.0,
        s.loss * 100.0,
        s.worst_loss * 100.0,
        s.lat_p50_us,
        s.lat_p99_us,
        s.lat_max_us,
        s.sfu_heap as f64 / 1e6,
        s.rss as f64 / 1e6,
        s.join_p50_ms,
    );
}

// ---------------------------------------------------------------- scenarios

fn names(prefix: &str, from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("{prefix}{i}")).collect()
}

/// Diagnosis of what limited a step (the first one over the loss limit).
fn limit_reason(s: &Step) -> String {
    let gen_util = s.gen_media_ns as f64 / 1e9 / s.secs;
    let mut r = Vec::new();
    for (i, w) in s.workers.iter().enumerate() {
        let (util, wait) = (w.cpu_s / s.secs, w.wait_s / s.secs);
        if util > 0.85 {
            r.push(format!("SFU worker {i} at {:.0}% of a core", util * 100.0));
        }
        if wait > 0.05 {
            r.push(format!("SFU worker {i} ran {:.0}% and waited for a CPU {:.0}% of the window (runnable, not running)", util * 100.0, wait * 100.0));
        }
        if w.handoff_dropped > 0 {
            r.push(format!("worker {i} dropped {} packets at the hand-off to another worker (its inbox was full)", w.handoff_dropped));
        }
    }
    if gen_util > 0.85 {
        r.push(format!("generator media thread at {:.0}% of a core", gen_util * 100.0));
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    if s.machine_busy > 0.9 * cpus {
        r.push(format!("machine busy {:.2} of {cpus} cores ({:.2} by other processes)", s.machine_busy, (s.machine_busy - s.own_cores).max(0.0)));
    }
    if s.drops_sfu > 0 {
        r.push(format!("{} datagrams dropped at the SFU socket (input queue overflow)", s.drops_sfu));
    }
    if s.drops_gen > 0 {
        r.push(format!("{} datagrams dropped at consumer sockets", s.drops_gen));
    }
    if r.is_empty() {
        r.push("no single saturated resource seen".into());
    }
    r.join("; ")
}

fn run(o: &Opts) -> bool {
    let t0 = Instant::now();
    println!(
        "sfu-load: scenario {} (SFU config {}), allocation tracking {}",
        o.scenario,
        o.config(),
        if alloc::enabled() { "on" } else { "off" }
    );
    let mut g = Gen::new(&o.config());
    let mut steps: Vec<Step> = Vec::new();
    let mut extra = json!({});
    let mut knee: Option<Value> = None;
    let scen = o.scenario.as_str();
    let over = |s: &Step| s.loss * 100.0 > o.loss_limit;
    match scen {
        "smoke" | "fanout" => {
            let plan = o.steps.clone().unwrap_or(if scen == "smoke" { vec![5] } else { vec![10, 100, 250, 500, 750, 1000, 1200, 1400, 1600, 1800, 2000, 2400] });
            g.join_all(&["pub0".to_string()], false);
            g.publish("pub0", true, true);
            let mut have = 0;
            for n in plan {
                if t0.elapsed() > o.budget {
                    println!("  time budget reached: stopping the ramp");
                    break;
                }
                let ns = names("c", have, n);
                let spy = scen != "smoke";
                for chunk in ns.chunks(100) {
                    let j = g.join_all(chunk, spy);
                    g.receive(chunk, j);
                }
                have = n;
                let s = g.measure(o, &format!("1->{n}"), n, 1, n, false);
                let stop = over(&s);
                if stop && knee.is_none() {
                    knee = Some(json!({"first_over": n, "last_under": steps.last().map(|p: &Step| p.consumers), "reason": limit_reason(&s)}));
                }
                steps.push(s);
                if stop {
                    break;
                }
            }
        }
        "audio" => {
            let plan = o.steps.clone().unwrap_or(vec![100, 250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2500, 3000]);
            let sp = names("spk", 0, o.speakers);
            g.join_all(&sp, false);
            for n in &sp {
                g.publish(n, true, false);
            }
            let mut have = 0;
            for n in plan {
                if t0.elapsed() > o.budget {
                    println!("  time budget reached: stopping the ramp");
                    break;
                }
                let ns = names("l", have, n);
                for chunk in ns.chunks(100) {
                    let j = g.join_all(chunk, true);
                    g.receive(chunk, j);
                }
                have = n;
                let s = g.measure(o, &format!("{}spk->{n}", o.speakers), n, o.speakers, n, true);
                let stop = over(&s);
                if stop && knee.is_none() {
                    knee = Some(json!({"first_over": n, "last_under": steps.last().map(|p: &Step| p.consumers), "reason": limit_reason(&s)}));
                }
                steps.push(s);
                if stop {
                    break;
                }
            }
        }
        "meeting" => {
            let plan = o.steps.clone().unwrap_or(vec![10, 15, 20, 25, 30, 33, 36, 40, 45, 50]);
            let mut have = 0;
            for n in plan {
                if t0.elapsed() > o.budget {
                    println!("  time budget reached: stopping the ramp");
                    break;
                }
                let ns = names("m", have, n);
                let joined = g.join_all(&ns, false);
                for p in &ns {
                    g.publish(p, true, true);
                }
                // The join answer listed the producers of peers that were there before.
                g.receive(&ns, joined);
                // Producers created after a peer joined reach it as newConsumer.
                g.take_new_consumers();
                have = n;
                let s = g.measure(o, &format!("{n}x{n}"), n, n, n - 1, false);
                let stop = over(&s);
                if stop && knee.is_none() {
                    knee = Some(json!({"first_over": n, "last_under": steps.last().map(|p: &Step| p.consumers), "reason": limit_reason(&s)}));
                }
                steps.push(s);
                if stop {
                    break;
                }
            }
        }
        "churn" => {
            g.join_all(&["pub0".to_string()], false);
            g.publish("pub0", true, true);
            g.wait_receiving(Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(500));
            let base = mem_now();
            let mut cycles = Vec::new();
            for c in 0..o.cycles {
                let ns = names(&format!("k{c}-"), 0, o.churn_peers);
                let j = g.join_all(&ns, false);
                g.receive(&ns, j);
                let st = g.wait_receiving(Duration::from_secs(20));
                std::thread::sleep(Duration::from_millis(3500)); // steady state: resend caches full (str0m default 3 s)
                let inside = mem_now();
                g.leave(&ns);
                std::thread::sleep(Duration::from_millis(500));
                let after = mem_now();
                let per = (inside.0 - after.0) as f64 / o.churn_peers as f64;
                println!(
                    "[{:>5.1}s] churn cycle {:>2}: {} peers in ({} streams receiving): SFU heap {:.2} MB ({:.1} kB/consumer peer), after leave {:.2} MB (baseline {:.2} MB); RSS {:.1} MB",
                    t0.elapsed().as_secs_f64(),
                    c + 1,
                    o.churn_peers,
                    st.receiving_streams,
                    inside.0 as f64 / 1e6,
                    per / 1e3,
                    after.0 as f64 / 1e6,
                    base.0 as f64 / 1e6,
                    after.2 as f64 / 1e6
                );
                cycles.push(json!({"cycle": c + 1, "peers": o.churn_peers, "receiving_streams": st.receiving_streams,
                    "sfu_heap_in": inside.0, "sfu_heap_after": after.0, "gen_heap_in": inside.1, "gen_heap_after": after.1,
                    "rss_in": inside.2, "rss_after": after.2, "sfu_heap_per_consumer_peer": per}));
            }
            let first_after = cycles.first().map(|c| c["sfu_heap_after"].as_i64().unwrap_or(0)).unwrap_or(0);
            let last_after = cycles.last().map(|c| c["sfu_heap_after"].as_i64().unwrap_or(0)).unwrap_or(0);
            let pers: Vec<f64> = cycles.iter().map(|c| c["sfu_heap_per_consumer_peer"].as_f64().unwrap_or(0.0)).collect();
            let mean_per = pers.iter().sum::<f64>() / pers.len().max(1) as f64;
            println!(
                "churn: SFU heap after leave: cycle 1 {:.2} MB, cycle {} {:.2} MB (drift {:+.1} kB over {} cycles; baseline {:.2} MB); mean {:.1} kB per consumer peer (1 audio + 1 video consumer + a transport)",
                first_after as f64 / 1e6,
                cycles.len(),
                last_after as f64 / 1e6,
                (last_after - first_after) as f64 / 1e3,
                cycles.len(),
                base.0 as f64 / 1e6,
                mean_per / 1e3
            );
            extra = json!({"churn": {"cycles": cycles, "baseline_sfu_heap": base.0, "drift_bytes": last_after - first_after,
                "mean_sfu_heap_per_consumer_peer": mean_per}});
        }
        other => {
            eprintln!("unknown scenario {other}");
            return false;
        }
    }
    let st = g.media.status();
    // Memory per consumer: least-squares slope of SFU heap and RSS against consumer streams / peers.
    let slope = |ys: Vec<(f64, f64)>| -> Option<f64> {
        if ys.len() < 2 {
            return None;
        }
        let n = ys.len() as f64;
        let mx = ys.iter().map(|p| p.0).sum::<f64>() / n;
        let my = ys.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = ys.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = ys.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        (sxx > 0.0).then(|| sxy / sxx)
    };
    let heap_per_stream = slope(steps.iter().map(|s| (s.streams as f64, s.sfu_heap as f64)).collect());
    let rss_per_stream = slope(steps.iter().map(|s| (s.streams as f64, s.rss as f64)).collect());
    let gen_per_stream = slope(steps.iter().map(|s| (s.streams as f64, s.gen_heap as f64)).collect());
    let heap_per_consumer = slope(steps.iter().map(|s| (s.consumers as f64, s.sfu_heap as f64)).collect());
    let rss_per_consumer = slope(steps.iter().map(|s| (s.consumers as f64, s.rss as f64)).collect());
    let knee_val = knee.clone().unwrap_or_else(|| {
        json!({"first_over": null, "last_under": steps.last().map(|s| s.consumers),
               "reason": if scen == "churn" || scen == "smoke" { "not ramped".to_string() } else { "no step exceeded the loss limit (ramp ended)".to_string() }})
    });
    if scen != "churn" && scen != "smoke" {
        println!("knee: {knee_val}");
    }
    let result = json!({
        "scenario": scen,
        "workers": o.workers,
        "round": o.round,
        "half_knee_of": o.half_knee,
        "sfu_config": o.config(),
        "measure_secs": o.measure.as_secs_f64(),
        "loss_limit_pct": o.loss_limit,
        "allocation_tracking": alloc::enabled(),
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
        "knee": knee_val,
        "memory": {"sfu_heap_bytes_per_consumer_stream": heap_per_stream, "rss_bytes_per_consumer_stream": rss_per_stream,
                   "gen_heap_bytes_per_consumer_stream": gen_per_stream,
                   "sfu_heap_bytes_per_consumer": heap_per_consumer, "rss_bytes_per_consumer": rss_per_consumer},
        "generator": {"verified_packets": st.verified, "corrupt_packets": st.corrupt, "remaps": st.mismatches,
                      "transports": st.transports, "failed_transports": st.failed, "errors": st.errors},
        "extra": extra,
        "wall_secs": t0.elapsed().as_secs_f64(),
    });
    if let Some(p) = &o.out {
        if let Some(dir) = std::path::Path::new(p).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(p, serde_json::to_string_pretty(&result).unwrap()).expect("write results");
        println!("wrote {p}");
    }
    println!("{}", report::table(std::slice::from_ref(&result)));
    g.media.stop();
    g.sig.server.close();
    // Smoke assertions: media flowed, numbers were produced.
    let mut ok = true;
    let mut fail = |m: String| {
        eprintln!("FAIL: {m}");
        ok = false;
    };
    if scen == "churn" {
        return ok;
    }
    if steps.is_empty() {
        fail("no step measured".into());
    }
    // Past the knee a step may collapse; only the first must show media and numbers.
    let checked = if scen == "smoke" { &steps[..] } else { &steps[..steps.len().min(1)] };
    for s in checked {
        if s.received == 0 {
            fail(format!("{}: no media reached the consumers", s.label));
        }
        if s.sfu_cpu_ns == 0 {
            fail(format!("{}: no SFU CPU time measured", s.label));
        }
        if s.lat_n == 0 || s.lat_p50_us <= 0.0 {
            fail(format!("{}: no latency samples", s.label));
        }
        if !o.no_bare && s.bare.as_ref().is_none_or(|b| b.ns_per_out <= 0.0 || b.sink_pkts == 0) {
            fail(format!("{}: the bare data path produced no numbers", s.label));
        }
    }
    if scen == "smoke" {
        if let Some(s) = steps.first() {
            if s.peers_over_1pct > 0 && s.worst_loss >= 1.0 {
                fail(format!("{}: a consumer received nothing", s.label));
            }
        }
        if st.verified == 0 {
            fail("no decrypted packet was checked".into());
        }
        if st.corrupt > 0 {
            fail(format!("{} corrupt packets", st.corrupt));
        }
    }
    ok
}

/// (SFU heap, generator heap, RSS)
fn mem_now() -> (i64, i64, u64) {
    let (a, b) = alloc::live();
    (a, b, sys::rss_bytes())
}
