//! [`MemoryBackend`]: an in-memory [`Backend`] for tests, with failure injection.
//!
//! It stores nothing on disk, so it says nothing about durability; what it is for is
//! testing the layers above the seam: that group commit answers every waiter, and above
//! all that a failed write is *never* acknowledged ([`MemoryBackend::set_fail_writes`]).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::backend::{Backend, KeyValue, StoreError, Tree, Write, prefix_successor};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// One `BTreeMap` per [`Tree`] behind one `std::sync::Mutex`.
///
/// Every method takes the lock briefly and never across an `.await` (the trait is
/// synchronous). A batch is applied under one lock hold, so it is atomic across trees.
#[derive(Debug)]
pub struct MemoryBackend {
    /// Indexed by [`Tree::index`].
    trees: Mutex<Vec<Map>>,
    /// When set, `apply` and `flush` fail with [`StoreError::Io`] and change nothing.
    fail_writes: AtomicBool,
    /// When set, only `flush` fails: batches are applied (and readable) but never durable.
    fail_flush: AtomicBool,
    /// Each `flush` sleeps this long (microseconds), like a slow disk.
    flush_delay_us: AtomicU64,
    /// Successful `flush` calls, for tests.
    flushes: AtomicU64,
    /// Like sled: once a write failed, every write fails until [`Backend::recover`].
    sticky: AtomicBool,
    /// A write failed while `sticky` was set.
    stuck: AtomicBool,
    /// Calls of [`Backend::recover`], for tests.
    recoveries: AtomicU64,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// An empty backend with every tree.
    pub fn new() -> Self {
        MemoryBackend {
            trees: Mutex::new(vec![Map::new(); Tree::ALL.len()]),
            fail_writes: AtomicBool::new(false),
            fail_flush: AtomicBool::new(false),
            flush_delay_us: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            sticky: AtomicBool::new(false),
            stuck: AtomicBool::new(false),
            recoveries: AtomicU64::new(0),
        }
    }

    /// Makes every following `apply` and `flush` fail with [`StoreError::Io`] (when
    /// `fail` is true), or work again (when false). Reads keep working.
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// Makes every following `flush` fail (when `fail` is true) while `apply` still works:
    /// the case where words reached the engine but not the disk.
    pub fn set_fail_flush(&self, fail: bool) {
        self.fail_flush.store(fail, Ordering::SeqCst);
    }

    /// Makes every `flush` take at least `delay`, like a slow disk (zero by default).
    pub fn set_flush_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.flush_delay_us.store(us, Ordering::SeqCst);
    }

    /// How many `flush` calls succeeded.
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Makes failures sticky, as sled's are: once a write failed, writes keep failing
    /// (even after `set_fail_writes(false)`) until the store calls [`Backend::recover`].
    pub fn set_sticky_failures(&self, sticky: bool) {
        self.sticky.store(sticky, Ordering::SeqCst);
    }

    /// How many times the store asked to recover.
    pub fn recover_count(&self) -> u64 {
        self.recoveries.load(Ordering::SeqCst)
    }

    fn check_writes(&self) -> Result<(), StoreError> {
        if self.stuck.load(Ordering::SeqCst) {
            return Err(StoreError::Io("failed earlier; not reopened yet".into()));
        }
        if self.fail_writes.load(Ordering::SeqCst) {
            if self.sticky.load(Ordering::SeqCst) {
                self.stuck.store(true, Ordering::SeqCst);
            }
            Err(StoreError::Io("injected write failure".into()))
        } else {
            Ok(())
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Vec<Map>>, StoreError> {
        // A panic while holding the lock can only come from a bug in this file; report it
        // rather than propagate the panic into every caller.
        self.trees
            .lock()
            .map_err(|_| StoreError::Internal("memory backend lock poisoned".into()))
    }
}

fn collect<'a>(it: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>) -> Vec<KeyValue> {
    it.map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `start <= key < end` as `BTreeMap::range` bounds (callers check `start < end`: an
/// inverted range panics).
fn half_open(start: &[u8], end: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (
        Bound::Included(start.to_vec()),
        Bound::Excluded(end.to_vec()),
    )
}

fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let end = match prefix_successor(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), end)
}

impl Backend for MemoryBackend {
    fn recover(&self) -> Result<(), StoreError> {
        self.recoveries.fetch_add(1, Ordering::SeqCst);
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected write failure".into()));
        }
        self.stuck.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
        self.check_writes()?;
        let mut trees = self.lock()?;
        for w in batch {
            match w {
                Write::Put { tree, key, value } => {
                    trees[tree.index()].insert(key.clone(), value.clone());
                }
                Write::Remove { tree, key } => {
                    trees[tree.index()].remove(key);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let delay = self.flush_delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        self.check_writes()?;
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(StoreError::Io("injected flush failure".into()));
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?[tree.index()].get(key).cloned())
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let trees = self.lock()?;
        Ok(collect(trees[tree.index()].range(prefix_bounds(prefix))))
    }

    fn scan_from(
        &self,
        tree: Tree,
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let trees = self.lock()?;
        Ok(collect(
            trees[tree.index()]
                .range((Bound::Included(start.to_vec()), Bound::Unbounded))
                .take(limit),
        ))
    }

    fn scan_range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
    ) -> Result<Vec<KeyValue>, StoreError> {
        if start >= end {
            // BTreeMap::range panics on an inverted range.
            return Ok(Vec::new());
        }
        let trees = self.lock()?;
        Ok(collect(trees[tree.index()].range(half_open(start, end))))
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
        let trees = self.lock()?;
        Ok(trees[tree.index()]
            .range(half_open(start, end))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn last_with_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        let trees = self.lock()?;
        Ok(trees[tree.index()]
            .range(prefix_bounds(prefix))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }
}
