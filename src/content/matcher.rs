//! Small matchers for the content layer: which mood, program interest, district or screener
//! answer a message names.
//!
//! They see the same normalized text as triage ([`crate::triage::normalize`]), with the
//! same field meanings as an intent: `patterns` on the compact form, `words` on the spaced
//! form (edge spaces anchor a word boundary), `regex` on the spaced form, and `except`
//! phrases that mask a match lying inside them. A match scores its letter count, so the
//! entry that covers the most of the message wins; ties go to the first in file order.

use regex::Regex;

use crate::triage::normalize::{Normalized, compact, normalize_words_pattern};

/// A message normalized once, to run many matchers over.
pub struct Text {
    spaced: String,
    compact: String,
}

impl Text {
    /// Normalizes `text` the way triage does.
    pub fn new(text: &str) -> Text {
        let n = Normalized::new(text);
        Text {
            spaced: n.spaced.as_str().to_owned(),
            compact: n.compact.as_str().to_owned(),
        }
    }

    /// The spaced form, padded with a space at each end.
    pub fn spaced(&self) -> &str {
        &self.spaced
    }
}

/// Literal and regex patterns of one entry, normalized at load.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<String>,
    words: Vec<String>,
    regex: Vec<Regex>,
    except_compact: Vec<String>,
    except_spaced: Vec<String>,
}

/// The raw fields a matcher is built from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw<'a> {
    /// Literals on the compact form.
    pub patterns: &'a [String],
    /// Literals on the spaced form.
    pub words: &'a [String],
    /// Regexes on the spaced form.
    pub regex: &'a [String],
    /// Phrases that mask a match lying inside them.
    pub except: &'a [String],
}

impl Matcher {
    /// Builds a matcher; the error names the offending pattern.
    pub fn new(raw: Raw<'_>) -> Result<Matcher, String> {
        let mut m = Matcher::default();
        for p in raw.patterns {
            let n = compact(p);
            if n.chars().count() < 2 {
                return Err(format!(
                    "pattern {p:?} normalizes to {n:?}: compact patterns need two letters or \
                     more (use `words` for short ones)"
                ));
            }
            m.patterns.push(n);
        }
        for w in raw.words {
            let n = normalize_words_pattern(w);
            if n.trim().is_empty() {
                return Err(format!("words pattern {w:?} normalizes to nothing"));
            }
            m.words.push(n);
        }
        for r in raw.regex {
            m.regex
                .push(Regex::new(r).map_err(|e| format!("invalid regex {r:?}: {e}"))?);
        }
        for e in raw.except {
            let c = compact(e);
            let s = normalize_words_pattern(e.trim());
            if c.is_empty() || s.trim().is_empty() {
                return Err(format!("except {e:?} normalizes to nothing"));
            }
            m.except_compact.push(c);
            m.except_spaced.push(s);
        }
        Ok(m)
    }

    /// Whether the matcher has any pattern at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.words.is_empty() && self.regex.is_empty()
    }

    /// How many letters of `text` the matcher covers (0: no match).
    pub fn score(&self, text: &Text) -> usize {
        let mut score = 0;
        let spaced_masks = masks(&text.spaced, &self.except_spaced);
        let compact_masks = masks(&text.compact, &self.except_compact);
        for p in &self.patterns {
            score += literal_score(&text.compact, p, &compact_masks);
        }
        for w in &self.words {
            score += literal_score(&text.spaced, w, &spaced_masks);
        }
        for r in &self.regex {
            for m in r.find_iter(&text.spaced) {
                if !masked(m.start(), m.end(), &spaced_masks) {
                    score += letters(m.as_str());
                }
            }
        }
        score
    }
}

fn letters(s: &str) -> usize {
    s.chars().filter(|c| *c != ' ').count()
}

fn masks(text: &str, phrases: &[String]) -> Vec<(usize, usize)> {
    phrases
        .iter()
        .flat_map(|p| {
            text.match_indices(p.as_str())
                .map(|(i, s)| (i, i + s.len()))
        })
        .collect()
}

fn masked(start: usize, end: usize, masks: &[(usize, usize)]) -> bool {
    masks.iter().any(|&(s, e)| s <= start && end <= e)
}

fn literal_score(text: &str, needle: &str, masks: &[(usize, usize)]) -> usize {
    text.match_indices(needle)
        .filter(|(i, s)| !masked(*i, i + s.len(), masks))
        .map(|(_, s)| letters(s))
        .sum()
}

/// The index of the entry whose matcher scores highest on `text` (ties: the first).
pub fn best<'a, T: 'a>(
    items: impl IntoIterator<Item = &'a T>,
    matcher: impl Fn(&T) -> &Matcher,
    text: &Text,
) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, item) in items.into_iter().enumerate() {
        let s = matcher(item).score(text);
        if s > 0 && best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], words: &[&str], except: &[&str]) -> Matcher {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (p, w, e) = (v(patterns), v(words), v(except));
        Matcher::new(Raw {
            patterns: &p,
            words: &w,
            regex: &[],
            except: &e,
        })
        .unwrap()
    }

    #[test]
    fn scores_letters_and_respects_except() {
        let anger = m(&["화나"], &[" 화 "], &["전화나"]);
        assert_eq!(anger.score(&Text::new("너무 화나요")), 2);
        assert_eq!(anger.score(&Text::new("마음약방 화 처방")), 1);
        assert_eq!(anger.score(&Text::new("전화나 해 볼까")), 0);
    }

    #[test]
    fn short_compact_pattern_is_rejected() {
        let p = vec!["화".to_string()];
        let err = Matcher::new(Raw {
            patterns: &p,
            ..Raw::default()
        })
        .unwrap_err();
        assert!(err.contains("two letters"), "{err}");
    }
}
