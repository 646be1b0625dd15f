//! The casework API: case notes, follow-ups, referrals and the city's statistics.
//!
//! What a role may see (anything else is 403; no session is 401):
//!
//! | what | counselor | supervisor |
//! |---|---|---|
//! | a conversation's notes (`/api/conversations/{id}/notes`) | conversations they held, and unassigned ones waiting in the queue | all |
//! | follow-ups (`/api/followups`) | of conversations they held, assigned to them, or to the team (unassigned) | all |
//! | referrals (`/api/referrals`) | of conversations they held, or made by them | all |
//! | statistics (`/api/stats`) | no | yes |
//!
//! Every read is audited before it is served, and every change is audited after it is
//! durable; an answer `201`/`200` to a change means it is stored (flushed), so a crash after
//! it loses nothing. Citizens never reach any of this: their own safety plan comes to them
//! over their websocket.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, Staff, may_read, record, row, supervisor};
use crate::auth::{self, Role, Session};
use crate::casework::{
    self, Attempt, AttemptOutcome, Consent, Contact, Followup, FollowupKind, FollowupStatus,
    FollowupView, ItemId, MAX_SESSIONS, MAX_TEXT, Referral, ReferralStatus, ReferralTo,
    ReferralView, Series, Shared, StatusChange, WEEK_MS,
    stats::{self, Period},
};
use crate::conversation::{ConversationMeta, EventBody, State as ConvState};
use crate::crypto::Key;
use crate::http::AppState;
use crate::ids::{ConversationId, now_ms};
use crate::transcript;
use crate::triage::Level;

/// The casework routes (merged into the staff API, behind its guard).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/conversations/{id}/notes",
            get(list_notes).post(add_note),
        )
        .route("/api/followups", get(list_followups).post(add_followups))
        .route("/api/followups/{id}", get(get_followup))
        .route("/api/followups/{id}/attempts", post(add_attempt))
        .route("/api/referrals", get(list_referrals).post(add_referral))
        .route(
            "/api/referrals/{id}",
            get(get_referral).patch(change_referral),
        )
        .route("/api/referrals/{id}/form", get(referral_form))
        .route("/api/stats", get(get_stats))
}

type Remote = ConnectInfo<SocketAddr>;

/// A conversation's record and key, if it exists.
async fn load(state: &AppState, id: ConversationId) -> Result<(ConversationMeta, Key), ApiError> {
    let key = state.keyring.key(id).await?.ok_or(ApiError::NotFound)?;
    let meta = transcript::load_meta(&state.store, id, &key)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((meta, key))
}

/// Whether `s` may work on this conversation's case: one they held, or one waiting in the
/// queue for the team (nobody holds it yet); supervisors, any.
fn may_work_on(s: &Session, m: &ConversationMeta) -> bool {
    may_read(s, m) || matches!(m.conversation.state, ConvState::Queued { .. })
}

fn text_field(what: &str, text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ApiError::BadRequest(format!("{what} is empty")));
    }
    if t.chars().count() > MAX_TEXT {
        return Err(ApiError::BadRequest(format!(
            "{what} is longer than {MAX_TEXT} characters"
        )));
    }
    Ok(t.to_owned())
}

fn optional_text(what: &str, text: Option<&str>) -> Result<Option<String>, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => text_field(what, t).map(Some),
    }
}

/// The latest time accepted (9999-12-31, Unix ms): dates are for people, and the statistics
/// do calendar arithmetic on them.
const LATEST_MS: u64 = 253_402_300_799_999;

fn sane_time(what: &str, t: u64) -> Result<(), ApiError> {
    if t == 0 || t > LATEST_MS {
        return Err(ApiError::BadRequest(format!(
            "{what} is Unix milliseconds, before the year 10000"
        )));
    }
    Ok(())
}

fn consent_required() -> ApiError {
    ApiError::Refused {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "consent_required",
        message: "nothing about a person outlives the chat without their consent: ask them, \
                  then record it"
            .into(),
    }
}

