//! The store's contents as applied so far, and how a record changes them.
//!
//! The state is what the topic says, key by key (the last record of each key wins, which is
//! also what compaction keeps). Before a record changes it, the state with the record is
//! validated as a whole configuration ([`Validate`]); a record that fails is skipped and the
//! state stays as it was.
//!
//! A pool whose CA is absent is held, not applied: compaction keeps only the newest record of
//! each key, so a CA updated after its pools were created comes *after* them in a compacted
//! topic. It takes effect when its CA arrives, and goes with a CA tombstone.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::record::{CaDoc, Change, RecordError};
use crate::config::raw::{RawCertificateAuthority, RawIdentityPool};

/// Checks a candidate set of CAs and pools as the configuration would load them; `Err` says
/// why not, in the configuration's words.
pub trait Validate {
    fn validate(&self, cas: &[RawCertificateAuthority]) -> Result<(), String>;
}

/// The CAs and pools the topic holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreState {
    cas: BTreeMap<String, CaDoc>,
    /// CA id → pool id → pool. A CA id absent from `cas`: pools waiting for their CA.
    pools: BTreeMap<String, BTreeMap<String, PoolJson>>,
}

/// A pool, compared by its JSON form (the raw type has no `PartialEq`).
#[derive(Debug, Clone)]
struct PoolJson(RawIdentityPool);

impl PartialEq for PoolJson {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(&self.0).ok() == serde_json::to_value(&other.0).ok()
    }
}
impl Eq for PoolJson {}

/// What applying a record did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The effective configuration changed.
    Changed,
    /// Nothing to change (the same value again, a tombstone of something absent, a pool
    /// held until its CA comes).
    Unchanged,
    /// A pool whose CA is absent: held.
    Held,
}

impl StoreState {
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty() && self.pools.is_empty()
    }

    /// Apply `change` if the state with it validates; otherwise leave the state as it is.
    pub fn apply(
        &mut self,
        change: Change,
        dir: &Path,
        validate: &dyn Validate,
    ) -> Result<Applied, RecordError> {
        let key = change.key();
        let mut next = self.clone();
        let held = match change {
            Change::PutCa(doc) => {
                next.cas.insert(doc.id.clone(), *doc);
                false
            }
            Change::DeleteCa(id) => {
                next.cas.remove(&id);
                // Pools of a deleted CA go with it (a writer tombstones them first).
                next.pools.remove(&id);
                false
            }
            Change::PutPool { ca, pool } => {
                let held = !next.cas.contains_key(&ca);
                next.pools
                    .entry(ca)
                    .or_default()
                    .insert(pool.id.clone(), PoolJson(pool));
                held
            }
            Change::DeletePool { ca, pool } => {
                if let Some(pools) = next.pools.get_mut(&ca) {
                    pools.remove(&pool);
                    if pools.is_empty() {
                        next.pools.remove(&ca);
                    }
                }
                false
            }
        };
        if next == *self {
            return Ok(Applied::Unchanged);
        }
        let effective_before = self.effective_docs();
        if next.effective_docs() == effective_before {
            *self = next;
            return Ok(if held {
                Applied::Held
            } else {
                Applied::Unchanged
            });
        }
        let cas = next.raw_cas(dir).map_err(|e| RecordError::Invalid {
            key: key.clone(),
            reason: format!("cannot write its PEM text under {}: {e}", dir.display()),
        })?;
        validate
            .validate(&cas)
            .map_err(|reason| RecordError::Invalid { key, reason })?;
        *self = next;
        Ok(Applied::Changed)
    }

    /// What takes effect: each CA with the pools the store holds for it.
    fn effective_docs(&self) -> Vec<(&CaDoc, Vec<&PoolJson>)> {
        self.cas
            .values()
            .map(|ca| {
                let pools = self
                    .pools
                    .get(&ca.id)
                    .map(|p| p.values().collect())
                    .unwrap_or_default();
                (ca, pools)
            })
            .collect()
    }

    /// The CAs as the configuration names them: PEM text written to files in `dir` (named by
    /// content, so writing the same text again changes nothing), pools in id order.
    pub fn raw_cas(&self, dir: &Path) -> io::Result<Vec<RawCertificateAuthority>> {
        let mut out = Vec::with_capacity(self.cas.len());
        for (ca, pools) in self.effective_docs() {
            let certificate_chain =
                write_pem(dir, &ca.id, "certificate_chain", &ca.certificate_chain_pem)?;
            let crl_chain = match &ca.crl_chain_pem {
                Some(pem) => Some(write_pem(dir, &ca.id, "crl_chain", pem)?),
                None => None,
            };
            out.push(RawCertificateAuthority {
                id: ca.id.clone(),
                display_name: ca.display_name.clone(),
                description: ca.description.clone(),
                certificate_chain,
                crl_chain,
                crl_url: ca.crl_url.clone(),
                require_crl_on_client_certificate: ca.require_crl_on_client_certificate,
                identity_pools: pools.into_iter().map(|p| p.0.clone()).collect(),
                authorization: ca.authorization.clone(),
            });
        }
        Ok(out)
    }

    /// Pools held for a CA the store does not have: `(ca, pool)`.
    pub fn held_pools(&self) -> Vec<(String, String)> {
        self.pools
            .iter()
            .filter(|(ca, _)| !self.cas.contains_key(*ca))
            .flat_map(|(ca, pools)| pools.keys().map(move |p| (ca.clone(), p.clone())))
            .collect()
    }
}

