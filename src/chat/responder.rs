//! [`Responder`] for the content layer: the state machine picks *which* message, the data
//! files say it.

use super::{Reply, Responder};
use crate::content::{self, Content, Lang};
use crate::conversation::{Answer, BotMessage, Question};
use crate::queue::Position;
use crate::triage::Level;

fn convert(r: content::Reply) -> Reply {
    Reply {
        text: r.text,
        resources: r
            .resources
            .iter()
            .filter_map(|x| serde_json::to_value(x).ok())
            .collect(),
        quick_replies: r
            .quick_replies
            .iter()
            .filter_map(|x| serde_json::to_value(x).ok())
            .collect(),
    }
}

fn answer_buttons(lang: Lang) -> Vec<serde_json::Value> {
    let (yes, no, unsure) = match lang {
        Lang::Ko => (
            ("네", "네"),
            ("아니요", "아니요"),
            ("잘 모르겠어요", "잘 모르겠어요"),
        ),
        Lang::En => (("Yes", "yes"), ("No", "no"), ("Not sure", "not sure")),
    };
    [yes, no, unsure]
        .iter()
        .map(|(label, text)| serde_json::json!({"label": label, "text": text}))
        .collect()
}

impl Responder for Content {
    fn greeting(&self, lang: Lang) -> Reply {
        convert(Content::greeting(self, lang))
    }

    fn bot(&self, message: &BotMessage, text: &str, lang: Lang, turn: u32) -> Reply {
        match message {
            BotMessage::Intent { intent } => {
                convert(self.reply(intent.as_deref(), text, lang, turn))
            }
            BotMessage::Safety { level } => convert(self.safety_reply(*level, lang, turn)),
            BotMessage::Ask { question, repeat } => {
                let s = self.screener();
                let q = s
                    .question(question.id())
                    .map(|q| q.text(lang).to_owned())
                    .unwrap_or_default();
                let first = *question == Question::WishDead && !*repeat;
                let text = if *repeat {
                    format!("{} {q}", s.unclear(lang))
                } else if first {
                    format!("{} {q}", s.intro(lang))
                } else {
                    q
                };
                // The opening of the screener is a response at `medium`: it carries the
                // medium resources (109) with it.
                let resources = if first {
                    convert(self.safety_reply(Level::Medium, lang, turn)).resources
                } else {
                    Vec::new()
                };
                Reply {
                    text,
                    resources,
                    quick_replies: answer_buttons(lang),
                }
            }
            BotMessage::ScreeningDone { .. } => {
                let mut r = convert(self.safety_reply(Level::Medium, lang, turn));
                r.text = format!("{} {}", self.screener().done(lang), r.text);
                r
            }
            BotMessage::AskRating => convert(self.rating_ask(lang)),
            BotMessage::ThanksForRating => convert(self.rating_thanks(lang)),
        }
    }

    fn queue_notice(&self, position: &Position, lang: Lang) -> Reply {
        convert(Content::queue_notice(
            self,
            lang,
            position.position,
            position.counselors_online,
        ))
    }

    fn safety_resources(&self, level: Level, lang: Lang) -> Reply {
        convert(self.safety_reply(level, lang, 0))
    }

    fn screener_answer(&self, text: &str) -> Answer {
        match self.screener().classify(text) {
            content::Answer::Yes => Answer::Yes,
            content::Answer::No => Answer::No,
            content::Answer::Unclear => Answer::Unclear,
        }
    }
}
