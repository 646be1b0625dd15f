//! The conversation's record and its events: plain data, the one home of what a
//! conversation is. How they are encoded, sealed and read back is `crate::transcript`'s.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::machine::{Closer, Conversation, State};
use crate::content::{Card, QuickReply};
use crate::ids::ConversationId;
use crate::triage::{ConversationRisk, Level, RuleHit, Span};

/// What triage said about one citizen message, kept beside it in the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageNote {
    /// The message's own level.
    pub level: Level,
    /// The conversation's level after it.
    pub conversation_level: Level,
    /// Top intent.
    pub intent: Option<String>,
    /// Rules that fired, with categories and spans.
    pub rules: Vec<RuleHit>,
    /// Merged spans (character offsets into the text).
    pub spans: Vec<Span>,
    /// Rule-set version.
    pub ruleset: String,
}

/// One transcript event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Per-conversation sequence number; only ever increases.
    pub seq: u64,
    /// When, in Unix milliseconds.
    pub at: u64,
    /// What.
    #[serde(flatten)]
    pub body: EventBody,
}

/// The kinds of transcript event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// The citizen wrote.
    Citizen {
        /// The client's id for the message.
        id: String,
        /// The words.
        text: String,
        /// Triage annotation.
        triage: TriageNote,
    },
    /// The bot answered (never after a handoff).
    Bot {
        /// The text.
        text: String,
        /// Resources shown with it.
        resources: Vec<Card>,
        /// Quick replies offered.
        quick_replies: Vec<QuickReply>,
    },
    /// Emergency resources sent while waiting or with a counselor.
    Safety {
        /// The text.
        text: String,
        /// Resources.
        resources: Vec<Card>,
    },
    /// The state machine moved.
    State {
        /// From state.
        from: String,
        /// To state.
        to: String,
        /// The conversation level then.
        level: Level,
    },
    /// Entered (or re-entered) the counselor queue.
    Queued {
        /// At this level.
        level: Level,
        /// Urgent handoff.
        urgent: bool,
    },
    /// A counselor joined.
    CounselorJoined {
        /// Username.
        counselor: String,
        /// Seconds waited in the queue.
        waited_secs: u64,
    },
    /// A counselor wrote.
    Counselor {
        /// Username.
        counselor: String,
        /// The words.
        text: String,
    },
    /// Handed to another counselor or back to the queue.
    Transferred {
        /// From whom.
        from: String,
        /// To whom (`None`: the queue).
        to: Option<String>,
    },
    /// Ended.
    Closed {
        /// Who ended it.
        by: Closer,
        /// The counselor's outcome code, if a counselor closed it.
        outcome: Option<String>,
    },
    /// The citizen's rating.
    Rating {
        /// 1–5.
        value: u8,
    },
    /// A supervisor whispered to the counselor holding the conversation. **Never reaches
    /// the citizen** (live, on resume, or any citizen-facing path:
    /// `ServerFrame::from_stored` has no frame for it); staff see it in the transcript.
    Whisper {
        /// The supervisor's username.
        supervisor: String,
        /// The words.
        text: String,
    },
    /// A supervisor took the conversation over from the counselor holding it.
    CounselorChanged {
        /// Who held it.
        from: String,
        /// Who holds it now (the supervisor).
        to: String,
        /// What the citizen is told, in their language.
        text: String,
    },
    /// An item of the person's safety plan (Stanley–Brown, six steps). The plan is the
    /// fold of these events ([`SafetyPlan::fold`]): sealed, replayed and purged with the
    /// transcript.
    PlanItem {
        /// 1–6.
        step: u8,
        /// The item, in the writer's words.
        text: String,
        /// `citizen`, `counselor:<username>` or `bot` (the prefilled lines).
        by: String,
    },
}

/// A safety plan: the items of each of its six steps, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetyPlan {
    /// `items[0]` is step 1.
    pub items: [Vec<String>; 6],
}

impl SafetyPlan {
    /// The plan the events hold (every `plan_item`, in order).
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a StoredEvent>) -> SafetyPlan {
        let mut plan = SafetyPlan::default();
        for e in events {
            plan.add(&e.body);
        }
        plan
    }

    /// Adds the item an event carries, if it is one.
    pub fn add(&mut self, body: &EventBody) {
        if let EventBody::PlanItem { step, text, .. } = body {
            if let Some(list) = (*step as usize)
                .checked_sub(1)
                .and_then(|i| self.items.get_mut(i))
            {
                list.push(text.clone());
            }
        }
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.items.iter().all(Vec::is_empty)
    }
}

