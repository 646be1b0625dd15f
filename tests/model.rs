//! A model-based property test of the whole service: random sequences of what citizens,
//! counselors and a supervisor do, run against the real server over websockets, with the
//! invariants checked after every step and at the end:
//!
//! * at most one counselor holds a conversation;
//! * the bot never speaks while a counselor is in the conversation, and while waiting every
//!   message gets an answer (a holding line or the safety answer);
//! * acknowledged messages are never lost or reordered;
//! * a supervisor never sends to a conversation without taking it over;
//! * no one reads another's conversation (counselors only what they held; a citizen only
//!   with their own token).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
enum Op {
    Say(usize),
    Risky(usize),
    RequestHuman(usize),
    Reconnect(usize),
    Claim(usize, usize),
    CounselorSay(usize, usize),
    CounselorClose(usize, usize),
    ToQueue(usize, usize),
    CounselorRead(usize, usize),
    SupervisorRead(usize),
    WrongToken(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0usize..2;
    let k = 0usize..2;
    prop_oneof![
        3 => c.clone().prop_map(Op::Say),
        1 => c.clone().prop_map(Op::Risky),
        1 => c.clone().prop_map(Op::RequestHuman),
        1 => c.clone().prop_map(Op::Reconnect),
        2 => (k.clone(), c.clone()).prop_map(|(k, c)| Op::Claim(k, c)),
        2 => (k.clone(), c.clone()).prop_map(|(k, c)| Op::CounselorSay(k, c)),
        1 => (k.clone(), c.clone()).prop_map(|(k, c)| Op::CounselorClose(k, c)),
        1 => (k.clone(), c.clone()).prop_map(|(k, c)| Op::ToQueue(k, c)),
        1 => (k, c.clone()).prop_map(|(k, c)| Op::CounselorRead(k, c)),
        1 => c.clone().prop_map(Op::SupervisorRead),
        1 => c.prop_map(Op::WrongToken),
    ]
}

struct Citizen {
    ws: Ws,
    conv: String,
    token: String,
    last_seq: u64,
    /// Every frame received, in order.
    log: Vec<Value>,
    acked: Vec<(String, u64)>,
    sent: usize,
    handed_off: bool,
    closed: bool,
}

struct Counselor {
    name: &'static str,
    token: String,
    ws: Ws,
}

/// Model state of one conversation.
#[derive(Default)]
struct Model {
    holder: Option<usize>,
    ever_held: HashSet<usize>,
}

async fn frame(ws: &mut Ws) -> Option<Value> {
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str()).ok(),
        Ok(Some(Ok(_))) => Some(Value::Null),
        _ => None,
    }
}

impl Citizen {
    fn note(&mut self, v: Value) {
        if let Some(s) = v["seq"].as_u64() {
            self.last_seq = self.last_seq.max(s);
        }
        if v["type"] == "queue" {
            self.handed_off = true;
        }
        if v["type"] == "closed" {
            self.closed = true;
        }
        if v["type"] == "welcome" {
            self.token = v["token"].as_str().unwrap().to_owned();
        }
        self.log.push(v);
    }

    /// Sends a message and waits for its ack or error. Returns whether it was acked.
    async fn say(&mut self, text: &str) -> bool {
        self.sent += 1;
        let id = format!("m{}", self.sent);
        send(
            &mut self.ws,
            json!({"type": "message", "id": id, "text": text}),
        )
        .await;
        loop {
            let Some(v) = frame(&mut self.ws).await else {
                panic!("no ack or error for {id}");
            };
            let done = (v["type"] == "ack" || v["type"] == "error") && v["id"] == id.as_str();
            if v["type"] == "ack" && v["id"] == id.as_str() {
                self.acked.push((id.clone(), v["seq"].as_u64().unwrap()));
            }
            let acked = v["type"] == "ack";
            self.note(v);
            if done {
                return acked;
            }
        }
    }

    /// Reads whatever arrives within `wait`.
    async fn drain(&mut self, wait: Duration) {
        while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(wait, self.ws.next()).await
        {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            self.note(v);
        }
    }
}

async fn counselor_wait(c: &mut Counselor, conv: &str, ok: &[&str]) -> Result<Value, Value> {
    loop {
        let Some(v) = frame(&mut c.ws).await else {
            panic!("{}: no answer about {conv}", c.name);
        };
        if v["conversation_id"] == conv {
            if v["type"] == "error" {
                return Err(v);
            }
            if ok.contains(&v["type"].as_str().unwrap_or("")) {
                return Ok(v);
            }
        }
    }
}

