//! Which regexes can match a message at all: each regex is run only when a word it cannot
//! match without is in the message.
//!
//! Why: a message used to be asked of every regex of its form at once, as one multi-pattern
//! regex. On one message repeated (the criterion bench) that costs a few microseconds, but on
//! real traffic, where every message is new, the lazy DFA of five hundred patterns with
//! bounded gaps (`.{0,12}`) keeps building states and gives up to the PikeVM: about 0.6 ms a
//! message, measured over 2,000 different eval lines (BENCHMARKS.md). Almost every regex
//! names a word it needs (옥상, 자해, 보험금), so one scan of the message for those words picks
//! the few regexes worth running, each on its own small automaton.
//!
//! Soundness is all that matters here: a regex's words are taken so that **every** match of
//! it contains one of them ([`required`]); a regex with no such words is always run. Then a
//! regex that is skipped cannot have matched, and the engine's output is the same as asking
//! every regex (checked byte for byte over every eval line and rule example).

use regex_syntax::hir::{Class, Hir, HirKind};

/// At most this many words per regex; a regex that would need more is always run.
const MAX_WORDS: usize = 64;
/// A class of at most this many letters is read as that many one-letter words.
const MAX_LETTERS: usize = 8;

/// A set of words such that every match of `hir` contains at least one of them, or `None`
/// when no such set was found (the regex must always run).
pub(crate) fn required(hir: &Hir) -> Option<Vec<String>> {
    let words = match hir.kind() {
        HirKind::Literal(lit) => vec![std::str::from_utf8(&lit.0).ok()?.to_owned()],
        HirKind::Class(class) => letters(class)?,
        HirKind::Capture(c) => required(&c.sub)?,
        HirKind::Repetition(r) if r.min >= 1 => required(&r.sub)?,
        // A match of a concatenation holds a match of each of its items, and of each run of
        // items: any one item's words will do, or the words a run of items spells out
        // exactly ((자살|죽)(하면|으면) spells 자살하면, 자살으면, 죽하면, 죽으면).
        HirKind::Concat(items) => {
            let mut choices: Vec<Vec<String>> = items.iter().filter_map(required).collect();
            // A repeated item (`(?:가 ?)+`) can open a run (its last copy is what the next
            // item follows) or close one (its first copy follows the item before), not both.
            for start in 0..items.len() {
                let mut spelled = vec![String::new()];
                for (at, item) in items[start..].iter().enumerate() {
                    let (words, closes) = match repeated(item) {
                        Some(sub) => (exact(sub), at > 0),
                        None => (exact(item), false),
                    };
                    let Some(next) = words.and_then(|next| product(&spelled, &next)) else {
                        break;
                    };
                    spelled = next;
                    if spelled.iter().all(|w| !w.is_empty()) {
                        choices.push(spelled.clone());
                    }
                    if closes {
                        break;
                    }
                }
            }
            choices.into_iter().max_by_key(|w| selectivity(w))?
        }
        // A match of an alternation is a match of one of its branches: every branch must
        // have words, and the set is their union.
        HirKind::Alternation(alts) => union(alts, required)?,
        _ => return None,
    };
    if words.is_empty() || words.iter().any(String::is_empty) || words.len() > MAX_WORDS {
        return None;
    }
    Some(words)
}

/// The item repeated by `hir` when it is repeated at least once and may be more than once.
fn repeated(hir: &Hir) -> Option<&Hir> {
    match hir.kind() {
        HirKind::Repetition(r) if r.min >= 1 && r.max != Some(1) => Some(&r.sub),
        HirKind::Capture(c) => repeated(&c.sub),
        _ => None,
    }
}

/// Every string `hir` matches, when there are few (an optional item adds the empty one).
fn exact(hir: &Hir) -> Option<Vec<String>> {
    let words = match hir.kind() {
        HirKind::Empty => vec![String::new()],
        HirKind::Literal(lit) => vec![std::str::from_utf8(&lit.0).ok()?.to_owned()],
        HirKind::Class(class) => letters(class)?,
        HirKind::Capture(c) => exact(&c.sub)?,
        HirKind::Repetition(r) if r.min == 0 && r.max == Some(1) => {
            let mut w = exact(&r.sub)?;
            w.push(String::new());
            w
        }
        HirKind::Concat(items) => {
            let mut spelled = vec![String::new()];
            for item in items {
                spelled = product(&spelled, &exact(item)?)?;
            }
            spelled
        }
        HirKind::Alternation(alts) => union(alts, exact)?,
        _ => return None,
    };
    (words.len() <= MAX_WORDS).then_some(words)
}

/// The words of every branch together, or `None` when one branch has none or there are
/// too many.
fn union(alts: &[Hir], words: fn(&Hir) -> Option<Vec<String>>) -> Option<Vec<String>> {
    let mut all = Vec::new();
    for a in alts {
        all.extend(words(a)?);
        if all.len() > MAX_WORDS {
            return None;
        }
    }
    Some(all)
}

/// The letters of a small class (`(알|정)` is parsed as the class `[알정]`).
fn letters(class: &Class) -> Option<Vec<String>> {
    let Class::Unicode(class) = class else {
        return None;
    };
    let mut out = Vec::new();
    for r in class.ranges() {
        for c in r.start()..=r.end() {
            out.push(c.to_string());
            if out.len() > MAX_LETTERS {
                return None;
            }
        }
    }
    Some(out)
}

