//! `loadgen`: drives ieum's citizen websocket (`/ws/chat`) — and the bare `echo` baseline
//! in the same run — with realistic chat, and reports latency, throughput, server CPU per
//! message and memory. See BENCHMARKS.md for the figures and `scripts/bench` for the runs.
//!
//! Modes:
//! * `closed` — every conversation sends a line, waits for its `ack` and the bot's reply,
//!   and sends the next: throughput (a closed loop's latency is N / throughput).
//! * `open` — every conversation sends `--rate` lines per second on a fixed schedule;
//!   latency is measured from the *scheduled* send time (no coordinated omission).
//! * `idle` — hold N connections (answering pings) for `--duration` seconds; report RSS
//!   and drops.
//! * `storm` — N clients connect within `--storm-window` seconds; report the time until
//!   all were welcomed, and refusals.
//!
//! Lines come from `benches/load/chat-lines.txt` (everyday Korean and English; `! ` lines
//! are risky and sent at `--risky-percent`). A conversation that was handed to a counselor
//! (a `queue` frame) sends `close`, waits for `closed`, and a new conversation starts on a
//! new socket, as a person would start over later.
//!
//! Correctness while measuring (any violation gives a non-zero exit): every message is
//! acknowledged exactly once, and no `bot` frame comes while a counselor is in the
//! conversation (after `counselor_joined`, unless `queue` or `closed` came first). While
//! waiting, the bot still answers (a holding line or the safety answer), so `bot` frames
//! after the handoff are expected.
//!
//! Loopback only, bounded in time (`--warmup` + `--duration`, plus at most
//! `--drain` seconds to collect the last acks) and in count (`--messages`).
//!
//! ```console
//! $ cargo build --release --bins
//! $ target/release/loadgen --mode open --conns 1000 --rate 1 --duration 30 \
//!     --spawn-server target/release/ieum --echo target/release/echo
//! ```

use std::collections::HashMap;
use std::io::{Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use futures::{SinkExt, StreamExt};
use ieum::metrics::process_cpu_seconds;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TcpStream>;

const CORPUS: &str = include_str!("../../benches/load/chat-lines.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Closed,
    Open,
    Idle,
    Storm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// `ieum serve`.
    Ieum,
    /// The bare websocket echo.
    Echo,
    /// `echo --protocol`: ieum's citizen protocol with canned frames and no work.
    Protocol,
}

impl Kind {
    /// Whether the server speaks ieum's citizen protocol (`welcome`, `ack`, `bot`, ...).
    fn speaks_ieum(self) -> bool {
        matches!(self, Kind::Ieum | Kind::Protocol)
    }

    /// The target's name in reports and JSON (as on the command line).
    fn name(self) -> &'static str {
        match self {
            Kind::Ieum => "ieum",
            Kind::Echo => "echo",
            Kind::Protocol => "protocol",
        }
    }
}

/// Load generator for ieum's citizen websocket (loopback only).
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// closed (throughput), open (latency at a set rate), idle (memory), storm (connects).
    #[arg(long, value_enum, default_value = "closed")]
    mode: Mode,
    /// Concurrent conversations; a comma-separated list runs each in turn.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    conns: Vec<usize>,
    /// Measured seconds (idle: how long connections are held).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (closed and open).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Open loop: messages per second per conversation.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// At most this many messages in all (per run).
    #[arg(long, default_value_t = 10_000_000)]
    messages: u64,
    /// Per cent of lines that are risky (hand the conversation off).
    #[arg(long, default_value_t = 3.0)]
    risky_percent: f64,
    /// Start `ieum serve` from this binary on a free port with a temporary data dir (and
    /// stop it at the end of each run).
    #[arg(long)]
    spawn_server: Option<PathBuf>,
    /// Extra argument for the spawned `ieum serve` (repeatable), e.g.
    /// `--server-arg=--rate-per-second=1000000`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
    /// Also start this `echo` binary and drive it the same way, right after ieum.
    #[arg(long)]
    echo: Option<PathBuf>,
    /// Also start this `echo` binary with `--protocol` (ieum's protocol, canned frames, no
    /// work: the ceiling for any server of the protocol) and drive it the same way.
    #[arg(long)]
    protocol_echo: Option<PathBuf>,
    /// Instead of spawning: a running server (loopback).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// With `--addr`: the server's PID (for CPU and RSS).
    #[arg(long)]
    pid: Option<u32>,
    /// With `--addr`: what is listening.
    #[arg(long, value_enum, default_value = "ieum")]
    kind: Kind,
    /// Repeat everything this many times; the summary gives medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Append one JSON object per run to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Handshakes in flight at once while opening connections (closed, open, idle).
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Storm: seconds over which all clients start connecting.
    #[arg(long, default_value_t = 1.0)]
    storm_window: f64,
    /// Seconds to wait for the last acks after the measured window.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// RNG seed (lines, timings).
    #[arg(long, default_value_t = 9)]
    seed: u64,
}

// ----------------------------------------------------------------------------------------
// The server under test.

