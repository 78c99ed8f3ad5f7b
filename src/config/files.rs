//! Files written for the configuration, atomically: the configuration file the IAM API
//! rewrites (`admin::iam::store`), and the certificate chains posted through the API or carried
//! by the shared pool store's records (the `store` module), under names that carry a digest of
//! their content.
//!
//! A write never leaves a half-written file behind: the new text goes to a temporary file in the
//! same directory, which is flushed to disk, renamed over the target (an atomic replacement on
//! POSIX file systems), and then the directory itself is flushed so the rename survives a power
//! cut.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Replace `path` with `bytes` atomically: temporary file in the same directory, fsync,
/// rename over `path`, fsync the directory. On error `path` is as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".to_string());
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        random_suffix()
    ));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        // Keep the permissions of the file being replaced (it may hold nothing secret, but
        // an operator who restricted it meant it).
        if let Ok(meta) = fs::metadata(path) {
            let _ = file.set_permissions(meta.permissions());
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Write PEM text posted for `field` of certificate authority `ca_id` into `dir`, atomically,
/// under a name that carries a digest of the content. Returns the path and whether the file
/// is new (a file that already existed, with this very content, must not be removed if the
/// write is refused).
pub fn write_pem(dir: &Path, ca_id: &str, field: &str, pem: &str) -> io::Result<(PathBuf, bool)> {
    fs::create_dir_all(dir)?;
    let digest = hex::encode(Sha256::digest(pem.as_bytes()));
    let kind = match field {
        "certificate_chain" => String::new(),
        other => format!(".{}", other.replace('_', "-")),
    };
    // The id is validated with the rest of the configuration, after this file is written:
    // until then it may hold anything, so only a safe alphabet reaches the file name.
    let safe_id: String = ca_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe_id}{kind}.{}.pem", &digest[..12]));
    if fs::read(&path).is_ok_and(|existing| existing == pem.as_bytes()) {
        return Ok((path, false));
    }
    write_atomic(&path, pem.as_bytes())?;
    Ok((path, true))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

fn random_suffix() -> String {
    use rand::RngExt;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(8)
        .map(char::from)
        .collect()
}

/// The directory of `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
