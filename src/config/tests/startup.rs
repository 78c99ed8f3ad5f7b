//! What a reload reports as taking effect only at restart: every startup setting by its name,
//! and nothing for what a configuration generation carries.

use std::time::Duration;

use super::*;

impl Fixture {
    /// The valid configuration, edited by `edit`.
    fn edited(&self, edit: impl FnOnce(String) -> String) -> String {
        edit(self.yaml(&self.ca_block(&self.path("ca.pem"), GOOD_POOLS)))
    }

    /// What a proxy started on `before` would report when reloading `after`.
    fn restart_only(&self, before: &str, after: &str) -> Vec<&'static str> {
        let before = self.load(before).unwrap();
        let after = self.load(after).unwrap();
        before.startup.restart_only_changes(&after.startup)
    }
}

/// Replace the one occurrence of `from` (so a fixture change cannot silently edit nothing).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` in {text}");
    text.replace(from, to)
}

#[test]
fn a_changed_drain_timeout_is_reloaded_not_reported_as_restart_only() {
    let f = Fixture::new();
    let before = f.edited(|y| format!("{y}limits:\n  drain_timeout_ms: 30000\n"));
    let after = f.edited(|y| format!("{y}limits:\n  drain_timeout_ms: 500\n"));
    assert_eq!(f.restart_only(&before, &after), Vec::<&str>::new());
    let reloaded = f.load(&after).unwrap();
    assert_eq!(
        reloaded.reloadable.limits.drain_timeout,
        Duration::from_millis(500)
    );
}

#[test]
fn a_request_budget_smaller_than_the_largest_frame_is_refused_with_both_values() {
    let f = Fixture::new();
    let small = f.edited(|y| {
        format!("{y}limits:\n  max_frame_bytes: 2000000\n  max_buffered_request_bytes: 1000000\n")
    });
    let issues = f.issues(&small);
    assert!(
        has(
            &issues,
            "limits.max_buffered_request_bytes",
            "must be at least limits.max_frame_bytes (2000000), so that the largest request can \
             be held (got 1000000)"
        ),
        "{issues:?}"
    );
    let stall = f.edited(|y| format!("{y}limits:\n  request_stall_timeout_ms: 0\n"));
    assert!(
        has(
            &f.issues(&stall),
            "limits.request_stall_timeout_ms",
            "must be greater than 0"
        ),
        "{stall}"
    );
    let fits = f.edited(|y| {
        format!("{y}limits:\n  max_frame_bytes: 1000\n  max_buffered_request_bytes: 1000\n  request_stall_timeout_ms: 2500\n")
    });
    let cfg = f.load(&fits).unwrap();
    assert_eq!(cfg.startup.limits.max_buffered_request_bytes, 1000);
    assert_eq!(
        cfg.reloadable.limits.request_stall_timeout,
        Duration::from_millis(2500)
    );
    let defaults = f.load(&f.edited(|y| y)).unwrap();
    assert_eq!(
        defaults.startup.limits.max_buffered_request_bytes,
        256 * 1024 * 1024
    );
    assert_eq!(
        defaults.reloadable.limits.request_stall_timeout,
        Duration::from_secs(30)
    );
}

#[test]
fn an_unchanged_file_reports_nothing() {
    let f = Fixture::new();
    let same = f.edited(|y| y);
    assert_eq!(f.restart_only(&same, &same), Vec::<&str>::new());
}

