//! Property test: arbitrary bytes and arbitrary JSON fed to request/notify never
//! panic a room, and every request gets exactly one response.
//!
//! The inputs come from a seeded generator (reproducible: the seed is printed), mixing
//! raw bytes, random JSON values, and valid messages with mutated fields — the last
//! kind reaches deep into the handlers, where most bugs would be.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use sfu::{EventKind, Server};

struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }

    fn scalar(&mut self) -> Value {
        match self.below(9) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.below(100)),
            3 => json!(-(self.below(1000) as i64)),
            4 => json!(self.next()),
            5 => json!(1.5),
            6 => json!(self.pick(&["", "send", "recv", "audio", "video", "x", "rtx", "VP8", "opus", "server", "client", "default", "high"])),
            7 => json!(10_000_000 + self.below(5)),
            _ => json!("\u{0000}\u{FFFF}ü"),
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        if depth == 0 || self.below(3) == 0 {
            return self.scalar();
        }
        if self.below(2) == 0 {
            let n = self.below(4);
            Value::Array((0..n).map(|_| self.value(depth - 1)).collect())
        } else {
            let keys = ["id", "kind", "codecs", "encodings", "ssrc", "payloadType", "clockRate", "name", "mimeType",
                "parameters", "apt", "rtx", "transportId", "dtlsParameters", "fingerprints", "role", "paused",
                "profile", "headerExtensions", "uri", "preferredId", "preferredPayloadType", "channels", "muxId"];
            let mut m = Map::new();
            for _ in 0..self.below(5) {
                m.insert(self.pick(&keys).to_string(), self.value(depth - 1));
            }
            Value::Object(m)
        }
    }

    /// Replace a random node of `v` with a random value (or delete a key).
    fn mutate(&mut self, v: &mut Value, depth: u32) {
        match v {
            Value::Object(m) if !m.is_empty() && depth > 0 => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = self.pick(&keys).clone();
                match self.below(4) {
                    0 => {
                        m.remove(&k);
                    }
                    1 => {
                        m.insert(k, self.value(2));
                    }
                    _ => self.mutate(m.get_mut(&k).unwrap(), depth - 1),
                }
            }
            Value::Array(a) if !a.is_empty() && depth > 0 => {
                let i = self.below(a.len() as u64) as usize;
                if self.below(4) == 0 {
                    a.remove(i);
                } else {
                    self.mutate(&mut a[i], depth - 1);
                }
            }
            _ => *v = self.value(2),
        }
    }
}

fn templates() -> Vec<Value> {
    let dtls = sfu_testkit::builders::fake_dtls("server");
    vec![
        json!({"method": "queryRoom", "target": "room"}),
        json!({"method": "join", "target": "room", "peerName": "p", "spy": false, "appData": {}}),
        json!({"method": "createTransport", "target": "peer", "id": 1, "direction": "send", "options": {}, "dtlsParameters": dtls}),
        json!({"method": "createTransport", "target": "peer", "id": 2, "direction": "recv", "options": {}}),
        json!({"method": "restartTransport", "target": "peer", "id": 1}),
        json!({"method": "createProducer", "target": "peer", "id": 3, "kind": "video", "transportId": 1,
               "rtpParameters": sfu_testkit::builders::producer_params("video", "1", 1234, Some(1235)), "paused": false}),
        json!({"method": "createProducer", "target": "peer", "id": 4, "kind": "audio", "transportId": 1,
               "rtpParameters": sfu_testkit::builders::producer_params("audio", "0", 4321, None), "paused": false}),
        json!({"method": "enableConsumer", "target": "peer", "id": 10_000_001, "transportId": 2, "paused": false, "preferredProfile": "default"}),
        json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": sfu_testkit::builders::fake_dtls("client")}),
        json!({"method": "closeTransport", "target": "peer", "notification": true, "id": 1}),
        json!({"method": "pauseProducer", "target": "peer", "notification": true, "id": 3}),
        json!({"method": "resumeProducer", "target": "peer", "notification": true, "id": 3}),
        json!({"method": "closeProducer", "target": "peer", "notification": true, "id": 4}),
        json!({"method": "pauseConsumer", "target": "peer", "notification": true, "id": 10_000_001}),
        json!({"method": "resumeConsumer", "target": "peer", "notification": true, "id": 10_000_001}),
        json!({"method": "setConsumerPreferredProfile", "target": "peer", "notification": true, "id": 10_000_001, "profile": "low"}),
        json!({"method": "enableTransportStats", "target": "peer", "notification": true, "id": 1, "interval": 1000}),
        json!({"method": "updateProducer", "target": "peer", "notification": true, "id": 3,
               "rtpParameters": sfu_testkit::builders::producer_params("video", "1", 999, None)}),
        json!({"method": "leave", "target": "peer", "notification": true}),
    ]
}

