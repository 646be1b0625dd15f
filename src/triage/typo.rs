//! Typing slips inside the words that matter: `죽고싶다` typed `주고싶다`, `죽고십다`,
//! `죽꼬싶다`, `죽ㄱ고싶다`, `쥭고싶다`; an idiom typed `유서 깁은`.
//!
//! # Why
//!
//! A literal pattern misses a word with one wrong keystroke, and people in distress type
//! fast, on phones, at night. The first release listed typo variants by hand; measured from
//! outside, one random slip inside the matched words lost 72–85 % of the lines it caught.
//! Worse, a slip inside an `except` idiom (`유서 깊은` → `유서 깁은`) turned a harmless
//! sentence into an alert. So every long Korean literal of a risk rule, and every `except`
//! phrase, matches within **one keystroke edit** (Levenshtein distance 1 over the two-set
//! keyboard's keys, [`super::hangul::keystrokes`]).
//!
//! # How, and what it costs
//!
//! Comparing every pattern with every window would cost tens of microseconds a message.
//! Instead each syllable is reduced to a *skeleton*: the class of its initial consonant
//! (plain, tense and aspirated together: ㄱ ㄲ ㅋ) and the class of its vowel (keys next to
//! each other: ㅐ ㅔ, ㅓ ㅕ, ㅜ ㅠ ...), its final dropped; lone jamo are left out. Skeletons of
//! the tolerant patterns go into one aho-corasick automaton; a message's skeleton is scanned
//! once, and only a skeleton hit is checked for the real keystroke distance. A slip that
//! changes a final consonant (dropped, doubled, another one), makes an initial tense or
//! aspirated, swaps a vowel for its neighbour, or inserts a stray jamo keeps the skeleton
//! and is found. A slip that changes an initial consonant to an unrelated one, or a vowel to
//! a distant one, is not (documented in `docs/rules.md`).
//!
//! Real words one slip away from a risk word (`주고 싶다`, to give, is one slip from
//! `죽고 싶다`) are listed in `[typo] near_misses` in the rules file: a slip is never read
//! where a near miss stands, and each is a counter-example of the rule it guards.
//!
//! # Repair: one dropped key inside a short word
//!
//! Tolerant literals cover whole long phrases, but most rules are regexes over short words
//! and lexicons (`옥상`, `번개탄`, `지금`): one dropped final (`옥사`, `번개타`, `지그`) lost the
//! line. So the engine also **repairs** the message. Repair words are the entries of three
//! syllables or more of the lexicons marked `repair = true` (nouns: drugs, poisons, places,
//! means) and the words listed in `[typo] words`, each of at least `[typo] repair_min_keys`
//! keystrokes. The skeleton scan that finds tolerant literals finds, in the same pass,
//! windows that are a repair word with one key of one final left out
//! ([`dropped_one_final`]) or with one plain initial typed tense ([`tensed_one_initial`],
//! Shift held: 옥쌍, 뻔개탄); each such window that is not itself a repair word or a near
//! miss, and does not lie in a near miss, is rewritten to the word, and a stray consonant
//! between two syllables that repeats the final before it or the initial after it
//! (`죽ㄱ고`, `약ㅁ먹`) is dropped. Spellings as pronounced and dialect spellings are written
//! back in the same repaired text ([`Spoken`]: 머거써 → 먹었어, 삿어 → 샀어, 읎다 → 없다,
//! 묵으믄 → 먹으면). Every rule then runs once more
//! on the repaired text, and what fires only there is marked `typo`; cues are read on both
//! texts. Most messages need nothing repaired, and then nothing more runs.
//!
//! Why not every word a rule holds, or a changed final too: measured on the read evaluation
//! sets, that rewrote real words into risk words (한가, free, into 한강; 나간, went out, into
//! 난간; 먹어 into 먹었; 지급, payment, into 지금) and raised some forty benign lines.

