//! `ieum store copy --from STORE --to STORE`: moves a deployment between stores (sled to
//! PostgreSQL, or back), with the service stopped.
//!
//! Every tree is copied as stored (sealed records stay sealed; nothing is decrypted), in
//! flushed batches ([`crate::store::copy`]), then compared tree by tree (keys and a SHA-256
//! of the content on both sides), and the audit chain is verified on the destination as
//! `ieum audit verify` does, with the anchored head and master key from `--data-dir`.
//! Non-zero exit on any difference.
//!
//! * Both stores are opened with their locks: while an `ieum serve` runs on either (sled's
//!   directory lock, PostgreSQL's primary lease), the copy is refused.
//! * A destination that holds anything is refused unless `--force`, which empties it first.
//! * A PostgreSQL URL is never printed (it may carry a password).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::store::copy::{self, TreeCopy};
use crate::store::{Backend, Location, Store, StoreError, StoreOptions};

/// `ieum store ...`
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Copy every record from one store to another and verify the copy (run with the
    /// service stopped); non-zero exit on any difference.
    Copy(CopyArgs),
}

/// `ieum store copy`
#[derive(Debug, Args)]
struct CopyArgs {
    /// The store to read (`sled:<dir>` or `postgres://…`).
    #[arg(long, hide_env_values = true)]
    from: String,
    /// The store to write (`sled:<dir>` or `postgres://…`); must be empty unless `--force`.
    #[arg(long, hide_env_values = true)]
    to: String,
    /// Empty the destination first if it holds anything (its records are lost).
    #[arg(long)]
    force: bool,
    /// The service's data directory: the anchored audit head (`audit.head`) and, by
    /// default, the master key that opens it. Default: the `--from` directory when that is
    /// sled, else `data`.
    #[arg(long, env = "IEUM_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The master key file (default: `<data-dir>/master.key`).
    #[arg(long, env = "IEUM_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// The master key, hex (instead of the file).
    #[arg(long, env = "IEUM_MASTER_KEY", hide_env_values = true)]
    master_key: Option<String>,
}

pub(super) fn run(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let StoreCommand::Copy(args) = args.command;
    // `parse` only uses the directory when the flag is absent; both are given here.
    let from = Location::parse(Some(&args.from), Path::new("data")).context("--from")?;
    let to = Location::parse(Some(&args.to), Path::new("data")).context("--to")?;
    let data_dir = match (&args.data_dir, &from) {
        (Some(dir), _) => dir.clone(),
        (None, Location::Sled(dir)) => dir.clone(),
        (None, Location::Postgres(_)) => PathBuf::from("data"),
    };
    let same = match (&from, &to) {
        (Location::Sled(a), Location::Sled(b)) => {
            a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
        }
        (a, b) => a == b,
    };
    anyhow::ensure!(!same, "--from and --to are the same store");
    if let Location::Sled(dir) = &from {
        anyhow::ensure!(
            dir.join("db").exists() || dir.join("conf").exists(),
            "{} holds no ieum store",
            dir.display()
        );
    }
    if let Location::Sled(dir) = &to {
        crate::store::prepare_data_dir(dir)
            .with_context(|| format!("preparing {}", dir.display()))?;
    }
    let anchor = super::audit::load_anchor(
        &data_dir,
        args.master_key_file.as_deref(),
        args.master_key.as_deref(),
    )?;

    // Blocking calls, on this thread: the PostgreSQL client must not run inside a runtime.
    let source = open(&from, "the source")?;
    let destination = open(&to, "the destination")?;
    let filled = copy::non_empty_trees(destination.as_ref())?;
    if !filled.is_empty() {
        let names: Vec<&str> = filled.iter().map(|t| t.name()).collect();
        anyhow::ensure!(
            args.force,
            "the destination ({}) already holds data (trees: {}); copy into an empty store, \
             or pass --force to empty it first",
            describe(&to),
            names.join(", ")
        );
        eprintln!("--force: emptying the destination ({})", describe(&to));
        copy::clear(destination.as_ref()).context("emptying the destination")?;
    }
    eprintln!("copying {} to {}", describe(&from), describe(&to));
    let report = copy::copy(source.as_ref(), destination.as_ref()).context("copying")?;
    drop(source);
    let copied_ok = print_report(&report);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let audit = runtime.block_on(async {
        let store = Store::with_options(destination, StoreOptions::default())?;
        let code = super::audit::verify_store(&store, anchor.as_ref()).await;
        store.shutdown().await?;
        code
    })?;
    if copied_ok && audit == ExitCode::SUCCESS {
        println!("copy verified");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("copy FAILED verification");
        Ok(ExitCode::FAILURE)
    }
}

/// Opens one side, saying plainly when a running ieum holds it.
fn open(location: &Location, side: &str) -> anyhow::Result<Arc<dyn Backend>> {
    match location.open_backend(Duration::from_secs(2)) {
        Ok(b) => Ok(b),
        Err(StoreError::Busy(_)) => anyhow::bail!(
            "{side} ({}) is in use by a running ieum; stop the service and run this again",
            describe(location)
        ),
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("opening {side} ({})", describe(location))),
    }
}

/// A store for messages: the sled directory, or just "PostgreSQL" (never the URL, which
/// may carry a password).
fn describe(location: &Location) -> String {
    match location {
        Location::Sled(dir) => format!("sled:{}", dir.display()),
        Location::Postgres(_) => "PostgreSQL".into(),
    }
}

/// One line per tree; whether every tree matches.
fn print_report(report: &[TreeCopy]) -> bool {
    for r in report {
        if r.verified() {
            println!("{:<14} {:>9} keys  verified", r.tree.name(), r.source.keys);
        } else {
            println!(
                "{:<14} {:>9} keys in the source, {} in the destination  MISMATCH{}",
                r.tree.name(),
                r.source.keys,
                r.destination.keys,
                if r.source.keys == r.destination.keys {
                    " (content differs)"
                } else {
                    ""
                }
            );
        }
    }
    report.iter().all(TreeCopy::verified)
}
