//! Keyframe detection from RTP payloads (VP8, VP9, H264): the only payload parsing
//! the SFU does, for simulcast layer switches and statistics.

/// Does this RTP payload start a keyframe?
pub fn is_keyframe(codec: &str, payload: &[u8]) -> bool {
    match codec {
        "VP8" => vp8(payload),
        "VP9" => vp9(payload),
        "H264" => h264(payload),
        _ => false,
    }
}

/// RFC 7741 payload descriptor, then the VP8 payload header's P bit.
fn vp8(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let (x, s, pid) = (b0 & 0x80 != 0, b0 & 0x10 != 0, b0 & 0x07);
    if !s || pid != 0 {
        return false;
    }
    let mut i = 1;
    if x {
        let Some(&b1) = p.get(i) else { return false };
        i += 1;
        if b1 & 0x80 != 0 {
            // I: picture id, 7 or 15 bits.
            let Some(&pic) = p.get(i) else { return false };
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if b1 & 0x40 != 0 {
            i += 1; // L: TL0PICIDX
        }
        if b1 & 0x30 != 0 {
            i += 1; // T/K
        }
    }
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// VP9 payload descriptor: not inter-predicted (P=0) and start of a frame (B=1).
fn vp9(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b & 0x40 == 0 && b & 0x08 != 0)
}

/// H264: an IDR slice or SPS, alone, in a STAP-A, or starting an FU-A.
fn h264(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let len = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                if matches!(p[i + 2] & 0x1f, 5 | 7) {
                    return true;
                }
                i += 2 + len;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|b| b & 0x80 != 0 && matches!(b & 0x1f, 5 | 7)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_and_delta() {
        // X=1,S=1,PID=0; I=1 with 15-bit picture id; payload header P=0.
        assert!(is_keyframe("VP8", &[0x90, 0x80, 0x81, 0x23, 0x10]));
        assert!(!is_keyframe("VP8", &[0x90, 0x80, 0x81, 0x23, 0x11]));
        // not the start of the partition
        assert!(!is_keyframe("VP8", &[0x80, 0x80, 0x81, 0x23, 0x10]));
        assert!(is_keyframe("VP8", &[0x10, 0x00]));
        assert!(!is_keyframe("VP8", &[]));
    }

    #[test]
    fn h264_idr_forms() {
        assert!(is_keyframe("H264", &[0x65, 0]));
        assert!(!is_keyframe("H264", &[0x41, 0]));
        assert!(is_keyframe("H264", &[0x78, 0, 2, 0x67, 0x42]));
        assert!(is_keyframe("H264", &[0x7c, 0x85, 0]));
        assert!(!is_keyframe("H264", &[0x7c, 0x05, 0]));
    }

    #[test]
    fn vp9_flags() {
        assert!(is_keyframe("VP9", &[0x08]));
        assert!(!is_keyframe("VP9", &[0x48]));
    }
}
