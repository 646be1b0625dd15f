//! [`Store`]: the async, cloneable handle, and the writer thread behind it (group commit).
//!
//! # Why one writer thread
//!
//! A message is acknowledged only after a flush covering it succeeded, and a flush costs
//! about as much for one write as for a hundred (`MEASURED.md`: ~9,200 durable writes/s
//! with one flush each, ~164,000/s with a hundred per flush). So one dedicated OS thread
//! owns all writing: it takes one request (blocking), drains whatever else is already
//! queued (up to [`StoreOptions::max_group`]), applies their batches one after another,
//! flushes **once**, and then answers every waiter. Under light load a group is one write and latency is one
//! flush; under heavy load groups grow by themselves and throughput follows.
//!
//! It is a `std::thread`, not a tokio task, because sled blocks the calling thread, and a
//! blocked worker would stall unrelated connections.
//!
//! # Acknowledgement
//!
//! [`Store::write`] resolves `Ok` only after the batch was applied **and** a later flush
//! succeeded. If a request's apply fails, that request gets the error; if the flush of a
//! group fails, every waiter in that group gets it: nothing in a failed flush is
//! acknowledged. Its writes may still reach disk
//! later (a failed flush may have written part of them), so an error means "not known to
//! be saved", not "not saved"; retrying the same keys is idempotent.
//!
//! # Backpressure
//!
//! Requests wait in a bounded queue ([`StoreOptions::queue_capacity`], 4,096 by default).
//! When it is full, `write` waits for room: a slow disk slows its callers down instead of
//! growing memory without bound. Callers that must not wait should wrap `write` in a
//! timeout. Dropping a `write` future after its request was queued does **not** cancel it:
//! the batch may still be written.
//!
//! # Reads
//!
//! Reads go straight to the shared backend on tokio's blocking pool (`spawn_blocking`). On
//! sled they see every applied write, including ones whose flush is still in progress; on
//! PostgreSQL only committed ones. Callers read only what `write` acknowledged.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};

use super::backend::{Backend, KeyValue, StoreError, Tree, Write};
use super::sled_backend::SledBackend;
use super::stats::{Counters, StoreStats};

/// Whether the writer shares one flush among every queued request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupCommit {
    /// Drain up to [`StoreOptions::max_group`] queued requests, then flush once for all.
    #[default]
    On,
    /// One flush per request. Slower under load; exists to measure what group commit buys.
    Off,
}

/// How a [`Store`] runs. Start from [`StoreOptions::new`] (the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    group_commit: GroupCommit,
    queue_capacity: usize,
    max_group: usize,
    lock_wait: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            group_commit: GroupCommit::On,
            queue_capacity: 4096,
            max_group: 1024,
            lock_wait: std::time::Duration::from_secs(10),
        }
    }
}

