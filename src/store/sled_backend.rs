//! [`SledBackend`]: the production [`Backend`], on sled 0.34.
//!
//! # What is atomic
//!
//! * A batch of one write is a plain `insert` or `remove`: atomic by itself.
//! * A batch that touches **one** tree is applied with `sled::Tree::apply_batch`: after a
//!   crash it is recovered whole or not at all.
//! * A batch that touches **several** trees is applied tree by tree in
//!   [`APPLY_ORDER`], each tree's part atomically as above. sled writes them to its one log
//!   in that order and recovers the log only up to the first gap (writes past a gap are
//!   discarded: sled PR #867, "recovery refactor"), so after a crash a later tree's part is
//!   never there without the earlier ones (a conversation record is never ahead of its
//!   events). It is not one transaction: sled's cross-tree transactions read every written
//!   key first (they return old values) and cost twice the CPU of the writes themselves,
//!   which was a third of the service's CPU per message under load (`BENCHMARKS.md`).
//!
//! Atomic batches have a fixed cost: sled pins its log for them, rolling and writing the
//! current log buffer (`pin_log` in sled's `pagecache/mod.rs`). A single write per tree
//! does not, which is why the service writes one transcript record per commit and why the
//! [`Store`](super::Store) applies each request's batch on its own rather than merging a
//! group into many-write batches.
//!
//! # What is durable, exactly
//!
//! Only [`Backend::flush`] makes writes durable; until then sled keeps them in in-process
//! buffers and `kill -9` loses them. On Linux sled 0.34.7's flush writes its log buffer and
//! calls `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)`, not `fsync` (measured with
//! strace; see `MEASURED.md`). So a flushed write survives a **process crash**. It survives
//! **power loss** only as far as the device's write cache and the file's metadata allow. We
//! promise the first, not the second.
//!
//! # Configuration
//!
//! * Cache: [`DEFAULT_CACHE_BYTES`] (32 MiB). The service should stay lean; hot data is a
//!   conversation's recent events, and the OS page cache backs the rest.
//! * sled's background flusher stays at its default (every 500 ms). Durability does not
//!   depend on it (we flush explicitly before every acknowledgement), but the same thread
//!   also runs sled's segment garbage collection (`attempt_gc` in sled's `flusher.rs`), so
//!   turning it off with `flush_every_ms(None)` would let the files grow without bound.

use std::path::Path;
use std::sync::Arc;

use super::backend::{APPLY_ORDER, Backend, KeyValue, StoreError, Tree, Write};

/// The sled page-cache size [`SledBackend::open`] uses: 32 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// sled, one sled tree per [`Tree`]. Cheap to share behind an `Arc`; sled is thread-safe.
///
/// sled locks the directory: one process, and one open `SledBackend` per directory, at a
/// time. The lock is released when the last handle drops (or the process dies).
///
/// **Recovery.** After an I/O error (a full disk, say) sled 0.34 keeps failing every write
/// until the database is opened again, even once the fault has cleared (measured: see
/// `recover`). [`Backend::recover`] does that in place: it drops this handle's database and
/// opens the directory again, so the service recovers by itself within seconds of the
/// fault clearing, without a restart. Readers hold the current database only while they
/// read.
#[derive(Debug)]
pub struct SledBackend {
    dir: std::path::PathBuf,
    cache_bytes: u64,
    open: std::sync::RwLock<Option<Arc<Open>>>,
}

/// An open database and its trees.
#[derive(Debug)]
struct Open {
    db: sled::Db,
    /// Indexed by [`Tree::index`].
    trees: Vec<sled::Tree>,
}

