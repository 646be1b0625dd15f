//! The evaluation harness behind `ieum eval`: a labelled corpus in, recall at each level,
//! false-alarm rates and a confusion matrix out.
//!
//! # Why
//!
//! Rule examples show that each rule does what its author meant; they cannot show how much
//! real language the rules miss, because the same person wrote both. The corpus in
//! `tests/eval/` was written separately, by writers who never saw the rules, and
//! `tests/eval.rs` fails when a figure falls below the floor recorded in
//! `tests/eval/floors.toml`. Half of it (`holdout/`) is never read while rules are written.
//!
//! # Format
//!
//! One message per line, `LABEL<TAB>TEXT`, where `LABEL` is the level a careful counselor
//! wants (`none`, `low`, `medium`, `high`, `imminent`). Blank lines and lines starting with
//! `#` are skipped. Each file is one class (`selfharm.tsv`, `everyday.tsv`).
//!
//! # Slips
//!
//! [`Slip`] re-types a line with one slip inside the words that fired on its clean form (a
//! final consonant dropped or typed twice, a plain initial typed tense, or the word typed on
//! the Latin keyboard layout), the way the outside measure does, so the typo tolerance can be
//! measured and held to a floor.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::hangul::{Syllable, is_syllable, keystrokes, tense_of};
use super::{Level, TriageEngine};

/// One labelled message.
#[derive(Debug, Clone)]
pub struct Sample {
    /// 1-based line in its file.
    pub line: usize,
    /// The level wanted.
    pub gold: Level,
    /// The message.
    pub text: String,
}

/// Parses a corpus file.
///
/// # Errors
/// `line N: ...` for a line without a TAB or with an unknown label.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (label, msg) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {}: no TAB between label and text", i + 1))?;
        let gold: Level = label
            .trim()
            .parse()
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        out.push(Sample {
            line: i + 1,
            gold,
            text: msg.to_owned(),
        });
    }
    Ok(out)
}

/// How one class (file) was scored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassReport {
    /// The class (file stem), or `all`.
    pub name: String,
    /// `confusion[gold][got]`.
    pub confusion: [[usize; 5]; 5],
}

/// A ratio with its counts, `None` when nothing was counted.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Rate {
    /// Lines that met the condition.
    pub hit: usize,
    /// Lines counted.
    pub of: usize,
}

impl Rate {
    /// `hit / of`, or `None` for an empty count.
    pub fn value(self) -> Option<f64> {
        (self.of > 0).then(|| self.hit as f64 / self.of as f64)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value() {
            Some(v) => write!(f, "{v:.3} ({}/{})", self.hit, self.of),
            None => f.write_str("-"),
        }
    }
}

/// The figures `ieum eval` reports, named as in `tests/eval/floors.toml`.
pub const METRICS: &[(&str, &str)] = &[
    ("high_recall", "high + imminent scored ≥ high"),
    ("imminent_recall", "imminent scored imminent"),
    ("medium_recall", "medium scored ≥ medium"),
    ("low_recall", "low scored ≥ low"),
    ("risk_missed", "medium and above scored none"),
    ("none_false_alarm", "none scored ≥ medium"),
    ("none_high_alarm", "none scored ≥ high"),
    ("low_high_alarm", "low scored ≥ high"),
];

impl ClassReport {
    fn add(&mut self, gold: Level, got: Level) {
        self.confusion[gold.index()][got.index()] += 1;
    }

    fn count(&self, gold: impl Fn(Level) -> bool, got: impl Fn(Level) -> bool) -> Rate {
        let mut r = Rate { hit: 0, of: 0 };
        for g in Level::ALL.into_iter().filter(|&l| gold(l)) {
            for s in Level::ALL {
                let n = self.confusion[g.index()][s.index()];
                r.of += n;
                if got(s) {
                    r.hit += n;
                }
            }
        }
        r
    }

    /// A named figure from [`METRICS`].
    ///
    /// # Panics
    /// On a name not in [`METRICS`].
    pub fn metric(&self, name: &str) -> Rate {
        use Level::*;
        match name {
            "high_recall" => self.count(|g| g >= High, |s| s >= High),
            "imminent_recall" => self.count(|g| g == Imminent, |s| s == Imminent),
            "medium_recall" => self.count(|g| g == Medium, |s| s >= Medium),
            "low_recall" => self.count(|g| g == Low, |s| s >= Low),
            "risk_missed" => self.count(|g| g >= Medium, |s| s == None),
            "none_false_alarm" => self.count(|g| g == None, |s| s >= Medium),
            "none_high_alarm" => self.count(|g| g == None, |s| s >= High),
            "low_high_alarm" => self.count(|g| g == Low, |s| s >= High),
            other => panic!("unknown metric {other}"),
        }
    }