use super::hangul::{
    CHO, COMPOUND_FINALS, FIRST_VOWEL, SYLLABLE_BASE, SYLLABLE_LAST, Syllable, cho_index,
    is_compat_jamo, tense_of, vowel_index,
};
use super::rules::DialectSpelling;

/// Class of an initial consonant: plain, tense and aspirated sound alike and are one
/// Shift apart.
const fn cho_class(c: char) -> char {
    match c {
        'ㄲ' | 'ㅋ' => 'ㄱ',
        'ㄸ' | 'ㅌ' => 'ㄷ',
        'ㅃ' | 'ㅍ' => 'ㅂ',
        'ㅆ' => 'ㅅ',
        'ㅉ' | 'ㅊ' => 'ㅈ',
        other => other,
    }
}

/// Class of a vowel: keys next to each other on the two-set layout (and ㅐ/ㅔ, which sound
/// the same).
const fn jung_class(v: char) -> char {
    match v {
        'ㅑ' => 'ㅏ',
        'ㅕ' => 'ㅓ',
        'ㅛ' => 'ㅗ',
        'ㅠ' => 'ㅜ',
        'ㅔ' | 'ㅒ' | 'ㅖ' => 'ㅐ',
        'ㅙ' | 'ㅞ' => 'ㅚ',
        other => other,
    }
}

/// The initial classes of [`cho_class`] in order: a class's rank is its place here.
const CHO_CLASSES: [char; 10] = ['ㄱ', 'ㄴ', 'ㄷ', 'ㄹ', 'ㅁ', 'ㅂ', 'ㅅ', 'ㅇ', 'ㅈ', 'ㅎ'];
/// The rank of each initial's class, by the initial's index in [`CHO`].
const CHO_RANK: [u8; 19] = {
    let mut out = [0; 19];
    let mut i = 0;
    while i < CHO.len() {
        out[i] = rank(&CHO_CLASSES, cho_class(CHO[i]));
        i += 1;
    }
    out
};
/// The vowel classes of [`jung_class`] in order.
const JUNG_CLASSES: [char; 12] = [
    'ㅏ', 'ㅐ', 'ㅓ', 'ㅗ', 'ㅘ', 'ㅚ', 'ㅜ', 'ㅝ', 'ㅟ', 'ㅡ', 'ㅢ', 'ㅣ',
];
/// The rank of each vowel's class, by the vowel's index (ㅏ = 0).
const JUNG_RANK: [u8; 21] = {
    let mut out = [0; 21];
    let mut i = 0;
    while i < out.len() {
        let Some(v) = char::from_u32(FIRST_VOWEL + i as u32) else {
            panic!("a vowel")
        };
        out[i] = rank(&JUNG_CLASSES, jung_class(v));
        i += 1;
    }
    out
};

/// The place of `class` in `classes` (at compile time: a class missing is a build error).
const fn rank(classes: &[char], class: char) -> u8 {
    let mut k = 0;
    while classes[k] != class {
        k += 1;
    }
    k as u8
}

/// A syllable's skeleton as one byte, `cho rank * 12 + vowel rank` (0..120, ASCII, so
/// that a byte offset in a skeleton is a syllable index). One byte, not two letters: the
/// skeleton automaton walks half the bytes and holds half the states (benches/triage.rs).
fn syllable_skeleton(s: Syllable) -> char {
    let cho = cho_index(s.cho).map_or(0, |i| CHO_RANK[i as usize]);
    let jung = vowel_index(s.jung).map_or(0, |i| JUNG_RANK[i as usize]);
    char::from(cho * JUNG_CLASSES.len() as u8 + jung)
}

/// The skeleton of a pattern, or `None` when it holds anything but Hangul syllables.
pub(crate) fn pattern_skeleton(pattern: &str) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() / 3);
    for c in pattern.chars() {
        out.push(syllable_skeleton(Syllable::of(c)?));
    }
    Some(out)
}

/// A message's skeleton, with the map back to its characters.
pub(crate) struct Skeleton {
    /// One ASCII byte per syllable ([`syllable_skeleton`]), [`BREAK`] between runs.
    pub text: String,
    /// For every byte of `text`, the char index in the source it came from.
    pub source: Vec<u32>,
}

