//! The audit writer on plain files: rotation at the size boundary, the kept count, whole
//! records only, and re-opening a file that logrotate moved away.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::mpsc;

use super::*;
use crate::audit::AuditSink;
use crate::config::{AuditConfig, AuditDestination};
use crate::metrics::Metrics;

/// Record `n` as a line of exactly `size` bytes, line break included.
fn record(n: usize, size: usize) -> String {
    let mut line = format!("record-{n}-");
    line.extend(std::iter::repeat_n('x', size - line.len() - 1));
    line.push('\n');
    assert_eq!(line.len(), size);
    line
}

/// The numbers of the records in the file at `path` (none when it does not exist), checking
/// that each line is a whole record.
fn records(path: &Path) -> Vec<usize> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|line| {
            let rest = line.strip_prefix("record-").expect("a whole record");
            let (n, padding) = rest.split_once('-').expect("a whole record");
            assert!(padding.chars().all(|c| c == 'x'), "{line}");
            n.parse().expect("a record number")
        })
        .collect()
}

fn rotation(max_file_bytes: u64, max_files: usize) -> AuditRotation {
    AuditRotation {
        max_file_bytes,
        max_files,
    }
}

/// Write records `numbers` of `size` bytes, flushing after each (as the task does per batch).
fn write(file: &mut AuditFile, numbers: std::ops::RangeInclusive<usize>, size: usize) {
    for n in numbers {
        file.write_line(&record(n, size)).unwrap();
        file.flush().unwrap();
    }
}

#[test]
fn a_file_may_reach_max_file_bytes_and_the_record_that_would_pass_it_starts_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut file = AuditFile::open(&path, rotation(100, 5)).unwrap();

    // Four records of 25 bytes: exactly 100, no rotation.
    write(&mut file, 1..=4, 25);
    assert_eq!(records(&path), [1, 2, 3, 4]);
    assert!(!numbered(&path, 1).exists());

    // The fifth would make 125.
    write(&mut file, 5..=5, 25);
    assert_eq!(records(&numbered(&path, 1)), [1, 2, 3, 4]);
    assert_eq!(records(&path), [5]);
    assert_eq!(std::fs::metadata(numbered(&path, 1)).unwrap().len(), 100);
}

#[test]
fn the_size_of_an_existing_file_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    std::fs::write(&path, record(0, 90)).unwrap();
    let mut file = AuditFile::open(&path, rotation(100, 5)).unwrap();

    write(&mut file, 1..=1, 20);

    assert_eq!(records(&numbered(&path, 1)), [0]);
    assert_eq!(records(&path), [1]);
}

#[test]
fn max_files_rotated_files_are_kept_and_older_ones_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // Two 40-byte records per file.
    let mut file = AuditFile::open(&path, rotation(80, 3)).unwrap();

    write(&mut file, 1..=11, 40);

    assert_eq!(records(&path), [11]);
    assert_eq!(records(&numbered(&path, 1)), [9, 10]);
    assert_eq!(records(&numbered(&path, 2)), [7, 8]);
    assert_eq!(records(&numbered(&path, 3)), [5, 6]);
    assert!(!numbered(&path, 4).exists());
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    );
}

#[test]
fn a_record_larger_than_max_file_bytes_is_not_split() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut file = AuditFile::open(&path, rotation(100, 5)).unwrap();

    write(&mut file, 1..=1, 30);
    write(&mut file, 2..=2, 250);
    write(&mut file, 3..=3, 30);

    assert_eq!(records(&numbered(&path, 2)), [1]);
    assert_eq!(records(&numbered(&path, 1)), [2]);
    assert_eq!(records(&path), [3]);
}

#[test]
fn zero_max_file_bytes_never_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut file = AuditFile::open(&path, rotation(0, 5)).unwrap();

    write(&mut file, 1..=100, 100);

    assert_eq!(records(&path), (1..=100).collect::<Vec<_>>());
    assert!(!numbered(&path, 1).exists());
}

#[test]
fn a_failed_rotation_loses_nothing_and_is_tried_again_after_another_max_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // `audit.log.1` cannot be deleted to make room: it is a directory.
    std::fs::create_dir(numbered(&path, 1)).unwrap();
    let mut file = AuditFile::open(&path, rotation(100, 1)).unwrap();

    write(&mut file, 1..=4, 30);
    assert_eq!(records(&path), [1, 2, 3, 4]);

    std::fs::remove_dir(numbered(&path, 1)).unwrap();
    // Not at the next record: 30 + 30 bytes since the failure.
    write(&mut file, 5..=5, 30);
    assert_eq!(records(&path), [1, 2, 3, 4, 5]);
    // Then, past 100 bytes since the failure, again.
    write(&mut file, 6..=7, 30);
    assert_eq!(records(&numbered(&path, 1)), [1, 2, 3, 4, 5, 6]);
    assert_eq!(records(&path), [7]);
}

