//! `ieum normalize`: shows what the matcher sees, for rule authors.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use crate::triage::TriageEngine;

pub(super) fn run() -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    for line in stdin.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        let (spaced, compact) = TriageEngine::normalize(text.trim_end_matches('\r'));
        writeln!(
            out,
            "{}",
            serde_json::json!({ "text": text, "spaced": spaced, "compact": compact })
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
