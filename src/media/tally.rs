//! The worker's media counters (`metrics::Counters`), fed from what an engine produced
//! in one call: its events and the datagrams it queued.
//!
//! * RTP in: each `MediaEvent::Rtp` (a producer's packet as its engine delivered it: str0m, or a
//!   plain RTP transport).
//! * NACK / PLI / FIR, both directions: str0m counts them per stream and reports the
//!   totals in its statistics events once a second; the tally keeps each stream's
//!   last totals and adds the increase.
//! * Retransmissions: str0m resends a NACKed packet on the consumer's RTX SSRC and does
//!   not count resends publicly, so the datagrams an engine queues are checked for an
//!   RTX SSRC of its consumers (the RTP header is clear text under SRTP). Only engines
//!   with such consumers look; the check is a few comparisons per datagram.
//! RTP out is counted where packets are written (`MediaHost::write_rtp`). Plain RTP
//! transports have no str0m statistics and no RTX: their feedback and NACK resends are
//! not counted.

use str0m::media::{Mid, Rid};

use super::MediaEvent;
use crate::metrics::{Counters, Ctr};
use crate::output::{Output, Outbox};

/// What one engine remembers for the counters.
#[derive(Debug, Default)]
pub struct Tally {
    /// (main SSRC, RTX SSRC) of the engine's consumers that have RTX.
    rtx: Vec<(u32, u32)>,
    /// Last reported totals per stream: (mid, rid, ingress) -> (nacks, plis, firs).
    last: Vec<((Mid, Option<Rid>, bool), [u64; 3])>,
}

impl Tally {
    pub fn consumer_added(&mut self, ssrc: u32, rtx: Option<u32>) {
        if let Some(r) = rtx {
            self.rtx.retain(|(m, _)| *m != ssrc);
            self.rtx.push((ssrc, r));
        }
    }

    /// A stream left the engine (consumer or producer removed): forget its totals.
    pub fn stream_removed(&mut self, mid: &str, main_ssrc: Option<u32>) {
        if let Some(s) = main_ssrc {
            self.rtx.retain(|(m, _)| *m != s);
        }
        let mid = Mid::from(mid);
        self.last.retain(|((m, _, _), _)| *m != mid);
    }

    /// Count the events and the datagrams (outputs from `out_start` on) of one call.
    pub fn account(&mut self, c: &mut Counters, evs: &[MediaEvent], out: &Outbox, out_start: usize) {
        for ev in evs {
            match ev {
                MediaEvent::Rtp(p) => {
                    c[Ctr::RtpPacketsReceived] += 1;
                    c[Ctr::RtpPayloadBytesReceived] += p.payload.len() as u64;
                }
                MediaEvent::Ingress(s) => {
                    let d = self.delta((s.mid, s.rid, true), [s.nacks, s.plis, s.firs]);
                    c[Ctr::NacksSent] += d[0];
                    c[Ctr::PlisSent] += d[1];
                    c[Ctr::FirsSent] += d[2];
                }
                MediaEvent::Egress(s) => {
                    let d = self.delta((s.mid, s.rid, false), [s.nacks, s.plis, s.firs]);
                    c[Ctr::NacksReceived] += d[0];
                    c[Ctr::PlisReceived] += d[1];
                    c[Ctr::FirsReceived] += d[2];
                }
                _ => {}
            }
        }
        if !self.rtx.is_empty() {
            for o in out.since(out_start) {
                if let Output::Transmit(t) = o {
                    if let Some(ssrc) = rtp_ssrc(&t.data) {
                        if self.rtx.iter().any(|(_, r)| *r == ssrc) {
                            c[Ctr::RtpRetransmissions] += 1;
                        }
                    }
                }
            }
        }
    }

    /// The increase of a stream's totals since its last report (a total that went
    /// down, a restarted stream, counts from its new value's increase only).
    fn delta(&mut self, key: (Mid, Option<Rid>, bool), now: [u64; 3]) -> [u64; 3] {
        match self.last.iter_mut().find(|(k, _)| *k == key) {
            Some((_, last)) => {
                let d = std::array::from_fn(|i| now[i].saturating_sub(last[i]));
                *last = now;
                d
            }
            None => {
                self.last.push((key, now));
                now
            }
        }
    }
}

/// The SSRC of an RTP (not RTCP, RFC 5761) packet.
fn rtp_ssrc(d: &[u8]) -> Option<u32> {
    (d.len() >= 12 && d[0] >> 6 == 2 && !(64..=95).contains(&(d[1] & 0x7f)))
        .then(|| u32::from_be_bytes([d[8], d[9], d[10], d[11]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Proto, Transmit};

    fn rtp(ssrc: u32, pt: u8) -> Vec<u8> {
        let mut d = vec![0x80, pt, 0, 1, 0, 0, 0, 9];
        d.extend_from_slice(&ssrc.to_be_bytes());
        d.extend_from_slice(&[0; 20]);
        d
    }

    fn transmit(out: &mut Outbox, data: Vec<u8>) {
        let a = "127.0.0.1:1".parse().unwrap();
        out.transmit(Transmit { proto: Proto::Udp, local: a, remote: a, data });
    }

    #[test]
    fn datagrams_on_a_consumers_rtx_ssrc_count_as_retransmissions() {
        let mut t = Tally::default();
        let mut c = Counters::default();
        let mut out = Outbox::default();
        transmit(&mut out, rtp(7, 96)); // before: not this call's
        let start = out.len();
        t.consumer_added(100, Some(101));
        t.consumer_added(200, None);
        transmit(&mut out, rtp(100, 96));
        transmit(&mut out, rtp(101, 97));
        transmit(&mut out, rtp(101, 97));
        let mut rtcp = rtp(101, 200); // an RTCP sender report: PT 200 (72 masked)
        rtcp[1] = 200;
        transmit(&mut out, rtcp);
        transmit(&mut out, vec![0x00, 0x01, 0x00, 0x00]); // STUN
        t.account(&mut c, &[], &out, start);
        assert_eq!(c[Ctr::RtpRetransmissions], 2);
        t.stream_removed("1", Some(100));
        let start = out.len();
        transmit(&mut out, rtp(101, 97));
        t.account(&mut c, &[], &out, start);
        assert_eq!(c[Ctr::RtpRetransmissions], 2, "a removed consumer's RTX is not counted");
    }
}
