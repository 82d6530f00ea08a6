//! The minimum of STUN parsing the router needs.

use std::sync::OnceLock;

use str0m::config::CryptoProvider;
use str0m::crypto::Sha1HmacProvider;

fn provider() -> &'static CryptoProvider {
    static P: OnceLock<CryptoProvider> = OnceLock::new();
    P.get_or_init(str0m::crypto::from_feature_flags)
}

/// HMAC-SHA1 for STUN MESSAGE-INTEGRITY.
pub fn hmac_provider() -> &'static dyn Sha1HmacProvider {
    provider().sha1_hmac_provider
}

/// SHA-256 of bytes (certificate fingerprints).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    provider().sha256_provider.sha256(data)
}

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

/// Does the binding request verify with `password`?
pub fn verify(data: &[u8], password: &str) -> bool {
    let Ok(msg) = str0m::ice::StunMessage::parse(data) else {
        return false;
    };
    let hmac = hmac_provider();
    msg.verify(password.as_bytes(), |k, p| hmac.sha1_hmac(k, p))
}
