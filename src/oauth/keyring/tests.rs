//! The rotation schedule and `keys_dir` persistence, driven by a manual clock.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use super::*;
use crate::oauth::clock::ManualClock;

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);
const START: u64 = 1_800_000_000_000;

fn settings(dir: Option<&Path>) -> KeySettings {
    KeySettings {
        keys_dir: dir.map(Path::to_path_buf),
        ..KeySettings::default()
    }
}

fn ring(dir: Option<&Path>) -> (KeyRing, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    (KeyRing::open(settings(dir), clock.clone()).unwrap(), clock)
}

fn kids(keys: &[Arc<SigningKey>]) -> Vec<String> {
    keys.iter().map(|k| k.kid().to_owned()).collect()
}

#[test]
fn the_first_key_signs_at_once() {
    let (ring, _) = ring(None);
    let signer = ring.signer().unwrap();
    assert_eq!(signer.active_from_ms(), START);
    assert_eq!(kids(&ring.published()), [signer.kid()]);
}

#[test]
fn next_key_is_published_publish_ahead_before_it_signs() {
    let (ring, clock) = ring(None);
    let first = ring.signer().unwrap();
    // Just before the publication point: nothing new.
    clock.advance(24 * HOUR - 65 * MINUTE - Duration::from_millis(1));
    assert_eq!(ring.rotate().unwrap(), Rotation::default());
    clock.advance(Duration::from_millis(1));
    let rotation = ring.rotate().unwrap();
    let (next_kid, active_from) = rotation.generated.unwrap();
    assert_eq!(active_from, START + millis(24 * HOUR));
    // Published, not signing.
    assert_eq!(kids(&ring.published()), [first.kid(), next_kid.as_str()]);
    assert_eq!(ring.signer().unwrap().kid(), first.kid());
    // A tick while it is pending does not make a third key.
    clock.advance(HOUR);
    assert_eq!(ring.rotate().unwrap().generated, None);
    // At its activation time it signs, without any tick.
    clock.set(active_from);
    assert_eq!(ring.signer().unwrap().kid(), next_kid);
}

#[test]
fn retired_key_is_published_until_its_last_token_expires() {
    let (ring, clock) = ring(None);
    let first = ring.signer().unwrap();
    clock.advance(24 * HOUR - 65 * MINUTE);
    let (second, active_from) = ring.rotate().unwrap().generated.unwrap();
    // The last token of `first` is signed just before `active_from`, and lives 15 minutes.
    let last_exp = active_from + millis(15 * MINUTE);
    clock.set(last_exp + millis(CLOCK_SKEW_ALLOWANCE) - 1);
    assert_eq!(kids(&ring.published()), [first.kid(), second.as_str()]);
    assert!(ring.rotate().unwrap().retired.is_empty());
    clock.advance(Duration::from_millis(1));
    assert_eq!(kids(&ring.published()), [second.as_str()]);
    assert_eq!(ring.rotate().unwrap().retired, [first.kid()]);
}

#[test]
fn a_late_tick_still_publishes_publish_ahead_before_use() {
    let (ring, clock) = ring(None);
    let first = ring.signer().unwrap();
    // The proxy was busy (or down) past the due time.
    clock.advance(30 * HOUR);
    let (_, active_from) = ring.rotate().unwrap().generated.unwrap();
    assert_eq!(active_from, clock.now_ms() + millis(65 * MINUTE));
    assert_eq!(ring.signer().unwrap().kid(), first.kid());
}

#[test]
fn keys_dir_survives_a_restart_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let (ring, clock) = ring(Some(dir.path()));
    let first = ring.signer().unwrap();
    let files: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(files.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = files[0].metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(ring);
    let again = KeyRing::open(settings(Some(dir.path())), clock).unwrap();
    assert_eq!(again.signer().unwrap().kid(), first.kid());
    assert_eq!(again.published().len(), 1);
}

#[cfg(unix)]
#[test]
fn key_files_or_a_directory_open_to_others_are_reported() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let (_ring, _) = ring(Some(dir.path()));
    assert!(exposed_to_others(dir.path()).is_empty());
    let key = fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let exposed = exposed_to_others(dir.path());
    assert_eq!(exposed, vec![dir.path().to_path_buf(), key]);
}

#[test]
fn replicas_sharing_keys_dir_publish_each_others_keys_and_agree_on_the_signer() {
    let dir = tempfile::tempdir().unwrap();
    let (a, clock) = ring(Some(dir.path()));
    let b = KeyRing::open(settings(Some(dir.path())), clock.clone()).unwrap();
    assert_eq!(b.signer().unwrap().kid(), a.signer().unwrap().kid());
    clock.advance(24 * HOUR - 65 * MINUTE);
    let (next, _) = a.rotate().unwrap().generated.unwrap();
    // B's next tick loads A's key instead of making its own.
    let rotation = b.rotate().unwrap();
    assert_eq!(rotation.loaded, std::slice::from_ref(&next));
    assert_eq!(rotation.generated, None);
    assert_eq!(kids(&a.published()), kids(&b.published()));
    // Both retire it, and the file goes once.
    clock.advance(3 * HOUR);
    assert_eq!(a.rotate().unwrap().retired.len(), 1);
    assert_eq!(b.rotate().unwrap().retired.len(), 1);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    assert_eq!(b.signer().unwrap().kid(), next);
}

#[test]
fn an_unreadable_key_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("es256-1-abc.pem"), "garbage").unwrap();
    fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let clock = Arc::new(ManualClock::new(START));
    assert!(matches!(
        KeyRing::open(settings(Some(dir.path())), clock),
        Err(KeyRingError::BadFile { .. })
    ));
}

#[test]
fn tick_interval_is_a_quarter_of_publish_ahead_within_bounds() {
    let (ring, _) = ring(None);
    assert_eq!(ring.tick_interval(), MAX_TICK);
    let clock = Arc::new(ManualClock::new(START));
    let short = KeySettings {
        publish_ahead: Duration::from_secs(2),
        rotate_every: Duration::from_secs(4),
        ..settings(None)
    };
    let ring = KeyRing::open(short, clock).unwrap();
    assert_eq!(ring.tick_interval(), Duration::from_millis(500));
}