/// The records that turn `before` into `after` (both as the configuration names them): CAs
/// first, then pools, then pool tombstones, then CA tombstones, so that every prefix of the
/// sequence is a state a replica can apply. PEM text is read from the files the CAs name.
pub fn diff(
    before: &[RawCertificateAuthority],
    after: &[RawCertificateAuthority],
) -> io::Result<Vec<Change>> {
    let find = |cas: &[RawCertificateAuthority], id: &str| {
        cas.iter().position(|c| c.id == id).map(|i| cas[i].clone())
    };
    let (mut puts, mut pool_puts, mut pool_deletes, mut ca_deletes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ca in after {
        let old = find(before, &ca.id);
        let doc = ca_doc(ca)?;
        if old.as_ref().and_then(|o| ca_doc(o).ok()).as_ref() != Some(&doc) {
            puts.push(Change::PutCa(Box::new(doc)));
        }
        for pool in &ca.identity_pools {
            let old_pool = old
                .as_ref()
                .and_then(|o| o.identity_pools.iter().find(|p| p.id == pool.id));
            if old_pool.map(|p| PoolJson(p.clone())) != Some(PoolJson(pool.clone())) {
                pool_puts.push(Change::PutPool {
                    ca: ca.id.clone(),
                    pool: pool.clone(),
                });
            }
        }
    }
    for ca in before {
        let new = find(after, &ca.id);
        for pool in &ca.identity_pools {
            if !new
                .as_ref()
                .is_some_and(|n| n.identity_pools.iter().any(|p| p.id == pool.id))
            {
                pool_deletes.push(Change::DeletePool {
                    ca: ca.id.clone(),
                    pool: pool.id.clone(),
                });
            }
        }
        if new.is_none() {
            ca_deletes.push(Change::DeleteCa(ca.id.clone()));
        }
    }
    puts.extend(pool_puts);
    puts.extend(pool_deletes);
    puts.extend(ca_deletes);
    Ok(puts)
}

/// A CA as stored: its files read into PEM text (a DER CRL file is turned into PEM).
pub fn ca_doc(ca: &RawCertificateAuthority) -> io::Result<CaDoc> {
    let located =
        |path: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    // The chain is PEM (the configuration accepts nothing else); validation judges it.
    let chain = std::fs::read_to_string(&ca.certificate_chain)
        .map_err(|e| located(&ca.certificate_chain, e))?;
    // A CRL file may be DER: stored as PEM text all the same.
    let crl = |path: &Path| -> io::Result<String> {
        let bytes = std::fs::read(path).map_err(|e| located(path, e))?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) if text.contains("-----BEGIN") => text,
            Ok(text) => der_to_pem(text.as_bytes()),
            Err(e) => der_to_pem(e.as_bytes()),
        })
    };
    Ok(CaDoc {
        id: ca.id.clone(),
        display_name: ca.display_name.clone(),
        description: ca.description.clone(),
        certificate_chain_pem: chain,
        crl_chain_pem: ca.crl_chain.as_deref().map(crl).transpose()?,
        crl_url: ca.crl_url.clone(),
        require_crl_on_client_certificate: ca.require_crl_on_client_certificate,
        authorization: ca.authorization.clone(),
    })
}

fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN X509 CRL-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END X509 CRL-----\n");
    out
}

/// Write `pem` for `field` of CA `ca_id` into `dir` under a name carrying a digest of the
/// content, atomically (as the IAM API writes the chains posted to it).
pub fn write_pem(dir: &Path, ca_id: &str, field: &str, pem: &str) -> io::Result<PathBuf> {
    crate::config::files::write_pem(dir, ca_id, field, pem).map(|(path, _new)| path)
}

/// Remove the `.pem` files in `dir` that `cas` do not name (chains of CAs since deleted or
/// changed). Errors are ignored: a file left behind only costs space.
pub fn remove_unreferenced(dir: &Path, cas: &[RawCertificateAuthority]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let named: Vec<&Path> = cas
        .iter()
        .flat_map(|c| std::iter::once(c.certificate_chain.as_path()).chain(c.crl_chain.as_deref()))
        .collect();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "pem") && !named.contains(&path.as_path()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
