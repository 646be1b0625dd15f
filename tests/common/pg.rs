//! A PostgreSQL server for one test, in a temporary directory (`initdb`, `pg_ctl`; as the
//! `postgres` user when the tests run as root) on a free loopback port, stopped when
//! dropped. Where the binaries are missing (`IEUM_PG_BIN`, else
//! `/usr/lib/postgresql/*/bin`), [`Pg::start`] prints why and returns `None`, except under
//! `CI=true`, where it panics: `.ci/run` installs Debian's `postgresql`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::free_port;

/// A running PostgreSQL in a temporary directory; stopped (immediately) when dropped.
pub struct Pg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Run the server's commands as this user (the tests run as root; PostgreSQL refuses).
    user: Option<&'static str>,
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
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.path().display()
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
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
