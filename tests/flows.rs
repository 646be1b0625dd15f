//! The flows that once left a person in silence, or told them something untrue (issue 17),
//! each driven black-box over real websockets against the app booted as `main` boots it.
//!
//! 1. risk rising while waiting gets the safety answer, and re-orders the queue at once;
//! 2. a transfer goes only to a colleague who is online and has room; a target who leaves
//!    before joining sends the conversation back to everyone, level and wait kept;
//! 3. "back to the queue" is visible to the citizen;
//! 4. job, legal and welfare counselling are referrals, not crisis handoffs;
//! 5. at the handoff the words are true about who is online, and every message while
//!    waiting gets an answer within a second; the person may talk with the bot meanwhile;
//! 6. the queue card shows what raised the level first;
//! 7. the screener the service runs is the one in `intents/screener.toml`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A new citizen conversation: (socket, conversation id).
async fn open(app: &TestApp) -> (Ws, String) {
    let mut ws = app.citizen("").await;
    let w = next(&mut ws).await;
    assert_eq!(w["type"], "welcome");
    (ws, w["conversation_id"].as_str().unwrap().to_owned())
}

/// Sends a message and returns every frame up to and including the first answer to it
/// (a `bot` or `safety` frame after its ack), which must come within `within`.
async fn say_and_answer(ws: &mut Ws, id: &str, text: &str, within: Duration) -> Vec<Value> {
    send(ws, json!({"type": "message", "id": id, "text": text})).await;
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    let mut acked = false;
    loop {
        let v = tokio::time::timeout_at(deadline, next(ws))
            .await
            .unwrap_or_else(|_| panic!("no answer to {text:?} within {within:?}: {seen:?}"));
        if v["type"] == "ack" && v["id"] == id {
            acked = true;
        }
        let answered = acked && (v["type"] == "bot" || v["type"] == "safety");
        seen.push(v);
        if answered {
            return seen;
        }
    }
}

fn text(v: &Value) -> &str {
    v["text"].as_str().unwrap_or("")
}

