//! The server's Prometheus metrics, written in the text exposition format (version 0.0.4) by
//! hand: a few counters, gauges and fixed-bucket histograms need no metrics library.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// Cumulative histogram with fixed upper bounds.
struct Histogram {
    bounds: &'static [f64],
    /// Observations ≤ each bound (not cumulative here; summed when rendered), plus one slot
    /// for the ones above the last bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[slot] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

struct Histograms {
    queue_seconds: Histogram,
    inference_seconds: Histogram,
    batch_size: Histogram,
}

pub struct Metrics {
    /// Answered `/v1/classify` requests by HTTP status.
    requests: Mutex<BTreeMap<u16, u64>>,
    histograms: Mutex<Histograms>,
    /// Classify requests admitted and not yet answered.
    pub in_flight: AtomicI64,
    /// Preprocessed requests waiting for the inference thread.
    pub queued: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            histograms: Mutex::new(Histograms {
                queue_seconds: Histogram::new(SECONDS),
                inference_seconds: Histogram::new(SECONDS),
                batch_size: Histogram::new(BATCH_SIZES),
            }),
            in_flight: AtomicI64::new(0),
            queued: AtomicI64::new(0),
        }
    }

    pub fn count_request(&self, status: u16) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry(status)
            .or_default() += 1;
    }

    /// One batch of `size` requests that took `seconds` to run.
    pub fn observe_batch(&self, size: usize, seconds: f64) {
        let mut h = self.histograms.lock().expect("metrics lock");
        h.batch_size.observe(size as f64);
        h.inference_seconds.observe(seconds);
    }

    /// One request's wait in the queue.
    pub fn observe_queue(&self, seconds: f64) {
        self.histograms
            .lock()
            .expect("metrics lock")
            .queue_seconds
            .observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kestrel_requests_total Answered /v1/classify requests by HTTP status.\n\
             # TYPE kestrel_requests_total counter\n",
        );
        for (status, n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "kestrel_requests_total{{status=\"{status}\"}} {n}");
        }
        let h = self.histograms.lock().expect("metrics lock");
        h.queue_seconds.render(
            &mut out,
            "kestrel_queue_seconds",
            "Time a preprocessed request waited for the inference thread.",
        );
        h.inference_seconds.render(
            &mut out,
            "kestrel_inference_seconds",
            "Forward pass time of one batch.",
        );
        h.batch_size.render(
            &mut out,
            "kestrel_batch_size",
            "Requests per batch run by the model.",
        );
        let _ = writeln!(
            out,
            "# HELP kestrel_in_flight_requests Classify requests admitted and not yet answered.\n\
             # TYPE kestrel_in_flight_requests gauge\nkestrel_in_flight_requests {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP kestrel_queued_requests Requests waiting for the inference thread.\n\
             # TYPE kestrel_queued_requests gauge\nkestrel_queued_requests {}",
            self.queued.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let m = Metrics::new();
        m.observe_batch(1, 0.002);
        m.observe_batch(3, 0.02);
        m.observe_batch(100, 20.0);
        m.count_request(200);
        m.count_request(200);
        m.count_request(503);
        let text = m.render();
        // Sizes 1, 3, 100: ≤1 → 1, ≤2 → 1, ≤4 → 2, ≤64 → 2, ≤128 → 3.
        for line in [
            "kestrel_batch_size_bucket{le=\"1\"} 1",
            "kestrel_batch_size_bucket{le=\"2\"} 1",
            "kestrel_batch_size_bucket{le=\"4\"} 2",
            "kestrel_batch_size_bucket{le=\"64\"} 2",
            "kestrel_batch_size_bucket{le=\"128\"} 3",
            "kestrel_batch_size_bucket{le=\"+Inf\"} 3",
            "kestrel_batch_size_sum 104",
            "kestrel_batch_size_count 3",
            // 20 s is above the last bound: only +Inf counts it.
            "kestrel_inference_seconds_bucket{le=\"10\"} 2",
            "kestrel_inference_seconds_bucket{le=\"+Inf\"} 3",
            "kestrel_requests_total{status=\"200\"} 2",
            "kestrel_requests_total{status=\"503\"} 1",
            "kestrel_in_flight_requests 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
    }
}
