//! Who may open a connection. Nothing on a public port trusts its client, so before a
//! connection becomes a session it passes the gate:
//!
//! - **per address**: at most so many at once, and new ones at a steady rate with a burst
//!   (a browser opens several at once); one host cannot hold every descriptor. Loopback
//!   peers are exempt: the operator's own (the load generator, a local client) or a reverse
//!   proxy on the host, behind which every player would share one address (the PROXY
//!   protocol gives their real ones, and those are counted).
//! - **a reserve of descriptors** below the process's open-file limit: player connections
//!   stop short of it, so the link to the core, a hand-over, the keeper, `/health` and the
//!   players already connected never find the table full. HTTP may use half the reserve
//!   (that is where `/health` is asked); telnet stops at its edge.
//!
//! The rules are a sans-IO [`Rules`] (addresses and time in, a verdict out); [`Gate`] is the
//! shared lock around them, and a [`Permit`] gives its place back when the session ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The operator's settings (the config file's `max_connections_per_address` and
/// `connections_per_second_per_address`); 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub per_address: u32,
    /// New connections per second per address, after a burst of `per_address`.
    pub per_second: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_address: 32,
            per_second: 4.0,
        }
    }
}

/// Which door a connection came through: HTTP may dip further into the reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Telnet,
    Http,
}

/// Why a connection was turned away, in the words its client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("The server is full right now; please try again in a little while.")]
    Full,
    #[error("Too many connections from your address at once.")]
    TooMany,
    #[error("Too many new connections from your address; please wait a moment.")]
    TooFast,
}

#[derive(Debug, Clone, Copy)]
struct Address {
    open: u32,
    tokens: f64,
    at: Instant,
}

/// The gate's state, without locks or clocks.
#[derive(Debug)]
pub struct Rules {
    limits: Limits,
    /// Connections the proxy may hold for players before the reserve.
    capacity: usize,
    /// How far into the reserve HTTP may go.
    http_capacity: usize,
    open: usize,
    addresses: HashMap<IpAddr, Address>,
}

impl Rules {
    /// `files` is the open-file limit; a reserve of 1 in 50 (at least 64) is kept back.
    pub fn new(limits: Limits, files: usize) -> Rules {
        let reserve = (files / 50).max(64);
        let capacity = files.saturating_sub(reserve);
        Rules {
            limits,
            capacity,
            http_capacity: files.saturating_sub(reserve / 2),
            open: 0,
            addresses: HashMap::new(),
        }
    }

    /// Lets a new connection from `peer` in, or says why not.
    pub fn admit(&mut self, peer: IpAddr, door: Door, now: Instant) -> Result<(), Refusal> {
        let room = match door {
            Door::Telnet => self.capacity,
            Door::Http => self.http_capacity,
        };
        if self.open >= room {
            return Err(Refusal::Full);
        }
        if let Some(peer) = counted(peer) {
            self.prune(now);
            let limits = self.limits;
            let burst = f64::from(limits.per_address.max(1));
            let entry = self.addresses.entry(peer).or_insert(Address {
                open: 0,
                tokens: burst,
                at: now,
            });
            if limits.per_address > 0 && entry.open >= limits.per_address {
                return Err(Refusal::TooMany);
            }
            if limits.per_second > 0.0 {
                let refill =
                    now.saturating_duration_since(entry.at).as_secs_f64() * limits.per_second;
                entry.tokens = (entry.tokens + refill).min(burst);
                entry.at = now;
                if entry.tokens < 1.0 {
                    return Err(Refusal::TooFast);
                }
                entry.tokens -= 1.0;
            }
            entry.open += 1;
        }
        self.open += 1;
        Ok(())
    }

    /// Counts a connection that is already open (carried over from another proxy, or kept
    /// through a crash): never refused.
    pub fn carry(&mut self, peer: Option<IpAddr>, now: Instant) {
        self.open += 1;
        if let Some(peer) = peer.and_then(counted) {
            let burst = f64::from(self.limits.per_address.max(1));
            self.addresses
                .entry(peer)
                .or_insert(Address {
                    open: 0,
                    tokens: burst,
                    at: now,
                })
                .open += 1;
        }
    }

    /// A connection let in (or carried) has closed.
    pub fn release(&mut self, peer: Option<IpAddr>) {
        self.open = self.open.saturating_sub(1);
        if let Some(entry) = peer
            .and_then(counted)
            .and_then(|p| self.addresses.get_mut(&p))
        {
            entry.open = entry.open.saturating_sub(1);
        }
    }

