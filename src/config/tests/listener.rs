//! `listener`: broker ports.

use std::collections::BTreeMap;

use super::*;

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

#[test]
fn advertised_addresses_are_configured_apart_from_the_bound_ports() {
    let f = Fixture::new();
    let base = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS));
    let with = |advertised: &str| {
        base.replace(
            "  advertised_host: localhost\n",
            &format!("  advertised_host: localhost\n  advertised:\n{advertised}"),
        )
    };

    // Nothing configured: the bound port.
    let l = f.load(&base).unwrap().startup.listener;
    assert_eq!(l.advertised_address(1), Some(("localhost", 9094)));

    let l = f
        .load(&with(
            "    first_port: 31000\n    node_ports: {2: 443}\n    nodes: {3: \"broker-3.kafka.example.com:9093\"}\n",
        ))
        .unwrap();
    assert!(
        has(
            &l.warnings,
            "tls.certificate_chain",
            "does not name `broker-3.kafka.example.com` (listener.advertised.nodes.3)"
        ),
        "{:?}",
        l.warnings
    );
    let l = l.startup.listener;
    assert_eq!(l.advertised_address(1), Some(("localhost", 31001)));
    assert_eq!(l.advertised_address(2), Some(("localhost", 443)));
    assert_eq!(
        l.advertised_address(3),
        Some(("broker-3.kafka.example.com", 9093))
    );
    // The proxy binds nothing for a negative node id: it is never advertised.
    assert_eq!(l.advertised_address(-1), None);
    assert_eq!(
        l.advertised_address(65000),
        None,
        "31000 + 65000 is no port"
    );

    let issues = f.issues(&with(
        "    first_port: 0\n    node_ports: {2: 0}\n    nodes: {3: \"no-port\", 4: \"h:70000\"}\n",
    ));
    for field in [
        "listener.advertised.first_port",
        "listener.advertised.node_ports.2",
        "listener.advertised.nodes.3",
        "listener.advertised.nodes.4",
    ] {
        assert!(
            issues.iter().any(|i| i.field == field),
            "{field}: {issues:?}"
        );
    }
}
