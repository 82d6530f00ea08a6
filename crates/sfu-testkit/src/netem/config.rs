//! Configuration: the impairments of one direction ([`LinkConfig`], with its JSON form) and the
//! relay as a whole ([`NetemConfig`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{Map, Value};

/// A direction of the relayed traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → upstream (toward the SFU).
    Up,
    /// Upstream → client (from the SFU).
    Down,
}

impl Direction {
    /// Both directions, `Up` first.
    pub const BOTH: [Direction; 2] = [Direction::Up, Direction::Down];

    /// 0 for `Up`, 1 for `Down`.
    pub fn index(self) -> usize {
        match self {
            Direction::Up => 0,
            Direction::Down => 1,
        }
    }

    /// `"up"` or `"down"`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// Parses `"up"` or `"down"`.
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            _ => None,
        }
    }
}

/// A configuration that does not make sense (message says which key and why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for std::io::Error {
    fn from(e: ConfigError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.0)
    }
}

/// Gilbert–Elliott bursty loss: a two-state Markov chain stepped once per packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurstLoss {
    /// Probability of moving from the good to the bad state (per packet).
    pub p_gb: f64,
    /// Probability of moving from the bad to the good state (per packet).
    pub p_bg: f64,
    /// Loss probability while in the bad state.
    pub loss_bad: f64,
    /// Loss probability while in the good state (usually 0).
    pub loss_good: f64,
}

impl BurstLoss {
    /// The long-run loss rate of the chain: π_bad·loss_bad + π_good·loss_good.
    pub fn mean_loss(&self) -> f64 {
        let sum = self.p_gb + self.p_bg;
        if sum == 0.0 {
            return self.loss_good;
        }
        let bad = self.p_gb / sum;
        bad * self.loss_bad + (1.0 - bad) * self.loss_good
    }
}

/// Distribution of the jitter added to the delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JitterDist {
    /// Uniform in [−jitter, +jitter].
    #[default]
    Uniform,
    /// Normal with standard deviation `jitter`, clamped to ±4σ.
    Normal,
}

/// The impairments of one direction. `LinkConfig::default()` is a clean link.
///
/// The JSON keys are documented in the [module docs](super).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Independent random loss probability per packet.
    pub loss: f64,
    /// Bursty loss (applies in addition to `loss`).
    pub burst: Option<BurstLoss>,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Jitter amplitude (uniform half-width or normal σ) around `delay`.
    pub jitter: Duration,
    /// Jitter distribution.
    pub jitter_dist: JitterDist,
    /// When true a packet is never released before the packet that arrived before it, so
    /// jitter does not reorder (explicitly reordered packets are still held back).
    pub keep_order: bool,
    /// Probability that a packet is held back by `reorder_delay` (explicit reordering).
    pub reorder: f64,
    /// Extra delay of an explicitly reordered packet.
    pub reorder_delay: Duration,
    /// Probability that a packet is sent twice.
    pub duplicate: f64,
    /// Bottleneck rate in bits per second; `None` = unlimited.
    pub rate_bps: Option<u64>,
    /// Drop-tail queue limit in time at `rate_bps` (default 200 ms when neither limit is set).
    pub queue: Option<Duration>,
    /// Drop-tail queue limit in bytes; with `queue` too, the smaller limit applies.
    pub queue_bytes: Option<u64>,
    /// Bytes added to each packet's size for the rate limit (e.g. 28 for IPv4 + UDP headers).
    pub overhead_bytes: u32,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            loss: 0.0,
            burst: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            jitter_dist: JitterDist::Uniform,
            keep_order: false,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
            duplicate: 0.0,
            rate_bps: None,
            queue: None,
            queue_bytes: None,
            overhead_bytes: 0,
        }
    }
}

/// Default drop-tail queue when a rate is set and no limit is given.
pub const DEFAULT_QUEUE: Duration = Duration::from_millis(200);

fn ms(d: f64) -> Duration {
    Duration::from_nanos((d * 1e6).round() as u64)
}

