//! `upstream.proxy_login`: the proxy's own login on the cluster, for the requests it makes for
//! itself — the shared pool store's, and the broker lookup before a client's handshake in SNI
//! mode. SCRAM: a broker user and a password reference (read at every connect). OAUTHBEARER:
//! a subject the proxy's own issuer signs a token for at every connect; no secret.
//!
//! Absent: in oauthbearer mode the proxy signs in as [`DEFAULT_SUBJECT`]; in the other modes
//! it has no login of its own. `store.sasl` (the store's SCRAM user, before this section) is
//! still read as this section, with a warning.

use std::path::PathBuf;

use super::Issues;
use super::authorities::CertificateAuthority;
use super::raw::{RawConfig, RawProxyLogin};
use super::sources::Sources;
use super::upstream_identity::{SecretSource, UpstreamIdentity};
use crate::scram::Mechanism;

const AT: &str = "upstream.proxy_login";
/// Where the same keys were before `upstream.proxy_login`.
const LEGACY_AT: &str = "store.sasl";
/// The token subject (so the broker principal `User:kafka-mtls-proxy`) when none is set.
pub const DEFAULT_SUBJECT: &str = "kafka-mtls-proxy";

/// The proxy's own login, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyLogin {
    /// A SCRAM broker user; the password is read at every connect.
    Scram {
        mechanism: Mechanism,
        username: String,
        password: SecretSource,
    },
    /// A token the proxy signs for `subject` (oauthbearer mode only: its issuer signs it).
    OAuthBearer { subject: String },
}

impl ProxyLogin {
    /// Who the broker sees: the SCRAM user or the token subject.
    pub fn principal_name(&self) -> &str {
        match self {
            ProxyLogin::Scram { username, .. } => username,
            ProxyLogin::OAuthBearer { subject } => subject,
        }
    }
}

/// `upstream.proxy_login` (or the legacy `store.sasl`). `Err(())`: a problem was reported.
pub(super) fn check(
    issues: &mut Issues,
    raw: &RawConfig,
    identity: &UpstreamIdentity,
    authorities: &[CertificateAuthority],
    sources: &Sources,
) -> Result<Option<ProxyLogin>, ()> {
    let legacy = raw.store.as_ref().and_then(|s| s.sasl.as_ref());
    let login = match (&raw.upstream.proxy_login, legacy) {
        (Some(_), Some(_)) => {
            issues.error(
                LEGACY_AT,
                "replaced by upstream.proxy_login, which is set: remove store.sasl (the \
                 store signs in with upstream.proxy_login)",
            );
            return Err(());
        }
        (Some(login), None) => check_login(issues, AT, login, identity, sources)?,
        (None, Some(sasl)) => {
            issues.warn(
                LEGACY_AT,
                "deprecated: move these keys to upstream.proxy_login (the same names), the \
                 proxy's own login for the store and for SNI discovery",
            );
            let login = RawProxyLogin {
                // store.sasl's own default, kept whatever the upstream identity's mechanism.
                mechanism: Some(sasl.mechanism.clone().unwrap_or("SCRAM-SHA-512".into())),
                username: Some(sasl.username.clone()),
                password_env: sasl.password_env.clone(),
                password_file: sasl.password_file.clone(),
                subject: None,
            };
            check_login(issues, LEGACY_AT, &login, identity, sources)?
        }
        (None, None) => match identity {
            UpstreamIdentity::OAuthBearer { .. } => ProxyLogin::OAuthBearer {
                subject: DEFAULT_SUBJECT.to_string(),
            },
            _ => return Ok(None),
        },
    };
    let at = if raw.upstream.proxy_login.is_none() && legacy.is_some() {
        LEGACY_AT
    } else {
        AT
    };
    not_a_pools_principal(issues, at, &login, identity, authorities)?;
    Ok(Some(login))
}

