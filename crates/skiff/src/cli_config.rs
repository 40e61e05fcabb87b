//! The command line's own settings, `~/.config/skiff/config.toml` (`$XDG_CONFIG_HOME`, or
//! the file `SKIFF_CLI_CONFIG` names): the daemon's URL and a token for it.
//!
//! ```toml
//! url = "http://127.0.0.1:8080"
//! token = "skt_..."
//! ```
//!
//! A daemon writes it at its first start, with the admin token it made, so that the
//! commands work at once. The file and its directory are its owner's only (0600, 0700).
//! The token goes to that URL only: a command pointed elsewhere (`--url`) sends it nowhere.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The variable that names the file instead.
pub const CONFIG_VAR: &str = "SKIFF_CLI_CONFIG";

/// The settings read from the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct CliConfig {
    /// The daemon's URL.
    pub url: Option<String>,
    /// A token for it.
    pub token: Option<String>,
}

/// Where the file is.
pub fn path() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os(CONFIG_VAR).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(file));
    }
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(dir.join("skiff").join("config.toml"))
}

/// The settings, if the file is there (a file that cannot be read is an error).
pub fn load() -> Result<CliConfig> {
    let Some(path) = path() else {
        return Ok(CliConfig::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("the CLI config {} is not valid", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(CliConfig::default()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Sets `url` and `token` in the file at `path`, keeping its other settings; the file is
/// written 0600 in a 0700 directory.
pub fn save(path: &Path, url: &str, token: &str) -> Result<()> {
    let mut table = match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse::<toml::Table>()
            .with_context(|| format!("the CLI config {} is not valid", path.display()))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    table.insert("url".into(), toml::Value::String(url.to_string()));
    table.insert("token".into(), toml::Value::String(token.to_string()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", dir.display()))?;
        }
    }
    write_private(path, table.to_string().as_bytes())
}

/// Writes `contents` to `path`, readable by its owner only (an existing file is tightened
/// first, then replaced).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The token a command sends to `url`: the one given (`--token`, `SKIFF_TOKEN`), else the
/// config file's, when the file names this URL (or none).
pub fn token_for(url: &str, given: Option<&str>, config: &CliConfig) -> Option<String> {
    if let Some(token) = given.filter(|t| !t.is_empty()) {
        return Some(token.to_string());
    }
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    match (&config.token, &config.url) {
        (Some(token), Some(for_url)) if same(for_url, url) => Some(token.clone()),
        (Some(token), None) => Some(token.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_to_its_own_daemon_only() {
        let config = CliConfig {
            url: Some("http://127.0.0.1:8080".into()),
            token: Some("skt_a".into()),
        };
        assert_eq!(
            token_for("http://127.0.0.1:8080/", None, &config).as_deref(),
            Some("skt_a")
        );
        assert_eq!(token_for("http://elsewhere:8080", None, &config), None);
        assert_eq!(
            token_for("http://elsewhere:8080", Some("skt_b"), &config).as_deref(),
            Some("skt_b")
        );
    }

    #[test]
    fn saving_keeps_other_settings_and_is_private() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/config.toml");
        save(&path, "http://a:1", "skt_1").expect("save");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("dir"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let text = std::fs::read_to_string(&path).expect("read") + "other = 1\n";
        std::fs::write(&path, text).expect("write");
        save(&path, "http://b:2", "skt_2").expect("save again");
        let text = std::fs::read_to_string(&path).expect("read");
        let config: CliConfig = toml::from_str(
            &text
                .lines()
                .filter(|l| !l.starts_with("other"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .expect("parse");
        assert_eq!(config.url.as_deref(), Some("http://b:2"));
        assert_eq!(config.token.as_deref(), Some("skt_2"));
        assert!(text.contains("other = 1"));
    }
}
