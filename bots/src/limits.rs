//! The open-files limit, shared by the bots and the echo server: both hold one descriptor per
//! session, far past the usual soft limit of 1,024. The rule is tether's own
//! (`tether_protocol::process::raise_open_file_limit`), which the proxy and supervisor use.

use anyhow::{Context, Result};

/// Raises the soft open-files limit to the hard one; returns the new soft limit.
pub fn raise_nofile() -> Result<u64> {
    tether_protocol::process::raise_open_file_limit().context("raising RLIMIT_NOFILE")
}
