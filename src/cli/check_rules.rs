//! `ieum check-rules`: loads the files, runs every example and counter-example, prints a
//! table of failures, and exits non-zero on any failure or invalid file.

use std::process::ExitCode;

use clap::Args;

use super::RulePaths;
use crate::triage::Level;

/// Flags of `ieum check-rules`.
#[derive(Debug, Args)]
pub struct CheckRulesArgs {
    #[command(flatten)]
    pub paths: RulePaths,
    /// Print failures as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show how a rule's stems, endings and lexicons expand into patterns (repeatable).
    #[arg(long, value_name = "RULE")]
    pub expand: Vec<String>,
}

pub(super) fn run(args: CheckRulesArgs) -> anyhow::Result<ExitCode> {
    let engine = args.paths.load()?;
    let set = engine.rule_set();
    for id in &args.expand {
        let Some(rule) = set.rules.iter().find(|r| &r.id == id) else {
            anyhow::bail!("no rule `{id}`");
        };
        println!(
            "{} ({}, {:?}) {}:{}",
            rule.id,
            rule.level,
            rule.category,
            rule.at.file.display(),
            rule.at.line
        );
        let show = |label: &str, m: &crate::triage::rules::Matchers| {
            for line in &m.expansion {
                println!("  {label}{line}");
            }
            println!(
                "  {label}{} compact patterns: {}",
                m.patterns.len(),
                m.patterns.join(" ")
            );
        };
        show("", &rule.matchers);
        for p in &rule.parts {
            show(&format!("part {}: ", p.name), &p.matchers);
        }
        if !rule.parts.is_empty() {
            println!("  parts within {} characters", rule.within);
        }
    }
    if !args.expand.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut failures = engine.check_examples();
    // The content layer's own examples: moods, programs, districts, screener answers.
    let content = crate::content::Content::load(&args.paths.intents)?;
    failures.extend(content.check_examples());
    if args.json {
        for f in &failures {
            println!("{}", serde_json::to_string(f)?);
        }
    } else if !failures.is_empty() {
        println!(
            "{:<40} {:<36} {:<16} {:<30} got",
            "where", "id", "kind", "text"
        );
        for f in &failures {
            println!(
                "{:<40} {:<36} {:<16} {:<30} {}",
                format!("{}:{}", f.file.display(), f.line),
                f.id,
                f.kind,
                format!("{:?}", f.text),
                f.got
            );
        }
    }

    let hangul = |s: &String| {
        s.chars().any(|c| {
            ('\u{AC00}'..='\u{D7A3}').contains(&c) || ('\u{3131}'..='\u{318E}').contains(&c)
        })
    };
    let risk_examples = set
        .rules
        .iter()
        .flat_map(|r| r.examples.iter().chain(&r.lowered_examples));
    let (ko, other): (Vec<&String>, Vec<&String>) = risk_examples.partition(|s| hangul(s));
    let counters: usize = set.rules.iter().map(|r| r.counter_examples.len()).sum();
    let intent_examples: usize = set
        .intents
        .iter()
        .map(|i| i.examples.len() + i.counter_examples.len())
        .sum();
    let per_level: Vec<String> = Level::ALL[1..]
        .iter()
        .map(|l| format!("{l} {}", set.rules.iter().filter(|r| r.level == *l).count()))
        .collect();
    eprintln!(
        "ruleset {}: {} rules ({}), {} intents; risk examples: {} Korean, {} other; {} counter-examples; {} intent examples",
        set.version,
        set.rules.len(),
        per_level.join(", "),
        set.intents.len(),
        ko.len(),
        other.len(),
        counters,
        intent_examples,
    );
    let (literals, tolerant) = engine.literal_counts();
    eprintln!(
        "matching: {} literals ({} also within one typing slip), {} lexicons, {} ending classes",
        literals,
        tolerant,
        set.lexicons.len(),
        set.endings.len(),
    );
    eprintln!(
        "content: {} intents, {} resources, {} moods, {} programs, {} districts, {} screener questions",
        content.intents().len(),
        content.resources().len(),
        content.moods().len(),
        content.programs().len(),
        content.districts().len(),
        content.screener().questions().len(),
    );
    if failures.is_empty() {
        eprintln!("all examples pass");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} examples failed", failures.len());
        Ok(ExitCode::FAILURE)
    }
}
