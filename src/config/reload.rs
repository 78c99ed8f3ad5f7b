//! `reload`: what a reload does to open connections, and how often the files are watched.

use std::time::Duration;

use super::raw::RawReload;
use super::{Issues, defaults};

/// What a configuration reload does to connections that are already open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingConnections {
    /// Keep them as they are; the new configuration applies to new connections.
    Keep,
    /// Re-check each one against the new certificate authorities and pools; close those that
    /// are no longer admitted (a removed pool must not keep access forever).
    Reevaluate,
}

#[derive(Debug, Clone)]
pub struct ReloadConfig {
    pub existing_connections: ExistingConnections,
    /// `None`: no file watch (SIGHUP only).
    pub watch_interval: Option<Duration>,
}

/// Check `reload`.
pub(super) fn check(issues: &mut Issues, r: &RawReload) -> Option<ReloadConfig> {
    let existing_connections = match r.existing_connections.as_deref() {
        None | Some("reevaluate") => ExistingConnections::Reevaluate,
        Some("keep") => ExistingConnections::Keep,
        Some(other) => {
            issues.error(
                "reload.existing_connections",
                format!("`{other}` is not a choice; use keep or reevaluate"),
            );
            return None;
        }
    };
    let ms = r
        .watch_interval_ms
        .unwrap_or(defaults::RELOAD_WATCH_INTERVAL_MS);
    Some(ReloadConfig {
        existing_connections,
        watch_interval: (ms > 0).then(|| Duration::from_millis(ms)),
    })
}
