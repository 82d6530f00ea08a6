//! The few cryptographic primitives the SFU uses outside str0m, from str0m's provider
//! (aws-lc-rs): HMAC-SHA1 for STUN MESSAGE-INTEGRITY and SHA-256 for certificate
//! fingerprints.

use std::sync::OnceLock;

use str0m::config::CryptoProvider;

fn provider() -> &'static CryptoProvider {
    static P: OnceLock<CryptoProvider> = OnceLock::new();
    P.get_or_init(str0m::crypto::from_feature_flags)
}

/// HMAC-SHA1 of `parts` (concatenated) with `key`.
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    provider().sha1_hmac_provider.sha1_hmac(key, parts)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    provider().sha256_provider.sha256(data)
}
