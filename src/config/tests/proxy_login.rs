//! `upstream.proxy_login`: the proxy's own login, in each identity mode, and `store.sasl` read
//! as it.

use super::*;

const SCRAM: &str = r#"    mode: scram
    mechanism: SCRAM-SHA-256
    credentials:
      pool-payments: { username: payments, password_env: PATH }
      pool-acme-all: { username: acme-all, password_env: PATH }
"#;

const OAUTH: &str = r#"    mode: oauthbearer
    issuer: https://proxy.example
    audience: kafka
"#;

/// `yaml` with `login` (YAML indented by 4) as `upstream.proxy_login`.
fn with_login(yaml: &str, login: &str) -> String {
    yaml.replace(
        "upstream:\n",
        &format!("upstream:\n  proxy_login:\n{login}"),
    )
}

fn login_of(cfg: &Config) -> Option<ProxyLogin> {
    cfg.reloadable.upstream.proxy_login.clone()
}

#[test]
fn a_scram_login_takes_the_identitys_mechanism_in_scram_mode_and_sha512_otherwise() {
    let f = Fixture::new();
    // PATH is always set: no test has to modify the environment.
    let login = "    username: kafka-mtls-proxy\n    password_env: PATH\n";
    let cfg = f.load(&with_login(&f.with_identity(SCRAM), login)).unwrap();
    assert_eq!(
        login_of(&cfg),
        Some(ProxyLogin::Scram {
            mechanism: crate::scram::Mechanism::Sha256,
            username: "kafka-mtls-proxy".into(),
            password: SecretSource::Env("PATH".into()),
        })
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    // Mode none (the store on a SASL listener of its own): SCRAM-SHA-512 unless named.
    let none = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS));
    let cfg = f.load(&with_login(&none, login)).unwrap();
    assert!(matches!(
        login_of(&cfg),
        Some(ProxyLogin::Scram {
            mechanism: crate::scram::Mechanism::Sha512,
            ..
        })
    ));
    // Absent in mode none and scram mode: no login of its own.
    assert_eq!(login_of(&f.load(&none).unwrap()), None);
    assert_eq!(login_of(&f.load(&f.with_identity(SCRAM)).unwrap()), None);
}

#[test]
fn oauthbearer_mode_signs_in_as_its_own_subject_without_configuration() {
    let f = Fixture::new();
    let oauth = f.with_oauth(OAUTH, Some("0.0.0.0:9204"));
    let cfg = f.load(&oauth).unwrap();
    assert_eq!(
        login_of(&cfg),
        Some(ProxyLogin::OAuthBearer {
            subject: "kafka-mtls-proxy".into()
        })
    );
    let cfg = f
        .load(&with_login(&oauth, "    subject: proxy-eu-1\n"))
        .unwrap();
    assert_eq!(
        login_of(&cfg),
        Some(ProxyLogin::OAuthBearer {
            subject: "proxy-eu-1".into()
        })
    );
    // A SCRAM user instead, e.g. on a listener of its own (store.bootstrap_servers).
    let cfg = f
        .load(&with_login(
            &oauth,
            "    username: kafka-mtls-proxy\n    password_env: PATH\n",
        ))
        .unwrap();
    assert!(matches!(login_of(&cfg), Some(ProxyLogin::Scram { .. })));
}