/// Separates runs across anything that is not Hangul (above every syllable's byte).
const BREAK: char = '\x7f';

/// The skeleton of a compact-form text. Lone jamo are skipped (a stray jamo is a slip);
/// other letters break the run.
pub(crate) fn skeleton(text: &str) -> Skeleton {
    let mut out = Skeleton {
        text: String::with_capacity(text.len()),
        source: Vec::with_capacity(text.len()),
    };
    for (i, c) in text.chars().enumerate() {
        if let Some(s) = Syllable::of(c) {
            out.text.push(syllable_skeleton(s));
            out.source.push(i as u32);
        } else if !is_compat_jamo(c) && !out.text.ends_with(BREAK) {
            out.text.push(BREAK);
            out.source.push(i as u32);
        }
    }
    out
}

/// Maximal runs of at least two Hangul syllables in a pattern's source (a regex included):
/// the words a rule holds, as candidates for repair.
pub(crate) fn hangul_runs(source: &str) -> impl Iterator<Item = &str> {
    source
        .split(|c: char| !super::hangul::is_syllable(c))
        .filter(|run| run.chars().nth(1).is_some())
}

/// Byte ranges of stray consonants in a compact text: a lone consonant between two
/// syllables that repeats the final before it (`죽ㄱ고`, a final typed twice) or the initial
/// after it (`약ㅁ먹`, an initial typed twice).
pub(crate) fn stray_consonants(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for w in chars.windows(3) {
        let [(_, a), (b, j), (_, c)] = [w[0], w[1], w[2]];
        if !is_compat_jamo(j) || vowel_index(j).is_some() {
            continue;
        }
        let (Some(before), Some(after)) = (Syllable::of(a), Syllable::of(c)) else {
            continue;
        };
        if before.jong == j || after.cho == j {
            out.push((b, b + j.len_utf8()));
        }
    }
    out
}

/// Whether `window` is `word` with exactly one syllable typed differently, and that one
/// passes `slip(wanted, typed)`. Both texts are compared letter for letter: a stray jamo or
/// a length change is not such a slip.
fn one_syllable_slip(word: &str, window: &str, slip: impl Fn(Syllable, Syllable) -> bool) -> bool {
    let mut typed = window.chars();
    let mut changed = 0;
    for want in word.chars() {
        let Some(got) = typed.next() else {
            return false;
        };
        if want == got {
            continue;
        }
        let (Some(w), Some(g)) = (Syllable::of(want), Syllable::of(got)) else {
            return false;
        };
        changed += 1;
        if changed > 1 || !slip(w, g) {
            return false;
        }
    }
    typed.next().is_none() && changed == 1
}

/// Whether `window` is `word` with one key of one final left out (번개타 for 번개탄, 닭 typed
/// 달): same syllables otherwise. A stray jamo, a changed final or any other difference is
/// not a dropped key.
pub(crate) fn dropped_one_final(word: &str, window: &str) -> bool {
    one_syllable_slip(word, window, |w, g| {
        w.cho == g.cho
            && w.jung == g.jung
            && if g.jong == '\0' {
                w.jong != '\0' && !COMPOUND_FINALS.iter().any(|&(_, _, c)| c == w.jong)
            } else {
                COMPOUND_FINALS
                    .iter()
                    .any(|&(a, b, c)| c == w.jong && (a == g.jong || b == g.jong))
            }
    })
}

/// Whether `window` is `word` with one plain initial typed tense (쌍 for 상 in 옥쌍, 뻔 for
/// 번 in 뻔개탄): Shift held on one key, same syllables otherwise. The other direction (a
/// tense initial typed plain) is left out: 까지 typed 가지 is a word.
pub(crate) fn tensed_one_initial(word: &str, window: &str) -> bool {
    one_syllable_slip(word, window, |w, g| {
        tense_of(w.cho) == Some(g.cho) && g.jung == w.jung && g.jong == w.jong
    })
}

