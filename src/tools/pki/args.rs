//! The command line of `kafka-mtls-proxy pki`.

use std::path::PathBuf;

/// Where `pki` writes unless told otherwise; the repository's `certs/` holds only a README.
pub const DEFAULT_OUT_DIR: &str = "certs";

/// 825 days is the longest validity Apple platforms accept for a TLS server certificate; a
/// shorter default would only make developers regenerate more often.
pub const DEFAULT_VALIDITY_DAYS: u32 = 825;

/// An upper bound on `--validity-days` keeps `now + days` far from the limits of X.509 dates
/// (year 9999) and of `time::OffsetDateTime`, so the validity arithmetic cannot overflow.
pub const MAX_VALIDITY_DAYS: u32 = 36_500;

/// Command-line arguments of `kafka-mtls-proxy pki`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct PkiArgs {
    /// Directory to write the PKI into (created if missing).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUT_DIR)]
    pub out: PathBuf,

    /// Replace files that already exist. Without it, `pki` refuses and names the first one.
    #[arg(long)]
    pub force: bool,

    /// Validity of every certificate (CAs and leaves), in days from now.
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = DEFAULT_VALIDITY_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_VALIDITY_DAYS)),
    )]
    pub validity_days: u32,

    /// Password of every PKCS#12 keystore and truststore. Default: a random 24-character
    /// alphanumeric one, printed at the end and written into the .properties files.
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Extra host name or IP address for the proxy's server certificate (repeatable); a
    /// wildcard first label (`*.kafka.example.com`) covers SNI routing's broker names.
    /// `localhost` and `127.0.0.1` are always included.
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Skip the JKS copies of the keystores (written with the JDK's keytool when it is on the
    /// machine; PKCS#12 alone works with every Java client since Java 9).
    #[arg(long)]
    pub no_jks: bool,

    /// Name `URL/acme-intermediate-ca.crl.pem` as the CRL distribution point of the client
    /// certificates the intermediate issues (serve the output directory at URL): a CA with
    /// neither `crl_url` nor `crl_chain` then learns the CRL from the certificates.
    #[arg(long, value_name = "URL")]
    pub crl_base_url: Option<String>,
}

impl Default for PkiArgs {
    fn default() -> Self {
        Self {
            out: PathBuf::from(DEFAULT_OUT_DIR),
            force: false,
            validity_days: DEFAULT_VALIDITY_DAYS,
            password: None,
            hosts: Vec::new(),
            no_jks: false,
            crl_base_url: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_defaults() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            pki: PkiArgs,
        }
        let cli = Cli::try_parse_from(["pki"]).expect("defaults parse");
        assert_eq!(cli.pki, PkiArgs::default());
        let cli = Cli::try_parse_from([
            "pki",
            "--out",
            "x",
            "--force",
            "--validity-days",
            "10",
            "--password",
            "p",
            "--host",
            "a.example",
            "--host",
            "10.0.0.1",
        ])
        .expect("parse");
        assert_eq!(cli.pki.hosts, ["a.example", "10.0.0.1"]);
        assert!(cli.pki.force && cli.pki.validity_days == 10);
        assert!(Cli::try_parse_from(["pki", "--validity-days", "0"]).is_err());
    }
}
