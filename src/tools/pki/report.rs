//! What `pki` wrote, and the summary it prints.

use std::fmt;
use std::path::PathBuf;

use super::clients::CLIENTS;
use super::jks::JksOutcome;

/// One file `pki` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Absolute path of the file.
    pub path: PathBuf,
    /// Whether the file holds secret material (a private key, an encrypted keystore or a
    /// password) and was therefore written with mode 0600.
    pub secret: bool,
}

/// What `pki` did: where, which files, and the keystore password the `.properties` files use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiReport {
    /// Absolute path of the output directory.
    pub out_dir: PathBuf,
    /// Every file written, in the order of writing.
    pub files: Vec<WrittenFile>,
    /// Password of every keystore and truststore (also inside every `.properties` file).
    pub password: String,
    /// Whether `password` was generated rather than given with `--password`.
    pub password_generated: bool,
    /// The JKS copies of the keystores (written by the JDK's keytool when it is there).
    pub jks: JksOutcome,
}

impl fmt::Display for PkiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.out_dir.display();
        let names: Vec<&str> = CLIENTS.iter().map(|c| c.name).collect();
        writeln!(
            f,
            "Wrote a development PKI ({} files) to {dir}",
            self.files.len()
        )?;
        writeln!(
            f,
            "  proxy server cert:  server.pem + server.key (chain to server-ca.pem)"
        )?;
        writeln!(f, "  client CA bundle:   acme-internal-client-ca.pem")?;
        writeln!(
            f,
            "  client identities:  {} (.pem .key .p12 .properties)",
            names.join(", ")
        )?;
        writeln!(f, "  Java truststore:    truststore.p12 (trusts server-ca)")?;
        writeln!(f, "  {}", self.jks)?;
        let origin = if self.password_generated {
            "generated"
        } else {
            "from --password"
        };
        writeln!(f, "Keystore password ({origin}): {}", self.password)?;
        write!(
            f,
            "Try: kafka-topics.sh --bootstrap-server localhost:9092 --command-config {dir}/client.properties --list"
        )
    }
}
