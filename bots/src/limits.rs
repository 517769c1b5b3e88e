//! The open-files limit, shared by the bots and the echo server: both hold one descriptor per
//! session, far past the usual soft limit of 1,024.

use anyhow::{Context, Result};

/// Raises the soft open-files limit to the hard one; returns the new soft limit.
pub fn raise_nofile() -> Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(RLIMIT_NOFILE)")?;
    }
    Ok(hard)
}
