//! `ieum eval FILE|DIR...`: scores a labelled corpus (`label<TAB>text` lines) and prints
//! recall at each level, false-alarm rates and the confusion matrix; `--json` for tools.
//! See [`crate::triage::eval`] for the format and the figures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::RulePaths;
use crate::triage::Level;
use crate::triage::eval::{METRICS, Report, Sample, Slip, evaluate, parse};

/// Flags of `ieum eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Corpus files (`.tsv`), or directories of them; each file is one class.
    #[arg(required = true)]
    pub corpus: Vec<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also list every under-call and false alarm.
    #[arg(long)]
    pub misses: bool,
    /// Re-type each line labelled high or above with one slip inside the words that fired:
    /// drop (a final left out), double (a final typed twice), tense, latin (the word typed
    /// on the Latin layout).
    #[arg(long)]
    pub slip: Option<Slip>,
    /// Seed for `--slip`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the lines as scored (after any slip) to this file, `label<TAB>text`, so
    /// another build can be measured on exactly the same lines.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    #[command(flatten)]
    pub paths: RulePaths,
}

/// Reads the corpus files named (directories: their `*.tsv`, sorted).
///
/// # Errors
/// A file that cannot be read or parsed, named with its line.
pub fn load_corpus(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, Vec<Sample>)>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "tsv"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let samples = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            Ok((class_name(f), samples))
        })
        .collect()
}

fn class_name(f: &Path) -> String {
    let stem = f
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    match f.parent().and_then(Path::file_name) {
        Some(dir) => format!("{}/{stem}", dir.to_string_lossy()),
        None => stem,
    }
}

pub(super) fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let engine = args.paths.load()?;
    let corpus = load_corpus(&args.corpus)?;
    let report = evaluate(&engine, &corpus, args.slip.map(|s| (s, args.seed)));
    if let Some(path) = &args.write {
        let lines: String = report
            .scored
            .iter()
            .map(|(gold, text)| format!("{gold}\t{text}\n"))
            .collect();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&report))?);
    } else {
        print_tables(&report, args.misses);
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(r: &Report) -> serde_json::Value {
    let class = |c: &crate::triage::eval::ClassReport| {
        let metrics: serde_json::Map<String, serde_json::Value> = METRICS
            .iter()
            .map(|(name, _)| {
                let rate = c.metric(name);
                (
                    (*name).to_owned(),
                    json!({"value": rate.value(), "hit": rate.hit, "of": rate.of}),
                )
            })
            .collect();
        json!({"name": c.name, "lines": c.total(), "metrics": metrics, "confusion": c.confusion})
    };
    json!({
        "levels": Level::ALL,
        "all": class(&r.all),
        "classes": r.classes.iter().map(class).collect::<Vec<_>>(),
        "misses": r.misses,
    })
}

fn print_tables(r: &Report, misses: bool) {
    let short = [
        "high",
        "immin",
        "medium",
        "low",
        "missed",
        "FA≥med",
        "FA≥high",
        "low≥high",
    ];
    print!("{:<30} {:>5}", "class", "lines");
    for s in short {
        print!(" {s:>8}");
    }
    println!();
    for c in r.classes.iter().chain(std::iter::once(&r.all)) {
        print!("{:<30} {:>5}", c.name, c.total());
        for (name, _) in METRICS {
            match c.metric(name).value() {
                Some(v) => print!(" {v:>8.3}"),
                None => print!(" {:>8}", "-"),
            }
        }
        println!();
    }
    println!();
    for (name, what) in METRICS {
        println!("{:<18} {:<34} {}", name, what, r.all.metric(name));
    }
    println!();
    println!("confusion (rows: label, columns: scored)");
    print!("{:>10}", "");
    for l in Level::ALL {
        print!(" {:>9}", l.as_str());
    }
    println!();
    for g in Level::ALL {
        print!("{:>10}", g.as_str());
        for s in Level::ALL {
            print!(" {:>9}", r.all.confusion[g.index()][s.index()]);
        }
        println!();
    }
    if misses {
        println!();
        for m in &r.misses {
            println!(
                "{}:{}\t{}→{}\t{}\t[{}]",
                m.class,
                m.line,
                m.gold,
                m.got,
                m.text,
                m.rules.join(",")
            );
        }
    }
}
