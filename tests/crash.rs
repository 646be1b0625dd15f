//! Crash durability: `kill -9` the real server again and again while many citizens chat,
//! and prove after every restart that every acknowledged message is in the transcript, in
//! order, exactly once, and that the store reopens.
//!
//! Short form (part of `./scripts/test`): a few rounds. Long form:
//!
//! ```text
//! IEUM_CRASH_ROUNDS=100 IEUM_CRASH_CLIENTS=32 cargo test --release --test crash -- --nocapture
//! ```
//!
//! Each round: start `ieum serve` as a child process; clients connect (resuming their
//! conversations by token, as the widget does) and send messages one after another, noting
//! every `ack`; after a random 0.2–1.5 s the server is killed with SIGKILL; then the data
//! directory is opened in this process and every acknowledged message is looked up.
//! With `IEUM_TEST_STORE=postgres` the server runs on its database, opened here alike.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Ws, free_port, send, serve_child};
use futures::StreamExt;
use ieum::conversation::EventBody;
use ieum::ids::ConversationId;
use ieum::transcript::{self, Keyring};
use rand::Rng;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default, Clone)]
struct Client {
    conversation: Option<(String, String, u64)>,
    /// Acknowledged messages per conversation: (client id, seq).
    acked: HashMap<String, Vec<(String, u64)>>,
    sent: u64,
}

const LINES: [&str; 6] = [
    "안녕하세요",
    "요즘 잠이 잘 안 와요",
    "회사 일이 너무 많아서 지쳐요",
    "혼자 밥 먹는 게 익숙해졌어요",
    "주말에 뭐 하면 좋을까요",
    "I feel a bit lonely today",
];

async fn connect(port: u16, resume: bool) -> Option<Ws> {
    let url = format!(
        "ws://127.0.0.1:{port}/ws/chat{}",
        if resume { "?resume=1" } else { "" }
    );
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).ok()?;
    req.headers_mut()
        .insert("Origin", format!("http://127.0.0.1:{port}").parse().ok()?);
    tokio_tungstenite::connect_async(req)
        .await
        .ok()
        .map(|x| x.0)
}

/// One client until its connection dies. Records every ack.
async fn chat(port: u16, me: usize, state: Arc<Mutex<Client>>) {
    let resume = state.lock().await.conversation.clone();
    let Some(mut ws) = connect(port, resume.is_some()).await else {
        return;
    };
    if let Some((conv, token, last_seq)) = &resume {
        send(
            &mut ws,
            json!({"type": "resume", "conversation_id": conv, "token": token, "last_seq": last_seq}),
        )
        .await;
    }
    loop {
        // Read until welcome (a failed resume sends an error, then a new welcome).
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        if v["type"] == "welcome" {
            let mut s = state.lock().await;
            s.conversation = Some((
                v["conversation_id"].as_str().unwrap().to_owned(),
                v["token"].as_str().unwrap().to_owned(),
                v["seq"].as_u64().unwrap(),
            ));
            break;
        }
    }
    loop {
        let (id, conv) = {
            let mut s = state.lock().await;
            s.sent += 1;
            (
                format!("c{me}-{}", s.sent),
                s.conversation.as_ref().unwrap().0.clone(),
            )
        };
        let text = LINES[(id.len() + me) % LINES.len()];
        if futures::SinkExt::send(
            &mut ws,
            Message::Text(
                json!({"type": "message", "id": id, "text": text})
                    .to_string()
                    .into(),
            ),
        )
        .await
        .is_err()
        {
            return;
        }
        // Wait for this message's ack (other frames may come first). Over the per-client
        // rate limit the server says `rate_limited` and does not take the message: wait
        // and send it again, as the widget does.
        loop {
            let Some(Ok(msg)) = ws.next().await else {
                return;
            };
            let Message::Text(t) = msg else { continue };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if let Some(seq) = v["seq"].as_u64() {
                if let Some(c) = state.lock().await.conversation.as_mut() {
                    c.2 = c.2.max(seq);
                }
            }
            if v["type"] == "error" && v["id"] == id.as_str() {
                tokio::time::sleep(Duration::from_millis(600)).await;
                let again = json!({"type": "message", "id": id, "text": text}).to_string();
                if futures::SinkExt::send(&mut ws, Message::Text(again.into()))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            if v["type"] == "ack" && v["id"] == id.as_str() {
                let seq = v["seq"].as_u64().unwrap();
                state
                    .lock()
                    .await
                    .acked
                    .entry(conv.clone())
                    .or_default()
                    .push((id.clone(), seq));
                break;
            }
        }
        let pause = rand::rng().random_range(0..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Opens the data directory in this process and checks every acknowledged message.
async fn verify(data: &Path, clients: &[Arc<Mutex<Client>>]) -> (usize, usize) {
    let store = common::open_store(data).await;
    let master = ieum::crypto::load_master_key(None, &data.join("master.key")).unwrap();
    let keyring = Keyring::new(master, store.clone());
    let mut checked = 0;
    let mut conversations = 0;
    for c in clients {
        let c = c.lock().await;
        for (conv, acked) in &c.acked {
            conversations += 1;
            let id = ConversationId::parse(conv).unwrap();
            let key = keyring
                .key(id)
                .await
                .unwrap()
                .expect("a conversation with acked messages has its key");
            let meta = transcript::load_meta(&store, id, &key)
                .await
                .unwrap()
                .expect("a conversation with acked messages has its record");
            let events = transcript::events_after(&store, id, &key, 0, meta.last_seq)
                .await
                .unwrap();
            let stored: Vec<(String, u64)> = events
                .iter()
                .filter_map(|e| match &e.body {
                    EventBody::Citizen { id, .. } => Some((id.clone(), e.seq)),
                    _ => None,
                })
                .collect();
            let unique: HashSet<&String> = stored.iter().map(|(id, _)| id).collect();
            assert_eq!(
                unique.len(),
                stored.len(),
                "a message stored twice in {conv}"
            );
            assert!(
                events.windows(2).all(|w| w[0].seq < w[1].seq),
                "events out of order in {conv}"
            );
            for a in acked {
                assert!(
                    stored.contains(a),
                    "acknowledged message {a:?} lost from {conv} after kill -9"
                );
                checked += 1;
            }
        }
    }
    drop(keyring);
    store.close().await.unwrap();
    (checked, conversations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9() {
    let rounds: usize = std::env::var("IEUM_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let n_clients: usize = std::env::var("IEUM_CRASH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let clients: Vec<Arc<Mutex<Client>>> = (0..n_clients)
        .map(|_| Arc::new(Mutex::new(Client::default())))
        .collect();
    let started = Instant::now();
    let mut kills = 0;
    for round in 0..rounds {
        let port = free_port();
        let mut child = serve_child(port, &data, |_| {}).await;
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| tokio::spawn(chat(port, i, c.clone())))
            .collect();
        let wait = rand::rng().random_range(200..1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let (checked, conversations) = verify(&data, &clients).await;
        println!(
            "round {round}: killed after {wait} ms; {checked} acknowledged messages in {conversations} conversations all present"
        );
    }
    let (acked, conversations) = verify(&data, &clients).await;
    assert!(acked > 0, "the clients got acks");
    println!(
        "crash test: {kills} kills, {acked} messages acknowledged in {conversations} conversations, lost = 0 ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}
