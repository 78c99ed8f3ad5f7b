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

/// What clients are told for `node_id`, owned (for comparisons).
fn addr(l: &ListenerConfig, node_id: i32) -> Option<(String, u16)> {
    l.advertised_address(node_id)
        .map(|(host, port)| (host.into_owned(), port))
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
    assert_eq!(addr(&l, 1), Some(("localhost".to_string(), 9094)));

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
    assert_eq!(addr(&l, 1), Some(("localhost".to_string(), 31001)));
    assert_eq!(addr(&l, 2), Some(("localhost".to_string(), 443)));
    assert_eq!(
        addr(&l, 3),
        Some(("broker-3.kafka.example.com".to_string(), 9093))
    );
    // The proxy binds nothing for a negative node id: it is never advertised.
    assert_eq!(addr(&l, -1), None);
    assert_eq!(addr(&l, 65000), None, "31000 + 65000 is no port");

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

/// The valid fixture with `listener.proxy_protocol` (`section`: the YAML under the key).
fn with_proxy_protocol(f: &Fixture, section: &str) -> String {
    f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)).replace(
        "  advertised_host: localhost\n",
        &format!("  advertised_host: localhost\n  proxy_protocol:{section}\n"),
    )
}

#[test]
fn proxy_protocol_loads_with_required_and_direct_clients_by_default() {
    let f = Fixture::new();
    let cfg = f
        .load(&with_proxy_protocol(
            &f,
            "\n    trusted_sources: [10.0.0.0/8, \"2001:db8::/32\", 192.0.2.7]",
        ))
        .unwrap();
    let pp = cfg.startup.listener.proxy_protocol.unwrap();
    assert!(pp.required && pp.allow_direct);
    assert_eq!(pp.trusted_sources.len(), 3);
    assert!(pp.trusts("192.0.2.7".parse().unwrap()));
    // Absent: off.
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert!(cfg.startup.listener.proxy_protocol.is_none());
}

#[test]
fn proxy_protocol_problems_name_their_field() {
    let f = Fixture::new();
    let issues = f.issues(&with_proxy_protocol(
        &f,
        "\n    trusted_sources: [10.0.0.0/8, 10.1.0.0/8]\n    required: false",
    ));
    assert!(
        has(
            &issues,
            "listener.proxy_protocol.trusted_sources[1]",
            "write 10.0.0.0/8"
        ),
        "{issues:?}"
    );
    let issues = f.issues(&with_proxy_protocol(&f, "\n    trusted_sources: []"));
    assert!(
        has(
            &issues,
            "listener.proxy_protocol.trusted_sources",
            "at least one"
        ),
        "{issues:?}"
    );
    // A misspelt key is an error, not a silently ignored setting.
    assert!(
        f.load(&with_proxy_protocol(
            &f,
            "\n    trusted_sources: [10.0.0.0/8]\n    requried: false"
        ))
        .is_err()
    );
}

#[test]
fn sni_advertises_the_pattern_and_warns_when_the_certificate_does_not_cover_it() {
    let f = Fixture::new();
    let base = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS));
    let sni = base.replace(
        "  advertised_host: localhost\n",
        "  advertised_host: localhost\n  sni:\n    bootstrap: Bootstrap.Kafka.Test\n    broker_pattern: \"broker-{id}.kafka.test\"\n",
    );
    let loaded = f.load(&sni).unwrap();
    // The fixture's certificate names only localhost: every SNI name is warned about.
    for (field, host) in [
        ("listener.sni.bootstrap", "bootstrap.kafka.test"),
        (
            "listener.sni.broker_pattern `broker-{id}.kafka.test`, node 0",
            "broker-0.kafka.test",
        ),
    ] {
        assert!(
            has(
                &loaded.warnings,
                "tls.certificate_chain",
                &format!("does not name `{host}` ({field})")
            ),
            "{field}: {:?}",
            loaded.warnings
        );
    }
    assert!(
        !has(
            &loaded.warnings,
            "tls.certificate_chain",
            "listener.advertised_host"
        ),
        "advertised_host is not used in SNI mode: {:?}",
        loaded.warnings
    );
    let l = loaded.startup.listener;
    // Every broker on the one port (the bootstrap's), by name; no negative node ids.
    assert_eq!(addr(&l, 2), Some(("broker-2.kafka.test".to_string(), 9092)));
    assert_eq!(
        addr(&l, 70000),
        Some(("broker-70000.kafka.test".to_string(), 9092))
    );
    assert_eq!(addr(&l, -1), None);

    // A wildcard certificate covers the bootstrap name and every broker name.
    let (cert, key) = leaf_pem_and_key("*.kafka.test");
    f.write("server.pem", &cert);
    f.write("server.key", &key);
    let loaded = f.load(&sni).unwrap();
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.reason.contains("listener.sni")),
        "{:?}",
        loaded.warnings
    );

    // A load balancer's port; `advertised` is for port-per-broker only.
    let with_port = sni.replace(
        "broker_pattern: \"broker-{id}.kafka.test\"\n",
        "broker_pattern: \"broker-{id}.kafka.test\"\n    advertised_port: 443\n",
    );
    let l = f.load(&with_port).unwrap().startup.listener;
    assert_eq!(addr(&l, 1), Some(("broker-1.kafka.test".to_string(), 443)));
    let issues =
        f.issues(&sni.replace("  sni:\n", "  advertised:\n    first_port: 31000\n  sni:\n"));
    assert!(
        has(&issues, "listener.advertised", "not with listener.sni"),
        "{issues:?}"
    );
    let issues = f.issues(&sni.replace("broker-{id}.kafka.test", "broker.kafka.test"));
    assert!(
        has(&issues, "listener.sni.broker_pattern", "exactly once"),
        "{issues:?}"
    );
}

#[test]
fn advertised_host_is_optional_in_sni_mode_only() {
    let f = Fixture::new();
    let base = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS));
    // SNI mode without advertised_host: loads, and the pattern is what clients are told.
    let sni = base.replace(
        "  advertised_host: localhost\n",
        "  sni:\n    bootstrap: bootstrap.kafka.test\n    broker_pattern: \"broker-{id}.kafka.test\"\n",
    );
    let l = f.load(&sni).unwrap().startup.listener;
    assert_eq!(l.advertised_host, None);
    assert_eq!(addr(&l, 3), Some(("broker-3.kafka.test".to_string(), 9092)));
    // Port-per-broker without it: refused, naming the field and why.
    let issues = f.issues(&base.replace("  advertised_host: localhost\n", ""));
    assert!(
        has(
            &issues,
            "listener.advertised_host",
            "required in port-per-broker mode"
        ),
        "{issues:?}"
    );
    // Given but empty is still a mistake, in either mode.
    let issues = f.issues(&sni.replace("  sni:\n", "  advertised_host: ' '\n  sni:\n"));
    assert!(
        has(&issues, "listener.advertised_host", "must not be empty"),
        "{issues:?}"
    );
}
