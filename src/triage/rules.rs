//! The data files triage runs on, and their validation.
//!
//! Content is data, not code: every risk rule lives in `escalation-rules.toml` and every
//! intent in `intents/*.toml`, each with its own examples that must match and
//! counter-examples that must not. The format is documented in `docs/rules.md` and
//! `intents/README.md`.
//!
//! Loading is strict, because a rule that silently fails to load is a person silently
//! missed: a TOML syntax error, an unknown field, a bad regex, a duplicate id, a pattern
//! that normalizes to nothing, or an `unless` on an `imminent` rule stops the load with a
//! [`LoadError`] that names the file, the line and the rule.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::grammar::{Stem, inflect};
use super::normalize::{compact, normalize, normalize_words_pattern};
use super::{Category, Level, LevelPolicy};

/// Why a rule or intent file could not be loaded. Names the file, and where known the line
/// and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file at fault.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// The rule or intent id, where known.
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": rule `{rule}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for LoadError {}

/// One example or counter-example that did not behave as its file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExampleFailure {
    /// The file holding the rule or intent.
    pub file: PathBuf,
    /// The line of the rule or intent.
    pub line: usize,
    /// The rule or intent id.
    pub id: String,
    /// `example`, `lowered_example` or `counter_example`.
    pub kind: &'static str,
    /// The example text.
    pub text: String,
    /// What happened instead.
    pub got: String,
}

impl std::fmt::Display for ExampleFailure {
    /// `file:line id kind "text" -> got`, one line per failure in test reports.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} {} {} {:?} -> {}",
            self.file.display(),
            self.line,
            self.id,
            self.kind,
            self.text,
            self.got
        )
    }
}

/// Where a rule or intent was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of its `id`.
    pub line: usize,
}

/// The literal and regex patterns of one rule or intent, already normalized.
#[derive(Debug, Clone, Default)]
pub struct Matchers {
    /// Literals matched on the compact form.
    pub patterns: Vec<String>,
    /// Literals matched on the spaced form (may be anchored with edge spaces).
    pub words: Vec<String>,
    /// Regexes matched on the spaced form.
    pub regex: Vec<String>,
    /// Regexes matched on the compact form.
    pub compact_regex: Vec<String>,
    /// Phrases (normalized for both forms) that mask a match lying inside them.
    pub except: Vec<String>,
    /// How `stems` × `endings` and `lexicons` became patterns, for `ieum check-rules
    /// --expand`: one line per stem and class, or per lexicon.
    pub expansion: Vec<String>,
}

impl Matchers {
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
            && self.words.is_empty()
            && self.regex.is_empty()
            && self.compact_regex.is_empty()
    }
}

/// A loaded risk rule.
#[derive(Debug, Clone)]
pub struct RuleDef {
    /// Stable id, unique across rules and intents.
    pub id: String,
    /// What the rule is about.
    pub category: Category,
    /// The level a hit gives.
    pub level: Level,
    /// Its patterns (each fires the rule alone).
    pub matchers: Matchers,
    /// Parts that fire the rule only together, all within `within` characters.
    pub parts: Vec<PartDef>,
    /// The widest stretch of the original text, in characters, that the parts may span.
    pub within: usize,
    /// How many different parts must meet: all of them unless the rule says fewer
    /// (`min_parts`: any two of seven farewell signals).
    pub min_parts: usize,
    /// Whether its long Korean literals also match within one typing slip.
    pub typo: bool,
    /// Context regexes on the compact form; a match anywhere in the message lowers the hit
    /// to the entry's level (the rule's `unless_level` unless the entry names its own).
    pub unless: Vec<Unless>,
    /// The level a plain `unless` lowers to (default: one lower).
    pub unless_level: Level,
    /// Regexes on the compact form that keep the full level even when an `unless` matched
    /// (a relapse said after a promise: `안 하기로 했는데 또 했어`).
    pub still: Vec<String>,
    /// Co-occurrence that raises an unlowered hit (a place now with a word of finality):
    /// the level, and regexes on the compact form of which one must match.
    pub raise: Option<Raise>,
    /// Must fire, at full level.
    pub examples: Vec<String>,
    /// Must fire, lowered by `unless`.
    pub lowered_examples: Vec<String>,
    /// Must fire, raised by `raise`.
    pub raised_examples: Vec<String>,
    /// Must not fire.
    pub counter_examples: Vec<String>,
    /// Where it was defined.
    pub at: Location,
}

/// A rule's `raise`: an unlowered hit rises to `level` when one of `when` matches anywhere in
/// the message (the compact form); with no `when` (written `always = true`), whenever it is
/// not lowered.
///
/// `always` is how a rule says "imminent unless context explains it away": the loader keeps
/// `unless` off `imminent` rules, so such a rule is `high` with its `unless`, and rises when
/// no context lowered it (two signals of a farewell that no job or move explains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    /// The level it rises to (above the rule's).
    pub level: Level,
    /// Regexes on the compact form (lexicon references expanded); empty for `always = true`:
    /// the hit rises whenever it was not lowered, and its own words are the cue.
    pub when: Vec<String>,
}

/// One `unless` context and the level it lowers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unless {
    /// A regex on the compact form (lexicon references expanded).
    pub regex: String,
    /// The level a hit is lowered to.
    pub level: Level,
    /// When set, the cue lowers a hit only if it lies within this many letters of one of
    /// the hit's spans: an idiom (배고파 죽겠다) speaks for the words beside it, not for a
    /// second sentence in the same message (…가 아니라 진짜 죽고 싶어). When unset, the cue
    /// is the message's context (fiction, recovery, news) and lowers wherever it is.
    pub near: Option<usize>,
}

/// One part of a rule built from parts (a means and a count, a place and a jump).
#[derive(Debug, Clone)]
pub struct PartDef {
    /// Its name, shown in explanations (`drug`, `count`).
    pub name: String,
    /// Its patterns.
    pub matchers: Matchers,
}

/// A named list of words that rules refer to (drug names, places, slang), each list with
/// its source or reason. For matching only: no response ever names a method or means.
#[derive(Debug, Clone)]
pub struct Lexicon {
    /// `drugs.sleep`, `places.high`.
    pub name: String,
    /// Where the entries come from, or why they are here.
    pub source: String,
    /// The entries as written.
    pub entries: Vec<String>,
    /// Whether its entries of three syllables or more are repair words (nouns whose slips
    /// are not other words: drug names, places, means; [`super::typo`]).
    pub repair: bool,
}

/// How typing slips are tolerated (`[typo]` in the rules file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypoPolicy {
    /// Literals of at least this many keystrokes match within one slip.
    pub min_keys: usize,
    /// Real words one slip away from a tolerant literal: never read as a slip.
    pub near_misses: Vec<String>,
    /// Repair words ([`super::typo`]) need at least this many keystrokes.
    pub repair_min_keys: usize,
    /// Words of two syllables or more to repair towards, beyond the entries of the lexicons
    /// marked `repair` (compact form).
    pub words: Vec<String>,
    /// Syllables a spelling as pronounced is written back into (`[typo] spoken`; sorted):
    /// 먹 for 머거, 있 for 이써 ([`super::typo::Spoken`]).
    pub spoken: Vec<char>,
    /// Dialect spellings written back in the same pass (`[typo] dialect`): 읎 as 없, 하믄
    /// as 하면, 되것다 as 되겠다.
    pub dialect: Vec<DialectSpelling>,
}

