//! The chat service end to end, over real websockets, booted as `main` boots it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_whole_story() {
    let app = spawn().await;

    // A citizen says hello and gets a resource answer.
    let mut citizen = app.citizen("").await;
    let welcome = next(&mut citizen).await;
    assert_eq!(welcome["type"], "welcome");
    assert!(!welcome["greeting"]["text"].as_str().unwrap().is_empty());
    let conv = welcome["conversation_id"].as_str().unwrap().to_owned();
    assert!(welcome["token"].as_str().unwrap().len() >= 22, "≥128 bits");

    send(
        &mut citizen,
        json!({"type": "message", "id": "c1", "text": "안녕하세요"}),
    )
    .await;
    let ack = next(&mut citizen).await;
    assert_eq!(ack, json!({"type": "ack", "id": "c1", "seq": 1}));
    let bot = next(&mut citizen).await;
    assert_eq!(bot["type"], "bot");
    assert!(bot["seq"].as_u64().unwrap() > 1);

    // A risky Korean message hands off: safety words with 109, then the queue.
    send(
        &mut citizen,
        json!({"type": "message", "id": "c2", "text": "요즘 너무 힘들어서 죽 고 싶 어 요"}),
    )
    .await;
    let frames = until(&mut citizen, "queue").await;
    assert_eq!(frames[0]["type"], "ack");
    let safety = frames
        .iter()
        .find(|f| f["type"] == "bot")
        .expect("a safety reply");
    assert!(safety["text"].as_str().unwrap().contains("109"), "{safety}");

    // Once a human was asked for, the bot no longer counsels: a message while waiting gets
    // a holding line that says truthfully that nobody is online, and offers the choice.
    send(
        &mut citizen,
        json!({"type": "message", "id": "c3", "text": "안녕"}),
    )
    .await;
    let later = until(&mut citizen, "bot").await;
    assert_eq!(later[0]["type"], "ack");
    let holding = later.last().unwrap();
    assert!(
        holding["text"]
            .as_str()
            .unwrap()
            .contains("상담사 선생님이 없어요"),
        "{holding}"
    );
    assert_eq!(holding["quick_replies"].as_array().unwrap().len(), 2);

    // A counselor sees it at the top of the queue with the rule named, and claims it.
    let kim = app.login("kim").await;
    let mut counselor = app.counselor(&kim).await;
    let hello = next(&mut counselor).await;
    assert_eq!(hello["type"], "hello");
    let queue = until(&mut counselor, "queue").await.pop().unwrap();
    let top = &queue["entries"][0];
    assert_eq!(top["conversation_id"], conv.as_str());
    assert_eq!(top["level"], "high");
    assert!(
        top["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("ideation")),
        "{top}"
    );
    send(
        &mut counselor,
        json!({"type": "claim", "conversation_id": conv}),
    )
    .await;
    let claimed = until(&mut counselor, "claimed").await.pop().unwrap();
    let events = claimed["events"].as_array().unwrap();
    let risky = events
        .iter()
        .find(|e| e["type"] == "citizen" && e["id"] == "c2")
        .unwrap();
    assert_eq!(risky["triage"]["level"], "high");
    assert!(!risky["triage"]["spans"].as_array().unwrap().is_empty());
    until(&mut citizen, "counselor_joined").await;

    // Both sides talk.
    send(
        &mut counselor,
        json!({"type": "message", "conversation_id": conv, "text": "안녕하세요, 상담사예요. 이야기해 줘서 고마워요."}),
    )
    .await;
    let said = until(&mut citizen, "counselor").await.pop().unwrap();
    assert!(said["text"].as_str().unwrap().contains("상담사"));
    send(
        &mut citizen,
        json!({"type": "message", "id": "c4", "text": "고마워요"}),
    )
    .await;
    let ev = loop {
        let ev = until(&mut counselor, "event").await.pop().unwrap();
        if ev["event"]["type"] == "citizen" {
            break ev;
        }
    };
    assert_eq!(ev["event"]["text"], "고마워요");

    // The counselor closes; the citizen is told and may rate.
    send(
        &mut counselor,
        json!({"type": "close", "conversation_id": conv, "outcome": "resolved"}),
    )
    .await;
    until(&mut citizen, "closed").await;
    send(&mut citizen, json!({"type": "rating", "value": 5})).await;
    until(&mut citizen, "bot").await;

    // The supervisor's transcript shows everything in order, with annotations.
    let boss = app.login("boss").await;
    let (status, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    assert_eq!(status, 200);
    let events = t["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] + 1 == w[1]), "{seqs:?}");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for ty in [
        "citizen",
        "bot",
        "queued",
        "state",
        "counselor_joined",
        "counselor",
        "closed",
        "rating",
    ] {
        assert!(types.contains(&ty), "missing {ty} in {types:?}");
    }
    assert_eq!(t["conversation"]["outcome"], "resolved");
    assert_eq!(t["conversation"]["rating"], 5);

    // The audit log shows the read.
    let (_, audit) = app.get_json("/api/audit", &boss).await;
    assert!(
        audit["records"].as_array().unwrap().iter().any(|r| {
            r["action"] == "read_transcript"
                && r["conversation_id"] == conv.as_str()
                && r["actor"] == "boss"
        }),
        "{audit}"
    );
    app.stop().await;
}

#[tokio::test]
async fn resume_replays_missed_events_exactly_once() {
    let app = spawn().await;
    let mut a = app.citizen("").await;
    let welcome = next(&mut a).await;
    let conv = welcome["conversation_id"].as_str().unwrap().to_owned();
    let token = welcome["token"].as_str().unwrap().to_owned();
    send(
        &mut a,
        json!({"type": "message", "id": "m1", "text": "안녕하세요"}),
    )
    .await;
    let ack = until(&mut a, "ack").await.pop().unwrap();
    let last_seen = ack["seq"].as_u64().unwrap();
    // Send one more and drop the socket without reading what comes back.
    send(
        &mut a,
        json!({"type": "message", "id": "m2", "text": "요즘 잠이 안 와요"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(a);

    let mut b = app.resume(&conv, &token, last_seen).await;
    let w = next(&mut b).await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["resumed"], true);
    assert_eq!(w["conversation_id"], conv.as_str());
    let new_token = w["token"].as_str().unwrap().to_owned();
    assert_ne!(new_token, token, "rotated");
    let total = w["seq"].as_u64().unwrap();
    let mut seqs = Vec::new();
    for _ in last_seen..total {
        let f = next(&mut b).await;
        seqs.push(f["seq"].as_u64().unwrap());
    }
    let expected: Vec<u64> = (last_seen + 1..=total).collect();
    let replayed: Vec<u64> = seqs.clone();
    // Every missed stored event the citizen can see arrives once, in order (state events
    // are not shown to citizens, so the list may skip those seqs, never repeat one).
    assert!(replayed.windows(2).all(|w| w[0] < w[1]), "{replayed:?}");
    assert!(replayed.iter().all(|s| expected.contains(s)));
    none_of(&mut b, "message", Duration::from_millis(300)).await;

    // The old token no longer works; a wrong one gets a new conversation, not this one.
    let mut c = app.resume(&conv, &token, 0).await;
    let e = next(&mut c).await;
    assert_eq!(e["code"], "resume_failed");
    let fresh = next(&mut c).await;
    assert_eq!(fresh["type"], "welcome");
    assert_ne!(fresh["conversation_id"], conv.as_str());
    app.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_acknowledged_messages_and_the_queue() {
    let app = spawn().await;
    let mut c = app.citizen("").await;
    let welcome = next(&mut c).await;
    let conv = welcome["conversation_id"].as_str().unwrap().to_owned();
    send(
        &mut c,
        json!({"type": "message", "id": "x1", "text": "유서를 써 놨어요"}),
    )
    .await;
    until(&mut c, "ack").await;
    drop(c);
    let dir = app.stop().await;

    let app = spawn_in(dir, |_| {}).await;
    let boss = app.login("boss").await;
    let (_, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    let events = t["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["id"] == "x1" && e["text"] == "유서를 써 놨어요")
    );
    let (_, q) = app.get_json("/api/queue", &boss).await;
    assert_eq!(q["entries"][0]["conversation_id"], conv.as_str());
    assert_eq!(q["entries"][0]["level"], "imminent");
    // What counselors see before claiming came back too (stored sealed, opened with the key).
    assert_eq!(q["entries"][0]["first_lines"][0], "유서를 써 놨어요");
    app.stop().await;
}

/// Messages that change only a conversation's progress write their event record alone (no
/// conversation record). After a restart the conversation must carry on from the newest
/// record: the same seq on resume, and the next message stored after it, never over it.
#[tokio::test]
async fn after_a_restart_a_conversation_carries_on_from_its_newest_record() {
    let app = spawn().await;
    let mut c = app.citizen("").await;
    let welcome = next(&mut c).await;
    let conv = welcome["conversation_id"].as_str().unwrap().to_owned();
    let token = welcome["token"].as_str().unwrap().to_owned();
    let mut last = 0;
    // The first three lines go into the counselor summary (a change to the conversation
    // record); the two after them change only the progress.
    let lines = [
        "안녕하세요",
        "오늘은 날씨가 맑네요",
        "고마워요",
        "산책을 했어요",
        "밥도 먹었어요",
    ];
    for (i, text) in lines.iter().enumerate() {
        send(
            &mut c,
            json!({"type": "message", "id": format!("m{i}"), "text": text}),
        )
        .await;
        let ack = until(&mut c, "ack").await.pop().unwrap();
        let bot = until(&mut c, "bot").await.pop().unwrap();
        assert!(bot["seq"].as_u64().unwrap() > ack["seq"].as_u64().unwrap());
        last = bot["seq"].as_u64().unwrap();
    }
    drop(c);
    let dir = app.stop().await;

    let app = spawn_in(dir, |_| {}).await;
    let mut c = app.resume(&conv, &token, last).await;
    let w = next(&mut c).await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["resumed"], true);
    assert_eq!(w["seq"], last);
    send(
        &mut c,
        json!({"type": "message", "id": "after", "text": "다시 왔어요"}),
    )
    .await;
    let ack = until(&mut c, "ack").await.pop().unwrap();
    assert_eq!(ack["seq"], last + 1);
    until(&mut c, "bot").await;
    let boss = app.login("boss").await;
    let (_, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    let events = t["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=last + 2).collect::<Vec<_>>(), "{events:?}");
    let ids: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "citizen")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4", "after"]);
    app.stop().await;
}

#[tokio::test]
async fn access_control() {
    let app = spawn().await;
    // No token: 401 before the upgrade.
    let url = format!("ws://127.0.0.1:{}/ws/counselor", app.port);
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(format!("{err}").contains("401"), "{err}");
    // A supervisor opens the counselor socket to monitor (watch, whisper, take over:
    // tests/monitor.rs); what only supervisors may send is refused to counselors there.
    let boss = app.login("boss").await;
    let mut sup = app.counselor(&boss).await;
    assert_eq!(next(&mut sup).await["type"], "hello");
    // Missing Origin on /ws/chat: 403.
    let url = format!("ws://127.0.0.1:{}/ws/chat", app.port);
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(format!("{err}").contains("403"), "{err}");

    // A counselor cannot read or write an unassigned conversation.
    let mut c = app.citizen("").await;
    let conv = next(&mut c).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        &mut c,
        json!({"type": "message", "id": "a", "text": "죽고 싶어"}),
    )
    .await;
    until(&mut c, "ack").await;
    let lee = app.login("lee").await;
    let (status, _) = app
        .get_json(&format!("/api/conversations/{conv}"), &lee)
        .await;
    assert_eq!(status, 403);
    let mut ws = app.counselor(&lee).await;
    send(
        &mut ws,
        json!({"type": "message", "conversation_id": conv, "text": "hi"}),
    )
    .await;
    let e = until(&mut ws, "error").await.pop().unwrap();
    assert_eq!(e["code"], "not_yours");
    app.stop().await;
}

#[tokio::test]
async fn medium_risk_runs_the_screener_and_a_yes_to_intent_hands_off() {
    let app = spawn().await;
    let mut c = app.citizen("").await;
    next(&mut c).await;
    send(
        &mut c,
        json!({"type": "message", "id": "s1", "text": "그냥 사라지고 싶어요"}),
    )
    .await;
    let frames = until(&mut c, "bot").await;
    let first = frames.last().unwrap();
    assert!(
        first["resources"].to_string().contains("109"),
        "the screener opening carries 109: {first}"
    );
    assert!(!first["quick_replies"].as_array().unwrap().is_empty());
    // "아니" to the first question does not end the check: the next question comes.
    send(
        &mut c,
        json!({"type": "message", "id": "s2", "text": "아니"}),
    )
    .await;
    let q2 = until(&mut c, "bot").await.pop().unwrap();
    assert_ne!(q2["text"], first["text"]);
    // Yes to thoughts, method, then intent: handed off.
    for (i, answer) in ["응", "응", "응"].iter().enumerate() {
        send(
            &mut c,
            json!({"type": "message", "id": format!("y{i}"), "text": answer}),
        )
        .await;
        if i < 2 {
            until(&mut c, "bot").await;
        }
    }
    let frames = until(&mut c, "queue").await;
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "bot" && f["text"].as_str().unwrap().contains("109"))
    );
    let boss = app.login("boss").await;
    let (_, q) = app.get_json("/api/queue", &boss).await;
    assert_eq!(q["entries"][0]["level"], "high");
    app.stop().await;
}

#[tokio::test]
async fn transfer_back_to_the_queue_and_to_a_colleague() {
    let app = spawn().await;
    let mut c = app.citizen("").await;
    let conv = next(&mut c).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(&mut c, json!({"type": "request_human"})).await;
    until(&mut c, "queue").await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    until(&mut k, "claimed").await;
    // Back to the queue: kim lets go; lee can claim it.
    send(&mut k, json!({"type": "transfer", "conversation_id": conv})).await;
    until(&mut k, "released").await;
    let lee = app.login("lee").await;
    let mut l = app.counselor(&lee).await;
    send(&mut l, json!({"type": "claim", "conversation_id": conv})).await;
    until(&mut l, "claimed").await;
    // kim can no longer write into it.
    send(
        &mut k,
        json!({"type": "message", "conversation_id": conv, "text": "hi"}),
    )
    .await;
    assert_eq!(
        until(&mut k, "error").await.pop().unwrap()["code"],
        "not_yours"
    );
    // Direct transfer from lee to kim; kim reopens it by claiming.
    send(
        &mut l,
        json!({"type": "transfer", "conversation_id": conv, "to": "kim"}),
    )
    .await;
    until(&mut l, "released").await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    until(&mut k, "claimed").await;
    send(
        &mut k,
        json!({"type": "message", "conversation_id": conv, "text": "다시 왔어요"}),
    )
    .await;
    let said = until(&mut c, "counselor").await.pop().unwrap();
    assert_eq!(said["text"], "다시 왔어요");
    app.stop().await;
}
