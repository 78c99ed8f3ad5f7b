//! `reload`, and the files the reload watch looks at.

use std::time::Duration;

use super::*;

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