fn stamped(mut consent: Consent, s: &Session) -> Result<Consent, ApiError> {
    if !consent.given {
        return Err(consent_required());
    }
    consent.words = optional_text("consent.words", consent.words.as_deref())?;
    consent.recorded_at = now_ms();
    consent.recorded_by = s.username.clone();
    Ok(consent)
}

// ---------------------------------------------------------------------------------------
// Notes

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

/// What the conversation shows of itself for a case: the level and what raised it, the
/// screener's questions and answers, the safety plan, the self-check's score, the outcome.
/// Read from the transcript (the caller audited the read); contacts are redacted.
async fn assessment(
    state: &AppState,
    meta: &ConversationMeta,
    key: &Key,
) -> Result<Value, ApiError> {
    let events = transcript::events_after(&state.store, meta.id, key, 0, meta.last_seq).await?;
    let mut rules: Vec<Value> = Vec::new();
    let mut screener: Vec<Value> = Vec::new();
    let mut screening = false;
    let mut last_question: Option<String> = None;
    for e in events
        .iter()
        .map(crate::conversation::StoredEvent::redacted)
    {
        match &e.body {
            EventBody::State { to, .. } => {
                screening = to == "screening";
            }
            EventBody::Bot { text, .. } if screening => last_question = Some(text.clone()),
            EventBody::Citizen { text, triage, .. } => {
                for hit in &triage.rules {
                    if hit.level >= Level::Medium
                        && !rules.iter().any(|r| r["rule"] == hit.id.as_ref())
                    {
                        rules.push(
                            json!({"rule": hit.id.as_ref(), "level": hit.level, "seq": e.seq}),
                        );
                    }
                }
                if screening {
                    if let Some(q) = last_question.take() {
                        screener.push(json!({"question": q, "answer": text}));
                    }
                }
            }
            _ => {}
        }
    }
    // The safety plan as written together (steps 1–6), as the citizen sees it.
    let plan = crate::conversation::SafetyPlan::fold(events.iter());
    Ok(json!({
        "level": meta.level(),
        "handoff_level": meta.handoff_level,
        "safety_plan": plan.items.iter().enumerate().map(|(i, items)| json!({"step": i + 1, "items": items})).collect::<Vec<_>>(),
        "why": rules,
        "screener": screener,
        "selfcheck_score": meta.selfcheck_score(),
        "outcome": meta.outcome,
        "closed_at": meta.closed_at,
    }))
}

/// `GET /api/conversations/{id}/notes`: the notes and the assessment summary. Audited.
async fn list_notes(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = ConversationId::parse(&id).ok_or(ApiError::NotFound)?;
    let (meta, key) = load(&state, id).await?;
    if !may_work_on(&s, &meta) {
        return Err(ApiError::Forbidden);
    }
    record(&state, &s, "read_notes", Some(id), remote).await?;
    let notes = casework::notes(&state.store, &key, id).await?;
    Ok(Json(json!({
        "conversation": row(&meta),
        "notes": notes,
        "assessment": assessment(&state, &meta, &key).await?,
    })))
}

/// `POST /api/conversations/{id}/notes` `{"text"}`: 201 once the note is durable.
async fn add_note(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Path(id): Path<String>,
    Json(body): Json<NewNote>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = ConversationId::parse(&id).ok_or(ApiError::NotFound)?;
    let (meta, key) = load(&state, id).await?;
    if !may_work_on(&s, &meta) {
        return Err(ApiError::Forbidden);
    }
    let text = text_field("text", &body.text)?;
    let note =
        casework::add_note(&state.store, &key, id, &s.username, s.role.as_str(), &text).await?;
    record(&state, &s, "add_note", Some(id), remote).await?;
    Ok((StatusCode::CREATED, Json(json!(note))))
}

// ---------------------------------------------------------------------------------------
// Follow-ups

