//! How long a login must wait after failed ones: per address and per account, growing with
//! each failure, so that guessing passwords costs hours instead of seconds, while a player
//! who mistypes twice never notices. The counts live in the database (`login_failures`), so
//! a reload or a crash gives a guesser no fresh start.
//!
//! A throttled attempt is refused before its password is checked: it costs no argon2 time,
//! which also keeps a flood of guesses from starving real logins of the hashing threads.

use std::net::IpAddr;

/// Failed logins on one connection before it is closed.
pub(crate) const PER_CONNECTION: u32 = 3;

/// The rule for one kind of subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Failures allowed without any wait (mistyped passwords).
    pub free: u32,
    /// The longest wait, in seconds.
    pub max_wait: i64,
    /// Seconds after the last failure at which the count starts over.
    pub forget_after: i64,
}

/// From one address: a few typos are free, then 2, 4, 8 ... seconds, up to 5 minutes.
pub(crate) const ADDRESS: Policy = Policy {
    free: 3,
    max_wait: 300,
    forget_after: 3600,
};

/// For one account, from anywhere: more lenient, since a guesser could otherwise keep its
/// owner out; up to a minute.
pub(crate) const ACCOUNT: Policy = Policy {
    free: 5,
    max_wait: 60,
    forget_after: 3600,
};

/// What failed logins are counted against, as the database's `subject` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Address(IpAddr),
    /// A character name, as stored (capitalised).
    Account(String),
}

impl Subject {
    pub fn key(&self) -> String {
        match self {
            Subject::Address(ip) => format!("address:{ip}"),
            Subject::Account(name) => format!("account:{}", name.to_ascii_lowercase()),
        }
    }

    pub fn policy(&self) -> Policy {
        match self {
            Subject::Address(_) => ADDRESS,
            Subject::Account(_) => ACCOUNT,
        }
    }
}

/// The address a login is counted against, from the proxy's `remote_addr`: none for a
/// loopback peer, which is the operator's own (the load generator, a local client) or a
/// reverse proxy on the same host that would make every player look alike (the PROXY
/// protocol gives their real addresses), and none for an address the proxy did not know.
pub(crate) fn counted_address(remote_addr: &str) -> Option<IpAddr> {
    let ip = remote_addr
        .parse::<std::net::SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| remote_addr.parse::<IpAddr>())
        .ok()?;
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    (!ip.is_loopback()).then_some(ip)
}

/// Seconds still to wait after `failures` failures, the last at `last_at`, at `now`; `None`
/// if a login may be tried now.
pub(crate) fn wait(policy: Policy, failures: u32, last_at: i64, now: i64) -> Option<i64> {
    if now - last_at >= policy.forget_after || failures <= policy.free {
        return None;
    }
    let doublings = (failures - policy.free).min(30);
    let wait = (1_i64 << doublings).min(policy.max_wait);
    let until = last_at + wait;
    (now < until).then_some(until - now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_free_then_the_wait_doubles_up_to_a_cap() {
        let at = 1_000_000;
        assert_eq!(wait(ADDRESS, 3, at, at), None);
        assert_eq!(wait(ADDRESS, 4, at, at), Some(2));
        assert_eq!(wait(ADDRESS, 5, at, at), Some(4));
        assert_eq!(wait(ADDRESS, 5, at, at + 3), Some(1));
        assert_eq!(wait(ADDRESS, 5, at, at + 4), None);
        assert_eq!(wait(ADDRESS, 40, at, at), Some(300));
        assert_eq!(wait(ACCOUNT, 5, at, at), None);
        assert_eq!(wait(ACCOUNT, 40, at, at + 1), Some(59));
        // An hour after the last failure, all is forgiven.
        assert_eq!(wait(ADDRESS, 40, at, at + 3600), None);
    }

    #[test]
    fn loopback_and_unknown_peers_are_not_counted() {
        assert_eq!(
            counted_address("203.0.113.7:4242"),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            counted_address("[2001:db8::1]:23"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            counted_address("[::ffff:198.51.100.2]:23"),
            Some("198.51.100.2".parse().unwrap())
        );
        assert_eq!(counted_address("127.0.0.1:5000"), None);
        assert_eq!(counted_address("[::1]:5000"), None);
        assert_eq!(counted_address("?"), None);
        assert_eq!(
            Subject::Account("Carol".into()).key(),
            "account:carol".to_string()
        );
    }
}
