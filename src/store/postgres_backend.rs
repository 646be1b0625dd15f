//! [`PostgresBackend`]: the [`Backend`] on PostgreSQL, for a deployment that wants its
//! transcripts in a replicated database rather than in a local sled directory (issue 20,
//! first step: one node).
//!
//! # Layout
//!
//! One table per [`Tree`], `ieum_<tree>` with `key bytea primary key, value bytea`. bytea
//! compares bytewise (`memcmp`, then length), exactly like sled, so the big-endian keys of
//! [`event_key`](super::event_key) scan in order with no collation involved. Values are the
//! same sealed bytes as on sled: Postgres only ever sees ciphertext and ids.
//!
//! The schema is created by versioned migrations run at startup ([`MIGRATIONS`], recorded
//! in `schema_migrations`). A migration is never edited once released; a new [`Tree`]
//! needs a new migration (a unit test checks that every tree has its table).
//!
//! # Group commit is a transaction
//!
//! The [`Store`](super::Store)'s writer thread calls `apply` for each request of a group
//! and then `flush` once. Here `apply` runs the batch (upserts and deletes) inside a
//! transaction on the writer's own connection, opened by the first `apply` of a group,
//! and `flush` is its `COMMIT`. The store acknowledges only after `flush` returned, so an
//! `ack` follows the commit. With Postgres's defaults (`synchronous_commit = on`,
//! `fsync = on`) a committed write is in the write-ahead log on disk: it survives a crash
//! of ieum and of Postgres, and (with a synchronous standby) the loss of the machine.
//!
//! If any `apply` of a group fails, the whole transaction is rolled back and `flush`
//! fails, so no request of that group is acknowledged (Postgres would otherwise answer a
//! `COMMIT` of an aborted transaction with a silent rollback). A whole multi-tree batch is
//! atomic here, which is stronger than [`APPLY_ORDER`](super::APPLY_ORDER) asks.
//!
//! # What differs from sled
//!
//! * **Visibility.** Reads use other connections (a small pool), so they see a write only
//!   after its commit; sled's readers see it as soon as it is applied. Nothing in ieum reads
//!   a write before [`Store::write`](super::Store::write) resolved (every writer awaits the
//!   acknowledgement, and keeps its own state in memory meanwhile), so this changes no
//!   answer the service gives. A write whose flush failed is gone here (rolled back),
//!   where on sled it may stay readable: either way it was never acknowledged.
//! * **Faults.** A lost connection is [`StoreError::Io`] (`not_saved`, nothing
//!   acknowledged). [`Backend::recover`], which the store calls at most once a second while
//!   writes fail, reconnects the writer (each try bounded by [`CONNECT_TIMEOUT`]); readers
//!   drop a broken connection and retry once on a fresh one. So the service recovers by
//!   itself when the database comes back. A host that vanishes silently is noticed by
//!   [`TCP_USER_TIMEOUT`] and keepalive probes (10 s idle, then 2 probes 5 s apart) unless
//!   the URL sets them; no statement timeout is set.
//! * **One writer, several nodes.** A store opened with a [`Lease`] (what `ieum serve` and
//!   the CLI's writing commands do) checks the lease row `FOR SHARE` at the start of every
//!   transaction: a node that lost the lease can never commit again (see [`super::lease`]).
//!   A standby node waits for the lease instead of opening a store.
//!
//! # Threads
//!
//! The `postgres` crate is synchronous: each client drives its connection on a private
//! tokio runtime of its own, which must not run inside another runtime's worker thread. The
//! store only calls a backend from its writer thread and from `spawn_blocking`, where that
//! is allowed; `App::build` opens this backend on the blocking pool too.
//!
//! TLS is not supported yet (`NoTls`): connect over a Unix socket or a trusted network.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, Config, NoTls, Statement};

use super::backend::{Backend, KeyValue, StoreError, Tree, Write, prefix_successor};
use super::lease::{Fence, Lease};

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long data sent to the database may stay unacknowledged by its host before the
/// connection counts as lost (Linux `TCP_USER_TIMEOUT`).
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Read connections at most (the writer has its own). Reads wait for a free one.
pub const DEFAULT_READERS: usize = 4;

