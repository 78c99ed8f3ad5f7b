//! Every configuration error the proxy promises to catch at load, each with its field.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::pools::ExternalIdentifier;

struct Fixture {
    dir: tempfile::TempDir,
}

fn ca_pem(cn: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn leaf_pem_and_key(host: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![host.to_string()]).unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

impl Fixture {
    fn new() -> Self {
        let f = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let (cert, key) = leaf_pem_and_key("localhost");
        f.write("server.pem", &cert);
        f.write("server.key", &key);
        f.write("ca.pem", &ca_pem("Acme Internal Client CA"));
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A valid configuration; `cas` is the YAML of the `certificate_authorities` list.
    fn yaml(&self, cas: &str) -> String {
        format!(
            r#"
listener:
  bootstrap: 127.0.0.1:9092
  advertised_host: localhost
tls:
  certificate_chain: {d}/server.pem
  private_key: {d}/server.key
upstream:
  bootstrap_servers: [127.0.0.1:19092]
audit:
  path: "off"
certificate_authorities:
{cas}
"#,
            d = self.dir.path().display()
        )
    }

    fn ca_block(&self, chain: &Path, pools: &str) -> String {
        format!(
            r#"  - id: ca-acme
    display_name: Acme Internal Client CA
    description: Acme certificate authority for internal client applications
    certificate_chain: {}
    identity_pools:
{pools}"#,
            chain.display()
        )
    }

    fn load(&self, yaml: &str) -> Result<Config, ConfigError> {
        let p = self.write("proxy.yaml", yaml);
        load(&p)
    }

    fn issues(&self, yaml: &str) -> Vec<Issue> {
        match self.load(yaml) {
            Err(ConfigError::Invalid { issues, .. }) => issues,
            Err(other) => panic!("expected field errors, got {other}"),
            Ok(_) => panic!("expected the configuration to be refused"),
        }
    }
}

const GOOD_POOLS: &str = r#"      - id: pool-payments
        display_name: Payments
        description: Payment services
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'
"#;

fn has(issues: &[Issue], field: &str, needle: &str) -> bool {
    issues
        .iter()
        .any(|i| i.field == field && i.reason.contains(needle))
}

#[test]
fn the_issue_example_block_loads_as_written() {
    let f = Fixture::new();
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert_eq!(cfg.reloadable.authorities.len(), 1);
    let ca = &cfg.reloadable.authorities[0];
    assert_eq!(ca.id, "ca-acme");
    assert_eq!(ca.pools.pools.len(), 2);
    assert_eq!(
        ca.pools.pools[1].external_identifier,
        ExternalIdentifier::Sha1
    );
    assert_eq!(cfg.reloadable.limits.max_frame_bytes, 100 * 1024 * 1024);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn a_chain_without_certificates_is_refused() {
    let f = Fixture::new();
    let empty = f.write("empty.pem", "no certificates here\n");
    let issues = f.issues(&f.yaml(&f.ca_block(&empty, GOOD_POOLS)));
    assert!(
        has(
            &issues,
            "certificate_authorities[0].certificate_chain",
            "no PEM certificate"
        ),
        "{issues:?}"
    );
}

#[test]
fn a_chain_of_five_certificates_is_refused() {
    let f = Fixture::new();
    let five: String = (0..5).map(|i| ca_pem(&format!("CA {i}"))).collect();
    let chain = f.write("five.pem", &five);
    let issues = f.issues(&f.yaml(&f.ca_block(&chain, GOOD_POOLS)));
    assert!(
        has(
            &issues,
            "certificate_authorities[0].certificate_chain",
            "holds 5 certificates"
        ),
        "{issues:?}"
    );
}

#[test]
fn a_chain_of_four_certificates_loads() {
    let f = Fixture::new();
    let four: String = (0..4).map(|i| ca_pem(&format!("CA {i}"))).collect();
    let chain = f.write("four.pem", &four);
    f.load(&f.yaml(&f.ca_block(&chain, GOOD_POOLS))).unwrap();
}

#[test]
fn a_chain_file_not_named_pem_is_refused() {
    let f = Fixture::new();
    let chain = f.write("ca.crt", &ca_pem("CA"));
    let issues = f.issues(&f.yaml(&f.ca_block(&chain, GOOD_POOLS)));
    assert!(
        has(
            &issues,
            "certificate_authorities[0].certificate_chain",
            "must be a .pem file"
        ),
        "{issues:?}"
    );
}

#[test]
fn a_certificate_that_is_not_a_ca_is_refused() {
    let f = Fixture::new();
    let (leaf, _) = leaf_pem_and_key("not-a-ca");
    let chain = f.write("leaf.pem", &leaf);
    let issues = f.issues(&f.yaml(&f.ca_block(&chain, GOOD_POOLS)));
    assert!(
        has(
            &issues,
            "certificate_authorities[0].certificate_chain",
            "is not a CA certificate"
        ),
        "{issues:?}"
    );
}

#[test]
fn an_unreadable_chain_file_is_refused() {
    let f = Fixture::new();
    let missing = f.path("missing.pem");
    let issues = f.issues(&f.yaml(&f.ca_block(&missing, GOOD_POOLS)));
    assert!(
        has(
            &issues,
            "certificate_authorities[0].certificate_chain",
            "cannot read"
        ),
        "{issues:?}"
    );
}

#[test]
fn duplicate_ca_ids_are_refused() {
    let f = Fixture::new();
    let pool = |id: &str| {
        format!(
            "      - id: {id}\n        display_name: X\n        external_identifier: CN\n        filter: 'CN == \"a\"'\n"
        )
    };
    let first = f.ca_block(&f.path("ca.pem"), &pool("pool-a"));
    let second = f.ca_block(&f.path("ca.pem"), &pool("pool-b"));
    let issues = f.issues(&f.yaml(&format!("{first}{second}")));
    assert!(
        has(
            &issues,
            "certificate_authorities[1].id",
            "duplicate certificate authority id `ca-acme`"
        ),
        "{issues:?}"
    );
}

#[test]
fn duplicate_pool_ids_are_refused_even_across_cas() {
    let f = Fixture::new();
    let pool = r#"      - id: pool-x
        display_name: X
        external_identifier: CN
        filter: 'CN == "a"'
"#;
    let first = f.ca_block(&f.path("ca.pem"), pool);
    let second = first.replace("id: ca-acme", "id: ca-other");
    let issues = f.issues(&f.yaml(&format!("{first}{second}")));
    assert!(
        has(
            &issues,
            "certificate_authorities[1].identity_pools[0].id",
            "duplicate identity pool id `pool-x`"
        ),
        "{issues:?}"
    );
}

#[test]
fn an_unknown_external_identifier_is_refused() {
    let f = Fixture::new();
    let pools = GOOD_POOLS.replace("external_identifier: SHA1", "external_identifier: EMAIL");
    let issues = f.issues(&f.yaml(&f.ca_block(&f.path("ca.pem"), &pools)));
    assert!(
        issues
            .iter()
            .any(|i| i.field == "certificate_authorities[0].identity_pools[1].external_identifier"),
        "{issues:?}"
    );
}

#[test]
fn a_filter_that_does_not_compile_names_the_pool_and_position() {
    let f = Fixture::new();
    let pools = GOOD_POOLS.replace(r#"'O == "Acme Inc"'"#, r#"'O == "Acme Inc" &&'"#);
    let issues = f.issues(&f.yaml(&f.ca_block(&f.path("ca.pem"), &pools)));
    let issue = issues
        .iter()
        .find(|i| i.field == "certificate_authorities[0].identity_pools[1].filter")
        .unwrap_or_else(|| panic!("{issues:?}"));
    assert!(issue.reason.contains("pool-acme-all"), "{issue}");
    assert!(issue.reason.contains("column"), "{issue}");
}

#[test]
fn an_empty_filter_loads_with_a_warning() {
    let f = Fixture::new();
    let pools = GOOD_POOLS.replace(r#"filter: 'O == "Acme Inc"'"#, "filter: ''");
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), &pools)))
        .unwrap();
    assert!(
        has(
            &cfg.warnings,
            "certificate_authorities[0].identity_pools[1].filter",
            "never matches"
        ),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn an_unknown_key_is_an_error_with_its_name() {
    let f = Fixture::new();
    let yaml = f
        .yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS))
        .replace("external_identifier: CN", "external_identifer: CN");
    match f.load(&yaml) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("external_identifer"), "{message}")
        }
        Err(other) => panic!("expected a syntax error, got {other}"),
        Ok(_) => panic!("a typo was silently accepted"),
    }
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let f = Fixture::new();
    let pools = GOOD_POOLS
        .replace("external_identifier: SHA1", "external_identifier: NOPE")
        .replace(r#"'CN == "acme-client" && OU == "payments"'"#, "'CN =='");
    let yaml = f
        .yaml(&f.ca_block(&f.path("missing.pem"), &pools))
        .replace("127.0.0.1:19092", "no-port-here");
    let issues = f.issues(&yaml);
    assert!(issues.len() >= 4, "{issues:?}");
}

