//! Casework over real HTTP and websockets: case notes, follow-ups, referrals and the
//! statistics, with every cross-role read tried (issue 19).

mod common;

use common::*;
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, body) = request(app.port, method, path, Some(token), body).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A citizen handed off at `high`, claimed by `counselor`: (citizen socket, conversation,
/// counselor socket).
async fn held_with(app: &TestApp, counselor: &str) -> (Ws, String, Ws) {
    let mut c = app.citizen("").await;
    let w = next(&mut c).await;
    let conv = w["conversation_id"].as_str().unwrap().to_owned();
    send(
        &mut c,
        json!({"type": "message", "id": "m1", "text": "죽고 싶어요"}),
    )
    .await;
    until(&mut c, "queue").await;
    let token = app.login(counselor).await;
    let mut k = app.counselor(&token).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    loop {
        let v = next(&mut k).await;
        if v["conversation_id"] == conv.as_str() && v["type"] == "claimed" {
            break;
        }
        assert_ne!(v["type"], "error", "{v}");
    }
    until(&mut c, "counselor_joined").await;
    (c, conv, k)
}

async fn held_by(app: &TestApp, counselor: &str) -> (Ws, String) {
    let (c, conv, _k) = held_with(app, counselor).await;
    (c, conv)
}

async fn waiting(app: &TestApp) -> (Ws, String) {
    let mut c = app.citizen("").await;
    let w = next(&mut c).await;
    let conv = w["conversation_id"].as_str().unwrap().to_owned();
    send(&mut c, json!({"type": "request_human"})).await;
    until(&mut c, "queue").await;
    (c, conv)
}

async fn audited(app: &TestApp, boss: &str, action: &str, conv: Option<&str>) -> bool {
    let (_, a) = app.get_json("/api/audit", boss).await;
    a["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == action && conv.is_none_or(|c| r["conversation_id"] == c))
}

#[tokio::test]
async fn case_notes_are_for_the_counselor_who_held_it_and_supervisors_with_an_assessment() {
    let app = spawn().await;
    let (kim, lee, boss) = (
        app.login("kim").await,
        app.login("lee").await,
        app.login("boss").await,
    );
    let (mut c, conv, mut k) = held_with(&app, "kim").await;
    // A safety plan written together: the counselor adds a person to step 4.
    send(
        &mut k,
        json!({"type": "plan_item", "conversation_id": conv, "step": 4, "text": "언니에게 전화하기"}),
    )
    .await;
    until(&mut c, "safety_plan").await;
    let path = format!("/api/conversations/{conv}/notes");

    let (s, note) = call(
        &app,
        "POST",
        &path,
        &kim,
        Some(json!({"text": "첫 면담: 안전 계획 함께 세움"})),
    )
    .await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(note["author"], "kim");
    let (s, _) = call(&app, "POST", &path, &kim, Some(json!({"text": "   "}))).await;
    assert_eq!(s, 400, "an empty note is refused");

    // Another counselor: neither read nor write.
    assert_eq!(call(&app, "GET", &path, &lee, None).await.0, 403);
    assert_eq!(
        call(&app, "POST", &path, &lee, Some(json!({"text": "x"})))
            .await
            .0,
        403
    );
    // No session at all.
    assert_eq!(request(app.port, "GET", &path, None, None).await.0, 401);

    let (s, v) = call(&app, "GET", &path, &boss, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["notes"][0]["text"], "첫 면담: 안전 계획 함께 세움");
    let a = &v["assessment"];
    assert_eq!(a["level"], "high");
    assert_eq!(a["handoff_level"], "high");
    let why = a["why"].as_array().unwrap();
    assert!(
        why.iter()
            .any(|r| r["level"] == "high" || r["level"] == "imminent"),
        "the rules that raised it are named: {a}"
    );
    // The safety plan is part of the summary: step 5 starts with the lines to call.
    let plan = a["safety_plan"].as_array().unwrap();
    assert_eq!(plan.len(), 6);
    assert_eq!(plan[3]["step"], 4);
    assert_eq!(plan[3]["items"][0], "언니에게 전화하기");
    assert!(audited(&app, &boss, "read_notes", Some(&conv)).await);
    assert!(audited(&app, &boss, "add_note", Some(&conv)).await);

    // A conversation waiting for the team: any counselor may work on its case.
    let (_w, team) = waiting(&app).await;
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/conversations/{team}/notes"),
        &lee,
        Some(json!({"text": "대기 중 메모"})),
    )
    .await;
    assert_eq!(s, 201);
    // A conversation that does not exist.
    let missing = "00000000000000000000000000000000";
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/conversations/{missing}/notes"),
            &boss,
            None
        )
        .await
        .0,
        404
    );
    app.stop().await;
}

