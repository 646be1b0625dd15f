//! The primary lease: which ieum node may write to a PostgreSQL database (issue 20).
//!
//! # Why a lease, and why one
//!
//! Several `ieum serve` processes may run on one database so that the death of a machine
//! is not the death of the service. Exactly one of them, the **primary**, serves: it holds
//! the queue, the conversations' actors, the audit chain's head and the retention job, just
//! as a single node does. The others are **standbys**: they answer `/healthz` with 503 (a
//! load balancer sends them nothing) and take over when the primary goes. Load is not the
//! reason for several nodes (one node carries hundreds of times Seoul's traffic);
//! availability is, and one writer keeps every guarantee of the single node (one queue
//! order, one audit chain, one owner per conversation) without cross-node protocols.
//!
//! The lease is one row, `ieum_lease`: `holder`, a **fencing number** that grows by one at
//! every change of holder, and `expires_at` in the database's own clock (so the nodes'
//! clocks never matter). The holder renews it every third of its time to live.
//!
//! # Fencing
//!
//! Every write transaction of the primary's store starts by reading the lease row
//! `FOR SHARE` and checking that the holder and fencing number are still its own
//! ([`PostgresBackend`](super::PostgresBackend)); otherwise the transaction is rolled back
//! and the write fails (never acknowledged). A takeover updates that row, so it waits for
//! a write in flight to commit, and every later write of the old holder is refused. A node
//! frozen (`SIGSTOP`, a long pause, a partition) past its lease can therefore never write
//! again once another node took over: when it wakes, its writes fail and its next renewal
//! finds the row changed, and it lets go (steps down to standby). The writer's connection
//! sets `idle_in_transaction_session_timeout`, so a node frozen in the middle of a
//! transaction cannot hold the row's lock (and the takeover) for longer than that.
//!
//! # Fast takeover after a crash
//!
//! Waiting out the lease after `kill -9` would leave citizens without an answer for the
//! whole time to live. So the holder also takes a session advisory lock keyed by its
//! fencing number, on the connection that took the lease. A process that dies loses its
//! sessions at once (the kernel closes its sockets), and the lock with them: a standby that
//! can take that lock knows the holder is gone and takes over without waiting for expiry.
//! A frozen process keeps its sessions, so it is taken over only when its lease expires.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use postgres::{Client, Config, NoTls};
use tokio::sync::watch;

use super::backend::StoreError;
use super::postgres_backend::{from_pg, migrate};

/// The lease row's name (one primary per database).
pub const PRIMARY: &str = "primary";

/// The default time to live of the lease. A crashed primary is replaced within about one
/// renewal interval (the fast path); a frozen or cut-off one within this.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3);

/// First key of the liveness advisory lock (`"ie"`); the second is the fencing number.
const LIVE_LOCK_CLASS: i32 = 0x6965;

/// Who holds the lease, and under which fencing number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The node's name (host, process id and a random suffix).
    pub holder: String,
    /// Grows by one at every change of holder.
    pub fence: i64,
}

/// The liveness lock's second key for a fencing number.
fn live_key(fence: i64) -> i32 {
    (fence & 0x7fff_ffff) as i32
}

/// A name for this process, unique across nodes and restarts.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "node".into());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        crate::hex::encode(&rand::random::<[u8; 4]>())
    )
}

/// Why [`Lease::try_acquire`] did not take the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBy {
    /// The current holder.
    pub holder: String,
    /// Its fencing number.
    pub fence: i64,
    /// Where it serves (`host:port`), if it said: a standby forwards people there.
    pub addr: Option<String>,
}

