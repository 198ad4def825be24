//! Prometheus metrics: the text exposition format (0.0.4), written here.
//!
//! A scrape asks every registered [`Collect`] part to write its families;
//! parts keep their own counters (atomics they update anyway) and are
//! registered at wiring time (`cmd/run.rs`), so `ai` and `ingest` report
//! without knowing who serves them, and the adapter serves them without
//! importing `ingest`. The format is a few lines of text: a client crate
//! would bring a global registry and a dependency tree for no gain.
//!
//! Label values come only from closed sets (task names, outcomes, model ids
//! from the manifest, camera ids from the cameras table); nothing a client
//! sends becomes a label.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// The exposition's content type, as Prometheus expects it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A part of the daemon that reports metrics at scrape time.
pub trait Collect: Send + Sync {
    /// Writes this part's families into `out`.
    fn collect(&self, out: &mut Exposition);
}

/// The parts a scrape asks, in registration order.
#[derive(Default)]
pub struct Registry {
    parts: Mutex<Vec<Arc<dyn Collect>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a part; it is asked at every scrape from now on.
    pub fn register(&self, part: Arc<dyn Collect>) {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(part);
    }

    /// The whole exposition.
    pub fn render(&self) -> String {
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = Exposition::default();
        for p in parts {
            p.collect(&mut out);
        }
        out.text
    }
}

/// What a family's values mean to Prometheus.
#[derive(Debug, Clone, Copy)]
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

/// The text being written; one family header, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A histogram's `_bucket`, `_sum` and `_count` lines.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        for (bound, n) in h.bounds.iter().zip(&h.buckets) {
            cumulative += n.load(Relaxed);
            let _ = write!(self.text, "{name}_bucket");
            write_labels(&mut self.text, labels, Some(&number(*bound)));
            let _ = writeln!(self.text, " {cumulative}");
        }
        let count = h.count.load(Relaxed);
        let _ = write!(self.text, "{name}_bucket");
        write_labels(&mut self.text, labels, Some("+Inf"));
        let _ = writeln!(self.text, " {count}");
        let sum = h.sum_us.load(Relaxed) as f64 / 1e6;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    out.push('}');
}

/// Label values escape backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Help text escapes backslash and newline.
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

/// Integers without a fraction, others as Rust prints them (shortest
/// round-trip), which Prometheus parses.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Latency buckets in seconds: 5 ms (a small crop on a fast box) to 60 s
/// (a 40 MP photo on a slow one), the contract SDK's set so dashboards
/// built for OpenNVR's adapters read ours unchanged.
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram with fixed bounds, updated lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); values above the last bound only count.
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, in the unit observed).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `v` (seconds for latencies).
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add((v.max(0.0) * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The bound of the bucket that holds the `q` quantile (0..=1), an
    /// upper estimate; `None` with no observations or past the last bound.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            if cumulative >= rank {
                return Some(*bound);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two(Histogram);

    impl Collect for Two {
        fn collect(&self, out: &mut Exposition) {
            out.family("t_total", "A test\ncounter.", Kind::Counter);
            out.sample("t_total", &[("camera", "a\"b\\c\nd")], 3.0);
            out.family("t_seconds", "Latency.", Kind::Histogram);
            out.histogram("t_seconds", &[("task", "x")], &self.0);
        }
    }

    #[test]
    fn the_quantile_is_the_bound_of_its_bucket() {
        let h = Histogram::new(&[0.1, 0.5, 1.0]);
        assert_eq!(h.quantile_bound(0.95), None);
        for _ in 0..19 {
            h.observe(0.05);
        }
        h.observe(0.7);
        assert_eq!(h.quantile_bound(0.95), Some(0.1));
        assert_eq!(h.quantile_bound(1.0), Some(1.0));
        h.observe(3.0);
        assert_eq!(h.quantile_bound(1.0), None, "past the last bound");
    }

    #[test]
    fn exposition_escapes_and_cumulates() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let r = Registry::new();
        r.register(Arc::new(Two(h)));
        let text = r.render();
        let want = "# HELP t_total A test\\ncounter.\n# TYPE t_total counter\n\
            t_total{camera=\"a\\\"b\\\\c\\nd\"} 3\n\
            # HELP t_seconds Latency.\n# TYPE t_seconds histogram\n\
            t_seconds_bucket{task=\"x\",le=\"0.1\"} 1\n\
            t_seconds_bucket{task=\"x\",le=\"1\"} 2\n\
            t_seconds_bucket{task=\"x\",le=\"+Inf\"} 3\n\
            t_seconds_sum{task=\"x\"} 5.55\n\
            t_seconds_count{task=\"x\"} 3\n";
        assert_eq!(text, want);
    }
}
