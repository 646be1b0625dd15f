//! The registry: conversation id → live actor. An actor (task + cheap handle), so no map
//! is shared behind a lock.
//!
//! A stored conversation that is not live (after a restart, or after its actor idled out)
//! is brought back on demand when someone asks for it. At boot, [`Registry::restore`] brings
//! back every conversation that was waiting or with a counselor, so the queue is rebuilt in
//! its old order before the first citizen reconnects.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::Lang;
use super::actor::{Actor, ChatDeps, ConvHandle};
use crate::conversation::ConversationMeta;
use crate::crypto::Key;
use crate::ids::ConversationId;
use crate::store::{StoreError, Tree, Write};
use crate::transcript;

/// Commands queued per conversation actor.
const ACTOR_CHANNEL: usize = 32;

enum Cmd {
    Shutdown(oneshot::Sender<()>),
    Create(Lang, oneshot::Sender<ConvHandle>),
    Get(ConversationId, oneshot::Sender<Option<ConvHandle>>),
    Restored(Box<(ConversationMeta, Key)>, oneshot::Sender<()>),
    Exited(ConversationId),
    Live(oneshot::Sender<usize>),
}

/// The cheap handle to the registry actor.
#[derive(Clone)]
pub struct Registry {
    tx: mpsc::Sender<Cmd>,
}

impl Registry {
    /// Starts the registry.
    pub fn spawn(deps: Arc<ChatDeps>) -> Registry {
        let (tx, rx) = mpsc::channel(1024);
        let registry = Registry { tx: tx.clone() };
        tokio::spawn(run(deps, rx, tx));
        registry
    }

    /// A new conversation (not stored until its first event).
    pub async fn create(&self, lang: Lang) -> Option<ConvHandle> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Create(lang, tx)).await.ok()?;
        rx.await.ok()
    }

    /// The live actor of a conversation, brought back from the store if needed.
    pub async fn get(&self, id: ConversationId) -> Option<ConvHandle> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Get(id, tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Stops every conversation actor (each finishes the command in hand; everything it
    /// acknowledged is already stored) and the registry itself, then returns.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// How many conversations are live.
    pub async fn live(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Live(tx)).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Brings back every stored conversation that was waiting or with a counselor, oldest
    /// wait first. Returns how many. Reads only those (the [`Tree::Waiting`] index), so a
    /// restart does not grow with the number of conversations ever stored; a data directory
    /// from before the index gets it built once, here.
    ///
    /// # Errors
    /// Store errors.
    pub async fn restore(
        &self,
        store: &crate::store::Store,
        keyring: &transcript::Keyring,
    ) -> Result<usize, StoreError> {
        build_waiting_index(store, keyring).await?;
        let mut open: Vec<(ConversationMeta, Key)> = Vec::new();
        for (k, _) in store.scan_prefix(Tree::Waiting, &[]).await? {
            let Some(id) = ConversationId::from_bytes(&k) else {
                continue;
            };
            // A conversation whose key was destroyed (retention) stays gone.
            let Some(key) = keyring.key(id).await? else {
                continue;
            };
            if let Some(meta) = transcript::load_meta(store, id, &key).await? {
                if meta.conversation.state.is_handed_off() {
                    open.push((meta, key));
                }
            }
        }
        open.sort_by_key(|(m, _)| m.enqueued_at.unwrap_or(m.created_at));
        let n = open.len();
        for meta in open {
            let (tx, rx) = oneshot::channel();
            if self
                .tx
                .send(Cmd::Restored(Box::new(meta), tx))
                .await
                .is_ok()
            {
                let _ = rx.await;
            }
        }
        Ok(n)
    }
}

/// The key in [`Tree::Meta`] that says the [`Tree::Waiting`] index is complete.
const WAITING_INDEX_BUILT: &[u8] = b"waiting_index_v1";

/// Builds the waiting index once for a data directory written before it existed (one full
/// scan, then never again).
async fn build_waiting_index(
    store: &crate::store::Store,
    keyring: &transcript::Keyring,
) -> Result<(), StoreError> {
    if store.get(Tree::Meta, WAITING_INDEX_BUILT).await?.is_some() {
        return Ok(());
    }
    let mut batch: Vec<Write> = transcript::all_meta(store, keyring)
        .await?
        .iter()
        .filter(|(m, _)| m.conversation.state.is_handed_off())
        .map(|(m, _)| transcript::waiting_index(m))
        .collect();
    batch.push(Write::put(
        Tree::Meta,
        WAITING_INDEX_BUILT.to_vec(),
        b"1".to_vec(),
    ));
    store.write(batch).await
}

async fn run(deps: Arc<ChatDeps>, mut rx: mpsc::Receiver<Cmd>, me: mpsc::Sender<Cmd>) {
    let mut live: HashMap<ConversationId, ConvHandle> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Shutdown(done) => {
                // Dropping the handles closes each actor's inbox; it ends after the command
                // in hand. Sessions hold their own handles and end on the same signal.
                live.clear();
                let wait = async { while tasks.join_next().await.is_some() {} };
                if tokio::time::timeout(std::time::Duration::from_secs(10), wait)
                    .await
                    .is_err()
                {
                    tasks.abort_all();
                }
                let _ = done.send(());
                return;
            }
            Cmd::Create(lang, reply) => {
                let actor = Actor::new_conversation(Arc::clone(&deps), lang);
                let _ = reply.send(spawn_actor(actor, &mut live, &mut tasks, &me));
            }
            Cmd::Get(id, reply) => {
                if let Some(h) = live.get(&id).filter(|h| !h.tx.is_closed()) {
                    let _ = reply.send(Some(h.clone()));
                    continue;
                }
                let loaded = match deps.keyring.key(id).await {
                    Ok(Some(key)) => transcript::load_meta(&deps.store, id, &key)
                        .await
                        .map(|m| m.map(|m| (m, key))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                let handle = match loaded {
                    Ok(Some((meta, key))) => {
                        let mut actor = Actor::restored(Arc::clone(&deps), meta, key);
                        actor.restore_side_effects().await;
                        Some(spawn_actor(actor, &mut live, &mut tasks, &me))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        tracing::error!(code = e.code(), "cannot load a conversation");
                        None
                    }
                };
                let _ = reply.send(handle);
            }
            Cmd::Restored(boxed, reply) => {
                let (meta, key) = *boxed;
                if !live.contains_key(&meta.id) {
                    let mut actor = Actor::restored(Arc::clone(&deps), meta, key);
                    actor.restore_side_effects().await;
                    spawn_actor(actor, &mut live, &mut tasks, &me);
                }
                let _ = reply.send(());
            }
            Cmd::Exited(id) => {
                if live.get(&id).is_some_and(|h| h.tx.is_closed()) {
                    live.remove(&id);
                }
            }
            Cmd::Live(reply) => {
                let _ = reply.send(live.len());
            }
        }
    }
}

fn spawn_actor(
    actor: Actor,
    live: &mut HashMap<ConversationId, ConvHandle>,
    tasks: &mut tokio::task::JoinSet<()>,
    me: &mpsc::Sender<Cmd>,
) -> ConvHandle {
    let id = actor.id();
    let (tx, crx) = mpsc::channel(ACTOR_CHANNEL);
    let handle = ConvHandle { id, tx };
    live.insert(id, handle.clone());
    let me = me.clone();
    tasks.spawn(async move {
        actor.run(crx).await;
        let _ = me.send(Cmd::Exited(id)).await;
    });
    handle
}
