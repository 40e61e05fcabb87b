//! The tally in the volume: `tally.json` in the data folder, `{"counts": {choice: n},
//! "recent_calls": [call id, ...]}`.
//!
//! Workers update it under an exclusive lock (`flock` on `.lock`, next to it), write the new
//! version to a temporary file and rename it over the old one: concurrent workers never
//! lose a vote, and a reader (the result function, on a read-only mount, without the lock)
//! always sees a whole file. Async calls are delivered at least once, so the ids of the
//! last calls applied are kept, and a call seen again is not counted twice.

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file holding the tally.
pub const TALLY_FILE: &str = "tally.json";
const LOCK_FILE: &str = ".lock";
/// How many call ids are remembered to drop repeated deliveries.
const RECENT_CALLS: usize = 1000;

/// The tally as stored.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Votes per choice.
    pub counts: BTreeMap<String, u64>,
    /// Ids of the last calls counted, oldest first.
    #[serde(default)]
    pub recent_calls: VecDeque<String>,
}

/// Why a vote was not counted.
#[derive(Debug)]
pub enum TallyError {
    /// The folder or a file in it could not be used.
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The tally file is not a tally.
    Corrupt(String),
}

impl std::fmt::Display for TallyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TallyError::Io { what, source } => write!(f, "{what}: {source}"),
            TallyError::Corrupt(message) => write!(f, "the tally is corrupt: {message}"),
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TallyError {
    let what = what.into();
    move |source| TallyError::Io { what, source }
}

/// Reads the tally in `dir` (empty when there is none yet).
pub fn read(dir: &Path) -> Result<Tally, TallyError> {
    let path = dir.join(TALLY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| TallyError::Corrupt(e.to_string())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Tally::default()),
        Err(err) => Err(io(format!("reading {}", path.display()))(err)),
    }
}

/// The exclusive lock of the tally, held until dropped.
struct Lock(File);

impl Lock {
    fn take(dir: &Path) -> Result<Lock, TallyError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| io(format!("locking {}", path.display()))(e.into()))?;
        Ok(Lock(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = flock(&self.0, FlockOperation::Unlock);
    }
}

/// Adds one vote for `choice`, made by call `call_id` (if known), to the tally in `dir`.
/// Returns the new tally; a call already counted changes nothing.
pub fn add(dir: &Path, choice: &str, call_id: Option<&str>) -> Result<Tally, TallyError> {
    let _lock = Lock::take(dir)?;
    let mut tally = read(dir)?;
    if let Some(id) = call_id {
        if tally.recent_calls.iter().any(|seen| seen == id) {
            return Ok(tally);
        }
        tally.recent_calls.push_back(id.to_string());
        while tally.recent_calls.len() > RECENT_CALLS {
            tally.recent_calls.pop_front();
        }
    }
    *tally.counts.entry(choice.to_string()).or_insert(0) += 1;
    write(dir, &tally)?;
    Ok(tally)
}

/// Replaces the tally: a temporary file, synced, then renamed over the old one.
fn write(dir: &Path, tally: &Tally) -> Result<(), TallyError> {
    let temp: PathBuf = dir.join(format!("{TALLY_FILE}.tmp"));
    let bytes = serde_json::to_vec(tally).map_err(|e| TallyError::Corrupt(e.to_string()))?;
    let mut file = File::create(&temp).map_err(io(format!("creating {}", temp.display())))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", temp.display())))?;
    let path = dir.join(TALLY_FILE);
    std::fs::rename(&temp, &path).map_err(io(format!("renaming to {}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_votes_are_all_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let choice = if (t + i) % 3 == 0 { "cats" } else { "dogs" };
                        add(&dir, choice, Some(&format!("{t}-{i}"))).expect("counted");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("joined");
        }
        let tally = read(dir.path()).expect("read");
        assert_eq!(tally.counts.values().sum::<u64>(), 200);
        let cats = (0..8)
            .flat_map(|t| (0..25).map(move |i| (t + i) % 3 == 0))
            .filter(|c| *c)
            .count() as u64;
        assert_eq!(tally.counts["cats"], cats);
    }

    #[test]
    fn a_call_delivered_twice_counts_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        add(dir.path(), "cats", Some("call-1")).expect("counted");
        let tally = add(dir.path(), "cats", Some("call-1")).expect("seen");
        assert_eq!(tally.counts["cats"], 1);
        let tally = add(dir.path(), "cats", None).expect("counted");
        assert_eq!(tally.counts["cats"], 2);
    }

    #[test]
    fn no_tally_yet_reads_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), Tally::default());
        std::fs::write(dir.path().join(TALLY_FILE), b"nonsense").expect("write");
        assert!(matches!(read(dir.path()), Err(TallyError::Corrupt(_))));
    }
}
