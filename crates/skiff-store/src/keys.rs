//! The keys that encrypt secrets at rest: function secrets and the secrets of access keys
//! are sealed with XChaCha20-Poly1305 (the `chacha20poly1305` crate) before they reach the
//! database, each ciphertext stored beside the id of the key that sealed it.
//!
//! A key is 32 random bytes, written as base64. Its id is derived from it (the first 8
//! bytes of a SHA-256 of the key, as hex), so daemons given the same key agree on its id
//! without asking each other. A daemon holds one or more keys ([`SecretKeys`]): from
//! `SKIFF_SECRET_KEY` (keys separated by commas) or else from the key file `secrets.key`
//! in its data directory (mode 0600, one key per line), which is made with one new key at
//! the first start. Every key held can open; which one seals is the store's choice (see
//! `secrets.rs`), so that daemons sharing a database seal with the same key.
//!
//! A sealed value is bound to what it belongs to (the function's name, the access key's
//! id) as associated data: a ciphertext copied to another row does not open.

use base64::Engine;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The key file in the data directory.
pub const KEY_FILE: &str = "secrets.key";
/// The environment variable that gives the keys instead of the key file.
pub const KEY_ENV: &str = "SKIFF_SECRET_KEY";
/// Bytes of a key.
const KEY_BYTES: usize = 32;
/// Bytes of a nonce.
const NONCE_BYTES: usize = 24;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why keys cannot be read, made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key that is not 32 bytes of base64.
    #[error("{source_name}: entry {index} is not a key (32 bytes, base64-encoded; `skiff secrets new-key` prints one)")]
    Malformed {
        /// Where it came from (the file or the variable).
        source_name: String,
        /// Its place, from 1.
        index: usize,
    },
    /// No key at all.
    #[error("{source_name} holds no key")]
    Empty {
        /// Where the keys were looked for.
        source_name: String,
    },
    /// The key file cannot be read or written.
    #[error("cannot {action} the key file {}: {source}", path.display())]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The system's random source failed.
    #[error("cannot draw a random key: {0}")]
    Random(String),
}

/// Where a daemon's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `SKIFF_SECRET_KEY`.
    Env,
    /// The key file.
    File(PathBuf),
    /// Made for this process only (tests, in-memory stores).
    Ephemeral,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => f.write_str(KEY_ENV),
            KeySource::File(path) => write!(f, "{}", path.display()),
            KeySource::Ephemeral => f.write_str("a key of this process only"),
        }
    }
}

/// One key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    bytes: [u8; KEY_BYTES],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself.
        f.debug_struct("Key").field("id", &self.id).finish()
    }
}

impl Key {
    fn new(bytes: [u8; KEY_BYTES]) -> Key {
        let mut hash = Sha256::new();
        hash.update(b"skiff secret key id\0");
        hash.update(bytes);
        let digest = hash.finalize();
        let id = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Key { id, bytes }
    }

    fn random() -> Result<Key, KeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Key::new(bytes))
    }

    fn encoded(&self) -> String {
        B64.encode(self.bytes)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }
}

/// A value sealed by a key: the key's id, and base64 of nonce and ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key: String,
    /// base64 of the nonce followed by the ciphertext and its tag.
    pub text: String,
}

/// Why a sealed value does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed by a key this daemon does not hold.
    #[error("it is encrypted with key {0}, which this daemon does not hold")]
    UnknownKey(String),
    /// Not what the key sealed for this row (altered, moved, or not base64).
    #[error("it does not decrypt with key {0}: altered, or not this row's")]
    Corrupt(String),
}

/// The keys a daemon holds; the first is the one it offers to seal with.
#[derive(Debug, Clone)]
pub struct SecretKeys {
    keys: Vec<Key>,
    source: KeySource,
}

impl SecretKeys {
    /// One new random key, held by this process only.
    pub fn ephemeral() -> Result<SecretKeys, KeyError> {
        Ok(SecretKeys {
            keys: vec![Key::random()?],
            source: KeySource::Ephemeral,
        })
    }

