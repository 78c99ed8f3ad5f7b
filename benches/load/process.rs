//! Child processes (killed when dropped), their CPU time and memory, and finding the binaries
//! the paths run.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use tokio::net::TcpStream;

use crate::broker::BrokerKind;

/// A child process that is killed (and reaped) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error (with the end of its log) when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            ),
        }
    }
}

impl Proc {
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Wait until `addr` accepts TCP connections, or `proc` dies, or `limit` passes.
pub async fn wait_for_port(addr: SocketAddr, proc: &mut Proc, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        proc.check_alive()?;
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
        {
            drop(s);
            return Ok(());
        }
        ensure!(
            start.elapsed() < limit,
            "{} does not listen on {addr} after {limit:?}; end of {}:\n{}",
            proc.name,
            proc.log.display(),
            tail(&proc.log, 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start with the state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of a process, MB.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

pub fn find_in_path(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub struct Binaries {
    pub proxy: PathBuf,
    /// With `--broker tansu` only.
    pub tansu: Option<PathBuf>,
    pub haproxy: Option<PathBuf>,
}

impl Binaries {
    pub fn find(broker: BrokerKind) -> Result<Self> {
        let proxy = match std::env::var_os("KAFKA_MTLS_PROXY_BIN") {
            Some(p) => PathBuf::from(p),
            None => build_proxy()?,
        };
        ensure!(
            proxy.is_file(),
            "no proxy binary at {} (run `cargo build --release --bins`, or set KAFKA_MTLS_PROXY_BIN)",
            proxy.display()
        );
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let cargo_bin: Vec<PathBuf> = home.iter().map(|h| h.join(".cargo/bin")).collect();
        let tansu = match (broker, std::env::var_os("TANSU_BIN")) {
            (BrokerKind::Kafka, _) => None,
            (BrokerKind::Tansu, Some(p)) => Some(PathBuf::from(p)),
            (BrokerKind::Tansu, None) => Some(
                find_in_path("tansu", &cargo_bin)
                    .ok_or_else(|| anyhow!("tansu not found: run scripts/install-tansu"))?,
            ),
        };
        let haproxy = match std::env::var_os("HAPROXY_BIN") {
            Some(p) => Some(PathBuf::from(p)),
            None => find_in_path("haproxy", &[PathBuf::from("/usr/sbin")]),
        };
        Ok(Self {
            proxy,
            tansu,
            haproxy,
        })
    }
}

/// The release proxy binary next to this benchmark (`target/release/deps/load-…` →
/// `target/release/kafka-mtls-proxy`), rebuilt first when cargo runs us, so the benchmark never
/// measures a stale binary.
pub fn build_proxy() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("cannot locate the target directory from {}", exe.display()))?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!(
            "building the release proxy binary (cargo build --release --bin kafka-mtls-proxy)…"
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--bin", "kafka-mtls-proxy"])
            .env("CARGO_TARGET_DIR", release.parent().unwrap_or(release))
            .status()
            .context("running cargo build")?;
        ensure!(status.success(), "cargo build --release failed ({status})");
    }
    Ok(release.join("kafka-mtls-proxy"))
}
