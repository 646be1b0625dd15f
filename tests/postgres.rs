//! The PostgreSQL store against a real PostgreSQL, started by each test in a temporary
//! directory (`initdb`, `pg_ctl`; as the `postgres` user when the tests run as root) on a
//! free loopback port, and stopped when the test ends, pass or fail.
//!
//! * the backend contract: the same answers as the in-memory backend for every scan,
//!   bytewise key order (keys at and above 0x80), a flush is a commit;
//! * one primary per database (the lease): a second `ieum serve` waits as a standby and
//!   takes over after `kill -9` of the first; a primary that lost its lease cannot write;
//! * an acknowledged message survives `kill -9` of `ieum serve --store postgres://…`;
//! * a PostgreSQL restart mid-run: `not_saved` and no ack, `/healthz` 503, then recovery
//!   by itself, without restarting ieum.
//!
//! Where PostgreSQL's binaries are missing (`IEUM_PG_BIN`, else `/usr/lib/postgresql/*/bin`)
//! each test prints why and passes, except under `CI=true`, where it fails:
//! `.ci/run` installs Debian's `postgresql`.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::Pg;
use common::*;
use futures::StreamExt;
use ieum::conversation::EventBody;
use ieum::ids::ConversationId;
use ieum::store::{
    Backend, Location, MemoryBackend, PostgresBackend, Store, StoreError, StoreOptions, Tree,
    Write, decode_event_key, event_key,
};
use ieum::transcript::{self, Keyring};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

// A PostgreSQL server for one test: [`common::pg::Pg`].

/// Opens the backend on the blocking pool (the client must not run on an async thread).
async fn open_store(url: &str) -> Store {
    let location = Location::Postgres(url.to_owned());
    tokio::task::spawn_blocking(move || location.open(StoreOptions::new()))
        .await
        .unwrap()
        .expect("the PostgreSQL store opens")
}

// ---------------------------------------------------------------------------------------
// The backend contract.

