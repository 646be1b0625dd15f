//! Faults and attacks, second pass (issue 18): a hostile client's frames and connections,
//! password guessing, sessions and origins, cookies and cache headers. Each test runs
//! against the service booted as `main` boots it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn welcomed(app: &TestApp) -> Ws {
    let mut c = app.citizen("").await;
    assert_eq!(next(&mut c).await["type"], "welcome");
    c
}

/// 10,000 malformed frames on an open socket: a few error replies, then `rate_limited`,
/// then the socket is closed (1008); not 10,000 replies.
#[tokio::test]
async fn a_flood_of_malformed_frames_is_throttled_and_closed() {
    let app = spawn().await;
    let c = welcomed(&app).await;
    let (mut tx, mut rx) = c.split();
    let flood = tokio::spawn(async move {
        for _ in 0..10_000 {
            if tx.send(Message::Text("{not json".into())).await.is_err() {
                break;
            }
        }
        tx
    });
    let started = Instant::now();
    let mut errors = 0;
    let mut limited = 0;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["code"] == "rate_limited" {
                    limited += 1;
                } else {
                    errors += 1;
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => break f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            other => panic!("no close: {other:?}"),
        }
    };
    let _ = flood.await;
    assert_eq!(close, Some(1008), "closed like a message flood");
    assert!(errors <= 12, "{errors} malformed replies before throttling");
    assert!(
        (1..=40).contains(&limited),
        "{limited} rate_limited replies"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    app.stop().await;
}

/// A rating out of range, or before anyone asked for one, gets `bad_field`, not silence.
#[tokio::test]
async fn a_bad_or_early_rating_gets_bad_field() {
    let app = spawn().await;
    let mut c = welcomed(&app).await;
    send(&mut c, json!({"type": "rating", "value": 9})).await;
    let e = until(&mut c, "error").await.pop().unwrap();
    assert_eq!(e["code"], "bad_field", "{e}");
    send(&mut c, json!({"type": "rating", "value": 5})).await;
    let e = until(&mut c, "error").await.pop().unwrap();
    assert_eq!(e["code"], "bad_field", "before a counselor closed it: {e}");
    // The connection is still good.
    send(
        &mut c,
        json!({"type": "message", "id": "a", "text": "안녕"}),
    )
    .await;
    assert_eq!(until(&mut c, "ack").await.pop().unwrap()["id"], "a");
    app.stop().await;
}

/// A TCP connection from `ip` (a loopback address of its own: 127.0.0.2 is another
/// client) to the app.
async fn connect_from(ip: &str, port: u16) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    s.connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap()
}

