//! Text normalization: how ieum sees through the way people really type Korean.
//!
//! A rule written as `죽고싶` must fire on `죽고 싶어요`, `죽.고.싶.다`, `죽고싶어어어어`,
//! `ㅈㅜㄱㄱㅗㅅㅣㅍㄷㅏ`, NFD-decomposed Hangul, full-width letters and text sprinkled with
//! zero-width characters. Rather than multiplying patterns, every message **and every
//! pattern** goes through this one normalizer, and matching happens on its output.
//!
//! # Steps
//!
//! 1. **Per character:** compatibility decomposition (NFKD) for everything except Hangul
//!    syllables and compatibility jamo (which NFKC would turn into conjoining jamo);
//!    default-ignorable code points (zero-width, bidi controls, Hangul fillers, variation
//!    selectors), combining marks and control characters are dropped — after decomposition,
//!    because NFKC leaves most of them in place; Latin (and every cased script) is
//!    lowercased.
//! 2. **Classify** each character as a letter, digit, symbol (emoji and the like),
//!    punctuation or whitespace. A digit or sign that stands *for a letter between two Latin
//!    letters* is read as that letter (`d!e`, `k1ll`, `su1c1de`, `s3lf h@rm`): people write
//!    English risk words that way to get past filters, and nothing else puts `!` or `1`
//!    tight inside a Latin word.
//! 3. **Hangul composition:** conjoining jamo (NFD) *and* compatibility jamo typed letter by
//!    letter (`ㅈㅏㅅㅏㄹ`) are composed into syllables the way a Korean keyboard would
//!    (two-set layout automaton, with compound vowels and finals). Consonants with no vowel
//!    stay as jamo, so choseong abbreviations (`ㅈㄱㅅㄷ`, `ㄷㅂㅈㅅ`) remain available to
//!    rules as patterns. A precomposed syllable never absorbs a following compatibility
//!    consonant (`그ㅋㅋ` stays `그ㅋ`), but does absorb a conjoining trailing consonant
//!    (valid NFD).
//! 4. **Repeats collapsed:** any run of the same character becomes one (`죽고싶어어어어` →
//!    `죽고싶어`, `ㅠㅠㅠ` → `ㅠ`, `kill` → `kil`). Digits are exempt, so `1100` stays.
//!    Because patterns are normalized the same way, `kill myself` in a rule still matches.
//!
//! # Two forms
//!
//! * **spaced** — word structure kept: punctuation and whitespace runs become one space,
//!   symbols stand as their own tokens, and the text is padded with one space at each end
//!   so a `words` pattern can anchor on a word boundary (`" kms "`). A run of at most two
//!   digits, punctuation marks or symbols *between two Hangul letters, with no whitespace*
//!   is dropped (`자1살`, `자.살`, `죽.고.싶.다`, `자🔪살`): that is how people dodge filters.
//!   Separators are not removed anywhere else, which keeps `가자, 살살` from reading as
//!   `자살`.
//! * **compact** — letters only: every space, punctuation mark, digit and symbol removed.
//!   `죽 고 싶 다` and `죽고싶다` are the same here. Multi-syllable stems are matched on this
//!   form; short or ambiguous stems belong on the spaced form.
//!
//! | input                 | spaced           | compact     |
//! |-----------------------|------------------|-------------|
//! | `죽고 싶다`           | ` 죽고 싶다 `    | `죽고싶다`  |
//! | `죽.고.싶.다`         | ` 죽고싶다 `     | `죽고싶다`  |
//! | `죽고싶어어어어ㅠㅠ`  | ` 죽고싶어ㅠ `   | `죽고싶어ㅠ`|
//! | `ㅈㅏㅅㅏㄹ`          | ` 자살 `         | `자살`      |
//! | `자\u{200B}살`        | ` 자살 `         | `자살`      |
//! | `ＫＭＳ`              | ` kms `          | `kms`       |
//! | `ㅈㄱㅅㄷ`            | ` ㅈㄱㅅㄷ `     | `ㅈㄱㅅㄷ`  |
//!
//! Normalization is idempotent (a property test proves it): normalizing the output again
//! changes nothing.
//!
//! # Offsets
//!
//! Every output character remembers the range of original characters it came from, so a
//! match in either form maps back to character offsets in the text the person typed
//! ([`Form::original_span`]).

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

use super::hangul::{
    CHO, COMPOUND_FINALS, COMPOUND_VOWELS, FIRST_VOWEL, JONG, SYLLABLE_BASE, cho_index,
    is_compat_jamo, is_hangul, is_syllable, jong_index, vowel_index,
};

/// A character range `[start, end)` in the original text, counted in `char`s.
pub type Span = (usize, usize);

/// The two normalized views of one message. Build with [`Normalized::new`].
#[derive(Debug, Clone)]
pub struct Normalized {
    /// Word structure kept, padded with a space at each end.
    pub spaced: Form,
    /// Letters only.
    pub compact: Form,
}

/// One normalized view of a message, with the map back to the original characters.
#[derive(Debug, Clone, Default)]
pub struct Form {
    text: String,
    /// One entry per `char` of `text`, in order.
    map: Vec<CharOrigin>,
    /// The last char written (for collapsing repeats).
    last: Option<char>,
}

#[derive(Debug, Clone, Copy)]
struct CharOrigin {
    /// Byte offset of this char in `Form::text`.
    byte: u32,
    /// Original char range it came from; `start == end` for synthetic padding.
    start: u32,
    end: u32,
}

