//! A conversation: its one home.
//!
//! * [`machine`] — the pure state machine, `step(flow, conversation, event) -> (conversation,
//!   actions)`: where a conversation is and what must happen next;
//! * [`plan`] — pure: one event in, the next record, the events to store and the effects
//!   to carry out (queue, sockets) out; the conversation actor (`crate::chat::actor`) is
//!   the I/O shell around it;
//! * [`record`] — the conversation's record and events as data (each fact kept once: the
//!   state and level in [`Conversation`], the holder in its state), the queue card's
//!   [`Summary`];
//! * [`words`] — the [`Responder`]: where the bot's words come from.
//!
//! Nothing here does I/O. Encoding and reading records is `crate::transcript`'s.

pub mod machine;
pub mod plan;
pub mod record;
pub mod words;

pub use machine::*;
pub use record::{
    ConversationMeta, EventBody, Position, RaisedLine, SafetyPlan, StoredEvent, Summary, TriageNote,
};
pub use words::{Reply, Responder};