/// How long a read waits for a free connection before it fails.
const READER_WAIT: Duration = Duration::from_secs(10);

/// The session advisory lock held while migrating (`"ieum"` in ASCII), so two nodes
/// starting at once never migrate together.
pub const MIGRATE_LOCK: i64 = 0x6965_756d;

/// The schema, one migration per entry, applied in order, each in its own transaction.
/// Released entries never change: add a new one.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE ieum_events (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_conversations (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_staff (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_sessions (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_audit (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_waiting (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_meta (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_keys (key bytea PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ieum_casework (key bytea PRIMARY KEY, value bytea NOT NULL);",
    ),
    (
        2,
        "CREATE TABLE ieum_lease (
             name text PRIMARY KEY,
             holder text NOT NULL,
             fence bigint NOT NULL,
             expires_at timestamptz NOT NULL
         );",
    ),
    (3, "ALTER TABLE ieum_lease ADD COLUMN addr text;"),
];

/// The table that holds `tree`.
fn table(tree: Tree) -> String {
    format!("ieum_{}", tree.name())
}

/// The statements this backend runs, prepared once per connection and tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Upsert,
    Delete,
    Get,
    /// `key >= $1`, ascending.
    From,
    /// `key >= $1`, ascending, at most `$2` rows.
    FromLimit,
    /// `key >= $1 AND key < $2`, ascending.
    Range,
    /// `key >= $1`, the greatest.
    LastFrom,
    /// `key >= $1 AND key < $2`, the greatest.
    LastRange,
}

impl Op {
    fn sql(self, tree: Tree) -> String {
        let t = table(tree);
        match self {
            Op::Upsert => format!(
                "INSERT INTO {t} (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            Op::Delete => format!("DELETE FROM {t} WHERE key = $1"),
            Op::Get => format!("SELECT value FROM {t} WHERE key = $1"),
            Op::From => format!("SELECT key, value FROM {t} WHERE key >= $1 ORDER BY key"),
            Op::FromLimit => {
                format!("SELECT key, value FROM {t} WHERE key >= $1 ORDER BY key LIMIT $2")
            }
            Op::Range => {
                format!("SELECT key, value FROM {t} WHERE key >= $1 AND key < $2 ORDER BY key")
            }
            Op::LastFrom => {
                format!("SELECT key, value FROM {t} WHERE key >= $1 ORDER BY key DESC LIMIT 1")
            }
            Op::LastRange => format!(
                "SELECT key, value FROM {t} WHERE key >= $1 AND key < $2 \
                 ORDER BY key DESC LIMIT 1"
            ),
        }
    }
}

/// Maps a driver error: a lost or refused connection, a server shutting down, a full disk
/// or a read-only server is [`StoreError::Io`] (not saved; retry); anything else is a bug
/// here or in the schema.
pub(super) fn from_pg(e: postgres::Error) -> StoreError {
    match e.code().map(|c| c.code()) {
        None => StoreError::Io(format!("postgres: {e}")),
        Some(code)
            if ["08", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
                || ["25006", "40001", "40P01"].contains(&code) =>
        {
            StoreError::Io(format!("postgres ({code}): {e}"))
        }
        Some(code) => StoreError::Internal(format!("postgres ({code}): {e}")),
    }
}

/// One connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<(Tree, Op), Statement>,
}

impl Conn {
    fn connect(config: &Config) -> Result<Conn, StoreError> {
        Ok(Conn {
            client: config.connect(NoTls).map_err(from_pg)?,
            statements: HashMap::new(),
        })
    }

    fn statement(&mut self, tree: Tree, op: Op) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(&(tree, op)) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&op.sql(tree)).map_err(from_pg)?;
        self.statements.insert((tree, op), s.clone());
        Ok(s)
    }

    fn rows(
        &mut self,
        tree: Tree,
        op: Op,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<KeyValue>, StoreError> {
        let s = self.statement(tree, op)?;
        self.client
            .query(&s, params)
            .map_err(from_pg)?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(from_pg)?,
                    r.try_get(1).map_err(from_pg)?,
                ))
            })
            .collect()
    }
}

