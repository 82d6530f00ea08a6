//! The mediasoup v2 signalling rules (docs/PROTOCOL.md; "Where each rule is tested" maps its
//! sections to these tests), one test per rule, driven through the public API like a host
//! would. The `sN_M` prefixes of the names are an older numbering, not sections of the doc.

use std::time::Duration;

use sfu_testkit::builders::{client_caps, fake_dtls, producer_params};
use sfu_testkit::harness::{Harness};
use serde_json::{json, Value};

const R: &str = "room1";

fn room() -> Harness {
    let h = Harness::local();
    h.server.create_room(R, None).unwrap();
    h
}

fn send_transport(h: &Harness, peer: &str, id: u64) -> Value {
    h.request(R, peer, json!({"method": "createTransport", "target": "peer", "id": id, "direction": "send",
        "options": {}, "dtlsParameters": fake_dtls("server"), "appData": {}}))
        .unwrap()
}

fn recv_transport(h: &Harness, peer: &str, id: u64) -> Value {
    h.request(R, peer, json!({"method": "createTransport", "target": "peer", "id": id, "direction": "recv",
        "options": {}, "appData": {}}))
        .unwrap()
}

fn produce(h: &Harness, peer: &str, id: u64, tid: u64, kind: &str, ssrc: u32) -> Result<Value, String> {
    h.request(R, peer, json!({"method": "createProducer", "target": "peer", "id": id, "kind": kind,
        "transportId": tid, "rtpParameters": producer_params(kind, &id.to_string(), ssrc, Some(ssrc + 1)),
        "paused": false, "appData": {"p": id}}))
}

fn methods(ns: &[Value]) -> Vec<String> {
    ns.iter().map(|n| n["method"].as_str().unwrap().to_string()).collect()
}

#[test]
fn s8_1_room_capabilities_follow_the_client_constraints() {
    let h = room();
    let q = h.request(R, "a", json!({"method": "queryRoom", "target": "room"})).unwrap();
    assert_eq!(q["mandatoryCodecPayloadTypes"], json!([]));
    let codecs = q["rtpCapabilities"]["codecs"].as_array().unwrap();
    let names: Vec<&str> = codecs.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["opus", "VP8", "rtx", "VP9", "rtx", "H264", "rtx"]);
    for c in codecs {
        assert!(c["mimeType"].as_str().unwrap().contains('/'), "mimeType present: {c}");
        if c["kind"] == "video" {
            assert!(c.get("channels").is_none(), "video codecs have no channels: {c}");
        }
        if c["name"] == "rtx" {
            let apt = c["parameters"]["apt"].as_u64().expect("numeric apt");
            assert!(codecs.iter().any(|m| m["preferredPayloadType"] == apt && m["name"] != "rtx"));
        }
    }
    assert_eq!(codecs[0]["channels"], 2, "opus is stereo");
    assert_eq!(codecs[0]["preferredPayloadType"], 100, "mediasoup's PT sequence starts at 100");
    let h264 = &codecs[5];
    assert_eq!(h264["parameters"]["packetization-mode"], 1, "numeric fmtp values are numbers");
    assert_eq!(h264["parameters"]["profile-level-id"], "42e01f");
    let vp8_fb: Vec<String> = codecs[1]["rtcpFeedback"].as_array().unwrap().iter()
        .map(|f| format!("{} {}", f["type"].as_str().unwrap(), f["parameter"].as_str().unwrap_or(""))).collect();
    for want in ["nack ", "nack pli", "ccm fir", "transport-cc "] {
        assert!(vp8_fb.iter().any(|f| f == want), "VP8 has {want}: {vp8_fb:?}");
    }
    let exts = q["rtpCapabilities"]["headerExtensions"].as_array().unwrap();
    assert!(exts.iter().any(|e| e["uri"].as_str().unwrap().contains("transport-wide-cc") && e["preferredId"] == 3));
    assert!(exts.iter().all(|e| (1..=14).contains(&e["preferredId"].as_u64().unwrap())));
}

#[test]
fn s8_1_room_options_are_validated() {
    let h = Harness::local();
    let bad = [
        r#"{"mediaCodecs":[{"kind":"audio","name":"nope","clockRate":48000}]}"#,
        r#"{"mediaCodecs":[{"kind":"video","name":"VP8"}]}"#,
        r#"{"mediaCodecs":[]}"#,
        r#"{"mediaCodecs":[{"kind":"video","name":"rtx","clockRate":90000}]}"#,
        r#"{"mediaCodecz":[]}"#,
        r#"{"mediaCodecs":[{"kind":"video","name":"H264","clockRate":90000,"parameters":{"packetization-mode":2}}]}"#,
        "not json",
    ];
    for (i, b) in bad.iter().enumerate() {
        let e = h.server.create_room(&format!("r{i}"), Some(b)).unwrap_err();
        assert!(matches!(e, sfu::SfuError::InvalidArgument(_)), "{b}: {e}");
    }
    h.server
        .create_room("ok", Some(r#"{"mediaCodecs":[{"kind":"audio","name":"opus","clockRate":48000,"channels":2},
            {"kind":"video","name":"H264","clockRate":90000,"parameters":{"packetization-mode":1}}]}"#))
        .unwrap();
    assert!(matches!(h.server.create_room("ok", None), Err(sfu::SfuError::RoomExists(_))));
    assert!(matches!(h.server.create_room("", None), Err(sfu::SfuError::InvalidArgument(_))));
}