struct Server {
    kind: Kind,
    addr: SocketAddr,
    pid: Option<u32>,
    child: Option<Child>,
    dir: Option<PathBuf>,
    startup_ms: Option<f64>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

impl Server {
    fn spawn(kind: Kind, bin: &PathBuf, extra: &[String], tag: &str) -> anyhow::Result<Server> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("ieum-loadgen-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(bin);
        match kind {
            Kind::Ieum => {
                cmd.arg("serve")
                    .arg("--listen")
                    .arg(addr.to_string())
                    .arg("--data-dir")
                    .arg(dir.join("data"))
                    .arg("--rules")
                    .arg(root.join("escalation-rules.toml"))
                    .arg("--intents")
                    .arg(root.join("intents"))
                    .args(extra);
            }
            Kind::Echo => {
                cmd.arg("--listen").arg(addr.to_string());
            }
            Kind::Protocol => {
                cmd.arg("--listen").arg(addr.to_string()).arg("--protocol");
            }
        }
        let log = std::fs::File::create(dir.join("server.log"))?;
        let started = std::time::Instant::now();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", bin.display()))?;
        let pid = child.id();
        let mut server = Server {
            kind,
            addr,
            pid: Some(pid),
            child: Some(child),
            dir: Some(dir.clone()),
            startup_ms: None,
        };
        while started.elapsed() < Duration::from_secs(20) {
            if healthz(addr) {
                server.startup_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                return Ok(server);
            }
            if let Some(c) = server.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                    anyhow::bail!("server exited ({status}) before /healthz answered:\n{log}");
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        anyhow::bail!("server did not answer /healthz within 20 s")
    }

    fn stop(mut self) {
        if let (Some(mut child), Some(pid)) = (self.child.take(), self.pid) {
            // SAFETY: kill(2) on the pid of a child we started and have not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    cpu_secs: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn proc_sample(pid: Option<u32>) -> Option<ProcSample> {
    let pid = pid?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // After "pid (comm) ": state is field 3 overall, utime 14 and stime 15.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_secs: ticks as f64 / hz,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn raise_open_files_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        lim.rlim_cur
    }
}

// ----------------------------------------------------------------------------------------
// The client side.

struct Lines {
    everyday: Vec<&'static str>,
    risky: Vec<&'static str>,
}

impl Lines {
    fn load() -> Lines {
        let mut everyday = Vec::new();
        let mut risky = Vec::new();
        for l in CORPUS.lines() {
            let l = l.trim_end();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match l.strip_prefix("! ") {
                Some(r) => risky.push(r),
                None => everyday.push(l),
            }
        }
        Lines { everyday, risky }
    }
}

/// Where and how to connect.
#[derive(Clone, Copy)]
struct Dial {
    kind: Kind,
    addr: SocketAddr,
    config: WebSocketConfig,
}

/// What every connection task shares.
struct Ctx {
    kind: Kind,
    dial: Dial,
    lines: Lines,
    risky_fraction: f64,
    measure_from: Instant,
    stop: Instant,
    drain: Duration,
    budget: AtomicU64,
    violations: AtomicU64,
    examples: Mutex<Vec<String>>,
}

impl Ctx {
    fn violation(&self, what: String) {
        self.violations.fetch_add(1, Ordering::Relaxed);
        let mut ex = self.examples.lock().expect("lock");
        if ex.len() < 20 {
            ex.push(what);
        }
    }

    fn take_budget(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    }
}

#[derive(Debug, Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

#[derive(Debug, Default)]
struct Stats {
    sent: u64,
    acked: u64,
    acked_measured: u64,
    replies: u64,
    ack_us: Vec<u32>,
    reply_us: Vec<u32>,
    risky_sent: u64,
    handoffs: u64,
    reconnects: u64,
    reconnect_failed: u64,
    rate_limited: u64,
    errors: u64,
    reply_timeouts: u64,
    dropped: u64,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.acked_measured += o.acked_measured;
        self.replies += o.replies;
        self.ack_us.extend(o.ack_us);
        self.reply_us.extend(o.reply_us);
        self.risky_sent += o.risky_sent;
        self.handoffs += o.handoffs;
        self.reconnects += o.reconnects;
        self.reconnect_failed += o.reconnect_failed;
        self.rate_limited += o.rate_limited;
        self.errors += o.errors;
        self.reply_timeouts += o.reply_timeouts;
        self.dropped += o.dropped;
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    /// The server said no (HTTP error, `server_busy`, `unavailable`, a close).
    Refused(String),
    /// TCP or websocket failure, or a timeout.
    Failed(String),
}

async fn connect(ctx: &Dial, i: usize) -> Result<Ws, ConnectError> {
    // Spread clients over 127.0.0.1-16 so repeated runs don't run out of ephemeral ports.
    let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1 + (i % 16) as u8), 0);
    let sock = TcpSocket::new_v4().map_err(|e| ConnectError::Failed(e.to_string()))?;
    sock.bind(src.into())
        .map_err(|e| ConnectError::Failed(format!("bind: {e}")))?;
    let tcp = timeout(Duration::from_secs(15), sock.connect(ctx.addr))
        .await
        .map_err(|_| ConnectError::Failed("connect timeout".into()))?
        .map_err(|e| ConnectError::Failed(format!("connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!("ws://{}/ws/chat", ctx.addr)
        .into_client_request()
        .map_err(|e| ConnectError::Failed(e.to_string()))?;
    req.headers_mut().insert(
        "Origin",
        format!("http://{}", ctx.addr)
            .parse()
            .expect("origin header"),
    );
    let (mut ws, _) = timeout(
        Duration::from_secs(15),
        tokio_tungstenite::client_async_with_config(req, tcp, Some(ctx.config)),
    )
    .await
    .map_err(|_| ConnectError::Failed("handshake timeout".into()))?
    .map_err(|e| match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => {
            ConnectError::Refused(format!("HTTP {}", r.status()))
        }
        e => ConnectError::Failed(format!("handshake: {e}")),
    })?;
    if ctx.kind.speaks_ieum() {
        // The first frame of every connection is `welcome` (or `server_busy`).
        match timeout(Duration::from_secs(15), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<Frame>(t.as_str()) {
                Ok(f) if f.ty == "welcome" => {}
                Ok(f) => {
                    return Err(ConnectError::Refused(format!(
                        "{} {}",
                        f.ty,
                        f.code.unwrap_or_default()
                    )));
                }
                Err(e) => return Err(ConnectError::Failed(format!("bad first frame: {e}"))),
            },
            Ok(Some(Ok(Message::Close(c)))) => {
                return Err(ConnectError::Refused(format!("closed {c:?}")));
            }
            Ok(other) => {
                return Err(ConnectError::Failed(format!(
                    "no welcome: {:?}",
                    other.map(|r| r.map(|m| m.to_string()))
                )));
            }
            Err(_) => return Err(ConnectError::Failed("no welcome in 15 s".into())),
        }
    }
    Ok(ws)
}

/// One conversation's view of the protocol, shared by both loops.
struct Conv {
    conn: usize,
    n: u64,
    /// Client id → (scheduled send time, measured?).
    outstanding: HashMap<String, (Instant, bool)>,
    /// The last acknowledged message, waiting for the bot's reply.
    awaiting_reply: Option<(Instant, bool)>,
    handed_off: bool,
    with_counselor: bool,
    closed: bool,
}

impl Conv {
    fn new(conn: usize) -> Conv {
        Conv {
            conn,
            n: 0,
            outstanding: HashMap::new(),
            awaiting_reply: None,
            handed_off: false,
            with_counselor: false,
            closed: false,
        }
    }

    fn restart(&mut self) {
        self.outstanding.clear();
        self.awaiting_reply = None;
        self.handed_off = false;
        self.with_counselor = false;
        self.closed = false;
    }

    /// Builds the next message frame and records it as outstanding.
    fn next_message(
        &mut self,
        ctx: &Ctx,
        rng: &mut StdRng,
        at: Instant,
        stats: &mut Stats,
    ) -> Message {
        self.n += 1;
        let id = format!("c{}-{}", self.conn, self.n);
        let text = if !ctx.lines.risky.is_empty() && rng.random::<f64>() < ctx.risky_fraction {
            stats.risky_sent += 1;
            ctx.lines.risky[rng.random_range(0..ctx.lines.risky.len())]
        } else {
            ctx.lines.everyday[rng.random_range(0..ctx.lines.everyday.len())]
        };
        let measured = at >= ctx.measure_from && at < ctx.stop;
        self.outstanding.insert(id.clone(), (at, measured));
        stats.sent += 1;
        Message::text(serde_json::json!({"type": "message", "id": id, "text": text}).to_string())
    }

    fn on_frame(&mut self, ctx: &Ctx, text: &str, stats: &mut Stats) {
        let now = Instant::now();
        let f: Frame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                ctx.violation(format!("conn {}: undecodable frame: {e}", self.conn));
                return;
            }
        };
        let us = |t: Instant| now.duration_since(t).as_micros().min(u32::MAX as u128) as u32;
        let ieum = ctx.kind.speaks_ieum();
        match (ieum, f.ty.as_str()) {
            (false, "message") | (true, "ack") => {
                let id = f.id.unwrap_or_default();
                match self.outstanding.remove(&id) {
                    Some((at, measured)) => {
                        stats.acked += 1;
                        if measured {
                            stats.acked_measured += 1;
                            stats.ack_us.push(us(at));
                        }
                        if !ieum {
                            stats.replies += 1;
                            if measured {
                                stats.reply_us.push(us(at));
                            }
                        } else if !self.handed_off {
                            self.awaiting_reply = Some((at, measured));
                        }
                    }
                    None => ctx.violation(format!(
                        "conn {}: ack for {id:?}, which is not outstanding (duplicate or unknown)",
                        self.conn
                    )),
                }
            }
            (true, "bot" | "safety" | "queue") => {
                if f.ty == "bot" && self.with_counselor && !self.closed {
                    ctx.violation(format!(
                        "conn {}: bot frame while a counselor is in the conversation",
                        self.conn
                    ));
                }
                if f.ty == "queue" {
                    self.with_counselor = false;
                    if !self.handed_off {
                        self.handed_off = true;
                        stats.handoffs += 1;
                    }
                }
                if let Some((at, measured)) = self.awaiting_reply.take() {
                    stats.replies += 1;
                    if measured {
                        stats.reply_us.push(us(at));
                    }
                }
            }
            (true, "closed") => self.closed = true,
            (true, "error") => {
                if f.code.as_deref() == Some("rate_limited") {
                    stats.rate_limited += 1;
                } else {
                    stats.errors += 1;
                }
                if let Some(id) = f.id {
                    self.outstanding.remove(&id);
                }
            }
            (true, "counselor_joined") => self.with_counselor = true,
            (true, "welcome" | "counselor" | "message") => {}
            // The person's safety plan (sent when it changes, and on resume): not a reply.
            (_, "safety_plan") => {}
            (_, other) => ctx.violation(format!("conn {}: unexpected frame {other:?}", self.conn)),
        }
    }

