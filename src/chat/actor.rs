//! The conversation actor: one task per live conversation.
//!
//! Every change goes the same way: run the pure state machine, turn its actions into
//! transcript events (bot words come from the [`Responder`]), store the events (as one
//! record headed by the conversation's new progress) and, if more than the progress changed,
//! the new meta record in **one** batch and wait for the flush, and only then send anything — the
//! `ack` first, then the frames, in `seq` order — and touch the queue. If the store refuses
//! the write, nothing changes and the citizen gets `not_saved`: no ack for words that are not
//! on disk.
//!
//! Outbound channels are bounded. A citizen whose channel is full is detached (their socket
//! closes and the widget resumes, replaying from the store), so one slow phone never holds
//! up a conversation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::frames::PlanStepFrame;
use super::frames::{CounselorFrame, ServerFrame};
use super::{Lang, Reply, Responder};
use crate::audit::{AuditEntry, AuditLog};
use crate::conversation::plan::{CitizenWords, Context, Effect, plan};
use crate::conversation::{
    Answer, Choice, ConversationMeta, Event, EventBody, IdlePolicy, KEEP_TALKING, KEEP_WAITING,
    Position, SafetyPlan, ScreenFlow, State, StoredEvent, Summary, TriageNote,
};
use crate::crypto::Key;
use crate::ids::{ConversationId, Token, hashes_equal, now_ms};
use crate::queue::{ClaimError, QueueHandle, TransferRefused};
use crate::store::{Store, StoreError, Write};
use crate::transcript;
use crate::triage::{Action as TriageAction, Level, TriageEngine};

/// What every conversation actor needs. Cheap handles only.
pub struct ChatDeps {
    /// The triage engine.
    pub engine: Arc<TriageEngine>,
    /// The bot's words.
    pub responder: Arc<dyn Responder>,
    /// The screener, as the file gives it.
    pub flow: ScreenFlow,
    /// The store.
    pub store: Store,
    /// The counselor queue.
    pub queue: QueueHandle,
    /// Idle limits per state.
    pub idle: IdlePolicy,
    /// Counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Conversation keys (encryption at rest).
    pub keyring: transcript::Keyring,
    /// The audit log (a claim shows the whole transcript: audited like a read).
    pub audit: AuditLog,
}

/// Why a conversation command failed. `code()` is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The store refused the write: nothing was saved, nothing acknowledged.
    #[error("your message could not be saved; please send it again")]
    NotSaved,
    /// Wrong resume token.
    #[error("this conversation cannot be resumed with that token")]
    BadToken,
    /// A counselor acted on a conversation that is not theirs.
    #[error("this conversation is not assigned to you")]
    NotYours,
    /// Not waiting in the queue.
    #[error("this conversation is not waiting for a counselor")]
    NotWaiting,
    /// The conversation has ended.
    #[error("this conversation has ended")]
    Ended,
    /// The actor is gone.
    #[error("this conversation is no longer active")]
    Gone,
    /// Passing to a colleague who is not online (or does not exist).
    #[error("that colleague is not online; choose one from the list")]
    TransferNotOnline,
    /// Passing to a colleague who holds as many conversations as allowed.
    #[error("that colleague already holds as many conversations as allowed")]
    TransferAtCapacity,
    /// Passing to oneself.
    #[error("you already hold this conversation")]
    TransferToSelf,
    /// The counselor holds as many conversations as allowed.
    #[error("you already hold as many conversations as allowed")]
    AtCapacity,
    /// A colleague passed it to someone else, who has not taken it yet.
    #[error("this conversation was passed to a colleague, who is taking it over")]
    Reserved,
    /// A rating when none is asked for (before a counselor closed the conversation, or a
    /// second one).
    #[error("a rating (1 to 5) is asked for once, after a counselor closes the conversation")]
    RatingNotOpen,
    /// A whisper to a conversation nobody holds.
    #[error("no counselor holds this conversation; take it over to write to the person")]
    NotHeld,
}

/// How long a held handoff waits before the next try to store it.
const HELD_RETRY: Duration = Duration::from_secs(1);

impl ChatError {
    /// What the citizen reads, in their language. `not_saved` carries the crisis lines, as
    /// `rate_limited` and `server_busy` do: a person may be writing because they are in
    /// danger.
    pub fn citizen_message(self, lang: Lang) -> String {
        match (self, lang) {
            (ChatError::NotSaved, Lang::En) => "We could not save your message; your text is kept, please send it again. If you are in danger, call 109 (suicide prevention, 24h) or 119 right now.".into(),
            (ChatError::NotSaved, _) => "메시지를 저장하지 못했어요. 적은 글은 그대로 있으니 다시 보내 주세요. 위급하면 지금 바로 109(자살예방상담, 24시간)나 119로 전화하세요.".into(),
            (e, _) => e.to_string(),
        }
    }

    /// The stable code sent in `error` frames.
    pub fn code(self) -> &'static str {
        match self {
            ChatError::NotSaved => "not_saved",
            ChatError::BadToken => "resume_failed",
            ChatError::NotYours => "not_yours",
            ChatError::NotWaiting => "not_waiting",
            ChatError::Ended => "conversation_closed",
            ChatError::Gone => "gone",
            ChatError::TransferNotOnline
            | ChatError::TransferAtCapacity
            | ChatError::TransferToSelf => "transfer_refused",
            ChatError::AtCapacity => "at_capacity",
            ChatError::Reserved => "reserved",
            ChatError::RatingNotOpen => "bad_field",
            ChatError::NotHeld => "not_held",
        }
    }
}

type Reply1<T> = oneshot::Sender<Result<T, ChatError>>;

pub(super) enum Cmd {
    Attach {
        out: mpsc::Sender<Outbound>,
        resume: Option<(Token, u64)>,
        reply: Reply1<()>,
    },
    Message {
        id: String,
        text: String,
    },
    RequestHuman,
    Close,
    Rating(u8),
    CounselorJoin {
        counselor: String,
        role: &'static str,
        out: mpsc::Sender<CounselorFrame>,
        reply: Reply1<()>,
    },
    CounselorMessage {
        counselor: String,
        text: String,
        reply: Reply1<u64>,
    },
    Transfer {
        counselor: String,
        to: Option<String>,
        reply: Reply1<()>,
    },
    CounselorClose {
        counselor: String,
        outcome: String,
        reply: Reply1<()>,
    },
    Watch {
        supervisor: String,
        out: mpsc::Sender<CounselorFrame>,
        reply: Reply1<()>,
    },
    Unwatch {
        supervisor: String,
    },
    Whisper {
        supervisor: String,
        text: String,
        reply: Reply1<u64>,
    },
    TakeOver {
        supervisor: String,
        out: mpsc::Sender<CounselorFrame>,
        reply: Reply1<()>,
    },
    PlanItem {
        counselor: String,
        step: u8,
        text: String,
        reply: Reply1<()>,
    },
}