#[test]
fn s4_2_join_answers_peers_caps_and_mandatory_pts() {
    let h = room();
    let j = h.join(R, "alice");
    assert_eq!(j["peers"], json!([]));
    assert!(j["rtpCapabilities"]["codecs"].is_array(), "seed compatibility: join also returns caps");
    assert_eq!(j["mandatoryCodecPayloadTypes"], json!([]));
    let j = h.join(R, "bob");
    assert_eq!(j["peers"][0]["name"], "alice");
    assert_eq!(j["peers"][0]["appData"], json!({"n": "alice"}));
    assert_eq!(j["peers"][0]["consumers"], json!([]));
}

#[test]
fn s4_2_join_rejects_capabilities_that_do_not_match_the_room() {
    let h = room();
    let q = h.request(R, "a", json!({"method": "queryRoom", "target": "room"})).unwrap();
    let mut caps = client_caps(&q["rtpCapabilities"]);
    caps["codecs"][1]["preferredPayloadType"] = json!(96);
    let e = h.request(R, "a", json!({"method": "join", "peerName": "a", "rtpCapabilities": caps, "spy": false})).unwrap_err();
    assert!(e.contains("unsupported codec"), "{e}");
    let mut caps = client_caps(&q["rtpCapabilities"]);
    caps["headerExtensions"][0]["preferredId"] = json!(9);
    let e = h.request(R, "a", json!({"method": "join", "peerName": "a", "rtpCapabilities": caps, "spy": false})).unwrap_err();
    assert!(e.contains("unsupported header extension"), "{e}");
    // A subset of the room's codecs is fine.
    let mut caps = client_caps(&q["rtpCapabilities"]);
    caps["codecs"].as_array_mut().unwrap().truncate(3);
    h.request(R, "a", json!({"method": "join", "peerName": "a", "rtpCapabilities": caps, "spy": false})).unwrap();
}

#[test]
fn s4_2_duplicate_join_is_rejected() {
    let h = room();
    h.join(R, "alice");
    let e = h.request(R, "alice", json!({"method": "join", "target": "room", "peerName": "alice", "spy": false})).unwrap_err();
    assert!(e.contains("already joined"), "{e}");
}

#[test]
fn s10_peer_name_comes_from_the_host_not_the_message() {
    let h = room();
    h.request(R, "alice", json!({"method": "join", "target": "room", "peerName": "mallory", "spy": false})).unwrap();
    let j = h.join(R, "bob");
    assert_eq!(j["peers"][0]["name"], "alice");
    let n = h.notifications("alice");
    assert_eq!(n[0]["method"], "newPeer");
    assert_eq!(n[0]["name"], "bob");
}

#[test]
fn requests_before_join_are_rejected() {
    let h = room();
    for m in ["createTransport", "createProducer", "enableConsumer", "restartTransport"] {
        let e = h.request(R, "ghost", json!({"method": m, "target": "peer", "id": 1})).unwrap_err();
        assert_eq!(e, "peer not joined", "{m}");
    }
}

#[test]
fn s4_2_new_peer_goes_to_others_but_never_about_a_spy() {
    let h = room();
    h.join(R, "alice");
    h.request(R, "spy", json!({"method": "join", "target": "room", "peerName": "spy", "spy": true})).unwrap();
    assert!(h.notifications("alice").is_empty(), "no newPeer about a spy");
    h.join(R, "bob");
    let a = h.notifications("alice");
    assert_eq!(methods(&a), ["newPeer"]);
    assert_eq!(a[0]["consumers"], json!([]));
    assert_eq!(a[0]["notification"], true);
    assert_eq!(a[0]["target"], "peer");
    assert_eq!(methods(&h.notifications("spy")), ["newPeer"], "spies see others");
    // the spy is not listed to bob
    let j = h.join(R, "carol");
    let names: Vec<&str> = j["peers"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice", "bob"]);
    send_transport(&h, "spy", 1);
    let e = produce(&h, "spy", 5, 1, "audio", 1000).unwrap_err();
    assert!(e.contains("spy"), "{e}");
}

#[test]
fn s4_3_create_transport_answers_real_ice_lite_and_dtls_parameters() {
    let h = room();
    h.join(R, "alice");
    let t = send_transport(&h, "alice", 11);
    assert_eq!(t["iceParameters"]["iceLite"], true);
    assert!(t["iceParameters"]["usernameFragment"].as_str().unwrap().len() >= 4);
    assert!(t["iceParameters"]["password"].as_str().unwrap().len() >= 22);
    let c = &t["iceCandidates"][0];
    assert_eq!(c["ip"], "127.0.0.1");
    assert_eq!(c["protocol"], "udp");
    assert_eq!(c["type"], "host");
    assert!(c["priority"].as_u64().unwrap() > 0);
    assert_eq!(c["port"].as_u64().unwrap() as u16, h.server.ports()[0], "the bound UDP port");
    // the port is really bound: binding it again fails
    assert!(std::net::UdpSocket::bind(("127.0.0.1", h.server.ports()[0])).is_err());
    let fps = t["dtlsParameters"]["fingerprints"].as_array().unwrap();
    let last = fps.last().unwrap();
    assert_eq!(last["algorithm"], "sha-256");
    let v = last["value"].as_str().unwrap();
    assert_eq!(v.split(':').count(), 32);
    assert!(v.split(':').all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())));
    // DTLS roles (docs/PROTOCOL.md): the client said "server" -> we are "client"
    assert_eq!(t["dtlsParameters"]["role"], "client");
    let r = recv_transport(&h, "alice", 12);
    assert_eq!(r["dtlsParameters"]["role"], "auto");
    assert_eq!(r["dtlsParameters"]["fingerprints"], t["dtlsParameters"]["fingerprints"], "one certificate per server");
    assert_ne!(r["iceParameters"]["usernameFragment"], t["iceParameters"]["usernameFragment"]);
}

