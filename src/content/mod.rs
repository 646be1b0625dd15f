//! Content: the words the bot says and the help it points to, loaded from `intents/`.
//!
//! Triage ([`crate::triage`]) decides *how worried* to be and *which intent* a message is;
//! this module decides *what to say*. It is pure: everything is loaded and checked once
//! by [`Content::load`], after which no call does I/O, locks or allocates beyond its
//! result. [`Content`] is `Send + Sync`; build it once and share it in an `Arc`.
//!
//! * [`Content::greeting`], [`Content::reply`] — the welcome, and the answer to an intent.
//!   `reply` takes the message text too: the `district`, `prescription` and `program`
//!   intents pick the specific answer from it (which district, which mood, which
//!   interest), and ask with quick replies when the text names none.
//! * [`Content::safety_reply`] — what the bot says at a risk level, and
//!   [`Content::queue_notice`] while someone waits for a counselor.
//! * [`Content::screener`] — the C-SSRS-style screener, one question at a time.
//! * [`Content::resources`] — every line and agency, each with its source.
//! * [`Content::canned_responses`] — short snippets for the counselor console.
//!
//! The `turn` argument picks among a reply's variants deterministically (`turn % n`), so
//! the bot does not repeat itself word for word and tests stay reproducible.
//!
//! # Loading is strict
//!
//! An unknown field, a missing reply in either language, an unknown or unverified resource
//! id, a phone number not shaped like a Korean number, a screener question pointing at a
//! missing question, or a district count other than 25 stops the load with a
//! [`LoadError`] naming the file, the line and the id. The format of every file is in
//! `intents/README.md`.

pub mod dialogues;
mod load;
pub mod matcher;
pub mod screener;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use dialogues::{PlanText, SelfCheck};
pub use load::DATA_FILES;
pub use screener::{Answer, Question, Screener, SecondUnclear};

use crate::triage::{ExampleFailure, Level, LoadError};
use load::At;
use matcher::{Matcher, Text};

/// The language of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Korean (the default).
    #[default]
    Ko,
    /// English.
    En,
}

impl Lang {
    /// `ko` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Ko => "ko",
            Lang::En => "en",
        }
    }

    /// Parses `ko`/`en` (anything else is Korean, the default).
    pub fn parse(s: &str) -> Lang {
        if s.eq_ignore_ascii_case("en") {
            Lang::En
        } else {
            Lang::Ko
        }
    }

    /// Korean if the text holds any Hangul, English if it holds Latin letters and no
    /// Hangul, Korean otherwise (emoji, digits, an empty message).
    pub fn detect(text: &str) -> Lang {
        let hangul = |c: char| {
            ('\u{AC00}'..='\u{D7A3}').contains(&c)
                || ('\u{1100}'..='\u{11FF}').contains(&c)
                || ('\u{3131}'..='\u{318E}').contains(&c)
        };
        if text.chars().any(hangul) {
            Lang::Ko
        } else if text.chars().any(|c| c.is_ascii_alphabetic()) {
            Lang::En
        } else {
            Lang::Ko
        }
    }

    fn index(self) -> usize {
        match self {
            Lang::Ko => 0,
            Lang::En => 1,
        }
    }
}

/// What the bot sends: the text, the resources to show (as cards; tap-to-call only for
/// [`Resource::phone`]), and quick replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// The message text (may hold line breaks).
    pub text: String,
    /// Resources to show with it. Never holds an unverified resource.
    pub resources: Vec<Arc<Resource>>,
    /// Buttons: `label` is shown, `text` is sent as the person's message when tapped.
    pub quick_replies: Vec<QuickReply>,
}

/// A quick-reply button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickReply {
    /// Shown on the button.
    pub label: String,
    /// Sent as the person's message when tapped (triage reads it like any message).
    pub text: String,
}

