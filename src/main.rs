//! The `kafka-mtls-proxy` command line: run, check-config, explain, pki, pools, cas.
//!
//! This file runs the proxy (the library) and dispatches the other commands; the operator
//! tools live in [`tools`], a part of the binary rather than of the library.

mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kafka_mtls_proxy::config::{self, AbsentSecrets, Config, LogFormat};
use kafka_mtls_proxy::server::{self, fd_limit};
use tracing_subscriber::EnvFilter;

use tools::{explain, iam, pki};

/// jemalloc, with background threads: after a spike of connections closes, the memory goes back
/// to the system within seconds (glibc's malloc kept it; README, Performance).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const DEFAULT_CONFIG: &str = "config/proxy.yaml";

#[derive(Parser)]
#[command(
    version,
    about = "mTLS proxy for Apache Kafka: client certificates → identity pools → principals"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "KAFKA_MTLS_PROXY_CONFIG")]
        config: PathBuf,
    },
    /// Load and check a configuration; print every problem with its file, field and reason.
    ///
    /// A secret that cannot be read here (a SCRAM password, the admin token) is a warning:
    /// the proxy reads secrets when it uses them, so a configuration can be checked without
    /// them (e.g. in CI). `run` refuses to start without them.
    CheckConfig {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "KAFKA_MTLS_PROXY_CONFIG")]
        config: PathBuf,
        /// A secret that cannot be read is an error, as when the proxy starts.
        #[arg(long)]
        strict: bool,
    },
    /// Show, as JSON, how the proxy would treat a client certificate (exit 1 if refused).
    Explain {
        #[arg(long, short, default_value = DEFAULT_CONFIG, env = "KAFKA_MTLS_PROXY_CONFIG")]
        config: PathBuf,
        /// PEM file: the client certificate, optionally followed by its intermediates.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Write a development PKI (CAs, server and client certificates, keystores).
    Pki(pki::PkiArgs),
    /// Manage the identity pools of a running proxy (as `confluent iam certificate-pool`).
    Pools(iam::PoolsArgs),
    /// Manage the certificate authorities of a running proxy (as `confluent iam
    /// certificate-authority`).
    Cas(iam::CasArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { config, strict } => {
            let absent_secrets = if strict {
                AbsentSecrets::Refuse
            } else {
                AbsentSecrets::Warn
            };
            check_config(&config, absent_secrets)
        }
        Command::Explain { config, cert } => explain_cmd(&config, &cert),
        Command::Pki(args) => match pki::run(&args) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Pools(args) => iam::run_pools(&args),
        Command::Cas(args) => iam::run_cas(&args),
    }
}

/// Load a configuration or print every problem and return the exit code.
fn load_or_report(path: &std::path::Path) -> Result<Config, ExitCode> {
    load_or_report_with(path, AbsentSecrets::Refuse)
}

/// [`load_or_report`], with `absent_secrets` deciding what an unreadable secret is.
fn load_or_report_with(
    path: &std::path::Path,
    absent_secrets: AbsentSecrets,
) -> Result<Config, ExitCode> {
    match config::load_with(path, absent_secrets) {
        Ok(c) => Ok(c),
        Err(e) => {
            for line in e.issues() {
                eprintln!("error: {line}");
            }
            Err(ExitCode::from(2))
        }
    }
}

fn check_config(path: &std::path::Path, absent_secrets: AbsentSecrets) -> ExitCode {
    let config = match load_or_report_with(path, absent_secrets) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for w in &config.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    // What `run` would reach: the hard limit of this shell (a service manager may set another).
    if let Ok(hard) = fd_limit::hard_limit()
        && let Some(s) = fd_limit::shortfall(&config.startup.limits, hard)
    {
        eprintln!("warning: {}: {s}", path.display());
    }
    for (host, port) in &config.reloadable.upstream.bootstrap_servers {
        if !config::resolves(host, *port) {
            eprintln!(
                "warning: {}: upstream.bootstrap_servers: `{host}:{port}` does not resolve from here",
                path.display()
            );
        }
    }
    let pools: usize = config
        .reloadable
        .authorities
        .iter()
        .map(|a| a.pools.pools.len())
        .sum();
    println!(
        "{}: OK — {} certificate authorit{}, {} identity pool{}, bootstrap {} → {}",
        path.display(),
        config.reloadable.authorities.len(),
        if config.reloadable.authorities.len() == 1 {
            "y"
        } else {
            "ies"
        },
        pools,
        if pools == 1 { "" } else { "s" },
        config.startup.listener.bootstrap,
        config
            .reloadable
            .upstream
            .bootstrap_servers
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    ExitCode::SUCCESS
}

fn explain_cmd(config_path: &std::path::Path, cert: &std::path::Path) -> ExitCode {
    match load_or_report(config_path) {
        Ok(config) => explain::run(&config, cert),
        Err(code) => code,
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.startup.log.level.clone()));
    // Logs go to stderr (stdout is for command output); colours only on a terminal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.startup.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain => builder.init(),
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let config = match load_or_report(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    init_logging(&config);
    for w in &config.warnings {
        tracing::warn!(file = %path.display(), "{w}");
    }
    raise_fd_limit(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raise the open-file limit to the hard limit, log it, and warn when it cannot serve
/// `limits.max_connections`.
fn raise_fd_limit(config: &Config) {
    match fd_limit::raise() {
        Ok(l) => {
            tracing::info!(
                soft = l.soft,
                hard = l.hard,
                was = l.previous_soft,
                "open-file limit (RLIMIT_NOFILE)"
            );
            if let Some(s) = fd_limit::shortfall(&config.startup.limits, l.soft) {
                tracing::warn!("{s}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = server::Server::bind(config)
        .await
        .context("starting the proxy")?;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Weak: this task lives until the process ends, and a strong reference would keep the
        // audit sink open after shutdown, so the audit writer would wait out its timeout.
        // (The audit re-open handle is weak too.)
        let ctx = std::sync::Arc::downgrade(server.reloader());
        let audit = server.audit_reopen().clone();
        // Listening before the proxy serves: a SIGHUP from then on (logrotate's) must not
        // end the process, which is what SIGHUP does by default.
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        // logrotate moved the audit file away: write on to a new one.
                        audit.reopen();
                        let Some(ctx) = ctx.upgrade() else { return };
                        let _ = tokio::task::spawn_blocking(move || {
                            kafka_mtls_proxy::reload::reload_and_log(&ctx, "SIGHUP")
                        })
                        .await;
                    }
                });
            }
            Err(_) => tracing::warn!("cannot listen for SIGHUP; reload by file change only"),
        }
    }
    server.run(shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