#[test]
fn s4_3_transport_ids_are_per_peer_and_can_be_recreated_after_close() {
    let h = room();
    h.join(R, "alice");
    h.join(R, "bob");
    send_transport(&h, "alice", 7);
    send_transport(&h, "bob", 7);
    let e = h.request(R, "alice", json!({"method": "createTransport", "id": 7, "direction": "send", "options": {},
        "dtlsParameters": fake_dtls("server")})).unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    h.notify(R, "alice", json!({"method": "closeTransport", "target": "peer", "notification": true, "id": 7}));
    send_transport(&h, "alice", 7);
}

#[test]
fn s10_create_transport_without_direction_uses_dtls_presence() {
    let h = room();
    h.join(R, "alice");
    let t = h.request(R, "alice", json!({"method": "createTransport", "id": 1, "options": {}, "dtlsParameters": fake_dtls("server")})).unwrap();
    assert_eq!(t["dtlsParameters"]["role"], "client");
    let t = h.request(R, "alice", json!({"method": "createTransport", "id": 2, "options": {}})).unwrap();
    assert_eq!(t["dtlsParameters"]["role"], "auto");
    // a recv transport cannot carry producers
    let e = produce(&h, "alice", 9, 2, "audio", 500).unwrap_err();
    assert!(e.contains("not a send transport"), "{e}");
}

#[test]
fn s4_4_restart_transport_gives_new_ice_credentials() {
    let h = room();
    h.join(R, "alice");
    let t = send_transport(&h, "alice", 1);
    let r = h.request(R, "alice", json!({"method": "restartTransport", "target": "peer", "id": 1})).unwrap();
    assert_eq!(r["iceParameters"]["iceLite"], true);
    assert_ne!(r["iceParameters"]["usernameFragment"], t["iceParameters"]["usernameFragment"]);
    assert_ne!(r["iceParameters"]["password"], t["iceParameters"]["password"]);
    let e = h.request(R, "alice", json!({"method": "restartTransport", "id": 99})).unwrap_err();
    assert_eq!(e, "transport not found");
}

