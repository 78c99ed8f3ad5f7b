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

/// extensions, and the admin server that must serve the JWKS.
pub(super) fn check(
    issues: &mut Issues,
    raw: &RawConfig,
    id: &RawUpstreamIdentity,
    sources: &Sources,
) -> Option<(TokenSettings, KeySettings)> {
    let at = "upstream.identity";
    let mut ok = no_scram_keys(issues, id);
    let required =
        |v: &mut Issues, field: &str, value: &Option<String>| match value.as_deref().map(str::trim)
        {
            Some(s) if !s.is_empty() => Some(s.to_owned()),
            Some(_) => {
                v.error(format!("{at}.{field}"), "must not be empty");
                None
            }
            None => {
                v.error(
                    format!("{at}.{field}"),
                    format!(
                        "required in oauthbearer mode: the brokers' \
                     sasl.oauthbearer.expected.{field}"
                    ),
                );
                None
            }
        };
    let issuer = required(issues, "issuer", &id.issuer);
    let audience = required(issues, "audience", &id.audience);
    let scope = match id.scope.as_deref().map(str::trim) {
        Some("") => {
            issues.error(format!("{at}.scope"), "must not be empty (or leave it out)");
            ok = false;
            None
        }
        other => other.map(str::to_owned),
    };
    let ms = |v: &mut Issues, field: &str, value: Option<u64>, default: u64| {
        Duration::from_millis(v.positive(&format!("{at}.{field}"), value, default))
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
            format!("{at}.token_lifetime_ms"),
            "must be at least 1000 (JWT times are whole seconds)",
        );
        ok = false;
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
    if publish_ahead >= rotate_every {
        issues.error(
            format!("{at}.publish_ahead_ms"),
            format!(
                "must be less than rotate_every_ms ({} ms): a key is published ahead of \
                 the rotation that makes it the signer",
                rotate_every.as_millis()
            ),
        );
        ok = false;
    } else if publish_ahead < Duration::from_millis(defaults::KAFKA_JWKS_REFRESH_MS) {
        issues.warn(
            format!("{at}.publish_ahead_ms"),
            "shorter than Kafka's default JWKS refresh (1 hour): a broker refuses a token \
             with an unknown kid (Apache Kafka 4.4 refetches the JWKS only then), so the \
             first upstream login after each rotation fails with \
             SASL_AUTHENTICATION_FAILED; keep it above the brokers' \
             sasl.oauthbearer.jwks.endpoint.refresh.ms",
        );
    }
    if let Some(dir) = &id.keys_dir {
        match sources.directory(dir) {
            Ok(true) => {}
            Ok(false) => {
                issues.error(
                    format!("{at}.keys_dir"),
                    format!("{} is not a directory", dir.display()),
                );
                ok = false;
            }
            Err(e) => {
                issues.error(
                    format!("{at}.keys_dir"),
                    format!("{}: {e} (create it, mode 0700)", dir.display()),
                );
                ok = false;
            }
        }
    }
    let extensions = match Extensions::new(&id.extensions) {
        Ok(e) => Some(e),
        Err(problems) => {
            for (name, problem) in problems {
                issues.error(format!("{at}.extensions.{name}"), problem.to_string());
            }
            None
        }
    };
    match &raw.admin {
        None => {
            issues.error(
                format!("{at}.mode"),
                "oauthbearer needs the admin server (an `admin:` section): the brokers \
                 fetch the proxy's public keys from its /.well-known/jwks.json",
            );
            ok = false;
        }
        Some(admin) => {
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
        }
    }
    match (issuer, audience, extensions, ok) {
        (Some(issuer), Some(audience), Some(extensions), true) => Some((
            TokenSettings {
                issuer,
                audience,
                scope,
                extensions,
            },
            KeySettings {
                rotate_every,
                publish_ahead,
                token_lifetime,
                keys_dir: id.keys_dir.clone(),
            },
        )),
        _ => None,
    }
}
