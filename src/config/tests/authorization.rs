//! `authorization` and the ACL rules of certificate authorities and pools.

use super::*;

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

#[test]
fn permissions_of_a_connection_whose_pool_is_gone_fail_closed() {
    use crate::acl::StaleResolution;
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
    let live = enforced
        .reloadable
        .permissions_for(&resolution("pool-payments"))
        .unwrap();
    assert!(live.is_some());
    assert_eq!(
        enforced
            .reloadable
            .permissions_for(&resolution("pool-renamed")),
        Err(StaleResolution::Pool("pool-renamed".into()))
    );
    // Without ACLs anywhere, a renamed pool changes nothing here.
    let off = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert_eq!(
        off.reloadable.permissions_for(&resolution("pool-renamed")),
        Ok(None)
    );
}
