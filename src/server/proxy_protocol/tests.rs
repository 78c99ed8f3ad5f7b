use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A v2 header: `command` 0x20 LOCAL / 0x21 PROXY, `family` 0x11 TCP4 / 0x21 TCP6 / 0x00.
fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(command);
    out.push(family);
    out.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn tcp4_payload(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p
}

/// The start of a TLS ClientHello record.
const CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0];

#[test]
fn v1_tcp4() {
    let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 9092\r\n";
    let (header, len) = parse_header(line).unwrap();
    assert_eq!(len, line.len());
    assert_eq!(
        header,
        ProxyHeader::Proxied {
            version: HeaderVersion::V1,
            source: addr("192.0.2.7:51234"),
            destination: addr("10.0.0.1:9092"),
        }
    );
}

#[test]
fn v1_tcp6() {
    let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 443 9092\r\n";
    let (header, _) = parse_header(line).unwrap();
    assert_eq!(
        header,
        ProxyHeader::Proxied {
            version: HeaderVersion::V1,
            source: addr("[2001:db8::7]:443"),
            destination: addr("[2001:db8::1]:9092"),
        }
    );
}

#[test]
fn v1_unknown_keeps_the_socket_address() {
    let line = b"PROXY UNKNOWN\r\n";
    assert_eq!(
        parse_header(line).unwrap(),
        (
            ProxyHeader::Local {
                version: HeaderVersion::V1
            },
            line.len()
        )
    );
}

#[test]
fn v2_proxy_tcp4_with_tlvs_ignored() {
    let mut payload = tcp4_payload([198, 51, 100, 9], [10, 0, 0, 1], 40000, 9092);
    // PP2_TYPE_ALPN "kafka", then a NOOP of 3 bytes: ignored.
    payload.extend_from_slice(&[0x01, 0x00, 0x05]);
    payload.extend_from_slice(b"kafka");
    payload.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
    let bytes = v2(0x21, 0x11, &payload);
    let (header, len) = parse_header(&bytes).unwrap();
    assert_eq!(len, bytes.len());
    assert_eq!(
        header,
        ProxyHeader::Proxied {
            version: HeaderVersion::V2,
            source: addr("198.51.100.9:40000"),
            destination: addr("10.0.0.1:9092"),
        }
    );
}

