//! The limits `serve` enforces, from the configuration, and the open-file limit they depend on.

use std::time::Duration;

use crate::config::Config;

/// The connection cap is derived from the open-file limit but never above this: past it the
/// bridge would run out of memory or ComfyUI capacity long before sockets.
const MOST_CONNECTIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Longest a request head may take to arrive, from the accept or from the end of the
    /// previous response; so also how long an idle keep-alive connection is kept.
    pub header_timeout: Duration,
    /// Time a request body has before `min_body_rate` applies.
    pub body_timeout: Duration,
    /// Least average speed of a body, in bytes per second since the request arrived, once
    /// `body_timeout` has passed; 0 turns the rule off.
    pub min_body_rate: u64,
    /// Longest a write may wait on a client that does not read.
    pub send_stall: Duration,
    /// Most connections open at once; the next ones get 503.
    pub max_connections: usize,
}

/// The limits from `config`. Raises the process's soft open-file limit to its hard limit first
/// (as Go's runtime does), since the default connection cap is derived from what it becomes.
pub fn limits(config: &Config) -> ServeLimits {
    let open_files = raise_open_file_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| default_max_connections(open_files))
        .max(1);
    let limits = ServeLimits {
        header_timeout: Duration::from_secs(config.header_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(config.body_timeout_secs.max(1)),
        min_body_rate: config.min_body_rate,
        send_stall: Duration::from_secs(config.send_stall_secs.max(1)),
        max_connections,
    };
    tracing::info!(
        header_timeout = ?limits.header_timeout,
        body_timeout = ?limits.body_timeout,
        min_body_rate = limits.min_body_rate,
        send_stall = ?limits.send_stall,
        max_connections,
        open_files = ?open_files,
        "connection limits"
    );
    limits
}

/// Half the open files, so that ComfyUI connections, images, the gallery's database and the
/// workflow files keep the other half; `None` is no limit.
fn default_max_connections(open_files: Option<u64>) -> usize {
    open_files.map_or(MOST_CONNECTIONS, |n| {
        usize::try_from(n / 2).map_or(MOST_CONNECTIONS, |half| half.min(MOST_CONNECTIONS))
    })
}

/// Sets the soft limit on open files to the hard one and returns the soft limit in force
/// (`None`: unlimited). Many systems start processes at a soft limit of 1024 or even 256 with a
/// far higher hard limit, which any process may raise itself to.
#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
        return limit.current;
    };
    if hard <= soft {
        return Some(soft);
    }
    let raised = Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => Some(hard),
        // macOS refuses values above its own per-process cap; the old limit stays in force.
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "could not raise the open-file limit");
            Some(soft)
        }
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_half_the_files_and_stays_bounded() {
        assert_eq!(default_max_connections(Some(256)), 128);
        assert_eq!(default_max_connections(Some(1024)), 512);
        assert_eq!(default_max_connections(Some(1_048_576)), MOST_CONNECTIONS);
        assert_eq!(default_max_connections(None), MOST_CONNECTIONS);
    }
}
