//! The staff HTTP API: login, logout, transcripts, the live queue and the audit log.
//!
//! Every endpoint but `POST /api/login` needs a session (cookie `ieum_session` or
//! `Authorization: Bearer`), else 401. What a role may see:
//!
//! | endpoint | counselor | supervisor |
//! |---|---|---|
//! | `GET /api/conversations` | those they held | all (audited) |
//! | `GET /api/conversations/{id}` | those they held (audited) | any (audited) |
//! | `GET /api/queue` | yes (audited) | yes (audited) |
//! | `GET /api/audit` | no (403) | yes (audited) |
//! | casework: notes, follow-ups, referrals, statistics | see `crate::http::casework` | |
//!
//! A read is audited *before* it is served; if the audit record cannot be stored, the read
//! fails. Errors carry a stable `code` and a plain message; the cause is logged, never sent.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, AuditEntry};
use crate::auth::{self, AuthError, Role, SESSION_TTL_MS, Session};
use crate::conversation::ConversationMeta;
use crate::http::AppState;
use crate::ids::{ConversationId, Token};
use crate::store::StoreError;
use crate::transcript;
use crate::triage::Level;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ieum_session";

/// An API error: a status, a stable code and a safe message.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or bad credentials.
    #[error("please log in")]
    Unauthorized,
    /// Logged in, but not allowed.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// No such thing.
    #[error("not found")]
    NotFound,
    /// A bad request.
    #[error("{0}")]
    BadRequest(String),
    /// Wrong username or password.
    #[error("wrong username or password")]
    BadCredentials,
    /// It exists already.
    #[error("{0}")]
    Conflict(String),
    /// Refused for now: too many attempts, a locked account, or too many at once.
    #[error("{message}")]
    TooMany {
        /// Stable code: `too_many_attempts`, `account_locked`, `busy`.
        code: &'static str,
        /// A plain sentence.
        message: String,
        /// Seconds to wait (`Retry-After`).
        retry_after_secs: u64,
    },
    /// Understood, but refused by a rule (no consent, a status that cannot follow).
    #[error("{message}")]
    Refused {
        /// HTTP status: 409 or 422.
        status: StatusCode,
        /// Stable code: `consent_required`, `bad_transition`, …
        code: &'static str,
        /// A plain sentence.
        message: String,
    },
    /// Anything else (logged, not sent).
    #[error("something went wrong on our side")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "exists"),
            ApiError::TooMany { code, .. } => (StatusCode::TOO_MANY_REQUESTS, code),
            ApiError::Refused { status, code, .. } => (*status, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "api error");
        }
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": self.to_string()}})),
        )
            .into_response();
        if let ApiError::TooMany {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials => ApiError::BadCredentials,
            AuthError::Invalid(why) => ApiError::BadRequest(why),
            AuthError::Exists => {
                ApiError::Conflict("an account with this username exists already".into())
            }
            AuthError::NoSuchAccount => ApiError::NotFound,
            e @ AuthError::TooSoon { retry_after_secs } => ApiError::TooMany {
                code: "too_many_attempts",
                message: e.to_string(),
                retry_after_secs,
            },
            e @ AuthError::Locked { retry_after_secs } => ApiError::TooMany {
                code: "account_locked",
                message: e.to_string(),
                retry_after_secs,
            },
            e @ AuthError::Busy => ApiError::TooMany {
                code: "busy",
                message: e.to_string(),
                retry_after_secs: 1,
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

/// The token a request carries: `Authorization: Bearer` first, then the session cookie.
pub fn request_token(headers: &HeaderMap) -> Option<Token> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(Token::from_client(t.trim()));
        }
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| Token::from_client(v))
}

/// Resolves the request's session, if any.
///
/// # Errors
/// [`ApiError::Unauthorized`] without a valid session.
pub async fn staff_session(state: &AppState, headers: &HeaderMap) -> Result<Session, ApiError> {
    let token = request_token(headers).ok_or(ApiError::Unauthorized)?;
    auth::session(&state.store, &token)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// A logged-in staff member (extractor).
pub struct Staff(pub Session);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        staff_session(state, &parts.headers).await.map(Staff)
    }
}

