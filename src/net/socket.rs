//! A non-blocking UDP socket bound in the configured port range, and a wake-up
//! eventfd, polled together by the worker.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Bind a UDP socket on `ip` to the first free port in `min..=max`, starting at a
/// pseudo-random offset so that several servers spread over the range.
pub fn bind_in_range(ip: Ipv4Addr, min: u16, max: u16, start_hint: u64) -> io::Result<UdpSocket> {
    let span = (max as u32 - min as u32 + 1) as u64;
    let start = start_hint % span;
    for i in 0..span {
        let port = min as u64 + (start + i) % span;
        match UdpSocket::bind(SocketAddrV4::new(ip, port as u16)) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free UDP port on {ip} in {min}..={max}"),
    ))
}

/// Bind a non-blocking TCP listener on `ip`, on `preferred` if it is free (the worker's
/// UDP port: one port number per worker for firewall rules), else on the next free port
/// of `min..=max`.
pub fn bind_tcp_in_range(ip: Ipv4Addr, min: u16, max: u16, preferred: u16) -> io::Result<TcpListener> {
    let span = (max as u32 - min as u32 + 1) as u64;
    let start = (preferred.clamp(min, max) - min) as u64;
    for i in 0..span {
        let port = min as u64 + (start + i) % span;
        match TcpListener::bind(SocketAddrV4::new(ip, port as u16)) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, format!("no free TCP port on {ip} in {min}..={max}")))
}

/// An eventfd used to wake a worker blocked in `poll`.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain syscall; the returned fd is owned by us.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            );
        }
    }

    pub fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our non-blocking eventfd.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            );
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Receive up to `bufs.len()` datagrams with one `recvmmsg` call.
/// Returns the number received; fills `lens` and `addrs`.
pub fn recv_batch(
    sock: &UdpSocket,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
    addrs: &mut [Option<SocketAddr>],
) -> usize {
    const MAX: usize = 32;
    let n = bufs.len().min(MAX);
    let mut iovs: [libc::iovec; MAX] = unsafe { std::mem::zeroed() };
    let mut names: [libc::sockaddr_storage; MAX] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; MAX] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iovs[i] = libc::iovec {
            iov_base: bufs[i].as_mut_ptr() as *mut libc::c_void,
            iov_len: bufs[i].len(),
        };
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &mut names[i] as *mut _ as *mut libc::c_void;
        msgs[i].msg_hdr.msg_namelen =
            std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    }
    // SAFETY: msgs/iovs/names live on this stack frame during the call and point to
    // buffers of the given lengths.
    let r = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if r <= 0 {
        return 0;
    }
    let r = r as usize;
    for i in 0..r {
        lens[i] = msgs[i].msg_len as usize;
        addrs[i] = sockaddr_to_std(&names[i]);
    }
    r
}

fn sockaddr_to_std(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

/// Outgoing datagrams collected while the worker handles a batch of input, sent
/// with one `sendmmsg` per `SEND_BATCH` (instead of one `sendto` each). Consecutive
/// datagrams to the same destination of one size (the last may be shorter) go as one
/// UDP GSO message (`UDP_SEGMENT`): the kernel builds and routes them once. The
/// datagrams are copied into fixed slots; one that does not fit a slot is sent alone.
pub struct SendBatch {
    buf: Vec<u8>,
    lens: [usize; SEND_BATCH],
    addrs: [Option<SocketAddr>; SEND_BATCH],
    dsts: [libc::sockaddr_storage; SEND_BATCH],
    dst_lens: [libc::socklen_t; SEND_BATCH],
    n: usize,
    /// Cleared for good when the kernel refuses a GSO message.
    gso: bool,
}

/// Datagrams per `sendmmsg`; also the most segments in one GSO message.
pub const SEND_BATCH: usize = 64;
const SLOT: usize = 1536;
/// Bytes in one GSO message (a UDP datagram before segmentation).
const GSO_MAX_BYTES: usize = 65_000;

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            buf: vec![0; SEND_BATCH * SLOT],
            lens: [0; SEND_BATCH],
            addrs: [None; SEND_BATCH],
            // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
            dsts: unsafe { std::mem::zeroed() },
            dst_lens: [0; SEND_BATCH],
            n: 0,
            gso: true,
        }
    }
}

