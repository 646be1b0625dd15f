//! One counselor connection on `/ws/counselor`, over `Sink`/`Stream`.
//!
//! Authenticated before the upgrade (see [`super::counselor_ws`]). The session receives the
//! live queue and `imminent` alerts from the queue actor, claims conversations, and
//! multiplexes every conversation the counselor holds (tabs) over one socket: each
//! conversation actor pushes its events, tagged with the conversation id, into this
//! session's channel.
//!
//! A counselor sees only the conversations assigned to them: every command names a
//! conversation, and the conversation actor checks that this counselor holds it.
//!
//! Supervisors use the same socket to monitor live conversations: `watch` (silently: the
//! citizen is never told, the holding counselor is), `whisper` (to the holding counselor
//! only) and `take_over` (they hold it then, and write and close like a counselor). Each is
//! audited by the conversation actor. A counselor sending these gets `forbidden`. A
//! supervisor's socket is not "online" in the queue: they are not offered conversations,
//! passed any, nor counted as a counselor on duty.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Message;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::protocol::CounselorFrame as In;
use crate::chat::Registry;
use crate::chat::actor::ChatError;
use crate::chat::frames::CounselorFrame as Out;
use crate::ids::ConversationId;
use crate::queue::{CounselorPush, QueueHandle};
use crate::store::Store;

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// What a counselor session needs.
pub struct CounselorCtx {
    /// The counselor's username.
    pub username: String,
    /// Counselor or supervisor.
    pub role: crate::auth::Role,
    /// The hash of the session token the socket was opened with.
    pub token_hash: [u8; 32],
    /// Sessions that end (logout, account disabled): this socket closes when its does.
    pub ended: tokio::sync::broadcast::Receiver<crate::auth::SessionEnded>,
    /// Finds conversations.
    pub registry: Registry,
    /// The queue.
    pub queue: QueueHandle,
    /// For the list of conversations held.
    pub store: Store,
    /// Ping interval.
    pub ping: Duration,
    /// Turns true on shutdown.
    pub shutdown: watch::Receiver<bool>,
}

fn send_text(f: &Out) -> Message {
    Message::Text(f.to_json().into())
}

fn err(code: &'static str, message: String, conversation_id: Option<ConversationId>) -> Out {
    Out::Error {
        code,
        message,
        conversation_id,
    }
}

/// Runs one counselor connection to the end.
pub async fn run<S, R>(mut sink: S, mut stream: R, ctx: CounselorCtx)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    let (push_tx, mut push_rx) = mpsc::channel::<CounselorPush>(64);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(256);

    // The queue knows who holds what (restored at boot from the waiting index).
    let held: Vec<ConversationId> = ctx.queue.held_by(&ctx.username).await;
    if sink
        .send(send_text(&Out::Hello {
            username: ctx.username.clone(),
            held,
        }))
        .await
        .is_err()
    {
        return;
    }
    let supervisor = ctx.role == crate::auth::Role::Supervisor;
    // Kept open for a supervisor (not online in the queue, so nothing is pushed).
    let _no_push = if supervisor {
        Some(push_tx)
    } else {
        ctx.queue.online(conn, &ctx.username, push_tx).await;
        None
    };

    let mut ping = tokio::time::interval(ctx.ping);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut shutdown = ctx.shutdown.clone();
    let mut ended = ctx.ended.resubscribe();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let msg = match incoming {
                    Some(Ok(m)) => m,
                    _ => break,
                };
                last_heard = Instant::now();
                let Message::Text(t) = msg else {
                    if matches!(msg, Message::Close(_)) { break; }
                    continue;
                };
                // An ended session or a disabled account stops here, even with its socket
                // still open (the broadcast below usually closes it first).
                if let Some((code, why)) = session_over(&ctx).await {
                    let _ = sink.send(send_text(&err(code, why.into(), None))).await;
                    let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1008,
                        reason: why.into(),
                    }))).await;
                    break;
                }
                let reply = match In::decode(t.as_str()) {
                    Ok(frame) => handle(&ctx, frame, &out_tx).await,
                    Err(e) => Some(err(e.code(), e.to_string(), None)),
                };
                if let Some(r) = reply {
                    if sink.send(send_text(&r)).await.is_err() {
                        break;
                    }
                }
            }
            push = push_rx.recv() => {
                let frame = match push {
                    Some(CounselorPush::Queue(entries)) => Out::Queue { entries },
                    Some(CounselorPush::Alert(entry)) => Out::Alert { entry },
                    Some(CounselorPush::Offer(entry)) => Out::Offer { entry },
                    Some(CounselorPush::Colleagues(colleagues)) => Out::Colleagues { colleagues },
                    None => break,
                };
                if sink.send(send_text(&frame)).await.is_err() {
                    break;
                }
            }
            Some(frame) = out_rx.recv() => {
                if sink.send(send_text(&frame)).await.is_err() {
                    break;
                }
            }
            ended_now = ended.recv() => {
                let mine = match &ended_now {
                    Ok(crate::auth::SessionEnded::Token(h)) => *h == ctx.token_hash,
                    Ok(crate::auth::SessionEnded::User(u)) => *u == ctx.username,
                    // Missed some: look it up.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => session_over(&ctx).await.is_some(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                };
                if mine {
                    let (code, why) = session_over(&ctx).await.unwrap_or(("session_ended", "session ended"));
                    let _ = sink.send(send_text(&err(code, why.into(), None))).await;
                    let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1008,
                        reason: why.into(),
                    }))).await;
                    break;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > ctx.ping * 2 {
                    break;
                }
                // A session that expired while the socket stayed open ends it.
                if let Some((code, why)) = session_over(&ctx).await {
                    let _ = sink.send(send_text(&err(code, why.into(), None))).await;
                    let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1008,
                        reason: why.into(),
                    }))).await;
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            _ = async { shutdown.wait_for(|s| *s).await.is_ok() } => {
                let _ = sink.send(Message::Close(Some(axum::extract::ws::CloseFrame {
                    code: 1001,
                    reason: "server restarting".into(),
                }))).await;
                break;
            }
        }
    }
    if !supervisor {
        ctx.queue.offline(conn).await;
    }
}

