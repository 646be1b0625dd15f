//! `ieum staff add NAME --role counselor|supervisor`: creates a staff account. The password
//! is read from the first line of stdin (so it never appears in the shell history or the
//! process list). It opens the data directory itself, so it is for the first account, with
//! the service stopped (sled allows one process at a time); while the service runs,
//! supervisors add and disable staff on the supervisor page (`POST /api/staff`).

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::auth::{self, Role};
use crate::store::{Location, StoreError, StoreOptions};

/// `ieum staff ...`
#[derive(Debug, Args)]
pub struct StaffArgs {
    #[command(subcommand)]
    command: StaffCommand,
    /// The service's data directory.
    #[arg(long, env = "IEUM_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    /// The service's store (`sled:<dir>` or `postgres://…`); default: sled in `--data-dir`.
    #[arg(long, env = "IEUM_STORE", hide_env_values = true, global = true)]
    store: Option<String>,
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Add an account; the password is read from stdin.
    Add {
        /// Login name (2–32 of a-z, 0-9, '.', '_', '-').
        name: String,
        /// What the account may do.
        #[arg(long, value_enum)]
        role: Role,
    },
}

pub(super) fn run(args: StaffArgs) -> anyhow::Result<ExitCode> {
    let StaffCommand::Add { name, role } = args.command;
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let location = Location::parse(args.store.as_deref(), &args.data_dir)?;
    runtime.block_on(async {
        if let Location::Sled(dir) = &location {
            crate::store::prepare_data_dir(dir)?;
        }
        let options = StoreOptions::default().lock_wait(std::time::Duration::from_secs(2));
        // Off the runtime's thread: the PostgreSQL client blocks on a runtime of its own.
        let at = location.clone();
        let opened = tokio::task::spawn_blocking(move || at.open(options)).await?;
        let store = match opened {
            Ok(store) => store,
            Err(StoreError::Busy(_)) if location.is_postgres() => anyhow::bail!(
                "the PostgreSQL database is in use by a running ieum (it holds the primary lease).\n\
                 While the service runs, a supervisor adds and disables staff on the supervisor \
                 page (/supervisor, Staff) or with POST /api/staff; or stop the service and run \
                 this again."
            ),
            Err(StoreError::Busy(_)) => anyhow::bail!(
                "the data directory {} is in use by a running ieum (one process at a time).\n\
                 While the service runs, a supervisor adds and disables staff on the supervisor \
                 page (/supervisor, Staff) or with POST /api/staff; or stop the service and run \
                 this again.",
                match &location {
                    Location::Sled(dir) => dir.display().to_string(),
                    other => other.to_string(),
                }
            ),
            Err(e) => {
                return Err(anyhow::Error::new(e)).with_context(|| match &location {
                    Location::Sled(dir) => format!("opening the store in {}", dir.display()),
                    other => format!("opening the store ({other})"),
                });
            }
        };
        auth::add_staff(&store, &name, role, password).await?;
        store.shutdown().await?;
        eprintln!("added {} `{name}`", role.as_str());
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
