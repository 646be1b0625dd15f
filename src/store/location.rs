//! Where the store lives: `--store sled:<dir>` (the default, next to the master key) or
//! `--store postgres://…`. Parsed once at the edge, so the rest of ieum opens a
//! [`Location`] and never looks at strings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::{Backend, StoreError};
use super::handle::{Store, StoreOptions};
use super::lease::{DEFAULT_TTL, Lease, node_name};
use super::postgres_backend::{PostgresBackend, is_postgres_url};
use super::sled_backend::SledBackend;

/// A store to open.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// sled in this directory.
    Sled(PathBuf),
    /// A PostgreSQL database, by URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// For logs and errors: never the URL, which may carry a password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sled(dir) => write!(f, "sled:{}", dir.display()),
            Location::Postgres(_) => f.write_str("the PostgreSQL database (--store)"),
        }
    }
}

/// `--store` was neither `sled:<dir>` nor a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--store must be `sled:<dir>` or `postgres://…` (or `postgresql://…`)")]
pub struct BadLocation;

impl Location {
    /// Parses `--store`. `None` (the flag not given) is sled in `data_dir`, as before the
    /// flag existed.
    ///
    /// # Errors
    /// [`BadLocation`] for any other form, or `sled:` with no directory.
    pub fn parse(store: Option<&str>, data_dir: &Path) -> Result<Location, BadLocation> {
        match store {
            None => Ok(Location::Sled(data_dir.to_path_buf())),
            Some(s) if is_postgres_url(s) => Ok(Location::Postgres(s.to_owned())),
            Some(s) => match s.strip_prefix("sled:") {
                Some(dir) if !dir.is_empty() => Ok(Location::Sled(PathBuf::from(dir))),
                _ => Err(BadLocation),
            },
        }
    }

    /// Opens the store. Blocking (sled reads its log; Postgres connects and migrates):
    /// call it off the async threads.
    ///
    /// # Errors
    /// As [`Store::open_sled`] and [`PostgresBackend::open`].
    pub fn open(&self, options: StoreOptions) -> Result<Store, StoreError> {
        self.open_primary(options, None, DEFAULT_TTL)
    }

    /// [`Location::open`]; on PostgreSQL with `lease` (taken by a standby that waited for
    /// it), or else taking the primary lease once (living `ttl`): [`StoreError::Busy`]
    /// while a node is the primary. Every write of the store is fenced by the lease (see
    /// [`super::lease`]), and the store's shutdown releases it.
    ///
    /// # Errors
    /// As [`Location::open`].
    pub fn open_primary(
        &self,
        options: StoreOptions,
        lease: Option<Lease>,
        ttl: std::time::Duration,
    ) -> Result<Store, StoreError> {
        match self {
            Location::Sled(dir) => Store::open_sled(dir, options),
            Location::Postgres(url) => Store::with_options(
                Arc::new(match lease {
                    Some(lease) => PostgresBackend::open_with_lease(url, lease)?,
                    None => PostgresBackend::open_primary(url, &node_name(), ttl)?,
                }),
                options,
            ),
        }
    }

    /// Opens the bare backend, without a [`Store`] over it (`ieum store copy`). Blocking,
    /// as [`Location::open`]; sled waits at most `lock_wait` for its directory's lock.
    ///
    /// # Errors
    /// As [`SledBackend::open`](super::SledBackend::open) and [`PostgresBackend::open`];
    /// [`StoreError::Busy`] while another process (a running `ieum serve`) holds the store.
    pub fn open_backend(
        &self,
        lock_wait: std::time::Duration,
    ) -> Result<Arc<dyn Backend>, StoreError> {
        Ok(match self {
            Location::Sled(dir) => Arc::new(SledBackend::open_waiting(
                dir,
                super::sled_backend::DEFAULT_CACHE_BYTES,
                lock_wait,
            )?),
            Location::Postgres(url) => Arc::new(PostgresBackend::open_primary(
                url,
                &node_name(),
                DEFAULT_TTL,
            )?),
        })
    }

    /// Whether this is the PostgreSQL store.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let data = Path::new("data");
        assert_eq!(
            Location::parse(None, data),
            Ok(Location::Sled("data".into()))
        );
        assert_eq!(
            Location::parse(Some("sled:/var/lib/ieum"), data),
            Ok(Location::Sled("/var/lib/ieum".into()))
        );
        assert!(
            Location::parse(Some("postgres://a:b@h/db"), data)
                .unwrap()
                .is_postgres()
        );
        assert!(
            Location::parse(Some("postgresql://h/db"), data)
                .unwrap()
                .is_postgres()
        );
        assert_eq!(Location::parse(Some("sled:"), data), Err(BadLocation));
        assert_eq!(
            Location::parse(Some("mysql://h/db"), data),
            Err(BadLocation)
        );
    }

    #[test]
    fn display_hides_the_url() {
        let l = Location::Postgres("postgres://u:secret@h/db".into());
        assert!(!format!("{l} {l:?}").contains("secret"));
    }
}
