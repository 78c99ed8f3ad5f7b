//! `upstream.identity.mode: oauthbearer`.

use std::time::Duration;

use super::*;

#[test]
fn oauthbearer_identity_loads_with_defaults() {
    let f = Fixture::new();
    let keys = f.path("keys");
    std::fs::create_dir(&keys).unwrap();
    let cfg = f
        .load(&f.with_oauth(
            &format!(
                r#"    mode: oauthbearer
    issuer: https://proxy.example
    audience: kafka
    keys_dir: {}
    extensions: {{ logicalCluster: lkc-1 }}
"#,
                keys.display()
            ),
            Some("0.0.0.0:9204"),
        ))
        .unwrap();
    let UpstreamIdentity::OAuthBearer { token } = &cfg.reloadable.upstream.identity else {
        panic!(
            "expected oauthbearer, got {:?}",
            cfg.reloadable.upstream.identity
        );
    };
    let k = cfg.startup.oauth_keys.as_ref().unwrap();
    assert_eq!(token.issuer, "https://proxy.example");
    assert_eq!(token.audience, "kafka");
    assert_eq!(token.scope, None);
    assert_eq!(
        token.extensions.iter().collect::<Vec<_>>(),
        [("logicalCluster", "lkc-1")]
    );
    assert_eq!(k.token_lifetime, Duration::from_secs(15 * 60));
    assert_eq!(k.rotate_every, Duration::from_secs(24 * 3600));
    assert_eq!(k.publish_ahead, Duration::from_secs(65 * 60));
    assert_eq!(k.keys_dir.as_deref(), Some(keys.as_path()));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn oauthbearer_without_an_admin_server_is_an_error_and_loopback_a_warning() {
    let f = Fixture::new();
    let identity = "    mode: oauthbearer\n    issuer: i\n    audience: a\n";
    let issues = f.issues(&f.with_oauth(identity, None));
    assert!(
        has(&issues, "upstream.identity.mode", "needs the admin server"),
        "{issues:?}"
    );
    let cfg = f
        .load(&f.with_oauth(identity, Some("127.0.0.1:9204")))
        .unwrap();
    assert!(
        has(&cfg.warnings, "admin.listen", "loopback"),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn oauthbearer_errors_name_the_field() {
    let f = Fixture::new();
    let issues = f.issues(&f.with_oauth(
        &format!(
            r#"    mode: oauthbearer
    audience: ""
    scope: ""
    rotate_every_ms: 1000
    publish_ahead_ms: 1000
    token_lifetime_ms: 10
    keys_dir: {}
    mechanism: SCRAM-SHA-256
    extensions: {{ auth: x, identityPoolId: y, "bad-name": z, ok: "" }}
"#,
            f.path("missing-dir").display()
        ),
        Some("0.0.0.0:0"),
    ));
    let at = "upstream.identity";
    for (field, needle) in [
        ("issuer", "required in oauthbearer mode"),
        ("audience", "must not be empty"),
        ("scope", "must not be empty"),
        ("publish_ahead_ms", "less than rotate_every_ms"),
        ("token_lifetime_ms", "at least 1000"),
        ("keys_dir", "missing-dir"),
        ("mode", "only to `mode: scram`"),
        ("extensions.auth", "token's own key"),
        ("extensions.identityPoolId", "set by the proxy"),
        ("extensions.bad-name", "letters only"),
        ("extensions.ok", "printable ASCII"),
    ] {
        assert!(
            has(&issues, &format!("{at}.{field}"), needle),
            "{field}: {issues:?}"
        );
    }
}

#[test]
fn oauthbearer_keys_in_another_mode_are_errors() {
    let f = Fixture::new();
    let issues = f.issues(&f.with_identity("    mode: none\n    issuer: i\n"));
    assert!(
        has(
            &issues,
            "upstream.identity.issuer",
            "only to `mode: oauthbearer`"
        ),
        "{issues:?}"
    );
    let issues = f.issues(
        &f.with_identity("    mode: scram\n    mechanism: SCRAM-SHA-256\n    keys_dir: /tmp\n"),
    );
    assert!(
        has(
            &issues,
            "upstream.identity.keys_dir",
            "only to `mode: oauthbearer`"
        ),
        "{issues:?}"
    );
}

#[test]
fn a_short_publish_ahead_is_a_warning_about_kafkas_jwks_refresh() {
    let f = Fixture::new();
    let cfg = f
        .load(&f.with_oauth(
            "    mode: oauthbearer\n    issuer: i\n    audience: a\n    rotate_every_ms: 4000\n    publish_ahead_ms: 2000\n",
            Some("0.0.0.0:0"),
        ))
        .unwrap();
    assert!(
        has(
            &cfg.warnings,
            "upstream.identity.publish_ahead_ms",
            "unknown kid"
        ),
        "{:?}",
        cfg.warnings
    );
}
