//! `ieum audit verify`: walks the hash-chained audit log and says whether it is intact.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::store::{Store, StoreOptions};

/// `ieum audit ...`
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    /// The service's data directory.
    #[arg(long, env = "IEUM_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every link and hash of the audit chain; non-zero exit if broken.
    Verify,
}

pub(super) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = args.command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Store::open_sled(&args.data_dir, StoreOptions::default())
            .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
        let v = crate::audit::verify(&store).await?;
        store.shutdown().await?;
        Ok(match v.broken {
            None => {
                println!("audit log intact: {} records", v.records);
                ExitCode::SUCCESS
            }
            Some((seq, why)) => {
                println!(
                    "audit log BROKEN at record {seq}: {why} ({} records verified before it)",
                    v.records
                );
                ExitCode::FAILURE
            }
        })
    })
}
