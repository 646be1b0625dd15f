//! [`TriageEngine::assess`]: from one message to a level, the rules that fired, the words
//! that fired them and the top intent.
//!
//! # Cost
//!
//! Built once (a few tens of milliseconds for the shipped files), then shared immutably:
//! `assess` takes `&self`, allocates only for its result, and never locks. Per message it
//! normalizes once, runs one aho-corasick automaton (every literal pattern of every rule
//! and intent, both forms) over each form, and one regex set per form; individual regexes
//! and `unless` patterns run only for rules that already matched.

use std::path::Path;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use super::normalize::{Form, Normalized, compact, normalize, normalize_words_pattern};
use super::rules::{ExampleFailure, LoadError, RuleSet};
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
    /// Where it fired in the original text.
    pub spans: Vec<Span>,
}

/// Conversation-level risk: plain data, kept with the conversation's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRisk {
    /// The conversation's level: the maximum over its messages, raised by escalations.
    pub level: Level,
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
    Intent(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A match counts for the target.
    Match,
    /// A match masks the target's matches that lie inside it.
    Except,
    /// A match masks every rule's matches that lie inside it.
    GlobalExcept,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    target: Target,
    form: FormKind,
    role: Role,
}

#[derive(Debug, Clone, Copy)]
struct RawHit {
    target: Target,
    role: Role,
    start: usize,
    end: usize,
}

struct RegexBank {
    set: RegexSet,
    each: Vec<(Regex, Target)>,
}

impl RegexBank {
    fn new(entries: Vec<(String, Target)>) -> Result<RegexBank, regex::Error> {
        let set = RegexSet::new(entries.iter().map(|(r, _)| r.as_str()))?;
        let each = entries
            .into_iter()
            .map(|(r, t)| Regex::new(&r).map(|re| (re, t)))
            .collect::<Result<_, _>>()?;
        Ok(RegexBank { set, each })
    }