/// Spellings as pronounced, written back: [`Spoken::respell`] gives the edits (byte range,
/// replacement) that turn `머거써` into `먹었어`, `주글` into `죽을`, `업서` into `없어`, `마니`
/// into `많이`, `삿어` into `샀어`, `업는` into `없는` and `끈은` into `끊은`.
///
/// Why: people type what they hear (연음: a final consonant sounds at the start of the next
/// syllable), and drop the Shift or the second key of a final (ㅆ typed ㅅ, ㅄ typed ㅂ). Rules
/// list some of these spellings, the ending grammar writes the liaison spelling of its own
/// forms, but a rule's plain words (약 먹었어, 아무도 없어) were read only as written.
///
/// Only into the syllables of `spoken` (sorted; `[typo] spoken` in the rules file): moving a
/// consonant back anywhere invents words (주기로, to give, would become 죽이로). And only
/// before an ending: 어 or 아 as vowel harmony wants them, 으, or a bare 이 after a final that
/// ends in a silent or second consonant (많이, 없이). A final ㅂ is read as ㅄ only before ㄴ,
/// ㄷ, ㅈ or at the end (업고 and 업어 carry someone), and a final ㄴ as ㄶ only before 어, 은
/// or 음 (끈은지 for 끊은지; 끈을, a rope, is left). The engine scans the result for rules
/// only, like the repaired form, and a near miss (주거지, a place of residence) still masks
/// what is read inside it.
///
/// The same pass reads dialect spellings (`dialect`; `[typo] dialect`): 읎 as 없, 하믄 as
/// 하면, 되것다 as 되겠다, 묵었다 as 먹었다. Rules name the standard words; an older person
/// from 경상도 or 전라도 types 살 이유가 읎다 and 다 묵으믄 끝나것나, and was read as nothing.
/// Each entry says which neighbours make the syllable that dialect form, so 그것도 and 하는
/// 것 keep their noun and 도토리묵 its jelly.
pub(crate) struct Spoken {
    /// Sorted: the syllables a spelling is written back into (`[typo] spoken`).
    into: Vec<char>,
    /// The syllables a rewrite can start at, one bit per syllable of the Hangul block: each
    /// syllable of `into` without its final, with the first consonant of its cluster (업 for
    /// 없), or with ㅅ for ㅆ. Every other letter is passed over with one bit test (a sorted
    /// list measured 9,000 instructions a 200-byte message under callgrind).
    from: SyllableSet,
    /// Dialect syllables and the neighbours that make them so (`[typo] dialect`).
    dialect: Vec<DialectSpelling>,
    /// The syllables of `dialect`: every other letter costs one bit test.
    dialect_from: SyllableSet,
}

/// How many precomposed Hangul syllables there are: one bit each in a [`SyllableSet`].
const SYLLABLE_COUNT: usize = (SYLLABLE_LAST - SYLLABLE_BASE + 1) as usize;

/// A set of precomposed Hangul syllables, one bit each (1.4 KiB): membership is one bit
/// test, and any other letter is simply not in it.
struct SyllableSet(Box<[u64]>);

impl SyllableSet {
    fn new() -> SyllableSet {
        SyllableSet(vec![0u64; SYLLABLE_COUNT.div_ceil(64)].into_boxed_slice())
    }

    /// The word and bit of `c`, if `c` is a precomposed syllable.
    fn bit(c: char) -> Option<(usize, u64)> {
        let i = (c as u32).wrapping_sub(SYLLABLE_BASE) as usize;
        (i < SYLLABLE_COUNT).then(|| (i / 64, 1 << (i % 64)))
    }

    fn insert(&mut self, c: char) {
        if let Some((w, b)) = Self::bit(c) {
            self.0[w] |= b;
        }
    }

    fn contains(&self, c: char) -> bool {
        Self::bit(c).is_some_and(|(w, b)| self.0[w] & b != 0)
    }
}

