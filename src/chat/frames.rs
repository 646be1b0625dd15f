//! Frames the server sends to citizens (`/ws/chat`) and counselors (`/ws/counselor`).
//! Documented for clients in `docs/protocol.md`.

use serde::Serialize;

use crate::conversation::Closer;
use crate::conversation::{EventBody, StoredEvent};
use crate::ids::ConversationId;
use crate::queue::{Colleague, QueueEntry};
use crate::triage::Level;

use super::Reply;

/// A frame to a citizen. Every frame carries the conversation's `seq`: for stored events
/// it is the event's own; for status frames (`welcome`, `queue`, `error`) it is the last
/// stored event's, so `seq` never decreases.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection.
    Welcome {
        /// The conversation.
        conversation_id: ConversationId,
        /// A fresh resume token (rotated on every resume); keep it to reconnect.
        token: String,
        /// The last stored seq.
        seq: u64,
        /// Whether this resumed an earlier connection.
        resumed: bool,
        /// `ko` or `en`.
        lang: &'static str,
        /// The greeting (on a new conversation).
        #[serde(skip_serializing_if = "Option::is_none")]
        greeting: Option<Reply>,
        /// The conversation's state.
        state: &'static str,
    },
    /// The citizen's message is durably stored.
    Ack {
        /// The client's id.
        id: String,
        /// Its seq.
        seq: u64,
    },
    /// The citizen's own message, replayed after a resume.
    Message {
        /// Its seq.
        seq: u64,
        /// The client's id.
        id: String,
        /// The text.
        text: String,
    },
    /// The bot.
    Bot {
        /// Seq.
        seq: u64,
        /// The reply.
        #[serde(flatten)]
        reply: Reply,
    },
    /// Emergency resources while waiting or with a counselor.
    Safety {
        /// Seq.
        seq: u64,
        /// The reply.
        #[serde(flatten)]
        reply: Reply,
        /// Sent although the store refused the write (a full disk): the safety answer
        /// still reaches the person; it is not in the transcript, and its `seq` is the last
        /// stored one (clients show it without de-duplicating by `seq`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        unsaved: bool,
    },
    /// Waiting for a counselor.
    Queue {
        /// Last stored seq.
        seq: u64,
        /// 1 = next.
        position: usize,
        /// Rough estimate (`null` when no counselor is online).
        expected_wait_secs: Option<u64>,
        /// Counselors online.
        counselors_online: usize,
        /// What to tell the person (and the 24-hour lines).
        #[serde(flatten)]
        reply: Reply,
    },
    /// A counselor joined; or (`changed: true`) another person took over from the
    /// counselor, with a plain line in the citizen's language (`text`).
    CounselorJoined {
        /// Seq.
        seq: u64,
        /// The counselor's display name.
        name: String,
        /// Another person took over from the counselor who was here.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        changed: bool,
        /// What to tell the citizen about the change.
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// A counselor wrote.
    Counselor {
        /// Seq.
        seq: u64,
        /// The text.
        text: String,
    },
    /// The conversation ended.
    Closed {
        /// Seq.
        seq: u64,
        /// Who ended it.
        by: Closer,
    },
    /// The person's safety plan so far: all six steps, each with its items. Sent whenever
    /// it changes, and after `welcome` on a resume when a plan exists.
    SafetyPlan {
        /// Last stored seq.
        seq: u64,
        /// The six steps, in order.
        steps: Vec<PlanStepFrame>,
    },
    /// Something went wrong; `code` is stable.
    Error {
        /// Last stored seq.
        seq: u64,
        /// Stable code.
        code: &'static str,
        /// A plain sentence.
        message: String,
        /// The client id concerned.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

impl ServerFrame {
    /// The citizen-facing frame for a stored event (`None` for events citizens don't see,
    /// such as state changes and ratings).
    pub fn from_event(e: &StoredEvent) -> Option<ServerFrame> {
        Self::from_stored(e.clone())
    }

    /// [`ServerFrame::from_event`], taking the event (its words move into the frame).
    pub fn from_stored(e: StoredEvent) -> Option<ServerFrame> {
        let seq = e.seq;
        Some(match e.body {
            EventBody::Citizen { id, text, .. } => ServerFrame::Message { seq, id, text },
            EventBody::Bot {
                text,
                resources,
                quick_replies,
            } => ServerFrame::Bot {
                seq,
                reply: Reply {
                    text,
                    resources,
                    quick_replies,
                },
            },
            EventBody::Safety { text, resources } => ServerFrame::Safety {
                seq,
                reply: Reply {
                    text,
                    resources,
                    quick_replies: Vec::new(),
                },
                unsaved: false,
            },
            EventBody::CounselorJoined { .. } => ServerFrame::CounselorJoined {
                seq,
                name: "상담사".into(),
                changed: false,
                text: None,
            },
            EventBody::CounselorChanged { text, .. } => ServerFrame::CounselorJoined {
                seq,
                name: "상담사".into(),
                changed: true,
                text: Some(text),
            },
            EventBody::Counselor { text, .. } => ServerFrame::Counselor { seq, text },
            EventBody::Closed { by, .. } => ServerFrame::Closed { seq, by },
            EventBody::State { .. }
            | EventBody::Queued { .. }
            | EventBody::Transferred { .. }
            | EventBody::Rating { .. }
            // The plan reaches the citizen whole, as a `safety_plan` frame.
            | EventBody::PlanItem { .. } => return None,
            // A supervisor's whisper is for staff only: no citizen frame, ever (live fan-out
            // and resume replay both come through here).
            EventBody::Whisper { .. } => return None,
        })
    }

    /// The JSON text of the frame.
    ///
    /// # Panics
    /// Never: plain data serializes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("frame serializes")
    }

    /// The frame's `seq`.
    pub fn seq(&self) -> u64 {
        match self {
            ServerFrame::Welcome { seq, .. }
            | ServerFrame::Ack { seq, .. }
            | ServerFrame::Message { seq, .. }
            | ServerFrame::Bot { seq, .. }
            | ServerFrame::Safety { seq, .. }
            | ServerFrame::Queue { seq, .. }
            | ServerFrame::CounselorJoined { seq, .. }
            | ServerFrame::Counselor { seq, .. }
            | ServerFrame::Closed { seq, .. }
            | ServerFrame::SafetyPlan { seq, .. }
            | ServerFrame::Error { seq, .. } => *seq,
        }
    }
}

/// One step of a safety plan as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanStepFrame {
    /// 1–6.
    pub step: u8,
    /// The step's title in the conversation's language.
    pub title: String,
    /// The items written so far, in order.
    pub items: Vec<String>,
}

