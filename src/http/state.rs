//! What every HTTP handler and websocket session shares: cheap handles only, no locks.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};

use super::ws::GatewayConfig;
use crate::audit::AuditLog;
use crate::chat::Registry;
use crate::metrics::Metrics;
use crate::queue::QueueHandle;
use crate::store::Store;
use crate::transcript::Keyring;
use crate::triage::TriageEngine;

/// State shared by every handler: cheap handles only, no locks.
#[derive(Clone)]
pub struct AppState {
    /// Conversation id → live conversation actor.
    pub registry: Registry,
    /// Citizen connection permits (the cap).
    pub citizens: Arc<Semaphore>,
    /// Gateway settings.
    pub gateway: Arc<GatewayConfig>,
    /// Service counters.
    pub metrics: Arc<Metrics>,
    /// Turns true when the server shuts down (sockets close with 1001).
    pub shutdown: watch::Receiver<bool>,
    /// The compiled triage engine (immutable).
    pub engine: Arc<TriageEngine>,
    /// The durable store.
    pub store: Store,
    /// The counselor queue.
    pub queue: QueueHandle,
    /// The audit log.
    pub audit: AuditLog,
    /// Conversation keys.
    pub keyring: Keyring,
    /// Staff login throttling and the bound on password checks.
    pub logins: crate::auth::LoginGuard,
    /// Sessions that ended: open staff sockets of them close.
    pub sessions_ended: tokio::sync::broadcast::Sender<crate::auth::SessionEnded>,
    /// What the bot says (canned snippets and resources for the staff pages).
    pub content: Arc<crate::content::Content>,
}
