//! The audit log: who read which conversation, when, from where.
//!
//! Transcripts are mental-health data; every staff read of one is recorded **before** the
//! data is served (if the record cannot be stored, the read is refused). The log is
//! append-only and hash-chained: each record carries the hash of the one before, and its own
//! hash covers its fields and that link, so deleting, reordering or editing a record breaks
//! the chain, and [`verify`] (`ieum audit verify`) says where.
//!
//! One actor task appends, so sequence numbers and the chain never fork.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::ids::ConversationId;
use crate::ids::now_ms;
use crate::store::{Store, StoreError, Tree, Write};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What is being recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who (staff username).
    pub actor: String,
    /// Their role.
    pub role: String,
    /// What (`read_transcript`, `list_conversations`, `read_audit`, `login`, ...).
    pub action: String,
    /// Whose data, if one conversation.
    pub conversation_id: Option<ConversationId>,
    /// From where (client address).
    pub remote: Option<String>,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, 3, ...
    pub seq: u64,
    /// Unix ms.
    pub at: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// The previous record's hash (or [`GENESIS`]).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this record's fields.
    pub hash: String,
}

fn hash_of(seq: u64, at: u64, entry: &AuditEntry, prev: &str) -> String {
    let body = serde_json::to_vec(&(seq, at, entry)).expect("entry serializes");
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(&body);
    crate::hex::encode(&h.finalize())
}

type Append = (AuditEntry, oneshot::Sender<Result<AuditRecord, StoreError>>);

/// The cheap handle to the audit actor.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Append>,
}

impl AuditLog {
    /// Starts the actor, continuing the chain already in the store.
    ///
    /// # Errors
    /// Store errors, or a corrupt last record.
    pub async fn open(store: Store) -> Result<AuditLog, StoreError> {
        let (mut seq, mut prev) = match store.last_with_prefix(Tree::Audit, &[]).await? {
            Some((_, v)) => {
                let r: AuditRecord = serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt(format!("audit record: {e}")))?;
                (r.seq, r.hash)
            }
            None => (0, GENESIS.to_owned()),
        };
        let (tx, mut rx) = mpsc::channel::<Append>(256);
        tokio::spawn(async move {
            while let Some((entry, reply)) = rx.recv().await {
                let at = now_ms();
                let next = seq + 1;
                let hash = hash_of(next, at, &entry, &prev);
                let record = AuditRecord {
                    seq: next,
                    at,
                    entry,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                let write = Write::put(
                    Tree::Audit,
                    next.to_be_bytes().to_vec(),
                    serde_json::to_vec(&record).expect("record serializes"),
                );
                let result = store.write(vec![write]).await;
                if result.is_ok() {
                    seq = next;
                    prev = hash;
                }
                let _ = reply.send(result.map(|()| record));
            }
        });
        Ok(AuditLog { tx })
    }

    /// Appends a record and returns once it is durable.
    ///
    /// # Errors
    /// The store's error; [`StoreError::Closed`] if the actor stopped.
    pub async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((entry, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Reads records, newest last.
///
/// # Errors
/// Store errors or a corrupt record.
pub async fn list(store: &Store) -> Result<Vec<AuditRecord>, StoreError> {
    store
        .scan_prefix(Tree::Audit, &[])
        .await?
        .into_iter()
        .map(|(_, v)| {
            serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt(format!("audit: {e}")))
        })
        .collect()
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// The first broken record and why, if any.
    pub broken: Option<(u64, String)>,
}

/// Walks the chain from the first record and checks every link and hash.
///
/// # Errors
/// Store errors (a corrupt record is reported as broken, not as an error).
pub async fn verify(store: &Store) -> Result<Verification, StoreError> {
    let mut prev = GENESIS.to_owned();
    let mut records = 0u64;
    let all = store.scan_prefix(Tree::Audit, &[]).await?;
    for (expected_seq, (key, value)) in (1u64..).zip(all) {
        let Ok(r) = serde_json::from_slice::<AuditRecord>(&value) else {
            return Ok(Verification {
                records,
                broken: Some((expected_seq, "record does not parse".into())),
            });
        };
        let problem = if key != r.seq.to_be_bytes() {
            Some("key and seq disagree")
        } else if r.seq != expected_seq {
            Some("a record is missing before this one")
        } else if r.prev_hash != prev {
            Some("prev_hash does not match the previous record")
        } else if r.hash != hash_of(r.seq, r.at, &r.entry, &r.prev_hash) {
            Some("hash does not match the record's contents")
        } else {
            None
        };
        if let Some(p) = problem {
            return Ok(Verification {
                records,
                broken: Some((r.seq, p.into())),
            });
        }
        records += 1;
        prev = r.hash;
    }
    Ok(Verification {
        records,
        broken: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryBackend;
    use std::sync::Arc;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            actor: "sup".into(),
            role: "supervisor".into(),
            action: action.into(),
            conversation_id: Some(ConversationId::random()),
            remote: Some("127.0.0.1".into()),
        }
    }

    #[tokio::test]
    async fn chain_verifies_and_continues_after_reopen() {
        let store = Store::new(Arc::new(MemoryBackend::new())).unwrap();
        let log = AuditLog::open(store.clone()).await.unwrap();
        for i in 0..5 {
            let r = log.append(entry(&format!("read_{i}"))).await.unwrap();
            assert_eq!(r.seq, i + 1);
        }
        let log = AuditLog::open(store.clone()).await.unwrap();
        assert_eq!(log.append(entry("again")).await.unwrap().seq, 6);
        let v = verify(&store).await.unwrap();
        assert_eq!(
            v,
            Verification {
                records: 6,
                broken: None
            }
        );
        assert_eq!(list(&store).await.unwrap().len(), 6);
    }

    #[tokio::test]
    async fn tampering_is_detected() {
        let store = Store::new(Arc::new(MemoryBackend::new())).unwrap();
        let log = AuditLog::open(store.clone()).await.unwrap();
        for i in 0..4 {
            log.append(entry(&format!("read_{i}"))).await.unwrap();
        }
        // Edit record 2's actor.
        let raw = store
            .get(Tree::Audit, &2u64.to_be_bytes())
            .await
            .unwrap()
            .unwrap();
        let mut r: AuditRecord = serde_json::from_slice(&raw).unwrap();
        r.entry.actor = "someone-else".into();
        store
            .write(vec![Write::put(
                Tree::Audit,
                2u64.to_be_bytes().to_vec(),
                serde_json::to_vec(&r).unwrap(),
            )])
            .await
            .unwrap();
        assert_eq!(verify(&store).await.unwrap().broken.map(|b| b.0), Some(2));
        // Delete record 3 instead (after restoring 2).
        store
            .write(vec![
                Write::put(Tree::Audit, 2u64.to_be_bytes().to_vec(), raw),
                Write::remove(Tree::Audit, 3u64.to_be_bytes().to_vec()),
            ])
            .await
            .unwrap();
        let v = verify(&store).await.unwrap();
        assert_eq!(v.broken.map(|b| b.0), Some(4));
    }

    #[tokio::test]
    async fn a_failed_write_is_not_acknowledged_and_does_not_fork_the_chain() {
        let backend = Arc::new(MemoryBackend::new());
        let store = Store::new(backend.clone()).unwrap();
        let log = AuditLog::open(store.clone()).await.unwrap();
        log.append(entry("a")).await.unwrap();
        backend.set_fail_writes(true);
        assert!(log.append(entry("b")).await.is_err());
        backend.set_fail_writes(false);
        assert_eq!(log.append(entry("c")).await.unwrap().seq, 2);
        assert_eq!(verify(&store).await.unwrap().broken, None);
    }
}