#[test]
fn a_key_that_does_not_fit_the_certificate_is_refused() {
    let f = Fixture::new();
    let (_, other_key) = leaf_pem_and_key("localhost");
    f.write("server.key", &other_key);
    let issues = f.issues(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)));
    assert!(
        has(&issues, "tls.private_key", "does not fit"),
        "{issues:?}"
    );
}

#[test]
fn a_server_certificate_without_the_advertised_host_warns() {
    let f = Fixture::new();
    let yaml = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)).replace(
        "advertised_host: localhost",
        "advertised_host: kafka.example.com",
    );
    let cfg = f.load(&yaml).unwrap();
    assert!(
        has(&cfg.warnings, "tls.certificate_chain", "kafka.example.com"),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn broker_ports_follow_node_ids_and_explicit_entries_win() {
    let mut node_ports = BTreeMap::new();
    node_ports.insert(1001, 9200);
    let ports = BrokerPorts {
        first_port: 9093,
        node_ports,
    };
    assert_eq!(ports.port_for(0), Some(9093));
    assert_eq!(ports.port_for(111), Some(9204));
    assert_eq!(ports.port_for(1001), Some(9200));
    assert_eq!(ports.port_for(70000), None);
    assert_eq!(ports.port_for(-1), None);
}

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
fn reload_settings_default_to_reevaluate_and_reject_unknown_modes() {
    let f = Fixture::new();
    let base = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS));
    let cfg = f.load(&base).unwrap();
    assert_eq!(
        cfg.reloadable.reload.existing_connections,
        ExistingConnections::Reevaluate
    );
    assert_eq!(
        cfg.reloadable.reload.watch_interval,
        Some(Duration::from_millis(2000))
    );
    let off = f
        .load(&format!(
            "{base}reload:\n  watch_interval_ms: 0\n  existing_connections: keep\n"
        ))
        .unwrap();
    assert_eq!(off.reloadable.reload.watch_interval, None);
    assert_eq!(
        off.reloadable.reload.existing_connections,
        ExistingConnections::Keep
    );
    let issues = f.issues(&format!("{base}reload:\n  existing_connections: drop\n"));
    assert!(
        has(&issues, "reload.existing_connections", "`drop`"),
        "{issues:?}"
    );
}

