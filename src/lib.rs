//! ieum (이음): a 24-hour loneliness and crisis chat service.
//!
//! A citizen who feels lonely opens a chat widget at any hour. A rule-based triage engine
//! reads every message; the bot answers with curated help, and when a message shows risk
//! the conversation goes at once to a queue of human counselors.
//!
//! # Layout
//!
//! | concern | where | notes |
//! |---|---|---|
//! | text normalization | [`triage::normalize`] | pure; how Korean is really typed |
//! | rule and intent files | [`triage::rules`] | strict loading, errors name file, line, rule |
//! | assessing a message | [`triage::engine`] | aho-corasick automata; regexes picked by trigger words |
//! | what the bot says | [`content`] | replies, resources, screener, 마음약방, districts; pure after load |
//! | a conversation | [`conversation`] | its record and events, the pure state machine and `plan` |
//! | live conversations | [`chat`] | one actor per conversation (the I/O shell around `plan`) |
//! | counselor queue | [`queue`] | actor + cheap handle; level, then time, with aging |
//! | transcripts | [`transcript`] | encoding, sealing, reading, the keyring, export |
//! | durable storage | [`store`] | backend trait (sled, PostgreSQL, memory), group commit; ack after flush |
//! | casework: notes, follow-ups, referrals, statistics | [`casework`] | sealed with the conversation's key; append-only changes |
//! | staff accounts, sessions | [`auth`] | argon2id, tokens stored as hashes |
//! | audit log | [`audit`] | actor; append-only, hash-chained, recorded before serving |
//! | ids, secrets, the clock | [`ids`] | 128-bit ids, 256-bit tokens stored only as hashes |
//! | everything web-facing | [`http`] | state, accept loop, ops endpoints, staff API, pages, websocket sessions |
//! | booting | [`app`] | `App::build` for `main` and tests alike; only boots |
//! | a node's life | [`node`] | sled: the app; PostgreSQL: standby until it holds the primary lease, then the app |
//! | command line | [`cli`] | one file per subcommand; `main.rs` only dispatches |
//!
//! Arrows point inward and never circle (`tests/architecture.rs` checks): the CLI and
//! `app` use `http`, which uses the actors (`chat`, `queue`, `audit`, `store`), which use
//! the core (`conversation`, `content`, `triage`); the core does no I/O after loading.

pub mod app;
pub mod audit;
pub mod auth;
pub mod casework;
pub mod chat;
pub mod cli;
pub mod content;
pub mod conversation;
pub mod crypto;
pub mod hex;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod node;
pub mod queue;
pub mod redact;
pub mod retention;
pub mod store;
pub mod transcript;
pub mod triage;

/// Paths of the shipped data files, relative to the working directory.
pub mod defaults {
    /// The shipped risk rules.
    pub const RULES: &str = "escalation-rules.toml";
    /// The shipped intents directory.
    pub const INTENTS: &str = "intents";
}