/// A dialect syllable read as the standard one (`[typo] dialect`), where its neighbours
/// say it is that dialect form: 것 is 겠 in 되것다 but the noun in 그것도 and 하는 것.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialectSpelling {
    pub from: char,
    pub to: char,
    /// A Hangul syllable must come right before (믄 in 하믄).
    pub after_syllable: bool,
    /// The next letter must be one of these; empty: any letter, or none.
    pub before: Vec<char>,
    /// The letter before must not be one of these.
    pub not_after: Vec<char>,
    /// The syllable before must not end in one of these finals.
    pub not_after_final: Vec<char>,
    /// The syllable before must end in one of these finals; empty: any.
    pub after_final: Vec<char>,
}

impl DialectSpelling {
    /// Whether `prev` and `next`, the letters around `from`, allow reading it as `to`.
    pub(crate) fn fits(&self, prev: Option<char>, next: Option<char>) -> bool {
        let prev_syllable = prev.and_then(super::hangul::Syllable::of);
        (!self.after_syllable || prev_syllable.is_some())
            && (self.before.is_empty() || next.is_some_and(|n| self.before.contains(&n)))
            && prev.is_none_or(|p| !self.not_after.contains(&p))
            && prev_syllable.is_none_or(|s| !self.not_after_final.contains(&s.jong))
            && (self.after_final.is_empty()
                || prev_syllable.is_some_and(|s| self.after_final.contains(&s.jong)))
    }
}

impl Default for TypoPolicy {
    fn default() -> Self {
        TypoPolicy {
            min_keys: 7,
            near_misses: Vec::new(),
            repair_min_keys: 5,
            words: Vec::new(),
            spoken: Vec::new(),
            dialect: Vec::new(),
        }
    }
}

/// Story words (`[story]` in the rules file): a risk phrase that modifies one of them
/// (유서 쓰는 **장면**, 뛰어내리려는 **역할**) describes a scene, not the writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoryMask {
    /// Nouns of a scene or a role, compact form.
    pub markers: Vec<String>,
    /// At most this many letters between the end of a risk phrase and the marker.
    pub within: usize,
    /// Regexes on the compact form: when one matches, nothing is masked (상상, 나도).
    pub still: Vec<String>,
}

/// A loaded intent (matching part only; responses belong to the content layer).
#[derive(Debug, Clone)]
pub struct IntentDef {
    /// Stable id.
    pub id: String,
    /// Its patterns.
    pub matchers: Matchers,
    /// Added to the match score to break ties between intents.
    pub priority: i32,
    /// Must come out as the top intent.
    pub examples: Vec<String>,
    /// Must not match this intent at all.
    pub counter_examples: Vec<String>,
    /// Where it was defined.
    pub at: Location,
}

/// Conversation-level escalation: `count` messages at `at_least` or above raise the
/// conversation to `raise_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// Stable id.
    pub id: String,
    /// The message level counted.
    pub at_least: Level,
    /// How many such messages.
    pub count: u32,
    /// The conversation level they lead to.
    pub raise_to: Level,
}

/// Everything triage loads, validated.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Policy per level, indexed by [`Level::index`].
    pub levels: [LevelPolicy; 5],
    /// Conversation-level escalations.
    pub escalations: Vec<Escalation>,
    /// Phrases masked for every rule (idioms that look like risk words).
    pub global_except: Vec<String>,
    /// Risk rules in file order.
    pub rules: Vec<RuleDef>,
    /// Ending classes: class name to templates (see [`super::grammar`]).
    pub endings: BTreeMap<String, Vec<String>>,
    /// Named word lists.
    pub lexicons: Vec<Lexicon>,
    /// Typing-slip tolerance.
    pub typo: TypoPolicy,
    /// Risk phrases that describe a scene.
    pub story: StoryMask,
    /// Intents in file order.
    pub intents: Vec<IntentDef>,
    /// A short hash of every loaded file.
    pub version: String,
}

