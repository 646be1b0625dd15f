//! [`TriageEngine::assess`]: from one message to a level, the rules that fired, the words
//! that fired them and the top intent.
//!
//! # Cost
//!
//! Built once (about 0.2 s for the shipped files), then shared immutably: `assess` takes
//! `&self` and never locks. Per message it normalizes once and runs one aho-corasick
//! automaton over each form: it holds every literal pattern of every rule and intent for that
//! form, and the trigger words that pick the few regexes that can match
//! ([`super::trigger`]). `unless` patterns run only for rules that already matched. One
//! skeleton scan finds typing slips; only a message with a slip to repair, or a spelling as
//! pronounced or a dialect spelling to write back, is scanned a second time (rules only,
//! over the repaired words).

use std::path::Path;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::hangul::{is_compat_jamo, keystrokes};
use super::normalize::{Form, Normalized, compact, layout_form, normalize};
use super::rules::{ExampleFailure, LoadError, Matchers, RuleSet};
use super::typo::{
    Skeleton, Spoken, dropped_one_final, hangul_runs, pattern_skeleton, skeleton, stray_consonants,
    tensed_one_initial, within_one,
};
use super::{Action, Category, Level, LevelPolicy, Span};

/// The result of triaging one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The message's level: the highest level among the rules that fired.
    pub level: Level,
    /// What the level calls for, from the rules file.
    pub action: Action,
    /// The best-matching intent, if any matched.
    pub intent: Option<Arc<str>>,
    /// Every rule that fired, in file order.
    pub rules: Vec<RuleHit>,
    /// The words that fired (rules only), as sorted, merged character ranges of the
    /// original text.
    pub spans: Vec<Span>,
    /// Identifies the loaded rule and intent files.
    pub ruleset_version: Arc<str>,
}

impl Assessment {
    /// Ids of the rules that fired.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.id)
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHit {
    /// The rule id.
    pub id: Arc<str>,
    /// Its category.
    pub category: Category,
    /// The level it gives this message (after any `unless`).
    pub level: Level,
    /// Whether an `unless` pattern lowered it.
    pub lowered: bool,
    /// Where it fired in the original text: exactly the words that matched.
    pub spans: Vec<Span>,
    /// For a lowered hit: where the cue that lowered it stands in the original text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lowered_by: Option<Span>,
    /// For a raised hit: where the cue that raised it (`raise`) stands in the original text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raised_by: Option<Span>,
    /// For a rule built from parts: which part matched where.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartHit>,
    /// Whether the words were read through one typing slip or the Latin keyboard layout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub typo: bool,
}

/// One part of a rule built from parts, where it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHit {
    /// The part's name in the rules file.
    pub name: Arc<str>,
    /// Where it matched in the original text.
    pub span: Span,
}

/// What triage remembers of a conversation beyond its level: plain data, kept in the
/// conversation's record. The level itself is kept once, by the conversation (the state
/// machine's [`Conversation::level`](crate::conversation::Conversation)), because the
/// screener can raise it too; [`TriageEngine::escalate`] takes it and returns the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRisk {
    /// How many messages reached each level, indexed by [`Level::index`].
    pub counts: [u32; 5],
    /// Ids of the escalations that have fired.
    pub escalations: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormKind {
    Spaced,
    Compact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Rule(u32),
    /// A part of a rule built from parts: (rule, part).
    Part(u32, u16),
    Intent(u32),
}