#[test]
fn arbitrary_input_never_panics_and_every_request_gets_one_response() {
    let seed = std::env::var("SFU_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let iterations: u64 = std::env::var("SFU_FUZZ_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    println!("seed {seed} (set SFU_FUZZ_SEED to replay), {iterations} iterations");
    let mut g = Gen(seed);

    let responses: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let (r2, f2) = (responses.clone(), failures.clone());
    let server = Server::new(
        Some(r#"{"numWorkers":2}"#),
        Box::new(move |ev| {
            if serde_json::from_str::<Value>(ev.json).is_err() {
                f2.lock().unwrap().push(format!("not JSON: {}", ev.json));
            }
            match ev.kind {
                EventKind::Response => {
                    *r2.lock().unwrap().entry(ev.request_id).or_default() += 1;
                    if ev.request_id >= 9_999_999_000 && !ev.json.contains(r#""ok":true"#) {
                        f2.lock().unwrap().push(format!("room no longer answers: {}", ev.json));
                    }
                }
                EventKind::Host if ev.json.contains("roomClosed") => f2.lock().unwrap().push(format!("room closed: {}", ev.json)),
                _ => {}
            }
        }),
    )
    .unwrap();
    let rooms = ["fa", "fb"];
    for r in rooms {
        server.create_room(r, None).unwrap();
    }
    let peers = ["p1", "p2", "p3", ""];
    let tpl = templates();
    for i in 0..iterations {
        let room = *g.pick(&rooms);
        let peer = *g.pick(&peers);
        let bytes: Vec<u8> = match g.below(10) {
            0 => (0..g.below(64)).map(|_| g.next() as u8).collect(),
            1 => g.value(4).to_string().into_bytes(),
            2 => {
                let mut s = g.pick(&tpl).to_string().into_bytes();
                let n = s.len() as u64;
                if n > 0 {
                    s.truncate(g.below(n) as usize);
                }
                s
            }
            _ => {
                let mut v = g.pick(&tpl).clone();
                for _ in 0..g.below(3) {
                    g.mutate(&mut v, 4);
                }
                v.to_string().into_bytes()
            }
        };
        // Valid joins keep peers around so later messages reach deep code paths.
        if g.below(8) == 0 {
            let _ = server.request(room, peer, 1_000_000 + i, br#"{"method":"join","target":"room","spy":false}"#);
            r2_expect(&responses, 1_000_000 + i);
        }
        if g.below(3) == 0 {
            server.notify(room, peer, &bytes).unwrap();
        } else {
            server.request(room, peer, i, &bytes).unwrap();
            r2_expect(&responses, i);
        }
    }
    // Every request answered exactly once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = {
            let r = responses.lock().unwrap();
            r.values().all(|n| *n >= 1)
        };
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The rooms still work.
    for (i, r) in rooms.iter().enumerate() {
        server.request(r, "late", 9_999_999_000 + i as u64, br#"{"method":"queryRoom","target":"room"}"#).unwrap();
        r2_expect(&responses, 9_999_999_000 + i as u64);
    }
    std::thread::sleep(Duration::from_millis(200));
    server.close();
    let r = responses.lock().unwrap();
    let missing: Vec<_> = r.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
    let dup: Vec<_> = r.iter().filter(|(_, n)| **n > 1).map(|(k, _)| *k).collect();
    assert!(missing.is_empty(), "seed {seed}: requests without response: {:?}", &missing[..missing.len().min(10)]);
    assert!(dup.is_empty(), "seed {seed}: requests with several responses: {:?}", &dup[..dup.len().min(10)]);
    let f = failures.lock().unwrap();
    assert!(f.is_empty(), "seed {seed}: {:?}", &f[..f.len().min(5)]);
    assert!(r.len() as u64 > iterations / 2, "most iterations were requests");
}

/// Register an expected response (count 0 until it arrives).
fn r2_expect(m: &Arc<Mutex<HashMap<u64, u32>>>, id: u64) {
    m.lock().unwrap().entry(id).or_insert(0);
}