    /// Lines counted.
    pub fn total(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }
}

/// One line the engine scored other than its label said.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    /// The class.
    pub class: String,
    /// Its line.
    pub line: usize,
    /// Wanted.
    pub gold: Level,
    /// Got.
    pub got: Level,
    /// The rules that fired.
    pub rules: Vec<String>,
    /// The text scored (after any slip).
    pub text: String,
}

/// A whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Per class, in the order given.
    pub classes: Vec<ClassReport>,
    /// Every class together.
    pub all: ClassReport,
    /// Under-calls (risk scored below its label) and false alarms (`none`/`low` scored
    /// `medium` or above).
    pub misses: Vec<Miss>,
    /// Every line as scored (after any slip), with its label.
    #[serde(skip)]
    pub scored: Vec<(Level, String)>,
}

/// One typing slip, applied inside the words that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slip {
    /// A final consonant left out (`죽고` → `주고`).
    DropFinal,
    /// A final consonant typed twice (`죽고` → `죽ㄱ고`).
    DoubleFinal,
    /// A plain initial typed with Shift (`죽고` → `쭉고`).
    Tense,
    /// One word typed on the Latin layout (`죽고싶다` → `wnrrhtlvek`).
    Latin,
}

impl std::str::FromStr for Slip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "drop" => Slip::DropFinal,
            "double" => Slip::DoubleFinal,
            "tense" => Slip::Tense,
            "latin" => Slip::Latin,
            other => {
                return Err(format!(
                    "unknown slip `{other}` (drop, double, tense, latin)"
                ));
            }
        })
    }
}

/// Scores every sample of every class. With a slip, only lines labelled `high` or above are
/// scored, each re-typed once with the slip (seeded: the same seed gives the same lines).
pub fn evaluate(
    engine: &TriageEngine,
    classes: &[(String, Vec<Sample>)],
    slip: Option<(Slip, u64)>,
) -> Report {
    let mut report = Report::default();
    report.all.name = "all".into();
    let mut rng = StdRng::seed_from_u64(slip.map_or(0, |s| s.1));
    for (name, samples) in classes {
        let mut class = ClassReport {
            name: name.clone(),
            ..ClassReport::default()
        };
        for s in samples {
            let text = match slip {
                None => s.text.clone(),
                Some(_) if s.gold < Level::High => continue,
                Some((kind, _)) => {
                    let clean = engine.assess(&s.text);
                    apply_slip(&s.text, &clean.spans, kind, &mut rng)
                }
            };
            let a = engine.assess(&text);
            report.scored.push((s.gold, text.clone()));
            class.add(s.gold, a.level);
            report.all.add(s.gold, a.level);
            let under = s.gold >= Level::Low && a.level < s.gold;
            let false_alarm = s.gold <= Level::Low && a.level >= Level::Medium;
            if under || false_alarm {
                report.misses.push(Miss {
                    class: name.clone(),
                    line: s.line,
                    gold: s.gold,
                    got: a.level,
                    rules: a.rule_ids().map(str::to_owned).collect(),
                    text,
                });
            }
        }
        report.classes.push(class);
    }
    report
}

/// Re-types `text` with one slip on a syllable inside `spans` (the words that fired), or
/// anywhere when nothing fired. Returns the text unchanged when no syllable can take it.
pub fn apply_slip(text: &str, spans: &[super::Span], slip: Slip, rng: &mut impl Rng) -> String {
    let chars: Vec<char> = text.chars().collect();
    let inside = |i: usize| spans.is_empty() || spans.iter().any(|&(s, e)| s <= i && i < e);
    let fits = |c: char| match (slip, Syllable::of(c)) {
        (Slip::DropFinal | Slip::DoubleFinal, Some(s)) => s.jong != '\0',
        (Slip::Tense, Some(s)) => tense_of(s.cho).is_some(),
        (Slip::Latin, Some(_)) => true,
        _ => false,
    };
    let mut candidates: Vec<usize> = (0..chars.len())
        .filter(|&i| inside(i) && fits(chars[i]))
        .collect();
    if candidates.is_empty() {
        candidates = (0..chars.len()).filter(|&i| fits(chars[i])).collect();
    }
    if candidates.is_empty() {
        return text.to_owned();
    }
    let at = candidates[rng.random_range(0..candidates.len())];
    let s = Syllable::of(chars[at]).expect("candidates are syllables");
    let mut out: Vec<char> = chars.clone();
    match slip {
        Slip::DropFinal => out[at] = s.with_jong('\0').compose().unwrap_or(chars[at]),
        Slip::DoubleFinal => out.insert(at + 1, s.jong),
        Slip::Tense => {
            let tense = tense_of(s.cho).expect("candidates have a plain initial");
            out[at] = Syllable { cho: tense, ..s }.compose().unwrap_or(chars[at]);
        }
        Slip::Latin => {
            // The whole word around the syllable (a run of Hangul syllables).
            let mut a = at;
            while a > 0 && is_syllable(chars[a - 1]) {
                a -= 1;
            }
            let mut b = at + 1;
            while b < chars.len() && is_syllable(chars[b]) {
                b += 1;
            }
            let word: String = chars[a..b].iter().collect();
            let latin: Vec<char> = keystrokes(&word)
                .into_iter()
                .filter_map(latin_key)
                .collect();
            out.splice(a..b, latin);
        }
    }
    out.into_iter().collect()
}