impl StoreOptions {
    /// Group commit on, a queue of 4,096 requests, at most 1,024 requests per flush.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long opening sled waits for another holder of the directory to let go (10 s:
    /// sled's own flusher may hold it briefly after a restart). A command-line tool run
    /// beside the service waits less, then says plainly that the directory is in use.
    pub fn lock_wait(mut self, wait: std::time::Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Sets the [`GroupCommit`] mode.
    pub fn group_commit(mut self, mode: GroupCommit) -> Self {
        self.group_commit = mode;
        self
    }

    /// Sets how many write requests may wait in the queue (at least 1).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Sets the most write requests one flush may cover (at least 1). A cap keeps one
    /// group's latency bounded when the queue is long.
    pub fn max_group(mut self, n: usize) -> Self {
        self.max_group = n.max(1);
        self
    }
}

type Ack = oneshot::Sender<Result<(), StoreError>>;

enum Request {
    Write {
        batch: Vec<Write>,
        done: Ack,
    },
    /// While writes fail: try to recover the backend and write a marker, so the store
    /// comes back by itself even when nobody writes.
    Probe,
    Shutdown {
        done: Ack,
    },
}

/// How often a failing store tries to recover.
const RECOVER_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The async handle to the store. Cheap to clone; every clone talks to the same writer.
///
/// The writer thread stops after [`Store::shutdown`] (or [`Store::close`]), or when the last
/// handle is dropped; either way it first writes and flushes every request already queued.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    /// To the writer thread. Bounded: see "Backpressure" in the module docs.
    tx: mpsc::Sender<Request>,
    /// Shared with the writer thread; reads use it directly from the blocking pool.
    backend: Arc<dyn Backend>,
    counters: Arc<Counters>,
    /// Turns true when the writer thread has finished and dropped its backend handle.
    stopped: watch::Receiver<bool>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Store {
    /// Starts a store over `backend` with the default [`StoreOptions`].
    ///
    /// # Errors
    /// [`StoreError::Io`] if the writer thread cannot be started.
    pub fn new(backend: Arc<dyn Backend>) -> Result<Self, StoreError> {
        Self::with_options(backend, StoreOptions::default())
    }

    /// Opens a [`SledBackend`] in `dir` and starts a store over it.
    ///
    /// # Errors
    /// As [`SledBackend::open`] and [`Store::new`].
    pub fn open_sled(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let backend = SledBackend::open_waiting(
            dir,
            super::sled_backend::DEFAULT_CACHE_BYTES,
            options.lock_wait,
        )?;
        Self::with_options(Arc::new(backend), options)
    }

    /// Starts a store over `backend`.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the writer thread cannot be started.
    pub fn with_options(
        backend: Arc<dyn Backend>,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(options.queue_capacity);
        let (stopped_tx, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            rx,
            backend: Arc::clone(&backend),
            counters: Arc::clone(&counters),
            group_cap: match options.group_commit {
                GroupCommit::On => options.max_group,
                GroupCommit::Off => 1,
            },
            failing: false,
            last_recover: None,
        };
        // While writes fail, a probe every second lets the writer recover by itself. It
        // holds only a weak sender: a dropped store still stops.
        let weak = tx.downgrade();
        let probe_counters = Arc::clone(&counters);
        let _ = std::thread::Builder::new()
            .name("ieum-store-probe".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(RECOVER_EVERY);
                    let Some(tx) = weak.upgrade() else { return };
                    if probe_counters
                        .failing_since_ms
                        .load(std::sync::atomic::Ordering::Relaxed)
                        > 0
                        && tx.try_send(Request::Probe).is_err()
                        && tx.is_closed()
                    {
                        return;
                    }
                }
            });
        std::thread::Builder::new()
            .name("ieum-store-writer".into())
            .spawn(move || {
                writer.run();
                // `run` consumed the writer and dropped its backend handle: a closed store
                // no longer holds the database open.
                let _ = stopped_tx.send(true);
            })
            .map_err(|e| StoreError::Io(format!("cannot start the store writer thread: {e}")))?;
        Ok(Store {
            shared: Arc::new(Shared {
                tx,
                backend,
                counters,
                stopped,
            }),
        })
    }

    /// Applies `batch` atomically (see the backend for what is atomic) and resolves once a
    /// flush covering it succeeded: only then may the words be acknowledged. An empty batch
    /// waits for the next flush, which makes every write queued before it durable too.
    ///
    /// Waits for room while the queue is full (backpressure).
    ///
    /// # Errors
    /// The apply or flush error of its group ([`StoreError::Io`] and others): the write is
    /// not acknowledged. [`StoreError::Closed`] after shutdown.
    pub async fn write(&self, batch: Vec<Write>) -> Result<(), StoreError> {
        let (done, ack) = oneshot::channel();
        self.shared
            .tx
            .send(Request::Write { batch, done })
            .await
            .map_err(|_| StoreError::Closed)?;
        // A dropped sender means the writer thread died (a panic in the backend).
        ack.await.map_err(|_| StoreError::Closed)?
    }

    /// Reads one key.
    ///
    /// # Errors
    /// As [`Backend::get`]; [`StoreError::Internal`] if the blocking task failed.
    pub async fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_vec();
        self.read(move |b| b.get(tree, &key)).await
    }

    /// Every entry whose key starts with `prefix`, ordered by key.
    ///
    /// # Errors
    /// As [`Backend::scan_prefix`].
    pub async fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Vec<KeyValue>, StoreError> {
        let prefix = prefix.to_vec();
        self.read(move |b| b.scan_prefix(tree, &prefix)).await
    }

    /// Every entry with `start <= key < end`, ordered by key.
    ///
    /// # Errors
    /// As [`Backend::scan_range`].
    pub async fn scan_range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<KeyValue>, StoreError> {
        let (start, end) = (start.to_vec(), end.to_vec());
        self.read(move |b| b.scan_range(tree, &start, &end)).await
    }

    /// The entry with the greatest key in `start <= key < end`.
    ///
    /// # Errors
    /// As [`Backend::last_in_range`].
    pub async fn last_in_range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
    ) -> Result<Option<KeyValue>, StoreError> {
        let (start, end) = (start.to_vec(), end.to_vec());
        self.read(move |b| b.last_in_range(tree, &start, &end))
            .await
    }

    /// The entry with the greatest key starting with `prefix`.
    ///
    /// # Errors
    /// As [`Backend::last_with_prefix`].
    pub async fn last_with_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Option<KeyValue>, StoreError> {
        let prefix = prefix.to_vec();
        self.read(move |b| b.last_with_prefix(tree, &prefix)).await
    }

    /// [`Store::last_with_prefix`] for many prefixes in one blocking task (one answer per
    /// prefix, in order).
    ///
    /// # Errors
    /// As [`Backend::last_with_prefix`].
    pub async fn last_with_prefixes(
        &self,
        tree: Tree,
        prefixes: Vec<Vec<u8>>,
    ) -> Result<Vec<Option<KeyValue>>, StoreError> {
        self.read(move |b| {
            prefixes
                .iter()
                .map(|p| b.last_with_prefix(tree, p))
                .collect()
        })
        .await
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Backend) -> Result<T, StoreError> + Send + 'static,
    {
        let backend = Arc::clone(&self.shared.backend);
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| StoreError::Internal(format!("store read task failed: {e}")))?
    }

    /// Since when (Unix ms) writes fail, while they do: the store is degraded. It recovers
    /// by itself (a probe every second; sled is reopened) once the fault clears.
    pub fn failing_since(&self) -> Option<u64> {
        let t = self
            .shared
            .counters
            .failing_since_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        (t > 0).then_some(t)
    }

    /// A snapshot of the counters (writes, flushes, flush latency, queue depth).
    pub fn stats(&self) -> StoreStats {
        let tx = &self.shared.tx;
        let queued = tx.max_capacity().saturating_sub(tx.capacity());
        self.shared.counters.snapshot(queued)
    }

    /// Stops accepting writes, writes and flushes every request already queued, stops the
    /// writer thread and waits for it. Later writes on any clone return
    /// [`StoreError::Closed`]; reads keep working while a handle is alive. Idempotent.
    ///
    /// # Errors
    /// The final flush's error, if it failed.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let (done, ack) = oneshot::channel();
        let result = match self.shared.tx.send(Request::Shutdown { done }).await {
            // A dropped ack means the writer thread died (a panic): queued writes are lost.
            Ok(()) => ack.await.unwrap_or(Err(StoreError::Closed)),
            // Already shut down, or shutting down on behalf of another handle.
            Err(_) => Ok(()),
        };
        let mut stopped = self.shared.stopped.clone();
        // An error means the thread is gone without saying so (a panic): stopped as well.
        let _ = stopped.wait_for(|s| *s).await;
        result
    }

    /// Turns `true` when this process lost the right to write to the store (another node
    /// took the PostgreSQL primary lease). `None` for stores where that cannot happen.
    pub fn lease_lost(&self) -> Option<watch::Receiver<bool>> {
        self.shared.backend.lease_lost()
    }

    /// [`Store::shutdown`], consuming this handle. When it is the last handle, the backend
    /// (and for sled the directory lock) is released when this returns.
    ///
    /// # Errors
    /// As [`Store::shutdown`].
    pub async fn close(self) -> Result<(), StoreError> {
        self.shutdown().await
    }
}

