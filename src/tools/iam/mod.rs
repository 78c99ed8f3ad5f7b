//! `kafka-mtls-proxy pools …` and `kafka-mtls-proxy cas …`: the IAM API from the command line,
//! with the flags of `confluent iam certificate-pool …` and `confluent iam
//! certificate-authority …`.
//!
//! Each command is one HTTP call to a running proxy's admin server (`--admin-url`, default
//! `http://127.0.0.1:9644`, or `$KAFKA_MTLS_PROXY_ADMIN_URL`). Writes send the admin token
//! from `--token-file` or `$KAFKA_MTLS_PROXY_ADMIN_TOKEN`. Output is a table (`--output
//! human`, the default), or the API's resources as `json` or `yaml`. Exit status: 0 done,
//! 1 refused by the API or the API unreachable (the reason on stderr), 2 bad usage.

mod client;
mod table;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

pub use client::{Client, ClientError};

/// The environment variable holding the admin token (when `--token-file` is not given).
pub const TOKEN_ENV: &str = "KAFKA_MTLS_PROXY_ADMIN_TOKEN";
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9644";

/// Options of every `pools` and `cas` command.
#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    /// The proxy's admin server.
    #[arg(long, global = true, value_name = "URL", default_value = DEFAULT_ADMIN_URL,
          env = "KAFKA_MTLS_PROXY_ADMIN_URL")]
    pub admin_url: String,
    /// File holding the admin token, which writes need (default: $KAFKA_MTLS_PROXY_ADMIN_TOKEN).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Tables.
    Human,
    Json,
    Yaml,
}

/// `kafka-mtls-proxy pools …` (Confluent: `confluent iam certificate-pool …`).
#[derive(Args, Debug, Clone)]
pub struct PoolsArgs {
    #[command(subcommand)]
    pub command: PoolsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum PoolsCommand {
    /// List the identity pools of a certificate authority.
    List {
        /// ID of the pools' certificate authority.
        #[arg(long)]
        provider: String,
    },
    /// Describe an identity pool.
    Describe {
        id: String,
        #[arg(long)]
        provider: String,
    },
    /// Create an identity pool; it admits matching clients at once.
    Create {
        /// Display name (or --display-name).
        #[arg(
            required_unless_present = "display_name",
            conflicts_with = "display_name"
        )]
        name: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        provider: String,
        /// Pool id, which is also the principal `User:<id>` (default: `pool-` and random).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// CEL filter, e.g. 'CN == "acme-client" && OU == "payments"'. Unlike Confluent's CLI
        /// there is no default of "true": a pool admits nothing unless told what.
        #[arg(long)]
        filter: String,
        /// CN, DN, SERIAL, SAN or SHA1.
        #[arg(long)]
        external_identifier: String,
    },
    /// Update an identity pool (only the fields given); live connections are re-checked.
    Update {
        id: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        filter: Option<String>,
        #[arg(long)]
        external_identifier: Option<String>,
    },
    /// Delete one or more identity pools; their live connections are closed.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        provider: String,
    },
}

/// `kafka-mtls-proxy cas …` (Confluent: `confluent iam certificate-authority …`).
#[derive(Args, Debug, Clone)]
pub struct CasArgs {
    #[command(subcommand)]
    pub command: CasCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum CasCommand {
    /// List the certificate authorities.
    List,
    /// Describe a certificate authority.
    Describe { id: String },
    /// Create a certificate authority from a PEM file of 1 to 4 CA certificates.
    Create {
        /// Display name (or --display-name).
        #[arg(
            required_unless_present = "display_name",
            conflicts_with = "display_name"
        )]
        name: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Certificate authority id (default: `op-` and random).
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// The PEM file with the CA certificate chain; its content is uploaded.
        #[arg(long, value_name = "FILE")]
        certificate_chain_filename: PathBuf,
        #[command(flatten)]
        crl: CrlArgs,
    },
    /// Update a certificate authority (only the fields given).
    Update {
        id: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// A PEM file with the new CA certificate chain.
        #[arg(long, value_name = "FILE")]
        certificate_chain_filename: Option<PathBuf>,
        #[command(flatten)]
        crl: CrlArgs,
    },
    /// Delete one or more certificate authorities and their identity pools.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// A CA's revocation settings (Confluent's `--crl-url`, `--crl-chain`, `--require-crl-…`).
