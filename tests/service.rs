//! Black-box tests of the running service, booted exactly as `main` boots it: through
//! `App::build`, on port 0, with a temporary data directory.

use std::path::Path;
use std::time::Duration;

use ieum::app::{App, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TestApp {
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = App::build(Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        rules: root.join("escalation-rules.toml"),
        intents: root.join("intents"),
    })
    .await
    .expect("app builds");
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

/// A plain HTTP/1.1 GET; returns (status, body).
async fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
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
