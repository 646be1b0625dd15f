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
//! * [`Responder`] — where the bot's words come from (the content layer implements it).

pub mod actor;
pub mod frames;
pub mod registry;
mod responder;

use serde::{Deserialize, Serialize};

use crate::conversation::{Answer, BotMessage};
use crate::queue::Position;
use crate::triage::Level;

pub use actor::{ChatDeps, ConvHandle};
pub use frames::ServerFrame;
pub use registry::Registry;

pub use crate::content::{Card, Lang, QuickReply};

/// Something the bot says: text, resource cards and quick replies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The words.
    pub text: String,
    /// Resource cards (id, name, phone, hours, ...), serialized once at load.
    pub resources: Vec<Card>,
    /// Buttons: `{label, text}`.
    pub quick_replies: Vec<QuickReply>,
}

/// Where the bot's words come from. The content layer implements it from the data files;
/// the conversation actor only decides *which* message, never its wording.
pub trait Responder: Send + Sync + 'static {
    /// The welcome greeting.
    fn greeting(&self, lang: Lang) -> Reply;
    /// A bot message chosen by the state machine. `text` is the citizen's message (lets a
    /// district or mood be picked out); `turn` picks a variant; `level` is the
    /// conversation's risk level (at `medium` and above every reply carries 109, and the
    /// bot never answers "I didn't understand" to someone who disclosed risk).
    fn bot(&self, message: &BotMessage, text: &str, lang: Lang, turn: u32, level: Level) -> Reply;
    /// A queue update while waiting (says plainly when no counselor is online, with the
    /// 24-hour lines).
    fn queue_notice(&self, position: &Position, lang: Lang) -> Reply;
    /// The safety answer (109; 119 at `imminent`) for a message at `medium` or above while
    /// waiting or with a counselor.
    fn safety_resources(&self, level: Level, lang: Lang) -> Reply;
    /// A holding line while waiting: who is online, the place and wait when known, the
    /// 24-hour lines; with nobody online, the choice to keep waiting or talk meanwhile.
    fn holding(
        &self,
        lang: Lang,
        turn: u32,
        counselors_online: usize,
        position: Option<&Position>,
    ) -> Reply;
    /// The counselor is changing (back to the queue, or to a colleague).
    fn counselor_changing(&self, lang: Lang, turn: u32) -> Reply;
    /// The screener as the state machine runs it.
    fn screen_flow(&self) -> &crate::conversation::ScreenFlow;
    /// How a message reads as an answer to a screener question.
    fn screener_answer(&self, text: &str) -> Answer;
}
