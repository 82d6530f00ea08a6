//! A strict reader of the Prometheus text exposition format as `sfu_server_metrics`
//! writes it, for the Rust tests (the Python suite checks the same text with
//! `prometheus_client`'s parser). Panics on anything malformed: a sample before its
//! family's `# TYPE`, a family declared twice, a duplicate series, a bad name or value.

use std::collections::{BTreeMap, HashMap, HashSet};

/// Samples by name, then by their labels (`k="v"` pairs, sorted).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    samples: HashMap<String, BTreeMap<Vec<(String, String)>, f64>>,
    /// Family name -> type.
    pub types: HashMap<String, String>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        let mut family: Option<(String, String)> = None;
        let mut helped = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(helped.insert(name.to_string()), "HELP twice for {name}");
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
                assert!(helped.contains(name), "TYPE before HELP for {name}");
                assert!(m.types.insert(name.to_string(), kind.to_string()).is_none(), "{name} declared twice");
                family = Some((name.to_string(), kind.to_string()));
                continue;
            }
            assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
            let (name, labels, value) = parse_sample(line);
            let (fam, kind) = family.as_ref().unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
            let ok = match kind.as_str() {
                "histogram" => [fam.clone() + "_bucket", fam.clone() + "_sum", fam.clone() + "_count"].contains(&name),
                _ => name == *fam,
            };
            assert!(ok, "sample {name} outside its family {fam}");
            let prev = m.samples.entry(name.clone()).or_default().insert(labels, value);
            assert!(prev.is_none(), "duplicate series: {line}");
        }
        m
    }

    /// The value of the series `name{labels}` (labels in any order), if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        key.sort();
        self.samples.get(name)?.get(&key).copied()
    }

    /// Like `get`, panicking with the series' name when it is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }

    /// Every series of `name`.
    pub fn series(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        self.samples.get(name).map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap_or_default()
    }
}

fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let (name, mut rest) = match series.find('{') {
        Some(i) => (&series[..i], &series[i + 1..]),
        None => (series, ""),
    };
    assert!(
        !name.is_empty()
            && name.chars().enumerate().all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())),
        "bad name in {line:?}"
    );
    let mut labels = Vec::new();
    if series.contains('{') {
        rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
        let mut chars = rest.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            assert_eq!(chars.next(), Some('"'), "label value not quoted in {line:?}");
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('n') => v.push('\n'),
                        Some(c) => v.push(c),
                        None => panic!("dangling escape in {line:?}"),
                    },
                    Some('"') => break,
                    Some(c) => v.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            }
            labels.push((key, v));
            match chars.next() {
                Some(',') | None => {}
                Some(c) => panic!("unexpected {c:?} after a label in {line:?}"),
            }
        }
    }
    labels.sort();
    (name.to_string(), labels, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_with_escapes_and_histograms() {
        let m = Metrics::parse(
            "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\",y=\"2\"} 3\n\
             # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n",
        );
        assert_eq!(m.get("a_total", &[("y", "2"), ("x", "q\"\n")]), Some(3.0));
        assert_eq!(m.value("h_sum", &[]), 0.5);
        assert_eq!(m.types["h"], "histogram");
    }

    #[test]
    #[should_panic(expected = "duplicate series")]
    fn a_duplicate_series_is_an_error() {
        Metrics::parse("# HELP g G.\n# TYPE g gauge\ng 1\ng 2\n");
    }
}