fn check_prob(key: &str, p: f64) -> Result<(), ConfigError> {
    if !(0.0..=1.0).contains(&p) {
        return Err(ConfigError(format!("{key} must be a probability in [0, 1], got {p}")));
    }
    Ok(())
}

fn num(key: &str, v: &Value) -> Result<f64, ConfigError> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(ConfigError(format!("{key} must be a number, got {v}"))),
    }
}

fn non_negative(key: &str, v: &Value) -> Result<f64, ConfigError> {
    let x = num(key, v)?;
    if x < 0.0 {
        return Err(ConfigError(format!("{key} must be >= 0, got {x}")));
    }
    Ok(x)
}

fn positive(key: &str, v: &Value) -> Result<f64, ConfigError> {
    let x = num(key, v)?;
    if x <= 0.0 {
        return Err(ConfigError(format!("{key} must be > 0, got {x}")));
    }
    Ok(x)
}

fn object<'a>(what: &str, v: &'a Value) -> Result<&'a Map<String, Value>, ConfigError> {
    v.as_object()
        .ok_or_else(|| ConfigError(format!("{what} must be a JSON object, got {v}")))
}

impl LinkConfig {
    /// Checks ranges (probabilities in [0, 1], positive rate and queue limits).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_prob("loss", self.loss)?;
        check_prob("reorder", self.reorder)?;
        check_prob("duplicate", self.duplicate)?;
        if let Some(b) = &self.burst {
            check_prob("burst.p_gb", b.p_gb)?;
            check_prob("burst.p_bg", b.p_bg)?;
            check_prob("burst.loss_bad", b.loss_bad)?;
            check_prob("burst.loss_good", b.loss_good)?;
        }
        if self.rate_bps == Some(0) {
            return Err(ConfigError("rate must be > 0 (omit it for an unlimited link)".into()));
        }
        if self.queue == Some(Duration::ZERO) || self.queue_bytes == Some(0) {
            return Err(ConfigError("queue limits must be > 0".into()));
        }
        Ok(())
    }

    /// The queue limit as time at the configured rate (`None` without a rate limit).
    pub fn queue_limit(&self) -> Option<Duration> {
        let rate = self.rate_bps?;
        let from_bytes = self
            .queue_bytes
            .map(|b| Duration::from_nanos((b as u128 * 8 * 1_000_000_000 / rate as u128) as u64));
        Some(match (self.queue, from_bytes) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => DEFAULT_QUEUE,
        })
    }

    /// Parses the JSON form (keys in the module docs). Unknown keys are errors, so a typo does
    /// not silently leave a link clean; `null` means "not set".
    pub fn from_json(v: &Value) -> Result<LinkConfig, ConfigError> {
        let obj = object("link", v)?;
        let mut c = LinkConfig::default();
        for (key, val) in obj {
            if val.is_null() {
                continue;
            }
            let k = key.as_str();
            match k {
                "loss" => c.loss = num(k, val)?,
                "burst" => c.burst = Some(parse_burst(val)?),
                "delay_ms" => c.delay = ms(non_negative(k, val)?),
                "jitter_ms" => c.jitter = ms(non_negative(k, val)?),
                "jitter_dist" => {
                    c.jitter_dist = match val.as_str() {
                        Some("uniform") => JitterDist::Uniform,
                        Some("normal") => JitterDist::Normal,
                        _ => {
                            return Err(ConfigError(format!(
                                "jitter_dist must be \"uniform\" or \"normal\", got {val}"
                            )))
                        }
                    }
                }
                "keep_order" => {
                    c.keep_order = val
                        .as_bool()
                        .ok_or_else(|| ConfigError(format!("keep_order must be a boolean, got {val}")))?
                }
                // A number is the explicit reordering probability; `false` is the shorthand for
                // "keep order" (and no explicit reordering), `true` for the default.
                "reorder" => match val {
                    Value::Bool(b) => c.keep_order = !b,
                    _ => c.reorder = num(k, val)?,
                },
                "reorder_ms" => c.reorder_delay = ms(non_negative(k, val)?),
                "duplicate" => c.duplicate = num(k, val)?,
                "rate_kbps" => c.rate_bps = Some((positive(k, val)? * 1000.0).round() as u64),
                "rate_bps" => c.rate_bps = Some(positive(k, val)?.round() as u64),
                "queue_ms" => c.queue = Some(ms(positive(k, val)?)),
                "queue_bytes" => c.queue_bytes = Some(positive(k, val)?.round() as u64),
                "overhead_bytes" => c.overhead_bytes = non_negative(k, val)?.round() as u32,
                _ => return Err(ConfigError(format!("unknown link key {key:?}"))),
            }
        }
        if obj.get("reorder").is_some_and(Value::is_boolean) && obj.contains_key("keep_order") {
            return Err(ConfigError("give either a boolean \"reorder\" or \"keep_order\", not both".into()));
        }
        c.validate()?;
        Ok(c)
    }

    /// The JSON form, round-trippable through [`LinkConfig::from_json`].
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let d = |d: Duration| Value::from(d.as_secs_f64() * 1000.0);
        m.insert("loss".into(), self.loss.into());
        if let Some(b) = &self.burst {
            m.insert(
                "burst".into(),
                serde_json::json!({"p_gb": b.p_gb, "p_bg": b.p_bg, "loss_bad": b.loss_bad, "loss_good": b.loss_good}),
            );
        }
        m.insert("delay_ms".into(), d(self.delay));
        m.insert("jitter_ms".into(), d(self.jitter));
        let dist = match self.jitter_dist {
            JitterDist::Uniform => "uniform",
            JitterDist::Normal => "normal",
        };
        m.insert("jitter_dist".into(), dist.into());
        m.insert("keep_order".into(), self.keep_order.into());
        m.insert("reorder".into(), self.reorder.into());
        m.insert("reorder_ms".into(), d(self.reorder_delay));
        m.insert("duplicate".into(), self.duplicate.into());
        if let Some(r) = self.rate_bps {
            m.insert("rate_bps".into(), r.into());
        }
        if let Some(q) = self.queue {
            m.insert("queue_ms".into(), d(q));
        }
        if let Some(q) = self.queue_bytes {
            m.insert("queue_bytes".into(), q.into());
        }
        m.insert("overhead_bytes".into(), self.overhead_bytes.into());
        Value::Object(m)
    }
}