/// The cheap handle to one conversation actor.
#[derive(Clone)]
pub struct ConvHandle {
    /// The conversation.
    pub id: ConversationId,
    pub(super) tx: mpsc::Sender<Box<Cmd>>,
}

impl ConvHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply1<T>) -> Cmd) -> Result<T, ChatError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Box::new(make(tx)))
            .await
            .map_err(|_| ChatError::Gone)?;
        rx.await.map_err(|_| ChatError::Gone)?
    }

    /// Attaches a citizen socket. With `resume`, checks the token and replays the events
    /// after `last_seq`; either way a `welcome` frame comes first on `out`.
    ///
    /// # Errors
    /// [`ChatError::BadToken`] for a wrong token; [`ChatError::Gone`].
    pub async fn attach(
        &self,
        out: mpsc::Sender<Outbound>,
        resume: Option<(Token, u64)>,
    ) -> Result<(), ChatError> {
        self.ask(|reply| Cmd::Attach { out, resume, reply }).await
    }

    /// A citizen message; the `ack` (or `error`) arrives on the citizen's channel.
    ///
    /// # Errors
    /// [`ChatError::Gone`] if the actor stopped.
    pub async fn message(&self, id: String, text: String) -> Result<(), ChatError> {
        self.send(Cmd::Message { id, text }).await
    }

    /// The citizen asks for a person.
    ///
    /// # Errors
    /// [`ChatError::Gone`].
    pub async fn request_human(&self) -> Result<(), ChatError> {
        self.send(Cmd::RequestHuman).await
    }

    /// The citizen ends the conversation.
    ///
    /// # Errors
    /// [`ChatError::Gone`].
    pub async fn close(&self) -> Result<(), ChatError> {
        self.send(Cmd::Close).await
    }

    /// The citizen's rating.
    ///
    /// # Errors
    /// [`ChatError::Gone`].
    pub async fn rating(&self, value: u8) -> Result<(), ChatError> {
        self.send(Cmd::Rating(value)).await
    }

    /// A counselor takes the conversation from the queue (the actor claims it there: the
    /// queue hands each conversation to exactly one counselor) or reopens it (they already
    /// hold it); its transcript arrives as a `claimed` frame on `out`, then live events.
    ///
    /// # Errors
    /// [`ChatError::NotWaiting`] if it is neither waiting nor theirs;
    /// [`ChatError::AtCapacity`], [`ChatError::Reserved`] when the queue refuses the claim.
    /// `role` (`counselor` or `supervisor`) goes into the audit record.
    pub async fn counselor_join(
        &self,
        counselor: &str,
        role: &'static str,
        out: mpsc::Sender<CounselorFrame>,
    ) -> Result<(), ChatError> {
        let counselor = counselor.to_owned();
        self.ask(|reply| Cmd::CounselorJoin {
            counselor,
            role,
            out,
            reply,
        })
        .await
    }

    /// A counselor writes. Returns the message's seq once stored.
    ///
    /// # Errors
    /// [`ChatError::NotYours`], [`ChatError::NotSaved`].
    pub async fn counselor_message(&self, counselor: &str, text: String) -> Result<u64, ChatError> {
        let counselor = counselor.to_owned();
        self.ask(|reply| Cmd::CounselorMessage {
            counselor,
            text,
            reply,
        })
        .await
    }

    /// Hands the conversation to `to`, or back to the queue.
    ///
    /// # Errors
    /// [`ChatError::NotYours`], [`ChatError::NotSaved`].
    pub async fn transfer(&self, counselor: &str, to: Option<String>) -> Result<(), ChatError> {
        let counselor = counselor.to_owned();
        self.ask(|reply| Cmd::Transfer {
            counselor,
            to,
            reply,
        })
        .await
    }

    /// A counselor closes with an outcome code.
    ///
    /// # Errors
    /// [`ChatError::NotYours`], [`ChatError::NotSaved`].
    pub async fn counselor_close(&self, counselor: &str, outcome: String) -> Result<(), ChatError> {
        let counselor = counselor.to_owned();
        self.ask(|reply| Cmd::CounselorClose {
            counselor,
            outcome,
            reply,
        })
        .await
    }

    /// A supervisor opens the conversation silently: a `watching` frame with its
    /// transcript (audited first, as `watch`), then its live events, on `out`. The counselor
    /// holding it is told; the citizen is not.
    ///
    /// # Errors
    /// [`ChatError::Ended`], [`ChatError::NotSaved`] (no audit record, no transcript).
    pub async fn watch(
        &self,
        supervisor: &str,
        out: mpsc::Sender<CounselorFrame>,
    ) -> Result<(), ChatError> {
        let supervisor = supervisor.to_owned();
        self.ask(|reply| Cmd::Watch {
            supervisor,
            out,
            reply,
        })
        .await
    }

    /// The supervisor stops watching.
    ///
    /// # Errors
    /// [`ChatError::Gone`].
    pub async fn unwatch(&self, supervisor: &str) -> Result<(), ChatError> {
        self.send(Cmd::Unwatch {
            supervisor: supervisor.to_owned(),
        })
        .await
    }

    /// A supervisor whispers to the counselor holding the conversation (and to watching
    /// supervisors); stored in the transcript, never sent to the citizen. Returns its seq.
    ///
    /// # Errors
    /// [`ChatError::NotHeld`] when nobody holds it, [`ChatError::Ended`],
    /// [`ChatError::NotSaved`].
    pub async fn whisper(&self, supervisor: &str, text: String) -> Result<u64, ChatError> {
        let supervisor = supervisor.to_owned();
        self.ask(|reply| Cmd::Whisper {
            supervisor,
            text,
            reply,
        })
        .await
    }

    /// The counselor holding the conversation adds an item to step `step` (1–6) of the
    /// person's safety plan; the citizen and the counselor get the updated plan.
    ///
    /// # Errors
    /// [`ChatError::NotYours`], [`ChatError::NotSaved`].
    pub async fn plan_item(
        &self,
        counselor: &str,
        step: u8,
        text: String,
    ) -> Result<(), ChatError> {
        let counselor = counselor.to_owned();
        self.ask(|reply| Cmd::PlanItem {
            counselor,
            step,
            text,
            reply,
        })
        .await
    }

    /// A supervisor takes the conversation over (from its counselor, or from the queue):
    /// they hold it now, its transcript arrives as a `claimed` frame on `out`.
    ///
    /// # Errors
    /// [`ChatError::NotWaiting`] (with the bot: nobody to take it from),
    /// [`ChatError::Ended`], [`ChatError::NotSaved`].
    pub async fn take_over(
        &self,
        supervisor: &str,
        out: mpsc::Sender<CounselorFrame>,
    ) -> Result<(), ChatError> {
        let supervisor = supervisor.to_owned();
        self.ask(|reply| Cmd::TakeOver {
            supervisor,
            out,
            reply,
        })
        .await
    }

    async fn send(&self, cmd: Cmd) -> Result<(), ChatError> {
        self.tx
            .send(Box::new(cmd))
            .await
            .map_err(|_| ChatError::Gone)
    }
}