    /// Whether the closed loop may send its next message.
    fn settled(&self) -> bool {
        self.outstanding.is_empty() && (self.awaiting_reply.is_none() || self.handed_off)
    }
}

/// Reads one frame (with a deadline); `None` when the socket ended or the time ran out.
async fn read_text(ws: &mut Ws, until: Instant) -> Option<Result<String, String>> {
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(Err("socket ended".into())),
            Ok(Some(Err(e))) => return Some(Err(e.to_string())),
            Ok(Some(Ok(Message::Text(t)))) => return Some(Ok(t.as_str().to_owned())),
            Ok(Some(Ok(Message::Close(c)))) => return Some(Err(format!("closed {c:?}"))),
            Ok(Some(Ok(_))) => continue, // pings are answered by tungstenite itself
        }
    }
}

/// After a handoff: end the conversation, then start a new one on a new socket.
async fn start_over(ctx: &Ctx, ws: &mut Ws, conv: &mut Conv, stats: &mut Stats) -> bool {
    let _ = ws.send(Message::text(r#"{"type":"close"}"#)).await;
    let until = Instant::now() + Duration::from_secs(10);
    while !conv.closed {
        match read_text(ws, until).await {
            Some(Ok(t)) => conv.on_frame(ctx, &t, stats),
            _ => break,
        }
    }
    for id in conv.outstanding.keys() {
        ctx.violation(format!("conn {}: {id} never acknowledged", conv.conn));
    }
    let _ = ws.close(None).await;
    match connect(&ctx.dial, conv.conn).await {
        Ok(new) => {
            *ws = new;
            conv.restart();
            stats.reconnects += 1;
            true
        }
        Err(_) => {
            stats.reconnect_failed += 1;
            false
        }
    }
}

async fn closed_loop(ctx: Arc<Ctx>, mut ws: Ws, conn: usize, seed: u64) -> Stats {
    let mut stats = Stats::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conv = Conv::new(conn);
    'outer: while Instant::now() < ctx.stop && ctx.take_budget() {
        let msg = conv.next_message(&ctx, &mut rng, Instant::now(), &mut stats);
        if ws.send(msg).await.is_err() {
            stats.dropped += 1;
            break;
        }
        let until = Instant::now().max(ctx.stop) + ctx.drain;
        let reply_deadline = Instant::now() + Duration::from_secs(5);
        while !conv.settled() {
            // The ack is owed; a missing reply only times out (counted, not a violation:
            // the conversation may have been handed off with the queue frame still on its
            // way).
            let deadline = if conv.outstanding.is_empty() {
                reply_deadline.min(until)
            } else {
                until
            };
            match read_text(&mut ws, deadline).await {
                Some(Ok(t)) => conv.on_frame(&ctx, &t, &mut stats),
                Some(Err(e)) => {
                    ctx.violation(format!("conn {conn}: connection lost: {e}"));
                    stats.dropped += 1;
                    break 'outer;
                }
                None if conv.outstanding.is_empty() => {
                    stats.reply_timeouts += 1;
                    conv.awaiting_reply = None;
                }
                None => break 'outer,
            }
        }
        if conv.handed_off && !start_over(&ctx, &mut ws, &mut conv, &mut stats).await {
            return stats;
        }
    }
    for id in conv.outstanding.keys() {
        ctx.violation(format!("conn {conn}: {id} never acknowledged"));
    }
    let _ = ws.close(None).await;
    stats
}

async fn open_loop(ctx: Arc<Ctx>, mut ws: Ws, conn: usize, seed: u64, period: Duration) -> Stats {
    let mut stats = Stats::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut conv = Conv::new(conn);
    // A random phase spreads the conversations evenly over each period.
    let start = Instant::now();
    let mut next = start + period.mul_f64(rng.random::<f64>());
    loop {
        let now = Instant::now();
        if now >= ctx.stop {
            break;
        }
        if conv.handed_off && conv.outstanding.is_empty() {
            if !start_over(&ctx, &mut ws, &mut conv, &mut stats).await {
                return stats;
            }
            // Slots missed while reconnecting are skipped (the person was away).
            while next < Instant::now() {
                next += period;
            }
            continue;
        }
        tokio::select! {
            _ = sleep_until(next), if !conv.handed_off => {
                if !ctx.take_budget() {
                    break;
                }
                // Latency counts from `next`, the scheduled time, even if we are late.
                let msg = conv.next_message(&ctx, &mut rng, next, &mut stats);
                next += period;
                if ws.send(msg).await.is_err() {
                    stats.dropped += 1;
                    ctx.violation(format!("conn {conn}: send failed"));
                    return stats;
                }
            }
            r = read_text(&mut ws, ctx.stop) => match r {
                Some(Ok(t)) => conv.on_frame(&ctx, &t, &mut stats),
                Some(Err(e)) => {
                    ctx.violation(format!("conn {conn}: connection lost: {e}"));
                    stats.dropped += 1;
                    return stats;
                }
                None => break,
            },
        }
    }
    // Collect the acks still owed.
    let until = Instant::now() + ctx.drain;
    while !conv.outstanding.is_empty() {
        match read_text(&mut ws, until).await {
            Some(Ok(t)) => conv.on_frame(&ctx, &t, &mut stats),
            _ => break,
        }
    }
    for id in conv.outstanding.keys() {
        ctx.violation(format!("conn {conn}: {id} never acknowledged"));
    }
    let _ = ws.close(None).await;
    stats
}

async fn hold_idle(ctx: Arc<Ctx>, mut ws: Ws, conn: usize) -> Stats {
    let mut stats = Stats::default();
    // Reading keeps tungstenite answering the server's pings.
    loop {
        match read_text(&mut ws, ctx.stop).await {
            None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                stats.dropped += 1;
                ctx.violation(format!("conn {conn}: idle connection dropped: {e}"));
                return stats;
            }
        }
    }
    let _ = ws.close(None).await;
    stats
}