impl Form {
    /// An empty form with room for `chars` characters (three bytes each: Hangul).
    fn with_capacity(chars: usize) -> Form {
        Form {
            text: String::with_capacity(chars * 3),
            map: Vec::with_capacity(chars),
            last: None,
        }
    }

    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Maps a byte range of [`Form::as_str`] (as reported by a matcher) to a character range
    /// in the original text. Spaces at the edges of the match (word-boundary anchors) are
    /// left out, so the span covers exactly the words that fired. Returns `None` when the
    /// range holds only synthetic characters.
    pub fn original_span(&self, byte_start: usize, byte_end: usize) -> Option<Span> {
        let first = self.map.partition_point(|c| (c.byte as usize) < byte_start);
        let mut lo = usize::MAX;
        let mut hi = 0usize;
        for origin in &self.map[first..] {
            if origin.byte as usize >= byte_end {
                break;
            }
            let ch_is_space = self.text[origin.byte as usize..].starts_with(' ');
            if ch_is_space || origin.start == origin.end {
                continue;
            }
            lo = lo.min(origin.start as usize);
            hi = hi.max(origin.end as usize);
        }
        (lo < hi).then_some((lo, hi))
    }

    /// This form with some of its byte ranges replaced (`edits` sorted by start and not
    /// overlapping, each on char boundaries): the characters written for an edit map back
    /// to the original characters of the range they replace, so a match that reads through
    /// a repaired slip still points at exactly what the person typed.
    pub(crate) fn rewrite(&self, edits: &[(usize, usize, &str)]) -> Form {
        let mut out = Form::with_capacity(self.map.len() + 4);
        let mut i = 0;
        let copy = |out: &mut Form, o: CharOrigin| {
            let c = self.text[o.byte as usize..]
                .chars()
                .next()
                .expect("a map entry points at a char");
            out.map.push(CharOrigin {
                byte: out.text.len() as u32,
                start: o.start,
                end: o.end,
            });
            out.text.push(c);
        };
        for &(b0, b1, with) in edits {
            while i < self.map.len() && (self.map[i].byte as usize) < b0 {
                copy(&mut out, self.map[i]);
                i += 1;
            }
            let (mut lo, mut hi) = (u32::MAX, 0u32);
            while i < self.map.len() && (self.map[i].byte as usize) < b1 {
                let o = self.map[i];
                if o.start != o.end {
                    lo = lo.min(o.start);
                    hi = hi.max(o.end);
                }
                i += 1;
            }
            if lo > hi {
                lo = hi;
            }
            for c in with.chars() {
                out.map.push(CharOrigin {
                    byte: out.text.len() as u32,
                    start: lo,
                    end: hi,
                });
                out.text.push(c);
            }
        }
        while i < self.map.len() {
            copy(&mut out, self.map[i]);
            i += 1;
        }
        out.last = out.text.chars().last();
        out
    }

    /// For every position `0..=len` of the original text, how many characters of this form
    /// come from before it. The difference between two positions is the distance between
    /// them as this form counts it: in the compact form, letters only, with inserted spaces
    /// and repeats left out.
    pub(crate) fn count_before(&self, len: usize) -> Vec<u32> {
        let mut at = vec![0u32; len + 2];
        for c in &self.map {
            if c.start != c.end && (c.start as usize) < at.len() - 1 {
                at[c.start as usize + 1] += 1;
            }
        }
        for i in 1..at.len() {
            at[i] += at[i - 1];
        }
        at.truncate(len + 1);
        at
    }

    /// Appends a character, collapsing a repeat of the previous one (digits exempt) into it
    /// and merging their spans. Composition writes through here, so repeats are collapsed
    /// after composition, in the same pass.
    fn push(&mut self, c: char, start: u32, end: u32) {
        if self.last == Some(c) && !c.is_numeric() {
            if let Some(last) = self.map.last_mut() {
                // A synthetic char (padding) has no span to extend.
                if start != end {
                    if last.start == last.end {
                        last.start = start;
                    }
                    last.end = last.end.max(end);
                }
            }
            return;
        }
        self.last = Some(c);
        self.map.push(CharOrigin {
            byte: self.text.len() as u32,
            start,
            end,
        });
        self.text.push(c);
    }
}

impl Normalized {
    /// Normalizes `text` into both forms.
    pub fn new(text: &str) -> Self {
        let units = units(text);
        Normalized {
            spaced: spaced_form(&units),
            compact: compact_form(&units),
        }
    }
}

/// The spaced form of `text` without its padding: the canonical normalized text shown by
/// `ieum normalize` and used by the idempotence property.
pub fn normalize(text: &str) -> String {
    let units = units(text);
    spaced_form(&units).text.trim().to_owned()
}

/// The compact form of `text` (letters only).
pub fn compact(text: &str) -> String {
    compact_form(&units(text)).text
}

