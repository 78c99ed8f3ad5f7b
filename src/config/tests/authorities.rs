//! `certificate_authorities`: chains, ids, pools and their filters.

use super::*;

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