    fn scan(&self, text: &str, out: &mut Vec<RawHit>) {
        if self.each.is_empty() {
            return;
        }
        for i in self.set.matches(text).iter() {
            let (re, target) = &self.each[i];
            for m in re.find_iter(text).take(8) {
                out.push(RawHit {
                    target: *target,
                    role: Role::Match,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
    }
}

struct CompiledRule {
    id: Arc<str>,
    category: Category,
    level: Level,
    unless: Vec<Regex>,
    unless_level: Level,
}

struct CompiledIntent {
    id: Arc<str>,
    priority: i32,
}

/// The compiled triage engine. Build once with [`TriageEngine::load`]; cheap to share
/// behind an `Arc`; `Send + Sync`.
pub struct TriageEngine {
    set: RuleSet,
    automaton: AhoCorasick,
    owners: Vec<Vec<Owner>>,
    spaced_regex: RegexBank,
    compact_regex: RegexBank,
    rules: Vec<CompiledRule>,
    intents: Vec<CompiledIntent>,
    version: Arc<str>,
}

impl std::fmt::Debug for TriageEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriageEngine")
            .field("rules", &self.rules.len())
            .field("intents", &self.intents.len())
            .field("version", &self.version)
            .finish()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TriageEngine>();
    assert_send_sync::<Assessment>();
};

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
        let mut patterns: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<Owner>> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        let mut add = |text: String, owner: Owner| {
            let i = *index.entry(text.clone()).or_insert_with(|| {
                patterns.push(text);
                owners.push(Vec::new());
                patterns.len() - 1
            });
            owners[i].push(owner);
        };
        let mut add_except = |phrase: &str, target: Target, role: Role| {
            add(
                compact(phrase),
                Owner {
                    target,
                    form: FormKind::Compact,
                    role,
                },
            );
            add(
                normalize_words_pattern(phrase.trim()),
                Owner {
                    target,
                    form: FormKind::Spaced,
                    role,
                },
            );
        };
        let mut spaced_regex = Vec::new();
        let mut compact_regex = Vec::new();

        let targets = set
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (Target::Rule(i as u32), &r.matchers))
            .chain(
                set.intents
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (Target::Intent(i as u32), &r.matchers)),
            );
        let mut literal_owners: Vec<(String, Owner)> = Vec::new();
        for (target, m) in targets {
            for p in &m.patterns {
                literal_owners.push((
                    p.clone(),
                    Owner {
                        target,
                        form: FormKind::Compact,
                        role: Role::Match,
                    },
                ));
            }
            for w in &m.words {
                literal_owners.push((
                    w.clone(),
                    Owner {
                        target,
                        form: FormKind::Spaced,
                        role: Role::Match,
                    },
                ));
            }
            for e in &m.except {
                add_except(e, target, Role::Except);
            }
            spaced_regex.extend(m.regex.iter().map(|r| (r.clone(), target)));
            compact_regex.extend(m.compact_regex.iter().map(|r| (r.clone(), target)));
        }
        for e in &set.global_except {
            add_except(e, Target::Rule(0), Role::GlobalExcept);
        }
        for (text, owner) in literal_owners {
            add(text, owner);
        }

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
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)
            .map_err(|e| compile_err(format!("cannot build the pattern automaton: {e}")))?;
        let spaced_regex = RegexBank::new(spaced_regex)
            .map_err(|e| compile_err(format!("cannot compile the regex set: {e}")))?;
        let compact_regex = RegexBank::new(compact_regex)
            .map_err(|e| compile_err(format!("cannot compile the regex set: {e}")))?;

        let rules = set
            .rules
            .iter()
            .map(|r| {
                let unless = r
                    .unless
                    .iter()
                    .map(|u| Regex::new(u))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| compile_err(format!("rule `{}`: {e}", r.id)))?;
                Ok(CompiledRule {
                    id: Arc::from(r.id.as_str()),
                    category: r.category,
                    level: r.level,
                    unless,
                    unless_level: r.unless_level,
                })
            })
            .collect::<Result<Vec<_>, LoadError>>()?;
        let intents = set
            .intents
            .iter()
            .map(|i| CompiledIntent {
                id: Arc::from(i.id.as_str()),
                priority: i.priority,
            })
            .collect();
        let version = Arc::from(set.version.as_str());
        Ok(TriageEngine {
            set,
            automaton,
            owners,
            spaced_regex,
            compact_regex,
            rules,
            intents,
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

    /// Triage one message.
    pub fn assess(&self, text: &str) -> Assessment {
        let n = Normalized::new(text);
        let spaced = self.scan(&n.spaced, FormKind::Spaced, &self.spaced_regex);
        let compact = self.scan(&n.compact, FormKind::Compact, &self.compact_regex);

        let mut rule_hits: Vec<RuleHit> = Vec::new();
        let mut intent_scores: Vec<(usize, i64)> = Vec::new();
        for (form, hits) in [(&n.spaced, &spaced), (&n.compact, &compact)] {
            for h in hits.iter().filter(|h| h.role == Role::Match) {
                let masked = hits.iter().any(|e| {
                    let covers = e.start <= h.start && h.end <= e.end;
                    covers
                        && match e.role {
                            Role::Except => e.target == h.target,
                            Role::GlobalExcept => matches!(h.target, Target::Rule(_)),
                            Role::Match => false,
                        }
                });
                if masked {
                    continue;
                }
                match h.target {
                    Target::Rule(i) => {
                        let rule = &self.rules[i as usize];
                        let span = form.original_span(h.start, h.end);
                        match rule_hits.iter_mut().find(|r| r.id == rule.id) {
                            Some(hit) => hit.spans.extend(span),
                            None => rule_hits.push(RuleHit {
                                id: rule.id.clone(),
                                category: rule.category,
                                level: rule.level,
                                lowered: false,
                                spans: span.into_iter().collect(),
                            }),
                        }
                    }
                    Target::Intent(i) => {
                        let weight = form.as_str()[h.start..h.end]
                            .chars()
                            .filter(|c| *c != ' ')
                            .count() as i64;
                        match intent_scores.iter_mut().find(|(j, _)| *j == i as usize) {
                            Some((_, s)) => *s += weight,
                            None => intent_scores.push((i as usize, weight)),
                        }
                    }
                }
            }
        }

        // Context (`unless`) lowers a hit; never below its `unless_level`, never `imminent`.
        let mut level = Level::None;
        for hit in &mut rule_hits {
            let rule = self
                .rules
                .iter()
                .find(|r| r.id == hit.id)
                .expect("hit names a compiled rule");
            if rule.unless.iter().any(|u| u.is_match(n.compact.as_str())) {
                hit.level = rule.unless_level;
                hit.lowered = true;
            }
            hit.spans.sort_unstable();
            hit.spans.dedup();
            level = level.max(hit.level);
        }
        rule_hits.sort_by_key(|h| self.rules.iter().position(|r| r.id == h.id));

        let intent = intent_scores
            .iter()
            .map(|&(i, s)| (i, s + self.intents[i].priority as i64))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| self.intents[i].id.clone());

        let spans = merge_spans(rule_hits.iter().flat_map(|h| h.spans.iter().copied()));
        Assessment {
            level,
            action: self.policy(level).action,
            intent,
            rules: rule_hits,
            spans,
            ruleset_version: self.version.clone(),
        }
    }

    fn scan(&self, form: &Form, kind: FormKind, regex: &RegexBank) -> Vec<RawHit> {
        let mut out = Vec::new();
        for m in self.automaton.find_overlapping_iter(form.as_str()) {
            for o in &self.owners[m.pattern().as_usize()] {
                if o.form == kind {
                    out.push(RawHit {
                        target: o.target,
                        role: o.role,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        regex.scan(form.as_str(), &mut out);
        out
    }

    /// Folds one message's assessment into the conversation's risk: the maximum over its
    /// messages, raised by the escalations of the rules file. Returns the new level.
    pub fn escalate(&self, risk: &mut ConversationRisk, a: &Assessment) -> Level {
        risk.counts[a.level.index()] += 1;
        risk.level = risk.level.max(a.level);
        for e in &self.set.escalations {
            let at_or_above: u32 = risk.counts[e.at_least.index()..].iter().sum();
            if at_or_above >= e.count && risk.level < e.raise_to {
                risk.level = e.raise_to;
                if !risk.escalations.contains(&e.id) {
                    risk.escalations.push(e.id.clone());
                }
            }
        }
        risk.level
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
        let n = Normalized::new(text);
        let target = Target::Intent(i as u32);
        [
            (self.scan(&n.spaced, FormKind::Spaced, &self.spaced_regex)),
            (self.scan(&n.compact, FormKind::Compact, &self.compact_regex)),
        ]
        .iter()
        .any(|hits| {
            hits.iter().any(|h| {
                h.target == target
                    && h.role == Role::Match
                    && !hits.iter().any(|e| {
                        e.role == Role::Except
                            && e.target == target
                            && e.start <= h.start
                            && h.end <= e.end
                    })
            })
        })
    }

    /// The canonical normalized text of `text` (for `ieum normalize` and debugging rules).
    pub fn normalize(text: &str) -> (String, String) {
        (normalize(text), compact(text))
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
unless = ["싶(지|진)(는|도|만)?(않|안)"]
unless_level = "medium"
examples = ["죽고 싶어", "kms"]
lowered_examples = ["죽고 싶진 않아"]
counter_examples = ["배고파 죽겠다"]

[[rule]]
id = "note"
category = "farewell"
level = "imminent"
words = ["유서"]
examples = ["유서를 썼어"]
counter_examples = ["유서 깊은 절"]

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
        assert_eq!(
            e.escalate(&mut risk, &e.assess("사라지고 싶다")),
            Level::Medium
        );
        assert_eq!(e.escalate(&mut risk, &e.assess("안녕")), Level::Medium);
        assert_eq!(
            e.escalate(&mut risk, &e.assess("사라지고 싶어")),
            Level::Medium
        );
        assert_eq!(
            e.escalate(&mut risk, &e.assess("다 사라지고 싶어")),
            Level::High
        );
        assert_eq!(risk.escalations, vec!["three-medium"]);
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
