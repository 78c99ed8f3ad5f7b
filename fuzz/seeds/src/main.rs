//! Writes the seed corpus of every fuzz target under `corpus/<target>/` (run from `fuzz/`).
//! A few small real inputs per target, laid out as each target's doc comment says.

mod check_request;
mod proxy_header;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeClusterResponse, FetchResponse,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, SaslAuthenticateResponse, SaslHandshakeResponse, TopicName,
    api_versions_response::ApiVersion,
    describe_cluster_response::DescribeClusterBroker,
    fetch_response,
    find_coordinator_response::Coordinator,
    metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic},
    produce_response,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// A response frame (header + body, no size prefix) at `version`.
fn response<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(7)
        .encode(&mut out, key.response_header_version(version))?;
    body.encode(&mut out, version)?;
    Ok(out.to_vec())
}

fn request<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(s("seed-client")))
        .encode(&mut out, key.request_header_version(version))?;
    body.encode(&mut out, version)?;
    Ok(out.to_vec())
}

/// The targets named on the command line (none: every target): only their seeds are written,
/// so adding a target does not rewrite the others' (certificates are made with new keys).
static ONLY: OnceLock<Vec<String>> = OnceLock::new();

fn write(target: &str, name: &str, bytes: &[u8]) -> Result {
    let only = ONLY.get_or_init(|| std::env::args().skip(1).collect());
    if !only.is_empty() && !only.iter().any(|t| t == target) {
        return Ok(());
    }
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn with_selector(selector: u8, frame: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(frame);
    out
}

const BROKERS: [(i32, &str, i32); 3] = [
    (1, "broker-1.internal", 9092),
    (2, "broker-2.internal", 9092),
    (1001, "broker-1001.internal", 19092),
];

fn metadata(version: i16) -> Result<Vec<u8>> {
    let brokers = BROKERS
        .iter()
        .map(|&(id, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(s(host))
                .with_port(port)
                .with_rack(Some(s("rack-a")))
        })
        .collect();
    let topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(s("payments"))))
        .with_partitions(vec![
            MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(1))
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(1)]),
        ]);
    let body = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(s("cluster-a")))
        .with_controller_id(BrokerId(1))
        .with_topics(vec![topic]);
    response(ApiKey::Metadata, version, &body)
}

fn find_coordinator(version: i16) -> Result<Vec<u8>> {
    let body = if version < 4 {
        FindCoordinatorResponse::default()
            .with_node_id(BrokerId(2))
            .with_host(s("broker-2.internal"))
            .with_port(9092)
    } else {
        FindCoordinatorResponse::default().with_coordinators(vec![
            Coordinator::default()
                .with_key(s("group-a"))
                .with_node_id(BrokerId(2))
                .with_host(s("broker-2.internal"))
                .with_port(9092),
            Coordinator::default()
                .with_key(s("group-b"))
                .with_node_id(BrokerId(-1))
                .with_host(s(""))
                .with_port(-1)
                .with_error_code(15),
        ])
    };
    response(ApiKey::FindCoordinator, version, &body)
}

fn describe_cluster(version: i16) -> Result<Vec<u8>> {
    let brokers = BROKERS
        .iter()
        .map(|&(id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(s(host))
                .with_port(port)
        })
        .collect();
    let body = DescribeClusterResponse::default()
        .with_cluster_id(s("cluster-a"))
        .with_controller_id(BrokerId(1))
        .with_brokers(brokers);
    response(ApiKey::DescribeCluster, version, &body)
}