fn consent() -> Value {
    json!({"given": true, "words": "네, 다음 주에 전화 주셔도 돼요"})
}

#[tokio::test]
async fn follow_ups_need_consent_come_due_first_escalate_and_drop_the_contact_when_they_end() {
    let app = spawn().await;
    let (kim, lee, boss) = (
        app.login("kim").await,
        app.login("lee").await,
        app.login("boss").await,
    );
    let (_c, conv) = held_by(&app, "kim").await;
    let now = ieum::ids::now_ms();
    let base = json!({
        "conversation": conv, "kind": "call", "due_at": now - 60_000,
        "assigned_to": "kim", "contact": {"kind": "phone", "number": "010-1234-5678"},
    });
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };

    // Consent first.
    let (s, e) = call(
        &app,
        "POST",
        "/api/followups",
        &kim,
        Some(with(json!({"consent": {"given": false}}))),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("consent_required"))
    );
    // A call needs a phone number the person gave.
    let (s, _) = call(
        &app,
        "POST",
        "/api/followups",
        &kim,
        Some(with(json!({"consent": consent(), "contact": null}))),
    )
    .await;
    assert_eq!(s, 400);
    // Nobody named "lle".
    let (s, _) = call(
        &app,
        "POST",
        "/api/followups",
        &kim,
        Some(with(json!({"consent": consent(), "assigned_to": "lle"}))),
    )
    .await;
    assert_eq!(s, 400);
    // A date no person means.
    let (s, _) = call(
        &app,
        "POST",
        "/api/followups",
        &kim,
        Some(with(json!({"consent": consent(), "due_at": u64::MAX}))),
    )
    .await;
    assert_eq!(s, 400);
    // More than 8 weekly sessions.
    let (s, _) = call(
        &app,
        "POST",
        "/api/followups",
        &kim,
        Some(with(json!({"consent": consent(), "sessions": 9}))),
    )
    .await;
    assert_eq!(s, 400);
    // Another counselor cannot plan on kim's case.
    let (s, _) = call(
        &app,
        "POST",
        "/api/followups",
        &lee,
        Some(with(json!({"consent": consent()}))),
    )
    .await;
    assert_eq!(s, 403);

    // A due call, assigned to kim; and a weekly series of 3 check-ins for the team.
    let (s, due) = call(
        &app,
        "POST",
        "/api/followups",
        &kim,
        Some(with(json!({"consent": consent()}))),
    )
    .await;
    assert_eq!(s, 201, "{due}");
    let due_id = due["followups"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(due["followups"][0]["status"], "due");
    assert_eq!(due["followups"][0]["consent"]["recorded_by"], "kim");
    let (s, series) = call(
        &app,
        "POST",
        "/api/followups",
        &kim,
        Some(json!({
            "conversation": conv, "kind": "check_in", "due_at": now + 86_400_000, "sessions": 3,
            "consent": consent(), "contact": {"kind": "chat_return"},
        })),
    )
    .await;
    assert_eq!(s, 201, "{series}");
    let s3 = series["followups"].as_array().unwrap();
    assert_eq!(s3.len(), 3);
    assert_eq!(s3[2]["series"]["index"], 3);
    assert_eq!(
        s3[1]["due_at"].as_u64().unwrap() - s3[0]["due_at"].as_u64().unwrap(),
        7 * 86_400_000,
        "weekly"
    );

    // kim's list: the due one first.
    let (_, list) = app.get_json("/api/followups", &kim).await;
    let list = list["followups"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[0]["id"], due_id.as_str());
    // lee sees the team's (unassigned) ones, never kim's own.
    let (_, lees) = app.get_json("/api/followups", &lee).await;
    let lees = lees["followups"].as_array().unwrap();
    assert_eq!(lees.len(), 3, "{lees:?}");
    assert!(lees.iter().all(|f| f["assigned_to"].is_null()));
    assert_eq!(
        app.get_json(&format!("/api/followups/{due_id}"), &lee)
            .await
            .0,
        403
    );
    let attempt = |o: &str| json!({"outcome": o});
    let path = format!("/api/followups/{due_id}/attempts");
    assert_eq!(
        call(&app, "POST", &path, &lee, Some(attempt("no_answer")))
            .await
            .0,
        403
    );

    // A high case unanswered twice goes to a supervisor.
    let (s, v) = call(&app, "POST", &path, &kim, Some(attempt("no_answer"))).await;
    assert_eq!((s, v["status"].as_str()), (201, Some("due")));
    let (_, v) = call(&app, "POST", &path, &kim, Some(attempt("no_answer"))).await;
    assert_eq!(v["status"], "escalated");
    assert!(audited(&app, &boss, "followup_escalated", Some(&conv)).await);
    let (_, bl) = app.get_json("/api/followups?status=escalated", &boss).await;
    assert_eq!(bl["followups"][0]["id"], due_id.as_str());
    // The supervisor reaches the person: done, and the number is gone.
    let (_, v) = call(&app, "POST", &path, &boss, Some(attempt("reached"))).await;
    assert_eq!(v["status"], "done");
    let (s, v) = app
        .get_json(&format!("/api/followups/{due_id}"), &boss)
        .await;
    assert_eq!(s, 200);
    assert!(v["contact"].is_null(), "destroyed when it ended: {v}");
    assert_eq!(v["attempts"].as_array().unwrap().len(), 3);
    let (s, e) = call(&app, "POST", &path, &kim, Some(attempt("reached"))).await;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("ended")));
    assert!(audited(&app, &boss, "list_followups", None).await);
    app.stop().await;
}

