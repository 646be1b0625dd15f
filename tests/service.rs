//! Black-box tests of the running service, booted exactly as `main` boots it: through
//! `App::build`, on port 0, with a temporary data directory.

use std::path::Path;
use std::time::Duration;

use ieum::app::{App, Settings};
use ieum::auth::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TestApp {
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|_| async {}).await
}

/// Boots the app; `prepare` runs on its state before serving (to add staff).
async fn spawn_app_with<F, Fut>(prepare: F) -> TestApp
where
    F: FnOnce(ieum::app::AppState) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = App::build(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        rules: root.join("escalation-rules.toml"),
        intents: root.join("intents"),
        ..Settings::defaults()
    })
    .await
    .expect("app builds");
    prepare(app.state().clone()).await;
    let port = app.port();
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        port,
        stop,
        server,
        _dir: dir,
    }
}

/// A plain HTTP/1.1 request; returns (status, headers, body).
async fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = request(port, "GET", path, None, None).await;
    (status, body)
}

async fn login(port: u16, user: &str, password: &str) -> String {
    let (status, head, body) = request(
        port,
        "POST",
        "/api/login",
        None,
        Some(serde_json::json!({"username": user, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("HttpOnly; SameSite=Strict"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn healthz_and_metrics_answer() {
    let app = spawn_app().await;
    let (status, body) = get(app.port, "/healthz").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (status, body) = get(app.port, "/metrics").await;
    assert_eq!(status, 200);
    for metric in [
        "ieum_store_writes_total",
        "ieum_store_flush_seconds_bucket",
        "ieum_queue_waiting{level=\"imminent\"}",
        "ieum_counselors_online",
    ] {
        assert!(body.contains(metric), "missing {metric}");
    }
    let (status, _) = get(app.port, "/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn shutdown_stops_serving_and_flushes() {
    let app = spawn_app().await;
    app.stop.send_replace(true);
    let result = tokio::time::timeout(Duration::from_secs(10), app.server)
        .await
        .expect("stops in time")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn a_broken_rules_file_stops_startup_naming_file_line_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = dir.path().join("rules.toml");
    let shipped = std::fs::read_to_string(root.join("escalation-rules.toml")).unwrap();
    std::fs::write(
        &rules,
        format!("{shipped}\n[[rule]]\nid = \"dup.check\"\ncategory = \"plan\"\nlevel = \"high\"\npatterns = [\"계획세웠\"]\nexamples = [\"계획 세웠어\"]\ncounter_examples = [\"x\"]\n\n[[rule]]\nid = \"dup.check\"\ncategory = \"plan\"\nlevel = \"high\"\npatterns = [\"계획세웠\"]\nexamples = [\"계획 세웠어\"]\ncounter_examples = [\"x\"]\n"),
    )
    .unwrap();
    let err = App::build(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        rules: rules.clone(),
        intents: root.join("intents"),
        ..Settings::defaults()
    })
    .await
    .err()
    .expect("must not start");
    let text = format!("{err:#}");
    assert!(text.contains(&rules.display().to_string()), "{text}");
    assert!(
        text.contains("rule `dup.check`") && text.contains("duplicate id"),
        "{text}"
    );
}

async fn with_staff() -> TestApp {
    spawn_app_with(|state| async move {
        for (name, role) in [("kim", Role::Counselor), ("boss", Role::Supervisor)] {
            ieum::auth::add_staff(&state.store, name, role, "a long password")
                .await
                .unwrap();
        }
    })
    .await
}

#[tokio::test]
async fn staff_api_requires_a_session_and_respects_roles() {
    let app = with_staff().await;
    let p = app.port;
    for path in ["/api/me", "/api/conversations", "/api/queue", "/api/audit"] {
        let (status, body) = get(p, path).await;
        assert_eq!(status, 401, "{path}");
        assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    }
    let (status, _, body) = request(
        p,
        "POST",
        "/api/login",
        None,
        Some(serde_json::json!({"username": "kim", "password": "wrong one!!"})),
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("bad_credentials"));

    let kim = login(p, "kim", "a long password").await;
    let (status, _, body) = request(p, "GET", "/api/me", Some(&kim), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"role\":\"counselor\""));
    let (status, _, _) = request(p, "GET", "/api/audit", Some(&kim), None).await;
    assert_eq!(status, 403, "counselors cannot read the audit log");
    let (status, _, _) = request(p, "GET", "/api/queue", Some(&kim), None).await;
    assert_eq!(status, 200);

    let boss = login(p, "boss", "a long password").await;
    let (status, _, body) = request(p, "GET", "/api/audit", Some(&boss), None).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let actions: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["login", "login", "read_audit"]);

    let (status, _, _) = request(p, "POST", "/api/logout", Some(&kim), None).await;
    assert_eq!(status, 204);
    let (status, _, _) = request(p, "GET", "/api/me", Some(&kim), None).await;
    assert_eq!(status, 401, "logged out");
    let (status, _, _) = request(
        p,
        "GET",
        "/api/conversations/00000000000000000000000000000000",
        Some(&boss),
        None,
    )
    .await;
    assert_eq!(status, 404);
}
