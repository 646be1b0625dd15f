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
//! | what the bot says | [`content`] | replies, resources, screener, 마음약방, districts; pure after load |
//! | command line | [`cli`] | one file per subcommand; `main.rs` only dispatches |
//!
//! Arrows point inward: the CLI (and, later, the gateway) use the triage core; the core
//! imports nothing of theirs and does no I/O after loading.

pub mod cli;
pub mod content;
pub mod triage;

/// Paths of the shipped data files, relative to the working directory.
pub mod defaults {
    /// The shipped risk rules.
    pub const RULES: &str = "escalation-rules.toml";
    /// The shipped intents directory.
    pub const INTENTS: &str = "intents";
}