impl PlanStepFrame {
    /// The six steps of `plan` with their `titles`.
    pub fn all(plan: &crate::conversation::SafetyPlan, titles: &[String]) -> Vec<PlanStepFrame> {
        plan.items
            .iter()
            .enumerate()
            .map(|(i, items)| PlanStepFrame {
                step: i as u8 + 1,
                title: titles
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("{}", i + 1)),
                items: items.clone(),
            })
            .collect()
    }
}

/// A frame to a counselor.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CounselorFrame {
    /// First frame: who you are, and the conversations you hold.
    Hello {
        /// Username.
        username: String,
        /// Conversations held (claim them again to reopen their tabs).
        held: Vec<ConversationId>,
    },
    /// The queue, in order (sent on every change).
    Queue {
        /// Entries.
        entries: Vec<QueueEntry>,
    },
    /// An `imminent` conversation arrived.
    Alert {
        /// The entry.
        entry: QueueEntry,
    },
    /// A colleague passed this conversation to you: it waits in the queue reserved for you
    /// (`entry.reserved_for`) until you claim it, go offline or the offer lapses.
    Offer {
        /// The entry.
        entry: QueueEntry,
    },
    /// Colleagues online and their load: whom a conversation may be passed to. Sent on
    /// connect and whenever it changes.
    Colleagues {
        /// Online counselors (you included), by username.
        colleagues: Vec<Colleague>,
    },
    /// You hold this conversation now: its whole transcript, with triage annotations.
    Claimed {
        /// Which.
        conversation_id: ConversationId,
        /// The conversation's level.
        level: Level,
        /// Every event so far.
        events: Vec<StoredEvent>,
    },
    /// A new event in a conversation you hold (citizen messages carry their triage).
    Event {
        /// Which conversation.
        conversation_id: ConversationId,
        /// The event.
        event: StoredEvent,
    },
    /// The safety plan of a conversation you hold, after it changed.
    SafetyPlan {
        /// Which conversation.
        conversation_id: ConversationId,
        /// The six steps, in order.
        steps: Vec<PlanStepFrame>,
    },
    /// The conversation left your hands (closed, transferred, taken over).
    Released {
        /// Which.
        conversation_id: ConversationId,
    },
    /// (Supervisors.) You watch this conversation silently: its transcript so far; its
    /// live events follow as `event` frames. The citizen is not told.
    Watching {
        /// Which.
        conversation_id: ConversationId,
        /// The conversation's level.
        level: Level,
        /// Its state (`bot`, `screening`, `queued`, `with_counselor`).
        state: &'static str,
        /// Who holds it, if anyone.
        holder: Option<String>,
        /// Every event so far.
        events: Vec<StoredEvent>,
    },
    /// A supervisor watches a conversation you hold (they see its events and may whisper
    /// to you; the citizen is not told).
    SupervisorWatching {
        /// Which.
        conversation_id: ConversationId,
        /// The supervisor.
        supervisor: String,
    },
    /// The supervisor stopped watching.
    SupervisorLeft {
        /// Which.
        conversation_id: ConversationId,
        /// The supervisor.
        supervisor: String,
    },
    /// A supervisor took over a conversation you held: it is theirs now, and your
    /// messages to it are refused (`not_yours`). A `released` frame comes with it.
    TakenOver {
        /// Which.
        conversation_id: ConversationId,
        /// The supervisor.
        by: String,
    },
    /// Something went wrong; `code` is stable.
    Error {
        /// Stable code.
        code: &'static str,
        /// A plain sentence.
        message: String,
        /// The conversation concerned.
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<ConversationId>,
    },
}