fn produce(version: i16, endpoints: bool) -> Result<Vec<u8>> {
    let partition = produce_response::PartitionProduceResponse::default()
        .with_index(0)
        .with_error_code(6)
        .with_current_leader(
            produce_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(2))
                .with_leader_epoch(3),
        );
    let topic = produce_response::TopicProduceResponse::default()
        .with_name(TopicName(s("payments")))
        .with_partition_responses(vec![partition]);
    let mut body = ProduceResponse::default().with_responses(vec![topic]);
    if endpoints {
        body = body.with_node_endpoints(vec![
            produce_response::NodeEndpoint::default()
                .with_node_id(BrokerId(2))
                .with_host(s("broker-2.internal"))
                .with_port(9092),
        ]);
    }
    response(ApiKey::Produce, version, &body)
}

fn fetch(version: i16, endpoints: bool) -> Result<Vec<u8>> {
    let partition = fetch_response::PartitionData::default()
        .with_partition_index(0)
        .with_error_code(6)
        .with_records(Some(bytes::Bytes::from_static(b"\0\0\0\0\0\0\0\0")))
        .with_current_leader(
            fetch_response::LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(1))
                .with_leader_epoch(3),
        );
    let topic = fetch_response::FetchableTopicResponse::default()
        .with_topic(TopicName(s("payments")))
        .with_partitions(vec![partition]);
    let mut body = FetchResponse::default().with_responses(vec![topic]);
    if endpoints {
        body = body.with_node_endpoints(vec![
            fetch_response::NodeEndpoint::default()
                .with_node_id(BrokerId(1))
                .with_host(s("broker-1.internal"))
                .with_port(9092)
                .with_rack(Some(s("rack-a"))),
        ]);
    }
    response(ApiKey::Fetch, version, &body)
}

fn api_versions(version: i16, error_code: i16) -> Result<Vec<u8>> {
    let apis = [
        (0, 3, 13),
        (1, 4, 18),
        (3, 0, 13),
        (17, 0, 1),
        (18, 0, 4),
        (36, 0, 2),
        (60, 0, 2),
    ]
    .iter()
    .map(|&(key, min, max)| {
        ApiVersion::default()
            .with_api_key(key)
            .with_min_version(min)
            .with_max_version(max)
    })
    .collect();
    let body = ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(apis);
    // ApiVersions answers use header v0 at every version (KIP-511).
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(7)
        .encode(&mut out, 0)?;
    body.encode(&mut out, version)?;
    Ok(out.to_vec())
}

fn rewrites() -> Result {
    for v in [0, 1, 4, 9, 12, 13] {
        write(
            "rewrite_metadata",
            &format!("v{v}"),
            &with_selector(v as u8, &metadata(v)?),
        )?;
    }
    for v in [0, 1, 3, 4, 6] {
        let frame = find_coordinator(v)?;
        write(
            "rewrite_find_coordinator",
            &format!("v{v}"),
            &with_selector(v as u8, &frame),
        )?;
    }
    for v in [0, 1, 2] {
        let frame = describe_cluster(v)?;
        write(
            "rewrite_describe_cluster",
            &format!("v{v}"),
            &with_selector(v as u8, &frame),
        )?;
    }
    // rewrite_node_endpoints: byte 0 even = Produce (from v10), odd = Fetch (from v16).
    for (v, endpoints) in [(10, true), (12, false), (13, true)] {
        let mut input = vec![0];
        input.extend(with_selector((v - 10) as u8, &produce(v, endpoints)?));
        write(
            "rewrite_node_endpoints",
            &format!("produce-v{v}-{endpoints}"),
            &input,
        )?;
    }
    for (v, endpoints) in [(16, true), (17, false), (18, true)] {
        let mut input = vec![1];
        input.extend(with_selector((v - 16) as u8, &fetch(v, endpoints)?));
        write(
            "rewrite_node_endpoints",
            &format!("fetch-v{v}-{endpoints}"),
            &input,
        )?;
    }
    for v in [0, 1, 3, 4] {
        let frame = api_versions(v, 0)?;
        write(
            "rewrite_api_versions",
            &format!("v{v}"),
            &with_selector(v as u8, &frame),
        )?;
    }
    // KIP-511: a v0 body with UNSUPPORTED_VERSION (35) answering a v4 request.
    write(
        "rewrite_api_versions",
        "kip511",
        &with_selector(4, &api_versions(0, 35)?),
    )?;
    Ok(())
}