/// From the stored transcript (which records every state change before what is said in
/// the new state): the bot never speaks while a counselor is in the conversation, and while
/// waiting every citizen message is answered (a holding line or the safety answer) before
/// the next one.
fn check_bot_and_waiting(transcript: &Value) {
    let mut state = "bot";
    let mut unanswered: Option<u64> = None;
    for e in transcript["events"].as_array().unwrap() {
        let seq = e["seq"].as_u64().unwrap();
        match e["type"].as_str().unwrap() {
            "state" => {
                state = if e["to"] == "with_counselor" {
                    "with_counselor"
                } else {
                    match e["to"].as_str().unwrap() {
                        "queued" => "queued",
                        "closed" => "closed",
                        _ => "other",
                    }
                }
            }
            "bot" => {
                assert_ne!(state, "with_counselor", "bot spoke with a counselor: {e}");
                unanswered = None;
            }
            "safety" => unanswered = None,
            "citizen" => {
                assert_eq!(
                    unanswered, None,
                    "a message while waiting got no answer (seq {seq})"
                );
                if state == "queued" {
                    unanswered = Some(seq);
                }
            }
            _ => {}
        }
    }
}

async fn run(ops: Vec<Op>) {
    let app = spawn().await;
    let mut citizens = Vec::new();
    for _ in 0..2 {
        let mut ws = app.citizen("").await;
        let w = next(&mut ws).await;
        citizens.push(Citizen {
            conv: w["conversation_id"].as_str().unwrap().to_owned(),
            token: w["token"].as_str().unwrap().to_owned(),
            last_seq: 0,
            ws,
            log: vec![w],
            acked: Vec::new(),
            sent: 0,
            handed_off: false,
            closed: false,
        });
    }
    // Make both conversations exist in the store.
    for c in &mut citizens {
        assert!(c.say("안녕하세요").await);
    }
    let mut counselors = Vec::new();
    for name in ["kim", "lee"] {
        let token = app.login(name).await;
        let mut ws = app.counselor(&token).await;
        assert_eq!(next(&mut ws).await["type"], "hello");
        counselors.push(Counselor { name, token, ws });
    }
    let boss = app.login("boss").await;
    let mut model: Vec<Model> = (0..2).map(|_| Model::default()).collect();

    for op in ops {
        match op {
            Op::Say(c) => {
                let acked = citizens[c].say("오늘 좀 외로웠어요").await;
                assert_eq!(acked, !citizens[c].closed, "{op:?}");
            }
            Op::Risky(c) => {
                let acked = citizens[c].say("요즘 너무 힘들어서 죽고 싶어요").await;
                assert_eq!(acked, !citizens[c].closed);
                if acked && model[c].holder.is_none() {
                    citizens[c].drain(Duration::from_millis(150)).await;
                }
            }
            Op::RequestHuman(c) => {
                send(&mut citizens[c].ws, json!({"type": "request_human"})).await;
                citizens[c].drain(Duration::from_millis(150)).await;
            }
            Op::Reconnect(c) => {
                let cz = &mut citizens[c];
                cz.drain(Duration::from_millis(50)).await;
                let mut ws = app.citizen("?resume=1").await;
                send(
                    &mut ws,
                    json!({"type": "resume", "conversation_id": cz.conv, "token": cz.token, "last_seq": cz.last_seq}),
                )
                .await;
                cz.ws = ws;
                let w = next(&mut cz.ws).await;
                assert_eq!(w["type"], "welcome", "{w}");
                assert_eq!(w["resumed"], true);
                cz.note(w);
                cz.drain(Duration::from_millis(100)).await;
            }
            Op::Claim(k, c) => {
                let conv = citizens[c].conv.clone();
                citizens[c].drain(Duration::from_millis(50)).await;
                let queued = citizens[c].handed_off && !citizens[c].closed;
                send(
                    &mut counselors[k].ws,
                    json!({"type": "claim", "conversation_id": conv}),
                )
                .await;
                let r = counselor_wait(&mut counselors[k], &conv, &["claimed"]).await;
                let expect = queued && (model[c].holder.is_none() || model[c].holder == Some(k));
                assert_eq!(
                    r.is_ok(),
                    expect,
                    "{op:?} holder {:?}: {r:?}",
                    model[c].holder
                );
                if r.is_ok() {
                    model[c].holder = Some(k);
                    model[c].ever_held.insert(k);
                }
            }
            Op::CounselorSay(k, c) => {
                let conv = citizens[c].conv.clone();
                let text = format!("{}의 말", counselors[k].name);
                send(
                    &mut counselors[k].ws,
                    json!({"type": "message", "conversation_id": conv, "text": text}),
                )
                .await;
                let r = counselor_wait(&mut counselors[k], &conv, &["event"]).await;
                let mine = model[c].holder == Some(k) && !citizens[c].closed;
                assert_eq!(r.is_ok(), mine, "{op:?}: {r:?}");
            }
            Op::CounselorClose(k, c) => {
                let conv = citizens[c].conv.clone();
                send(
                    &mut counselors[k].ws,
                    json!({"type": "close", "conversation_id": conv, "outcome": "resolved"}),
                )
                .await;
                let r = counselor_wait(&mut counselors[k], &conv, &["released"]).await;
                let mine = model[c].holder == Some(k) && !citizens[c].closed;
                assert_eq!(r.is_ok(), mine, "{op:?}: {r:?}");
                if r.is_ok() {
                    model[c].holder = None;
                    citizens[c].drain(Duration::from_millis(150)).await;
                    assert!(citizens[c].closed, "citizen told of the close");
                }
            }
            Op::ToQueue(k, c) => {
                let conv = citizens[c].conv.clone();
                send(
                    &mut counselors[k].ws,
                    json!({"type": "transfer", "conversation_id": conv}),
                )
                .await;
                let r = counselor_wait(&mut counselors[k], &conv, &["released"]).await;
                let mine = model[c].holder == Some(k) && !citizens[c].closed;
                assert_eq!(r.is_ok(), mine, "{op:?}: {r:?}");
                if r.is_ok() {
                    model[c].holder = None;
                }
            }
            Op::CounselorRead(k, c) => {
                let conv = citizens[c].conv.clone();
                let (status, _) = app
                    .get_json(&format!("/api/conversations/{conv}"), &counselors[k].token)
                    .await;
                let expect = if model[c].ever_held.contains(&k) {
                    200
                } else {
                    403
                };
                assert_eq!(status, expect, "{op:?}");
            }
            Op::SupervisorRead(c) => {
                let conv = citizens[c].conv.clone();
                let (status, t) = app
                    .get_json(&format!("/api/conversations/{conv}"), &boss)
                    .await;
                assert_eq!(status, 200);
                check_acked(&citizens[c], &t);
                // A supervisor opens the staff socket (to monitor), but writes to no
                // conversation they have not taken over (tests/monitor.rs takes over).
                let mut ws = app.counselor(&boss).await;
                assert_eq!(next(&mut ws).await["type"], "hello");
                send(
                    &mut ws,
                    json!({"type": "message", "conversation_id": conv, "text": "관리자"}),
                )
                .await;
                let e = until(&mut ws, "error").await.pop().unwrap();
                assert!(
                    e["code"] == "not_yours" || e["code"] == "gone",
                    "a supervisor wrote without taking over: {e}"
                );
            }
            Op::WrongToken(c) => {
                let other = &citizens[1 - c];
                let mut ws = app.citizen("?resume=1").await;
                send(
                    &mut ws,
                    json!({"type": "resume", "conversation_id": citizens[c].conv, "token": other.token, "last_seq": 0}),
                )
                .await;
                let e = next(&mut ws).await;
                assert_eq!(e["code"], "resume_failed");
                let w = next(&mut ws).await;
                assert_ne!(w["conversation_id"], citizens[c].conv.as_str());
            }
        }
        // At most one counselor per conversation, as the server tells it.
        for m in &model {
            assert!(m.holder.is_none() || m.ever_held.contains(&m.holder.unwrap()));
        }
    }

    for c in &mut citizens {
        c.drain(Duration::from_millis(200)).await;
        let (_, t) = app
            .get_json(&format!("/api/conversations/{}", c.conv), &boss)
            .await;
        check_acked(c, &t);
        check_bot_and_waiting(&t);
        let joins: Vec<&Value> = t["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["type"] == "counselor_joined"
                    || e["type"] == "transferred"
                    || e["type"] == "closed"
            })
            .collect();
        // Joins and releases alternate: never two counselors at once.
        let mut holding = false;
        for e in joins {
            match e["type"].as_str().unwrap() {
                "counselor_joined" => {
                    assert!(!holding, "two counselors at once");
                    holding = true;
                }
                _ => holding = false,
            }
        }
    }
    app.stop().await;
}

fn check_acked(c: &Citizen, transcript: &Value) {
    let stored: Vec<(String, u64)> = transcript["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "citizen")
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    // Every acked message is stored with its seq, in the order it was acked.
    let positions: Vec<usize> = c
        .acked
        .iter()
        .map(|a| {
            stored
                .iter()
                .position(|s| s == a)
                .unwrap_or_else(|| panic!("acked {a:?} missing"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "reordered");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_service_keeps_its_promises(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(ops));
    }
}