#[derive(Args, Debug, Clone, Default)]
pub struct CrlArgs {
    /// URL the CA's certificate revocation list is fetched from.
    #[arg(long, value_name = "URL")]
    pub crl_url: Option<String>,
    /// A PEM file with the CA's certificate revocation list(s); its content is uploaded.
    #[arg(long, value_name = "FILE")]
    pub crl_chain_filename: Option<PathBuf>,
    /// Refuse client certificates whose revocation status cannot be checked.
    #[arg(long)]
    pub require_crl_on_client_certificate: bool,
}

/// The command-line failure: what to print, and the exit status.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Local(String),
}

const POOL_COLUMNS: [table::Column; 6] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("External Identifier", "external_identifier"),
    ("Filter", "filter"),
    ("Principal", "principal"),
];

const CA_LIST_COLUMNS: [table::Column; 6] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("Certificate Chain Filename", "certificate_chain_filename"),
    ("Fingerprints", "fingerprints"),
    ("Expiration Dates", "expiration_dates"),
];

const CA_FIELDS: [table::Column; 11] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("Certificate Chain Filename", "certificate_chain_filename"),
    ("Fingerprints", "fingerprints"),
    ("Expiration Dates", "expiration_dates"),
    ("Serial Numbers", "serial_numbers"),
    ("CRL Source", "crl_source"),
    ("CRL URL", "crl_url"),
    ("Require CRL", "require_crl_on_client_certificate"),
    ("State", "state"),
];

const POOL_FIELDS: [table::Column; 8] = [
    ("ID", "id"),
    ("Display Name", "display_name"),
    ("Description", "description"),
    ("External Identifier", "external_identifier"),
    ("Filter", "filter"),
    ("Principal", "principal"),
    ("Certificate Authority", "_provider"),
    ("State", "state"),
];

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

fn render_list(out: Output, list: &Value, columns: &[table::Column]) -> String {
    let data = list["data"].as_array().cloned().unwrap_or_default();
    match out {
        Output::Human => table::list(columns, &data),
        Output::Json => pretty_json(&Value::Array(data)),
        Output::Yaml => yaml(&Value::Array(data)),
    }
}

fn render_one(out: Output, mut resource: Value, fields: &[table::Column]) -> String {
    match out {
        Output::Human => {
            let shown: Vec<table::Column> = fields
                .iter()
                .copied()
                .filter(|(_, f)| !resource[*f].is_null())
                .collect();
            table::describe(&shown, &resource)
        }
        Output::Json | Output::Yaml => {
            if let Some(obj) = resource.as_object_mut() {
                obj.remove("_provider");
            }
            if out == Output::Json {
                pretty_json(&resource)
            } else {
                yaml(&resource)
            }
        }
    }
}

fn deleted(out: Output, what: &str, id: &str) -> String {
    match out {
        Output::Human => format!("Deleted {what} \"{id}\".\n"),
        Output::Json => format!("{}\n", json!({ "id": id, "deleted": true })),
        Output::Yaml => format!("id: {id}\ndeleted: true\n"),
    }
}

fn pretty_json(v: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    )
}

fn yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|_| pretty_json(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand)]
    enum Top {
        Pools(PoolsArgs),
        Cas(CasArgs),
    }

    fn parse(args: &[&str]) -> Result<Top, clap::Error> {
        Cli::try_parse_from(std::iter::once("kmp").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn create_takes_the_name_as_confluent_does_or_as_a_flag() {
        let positional = parse(&[
            "pools",
            "create",
            "Outsiders",
            "--provider",
            "ca-acme",
            "--filter",
            "true",
            "--external-identifier",
            "CN",
        ])
        .unwrap();
        let Top::Pools(PoolsArgs {
            command: PoolsCommand::Create { name, .. },
            ..
        }) = positional
        else {
            panic!("not a pools create");
        };
        assert_eq!(name.as_deref(), Some("Outsiders"));
        assert!(
            parse(&[
                "pools",
                "create",
                "--display-name",
                "X",
                "--provider",
                "c",
                "--filter",
                "true",
                "--external-identifier",
                "CN",
            ])
            .is_ok()
        );
        assert!(parse(&["pools", "create", "--provider", "c", "--filter", "t"]).is_err());
    }

    #[test]
    fn global_options_go_anywhere() {
        let Top::Cas(args) =
            parse(&["cas", "list", "-o", "json", "--admin-url", "http://x:1"]).unwrap()
        else {
            panic!("not cas");
        };
        assert_eq!(args.admin.output, Output::Json);
        assert_eq!(args.admin.admin_url, "http://x:1");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("pool-a_b.1"), "pool-a_b.1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
