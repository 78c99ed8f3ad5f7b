//! JKS keystores next to the PKCS#12 ones, for Java clients configured the way Confluent's
//! documents show both formats.
//!
//! JKS is Java's own proprietary format; no maintained Rust crate writes it, and a hand-written
//! encoder would be a second, untested copy of Java's. So the JDK's `keytool` converts the
//! PKCS#12 files `pki` has just written (`keytool -importkeystore`): every identity's
//! `NAME.p12` becomes `NAME.jks`, `truststore.p12` becomes `truststore.jks`, and each identity
//! gets a `NAME-jks.properties` (`client-jks.properties` for acme-client). Without `keytool`
//! (no JDK on the machine) the JKS files are skipped and the report says so; the PKCS#12 files
//! work with every Java client since Java 9.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::clients::{CLIENTS, ClientSpec};
use super::files::write_file;
use super::properties::client_properties;
use super::{PkiError, WrittenFile};

/// What happened to the JKS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JksOutcome {
    /// Converted with this `keytool`.
    Written {
        /// The keytool that converted them.
        keytool: PathBuf,
    },
    /// No `keytool` on `PATH` nor in `$JAVA_HOME/bin`: nothing written.
    NoKeytool,
    /// `--no-jks`.
    NotAsked,
    /// keytool failed; the PKCS#12 files are complete, the JKS ones are not to be used.
    Failed {
        /// What keytool said.
        reason: String,
    },
}

impl fmt::Display for JksOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Written { keytool } => write!(
                f,
                "JKS keystores:      NAME.jks, truststore.jks, NAME-jks.properties, client-jks.properties ({})",
                keytool.display()
            ),
            Self::NoKeytool => write!(
                f,
                "JKS keystores:      skipped: no keytool (it comes with a JDK); the PKCS#12 files work with every Java client"
            ),
            Self::NotAsked => write!(f, "JKS keystores:      not written (--no-jks)"),
            Self::Failed { reason } => write!(f, "JKS keystores:      keytool failed: {reason}"),
        }
    }
}

/// The files the conversion writes, for the "refuse to overwrite" check before anything is
/// written.
pub(super) fn file_names() -> Vec<String> {
    let mut names = vec![
        "truststore.jks".to_owned(),
        "client-jks.properties".to_owned(),
    ];
    for spec in &CLIENTS {
        names.push(format!("{}.jks", spec.name));
        names.push(format!("{}-jks.properties", spec.name));
    }
    names
}

/// `keytool` from `$JAVA_HOME/bin`, else from `PATH`.
fn find_keytool() -> Option<PathBuf> {
    let from_java_home = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("keytool"))
        .filter(|p| p.is_file());
    from_java_home.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("keytool"))
                .find(|p| p.is_file())
        })
    })
}

/// Converts the PKCS#12 files in `out_dir` (all written with `password`) to JKS, and writes
/// the `-jks.properties` files. Appends what it wrote to `written`.
pub(super) fn convert(
    out_dir: &Path,
    password: &str,
    written: &mut Vec<WrittenFile>,
) -> Result<JksOutcome, PkiError> {
    let Some(keytool) = find_keytool() else {
        return Ok(JksOutcome::NoKeytool);
    };
    let truststore = out_dir.join("truststore.jks");
    // The truststore holds a trusted certificate, which `-importkeystore` does not carry over
    // from PKCS#12 (keytool 17 imports 0 entries); `-importcert` takes the CA's PEM.
    let mut jobs = vec![Conversion::truststore(
        &out_dir.join("server-ca.pem"),
        &truststore,
    )];
    for spec in &CLIENTS {
        jobs.push(Conversion::keystore(
            &out_dir.join(format!("{}.p12", spec.name)),
            &out_dir.join(format!("{}.jks", spec.name)),
        ));
    }
    // keytool merges into an existing store; `--force` means a fresh one.
    for job in &jobs {
        remove_if_present(&job.jks)?;
    }
    // One JVM start per store (~1 s each): run them side by side.
    let running: Vec<_> = jobs
        .iter()
        .map(|job| (job, job.spawn(&keytool, password)))
        .collect();
    let mut failure = None;
    for (job, child) in running {
        match job.finish(child) {
            Ok(()) => written.push(WrittenFile {
                path: job.jks.clone(),
                secret: true,
            }),
            Err(reason) => failure = failure.or(Some(reason)),
        }
    }
    if let Some(reason) = failure {
        return Ok(JksOutcome::Failed { reason });
    }
    for spec in &CLIENTS {
        let properties = jks_properties(spec, out_dir, &truststore, password);
        let mut names = vec![format!("{}-jks.properties", spec.name)];
        if spec.name == "acme-client" {
            names.push("client-jks.properties".to_owned());
        }
        for name in names {
            let path = out_dir.join(name);
            write_file(&path, properties.as_bytes(), true)?;
            written.push(WrittenFile { path, secret: true });
        }
    }
    Ok(JksOutcome::Written { keytool })
}

fn jks_properties(spec: &ClientSpec, out_dir: &Path, truststore: &Path, password: &str) -> String {
    let keystore = out_dir.join(format!("{}.jks", spec.name));
    client_properties(spec, &keystore, truststore, password, "JKS")
}

fn remove_if_present(path: &Path) -> Result<(), PkiError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PkiError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

