//! The audit writer: one blocking task appending the queued records, whole lines, to standard
//! output or to the audit file.
//!
//! The file rotates by size ([`AuditRotation`]): before a record would take it past
//! `max_file_bytes`, `PATH` becomes `PATH.1` (`.1` becomes `.2`, and so on; the oldest beyond
//! `max_files` is deleted) and a new `PATH` is started, so a record is never split between
//! files. On request ([`AuditReopen`], sent on SIGHUP) the file is opened again at its path: for
//! external rotation, where logrotate moves the file away and then signals the proxy.
//!
//! Nothing here reads a clock: the writer is driven by its queue alone, and its tests use
//! plain files.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::AuditRotation;

/// What the writer task receives, in order.
pub(super) enum Entry {
    /// One record, with its line break.
    Line(String),
    /// Open the file again before the records queued after this.
    Reopen,
}

/// Asks the audit writer to open its file again. Cheap to clone, never waits, and does not
/// keep the writer running (it ends once every [`super::AuditSink`] is gone). A no-op when the
/// records go to standard output or nowhere.
#[derive(Clone, Default)]
pub struct AuditReopen {
    wake: Option<mpsc::WeakSender<Entry>>,
    /// Set when the queue was full: the writer then re-opens after its current batch.
    pending: Arc<AtomicBool>,
}

impl AuditReopen {
    pub(super) fn new(queue: &mpsc::Sender<Entry>, pending: Arc<AtomicBool>) -> Self {
        Self {
            wake: Some(queue.downgrade()),
            pending,
        }
    }

    /// Open the audit file again at its path, in queue order: records queued before go to the
    /// file open now (where logrotate moved it), records queued after to the file at the path.
    /// When the queue is full, the file is re-opened after the batch being written.
    pub fn reopen(&self) {
        let Some(queue) = self.wake.as_ref().and_then(mpsc::WeakSender::upgrade) else {
            return;
        };
        if let Err(TrySendError::Full(_)) = queue.try_send(Entry::Reopen) {
            self.pending.store(true, Ordering::Release);
        }
    }
}

/// Where the writer appends.
pub(super) enum Output {
    Stdout(io::Stdout),
    File(AuditFile),
}

impl Output {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.write_all(line.as_bytes()),
            Output::File(file) => file.write_line(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::File(file) => file.flush(),
        }
    }

    fn reopen(&mut self) {
        if let Output::File(file) = self
            && let Err(e) = file.reopen()
        {
            tracing::error!(
                path = %file.path.display(),
                error = %e,
                "cannot re-open the audit log; writing on to the file open before"
            );
        }
    }
}

/// The writer task: until every sender is gone, write what is queued, in batches (one flush
/// each), re-opening the file where asked.
pub(super) fn run(mut output: Output, mut queue: mpsc::Receiver<Entry>, pending: &AtomicBool) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        for entry in batch {
            match entry {
                Entry::Line(line) => {
                    if let Err(e) = output.write_line(&line) {
                        tracing::error!(error = %e, "audit log write failed");
                    }
                }
                Entry::Reopen => output.reopen(),
            }
        }
        if let Err(e) = output.flush() {
            tracing::error!(error = %e, "audit log flush failed");
        }
        if pending.swap(false, Ordering::AcqRel) {
            output.reopen();
        }
    }
}

/// The audit file: appended to in whole lines, rotated by size, re-opened on request.
pub(super) struct AuditFile {
    path: PathBuf,
    rotation: AuditRotation,
    file: BufWriter<File>,
    /// The size of the file open: its size when opened, plus what was written since.
    len: u64,
}

impl AuditFile {
    /// Open `path` for appending (creating it, and its directory, when missing).
    pub(super) fn open(path: &Path, rotation: AuditRotation) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let (file, len) = append(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            rotation,
            file,
            len,
        })
    }

    /// Append one record (a whole line), after rotating when it would take the file past
    /// `max_file_bytes`. A record larger than that fills a file of its own rather than be
    /// split.
    pub(super) fn write_line(&mut self, line: &str) -> io::Result<()> {
        let size = line.len() as u64;
        let max = self.rotation.max_file_bytes;
        let rotate = max != 0 && self.len > 0 && self.len.saturating_add(size) > max;
        if rotate && let Err(e) = self.rotate() {
            tracing::error!(
                path = %self.path.display(),
                error = %e,
                "audit log rotation failed; writing on to the current file"
            );
            // Tried again after another max_file_bytes, not at every record.
            self.len = 0;
        }
        self.file.write_all(line.as_bytes())?;
        self.len = self.len.saturating_add(size);
        Ok(())
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// `PATH.{max_files}` deleted, every `PATH.i` renamed `PATH.{i+1}`, `PATH` renamed
    /// `PATH.1`, and a new `PATH` opened. A number missing in the sequence is skipped.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let kept = self.rotation.max_files;
        if kept == 0 {
            remove_if_present(&self.path)?;
        } else {
            remove_if_present(&numbered(&self.path, kept))?;
            for i in (1..kept).rev() {
                rename_if_present(&numbered(&self.path, i), &numbered(&self.path, i + 1))?;
            }
            rename_if_present(&self.path, &numbered(&self.path, 1))?;
        }
        (self.file, self.len) = append(&self.path)?;
        Ok(())
    }

    /// Open the file at the path again, a new one when it was moved away. On failure the file
    /// open before stays open and is written to.
    pub(super) fn reopen(&mut self) -> io::Result<()> {
        // What the old file was given goes to it, even if it has been moved.
        let flushed = self.file.flush();
        (self.file, self.len) = append(&self.path)?;
        flushed
    }
}

/// `path` opened for appending (created when missing), and its size.
fn append(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    Ok((BufWriter::new(file), len))
}

/// `PATH.n`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
