//! `kill -9` during casework writes loses nothing acknowledged: notes, follow-up attempts,
//! referral status changes and safety-plan items are written by four writers at once while the real server
//! is killed with SIGKILL at a random moment, several times; after each kill the data
//! directory (with `IEUM_TEST_STORE=postgres`, its database) is opened in this process and
//! every change the server answered `200`/`201` for must be there.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, next, send, serve_child};
use ieum::casework::{self, ItemId};
use ieum::ids::ConversationId;
use ieum::transcript::Keyring;
use rand::Rng;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

/// One HTTP request that tolerates the server dying: `None` unless a full answer came.
async fn try_request(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> Option<(u16, Value)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let body = body.to_string();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some((status, serde_json::from_str(body).ok()?))
}

/// Kills the server if the test fails half-way, so no orphan holds the data directory.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default)]
struct Acked {
    notes: Vec<String>,
    attempts: usize,
    statuses: usize,
    /// Items of step 2 of the safety plan the counselor got back in a `safety_plan` frame
    /// (sent only after the item was stored).
    plan_items: usize,
}

/// The counselor adds safety-plan items (step 2) one after another; each `safety_plan`
/// frame that comes back counts as the acknowledgement of what it shows.
async fn plan_writer(port: u16, token: String, conv: String, acked: Arc<Mutex<Acked>>) {
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{port}/ws/counselor"),
    )
    .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let c = tokio_tungstenite::connect_async(req).await;
    let Ok((mut k, _)) = c else {
        return;
    };
    // Held already after a restart, or claimed now.
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    for i in 0.. {
        let text = format!("plan {i}");
        if futures::SinkExt::send(
            &mut k,
            tokio_tungstenite::tungstenite::Message::Text(
                json!({"type": "plan_item", "conversation_id": conv, "step": 2, "text": text})
                    .to_string()
                    .into(),
            ),
        )
        .await
        .is_err()
        {
            return;
        }
        loop {
            let frame =
                tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut k))
                    .await;
            let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) = frame else {
                match frame {
                    Ok(Some(Ok(_))) => continue,
                    _ => return,
                }
            };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "safety_plan" && v["conversation_id"] == conv.as_str() {
                let items = v["steps"][1]["items"].as_array().unwrap();
                if items.iter().any(|x| x == text.as_str()) {
                    let mut a = acked.lock().await;
                    a.plan_items = a.plan_items.max(items.len());
                    break;
                }
            }
        }
    }
}

