//! What the OS says about this process: CPU time per thread (by name), RSS, UDP
//! socket drops, the whole machine's busy time; plus small libc helpers.

use std::collections::{HashMap, HashSet};
use std::fs;

/// CPU time (ns, from /proc/self/task/*/schedstat) summed by thread class.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    /// `sfu-worker-*` threads.
    pub sfu_worker: u64,
    /// Time the `sfu-worker-*` threads were runnable but waited for a CPU (ns).
    pub sfu_worker_wait: u64,
    /// Per worker (`sfu-worker-N` at index N): (CPU ns, run-queue wait ns).
    pub per_worker: Vec<(u64, u64)>,
    /// `sfu-notifier`.
    pub sfu_notifier: u64,
    /// The bare data-path thread.
    pub bare: u64,
    /// Everything else in the process (the load generator and this control thread).
    pub generator: u64,
    /// The generator's media thread(s) alone (`gen-media*`).
    pub gen_media: u64,
    /// Every thread of this process.
    pub total: u64,
    /// Per thread (tid -> (comm, ns)), for the debug dump.
    pub threads: HashMap<u32, (String, u64)>,
}

impl CpuSample {
    pub fn sfu(&self) -> u64 {
        self.sfu_worker + self.sfu_notifier
    }
}

pub fn cpu_sample() -> CpuSample {
    let mut s = CpuSample::default();
    let Ok(dir) = fs::read_dir("/proc/self/task") else { return s };
    for e in dir.flatten() {
        let tid: u32 = match e.file_name().to_str().and_then(|t| t.parse().ok()) {
            Some(t) => t,
            None => continue,
        };
        let p = e.path();
        let comm = fs::read_to_string(p.join("comm")).unwrap_or_default().trim().to_string();
        let st = fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        let mut f = st.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
        let ns = f.next().unwrap_or(0);
        let wait = f.next().unwrap_or(0);
        s.total += ns;
        if let Some(n) = comm.strip_prefix("sfu-worker") {
            s.sfu_worker += ns;
            s.sfu_worker_wait += wait;
            if let Some(i) = n.trim_start_matches('-').parse::<usize>().ok().filter(|i| *i < 256) {
                if s.per_worker.len() <= i {
                    s.per_worker.resize(i + 1, (0, 0));
                }
                s.per_worker[i].0 += ns;
                s.per_worker[i].1 += wait;
            }
        } else if comm == "sfu-notifier" {
            s.sfu_notifier += ns;
        } else if comm == "bare-dp" {
            s.bare += ns;
        } else {
            if comm.starts_with("gen-media") {
                s.gen_media += ns;
            }
            s.generator += ns;
        }
        s.threads.insert(tid, (comm, ns));
    }
    s
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    let t = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = t.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Busy and total jiffies of the whole machine (all processes), from /proc/stat.
pub fn machine_jiffies() -> (u64, u64) {
    let t = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = t.lines().next() else { return (0, 0) };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 5 {
        return (0, 0);
    }
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Datagrams dropped by the kernel on receive (socket buffer full): (at each of the
/// SFU's sockets, in the order of `sfu_ports`; at the load generator's sockets). Only
/// this process's sockets count.
pub fn udp_drops(sfu_ports: &[u16]) -> (Vec<u64>, u64) {
    let mut mine = HashSet::new();
    if let Ok(dir) = fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            if let Ok(l) = fs::read_link(e.path()) {
                let l = l.to_string_lossy().to_string();
                if let Some(i) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    if let Ok(i) = i.parse::<u64>() {
                        mine.insert(i);
                    }
                }
            }
        }
    }
    let (mut sfu, mut gen) = (vec![0; sfu_ports.len()], 0);
    for f in ["/proc/net/udp", "/proc/net/udp6"] {
        let t = fs::read_to_string(f).unwrap_or_default();
        for line in t.lines().skip(1) {
            let c: Vec<&str> = line.split_whitespace().collect();
            if c.len() < 13 {
                continue;
            }
            let inode: u64 = c[9].parse().unwrap_or(0);
            if !mine.contains(&inode) {
                continue;
            }
            let drops: u64 = c[c.len() - 1].parse().unwrap_or(0);
            let port = c[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()).unwrap_or(0);
            if let Some(i) = sfu_ports.iter().position(|p| *p == port) {
                sfu[i] += drops;
            } else {
                gen += drops;
            }
        }
    }
    (sfu, gen)
}

/// CLOCK_REALTIME in ns (the clock of kernel receive timestamps, SO_TIMESTAMPNS).
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time of the calling thread, ns.
pub fn thread_cputime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
