//! Copying a whole store from one [`Backend`] to another (`ieum store copy`), for moving a
//! deployment from sled to PostgreSQL (issue 20) or back.
//!
//! Every [`Tree`] is copied key by key with its values byte for byte: they are sealed
//! ciphertext, and nothing here opens them, so the destination needs the same master key
//! as the source. Writes go in batches of at most [`COPY_BATCH`] keys, each flushed
//! before the next (on PostgreSQL one transaction per batch), trees in
//! [`APPLY_ORDER`] (keys before the events they open).
//!
//! The source is hashed as it is read; then the destination is read back and hashed, and
//! both are compared: the number of keys and a
//! SHA-256 over every key and value in key order ([`TreeDigest`]). Any difference is a
//! failed copy.
//!
//! # Cost
//!
//! Both sides are read page by page ([`Backend::scan_from`], [`COPY_BATCH`] keys at a
//! time) and hashed as they go: memory stays bounded by one batch, whatever the size of
//! the store.

use sha2::{Digest, Sha256};

use super::backend::{APPLY_ORDER, Backend, KeyValue, StoreError, Tree, Write};

/// Keys per write batch (and per flush).
pub const COPY_BATCH: usize = 1000;

/// The number of keys in a tree and a SHA-256 over its content in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeDigest {
    /// How many keys.
    pub keys: u64,
    /// SHA-256 over each entry as `len(key) key len(value) value` (lengths as big-endian
    /// `u64`, so no two different trees hash the same bytes), in key order.
    pub sha256: [u8; 32],
}

impl TreeDigest {
    /// The digest of `entries`, which must be in key order (as every scan returns them).
    pub fn of(entries: &[KeyValue]) -> TreeDigest {
        let mut d = Digesting::default();
        d.add(entries);
        d.finish()
    }

    /// The digest of a whole tree, read page by page ([`COPY_BATCH`] keys at a time).
    ///
    /// # Errors
    /// Store errors from the backend.
    pub fn read(backend: &dyn Backend, tree: Tree) -> Result<TreeDigest, StoreError> {
        let mut d = Digesting::default();
        for_each_page(backend, tree, |page| {
            d.add(page);
            Ok(())
        })?;
        Ok(d.finish())
    }
}

/// A [`TreeDigest`] being computed, entry by entry in key order.
#[derive(Default)]
struct Digesting {
    keys: u64,
    hash: Sha256,
}

impl Digesting {
    fn add(&mut self, entries: &[KeyValue]) {
        for (k, v) in entries {
            self.hash.update((k.len() as u64).to_be_bytes());
            self.hash.update(k);
            self.hash.update((v.len() as u64).to_be_bytes());
            self.hash.update(v);
        }
        self.keys += entries.len() as u64;
    }

    fn finish(self) -> TreeDigest {
        TreeDigest {
            keys: self.keys,
            sha256: self.hash.finalize().into(),
        }
    }
}

/// Calls `f` with each page of `tree` in key order, [`COPY_BATCH`] entries at most.
fn for_each_page(
    backend: &dyn Backend,
    tree: Tree,
    mut f: impl FnMut(&[KeyValue]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut start = Vec::new();
    loop {
        let page = backend.scan_from(tree, &start, COPY_BATCH)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        // The smallest key after `last`.
        start = last.clone();
        start.push(0);
        f(&page)?;
        if page.len() < COPY_BATCH {
            return Ok(());
        }
    }
}

/// What was copied for one tree and whether both sides agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeCopy {
    /// The tree.
    pub tree: Tree,
    /// The source, read before copying.
    pub source: TreeDigest,
    /// The destination, read back after copying.
    pub destination: TreeDigest,
}

impl TreeCopy {
    /// Same number of keys and the same content on both sides.
    pub fn verified(&self) -> bool {
        self.source == self.destination
    }
}

/// The trees of `backend` that hold at least one key.
///
/// # Errors
/// Store errors from the backend.
pub fn non_empty_trees(backend: &dyn Backend) -> Result<Vec<Tree>, StoreError> {
    let mut found = Vec::new();
    for &tree in Tree::ALL {
        if backend.last_with_prefix(tree, &[])?.is_some() {
            found.push(tree);
        }
    }
    Ok(found)
}

/// Removes every key of every tree of `backend`, in flushed batches of [`COPY_BATCH`].
///
/// # Errors
/// Store errors from the backend; some batches may have been removed.
pub fn clear(backend: &dyn Backend) -> Result<(), StoreError> {
    for &tree in APPLY_ORDER.iter().rev() {
        loop {
            let page = backend.scan_from(tree, &[], COPY_BATCH)?;
            if page.is_empty() {
                break;
            }
            let batch: Vec<Write> = page
                .into_iter()
                .map(|(k, _)| Write::remove(tree, k))
                .collect();
            backend.apply(&batch)?;
            backend.flush()?;
        }
    }
    Ok(())
}