/// Whether the server closed `s` (reads EOF or an error) within `wait`.
async fn closed_within(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(wait, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Silent connections are dropped after the header timeout; one address cannot hold more
/// than its share, and while it holds all it may, new citizens and `/healthz` from other
/// addresses are served.
#[tokio::test]
async fn silent_connections_are_dropped_and_one_address_cannot_take_every_slot() {
    let app = spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.gateway.header_timeout = Duration::from_secs(2);
        s.gateway.max_per_address = 20;
        s.gateway.max_connections = Some(60);
        s.gateway.connection_headroom = 10;
    })
    .await;
    // A citizen already talking (from 127.0.0.1).
    let mut c = app.citizen("").await;
    assert_eq!(next(&mut c).await["type"], "welcome");

    // 30 silent sockets from one address: 20 are held, the rest are closed at once.
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..30 {
        held.push(connect_from("127.0.0.2", app.port).await);
    }
    let mut refused = 0;
    for s in held.iter_mut() {
        if closed_within(s, Duration::from_millis(20)).await {
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "20 per address");
    // Others are served meanwhile.
    let (status, _, _) = request(app.port, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    let mut c2 = app.citizen("").await;
    assert_eq!(next(&mut c2).await["type"], "welcome");

    // Near the total cap (60, the last 10 kept back), addresses with many connections are
    // refused and ones with few are still let in.
    let mut crowd = Vec::new();
    for i in 0..2u8 {
        for _ in 0..20 {
            crowd.push(connect_from(&format!("127.0.1.{i}"), app.port).await);
        }
    }
    let (status, _, _) = request(app.port, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200, "the headroom keeps /healthz reachable");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the checks above ran inside the header timeout"
    );

    // And the silent ones are gone after the header timeout.
    tokio::time::sleep(Duration::from_millis(2_500).saturating_sub(started.elapsed())).await;
    let mut still_open = 0;
    for s in held.iter_mut().chain(crowd.iter_mut()) {
        if !closed_within(s, Duration::from_millis(500)).await {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "silent connections are dropped after the header timeout"
    );
    // The citizen who was talking is still there.
    send(
        &mut c,
        json!({"type": "message", "id": "a", "text": "안녕"}),
    )
    .await;
    assert_eq!(until(&mut c, "ack").await.pop().unwrap()["id"], "a");
    app.stop().await;
}

async fn try_login(port: u16, user: &str, password: &str) -> (u16, String, String) {
    request(
        port,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": user, "password": password})),
    )
    .await
}

/// Guessing a password: after a few wrong ones each try must wait longer (429 with
/// `Retry-After`), then the account locks, even for the right password, until a supervisor
/// enables it; every wrong password is in the audit log.
#[tokio::test]
async fn password_guessing_is_slowed_locked_and_audited() {
    let app = spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.login_policy = ieum::auth::LoginPolicy {
            base_delay: Duration::from_millis(150),
            max_delay: Duration::from_millis(150),
            lock_after: 6,
            ..ieum::auth::LoginPolicy::default()
        };
    })
    .await;
    let boss = app.login("boss").await;
    let mut wrong = 0;
    let mut throttled = 0;
    let mut locked = false;
    for _ in 0..50 {
        let (status, head, body) = try_login(app.port, "kim", "not the password").await;
        match status {
            401 => wrong += 1,
            429 if body.contains("too_many_attempts") => {
                throttled += 1;
                assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
            }
            429 if body.contains("account_locked") => {
                locked = true;
                break;
            }
            other => panic!("{other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(throttled > 0, "tries too close together are refused");
    assert!(locked, "the account locks");
    assert_eq!(wrong, 6);
    let (status, _, body) = try_login(app.port, "kim", "a long password").await;
    assert_eq!(status, 429, "locked even for the right password: {body}");
    // A supervisor lifts the lock.
    let (status, _, _) = request(
        app.port,
        "POST",
        "/api/staff/kim/enable",
        Some(&boss),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = try_login(app.port, "kim", "a long password").await;
    assert_eq!(status, 200);
    let (_, audit) = app.get_json("/api/audit", &boss).await;
    let records = audit["records"].as_array().unwrap();
    let failed = records
        .iter()
        .filter(|r| r["action"] == "login_failed" && r["actor"] == "kim")
        .count();
    assert_eq!(failed, 5, "every wrong password is audited");
    assert!(records.iter().any(|r| r["action"] == "account_locked"));
    app.stop().await;
}

fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// 64 logins at once: password checks are bounded (the rest wait or get 429 `busy`), so
/// memory stays bounded (argon2 takes about 19 MiB per check).
#[tokio::test]
async fn a_parallel_login_flood_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve_child(port, dir.path(), |_| {}).await;
    let pid = server.id();
    let before = peak_rss_mib(pid);
    let mut tasks = Vec::new();
    for i in 0..64 {
        tasks.push(tokio::spawn(async move {
            try_login(port, &format!("user{i}"), "a long password")
                .await
                .0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let after = peak_rss_mib(pid);
    println!("login flood: 64 logins at once, peak RSS {before} MiB before, {after} MiB after");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "past the queue, refused at once: {statuses:?}"
    );
    assert!(
        after < before + 150,
        "peak RSS grew from {before} MiB to {after} MiB"
    );
}

async fn counselor_with_origin(app: &TestApp, token: &str, origin: &str) -> Result<Ws, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://127.0.0.1:{}/ws/counselor", app.port);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Cookie", format!("ieum_session={token}").parse().unwrap());
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// A counselor's socket ends with their session (logout), and a page elsewhere cannot open
/// one with their cookie, nor change anything through the API.
#[tokio::test]
async fn sessions_end_their_sockets_and_foreign_origins_are_refused() {
    let app = spawn().await;
    let kim = app.login("kim").await;
    let boss = app.login("boss").await;

    // Cross-site websocket hijacking: a valid cookie from a foreign page is refused.
    let e = counselor_with_origin(&app, &kim, "https://evil.example")
        .await
        .unwrap_err();
    assert!(e.contains("403"), "{e}");
    let mut own = counselor_with_origin(&app, &kim, &app.origin())
        .await
        .unwrap();
    assert_eq!(next(&mut own).await["type"], "hello");

    // State-changing API calls from a foreign page are refused; the same from the service's
    // own pages (or a tool with no Origin) work.
    let post = |path: &'static str, token: String, origin: Option<String>| {
        let port = app.port;
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let body =
                json!({"username": "park", "role": "counselor", "password": "a long password 9"})
                    .to_string();
            let origin = origin
                .map(|o| format!("Origin: {o}\r\n"))
                .unwrap_or_default();
            let req = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n{origin}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u16>()
                .unwrap()
        }
    };
    assert_eq!(
        post(
            "/api/staff",
            boss.clone(),
            Some("https://evil.example".into())
        )
        .await,
        403
    );
    assert_eq!(
        post("/api/staff", boss.clone(), Some(app.origin())).await,
        201
    );

    // Logout ends the session, and its open socket closes at once.
    let (status, _, _) = request(app.port, "POST", "/api/logout", Some(&kim), None).await;
    assert_eq!(status, 204);
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), own.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(1008));
                closed = true;
                break;
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "error" {
                    assert_eq!(v["code"], "session_ended");
                }
            }
            Ok(None) | Ok(Some(Err(_))) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "the counselor's socket closed with the session");
    app.stop().await;
}