/// Why this socket's session is over, if it is: logged out or expired
/// (`session_ended`), or the account disabled (`account_disabled`).
async fn session_over(ctx: &CounselorCtx) -> Option<(&'static str, &'static str)> {
    let live = ctx
        .store
        .get(crate::store::Tree::Sessions, &ctx.token_hash)
        .await
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<crate::auth::Session>(&b).ok())
        .is_some_and(|s| s.expires_at > crate::ids::now_ms());
    let enabled = crate::auth::staff(&ctx.store, &ctx.username)
        .await
        .is_ok_and(|a| a.is_some_and(|a| !a.disabled));
    if !enabled {
        Some(("account_disabled", "this account is disabled"))
    } else if !live {
        Some(("session_ended", "this session has ended; log in again"))
    } else {
        None
    }
}

fn chat_error(e: ChatError, id: ConversationId) -> Out {
    err(e.code(), e.to_string(), Some(id))
}

async fn handle(ctx: &CounselorCtx, frame: In, out: &mpsc::Sender<Out>) -> Option<Out> {
    let me = ctx.username.as_str();
    if frame.supervisors_only() && ctx.role != crate::auth::Role::Supervisor {
        // Nothing happens: the conversation actor is not even asked.
        return Some(err(
            "forbidden",
            "only a supervisor may watch, whisper or take over".into(),
            None,
        ));
    }
    let id = frame.conversation_id();
    let Some(h) = ctx.registry.get(id).await else {
        // Letting go of a conversation that is gone is nothing to report.
        if matches!(frame, In::Unwatch { .. }) {
            return None;
        }
        return Some(chat_error(ChatError::Gone, id));
    };
    // The actor decides (who holds it, whether it waits, whether it is closed): the gateway
    // only forwards, and turns a refusal into an error frame.
    let done = match frame {
        In::Claim { .. } => h.counselor_join(me, ctx.role.as_str(), out.clone()).await,
        In::Message { text, .. } => h.counselor_message(me, text).await.map(drop),
        In::Transfer { to, .. } => h.transfer(me, to).await,
        In::Close { outcome, .. } => h.counselor_close(me, outcome).await,
        In::Watch { .. } => h.watch(me, out.clone()).await,
        In::Unwatch { .. } => h.unwatch(me).await,
        In::Whisper { text, .. } => h.whisper(me, text).await.map(drop),
        In::TakeOver { .. } => h.take_over(me, out.clone()).await,
        // Only the counselor holding the conversation may add to its plan (`not_yours`).
        In::PlanItem { step, text, .. } => h.plan_item(me, step, text).await,
    };
    done.err().map(|e| chat_error(e, id))
}
