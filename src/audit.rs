//! The audit log: who read which conversation, when, from where.
//!
//! Transcripts are mental-health data; every staff read of one is recorded **before** the
//! data is served (if the record cannot be stored, the read is refused). The log is
//! append-only and hash-chained: each record carries the hash of the one before, and its own
//! hash covers its fields and that link, so deleting, reordering or editing a record breaks
//! the chain, and [`verify`] (`ieum audit verify`) says where.
//!
//! One actor task appends, so sequence numbers and the chain never fork.
//!
//! **The tail is anchored.** A chain proves nothing about records lost from its end: if the
//! store's tail is damaged, sled discards everything after the damage and the shorter chain
//! still verifies. So after every append the head (last `seq` and hash) is written to a
//! small file beside the store ([`Anchor`], `audit.head`), sealed with the master key so it
//! cannot be rewritten without it; [`verify`] compares the chain against it and reports how
//! many records are missing.

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

/// The chain's head, kept outside the store: the last record's `seq` and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The last record's seq.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

/// Where the head is written, and the key that seals it.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// The file (`<data_dir>/audit.head`).
    pub path: std::path::PathBuf,
    /// The master key.
    pub key: crate::crypto::Key,
}

const HEAD_AAD: &[u8] = b"ieum audit head v1";

impl Anchor {
    /// The file beside a data directory's store.
    pub fn in_dir(data_dir: &std::path::Path, key: crate::crypto::Key) -> Anchor {
        Anchor {
            path: data_dir.join("audit.head"),
            key,
        }
    }

    /// Writes the head: a temporary file, synced, renamed over the old one.
    ///
    /// # Errors
    /// File system errors.
    pub fn write(&self, head: &Head) -> std::io::Result<()> {
        use std::io::Write as _;
        let plain = serde_json::to_vec(head).expect("head serializes");
        let sealed = crate::hex::encode(&self.key.seal(&plain, HEAD_AAD));
        let tmp = self.path.with_extension("head.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(sealed.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            // The rename itself survives a crash only once the directory is synced.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Reads the head, if one was ever written.
    ///
    /// # Errors
    /// A head that does not open (another key, or edited) or does not parse.
    pub fn read(&self) -> Result<Option<Head>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let sealed = crate::hex::decode(text.trim()).ok_or("audit.head is not hex")?;
        let plain = self
            .key
            .open(&sealed, HEAD_AAD)
            .map_err(|_| "audit.head does not open with this master key (edited?)".to_owned())?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| format!("audit.head: {e}"))
    }
}

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
        Self::open_anchored(store, None).await
    }

    /// [`AuditLog::open`], writing the head to `anchor` after every append.
    ///
    /// # Errors
    /// As [`AuditLog::open`].
    pub async fn open_anchored(
        store: Store,
        anchor: Option<Anchor>,
    ) -> Result<AuditLog, StoreError> {
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
                    if let Some(a) = anchor.clone() {
                        let head = Head {
                            seq,
                            hash: prev.clone(),
                        };
                        let written = tokio::task::spawn_blocking(move || a.write(&head)).await;
                        if !matches!(written, Ok(Ok(()))) {
                            tracing::error!(
                                "could not write the audit head; a lost tail would go unnoticed"
                            );
                        }
                    }
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
    /// Records the anchored head says exist after the last one found (a lost tail).
    pub missing: u64,
}

/// [`verify`], then compares the chain's end with the anchored head: records missing
/// from the tail, or a head the chain does not reach, are reported.
///
/// # Errors
/// Store errors; a head that cannot be read is reported as broken.
pub async fn verify_anchored(store: &Store, anchor: &Anchor) -> Result<Verification, StoreError> {
    let mut v = verify(store).await?;
    if v.broken.is_some() {
        return Ok(v);
    }
    let head = match anchor.read() {
        Ok(h) => h,
        Err(why) => {
            v.broken = Some((v.records + 1, why));
            return Ok(v);
        }
    };
    let Some(head) = head else {
        return Ok(v);
    };
    if head.seq > v.records {
        v.missing = head.seq - v.records;
        v.broken = Some((
            v.records + 1,
            format!(
                "{} record(s) missing from the end: the anchored head is record {}",
                v.missing, head.seq
            ),
        ));
    } else if let Ok(Some(value)) = store.get(Tree::Audit, &head.seq.to_be_bytes()).await {
        let r: Option<AuditRecord> = serde_json::from_slice(&value).ok();
        if r.is_none_or(|r| r.hash != head.hash) {
            v.broken = Some((head.seq, "does not match the anchored head".into()));
        }
    }
    Ok(v)
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
                missing: 0,
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
                missing: 0,
            });
        }
        records += 1;
        prev = r.hash;
    }
    Ok(Verification {
        records,
        broken: None,
        missing: 0,
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
                broken: None,
                missing: 0,
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

    /// sled drops everything after a damaged spot: the shorter chain still verifies on its
    /// own, but not against the anchored head.
    #[tokio::test]
    async fn a_lost_tail_is_detected_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let anchor = Anchor::in_dir(dir.path(), crate::crypto::Key::random());
        let store = Store::new(Arc::new(MemoryBackend::new())).unwrap();
        let log = AuditLog::open_anchored(store.clone(), Some(anchor.clone()))
            .await
            .unwrap();
        for i in 0..6 {
            log.append(entry(&format!("read_{i}"))).await.unwrap();
        }
        assert_eq!(anchor.read().unwrap().unwrap().seq, 6);
        let v = verify_anchored(&store, &anchor).await.unwrap();
        assert_eq!((v.records, v.missing, v.broken), (6, 0, None));
        // The tail is lost.
        store
            .write(vec![
                Write::remove(Tree::Audit, 5u64.to_be_bytes().to_vec()),
                Write::remove(Tree::Audit, 6u64.to_be_bytes().to_vec()),
            ])
            .await
            .unwrap();
        assert_eq!(
            verify(&store).await.unwrap().broken,
            None,
            "the chain alone cannot tell"
        );
        let v = verify_anchored(&store, &anchor).await.unwrap();
        assert_eq!(v.records, 4);
        assert_eq!(v.missing, 2);
        assert!(v.broken.unwrap().1.contains("2 record(s) missing"));
        // A head written with another key (or edited) is reported, not trusted.
        let other = Anchor {
            key: crate::crypto::Key::random(),
            ..anchor
        };
        assert!(
            verify_anchored(&store, &other)
                .await
                .unwrap()
                .broken
                .is_some()
        );
    }
}