/// Citizen channel size: frames a slow client may fall behind by before it is detached.
pub const CITIZEN_CHANNEL: usize = 64;

/// What goes down a citizen's channel. Boxed: tokio's channel allocates its slots 32 at a
/// time, and 32 unboxed frames (160 bytes each) would cost every idle connection 5 KiB.
pub type Outbound = Box<ServerFrame>;

pub(super) struct Actor {
    deps: Arc<ChatDeps>,
    meta: ConversationMeta,
    persisted: bool,
    citizen: Option<mpsc::Sender<Outbound>>,
    counselor: Option<mpsc::Sender<CounselorFrame>>,
    /// Supervisors watching silently (username, socket): they get every event; the
    /// citizen is never told.
    watchers: Vec<(String, mpsc::Sender<CounselorFrame>)>,
    /// Queue position updates; the channel is made only when the conversation first
    /// enters the queue (every channel allocates its first block up front, and most
    /// conversations never wait for a counselor).
    position_tx: Option<mpsc::Sender<Position>>,
    positions: Option<mpsc::Receiver<Position>>,
    last_position: Option<Position>,
    /// `last_position` was not sent (the citizen's channel was filling up).
    position_unsent: bool,
    last_activity: Instant,
    /// A handoff the store refused to save (a full disk): the conversation already waits in
    /// the queue (in memory) at this level, and the actor makes it durable as soon as the
    /// store takes writes again.
    held: Option<Level>,
    /// The token of a conversation not yet stored (new conversations only).
    fresh_token: Option<Token>,
    /// This conversation's key.
    key: Key,
    /// The wrapped key, written with the conversation's first batch.
    key_write: Option<Write>,
    /// The safety plan (the fold of every stored `plan_item`), once known: read from the
    /// transcript at most once per actor, then kept up to date by [`Actor::commit`], so a
    /// plan change or a resume does not read the whole transcript again.
    plan: Option<SafetyPlan>,
}

impl Actor {
    /// A new, not yet stored conversation.
    pub(super) fn new_conversation(deps: Arc<ChatDeps>, lang: Lang) -> Actor {
        let token = Token::random();
        let now = now_ms();
        let meta = ConversationMeta::new(
            ConversationId::random(),
            lang.as_str(),
            now,
            crate::hex::encode(&token.hash()),
        );
        let (key, key_write) = deps.keyring.create(meta.id);
        let mut actor = Actor::with_meta(deps, meta, false, Some(token), key, Some(key_write));
        // Nothing stored yet: no plan to read.
        actor.plan = Some(SafetyPlan::default());
        actor
    }

    /// A stored conversation brought back to life, with its key.
    pub(super) fn restored(deps: Arc<ChatDeps>, meta: ConversationMeta, key: Key) -> Actor {
        Actor::with_meta(deps, meta, true, None, key, None)
    }

    fn with_meta(
        deps: Arc<ChatDeps>,
        meta: ConversationMeta,
        persisted: bool,
        fresh_token: Option<Token>,
        key: Key,
        key_write: Option<Write>,
    ) -> Actor {
        Actor {
            deps,
            meta,
            persisted,
            citizen: None,
            counselor: None,
            watchers: Vec::new(),
            position_tx: None,
            positions: None,
            last_position: None,
            position_unsent: false,
            last_activity: Instant::now(),
            held: None,
            fresh_token,
            key,
            key_write,
            plan: None,
        }
    }

