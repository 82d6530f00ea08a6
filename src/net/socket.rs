//! A non-blocking UDP socket bound in the configured port range, and a wake-up
//! eventfd, polled together by the worker.

#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

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

/// Wait until the socket is readable, the waker fired, or `timeout` passed.
/// Returns (socket readable, waker fired).
pub fn wait(sock: RawFd, waker: RawFd, timeout: Option<Duration>) -> (bool, bool) {
    let mut fds = [
        libc::pollfd {
            fd: sock,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: waker,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms: libc::c_int = match timeout {
        None => -1,
        Some(d) => {
            d.as_millis().min(60_000) as libc::c_int
                + if d.subsec_nanos() % 1_000_000 != 0 {
                    1
                } else {
                    0
                }
        }
    };
    // SAFETY: fds is a valid array of 2 pollfd for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return (false, false);
    }
    (
        fds[0].revents & (libc::POLLIN | libc::POLLERR) != 0,
        fds[1].revents & libc::POLLIN != 0,
    )
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
