//! `admin`: the admin server's address and the IAM API's token.

use super::*;

/// The valid fixture with `admin` appended (`section` is the YAML under the key).
fn with_admin(f: &Fixture, section: &str) -> String {
    format!(
        "{}admin:{section}\n",
        f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS))
    )
}

#[test]
fn without_an_admin_section_there_is_no_admin_server() {
    let f = Fixture::new();
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert_eq!(cfg.startup.admin, None);
    assert_eq!(cfg.reloadable.admin_token, None);
}

#[test]
fn an_admin_listen_address_loads() {
    let f = Fixture::new();
    let cfg = f.load(&with_admin(&f, "\n  listen: 0.0.0.0:9645")).unwrap();
    assert_eq!(
        cfg.startup.admin,
        Some(AdminConfig {
            listen: "0.0.0.0:9645".parse().unwrap(),
        })
    );
    assert_eq!(cfg.reloadable.admin_token, None);
}

#[test]
fn an_empty_admin_section_listens_on_loopback() {
    let f = Fixture::new();
    let cfg = f.load(&with_admin(&f, " {}")).unwrap();
    let listen = cfg.startup.admin.unwrap().listen;
    assert_eq!(listen, defaults::ADMIN_LISTEN.parse().unwrap());
    assert!(listen.ip().is_loopback());
}

#[test]
fn a_bad_admin_address_names_admin_listen() {
    let f = Fixture::new();
    for bad in ["localhost:9644", "127.0.0.1", "127.0.0.1:99999", "''"] {
        let issues = f.issues(&with_admin(&f, &format!("\n  listen: {bad}")));
        assert!(
            has(&issues, "admin.listen", "is not an IP:port address"),
            "{bad}: {issues:?}"
        );
    }
}

#[test]
fn an_admin_address_on_the_bootstrap_port_is_refused() {
    let f = Fixture::new();
    let issues = f.issues(&with_admin(&f, "\n  listen: 0.0.0.0:9092"));
    assert!(
        has(&issues, "admin.listen", "listener.bootstrap"),
        "{issues:?}"
    );
}

#[test]
fn an_admin_address_on_an_explicit_broker_port_is_refused() {
    let f = Fixture::new();
    let yaml = with_admin(&f, "\n  listen: 127.0.0.1:9201").replace(
        "  advertised_host: localhost\n",
        "  advertised_host: localhost\n  broker_ports:\n    node_ports:\n      1001: 9201\n",
    );
    let issues = f.issues(&yaml);
    assert!(
        has(&issues, "admin.listen", "port of broker 1001"),
        "{issues:?}"
    );
}

#[test]
fn an_unknown_admin_key_is_a_syntax_error() {
    let f = Fixture::new();
    match f.load(&with_admin(&f, "\n  address: 127.0.0.1:9644")) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("address"), "{message}")
        }
        Err(other) => panic!("expected a syntax error, got {other}"),
        Ok(_) => panic!("a typo was silently accepted"),
    }
}

#[test]
fn an_admin_token_file_loads_and_is_read_trimmed() {
    let f = Fixture::new();
    let file = f.write("admin.token", "0123456789abcdef0123\n");
    let cfg = f
        .load(&with_admin(
            &f,
            &format!("\n  token_file: {}", file.display()),
        ))
        .unwrap();
    assert!(cfg.startup.admin.is_some());
    let token = cfg.reloadable.admin_token.unwrap();
    assert_eq!(token, AdminTokenSource::File(file));
    assert_eq!(token.read().unwrap(), "0123456789abcdef0123");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn admin_token_problems_name_their_field() {
    let f = Fixture::new();
    let missing = f.path("missing.token");
    let issues = f.issues(&with_admin(
        &f,
        &format!("\n  token_file: {}", missing.display()),
    ));
    assert!(
        has(&issues, "admin.token_file", "cannot read"),
        "{issues:?}"
    );

    let empty = f.write("empty.token", "\n");
    let issues = f.issues(&with_admin(
        &f,
        &format!("\n  token_file: {}", empty.display()),
    ));
    assert!(has(&issues, "admin.token_file", "is empty"), "{issues:?}");

    let issues = f.issues(&with_admin(
        &f,
        "\n  token_env: KAFKA_MTLS_PROXY_TEST_SURELY_UNSET_VARIABLE",
    ));
    assert!(has(&issues, "admin.token_env", "is not set"), "{issues:?}");

    let file = f.write("admin.token", "0123456789abcdef0123");
    let issues = f.issues(&with_admin(
        &f,
        &format!("\n  token_file: {}\n  token_env: X", file.display()),
    ));
    assert!(has(&issues, "admin", "set one"), "{issues:?}");
}

#[test]
fn a_short_admin_token_is_a_warning() {
    let f = Fixture::new();
    let file = f.write("admin.token", "short");
    let cfg = f
        .load(&with_admin(
            &f,
            &format!("\n  token_file: {}", file.display()),
        ))
        .unwrap();
    assert!(
        has(&cfg.warnings, "admin.token_file", "at least 16"),
        "{:?}",
        cfg.warnings
    );
}