// ----------------------------------------------------------------------------------------
// One run.

#[derive(Debug, Default, Clone, Serialize)]
struct Lat {
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    n: usize,
}

fn lat(mut v: Vec<u32>) -> Lat {
    if v.is_empty() {
        return Lat::default();
    }
    v.sort_unstable();
    let q = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1000.0
    };
    Lat {
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: *v.last().expect("non-empty") as f64 / 1000.0,
        n: v.len(),
    }
}

#[derive(Debug, Default, Clone, Serialize)]
struct RunResult {
    target: String,
    mode: String,
    conns: usize,
    run: usize,
    load_avg: String,
    startup_ms: Option<f64>,
    connected: usize,
    connect_failed: usize,
    refused: usize,
    connect_secs: f64,
    window_secs: f64,
    sent: u64,
    acked: u64,
    msgs_per_sec: f64,
    ack: Lat,
    reply: Lat,
    replies: u64,
    reply_timeouts: u64,
    risky_sent: u64,
    handoffs: u64,
    reconnects: u64,
    reconnect_failed: u64,
    rate_limited: u64,
    errors: u64,
    dropped: u64,
    server_cpu_secs: Option<f64>,
    server_cpu_us_per_msg: Option<f64>,
    server_rss_base_mib: Option<f64>,
    server_rss_mib: Option<f64>,
    server_peak_rss_mib: Option<f64>,
    rss_kib_per_conn: Option<f64>,
    client_cpu_secs: f64,
    /// The load tool's own CPU per acknowledged message in the measured window: it shares
    /// the machine with the server, so what it takes the server cannot have.
    client_cpu_us_per_msg: Option<f64>,
    all_welcomed_ms: Option<f64>,
    violations: u64,
    violation_examples: Vec<String>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run_one(
    args: &Args,
    kind: Kind,
    addr: SocketAddr,
    pid: Option<u32>,
    conns: usize,
    run: usize,
) -> RunResult {
    let mut config = WebSocketConfig::default();
    config = config
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let base = proc_sample(pid);
    let client_cpu0 = process_cpu_seconds();
    let mut r = RunResult {
        target: kind.name().to_owned(),
        mode: format!("{:?}", args.mode).to_lowercase(),
        conns,
        run,
        load_avg: load_average(),
        server_rss_base_mib: base.map(|s| mib(s.rss_kib)),
        ..RunResult::default()
    };
    let dial = Dial { kind, addr, config };
    let mut connect_problems: Vec<String> = Vec::new();

    if args.mode == Mode::Storm {
        let start = Instant::now() + Duration::from_millis(50);
        let window = Duration::from_secs_f64(args.storm_window);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..conns {
            let at = start + window.mul_f64(i as f64 / conns as f64);
            tasks.spawn(async move {
                sleep_until(at).await;
                let res = connect(&dial, i).await;
                (res.map(|ws| (ws, Instant::now())), i)
            });
        }
        let mut held = Vec::new();
        let mut last = start;
        while let Some(j) = tasks.join_next().await {
            match j {
                Ok((Ok((ws, at)), _)) => {
                    last = last.max(at);
                    held.push(ws);
                }
                Ok((Err(ConnectError::Refused(why)), i)) => {
                    r.refused += 1;
                    connect_problems.push(format!("conn {i}: refused: {why}"));
                }
                Ok((Err(ConnectError::Failed(why)), i)) => {
                    r.connect_failed += 1;
                    connect_problems.push(format!("conn {i}: failed: {why}"));
                }
                Err(e) => {
                    r.connect_failed += 1;
                    connect_problems.push(format!("task: {e}"));
                }
            }
        }
        r.connected = held.len();
        r.all_welcomed_ms = Some(last.duration_since(start).as_secs_f64() * 1000.0);
        if let Some(s) = proc_sample(pid) {
            r.server_rss_mib = Some(mib(s.rss_kib));
            r.server_peak_rss_mib = Some(mib(s.hwm_kib));
        }
        for mut ws in held {
            let _ = ws.close(None).await;
        }
        r.client_cpu_secs = process_cpu_seconds() - client_cpu0;
        r.violations = connect_problems.len() as u64;
        connect_problems.truncate(20);
        r.violation_examples = connect_problems;
        return r;
    }

    // Open the connections, a bounded number of handshakes at a time.
    let connect_started = Instant::now();
    let sem = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let sem = Arc::clone(&sem);
        tasks.spawn(async move {
            let _p = sem.acquire().await.expect("semaphore");
            (connect(&dial, i).await, i)
        });
    }
    let mut sockets = Vec::with_capacity(conns);
    while let Some(j) = tasks.join_next().await {
        match j {
            Ok((Ok(ws), i)) => sockets.push((ws, i)),
            Ok((Err(ConnectError::Refused(why)), i)) => {
                r.refused += 1;
                connect_problems.push(format!("conn {i}: refused: {why}"));
            }
            Ok((Err(ConnectError::Failed(why)), i)) => {
                r.connect_failed += 1;
                connect_problems.push(format!("conn {i}: failed: {why}"));
            }
            Err(e) => {
                r.connect_failed += 1;
                connect_problems.push(format!("task: {e}"));
            }
        }
    }
    r.connected = sockets.len();
    r.connect_secs = connect_started.elapsed().as_secs_f64();
    let after_connect = proc_sample(pid);

