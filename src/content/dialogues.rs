//! Two short dialogues beside the screener, each from its own data file:
//!
//! * [`SelfCheck`] — the loneliness self-check (`intents/selfcheck.toml`): the three-item
//!   UCLA Loneliness Scale (Hughes et al. 2004), asked one item at a time; each answer
//!   reads as 1 (hardly ever), 2 (some of the time) or 3 (often), and the result is said
//!   by band (3–5, 6–9) with a next step;
//! * [`PlanText`] — the safety plan's words (`intents/safety_plan.toml`): six Stanley–Brown
//!   steps with their titles and prompts, the offer, the prefilled lines of step 5.
//!
//! The state machine (`crate::conversation`) decides when each is asked; these say it.

use super::matcher::{Matcher, Text};
use super::{Lang, QuickReply, QuickReplyDef};

fn pick(pair: &[String; 2], lang: Lang) -> &str {
    match lang {
        Lang::Ko => &pair[0],
        Lang::En => &pair[1],
    }
}

/// One answer class of the self-check (a score and the words that mean it).
#[derive(Debug, Clone)]
pub(crate) struct ScoreClass {
    pub score: u8,
    pub matcher: Matcher,
    pub examples: Vec<String>,
    pub counter_examples: Vec<String>,
    pub line: usize,
}

/// A result band: scores `min..=max` say this.
#[derive(Debug, Clone)]
pub(crate) struct Band {
    pub min: u8,
    pub max: u8,
    pub text: [String; 2],
    pub resources: Vec<String>,
}

/// The loaded loneliness self-check.
#[derive(Debug, Clone)]
pub struct SelfCheck {
    pub(crate) file: std::path::PathBuf,
    pub(crate) source: String,
    pub(crate) intro: [String; 2],
    pub(crate) unclear: [String; 2],
    pub(crate) stopped: [String; 2],
    pub(crate) result: [String; 2],
    /// The items in order, `[ko, en]`.
    pub(crate) items: Vec<[String; 2]>,
    /// The three answers as quick replies, in score order.
    pub(crate) options: Vec<QuickReplyDef>,
    pub(crate) bands: Vec<Band>,
    pub(crate) result_quick: Vec<QuickReplyDef>,
    pub(crate) answers: Vec<ScoreClass>,
}

impl SelfCheck {
    /// Where the scale comes from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Item `i` (0-based) in `lang`, if there is one.
    pub fn item(&self, i: usize, lang: Lang) -> Option<&str> {
        self.items.get(i).map(|p| pick(p, lang))
    }

    /// Said before the first item.
    pub fn intro(&self, lang: Lang) -> &str {
        pick(&self.intro, lang)
    }

    /// Said before an item asked again.
    pub fn unclear(&self, lang: Lang) -> &str {
        pick(&self.unclear, lang)
    }

    /// Said when the check stops without a score.
    pub fn stopped(&self, lang: Lang) -> &str {
        pick(&self.stopped, lang)
    }

    /// The answers as quick replies (1, 2, 3).
    pub fn options(&self, lang: Lang) -> Vec<QuickReply> {
        self.options.iter().map(|q| q.render(lang)).collect()
    }

    /// The result for a score: the opening line with the score, the band's words, its
    /// resource ids and the quick replies.
    pub fn result(&self, score: u8, lang: Lang) -> (String, &[String], Vec<QuickReply>) {
        let head = pick(&self.result, lang).replace("{score}", &score.to_string());
        let band = self
            .bands
            .iter()
            .find(|b| (b.min..=b.max).contains(&score))
            .or(self.bands.last())
            .expect("the loader checks the bands cover 3-9");
        (
            format!("{head} {}", pick(&band.text, lang)),
            &band.resources,
            self.result_quick.iter().map(|q| q.render(lang)).collect(),
        )
    }

    /// Reads a reply as 1, 2 or 3: a leading digit first ("1 거의 없어요", "2"), otherwise
    /// the one class whose words match (both or none: `None`, asked again).
    pub fn score(&self, text: &str) -> Option<u8> {
        let t = text.trim_start();
        let mut chars = t.chars();
        if let Some(d @ '1'..='3') = chars.next() {
            if !chars.next().is_some_and(|c| c.is_ascii_digit()) {
                return Some(d as u8 - b'0');
            }
        }
        let norm = Text::new(text);
        let mut hit = self
            .answers
            .iter()
            .filter(|a| a.matcher.score(&norm) > 0)
            .map(|a| a.score);
        let first = hit.next()?;
        if hit.all(|s| s == first) {
            Some(first)
        } else {
            None
        }
    }