/// The held lease: its fence, and a background thread that renews it. Dropping it (or
/// [`Lease::release`]) stops renewing; `release` also expires it at once, so a standby
/// takes over without waiting.
pub struct Lease {
    fence: Fence,
    ttl: Duration,
    lost: watch::Receiver<bool>,
    keeper: Arc<Keeper>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("fence", &self.fence)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What the renewal thread shares with the [`Lease`].
struct Keeper {
    /// `Some(expire)` asks the thread to stop (expiring the lease first when `true`).
    stop: Mutex<Option<bool>>,
    wake: Condvar,
}

impl Lease {
    /// Tries once to take the lease, on `slot`'s connection (connecting and migrating if it
    /// is empty). On success the connection moves into the lease (its session holds the
    /// liveness lock); otherwise it stays in `slot` for the next try.
    ///
    /// The lease is taken when no row exists, when it expired, or when its holder's
    /// session is gone (the liveness lock is free).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the database cannot be reached (the slot is emptied).
    pub fn try_acquire(
        slot: &mut Option<Client>,
        config: &Config,
        holder: &str,
        ttl: Duration,
        addr: Option<&str>,
    ) -> Result<Result<Lease, HeldBy>, StoreError> {
        Self::try_acquire_prepare(slot, config)?;
        let Some(client) = slot.as_mut() else {
            return Err(StoreError::Io("no PostgreSQL connection".into()));
        };
        match take(client, holder, ttl, addr) {
            Ok(Ok(fence)) => {
                let Some(client) = slot.take() else {
                    return Err(StoreError::Io("no PostgreSQL connection".into()));
                };
                Ok(Ok(Lease::keep(client, config.clone(), fence, ttl)))
            }
            Ok(Err(held)) => Ok(Err(held)),
            Err(e) => {
                if slot.as_ref().is_some_and(|c| c.is_closed()) || matches!(e, StoreError::Io(_)) {
                    *slot = None;
                }
                Err(e)
            }
        }
    }

    /// Connects `slot` (and migrates) if it is empty or closed.
    fn try_acquire_prepare(slot: &mut Option<Client>, config: &Config) -> Result<(), StoreError> {
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = None;
            let mut client = config.connect(NoTls).map_err(from_pg)?;
            migrate(&mut client)?;
            // Never wait long behind a lock (a frozen writer's transaction): try again at
            // the next poll instead.
            client
                .batch_execute("SET lock_timeout = '1s'")
                .map_err(from_pg)?;
            *slot = Some(client);
        }
        Ok(())
    }

    fn keep(client: Client, config: Config, fence: Fence, ttl: Duration) -> Lease {
        let (lost_tx, lost) = watch::channel(false);
        let keeper = Arc::new(Keeper {
            stop: Mutex::new(None),
            wake: Condvar::new(),
        });
        let k = Arc::clone(&keeper);
        let f = fence.clone();
        let thread = std::thread::Builder::new()
            .name("ieum-lease".into())
            .spawn(move || renew_loop(client, &config, &f, ttl, &k, &lost_tx))
            .ok();
        Lease {
            fence,
            ttl,
            lost,
            keeper,
            thread,
        }
    }

    /// The holder and fencing number every write checks.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Turns `true` when the lease was lost (another node took it): stop serving.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Stops renewing and expires the lease at once, so a standby takes over now (a
    /// graceful stop, after the store's final flush). Blocking (one statement).
    pub fn release(mut self) {
        self.stop(true);
    }

    fn stop(&mut self, expire: bool) {
        {
            let mut stop = self.keeper.stop.lock().unwrap_or_else(|e| e.into_inner());
            if stop.is_none() {
                *stop = Some(expire);
            }
        }
        self.keeper.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop(false);
    }
}

