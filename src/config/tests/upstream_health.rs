//! `upstream.health`: defaults, values, and the errors that name the field.

use std::time::Duration;

use super::*;
use crate::config::HealthSettings;

impl Fixture {
    /// The valid configuration with `health` (YAML under `upstream.health`, indented by 4).
    fn with_health(&self, health: &str) -> String {
        self.yaml(&self.ca_block(&self.path("ca.pem"), GOOD_POOLS))
            .replace(
                "  bootstrap_servers: [127.0.0.1:19092]\n",
                &format!("  bootstrap_servers: [127.0.0.1:19092]\n  health:\n{health}"),
            )
    }
}

#[test]
fn absent_it_refuses_when_down_with_the_default_intervals() {
    let f = Fixture::new();
    let config = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert_eq!(config.reloadable.upstream.health, HealthSettings::default());
    assert!(config.reloadable.upstream.health.refuse_when_down);
    assert_eq!(
        config.reloadable.upstream.health.max_probe_interval,
        Duration::from_millis(2_000)
    );
}

#[test]
fn set_values_are_taken() {
    let f = Fixture::new();
    let yaml = f.with_health(
        "    refuse_when_down: false\n    probe_interval_ms: 100\n    max_probe_interval_ms: 900\n",
    );
    let health = f.load(&yaml).unwrap().reloadable.upstream.health;
    assert_eq!(
        health,
        HealthSettings {
            refuse_when_down: false,
            probe_interval: Duration::from_millis(100),
            max_probe_interval: Duration::from_millis(900),
        }
    );
}

#[test]
fn bad_intervals_name_their_field() {
    let f = Fixture::new();
    let issues = f.issues(&f.with_health("    probe_interval_ms: 0\n"));
    assert!(
        has(
            &issues,
            "upstream.health.probe_interval_ms",
            "greater than 0"
        ),
        "{issues:?}"
    );
    let issues =
        f.issues(&f.with_health("    probe_interval_ms: 5000\n    max_probe_interval_ms: 1000\n"));
    assert!(
        has(
            &issues,
            "upstream.health.max_probe_interval_ms",
            "at least probe_interval_ms (5000)"
        ),
        "{issues:?}"
    );
    match f.load(&f.with_health("    probe_every_ms: 5\n")) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("probe_every_ms"), "{message}")
        }
        Err(other) => panic!("expected a syntax error, got {other}"),
        Ok(_) => panic!("a typo was silently accepted"),
    }
}
