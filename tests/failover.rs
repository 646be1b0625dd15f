//! Multi-node failover on PostgreSQL: two `ieum serve` nodes on one database behind
//! HAProxy (routing by `GET /healthz/primary`), driven black-box over real sockets.
//!
//! 1. **kill -9 of the primary under load**, round after round: the standby takes over,
//!    every acknowledged message is in its transcript exactly once and in order, every
//!    citizen resumes through HAProxy within 5 s, the queue keeps its order, no
//!    conversation ever has two counselors, the bot never speaks once a counselor joined,
//!    and the counselor finds their conversation again and can still write to the person;
//! 2. **lease fencing**: a primary frozen (SIGSTOP) past the lease TTL is replaced; when it
//!    wakes, a message it received meanwhile is neither acknowledged nor stored, it steps
//!    down to standby and closes its sockets;
//! 3. **a graceful stop** (SIGTERM) of the primary releases the lease at once: the standby
//!    takes over well within the TTL; while a primary runs, the CLI refuses to write;
//! 4. **a PostgreSQL restart under load** with two nodes: no acknowledged message lost,
//!    `/healthz` degraded, then ok again, without restarting ieum;
//! 5. the harness itself (HAProxy, [`Node`]) in front of one sled node.
//!
//! Short form (part of `./scripts/test`): 3 rounds of kill -9. Long form:
//!
//! ```text
//! IEUM_FAILOVER_ROUNDS=20 cargo test --test failover -- --nocapture
//! ```
//!
//! (`IEUM_FAILOVER_CLIENTS`, default 20, sets the number of citizens.) Timings are printed
//! (`--nocapture` shows them). The tests run one at a time (each runs PostgreSQL, two
//! nodes and HAProxy and measures failover times). Where PostgreSQL or HAProxy is missing
//! each test prints why and passes, except under `CI=true`, where it fails: `.ci/run`
//! installs Debian's `postgresql` and `haproxy`. The nodes' logs are kept in their
//! temporary directory; a failing assertion prints the tail of each.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Ws;
use common::haproxy::{
    Haproxy, Node, NodeOptions, PRIMARY_CHECK, Role, get_json, haproxy_available, http,
    random_master_key, staff_add, try_staff_add,
};
use common::pg::Pg;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// One test at a time: each measures failover on 2 cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PASSWORD: &str = "a long password";

/// What the citizens say (all `low`: no handoff), and the words that hand off (`high`).
const LINES: [&str; 5] = [
    "안녕하세요",
    "요즘 잠이 잘 안 와요",
    "회사 일이 너무 많아서 지쳐요",
    "혼자 밥 먹는 게 익숙해졌어요",
    "주말에 뭐 하면 좋을까요",
];
const RISK: &str = "죽고 싶어요";

/// The longest a sent message may go without an `ack` or an `error` on an open socket.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Every citizen on the dead node is back within this of the kill.
const RESUME_BOUND: Duration = Duration::from_secs(5);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// p50 and max, in ms.
fn p50_max(v: &[Duration]) -> (u128, u128) {
    let mut s: Vec<Duration> = v.to_vec();
    s.sort();
    match s.len() {
        0 => (0, 0),
        n => (ms(s[n / 2]), ms(s[n - 1])),
    }
}

// ---------------------------------------------------------------------------------------
// The cluster: PostgreSQL, two nodes, HAProxy.

/// Dropped in field order: HAProxy, the nodes, then PostgreSQL.
struct Cluster {
    ha: Haproxy,
    nodes: Vec<Node>,
    pg: Arc<Pg>,
    ttl_ms: u64,
    /// The database's URL.
    url: String,
    /// The nodes' data directories and logs.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// PostgreSQL with database `db`, staff `kim`, `lee` (counselors) and `boss`
    /// (supervisor), node `a` (waited for as primary), node `b` (waited for as standby),
    /// and HAProxy in front of both. `None` if PostgreSQL or HAProxy is not installed.
    async fn start(db: &str, ttl_ms: u64) -> Option<Cluster> {
        if !haproxy_available() {
            return None;
        }
        let pg = Pg::start()?;
        let url = pg.database(db);
        let dir = tempfile::tempdir().unwrap();
        // Staff first: the CLI refuses to write while a primary runs.
        for (name, role) in [
            ("kim", "counselor"),
            ("lee", "counselor"),
            ("boss", "supervisor"),
        ] {
            staff_add(&url, &dir.path().join("cli"), name, role, PASSWORD);
        }
        // The same master key on every node. Citizens here type faster than people.
        let options = NodeOptions::new(Some(&url), &random_master_key())
            .lease_ttl_ms(ttl_ms)
            .arg("--rate-per-second")
            .arg("20")
            .arg("--rate-burst")
            .arg("20");
        let started = Instant::now();
        let mut a = Node::start("a", dir.path(), options.clone());
        a.started(Duration::from_secs(30)).await;
        if a.wait_role(Role::Primary, Duration::from_secs(30))
            .await
            .is_none()
        {
            panic!(
                "node a, alone on the database, is not primary ({:?}):\n{}",
                a.role().await,
                a.log_tail(30)
            );
        }
        let mut b = Node::start("b", dir.path(), options);
        b.started(Duration::from_secs(30)).await;
        if b.wait_role(Role::Standby, Duration::from_secs(10))
            .await
            .is_none()
        {
            panic!(
                "node b, second on the database, is not standby ({:?}):\n{}",
                b.role().await,
                b.log_tail(30)
            );
        }
        assert_eq!(a.role().await, Role::Primary, "a is still primary");
        let ha = Haproxy::start(&[a.port, b.port])?;
        ha.wait_routed(PRIMARY_CHECK, Duration::from_secs(10)).await;
        println!(
            "cluster up in {} ms: a primary on {}, b standby on {}, HAProxy on {} (lease TTL {ttl_ms} ms)",
            ms(started.elapsed()),
            a.port,
            b.port,
            ha.port
        );
        Some(Cluster {
            ha,
            nodes: vec![a, b],
            pg: Arc::new(pg),
            ttl_ms,
            url,
            dir,
        })
    }

    /// The roles of the nodes now.
    async fn roles(&self) -> Vec<Role> {
        let mut v = Vec::new();
        for n in &self.nodes {
            v.push(n.role().await);
        }
        v
    }

    /// Waits until exactly one node is primary; its index.
    async fn primary(&self, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            let roles = self.roles().await;
            let primaries: Vec<usize> = (0..roles.len())
                .filter(|&i| roles[i] == Role::Primary)
                .collect();
            if primaries.len() == 1 {
                return primaries[0];
            }
            assert!(
                started.elapsed() < within,
                "not exactly one primary within {within:?}: {roles:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The tail of every log (for failure messages).
    fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push_str(&format!(
                "---- node {} ({}):\n{}\n",
                n.name,
                n.log_path().display(),
                n.log_tail(25)
            ));
        }
        let ha = self.ha.log();
        let lines: Vec<&str> = ha.lines().collect();
        out.push_str(&format!(
            "---- haproxy:\n{}\n",
            lines[lines.len().saturating_sub(15)..].join("\n")
        ));
        out
    }
}

