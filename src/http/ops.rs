//! Operations endpoints: `/healthz` (up, and which rule set) and `/metrics` (Prometheus
//! text: messages, triage time, the store's writes and flushes, the queue per level).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::state::AppState;
use crate::triage::Level;

pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    // Health reflects the store: while writes fail nothing can be acknowledged, and a load
    // balancer or an operator must see it.
    if let Some(since) = state.store.failing_since() {
        let body = serde_json::json!({
            "status": "degraded",
            "reason": "store writes are failing (disk full or I/O errors); messages are not being saved",
            "failing_since": since,
            "ruleset": state.engine.version(),
        });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body));
    }
    let body = serde_json::json!({
        "status": "ok",
        "role": "primary",
        "ruleset": state.engine.version(),
    });
    (StatusCode::OK, axum::Json(body))
}

/// 200 on the node that serves (the only node on sled; the lease holder on PostgreSQL),
/// even while the store fails: a load balancer checks this, so people keep reaching the
/// node that answers them (with 109 when their words cannot be saved). Standbys answer 503
/// (`http::standby`).
pub async fn primary() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok", "role": "primary" }))
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write;
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let s = state.store.stats();
    let _ = writeln!(
        out,
        "# HELP ieum_store_writes_total Durable writes acknowledged."
    );
    let _ = writeln!(out, "# TYPE ieum_store_writes_total counter");
    let _ = writeln!(out, "ieum_store_writes_total {}", s.writes);
    let _ = writeln!(
        out,
        "# HELP ieum_store_write_errors_total Writes refused (never acknowledged)."
    );
    let _ = writeln!(out, "# TYPE ieum_store_write_errors_total counter");
    let _ = writeln!(out, "ieum_store_write_errors_total {}", s.write_errors);
    let _ = writeln!(
        out,
        "# HELP ieum_store_writable 1 while writes work, 0 while they fail (healthz is 503)."
    );
    let _ = writeln!(out, "# TYPE ieum_store_writable gauge");
    let _ = writeln!(
        out,
        "ieum_store_writable {}",
        u8::from(s.failing_since_ms.is_none())
    );
    let _ = writeln!(
        out,
        "# HELP ieum_store_recoveries_total Times the store reopened itself after failures."
    );
    let _ = writeln!(out, "# TYPE ieum_store_recoveries_total counter");
    let _ = writeln!(out, "ieum_store_recoveries_total {}", s.recoveries);
    let _ = writeln!(
        out,
        "# HELP ieum_store_flushes_total Store flushes (one per commit group)."
    );
    let _ = writeln!(out, "# TYPE ieum_store_flushes_total counter");
    let _ = writeln!(out, "ieum_store_flushes_total {}", s.flushes);
    let _ = writeln!(out, "# HELP ieum_store_flush_seconds Flush latency.");
    let _ = writeln!(out, "# TYPE ieum_store_flush_seconds histogram");
    let mut cumulative = 0u64;
    for (i, bound) in s.flush_latency.bounds_us().iter().enumerate() {
        cumulative += s.flush_latency.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "ieum_store_flush_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "ieum_store_flush_seconds_bucket{{le=\"+Inf\"}} {}",
        s.flush_latency.count()
    );
    let _ = writeln!(
        out,
        "ieum_store_flush_seconds_sum {}",
        s.flush_latency.sum_us as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "ieum_store_flush_seconds_count {}",
        s.flush_latency.count()
    );

    let q = state.queue.stats();
    let _ = writeln!(
        out,
        "# HELP ieum_queue_waiting Conversations waiting for a counselor."
    );
    let _ = writeln!(out, "# TYPE ieum_queue_waiting gauge");
    for l in Level::ALL {
        let _ = writeln!(
            out,
            "ieum_queue_waiting{{level=\"{l}\"}} {}",
            q.waiting[l.index()]
        );
    }
    let _ = writeln!(
        out,
        "# HELP ieum_queue_longest_wait_seconds Longest current wait."
    );
    let _ = writeln!(out, "# TYPE ieum_queue_longest_wait_seconds gauge");
    for l in Level::ALL {
        let _ = writeln!(
            out,
            "ieum_queue_longest_wait_seconds{{level=\"{l}\"}} {}",
            q.longest_wait_secs[l.index()]
        );
    }
    let _ = writeln!(
        out,
        "# HELP ieum_queue_wait_breaches_total Waits past the level's target."
    );
    let _ = writeln!(out, "# TYPE ieum_queue_wait_breaches_total counter");
    for l in Level::ALL {
        let _ = writeln!(
            out,
            "ieum_queue_wait_breaches_total{{level=\"{l}\"}} {}",
            q.breaches[l.index()]
        );
    }
    let _ = writeln!(out, "# HELP ieum_counselors_online Counselors connected.");
    let _ = writeln!(out, "# TYPE ieum_counselors_online gauge");
    let _ = writeln!(out, "ieum_counselors_online {}", q.counselors_online);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
