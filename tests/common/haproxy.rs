//! A multi-node setup for one test: HAProxy in front of several `ieum serve` processes.
//!
//! * [`Haproxy`]: HAProxy (Debian's `haproxy`, or `IEUM_HAPROXY`) in the foreground in a
//!   temporary directory, with a generated config: a frontend on a free loopback port and
//!   the given node ports as backends, routed by the health check `GET /healthz/primary`
//!   (only the primary answers 200), fast checks, and a long tunnel timeout for websockets.
//!   Killed when dropped. Where the binary is missing, [`Haproxy::start`] prints why and
//!   returns `None`, except under `CI=true`, where it panics (as [`super::pg::Pg::start`]).
//! * [`Node`]: one `ieum serve` child process (its log in a file, never on the test's
//!   output), with `kill -9`, a graceful stop (SIGTERM), SIGSTOP/SIGCONT, a restart with the
//!   same flags, and its role from `/healthz/primary`.
//! * [`staff_add`]: `ieum staff add` on a store, before any node runs.
//! * [`http`]: a plain HTTP request with a deadline that never panics (a frozen or dead
//!   node is an answer too).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::free_port;

/// The health check HAProxy routes by: 200 only from the primary.
pub const PRIMARY_CHECK: &str = "/healthz/primary";

/// Where HAProxy is: `IEUM_HAPROXY`, else `/usr/sbin/haproxy`, else `haproxy` on `PATH`.
pub fn haproxy_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("IEUM_HAPROXY") {
        return Some(PathBuf::from(p));
    }
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    if sbin.exists() {
        return Some(sbin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("haproxy"))
            .find(|p| p.exists())
    })
}

/// Whether HAProxy is installed; if not, prints SKIPPED and why (and panics under
/// `CI=true`: `.ci/run` installs it).
pub fn haproxy_available() -> bool {
    if haproxy_bin().is_some_and(|b| b.exists()) {
        return true;
    }
    let why = "HAProxy is not installed (no /usr/sbin/haproxy; apt-get install -y haproxy, \
               or set IEUM_HAPROXY)";
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true: the failover tests must run: {why}"
    );
    eprintln!("SKIPPED: {why}");
    false
}

/// HAProxy in the foreground with a generated config; killed when dropped.
pub struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// The frontend's port (on 127.0.0.1).
    pub port: u16,
    /// The backends' ports, in order (servers `n0`, `n1`, …).
    pub backends: Vec<u16>,
}

impl Haproxy {
    /// HAProxy in front of `backends` (ports on 127.0.0.1), routing by
    /// `GET /healthz/primary`. `None` (with a SKIPPED line) if HAProxy is not installed,
    /// except under `CI=true`, where that panics.
    pub fn start(backends: &[u16]) -> Option<Haproxy> {
        Haproxy::start_checking(backends, PRIMARY_CHECK)
    }