/// `POST /api/login` (through HAProxy: retried while no node is primary); the token.
async fn login(port: u16, user: &str) -> String {
    let started = Instant::now();
    let body = json!({"username": user, "password": PASSWORD});
    loop {
        let answer = http(
            port,
            "POST",
            "/api/login",
            None,
            Some(&body),
            Duration::from_secs(5),
        )
        .await;
        if let Some((200, b)) = &answer {
            let v: Value = serde_json::from_str(b).unwrap();
            return v["token"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{user} cannot log in: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A supervisor reads a transcript (through HAProxy, retried while no node is primary):
/// (the conversation's record, its events).
async fn transcript(port: u16, boss: &str, conv: &str) -> (Value, Vec<Value>) {
    let started = Instant::now();
    let path = format!("/api/conversations/{conv}");
    loop {
        let answer = get_json(port, &path, Some(boss)).await;
        if let Some((200, v)) = &answer {
            return (
                v["conversation"].clone(),
                v["events"].as_array().cloned().unwrap_or_default(),
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the transcript of {conv} is not readable: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Citizens.

async fn connect(port: u16, resume: bool) -> Option<Ws> {
    // A 503 is a standby HAProxy has not marked down yet (a node that just started counts
    // as up until its first check): retry, as the widget does.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let url = format!(
            "ws://127.0.0.1:{port}/ws/chat{}",
            if resume { "?resume=1" } else { "" }
        );
        let mut req = url.into_client_request().ok()?;
        req.headers_mut()
            .insert("Origin", format!("http://127.0.0.1:{port}").parse().ok()?);
        match tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(req)).await {
            Ok(Ok((ws, _))) => return Some(ws),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r)))
                if r.status() == 503 && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return None,
        }
    }
}

/// A new conversation through `port` (HAProxy, or a node directly) whose first message `m1`
/// is acknowledged: the socket, the conversation and its resume token.
async fn start_and_write_m1(port: u16) -> (Ws, String, String) {
    let mut ws = connect(port, false).await.expect("a citizen connects");
    let w = frames_until(&mut ws, "welcome").await.pop().unwrap();
    let conv = w["conversation_id"].as_str().unwrap().to_owned();
    let token = w["token"].as_str().unwrap().to_owned();
    ws.send(frame(
        json!({"type": "message", "id": "m1", "text": "안녕하세요"}),
    ))
    .await
    .unwrap();
    assert_eq!(
        frames_until(&mut ws, "ack").await.pop().unwrap()["id"],
        "m1"
    );
    (ws, conv, token)
}

/// Resumes `conv` through `port` from the start: `m1` is replayed, and `m2` is acknowledged.
async fn resume_and_write_m2(port: u16, conv: &str, token: &str) {
    let mut ws = connect(port, true).await.expect("the citizen reconnects");
    ws.send(frame(
        json!({"type": "resume", "conversation_id": conv, "token": token, "last_seq": 0}),
    ))
    .await
    .unwrap();
    let w = frames_until(&mut ws, "welcome").await.pop().unwrap();
    assert_eq!(w["resumed"], true, "{w}");
    ws.send(frame(
        json!({"type": "message", "id": "m2", "text": "요즘 잠이 잘 안 와요"}),
    ))
    .await
    .unwrap();
    let frames = frames_until(&mut ws, "ack").await;
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "message" && f["id"] == "m1"),
        "m1 replayed: {frames:?}"
    );
    assert_eq!(frames.last().unwrap()["id"], "m2");
}

