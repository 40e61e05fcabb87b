//! The `skiff-init` program embedded in skiff (see `init/main.rs` for what it does), and the
//! frame that carries a call's metadata to it.

use std::io;
use std::path::{Path, PathBuf};

/// The statically linked `skiff-init` binary.
pub const INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/skiff-init"));

/// Where `skiff-init` is mounted in containers.
pub const INIT_PATH_IN_CONTAINER: &str = "/.skiff/init";

/// Writes `skiff-init` under `dir` (once per distinct build) and returns its path, ready
/// to bind-mount. The file name carries a hash of the content, so daemons of different
/// versions sharing a directory never overwrite each other's file in use.
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let hash = binary_hash();
    let path = dir.join(format!("skiff-init-{hash}"));
    if std::fs::metadata(&path)
        .map(|m| m.len() == INIT_BINARY.len() as u64)
        .unwrap_or(false)
    {
        return Ok(path);
    }
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".skiff-init-{hash}.{}", std::process::id()));
    std::fs::write(&partial, INIT_BINARY)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// A hash of [`INIT_BINARY`] (FNV-1a, 16 hex digits): what names its copies, so that
/// skiffs of different versions never share one.
pub fn binary_hash() -> String {
    let hash = INIT_BINARY.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Encodes a call's environment as the frame `skiff-init` reads before it runs the function:
/// a little-endian u32 length, then NUL-separated `KEY=VALUE` entries. Entries holding a NUL
/// byte cannot be passed and are left out.
pub fn encode_frame<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in env {
        if key.contains('\0') || key.contains('=') || value.contains('\0') {
            continue;
        }
        body.extend_from_slice(key.as_bytes());
        body.push(b'=');
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_entries_and_drop_unpassable_ones() {
        let frame = encode_frame([("A", "1"), ("B", "x=y"), ("BAD", "nul\0byte"), ("C=D", "v")]);
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(&frame[4..], b"A=1\0B=x=y\0");
    }

    #[test]
    fn the_embedded_init_is_a_static_executable() {
        assert_eq!(&INIT_BINARY[..4], b"\x7fELF");
        let dir = tempfile::tempdir().expect("tempdir");
        let first = install(dir.path()).expect("install");
        let again = install(dir.path()).expect("install again");
        assert_eq!(first, again);
        assert_eq!(std::fs::read(&first).expect("read"), INIT_BINARY);
    }
}
