//! A writer of the Prometheus text exposition format (version 0.0.4): one `# HELP` and
//! one `# TYPE` line per family, then its samples `name{label="value",...} value`.
//!
//! Label values are escaped (`\\`, `\"`, `\n`), HELP text too (`\\`, `\n`); numbers are
//! written as integers or as Rust's shortest round-trip decimal (never an exponent),
//! `+Inf`, `-Inf`, `NaN`.

use std::fmt::Write;

/// The metric types this library exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// Labels of one sample, in output order.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

/// The text being written.
#[derive(Debug, Default)]
pub struct Expo {
    out: String,
}

impl Expo {
    /// Start a family: its HELP and TYPE lines. `name` is the family's name as the
    /// samples spell it (counters end in `_total`; a histogram's samples add
    /// `_bucket`, `_sum` and `_count`).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "{name}");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "{name}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_label_name(k), "{k}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => self.out.push_str(&float(v)),
        }
        self.out.push('\n');
    }

    /// A family with one sample per label set.
    pub fn simple(&mut self, name: &str, kind: Kind, help: &str, series: &[(Labels<'_>, Value)]) {
        self.family(name, kind, help);
        for (labels, v) in series {
            self.sample(name, labels, *v);
        }
    }

    /// The samples of one histogram series: cumulative `_bucket`s from per-bucket
    /// counts (`counts` has one more entry than `bounds`: above the last bound), then
    /// `+Inf`, `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, bounds: &[f64], counts: &[u64], sum: f64) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        let les: Vec<String> = bounds.iter().map(|b| float(*b)).collect();
        for (i, le) in les.iter().enumerate() {
            cumulative += counts.get(i).copied().unwrap_or(0);
            with_le.truncate(labels.len());
            with_le.push(("le", le));
            self.sample(&bucket, &with_le, cumulative);
        }
        cumulative += counts.get(bounds.len()).copied().unwrap_or(0);
        with_le.truncate(labels.len());
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, cumulative);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn valid_name(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
fn valid_label_name(n: &str) -> bool {
    let mut cs = n.chars();
    !n.starts_with("__")
        && cs.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_has_help_type_and_its_samples_with_escaped_labels() {
        let mut e = Expo::default();
        e.simple(
            "sfu_things_total",
            Kind::Counter,
            "Things seen.\nSecond line with a \\ backslash.",
            &[(&[("reason", "a \"quoted\"\nvalue\\")], Value::Int(7)), (&[], Value::Int(0))],
        );
        assert_eq!(
            e.finish(),
            "# HELP sfu_things_total Things seen.\\nSecond line with a \\\\ backslash.\n\
             # TYPE sfu_things_total counter\n\
             sfu_things_total{reason=\"a \\\"quoted\\\"\\nvalue\\\\\"} 7\n\
             sfu_things_total 0\n"
        );
    }

    #[test]
    fn floats_are_plain_decimals_or_the_special_spellings() {
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(50e-6), "0.00005");
        assert_eq!(float(1.0), "1");
        assert_eq!(float(1e21), "1000000000000000000000");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        let mut e = Expo::default();
        e.sample("g", &[("w", "0")], 0.5);
        assert_eq!(e.finish(), "g{w=\"0\"} 0.5\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf_sum_and_count() {
        let mut e = Expo::default();
        e.family("lat_seconds", Kind::Histogram, "Latency.");
        e.histogram("lat_seconds", &[("worker", "1")], &[0.001, 0.01], &[2, 0, 3], 1.5);
        assert_eq!(
            e.finish(),
            "# HELP lat_seconds Latency.\n\
             # TYPE lat_seconds histogram\n\
             lat_seconds_bucket{worker=\"1\",le=\"0.001\"} 2\n\
             lat_seconds_bucket{worker=\"1\",le=\"0.01\"} 2\n\
             lat_seconds_bucket{worker=\"1\",le=\"+Inf\"} 5\n\
             lat_seconds_sum{worker=\"1\"} 1.5\n\
             lat_seconds_count{worker=\"1\"} 5\n"
        );
    }

    #[test]
    fn names_follow_the_data_model() {
        assert!(valid_name("sfu_rtp_packets_received_total"));
        assert!(valid_name("a:b_c9"));
        assert!(!valid_name("9abc"));
        assert!(!valid_name("sfu-rooms"));
        assert!(!valid_name(""));
        assert!(valid_label_name("le"));
        assert!(!valid_label_name("__name__"));
        assert!(!valid_label_name("a-b"));
    }
}
