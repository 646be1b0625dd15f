//! What a standby node answers (PostgreSQL, several nodes: see `store::lease`): 503 to
//! everything, so a load balancer checking `/healthz/primary` (or `/healthz`) sends it no
//! one, and a person who reaches it anyway is told to retry, which the widget does.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// The standby's routes: `/healthz` and `/healthz/primary` say `standby`; anything else is
/// 503 with `Retry-After: 1`.
pub fn router(holder: String) -> Router {
    let health = move || {
        let holder = holder.clone();
        async move {
            let body = serde_json::json!({
                "status": "standby",
                "role": "standby",
                "node": holder,
                "reason": "another node is the primary; this one takes over if it goes",
            });
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body))
        }
    };
    Router::new()
        .route("/healthz", get(health.clone()))
        .route("/healthz/primary", get(health))
        .fallback(not_here)
}

async fn not_here() -> impl IntoResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "this ieum node is on standby; try again (the service answers on its primary). \
         If you are in danger, call 109 or 119 now.\n",
    )
}
