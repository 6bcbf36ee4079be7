//! Checkpoint signing keys on disk: a file holding the 32-byte Ed25519 seed in hex,
//! readable by its owner only.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

fn bad_key(file: &Path, reason: &str) -> Error {
    Error::Input { path: file.display().to_string(), line: 1, reason: reason.to_owned() }
}

/// Writes a new random key to `file` (which must not exist; mode 0600 on Unix) and
/// returns its public key (hex).
pub fn keygen(file: &Path) -> Result<String> {
    let io = |source| Error::Io { path: file.display().to_string(), source };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(file).map_err(io)?;
    writeln!(f, "{}", hex::encode(seed)).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(crate::core::checkpoint::public_key(&seed))
}

/// Reads the seed a key file holds.
pub fn read_seed(file: &Path) -> Result<[u8; 32]> {
    let text =
        std::fs::read_to_string(file).map_err(|source| Error::Io { path: file.display().to_string(), source })?;
    let bytes = hex::decode(text.trim())
        .map_err(|_| bad_key(file, "a key file holds 64 hex characters (from `dreamlog keygen`)"))?;
    bytes.try_into().map_err(|_| bad_key(file, "a key file holds 64 hex characters (from `dreamlog keygen`)"))
}
