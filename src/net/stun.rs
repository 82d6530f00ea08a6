//! The minimum of STUN the router needs (RFC 8489 binding requests, RFC 8445 USERNAME).

use crate::crypto;

/// Could this datagram be STUN (RFC 7983 demultiplexing: first byte 0..=3)?
pub fn looks_like_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 4
}

/// For a binding request: look up our (local) ufrag from USERNAME
/// "<ours>:<theirs>" with `f`, without copying it.
pub fn with_binding_request_local_ufrag<R>(data: &[u8], f: impl FnOnce(&str) -> Option<R>) -> Option<R> {
    let msg = str0m::ice::StunMessage::parse(data).ok()?;
    if !msg.is_binding_request() {
        return None;
    }
    let (local, _) = msg.split_username()?;
    f(local)
}

/// For a binding request to `local_ufrag`: the remote ufrag, if the request's
/// MESSAGE-INTEGRITY verifies with `password` (or, when `known_remote` is the remote
/// ufrag already learnt, without verifying again).
pub fn authenticated_remote_ufrag(data: &[u8], local_ufrag: &str, password: &str, known_remote: Option<&str>) -> Option<String> {
    let msg = str0m::ice::StunMessage::parse(data).ok()?;
    if !msg.is_binding_request() {
        return None;
    }
    let (local, remote) = msg.split_username()?;
    if local != local_ufrag || remote.is_empty() {
        return None;
    }
    if known_remote == Some(remote) {
        return Some(remote.to_string());
    }
    verify_message(&msg, password).then(|| remote.to_string())
}

/// Does the binding request verify with `password`?
pub fn verify(data: &[u8], password: &str) -> bool {
    match str0m::ice::StunMessage::parse(data) {
        Ok(msg) => verify_message(&msg, password),
        Err(_) => false,
    }
}

fn verify_message(msg: &str0m::ice::StunMessage, password: &str) -> bool {
    msg.verify(password.as_bytes(), |k, p| crypto::hmac_sha1(k, p))
}
