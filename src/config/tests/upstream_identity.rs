//! `upstream.identity`: modes none and scram.

use super::*;

#[test]
fn scram_identity_loads_with_env_and_file_secrets() {
    let f = Fixture::new();
    let secret = f.write("acme-all.secret", "s3cret\n");
    // PATH is always set: no test has to modify the environment.
    let yaml = f.with_identity(&format!(
        r#"    mode: scram
    mechanism: SCRAM-SHA-512
    credentials:
      pool-payments: {{ username: payments, password_env: PATH }}
      pool-acme-all: {{ username: acme-all, password_file: {} }}
"#,
        secret.display()
    ));
    let cfg = f.load(&yaml).unwrap();
    let UpstreamIdentity::Scram {
        mechanism,
        credentials,
    } = &cfg.reloadable.upstream.identity
    else {
        panic!("expected scram, got {:?}", cfg.reloadable.upstream.identity);
    };
    assert_eq!(*mechanism, crate::scram::Mechanism::Sha512);
    assert_eq!(credentials["pool-acme-all"].username, "acme-all");
    // The file's trailing line break is not part of the password.
    assert_eq!(
        credentials["pool-acme-all"].password.read().unwrap(),
        b"s3cret"
    );
    assert_eq!(
        credentials["pool-payments"].password,
        SecretSource::Env("PATH".into())
    );
    // Debug of the typed config shows the reference, never the secret.
    assert!(!format!("{cfg:?}").contains("s3cret"));
}

#[test]
fn no_identity_means_mode_none() {
    let f = Fixture::new();
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert!(matches!(
        cfg.reloadable.upstream.identity,
        UpstreamIdentity::None
    ));
    let cfg = f.load(&f.with_identity("    mode: none\n")).unwrap();
    assert!(matches!(
        cfg.reloadable.upstream.identity,
        UpstreamIdentity::None
    ));
}

#[test]
fn scram_identity_errors_name_the_field() {
    let f = Fixture::new();
    let secret = f.write("s", "x");
    let issues = f.issues(&f.with_identity(&format!(
        r#"    mode: scram
    mechanism: SCRAM-SHA-1
    credentials:
      pool-payments: {{ username: payments, password_env: PATH, password_file: {s} }}
      pool-nope: {{ username: nope, password_file: {s} }}
      pool-acme-all: {{ username: acme-all }}
"#,
        s = secret.display()
    )));
    let at = "upstream.identity";
    assert!(
        has(
            &issues,
            &format!("{at}.mechanism"),
            "unknown mechanism `SCRAM-SHA-1`"
        ),
        "{issues:?}"
    );
    assert!(has(
        &issues,
        &format!("{at}.credentials.pool-payments"),
        "not both"
    ));
    assert!(has(
        &issues,
        &format!("{at}.credentials.pool-nope"),
        "no identity pool"
    ));
    assert!(has(
        &issues,
        &format!("{at}.credentials.pool-acme-all"),
        "password_env or password_file"
    ));
}

#[test]
fn scram_identity_refuses_pools_without_credentials_and_missing_secrets() {
    let f = Fixture::new();
    let issues = f.issues(&f.with_identity(
        r#"    mode: scram
    mechanism: SCRAM-SHA-256
    credentials:
      pool-payments: { username: "jürgen", password_env: KMP_TEST_SURELY_UNSET_VARIABLE }
"#,
    ));
    let at = "upstream.identity";
    assert!(
        has(
            &issues,
            &format!("{at}.credentials"),
            "`pool-acme-all` has no credentials"
        ),
        "{issues:?}"
    );
    assert!(has(
        &issues,
        &format!("{at}.credentials.pool-payments.password_env"),
        "KMP_TEST_SURELY_UNSET_VARIABLE is not set"
    ));
    assert!(has(
        &issues,
        &format!("{at}.credentials.pool-payments.username"),
        "not printable ASCII"
    ));
    let issues = f.issues(&f.with_identity("    mode: kerberos\n"));
    assert!(has(
        &issues,
        &format!("{at}.mode"),
        "unknown mode `kerberos`"
    ));
    let issues = f.issues(&f.with_identity("    mode: scram\n"));
    assert!(has(&issues, &format!("{at}.mechanism"), "required"));
    let issues = f.issues(&f.with_identity("    mode: none\n    mechanism: SCRAM-SHA-256\n"));
    assert!(has(&issues, &format!("{at}.mode"), "only to `mode: scram`"));
}
