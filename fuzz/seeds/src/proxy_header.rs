//! Seeds for `proxy_header`: PROXY protocol headers as a load balancer sends them, built from
//! haproxy's proxy-protocol.txt, each followed by the start of the client's TLS stream (which
//! the proxy must leave unread).
//!
//! The input is the connection's first bytes as they are (`fuzz_targets/proxy_header.rs`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Result;

/// The v2 signature (section 2.2).
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2 in the high nibble; command LOCAL (0) or PROXY (1) in the low one.
const V2_LOCAL: u8 = 0x20;
const V2_PROXY: u8 = 0x21;
/// Address family in the high nibble (UNSPEC 0, INET 1, INET6 2, UNIX 3), transport in the
/// low one (UNSPEC 0, STREAM 1, DGRAM 2).
const UNSPEC: u8 = 0x00;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;
const UNIX_STREAM: u8 = 0x31;
/// TLV types (section 2.2.1–2.2.8), and AWS's VPC endpoint id (a custom type).
const PP2_TYPE_ALPN: u8 = 0x01;
const PP2_TYPE_AUTHORITY: u8 = 0x02;
const PP2_TYPE_CRC32C: u8 = 0x03;
const PP2_TYPE_NOOP: u8 = 0x04;
const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
const PP2_TYPE_AWS: u8 = 0xEA;
const PP2_SUBTYPE_AWS_VPCE_ID: u8 = 0x01;
/// `PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN`: TLS, with a client certificate on this connection.
const PP2_CLIENT_SSL_CERT_CONN: u8 = 0x03;

/// The first bytes of a TLS 1.3 ClientHello (record header, handshake header, legacy version,
/// random), cut where a first read may end: what follows a header in the same segment.
const CLIENT_HELLO_START: [u8; 43] = [
    0x16, 0x03, 0x01, 0x00, 0xf8, // handshake record, 248 bytes
    0x01, 0x00, 0x00, 0xf4, // ClientHello, 244 bytes
    0x03, 0x03, // legacy_version TLS 1.2
    0x5e, 0x4f, 0x3a, 0x21, 0x9c, 0x07, 0x11, 0xd2, 0x6b, 0x80, 0x3f, 0x45, 0xa1, 0x2c, 0x9e, 0x77,
    0x01, 0xb8, 0x64, 0x3d, 0x52, 0xf0, 0x19, 0x8a, 0xc6, 0x2e, 0x93, 0x4b, 0x05, 0xd7, 0x68, 0x10,
];

/// What the proxy's `parse_header` is meant to make of a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The load balancer's own connection (v1 UNKNOWN, v2 LOCAL or UNSPEC).
    Local,
    /// A well-formed v2 PROXY header for AF_UNIX sockets, which the proxy refuses (no IP).
    UnixRefused,
}

// What the seed is for, besides its name and bytes, is read only by the tests.
#[cfg_attr(not(test), allow(dead_code))]
pub struct Seed {
    pub name: &'static str,
    pub version: u8,
    pub expect: Expect,
    /// The header's length: the TLS bytes start here.
    pub header_len: usize,
    pub bytes: Vec<u8>,
}

fn tlv(kind: u8, value: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![kind];
    out.extend(u16::try_from(value.len())?.to_be_bytes());
    out.extend_from_slice(value);
    Ok(out)
}

/// CRC-32C (Castagnoli, reflected), as PP2_TYPE_CRC32C carries it.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[Vec<u8>]) -> Result<Vec<u8>> {
    let payload: Vec<u8> = addresses
        .iter()
        .copied()
        .chain(tlvs.iter().flatten().copied())
        .collect();
    let mut out = V2_SIGNATURE.to_vec();
    out.push(command);
    out.push(family);
    out.extend(u16::try_from(payload.len())?.to_be_bytes());
    out.extend(payload);
    Ok(out)
}

/// A v2 header whose last TLV is a CRC32C of the whole header (computed with the field zero).
fn v2_with_crc(command: u8, family: u8, addresses: &[u8], tlvs: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut all = tlvs.to_vec();
    all.push(tlv(PP2_TYPE_CRC32C, &[0; 4])?);
    let mut header = v2(command, family, addresses, &all)?;
    let crc = crc32c(&header).to_be_bytes();
    let at = header.len() - 4;
    header[at..].copy_from_slice(&crc);
    Ok(header)
}

fn inet4(source: (Ipv4Addr, u16), destination: (Ipv4Addr, u16)) -> Vec<u8> {
    let mut out = source.0.octets().to_vec();
    out.extend(destination.0.octets());
    out.extend(source.1.to_be_bytes());
    out.extend(destination.1.to_be_bytes());
    out
}

fn inet6(source: (Ipv6Addr, u16), destination: (Ipv6Addr, u16)) -> Vec<u8> {
    let mut out = source.0.octets().to_vec();
    out.extend(destination.0.octets());
    out.extend(source.1.to_be_bytes());
    out.extend(destination.1.to_be_bytes());
    out
}

/// Two 108-byte NUL-padded socket paths.
fn unix(source: &str, destination: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(216);
    for path in [source, destination] {
        let mut field = [0u8; 108];
        field[..path.len()].copy_from_slice(path.as_bytes());
        out.extend(field);
    }
    out
}