fn from_sled(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::Io(io.to_string()),
        e @ sled::Error::Corruption { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}

/// The last entry of a sled range, copied out.
fn last(mut it: sled::Iter) -> Result<Option<KeyValue>, StoreError> {
    it.next_back()
        .transpose()
        .map(|o| o.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .map_err(from_sled)
}

fn pairs(it: sled::Iter) -> Result<Vec<KeyValue>, StoreError> {
    it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(from_sled))
        .collect()
}

impl SledBackend {
    /// Opens (creating if needed) the database in `dir` with a [`DEFAULT_CACHE_BYTES`] cache.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the directory cannot be created or is locked by another open
    /// database; [`StoreError::Corrupt`] if the files fail recovery.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Like [`SledBackend::open`] with a page cache of `cache_bytes`.
    ///
    /// # Errors
    /// As [`SledBackend::open`].
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_waiting(dir, cache_bytes, std::time::Duration::from_secs(10))
    }

    /// Like [`SledBackend::open_with_cache`], waiting at most `lock_wait` for another
    /// holder of the directory's lock to let go ([`StoreError::Busy`] after that).
    ///
    /// # Errors
    /// As [`SledBackend::open`].
    pub fn open_waiting(
        dir: &Path,
        cache_bytes: u64,
        lock_wait: std::time::Duration,
    ) -> Result<Self, StoreError> {
        // sled's background flusher can hold the database (and its file lock) for up to
        // one flush interval after the last handle is dropped; a restart in the same
        // process, or a quick restart of the service, must wait for it rather than fail.
        let deadline = std::time::Instant::now() + lock_wait;
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .open()
            {
                Ok(db) => break db,
                Err(e) if is_lock_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) if is_lock_busy(&e) => return Err(StoreError::Busy(e.to_string())),
                Err(e) => return Err(from_sled(e)),
            }
        };
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()).map_err(from_sled))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SledBackend {
            dir: dir.to_path_buf(),
            cache_bytes,
            open: std::sync::RwLock::new(Some(Arc::new(Open { db, trees }))),
        })
    }

    /// The open database (briefly; never held across a blocking call of another kind).
    fn current(&self) -> Result<Arc<Open>, StoreError> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Io("the store is being reopened".into()))
    }

    /// One tree's part of a batch: a plain `insert`/`remove` for a single write (which does
    /// not roll the log buffer the way `apply_batch` does), else one `apply_batch`.
    fn apply_tree<'a>(
        open: &Open,
        tree: Tree,
        writes: impl Iterator<Item = &'a Write> + Clone,
    ) -> Result<(), StoreError> {
        let t = &open.trees[tree.index()];
        let mut it = writes.clone();
        match (it.next(), it.next()) {
            (None, _) => Ok(()),
            (Some(Write::Put { key, value, .. }), None) => t
                .insert(key.as_slice(), value.as_slice())
                .map(drop)
                .map_err(from_sled),
            (Some(Write::Remove { key, .. }), None) => {
                t.remove(key.as_slice()).map(drop).map_err(from_sled)
            }
            _ => {
                let mut b = sled::Batch::default();
                for w in writes {
                    match w {
                        Write::Put { key, value, .. } => b.insert(key.as_slice(), value.as_slice()),
                        Write::Remove { key, .. } => b.remove(key.as_slice()),
                    }
                }
                t.apply_batch(b).map_err(from_sled)
            }
        }
    }
}

impl Backend for SledBackend {
    fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
        let open = self.current()?;
        for tree in APPLY_ORDER {
            Self::apply_tree(&open, tree, batch.iter().filter(move |w| w.tree() == tree))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        // One log serves every tree of the database, so flushing it covers them all.
        self.current()?
            .db
            .flush()
            .map(|_bytes| ())
            .map_err(from_sled)
    }

    fn recover(&self) -> Result<(), StoreError> {
        // Drop our database first: sled releases the directory's lock once every handle
        // (and its flusher thread) is gone; then open it again, waiting for the lock.
        let old = self.open.write().unwrap_or_else(|e| e.into_inner()).take();
        drop(old);
        let reopened = Self::open_waiting(
            &self.dir,
            self.cache_bytes,
            std::time::Duration::from_secs(10),
        )?;
        let open = reopened
            .open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = open;
        Ok(())
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.current()?.trees[tree.index()]
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(from_sled)
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        pairs(self.current()?.trees[tree.index()].scan_prefix(prefix))
    }

    fn scan_from(
        &self,
        tree: Tree,
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.current()?.trees[tree.index()]
            .range(start..)
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(from_sled))
            .collect()
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
        pairs(self.current()?.trees[tree.index()].range(start..end))
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
        last(self.current()?.trees[tree.index()].range(start..end))
    }

    fn last_with_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        last(self.current()?.trees[tree.index()].scan_prefix(prefix))
    }
}

/// Whether sled failed to open because another handle still holds the file lock.
fn is_lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}
