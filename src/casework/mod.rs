//! Casework: what outlives a chat, with the person's consent — case notes, follow-ups and
//! referrals.
//!
//! # Why it is stored this way
//!
//! * **Sealed with the conversation's key.** Every casework record is sealed with the key of
//!   the conversation it belongs to, so it is mental-health data under the same rules as the
//!   transcript: unreadable without the master key, and destroyed with the conversation's key
//!   at retention (crypto-shredding; [`crate::retention`] also removes the records). A
//!   follow-up's contact (a phone number) is dropped from its record as soon as the
//!   follow-up ends.
//! * **Keyed by conversation first** (`conversation | kind | item | [at | nonce]`), so one
//!   prefix scan finds everything of a conversation (retention, the case view), and an
//!   item's id names its conversation (no index to keep true).
//! * **Append-only changes.** A follow-up attempt and a referral's status change are new
//!   records under their item, never a rewrite: two staff members recording at once can
//!   never lose each other's change, each write is one durable batch acknowledged after its
//!   flush (a `kill -9` loses nothing acknowledged), and the history is kept. What an item
//!   *is* now (due, escalated, ended; sent, accepted…) is computed from its records
//!   ([`FollowupView`], [`ReferralView`]).
//!
//! The HTTP API over this module is `crate::http::casework`; the statistics are
//! [`stats`].

pub mod stats;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::crypto::Key;
use crate::ids::{ConversationId, now_ms};
use crate::store::{Store, StoreError, Tree, Write};
use crate::transcript::Keyring;
use crate::triage::Level;

/// A case note.
pub const NOTE: u8 = b'N';
/// A follow-up (its plan).
pub const FOLLOWUP: u8 = b'F';
/// One attempt on a follow-up.
pub const ATTEMPT: u8 = b'A';
/// A referral (what was sent).
pub const REFERRAL: u8 = b'R';
/// One status change of a referral.
pub const STATUS: u8 = b'S';

/// How many unanswered attempts on a `high` or `imminent` case before it goes to a
/// supervisor.
pub const ESCALATE_AFTER: usize = 2;
/// How many unanswered attempts on any other case before the follow-up is given up.
pub const GIVE_UP_AFTER: usize = 3;
/// The most sessions a weekly series may plan (as 동행상담: up to 8).
pub const MAX_SESSIONS: u8 = 8;
/// A week, in ms.
pub const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;
/// The longest note, summary or free text accepted (characters).
pub const MAX_TEXT: usize = 4000;

/// An item's id: its conversation and 8 bytes of its own (48 hex digits). It names its
/// conversation, so the record is found with one read and checked with its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemId {
    /// The conversation it belongs to.
    pub conversation: ConversationId,
    /// The item's own random part.
    pub item: [u8; 8],
}

impl ItemId {
    /// A fresh id in `conversation`: the time in nanoseconds, strictly increasing within the
    /// process, so items sort in the order they were made (two notes written in the same
    /// millisecond still come back in order). Not a secret: every read is checked and
    /// audited.
    pub fn next(conversation: ConversationId) -> ItemId {
        use std::sync::atomic::{AtomicU64, Ordering};
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut prev = LAST.load(Ordering::Relaxed);
        let next = loop {
            let next = now.max(prev + 1);
            match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(p) => prev = p,
            }
        };
        ItemId {
            conversation,
            item: next.to_be_bytes(),
        }
    }

    /// Parses the 48-hex-digit form.
    pub fn parse(s: &str) -> Option<ItemId> {
        let b = crate::hex::decode_array::<24>(s)?;
        Some(ItemId {
            conversation: ConversationId::from_bytes(&b[..16])?,
            item: b[16..].try_into().ok()?,
        })
    }

    fn key(&self, kind: u8) -> Vec<u8> {
        let mut k = Vec::with_capacity(16 + 1 + 8 + 12);
        k.extend_from_slice(self.conversation.as_bytes());
        k.push(kind);
        k.extend_from_slice(&self.item);
        k
    }

    /// The key of a change (attempt, status) under this item, at `at`, with a nonce so that
    /// two changes in one millisecond never overwrite each other.
    fn change_key(&self, kind: u8, at: u64) -> Vec<u8> {
        let mut k = self.key(kind);
        k.extend_from_slice(&at.to_be_bytes());
        k.extend_from_slice(&rand::random::<[u8; 4]>());
        k
    }
}

