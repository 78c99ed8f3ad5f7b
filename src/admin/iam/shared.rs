//! Writes in store mode (`store` configured): the change is computed against the shared
//! store's CAs and pools (with the file's other sections), validated as a load would validate
//! it, turned into store records (`crate::store::diff`), produced with `acks=all`, and answered
//! once this replica has applied them. The configuration file is not written.

use std::sync::Arc;

use tracing::warn;

use super::change::{Change, NewFiles, Written, change_raw};
use super::error::{self, ApiError};
use crate::config::{self, ConfigError};
use crate::reload::Reloader;
use crate::store::{self, SharedStore, WriteError};

/// Apply `change` through `shared`.
pub(super) async fn write(
    ctx: &Arc<Reloader>,
    shared: &Arc<SharedStore>,
    change: Change,
) -> Result<Written, ApiError> {
    let (ctx2, shared2) = (ctx.clone(), shared.clone());
    // Reading files, PEM and CEL compilation are blocking work.
    let (written, changes, files) =
        tokio::task::spawn_blocking(move || compute(&ctx2, &shared2, change))
            .await
            .map_err(|e| ApiError::internal(format!("the write task failed: {e}")))??;
    match shared.write(changes).await {
        Ok(()) => Ok(written),
        Err(e) => {
            files.remove();
            Err(match e {
                WriteError::Unavailable(_) => ApiError::new(503, e.to_string()),
                WriteError::NotApplied { .. } => ApiError::new(504, e.to_string()),
                WriteError::Rejected(_) => ApiError::new(409, e.to_string()),
                WriteError::Pem(_) => ApiError::internal(e.to_string()),
            })
        }
    }
}

/// The records `change` makes, checked. Blocking.
fn compute(
    ctx: &Reloader,
    shared: &SharedStore,
    change: Change,
) -> Result<(Written, Vec<store::Change>, NewFiles), ApiError> {
    let path = ctx.config_path();
    let mut before = config::read_raw(path).map_err(|e| {
        ApiError::new(
            409,
            format!("the configuration file must parse before the API can change it: {e}"),
        )
    })?;
    before.certificate_authorities = shared
        .authorities()
        .map_err(|e| ApiError::internal(format!("cannot read the pool store's state: {e}")))?;
    let mut raw = before.clone();
    let mut files = NewFiles::default();
    let outcome = change_raw(&mut raw, change, shared.directory(), &mut files).and_then(
        |(scope, written)| match config::from_raw(path, &raw) {
            Ok(config) => {
                for w in &config.warnings {
                    warn!(file = %path.display(), "{w}");
                }
                Ok(written)
            }
            Err(ConfigError::Invalid { issues, .. }) => {
                Err(error::from_issues(&issues, scope, &files.renamed))
            }
            Err(e) => Err(ApiError::internal(e.to_string())),
        },
    );
    let written = match outcome {
        Ok(w) => w,
        Err(e) => {
            files.remove();
            return Err(e);
        }
    };
    let changes = store::diff(
        &before.certificate_authorities,
        &raw.certificate_authorities,
    )
    .map_err(|e| {
        files.remove();
        ApiError::internal(format!(
            "cannot read the PEM text of a certificate authority: {e}"
        ))
    })?;
    Ok((written, changes, files))
}