/// Every scan answers as the in-memory backend does, over keys whose bytes cross 0x7F/0x80
/// (a signed or collated comparison would order them differently).
#[test]
fn backend_agrees_with_memory_on_every_scan_and_orders_bytes_unsigned() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("contract");
    let backend = PostgresBackend::open(&url).unwrap();
    let mem = MemoryBackend::new();
    let keys: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![1],
        vec![1, 0],
        vec![1, 0x7F],
        vec![1, 0x80],
        vec![1, 0xFF],
        vec![1, 0xFF, 0xFF],
        vec![2],
        vec![0x7F],
        vec![0x80],
        vec![0x80, 0],
        vec![0xC0, 1],
        vec![0xFF],
        vec![0xFF, 0xFF],
    ];
    let mut batch: Vec<Write> = keys
        .iter()
        .map(|k| Write::put(Tree::Audit, k.clone(), k.clone()))
        .collect();
    // A later write to the same key wins; a removal in the same batch holds.
    batch.push(Write::put(Tree::Audit, vec![2], b"second".to_vec()));
    batch.push(Write::put(Tree::Meta, vec![9], b"gone".to_vec()));
    batch.push(Write::remove(Tree::Meta, vec![9]));
    for b in [&backend as &dyn Backend, &mem] {
        b.apply(&batch).unwrap();
        b.flush().unwrap();
    }
    let prefixes: [&[u8]; 8] = [
        &[],
        &[1],
        &[1, 0xFF],
        &[0x80],
        &[0xFF],
        &[3],
        &[0xFF, 0xFF, 0xFF],
        &[0x7F],
    ];
    for p in prefixes {
        assert_eq!(
            backend.scan_prefix(Tree::Audit, p).unwrap(),
            mem.scan_prefix(Tree::Audit, p).unwrap(),
            "prefix {p:?}"
        );
        assert_eq!(
            backend.last_with_prefix(Tree::Audit, p).unwrap(),
            mem.last_with_prefix(Tree::Audit, p).unwrap(),
            "last with prefix {p:?}"
        );
    }
    let ranges: [(&[u8], &[u8]); 5] = [
        (&[], &[2]),
        (&[1], &[1, 0xFF, 0xFF]),
        (&[2], &[1]),
        (&[0x7F], &[0xC0]),
        (&[0x80], &[0xFF, 0xFF, 0xFF]),
    ];
    for (s, e) in ranges {
        assert_eq!(
            backend.scan_range(Tree::Audit, s, e).unwrap(),
            mem.scan_range(Tree::Audit, s, e).unwrap(),
            "range {s:?}..{e:?}"
        );
        assert_eq!(
            backend.last_in_range(Tree::Audit, s, e).unwrap(),
            mem.last_in_range(Tree::Audit, s, e).unwrap(),
            "last in range {s:?}..{e:?}"
        );
    }
    // Pages, as `ieum store copy` reads a tree.
    for (s, n) in [
        (&[][..], 0),
        (&[][..], 2),
        (&[1], 3),
        (&[0x7F], 100),
        (&[0xFF, 0], 5),
    ] {
        assert_eq!(
            backend.scan_from(Tree::Audit, s, n).unwrap(),
            mem.scan_from(Tree::Audit, s, n).unwrap(),
            "from {s:?}, {n} at most"
        );
    }
    let all: Vec<Vec<u8>> = backend
        .scan_prefix(Tree::Audit, &[])
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "bytewise, unsigned order");
    assert_eq!(
        backend.get(Tree::Audit, &[2]).unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(backend.get(Tree::Meta, &[9]).unwrap(), None);
    // Trees are separate keyspaces.
    assert!(backend.scan_prefix(Tree::Events, &[]).unwrap().is_empty());
    assert_eq!(backend.get(Tree::Staff, &[1]).unwrap(), None);

    // Event keys: big-endian seqs scan in numeric order across byte boundaries.
    let mut c = [0u8; 16];
    c[0] = 0xC0;
    let events: Vec<Write> = (250..300u64)
        .rev()
        .map(|s| Write::put(Tree::Events, event_key(&c, s), s.to_be_bytes().to_vec()))
        .collect();
    backend.apply(&events).unwrap();
    backend.flush().unwrap();
    let seqs: Vec<u64> = backend
        .scan_prefix(Tree::Events, &c)
        .unwrap()
        .iter()
        .map(|(k, _)| decode_event_key(k).unwrap().1)
        .collect();
    assert_eq!(seqs, (250..300).collect::<Vec<_>>());
    let (last, _) = backend
        .last_in_range(Tree::Events, &event_key(&c, 0), &event_key(&c, 256))
        .unwrap()
        .unwrap();
    assert_eq!(decode_event_key(&last).unwrap().1, 255);
}

/// A flush is the commit: other connections (the readers) see nothing before it, a backend
/// dropped before it leaves nothing behind, and what was flushed is there after a reopen.
#[test]
fn flush_is_the_commit() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("commit");
    {
        let backend = PostgresBackend::open(&url).unwrap();
        backend
            .apply(&[Write::put(Tree::Staff, b"kim".to_vec(), b"v1".to_vec())])
            .unwrap();
        assert_eq!(
            backend.get(Tree::Staff, b"kim").unwrap(),
            None,
            "not visible to readers before the commit (sled differs here)"
        );
        backend.flush().unwrap();
        assert_eq!(
            backend.get(Tree::Staff, b"kim").unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        backend
            .apply(&[
                Write::put(Tree::Staff, b"lee".to_vec(), b"never".to_vec()),
                Write::remove(Tree::Staff, b"kim".to_vec()),
            ])
            .unwrap();
        // Dropped without a flush: rolled back.
    }
    let backend = PostgresBackend::open(&url).unwrap();
    assert_eq!(
        backend.get(Tree::Staff, b"kim").unwrap().as_deref(),
        Some(&b"v1"[..]),
        "the flushed write is there; the unflushed removal is not"
    );
    assert_eq!(backend.get(Tree::Staff, b"lee").unwrap(), None);
    // The migrations ran once: reopening found them applied.
    drop(backend);
    let backend = PostgresBackend::open(&url).unwrap();
    assert_eq!(backend.scan_prefix(Tree::Staff, &[]).unwrap().len(), 1);
}