impl std::fmt::Display for ItemId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.conversation)?;
        for b in self.item {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for ItemId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ItemId::parse(&s).ok_or_else(|| serde::de::Error::custom("not an item id"))
    }
}

fn aad(store_key: &[u8]) -> Vec<u8> {
    [b"casework/".as_slice(), store_key].concat()
}

fn seal<T: Serialize>(key: &Key, store_key: &[u8], value: &T) -> Vec<u8> {
    let plain = serde_json::to_vec(value).expect("casework records serialize");
    key.seal(&plain, &aad(store_key))
}

fn open<T: DeserializeOwned>(key: &Key, store_key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    let plain = key
        .open(value, &aad(store_key))
        .map_err(|e| StoreError::Corrupt(format!("casework record: {e}")))?;
    serde_json::from_slice(&plain).map_err(|e| StoreError::Corrupt(format!("casework record: {e}")))
}

// ---------------------------------------------------------------------------------------
// Notes

/// A private case note: counselors and supervisors only, never the citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Its id.
    pub id: ItemId,
    /// Written, Unix ms.
    pub at: u64,
    /// Who wrote it.
    pub author: String,
    /// Their role.
    pub role: String,
    /// The note.
    pub text: String,
}

/// Stores a new note; resolves once it is durable.
///
/// # Errors
/// A store error: the note is not saved.
pub async fn add_note(
    store: &Store,
    key: &Key,
    conversation: ConversationId,
    author: &str,
    role: &str,
    text: &str,
) -> Result<Note, StoreError> {
    let note = Note {
        id: ItemId::next(conversation),
        at: now_ms(),
        author: author.to_owned(),
        role: role.to_owned(),
        text: text.to_owned(),
    };
    let k = note.id.key(NOTE);
    let v = seal(key, &k, &note);
    store.write(vec![Write::put(Tree::Casework, k, v)]).await?;
    Ok(note)
}

/// Every note of a conversation, oldest first.
///
/// # Errors
/// A store error, or `Corrupt` when a record does not open.
pub async fn notes(
    store: &Store,
    key: &Key,
    conversation: ConversationId,
) -> Result<Vec<Note>, StoreError> {
    let mut prefix = conversation.as_bytes().to_vec();
    prefix.push(NOTE);
    let mut out: Vec<Note> = store
        .scan_prefix(Tree::Casework, &prefix)
        .await?
        .iter()
        .map(|(k, v)| open(key, k, v))
        .collect::<Result<_, _>>()?;
    out.sort_by_key(|n| (n.at, n.id.item));
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Follow-ups

/// What kind of follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowupKind {
    /// A call back on a date and time, to the contact the person gave.
    Call,
    /// A check-in: when the person comes back to the chat, or by a call if they gave a
    /// contact.
    CheckIn,
}

/// How the person can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Contact {
    /// A phone number.
    Phone {
        /// As given (digits, spaces, dashes, `+`).
        number: String,
    },
    /// No contact kept: the person comes back to this chat with their saved conversation
    /// (the widget's resume token on their device).
    ChatReturn,
}

/// The person's consent, as recorded by staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// The person agreed. Nothing outlives the chat without it.
    pub given: bool,
    /// How they said it (their words, or "in chat, seq 14"); optional.
    #[serde(default)]
    pub words: Option<String>,
    /// When it was recorded, Unix ms (set by the server).
    #[serde(default)]
    pub recorded_at: u64,
    /// Who recorded it (set by the server).
    #[serde(default)]
    pub recorded_by: String,
}

/// One session of a weekly series (like 동행상담: up to 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    /// The series' id (the first follow-up's item part, hex).
    pub group: [u8; 8],
    /// 1-based.
    pub index: u8,
    /// How many in all.
    pub of: u8,
}