    /// Every text the self-check can send, for the safe-messaging checks.
    pub fn texts(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, lang) in [(0, "ko"), (1, "en")] {
            for (name, pair) in [
                ("intro", &self.intro),
                ("unclear", &self.unclear),
                ("stopped", &self.stopped),
                ("result", &self.result),
            ] {
                out.push((format!("selfcheck {name}_{lang}"), pair[i].clone()));
            }
            for (n, item) in self.items.iter().enumerate() {
                out.push((format!("selfcheck item {n} {lang}"), item[i].clone()));
            }
            for b in &self.bands {
                out.push((
                    format!("selfcheck band {}-{} {lang}", b.min, b.max),
                    b.text[i].clone(),
                ));
            }
            for q in self.options.iter().chain(&self.result_quick) {
                out.push((format!("selfcheck quick_reply {lang}"), q.label[i].clone()));
                out.push((format!("selfcheck quick_reply {lang}"), q.text[i].clone()));
            }
        }
        out
    }
}

/// One safety-plan step's words.
#[derive(Debug, Clone)]
pub(crate) struct PlanStep {
    pub title: [String; 2],
    pub ask: [String; 2],
}

/// The safety plan's words.
#[derive(Debug, Clone)]
pub struct PlanText {
    pub(crate) source: String,
    pub(crate) offer: [String; 2],
    pub(crate) yes: QuickReplyDef,
    pub(crate) no: QuickReplyDef,
    pub(crate) skip: QuickReplyDef,
    pub(crate) skip_words: Vec<String>,
    pub(crate) declined: [String; 2],
    pub(crate) done: [String; 2],
    pub(crate) prefill: [Vec<String>; 2],
    pub(crate) resources: Vec<String>,
    pub(crate) steps: Vec<PlanStep>,
}

impl PlanText {
    /// Where the plan's structure comes from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The offer after the screener ended at `medium`, with its yes/no quick replies.
    pub fn offer(&self, lang: Lang) -> (&str, Vec<QuickReply>) {
        (
            pick(&self.offer, lang),
            vec![self.yes.render(lang), self.no.render(lang)],
        )
    }

    /// Said when the person said no to the plan.
    pub fn declined(&self, lang: Lang) -> &str {
        pick(&self.declined, lang)
    }

    /// Said when the walk is over.
    pub fn done(&self, lang: Lang) -> &str {
        pick(&self.done, lang)
    }

    /// The resource ids the plan's messages carry (109, 1577-0199).
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The six step titles.
    pub fn titles(&self, lang: Lang) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| pick(&s.title, lang).to_owned())
            .collect()
    }

    /// Step `step`'s prompt (1-based), with the skip quick reply.
    pub fn ask(&self, step: u8, lang: Lang) -> (&str, Vec<QuickReply>) {
        let text = (step as usize)
            .checked_sub(1)
            .and_then(|i| self.steps.get(i))
            .map_or("", |s| pick(&s.ask, lang));
        (text, vec![self.skip.render(lang)])
    }

    /// The prefilled lines of step 5.
    pub fn prefill(&self, lang: Lang) -> &[String] {
        match lang {
            Lang::Ko => &self.prefill[0],
            Lang::En => &self.prefill[1],
        }
    }

    /// Whether a reply in the walk means "skip this step".
    pub fn is_skip(&self, text: &str) -> bool {
        let t: String = text
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        !t.is_empty() && self.skip_words.contains(&t)
    }

    /// Every text the plan can send, for the safe-messaging checks.
    pub fn texts(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, lang) in [(0, "ko"), (1, "en")] {
            for (name, pair) in [
                ("offer", &self.offer),
                ("declined", &self.declined),
                ("done", &self.done),
            ] {
                out.push((format!("safety_plan {name}_{lang}"), pair[i].clone()));
            }
            for (n, s) in self.steps.iter().enumerate() {
                out.push((
                    format!("safety_plan step {} title_{lang}", n + 1),
                    s.title[i].clone(),
                ));
                out.push((
                    format!("safety_plan step {} ask_{lang}", n + 1),
                    s.ask[i].clone(),
                ));
            }
            for p in &self.prefill[i] {
                out.push((format!("safety_plan prefill_{lang}"), p.clone()));
            }
            for q in [&self.yes, &self.no, &self.skip] {
                out.push((
                    format!("safety_plan quick_reply {lang}"),
                    q.label[i].clone(),
                ));
                out.push((format!("safety_plan quick_reply {lang}"), q.text[i].clone()));
            }
        }
        out
    }
}
