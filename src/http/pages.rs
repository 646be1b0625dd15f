//! The web pages, served by the same binary: the citizen widget (and a demo page that
//! embeds it), the counselor console and the supervisor pages.
//!
//! Plain HTML, CSS and JavaScript from `web/`, embedded at compile time: no build step, no
//! files to deploy beside the binary.
//!
//! | path | what |
//! |---|---|
//! | `GET /` | a demo page that embeds the widget with one `<script>` tag |
//! | `GET /widget.js`, `/widget.css` | the citizen widget (a host site embeds `widget.js`) |
//! | `GET /console` | the counselor console (`/ws/counselor` + `/api/*`, cookie session) |
//! | `GET /supervisor` | transcripts, replay, export links, live board, audit |
//! | `GET /static/*` | the staff pages' shared CSS and scripts |
//! | `GET /api/content/canned` | staff: the canned snippets (`intents/canned.toml`) |
//! | `GET /api/content/resources` | staff: the verified resources (`intents/resources.toml`) |
//!
//! The pages send a strict Content-Security-Policy (scripts, styles and connections from
//! this origin only) and may not be framed; the widget's files may be loaded by any site
//! (the websocket's `Origin` check decides who may chat).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::api::{ApiError, Staff};
use crate::http::AppState;

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

const INDEX: Asset = Asset {
    body: include_bytes!("../../web/index.html"),
    content_type: HTML,
};
const CONSOLE: Asset = Asset {
    body: include_bytes!("../../web/console.html"),
    content_type: HTML,
};
const SUPERVISOR: Asset = Asset {
    body: include_bytes!("../../web/supervisor.html"),
    content_type: HTML,
};
const WIDGET_JS: Asset = Asset {
    body: include_bytes!("../../web/widget.js"),
    content_type: JS,
};
const WIDGET_CSS: Asset = Asset {
    body: include_bytes!("../../web/widget.css"),
    content_type: CSS,
};
const STAFF_CSS: Asset = Asset {
    body: include_bytes!("../../web/staff.css"),
    content_type: CSS,
};
const STAFF_JS: Asset = Asset {
    body: include_bytes!("../../web/staff.js"),
    content_type: JS,
};
const CONSOLE_JS: Asset = Asset {
    body: include_bytes!("../../web/console.js"),
    content_type: JS,
};
const SUPERVISOR_JS: Asset = Asset {
    body: include_bytes!("../../web/supervisor.js"),
    content_type: JS,
};
const CASEWORK: Asset = Asset {
    body: include_bytes!("../../web/casework.html"),
    content_type: HTML,
};
const CASEWORK_JS: Asset = Asset {
    body: include_bytes!("../../web/casework.js"),
    content_type: JS,
};
/// uPlot 1.6.32 (MIT, `web/vendor/uplot.LICENSE`): a small, dependency-free chart library
/// for the statistics page, embedded like every other asset (no outside request).
const UPLOT_JS: Asset = Asset {
    body: include_bytes!("../../web/vendor/uplot.min.js"),
    content_type: JS,
};
const UPLOT_CSS: Asset = Asset {
    body: include_bytes!("../../web/vendor/uplot.min.css"),
    content_type: CSS,
};
const DEMO_CSS: Asset = Asset {
    body: include_bytes!("../../web/demo.css"),
    content_type: CSS,
};

/// The pages' policy: everything from this origin, nothing inline, no framing.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'; object-src 'none'";

fn page(asset: &'static Asset) -> Response {
    let mut r = serve(asset);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn serve(asset: &'static Asset) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

/// The page routes (merged into the app's router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { page(&INDEX) }))
        .route("/console", get(|| async { page(&CONSOLE) }))
        .route("/supervisor", get(|| async { page(&SUPERVISOR) }))
        .route("/widget.js", get(|| async { serve(&WIDGET_JS) }))
        .route("/widget.css", get(|| async { serve(&WIDGET_CSS) }))
        .route("/static/staff.css", get(|| async { serve(&STAFF_CSS) }))
        .route("/static/staff.js", get(|| async { serve(&STAFF_JS) }))
        .route("/static/console.js", get(|| async { serve(&CONSOLE_JS) }))
        .route(
            "/static/supervisor.js",
            get(|| async { serve(&SUPERVISOR_JS) }),
        )
        .route("/static/demo.css", get(|| async { serve(&DEMO_CSS) }))
        .route("/casework", get(|| async { page(&CASEWORK) }))
        .route("/static/casework.js", get(|| async { serve(&CASEWORK_JS) }))
        .route("/static/uplot.js", get(|| async { serve(&UPLOT_JS) }))
        .route("/static/uplot.css", get(|| async { serve(&UPLOT_CSS) }))
        .route("/api/content/canned", get(canned))
        .route("/api/content/resources", get(resources))
}

/// `GET /api/content/canned`: the counselor snippets, for staff.
async fn canned(
    State(state): State<AppState>,
    Staff(_): Staff,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(json!({ "canned": state.content.canned_responses() })))
}

/// `GET /api/content/resources`: the verified resources, for staff (never an unverified
/// one, as in the bot's replies).
async fn resources(
    State(state): State<AppState>,
    Staff(_): Staff,
) -> Result<Json<serde_json::Value>, ApiError> {
    let verified: Vec<_> = state
        .content
        .resources()
        .iter()
        .filter(|r| r.verified)
        .collect();
    Ok(Json(json!({ "resources": verified })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_not_empty_and_pages_load_only_their_own_scripts() {
        for a in [
            &INDEX,
            &CONSOLE,
            &SUPERVISOR,
            &WIDGET_JS,
            &WIDGET_CSS,
            &STAFF_CSS,
            &STAFF_JS,
            &CONSOLE_JS,
            &SUPERVISOR_JS,
            &DEMO_CSS,
        ] {
            assert!(!a.body.is_empty());
        }
        for html in [&INDEX, &CONSOLE, &SUPERVISOR] {
            let text = std::str::from_utf8(html.body).unwrap();
            assert!(!text.contains("<script>"), "no inline scripts (CSP)");
            assert!(!text.contains(" style=\""), "no inline styles (CSP)");
        }
    }

    #[test]
    fn page_text_never_calls_suicide_a_choice() {
        for a in [
            &INDEX,
            &CONSOLE,
            &SUPERVISOR,
            &WIDGET_JS,
            &STAFF_JS,
            &CONSOLE_JS,
        ] {
            let text = std::str::from_utf8(a.body).unwrap();
            for bad in [
                "극단적 선택",
                "극단적인 선택",
                "벼랑 끝 선택",
                "마지막 탈출구",
            ] {
                assert!(!text.contains(bad), "{bad}");
            }
        }
    }
}