    /// The sender the queue uses to tell this conversation its place.
    fn position_sender(&mut self) -> mpsc::Sender<Position> {
        if let Some(tx) = &self.position_tx {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(4);
        self.position_tx = Some(tx.clone());
        self.positions = Some(rx);
        tx
    }

    pub(super) fn id(&self) -> ConversationId {
        self.meta.id
    }

    fn lang(&self) -> Lang {
        Lang::parse(&self.meta.lang)
    }

    /// Re-enters the queue after a restart (waiting time preserved) or re-registers the
    /// counselor who held it.
    pub(super) async fn restore_side_effects(&mut self) {
        match &self.meta.conversation.state {
            // An offer to a colleague does not outlive a restart: their console reconnects,
            // and everyone may take it.
            State::Queued { urgent, .. } => self.enqueue(*urgent, None).await,
            State::WithCounselor { counselor } => {
                self.deps.queue.assign(self.meta.id, counselor).await;
            }
            _ => {}
        }
    }

    /// Runs until the inbox closes, the conversation idles out after closing, or a
    /// conversation that was never stored loses its citizen.
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Box<Cmd>>) {
        loop {
            let limit = Duration::from_secs(self.deps.idle.limit(&self.meta.conversation.state));
            let deadline = self.last_activity + limit;
            let citizen_gone = {
                let c = self.citizen.clone();
                async move {
                    match c {
                        Some(c) => c.closed().await,
                        None => std::future::pending().await,
                    }
                }
            };
            // Taken out for the select (a handler may create the channel meanwhile).
            let mut positions = self.positions.take();
            let next_position = async {
                match positions.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let held_retry = async {
                if self.held.is_some() {
                    tokio::time::sleep(HELD_RETRY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { return };
                    // Boxed: a handler's future (the state machine step, the store write,
                    // the replies) is several KiB, and inline it would be part of every
                    // idle conversation's task. Boxed it exists only while it runs.
                    Box::pin(self.handle(*cmd)).await;
                }
                Some(p) = next_position => self.queue_update(p),
                _ = held_retry => {
                    let _ = Box::pin(self.store_held()).await;
                }
                _ = citizen_gone => {
                    self.citizen = None;
                    if !self.persisted && self.held.is_none() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if matches!(self.meta.conversation.state, State::Closed { .. }) {
                        return;
                    }
                    let _ = Box::pin(self.apply(Event::IdleTimeout, None)).await;
                    self.last_activity = Instant::now();
                }
            }
            if self.positions.is_none() {
                self.positions = positions;
            }
            // A conversation never stored ends with its citizen, unless its handoff is
            // held (it waits in the queue until the store takes it).
            if !self.persisted && self.citizen.is_none() && self.held.is_none() {
                return;
            }
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Attach { out, resume, reply } => {
                let r = self.attach(out, resume).await;
                let _ = reply.send(r);
            }
            Cmd::Message { id, text } => {
                self.last_activity = Instant::now();
                self.citizen_message(id, text).await;
            }
            Cmd::RequestHuman => {
                self.last_activity = Instant::now();
                if let Err(e) = self.apply(Event::RequestHuman, None).await {
                    self.citizen_error(e, None);
                    // An explicit wish for a person is never lost to a full disk.
                    if e == ChatError::NotSaved {
                        self.hold_handoff(self.meta.level(), None).await;
                    }
                }
            }
            Cmd::Close => {
                self.last_activity = Instant::now();
                if let Err(e) = self.apply(Event::CitizenClose, None).await {
                    self.citizen_error(e, None);
                }
            }
            Cmd::Rating(v) => {
                self.last_activity = Instant::now();
                let open = matches!(
                    self.meta.conversation.state,
                    State::Closed {
                        rating_open: true,
                        ..
                    }
                );
                let result = if open {
                    self.apply(Event::Rating(v), None).await
                } else {
                    Err(ChatError::RatingNotOpen)
                };
                if let Err(e) = result {
                    self.citizen_error(e, None);
                }
            }
            Cmd::CounselorJoin {
                counselor,
                role,
                out,
                reply,
            } => {
                let r = self.counselor_join(counselor, role, out).await;
                let _ = reply.send(r);
            }
            Cmd::CounselorMessage {
                counselor,
                text,
                reply,
            } => {
                let r = self.counselor_message(counselor, text).await;
                let _ = reply.send(r);
            }
            Cmd::Transfer {
                counselor,
                to,
                reply,
            } => {
                let r = self.transfer(counselor, to).await;
                let _ = reply.send(r);
            }
            Cmd::CounselorClose {
                counselor,
                outcome,
                reply,
            } => {
                let r = self.counselor_close(counselor, outcome).await;
                let _ = reply.send(r);
            }
            Cmd::Watch {
                supervisor,
                out,
                reply,
            } => {
                let r = self.watch(supervisor, out).await;
                let _ = reply.send(r);
            }
            Cmd::Unwatch { supervisor } => self.unwatch(&supervisor),
            Cmd::Whisper {
                supervisor,
                text,
                reply,
            } => {
                let r = self.whisper(supervisor, text).await;
                let _ = reply.send(r);
            }
            Cmd::TakeOver {
                supervisor,
                out,
                reply,
            } => {
                let r = self.take_over(supervisor, out).await;
                let _ = reply.send(r);
            }
            Cmd::PlanItem {
                counselor,
                step,
                text,
                reply,
            } => {
                let r = self.counselor_plan_item(counselor, step, text).await;
                let _ = reply.send(r);
            }
        }
    }

    async fn attach(
        &mut self,
        out: mpsc::Sender<Outbound>,
        resume: Option<(Token, u64)>,
    ) -> Result<(), ChatError> {
        let state = self.meta.conversation.state.name();
        match resume {
            None => {
                let token = self.fresh_token.take().ok_or(ChatError::BadToken)?;
                let greeting = self.deps.responder.greeting(self.lang());
                let _ = out.try_send(Box::new(ServerFrame::Welcome {
                    conversation_id: self.meta.id,
                    token: token.expose().to_owned(),
                    seq: self.meta.last_seq,
                    resumed: false,
                    lang: self.lang().as_str(),
                    greeting: Some(greeting),
                    state,
                }));
                self.citizen = Some(out);
                Ok(())
            }
            Some((token, last_seq)) => {
                let stored = crate::hex::decode(&self.meta.token_hash).unwrap_or_default();
                if !self.persisted || !hashes_equal(&token.hash(), &stored) {
                    return Err(ChatError::BadToken);
                }
                // Rotate: the old token stops working once the new one is stored.
                let fresh = Token::random();
                let mut meta = self.meta.clone();
                meta.token_hash = crate::hex::encode(&fresh.hash());
                self.deps
                    .store
                    .write(vec![meta.write(&self.key)])
                    .await
                    .map_err(|_| ChatError::NotSaved)?;
                self.meta = meta;
                // The missed events, and the safety plan (which a person reopens with their
                // resume token): the whole transcript is read only while the plan is not
                // yet known to this actor.
                let from = if self.plan.is_some() { last_seq } else { 0 };
                let all = transcript::events_after(
                    &self.deps.store,
                    self.meta.id,
                    &self.key,
                    from,
                    self.meta.last_seq,
                )
                .await
                .map_err(|_| ChatError::NotSaved)?;
                let plan = self
                    .plan
                    .get_or_insert_with(|| SafetyPlan::fold(&all))
                    .clone();
                let mut frames = vec![ServerFrame::Welcome {
                    conversation_id: self.meta.id,
                    token: fresh.expose().to_owned(),
                    seq: self.meta.last_seq,
                    resumed: true,
                    lang: self.lang().as_str(),
                    greeting: None,
                    state,
                }];
                if !plan.is_empty() {
                    frames.push(self.plan_frame(&plan));
                }
                frames.extend(
                    all.iter()
                        .filter(|e| e.seq > last_seq)
                        .filter_map(ServerFrame::from_event),
                );
                if let (State::Queued { .. }, Some(p)) =
                    (&self.meta.conversation.state, self.last_position.clone())
                {
                    frames.push(self.queue_frame(&p));
                }
                // A previous socket of the same citizen is replaced.
                self.citizen = Some(out);
                for f in frames {
                    self.send_citizen(f);
                }
                self.last_activity = Instant::now();
                Ok(())
            }
        }
    }

    async fn citizen_message(&mut self, id: String, text: String) {
        // A resident registration number may not be processed at all: it is removed before
        // triage, storage and the counselor's screen.
        let text = crate::redact::redact_rrn(&text).into_owned();
        if matches!(self.meta.conversation.state, State::Closed { .. }) {
            self.citizen_error(ChatError::Ended, Some(id));
            return;
        }
        let engine = &self.deps.engine;
        let started = std::time::Instant::now();
        let assessment = engine.assess(&text);
        self.deps
            .metrics
            .message_triaged(started.elapsed().as_nanos() as u64);
        let before = self.meta.level();
        let mut risk = self.meta.risk.clone();
        let level = engine.escalate(&mut risk, before, &assessment);
        // A rise of the conversation level acts at the conversation level; otherwise the
        // message's own level decides what the bot does.
        let acting = if level > before {
            level
        } else {
            assessment.level
        };
        let action: TriageAction = engine.policy(acting).action;
        let answer = if matches!(
            self.meta.conversation.state,
            State::Screening { .. } | State::PlanWalk { step: 0 }
        ) {
            self.deps.responder.screener_answer(&text)
        } else {
            Answer::Unclear
        };
        let choice = match self.meta.conversation.state {
            State::SelfCheck { .. } => self
                .deps
                .responder
                .self_check_score(&text)
                .map_or(Choice::Other, Choice::Score),
            State::PlanWalk { step } if step > 0 && self.deps.responder.plan_skip(&text) => {
                Choice::Skip
            }
            _ => Choice::Other,
        };
        let note = TriageNote {
            level: assessment.level,
            conversation_level: level,
            intent: assessment.intent.as_deref().map(str::to_owned),
            rules: assessment.rules.clone(),
            spans: assessment.spans.clone(),
            ruleset: assessment.ruleset_version.to_string(),
        };
        // While waiting, the two choices the holding line offers (keep waiting, or talk
        // with the bot meanwhile) are read as choices, unless the words carry risk.
        let waiting_choice = match (&self.meta.conversation.state, note.intent.as_deref()) {
            (State::Queued { .. }, Some(i)) if assessment.level < Level::Medium => match i {
                KEEP_TALKING => Some(true),
                KEEP_WAITING => Some(false),
                _ => None,
            },
            _ => None,
        };
        let event = match waiting_choice {
            Some(talk) => Event::WhileWaiting { talk },
            None => Event::CitizenMessage {
                level,
                message_level: assessment.level,
                action,
                intent: note.intent.clone(),
                answer,
                choice,
            },
        };
        let citizen = CitizenWords {
            id: id.clone(),
            text: text.clone(),
            note,
            risk,
        };
        let crisis_note = citizen.note.clone();
        if let Err(e) = self.apply(event, Some(citizen)).await {
            self.citizen_error(e, Some(id));
            if e == ChatError::NotSaved {
                // The store refused the words (a full disk): nothing is acknowledged, but
                // the crisis path still works. Risk gets its safety answer at once, and at
                // `high` and above the person goes into the queue now; the handoff is made
                // durable as soon as the store takes writes again.
                let risk = level.max(assessment.level);
                if risk >= Level::Medium {
                    let r = self.deps.responder.safety_resources(risk, self.lang());
                    self.send_citizen(ServerFrame::Safety {
                        seq: self.meta.last_seq,
                        reply: r,
                        unsaved: true,
                    });
                }
                if risk >= Level::High {
                    self.hold_handoff(risk, Some((&text, &crisis_note))).await;
                }
            }
        }
    }

    /// Puts the conversation in the queue now, in memory, although the store refused to
    /// save the handoff; [`Actor::store_held`] makes it durable once the store is back.
    async fn hold_handoff(&mut self, level: Level, words: Option<(&str, &TriageNote)>) {
        if self.meta.conversation.state.is_handed_off()
            || matches!(self.meta.conversation.state, State::Closed { .. })
        {
            return;
        }
        let level = self.held.map_or(level, |h| h.max(level));
        self.held = Some(level);
        let mut summary = Arc::clone(&self.meta.summary);
        if let Some((text, note)) = words {
            crate::conversation::plan::update_summary(&mut summary, text, note, self.meta.level());
        }
        let position_tx = self.position_sender();
        self.deps
            .queue
            .enqueue(
                self.meta.id,
                level,
                level == Level::Imminent,
                Summary::clone(&summary),
                Duration::ZERO,
                position_tx,
                None,
            )
            .await;
        tracing::warn!(
            conversation = %self.meta.id,
            level = %level,
            "handoff held in memory: the store refused it; retrying"
        );
    }

    /// Makes a held handoff durable (see [`Actor::hold_handoff`]).
    async fn store_held(&mut self) -> Result<(), ChatError> {
        let Some(level) = self.held else {
            return Ok(());
        };
        self.apply(Event::HandOffAt { level }, None).await?;
        self.held = None;
        tracing::info!(conversation = %self.meta.id, "held handoff stored");
        Ok(())
    }

    async fn counselor_join(
        &mut self,
        counselor: String,
        role: &'static str,
        out: mpsc::Sender<CounselorFrame>,
    ) -> Result<(), ChatError> {
        // A handoff held while the store refused writes is stored first: a counselor only
        // joins a conversation whose handoff is on disk.
        if self.held.is_some() {
            self.store_held().await?;
        }
        match &self.meta.conversation.state {
            State::WithCounselor { counselor: c } if *c == counselor => {}
            // Only a claim from the queue lets a counselor in: the queue hands each
            // conversation to exactly one, and keeps count of what each one holds.
            State::Queued { .. } => {
                self.deps
                    .queue
                    .claim(self.meta.id, &counselor)
                    .await
                    .map_err(|e| match e {
                        ClaimError::AtCapacity => ChatError::AtCapacity,
                        ClaimError::Reserved => ChatError::Reserved,
                        ClaimError::NotWaiting | ClaimError::Closed => ChatError::NotWaiting,
                    })?;
                let joined = Event::CounselorJoined {
                    counselor: counselor.clone(),
                };
                if let Err(e) = self.apply(joined, None).await {
                    // Not stored: it waits again, where it was.
                    self.deps.queue.release(self.meta.id, &counselor).await;
                    self.restore_side_effects().await;
                    return Err(e);
                }
            }
            State::Closed { .. } => return Err(ChatError::Ended),
            _ => return Err(ChatError::NotWaiting),
        }
        let events = transcript::events_after(
            &self.deps.store,
            self.meta.id,
            &self.key,
            0,
            self.meta.last_seq,
        )
        .await
        .map_err(|_| ChatError::NotSaved)?;
        // The whole transcript is about to be shown: audited first, like every read (no
        // record, no transcript; the counselor still holds it and may reopen it).
        self.deps
            .audit
            .append(AuditEntry {
                actor: counselor.clone(),
                role: role.into(),
                action: "claim".into(),
                conversation_id: Some(self.meta.id),
                remote: None,
            })
            .await
            .map_err(|e| {
                log_store_error(&e);
                ChatError::NotSaved
            })?;
        let plan = SafetyPlan::fold(&events);
        self.plan = Some(plan.clone());
        let _ = out.try_send(CounselorFrame::Claimed {
            conversation_id: self.meta.id,
            level: self.meta.level(),
            events,
        });
        if !plan.is_empty() {
            let steps = PlanStepFrame::all(&plan, &self.deps.responder.plan_titles(self.lang()));
            let _ = out.try_send(CounselorFrame::SafetyPlan {
                conversation_id: self.meta.id,
                steps,
            });
        }
        self.counselor = Some(out);
        self.tell_holder_who_watches();
        Ok(())
    }

    /// The holder's console learns which supervisors watch (after a claim or reopen).
    fn tell_holder_who_watches(&mut self) {
        let Some(out) = &self.counselor else { return };
        for (name, _) in &self.watchers {
            let _ = out.try_send(CounselorFrame::SupervisorWatching {
                conversation_id: self.meta.id,
                supervisor: name.clone(),
            });
        }
    }

    /// Records a supervisor's action in the audit log; no record, no action.
    async fn audit_supervisor(&self, supervisor: &str, action: &str) -> Result<(), ChatError> {
        self.deps
            .audit
            .append(AuditEntry {
                actor: supervisor.to_owned(),
                role: "supervisor".into(),
                action: action.into(),
                conversation_id: Some(self.meta.id),
                remote: None,
            })
            .await
            .map(|_| ())
            .map_err(|e| {
                log_store_error(&e);
                ChatError::NotSaved
            })
    }

    #[tracing::instrument(skip_all, fields(conversation = %self.meta.id, supervisor = %supervisor))]
    async fn watch(
        &mut self,
        supervisor: String,
        out: mpsc::Sender<CounselorFrame>,
    ) -> Result<(), ChatError> {
        if matches!(self.meta.conversation.state, State::Closed { .. }) {
            return Err(ChatError::Ended);
        }
        let events = transcript::events_after(
            &self.deps.store,
            self.meta.id,
            &self.key,
            0,
            self.meta.last_seq,
        )
        .await
        .map_err(|_| ChatError::NotSaved)?;
        // A supervisor's read of the transcript: audited before it is shown.
        self.audit_supervisor(&supervisor, "watch").await?;
        let _ = out.try_send(CounselorFrame::Watching {
            conversation_id: self.meta.id,
            level: self.meta.level(),
            state: self.meta.conversation.state.name(),
            holder: self.meta.holder().map(str::to_owned),
            events,
        });
        self.watchers.retain(|(n, _)| *n != supervisor);
        self.watchers.push((supervisor.clone(), out));
        if let Some(c) = &self.counselor {
            let _ = c.try_send(CounselorFrame::SupervisorWatching {
                conversation_id: self.meta.id,
                supervisor,
            });
        }
        tracing::info!("supervisor watching");
        Ok(())
    }

    fn unwatch(&mut self, supervisor: &str) {
        let before = self.watchers.len();
        self.watchers.retain(|(n, _)| n != supervisor);
        if before != self.watchers.len() {
            if let Some(c) = &self.counselor {
                let _ = c.try_send(CounselorFrame::SupervisorLeft {
                    conversation_id: self.meta.id,
                    supervisor: supervisor.to_owned(),
                });
            }
        }
    }

    #[tracing::instrument(skip_all, fields(conversation = %self.meta.id, supervisor = %supervisor))]
    async fn whisper(&mut self, supervisor: String, text: String) -> Result<u64, ChatError> {
        match &self.meta.conversation.state {
            State::WithCounselor { .. } => {}
            State::Closed { .. } => return Err(ChatError::Ended),
            _ => return Err(ChatError::NotHeld),
        }
        self.audit_supervisor(&supervisor, "whisper").await?;
        let seq = self.meta.last_seq + 1;
        let text = crate::redact::redact_rrn(&text).into_owned();
        let event = StoredEvent {
            seq,
            at: now_ms(),
            body: EventBody::Whisper { supervisor, text },
        };
        let mut meta = self.meta.clone();
        meta.last_seq = seq;
        meta.updated_at = event.at;
        // `commit` sends it to the holder and the watchers; it has no citizen frame.
        self.commit(meta, vec![event], None).await?;
        Ok(seq)
    }

    #[tracing::instrument(skip_all, fields(conversation = %self.meta.id, supervisor = %supervisor))]
    async fn take_over(
        &mut self,
        supervisor: String,
        out: mpsc::Sender<CounselorFrame>,
    ) -> Result<(), ChatError> {
        if self.held.is_some() {
            self.store_held().await?;
        }
        match &self.meta.conversation.state {
            State::Closed { .. } => return Err(ChatError::Ended),
            State::Queued { .. } | State::WithCounselor { .. } => {}
            _ => return Err(ChatError::NotWaiting),
        }
        // Audited before anything changes: no record, no take-over (and no transcript).
        self.audit_supervisor(&supervisor, "take_over").await?;
        // Reopening one they already hold changes nothing; otherwise the plan moves it to
        // them (from the queue like a claim, or from the counselor, whom it releases: their
        // place in the queue's count, and a `released` frame to their console). One holder,
        // never two.
        let previous = match &self.meta.conversation.state {
            State::WithCounselor { counselor } if *counselor == supervisor => None,
            state => {
                let from = match state {
                    State::WithCounselor { counselor } => Some(counselor.clone()),
                    _ => None,
                };
                let old_socket = self.counselor.clone();
                self.apply(
                    Event::TakenOver {
                        by: supervisor.clone(),
                    },
                    None,
                )
                .await?;
                // Out of the queue (even if reserved for a colleague), held by the
                // supervisor.
                self.deps.queue.assign(self.meta.id, &supervisor).await;
                from.map(|name| (name, old_socket))
            }
        };
        if let Some((name, Some(old))) = previous.as_ref() {
            tracing::info!(from = %name, "taken over");
            let _ = old.try_send(CounselorFrame::TakenOver {
                conversation_id: self.meta.id,
                by: supervisor.clone(),
            });
        }
        let events = transcript::events_after(
            &self.deps.store,
            self.meta.id,
            &self.key,
            0,
            self.meta.last_seq,
        )
        .await
        .map_err(|_| ChatError::NotSaved)?;
        // A watcher who takes over gets the events as the holder, not twice.
        self.watchers.retain(|(n, _)| *n != supervisor);
        let _ = out.try_send(CounselorFrame::Claimed {
            conversation_id: self.meta.id,
            level: self.meta.level(),
            events,
        });
        self.counselor = Some(out);
        self.tell_holder_who_watches();
        Ok(())
    }

    /// A counselor adds an item to the person's safety plan. A plan that is still empty
    /// starts with the prefilled lines of step 5 (109, 1577-0199, the district centre).
    async fn counselor_plan_item(
        &mut self,
        counselor: String,
        step: u8,
        text: String,
    ) -> Result<(), ChatError> {
        if !self.holder_is(&counselor) {
            return Err(ChatError::NotYours);
        }
        self.last_activity = Instant::now();
        let text = crate::redact::redact_rrn(&text).into_owned();
        let plan = self.load_plan().await?;
        let now = now_ms();
        let mut seq = self.meta.last_seq;
        let mut events = Vec::new();
        let mut push = |body: EventBody| {
            seq += 1;
            events.push(StoredEvent { seq, at: now, body });
        };
        if plan.is_empty() {
            for line in self.deps.responder.plan_prefill(self.lang()) {
                push(EventBody::PlanItem {
                    step: 5,
                    text: line,
                    by: "bot".into(),
                });
            }
        }
        push(EventBody::PlanItem {
            step,
            text,
            by: format!("counselor:{counselor}"),
        });
        let mut meta = self.meta.clone();
        meta.last_seq = seq;
        meta.updated_at = now;
        self.commit(meta, events, None).await
    }

    /// The safety plan so far: the fold of the stored transcript.
    async fn load_plan(&mut self) -> Result<SafetyPlan, ChatError> {
        if let Some(plan) = &self.plan {
            return Ok(plan.clone());
        }
        let events = transcript::events_after(
            &self.deps.store,
            self.meta.id,
            &self.key,
            0,
            self.meta.last_seq,
        )
        .await
        .map_err(|_| ChatError::NotSaved)?;
        let plan = SafetyPlan::fold(&events);
        self.plan = Some(plan.clone());
        Ok(plan)
    }

    fn plan_frame(&self, plan: &SafetyPlan) -> ServerFrame {
        ServerFrame::SafetyPlan {
            seq: self.meta.last_seq,
            steps: PlanStepFrame::all(plan, &self.deps.responder.plan_titles(self.lang())),
        }
    }

    /// The plan changed: the citizen and the counselor get it whole.
    async fn send_plan(&mut self) {
        let Ok(plan) = self.load_plan().await else {
            // Stored, but not readable now: the next change or a resume sends it.
            return;
        };
        let frame = self.plan_frame(&plan);
        if let (Some(out), ServerFrame::SafetyPlan { steps, .. }) = (&self.counselor, &frame) {
            let _ = out.try_send(CounselorFrame::SafetyPlan {
                conversation_id: self.meta.id,
                steps: steps.clone(),
            });
        }
        self.send_citizen(frame);
    }

    fn holder_is(&self, counselor: &str) -> bool {
        matches!(&self.meta.conversation.state, State::WithCounselor { counselor: c } if c == counselor)
    }

    async fn counselor_message(
        &mut self,
        counselor: String,
        text: String,
    ) -> Result<u64, ChatError> {
        if !self.holder_is(&counselor) {
            return Err(ChatError::NotYours);
        }
        self.last_activity = Instant::now();
        let seq = self.meta.last_seq + 1;
        let text = crate::redact::redact_rrn(&text).into_owned();
        let event = StoredEvent {
            seq,
            at: now_ms(),
            body: EventBody::Counselor { counselor, text },
        };
        let mut meta = self.meta.clone();
        meta.last_seq = seq;
        meta.updated_at = event.at;
        self.commit(meta, vec![event], None).await?;
        Ok(seq)
    }

    async fn transfer(&mut self, counselor: String, to: Option<String>) -> Result<(), ChatError> {
        if !self.holder_is(&counselor) {
            return Err(ChatError::NotYours);
        }
        // Only to a colleague who is online and has room; otherwise the conversation stays
        // where it was.
        if let Some(other) = &to {
            if let Err(refused) = self.deps.queue.can_take(&counselor, other).await {
                return Err(match refused {
                    TransferRefused::NotOnline(_) => ChatError::TransferNotOnline,
                    TransferRefused::AtCapacity(_) => ChatError::TransferAtCapacity,
                    TransferRefused::ToSelf => ChatError::TransferToSelf,
                });
            }
        }
        let event = match &to {
            Some(other) => Event::TransferredTo {
                counselor: other.clone(),
            },
            None => Event::ReturnedToQueue,
        };
        self.apply_with(
            event,
            None,
            Some(EventBody::Transferred {
                from: counselor.clone(),
                to: to.clone(),
            }),
        )
        .await?;
        // It waits in the queue again (reserved for the colleague, who claims it to join);
        // the plan released it from this counselor.
        Ok(())
    }

    async fn counselor_close(
        &mut self,
        counselor: String,
        outcome: String,
    ) -> Result<(), ChatError> {
        if !self.holder_is(&counselor) {
            return Err(ChatError::NotYours);
        }
        self.meta.outcome = Some(outcome);
        self.apply(Event::CounselorClose, None).await
    }

    async fn apply(
        &mut self,
        event: Event,
        citizen: Option<CitizenWords>,
    ) -> Result<(), ChatError> {
        self.apply_with(event, citizen, None).await
    }

    /// Plans the event (pure: `conversation::plan`), stores what it says, then carries out
    /// its effects: the queue, the counselor's socket.
    async fn apply_with(
        &mut self,
        event: Event,
        citizen: Option<CitizenWords>,
        extra: Option<EventBody>,
    ) -> Result<(), ChatError> {
        let ctx = Context {
            flow: &self.deps.flow,
            words: &*self.deps.responder,
            now: now_ms(),
            counselors_online: self.deps.queue.stats().counselors_online,
            place: self.last_position.as_ref(),
        };
        let plan = plan(&self.meta, event, citizen, extra, &ctx);
        if plan.events.is_empty() {
            self.meta = plan.record;
            return Ok(());
        }
        self.commit(plan.record, plan.events, plan.ack).await?;
        for effect in plan.effects {
            match effect {
                Effect::Enqueue {
                    urgent,
                    reserved_for,
                } => self.enqueue(urgent, reserved_for).await,
                Effect::Dequeue => self.deps.queue.remove(self.meta.id).await,
                Effect::Release { counselor } => {
                    self.deps.queue.release(self.meta.id, &counselor).await;
                    if let Some(out) = self.counselor.take() {
                        let _ = out.try_send(CounselorFrame::Released {
                            conversation_id: self.meta.id,
                        });
                    }
                }
                Effect::ForgetPlace => self.last_position = None,
            }
        }
        Ok(())
    }

    /// Puts the conversation in the queue (or updates it there) at its level, with the
    /// time it has waited so far.
    async fn enqueue(&mut self, urgent: bool, reserved_for: Option<String>) {
        let waited = self
            .meta
            .enqueued_at
            .map(|t| Duration::from_millis(now_ms().saturating_sub(t)))
            .unwrap_or_default();
        let position_tx = self.position_sender();
        self.deps
            .queue
            .enqueue(
                self.meta.id,
                self.meta.level(),
                urgent,
                Summary::clone(&self.meta.summary),
                waited,
                position_tx,
                reserved_for,
            )
            .await;
    }

    /// Stores the events, and the meta if more than its progress changed, in one batch;
    /// then (only then) sends them.
    async fn commit(
        &mut self,
        meta: ConversationMeta,
        events: Vec<StoredEvent>,
        ack: Option<(String, u64)>,
    ) -> Result<(), ChatError> {
        let mut batch: Vec<_> =
            transcript::write_events(meta.id, &self.key, &events, meta.progress())
                .into_iter()
                .collect();
        // Most messages change only the progress (seq, time, turn, counts), which the
        // event record's head carries: then the conversation record is not rewritten.
        if !self.persisted || self.meta.differs_beyond_progress(&meta) {
            batch.push(meta.write(&self.key));
            batch.push(transcript::waiting_index(&meta));
        }
        if let Some(k) = &self.key_write {
            batch.push(k.clone());
        }
        if let Err(e) = self.deps.store.write(batch).await {
            log_store_error(&e);
            self.deps.metrics.not_saved();
            return Err(ChatError::NotSaved);
        }
        self.meta = meta;
        self.persisted = true;
        self.key_write = None;
        if let Some((id, seq)) = ack {
            self.send_citizen(ServerFrame::Ack { id, seq });
        }
        let mut plan_changed = false;
        for e in &events {
            if let EventBody::PlanItem { .. } = e.body {
                plan_changed = true;
                if let Some(plan) = &mut self.plan {
                    plan.add(&e.body);
                }
            }
        }
        // The events are stored: move them into the frames (no copy of the words and
        // resource cards), copying only for a counselor who is watching.
        for e in events {
            if let Some(out) = &self.counselor {
                if out
                    .try_send(CounselorFrame::Event {
                        conversation_id: self.meta.id,
                        event: e.clone(),
                    })
                    .is_err()
                {
                    // The counselor's socket is gone or stuck: they reopen the tab by
                    // claiming again, which sends the whole transcript.
                    self.counselor = None;
                }
            }
            // Watching supervisors see everything the holder sees; a closed or stuck
            // socket stops watching (it watches again to catch up).
            let id = self.meta.id;
            let mut gone = Vec::new();
            self.watchers.retain(|(name, out)| {
                let sent = out
                    .try_send(CounselorFrame::Event {
                        conversation_id: id,
                        event: e.clone(),
                    })
                    .is_ok();
                if !sent {
                    gone.push(name.clone());
                }
                sent
            });
            if let Some(out) = &self.counselor {
                for supervisor in gone {
                    let _ = out.try_send(CounselorFrame::SupervisorLeft {
                        conversation_id: id,
                        supervisor,
                    });
                }
            }
            if !matches!(e.body, EventBody::Citizen { .. }) {
                if let Some(f) = ServerFrame::from_stored(e) {
                    self.send_citizen(f);
                }
            }
        }
        if plan_changed {
            self.send_plan().await;
        }
        Ok(())
    }

    fn send_citizen(&mut self, frame: ServerFrame) {
        if let Some(out) = &self.citizen {
            if out.try_send(Box::new(frame)).is_err() {
                // Full or closed: detach; the widget resumes and replays from the store.
                self.citizen = None;
            }
        }
    }

    fn citizen_error(&mut self, e: ChatError, id: Option<String>) {
        let seq = self.meta.last_seq;
        let message = e.citizen_message(self.lang());
        self.send_citizen(ServerFrame::Error {
            seq,
            code: e.code(),
            message,
            id,
        });
    }

    fn queue_frame(&self, p: &Position) -> ServerFrame {
        let reply: Reply = self.deps.responder.queue_notice(p, self.lang());
        ServerFrame::Queue {
            seq: self.meta.last_seq,
            position: p.position,
            expected_wait_secs: p.expected_wait_secs,
            counselors_online: p.counselors_online,
            reply,
        }
    }

    fn queue_update(&mut self, p: Position) {
        if !matches!(self.meta.conversation.state, State::Queued { .. }) && self.held.is_none() {
            return;
        }
        if self.last_position.as_ref() == Some(&p) && !self.position_unsent {
            return;
        }
        // A position is only news until the next one. When the citizen's channel is half
        // full (a slow or overloaded connection while the queue moves fast), it is not sent
        // rather than fill the channel, which would detach the citizen; the next update (or
        // a resume) sends the latest.
        let room = self
            .citizen
            .as_ref()
            .is_some_and(|out| out.capacity() >= CITIZEN_CHANNEL / 2);
        self.position_unsent = !room;
        if room {
            let f = self.queue_frame(&p);
            self.send_citizen(f);
        }
        self.last_position = Some(p);
    }
}

fn log_store_error(e: &StoreError) {
    tracing::error!(code = e.code(), error = %e, "store refused a conversation write; not acknowledged");
}