#[test]
fn v2_proxy_tcp6() {
    let mut payload = Vec::new();
    payload.extend_from_slice(
        &"2001:db8::9"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    payload.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    payload.extend_from_slice(&5555u16.to_be_bytes());
    payload.extend_from_slice(&9092u16.to_be_bytes());
    let (header, _) = parse_header(&v2(0x21, 0x21, &payload)).unwrap();
    assert_eq!(
        header,
        ProxyHeader::Proxied {
            version: HeaderVersion::V2,
            source: addr("[2001:db8::9]:5555"),
            destination: addr("[2001:db8::1]:9092"),
        }
    );
}

#[test]
fn v2_local_keeps_the_socket_address() {
    // LOCAL with addresses (some balancers send them): still the balancer's own connection.
    let bytes = v2(0x20, 0x11, &tcp4_payload([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    assert_eq!(
        parse_header(&bytes).unwrap().0,
        ProxyHeader::Local {
            version: HeaderVersion::V2
        }
    );
    let bytes = v2(0x20, 0x00, &[]);
    assert_eq!(parse_header(&bytes).unwrap().1, V2_FIXED_BYTES);
}

#[test]
fn the_bytes_after_a_header_are_not_taken() {
    let mut bytes = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 9092\r\n".to_vec();
    let header_len = bytes.len();
    bytes.extend_from_slice(CLIENT_HELLO);
    assert_eq!(parse_header(&bytes).unwrap().1, header_len);
    let mut bytes = v2(0x21, 0x11, &tcp4_payload([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    let header_len = bytes.len();
    bytes.extend_from_slice(CLIENT_HELLO);
    assert_eq!(parse_header(&bytes).unwrap().1, header_len);
}

#[test]
fn truncated_headers() {
    let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 9092\r\n";
    for cut in 1..line.len() {
        assert!(
            matches!(
                parse_header(&line[..cut]),
                Err(ProxyHeaderError::Truncated | ProxyHeaderError::Malformed { .. })
            ),
            "cut at {cut}"
        );
    }
    let bytes = v2(0x21, 0x11, &tcp4_payload([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    for cut in 1..bytes.len() {
        assert!(
            matches!(
                parse_header(&bytes[..cut]),
                Err(ProxyHeaderError::Truncated)
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn oversized_headers() {
    let mut line = b"PROXY TCP4 ".to_vec();
    line.resize(200, b'1');
    assert!(matches!(
        parse_header(&line),
        Err(ProxyHeaderError::V1TooLong)
    ));
    let payload = vec![0u8; V2_MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(
        parse_header(&v2(0x21, 0x11, &payload)),
        Err(ProxyHeaderError::V2TooLong(n)) if n == V2_MAX_PAYLOAD_BYTES + 1
    ));
    // At the cap: accepted (addresses, then TLV padding).
    let mut payload = tcp4_payload([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    payload.extend_from_slice(&[0x04, 0x03, 0xf1]);
    payload.resize(V2_MAX_PAYLOAD_BYTES, 0);
    assert!(parse_header(&v2(0x21, 0x11, &payload)).is_ok());
}

#[test]
fn garbage() {
    assert!(matches!(
        parse_header(CLIENT_HELLO),
        Err(ProxyHeaderError::NoSignature)
    ));
    assert!(matches!(
        parse_header(b""),
        Err(ProxyHeaderError::NoSignature)
    ));
    for bad in [
        &b"PROXY TCP4 999.0.0.1 10.0.0.1 1 2\r\n"[..],
        b"PROXY TCP5 1.2.3.4 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 10.0.0.1 1 99999\r\n",
        b"PROXY TCP4 1.2.3.4\r\n",
    ] {
        assert!(
            matches!(
                parse_header(bad),
                Err(ProxyHeaderError::Malformed { version: 1, .. })
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // v2: version 1 in the version nibble, command 0x2, family 0x4, too short for TCP4.
    for (command, family, payload) in [
        (0x11, 0x11, tcp4_payload([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)),
        (0x22, 0x11, tcp4_payload([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)),
        (0x21, 0x41, vec![]),
        (0x21, 0x11, vec![1, 2, 3]),
    ] {
        assert!(
            matches!(
                parse_header(&v2(command, family, &payload)),
                Err(ProxyHeaderError::Malformed { version: 2, .. })
            ),
            "{command:#x} {family:#x}"
        );
    }
    // UNIX sockets carry no IP address.
    assert!(matches!(
        parse_header(&v2(0x21, 0x31, &[0u8; 216])),
        Err(ProxyHeaderError::UnixAddresses)
    ));
}

#[test]
fn signatures_are_recognized_from_their_first_byte() {
    assert_eq!(signature(b"P"), Some(HeaderVersion::V1));
    assert_eq!(signature(b"PROXY TCP4"), Some(HeaderVersion::V1));
    assert_eq!(signature(b"\r\n"), Some(HeaderVersion::V2));
    assert_eq!(signature(&V2_SIGNATURE), Some(HeaderVersion::V2));
    assert_eq!(signature(b"PRX"), None);
    assert_eq!(signature(CLIENT_HELLO), None);
    assert_eq!(signature(b""), None);
}

/// `read_header` leaves the ClientHello behind, however the bytes are split.
#[tokio::test]
async fn read_header_consumes_exactly_the_header() {
    let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 9092\r\n".to_vec();
    let v2 = v2(
        0x21,
        0x11,
        &tcp4_payload([192, 0, 2, 7], [10, 0, 0, 1], 51234, 9092),
    );
    for header in [v1, v2] {
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let (mut client, mut server) = tokio::io::duplex(8192);
            let mut wire = header.clone();
            wire.extend_from_slice(CLIENT_HELLO);
            let writer = tokio::spawn(async move {
                for part in wire.chunks(chunk) {
                    client.write_all(part).await.unwrap();
                }
                client
            });
            let parsed = read_header(&mut server).await.unwrap();
            assert!(
                matches!(parsed, ProxyHeader::Proxied { source, .. } if source == addr("192.0.2.7:51234"))
            );
            let _client = writer.await.unwrap();
            let mut rest = vec![0u8; CLIENT_HELLO.len()];
            server.read_exact(&mut rest).await.unwrap();
            assert_eq!(rest, CLIENT_HELLO, "chunk {chunk}");
        }
    }
}

#[tokio::test]
async fn read_header_refuses_before_buffering_too_much() {
    // A v2 header announcing 65,535 bytes is refused after its 16-byte prefix.
    let mut wire = V2_SIGNATURE.to_vec();
    wire.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    let mut reader = &wire[..];
    assert!(matches!(
        read_header(&mut reader).await,
        Err(ProxyHeaderError::V2TooLong(65535))
    ));
    // A v1 line with no end: refused at 107 bytes, not one more read.
    let mut wire = b"PROXY TCP4 ".to_vec();
    wire.resize(500, b'1');
    let mut reader = &wire[..];
    assert!(matches!(
        read_header(&mut reader).await,
        Err(ProxyHeaderError::V1TooLong)
    ));
    assert_eq!(reader.len(), 500 - V1_MAX_BYTES);
    // A bare `\n` inside the line.
    let mut reader = &b"PROXY TCP4 1.2.3.4\n10.0.0.1 1 2\r\n"[..];
    assert!(matches!(
        read_header(&mut reader).await,
        Err(ProxyHeaderError::Malformed { .. })
    ));
    // Closed mid-header.
    let mut reader = &b"PROXY TCP4 1.2.3.4 10.0.0.1"[..];
    assert!(matches!(
        read_header(&mut reader).await,
        Err(ProxyHeaderError::Truncated)
    ));
}

/// An in-memory stream with a known start, for the policy.
struct Fake {
    start: Start,
    bytes: &'static [u8],
}

impl PeekStart for Fake {
    async fn peek_start(&mut self) -> std::io::Result<Start> {
        Ok(self.start)
    }
}

impl AsyncRead for Fake {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.bytes).poll_read(cx, buf)
    }
}

fn config(required: bool, allow_direct: bool) -> ProxyProtocolConfig {
    ProxyProtocolConfig {
        trusted_sources: vec!["10.0.0.0/8".parse().unwrap()],
        required,
        allow_direct,
    }
}

const LB: &str = "10.1.1.1:30000";
const STRANGER: &str = "203.0.113.5:40000";
const LINE: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 9092\r\n";

async fn run(
    config: &ProxyProtocolConfig,
    peer: &str,
    start: Start,
    bytes: &'static [u8],
) -> Result<Option<Origin>, ProxyRefusal> {
    let mut fake = Fake { start, bytes };
    resolve(config, &mut fake, addr(peer), Duration::from_secs(5)).await
}

#[tokio::test]
async fn a_trusted_header_names_the_client() {
    let origin = run(&config(true, true), LB, Start::Header, LINE).await;
    assert_eq!(
        origin.unwrap(),
        Some(Origin {
            client: addr("192.0.2.7:51234"),
            via: Some(addr(LB)),
        })
    );
    let local = Box::leak(v2(0x20, 0x00, &[]).into_boxed_slice());
    let origin = run(&config(true, true), LB, Start::Header, local).await;
    assert_eq!(
        origin.unwrap(),
        Some(Origin {
            client: addr(LB),
            via: None
        })
    );
}

#[tokio::test]
async fn an_untrusted_header_is_refused_whatever_the_settings() {
    for (required, allow_direct) in [(true, true), (false, true), (true, false)] {
        let refused = run(
            &config(required, allow_direct),
            STRANGER,
            Start::Header,
            LINE,
        )
        .await;
        assert!(matches!(refused, Err(ProxyRefusal::UntrustedHeader)));
    }
}

#[tokio::test]
async fn no_header() {
    let direct = Some(Origin {
        client: addr(STRANGER),
        via: None,
    });
    assert_eq!(
        run(&config(true, true), STRANGER, Start::NoHeader, b"")
            .await
            .unwrap(),
        direct
    );
    assert!(matches!(
        run(&config(true, false), STRANGER, Start::NoHeader, b"").await,
        Err(ProxyRefusal::DirectRefused)
    ));
    assert!(matches!(
        run(&config(true, true), LB, Start::NoHeader, b"").await,
        Err(ProxyRefusal::MissingHeader)
    ));
    assert_eq!(
        run(&config(false, true), LB, Start::NoHeader, b"")
            .await
            .unwrap(),
        Some(Origin {
            client: addr(LB),
            via: None
        })
    );
    assert_eq!(
        run(&config(true, true), LB, Start::Closed, b"")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_bad_header_from_a_trusted_source_is_refused() {
    let refused = run(&config(true, true), LB, Start::Header, b"PROXY TCP4 x\r\n").await;
    assert!(
        matches!(refused, Err(ProxyRefusal::BadHeader(_))),
        "{refused:?}"
    );
}

/// A trusted source that starts a header and stalls is cut off at the handshake timeout.
#[tokio::test(start_paused = true)]
async fn a_stalled_header_times_out() {
    let (mut client, server) = tokio::io::duplex(1024);
    client.write_all(b"PROXY TCP4 192.0.2.7").await.unwrap();
    struct Stalled(tokio::io::DuplexStream);
    impl PeekStart for Stalled {
        async fn peek_start(&mut self) -> std::io::Result<Start> {
            Ok(Start::Header)
        }
    }
    impl AsyncRead for Stalled {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }
    let mut stalled = Stalled(server);
    let started = tokio::time::Instant::now();
    let refused = resolve(
        &config(true, true),
        &mut stalled,
        addr(LB),
        Duration::from_millis(2500),
    )
    .await;
    assert!(
        matches!(refused, Err(ProxyRefusal::Timeout(2500))),
        "{refused:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(2500));
    drop(client);
}

/// The real socket: `peek` decides without consuming, and the ClientHello stays behind.
#[tokio::test]
async fn over_tcp_the_client_hello_stays_in_the_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    let trusted = ProxyProtocolConfig {
        trusted_sources: vec!["127.0.0.1/32".parse().unwrap()],
        required: true,
        allow_direct: true,
    };
    let mut wire = LINE.to_vec();
    wire.extend_from_slice(CLIENT_HELLO);
    let mut client = tokio::net::TcpStream::connect(at).await.unwrap();
    // Header and ClientHello in one segment.
    client.write_all(&wire).await.unwrap();
    let (mut tcp, peer) = listener.accept().await.unwrap();
    let origin = resolve(&trusted, &mut tcp, peer, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(origin.client, addr("192.0.2.7:51234"));
    assert_eq!(origin.via, Some(peer));
    let mut rest = vec![0u8; CLIENT_HELLO.len()];
    tcp.read_exact(&mut rest).await.unwrap();
    assert_eq!(rest, CLIENT_HELLO);

    // Without a header, nothing is consumed either (a direct client from an untrusted range).
    let untrusted = ProxyProtocolConfig {
        trusted_sources: vec!["10.0.0.0/8".parse().unwrap()],
        required: true,
        allow_direct: true,
    };
    let mut client = tokio::net::TcpStream::connect(at).await.unwrap();
    client.write_all(CLIENT_HELLO).await.unwrap();
    let (mut tcp, peer) = listener.accept().await.unwrap();
    let origin = resolve(&untrusted, &mut tcp, peer, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        origin,
        Some(Origin {
            client: peer,
            via: None
        })
    );
    tcp.read_exact(&mut rest).await.unwrap();
    assert_eq!(rest, CLIENT_HELLO);
}

/// The fuzz target's property without cargo-fuzz: seeded mutations of valid headers through
/// both the parser and the exact reader, which must agree (header and bytes taken) and never
/// panic.
#[test]
fn mutated_headers_parse_and_read_alike() {
    let mut seeds: Vec<Vec<u8>> = vec![
        LINE.to_vec(),
        b"PROXY TCP6 2001:db8::7 2001:db8::1 443 9092\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2(0x21, 0x11, &tcp4_payload([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)),
        v2(0x20, 0x00, &[]),
    ];
    for s in &mut seeds {
        s.extend_from_slice(CLIENT_HELLO);
    }
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let waker = std::task::Waker::noop();
    for i in 0..100_000u32 {
        let mut data = seeds[i as usize % seeds.len()].clone();
        for _ in 0..=(next() % 4) {
            let at = (next() as usize) % data.len();
            match next() % 3 {
                0 => data[at] = next() as u8,
                1 => data.truncate(at),
                _ => data.insert(at, next() as u8),
            }
            if data.is_empty() {
                data.push(b'P');
            }
        }
        let parsed = parse_header(&data);
        let mut rest = &data[..];
        let read = {
            let mut future = std::pin::pin!(read_header(&mut rest));
            match future
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
            {
                std::task::Poll::Ready(read) => read,
                std::task::Poll::Pending => panic!("read_header waited on a slice"),
            }
        };
        if let Ok(header) = read {
            let (expected, len) = parsed.unwrap_or_else(|e| panic!("{data:?}: {e}"));
            assert_eq!(header, expected, "{data:?}");
            assert_eq!(data.len() - rest.len(), len, "{data:?}");
        }
    }
}
