//! `audit`: where the audit records go, and how many may wait to be written.

use std::path::PathBuf;

use super::raw::RawAudit;
use super::{Issues, defaults};

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
    })
}
