//! The ending grammar: a rule names a verb stem (`죽`, `자살하`, `뛰어내리`, `긋:ㅅ`) and the
//! classes of endings it takes (`wish`, `intent`, `plan`, ...); the loader expands every pair
//! through this module into the surface forms people type (`죽을래`, `자살할 거임`,
//! `뛰어내려야지`, `그었어`, `주글래`).
//!
//! # Why
//!
//! Korean marks intent, plans, questions and tense with endings that change the stem's last
//! syllable: `사라지` + `-ㄹ래` is `사라질래`, `자살하` + `-어야지` is `자살해야지`, `긋` + `-었어`
//! is `그었어`. Listing the inflected forms by hand in every rule missed most of them (the
//! first release caught `죽을래` but not `죽어야지`, `자살할래` but not `자살하기로 했다`). Here
//! the endings are written once, in the rules file's `[endings]` table, and the phonology is
//! written once, in this module, with table tests.
//!
//! # Templates
//!
//! An ending template is written as it follows a consonant-final stem, with the connector
//! vowel spelled out; this module fits it to each stem:
//!
//! | template starts with | connector | `죽` | `사라지` | `자살하` | `긋:ㅅ` | `뛰어들` (ㄹ stem) |
//! |---|---|---|---|---|---|---|
//! | `어`/`아` (`어야지`, `었어`) | infinitive, vowel harmony and contraction | 죽어야지 | 사라져야지 | 자살해야지 | 그어야지 | 뛰어들어야지 |
//! | `으` (`을래`, `으려고`, `은`) | 으 dropped after a vowel, its final moved onto the stem | 죽을래 | 사라질래 | 자살할래 | 그을래 | 뛰어들래 |
//! | anything else (`고싶`, `기로`, `는법`, `자`) | attached as is (ㄹ drops before ㄴ/ㅅ) | 죽고싶 | 사라지고싶 | 자살하고싶 | 긋고싶 | 뛰어드는법 |
//!
//! `{}` in a template marks where the stem goes when something comes before it
//! (`어떻게하면{}나요` → `어떻게하면죽나요`).
//!
//! A stem may carry the words before its verb, spaced as typed (`눈 안 뜨`, `목숨을 끊`): the
//! forms keep the spaces (the loader compacts them), and vowel harmony of a ㅡ stem looks only
//! inside the verb (`눈 안 뜨` + `었으면` → 눈 안 떴으면, `아프` + `어` → 아파).
//!
//! Stems written with `:ㅅ`, `:ㅂ`, `:ㄷ` or `:르` are irregular (`긋:ㅅ` → 그어, `눕:ㅂ` → 누워,
//! `듣:ㄷ` → 들어, `모르:르` → 몰라).
//!
//! Every form is also produced in its liaison spelling (연음), the way it sounds and is often
//! typed (`죽을래` → `주글래`, `죽어야지` → `주거야지`), when that spelling keeps at least three
//! syllables.

use super::hangul::{Syllable, is_syllable, syl};

/// How a stem's last syllable inflects, beyond the regular rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Irregular {
    /// Regular.
    None,
    /// ㅅ drops before a vowel (`긋` → 그어, 그을).
    S,
    /// ㅂ becomes 우/오 before a vowel (`눕` → 누워, 누울).
    B,
    /// ㄷ becomes ㄹ before a vowel (`듣` → 들어, 들을).
    D,
    /// 르 doubles its ㄹ before 어/아 (`모르` → 몰라).
    Reu,
}

/// A verb or adjective stem as written in the rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stem {
    /// The stem without `다` (`죽`, `자살하`).
    pub text: String,
    /// How it inflects.
    pub irregular: Irregular,
}

