//! Retention: conversations are destroyed once their purpose is over.
//!
//! A conversation closed (or last touched) longer ago than the retention period (default 180
//! days) is purged: its key is destroyed — which makes every copy of its ciphertext
//! unreadable, including ones sled has not yet garbage-collected — and its events and record
//! are removed, with its casework (notes, follow-ups and their contacts, referrals). Each purge is written to the audit log (actor `system`, action `purge`).
//! Conversations waiting for or with a counselor are never purged.

use std::time::Duration;

use crate::audit::{AuditEntry, AuditLog};
use crate::ids::now_ms;
use crate::store::{Store, StoreError, Tree, Write};
use crate::transcript::{self, Keyring};

/// Purges every conversation older than `retention`. Returns how many were purged.
///
/// # Errors
/// Store errors (a purge that fails is retried on the next run).
pub async fn purge(
    store: &Store,
    keyring: &Keyring,
    audit: &AuditLog,
    retention: Duration,
) -> Result<usize, StoreError> {
    let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
    let mut purged = 0;
    for (id, updated_at) in transcript::record_times(store).await? {
        // Conversations waiting for or with a counselor are never purged.
        let waiting = store.get(Tree::Waiting, id.as_bytes()).await?.is_some();
        if waiting || updated_at >= cutoff {
            continue;
        }
        // Destroy the key first and on its own: from this flush on, the text and the record
        // (both sealed with it) are gone even if the rest of the purge is interrupted.
        store.write(vec![keyring.destroy(id)]).await?;
        let mut batch: Vec<Write> = transcript::event_keys(store, id)
            .await?
            .into_iter()
            .map(|k| Write::remove(Tree::Events, k))
            .collect();
        // Notes, follow-ups (with any contact) and referrals go with it.
        batch.extend(
            crate::casework::keys_of(store, id)
                .await?
                .into_iter()
                .map(|k| Write::remove(Tree::Casework, k)),
        );
        batch.push(Write::remove(Tree::Conversations, id.as_bytes().to_vec()));
        store.write(batch).await?;
        audit
            .append(AuditEntry {
                actor: "system".into(),
                role: "retention".into(),
                action: "purge".into(),
                conversation_id: Some(id),
                remote: None,
            })
            .await?;
        purged += 1;
    }
    Ok(purged)
}