/// A follow-up as planned. Its attempts are separate records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Followup {
    /// Its id.
    pub id: ItemId,
    /// Planned, Unix ms.
    pub created_at: u64,
    /// Who planned it.
    pub created_by: String,
    /// Call or check-in.
    pub kind: FollowupKind,
    /// When it is due, Unix ms.
    pub due_at: u64,
    /// The counselor it is assigned to; `None` is the team.
    pub assigned_to: Option<String>,
    /// The person's consent.
    pub consent: Consent,
    /// How to reach them; removed once the follow-up ends.
    pub contact: Option<Contact>,
    /// Part of a weekly series.
    pub series: Option<Series>,
    /// The conversation's level when it was planned (failed attempts on `high` and above
    /// go to a supervisor).
    pub level: Level,
    /// What to follow up on (private, like a note).
    #[serde(default)]
    pub note: Option<String>,
}

/// What happened on an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Spoke with the person: the follow-up is done.
    Reached,
    /// No answer.
    NoAnswer,
    /// The person declined further contact: the follow-up ends and the contact is dropped.
    Declined,
    /// Staff called it off (a duplicate, the person came back in chat…).
    Cancelled,
}

/// One attempt on a follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When, Unix ms.
    pub at: u64,
    /// Who.
    pub by: String,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// A private note.
    #[serde(default)]
    pub note: Option<String>,
}

/// Where a follow-up stands, computed from its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowupStatus {
    /// Not yet due.
    Scheduled,
    /// Due or overdue.
    Due,
    /// Unanswered too often on a `high`/`imminent` case: a supervisor's now.
    Escalated,
    /// The person was reached.
    Done,
    /// The person declined.
    Declined,
    /// Given up after unanswered attempts.
    Failed,
    /// Called off.
    Cancelled,
}

impl FollowupStatus {
    /// Whether it has ended (no more attempts expected; the contact is dropped).
    pub fn ended(self) -> bool {
        matches!(
            self,
            FollowupStatus::Done
                | FollowupStatus::Declined
                | FollowupStatus::Failed
                | FollowupStatus::Cancelled
        )
    }
}

/// A follow-up with its attempts and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowupView {
    /// The plan.
    #[serde(flatten)]
    pub followup: Followup,
    /// Its attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// Where it stands now.
    pub status: FollowupStatus,
}

impl FollowupView {
    /// Computes the status from the plan and the attempts, at `now`.
    pub fn new(followup: Followup, mut attempts: Vec<Attempt>, now: u64) -> FollowupView {
        attempts.sort_by_key(|a| a.at);
        let status = followup_status(&followup, &attempts, now);
        FollowupView {
            followup,
            attempts,
            status,
        }
    }
}

/// Where a follow-up stands: the first ending attempt ends it; unanswered attempts
/// escalate a `high`/`imminent` case after [`ESCALATE_AFTER`] and give up any other after
/// [`GIVE_UP_AFTER`].
pub fn followup_status(f: &Followup, attempts: &[Attempt], now: u64) -> FollowupStatus {
    let mut unanswered = 0;
    for a in attempts {
        match a.outcome {
            AttemptOutcome::Reached => return FollowupStatus::Done,
            AttemptOutcome::Declined => return FollowupStatus::Declined,
            AttemptOutcome::Cancelled => return FollowupStatus::Cancelled,
            AttemptOutcome::NoAnswer => unanswered += 1,
        }
    }
    if f.level >= Level::High {
        if unanswered >= ESCALATE_AFTER {
            return FollowupStatus::Escalated;
        }
    } else if unanswered >= GIVE_UP_AFTER {
        return FollowupStatus::Failed;
    }
    if f.due_at <= now {
        FollowupStatus::Due
    } else {
        FollowupStatus::Scheduled
    }
}

/// Stores new follow-ups (one, or a series) in one durable batch.
///
/// # Errors
/// A store error: nothing is saved.
pub async fn put_followups(
    store: &Store,
    key: &Key,
    followups: &[Followup],
) -> Result<(), StoreError> {
    let batch = followups
        .iter()
        .map(|f| {
            let k = f.id.key(FOLLOWUP);
            let v = seal(key, &k, f);
            Write::put(Tree::Casework, k, v)
        })
        .collect();
    store.write(batch).await
}

