//! The operator tools of the `kafka-mtls-proxy` binary, apart from the proxy's library: they
//! are clients of the proxy (its configuration, its admin API) or write files for it, and the
//! proxy itself never calls them.
//!
//! - [`explain`]: the `explain` command, reading a certificate file and printing how the proxy
//!   would treat it (the decision itself is the library's `tls::explain`).

pub mod explain;
