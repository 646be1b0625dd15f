//! Live conversations: one actor per conversation, found through a registry actor.
//!
//! Why an actor per conversation: a conversation outlives any one socket. The citizen's
//! connection may drop and resume; a counselor's message may arrive while the citizen is
//! away; a restart must put waiting people back in the queue. The conversation actor is the
//! single writer of its `seq` numbers and its transcript, so events are stored and sent in
//! one order, and replay after a resume is exact: every event is persisted (and flushed)
//! *before* it is sent, and a resume sends the stored events after `last_seq`, then the live
//! ones.
//!
//! * [`actor`] — the conversation actor: triage, the state machine, persistence, fan-out.
//! * [`registry`] — conversation id → actor handle; restores waiting conversations at boot.
//! * [`frames`] — what the server sends.
//! * [`responder`] — the bot's words from the content files (implements [`Responder`]).

pub mod actor;
pub mod frames;
pub mod registry;
pub mod responder;

pub use actor::{ChatDeps, ConvHandle};
pub use frames::ServerFrame;
pub use registry::Registry;

pub use crate::content::{Card, Lang, QuickReply};
pub use crate::conversation::{Reply, Responder};
