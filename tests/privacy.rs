//! Privacy: resident registration numbers never stored; phone numbers and e-mail addresses
//! visible to the live counselor but redacted wherever text leaves the live chat.

mod common;

use common::*;
use serde_json::json;
use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

/// Which of `needles` are in the raw bytes of a file under `dir` (a test's directory) or
/// of the store of its app, whose data directory is `dir/data` ([`store_dirs`]).
fn raw_files_contain<'a>(dir: &Path, needles: &[&'a [u8]]) -> Vec<Cow<'a, str>> {
    let find = aho_corasick::AhoCorasick::new(needles).unwrap();
    let mut found = vec![false; needles.len()];
    let mut stack = vec![dir.to_path_buf()];
    // `dir/data` itself is under `dir`.
    stack.extend(store_dirs(&dir.join("data")).into_iter().skip(1));
    while let Some(d) = stack.pop() {
        // PostgreSQL may remove a file or directory meanwhile.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                for m in find.find_overlapping_iter(&bytes) {
                    found[m.pattern().as_usize()] = true;
                }
            }
        }
    }
    needles
        .iter()
        .zip(found)
        .filter(|(_, f)| *f)
        .map(|(n, _)| String::from_utf8_lossy(n))
        .collect()
}

#[tokio::test]
async fn identifying_numbers_are_redacted_where_they_must_be() {
    let app = spawn().await;
    let mut c = app.citizen("").await;
    let conv = next(&mut c).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let said = "도와주세요 죽고 싶어요. 제 번호 010-9876-5432, 메일 help.me@example.com, 주민번호 900101-1234567";
    send(&mut c, json!({"type": "message", "id": "p1", "text": said})).await;
    until(&mut c, "ack").await;

    // The live counselor sees the phone number, never the resident number.
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    let claimed = until(&mut k, "claimed").await.pop().unwrap();
    let text = claimed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "citizen")
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("010-9876-5432"), "{text}");
    assert!(
        !text.contains("1234567") && text.contains("[주민등록번호 삭제됨]"),
        "{text}"
    );

    // The supervisor's replay and both exports are redacted.
    let boss = app.login("boss").await;
    let (_, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    let body = t.to_string();
    assert!(
        !body.contains("9876-5432") && !body.contains("help.me@"),
        "{body}"
    );
    assert!(body.contains("[전화번호]") && body.contains("[이메일]"));
    for format in ["json", "csv"] {
        let (status, head, body) = request(
            app.port,
            "GET",
            &format!("/api/conversations/{conv}/export?format={format}"),
            Some(&boss),
            None,
        )
        .await;
        assert_eq!(status, 200, "{format}");
        assert!(head.contains("attachment"), "{head}");
        assert!(
            !body.contains("9876-5432") && !body.contains("help.me@") && !body.contains("1234567")
        );
        assert!(body.contains("[전화번호]"), "{format}: {body}");
        // Excel reads a CSV as the local code page unless it starts with a UTF-8 BOM.
        assert_eq!(
            body.starts_with('\u{feff}'),
            format == "csv",
            "{format}: a BOM on CSV only"
        );
    }
    let (_, audit) = app.get_json("/api/audit", &boss).await;
    let exports = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "export_transcript")
        .count();
    assert_eq!(exports, 2);

    // The resident number never reached the disk.
    let dir = app.stop().await;
    let found = raw_files_contain(dir.path(), &[b"900101-1234567", b"1234567"]);
    assert!(found.is_empty(), "{found:?} on disk");
}