impl CounselorFrame {
    /// The JSON text of the frame.
    ///
    /// # Panics
    /// Never: plain data serializes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("frame serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whisper is for staff only: no citizen frame, from the live fan-out or the replay.
    #[test]
    fn whispers_never_become_citizen_frames() {
        let whisper = StoredEvent {
            seq: 9,
            at: 1,
            body: EventBody::Whisper {
                supervisor: "boss".into(),
                text: "천천히 물어보세요".into(),
            },
        };
        assert_eq!(ServerFrame::from_event(&whisper), None);
        assert_eq!(ServerFrame::from_stored(whisper), None);
    }

    /// A take-over reaches the citizen as a change of person, with the plain line.
    #[test]
    fn a_change_of_counselor_is_told_to_the_citizen() {
        let changed = StoredEvent {
            seq: 10,
            at: 1,
            body: EventBody::CounselorChanged {
                from: "kim".into(),
                to: "boss".into(),
                text: "다른 상담사 선생님이 이어서 이야기할게요.".into(),
            },
        };
        let f = ServerFrame::from_stored(changed).unwrap();
        let v: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(v["type"], "counselor_joined");
        assert_eq!(v["changed"], true);
        assert_eq!(v["text"], "다른 상담사 선생님이 이어서 이야기할게요.");
        // Usernames never reach the citizen.
        assert!(!f.to_json().contains("kim") && !f.to_json().contains("boss"));
    }
}
