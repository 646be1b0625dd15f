//! Where the bot's words come from. The state machine and [`plan`](super::plan) decide
//! *which* message; a [`Responder`] (the content layer's, `crate::chat::responder`) says
//! it in the person's language, from the data files.

use serde::{Deserialize, Serialize};

use super::machine::{Answer, BotMessage};
use super::record::Position;
use crate::content::{Card, Lang, QuickReply};
use crate::triage::Level;

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
    /// How a message reads as an answer to a screener question.
    fn screener_answer(&self, text: &str) -> Answer;
    /// Another person (a supervisor) took over from the counselor: said plainly.
    fn counselor_changed(&self, lang: Lang) -> String {
        match lang {
            Lang::En => {
                "Another counselor will continue the conversation with you from here.".into()
            }
            _ => "다른 상담사 선생님이 이어서 이야기할게요.".into(),
        }
    }
    /// How a message reads as a self-check answer: 1 (hardly ever), 2 (some of the time),
    /// 3 (often), or `None` when it is not clearly one of them.
    fn self_check_score(&self, _text: &str) -> Option<u8> {
        None
    }
    /// Whether a message in the safety-plan walk means "skip this step".
    fn plan_skip(&self, _text: &str) -> bool {
        false
    }
    /// The six safety-plan step titles, in order.
    fn plan_titles(&self, _lang: Lang) -> Vec<String> {
        (1..=6).map(|i| format!("{i}")).collect()
    }
    /// The lines step 5 of a safety plan starts with (109, 1577-0199, the district centre).
    fn plan_prefill(&self, _lang: Lang) -> Vec<String> {
        Vec::new()
    }
    /// The Seoul district a message names (`마포구`), if any: kept in the record as a name
    /// (statistics by district), never with the words it came in.
    fn district(&self, _text: &str) -> Option<String> {
        None
    }
}
