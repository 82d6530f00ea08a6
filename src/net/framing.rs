//! RFC 4571 framing of ICE-TCP (RFC 6544): each packet (STUN, DTLS, RTP, RTCP) travels
//! on the byte stream after a two-byte big-endian length.
//!
//! The reader never holds more than one frame's worth of bytes: a length above
//! [`MAX_FRAME`] or a zero length is an error and the connection is closed.

/// The largest frame accepted: a WebRTC packet fits a path MTU (DTLS and RTP are sized
/// for ~1200 bytes); anything much larger is not a browser speaking ICE-TCP.
pub const MAX_FRAME: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A frame of length zero.
    Empty,
    /// A frame longer than [`MAX_FRAME`].
    TooLarge(usize),
}

/// Reassembles frames from the bytes of a stream.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out.
    start: usize,
}

impl FrameReader {
    /// Bytes this reader accepts now without exceeding one header plus one frame.
    pub fn room(&self) -> usize {
        (2 + MAX_FRAME).saturating_sub(self.buf.len() - self.start)
    }

    /// Append bytes read from the stream (at most `room()` of them are needed).
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > MAX_FRAME {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let pending = &self.buf[self.start..];
        if pending.len() < 2 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if pending.len() < 2 + len {
            return Ok(None);
        }
        let at = self.start + 2;
        self.start += 2 + len;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// Bytes held (a partial frame).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Append `data` framed to `out`; `false` if it cannot be framed (too long).
pub fn frame_into(out: &mut Vec<u8>, data: &[u8]) -> bool {
    let Ok(len) = u16::try_from(data.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() {
        let mut stream = Vec::new();
        for n in [1usize, 20, 1200, MAX_FRAME] {
            frame_into(&mut stream, &vec![n as u8; n]);
        }
        for chunk in [1, 2, 3, 7, 1000, stream.len()] {
            let mut r = FrameReader::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                r.feed(piece);
                while let Some(f) = r.next_frame().unwrap() {
                    got.push(f.to_vec());
                }
            }
            assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 20, 1200, MAX_FRAME]);
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn bad_lengths_are_errors_and_nothing_grows_past_one_frame() {
        let mut r = FrameReader::default();
        r.feed(&[0, 0]);
        assert_eq!(r.next_frame(), Err(FrameError::Empty));
        let mut r = FrameReader::default();
        r.feed(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(r.next_frame(), Err(FrameError::TooLarge(65535)));
        let mut r = FrameReader::default();
        r.feed(&[0x10, 0x00]);
        assert_eq!(r.next_frame(), Ok(None));
        assert_eq!(r.room(), MAX_FRAME, "a reader asks for no more than the frame it waits for");
    }
}
