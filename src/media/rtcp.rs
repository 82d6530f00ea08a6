//! The RTCP a plain RTP transport speaks itself (RFC 3550, RFC 4585): sender reports with
//! a CNAME, BYE, and reading the receiver's PLI, FIR and generic NACKs. WebRTC transports
//! leave all of this to str0m.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds between 1900 (NTP) and 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The NTP timestamp (RFC 3550 §4) of a wall-clock time.
pub fn ntp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// A compound RTCP packet: a sender report for `ssrc` (no report blocks), then SDES with
/// its CNAME.
pub fn sender_report(ssrc: u32, ntp: u64, rtp_ts: u32, packets: u32, octets: u32, cname: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&[0x80, 200, 0, 6]);
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(&ntp.to_be_bytes());
    v.extend_from_slice(&rtp_ts.to_be_bytes());
    v.extend_from_slice(&packets.to_be_bytes());
    v.extend_from_slice(&octets.to_be_bytes());
    sdes_cname(&mut v, ssrc, cname);
    v
}

fn sdes_cname(v: &mut Vec<u8>, ssrc: u32, cname: &str) {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // chunk: ssrc, CNAME item (type 1, len, text), end (0), padded to 32 bits.
    let chunk_len = 4 + 2 + cname.len() + 1;
    let padded = chunk_len.div_ceil(4) * 4;
    let words = 1 + padded / 4;
    v.extend_from_slice(&[0x81, 202]);
    v.extend_from_slice(&((words - 1) as u16).to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.push(1);
    v.push(cname.len() as u8);
    v.extend_from_slice(cname);
    v.resize(v.len() + (padded - chunk_len) + 1, 0);
}

/// A compound RTCP packet that says `ssrc` leaves: an empty receiver report, then BYE.
pub fn bye(ssrc: u32) -> Vec<u8> {
    let mut v = vec![0x80, 201, 0, 1];
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(&[0x81, 203, 0, 1]);
    v.extend_from_slice(&ssrc.to_be_bytes());
    v
}

/// A picture loss indication from `sender` about `media`.
pub fn pli(sender: u32, media: u32) -> Vec<u8> {
    let mut v = vec![0x81, 206, 0, 2];
    v.extend_from_slice(&sender.to_be_bytes());
    v.extend_from_slice(&media.to_be_bytes());
    v
}

/// Feedback a plain transport acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// PLI or FIR about `media`.
    Keyframe { media: u32, fir: bool },
    /// Generic NACK: lost sequence numbers of `media`.
    Nack { media: u32, seqs: Vec<u16> },
}

/// Is this datagram RTCP (RFC 5761: packet type 192..=223)?
pub fn is_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2 && (192..=223).contains(&data[1])
}

/// The feedback in a compound RTCP packet (malformed parts end the walk).
pub fn feedback(mut data: &[u8]) -> Vec<Feedback> {
    let mut out = Vec::new();
    for _ in 0..64 {
        if data.len() < 4 || data[0] >> 6 != 2 {
            break;
        }
        let fmt = data[0] & 0x1f;
        let pt = data[1];
        let len = (u16::from_be_bytes([data[2], data[3]]) as usize + 1) * 4;
        if len > data.len() {
            break;
        }
        let pkt = &data[..len];
        match (pt, fmt) {
            (206, 1) if len >= 12 => {
                out.push(Feedback::Keyframe { media: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]), fir: false })
            }
            (206, 4) if len >= 20 => {
                // FIR: the FCI entries carry the media SSRC.
                for fci in pkt[12..].chunks_exact(8) {
                    out.push(Feedback::Keyframe { media: u32::from_be_bytes([fci[0], fci[1], fci[2], fci[3]]), fir: true });
                }
            }
            (205, 1) if len >= 16 => {
                let media = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
                let mut seqs = Vec::new();
                for fci in pkt[12..].chunks_exact(4) {
                    let pid = u16::from_be_bytes([fci[0], fci[1]]);
                    let blp = u16::from_be_bytes([fci[2], fci[3]]);
                    seqs.push(pid);
                    for b in 0..16 {
                        if blp & (1 << b) != 0 {
                            seqs.push(pid.wrapping_add(b + 1));
                        }
                    }
                }
                out.push(Feedback::Nack { media, seqs });
            }
            _ => {}
        }
        data = &data[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_report_is_a_well_formed_compound_packet() {
        let v = sender_report(0x01020304, 0x1122334455667788, 90000, 10, 12000, "sfu-streamer-1");
        assert!(is_rtcp(&v));
        assert_eq!(v.len() % 4, 0);
        // SR: 28 bytes; SDES: header + ssrc + item + end, padded.
        assert_eq!(u16::from_be_bytes([v[2], v[3]]), 6);
        let sdes = &v[28..];
        assert_eq!(sdes[1], 202);
        assert_eq!((u16::from_be_bytes([sdes[2], sdes[3]]) as usize + 1) * 4, sdes.len());
        assert_eq!(&sdes[10..24], b"sfu-streamer-1");
        assert_eq!(bye(7).len(), 16);
    }

    #[test]
    fn feedback_is_read_from_compound_packets() {
        let mut v = vec![0x80, 201, 0, 1, 0, 0, 0, 9]; // empty RR
        v.extend(pli(9, 0xAABBCCDD));
        v.extend_from_slice(&[0x81, 205, 0, 3, 0, 0, 0, 9, 0, 0, 0, 5, 0x01, 0x00, 0b0000_0000, 0b0000_0101]);
        let fb = feedback(&v);
        assert_eq!(fb[0], Feedback::Keyframe { media: 0xAABBCCDD, fir: false });
        assert_eq!(fb[1], Feedback::Nack { media: 5, seqs: vec![256, 257, 259] });
        assert!(feedback(&[0x81, 206, 0, 9, 1, 2]).is_empty(), "truncated: nothing");
    }

    #[test]
    fn ntp_of_the_unix_epoch() {
        assert_eq!(ntp(UNIX_EPOCH) >> 32, NTP_UNIX_OFFSET);
    }
}
