//! A userspace network impairment proxy ("netem" without the kernel qdisc).
//!
//! A UDP relay and a TCP relay sit between a client (a browser, a test peer) and an upstream
//! server (the SFU). Each direction — `up` (client → upstream) and `down` (upstream → client) —
//! has its own [`LinkConfig`]: random and bursty loss, delay, jitter, reordering, duplication
//! and a rate limit with a drop-tail queue, changeable while traffic flows. Loopback addresses
//! 127.0.0.2 and up keep it transparent: the proxy listens on 127.0.0.2, its upstream sockets
//! are bound on 127.0.0.3, so the candidates a client is given can point at the proxy and the
//! SFU sees the proxy as the client.
//!
//! ```no_run
//! use sfu_testkit::netem::{Direction, LinkConfig, Netem, NetemConfig};
//! use std::time::Duration;
//!
//! let netem = Netem::start(NetemConfig {
//!     upstream_udp: Some("127.0.0.1:40000".parse().unwrap()),
//!     down: LinkConfig { rate_bps: Some(400_000), ..Default::default() },
//!     ..Default::default()
//! })
//! .unwrap();
//! let client_target = netem.udp_addr().unwrap(); // e.g. 127.0.0.2:54321
//! # let _ = client_target;
//! // ... later, lift the limit:
//! netem.set_link(Direction::Down, LinkConfig::default()).unwrap();
//! println!("{:?}", netem.counters().down);
//! netem.stop();
//! ```
//!
//! # The link model (per direction, in this order)
//!
//! 1. **Loss**: independent loss with probability `loss`, and a Gilbert–Elliott chain (`burst`)
//!    stepped once per packet: good → bad with `p_gb`, bad → good with `p_bg`, then the packet is
//!    lost with `loss_bad` (bad state) or `loss_good` (good state). Mean burst length in the bad
//!    state is `1 / p_bg`; the long-run loss is `p_gb / (p_gb + p_bg) · loss_bad` (+ good-state
//!    loss).
//! 2. **Duplication**: with probability `duplicate` a second copy is made; each copy goes
//!    through the following stages independently.
//! 3. **Rate limit**: a bottleneck of `rate` bits per second serialises the packets (size +
//!    `overhead_bytes`) one after another; a packet that would find more than the queue limit
//!    waiting ahead of it is dropped (drop-tail). Delay then applies after the bottleneck, so a
//!    packet's one-way delay is queueing + serialisation + `delay_ms` + jitter.
//! 4. **Delay and jitter**: `delay_ms` plus a jitter sample (uniform in ±`jitter_ms`, or normal
//!    with σ = `jitter_ms` clamped to ±4σ), never less than zero.
//! 5. **Reordering**: with probability `reorder` a packet is held back `reorder_ms` longer;
//!    packets behind it overtake it. With `keep_order` (or `"reorder": false`) a packet that was
//!    not held back is never released before its predecessor, so jitter does not reorder;
//!    without it, jitter larger than the packet spacing reorders too.
//!
//! Every random decision comes from a seeded xoshiro256** generator (seed `seed`), one stream
//! per impairment and direction: the same seed and the same packets give the same decisions, and
//! enabling jitter does not change which packets are lost.
//!
//! For **TCP** the link applies only the delay, jitter (order always kept) and the rate limit to
//! the byte stream, read in chunks of at most 1500 bytes: loss, duplication and reordering of
//! TCP bytes make no sense (TCP repairs them below the application; a relay cannot reproduce
//! that). A full queue stops reading from the socket instead of dropping, so TCP flow control
//! slows the sender. When either side ends its stream, the bytes before the end are delivered
//! after their delay and both connections are closed. TCP and UDP of one direction share that
//! direction's rate limiter, as they would share a real link; run one proxy per client for
//! separate links.
//!
//! # JSON keys of a link (CLI `--up`/`--down` and the `set` command; all optional)
//!
//! | key | type | meaning | default |
//! |---|---|---|---|
//! | `loss` | number 0–1 | independent loss probability per packet | 0 |
//! | `burst` | object | Gilbert–Elliott bursty loss: `p_gb`, `p_bg` (required), `loss_bad` (default 1), `loss_good` (default 0), all 0–1 | none |
//! | `delay_ms` | number ≥ 0 | fixed one-way delay (fractions allowed) | 0 |
//! | `jitter_ms` | number ≥ 0 | jitter amplitude: uniform half-width, or normal σ | 0 |
//! | `jitter_dist` | `"uniform"` \| `"normal"` | jitter distribution | `"uniform"` |
//! | `keep_order` | bool | never release a packet before its predecessor (jitter does not reorder) | false |
//! | `reorder` | number 0–1, or bool | number: probability a packet is held back `reorder_ms`; `false`: same as `keep_order: true`; `true`: the default | 0 |
//! | `reorder_ms` | number ≥ 0 | extra delay of a held-back packet | 10 |
//! | `duplicate` | number 0–1 | probability a packet is sent twice | 0 |
//! | `rate_kbps` | number > 0 | rate limit in kbit/s (1000 bit/s); absent: unlimited | none |
//! | `rate_bps` | number > 0 | rate limit in bit/s (instead of `rate_kbps`) | none |
//! | `queue_ms` | number > 0 | drop-tail queue limit as time at the rate | 200 if no `queue_bytes` |
//! | `queue_bytes` | number > 0 | drop-tail queue limit in bytes (with `queue_ms`, the smaller wins) | none |
//! | `overhead_bytes` | number ≥ 0 | bytes added per packet for the rate limit (28 = IPv4 + UDP headers) | 0 |
//!
//! Unknown keys are errors (a typo must not leave a link clean); `null` means "not set". A `set`
//! replaces the whole configuration of a direction: keys not given return to their defaults.
//!
//! # Counters
//!
//! Per direction ([`LinkCounters`]): `packets_in`, `bytes_in`, `delivered`, `bytes_delivered`,
//! `dropped_loss`, `dropped_queue`, `dropped_other`, `duplicated`, `reordered` (a delivered
//! packet that left after a packet which arrived after it), `released_late` (a datagram sent
//! more than 1 ms after its release time: the relay thread was starved, so the link was worse
//! than configured — check it when a test on a loaded machine fails); plus the relays' gauges
//! ([`Counters`]).
//!
//! # Bounds
//!
//! UDP: at most `max_udp_mappings` client mappings (default 64; packets of further clients are
//! dropped and counted in `udp_rejected`), each removed after `udp_idle_timeout` (default 60 s)
//! without a packet either way; at most 100 000 datagrams or 64 MiB waiting in the timer queue.
//! TCP: at most `max_tcp_connections` (default 64), 1 MiB delayed or unwritten per direction of a
//! connection, 5 s to connect upstream. The relay thread sleeps in `ppoll` (nanosecond timeout)
//! until a socket is ready or the next release time; idle, it wakes once a second.
//!
//! # The `sfu-netem` command
//!
//! ```text
//! sfu-netem --listen 127.0.0.2:0 --upstream-udp 127.0.0.1:PORT [--upstream-tcp 127.0.0.1:PORT]
//!           [--bind-upstream 127.0.0.3] [--up '<link json>'] [--down '<link json>'] [--seed N]
//!           [--idle-timeout-s S] [--max-mappings N] [--max-tcp N]
//! ```
//!
//! Prints one line when ready, `{"udp":"127.0.0.2:p","tcp":"127.0.0.2:q"}` (a relay without
//! an upstream is absent), then reads one JSON command per line on stdin and answers each with
//! one line on stdout:
//! - `{"set":"up"|"down"|"both","link":{...}}` → `{"ok":true}` (or `{"error":"..."}`);
//! - `{"counters":true}` → `{"up":{...},"down":{...},"udp_mappings":n,...}`;
//! - `{"get":"up"|"down"}` → the link configuration in force.
//!
//! It exits on stdin EOF or SIGTERM.

mod config;
mod counters;
mod handle;
mod link;
mod relay;
mod rng;
mod sys;
mod tcp;
mod udp;

pub use config::{BurstLoss, ConfigError, Direction, JitterDist, LinkConfig, NetemConfig, DEFAULT_QUEUE};
pub use counters::{Counters, LinkCounters};
pub use handle::Netem;