/// Copies every tree of `from` into `to` and compares both sides, tree by tree.
///
/// Keys already in `to` are overwritten, and keys only in `to` stay (and make the
/// comparison fail): copy into an empty store, or [`clear`] it first.
///
/// # Errors
/// Store errors from either backend: the copy stopped part-way, and `to` holds a prefix.
pub fn copy(from: &dyn Backend, to: &dyn Backend) -> Result<Vec<TreeCopy>, StoreError> {
    let mut report = Vec::with_capacity(Tree::ALL.len());
    for &tree in APPLY_ORDER.iter() {
        let mut source = Digesting::default();
        for_each_page(from, tree, |page| {
            source.add(page);
            let batch: Vec<Write> = page
                .iter()
                .map(|(k, v)| Write::put(tree, k.clone(), v.clone()))
                .collect();
            to.apply(&batch)?;
            to.flush()
        })?;
        report.push(TreeCopy {
            tree,
            source: source.finish(),
            destination: TreeDigest::read(to, tree)?,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;

    fn filled() -> MemoryBackend {
        let b = MemoryBackend::new();
        let mut batch = Vec::new();
        for i in 0u32..2_500 {
            batch.push(Write::put(
                Tree::Events,
                i.to_be_bytes(),
                vec![0xFF, i as u8],
            ));
        }
        batch.push(Write::put(
            Tree::Audit,
            1u64.to_be_bytes(),
            b"record".to_vec(),
        ));
        batch.push(Write::put(Tree::Keys, b"k".to_vec(), Vec::new()));
        b.apply(&batch).unwrap();
        b.flush().unwrap();
        b
    }

    #[test]
    fn copies_every_tree_byte_for_byte_and_verifies() {
        let from = filled();
        let to = MemoryBackend::new();
        let report = copy(&from, &to).unwrap();
        assert_eq!(report.len(), Tree::ALL.len());
        assert!(report.iter().all(TreeCopy::verified));
        for &tree in Tree::ALL {
            assert_eq!(
                from.scan_prefix(tree, &[]).unwrap(),
                to.scan_prefix(tree, &[]).unwrap()
            );
        }
        let events = report.iter().find(|r| r.tree == Tree::Events).unwrap();
        assert_eq!(events.destination.keys, 2_500);
        assert_eq!(
            events.source,
            TreeDigest::of(&from.scan_prefix(Tree::Events, &[]).unwrap()),
            "page by page hashes what the whole tree hashes"
        );
        assert_eq!(non_empty_trees(&to).unwrap().len(), 3);
    }

    /// A destination that changes one value as it stores it: the comparison catches it.
    #[test]
    fn a_changed_value_fails_verification() {
        struct Lossy(MemoryBackend);
        impl Backend for Lossy {
            fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
                let batch: Vec<Write> = batch
                    .iter()
                    .map(|w| match w {
                        Write::Put { tree, key, value } if key == &7u32.to_be_bytes() => {
                            let mut value = value.clone();
                            value[0] ^= 1;
                            Write::put(*tree, key.clone(), value)
                        }
                        w => w.clone(),
                    })
                    .collect();
                self.0.apply(&batch)
            }
            fn flush(&self) -> Result<(), StoreError> {
                self.0.flush()
            }
            fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
                self.0.get(tree, key)
            }
            fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
                self.0.scan_prefix(tree, prefix)
            }
            fn scan_from(
                &self,
                tree: Tree,
                start: &[u8],
                limit: usize,
            ) -> Result<Vec<KeyValue>, StoreError> {
                self.0.scan_from(tree, start, limit)
            }
            fn scan_range(
                &self,
                tree: Tree,
                start: &[u8],
                end: &[u8],
            ) -> Result<Vec<KeyValue>, StoreError> {
                self.0.scan_range(tree, start, end)
            }
            fn last_in_range(
                &self,
                tree: Tree,
                start: &[u8],
                end: &[u8],
            ) -> Result<Option<KeyValue>, StoreError> {
                self.0.last_in_range(tree, start, end)
            }
            fn last_with_prefix(
                &self,
                tree: Tree,
                prefix: &[u8],
            ) -> Result<Option<KeyValue>, StoreError> {
                self.0.last_with_prefix(tree, prefix)
            }
        }
        let report = copy(&filled(), &Lossy(MemoryBackend::new())).unwrap();
        let bad: Vec<Tree> = report
            .iter()
            .filter(|r| !r.verified())
            .map(|r| r.tree)
            .collect();
        assert_eq!(bad, [Tree::Events]);
        let events = report.iter().find(|r| r.tree == Tree::Events).unwrap();
        assert_eq!(events.source.keys, events.destination.keys, "same count");
    }

    #[test]
    fn clear_empties_every_tree_and_extra_keys_fail_verification() {
        let to = filled();
        to.apply(&[Write::put(Tree::Meta, b"extra".to_vec(), b"1".to_vec())])
            .unwrap();
        let report = copy(&filled(), &to).unwrap();
        assert!(
            !report
                .iter()
                .find(|r| r.tree == Tree::Meta)
                .unwrap()
                .verified()
        );
        clear(&to).unwrap();
        assert!(non_empty_trees(&to).unwrap().is_empty());
    }
}