/// Records an attempt; when it ends the follow-up, the contact is dropped from the plan in
/// the same batch. Returns the follow-up as it stands after.
///
/// # Errors
/// `Ok(None)` if there is no such follow-up; a store error if the attempt is not saved.
pub async fn add_attempt(
    store: &Store,
    key: &Key,
    id: ItemId,
    attempt: Attempt,
) -> Result<Option<FollowupView>, StoreError> {
    let Some(mut view) = followup(store, key, id).await? else {
        return Ok(None);
    };
    let k = id.change_key(ATTEMPT, attempt.at);
    let mut batch = vec![Write::put(
        Tree::Casework,
        k.clone(),
        seal(key, &k, &attempt),
    )];
    view.attempts.push(attempt);
    let now = now_ms();
    let after = FollowupView::new(view.followup.clone(), view.attempts, now);
    if after.status.ended() && after.followup.contact.is_some() {
        let mut plan = after.followup.clone();
        plan.contact = None;
        let pk = id.key(FOLLOWUP);
        batch.push(Write::put(
            Tree::Casework,
            pk.clone(),
            seal(key, &pk, &plan),
        ));
    }
    store.write(batch).await?;
    let mut after = after;
    if after.status.ended() {
        after.followup.contact = None;
    }
    Ok(Some(after))
}

/// One follow-up with its attempts.
///
/// # Errors
/// A store error, or `Corrupt`.
pub async fn followup(
    store: &Store,
    key: &Key,
    id: ItemId,
) -> Result<Option<FollowupView>, StoreError> {
    let Some(v) = store.get(Tree::Casework, &id.key(FOLLOWUP)).await? else {
        return Ok(None);
    };
    let plan: Followup = open(key, &id.key(FOLLOWUP), &v)?;
    let attempts = store
        .scan_prefix(Tree::Casework, &id.key(ATTEMPT))
        .await?
        .iter()
        .map(|(k, v)| open(key, k, v))
        .collect::<Result<Vec<Attempt>, _>>()?;
    Ok(Some(FollowupView::new(plan, attempts, now_ms())))
}

// ---------------------------------------------------------------------------------------
// Referrals

/// Where a person is referred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralKind {
    /// The district's 전담기구 (a 종합사회복지관).
    DistrictCentre,
    /// A 서울연결처방 program.
    Program,
    /// Job counselling (1350, 고용24).
    Job,
    /// Mental-health services (정신건강복지센터, 1577-0199).
    MentalHealth,
    /// Legal aid (132).
    Legal,
    /// Welfare counselling (129, 120).
    Welfare,
    /// Anything else.
    Other,
}

/// What the referral is to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferralTo {
    /// The kind of service.
    pub kind: ReferralKind,
    /// Its name, as staff wrote it ("마포구 ○○종합사회복지관").
    pub name: String,
    /// The resource id in `intents/resources.toml`, when it is one.
    #[serde(default)]
    pub resource: Option<String>,
}

/// What the person agreed to share with the service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shared {
    /// A summary of their situation (staff's words, agreed with the person).
    #[serde(default)]
    pub summary: Option<String>,
    /// A contact (a phone number).
    #[serde(default)]
    pub contact: Option<String>,
    /// Their district.
    #[serde(default)]
    pub district: Option<String>,
}

/// A referral as sent. Its status changes are separate records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// Its id.
    pub id: ItemId,
    /// Made, Unix ms.
    pub created_at: u64,
    /// Who made it.
    pub created_by: String,
    /// Where to.
    pub to: ReferralTo,
    /// The person's consent to the referral and to what is shared.
    pub consent: Consent,
    /// What is shared, and nothing else.
    pub shared: Shared,
    /// When to check that the person is still connected, Unix ms.
    pub check_at: Option<u64>,
}

/// A referral's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralStatus {
    /// Handed over (the form was given to the service).
    Sent,
    /// The service took it.
    Accepted,
    /// The service and the person have spoken.
    FirstContact,
    /// Still connected at the check date.
    Connected,
    /// The person or the service declined.
    Declined,
    /// Lost: no contact, or the link broke.
    Lost,
}

