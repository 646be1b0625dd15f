//! `ieum store copy`: moving a deployment from sled to PostgreSQL, against a real
//! PostgreSQL started by the test ([`common::pg::Pg`]; skipped with a printed reason where
//! it is not installed, a failure under `CI=true`).
//!
//! A sled store with real content (staff, a conversation with messages, audit records) is
//! copied into PostgreSQL; `ieum serve --store postgres://…` on the copy shows the
//! supervisor the conversation and its transcript, and `ieum audit verify` passes there. A
//! second copy into the same database is refused without `--force`; a copy out of a store
//! a running `ieum serve` holds is refused; a source whose audit chain was tampered with is
//! copied as it is and reported. A tree of more than one batch is copied page by page
//! through the library. (A destination that changes a value is caught by the
//! content comparison: see the unit tests in `src/store/copy.rs`.)

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::pg::Pg;
use common::*;
use ieum::store::copy::{self, COPY_BATCH};
use ieum::store::{Backend, PostgresBackend, SledBackend, Store, StoreOptions, Tree, Write};
use serde_json::json;

/// Runs `ieum ARGS`; (success, stdout and stderr).
fn ieum(args: &[&str], data: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("IEUM_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A sled store with a conversation waiting for a counselor (two citizen messages, bot
/// replies) and audit records (logins, a transcript read). Returns its temporary directory
/// (data in `data/`) and the conversation's id.
async fn sled_with_content() -> (tempfile::TempDir, String) {
    let app = spawn().await;
    let mut citizen = app.citizen("").await;
    let welcome = next(&mut citizen).await;
    let conv = welcome["conversation_id"].as_str().unwrap().to_owned();
    send(
        &mut citizen,
        json!({"type": "message", "id": "c1", "text": "안녕하세요"}),
    )
    .await;
    until(&mut citizen, "bot").await;
    send(
        &mut citizen,
        json!({"type": "message", "id": "c2", "text": "요즘 너무 힘들어서 죽 고 싶 어 요"}),
    )
    .await;
    until(&mut citizen, "queue").await;
    let boss = app.login("boss").await;
    let (status, _) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    assert_eq!(status, 200);
    drop(citizen);
    (app.stop().await, conv)
}

fn sigterm(child: &mut std::process::Child) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap();
}

#[tokio::test]
async fn a_sled_deployment_moves_to_postgres_and_is_served_from_there() {
    let Some(pg) = Pg::start() else { return };
    // trust authentication ignores the password; it is there to prove it is never printed.
    let url = pg
        .database("moved")
        .replace("postgres://ieum@", "postgres://ieum:pw-must-not-show@");
    let (dir, conv) = sled_with_content().await;
    let data = dir.path().join("data");
    let from = format!("sled:{}", data.display());

    let (ok, out) = ieum(&["store", "copy", "--from", &from, "--to", &url], &data);
    assert!(ok, "{out}");
    assert!(!out.contains("pw-must-not-show"), "{out}");
    assert!(out.contains("copy verified"), "{out}");
    assert!(out.contains("audit log intact"), "{out}");
    for tree in [
        "events",
        "conversations",
        "staff",
        "audit",
        "keys",
        "waiting",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{tree} ")))
            .unwrap_or_else(|| panic!("a line for {tree}: {out}"));
        assert!(
            line.ends_with("verified") && !line.contains(" 0 keys"),
            "{tree} has content and was verified: {line}"
        );
    }

    // A second copy into the same database is refused; with --force it replaces it.
    let (ok, out) = ieum(&["store", "copy", "--from", &from, "--to", &url], &data);
    assert!(!ok && out.contains("already holds data"), "{out}");
    assert!(!out.contains("pw-must-not-show"), "{out}");
    // (--data-dir defaults to the sled source: the master key and audit head are found.)
    let out = Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(["store", "copy", "--from", &from, "--to", &url, "--force"])
        .env_remove("IEUM_DATA_DIR")
        .output()
        .unwrap();
    let out =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.contains("copy verified"), "{out}");
    assert!(
        !out.contains("no master key"),
        "the anchored head was checked: {out}"
    );

    // The service on the copy, with the same data directory (master key, audit head).
    let port = free_port();
    let mut server = serve_child(port, &data, |c| {
        c.args(["--store", &url]);
    })
    .await;
    let (status, _, body) = request(
        port,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": "boss", "password": "a long password"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let boss: serde_json::Value = serde_json::from_str(&body).unwrap();
    let boss = boss["token"].as_str().unwrap();
    let (status, _, body) = request(
        port,
        "GET",
        &format!("/api/conversations/{conv}"),
        Some(boss),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    let said: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "citizen")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(said, ["안녕하세요", "요즘 너무 힘들어서 죽 고 싶 어 요"]);
    assert!(
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "bot"),
        "{t}"
    );
    let (status, _, body) = request(port, "GET", "/api/conversations", Some(boss), None).await;
    assert_eq!(status, 200);
    assert!(body.contains(&conv), "the conversation is listed: {body}");

    // While the service runs on PostgreSQL, a copy out of it is refused (its node lock).
    let other = pg.database("other");
    let other_from = format!("sled:{}", dir.path().join("other").display());
    let (ok, out) = ieum(
        &["store", "copy", "--from", &url, "--to", &other_from],
        &data,
    );
    assert!(!ok && out.contains("in use by a running ieum"), "{out}");
    sigterm(&mut server);

    let (ok, out) = ieum(&["audit", "verify", "--store", &url], &data);
    assert!(ok && out.contains("audit log intact"), "{out}");

    // Out of a sled store a running ieum holds: refused.
    let mut server = serve_child(free_port(), &data, |_| {}).await;
    let (ok, out) = ieum(&["store", "copy", "--from", &from, "--to", &other], &data);
    assert!(!ok && out.contains("in use by a running ieum"), "{out}");
    sigterm(&mut server);
}

