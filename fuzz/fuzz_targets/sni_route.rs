//! The server name of an SNI-routed connection: the ClientHello read from the client's bytes
//! (`tls::sni::read_client_hello`, before any TLS is answered), and the name routed
//! (`SniConfig::route`) to the bootstrap, a broker's node id or a refusal.
//!
//! Input layout: bit 0 of byte 0 picks the half.
//! - Clear: the rest is the client's byte stream (a ClientHello in TLS records); the server
//!   name read, if any, is routed.
//! - Set: the rest (lossy UTF-8) is the server name routed, and also tried as a
//!   `broker_pattern` (`BrokerNamePattern::parse`).
//!
//! What must hold: no panic; a name routes to a broker only if it is the pattern with that node
//! id (case aside, a trailing dot aside), and the pattern's name of that id routes back to it;
//! case never changes a route.

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use kafka_mtls_proxy::config::{BrokerNamePattern, SniConfig, SniRoute};
use kafka_mtls_proxy::tls::sni::read_client_hello;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

static SNI: LazyLock<SniConfig> = LazyLock::new(|| SniConfig {
    bootstrap: "kafka.fuzz.test".to_owned(),
    broker_pattern: BrokerNamePattern::parse("b-{id}.Kafka.fuzz.test")
        .unwrap_or_else(|e| panic!("the fuzz pattern: {e}")),
    advertised_port: 9092,
});

/// The client's bytes, then the end of the stream; whatever the proxy writes is dropped.
struct Client<'a>(&'a [u8]);

impl AsyncRead for Client<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.0.len().min(buf.remaining());
        let (now, later) = self.0.split_at(n);
        buf.put_slice(now);
        self.0 = later;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Client<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn check_route(name: &str) {
    let sni = &*SNI;
    let route = sni.route(Some(name));
    assert_eq!(
        route,
        sni.route(Some(&name.to_ascii_uppercase())),
        "{name:?}"
    );
    assert_eq!(
        route,
        sni.route(Some(&name.to_ascii_lowercase())),
        "{name:?}"
    );
    let bare = name.strip_suffix('.').unwrap_or(name);
    match route {
        SniRoute::Bootstrap => assert!(bare.eq_ignore_ascii_case(&sni.bootstrap), "{name:?}"),
        SniRoute::Broker(id) => {
            assert!(id >= 0, "{name:?} routes to node {id}");
            let expected = sni.broker_pattern.name_for(id);
            assert!(
                bare.eq_ignore_ascii_case(&expected),
                "{name:?} is not {expected:?}"
            );
        }
        SniRoute::Unrecognized => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    if mode & 1 == 1 {
        let text = String::from_utf8_lossy(rest);
        check_route(&text);
        if let Ok(pattern) = BrokerNamePattern::parse(&text) {
            for id in [0, 7, i32::MAX] {
                let name = pattern.name_for(id);
                assert_eq!(pattern.node_id(&name), Some(id), "{pattern} and {name:?}");
            }
        }
        return;
    }
    let budget = Duration::from_secs(10);
    let hello = kafka_mtls_proxy_fuzz::block_on(async {
        let deadline = tokio::time::Instant::now() + budget;
        read_client_hello(Client(rest), deadline, budget).await
    });
    if let Ok(hello) = hello {
        match hello.server_name.as_deref() {
            Some(name) => {
                assert_eq!(
                    name,
                    name.to_ascii_lowercase(),
                    "the name read is not lower case"
                );
                check_route(name);
            }
            None => assert_eq!(SNI.route(None), SniRoute::Bootstrap),
        }
    }
});
