//! Restart time against the number of stored conversations.
//!
//! A restart must stay quick however many conversations the store holds: the crisis path
//! is down while it runs. This builds a data directory with N closed conversations (each a
//! sealed conversation record, its wrapped key and one event record of a mean-sized
//! message) plus 20 waiting for a counselor, then measures what `ieum serve` does before it
//! serves: `App::build` (open sled, load the rules and content, open the audit log, bring
//! the waiting conversations back into the queue), and stops it, five times. It prints the
//! median and the worst.
//!
//! Run: `cargo bench --bench restart` (N = 100,000; `IEUM_RESTART_N` to change it; about a
//! minute, most of it building the directory). Under `cargo test` it runs with N = 200 as
//! a smoke test.

use std::path::Path;
use std::time::{Duration, Instant};

use ieum::app::{App, Settings};
use ieum::conversation::{ConversationMeta, EventBody, State, StoredEvent, TriageNote};
use ieum::ids::ConversationId;
use ieum::store::{Store, StoreOptions};
use ieum::transcript::{self, Keyring, Progress};
use ieum::triage::Level;

fn settings(data: &Path) -> Settings {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_path_buf(),
        rules: root.join("escalation-rules.toml"),
        intents: root.join("intents"),
        ..Settings::defaults()
    }
}

/// One citizen line with its triage note and a bot reply: about the mean record size.
fn events(seq: u64, at: u64) -> Vec<StoredEvent> {
    vec![
        StoredEvent {
            seq,
            at,
            body: EventBody::Citizen {
                id: format!("m{seq}"),
                text: "요즘 너무 외로워서 아무하고나 이야기하고 싶어요. 밤마다 잠도 잘 안 와요.".into(),
                triage: TriageNote {
                    level: Level::Low,
                    conversation_level: Level::Low,
                    intent: Some("loneliness".into()),
                    rules: Vec::new(),
                    spans: vec![(3, 7)],
                    ruleset: "bench".into(),
                },
            },
        },
        StoredEvent {
            seq: seq + 1,
            at,
            body: EventBody::Bot {
                text: "외로운 마음을 말해 주셔서 고마워요. 외로움안녕120(120번 다음 5번)에서 24시간 이야기를 들어 줘요. 오늘 하루는 어떠셨어요?".repeat(2),
                resources: Vec::new(),
                quick_replies: Vec::new(),
            },
        },
    ]
}

/// Writes `n` closed conversations and `waiting` queued ones into `data`.
fn build(data: &Path, n: usize, waiting: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        ieum::store::prepare_data_dir(data).unwrap();
        let store = Store::open_sled(data, StoreOptions::default()).unwrap();
        let master = ieum::crypto::load_master_key(None, &data.join("master.key")).unwrap();
        let keyring = Keyring::new(master, store.clone());
        let now = ieum::ids::now_ms();
        let mut batch = Vec::new();
        for i in 0..n + waiting {
            let id = ConversationId::random();
            let (key, key_write) = keyring.create(id);
            let mut meta = ConversationMeta::new(id, "ko", now, "00".repeat(32));
            meta.last_seq = 2;
            meta.updated_at = now;
            meta.conversation.turn = 1;
            meta.conversation.state = if i < n {
                meta.closed_at = Some(now);
                State::Closed {
                    by: ieum::conversation::Closer::Citizen,
                    rating_open: false,
                }
            } else {
                meta.conversation.level = Level::High;
                meta.enqueued_at = Some(now);
                State::Queued {
                    urgent: false,
                    bot_meanwhile: false,
                }
            };
            let progress = Progress {
                last_seq: 2,
                updated_at: now,
                turn: 1,
                counts: [0, 1, 0, 0, 0],
            };
            batch.push(key_write);
            batch.extend(transcript::write_events(
                id,
                &key,
                &events(1, now),
                progress,
            ));
            batch.push(meta.write(&key));
            batch.push(transcript::waiting_index(&meta));
            if batch.len() >= 2_000 {
                store.write(std::mem::take(&mut batch)).await.unwrap();
            }
        }
        store.write(batch).await.unwrap();
        store.close().await.unwrap();
    });
    // Let sled's flusher let go of the directory.
    std::thread::sleep(Duration::from_millis(
        std::env::var("IEUM_RESTART_SETTLE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500),
    ));
}

/// One restart: build the app (everything before serving), write `traffic` message records
/// (what a running service writes before its next restart), then stop it.
fn restart(data: &Path, traffic: usize) -> (Duration, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let app = App::build(settings(data)).await.unwrap();
        let took = started.elapsed();
        let waiting = app.state().queue.snapshot().await.len();
        let store = app.state().store.clone();
        let keyring = app.state().keyring.clone();
        let id = ConversationId::random();
        let (key, key_write) = keyring.create(id);
        store.write(vec![key_write]).await.unwrap();
        for i in 0..traffic as u64 {
            let p = Progress {
                last_seq: 2 * i + 2,
                updated_at: i,
                turn: i as u32,
                counts: [0; 5],
            };
            let w = transcript::write_events(id, &key, &events(2 * i + 1, i), p);
            store.write(w.into_iter().collect()).await.unwrap();
        }
        let stop = app.shutdown_handle();
        let server = tokio::spawn(app.run_until_stopped());
        stop.send_replace(true);
        server.await.unwrap().unwrap();
        (took, waiting)
    })
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("IEUM_RESTART_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 200 } else { 100_000 });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let started = Instant::now();
    build(&data, n, 20);
    println!(
        "restart: built {n} closed + 20 waiting conversations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // sled 0.34 writes its snapshot only when it opens, and replays the log written since
    // the previous open: the first start after the bulk build replays all of it. That is
    // reported on its own; the measured restarts each follow a run that wrote `traffic`
    // messages, as restarts in a crash loop under load do.
    let traffic = if smoke { 50 } else { 2_000 };
    let (first, _) = restart(&data, traffic);
    println!(
        "restart: first start after writing everything in one run: {:.0} ms (log replay)",
        first.as_secs_f64() * 1e3
    );
    let runs = if smoke { 2 } else { 5 };
    let mut times = Vec::new();
    for _ in 0..runs {
        let (took, waiting) = restart(&data, traffic);
        assert_eq!(
            waiting, 20,
            "the waiting conversations are back in the queue"
        );
        println!(
            "restart: run {}: {:.0} ms",
            times.len() + 1,
            took.as_secs_f64() * 1e3
        );
        times.push(took);
        std::thread::sleep(Duration::from_millis(300));
    }
    times.sort();
    let size: u64 = walk_size(&data);
    println!(
        "restart: {n} conversations, store {:.0} MB, {traffic} messages between restarts: App::build median {:.0} ms, worst {:.0} ms ({runs} runs)",
        size as f64 / 1e6,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}
