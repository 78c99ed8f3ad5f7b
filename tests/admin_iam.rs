//! The iam/v2 API of a running proxy, black box: a real configuration file in a temporary
//! directory with a development PKI, `Server::bind`, the admin server on 127.0.0.1:0, and
//! plain HTTP/1.1 requests. Every write must be validated as a load is, land in the file
//! atomically, and apply to the running proxy at once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kafka_mtls_proxy::config;
use kafka_mtls_proxy::reload::Reloader;
use kafka_mtls_proxy::server::Server;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod support {
    pub mod http;
}
use support::http::Reply;

const TOKEN: &str = "test-admin-token-0123456789";
const PATIENCE: Duration = Duration::from_secs(30);
const CAS: &str = "/iam/v2/certificate-authorities";

/// One development PKI for the whole test binary (writing keystores is the slow part), in
/// Cargo's scratch directory for integration tests, written by the users' `pki` command.
fn pki_dir() -> &'static Path {
    static PKI: OnceLock<PathBuf> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin_iam_pki");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-mtls-proxy"))
            .arg("pki")
            .arg("--out")
            .arg(&dir)
            .args(["--force", "--password", "test-password", "--no-jks"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kafka-mtls-proxy pki failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn pem(name: &str) -> String {
    std::fs::read_to_string(pki_dir().join(name)).unwrap()
}

/// A self-signed CA certificate, PEM.
fn ca_pem(cn: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

struct Options {
    token: bool,
    pools_per_ca: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: true,
            pools_per_ca: 100,
        }
    }
}

fn config_text(dir: &Path, o: &Options) -> String {
    let pki = pki_dir().display().to_string();
    let token = if o.token {
        format!("\n  token_file: {}", dir.join("admin.token").display())
    } else {
        String::new()
    };
    format!(
        r#"# A hand-written comment the first API write drops.
listener:
  bootstrap: 127.0.0.1:0
  advertised_host: localhost
tls:
  certificate_chain: {pki}/server.pem
  private_key: {pki}/server.key
upstream:
  bootstrap_servers: [127.0.0.1:1]
audit:
  path: "off"
limits:
  pools_per_ca: {ppc}
reload:
  watch_interval_ms: 0
admin:
  listen: 127.0.0.1:0{token}
certificate_authorities:
  - id: ca-acme
    display_name: Acme Internal Client CA
    certificate_chain: {pki}/acme-internal-client-ca.pem
    identity_pools:
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'
"#,
        ppc = o.pools_per_ca
    )
}

/// A running proxy with its configuration file in a directory of its own.
struct Proxy {
    dir: tempfile::TempDir,
    admin: SocketAddr,
    ctx: Arc<Reloader>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(o: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.path().join("proxy.yaml"), config_text(dir.path(), &o)).unwrap();
        Self::start_in(dir).await
    }

    /// Start a proxy on the configuration already in `dir` (a restart).
    async fn start_in(dir: tempfile::TempDir) -> Self {
        let config = config::load(&dir.path().join("proxy.yaml")).unwrap();
        let server = Server::bind(config).await.unwrap();
        let admin = server.admin_addr().unwrap();
        let ctx = server.reloader().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            dir,
            admin,
            ctx,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stop the proxy; its directory lives on (for a restart).
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("proxy.yaml")
    }

    fn config_bytes(&self) -> Vec<u8> {
        std::fs::read(self.config_path()).unwrap()
    }

    /// The files in `cas/` next to the configuration.
    fn cas_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("cas"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut tcp = TcpStream::connect(self.admin).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut raw))
            .await
            .expect("the admin server answers in time")
            .unwrap();
        Reply::parse(&String::from_utf8(raw).unwrap())
    }

    async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, Some(TOKEN), Some(&body.to_string()))
            .await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.request("PATCH", path, Some(TOKEN), Some(&body.to_string()))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.request("PUT", path, Some(TOKEN), Some(&body.to_string()))
            .await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, Some(TOKEN), None).await
    }
}