/// The writer's connection and where its transaction stands.
struct WriterConn {
    conn: Conn,
    /// A transaction is open (an `apply` since the last `flush`).
    in_tx: bool,
    /// An `apply` of the open transaction failed: it is rolled back at the next `flush`,
    /// which then fails, so nothing of it is acknowledged.
    poisoned: bool,
}

/// A bounded set of read connections.
struct Pool {
    idle: Vec<Conn>,
    /// Connections that exist, idle or lent.
    open: usize,
}

/// PostgreSQL, one table per [`Tree`]. See the module docs for what is atomic, durable and
/// visible, and how it differs from sled.
pub struct PostgresBackend {
    config: Config,
    /// The primary lease every transaction checks; `None` for an unfenced store (tests and
    /// benchmarks that own their database).
    fence: Option<Fence>,
    lease: Mutex<Option<Lease>>,
    lost: Option<tokio::sync::watch::Receiver<bool>>,
    /// `None` after the connection was lost, until [`Backend::recover`] reconnects.
    writer: Mutex<Option<WriterConn>>,
    readers: Mutex<Pool>,
    reader_freed: Condvar,
    max_readers: usize,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("PostgresBackend")
            .field("max_readers", &self.max_readers)
            .finish_non_exhaustive()
    }
}

/// Parses `url` and fills in the timeouts ieum relies on where the URL does not set them.
///
/// # Errors
/// [`StoreError::Internal`] for a bad URL.
pub(super) fn config(url: &str) -> Result<Config, StoreError> {
    let mut config: Config = url
        .parse()
        .map_err(|e| StoreError::Internal(format!("not a PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("ieum");
    }
    // A database host that vanishes without closing the connection (a partition, a dead
    // machine) would otherwise leave a statement waiting for hours, with writes queued and
    // neither an ack nor `not_saved`. Unsent data times out after TCP_USER_TIMEOUT; a
    // silent peer is found by keepalive probes.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_keepalives_idle() >= Duration::from_secs(60 * 60) {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(2);
    }
    Ok(config)
}

/// Whether `s` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl PostgresBackend {
    /// Connects to `url` without a lease, runs pending migrations and checks that every
    /// tree has its table. Nothing fences this store's writes: only for a database no node
    /// serves (tests, benchmarks). The service and the CLI use
    /// [`PostgresBackend::open_primary`] or [`PostgresBackend::open_with_lease`].
    ///
    /// # Errors
    /// [`StoreError::Io`] if the database cannot be reached; [`StoreError::Internal`] for a
    /// bad URL or a failed migration.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_readers(url, DEFAULT_READERS)
    }

    /// [`PostgresBackend::open`] with at most `readers` read connections (at least 1).
    ///
    /// # Errors
    /// As [`PostgresBackend::open`].
    pub fn open_with_readers(url: &str, readers: usize) -> Result<Self, StoreError> {
        Self::open_inner(config(url)?, readers, None)
    }

    /// Takes the primary lease once (as `holder`) and opens the store fenced by it.
    ///
    /// # Errors
    /// [`StoreError::Busy`] while another node holds the lease; as
    /// [`PostgresBackend::open`] otherwise.
    pub fn open_primary(url: &str, holder: &str, ttl: Duration) -> Result<Self, StoreError> {
        let config = config(url)?;
        let mut slot = None;
        match Lease::try_acquire(&mut slot, &config, holder, ttl, None)? {
            Ok(lease) => Self::open_inner(config, DEFAULT_READERS, Some(lease)),
            Err(held) => Err(StoreError::Busy(format!(
                "an ieum node ({}) is the primary on this PostgreSQL database; stop it first \
                 (or start `ieum serve`, which waits as a standby)",
                held.holder
            ))),
        }
    }

    /// Opens the store fenced by a lease already taken (a standby that just took over).
    ///
    /// # Errors
    /// As [`PostgresBackend::open`].
    pub fn open_with_lease(url: &str, lease: Lease) -> Result<Self, StoreError> {
        Self::open_inner(config(url)?, DEFAULT_READERS, Some(lease))
    }

    fn open_inner(
        config: Config,
        readers: usize,
        lease: Option<Lease>,
    ) -> Result<Self, StoreError> {
        let fence = lease.as_ref().map(|l| l.fence().clone());
        let lost = lease.as_ref().map(Lease::lost);
        let idle_limit = lease.as_ref().map(Lease::ttl);
        let mut writer = Self::connect_writer(&config, idle_limit)?;
        migrate(&mut writer.conn.client)?;
        let backend = PostgresBackend {
            config,
            fence,
            lease: Mutex::new(lease),
            lost,
            writer: Mutex::new(Some(writer)),
            readers: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            reader_freed: Condvar::new(),
            max_readers: readers.max(1),
        };
        Ok(backend)
    }

    /// A new writer connection. A fenced writer may not sit in a transaction longer than
    /// the lease lives: a node frozen mid-transaction loses its session (and the lease
    /// row's lock) instead of holding up the node that takes over.
    fn connect_writer(
        config: &Config,
        idle_limit: Option<Duration>,
    ) -> Result<WriterConn, StoreError> {
        let mut conn = Conn::connect(config)?;
        if let Some(limit) = idle_limit {
            conn.client
                .batch_execute(&format!(
                    "SET idle_in_transaction_session_timeout = {}",
                    limit.as_millis().max(1)
                ))
                .map_err(from_pg)?;
        }
        Ok(WriterConn {
            conn,
            in_tx: false,
            poisoned: false,
        })
    }

    /// After `BEGIN`: the lease is still ours (read `FOR SHARE`, so a takeover waits for
    /// this transaction), or the transaction is refused.
    fn check_fence(&self, w: &mut WriterConn) -> Result<(), StoreError> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let ours = w
            .conn
            .client
            .query_opt(
                "SELECT 1 FROM ieum_lease WHERE name = $1 AND holder = $2 AND fence = $3 FOR SHARE",
                &[&super::lease::PRIMARY, &fence.holder, &fence.fence],
            )
            .map_err(from_pg)?;
        if ours.is_none() {
            return Err(StoreError::Fenced(format!(
                "this node's primary lease (fence {}) was taken over by another node",
                fence.fence
            )));
        }
        Ok(())
    }

    /// How long the writer may sit in a transaction (the lease's time to live), if fenced.
    fn idle_limit(&self) -> Option<Duration> {
        self.lock_lease().as_ref().map(Lease::ttl)
    }

    fn lock_lease(&self) -> MutexGuard<'_, Option<Lease>> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, Option<WriterConn>> {
        // A panic while holding it leaves at worst a broken connection, which the next
        // statement reports; the state itself stays meaningful.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes an idle read connection, opens one if fewer than `max_readers` exist, or waits
    /// for one. The pool's lock is never held while connecting or querying.
    fn take_reader(&self) -> Result<Conn, StoreError> {
        let mut pool = self.lock_pool();
        loop {
            if let Some(c) = pool.idle.pop() {
                return Ok(c);
            }
            if pool.open < self.max_readers {
                pool.open += 1;
                drop(pool);
                return Conn::connect(&self.config).inspect_err(|_| self.forget_reader());
            }
            let (next, timeout) = self
                .reader_freed
                .wait_timeout(pool, READER_WAIT)
                .unwrap_or_else(|e| e.into_inner());
            pool = next;
            if timeout.timed_out() && pool.idle.is_empty() && pool.open >= self.max_readers {
                return Err(StoreError::Io(
                    "no PostgreSQL read connection was free".into(),
                ));
            }
        }
    }

    fn give_back(&self, conn: Conn) {
        self.lock_pool().idle.push(conn);
        self.reader_freed.notify_one();
    }

    /// A lent connection was dropped (broken): make room for a new one.
    fn forget_reader(&self) {
        let mut pool = self.lock_pool();
        pool.open = pool.open.saturating_sub(1);
        drop(pool);
        self.reader_freed.notify_one();
    }

    /// Runs a read on a pooled connection. On an I/O error the connection is dropped and
    /// the read is tried once more on a fresh one (reads are idempotent): a database that
    /// restarted is noticed by the first read after it, not by every pooled connection.
    fn read<T>(&self, f: impl Fn(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut conn = self.take_reader()?;
            match f(&mut conn) {
                Ok(v) => {
                    self.give_back(conn);
                    return Ok(v);
                }
                Err(e) => {
                    if conn.client.is_closed() || matches!(e, StoreError::Io(_)) {
                        drop(conn);
                        self.forget_reader();
                    } else {
                        self.give_back(conn);
                    }
                    if tries >= 2 || !matches!(e, StoreError::Io(_)) {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Opens the group's transaction. A connection lost while idle (the database
    /// restarted between two writes) is replaced once here, where nothing of the new
    /// transaction was sent yet.
    fn begin(&self, slot: &mut Option<WriterConn>) -> Result<(), StoreError> {
        if let Some(w) = slot.as_mut() {
            match w.conn.client.batch_execute("BEGIN") {
                Ok(()) => {
                    w.in_tx = true;
                    return self.check_fence(w);
                }
                // A server that shut the session down answers with an error and closes it.
                Err(e) if e.as_db_error().is_some() && !w.conn.client.is_closed() => {
                    return Err(from_pg(e));
                }
                Err(_) => {
                    *slot = None;
                }
            }
        }
        let mut w = Self::connect_writer(&self.config, self.idle_limit())?;
        tracing::warn!("postgres writer connection re-established");
        w.conn.client.batch_execute("BEGIN").map_err(from_pg)?;
        w.in_tx = true;
        let fenced = self.check_fence(&mut w);
        *slot = Some(w);
        fenced
    }
}

/// A `postgres` client closes its connection on its own runtime when dropped, which
/// panics on a thread that drives a tokio runtime, and the last handle to a store may well
/// be dropped on one. So the connections are closed on a short-lived plain thread; waiting
/// for it means the sessions have ended when this returns.
impl Drop for PostgresBackend {
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let readers = std::mem::take(
            &mut self
                .readers
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .idle,
        );
        if let Ok(closing) = std::thread::Builder::new()
            .name("ieum-pg-close".into())
            .spawn(move || drop((writer, readers)))
        {
            let _ = closing.join();
        }
    }
}

/// Creates `schema_migrations` and applies every migration it does not list, each in a
/// transaction, holding [`MIGRATE_LOCK`] so two nodes never migrate at once.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK])
        .map_err(from_pg)?;
    let result = migrate_locked(client);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK]);
    result?;
    unlocked.map(drop).map_err(from_pg)
}