#[test]
fn watched_files_cover_the_config_and_every_file_it_names() {
    let f = Fixture::new();
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    let files = cfg.watched_files();
    for name in ["proxy.yaml", "server.pem", "server.key", "ca.pem"] {
        assert!(
            files.contains(&f.path(name)),
            "{name} not watched: {files:?}"
        );
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

// ---- upstream.identity ----------------------------------------------------------------------

impl Fixture {
    /// The valid configuration with `identity` (YAML under `upstream.identity`, indented by 4).
    fn with_identity(&self, identity: &str) -> String {
        self.yaml(&self.ca_block(&self.path("ca.pem"), GOOD_POOLS))
            .replace(
                "  bootstrap_servers: [127.0.0.1:19092]\n",
                &format!("  bootstrap_servers: [127.0.0.1:19092]\n  identity:\n{identity}"),
            )
    }
}

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

#[test]
fn pool_priority_is_read() {
    let f = Fixture::new();
    let pools = GOOD_POOLS.replace(
        "        external_identifier: CN\n",
        "        external_identifier: CN\n        priority: 10\n",
    );
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), &pools)))
        .unwrap();
    assert_eq!(cfg.reloadable.authorities[0].pools.pools[0].priority, 10);
    assert_eq!(cfg.reloadable.authorities[0].pools.pools[1].priority, 0);
}

/// Pools with ACL rules, and authorization enabled globally.
fn acl_yaml(f: &Fixture, rules: &str) -> String {
    let pools = GOOD_POOLS.replace(
        "        filter: 'CN == \"acme-client\" && OU == \"payments\"'\n",
        &format!(
            "        filter: 'CN == \"acme-client\" && OU == \"payments\"'\n        acls:\n{rules}"
        ),
    );
    format!(
        "{}authorization:\n  enabled: true\n  rules:\n    - {{operations: [read], resource_type: group, resource_name: '*'}}\n",
        f.yaml(&f.ca_block(&f.path("ca.pem"), &pools))
    )
}

#[test]
fn acl_rules_load_into_pools_and_the_global_section() {
    let f = Fixture::new();
    let cfg = f
        .load(&acl_yaml(
            &f,
            "          - {operations: [write, describe], resource_type: topic, pattern_type: prefixed, resource_name: payments-}\n          - {permission: deny, operations: [all], resource_type: topic, resource_name: payments-secret}\n",
        ))
        .unwrap();
    assert!(cfg.reloadable.authorization.enabled);
    assert_eq!(cfg.reloadable.authorization.rules.len(), 1);
    let acls = &cfg.reloadable.authorities[0].pools.pools[0].acls;
    assert_eq!(acls.len(), 2);
    assert_eq!(
        acls[0].pattern,
        crate::acl::Pattern::Prefixed("payments-".into())
    );
    assert_eq!(acls[1].permission, crate::acl::Permission::Deny);
    assert_eq!(cfg.reloadable.authorities[0].authorization.enabled, None);
}