/// The compact form with Korean typed on the Latin keyboard layout read back as Korean
/// (`wnrrhtlvek` → `죽고싶다`): every run of four or more Latin letters that spells whole
/// Hangul syllables on the two-set layout is replaced by them, with offsets kept. In a
/// Korean context — the message holds Hangul, or a long run was read back — a run of two or
/// three letters that spells whole syllables is read back too (`방금 dir 먹었어`: 약 typed
/// with the layout left on Latin; `ajswj rksek dkssud`). `None` when no run does (the
/// common case: costs one scan for Latin letters).
///
/// English words almost never spell whole syllables on that layout (`hello` starts with a
/// vowel key), and the rules matched on this form are Korean words, so an English word read
/// as Korean cannot fire one by accident.
pub fn layout_form(text: &str) -> Option<Form> {
    // Most messages have no run of four Latin letters, nor Hangul beside a shorter one:
    // answer that without allocating.
    let mut run = 0;
    let mut longest = 0;
    for b in text.bytes() {
        run = if b.is_ascii_alphabetic() { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    if longest < 2 {
        return None;
    }
    let hangul = text.chars().any(is_hangul);
    if longest < 4 && !hangul {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    // Runs of Latin letters, each letter with its position; invisible characters inside a
    // run are skipped (w\u{200B}nrrhtlvek is still one word).
    let mut runs: Vec<Vec<(usize, char)>> = Vec::new();
    let mut short: Vec<Vec<(usize, char)>> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let mut run = Vec::new();
        while i < chars.len() && (chars[i].is_ascii_alphabetic() || is_ignorable(chars[i])) {
            if chars[i].is_ascii_alphabetic() {
                run.push((i, chars[i]));
            }
            i += 1;
        }
        if run.len() >= 4 && spells_syllables(&run) {
            runs.push(run);
        } else if (2..4).contains(&run.len()) && spells_whole_syllables(&run) {
            short.push(run);
        }
    }
    // Short runs only beside Korean: Hangul in the message, or a long run read back.
    if hangul || !runs.is_empty() {
        runs.append(&mut short);
    }
    if runs.is_empty() {
        return None;
    }
    let in_run = |u: &Unit| {
        runs.iter()
            .any(|r| r.iter().any(|&(at, _)| at as u32 == u.start))
    };
    let mut merged: Vec<Unit> = units(text).into_iter().filter(|u| !in_run(u)).collect();
    for run in &runs {
        merged.extend(layout_units(run));
    }
    merged.sort_by_key(|u| u.start);
    Some(compact_form(&merged))
}

/// The jamo a Latin key types on the two-set layout (Shift matters for the tense consonants
/// and ㅒ ㅖ only).
fn layout_jamo(c: char) -> Option<char> {
    Some(match c {
        'Q' => 'ㅃ',
        'W' => 'ㅉ',
        'E' => 'ㄸ',
        'R' => 'ㄲ',
        'T' => 'ㅆ',
        'O' => 'ㅒ',
        'P' => 'ㅖ',
        _ => match c.to_ascii_lowercase() {
            'q' => 'ㅂ',
            'w' => 'ㅈ',
            'e' => 'ㄷ',
            'r' => 'ㄱ',
            't' => 'ㅅ',
            'y' => 'ㅛ',
            'u' => 'ㅕ',
            'i' => 'ㅑ',
            'o' => 'ㅐ',
            'p' => 'ㅔ',
            'a' => 'ㅁ',
            's' => 'ㄴ',
            'd' => 'ㅇ',
            'f' => 'ㄹ',
            'g' => 'ㅎ',
            'h' => 'ㅗ',
            'j' => 'ㅓ',
            'k' => 'ㅏ',
            'l' => 'ㅣ',
            'z' => 'ㅋ',
            'x' => 'ㅌ',
            'c' => 'ㅊ',
            'v' => 'ㅍ',
            'b' => 'ㅠ',
            'n' => 'ㅜ',
            'm' => 'ㅡ',
            _ => return None,
        },
    })
}

fn layout_units(run: &[(usize, char)]) -> Vec<Unit> {
    run.iter()
        .filter_map(|&(at, c)| {
            let i = at as u32;
            layout_jamo(c).map(|j| Unit {
                c: j,
                class: Class::Letter,
                trailing: false,
                start: i,
                end: i + 1,
            })
        })
        .collect()
}

/// Whether a short Latin run, read on the two-set layout, is whole syllables and nothing
/// else (`dir` is 약; `ok` is not: a vowel key first).
fn spells_whole_syllables(run: &[(usize, char)]) -> bool {
    let units = layout_units(run);
    let form = compose(units.iter(), units.len());
    !form.text.is_empty() && form.text.chars().all(is_syllable)
}

/// Whether a Latin run, read on the two-set layout, composes into whole syllables.
fn spells_syllables(run: &[(usize, char)]) -> bool {
    let units = layout_units(run);
    let form = compose(units.iter(), units.len());
    // Whole syllables, allowing one stray jamo (a key pressed twice: wnrrhtlvvek).
    let syllables = form.text.chars().filter(|&c| is_syllable(c)).count();
    syllables >= 2 && form.text.chars().count() - syllables <= 1
}

/// Normalizes a `words` pattern: like [`normalize`], but a leading or trailing space in the
/// pattern is kept, anchoring it to a word boundary of the padded spaced text.
pub fn normalize_words_pattern(pattern: &str) -> String {
    let inner = normalize(pattern);
    let mut out = String::with_capacity(inner.len() + 2);
    if pattern.starts_with(char::is_whitespace) {
        out.push(' ');
    }
    out.push_str(&inner);
    if pattern.ends_with(char::is_whitespace) && !inner.is_empty() {
        out.push(' ');
    }
    out
}

// ---------------------------------------------------------------------------------------
// Step 1 and 2: decompose, drop, lowercase, classify.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Symbol,
    Punct,
    White,
}

#[derive(Debug, Clone, Copy)]
struct Unit {
    c: char,
    class: Class,
    /// A conjoining trailing consonant (NFD final): may attach to a precomposed syllable.
    trailing: bool,
    start: u32,
    end: u32,
}

fn units(text: &str) -> Vec<Unit> {
    let mut out = Vec::with_capacity(text.len() / 2 + 4);
    // Whether any lone jamo came in: only then can a disguise be read back (most messages
    // hold none, and skip that pass).
    let mut jamo = false;
    for (i, c) in text.chars().enumerate() {
        let i = i as u32;
        if c.is_ascii() {
            if let Some(u) = classify(c.to_ascii_lowercase(), i) {
                out.push(u);
            }
            continue;
        }
        // Precomposed syllables first: they are most of a Korean message and never
        // ignorable (the Hangul fillers are compatibility-jamo code points, checked next).
        if !is_syllable(c) && is_ignorable(c) {
            continue;
        }
        if is_syllable(c) || is_compat_jamo(c) {
            jamo |= !is_syllable(c);
            out.push(Unit {
                c,
                class: Class::Letter,
                trailing: false,
                start: i,
                end: i + 1,
            });
            continue;
        }
        decompose_compatible(c, |d| {
            if let Some(t) = conjoining_to_compat(d) {
                jamo = true;
                out.push(Unit {
                    c: t.0,
                    class: Class::Letter,
                    trailing: t.1,
                    start: i,
                    end: i + 1,
                });
                return;
            }
            if is_ignorable(d) || is_combining_mark(d) {
                return;
            }
            if d.is_ascii() {
                if let Some(u) = classify(d.to_ascii_lowercase(), i) {
                    out.push(u);
                }
                return;
            }
            for l in d.to_lowercase() {
                // Lowercasing can produce characters with their own decompositions.
                decompose_compatible(l, |e| {
                    if is_ignorable(e) || is_combining_mark(e) {
                        return;
                    }
                    if let Some(u) = classify(e, i) {
                        out.push(u);
                    }
                });
            }
        });
    }
    read_leet_letters(&mut out);
    if jamo {
        read_hangul_disguises(&mut out);
    }
    out
}

/// Korean typed past a word filter with Latin look-alike vowels, read back: `r` for `ㅏ` and
/// `H` for `ㅐ` after a lone consonant (`ㅈr살` is 자살, `번ㄱH탄` 번개탄), when no Latin letter
/// follows (`ㅋㅋrun` keeps its `r`). Neighbours are letters, whatever stands between them,
/// and a run of one letter counts once: the compact form keeps letters only and collapses
/// runs, and normalizing it again must give it back unchanged.
///
/// A lone consonant typed between two syllables as the first one's final (`주ㄱ고싶`) is not
/// read back: the compact form cannot tell it from initials beside a word (`미래 ㄴㄴ`).
fn read_hangul_disguises(units: &mut [Unit]) {
    let letters: Vec<usize> = (0..units.len())
        .filter(|&i| units[i].class == Class::Letter)
        .collect();
    let lone_consonant = |u: &Unit| is_compat_jamo(u.c) && vowel_index(u.c).is_none();
    for p in 1..letters.len() {
        let (before, k) = (letters[p - 1], letters[p]);
        let next_latin = letters[p + 1..]
            .iter()
            .map(|&a| units[a].c)
            .find(|&c| c != units[k].c)
            .is_some_and(|c| c.is_ascii_alphabetic());
        if lone_consonant(&units[before]) && !next_latin {
            match units[k].c {
                'r' => units[k].c = 'ㅏ',
                'h' => units[k].c = 'ㅐ',
                _ => {}
            }
        }
    }
}

/// The letter a digit or sign stands for inside a Latin word (`d!e`, `k1ll`, `s3lf`).
fn leet_letter(c: char) -> Option<char> {
    Some(match c {
        '!' | '1' | '|' => 'i',
        '0' => 'o',
        '3' => 'e',
        '@' | '4' => 'a',
        '$' | '5' => 's',
        _ => return None,
    })
}

/// Reads a digit or sign typed tight between two Latin letters as the letter it stands for
/// (see [`leet_letter`]). Only between two letters, with no space or mark between them
/// (invisible characters are already gone, so `d!\u{200B}e` reads too): `covid19`, `mp3`,
/// `wow! that` and `10시` keep their digits and signs.
fn read_leet_letters(units: &mut [Unit]) {
    let latin = |u: &Unit| u.class == Class::Letter && u.c.is_ascii_alphabetic();
    for k in 1..units.len().saturating_sub(1) {
        let (before, rest) = units.split_at_mut(k);
        let (this, after) = rest.split_at_mut(1);
        let (prev, cur, next) = (&before[k - 1], &mut this[0], &after[0]);
        if cur.class == Class::Letter || !latin(prev) || !latin(next) {
            continue;
        }
        if let Some(l) = leet_letter(cur.c) {
            cur.c = l;
            cur.class = Class::Letter;
        }
    }
}

fn classify(c: char, i: u32) -> Option<Unit> {
    let class = if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else if c.is_whitespace() {
        Class::White
    } else if c.is_control() || is_ignorable(c) || is_private_use(c) {
        return None;
    } else if is_punctuation(c) {
        Class::Punct
    } else {
        Class::Symbol
    };
    Some(Unit {
        c,
        class,
        trailing: false,
        start: i,
        end: i + 1,
    })
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c as u32,
            0x00A1..=0x00BF   // Latin-1 punctuation and signs
            | 0x2010..=0x205E // general punctuation
            | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F // CJK punctuation, brackets
            | 0x30FB          // katakana middle dot
            | 0xFE10..=0xFE19 | 0xFE30..=0xFE6B // vertical and small forms
            | 0xFF61..=0xFF65 // halfwidth CJK punctuation
        )
        || c == '·'
        || c == '…'
}

