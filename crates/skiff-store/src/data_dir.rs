//! The daemon's data directory: private to the user that runs skiff, and used by one daemon
//! at a time.
//!
//! The store holds secrets (a function's `secrets`, call payloads), and SQLite writes them
//! to `skiff.db`, `skiff.db-wal` and `skiff.db-shm`. [`DataDir::open`] creates the directory
//! with mode 0700 and tightens it when it is looser; [`private_file`] does the same with mode
//! 0600 for the store's files. Files under `bin/` keep their own modes: `skiff-init` must stay
//! readable and executable, for it runs in containers as whatever user the image names (the
//! engine, as root, reaches it through the 0700 directory to bind-mount it).
//!
//! Two daemons on one directory would share its store and its daemon id, and each would
//! remove the other's containers as its own leftovers. [`DataDir::open`] therefore takes an
//! exclusive `flock` on `skiff.lock` in it, held as long as the [`DataDir`] lives (the
//! process's life, for the daemon); the file names the holder's pid for the error that a
//! second daemon gets. The kernel drops the lock when the process ends, however it ends.
//!
//! A copy of the directory (a backup restored beside the original, a second install made
//! with `cp -a`) has a lock of its own, but the same store, so the same daemon id. Its
//! [`DataDir::identity`] (canonical path, device and inode) tells it apart: the store binds
//! the daemon id to it ([`crate::Store::bind_daemon_id`]) and draws a new id for a copy.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The store's file in the data directory.
pub const STORE_FILE: &str = "skiff.db";
/// The lock file in the data directory.
pub const LOCK_FILE: &str = "skiff.lock";
/// Mode of the data directory.
const DIR_MODE: u32 = 0o700;
/// Mode of the files in it.
const FILE_MODE: u32 = 0o600;

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// The directory cannot be created or read.
    #[error("cannot create the data directory {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A file or the directory cannot be made private to its owner.
    #[error("cannot make {path} private to its owner (mode {mode:o}): {source}")]
    Permissions {
        /// The file or directory.
        path: PathBuf,
        /// The mode it should have.
        mode: u32,
        /// What the system said.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("another skiff daemon ({holder}) is using {path}")]
    InUse {
        /// The directory.
        path: PathBuf,
        /// `pid N`, as the lock file says.
        holder: String,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// The data directory, ready for the daemon: created, private, and locked for as long as
/// this value lives.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    identity: String,
    _lock: File,
}

impl DataDir {
    /// Creates `path` (mode 0700; its missing parents get the usual mode) or, when it exists
    /// with a looser mode, restricts it to its owner; then locks it, or fails with
    /// [`DataDirError::InUse`] if another process (or another `DataDir`) holds it.
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        let create = |source| DataDirError::Create {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(create)?;
        }
        match DirBuilder::new().mode(DIR_MODE).create(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(err) => return Err(create(err)),
        }
        restrict(path, DIR_MODE).map_err(|source| DataDirError::Permissions {
            path: path.to_path_buf(),
            mode: DIR_MODE,
            source,
        })?;
        let lock = lock(path)?;
        let identity = identity(path).map_err(create)?;
        Ok(DataDir {
            path: path.to_path_buf(),
            identity,
            _lock: lock,
        })
    }

    /// What this directory is, as no copy of it can be: its canonical path, device and
    /// inode (`/var/lib/skiff (device 2049, inode 1234)`).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the store lives in it.
    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_FILE)
    }
}

/// The identity of directory `path`: canonical path, device, inode.
fn identity(path: &Path) -> io::Result<String> {
    let canonical = std::fs::canonicalize(path)?;
    let metadata = std::fs::metadata(&canonical)?;
    Ok(format!(
        "{} (device {}, inode {})",
        canonical.display(),
        metadata.dev(),
        metadata.ino()
    ))
}

/// Takes the exclusive lock of the data directory `dir`, and writes this process's id in
/// the lock file.
fn lock(dir: &Path) -> Result<File, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let error = |source| DataDirError::Lock {
        path: path.clone(),
        source,
    };
    private_file(&path).map_err(error)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(error)?;
    use rustix::fs::{flock, FlockOperation};
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
            let mut text = String::new();
            // The holder writes its pid just after it locks: an empty file is possible.
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "pid unknown".to_string(),
            };
            return Err(DataDirError::InUse {
                path: dir.to_path_buf(),
                holder,
            });
        }
        Err(errno) => return Err(error(errno.into())),
    }
    file.set_len(0).map_err(error)?;
    writeln!(file, "{}", std::process::id()).map_err(error)?;
    Ok(file)
}

