//! Why `pki` stopped.

use std::io;
use std::path::PathBuf;

use super::args::MAX_VALIDITY_DAYS;

/// Everything that can stop `pki`. Each variant names the file, host or certificate at fault,
/// because the operator's next step depends on which one it was; messages also carry the
/// underlying cause (as the rest of the crate does), since the CLI prints only the top error.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum PkiError {
    /// A file of the PKI is already there and `--force` was not given. Nothing was written.
    #[error(
        "refusing to overwrite {}: it already exists (pass --force to replace the whole development PKI)",
        path.display()
    )]
    AlreadyExists {
        /// The first existing file, in the order `pki` writes them.
        path: PathBuf,
    },

    /// `--validity-days` outside `1..=MAX_VALIDITY_DAYS`.
    #[error("--validity-days must be between 1 and {MAX_VALIDITY_DAYS}, got {0}")]
    InvalidValidity(u32),

    /// An empty `--password`: Java refuses to open a PKCS#12 keystore protected by one.
    #[error("--password must not be empty")]
    EmptyPassword,

    /// A `--crl-base-url` the proxy could not fetch from (it fetches plain http:// only).
    #[error(
        "--crl-base-url {0:?} must be an http:// URL with a host (the proxy fetches CRLs over http://)"
    )]
    InvalidCrlBaseUrl(String),

    /// A `--host` that is neither an IP address nor a DNS name (ASCII; a wildcard only as a
    /// whole first label).
    #[error(
        "--host {host:?} is neither an IP address nor a DNS name (ASCII; a wildcard only as a whole first label, *.kafka.example.com)"
    )]
    InvalidHost {
        /// The offending value, as given.
        host: String,
    },

    /// Key generation, certificate encoding or signing failed.
    #[error("could not generate {what}: {source}")]
    Generate {
        /// The certificate or key being made.
        what: String,
        /// The underlying rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// Building a PKCS#12 keystore failed.
    #[error("could not build the PKCS#12 keystore {what}: {source}")]
    Keystore {
        /// The keystore being built.
        what: String,
        /// The underlying p12-keystore error.
        #[source]
        source: p12_keystore::error::Error,
    },

    /// The output directory could not be created or resolved to an absolute path.
    #[error("could not prepare the output directory {}: {source}", path.display())]
    OutDir {
        /// The directory, as given.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// A file could not be written (or, with `--force`, the old one removed).
    #[error("could not write {}: {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}
