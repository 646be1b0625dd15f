//! A PostgreSQL server for one test, in a temporary directory (`initdb`, `pg_ctl`; as the
//! `postgres` user when the tests run as root) on a free loopback port, stopped when
//! dropped. Where the binaries are missing (`IEUM_PG_BIN`, else
//! `/usr/lib/postgresql/*/bin`), [`Pg::start`] prints why and returns `None`, except under
//! `CI=true`, where it panics: `.ci/run` installs Debian's `postgresql`.
//!
//! With `IEUM_TEST_STORE=postgres` the black-box tests boot their apps on one server per
//! test binary ([`database_for`]), one database per app.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::free_port;

/// A running PostgreSQL in a temporary directory; stopped (immediately) when dropped.
pub struct Pg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the server's commands as this user (the tests run as root; PostgreSQL refuses).
    user: Option<&'static str>,
    /// Server settings (`-c name=value`) on top of PostgreSQL's defaults.
    settings: Vec<String>,
}

pub fn pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("IEUM_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

impl Pg {
    /// Starts a fresh server, or says why it cannot (a failure under `CI=true`).
    pub fn start() -> Option<Pg> {
        Pg::start_with(&[])
    }

    /// As [`Pg::start`], with these server settings (`name=value`) on top of the defaults.
    pub fn start_with(settings: &[&str]) -> Option<Pg> {
        let Some(bin) = pg_bin().filter(|b| b.join("initdb").exists()) else {
            let why = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; \
                       apt-get install -y postgresql, or set IEUM_PG_BIN)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: the PostgreSQL tests must run: {why}"
            );
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let user = root.then_some("postgres");
        if let Some(u) = user {
            let ok = Command::new("chown")
                .args(["-R", &format!("{u}:"), dir.path().to_str().unwrap()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the PostgreSQL directory to {u}");
        }
        let pg = Pg {
            bin,
            dir,
            port: free_port(),
            user,
            settings: settings.iter().map(|s| format!(" -c {s}")).collect(),
        };
        pg.run(
            "initdb",
            &[
                "-D",
                pg.data().to_str().unwrap(),
                "-U",
                "ieum",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_again();
        Some(pg)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("pgdata")
    }

    pub fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = match self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    pub fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again, after [`Pg::stop`]) on the same port and data.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}{}",
            self.port,
            self.dir.path().display(),
            self.settings.concat()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server, disconnecting every client (`-m fast`).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// Creates database `name` and returns its URL.
    pub fn database(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "ieum",
                name,
            ],
        );
        format!("postgres://ieum@127.0.0.1:{}/{name}", self.port)
    }
    /// The command that stops the server at once (`-m immediate`), whoever runs it.
    fn stop_now(&self) -> Command {
        let mut cmd = self.command("pg_ctl");
        cmd.args([
            "-D",
            self.data().to_str().unwrap(),
            "-m",
            "immediate",
            "stop",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        cmd
    }

    /// The directory holding the server's files (its data directory, `pgdata`, and log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.stop_now().status();
    }
}

// ---------------------------------------------------------------------------------------
// The server shared by a test binary's apps (`IEUM_TEST_STORE=postgres`).

/// Started by the first app that needs it; stopped when the process exits.
static SHARED: OnceLock<Pg> = OnceLock::new();

/// The test binary's server. Its settings skip `fsync` (nothing here survives a crash of
/// the machine; `tests/postgres.rs` tests durability on a server with the defaults) and
/// allow more connections than the default 100 (each app holds a writer and up to
/// [`ieum::store::postgres_backend::DEFAULT_READERS`] readers).
///
/// # Panics
/// Where PostgreSQL is not installed: the tests were asked to run on it.
fn shared() -> &'static Pg {
    SHARED.get_or_init(|| {
        let pg = Pg::start_with(&["fsync=off", "max_connections=300"])
            .expect("IEUM_TEST_STORE=postgres: the tests run on PostgreSQL, which is missing");
        // Statics are never dropped: stop the server when the process exits normally
        // (`exit` runs this hook, also after a failed test), ...
        // SAFETY: `stop_shared` is a plain function that neither unwinds nor registers
        // hooks.
        unsafe { libc::atexit(stop_shared) };
        // ... and from a watchdog when it is killed (a timeout, ^C).
        watchdog(&pg);
        pg
    })
}

extern "C" fn stop_shared() {
    if let Some(pg) = SHARED.get() {
        let _ = pg.stop_now().status();
        let _ = std::fs::remove_dir_all(pg.dir());
    }
}

/// A shell, in its own process group so ^C spares it, that waits for this process to end
/// and then stops the server and removes its directory (both already done after a normal
/// exit).
fn watchdog(pg: &Pg) {
    let stop = pg.stop_now();
    let script = r#"while kill -0 "$0" 2>/dev/null; do sleep 1; done; "$@"; rm -rf "$IEUM_PG_DIR""#;
    let spawned = Command::new("sh")
        .args(["-c", script])
        .arg(std::process::id().to_string())
        .arg(stop.get_program())
        .args(stop.get_args())
        .env("IEUM_PG_DIR", pg.dir())
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("no watchdog for the test PostgreSQL ({e}): a killed test run leaves it running");
    }
}

/// A database of the shared server.
#[derive(Clone)]
struct Database {
    url: String,
    /// Its directory in the server's data directory (`base/<oid>`).
    dir: PathBuf,
}

/// The database of the app whose data directory is `data`, created on first use.
fn database(data: &Path) -> Database {
    static DATABASES: Mutex<BTreeMap<PathBuf, Database>> = Mutex::new(BTreeMap::new());
    let mut databases = DATABASES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(db) = databases.get(data) {
        return db.clone();
    }
    let pg = shared();
    let name = format!("app{}", databases.len() + 1);
    let port = pg.port.to_string();
    let server = ["-h", "127.0.0.1", "-p", &port, "-U", "ieum"];
    // FILE_COPY, unlike the default, writes no copy of the template to the write-ahead
    // log, which then holds only what the apps wrote (see `database_files`).
    pg.run(
        "createdb",
        &[&server[..], &["-S", "file_copy", &name]].concat(),
    );
    let query = format!("SELECT oid FROM pg_database WHERE datname = '{name}'");
    let out = pg
        .command("psql")
        .args(server)
        .args(["-XtA", "-d", "postgres", "-c", &query])
        .stdin(Stdio::null())
        .output()
        .expect("psql runs");
    let oid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && oid.parse::<u32>().is_ok(),
        "the oid of {name}: {oid} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = Database {
        url: format!("postgres://ieum@127.0.0.1:{port}/{name}"),
        dir: pg.data().join("base").join(oid),
    };
    databases.insert(data.to_path_buf(), db.clone());
    db
}

/// The URL of the database of the app whose data directory is `data`, on the test
/// binary's server (started on first use): a fresh database for a new directory, the same
/// one when an app boots again on a directory. Blocking (`createdb`).
pub fn database_for(data: &Path) -> String {
    database(data).url
}

/// The directories holding the bytes of the database of `data` ([`database_for`]): its
/// own, and the server's write-ahead log (where a commit is written first).
pub fn database_files(data: &Path) -> Vec<PathBuf> {
    vec![database(data).dir, shared().data().join("pg_wal")]
}