fn parse_burst(v: &Value) -> Result<BurstLoss, ConfigError> {
    let obj = object("burst", v)?;
    let mut b = BurstLoss { p_gb: 0.0, p_bg: 1.0, loss_bad: 1.0, loss_good: 0.0 };
    let mut have = (false, false);
    for (key, val) in obj {
        let k = format!("burst.{key}");
        match key.as_str() {
            "p_gb" => {
                b.p_gb = num(&k, val)?;
                have.0 = true;
            }
            "p_bg" => {
                b.p_bg = num(&k, val)?;
                have.1 = true;
            }
            "loss_bad" => b.loss_bad = num(&k, val)?,
            "loss_good" => b.loss_good = num(&k, val)?,
            _ => return Err(ConfigError(format!("unknown burst key {key:?}"))),
        }
    }
    if !(have.0 && have.1) {
        return Err(ConfigError("burst needs p_gb and p_bg".into()));
    }
    Ok(b)
}

/// The relay: where it listens, where it relays to, and the two links.
#[derive(Clone, Debug)]
pub struct NetemConfig {
    /// Listen address of both relays (port 0: the OS picks; UDP and TCP ports then differ).
    pub listen: SocketAddr,
    /// Upstream UDP address (the SFU's UDP port); `None`: no UDP relay.
    pub upstream_udp: Option<SocketAddr>,
    /// Upstream TCP address (the SFU's TCP port); `None`: no TCP relay.
    pub upstream_tcp: Option<SocketAddr>,
    /// Local IP the upstream sockets are bound on (ephemeral ports), so the SFU sees traffic from
    /// this address. Unspecified (0.0.0.0): the kernel chooses.
    pub bind_upstream: IpAddr,
    /// Impairments client → upstream.
    pub up: LinkConfig,
    /// Impairments upstream → client.
    pub down: LinkConfig,
    /// Seed of every random decision.
    pub seed: u64,
    /// A UDP client mapping with no packet in either direction for this long is removed.
    pub udp_idle_timeout: Duration,
    /// Most UDP client mappings at once; packets of further clients are dropped.
    pub max_udp_mappings: usize,
    /// Most TCP connections at once; further connections are accepted and closed.
    pub max_tcp_connections: usize,
}

