//! Shared test kit of the `sfu` project.
//!
//! For now it holds one tool: [`netem`], a userspace network impairment proxy (UDP and TCP
//! relay with loss, delay, jitter, reordering, duplication and a rate limit per direction),
//! usable in-process from Rust tests or as the `sfu-netem` command for the browser tests.
//!
//! The crate does not depend on the `sfu` library: it only moves bytes between sockets.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod netem;
