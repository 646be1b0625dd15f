//! `ieum audit verify` detects a lost tail (sled discards everything after damage, and the
//! shorter chain alone still verifies), counts the missing records, and verifies a copy of
//! a directory it must not change.
//!
//! With `IEUM_TEST_STORE=postgres` the same, on the app's database: `--read-only` is
//! refused there (no database is copied), so it must say so.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use ieum::store::{Tree, Write};
use serde_json::json;

fn verify(data: &Path, read_only: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ieum"));
    cmd.args(["audit", "verify", "--data-dir"])
        .arg(data)
        .args(store_args(data));
    if read_only {
        cmd.arg("--read-only");
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Every file's bytes, by path.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                all.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    all.sort();
    all
}

#[tokio::test]
async fn a_lost_audit_tail_is_detected_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let add = Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(["staff", "add", "boss", "--role", "supervisor", "--data-dir"])
        .arg(&data)
        .args(store_args(&data))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(b"a long password\n")?;
            c.wait()
        })
        .unwrap();
    assert!(add.success());
    let port = free_port();
    let mut server = serve_child(port, &data, |_| {}).await;
    for _ in 0..5 {
        let (status, _, _) = request(
            port,
            "POST",
            "/api/login",
            None,
            Some(json!({"username": "boss", "password": "a long password"})),
        )
        .await;
        assert_eq!(status, 200);
    }
    // A graceful stop, as an operator would.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    server.wait().unwrap();

    let (ok, out) = verify(&data, false);
    assert!(ok, "{out}");
    assert!(out.contains("intact: 5 records"), "{out}");

    // Forensics: verifying a copy leaves the directory exactly as it was.
    let before = snapshot(&data);
    let (ok, out) = verify(&data, true);
    if on_postgres() {
        assert!(!ok && out.contains("verify a restored copy"), "{out}");
    } else {
        assert!(ok && out.contains("read-only"), "{out}");
    }
    assert_eq!(snapshot(&data), before, "the directory was not touched");

    // The tail is lost (as sled does after damage: everything after it is discarded).
    let store = open_store(&data).await;
    store
        .write(vec![
            Write::remove(Tree::Audit, 4u64.to_be_bytes().to_vec()),
            Write::remove(Tree::Audit, 5u64.to_be_bytes().to_vec()),
        ])
        .await
        .unwrap();
    store.close().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (ok, out) = verify(&data, false);
    assert!(!ok, "a truncated log is not intact: {out}");
    assert!(out.contains("2 record(s) missing"), "{out}");
}