const PASSWORD_VAR: &str = "KAFKA_MTLS_PROXY_PKI_PASSWORD";

/// One keytool run that writes `jks` from `source`.
struct Conversion {
    source: PathBuf,
    jks: PathBuf,
    /// `-importkeystore` of a PKCS#12 keystore, or `-importcert` of a PEM CA certificate.
    is_keystore: bool,
}

impl Conversion {
    fn keystore(p12: &Path, jks: &Path) -> Self {
        Self {
            source: p12.to_owned(),
            jks: jks.to_owned(),
            is_keystore: true,
        }
    }

    fn truststore(ca_pem: &Path, jks: &Path) -> Self {
        Self {
            source: ca_pem.to_owned(),
            jks: jks.to_owned(),
            is_keystore: false,
        }
    }

    /// Starts keytool, the password passed through the environment (not argv, where any local
    /// user could read it).
    fn spawn(&self, keytool: &Path, password: &str) -> std::io::Result<std::process::Child> {
        let mut command = Command::new(keytool);
        if self.is_keystore {
            command
                .args(["-importkeystore", "-noprompt", "-srcstoretype", "PKCS12"])
                .arg("-srckeystore")
                .arg(&self.source)
                .args(["-srcstorepass:env", PASSWORD_VAR])
                .args(["-deststoretype", "JKS", "-destkeystore"])
                .arg(&self.jks)
                .args(["-deststorepass:env", PASSWORD_VAR])
                .args(["-destkeypass:env", PASSWORD_VAR]);
        } else {
            command
                .args(["-importcert", "-noprompt", "-alias", "server-ca", "-file"])
                .arg(&self.source)
                .args(["-storetype", "JKS", "-keystore"])
                .arg(&self.jks)
                .args(["-storepass:env", PASSWORD_VAR]);
        }
        command
            .env(PASSWORD_VAR, password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    fn finish(&self, child: std::io::Result<std::process::Child>) -> Result<(), String> {
        let output = child
            .and_then(std::process::Child::wait_with_output)
            .map_err(|e| format!("could not run keytool: {e}"))?;
        if output.status.success() && self.jks.is_file() {
            return restrict(&self.jks).map_err(|e| format!("{}: {e}", self.jks.display()));
        }
        let said = String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "{} → {}: {} ({})",
            self.source.display(),
            self.jks.display(),
            said.trim(),
            output.status
        ))
    }
}

/// A keystore is secret: mode 0600, as `pki` writes its PKCS#12 files.
fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed expectation in a test is the test failing"
)]
mod tests {
    use super::*;

    #[test]
    fn the_names_to_check_cover_every_file_the_conversion_writes() {
        let names = file_names();
        for spec in &CLIENTS {
            assert!(names.contains(&format!("{}.jks", spec.name)));
            assert!(names.contains(&format!("{}-jks.properties", spec.name)));
        }
        assert!(names.contains(&"truststore.jks".to_owned()));
        assert!(names.contains(&"client-jks.properties".to_owned()));
    }

    /// With a JDK on the machine (CI has one), keytool's own `-list` reads the converted
    /// keystores back: the key entry and the trusted certificate are there.
    #[test]
    fn keytool_converts_every_keystore_and_reads_them_back() {
        let Some(keytool) = find_keytool() else {
            eprintln!("skipped: no keytool on this machine");
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let report = crate::tools::pki::run(&crate::tools::pki::PkiArgs {
            out: dir.path().to_owned(),
            force: false,
            validity_days: 30,
            password: Some("jks-test-pw".to_owned()),
            hosts: Vec::new(),
            no_jks: false,
            crl_base_url: None,
        })
        .expect("pki");
        assert_eq!(
            report.jks,
            JksOutcome::Written {
                keytool: keytool.clone()
            }
        );
        for (store, entry) in [
            ("acme-client.jks", "PrivateKeyEntry"),
            ("truststore.jks", "trustedCertEntry"),
        ] {
            let listed = Command::new(&keytool)
                .args([
                    "-list",
                    "-storetype",
                    "JKS",
                    "-storepass",
                    "jks-test-pw",
                    "-keystore",
                ])
                .arg(dir.path().join(store))
                .output()
                .expect("keytool -list");
            let text = String::from_utf8_lossy(&listed.stdout);
            assert!(
                listed.status.success() && text.contains(entry),
                "{store}: {text}"
            );
        }
        let properties =
            std::fs::read_to_string(dir.path().join("client-jks.properties")).expect("read");
        assert!(properties.contains("ssl.keystore.type=JKS"), "{properties}");
        assert!(
            properties.contains("ssl.truststore.type=JKS"),
            "{properties}"
        );
        assert!(properties.contains("acme-client.jks"), "{properties}");
        // Written again with --force: fresh stores, not merged ones.
        let again = crate::tools::pki::run(&crate::tools::pki::PkiArgs {
            out: dir.path().to_owned(),
            force: true,
            validity_days: 30,
            password: Some("jks-test-pw".to_owned()),
            hosts: Vec::new(),
            no_jks: false,
            crl_base_url: None,
        })
        .expect("pki --force");
        assert!(
            matches!(again.jks, JksOutcome::Written { .. }),
            "{:?}",
            again.jks
        );
    }
}
