//! The storage seam: a small synchronous [`Backend`] trait with no engine types in it.
//!
//! Everything above this trait (group commit, the async handle, the service) speaks in
//! [`Tree`]s, byte keys and [`Write`]s. Moving from sled to redb, fjall or Postgres should
//! touch one new file that implements this trait, nothing else.
//!
//! The trait is synchronous on purpose: engines like sled block the calling thread, so the
//! async [`Store`](super::Store) calls it from its own writer thread and from
//! `spawn_blocking`, never inline on the executor.

use std::fmt;

/// Declares [`Tree`] and its name table in one place, so adding a tree is one line.
macro_rules! trees {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// A keyspace. Each backend keeps one independent ordered map per variant (one sled
        /// tree each). To add one, add a line to the `trees!` invocation: the name is what
        /// the tree is called on disk, so never rename an existing one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Tree {
            $($(#[$doc])* $variant,)+
        }

        impl Tree {
            /// Every tree, in declaration order (`Tree::ALL[t.index()] == t`).
            pub const ALL: &'static [Tree] = &[$(Tree::$variant,)+];

            /// The tree's name on disk. Stable: renaming it would orphan stored data.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Tree::$variant => $name,)+
                }
            }
        }
    };
}

trees! {
    /// Conversation events (messages, state changes), keyed by [`event_key`](super::event_key).
    Events => "events",
    /// One record per conversation: state, risk, assigned counselor.
    Conversations => "conversations",
    /// Counselor and admin accounts.
    Staff => "staff",
    /// Login sessions.
    Sessions => "sessions",
    /// The append-only audit log of staff actions.
    Audit => "audit",
    /// The conversations waiting for or with a counselor (key: id; no value): what a
    /// restart brings back, without reading every conversation ever stored.
    Waiting => "waiting",
    /// Schema version and other bookkeeping.
    Meta => "meta",
    /// Encryption key material (wrapped), by key id.
    Keys => "keys",
    /// Casework: case notes, follow-ups with their attempts, referrals with their status
    /// changes; keyed by conversation first, sealed with the conversation's key, so
    /// retention destroys them with it (`crate::casework`).
    Casework => "casework",
}

/// The order in which a batch touching several trees is applied, tree by tree.
///
/// Backends that cannot apply a multi-tree batch atomically (sled without a transaction)
/// apply it in this order, and recover a prefix of what they applied, so a writer can rely
/// on this: a later tree's writes are never durable without the earlier trees' writes of
/// the same batch. The order is chosen for the writers that span trees:
///
/// * a conversation's key (`Keys`) before its first events, so stored text can always be
///   opened;
/// * events (`Events`) before the conversation record (`Conversations`) that counts them,
///   so the record never claims events that are not there (readers stop at its
///   `last_seq`), and a purge removes the record last, so an interrupted purge is found and
///   finished on the next run.
pub const APPLY_ORDER: [Tree; 9] = [
    Tree::Keys,
    Tree::Events,
    Tree::Casework,
    Tree::Conversations,
    Tree::Waiting,
    Tree::Staff,
    Tree::Sessions,
    Tree::Audit,
    Tree::Meta,
];

impl Tree {
    /// Position in [`Tree::ALL`]; backends use it to index a per-tree array.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One change in a batch handed to [`Backend::apply`] or [`Store::write`](super::Store::write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value` in `tree`, replacing any old value.
    Put {
        /// Which keyspace.
        tree: Tree,
        /// The key; keys sort bytewise.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` from `tree` (no error if it is absent).
    Remove {
        /// Which keyspace.
        tree: Tree,
        /// The key.
        key: Vec<u8>,
    },
}

impl Write {
    /// Shorthand for [`Write::Put`].
    pub fn put(tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Write::Put {
            tree,
            key: key.into(),
            value: value.into(),
        }
    }

    /// Shorthand for [`Write::Remove`].
    pub fn remove(tree: Tree, key: impl Into<Vec<u8>>) -> Self {
        Write::Remove {
            tree,
            key: key.into(),
        }
    }

    /// The tree this write touches.
    pub fn tree(&self) -> Tree {
        match self {
            Write::Put { tree, .. } | Write::Remove { tree, .. } => *tree,
        }
    }
}

/// Why the store could not do what was asked.
///
/// Cheap to clone: one failed group commit hands the same error to every waiter in it.
/// Clients see only [`StoreError::code`]; the message is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk or the file system failed (or, in tests, a failure was injected). For a
    /// write this means *not acknowledged*: the words may or may not be on disk, so the
    /// sender must keep them and retry. Retrying the same keys is idempotent.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// Stored data failed a check: an unreadable file, or a key or value of the wrong shape.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store was shut down (or its writer thread stopped) before the request was done.
    #[error("the store is closed")]
    Closed,
    /// A bug or misuse in the storage engine or in this module.
    #[error("storage internal error: {0}")]
    Internal(String),
    /// The data directory is held by another process (sled allows one at a time), or
    /// another node is the primary on the database.
    #[error("the data directory is in use by another process: {0}")]
    Busy(String),
    /// This node lost the primary lease: another node took over, and this one may not
    /// write (PostgreSQL; see `store::lease`). Never acknowledged.
    #[error("this node is no longer the primary: {0}")]
    Fenced(String),
}

