//! The command line: one file per subcommand.
//!
//! `main.rs` parses [`Cli`] and calls [`run`]; everything else lives here so tests can
//! drive the same code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::defaults;
use crate::triage::TriageEngine;

mod audit;
mod check_rules;
pub mod eval;
mod normalize;
mod serve;
mod staff;
mod store;
mod triage;

/// ieum (이음): loneliness and crisis chat service.
#[derive(Debug, Parser)]
#[command(name = "ieum", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Triage messages from stdin, one per line; print one JSON object per line.
    Triage(triage::TriageArgs),
    /// Load the rule and intent files and run every example; non-zero exit on failure.
    CheckRules(check_rules::CheckRulesArgs),
    /// Run the chat service (defaults: 127.0.0.1:8080, sled in ./data, shipped rules).
    Serve(serve::ServeArgs),
    /// Manage staff accounts (run while the service is stopped).
    Staff(staff::StaffArgs),
    /// Check the audit log.
    Audit(audit::AuditArgs),
    /// Move the store: copy every record from sled to PostgreSQL (or back) and verify.
    Store(store::StoreArgs),
    /// Score a labelled corpus (`label<TAB>text` lines): recall per level, false alarms,
    /// confusion matrix.
    Eval(eval::EvalArgs),
    /// Print the spaced and compact normalized forms of each stdin line (for rule authors).
    Normalize,
}

/// Where the rule and intent files are.
#[derive(Debug, Clone, Args)]
pub struct RulePaths {
    /// The risk rules file.
    #[arg(long, env = "IEUM_RULES", default_value = defaults::RULES)]
    pub rules: PathBuf,
    /// The intents directory.
    #[arg(long, env = "IEUM_INTENTS", default_value = defaults::INTENTS)]
    pub intents: PathBuf,
}

impl RulePaths {
    /// Loads and compiles the engine, with an error that names file, line and rule.
    pub fn load(&self) -> anyhow::Result<TriageEngine> {
        Ok(TriageEngine::load(&self.rules, &self.intents)?)
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Triage(args) => triage::run(args),
        Command::CheckRules(args) => check_rules::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Normalize => normalize::run(),
        Command::Serve(args) => serve::run(args),
        Command::Staff(args) => staff::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Store(args) => store::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ieum: {e:#}");
            ExitCode::FAILURE
        }
    }
}
