//! The server's DTLS certificate: generated once per server (ECDSA P-256), or loaded
//! from the configured PEM files. str0m 0.25's DTLS (dimpl) speaks ECDSA only, so an
//! RSA certificate is a configuration error rather than a handshake failure later.

use str0m::config::DtlsCert;

use crate::error::SfuError;

/// id-ecPublicKey (1.2.840.10045.2.1) and prime256v1 (1.2.840.10045.3.1.7), DER.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// rsaEncryption (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Generate a self-signed ECDSA P-256 certificate.
pub fn generate() -> Result<DtlsCert, SfuError> {
    let p = str0m::crypto::from_feature_flags();
    p.dtls_provider
        .generate_certificate()
        .ok_or_else(|| SfuError::Internal("could not generate a DTLS certificate".into()))
}

/// The sha-256 fingerprint of a certificate, as mediasoup writes it ("AB:CD:...").
pub fn fingerprint(cert: &DtlsCert) -> String {
    let d = crate::crypto::sha256(&cert.certificate);
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Load a certificate and its private key from PEM files.
pub fn load(cert_file: &str, key_file: &str) -> Result<DtlsCert, SfuError> {
    let read = |path: &str, key: &str| {
        std::fs::read(path)
            .map_err(|e| SfuError::InvalidConfig(format!("`{key}`: cannot read {path:?}: {e}")))
    };
    let cert_pem = read(cert_file, "dtlsCertificateFile")?;
    let key_pem = read(key_file, "dtlsPrivateKeyFile")?;
    let certificate = pem_block(&cert_pem, "CERTIFICATE").ok_or_else(|| {
        SfuError::InvalidConfig(format!(
            "`dtlsCertificateFile`: no PEM CERTIFICATE in {cert_file:?}"
        ))
    })?;
    if contains(&certificate, OID_RSA) || !contains(&certificate, OID_EC_PUBLIC_KEY) {
        return Err(SfuError::InvalidConfig(format!(
            "`dtlsCertificateFile`: {cert_file:?} is not an ECDSA certificate (str0m's DTLS speaks ECDSA only; use ECDSA P-256)"
        )));
    }
    if !contains(&certificate, OID_P256) {
        return Err(SfuError::InvalidConfig(format!(
            "`dtlsCertificateFile`: {cert_file:?} is ECDSA but not on curve P-256"
        )));
    }
    let private_key = pem_block(&key_pem, "PRIVATE KEY")
        .or_else(|| pem_block(&key_pem, "EC PRIVATE KEY"))
        .ok_or_else(|| {
            if pem_block(&key_pem, "RSA PRIVATE KEY").is_some() {
                SfuError::InvalidConfig(format!("`dtlsPrivateKeyFile`: {key_file:?} is an RSA key; an ECDSA P-256 key is required"))
            } else {
                SfuError::InvalidConfig(format!("`dtlsPrivateKeyFile`: no PEM PRIVATE KEY in {key_file:?}"))
            }
        })?;
    if contains(&private_key, OID_RSA) {
        return Err(SfuError::InvalidConfig(format!(
            "`dtlsPrivateKeyFile`: {key_file:?} is an RSA key; an ECDSA P-256 key is required"
        )));
    }
    Ok(DtlsCert {
        certificate,
        private_key,
    })
}

/// The DER bytes of the first PEM block with this label.
fn pem_block(pem: &[u8], label: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    base64_decode(&text[start..stop])
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip_known() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8h").unwrap(), b"hello!");
        assert!(base64_decode("a$b").is_none());
    }

    #[test]
    fn generated_cert_is_ecdsa_p256_with_fingerprint() {
        let c = generate().unwrap();
        assert!(contains(&c.certificate, OID_EC_PUBLIC_KEY));
        assert!(contains(&c.certificate, OID_P256));
        let fp = fingerprint(&c);
        assert_eq!(fp.len(), 32 * 3 - 1);
    }

    #[test]
    fn missing_files_name_the_key() {
        let e = load("/nonexistent/c.pem", "/nonexistent/k.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dtlsCertificateFile"), "{e}");
    }
}
