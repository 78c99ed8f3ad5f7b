//! `upstream.identity` in oauthbearer mode: the claims of the tokens the proxy signs, the
//! schedule of its signing keys, the SASL extensions, and the admin server that must publish
//! the keys.

use std::net::SocketAddr;
use std::time::Duration;

use super::raw::{RawConfig, RawUpstreamIdentity};
use super::sources::Sources;
use super::upstream_identity::no_scram_keys;
use super::{Issues, defaults};
use crate::oauth::{Extensions, KeySettings, TokenSettings};

/// Where every key this module checks lives.
const AT: &str = "upstream.identity";

/// Checks `upstream.identity` in oauthbearer mode: the token claims, the key schedule, the SASL
/// extensions, and the admin server that must serve the JWKS.
pub(super) fn check(
    issues: &mut Issues,
    raw: &RawConfig,
    id: &RawUpstreamIdentity,
    sources: &Sources,
) -> Option<(TokenSettings, KeySettings)> {
    let mut ok = no_scram_keys(issues, id);
    let issuer = required_claim(issues, "issuer", &id.issuer);
    let audience = required_claim(issues, "audience", &id.audience);
    let scope = scope(issues, id, &mut ok);
    let keys = key_schedule(issues, id, &mut ok);
    ok &= keys_dir_usable(issues, id, sources);
    let extensions = extensions(issues, id);
    ok &= admin_serves_jwks(issues, raw);
    match (issuer, audience, extensions, ok) {
        (Some(issuer), Some(audience), Some(extensions), true) => Some((
            TokenSettings {
                issuer,
                audience,
                scope,
                extensions,
            },
            keys,
        )),
        _ => None,
    }
}

/// A claim the brokers expect (`iss`, `aud`): present and not blank.
fn required_claim(issues: &mut Issues, field: &str, value: &Option<String>) -> Option<String> {
    match value.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() => Some(s.to_owned()),
        Some(_) => {
            issues.error(format!("{AT}.{field}"), "must not be empty");
            None
        }
        None => {
            issues.error(
                format!("{AT}.{field}"),
                format!(
                    "required in oauthbearer mode: the brokers' \
                     sasl.oauthbearer.expected.{field}"
                ),
            );
            None
        }
    }
}

/// The optional `scope` claim: absent is fine, blank is a mistake.
fn scope(issues: &mut Issues, id: &RawUpstreamIdentity, ok: &mut bool) -> Option<String> {
    match id.scope.as_deref().map(str::trim) {
        Some("") => {
            issues.error(format!("{AT}.scope"), "must not be empty (or leave it out)");
            *ok = false;
            None
        }
        other => other.map(str::to_owned),
    }
}

/// The token lifetime and the signing keys' rotation schedule.
fn key_schedule(issues: &mut Issues, id: &RawUpstreamIdentity, ok: &mut bool) -> KeySettings {
    let ms = |v: &mut Issues, field: &str, value: Option<u64>, default: u64| {
        Duration::from_millis(v.positive(&format!("{AT}.{field}"), value, default))
    };
    let token_lifetime = ms(
        issues,
        "token_lifetime_ms",
        id.token_lifetime_ms,
        defaults::OAUTH_TOKEN_LIFETIME_MS,
    );
    if token_lifetime < Duration::from_secs(1) {
        // `exp` is in whole seconds.
        issues.error(
            format!("{AT}.token_lifetime_ms"),
            "must be at least 1000 (JWT times are whole seconds)",
        );
        *ok = false;
    }
    let rotate_every = ms(
        issues,
        "rotate_every_ms",
        id.rotate_every_ms,
        defaults::OAUTH_ROTATE_EVERY_MS,
    );
    let publish_ahead = ms(
        issues,
        "publish_ahead_ms",
        id.publish_ahead_ms,
        defaults::OAUTH_PUBLISH_AHEAD_MS,
    );
    *ok &= publish_ahead_fits(issues, publish_ahead, rotate_every);
    KeySettings {
        rotate_every,
        publish_ahead,
        token_lifetime,
        keys_dir: id.keys_dir.clone(),
    }
}

/// `publish_ahead_ms` must come before the rotation it announces (an error) and should give
/// the brokers time to refetch the JWKS (a warning).
fn publish_ahead_fits(
    issues: &mut Issues,
    publish_ahead: Duration,
    rotate_every: Duration,
) -> bool {
    if publish_ahead >= rotate_every {
        issues.error(
            format!("{AT}.publish_ahead_ms"),
            format!(
                "must be less than rotate_every_ms ({} ms): a key is published ahead of \
                 the rotation that makes it the signer",
                rotate_every.as_millis()
            ),
        );
        return false;
    }
    if publish_ahead < Duration::from_millis(defaults::KAFKA_JWKS_REFRESH_MS) {
        issues.warn(
            format!("{AT}.publish_ahead_ms"),
            "shorter than Kafka's default JWKS refresh (1 hour): a broker refuses a token \
             with an unknown kid (Apache Kafka 4.4 refetches the JWKS only then), so the \
             first upstream login after each rotation fails with \
             SASL_AUTHENTICATION_FAILED; keep it above the brokers' \
             sasl.oauthbearer.jwks.endpoint.refresh.ms",
        );
    }
    true
}

/// `keys_dir`, when set, must be an existing directory.
fn keys_dir_usable(issues: &mut Issues, id: &RawUpstreamIdentity, sources: &Sources) -> bool {
    let Some(dir) = &id.keys_dir else {
        return true;
    };
    match sources.directory(dir) {
        Ok(true) => true,
        Ok(false) => {
            issues.error(
                format!("{AT}.keys_dir"),
                format!("{} is not a directory", dir.display()),
            );
            false
        }
        Err(e) => {
            issues.error(
                format!("{AT}.keys_dir"),
                format!("{}: {e} (create it, mode 0700)", dir.display()),
            );
            false
        }
    }
}

/// The SASL extensions sent with the token, each problem reported under its own name.
fn extensions(issues: &mut Issues, id: &RawUpstreamIdentity) -> Option<Extensions> {
    match Extensions::new(&id.extensions) {
        Ok(e) => Some(e),
        Err(problems) => {
            for (name, problem) in problems {
                issues.error(format!("{AT}.extensions.{name}"), problem.to_string());
            }
            None
        }
    }
}

/// The brokers fetch the proxy's public keys from the admin server, so there must be one
/// (an error) and it should be reachable from other machines (a warning).
fn admin_serves_jwks(issues: &mut Issues, raw: &RawConfig) -> bool {
    let Some(admin) = &raw.admin else {
        issues.error(
            format!("{AT}.mode"),
            "oauthbearer needs the admin server (an `admin:` section): the brokers \
             fetch the proxy's public keys from its /.well-known/jwks.json",
        );
        return false;
    };
    let listen = admin.listen.as_deref().unwrap_or(defaults::ADMIN_LISTEN);
    if listen
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
    {
        issues.warn(
            "admin.listen",
            format!(
                "`{listen}` is a loopback address: brokers on other machines cannot \
                 fetch /.well-known/jwks.json for upstream.identity.mode: oauthbearer"
            ),
        );
    }
    true
}