    // Now the clock: warmup, then the measured window.
    let now = Instant::now();
    let warmup = if args.mode == Mode::Idle {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(args.warmup)
    };
    let measure_from = now + warmup;
    let ctx = Ctx {
        kind,
        dial,
        lines: Lines::load(),
        risky_fraction: args.risky_percent / 100.0,
        measure_from,
        stop: measure_from + Duration::from_secs_f64(args.duration),
        drain: Duration::from_secs_f64(args.drain),
        budget: AtomicU64::new(args.messages),
        violations: AtomicU64::new(0),
        examples: Mutex::new(Vec::new()),
    };
    for p in connect_problems {
        ctx.violation(p);
    }
    let ctx = Arc::new(ctx);
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1e-3));
    let mut tasks = tokio::task::JoinSet::new();
    for (ws, i) in sockets {
        let ctx = Arc::clone(&ctx);
        let seed = args.seed ^ ((run as u64) << 32) ^ i as u64;
        match args.mode {
            Mode::Closed => tasks.spawn(closed_loop(ctx, ws, i, seed)),
            Mode::Open => tasks.spawn(open_loop(ctx, ws, i, seed, period)),
            _ => tasks.spawn(hold_idle(ctx, ws, i)),
        };
    }
    sleep_until(ctx.measure_from).await;
    let s0 = proc_sample(pid);
    let c0 = process_cpu_seconds();
    sleep_until(ctx.stop).await;
    let s1 = proc_sample(pid);
    let c1 = process_cpu_seconds();
    let mut stats = Stats::default();
    let hard = ctx.stop + ctx.drain + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(hard, tasks.join_next()).await {
            Ok(Some(Ok(s))) => stats.merge(s),
            Ok(Some(Err(e))) => ctx.violation(format!("task: {e}")),
            Ok(None) => break,
            Err(_) => {
                ctx.violation(format!("{} connection tasks stuck; aborted", tasks.len()));
                tasks.abort_all();
                break;
            }
        }
    }
    let window = ctx.stop.duration_since(ctx.measure_from).as_secs_f64();
    r.window_secs = window;
    r.sent = stats.sent;
    r.acked = stats.acked;
    r.msgs_per_sec = stats.acked_measured as f64 / window;
    r.replies = stats.replies;
    r.reply_timeouts = stats.reply_timeouts;
    r.risky_sent = stats.risky_sent;
    r.handoffs = stats.handoffs;
    r.reconnects = stats.reconnects;
    r.reconnect_failed = stats.reconnect_failed;
    r.rate_limited = stats.rate_limited;
    r.errors = stats.errors;
    r.dropped = stats.dropped;
    r.ack = lat(std::mem::take(&mut stats.ack_us));
    r.reply = lat(std::mem::take(&mut stats.reply_us));
    if stats.acked_measured > 0 && args.mode != Mode::Idle {
        r.client_cpu_us_per_msg = Some((c1 - c0) * 1e6 / stats.acked_measured as f64);
    }
    if let (Some(a), Some(b)) = (s0, s1) {
        r.server_cpu_secs = Some(b.cpu_secs - a.cpu_secs);
        if stats.acked_measured > 0 {
            r.server_cpu_us_per_msg =
                Some((b.cpu_secs - a.cpu_secs) * 1e6 / stats.acked_measured as f64);
        }
    }
    let end = if args.mode == Mode::Idle {
        s1
    } else {
        proc_sample(pid)
    };
    if let Some(e) = end {
        r.server_rss_mib = Some(mib(e.rss_kib));
        r.server_peak_rss_mib = Some(mib(e.hwm_kib));
    }
    if let (Some(b), Some(a)) = (base, after_connect) {
        if conns > 0 {
            r.rss_kib_per_conn = Some((a.rss_kib as f64 - b.rss_kib as f64) / conns as f64);
        }
    }
    r.client_cpu_secs = process_cpu_seconds() - client_cpu0;
    r.violations = ctx.violations.load(Ordering::Relaxed);
    r.violation_examples = ctx.examples.lock().expect("lock").clone();
    r
}