/// A refused request: (method, path, body, status, pointer, a piece of the detail).
type Case = (
    &'static str,
    String,
    Value,
    u16,
    Option<&'static str>,
    &'static str,
);

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn certificate_authorities_round_trip_with_generated_ids_and_computed_fields() {
    let proxy = Proxy::start(Options::default()).await;

    let list = proxy.get(CAS).await.expect(200).json();
    assert_eq!(list["api_version"], "iam/v2");
    assert_eq!(list["kind"], "CertificateAuthorityList");
    assert_eq!(ids(&list), ["ca-acme"]);
    assert_eq!(list["metadata"]["total_size"], 1);

    let reply = proxy
        .post(
            CAS,
            json!({
                "display_name": "Rogue CA",
                "description": "created through the API",
                "certificate_chain": pem("rogue-ca.pem"),
                "certificate_chain_filename": "rogue-ca.pem",
            }),
        )
        .await
        .expect(201);
    let ca = reply.json();
    let id = ca["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("op-")
            && id.len() >= 8
            && id[3..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(
        reply.header("location"),
        Some(format!("http://admin{CAS}/{id}").as_str())
    );
    assert_eq!(ca["api_version"], "iam/v2");
    assert_eq!(ca["kind"], "CertificateAuthority");
    assert_eq!(ca["state"], "ENABLED");
    assert_eq!(ca["display_name"], "Rogue CA");
    assert_eq!(ca["description"], "created through the API");
    assert_eq!(ca["metadata"]["self"], format!("http://admin{CAS}/{id}"));
    assert_eq!(ca["fingerprints"].as_array().unwrap().len(), 1);
    let fingerprint = ca["fingerprints"][0].as_str().unwrap();
    assert!(fingerprint.len() == 40 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(ca["serial_numbers"].as_array().unwrap().len(), 1);
    assert!(ca["expiration_dates"][0].as_str().unwrap().ends_with('Z'));
    assert!(
        ca["certificate_chain_filename"]
            .as_str()
            .unwrap()
            .ends_with(".pem")
    );
    assert_eq!(ca["certificate_chain"], pem("rogue-ca.pem"));
    assert!(ca.get("identity_pools").is_none());
    assert_eq!(proxy.cas_files().len(), 1, "the chain is a file in cas/");

    assert_eq!(
        proxy.get(&format!("{CAS}/{id}")).await.expect(200).json(),
        ca
    );
    assert_eq!(
        ids(&proxy.get(CAS).await.expect(200).json()),
        ["ca-acme", id.as_str()]
    );

    // PATCH changes only what it names; PUT replaces the chain (2 certificates now).
    let patched = proxy
        .patch(&format!("{CAS}/{id}"), json!({"description": "patched"}))
        .await
        .expect(200)
        .json();
    assert_eq!(patched["description"], "patched");
    assert_eq!(patched["display_name"], "Rogue CA");
    assert_eq!(patched["fingerprints"], ca["fingerprints"]);
    let put = proxy
        .put(
            &format!("{CAS}/{id}"),
            json!({"certificate_chain": pem("acme-internal-client-ca.pem")}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(put["fingerprints"].as_array().unwrap().len(), 2);
    assert_eq!(put["description"], "patched");
    assert_eq!(
        proxy.cas_files().len(),
        1,
        "the replaced chain file is removed"
    );

    // The file holds it, and loads.
    let loaded = config::load(&proxy.config_path()).unwrap();
    let entry = loaded
        .reloadable
        .authorities
        .iter()
        .find(|a| a.id == id)
        .unwrap();
    assert_eq!(entry.description, "patched");
    assert_eq!(entry.certificates.len(), 2);
    let text = String::from_utf8(proxy.config_bytes()).unwrap();
    assert!(text.starts_with("# kafka-mtls-proxy configuration, written by the admin API"));
    assert!(!text.contains("A hand-written comment"));

    proxy.delete(&format!("{CAS}/{id}")).await.expect(204);
    proxy.get(&format!("{CAS}/{id}")).await.expect(404);
    proxy.delete(&format!("{CAS}/{id}")).await.expect(404);
    assert_eq!(ids(&proxy.get(CAS).await.expect(200).json()), ["ca-acme"]);
    assert!(proxy.cas_files().is_empty(), "{:?}", proxy.cas_files());
    let loaded = config::load(&proxy.config_path()).unwrap();
    assert_eq!(loaded.reloadable.authorities.len(), 1);
    proxy.stop().await;
}

#[tokio::test]
async fn identity_pools_round_trip_with_generated_ids_and_principals() {
    let proxy = Proxy::start(Options::default()).await;
    let pools = format!("{CAS}/ca-acme/identity-pools");

    let list = proxy.get(&pools).await.expect(200).json();
    assert_eq!(list["kind"], "CertificateIdentityPoolList");
    assert_eq!(ids(&list), ["pool-payments", "pool-acme-all"]);
    assert_eq!(list["data"][0]["principal"], "User:pool-payments");

    let created = proxy
        .post(
            &pools,
            json!({
                "display_name": "Outsiders",
                "description": "Other Corp's clients",
                "external_identifier": "CN",
                "filter": "O == \"Other Corp\"",
            }),
        )
        .await
        .expect(201)
        .json();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("pool-") && id.len() > "pool-".len() + 4,
        "{id}"
    );
    assert_eq!(created["kind"], "CertificateIdentityPool");
    assert_eq!(created["api_version"], "iam/v2");
    assert_eq!(created["principal"], format!("User:{id}"));
    assert_eq!(created["state"], "ENABLED");
    assert_eq!(created["filter"], "O == \"Other Corp\"");
    assert_eq!(created["external_identifier"], "CN");
    assert_eq!(
        created["metadata"]["self"],
        format!("http://admin{pools}/{id}")
    );

    // A chosen id is kept.
    let chosen = proxy
        .post(
            &pools,
            json!({"id": "pool-chosen", "display_name": "Chosen", "external_identifier": "DN",
                   "filter": "CN == \"x\""}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(chosen["principal"], "User:pool-chosen");

    let one = proxy.get(&format!("{pools}/{id}")).await.expect(200).json();
    assert_eq!(one, created);

    // Sending back what GET returned, with one change, is an update (read-only fields ignored).
    let mut body = one.clone();
    body["filter"] = json!("O == \"Other Corp\" && CN == \"outsider\"");
    let updated = proxy
        .put(&format!("{pools}/{id}"), body)
        .await
        .expect(200)
        .json();
    assert_eq!(
        updated["filter"],
        "O == \"Other Corp\" && CN == \"outsider\""
    );
    assert_eq!(updated["description"], "Other Corp's clients");
    let patched = proxy
        .patch(
            &format!("{pools}/{id}"),
            json!({"display_name": "Other Corp"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(patched["display_name"], "Other Corp");
    assert_eq!(patched["filter"], updated["filter"]);

    let loaded = config::load(&proxy.config_path()).unwrap();
    let pool = loaded.reloadable.authorities[0]
        .pools
        .pools
        .iter()
        .find(|p| p.id == id)
        .unwrap();
    assert_eq!(pool.display_name, "Other Corp");

    proxy.delete(&format!("{pools}/{id}")).await.expect(204);
    proxy.get(&format!("{pools}/{id}")).await.expect(404);
    assert_eq!(
        ids(&proxy.get(&pools).await.expect(200).json()),
        ["pool-payments", "pool-acme-all", "pool-chosen"]
    );
    proxy
        .get(&format!("{CAS}/op-missing/identity-pools"))
        .await
        .expect(404);
    proxy.stop().await;
}

#[tokio::test]
async fn every_refusal_names_its_field_and_leaves_the_file_as_it_was() {
    let proxy = Proxy::start(Options {
        pools_per_ca: 3,
        ..Options::default()
    })
    .await;
    let pools = format!("{CAS}/ca-acme/identity-pools");
    let five: String = (1..=5).map(|i| ca_pem(&format!("CA {i}"))).collect();
    let pool = |filter: &str, identifier: &str| json!({"display_name": "P", "external_identifier": identifier, "filter": filter});
    // Fill the quota to its last place so that one more pool exceeds it.
    proxy
        .post(
            &pools,
            json!({"id": "pool-third", "display_name": "3", "external_identifier": "CN",
                              "filter": "CN == \"3\""}),
        )
        .await
        .expect(201);
    let before = proxy.config_bytes();

    // (method, path, body, status, pointer, a piece of the detail)
    let cases: Vec<Case> = vec![
        (
            "POST",
            CAS.into(),
            json!({"display_name": "Empty", "certificate_chain": ""}),
            400,
            Some("/certificate_chain"),
            "contains no PEM certificate",
        ),
        (
            "POST",
            CAS.into(),
            json!({"display_name": "Five", "certificate_chain": five}),
            400,
            Some("/certificate_chain"),
            "holds 5 certificates",
        ),
        (
            "POST",
            CAS.into(),
            json!({"display_name": "Leaf", "certificate_chain": pem("acme-client.pem")}),
            400,
            Some("/certificate_chain"),
            "is not a CA certificate",
        ),
        (
            "POST",
            CAS.into(),
            json!({"display_name": "No chain"}),
            400,
            Some("/certificate_chain"),
            "required",
        ),
        (
            "POST",
            CAS.into(),
            json!({"display_name": "", "certificate_chain": pem("rogue-ca.pem")}),
            400,
            Some("/display_name"),
            "must not be empty",
        ),
        (
            "POST",
            CAS.into(),
            json!({"id": "ca-acme", "display_name": "Dup", "certificate_chain": pem("rogue-ca.pem")}),
            409,
            Some("/id"),
            "already exists",
        ),
        (
            "POST",
            CAS.into(),
            json!({"id": "bad id!", "display_name": "X", "certificate_chain": pem("rogue-ca.pem")}),
            400,
            Some("/id"),
            "contains ` `",
        ),
        (
            "POST",
            CAS.into(),
            json!({"display_name": "X", "certificate_chain": pem("rogue-ca.pem"),
                "certificate_chain_filename": "chain.crt"}),
            400,
            Some("/certificate_chain_filename"),
            ".pem",
        ),
        (
            "PATCH",
            format!("{CAS}/ca-acme"),
            json!({"identity_pools": []}),
            400,
            Some("/identity_pools"),
            "identity-pools",
        ),
        (
            "PATCH",
            format!("{CAS}/ca-acme"),
            json!({"colour": "blue"}),
            400,
            Some("/colour"),
            "unknown field",
        ),
        (
            "DELETE",
            format!("{CAS}/ca-acme"),
            Value::Null,
            409,
            None,
            "at least one certificate authority",
        ),
        (
            "POST",
            pools.clone(),
            pool("CN == \"a\" &&", "CN"),
            400,
            Some("/filter"),
            "syntax error at line 1, column",
        ),
        (
            "POST",
            pools.clone(),
            pool("cn == \"a\"", "CN"),
            400,
            Some("/filter"),
            "unknown identifier `cn` at line 1, column 1",
        ),
        (
            "POST",
            pools.clone(),
            pool("CN == \"a\"", "EMAIL"),
            400,
            Some("/external_identifier"),
            "unknown external identifier `EMAIL`",
        ),
        (
            "POST",
            pools.clone(),
            json!({"display_name": "P", "filter": "CN == \"a\""}),
            400,
            Some("/external_identifier"),
            "missing field",
        ),
        (
            "POST",
            pools.clone(),
            json!({"id": "pool-payments", "display_name": "P", "external_identifier": "CN",
                "filter": "CN == \"a\""}),
            409,
            Some("/id"),
            "already exists",
        ),
        (
            "POST",
            pools.clone(),
            pool("CN == \"a\"", "CN"),
            409,
            None,
            "exceed limits.pools_per_ca (3)",
        ),
        (
            "POST",
            format!("{CAS}/op-nowhere/identity-pools"),
            pool("CN == \"a\"", "CN"),
            404,
            None,
            "certificate authority `op-nowhere` does not exist",
        ),
        (
            "PATCH",
            format!("{pools}/pool-payments"),
            json!({"id": "pool-renamed"}),
            400,
            Some("/id"),
            "cannot be changed",
        ),
        (
            "PATCH",
            format!("{pools}/pool-payments"),
            json!({"filter": "OU =="}),
            400,
            Some("/filter"),
            "line 1, column",
        ),
        (
            "PATCH",
            format!("{pools}/pool-nowhere"),
            json!({"filter": "true"}),
            404,
            None,
            "identity pool `pool-nowhere` does not exist",
        ),
        (
            "POST",
            pools.clone(),
            json!(["not", "an", "object"]),
            400,
            None,
            "must be a JSON object",
        ),
    ];
    for (method, path, body, status, pointer, needle) in cases {
        let body = (!body.is_null()).then(|| body.to_string());
        let reply = proxy
            .request(method, &path, Some(TOKEN), body.as_deref())
            .await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let (detail, got_pointer) = reply.error();
        assert_eq!(got_pointer.as_deref(), pointer, "{method} {path}: {detail}");
        assert!(
            detail.contains(needle),
            "{method} {path}: `{needle}` not in: {detail}"
        );
        assert!(
            !detail.contains(&proxy.dir.path().display().to_string()),
            "the detail shows a server path: {detail}"
        );
        assert_eq!(
            proxy.config_bytes(),
            before,
            "{method} {path}: a refused write changed the configuration file"
        );
        assert!(
            proxy.cas_files().is_empty(),
            "{method} {path}: {:?}",
            proxy.cas_files()
        );
    }
    // The running proxy never saw any of them.
    assert_eq!(
        proxy.ctx.current().config.authorities[0].pools.pools.len(),
        3
    );
    proxy.stop().await;
}

#[tokio::test]
async fn writes_need_the_token_and_reads_do_not() {
    let proxy = Proxy::start(Options::default()).await;
    let pools = format!("{CAS}/ca-acme/identity-pools");
    let body =
        json!({"display_name": "P", "external_identifier": "CN", "filter": "true"}).to_string();
    let before = proxy.config_bytes();

    for token in [
        None,
        Some("wrong-token"),
        Some("test-admin-token-012345678"),
    ] {
        let reply = proxy
            .request("POST", &pools, token, Some(&body))
            .await
            .expect(401);
        assert!(
            reply
                .header("www-authenticate")
                .unwrap()
                .starts_with("Bearer"),
            "{:?}",
            reply.headers
        );
        let (detail, _) = reply.error();
        assert!(
            detail.contains("token") || detail.contains("Bearer"),
            "{detail}"
        );
    }
    proxy
        .request(
            "DELETE",
            &format!("{pools}/pool-payments"),
            Some("nope"),
            None,
        )
        .await
        .expect(401);
    assert_eq!(proxy.config_bytes(), before);

    proxy.get(CAS).await.expect(200);
    proxy.get(&pools).await.expect(200);
    proxy
        .request("POST", &pools, Some(TOKEN), Some(&body))
        .await
        .expect(201);

    // The token file is read for every write: a rotated token applies at once.
    std::fs::write(
        proxy.dir.path().join("admin.token"),
        "rotated-token-0123456789",
    )
    .unwrap();
    proxy
        .request("POST", &pools, Some(TOKEN), Some(&body))
        .await
        .expect(401);
    proxy
        .request(
            "POST",
            &pools,
            Some("rotated-token-0123456789"),
            Some(&body),
        )
        .await
        .expect(201);
    proxy.stop().await;
}

#[tokio::test]
async fn without_a_token_the_api_is_read_only() {
    let proxy = Proxy::start(Options {
        token: false,
        ..Options::default()
    })
    .await;
    let before = proxy.config_bytes();
    proxy.get(CAS).await.expect(200);
    let reply = proxy
        .post(
            &format!("{CAS}/ca-acme/identity-pools"),
            json!({"display_name": "P", "external_identifier": "CN", "filter": "true"}),
        )
        .await
        .expect(403);
    let (detail, _) = reply.error();
    assert!(detail.contains("read-only"), "{detail}");
    assert!(detail.contains("admin.token_file"), "{detail}");
    proxy
        .delete(&format!("{CAS}/ca-acme/identity-pools/pool-payments"))
        .await
        .expect(403);
    assert_eq!(proxy.config_bytes(), before);
    proxy.stop().await;
}

#[tokio::test]
async fn a_write_applies_to_the_running_proxy_at_once_and_explain_sees_it() {
    let proxy = Proxy::start(Options::default()).await;
    let generation = proxy.ctx.current().number;

    let explain = |pem_text: String| {
        let proxy = &proxy;
        async move {
            proxy
                .request("POST", "/iam/v2/explain", None, Some(&pem_text))
                .await
        }
    };
    let before = explain(pem("outsider.pem")).await.expect(200).json();
    assert_eq!(before["admitted"], false);
    assert_eq!(before["refusal"]["reason"], "no_pool_matched");
    let admitted = explain(pem("acme-client.pem")).await.expect(200).json();
    assert_eq!(admitted["admitted"], true);
    assert_eq!(
        admitted["matched_pools"],
        json!(["pool-payments", "pool-acme-all"])
    );
    let (detail, _) = explain("not a certificate".into())
        .await
        .expect(422)
        .error();
    assert!(detail.contains("no PEM certificate"), "{detail}");

    proxy
        .post(
            &format!("{CAS}/ca-acme/identity-pools"),
            json!({"id": "pool-outsiders", "display_name": "Outsiders",
                   "external_identifier": "CN", "filter": "O == \"Other Corp\""}),
        )
        .await
        .expect(201);
    let current = proxy.ctx.current();
    assert!(current.number > generation, "no reload happened");
    assert!(
        current.config.authorities[0]
            .pools
            .pools
            .iter()
            .any(|p| p.id == "pool-outsiders")
    );
    let after = explain(pem("outsider.pem")).await.expect(200).json();
    assert_eq!(after["admitted"], true, "{after}");
    assert_eq!(after["principals"], json!(["User:pool-outsiders"]));
    proxy.stop().await;
}

#[tokio::test]
async fn a_restart_on_the_written_file_is_the_same_state() {
    let proxy = Proxy::start(Options::default()).await;
    let ca = proxy
        .post(
            CAS,
            json!({"id": "op-rogue", "display_name": "Rogue", "certificate_chain": pem("rogue-ca.pem")}),
        )
        .await
        .expect(201)
        .json();
    proxy
        .post(
            &format!("{CAS}/op-rogue/identity-pools"),
            json!({"id": "pool-rogue", "display_name": "Rogue clients",
                   "external_identifier": "SHA1", "filter": "CN == \"rogue\""}),
        )
        .await
        .expect(201);
    proxy
        .delete(&format!("{CAS}/ca-acme/identity-pools/pool-acme-all"))
        .await
        .expect(204);
    let cas_before = proxy.get(CAS).await.expect(200).json();
    let pools_before = proxy
        .get(&format!("{CAS}/op-rogue/identity-pools"))
        .await
        .json();
    let acme_before = proxy
        .get(&format!("{CAS}/ca-acme/identity-pools"))
        .await
        .json();
    assert_eq!(ids(&acme_before), ["pool-payments"]);

    let dir = proxy.stop().await;
    let restarted = Proxy::start_in(dir).await;
    assert_eq!(restarted.get(CAS).await.expect(200).json(), cas_before);
    assert_eq!(
        restarted
            .get(&format!("{CAS}/op-rogue/identity-pools"))
            .await
            .json(),
        pools_before
    );
    assert_eq!(
        restarted
            .get(&format!("{CAS}/ca-acme/identity-pools"))
            .await
            .json(),
        acme_before
    );
    let running = restarted.ctx.current();
    let rogue = running
        .config
        .authorities
        .iter()
        .find(|a| a.id == "op-rogue")
        .unwrap();
    assert_eq!(rogue.certificates.len(), 1);
    assert_eq!(ca["fingerprints"].as_array().unwrap().len(), 1);
    restarted.stop().await;
}

#[tokio::test]
async fn concurrent_writes_are_all_kept() {
    let proxy = Arc::new(Proxy::start(Options::default()).await);
    let pools = format!("{CAS}/ca-acme/identity-pools");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (proxy, pools) = (proxy.clone(), pools.clone());
        tasks.push(tokio::spawn(async move {
            proxy
                .post(
                    &pools,
                    json!({"id": format!("pool-c{i}"), "display_name": format!("C{i}"),
                           "external_identifier": "CN", "filter": format!("CN == \"c{i}\"")}),
                )
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let loaded = config::load(&proxy.config_path()).unwrap();
    let got: Vec<&str> = loaded.reloadable.authorities[0]
        .pools
        .pools
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    for i in 0..8 {
        assert!(
            got.contains(&format!("pool-c{i}").as_str()),
            "pool-c{i} lost: {got:?}"
        );
    }
    assert_eq!(got.len(), 10);
    let proxy = Arc::into_inner(proxy).expect("the tasks are done");
    proxy.stop().await;
}

#[tokio::test]
async fn what_a_crash_mid_write_leaves_behind_changes_nothing() {
    let proxy = Proxy::start(Options::default()).await;
    // A crash between writing the temporary file and renaming it leaves a temporary file
    // next to the configuration, and the configuration as it was.
    let stale = proxy.dir.path().join(".proxy.yaml.999.AbCdEfGh.tmp");
    std::fs::write(&stale, "listener: {half-written").unwrap();
    let before = proxy.config_bytes();
    config::load(&proxy.config_path()).unwrap();

    proxy
        .post(
            &format!("{CAS}/ca-acme/identity-pools"),
            json!({"display_name": "After", "external_identifier": "CN", "filter": "true"}),
        )
        .await
        .expect(201);
    assert_ne!(proxy.config_bytes(), before);
    config::load(&proxy.config_path()).unwrap();
    // The write left no temporary file of its own.
    let mut names: Vec<String> = std::fs::read_dir(proxy.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".proxy.yaml.999.AbCdEfGh.tmp", "admin.token", "proxy.yaml"]
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_cas_revocation_settings_are_fields_of_the_api() {
    let proxy = Proxy::start(Options::default()).await;
    let acme = format!("{CAS}/ca-acme");
    let crl = pem("acme-intermediate-ca.crl.pem");

    let ca = proxy
        .patch(
            &acme,
            json!({"crl_chain": crl, "require_crl_on_client_certificate": true}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(ca["crl_source"], "LOCAL", "{ca}");
    assert_eq!(ca["require_crl_on_client_certificate"], true);
    assert!(
        ca.get("crl_chain").is_none(),
        "a CRL is not echoed back: {ca}"
    );
    assert_eq!(proxy.cas_files().len(), 1, "{:?}", proxy.cas_files());
    let running = proxy.ctx.current();
    assert!(!running.config.authorities[0].crls.is_empty());
    assert!(running.config.authorities[0].require_crl);

    // The revoked client is refused now, by the running proxy.
    let revoked = proxy
        .request("POST", "/iam/v2/explain", None, Some(&pem("revoked.pem")))
        .await
        .expect(200)
        .json();
    assert_eq!(revoked["admitted"], false, "{revoked}");

    let (detail, pointer) = proxy
        .patch(&acme, json!({"crl_url": "ftp://crl.example/ca.crl"}))
        .await
        .expect(400)
        .error();
    assert_eq!(pointer.as_deref(), Some("/crl_url"), "{detail}");

    let ca = proxy
        .patch(
            &acme,
            json!({"crl_chain": null, "require_crl_on_client_certificate": false}),
        )
        .await
        .expect(200)
        .json();
    assert!(ca.get("crl_source").is_none(), "{ca}");
    assert!(proxy.cas_files().is_empty(), "{:?}", proxy.cas_files());
    assert!(proxy.ctx.current().config.authorities[0].crls.is_empty());
    proxy.stop().await;
}
