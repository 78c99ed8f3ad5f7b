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