/// A phone line, program or agency (`intents/resources.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    /// Stable id.
    pub id: String,
    /// Name in Korean.
    pub name_ko: String,
    /// Name in English.
    pub name_en: String,
    /// The number to dial, shaped like a Korean number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// A menu key to press after dialling (외로움안녕120: 120, then 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then_press: Option<String>,
    /// A web address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Opening hours, in English.
    pub hours: String,
    /// Opening hours, in Korean ("24시간"): what the Korean UI shows.
    pub hours_ko: String,
    /// Languages served.
    pub languages: Vec<String>,
    /// What it is for, in Korean.
    pub purpose_ko: String,
    /// What it is for, in English.
    pub purpose_en: String,
    /// Where the facts come from.
    pub source: String,
    /// `false`: still to be re-checked; never attached to a reply.
    pub verified: bool,
    /// Shown at once when a conversation turns urgent (109, 119, 1577-0199).
    pub emergency: bool,
    /// This resource as the JSON card clients get, serialized once at load.
    #[serde(skip)]
    card: Card,
}

impl Resource {
    /// The card clients get for this resource (its JSON, serialized once at load).
    pub fn card(&self) -> Card {
        self.card.clone()
    }
}

/// A resource card as JSON, serialized once when the content loads.
///
/// Why: a reply carries one to three cards, each about 500 bytes in two languages, and
/// converting them to `serde_json::Value` and escaping them again for every reply, every
/// frame and every stored record was a tenth of the server's CPU under load
/// (`BENCHMARKS.md`). A `Card` is shared text that serializes as itself.
///
/// Reading one back (from a stored transcript) goes through `serde_json::Value`, because
/// the transcript's event enum is internally tagged and serde buffers such content, which
/// a raw value cannot be read from. Reads are rare; writes are per message.
#[derive(Clone)]
pub struct Card(Arc<RawValue>);

impl Card {
    /// The card of any serializable value.
    ///
    /// # Panics
    /// If `value` fails to serialize (plain data never does).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Card {
        let raw = serde_json::value::to_raw_value(value).expect("card serializes");
        Card(Arc::from(raw))
    }

    /// The card's JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// The card parsed (for tests and tools; never on the message path).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.json()).unwrap_or_default()
    }
}

impl Default for Card {
    fn default() -> Self {
        Card::of(&serde_json::Value::Null)
    }
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.json())
    }
}

impl PartialEq for Card {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for Card {}

impl Serialize for Card {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Card {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Card::of(&value))
    }
}

/// A counselor snippet for the console (`intents/canned.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Canned {
    /// Stable id.
    pub id: String,
    /// Korean text.
    pub ko: String,
    /// English text.
    pub en: String,
}

/// Intents whose answer depends on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handler {
    /// Seoul's 25 districts (`intents/districts.toml`).
    District,
    /// 마음약방 moods (`intents/prescriptions.toml`).
    Prescription,
    /// 서울연결처방 interests (`intents/programs.toml`).
    Program,
}

#[derive(Debug, Clone)]
pub(crate) struct QuickReplyDef {
    label: [String; 2],
    text: [String; 2],
}

