//! The files of the PKI: in memory until every one is ready, then written one by one.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::PkiError;

/// A file to write: its name inside the output directory, its bytes, and whether it is secret.
pub(super) struct OutFile {
    pub(super) name: String,
    pub(super) contents: Vec<u8>,
    pub(super) secret: bool,
}

impl OutFile {
    pub(super) fn public(name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            contents: contents.into(),
            secret: false,
        }
    }

    pub(super) fn secret(name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            contents: contents.into(),
            secret: true,
        }
    }
}

/// Writes `contents` to `path`. Secret files get mode 0600 from the moment they exist, so the
/// key is never readable by others, not even briefly.
pub(super) fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    // Removing first (only reached with --force, or when the file appeared since the check)
    // means the new file is created with the right mode, rather than inheriting a wider mode
    // of the old one, and that a symlink in its place is replaced instead of followed.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}