    pub fn open(&self) -> usize {
        self.open
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets addresses with nothing open whose allowance has refilled, once there are
    /// many: what is kept stays proportional to what is open.
    fn prune(&mut self, now: Instant) {
        if self.addresses.len() < 1024 + 2 * self.open {
            return;
        }
        let limits = self.limits;
        let burst = f64::from(limits.per_address.max(1));
        self.addresses.retain(|_, entry| {
            let refilled = entry.tokens
                + now.saturating_duration_since(entry.at).as_secs_f64() * limits.per_second;
            entry.open > 0 || (limits.per_second > 0.0 && refilled < burst)
        });
    }
}

/// The address a connection is counted against, if any (see the module doc).
fn counted(peer: IpAddr) -> Option<IpAddr> {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    (!peer.is_loopback()).then_some(peer)
}

/// The rules behind a lock, shared by every accept loop.
#[derive(Debug)]
pub struct Gate {
    rules: Mutex<Rules>,
    /// When the log last said the proxy is full (said at most every 10 s).
    said_full: Mutex<Option<Instant>>,
}

impl Gate {
    pub fn new(limits: Limits) -> Arc<Gate> {
        let files = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| {
                usize::try_from(soft).unwrap_or(usize::MAX)
            });
        Arc::new(Gate {
            rules: Mutex::new(Rules::new(limits, files)),
            said_full: Mutex::new(None),
        })
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn admit(self: &Arc<Self>, peer: IpAddr, door: Door) -> Result<Permit, Refusal> {
        let now = Instant::now();
        let verdict = self.rules().admit(peer, door, now);
        match verdict {
            Ok(()) => Ok(Permit {
                gate: self.clone(),
                peer: Some(peer),
            }),
            Err(Refusal::Full) => {
                let mut said = self
                    .said_full
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if said.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(10)) {
                    *said = Some(now);
                    let rules = self.rules();
                    tracing::warn!(
                        open = rules.open(),
                        capacity = rules.capacity(),
                        "refusing new connections: the rest of the open-file limit is kept \
                         for the core link, /health and the players already here"
                    );
                }
                Err(Refusal::Full)
            }
            Err(refusal) => {
                tracing::info!(%peer, ?refusal, "connection refused at the gate");
                Err(refusal)
            }
        }
    }

    /// A connection that is already open and must be counted.
    pub fn carry(self: &Arc<Self>, peer: Option<IpAddr>) -> Permit {
        self.rules().carry(peer, Instant::now());
        Permit {
            gate: self.clone(),
            peer,
        }
    }
}

/// A place at the gate, given back when dropped (when its session ends).
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
    peer: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.rules().release(self.peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_address_gets_its_share_at_a_steady_rate() {
        let limits = Limits {
            per_address: 3,
            per_second: 1.0,
        };
        let mut rules = Rules::new(limits, 100_000);
        let start = Instant::now();
        let host = ip("203.0.113.5");
        for _ in 0..3 {
            rules
                .admit(host, Door::Telnet, start)
                .expect("within the burst");
        }
        assert_eq!(
            rules.admit(host, Door::Telnet, start),
            Err(Refusal::TooMany)
        );
        rules.release(Some(host));
        // A place is free, but the burst is spent: it refills at one a second.
        assert_eq!(
            rules.admit(host, Door::Telnet, start),
            Err(Refusal::TooFast)
        );
        rules
            .admit(host, Door::Http, start + Duration::from_secs(1))
            .expect("refilled");
        // Others are not affected, and loopback is never counted.
        rules
            .admit(ip("198.51.100.1"), Door::Telnet, start)
            .expect("another host");
        for _ in 0..100 {
            rules
                .admit(ip("127.0.0.1"), Door::Telnet, start)
                .expect("loopback");
        }
        rules
            .admit(
                ip("::ffff:203.0.113.5"),
                Door::Telnet,
                start + Duration::from_secs(9),
            )
            .expect_err("an IPv4-mapped address is the same host");
    }

    #[test]
    fn the_reserve_is_kept_for_what_is_not_a_new_player() {
        let mut rules = Rules::new(Limits::default(), 1000);
        let now = Instant::now();
        // 1000 files: a reserve of 64; telnet stops at 936, HTTP at 968.
        for _ in 0..936 {
            rules
                .admit(ip("127.0.0.1"), Door::Telnet, now)
                .expect("room");
        }
        assert_eq!(
            rules.admit(ip("127.0.0.1"), Door::Telnet, now),
            Err(Refusal::Full)
        );
        for _ in 0..32 {
            rules
                .admit(ip("127.0.0.1"), Door::Http, now)
                .expect("HTTP room");
        }
        assert_eq!(
            rules.admit(ip("127.0.0.1"), Door::Http, now),
            Err(Refusal::Full)
        );
        // Carried connections are counted but never refused.
        rules.carry(Some(ip("203.0.113.9")), now);
        assert_eq!(rules.open(), 969);
        rules.release(Some(ip("203.0.113.9")));
        rules.release(None);
        rules
            .admit(ip("127.0.0.1"), Door::Http, now)
            .expect("a place came free");
    }

    #[test]
    fn forgotten_addresses_do_not_pile_up() {
        let limits = Limits {
            per_address: 2,
            per_second: 100.0,
        };
        let mut rules = Rules::new(limits, 1 << 20);
        let start = Instant::now();
        for n in 0..5000u32 {
            let peer = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            rules.admit(peer, Door::Telnet, start).expect("admitted");
            rules.release(Some(peer));
        }
        rules
            .admit(
                ip("203.0.113.1"),
                Door::Telnet,
                start + Duration::from_secs(1),
            )
            .expect("admitted");
        assert!(rules.addresses.len() < 1100, "{}", rules.addresses.len());
    }
}