/// The Latin key that types a jamo on the two-set layout.
fn latin_key(j: char) -> Option<char> {
    const KEYS: &[(char, char)] = &[
        ('ㅂ', 'q'),
        ('ㅈ', 'w'),
        ('ㄷ', 'e'),
        ('ㄱ', 'r'),
        ('ㅅ', 't'),
        ('ㅛ', 'y'),
        ('ㅕ', 'u'),
        ('ㅑ', 'i'),
        ('ㅐ', 'o'),
        ('ㅔ', 'p'),
        ('ㅁ', 'a'),
        ('ㄴ', 's'),
        ('ㅇ', 'd'),
        ('ㄹ', 'f'),
        ('ㅎ', 'g'),
        ('ㅗ', 'h'),
        ('ㅓ', 'j'),
        ('ㅏ', 'k'),
        ('ㅣ', 'l'),
        ('ㅋ', 'z'),
        ('ㅌ', 'x'),
        ('ㅊ', 'c'),
        ('ㅍ', 'v'),
        ('ㅠ', 'b'),
        ('ㅜ', 'n'),
        ('ㅡ', 'm'),
        ('ㅃ', 'Q'),
        ('ㅉ', 'W'),
        ('ㄸ', 'E'),
        ('ㄲ', 'R'),
        ('ㅆ', 'T'),
        ('ㅒ', 'O'),
        ('ㅖ', 'P'),
    ];
    KEYS.iter().find(|(k, _)| *k == j).map(|(_, l)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_labels_and_skips_comments() {
        let s = parse("# header\n\nhigh\t죽고 싶다\nnone\t안녕\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].line, s[0].gold), (3, Level::High));
        assert!(parse("high 죽고 싶다").unwrap_err().contains("line 1"));
        assert!(parse("hgh\t죽고 싶다").unwrap_err().contains("line 1"));
    }

    #[test]
    fn metrics_count_from_the_confusion_matrix() {
        let mut c = ClassReport::default();
        c.add(Level::High, Level::High);
        c.add(Level::Imminent, Level::Medium);
        c.add(Level::None, Level::Medium);
        c.add(Level::None, Level::None);
        assert_eq!(c.metric("high_recall"), Rate { hit: 1, of: 2 });
        assert_eq!(c.metric("imminent_recall"), Rate { hit: 0, of: 1 });
        assert_eq!(c.metric("none_false_alarm"), Rate { hit: 1, of: 2 });
        assert_eq!(c.metric("low_recall").value(), None);
        assert_eq!(c.total(), 4);
    }

    #[test]
    fn slips_land_inside_the_fired_words() {
        let mut rng = StdRng::seed_from_u64(7);
        let text = "오늘 죽고 싶다";
        let spans = [(3, 6)];
        for _ in 0..20 {
            let t = apply_slip(text, &spans, Slip::DropFinal, &mut rng);
            assert!(t == "오늘 주고 싶다" || t == "오늘 죽고 시다", "{t}");
        }
        assert_eq!(
            apply_slip("죽고싶다", &[(0, 4)], Slip::Latin, &mut rng),
            "wnrrhtlvek"
        );
        let t = apply_slip("죽고", &[(0, 2)], Slip::DoubleFinal, &mut rng);
        assert_eq!(t, "죽ㄱ고");
        assert_eq!(apply_slip("abc", &[], Slip::Tense, &mut rng), "abc");
    }
}