#[tokio::test]
async fn referrals_move_to_an_outcome_with_a_printable_form() {
    let app = spawn().await;
    let (kim, lee, boss) = (
        app.login("kim").await,
        app.login("lee").await,
        app.login("boss").await,
    );
    let (_c, conv) = held_by(&app, "kim").await;
    let body = json!({
        "conversation": conv,
        "to": {"kind": "district_centre", "name": "마포구 <종합>사회복지관", "resource": "isolation_agency"},
        "consent": {"given": true},
        "shared": {"summary": "혼자 지낸 지 2년, 주 1회 만남 희망", "district": "마포구"},
        "check_at": ieum::ids::now_ms() - 1000,
    });
    let (s, e) = call(
        &app,
        "POST",
        "/api/referrals",
        &kim,
        Some(json!({"conversation": conv, "to": body["to"], "consent": {"given": false}})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("consent_required"))
    );
    let (s, r) = call(&app, "POST", "/api/referrals", &kim, Some(body.clone())).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["status"], "sent");
    let id = r["id"].as_str().unwrap().to_owned();
    let path = format!("/api/referrals/{id}");

    // The check date has passed and nothing confirmed it: listed first as check-due.
    let (_, l) = app.get_json("/api/referrals?status=check_due", &kim).await;
    assert_eq!(l["referrals"][0]["id"], id.as_str());
    // Other counselors: not theirs.
    assert_eq!(app.get_json(&path, &lee).await.0, 403);
    assert_eq!(app.get_json(&format!("{path}/form"), &lee).await.0, 403);
    assert_eq!(
        call(
            &app,
            "PATCH",
            &path,
            &lee,
            Some(json!({"status": "accepted"}))
        )
        .await
        .0,
        403
    );
    let (_, ll) = app.get_json("/api/referrals", &lee).await;
    assert!(ll["referrals"].as_array().unwrap().is_empty());

    let (s, v) = call(
        &app,
        "PATCH",
        &path,
        &kim,
        Some(json!({"status": "accepted"})),
    )
    .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("accepted")));
    let (s, e) = call(&app, "PATCH", &path, &kim, Some(json!({"status": "sent"}))).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("bad_transition"))
    );
    let (_, v) = call(
        &app,
        "PATCH",
        &path,
        &kim,
        Some(json!({"status": "first_contact"})),
    )
    .await;
    assert_eq!(v["status"], "first_contact");
    let (_, v) = call(
        &app,
        "PATCH",
        &path,
        &boss,
        Some(json!({"status": "connected", "note": "주 1회 모임 참여 중"})),
    )
    .await;
    assert_eq!(v["status"], "connected");
    assert_eq!(v["check_due"], false);
    assert_eq!(v["history"].as_array().unwrap().len(), 4);

    // The hand-over form: plain, printable, escaped.
    let (s, head, html) = request(app.port, "GET", &format!("{path}/form"), Some(&kim), None).await;
    assert_eq!(s, 200);
    assert!(head.to_ascii_lowercase().contains("text/html"));
    assert!(html.contains("마포구 &lt;종합&gt;사회복지관"), "{html}");
    assert!(html.contains("connected") && html.contains("109"));
    assert!(!html.contains("<종합>"));
    assert!(audited(&app, &boss, "referral_form", Some(&conv)).await);
    assert!(audited(&app, &boss, "referral_status", Some(&conv)).await);
    app.stop().await;
}