#[test]
fn reopen_after_the_file_was_moved_away_writes_a_new_file_at_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log-20260101");
    let mut file = AuditFile::open(&path, rotation(1000, 5)).unwrap();
    write(&mut file, 1..=2, 100);

    // logrotate: `mv audit.log audit.log-20260101`, then SIGHUP.
    std::fs::rename(&path, &moved).unwrap();
    write(&mut file, 3..=3, 100);
    file.reopen().unwrap();
    write(&mut file, 4..=5, 100);

    assert_eq!(records(&moved), [1, 2, 3]);
    assert_eq!(records(&path), [4, 5]);
    // The new file's size counts from 0: ten records fit in it.
    write(&mut file, 6..=13, 100);
    assert_eq!(records(&path), (4..=13).collect::<Vec<_>>());
    write(&mut file, 14..=14, 100);
    assert_eq!(records(&numbered(&path, 1)), (4..=13).collect::<Vec<_>>());
}

#[test]
fn reopen_of_a_file_still_in_place_appends_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut file = AuditFile::open(&path, rotation(100, 5)).unwrap();
    write(&mut file, 1..=3, 30);

    file.reopen().unwrap();
    write(&mut file, 4..=4, 30);

    // Its size was kept: the fourth record rotated it.
    assert_eq!(records(&numbered(&path, 1)), [1, 2, 3]);
    assert_eq!(records(&path), [4]);
}

#[test]
fn a_failed_reopen_keeps_writing_to_the_file_open_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log.old");
    let mut file = AuditFile::open(&path, rotation(1000, 5)).unwrap();
    write(&mut file, 1..=1, 30);
    std::fs::rename(&path, &moved).unwrap();
    std::fs::create_dir(&path).unwrap();

    assert!(file.reopen().is_err());
    write(&mut file, 2..=2, 30);

    assert_eq!(records(&moved), [1, 2]);
}

#[test]
fn the_task_writes_in_queue_order_and_reopens_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log.old");
    let file = AuditFile::open(&path, rotation(0, 5)).unwrap();
    let (tx, rx) = mpsc::channel(16);
    let pending = AtomicBool::new(false);
    for entry in [
        Entry::Line(record(1, 30)),
        Entry::Line(record(2, 30)),
        Entry::Reopen,
        Entry::Line(record(3, 30)),
    ] {
        tx.try_send(entry).unwrap_or_else(|_| panic!("queue full"));
    }
    drop(tx);
    // The file is moved before the writer runs: records 1 and 2 follow it, 3 does not.
    std::fs::rename(&path, &moved).unwrap();

    run(Output::File(file), rx, &pending);

    assert_eq!(records(&moved), [1, 2]);
    assert_eq!(records(&path), [3]);
}

#[test]
fn a_reopen_asked_while_the_queue_is_full_happens_after_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log.old");
    let file = AuditFile::open(&path, rotation(0, 5)).unwrap();
    let (tx, rx) = mpsc::channel(2);
    let pending = Arc::new(AtomicBool::new(false));
    let reopen = AuditReopen::new(&tx, pending.clone());
    for n in 1..=2 {
        tx.try_send(Entry::Line(record(n, 30)))
            .unwrap_or_else(|_| panic!("queue full"));
    }
    std::fs::rename(&path, &moved).unwrap();

    reopen.reopen();
    assert!(pending.load(Ordering::Acquire), "the queue was not full");
    drop(tx);
    run(Output::File(file), rx, &pending);

    // The batch went to the file it was queued for, then a new file was opened at the path.
    assert_eq!(records(&moved), [1, 2]);
    assert!(path.is_file());
    assert_eq!(records(&path), Vec::<usize>::new());
    assert!(!pending.load(Ordering::Acquire));
}

/// The sink's re-open handle reaches its writer task, and does not keep it running.
#[tokio::test]
async fn the_sinks_reopener_reopens_the_file_of_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit").join("audit.log");
    let moved = dir.path().join("audit").join("audit.log.1");
    let config = AuditConfig {
        destination: AuditDestination::File(path.clone()),
        source: "test".into(),
        queue_capacity: 16,
        rotation: rotation(0, 5),
    };
    let (sink, task) = AuditSink::start(&config, Arc::new(Metrics::new())).unwrap();
    let reopener = sink.reopener();

    sink.queue(serde_json::json!({"n": 1}));
    std::fs::rename(&path, &moved).unwrap();
    reopener.reopen();
    sink.queue(serde_json::json!({"n": 2}));
    drop(sink);
    task.unwrap().await.unwrap();

    assert_eq!(std::fs::read_to_string(&moved).unwrap(), "{\"n\":1}\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n");
    // The writer is gone: asking again does nothing.
    reopener.reopen();
}