// ----------------------------------------------------------------------------------------
// Reporting.

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.prec$}"))
}

fn row(r: &RunResult) -> String {
    match r.mode.as_str() {
        "idle" => format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target,
            r.conns,
            r.run,
            r.connected,
            r.dropped,
            opt(r.server_rss_base_mib, 1),
            opt(r.server_rss_mib, 1),
            opt(r.server_peak_rss_mib, 1),
            opt(r.rss_kib_per_conn, 1),
            r.load_avg
        ),
        "storm" => format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target,
            r.conns,
            r.run,
            r.connected,
            r.refused,
            r.connect_failed,
            opt(r.all_welcomed_ms, 0),
            opt(r.server_peak_rss_mib, 1),
            r.load_avg
        ),
        _ => format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} |",
            r.target,
            r.conns,
            r.run,
            r.msgs_per_sec,
            r.ack.p50_ms,
            r.ack.p99_ms,
            r.ack.p999_ms,
            r.ack.max_ms,
            r.reply.p50_ms,
            r.reply.p99_ms,
            r.reply.p999_ms,
            r.reply.max_ms,
            opt(r.server_cpu_us_per_msg, 1),
            opt(r.server_peak_rss_mib, 0),
            r.handoffs,
            r.violations,
            r.load_avg
        ),
    }
}

