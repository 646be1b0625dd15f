//! Counters the writer thread keeps and [`Store::stats`](super::Store::stats) reads.
//!
//! Plain relaxed atomics: the writer thread is the only one that updates them, any thread
//! may read a snapshot, and a snapshot need not be consistent across counters (Prometheus
//! scrapes tolerate that). The flush-latency histogram has fixed buckets so it costs no
//! allocation and maps one to one onto a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (inclusive, microseconds) of the flush-latency buckets. One more bucket
/// after the last holds everything slower. A local disk flushes in about 0.1 ms; an SSD
/// without power-loss protection in 0.5–10 ms.
pub const FLUSH_BUCKETS_US: &[u64] = &[
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

const N_BUCKETS: usize = FLUSH_BUCKETS_US.len() + 1;

/// Live counters, shared by the writer thread and every handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_errors: AtomicU64,
    flush_buckets: [AtomicU64; N_BUCKETS],
    flush_sum_us: AtomicU64,
    /// Unix ms since when writes fail (0: they work).
    pub(crate) failing_since_ms: AtomicU64,
    /// Times the backend was recovered (sled reopened) after a failure.
    pub(crate) recoveries: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn record_flush(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = FLUSH_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(FLUSH_BUCKETS_US.len());
        self.flush_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.flush_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, queued: usize) -> StoreStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreStats {
            writes: load(&self.writes),
            write_errors: load(&self.write_errors),
            flushes: load(&self.flushes),
            flush_errors: load(&self.flush_errors),
            failing_since_ms: Some(load(&self.failing_since_ms)).filter(|t| *t > 0),
            recoveries: load(&self.recoveries),
            queued,
            flush_latency: LatencyHistogram {
                counts: self.flush_buckets.iter().map(load).collect(),
                sum_us: load(&self.flush_sum_us),
            },
        }
    }
}

/// A snapshot of the store's counters. All counts are since the store started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    /// Write requests acknowledged (their flush succeeded).
    pub writes: u64,
    /// Write requests answered with an error (not acknowledged).
    pub write_errors: u64,
    /// Successful backend flushes. `writes / flushes` is the mean group-commit size.
    pub flushes: u64,
    /// Failed backend flushes.
    pub flush_errors: u64,
    /// Since when (Unix ms) writes fail, while they do; `None` when the last write worked.
    pub failing_since_ms: Option<u64>,
    /// Times the backend was recovered (sled reopened) after a failure.
    pub recoveries: u64,
    /// Write requests waiting in the queue when the snapshot was taken.
    pub queued: usize,
    /// How long flushes (successful or not) took.
    pub flush_latency: LatencyHistogram,
}

/// A fixed-bucket latency histogram in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Per-bucket counts (not cumulative): `counts[i]` counts samples `<= FLUSH_BUCKETS_US[i]`
    /// and above the previous bound; the last entry counts samples above every bound.
    pub counts: Vec<u64>,
    /// Sum of all samples, in microseconds.
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// The bucket upper bounds, in microseconds ([`FLUSH_BUCKETS_US`]).
    pub fn bounds_us(&self) -> &'static [u64] {
        FLUSH_BUCKETS_US
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0.0–1.0): "at most this many
    /// microseconds". `None` if empty or `q` falls in the overflow bucket.
    pub fn quantile_upper_bound_us(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // Rank of the sample at quantile q, 1-based, at least 1.
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return FLUSH_BUCKETS_US.get(i).copied();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let c = Counters::default();
        for us in [10, 30, 30, 90, 2_000_000] {
            c.record_flush(Duration::from_micros(us));
        }
        let h = c.snapshot(0).flush_latency;
        assert_eq!(h.count(), 5);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 2);
        assert_eq!(h.counts[2], 1);
        assert_eq!(*h.counts.last().unwrap(), 1);
        assert_eq!(h.quantile_upper_bound_us(0.5), Some(50));
        assert_eq!(h.quantile_upper_bound_us(0.8), Some(100));
        assert_eq!(h.quantile_upper_bound_us(1.0), None);
        assert_eq!(h.sum_us, 10 + 30 + 30 + 90 + 2_000_000);
    }
}