impl ReferralStatus {
    /// Every status, in order.
    pub const ALL: [ReferralStatus; 6] = [
        ReferralStatus::Sent,
        ReferralStatus::Accepted,
        ReferralStatus::FirstContact,
        ReferralStatus::Connected,
        ReferralStatus::Declined,
        ReferralStatus::Lost,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferralStatus::Sent => "sent",
            ReferralStatus::Accepted => "accepted",
            ReferralStatus::FirstContact => "first_contact",
            ReferralStatus::Connected => "connected",
            ReferralStatus::Declined => "declined",
            ReferralStatus::Lost => "lost",
        }
    }

    /// Whether a referral may move from `self` to `to`: forward along sent → accepted →
    /// first contact → connected (a step may be skipped when staff learn of it late), a
    /// connected referral may be confirmed again at a later check, and any open one may be
    /// declined or lost. Declined and lost are final.
    pub fn may_move_to(self, to: ReferralStatus) -> bool {
        use ReferralStatus::*;
        match (self, to) {
            (Declined | Lost, _) => false,
            (_, Sent) => false,
            (Connected, Connected) => true,
            (_, Declined | Lost) => true,
            (from, to) => to > from,
        }
    }
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// When, Unix ms.
    pub at: u64,
    /// Who entered it.
    pub by: String,
    /// The new status.
    pub status: ReferralStatus,
    /// A private note.
    #[serde(default)]
    pub note: Option<String>,
}

/// A referral with its history and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReferralView {
    /// As sent.
    #[serde(flatten)]
    pub referral: Referral,
    /// Its status changes, oldest first (the first is `sent`).
    pub history: Vec<StatusChange>,
    /// The latest status.
    pub status: ReferralStatus,
    /// The check date passed and it is not yet confirmed connected, declined or lost.
    pub check_due: bool,
}

impl ReferralView {
    /// Computes where it stands, at `now`.
    pub fn new(referral: Referral, mut history: Vec<StatusChange>, now: u64) -> ReferralView {
        history.sort_by_key(|c| c.at);
        let status = history.last().map_or(ReferralStatus::Sent, |c| c.status);
        let confirmed_after_check = referral.check_at.is_some_and(|t| {
            history
                .iter()
                .any(|c| c.status == ReferralStatus::Connected && c.at >= t)
        });
        let check_due = referral.check_at.is_some_and(|t| t <= now)
            && !matches!(status, ReferralStatus::Declined | ReferralStatus::Lost)
            && !confirmed_after_check;
        ReferralView {
            referral,
            history,
            status,
            check_due,
        }
    }
}

/// Stores a new referral with its first status, `sent`, in one durable batch.
///
/// # Errors
/// A store error: nothing is saved.
pub async fn put_referral(store: &Store, key: &Key, r: &Referral) -> Result<(), StoreError> {
    let k = r.id.key(REFERRAL);
    let first = StatusChange {
        at: r.created_at,
        by: r.created_by.clone(),
        status: ReferralStatus::Sent,
        note: None,
    };
    let sk = r.id.change_key(STATUS, first.at);
    store
        .write(vec![
            Write::put(Tree::Casework, k.clone(), seal(key, &k, r)),
            Write::put(Tree::Casework, sk.clone(), seal(key, &sk, &first)),
        ])
        .await
}

/// One referral with its history.
///
/// # Errors
/// A store error, or `Corrupt`.
pub async fn referral(
    store: &Store,
    key: &Key,
    id: ItemId,
) -> Result<Option<ReferralView>, StoreError> {
    let Some(v) = store.get(Tree::Casework, &id.key(REFERRAL)).await? else {
        return Ok(None);
    };
    let r: Referral = open(key, &id.key(REFERRAL), &v)?;
    let history = store
        .scan_prefix(Tree::Casework, &id.key(STATUS))
        .await?
        .iter()
        .map(|(k, v)| open(key, k, v))
        .collect::<Result<Vec<StatusChange>, _>>()?;
    Ok(Some(ReferralView::new(r, history, now_ms())))
}

/// Why a status change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No such referral.
    #[error("no such referral")]
    NotFound,
    /// Not a move this status allows.
    #[error("a referral that is {from} cannot become {to}")]
    Transition {
        /// From.
        from: &'static str,
        /// To.
        to: &'static str,
    },
    /// The store did not take it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records a status change if the current status allows it.