/// An SSL TLV as haproxy sends it: client flags, verify result (0: verified), sub-TLVs.
fn ssl(cn: &str) -> Result<Vec<u8>> {
    let mut value = vec![PP2_CLIENT_SSL_CERT_CONN];
    value.extend(0u32.to_be_bytes());
    value.extend(tlv(PP2_SUBTYPE_SSL_VERSION, b"TLSv1.3")?);
    value.extend(tlv(PP2_SUBTYPE_SSL_CN, cn.as_bytes())?);
    value.extend(tlv(PP2_SUBTYPE_SSL_CIPHER, b"TLS_AES_256_GCM_SHA384")?);
    tlv(PP2_TYPE_SSL, &value)
}

pub fn seeds() -> Result<Vec<Seed>> {
    let client4 = (Ipv4Addr::new(192, 0, 2, 10), 56_324);
    let lb4 = (Ipv4Addr::new(198, 51, 100, 5), 9092);
    let client6 = (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10), 56_324);
    let lb6 = (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9093);
    let proxied4 = Expect::Proxied {
        source: client4.into(),
        destination: lb4.into(),
    };
    let proxied6 = Expect::Proxied {
        source: client6.into(),
        destination: lb6.into(),
    };
    let mut aws_vpce_id = vec![PP2_SUBTYPE_AWS_VPCE_ID];
    aws_vpce_id.extend_from_slice(b"vpce-0123456789abcdef0");
    let max6 = Ipv6Addr::new(
        0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
    );
    let headers: Vec<(&'static str, u8, Expect, Vec<u8>)> = vec![
        (
            "v1-tcp4",
            1,
            proxied4,
            b"PROXY TCP4 192.0.2.10 198.51.100.5 56324 9092\r\n".to_vec(),
        ),
        (
            "v1-tcp6",
            1,
            proxied6,
            b"PROXY TCP6 2001:db8::10 2001:db8::1 56324 9093\r\n".to_vec(),
        ),
        (
            "v1-unknown",
            1,
            Expect::Local,
            b"PROXY UNKNOWN\r\n".to_vec(),
        ),
        // The specification's longest line (107 bytes): the receiver ignores what follows
        // UNKNOWN.
        (
            "v1-unknown-longest",
            1,
            Expect::Local,
            format!("PROXY UNKNOWN {max6} {max6} 65535 65535\r\n").into_bytes(),
        ),
        (
            "v2-proxy-tcp4",
            2,
            proxied4,
            v2(V2_PROXY, TCP4, &inet4(client4, lb4), &[])?,
        ),
        // haproxy `send-proxy-v2-ssl-cn` with `proxy-v2-options authority,unique-id,crc32c`.
        (
            "v2-proxy-tcp4-tlvs",
            2,
            proxied4,
            v2_with_crc(
                V2_PROXY,
                TCP4,
                &inet4(client4, lb4),
                &[
                    tlv(PP2_TYPE_ALPN, b"\x08http/1.1")?,
                    tlv(PP2_TYPE_AUTHORITY, b"b-1.kafka.example.com")?,
                    tlv(
                        PP2_TYPE_UNIQUE_ID,
                        b"C0A8000A:DC04_C6336405:2384_6571F3A0_0001",
                    )?,
                    ssl("acme-client")?,
                ],
            )?,
        ),
        (
            "v2-proxy-tcp6",
            2,
            proxied6,
            v2(V2_PROXY, TCP6, &inet6(client6, lb6), &[])?,
        ),
        // AWS NLB: the VPC endpoint id TLV, and padding (NOOP).
        (
            "v2-proxy-tcp6-aws",
            2,
            proxied6,
            v2(
                V2_PROXY,
                TCP6,
                &inet6(client6, lb6),
                &[
                    tlv(PP2_TYPE_AWS, &aws_vpce_id)?,
                    tlv(PP2_TYPE_NOOP, &[0; 5])?,
                ],
            )?,
        ),
        // A health check: LOCAL with no addresses, and LOCAL carrying addresses (ignored).
        (
            "v2-local",
            2,
            Expect::Local,
            v2(V2_LOCAL, UNSPEC, &[], &[])?,
        ),
        (
            "v2-local-tcp4",
            2,
            Expect::Local,
            v2(V2_LOCAL, TCP4, &inet4(client4, lb4), &[])?,
        ),
        // PROXY with an unspecified family: the receiver uses the socket's addresses.
        (
            "v2-proxy-unspec",
            2,
            Expect::Local,
            v2(V2_PROXY, UNSPEC, &[], &[tlv(PP2_TYPE_NOOP, &[])?])?,
        ),
        (
            "v2-proxy-unix-tlv",
            2,
            Expect::UnixRefused,
            v2(
                V2_PROXY,
                UNIX_STREAM,
                &unix("/run/client.sock", "/run/kafka-mtls-proxy.sock"),
                &[tlv(PP2_TYPE_AUTHORITY, b"kafka.example.com")?],
            )?,
        ),
    ];
    Ok(headers
        .into_iter()
        .map(|(name, version, expect, header)| {
            let header_len = header.len();
            let mut bytes = header;
            bytes.extend_from_slice(&CLIENT_HELLO_START);
            Seed {
                name,
                version,
                expect,
                header_len,
                bytes,
            }
        })
        .collect())
}

pub fn write_all() -> Result {
    for seed in seeds()? {
        crate::write("proxy_header", seed.name, &seed.bytes)?;
    }
    Ok(())
}
