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