fn may_see_followup(s: &Session, f: &Followup, held: bool) -> bool {
    s.role == Role::Supervisor
        || held
        || f.assigned_to.is_none()
        || f.assigned_to.as_deref() == Some(&s.username)
}

#[derive(Deserialize)]
struct FollowupQuery {
    /// Only these statuses (comma-separated): `scheduled,due,escalated,...`; `open` means
    /// every status that has not ended.
    status: Option<String>,
    /// Only those assigned to me.
    #[serde(default)]
    mine: bool,
    /// Only this conversation's.
    conversation: Option<String>,
}

fn status_matches(filter: Option<&str>, st: FollowupStatus) -> bool {
    let Some(filter) = filter else { return true };
    filter
        .split(',')
        .map(str::trim)
        .any(|f| (f == "open" && !st.ended()) || serde_json::to_value(st).is_ok_and(|v| v == f))
}

/// The conversations `s` held (for the list filters), from the records.
async fn held_by(state: &AppState, s: &Session) -> Result<Vec<ConversationId>, ApiError> {
    Ok(transcript::all_meta(&state.store, &state.keyring)
        .await?
        .into_iter()
        .filter(|(m, _)| m.counselors.contains(&s.username))
        .map(|(m, _)| m.id)
        .collect())
}

/// `GET /api/followups`: due and escalated first (the most overdue first), then by due
/// date. Audited.
async fn list_followups(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Query(q): Query<FollowupQuery>,
) -> Result<Json<Value>, ApiError> {
    record(&state, &s, "list_followups", None, remote).await?;
    let all = casework::all(&state.store, &state.keyring).await?;
    let held = held_by(&state, &s).await?;
    let only = q.conversation.as_deref().and_then(ConversationId::parse);
    let mut list: Vec<&FollowupView> = all
        .followups
        .iter()
        .filter(|f| {
            let c = f.followup.id.conversation;
            may_see_followup(&s, &f.followup, held.contains(&c))
                && status_matches(q.status.as_deref(), f.status)
                && (!q.mine || f.followup.assigned_to.as_deref() == Some(&s.username))
                && only.is_none_or(|o| o == c)
        })
        .collect();
    let rank = |st: FollowupStatus| match st {
        FollowupStatus::Escalated => 0,
        FollowupStatus::Due => 1,
        FollowupStatus::Scheduled => 2,
        _ => 3,
    };
    list.sort_by_key(|f| (rank(f.status), f.followup.due_at));
    Ok(Json(json!({ "followups": list, "now": now_ms() })))
}

#[derive(Deserialize)]
struct NewFollowup {
    conversation: String,
    kind: FollowupKind,
    due_at: u64,
    #[serde(default)]
    assigned_to: Option<String>,
    consent: Consent,
    #[serde(default)]
    contact: Option<Contact>,
    /// A weekly series of this many sessions (1 to 8), the first at `due_at`.
    #[serde(default)]
    sessions: Option<u8>,
    #[serde(default)]
    note: Option<String>,
}

fn valid_phone(n: &str) -> bool {
    let digits = n.chars().filter(char::is_ascii_digit).count();
    (8..=15).contains(&digits)
        && n.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | ' ' | '+' | '(' | ')'))
}

