//! Shared helpers for the black-box tests: boot the app exactly as `main` does (port 0, a
//! temporary data directory) and talk to it over real sockets.
//!
//! # The store matrix
//!
//! The apps run on sled in their data directory, or, with `IEUM_TEST_STORE=postgres`, on
//! PostgreSQL: one server per test binary ([`pg::database_for`]: started on first use,
//! stopped when the process exits) and one database per data directory, the same one
//! when an app boots again on its directory. [`spawn_in`] and [`serve_child`] choose it;
//! a test that opens the store itself or runs a subcommand uses [`open_store`] and
//! [`store_args`]. Tests that inject a backend (`Settings.backend`) keep it. The master
//! key and the audit head stay in the data directory on both.
#![allow(dead_code)]

pub mod haproxy;
pub mod pg;

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ieum::app::{App, Settings};
use ieum::auth::Role;
use ieum::http::AppState;
use ieum::store::{Location, Store, StoreOptions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The triage engine from the shipped `escalation-rules.toml` and `intents/`, built once
/// per test binary.
pub fn shipped_engine() -> &'static ieum::triage::TriageEngine {
    static ENGINE: std::sync::OnceLock<ieum::triage::TriageEngine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        ieum::triage::TriageEngine::load(&root.join("escalation-rules.toml"), &root.join("intents"))
            .unwrap_or_else(|e| panic!("shipped files must load: {e}"))
    })
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct TestApp {
    pub port: u16,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub state: AppState,
    pub dir: tempfile::TempDir,
}

pub fn settings(data: &Path) -> Settings {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        rules: root.join("escalation-rules.toml"),
        intents: root.join("intents"),
        ..Settings::defaults()
    }
}

/// Whether the apps run on PostgreSQL (`IEUM_TEST_STORE=postgres`) rather than on sled
/// (unset, or `sled`).
///
/// # Panics
/// On any other value.
pub fn on_postgres() -> bool {
    match std::env::var("IEUM_TEST_STORE").as_deref() {
        Err(_) | Ok("" | "sled") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("IEUM_TEST_STORE={other}: expected `sled` or `postgres`"),
    }
}

/// The store of the app whose data directory is `data`: sled there, or its own database
/// (see [the store matrix](self)). Blocking: it may start PostgreSQL or create a database.
pub fn store_location(data: &Path) -> Location {
    if on_postgres() {
        Location::Postgres(pg::database_for(data))
    } else {
        Location::Sled(data.to_path_buf())
    }
}

/// The arguments that point a subcommand (`serve`, `staff`, `audit`) at the store of
/// `data`, beside its `--data-dir data`: none on sled, `--store <url>` on PostgreSQL.
pub fn store_args(data: &Path) -> Vec<String> {
    match store_location(data) {
        Location::Sled(_) => Vec::new(),
        Location::Postgres(url) => vec!["--store".into(), url],
    }
}

/// The directories that hold the bytes of the store of `data`, an app's data directory
/// (to look for what must not be there): `data` on sled; on PostgreSQL also the
/// database's files and the write-ahead log ([`pg::database_files`]).
pub fn store_dirs(data: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![data.to_path_buf()];
    if on_postgres() {
        dirs.extend(pg::database_files(data));
    }
    dirs
}

/// Opens the store of `data` in this process, with its service stopped (to look at what a
/// killed server left).
pub async fn open_store(data: &Path) -> Store {
    let data = data.to_path_buf();
    tokio::task::spawn_blocking(move || store_location(&data).open(StoreOptions::default()))
        .await
        .unwrap()
        .expect("the store opens")
}

pub async fn spawn_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut s = settings(&dir.path().join("data"));
    tweak(&mut s);
    if s.backend.is_none() && s.store.is_none() && on_postgres() {
        let data = s.data_dir.clone();
        let at = tokio::task::spawn_blocking(move || store_location(&data));
        s.store = Some(at.await.unwrap());
    }
    let app = App::build(s).await.expect("app builds");
    let state = app.state().clone();
    for (name, role) in [
        ("kim", Role::Counselor),
        ("lee", Role::Counselor),
        ("boss", Role::Supervisor),
    ] {
        let _ = ieum::auth::add_staff(&state.store, name, role, "a long password").await;
    }
    let port = app.port();
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        port,
        stop,
        server,
        state,
        dir,
    }
}

pub async fn spawn() -> TestApp {
    spawn_in(tempfile::tempdir().unwrap(), |_| {}).await
}

impl TestApp {
    /// Stops the server and waits until the store is flushed and closed.
    pub async fn stop(self) -> tempfile::TempDir {
        self.stop.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
        // Let the store's writer thread release the database.
        drop(self.state);
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.dir
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn citizen(&self, query: &str) -> Ws {
        let url = format!("ws://127.0.0.1:{}/ws/chat{query}", self.port);
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Origin", self.origin().parse().unwrap());
        tokio_tungstenite::connect_async(req)
            .await
            .expect("citizen connects")
            .0
    }

    /// A citizen socket that asks to resume `conversation` with `token`, having seen the
    /// events up to `last_seq` (the reply is a `welcome`, or `resume_failed` and a new one).
    pub async fn resume(&self, conversation: &str, token: &str, last_seq: u64) -> Ws {
        let mut ws = self.citizen("?resume=1").await;
        send(
            &mut ws,
            serde_json::json!({"type": "resume", "conversation_id": conversation, "token": token, "last_seq": last_seq}),
        )
        .await;
        ws
    }

    pub async fn counselor(&self, token: &str) -> Ws {
        let url = format!("ws://127.0.0.1:{}/ws/counselor", self.port);
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(req)
            .await
            .expect("counselor connects")
            .0
    }

    pub async fn login(&self, user: &str) -> String {
        let (status, _, body) = request(
            self.port,
            "POST",
            "/api/login",
            None,
            Some(serde_json::json!({"username": user, "password": "a long password"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, _, body) = request(self.port, "GET", path, Some(token), None).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

/// A plain HTTP/1.1 request; returns (status, headers, body).
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
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

/// Sends a JSON frame.
pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON text frame (skipping pings), within 5 s.
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("socket open")
            .expect("no socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Frames until one of type `ty` arrives; returns all of them, that one last.
pub async fn until(ws: &mut Ws, ty: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let v = next(ws).await;
        let done = v["type"] == ty;
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// No frame of type `ty` arrives within `wait`.
pub async fn none_of(ws: &mut Ws, ty: &str, wait: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], ty, "unexpected {ty} frame: {v}");
            seen.push(v);
        }
    }
    seen
}

/// A free loopback port (bound and released; good enough for a test on this machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ieum serve` as a child process on `port` with `data` as its data directory (so it can
/// be measured or killed apart from the test), on the store of `data` ([`store_args`]).
/// Waits until it serves (`/healthz/primary`: on PostgreSQL a node listens as a standby
/// first).
pub async fn serve_child(
    port: u16,
    data: &Path,
    configure: impl FnOnce(&mut std::process::Command),
) -> std::process::Child {
    let store = {
        let data = data.to_path_buf();
        tokio::task::spawn_blocking(move || store_args(&data))
            .await
            .unwrap()
    };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ieum"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .args(store)
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .env("IEUM_LOG", "error");
    configure(&mut cmd);
    let child = cmd.spawn().expect("ieum serve starts");
    let started = std::time::Instant::now();
    // Serving, not merely listening: on PostgreSQL a node listens as a standby first.
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
            && request(port, "GET", "/healthz/primary", None, None).await.0 == 200
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "ieum serve did not start (the store did not reopen?)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}