#[test]
fn every_bad_acl_field_is_named() {
    let f = Fixture::new();
    let at = "certificate_authorities[0].identity_pools[0].acls";
    let issues = f.issues(&acl_yaml(
        &f,
        "          - {operations: [fly], resource_type: topic, resource_name: x}\n          - {operations: [read], resource_type: table, resource_name: x}\n          - {operations: [read], resource_type: topic, pattern_type: regex, resource_name: x}\n          - {operations: [read], resource_type: topic}\n          - {permission: maybe, operations: [read], resource_type: topic, resource_name: x}\n          - {operations: [idempotent_write], resource_type: topic, resource_name: x}\n",
    ));
    assert!(
        has(
            &issues,
            &format!("{at}[0].operations"),
            "unknown operation `fly`"
        ),
        "{issues:?}"
    );
    assert!(
        has(
            &issues,
            &format!("{at}[1].resource_type"),
            "unknown resource type"
        ),
        "{issues:?}"
    );
    assert!(
        has(
            &issues,
            &format!("{at}[2].pattern_type"),
            "not literal or prefixed"
        ),
        "{issues:?}"
    );
    assert!(
        has(&issues, &format!("{at}[3].resource_name"), "required"),
        "{issues:?}"
    );
    assert!(
        has(&issues, &format!("{at}[4].permission"), "not allow or deny"),
        "{issues:?}"
    );
    assert!(
        has(
            &issues,
            &format!("{at}[5].operations"),
            "cluster resource only"
        ),
        "{issues:?}"
    );
}

#[test]
fn a_checked_pool_without_any_rule_is_warned_about() {
    let f = Fixture::new();
    let pools = GOOD_POOLS.to_string();
    let yaml = format!(
        "{}authorization:\n  enabled: true\n",
        f.yaml(&f.ca_block(&f.path("ca.pem"), &pools))
    );
    let cfg = f.load(&yaml).unwrap();
    assert!(
        cfg.warnings.iter().any(
            |w| w.field == "certificate_authorities[0].identity_pools[1].acls"
                && w.reason.contains("refused every request")
        ),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn a_certificate_authority_can_enable_acls_for_its_pools_alone() {
    let f = Fixture::new();
    let block = f.ca_block(&f.path("ca.pem"), GOOD_POOLS).replacen(
        "    identity_pools:\n",
        "    authorization:\n      enabled: true\n      rules:\n        - {operations: [describe], resource_type: topic, resource_name: '*'}\n    identity_pools:\n",
        1,
    );
    let cfg = f.load(&f.yaml(&block)).unwrap();
    assert!(!cfg.reloadable.authorization.enabled);
    assert_eq!(
        cfg.reloadable.authorities[0].authorization.enabled,
        Some(true)
    );
    assert_eq!(cfg.reloadable.authorities[0].authorization.rules.len(), 1);
}

// ---- upstream.identity.mode: oauthbearer ----------------------------------------------------

impl Fixture {
    /// `with_identity` plus an admin server on `listen` (none when `None`).
    fn with_oauth(&self, identity: &str, listen: Option<&str>) -> String {
        let admin = listen.map_or(String::new(), |l| format!("admin:\n  listen: {l}\n"));
        format!("{}{admin}", self.with_identity(identity))
    }
}

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

#[test]
fn permissions_of_a_connection_whose_pool_is_gone_fail_closed() {
    use crate::acl::{Permissions, StaleResolution};
    use crate::pools::{MatchedPool, Resolution};
    let f = Fixture::new();
    let resolution = |pool: &str| Resolution {
        matched: vec![MatchedPool {
            ca_id: "ca-acme".into(),
            pool_id: pool.into(),
            priority: 0,
        }],
        principals: vec![format!("User:{pool}")],
        identifier: None,
    };
    let enforced = f
        .load(&acl_yaml(
            &f,
            "          - {operations: [write], resource_type: topic, resource_name: '*'}\n",
        ))
        .unwrap();
    let live =
        Permissions::for_connection(&enforced.reloadable, &resolution("pool-payments")).unwrap();
    assert!(live.is_some());
    assert_eq!(
        Permissions::for_connection(&enforced.reloadable, &resolution("pool-renamed")),
        Err(StaleResolution::Pool("pool-renamed".into()))
    );
    // Without ACLs anywhere, a renamed pool changes nothing here.
    let off = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert_eq!(
        Permissions::for_connection(&off.reloadable, &resolution("pool-renamed")),
        Ok(None)
    );
}