impl QuickReplyDef {
    pub(crate) fn render(&self, lang: Lang) -> QuickReply {
        QuickReply {
            label: self.label[lang.index()].clone(),
            text: self.text[lang.index()].clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    reply: [Vec<String>; 2],
    resources: Vec<String>,
    quick: Vec<QuickReplyDef>,
}

impl Block {
    fn variant(&self, lang: Lang, turn: u32) -> &str {
        let v = &self.reply[lang.index()];
        &v[turn as usize % v.len()]
    }
}

/// An intent's content (the matching half lives in triage).
#[derive(Debug, Clone)]
pub struct Intent {
    /// Stable id, as triage reports it.
    pub id: String,
    /// Set for intents whose answer depends on the text.
    pub handler: Option<Handler>,
    /// The answer when nothing else matched.
    pub fallback: bool,
    /// Must make this the top intent (run by triage; counted by the content tests).
    pub examples: Vec<String>,
    /// Must not match this intent.
    pub counter_examples: Vec<String>,
    block: Block,
    at: At,
}

impl Intent {
    /// The reply variants in `lang`.
    pub fn replies(&self, lang: Lang) -> &[String] {
        &self.block.reply[lang.index()]
    }

    /// Ids of the resources attached to every reply.
    pub fn resource_ids(&self) -> &[String] {
        &self.block.resources
    }

    /// The quick replies in `lang`.
    pub fn quick_replies(&self, lang: Lang) -> Vec<QuickReply> {
        self.block.quick.iter().map(|q| q.render(lang)).collect()
    }

    /// The file and line where the intent is defined.
    pub fn location(&self) -> (&Path, usize) {
        (&self.at.file, self.at.line)
    }
}

/// One 마음약방 prescription: a message and a small action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prescription {
    /// The message, Korean.
    pub ko: String,
    /// The message, English.
    pub en: String,
    /// The small action, Korean.
    pub suggestion_ko: String,
    /// The small action, English.
    pub suggestion_en: String,
}

/// A 마음약방 mood and its prescriptions.
#[derive(Debug, Clone)]
pub struct Mood {
    /// `loneliness`, `anxiety`, `sadness`, `anger`, `lethargy`, `sleeplessness`.
    pub id: String,
    /// The prescriptions, in file order.
    pub prescriptions: Vec<Prescription>,
    label: [String; 2],
    text: [String; 2],
    matcher: Matcher,
    examples: Vec<String>,
    counter_examples: Vec<String>,
    at: At,
}

impl Mood {
    /// The mood's name in `lang`.
    pub fn label(&self, lang: Lang) -> &str {
        &self.label[lang.index()]
    }

    /// The message its quick reply sends.
    pub fn quick_reply_text(&self, lang: Lang) -> &str {
        &self.text[lang.index()]
    }
}

/// A 서울연결처방 program area by interest.
#[derive(Debug, Clone)]
pub struct Program {
    /// `sport`, `culture`, `art`, `self_care`, `healing`, `mental_health`.
    pub id: String,
    domain: [String; 2],
    label: [String; 2],
    text: [String; 2],
    description: [String; 2],
    resources: Vec<String>,
    matcher: Matcher,
    examples: Vec<String>,
    counter_examples: Vec<String>,
    at: At,
}

impl Program {
    /// The interest's name in `lang`.
    pub fn label(&self, lang: Lang) -> &str {
        &self.label[lang.index()]
    }

    /// One of the four 서울연결처방 domains (신체건강, 문화예술, 감정치유, 일상관리).
    pub fn domain(&self, lang: Lang) -> &str {
        &self.domain[lang.index()]
    }

    /// The description in `lang`.
    pub fn description(&self, lang: Lang) -> &str {
        &self.description[lang.index()]
    }

