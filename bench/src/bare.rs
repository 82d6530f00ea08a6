//! The bare data path: the floor an SFU's forwarding cost is compared with.
//!
//! One thread (`bare-dp`) does only what forwarding cannot avoid: `recvmmsg` SRTP
//! packets, decrypt each (AEAD-AES-256-GCM, the profile str0m negotiates), and for
//! each of N outputs rewrite the RTP header (SSRC, sequence number) and encrypt with
//! that output's own key, then `sendmmsg` in batches. The crypto is str0m's provider
//! (`str0m::crypto::from_feature_flags().srtp_provider`), i.e. the same aws-lc code the
//! SFU runs. A second thread (`gen-bare`, not measured) plays the publishers with the
//! scenario's packet pattern and drains the N sink sockets like consumers would.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::crypto::{AeadAes256GcmCipher, SupportedAeadAes256Gcm};

use crate::media::{frame_packets, Kind, AUDIO_INTERVAL, AUDIO_PAYLOAD, FRAME_INTERVAL, KEYFRAME_EVERY, VIDEO_PAYLOAD};
use crate::sys;

#[derive(Debug, Clone, Default)]
pub struct BareResult {
    pub pubs: usize,
    pub fanout: usize,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub cpu_ns: u64,
    pub secs: f64,
    pub ns_per_out: f64,
    pub sink_pkts: u64,
    pub decrypt_failures: u64,
}

const TAG: usize = 16;
const HDR: usize = 12;
const ARENA: usize = 128;

fn gcm() -> &'static dyn SupportedAeadAes256Gcm {
    str0m::crypto::from_feature_flags().srtp_provider.aead_aes_256_gcm()
}

fn key(seed: u64) -> ([u8; 32], [u8; 12]) {
    let mut k = [0u8; 32];
    let mut s = [0u8; 12];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in k.iter_mut().chain(s.iter_mut()) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    (k, s)
}

/// RFC 7714 §8.1 IV.
fn iv(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for i in 0..12 {
        iv[i] ^= salt[i];
    }
    iv
}

fn sockaddr(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = a else { panic!("v4 only") };
    // SAFETY: zeroed plain C struct.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as u16;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    s
}

struct Output {
    cipher: Box<dyn AeadAes256GcmCipher>,
    salt: [u8; 12],
    ssrc: u32,
    dest: libc::sockaddr_in,
}

/// Run the bare path with `pubs` publishers (audio, plus video unless `audio_only`),
/// each packet fanned out to `fanout` outputs; measure for `dur` after a warm-up.
pub fn run(pubs: usize, fanout: usize, audio_only: bool, dur: Duration) -> BareResult {
    run_with(pubs, fanout, audio_only, dur, false)
}

/// `per_packet_sendto`: one `sendto` per datagram instead of `sendmmsg` (to measure
/// what batching the system calls is worth on this machine).
pub fn run_with(pubs: usize, fanout: usize, audio_only: bool, dur: Duration, per_packet_sendto: bool) -> BareResult {
    let input = UdpSocket::bind("127.0.0.1:0").unwrap();
    let input_addr = input.local_addr().unwrap();
    let sinks: Vec<UdpSocket> = (0..fanout)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let sink_addrs: Vec<SocketAddr> = sinks.iter().map(|s| s.local_addr().unwrap()).collect();
    // 0: warm-up, 1: measuring, 2: stop.
    let phase = Arc::new(AtomicU8::new(0));
    let (k_in, salt_in) = key(1);

    let dp = {
        let phase = phase.clone();
        std::thread::Builder::new()
            .name("bare-dp".into())
            .spawn(move || data_path(input, k_in, salt_in, sink_addrs, pubs, phase, per_packet_sendto))
            .unwrap()
    };
    let feeder = {
        let phase = phase.clone();
        std::thread::Builder::new()
            .name("gen-bare".into())
            .spawn(move || feed_and_sink(input_addr, k_in, salt_in, sinks, pubs, audio_only, phase))
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(400));
    phase.store(1, SeqCst);
    let t0 = Instant::now();
    std::thread::sleep(dur);
    phase.store(2, SeqCst);
    let secs = t0.elapsed().as_secs_f64();
    let (in_pkts, out_pkts, cpu_ns, decrypt_failures) = dp.join().unwrap();
    let sink_pkts = feeder.join().unwrap();
    BareResult {
        pubs,
        fanout,
        in_pkts,
        out_pkts,
        cpu_ns,
        secs,
        ns_per_out: if out_pkts > 0 { cpu_ns as f64 / out_pkts as f64 } else { 0.0 },
        sink_pkts,
        decrypt_failures,
    }
}

