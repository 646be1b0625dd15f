//! The risk screener, one question at a time, modelled on the C-SSRS screener
//! (`intents/screener.toml`).
//!
//! The conversation keeps the current question id and level; for each reply it calls
//! [`Screener::classify`] and then [`Screener::next`], which says what to do:
//!
//! * [`Step::Ask`] — ask this question (the next one, or the same one again after an
//!   unclear answer, with [`Screener::unclear`] before it);
//! * [`Step::Done`] — no more questions; say [`Screener::done`] and carry on at `level`;
//! * [`Step::Handoff`] — a second unclear answer: a counselor should ask in person;
//! * [`Step::Urgent`] — a yes that means `high`: stop asking, say [`Screener::urgent`] and
//!   hand off urgently.
//!
//! The level only ever rises: a "no" never lowers it and never ends the check early (after
//! "no" to `thoughts`, the question about past behaviour is still asked).

use serde::Serialize;

use super::Lang;
use super::matcher::{Matcher, Text};
use crate::triage::Level;

/// How a reply to a screener question reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    /// "응", "네", "있어", "yes".
    Yes,
    /// "아니", "없어", "no".
    No,
    /// "모르겠어", "글쎄", "not sure", or both yes and no, or neither.
    Unclear,
}

impl Answer {
    /// The class name used in `screener.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Yes => "yes",
            Answer::No => "no",
            Answer::Unclear => "unclear",
        }
    }
}

/// One screener question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    /// Stable id (`wish_dead`, `thoughts`, `method`, `intent`, `plan`, `behavior`, `recent`).
    pub id: String,
    /// The question in Korean.
    pub ko: String,
    /// The question in English.
    pub en: String,
    /// The level a yes raises the conversation to (never lowers it).
    pub yes_level: Level,
    /// The question after a yes (`None`: the screener ends).
    pub yes_next: Option<String>,
    /// The question after a no (`None`: the screener ends).
    pub no_next: Option<String>,
}

impl Question {
    /// The question in `lang`.
    pub fn text(&self, lang: Lang) -> &str {
        match lang {
            Lang::Ko => &self.ko,
            Lang::En => &self.en,
        }
    }
}

/// What to do after an answer. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// Ask `question`; `repeat` when it is the same question again after an unclear answer.
    Ask {
        /// The question to ask.
        question: &'a Question,
        /// Same question again: say [`Screener::unclear`] first.
        repeat: bool,
        /// The conversation level now.
        level: Level,
    },
    /// The screener is over.
    Done {
        /// The conversation level now (never below the level given).
        level: Level,
    },
    /// Repeated unclear answers: let a counselor ask in person.
    Handoff {
        /// The conversation level now.
        level: Level,
    },
    /// A yes that means `high` or above: stop and hand off urgently.
    Urgent {
        /// The conversation level now.
        level: Level,
    },
}

impl Step<'_> {
    /// The conversation level after this step.
    pub fn level(&self) -> Level {
        match *self {
            Step::Ask { level, .. }
            | Step::Done { level }
            | Step::Handoff { level }
            | Step::Urgent { level } => level,
        }
    }
}

/// One answer class with its patterns and its own examples.
#[derive(Debug, Clone)]
pub(crate) struct AnswerClass {
    pub class: Answer,
    pub matcher: Matcher,
    pub examples: Vec<String>,
    pub counter_examples: Vec<String>,
    pub line: usize,
}

/// The loaded screener: questions in order, answer classes, and its own messages.
#[derive(Debug, Clone)]
pub struct Screener {
    pub(crate) file: std::path::PathBuf,
    pub(crate) questions: Vec<Question>,
    pub(crate) answers: Vec<AnswerClass>,
    pub(crate) intro: [String; 2],
    pub(crate) unclear: [String; 2],
    pub(crate) done: [String; 2],
    pub(crate) urgent: [String; 2],
}

fn pick(pair: &[String; 2], lang: Lang) -> &str {
    match lang {
        Lang::Ko => &pair[0],
        Lang::En => &pair[1],
    }
}

impl Screener {
    /// The questions in file order; the first is asked first.
    pub fn questions(&self) -> &[Question] {
        &self.questions
    }

    /// The first question.
    pub fn first(&self) -> &Question {
        &self.questions[0]
    }

    /// A question by id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }

    /// Said before the first question.
    pub fn intro(&self, lang: Lang) -> &str {
        pick(&self.intro, lang)
    }

    /// Said before a question asked again after an unclear answer.
    pub fn unclear(&self, lang: Lang) -> &str {
        pick(&self.unclear, lang)
    }

    /// Said when the screener ends without reaching `high`.
    pub fn done(&self, lang: Lang) -> &str {
        pick(&self.done, lang)
    }

    /// Said when an answer means `high`: a counselor is being connected now.
    pub fn urgent(&self, lang: Lang) -> &str {
        pick(&self.urgent, lang)
    }

    /// Reads a reply as yes, no or unclear. Unclear words win; otherwise yes when only yes
    /// patterns match, no when only no patterns match, and unclear when both or neither do
    /// ("아니 있어" is asked again rather than guessed).
    pub fn classify(&self, text: &str) -> Answer {
        let t = Text::new(text);
        let hit = |class: Answer| {
            self.answers
                .iter()
                .filter(|a| a.class == class)
                .any(|a| a.matcher.score(&t) > 0)
        };
        if hit(Answer::Unclear) {
            return Answer::Unclear;
        }
        match (hit(Answer::Yes), hit(Answer::No)) {
            (true, false) => Answer::Yes,
            (false, true) => Answer::No,
            _ => Answer::Unclear,
        }
    }

    /// What follows `answer` to question `at`, given the conversation's `level` and how
    /// many unclear answers this question already had (`unclear_before`, 0 the first time).
    /// An unknown `at` hands off to a counselor.
    pub fn next(&self, at: &str, answer: Answer, level: Level, unclear_before: u32) -> Step<'_> {
        let Some(q) = self.question(at) else {
            return Step::Handoff { level };
        };
        let (level, next) = match answer {
            Answer::Unclear if unclear_before == 0 => {
                return Step::Ask {
                    question: q,
                    repeat: true,
                    level,
                };
            }
            Answer::Unclear => return Step::Handoff { level },
            Answer::Yes => {
                let level = level.max(q.yes_level);
                if level >= Level::High {
                    return Step::Urgent { level };
                }
                (level, q.yes_next.as_deref())
            }
            Answer::No => (level, q.no_next.as_deref()),
        };
        match next.and_then(|id| self.question(id)) {
            Some(question) => Step::Ask {
                question,
                repeat: false,
                level,
            },
            None => Step::Done { level },
        }
    }
}
