//! Media through a C host process: tests/c/stdio_host.c (built here with
//! ASan/UBSan/LeakSanitizer against target/release/libsfu.so) hosts the library and
//! carries the mediasoup JSON over stdin/stdout; this test plays the browsers with the
//! str0m peers of the test kit (crates/sfu-testkit/src/peer.rs) over loopback UDP. alice produces Opus + VP8,
//! bob consumes both and must get every payload byte intact, with the consumer's SSRC,
//! the room PT and continuous sequence numbers. Then the host frees the server on
//! `quit` and must exit 0 without a sanitizer report.
//!
//! The library is NOT built from here: `cargo build --release` must have produced
//! `target/release/libsfu.so` (as for tests/c_programs.rs). Needs gcc, nm, readelf.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sfu_testkit::builders::{client_caps, producer_params, CHROME_AUDIO_EXTS, CHROME_VIDEO_EXTS};
use sfu_testkit::cbuild::{assert_instrumented, build};
use sfu_testkit::peer::{ext_ids_from_json, ext_refs, pump_all, pump_all_until, BrowserTransport, CodecSpec, Direction, TransportParams};
use serde_json::{json, Value};

// ------------------------------------------------------------------------------------
// The C host process

/// Every wait for the host is bounded by this.
const WAIT: Duration = Duration::from_secs(10);
/// Startup (ASan) and shutdown of the host process.
const PROCESS_WAIT: Duration = Duration::from_secs(30);

/// One line the host wrote: `kind \t room \t peer \t id \t json`.
#[derive(Debug, Clone)]
struct Line {
    kind: String,
    room: String,
    peer: String,
    id: u64,
    json: Value,
}

fn parse_line(raw: &str) -> Line {
    let f: Vec<&str> = raw.splitn(5, '\t').collect();
    assert_eq!(f.len(), 5, "a host line has 5 tab-separated fields: {raw:?}");
    Line {
        kind: f[0].to_string(),
        room: f[1].to_string(),
        peer: f[2].to_string(),
        id: f[3].parse().unwrap_or_else(|e| panic!("id field of {raw:?}: {e}")),
        json: serde_json::from_str(f[4]).unwrap_or_else(|e| panic!("json field of {raw:?} is not JSON: {e}")),
    }
}

struct CHost {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    /// Received, not yet claimed.
    log: VecDeque<Line>,
    /// Ids of our commands; above 2^32 so a truncated u64 would show.
    next_id: u64,
}

