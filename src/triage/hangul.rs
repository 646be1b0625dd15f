//! Hangul syllables and jamo: the tables shared by the normalizer, the ending grammar and
//! the typo matcher.
//!
//! A precomposed syllable is `0xAC00 + (cho * 21 + jung) * 28 + jong`. Jamo are handled as
//! *compatibility* jamo (U+3131..U+318E), the letters a Korean keyboard types, because that
//! is what people send when they spell letter by letter and what choseong abbreviations
//! (`ㅈㄱㅅㄷ`) are made of.

pub(crate) const SYLLABLE_BASE: u32 = 0xAC00;
pub(crate) const SYLLABLE_LAST: u32 = 0xD7A3;
/// Initial consonants in syllable order, as compatibility jamo.
pub(crate) const CHO: [char; 19] = [
    'ㄱ', 'ㄲ', 'ㄴ', 'ㄷ', 'ㄸ', 'ㄹ', 'ㅁ', 'ㅂ', 'ㅃ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅉ', 'ㅊ', 'ㅋ',
    'ㅌ', 'ㅍ', 'ㅎ',
];
/// Final consonants in syllable order (index 0 = none), as compatibility jamo.
pub(crate) const JONG: [char; 28] = [
    '\0', 'ㄱ', 'ㄲ', 'ㄳ', 'ㄴ', 'ㄵ', 'ㄶ', 'ㄷ', 'ㄹ', 'ㄺ', 'ㄻ', 'ㄼ', 'ㄽ', 'ㄾ', 'ㄿ', 'ㅀ',
    'ㅁ', 'ㅂ', 'ㅄ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅊ', 'ㅋ', 'ㅌ', 'ㅍ', 'ㅎ',
];
/// ㅏ; the 21 vowels follow in syllable order.
pub(crate) const FIRST_VOWEL: u32 = 0x314F;
/// Vowels typed as two keys.
pub(crate) const COMPOUND_VOWELS: [(char, char, char); 7] = [
    ('ㅗ', 'ㅏ', 'ㅘ'),
    ('ㅗ', 'ㅐ', 'ㅙ'),
    ('ㅗ', 'ㅣ', 'ㅚ'),
    ('ㅜ', 'ㅓ', 'ㅝ'),
    ('ㅜ', 'ㅔ', 'ㅞ'),
    ('ㅜ', 'ㅣ', 'ㅟ'),
    ('ㅡ', 'ㅣ', 'ㅢ'),
];
/// Finals typed as two keys.
pub(crate) const COMPOUND_FINALS: [(char, char, char); 11] = [
    ('ㄱ', 'ㅅ', 'ㄳ'),
    ('ㄴ', 'ㅈ', 'ㄵ'),
    ('ㄴ', 'ㅎ', 'ㄶ'),
    ('ㄹ', 'ㄱ', 'ㄺ'),
    ('ㄹ', 'ㅁ', 'ㄻ'),
    ('ㄹ', 'ㅂ', 'ㄼ'),
    ('ㄹ', 'ㅅ', 'ㄽ'),
    ('ㄹ', 'ㅌ', 'ㄾ'),
    ('ㄹ', 'ㅍ', 'ㄿ'),
    ('ㄹ', 'ㅎ', 'ㅀ'),
    ('ㅂ', 'ㅅ', 'ㅄ'),
];

/// The tense initial typed with Shift on a plain one (ㄱ → ㄲ), if it has one.
pub(crate) fn tense_of(cho: char) -> Option<char> {
    match cho {
        'ㄱ' => Some('ㄲ'),
        'ㄷ' => Some('ㄸ'),
        'ㅂ' => Some('ㅃ'),
        'ㅅ' => Some('ㅆ'),
        'ㅈ' => Some('ㅉ'),
        _ => None,
    }
}

pub(crate) fn is_syllable(c: char) -> bool {
    (SYLLABLE_BASE..=SYLLABLE_LAST).contains(&(c as u32))
}

pub(crate) fn is_compat_jamo(c: char) -> bool {
    (0x3131..=0x318E).contains(&(c as u32))
}

pub(crate) fn is_hangul(c: char) -> bool {
    is_syllable(c) || is_compat_jamo(c)
}

pub(crate) fn vowel_index(c: char) -> Option<u32> {
    let v = (c as u32).checked_sub(FIRST_VOWEL)?;
    (v < 21).then_some(v)
}

