//! What an idle connection costs the proxy: heap bytes per admitted client connection held idle
//! (its upstream connection included), measured with jemalloc's own statistics.
//!
//! The proxy runs in-process on a runtime of its own whose threads allocate from a jemalloc
//! arena of their own (thread caches off, so a block freed anywhere goes straight back to the
//! arena that counts it); the clients and the fake broker run on another runtime, in the default
//! arenas. So the proxy arena's live bytes are the proxy's alone: (held − baseline) / N is what
//! one idle connection costs it, as the issue counts it (≤ 12 KiB incl. upstream, RSS; the heap
//! is most of that, allocator overhead the rest — the load bench's idle figure measures RSS).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::Arc;
use std::time::Duration;

use tikv_jemalloc_ctl::{Access, AsName};

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::fake_broker::{FakeBroker, NODE_ID};
use support::kafka_client::KafkaConn;
use support::proxy::{Pki, ServerTask};
use support::test_proxy::{free_port, good_round_trip, write_config};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Connections held idle for the measurement.
const HELD: usize = 200;
/// Opened and closed before the baseline: first-use allocations (caches, slab pages, the broker
/// book) are not per connection.
const WARM_UP: usize = 40;

/// Heap bytes one idle connection may cost the proxy, its upstream side included: 33,043 B were
/// measured before the session's future and its in-flight channel were slimmed, 20,319 B after,
/// 16,337 B once rustls gave its 4 KiB receive buffer back while idle (vendor/rustls), 12,511 B
/// (12,303 B in a release build) once the session's futures stored each value once and rustls
/// handed the client chain over and gave its handshake room back, 11,869 B with the in-flight
/// queue that holds no room while empty (`session::handoff`).
/// (The bound, 12 KiB of RSS per connection, is measured by the load bench with 10,000
/// held; README, Performance has the figures and the breakdown this test prints.)
const MAX_BYTES_PER_IDLE_CONNECTION: usize = 12 * 1024;

/// A jemalloc arena of its own for the threads that call [`use_arena`].
fn new_arena() -> u32 {
    b"arenas.create\0".name().read().unwrap()
}

/// This thread allocates from `arena`, without a thread cache (a freed block goes back to the
/// arena that counts it at once).
fn use_arena(arena: u32) {
    b"thread.arena\0".name().write(arena).unwrap();
    b"thread.tcache.enabled\0".name().write(false).unwrap();
}

/// Live heap bytes of `arena` (small and large allocations).
fn arena_allocated(arena: u32) -> usize {
    tikv_jemalloc_ctl::epoch::advance().unwrap();
    let read = |class: &str| -> usize {
        format!("stats.arenas.{arena}.{class}.allocated\0")
            .as_str()
            .name()
            .read()
            .unwrap()
    };
    read("small") + read("large")
}

/// Live allocations of `arena` by jemalloc size class: (class size, count), small and large.
fn size_classes(arena: u32) -> Vec<(usize, usize)> {
    tikv_jemalloc_ctl::epoch::advance().unwrap();
    let read = |name: String| -> usize { format!("{name}\0").as_str().name().read().unwrap() };
    let count = |name: &str| -> u32 { format!("{name}\0").as_str().name().read().unwrap() };
    let mut classes = Vec::new();
    for j in 0..count("arenas.nbins") {
        let live = read(format!("stats.arenas.{arena}.bins.{j}.curregs"));
        classes.push((read(format!("arenas.bin.{j}.size")), live));
    }
    for j in 0..count("arenas.nlextents") {
        let live = read(format!("stats.arenas.{arena}.lextents.{j}.curlextents"));
        classes.push((read(format!("arenas.lextent.{j}.size")), live));
    }
    classes
}