/// The conversation's record: everything about it other than its events. Each fact is
/// kept once: the state and the level in [`Conversation`] (the state machine's), who holds
/// it in its state ([`ConversationMeta::holder`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationMeta {
    /// The id.
    pub id: ConversationId,
    /// Created, Unix ms.
    pub created_at: u64,
    /// Last change, Unix ms.
    pub updated_at: u64,
    /// `ko` or `en`.
    pub lang: String,
    /// The state machine.
    pub conversation: Conversation,
    /// What triage remembers beyond the level (counts per level, escalations fired).
    pub risk: ConversationRisk,
    /// The last event's seq.
    pub last_seq: u64,
    /// SHA-256 of the current resume token, hex.
    pub token_hash: String,
    /// Every counselor who ever held it (they may read it).
    pub counselors: Vec<String>,
    /// When it last entered the queue, Unix ms.
    pub enqueued_at: Option<u64>,
    /// When it closed, Unix ms.
    pub closed_at: Option<u64>,
    /// The counselor's outcome code.
    pub outcome: Option<String>,
    /// What counselors see before claiming (restored into the queue after a restart).
    /// Shared (`Arc`): the actor copies the record for every message and changes the
    /// summary only for the first few. Sealed with the rest of the record.
    #[serde(default)]
    pub summary: Arc<Summary>,
    /// How long the person waited for their first counselor, seconds (statistics: time to
    /// a counselor against the level's target).
    #[serde(default)]
    pub first_wait_secs: Option<u64>,
    /// The level at which it was first handed off (statistics).
    #[serde(default)]
    pub handoff_level: Option<Level>,
    /// The district the person named, if any (statistics: "by district, when the person
    /// said it"). A district's name, never the words it came in.
    #[serde(default)]
    pub district: Option<String>,
    /// The loneliness self-check's score (3–9, the three-item UCLA Loneliness Scale), as a
    /// number so statistics can band it; `None` until a self-check was finished.
    #[serde(default)]
    pub selfcheck: Option<u8>,
}

impl ConversationMeta {
    /// A new conversation's record.
    pub fn new(id: ConversationId, lang: &str, now: u64, token_hash: String) -> ConversationMeta {
        ConversationMeta {
            id,
            created_at: now,
            updated_at: now,
            lang: lang.to_owned(),
            conversation: Conversation::default(),
            risk: ConversationRisk::default(),
            last_seq: 0,
            token_hash,
            counselors: Vec::new(),
            enqueued_at: None,
            closed_at: None,
            outcome: None,
            summary: Arc::default(),
            first_wait_secs: None,
            handoff_level: None,
            district: None,
            selfcheck: None,
        }
    }

    /// The loneliness self-check's score, if the person took it.
    pub fn selfcheck_score(&self) -> Option<u8> {
        self.selfcheck
    }

    /// Sets the self-check's score.
    pub fn set_selfcheck_score(&mut self, score: Option<u8>) {
        self.selfcheck = score;
    }

    /// The conversation's level (never goes down).
    pub fn level(&self) -> Level {
        self.conversation.level
    }

    /// The counselor holding it now: the state says, nothing else.
    pub fn holder(&self) -> Option<&str> {
        match &self.conversation.state {
            State::WithCounselor { counselor } => Some(counselor),
            _ => None,
        }
    }
}

/// A line the citizen wrote that raised the conversation's level.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RaisedLine {
    /// The words (at most 200 characters).
    pub text: String,
    /// The level it raised the conversation to.
    pub level: Level,
    /// The words that fired (character offsets into `text`).
    pub spans: Vec<Span>,
}

/// What counselors see of a waiting conversation: first what made it urgent, then how it
/// began.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// The messages that raised the level, in order (live only; never logged). Shown
    /// first on the card, with the words that fired highlighted.
    #[serde(default)]
    pub raised: Vec<RaisedLine>,
    /// The first lines the citizen wrote (live only; never logged).
    pub first_lines: Vec<String>,
    /// Rules that fired, in order.
    pub rules: Vec<String>,
    /// Spans (character offsets) into the corresponding `first_lines` entries.
    pub spans: Vec<Vec<Span>>,
}

/// Sent to a waiting conversation when its place changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    /// 1 = next.
    pub position: usize,
    /// A rough estimate, `None` when no counselor is online.
    pub expected_wait_secs: Option<u64>,
    /// Counselors online now.
    pub counselors_online: usize,
}
