//! Staff accounts while the service runs: a supervisor adds and disables counselors over
//! the API (the supervisor page uses it); `ieum staff add` is for the first account and
//! says plainly when the service holds the data directory.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

async fn post(app: &TestApp, path: &str, token: &str, body: serde_json::Value) -> (u16, String) {
    let (status, _, body) = request(app.port, "POST", path, Some(token), Some(body)).await;
    (status, body)
}

async fn login_as(app: &TestApp, user: &str, password: &str) -> (u16, String) {
    let (status, _, body) = request(
        app.port,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": user, "password": password})),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn a_supervisor_adds_and_disables_counselors_while_the_service_runs() {
    let app = spawn().await;
    let boss = app.login("boss").await;
    let kim = app.login("kim").await;

    // Added while running: the new counselor logs in at once.
    let new = json!({"username": "park", "role": "counselor", "password": "a long password 2"});
    let (status, body) = post(&app, "/api/staff", &boss, new.clone()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = login_as(&app, "park", "a long password 2").await;
    assert_eq!(status, 200, "{body}");
    let park: serde_json::Value = serde_json::from_str(&body).unwrap();
    let park = park["token"].as_str().unwrap().to_owned();

    // Plain refusals: a counselor may not add staff; no duplicates; no short passwords.
    assert_eq!(post(&app, "/api/staff", &kim, new.clone()).await.0, 403);
    let (status, body) = post(&app, "/api/staff", &boss, new).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("exists"), "{body}");
    let (status, body) = post(
        &app,
        "/api/staff",
        &boss,
        json!({"username": "choi", "role": "counselor", "password": "short"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("10 characters"), "{body}");

    // The list never shows a password hash.
    let (status, list) = app.get_json("/api/staff", &boss).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["staff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["username"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"park") && names.contains(&"kim"),
        "{names:?}"
    );
    assert!(!list.to_string().contains("argon2"), "{list}");
    assert_eq!(app.get_json("/api/staff", &kim).await.0, 403);

    // park's console is open when park is disabled: the next frame is refused and the
    // socket closes; park's session ends; park cannot log in again.
    let mut console = app.counselor(&park).await;
    assert_eq!(next(&mut console).await["type"], "hello");
    let (status, body) = post(&app, "/api/staff/park/disable", &boss, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get_json("/api/me", &park).await.0, 401);
    assert_eq!(login_as(&app, "park", "a long password 2").await.0, 401);
    send(
        &mut console,
        json!({"type": "claim", "conversation_id": "00000000000000000000000000000000"}),
    )
    .await;
    let e = until(&mut console, "error").await.pop().unwrap();
    assert_eq!(e["code"], "account_disabled");

    // Enabled again, park logs in; a supervisor cannot lock themselves out.
    assert_eq!(
        post(&app, "/api/staff/park/enable", &boss, json!({}))
            .await
            .0,
        200
    );
    assert_eq!(login_as(&app, "park", "a long password 2").await.0, 200);
    assert_eq!(
        post(&app, "/api/staff/boss/disable", &boss, json!({}))
            .await
            .0,
        400
    );
    assert_eq!(
        post(&app, "/api/staff/nobody/disable", &boss, json!({}))
            .await
            .0,
        404
    );

    // Every change is in the audit log.
    let (_, audit) = app.get_json("/api/audit", &boss).await;
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in ["add_staff:park", "disable_staff:park", "enable_staff:park"] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn staff_add_beside_a_running_service_says_so_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve_child(port, dir.path(), |_| {}).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(["staff", "add", "park", "--role", "counselor", "--data-dir"])
        .arg(dir.path())
        .args(store_args(dir.path()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cmd.stdin
        .take()
        .unwrap()
        .write_all(b"a long password 2\n")
        .unwrap();
    let out = cmd.wait_with_output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("in use by a running ieum") && err.contains("/supervisor"),
        "{err}"
    );
    assert!(
        !err.contains("WouldBlock") && !err.contains("os error"),
        "no raw lock error: {err}"
    );
}