impl Spoken {
    pub(crate) fn new(into: &[char], dialect: &[DialectSpelling]) -> Spoken {
        let mut into = into.to_vec();
        into.sort_unstable();
        into.dedup();
        let mut from = SyllableSet::new();
        let mut set = |s: Syllable| {
            if let Some(c) = s.compose() {
                from.insert(c);
            }
        };
        for s in into.iter().filter_map(|&c| Syllable::of(c)) {
            set(s.with_jong('\0'));
            if s.jong == 'ㅆ' {
                set(s.with_jong('ㅅ'));
            }
            if let Some(&(x, _, _)) = COMPOUND_FINALS.iter().find(|&&(_, _, c)| c == s.jong) {
                set(s.with_jong(x));
            }
        }
        let mut dialect_from = SyllableSet::new();
        for d in dialect {
            dialect_from.insert(d.from);
        }
        Spoken {
            into,
            from,
            dialect: dialect.to_vec(),
            dialect_from,
        }
    }

    /// `c` as the dialect table reads it between `prev` and `next`.
    fn standard(&self, prev: Option<char>, c: char, next: Option<char>) -> char {
        if !self.dialect_from.contains(c) {
            return c;
        }
        self.dialect
            .iter()
            .find(|d| d.from == c && d.fits(prev, next))
            .map_or(c, |d| d.to)
    }

    /// Whether a rewrite can start at `c`.
    fn starts(&self, c: char) -> bool {
        self.from.contains(c)
    }

    /// The edits for `text`: byte range and what to write there. Allocates only when there
    /// is one.
    pub(crate) fn respell(&self, text: &str) -> Vec<(usize, usize, String)> {
        let mut edits = Vec::new();
        // The run of rewritten letters being built: where it starts, and its letters.
        let mut run: Option<(usize, String)> = None;
        // What the letter at the next position was rewritten to by a consonant moved back.
        let mut carry: Option<char> = None;
        let mut prev = None;
        let mut chars = text.char_indices().peekable();
        while let Some((at, typed)) = chars.next() {
            let now = carry
                .take()
                .unwrap_or_else(|| self.standard(prev, typed, chars.peek().map(|&(_, c)| c)));
            prev = Some(typed);
            let mut read = now;
            if self.starts(now) {
                if let Some(a) = Syllable::of(now) {
                    let next = chars.peek().and_then(|&(_, c)| Syllable::of(c));
                    if let Some((s, b)) = self.moved_back(a, next) {
                        read = s;
                        carry = Some(b);
                    } else if let Some(s) = self.completed(a, next) {
                        read = s;
                    }
                }
            }
            if read != typed {
                run.get_or_insert_with(|| (at, String::new())).1.push(read);
            } else if let Some((start, with)) = run.take() {
                edits.push((start, at, with));
            }
        }
        if let Some((start, with)) = run {
            edits.push((start, text.len(), with));
        }
        edits
    }

    fn is_into(&self, s: Syllable) -> Option<char> {
        s.compose().filter(|c| self.into.binary_search(c).is_ok())
    }

    /// `a` and the next syllable with its initial moved back onto `a` (머 거 → 먹 어), when
    /// that gives a listed syllable before an ending.
    fn moved_back(&self, a: Syllable, next: Option<Syllable>) -> Option<(char, char)> {
        let b = next.filter(|b| b.cho != 'ㅇ')?;
        // Vowel harmony: 아 after ㅏ or ㅗ (많아), 어 after any other (먹어, 죽어; 주가, a
        // stock price, is not 죽아).
        let bright = matches!(a.jung, 'ㅏ' | 'ㅗ' | 'ㅑ' | 'ㅘ');
        let s = finals_heard(a.jong, b.cho)
            .into_iter()
            .flatten()
            .find_map(|(f, i_too)| {
                let before_ending = match b.jung {
                    'ㅏ' => bright,
                    'ㅓ' => !bright,
                    'ㅡ' => true,
                    'ㅣ' => i_too && b.jong == '\0',
                    _ => false,
                };
                self.is_into(a.with_jong(f)).filter(|_| before_ending)
            })?;
        Some((s, Syllable { cho: 'ㅇ', ..b }.compose()?))
    }