/// A source whose audit chain was changed is copied as it is (nothing is repaired) and the
/// copy is reported as failed, with a non-zero exit.
#[tokio::test]
async fn a_tampered_source_is_reported() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("tampered");
    let (dir, _) = sled_with_content().await;
    let data = dir.path().join("data");
    {
        let store = Store::open_sled(&data, StoreOptions::default()).unwrap();
        let (key, mut value) = store
            .scan_prefix(Tree::Audit, &[])
            .await
            .unwrap()
            .into_iter()
            .next()
            .expect("an audit record");
        let at = value.len() / 2;
        value[at] ^= 0x01;
        store
            .write(vec![Write::put(Tree::Audit, key, value)])
            .await
            .unwrap();
        store.close().await.unwrap();
    }
    let from = format!("sled:{}", data.display());
    let (ok, out) = ieum(&["store", "copy", "--from", &from, "--to", &url], &data);
    assert!(!ok, "{out}");
    assert!(out.contains("audit log BROKEN"), "{out}");
    assert!(out.contains("copy FAILED verification"), "{out}");
}

/// More keys than one batch, with values of every byte and keys crossing 0x7F/0x80: sled
/// to PostgreSQL page by page, and the comparison agrees, tree by tree.
#[test]
fn a_store_larger_than_one_batch_is_copied_page_by_page() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("pages");
    let dir = tempfile::tempdir().unwrap();
    let sled = SledBackend::open(dir.path()).unwrap();
    let n = COPY_BATCH as u32 * 2 + 17;
    let batch: Vec<Write> = (0..n)
        .map(|i| {
            let key = (i.wrapping_mul(2_654_435_761)).to_be_bytes().to_vec();
            let value: Vec<u8> = (0..(i % 300)).map(|b| (b + i) as u8).collect();
            Write::put(Tree::Events, key, value)
        })
        .collect();
    sled.apply(&batch).unwrap();
    sled.apply(&[Write::put(Tree::Keys, vec![0x80], vec![0xFF; 40])])
        .unwrap();
    sled.flush().unwrap();
    let pg_backend = PostgresBackend::open(&url).unwrap();
    assert!(copy::non_empty_trees(&pg_backend).unwrap().is_empty());
    let report = copy::copy(&sled, &pg_backend).unwrap();
    assert!(report.iter().all(|r| r.verified()), "{report:?}");
    let events = report.iter().find(|r| r.tree == Tree::Events).unwrap();
    assert_eq!(events.destination.keys, u64::from(n));
    assert_eq!(
        pg_backend.scan_prefix(Tree::Events, &[]).unwrap(),
        sled.scan_prefix(Tree::Events, &[]).unwrap()
    );
    copy::clear(&pg_backend).unwrap();
    assert!(copy::non_empty_trees(&pg_backend).unwrap().is_empty());
}