/// `POST /api/followups`: plans a follow-up (or a weekly series) with the person's consent.
/// 201 with what was stored, once it is durable.
async fn add_followups(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Json(body): Json<NewFollowup>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = ConversationId::parse(&body.conversation).ok_or(ApiError::NotFound)?;
    let (meta, key) = load(&state, id).await?;
    if !may_work_on(&s, &meta) {
        return Err(ApiError::Forbidden);
    }
    let consent = stamped(body.consent, &s)?;
    match &body.contact {
        Some(Contact::Phone { number }) if !valid_phone(number) => {
            return Err(ApiError::BadRequest(
                "contact.number is not a phone number".into(),
            ));
        }
        None | Some(Contact::ChatReturn) if body.kind == FollowupKind::Call => {
            return Err(ApiError::BadRequest(
                "a call back needs a phone number the person gave (contact.kind \"phone\")".into(),
            ));
        }
        _ => {}
    }
    if let Some(who) = &body.assigned_to {
        let staff = auth::list_staff(&state.store).await?;
        if !staff.iter().any(|a| &a.username == who && !a.disabled) {
            return Err(ApiError::BadRequest(format!(
                "no active staff account named {who}"
            )));
        }
    }
    let sessions = body.sessions.unwrap_or(1);
    if !(1..=MAX_SESSIONS).contains(&sessions) {
        return Err(ApiError::BadRequest(format!(
            "sessions is 1 to {MAX_SESSIONS}"
        )));
    }
    sane_time("due_at", body.due_at)?;
    let note = optional_text("note", body.note.as_deref())?;
    let now = now_ms();
    let first = ItemId::next(id);
    let planned: Vec<Followup> = (0..sessions)
        .map(|i| Followup {
            id: if i == 0 { first } else { ItemId::next(id) },
            created_at: now,
            created_by: s.username.clone(),
            kind: body.kind,
            due_at: body.due_at.saturating_add(u64::from(i) * WEEK_MS),
            assigned_to: body.assigned_to.clone(),
            consent: consent.clone(),
            contact: body.contact.clone(),
            series: (sessions > 1).then_some(Series {
                group: first.item,
                index: i + 1,
                of: sessions,
            }),
            level: meta.level(),
            note: note.clone(),
        })
        .collect();
    casework::put_followups(&state.store, &key, &planned).await?;
    record(&state, &s, "add_followup", Some(id), remote).await?;
    let views: Vec<FollowupView> = planned
        .into_iter()
        .map(|f| FollowupView::new(f, Vec::new(), now))
        .collect();
    Ok((StatusCode::CREATED, Json(json!({ "followups": views }))))
}