/// One login as written at `at`: its mechanism decides which keys it needs.
fn check_login(
    issues: &mut Issues,
    at: &str,
    raw: &RawProxyLogin,
    identity: &UpstreamIdentity,
    sources: &Sources,
) -> Result<ProxyLogin, ()> {
    let scram_keys =
        raw.username.is_some() || raw.password_env.is_some() || raw.password_file.is_some();
    let mechanism = match raw.mechanism.as_deref() {
        Some(name) if name.eq_ignore_ascii_case(crate::oauth::MECHANISM) => None,
        Some(name) => match Mechanism::parse(name) {
            Some(m) => Some(m),
            None => {
                issues.error(
                    format!("{at}.mechanism"),
                    format!("`{name}` is not SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
                );
                return Err(());
            }
        },
        // No mechanism: a user means SCRAM (the identity's mechanism, else SHA-512); none
        // means a token in oauthbearer mode.
        None => match identity {
            UpstreamIdentity::Scram { mechanism, .. } => Some(*mechanism),
            UpstreamIdentity::OAuthBearer { .. } if !scram_keys => None,
            _ => Some(Mechanism::Sha512),
        },
    };
    match mechanism {
        Some(mechanism) => scram(issues, at, raw, mechanism, sources),
        None => oauthbearer(issues, at, raw, scram_keys, identity),
    }
}

fn scram(
    issues: &mut Issues,
    at: &str,
    raw: &RawProxyLogin,
    mechanism: Mechanism,
    sources: &Sources,
) -> Result<ProxyLogin, ()> {
    let mut ok = true;
    if raw.subject.is_some() {
        issues.error(format!("{at}.subject"), "applies only to OAUTHBEARER");
        ok = false;
    }
    let username = raw.username.clone().unwrap_or_default();
    if username.is_empty() {
        issues.error(
            format!("{at}.username"),
            "required for a SCRAM login: the proxy's own broker user",
        );
        ok = false;
    } else if let Err(e) = crate::scram::ScramClient::new(mechanism, &username, String::new()) {
        issues.error(format!("{at}.username"), e.to_string());
        ok = false;
    }
    let password = match (&raw.password_env, &raw.password_file) {
        (Some(env), None) if !env.is_empty() => Some(SecretSource::Env(env.clone())),
        (None, Some(file)) => Some(SecretSource::File(PathBuf::from(file))),
        _ => {
            issues.error(
                at,
                "exactly one of password_env and password_file is needed (passwords are \
                 never written in the configuration)",
            );
            None
        }
    };
    if let Some(password) = &password
        && let Err(reason) = sources.secret(password)
    {
        let sub = match password {
            SecretSource::Env(_) => "password_env",
            SecretSource::File(_) => "password_file",
        };
        ok &= !issues.secret(format!("{at}.{sub}"), reason);
    }
    match (password, ok) {
        (Some(password), true) => Ok(ProxyLogin::Scram {
            mechanism,
            username,
            password,
        }),
        _ => Err(()),
    }
}

fn oauthbearer(
    issues: &mut Issues,
    at: &str,
    raw: &RawProxyLogin,
    scram_keys: bool,
    identity: &UpstreamIdentity,
) -> Result<ProxyLogin, ()> {
    let mut ok = true;
    if !matches!(identity, UpstreamIdentity::OAuthBearer { .. }) {
        issues.error(
            format!("{at}.mechanism"),
            "OAUTHBEARER needs upstream.identity.mode: oauthbearer (the proxy signs its own \
             token as that issuer)",
        );
        ok = false;
    }
    if scram_keys {
        issues.error(
            at,
            "username, password_env and password_file apply only to SCRAM: an OAUTHBEARER \
             login is a token the proxy signs for `subject`",
        );
        ok = false;
    }
    let subject = match raw.subject.as_deref().map(str::trim) {
        None => DEFAULT_SUBJECT.to_string(),
        Some("") => {
            issues.error(
                format!("{at}.subject"),
                "must not be empty (or leave it out)",
            );
            ok = false;
            String::new()
        }
        Some(s) => s.to_string(),
    };
    if ok {
        Ok(ProxyLogin::OAuthBearer { subject })
    } else {
        Err(())
    }
}

/// The proxy's own principal must not be one a client's pool signs in as: that client would
/// then act as the proxy (the store topic's only reader and writer).
fn not_a_pools_principal(
    issues: &mut Issues,
    at: &str,
    login: &ProxyLogin,
    identity: &UpstreamIdentity,
    authorities: &[CertificateAuthority],
) -> Result<(), ()> {
    let clash = match (login, identity) {
        (ProxyLogin::Scram { username, .. }, UpstreamIdentity::Scram { credentials, .. }) => {
            credentials
                .iter()
                .find(|(_, c)| c.username == *username)
                .map(|(pool, _)| ("username", pool.clone()))
        }
        // A token's subject is its pool's id.
        (ProxyLogin::OAuthBearer { subject }, _) => authorities
            .iter()
            .flat_map(|ca| ca.pools.pools.iter())
            .find(|p| p.id == *subject)
            .map(|p| ("subject", p.id.clone())),
        _ => None,
    };
    let Some((key, pool)) = clash else {
        return Ok(());
    };
    issues.error(
        format!("{at}.{key}"),
        format!(
            "`{}` is also who identity pool `{pool}` signs in as: its clients would act as the \
             proxy; choose another",
            login.principal_name()
        ),
    );
    Err(())
}