impl CHost {
    fn spawn(exe: &Path, config: &str) -> CHost {
        let mut child = Command::new(exe)
            .arg(config)
            .current_dir(exe.parent().unwrap())
            // The rpath must be what finds libsfu.so (cargo sets LD_LIBRARY_PATH for tests).
            .env_remove("LD_LIBRARY_PATH")
            .env("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1")
            .env("LSAN_OPTIONS", "report_objects=1")
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        });
        let mut h = CHost {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            log: VecDeque::new(),
            next_id: (1 << 40) + 1,
        };
        let ready = h.wait_for(PROCESS_WAIT, |l| l.kind == "ready");
        let ready = ready.unwrap_or_else(|| panic!("the host did not say ready within {PROCESS_WAIT:?}"));
        assert!(ready.json["version"].is_string(), "{ready:?}");
        h
    }

    /// Move what the host wrote into the log; wait at most `timeout` for the first line.
    /// Returns false if nothing came.
    fn pump(&mut self, timeout: Duration) -> bool {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => {
                self.log.push_back(parse_line(&l));
                while let Ok(l) = self.lines.try_recv() {
                    self.log.push_back(parse_line(&l));
                }
                true
            }
            Err(_) => false,
        }
    }

    /// The first line matching `pred` (removed from the log), within `timeout`.
    fn wait_for(&mut self, timeout: Duration, mut pred: impl FnMut(&Line) -> bool) -> Option<Line> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self.log.iter().position(&mut pred) {
                return self.log.remove(pos);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.pump(left.min(Duration::from_millis(50)));
        }
    }

    fn send(&mut self, op: &str, room: &str, peer: &str, id: u64, json: &str) {
        for f in [op, room, peer, json] {
            assert!(!f.contains(['\t', '\n', '\r']), "a field of the line protocol: {f:?}");
        }
        let line = format!("{op}\t{room}\t{peer}\t{id}\t{json}\n");
        let stdin = self.stdin.as_mut().expect("the host's stdin is open");
        stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()).expect("writing to the host");
    }

    /// Run one command; returns the library call's result (`ret` line).
    fn call(&mut self, op: &str, room: &str, peer: &str, id: u64, json: &str) -> Value {
        self.send(op, room, peer, id, json);
        let ret = self
            .wait_for(WAIT, |l| l.kind == "ret" && l.id == id)
            .unwrap_or_else(|| panic!("no result for {op} {room}/{peer} id {id} within {WAIT:?}"));
        assert_eq!(ret.json["op"], op, "{ret:?}");
        assert_eq!((ret.room.as_str(), ret.peer.as_str()), (room, peer), "{ret:?}");
        ret.json
    }

    fn call_ok(&mut self, op: &str, room: &str, peer: &str, json: &str) {
        let id = self.fresh_id();
        let r = self.call(op, room, peer, id, json);
        assert_eq!(r["result"], 0, "{op} {room}/{peer} returned {r}");
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A request through the host; Ok(data) or Err(reason).
    fn request(&mut self, room: &str, peer: &str, req: Value) -> Result<Value, String> {
        let id = self.fresh_id();
        let r = self.call("request", room, peer, id, &req.to_string());
        assert_eq!(r["result"], 0, "sfu_server_request returned {r}");
        let resp = self
            .wait_for(WAIT, |l| l.kind == "response" && l.id == id)
            .unwrap_or_else(|| panic!("no response to request {id} ({req}) within {WAIT:?}"));
        assert_eq!((resp.room.as_str(), resp.peer.as_str()), (room, peer), "the response goes to the requester");
        let r = resp.json;
        if r["ok"] == true {
            Ok(r["data"].clone())
        } else {
            assert_eq!(r["ok"], false, "{r}");
            Err(r["error"].as_str().expect("error reason is a string").to_string())
        }
    }

    fn notify(&mut self, room: &str, peer: &str, n: Value) {
        self.call_ok("notify", room, peer, &n.to_string());
    }

    /// Wait for the notification `method` to `peer` (others are kept).
    fn wait_notification(&mut self, peer: &str, method: &str) -> Value {
        self.wait_for(WAIT, |l| l.kind == "notification" && l.peer == peer && l.json["method"] == method)
            .unwrap_or_else(|| panic!("{peer} did not get `{method}` within {WAIT:?}"))
            .json
    }

    /// Host events received so far (drained).
    fn host_events(&mut self) -> Vec<Line> {
        while self.pump(Duration::ZERO) {}
        let (mine, rest): (VecDeque<Line>, VecDeque<Line>) = self.log.drain(..).partition(|l| l.kind == "host");
        self.log = rest;
        mine.into_iter().collect()
    }

    /// queryRoom + join with the caps mediasoup-client computes; returns the join data.
    fn join(&mut self, room: &str, peer: &str) -> Value {
        let q = self.request(room, peer, json!({"method": "queryRoom", "target": "room"})).expect("queryRoom");
        let caps = client_caps(&q["rtpCapabilities"]);
        self.request(
            room,
            peer,
            json!({"method": "join", "target": "room", "peerName": peer, "rtpCapabilities": caps,
                   "spy": false, "appData": {"n": peer}}),
        )
        .expect("join")
    }

    /// `quit`, then wait (bounded) for the exit: (status, remaining lines, stderr).
    fn quit(mut self) -> (ExitStatus, Vec<Line>, String) {
        self.send("quit", "", "", 0, "");
        drop(self.stdin.take());
        let deadline = Instant::now() + PROCESS_WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("waiting for the host") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self.stderr.take().unwrap().join().unwrap_or_default();
                panic!("the host did not exit within {PROCESS_WAIT:?} after quit (killed)\n--- stderr ---\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // stdout is closed now: take every remaining line.
        while let Ok(l) = self.lines.recv_timeout(WAIT) {
            self.log.push_back(parse_line(&l));
        }
        let err = self.stderr.take().unwrap().join().unwrap_or_default();
        (status, self.log.drain(..).collect(), err)
    }
}

impl Drop for CHost {
    fn drop(&mut self) {
        // A failed test must not leave the host running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------------------------
// The browsers (as in tests/media_plane.rs, signalling through the C host)

const R: &str = "c-media";
const A_SSRC: u32 = 11_110;
const V_SSRC: u32 = 22_220;
const V_RTX: u32 = 22_221;
const PACKETS: u64 = 60;

/// A VP8 payload: descriptor (S=1, PID=0) + payload header with the key/delta bit.
fn vp8_payload(i: u64, key: bool) -> Vec<u8> {
    let mut p = vec![0x10, if key { 0x00 } else { 0x01 }];
    p.extend((0..1100).map(|k| ((i * 31 + k) % 251) as u8));
    p
}

fn opus_payload(i: u64) -> Vec<u8> {
    (0..120).map(|k| ((i * 7 + k) % 253) as u8).collect()
}

/// The room's PT for a codec name, from its rtpCapabilities.
fn room_pt(caps: &Value, name: &str) -> u8 {
    caps["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .and_then(|c| c["preferredPayloadType"].as_u64())
        .unwrap_or_else(|| panic!("the room has no {name}: {caps}")) as u8
}

/// (consumer id, ssrc, room PT, kind)
type ConsumerInfo = (u64, u32, u8, String);

#[test]
fn media_flows_through_a_c_host_process() {
    let exe = build("gcc", "c11", &["tests/c/stdio_host.c"], "stdio_host");
    assert_instrumented(&exe);
    let mut h = CHost::spawn(&exe, r#"{"numWorkers":1,"rtcIPv4":"127.0.0.1"}"#);

    h.call_ok("create_room", R, "", "");
    let caps = h.join(R, "alice")["rtpCapabilities"].clone();
    h.join(R, "bob");
    let (opus_pt, vp8_pt) = (room_pt(&caps, "opus"), room_pt(&caps, "VP8"));

    // alice: send transport, Opus + VP8 producers with Chrome's PTs (111, 96/97).
    let all_exts: Vec<(u8, &str)> = CHROME_VIDEO_EXTS.iter().chain(CHROME_AUDIO_EXTS).copied().collect();
    let mut alice = BrowserTransport::new(Direction::Send, &[CodecSpec::opus(111), CodecSpec::vp8(96, Some(97))], &all_exts);
    let resp = h
        .request(R, "alice", json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "send",
            "options": {}, "dtlsParameters": alice.dtls_parameters(), "appData": {}}))
        .unwrap();
    alice.connect(&TransportParams::from_json(&resp).unwrap());
    h.request(R, "alice", json!({"method": "createProducer", "target": "peer", "id": 501, "kind": "audio", "transportId": 1,
        "rtpParameters": producer_params("audio", "0", A_SSRC, None), "paused": false, "appData": {}}))
        .unwrap();
    h.request(R, "alice", json!({"method": "createProducer", "target": "peer", "id": 502, "kind": "video", "transportId": 1,
        "rtpParameters": producer_params("video", "1", V_SSRC, Some(V_RTX)), "paused": false, "appData": {}}))
        .unwrap();
    alice.add_send_stream("0", "audio", A_SSRC, None);
    alice.add_send_stream("1", "video", V_SSRC, Some(V_RTX));

    // bob: told about both producers, recv transport, both consumers enabled.
    let new_consumers = [h.wait_notification("bob", "newConsumer"), h.wait_notification("bob", "newConsumer")];
    let exts = ext_ids_from_json(&caps);
    let mut bob = BrowserTransport::new(Direction::Recv, &CodecSpec::list_from_json(&caps), &ext_refs(&exts));
    let resp = h
        .request(R, "bob", json!({"method": "createTransport", "target": "peer", "id": 2, "direction": "recv", "options": {}, "appData": {}}))
        .unwrap();
    bob.connect(&TransportParams::from_json(&resp).unwrap());
    h.notify(R, "bob", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": bob.dtls_parameters()}));
    let mut consumers: Vec<ConsumerInfo> = Vec::new();
    for nc in &new_consumers {
        assert_eq!(nc["peerName"], "alice", "{nc}");
        let ssrc = bob.add_recv_stream_from_consumer(nc).unwrap();
        let pt = nc.pointer("/rtpParameters/codecs/0/payloadType").unwrap().as_u64().unwrap() as u8;
        let id = nc["id"].as_u64().unwrap();
        let r = h
            .request(R, "bob", json!({"method": "enableConsumer", "target": "peer", "id": id, "transportId": 2, "paused": false, "preferredProfile": "default"}))
            .unwrap();
        assert_eq!(r["paused"], false);
        consumers.push((id, ssrc, pt, nc["kind"].as_str().unwrap().to_string()));
    }
    let mut kinds: Vec<&str> = consumers.iter().map(|c| c.3.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"], "bob consumes alice's audio and video");
    let host_events = h.host_events();
    assert!(host_events.is_empty(), "no host event (e.g. notificationError) so far: {host_events:?}");

    assert!(
        pump_all_until(&mut [&mut alice, &mut bob], Duration::from_secs(15), |ps| ps.iter().all(|p| p.is_connected())),
        "both transports connect (ICE + DTLS) through the C host: alice {alice:?}, bob {bob:?}"
    );

    // 60 packets of each kind, 10 ms apart, the first video packet a keyframe.
    for i in 1..=PACKETS {
        alice.send_rtp(A_SSRC, 111, i, (i * 960) as u32, false, &opus_payload(i));
        alice.send_rtp(V_SSRC, 96, i, (i * 3000) as u32, true, &vp8_payload(i, i == 1));
        pump_all(&mut [&mut alice, &mut bob], Duration::from_millis(10));
    }
    let want = 2 * PACKETS as usize;
    pump_all_until(&mut [&mut alice, &mut bob], Duration::from_secs(10), |ps| ps[1].received().len() >= want);

    for (kind, room_pt) in [("audio", opus_pt), ("video", vp8_pt)] {
        let c = consumers.iter().find(|c| c.3 == kind).unwrap();
        assert_eq!(c.2, room_pt, "bob's {kind} consumer is announced with the room PT");
        let got = bob.received_for(c.1);
        assert_eq!(got.len(), PACKETS as usize, "bob got every {kind} packet ({} of {PACKETS}); {bob:?}", got.len());
        for (i, p) in got.iter().enumerate() {
            let n = i as u64 + 1;
            assert_eq!(p.ssrc, c.1, "{kind} packet {n}: the consumer's announced SSRC");
            assert_eq!(p.pt, room_pt, "{kind} packet {n}: the room payload type");
            let want = if kind == "audio" { opus_payload(n) } else { vp8_payload(n, n == 1) };
            assert!(p.payload == want, "{kind} payload {n} intact ({} bytes, want {})", p.payload.len(), want.len());
            if i > 0 {
                assert_eq!(p.seq, got[i - 1].seq.wrapping_add(1), "{kind} packet {n}: continuous sequence numbers");
            }
        }
    }
    assert_eq!(bob.received().len(), want, "nothing but the two consumers' packets");

    // The host closes alice, then the room: bob hears about both.
    h.call_ok("close_peer", R, "alice", "");
    let pc = h.wait_notification("bob", "peerClosed");
    assert_eq!(pc["name"], "alice", "{pc}");
    h.call_ok("close_room", R, "", "");
    h.wait_notification("bob", "closed");
    let host_events = h.host_events();
    assert!(
        host_events.iter().all(|l| l.json["event"] != "notificationError"),
        "no notificationError: {host_events:?}"
    );

    // quit: sfu_server_free in the host, exit 0, no sanitizer report.
    let (status, rest, stderr) = h.quit();
    let shown = format!("--- remaining lines ---\n{rest:#?}\n--- stderr ---\n{stderr}");
    for bad in ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "SUMMARY:"] {
        assert!(!stderr.contains(bad), "the host's stderr has a sanitizer report ({bad:?})\n{shown}");
    }
    assert!(status.success(), "the host exited with {status}\n{shown}");
    let bye = rest.iter().find(|l| l.kind == "bye").unwrap_or_else(|| panic!("no bye line\n{shown}"));
    assert_eq!(bye.json["ok"], true, "{}", bye.json);
    assert_eq!(bye.json["userdata_frees"], 1, "{}", bye.json);
    assert_eq!(bye.json["callbacks_after_free"], 0, "{}", bye.json);
    assert!(
        rest.iter().all(|l| l.kind != "response" && l.kind != "error"),
        "no unclaimed response or command error\n{shown}"
    );
}