    /// The keys of `SKIFF_SECRET_KEY` when it is set (and not empty), else those of the key
    /// file in `data_dir`, which is made with a new key when missing.
    pub fn load(env: Option<&str>, data_dir: &Path) -> Result<SecretKeys, KeyError> {
        match env.map(str::trim).filter(|v| !v.is_empty()) {
            Some(value) => SecretKeys::parse(value, KeySource::Env),
            None => SecretKeys::from_file(&data_dir.join(KEY_FILE)),
        }
    }

    /// The keys of the key file at `path`, made with one new key when it does not exist.
    pub fn from_file(path: &Path) -> Result<SecretKeys, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => SecretKeys::parse(&text, KeySource::File(path.to_path_buf())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let keys = SecretKeys {
                    keys: vec![Key::random()?],
                    source: KeySource::File(path.to_path_buf()),
                };
                keys.save()?;
                tracing::info!(file = %path.display(), key = keys.keys[0].id, "made a new key for secrets at rest");
                Ok(keys)
            }
            Err(source) => Err(KeyError::File {
                action: "read",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Keys written as base64, separated by commas, white space or lines; `#` starts a
    /// comment to the end of its line.
    pub fn parse(text: &str, source: KeySource) -> Result<SecretKeys, KeyError> {
        let mut keys: Vec<Key> = Vec::new();
        let words = text
            .lines()
            .map(|line| line.split('#').next().unwrap_or(""))
            .flat_map(|line| line.split([',', ' ', '\t']))
            .filter(|word| !word.is_empty());
        for (index, word) in words.enumerate() {
            let malformed = || KeyError::Malformed {
                source_name: source.to_string(),
                index: index + 1,
            };
            let bytes = B64.decode(word).map_err(|_| malformed())?;
            let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| malformed())?;
            let key = Key::new(bytes);
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(KeyError::Empty {
                source_name: source.to_string(),
            });
        }
        Ok(SecretKeys { keys, source })
    }

    /// A new key, as base64 (what `SKIFF_SECRET_KEY` and the key file hold), and its id.
    pub fn new_key() -> Result<(String, String), KeyError> {
        let key = Key::random()?;
        Ok((key.encoded(), key.id))
    }

    /// Where the keys came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The ids of the keys held, the first first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// The id of the first key.
    pub fn first(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Whether the key `id` is held.
    pub fn holds(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    fn key(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Seals `plaintext` with key `id`, bound to `context`; `None` when the key is not held.
    pub fn seal(&self, id: &str, context: &str, plaintext: &[u8]) -> Option<Sealed> {
        let key = self.key(id)?;
        let nonce = XNonce::generate();
        let sealed = key
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .ok()?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Some(Sealed {
            key: key.id.clone(),
            text: B64.encode(bytes),
        })
    }

    /// Opens what [`SecretKeys::seal`] sealed for `context`.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>, OpenError> {
        let key = self
            .key(&sealed.key)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key.clone()))?;
        let corrupt = || OpenError::Corrupt(sealed.key.clone());
        let bytes = B64.decode(&sealed.text).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_BYTES {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| corrupt())?;
        key.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| corrupt())
    }

    /// A new key, added first. Only for keys from the key file, which is rewritten; its id.
    pub fn add_new_key(&mut self) -> Result<String, KeyError> {
        let key = Key::random()?;
        let id = key.id.clone();
        self.keys.insert(0, key);
        self.save()?;
        Ok(id)
    }

    /// Keeps only the keys `keep` names, in their order (the key file is rewritten when the
    /// keys come from it). A key is never dropped when that would leave none.
    pub fn retain(&mut self, keep: &[String]) -> Result<Vec<String>, KeyError> {
        let (kept, dropped): (Vec<Key>, Vec<Key>) =
            self.keys.drain(..).partition(|k| keep.contains(&k.id));
        if kept.is_empty() {
            self.keys = dropped;
            return Ok(Vec::new());
        }
        self.keys = kept;
        if !dropped.is_empty() {
            self.save()?;
        }
        Ok(dropped.into_iter().map(|k| k.id).collect())
    }