impl SendBatch {
    /// Queue a datagram (the batch is sent first if it is full).
    pub fn push(&mut self, sock: &UdpSocket, dst: SocketAddr, data: &[u8]) {
        if data.len() > SLOT {
            let _ = sock.send_to(data, dst);
            return;
        }
        if self.n == SEND_BATCH {
            self.flush(sock);
        }
        let i = self.n;
        self.buf[i * SLOT..i * SLOT + data.len()].copy_from_slice(data);
        self.lens[i] = data.len();
        if self.addrs[i] != Some(dst) {
            self.addrs[i] = Some(dst);
            self.dst_lens[i] = std_to_sockaddr(dst, &mut self.dsts[i]);
        }
        self.n += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Send what is queued. A datagram the kernel refuses is skipped (as `send_to`
    /// errors are ignored): UDP gives no delivery guarantee anyway.
    pub fn flush(&mut self, sock: &UdpSocket) {
        let n = std::mem::take(&mut self.n);
        if n == 0 {
            return;
        }
        // SAFETY (all zeroed arrays): iovec, mmsghdr and the control buffers are plain
        // data for which all-zero is valid; they are filled below.
        let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut ctrl: [[u64; 4]; SEND_BATCH] = [[0; 4]; SEND_BATCH];
        // (first datagram, number of datagrams) of each message.
        let mut runs = [(0usize, 0usize); SEND_BATCH];
        let base = self.buf.as_mut_ptr();
        for (k, iov) in iovs.iter_mut().enumerate().take(n) {
            *iov = libc::iovec {
                // SAFETY: k * SLOT is within buf (SEND_BATCH * SLOT bytes).
                iov_base: unsafe { base.add(k * SLOT) } as *mut libc::c_void,
                iov_len: self.lens[k],
            };
        }
        let (mut m, mut i) = (0, 0);
        while i < n {
            let seg = self.lens[i];
            let mut j = i + 1;
            if self.gso {
                let mut total = seg;
                while j < n
                    && self.addrs[j] == self.addrs[i]
                    && self.lens[j - 1] == seg
                    && self.lens[j] <= seg
                    && total + self.lens[j] <= GSO_MAX_BYTES
                {
                    total += self.lens[j];
                    j += 1;
                }
            }
            let h = &mut msgs[m].msg_hdr;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = j - i;
            h.msg_name = &mut self.dsts[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = self.dst_lens[i];
            if j - i > 1 {
                h.msg_control = ctrl[m].as_mut_ptr() as *mut libc::c_void;
                // SAFETY: CMSG_SPACE(2) (24) fits the 32-byte control buffer; the
                // header and its u16 payload are written inside it.
                unsafe {
                    h.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg as u16);
                }
            }
            runs[m] = (i, j - i);
            m += 1;
            i = j;
        }
        let mut off = 0;
        while off < m {
            // SAFETY: msgs[off..m] are initialised above and point to live buffers.
            let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr().add(off), (m - off) as libc::c_uint, 0) };
            if r > 0 {
                off += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let (first, count) = runs[off];
            if count > 1 && matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)) {
                // No GSO here (device, MTU or kernel): send these one by one, and
                // never try GSO again.
                self.gso = false;
                for k in first..first + count {
                    if let Some(dst) = self.addrs[k] {
                        let _ = sock.send_to(&self.buf[k * SLOT..k * SLOT + self.lens[k]], dst);
                    }
                }
            }
            off += 1; // skip the message that failed
        }
    }
}

fn std_to_sockaddr(a: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match a {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let s = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in) };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            s.sin_zero = [0; 8];
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in6.
            let s = unsafe { &mut *(out as *mut _ as *mut libc::sockaddr_in6) };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo();
            s.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            s.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}