/// Returns (input packets, output packets, CPU ns) of the measuring phase.
fn data_path(input: UdpSocket, k_in: [u8; 32], salt_in: [u8; 12], sinks: Vec<SocketAddr>, pubs: usize, phase: Arc<AtomicU8>, per_packet_sendto: bool) -> (u64, u64, u64, u64) {
    let g = gcm();
    let mut dec = g.create_cipher(k_in, false);
    let mut outs: Vec<Output> = sinks
        .iter()
        .enumerate()
        .map(|(j, a)| {
            let (k, salt) = key(1000 + j as u64);
            Output { cipher: g.create_cipher(k, true), salt, ssrc: 0x5000_0000 + j as u32, dest: sockaddr(*a) }
        })
        .collect();
    let nout = outs.len();
    // Per (input stream, output): next sequence number. Input SSRCs are 1000 + stream.
    let streams = pubs * 2;
    let mut seqs: Vec<u16> = vec![1000; streams * nout];

    let fd = input.as_raw_fd();
    const RB: usize = 32;
    let mut rbufs = vec![[0u8; 2048]; RB];
    let mut riov: Vec<libc::iovec> = vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; RB];
    // SAFETY: zeroed plain C structs.
    let mut rmsgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; RB];
    let mut plain = vec![0u8; 2048];
    let mut arena = vec![[0u8; 1536]; ARENA];
    let mut lens = [0usize; ARENA];
    let mut dests: Vec<libc::sockaddr_in> = vec![sockaddr("127.0.0.1:9".parse().unwrap()); ARENA];
    let mut used = 0usize;
    let (mut n_in, mut n_out, mut fails) = (0u64, 0u64, 0u64);
    let (mut in0, mut out0, mut cpu0) = (0, 0, 0);
    let mut measuring = false;

    let flush = |arena: &mut Vec<[u8; 1536]>, lens: &[usize; ARENA], dests: &mut Vec<libc::sockaddr_in>, used: &mut usize| {
        if *used == 0 {
            return;
        }
        let mut iov: [libc::iovec; ARENA] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; ARENA];
        // SAFETY: zeroed plain C structs.
        let mut msgs: [libc::mmsghdr; ARENA] = unsafe { std::mem::zeroed() };
        for i in 0..*used {
            iov[i] = libc::iovec { iov_base: arena[i].as_mut_ptr() as *mut libc::c_void, iov_len: lens[i] };
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &mut dests[i] as *mut _ as *mut libc::c_void;
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        }
        if per_packet_sendto {
            for m in msgs.iter().take(*used) {
                // SAFETY: as below, one message at a time.
                unsafe { libc::sendmsg(fd, &m.msg_hdr, 0) };
            }
            *used = 0;
            return;
        }
        let mut off = 0;
        while off < *used {
            // SAFETY: the messages point into arena/dests, alive for the call.
            let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr().add(off), (*used - off) as u32, 0) };
            if r <= 0 {
                break;
            }
            off += r as usize;
        }
        *used = 0;
    };

    loop {
        let ph = phase.load(Relaxed);
        if ph == 1 && !measuring {
            measuring = true;
            in0 = n_in;
            out0 = n_out;
            cpu0 = sys::thread_cputime_ns();
        }
        if ph == 2 {
            let cpu = sys::thread_cputime_ns() - cpu0;
            return (n_in - in0, n_out - out0, cpu, fails);
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 20) };
        for i in 0..RB {
            riov[i] = libc::iovec { iov_base: rbufs[i].as_mut_ptr() as *mut libc::c_void, iov_len: 2048 };
            rmsgs[i].msg_hdr.msg_iov = &mut riov[i];
            rmsgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: buffers live for the call.
        let n = unsafe { libc::recvmmsg(fd, rmsgs.as_mut_ptr(), RB as u32, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        if n <= 0 {
            continue;
        }
        for i in 0..n as usize {
            let len = rmsgs[i].msg_len as usize;
            let pkt = &rbufs[i][..len];
            if len < HDR + TAG {
                continue;
            }
            n_in += 1;
            let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
            let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
            let (hdr, body) = pkt.split_at(HDR);
            let Ok(pl) = dec.decrypt(&iv(&salt_in, ssrc, 0, seq), &[hdr], body, &mut plain) else {
                fails += 1;
                continue;
            };
            let stream = (ssrc.wrapping_sub(1000) as usize).min(streams - 1);
            for (j, o) in outs.iter_mut().enumerate() {
                if used == ARENA {
                    flush(&mut arena, &lens, &mut dests, &mut used);
                }
                let s = &mut seqs[stream * nout + j];
                let out_seq = *s;
                *s = s.wrapping_add(1);
                let buf = &mut arena[used];
                buf[..HDR].copy_from_slice(hdr);
                buf[2..4].copy_from_slice(&out_seq.to_be_bytes());
                buf[8..12].copy_from_slice(&o.ssrc.to_be_bytes());
                let (h, rest) = buf.split_at_mut(HDR);
                if o.cipher.encrypt(&iv(&o.salt, o.ssrc, 0, out_seq), h, &plain[..pl], &mut rest[..pl + TAG]).is_err() {
                    continue;
                }
                lens[used] = HDR + pl + TAG;
                dests[used] = o.dest;
                used += 1;
                n_out += 1;
            }
        }
        flush(&mut arena, &lens, &mut dests, &mut used);
    }
}

/// Publishers' packets into the data path; sinks drained. Returns packets drained.
fn feed_and_sink(input: SocketAddr, k_in: [u8; 32], salt_in: [u8; 12], sinks: Vec<UdpSocket>, pubs: usize, audio_only: bool, phase: Arc<AtomicU8>) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut enc = gcm().create_cipher(k_in, true);
    // SAFETY: plain syscalls on fds we own for this function's lifetime.
    let ep: RawFd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    for (i, s) in sinks.iter().enumerate() {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: i as u64 };
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
    }
    let start = Instant::now();
    struct P {
        next_a: Instant,
        next_v: Instant,
        aseq: u16,
        vseq: u16,
        frame: u64,
    }
    let mut ps: Vec<P> = (0..pubs)
        .map(|i| {
            let off = FRAME_INTERVAL.mul_f64(i as f64 / pubs.max(1) as f64);
            P { next_a: start + off, next_v: start + off, aseq: 1000, vseq: 1000, frame: 0 }
        })
        .collect();
    let mut pkt = [0u8; 1536];
    let plain: Vec<u8> = (0..VIDEO_PAYLOAD).map(|i| (i * 7 + 13) as u8).collect();
    let mut send = |ssrc: u32, pt: u8, seq: u16, ts: u32, marker: bool, len: usize| {
        pkt[0] = 0x80;
        pkt[1] = pt | if marker { 0x80 } else { 0 };
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&ts.to_be_bytes());
        pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
        let (h, rest) = pkt.split_at_mut(HDR);
        if enc.encrypt(&iv(&salt_in, ssrc, 0, seq), h, &plain[..len], &mut rest[..len + TAG]).is_ok() {
            let _ = sock.send_to(&pkt[..HDR + len + TAG], input);
        }
    };
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = [0u8; 2048];
    let mut drained = 0u64;
    while phase.load(Relaxed) != 2 {
        let now = Instant::now();
        for (i, p) in ps.iter_mut().enumerate() {
            let ssrc_a = 1000 + (2 * i) as u32;
            while now >= p.next_a {
                p.next_a += AUDIO_INTERVAL;
                send(ssrc_a, 100, p.aseq, p.aseq as u32 * 960, false, AUDIO_PAYLOAD);
                p.aseq = p.aseq.wrapping_add(1);
            }
            if audio_only {
                continue;
            }
            while now >= p.next_v {
                p.next_v += FRAME_INTERVAL;
                let key = p.frame % KEYFRAME_EVERY == 0;
                let n = frame_packets(p.frame, key);
                for k in 0..n {
                    send(ssrc_a + 1, 101, p.vseq, p.frame as u32 * 3000, k + 1 == n, VIDEO_PAYLOAD);
                    p.vseq = p.vseq.wrapping_add(1);
                }
                p.frame += 1;
            }
        }
        let mut next = now + Duration::from_millis(5);
        for p in &ps {
            next = next.min(p.next_a);
            if !audio_only {
                next = next.min(p.next_v);
            }
        }
        let ms = next.saturating_duration_since(Instant::now()).as_micros().div_ceil(1000) as i32;
        // SAFETY: evs is a valid buffer.
        let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, ms) };
        for e in evs.iter().take(n.max(0) as usize) {
            let s = &sinks[e.u64 as usize];
            while let Ok((_, _)) = s.recv_from(&mut buf) {
                drained += 1;
            }
        }
    }
    // SAFETY: our epoll fd.
    unsafe { libc::close(ep) };
    let _ = Kind::Audio;
    drained
}