fn header(mode: Mode) -> &'static str {
    match mode {
        Mode::Idle => {
            "| server | conns | run | held | dropped | RSS before MiB | RSS after MiB | peak RSS MiB | KiB/conn | load avg |\n|---|---|---|---|---|---|---|---|---|---|"
        }
        Mode::Storm => {
            "| server | conns | run | welcomed | refused | failed | all welcomed ms | peak RSS MiB | load avg |\n|---|---|---|---|---|---|---|---|---|"
        }
        _ => {
            "| server | conns | run | msgs/s | ack p50 | ack p99 | ack p99.9 | ack max | reply p50 | reply p99 | reply p99.9 | reply max | server CPU µs/msg | peak RSS MiB | handoffs | violations | load avg |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Medians over runs; ieum as a ratio to echo (and to the protocol echo, when it ran).
fn summary(mode: Mode, results: &[RunResult]) {
    let mut keys: Vec<(usize, String)> = Vec::new();
    for r in results {
        let k = (r.conns, r.target.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let med = |conns: usize, target: &str, f: &dyn Fn(&RunResult) -> Option<f64>| {
        median(
            results
                .iter()
                .filter(|r| r.conns == conns && r.target == target)
                .filter_map(f)
                .collect(),
        )
    };
    println!(
        "\n### Medians of {} run(s)\n",
        results.iter().map(|r| r.run).max().unwrap_or(0)
    );
    match mode {
        Mode::Idle => {
            println!(
                "| server | conns | dropped (max) | RSS after MiB | peak RSS MiB | KiB/conn |\n|---|---|---|---|---|---|"
            );
            for (c, t) in &keys {
                let dropped = results
                    .iter()
                    .filter(|r| r.conns == *c && &r.target == t)
                    .map(|r| r.dropped)
                    .max()
                    .unwrap_or(0);
                println!(
                    "| {t} | {c} | {dropped} | {:.1} | {:.1} | {:.1} |",
                    med(*c, t, &|r| r.server_rss_mib),
                    med(*c, t, &|r| r.server_peak_rss_mib),
                    med(*c, t, &|r| r.rss_kib_per_conn),
                );
            }
        }
        Mode::Storm => {
            println!(
                "| server | conns | refused (max) | failed (max) | all welcomed ms |\n|---|---|---|---|---|"
            );
            for (c, t) in &keys {
                let worst = |f: &dyn Fn(&RunResult) -> usize| {
                    results
                        .iter()
                        .filter(|r| r.conns == *c && &r.target == t)
                        .map(f)
                        .max()
                        .unwrap_or(0)
                };
                println!(
                    "| {t} | {c} | {} | {} | {:.0} |",
                    worst(&|r| r.refused),
                    worst(&|r| r.connect_failed),
                    med(*c, t, &|r| r.all_welcomed_ms),
                );
            }
        }
        _ => {
            println!(
                "| server | conns | msgs/s | × echo | × protocol | ack p50 ms | ack p99 ms | ack p99.9 ms | reply p50 ms | reply p99 ms | reply p99.9 ms | server CPU µs/msg | × echo | client CPU µs/msg | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
            for (c, t) in &keys {
                let mps = med(*c, t, &|r| Some(r.msgs_per_sec));
                let cpu = med(*c, t, &|r| r.server_cpu_us_per_msg);
                let echo_mps = med(*c, Kind::Echo.name(), &|r| Some(r.msgs_per_sec));
                let echo_cpu = med(*c, Kind::Echo.name(), &|r| r.server_cpu_us_per_msg);
                let protocol_mps = med(*c, Kind::Protocol.name(), &|r| Some(r.msgs_per_sec));
                let ratio = |a: f64, b: f64| {
                    if t == Kind::Echo.name() || !b.is_finite() || b == 0.0 {
                        "–".to_owned()
                    } else {
                        format!("{:.2}", a / b)
                    }
                };
                let to_protocol = if t == Kind::Ieum.name() {
                    ratio(mps, protocol_mps)
                } else {
                    "–".to_owned()
                };
                println!(
                    "| {t} | {c} | {mps:.0} | {} | {to_protocol} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {cpu:.1} | {} | {:.1} | {:.0} |",
                    ratio(mps, echo_mps),
                    med(*c, t, &|r| Some(r.ack.p50_ms)),
                    med(*c, t, &|r| Some(r.ack.p99_ms)),
                    med(*c, t, &|r| Some(r.ack.p999_ms)),
                    med(*c, t, &|r| Some(r.reply.p50_ms)),
                    med(*c, t, &|r| Some(r.reply.p99_ms)),
                    med(*c, t, &|r| Some(r.reply.p999_ms)),
                    ratio(cpu, echo_cpu),
                    med(*c, t, &|r| r.client_cpu_us_per_msg),
                    med(*c, t, &|r| r.server_peak_rss_mib),
                );
            }
        }
    }
}

/// The same allocator as `ieum serve`: the client shares the machine with the server it
/// measures, and the less CPU it takes, the less it disturbs the figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let nofile = raise_open_files_limit();
    if args.spawn_server.is_none()
        && args.addr.is_none()
        && args.echo.is_none()
        && args.protocol_echo.is_none()
    {
        eprintln!(
            "loadgen: give --spawn-server PATH, --echo PATH, --protocol-echo PATH or --addr HOST:PORT"
        );
        return ExitCode::from(2);
    }
    if let Some(a) = args.addr {
        if !a.ip().is_loopback() {
            eprintln!("loadgen: loopback only");
            return ExitCode::from(2);
        }
    }
    if let Some(&max) = args.conns.iter().max() {
        if max as u64 + 100 > nofile {
            eprintln!("loadgen: {max} connections need more open files than the limit {nofile}");
            return ExitCode::from(2);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let mut targets: Vec<Kind> = Vec::new();
    if args.spawn_server.is_some() || args.addr.is_some() {
        targets.push(if args.addr.is_some() {
            args.kind
        } else {
            Kind::Ieum
        });
    }
    if args.protocol_echo.is_some() {
        targets.push(Kind::Protocol);
    }
    if args.echo.is_some() {
        targets.push(Kind::Echo);
    }
    eprintln!(
        "loadgen: mode {:?}, conns {:?}, {} run(s), targets {targets:?}, load {}",
        args.mode,
        args.conns,
        args.runs,
        load_average()
    );
    println!("{}", header(args.mode));
    let mut results = Vec::new();
    let mut failed = false;
    for run in 1..=args.runs {
        for &conns in &args.conns {
            for &kind in &targets {
                let echo_bin = match kind {
                    Kind::Protocol => &args.protocol_echo,
                    _ => &args.echo,
                };
                let (server, addr, pid) = match (kind, &args.addr, &args.spawn_server, echo_bin) {
                    (_, Some(a), _, _) if kind == args.kind => (None, *a, args.pid),
                    (Kind::Ieum, _, Some(bin), _) => {
                        match Server::spawn(kind, bin, &args.server_arg, &format!("{run}-{conns}"))
                        {
                            Ok(s) => {
                                let (a, p) = (s.addr, s.pid);
                                (Some(s), a, p)
                            }
                            Err(e) => {
                                eprintln!("loadgen: {e}");
                                return ExitCode::from(2);
                            }
                        }
                    }
                    (Kind::Echo | Kind::Protocol, _, _, Some(bin)) => {
                        let tag = format!("{}-{run}-{conns}", kind.name());
                        match Server::spawn(kind, bin, &[], &tag) {
                            Ok(s) => {
                                let (a, p) = (s.addr, s.pid);
                                (Some(s), a, p)
                            }
                            Err(e) => {
                                eprintln!("loadgen: {e}");
                                return ExitCode::from(2);
                            }
                        }
                    }
                    _ => unreachable!("targets come from the flags"),
                };
                let startup = server.as_ref().and_then(|s| s.startup_ms);
                let mut r = rt.block_on(run_one(&args, kind, addr, pid, conns, run));
                r.startup_ms = startup;
                if let Some(s) = server {
                    debug_assert_eq!(s.kind, kind);
                    s.stop();
                }
                println!("{}", row(&r));
                if kind == Kind::Ieum {
                    if let Some(ms) = r.startup_ms {
                        eprintln!("loadgen: ieum startup (spawn to /healthz 200): {ms:.0} ms");
                    }
                }
                if r.violations > 0 {
                    failed = true;
                    eprintln!("loadgen: {} violation(s), e.g.:", r.violations);
                    for v in &r.violation_examples {
                        eprintln!("  {v}");
                    }
                }
                eprintln!(
                    "loadgen: {} {} conns: sent {} acked {} replies {} (timeouts {}), risky {} handoffs {} reconnects {} (failed {}), rate_limited {} errors {} dropped {}, client CPU {:.1} s, server CPU {} s",
                    r.target,
                    r.conns,
                    r.sent,
                    r.acked,
                    r.replies,
                    r.reply_timeouts,
                    r.risky_sent,
                    r.handoffs,
                    r.reconnects,
                    r.reconnect_failed,
                    r.rate_limited,
                    r.errors,
                    r.dropped,
                    r.client_cpu_secs,
                    opt(r.server_cpu_secs, 1)
                );
                if let Some(path) = &args.json {
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                    {
                        let _ = writeln!(f, "{}", serde_json::to_string(&r).unwrap_or_default());
                    }
                }
                results.push(r);
                // Let sockets in TIME_WAIT and the previous server's memory settle.
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    summary(args.mode, &results);
    if failed {
        eprintln!("loadgen: correctness violations (see above)");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