// ---------------------------------------------------------------------------------------
// File schema.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    #[allow(dead_code)]
    title: Option<String>,
    levels: LevelsSpec,
    #[serde(default)]
    escalation: Vec<EscalationSpec>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    endings: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    lexicon: Vec<LexiconSpec>,
    /// Named context cues (`[cues]`): one regex that many rules' `unless`, `still` or `raise`
    /// share, written once and referenced as `{%name}`.
    #[serde(default)]
    cues: BTreeMap<String, String>,
    #[serde(default)]
    typo: Option<TypoSpec>,
    #[serde(default)]
    story: Option<StorySpec>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorySpec {
    markers: Vec<String>,
    within: usize,
    #[serde(default)]
    still: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LexiconSpec {
    name: Spanned<String>,
    source: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    entries: Vec<String>,
    #[serde(default)]
    repair: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypoSpec {
    #[serde(default)]
    min_keys: Option<usize>,
    #[serde(default)]
    near_misses: Vec<String>,
    #[serde(default)]
    repair_min_keys: Option<usize>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    spoken: Vec<String>,
    #[serde(default)]
    dialect: Vec<DialectSpec>,
}

/// A `[typo] dialect` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialectSpec {
    from: String,
    to: String,
    #[serde(default)]
    after_syllable: bool,
    #[serde(default)]
    before: String,
    #[serde(default)]
    not_after: String,
    #[serde(default)]
    not_after_final: String,
    #[serde(default)]
    after_final: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

/// An `unless` entry: a regex, or `{ regex = "...", level = "low" }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum UnlessSpec {
    Plain(String),
    Leveled(LeveledUnless),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeveledUnless {
    regex: String,
    level: Level,
    #[serde(default)]
    near: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartSpec {
    name: String,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    compact_regex: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    stems: Vec<String>,
    #[serde(default)]
    endings: Vec<String>,
    #[serde(default)]
    lexicons: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelsSpec {
    none: LevelPolicy,
    low: LevelPolicy,
    medium: LevelPolicy,
    high: LevelPolicy,
    imminent: LevelPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationSpec {
    id: Spanned<String>,
    at_least: Level,
    count: u32,
    raise_to: Level,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: Spanned<String>,
    category: Category,
    level: Level,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    compact_regex: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    stems: Vec<String>,
    #[serde(default)]
    endings: Vec<String>,
    #[serde(default)]
    lexicons: Vec<String>,
    #[serde(default)]
    parts: Vec<PartSpec>,
    #[serde(default)]
    within: Option<usize>,
    #[serde(default)]
    min_parts: Option<usize>,
    #[serde(default)]
    typo: Option<bool>,
    #[serde(default)]
    unless: Vec<UnlessSpec>,
    #[serde(default)]
    unless_level: Option<Level>,
    #[serde(default)]
    still: Vec<String>,
    #[serde(default)]
    raise: Option<RaiseSpec>,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    lowered_examples: Vec<String>,
    #[serde(default)]
    raised_examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RaiseSpec {
    level: Level,
    #[serde(default)]
    when: Vec<String>,
    #[serde(default)]
    always: bool,
}

/// Intent files carry responses and more for the content layer; triage reads only the
/// matching fields and leaves the rest to `content`, which checks them strictly.
#[derive(Deserialize)]
struct IntentFile {
    #[serde(default)]
    intent: Vec<IntentSpec>,
}

#[derive(Deserialize)]
struct IntentSpec {
    id: Spanned<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    words: Vec<String>,
    #[serde(default)]
    regex: Vec<String>,
    #[serde(default)]
    compact_regex: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    fallback: bool,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Loading.

/// A data file being loaded: turns spans into line numbers and errors into [`LoadError`]s
/// naming the file, the line and the id. Shared by every loader of data files (triage and
/// content).
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
    /// Where each line starts: every rule is located once at load, and counting the
    /// newlines before each of 170 rules in a 400 KB file took a tenth of the build.
    line_starts: Vec<usize>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Ctx {
            file,
            text,
            line_starts,
        }
    }

    fn line_of(&self, byte: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= byte)
    }

    /// The 1-based line of an id.
    pub(crate) fn line(&self, id: &Spanned<String>) -> usize {
        self.line_of(id.span().start)
    }

    /// An error about the entry `id`.
    pub(crate) fn err(&self, id: &Spanned<String>, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.to_owned(),
            line: Some(self.line(id)),
            rule: Some(id.get_ref().clone()),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub(crate) fn file_err(&self, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.file.to_owned(),
            line: None,
            rule: None,
            message: message.into(),
        }
    }

    /// Parses the file, or names the line of the syntax error.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, LoadError> {
        toml::from_str(self.text).map_err(|e| LoadError {
            file: self.file.to_owned(),
            line: e.span().map(|s| self.line_of(s.start)),
            rule: None,
            message: format!("invalid TOML: {}", e.message()),
        })
    }

    fn location(&self, id: &Spanned<String>) -> Location {
        Location {
            file: self.file.to_owned(),
            line: self.line(id),
        }
    }
}

/// Reads a data file, or says which and why not.
pub(crate) fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|e| LoadError {
        file: path.to_owned(),
        line: None,
        rule: None,
        message: format!("cannot read: {e}"),
    })
}

/// The `*.toml` files of an intents directory, sorted by name.
pub fn intent_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError {
        file: dir.to_owned(),
        line: None,
        rule: None,
        message: format!("cannot read the intents directory: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

impl RuleSet {
    /// Loads and validates the rules file and every `*.toml` in the intents directory.
    ///
    /// # Errors
    /// A [`LoadError`] naming the file, line and rule of the first problem found.
    pub fn load(rules_path: &Path, intents_dir: &Path) -> Result<RuleSet, LoadError> {
        let rules_text = read(rules_path)?;
        let mut intent_sources = Vec::new();
        for path in intent_files(intents_dir)? {
            let text = read(&path)?;
            intent_sources.push((path, text));
        }
        let intents: Vec<(&Path, &str)> = intent_sources
            .iter()
            .map(|(p, t)| (p.as_path(), t.as_str()))
            .collect();
        RuleSet::from_sources((rules_path, &rules_text), &intents)
    }

    /// Loads from in-memory sources (`(name, text)` pairs), as [`RuleSet::load`] does.
    ///
    /// # Errors
    /// As [`RuleSet::load`].
    pub fn from_sources(
        rules: (&Path, &str),
        intents: &[(&Path, &str)],
    ) -> Result<RuleSet, LoadError> {
        let mut hasher = Sha256::new();
        let mut seen_ids: HashSet<String> = HashSet::new();

        let ctx = Ctx::new(rules.0, rules.1);
        hasher.update(rules.1.as_bytes());
        let file: RulesFile = ctx.parse()?;
        let levels = validate_levels(&ctx, &file.levels)?;

        let mut escalations = Vec::new();
        for e in &file.escalation {
            if e.count < 2 {
                return Err(ctx.err(&e.id, "escalation `count` must be at least 2"));
            }
            if e.raise_to <= e.at_least {
                return Err(ctx.err(&e.id, "escalation `raise_to` must be above `at_least`"));
            }
            escalations.push(Escalation {
                id: e.id.get_ref().clone(),
                at_least: e.at_least,
                count: e.count,
                raise_to: e.raise_to,
            });
        }

        let global_except = file
            .except
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();

        let lexicons = load_lexicons(&ctx, file.lexicon)?;
        for (class, templates) in &file.endings {
            if templates.is_empty() {
                return Err(ctx.file_err(format!("[endings] class `{class}` has no templates")));
            }
        }
        let vocab = Vocab {
            endings: &file.endings,
            lexicons: &lexicons,
            cues: &file.cues,
        };
        let typo = match file.typo {
            None => TypoPolicy::default(),
            Some(t) => {
                let mut spoken = Vec::with_capacity(t.spoken.len());
                for w in &t.spoken {
                    spoken.push(spoken_syllable(w).ok_or_else(|| {
                        ctx.file_err(format!(
                            "[typo] spoken {w:?}: each entry is one Hangul syllable with a final consonant"
                        ))
                    })?);
                }
                spoken.sort_unstable();
                spoken.dedup();
                let mut dialect = Vec::with_capacity(t.dialect.len());
                for d in &t.dialect {
                    dialect.push(dialect_spelling(d).ok_or_else(|| {
                        ctx.file_err(format!(
                            "[typo] dialect {:?} → {:?}: `from` and `to` are one Hangul syllable each, `not_after_final` and `after_final` hold consonants",
                            d.from, d.to
                        ))
                    })?);
                }
                let compact_all = |ws: &[String]| {
                    ws.iter()
                        .map(|n| compact(n))
                        .filter(|n| !n.is_empty())
                        .collect()
                };
                TypoPolicy {
                    min_keys: t.min_keys.unwrap_or(TypoPolicy::default().min_keys).max(4),
                    near_misses: compact_all(&t.near_misses),
                    repair_min_keys: t
                        .repair_min_keys
                        .unwrap_or(TypoPolicy::default().repair_min_keys)
                        .max(4),
                    words: compact_all(&t.words),
                    spoken,
                    dialect,
                }
            }
        };

        let story = match file.story {
            None => StoryMask::default(),
            Some(st) => {
                let mut still = Vec::new();
                for re in &st.still {
                    if let Err(e) = check_syntax(re) {
                        return Err(ctx.file_err(format!("[story] still {re:?}: {e}")));
                    }
                    still.push(re.clone());
                }
                StoryMask {
                    markers: st
                        .markers
                        .iter()
                        .map(|m| compact(m))
                        .filter(|m| m.chars().count() >= 2)
                        .collect(),
                    within: st.within.min(20),
                    still,
                }
            }
        };

        // Ids are checked in file order; the rules are built on two threads (each about
        // half of loading), and the first problem in file order is the one reported.
        let mut duplicate = None;
        for (i, r) in file.rule.iter().enumerate() {
            if let Err(e) = check_id(&ctx, &r.id, &mut seen_ids) {
                duplicate = Some((i, e));
                break;
            }
        }
        let built = build_in_parallel(file.rule, |r| load_rule(&ctx, r, &vocab));
        let mut rules_out = Vec::with_capacity(built.len());
        for (i, r) in built.into_iter().enumerate() {
            if let Some((_, e)) = duplicate.take_if(|(at, _)| *at == i) {
                return Err(e);
            }
            rules_out.push(r?);
        }

        let mut intents_out = Vec::new();
        for (path, text) in intents {
            hasher.update(
                path.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or(b""),
            );
            hasher.update(text.as_bytes());
            let ctx = Ctx::new(path, text);
            let file: IntentFile = ctx.parse()?;
            for i in file.intent {
                check_id(&ctx, &i.id, &mut seen_ids)?;
                let matchers = build_matchers(
                    &ctx,
                    &i.id,
                    RawMatchers {
                        is_rule: false,
                        patterns: &i.patterns,
                        words: &i.words,
                        regex: &i.regex,
                        compact_regex: &i.compact_regex,
                        except: &i.except,
                        stems: &[],
                        endings: &[],
                        lexicons: &[],
                    },
                    &vocab,
                    false,
                )?;
                if i.fallback {
                    if !matchers.is_empty() {
                        return Err(ctx.err(&i.id, "a fallback intent has no patterns"));
                    }
                } else {
                    if matchers.is_empty() {
                        return Err(ctx.err(&i.id, "has no patterns, words or regex"));
                    }
                    if i.examples.is_empty() {
                        return Err(ctx.err(&i.id, "needs at least one example that must match"));
                    }
                }
                intents_out.push(IntentDef {
                    id: i.id.get_ref().clone(),
                    at: ctx.location(&i.id),
                    matchers,
                    priority: i.priority,
                    examples: i.examples,
                    counter_examples: i.counter_examples,
                });
            }
        }

        let digest = hasher.finalize();
        let version = crate::hex::encode(&digest[..6]);
        Ok(RuleSet {
            levels,
            escalations,
            global_except,
            rules: rules_out,
            endings: file.endings,
            lexicons,
            typo,
            story,
            intents: intents_out,
            version,
        })
    }
}

/// Builds and checks one rule: its matchers, parts, context cues and examples. Rules are
/// independent of each other, so [`RuleSet::from_sources`] builds them on two threads.
fn load_rule(ctx: &Ctx<'_>, r: RuleSpec, vocab: &Vocab<'_>) -> Result<RuleDef, LoadError> {
    let matchers = build_matchers(
        ctx,
        &r.id,
        RawMatchers {
            is_rule: true,
            patterns: &r.patterns,
            words: &r.words,
            regex: &r.regex,
            compact_regex: &r.compact_regex,
            except: &r.except,
            stems: &r.stems,
            endings: &r.endings,
            lexicons: &r.lexicons,
        },
        vocab,
        false,
    )?;
    let mut parts = Vec::with_capacity(r.parts.len());
    for part in &r.parts {
        if !part.except.is_empty() {
            return Err(ctx.err(
                &r.id,
                format!(
                    "part `{}`: put `except` on the rule, not on a part",
                    part.name
                ),
            ));
        }
        let m = build_matchers(
            ctx,
            &r.id,
            RawMatchers {
                is_rule: true,
                patterns: &part.patterns,
                words: &part.words,
                regex: &part.regex,
                compact_regex: &part.compact_regex,
                except: &part.except,
                stems: &part.stems,
                endings: &part.endings,
                lexicons: &part.lexicons,
            },
            vocab,
            true,
        )?;
        if m.is_empty() {
            return Err(ctx.err(&r.id, format!("part `{}` matches nothing", part.name)));
        }
        if part.name.is_empty() || parts.iter().any(|p: &PartDef| p.name == part.name) {
            return Err(ctx.err(
                &r.id,
                format!("part name {:?} is empty or repeated", part.name),
            ));
        }
        parts.push(PartDef {
            name: part.name.clone(),
            matchers: m,
        });
    }
    if parts.len() == 1 {
        return Err(ctx.err(
            &r.id,
            "`parts` needs two parts or more (one part is just `patterns`)",
        ));
    }
    if r.within.is_some() && parts.is_empty() {
        return Err(ctx.err(&r.id, "`within` without `parts`"));
    }
    let within = r.within.unwrap_or(DEFAULT_WITHIN);
    if !(2..=200).contains(&within) {
        return Err(ctx.err(&r.id, "`within` must be 2 to 200 characters"));
    }
    let min_parts = r.min_parts.unwrap_or(parts.len());
    if r.min_parts.is_some() && !(2..=parts.len().max(2)).contains(&min_parts)
        || r.min_parts.is_some() && parts.is_empty()
    {
        return Err(ctx.err(
            &r.id,
            "`min_parts` must be at least 2 and at most the number of parts",
        ));
    }
    if matchers.is_empty() && parts.is_empty() {
        return Err(ctx.err(
            &r.id,
            "has no patterns, words, regex, stems, lexicons or parts",
        ));
    }
    if r.level == Level::None {
        return Err(ctx.err(&r.id, "a rule's level cannot be `none`"));
    }
    if !r.unless.is_empty() && r.level == Level::Imminent {
        return Err(ctx.err(
            &r.id,
            "`unless` may not lower an `imminent` rule (a plan, means, timing or \
                 farewell is never cancelled by context); use `except` for a look-alike phrase",
        ));
    }
    if r.unless_level.is_some() && r.unless.is_empty() {
        return Err(ctx.err(&r.id, "`unless_level` without `unless`"));
    }
    let unless_level = r.unless_level.unwrap_or(r.level.lower());
    if unless_level >= r.level {
        return Err(ctx.err(&r.id, "`unless_level` must be below the rule's level"));
    }
    let mut unless = Vec::with_capacity(r.unless.len());
    for u in &r.unless {
        let (regex, level, near) = match u {
            UnlessSpec::Plain(re) => (re, unless_level, None),
            UnlessSpec::Leveled(l) => (&l.regex, l.level, l.near),
        };
        if level >= r.level {
            return Err(ctx.err(
                &r.id,
                format!("unless {regex:?}: its level must be below the rule's"),
            ));
        }
        unless.push(Unless {
            regex: check_regex(ctx, &r.id, "unless", regex, vocab, true)?,
            level,
            near,
        });
    }
    if !r.still.is_empty() && r.unless.is_empty() {
        return Err(ctx.err(&r.id, "`still` without `unless`"));
    }
    let mut still = Vec::with_capacity(r.still.len());
    for re in &r.still {
        still.push(check_regex(ctx, &r.id, "still", re, vocab, true)?);
    }
    let raise = match &r.raise {
        None => None,
        Some(spec) => {
            if spec.level <= r.level {
                return Err(ctx.err(&r.id, "`raise` must name a level above the rule's"));
            }
            if spec.when.is_empty() != spec.always {
                return Err(ctx.err(
                    &r.id,
                    "`raise` needs either `when` regexes or `always = true`, not both",
                ));
            }
            let mut when = Vec::with_capacity(spec.when.len());
            for re in &spec.when {
                when.push(check_regex(ctx, &r.id, "raise", re, vocab, true)?);
            }
            Some(Raise {
                level: spec.level,
                when,
            })
        }
    };
    if raise.is_some() == r.raised_examples.is_empty() {
        return Err(ctx.err(&r.id, "`raise` and `raised_examples` go together"));
    }
    if !r.lowered_examples.is_empty() && r.unless.is_empty() {
        return Err(ctx.err(&r.id, "`lowered_examples` without `unless`"));
    }
    if r.examples.is_empty() {
        return Err(ctx.err(&r.id, "needs at least one example that must match"));
    }
    if r.counter_examples.is_empty() {
        return Err(ctx.err(
            &r.id,
            "needs at least one counter-example that must not match",
        ));
    }
    Ok(RuleDef {
        id: r.id.get_ref().clone(),
        category: r.category,
        level: r.level,
        at: ctx.location(&r.id),
        matchers,
        parts,
        within,
        min_parts,
        typo: r.typo.unwrap_or(true),
        unless,
        unless_level,
        still,
        raise,
        examples: r.examples,
        lowered_examples: r.lowered_examples,
        raised_examples: r.raised_examples,
        counter_examples: r.counter_examples,
    })
}
/// Maps `f` over `items` on two threads, interleaved (rules of every cost on each),
/// keeping the order.
fn build_in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let n = items.len();
    let mut even = Vec::with_capacity(n / 2 + 1);
    let mut odd = Vec::with_capacity(n / 2);
    for (i, item) in items.into_iter().enumerate() {
        if i % 2 == 0 {
            even.push(item);
        } else {
            odd.push(item);
        }
    }
    let (even, odd) = std::thread::scope(|s| {
        let other = s.spawn(|| odd.into_iter().map(&f).collect::<Vec<R>>());
        let even: Vec<R> = even.into_iter().map(&f).collect();
        let odd = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (even, odd)
    });
    let mut out = Vec::with_capacity(n);
    let mut odd = odd.into_iter();
    for e in even {
        out.push(e);
        if let Some(o) = odd.next() {
            out.push(o);
        }
    }
    out
}

fn validate_levels(ctx: &Ctx<'_>, l: &LevelsSpec) -> Result<[LevelPolicy; 5], LoadError> {
    let levels = [l.none, l.low, l.medium, l.high, l.imminent];
    for pair in levels.windows(2) {
        if pair[1].priority < pair[0].priority {
            return Err(LoadError {
                file: ctx.file.to_owned(),
                line: None,
                rule: None,
                message: "[levels]: priority must not decrease with the level".into(),
            });
        }
    }
    Ok(levels)
}

fn check_id(
    ctx: &Ctx<'_>,
    id: &Spanned<String>,
    seen: &mut HashSet<String>,
) -> Result<(), LoadError> {
    let s = id.get_ref();
    let valid = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !valid {
        return Err(ctx.err(id, "ids use only a-z, 0-9, '.', '_' and '-'"));
    }
    if !seen.insert(s.clone()) {
        return Err(ctx.err(id, "duplicate id"));
    }
    Ok(())
}

struct RawMatchers<'a> {
    /// A risk rule (or one of its parts): subsumed literals are pruned.
    is_rule: bool,
    patterns: &'a [String],
    words: &'a [String],
    regex: &'a [String],
    compact_regex: &'a [String],
    except: &'a [String],
    stems: &'a [String],
    endings: &'a [String],
    lexicons: &'a [String],
}

/// What rules may refer to by name: ending classes and lexicons.
struct Vocab<'a> {
    endings: &'a BTreeMap<String, Vec<String>>,
    lexicons: &'a [Lexicon],
    cues: &'a BTreeMap<String, String>,
}

