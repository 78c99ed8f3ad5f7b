//! `kafka-mtls-proxy pki`: write a development PKI that exercises every path of the proxy.
//!
//! mTLS in front of Kafka involves two separate trust relationships, and the development PKI
//! keeps them in separate hierarchies so that a mix-up shows up as a failed handshake instead
//! of silently working:
//!
//! - **Server side** (`server-ca`): the certificate the proxy serves to clients, the certificate
//!   a TLS test broker serves to the proxy, and the client certificate the proxy may present to
//!   such a broker. Kafka clients trust `server-ca` through `truststore.p12`.
//! - **Client side** (`acme-root-ca` → `acme-intermediate-ca`): the certificates that Kafka clients
//!   present to the proxy. The proxy trusts the bundle `acme-internal-client-ca.pem` and maps each
//!   verified certificate to identity pools.
//!
//! The client certificates are chosen to hit one case each: a certificate that matches a
//! narrow pool (`acme-client`), one that matches only the broad pool (`acme-analytics`), one
//! that is trusted but matches no pool (`outsider`), one whose validity is over (`expired`), and
//! an impostor (`rogue`) whose issuer *name* and subject are identical to the real ones but whose
//! issuer *key* is not — the proxy must refuse it, which proves that it verifies signatures
//! rather than comparing names.
//!
//! Every client certificate also comes as a PKCS#12 keystore and a `.properties` file that
//! `kafka-topics.sh --command-config` accepts as is, because Java clients are the ones that
//! check most (host names in the server certificate, the trusted-certificate attribute of a
//! PKCS#12 truststore).
//!
//! Generation happens fully in memory first; only when every file is ready, and when none of them
//! exists (unless `--force`), does anything get written. A refused run therefore leaves an
//! existing PKI untouched, and a failed generation never leaves half of a new one behind.
//!
//! These certificates are for development and tests only: their keys sit unencrypted next to the
//! certificates, and the keystore password is printed and stored in plain text.
//!
//! The tool is part of the binary, not of the proxy's library. Its files: `args` (the command
//! line), `clients` (the client identities and what each is for), `issue` (keys, certificates,
//! the CRL entry), `generate` (the whole PKI as files in memory), `keystore` (PKCS#12),
//! `properties` (Kafka client configs), `files` (writing to disk), `jks` (keytool conversion),
//! `report` (what `pki` prints) and `error`.

use std::fs;

use rand::RngExt;
use time::{Duration, OffsetDateTime};

mod args;
mod clients;
mod error;
mod files;
mod generate;
mod issue;
mod jks;
mod keystore;
mod properties;
mod report;
#[cfg(test)]
mod tests;

pub use args::PkiArgs;
pub use error::PkiError;
pub use report::PkiReport;

use args::MAX_VALIDITY_DAYS;
use files::write_file;
use generate::generate;
use issue::{Window, server_sans};
use jks::JksOutcome;
use report::WrittenFile;

/// Length of the generated keystore password. 24 alphanumeric characters carry about 142 bits
/// of entropy and need no escaping in shells or Java properties files.
pub const GENERATED_PASSWORD_LEN: usize = 24;

/// Certificates become valid an hour in the past, so that a machine whose clock is slightly
/// behind the generating machine (a container, a VM) does not reject them as "not yet valid".
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::hours(1);

/// Writes the development PKI described in the module documentation into `args.out`.
///
/// Refuses with [`PkiError::AlreadyExists`] — before writing anything — if any of the files
/// exists and `args.force` is false. Private keys, keystores and `.properties` files (which
/// contain the password) are written with mode 0600 on Unix.
pub fn run(args: &PkiArgs) -> Result<PkiReport, PkiError> {
    if args.validity_days == 0 || args.validity_days > MAX_VALIDITY_DAYS {
        return Err(PkiError::InvalidValidity(args.validity_days));
    }
    let (password, password_generated) = match &args.password {
        Some(p) if p.is_empty() => return Err(PkiError::EmptyPassword),
        Some(p) => (p.clone(), false),
        None => (generate_password(), true),
    };
    let server_sans = server_sans(&args.hosts)?;
    let crl_url = match &args.crl_base_url {
        None => None,
        Some(base) => {
            let host = base.strip_prefix("http://").unwrap_or_default();
            if host.is_empty() || host.starts_with('/') {
                return Err(PkiError::InvalidCrlBaseUrl(base.clone()));
            }
            Some(format!(
                "{}/acme-intermediate-ca.crl.pem",
                base.trim_end_matches('/')
            ))
        }
    };

    // The .properties files need absolute paths (Kafka resolves relative ones against the
    // client's working directory, not the file's), so the directory must exist first.
    fs::create_dir_all(&args.out).map_err(|source| PkiError::OutDir {
        path: args.out.clone(),
        source,
    })?;
    let out_dir = fs::canonicalize(&args.out).map_err(|source| PkiError::OutDir {
        path: args.out.clone(),
        source,
    })?;

    let now = OffsetDateTime::now_utc();
    let valid = Window {
        not_before: now - CLOCK_SKEW_ALLOWANCE,
        not_after: now + Duration::days(i64::from(args.validity_days)),
    };
    let files = generate(
        &out_dir,
        &server_sans,
        valid,
        now,
        &password,
        crl_url.as_deref(),
    )?;

    if !args.force {
        // Checked for every file before writing any, so a refusal leaves the directory as it was.
        // `symlink_metadata` also sees dangling symlinks, which `Path::exists` would miss.
        if let Some(existing) = files
            .iter()
            .map(|f| out_dir.join(&f.name))
            .chain(jks::file_names().iter().map(|name| out_dir.join(name)))
            .find(|p| fs::symlink_metadata(p).is_ok())
        {
            return Err(PkiError::AlreadyExists { path: existing });
        }
    }

    let mut written = Vec::with_capacity(files.len());
    for file in &files {
        let path = out_dir.join(&file.name);
        write_file(&path, &file.contents, file.secret)?;
        written.push(WrittenFile {
            path,
            secret: file.secret,
        });
    }
    let jks = if args.no_jks {
        JksOutcome::NotAsked
    } else {
        jks::convert(&out_dir, &password, &mut written)?
    };

    Ok(PkiReport {
        out_dir,
        files: written,
        password,
        password_generated,
        jks,
    })
}

fn generate_password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(GENERATED_PASSWORD_LEN)
        .map(char::from)
        .collect()
}