/// The session cookie is `Secure` behind TLS (the flag, or a proxy's `X-Forwarded-Proto`);
/// staff data is never cached or sniffed.
#[tokio::test]
async fn cookies_and_cache_headers() {
    let app = spawn_in(tempfile::tempdir().unwrap(), |s| {
        s.gateway.secure_cookies = true
    })
    .await;
    let (status, head, _) = request(
        app.port,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": "boss", "password": "a long password"})),
    )
    .await;
    assert_eq!(status, 200);
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let boss = app.login("boss").await;
    let mut c = welcomed(&app).await;
    send(
        &mut c,
        json!({"type": "message", "id": "a", "text": "안녕"}),
    )
    .await;
    let conv = until(&mut c, "ack").await;
    let _ = conv;
    let (_, list) = app.get_json("/api/conversations", &boss).await;
    let id = list["conversations"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        "/api/me".to_owned(),
        "/api/queue".to_owned(),
        "/api/audit".to_owned(),
        format!("/api/conversations/{id}"),
        format!("/api/conversations/{id}/export?format=csv"),
    ] {
        let (status, head, _) = request(app.port, "GET", &path, Some(&boss), None).await;
        assert_eq!(status, 200, "{path}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("cache-control: no-store"), "{path}: {head}");
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
    }
    app.stop().await;

    // Without the flag, a proxy's X-Forwarded-Proto: https still marks it Secure; plain
    // HTTP on localhost does not.
    let app = spawn().await;
    let login = |proto: Option<&'static str>| {
        let port = app.port;
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let body = json!({"username": "boss", "password": "a long password"}).to_string();
            let fwd = proto
                .map(|p| format!("X-Forwarded-Proto: {p}\r\n"))
                .unwrap_or_default();
            let req = format!(
                "POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{fwd}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    assert!(login(Some("https")).await.contains("; Secure"));
    assert!(!login(None).await.contains("; Secure"));
    app.stop().await;
}