impl Vocab<'_> {
    fn lexicon(&self, name: &str) -> Option<&Lexicon> {
        self.lexicons.iter().find(|l| l.name == name)
    }
}

/// Parts of a rule must lie within this many characters of each other unless it says
/// otherwise.
const DEFAULT_WITHIN: usize = 24;

fn load_lexicons(ctx: &Ctx<'_>, specs: Vec<LexiconSpec>) -> Result<Vec<Lexicon>, LoadError> {
    let mut out: Vec<Lexicon> = Vec::with_capacity(specs.len());
    for l in specs {
        let name = l.name.get_ref();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !valid {
            return Err(ctx.err(&l.name, "lexicon names use only a-z, 0-9, '.', '_' and '-'"));
        }
        if out.iter().any(|o| &o.name == name) {
            return Err(ctx.err(&l.name, "duplicate lexicon name"));
        }
        if l.source.trim().is_empty() {
            return Err(ctx.err(
                &l.name,
                "a lexicon needs its `source` (where the words come from, or why)",
            ));
        }
        if l.entries.is_empty() {
            return Err(ctx.err(&l.name, "a lexicon needs entries"));
        }
        for e in &l.entries {
            if compact(e).is_empty() {
                return Err(ctx.err(&l.name, format!("entry {e:?} normalizes to nothing")));
            }
        }
        out.push(Lexicon {
            name: name.clone(),
            source: l.source,
            entries: l.entries,
            repair: l.repair,
        });
    }
    Ok(out)
}

