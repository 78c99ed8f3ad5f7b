//! `upstream.identity`: who the proxy is to the brokers on behalf of a connection's primary
//! pool: itself (`none`), a SCRAM user per pool, or an OAUTHBEARER token it signs
//! ([`super::oauthbearer`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Issues;
use super::authorities::CertificateAuthority;
use super::oauthbearer;
use super::raw::{RawConfig, RawScramCredential, RawUpstreamIdentity};
use super::sources::Sources;
use crate::oauth::{KeySettings, TokenSettings};

/// Where every key this module checks lives.
const AT: &str = "upstream.identity";

/// `upstream.identity`.
#[derive(Debug, Clone, Default)]
pub enum UpstreamIdentity {
    /// The proxy connects as itself (plaintext, or its TLS client certificate); no SASL.
    #[default]
    None,
    /// SASL/SCRAM as the primary pool's broker user, before any client frame is forwarded.
    Scram {
        mechanism: crate::scram::Mechanism,
        /// Pool id → credentials. Every configured pool has an entry (checked at load).
        credentials: BTreeMap<String, ScramCredential>,
    },
    /// SASL/OAUTHBEARER with a JWT the proxy signs itself, naming the primary pool as `sub`
    /// (see [`crate::oauth`]). The token's claims may change on reload; the signing keys'
    /// schedule is [`super::StartupConfig::oauth_keys`], fixed at start.
    OAuthBearer { token: TokenSettings },
}

/// One pool's broker user and where its password is read from (at each connect, so a rotated
/// secret is picked up without a reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub username: String,
    pub password: SecretSource,
}

/// A reference to a secret. `Debug` shows the reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// Read the secret now. A file's trailing line break is not part of the password.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        let value = match self {
            SecretSource::Env(name) => std::env::var_os(name)
                .ok_or_else(|| format!("environment variable {name} is not set"))?
                .into_encoded_bytes(),
            SecretSource::File(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
        };
        let mut value = value;
        while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            value.pop();
        }
        if value.is_empty() {
            return Err(match self {
                SecretSource::Env(name) => format!("environment variable {name} is empty"),
                SecretSource::File(path) => format!("{} is empty", path.display()),
            });
        }
        Ok(value)
    }
}

/// `upstream.identity`: the mode, the mechanism, and one credential per configured pool; in
/// oauthbearer mode also the key ring's parameters, which belong to the startup configuration.
/// Secrets are checked for presence here ([`super::AbsentSecrets`]) and read again at every
/// connect.
pub(super) fn check(
    issues: &mut Issues,
    raw: &RawConfig,
    authorities: &[CertificateAuthority],
    sources: &Sources,
) -> Option<(UpstreamIdentity, Option<KeySettings>)> {
    let Some(id) = &raw.upstream.identity else {
        return Some((UpstreamIdentity::None, None));
    };
    match id.mode.as_deref().unwrap_or("none") {
        "none" => {
            // `&`, not `&&`: both kinds of misplaced key are reported.
            let ok = no_scram_keys(issues, id) & no_oauthbearer_keys(issues, id);
            ok.then_some((UpstreamIdentity::None, None))
        }
        "oauthbearer" => oauthbearer::check(issues, raw, id, sources)
            .map(|(token, keys)| (UpstreamIdentity::OAuthBearer { token }, Some(keys))),
        "scram" => scram(issues, id, authorities, sources).map(|scram| (scram, None)),
        other => {
            issues.error(
                format!("{AT}.mode"),
                format!("unknown mode `{other}` (none, scram or oauthbearer)"),
            );
            None
        }
    }
}

/// `upstream.identity` in scram mode: the mechanism, and one broker user per configured pool
/// whose password can be read now.
fn scram(
    issues: &mut Issues,
    id: &RawUpstreamIdentity,
    authorities: &[CertificateAuthority],
    sources: &Sources,
) -> Option<UpstreamIdentity> {
    if !no_oauthbearer_keys(issues, id) {
        return None;
    }
    let mechanism = scram_mechanism(issues, id);
    let pool_ids: Vec<&str> = authorities
        .iter()
        .flat_map(|ca| ca.pools.pools.iter().map(|p| p.id.as_str()))
        .collect();
    let mut credentials = BTreeMap::new();
    let mut ok = true;
    for (pool, c) in &id.credentials {
        let known = pool_ids.contains(&pool.as_str());
        // A credential with a problem is left out; `ok` then discards the whole map.
        match scram_credential(issues, pool, known, c, sources) {
            Some(credential) => {
                credentials.insert(pool.clone(), credential);
            }
            None => ok = false,
        }
    }
    ok &= every_pool_has_credentials(issues, id, &pool_ids);
    match (mechanism, ok) {
        (Some(mechanism), true) => Some(UpstreamIdentity::Scram {
            mechanism,
            credentials,
        }),
        _ => None,
    }
}

