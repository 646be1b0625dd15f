//! Black-box tests of the running service, booted exactly as `main` boots it: through
//! `App::build`, on port 0, with a temporary data directory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestApp, request, spawn};
use ieum::app::{App, Settings};

async fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = request(port, "GET", path, None, None).await;
    (status, body)
}

#[tokio::test]
async fn healthz_and_metrics_answer() {
    let app = spawn().await;
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
    let app = spawn().await;
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

#[tokio::test]
async fn staff_api_requires_a_session_and_respects_roles() {
    let app: TestApp = spawn().await;
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

    let kim = app.login("kim").await;
    let (status, _, body) = request(p, "GET", "/api/me", Some(&kim), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"role\":\"counselor\""));
    let (status, _, _) = request(p, "GET", "/api/audit", Some(&kim), None).await;
    assert_eq!(status, 403, "counselors cannot read the audit log");
    let (status, _, _) = request(p, "GET", "/api/queue", Some(&kim), None).await;
    assert_eq!(status, 200);

    let boss = app.login("boss").await;
    let (status, _, body) = request(p, "GET", "/api/audit", Some(&boss), None).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let actions: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    // The queue holds first lines: reading it is audited like any read.
    // The wrong password above is audited too.
    assert_eq!(
        actions,
        vec!["login_failed", "login", "read_queue", "login", "read_audit"]
    );

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