/// A literal written as a word of two letters or more that normalization collapses to one
/// (ㅂㅂ → ㅂ, 영영 → 영, 빙빙 → 빙) would match that letter anywhere (영화, 빙수). A one-letter
/// part written as one letter (칼, 팔) is a deliberate choice and is allowed.
fn collapses_to_one_letter(raw: &str, normalized: &str) -> bool {
    normalized.chars().count() == 1 && raw.chars().filter(|c| c.is_alphabetic()).count() > 1
}

fn collapse_message(what: &str, raw: &str, normalized: &str) -> String {
    format!(
        "{what} {raw:?} normalizes to the single letter {normalized:?} (repeated letters \
         collapse), which would match that letter anywhere: write a longer form"
    )
}

fn build_matchers(
    ctx: &Ctx<'_>,
    id: &Spanned<String>,
    raw: RawMatchers<'_>,
    vocab: &Vocab<'_>,
    is_part: bool,
) -> Result<Matchers, LoadError> {
    let mut m = Matchers::default();
    let mut seen: foldhash::HashSet<String> = foldhash::HashSet::default();
    for p in raw.patterns {
        let n = compact(p);
        if collapses_to_one_letter(p, &n) {
            return Err(ctx.err(id, collapse_message("pattern", p, &n)));
        }
        if n.chars().count() < if is_part { 1 } else { 2 } {
            return Err(ctx.err(
                id,
                format!(
                    "pattern {p:?} normalizes to {n:?}: compact patterns need two letters or \
                     more (use `words` for short ones)"
                ),
            ));
        }
        if seen.insert(n.clone()) {
            m.patterns.push(n);
        }
    }
    if raw.stems.is_empty() != raw.endings.is_empty() {
        return Err(ctx.err(id, "`stems` and `endings` go together"));
    }
    let mut stems = Vec::with_capacity(raw.stems.len());
    for s in raw.stems {
        stems.push(Stem::parse(s).map_err(|e| ctx.err(id, e))?);
    }
    for class in raw.endings {
        let Some(templates) = vocab.endings.get(class) else {
            return Err(ctx.err(
                id,
                format!("unknown ending class `{class}` (see [endings] in the rules file)"),
            ));
        };
        for stem in &stems {
            let mut forms = Vec::new();
            for t in templates {
                for f in inflect(stem, t) {
                    let n = compact(&f);
                    // A form whose normalization collapses a doubled syllable (자해 + 해 →
                    // 자해해 → 자해) would match far more than it says: left out.
                    if n.chars().count() < f.chars().filter(|&c| is_letter(c)).count() {
                        continue;
                    }
                    if n.chars().count() >= 2 && seen.insert(n.clone()) {
                        forms.push(n.clone());
                        m.patterns.push(n);
                    }
                }
            }
            m.expansion
                .push(format!("{} × {class}: {}", stem.text, forms.join(" ")));
        }
    }
    for name in raw.lexicons {
        let Some(lex) = vocab.lexicon(name) else {
            return Err(ctx.err(id, format!("unknown lexicon `{name}`")));
        };
        let mut added = 0;
        for e in &lex.entries {
            let n = compact(e);
            if collapses_to_one_letter(e, &n) {
                return Err(ctx.err(
                    id,
                    collapse_message(&format!("lexicon `{name}` entry"), e, &n),
                ));
            }
            if !is_part && n.chars().count() < 2 {
                return Err(ctx.err(
                    id,
                    format!(
                        "lexicon `{name}` has the one-letter entry {e:?}: use it in `parts` \
                         (which must meet other parts nearby), not as a pattern on its own"
                    ),
                ));
            }
            if seen.insert(n.clone()) {
                m.patterns.push(n);
                added += 1;
            }
        }
        m.expansion.push(format!("lexicon {name}: {added} entries"));
    }
    // Intents score by the letters matched, so every literal counts there; rules only
    // need to fire.
    if raw.is_rule {
        prune_subsumed(&mut m.patterns);
    }
    for w in raw.words {
        let n = normalize_words_pattern(w);
        if n.trim().is_empty() {
            return Err(ctx.err(id, format!("words pattern {w:?} normalizes to nothing")));
        }
        m.words.push(n);
    }
    for r in raw.regex {
        m.regex
            .push(check_regex(ctx, id, "regex", r, vocab, false)?);
    }
    for r in raw.compact_regex {
        m.compact_regex
            .push(check_regex(ctx, id, "compact_regex", r, vocab, true)?);
    }
    for e in raw.except {
        if normalize(e).is_empty() {
            return Err(ctx.err(id, format!("except {e:?} normalizes to nothing")));
        }
        m.except.push(e.clone());
    }
    Ok(m)
}

