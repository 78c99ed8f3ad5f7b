//! The open-file limit (`RLIMIT_NOFILE`): raised at start from the soft limit (often 1024) as
//! far as the hard limit allows, and checked against what `limits` may need, so that a proxy
//! that cannot serve `max_connections` says so at start instead of failing accepts with EMFILE
//! under load.

use crate::config::StartupLimits;

/// Every client connection holds two descriptors: the client socket and its upstream socket.
pub const FDS_PER_CONNECTION: u64 = 2;

/// Descriptors besides connections and broker listeners: stdio, the runtime's epoll and
/// eventfds, the bootstrap and admin listeners, admin requests, the audit file, configuration
/// and CRL reads, the file watch. Generous on purpose: running out costs a refused client.
pub const RESERVED_FDS: u64 = 64;

/// The open-file limit before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub previous_soft: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise() -> std::io::Result<FdLimit> {
    let (previous_soft, hard) = rlimit::Resource::NOFILE.get()?;
    let soft = if previous_soft < hard {
        rlimit::Resource::NOFILE.set(hard, hard)?;
        hard
    } else {
        previous_soft
    };
    Ok(FdLimit {
        previous_soft,
        soft,
        hard,
    })
}

/// The hard `RLIMIT_NOFILE` of this process: what [`raise`] would reach.
pub fn hard_limit() -> std::io::Result<u64> {
    Ok(rlimit::Resource::NOFILE.get()?.1)
}

/// The most descriptors `limits` may need at once.
pub fn fds_needed(limits: &StartupLimits) -> u64 {
    per_usize(limits.max_connections)
        .saturating_mul(FDS_PER_CONNECTION)
        .saturating_add(per_usize(limits.max_broker_listeners))
        .saturating_add(RESERVED_FDS)
}

/// A sentence for the operator when `limit` open files cannot serve `limits`, else `None`.
pub fn shortfall(limits: &StartupLimits, limit: u64) -> Option<String> {
    let needed = fds_needed(limits);
    if needed <= limit {
        return None;
    }
    let fixed = per_usize(limits.max_broker_listeners).saturating_add(RESERVED_FDS);
    let servable = limit.saturating_sub(fixed) / FDS_PER_CONNECTION;
    Some(format!(
        "limits.max_connections: {} connections need up to {needed} open files ({FDS_PER_CONNECTION} \
         per connection, {} broker listeners, {RESERVED_FDS} others) but the open-file limit \
         (RLIMIT_NOFILE) is {limit}: about {servable} connections can be served; raise the hard \
         limit (`ulimit -Hn`, systemd `LimitNOFILE=`) or lower limits.max_connections",
        limits.max_connections, limits.max_broker_listeners,
    ))
}

fn per_usize(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_broker_listeners: usize) -> StartupLimits {
        StartupLimits {
            max_connections,
            max_broker_listeners,
            max_buffered_request_bytes: 256 << 20,
        }
    }

    #[test]
    fn two_descriptors_per_connection_plus_listeners_and_the_reserve() {
        assert_eq!(fds_needed(&limits(10_000, 1_000)), 20_000 + 1_000 + 64);
        assert_eq!(shortfall(&limits(10_000, 1_000), 21_064), None);
    }

    #[test]
    fn a_limit_too_low_names_the_setting_and_what_it_can_serve() {
        let s = shortfall(&limits(10_000, 1_000), 20_000).unwrap();
        assert!(
            s.starts_with("limits.max_connections: 10000 connections"),
            "{s}"
        );
        assert!(s.contains("need up to 21064 open files"), "{s}");
        assert!(s.contains("about 9468 connections"), "{s}");
    }

    #[test]
    fn raising_reaches_the_hard_limit() {
        let raised = raise().unwrap();
        assert_eq!(raised.soft, raised.hard);
        assert_eq!(
            rlimit::Resource::NOFILE.get().unwrap(),
            (raised.hard, raised.hard)
        );
        assert_eq!(hard_limit().unwrap(), raised.hard);
    }
}
