//! Bad input, floods, slow and silent peers, caps and storage failures: each row of the
//! hardening table as an integration test against the running service.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Reads until the server closes; returns the close code (None if the socket just ended).
async fn close_code(ws: &mut Ws) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return Some(f.code.into()),
            Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("server did not close within 10 s"),
        }
    }
}

async fn welcomed(app: &TestApp) -> Ws {
    let mut c = app.citizen("").await;
    assert_eq!(next(&mut c).await["type"], "welcome");
    c
}

#[tokio::test]
async fn invalid_utf8_text_frame_closes_1007() {
    let app = spawn().await;
    let mut c = welcomed(&app).await;
    let frame = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
    c.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(close_code(&mut c).await, Some(1007));
    app.stop().await;
}

#[tokio::test]
async fn binary_frames_get_an_error_and_the_connection_stays() {
    let app = spawn().await;
    let mut c = welcomed(&app).await;
    c.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(next(&mut c).await["code"], "binary_not_supported");
    send(
        &mut c,
        json!({"type": "message", "id": "a", "text": "안녕하세요"}),
    )
    .await;
    assert_eq!(until(&mut c, "ack").await.pop().unwrap()["id"], "a");
    app.stop().await;
}

#[tokio::test]
async fn bad_json_unknown_types_missing_fields_and_long_messages_keep_the_connection() {
    let app = spawn().await;
    let mut c = welcomed(&app).await;
    let long = "가".repeat(2_001);
    for (frame, code) in [
        ("{not json".to_owned(), "malformed_json"),
        (json!({"type": "dance"}).to_string(), "unknown_type"),
        (
            json!({"type": "message", "id": "x"}).to_string(),
            "bad_field",
        ),
        (
            json!({"type": "message", "id": "x", "text": long}).to_string(),
            "message_too_long",
        ),
    ] {
        c.send(Message::Text(frame.into())).await.unwrap();
        let e = next(&mut c).await;
        assert_eq!(e["type"], "error");
        assert_eq!(e["code"], code);
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    let e = {
        c.send(Message::Text(
            json!({"type": "message", "id": "long", "text": "가".repeat(2_001)})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        next(&mut c).await
    };
    assert_eq!(
        e["id"], "long",
        "the error names the message, so the widget keeps its text"
    );
    send(
        &mut c,
        json!({"type": "message", "id": "ok", "text": "괜찮아요"}),
    )
    .await;
    let frames = until(&mut c, "bot").await;
    assert!(frames.iter().any(|f| f["type"] == "ack" && f["id"] == "ok"));
    let last = frames
        .iter()
        .filter_map(|f| f["seq"].as_u64())
        .max()
        .unwrap();
    // An error frame carries the last seq sent: seq never goes down.
    c.send(Message::Text("{still not json".into()))
        .await
        .unwrap();
    let e = next(&mut c).await;
    assert_eq!(e["code"], "malformed_json");
    assert_eq!(e["seq"].as_u64(), Some(last));
    app.stop().await;
}

#[tokio::test]
async fn a_frame_over_64_kib_closes_1009() {
    let app = spawn().await;
    let mut c = welcomed(&app).await;
    let big = "a".repeat(70 * 1024);
    let _ = c.send(Message::Text(big.into())).await;
    assert_eq!(close_code(&mut c).await, Some(1009));
    app.stop().await;
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_16_mib_frame_closes_1009_without_buffering_it() {
    // The server as its own process, so its memory can be measured apart from this test's.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = serve_child(port, &dir.path().join("data"), |_| {}).await;
    let connect = || async {
        let url = format!("ws://127.0.0.1:{port}/ws/chat");
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        req.headers_mut().insert(
            "Origin",
            format!("http://127.0.0.1:{port}").parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        next(&mut ws).await;
        ws
    };
    // Warm up so allocator pools exist before the baseline.
    drop(connect().await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(child.id());
    let mut ws = connect().await;
    let huge = vec![b'a'; 16 * 1024 * 1024];
    let _ = ws
        .send(Message::Text(String::from_utf8(huge).unwrap().into()))
        .await;
    assert_eq!(close_code(&mut ws).await, Some(1009));
    let after = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        after < before + 1024,
        "server RSS grew by {} KiB (before {before}, after {after})",
        after.saturating_sub(before)
    );
}

#[tokio::test]
async fn a_flood_is_throttled_with_109_then_closed_and_others_are_unaffected() {
    let app = spawn().await;
    let mut other = welcomed(&app).await;
    // Baseline round trips for a quiet client.
    let mut quiet = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        send(
            &mut other,
            json!({"type": "message", "id": format!("q{i}"), "text": "잘 지내요"}),
        )
        .await;
        until(&mut other, "ack").await;
        quiet.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    let flood = welcomed(&app).await;
    let (mut tx, mut rx) = flood.split();
    let sender = tokio::spawn(async move {
        for i in 0..10_000 {
            let m =
                json!({"type": "message", "id": format!("f{i}"), "text": "심심해요"}).to_string();
            if tx.send(Message::Text(m.into())).await.is_err() {
                break;
            }
        }
    });
    let mut acks = 0;
    let mut limited = 0;
    let mut code = None;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
        match msg {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ack" {
                    acks += 1;
                }
                if v["code"] == "rate_limited" {
                    limited += 1;
                    assert!(v["message"].as_str().unwrap().contains("109"), "{v}");
                    assert!(v["id"].as_str().is_some());
                }
            }
            Ok(Message::Close(f)) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            _ => break,
        }
    }
    let _ = sender.await;
    assert!((1..=30).contains(&acks), "acks {acks}");
    assert!(limited >= 1, "rate_limited frames: {limited}");
    assert_eq!(code, Some(1008));

    // Every accepted message was triaged: the metric counts them all.
    let (_, _, metrics) = request(app.port, "GET", "/metrics", None, None).await;
    let triaged: u64 = metrics
        .lines()
        .find(|l| l.starts_with("ieum_messages_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(
        triaged,
        5 + acks,
        "quiet client's 5 plus every accepted flood message"
    );

    // The quiet client still gets quick acks.
    let t = Instant::now();
    send(
        &mut other,
        json!({"type": "message", "id": "after", "text": "아직 있어요"}),
    )
    .await;
    until(&mut other, "ack").await;
    let after = t.elapsed();
    let worst_quiet = quiet.iter().max().unwrap();
    assert!(
        after < *worst_quiet * 10 + Duration::from_millis(100),
        "ack took {after:?} after the flood (quiet worst {worst_quiet:?})"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_crisis_path_is_never_rate_limited() {
    let app = spawn().await;
    let mut c = welcomed(&app).await;
    for i in 0..12 {
        send(
            &mut c,
            json!({"type": "message", "id": format!("n{i}"), "text": "ㅋㅋ"}),
        )
        .await;
    }
    send(
        &mut c,
        json!({"type": "message", "id": "risk", "text": "지금 죽고 싶어요"}),
    )
    .await;
    let mut risk_acked = false;
    let mut limited = 0;
    for _ in 0..60 {
        let v = next(&mut c).await;
        if v["code"] == "rate_limited" {
            limited += 1;
        }
        if v["type"] == "ack" && v["id"] == "risk" {
            risk_acked = true;
            break;
        }
    }
    assert!(limited >= 1, "the burst was exceeded");
    assert!(
        risk_acked,
        "a high-risk message goes through even when over the limit"
    );
    app.stop().await;
}

#[tokio::test]
async fn origins_are_checked_before_the_upgrade_and_configurable() {
    let app = spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.gateway.allowed_origins = vec!["https://partner.example".into()];
    })
    .await;
    let try_origin = |origin: Option<&'static str>| {
        let port = app.port;
        async move {
            let url = format!("ws://127.0.0.1:{port}/ws/chat");
            let mut req =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                    .unwrap();
            if let Some(o) = origin {
                req.headers_mut().insert("Origin", o.parse().unwrap());
            }
            tokio_tungstenite::connect_async(req)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    assert!(try_origin(None).await.unwrap_err().contains("403"));
    assert!(
        try_origin(Some("https://evil.example"))
            .await
            .unwrap_err()
            .contains("403")
    );
    assert!(try_origin(Some("https://partner.example")).await.is_ok());
    let mut own = app.citizen("").await;
    assert_eq!(next(&mut own).await["type"], "welcome");
    app.stop().await;
}

#[tokio::test]
async fn staff_socket_with_a_bad_token_is_401() {
    let app = spawn().await;
    let url = format!("ws://127.0.0.1:{}/ws/counselor", app.port);
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut()
        .insert("Authorization", "Bearer not-a-real-token".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn slow_handshakes_are_dropped_and_staff_can_still_log_in() {
    let app = spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.gateway.header_timeout = Duration::from_millis(500);
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .unwrap();
        s.write_all(b"GET /ws/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
            .await
            .unwrap();
        slow.push(s);
    }
    // Staff log in while the slow handshakes hang.
    let token = app.login("kim").await;
    assert!(!token.is_empty());
    // Each slow connection is closed by the server.
    let started = Instant::now();
    for s in &mut slow {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("dropped within the timeout")
            .unwrap_or(0);
        // hyper may answer 408 before closing; either way the socket ends.
        if n > 0 {
            let rest = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
            assert!(matches!(rest, Ok(Ok(0)) | Ok(Err(_))));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    app.stop().await;
}

#[tokio::test]
async fn a_silent_peer_is_detected_and_freed() {
    let app = spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.gateway.limits.ping = Duration::from_millis(300);
    })
    .await;
    let c = welcomed(&app).await;
    // Never read again: pings go unanswered.
    let gauge = || async {
        let (_, _, m) = request(app.port, "GET", "/metrics", None, None).await;
        m.lines()
            .find(|l| l.starts_with("ieum_citizen_connections "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(gauge().await, 1);
    let started = Instant::now();
    while gauge().await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "silent peer still held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(c);
    app.stop().await;
}

#[tokio::test]
async fn over_the_cap_a_citizen_is_told_to_wait_or_call_109() {
    let app = spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.gateway.max_citizens = 2;
    })
    .await;
    let _a = welcomed(&app).await;
    let _b = welcomed(&app).await;
    let mut c = app.citizen("").await;
    let v = next(&mut c).await;
    assert_eq!(v["code"], "server_busy");
    assert!(v["message"].as_str().unwrap().contains("109"));
    assert_eq!(close_code(&mut c).await, Some(1013));
    app.stop().await;
}

#[tokio::test]
async fn a_storage_failure_never_acks_and_says_not_saved() {
    let backend = Arc::new(ieum::store::MemoryBackend::new());
    let b = backend.clone();
    let app = spawn_in(tempfile::tempdir().unwrap(), move |s| {
        s.backend = Some(ieum::app::BackendOverride(b));
    })
    .await;
    let mut c = welcomed(&app).await;
    backend.set_fail_writes(true);
    send(
        &mut c,
        json!({"type": "message", "id": "lost?", "text": "들리나요"}),
    )
    .await;
    let v = next(&mut c).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], "not_saved");
    assert_eq!(v["id"], "lost?");
    none_of(&mut c, "ack", Duration::from_millis(300)).await;
    backend.set_fail_writes(false);
    send(
        &mut c,
        json!({"type": "message", "id": "again", "text": "들리나요"}),
    )
    .await;
    assert_eq!(until(&mut c, "ack").await.pop().unwrap()["id"], "again");
    app.stop().await;
}