/// `char::is_alphabetic`, with the syllables that make up nearly every form answered
/// without the Unicode table (the table lookup was a twentieth of the rules' load).
fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || ('가'..='힣').contains(&c) || (!c.is_ascii() && c.is_alphabetic())
}

/// Drops every pattern that contains a shorter pattern of the same list: it can only fire
/// where the shorter one already does (the wish class lists 고싶, and 고싶은 adds nothing).
/// Keeps the automaton small: the ending table multiplies forms.
fn prune_subsumed(patterns: &mut Vec<String>) {
    let set: foldhash::HashSet<&str> = patterns.iter().map(String::as_str).collect();
    let mut bounds: Vec<usize> = Vec::new();
    let mut subsumed = |p: &str| {
        bounds.clear();
        bounds.extend(p.char_indices().map(|(i, _)| i));
        bounds.push(p.len());
        bounds.iter().enumerate().any(|(a, &start)| {
            bounds[a + 1..]
                .iter()
                .any(|&end| end - start < p.len() && set.contains(&p[start..end]))
        })
    };
    let keep: Vec<bool> = patterns.iter().map(|p| !subsumed(p)).collect();
    let mut i = 0;
    patterns.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Replaces every `{%name}` in a regex with the named cue of `[cues]`, as a group. A cue
/// may refer to lexicons but not to other cues.
fn expand_cue_refs(r: &str, vocab: &Vocab<'_>) -> Result<String, String> {
    if !r.contains("{%") {
        return Ok(r.to_owned());
    }
    let mut out = String::with_capacity(r.len() * 2);
    let mut rest = r;
    while let Some(at) = rest.find("{%") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed cue reference in {r:?}"))?;
        let name = &after[..end];
        let cue = vocab
            .cues
            .get(name)
            .ok_or_else(|| format!("unknown cue `{name}` in {r:?} (see [cues])"))?;
        if cue.contains("{%") {
            return Err(format!("cue `{name}` refers to another cue: write it out"));
        }
        out.push_str("(?:");
        out.push_str(cue);
        out.push(')');
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces every `{@name}` in a regex with the lexicon's entries as an alternation,
/// normalized for the form the regex runs on.
fn expand_lexicon_refs(r: &str, vocab: &Vocab<'_>, on_compact: bool) -> Result<String, String> {
    let mut out = String::with_capacity(r.len());
    let mut rest = r;
    while let Some(at) = rest.find("{@") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed lexicon reference in {r:?}"))?;
        let name = &after[..end];
        let lex = vocab
            .lexicon(name)
            .ok_or_else(|| format!("unknown lexicon `{name}` in {r:?}"))?;
        let mut alts: Vec<String> = lex
            .entries
            .iter()
            .map(|e| {
                let n = if on_compact { compact(e) } else { normalize(e) };
                regex::escape(&n)
            })
            .collect();
        // Longest first, so the alternation prefers the whole word.
        alts.sort_by_key(|a| std::cmp::Reverse(a.len()));
        alts.dedup();
        out.push_str("(?:");
        out.push_str(&alts.join("|"));
        out.push(')');
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a regex without compiling it: the loader reports syntax errors by file, line and
/// rule, and the engine compiles each distinct regex once (compiling here too cost a third
/// of the load time).
fn check_syntax(re: &str) -> Result<(), Box<regex_syntax::Error>> {
    regex_syntax::Parser::new()
        .parse(re)
        .map(drop)
        .map_err(Box::new)
}

/// Checks a regex as written and returns it with lexicon references expanded.
fn check_regex(
    ctx: &Ctx<'_>,
    id: &Spanned<String>,
    field: &str,
    r: &str,
    vocab: &Vocab<'_>,
    on_compact: bool,
) -> Result<String, LoadError> {
    // Named cues first, so every check below also reads the cue's own text.
    let with_cues = expand_cue_refs(r, vocab).map_err(|e| ctx.err(id, e))?;
    let r = with_cues.as_str();
    let expanded = expand_lexicon_refs(r, vocab, on_compact).map_err(|e| ctx.err(id, e))?;
    if let Err(e) = check_syntax(&expanded) {
        return Err(ctx.err(id, format!("invalid {field} {r:?}: {e}")));
    }
    // The compact form has no spaces: a space in a regex read there can never match, so a
    // cue like `(ate my|boss fight)` silently never lowered anything (found in session 4).
    if on_compact && r.contains(' ') {
        return Err(ctx.err(
            id,
            format!(
                "{field} {r:?} has a space, but it is read on the compact form, which has \
                 none: write the words together"
            ),
        ));
    }
    // Nor digits (희망이 1도 없다 is 희망이도없다 there): a digit class read there is dead.
    if on_compact && (r.contains("[0-9]") || r.contains("\\d")) {
        return Err(ctx.err(
            id,
            format!(
                "{field} {r:?} reads digits, but the compact form drops them: match the \
                 words around the number, or use `regex` on the spaced form"
            ),
        ));
    }
    // Regexes see normalized text, where repeated letters are collapsed and Latin is
    // lowercase: a regex spelling "ll" or "A" could never match. (Lexicon references are
    // names, not text: they are left out of this check.)
    let mut prev: Option<char> = None;
    let mut escaped = false;
    let mut in_ref = false;
    let chars: Vec<char> = r.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_ref {
            in_ref = c != '}';
            prev = None;
            continue;
        }
        if c == '{' && chars.get(i + 1) == Some(&'@') {
            in_ref = true;
            prev = None;
            continue;
        }
        if escaped {
            escaped = false;
            prev = None;
            continue;
        }
        if c == '\\' {
            escaped = true;
            prev = None;
            continue;
        }
        if c.is_alphabetic() && prev == Some(c) {
            return Err(ctx.err(
                id,
                format!(
                    "{field} {r:?} spells {c}{c}, but normalization collapses repeated letters: \
                     write it once"
                ),
            ));
        }
        prev = Some(c);
    }
    Ok(expanded)
}

/// `w` as one precomposed Hangul syllable, if it is exactly one.
fn one_syllable(w: &str) -> Option<(char, super::hangul::Syllable)> {
    let mut cs = w.chars();
    let c = cs.next()?;
    let syllable = super::hangul::Syllable::of(c)?;
    cs.next().is_none().then_some((c, syllable))
}

/// A `[typo] dialect` entry, if `from` and `to` are one Hangul syllable each and
/// `not_after_final` and `after_final` hold only consonants.
fn dialect_spelling(d: &DialectSpec) -> Option<DialectSpelling> {
    let one = |w: &str| one_syllable(w).map(|(c, _)| c);
    let consonants = |w: &str| {
        let cs: Vec<char> = w.chars().collect();
        cs.iter().all(|c| ('ㄱ'..='ㅎ').contains(c)).then_some(cs)
    };
    let finals = consonants(&d.not_after_final)?;
    let after_final = consonants(&d.after_final)?;
    Some(DialectSpelling {
        from: one(&d.from)?,
        to: one(&d.to)?,
        after_syllable: d.after_syllable,
        before: d.before.chars().collect(),
        not_after: d.not_after.chars().collect(),
        not_after_final: finals,
        after_final,
    })
}

/// The one syllable of a `[typo] spoken` entry, if it is one Hangul syllable with a final.
fn spoken_syllable(w: &str) -> Option<char> {
    one_syllable(w).and_then(|(c, syllable)| (syllable.jong != '\0').then_some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: &str = r#"
[levels]
none = { action = "answer", priority = 0 }
low = { action = "answer", priority = 1, wait_target_secs = 1800 }
medium = { action = "offer_counselor", priority = 2, wait_target_secs = 600 }
high = { action = "handoff", priority = 3, wait_target_secs = 120 }
imminent = { action = "urgent_handoff", priority = 4, wait_target_secs = 30 }
"#;

    fn load(rules: &str) -> Result<RuleSet, LoadError> {
        let text = format!("{LEVELS}\n{rules}");
        RuleSet::from_sources((Path::new("rules.toml"), &text), &[])
    }

    const RULE: &str = r#"
[[rule]]
id = "a"
category = "ideation"
level = "high"
patterns = ["죽고싶"]
examples = ["죽고 싶어"]
counter_examples = ["배고파 죽겠다"]
"#;

    #[test]
    fn a_valid_rule_loads() {
        let set = load(RULE).unwrap();
        assert_eq!(set.rules.len(), 1);
        assert_eq!(set.rules[0].matchers.patterns, vec!["죽고싶"]);
        assert_eq!(set.rules[0].at.line, 11);
        assert_eq!(set.version.len(), 12);
    }

    #[test]
    fn duplicate_id_names_file_line_and_rule() {
        let err = load(&format!("{RULE}{RULE}")).unwrap_err();
        assert_eq!(err.rule.as_deref(), Some("a"));
        assert_eq!(err.line, Some(19));
        assert!(err.message.contains("duplicate"));
        assert!(err.to_string().starts_with("rules.toml:19: rule `a`:"));
    }

    #[test]
    fn rules_built_on_two_threads_keep_file_order_and_report_the_first_problem() {
        // Eleven rules, so both threads get several; the order out is the order in.
        let many: String = (0..11)
            .map(|i| RULE.replace("id = \"a\"", &format!("id = \"r{i}\"")))
            .collect();
        let set = load(&many).unwrap();
        let ids: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
        let want: Vec<String> = (0..11).map(|i| format!("r{i}")).collect();
        assert_eq!(ids, want);
        // Broken rules at positions 3 (a bad regex) and 6 (a duplicate of r0): the first
        // in the file is reported, whichever thread built it; then with 3 mended, the 6th.
        let bad = RULE
            .replace("id = \"a\"", "id = \"r3\"")
            .replace("patterns = [\"죽고싶\"]", "regex = [\"(죽\"]");
        let mut rules: Vec<String> = (0..11)
            .map(|i| RULE.replace("id = \"a\"", &format!("id = \"r{i}\"")))
            .collect();
        rules[3] = bad;
        rules[6] = RULE.replace("id = \"a\"", "id = \"r0\"");
        let err = load(&rules.concat()).unwrap_err();
        assert_eq!(err.rule.as_deref(), Some("r3"), "{err}");
        rules[3] = RULE.replace("id = \"a\"", "id = \"r3\"");
        let err = load(&rules.concat()).unwrap_err();
        assert_eq!(err.rule.as_deref(), Some("r0"), "{err}");
        assert!(err.message.contains("duplicate"), "{err}");
    }

    #[test]
    fn named_cues_are_written_once_and_checked_where_used() {
        let with_unless = |cue: &str, unless: &str| {
            format!(
                "[cues]\n\"calm\" = '{cue}'\n{}",
                RULE.replacen(
                    "\nexamples = [",
                    &format!("\nunless = [{{ regex = '{unless}', level = \"low\" }}]\nlowered_examples = [\"죽고 싶어 괜찮아\"]\nexamples = ["),
                    1,
                )
            )
        };
        let set = load(&with_unless("괜찮(아|다)", "{%calm}")).unwrap();
        assert_eq!(set.rules[0].unless[0].regex, "(?:괜찮(아|다))");
        // An unknown name, a cue inside a cue and a cue that breaks a rule of the compact
        // form (a space) are errors naming the rule that uses it.
        let err = load(&with_unless("괜찮아", "{%calmer}")).unwrap_err();
        assert!(err.message.contains("unknown cue `calmer`"), "{err}");
        assert_eq!(err.rule.as_deref(), Some("a"));
        let err = load(&with_unless("{%calm}", "{%calm}")).unwrap_err();
        assert!(err.message.contains("refers to another cue"), "{err}");
        let err = load(&with_unless("괜찮 아", "{%calm}")).unwrap_err();
        assert!(err.message.contains("has a space"), "{err}");
    }

    #[test]
    fn spoken_syllables_are_one_syllable_with_a_final() {
        let set = load(&format!(
            "[typo]\nspoken = [\"죽\", \"먹\", \"었\"]\n{RULE}"
        ))
        .unwrap();
        assert_eq!(set.typo.spoken, vec!['먹', '었', '죽']);
        for bad in ["먹다", "주", "ㅈ", "a"] {
            let err = load(&format!("[typo]\nspoken = [\"{bad}\"]\n{RULE}")).unwrap_err();
            assert!(err.message.contains("[typo] spoken"), "{bad}: {err}");
            assert!(err.to_string().starts_with("rules.toml"), "{err}");
        }
    }

    #[test]
    fn dialect_entries_are_one_syllable_each_and_finals_are_consonants() {
        let set = load(&format!(
            "[typo]\ndialect = [{{ from = \"읎\", to = \"없\" }}, {{ from = \"것\", to = \"겠\", after_syllable = true, before = \"다\", not_after_final = \"ㄴㅁ\" }}]\n{RULE}"
        ))
        .unwrap();
        assert_eq!(set.typo.dialect.len(), 2);
        assert_eq!(
            (set.typo.dialect[1].from, set.typo.dialect[1].to),
            ('것', '겠')
        );
        assert!(set.typo.dialect[1].fits(Some('되'), Some('다')));
        assert!(!set.typo.dialect[1].fits(Some('는'), Some('다')));
        assert!(!set.typo.dialect[1].fits(None, Some('다')));
        for bad in [
            "{ from = \"읎다\", to = \"없\" }",
            "{ from = \"읎\", to = \"ㅂ\" }",
            "{ from = \"것\", to = \"겠\", not_after_final = \"a\" }",
        ] {
            let err = load(&format!("[typo]\ndialect = [{bad}]\n{RULE}")).unwrap_err();
            assert!(err.message.contains("[typo] dialect"), "{bad}: {err}");
            assert!(err.to_string().starts_with("rules.toml"), "{err}");
        }
    }

    #[test]
    fn bad_regex_names_the_rule() {
        let err = load(&RULE.replace("patterns = [\"죽고싶\"]", "regex = [\"(죽\"]")).unwrap_err();
        assert_eq!(err.rule.as_deref(), Some("a"));
        assert!(err.message.contains("invalid regex"), "{err}");
    }

    #[test]
    fn doubled_letters_in_regex_are_rejected() {
        let err = load(&RULE.replace("patterns = [\"죽고싶\"]", "regex = [\"kill\"]")).unwrap_err();
        assert!(err.message.contains("collapses"), "{err}");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let err = load("[[rule]]\nid = \n").unwrap_err();
        assert_eq!(err.line, Some(10));
        assert!(err.message.contains("invalid TOML"));
    }

    #[test]
    fn unknown_field_is_an_error() {
        let err =
            load(&RULE.replace("level = \"high\"", "level = \"high\"\nexampels = []")).unwrap_err();
        assert!(err.message.contains("exampels"), "{err}");
    }

    #[test]
    fn raise_must_go_up_and_carry_examples() {
        let up = RULE.to_owned() + "raise = { level = \"imminent\", when = [\"오늘밤\"] }\n";
        let err = load(&up).unwrap_err();
        assert!(err.message.contains("raised_examples"), "{err}");
        let ok = up.clone() + "raised_examples = [\"오늘밤 죽고 싶어\"]\n";
        let set = load(&ok).unwrap();
        let raise = set.rules[0].raise.as_ref().unwrap();
        assert_eq!(raise.level, Level::Imminent);
        let down = ok.replace("level = \"imminent\"", "level = \"medium\"");
        let err = load(&down).unwrap_err();
        assert!(err.message.contains("above"), "{err}");
        // `always` instead of `when`: one or the other, never both, never neither.
        let always = ok.replace("when = [\"오늘밤\"]", "always = true");
        let set = load(&always).unwrap();
        assert!(set.rules[0].raise.as_ref().unwrap().when.is_empty());
        let both = ok.replace("when = [\"오늘밤\"]", "when = [\"오늘밤\"], always = true");
        assert!(load(&both).unwrap_err().message.contains("not both"));
        let neither = ok.replace("when = [\"오늘밤\"]", "when = []");
        assert!(load(&neither).unwrap_err().message.contains("not both"));
    }

    #[test]
    fn min_parts_needs_parts_and_a_count_between_two_and_their_number() {
        let parts = RULE.replace(
            "patterns = [\"죽고싶\"]",
            "parts = [{ name = \"a\", patterns = [\"죽고\"] }, { name = \"b\", patterns = [\"싶\"] }, { name = \"c\", patterns = [\"정말\"] }]",
        );
        assert_eq!(
            load(&parts).unwrap().rules[0].min_parts,
            3,
            "all parts by default"
        );
        let two = parts.clone() + "min_parts = 2\n";
        assert_eq!(load(&two).unwrap().rules[0].min_parts, 2);
        for bad in ["min_parts = 1\n", "min_parts = 4\n"] {
            let err = load(&(parts.clone() + bad)).unwrap_err();
            assert!(err.message.contains("min_parts"), "{err}");
            assert_eq!(err.rule.as_deref(), Some("a"));
        }
        let err = load(&(RULE.to_owned() + "min_parts = 2\n")).unwrap_err();
        assert!(err.message.contains("min_parts"), "{err}");
    }

    #[test]
    fn a_word_that_collapses_to_one_letter_is_rejected() {
        let parts = RULE.replace(
            "patterns = [\"죽고싶\"]",
            "parts = [{ name = \"a\", patterns = [\"죽고\"] }, { name = \"b\", patterns = [\"영영\"] }]",
        );
        let err = load(&parts).unwrap_err();
        assert!(err.message.contains("single letter"), "{err}");
        // One letter written as one letter is a deliberate part.
        assert!(load(&parts.replace("영영", "칼")).is_ok());
    }

    #[test]
    fn unless_on_imminent_is_rejected() {
        let rule = RULE.replace("\"high\"", "\"imminent\"") + "unless = [\"뉴스\"]\n";
        let err = load(&rule).unwrap_err();
        assert!(err.message.contains("imminent"), "{err}");
    }

    #[test]
    fn a_cue_read_on_the_compact_form_may_not_hold_a_space() {
        for field in [
            "unless = ['(ate my|lol)']",
            "unless = ['(lol)']\nstill = ['(for real)']",
        ] {
            let err = load(&format!("{RULE}{field}\n")).unwrap_err();
            assert!(err.message.contains("has a space"), "{field}: {err}");
            assert!(err.to_string().contains("rule `a`"), "{field}: {err}");
        }
        assert!(load(&format!("{RULE}unless = ['(atemy|lol)']\n")).is_ok());
        let err = load(&format!("{RULE}unless = ['[0-9]+개월째안해']\n")).unwrap_err();
        assert!(err.message.contains("drops them"), "{err}");
    }

    #[test]
    fn rules_need_examples_and_counter_examples() {
        let err = load(&RULE.replace("examples = [\"죽고 싶어\"]", "")).unwrap_err();
        assert!(err.message.contains("example"), "{err}");
        let err = load(&RULE.replace("counter_examples = [\"배고파 죽겠다\"]", "")).unwrap_err();
        assert!(err.message.contains("counter-example"), "{err}");
    }

    #[test]
    fn one_letter_compact_pattern_is_rejected() {
        let err = load(&RULE.replace("[\"죽고싶\"]", "[\"죽\"]")).unwrap_err();
        assert!(err.message.contains("two letters"), "{err}");
    }
}