fn requests() -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for v in [3, 9, 11, 13] {
        let body = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000);
        out.push((format!("produce-v{v}"), request(ApiKey::Produce, v, &body)?));
    }
    out.push((
        "produce-acks0".into(),
        request(ApiKey::Produce, 9, &ProduceRequest::default().with_acks(0))?,
    ));
    for v in [0, 4, 9, 12] {
        out.push((
            format!("metadata-v{v}"),
            request(ApiKey::Metadata, v, &MetadataRequest::default())?,
        ));
    }
    let sasl_handshake = kafka_protocol::messages::SaslHandshakeRequest::default()
        .with_mechanism(s("SCRAM-SHA-512"));
    out.push((
        "sasl-handshake-v1".into(),
        request(ApiKey::SaslHandshake, 1, &sasl_handshake)?,
    ));
    let sasl_auth = kafka_protocol::messages::SaslAuthenticateRequest::default()
        .with_auth_bytes(bytes::Bytes::from_static(b"n,,n=user,r=abc"));
    out.push((
        "sasl-authenticate-v2".into(),
        request(ApiKey::SaslAuthenticate, 2, &sasl_auth)?,
    ));
    let api_versions = kafka_protocol::messages::ApiVersionsRequest::default()
        .with_client_software_name(s("seed"))
        .with_client_software_version(s("1.0"));
    out.push((
        "api-versions-v3".into(),
        request(ApiKey::ApiVersions, 3, &api_versions)?,
    ));
    // An api key kafka-protocol does not know: header v1 only.
    out.push((
        "unknown-api".into(),
        vec![0x7f, 0x00, 0, 1, 0, 0, 0, 9, 0, 2, b'i', b'd'],
    ));
    Ok(out)
}

fn frames_and_headers() -> Result {
    let requests = requests()?;
    let mut stream = Vec::new();
    for (name, frame) in &requests {
        write("request_header", name, frame)?;
        stream.put_i32(frame.len() as i32);
        stream.extend_from_slice(frame);
    }
    // frame_reader: byte 0 = bytes per read - 1, byte 1 = limit / 16 (255: the default limit).
    for (chunk, limit) in [(255u8, 255u8), (0, 255), (6, 255), (255, 4)] {
        let mut input = vec![chunk, limit];
        input.extend_from_slice(&stream);
        write("frame_reader", &format!("requests-{chunk}-{limit}"), &input)?;
    }
    let mut cut = vec![2, 255];
    cut.extend_from_slice(&stream[..stream.len() - 3]);
    write("frame_reader", "cut-mid-frame", &cut)?;
    write(
        "frame_reader",
        "negative-size",
        &[255, 255, 0xff, 0xff, 0xff, 0xfe, 1, 2],
    )?;
    write(
        "frame_reader",
        "empty-frames",
        &[0, 255, 0, 0, 0, 0, 0, 0, 0, 0],
    )?;
    Ok(())
}