/// Takes group and other permissions away from `path` if it has any (so a stricter mode set
/// by hand stays), and says so.
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        std::fs::set_permissions(path, Permissions::from_mode(mode))?;
        tracing::warn!(
            path = %path.display(),
            was = format!("{current:o}"),
            now = format!("{mode:o}"),
            "made private to its owner"
        );
    }
    Ok(())
}

/// Makes `path` a file only its owner can read and write: creates it empty with mode 0600
/// when missing, tightens it when it exists with a looser mode.
pub(crate) fn private_file(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    restrict(path, FILE_MODE)
}

/// Tightens `path` if it exists; nothing when it does not.
pub(crate) fn private_if_present(path: &Path) -> io::Result<()> {
    match restrict(path, FILE_MODE) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn a_new_data_directory_is_private_and_its_parents_are_not_changed() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(root.path(), Permissions::from_mode(0o755)).expect("chmod");
        let path = root.path().join("share/skiff");
        let dir = DataDir::open(&path).expect("open");
        assert_eq!(dir.path(), path);
        assert_eq!(dir.store_path(), path.join("skiff.db"));
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(root.path()), 0o755);
    }

    #[test]
    fn a_loose_directory_and_files_are_tightened_and_stricter_ones_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(root.path(), Permissions::from_mode(0o755)).expect("chmod");
        DataDir::open(root.path()).expect("open");
        assert_eq!(mode(root.path()), 0o700);

        let loose = root.path().join("skiff.db");
        std::fs::write(&loose, b"x").expect("write");
        std::fs::set_permissions(&loose, Permissions::from_mode(0o644)).expect("chmod");
        private_file(&loose).expect("private");
        assert_eq!(mode(&loose), 0o600);
        assert_eq!(std::fs::read(&loose).expect("read"), b"x", "content kept");

        let strict = root.path().join("skiff.db-wal");
        std::fs::write(&strict, b"").expect("write");
        std::fs::set_permissions(&strict, Permissions::from_mode(0o400)).expect("chmod");
        private_if_present(&strict).expect("private");
        assert_eq!(mode(&strict), 0o400);
        private_if_present(&root.path().join("skiff.db-shm")).expect("absent is fine");
        assert!(!root.path().join("skiff.db-shm").exists());

        let fresh = root.path().join("new.db");
        private_file(&fresh).expect("create");
        assert_eq!(mode(&fresh), 0o600);
    }

    #[test]
    fn one_holder_at_a_time_and_the_error_names_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let first = DataDir::open(root.path()).expect("first");
        let lock = root.path().join(LOCK_FILE);
        assert_eq!(mode(&lock), 0o600);
        assert_eq!(
            std::fs::read_to_string(&lock).expect("lock file"),
            format!("{}\n", std::process::id())
        );
        // flock locks belong to an open file: a second open in this process is refused too.
        let err = DataDir::open(root.path()).expect_err("held");
        assert!(matches!(err, DataDirError::InUse { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "another skiff daemon (pid {}) is using {}",
                std::process::id(),
                root.path().display()
            )
        );
        drop(first);
        let again = DataDir::open(root.path()).expect("free once the holder is gone");
        drop(again);
    }

    #[test]
    fn the_identity_is_stable_and_a_copy_has_another() {
        let root = tempfile::tempdir().expect("tempdir");
        let original = root.path().join("skiff");
        let first = DataDir::open(&original)
            .expect("open")
            .identity()
            .to_string();
        let canonical = std::fs::canonicalize(&original).expect("canonical");
        assert!(
            first.starts_with(&format!("{} (device ", canonical.display())),
            "{first}"
        );
        // Through another spelling of the same path: the same directory.
        let again = DataDir::open(&root.path().join("./skiff/")).expect("reopen");
        assert_eq!(again.identity(), first);
        drop(again);
        let copy = DataDir::open(&root.path().join("copy")).expect("copy");
        assert_ne!(copy.identity(), first);
    }

    #[test]
    fn a_file_in_the_way_is_an_error_naming_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = root.path().join("not-a-dir");
        std::fs::write(&file, b"").expect("write");
        let err = DataDir::open(&file).expect_err("a file");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
