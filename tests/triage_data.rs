//! The shipped rule and intent files, run from their own examples, plus the properties
//! that must hold for every must-match example.

use std::sync::OnceLock;

mod common;

use ieum::triage::{Level, TriageEngine};
use proptest::prelude::*;

fn engine() -> &'static TriageEngine {
    common::shipped_engine()
}

#[test]
fn every_shipped_example_and_counter_example_holds() {
    let failures = engine().check_examples();
    let report: Vec<String> = failures.iter().map(ToString::to_string).collect();
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

// ---------------------------------------------------------------------------------------
// Content: the shipped rules file must hold real, broad content, and the phrases the
// service is known to face must reach (at least, or at most) the stated level.

use ieum::triage::Category;

/// Every category, kept complete by the exhaustive match below.
const CATEGORIES: [Category; 12] = [
    Category::Ideation,
    Category::Plan,
    Category::Means,
    Category::Timing,
    Category::SelfHarm,
    Category::Farewell,
    Category::Hopelessness,
    Category::Isolation,
    Category::HarmToOthers,
    Category::Abuse,
    Category::MedicalEmergency,
    Category::InProgress,
];

#[allow(dead_code)]
fn categories_list_is_complete(c: Category) {
    // A new category fails to compile here until it is added to CATEGORIES.
    match c {
        Category::Ideation
        | Category::Plan
        | Category::Means
        | Category::Timing
        | Category::SelfHarm
        | Category::Farewell
        | Category::Hopelessness
        | Category::Isolation
        | Category::HarmToOthers
        | Category::Abuse
        | Category::MedicalEmergency
        | Category::InProgress => {}
    }
}

#[test]
fn shipped_rules_have_broad_content() {
    let set = engine().rule_set();
    let examples: Vec<&String> = set
        .rules
        .iter()
        .flat_map(|r| r.examples.iter().chain(&r.lowered_examples))
        .collect();
    let korean = examples.iter().filter(|s| s.chars().any(is_hangul)).count();
    let other = examples.len() - korean;
    assert!(korean >= 300, "only {korean} Korean must-match examples");
    assert!(other >= 100, "only {other} non-Korean must-match examples");
    for c in CATEGORIES {
        assert!(
            set.rules.iter().any(|r| r.category == c),
            "no rule for category {c:?}"
        );
    }
    for l in [Level::Low, Level::Medium, Level::High, Level::Imminent] {
        assert!(
            set.rules.iter().any(|r| r.level == l),
            "no rule at level {l}"
        );
    }
}

/// `(text, at least, at most)`.
const REQUIRED: &[(&str, Level, Level)] = &[
    // Direct and euphemistic ideation.
    ("극단적 선택 하고 싶다", Level::High, Level::Imminent),
    ("죽고 싶다", Level::High, Level::Imminent),
    ("죽 고 싶 다", Level::High, Level::Imminent),
    ("ㅈㄱㅅㄷ", Level::High, Level::Imminent),
    ("ㅈㅏㅅㅏㄹ 하고 싶어", Level::High, Level::Imminent),
    ("자\u{200B}살하고 싶어", Level::High, Level::Imminent),
    ("죽구싶다", Level::High, Level::Imminent),
    ("주꼬시퍼", Level::High, Level::Imminent),
    ("진짜 kms", Level::High, Level::Imminent),
    ("I want to 죽고싶어", Level::High, Level::Imminent),
    ("unalive 하고 싶어", Level::High, Level::Imminent),
    ("한강 가고 싶다", Level::High, Level::Imminent),
    ("자해하고 싶어", Level::High, Level::Imminent),
    ("I want to kill myself", Level::High, Level::Imminent),
    // Passive wish, hopelessness, a negated live.
    ("사라지고 싶다", Level::Medium, Level::Imminent),
    ("살고 싶지 않아", Level::Medium, Level::Imminent),
    ("살기 싫어", Level::Medium, Level::Imminent),
    (
        "잠들어서 안 깨어났으면 좋겠어",
        Level::Medium,
        Level::Imminent,
    ),
    ("나는 짐이야", Level::Medium, Level::Imminent),
    // Negation downgrades, never clears.
    ("죽고 싶진 않아", Level::Medium, Level::Medium),
    ("죽을 생각은 없어", Level::Medium, Level::Medium),
    (
        "I don't want to die but everything hurts",
        Level::Medium,
        Level::Medium,
    ),
    // Negation never cancels plan, means or timing.
    (
        "죽고 싶진 않은데 수면제 모았어",
        Level::Imminent,
        Level::Imminent,
    ),
    // Plan, means, timing, farewell, in progress.
    // Buying charcoal is high (camping lowers it); lighting it or a closed room is imminent.
    ("번개탄 샀어", Level::High, Level::Imminent),
    ("방에서 번개탄 피울 거야", Level::Imminent, Level::Imminent),
    ("수면제 모으고 있어", Level::Imminent, Level::Imminent),
    ("수면제 모으기", Level::Imminent, Level::Imminent),
    ("약을 모아뒀어", Level::Imminent, Level::Imminent),
    ("유서 썼어", Level::Imminent, Level::Imminent),
    ("ㄷㅂㅈㅅ 구해요", Level::Imminent, Level::Imminent),
    ("두부장사 하실 분", Level::Imminent, Level::Imminent),
    ("오늘 밤 끝낼 거야", Level::Imminent, Level::Imminent),
    ("옥상에서 뛰어내릴 거야", Level::Imminent, Level::Imminent),
    ("OD 할 거야", Level::Imminent, Level::Imminent),
    ("💊 다 모았어", Level::Imminent, Level::Imminent),
    ("약 다 먹었어", Level::Imminent, Level::Imminent),
    // A goodbye that also fits a job or a game is high (a counselor sees it), lowered by
    // that context; finality words make it imminent (farewell.goodbye.ko).
    ("그동안 고마웠어", Level::High, Level::Imminent),
    ("다들 고마웠고 미안했어", Level::Imminent, Level::Imminent),
    (
        "I'm going to kill myself tonight",
        Level::Imminent,
        Level::Imminent,
    ),
    // Look-alikes that are not risk.
    ("배고파 죽겠다", Level::None, Level::None),
    ("웃겨 죽겠네", Level::None, Level::None),
    ("죽이는 맛집 추천", Level::None, Level::None),
    ("kill time", Level::None, Level::None),
    ("유서 깊은 절에 다녀왔어", Level::None, Level::None),
    ("시간 죽이기", Level::None, Level::None),
    ("죽을 맛이야", Level::None, Level::None),
    ("게임에서 죽었다", Level::None, Level::None),
    ("ㅈㅅ", Level::None, Level::None),
    ("ㅈㅅ 늦었어요", Level::None, Level::None),
    ("죽지 마", Level::None, Level::None),
    ("한강 가서 치맥 먹자", Level::None, Level::None),
    ("혼자 살아요", Level::None, Level::None),
    ("오디션 볼 거야", Level::None, Level::None),
    // News and third-person talk: at most a gentle check-in, never a handoff.
    ("연예인 자살 뉴스 봤어", Level::None, Level::Medium),
    ("연예인 극단적 선택 뉴스 봤어", Level::None, Level::Medium),
    ("친구가 죽고 싶대요", Level::None, Level::Medium),
];

#[test]
fn required_phrases_reach_their_levels() {
    let e = engine();
    let wrong: Vec<String> = REQUIRED
        .iter()
        .filter_map(|&(text, lo, hi)| {
            let a = e.assess(text);
            (a.level < lo || a.level > hi).then(|| {
                format!(
                    "{text:?}: {} (want {lo}..={hi}), rules {:?}",
                    a.level,
                    a.rule_ids().collect::<Vec<_>>()
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every must-match example, re-typed each way `variants` gives, keeps its level.
fn every_variant_keeps_its_level(variants: impl Fn(&[char]) -> Vec<String>) {
    let e = engine();
    let mut failures = Vec::new();
    for (text, level) in risk_examples() {
        let chars: Vec<char> = text.chars().collect();
        for v in variants(&chars) {
            let got = e.assess(&v).level;
            if got < *level {
                failures.push(format!("{text:?} is {level}, but {v:?} is {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The deterministic side of `noise_never_lowers_a_must_match_example`: every must-match
/// example keeps its level with a space between every two Hangul letters, and with one
/// space inserted at each place a person could put one. This is what forces every Korean
/// example onto the compact form.
#[test]
fn korean_examples_are_caught_on_the_compact_form() {
    every_variant_keeps_its_level(|chars| {
        let mut all = String::new();
        for (i, c) in chars.iter().enumerate() {
            if i > 0 && is_hangul(chars[i - 1]) && is_hangul(*c) {
                all.push(' ');
            }
            all.push(*c);
        }
        let mut variants = vec![all];
        for slot in space_slots(chars) {
            let mut v = chars.to_vec();
            v.insert(slot, ' ');
            variants.push(v.into_iter().collect());
        }
        variants
    });
}

/// The other deterministic side of the noise property: a syllable typed twice with a space
/// between (부 부르지 마, 가방 방에) keeps every must-match example at its level. The random
/// property finds such a case only now and then; this sweep tries every syllable of every
/// example, so a spaced regex that breaks on it fails here, every run, not at random in CI.
#[test]
fn a_syllable_typed_twice_across_a_space_keeps_every_example() {
    every_variant_keeps_its_level(|chars| {
        (0..chars.len())
            .filter(|&i| ('가'..='힣').contains(&chars[i]))
            .map(|i| {
                let mut v: Vec<char> = chars[..i].to_vec();
                v.push(chars[i]);
                v.push(' ');
                v.extend_from_slice(&chars[i..]);
                v.into_iter().collect()
            })
            .collect()
    });
}

/// A slip inside a short word of a rule (a final left out, a final or an initial typed
/// twice) is repaired and every rule runs again; the level, the cues and the spans are
/// those of the repaired words, and the hit says it was read through a slip.
#[test]
fn slips_inside_short_rule_words_are_repaired() {
    let e = engine();
    for (text, level, rule) in [
        // 번개탄 with its last final left out; the raise cue (샀) still reads.
        ("번개타 샀어", Level::Imminent, "means.charcoal-bought.ko"),
        // A drug name from a lexicon marked `repair`.
        (
            "수며제 한 통 다 먹었어",
            Level::Imminent,
            "means.overdose-all.ko",
        ),
        // A final typed twice: a stray consonant between two syllables.
        ("번ㄴ개탄 샀어", Level::Imminent, "means.charcoal-bought.ko"),
    ] {
        let a = e.assess(text);
        assert_eq!(
            a.level,
            level,
            "{text}: {:?}",
            a.rule_ids().collect::<Vec<_>>()
        );
        let hit = a
            .rules
            .iter()
            .find(|h| &*h.id == rule)
            .unwrap_or_else(|| panic!("{text}: {rule} did not fire"));
        assert!(hit.typo, "{text}: {rule} should say it read a slip");
        let chars: Vec<char> = text.chars().collect();
        for &(s, t) in &hit.spans {
            assert!(t <= chars.len() && s < t, "{text}: span {s}..{t}");
        }
    }
    // 지금 with its final left out is the cue that makes the roof imminent: the roof is
    // read exactly, the cue through the repair, and `raised_by` points at what was typed.
    let a = e.assess("지그 옥상이야");
    assert_eq!(a.level, Level::Imminent);
    let hit = a
        .rules
        .iter()
        .find(|h| &*h.id == "plan.at-the-place.ko")
        .unwrap();
    assert_eq!(hit.raised_by, Some((0, 2)));
    // The span of a repaired word is exactly what was typed.
    let a = e.assess("번개타 샀어");
    let hit = a
        .rules
        .iter()
        .find(|h| &*h.id == "means.charcoal-bought.ko")
        .unwrap();
    let chars: Vec<char> = "번개타 샀어".chars().collect();
    let (s, t) = hit.spans[0];
    assert!(chars[s..t].iter().collect::<String>().starts_with("번개타"));
}

/// Repair rewrites only a window one dropped key short of a repair word, and never a word
/// whose slip is another common word (한가 is not 한강, 먹어 is not 먹었, 지급 is not 지금).
#[test]
fn repair_leaves_real_words_alone() {
    let e = engine();
    for text in [
        "한가해서 강변 산책했어",
        "감기약 일주일치 받았는데 자꾸 까먹어서 알람 맞춰놓음",
        "보험금 지급 언제 돼요? 옥상 방수 공사 때문에요",
        "비염약 먹으면 너무 졸려서 1교시 내내 기절해있었음",
        "중간에 나왔어 팝콘 반도 못 먹음",
    ] {
        let a = e.assess(text);
        assert!(
            a.level < Level::Medium,
            "{text}: {:?} {:?}",
            a.level,
            a.rule_ids().collect::<Vec<_>>()
        );
    }
}
