//! `kafka-mtls-proxy explain --config FILE --cert PEM`: the library's explanation of a
//! certificate file against a configuration, printed as JSON.
//!
//! Exit status: 0 admitted, 1 refused, 2 the file or the explanation failed (the reason on
//! stderr).

use std::path::Path;
use std::process::ExitCode;

use kafka_mtls_proxy::config::Config;
use kafka_mtls_proxy::tls::explain::{self, ExplainError, Explanation};

/// Why a certificate file could not be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainFileError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Explain(#[from] ExplainError),
}

/// Explain the decision for the PEM file at `cert_path` (leaf first, then any intermediates).
pub fn explain_file(config: &Config, cert_path: &Path) -> Result<Explanation, ExplainFileError> {
    let path = cert_path.display().to_string();
    let bytes = std::fs::read(cert_path).map_err(|source| ExplainFileError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(explain::explain_pem(&config.reloadable, &bytes, &path)?)
}

/// Run `explain` for `cert` against a loaded configuration: print the JSON, return the status.
pub fn run(config: &Config, cert: &Path) -> ExitCode {
    match explain_file(config, cert) {
        Ok(x) => {
            match serde_json::to_string_pretty(&x.json) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
            if x.admitted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