/// State owned by the writer thread.
struct Writer {
    rx: mpsc::Receiver<Request>,
    backend: Arc<dyn Backend>,
    counters: Arc<Counters>,
    /// Most write requests per flush: `max_group`, or 1 with [`GroupCommit::Off`].
    group_cap: usize,
    /// The last write failed.
    failing: bool,
    /// When the backend was last asked to recover.
    last_recover: Option<Instant>,
}

/// The requests of one group commit, in arrival order: each one's writes and who to answer.
#[derive(Default)]
struct Group {
    requests: Vec<(Vec<Write>, Ack)>,
}

impl Writer {
    fn run(mut self) {
        let mut group = Group::default();
        let mut shutdown_waiters: Vec<Ack> = Vec::new();
        // `None` once the queue is closed and empty: every sender dropped, or shutdown
        // closed it and everything queued before the close has been taken.
        while let Some(first) = self.rx.blocking_recv() {
            self.take(first, &mut group, &mut shutdown_waiters);
            while group.requests.len() < self.group_cap {
                match self.rx.try_recv() {
                    Ok(req) => self.take(req, &mut group, &mut shutdown_waiters),
                    Err(_) => break,
                }
            }
            if !group.requests.is_empty() {
                self.commit(&mut group);
            }
        }
        // Everything was flushed group by group; one more flush covers a group whose flush
        // failed, and costs nothing otherwise.
        let last = self.flush();
        self.backend.release();
        for done in shutdown_waiters {
            let _ = done.send(last.clone());
        }
    }

