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
    let cfg = check(&path, &raw, &sources).unwrap();
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