#[test]
fn s8_9_dtls_parameters_apply_once() {
    let h = room();
    h.join(R, "alice");
    recv_transport(&h, "alice", 2);
    h.notify(R, "alice", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": fake_dtls("client")}));
    h.notify(R, "alice", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2, "dtlsParameters": fake_dtls("client")}));
    let ev = h.wait_host_event("notificationError", Duration::from_secs(5)).expect("second apply is an error");
    assert_eq!(ev.json["method"], "updateTransport");
    assert!(ev.json["error"].as_str().unwrap().contains("already"), "{}", ev.json);
    h.notify(R, "alice", json!({"method": "updateTransport", "target": "peer", "notification": true, "id": 2,
        "dtlsParameters": {"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "zz"}]}}));
    let ev = h.wait_host_event("notificationError", Duration::from_secs(5)).unwrap();
    assert!(ev.json["error"].as_str().unwrap().contains("already") || ev.json["error"].as_str().unwrap().contains("fingerprint"));
}

fn consumer_of(n: &Value) -> (u64, Value) {
    (n["id"].as_u64().unwrap(), n["rtpParameters"].clone())
}

#[test]
fn s8_3_s8_5_producer_is_mapped_to_room_pts_and_consumers_get_new_ssrcs() {
    let h = room();
    h.join(R, "alice");
    h.join(R, "bob");
    h.notifications("alice");
    send_transport(&h, "alice", 1);
    assert_eq!(produce(&h, "alice", 100, 1, "video", 5000).unwrap(), json!({}));
    let n = h.notifications("bob");
    assert_eq!(methods(&n), ["newConsumer"]);
    let nc = &n[0];
    assert_eq!(nc["kind"], "video");
    assert_eq!(nc["peerName"], "alice");
    assert_eq!(nc["paused"], false);
    assert_eq!(nc["appData"], json!({"p": 100}));
    assert_eq!(nc["preferredProfile"], "default");
    assert!(nc["effectiveProfile"].is_null());
    let (_, rp) = consumer_of(nc);
    let pts: Vec<u64> = rp["codecs"].as_array().unwrap().iter().map(|c| c["payloadType"].as_u64().unwrap()).collect();
    assert_eq!(pts, [101, 102], "room PTs (VP8, its RTX), not the browser's 96/97");
    assert_eq!(rp["codecs"][1]["parameters"]["apt"], 101);
    let ids: Vec<u64> = rp["headerExtensions"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(!rp["headerExtensions"].as_array().unwrap().iter().any(|e| e["uri"].as_str().unwrap().ends_with("sdes:mid")), "mid removed");
    assert!(ids.contains(&3) && ids.contains(&14) && ids.contains(&13), "{ids:?}");
    let enc = &rp["encodings"].as_array().unwrap();
    assert_eq!(enc.len(), 1);
    let ssrc = enc[0]["ssrc"].as_u64().unwrap();
    let rtx = enc[0]["rtx"]["ssrc"].as_u64().unwrap();
    assert!(ssrc != 5000 && ssrc != 5001 && rtx != ssrc, "server-chosen SSRCs");
    assert_eq!(rp["rtcp"]["cname"], "cname-5000", "producer's CNAME preserved");
    assert!(rp.get("muxId").is_none());
    // The producer itself gets nothing.
    assert!(h.notifications("alice").is_empty());
}

#[test]
fn s8_3_producer_parameters_are_validated() {
    let h = room();
    h.join(R, "alice");
    send_transport(&h, "alice", 1);
    let base = |f: &dyn Fn(&mut Value)| {
        let mut p = producer_params("video", "0", 7000, Some(7001));
        f(&mut p);
        h.request(R, "alice", json!({"method": "createProducer", "id": 1, "kind": "video", "transportId": 1, "rtpParameters": p, "paused": false}))
    };
    let cases: Vec<(&str, Box<dyn Fn(&mut Value)>)> = vec![
        ("unsupported codec", Box::new(|p| p["codecs"][0]["name"] = json!("AV2"))),
        ("apt", Box::new(|p| p["codecs"][1]["parameters"]["apt"] = json!(55))),
        ("duplicated payloadType", Box::new(|p| p["codecs"][1]["payloadType"] = json!(96))),
        ("no encodings", Box::new(|p| p["encodings"] = json!([]))),
        ("no codecs", Box::new(|p| p["codecs"] = json!([]))),
        ("invalid `rtpParameters`", Box::new(|p| p["codecs"][0]["clockRate"] = json!("fast"))),
        ("not of kind video", Box::new(|p| p["codecs"][0]["mimeType"] = json!("audio/VP8"))),
        ("single encoding", Box::new(|p| p["encodings"][0]["profile"] = json!("high"))),
    ];
    for (want, f) in cases {
        let e = base(&*f).unwrap_err();
        assert!(e.contains(want), "want {want:?} in {e:?}");
    }
    let e = h.request(R, "alice", json!({"method": "createProducer", "id": 1, "kind": "depth2", "transportId": 1,
        "rtpParameters": producer_params("video", "0", 1, None), "paused": false})).unwrap_err();
    assert!(e.contains("unsupported kind"), "{e}");
    let e = h.request(R, "alice", json!({"method": "createProducer", "id": 1, "kind": "video", "transportId": 42,
        "rtpParameters": producer_params("video", "0", 1, None), "paused": false})).unwrap_err();
    assert_eq!(e, "transport not found");
    produce(&h, "alice", 1, 1, "video", 7000).unwrap();
    let e = produce(&h, "alice", 1, 1, "video", 8000).unwrap_err();
    assert!(e.contains("already exists"), "{e}");
    let e = produce(&h, "alice", 2, 1, "video", 7000).unwrap_err();
    assert!(e.contains("ssrc 7000 already used"), "{e}");
}

#[test]
fn s8_11_new_peer_precedes_new_consumer_and_join_lists_existing_consumers() {
    let h = room();
    h.join(R, "alice");
    send_transport(&h, "alice", 1);
    produce(&h, "alice", 1, 1, "audio", 100).unwrap();
    produce(&h, "alice", 2, 1, "video", 200).unwrap();
    let j = h.join(R, "bob");
    let consumers = j["peers"][0]["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 2, "bob gets consumers for alice's producers in the join response");
    assert_eq!(consumers[0]["kind"], "audio");
    assert_eq!(consumers[1]["kind"], "video");
    assert!(h.notifications("bob").is_empty(), "no newConsumer for existing producers");
    h.join(R, "carol");
    send_transport(&h, "carol", 1);
    produce(&h, "carol", 3, 1, "audio", 300).unwrap();
    let b = methods(&h.notifications("bob"));
    assert_eq!(b, ["newPeer", "newConsumer"], "newPeer before newConsumer naming it");
    // consumer ids are unique and server-chosen
    let mut ids: Vec<u64> = consumers.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|i| (10_000_000..=99_999_999).contains(i)));
}

fn setup_pair(h: &Harness) -> (u64, u64) {
    h.join(R, "alice");
    h.join(R, "bob");
    send_transport(h, "alice", 1);
    recv_transport(h, "bob", 2);
    produce(h, "alice", 10, 1, "video", 900).unwrap();
    h.notifications("alice");
    let n = h.notifications("bob");
    let cid = n.iter().find(|n| n["method"] == "newConsumer").unwrap()["id"].as_u64().unwrap();
    (10, cid)
}

#[test]
fn s4_6_enable_consumer_answers_pause_and_profiles() {
    let h = room();
    let (_, cid) = setup_pair(&h);
    let r = h.request(R, "bob", json!({"method": "enableConsumer", "target": "peer", "id": cid, "transportId": 2,
        "paused": true, "preferredProfile": "default"})).unwrap();
    assert_eq!(r["paused"], false, "the client's own pause is not reported back");
    assert_eq!(r["preferredProfile"], "default");
    assert_eq!(r["effectiveProfile"], "default");
    let e = h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false})).unwrap_err();
    assert!(e.contains("already enabled"), "{e}");
    let e = h.request(R, "bob", json!({"method": "enableConsumer", "id": 12345, "transportId": 2, "paused": false})).unwrap_err();
    assert_eq!(e, "consumer not found");
    let e = h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 77, "paused": false})).unwrap_err();
    assert!(e == "transport not found" || e.contains("already enabled"), "{e}");
}