    /// The message its quick reply sends.
    pub fn quick_reply_text(&self, lang: Lang) -> &str {
        &self.text[lang.index()]
    }
}

/// One of Seoul's 25 districts.
#[derive(Debug, Clone)]
pub struct District {
    /// Romanized id (`gwanak`).
    pub id: String,
    /// `관악구`.
    pub name_ko: String,
    /// `Gwanak-gu`.
    pub name_en: String,
    /// Must be recognised as this district.
    pub examples: Vec<String>,
    /// Must not be recognised as this district.
    pub counter_examples: Vec<String>,
    /// Its own verified agencies (resource ids); empty: the city line (120) routes it.
    pub agencies: Vec<String>,
    patterns: Vec<regex::Regex>,
    at: At,
}

impl District {
    /// Where in the spaced form the district is first named, if it is.
    fn find(&self, text: &Text) -> Option<usize> {
        self.patterns
            .iter()
            .filter_map(|r| r.find(text.spaced()).map(|m| m.start()))
            .min()
    }
}

#[derive(Debug, Clone)]
struct Pharmacy {
    template: [String; 2],
    again_label: [String; 2],
    other: QuickReplyDef,
    moods: Vec<Mood>,
}

#[derive(Debug, Clone)]
struct Catalog {
    template: [String; 2],
    referral: [String; 2],
    other: QuickReplyDef,
    programs: Vec<Program>,
}

#[derive(Debug, Clone)]
struct Atlas {
    answer: [String; 2],
    /// One line per agency of the district's own: `{agency}`.
    agency: [String; 2],
    /// What a district without a listed agency says instead.
    no_agency: [String; 2],
    resources: Vec<String>,
    districts: Vec<District>,
}

/// Everything the bot can say, loaded and checked once. See the module docs.
#[derive(Debug, Clone)]
pub struct Content {
    intents: Vec<Intent>,
    resources: Vec<Arc<Resource>>,
    welcome: Block,
    rating_ask: Block,
    rating_thanks: Block,
    /// low, medium, high, imminent.
    safety: [Block; 4],
    waiting: [Vec<String>; 2],
    waiting_resources: Vec<String>,
    holding: [Vec<String>; 2],
    holding_new: [Vec<String>; 2],
    holding_offline: [Vec<String>; 2],
    changing: [Vec<String>; 2],
    /// Keep waiting / talk with the bot meanwhile, per language.
    wait_choice: [[QuickReply; 2]; 2],
    offline: [Vec<String>; 2],
    offline_resources: Vec<String>,
    screener: Screener,
    pharmacy: Pharmacy,
    catalog: Catalog,
    atlas: Atlas,
    canned: Vec<Canned>,
    selfcheck: SelfCheck,
    safety_plan: PlanText,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Content>();
    assert_send_sync::<Reply>();
};

/// Whether `phone` is shaped like a Korean number: a 3–4 digit special number (109, 1388),
/// a 15xx/16xx-xxxx representative number, or an area-code number (02-xxx(x)-xxxx,
/// 0xx-xxx(x)-xxxx).
pub fn phone_shape_ok(phone: &str) -> bool {
    let parts: Vec<&str> = phone.split('-').collect();
    let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    match parts.as_slice() {
        [special] => digits(special, 3..=4) && special.starts_with('1'),
        [head, tail] => {
            digits(head, 4..=4)
                && (head.starts_with("15") || head.starts_with("16"))
                && digits(tail, 4..=4)
        }
        [area, mid, tail] => {
            let area_ok = *area == "02"
                || (digits(area, 3..=3) && area.starts_with('0') && !area.starts_with("00"));
            area_ok && digits(mid, 3..=4) && digits(tail, 4..=4)
        }
        _ => false,
    }
}

fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

impl Content {
    /// Loads and checks every file of the intents directory (see `intents/README.md`).
    ///
    /// # Errors
    /// A [`LoadError`] naming the file, line and id of the first problem.
    pub fn load(intents_dir: &Path) -> Result<Content, LoadError> {
        load::load(intents_dir)
    }

    fn resolve(&self, ids: &[String]) -> Vec<Arc<Resource>> {
        let mut out: Vec<Arc<Resource>> = Vec::with_capacity(ids.len());
        for id in ids {
            if out.iter().any(|r| &r.id == id) {
                continue;
            }
            // The loader guarantees every id exists and is verified.
            if let Some(r) = self.resource(id).filter(|r| r.verified) {
                out.push(r.clone());
            }
        }
        out
    }

    fn block_reply(&self, block: &Block, lang: Lang, turn: u32) -> Reply {
        Reply {
            text: block.variant(lang, turn).to_owned(),
            resources: self.resolve(&block.resources),
            quick_replies: block.quick.iter().map(|q| q.render(lang)).collect(),
        }
    }

    /// Asks for the optional 1–5 rating after a counselor closed the conversation.
    pub fn rating_ask(&self, lang: Lang) -> Reply {
        self.block_reply(&self.rating_ask, lang, 0)
    }

    /// Thanks for a rating.
    pub fn rating_thanks(&self, lang: Lang) -> Reply {
        self.block_reply(&self.rating_thanks, lang, 0)
    }

    /// The welcome message shown when a chat opens.
    pub fn greeting(&self, lang: Lang) -> Reply {
        self.block_reply(&self.welcome, lang, 0)
    }

    /// The answer to `intent` (as triage named it; `None` or an unknown id: the fallback).
    /// `text` lets the district, prescription and program intents pick the specific answer;
    /// `turn` picks the variant.
    pub fn reply(&self, intent: Option<&str>, text: &str, lang: Lang, turn: u32) -> Reply {
        let intent = intent
            .and_then(|id| self.intent(id))
            .unwrap_or_else(|| self.fallback());
        match intent.handler {
            Some(Handler::District) => self.district_reply(intent, text, lang, turn),
            Some(Handler::Prescription) => self.prescription_reply(intent, text, lang, turn),
            Some(Handler::Program) => self.program_reply(intent, text, lang, turn),
            None => self.block_reply(&intent.block, lang, turn),
        }
    }