pub(crate) fn cho_index(c: char) -> Option<u32> {
    CHO.iter().position(|&x| x == c).map(|i| i as u32)
}

pub(crate) fn jong_index(c: char) -> Option<u32> {
    JONG.iter()
        .skip(1)
        .position(|&x| x == c)
        .map(|i| i as u32 + 1)
}

/// A syllable taken apart: initial, vowel and final (`'\0'` for none), as compatibility
/// jamo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Syllable {
    pub cho: char,
    pub jung: char,
    pub jong: char,
}

impl Syllable {
    /// Takes a precomposed syllable apart; `None` for anything else.
    pub(crate) fn of(c: char) -> Option<Syllable> {
        if !is_syllable(c) {
            return None;
        }
        let s = c as u32 - SYLLABLE_BASE;
        Some(Syllable {
            cho: CHO[(s / 588) as usize],
            jung: char::from_u32(FIRST_VOWEL + (s % 588) / 28)?,
            jong: JONG[(s % 28) as usize],
        })
    }

    /// Puts it back together; `None` if a part is not valid in its place.
    pub(crate) fn compose(self) -> Option<char> {
        let c = cho_index(self.cho)?;
        let v = vowel_index(self.jung)?;
        let j = if self.jong == '\0' {
            0
        } else {
            jong_index(self.jong)?
        };
        char::from_u32(SYLLABLE_BASE + (c * 21 + v) * 28 + j)
    }

    /// The same syllable with another final.
    pub(crate) fn with_jong(self, jong: char) -> Syllable {
        Syllable { jong, ..self }
    }

    /// The same syllable with another vowel.
    pub(crate) fn with_jung(self, jung: char) -> Syllable {
        Syllable { jung, ..self }
    }
}

/// Builds a syllable from parts known to be valid (tables in this crate).
pub(crate) fn syl(cho: char, jung: char, jong: char) -> char {
    Syllable { cho, jung, jong }.compose().unwrap_or('\u{FFFD}')
}

/// The keys typed for one jamo on the two-set layout: a compound vowel or final is two keys
/// (`ㅘ` = `ㅗ` `ㅏ`, `ㄳ` = `ㄱ` `ㅅ`), everything else one.
pub(crate) fn keys(j: char, out: &mut Vec<char>) {
    if let Some(&(a, b, _)) = COMPOUND_VOWELS.iter().find(|(_, _, c)| *c == j) {
        out.extend([a, b]);
    } else if let Some(&(a, b, _)) = COMPOUND_FINALS.iter().find(|(_, _, c)| *c == j) {
        out.extend([a, b]);
    } else {
        out.push(j);
    }
}

/// The keystrokes of a text on the two-set layout: each syllable as its jamo keys, any other
/// character as itself. Edit distances over this sequence count typing slips.
pub(crate) fn keystrokes(text: &str) -> Vec<char> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match Syllable::of(c) {
            Some(s) => {
                keys(s.cho, &mut out);
                keys(s.jung, &mut out);
                if s.jong != '\0' {
                    keys(s.jong, &mut out);
                }
            }
            None => keys(c, &mut out),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syllables_round_trip() {
        for c in ['가', '죽', '싶', '힣', '뛰', '없'] {
            assert_eq!(Syllable::of(c).unwrap().compose(), Some(c));
        }
        let s = Syllable::of('죽').unwrap();
        assert_eq!((s.cho, s.jung, s.jong), ('ㅈ', 'ㅜ', 'ㄱ'));
        assert_eq!(s.with_jong('\0').compose(), Some('주'));
        assert_eq!(Syllable::of('a'), None);
    }

    #[test]
    fn keystrokes_split_compounds() {
        assert_eq!(keystrokes("죽"), vec!['ㅈ', 'ㅜ', 'ㄱ']);
        assert_eq!(keystrokes("괜"), vec!['ㄱ', 'ㅗ', 'ㅐ', 'ㄴ']);
        assert_eq!(keystrokes("없"), vec!['ㅇ', 'ㅓ', 'ㅂ', 'ㅅ']);
        assert_eq!(keystrokes("a죽"), vec!['a', 'ㅈ', 'ㅜ', 'ㄱ']);
    }
}
