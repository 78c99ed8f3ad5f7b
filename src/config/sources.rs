//! Everything a configuration names outside itself, read in one place before it is checked.
//!
//! The section checks do no I/O: they look here for the bytes of every PEM and CRL file,
//! whether each secret can be read, and what `keys_dir` is. A read that failed is kept as it
//! failed and reported by the check of the field that names it, at that field's path, so every
//! problem still comes out in one pass.
//!
//! Secrets are read here only to refuse a configuration that could not work (or, for
//! `check-config` without `--strict`, to warn: [`super::AbsentSecrets`]); their values are not
//! kept. The proxy reads them again when it uses them (a SCRAM password at every upstream
//! login, the admin token at every IAM API write), so a rotated secret applies without a reload.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::admin::AdminTokenSource;
use super::pem::FileRead;
use super::raw::RawConfig;
use super::upstream_identity::SecretSource;

/// What reading the files, secrets and directories a configuration names gave.
pub struct Sources {
    /// PEM and CRL files by path: their bytes, or the read error.
    files: HashMap<PathBuf, io::Result<Vec<u8>>>,
    /// SCRAM password references: readable, or why not.
    secrets: HashMap<SecretSource, Result<(), String>>,
    /// Admin token references: the token's length, or why it cannot be had.
    admin_tokens: HashMap<AdminTokenSource, Result<usize, String>>,
    /// `upstream.identity.keys_dir`: whether it is a directory, or why it cannot be looked at.
    directories: HashMap<PathBuf, io::Result<bool>>,
    /// Answered for a path that was not read (a check asking for a file the list below misses).
    not_read: io::Error,
}

impl Sources {
    /// Read everything `raw` names, whatever the checks will make of it.
    pub fn read(raw: &RawConfig) -> Self {
        let mut files: Vec<&Path> = vec![&raw.tls.certificate_chain, &raw.tls.private_key];
        if let Some(t) = &raw.upstream.tls {
            files.push(&t.ca);
            files.extend(t.certificate_chain.as_deref());
            files.extend(t.private_key.as_deref());
        }
        for ca in &raw.certificate_authorities {
            files.push(&ca.certificate_chain);
            files.extend(ca.crl_chain.as_deref());
        }
        let mut secrets = Vec::new();
        let mut directories = Vec::new();
        if let Some(id) = &raw.upstream.identity {
            for c in id.credentials.values() {
                if let Some(name) = c.password_env.as_ref().filter(|n| !n.is_empty()) {
                    secrets.push(SecretSource::Env(name.clone()));
                }
                if let Some(path) = &c.password_file {
                    secrets.push(SecretSource::File(path.clone()));
                }
            }
            directories.extend(id.keys_dir.clone());
        }
        // The proxy's own login, and where it was before (`store.sasl`).
        let own = raw
            .upstream
            .proxy_login
            .iter()
            .map(|l| (&l.password_env, &l.password_file));
        let legacy = raw
            .store
            .iter()
            .filter_map(|s| s.sasl.as_ref())
            .map(|l| (&l.password_env, &l.password_file));
        for (env, file) in own.chain(legacy) {
            if let Some(name) = env.as_ref().filter(|n| !n.is_empty()) {
                secrets.push(SecretSource::Env(name.clone()));
            }
            if let Some(path) = file {
                secrets.push(SecretSource::File(path.clone()));
            }
        }
        let mut admin_tokens = Vec::new();
        if let Some(a) = &raw.admin {
            if let Some(path) = &a.token_file {
                admin_tokens.push(AdminTokenSource::File(path.clone()));
            }
            if let Some(name) = a.token_env.as_deref().map(str::trim)
                && !name.is_empty()
            {
                admin_tokens.push(AdminTokenSource::Env(name.to_string()));
            }
        }
        Self {
            files: files
                .into_iter()
                .map(|p| (p.to_path_buf(), std::fs::read(p)))
                .collect(),
            secrets: secrets
                .into_iter()
                .map(|s| {
                    let readable = s.read().map(|_| ());
                    (s, readable)
                })
                .collect(),
            admin_tokens: admin_tokens
                .into_iter()
                .map(|s| {
                    let length = s.read().map(|token| token.len());
                    (s, length)
                })
                .collect(),
            directories: directories
                .into_iter()
                .map(|d| {
                    let is_dir = std::fs::metadata(&d).map(|m| m.is_dir());
                    (d, is_dir)
                })
                .collect(),
            not_read: io::Error::other("not read before the configuration was checked"),
        }
    }

    /// The file at `path` as read.
    pub fn file<'a>(&'a self, path: &'a Path) -> FileRead<'a> {
        let bytes = match self.files.get(path) {
            Some(Ok(bytes)) => Ok(bytes.as_slice()),
            Some(Err(e)) => Err(e),
            None => Err(&self.not_read),
        };
        FileRead { path, bytes }
    }

    /// Whether the secret can be read, or why not.
    pub fn secret(&self, source: &SecretSource) -> Result<(), String> {
        match self.secrets.get(source) {
            Some(readable) => readable.clone(),
            None => Err(self.not_read.to_string()),
        }
    }

    /// The admin token's length, or why it cannot be had.
    pub fn admin_token(&self, source: &AdminTokenSource) -> Result<usize, String> {
        match self.admin_tokens.get(source) {
            Some(length) => length.clone(),
            None => Err(self.not_read.to_string()),
        }
    }

    /// Whether `path` is a directory, or why it cannot be looked at.
    pub fn directory(&self, path: &Path) -> Result<bool, &io::Error> {
        match self.directories.get(path) {
            Some(Ok(is_dir)) => Ok(*is_dir),
            Some(Err(e)) => Err(e),
            None => Err(&self.not_read),
        }
    }
}
