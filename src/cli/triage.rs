//! `ieum triage`: one message per stdin line in, one JSON object per line out.
//!
//! ```text
//! {"text": "...", "risk": "none|low|medium|high|imminent", "intent": "...",
//!  "rules": ["id", ...], "spans": [[start, end], ...], ...}
//! ```
//!
//! `spans` are character offsets into `text`. `hits` explains each rule that fired: its
//! level, category, exact words, the cue that lowered it (`lowered_by`), the parts an
//! imminent built from parts was made of, and `typo` when it was read through a slip. With `--conversation`, all lines are one
//! conversation and `risk` is the conversation's level after that line (`message_risk` is
//! the line's own). A line that is not UTF-8 gets `{"line": N, "error": "invalid_utf8"}`,
//! the rest are still triaged, and the exit code is 1.

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::RulePaths;
use crate::triage::{Assessment, ConversationRisk};

/// Flags of `ieum triage`.
#[derive(Debug, Args)]
pub struct TriageArgs {
    /// Treat all lines as one conversation: `risk` is the conversation's level.
    #[arg(long)]
    pub conversation: bool,
    #[command(flatten)]
    pub paths: RulePaths,
}

pub(super) fn run(args: TriageArgs) -> anyhow::Result<ExitCode> {
    let engine = args.paths.load()?;
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut risk = ConversationRisk::default();
    let mut level = crate::triage::Level::None;
    let mut bad_lines = 0usize;
    for (n, line) in stdin.split(b'\n').enumerate() {
        let mut line = line?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            bad_lines += 1;
            let err = json!({
                "line": n + 1,
                "error": "invalid_utf8",
                "message": "this line is not valid UTF-8 and was not triaged",
            });
            writeln!(out, "{err}")?;
            continue;
        };
        let a = engine.assess(text);
        let shown = if args.conversation {
            level = engine.escalate(&mut risk, level, &a);
            level
        } else {
            a.level
        };
        writeln!(out, "{}", render(text, &a, shown))?;
        out.flush()?;
    }
    out.flush()?;
    Ok(if bad_lines > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn render(text: &str, a: &Assessment, risk: crate::triage::Level) -> serde_json::Value {
    json!({
        "text": text,
        "risk": risk,
        "message_risk": a.level,
        "action": a.action,
        "intent": a.intent,
        "rules": a.rule_ids().collect::<Vec<_>>(),
        "categories": a.rules.iter().map(|r| r.category).collect::<Vec<_>>(),
        "lowered": a.rules.iter().filter(|r| r.lowered).map(|r| &*r.id).collect::<Vec<_>>(),
        "spans": a.spans,
        "hits": explain(text, a),
        "ruleset": a.ruleset_version,
    })
}

/// Per rule that fired: its level and category, the exact words, the cue that lowered it,
/// the parts it was built from, and whether a typing slip was read through.
fn explain(text: &str, a: &Assessment) -> Vec<serde_json::Value> {
    let chars: Vec<char> = text.chars().collect();
    let words = |(s, e): crate::triage::Span| {
        chars[s.min(chars.len())..e.min(chars.len())]
            .iter()
            .collect::<String>()
    };
    a.rules
        .iter()
        .map(|h| {
            let mut v = json!({
                "rule": h.id,
                "level": h.level,
                "category": h.category,
                "spans": h.spans,
                "words": h.spans.iter().map(|&s| words(s)).collect::<Vec<_>>(),
            });
            if let Some(cue) = h.lowered_by {
                v["lowered_by"] = json!({"span": cue, "words": words(cue)});
            }
            if !h.parts.is_empty() {
                v["parts"] = h
                    .parts
                    .iter()
                    .map(|p| json!({"part": p.name, "span": p.span, "words": words(p.span)}))
                    .collect();
            }
            if h.typo {
                v["typo"] = json!(true);
            }
            v
        })
        .collect()
}