    /// `a` with the final it was typed without: ㅆ typed ㅅ, ㄶ typed ㄴ before 어, 은 or 음,
    /// ㅄ typed ㅂ before ㄴ, ㄷ, ㅈ or at the end.
    fn completed(&self, a: Syllable, next: Option<Syllable>) -> Option<char> {
        let before_vowel =
            next.is_some_and(|b| b.cho == 'ㅇ' && matches!(b.jung, 'ㅓ' | 'ㅡ') && b.jong != 'ㄹ');
        let f = match a.jong {
            'ㅅ' => 'ㅆ',
            'ㄴ' if before_vowel => 'ㄶ',
            'ㅂ' if next.is_none_or(|b| matches!(b.cho, 'ㄴ' | 'ㄷ' | 'ㅈ')) => 'ㅄ',
            _ => return None,
        };
        self.is_into(a.with_jong(f))
    }
}

/// The finals a syllable may have had when `cho`, the next syllable's initial, is heard as
/// its final moved over: the consonant itself after an open syllable, and ㄴ also as ㄶ, ㄹ
/// as ㅀ (their ㅎ is silent); or the cluster it ends (업 + 서: ㅄ). With each, whether 이 may
/// follow (the final keeps a consonant of its own before it: 많이, 없이).
fn finals_heard(jong: char, cho: char) -> [Option<(char, bool)>; 2] {
    let plain = match cho {
        'ㄲ' => 'ㄱ',
        'ㅆ' => 'ㅅ',
        c => c,
    };
    match (jong, cho) {
        ('\0', 'ㄸ' | 'ㅃ' | 'ㅉ') => [None, None],
        ('\0', 'ㄴ') => [Some(('ㄴ', false)), Some(('ㄶ', true))],
        ('\0', 'ㄹ') => [Some(('ㄹ', false)), Some(('ㅀ', true))],
        ('\0', c) => [Some((c, false)), None],
        (j, _) => [
            COMPOUND_FINALS
                .iter()
                .find(|&&(x, y, _)| x == j && y == plain)
                .map(|&(_, _, c)| (c, true)),
            None,
        ],
    }
}