fn product(heads: &[String], tails: &[String]) -> Option<Vec<String>> {
    if heads.len() * tails.len() > MAX_WORDS {
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(heads.len() * tails.len());
    for h in heads {
        for t in tails {
            out.push(format!("{h}{t}"));
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// How rarely a set of words is likely to occur: its shortest word in bytes (a syllable is
/// three, a space one), then fewer words.
fn selectivity(words: &[String]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = words.iter().map(String::len).min().unwrap_or(0);
    (shortest, std::cmp::Reverse(words.len()))
}

/// The trigger words of each regex, `None` for one that has none (it runs on every
/// message). `patterns[i]` is regex `i`'s source; one that does not parse has none (the
/// loader has already rejected one that does not). The engine adds the words to its literal
/// automaton of the regex's form, so one scan finds literals and trigger words together.
pub(crate) fn words(patterns: &[&str]) -> Vec<Option<Vec<String>>> {
    patterns
        .iter()
        .map(|p| {
            let mut w = required(&regex_syntax::Parser::new().parse(p).ok()?)?;
            w.sort_unstable();
            w.dedup();
            Some(w)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(re: &str) -> Option<Vec<String>> {
        required(&regex_syntax::Parser::new().parse(re).unwrap()).map(|mut w| {
            w.sort();
            w
        })
    }

    #[test]
    fn a_concatenation_needs_its_best_item_and_an_alternation_every_branch() {
        // Equally rare items: the last one.
        assert_eq!(
            words("(옥상|난간)(에서|에)?.{0,8}(뛰어|떨어)"),
            Some(vec!["떨어".into(), "뛰어".into()])
        );
        // A longer word is rarer than a shorter one; a space is the least rare.
        assert_eq!(
            words("(옥상|난간).{0,8}뛰"),
            Some(vec!["난간".into(), "옥상".into()])
        );
        assert_eq!(words(" (알|정)"), Some(vec![" 알".into(), " 정".into()]));
        // The lookbehind stand-in (^ or a class) needs nothing; the word after it does.
        assert_eq!(
            words("(?:^|[^혼과])(?P<hit>자살)(?:[^아]|$)"),
            Some(vec!["자살".into()])
        );
        assert_eq!(words("[0-9]*층"), Some(vec!["층".into()]));
        // A run of items spells longer words.
        assert_eq!(
            words("(자살|죽)(하면|으면)(.{0,14})(보험금|상속)"),
            Some(vec![
                "자살으면".into(),
                "자살하면".into(),
                "죽으면".into(),
                "죽하면".into()
            ])
        );
        assert_eq!(
            words("(오늘|내일)(에|엔)?끝"),
            Some(vec![
                "내일끝".into(),
                "내일에끝".into(),
                "내일엔끝".into(),
                "오늘끝".into(),
                "오늘에끝".into(),
                "오늘엔끝".into()
            ])
        );
        // An optional item, a class, or a branch that needs nothing: always run.
        assert_eq!(words("(자해)?.{0,3}"), None);
        assert_eq!(words("[가-힣]+"), None);
        assert_eq!(words("(자해|.{2})했"), Some(vec!["했".into()]));
        assert_eq!(words("(자해|.{2})"), None);
        // A repeated item opens or closes a run (가방 or 방에, with their spaces), never
        // both (가방에: 가방방에 matches).
        assert_eq!(
            words("(?:가 ?)+(?:방 ?)+(?:에 ?)+[0-9]"),
            Some(vec![
                "방 에".into(),
                "방 에 ".into(),
                "방에".into(),
                "방에 ".into()
            ])
        );
        // A class too big to spell out: the words of the items beside it.
        assert_eq!(
            words("(가|나|다|라|마|바|사|아|자)(가|나|다|라|마|바|사|아|자)(하|해)"),
            Some(vec!["하".into(), "해".into()])
        );
    }

    #[test]
    fn every_match_contains_a_required_word() {
        let cases = [
            ("(?:가 ?)+(?:방 ?)+(?:에 ?)+[0-9]", "가가 방방 에에3"),
            (
                "(오늘|내일)(에|엔)?(.{0,6})(끝낸다|끝낼게)",
                "내일엔 진짜 끝낼게",
            ),
            (
                "(?:^|[^차])(피가?|피를)(.{0,4})(묻었|바닥에)",
                "손에 피가 묻었어",
            ),
            (
                "(?:want|wana) to (?:\\w+ ){1,3}die(?: |$)",
                "i want to just die",
            ),
        ];
        for (re, text) in cases {
            let r = regex::Regex::new(re).unwrap();
            let m = r.find(text).unwrap().as_str();
            let w = words(re).unwrap();
            assert!(
                w.iter().any(|w| m.contains(w.as_str())),
                "{re}: {w:?} in {m}"
            );
        }
    }

    #[test]
    fn each_regex_gets_its_words_or_none() {
        assert_eq!(
            super::words(&["옥상.{0,4}올라", "[가-힣]+", "(자해|자해)", "(("]),
            vec![
                Some(vec!["올라".into()]),
                None,
                Some(vec!["자해".into()]),
                None
            ]
        );
    }
}