/// One try, in one transaction: `Ok(fence)` when taken.
fn take(
    client: &mut Client,
    holder: &str,
    ttl: Duration,
    addr: Option<&str>,
) -> Result<Result<Fence, HeldBy>, StoreError> {
    let ttl_secs = ttl.as_secs_f64();
    let mut tx = client.transaction().map_err(from_pg)?;
    let row = tx
        .query_opt(
            "SELECT holder, fence, expires_at <= now(), addr FROM ieum_lease WHERE name = $1 FOR UPDATE",
            &[&PRIMARY],
        )
        .map_err(from_pg)?;
    let fence: i64 = match row {
        None => {
            let inserted = tx
                .query_opt(
                    "INSERT INTO ieum_lease (name, holder, fence, expires_at, addr)
                     VALUES ($1, $2, 1, now() + make_interval(secs => $3), $4)
                     ON CONFLICT (name) DO NOTHING RETURNING fence",
                    &[&PRIMARY, &holder, &ttl_secs, &addr],
                )
                .map_err(from_pg)?;
            match inserted {
                Some(r) => r.try_get(0).map_err(from_pg)?,
                // Another node inserted it first.
                None => {
                    return Ok(Err(HeldBy {
                        holder: String::new(),
                        fence: 0,
                        addr: None,
                    }));
                }
            }
        }
        Some(r) => {
            let old_holder: String = r.try_get(0).map_err(from_pg)?;
            let old: i64 = r.try_get(1).map_err(from_pg)?;
            let expired: bool = r.try_get(2).map_err(from_pg)?;
            let old_addr: Option<String> = r.try_get(3).map_err(from_pg)?;
            let gone = !expired && {
                // The holder's session is gone when its liveness lock is free. Taken only
                // to look: let go at once.
                let free: bool = tx
                    .query_one(
                        "SELECT pg_try_advisory_lock($1, $2)",
                        &[&LIVE_LOCK_CLASS, &live_key(old)],
                    )
                    .and_then(|r| r.try_get(0))
                    .map_err(from_pg)?;
                if free {
                    tx.execute(
                        "SELECT pg_advisory_unlock($1, $2)",
                        &[&LIVE_LOCK_CLASS, &live_key(old)],
                    )
                    .map_err(from_pg)?;
                }
                free
            };
            if !expired && !gone {
                return Ok(Err(HeldBy {
                    holder: old_holder,
                    fence: old,
                    addr: old_addr,
                }));
            }
            tx.query_one(
                "UPDATE ieum_lease SET holder = $2, fence = fence + 1,
                        expires_at = now() + make_interval(secs => $3), addr = $4
                 WHERE name = $1 RETURNING fence",
                &[&PRIMARY, &holder, &ttl_secs, &addr],
            )
            .and_then(|r| r.try_get(0))
            .map_err(from_pg)?
        }
    };
    // Session-level: it outlives this transaction, and the session.
    tx.execute(
        "SELECT pg_advisory_lock($1, $2)",
        &[&LIVE_LOCK_CLASS, &live_key(fence)],
    )
    .map_err(from_pg)?;
    tx.commit().map_err(from_pg)?;
    Ok(Ok(Fence {
        holder: holder.to_owned(),
        fence,
    }))
}

/// Renews every third of `ttl` until told to stop or the lease is lost. A failed renewal
/// (the database unreachable) is retried on a new connection; the lease is lost only when
/// the row says another holder has it, because until then no other node can have written.
fn renew_loop(
    client: Client,
    config: &Config,
    fence: &Fence,
    ttl: Duration,
    keeper: &Keeper,
    lost: &watch::Sender<bool>,
) {
    let every = ttl / 3;
    let ttl_secs = ttl.as_secs_f64();
    let mut client = Some(client);
    // The liveness lock is held by the session that took the lease; a new session (after
    // the database restarted) takes it again.
    let mut live = true;
    loop {
        {
            let stop = keeper.stop.lock().unwrap_or_else(|e| e.into_inner());
            let (stop, _) = keeper
                .wake
                .wait_timeout_while(stop, every, |s| s.is_none())
                .unwrap_or_else(|e| e.into_inner());
            if let Some(expire) = *stop {
                if expire && let Some(c) = client.as_mut() {
                    let _ = c.execute(
                        "UPDATE ieum_lease SET expires_at = now() - interval '1 second'
                         WHERE name = $1 AND holder = $2 AND fence = $3",
                        &[&PRIMARY, &fence.holder, &fence.fence],
                    );
                }
                return;
            }
        }
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = config.connect(NoTls).ok();
            live = false;
        }
        let Some(c) = client.as_mut() else { continue };
        match c.execute(
            "UPDATE ieum_lease SET expires_at = now() + make_interval(secs => $4)
             WHERE name = $1 AND holder = $2 AND fence = $3",
            &[&PRIMARY, &fence.holder, &fence.fence, &ttl_secs],
        ) {
            Ok(1) => {
                if !live {
                    live = c
                        .query_one(
                            "SELECT pg_try_advisory_lock($1, $2)",
                            &[&LIVE_LOCK_CLASS, &live_key(fence.fence)],
                        )
                        .and_then(|r| r.try_get(0))
                        .unwrap_or(false);
                }
            }
            Ok(_) => {
                tracing::warn!(
                    fence = fence.fence,
                    "the primary lease was taken over by another node; stepping down"
                );
                lost.send_replace(true);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %from_pg(e), "renewing the primary lease failed; retrying");
                if c.is_closed() {
                    client = None;
                }
            }
        }
    }
}

