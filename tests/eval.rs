//! The triage engine measured on the evaluation corpus in `tests/eval/`, written by people
//! who never saw the rules (see `tests/eval/README.md`). Each figure must stay at or above
//! its floor (recall) or at or below its ceiling (false alarms) in `tests/eval/floors.toml`;
//! a rule change that loses people at risk fails here, with the lines it now misses.

use std::collections::BTreeMap;
use std::path::Path;

mod common;

use ieum::cli::eval::load_corpus;
use ieum::triage::eval::{Report, Slip, evaluate};

#[derive(serde::Deserialize)]
struct Floors {
    /// Per corpus directory: figure name → limit.
    sets: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per slip kind: the floor of `high_recall` on every set together, each line labelled
    /// high or above re-typed with one slip inside the words that fired.
    slips: BTreeMap<String, f64>,
}

/// False-alarm figures are ceilings; everything else is a floor.
fn is_ceiling(name: &str) -> bool {
    name.contains("alarm") || name == "risk_missed"
}

fn floors() -> Floors {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eval/floors.toml");
    let text = std::fs::read_to_string(&path).expect("tests/eval/floors.toml");
    toml::from_str(&text).expect("floors.toml parses")
}

fn corpus_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/eval")
        .join(name)
}

fn check(set: &str, report: &Report, limits: &BTreeMap<String, f64>, failures: &mut Vec<String>) {
    for (name, &limit) in limits {
        let rate = report.all.metric(name);
        let Some(value) = rate.value() else {
            failures.push(format!("{set}: {name} has nothing to count"));
            continue;
        };
        let bad = if is_ceiling(name) {
            value > limit + 1e-9
        } else {
            value + 1e-9 < limit
        };
        if bad {
            let kind = if is_ceiling(name) { "ceiling" } else { "floor" };
            failures.push(format!("{set}: {name} = {rate}, {kind} {limit}"));
        }
    }
}

fn misses(report: &Report) -> String {
    report
        .misses
        .iter()
        .take(40)
        .map(|m| format!("  {}:{} {}→{} {}", m.class, m.line, m.gold, m.got, m.text))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_corpus_meets_its_recorded_floors() {
    let engine = common::shipped_engine();
    let floors = floors();
    assert!(
        floors.sets.contains_key("holdout"),
        "the held-out set must have floors"
    );
    let mut failures = Vec::new();
    let mut detail = String::new();
    for (set, limits) in &floors.sets {
        let corpus = load_corpus(&[corpus_dir(set)]).expect("corpus loads");
        assert!(
            corpus.iter().map(|(_, s)| s.len()).sum::<usize>() > 300,
            "{set}: the corpus is too small to measure anything"
        );
        let report = evaluate(engine, &corpus, None);
        let before = failures.len();
        check(set, &report, limits, &mut failures);
        if failures.len() > before {
            detail.push_str(&format!("\n{set} misses (first 40):\n{}", misses(&report)));
        }
    }
    assert!(failures.is_empty(), "{}\n{detail}", failures.join("\n"));
}

#[test]
fn one_typing_slip_inside_the_words_keeps_recall() {
    let engine = common::shipped_engine();
    let floors = floors();
    let dirs: Vec<std::path::PathBuf> = floors.sets.keys().map(|s| corpus_dir(s)).collect();
    let corpus = load_corpus(&dirs).expect("corpus loads");
    let mut failures = Vec::new();
    for (kind, &floor) in &floors.slips {
        let slip: Slip = kind.parse().expect("a slip kind");
        let report = evaluate(engine, &corpus, Some((slip, 1)));
        let rate = report.all.metric("high_recall");
        if rate.value().unwrap_or(0.0) + 1e-9 < floor {
            failures.push(format!("slip {kind}: high_recall = {rate}, floor {floor}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_corpus_is_large_and_labelled() {
    // The issue asks for at least 1,500 lines covering every class; the held-out half is
    // never read while rules are written.
    let dirs: Vec<std::path::PathBuf> = floors().sets.keys().map(|s| corpus_dir(s)).collect();
    let corpus = load_corpus(&dirs).expect("corpus loads");
    let total: usize = corpus.iter().map(|(_, s)| s.len()).sum();
    assert!(total >= 1500, "only {total} labelled lines");
    let classes: std::collections::BTreeSet<String> = corpus
        .iter()
        .map(|(name, _)| name.rsplit('/').next().unwrap_or(name).to_owned())
        .collect();
    for want in [
        "selfharm",
        "overdose",
        "intent_endings",
        "method_place",
        "passive",
        "farewell",
        "loneliness",
        "choseong_slang",
        "english",
        "benign_lookalike",
        "distress",
        "everyday",
        "harm_others",
        "negation_recovery",
    ] {
        assert!(classes.contains(want), "no {want} class in the corpus");
    }
}