#[tokio::test]
async fn transcripts_are_encrypted_at_rest_and_purging_destroys_them() {
    let app = spawn().await;
    let mut c = app.citizen("").await;
    let conv = next(&mut c).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let marker = "도깨비방망이표식 오늘도 외로워요";
    send(
        &mut c,
        json!({"type": "message", "id": "e1", "text": marker}),
    )
    .await;
    until(&mut c, "ack").await;
    // It turns high and a counselor holds it: the record now has a level, a counselor and
    // a token hash, all of which must be as unreadable as the words.
    send(
        &mut c,
        json!({"type": "message", "id": "e2", "text": "죽고 싶어요"}),
    )
    .await;
    until(&mut c, "queue").await;
    let kim = app.login("kim").await;
    let mut k = app.counselor(&kim).await;
    send(&mut k, json!({"type": "claim", "conversation_id": conv})).await;
    until(&mut k, "claimed").await;
    send(
        &mut k,
        json!({"type": "close", "conversation_id": conv, "outcome": "resolved"}),
    )
    .await;
    until(&mut c, "closed").await;
    // Casework on it: a case note and a follow-up with the person's phone number.
    let notes = format!("/api/conversations/{conv}/notes");
    let (s, _, _) = request(
        app.port,
        "POST",
        &notes,
        Some(&kim),
        Some(json!({"text": "비밀메모표식 안부 전화 동의"})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _, body) = request(
        app.port,
        "POST",
        "/api/followups",
        Some(&kim),
        Some(json!({
            "conversation": conv, "kind": "call", "due_at": 1, "consent": {"given": true},
            "contact": {"kind": "phone", "number": "010-7777-3131"},
        })),
    )
    .await;
    assert_eq!(s, 201, "{body}");

    // Acknowledged means flushed: the words are on disk, but only as ciphertext; so is
    // the conversation record (level, counselors, state, token hash), and so is the
    // casework (the note, the phone number).
    let data = app.dir.path().join("data");
    let id = ieum::ids::ConversationId::parse(&conv).unwrap();
    if on_postgres() {
        // The files looked at hold this database's rows (its keys are stored raw).
        let found = raw_files_contain(app.dir.path(), &[id.as_bytes()]);
        assert_eq!(
            found.len(),
            1,
            "the conversation's rows are in the files searched"
        );
    }
    let record_fragments: [&[u8]; 7] = [
        "비밀메모표식".as_bytes(),
        b"010-7777-3131",
        "도깨비방망이표식".as_bytes(),
        b"\"counselors\"",
        b"\"token_hash\"",
        b"\"level\":\"high\"",
        b"with_counselor",
    ];
    let found = raw_files_contain(app.dir.path(), &record_fragments);
    assert!(found.is_empty(), "{found:?} in the clear");
    assert!(data.join("master.key").exists());

    let boss = app.login("boss").await;
    let (status, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    assert_eq!(status, 200);
    assert!(
        t.to_string().contains("도깨비방망이표식"),
        "readable with the key"
    );

    // Retention with a zero period purges it: key destroyed, events and record removed.
    let purged = ieum::retention::purge(
        &app.state.store,
        &app.state.keyring,
        &app.state.audit,
        std::time::Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(purged, 1);
    let (status, _) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    assert_eq!(status, 404);
    assert!(app.state.keyring.key(id).await.unwrap().is_none());
    // Its casework went with it.
    assert_eq!(app.get_json(&notes, &boss).await.0, 404);
    let left = app
        .state
        .store
        .scan_prefix(ieum::store::Tree::Casework, id.as_bytes())
        .await
        .unwrap();
    assert!(left.is_empty(), "casework records left after the purge");
    let (_, audit) = app.get_json("/api/audit", &boss).await;
    assert!(audit["records"].as_array().unwrap().iter().any(|r| {
        r["action"] == "purge" && r["conversation_id"] == conv.as_str() && r["actor"] == "system"
    }));
    let dir = app.stop().await;
    let found = raw_files_contain(dir.path(), &record_fragments);
    assert!(found.is_empty(), "{found:?} readable after the purge");
}

#[tokio::test]
async fn message_text_and_tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A staff account, made the way an operator would.
    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(["staff", "add", "boss", "--role", "supervisor", "--data-dir"])
        .arg(&data)
        .args(store_args(&data))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(add.stdin.as_mut().unwrap(), b"secret-password-xyz\n").unwrap();
    assert!(add.wait().unwrap().success());

    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .args(store_args(&data))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("IEUM_LOG", "trace")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the logs as they come, so a full pipe never blocks the server.
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    });
    // Serving, not merely listening (on PostgreSQL a node listens as a standby first).
    let t = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
        || request(port, "GET", "/healthz/primary", None, None).await.0 != 200
    {
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let url = format!("ws://127.0.0.1:{port}/ws/chat");
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut().insert(
        "Origin",
        format!("http://127.0.0.1:{port}").parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let welcome = next(&mut ws).await;
    let resume_token = welcome["token"].as_str().unwrap().to_owned();
    let marker = "로그금지표식 죽고 싶어요";
    send(
        &mut ws,
        json!({"type": "message", "id": "l1", "text": marker}),
    )
    .await;
    until(&mut ws, "ack").await;
    let (status, _, body) = request(
        port,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": "boss", "password": "secret-password-xyz"})),
    )
    .await;
    assert_eq!(status, 200);
    let staff_token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let _ = request(port, "GET", "/api/conversations", Some(&staff_token), None).await;
    drop(ws);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = child.kill();
    let _ = child.wait();
    let logs = reader.join().unwrap();
    assert!(
        logs.contains("ieum listening"),
        "logs were captured: {logs}"
    );
    for secret in [
        "로그금지표식",
        "secret-password-xyz",
        &resume_token,
        &staff_token,
    ] {
        assert!(!logs.contains(secret), "{secret:?} appeared in the logs");
    }
}

#[tokio::test]
async fn supervisors_get_the_live_event_stream_counselors_do_not() {
    let app = spawn().await;
    let boss = app.login("boss").await;
    let kim = app.login("kim").await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(
        format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {boss}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    let (status, _, _) = request(app.port, "GET", "/api/events", Some(&kim), None).await;
    assert_eq!(status, 403);
    drop(s);
    app.stop().await;
}

/// A resident registration number typed any other way (a minus sign U+2212, `_`, `/`,
/// digits spaced one by one) never reaches the disk, the counselor or a supervisor.
#[tokio::test]
async fn resident_numbers_typed_any_way_never_reach_the_disk() {
    let app = spawn().await;
    let mut c = app.citizen("").await;
    let conv = next(&mut c).await["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let variants = [
        "900101−1234567",
        "900101_1234567",
        "900101/1234567",
        "9 0 0 1 0 1 1 2 3 4 5 6 7",
    ];
    for (i, v) in variants.iter().enumerate() {
        send(
            &mut c,
            json!({"type": "message", "id": format!("r{i}"), "text": format!("제 번호 {v} 예요")}),
        )
        .await;
        until(&mut c, "ack").await;
    }
    let boss = app.login("boss").await;
    let (_, t) = app
        .get_json(&format!("/api/conversations/{conv}"), &boss)
        .await;
    let texts: Vec<String> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "citizen")
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), variants.len());
    for text in &texts {
        assert_eq!(text, "제 번호 [주민등록번호 삭제됨] 예요");
    }
    app.stop().await;
}

/// The data directory and every file in it are private to the service's user.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn().await;
    let mut c = app.citizen("").await;
    next(&mut c).await;
    send(
        &mut c,
        json!({"type": "message", "id": "p1", "text": "안녕하세요"}),
    )
    .await;
    until(&mut c, "ack").await;
    let data = app.dir.path().join("data");
    let mut stack = vec![data.clone()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
                files.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    assert!(
        files.iter().any(|f| f == "master.key"),
        "the key was checked: {files:?}"
    );
    if !on_postgres() {
        // On PostgreSQL the store is in the database; only the key and the audit head are
        // here.
        assert!(
            files.len() >= 3,
            "the store's files (db, conf) and the key were checked: {files:?}"
        );
    }
    app.stop().await;
}