/// The Levenshtein distance of two keystroke sequences ([`super::hangul::keystrokes`]), if
/// it is 0 or 1; `None` above that.
pub(crate) fn within_one(a: &[char], b: &[char]) -> Option<u8> {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.len() - short.len() {
        0 => {
            let diff = short.iter().zip(long).filter(|(x, y)| x != y).count();
            (diff <= 1).then_some(diff as u8)
        }
        1 => {
            let first = short.iter().zip(long).position(|(x, y)| x != y);
            match first {
                None => Some(1),
                Some(i) => (short[i..] == long[i + 1..]).then_some(1),
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keystroke distance between two texts, if it is at most one.
    fn distance_at_most_one(a: &str, b: &str) -> Option<u8> {
        let a = super::super::hangul::keystrokes(a);
        let b = super::super::hangul::keystrokes(b);
        within_one(&a, &b)
    }

    /// The syllables the tests write spellings back into.
    const INTO: &str = "먹죽싶있없많싫끊같었았였했갔샀왔봤됐켰겠렸졌섰쳤웠";

    /// The text with [`Spoken::respell`]'s edits applied.
    fn respelled(text: &str) -> String {
        let into: Vec<char> = INTO.chars().collect();
        respelled_with(text, &into, &[])
    }

    /// The text with the edits of a [`Spoken`] over `into` and `dialect` applied.
    fn respelled_with(text: &str, into: &[char], dialect: &[DialectSpelling]) -> String {
        let mut out = String::new();
        let mut at = 0;
        for (b0, b1, with) in Spoken::new(into, dialect).respell(text) {
            out.push_str(&text[at..b0]);
            out.push_str(&with);
            at = b1;
        }
        out.push_str(&text[at..]);
        out
    }

    #[test]
    fn spellings_as_pronounced_are_written_back_into_listed_syllables_only() {
        let table = [
            // A final heard at the start of the next syllable, moved back (twice in a row).
            ("약다머거써", "약다먹었어"),
            ("주글래", "죽을래"),
            ("주그면", "죽으면"),
            ("이써", "있어"),
            ("시퍼", "싶어"),
            ("해써", "했어"),
            ("외로워써", "외로웠어"),
            // A silent ㅎ, and a cluster's second consonant.
            ("마니", "많이"),
            ("시러", "싫어"),
            ("끄너써", "끊었어"),
            ("아무도업서", "아무도없어"),
            ("업써지고", "없어지고"),
            ("업슬거야", "없을거야"),
            // A final typed without Shift or without its second key.
            ("번개탄삿어", "번개탄샀어"),
            ("먹엇는데", "먹었는데"),
            ("잡고잇어", "잡고있어"),
            ("친구도업는", "친구도없는"),
            ("괜찮겟지", "괜찮겠지"),
            ("자해끈은지", "자해끊은지"),
            ("끈을샀어", "끈을샀어"),
            ("주글것가타", "죽을것같아"),
            // Untouched: not an ending after it, against vowel harmony, or not a listed
            // syllable.
            ("주기로했어", "주기로했어"),
            ("호주가서", "호주가서"),
            ("주고싶다", "주고싶다"),
            ("그것도", "그것도"),
            ("이게낫다", "이게낫다"),
            ("졸업식", "졸업식"),
            ("업무", "업무"),
            ("아기업고", "아기업고"),
            ("바다", "바다"),
            ("해서", "해서"),
            ("많아서", "많아서"),
            ("밥먹었어", "밥먹었어"),
        ];
        for (typed, read) in table {
            assert_eq!(respelled(typed), read, "{typed}");
        }
    }

    /// The shipped `[typo] dialect` table, parsed by the loader.
    fn shipped_dialect() -> Vec<DialectSpelling> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        super::super::rules::RuleSet::load(
            &root.join("escalation-rules.toml"),
            &root.join("intents"),
        )
        .unwrap()
        .typo
        .dialect
    }

    #[test]
    fn dialect_spellings_are_read_where_their_neighbours_allow() {
        let dialect = shipped_dialect();
        let into: Vec<char> = INTO.chars().collect();
        let table = [
            ("살이유가읎다", "살이유가없다"),
            ("다묵으믄끝나것나", "다먹으면끝나겠나"),
            ("저기서끝내믄되것다", "저기서끝내면되겠다"),
            ("좋겄다", "좋겠다"),
            ("미안허고", "미안하고"),
            ("약묵었다", "약먹었다"),
            // The noun 것, the jelly 묵, 허 at the start of a word or before a noun.
            ("그것도", "그것도"),
            ("이것다먹었어", "이것다먹었어"),
            ("하는것다", "하는것다"),
            ("도토리묵", "도토리묵"),
            ("묵은지", "묵은지"),
            ("허리아파", "허리아파"),
            ("허전해", "허전해"),
            ("오늘밤지나면나는없을끼다", "오늘밤지나면나는없을거다"),
            ("반지끼다", "반지끼다"),
            ("믄", "믄"),
        ];
        for (typed, read) in table {
            assert_eq!(respelled_with(typed, &into, &dialect), read, "{typed}");
        }
    }

    #[test]
    fn one_slip_is_within_one() {
        for (a, b) in [
            ("죽고싶", "주고싶"),   // final dropped
            ("죽고싶", "죽고십"),   // final changed
            ("죽고싶", "죽꼬싶"),   // tense initial
            ("죽고싶", "쥭고싶"),   // neighbouring vowel
            ("죽고싶", "죽ㄱ고싶"), // stray jamo
            ("유서깊은", "유서깁은"),
            ("자살하고싶", "자살하고시"),
        ] {
            assert_eq!(distance_at_most_one(a, b), Some(1), "{a} / {b}");
            assert_eq!(pattern_skeleton(a), {
                let s = skeleton(b);
                Some(s.text)
            });
        }
        assert_eq!(distance_at_most_one("죽고싶", "죽고싶"), Some(0));
        assert_eq!(distance_at_most_one("죽고싶", "주꼬시퍼"), None);
    }

    #[test]
    fn stray_consonants_repeat_a_neighbouring_key() {
        let at = |t: &str| {
            stray_consonants(t)
                .into_iter()
                .map(|(a, b)| t[a..b].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(at("죽ㄱ고싶다"), vec!["ㄱ"]); // the final typed twice
        assert_eq!(at("약ㅁ먹었어"), vec!["ㅁ"]); // the next initial typed twice
        assert!(at("진짜ㅈㅅ해").is_empty()); // choseong slang is two jamo, kept
        assert!(at("죽ㅅ고").is_empty()); // a consonant that repeats nothing is kept
        assert!(at("그ㅋ").is_empty()); // not between two syllables
    }

    #[test]
    fn a_dropped_final_is_one_key_less_and_nothing_else() {
        assert!(dropped_one_final("번개탄", "번개타"));
        assert!(dropped_one_final("지금", "지그"));
        assert!(dropped_one_final("닭", "달")); // one key of a compound final
        assert!(!dropped_one_final("지금", "지급")); // a changed final
        assert!(!dropped_one_final("지금", "지금")); // nothing dropped
        assert!(!dropped_one_final("옥상", "오사")); // two dropped
        assert!(tensed_one_initial("옥상", "옥쌍"));
        assert!(tensed_one_initial("번개탄", "뻔개탄"));
        assert!(!tensed_one_initial("옥상", "옥상")); // nothing changed
        assert!(!tensed_one_initial("옥상", "옥캉")); // aspirated, not Shift
        assert!(!tensed_one_initial("까지", "가지")); // only plain to tense
        assert!(!tensed_one_initial("번개탄", "뻔깨탄")); // two changed
        assert!(!dropped_one_final("옥상", "욕사")); // a changed vowel too
        assert!(!dropped_one_final("옥상", "옥사이")); // longer
    }

    #[test]
    fn hangul_runs_are_the_words_inside_a_regex() {
        let runs: Vec<&str> = hangul_runs("(지금|이제)(.{0,12})(옥상|난간)에?죽").collect();
        assert_eq!(runs, vec!["지금", "이제", "옥상", "난간"]);
    }

    #[test]
    fn one_skeleton_byte_per_class_pair() {
        // Every syllable's byte lies below the break; sounds of one class share a byte,
        // different classes never do.
        assert!(CHO_CLASSES.len() * JUNG_CLASSES.len() <= BREAK as usize);
        assert_eq!(pattern_skeleton("죽"), pattern_skeleton("쭉"));
        assert_eq!(pattern_skeleton("죽"), pattern_skeleton("츅"));
        assert_eq!(pattern_skeleton("게"), pattern_skeleton("개"));
        assert_ne!(pattern_skeleton("죽"), pattern_skeleton("국"));
        assert_ne!(pattern_skeleton("죽"), pattern_skeleton("직"));
        let all: std::collections::HashSet<String> = (0xAC00..=0xD7A3u32)
            .filter_map(char::from_u32)
            .filter_map(|c| pattern_skeleton(&c.to_string()))
            .collect();
        assert_eq!(all.len(), CHO_CLASSES.len() * JUNG_CLASSES.len());
    }

    #[test]
    fn skeleton_maps_back_and_breaks_on_latin() {
        let s = skeleton("a죽ㄱ고");
        assert_eq!(s.text, format!("\x7f{}", pattern_skeleton("주고").unwrap()));
        assert_eq!(s.source, vec![0, 1, 3]);
        assert_eq!(pattern_skeleton("죽고a"), None);
    }
}