/// `mechanism`: required in scram mode, and one of the SCRAM mechanisms.
fn scram_mechanism(
    issues: &mut Issues,
    id: &RawUpstreamIdentity,
) -> Option<crate::scram::Mechanism> {
    let Some(m) = id.mechanism.as_deref() else {
        issues.error(
            format!("{AT}.mechanism"),
            "required in scram mode: SCRAM-SHA-256 or SCRAM-SHA-512",
        );
        return None;
    };
    let parsed = crate::scram::Mechanism::parse(m);
    if parsed.is_none() {
        issues.error(
            format!("{AT}.mechanism"),
            format!("unknown mechanism `{m}` (SCRAM-SHA-256 or SCRAM-SHA-512)"),
        );
    }
    parsed
}

/// One entry of `credentials`: a configured pool, a valid SCRAM user name, and exactly one
/// password reference that can be read now. `None` when anything is wrong (all reported).
fn scram_credential(
    issues: &mut Issues,
    pool: &str,
    pool_known: bool,
    c: &RawScramCredential,
    sources: &Sources,
) -> Option<ScramCredential> {
    let field = format!("{AT}.credentials.{pool}");
    let mut ok = true;
    if !pool_known {
        issues.error(&field, format!("no identity pool has the id `{pool}`"));
        ok = false;
    }
    if let Err(e) =
        crate::scram::ScramClient::new(crate::scram::Mechanism::Sha256, &c.username, String::new())
    {
        issues.error(format!("{field}.username"), e.to_string());
        ok = false;
    }
    let source = secret_source(issues, &field, c)?;
    if let Err(reason) = sources.secret(&source) {
        let sub = match source {
            SecretSource::Env(_) => "password_env",
            SecretSource::File(_) => "password_file",
        };
        if issues.secret(format!("{field}.{sub}"), reason) {
            ok = false;
        }
    }
    ok.then(|| ScramCredential {
        username: c.username.clone(),
        password: source,
    })
}

/// Where a credential's password comes from: `password_env` or `password_file`, exactly one.
fn secret_source(issues: &mut Issues, field: &str, c: &RawScramCredential) -> Option<SecretSource> {
    match (&c.password_env, &c.password_file) {
        (Some(env), None) if !env.is_empty() => Some(SecretSource::Env(env.clone())),
        (None, Some(file)) => Some(SecretSource::File(file.clone())),
        (Some(_), None) => {
            issues.error(format!("{field}.password_env"), "must not be empty");
            None
        }
        (Some(_), Some(_)) => {
            issues.error(field, "set one of password_env and password_file, not both");
            None
        }
        (None, None) => {
            issues.error(
                field,
                "set password_env or password_file (passwords are never written \
                 in the configuration)",
            );
            None
        }
    }
}

/// In scram mode every configured pool needs a broker user (each missing one is reported).
fn every_pool_has_credentials(
    issues: &mut Issues,
    id: &RawUpstreamIdentity,
    pool_ids: &[&str],
) -> bool {
    let mut ok = true;
    for pool in pool_ids {
        if !id.credentials.contains_key(*pool) {
            issues.error(
                format!("{AT}.credentials"),
                format!(
                    "identity pool `{pool}` has no credentials: in scram mode every \
                     pool needs a broker user"
                ),
            );
            ok = false;
        }
    }
    ok
}

/// Whether `upstream.identity` is free of the keys only `mode: scram` reads (reported when
/// not).
pub(super) fn no_scram_keys(issues: &mut Issues, id: &RawUpstreamIdentity) -> bool {
    let set = id.mechanism.is_some() || !id.credentials.is_empty();
    if set {
        issues.error(
            "upstream.identity.mode",
            "mechanism and credentials apply only to `mode: scram`",
        );
    }
    !set
}

/// Whether `upstream.identity` is free of the keys only `mode: oauthbearer` reads (the
/// first one found is reported).
fn no_oauthbearer_keys(issues: &mut Issues, id: &RawUpstreamIdentity) -> bool {
    let Some(key) = oauth_only_keys(id).first().copied() else {
        return true;
    };
    issues.error(
        format!("upstream.identity.{key}"),
        "applies only to `mode: oauthbearer`",
    );
    false
}

/// The oauthbearer-only keys set in `id`, for the other modes' checks.
fn oauth_only_keys(id: &RawUpstreamIdentity) -> Vec<&'static str> {
    [
        ("issuer", id.issuer.is_some()),
        ("audience", id.audience.is_some()),
        ("scope", id.scope.is_some()),
        ("token_lifetime_ms", id.token_lifetime_ms.is_some()),
        ("rotate_every_ms", id.rotate_every_ms.is_some()),
        ("publish_ahead_ms", id.publish_ahead_ms.is_some()),
        ("keys_dir", id.keys_dir.is_some()),
        ("extensions", !id.extensions.is_empty()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect()
}
