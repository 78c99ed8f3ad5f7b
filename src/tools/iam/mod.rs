//! `kafka-mtls-proxy pools …` and `kafka-mtls-proxy cas …`: the IAM API from the command line,
//! with the flags of `confluent iam certificate-pool …` and `confluent iam
//! certificate-authority …`.
//!
//! Each command is one HTTP call to a running proxy's admin server (`--admin-url`, default
//! `http://127.0.0.1:9644`, or `$KAFKA_MTLS_PROXY_ADMIN_URL`). Writes send the admin token
//! from `--token-file` or `$KAFKA_MTLS_PROXY_ADMIN_TOKEN`. Output is a table (`--output
//! human`, the default), or the API's resources as `json` or `yaml`. Exit status: 0 done,
//! 1 refused by the API or the API unreachable (the reason on stderr), 2 bad usage.
//!
//! This file turns each command into its HTTP call; `args` is the command line, `client` the
//! HTTP client, `output` the three output formats and `table` the human one.

mod args;
mod client;
mod output;
mod table;

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

pub use args::{CasArgs, PoolsArgs};

use args::{AdminArgs, CasCommand, CrlArgs, PoolsCommand, TOKEN_ENV};
use client::{Client, ClientError};
use output::{
    CA_FIELDS, CA_LIST_COLUMNS, POOL_COLUMNS, POOL_FIELDS, deleted, render_list, render_one,
};

/// The command-line failure: what to print, and the exit status.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Local(String),
}

const CAS_PATH: &str = "/iam/v2/certificate-authorities";

fn pools_path(provider: &str) -> String {
    format!("{CAS_PATH}/{}/identity-pools", segment(provider))
}

/// A path segment: ids are letters, digits, `-`, `_`, `.`; anything else is escaped.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Run `pools …`.
pub fn run_pools(args: &PoolsArgs) -> ExitCode {
    finish(pools(args))
}

/// Run `cas …`.
pub fn run_cas(args: &CasArgs) -> ExitCode {
    finish(cas(args))
}

fn finish(result: Result<String, CliError>) -> ExitCode {
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            for line in e.to_string().lines() {
                eprintln!("Error: {line}");
            }
            if let CliError::Client(ClientError::Refused { status: 401, .. }) = e {
                eprintln!("Give the admin token with --token-file FILE or ${TOKEN_ENV}.");
            }
            ExitCode::FAILURE
        }
    }
}

fn client(admin: &AdminArgs) -> Result<Client, CliError> {
    let token = match &admin.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Local(format!("{}: cannot read: {e}", path.display())))?;
            Some(text.trim().to_string())
        }
        None => std::env::var(TOKEN_ENV).ok().map(|t| t.trim().to_string()),
    }
    .filter(|t| !t.is_empty());
    Ok(Client::new(&admin.admin_url, token))
}

fn pools(args: &PoolsArgs) -> Result<String, CliError> {
    let api = client(&args.admin)?;
    let out = args.admin.output;
    match &args.command {
        PoolsCommand::List { provider } => {
            let list = api.get(&pools_path(provider))?;
            Ok(render_list(out, &list, &POOL_COLUMNS))
        }
        PoolsCommand::Describe { id, provider } => {
            let pool = api.get(&format!("{}/{}", pools_path(provider), segment(id)))?;
            Ok(render_one(out, with_provider(pool, provider), &POOL_FIELDS))
        }
        PoolsCommand::Create {
            name,
            display_name,
            provider,
            id,
            description,
            filter,
            external_identifier,
        } => {
            let mut body = Map::new();
            put(&mut body, "id", id.as_deref());
            put(
                &mut body,
                "display_name",
                name.as_deref().or(display_name.as_deref()),
            );
            put(&mut body, "description", description.as_deref());
            put(&mut body, "external_identifier", Some(external_identifier));
            put(&mut body, "filter", Some(filter));
            let pool = api.post(&pools_path(provider), &Value::Object(body))?;
            Ok(render_one(out, with_provider(pool, provider), &POOL_FIELDS))
        }
        PoolsCommand::Update {
            id,
            provider,
            display_name,
            description,
            filter,
            external_identifier,
        } => {
            let mut body = Map::new();
            put(&mut body, "display_name", display_name.as_deref());
            put(&mut body, "description", description.as_deref());
            put(
                &mut body,
                "external_identifier",
                external_identifier.as_deref(),
            );
            put(&mut body, "filter", filter.as_deref());
            if body.is_empty() {
                return Err(CliError::Local(
                    "nothing to update: give --display-name, --description, --filter or \
                     --external-identifier"
                        .into(),
                ));
            }
            let path = format!("{}/{}", pools_path(provider), segment(id));
            let pool = api.patch(&path, &Value::Object(body))?;
            Ok(render_one(out, with_provider(pool, provider), &POOL_FIELDS))
        }
        PoolsCommand::Delete { ids, provider } => {
            let mut done = String::new();
            for id in ids {
                api.delete(&format!("{}/{}", pools_path(provider), segment(id)))?;
                done.push_str(&deleted(out, "identity pool", id));
            }
            Ok(done)
        }
    }
}