fn phones(v: &Value) -> Vec<String> {
    v["resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["phone"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The supervisor's view of the queue.
async fn queue(app: &TestApp, boss: &str) -> Vec<Value> {
    let (status, q) = app.get_json("/api/queue", boss).await;
    assert_eq!(status, 200);
    q["entries"].as_array().unwrap().clone()
}

/// Frames on a counselor socket until one of type `ty` about `conv` (errors about it too).
async fn about(ws: &mut Ws, conv: &str, ty: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["conversation_id"] == conv && (v["type"] == ty || v["type"] == "error") {
            return v;
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn flow1_risk_rising_while_waiting_gets_the_safety_answer_and_reorders_the_queue() {
    let app = spawn().await;
    let boss = app.login("boss").await;
    // Two people wait, nobody online: the first asked for a person, the second too, later.
    let (mut a, conv_a) = open(&app).await;
    send(&mut a, json!({"type": "request_human"})).await;
    until(&mut a, "queue").await;
    let (mut b, conv_b) = open(&app).await;
    send(&mut b, json!({"type": "request_human"})).await;
    until(&mut b, "queue").await;
    let q = queue(&app, &boss).await;
    assert_eq!(q[0]["conversation_id"], conv_a.as_str(), "first come first");

    // A medium passive wish while waiting: the safety answer with 109.
    let frames = say_and_answer(&mut b, "b1", "아침에 눈 안 떴으면 좋겠어", SECOND).await;
    let answer = frames.last().unwrap();
    assert_eq!(answer["type"], "safety", "{answer}");
    assert!(phones(answer).contains(&"109".to_owned()), "{answer}");
    // The queue is re-ordered at once: b now waits at medium, ahead of a.
    let q = queue(&app, &boss).await;
    assert_eq!(q[0]["conversation_id"], conv_b.as_str(), "{q:?}");
    assert_eq!(q[0]["level"], "medium");

    // "죽고 싶어요" while waiting: the safety answer again, at high.
    let frames = say_and_answer(&mut b, "b2", "죽고 싶어요", SECOND).await;
    let answer = frames.last().unwrap();
    assert_eq!(answer["type"], "safety", "{answer}");
    assert!(text(answer).contains("109"), "{answer}");
    assert_eq!(queue(&app, &boss).await[0]["level"], "high");

    // Imminent: 119 too, and the entry becomes urgent.
    let frames = say_and_answer(&mut a, "a1", "지금 약 다 먹을 거야", SECOND).await;
    let answer = frames.last().unwrap();
    assert_eq!(answer["type"], "safety");
    let p = phones(answer);
    assert!(
        p.contains(&"119".to_owned()) && p.contains(&"109".to_owned()),
        "{answer}"
    );
    let q = queue(&app, &boss).await;
    assert_eq!(q[0]["conversation_id"], conv_a.as_str());
    assert_eq!(q[0]["level"], "imminent");
    assert_eq!(q[0]["urgent"], true);
    app.stop().await;
}

#[tokio::test]
async fn flow2_transfer_only_to_an_online_colleague_with_room() {
    let app = spawn().await;
    let boss = app.login("boss").await;
    let (mut c, conv) = open(&app).await;
    say_and_answer(&mut c, "c1", "죽고 싶어요", SECOND).await;
    until(&mut c, "queue").await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    // The console learns who is online, for the transfer list.
    let cols = until(&mut k, "colleagues").await.pop().unwrap();
    let names: Vec<&str> = cols["colleagues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kim"]);
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    assert_eq!(about(&mut k, &conv, "claimed").await["type"], "claimed");
    until(&mut c, "counselor_joined").await;

    // A mistyped name: refused plainly; the conversation stays with kim.
    send(
        &mut k,
        json!({"type": "transfer", "conversation_id": conv, "to": "lle"}),
    )
    .await;
    let e = about(&mut k, &conv, "error").await;
    assert_eq!(e["code"], "transfer_refused", "{e}");
    send(
        &mut k,
        json!({"type": "message", "conversation_id": conv, "text": "여기 있어요"}),
    )
    .await;
    let said = until(&mut c, "counselor").await;
    assert_eq!(text(said.last().unwrap()), "여기 있어요");
    assert!(
        !said.iter().any(|f| f["type"] == "counselor_joined"),
        "no second 'counselor joined': {said:?}"
    );
    // To oneself: refused too.
    send(
        &mut k,
        json!({"type": "transfer", "conversation_id": conv, "to": "kim"}),
    )
    .await;
    assert_eq!(
        about(&mut k, &conv, "error").await["code"],
        "transfer_refused"
    );

    // lee comes online: kim's list shows lee; the transfer waits for lee only.
    let lee = app.login("lee").await;
    let mut l = app.counselor(&lee).await;
    loop {
        let f = until(&mut k, "colleagues").await.pop().unwrap();
        if f["colleagues"].as_array().unwrap().len() == 2 {
            break;
        }
    }
    send(
        &mut k,
        json!({"type": "transfer", "conversation_id": conv, "to": "lee"}),
    )
    .await;
    assert_eq!(about(&mut k, &conv, "released").await["type"], "released");
    let offer = until(&mut l, "offer").await.pop().unwrap();
    assert_eq!(offer["entry"]["conversation_id"], conv.as_str());
    assert_eq!(offer["entry"]["reserved_for"], "lee");
    let waited_before = offer["entry"]["waiting_secs"].as_u64().unwrap();
    // Nobody else may take it meanwhile.
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    assert_eq!(about(&mut k, &conv, "error").await["code"], "reserved");

    // lee leaves before joining: it goes back to everyone, level and waiting time kept.
    drop(l);
    let entry = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let q = queue(&app, &boss).await;
        let e = q
            .into_iter()
            .find(|e| e["conversation_id"] == conv.as_str())
            .expect("still waiting");
        if e.get("reserved_for").is_none() {
            break e;
        }
    };
    assert_eq!(entry["level"], "high");
    assert!(entry["waiting_secs"].as_u64().unwrap() >= waited_before);
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    assert_eq!(about(&mut k, &conv, "claimed").await["type"], "claimed");
    app.stop().await;
}

#[tokio::test]
async fn flow3_back_to_the_queue_is_visible_to_the_citizen() {
    let app = spawn().await;
    let (mut c, conv) = open(&app).await;
    send(&mut c, json!({"type": "request_human"})).await;
    until(&mut c, "queue").await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    about(&mut k, &conv, "claimed").await;
    until(&mut c, "counselor_joined").await;
    send(&mut k, json!({"type": "transfer", "conversation_id": conv})).await;
    about(&mut k, &conv, "released").await;
    let frames = until(&mut c, "queue").await;
    let line = frames
        .iter()
        .find(|f| f["type"] == "bot")
        .unwrap_or_else(|| panic!("a plain line before the queue frame: {frames:?}"));
    assert!(
        text(line).contains("상담사 선생님이 바뀌고 있어요, 잠시만요"),
        "{line}"
    );
    let q = frames.last().unwrap();
    assert_eq!(q["position"], 1);
    app.stop().await;
}

#[tokio::test]
async fn flow4_job_legal_and_welfare_counselling_are_referrals() {
    let app = spawn().await;
    let boss = app.login("boss").await;
    for (ask, phone) in [
        ("일자리 상담 받고 싶어요", "1350"),
        ("취업 상담 받고 싶어요", "1350"),
        ("법률 상담 받고 싶어요", "132"),
        ("복지 상담 받고 싶어요", "129"),
    ] {
        let (mut c, conv) = open(&app).await;
        let frames = say_and_answer(&mut c, "c1", ask, SECOND).await;
        let answer = frames.last().unwrap();
        assert_eq!(answer["type"], "bot", "{ask}: {answer}");
        assert!(
            phones(answer).contains(&phone.to_owned()),
            "{ask}: {answer}"
        );
        assert!(text(answer).contains(phone), "{ask}: {answer}");
        // An offer to talk with a counselor, not a handoff.
        let offers: Vec<&str> = answer["quick_replies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["text"].as_str().unwrap())
            .collect();
        assert!(offers.contains(&"상담사와 이야기하고 싶어요"), "{offers:?}");
        let later = none_of(&mut c, "queue", Duration::from_millis(300)).await;
        assert!(later.is_empty(), "{later:?}");
        assert!(
            !queue(&app, &boss)
                .await
                .iter()
                .any(|e| e["conversation_id"] == conv.as_str()),
            "{ask}: not queued"
        );
        // The bot goes on answering as usual.
        let frames = say_and_answer(&mut c, "c2", "요즘 너무 외로워요", SECOND).await;
        assert_eq!(frames.last().unwrap()["type"], "bot");
    }
    // If they then ask for a person, they get one.
    let (mut c, _) = open(&app).await;
    say_and_answer(&mut c, "c1", "일자리 상담 받고 싶어요", SECOND).await;
    send(
        &mut c,
        json!({"type": "message", "id": "c2", "text": "상담사와 이야기하고 싶어요"}),
    )
    .await;
    until(&mut c, "queue").await;
    app.stop().await;
}

#[tokio::test]
async fn flow5_the_words_at_the_handoff_are_true_and_nobody_waits_in_silence() {
    let app = spawn().await;
    let boss = app.login("boss").await;
    // Nobody online.
    let (mut c, conv) = open(&app).await;
    let frames = say_and_answer(&mut c, "c1", "사람이랑 이야기하고 싶어요", SECOND).await;
    let holding = frames.last().unwrap();
    assert_eq!(holding["type"], "bot");
    assert!(
        text(holding).contains("연결할 수 있는 상담사 선생님이 없어요"),
        "{holding}"
    );
    let p = phones(holding);
    assert!(p.contains(&"109".to_owned()) && p.contains(&"119".to_owned()));
    let choices: Vec<String> = holding["quick_replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(choices.len(), 2, "keep waiting, or talk meanwhile");
    let q = until(&mut c, "queue").await.pop().unwrap();
    assert_eq!(q["counselors_online"], 0);
    let all: Vec<Value> = frames.iter().chain([&q]).cloned().collect();
    for f in &all {
        assert!(
            !text(f).contains("곧 사람이"),
            "no promise of a person soon: {f}"
        );
    }

    // Every message while waiting is answered within a second, never counselled.
    for (i, line) in ["안녕", "아직이에요?", "외로워요"].iter().enumerate() {
        let frames = say_and_answer(&mut c, &format!("w{i}"), line, SECOND).await;
        let a = frames.last().unwrap();
        assert_eq!(a["type"], "bot", "{a}");
        assert!(text(a).contains("상담사 선생님"), "a holding line: {a}");
    }

    // Choosing to talk with the bot meanwhile: the bot answers as usual; the place is kept.
    let frames = say_and_answer(&mut c, "t1", &choices[1], SECOND).await;
    assert!(text(frames.last().unwrap()).contains("자리는 그대로"));
    let frames = say_and_answer(&mut c, "t2", "요즘 너무 외로워요", SECOND).await;
    let a = frames.last().unwrap();
    assert!(
        !text(a).contains("상담사 선생님이 없어요"),
        "the bot's own answer: {a}"
    );
    let q = queue(&app, &boss).await;
    assert!(
        q.iter().any(|e| e["conversation_id"] == conv.as_str()),
        "still queued"
    );
    // Risk still gets the safety answer, not the bot's.
    let frames = say_and_answer(&mut c, "t3", "죽고 싶어요", SECOND).await;
    assert_eq!(frames.last().unwrap()["type"], "safety");

    // A counselor joins: from now on the bot is silent.
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    about(&mut k, &conv, "claimed").await;
    until(&mut c, "counselor_joined").await;
    send(
        &mut c,
        json!({"type": "message", "id": "k1", "text": "외로워요"}),
    )
    .await;
    let later = none_of(&mut c, "bot", Duration::from_millis(500)).await;
    assert_eq!(later[0]["type"], "ack");

    // With a counselor online, a new handoff says so.
    let (mut d, _) = open(&app).await;
    let frames = say_and_answer(&mut d, "d1", "사람이랑 이야기하고 싶어요", SECOND).await;
    let holding = frames.last().unwrap();
    assert!(text(holding).contains("1명이 접속해 있고"), "{holding}");
    assert!(holding["quick_replies"].as_array().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn flow6_the_queue_card_shows_what_raised_the_level_first() {
    let app = spawn().await;
    let (mut c, conv) = open(&app).await;
    for (i, line) in ["외로워", "안녕하세요", "오늘 비가 와요"]
        .iter()
        .enumerate()
    {
        say_and_answer(&mut c, &format!("c{i}"), line, SECOND).await;
    }
    say_and_answer(&mut c, "c9", "죽고 싶어요", SECOND).await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    let entry = loop {
        let q = until(&mut k, "queue").await.pop().unwrap();
        if let Some(e) = q["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["conversation_id"] == conv.as_str())
        {
            break e.clone();
        }
    };
    let raised = entry["raised"].as_array().unwrap();
    let top = raised.last().unwrap();
    assert_eq!(top["text"], "죽고 싶어요", "{entry}");
    assert_eq!(top["level"], "high");
    let spans = top["spans"].as_array().unwrap();
    assert!(!spans.is_empty(), "the words that fired: {entry}");
    // Then the first lines.
    assert_eq!(entry["first_lines"][0], "외로워");
    app.stop().await;
}

#[tokio::test]
async fn flow7_the_service_runs_the_screener_in_the_file() {
    // The shipped file, with a second unclear answer handing off instead of going on.
    let dir = tempfile::tempdir().unwrap();
    let intents = dir.path().join("intents");
    std::fs::create_dir(&intents).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("intents");
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, intents.join(f.file_name().unwrap())).unwrap();
    }
    let screener = std::fs::read_to_string(src.join("screener.toml")).unwrap();
    let edited = screener.replace(
        "second_unclear = \"continue\"",
        "second_unclear = \"handoff\"",
    );
    assert_ne!(screener, edited);
    std::fs::write(intents.join("screener.toml"), edited).unwrap();

    for (intents_dir, then) in [(src.clone(), "thoughts"), (intents.clone(), "queue")] {
        let app = spawn_in(tempfile::tempdir().unwrap(), |s| s.intents = intents_dir).await;
        let (mut c, _) = open(&app).await;
        // Medium: the screener starts with its first question.
        let frames = say_and_answer(&mut c, "c1", "요즘 다 끝내고 싶어", SECOND).await;
        assert!(text(frames.last().unwrap()).contains("지난 한 달 동안"));
        // Two unclear answers.
        say_and_answer(&mut c, "c2", "글쎄", SECOND).await;
        send(
            &mut c,
            json!({"type": "message", "id": "c3", "text": "글쎄요 잘 모르겠어요"}),
        )
        .await;
        let frames = until(&mut c, "ack").await;
        assert!(!frames.is_empty());
        if then == "queue" {
            // The edited file hands off.
            until(&mut c, "queue").await;
        } else {
            // The shipped file reads it as a no and asks the next question.
            let next_q = until(&mut c, "bot").await.pop().unwrap();
            assert!(text(&next_q).contains("자살을 생각한 적이"), "{next_q}");
        }
        app.stop().await;
    }
}

/// A claim shows the whole transcript and the live board shows first lines: both are
/// audited like other reads, before they are served.
#[tokio::test]
async fn a_claim_and_the_live_board_are_audited() {
    let app = spawn().await;
    let boss = app.login("boss").await;
    let (mut c, conv) = open(&app).await;
    say_and_answer(&mut c, "c1", "죽고 싶어요", SECOND).await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    about(&mut k, &conv, "claimed").await;
    queue(&app, &boss).await;
    let (_, audit) = app.get_json("/api/audit", &boss).await;
    let records = audit["records"].as_array().unwrap();
    let claim = records
        .iter()
        .find(|r| r["action"] == "claim")
        .unwrap_or_else(|| panic!("no claim record: {records:?}"));
    assert_eq!(claim["actor"], "kim");
    assert_eq!(claim["conversation_id"], conv.as_str());
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "read_queue" && r["actor"] == "boss"),
        "{records:?}"
    );
    app.stop().await;
}