/// One primary per database: a second `open_primary` is refused while the first lives,
/// and succeeds at once when the first is gone (its session, and the liveness lock, ended:
/// no waiting out the lease).
#[test]
fn a_second_primary_on_the_same_database_is_refused() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("lock");
    let ttl = Duration::from_secs(30);
    let first = PostgresBackend::open_primary(&url, "node-a", ttl).unwrap();
    match PostgresBackend::open_primary(&url, "node-b", ttl) {
        Err(StoreError::Busy(why)) => assert!(why.contains("node-a"), "{why}"),
        other => panic!("a second primary must be refused: {:?}", other.map(|_| ())),
    }
    drop(first);
    let started = Instant::now();
    PostgresBackend::open_primary(&url, "node-b", ttl)
        .expect("free again once the first node is gone, long before its 30 s lease ends");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Fencing: once another node took the lease, every write of the old primary is refused
/// (never acknowledged, never stored) and it learns that it lost the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_lost_its_lease_cannot_write() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("fence");
    let u = url.clone();
    let backend = tokio::task::spawn_blocking(move || {
        PostgresBackend::open_primary(&u, "old", Duration::from_millis(900)).unwrap()
    })
    .await
    .unwrap();
    let store = Store::new(Arc::new(backend)).unwrap();
    let mut lost = store
        .lease_lost()
        .expect("a fenced store says when it lost the lease");
    store
        .write(vec![Write::put(
            Tree::Staff,
            b"before".to_vec(),
            b"1".to_vec(),
        )])
        .await
        .expect("the holder writes");
    // Another node takes over (as a standby does when the lease expired).
    let u = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = postgres::Client::connect(&u, postgres::NoTls).unwrap();
        let n = c
            .execute(
                "UPDATE ieum_lease SET holder = 'new', fence = fence + 1 WHERE name = 'primary'",
                &[],
            )
            .unwrap();
        assert_eq!(n, 1);
    })
    .await
    .unwrap();
    let refused = store
        .write(vec![Write::put(
            Tree::Staff,
            b"after".to_vec(),
            b"1".to_vec(),
        )])
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced(_))),
        "the old primary's write must be refused: {refused:?}"
    );
    tokio::time::timeout(Duration::from_secs(3), lost.wait_for(|l| *l))
        .await
        .expect("the renewal finds the lease gone within a third of its life")
        .unwrap();
    let u = url.clone();
    let (before, after) = tokio::task::spawn_blocking(move || {
        let reader = PostgresBackend::open(&u).unwrap();
        (
            reader.get(Tree::Staff, b"before").unwrap(),
            reader.get(Tree::Staff, b"after").unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(before.is_some());
    assert!(after.is_none(), "a fenced write is not in the database");
    let _ = store.close().await;
}

/// The async store over Postgres: concurrent writers share commits (group commit), every
/// acknowledged write is readable, and it survives close and reopen. Dropping the last
/// handle on an async thread must not panic (the client closes on a thread of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_over_postgres() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("group");
    let store = open_store(&url).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..1000u64 {
        let store = store.clone();
        set.spawn(async move {
            let mut c = [0u8; 16];
            c[15] = (i % 10) as u8;
            store
                .write(vec![
                    Write::put(Tree::Events, event_key(&c, i / 10), vec![0xAB; 200]),
                    Write::put(
                        Tree::Conversations,
                        c.to_vec(),
                        (i / 10).to_be_bytes().to_vec(),
                    ),
                ])
                .await
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().expect("every write acknowledged");
    }
    let stats = store.stats();
    assert_eq!(stats.writes, 1000);
    assert!(
        stats.flushes < stats.writes,
        "commits are shared: {} commits for {} writes",
        stats.flushes,
        stats.writes
    );
    eprintln!(
        "postgres group commit: {} writes in {} commits; commit p50 <= {} us, p99 <= {} us",
        stats.writes,
        stats.flushes,
        stats
            .flush_latency
            .quantile_upper_bound_us(0.5)
            .unwrap_or(0),
        stats
            .flush_latency
            .quantile_upper_bound_us(0.99)
            .unwrap_or(0)
    );
    assert_eq!(
        store.scan_prefix(Tree::Events, &[]).await.unwrap().len(),
        1000
    );
    // The last handle, dropped on an async thread.
    store.close().await.unwrap();
    let store = open_store(&url).await;
    assert_eq!(
        store
            .scan_prefix(Tree::Conversations, &[])
            .await
            .unwrap()
            .len(),
        10
    );
    store.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// The service on Postgres.

/// Reads one conversation back: the citizens' message ids with their seqs, in order.
async fn stored_messages(store: &Store, keyring: &Keyring, conv: &str) -> Vec<(String, u64)> {
    let id = ConversationId::parse(conv).unwrap();
    let key = keyring
        .key(id)
        .await
        .unwrap()
        .expect("a conversation with acknowledged messages has its key");
    let meta = transcript::load_meta(store, id, &key)
        .await
        .unwrap()
        .expect("a conversation with acknowledged messages has its record");
    let events = transcript::events_after(store, id, &key, 0, meta.last_seq)
        .await
        .unwrap();
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Citizen { id, .. } => Some((id.clone(), e.seq)),
            _ => None,
        })
        .collect()
}

/// Sends messages one after another, each after the previous ack, until the socket dies;
/// records every (id, seq) acknowledged.
async fn chat_until_killed(
    mut ws: Ws,
    me: usize,
    acked: Arc<std::sync::Mutex<Vec<(String, u64)>>>,
) {
    for n in 0.. {
        let id = format!("c{me}-{n}");
        let frame = json!({"type": "message", "id": id, "text": "오늘도 혼자 밥 먹었어요"});
        if futures::SinkExt::send(&mut ws, Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let Some(Ok(msg)) = ws.next().await else {
                return;
            };
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "ack" && v["id"] == id.as_str() {
                acked
                    .lock()
                    .unwrap()
                    .push((id.clone(), v["seq"].as_u64().unwrap()));
                break;
            }
            if v["type"] == "error" && v["id"] == id.as_str() {
                panic!("a message refused before the kill: {v}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn citizen_on(port: u16) -> (Ws, String) {
    let url = format!("ws://127.0.0.1:{port}/ws/chat");
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut().insert(
        "Origin",
        format!("http://127.0.0.1:{port}").parse().unwrap(),
    );
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    let welcome = until(&mut ws, "welcome").await.pop().unwrap();
    let conv = welcome["conversation_id"].as_str().unwrap().to_owned();
    (ws, conv)
}

/// `ieum serve --store postgres://…` is killed with SIGKILL while citizens chat: every
/// acknowledged message is in its transcript afterwards. A second `ieum serve` on the same
/// database waits as a standby meanwhile, and takes over after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_of_ieum_on_postgres() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("crash");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let store_arg = url.clone();
    let mut child = serve_child(port, &data, move |c| {
        // Citizens here type faster than a person: they chat until the kill.
        c.args(["--store", &store_arg])
            .args(["--rate-per-second", "1000", "--rate-burst", "1000"]);
    })
    .await;

    // A second node on the same database waits as a standby (and says so), with the same
    // master key.
    let second_port = free_port();
    let key_file = data.join("master.key");
    let mut second = Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(["serve", "--listen", &format!("127.0.0.1:{second_port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .arg("--master-key-file")
        .arg(&key_file)
        .args(["--store", &url, "--lease-ttl-ms", "3000"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("IEUM_LOG", "error")
        .spawn()
        .unwrap();
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", second_port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _, body) = request(second_port, "GET", "/healthz", None, None).await;
    assert_eq!(
        code, 503,
        "a standby is not healthy for the balancer: {body}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "standby", "{body}");
    assert_eq!(
        request(second_port, "GET", "/healthz/primary", None, None)
            .await
            .0,
        503
    );
    assert_eq!(
        request(port, "GET", "/healthz/primary", None, None).await.0,
        200
    );

    let mut tasks = Vec::new();
    let mut conversations = Vec::new();
    for me in 0..8 {
        let (ws, conv) = citizen_on(port).await;
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        conversations.push((conv, acked.clone()));
        tasks.push(tokio::spawn(chat_until_killed(ws, me, acked)));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(10), t).await {
            assert!(!e.is_panic(), "a citizen failed: {e}");
        }
    }

    // The killed node's session (and its liveness lock) ends when PostgreSQL sees its
    // socket close: the standby takes over without waiting out the 3 s lease.
    let killed = Instant::now();
    while request(second_port, "GET", "/healthz/primary", None, None)
        .await
        .0
        != 200
    {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the standby did not take over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "standby serving {} ms after kill -9",
        killed.elapsed().as_millis()
    );
    // Read what was stored, beside the new primary (an unfenced reader).
    let u = url.clone();
    let backend = tokio::task::spawn_blocking(move || PostgresBackend::open(&u).unwrap())
        .await
        .unwrap();
    let store = Store::new(Arc::new(backend)).unwrap();
    let master = ieum::crypto::load_master_key(None, &data.join("master.key")).unwrap();
    let keyring = Keyring::new(master, store.clone());
    let mut checked = 0;
    for (conv, acked) in &conversations {
        let acked = acked.lock().unwrap().clone();
        if acked.is_empty() {
            continue;
        }
        let stored = stored_messages(&store, &keyring, conv).await;
        let unique: HashSet<&String> = stored.iter().map(|(id, _)| id).collect();
        assert_eq!(
            unique.len(),
            stored.len(),
            "a message stored twice in {conv}"
        );
        for a in &acked {
            assert!(stored.contains(a), "acknowledged {a:?} lost from {conv}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "too few acks to mean anything: {checked}");
    // PostgreSQL holds ciphertext only: no stored value carries the words.
    let words = "혼자 밥 먹었어요".as_bytes();
    for tree in Tree::ALL {
        for (_, v) in store.scan_prefix(*tree, &[]).await.unwrap() {
            assert!(
                !v.windows(words.len()).any(|w| w == words),
                "plain text in {tree}"
            );
        }
    }
    eprintln!("kill -9 of ieum on postgres: {checked} acknowledged messages, none lost");
    drop(keyring);
    store.close().await.unwrap();
    let _ = second.kill();
    let _ = second.wait();
}

async fn healthz(port: u16) -> u16 {
    request(port, "GET", "/healthz", None, None).await.0
}

/// PostgreSQL restarts under a running ieum: a message sent while it is down is not
/// acknowledged (`not_saved`), `/healthz` says 503, and once the database is back ieum
/// recovers by itself (no restart): health is 200 again and messages are acknowledged and
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_survived_without_restarting_ieum() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("restart");
    let location = Location::Postgres(url.clone());
    let app = spawn_in(tempfile::tempdir().unwrap(), move |s| {
        s.store = Some(location);
    })
    .await;
    let (mut c, conv) = citizen_on(app.port).await;
    send(
        &mut c,
        json!({"type": "message", "id": "m1", "text": "안녕하세요"}),
    )
    .await;
    let ack = until(&mut c, "ack").await.pop().unwrap();
    assert_eq!(ack["id"], "m1");
    assert_eq!(healthz(app.port).await, 200);

    let pg = Arc::new(pg);
    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.stop()).await.unwrap();
    send(
        &mut c,
        json!({"type": "message", "id": "m2", "text": "요즘 잠이 안 와요"}),
    )
    .await;
    let frames = loop_until(&mut c, |f| f["type"] == "error" || f["type"] == "ack").await;
    let last = frames.last().unwrap();
    assert_eq!(
        last["type"], "error",
        "no ack while the database is down: {frames:?}"
    );
    assert_eq!(last["code"], "not_saved");
    assert_eq!(last["id"], "m2");
    // The writer marks the store failing right after it answered the group's waiters.
    let started = Instant::now();
    while healthz(app.port).await != 503 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "degraded while writes fail"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let p = pg.clone();
    tokio::task::spawn_blocking(move || p.start_again())
        .await
        .unwrap();
    let started = Instant::now();
    while healthz(app.port).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "ieum recovers by itself within 15 s of the database's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "recovered {} ms after PostgreSQL was back",
        started.elapsed().as_millis()
    );
    // The citizen sends it again (the widget keeps unsaved text): acknowledged now.
    send(
        &mut c,
        json!({"type": "message", "id": "m2", "text": "요즘 잠이 안 와요"}),
    )
    .await;
    let frames = loop_until(&mut c, |f| f["type"] == "error" || f["type"] == "ack").await;
    let ack = frames.last().unwrap();
    assert_eq!(ack["type"], "ack", "{frames:?}");
    assert_eq!(ack["id"], "m2");
    let seq2 = ack["seq"].as_u64().unwrap();

    // A new citizen works too (reads and writes on fresh connections).
    let (mut d, _) = citizen_on(app.port).await;
    send(
        &mut d,
        json!({"type": "message", "id": "d1", "text": "안녕"}),
    )
    .await;
    assert_eq!(until(&mut d, "ack").await.pop().unwrap()["id"], "d1");

    let stored = stored_messages(&app.state.store, &app.state.keyring, &conv).await;
    let ids: Vec<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"], "m2 once, after the restart");
    assert_eq!(stored[1].1, seq2);
    app.stop().await;
}

/// Frames until `pred` holds for one (within 10 s); all of them, that one last.
async fn loop_until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let v = tokio::time::timeout_at(deadline, next(ws))
            .await
            .unwrap_or_else(|_| panic!("no matching frame within 10 s: {seen:?}"));
        let done = pred(&v);
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// `ieum staff add` and `ieum audit verify` take `--store` too; beside a running node,
/// `staff add` says plainly that the database is in use.
#[test]
fn staff_add_and_audit_verify_accept_store() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("cli");
    let dir = tempfile::tempdir().unwrap();
    let ieum = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ieum"))
            .args(args)
            .args(["--store", &url, "--data-dir"])
            .arg(dir.path().join("data"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("IEUM_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = ieum(
        &["staff", "add", "kim", "--role", "counselor"],
        "a long password\n",
    );
    assert!(ok, "{out}");
    // A running node holds the primary lease.
    let backend = PostgresBackend::open_primary(&url, "serving", Duration::from_secs(30)).unwrap();
    assert!(
        backend.get(Tree::Staff, b"kim").unwrap().is_some(),
        "the account is in PostgreSQL"
    );
    let (ok, out) = ieum(
        &["staff", "add", "lee", "--role", "counselor"],
        "a long password\n",
    );
    assert!(!ok && out.contains("in use by a running ieum"), "{out}");
    drop(backend);
    let (ok, out) = ieum(&["audit", "verify"], "");
    assert!(ok && out.contains("audit log intact"), "{out}");
}

/// A database restart while ieum is idle costs no write and no read: the first statement
/// after it finds the closed connection and replaces it before anything was sent.
#[test]
fn a_restart_while_idle_is_invisible_to_the_next_write_and_read() {
    let Some(pg) = Pg::start() else { return };
    let url = pg.database("idle");
    let backend = PostgresBackend::open(&url).unwrap();
    backend
        .apply(&[Write::put(Tree::Meta, b"a".to_vec(), b"1".to_vec())])
        .unwrap();
    backend.flush().unwrap();
    assert!(backend.get(Tree::Meta, b"a").unwrap().is_some());
    pg.stop();
    pg.start_again();
    assert_eq!(
        backend.get(Tree::Meta, b"a").unwrap().as_deref(),
        Some(&b"1"[..]),
        "a read retries once on a fresh connection"
    );
    backend
        .apply(&[Write::put(Tree::Meta, b"b".to_vec(), b"2".to_vec())])
        .expect("the writer reconnects before its transaction starts");
    backend.flush().unwrap();
    assert_eq!(backend.scan_prefix(Tree::Meta, &[]).unwrap().len(), 2);
}