impl Stem {
    /// Parses `죽`, `긋:ㅅ`, `눕:ㅂ`, `듣:ㄷ`, `모르:르`.
    ///
    /// # Errors
    /// A message naming what is wrong: an empty stem, one that does not end in a Hangul
    /// syllable, or an unknown irregular class.
    pub fn parse(s: &str) -> Result<Stem, String> {
        let (text, class) = match s.split_once(':') {
            Some((t, c)) => (t.trim(), Some(c.trim())),
            None => (s.trim(), None),
        };
        if text.is_empty() {
            return Err(format!("stem {s:?} is empty"));
        }
        if !text.chars().last().is_some_and(is_syllable) {
            return Err(format!("stem {s:?} must end in a Hangul syllable"));
        }
        let irregular = match class {
            None => Irregular::None,
            Some("ㅅ") => Irregular::S,
            Some("ㅂ") => Irregular::B,
            Some("ㄷ") => Irregular::D,
            Some("르") => Irregular::Reu,
            Some(other) => {
                return Err(format!(
                    "stem {s:?}: unknown irregular class {other:?} (ㅅ, ㅂ, ㄷ or 르)"
                ));
            }
        };
        Ok(Stem {
            text: text.to_owned(),
            irregular,
        })
    }
}

/// Every surface form of `stem` with the ending `template`, the plain spelling first.
/// Forms may repeat across templates; callers deduplicate.
pub fn inflect(stem: &Stem, template: &str) -> Vec<String> {
    let (prefix, suffix) = match template.split_once("{}") {
        Some((p, s)) => (p, s),
        None => ("", template),
    };
    let mut out = Vec::new();
    for form in attach(stem, suffix) {
        let full = format!("{prefix}{form}");
        let liaison = liaison(&full);
        out.push(full);
        if let Some(l) = liaison {
            if l.chars().count() >= 3 && !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

/// The stem with the suffix attached: one or two spellings (contracted and not).
fn attach(stem: &Stem, suffix: &str) -> Vec<String> {
    let mut chars = suffix.chars();
    let Some(first) = chars.next() else {
        return vec![stem.text.clone()];
    };
    let rest: String = chars.collect();
    // A bare ㄹ/ㄴ/ㅁ is the 으-connector written without its vowel.
    if matches!(first, 'ㄹ' | 'ㄴ' | 'ㅁ') {
        return vec![eu(stem, first, &rest)];
    }
    match Syllable::of(first) {
        Some(s) if s.cho == 'ㅇ' && matches!(s.jung, 'ㅓ' | 'ㅏ') => {
            infinitive(stem, s.jong, &rest)
        }
        Some(s) if s.cho == 'ㅇ' && s.jung == 'ㅡ' => vec![eu(stem, s.jong, &rest)],
        _ => vec![direct(stem, suffix)],
    }
}

/// Splits the stem into everything before its last syllable and that syllable.
fn split(stem: &Stem) -> (&str, Syllable) {
    let last = stem.text.chars().last().expect("a stem ends in a syllable");
    let head = &stem.text[..stem.text.len() - last.len_utf8()];
    (head, Syllable::of(last).expect("checked at parse"))
}

/// 아 after a bright vowel (ㅏ, ㅗ), 어 otherwise.
fn harmony(v: char) -> char {
    if matches!(v, 'ㅏ' | 'ㅗ' | 'ㅑ' | 'ㅘ') {
        'ㅏ'
    } else {
        'ㅓ'
    }
}

/// The vowel of the syllable before the last *in the same word*, for stems ending in ㅡ
/// (`아프` → 아파, `바쁘` → 바빠). A stem may carry the words before its verb (`눈 안 뜨`,
/// `눈안뜨`, `못 쓰`): harmony never looks across a space, nor at the negation adverbs 안 and
/// 못 directly before the verb (no ㅡ verb has them as its first syllable), so `눈 안 뜨` + 었
/// is 떴 and not 땄. `None` when the ㅡ syllable starts its word (뜨 → 떠, 쓰 → 써).
fn prev_vowel(head: &str) -> Option<char> {
    let prev = head.chars().last()?;
    if matches!(prev, '안' | '못') {
        return None;
    }
    Syllable::of(prev).map(|s| s.jung)
}

fn compose(s: Syllable) -> char {
    s.compose().unwrap_or('\u{FFFD}')
}

/// The 아/어 form with `jong` on the connector (`었` carries ㅆ), then `rest`.
fn infinitive(stem: &Stem, jong: char, rest: &str) -> Vec<String> {
    let (head, last) = split(stem);
    let mut forms: Vec<String> = Vec::with_capacity(2);
    let mut push = |middle: String| forms.push(format!("{head}{middle}{rest}"));
    let a = |v: char| syl('ㅇ', v, jong);
    if last.cho == 'ㅎ' && last.jung == 'ㅏ' && last.jong == '\0' {
        push(compose(last.with_jung('ㅐ').with_jong(jong)).to_string());
        push(format!("{}{}", compose(last), a('ㅕ')));
        return forms;
    }
    if last.jong != '\0' {
        let open = last.with_jong('\0');
        match stem.irregular {
            Irregular::S => push(format!("{}{}", compose(open), a(harmony(last.jung)))),
            Irregular::B => {
                let w = if last.jung == 'ㅗ' { 'ㅘ' } else { 'ㅝ' };
                push(format!("{}{}", compose(open), a(w)));
            }
            Irregular::D if last.jong == 'ㄷ' => push(format!(
                "{}{}",
                compose(last.with_jong('ㄹ')),
                a(harmony(last.jung))
            )),
            _ => push(format!("{}{}", compose(last), a(harmony(last.jung)))),
        }
        return forms;
    }
    if stem.irregular == Irregular::Reu && last.jung == 'ㅡ' {
        // 모르 → 몰라: the syllable before takes ㄹ, the connector starts with ㄹ.
        if let Some(prev) = head.chars().last().and_then(Syllable::of) {
            let before = &head[..head.len() - head.chars().last().map_or(0, char::len_utf8)];
            let v = harmony(prev.jung);
            forms.push(format!(
                "{before}{}{}{rest}",
                compose(prev.with_jong('ㄹ')),
                syl('ㄹ', v, jong)
            ));
            return forms;
        }
    }
    let merged = |v: char| compose(last.with_jung(v).with_jong(jong)).to_string();
    let apart = |v: char| format!("{}{}", compose(last), a(v));
    match last.jung {
        'ㅏ' | 'ㅓ' | 'ㅕ' | 'ㅑ' => push(merged(last.jung)),
        'ㅐ' | 'ㅔ' => {
            push(merged(last.jung));
            push(apart('ㅓ'));
        }
        'ㅗ' => {
            push(merged('ㅘ'));
            push(apart('ㅏ'));
        }
        'ㅜ' => {
            push(merged('ㅝ'));
            push(apart('ㅓ'));
        }
        'ㅣ' => {
            push(merged('ㅕ'));
            push(apart('ㅓ'));
        }
        'ㅚ' => {
            push(merged('ㅙ'));
            push(apart('ㅓ'));
        }
        'ㅡ' => {
            let v = prev_vowel(head).map_or('ㅓ', harmony);
            push(merged(v));
        }
        _ => push(apart('ㅓ')),
    }
    forms
}

/// The 으 connector with `jong` (ㄹ, ㄴ, ㅁ or none), then `rest`.
fn eu(stem: &Stem, jong: char, rest: &str) -> String {
    let (head, last) = split(stem);
    let with = |s: Syllable| format!("{head}{}{rest}", compose(s));
    let eu_syl = syl('ㅇ', 'ㅡ', jong);
    match (last.jong, stem.irregular) {
        ('\0', _) => {
            if jong == '\0' {
                format!("{}{rest}", stem.text)
            } else {
                with(last.with_jong(jong))
            }
        }
        ('ㄹ', Irregular::None) => match jong {
            'ㄴ' => with(last.with_jong('ㄴ')),
            'ㅁ' => with(last.with_jong('ㄻ')),
            _ => format!("{}{rest}", stem.text),
        },
        (_, Irregular::S) => format!("{head}{}{eu_syl}{rest}", compose(last.with_jong('\0'))),
        (_, Irregular::B) => format!(
            "{head}{}{}{rest}",
            compose(last.with_jong('\0')),
            syl('ㅇ', 'ㅜ', jong)
        ),
        ('ㄷ', Irregular::D) => format!("{head}{}{eu_syl}{rest}", compose(last.with_jong('ㄹ'))),
        _ => format!("{}{eu_syl}{rest}", stem.text),
    }
}

/// The suffix attached as is; a ㄹ-final stem drops its ㄹ before ㄴ or ㅅ (`들` + `는` → 드는).
fn direct(stem: &Stem, suffix: &str) -> String {
    let (head, last) = split(stem);
    // The plain present 는다 is ㄴ다 after a vowel (하 + 는다 → 한다).
    if let Some(rest) = suffix.strip_prefix("는다") {
        if last.jong == '\0' {
            return format!("{head}{}다{rest}", compose(last.with_jong('ㄴ')));
        }
    }
    let next = suffix.chars().next().and_then(Syllable::of);
    if last.jong == 'ㄹ' && next.is_some_and(|n| matches!(n.cho, 'ㄴ' | 'ㅅ')) {
        return format!("{head}{}{suffix}", compose(last.with_jong('\0')));
    }
    format!("{}{suffix}", stem.text)
}

/// The liaison spelling: a final consonant before a syllable starting with ㅇ moves over
/// (`죽을래` → `주글래`, `했어` → `해써`). `None` when nothing moves.
pub fn liaison(form: &str) -> Option<String> {
    let mut chars: Vec<char> = form.chars().collect();
    let mut changed = false;
    for i in 0..chars.len().saturating_sub(1) {
        let (Some(a), Some(b)) = (Syllable::of(chars[i]), Syllable::of(chars[i + 1])) else {
            continue;
        };
        let movable = matches!(
            a.jong,
            'ㄱ' | 'ㄲ'
                | 'ㄷ'
                | 'ㄹ'
                | 'ㅁ'
                | 'ㅂ'
                | 'ㅅ'
                | 'ㅆ'
                | 'ㅈ'
                | 'ㅊ'
                | 'ㅋ'
                | 'ㅌ'
                | 'ㅍ'
        );
        if b.cho != 'ㅇ' || !movable {
            continue;
        }
        chars[i] = compose(a.with_jong('\0'));
        chars[i + 1] = compose(Syllable { cho: a.jong, ..b });
        changed = true;
    }
    changed.then(|| chars.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(stem: &str, template: &str) -> Vec<String> {
        inflect(&Stem::parse(stem).unwrap(), template)
    }

    /// (stem, template, a form that must be produced)
    const TABLE: &[(&str, &str, &str)] = &[
        // direct
        ("죽", "고싶", "죽고싶"),
        ("사라지", "고싶", "사라지고싶"),
        ("죽", "기로했", "죽기로했"),
        ("죽", "는법", "죽는법"),
        ("뛰어들", "는법", "뛰어드는법"),
        ("죽", "자", "죽자"),
        ("자해하", "는다", "자해한다"),
        ("죽", "는다", "죽는다"),
        ("죽", "어떻게하면{}나요", "어떻게하면죽나요"),
        // 으
        ("죽", "을래", "죽을래"),
        ("죽", "을래", "주글래"),
        ("사라지", "을래", "사라질래"),
        ("자살하", "을거", "자살할거"),
        ("자살하", "으려고", "자살하려고"),
        ("죽", "으려고", "죽으려고"),
        ("뛰어들", "을래", "뛰어들래"),
        ("뛰어들", "으려고", "뛰어들려고"),
        ("긋:ㅅ", "을래", "그을래"),
        ("눕:ㅂ", "을래", "누울래"),
        ("듣:ㄷ", "을래", "들을래"),
        ("사라지", "ㄹ래", "사라질래"),
        ("죽", "은", "죽은"),
        ("사라지", "은", "사라진"),
        // 어
        ("죽", "어야지", "죽어야지"),
        ("죽", "어야지", "주거야지"),
        ("죽", "었어", "죽었어"),
        ("자살하", "어야지", "자살해야지"),
        ("자살하", "었어", "자살했어"),
        ("사라지", "어야지", "사라져야지"),
        ("사라지", "었어", "사라졌어"),
        ("뛰어내리", "어야지", "뛰어내려야지"),
        ("끝내", "었어", "끝냈어"),
        ("끝내", "어야지", "끝내어야지"),
        ("떠나", "었어", "떠났어"),
        ("긋:ㅅ", "었어", "그었어"),
        ("긋:ㅅ", "었어", "그어써"),
        ("눕:ㅂ", "어야지", "누워야지"),
        ("듣:ㄷ", "어야지", "들어야지"),
        ("모르:르", "어", "몰라"),
        ("보", "어야지", "봐야지"),
        ("주", "었어", "줬어"),
        ("되", "었어", "됐어"),
        ("뛰", "었어", "뛰었어"),
        ("아프", "어", "아파"),
        ("끄", "었어", "껐어"),
        ("삼키", "었어", "삼켰어"),
        // ㅡ stems: harmony with the syllable before, inside the verb only
        ("뜨", "었으면", "떴으면"),
        ("눈 안 뜨", "었으면", "눈 안 떴으면"),
        ("눈안뜨", "었으면", "눈안떴으면"),
        ("눈을 안 뜨", "어도", "눈을 안 떠도"),
        ("못 쓰", "었어", "못 썼어"),
        ("세상을뜨", "었어", "세상을떴어"),
        ("바쁘", "어", "바빠"),
        ("예쁘", "어", "예뻐"),
        ("잠그", "었어", "잠갔어"),
        ("눈 안 떠지", "었으면", "눈 안 떠졌으면"),
        ("목숨을끊", "었어", "목숨을끊었어"),
    ];

    #[test]
    fn the_table_holds() {
        let mut failed = Vec::new();
        for &(stem, template, want) in TABLE {
            let got = forms(stem, template);
            if !got.iter().any(|f| f == want) {
                failed.push(format!("{stem} + {template}: want {want}, got {got:?}"));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn plain_spelling_comes_first() {
        assert_eq!(forms("죽", "을래")[0], "죽을래");
        assert_eq!(forms("죽", "고싶"), vec!["죽고싶"]);
    }

    #[test]
    fn liaison_only_where_a_consonant_meets_ieung() {
        assert_eq!(liaison("죽을래").as_deref(), Some("주글래"));
        assert_eq!(liaison("했어").as_deref(), Some("해써"));
        assert_eq!(liaison("죽고싶"), None);
        assert_eq!(liaison("방에"), None, "ㅇ does not move");
    }

    /// The bug this guards: 뜨 after a separate word took that word's vowel (눈 안 뜨 +
    /// 었으면 came out as 눈안땄으면), so such forms were written out by hand.
    #[test]
    fn eu_stems_never_harmonise_across_words() {
        for stem in [
            "눈 안 뜨",
            "눈안뜨",
            "눈을 안 뜨",
            "안 뜨",
            "못 뜨",
            "다시 뜨",
        ] {
            let got = forms(stem, "었으면");
            assert!(got.iter().all(|f| !f.contains('땄')), "{stem}: {got:?}");
            assert!(got.iter().any(|f| f.ends_with("떴으면")), "{stem}: {got:?}");
        }
        assert_eq!(forms("아프", "어"), vec!["아파"]);
        assert_eq!(forms("안 아프", "어"), vec!["안 아파"]);
    }

    #[test]
    fn bad_stems_are_refused() {
        assert!(Stem::parse("").is_err());
        assert!(Stem::parse("kill").is_err());
        assert!(Stem::parse("긋:ㅋ").is_err());
        assert_eq!(Stem::parse("긋:ㅅ").unwrap().irregular, Irregular::S);
    }
}