/// What the held connections added, by size class: allocations per connection and bytes per
/// connection, largest first (the breakdown README's Performance section lists).
fn breakdown(before: &[(usize, usize)], held: &[(usize, usize)], n: usize) -> String {
    let mut rows: Vec<(usize, f64)> = before
        .iter()
        .zip(held)
        .filter(|((_, b), (_, h))| h > b)
        .map(|((size, b), (_, h))| (*size, (h - b) as f64 / n as f64))
        .collect();
    rows.sort_by(|a, b| (b.0 as f64 * b.1).total_cmp(&(a.0 as f64 * a.1)));
    rows.iter()
        .map(|(size, per)| format!("  {size:>6} B × {per:.2} = {:.0} B\n", *size as f64 * per))
        .collect()
}

/// `n` connections through the proxy, each having done ApiVersions and Metadata (so its
/// upstream connection is open and every buffer has been used once).
async fn open_used(
    n: usize,
    addr: std::net::SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    broker_port: u16,
    fake: std::net::SocketAddr,
) -> Vec<KafkaConn> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut conn = KafkaConn::connect(addr, tls.clone()).await.unwrap();
        let id = i32::try_from(i * 2 + 1).unwrap();
        good_round_trip(&mut conn, id, broker_port, fake)
            .await
            .unwrap();
        held.push(conn);
    }
    held
}

/// Waits until the proxy arena's live bytes stop changing (the proxy finished its work on the
/// last connections: answers written, buffers given back).
async fn settled(arena: u32) -> usize {
    let mut last = arena_allocated(arena);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = arena_allocated(arena);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[test]
fn an_idle_connection_costs_the_proxy_at_most_12_kib_of_heap_upstream_included() {
    // The production logger at its default level: the session's span is recorded.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::sink)
        .try_init();
    let arena = new_arena();
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || use_arena(arena))
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| b"thread.tcache.enabled\0".name().write(false).unwrap())
        .build()
        .unwrap();
    b"thread.tcache.enabled\0".name().write(false).unwrap();

    let pki = Pki::generate("idle-memory");
    let fake = client_rt.block_on(FakeBroker::start());
    let broker_port = free_port();
    let first_port = broker_port - u16::try_from(NODE_ID).unwrap();
    let path = write_config(
        &pki,
        "127.0.0.1:0".parse().unwrap(),
        first_port,
        fake.addr,
        "info",
    );
    let server = proxy_rt
        .block_on(proxy_rt.spawn(async move { ServerTask::start(&path).await }))
        .unwrap();
    let tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);

    let (baseline, held, after) = client_rt.block_on(async {
        let warm = open_used(WARM_UP, server.addr, &tls, broker_port, fake.addr).await;
        drop(warm);
        let baseline = settled(arena).await;
        let classes_before = size_classes(arena);
        let conns = open_used(HELD, server.addr, &tls, broker_port, fake.addr).await;
        let held = settled(arena).await;
        eprintln!(
            "per idle connection, by jemalloc size class:\n{}",
            breakdown(&classes_before, &size_classes(arena), HELD)
        );
        drop(conns);
        let after = settled(arena).await;
        (baseline, held, after)
    });
    let per_connection = held.saturating_sub(baseline) / HELD;
    eprintln!(
        "proxy heap: {baseline} B before, {held} B with {HELD} idle connections, {after} B after \
         they closed: {per_connection} B per idle connection"
    );
    assert!(
        per_connection <= MAX_BYTES_PER_IDLE_CONNECTION,
        "an idle connection costs the proxy {per_connection} B of heap (at most \
         {MAX_BYTES_PER_IDLE_CONNECTION} B)"
    );
    proxy_rt.block_on(server.stop());
}

/// A reader with nothing to read yet: a non-blocking socket while the peer is silent.
struct Silent;

