//! Sockets and datagram routing: the only code doing network I/O (`socket`), and the
//! pure parts of routing (`routes`, `stun`).
//!
//! Each worker owns one UDP socket and one TCP listener (ICE-TCP, `tcp`) shared by all
//! transports of its rooms. A packet is routed by its source (protocol and address) once
//! that source has been validated by an authenticated STUN binding request; before that
//! only a STUN binding request whose USERNAME names a known local ufrag and whose
//! MESSAGE-INTEGRITY verifies with that transport's password is routed. Anything else is
//! dropped without allocating.

pub mod framing;
pub mod poll;
pub mod routes;
pub mod socket;
pub mod stun;
pub mod tcp;