#[test]
fn authorization_a_peer_cannot_name_another_peers_objects() {
    let h = room();
    let (pid, cid) = setup_pair(&h);
    h.join(R, "eve");
    h.notifications("alice");
    h.notifications("bob");
    // eve names bob's consumer, alice's producer and transports
    let e = h.request(R, "eve", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false})).unwrap_err();
    assert_eq!(e, "consumer not found");
    h.notify(R, "eve", json!({"method": "pauseProducer", "notification": true, "id": pid}));
    h.notify(R, "eve", json!({"method": "closeTransport", "notification": true, "id": 1}));
    let e = h.request(R, "eve", json!({"method": "restartTransport", "id": 1})).unwrap_err();
    assert_eq!(e, "transport not found");
    h.sync(R);
    assert!(h.notifications("bob").is_empty(), "alice's producer was not paused by eve");
    let errs = h.host_events();
    assert!(errs.iter().any(|g| g.json["method"] == "pauseProducer" && g.json["error"] == "producer not found"));
    assert!(errs.iter().any(|g| g.json["method"] == "closeTransport" && g.json["error"] == "transport not found"));
    // a room that does not exist
    let e = h.request("other-room", "bob", json!({"method": "queryRoom"})).unwrap_err();
    assert_eq!(e, "room not found");
}

#[test]
fn s10_enable_consumer_seed_shape_uses_the_recv_transport() {
    let h = room();
    let (_, cid) = setup_pair(&h);
    let r = h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "rtpSettings": {"useRtx": false}})).unwrap();
    assert_eq!(r["paused"], false);
}

#[test]
fn s8_7_producer_pause_reaches_consumers_enabled_or_not() {
    let h = room();
    let (pid, cid) = setup_pair(&h);
    h.notify(R, "alice", json!({"method": "pauseProducer", "target": "peer", "notification": true, "id": pid}));
    h.sync(R);
    let n = h.notifications("bob");
    assert_eq!(methods(&n), ["consumerPaused"], "sent although the consumer is not enabled");
    assert_eq!(n[0]["id"], cid);
    assert_eq!(n[0]["peerName"], "alice");
    assert!(h.notifications("alice").is_empty(), "no notification to the owner");
    // a newcomer sees the paused state synchronously (no stuck-pause)
    let j = h.join(R, "carol");
    assert_eq!(j["peers"][0]["consumers"][0]["paused"], true);
    let r = h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false})).unwrap();
    assert_eq!(r["paused"], true);
    h.notify(R, "alice", json!({"method": "resumeProducer", "target": "peer", "notification": true, "id": pid}));
    h.sync(R);
    assert_eq!(methods(&h.notifications("bob")), ["newPeer", "consumerResumed"]);
    assert_eq!(methods(&h.notifications("carol")), ["consumerResumed"], "resumed reaches a disabled consumer too");
    // pausing twice sends nothing new
    h.notify(R, "alice", json!({"method": "resumeProducer", "notification": true, "id": pid}));
    h.sync(R);
    assert!(h.notifications("bob").is_empty());
}