fn cas(args: &CasArgs) -> Result<String, CliError> {
    let api = client(&args.admin)?;
    let out = args.admin.output;
    match &args.command {
        CasCommand::List => {
            let list = api.get(CAS_PATH)?;
            Ok(render_list(out, &list, &CA_LIST_COLUMNS))
        }
        CasCommand::Describe { id } => {
            let ca = api.get(&format!("{CAS_PATH}/{}", segment(id)))?;
            Ok(render_one(out, ca, &CA_FIELDS))
        }
        CasCommand::Create {
            name,
            display_name,
            id,
            description,
            certificate_chain_filename,
            crl,
        } => {
            let mut body = Map::new();
            put(&mut body, "id", id.as_deref());
            put(
                &mut body,
                "display_name",
                name.as_deref().or(display_name.as_deref()),
            );
            put(&mut body, "description", description.as_deref());
            chain_file(&mut body, certificate_chain_filename)?;
            crl_fields(&mut body, crl)?;
            let ca = api.post(CAS_PATH, &Value::Object(body))?;
            Ok(render_one(out, ca, &CA_FIELDS))
        }
        CasCommand::Update {
            id,
            display_name,
            description,
            certificate_chain_filename,
            crl,
        } => {
            let mut body = Map::new();
            put(&mut body, "display_name", display_name.as_deref());
            put(&mut body, "description", description.as_deref());
            if let Some(file) = certificate_chain_filename {
                chain_file(&mut body, file)?;
            }
            crl_fields(&mut body, crl)?;
            if body.is_empty() {
                return Err(CliError::Local(
                    "nothing to update: give --display-name, --description, \
                     --certificate-chain-filename or a CRL option"
                        .into(),
                ));
            }
            let ca = api.patch(&format!("{CAS_PATH}/{}", segment(id)), &Value::Object(body))?;
            Ok(render_one(out, ca, &CA_FIELDS))
        }
        CasCommand::Delete { ids } => {
            let mut done = String::new();
            for id in ids {
                api.delete(&format!("{CAS_PATH}/{}", segment(id)))?;
                done.push_str(&deleted(out, "certificate authority", id));
            }
            Ok(done)
        }
    }
}

fn put(body: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        body.insert(key.to_string(), json!(v));
    }
}

fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Local(format!("{}: cannot read: {e}", path.display())))
}

fn chain_file(body: &mut Map<String, Value>, path: &Path) -> Result<(), CliError> {
    body.insert("certificate_chain".into(), json!(read_text(path)?));
    if let Some(name) = path.file_name() {
        body.insert(
            "certificate_chain_filename".into(),
            json!(name.to_string_lossy()),
        );
    }
    Ok(())
}

fn crl_fields(body: &mut Map<String, Value>, crl: &CrlArgs) -> Result<(), CliError> {
    put(body, "crl_url", crl.crl_url.as_deref());
    if let Some(path) = &crl.crl_chain_filename {
        body.insert("crl_chain".into(), json!(read_text(path)?));
    }
    if crl.require_crl_on_client_certificate {
        body.insert("require_crl_on_client_certificate".into(), json!(true));
    }
    Ok(())
}

/// A pool resource does not name its CA; the table does.
fn with_provider(mut pool: Value, provider: &str) -> Value {
    pool["_provider"] = json!(provider);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("pool-a_b.1"), "pool-a_b.1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
