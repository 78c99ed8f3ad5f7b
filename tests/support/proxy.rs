//! Test support shared by the test binaries that run the proxy in-process in front of a fake
//! broker: the proxy's captured logs, a development PKI, Kafka request frames, the fake broker's
//! accept loop and the proxy's server task. (Each test binary uses a different part of it.)
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_mtls_proxy::{config, server};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

// ---------------------------------------------------------------------------------------------
// Logs: the proxy's tracing output, captured so a test can check what it logged.
// ---------------------------------------------------------------------------------------------

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the proxy's log lines (debug and up, no colours) for [`captured_logs`]; the first
/// call in a test binary installs the subscriber, later ones do nothing.
pub fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("kafka_mtls_proxy=debug")
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init();
    });
}

/// Everything the in-process proxies of this test binary logged so far.
pub fn captured_logs() -> String {
    let logs = LOGS.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&logs).into_owned()
}

// ---------------------------------------------------------------------------------------------
// PKI.
// ---------------------------------------------------------------------------------------------

/// A development PKI (`kafka-mtls-proxy pki`, the users' command) in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `password`: the keystore password of the generated `.properties` files.
    pub fn generate(password: &str) -> Self {
        Self::generate_with_hosts(password, &[])
    }

    /// [`Pki::generate`] with extra `--host` names in the server certificate.
    pub fn generate_with_hosts(password: &str, hosts: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-mtls-proxy"))
            .arg("pki")
            .arg("--out")
            .arg(dir.path())
            .args(["--force", "--validity-days", "365", "--password", password])
            .args(hosts.iter().flat_map(|h| ["--host", h]))
            .arg("--no-jks")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kafka-mtls-proxy pki failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `tls` section of a proxy configuration: the dev server certificate and its key.
    pub fn tls_yaml(&self) -> String {
        format!(
            r#"tls:
  certificate_chain: "{server_pem}"
  private_key: "{server_key}""#,
            server_pem = self.path("server.pem").display(),
            server_key = self.path("server.key").display(),
        )
    }

    /// The `certificate_authorities` section of a proxy configuration: the dev client CA, with
    /// acme-client (OU payments) in pool-payments.
    pub fn certificate_authorities_yaml(&self) -> String {
        format!(
            r#"certificate_authorities:
  - id: ca-acme
    display_name: Acme Internal Client CA
    certificate_chain: "{client_ca}"
    identity_pools:
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'"#,
            client_ca = self.path("acme-internal-client-ca.pem").display(),
        )
    }

    /// A client config presenting `<client>.pem`/`.key`, trusting the proxy's CA.
    pub fn client_config(
        &self,
        client: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.path("server-ca.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.path(&format!("{client}.pem")))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path(&format!("{client}.key"))).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------------------------
// Kafka frames.
// ---------------------------------------------------------------------------------------------

/// `body` behind its size prefix.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_i32(i32::try_from(body.len()).unwrap());
    out.put_slice(body);
    out
}

/// A request frame (size prefix included) for a known api, encoded by kafka-protocol.
pub fn request<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    framed(&buf)
}

// ---------------------------------------------------------------------------------------------
// The fake broker's accept loop.
// ---------------------------------------------------------------------------------------------

/// A fake broker's listener on 127.0.0.1 and its accept loop, which hands every connection
/// (with TCP_NODELAY) and the listener's own address to `on_connection` and runs the future it
/// returns as a task of its own.
pub struct FakeListener {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for FakeListener {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

impl FakeListener {
    pub async fn start<F, Fut>(mut on_connection: F) -> Self
    where
        F: FnMut(TcpStream, SocketAddr) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let _ = socket.set_nodelay(true);
                connections.spawn(on_connection(socket, addr));
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, task }
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy under test, in-process.
// ---------------------------------------------------------------------------------------------

/// The proxy's server, bound from a configuration file and running on the test's runtime.
pub struct ServerTask {
    /// The bootstrap listener's address.
    pub addr: SocketAddr,
    /// The admin server's address, when the configuration has an `admin:` section.
    pub admin_addr: Option<SocketAddr>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<Result<(), server::ServerError>>,
}

impl ServerTask {
    pub async fn start(config_path: &Path) -> Self {
        let config = config::load(config_path).unwrap();
        let server = server::Server::bind(config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let admin_addr = server.admin_addr();
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            admin_addr,
            shutdown,
            task,
        }
    }

    /// The admin server's `/metrics` text (the configuration must have an `admin:` section).
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let admin = self.admin_addr.expect("the admin server is on");
        let mut tcp = TcpStream::connect(admin).await.unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = String::new();
        tcp.read_to_string(&mut raw).await.unwrap();
        raw
    }

    /// The value of one series of `/metrics`, written as it appears there (`name{labels}`);
    /// `None` when absent (a labelled counter appears at its first increment).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.metrics().await.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Whether the server task has ended (it must not, before [`ServerTask::stop`]).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Shuts the proxy down and checks that it drains promptly and returns Ok.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let result = tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the proxy did not shut down within 15 s");
        result
            .expect("the proxy's server task panicked")
            .expect("the proxy's server returned an error");
    }
}
