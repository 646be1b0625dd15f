//! Storage: never lose a word.
//!
//! A citizen's message is acknowledged only after it is durably stored, and a process crash
//! (`kill -9`) loses nothing that was acknowledged. This module is the whole of that
//! promise:
//!
//! * [`Backend`] — a small synchronous trait with no engine types in it (`apply` a batch,
//!   `flush`, `get`, ordered scans), so the engine can change in one file.
//!   [`SledBackend`] is the production engine; [`MemoryBackend`] is for tests and can fail
//!   on demand, to prove that a failed write is never acknowledged.
//! * [`Store`] — the async, cloneable handle the service uses. One writer thread applies
//!   queued batches and flushes **once** per group (group commit); [`Store::write`]
//!   resolves only after the flush that covers it. Reads run on the blocking pool.
//! * [`event_key`] — big-endian key layout, so a prefix scan returns a conversation's
//!   events in order.
//!
//! # What "durable" means here
//!
//! sled 0.34's flush ends in `sync_file_range`, not `fsync` (see [`sled_backend`]): an
//! acknowledged write survives a crash of the process. Surviving power loss depends on the
//! device's write cache and the file's metadata, and is not promised.
//!
//! On PostgreSQL ([`postgres_backend`]) a flush is a `COMMIT`: with Postgres's defaults an
//! acknowledged write is in its write-ahead log on disk, and survives a crash of ieum and
//! of the database server.
//!
//! * [`backend`] — the trait, [`Tree`], [`Write`], [`StoreError`].
//! * [`sled_backend`] — sled: what is atomic, what is durable, configuration.
//! * [`postgres_backend`] — PostgreSQL: a group commit is a transaction; how it differs
//!   from sled (reads see a write after its commit), one node per database.
//! * [`lease`] — the primary lease: one writing node per PostgreSQL database, fencing,
//!   fast takeover after a crash.
//! * [`copy`] — a whole store from one backend to another, verified (`ieum store copy`).
//! * [`location`] — `--store`: `sled:<dir>` or a `postgres://` URL.
//! * [`memory`] — the in-memory backend with failure injection.
//! * [`handle`] — [`Store`], group commit, backpressure, shutdown.
//! * [`keys`] — key layouts and why big-endian.
//! * [`stats`] — counters and the flush-latency histogram for metrics.
//! * [`private`] — the data directory `0700`, its files `0600`.

pub mod backend;
pub mod copy;
pub mod handle;
pub mod keys;
pub mod lease;
pub mod location;
pub mod memory;
pub mod postgres_backend;
pub mod private;
pub mod sled_backend;
pub mod stats;

pub use backend::{APPLY_ORDER, Backend, KeyValue, StoreError, Tree, Write};
pub use handle::{GroupCommit, Store, StoreOptions};
pub use keys::{CONVERSATION_ID_LEN, EVENT_KEY_LEN, decode_event_key, event_key};
pub use lease::{Fence, Lease};
pub use location::Location;
pub use memory::MemoryBackend;
pub use postgres_backend::PostgresBackend;
pub use private::prepare_data_dir;
pub use sled_backend::SledBackend;
pub use stats::{FLUSH_BUCKETS_US, LatencyHistogram, StoreStats};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn public_types_are_send_sync() {
        assert_send_sync::<Store>();
        assert_send_sync::<SledBackend>();
        assert_send_sync::<MemoryBackend>();
        assert_send_sync::<PostgresBackend>();
        assert_send_sync::<StoreError>();
        assert_send_sync::<StoreStats>();
    }
}
