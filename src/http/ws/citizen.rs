//! One citizen connection on `/ws/chat`, written over `Sink`/`Stream` so it can be tested
//! without a socket.
//!
//! The session only moves frames: it decodes what the citizen sends, applies the per-client
//! rate limit, and forwards to the conversation actor; whatever the actor sends (acks, bot
//! replies, queue updates, counselor messages) goes out in the actor's order.
//!
//! **The crisis path is never rate-limited.** A message over the limit is still triaged
//! (a few microseconds); if it is `high` or `imminent` it goes through anyway. Otherwise the
//! citizen gets `rate_limited` — which carries 109 — and the text stays in their widget.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::protocol::CitizenFrame;
use crate::chat::actor::{CITIZEN_CHANNEL, Outbound};
use crate::chat::{ConvHandle, Lang, Registry, ServerFrame};
use crate::ids::Token;
use crate::triage::{Level, TriageEngine};

/// Close codes used on `/ws/chat` (RFC 6455 and the 4000 private range).
pub mod close {
    /// Server going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// Not UTF-8 in a text frame.
    pub const INVALID_DATA: u16 = 1007;
    /// Policy: flooding after `rate_limited` warnings.
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Try again later (over the connection cap; fell too far behind: resume).
    pub const TRY_AGAIN: u16 = 1013;
    /// No resume frame in time.
    pub const NO_RESUME: u16 = 4001;
}

/// Frames taken from the actor's channel after the first and written with it in one flush.
const COALESCE_FRAMES: usize = 16;

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Burst of messages allowed.
    pub burst: u32,
    /// Sustained messages per second.
    pub per_second: f64,
    /// Refused messages in a row before the connection is closed (1008).
    pub strikes: u32,
    /// Ping interval; a peer silent for two intervals is dropped.
    pub ping: Duration,
    /// How long a `?resume=1` connection may take to send its `resume` frame.
    pub resume_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            burst: 10,
            per_second: 2.0,
            strikes: 30,
            ping: Duration::from_secs(20),
            resume_wait: Duration::from_secs(10),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, limits: &Limits) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * limits.per_second;
        self.tokens = (self.tokens + refill).min(limits.burst as f64);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What a citizen session needs.
pub struct CitizenCtx {
    /// Finds and creates conversations.
    pub registry: Registry,
    /// For triaging over-limit messages.
    pub engine: std::sync::Arc<TriageEngine>,
    /// The widget's language.
    pub lang: Lang,
    /// Whether the client will send a `resume` frame first.
    pub resume: bool,
    /// Limits.
    pub limits: Limits,
    /// Turns true on shutdown.
    pub shutdown: watch::Receiver<bool>,
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn text(frame: &ServerFrame) -> Message {
    Message::Text(frame.to_json().into())
}

/// An `error` frame. `seq` is the last seq the client was sent, so it never decreases.
fn error(seq: u64, code: &'static str, message: &str, id: Option<String>) -> Message {
    text(&ServerFrame::Error {
        seq,
        code,
        message: message.into(),
        id,
    })
}

/// Runs one citizen connection to the end.
pub async fn run<S, R>(mut sink: S, mut stream: R, ctx: CitizenCtx)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(CITIZEN_CHANNEL);

    // Attach: resume an earlier conversation, or start a new one.
    let mut handle: Option<ConvHandle> = None;
    if ctx.resume {
        match tokio::time::timeout(ctx.limits.resume_wait, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match CitizenFrame::decode(t.as_str()) {
                Ok(CitizenFrame::Resume {
                    conversation_id,
                    token,
                    last_seq,
                }) => {
                    if let Some(h) = ctx.registry.get(conversation_id).await {
                        let token = Token::from_client(&token);
                        if h.attach(out_tx.clone(), Some((token, last_seq)))
                            .await
                            .is_ok()
                        {
                            handle = Some(h);
                        }
                    }
                    if handle.is_none() {
                        let _ = sink
                            .send(error(
                                0,
                                "resume_failed",
                                "이전 대화를 이어갈 수 없어 새 대화를 시작합니다. / Could not resume; starting a new conversation.",
                                None,
                            ))
                            .await;
                    }
                }
                _ => {
                    let _ = sink
                        .send(error(
                            0,
                            "resume_expected",
                            "expected a resume frame first",
                            None,
                        ))
                        .await;
                }
            },
            _ => {
                let _ = sink
                    .send(close_frame(close::NO_RESUME, "no resume frame"))
                    .await;
                return;
            }
        }
    }
    let handle = match handle {
        Some(h) => h,
        None => match ctx.registry.create(ctx.lang).await {
            Some(h) if h.attach(out_tx.clone(), None).await.is_ok() => h,
            _ => {
                let _ = sink
                    .send(error(
                                0,
                                "unavailable",
                        "지금 연결할 수 없어요. 급하면 109(24시간)로 전화해 주세요. / We cannot connect right now. If it is urgent, call 109 (24h).",
                        None,
                    ))
                    .await;
                let _ = sink
                    .send(close_frame(close::TRY_AGAIN, "unavailable"))
                    .await;
                return;
            }
        },
    };
    drop(out_tx);

