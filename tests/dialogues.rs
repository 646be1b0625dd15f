//! The two dialogues beside the screener (issue 19, "Casework"), driven black-box over real
//! websockets against the app booted as `main` boots it:
//!
//! 1. the loneliness self-check (three-item UCLA scale) gives a score, stored as a number in
//!    the conversation record, and a kind result with a next step;
//! 2. risk in the middle of the self-check interrupts it with the safety answer;
//! 3. after the screener ends at `medium`, the bot walks a safety plan with the person, and
//!    each answer reaches them as a `safety_plan` frame;
//! 4. resuming gets the plan back right after `welcome`;
//! 5. the counselor holding the conversation adds items (`plan_item`); the citizen and the
//!    counselor get the updated plan;
//! 6. a counselor who does not hold the conversation is refused.

mod common;

use std::time::Duration;

use common::*;
use ieum::ids::ConversationId;
use serde_json::{Value, json};

/// The app, with a citizen rate budget that lets a test answer a dialogue at machine speed
/// (the limit itself is tested in tests/hardening.rs).
async fn app() -> TestApp {
    spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.gateway.limits.per_second = 100.0;
        s.gateway.limits.burst = 100;
    })
    .await
}

/// A new citizen conversation: (socket, conversation id, resume token).
async fn open(app: &TestApp) -> (Ws, String, String) {
    let mut ws = app.citizen("").await;
    let w = next(&mut ws).await;
    assert_eq!(w["type"], "welcome");
    (
        ws,
        w["conversation_id"].as_str().unwrap().to_owned(),
        w["token"].as_str().unwrap().to_owned(),
    )
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

/// Sends a message and returns the frames after its ack up to and including the first one
/// for which `done` holds (within 5 s).
async fn say_until(
    ws: &mut Ws,
    id: &str,
    words: &str,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    send(ws, json!({"type": "message", "id": id, "text": words})).await;
    let mut seen = Vec::new();
    let mut acked = false;
    loop {
        let v = next(ws).await;
        if std::env::var("DEBUG_FRAMES").is_ok() {
            eprintln!("{id}: {v}");
        }
        if v["type"] == "ack" && v["id"] == id {
            acked = true;
            continue;
        }
        let stop = acked && done(&v);
        seen.push(v);
        if stop {
            return seen;
        }
    }
}

/// Sends a message and returns the frames up to the bot's (or the safety) answer.
async fn say(ws: &mut Ws, id: &str, words: &str) -> Vec<Value> {
    say_until(ws, id, words, |v| {
        v["type"] == "bot" || v["type"] == "safety"
    })
    .await
}

/// The items of step `step` in a `safety_plan` frame.
fn items(plan: &Value, step: u64) -> Vec<String> {
    let steps = plan["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 6, "{plan}");
    let s = steps
        .iter()
        .find(|s| s["step"] == step)
        .unwrap_or_else(|| panic!("no step {step}: {plan}"));
    assert!(!s["title"].as_str().unwrap_or("").is_empty(), "{plan}");
    s["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect()
}

/// The conversation's record, read from the store with its key.
async fn record(app: &TestApp, conv: &str) -> ieum::conversation::ConversationMeta {
    let id = ConversationId::parse(conv).unwrap();
    let key = app.state.keyring.key(id).await.unwrap().expect("key");
    ieum::transcript::load_meta(&app.state.store, id, &key)
        .await
        .unwrap()
        .expect("stored")
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

#[tokio::test]
async fn the_self_check_gives_a_kind_result_and_stores_the_score_as_a_number() {
    let app = app().await;
    let (mut ws, conv, _) = open(&app).await;

    // Loneliness: the answer offers the self-check.
    let frames = say(&mut ws, "m1", "요즘 너무 외로워요").await;
    let answer = frames.last().unwrap();
    let offer = answer["quick_replies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["label"].as_str().unwrap_or("").contains("자가진단"))
        .unwrap_or_else(|| panic!("no self-check quick reply: {answer}"))
        .clone();

    // Tapping it starts the first item, with 1/2/3 quick replies.
    let frames = say(&mut ws, "m2", offer["text"].as_str().unwrap()).await;
    let q1 = frames.last().unwrap();
    assert_eq!(q1["type"], "bot");
    assert!(text(q1).contains("함께할 사람"), "{q1}");
    let options: Vec<&str> = q1["quick_replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["text"].as_str().unwrap())
        .collect();
    assert_eq!(options.len(), 3, "{q1}");

    // Free words and a quick reply: 2 + 1 + 3 = 6 (the lonely band).
    let q2 = say(&mut ws, "m3", "가끔 그래요").await.pop().unwrap();
    assert!(text(&q2).contains("빠져"), "{q2}");
    let q3 = say(&mut ws, "m4", "거의 없어요").await.pop().unwrap();
    assert!(text(&q3).contains("고립"), "{q3}");
    let result = say(&mut ws, "m5", options[2]).await.pop().unwrap();
    assert_eq!(result["type"], "bot");
    assert!(text(&result).contains("9점 중 6점"), "{result}");
    assert!(
        text(&result).contains("진단이 아니라"),
        "kind, not a diagnosis: {result}"
    );
    assert!(text(&result).contains("120"), "a next step: {result}");
    let p = phones(&result);
    assert!(p.contains(&"120".to_owned()), "{result}");

    // The score is in the record, as a number.
    assert_eq!(record(&app, &conv).await.selfcheck, Some(6));
    // Back with the bot: the next message is answered as usual.
    let after = say(&mut ws, "m6", "고마워요").await.pop().unwrap();
    assert!(!text(&after).contains("얼마나 자주"), "{after}");
    app.stop().await;
}

#[tokio::test]
async fn risk_in_the_middle_of_the_self_check_interrupts_it_with_the_safety_answer() {
    let app = app().await;
    let (mut ws, conv, _) = open(&app).await;
    let q1 = say(&mut ws, "m1", "외로움 자가진단").await.pop().unwrap();
    assert!(text(&q1).contains("함께할 사람"), "the first item: {q1}");
    let q2 = say(&mut ws, "m2", "2").await.pop().unwrap();
    assert!(text(&q2).contains("빠져"), "the second item: {q2}");
    assert_eq!(
        record(&app, &conv).await.conversation.state.name(),
        "self_check"
    );
    // High risk: the safety answer (109), a counselor is asked for; no further item.
    let frames = say_until(&mut ws, "m3", "죽고 싶어요", |v| v["type"] == "queue").await;
    let safety = frames
        .iter()
        .find(|v| v["type"] == "bot" || v["type"] == "safety")
        .unwrap();
    assert!(
        text(safety).contains("109") || phones(safety).contains(&"109".to_owned()),
        "{safety}"
    );
    assert!(
        !frames
            .iter()
            .any(|v| text(v).contains("빠져") || text(v).contains("고립되어")),
        "the self-check went on: {frames:?}"
    );
    let r = record(&app, &conv).await;
    assert_eq!(r.conversation.state.name(), "queued");
    assert_eq!(r.selfcheck, None);

    // Medium risk mid-check: the screener's first question instead of the next item.
    let (mut ws, _, _) = open(&app).await;
    let q1 = say(&mut ws, "n1", "외로움 테스트 하고 싶어요")
        .await
        .pop()
        .unwrap();
    assert!(text(&q1).contains("함께할 사람"), "the first item: {q1}");
    let frames = say(&mut ws, "n2", "아침에 눈 안 떴으면 좋겠어").await;
    let asked = frames.last().unwrap();
    assert!(
        text(asked).contains("죽었으면"),
        "the screener asks: {asked}"
    );
    app.stop().await;
}

/// Medium words, then "no" to every screener question: the screener ends at `medium` and
/// the bot offers a safety plan. Returns the offer.
async fn screened_medium(ws: &mut Ws) -> Value {
    let first = say(ws, "s0", "아침에 눈 안 떴으면 좋겠어")
        .await
        .pop()
        .unwrap();
    assert!(text(&first).contains("죽었으면"), "{first}");
    say(ws, "s1", "아니요").await;
    say(ws, "s2", "아니요").await;
    let frames = say_until(ws, "s3", "아니요", |v| {
        v["type"] == "bot" && text(v).contains("안전계획")
    })
    .await;
    frames.last().unwrap().clone()
}

#[tokio::test]
async fn the_bot_walks_a_safety_plan_after_a_medium_screener_and_resume_gets_it_back() {
    let app = app().await;
    let (mut ws, conv, token) = open(&app).await;
    let offer = screened_medium(&mut ws).await;
    let labels: Vec<&str> = offer["quick_replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["text"].as_str().unwrap())
        .collect();
    assert_eq!(&labels[..2], ["네", "아니요"], "yes and no: {offer}");
    assert!(
        labels.iter().any(|l| l.contains("상담사")),
        "a counselor stays one tap away: {offer}"
    );

    // Yes: step 1 is asked, with a skip button.
    let step1 = say(&mut ws, "p0", labels[0]).await.pop().unwrap();
    assert!(text(&step1).contains("1단계"), "{step1}");
    assert_eq!(step1["quick_replies"][0]["text"], "건너뛰기");

    // Each answer becomes an item, and the plan arrives whole.
    let frames = say_until(&mut ws, "p1", "밤에 혼자 방에 있을 때", |v| {
        v["type"] == "safety_plan"
    })
    .await;
    let plan = frames.last().unwrap();
    assert_eq!(items(plan, 1), ["밤에 혼자 방에 있을 때"]);
    say_until(&mut ws, "p2", "산책하기", |v| {
        v["type"] == "safety_plan"
    })
    .await;
    say(&mut ws, "p3", "건너뛰기").await; // step 3 skipped
    // Step 4's answer: the plan now holds step 5's prefilled lines too.
    let frames = say_until(&mut ws, "p4", "언니", |v| v["type"] == "safety_plan").await;
    let plan = frames.last().unwrap();
    assert_eq!(items(plan, 4), ["언니"]);
    let five = items(plan, 5).join(" ");
    assert!(five.contains("109") && five.contains("1577-0199"), "{plan}");
    assert!(items(plan, 3).is_empty());
    say(&mut ws, "p5", "건너뛰기").await;
    let frames = say_until(&mut ws, "p6", "믿는 사람과 같이 있기", |v| {
        v["type"] == "bot" && text(v).contains("저장")
    })
    .await;
    let plan = frames
        .iter()
        .rev()
        .find(|v| v["type"] == "safety_plan")
        .or(None);
    // The last plan frame may follow the closing words; wait for it if so.
    let plan = match plan {
        Some(p) => p.clone(),
        None => until(&mut ws, "safety_plan").await.pop().unwrap(),
    };
    assert_eq!(items(&plan, 6), ["믿는 사람과 같이 있기"]);
    assert_eq!(items(&plan, 2), ["산책하기"]);

    // The plan is in the transcript as plan_item events, written by the citizen and the bot.
    assert_eq!(record(&app, &conv).await.conversation.state.name(), "bot");

    // Resume later: the plan comes right after welcome.
    drop(ws);
    let seq = plan["seq"].as_u64().unwrap();
    let mut again = app.resume(&conv, &token, seq).await;
    let w = next(&mut again).await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["resumed"], true);
    let p = next(&mut again).await;
    assert_eq!(p["type"], "safety_plan", "{p}");
    assert_eq!(items(&p, 1), ["밤에 혼자 방에 있을 때"]);
    assert_eq!(items(&p, 6), ["믿는 사람과 같이 있기"]);
    app.stop().await;
}

#[tokio::test]
async fn high_risk_during_the_walk_hands_off_and_keeps_the_plan() {
    let app = app().await;
    let (mut ws, conv, _) = open(&app).await;
    let offer = screened_medium(&mut ws).await;
    let yes = offer["quick_replies"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    say(&mut ws, "p0", &yes).await;
    say_until(&mut ws, "p1", "잠이 안 올 때", |v| {
        v["type"] == "safety_plan"
    })
    .await;
    let frames = say_until(&mut ws, "p2", "죽고 싶어요", |v| v["type"] == "queue").await;
    assert!(
        !frames.iter().any(|v| v["type"] == "safety_plan"),
        "risk words are not a plan item: {frames:?}"
    );
    assert!(
        !frames.iter().any(|v| text(v).contains("3단계")),
        "the walk went on: {frames:?}"
    );
    assert_eq!(
        record(&app, &conv).await.conversation.state.name(),
        "queued"
    );
    app.stop().await;
}

/// A conversation in kim's hands: (app, citizen socket, conversation id, kim's socket).
async fn held_by_kim() -> (TestApp, Ws, String, Ws) {
    let app = app().await;
    let kim = app.login("kim").await;
    let (mut ws, conv, _) = open(&app).await;
    send(&mut ws, json!({"type": "request_human"})).await;
    until(&mut ws, "queue").await;
    let mut k = app.counselor(&kim).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    assert_eq!(about(&mut k, &conv, "claimed").await["type"], "claimed");
    until(&mut ws, "counselor_joined").await;
    (app, ws, conv, k)
}

#[tokio::test]
async fn the_counselor_holding_the_conversation_adds_plan_items() {
    let (app, mut ws, conv, mut k) = held_by_kim().await;
    // Kim adds a person to step 4 (the brief's `conversation` field name is accepted).
    send(
        &mut k,
        json!({"type": "plan_item", "conversation": conv, "step": 4, "text": "엄마에게 전화하기"}),
    )
    .await;
    let plan = until(&mut ws, "safety_plan").await.pop().unwrap();
    assert_eq!(items(&plan, 4), ["엄마에게 전화하기"]);
    // An empty plan starts with step 5's prefilled lines.
    assert!(items(&plan, 5).join(" ").contains("109"), "{plan}");
    let mine = about(&mut k, &conv, "safety_plan").await;
    assert_eq!(mine["type"], "safety_plan", "{mine}");
    assert_eq!(items(&mine, 4), ["엄마에게 전화하기"]);
    // A second item adds to the plan, no second prefill.
    send(
        &mut k,
        json!({"type": "plan_item", "conversation_id": conv, "step": 2, "text": "음악 듣기"}),
    )
    .await;
    let plan = until(&mut ws, "safety_plan").await.pop().unwrap();
    assert_eq!(items(&plan, 2), ["음악 듣기"]);
    assert_eq!(items(&plan, 4), ["엄마에게 전화하기"]);
    assert_eq!(items(&plan, 5).len(), 3, "{plan}");

    // A step outside 1-6 is a bad field.
    send(
        &mut k,
        json!({"type": "plan_item", "conversation_id": conv, "step": 9, "text": "x"}),
    )
    .await;
    loop {
        let v = next(&mut k).await;
        if v["type"] == "error" {
            assert_eq!(v["code"], "bad_field");
            break;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_plan_item_from_a_counselor_who_does_not_hold_the_conversation_is_refused() {
    let (app, mut ws, conv, _k) = held_by_kim().await;
    let lee = app.login("lee").await;
    let mut l = app.counselor(&lee).await;
    send(
        &mut l,
        json!({"type": "plan_item", "conversation_id": conv, "step": 2, "text": "음악 듣기"}),
    )
    .await;
    let refused = about(&mut l, &conv, "error").await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not_yours");
    // Nothing changed for the citizen, and nothing was stored.
    none_of(&mut ws, "safety_plan", Duration::from_millis(500)).await;
    let id = ConversationId::parse(&conv).unwrap();
    let key = app.state.keyring.key(id).await.unwrap().unwrap();
    let events = ieum::transcript::events_after(&app.state.store, id, &key, 0, u64::MAX)
        .await
        .unwrap();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.body, ieum::conversation::EventBody::PlanItem { .. })),
        "{events:?}"
    );
    app.stop().await;
}