/// A session token for `user`.
async fn login(port: u16, user: &str) -> String {
    let (s, v) = try_request(
        port,
        "POST",
        "/api/login",
        "-",
        json!({"username": user, "password": "a long password"}),
    )
    .await
    .expect("login answers");
    assert_eq!(s, 200, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

async fn writer(
    port: u16,
    token: String,
    what: u8,
    conv: String,
    followup: String,
    referral: String,
    acked: Arc<Mutex<Acked>>,
) {
    for i in 0.. {
        let answer = match what {
            0 => {
                try_request(
                    port,
                    "POST",
                    &format!("/api/conversations/{conv}/notes"),
                    &token,
                    json!({"text": format!("note {i}")}),
                )
                .await
            }
            1 => {
                try_request(
                    port,
                    "POST",
                    &format!("/api/followups/{followup}/attempts"),
                    &token,
                    json!({"outcome": "no_answer"}),
                )
                .await
            }
            _ => {
                try_request(
                    port,
                    "PATCH",
                    &format!("/api/referrals/{referral}"),
                    &token,
                    json!({"status": "connected"}),
                )
                .await
            }
        };
        let Some((status, v)) = answer else { return };
        assert!(status == 200 || status == 201, "{status} {v}");
        let mut a = acked.lock().await;
        match what {
            0 => a.notes.push(v["id"].as_str().unwrap().to_owned()),
            1 => a.attempts += 1,
            _ => a.statuses += 1,
        }
    }
}

async fn verify(data: &Path, conv: &str, followup: &str, referral: &str, acked: &Acked) {
    let store = common::open_store(data).await;
    let master = ieum::crypto::load_master_key(None, &data.join("master.key")).unwrap();
    let keyring = Keyring::new(master, store.clone());
    let id = ConversationId::parse(conv).unwrap();
    let key = keyring.key(id).await.unwrap().expect("the key is there");
    let notes: Vec<String> = casework::notes(&store, &key, id)
        .await
        .unwrap()
        .iter()
        .map(|n| n.id.to_string())
        .collect();
    for n in &acked.notes {
        assert!(
            notes.contains(n),
            "acknowledged note {n} lost after kill -9"
        );
    }
    let f = casework::followup(&store, &key, ItemId::parse(followup).unwrap())
        .await
        .unwrap()
        .expect("the follow-up is there");
    assert!(
        f.attempts.len() >= acked.attempts,
        "acknowledged attempts lost: {} stored, {} acknowledged",
        f.attempts.len(),
        acked.attempts
    );
    let r = casework::referral(&store, &key, ItemId::parse(referral).unwrap())
        .await
        .unwrap()
        .expect("the referral is there");
    // The first status is `sent`, written with the referral.
    assert!(
        r.history.len() > acked.statuses,
        "acknowledged status changes lost: {} stored, {} acknowledged",
        r.history.len() - 1,
        acked.statuses
    );
    let meta = ieum::transcript::load_meta(&store, id, &key)
        .await
        .unwrap()
        .unwrap();
    let events = ieum::transcript::events_after(&store, id, &key, 0, meta.last_seq)
        .await
        .unwrap();
    let plan = ieum::conversation::SafetyPlan::fold(events.iter());
    assert!(
        plan.items[1].len() >= acked.plan_items,
        "acknowledged plan items lost: {} stored, {} acknowledged",
        plan.items[1].len(),
        acked.plan_items
    );
    drop(keyring);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_casework_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        std::fs::create_dir_all(&data).unwrap();
        let store = common::open_store(&data).await;
        ieum::auth::add_staff(
            &store,
            "boss",
            ieum::auth::Role::Supervisor,
            "a long password",
        )
        .await
        .unwrap();
        ieum::auth::add_staff(
            &store,
            "kim",
            ieum::auth::Role::Counselor,
            "a long password",
        )
        .await
        .unwrap();
        store.close().await.unwrap();
    }
    // A person at risk, waiting; a follow-up and a referral on their case.
    let port = free_port();
    let mut child = Server(serve_child(port, &data, |_| {}).await);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://127.0.0.1:{port}/ws/chat"),
    )
    .unwrap();
    req.headers_mut().insert(
        "Origin",
        format!("http://127.0.0.1:{port}").parse().unwrap(),
    );
    let (mut c, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let conv = next(&mut c).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        &mut c,
        json!({"type": "message", "id": "m1", "text": "죽고 싶어요"}),
    )
    .await;
    common::until(&mut c, "queue").await;
    let token = login(port, "boss").await;
    let (s, f) = try_request(
        port,
        "POST",
        "/api/followups",
        &token,
        json!({
            "conversation": conv, "kind": "check_in", "due_at": ieum::ids::now_ms(),
            "consent": {"given": true}, "contact": {"kind": "chat_return"},
        }),
    )
    .await
    .unwrap();
    assert_eq!(s, 201, "{f}");
    let followup = f["followups"][0]["id"].as_str().unwrap().to_owned();
    let (s, r) = try_request(port, "POST", "/api/referrals", &token, json!({
        "conversation": conv, "to": {"kind": "mental_health", "name": "정신건강복지센터"}, "consent": {"given": true},
    })).await.unwrap();
    assert_eq!(s, 201, "{r}");
    let referral = r["id"].as_str().unwrap().to_owned();
    drop(c);

    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..3 {
        let port = if round == 0 { port } else { free_port() };
        if round > 0 {
            child = Server(serve_child(port, &data, |_| {}).await);
        }
        let token = login(port, "boss").await;
        // Logged in before the clock starts (a password hash takes a while in a debug
        // build): the round measures writes, not logins.
        let kim = login(port, "kim").await;
        let mut tasks: Vec<_> = (0..3u8)
            .map(|w| {
                tokio::spawn(writer(
                    port,
                    token.clone(),
                    w,
                    conv.clone(),
                    followup.clone(),
                    referral.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        tasks.push(tokio::spawn(plan_writer(
            port,
            kim,
            conv.clone(),
            acked.clone(),
        )));
        let wait = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
        }
        let a = acked.lock().await;
        verify(&data, &conv, &followup, &referral, &a).await;
        println!(
            "round {round}: killed after {wait} ms; {} notes, {} attempts, {} status changes, {} plan items acknowledged, all present",
            a.notes.len(),
            a.attempts,
            a.statuses,
            a.plan_items
        );
    }
    let a = acked.lock().await;
    assert!(
        !a.notes.is_empty() && a.attempts > 0 && a.statuses > 0 && a.plan_items > 0,
        "each writer got answers"
    );
}
