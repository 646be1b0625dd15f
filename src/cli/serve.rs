//! `ieum serve`: runs the service. Defaults are embedded so one command works from a
//! fresh clone: `127.0.0.1:8080`, sled in `./data`, the shipped rules and intents.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::RulePaths;
use crate::app::Settings;

/// Flags of `ieum serve` (each with an environment variable).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "IEUM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where sled keeps the transcripts (with the default `--store`), the master key file
    /// (unless `--master-key-file`/`--master-key`) and the audit head.
    #[arg(long, env = "IEUM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The store: `sled:<dir>` or `postgres://user@host/db` (also `postgresql://`).
    /// Default: sled in `--data-dir`.
    #[arg(long, env = "IEUM_STORE", hide_env_values = true)]
    pub store: Option<String>,
    /// Sites allowed to embed the widget (their origin, e.g. `https://example.org`); the
    /// service's own origin is always allowed. Repeat the flag or separate with commas.
    #[arg(
        long = "allow-origin",
        env = "IEUM_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,
    /// Citizen connections at most; past it, people are told to wait or call 109.
    #[arg(long, env = "IEUM_MAX_CITIZENS", default_value_t = 15_000)]
    pub max_citizens: usize,
    /// Open connections from one client address at most (citizens behind one NAT share an
    /// address: keep it generous).
    #[arg(long, env = "IEUM_MAX_PER_ADDRESS", default_value_t = 256)]
    pub max_per_address: usize,
    /// Mark the staff session cookie `Secure`: set it when the service is reached over
    /// HTTPS (ieum speaks plain HTTP; put a TLS-terminating proxy in front). A request with
    /// `X-Forwarded-Proto: https` gets a `Secure` cookie either way.
    #[arg(long, env = "IEUM_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// The master key file (created with a fresh key on first start). Default:
    /// `<data-dir>/master.key`; put it on another mount in production.
    #[arg(long, env = "IEUM_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself, 64 hex digits (overrides the file).
    #[arg(long, env = "IEUM_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Days a conversation is kept after it closed (or was last active).
    #[arg(long, env = "IEUM_RETENTION_DAYS", default_value_t = 180)]
    pub retention_days: u64,
    /// Per-citizen sustained message rate (messages per second; a token bucket). Raise it
    /// only for benchmarks that drive one connection faster than a person types.
    #[arg(long, env = "IEUM_RATE_PER_SECOND", default_value_t = 2.0)]
    pub rate_per_second: f64,
    /// Per-citizen burst (messages allowed at once before the sustained rate applies).
    #[arg(long, env = "IEUM_RATE_BURST", default_value_t = 10)]
    pub rate_burst: u32,
    /// On PostgreSQL: the primary lease's time to live, in milliseconds. A standby takes
    /// over within about a quarter of it after the primary crashes, and within it after
    /// the primary freezes or loses the database.
    #[arg(long, env = "IEUM_LEASE_TTL_MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(200..=600_000))]
    pub lease_ttl_ms: u64,
    /// On PostgreSQL: the `host:port` at which the other nodes reach this one (standbys
    /// forward people to the primary). Default: `--listen`, or, when it listens on all
    /// interfaces, the address the database sees this node connect from.
    #[arg(long, env = "IEUM_ADVERTISE")]
    pub advertise: Option<String>,
    #[command(flatten)]
    pub paths: RulePaths,
}

pub(super) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    raise_open_files_limit();
    let started = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = crate::store::Location::parse(args.store.as_deref(), &args.data_dir)?;
    runtime.block_on(async move {
        let mut settings = Settings {
            listen: args.listen,
            data_dir: args.data_dir,
            store: Some(store),
            rules: args.paths.rules,
            intents: args.paths.intents,
            ..Settings::defaults()
        };
        settings.gateway.allowed_origins = args.allow_origins;
        settings.gateway.max_citizens = args.max_citizens;
        settings.gateway.max_per_address = args.max_per_address;
        settings.gateway.secure_cookies = args.secure_cookies;
        settings.master_key = args.master_key;
        settings.master_key_file = args.master_key_file;
        settings.retention = std::time::Duration::from_secs(args.retention_days * 24 * 60 * 60);
        settings.gateway.limits.per_second = args.rate_per_second;
        settings.gateway.limits.burst = args.rate_burst;
        settings.lease_ttl = std::time::Duration::from_millis(args.lease_ttl_ms);
        settings.advertise = args.advertise;
        crate::node::run(settings, started).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Each connection is a file descriptor: lift the soft open-files limit to the hard one
/// (often 1,024 soft against a hard limit in the tens of thousands), so 10,000 citizens
/// can connect. Failure only logs: the service still runs with the limit it has.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                tracing::warn!(soft = old, "could not raise the open-files limit");
                return;
            }
        }
    }
    tracing::debug!(open_files = lim.rlim_cur, "open-files limit");
}

/// Logs go to stderr. Message text and tokens are never logged anywhere in ieum: handlers
/// log ids, codes and sizes only.
fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("IEUM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Some dependencies log frame and request contents at debug and trace level
    // (tungstenite: "Received message {...}"). Whatever IEUM_LOG says, they stay at info.
    for quiet in [
        "tungstenite",
        "tokio_tungstenite",
        "hyper",
        "hyper_util",
        "h2",
        "sled",
        "axum",
    ] {
        if let Ok(d) = format!("{quiet}=info").parse() {
            filter = filter.add_directive(d);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
