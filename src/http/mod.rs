//! Everything that faces the web: the shared [`AppState`], the accept loop ([`serve`]),
//! operations endpoints ([`ops`]), the staff API ([`api`]), the pages ([`pages`]) and the
//! websocket sessions ([`ws`]). `crate::app` only boots: it builds the state and hands it
//! to [`router`] and [`serve::serve`]. Nothing here imports `crate::app`.

pub mod api;
pub mod casework;
pub mod forward;
pub mod ops;
pub mod pages;
pub mod serve;
pub mod state;
pub mod ws;

use axum::Router;
use axum::routing::get;

pub use state::AppState;

/// The routes. Exists on its own so tests can drive it without a socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/healthz/primary", get(ops::primary))
        .route("/metrics", get(ops::metrics))
        .route("/ws/chat", get(ws::chat_ws))
        .route("/ws/counselor", get(ws::counselor_ws))
        .merge(api::routes(state.clone()))
        .merge(pages::routes())
        .with_state(state)
}