/// sasl_scram: byte 0 bit 0 = SHA-512, bit 1 = direct ScramClient; messages split by \xff\xfe.
fn sasl() -> Result {
    let join = |mode: u8, parts: &[&[u8]]| {
        let mut out = vec![mode];
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\xff\xfe");
            }
            out.extend_from_slice(part);
        }
        out
    };
    let handshake_ok = response(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeResponse::default()
            .with_mechanisms(vec![s("SCRAM-SHA-256"), s("SCRAM-SHA-512")]),
    )?;
    let handshake_refused = response(
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeResponse::default()
            .with_error_code(33)
            .with_mechanisms(vec![s("PLAIN")]),
    )?;
    let auth = |bytes: &'static [u8], error: i16, lifetime: i64| {
        response(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateResponse::default()
                .with_error_code(error)
                .with_error_message((error != 0).then(|| s("Authentication failed")))
                .with_auth_bytes(bytes::Bytes::from_static(bytes))
                .with_session_lifetime_ms(lifetime),
        )
    };
    let first = auth(
        b"r=abcdefghijklmnopqrstuvwxyz012345SERVER,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        0,
        0,
    )?;
    let last = auth(
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        0,
        3_600_000,
    )?;
    let refused = auth(b"", 58, 0)?;
    write(
        "sasl_scram",
        "sign-in-256",
        &join(0, &[&handshake_ok, &first, &last]),
    )?;
    write(
        "sasl_scram",
        "sign-in-512-refused",
        &join(1, &[&handshake_ok, &refused]),
    )?;
    write(
        "sasl_scram",
        "handshake-refused",
        &join(0, &[&handshake_refused]),
    )?;
    // RFC 7677's exchange (user "user", password "pencil"), which verifies.
    let server_first: &[u8] =
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let server_final: &[u8] = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    write(
        "sasl_scram",
        "rfc7677",
        &join(2, &[server_first, server_final]),
    )?;
    write(
        "sasl_scram",
        "rfc7677-512-wrong",
        &join(3, &[server_first, server_final]),
    )?;
    write(
        "sasl_scram",
        "server-error",
        &join(2, &[b"e=invalid-proof"]),
    )?;
    Ok(())
}

fn certificates() -> Result {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa,
        KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams, SanType, SerialNumber,
    };
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Seed CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme, Inc.");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    write("cert_identity", "ca", ca.der())?;

    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["app.acme.internal".to_owned()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "acme-client");
    leaf.distinguished_name
        .push(DnType::OrganizationalUnitName, "payments");
    leaf.distinguished_name
        .push(DnType::OrganizationName, "Acme Inc");
    leaf.distinguished_name.push(DnType::CountryName, "US");
    leaf.distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 5]), "SN-0001");
    leaf.distinguished_name.push(
        DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        "a@acme.example",
    );
    leaf.subject_alt_names.push(SanType::URI(
        "spiffe://acme.internal/ns/pay/sa/app".try_into()?,
    ));
    leaf.subject_alt_names
        .push(SanType::Rfc822Name("app@acme.example".try_into()?));
    leaf.subject_alt_names
        .push(SanType::IpAddress("10.0.0.7".parse()?));
    leaf.subject_alt_names
        .push(SanType::IpAddress("2001:db8::7".parse()?));
    leaf.serial_number = Some(SerialNumber::from_slice(&[0x80, 0x01, 0x02]));
    leaf.key_identifier_method = KeyIdMethod::Sha256;
    let leaf = leaf.signed_by(&leaf_key, &issuer)?;
    write("cert_identity", "leaf-rich", leaf.der())?;

    let plain_key = KeyPair::generate()?;
    let mut plain = CertificateParams::new(Vec::new())?;
    plain
        .distinguished_name
        .push(DnType::CommonName, "plain, \"quoted\" +cn");
    let plain = plain.signed_by(&plain_key, &issuer)?;
    write("cert_identity", "leaf-plain", plain.der())?;

    let now = time::OffsetDateTime::now_utc();
    let revoked = RevokedCertParams {
        serial_number: SerialNumber::from_slice(&[0x80, 0x01, 0x02]),
        revocation_time: now,
        reason_code: Some(RevocationReason::KeyCompromise),
        invalidity_date: None,
    };
    for (name, revoked_certs) in [("crl-one", vec![revoked]), ("crl-empty", Vec::new())] {
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(30),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)?;
        write("crl", &format!("{name}.der"), crl.der())?;
        write("crl", &format!("{name}.pem"), crl.pem()?.as_bytes())?;
    }
    Ok(())
}