#[test]
fn every_startup_setting_is_reported_by_its_name() {
    let f = Fixture::new();
    let base = f.edited(|y| y);
    let listener = |from: &str, to: &str| replace_once(&base, from, to);
    let appended = |section: &str| format!("{base}{section}");
    let cases: Vec<(&str, String)> = vec![
        (
            "listener.bootstrap",
            listener("bootstrap: 127.0.0.1:9092", "bootstrap: 127.0.0.1:9192"),
        ),
        (
            "listener.advertised_host",
            listener("advertised_host: localhost", "advertised_host: 127.0.0.1"),
        ),
        (
            "listener.broker_bind_address",
            listener(
                "advertised_host: localhost\n",
                "advertised_host: localhost\n  broker_bind_address: 127.0.0.2\n",
            ),
        ),
        (
            "listener.broker_ports",
            listener(
                "advertised_host: localhost\n",
                "advertised_host: localhost\n  broker_ports:\n    first_port: 9300\n",
            ),
        ),
        (
            "listener.broker_ports",
            listener(
                "advertised_host: localhost\n",
                "advertised_host: localhost\n  broker_ports:\n    node_ports:\n      1001: 9400\n",
            ),
        ),
        (
            "limits.max_connections",
            appended("limits:\n  max_connections: 5\n"),
        ),
        (
            "limits.max_broker_listeners",
            appended("limits:\n  max_broker_listeners: 5\n"),
        ),
        (
            "limits.max_buffered_request_bytes",
            appended("limits:\n  max_buffered_request_bytes: 500000000\n"),
        ),
        ("audit", listener("path: \"off\"", "path: \"-\"")),
        (
            "audit",
            listener("path: \"off\"", "path: \"off\"\n  source: elsewhere"),
        ),
        (
            "audit",
            listener("path: \"off\"", "path: \"off\"\n  queue_capacity: 7"),
        ),
        (
            "audit",
            listener("path: \"off\"", "path: \"off\"\n  max_file_bytes: 0"),
        ),
        (
            "audit",
            listener("path: \"off\"", "path: \"off\"\n  max_files: 9"),
        ),
        ("log", appended("log:\n  format: json\n")),
        ("log", appended("log:\n  level: debug\n")),
        (
            "admin.listen",
            appended("admin:\n  listen: 127.0.0.1:9700\n"),
        ),
    ];
    for (name, after) in &cases {
        assert_eq!(f.restart_only(&base, after), [*name], "{after}");
    }
    // Removing the admin server, or moving it, is as much a change as adding it.
    let admin = appended("admin:\n  listen: 127.0.0.1:9700\n");
    let moved = appended("admin:\n  listen: 127.0.0.1:9701\n");
    assert_eq!(f.restart_only(&admin, &base), ["admin.listen"]);
    assert_eq!(f.restart_only(&admin, &moved), ["admin.listen"]);
}

#[test]
fn the_oauthbearer_key_schedule_is_reported_and_the_token_claims_are_not() {
    let f = Fixture::new();
    let identity = |extra: &str| {
        f.with_oauth(
            &format!("    mode: oauthbearer\n    issuer: i\n    audience: a\n{extra}"),
            Some("0.0.0.0:0"),
        )
    };
    let base = identity("");
    let keys = "upstream.identity (token_lifetime_ms, rotate_every_ms, publish_ahead_ms, keys_dir)";
    for extra in [
        "    token_lifetime_ms: 60000\n",
        "    rotate_every_ms: 90000000\n",
        "    publish_ahead_ms: 3960000\n",
    ] {
        assert_eq!(f.restart_only(&base, &identity(extra)), [keys], "{extra}");
    }
    let dir = f.path("keys");
    std::fs::create_dir(&dir).unwrap();
    let with_dir = identity(&format!("    keys_dir: {}\n", dir.display()));
    assert_eq!(f.restart_only(&base, &with_dir), [keys]);
    // The claims are the generation's: a reload applies them.
    let claims = identity("    scope: kafka\n").replace("issuer: i", "issuer: j");
    assert_eq!(f.restart_only(&base, &claims), Vec::<&str>::new());
    // Switching the mode is not a change of the schedule: a reload to oauthbearer is refused
    // when the key ring was not made at start, and leaving oauthbearer needs no keys.
    let none = f.with_oauth("    mode: none\n", Some("0.0.0.0:0"));
    assert_eq!(f.restart_only(&base, &none), Vec::<&str>::new());
}

#[test]
fn what_a_generation_carries_is_not_reported() {
    let f = Fixture::new();
    let base = f.edited(|y| y);
    let token = f.write("admin.token", "0123456789abcdef0123\n");
    let admin = |extra: &str| format!("{base}admin:\n  listen: 127.0.0.1:9700\n{extra}");
    assert_eq!(
        f.restart_only(
            &admin(""),
            &admin(&format!("  token_file: {}\n", token.display()))
        ),
        Vec::<&str>::new()
    );
    for section in [
        "limits:\n  max_frame_bytes: 1000\n",
        "limits:\n  handshake_timeout_ms: 1000\n",
        "limits:\n  idle_timeout_ms: 1000\n",
        "limits:\n  max_in_flight_requests: 10\n",
        "limits:\n  pool_cache_entries: 10\n",
        "limits:\n  pools_per_ca: 10\n",
        "limits:\n  request_stall_timeout_ms: 1000\n",
        "reload:\n  existing_connections: keep\n",
        "revocation:\n  crl_fetch_timeout_ms: 1000\n",
        "authorization:\n  enabled: false\n",
    ] {
        assert_eq!(
            f.restart_only(&base, &format!("{base}{section}")),
            Vec::<&str>::new(),
            "{section}"
        );
    }
    let tls13 = replace_once(
        &base,
        "  private_key: ",
        "  min_version: \"1.3\"\n  private_key: ",
    );
    assert_eq!(f.restart_only(&base, &tls13), Vec::<&str>::new());
}
