//! The startup configuration: what is bound or process-wide, kept from start to exit, and the
//! names a reload logs for the parts of it that changed in the file.

use super::admin::AdminConfig;
use super::audit::AuditConfig;
use super::limits::StartupLimits;
use super::listener::{BrokerPorts, ListenerConfig};
use super::log::LogConfig;
use super::store::StoreConfig;
use crate::oauth::KeySettings;

/// The part of a [`super::Config`] a running proxy keeps until it restarts: sockets it bound,
/// and what it set up once for the whole process.
#[derive(Debug, Clone)]
pub struct StartupConfig {
    /// Bootstrap address, advertised host, broker bind address and ports.
    pub listener: ListenerConfig,
    pub limits: StartupLimits,
    pub audit: AuditConfig,
    pub log: LogConfig,
    /// The admin HTTP server; `None` when the file has no `admin` section.
    pub admin: Option<AdminConfig>,
    /// The oauthbearer signing keys' schedule and directory (`upstream.identity`
    /// `token_lifetime_ms`, `rotate_every_ms`, `publish_ahead_ms`, `keys_dir`), when that is the
    /// mode: the key ring is opened with them at start and outlives reloads, so that tokens
    /// signed before a reload still verify after it.
    pub oauth_keys: Option<KeySettings>,
    /// The shared pool store: its tail and its connection are set up once, at start.
    pub store: Option<StoreConfig>,
}

impl StartupConfig {
    /// The settings that differ in `new` but take effect only at restart, named as logged.
    ///
    /// Every field is destructured without `..`: a new startup field does not compile until
    /// it is given its name here.
    pub fn restart_only_changes(&self, new: &StartupConfig) -> Vec<&'static str> {
        let StartupConfig {
            listener,
            limits,
            audit,
            log,
            admin,
            oauth_keys,
            store,
        } = self;
        let ListenerConfig {
            bootstrap,
            advertised_host,
            broker_bind,
            broker_ports:
                BrokerPorts {
                    first_port,
                    node_ports,
                },
            advertised,
            proxy_protocol,
            sni,
        } = listener;
        let StartupLimits {
            max_connections,
            max_broker_listeners,
            max_buffered_request_bytes,
        } = limits;
        let AuditConfig {
            destination,
            source,
            queue_capacity,
            rotation,
        } = audit;
        let LogConfig { format, level } = log;

        let mut changed = Vec::new();
        let mut note = |name: &'static str, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        note("listener.bootstrap", *bootstrap != new.listener.bootstrap);
        note(
            "listener.advertised_host",
            *advertised_host != new.listener.advertised_host,
        );
        note(
            "listener.broker_bind_address",
            *broker_bind != new.listener.broker_bind,
        );
        note(
            "listener.broker_ports",
            *first_port != new.listener.broker_ports.first_port
                || *node_ports != new.listener.broker_ports.node_ports,
        );
        note(
            "listener.advertised",
            *advertised != new.listener.advertised,
        );
        note(
            "listener.proxy_protocol",
            *proxy_protocol != new.listener.proxy_protocol,
        );
        note("listener.sni", *sni != new.listener.sni);
        note(
            "limits.max_connections",
            *max_connections != new.limits.max_connections,
        );
        note(
            "limits.max_broker_listeners",
            *max_broker_listeners != new.limits.max_broker_listeners,
        );
        note(
            "limits.max_buffered_request_bytes",
            *max_buffered_request_bytes != new.limits.max_buffered_request_bytes,
        );
        // The audit writer, its queue and its file are made at start.
        note(
            "audit",
            *destination != new.audit.destination
                || *source != new.audit.source
                || *queue_capacity != new.audit.queue_capacity
                || *rotation != new.audit.rotation,
        );
        note("log", *format != new.log.format || *level != new.log.level);
        // Also when the section is added or removed: the admin server is bound at start.
        note("admin.listen", *admin != new.admin);
        // The retirement of keys in use depends on them. Switching to or from oauthbearer is
        // not a change of these: a generation refuses the first, and the second needs none.
        note(
            "upstream.identity (token_lifetime_ms, rotate_every_ms, publish_ahead_ms, keys_dir)",
            matches!((oauth_keys, &new.oauth_keys), (Some(before), Some(after)) if before != after),
        );
        note("store", *store != new.store);
        changed
    }
}
