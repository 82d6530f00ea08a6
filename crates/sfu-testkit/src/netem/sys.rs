//! The only OS calls std does not offer: `ppoll` with a nanosecond timeout, and a non-blocking
//! TCP connect from a chosen local IP. Every `unsafe` block of the crate is here.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub(crate) use libc::{POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT};

/// One entry of a poll set.
pub(crate) type PollFd = libc::pollfd;

/// A poll entry for `fd` and `events`; with no events the entry is disabled (fd −1), so a
/// socket whose peer hung up does not wake the loop while it is not being served.
pub(crate) fn pollfd(fd: RawFd, events: i16) -> PollFd {
    PollFd { fd: if events == 0 { -1 } else { fd }, events, revents: 0 }
}

/// Waits until an entry is ready or `timeout` passed. An interrupted wait counts as a timeout.
pub(crate) fn poll(fds: &mut [PollFd], timeout: Duration) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd for its whole length;
    // `ts` outlives the call; a null sigmask leaves the mask unchanged.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Starts a non-blocking TCP connection to `to` from `bind` (ephemeral port; an unspecified
/// `bind` lets the kernel choose). The connection completes when the stream becomes writable;
/// then `take_error()` tells whether it failed.
pub(crate) fn tcp_connect_from(bind: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let family = if to.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else; OwnedFd closes it on error paths.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    if !bind.is_unspecified() {
        let (sa, len) = sockaddr(SocketAddr::new(bind, 0));
        // SAFETY: `sa` is a valid sockaddr of `len` bytes for the socket's family.
        let r = unsafe { libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let (sa, len) = sockaddr(to);
    // SAFETY: as above.
    let r = unsafe { libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(owned))
}

/// Asks for a receive buffer of `bytes` (the kernel caps it at `net.core.rmem_max`); best
/// effort: a burst (a video keyframe) then waits in the kernel while the relay thread is not
/// scheduled, instead of being dropped there.
pub(crate) fn set_recv_buffer(fd: RawFd, bytes: usize) {
    let v = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `v` is a c_int that outlives the call and its size is passed; a failure is ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
