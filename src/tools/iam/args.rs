//! The command line of `pools` and `cas`: the flags of `confluent iam certificate-pool …` and
//! `confluent iam certificate-authority …`, and the options every command shares.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

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
}