impl std::io::Read for Silent {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

/// Moves what `from` has to send into `to`, and lets `to` process it.
fn transfer<A, B>(from: &mut rustls::ConnectionCommon<A>, to: &mut rustls::ConnectionCommon<B>) {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut unread = &wire[..];
    // Only while there is something: an empty read would be the peer's EOF.
    while !unread.is_empty() {
        to.read_tls(&mut unread).unwrap();
        to.process_new_packets().unwrap();
    }
}

/// Bytes this thread holds on the heap (allocated − freed by it, as jemalloc counts).
fn thread_live_bytes() -> i128 {
    let allocated = tikv_jemalloc_ctl::thread::allocatedp::read().unwrap().get();
    let freed = tikv_jemalloc_ctl::thread::deallocatedp::read()
        .unwrap()
        .get();
    i128::from(allocated) - i128::from(freed)
}

/// rustls sizes its receive buffer to 4 KiB before each read and, released, kept it through
/// the read that found nothing: 4 KiB held by every idle TLS connection, client and upstream
/// side alike. The vendored rustls (vendor/rustls/PATCHED.md) gives it back.
#[test]
fn a_tls_read_that_finds_nothing_gives_the_receive_buffer_back() {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    let mut client =
        rustls::ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap())
            .unwrap();
    while client.is_handshaking() || server.is_handshaking() {
        transfer(&mut client, &mut server);
        transfer(&mut server, &mut client);
    }
    // A request, read and consumed: the buffer has been used, and holds nothing now.
    std::io::Write::write_all(&mut client.writer(), b"a request").unwrap();
    transfer(&mut client, &mut server);
    let mut request = [0u8; 9];
    std::io::Read::read_exact(&mut server.reader(), &mut request).unwrap();

    let before = thread_live_bytes();
    let read = server.read_tls(&mut Silent);
    let freed = before - thread_live_bytes();
    assert_eq!(read.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    assert!(
        freed >= 4096,
        "a read that found nothing freed {freed} B (rustls keeps its 4 KiB receive buffer)"
    );
    // The connection still works: the next request arrives as before.
    std::io::Write::write_all(&mut client.writer(), b"and again").unwrap();
    transfer(&mut client, &mut server);
    std::io::Read::read_exact(&mut server.reader(), &mut request).unwrap();
    assert_eq!(&request, b"and again");
}

/// After a client-authenticated handshake, rustls held the client's chain (which the proxy's
/// live registry keeps too) and the room for 16 handshake message spans (640 B) for the
/// connection's life. The vendored rustls (vendor/rustls/PATCHED.md) hands the chain over
/// (`take_peer_certificates`) and gives the spans' room back once no handshake message is
/// pending.
#[test]
fn after_the_handshake_rustls_holds_no_client_chain_and_no_handshake_room() {
    use rustls::pki_types::pem::PemObject;
    let pki = Pki::generate("idle-handshake");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let pem = |name: &str| -> Vec<rustls::pki_types::CertificateDer<'static>> {
        rustls::pki_types::CertificateDer::pem_file_iter(pki.path(name))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem("acme-internal-client-ca.pem") {
        roots.add(ca).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem("server.pem"), key)
        .unwrap();
    let client_config = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    let mut client =
        rustls::ClientConnection::new(client_config, "localhost".try_into().unwrap()).unwrap();
    while client.is_handshaking() || server.is_handshaking() {
        transfer(&mut client, &mut server);
        transfer(&mut server, &mut client);
    }

    let presented = pem("acme-client.pem");
    let taken = server.take_peer_certificates().unwrap();
    assert_eq!(
        taken, presented,
        "the chain the client presented, leaf first"
    );
    assert!(server.peer_certificates().is_none(), "taken, not copied");
    drop(taken);

    // Idle: the peer is silent (the receive buffer goes back too, see the test above).
    assert!(server.read_tls(&mut Silent).is_err());
    // What the idle server connection still holds on the heap, given back when it is dropped:
    // its record keys and small buffers, no handshake room (held: 640 B more).
    let before = thread_live_bytes();
    drop(server);
    let held = before - thread_live_bytes();
    eprintln!("an idle server connection held {held} B of heap");
    assert!(
        held <= 2000,
        "an idle server connection holds {held} B of heap (2,352 B before the\n        spans were given back, 1,712 B after)"
    );
}
