//! `ieum audit verify`: walks the hash-chained audit log, compares its end with the
//! anchored head (`audit.head`, sealed with the master key), and says whether it is intact
//! and how many records are missing.
//!
//! For forensics it never writes to the directory it is given when `--read-only` is set
//! (or the directory cannot be written): it copies the store to a temporary directory and
//! verifies the copy. sled cannot open a directory read-only.
//!
//! With `--store postgres://…` it verifies the log in PostgreSQL. Opening the store there
//! takes the primary lease, so it runs with the service stopped, and `--read-only` is refused:
//! nothing here can copy a database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::store::{Location, StoreOptions};

/// `ieum audit ...`
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    /// The service's data directory.
    #[arg(long, env = "IEUM_DATA_DIR", default_value = "data", global = true)]
    data_dir: PathBuf,
    /// The service's store (`sled:<dir>` or `postgres://…`); default: sled in `--data-dir`.
    /// The anchored head (`audit.head`) is read from `--data-dir` either way.
    #[arg(long, env = "IEUM_STORE", hide_env_values = true, global = true)]
    store: Option<String>,
    /// The master key file (default: `<data-dir>/master.key`): opens the anchored head.
    #[arg(long, env = "IEUM_MASTER_KEY_FILE", global = true)]
    master_key_file: Option<PathBuf>,
    /// The master key, hex (instead of the file).
    #[arg(long, env = "IEUM_MASTER_KEY", hide_env_values = true, global = true)]
    master_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every link and hash of the audit chain and its anchored head; non-zero exit if
    /// broken or if records are missing.
    Verify {
        /// Never write to the data directory: verify a temporary copy (forensics, or a
        /// read-only directory).
        #[arg(long)]
        read_only: bool,
    },
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Whether files can be created in `dir`.
fn writable(dir: &Path) -> bool {
    let probe = dir.join(".ieum-write-probe");
    let ok = std::fs::File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

pub(super) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { read_only } = args.command;
    let location = Location::parse(args.store.as_deref(), &args.data_dir)?;
    if let Location::Postgres(_) = &location {
        anyhow::ensure!(
            !read_only,
            "--read-only copies a sled directory; on PostgreSQL verify a restored copy of the \
             database instead"
        );
        return verify(&location, anchor(&args)?);
    }
    if let Location::Sled(dir) = &location
        && dir != &args.data_dir
    {
        anyhow::bail!(
            "audit verify reads the sled store in --data-dir; pass --data-dir {} instead of \
             --store",
            dir.display()
        );
    }
    anyhow::ensure!(
        args.data_dir.join("db").exists() || args.data_dir.join("conf").exists(),
        "{} holds no ieum store",
        args.data_dir.display()
    );
    let anchor = anchor(&args)?;
    let copy = if read_only || !writable(&args.data_dir) {
        let tmp = tempfile_dir()?;
        copy_dir(&args.data_dir, &tmp)
            .with_context(|| format!("copying {} to verify the copy", args.data_dir.display()))?;
        eprintln!(
            "verifying a copy of {} (read-only)",
            args.data_dir.display()
        );
        Some(tmp)
    } else {
        None
    };
    let dir = copy.clone().unwrap_or_else(|| args.data_dir.clone());
    let result = verify(&Location::Sled(dir), anchor);
    if let Some(tmp) = copy {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result
}

/// The master key opens the anchored head; without it the chain alone is checked.
fn anchor(args: &AuditArgs) -> anyhow::Result<Option<crate::audit::Anchor>> {
    load_anchor(
        &args.data_dir,
        args.master_key_file.as_deref(),
        args.master_key.as_deref(),
    )
}

/// The anchored head in `data_dir`, opened with the master key (`master_key` hex, else
/// `master_key_file`, else `<data_dir>/master.key`); `None` if there is no key.
pub(super) fn load_anchor(
    data_dir: &Path,
    master_key_file: Option<&Path>,
    master_key: Option<&str>,
) -> anyhow::Result<Option<crate::audit::Anchor>> {
    let key_file = master_key_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.join("master.key"));
    let key = if master_key.is_some() || key_file.exists() {
        Some(crate::crypto::load_master_key(master_key, &key_file)?)
    } else {
        None
    };
    Ok(key.map(|k| crate::audit::Anchor::in_dir(data_dir, k)))
}

/// Opens the store at `location` and walks the chain.
fn verify(location: &Location, anchor: Option<crate::audit::Anchor>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Off the runtime's thread: the PostgreSQL client blocks on a runtime of its own.
        let at = location.clone();
        let store = tokio::task::spawn_blocking(move || at.open(StoreOptions::default()))
            .await?
            .with_context(|| match location {
                Location::Sled(dir) => format!("opening the store in {}", dir.display()),
                other => format!("opening the store ({other})"),
            })?;
        let code = verify_store(&store, anchor.as_ref()).await?;
        store.shutdown().await?;
        anyhow::Ok(code)
    })
}

/// Walks the chain of an open store (and its anchored head, given the key), prints the
/// verdict and returns the exit code: what `ieum audit verify` says, for `ieum store copy`
/// too.
pub(super) async fn verify_store(
    store: &crate::store::Store,
    anchor: Option<&crate::audit::Anchor>,
) -> anyhow::Result<ExitCode> {
    let v = match anchor {
        Some(a) => crate::audit::verify_anchored(store, a).await?,
        None => {
            eprintln!("no master key: the anchored head is not checked");
            crate::audit::verify(store).await?
        }
    };
    Ok(match v.broken {
        None => {
            println!("audit log intact: {} records", v.records);
            ExitCode::SUCCESS
        }
        Some((seq, why)) => {
            println!(
                "audit log BROKEN at record {seq}: {why} ({} records verified before it{})",
                v.records,
                if v.missing > 0 {
                    format!("; {} missing", v.missing)
                } else {
                    String::new()
                }
            );
            ExitCode::FAILURE
        }
    })
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "ieum-audit-{}-{}",
        std::process::id(),
        crate::ids::now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
