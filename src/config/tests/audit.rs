//! `audit`: the file's rotation settings.

use super::*;

/// The valid fixture writing its audit records to a file, with `extra` (indented keys) added
/// to the `audit` section.
fn with_audit_file(f: &Fixture, extra: &str) -> String {
    let yaml = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS));
    yaml.replace(
        "  path: \"off\"\n",
        &format!("  path: {}\n{extra}", f.path("audit.log").display()),
    )
}

#[test]
fn an_audit_file_rotates_at_100_mib_and_keeps_5_by_default() {
    let f = Fixture::new();
    let cfg = f.load(&with_audit_file(&f, "")).unwrap();
    assert_eq!(
        cfg.startup.audit.destination,
        AuditDestination::File(f.path("audit.log"))
    );
    assert_eq!(
        cfg.startup.audit.rotation,
        AuditRotation {
            max_file_bytes: 100 * 1024 * 1024,
            max_files: 5,
        }
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn rotation_settings_load_as_written() {
    let f = Fixture::new();
    let cfg = f
        .load(&with_audit_file(
            &f,
            "  max_file_bytes: 1048576\n  max_files: 1000\n",
        ))
        .unwrap();
    assert_eq!(
        cfg.startup.audit.rotation,
        AuditRotation {
            max_file_bytes: 1024 * 1024,
            max_files: 1000,
        }
    );
}

#[test]
fn zero_bytes_never_rotates_and_then_zero_files_is_allowed() {
    let f = Fixture::new();
    let cfg = f
        .load(&with_audit_file(&f, "  max_file_bytes: 0\n"))
        .unwrap();
    assert_eq!(cfg.startup.audit.rotation.max_file_bytes, 0);
    let cfg = f
        .load(&with_audit_file(
            &f,
            "  max_file_bytes: 0\n  max_files: 0\n",
        ))
        .unwrap();
    assert_eq!(
        cfg.startup.audit.rotation,
        AuditRotation {
            max_file_bytes: 0,
            max_files: 0,
        }
    );
}

#[test]
fn invalid_rotation_settings_name_their_field() {
    let f = Fixture::new();
    // A size in the wrong unit (megabytes) would keep only a few records.
    let issues = f.issues(&with_audit_file(&f, "  max_file_bytes: 100\n"));
    assert!(
        has(&issues, "audit.max_file_bytes", "at least 1048576"),
        "{issues:?}"
    );
    // Rotating while keeping nothing deletes audit records.
    let issues = f.issues(&with_audit_file(&f, "  max_files: 0\n"));
    assert!(
        has(&issues, "audit.max_files", "must be at least 1"),
        "{issues:?}"
    );
    let issues = f.issues(&with_audit_file(&f, "  max_files: 1001\n"));
    assert!(
        has(&issues, "audit.max_files", "at most 1000"),
        "{issues:?}"
    );
    for bad in ["max_file_bytes: -1", "max_files: many"] {
        match f.load(&with_audit_file(&f, &format!("  {bad}\n"))) {
            Err(ConfigError::Syntax { .. }) => {}
            Err(other) => panic!("{bad}: expected a syntax error, got {other}"),
            Ok(_) => panic!("{bad}: accepted"),
        }
    }
}

#[test]
fn rotation_settings_without_an_audit_file_are_warnings() {
    let f = Fixture::new();
    let yaml = f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)).replace(
        "  path: \"off\"\n",
        "  path: \"-\"\n  max_file_bytes: 2097152\n  max_files: 3\n",
    );
    let cfg = f.load(&yaml).unwrap();
    assert_eq!(cfg.startup.audit.destination, AuditDestination::Stdout);
    for field in ["audit.max_file_bytes", "audit.max_files"] {
        assert!(
            has(&cfg.warnings, field, "only when audit.path is a file"),
            "{field}: {:?}",
            cfg.warnings
        );
    }
}