    let limits = ctx.limits;
    let mut bucket = Bucket {
        tokens: limits.burst as f64,
        at: Instant::now(),
    };
    let mut strikes = 0u32;
    let mut ping = tokio::time::interval(limits.ping);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut shutdown = ctx.shutdown.clone();
    let mut closing: Option<(u16, &'static str)> = None;
    // The highest seq sent so far (status frames reuse it).
    let mut seq = 0u64;

    loop {
        tokio::select! {
            incoming = stream.next() => {
                let msg = match incoming {
                    None => break,
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        let (code, why) = classify(&e);
                        closing = Some((code, why));
                        break;
                    }
                };
                last_heard = Instant::now();
                let decoded = match &msg {
                    Message::Text(t) => Some(CitizenFrame::decode(t.as_str())),
                    Message::Binary(_) => None,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                // Every frame spends a token, well-formed or not: a flood of bad frames is
                // throttled and closed like a flood of messages. The crisis path never is:
                // a message that reads as high risk or above passes with an empty bucket.
                let urgent = |d: &Option<Result<CitizenFrame, _>>| {
                    matches!(d, Some(Ok(CitizenFrame::Message { text, .. }))
                        if ctx.engine.assess(text).level >= Level::High)
                };
                if !bucket.take(&limits) && !urgent(&decoded) {
                    strikes += 1;
                    if strikes > limits.strikes {
                        closing = Some((close::POLICY, "too many frames"));
                        break;
                    }
                    let id = match &decoded {
                        Some(Ok(CitizenFrame::Message { id, .. })) => Some(id.clone()),
                        _ => None,
                    };
                    let _ = sink
                        .send(error(
                            seq,
                            "rate_limited",
                            "메시지를 너무 빨리 보내고 있어요. 잠시 후 다시 보내 주세요. 위급하면 109(자살예방상담, 24시간) 또는 119로 전화하세요. / You are sending messages too fast; please wait a moment. In a crisis call 109 (24h) or 119.",
                            id,
                        ))
                        .await;
                    continue;
                }
                strikes = 0;
                let Some(decoded) = decoded else {
                    let _ = sink
                        .send(error(seq, "binary_not_supported", "send JSON text frames", None))
                        .await;
                    continue;
                };
                let frame = match decoded {
                    Ok(f) => f,
                    Err(e) => {
                        let id = match &msg {
                            Message::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str())
                                .ok()
                                .and_then(|v| v.get("id")?.as_str().map(str::to_owned)),
                            _ => None,
                        };
                        if sink.send(error(seq, e.code(), &e.to_string(), id)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let sent = match frame {
                    CitizenFrame::Message { id, text } => handle.message(id, text).await,
                    CitizenFrame::RequestHuman => handle.request_human().await,
                    CitizenFrame::Close => handle.close().await,
                    CitizenFrame::Rating { value } => handle.rating(value).await,
                    CitizenFrame::Resume { .. } => {
                        let _ = sink
                            .send(error(
                                seq,
                                "bad_state",
                                "resume is only accepted as the first frame",
                                None,
                            ))
                            .await;
                        Ok(())
                    }
                };
                if sent.is_err() {
                    closing = Some((close::TRY_AGAIN, "conversation moved; resume"));
                    break;
                }
            }
            frame = out_rx.recv() => {
                match frame {
                    Some(f) => {
                        seq = seq.max(f.seq());
                        // Whatever else the actor already queued (an ack is followed at once
                        // by its bot reply) goes out in the same write: one syscall and one
                        // TCP segment instead of one per frame.
                        let mut sent = sink.feed(text(&f)).await.is_ok();
                        let mut more = 0;
                        while sent && more < COALESCE_FRAMES {
                            let Ok(f) = out_rx.try_recv() else { break };
                            seq = seq.max(f.seq());
                            sent = sink.feed(text(&f)).await.is_ok();
                            more += 1;
                        }
                        if !sent || sink.flush().await.is_err() {
                            break;
                        }
                    }
                    None => {
                        // The actor let go of us (we fell behind, or another socket resumed).
                        closing = Some((close::TRY_AGAIN, "resume"));
                        break;
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > limits.ping * 2 {
                    closing = Some((close::GOING_AWAY, "no response"));
                        break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            _ = async { shutdown.wait_for(|s| *s).await.is_ok() } => {
                closing = Some((close::GOING_AWAY, "server restarting; reconnect"));
                        break;
            }
        }
    }
    if let Some((code, why)) = closing {
        // Acks already on their way still reach the client before the close.
        let pending = async {
            while let Ok(Some(f)) =
                tokio::time::timeout(Duration::from_millis(200), out_rx.recv()).await
            {
                if sink.send(text(&f)).await.is_err() {
                    break;
                }
            }
        };
        pending.await;
        close_and_drain(&mut sink, &mut stream, code, why).await;
    }
}

/// Sends a close frame, then reads (and drops) what the client still had in flight until
/// its own close arrives, for at most 2 s. Closing the socket with unread data in it would
/// make the kernel reset the connection, and the client would never see the close code.
async fn close_and_drain<S, R>(sink: &mut S, stream: &mut R, code: u16, why: &str)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    if sink.send(close_frame(code, why)).await.is_err() {
        return;
    }
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

fn classify(e: &axum::Error) -> (u16, &'static str) {
    let text = format!("{e:?}").to_ascii_lowercase();
    if text.contains("utf") {
        (close::INVALID_DATA, "text frames must be UTF-8")
    } else if text.contains("capacity") || text.contains("too long") || text.contains("too big") {
        (close::TOO_BIG, "frame too large")
    } else {
        (1002, "protocol error")
    }
}

#[cfg(test)]
mod tests {
    //! A session fed through channels, as a socket would feed it: no network, the real
    //! actors (registry, conversation, queue, an in-memory store).

    use std::path::Path;
    use std::sync::Arc;

    use futures::channel::mpsc as fmpsc;
    use serde_json::Value;

    use super::*;
    use crate::chat::ChatDeps;
    use crate::conversation::{IdlePolicy, ScreenFlow};
    use crate::queue::{QueueConfig, QueueHandle};
    use crate::store::{MemoryBackend, Store};
    use crate::transcript::Keyring;

    async fn session() -> (
        fmpsc::Sender<Result<Message, axum::Error>>,
        fmpsc::Receiver<Message>,
        watch::Sender<bool>,
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let engine = Arc::new(
            TriageEngine::load(&root.join("escalation-rules.toml"), &root.join("intents")).unwrap(),
        );
        let content = Arc::new(crate::content::Content::load(&root.join("intents")).unwrap());
        let store = Store::new(Arc::new(MemoryBackend::new())).unwrap();
        let queue = QueueHandle::spawn(QueueConfig::new(engine.rule_set().levels));
        let registry = Registry::spawn(Arc::new(ChatDeps {
            engine: Arc::clone(&engine),
            responder: content.clone(),
            flow: ScreenFlow::from_screener(content.screener()),
            store: store.clone(),
            queue,
            idle: IdlePolicy::default(),
            metrics: Arc::default(),
            keyring: Keyring::new(crate::crypto::Key::random(), store.clone()),
            audit: crate::audit::AuditLog::open(store).await.unwrap(),
        }));
        let (stop, shutdown) = watch::channel(false);
        let (to_session, from_client) = fmpsc::channel(16);
        let (to_client, from_session) = fmpsc::channel(64);
        tokio::spawn(run(
            to_client,
            from_client,
            CitizenCtx {
                registry,
                engine,
                lang: Lang::Ko,
                resume: false,
                limits: Limits::default(),
                shutdown,
            },
        ));
        (to_session, from_session, stop)
    }

    async fn frame(rx: &mut fmpsc::Receiver<Message>) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), rx.next())
                .await
                .expect("a frame")
                .expect("session open");
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    fn say(text: &str, id: &str) -> Result<Message, axum::Error> {
        Ok(Message::Text(
            serde_json::json!({"type": "message", "id": id, "text": text})
                .to_string()
                .into(),
        ))
    }

    #[tokio::test]
    async fn a_session_welcomes_acks_after_storing_and_answers() {
        let (mut tx, mut rx, _stop) = session().await;
        let welcome = frame(&mut rx).await;
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["resumed"], false);
        tx.send(say("요즘 너무 외로워요", "c1")).await.unwrap();
        assert_eq!(
            frame(&mut rx).await,
            serde_json::json!({"type": "ack", "id": "c1", "seq": 1})
        );
        let bot = frame(&mut rx).await;
        assert_eq!(bot["type"], "bot");
        assert!(bot["seq"].as_u64().unwrap() > 1);
        // Risk: the safety words with 109, then the queue.
        tx.send(say("죽고 싶어요", "c2")).await.unwrap();
        let mut seen = Vec::new();
        loop {
            let f = frame(&mut rx).await;
            let done = f["type"] == "queue";
            seen.push(f);
            if done {
                break;
            }
        }
        assert_eq!(seen[0]["type"], "ack");
        assert!(
            seen.iter()
                .any(|f| f["type"] == "bot" && f["text"].as_str().unwrap().contains("109"))
        );
        // A frame that is not JSON gets a stable error code, and the session goes on.
        tx.send(Ok(Message::Text("{".into()))).await.unwrap();
        let e = frame(&mut rx).await;
        assert_eq!(e["type"], "error");
        assert!(e["code"].as_str().is_some_and(|c| !c.is_empty()));
    }

    #[tokio::test]
    async fn shutdown_closes_the_session_with_going_away() {
        let (_tx, mut rx, stop) = session().await;
        assert_eq!(frame(&mut rx).await["type"], "welcome");
        stop.send_replace(true);
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.next()).await {
                Ok(Some(Message::Close(c))) => break c,
                Ok(Some(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        };
        assert_eq!(close.map(|c| c.code), Some(close::GOING_AWAY));
    }
}