    fn district_reply(&self, intent: &Intent, text: &str, lang: Lang, turn: u32) -> Reply {
        let Some(d) = self.district(text) else {
            return self.block_reply(&intent.block, lang, turn);
        };
        let names = [
            ("name_ko", d.name_ko.as_str()),
            ("name_en", d.name_en.as_str()),
        ];
        // Its own agencies where the content lists verified ones; otherwise plain words
        // that the city line routes it (never a guessed number).
        let local = if d.agencies.is_empty() {
            render(&self.atlas.no_agency[lang.index()], &names)
        } else {
            self.resolve(&d.agencies)
                .iter()
                .map(|r| {
                    let name = if lang == Lang::En {
                        &r.name_en
                    } else {
                        &r.name_ko
                    };
                    let purpose = if lang == Lang::En {
                        &r.purpose_en
                    } else {
                        &r.purpose_ko
                    };
                    let agency = format!("{name}: {purpose}");
                    render(
                        &self.atlas.agency[lang.index()],
                        &[names[0], names[1], ("agency", agency.as_str())],
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let text = render(
            &self.atlas.answer[lang.index()],
            &[names[0], names[1], ("local", local.as_str())],
        );
        let mut resources = self.resolve(&d.agencies);
        resources.extend(self.resolve(&self.atlas.resources));
        Reply {
            text,
            resources,
            quick_replies: intent.quick_replies(lang),
        }
    }

    fn prescription_reply(&self, intent: &Intent, text: &str, lang: Lang, turn: u32) -> Reply {
        let p = &self.pharmacy;
        let Some(mood) = self.mood(text) else {
            let mut reply = self.block_reply(&intent.block, lang, turn);
            reply.quick_replies = p
                .moods
                .iter()
                .map(|m| QuickReply {
                    label: m.label(lang).to_owned(),
                    text: m.quick_reply_text(lang).to_owned(),
                })
                .collect();
            return reply;
        };
        let x = &mood.prescriptions[turn as usize % mood.prescriptions.len()];
        let (message, suggestion) = match lang {
            Lang::Ko => (&x.ko, &x.suggestion_ko),
            Lang::En => (&x.en, &x.suggestion_en),
        };
        Reply {
            text: render(
                &p.template[lang.index()],
                &[
                    ("mood", mood.label(lang)),
                    ("message", message),
                    ("suggestion", suggestion),
                ],
            ),
            resources: self.resolve(&intent.block.resources),
            quick_replies: vec![
                QuickReply {
                    label: p.again_label[lang.index()].clone(),
                    text: mood.quick_reply_text(lang).to_owned(),
                },
                p.other.render(lang),
            ],
        }
    }

    fn program_reply(&self, intent: &Intent, text: &str, lang: Lang, turn: u32) -> Reply {
        let c = &self.catalog;
        let Some(program) = self.program(text) else {
            let mut reply = self.block_reply(&intent.block, lang, turn);
            reply.quick_replies = c
                .programs
                .iter()
                .map(|p| QuickReply {
                    label: p.label(lang).to_owned(),
                    text: p.quick_reply_text(lang).to_owned(),
                })
                .collect();
            return reply;
        };
        let mut ids = intent.block.resources.clone();
        ids.extend(program.resources.iter().cloned());
        Reply {
            text: render(
                &c.template[lang.index()],
                &[
                    ("label", program.label(lang)),
                    ("domain", program.domain(lang)),
                    ("description", program.description(lang)),
                    ("referral", &c.referral[lang.index()]),
                ],
            ),
            resources: self.resolve(&ids),
            quick_replies: vec![c.other.render(lang)],
        }
    }

    /// What the bot says at a risk level. `none` and `low`: a gentle check-in; `medium`:
    /// gentle and direct, with 109; `high`: a counselor is being connected, 109;
    /// `imminent`: leads with 119 and 109, urges emergency help now, another person, and
    /// distance from anything that could cause harm; a counselor is coming.
    pub fn safety_reply(&self, level: Level, lang: Lang, turn: u32) -> Reply {
        let i = match level {
            Level::None | Level::Low => 0,
            Level::Medium => 1,
            Level::High => 2,
            Level::Imminent => 3,
        };
        self.block_reply(&self.safety[i], lang, turn)
    }

    /// Said while someone waits for a counselor. `position` is 1 for next in line. With no
    /// counselor online it says so plainly and gives 109, 1577-0199 and 119.
    pub fn queue_notice(&self, lang: Lang, position: usize, counselors_online: usize) -> Reply {
        let (variants, ids) = if counselors_online == 0 {
            (&self.offline, &self.offline_resources)
        } else {
            (&self.waiting, &self.waiting_resources)
        };
        let v = &variants[lang.index()];
        let template = &v[position % v.len()];
        Reply {
            text: render(
                template,
                &[
                    ("position", &position.to_string()),
                    ("counselors", &counselors_online.to_string()),
                ],
            ),
            resources: self.resolve(ids),
            quick_replies: Vec::new(),
        }
    }

    /// A holding line while waiting for a counselor: never counselling, says whether anyone
    /// is online (`counselors_online`, with `position` and `expected_wait_secs` when known)
    /// and carries the 24-hour lines; with nobody online it offers to keep waiting or to
    /// talk with the bot meanwhile (the place in the queue is kept).
    pub fn holding(
        &self,
        lang: Lang,
        turn: u32,
        counselors_online: usize,
        position: Option<usize>,
        expected_wait_secs: Option<u64>,
    ) -> Reply {
        let (variants, ids, choice) = if counselors_online == 0 {
            (&self.holding_offline, &self.offline_resources, true)
        } else if position.is_none() {
            (&self.holding_new, &self.waiting_resources, false)
        } else {
            (&self.holding, &self.waiting_resources, false)
        };
        let v = &variants[lang.index()];
        let template = &v[turn as usize % v.len()];
        let wait_min = expected_wait_secs
            .map_or_else(|| "-".to_owned(), |s| s.div_ceil(60).max(1).to_string());
        Reply {
            text: render(
                template,
                &[
                    (
                        "position",
                        &position.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                    ),
                    ("counselors", &counselors_online.to_string()),
                    ("minutes", &wait_min),
                ],
            ),
            resources: self.resolve(ids),
            quick_replies: if choice {
                self.wait_choice[lang.index()].to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// "상담사 선생님이 바뀌고 있어요, 잠시만요": a counselor sent the conversation back to the
    /// queue or passed it to a colleague.
    pub fn counselor_changing(&self, lang: Lang, turn: u32) -> Reply {
        let v = &self.changing[lang.index()];
        Reply {
            text: v[turn as usize % v.len()].clone(),
            resources: self.resolve(&self.waiting_resources),
            quick_replies: Vec::new(),
        }
    }

    /// The risk screener.
    pub fn screener(&self) -> &Screener {
        &self.screener
    }

    /// The loneliness self-check (`intents/selfcheck.toml`).
    pub fn selfcheck(&self) -> &SelfCheck {
        &self.selfcheck
    }

    /// The safety plan's words (`intents/safety_plan.toml`).
    pub fn safety_plan(&self) -> &PlanText {
        &self.safety_plan
    }

    /// A resource by id (unverified ones included, for staff).
    pub fn resource(&self, id: &str) -> Option<&Arc<Resource>> {
        self.resources.iter().find(|r| r.id == id)
    }

    /// Every resource in file order (unverified ones included, for staff).
    pub fn resources(&self) -> &[Arc<Resource>] {
        &self.resources
    }

    /// The lines shown at once when a conversation turns urgent: 109, 119, 1577-0199.
    pub fn emergency_resources(&self) -> Vec<&Arc<Resource>> {
        self.resources
            .iter()
            .filter(|r| r.emergency && r.verified)
            .collect()
    }

    /// Short counselor snippets for the console.
    pub fn canned_responses(&self) -> &[Canned] {
        &self.canned
    }

    /// Every intent, in file order (files sorted by name).
    pub fn intents(&self) -> &[Intent] {
        &self.intents
    }

    /// An intent by id.
    pub fn intent(&self, id: &str) -> Option<&Intent> {
        self.intents.iter().find(|i| i.id == id)
    }

    fn fallback(&self) -> &Intent {
        self.intents
            .iter()
            .find(|i| i.fallback)
            .expect("the loader checks there is exactly one fallback intent")
    }

    /// The district named in `text` (the first one named, if several), or `None`.
    pub fn district(&self, text: &str) -> Option<&District> {
        let t = Text::new(text);
        self.atlas
            .districts
            .iter()
            .filter_map(|d| d.find(&t).map(|at| (at, d)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, d)| d)
    }

    /// Seoul's 25 districts.
    pub fn districts(&self) -> &[District] {
        &self.atlas.districts
    }

    /// The 마음약방 mood named in `text`, or `None`.
    pub fn mood(&self, text: &str) -> Option<&Mood> {
        let t = Text::new(text);
        matcher::best(&self.pharmacy.moods, |m| &m.matcher, &t).map(|i| &self.pharmacy.moods[i])
    }

    /// The 마음약방 moods.
    pub fn moods(&self) -> &[Mood] {
        &self.pharmacy.moods
    }

    /// The 서울연결처방 interest named in `text`, or `None`.
    pub fn program(&self, text: &str) -> Option<&Program> {
        let t = Text::new(text);
        matcher::best(&self.catalog.programs, |p| &p.matcher, &t).map(|i| &self.catalog.programs[i])
    }

    /// The 서울연결처방 interests.
    pub fn programs(&self) -> &[Program] {
        &self.catalog.programs
    }

    /// Every text the bot or a counselor snippet can send, with where it comes from: intent
    /// replies, quick replies, the welcome, safety replies, queue notices, the screener,
    /// prescriptions, programs, the district answer (for every district) and canned
    /// snippets. For safe-messaging checks.
    pub fn all_texts(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut block = |name: &str, b: &Block| {
            for (lang, v) in ["ko", "en"].iter().zip(&b.reply) {
                for t in v {
                    out.push((format!("{name} reply_{lang}"), t.clone()));
                }
            }
            for q in &b.quick {
                for (lang, i) in [("ko", 0), ("en", 1)] {
                    out.push((
                        format!("{name} quick_reply label_{lang}"),
                        q.label[i].clone(),
                    ));
                    out.push((format!("{name} quick_reply text_{lang}"), q.text[i].clone()));
                }
            }
        };
        for i in &self.intents {
            block(&format!("intent {}", i.id), &i.block);
        }
        block("welcome", &self.welcome);
        for (b, name) in self
            .safety
            .iter()
            .zip(["low", "medium", "high", "imminent"])
        {
            block(&format!("safety.{name}"), b);
        }
        for (lang, v) in [("ko", &self.waiting[0]), ("en", &self.waiting[1])] {
            out.extend(
                v.iter()
                    .map(|t| (format!("queue waiting_{lang}"), t.clone())),
            );
        }
        for (lang, v) in [("ko", &self.offline[0]), ("en", &self.offline[1])] {
            out.extend(
                v.iter()
                    .map(|t| (format!("queue offline_{lang}"), t.clone())),
            );
        }
        let s = &self.screener;
        for lang in [Lang::Ko, Lang::En] {
            for (name, t) in [
                ("intro", s.intro(lang)),
                ("unclear", s.unclear(lang)),
                ("done", s.done(lang)),
                ("urgent", s.urgent(lang)),
            ] {
                out.push((format!("screener {name}"), t.to_owned()));
            }
            for q in s.questions() {
                out.push((
                    format!("screener question {}", q.id),
                    q.text(lang).to_owned(),
                ));
            }
            for m in self.moods() {
                for turn in 0..m.prescriptions.len() as u32 {
                    let r = self.reply(
                        Some(self.handler_intent(Handler::Prescription)),
                        m.quick_reply_text(lang),
                        lang,
                        turn,
                    );
                    out.push((format!("prescription {}", m.id), r.text));
                    for q in r.quick_replies {
                        out.push((format!("prescription {} quick_reply", m.id), q.label));
                        out.push((format!("prescription {} quick_reply", m.id), q.text));
                    }
                }
            }
            for p in self.programs() {
                let r = self.reply(
                    Some(self.handler_intent(Handler::Program)),
                    p.quick_reply_text(lang),
                    lang,
                    0,
                );
                out.push((format!("program {}", p.id), r.text));
            }
            for d in self.districts() {
                let r = self.reply(
                    Some(self.handler_intent(Handler::District)),
                    &d.name_ko,
                    lang,
                    0,
                );
                out.push((format!("district {}", d.id), r.text));
            }
            for intent in [Handler::Prescription, Handler::Program] {
                let r = self.reply(Some(self.handler_intent(intent)), "", lang, 0);
                for q in r.quick_replies {
                    out.push((format!("{intent:?} ask quick_reply"), q.label));
                    out.push((format!("{intent:?} ask quick_reply"), q.text));
                }
            }
        }
        for c in &self.canned {
            out.push((format!("canned {}", c.id), c.ko.clone()));
            out.push((format!("canned {}", c.id), c.en.clone()));
        }
        out.extend(self.selfcheck.texts());
        out.extend(self.safety_plan.texts());
        out
    }

    fn handler_intent(&self, h: Handler) -> &str {
        self.intents
            .iter()
            .find(|i| i.handler == Some(h))
            .map(|i| i.id.as_str())
            .expect("the loader checks there is one intent per handler")
    }

    /// Runs the examples and counter-examples of the moods, programs, districts and screener
    /// answer classes (intent examples are triage's: [`crate::triage::TriageEngine::check_examples`]).
    /// Returns the ones that failed.
    pub fn check_examples(&self) -> Vec<ExampleFailure> {
        let mut failures = Vec::new();
        let mut check = |at: &At,
                         id: &str,
                         examples: &[String],
                         counters: &[String],
                         got: &dyn Fn(&str) -> Option<String>| {
            for (kind, list, want) in [
                ("example", examples, true),
                ("counter_example", counters, false),
            ] {
                for ex in list {
                    let found = got(ex);
                    if (found.as_deref() == Some(id)) != want {
                        failures.push(ExampleFailure {
                            file: at.file.clone(),
                            line: at.line,
                            id: id.to_owned(),
                            kind,
                            text: ex.clone(),
                            got: found.unwrap_or_else(|| "-".into()),
                        });
                    }
                }
            }
        };
        for m in self.moods() {
            let got = |t: &str| self.mood(t).map(|m| format!("mood {}", m.id));
            check(
                &m.at,
                &format!("mood {}", m.id),
                &m.examples,
                &m.counter_examples,
                &got,
            );
        }
        for p in self.programs() {
            let got = |t: &str| self.program(t).map(|p| format!("program {}", p.id));
            check(
                &p.at,
                &format!("program {}", p.id),
                &p.examples,
                &p.counter_examples,
                &got,
            );
        }
        for d in self.districts() {
            let got = |t: &str| self.district(t).map(|d| format!("district {}", d.id));
            check(
                &d.at,
                &format!("district {}", d.id),
                &d.examples,
                &d.counter_examples,
                &got,
            );
        }
        let s = &self.screener;
        for a in &s.answers {
            let at = At {
                file: s.file.clone(),
                line: a.line,
            };
            let got = |t: &str| Some(format!("answer {}", s.classify(t).as_str()));
            let id = format!("answer {}", a.class.as_str());
            check(&at, &id, &a.examples, &a.counter_examples, &got);
        }
        let sc = &self.selfcheck;
        for a in &sc.answers {
            let at = At {
                file: sc.file.clone(),
                line: a.line,
            };
            let got = |t: &str| sc.score(t).map(|s| format!("selfcheck score {s}"));
            let id = format!("selfcheck score {}", a.score);
            check(&at, &id, &a.examples, &a.counter_examples, &got);
        }
        failures
    }
}