fn migrate_locked(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .map_err(from_pg)?;
    let current: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .and_then(|r| r.try_get(0))
        .map_err(from_pg)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let mut tx = client.transaction().map_err(from_pg)?;
        tx.batch_execute(sql).map_err(from_pg)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(from_pg)?;
        tx.commit().map_err(from_pg)?;
        tracing::info!(version, "postgres schema migrated");
    }
    for tree in Tree::ALL {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table(*tree)])
            .and_then(|r| r.try_get(0))
            .map_err(from_pg)?;
        if !exists {
            return Err(StoreError::Internal(format!(
                "no table for tree `{tree}`: add a migration that creates {}",
                table(*tree)
            )));
        }
    }
    Ok(())
}

impl Backend for PostgresBackend {
    fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
        let mut slot = self.lock_writer();
        if slot.as_ref().is_some_and(|w| w.poisoned) {
            return Err(StoreError::Io(
                "an earlier write of this group failed; the group is rolled back".into(),
            ));
        }
        if !slot.as_ref().is_some_and(|w| w.in_tx)
            && let Err(e) = self.begin(&mut slot)
        {
            // A transaction begun but refused (the fence): roll the group back.
            if let Some(w) = slot.as_mut().filter(|w| w.in_tx) {
                w.poisoned = true;
            }
            return Err(e);
        }
        let Some(w) = slot.as_mut() else {
            return Err(StoreError::Io("no postgres connection".into()));
        };
        let result = batch.iter().try_for_each(|write| {
            match write {
                Write::Put { tree, key, value } => {
                    let s = w.conn.statement(*tree, Op::Upsert)?;
                    w.conn.client.execute(&s, &[key, value])
                }
                Write::Remove { tree, key } => {
                    let s = w.conn.statement(*tree, Op::Delete)?;
                    w.conn.client.execute(&s, &[key])
                }
            }
            .map(drop)
            .map_err(from_pg)
        });
        if result.is_err() {
            w.poisoned = true;
        }
        result
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut slot = self.lock_writer();
        let Some(w) = slot.as_mut() else {
            // Nothing can be pending without a connection: a lost one failed its group.
            return Ok(());
        };
        if !w.in_tx {
            return Ok(());
        }
        w.in_tx = false;
        if w.poisoned {
            w.poisoned = false;
            if w.conn.client.batch_execute("ROLLBACK").is_err() {
                *slot = None;
            }
            return Err(StoreError::Io(
                "a write of this group failed; the group was rolled back".into(),
            ));
        }
        match w.conn.client.batch_execute("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                // The outcome of a COMMIT whose answer was lost is unknown: not
                // acknowledged, and a retry of the same keys is idempotent.
                if w.conn.client.is_closed() || e.as_db_error().is_none() {
                    *slot = None;
                }
                Err(from_pg(e))
            }
        }
    }

    fn release(&self) {
        // After the final flush: expire the lease so a standby takes over at once.
        if let Some(lease) = self.lock_lease().take() {
            lease.release();
        }
    }

    fn lease_lost(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.lost.clone()
    }

    fn recover(&self) -> Result<(), StoreError> {
        let mut slot = self.lock_writer();
        // Drop the old connection first: its session (and any transaction) ends with it.
        *slot = None;
        let w = Self::connect_writer(&self.config, self.idle_limit())?;
        *slot = Some(w);
        drop(slot);
        // Broken read connections are replaced as reads find them.
        Ok(())
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            let s = c.statement(tree, Op::Get)?;
            c.client
                .query_opt(&s, &[&key])
                .map_err(from_pg)?
                .map(|r| r.try_get(0).map_err(from_pg))
                .transpose()
        })
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        match prefix_successor(prefix) {
            Some(end) => self.scan_range(tree, prefix, &end),
            None => self.read(|c| c.rows(tree, Op::From, &[&prefix])),
        }
    }

    fn scan_from(
        &self,
        tree: Tree,
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| c.rows(tree, Op::FromLimit, &[&start, &limit]))
    }

    fn scan_range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<KeyValue>, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        self.read(|c| c.rows(tree, Op::Range, &[&start, &end]))
    }

    fn last_in_range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
    ) -> Result<Option<KeyValue>, StoreError> {
        if start >= end {
            return Ok(None);
        }
        self.read(|c| c.rows(tree, Op::LastRange, &[&start, &end]))
            .map(|rows| rows.into_iter().next())
    }

    fn last_with_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let rows = match prefix_successor(prefix) {
            Some(end) => self.read(|c| c.rows(tree, Op::LastRange, &[&prefix, &end.as_slice()])),
            None => self.read(|c| c.rows(tree, Op::LastFrom, &[&prefix])),
        }?;
        Ok(rows.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tree_has_a_table_in_the_migrations() {
        let sql: String = MIGRATIONS.iter().map(|(_, s)| *s).collect();
        for tree in Tree::ALL {
            assert!(
                sql.contains(&format!("CREATE TABLE {} ", table(*tree))),
                "tree `{tree}` has no table: add a migration"
            );
        }
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v as usize, i + 1);
        }
    }

    #[test]
    fn urls() {
        assert!(is_postgres_url("postgres://u@localhost/db"));
        assert!(is_postgres_url("postgresql://u@localhost/db"));
        assert!(!is_postgres_url("sled:data"));
    }

    #[test]
    fn a_lost_connection_is_io() {
        // No database listens on port 1: the error has no SQLSTATE.
        let e = match PostgresBackend::open("postgres://ieum@127.0.0.1:1/ieum") {
            Err(e) => e,
            Ok(_) => panic!("port 1 accepted a PostgreSQL connection"),
        };
        assert_eq!(e.code(), "not_saved", "{e}");
    }
}
