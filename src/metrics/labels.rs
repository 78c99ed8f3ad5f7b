//! The label sets of the metrics, and the typed inputs that fill them: a caller cannot invent
//! a label value.

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;

use crate::upstream::Target;

/// Which way bytes went through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests: from the client, forwarded to the broker.
    ClientToUpstream,
    /// Responses: from the broker (or the proxy itself), delivered to the client.
    UpstreamToClient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToUpstream => "client_to_upstream",
            Direction::UpstreamToClient => "upstream_to_client",
        }
    }
}

/// Why a connection was refused before its TLS handshake by the PROXY protocol policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolRefusal {
    /// A source outside `trusted_sources` sent a PROXY header.
    UntrustedHeader,
    /// A trusted source sent no header, and one is required.
    MissingHeader,
    /// A source outside `trusted_sources` connected directly, and `allow_direct` is off.
    DirectRefused,
    /// A trusted source sent a malformed or oversized header.
    BadHeader,
    /// No complete header within the handshake timeout.
    Timeout,
}

impl ProxyProtocolRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyProtocolRefusal::UntrustedHeader => "untrusted_header",
            ProxyProtocolRefusal::MissingHeader => "missing_header",
            ProxyProtocolRefusal::DirectRefused => "direct_refused",
            ProxyProtocolRefusal::BadHeader => "bad_header",
            ProxyProtocolRefusal::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabels {
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ListenerLabels {
    pub(super) listener: String,
}

/// Why a client connection was closed before its TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// `limits.max_connections` connections were open already (closed at accept).
    MaxConnections,
    /// The listener's broker is known down (`upstream.health`): reset as a down broker would.
    UpstreamDown,
    /// SNI routing: the server name's node id is not known and the cluster could not be asked
    /// (unreachable, or the proxy's own login refused): reset as a down broker would.
    BrokerLookupFailed,
}

impl ConnectionRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionRefusal::MaxConnections => "max_connections",
            ConnectionRefusal::UpstreamDown => "upstream_down",
            ConnectionRefusal::BrokerLookupFailed => "broker_lookup_failed",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RefusedLabels {
    pub(super) listener: String,
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DenialLabels {
    pub(super) api: Cow<'static, str>,
    pub(super) resource_type: &'static str,
    pub(super) operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct HandshakeLabels {
    pub(super) result: &'static str,
    /// Empty for a success (Prometheus treats an empty label as absent).
    pub(super) reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PoolLabels {
    pub(super) pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CaLabels {
    pub(super) ca: String,
}

/// A certificate the configuration names: the proxy's own (`kind="server"`, `ca` empty) or one
/// of a CA bundle's (`kind="ca"`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CertificateLabels {
    pub(super) kind: &'static str,
    pub(super) ca: String,
    pub(super) subject: String,
}

/// Whose certificate a [`CertificateLabels`] series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateKind {
    /// The proxy's own server certificate chain (`tls.certificate_chain`).
    Server,
    /// A certificate of a CA bundle (`certificate_authorities[].certificate_chain`).
    Authority,
}

impl CertificateKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CertificateKind::Server => "server",
            CertificateKind::Authority => "ca",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ApiLabels {
    pub(super) api_key: Cow<'static, str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DirectionLabels {
    pub(super) direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pub(super) result: &'static str,
}

/// The `listener` label of a connection whose server name names a node id that could not be
/// checked before the handshake (SNI routing): a client can name any id, and label values
/// must stay few.
pub const UNVERIFIED_BROKER_LISTENER: &str = "broker-unverified";

/// The `listener` label: the same names the connection logs use.
pub fn listener_label(target: Target) -> String {
    match target {
        Target::Bootstrap => "bootstrap".to_string(),
        Target::Node(id) => format!("broker-{id}"),
    }
}