fn frame(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

/// The next JSON text frame within `within`; `None` if the socket closed (or nothing came).
async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                return None;
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Frames until the socket closes (`true`) or `within` passes (`false`).
async fn until_closed(ws: &mut Ws, within: Duration) -> (Vec<Value>, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return (frames, false),
            Ok(Some(Ok(Message::Text(t)))) => {
                frames.extend(serde_json::from_str::<Value>(t.as_str()).ok());
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                return (frames, true);
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Frames until one of type `ty` (within 5 s); all of them, that one last.
async fn frames_until(ws: &mut Ws, ty: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let v = next_json(ws, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no {ty} frame within 5 s: {seen:?}"));
        let done = v["type"] == ty;
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// One citizen's view, shared between its task and the test.
#[derive(Default)]
struct Citizen {
    /// (conversation, token, last seq seen).
    conv: Option<(String, String, u64)>,
    /// Acknowledged messages per conversation: (client id, seq), in order.
    acked: HashMap<String, Vec<(String, u64)>>,
    /// Messages sent (ids `c{me}-{n}`: n counts up; an id is never sent twice).
    sent: u64,
    /// Connected (a `welcome` came) and not dropped since.
    connected: bool,
    /// When each resume was welcomed.
    resumed_at: Vec<Instant>,
    /// Times the socket dropped.
    drops: u64,
    /// Resumes refused (`resume_failed`): the person was put in a new conversation.
    lost_conversations: u64,
    /// The test asks it to send [`RISK`] next.
    escalate: bool,
    risk_sent: bool,
    /// A `queue` frame came.
    queued: bool,
    /// A `counselor_joined` frame came.
    joined: bool,
    /// What counselors wrote to it.
    counselor_texts: Vec<String>,
    not_saved: u64,
    rate_limited: u64,
}

/// Citizens chatting through one port, each in a task that reconnects and resumes.
struct Load {
    citizens: Vec<Arc<Mutex<Citizen>>>,
    problems: Arc<Mutex<Vec<String>>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, n: usize) -> Load {
        let (stop, rx) = watch::channel(false);
        let problems = Arc::new(Mutex::new(Vec::new()));
        let citizens: Vec<Arc<Mutex<Citizen>>> = (0..n)
            .map(|_| Arc::new(Mutex::new(Citizen::default())))
            .collect();
        let tasks = citizens
            .iter()
            .enumerate()
            .map(|(me, st)| {
                tokio::spawn(citizen(port, me, st.clone(), problems.clone(), rx.clone()))
            })
            .collect();
        Load {
            citizens,
            problems,
            stop,
            tasks,
        }
    }

    fn with<T>(&self, i: usize, f: impl FnOnce(&mut Citizen) -> T) -> T {
        f(&mut self.citizens[i].lock().unwrap())
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    fn assert_no_problems(&self, when: &str, logs: impl FnOnce() -> String) {
        let p = self.problems();
        assert!(
            p.is_empty(),
            "{when}: {} problems:\n{}\n{}",
            p.len(),
            p.join("\n"),
            logs()
        );
    }

    fn connected(&self) -> Vec<usize> {
        (0..self.citizens.len())
            .filter(|&i| self.with(i, |c| c.connected))
            .collect()
    }

    fn acks(&self) -> usize {
        self.citizens
            .iter()
            .map(|c| {
                c.lock()
                    .unwrap()
                    .acked
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
            })
            .sum()
    }

    fn sum(&self, f: impl Fn(&Citizen) -> u64) -> u64 {
        self.citizens.iter().map(|c| f(&c.lock().unwrap())).sum()
    }

    async fn wait_all_connected(&self, within: Duration) {
        let started = Instant::now();
        while self.connected().len() < self.citizens.len() {
            assert!(
                started.elapsed() < within,
                "only {} of {} citizens connected within {within:?}: {:?}",
                self.connected().len(),
                self.citizens.len(),
                self.problems()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Citizen `i` says [`RISK`]; waits until it is in the queue; its conversation.
    async fn escalate(&self, i: usize) -> String {
        self.with(i, |c| c.escalate = true);
        let started = Instant::now();
        while !self.with(i, |c| c.queued) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "citizen {i} is not in the queue 10 s after saying it wants to die: {:?}",
                self.problems()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.with(i, |c| c.conv.as_ref().unwrap().0.clone())
    }

    /// Waits until each of `who` has resumed after `since`; each one's delay from `since`.
    async fn wait_resumed(
        &self,
        who: &[usize],
        since: Instant,
        within: Duration,
    ) -> Result<Vec<Duration>, Vec<usize>> {
        loop {
            let mut delays = Vec::new();
            let mut missing = Vec::new();
            for &i in who {
                match self.with(i, |c| c.resumed_at.iter().copied().find(|t| *t > since)) {
                    Some(t) => delays.push(t - since),
                    None => missing.push(i),
                }
            }
            if missing.is_empty() {
                return Ok(delays);
            }
            if since.elapsed() > within {
                return Err(missing);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every citizen (each closes its socket).
    async fn finish(&mut self) {
        self.stop.send_replace(true);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One citizen until the test stops it: connects (resuming its conversation after the
/// first time), sends messages one after another (the next after the previous one's ack
/// or error, 150–450 ms later; a refused one is not sent again under the same id), and
/// notes every ack. Anything a person should never see goes to `problems`.
async fn citizen(
    port: u16,
    me: usize,
    st: Arc<Mutex<Citizen>>,
    problems: Arc<Mutex<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) {
    let problem = |p: String| problems.lock().unwrap().push(format!("citizen {me}: {p}"));
    let pause = || Duration::from_millis(rand::rng().random_range(150..450));
    while !*stop.borrow() {
        let resume = st.lock().unwrap().conv.clone();
        let Some(mut ws) = connect(port, resume.is_some()).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if let Some((conv, token, last_seq)) = &resume {
            let r = json!({"type": "resume", "conversation_id": conv, "token": token, "last_seq": last_seq});
            if ws.send(frame(r)).await.is_err() {
                continue;
            }
        }
        // The welcome (after `resume_failed` when the resume is refused).
        let mut refused = false;
        let welcome = loop {
            match next_json(&mut ws, Duration::from_secs(5)).await {
                Some(v) if v["type"] == "welcome" => break Some(v),
                Some(v) if v["type"] == "error" && v["code"] == "resume_failed" => refused = true,
                Some(_) => continue,
                None => break None,
            }
        };
        let Some(w) = welcome else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let conv = w["conversation_id"].as_str().unwrap_or_default().to_owned();
        let token = w["token"].as_str().unwrap_or_default().to_owned();
        let resumed = w["resumed"] == true;
        {
            let mut s = st.lock().unwrap();
            match (&resume, resumed) {
                (Some((old, _, last)), true) => {
                    if *old != conv {
                        problem(format!("resumed {conv} instead of {old}"));
                    }
                    s.conv = Some((conv.clone(), token, *last));
                    s.resumed_at.push(Instant::now());
                }
                (Some(_), false) => {
                    s.lost_conversations += 1;
                    if !refused {
                        problem("a resume answered with a new conversation".into());
                    }
                    s.conv = Some((conv.clone(), token, w["seq"].as_u64().unwrap_or(0)));
                    s.joined = false;
                    s.queued = false;
                    s.risk_sent = false;
                }
                (None, _) => {
                    s.conv = Some((conv.clone(), token, w["seq"].as_u64().unwrap_or(0)));
                }
            }
            s.connected = true;
        }

        let mut pending: Option<(String, Instant)> = None;
        let mut next_send = Instant::now() + pause();
        loop {
            let wake = match &pending {
                Some((_, at)) => *at + ANSWER_WAIT,
                None => next_send,
            };
            tokio::select! {
                _ = stop.changed() => {
                    let _ = ws.close(None).await;
                    st.lock().unwrap().connected = false;
                    return;
                }
                msg = ws.next() => {
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                        problem("a frame that is not JSON".into());
                        continue;
                    };
                    let mut s = st.lock().unwrap();
                    if let (Some(seq), Some(c)) = (v["seq"].as_u64(), s.conv.as_mut()) {
                        c.2 = c.2.max(seq);
                    }
                    let ty = v["type"].as_str().unwrap_or_default();
                    let id = v["id"].as_str();
                    let mine = pending.as_ref().is_some_and(|(p, _)| Some(p.as_str()) == id);
                    match ty {
                        "ack" if mine => {
                            let (id, _) = pending.take().unwrap();
                            let seq = v["seq"].as_u64().unwrap_or(0);
                            s.acked.entry(conv.clone()).or_default().push((id, seq));
                            next_send = Instant::now() + pause();
                        }
                        "ack" => problem(format!("an ack it did not wait for: {}", id.unwrap_or("?"))),
                        "error" if mine => {
                            match v["code"].as_str() {
                                Some("rate_limited") => s.rate_limited += 1,
                                Some("not_saved") => s.not_saved += 1,
                                other => problem(format!("message refused: {other:?}")),
                            }
                            if s.escalate && !s.queued {
                                s.risk_sent = false;
                            }
                            pending = None;
                            next_send = Instant::now() + Duration::from_millis(300) + pause();
                        }
                        "error" => problem(format!("error {}", v["code"])),
                        "bot" if s.joined => problem("the bot spoke after a counselor joined".into()),
                        "counselor_joined" => s.joined = true,
                        "counselor" => {
                            let t = v["text"].as_str().unwrap_or_default().to_owned();
                            s.counselor_texts.push(t);
                        }
                        "queue" => s.queued = true,
                        "closed" => problem(format!("the conversation was closed (by {})", v["by"])),
                        "welcome" => problem("a second welcome on one socket".into()),
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {
                    if let Some((id, _)) = &pending {
                        problem(format!("no ack and no error for {id} within {ANSWER_WAIT:?} on an open socket"));
                        break;
                    }
                    let (id, text) = {
                        let mut s = st.lock().unwrap();
                        s.sent += 1;
                        let id = format!("c{me}-{}", s.sent);
                        let text = if s.escalate && !s.risk_sent {
                            s.risk_sent = true;
                            RISK
                        } else {
                            LINES[(s.sent as usize + me) % LINES.len()]
                        };
                        (id, text)
                    };
                    if ws.send(frame(json!({"type": "message", "id": id, "text": text}))).await.is_err() {
                        break;
                    }
                    pending = Some((id, Instant::now()));
                }
            }
        }
        // Dropped. A message without its ack may or may not be stored: never resent.
        {
            let mut s = st.lock().unwrap();
            s.connected = false;
            s.drops += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Transcripts.

/// What a conversation's transcript must show besides its messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing more.
    Any,
    /// Waiting for a counselor (state `queued`).
    Waiting,
    /// With a counselor (state `with_counselor`).
    WithCounselor,
}

/// Checks one transcript: every acknowledged message exactly once with its seq, messages
/// in the order sent, events in seq order, at most one counselor ever, never back to the
/// bot after the handoff, and no bot after a counselor joined.
fn check_transcript(
    conv: &str,
    acked: &[(String, u64)],
    meta: &Value,
    events: &[Value],
    expect: Expect,
) -> Result<(), String> {
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    if seqs.len() != events.len() || !seqs.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("{conv}: events not in seq order: {seqs:?}"));
    }
    let stored: Vec<(String, u64)> = events
        .iter()
        .filter(|e| e["type"] == "citizen")
        .map(|e| {
            (
                e["id"].as_str().unwrap_or_default().to_owned(),
                e["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let mut seen = HashSet::new();
    for (id, _) in &stored {
        if !seen.insert(id.as_str()) {
            return Err(format!("{conv}: message {id} stored twice"));
        }
    }
    // Ids are `c{me}-{n}`, n counting up in the order sent (one at a time).
    let ns: Vec<u64> = stored
        .iter()
        .filter_map(|(id, _)| id.rsplit('-').next()?.parse().ok())
        .collect();
    if !ns.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("{conv}: messages out of the order sent: {ns:?}"));
    }
    for a in acked {
        if !stored.contains(a) {
            let found = stored.iter().find(|(id, _)| *id == a.0);
            return Err(format!(
                "{conv}: acknowledged message {a:?} is not in the transcript (stored as {found:?})"
            ));
        }
    }
    let mut counselors: HashSet<&str> = HashSet::new();
    for e in events {
        if e["type"] == "counselor_joined" || e["type"] == "counselor" {
            counselors.insert(e["counselor"].as_str().unwrap_or("?"));
        }
    }
    let listed = meta["counselors"].as_array().map_or(0, Vec::len);
    if counselors.len() > 1 || listed > 1 {
        return Err(format!(
            "{conv}: two counselors: {counselors:?}, record {}",
            meta["counselors"]
        ));
    }
    if let Some(h) = events.iter().position(|e| e["type"] == "queued") {
        for e in &events[h..] {
            let to = e["to"].as_str().unwrap_or_default();
            if e["type"] == "state" && !matches!(to, "queued" | "with_counselor") {
                return Err(format!(
                    "{conv}: back to `{to}` after the handoff (seq {})",
                    e["seq"]
                ));
            }
        }
    }
    if let Some(j) = events.iter().position(|e| e["type"] == "counselor_joined") {
        if let Some(b) = events[j..].iter().find(|e| e["type"] == "bot") {
            return Err(format!(
                "{conv}: the bot spoke after the counselor joined (seq {})",
                b["seq"]
            ));
        }
    }
    let state = meta["state"].as_str().unwrap_or_default();
    match expect {
        Expect::Waiting if state != "queued" => {
            Err(format!("{conv}: should be waiting, is `{state}`"))
        }
        Expect::WithCounselor if state != "with_counselor" => Err(format!(
            "{conv}: should be with its counselor, is `{state}`"
        )),
        _ => Ok(()),
    }
}

/// Reads every conversation a citizen had acknowledged messages in (as a supervisor,
/// through HAProxy) and checks it; the number of acknowledged messages checked.
async fn verify(
    port: u16,
    boss: &str,
    load: &Load,
    expect: &HashMap<String, Expect>,
) -> Result<usize, String> {
    let mut checked = 0;
    for i in 0..load.citizens.len() {
        let acked = load.with(i, |c| c.acked.clone());
        for (conv, acked) in acked {
            let (meta, events) = transcript(port, boss, &conv).await;
            let e = expect.get(&conv).copied().unwrap_or(Expect::Any);
            check_transcript(&conv, &acked, &meta, &events, e)
                .map_err(|p| format!("citizen {i}: {p}"))?;
            checked += acked.len();
        }
    }
    Ok(checked)
}

// ---------------------------------------------------------------------------------------
// Counselors.

/// A counselor console on `/ws/counselor`: frames are read by a task of its own and kept
/// in order; the latest `queue` frame is remembered.
struct Console {
    sink: futures::stream::SplitSink<Ws, Message>,
    rx: mpsc::UnboundedReceiver<Value>,
    reader: tokio::task::JoinHandle<()>,
    hello: Value,
    last_queue: Option<Vec<String>>,
}

fn queue_ids(v: &Value) -> Vec<String> {
    v["entries"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|x| x["conversation_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Console {
    async fn connect(port: u16, token: &str) -> Option<Console> {
        let url = format!("ws://127.0.0.1:{port}/ws/counselor");
        let mut req = url.into_client_request().ok()?;
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().ok()?);
        let ws = tokio::time::timeout(
            Duration::from_secs(3),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .ok()?
        .ok()?
        .0;
        let (sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                match m {
                    Message::Text(t) => {
                        if let Ok(v) = serde_json::from_str::<Value>(t.as_str()) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
        });
        let hello = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .ok()??;
        if hello["type"] != "hello" {
            return None;
        }
        Some(Console {
            sink,
            rx,
            reader,
            hello,
            last_queue: None,
        })
    }

    /// Connects, retrying while no node is primary; how long it took.
    async fn reconnect(port: u16, token: &str, within: Duration) -> (Console, Duration) {
        let started = Instant::now();
        loop {
            if let Some(c) = Console::connect(port, token).await {
                return (c, started.elapsed());
            }
            assert!(
                started.elapsed() < within,
                "the counselor could not reconnect within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn held(&self) -> Vec<String> {
        self.hello["held"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn note(&mut self, v: &Value) {
        if v["type"] == "queue" {
            self.last_queue = Some(queue_ids(v));
        }
    }

    /// Reads what has arrived so far.
    fn drain(&mut self) {
        while let Ok(v) = self.rx.try_recv() {
            self.note(&v);
        }
    }

    async fn send(&mut self, v: Value) {
        self.sink.send(frame(v)).await.expect("the console sends");
    }

    /// Frames until one for which `pred` holds (within `within`): `Ok(it)`, or
    /// `Err(everything seen)`.
    async fn wait_for(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Vec<Value>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(v)) => {
                    self.note(&v);
                    if pred(&v) {
                        return Ok(v);
                    }
                    seen.push(v);
                }
                _ => return Err(seen),
            }
        }
    }

    /// The answer to a frame about `conv`: a frame of type `ty` about it, or an error.
    async fn answer(&mut self, conv: &str, ty: &str) -> Value {
        self.wait_for(Duration::from_secs(5), |v| {
            v["conversation_id"] == conv && (v["type"] == ty || v["type"] == "error")
        })
        .await
        .unwrap_or_else(|seen| panic!("no {ty} or error about {conv} within 5 s: {seen:?}"))
    }

    /// Waits for a `queue` frame listing exactly `want` (the latest one may already be
    /// it); every other queue frame seen is returned as an error.
    async fn wait_queue(&mut self, want: &[String], within: Duration) -> Result<(), String> {
        self.drain();
        if self.last_queue.as_deref() == Some(want) {
            return Ok(());
        }
        let mut queues = Vec::new();
        let got = self
            .wait_for(within, |v| {
                v["type"] == "queue" && queue_ids(v).as_slice() == want
            })
            .await;
        match got {
            Ok(_) => Ok(()),
            Err(seen) => {
                for v in seen.iter().filter(|v| v["type"] == "queue") {
                    queues.push(queue_ids(v));
                }
                Err(format!(
                    "the queue is not {want:?} within {within:?}; queue frames seen: {queues:?}"
                ))
            }
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

// ---------------------------------------------------------------------------------------
// 1. kill -9 of the primary under load.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_primary_under_load_loses_nothing_and_keeps_the_queue() {
    let _one_at_a_time = SERIAL.lock().await;
    let rounds = env_or("IEUM_FAILOVER_ROUNDS", 3);
    let n = env_or("IEUM_FAILOVER_CLIENTS", 20).max(5);
    let Some(mut c) = Cluster::start("killnine", 3000).await else {
        return;
    };
    let ha = c.ha.port;
    let test_started = Instant::now();
    let boss = login(ha, "boss").await;
    let kim_token = login(ha, "kim").await;
    let lee_token = login(ha, "lee").await;

    let mut load = Load::start(ha, n);
    load.wait_all_connected(Duration::from_secs(20)).await;

    // Citizen 0 says it wants to die; kim (logged in through HAProxy) claims it.
    let (mut kim, _) = Console::reconnect(ha, &kim_token, Duration::from_secs(10)).await;
    let x = load.escalate(0).await;
    kim.wait_queue(std::slice::from_ref(&x), Duration::from_secs(5))
        .await
        .unwrap();
    kim.send(json!({"type": "claim", "conversation_id": x}))
        .await;
    let claimed = kim.answer(&x, "claimed").await;
    assert_eq!(claimed["type"], "claimed", "{claimed}");
    let started = Instant::now();
    while !load.with(0, |c| c.joined) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the citizen is told the counselor joined"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Three more wait, in this order.
    let mut waiting = Vec::new();
    for i in 1..=3 {
        waiting.push(load.escalate(i).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kim.wait_queue(&waiting, Duration::from_secs(5))
        .await
        .unwrap();
    let mut expect: HashMap<String, Expect> = waiting
        .iter()
        .map(|w| (w.clone(), Expect::Waiting))
        .collect();
    expect.insert(x.clone(), Expect::WithCounselor);
    // kim writes; the person reads it.
    counselor_writes(&mut kim, &load, &x, "조금 더 이야기해 줄 수 있을까요? (0)").await;
    load.assert_no_problems("before the first kill", || c.logs());

    let mut primary = c.primary(Duration::from_secs(5)).await;
    let mut all_resumes = Vec::new();
    let mut takeovers = Vec::new();
    for round in 1..=rounds {
        let wait = rand::rng().random_range(500..2500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        kim.drain();
        assert_eq!(
            kim.last_queue.as_deref(),
            Some(&waiting[..]),
            "round {round}: the queue before the kill"
        );
        let on_dead = load.connected();
        let acks_before = load.acks();

        let killed = Instant::now();
        c.nodes[primary].kill9();
        let other = 1 - primary;
        let Some(takeover) = c.nodes[other]
            .wait_role(Role::Primary, Duration::from_secs(15))
            .await
        else {
            panic!(
                "round {round}: node {} did not take over within 15 s of the kill:\n{}",
                c.nodes[other].name,
                c.logs()
            );
        };
        takeovers.push(takeover);
        // The dead node comes back, as standby.
        c.nodes[primary].restart();
        c.nodes[primary].started(Duration::from_secs(30)).await;
        if c.nodes[primary]
            .wait_role(Role::Standby, Duration::from_secs(15))
            .await
            .is_none()
        {
            panic!(
                "round {round}: the restarted node {} is not standby: {:?}\n{}",
                c.nodes[primary].name,
                c.roles().await,
                c.logs()
            );
        }
        let back = killed.elapsed();
        let dead = primary;
        primary = other;
        assert_eq!(
            c.nodes[primary].role().await,
            Role::Primary,
            "round {round}: one primary"
        );

        // Every citizen who was on the dead node resumed through HAProxy.
        let delays = match load
            .wait_resumed(&on_dead, killed, Duration::from_secs(20))
            .await
        {
            Ok(d) => d,
            Err(missing) => panic!(
                "round {round}: citizens {missing:?} did not resume within 20 s of the kill; problems: {:?}\n{}",
                load.problems(),
                c.logs()
            ),
        };
        let (p50, max) = p50_max(&delays);
        let late: Vec<(usize, u128)> = on_dead
            .iter()
            .zip(&delays)
            .filter(|(_, d)| **d > RESUME_BOUND)
            .map(|(i, d)| (*i, ms(*d)))
            .collect();
        all_resumes.extend(delays);

        // The counselor reconnects, finds their conversation, the queue in its order, and
        // still reaches the person. Nobody else can take it.
        let (console, reconnect) =
            Console::reconnect(ha, &kim_token, Duration::from_secs(10)).await;
        kim = console;
        assert_eq!(
            kim.held(),
            vec![x.clone()],
            "round {round}: kim holds the conversation after the failover: {}",
            kim.hello
        );
        kim.wait_queue(&waiting, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        kim.send(json!({"type": "claim", "conversation_id": x}))
            .await;
        let reopened = kim.answer(&x, "claimed").await;
        assert_eq!(
            reopened["type"], "claimed",
            "round {round}: kim reopens the conversation: {reopened}"
        );
        counselor_writes(&mut kim, &load, &x, &format!("여기 있어요 ({round})")).await;
        let (mut lee, _) = Console::reconnect(ha, &lee_token, Duration::from_secs(10)).await;
        assert!(
            lee.held().is_empty(),
            "round {round}: lee holds nothing: {}",
            lee.hello
        );
        lee.send(json!({"type": "claim", "conversation_id": x}))
            .await;
        let refused = lee.answer(&x, "claimed").await;
        assert_eq!(
            refused["type"], "error",
            "round {round}: a second counselor cannot claim a held conversation: {refused}"
        );
        drop(lee);

        // Every acknowledged message is there, once, in order.
        let checked = verify(ha, &boss, &load, &expect)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        load.assert_no_problems(&format!("round {round}"), || c.logs());
        assert_eq!(
            load.sum(|c| c.lost_conversations),
            0,
            "round {round}: resumes refused (people put in a new conversation)"
        );
        println!(
            "round {round}: killed {} after {wait} ms ({} citizens on it, {} acks so far); \
             {} primary after {} ms; {} standby again after {} ms; citizens resumed p50 {p50} ms, \
             max {max} ms; counselor back in {} ms; {checked} acknowledged messages checked",
            c.nodes[dead].name,
            on_dead.len(),
            acks_before,
            c.nodes[primary].name,
            ms(takeover),
            c.nodes[dead].name,
            ms(back),
            ms(reconnect),
        );
        assert!(
            late.is_empty(),
            "round {round}: citizens resumed later than {RESUME_BOUND:?} after the kill (citizen, ms): {late:?}"
        );
    }

    load.finish().await;
    let checked = verify(ha, &boss, &load, &expect)
        .await
        .unwrap_or_else(|e| panic!("at the end: {e}"));
    load.assert_no_problems("at the end", || c.logs());
    let (p50, max) = p50_max(&all_resumes);
    let (t50, tmax) = p50_max(&takeovers);
    println!(
        "kill -9 failover: {rounds} rounds, {n} citizens, {checked} acknowledged messages all \
         present once and in order ({} sent, {} drops, {} rate limited, {} not saved); takeover \
         p50 {t50} ms max {tmax} ms; resume after kill p50 {p50} ms max {max} ms over {} \
         resumes; {:.1} s",
        load.sum(|c| c.sent),
        load.sum(|c| c.drops),
        load.sum(|c| c.rate_limited),
        load.sum(|c| c.not_saved),
        all_resumes.len(),
        test_started.elapsed().as_secs_f64()
    );
    drop(kim);
    c.nodes.clear();
}

/// The counselor writes `text` to `conv`; the citizen (citizen 0) receives it within 5 s.
async fn counselor_writes(kim: &mut Console, load: &Load, conv: &str, text: &str) {
    kim.send(json!({"type": "message", "conversation_id": conv, "text": text}))
        .await;
    let started = Instant::now();
    while !load.with(0, |c| c.counselor_texts.iter().any(|t| t == text)) {
        if started.elapsed() > Duration::from_secs(5) {
            kim.drain();
            panic!(
                "the person did not receive the counselor's message within 5 s; problems: {:?}",
                load.problems()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// 2. Lease fencing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_is_fenced_when_it_wakes() {
    let _one_at_a_time = SERIAL.lock().await;
    let Some(mut c) = Cluster::start("fencing", 1500).await else {
        return;
    };
    let ttl = Duration::from_millis(c.ttl_ms);
    let a = c.primary(Duration::from_secs(5)).await;
    let b = 1 - a;
    let port_a = c.nodes[a].port;

    // A citizen connected directly to the primary, not through HAProxy.
    let (mut d, conv, token) = start_and_write_m1(port_a).await;

    // Frozen; the citizen writes to it meanwhile (the words wait in its socket).
    c.nodes[a].pause();
    let frozen = Instant::now();
    d.send(frame(
        json!({"type": "message", "id": "m2", "text": "요즘 잠이 잘 안 와요"}),
    ))
    .await
    .unwrap();
    let Some(takeover) = c.nodes[b]
        .wait_role(Role::Primary, ttl + Duration::from_secs(8))
        .await
    else {
        panic!(
            "the standby did not take over from a frozen primary within {:?}:\n{}",
            ttl + Duration::from_secs(8),
            c.logs()
        );
    };
    let routed =
        c.ha.wait_routed(PRIMARY_CHECK, Duration::from_secs(5))
            .await;
    // Well past the TTL, whatever the standby's clock said.
    let past = ttl + Duration::from_millis(500);
    if frozen.elapsed() < past {
        tokio::time::sleep(past - frozen.elapsed()).await;
    }
    let frozen_for = frozen.elapsed();
    c.nodes[a].resume();
    let woke = Instant::now();

    // The woken node must not acknowledge m2, and closes the socket.
    let (frames, closed) = until_closed(&mut d, Duration::from_secs(5)).await;
    let closed_after = closed.then(|| woke.elapsed());
    let acked_m2 = frames.iter().any(|f| f["type"] == "ack" && f["id"] == "m2");
    let types: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    assert!(
        !acked_m2,
        "the fenced node acknowledged a message it could not have stored; frames: {types:?}"
    );
    // It steps down.
    let started = Instant::now();
    let standby_after = loop {
        if let Some((503, v)) = c.nodes[a].healthz().await {
            if v["status"] == "standby" {
                break started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the woken node does not report standby within 5 s: {:?}\n{}",
            c.nodes[a].healthz().await,
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(c.nodes[a].role().await, Role::Standby);
    assert_eq!(c.nodes[b].role().await, Role::Primary);
    assert!(
        closed_after.is_some(),
        "the woken node did not close the citizen's socket within 5 s; frames: {types:?}"
    );

    // Not in the store: the new primary has m1 only.
    let ha = c.ha.port;
    let boss = login(ha, "boss").await;
    let (_, events) = transcript(ha, &boss, &conv).await;
    let ids: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "citizen")
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["m1"], "m2 was written by the fenced node");

    // The person goes on through HAProxy, on the new primary.
    let mut e = connect(ha, true).await.expect("the citizen reconnects");
    e.send(frame(
        json!({"type": "resume", "conversation_id": conv, "token": token, "last_seq": 0}),
    ))
    .await
    .unwrap();
    let replay = frames_until(&mut e, "welcome").await;
    let welcome = replay.last().unwrap();
    assert_eq!(
        welcome["resumed"], true,
        "the resume works on the new primary: {replay:?}"
    );
    e.send(frame(
        json!({"type": "message", "id": "m3", "text": "주말에 뭐 하면 좋을까요"}),
    ))
    .await
    .unwrap();
    let after = frames_until(&mut e, "ack").await;
    let replayed: Vec<&str> = after
        .iter()
        .filter(|f| f["type"] == "message")
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(replayed, ["m1"], "the replay from seq 0");
    assert_eq!(after.last().unwrap()["id"], "m3");
    println!(
        "fencing: frozen {} ms (TTL {} ms); standby primary after {} ms, routed by HAProxy {} ms \
         later; woken node: no ack for its message, socket closed after {} ms, standby after {} ms",
        ms(frozen_for),
        c.ttl_ms,
        ms(takeover),
        ms(routed),
        closed_after.map_or(0, ms),
        ms(standby_after)
    );
    c.nodes.clear();
}

// ---------------------------------------------------------------------------------------
// 3. A graceful stop hands over at once.

/// SIGTERM to the primary releases the lease at once: the standby takes over well within
/// the TTL (10 s here), and the person resumes through HAProxy. While a primary runs, the
/// CLI refuses to write to its database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_of_the_primary_hands_over_at_once() {
    let _one_at_a_time = SERIAL.lock().await;
    let Some(mut c) = Cluster::start("graceful", 10_000).await else {
        return;
    };
    let (ok, out) = try_staff_add(
        &c.url,
        &c.dir.path().join("cli"),
        "park",
        "counselor",
        PASSWORD,
    );
    assert!(
        !ok,
        "the CLI wrote to the database while a primary runs: {out}"
    );
    let ha = c.ha.port;
    let a = c.primary(Duration::from_secs(5)).await;
    let (mut ws, conv, token) = start_and_write_m1(ha).await;

    let (first, second) = c.nodes.split_at_mut(1);
    let (old, new) = if a == 0 {
        (&mut first[0], &second[0])
    } else {
        (&mut second[0], &first[0])
    };
    let ((stopped, clean), takeover) = tokio::join!(
        old.stop(),
        new.wait_role(Role::Primary, Duration::from_secs(15))
    );
    assert!(clean, "SIGTERM stops the primary:\n{}", old.log_tail(20));
    let Some(takeover) = takeover else {
        panic!(
            "the standby did not take over within 15 s of SIGTERM to the primary:\n{}",
            c.logs()
        );
    };
    let ttl = Duration::from_millis(c.ttl_ms);
    assert!(
        takeover < ttl / 2,
        "a graceful stop releases the lease at once: the standby took {} ms (TTL {} ms)",
        ms(takeover),
        c.ttl_ms
    );
    let (_, closed) = until_closed(&mut ws, Duration::from_secs(5)).await;
    assert!(closed, "the stopped node closed the citizen's socket");

    // The person resumes on the new primary through HAProxy.
    resume_and_write_m2(ha, &conv, &token).await;

    // The stopped node comes back as standby.
    c.nodes[a].restart();
    c.nodes[a].started(Duration::from_secs(30)).await;
    assert!(
        c.nodes[a]
            .wait_role(Role::Standby, Duration::from_secs(10))
            .await
            .is_some(),
        "the restarted node is standby: {:?}",
        c.roles().await
    );
    assert_eq!(c.primary(Duration::from_secs(5)).await, 1 - a);
    println!(
        "graceful stop: the primary exited {} ms after SIGTERM; the standby was primary {} ms \
         after it (TTL {} ms)",
        ms(stopped),
        ms(takeover),
        c.ttl_ms
    );
    c.nodes.clear();
}

// ---------------------------------------------------------------------------------------
// 4. A PostgreSQL restart under load, two nodes.

/// A balancer with no health check (or one that has not checked yet) sends people to a
/// standby: it forwards them to the primary, websockets included, and answers its own
/// health checks. The primary counts a forwarded client under the client's address only
/// when the standby vouches for it with the master key: a forged preamble is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_forwards_people_to_the_primary() {
    let _one_at_a_time = SERIAL.lock().await;
    let Some(c) = Cluster::start("forward", 3_000).await else {
        return;
    };
    let a = c.primary(Duration::from_secs(5)).await;
    let standby = c.nodes[1 - a].port;
    let primary = c.nodes[a].port;
    // Its own health checks: standby.
    let (code, body) = http(
        standby,
        "GET",
        "/healthz",
        None,
        None,
        Duration::from_secs(5),
    )
    .await
    .expect("the standby answers /healthz");
    assert_eq!(code, 503, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "standby");
    assert_eq!(
        health["primary"].as_str(),
        Some(format!("127.0.0.1:{primary}").as_str()),
        "the standby knows where the primary is: {health}"
    );
    // A citizen on the standby's port talks to the primary.
    let mut ws = connect(standby, false)
        .await
        .expect("a citizen connects through the standby");
    let w = frames_until(&mut ws, "welcome").await.pop().unwrap();
    let conv = w["conversation_id"].as_str().unwrap().to_owned();
    ws.send(frame(
        json!({"type": "message", "id": "f1", "text": "요즘 너무 외로워요"}),
    ))
    .await
    .unwrap();
    let got = frames_until(&mut ws, "ack").await;
    assert_eq!(got.last().unwrap()["id"], "f1", "{got:?}");
    // Staff too: a login and a transcript read through the standby, the transcript holds
    // the message (stored by the primary).
    let boss = login(standby, "boss").await;
    let (_, events) = transcript(standby, &boss, &conv).await;
    assert!(
        events.iter().any(|e| e.to_string().contains("f1")),
        "the message is in the transcript read through the standby: {events:?}"
    );
    // A person on the standby's port and a counselor on the primary's talk in real time.
    ws.send(frame(json!({"type": "message", "id": "f2", "text": RISK})))
        .await
        .unwrap();
    frames_until(&mut ws, "ack").await;
    let kim_token = login(primary, "kim").await;
    let (mut kim, _) = Console::reconnect(primary, &kim_token, Duration::from_secs(10)).await;
    kim.wait_queue(std::slice::from_ref(&conv), Duration::from_secs(5))
        .await
        .unwrap();
    kim.send(json!({"type": "claim", "conversation_id": conv}))
        .await;
    assert_eq!(kim.answer(&conv, "claimed").await["type"], "claimed");
    frames_until(&mut ws, "counselor_joined").await;
    kim.send(json!({"type": "message", "conversation_id": conv, "text": "여기 있어요"}))
        .await;
    let got = frames_until(&mut ws, "counselor").await;
    assert_eq!(got.last().unwrap()["text"], "여기 있어요", "{got:?}");
    ws.send(frame(
        json!({"type": "message", "id": "f3", "text": "고마워요"}),
    ))
    .await
    .unwrap();
    let heard = kim
        .wait_for(Duration::from_secs(5), |v| {
            v["conversation_id"] == conv.as_str() && v.to_string().contains("고마워요")
        })
        .await;
    assert!(heard.is_ok(), "the counselor hears the person: {heard:?}");
    // A forged preamble (no master key) is refused: the connection closes unanswered.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", primary))
        .await
        .unwrap();
    let forged = format!(
        "IEUM-FWD 203.0.113.7 {} {}\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        ieum::ids::now_ms(),
        "00".repeat(32)
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(forged.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer)).await;
    assert!(
        answer.is_empty(),
        "a forged preamble got an answer: {}",
        String::from_utf8_lossy(&answer)
    );
    println!(
        "forwarding: citizen, staff login and transcript through the standby on {standby}; a counselor on the primary and the person on the standby talked; forged preamble refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_with_two_nodes_loses_no_acknowledged_message() {
    let _one_at_a_time = SERIAL.lock().await;
    let Some(mut c) = Cluster::start("dbrestart", 3000).await else {
        return;
    };
    let ha = c.ha.port;
    let boss = login(ha, "boss").await;
    let mut load = Load::start(ha, 10);
    load.wait_all_connected(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        http(ha, "GET", "/healthz", None, None, Duration::from_secs(2))
            .await
            .map(|x| x.0),
        Some(200),
        "healthy before"
    );

    // Health as seen through HAProxy and on each node, every 100 ms: the transitions.
    let (stop_watch, watch_rx) = watch::channel(false);
    let mut ports = vec![("haproxy".to_owned(), ha)];
    for n in &c.nodes {
        ports.push((n.name.clone(), n.port));
    }
    let t0 = Instant::now();
    let watcher = tokio::spawn(health_watch(ports, t0, watch_rx));

    let pg = c.pg.clone();
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .unwrap();
    let down_at = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pg = c.pg.clone();
    tokio::task::spawn_blocking(move || pg.start_again())
        .await
        .unwrap();
    let up = Instant::now();
    let up_at = t0.elapsed();
    let acks_at_up = load.acks();
    let recovered = loop {
        if let Some((200, v)) = get_json(ha, "/healthz", None).await {
            if v["status"] == "ok" {
                break up.elapsed();
            }
        }
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "not healthy 30 s after PostgreSQL came back: {:?}\n{}",
            get_json(ha, "/healthz", None).await,
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    while load.acks() <= acks_at_up {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "no message acknowledged after PostgreSQL came back; problems: {:?}\n{}",
            load.problems(),
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acking_after = up.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_watch.send_replace(true);
    let transitions = watcher.await.unwrap();

    // Not restarted: the same processes, and one of them primary.
    for n in &mut c.nodes {
        assert!(n.is_running(), "node {} exited", n.name);
        assert_eq!(n.starts, 1, "node {} was restarted", n.name);
    }
    let primary = c.primary(Duration::from_secs(10)).await;
    for t in &transitions {
        println!("  {t}");
    }
    assert!(
        transitions.iter().any(|t| t.contains("503 degraded")),
        "/healthz never said degraded while PostgreSQL was down: {transitions:?}"
    );

    load.finish().await;
    let checked = verify(ha, &boss, &load, &HashMap::new())
        .await
        .unwrap_or_else(|e| panic!("after the restart: {e}"));
    let lost = load.sum(|c| c.lost_conversations);
    let problems: Vec<String> = load
        .problems()
        .into_iter()
        .filter(|p| !p.contains("a resume answered with a new conversation"))
        .collect();
    assert!(problems.is_empty(), "problems: {problems:?}\n{}", c.logs());
    println!(
        "PostgreSQL restart: down at {} ms, back at {} ms; healthy {} ms after it was back, acks \
         again after {} ms; node {} primary; {checked} acknowledged messages all present ({} not \
         saved, {} socket drops, {lost} resumes refused)",
        ms(down_at),
        ms(up_at),
        ms(recovered),
        ms(acking_after),
        c.nodes[primary].name,
        load.sum(|c| c.not_saved),
        load.sum(|c| c.drops),
    );
    if lost > 0 {
        println!(
            "  note: {lost} resumes were refused (resume_failed) while the database was down: \
             those people were put in a new conversation"
        );
    }
    c.nodes.clear();
}

/// Polls `GET /healthz` on each `(name, port)` every 100 ms until told to stop; each change
/// as `"+{ms} {name}: {status} {body status}"`.
async fn health_watch(
    ports: Vec<(String, u16)>,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<String> {
    let mut last: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    while !*stop.borrow() {
        for (name, port) in &ports {
            let now = match http(
                *port,
                "GET",
                "/healthz",
                None,
                None,
                Duration::from_millis(500),
            )
            .await
            {
                Some((status, body)) => {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    format!("{status} {}", v["status"].as_str().unwrap_or("-"))
                }
                None => "no answer".to_owned(),
            };
            if last.get(name) != Some(&now) {
                out.push(format!("+{} ms {name}: {now}", ms(t0.elapsed())));
                last.insert(name.clone(), now);
            }
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// 5. The harness itself.

/// HAProxy and [`Node`] in front of one sled node (health check `/healthz`): HTTP and a
/// citizen's websocket through HAProxy; `kill -9` drops the socket; a restart serves the
/// same conversation again; SIGSTOP makes the node silent and HAProxy cuts its sessions;
/// SIGTERM stops it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_haproxy_and_node_on_one_sled_node() {
    let _one_at_a_time = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let options = NodeOptions::new(None, &random_master_key());
    let mut node = Node::start("solo", dir.path(), options);
    let boot = node.started(Duration::from_secs(30)).await;
    let Some(ha) = Haproxy::start_checking(&[node.port], "/healthz") else {
        return;
    };
    let routed = ha.wait_routed("/healthz", Duration::from_secs(10)).await;
    let cfg = std::fs::read_to_string(ha.config_path()).unwrap();
    assert!(cfg.contains("timeout tunnel"), "{cfg}");

    let (mut ws, conv, token) = start_and_write_m1(ha.port).await;

    // kill -9: the socket through HAProxy drops at once.
    let killed = Instant::now();
    node.kill9();
    assert!(!node.is_running());
    assert_eq!(node.role().await, Role::Down);
    while next_json(&mut ws, Duration::from_secs(5)).await.is_some() {}
    let dropped = killed.elapsed();
    assert!(dropped < Duration::from_secs(5), "the socket dropped");
    let started = Instant::now();
    while http(
        ha.port,
        "GET",
        "/healthz",
        None,
        None,
        Duration::from_secs(1),
    )
    .await
    .map(|x| x.0)
        != Some(503)
    {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "HAProxy answers 503 with no node up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Restarted with the same flags: the conversation resumes through HAProxy.
    node.restart();
    node.started(Duration::from_secs(30)).await;
    assert_eq!(node.starts, 2);
    ha.wait_routed("/healthz", Duration::from_secs(10)).await;
    resume_and_write_m2(ha.port, &conv, &token).await;

    // Frozen: no answer; HAProxy marks it down and cuts its sessions.
    node.pause();
    let paused = Instant::now();
    assert_eq!(node.role().await, Role::Down);
    assert!(node.healthz().await.is_none());
    while next_json(&mut ws, Duration::from_secs(5)).await.is_some() {}
    let cut = paused.elapsed();
    assert!(
        cut < Duration::from_secs(5),
        "HAProxy cut the session to a frozen node"
    );
    node.resume();
    ha.wait_routed("/healthz", Duration::from_secs(10)).await;
    assert_eq!(node.healthz().await.map(|x| x.0), Some(200));

    let (stopped, clean) = node.stop().await;
    assert!(clean, "SIGTERM stops the node");
    assert!(!node.is_running());
    println!(
        "harness: node listening after {} ms, routed by HAProxy after {} ms; kill -9 dropped the \
         socket in {} ms; a frozen node's session cut in {} ms; SIGTERM stop {} ms",
        ms(boot),
        ms(routed),
        ms(dropped),
        ms(cut),
        ms(stopped)
    );
}