    fn take(&mut self, req: Request, group: &mut Group, shutdown: &mut Vec<Ack>) {
        match req {
            Request::Write { batch, done } => group.requests.push((batch, done)),
            Request::Probe => {
                if self.failing && group.requests.is_empty() {
                    // A marker write: only a real write says the disk takes writes again.
                    let (done, _) = oneshot::channel();
                    let marker = Write::put(
                        super::backend::Tree::Meta,
                        b"probe".to_vec(),
                        crate::ids::now_ms().to_be_bytes().to_vec(),
                    );
                    group.requests.push((vec![marker], done));
                }
            }
            Request::Shutdown { done } => {
                // New sends fail from now on; what is already queued is still received.
                self.rx.close();
                shutdown.push(done);
            }
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.backend.flush();
        self.counters.record_flush(started.elapsed());
        match &result {
            Ok(()) => Counters::add(&self.counters.flushes, 1),
            Err(e) => {
                Counters::add(&self.counters.flush_errors, 1);
                tracing::error!(error = %e, code = e.code(), "store flush failed");
            }
        }
        result
    }

    /// Applies each request's batch in turn, flushes once, answers every waiter.
    ///
    /// A batch per request, not one merged batch per group: a request's batch is usually
    /// one write per tree (a transcript record, sometimes the conversation record), which sled applies
    /// as plain inserts. A merged batch would hold many writes per tree, and sled's
    /// `apply_batch` rolls and writes its log buffer for each one (twice per group, one per
    /// tree), which cost more CPU than the inserts themselves. A request whose apply fails
    /// gets that error; the others are flushed and acknowledged as usual.
    fn commit(&mut self, group: &mut Group) {
        // After a failure, give the backend a chance to recover first (sled keeps failing
        // until it is reopened), at most once a second.
        if self.failing
            && self
                .last_recover
                .is_none_or(|t| t.elapsed() >= RECOVER_EVERY)
        {
            self.last_recover = Some(Instant::now());
            match self.backend.recover() {
                Ok(()) => {
                    Counters::add(&self.counters.recoveries, 1);
                    tracing::warn!("store reopened after write failures");
                }
                Err(e) => {
                    tracing::error!(error = %e, code = e.code(), "store recovery failed; retrying")
                }
            }
        }
        let ok = self.commit_group(group);
        if ok && self.failing {
            tracing::warn!("store writes work again");
        }
        self.failing = !ok;
        self.counters.failing_since_ms.store(
            if ok {
                0
            } else {
                let since = self
                    .counters
                    .failing_since_ms
                    .load(std::sync::atomic::Ordering::Relaxed);
                if since > 0 {
                    since
                } else {
                    crate::ids::now_ms()
                }
            },
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Applies and flushes one group; whether every write of it was acknowledged.
    fn commit_group(&self, group: &mut Group) -> bool {
        let mut ok = true;
        let mut applied = Vec::with_capacity(group.requests.len());
        for (batch, done) in group.requests.drain(..) {
            match self.backend.apply(&batch) {
                Ok(()) => applied.push(done),
                Err(e) => {
                    tracing::error!(error = %e, code = e.code(), "store apply failed");
                    Counters::add(&self.counters.write_errors, 1);
                    let _ = done.send(Err(e));
                    ok = false;
                }
            }
        }
        if applied.is_empty() {
            return ok;
        }
        let result = self.flush();
        let n = applied.len() as u64;
        match &result {
            Ok(()) => Counters::add(&self.counters.writes, n),
            Err(_) => {
                Counters::add(&self.counters.write_errors, n);
                ok = false;
            }
        }
        for done in applied {
            // The waiter may have given up (its future was dropped); that is fine.
            let _ = done.send(result.clone());
        }
        ok
    }
}
