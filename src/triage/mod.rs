//! Triage: reads every citizen message and decides how worried to be.
//!
//! This is the heart of ieum and the part that must never miss a person at risk. It is pure:
//! no I/O after loading, no clocks, no randomness. It is built once at startup from
//! `escalation-rules.toml` and `intents/*.toml` ([`TriageEngine::load`]), is `Send + Sync`,
//! and is shared behind an `Arc` by every connection.
//!
//! * [`normalize`] — how messages (and patterns) are normalized, and why.
//! * [`rules`] — the data files: their format, loading and validation. A broken file stops
//!   the load with an error naming the file, the line and the rule.
//! * [`engine`] — [`TriageEngine::assess`]: one aho-corasick automaton over every literal
//!   pattern of every rule and intent, plus the regexes their trigger words pick, then
//!   `except` masks, `unless` downgrades, the message level and the top intent.
//!
//! # Levels and why `unless` never lowers `imminent`
//!
//! `unless` patterns (negation, quotation, news talk) are *context* guesses. A negation can
//! be misplaced ("죽고 싶지 않은 날이 없어"), a quote can be the person's own words, and a
//! message can mention news and a plan at once. For passive or active ideation, a wrong
//! downgrade still leaves the person with a screening conversation. A plan, means, timing,
//! an act in progress or a farewell, however, leaves no time for a second look: a wrong
//! downgrade there could cost a life, while a wrong escalation costs a counselor a few
//! minutes. So the loader rejects `unless` on `imminent` rules. Words that only *look* like a
//! risk word (`유서 깊은`, historic) are handled by `except`, which masks exactly that phrase
//! and nothing else, and is allowed everywhere.

pub mod engine;
pub mod eval;
pub mod grammar;
pub(crate) mod hangul;
pub mod normalize;
pub mod rules;
mod trigger;
pub(crate) mod typo;

use serde::{Deserialize, Serialize};

pub use engine::{Assessment, ConversationRisk, RuleHit, TriageEngine};
pub use normalize::Span;
pub use rules::{ExampleFailure, LoadError};

/// How worried triage is, in increasing order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing of concern.
    #[default]
    None,
    /// Loneliness or isolation distress.
    Low,
    /// Passive death wish, hopelessness, negated ideation.
    Medium,
    /// Active suicidal ideation, self-harm.
    High,
    /// A plan, means, timing, an act in progress, a farewell.
    Imminent,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 5] = [
        Level::None,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Imminent,
    ];

    /// The level's name as used in files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Imminent => "imminent",
        }
    }

    /// Position in [`Level::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// One level lower (`none` stays `none`).
    pub fn lower(self) -> Level {
        Level::ALL[self.index().saturating_sub(1)]
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("unknown level `{s}`"))
    }
}

/// What a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Thoughts of suicide or of dying.
    Ideation,
    /// A plan or preparations.
    Plan,
    /// Access to or gathering of means.
    Means,
    /// A time set ("오늘 밤").
    Timing,
    /// Self-harm.
    SelfHarm,
    /// Goodbyes, a note, giving things away.
    Farewell,
    /// Hopelessness, being a burden, wanting to disappear.
    Hopelessness,
    /// Loneliness, isolation, reclusion.
    Isolation,
    /// Thoughts of hurting someone else.
    HarmToOthers,
    /// Abuse or violence suffered.
    Abuse,
    /// A medical emergency (an overdose taken, bleeding, unconscious).
    MedicalEmergency,
    /// An act in progress.
    InProgress,
}

/// What the conversation should do at a level (configured per level in the rules file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The bot answers with the intent's response.
    Answer,
    /// The bot answers and offers a counselor (and starts screening).
    OfferCounselor,
    /// The conversation goes to the counselor queue; the bot stops.
    Handoff,
    /// As `handoff`, first in line, with emergency resources shown at once.
    UrgentHandoff,
}

/// Per-level policy from the rules file: the action, the queue priority and the wait target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelPolicy {
    /// What the conversation does at this level.
    pub action: Action,
    /// Queue priority: higher is served first.
    pub priority: u8,
    /// How long someone at this level should wait for a counselor at most, in seconds.
    pub wait_target_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_round_trip() {
        assert!(Level::None < Level::Low && Level::High < Level::Imminent);
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>().unwrap(), l);
        }
        assert_eq!(Level::Imminent.lower(), Level::High);
        assert_eq!(Level::None.lower(), Level::None);
    }
}