///
/// # Errors
/// [`ChangeError`].
pub async fn change_status(
    store: &Store,
    key: &Key,
    id: ItemId,
    change: StatusChange,
) -> Result<ReferralView, ChangeError> {
    let view = referral(store, key, id)
        .await?
        .ok_or(ChangeError::NotFound)?;
    if !view.status.may_move_to(change.status) {
        return Err(ChangeError::Transition {
            from: view.status.as_str(),
            to: change.status.as_str(),
        });
    }
    // History is read back in key order (time, then random bytes): a change made in the
    // same millisecond as the last one must still sort after it, or the referral's status
    // would be read as whichever of the two drew the larger random bytes.
    let mut change = change;
    if let Some(last) = view.history.last() {
        change.at = change.at.max(last.at + 1);
    }
    let sk = id.change_key(STATUS, change.at);
    store
        .write(vec![Write::put(
            Tree::Casework,
            sk.clone(),
            seal(key, &sk, &change),
        )])
        .await?;
    let mut history = view.history;
    history.push(change);
    Ok(ReferralView::new(view.referral, history, now_ms()))
}

// ---------------------------------------------------------------------------------------
// Everything at once (lists, statistics)

/// Every follow-up and referral in the store, with the conversation each belongs to.
/// Conversations whose key was destroyed are skipped (their casework is gone).
#[derive(Debug, Default)]
pub struct All {
    /// Every follow-up.
    pub followups: Vec<FollowupView>,
    /// Every referral.
    pub referrals: Vec<ReferralView>,
}

/// Reads every follow-up and referral (notes are not opened).
///
/// # Errors
/// A store error, or `Corrupt`.
pub async fn all(store: &Store, keyring: &Keyring) -> Result<All, StoreError> {
    use std::collections::HashMap;
    let now = now_ms();
    let rows = store.scan_prefix(Tree::Casework, &[]).await?;
    let mut keys: HashMap<ConversationId, Option<Key>> = HashMap::new();
    let mut plans: HashMap<ItemId, Followup> = HashMap::new();
    let mut attempts: HashMap<ItemId, Vec<Attempt>> = HashMap::new();
    let mut referrals: HashMap<ItemId, Referral> = HashMap::new();
    let mut changes: HashMap<ItemId, Vec<StatusChange>> = HashMap::new();
    for (k, v) in rows {
        if k.len() < 16 + 1 + 8 {
            continue;
        }
        let kind = k[16];
        if !matches!(kind, FOLLOWUP | ATTEMPT | REFERRAL | STATUS) {
            continue;
        }
        let Some(conversation) = ConversationId::from_bytes(&k[..16]) else {
            continue;
        };
        let id = ItemId {
            conversation,
            item: k[17..25].try_into().expect("8 bytes"),
        };
        if let std::collections::hash_map::Entry::Vacant(e) = keys.entry(conversation) {
            e.insert(keyring.key(conversation).await?);
        }
        let Some(key) = keys.get(&conversation).and_then(Option::as_ref) else {
            continue;
        };
        match kind {
            FOLLOWUP => {
                plans.insert(id, open(key, &k, &v)?);
            }
            ATTEMPT => attempts.entry(id).or_default().push(open(key, &k, &v)?),
            REFERRAL => {
                referrals.insert(id, open(key, &k, &v)?);
            }
            _ => changes.entry(id).or_default().push(open(key, &k, &v)?),
        }
    }
    let mut all = All::default();
    for (id, plan) in plans {
        let a = attempts.remove(&id).unwrap_or_default();
        all.followups.push(FollowupView::new(plan, a, now));
    }
    for (id, r) in referrals {
        let h = changes.remove(&id).unwrap_or_default();
        all.referrals.push(ReferralView::new(r, h, now));
    }
    all.followups.sort_by_key(|f| f.followup.due_at);
    all.referrals.sort_by_key(|r| r.referral.created_at);
    Ok(all)
}

/// The keys of every casework record of a conversation (retention removes them).
///
/// # Errors
/// A store error.
pub async fn keys_of(
    store: &Store,
    conversation: ConversationId,
) -> Result<Vec<Vec<u8>>, StoreError> {
    Ok(store
        .scan_prefix(Tree::Casework, conversation.as_bytes())
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

#[cfg(test)]
mod tests;