#[test]
fn s8_7_a_producer_created_paused_yields_paused_consumers() {
    let h = room();
    h.join(R, "alice");
    h.join(R, "bob");
    send_transport(&h, "alice", 1);
    h.request(R, "alice", json!({"method": "createProducer", "id": 3, "kind": "audio", "transportId": 1,
        "rtpParameters": producer_params("audio", "0", 42, None), "paused": true})).unwrap();
    let n = h.notifications("bob");
    let nc = n.iter().find(|n| n["method"] == "newConsumer").unwrap();
    assert_eq!(nc["paused"], true);
}

#[test]
fn s5_consumer_pause_by_its_client_sends_nothing_back() {
    let h = room();
    let (_, cid) = setup_pair(&h);
    h.notify(R, "bob", json!({"method": "pauseConsumer", "notification": true, "id": cid}));
    h.notify(R, "bob", json!({"method": "resumeConsumer", "notification": true, "id": cid}));
    h.sync(R);
    assert!(h.notifications("bob").is_empty());
    assert!(h.notifications("alice").is_empty());
    assert!(h.host_events().is_empty(), "valid notifications raise no errors");
}

#[test]
fn s8_8_close_producer_closes_consumers_and_unknown_ids_are_ignored() {
    let h = room();
    let (pid, cid) = setup_pair(&h);
    h.notify(R, "alice", json!({"method": "closeProducer", "target": "peer", "notification": true, "id": pid}));
    h.notify(R, "alice", json!({"method": "closeProducer", "target": "peer", "notification": true, "id": 987654}));
    h.sync(R);
    let n = h.notifications("bob");
    assert_eq!(methods(&n), ["consumerClosed"]);
    assert_eq!(n[0]["id"], cid);
    assert_eq!(n[0]["peerName"], "alice");
    assert!(h.notifications("alice").is_empty(), "no producerClosed to the owner");
    assert!(h.host_events().is_empty(), "unknown closeProducer id silently ignored");
    let e = h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false})).unwrap_err();
    assert_eq!(e, "consumer not found");
}

#[test]
fn s8_8_client_closing_a_transport_closes_its_producers_and_detaches_consumers() {
    let h = room();
    let (_, cid) = setup_pair(&h);
    h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false})).unwrap();
    // bob also produces; alice consumes it, enabled on her recv transport
    send_transport(&h, "bob", 3);
    produce(&h, "bob", 20, 3, "audio", 4000).unwrap();
    let acid = h.notifications("alice")[0]["id"].as_u64().unwrap();
    recv_transport(&h, "alice", 4);
    h.request(R, "alice", json!({"method": "enableConsumer", "id": acid, "transportId": 4, "paused": false})).unwrap();
    // alice closes her send transport: bob's consumer of her producer closes
    h.notify(R, "alice", json!({"method": "closeTransport", "notification": true, "id": 1}));
    h.sync(R);
    assert_eq!(methods(&h.notifications("bob")), ["consumerClosed"]);
    assert!(h.notifications("alice").is_empty(), "no transportClosed for a client close");
    // alice closes her recv transport: her consumer is detached, not closed
    h.notify(R, "alice", json!({"method": "closeTransport", "notification": true, "id": 4}));
    h.sync(R);
    assert!(h.notifications("alice").is_empty());
    recv_transport(&h, "alice", 5);
    h.request(R, "alice", json!({"method": "enableConsumer", "id": acid, "transportId": 5, "paused": false})).unwrap();
    // closeProducer after closeTransport for an already closed producer: ignored
    h.notify(R, "alice", json!({"method": "closeProducer", "notification": true, "id": 10}));
    h.sync(R);
    assert!(h.host_events().is_empty());
}

#[test]
fn s8_8_leave_sends_peer_closed_without_redundant_consumer_closed() {
    let h = room();
    let (_, _cid) = setup_pair(&h);
    h.notify(R, "alice", json!({"method": "leave", "target": "peer", "notification": true, "appData": {}}));
    h.sync(R);
    let n = h.notifications("bob");
    assert_eq!(methods(&n), ["peerClosed"]);
    assert_eq!(n[0]["name"], "alice");
    assert!(h.notifications("alice").is_empty(), "the leaving peer gets nothing");
    // alice may join again
    h.join(R, "alice");
}

#[test]
fn s8_8_host_closing_a_peer_sends_closed_then_peer_closed() {
    let h = room();
    setup_pair(&h);
    h.server.close_peer(R, "alice").unwrap();
    assert_eq!(methods(&h.notifications("alice")), ["closed"]);
    assert_eq!(methods(&h.notifications("bob")), ["peerClosed"]);
    assert!(matches!(h.server.close_peer(R, "alice"), Err(sfu::SfuError::PeerNotFound(_))));
    assert!(matches!(h.server.close_peer("nope", "alice"), Err(sfu::SfuError::RoomNotFound(_))));
}

