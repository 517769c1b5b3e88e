//! The tether proxy: the long-lived process that owns every player connection and keeps it
//! open while game cores come and go.
//!
//! Layout, from the wire inwards:
//! - `telnet`: a sans-IO telnet codec (bytes in, events out).
//! - `negotiation/`: per-session option state (RFC 1143, `options`), a file per sub-protocol
//!   (`ttype` with MTTS, `naws`, `environ`, `charset`, `gmcp`, `mssp`) and the colour policy.
//! - `mccp`: the MCCP2 zlib stream; `wire`: markup rendered, encoded and compressed for one
//!   telnet client.
//! - `line`: turns client bytes into player lines (terminators, size cap, UTF-8, control bytes);
//!   `flood`: a per-session token bucket; `admission`: the two together, the input rules every
//!   transport shares; `gmcp`: GMCP's `Core.*` and package filter, shared the same way.
//! - `session`: the lifecycle of one connection over any transport (`Speaker` + `Transport`),
//!   and the telnet speaker over TCP; `close`: why a session ended, as a type.
//! - `web`: the HTTP front door (axum on hyper): the browser client, WebSocket sessions,
//!   `/health`; `websocket`: WebSocket connections over sockets the proxy can hand over.
//! - `relay`: sans-IO bookkeeping of what each session sent and the core acknowledged; decides
//!   what to resend after a core restart and what to tell players.
//! - `state`: a session's whole state as one value, and the whole proxy's, for handing them to
//!   another process; `handover`: how they travel, with the sockets, to a successor;
//!   `keeper`: copies of the connections and checkpoints at rest, sent to the supervisor as
//!   they change, so that a proxy killed without warning is replaced without a disconnect.
//! - `mailbox`: the queue from the link to one session, which an idle session holds empty.
//! - `link`: the link to the core, a task on the runtime like the sessions, driving `relay`;
//!   the messages themselves are `tether_protocol::message`.
//! - `server`: the accept loops and graceful shutdown; `shutdown`: the signal it passes down.
//! - `fuzz`: entry points for the fuzz targets in `fuzzing/`, not an API.

mod admission;
mod close;
mod conn;
mod dashboard;
mod fault;
mod flood;
#[doc(hidden)]
pub mod fuzz;
mod gate;
mod gmcp;
mod handover;
mod keeper;
pub mod line;
mod link;
mod mailbox;
pub mod mccp;
pub mod metrics;
mod negotiation;
mod proxy_protocol;
mod relay;
#[cfg(test)]
mod same_rules;
mod server;
mod session;
mod shutdown;
mod state;
pub mod telnet;
mod tls;
mod web;
mod websocket;
mod wire;

pub use gate::{Gate, Limits as GateLimits};
pub use handover::reserve_descriptor_table;
pub use keeper::{Keeper, from_env as keeper_from_env};
pub use link::{CoreAddress, LinkConfig};
pub use relay::DEFAULT_MAX_QUEUED_LINES;
pub use server::{Proxy, ProxyProtocolOn};
pub use tls::{CertificateFiles, Certificates};

/// A random-enough id for this proxy process, so a core can tell a reconnect from a new proxy.
pub fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(elapsed) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(elapsed.as_nanos());
    }
    hasher.finish()
}