    /// As [`Haproxy::start`], with another health-check path (e.g. `/healthz` for a lone
    /// node that has no `/healthz/primary`).
    pub fn start_checking(backends: &[u16], check: &str) -> Option<Haproxy> {
        if !haproxy_available() {
            return None;
        }
        let bin = haproxy_bin().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config(port, backends, check)).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        // -db: foreground, no daemon; logs go to stderr (the file).
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", bin.display()));
        let mut ha = Haproxy {
            child,
            dir,
            port,
            backends: backends.to_vec(),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = ha.child.try_wait() {
                panic!("HAProxy exited ({status}):\n{}", ha.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "HAProxy did not listen within 10 s:\n{}",
                ha.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(ha)
    }

    /// The generated config.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    /// HAProxy's log so far (health-check transitions, one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Waits until a request through the frontend reaches a node that passes the check
    /// (`GET <check>` answers 200); returns how long that took.
    pub async fn wait_routed(&self, check: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some((200, _)) = http(self.port, "GET", check, None, None, SHORT).await {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "nothing routed through HAProxy within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(port: u16, backends: &[u16], check: &str) -> String {
    let mut servers = String::new();
    for (i, p) in backends.iter().enumerate() {
        servers.push_str(&format!("    server n{i} 127.0.0.1:{p}\n"));
    }
    format!(
        "\
global
    log stderr format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    retries 2
    option redispatch
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    # Websockets: after the upgrade HAProxy tunnels; an idle chat must stay open.
    timeout tunnel 1h
    timeout client-fin 1s
    timeout server-fin 1s
    timeout http-request 10s
    timeout check 1s

frontend ieum
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    # Only the primary answers 200; standbys answer 503.
    option httpchk GET {check}
    http-check expect status 200
    # Fast checks; sessions to a node marked down are cut so clients reconnect at once.
    default-server check inter 200ms fastinter 200ms downinter 200ms fall 1 rise 1 on-marked-down shutdown-sessions
{servers}"
    )
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Short deadline for health polls.
pub const SHORT: Duration = Duration::from_millis(500);

/// A plain HTTP/1.1 request with a deadline: `(status, body)`, or `None` if the connection
/// was refused, reset, or the answer did not come within `within`.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    within: Duration,
) -> Option<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(within, exchange).await.ok().flatten()
}

/// `GET` returning JSON (`Value::Null` when the body is not JSON).
pub async fn get_json(port: u16, path: &str, token: Option<&str>) -> Option<(u16, Value)> {
    let (status, body) = http(port, "GET", path, token, None, Duration::from_secs(5)).await?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// What a node says it is, from `GET /healthz/primary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 200.
    Primary,
    /// 503.
    Standby,
    /// Another status (e.g. 404 from a build without `/healthz/primary`).
    Other(u16),
    /// No answer within the deadline: refused, dead, or frozen.
    Down,
}

/// `ieum serve`'s flags for a [`Node`].
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `--store` (a `postgres://` URL); `None`: sled in the node's data directory.
    pub store: Option<String>,
    /// `--master-key`: the same 64 hex digits on every node.
    pub master_key: String,
    /// `--lease-ttl-ms`; `None`: not passed (the default, or `IEUM_LEASE_TTL_MS`).
    pub lease_ttl_ms: Option<u64>,
    /// More flags, passed as they are.
    pub extra: Vec<String>,
    /// `IEUM_LOG` (default `info`; ieum never logs message text).
    pub log_filter: String,
}

impl NodeOptions {
    pub fn new(store: Option<&str>, master_key: &str) -> NodeOptions {
        NodeOptions {
            store: store.map(str::to_owned),
            master_key: master_key.to_owned(),
            lease_ttl_ms: None,
            extra: Vec::new(),
            log_filter: "info".to_owned(),
        }
    }

    pub fn lease_ttl_ms(mut self, ms: u64) -> NodeOptions {
        self.lease_ttl_ms = Some(ms);
        self
    }

    pub fn arg(mut self, a: &str) -> NodeOptions {
        self.extra.push(a.to_owned());
        self
    }
}

/// A fresh master key: 64 hex digits.
pub fn random_master_key() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `ieum serve` process, killed (SIGKILL) when dropped.
pub struct Node {
    /// For messages: `a`, `b`, …
    pub name: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    options: NodeOptions,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// Times started.
    pub starts: u32,
}

impl Node {
    /// Spawns `ieum serve` with its data directory and log in `dir` (does not wait: see
    /// [`Node::started`]).
    pub fn start(name: &str, dir: &Path, options: NodeOptions) -> Node {
        let mut node = Node {
            name: name.to_owned(),
            port: free_port(),
            options,
            data: dir.join(format!("{name}-data")),
            log: dir.join(format!("{name}.log")),
            child: None,
            paused: false,
            starts: 0,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is running", self.name);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.starts += 1;
        let _ = writeln!(log, "==== test harness: start #{} ====", self.starts);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ieum"));
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--master-key", &self.options.master_key]);
        if let Some(store) = &self.options.store {
            cmd.args(["--store", store]);
        }
        if let Some(ttl) = self.options.lease_ttl_ms {
            cmd.args(["--lease-ttl-ms", &ttl.to_string()]);
        }
        cmd.args(&self.options.extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("IEUM_LOG", &self.options.log_filter)
            .env_remove("IEUM_STORE")
            .env_remove("IEUM_MASTER_KEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("ieum serve starts"));
        self.paused = false;
    }

    /// Waits until the node accepts connections; panics (with its log) if it exits first
    /// or takes longer than `within`.
    pub async fn started(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                panic!(
                    "node {} exited ({status}) before it listened:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "node {} did not listen within {within:?}:\n{}",
                self.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its exit status, if it has exited (the child is then forgotten).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// Whether the process runs (frozen counts as running).
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid().expect("the node runs") as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (we hold it).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// A graceful stop: SIGTERM, then waits for the exit (SIGKILL after 20 s). Returns how
    /// long it took and whether it exited by itself.
    pub async fn stop(&mut self) -> (Duration, bool) {
        let started = Instant::now();
        if self.child.is_none() {
            return (Duration::ZERO, true);
        }
        if self.paused {
            self.resume();
        }
        self.signal(libc::SIGTERM);
        while started.elapsed() < Duration::from_secs(20) {
            if self.exited().is_some() {
                return (started.elapsed(), true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill9();
        (started.elapsed(), false)
    }

    /// SIGSTOP: the process freezes (its sockets stay open; nothing answers).
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// Starts it again with the same flags, port and data directory (`kill -9` first if
    /// it still runs). Does not wait: see [`Node::started`].
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// What `GET /healthz/primary` says now (`Down` without an answer within 500 ms).
    pub async fn role(&self) -> Role {
        match http(self.port, "GET", PRIMARY_CHECK, None, None, SHORT).await {
            Some((200, _)) => Role::Primary,
            Some((503, _)) => Role::Standby,
            Some((s, _)) => Role::Other(s),
            None => Role::Down,
        }
    }

    /// Polls [`Node::role`] until it is `want`; how long that took, or `None` after
    /// `within`.
    pub async fn wait_role(&self, want: Role, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        loop {
            if self.role().await == want {
                return Some(started.elapsed());
            }
            if started.elapsed() >= within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `GET /healthz`: `(status, JSON body)`, `None` without an answer within 500 ms.
    pub async fn healthz(&self) -> Option<(u16, Value)> {
        let (status, body) = http(self.port, "GET", "/healthz", None, None, SHORT).await?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The log file (every start appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let all = std::fs::read_to_string(&self.log).unwrap_or_default();
        let v: Vec<&str> = all.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SIGKILL ends a stopped (SIGSTOP) process too.
        self.kill9();
    }
}

/// `ieum staff add NAME --role ROLE --store STORE` with `password` on stdin (run before any
/// node starts: the CLI refuses to write while a primary runs). Panics if it fails.
pub fn staff_add(store: &str, data_dir: &Path, name: &str, role: &str, password: &str) {
    let (ok, out) = try_staff_add(store, data_dir, name, role, password);
    assert!(ok, "ieum staff add {name}: {out}");
}

/// `ieum staff add`: whether it succeeded, and what it printed.
pub fn try_staff_add(
    store: &str,
    data_dir: &Path,
    name: &str,
    role: &str,
    password: &str,
) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ieum"))
        .args(["staff", "add", name, "--role", role, "--store", store])
        .arg("--data-dir")
        .arg(data_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("IEUM_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ieum staff add runs");
    // It may exit before reading (a refused store): a closed pipe is not an error here.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