#[test]
fn s8_8_closing_the_room_sends_closed_and_room_closed_to_seed_peers() {
    let h = room();
    h.join(R, "alice");
    // seed shape: join without rtpCapabilities
    h.request(R, "old", json!({"method": "join", "appData": {}})).unwrap();
    h.notifications("alice");
    h.server.close_room(R).unwrap();
    assert_eq!(methods(&h.notifications("alice")), ["closed"]);
    assert_eq!(methods(&h.notifications("old")), ["closed", "roomClosed"]);
    let e = h.request(R, "alice", json!({"method": "queryRoom"})).unwrap_err();
    assert_eq!(e, "room not found");
    assert!(matches!(h.server.close_room(R), Err(sfu::SfuError::RoomNotFound(_))));
}

#[test]
fn s6_10_preferred_profile_is_validated_and_stored() {
    let h = room();
    let (_, cid) = setup_pair(&h);
    h.notify(R, "bob", json!({"method": "setConsumerPreferredProfile", "notification": true, "id": cid, "profile": "ultra"}));
    h.notify(R, "bob", json!({"method": "setConsumerPreferredProfile", "notification": true, "id": cid, "profile": "low"}));
    h.sync(R);
    let ev = h.host_events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(ev[0].json["error"].as_str().unwrap().contains("profile"));
    let r = h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false, "preferredProfile": "low"})).unwrap();
    assert_eq!(r["preferredProfile"], "low");
}

#[test]
fn s8_6_simulcast_consumer_gets_one_encoding_and_profile_changes_are_announced() {
    let h = room();
    h.join(R, "alice");
    h.join(R, "bob");
    send_transport(&h, "alice", 1);
    recv_transport(&h, "bob", 2);
    let mut p = producer_params("video", "0", 100, Some(101));
    p["encodings"] = json!([{"ssrc": 100, "rtx": {"ssrc": 101}, "profile": "low"},
                            {"ssrc": 110, "rtx": {"ssrc": 111}, "profile": "medium"},
                            {"ssrc": 120, "rtx": {"ssrc": 121}, "profile": "high"}]);
    h.request(R, "alice", json!({"method": "createProducer", "id": 1, "kind": "video", "transportId": 1, "rtpParameters": p, "paused": false})).unwrap();
    let n = h.notifications("bob");
    let nc = n.iter().find(|n| n["method"] == "newConsumer").unwrap();
    assert_eq!(nc["rtpParameters"]["encodings"].as_array().unwrap().len(), 1);
    let cid = nc["id"].as_u64().unwrap();
    let r = h.request(R, "bob", json!({"method": "enableConsumer", "id": cid, "transportId": 2, "paused": false, "preferredProfile": "default"})).unwrap();
    assert_eq!(r["effectiveProfile"], "high");
    h.notify(R, "bob", json!({"method": "setConsumerPreferredProfile", "notification": true, "id": cid, "profile": "medium"}));
    let ch = h.wait_notification("bob", "consumerEffectiveProfileChanged", Duration::from_secs(5)).unwrap();
    assert_eq!(ch["profile"], "medium");
    assert_eq!(ch["id"], cid);
    assert_eq!(ch["peerName"], "alice");
}

#[test]
fn s6_3_stats_subscriptions_produce_periodic_notifications() {
    let h = room();
    let (pid, cid) = setup_pair(&h);
    h.notify(R, "alice", json!({"method": "enableTransportStats", "notification": true, "id": 1, "interval": 1000}));
    h.notify(R, "alice", json!({"method": "enableProducerStats", "notification": true, "id": pid, "interval": 1000}));
    h.notify(R, "bob", json!({"method": "enableConsumerStats", "notification": true, "id": cid, "interval": 1000}));
    let t = h.wait_notification("alice", "transportStats", Duration::from_secs(5)).expect("transportStats");
    assert_eq!(t["id"], 1);
    assert_eq!(t["stats"][0]["type"], "transport");
    assert!(t["stats"][0]["bytesReceived"].is_u64());
    let p = h.wait_notification("alice", "producerStats", Duration::from_secs(5)).expect("producerStats");
    assert_eq!(p["id"], pid);
    assert_eq!(p["stats"][0]["ssrc"], 900);
    h.notify(R, "alice", json!({"method": "disableTransportStats", "notification": true, "id": 1}));
    h.notify(R, "alice", json!({"method": "disableProducerStats", "notification": true, "id": pid}));
    h.sync(R);
    h.notifications("alice");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(h.notifications("alice").is_empty(), "disabled stats stop");
}