fn is_private_use(c: char) -> bool {
    matches!(c as u32, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

/// Unicode Default_Ignorable_Code_Point, plus bidi controls. Includes the Hangul fillers,
/// which are invisible *letters* and survive NFKC.
fn is_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5
        | 0x180B..=0x180F | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F
        | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF
    )
}

// ---------------------------------------------------------------------------------------
// Hangul tables: see [`super::hangul`].

/// Conjoining jamo (as found in NFD text) to compatibility jamo, plus whether it is a
/// trailing consonant.
fn conjoining_to_compat(c: char) -> Option<(char, bool)> {
    let u = c as u32;
    match u {
        0x1100..=0x1112 => Some((CHO[(u - 0x1100) as usize], false)),
        0x1161..=0x1175 => Some((char::from_u32(FIRST_VOWEL + u - 0x1161)?, false)),
        0x11A8..=0x11C2 => Some((JONG[(u - 0x11A7) as usize], true)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Step 3: the two-set keyboard automaton.

type Piece = (char, u32, u32);

#[derive(Default)]
struct Ime {
    cho: Option<Piece>,
    /// One vowel, or a compound vowel and the span of both parts.
    jung: Option<Piece>,
    /// The first vowel of a possible compound, kept so `ㅗ`+`ㅏ` can become `ㅘ`.
    jung_simple: bool,
    jong: Option<Piece>,
    /// The two halves of a compound final, kept so a following vowel can take the second.
    jong_parts: Option<(Piece, Piece)>,
    /// The open syllable came precomposed: only an NFD trailing consonant may attach.
    locked: bool,
    /// The last thing written was a lone consonant: we are inside a choseong run
    /// (`ㄷㅂㅈㅅ`), where a following `ㅠ`/`ㅜ`/`ㅡ` is a crying face, not a vowel.
    after_lone_consonant: bool,
    /// A precomposed syllable without a final, held as it came: only an NFD trailing
    /// consonant may still attach to it. Most Korean syllables are like this, so they pass
    /// through without being taken apart and put back together.
    open: Option<Piece>,
}

impl Ime {
    fn feed(&mut self, u: &Unit, out: &mut Form) {
        let piece = (u.c, u.start, u.end);
        if is_syllable(u.c) {
            self.flush(out);
            let s = u.c as u32 - SYLLABLE_BASE;
            if s % 28 == 0 {
                // Open syllable: keep it so an NFD trailing consonant can close it.
                self.open = Some(piece);
            } else {
                out.push(u.c, u.start, u.end);
            }
            return;
        }
        if u.trailing {
            if let Some((c, start, end)) = self.open.take() {
                // NFD: the trailing consonant closes the precomposed open syllable.
                let s = c as u32 - SYLLABLE_BASE;
                self.cho = Some((CHO[(s / 588) as usize], start, end));
                self.jung = Some((
                    char::from_u32(FIRST_VOWEL + (s % 588) / 28).unwrap_or('ㅏ'),
                    start,
                    end,
                ));
                self.jong = Some(piece);
                self.locked = true;
                return;
            }
        }
        if self.open.is_some() {
            self.flush(out);
        }
        if vowel_index(u.c).is_some() {
            self.vowel(piece, out);
        } else if u.trailing {
            if self.cho.is_some() && self.jung.is_some() && self.jong.is_none() {
                self.jong = Some(piece);
                self.locked = true;
            } else {
                self.consonant(piece, out);
            }
        } else {
            self.consonant(piece, out);
        }
    }

    fn consonant(&mut self, p: Piece, out: &mut Form) {
        // A repeated initial ("ㅈㅈㅏ") is a typo or elongation: keep one.
        if self.jung.is_none() {
            if let Some(c) = self.cho.as_mut().filter(|c| c.0 == p.0) {
                c.2 = c.2.max(p.2);
                return;
            }
        }
        if self.cho.is_some() && self.jung.is_some() && !self.locked {
            match self.jong {
                None if jong_index(p.0).is_some() => {
                    self.jong = Some(p);
                    return;
                }
                Some(j) if self.jong_parts.is_none() => {
                    if let Some(&(_, _, c)) = COMPOUND_FINALS
                        .iter()
                        .find(|(a, b, _)| *a == j.0 && *b == p.0)
                    {
                        self.jong = Some((c, j.1.min(p.1), j.2.max(p.2)));
                        self.jong_parts = Some((j, p));
                        return;
                    }
                }
                _ => {}
            }
        }
        self.flush(out);
        if cho_index(p.0).is_some() {
            self.cho = Some(p);
        } else {
            out.push(p.0, p.1, p.2);
        }
    }

    fn vowel(&mut self, p: Piece, out: &mut Form) {
        if self.locked {
            self.flush(out);
        }
        // `ㄷㅂㅈㅅㅠㅠ` is an abbreviation and a crying face, not `ㄷㅂㅈ슈`.
        if self.after_lone_consonant
            && self.cho.is_some()
            && self.jung.is_none()
            && matches!(p.0, 'ㅠ' | 'ㅜ' | 'ㅡ')
        {
            self.flush(out);
            self.after_lone_consonant = false;
            self.jung = Some(p);
            self.jung_simple = false;
            return;
        }
        // A repeated vowel ("ㅈㅏㅏ") can never start a syllable of its own: keep one.
        if self.jong.is_none() {
            if let Some(v) = self.jung.as_mut().filter(|v| v.0 == p.0) {
                v.2 = v.2.max(p.2);
                return;
            }
        }
        if let Some(jong) = self.jong {
            // The final consonant moves over to start the next syllable.
            let (keep, moved) = match self.jong_parts {
                Some((first, second)) => (Some(first), second),
                None => (None, jong),
            };
            self.jong = keep;
            self.jong_parts = None;
            self.flush(out);
            self.cho = Some(moved);
            self.jung = Some(p);
            self.jung_simple = true;
            return;
        }
        if let Some(j) = self.jung {
            if self.jung_simple {
                if let Some(&(_, _, c)) = COMPOUND_VOWELS
                    .iter()
                    .find(|(a, b, _)| *a == j.0 && *b == p.0)
                {
                    self.jung = Some((c, j.1.min(p.1), j.2.max(p.2)));
                    self.jung_simple = false;
                    return;
                }
            }
            self.flush(out);
            self.jung = Some(p);
            self.jung_simple = true;
            return;
        }
        self.jung = Some(p);
        self.jung_simple = true;
    }

    fn flush(&mut self, out: &mut Form) {
        if let Some((c, start, end)) = self.open.take() {
            out.push(c, start, end);
            self.after_lone_consonant = false;
            return;
        }
        match (self.cho.take(), self.jung.take()) {
            (Some(c), Some(v)) => {
                let ci = cho_index(c.0).unwrap_or(0);
                let vi = vowel_index(v.0).unwrap_or(0);
                let (ji, lo, hi) = match self.jong.take() {
                    Some(j) => (jong_index(j.0).unwrap_or(0), j.1, j.2),
                    None => (0, u32::MAX, 0),
                };
                let code = SYLLABLE_BASE + (ci * 21 + vi) * 28 + ji;
                let syllable = char::from_u32(code).unwrap_or(c.0);
                out.push(syllable, c.1.min(v.1).min(lo), c.2.max(v.2).max(hi));
                self.after_lone_consonant = false;
            }
            (Some(c), None) => {
                out.push(c.0, c.1, c.2);
                self.after_lone_consonant = true;
            }
            (None, Some(v)) => {
                out.push(v.0, v.1, v.2);
                self.after_lone_consonant = false;
            }
            (None, None) => {}
        }
        if let Some(j) = self.jong.take() {
            out.push(j.0, j.1, j.2);
        }
        self.jong_parts = None;
        self.jung_simple = false;
        self.locked = false;
    }
}

/// Composes Hangul in `units` (letters only are composed; everything else passes through
/// and ends the syllable in progress).
fn compose<'a>(units: impl Iterator<Item = &'a Unit> + Clone, capacity: usize) -> Form {
    let mut out = Form::with_capacity(capacity);
    // Most messages hold no loose jamo (conjoining ones arrive as compatibility jamo): the
    // IME would only pass every letter through, so skip it.
    if !units.clone().any(|u| is_compat_jamo(u.c)) {
        for u in units {
            out.push(u.c, u.start, u.end);
        }
        return out;
    }
    let mut ime = Ime::default();
    for u in units {
        if u.class == Class::Letter && is_hangul(u.c) {
            ime.feed(u, &mut out);
        } else {
            ime.flush(&mut out);
            ime.after_lone_consonant = false;
            out.push(u.c, u.start, u.end);
        }
    }
    ime.flush(&mut out);
    out
}

// ---------------------------------------------------------------------------------------
// Step 4 and the two forms.

fn spaced_form(units: &[Unit]) -> Form {
    // Drop short separator runs squeezed between two Hangul letters ("자1살", "죽.고").
    let mut keep = vec![true; units.len()];
    let mut i = 0;
    while i < units.len() {
        let class = units[i].class;
        if matches!(class, Class::Digit | Class::Punct | Class::Symbol) {
            let mut j = i;
            while j < units.len()
                && matches!(units[j].class, Class::Digit | Class::Punct | Class::Symbol)
            {
                j += 1;
            }
            let before = i > 0 && units[i - 1].class == Class::Letter && is_hangul(units[i - 1].c);
            let after = j < units.len() && units[j].class == Class::Letter && is_hangul(units[j].c);
            if before && after && j - i <= 2 {
                keep[i..j].iter_mut().for_each(|k| *k = false);
            }
            i = j;
        } else {
            i += 1;
        }
    }

    // Separators become single spaces; symbols stand apart as their own tokens.
    let pad = Unit {
        c: ' ',
        class: Class::White,
        trailing: false,
        start: 0,
        end: 0,
    };
    // Without loose jamo there is nothing to compose: the units go straight into the form
    // (what [`compose`] would do, one pass and one buffer fewer).
    if !units.iter().any(|u| is_compat_jamo(u.c)) {
        let mut form = Form::with_capacity(units.len() + 8);
        separate(units, &keep, pad, |u| form.push(u.c, u.start, u.end));
        return synthetic_padding(form);
    }
    let mut seq: Vec<Unit> = Vec::with_capacity(units.len() + 8);
    separate(units, &keep, pad, |u| seq.push(u));
    synthetic_padding(compose(seq.iter(), seq.len()))
}

/// Writes the units kept, with separators as single spaces, symbols standing apart as their
/// own tokens, and `pad` at both ends.
fn separate(units: &[Unit], keep: &[bool], pad: Unit, mut emit: impl FnMut(Unit)) {
    emit(pad);
    let mut prev_class = Class::White;
    // The last character written is a space (the padding, or a separator).
    let mut after_space = true;
    let mut put = |u: Unit, after_space: &mut bool| {
        *after_space = u.c == ' ';
        emit(u);
    };
    for (u, _) in units.iter().zip(keep).filter(|(_, k)| **k) {
        match u.class {
            Class::Letter | Class::Digit => {
                if prev_class == Class::Symbol {
                    put(pad, &mut after_space);
                }
                put(*u, &mut after_space);
            }
            Class::Symbol => {
                if prev_class != Class::Symbol && prev_class != Class::White {
                    put(pad, &mut after_space);
                }
                put(*u, &mut after_space);
            }
            Class::Punct | Class::White => {
                if !after_space {
                    let space = Unit {
                        c: ' ',
                        class: Class::White,
                        trailing: false,
                        start: u.start,
                        end: u.end,
                    };
                    put(space, &mut after_space);
                }
            }
        }
        prev_class = match u.class {
            Class::Punct => Class::White,
            c => c,
        };
    }
    if !after_space {
        put(pad, &mut after_space);
    }
}

/// Whitespace spans point at separators; the padding must stay synthetic at both ends.
fn synthetic_padding(mut form: Form) -> Form {
    if let Some(first) = form.map.first_mut() {
        first.start = 0;
        first.end = 0;
    }
    if let Some(last) = form.map.last_mut() {
        last.start = 0;
        last.end = 0;
    }
    form
}

fn compact_form(units: &[Unit]) -> Form {
    let letters = units.iter().filter(|u| u.class == Class::Letter);
    compose(letters, units.len())
}

#[cfg(test)]
mod tests {

    #[test]
    fn rewrite_maps_replacements_back_to_what_was_typed() {
        let text = "번개타, 샀어";
        let n = Normalized::new(text);
        let c = &n.compact;
        assert_eq!(c.as_str(), "번개타샀어");
        let b = "번개타".len();
        let r = c.rewrite(&[(0, b, "번개탄")]);
        assert_eq!(r.as_str(), "번개탄샀어");
        // The replaced word maps to the three letters typed; what follows keeps its place.
        assert_eq!(r.original_span(0, "번개탄".len()), Some((0, 3)));
        let at = "번개탄".len();
        assert_eq!(r.original_span(at, at + "샀".len()), Some((5, 6)));
        // A deletion leaves nothing behind and shifts nothing else.
        let n = Normalized::new("죽ㄱ고");
        let d = n.compact.rewrite(&[("죽".len(), "죽ㄱ".len(), "")]);
        assert_eq!(d.as_str(), "죽고");
        assert_eq!(d.original_span("죽".len(), "죽고".len()), Some((2, 3)));
    }
    use super::*;

    #[test]
    fn disguises_read_back_the_same_on_a_second_pass() {
        // Found by property tests and a fuzz of look-alike letters, runs and separators: the
        // disguise pass looks past marks and runs.
        for text in [
            "ᄀHh",
            "ㄱ,rᄀ",
            "나ㅅ ㅅH주 .",
            "여ᄀ .ᄀㅐ살",
            "가h죽여ᄂ ㄴ,ᅡ",
            "고ᄂㅇㅇㅡ살",
            "다새ㅈ1!!ㅈR!",
            "주ㄱㄱ고",
        ] {
            for form in [normalize as fn(&str) -> String, compact] {
                let once = form(text);
                assert_eq!(form(&once), once, "{text:?}");
            }
        }
    }

    #[test]
    fn documented_table_holds() {
        let cases = [
            ("죽고 싶다", "죽고 싶다", "죽고싶다"),
            ("죽.고.싶.다", "죽고싶다", "죽고싶다"),
            ("죽고싶어어어어ㅠㅠ", "죽고싶어ㅠ", "죽고싶어ㅠ"),
            ("ㅈㅏㅅㅏㄹ", "자살", "자살"),
            ("자\u{200B}살", "자살", "자살"),
            ("ＫＭＳ", "kms", "kms"),
            ("ㅈㄱㅅㄷ", "ㅈㄱㅅㄷ", "ㅈㄱㅅㄷ"),
            // Typed past a word filter: Latin r and H for ㅏ and ㅐ after a lone consonant;
            // a lone consonant between syllables is not taken as a final.
            ("ㅈr살 하고싶다", "자살 하고싶다", "자살하고싶다"),
            ("번ㄱH탄", "번개탄", "번개탄"),
            // Laughter between words, initials after a syllable and an English word stay.
            ("웃기네ㅋ그래서", "웃기네ㅋ그래서", "웃기네ㅋ그래서"),
            ("좋아ㅎ고마워", "좋아ㅎ고마워", "좋아ㅎ고마워"),
            ("나ㅈㄱㅅㄷ", "나ㅈㄱㅅㄷ", "나ㅈㄱㅅㄷ"),
            ("자ㅅ하고 싶어", "자ㅅ하고 싶어", "자ㅅ하고싶어"),
            ("주ㄱ고싶", "주ㄱ고싶", "주ㄱ고싶"),
            ("다 ㅈ여버려", "다 ㅈ여버려", "다ㅈ여버려"),
            ("ㅋrun", "ㅋrun", "ㅋrun"),
        ];
        for (input, spaced, compact_) in cases {
            assert_eq!(normalize(input), spaced, "spaced form of {input:?}");
            assert_eq!(compact(input), compact_, "compact form of {input:?}");
        }
    }

    #[test]
    fn variants_reach_the_plain_form() {
        let plain = compact("죽고싶다");
        for variant in [
            "죽고 싶다",
            "죽 고 싶 다",
            "죽.고.싶.다",
            "죽고싶다다다",
            "죽\u{200D}고\u{FEFF}싶\u{2060}다",
            "\u{202E}죽고싶다\u{202C}",
            "\u{110C}\u{116E}\u{11A8}\u{1100}\u{1169}\u{1109}\u{1175}\u{11C1}\u{1103}\u{1161}", // NFD
            "ㅈㅜㄱㄱㅗㅅㅣㅍㄷㅏ",
            "죽 고 싶 다 😭",
            "죽\u{3164}고싶다",
        ] {
            assert_eq!(compact(variant), plain, "compact form of {variant:?}");
        }
    }

    #[test]
    fn a_digit_or_sign_inside_a_latin_word_reads_as_its_letter() {
        assert_eq!(compact("want to d!e"), compact("want to die"));
        assert_eq!(compact("k1ll myself"), compact("kill myself"));
        assert_eq!(compact("su1c1de"), compact("suicide"));
        assert_eq!(compact("s3lf h@rm"), compact("self harm"));
        // Not at a word's edge, not beside a digit, not across a space.
        assert_eq!(normalize("covid19 mp3"), "covid19 mp3");
        assert_eq!(normalize("wow! that"), "wow that");
        assert_eq!(normalize("a 1 b"), "a 1 b");
        assert_eq!(normalize("10시 5분"), "10시 5분");
        // The letter maps back to the sign that was typed.
        let n = Normalized::new("d!e");
        assert_eq!(n.compact.as_str(), "die");
        assert_eq!(n.compact.original_span(1, 2), Some((1, 2)));
    }

    #[test]
    fn tight_separators_only_between_hangul() {
        assert_eq!(normalize("자1살"), "자살");
        assert_eq!(normalize("자🔪살"), "자살");
        assert_eq!(normalize("가자, 살살"), "가자 살");
        assert_eq!(normalize("오늘 10시"), "오늘 10시");
        assert_eq!(normalize("I can't"), "i can t");
    }

    #[test]
    fn jamo_composition_handles_compounds_and_leftovers() {
        assert_eq!(normalize("ㅇㅓㅂㅅㅓ"), "업서");
        assert_eq!(normalize("ㅇㅓㅂㅅ"), "없");
        assert_eq!(normalize("ㄱㅘㄴㅊㅏㄴㅎㅇㅏ"), "관찮아");
        assert_eq!(normalize("ㄱㅗㅐㄴㅊㅏㄶㅇㅏ"), "괜찮아");
        assert_eq!(normalize("그ㅋㅋㅋ"), "그ㅋ");
        assert_eq!(normalize("ㅠㅠ"), "ㅠ");
        assert_eq!(normalize("ㅈㅅ"), "ㅈㅅ");
        assert_eq!(normalize("ㅈㅈㅏㅏㅅㅏㄹ"), "자살");
        assert_eq!(normalize("ㅈㅜㄱㄱㄱㅗ"), "죽고");
        assert_eq!(normalize("ㄷㅂㅈㅅㅠㅠ"), "ㄷㅂㅈㅅㅠ");
        assert_eq!(normalize("ㅈㄱㅅㄷㅜㅜ"), "ㅈㄱㅅㄷㅜ");
        assert_eq!(normalize("ㅋㅈㅏㅅㅏㄹ"), "ㅋ자살");
        assert_eq!(normalize("ㅇㅠㅅㅓ"), "유서");
    }

    #[test]
    fn emoji_are_tokens_in_spaced_and_gone_in_compact() {
        assert_eq!(normalize("약💊💊 모았어"), "약 💊 모았어");
        assert_eq!(compact("약💊💊 모았어"), "약모았어");
    }

    #[test]
    fn spans_point_back_to_the_original() {
        let text = "저는 죽.고.싶.어요";
        let n = Normalized::new(text);
        let needle = "죽고싶";
        let at = n.compact.as_str().find(needle).unwrap();
        let span = n.compact.original_span(at, at + needle.len()).unwrap();
        let chars: Vec<char> = text.chars().collect();
        let fired: String = chars[span.0..span.1].iter().collect();
        assert_eq!(fired, "죽.고.싶");

        let jamo = "ㅈㅏㅅㅏㄹ 생각";
        let n = Normalized::new(jamo);
        let at = n.spaced.as_str().find("자살").unwrap();
        assert_eq!(n.spaced.original_span(at, at + "자살".len()), Some((0, 5)));
    }

    #[test]
    fn words_patterns_keep_their_anchors() {
        assert_eq!(normalize_words_pattern(" KMS "), " kms ");
        assert_eq!(normalize_words_pattern("자살"), "자살");
    }

    #[test]
    fn korean_typed_on_the_latin_layout_is_read_back() {
        let f = layout_form("wnrrhtlvek").unwrap();
        assert_eq!(f.as_str(), "죽고싶다");
        assert_eq!(f.original_span(0, f.as_str().len()), Some((0, 10)));
        let f = layout_form("나 tkfkdgo 진짜").unwrap();
        assert_eq!(f.as_str(), "나사랑해진짜");
        assert!(
            layout_form("hello").is_none(),
            "a vowel key first is no syllable"
        );
        assert!(layout_form("I want to die").is_none());
        // English can spell syllables ("world" is 재깅): harmless, only long Korean risk
        // literals are matched on this form.
        assert_eq!(layout_form("hello world").unwrap().as_str(), "helo재깅");
        assert!(layout_form("죽고 싶어").is_none());
        // Short words beside Korean: 약 typed `dir`; a whole message on the Latin layout.
        assert_eq!(
            layout_form("방금 dir 다 먹었어").unwrap().as_str(),
            "방금약다먹었어"
        );
        assert_eq!(
            layout_form("ajswj rksek dkssud").unwrap().as_str(),
            "먼저간다안녕"
        );
        // Without Korean around, a short run stays English; `ok` spells nothing anyway.
        assert!(layout_form("go to bed").is_none());
        assert!(layout_form("ok 알겠어").is_none());
    }

    #[test]
    fn empty_and_blank_inputs() {
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("   \u{200B} "), "");
        assert_eq!(compact("..."), "");
        let n = Normalized::new("");
        assert_eq!(n.spaced.as_str(), " ");
    }
}
