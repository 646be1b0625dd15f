//! The crisis path under storage faults (issue 18): a store that refuses writes still
//! gives the safety answer and the handoff, never acknowledges what it did not save, says
//! so on `/healthz`, and recovers by itself when the fault clears, without a restart.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ieum::store::MemoryBackend;
use serde_json::{Value, json};

async fn healthz(app: &TestApp) -> (u16, Value) {
    let (status, _, body) = request(app.port, "GET", "/healthz", None, None).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Frames until `pred` holds for one, within `wait`.
async fn frames_until(ws: &mut Ws, wait: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        let v = tokio::time::timeout_at(deadline, next(ws))
            .await
            .unwrap_or_else(|_| panic!("not within {wait:?}: {seen:?}"));
        let done = pred(&v);
        seen.push(v);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn a_refused_write_still_gets_the_safety_answer_and_the_handoff_and_recovers() {
    let backend = Arc::new(MemoryBackend::new());
    // Like sled: once a write failed, writes keep failing until the store reopens it.
    backend.set_sticky_failures(true);
    let b = backend.clone();
    let app = spawn_in(tempfile::tempdir().unwrap(), move |s| {
        s.backend = Some(ieum::app::BackendOverride(b));
    })
    .await;
    let boss = app.login("boss").await;
    // A counselor's console is open (it logged in while the store worked).
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    assert_eq!(next(&mut k).await["type"], "hello");
    let mut c = app.citizen("").await;
    let welcome = next(&mut c).await;
    let conv = welcome["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(healthz(&app).await.0, 200);

    backend.set_fail_writes(true);
    send(
        &mut c,
        json!({"type": "message", "id": "risk", "text": "죽고 싶어요"}),
    )
    .await;
    let frames = frames_until(&mut c, Duration::from_secs(3), |f| f["type"] == "queue").await;
    assert!(
        !frames.iter().any(|f| f["type"] == "ack"),
        "nothing unsaved is acknowledged"
    );
    let err = frames.iter().find(|f| f["type"] == "error").unwrap();
    assert_eq!(err["code"], "not_saved");
    assert_eq!(err["id"], "risk");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("저장하지 못했어요") && msg.contains("109"),
        "{msg}"
    );
    let safety = frames.iter().find(|f| f["type"] == "safety").unwrap();
    assert_eq!(safety["unsaved"], true);
    assert!(safety["text"].as_str().unwrap().contains("109"), "{safety}");
    // In the queue now, at its level, so a counselor sees it (and hears the alarm).
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
    assert_eq!(entry["level"], "high");
    // Staff reads are audited first; with the store refusing writes they are refused too
    // (no audit, no read), and say why.
    assert_eq!(app.get_json("/api/queue", &boss).await.0, 500);
    // Health says so.
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "degraded");
    let (_, _, metrics) = request(app.port, "GET", "/metrics", None, None).await;
    assert!(metrics.contains("ieum_store_writable 0"), "a metric for it");

    // The fault clears: the store recovers by itself within seconds, no restart.
    backend.set_fail_writes(false);
    let started = Instant::now();
    while healthz(&app).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "recovered within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        backend.recover_count() >= 1,
        "the store reopened its backend"
    );
    // The held handoff is now durable: the transcript shows it queued.
    let started = Instant::now();
    loop {
        let (status, t) = app
            .get_json(&format!("/api/conversations/{conv}"), &boss)
            .await;
        if status == 200 && t["conversation"]["state"] == "queued" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "handoff stored: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Messages and logins work again.
    send(
        &mut c,
        json!({"type": "message", "id": "again", "text": "죽고 싶어요"}),
    )
    .await;
    frames_until(&mut c, Duration::from_secs(3), |f| {
        f["type"] == "ack" && f["id"] == "again"
    })
    .await;
    app.login("kim").await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    until(&mut k, "claimed").await;
    app.stop().await;
}

/// A request for a person is not lost to a full disk either.
#[tokio::test]
async fn asking_for_a_person_on_a_refusing_store_is_held_too() {
    let backend = Arc::new(MemoryBackend::new());
    let b = backend.clone();
    let app = spawn_in(tempfile::tempdir().unwrap(), move |s| {
        s.backend = Some(ieum::app::BackendOverride(b));
    })
    .await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    next(&mut k).await;
    let mut c = app.citizen("").await;
    let conv = next(&mut c).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    backend.set_fail_writes(true);
    send(&mut c, json!({"type": "request_human"})).await;
    let frames = frames_until(&mut c, Duration::from_secs(3), |f| f["type"] == "queue").await;
    assert!(frames.iter().any(|f| f["code"] == "not_saved"));
    loop {
        let q = until(&mut k, "queue").await.pop().unwrap();
        if q["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["conversation_id"] == conv.as_str())
        {
            break;
        }
    }
    backend.set_fail_writes(false);
    app.stop().await;
}

/// A real full disk (a small tmpfs): sled fails, and keeps failing after space returns
/// until it is reopened; the service does that by itself. Needs `mount` (root); where the
/// machine does not allow it, says so and checks nothing more (the failure-injection test
/// above covers the same path).
#[tokio::test]
async fn a_full_disk_is_survived_without_a_restart() {
    if on_postgres() {
        eprintln!(
            "SKIPPED a_full_disk_is_survived_without_a_restart: it fills the disk under sled's \
             directory; PostgreSQL keeps the store elsewhere (tests/postgres.rs restarts \
             PostgreSQL mid-run instead)"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED a_full_disk_is_survived_without_a_restart: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let data = mnt.join("data");
    let app = spawn_in(root, {
        let data = data.clone();
        move |s| s.data_dir = data
    })
    .await;
    let boss = app.login("boss").await;
    // Fill the disk, leaving a little room.
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let mut c = app.citizen("").await;
    next(&mut c).await;
    let long = "외로워요 ".repeat(350);
    let mut refused = false;
    for i in 0..400 {
        send(
            &mut c,
            json!({"type": "message", "id": format!("m{i}"), "text": long}),
        )
        .await;
        let frames = frames_until(&mut c, Duration::from_secs(5), |f| {
            f["type"] == "ack" || f["type"] == "error"
        })
        .await;
        if frames.last().unwrap()["code"] == "not_saved" {
            refused = true;
            break;
        }
    }
    assert!(refused, "the disk filled up");
    // The crisis path while full.
    send(
        &mut c,
        json!({"type": "message", "id": "risk", "text": "지금 죽고 싶어요"}),
    )
    .await;
    let frames = frames_until(&mut c, Duration::from_secs(5), |f| f["type"] == "safety").await;
    assert!(frames.iter().any(|f| f["code"] == "not_saved"));
    assert_eq!(healthz(&app).await.0, 503);
    // Space returns: the service recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    while healthz(&app).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "recovered within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    send(
        &mut c,
        json!({"type": "message", "id": "after", "text": "이제 괜찮아요"}),
    )
    .await;
    frames_until(&mut c, Duration::from_secs(5), |f| {
        f["type"] == "ack" && f["id"] == "after"
    })
    .await;
    let (status, _, _) = request(
        app.port,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": "kim", "password": "a long password"})),
    )
    .await;
    assert_eq!(status, 200, "logins work again");
    let _ = boss;
    app.stop().await;
}