/// Where a node tells standbys to forward people: given (`--advertise`), or this node's
/// address as the database sees it, with its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advertise {
    /// Exactly this `host:port`.
    Given(String),
    /// The address the database sees this node connect from (`inet_client_addr()`;
    /// `127.0.0.1` over a Unix socket), with this port.
    Port(u16),
}

/// A node waiting to become the primary: one connection, kept between tries.
pub struct Standby {
    config: Config,
    holder: String,
    ttl: Duration,
    advertise: Advertise,
    /// `advertise` resolved on the current connection.
    addr: Option<String>,
    slot: Option<Client>,
}

impl std::fmt::Debug for Standby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standby")
            .field("holder", &self.holder)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Standby {
    /// A standby for the database at `url`, as `holder`, for leases of `ttl`, telling the
    /// others to forward to `advertise` once it is the primary. Connects on the first try.
    ///
    /// # Errors
    /// [`StoreError::Internal`] for a bad URL.
    pub fn new(
        url: &str,
        holder: String,
        ttl: Duration,
        advertise: Advertise,
    ) -> Result<Standby, StoreError> {
        Ok(Standby {
            config: super::postgres_backend::config(url)?,
            holder,
            ttl,
            advertise,
            addr: None,
            slot: None,
        })
    }

    /// This node's name in the lease.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How often to try: a quarter of the lease's time to live, at most every 500 ms (a
    /// released lease, a graceful stop, is taken within that) and at least every 50 ms.
    pub fn poll_every(&self) -> Duration {
        (self.ttl / 4).clamp(Duration::from_millis(50), Duration::from_millis(500))
    }

    /// One try (blocking: call it off the async threads): the lease, or who holds it.
    ///
    /// # Errors
    /// The database cannot be reached (try again later).
    pub fn try_take(&mut self) -> Result<Result<Lease, HeldBy>, StoreError> {
        if self.slot.as_ref().is_none_or(|c| c.is_closed()) {
            self.addr = None;
        }
        if self.addr.is_none() {
            // Connect first (try_acquire would), to ask the database who we are.
            Lease::try_acquire_prepare(&mut self.slot, &self.config)?;
            self.addr = Some(match &self.advertise {
                Advertise::Given(a) => a.clone(),
                Advertise::Port(port) => {
                    let host: Option<String> = self
                        .slot
                        .as_mut()
                        .and_then(|c| c.query_one("SELECT host(inet_client_addr())", &[]).ok())
                        .and_then(|r| r.try_get(0).ok())
                        .flatten();
                    match host.as_deref() {
                        None => format!("127.0.0.1:{port}"),
                        Some(h) if h.contains(':') => format!("[{h}]:{port}"),
                        Some(h) => format!("{h}:{port}"),
                    }
                }
            });
        }
        let addr = self.addr.clone();
        Lease::try_acquire(
            &mut self.slot,
            &self.config,
            &self.holder,
            self.ttl,
            addr.as_deref(),
        )
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        // The client's connection runs on its own runtime; close it on a plain thread
        // (see `PostgresBackend`'s `Drop`).
        if let Some(c) = self.slot.take() {
            let _ = std::thread::spawn(move || drop(c)).join();
        }
    }
}
