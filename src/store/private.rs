//! The data directory is private: transcripts are mental-health data, and the store also
//! holds password hashes, sessions and the audit log. The directory is `0700` and every
//! file in it `0600`; the process creates files with a `077` umask so sled's new segment
//! files are private from their first byte. An existing directory with looser modes (an
//! older install) is tightened at start.

use std::path::Path;

/// Creates `dir` if needed and makes it and everything in it private to the service's
/// user; sets the process umask so that files created later are private too.
///
/// # Errors
/// The directory cannot be created or its modes cannot be set.
pub fn prepare_data_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // SAFETY: `umask` only sets the process's file-mode creation mask; it cannot fail
        // and touches no memory of ours.
        unsafe {
            libc::umask(0o077);
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_old_open_directory_is_made_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("db").join("conf"), b"x").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            dir.join("db").join("conf"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        prepare_data_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o700);
        assert_eq!(mode(&dir.join("db").join("conf")), 0o600);
        // New files are private from the start.
        std::fs::write(dir.join("new"), b"y").unwrap();
        assert_eq!(mode(&dir.join("new")) & 0o077, 0);
    }
}
