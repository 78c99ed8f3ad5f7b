//! The operator tools of the `kafka-mtls-proxy` binary, apart from the proxy's library: they
//! are clients of the proxy (its configuration, its admin API) or write files for it, and the
//! proxy itself never calls them.
//!
//! - [`explain`]: the `explain` command, reading a certificate file and printing how the proxy
//!   would treat it (the decision itself is the library's `tls::explain`).
//! - [`pki`]: the `pki` command, a development PKI that exercises every path of the proxy.
//! - [`iam`]: the `pools` and `cas` commands, clients of the proxy's iam/v2 admin API.

pub mod explain;
pub mod iam;
pub mod pki;
