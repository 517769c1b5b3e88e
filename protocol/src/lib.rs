//! The link between a tether proxy and a tether game core.
//!
//! The schema, `schema/link.capnp`, is the protocol's documentation and ships with the crate
//! so that cores can be written in other languages. This crate compiles it (see `build.rs`: no
//! system `capnp` needed) and adds the shared definitions both sides need: `message` is the
//! link's messages as Rust types with their one encoder and decoder; `framing` reads and writes
//! them on a stream; `markup` is the colour markup; `process` and `control` are the
//! supervisor's contracts with its children and its control socket's clients; `keeper` is
//! what the proxy tells the supervisor so that its sudden death keeps every player; `witness`
//! is the page through which a core shows the supervisor that it makes progress, and which
//! line it is handling; `private` keeps the data directory and the database its owner's alone;
//! `link_tls` is what proves a proxy and a core to each other when the link crosses hosts.

// Generated; only `message` reads and writes it, so whatever of it is unused is unused.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    dead_code
)]
mod link_capnp {
    include!(concat!(env!("OUT_DIR"), "/link_capnp.rs"));
}

pub mod admin_token;
pub mod control;
pub mod framing;
pub mod keeper;
pub mod link_tls;
pub mod markup;
pub mod message;
pub mod private;
pub mod process;
pub mod witness;

pub use link_capnp::PROTOCOL_VERSION;

/// The schema source, for tools and for cores written in other languages.
pub const SCHEMA: &str = include_str!("../schema/link.capnp");

/// A session as the core knows it: which proxy holds it, and that proxy's id for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub proxy: u64,
    pub session: u64,
}

/// `proxy:session`, as logs show it.
impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.proxy, self.session)
    }
}

/// Checks the version a peer announced against ours, with a message fit for an operator.
pub fn check_version(peer_role: &str, peer_version: u32) -> Result<(), String> {
    if peer_version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(format!(
            "link protocol mismatch: the {peer_role} speaks version {peer_version}, \
             this side speaks version {PROTOCOL_VERSION}; upgrade the older of the two"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_version_is_accepted() {
        assert!(check_version("proxy", PROTOCOL_VERSION).is_ok());
    }

    #[test]
    fn other_version_is_refused_with_both_numbers() {
        let err = check_version("proxy", PROTOCOL_VERSION + 1).unwrap_err();
        assert!(err.contains(&format!("version {}", PROTOCOL_VERSION + 1)));
        assert!(err.contains(&format!("version {PROTOCOL_VERSION}")));
    }

    #[test]
    fn shipped_schema_declares_the_same_version() {
        let line = format!("const protocolVersion :UInt32 = {PROTOCOL_VERSION};");
        assert!(SCHEMA.contains(&line));
    }
}