/// Every staff API response is private and typed: never cached by a browser or a proxy
/// (`Cache-Control: no-store`), never sniffed (`X-Content-Type-Options: nosniff`). A request
/// that changes something (anything but GET) and carries an `Origin` must come from the
/// service itself or an allowed origin: a page elsewhere cannot act with a staff member's
/// cookie (`SameSite` is the first line, this the second). Tools send no `Origin`.
async fn guard_api(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if changes && !origin_ok(&state, req.headers()) {
        return ApiError::Forbidden.into_response();
    }
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether the request's `Origin`, if it has one, is the service itself or allowed.
pub fn origin_ok(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    origin
        .to_str()
        .is_ok_and(|o| crate::http::ws::origin_allowed(o, host, &state.gateway.allowed_origins))
}

/// The staff routes (merged into the app's router), with [`guard_api`] around them.
pub fn routes(state: AppState) -> Router<AppState> {
    api_routes().layer(axum::middleware::from_fn_with_state(state, guard_api))
}

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/conversations", get(list_conversations))
        .route("/api/conversations/{id}", get(get_conversation))
        .route("/api/conversations/{id}/export", get(export_conversation))
        .route("/api/queue", get(queue))
        .route("/api/audit", get(audit_log))
        .route("/api/staff", get(list_staff).post(add_staff))
        .route("/api/staff/{username}/disable", post(disable_staff))
        .route("/api/staff/{username}/enable", post(enable_staff))
        .route("/api/events", get(supervisor_events))
        .merge(super::casework::routes())
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// `; Secure` when the service is reached over TLS (the `--secure-cookies` flag, or a
/// proxy's `X-Forwarded-Proto: https`).
fn secure_attr(state: &AppState, headers: &HeaderMap) -> &'static str {
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    if state.gateway.secure_cookies || forwarded_https {
        "; Secure"
    } else {
        ""
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    let attempt = auth::login_attempt(
        &state.store,
        &state.logins,
        &body.username,
        &body.password,
        remote.ip(),
    )
    .await;
    let (token, session) = match attempt {
        Ok(ok) => ok,
        Err((e, failure)) => {
            // Every wrong password is audited (and logged, without the password): who was
            // tried, from where, and whether it locked the account.
            if let Some(failure) = failure {
                let action = match failure {
                    auth::Failure::WrongPassword => "login_failed",
                    auth::Failure::Locked => "account_locked",
                };
                let tried: String = body.username.chars().take(64).collect();
                tracing::warn!(username = %tried, remote = %remote.ip(), action, "failed staff login");
                state
                    .audit
                    .append(AuditEntry {
                        actor: tried,
                        role: "-".into(),
                        action: action.into(),
                        conversation_id: None,
                        remote: Some(remote.ip().to_string()),
                    })
                    .await?;
            }
            return Err(e.into());
        }
    };
    state
        .audit
        .append(AuditEntry {
            actor: session.username.clone(),
            role: session.role.as_str().into(),
            action: "login".into(),
            conversation_id: None,
            remote: Some(remote.ip().to_string()),
        })
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        token.expose(),
        SESSION_TTL_MS / 1000,
        secure_attr(&state, &headers),
    );
    let mut response = Json(json!({
        "token": token.expose(),
        "username": session.username,
        "role": session.role,
        "expires_at": session.expires_at,
    }))
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(response)
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = request_token(&headers) {
        auth::logout(&state.store, &token).await?;
        // Its open sockets (a counselor's console) close now.
        let _ = state
            .sessions_ended
            .send(auth::SessionEnded::Token(token.hash()));
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cookie = format!(
        "ieum_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure_attr(&state, &headers)
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok(response)
}

async fn me(Staff(s): Staff) -> Json<Session> {
    Json(s)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    /// Created at or after (Unix ms).
    from: Option<u64>,
    /// Created before (Unix ms).
    to: Option<u64>,
    /// At least this level.
    min_level: Option<Level>,
    /// In this state (`bot`, `screening`, `queued`, `with_counselor`, `closed`).
    state: Option<String>,
    /// Held by this counselor (now or before).
    counselor: Option<String>,
}

pub(crate) fn row(m: &ConversationMeta) -> serde_json::Value {
    json!({
        "id": m.id,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "state": m.conversation.state.name(),
        "level": m.level(),
        "counselor": m.holder(),
        "counselors": m.counselors,
        "closed_at": m.closed_at,
        "outcome": m.outcome,
        "rating": m.conversation.rating,
        "events": m.last_seq,
        "lang": m.lang,
    })
}

pub(crate) fn may_read(s: &Session, m: &ConversationMeta) -> bool {
    match s.role {
        Role::Supervisor => true,
        Role::Counselor => m.counselors.contains(&s.username),
    }
}

/// The record of conversation `id` (hex), if it exists and `s` may read it.
async fn readable_meta(
    state: &AppState,
    s: &Session,
    id: &str,
) -> Result<ConversationMeta, ApiError> {
    let id = ConversationId::parse(id).ok_or(ApiError::NotFound)?;
    let key = state.keyring.key(id).await?.ok_or(ApiError::NotFound)?;
    let meta = transcript::load_meta(&state.store, id, &key)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !may_read(s, &meta) {
        return Err(ApiError::Forbidden);
    }
    Ok(meta)
}

/// A transcript leaving the live chat: the read is audited first (no audit, no read), and
/// phone numbers and e-mail addresses are removed from every text.
async fn audited_events(
    state: &AppState,
    s: &Session,
    action: &str,
    meta: &ConversationMeta,
    remote: SocketAddr,
) -> Result<Vec<crate::conversation::StoredEvent>, ApiError> {
    record(state, s, action, Some(meta.id), remote).await?;
    let key = state
        .keyring
        .key(meta.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(
        transcript::events_after(&state.store, meta.id, &key, 0, meta.last_seq)
            .await?
            .iter()
            .map(crate::conversation::StoredEvent::redacted)
            .collect(),
    )
}

pub(crate) async fn record(
    state: &AppState,
    s: &Session,
    action: &str,
    conversation_id: Option<ConversationId>,
    remote: SocketAddr,
) -> Result<(), ApiError> {
    state
        .audit
        .append(AuditEntry {
            actor: s.username.clone(),
            role: s.role.as_str().into(),
            action: action.into(),
            conversation_id,
            remote: Some(remote.ip().to_string()),
        })
        .await?;
    Ok(())
}

async fn list_conversations(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if s.role == Role::Supervisor {
        record(&state, &s, "list_conversations", None, remote).await?;
    }
    let mut all: Vec<ConversationMeta> = transcript::all_meta(&state.store, &state.keyring)
        .await?
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    all.retain(|m| {
        may_read(&s, m)
            && q.from.is_none_or(|f| m.created_at >= f)
            && q.to.is_none_or(|t| m.created_at < t)
            && q.min_level.is_none_or(|l| m.level() >= l)
            && q.state
                .as_deref()
                .is_none_or(|st| m.conversation.state.name() == st)
            && q.counselor
                .as_deref()
                .is_none_or(|c| m.counselors.iter().any(|x| x == c))
    });
    all.sort_by_key(|m| std::cmp::Reverse(m.created_at));
    Ok(Json(json!({
        "conversations": all.iter().map(row).collect::<Vec<_>>()
    })))
}

async fn get_conversation(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let meta = readable_meta(&state, &s, &id).await?;
    let events = audited_events(&state, &s, "read_transcript", &meta, remote).await?;
    Ok(Json(json!({
        "conversation": row(&meta),
        "events": events,
    })))
}

#[derive(Deserialize)]
struct ExportQuery {
    /// `json` (default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

/// One transcript as a file, identifying numbers redacted. Audited like a read.
async fn export_conversation(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let meta = readable_meta(&state, &s, &id).await?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::BadRequest("format is json or csv".into())),
    };
    let events = audited_events(&state, &s, "export_transcript", &meta, remote).await?;
    let (body, content_type, ext) = if csv {
        (
            transcript::to_csv(&events),
            "text/csv; charset=utf-8",
            "csv",
        )
    } else {
        (
            serde_json::to_string_pretty(&json!({"conversation": row(&meta), "events": events}))
                .map_err(|e| ApiError::Internal(e.into()))?,
            "application/json",
            "json",
        )
    };
    let disposition = format!("attachment; filename=\"ieum-{}.{ext}\"", meta.id);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// The live queue with each waiting person's first lines: audited before it is served,
/// like every read (the supervisor's live board reads it every 2 s).
async fn queue(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
) -> Result<Json<serde_json::Value>, ApiError> {
    record(&state, &s, "read_queue", None, remote).await?;
    let entries = state.queue.snapshot().await;
    let stats = state.queue.stats();
    let levels: Vec<serde_json::Value> = Level::ALL
        .iter()
        .map(|l| {
            json!({
                "level": l,
                "waiting": stats.waiting[l.index()],
                "longest_wait_secs": stats.longest_wait_secs[l.index()],
                "wait_target_secs": state.engine.policy(*l).wait_target_secs,
                "breaches": stats.breaches[l.index()],
            })
        })
        .collect();
    Ok(Json(json!({
        "entries": entries,
        "levels": levels,
        "counselors_online": stats.counselors_online,
    })))
}

#[derive(Deserialize)]
struct NewStaff {
    username: String,
    role: Role,
    password: String,
}

pub(crate) fn supervisor(s: &Session) -> Result<(), ApiError> {
    if s.role == Role::Supervisor {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// `GET /api/staff` (supervisors): every account, without password hashes.
async fn list_staff(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
) -> Result<Json<serde_json::Value>, ApiError> {
    supervisor(&s)?;
    record(&state, &s, "list_staff", None, remote).await?;
    Ok(Json(
        json!({ "staff": auth::list_staff(&state.store).await? }),
    ))
}

/// `POST /api/staff` (supervisors): adds an account while the service runs.
async fn add_staff(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
    Json(body): Json<NewStaff>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    supervisor(&s)?;
    auth::add_staff(&state.store, &body.username, body.role, &body.password).await?;
    record(
        &state,
        &s,
        &format!("add_staff:{}", body.username),
        None,
        remote,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"username": body.username, "role": body.role, "disabled": false})),
    ))
}

async fn set_disabled(
    state: &AppState,
    s: &Session,
    username: &str,
    disabled: bool,
    remote: SocketAddr,
) -> Result<Json<serde_json::Value>, ApiError> {
    supervisor(s)?;
    if disabled && username == s.username {
        return Err(ApiError::BadRequest(
            "you cannot disable your own account".into(),
        ));
    }
    auth::set_disabled(&state.store, username, disabled).await?;
    if disabled {
        let _ = state
            .sessions_ended
            .send(auth::SessionEnded::User(username.to_owned()));
    }
    let action = if disabled {
        "disable_staff"
    } else {
        "enable_staff"
    };
    record(state, s, &format!("{action}:{username}"), None, remote).await?;
    Ok(Json(json!({"username": username, "disabled": disabled})))
}

/// `POST /api/staff/{username}/disable` (supervisors): no more logins; open sessions end.
async fn disable_staff(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
    Path(username): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_disabled(&state, &s, &username, true, remote).await
}

/// `POST /api/staff/{username}/enable` (supervisors).
async fn enable_staff(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
    Path(username): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_disabled(&state, &s, &username, false, remote).await
}

async fn audit_log(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Staff(s): Staff,
) -> Result<Json<serde_json::Value>, ApiError> {
    if s.role != Role::Supervisor {
        return Err(ApiError::Forbidden);
    }
    record(&state, &s, "read_audit", None, remote).await?;
    let records = audit::list(&state.store).await?;
    Ok(Json(json!({ "records": records })))
}

/// `GET /api/events` (supervisors): a server-sent event stream of queue alarms — a wait
/// past its level's target arrives as an event named `wait_breached`.
async fn supervisor_events(
    State(state): State<AppState>,
    Staff(s): Staff,
) -> Result<
    axum::response::sse::Sse<
        impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    if s.role != Role::Supervisor {
        return Err(ApiError::Forbidden);
    }
    let rx = state.queue.supervisor_events();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let name = match &ev {
                        crate::queue::SupervisorEvent::WaitBreached { .. } => "wait_breached",
                    };
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    return Some((Ok(Event::default().event(name).data(data)), rx));
                }
                // Fell behind: skip what was missed; the live board polls the full state.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
