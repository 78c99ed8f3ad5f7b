//! The checks work on what was read before them, not on the files as they are when checked.

use super::*;

#[test]
fn the_checks_do_no_io_of_their_own() {
    let f = Fixture::new();
    let secret = f.write("acme-all.secret", "s3cret\n");
    let token = f.write("admin.token", "0123456789abcdef0123\n");
    let yaml = format!(
        "{}admin:\n  token_file: {}\n",
        f.with_identity(&format!(
            r#"    mode: scram
    mechanism: SCRAM-SHA-512
    credentials:
      pool-payments: {{ username: payments, password_env: PATH }}
      pool-acme-all: {{ username: acme-all, password_file: {} }}
"#,
            secret.display()
        )),
        token.display()
    );
    let path = f.write("proxy.yaml", &yaml);
    let raw = parse_yaml(&path, &yaml).unwrap();
    let sources = Sources::read(&raw);
    for name in [
        "server.pem",
        "server.key",
        "ca.pem",
        "acme-all.secret",
        "admin.token",
    ] {
        std::fs::remove_file(f.path(name)).unwrap();
    }
    let cfg = check(&path, &raw, &sources, AbsentSecrets::Refuse).unwrap();
    assert_eq!(cfg.reloadable.authorities[0].certificates.len(), 1);
    // Read now, every one of them is missing, each reported at the field that names it.
    let Err(ConfigError::Invalid { issues, .. }) = from_raw(&path, &raw) else {
        panic!("the files are gone, yet the configuration loads");
    };
    for field in [
        "tls.certificate_chain",
        "certificate_authorities[0].certificate_chain",
        "upstream.identity.credentials.pool-acme-all.password_file",
        "admin.token_file",
    ] {
        assert!(
            issues.iter().any(|i| i.field == field),
            "{field}: {issues:?}"
        );
    }
}

/// pool-payments' password from an unset variable, pool-acme-all's from a missing file, and
/// the admin token from an unset variable.
fn absent_secrets_yaml(f: &Fixture) -> String {
    format!(
        "{}admin:\n  token_env: KAFKA_MTLS_PROXY_TEST_SURELY_UNSET_TOKEN\n",
        f.with_identity(&format!(
            r#"    mode: scram
    mechanism: SCRAM-SHA-512
    credentials:
      pool-payments: {{ username: payments, password_env: KAFKA_MTLS_PROXY_TEST_SURELY_UNSET }}
      pool-acme-all: {{ username: acme-all, password_file: {} }}
"#,
            f.path("missing.secret").display()
        ))
    )
}

const ABSENT_SECRET_FIELDS: [&str; 3] = [
    "upstream.identity.credentials.pool-acme-all.password_file",
    "upstream.identity.credentials.pool-payments.password_env",
    "admin.token_env",
];

#[test]
fn absent_secrets_are_warnings_when_the_load_allows_it() {
    let f = Fixture::new();
    let path = f.write("proxy.yaml", &absent_secrets_yaml(&f));
    let Err(ConfigError::Invalid { issues, .. }) = load(&path) else {
        panic!("a configuration without its secrets starts");
    };
    let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ABSENT_SECRET_FIELDS, "{issues:?}");

    let cfg = load_with(&path, AbsentSecrets::Warn).unwrap();
    // The same fields and reasons, as warnings.
    assert_eq!(cfg.warnings, issues);
    let UpstreamIdentity::Scram { credentials, .. } = &cfg.reloadable.upstream.identity else {
        panic!("expected scram: {:?}", cfg.reloadable.upstream.identity);
    };
    assert_eq!(
        credentials["pool-acme-all"].password,
        SecretSource::File(f.path("missing.secret"))
    );
    assert_eq!(
        cfg.reloadable.admin_token,
        Some(AdminTokenSource::Env(
            "KAFKA_MTLS_PROXY_TEST_SURELY_UNSET_TOKEN".into()
        ))
    );
    assert_eq!(
        load_with(&path, AbsentSecrets::Refuse)
            .err()
            .map(|e| e.issues()),
        Some(
            issues
                .iter()
                .map(|i| format!("{}: {i}", path.display()))
                .collect()
        )
    );
}

#[test]
fn only_secrets_become_warnings() {
    let f = Fixture::new();
    let yaml = absent_secrets_yaml(&f).replace("SCRAM-SHA-512", "SCRAM-SHA-1");
    let path = f.write("proxy.yaml", &yaml);
    let Err(ConfigError::Invalid { issues, .. }) = load_with(&path, AbsentSecrets::Warn) else {
        panic!("an unknown mechanism was accepted");
    };
    let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ["upstream.identity.mechanism"], "{issues:?}");
}
