//! Supervisor monitoring (issue 19, "Casework"), black-box over real websockets: a
//! supervisor watches a live conversation silently, whispers to its counselor (never the
//! citizen: live, or replayed on resume), and takes it over (the citizen is told of the
//! change of person; the counselor is told and can no longer write). Only supervisors may;
//! each is in the audit log.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(600);
const WHISPER: &str = "위험 평가 질문을 먼저 해 보세요";

/// A citizen who asked for a person and waits: (socket, conversation id, resume token).
async fn waiting_citizen(app: &TestApp) -> (Ws, String, String) {
    let mut ws = app.citizen("").await;
    let w = next(&mut ws).await;
    assert_eq!(w["type"], "welcome");
    let conv = w["conversation_id"].as_str().unwrap().to_owned();
    let token = w["token"].as_str().unwrap().to_owned();
    send(
        &mut ws,
        json!({"type": "message", "id": "c1", "text": "너무 외로워요"}),
    )
    .await;
    until(&mut ws, "ack").await;
    send(&mut ws, json!({"type": "request_human"})).await;
    until(&mut ws, "queue").await;
    (ws, conv, token)
}

/// Frames on a staff socket until one of type `ty` about `conv` (an error about it, or
/// one about nothing in particular, ends the wait too).
async fn about(ws: &mut Ws, conv: &str, ty: &str) -> Value {
    loop {
        let v = next(ws).await;
        let mine = v["conversation_id"] == conv
            || (v["type"] == "error" && v["conversation_id"].is_null());
        if mine && (v["type"] == ty || v["type"] == "error") {
            return v;
        }
    }
}

/// The next `event` frame about `conv` whose event has type `ty`.
async fn event_of(ws: &mut Ws, conv: &str, ty: &str) -> Value {
    loop {
        let v = about(ws, conv, "event").await;
        assert_eq!(v["type"], "event", "{v}");
        if v["event"]["type"] == ty {
            return v["event"].clone();
        }
    }
}

/// A citizen with kim holding the conversation: (citizen, conversation, token, kim's socket).
async fn held_by_kim(app: &TestApp) -> (Ws, String, String, Ws) {
    let (mut citizen, conv, token) = waiting_citizen(app).await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    assert_eq!(next(&mut k).await["type"], "hello");
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    let claimed = about(&mut k, &conv, "claimed").await;
    assert_eq!(claimed["type"], "claimed", "{claimed}");
    until(&mut citizen, "counselor_joined").await;
    (citizen, conv, token, k)
}

/// A supervisor's socket on `/ws/counselor`.
async fn supervisor(app: &TestApp) -> (Ws, String) {
    let boss = app.login("boss").await;
    let mut s = app.counselor(&boss).await;
    let hello = next(&mut s).await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["username"], "boss");
    (s, boss)
}

