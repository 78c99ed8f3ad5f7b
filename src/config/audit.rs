//! `audit`: where the audit records go, how many may wait to be written, and when the file
//! rotates.

use std::path::PathBuf;

use super::raw::RawAudit;
use super::{Issues, defaults};

/// Smallest `audit.max_file_bytes` other than 0: a record is one to two kilobytes, and a value
/// written in the wrong unit (`100` meaning megabytes) would keep only a handful of records.
pub const MIN_AUDIT_FILE_BYTES: u64 = 1024 * 1024;
/// Most `audit.max_files`: every rotation renames each kept file while the writer waits.
pub const MAX_AUDIT_FILES: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditDestination {
    File(PathBuf),
    Stdout,
    Off,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub destination: AuditDestination,
    pub source: String,
    pub queue_capacity: usize,
    /// When a file destination rotates (ignored for the others).
    pub rotation: AuditRotation,
}

/// Size-based rotation of the audit file, as logrotate's `size`/`rotate` and log4j's size
/// policy: `PATH` → `PATH.1` → … → `PATH.{max_files}`, the oldest deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRotation {
    /// Rotate before a record would take the file past this many bytes; 0: never.
    pub max_file_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
}

/// Check `audit`.
pub(super) fn check(issues: &mut Issues, a: &RawAudit) -> Option<AuditConfig> {
    let destination = match a.path.as_deref().unwrap_or(defaults::AUDIT_PATH).trim() {
        "" => {
            issues.error("audit.path", "must not be empty (use `off` to disable)");
            return None;
        }
        "-" => AuditDestination::Stdout,
        "off" => AuditDestination::Off,
        p => AuditDestination::File(PathBuf::from(p)),
    };
    let rotation = rotation(issues, a, &destination);
    Some(AuditConfig {
        destination,
        source: a
            .source
            .clone()
            .unwrap_or_else(|| defaults::AUDIT_SOURCE.to_string()),
        queue_capacity: issues.positive(
            "audit.queue_capacity",
            a.queue_capacity,
            defaults::AUDIT_QUEUE_CAPACITY,
        ),
        rotation,
    })
}

/// `audit.max_file_bytes` and `audit.max_files`.
fn rotation(issues: &mut Issues, a: &RawAudit, destination: &AuditDestination) -> AuditRotation {
    if !matches!(destination, AuditDestination::File(_)) {
        for (field, set) in [
            ("audit.max_file_bytes", a.max_file_bytes.is_some()),
            ("audit.max_files", a.max_files.is_some()),
        ] {
            if set {
                issues.warn(field, "applies only when audit.path is a file");
            }
        }
    }
    let max_file_bytes = a.max_file_bytes.unwrap_or(defaults::AUDIT_MAX_FILE_BYTES);
    if max_file_bytes != 0 && max_file_bytes < MIN_AUDIT_FILE_BYTES {
        issues.error(
            "audit.max_file_bytes",
            format!(
                "must be 0 (never rotate) or at least {MIN_AUDIT_FILE_BYTES} (1 MiB); got \
                 {max_file_bytes}, a file of a few records"
            ),
        );
    }
    let max_files = a.max_files.unwrap_or(defaults::AUDIT_MAX_FILES);
    if max_files > MAX_AUDIT_FILES {
        issues.error(
            "audit.max_files",
            format!("must be at most {MAX_AUDIT_FILES} (got {max_files})"),
        );
    } else if max_files == 0 && max_file_bytes != 0 {
        issues.error(
            "audit.max_files",
            "must be at least 1 when the file rotates: with 0 every rotation would delete \
             audit records (set audit.max_file_bytes: 0 to never rotate)",
        );
    }
    AuditRotation {
        max_file_bytes,
        max_files,
    }
}