#[test]
fn bad_input_always_gets_exactly_one_error_response() {
    let h = room();
    h.join(R, "alice");
    let cases: Vec<(&[u8], &str)> = vec![
        (b"{not json", "invalid JSON"),
        (b"[1,2]", "JSON object"),
        (b"{}", "missing field `method`"),
        (br#"{"method":7}"#, "must be a string"),
        (br#"{"method":"fly"}"#, "unknown method"),
        (br#"{"method":"createTransport"}"#, "missing field `id`"),
        (br#"{"method":"createTransport","id":"7"}"#, "field `id` must be"),
        (br#"{"method":"createTransport","id":-7}"#, "field `id` must be"),
        (br#"{"method":"createTransport","id":7,"direction":"up"}"#, "invalid `direction`"),
        (br#"{"method":"createTransport","id":7,"dtlsParameters":{"fingerprints":"x"}}"#, "invalid `dtlsParameters`"),
        (br#"{"method":"enableConsumer","id":7,"paused":"yes"}"#, "consumer not found"),
        (br#"{"method":"queryRoom","notification":true}"#, "must not carry"),
        (&[0xff, 0xfe, 0x00], "invalid JSON"),
    ];
    for (bytes, want) in cases {
        let r = h.request_raw(R, "alice", bytes);
        assert_eq!(r["ok"], false, "{}", String::from_utf8_lossy(bytes));
        let e = r["error"].as_str().unwrap();
        assert!(e.contains(want), "{}: want {want:?}, got {e:?}", String::from_utf8_lossy(bytes));
    }
    // oversized input
    let big = format!(r#"{{"method":"queryRoom","pad":"{}"}}"#, "x".repeat(300 * 1024));
    let r = h.request_raw(R, "alice", big.as_bytes());
    assert!(r["error"].as_str().unwrap().contains("too large"), "{r}");
}

#[test]
fn notification_errors_are_reported_to_the_host() {
    let h = room();
    h.join(R, "alice");
    h.notify(R, "alice", json!({"method": "pauseConsumer", "notification": true}));
    h.notify(R, "alice", json!({"method": "join", "notification": true}));
    h.notify(R, "nobody", json!({"method": "leave", "notification": true}));
    h.server.notify(R, "alice", b"garbage").unwrap();
    h.sync(R);
    let ev = h.host_events();
    let errs: Vec<&str> = ev.iter().map(|g| g.json["error"].as_str().unwrap()).collect();
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[0].contains("missing field `id`"));
    assert!(errs[1].contains("is a request"));
    assert!(errs[2].contains("not joined"));
    assert!(errs[3].contains("invalid JSON"));
}

#[test]
fn resource_limits_are_clear_errors() {
    let h = Harness::new(Some(
        r#"{"numWorkers":1,"maxPeersPerRoom":2,"maxTransportsPerPeer":2,"maxProducersPerTransport":1,"maxPendingRequestsPerPeer":2}"#,
    ));
    h.server.create_room(R, None).unwrap();
    h.join(R, "alice");
    h.join(R, "bob");
    let e = h.request(R, "carol", json!({"method": "join", "peerName": "carol", "spy": false})).unwrap_err();
    assert_eq!(e, "too many peers in the room (limit 2)");
    send_transport(&h, "alice", 1);
    recv_transport(&h, "alice", 2);
    let e = h.request(R, "alice", json!({"method": "createTransport", "id": 3, "direction": "recv", "options": {}})).unwrap_err();
    assert_eq!(e, "too many transports for this peer (limit 2)");
    produce(&h, "alice", 1, 1, "audio", 100).unwrap();
    let e = produce(&h, "alice", 2, 1, "video", 200).unwrap_err();
    assert_eq!(e, "too many producers on this transport (limit 1)");
    // After a leave, there is room again.
    h.notify(R, "bob", json!({"method": "leave", "notification": true}));
    h.sync(R);
    h.join(R, "carol");
}

#[test]
fn pending_request_limit_answers_every_request_and_releases_its_count() {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let g2 = got.clone();
    let server = sfu::Server::new(
        Some(r#"{"numWorkers":1,"maxPendingRequestsPerPeer":2}"#),
        Box::new(move |ev| {
            if ev.kind == sfu::EventKind::Response {
                g2.lock().unwrap().push((ev.request_id, ev.json.to_string()));
            }
        }),
    )
    .unwrap();
    server.create_room(R, None).unwrap();
    for i in 0..300u64 {
        server.request(R, "p", i, br#"{"method":"queryRoom","target":"room"}"#).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 300 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 300, "every request answered once");
    let mut ids: Vec<u64> = got.iter().map(|g| g.0).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    let limited = got.iter().filter(|g| g.1.contains("too many pending requests for this peer (limit 2)")).count();
    let ok = got.iter().filter(|g| g.1.contains(r#""ok":true"#)).count();
    assert_eq!(limited + ok, 300, "only two kinds of answers");
    println!("{limited} of 300 rejected by the pending limit");
    // The count is released: with the queue drained, requests are accepted again.
    let (tx, rx) = crossbeam_channel::bounded(1);
    drop(server);
    let server = sfu::Server::new(Some(r#"{"numWorkers":1,"maxPendingRequestsPerPeer":1}"#), Box::new(move |ev| {
        let _ = tx.try_send(ev.json.to_string());
    }))
    .unwrap();
    server.create_room(R, None).unwrap();
    for i in 0..5 {
        server.request(R, "p", i, br#"{"method":"queryRoom"}"#).unwrap();
        let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(r.contains(r#""ok":true"#), "sequential requests never hit the limit: {r}");
    }
}