/// Audit records (actor, role, action, conversation) as the supervisor page reads them.
async fn audit(app: &TestApp, boss: &str) -> Vec<(String, String, String, String)> {
    let (status, a) = app.get_json("/api/audit", boss).await;
    assert_eq!(status, 200);
    a["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or("").to_owned(),
                r["role"].as_str().unwrap_or("").to_owned(),
                r["action"].as_str().unwrap_or("").to_owned(),
                r["conversation_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn audited(records: &[(String, String, String, String)], action: &str, conv: &str) -> bool {
    records.iter().any(|(actor, role, a, c)| {
        actor == "boss" && role == "supervisor" && a == action && c == conv
    })
}

/// Every frame the citizen gets within `wait` (none expected to be about the supervisor).
async fn drain(ws: &mut Ws, wait: Duration) -> Vec<Value> {
    none_of(ws, "whisper", wait).await
}

#[tokio::test]
async fn a_supervisor_watches_silently_and_the_counselor_is_told() {
    let app = spawn().await;
    let (mut citizen, conv, _, mut k) = held_by_kim(&app).await;
    let (mut sup, boss) = supervisor(&app).await;

    send(&mut sup, json!({"type": "watch", "conversation": conv})).await;
    let w = about(&mut sup, &conv, "watching").await;
    assert_eq!(w["type"], "watching", "{w}");
    assert_eq!(w["holder"], "kim");
    assert_eq!(w["state"], "with_counselor");
    let events = w["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "citizen" && e["text"] == "너무 외로워요"),
        "the transcript so far: {w}"
    );
    // The counselor holding it sees that a supervisor watches.
    let told = about(&mut k, &conv, "supervisor_watching").await;
    assert_eq!(told["supervisor"], "boss", "{told}");
    // The citizen is not told: nothing at all arrives.
    let seen = drain(&mut citizen, QUIET).await;
    assert!(seen.is_empty(), "the citizen got {seen:?}");

    // Live events reach the watcher: the citizen's words and the counselor's.
    send(
        &mut citizen,
        json!({"type": "message", "id": "c2", "text": "오늘 하루가 길었어요"}),
    )
    .await;
    let e = event_of(&mut sup, &conv, "citizen").await;
    assert_eq!(e["text"], "오늘 하루가 길었어요");
    send(
        &mut k,
        json!({"type": "message", "conversation_id": conv, "text": "어떤 일이 있었는지 들려줄래요?"}),
    )
    .await;
    let e = event_of(&mut sup, &conv, "counselor").await;
    assert_eq!(e["counselor"], "kim");
    // And the citizen's own frames are what they always were: ack, then the counselor.
    let frames = until(&mut citizen, "counselor").await;
    assert!(
        frames
            .iter()
            .all(|f| f["type"] == "ack" || f["type"] == "counselor"),
        "{frames:?}"
    );

    // Unwatching tells the counselor too.
    send(&mut sup, json!({"type": "unwatch", "conversation": conv})).await;
    let left = about(&mut k, &conv, "supervisor_left").await;
    assert_eq!(left["supervisor"], "boss", "{left}");

    assert!(
        audited(&audit(&app, &boss).await, "watch", &conv),
        "watch audited"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_whisper_reaches_the_counselor_and_never_the_citizen() {
    let app = spawn().await;
    let (mut citizen, conv, token, mut k) = held_by_kim(&app).await;
    let (mut sup, boss) = supervisor(&app).await;
    send(&mut sup, json!({"type": "watch", "conversation": conv})).await;
    about(&mut sup, &conv, "watching").await;

    send(
        &mut sup,
        json!({"type": "whisper", "conversation": conv, "text": WHISPER}),
    )
    .await;
    let w = event_of(&mut k, &conv, "whisper").await;
    assert_eq!(w["text"], WHISPER);
    assert_eq!(w["supervisor"], "boss");
    // The watching supervisor sees it in the transcript too.
    let w2 = event_of(&mut sup, &conv, "whisper").await;
    assert_eq!(w2["seq"], w["seq"]);

    // Live: nothing reaches the citizen.
    let seen = drain(&mut citizen, QUIET).await;
    assert!(
        !seen.iter().any(|f| f.to_string().contains(WHISPER)),
        "{seen:?}"
    );
    assert!(seen.is_empty(), "the citizen got {seen:?}");

    // After the counselor writes again, the citizen resumes from the very start: every
    // stored event a citizen sees is replayed, and the whisper is not among them.
    send(
        &mut k,
        json!({"type": "message", "conversation_id": conv, "text": "지금 마음이 어때요?"}),
    )
    .await;
    until(&mut citizen, "counselor").await;
    drop(citizen);
    let mut again = app.resume(&conv, &token, 0).await;
    let welcome = next(&mut again).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["resumed"], true);
    let replay = drain(&mut again, QUIET).await;
    assert!(
        replay.iter().any(|f| f["text"] == "지금 마음이 어때요?"),
        "the replay came: {replay:?}"
    );
    assert!(
        !replay
            .iter()
            .any(|f| f.to_string().contains(WHISPER) || f["type"] == "whisper"),
        "a whisper in the citizen's replay: {replay:?}"
    );
    // A replay from just before the whisper: still nothing of it.
    let token2 = welcome["token"].as_str().unwrap().to_owned();
    drop(again);
    let before = w["seq"].as_u64().unwrap() - 1;
    let mut third = app.resume(&conv, &token2, before).await;
    assert_eq!(next(&mut third).await["resumed"], true);
    let replay = drain(&mut third, QUIET).await;
    assert!(
        !replay.iter().any(|f| f.to_string().contains(WHISPER)),
        "{replay:?}"
    );

    // Staff replay keeps it (the transcript is the record of what staff said).
    let (_, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "whisper" && e["text"] == WHISPER),
        "{t}"
    );

    // A whisper to a conversation nobody holds is refused plainly.
    let (_waiting, other, _) = waiting_citizen(&app).await;
    send(
        &mut sup,
        json!({"type": "whisper", "conversation": other, "text": WHISPER}),
    )
    .await;
    let e = about(&mut sup, &other, "error").await;
    assert_eq!(e["code"], "not_held", "{e}");

    assert!(
        audited(&audit(&app, &boss).await, "whisper", &conv),
        "whisper audited"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_supervisor_takes_over_and_everyone_is_told() {
    let app = spawn().await;
    let (mut citizen, conv, _, mut k) = held_by_kim(&app).await;
    let (mut sup, boss) = supervisor(&app).await;

    send(&mut sup, json!({"type": "take_over", "conversation": conv})).await;
    let claimed = about(&mut sup, &conv, "claimed").await;
    assert_eq!(claimed["type"], "claimed", "{claimed}");

    // The citizen sees the change of person, with a plain line.
    let changed = until(&mut citizen, "counselor_joined").await.pop().unwrap();
    assert_eq!(changed["changed"], true, "{changed}");
    assert!(
        changed["text"]
            .as_str()
            .unwrap()
            .contains("다른 상담사 선생님이 이어서"),
        "{changed}"
    );
    assert!(
        !changed.to_string().contains("boss"),
        "no usernames: {changed}"
    );

    // The counselor is told plainly and can no longer write.
    let told = about(&mut k, &conv, "taken_over").await;
    assert_eq!(told["by"], "boss", "{told}");
    send(
        &mut k,
        json!({"type": "message", "conversation_id": conv, "text": "아직 제가 있어요"}),
    )
    .await;
    let refused = about(&mut k, &conv, "error").await;
    assert_eq!(refused["code"], "not_yours", "{refused}");

    // One holder: the record says boss.
    let (_, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    assert_eq!(t["conversation"]["counselor"], "boss", "{t}");

    // The supervisor writes like a counselor; the citizen reads it.
    send(
        &mut sup,
        json!({"type": "message", "conversation_id": conv, "text": "제가 이어서 함께할게요"}),
    )
    .await;
    let said = until(&mut citizen, "counselor").await.pop().unwrap();
    assert_eq!(said["text"], "제가 이어서 함께할게요");
    assert!(
        !until_text(&mut citizen, QUIET)
            .await
            .contains("아직 제가 있어요"),
        "the old counselor's refused words never arrive"
    );

    // And closes like one.
    send(
        &mut sup,
        json!({"type": "close", "conversation_id": conv, "outcome": "resolved"}),
    )
    .await;
    until(&mut citizen, "closed").await;

    // A waiting conversation: the supervisor claims it by taking it over.
    let (mut waiting, other, _) = waiting_citizen(&app).await;
    // Watched first while it waits: nobody holds it yet.
    send(&mut sup, json!({"type": "watch", "conversation": other})).await;
    let w = about(&mut sup, &other, "watching").await;
    assert_eq!(w["state"], "queued", "{w}");
    assert!(w["holder"].is_null(), "{w}");
    send(
        &mut sup,
        json!({"type": "take_over", "conversation": other}),
    )
    .await;
    assert_eq!(about(&mut sup, &other, "claimed").await["type"], "claimed");
    let joined = until(&mut waiting, "counselor_joined").await.pop().unwrap();
    assert_ne!(
        joined["changed"], true,
        "a claim, not a change of person: {joined}"
    );
    let (_, q) = app.get_json("/api/queue", &boss).await;
    assert!(
        !q["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["conversation_id"] == other.as_str()),
        "out of the queue: {q}"
    );

    let records = audit(&app, &boss).await;
    assert!(audited(&records, "take_over", &conv), "take_over audited");
    assert!(audited(&records, "take_over", &other), "take_over audited");
    app.stop().await;
}

/// Every text the socket gets within `wait`, joined.
async fn until_text(ws: &mut Ws, wait: Duration) -> String {
    drain(ws, wait)
        .await
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn only_supervisors_watch_whisper_or_take_over() {
    let app = spawn().await;
    let (mut citizen, conv, _, mut k) = held_by_kim(&app).await;
    let lee = app.login("lee").await;
    let mut l = app.counselor(&lee).await;
    assert_eq!(next(&mut l).await["type"], "hello");

    for frame in [
        json!({"type": "watch", "conversation": conv}),
        json!({"type": "whisper", "conversation": conv, "text": WHISPER}),
        json!({"type": "take_over", "conversation": conv}),
    ] {
        send(&mut l, frame.clone()).await;
        let e = until(&mut l, "error").await.pop().unwrap();
        assert_eq!(e["code"], "forbidden", "{frame} -> {e}");
    }
    // Nothing happened: the citizen got nothing, kim still holds it and writes.
    assert!(drain(&mut citizen, QUIET).await.is_empty());
    send(
        &mut k,
        json!({"type": "message", "conversation_id": conv, "text": "계속 듣고 있어요"}),
    )
    .await;
    assert_eq!(
        until(&mut citizen, "counselor").await.pop().unwrap()["text"],
        "계속 듣고 있어요"
    );
    let boss = app.login("boss").await;
    let (_, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    assert_eq!(t["conversation"]["counselor"], "kim");
    assert!(
        !t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "whisper"),
        "{t}"
    );
    let records = audit(&app, &boss).await;
    assert!(
        !records.iter().any(|(actor, _, a, _)| actor == "lee"
            && ["watch", "whisper", "take_over"].contains(&a.as_str())),
        "{records:?}"
    );
    app.stop().await;
}
