//! One change to the certificate authorities and pools, applied to the configuration as
//! parsed. Validation, the file and the reload are the caller's (`apply`, in the parent).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{ApiError, Scope};
use super::{resource, store};
use crate::config::raw::{RawCertificateAuthority, RawConfig, RawIdentityPool};

/// One change to the certificate authorities and pools.
pub(super) enum Change {
    CreateCa(Map<String, Value>),
    UpdateCa(String, Map<String, Value>),
    DeleteCa(String),
    CreatePool(String, Map<String, Value>),
    UpdatePool(String, String, Map<String, Value>),
    DeletePool(String, String),
}

/// What a change left in the configuration.
pub(super) enum Written {
    Ca(RawCertificateAuthority),
    Pool(String, RawIdentityPool),
    Deleted,
}

/// Files this write created, to remove if it is refused, and how to name them in errors.
#[derive(Default)]
pub(super) struct NewFiles {
    created: Vec<PathBuf>,
    pub(super) renamed: Vec<(String, String)>,
}

impl NewFiles {
    pub(super) fn remove(&self) {
        for path in &self.created {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Write the posted PEM text of CA `ca_id`'s `field` to a file in `cas_dir`, remembering
    /// it (to remove on refusal, and to name it as `field` in errors).
    fn write_pem(
        &mut self,
        cas_dir: &Path,
        ca_id: &str,
        field: &str,
        pem: &str,
    ) -> Result<PathBuf, ApiError> {
        let (file, new) = store::write_pem(cas_dir, ca_id, field, pem).map_err(|e| {
            ApiError::internal(format!(
                "cannot write {field} under {}: {e}",
                cas_dir.display()
            ))
        })?;
        if new {
            self.created.push(file.clone());
        }
        self.renamed
            .push((file.display().to_string(), format!("the posted {field}")));
        Ok(file)
    }
}

/// Apply `change` to `raw`; PEM text is written to new files in `cas_dir`.
pub(super) fn change_raw(
    raw: &mut RawConfig,
    change: Change,
    cas_dir: &Path,
    files: &mut NewFiles,
) -> Result<(Scope, Written), ApiError> {
    let cas = &mut raw.certificate_authorities;
    match change {
        Change::CreateCa(body) => create_ca(cas, body, cas_dir, files),
        Change::UpdateCa(id, body) => {
            let i = ca_index(cas, &id)?;
            let ca = resource::merge_ca(Some(&cas[i]), &id, body, &mut |field, pem| {
                files.write_pem(cas_dir, &id, field, pem)
            })?;
            cas[i] = ca.clone();
            Ok((Scope::Ca(i), Written::Ca(ca)))
        }
        Change::DeleteCa(id) => {
            let i = ca_index(cas, &id)?;
            cas.remove(i);
            Ok((Scope::Whole, Written::Deleted))
        }
        Change::CreatePool(ca_id, body) => create_pool(cas, ca_id, body),
        Change::UpdatePool(ca_id, id, body) => {
            let i = ca_index(cas, &ca_id)?;
            let j = pool_index(&cas[i], &id)?;
            let pool = resource::merge_pool(Some(&cas[i].identity_pools[j]), &id, body)?;
            cas[i].identity_pools[j] = pool.clone();
            Ok((Scope::Pool(i, j), Written::Pool(ca_id, pool)))
        }
        Change::DeletePool(ca_id, id) => {
            let i = ca_index(cas, &ca_id)?;
            let j = pool_index(&cas[i], &id)?;
            cas[i].identity_pools.remove(j);
            Ok((Scope::Whole, Written::Deleted))
        }
    }
}

/// A new CA, under the requested id (which must be free) or a generated one.
fn create_ca(
    cas: &mut Vec<RawCertificateAuthority>,
    body: Map<String, Value>,
    cas_dir: &Path,
    files: &mut NewFiles,
) -> Result<(Scope, Written), ApiError> {
    let id = match resource::requested_id(&body)? {
        Some(id) => {
            if cas.iter().any(|c| c.id == id) {
                return Err(ApiError::field(
                    409,
                    "id",
                    format!("id: certificate authority `{id}` already exists"),
                ));
            }
            id
        }
        None => resource::generate_id("op-", &cas.iter().map(|c| c.id.clone()).collect()),
    };
    let ca = resource::merge_ca(None, &id, body, &mut |field, pem| {
        files.write_pem(cas_dir, &id, field, pem)
    })?;
    cas.push(ca.clone());
    Ok((Scope::Ca(cas.len() - 1), Written::Ca(ca)))
}

/// A new pool of CA `ca_id`, under the requested id or a generated one; either must be free
/// across every CA, since pool ids are principals.
fn create_pool(
    cas: &mut [RawCertificateAuthority],
    ca_id: String,
    body: Map<String, Value>,
) -> Result<(Scope, Written), ApiError> {
    let i = ca_index(cas, &ca_id)?;
    let taken: HashSet<String> = cas
        .iter()
        .flat_map(|c| c.identity_pools.iter().map(|p| p.id.clone()))
        .collect();
    let id = match resource::requested_id(&body)? {
        Some(id) if taken.contains(&id) => {
            return Err(ApiError::field(
                409,
                "id",
                format!(
                    "id: identity pool `{id}` already exists; pool ids are principals \
                     (User:<id>) and unique across certificate authorities"
                ),
            ));
        }
        Some(id) => id,
        None => resource::generate_id("pool-", &taken),
    };
    let pool = resource::merge_pool(None, &id, body)?;
    cas[i].identity_pools.push(pool.clone());
    Ok((
        Scope::Pool(i, cas[i].identity_pools.len() - 1),
        Written::Pool(ca_id, pool),
    ))
}

fn ca_index(cas: &[RawCertificateAuthority], id: &str) -> Result<usize, ApiError> {
    cas.iter()
        .position(|c| c.id == id)
        .ok_or_else(|| ApiError::not_found("certificate authority", id))
}

fn pool_index(ca: &RawCertificateAuthority, id: &str) -> Result<usize, ApiError> {
    ca.identity_pools
        .iter()
        .position(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found("identity pool", id))
}
