//! Service counters for `/metrics` (Prometheus text format), kept as atomics so the hot path
//! never locks. Store and queue numbers come from their own actors' snapshots.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the triage-time histogram, in microseconds.
pub const TRIAGE_BUCKETS_US: [u64; 10] = [1, 2, 5, 10, 20, 50, 100, 500, 1_000, 10_000];

/// CPU time this process has used (user + system, all threads), in seconds: the standard
/// `process_cpu_seconds_total` series, and what the load tool and the store bench divide by
/// the messages or writes they measured.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass, which is plain data.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// The service's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    citizens: AtomicU64,
    citizens_total: AtomicU64,
    messages: AtomicU64,
    not_saved: AtomicU64,
    triage_buckets: [AtomicU64; TRIAGE_BUCKETS_US.len() + 1],
    triage_sum_ns: AtomicU64,
}

impl Metrics {
    /// A citizen socket opened.
    pub fn citizen_connected(&self) {
        self.citizens.fetch_add(1, Ordering::Relaxed);
        self.citizens_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A citizen socket closed.
    pub fn citizen_disconnected(&self) {
        self.citizens.fetch_sub(1, Ordering::Relaxed);
    }

    /// A citizen message was triaged, taking `nanos`.
    pub fn message_triaged(&self, nanos: u64) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.triage_sum_ns.fetch_add(nanos, Ordering::Relaxed);
        let us = nanos / 1000;
        let i = TRIAGE_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(TRIAGE_BUCKETS_US.len());
        self.triage_buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A write was refused (the citizen got `not_saved`).
    pub fn not_saved(&self) {
        self.not_saved.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends this struct's series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP ieum_citizen_connections Open citizen sockets.");
        let _ = writeln!(out, "# TYPE ieum_citizen_connections gauge");
        let _ = writeln!(out, "ieum_citizen_connections {}", get(&self.citizens));
        let _ = writeln!(
            out,
            "# HELP ieum_citizen_connections_total Citizen sockets opened."
        );
        let _ = writeln!(out, "# TYPE ieum_citizen_connections_total counter");
        let _ = writeln!(
            out,
            "ieum_citizen_connections_total {}",
            get(&self.citizens_total)
        );
        let _ = writeln!(out, "# HELP ieum_messages_total Citizen messages triaged.");
        let _ = writeln!(out, "# TYPE ieum_messages_total counter");
        let _ = writeln!(out, "ieum_messages_total {}", get(&self.messages));
        let _ = writeln!(
            out,
            "# HELP ieum_not_saved_total Messages refused because the store failed."
        );
        let _ = writeln!(out, "# TYPE ieum_not_saved_total counter");
        let _ = writeln!(out, "ieum_not_saved_total {}", get(&self.not_saved));
        let _ = writeln!(
            out,
            "# HELP ieum_triage_seconds Time to triage one message."
        );
        let _ = writeln!(out, "# TYPE ieum_triage_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in TRIAGE_BUCKETS_US.iter().enumerate() {
            cumulative += get(&self.triage_buckets[i]);
            let _ = writeln!(
                out,
                "ieum_triage_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *b as f64 / 1e6
            );
        }
        cumulative += get(&self.triage_buckets[TRIAGE_BUCKETS_US.len()]);
        let _ = writeln!(
            out,
            "ieum_triage_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "ieum_triage_seconds_sum {}",
            get(&self.triage_sum_ns) as f64 / 1e9
        );
        let _ = writeln!(out, "ieum_triage_seconds_count {cumulative}");
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time of this process."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {}", process_cpu_seconds());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.citizen_connected();
        m.message_triaged(3_000);
        m.message_triaged(50_000_000);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("ieum_citizen_connections 1"));
        assert!(out.contains("ieum_messages_total 2"));
        assert!(out.contains("ieum_triage_seconds_bucket{le=\"0.000005\"} 1"));
        assert!(out.contains("ieum_triage_seconds_bucket{le=\"+Inf\"} 2"));
        let cpu: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
            .expect("process CPU series")
            .parse()
            .expect("a number");
        assert!(cpu > 0.0, "this test process has used CPU: {cpu}");
    }

    #[test]
    fn process_cpu_time_grows_with_work() {
        let before = process_cpu_seconds();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        assert!(process_cpu_seconds() > before, "{x}");
    }
}
