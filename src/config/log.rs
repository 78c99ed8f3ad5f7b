//! `log`: the log format and level.

use super::Issues;
use super::raw::RawLog;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// Check `log`.
pub(super) fn check(issues: &mut Issues, l: &RawLog) -> Option<LogConfig> {
    let format = match l.format.as_deref() {
        None | Some("plain") => LogFormat::Plain,
        Some("json") => LogFormat::Json,
        Some(other) => {
            issues.error(
                "log.format",
                format!("`{other}` is not a log format; use plain or json"),
            );
            return None;
        }
    };
    Some(LogConfig {
        format,
        level: l.level.clone().unwrap_or_else(|| "info".to_string()),
    })
}
