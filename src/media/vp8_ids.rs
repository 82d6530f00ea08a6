//! VP8 picture numbering continuous across a consumer's simulcast layer switches
//! (docs/ARCHITECTURE.md, "Bandwidth adaptation").
//!
//! Each simulcast layer of a browser's VP8 has its own PictureID and TL0PICIDX series.
//! A receiver's decoder finds a frame's references by those numbers: after a switch the
//! other layer's numbers would read as a jump, and frames would wait for pictures that
//! never come (seen as seconds of frames received whole and never decoded). The numbers
//! of the layer switched to are moved so that its first picture (a keyframe) follows the
//! last one forwarded. The payload itself is shared between consumers and never copied:
//! str0m writes the patched descriptor bytes while it serialises the packet.

use str0m::rtp::{Vp8Descriptor, Vp8Patch};

const PID_MOD: u32 = 1 << 15;
const PID_MOD_SHORT: u32 = 1 << 7;

/// One consumer's VP8 numbering.
#[derive(Debug, Clone, Default)]
pub struct Vp8Continuity {
    /// The next picture starts a new source: move the numbering.
    rebase: bool,
    /// out = in + delta (mod the field's width).
    pid_delta: u32,
    tl0_delta: u8,
    /// The newest numbers forwarded.
    last_pid: Option<u32>,
    last_tl0: Option<u8>,
}

impl Vp8Continuity {
    /// The consumer's source changes (a layer switch, a resume after a stop).
    pub fn rebase(&mut self) {
        self.rebase = true;
    }

    /// The descriptor bytes to write for a packet of `payload` about to be forwarded,
    /// `None` when nothing changes (or the payload has no VP8 descriptor to patch).
    pub fn patch(&mut self, payload: &[u8]) -> Option<Vp8Patch> {
        let (d, pid, tl0) = self.map(payload)?;
        let mut b = d.patch();
        let mut any = false;
        if let Some((_, o)) = pid.filter(|(i, o)| i != o) {
            b = b.picture_id(o as u16);
            any = true;
        }
        if let Some((_, o)) = tl0.filter(|(i, o)| i != o) {
            b = b.tl0_pic_idx(o);
            any = true;
        }
        if any {
            b.build().ok()
        } else {
            None
        }
    }

    /// The packet's (in, out) PictureID and TL0PICIDX, the state moved on.
    #[allow(clippy::type_complexity)]
    fn map(&mut self, payload: &[u8]) -> Option<(Vp8Descriptor, Option<(u32, u32)>, Option<(u8, u8)>)> {
        let d = Vp8Descriptor::parse(payload).ok()?;
        let modulus = if long_picture_id(payload) { PID_MOD } else { PID_MOD_SHORT };
        let pid = d.picture_id().map(u32::from);
        let tl0 = d.tl0_pic_idx();
        if self.rebase {
            self.rebase = false;
            if let (Some(p), Some(last)) = (pid, self.last_pid) {
                self.pid_delta = (last + 1 + PID_MOD - p % PID_MOD) % PID_MOD;
            }
            if let (Some(t), Some(last)) = (tl0, self.last_tl0) {
                self.tl0_delta = last.wrapping_add(1).wrapping_sub(t);
            }
        }
        let out_pid = pid.map(|p| (p + self.pid_delta) % modulus);
        let out_tl0 = tl0.map(|t| t.wrapping_add(self.tl0_delta));
        if let Some(o) = out_pid {
            // The newest only: a late packet (a resend) must not pull the numbering back.
            if self.last_pid.is_none_or(|l| (o + modulus - l % modulus) % modulus < modulus / 2) {
                self.last_pid = Some(o);
            }
        }
        if let Some(o) = out_tl0 {
            if self.last_tl0.is_none_or(|l| o.wrapping_sub(l) < 128) {
                self.last_tl0 = Some(o);
            }
        }
        Some((d, pid.zip(out_pid), tl0.zip(out_tl0)))
    }
}

/// Whether the descriptor's PictureID is the 15-bit form (its M bit).
fn long_picture_id(payload: &[u8]) -> bool {
    // X bit, then I bit in the extension byte, then M bit of the PictureID's first byte.
    payload.first().is_some_and(|b| b & 0x80 != 0)
        && payload.get(1).is_some_and(|b| b & 0x80 != 0)
        && payload.get(2).is_some_and(|b| b & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload with a 15-bit PictureID and TL0PICIDX (X, I, L, T set; S on a keyframe).
    fn payload(pid: u16, tl0: u8, start: bool) -> Vec<u8> {
        vec![0x80 | if start { 0x10 } else { 0 }, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, 0x00, 0x9d, 0x01, 0x2a]
    }

    /// The (PictureID, TL0PICIDX) a receiver reads, and the patch that says so.
    fn seen(c: &mut Vp8Continuity, p: &[u8]) -> (u16, u8) {
        let mut twin = c.clone();
        let (_, pid, tl0) = c.map(p).unwrap();
        let (pid, tl0) = (pid.unwrap(), tl0.unwrap());
        let expected = if pid.0 == pid.1 && tl0.0 == tl0.1 {
            None
        } else {
            let d = Vp8Descriptor::parse(p).unwrap();
            let mut b = d.patch();
            if pid.0 != pid.1 {
                b = b.picture_id(pid.1 as u16);
            }
            if tl0.0 != tl0.1 {
                b = b.tl0_pic_idx(tl0.1);
            }
            Some(b.build().unwrap())
        };
        assert_eq!(twin.patch(p), expected);
        (pid.1 as u16, tl0.1)
    }

    #[test]
    fn one_source_passes_unchanged() {
        let mut c = Vp8Continuity::default();
        for i in 0..5u16 {
            assert!(c.patch(&payload(1000 + i, 7 + i as u8, true)).is_none());
        }
    }

    #[test]
    fn a_switch_continues_the_numbers_at_the_keyframe_and_after() {
        let mut c = Vp8Continuity::default();
        assert_eq!(seen(&mut c, &payload(20_000, 200, true)), (20_000, 200));
        assert_eq!(seen(&mut c, &payload(20_001, 201, true)), (20_001, 201));
        c.rebase(); // to a layer numbered elsewhere
        assert_eq!(seen(&mut c, &payload(5, 3, true)), (20_002, 202));
        assert_eq!(seen(&mut c, &payload(6, 4, true)), (20_003, 203));
        c.rebase(); // and back, across the wrap of both fields
        assert_eq!(seen(&mut c, &payload(32_767, 255, true)), (20_004, 204));
        assert_eq!(seen(&mut c, &payload(0, 0, true)), (20_005, 205));
    }

    #[test]
    fn a_late_packet_keeps_its_number_and_does_not_pull_the_next_switch_back() {
        let mut c = Vp8Continuity::default();
        seen(&mut c, &payload(100, 10, true));
        seen(&mut c, &payload(101, 11, true));
        assert_eq!(seen(&mut c, &payload(99, 9, true)), (99, 9), "a resend of an older picture");
        c.rebase();
        assert_eq!(seen(&mut c, &payload(7000, 50, true)), (102, 12));
    }

    #[test]
    fn a_payload_without_a_descriptor_to_patch_is_left_alone() {
        let mut c = Vp8Continuity::default();
        assert!(c.patch(&[]).is_none());
        assert!(c.patch(&[0x10, 0x9d, 0x01, 0x2a]).is_none(), "no PictureID");
        c.rebase();
        assert!(c.patch(&[0x10, 0x9d]).is_none());
    }
}