impl Target {
    /// The rule a rule or part target belongs to.
    fn rule(self) -> Option<u32> {
        match self {
            Target::Rule(r) | Target::Part(r, _) => Some(r),
            Target::Intent(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A match counts for the target.
    Match,
    /// A match masks the target rule's matches that lie inside it.
    Except,
    /// A match masks every rule's matches that lie inside it.
    GlobalExcept,
    /// A real word one slip from a risk word: masks slips read inside it.
    NearMiss,
    /// A scene or role noun (`[story]`): masks a risk phrase that ends just before it.
    Story,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    target: Target,
    form: FormKind,
    role: Role,
}

/// One match, already mapped to the original text.
#[derive(Debug, Clone, Copy)]
struct Hit {
    target: Target,
    role: Role,
    span: Span,
    /// Letters matched (intents score by it).
    weight: u32,
    /// Read through a typing slip or the Latin layout.
    typo: bool,
}

impl Hit {
    fn covers(&self, other: &Hit) -> bool {
        self.span.0 <= other.span.0 && other.span.1 <= self.span.1
    }
}

/// Each distinct regex compiled once per build: the same cue (an idiom, a recovery phrase)
/// serves many rules, and a compiled regex is cheap to clone.
struct RegexCache<T> {
    built: foldhash::HashMap<String, T>,
    compile: fn(&str) -> Result<T, String>,
}

impl<T: Clone> RegexCache<T> {
    fn new(compile: fn(&str) -> Result<T, String>) -> RegexCache<T> {
        RegexCache {
            built: foldhash::HashMap::default(),
            compile,
        }
    }

    fn get(&mut self, pattern: &str) -> Result<T, String> {
        if let Some(re) = self.built.get(pattern) {
            return Ok(re.clone());
        }
        let re = (self.compile)(pattern)?;
        self.built.insert(pattern.to_owned(), re.clone());
        Ok(re)
    }

    fn all(&mut self, patterns: &[String]) -> Result<Vec<T>, String> {
        patterns.iter().map(|p| self.get(p)).collect()
    }
}

/// A context cue (`unless`, `still`, `raise`, `[story] still`). A cue runs only on a message
/// that a rule has already matched, once over each short form, so it is built without the
/// literal prefilter that speeds a regex's search through long text: the prefilter was half
/// of the build time of the 388 shipped cues (63 → 32 ms), and these searches never need it.
#[derive(Clone)]
struct Cue(regex_automata::meta::Regex);

impl Cue {
    fn new(pattern: &str) -> Result<Cue, String> {
        regex_automata::meta::Regex::builder()
            .configure(regex_automata::meta::Config::new().auto_prefilter(false))
            .build(pattern)
            .map(Cue)
            .map_err(|e| e.to_string())
    }

    fn find(&self, text: &str) -> Option<regex_automata::Match> {
        self.0.find(text)
    }

    fn find_iter<'r, 'h>(
        &'r self,
        text: &'h str,
    ) -> impl Iterator<Item = regex_automata::Match> + use<'r, 'h> {
        self.0.find_iter(text)
    }

    fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

/// The regexes of one form, each on its own (where, and its `hit` group). Which of them can
/// match a message at all is found by the form's literal automaton ([`FormLiterals`]).
struct RegexBank {
    each: Vec<(Regex, Target)>,
}

impl RegexBank {
    fn new(
        entries: &[(String, Target)],
        cache: &mut RegexCache<Regex>,
    ) -> Result<RegexBank, String> {
        let each = entries
            .iter()
            .map(|(r, t)| cache.get(r).map(|re| (re, *t)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RegexBank { each })
    }

    /// Runs each regex of `candidates` (ascending, the order the hits were always reported
    /// in); for each, up to 8 matches. A group named `hit`, when present, is the span
    /// reported (so a regex can look at a neighbouring letter without swallowing it).
    fn scan(&self, form: &Form, rules_only: bool, candidates: &[u32], out: &mut Vec<Hit>) {
        let text = form.as_str();
        for &i in candidates {
            let (re, target) = &self.each[i as usize];
            if rules_only && target.rule().is_none() {
                continue;
            }
            for c in re.captures_iter(text).take(8) {
                let m = c.name("hit").or_else(|| c.get(0)).expect("group 0");
                if let Some(span) = form.original_span(m.start(), m.end()) {
                    out.push(Hit {
                        target: *target,
                        role: Role::Match,
                        span,
                        weight: letters(m.as_str()),
                        typo: false,
                    });
                }
            }
        }
    }
}

fn letters(s: &str) -> u32 {
    s.chars().filter(|c| *c != ' ').count() as u32
}

/// A literal matched within one slip, with its keystrokes' owners.
struct Tolerant {
    literal: String,
    /// The literal's keystrokes, once ([`super::hangul::keystrokes`]).
    keys: Box<[char]>,
    owners: Vec<Owner>,
}

struct CompiledRule {
    id: Arc<str>,
    category: Category,
    level: Level,
    unless: Vec<(Cue, Level, Option<usize>)>,
    still: Vec<Cue>,
    /// The level, and the cues (none for `always = true`).
    raise: Option<(Level, Vec<Cue>)>,
    parts: Vec<Arc<str>>,
    within: usize,
    min_parts: usize,
}

struct CompiledIntent {
    id: Arc<str>,
    priority: i32,
}

/// The compiled triage engine. Build once with [`TriageEngine::load`]; cheap to share
/// behind an `Arc`; `Send + Sync`.
pub struct TriageEngine {
    set: RuleSet,
    /// Literals and trigger words of the spaced form and of the compact form.
    spaced: FormLiterals,
    compact: FormLiterals,
    spaced_regex: RegexBank,
    compact_regex: RegexBank,
    /// Skeletons of the tolerant literals, then of the repair words ([`super::typo`]): one
    /// scan finds both. Pattern `i` is `tolerant[i]`, or `repair_words[i - tolerant.len()]`.
    skeletons: Option<AhoCorasick>,
    tolerant: Vec<Tolerant>,
    /// Sorted, so that a window that is itself a repair word is found by binary search.
    repair_words: Vec<String>,
    /// The words of the near misses: a window that is one of them is never rewritten.
    near_miss_words: foldhash::HashSet<String>,
    /// Spellings as pronounced, written back ([`Spoken`]).
    spoken: Spoken,
    rules: Vec<CompiledRule>,
    intents: Vec<CompiledIntent>,
    /// Regexes that keep risk phrases before a story word (상상, 나도).
    story_still: Vec<Cue>,
    version: Arc<str>,
}

impl std::fmt::Debug for TriageEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriageEngine")
            .field("rules", &self.rules.len())
            .field("intents", &self.intents.len())
            .field("literals", &self.literal_counts().0)
            .field("tolerant", &self.tolerant.len())
            .field(
                "spaced_regexes_always_run",
                &(self.spaced.always.len(), self.spaced_regex.each.len()),
            )
            .field(
                "compact_regexes_always_run",
                &(self.compact.always.len(), self.compact_regex.each.len()),
            )
            .field("version", &self.version)
            .finish()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TriageEngine>();
    assert_send_sync::<Assessment>();
};

/// States this close to the root of an automaton get a full transition table. Korean text
/// spends most of its bytes near the root (UTF-8 lead bytes), so deeper dense states pay;
/// measured in benches/triage.rs.
const DENSE_DEPTH: usize = 6;

/// One form's automaton. Pattern `i` is a literal of the targets `owners[i]`, a trigger word
/// of the regexes `triggers[i]` ([`super::trigger`]), or both: one scan finds the literals
/// and picks the regexes worth running.
struct FormLiterals {
    ac: AhoCorasick,
    owners: Vec<Vec<Owner>>,
    triggers: Vec<Box<[u32]>>,
    /// Regexes with no trigger word: run on every message.
    always: Vec<u32>,
    /// Patterns that are literals (the rest are only trigger words).
    literals: usize,
}

/// Collects the literals of every target while the engine is built.
#[derive(Default)]
struct Literals {
    patterns: Vec<String>,
    owners: Vec<Vec<Owner>>,
    index: foldhash::HashMap<String, usize>,
    tolerant: Vec<Tolerant>,
    tolerant_index: foldhash::HashMap<String, usize>,
}

impl Literals {
    fn add(&mut self, text: String, owner: Owner) {
        let i = match self.index.get(&text) {
            Some(&i) => i,
            None => {
                self.patterns.push(text.clone());
                self.owners.push(Vec::new());
                self.index.insert(text, self.patterns.len() - 1);
                self.patterns.len() - 1
            }
        };
        self.owners[i].push(owner);
    }

    /// Also matched within one slip, if long enough and all Hangul.
    fn add_tolerant(&mut self, text: &str, owner: Owner, min_keys: usize) {
        let keys = super::hangul::keystrokes(text);
        if keys.len() < min_keys || pattern_skeleton(text).is_none() {
            return;
        }
        let i = match self.tolerant_index.get(text) {
            Some(&i) => i,
            None => {
                self.tolerant.push(Tolerant {
                    literal: text.to_owned(),
                    keys: keys.into_boxed_slice(),
                    owners: Vec::new(),
                });
                self.tolerant_index
                    .insert(text.to_owned(), self.tolerant.len() - 1);
                self.tolerant.len() - 1
            }
        };
        self.tolerant[i].owners.push(owner);
    }

    /// An `except` phrase: matched on the compact form, exactly and within one slip.
    /// Masking compares spans of the original text, so a phrase found on the compact form
    /// also masks a match made on the spaced form; it need not be scanned twice. An idiom
    /// needs two keystrokes more than a risk word to be read through a slip: a short one is
    /// one slip from the risk word it guards against (뒤지게, extremely, and 뒤질게, I'll die).
    fn add_except(&mut self, phrase: &str, target: Target, role: Role, min_keys: usize) {
        let c = compact(phrase);
        let owner = Owner {
            target,
            form: FormKind::Compact,
            role,
        };
        self.add_tolerant(&c, owner, min_keys + 2);
        self.add(c, owner);
    }
}

/// The hits that can mask a match (`except` phrases and near misses): few, where matches
/// are many, so each match is checked against these alone.
fn maskers(hits: &[Hit]) -> Vec<&Hit> {
    hits.iter()
        .filter(|e| matches!(e.role, Role::Except | Role::GlobalExcept | Role::NearMiss))
        .collect()
}

impl TriageEngine {
    /// Loads `escalation-rules.toml` and the intents directory, validates them and compiles
    /// the matchers.
    ///
    /// # Errors
    /// A [`LoadError`] naming the file, line and rule at fault.
    pub fn load(rules: &Path, intents: &Path) -> Result<TriageEngine, LoadError> {
        TriageEngine::build(RuleSet::load(rules, intents)?)
    }

    /// Compiles an already loaded rule set.
    ///
    /// # Errors
    /// A [`LoadError`] if a pattern cannot be compiled (the loader checks each regex, so
    /// this is only a size limit in practice).
    pub fn build(set: RuleSet) -> Result<TriageEngine, LoadError> {
        let min_keys = set.typo.min_keys;
        let mut lit = Literals::default();
        let mut spaced_regex = Vec::new();
        let mut compact_regex = Vec::new();

        let mut targets: Vec<(Target, &Matchers, bool)> = Vec::new();
        for (i, r) in set.rules.iter().enumerate() {
            targets.push((Target::Rule(i as u32), &r.matchers, r.typo));
            for (j, p) in r.parts.iter().enumerate() {
                targets.push((Target::Part(i as u32, j as u16), &p.matchers, r.typo));
            }
        }
        for (i, intent) in set.intents.iter().enumerate() {
            targets.push((Target::Intent(i as u32), &intent.matchers, false));
        }
        // Excepts first, so that a phrase that is also some target's literal keeps one entry.
        for &(target, m, _) in &targets {
            for e in &m.except {
                lit.add_except(e, target, Role::Except, min_keys);
            }
        }
        for e in &set.global_except {
            lit.add_except(e, Target::Rule(0), Role::GlobalExcept, min_keys);
        }
        for m in &set.story.markers {
            lit.add(
                m.clone(),
                Owner {
                    target: Target::Rule(0),
                    form: FormKind::Compact,
                    role: Role::Story,
                },
            );
        }
        for n in &set.typo.near_misses {
            lit.add(
                n.clone(),
                Owner {
                    target: Target::Rule(0),
                    form: FormKind::Compact,
                    role: Role::NearMiss,
                },
            );
        }
        for &(target, m, typo) in &targets {
            for p in &m.patterns {
                let owner = Owner {
                    target,
                    form: FormKind::Compact,
                    role: Role::Match,
                };
                if typo {
                    lit.add_tolerant(p, owner, min_keys);
                }
                lit.add(p.clone(), owner);
            }
            for w in &m.words {
                lit.add(
                    w.clone(),
                    Owner {
                        target,
                        form: FormKind::Spaced,
                        role: Role::Match,
                    },
                );
            }
            spaced_regex.extend(m.regex.iter().map(|r| (r.clone(), target)));
            compact_regex.extend(m.compact_regex.iter().map(|r| (r.clone(), target)));
        }

        // Repair words ([`super::typo`]): the long entries of the lexicons marked `repair`,
        // and the listed `[typo] words`.
        let mut repair: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        {
            let min = set.typo.repair_min_keys;
            let mut add = |source: &str, syllables: usize| {
                for run in hangul_runs(source) {
                    if run.chars().count() >= syllables
                        && super::hangul::keystrokes(run).len() >= min
                    {
                        repair.insert(run.to_owned());
                    }
                }
            };
            for lexicon in set.lexicons.iter().filter(|l| l.repair) {
                for e in &lexicon.entries {
                    add(&compact(e), 3);
                }
            }
            for w in &set.typo.words {
                add(w, 2);
            }
        }
        let repair_words: Vec<String> = repair.into_iter().collect();
        let near_miss_words = set
            .typo
            .near_misses
            .iter()
            .flat_map(|n| hangul_runs(n).map(str::to_owned))
            .collect();

        let compile_err = |message: String| LoadError {
            file: set
                .rules
                .first()
                .map(|r| r.at.file.clone())
                .unwrap_or_default(),
            line: None,
            rule: None,
            message,
        };
        // One automaton per form: each form is scanned only for its own literals, and for
        // the trigger words of its own regexes.
        let per_form = |kind: FormKind, regexes: &[(String, Target)]| {
            let mut pats: Vec<&str> = Vec::new();
            let mut owners: Vec<Vec<Owner>> = Vec::new();
            let mut at: foldhash::HashMap<&str, usize> = foldhash::HashMap::default();
            for (p, os) in lit.patterns.iter().zip(&lit.owners) {
                let mine: Vec<Owner> = os.iter().copied().filter(|o| o.form == kind).collect();
                if !mine.is_empty() {
                    at.insert(p, pats.len());
                    pats.push(p);
                    owners.push(mine);
                }
            }
            let literals = pats.len();
            let sources: Vec<&str> = regexes.iter().map(|(r, _)| r.as_str()).collect();
            let words = super::trigger::words(&sources);
            let mut triggers: Vec<Vec<u32>> = vec![Vec::new(); pats.len()];
            let mut always = Vec::new();
            for (i, words) in words.iter().enumerate() {
                let Some(words) = words else {
                    always.push(i as u32);
                    continue;
                };
                for w in words {
                    let k = *at.entry(w).or_insert_with(|| {
                        pats.push(w);
                        triggers.push(Vec::new());
                        pats.len() - 1
                    });
                    triggers[k].push(i as u32);
                }
            }
            owners.resize_with(pats.len(), Vec::new);
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(match kind {
                    // Thousands of Korean literals: a DFA would take tens of MiB; the
                    // contiguous NFA a few, at about the same speed (benches/triage.rs).
                    FormKind::Compact => AhoCorasickKind::ContiguousNFA,
                    FormKind::Spaced => AhoCorasickKind::ContiguousNFA,
                }))
                .dense_depth(DENSE_DEPTH)
                .build(&pats)
                .map(|ac| FormLiterals {
                    ac,
                    owners,
                    triggers: triggers.into_iter().map(Vec::into_boxed_slice).collect(),
                    always,
                    literals,
                })
                .map_err(|e| compile_err(format!("cannot build the pattern automaton: {e}")))
        };
        let skeletons = || {
            if lit.tolerant.is_empty() && repair_words.is_empty() {
                return Ok(None);
            }
            let keys: Vec<String> = lit
                .tolerant
                .iter()
                .map(|t| &t.literal)
                .chain(&repair_words)
                .map(|w| pattern_skeleton(w).expect("checked when added"))
                .collect();
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .dense_depth(DENSE_DEPTH)
                .build(&keys)
                .map(Some)
                .map_err(|e| compile_err(format!("cannot build the typo automaton: {e}")))
        };
        let compile_rule = |r: &super::rules::RuleDef, cache: &mut RegexCache<Cue>| {
            let err = |e: String| compile_err(format!("rule `{}`: {e}", r.id));
            let unless = r
                .unless
                .iter()
                .map(|u| cache.get(&u.regex).map(|re| (re, u.level, u.near)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let still = cache.all(&r.still).map_err(err)?;
            let raise = match &r.raise {
                None => None,
                Some(raise) => Some((raise.level, cache.all(&raise.when).map_err(err)?)),
            };
            Ok(CompiledRule {
                id: Arc::from(r.id.as_str()),
                category: r.category,
                level: r.level,
                unless,
                still,
                raise,
                parts: r.parts.iter().map(|p| Arc::from(p.name.as_str())).collect(),
                within: r.within,
                min_parts: r.min_parts,
            })
        };
        // The literal automata and the regexes are independent, and each is about half of
        // the build: the automata are built on a thread of their own (benches/triage.rs).
        let (automata, regexes) = std::thread::scope(|s| {
            let automata = s.spawn(|| -> Result<_, LoadError> {
                Ok((
                    per_form(FormKind::Spaced, &spaced_regex)?,
                    per_form(FormKind::Compact, &compact_regex)?,
                    skeletons()?,
                ))
            });
            let regexes = (|| -> Result<_, LoadError> {
                let mut cache: RegexCache<Regex> =
                    RegexCache::new(|p| Regex::new(p).map_err(|e| e.to_string()));
                let bank = |entries: &[(String, Target)], cache: &mut RegexCache<Regex>| {
                    RegexBank::new(entries, cache)
                        .map_err(|e| compile_err(format!("cannot compile the regexes: {e}")))
                };
                let banks = (
                    bank(&spaced_regex, &mut cache)?,
                    bank(&compact_regex, &mut cache)?,
                );
                let mut cues = RegexCache::new(Cue::new);
                let rules = set
                    .rules
                    .iter()
                    .map(|r| compile_rule(r, &mut cues))
                    .collect::<Result<Vec<_>, LoadError>>()?;
                let story_still = cues
                    .all(&set.story.still)
                    .map_err(|e| compile_err(format!("[story] still: {e}")))?;
                Ok((banks, rules, story_still))
            })();
            let automata = automata
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (automata, regexes)
        });
        let (spaced, compact, skeletons) = automata?;
        let ((spaced_regex, compact_regex), rules, story_still) = regexes?;

        let intents = set
            .intents
            .iter()
            .map(|i| CompiledIntent {
                id: Arc::from(i.id.as_str()),
                priority: i.priority,
            })
            .collect();
        let version = Arc::from(set.version.as_str());
        let spoken = Spoken::new(&set.typo.spoken, &set.typo.dialect);
        Ok(TriageEngine {
            set,
            spaced,
            compact,
            spaced_regex,
            compact_regex,
            skeletons,
            tolerant: lit.tolerant,
            repair_words,
            near_miss_words,
            spoken,
            rules,
            intents,
            story_still,
            version,
        })
    }

    /// The loaded rule set (for listing rules, levels and examples).
    pub fn rule_set(&self) -> &RuleSet {
        &self.set
    }

    /// A short hash identifying the loaded files.
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// The policy (action, priority, wait target) of a level.
    pub fn policy(&self, level: Level) -> LevelPolicy {
        self.set.levels[level.index()]
    }

    /// How many literals the automaton holds, and how many of them match within a slip.
    pub fn literal_counts(&self) -> (usize, usize) {
        (
            self.spaced.literals + self.compact.literals,
            self.tolerant.len(),
        )
    }

    /// Every match in `text`, mapped to the original characters, before masking.
    /// Also returns the repaired compact form when a slip was repaired ([`super::typo`]).
    fn hits(&self, text: &str) -> (Normalized, Option<Form>, Vec<Hit>) {
        let n = Normalized::new(text);
        let mut hits = Vec::new();
        // The regexes a form's trigger words pick; one buffer for every form.
        let mut picked = Vec::new();
        self.scan_form(&n.spaced, FormKind::Spaced, false, &mut picked, &mut hits);
        self.scan_form(&n.compact, FormKind::Compact, false, &mut picked, &mut hits);
        let mut candidates = Vec::new();
        if let Some(sk) = form_skeleton(&n.compact) {
            self.scan_slips(&n.compact, &sk, &mut hits, Some(&mut candidates));
        }
        let repaired = self.repaired(&n.compact, candidates, &hits);
        if let Some(repaired) = &repaired {
            // Every rule once more over the repaired words, marked as read through a slip.
            let from = hits.len();
            self.scan_form(repaired, FormKind::Compact, true, &mut picked, &mut hits);
            for h in &mut hits[from..] {
                h.typo = h.role == Role::Match;
            }
        }
        if let Some(layout) = layout_form(text) {
            // Korean typed on the Latin layout: rules only, marked as read through a slip.
            let from = hits.len();
            self.scan_form(&layout, FormKind::Compact, true, &mut picked, &mut hits);
            if let Some(sk) = form_skeleton(&layout) {
                self.scan_slips(&layout, &sk, &mut hits, None);
            }
            for h in &mut hits[from..] {
                h.typo = true;
            }
        }
        (n, repaired, hits)
    }

    /// The compact form with its slips repaired ([`super::typo`]): words one dropped key
    /// short of a repair word (`candidates`: byte range and word, from [`Self::scan_slips`])
    /// rewritten to it, stray consonants dropped. `None` when nothing needs it.
    fn repaired(
        &self,
        compact: &Form,
        candidates: Vec<(usize, usize, usize)>,
        hits: &[Hit],
    ) -> Option<Form> {
        let text = compact.as_str();
        let spoken = self.spoken.respell(text);
        let mut edits: Vec<(usize, usize, &str)> = spoken
            .iter()
            .map(|(a, b, w)| (*a, *b, w.as_str()))
            .collect();
        if text.chars().any(is_compat_jamo) {
            edits.extend(stray_consonants(text).into_iter().map(|(a, b)| (a, b, "")));
        }
        for (b0, b1, w) in candidates {
            // A window that is itself a repair word or a near miss is a real word.
            let window = &text[b0..b1];
            if self.near_miss_words.contains(window)
                || self
                    .repair_words
                    .binary_search_by(|w| w.as_str().cmp(window))
                    .is_ok()
            {
                continue;
            }
            let near_miss = compact.original_span(b0, b1).is_some_and(|span| {
                hits.iter()
                    .any(|h| h.role == Role::NearMiss && h.span.0 < span.1 && span.0 < h.span.1)
            });
            if !near_miss {
                edits.push((b0, b1, &self.repair_words[w]));
            }
        }
        if edits.is_empty() {
            return None;
        }
        // Leftmost first, the longer of two at one place; overlapping edits are dropped.
        edits.sort_by_key(|e| (e.0, std::cmp::Reverse(e.1)));
        let mut chosen = Vec::with_capacity(edits.len());
        let mut end = 0;
        for e in edits {
            if e.0 >= end {
                end = e.1;
                chosen.push(e);
            }
        }
        Some(compact.rewrite(&chosen))
    }

    /// The literals of `form` and the matches of the regexes their trigger words pick
    /// (`picked` is a buffer, emptied first). `rules_only` skips intents.
    fn scan_form(
        &self,
        form: &Form,
        kind: FormKind,
        rules_only: bool,
        picked: &mut Vec<u32>,
        out: &mut Vec<Hit>,
    ) {
        let (literals, regexes) = match kind {
            FormKind::Spaced => (&self.spaced, &self.spaced_regex),
            FormKind::Compact => (&self.compact, &self.compact_regex),
        };
        picked.clear();
        picked.extend_from_slice(&literals.always);
        let text = form.as_str();
        for m in literals.ac.find_overlapping_iter(text) {
            let p = m.pattern().as_usize();
            picked.extend_from_slice(&literals.triggers[p]);
            let mut span = None;
            for o in &literals.owners[p] {
                if rules_only && o.target.rule().is_none() {
                    continue;
                }
                let Some(s) = *span.get_or_insert_with(|| form.original_span(m.start(), m.end()))
                else {
                    break;
                };
                out.push(Hit {
                    target: o.target,
                    role: o.role,
                    span: s,
                    weight: letters(&text[m.start()..m.end()]),
                    typo: false,
                });
            }
        }
        picked.sort_unstable();
        picked.dedup();
        regexes.scan(form, rules_only, picked, out);
    }

    /// Tolerant literals found within one slip (not exactly: exact matches are found by the
    /// automaton).
    /// Also collects, into `repairs`, windows one dropped key short of a repair word (byte
    /// range and the word's index in `repair_words`).
    fn scan_slips(
        &self,
        compact: &Form,
        sk: &Skeleton,
        out: &mut Vec<Hit>,
        mut repairs: Option<&mut Vec<(usize, usize, usize)>>,
    ) {
        let Some(skeletons) = &self.skeletons else {
            return;
        };
        let text = compact.as_str();
        let mut starts: Option<Vec<usize>> = None;
        for m in skeletons.find_overlapping_iter(&sk.text) {
            let starts = starts.get_or_insert_with(|| char_starts(text));
            let first = sk.source[m.start()] as usize;
            let last = sk.source[m.end() - 1] as usize;
            let (b0, b1) = (starts[first], starts[last + 1]);
            let i = m.pattern().as_usize();
            let Some(t) = self.tolerant.get(i) else {
                // A repair word: a dropped key, or Shift held on one initial. A changed
                // key is too often another word (지급, payment, is not 지금).
                let w = i - self.tolerant.len();
                if let Some(r) = repairs.as_deref_mut() {
                    let (word, window) = (&self.repair_words[w], &text[b0..b1]);
                    if dropped_one_final(word, window) || tensed_one_initial(word, window) {
                        r.push((b0, b1, w));
                    }
                }
                continue;
            };
            let window = &text[b0..b1];
            if window == t.literal || within_one(&t.keys, &keystrokes(window)) != Some(1) {
                continue;
            }
            let Some(span) = compact.original_span(b0, b1) else {
                continue;
            };
            for o in &t.owners {
                out.push(Hit {
                    target: o.target,
                    role: o.role,
                    span,
                    weight: (last + 1 - first) as u32,
                    typo: o.role == Role::Match,
                });
            }
        }
    }

    /// Triage one message.
    pub fn assess(&self, text: &str) -> Assessment {
        let (n, repaired, hits) = self.hits(text);
        let story = self.story_spans(text, &n, &hits);
        let maskers = maskers(&hits);
        let live: Vec<&Hit> = hits
            .iter()
            .filter(|h| h.role == Role::Match && !self.masked(h, &maskers))
            .filter(|h| !story.masks(h))
            .collect();

        // Whole rules, and parts grouped per rule.
        let mut rule_hits: Vec<(u32, RuleHit)> = Vec::new();
        let mut part_hits: Vec<(u32, u16, Span, bool)> = Vec::new();
        let mut intent_scores: Vec<(usize, i64)> = Vec::new();
        // Rules that also matched without a slip: their hit is not marked `typo`.
        let mut exact: Vec<u32> = Vec::new();
        // Words read through a slip where the same rule also matched exactly: the exact
        // words are the span (죽 고 싶 read exactly, not 죽 고 싶 다 one slip from 죽고시다).
        let mut slipped: Vec<(u32, Span)> = Vec::new();
        for h in &live {
            match h.target {
                Target::Rule(i) => {
                    let hit = self.rule_hit(&mut rule_hits, i);
                    hit.typo |= h.typo;
                    if h.typo {
                        slipped.push((i, h.span));
                    } else {
                        hit.spans.push(h.span);
                        exact.push(i);
                    }
                }
                Target::Part(i, j) => part_hits.push((i, j, h.span, h.typo)),
                Target::Intent(i) => {
                    match intent_scores.iter_mut().find(|(j, _)| *j == i as usize) {
                        Some((_, s)) => *s += h.weight as i64,
                        None => intent_scores.push((i as usize, h.weight as i64)),
                    }
                }
            }
        }
        let slipped: Vec<(u32, Span)> = slipped
            .into_iter()
            .filter(|&(i, span)| {
                !rule_hits
                    .iter()
                    .any(|(j, h)| *j == i && h.spans.iter().any(|s| s.0 < span.1 && span.0 < s.1))
            })
            .collect();
        for (i, span) in slipped {
            self.rule_hit(&mut rule_hits, i).spans.push(span);
        }
        // Letters before each character of the message (spaces and repeats left out),
        // counted once, when parts or a `near` cue need a distance.
        let mut letter_counts: Option<Vec<u32>> = None;
        let count_letters = || n.compact.count_before(text.chars().count());
        if !part_hits.is_empty() {
            // Parts are near each other when few letters lie between them, whatever spaces
            // or repeated letters were typed in between.
            let letters = letter_counts.get_or_insert_with(count_letters);
            let mut rules_with_parts: Vec<u32> = part_hits.iter().map(|p| p.0).collect();
            rules_with_parts.sort_unstable();
            rules_with_parts.dedup();
            for i in rules_with_parts {
                let mine: Vec<(u16, Span, bool)> = part_hits
                    .iter()
                    .filter(|p| p.0 == i)
                    .map(|p| (p.1, p.2, p.3))
                    .collect();
                if let Some(chosen) = self.combine(i, &mine, letters) {
                    let names = &self.rules[i as usize].parts;
                    let hit = self.rule_hit(&mut rule_hits, i);
                    if chosen.iter().all(|c| !c.2) {
                        exact.push(i);
                    }
                    for (j, span, typo) in chosen {
                        hit.spans.push(span);
                        hit.typo |= typo;
                        hit.parts.push(PartHit {
                            name: names[j as usize].clone(),
                            span,
                        });
                    }
                }
            }
        }

        // Context (`unless`) lowers a hit, never an `imminent` one. The first cue in the
        // rule's order that matches decides (authors list specific cues, such as recovery,
        // before general ones, such as negation); a `still` cue keeps the full level.
        // Cues are read on the words as typed and, when a slip or a spelling was repaired,
        // on the repaired words too, with spans mapped back through the repair: a slip
        // inside a cue would otherwise hide it, and a repair must not hide one either
        // (졸업, a cue, must not be lost when 업 before 시 reads as 없).
        // A cue with `near` lowers only a hit beside it (letters counted as for parts).
        let mut level = Level::None;
        let forms: &[&Form] = match &repaired {
            Some(r) => &[&n.compact, r],
            None => &[&n.compact],
        };
        let near_cues = rule_hits
            .iter()
            .any(|(i, _)| self.rules[*i as usize].unless.iter().any(|u| u.2.is_some()));
        let letters: &[u32] = if near_cues {
            letter_counts.get_or_insert_with(count_letters)
        } else {
            &[]
        };
        for (i, hit) in &mut rule_hits {
            if exact.contains(i) {
                hit.typo = false;
            }
            let rule = &self.rules[*i as usize];
            let spans = &hit.spans;
            let cue = rule.unless.iter().find_map(|(u, l, near)| match near {
                None => forms.iter().find_map(|f| {
                    u.find(f.as_str())
                        .map(|m| (*l, f.original_span(m.start(), m.end())))
                }),
                // Every span of the hit must lie beside a match of the cue: words of the
                // rule elsewhere in the message keep their level.
                Some(d) => {
                    let at: Vec<Span> = forms
                        .iter()
                        .flat_map(|f| {
                            u.find_iter(f.as_str())
                                .filter_map(|m| f.original_span(m.start(), m.end()))
                        })
                        .collect();
                    let beside = |s: &Span| at.iter().find(|c| letter_gap(**c, *s, letters) <= *d);
                    (!spans.is_empty() && spans.iter().all(|s| beside(s).is_some()))
                        .then(|| (*l, beside(&spans[0]).copied()))
                }
            });
            if let Some((lowered_to, at)) = cue {
                if !rule
                    .still
                    .iter()
                    .any(|s| forms.iter().any(|f| s.is_match(f.as_str())))
                {
                    hit.level = lowered_to;
                    hit.lowered = true;
                    hit.lowered_by = at;
                }
            }
            // Co-occurrence (`raise`): an unlowered hit with a second cue in the message
            // rises (a place now and a word of finality). With no cues (`always`), every
            // unlowered hit rises and its own words are the cue.
            if let (false, Some((to, when))) = (hit.lowered, &rule.raise) {
                if when.is_empty() {
                    hit.level = *to;
                    hit.raised_by = hit.spans.iter().min().copied();
                } else if let Some((f, m)) = when.iter().find_map(|w| {
                    forms
                        .iter()
                        .find_map(|f| w.find(f.as_str()).map(|m| (f, m)))
                }) {
                    hit.level = *to;
                    hit.raised_by = f.original_span(m.start(), m.end());
                }
            }
            hit.spans.sort_unstable();
            hit.spans.dedup();
            level = level.max(hit.level);
        }
        rule_hits.sort_by_key(|(i, _)| *i);
        let rules: Vec<RuleHit> = rule_hits.into_iter().map(|(_, h)| h).collect();

        let intent = intent_scores
            .iter()
            .map(|&(i, s)| (i, s + self.intents[i].priority as i64))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| self.intents[i].id.clone());

        let spans = merge_spans(rules.iter().flat_map(|h| h.spans.iter().copied()));
        Assessment {
            level,
            action: self.policy(level).action,
            intent,
            rules,
            spans,
            ruleset_version: self.version.clone(),
        }
    }

    /// The story words of a message, unless a `[story] still` cue says the writer is in the
    /// scene themselves.
    fn story_spans(&self, text: &str, n: &Normalized, hits: &[Hit]) -> StoryWords {
        let spans: Vec<Span> = hits
            .iter()
            .filter(|h| h.role == Role::Story)
            .map(|h| h.span)
            .collect();
        if spans.is_empty()
            || self
                .story_still
                .iter()
                .any(|r| r.is_match(n.compact.as_str()))
        {
            return StoryWords::default();
        }
        StoryWords {
            spans,
            letters: n.compact.count_before(text.chars().count()),
            within: self.set.story.within,
        }
    }

    /// Whether an `except` phrase (the rule's own, or a global one) covers a match, or a
    /// near miss covers a match read through a slip (`maskers`: from [`maskers`]).
    fn masked(&self, h: &Hit, maskers: &[&Hit]) -> bool {
        maskers.iter().any(|e| {
            e.covers(h)
                && match e.role {
                    Role::Except => match (e.target.rule(), h.target.rule()) {
                        (Some(a), Some(b)) => a == b,
                        _ => e.target == h.target,
                    },
                    Role::GlobalExcept => h.target.rule().is_some(),
                    Role::NearMiss => h.typo,
                    Role::Match | Role::Story => false,
                }
        })
    }

    fn rule_hit<'a>(&self, hits: &'a mut Vec<(u32, RuleHit)>, i: u32) -> &'a mut RuleHit {
        let at = match hits.iter().position(|(j, _)| *j == i) {
            Some(at) => at,
            None => {
                let rule = &self.rules[i as usize];
                hits.push((
                    i,
                    RuleHit {
                        id: rule.id.clone(),
                        category: rule.category,
                        level: rule.level,
                        lowered: false,
                        spans: Vec::new(),
                        lowered_by: None,
                        raised_by: None,
                        parts: Vec::new(),
                        typo: false,
                    },
                ));
                hits.len() - 1
            }
        };
        &mut hits[at].1
    }

    /// One hit for each of at least `min_parts` different parts (all of them by default),
    /// all within the rule's `within` letters, if there is such a choice: each hit in turn
    /// is the anchor, and the parts nearest to it take their nearest hit.
    fn combine(
        &self,
        rule: u32,
        hits: &[(u16, Span, bool)],
        letters: &[u32],
    ) -> Option<Vec<(u16, Span, bool)>> {
        let at = |i: usize| letters[i.min(letters.len() - 1)] as usize;
        let r = &self.rules[rule as usize];
        let parts = r.parts.len() as u16;
        let overlaps = |a: Span, b: Span| a.0 < b.1 && b.0 < a.1;
        for anchor in hits {
            let distance = |s: Span| {
                let lo = s.0.min(anchor.1.0);
                let hi = s.1.max(anchor.1.1);
                at(hi) - at(lo)
            };
            // The other parts, nearest first.
            let mut others: Vec<(usize, u16)> = (0..parts)
                .filter(|&p| p != anchor.0)
                .filter_map(|p| {
                    hits.iter()
                        .filter(|h| h.0 == p && !overlaps(anchor.1, h.1))
                        .map(|h| distance(h.1))
                        .min()
                        .map(|d| (d, p))
                })
                .collect();
            if others.len() + 1 < r.min_parts {
                continue;
            }
            others.sort_unstable();
            let mut chosen = vec![*anchor];
            for (_, p) in others {
                if chosen.len() == r.min_parts {
                    break;
                }
                // Parts are different words: a part never reuses letters of another
                // (the 해 of 자해 is not a verb).
                let best = hits
                    .iter()
                    .filter(|h| h.0 == p && !chosen.iter().any(|c| overlaps(c.1, h.1)))
                    .min_by_key(|h| distance(h.1));
                if let Some(b) = best {
                    chosen.push(*b);
                }
            }
            if chosen.len() < r.min_parts {
                continue;
            }
            let lo = chosen.iter().map(|c| c.1.0).min().unwrap_or(0);
            let hi = chosen.iter().map(|c| c.1.1).max().unwrap_or(0);
            if at(hi) - at(lo) <= r.within {
                chosen.sort_by_key(|c| c.0);
                return Some(chosen);
            }
        }
        None
    }

    /// Folds one message's assessment into the conversation's risk: the conversation's
    /// `level` (never lowered) raised to the message's, then by the escalations of the rules
    /// file (repeated messages at or above a level). Returns the new level.
    pub fn escalate(&self, risk: &mut ConversationRisk, level: Level, a: &Assessment) -> Level {
        risk.counts[a.level.index()] += 1;
        let mut level = level.max(a.level);
        for e in &self.set.escalations {
            let at_or_above: u32 = risk.counts[e.at_least.index()..].iter().sum();
            if at_or_above >= e.count && level < e.raise_to {
                level = e.raise_to;
                if !risk.escalations.contains(&e.id) {
                    risk.escalations.push(e.id.clone());
                }
            }
        }
        level
    }

    /// Runs every example, lowered example and counter-example of every rule and intent.
    /// Returns the ones that failed (empty when all pass).
    pub fn check_examples(&self) -> Vec<ExampleFailure> {
        let mut failures = Vec::new();
        let fail =
            |at: &super::rules::Location, id: &str, kind, text: &str, got: String| ExampleFailure {
                file: at.file.clone(),
                line: at.line,
                id: id.to_owned(),
                kind,
                text: text.to_owned(),
                got,
            };
        let describe = |a: &Assessment| {
            let rules: Vec<String> = a
                .rules
                .iter()
                .map(|r| {
                    format!(
                        "{}={}{}",
                        r.id,
                        r.level,
                        if r.lowered { "(lowered)" } else { "" }
                    )
                })
                .collect();
            format!(
                "level {}, intent {}, rules [{}]",
                a.level,
                a.intent.as_deref().unwrap_or("-"),
                rules.join(", ")
            )
        };
        for rule in &self.set.rules {
            for ex in &rule.examples {
                let a = self.assess(ex);
                let ok = a.rules.iter().any(|h| *h.id == *rule.id && !h.lowered);
                if !ok {
                    failures.push(fail(&rule.at, &rule.id, "example", ex, describe(&a)));
                }
            }
            for ex in &rule.raised_examples {
                let a = self.assess(ex);
                let ok = a
                    .rules
                    .iter()
                    .any(|h| *h.id == *rule.id && h.raised_by.is_some());
                if !ok {
                    failures.push(fail(&rule.at, &rule.id, "raised_example", ex, describe(&a)));
                }
            }
            for ex in &rule.lowered_examples {
                let a = self.assess(ex);
                let ok = a.rules.iter().any(|h| *h.id == *rule.id && h.lowered);
                if !ok {
                    failures.push(fail(
                        &rule.at,
                        &rule.id,
                        "lowered_example",
                        ex,
                        describe(&a),
                    ));
                }
            }
            for ex in &rule.counter_examples {
                let a = self.assess(ex);
                if a.rules.iter().any(|h| *h.id == *rule.id) {
                    failures.push(fail(
                        &rule.at,
                        &rule.id,
                        "counter_example",
                        ex,
                        describe(&a),
                    ));
                }
            }
        }
        for intent in &self.set.intents {
            for ex in &intent.examples {
                let a = self.assess(ex);
                if a.intent.as_deref() != Some(intent.id.as_str()) {
                    failures.push(fail(&intent.at, &intent.id, "example", ex, describe(&a)));
                }
            }
            for ex in &intent.counter_examples {
                let a = self.assess(ex);
                if self.intent_matches(ex, &intent.id) {
                    failures.push(fail(
                        &intent.at,
                        &intent.id,
                        "counter_example",
                        ex,
                        describe(&a),
                    ));
                }
            }
        }
        failures
    }

    /// Whether the intent `id` matches `text` at all (not only as the top intent).
    pub fn intent_matches(&self, text: &str, id: &str) -> bool {
        let Some(i) = self.intents.iter().position(|x| &*x.id == id) else {
            return false;
        };
        let target = Target::Intent(i as u32);
        let (_, _, hits) = self.hits(text);
        let maskers = maskers(&hits);
        hits.iter()
            .any(|h| h.target == target && h.role == Role::Match && !self.masked(h, &maskers))
    }

    /// The canonical normalized text of `text` (for `ieum normalize` and debugging rules).
    pub fn normalize(text: &str) -> (String, String) {
        (normalize(text), compact(text))
    }
}

/// Story words found in a message (empty when none, or when a `still` cue matched).
#[derive(Default)]
struct StoryWords {
    spans: Vec<Span>,
    /// [`Form::count_before`] of the compact form.
    letters: Vec<u32>,
    within: usize,
}

impl StoryWords {
    /// A rule's match that ends at most `within` letters before a story word.
    fn masks(&self, h: &Hit) -> bool {
        if self.spans.is_empty() || h.target.rule().is_none() {
            return false;
        }
        let at = |i: usize| self.letters[i.min(self.letters.len() - 1)] as usize;
        self.spans
            .iter()
            .any(|s| s.0 >= h.span.1 && at(s.0) - at(h.span.1) <= self.within)
    }
}

fn merge_spans(spans: impl Iterator<Item = Span>) -> Vec<Span> {
    let mut v: Vec<Span> = spans.collect();
    v.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(v.len());
    for s in v {
        match out.last_mut() {
            Some(last) if s.0 <= last.1 => last.1 = last.1.max(s.1),
            _ => out.push(s),
        }
    }
    out
}

/// How many letters lie between two spans of the original text (0 when they touch or
/// overlap): spaces and symbols typed in between do not count.
/// `letters` is [`Form::count_before`] of the compact form.
fn letter_gap(a: Span, b: Span, letters: &[u32]) -> usize {
    let at = |i: usize| letters[i.min(letters.len() - 1)] as usize;
    let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    if second.0 <= first.1 {
        0
    } else {
        at(second.0).saturating_sub(at(first.1))
    }
}

/// The skeleton of a form ([`super::typo`]), or `None` when it holds no Hangul syllable.
fn form_skeleton(form: &Form) -> Option<Skeleton> {
    let text = form.as_str();
    text.chars()
        .any(super::hangul::is_syllable)
        .then(|| skeleton(text))
}

/// The byte offset of every char of `text`, and its length at the end.
fn char_starts(text: &str) -> Vec<usize> {
    let mut v: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    v.push(text.len());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
except = ["유서 깊은", "죽이는 맛집"]

[levels]
none = { action = "answer", priority = 0 }
low = { action = "answer", priority = 1, wait_target_secs = 1800 }
medium = { action = "offer_counselor", priority = 2, wait_target_secs = 600 }
high = { action = "handoff", priority = 3, wait_target_secs = 120 }
imminent = { action = "urgent_handoff", priority = 4, wait_target_secs = 30 }

[[escalation]]
id = "three-medium"
at_least = "medium"
count = 3
raise_to = "high"

[[rule]]
id = "ideation"
category = "ideation"
level = "high"
patterns = ["죽고싶"]
words = [" kms "]
unless = ["싶(지|진)(는|도|만)?(않|안)", { regex = "배고파", level = "none", near = 1 }]
unless_level = "medium"
examples = ["죽고 싶어", "kms"]
lowered_examples = ["죽고 싶진 않아", "배고파 죽고싶다"]
counter_examples = ["배고파 죽겠다"]

[[rule]]
id = "roof"
category = "plan"
level = "high"
patterns = ["옥상이야"]
unless = [{ regex = "바베큐", level = "none" }]
raise = { level = "imminent", when = ["지금"] }
examples = ["옥상이야"]
lowered_examples = ["옥상이야 바베큐"]
raised_examples = ["지금 옥상이야"]
counter_examples = ["옥상 정원"]

[[rule]]
id = "note"
category = "farewell"
level = "imminent"
words = ["유서"]
examples = ["유서를 썼어"]
counter_examples = ["유서 깊은 절"]

[[rule]]
id = "goodbye"
category = "farewell"
level = "high"
parts = [
  { name = "thanks", patterns = ["그동안고마"] },
  { name = "bye", patterns = ["잘있어"] },
  { name = "gone", patterns = ["찾지마"] },
]
min_parts = 2
within = 30
examples = ["그동안 고마웠어 잘 있어", "찾지 마 그동안 고마웠어"]
counter_examples = ["그동안 고마웠어", "잘 있어?"]

[[rule]]
id = "passive"
category = "hopelessness"
level = "medium"
compact_regex = ["사라지고?싶"]
examples = ["사라지고 싶다"]
counter_examples = ["사라진 물건"]
"#;

    const INTENTS: &str = r#"
[[intent]]
id = "greeting"
words = ["안녕", " hi "]
examples = ["안녕하세요"]
counter_examples = ["잘 가"]

[[intent]]
id = "loneliness"
patterns = ["외로"]
priority = 1
examples = ["너무 외로워요"]
counter_examples = ["안녕"]
"#;

    fn engine() -> TriageEngine {
        let set = RuleSet::from_sources(
            (Path::new("rules.toml"), FILE),
            &[(Path::new("intents/a.toml"), INTENTS)],
        )
        .unwrap();
        TriageEngine::build(set).unwrap()
    }

    #[test]
    fn examples_in_the_fixture_pass() {
        assert_eq!(engine().check_examples(), vec![]);
    }

    #[test]
    fn a_second_cue_raises_an_unlowered_hit_only() {
        let e = engine();
        let a = e.assess("지금 옥상이야");
        assert_eq!(a.level, Level::Imminent);
        let hit = a.rules.iter().find(|h| &*h.id == "roof").unwrap();
        assert_eq!(hit.raised_by, Some((0, 2)));
        assert_eq!(e.assess("옥상이야").level, Level::High);
        // Context lowers first; a lowered hit is never raised.
        let a = e.assess("지금 옥상이야 바베큐");
        assert_eq!(a.level, Level::None);
        assert!(a.rules.iter().all(|h| h.raised_by.is_none()));
    }

    #[test]
    fn assess_reports_level_action_rules_spans_and_intent() {
        let e = engine();
        let a = e.assess("안녕, 저 죽 고 싶 어요");
        assert_eq!(a.level, Level::High);
        assert_eq!(a.action, Action::Handoff);
        assert_eq!(a.rule_ids().collect::<Vec<_>>(), vec!["ideation"]);
        assert_eq!(a.intent.as_deref(), Some("greeting"));
        let chars: Vec<char> = "안녕, 저 죽 고 싶 어요".chars().collect();
        let (s, t) = a.spans[0];
        assert_eq!(chars[s..t].iter().collect::<String>(), "죽 고 싶");
        assert_eq!(&*a.ruleset_version, &**e.version());
    }

    #[test]
    fn a_near_cue_lowers_only_the_hit_beside_it() {
        let e = engine();
        // Beside the hit (spaces and repeats do not count): lowered to the cue's level.
        let a = e.assess("배고파   죽고싶다");
        assert_eq!(a.level, Level::None);
        assert!(a.rules[0].lowered);
        assert_eq!(a.rules[0].lowered_by, Some((0, 3)));
        // One letter between: still beside. Two: not.
        assert_eq!(e.assess("배고파 또 죽고싶다").level, Level::None);
        assert_eq!(e.assess("배고파 진짜 죽고싶다").level, Level::High);
        // A second sentence keeps its level; the first hit's cue does not reach it.
        let a = e.assess("배고파 죽고싶다. 근데 요즘은 진짜로 죽고 싶어");
        assert_eq!(a.level, Level::High);
        assert_eq!(a.rules[0].spans.len(), 2);
        assert!(!a.rules[0].lowered);
        let a = e.assess("요즘 배고파서 밥 먹었는데 그래도 죽고 싶어");
        assert_eq!(a.level, Level::High);
        assert!(!a.rules[0].lowered);
    }

    #[test]
    fn min_parts_fires_on_any_two_different_parts_near_each_other() {
        let e = engine();
        let parts = |text: &str| -> Vec<String> {
            let a = e.assess(text);
            a.rules
                .iter()
                .filter(|h| &*h.id == "goodbye")
                .flat_map(|h| h.parts.iter().map(|p| p.name.to_string()))
                .collect()
        };
        // Any two of the three, in any order; the nearest two are shown.
        assert_eq!(parts("잘 있어 찾지 마"), vec!["bye", "gone"]);
        assert_eq!(parts("찾지 마 그동안 고마웠어"), vec!["thanks", "gone"]);
        assert_eq!(
            parts("그동안 고마웠어 잘 있어 찾지 마").len(),
            2,
            "two parts are enough, and only two are reported"
        );
        // One part, however often, is not two different parts.
        assert!(parts("그동안 고마웠어 그동안 고마웠어").is_empty());
        // Two parts too far apart (more than `within` letters) do not meet.
        // (Repeated letters collapse, so the filler is real words.)
        let far = "잘 있어 오늘 날씨가 좋아서 산책을 하고 밥을 먹고 책을 읽다가 잠이 들었는데 꿈에서 찾지 마";
        assert!(parts(far).is_empty());
    }

    #[test]
    fn negation_lowers_but_does_not_clear() {
        let a = engine().assess("죽고 싶진 않아");
        assert_eq!(a.level, Level::Medium);
        assert!(a.rules[0].lowered);
    }

    #[test]
    fn except_masks_only_the_look_alike_phrase() {
        let e = engine();
        assert_eq!(e.assess("유서 깊은 절에 갔어").level, Level::None);
        assert_eq!(
            e.assess("유서 깊은 절에 갔어. 유서도 썼어").level,
            Level::Imminent
        );
    }

    #[test]
    fn nothing_matches_gives_none_and_no_intent() {
        let a = engine().assess("오늘 날씨 좋네");
        assert_eq!(a.level, Level::None);
        assert_eq!(a.intent, None);
        assert!(a.rules.is_empty() && a.spans.is_empty());
    }

    #[test]
    fn conversation_risk_is_the_max_and_repeats_escalate() {
        let e = engine();
        let mut risk = ConversationRisk::default();
        let mut level = Level::None;
        for (text, expect) in [
            ("사라지고 싶다", Level::Medium),
            ("안녕", Level::Medium),
            ("사라지고 싶어", Level::Medium),
            ("다 사라지고 싶어", Level::High),
        ] {
            level = e.escalate(&mut risk, level, &e.assess(text));
            assert_eq!(level, expect, "{text}");
        }
        assert_eq!(risk.escalations, vec!["three-medium"]);
        // Never lowered: a level the conversation already has (the screener's) stays.
        assert_eq!(
            e.escalate(&mut risk, Level::Imminent, &e.assess("안녕")),
            Level::Imminent
        );
    }

    #[test]
    fn top_intent_uses_score_and_priority() {
        let a = engine().assess("안녕 외로워");
        assert_eq!(a.intent.as_deref(), Some("loneliness"));
    }

    #[test]
    fn merge_spans_merges_overlaps() {
        assert_eq!(
            merge_spans([(5, 7), (0, 2), (1, 3), (7, 9)].into_iter()),
            vec![(0, 3), (5, 9)]
        );
    }
}
