//! `admin`: the admin HTTP server's address (bound at start) and where the IAM API's write
//! token comes from (looked up in the current configuration at every write).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::listener::ListenerConfig;
use super::raw::RawAdmin;
use super::sources::Sources;
use super::{Issues, defaults};

/// Shorter admin tokens load, with a warning.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The admin HTTP server (health, readiness, metrics, the IAM API). Its write token's source
/// is [`super::ReloadableConfig::admin_token`]: a reload may change it, not the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

/// Where the admin API's bearer token is read from. It is read again for every write, so a
/// token file can be rotated without a restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdminTokenSource {
    /// `admin.token_file`.
    File(PathBuf),
    /// `admin.token_env`: the name of an environment variable.
    Env(String),
}

impl AdminTokenSource {
    /// The token (surrounding whitespace, such as a file's final newline, removed), or why it
    /// cannot be had.
    pub fn read(&self) -> Result<String, String> {
        let token = match self {
            AdminTokenSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?,
            AdminTokenSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set (or not UTF-8)"))?,
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(match self {
                AdminTokenSource::File(path) => format!("{}: is empty", path.display()),
                AdminTokenSource::Env(name) => format!("environment variable `{name}` is empty"),
            });
        }
        Ok(token.to_string())
    }

    /// The configuration key it came from, for messages.
    pub fn field(&self) -> &'static str {
        match self {
            AdminTokenSource::File(_) => "admin.token_file",
            AdminTokenSource::Env(_) => "admin.token_env",
        }
    }
}

/// Check `admin`: `None` when there is no `admin` section, or when it is wrong (then with an
/// error). The token source is checked only once the address is right.
pub(super) fn check(
    issues: &mut Issues,
    admin: Option<&RawAdmin>,
    listener: Option<&ListenerConfig>,
    sources: &Sources,
) -> Option<(AdminConfig, Option<AdminTokenSource>)> {
    let a = admin?;
    let text = a.listen.as_deref().unwrap_or(defaults::ADMIN_LISTEN).trim();
    let Ok(listen) = text.parse::<SocketAddr>() else {
        issues.error(
            "admin.listen",
            format!("`{text}` is not an IP:port address (e.g. 127.0.0.1:9644)"),
        );
        return None;
    };
    // Caught here rather than as a bind error at start, which would not name the field.
    // Port 0 (any free port) cannot collide.
    if let Some(l) = listener
        && listen.port() != 0
    {
        let overlaps =
            |ip: IpAddr| ip == listen.ip() || ip.is_unspecified() || listen.ip().is_unspecified();
        if listen.port() == l.bootstrap.port() && overlaps(l.bootstrap.ip()) {
            issues.error(
                "admin.listen",
                format!("`{listen}` is also the bootstrap listener (listener.bootstrap)"),
            );
            return None;
        }
        if let Some((node, _)) = l
            .broker_ports
            .node_ports
            .iter()
            .find(|(_, port)| **port == listen.port())
            && overlaps(l.broker_bind)
        {
            issues.error(
                "admin.listen",
                format!(
                    "port {} is also the port of broker {node} \
                     (listener.broker_ports.node_ports)",
                    listen.port()
                ),
            );
            return None;
        }
    }
    let token = token(issues, a, sources);
    Some((AdminConfig { listen }, token))
}

/// `admin.token_file` / `admin.token_env`: at most one, and the token readable now (or, when
/// the load allows it, a warning).
fn token(issues: &mut Issues, a: &RawAdmin, sources: &Sources) -> Option<AdminTokenSource> {
    let source = match (&a.token_file, &a.token_env) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            issues.error(
                "admin",
                "token_file and token_env are two ways to give the same token: set one",
            );
            return None;
        }
        (Some(path), None) => AdminTokenSource::File(path.clone()),
        (None, Some(name)) if name.trim().is_empty() => {
            issues.error("admin.token_env", "must name an environment variable");
            return None;
        }
        (None, Some(name)) => AdminTokenSource::Env(name.trim().to_string()),
    };
    match sources.admin_token(&source) {
        Ok(length) if length < MIN_ADMIN_TOKEN_LEN => issues.warn(
            source.field(),
            format!(
                "the admin token is {length} characters long; use at least {MIN_ADMIN_TOKEN_LEN} \
                 random ones (e.g. `openssl rand -hex 32`)"
            ),
        ),
        Ok(_) => {}
        Err(reason) => {
            issues.secret(source.field(), reason);
        }
    }
    Some(source)
}