fn text_seeds() -> Result {
    // cel_filter: the filter, then NUL-separated attributes whose first byte picks the slot
    // (0..12 subject CN, OU, O, L, ST, C, DC, STREET, UID, SERIALNUMBER, emailAddress, OID;
    // 12..24 the same of the issuer; then SAN dns, uri, email, ip, serial, sha1, sha256, times).
    let attrs: &[u8] = b"\0\x00acme-client\0\x01payments\0\x02Acme Inc\0\x0cSeed CA\0\x18app.acme.internal\0\x19spiffe://acme.internal/ns/pay/sa/app\0\x1b10.0.0.7\0\x1c800102";
    let filters = [
        r#"CN == "acme-client" && OU == "payments""#,
        r#"O == "Acme Inc""#,
        r#"SAN.contains("spiffe://acme.internal/") || DN.startsWith("CN=acme")"#,
        r#"cert.subject.OU.exists(ou, ou in ["payments", "billing"]) && size(cert.san.dns) > 0"#,
        r#"CN.matches("^acme-[a-z]+$") && !(SERIAL == "01")"#,
        r#"cert.san.uri.all(u, u.startsWith("spiffe://")) && cert.issuer.CN[0] == "Seed CA""#,
    ];
    for (i, filter) in filters.iter().enumerate() {
        let mut input = filter.as_bytes().to_vec();
        input.extend_from_slice(attrs);
        write("cel_filter", &format!("filter-{i}"), &input)?;
    }
    write(
        "config_yaml",
        "proxy.yaml",
        &fs::read("../config/proxy.yaml")?,
    )?;
    let minimal = r#"listener: { bootstrap: "127.0.0.1:9092", advertised_host: localhost, broker_ports: { first_port: 9093, node_ports: { 1001: 9201 } } }
tls: { certificate_chain: certs/server.pem, private_key: certs/server.key, min_version: "1.3" }
upstream:
  bootstrap_servers: ["127.0.0.1:19092"]
  identity:
    mode: scram
    mechanism: SCRAM-SHA-512
    credentials:
      pool-a: { username: a, password_env: SEED_PASSWORD }
limits: { max_frame_bytes: 1048576, max_in_flight_requests: 10 }
audit: { path: "off" }
certificate_authorities:
  - id: ca-a
    display_name: A
    certificate_chain: certs/acme-internal-client-ca.pem
    crl_chain: certs/acme.crl
    require_crl_on_client_certificate: true
    authorization: { enabled: true }
    identity_pools:
      - id: pool-a
        display_name: A
        external_identifier: SAN
        filter: 'SAN.contains("spiffe://a/")'
        priority: 5
        acls:
          - { permission: allow, operations: [read, describe], resource_type: topic, pattern: "payments.", pattern_type: prefixed }
"#;
    write("config_yaml", "scram-acls.yaml", minimal.as_bytes())?;
    // iam_body: byte 0 bit 0 = CA body, bit 1 = update.
    let bodies: [(u8, &str, &str); 5] = [
        (
            0,
            "pool-create",
            r#"{"id":"pool-new","display_name":"New","external_identifier":"CN","filter":"CN == \"new\" && OU == \"payments\""}"#,
        ),
        (
            2,
            "pool-update",
            r#"{"filter":"O == \"Acme Inc\"","priority":3,"acls":[{"permission":"allow","operations":["read"],"resource_type":"topic","pattern":"a","pattern_type":"prefixed"}]}"#,
        ),
        (
            1,
            "ca-create",
            r#"{"display_name":"New CA","certificate_chain":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","certificate_chain_filename":"new.pem","crl_url":"http://crl.example/ca.crl"}"#,
        ),
        (
            3,
            "ca-update",
            r#"{"description":"changed","require_crl_on_client_certificate":true,"crl_chain":null}"#,
        ),
        (0, "not-an-object", r#"["pool"]"#),
    ];
    for (mode, name, body) in bodies {
        let mut input = vec![mode];
        input.extend_from_slice(body.as_bytes());
        write("iam_body", name, &input)?;
    }
    Ok(())
}

/// store_record: byte 0 bit 0 clear = records (key and value parts split at `\xff\xfe`, an
/// empty value a tombstone), set = byte 1 the fetch offset, then a Fetch partition's records.
fn store_records() -> Result {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Store Seed CA");
    let ca = params.self_signed(&key)?;
    let pem = ca.pem().replace('\n', "\\n");
    let ca_doc = format!(
        r#"{{"id":"seed-ca","display_name":"Seed CA","certificate_chain_pem":"{pem}","crl_url":"http://crl.example/seed.crl","authorization":{{"enabled":true}}}}"#
    );
    let pool = r#"{"id":"pool-a","display_name":"A","external_identifier":"CN","filter":"CN == \"a\" && OU == \"payments\"","priority":2,"acls":[{"permission":"allow","operations":["read"],"resource_type":"topic","pattern":"a.","pattern_type":"prefixed"}]}"#;
    let bad_pool =
        r#"{"id":"pool-b","display_name":"B","external_identifier":"CN","filter":"CN =="}"#;
    let records: [(&str, Option<&str>); 6] = [
        ("ca/seed-ca", Some(&ca_doc)),
        ("pool/seed-ca/pool-a", Some(pool)),
        ("pool/seed-ca/pool-b", Some(bad_pool)),
        ("pool/other-ca/pool-a", Some(pool)),
        ("pool/seed-ca/pool-a", None),
        ("ca/seed-ca", None),
    ];
    let mut parts = vec![0u8];
    for (i, (key, value)) in records.iter().enumerate() {
        if i > 0 {
            parts.extend_from_slice(b"\xff\xfe");
        }
        parts.extend_from_slice(key.as_bytes());
        parts.extend_from_slice(b"\xff\xfe");
        parts.extend_from_slice(value.unwrap_or_default().as_bytes());
    }
    write("store_record", "records", &parts)?;
    let batch: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 10 + i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: Some(bytes::Bytes::copy_from_slice(key.as_bytes())),
            value: value.map(|v| bytes::Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut fetched = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut fetched, &batch[..2], &options)?;
    RecordBatchEncoder::encode(&mut fetched, &batch[2..], &options)?;
    let whole = fetched.len();
    // From offset 11, and the start of one more batch cut off at max bytes.
    let mut input = vec![1u8, 11];
    input.extend_from_slice(&fetched);
    input.extend_from_slice(&fetched[..whole / 3]);
    write("store_record", "fetched", &input)?;
    Ok(())
}

/// sni_route: byte 0 bit 0 clear = a client's first bytes (a ClientHello), set = a server name.
fn sni_names() -> Result {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    );
    for (name, server_name) in [
        ("hello-broker", "B-7.kafka.FUZZ.test"),
        ("hello-bootstrap", "kafka.fuzz.test"),
        ("hello-other", "b-07.kafka.fuzz.test"),
    ] {
        let server_name = rustls::pki_types::ServerName::try_from(server_name)?.to_owned();
        let mut client = rustls::ClientConnection::new(config.clone(), server_name)?;
        let mut hello = vec![0u8];
        client.write_tls(&mut hello)?;
        write("sni_route", name, &hello)?;
    }
    for (name, text) in [
        ("name-broker", "b-2147483647.kafka.fuzz.test."),
        ("name-bootstrap", "KAFKA.fuzz.test"),
        ("name-pattern", "broker-{id}.kafka.example.com"),
    ] {
        let mut input = vec![1u8];
        input.extend_from_slice(text.as_bytes());
        write("sni_route", name, &input)?;
    }
    Ok(())
}

fn main() -> Result {
    rewrites()?;
    frames_and_headers()?;
    sasl()?;
    certificates()?;
    text_seeds()?;
    store_records()?;
    sni_names()?;
    check_request::write_all()?;
    proxy_header::write_all()?;
    Ok(())
}
