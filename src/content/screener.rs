//! The risk screener, one question at a time, modelled on the C-SSRS screener
//! (`intents/screener.toml`).
//!
//! The file is the screener: `ScreenFlow::from_screener` (in `crate::conversation`) turns
//! its questions, `yes_next`/`no_next`, `yes_level`, `no_handoff` and `second_unclear` into
//! the `ScreenFlow` that the conversation state machine runs, and [`Screener::classify`]
//! reads each reply as yes, no or unclear. Editing the file changes what people are asked, not only the tests:
//!
//! * an unclear answer asks the same question once more (after [`Screener::unclear`]);
//!   a second one follows `second_unclear` (`continue`: read as a no; `handoff`);
//! * a yes raises the level to `yes_level`; at `high` the screener stops and hands off;
//! * a no goes to `no_next`, or hands off at `no_handoff`; with neither, the screener is
//!   over ([`Screener::done`]) and the bot offers a counselor.
//!
//! The level only ever rises: a "no" never lowers it and never ends the check early (after
//! "no" to `thoughts`, the question about past behaviour is still asked).

use serde::{Deserialize, Serialize};

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
    /// A no hands off at this level instead (a past attempt longer ago than three months
    /// is still handed off, at `medium`).
    pub no_handoff: Option<Level>,
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

/// One answer class with its patterns and its own examples.
#[derive(Debug, Clone)]
pub(crate) struct AnswerClass {
    pub class: Answer,
    pub matcher: Matcher,
    pub examples: Vec<String>,
    pub counter_examples: Vec<String>,
    pub line: usize,
}

/// What a second unclear answer to the same question does (`second_unclear` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecondUnclear {
    /// Read it as a "no" and go on (the screener then offers a counselor more firmly).
    #[default]
    Continue,
    /// Hand off: a counselor asks in person.
    HandOff,
}

/// The loaded screener: questions in order, answer classes, and its own messages.
#[derive(Debug, Clone)]
pub struct Screener {
    pub(crate) second_unclear: SecondUnclear,
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

    /// What a second unclear answer does.
    pub fn second_unclear(&self) -> SecondUnclear {
        self.second_unclear
    }
}