    /// Writes the key file (keys from elsewhere are not written): to a temporary file of
    /// mode 0600 beside it, synced, then renamed over it.
    fn save(&self) -> Result<(), KeyError> {
        let KeySource::File(path) = &self.source else {
            return Ok(());
        };
        let error = |source| KeyError::File {
            action: "write",
            path: path.clone(),
            source,
        };
        let mut text = String::from(
            "# skiff's keys for secrets at rest (XChaCha20-Poly1305): base64, one a line.\n\
             # Keep this file private and backed up: the store's secrets cannot be read without it.\n",
        );
        for key in &self.keys {
            text.push_str(&format!("{}  # id {}\n", key.encoded(), key.id));
        }
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(error)?;
        file.write_all(text.as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&temporary, path).map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_values_open_with_their_key_and_context_only() {
        let keys = SecretKeys::ephemeral().expect("keys");
        let id = keys.first().to_string();
        assert_eq!(id.len(), 16, "{id}");
        let sealed = keys.seal(&id, "function a", b"hunter2").expect("seal");
        assert_eq!(sealed.key, id);
        assert!(!sealed.text.contains("hunter2"));
        assert_eq!(keys.open(&sealed, "function a").expect("open"), b"hunter2");
        // Another row's ciphertext, an altered one, another daemon's key: refused.
        assert_eq!(
            keys.open(&sealed, "function b"),
            Err(OpenError::Corrupt(id.clone()))
        );
        let mut altered = sealed.clone();
        altered.text.replace_range(40..41, "A");
        altered.text.replace_range(41..42, "B");
        assert!(keys.open(&altered, "function a").is_err());
        let other = SecretKeys::ephemeral().expect("other");
        assert_eq!(
            other.open(&sealed, "function a"),
            Err(OpenError::UnknownKey(id.clone()))
        );
        // Two seals of one value differ (a random nonce each).
        assert_ne!(keys.seal(&id, "function a", b"hunter2"), Some(sealed));
        assert!(keys.seal("0000", "x", b"y").is_none());
    }

    #[test]
    fn the_key_file_is_made_private_at_first_and_read_back_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = SecretKeys::load(None, dir.path()).expect("made");
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SecretKeys::load(Some("  "), dir.path()).expect("read");
        assert_eq!(again.ids(), keys.ids());
        assert_eq!(again.source(), &KeySource::File(path.clone()));

        let mut rotated = again.clone();
        let new = rotated.add_new_key().expect("add");
        let read = SecretKeys::from_file(&path).expect("read");
        assert_eq!(read.ids(), vec![new.clone(), keys.first().to_string()]);
        assert_eq!(
            rotated.retain(std::slice::from_ref(&new)).expect("retain"),
            vec![keys.first().to_string()]
        );
        assert_eq!(SecretKeys::from_file(&path).expect("read").ids(), vec![new]);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn keys_from_the_environment_win_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, a_id) = SecretKeys::new_key().expect("a");
        let (b, b_id) = SecretKeys::new_key().expect("b");
        let keys = SecretKeys::load(Some(&format!("{a}, {b}")), dir.path()).expect("env");
        assert_eq!(keys.ids(), vec![a_id, b_id]);
        assert_eq!(keys.source(), &KeySource::Env);
        assert!(!dir.path().join(KEY_FILE).exists(), "no file made");
        let err = SecretKeys::load(Some(&format!("{a},c2hvcnQ=")), dir.path()).expect_err("short");
        assert_eq!(
            err.to_string(),
            "SKIFF_SECRET_KEY: entry 2 is not a key (32 bytes, base64-encoded; `skiff secrets new-key` prints one)"
        );
        assert!(!format!("{keys:?}").contains(&a), "Debug never shows a key");
    }
}
