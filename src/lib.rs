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
//! | assessing a message | [`triage::engine`] | one aho-corasick automaton + regex sets |
//! | staff HTTP API | [`api`] | login, transcripts, queue, audit; role checks; safe errors |
//! | booting, routes, metrics, shutdown | [`app`] | `App::build` for `main` and tests alike |
//! | what the bot says | [`content`] | replies, resources, screener, 마음약방, districts; pure after load |
//! | command line | [`cli`] | one file per subcommand; `main.rs` only dispatches |
//! | conversation state machine | [`conversation`] | pure `step(state, event)` |
//! | counselor queue | [`queue`] | actor + cheap handle; level, then time, with aging |
//! | wire protocol | [`gateway::protocol`] | total decoder, stable error codes |
//! | ids and secrets | [`ids`] | 128-bit ids, 256-bit tokens stored only as hashes |
//! | transcripts (events + meta) | [`transcript`] | append-only events, meta in the same batch |
//! | staff accounts, sessions | [`auth`] | argon2id, tokens stored as hashes |
//! | audit log | [`audit`] | actor; append-only, hash-chained, recorded before serving |
//! | durable storage | [`store`] | backend trait (sled, memory), group commit; ack after flush |
//! | web pages (widget, console, supervisor) | [`web`] | static assets embedded in the binary; staff content endpoints |
//!
//! Arrows point inward: the CLI and the gateway use the core (triage, conversation) and
//! the actors (queue, store); the core
//! imports nothing of theirs and does no I/O after loading.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod content;
pub mod conversation;
pub mod crypto;
pub mod gateway;
pub mod hex;
pub mod ids;
pub mod metrics;
pub mod queue;
pub mod redact;
pub mod retention;
pub mod store;
pub mod transcript;
pub mod triage;
pub mod web;

/// Paths of the shipped data files, relative to the working directory.
pub mod defaults {
    /// The shipped risk rules.
    pub const RULES: &str = "escalation-rules.toml";
    /// The shipped intents directory.
    pub const INTENTS: &str = "intents";
}