impl StoreError {
    /// A stable, machine-readable code for logs, metrics and client error frames.
    /// Never changes for a given variant.
    pub const fn code(&self) -> &'static str {
        match self {
            StoreError::Io(_) => "not_saved",
            StoreError::Corrupt(_) => "store_corrupt",
            StoreError::Closed => "store_closed",
            StoreError::Internal(_) => "store_internal",
            StoreError::Busy(_) => "store_busy",
            StoreError::Fenced(_) => "store_fenced",
        }
    }
}

/// A synchronous ordered key-value engine with a set of named [`Tree`]s.
///
/// Implementations must be safe to call from several threads at once: the [`Store`]
/// calls `apply`/`flush` from its single writer thread while readers call the read methods
/// from the blocking pool.
///
/// [`Store`]: super::Store
pub trait Backend: Send + Sync + 'static {
    /// Applies a batch of puts and removes, in order (a later write to the same key wins).
    ///
    /// Atomicity is per implementation and documented there; every implementation applies
    /// a batch that touches a single tree atomically, and a batch over several trees at
    /// least in [`APPLY_ORDER`] (a later tree's part is never durable without an earlier
    /// one's). Applied writes are durable only after a successful [`Backend::flush`]. On
    /// sled and in memory they are visible to reads at once; on PostgreSQL only after the
    /// flush (the commit; see `postgres_backend`). Nothing may rely on either: read what
    /// [`Store::write`](super::Store::write) acknowledged.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the engine could not write; some writes of a failed batch may
    /// have been applied if the implementation documents that a batch is not atomic.
    fn apply(&self, batch: &[Write]) -> Result<(), StoreError>;

    /// After a failure, tries to make the engine usable again (sled: reopen the
    /// database). The default does nothing: an engine whose failures are not sticky
    /// recovers by itself.
    ///
    /// # Errors
    /// The engine cannot be made usable yet; the caller tries again later.
    fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Called once by the store's writer thread after its final flush: let go of anything
    /// held for this process (the PostgreSQL primary lease). The default does nothing.
    fn release(&self) {}

    /// Turns `true` when this process lost the right to write (the PostgreSQL primary
    /// lease was taken over): the service must stop serving. `None` where that cannot
    /// happen (sled, memory, an unfenced store).
    fn lease_lost(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        None
    }

    /// Makes everything applied so far durable against a process crash.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the flush failed: nothing applied since the last good flush
    /// may be counted as durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Reads one key.
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`] from the engine.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every entry whose key starts with `prefix`, ordered by key. An empty prefix
    /// returns the whole tree.
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`] from the engine.
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;

    /// At most `limit` entries with `key >= start`, ordered by key: a tree page by page
    /// (`ieum store copy`), never the whole of it at once. The next page starts just after
    /// the last key returned (that key followed by a `0x00` byte).
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`] from the engine.
    fn scan_from(
        &self,
        tree: Tree,
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;

    /// Every entry with `start <= key < end`, ordered by key. Empty if `start >= end`.
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`] from the engine.
    fn scan_range(&self, tree: Tree, start: &[u8], end: &[u8])
    -> Result<Vec<KeyValue>, StoreError>;

    /// The entry with the greatest key in `start <= key < end`, if any (`None` if
    /// `start >= end`). With [`event_key`](super::event_key) this finds the transcript
    /// record that holds a given event.
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`] from the engine.
    fn last_in_range(
        &self,
        tree: Tree,
        start: &[u8],
        end: &[u8],
    ) -> Result<Option<KeyValue>, StoreError>;

    /// The entry with the greatest key that starts with `prefix`, if any (the audit log
    /// finds its last record this way).
    ///
    /// # Errors
    /// [`StoreError::Io`] or [`StoreError::Corrupt`] from the engine.
    fn last_with_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Option<KeyValue>, StoreError>;
}

/// A key and its value, as returned by scans.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The smallest key greater than every key that starts with `prefix`, or `None` if there
/// is none (the prefix is empty or all `0xFF`). Turns a prefix scan into a range scan.
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_table_is_consistent() {
        for (i, t) in Tree::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
        let mut names: Vec<_> = Tree::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Tree::ALL.len(), "tree names must be unique");
    }

    #[test]
    fn apply_order_has_every_tree_once() {
        let mut order = APPLY_ORDER.to_vec();
        order.sort();
        assert_eq!(order, Tree::ALL.to_vec());
    }

    #[test]
    fn prefix_successor_cases() {
        assert_eq!(prefix_successor(b""), None);
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(StoreError::Io("x".into()).code(), "not_saved");
        assert_eq!(StoreError::Closed.code(), "store_closed");
    }
}
