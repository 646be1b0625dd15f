//! [`Responder`] for the content layer: the state machine picks *which* message, the data
//! files say it.

use super::{Card, QuickReply, Reply, Responder};
use crate::content::{self, Content, Lang};
use crate::conversation::Position;
use crate::conversation::{Answer, BotMessage};
use crate::triage::Level;

fn convert(r: content::Reply) -> Reply {
    Reply {
        text: r.text,
        resources: r.resources.iter().map(|x| x.card()).collect(),
        quick_replies: r.quick_replies,
    }
}

fn answer_buttons(lang: Lang) -> Vec<QuickReply> {
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
        .map(|(label, text)| QuickReply {
            label: (*label).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

impl Content {
    /// The cards of these resource ids (the loader checked they exist and are verified).
    fn cards(&self, ids: &[String]) -> Vec<Card> {
        ids.iter()
            .filter_map(|id| self.resource(id))
            .map(|r| r.card())
            .collect()
    }

    /// Adds the 24-hour crisis line cards (109 first) that a reply does not carry yet.
    fn with_crisis_lines(&self, reply: &mut Reply) {
        let lines: Vec<Card> = self
            .emergency_resources()
            .into_iter()
            .filter(|r| r.phone.as_deref() == Some("109"))
            .map(|r| r.card())
            .filter(|card| !reply.resources.contains(card))
            .collect();
        reply.resources.splice(0..0, lines);
    }
}

impl Responder for Content {
    fn greeting(&self, lang: Lang) -> Reply {
        convert(Content::greeting(self, lang))
    }

    fn bot(&self, message: &BotMessage, text: &str, lang: Lang, turn: u32, level: Level) -> Reply {
        let mut reply = match message {
            // After a disclosure, "I didn't understand" would be carrying on as normal: a
            // gentle check-in instead.
            BotMessage::Intent { intent: None } if level >= Level::Medium => {
                convert(self.safety_reply(Level::Low, lang, turn))
            }
            BotMessage::Intent { intent } => {
                convert(self.reply(intent.as_deref(), text, lang, turn))
            }
            BotMessage::Safety { level } => convert(self.safety_reply(*level, lang, turn)),
            BotMessage::Ask { question, repeat } => {
                let s = self.screener();
                let q = s
                    .question(question)
                    .map(|q| q.text(lang).to_owned())
                    .unwrap_or_default();
                let first = *question == s.first().id && !*repeat;
                let text = if *repeat {
                    format!("{} {q}", s.unclear(lang))
                } else if first {
                    format!("{} {q}", s.intro(lang))
                } else {
                    q
                };
                Reply {
                    text,
                    resources: Vec::new(),
                    quick_replies: answer_buttons(lang),
                }
            }
            BotMessage::ScreeningDone { .. } => {
                let medium = convert(self.safety_reply(Level::Medium, lang, turn));
                Reply {
                    text: self.screener().done(lang).to_owned(),
                    resources: medium.resources,
                    quick_replies: medium.quick_replies,
                }
            }
            // The actor renders these with the queue's numbers (Responder::holding); this is
            // what they say when none are known.
            BotMessage::Holding => Responder::holding(self, lang, turn, 1, None),
            BotMessage::CounselorChanging => convert(self.counselor_changing(lang, turn)),
            BotMessage::SelfCheckAsk { item, repeat } => {
                let sc = self.selfcheck();
                let q = sc.item(usize::from(*item), lang).unwrap_or_default();
                let text = if *repeat {
                    format!("{} {q}", sc.unclear(lang))
                } else if *item == 0 {
                    format!("{} {q}", sc.intro(lang))
                } else {
                    q.to_owned()
                };
                Reply {
                    text,
                    resources: Vec::new(),
                    quick_replies: sc.options(lang),
                }
            }
            BotMessage::SelfCheckResult { score } => {
                let (text, ids, quick_replies) = self.selfcheck().result(*score, lang);
                Reply {
                    text,
                    resources: self.cards(ids),
                    quick_replies,
                }
            }
            BotMessage::SelfCheckStopped => Reply {
                text: self.selfcheck().stopped(lang).to_owned(),
                ..Reply::default()
            },
            BotMessage::PlanOffer => {
                let (text, mut quick_replies) = self.safety_plan().offer(lang);
                // The screener's closing offer of a counselor stays one tap away.
                quick_replies
                    .extend(convert(self.safety_reply(Level::Medium, lang, turn)).quick_replies);
                Reply {
                    text: text.to_owned(),
                    resources: Vec::new(),
                    quick_replies,
                }
            }
            BotMessage::PlanAsk { step } => {
                let (text, quick_replies) = self.safety_plan().ask(*step, lang);
                Reply {
                    text: text.to_owned(),
                    resources: Vec::new(),
                    quick_replies,
                }
            }
            BotMessage::PlanDeclined => Reply {
                text: self.safety_plan().declined(lang).to_owned(),
                resources: self.cards(self.safety_plan().resources()),
                quick_replies: Vec::new(),
            },
            BotMessage::PlanDone => Reply {
                text: self.safety_plan().done(lang).to_owned(),
                resources: self.cards(self.safety_plan().resources()),
                quick_replies: Vec::new(),
            },
            BotMessage::AskRating => convert(self.rating_ask(lang)),
            BotMessage::ThanksForRating => convert(self.rating_thanks(lang)),
        };
        if level >= Level::Medium {
            self.with_crisis_lines(&mut reply);
        }
        reply
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

    fn holding(
        &self,
        lang: Lang,
        turn: u32,
        counselors_online: usize,
        position: Option<&Position>,
    ) -> Reply {
        convert(Content::holding(
            self,
            lang,
            turn,
            counselors_online,
            position.map(|p| p.position),
            position.and_then(|p| p.expected_wait_secs),
        ))
    }

    fn counselor_changing(&self, lang: Lang, turn: u32) -> Reply {
        convert(Content::counselor_changing(self, lang, turn))
    }

    fn screener_answer(&self, text: &str) -> Answer {
        match self.screener().classify(text) {
            content::Answer::Yes => Answer::Yes,
            content::Answer::No => Answer::No,
            content::Answer::Unclear => Answer::Unclear,
        }
    }

    fn district(&self, text: &str) -> Option<String> {
        Content::district(self, text).map(|d| d.name_ko.clone())
    }

    fn self_check_score(&self, text: &str) -> Option<u8> {
        self.selfcheck().score(text)
    }

    fn plan_skip(&self, text: &str) -> bool {
        self.safety_plan().is_skip(text)
    }

    fn plan_titles(&self, lang: Lang) -> Vec<String> {
        self.safety_plan().titles(lang)
    }

    fn plan_prefill(&self, lang: Lang) -> Vec<String> {
        self.safety_plan().prefill(lang).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        Content::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("intents"))
            .expect("shipped content loads")
    }

    fn has_109(r: &Reply) -> bool {
        r.resources
            .iter()
            .any(|x| x.value()["phone"].as_str() == Some("109"))
            || r.text.contains("109")
    }

    #[test]
    fn every_reply_at_medium_or_above_carries_109() {
        let c = content();
        let messages = [
            BotMessage::Intent { intent: None },
            BotMessage::Intent {
                intent: Some("greeting".into()),
            },
            BotMessage::Intent {
                intent: Some("sleeplessness".into()),
            },
            BotMessage::Safety {
                level: Level::Medium,
            },
            BotMessage::Ask {
                question: "wish_dead".into(),
                repeat: false,
            },
            BotMessage::Ask {
                question: "plan".into(),
                repeat: true,
            },
            BotMessage::ScreeningDone { unclear: false },
        ];
        for level in [Level::Medium, Level::High, Level::Imminent] {
            for lang in [Lang::Ko, Lang::En] {
                for m in &messages {
                    let r = Responder::bot(&c, m, "음", lang, 1, level);
                    assert!(!r.text.is_empty());
                    assert!(has_109(&r), "{m:?} at {level} in {lang:?}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn after_a_disclosure_the_bot_never_says_it_did_not_understand() {
        let c = content();
        let fallback = Responder::bot(
            &c,
            &BotMessage::Intent { intent: None },
            "음",
            Lang::Ko,
            1,
            Level::None,
        );
        let after = Responder::bot(
            &c,
            &BotMessage::Intent { intent: None },
            "음",
            Lang::Ko,
            1,
            Level::Medium,
        );
        assert_ne!(fallback.text, after.text);
        assert_eq!(after.text, c.safety_reply(Level::Low, Lang::Ko, 1).text);
    }

    #[test]
    fn the_plan_offer_keeps_a_counselor_one_tap_away() {
        let c = content();
        let done = Responder::bot(
            &c,
            &BotMessage::ScreeningDone { unclear: false },
            "아니요",
            Lang::Ko,
            1,
            Level::Medium,
        );
        let offer = Responder::bot(
            &c,
            &BotMessage::PlanOffer,
            "아니요",
            Lang::Ko,
            1,
            Level::Medium,
        );
        assert!(offer.text.contains("안전계획"), "{offer:?}");
        for q in &done.quick_replies {
            assert!(
                offer.quick_replies.contains(q),
                "{q:?} missing from {offer:?}"
            );
        }
        assert!(has_109(&offer));
    }

    #[test]
    fn screening_done_does_not_ask_the_question_again() {
        let c = content();
        let r = Responder::bot(
            &c,
            &BotMessage::ScreeningDone { unclear: false },
            "아니요",
            Lang::Ko,
            1,
            Level::Medium,
        );
        assert_eq!(r.text, c.screener().done(Lang::Ko));
    }
}