impl Default for NetemConfig {
    fn default() -> NetemConfig {
        NetemConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0),
            upstream_udp: None,
            upstream_tcp: None,
            bind_upstream: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
            up: LinkConfig::default(),
            down: LinkConfig::default(),
            seed: 1,
            udp_idle_timeout: Duration::from_secs(60),
            max_udp_mappings: 64,
            max_tcp_connections: 64,
        }
    }
}

impl NetemConfig {
    /// Checks both links and the relay bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.up.validate().map_err(|e| ConfigError(format!("up: {e}")))?;
        self.down.validate().map_err(|e| ConfigError(format!("down: {e}")))?;
        if self.upstream_udp.is_none() && self.upstream_tcp.is_none() {
            return Err(ConfigError("give an upstream UDP or TCP address".into()));
        }
        if self.max_udp_mappings == 0 || self.max_tcp_connections == 0 {
            return Err(ConfigError("the mapping and connection limits must be > 0".into()));
        }
        if self.udp_idle_timeout.is_zero() {
            return Err(ConfigError("udp_idle_timeout must be > 0".into()));
        }
        for up in [self.upstream_udp, self.upstream_tcp].into_iter().flatten() {
            if !self.bind_upstream.is_unspecified() && up.is_ipv4() != self.bind_upstream.is_ipv4() {
                return Err(ConfigError(format!(
                    "bind_upstream {} and upstream {up} are of different IP families",
                    self.bind_upstream
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_key_and_round_trips() {
        let v = json!({"loss":0.03,"burst":{"p_gb":0.01,"p_bg":0.3,"loss_bad":0.5},"delay_ms":50,
            "jitter_ms":10,"jitter_dist":"normal","reorder":0.02,"reorder_ms":15,"duplicate":0.01,
            "rate_kbps":400,"queue_ms":200,"queue_bytes":30000,"overhead_bytes":28,"keep_order":true});
        let c = LinkConfig::from_json(&v).unwrap();
        assert_eq!(c.loss, 0.03);
        assert_eq!(c.burst.unwrap().loss_bad, 0.5);
        assert_eq!(c.delay, Duration::from_millis(50));
        assert_eq!(c.jitter, Duration::from_millis(10));
        assert_eq!(c.jitter_dist, JitterDist::Normal);
        assert!(c.keep_order);
        assert_eq!(c.reorder, 0.02);
        assert_eq!(c.reorder_delay, Duration::from_millis(15));
        assert_eq!(c.rate_bps, Some(400_000));
        assert_eq!(c.overhead_bytes, 28);
        // 30000 bytes at 400 kbit/s = 600 ms, so the 200 ms limit is the smaller one.
        assert_eq!(c.queue_limit(), Some(Duration::from_millis(200)));
        assert_eq!(LinkConfig::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn reorder_false_keeps_order_and_bad_input_is_rejected() {
        let c = LinkConfig::from_json(&json!({"jitter_ms": 5, "reorder": false})).unwrap();
        assert!(c.keep_order);
        assert_eq!(c.reorder, 0.0);
        assert_eq!(LinkConfig::from_json(&json!({})).unwrap(), LinkConfig::default());
        for bad in [
            json!({"los": 0.1}),
            json!({"loss": 1.5}),
            json!({"rate_kbps": 0}),
            json!({"delay_ms": -1}),
            json!({"burst": {"p_gb": 0.1}}),
            json!({"jitter_dist": "pareto"}),
            json!([1]),
        ] {
            assert!(LinkConfig::from_json(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn burst_mean_loss() {
        let b = BurstLoss { p_gb: 0.02, p_bg: 0.2, loss_bad: 1.0, loss_good: 0.0 };
        assert!((b.mean_loss() - 0.02 / 0.22).abs() < 1e-12);
    }
}