#[tokio::test]
async fn statistics_count_from_the_records_and_hide_small_numbers() {
    let app = spawn().await;
    let (kim, boss) = (app.login("kim").await, app.login("boss").await);
    assert_eq!(
        app.get_json("/api/stats", &kim).await.0,
        403,
        "supervisors only"
    );
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let mut c = app.citizen("").await;
        next(&mut c).await;
        send(
            &mut c,
            json!({"type": "message", "id": "m", "text": "요즘 너무 외로워요"}),
        )
        .await;
        until(&mut c, "bot").await;
        sockets.push(c);
    }
    // One of them names their district.
    send(
        &mut sockets[0],
        json!({"type": "message", "id": "d", "text": "마포구 살아요"}),
    )
    .await;
    until(&mut sockets[0], "bot").await;
    let (_c, conv) = held_by(&app, "kim").await;
    let (s, r) = call(&app, "POST", "/api/referrals", &kim, Some(json!({
        "conversation": conv, "to": {"kind": "job", "name": "고용24"}, "consent": {"given": true},
    }))).await;
    assert_eq!(s, 201, "{r}");

    let (s, v) = app.get_json("/api/stats?period=month", &boss).await;
    assert_eq!(s, 200, "{v}");
    let total = &v["total"];
    assert_eq!(total["conversations"], 6);
    assert_eq!(total["handoffs"], "<5");
    assert_eq!(total["by_level"]["high"], "<5");
    assert_eq!(total["by_level"]["imminent"], 0);
    assert_eq!(total["by_district"]["마포구"], "<5");
    assert_eq!(total["by_district"]["unknown"], 5);
    assert_eq!(total["referrals"]["sent"], "<5");
    assert_eq!(v["suppressed_below"], 5);
    // A range with nothing in it.
    let (_, empty) = app
        .get_json("/api/stats?from=2020-01-01&to=2020-02-01", &boss)
        .await;
    assert_eq!(empty["total"]["conversations"], 0);
    assert_eq!(
        app.get_json("/api/stats?from=yesterday", &boss).await.0,
        400
    );

    let (s, head, csv) = request(
        app.port,
        "GET",
        "/api/stats?format=csv&period=week",
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(head.to_ascii_lowercase().contains("text/csv"));
    assert!(csv.starts_with("\u{feff}period,measure,key,value\r\n"));
    assert!(csv.contains("total,conversations,,6\r\n"), "{csv}");
    assert!(csv.contains("total,handoffs,,<5\r\n"), "{csv}");
    assert!(audited(&app, &boss, "read_stats", None).await);
    app.stop().await;
}
