//! Reading the clear-text part of an SRTP packet (RFC 3550 fixed header and RFC 8285
//! header extensions) before str0m sees it. SRTP encrypts only the payload, so the SSRC,
//! the payload type and the extensions can be read from the datagram as received.

/// The fields of an RTP header the media layer needs before decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPeek<'a> {
    pub pt: u8,
    pub seq: u16,
    pub ssrc: u32,
    /// The extension block: (profile, data), if the X bit is set and it is well formed.
    ext: Option<(u16, &'a [u8])>,
}

/// Parse the header of an RTP (not RTCP) packet; `None` for anything else or a truncated
/// header. RTCP is told apart by its packet type (RFC 5761: 64..=95 after masking).
pub fn peek(data: &[u8]) -> Option<RtpPeek<'_>> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let pt = data[1] & 0x7f;
    if (64..=95).contains(&pt) {
        return None;
    }
    let csrc = (data[0] & 0x0f) as usize;
    let mut ext = None;
    if data[0] & 0x10 != 0 {
        let at = 12 + 4 * csrc;
        let head = data.get(at..at + 4)?;
        let profile = u16::from_be_bytes([head[0], head[1]]);
        let words = u16::from_be_bytes([head[2], head[3]]) as usize;
        ext = Some((profile, data.get(at + 4..at + 4 + 4 * words)?));
    }
    Some(RtpPeek {
        pt,
        seq: u16::from_be_bytes([data[2], data[3]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        ext,
    })
}

impl<'a> RtpPeek<'a> {
    /// The value of header extension `id` (one-byte or two-byte form, RFC 8285).
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        let (profile, mut d) = self.ext?;
        let two_byte = match profile {
            0xBEDE => false,
            p if p & 0xfff0 == 0x1000 => true,
            _ => return None,
        };
        while let Some(&b0) = d.first() {
            if b0 == 0 {
                d = &d[1..]; // padding
                continue;
            }
            let (eid, len, hdr) = if two_byte {
                (b0, *d.get(1)? as usize, 2)
            } else {
                if b0 >> 4 == 15 {
                    return None; // reserved id: stop parsing (RFC 8285 §4.2)
                }
                (b0 >> 4, (b0 & 0x0f) as usize + 1, 1)
            };
            let value = d.get(hdr..hdr + len)?;
            if eid == id {
                return Some(value);
            }
            d = &d[hdr + len..];
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ext: &[u8], profile: u16) -> Vec<u8> {
        let mut p = vec![0x90, 124, 0x2f, 0x25, 0, 0, 0, 1, 0xbf, 0x6f, 0x5c, 0xec];
        p.extend_from_slice(&profile.to_be_bytes());
        p.extend_from_slice(&((ext.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(ext);
        p
    }

    #[test]
    fn one_byte_extensions_are_found_past_others_and_padding() {
        // id 7 (2 bytes), padding, id 3 = "1", padding to a word.
        let p = packet(&[0x71, 0xaa, 0xbb, 0x00, 0x30, b'1', 0, 0], 0xBEDE);
        let h = peek(&p).unwrap();
        assert_eq!((h.pt, h.seq, h.ssrc), (124, 12069, 0xbf6f5cec));
        assert_eq!(h.extension(3), Some(&b"1"[..]));
        assert_eq!(h.extension(7), Some(&[0xaa, 0xbb][..]));
        assert_eq!(h.extension(9), None);
    }

    #[test]
    fn two_byte_extensions() {
        let p = packet(&[3, 1, b'7', 0], 0x1000);
        assert_eq!(peek(&p).unwrap().extension(3), Some(&b"7"[..]));
    }

    #[test]
    fn rtcp_truncated_and_malformed_input_yield_nothing() {
        assert!(peek(&[0x80, 200, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]).is_none(), "RTCP SR");
        assert!(peek(&[0x80, 96, 0]).is_none());
        let mut p = packet(&[0x30, b'1', 0, 0], 0xBEDE);
        p[15] = 9; // claims 9 words of extension
        assert!(peek(&p).is_none());
        let p = packet(&[0x3f, b'1', 0, 0], 0xBEDE); // value runs past the block
        assert_eq!(peek(&p).unwrap().extension(3), None);
    }
}
