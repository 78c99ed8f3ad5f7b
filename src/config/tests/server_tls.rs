//! `tls`: the proxy's certificate and key.

use super::*;

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

/// A self-signed CA certificate valid for `days` more days, with `crl_urls` as its CRL
/// distribution points.
fn ca_pem_expiring(cn: &str, days: i64, crl_urls: &[&str]) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    params.crl_distribution_points = crl_urls
        .iter()
        .map(|u| rcgen::CrlDistributionPoint {
            uris: vec![u.to_string()],
        })
        .collect();
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn certificates_that_expire_within_the_warning_window_are_warned_about() {
    let f = Fixture::new();
    f.write("ca.pem", &ca_pem_expiring("Acme Soon CA", 10, &[]));
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3);
    f.write("server.pem", &params.self_signed(&key).unwrap().pem());
    f.write("server.key", &key.serialize_pem());
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert!(
        has(&cfg.warnings, "tls.certificate_chain", "expires in 2 days")
            || has(&cfg.warnings, "tls.certificate_chain", "expires in 3 days"),
        "{:?}",
        cfg.warnings
    );
    assert!(
        has(
            &cfg.warnings,
            "certificate_authorities[0].certificate_chain",
            "certificate `CN=Acme Soon CA` expires in"
        ),
        "{:?}",
        cfg.warnings
    );
    assert_eq!(cfg.reloadable.server_tls.expiry_warning_days, 30);

    // A shorter window leaves both out; 0 turns the warning off.
    for days in ["2", "0"] {
        let yaml = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)).replace(
            "  private_key:",
            &format!("  expiry_warning_days: {days}\n  private_key:"),
        );
        let cfg = f.load(&yaml).unwrap();
        assert!(
            !cfg.warnings.iter().any(|w| w.reason.contains("expires in")),
            "{days}: {:?}",
            cfg.warnings
        );
    }
}

#[test]
fn a_ca_without_crl_settings_takes_its_crl_urls_from_the_bundles_distribution_points() {
    let f = Fixture::new();
    f.write(
        "ca.pem",
        &ca_pem_expiring(
            "Acme CA",
            400,
            &["http://crl.acme.test/ca.crl", "ldap://dir.acme.test/cn=ca"],
        ),
    );
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    let ca = &cfg.reloadable.authorities[0];
    assert_eq!(ca.crl_urls(), ["http://crl.acme.test/ca.crl"]);
    assert!(
        has(
            &cfg.warnings,
            "certificate_authorities[0].certificate_chain",
            "ldap://dir.acme.test/cn=ca not used"
        ),
        "{:?}",
        cfg.warnings
    );

    // An explicit crl_url wins; a crl_chain turns the distribution points off.
    let with = |field: &str| {
        let yaml = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)).replace(
            "    identity_pools:",
            &format!("    {field}\n    identity_pools:"),
        );
        f.load(&yaml).unwrap().reloadable.authorities[0]
            .crl_urls()
            .to_vec()
    };
    assert_eq!(
        with("crl_url: http://other.test/x.crl"),
        ["http://other.test/x.crl"]
    );

    // require_crl_on_client_certificate is satisfied by a distribution point alone.
    let yaml = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)).replace(
        "    identity_pools:",
        "    require_crl_on_client_certificate: true\n    identity_pools:",
    );
    assert!(f.load(&yaml).is_ok());
    f.write("plain-ca.pem", &ca_pem("Acme Plain CA"));
    let yaml = f
        .yaml(&f.ca_block(&f.path("plain-ca.pem"), GOOD_POOLS))
        .replace(
            "    identity_pools:",
            "    require_crl_on_client_certificate: true\n    identity_pools:",
        );
    assert!(has(
        &f.issues(&yaml),
        "certificate_authorities[0].require_crl_on_client_certificate",
        "CRL distribution point"
    ));
}
