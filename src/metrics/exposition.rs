//! The exposition, a part at a time: each family is registered in a part
//! of its own and encoded only when the scrape's response asks for its
//! bytes. A scrape of 1,000 routes (3 MB, 32,000 series) then holds one
//! family's text at a time, some 300 kB, in memory the parts before it
//! freed; a whole exposition in one buffer was fresh memory, 3 MB of pages
//! the process touched once per scrape, and grew with every route.
//!
//! A scrape is not one instant: each family is read when it is encoded,
//! as it was within one buffer; now the reader's pace spaces them too.

use super::{Metrics, text};
use prometheus_client::registry::{Metric, Registry};

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// How the exposition is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for scrapers and tools (`promtool
    /// check metrics`) that do not ask for OpenMetrics.
    Text,
}

/// Where families are registered: a registry, or the parts.
pub trait Register {
    /// Registers a family `mailcanary_<name>`.
    fn register(&mut self, name: &str, help: &str, metric: impl Metric);
}

impl Register for Registry {
    fn register(&mut self, name: &str, help: &str, metric: impl Metric) {
        Registry::register(self, name, help, metric);
    }
}

/// The families, each in a part of its own, in the order they are registered.
#[derive(Default)]
pub struct Parts {
    parts: Vec<Registry>,
    /// The size of each part's last encoding, to size the next one's buffer.
    sizes: Vec<AtomicUsize>,
}

impl Register for Parts {
    fn register(&mut self, name: &str, help: &str, metric: impl Metric) {
        let mut part = Registry::with_prefix("mailcanary");
        part.register(name, help, metric);
        self.parts.push(part);
        self.sizes.push(AtomicUsize::new(0));
    }
}

impl Metrics {
    /// How many parts the exposition has.
    pub fn parts(&self) -> usize {
        self.parts.parts.len()
    }

    /// Part `i` of the exposition in `format`, with the wall clock read at
    /// the first; the last ends it (OpenMetrics's `# EOF`).
    pub fn part(&self, i: usize, format: Format) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        if i == 0 {
            self.time.set(super::wall_seconds());
        }
        let (Some(part), Some(size)) = (self.parts.parts.get(i), self.parts.sizes.get(i)) else {
            return String::new();
        };
        let last = size.load(Relaxed);
        let last_part = i + 1 == self.parts();
        let mut out = String::with_capacity(last + last / 8);
        encode_registry(&mut out, part).expect("writing to a String");
        let out = match format {
            Format::OpenMetrics => {
                if last_part {
                    encode_eof(&mut out).expect("writing to a String");
                }
                out
            }
            // Converted once encoded: the encoder writes a few bytes at a
            // time, and each piece read as it comes cost more than the copy.
            Format::Text => text::from_openmetrics(&out),
        };
        size.store(out.len(), Relaxed);
        out
    }

    /// The whole exposition in `format`, in one string.
    pub fn encode(&self, format: Format) -> String {
        (0..self.parts()).map(|i| self.part(i, format)).collect()
    }

    /// The exposition in OpenMetrics text, with the wall clock read now.
    pub fn encode_openmetrics(&self) -> String {
        self.encode(Format::OpenMetrics)
    }

    /// The exposition in the Prometheus text format 0.0.4.
    pub fn encode_text(&self) -> String {
        self.encode(Format::Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RouteLabels;

    #[test]
    fn the_parts_make_the_exposition_one_registry_would() {
        let m = Metrics::new();
        for i in 0..3 {
            let route = RouteLabels::new(format!("r{i}"), "p", "x");
            m.init_route(&route);
            m.delivery_latency.get_or_create(&route).observe(0.5);
        }
        m.init_inbox("x");
        for part in &m.parts.parts {
            let mut text = String::new();
            prometheus_client::encoding::text::encode_registry(&mut text, part).unwrap();
            // (A family with no series yet writes nothing at all.)
            assert!(text.matches("# TYPE ").count() <= 1, "one family a part: {text}");
        }
        let openmetrics = m.encode_openmetrics();
        // The same families in one registry (the clock as the parts read it).
        let mut one = Registry::with_prefix("mailcanary");
        m.register_all(&mut one);
        let mut whole = String::new();
        prometheus_client::encoding::text::encode(&mut whole, &one).unwrap();
        assert_eq!(openmetrics, whole);
        let parts = m.encode_text();
        let mut text = crate::metrics::text::PrometheusText::with_capacity(0);
        prometheus_client::encoding::text::encode(&mut text, &one).unwrap();
        // All but the clock, read again.
        let clockless =
            |s: &str| s.lines().filter(|l| !l.starts_with("mailcanary_time_seconds ")).collect::<Vec<_>>().join("\n");
        assert_eq!(clockless(&parts), clockless(&text.finish()));
    }
}
