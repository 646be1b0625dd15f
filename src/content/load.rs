//! Loading `intents/`: the file schemas (strict: an unknown field is an error) and the
//! cross-checks. Errors name the file, the line and the id, as triage's do.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::matcher::{Matcher, Raw};
use super::screener::{Answer, AnswerClass, Question, Screener};
use super::{
    Block, Canned, Card, Content, District, Handler, Intent, Mood, Prescription, Program,
    QuickReplyDef, Resource, phone_shape_ok,
};
use crate::triage::normalize::normalize;
use crate::triage::rules::{Ctx, read};
use crate::triage::{Level, LoadError};

/// The data files every intents directory must hold, by name. Every other `*.toml` holds
/// only `[[intent]]` tables.
pub const DATA_FILES: [&str; 9] = [
    "resources.toml",
    "messages.toml",
    "screener.toml",
    "prescriptions.toml",
    "programs.toml",
    "districts.toml",
    "canned.toml",
    "selfcheck.toml",
    "safety_plan.toml",
];

// ---------------------------------------------------------------------------------------
// Schemas.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentFile {
    #[serde(default)]
    intent: Vec<IntentSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntentSpec {
    id: Spanned<String>,
    // Read by triage (src/triage/rules.rs); checked there.
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    compact_regex: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    except: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    priority: i32,
    #[serde(default)]
    fallback: bool,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
    // Content.
    #[serde(default)]
    handler: Option<Handler>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    reply_ko: Vec<String>,
    #[serde(default)]
    reply_en: Vec<String>,
    #[serde(default)]
    quick_reply: Vec<QuickReplySpec>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct QuickReplySpec {
    label_ko: String,
    text_ko: String,
    label_en: String,
    text_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourcesFile {
    resource: Vec<ResourceSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceSpec {
    id: Spanned<String>,
    name_ko: String,
    name_en: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    then_press: Option<String>,
    #[serde(default)]
    url: Option<String>,
    hours: String,
    hours_ko: String,
    languages: Vec<String>,
    purpose_ko: String,
    purpose_en: String,
    source: String,
    #[serde(default = "yes")]
    verified: bool,
    #[serde(default)]
    emergency: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesFile {
    welcome: BlockSpec,
    safety: SafetySpec,
    queue: QueueSpec,
    rating_ask: BlockSpec,
    rating_thanks: BlockSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockSpec {
    reply_ko: Vec<String>,
    reply_en: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    quick_reply: Vec<QuickReplySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetySpec {
    low: BlockSpec,
    medium: BlockSpec,
    high: BlockSpec,
    imminent: BlockSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSpec {
    waiting_ko: Vec<String>,
    waiting_en: Vec<String>,
    offline_ko: Vec<String>,
    offline_en: Vec<String>,
    waiting_resources: Vec<String>,
    offline_resources: Vec<String>,
    holding_ko: Vec<String>,
    holding_en: Vec<String>,
    holding_new_ko: Vec<String>,
    holding_new_en: Vec<String>,
    holding_offline_ko: Vec<String>,
    holding_offline_en: Vec<String>,
    changing_ko: Vec<String>,
    changing_en: Vec<String>,
    wait_label_ko: String,
    wait_text_ko: String,
    talk_label_ko: String,
    talk_text_ko: String,
    wait_label_en: String,
    wait_text_en: String,
    talk_label_en: String,
    talk_text_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrescriptionsFile {
    template_ko: String,
    template_en: String,
    again_label_ko: String,
    again_label_en: String,
    other_label_ko: String,
    other_text_ko: String,
    other_label_en: String,
    other_text_en: String,
    mood: Vec<MoodSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoodSpec {
    id: Spanned<String>,
    label_ko: String,
    label_en: String,
    text_ko: String,
    text_en: String,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
    prescription: Vec<PrescriptionSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrescriptionSpec {
    ko: String,
    suggestion_ko: String,
    en: String,
    suggestion_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramsFile {
    template_ko: String,
    template_en: String,
    referral_ko: String,
    referral_en: String,
    other_label_ko: String,
    other_text_ko: String,
    other_label_en: String,
    other_text_en: String,
    program: Vec<ProgramSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramSpec {
    id: Spanned<String>,
    domain_ko: String,
    domain_en: String,
    label_ko: String,
    label_en: String,
    text_ko: String,
    text_en: String,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
    description_ko: String,
    description_en: String,
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistrictsFile {
    suffixes: Vec<String>,
    context_suffixes: Vec<String>,
    context_particles: Vec<String>,
    answer_ko: String,
    answer_en: String,
    agency_ko: String,
    agency_en: String,
    no_agency_ko: String,
    no_agency_en: String,
    resources: Vec<String>,
    district: Vec<DistrictSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistrictSpec {
    id: Spanned<String>,
    name_ko: String,
    name_en: String,
    names: Vec<String>,
    #[serde(default)]
    context_names: Vec<String>,
    names_en: Vec<String>,
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
    #[serde(default)]
    agencies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScreenerFile {
    intro_ko: String,
    intro_en: String,
    unclear_ko: String,
    unclear_en: String,
    done_ko: String,
    done_en: String,
    urgent_ko: String,
    urgent_en: String,
    #[serde(default)]
    second_unclear: Option<String>,
    question: Vec<QuestionSpec>,
    answer: Vec<AnswerSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuestionSpec {
    id: Spanned<String>,
    ko: String,
    en: String,
    yes_level: Level,
    #[serde(default)]
    yes_next: Option<String>,
    #[serde(default)]
    no_next: Option<String>,
    #[serde(default)]
    no_handoff: Option<Level>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerSpec {
    class: Spanned<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    examples: Vec<String>,
    counter_examples: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelfCheckFile {
    source: String,
    intro_ko: String,
    intro_en: String,
    unclear_ko: String,
    unclear_en: String,
    stopped_ko: String,
    stopped_en: String,
    result_ko: String,
    result_en: String,
    item: Vec<ItemSpec>,
    option: Vec<OptionSpec>,
    band: Vec<BandSpec>,
    #[serde(default)]
    result_quick_reply: Vec<QuickReplySpec>,
    answer: Vec<ScoreAnswerSpec>,
    /// The intent that starts the self-check (read by triage as well).
    #[serde(default)]
    intent: Vec<IntentSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemSpec {
    ko: String,
    en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionSpec {
    score: u8,
    label_ko: String,
    text_ko: String,
    label_en: String,
    text_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BandSpec {
    min: u8,
    max: u8,
    ko: String,
    en: String,
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreAnswerSpec {
    score: Spanned<u8>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    examples: Vec<String>,
    counter_examples: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyPlanFile {
    source: String,
    offer_ko: String,
    offer_en: String,
    yes_label_ko: String,
    yes_text_ko: String,
    no_label_ko: String,
    no_text_ko: String,
    yes_label_en: String,
    yes_text_en: String,
    no_label_en: String,
    no_text_en: String,
    skip_label_ko: String,
    skip_text_ko: String,
    skip_label_en: String,
    skip_text_en: String,
    skip_words: Vec<String>,
    declined_ko: String,
    declined_en: String,
    done_ko: String,
    done_en: String,
    prefill_ko: Vec<String>,
    prefill_en: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    step: Vec<StepSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    title_ko: String,
    title_en: String,
    ask_ko: String,
    ask_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedFile {
    canned: Vec<CannedSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedSpec {
    id: Spanned<String>,
    ko: String,
    en: String,
}

fn check_id(
    ctx: &Ctx<'_>,
    id: &Spanned<String>,
    seen: &mut HashSet<String>,
    what: &str,
) -> Result<(), LoadError> {
    let s = id.get_ref();
    let valid = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !valid {
        return Err(ctx.err(id, "ids use only a-z, 0-9, '.', '_' and '-'"));
    }
    if !seen.insert(s.clone()) {
        return Err(ctx.err(id, format!("duplicate {what} id")));
    }
    Ok(())
}

/// Every string in `texts` must be non-empty; `field` names them in the error.
fn filled<'s>(
    texts: impl IntoIterator<Item = &'s String>,
    field: &str,
    fail: impl Fn(String) -> LoadError,
) -> Result<(), LoadError> {
    for t in texts {
        if t.trim().is_empty() {
            return Err(fail(format!("`{field}` holds an empty text")));
        }
    }
    Ok(())
}

fn variants(
    ko: Vec<String>,
    en: Vec<String>,
    fail: impl Fn(String) -> LoadError,
) -> Result<[Vec<String>; 2], LoadError> {
    for (lang, v) in [("reply_ko", &ko), ("reply_en", &en)] {
        if v.is_empty() {
            return Err(fail(format!(
                "needs a reply in both languages: `{lang}` is missing"
            )));
        }
        if v.len() > 4 {
            return Err(fail(format!(
                "`{lang}` has {} variants; at most 4",
                v.len()
            )));
        }
        filled(v, lang, &fail)?;
    }
    Ok([ko, en])
}

fn quick_replies(
    specs: Vec<QuickReplySpec>,
    fail: impl Fn(String) -> LoadError,
) -> Result<Vec<QuickReplyDef>, LoadError> {
    specs
        .into_iter()
        .map(|q| {
            let fields = [&q.label_ko, &q.text_ko, &q.label_en, &q.text_en];
            filled(fields, "quick_reply", &fail)?;
            Ok(QuickReplyDef {
                label: [q.label_ko, q.label_en],
                text: [q.text_ko, q.text_en],
            })
        })
        .collect()
}

fn matcher(
    ctx: &Ctx<'_>,
    id: &Spanned<String>,
    patterns: &[String],
    words: &[String],
    regex: &[String],
    except: &[String],
) -> Result<Matcher, LoadError> {
    let m = Matcher::new(Raw {
        patterns,
        words,
        regex,
        except,
    })
    .map_err(|e| ctx.err(id, e))?;
    if m.is_empty() {
        return Err(ctx.err(id, "has no patterns, words or regex"));
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Loading.

struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    fn ctx(&self) -> Ctx<'_> {
        Ctx::new(&self.path, &self.text)
    }
}

/// Where an item was defined, for example failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct At {
    pub file: PathBuf,
    pub line: usize,
}

pub(crate) fn load(dir: &Path) -> Result<Content, LoadError> {
    let files = crate::triage::rules::intent_files(dir)?;
    let mut data: Vec<Option<Source>> = DATA_FILES.iter().map(|_| None).collect();
    let mut intent_sources = Vec::new();
    for path in files {
        let text = read(&path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let src = Source { path, text };
        match DATA_FILES.iter().position(|f| *f == name) {
            Some(i) => data[i] = Some(src),
            None => intent_sources.push(src),
        }
    }
    let mut data = data.into_iter().zip(DATA_FILES).map(|(s, name)| {
        s.ok_or_else(|| LoadError {
            file: dir.join(name),
            line: None,
            rule: None,
            message: "missing: every intents directory needs this data file".into(),
        })
    });
    let mut next = || data.next().expect("one per data file");
    let (resources_src, messages_src, screener_src) = (next()?, next()?, next()?);
    let (prescriptions_src, programs_src, districts_src, canned_src) =
        (next()?, next()?, next()?, next()?);
    let (selfcheck_src, plan_src) = (next()?, next()?);

    let resources = load_resources(&resources_src)?;
    let known = |ids: &[String], ctx: &Ctx<'_>, owner: Option<&Spanned<String>>| {
        for r in ids {
            let fail = |m: String| match owner {
                Some(id) => ctx.err(id, m),
                None => ctx.file_err(m),
            };
            match resources.iter().find(|x| &x.id == r) {
                None => return Err(fail(format!("unknown resource `{r}`"))),
                Some(x) if !x.verified => {
                    return Err(fail(format!(
                        "resource `{r}` is `verified = false`: an unverified number is never \
                         shown to a citizen; refer to 120 instead"
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    };

    // The self-check file holds its own trigger intent; it is loaded with the others.
    let selfcheck_file: SelfCheckFile = selfcheck_src.ctx().parse()?;
    let mut selfcheck_file = Some(selfcheck_file);
    let mut intent_files: Vec<(&Source, Vec<IntentSpec>)> = Vec::new();
    for src in &intent_sources {
        let file: IntentFile = src.ctx().parse()?;
        intent_files.push((src, file.intent));
    }
    if let Some(f) = selfcheck_file.as_mut() {
        intent_files.push((&selfcheck_src, std::mem::take(&mut f.intent)));
    }

    // Intents.
    let mut intents = Vec::new();
    let mut seen = HashSet::new();
    for (src, specs) in intent_files {
        let ctx = src.ctx();
        for i in specs {
            check_id(&ctx, &i.id, &mut seen, "intent")?;
            let fail = |m: String| ctx.err(&i.id, m);
            let has_patterns = [&i.patterns, &i.words, &i.regex, &i.compact_regex]
                .iter()
                .any(|v| !v.is_empty());
            if i.fallback && (has_patterns || i.handler.is_some()) {
                return Err(fail(
                    "a fallback intent has no patterns and no handler".into(),
                ));
            }
            known(&i.resources, &ctx, Some(&i.id))?;
            let reply = variants(i.reply_ko, i.reply_en, fail)?;
            let quick = quick_replies(i.quick_reply, fail)?;
            intents.push(Intent {
                id: i.id.get_ref().clone(),
                handler: i.handler,
                fallback: i.fallback,
                block: Block {
                    reply,
                    resources: i.resources,
                    quick,
                },
                examples: i.examples,
                counter_examples: i.counter_examples,
                at: At {
                    file: src.path.clone(),
                    line: ctx.line(&i.id),
                },
            });
        }
    }
    let fallbacks: Vec<&Intent> = intents.iter().filter(|i| i.fallback).collect();
    if fallbacks.len() != 1 {
        return Err(LoadError {
            file: dir.to_owned(),
            line: None,
            rule: None,
            message: format!(
                "needs exactly one intent with `fallback = true`, found {}",
                fallbacks.len()
            ),
        });
    }
    for h in [Handler::District, Handler::Prescription, Handler::Program] {
        let n = intents.iter().filter(|i| i.handler == Some(h)).count();
        if n != 1 {
            return Err(LoadError {
                file: dir.to_owned(),
                line: None,
                rule: None,
                message: format!("needs exactly one intent with `handler = \"{h:?}\"`, found {n}")
                    .to_lowercase(),
            });
        }
    }

    // Messages.
    let ctx = messages_src.ctx();
    let m: MessagesFile = ctx.parse()?;
    let block = |b: BlockSpec, name: &str| -> Result<Block, LoadError> {
        let fail = |msg: String| ctx.file_err(format!("[{name}]: {msg}"));
        known(&b.resources, &ctx, None)?;
        Ok(Block {
            reply: variants(b.reply_ko, b.reply_en, fail)?,
            resources: b.resources,
            quick: quick_replies(b.quick_reply, fail)?,
        })
    };
    let welcome = block(m.welcome, "welcome")?;
    let rating_ask = block(m.rating_ask, "rating_ask")?;
    let rating_thanks = block(m.rating_thanks, "rating_thanks")?;
    let safety = [
        block(m.safety.low, "safety.low")?,
        block(m.safety.medium, "safety.medium")?,
        block(m.safety.high, "safety.high")?,
        block(m.safety.imminent, "safety.imminent")?,
    ];
    let q = m.queue;
    let queue_fail = |msg: String| ctx.file_err(format!("[queue]: {msg}"));
    known(&q.waiting_resources, &ctx, None)?;
    known(&q.offline_resources, &ctx, None)?;
    let waiting = variants(q.waiting_ko, q.waiting_en, queue_fail)?;
    let offline = variants(q.offline_ko, q.offline_en, queue_fail)?;
    let holding = variants(q.holding_ko, q.holding_en, queue_fail)?;
    let holding_new = variants(q.holding_new_ko, q.holding_new_en, queue_fail)?;
    let holding_offline = variants(q.holding_offline_ko, q.holding_offline_en, queue_fail)?;
    let changing = variants(q.changing_ko, q.changing_en, queue_fail)?;
    let wait_choice = [
        [
            super::QuickReply {
                label: q.wait_label_ko,
                text: q.wait_text_ko,
            },
            super::QuickReply {
                label: q.talk_label_ko,
                text: q.talk_text_ko,
            },
        ],
        [
            super::QuickReply {
                label: q.wait_label_en,
                text: q.wait_text_en,
            },
            super::QuickReply {
                label: q.talk_label_en,
                text: q.talk_text_en,
            },
        ],
    ];

    // Screener.
    let screener = load_screener(&screener_src)?;

    // Prescriptions.
    let ctx = prescriptions_src.ctx();
    let p: PrescriptionsFile = ctx.parse()?;
    let mut seen = HashSet::new();
    let mut moods = Vec::new();
    for mood in p.mood {
        check_id(&ctx, &mood.id, &mut seen, "mood")?;
        let fail = |m: String| ctx.err(&mood.id, m);
        let matcher = matcher(
            &ctx,
            &mood.id,
            &mood.patterns,
            &mood.words,
            &mood.regex,
            &mood.except,
        )?;
        if mood.prescription.is_empty() {
            return Err(fail("needs at least one prescription".into()));
        }
        let mut list = Vec::new();
        for x in mood.prescription {
            filled(
                [&x.ko, &x.en, &x.suggestion_ko, &x.suggestion_en],
                "prescription",
                fail,
            )?;
            list.push(Prescription {
                ko: x.ko,
                en: x.en,
                suggestion_ko: x.suggestion_ko,
                suggestion_en: x.suggestion_en,
            });
        }
        moods.push(Mood {
            id: mood.id.get_ref().clone(),
            label: [mood.label_ko, mood.label_en],
            text: [mood.text_ko, mood.text_en],
            prescriptions: list,
            matcher,
            examples: mood.examples,
            counter_examples: mood.counter_examples,
            at: At {
                file: prescriptions_src.path.clone(),
                line: ctx.line(&mood.id),
            },
        });
    }
    let pharmacy = super::Pharmacy {
        template: [p.template_ko, p.template_en],
        again_label: [p.again_label_ko, p.again_label_en],
        other: QuickReplyDef {
            label: [p.other_label_ko, p.other_label_en],
            text: [p.other_text_ko, p.other_text_en],
        },
        moods,
    };

    // Programs.
    let ctx = programs_src.ctx();
    let f: ProgramsFile = ctx.parse()?;
    let mut seen = HashSet::new();
    let mut programs = Vec::new();
    for x in f.program {
        check_id(&ctx, &x.id, &mut seen, "program")?;
        let matcher = matcher(&ctx, &x.id, &x.patterns, &x.words, &x.regex, &x.except)?;
        known(&x.resources, &ctx, Some(&x.id))?;
        programs.push(Program {
            id: x.id.get_ref().clone(),
            domain: [x.domain_ko, x.domain_en],
            label: [x.label_ko, x.label_en],
            text: [x.text_ko, x.text_en],
            description: [x.description_ko, x.description_en],
            resources: x.resources,
            matcher,
            examples: x.examples,
            counter_examples: x.counter_examples,
            at: At {
                file: programs_src.path.clone(),
                line: ctx.line(&x.id),
            },
        });
    }
    let catalog = super::Catalog {
        template: [f.template_ko, f.template_en],
        referral: [f.referral_ko, f.referral_en],
        other: QuickReplyDef {
            label: [f.other_label_ko, f.other_label_en],
            text: [f.other_text_ko, f.other_text_en],
        },
        programs,
    };

    // Districts.
    let ctx = districts_src.ctx();
    let d: DistrictsFile = ctx.parse()?;
    known(&d.resources, &ctx, None)?;
    for (name, t) in [("answer_ko", &d.answer_ko), ("answer_en", &d.answer_en)] {
        let key = if name.ends_with("ko") {
            "{name_ko}"
        } else {
            "{name_en}"
        };
        if !t.contains(key) || !t.contains("{local}") {
            return Err(ctx.file_err(format!(
                "`{name}` must name the district with {key} and hold {{local}} (its own agency, or the plain words that the city line routes it)"
            )));
        }
    }
    for (name, t) in [("agency_ko", &d.agency_ko), ("agency_en", &d.agency_en)] {
        if !t.contains("{agency}") {
            return Err(ctx.file_err(format!("`{name}` must hold {{agency}}")));
        }
    }
    let alt = |xs: &[String]| -> String {
        let mut v: Vec<String> = xs.iter().map(|x| normalize(x)).collect();
        v.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
        v.iter()
            .map(|s| regex::escape(s))
            .collect::<Vec<_>>()
            .join("|")
    };
    let suffixes = alt(&d.suffixes);
    let ctx_suffixes = alt(&d.context_suffixes);
    let ctx_particles = alt(&d.context_particles);
    let mut seen = HashSet::new();
    let mut districts = Vec::new();
    for x in d.district {
        check_id(&ctx, &x.id, &mut seen, "district")?;
        if x.names.is_empty() || x.names_en.is_empty() || x.examples.is_empty() {
            return Err(ctx.err(&x.id, "needs `names`, `names_en` and `examples`"));
        }
        let mut res = vec![format!(" (?:{})(?: |{suffixes})", alt(&x.names))];
        if !x.context_names.is_empty() {
            res.push(format!(
                " (?:{})(?:{ctx_particles})? ?(?:{ctx_suffixes})",
                alt(&x.context_names)
            ));
        }
        res.push(format!(" (?:{})(?: gu)? ", alt(&x.names_en)));
        let patterns = res
            .iter()
            .map(|r| Regex::new(r).map_err(|e| ctx.err(&x.id, format!("bad name: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        // Only verified resources: a district's own agency is shown with its number.
        known(&x.agencies, &ctx, Some(&x.id))?;
        districts.push(District {
            agencies: x.agencies,
            id: x.id.get_ref().clone(),
            name_ko: x.name_ko,
            name_en: x.name_en,
            patterns,
            examples: x.examples,
            counter_examples: x.counter_examples,
            at: At {
                file: districts_src.path.clone(),
                line: ctx.line(&x.id),
            },
        });
    }
    if districts.len() != 25 {
        return Err(ctx.file_err(format!("Seoul has 25 districts; found {}", districts.len())));
    }
    let atlas = super::Atlas {
        answer: [d.answer_ko, d.answer_en],
        agency: [d.agency_ko, d.agency_en],
        no_agency: [d.no_agency_ko, d.no_agency_en],
        resources: d.resources,
        districts,
    };

    // Canned.
    let ctx = canned_src.ctx();
    let c: CannedFile = ctx.parse()?;
    let mut seen = HashSet::new();
    let mut canned = Vec::new();
    for x in c.canned {
        check_id(&ctx, &x.id, &mut seen, "canned")?;
        filled([&x.ko, &x.en], "canned", |m| ctx.err(&x.id, m))?;
        canned.push(Canned {
            id: x.id.get_ref().clone(),
            ko: x.ko,
            en: x.en,
        });
    }

    // The loneliness self-check and the safety plan.
    let selfcheck = load_selfcheck(
        &selfcheck_src,
        selfcheck_file.take().expect("parsed above"),
        &known,
    )?;
    let safety_plan = load_safety_plan(&plan_src, &known)?;

    Ok(Content {
        selfcheck,
        safety_plan,
        intents,
        resources,
        welcome,
        rating_ask,
        rating_thanks,
        safety,
        waiting,
        waiting_resources: q.waiting_resources,
        holding,
        holding_new,
        holding_offline,
        changing,
        wait_choice,
        offline,
        offline_resources: q.offline_resources,
        screener,
        pharmacy,
        catalog,
        atlas,
        canned,
    })
}

fn load_resources(src: &Source) -> Result<Vec<Arc<Resource>>, LoadError> {
    let ctx = src.ctx();
    let f: ResourcesFile = ctx.parse()?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in f.resource {
        check_id(&ctx, &r.id, &mut seen, "resource")?;
        let fail = |m: String| ctx.err(&r.id, m);
        if r.phone.is_none() && r.url.is_none() {
            return Err(fail("needs a `phone` or a `url`".into()));
        }
        if let Some(p) = &r.phone {
            if !phone_shape_ok(p) {
                return Err(fail(format!(
                    "phone {p:?} is not shaped like a Korean number (109, 1577-0199, 02-123-4567)"
                )));
            }
        }
        filled(
            [
                &r.name_ko,
                &r.name_en,
                &r.hours,
                &r.hours_ko,
                &r.purpose_ko,
                &r.purpose_en,
                &r.source,
            ],
            "resource",
            fail,
        )?;
        if r.languages.is_empty() {
            return Err(fail("needs at least one language".into()));
        }
        out.push(Resource {
            id: r.id.get_ref().clone(),
            name_ko: r.name_ko,
            name_en: r.name_en,
            phone: r.phone,
            then_press: r.then_press,
            url: r.url,
            hours: r.hours,
            hours_ko: r.hours_ko,
            languages: r.languages,
            purpose_ko: r.purpose_ko,
            purpose_en: r.purpose_en,
            source: r.source,
            verified: r.verified,
            emergency: r.emergency,
            card: Card::default(),
        });
    }
    // The card is the resource as serialized (`card` itself is skipped), made once here.
    Ok(out
        .into_iter()
        .map(|mut r| {
            r.card = Card::of(&r);
            Arc::new(r)
        })
        .collect())
}

fn load_screener(src: &Source) -> Result<Screener, LoadError> {
    let ctx = src.ctx();
    let f: ScreenerFile = ctx.parse()?;
    let mut seen = HashSet::new();
    let mut questions = Vec::new();
    for q in &f.question {
        check_id(&ctx, &q.id, &mut seen, "question")?;
        filled([&q.ko, &q.en], "question", |m| ctx.err(&q.id, m))?;
        if q.yes_level < Level::Medium {
            return Err(ctx.err(
                &q.id,
                "a yes to a screener question keeps the level at `medium` or above",
            ));
        }
    }
    for q in &f.question {
        for next in [&q.yes_next, &q.no_next].into_iter().flatten() {
            if !seen.contains(next) {
                return Err(ctx.err(&q.id, format!("next question `{next}` does not exist")));
            }
        }
        questions.push(Question {
            id: q.id.get_ref().clone(),
            ko: q.ko.clone(),
            en: q.en.clone(),
            yes_level: q.yes_level,
            yes_next: q.yes_next.clone(),
            no_next: q.no_next.clone(),
            no_handoff: q.no_handoff,
        });
        if q.no_handoff.is_some() && q.no_next.is_some() {
            return Err(ctx.err(&q.id, "`no_handoff` and `no_next` cannot both be set"));
        }
    }
    if questions.is_empty() {
        return Err(ctx.file_err("needs at least one question"));
    }
    let mut answers = Vec::new();
    for a in f.answer {
        let class = match a.class.get_ref().as_str() {
            "yes" => Answer::Yes,
            "no" => Answer::No,
            "unclear" => Answer::Unclear,
            other => {
                return Err(ctx.err(
                    &a.class,
                    format!("unknown answer class `{other}` (yes, no, unclear)"),
                ));
            }
        };
        let matcher = matcher(&ctx, &a.class, &a.patterns, &a.words, &a.regex, &a.except)?;
        answers.push(AnswerClass {
            class,
            matcher,
            examples: a.examples,
            counter_examples: a.counter_examples,
            line: ctx.line(&a.class),
        });
    }
    for class in [Answer::Yes, Answer::No, Answer::Unclear] {
        if !answers.iter().any(|a| a.class == class) {
            return Err(ctx.file_err(format!("needs an `{}` answer class", class.as_str())));
        }
    }
    let second_unclear = match f.second_unclear.as_deref() {
        None | Some("continue") => super::SecondUnclear::Continue,
        Some("handoff") => super::SecondUnclear::HandOff,
        Some(other) => {
            return Err(ctx.file_err(format!(
                "second_unclear = {other:?}: `continue` (read it as a no and go on) or `handoff`"
            )));
        }
    };
    let pair = |ko: String, en: String| [ko, en];
    Ok(Screener {
        second_unclear,
        file: src.path.clone(),
        questions,
        answers,
        intro: pair(f.intro_ko, f.intro_en),
        unclear: pair(f.unclear_ko, f.unclear_en),
        done: pair(f.done_ko, f.done_en),
        urgent: pair(f.urgent_ko, f.urgent_en),
    })
}

/// Items of the three-item UCLA Loneliness Scale (the state machine's
/// `SELF_CHECK_ITEMS`; tests/content.rs checks they agree: content does not import the
/// conversation module).
const SELF_CHECK_ITEMS: usize = 3;

/// Steps of a Stanley–Brown safety plan (the state machine's `PLAN_STEPS`).
const PLAN_STEPS: usize = 6;

type Known<'a> =
    dyn Fn(&[String], &Ctx<'_>, Option<&Spanned<String>>) -> Result<(), LoadError> + 'a;

fn load_selfcheck(
    src: &Source,
    f: SelfCheckFile,
    known: &Known<'_>,
) -> Result<super::SelfCheck, LoadError> {
    use super::dialogues::{Band, ScoreClass};
    let ctx = src.ctx();
    let fail = |m: String| ctx.file_err(m);
    filled(
        [
            &f.source,
            &f.intro_ko,
            &f.intro_en,
            &f.unclear_ko,
            &f.unclear_en,
            &f.stopped_ko,
            &f.stopped_en,
            &f.result_ko,
            &f.result_en,
        ],
        "selfcheck",
        fail,
    )?;
    if !f.result_ko.contains("{score}") || !f.result_en.contains("{score}") {
        return Err(fail("`result_ko` and `result_en` must hold {score}".into()));
    }
    if f.item.len() != SELF_CHECK_ITEMS {
        return Err(fail(format!(
            "the three-item UCLA Loneliness Scale has 3 items; found {}",
            f.item.len()
        )));
    }
    let mut items = Vec::new();
    for i in f.item {
        filled([&i.ko, &i.en], "item", fail)?;
        items.push([i.ko, i.en]);
    }
    let mut scores: Vec<u8> = f.option.iter().map(|o| o.score).collect();
    scores.sort_unstable();
    if scores != [1, 2, 3] {
        return Err(fail("needs one `option` for each score 1, 2 and 3".into()));
    }
    let mut options: Vec<(u8, QuickReplyDef)> = Vec::new();
    for o in f.option {
        let q = quick_replies(
            vec![QuickReplySpec {
                label_ko: o.label_ko,
                text_ko: o.text_ko,
                label_en: o.label_en,
                text_en: o.text_en,
            }],
            fail,
        )?;
        options.extend(q.into_iter().map(|q| (o.score, q)));
    }
    options.sort_by_key(|(s, _)| *s);
    let mut bands = Vec::new();
    for b in f.band {
        filled([&b.ko, &b.en], "band", fail)?;
        known(&b.resources, &ctx, None)?;
        bands.push(Band {
            min: b.min,
            max: b.max,
            text: [b.ko, b.en],
            resources: b.resources,
        });
    }
    for score in 3..=9u8 {
        let n = bands
            .iter()
            .filter(|b| (b.min..=b.max).contains(&score))
            .count();
        if n != 1 {
            return Err(fail(format!(
                "every score 3-9 falls in exactly one band; {score} falls in {n}"
            )));
        }
    }
    let result_quick = quick_replies(f.result_quick_reply, fail)?;
    let mut answers = Vec::new();
    for a in f.answer {
        let score = *a.score.get_ref();
        let id = Spanned::new(a.score.span(), score.to_string());
        if !(1..=3).contains(&score) {
            return Err(ctx.err(&id, "an answer's `score` is 1, 2 or 3"));
        }
        let matcher = matcher(&ctx, &id, &a.patterns, &a.words, &a.regex, &a.except)?;
        answers.push(ScoreClass {
            score,
            matcher,
            examples: a.examples,
            counter_examples: a.counter_examples,
            line: ctx.line(&id),
        });
    }
    for score in 1..=3u8 {
        if !answers.iter().any(|a| a.score == score) {
            return Err(fail(format!("needs an `answer` with score {score}")));
        }
    }
    Ok(super::SelfCheck {
        file: src.path.clone(),
        source: f.source,
        intro: [f.intro_ko, f.intro_en],
        unclear: [f.unclear_ko, f.unclear_en],
        stopped: [f.stopped_ko, f.stopped_en],
        result: [f.result_ko, f.result_en],
        items,
        options: options.into_iter().map(|(_, q)| q).collect(),
        bands,
        result_quick,
        answers,
    })
}

fn load_safety_plan(src: &Source, known: &Known<'_>) -> Result<super::PlanText, LoadError> {
    use super::dialogues::PlanStep;
    let ctx = src.ctx();
    let f: SafetyPlanFile = ctx.parse()?;
    let fail = |m: String| ctx.file_err(m);
    filled(
        [
            &f.source,
            &f.offer_ko,
            &f.offer_en,
            &f.declined_ko,
            &f.declined_en,
            &f.done_ko,
            &f.done_en,
        ],
        "safety_plan",
        fail,
    )?;
    known(&f.resources, &ctx, None)?;
    if f.step.len() != PLAN_STEPS {
        return Err(fail(format!(
            "a safety plan has 6 steps (Stanley-Brown); found {}",
            f.step.len()
        )));
    }
    if f.prefill_ko.is_empty() || f.prefill_ko.len() != f.prefill_en.len() {
        return Err(fail(
            "`prefill_ko` and `prefill_en` hold the same lines of step 5, at least one".into(),
        ));
    }
    filled(f.prefill_ko.iter().chain(&f.prefill_en), "prefill", fail)?;
    let mut steps = Vec::new();
    for s in f.step {
        filled(
            [&s.title_ko, &s.title_en, &s.ask_ko, &s.ask_en],
            "step",
            fail,
        )?;
        steps.push(PlanStep {
            title: [s.title_ko, s.title_en],
            ask: [s.ask_ko, s.ask_en],
        });
    }
    let one = |label_ko: String, text_ko: String, label_en: String, text_en: String| {
        quick_replies(
            vec![QuickReplySpec {
                label_ko,
                text_ko,
                label_en,
                text_en,
            }],
            fail,
        )
        .map(|mut v| v.remove(0))
    };
    let skip_words: Vec<String> = f
        .skip_words
        .iter()
        .map(|w| {
            w.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect()
        })
        .collect();
    Ok(super::PlanText {
        source: f.source,
        offer: [f.offer_ko, f.offer_en],
        yes: one(f.yes_label_ko, f.yes_text_ko, f.yes_label_en, f.yes_text_en)?,
        no: one(f.no_label_ko, f.no_text_ko, f.no_label_en, f.no_text_en)?,
        skip: one(
            f.skip_label_ko,
            f.skip_text_ko,
            f.skip_label_en,
            f.skip_text_en,
        )?,
        skip_words,
        declined: [f.declined_ko, f.declined_en],
        done: [f.done_ko, f.done_en],
        prefill: [f.prefill_ko, f.prefill_en],
        resources: f.resources,
        steps,
    })
}