async fn readable_followup(
    state: &AppState,
    s: &Session,
    id: &str,
) -> Result<(FollowupView, Key), ApiError> {
    let id = ItemId::parse(id).ok_or(ApiError::NotFound)?;
    let (meta, key) = load(state, id.conversation).await?;
    let view = casework::followup(&state.store, &key, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !may_see_followup(s, &view.followup, may_read(s, &meta)) {
        return Err(ApiError::Forbidden);
    }
    Ok((view, key))
}

/// `GET /api/followups/{id}`. Audited.
async fn get_followup(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (view, _) = readable_followup(&state, &s, &id).await?;
    record(
        &state,
        &s,
        "read_followup",
        Some(view.followup.id.conversation),
        remote,
    )
    .await?;
    Ok(Json(json!(view)))
}

#[derive(Deserialize)]
struct NewAttempt {
    outcome: AttemptOutcome,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/followups/{id}/attempts` `{"outcome": "reached"|"no_answer"|"declined"|
/// "cancelled", "note"}`: 201 with the follow-up as it stands, once durable. An attempt
/// that escalates a `high`/`imminent` case to a supervisor is audited as
/// `followup_escalated`.
async fn add_attempt(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Path(id): Path<String>,
    Json(body): Json<NewAttempt>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (before, key) = readable_followup(&state, &s, &id).await?;
    if before.status.ended() {
        return Err(ApiError::Refused {
            status: StatusCode::CONFLICT,
            code: "ended",
            message: "this follow-up has ended".into(),
        });
    }
    let attempt = Attempt {
        at: now_ms(),
        by: s.username.clone(),
        outcome: body.outcome,
        note: optional_text("note", body.note.as_deref())?,
    };
    let id = before.followup.id;
    let after = casework::add_attempt(&state.store, &key, id, attempt)
        .await?
        .ok_or(ApiError::NotFound)?;
    record(
        &state,
        &s,
        "followup_attempt",
        Some(id.conversation),
        remote,
    )
    .await?;
    if after.status == FollowupStatus::Escalated && before.status != FollowupStatus::Escalated {
        tracing::warn!(followup = %id, "follow-up unanswered on a high-risk case: escalated to a supervisor");
        record(
            &state,
            &s,
            "followup_escalated",
            Some(id.conversation),
            remote,
        )
        .await?;
    }
    Ok((StatusCode::CREATED, Json(json!(after))))
}

// ---------------------------------------------------------------------------------------
// Referrals

fn may_see_referral(s: &Session, r: &Referral, held: bool) -> bool {
    s.role == Role::Supervisor || held || r.created_by == s.username
}

#[derive(Deserialize)]
struct ReferralQuery {
    /// Only this status (`sent`, `accepted`, …), or `open` (not declined or lost), or
    /// `check_due`.
    status: Option<String>,
    conversation: Option<String>,
}

/// `GET /api/referrals`: check-due first, then newest. Audited.
async fn list_referrals(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Query(q): Query<ReferralQuery>,
) -> Result<Json<Value>, ApiError> {
    record(&state, &s, "list_referrals", None, remote).await?;
    let all = casework::all(&state.store, &state.keyring).await?;
    let held = held_by(&state, &s).await?;
    let only = q.conversation.as_deref().and_then(ConversationId::parse);
    let mut list: Vec<&ReferralView> = all
        .referrals
        .iter()
        .filter(|v| {
            let c = v.referral.id.conversation;
            may_see_referral(&s, &v.referral, held.contains(&c))
                && only.is_none_or(|o| o == c)
                && match q.status.as_deref() {
                    None => true,
                    Some("open") => {
                        !matches!(v.status, ReferralStatus::Declined | ReferralStatus::Lost)
                    }
                    Some("check_due") => v.check_due,
                    Some(st) => v.status.as_str() == st,
                }
        })
        .collect();
    list.sort_by_key(|v| (!v.check_due, std::cmp::Reverse(v.referral.created_at)));
    Ok(Json(json!({ "referrals": list, "now": now_ms() })))
}

#[derive(Deserialize)]
struct NewReferral {
    conversation: String,
    to: ReferralTo,
    consent: Consent,
    #[serde(default)]
    shared: Shared,
    #[serde(default)]
    check_at: Option<u64>,
}

/// `POST /api/referrals`: a referral with the person's consent and only what they agreed
/// to share; its first status is `sent`. 201 once durable.
async fn add_referral(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Json(body): Json<NewReferral>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = ConversationId::parse(&body.conversation).ok_or(ApiError::NotFound)?;
    let (meta, key) = load(&state, id).await?;
    if !may_work_on(&s, &meta) {
        return Err(ApiError::Forbidden);
    }
    let consent = stamped(body.consent, &s)?;
    let mut to = body.to;
    to.name = text_field("to.name", &to.name)?;
    if let Some(r) = &to.resource {
        if !state.content.resources().iter().any(|x| &x.id == r) {
            return Err(ApiError::BadRequest(format!("no resource with id {r}")));
        }
    }
    let shared = Shared {
        summary: optional_text("shared.summary", body.shared.summary.as_deref())?,
        contact: match optional_text("shared.contact", body.shared.contact.as_deref())? {
            Some(c) if !valid_phone(&c) => {
                return Err(ApiError::BadRequest(
                    "shared.contact is not a phone number".into(),
                ));
            }
            c => c,
        },
        district: optional_text("shared.district", body.shared.district.as_deref())?,
    };
    if let Some(t) = body.check_at {
        sane_time("check_at", t)?;
    }
    let r = Referral {
        id: ItemId::next(id),
        created_at: now_ms(),
        created_by: s.username.clone(),
        to,
        consent,
        shared,
        check_at: body.check_at,
    };
    casework::put_referral(&state.store, &key, &r).await?;
    record(&state, &s, "add_referral", Some(id), remote).await?;
    let view = ReferralView::new(
        r.clone(),
        vec![StatusChange {
            at: r.created_at,
            by: r.created_by.clone(),
            status: ReferralStatus::Sent,
            note: None,
        }],
        now_ms(),
    );
    Ok((StatusCode::CREATED, Json(json!(view))))
}

async fn readable_referral(
    state: &AppState,
    s: &Session,
    id: &str,
) -> Result<(ReferralView, Key), ApiError> {
    let id = ItemId::parse(id).ok_or(ApiError::NotFound)?;
    let (meta, key) = load(state, id.conversation).await?;
    let view = casework::referral(&state.store, &key, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !may_see_referral(s, &view.referral, may_read(s, &meta)) {
        return Err(ApiError::Forbidden);
    }
    Ok((view, key))
}

/// `GET /api/referrals/{id}`: the referral as JSON (also its export). Audited.
async fn get_referral(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (view, _) = readable_referral(&state, &s, &id).await?;
    record(
        &state,
        &s,
        "read_referral",
        Some(view.referral.id.conversation),
        remote,
    )
    .await?;
    Ok(Json(json!(view)))
}

#[derive(Deserialize)]
struct NewStatus {
    status: ReferralStatus,
    #[serde(default)]
    note: Option<String>,
}

/// `PATCH /api/referrals/{id}` `{"status", "note"}`: 200 with the referral once durable;
/// 409 `bad_transition` when the current status does not allow it.
async fn change_referral(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Path(id): Path<String>,
    Json(body): Json<NewStatus>,
) -> Result<Json<Value>, ApiError> {
    let (view, key) = readable_referral(&state, &s, &id).await?;
    let change = StatusChange {
        at: now_ms(),
        by: s.username.clone(),
        status: body.status,
        note: optional_text("note", body.note.as_deref())?,
    };
    let id = view.referral.id;
    let after = casework::change_status(&state.store, &key, id, change)
        .await
        .map_err(|e| match e {
            casework::ChangeError::NotFound => ApiError::NotFound,
            e @ casework::ChangeError::Transition { .. } => ApiError::Refused {
                status: StatusCode::CONFLICT,
                code: "bad_transition",
                message: e.to_string(),
            },
            casework::ChangeError::Store(e) => e.into(),
        })?;
    record(&state, &s, "referral_status", Some(id.conversation), remote).await?;
    Ok(Json(json!(after)))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `GET /api/referrals/{id}/form`: the referral as a plain printable page (the hand-over
/// itself: no outside system is reachable). Audited.
async fn referral_form(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (v, _) = readable_referral(&state, &s, &id).await?;
    record(
        &state,
        &s,
        "referral_form",
        Some(v.referral.id.conversation),
        remote,
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        form_html(&v),
    )
        .into_response())
}

fn form_html(v: &ReferralView) -> String {
    let r = &v.referral;
    let date = |ms: u64| Period::Day.label(ms);
    let or_dash = |o: &Option<String>| o.as_deref().map_or("—".to_owned(), esc);
    let kind = serde_json::to_value(r.to.kind)
        .ok()
        .and_then(|k| k.as_str().map(str::to_owned))
        .unwrap_or_default();
    let history: String = v
        .history
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                date(c.at),
                c.status.as_str(),
                esc(&c.by)
            )
        })
        .collect();
    format!(
        r#"<!doctype html><html lang="ko"><head><meta charset="utf-8"><title>의뢰서 {id}</title>
<style>body{{font-family:sans-serif;max-width:42rem;margin:2rem auto;line-height:1.5}}th{{text-align:left;padding-right:1rem;vertical-align:top}}td,th{{border-bottom:1px solid #ccc;padding:.3rem}}table{{border-collapse:collapse;width:100%}}</style></head>
<body><h1>연계 의뢰서 (Referral)</h1>
<p>이음(ieum) 외로움·위기 상담 채팅에서 본인의 동의를 받아 연계합니다. 본인이 공유에 동의한 내용만 적었습니다.</p>
<table>
<tr><th>의뢰 번호</th><td>{id}</td></tr>
<tr><th>의뢰일</th><td>{created}</td></tr>
<tr><th>의뢰 기관</th><td>{to} ({kind})</td></tr>
<tr><th>담당 상담사</th><td>{by}</td></tr>
<tr><th>동의</th><td>예 — {consent_at}, 기록: {consent_by}</td></tr>
<tr><th>거주 구</th><td>{district}</td></tr>
<tr><th>연락처</th><td>{contact}</td></tr>
<tr><th>요약</th><td>{summary}</td></tr>
<tr><th>연결 확인일</th><td>{check}</td></tr>
<tr><th>현재 상태</th><td>{status}</td></tr>
</table>
<h2>진행 기록</h2><table><tr><th>날짜</th><th>상태</th><th>입력</th></tr>{history}</table>
<p>위기 상황이면 109(자살예방상담, 24시간) 또는 119로 바로 연락해 주세요.</p>
</body></html>"#,
        id = r.id,
        created = date(r.created_at),
        to = esc(&r.to.name),
        kind = esc(&kind),
        by = esc(&r.created_by),
        consent_at = date(r.consent.recorded_at),
        consent_by = esc(&r.consent.recorded_by),
        district = or_dash(&r.shared.district),
        contact = or_dash(&r.shared.contact),
        summary = or_dash(&r.shared.summary),
        check = r.check_at.map_or("—".to_owned(), date),
        status = v.status.as_str(),
    )
}

// ---------------------------------------------------------------------------------------
// Statistics

#[derive(Deserialize)]
struct StatsQuery {
    /// Unix ms or a Seoul date `YYYY-MM-DD` (inclusive); default 30 days before `to`.
    from: Option<String>,
    /// Unix ms or a Seoul date (exclusive); default now.
    to: Option<String>,
    /// `day` (default), `week` or `month`.
    period: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

fn when(s: &str, what: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .ok()
        .or_else(|| stats::seoul_midnight(s))
        .map(|t| t.min(LATEST_MS + 1))
        .ok_or_else(|| ApiError::BadRequest(format!("{what} is Unix ms or YYYY-MM-DD")))
}

/// `GET /api/stats?from=…&to=…&period=day|week|month&format=json|csv` (supervisors): the
/// counts, from the records only (no message text is opened); counts under 5 shown as
/// `"<5"`. Audited.
async fn get_stats(
    State(state): State<AppState>,
    ConnectInfo(remote): Remote,
    Staff(s): Staff,
    Query(q): Query<StatsQuery>,
) -> Result<Response, ApiError> {
    supervisor(&s)?;
    let to = match q.to.as_deref() {
        Some(t) => when(t, "to")?,
        None => now_ms() + 1,
    };
    let from = match q.from.as_deref() {
        Some(f) => when(f, "from")?,
        None => to.saturating_sub(30 * 24 * 3600 * 1000),
    };
    let period = match q.period.as_deref() {
        None => Period::Day,
        Some(p) => Period::parse(p)
            .ok_or_else(|| ApiError::BadRequest("period is day, week or month".into()))?,
    };
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::BadRequest("format is json or csv".into())),
    };
    record(&state, &s, "read_stats", None, remote).await?;
    let metas: Vec<ConversationMeta> = transcript::all_meta(&state.store, &state.keyring)
        .await?
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let all = casework::all(&state.store, &state.keyring).await?;
    let targets = Level::ALL.map(|l| state.engine.policy(l).wait_target_secs);
    let report = stats::report(
        &metas,
        &all.followups,
        &all.referrals,
        targets,
        from,
        to,
        period,
    );
    if csv {
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"ieum-stats-{}.csv\"",
                        period_name(period)
                    ),
                ),
            ],
            report.to_csv(),
        )
            .into_response())
    } else {
        Ok(Json(report.to_json()).into_response())
    }
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}
