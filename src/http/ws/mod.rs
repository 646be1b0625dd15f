//! The websocket edges: `/ws/chat` for citizens and `/ws/counselor` for counselors.
//!
//! * [`protocol`] — the frames clients send, and their total decoder (stable error codes).
//! * [`citizen`] — one citizen connection, over `Sink`/`Stream`.
//! * [`counselor`] — one counselor connection, over `Sink`/`Stream`.
//!
//! Checks made **before** the upgrade: `/ws/chat` needs an allowed `Origin` (403
//! otherwise; same-origin and the configured embedding sites are allowed); `/ws/counselor`
//! needs a staff session (401 without one): counselors, and supervisors, who monitor live
//! conversations on it (watch, whisper, take over). Over the citizen connection cap, the upgrade still happens so the person can be
//! told plainly to wait or call 109, then the socket closes with 1013.
//!
//! Sockets are tuned for many small, mostly idle connections (see `shared/MEASURED.md`): a
//! 4 KiB read buffer (tungstenite zero-fills the whole read buffer, so its size is the
//! resident cost of an idle connection), a bounded write buffer, and a 64 KiB cap on frames
//! and messages.

pub mod citizen;
pub mod counselor;
pub mod protocol;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;

use crate::auth::Role;
use crate::chat::{Lang, ServerFrame};
use crate::http::AppState;
use crate::http::api::staff_session;

/// Largest frame or message accepted (a citizen message is at most 2,000 characters).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Read buffer per connection.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames are gathered up to this many bytes until the session flushes; every send
/// flushes, and the citizen session flushes once per batch of ready frames.
pub const WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// Bytes queued for a slow client before writes fail.
pub const MAX_WRITE_BUFFER_BYTES: usize = 256 * 1024;

fn tune(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
}

/// Query of `/ws/chat`.
#[derive(Debug, Deserialize, Default)]
pub struct ChatQuery {
    /// `ko` (default) or `en`.
    #[serde(default)]
    lang: Option<String>,
    /// `1`: the first frame will be `resume`.
    #[serde(default)]
    resume: Option<String>,
}

/// Whether `origin` may open `/ws/chat`: same origin as `host`, or configured.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = host else { return false };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host.is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// `GET /ws/chat`.
pub async fn chat_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ChatQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match origin {
        Some(o) if origin_allowed(o, host, &state.gateway.allowed_origins) => {}
        _ => {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let lang = q.lang.as_deref().map(Lang::parse).unwrap_or_default();
    let resume = q.resume.as_deref().is_some_and(|r| r == "1" || r == "true");
    let permit = state.citizens.clone().try_acquire_owned().ok();
    tune(ws).on_upgrade(move |socket: WebSocket| async move {
        let (mut sink, stream) = socket.split();
        let Some(_permit) = permit else {
            let busy = ServerFrame::Error {
                seq: 0,
                code: "server_busy",
                message: "지금 연결이 많아 잠시 기다려 주세요. 위급하면 109(자살예방상담, 24시간) 또는 119로 바로 전화하세요. / We are very busy; please try again in a moment. In a crisis call 109 (24h) or 119 now.".into(),
                id: None,
            };
            let _ = sink.send(Message::Text(busy.to_json().into())).await;
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: citizen::close::TRY_AGAIN,
                    reason: "busy".into(),
                })))
                .await;
            return;
        };
        state.metrics.citizen_connected();
        citizen::run(
            sink,
            stream,
            citizen::CitizenCtx {
                registry: state.registry.clone(),
                engine: state.engine.clone(),
                lang,
                resume,
                limits: state.gateway.limits,
                shutdown: state.shutdown.clone(),
            },
        )
        .await;
        state.metrics.citizen_disconnected();
    })
}

/// `GET /ws/counselor`: 401 without a session; counselors and supervisors.
pub async fn counselor_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A page elsewhere must not open a counselor's socket with their cookie (cross-site
    // websocket hijacking): the Origin, when there is one, is the service's or allowed.
    if !crate::http::api::origin_ok(&state, &headers) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let session = match staff_session(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // Counselors, and supervisors (who watch, whisper and take over on it).
    if !matches!(session.role, Role::Counselor | Role::Supervisor) {
        return crate::http::api::ApiError::Forbidden.into_response();
    }
    let Some(token) = crate::http::api::request_token(&headers) else {
        return crate::http::api::ApiError::Unauthorized.into_response();
    };
    let ended = state.sessions_ended.subscribe();
    tune(ws).on_upgrade(move |socket: WebSocket| async move {
        let (sink, stream) = socket.split();
        counselor::run(
            sink,
            stream,
            counselor::CounselorCtx {
                username: session.username,
                role: session.role,
                token_hash: token.hash(),
                ended,
                registry: state.registry.clone(),
                queue: state.queue.clone(),
                store: state.store.clone(),
                ping: state.gateway.limits.ping,
                shutdown: state.shutdown.clone(),
            },
        )
        .await;
    })
}

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Origins (e.g. `https://example.seoul.go.kr`) allowed to embed the widget, besides
    /// the service's own. `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Citizen connections at most.
    pub max_citizens: usize,
    /// Per-connection limits.
    pub limits: citizen::Limits,
    /// A client must send its whole request head within this time; a connection that
    /// sends nothing at all is dropped after it too.
    pub header_timeout: std::time::Duration,
    /// Open connections from one client address at most. Citizens behind one NAT (a
    /// school, an office, a carrier) share an address, so it is generous.
    pub max_per_address: usize,
    /// Open connections in all at most (`None`: `max_citizens` + 2,000 for staff and
    /// probes).
    pub max_connections: Option<usize>,
    /// The last this many connections go only to addresses with few open (new citizens,
    /// staff, `/healthz`), so that one address at its cap cannot take them.
    pub connection_headroom: usize,
    /// Mark the session cookie `Secure` (the service is reached over TLS, through a proxy
    /// that terminates it). A request that says `X-Forwarded-Proto: https` gets it too.
    pub secure_cookies: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            allowed_origins: Vec::new(),
            max_citizens: 15_000,
            limits: citizen::Limits::default(),
            header_timeout: std::time::Duration::from_secs(10),
            max_per_address: 256,
            max_connections: None,
            connection_headroom: 1_000,
            secure_cookies: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let allowed = vec!["https://seoul.example".to_owned()];
        assert!(origin_allowed(
            "http://127.0.0.1:8080",
            Some("127.0.0.1:8080"),
            &[]
        ));
        assert!(origin_allowed(
            "https://seoul.example",
            Some("ieum.local"),
            &allowed
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("127.0.0.1:8080"),
            &allowed
        ));
        assert!(!origin_allowed("null", Some("127.0.0.1:8080"), &[]));
        assert!(origin_allowed("https://anything", None, &["*".to_owned()]));
    }
}
