//! The shipped rule and intent files, run from their own examples, plus the properties
//! that must hold for every must-match example.

use std::path::Path;
use std::sync::OnceLock;

use ieum::triage::{Level, TriageEngine};
use proptest::prelude::*;

fn engine() -> &'static TriageEngine {
    static ENGINE: OnceLock<TriageEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        TriageEngine::load(&root.join("escalation-rules.toml"), &root.join("intents"))
            .unwrap_or_else(|e| panic!("shipped files must load: {e}"))
    })
}

#[test]
fn every_shipped_example_and_counter_example_holds() {
    let failures = engine().check_examples();
    let report: Vec<String> = failures
        .iter()
        .map(|f| {
            format!(
                "{}:{} {} {} {:?} -> {}",
                f.file.display(),
                f.line,
                f.id,
                f.kind,
                f.text,
                f.got
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "{} failures:\n{}",
        report.len(),
        report.join("\n")
    );
}

/// Every must-match risk example, with the level the engine gives it.
fn risk_examples() -> &'static [(String, Level)] {
    static EXAMPLES: OnceLock<Vec<(String, Level)>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let e = engine();
        e.rule_set()
            .rules
            .iter()
            .flat_map(|r| r.examples.iter().chain(&r.lowered_examples))
            .map(|x| (x.clone(), e.assess(x).level))
            .collect()
    })
}

/// Hangul letters, not the invisible Hangul filler (U+3164), which the noise inserts.
fn is_hangul(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
        || (('\u{3131}'..='\u{318E}').contains(&c) && c != '\u{3164}')
}

/// Where a space may be inserted: between two Hangul letters (the "죽 고 싶 다" dodge) or
/// next to an existing space. Not inside Latin words, where a space makes other words
/// ("the rapist").
fn space_slots(chars: &[char]) -> Vec<usize> {
    (1..chars.len())
        .filter(|&i| {
            (is_hangul(chars[i - 1]) && is_hangul(chars[i]))
                || chars[i - 1] == ' '
                || chars[i] == ' '
        })
        .collect()
}

const INVISIBLE: [char; 8] = [
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}', '\u{034F}', '\u{3164}',
];

#[derive(Debug, Clone)]
enum Noise {
    Space(usize),
    Invisible(usize, usize),
    Repeat(usize, usize),
}

fn noise() -> impl Strategy<Value = Noise> {
    prop_oneof![
        any::<usize>().prop_map(Noise::Space),
        (any::<usize>(), 0..INVISIBLE.len()).prop_map(|(a, b)| Noise::Invisible(a, b)),
        (any::<usize>(), 1usize..5).prop_map(|(a, b)| Noise::Repeat(a, b)),
    ]
}

fn apply(text: &str, noise: &[Noise]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for n in noise {
        match *n {
            Noise::Space(k) => {
                let slots = space_slots(&chars);
                if !slots.is_empty() {
                    chars.insert(slots[k % slots.len()], ' ');
                }
            }
            Noise::Invisible(k, which) => {
                let at = k % (chars.len() + 1);
                chars.insert(at, INVISIBLE[which]);
            }
            Noise::Repeat(k, times) => {
                // Not consonant jamo: in spelled-out jamo a doubled consonant is genuinely
                // ambiguous ("ㅈㅜㄱㄱㅗ" is 죽고, not 주고 with a typo).
                let letters: Vec<usize> = (0..chars.len())
                    .filter(|&i| {
                        chars[i].is_alphabetic()
                            && !INVISIBLE.contains(&chars[i])
                            && !('\u{3131}'..='\u{314E}').contains(&chars[i])
                    })
                    .collect();
                if !letters.is_empty() {
                    let at = letters[k % letters.len()];
                    for _ in 0..times {
                        chars.insert(at, chars[at]);
                    }
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn noise_never_lowers_a_must_match_example(
        pick in any::<usize>(),
        noise in proptest::collection::vec(noise(), 1..6),
    ) {
        let examples = risk_examples();
        let (text, level) = &examples[pick % examples.len()];
        let noisy = apply(text, &noise);
        let got = engine().assess(&noisy).level;
        prop_assert!(got >= *level, "{text:?} is {level}, but {noisy:?} is {got}");
    }

    #[test]
    fn normalization_is_idempotent(text in "\\PC{0,40}") {
        let once = ieum::triage::normalize::normalize(&text);
        prop_assert_eq!(ieum::triage::normalize::normalize(&once), once.clone());
        let compact = ieum::triage::normalize::compact(&text);
        prop_assert_eq!(ieum::triage::normalize::compact(&compact), compact.clone());
    }

    #[test]
    fn normalization_is_idempotent_on_korean_mixes(
        text in "[가-힣ㄱ-ㅣᄀ-ᇂ .,!?0-9a-zA-Z\u{200B}\u{3164}😭💊]{0,40}"
    ) {
        let once = ieum::triage::normalize::normalize(&text);
        prop_assert_eq!(ieum::triage::normalize::normalize(&once), once.clone());
        let compact = ieum::triage::normalize::compact(&text);
        prop_assert_eq!(ieum::triage::normalize::compact(&compact), compact.clone());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn no_input_panics_and_spans_stay_inside(text in "\\PC{0,2000}", repeat in 1usize..50) {
        let big = text.repeat(repeat);
        let a = engine().assess(&big);
        let len = big.chars().count();
        for &(s, e) in &a.spans {
            prop_assert!(s < e && e <= len, "span {s}..{e} outside {len} chars");
        }
    }
}

#[test]
fn a_100_kb_message_is_assessed() {
    let line = "요즘 너무 외롭고 힘들어요. 죽고 싶다는 생각이 들어요. ";
    let big = line.repeat(100 * 1024 / line.len() + 1);
    assert!(big.len() >= 100 * 1024);
    let a = engine().assess(&big);
    assert!(a.level >= Level::High);
    assert!(a.spans.len() > 100);
}

#[test]
fn empty_message_is_none() {
    let a = engine().assess("");
    assert_eq!(a.level, Level::None);
    assert!(a.rules.is_empty());
}

#[test]
fn variants_reach_the_same_rule_as_the_plain_form() {
    let e = engine();
    let plain: Vec<String> = e
        .assess("죽고 싶다")
        .rule_ids()
        .map(str::to_owned)
        .collect();
    assert!(!plain.is_empty());
    for v in [
        "죽고싶다",
        "죽 고 싶 다",
        "죽.고.싶.다",
        "죽고싶어어어어",
        "죽\u{200B}고\u{200D}싶\u{FEFF}다",
        "\u{110C}\u{116E}\u{11A8}\u{1100}\u{1169}\u{1109}\u{1175}\u{11C1}\u{1103}\u{1161}",
        "ㅈㅜㄱㄱㅗㅅㅣㅍㄷㅏ",
        "죽고싶다ㅠㅠㅠㅠ",
    ] {
        let got: Vec<String> = e.assess(v).rule_ids().map(str::to_owned).collect();
        for id in &plain {
            assert!(got.contains(id), "{v:?} should fire {id}, fired {got:?}");
        }
    }
}