#[test]
fn store_sasl_is_read_as_the_proxy_login_with_a_warning() {
    let f = Fixture::new();
    let store = "store:\n  sasl:\n    username: kafka-mtls-proxy\n    password_env: PATH\n";
    let yaml = format!(
        "{}{store}",
        f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS))
    );
    let cfg = f.load(&yaml).unwrap();
    assert_eq!(
        login_of(&cfg),
        Some(ProxyLogin::Scram {
            mechanism: crate::scram::Mechanism::Sha512,
            username: "kafka-mtls-proxy".into(),
            password: SecretSource::Env("PATH".into()),
        })
    );
    assert!(
        has(
            &cfg.warnings,
            "store.sasl",
            "move these keys to upstream.proxy_login"
        ),
        "{:?}",
        cfg.warnings
    );
    // Its mistakes are named where they are.
    let bad = yaml.replace("    password_env: PATH\n", "");
    let issues = f.issues(&bad);
    assert!(
        has(
            &issues,
            "store.sasl",
            "exactly one of password_env and password_file"
        ),
        "{issues:?}"
    );
    // Both: one is too many.
    let both = with_login(&yaml, "    username: other\n    password_env: PATH\n");
    let issues = f.issues(&both);
    assert!(
        has(&issues, "store.sasl", "replaced by upstream.proxy_login"),
        "{issues:?}"
    );
}

#[test]
fn every_mistake_names_its_field() {
    let f = Fixture::new();
    let cases = [
        (
            f.with_identity(SCRAM),
            "    mechanism: OAUTHBEARER\n",
            "upstream.proxy_login.mechanism",
            "needs upstream.identity.mode: oauthbearer",
        ),
        (
            f.with_identity(SCRAM),
            "    mechanism: PLAIN\n    username: p\n    password_env: PATH\n",
            "upstream.proxy_login.mechanism",
            "is not SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
        ),
        (
            f.with_identity(SCRAM),
            "    password_env: PATH\n",
            "upstream.proxy_login.username",
            "required for a SCRAM login",
        ),
        (
            f.with_identity(SCRAM),
            "    username: p\n    password_env: PATH\n    subject: p\n",
            "upstream.proxy_login.subject",
            "applies only to OAUTHBEARER",
        ),
        (
            f.with_identity(SCRAM),
            "    username: p\n    password_file: /nonexistent/secret\n",
            "upstream.proxy_login.password_file",
            "/nonexistent/secret",
        ),
        (
            f.with_oauth(OAUTH, Some("0.0.0.0:9204")),
            "    subject: ' '\n",
            "upstream.proxy_login.subject",
            "must not be empty",
        ),
        (
            f.with_oauth(OAUTH, Some("0.0.0.0:9204")),
            "    mechanism: OAUTHBEARER\n    password_env: PATH\n",
            "upstream.proxy_login",
            "apply only to SCRAM",
        ),
        // The proxy must not sign in as a pool does: that pool's clients would be the proxy.
        (
            f.with_identity(SCRAM),
            "    username: acme-all\n    password_env: PATH\n",
            "upstream.proxy_login.username",
            "identity pool `pool-acme-all` signs in as",
        ),
        (
            f.with_oauth(OAUTH, Some("0.0.0.0:9204")),
            "    subject: pool-payments\n",
            "upstream.proxy_login.subject",
            "identity pool `pool-payments` signs in as",
        ),
    ];
    for (yaml, login, field, reason) in cases {
        let issues = f.issues(&with_login(&yaml, login));
        assert!(has(&issues, field, reason), "{login}: {issues:?}");
    }
}

#[test]
fn sni_in_scram_mode_without_a_login_warns_naming_the_field() {
    let f = Fixture::new();
    let sni = f.with_identity(SCRAM).replace(
        "  advertised_host: localhost\n",
        "  sni:\n    bootstrap: bootstrap.kafka.test\n    broker_pattern: \"broker-{id}.kafka.test\"\n",
    );
    let cfg = f.load(&sni).unwrap();
    assert!(
        has(
            &cfg.warnings,
            "upstream.proxy_login",
            "cannot be looked up before the handshake"
        ),
        "{:?}",
        cfg.warnings
    );
    let cfg = f
        .load(&with_login(
            &sni,
            "    username: kafka-mtls-proxy\n    password_env: PATH\n",
        ))
        .unwrap();
    assert!(
        !cfg.warnings
            .iter()
            .any(|w| w.field == "upstream.proxy_login"),
        "{:?}",
        cfg.warnings
    );
}
