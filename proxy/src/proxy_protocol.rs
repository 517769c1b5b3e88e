//! The PROXY protocol (HAProxy's; v1 text and v2 binary, parsed by the `ppp` crate): behind a
//! load balancer every connection comes from the balancer, and the player's own address
//! arrives as a header before anything else. On a listener where the operator turned it on,
//! the header is required, read before the gate (so per-address limits and the core's login
//! throttling see the player) and before the proxy says a word; a connection without a valid
//! one within [`HEADER_WITHIN`] is closed. Turn it on only for a listener nothing but the
//! balancer can reach: the header is believed.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a connection has to send its header.
pub const HEADER_WITHIN: Duration = Duration::from_secs(5);

/// The longest header taken: a v1 line is at most 107 bytes; a v2 header may carry TLVs
/// (cloud balancers add a few), but not kilobytes of them.
const MOST: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("no PROXY protocol header within {} s", HEADER_WITHIN.as_secs())]
    TooSlow,
    #[error("the connection closed before its PROXY protocol header was complete")]
    Closed,
    #[error("not a valid PROXY protocol header")]
    Invalid,
    #[error("a PROXY protocol header longer than {MOST} bytes")]
    TooLong,
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// What a complete header says: the player's address (`None` for a balancer's health check,
/// `UNKNOWN` or `LOCAL`, which keep the connection's own), and its length in bytes.
pub fn parse(bytes: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, HeaderError> {
    let header = HeaderResult::parse(bytes);
    if header.is_incomplete() {
        return if bytes.len() >= MOST {
            Err(HeaderError::TooLong)
        } else {
            Ok(None)
        };
    }
    match header {
        HeaderResult::V1(Ok(header)) => {
            let source = match header.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            };
            Ok(Some((source, header.header.len())))
        }
        HeaderResult::V2(Ok(header)) => {
            let source = match header.addresses {
                v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
            };
            Ok(Some((source, header.len())))
        }
        HeaderResult::V1(Err(_)) | HeaderResult::V2(Err(_)) => Err(HeaderError::Invalid),
    }
}

/// Reads the header off `stream` (exactly its bytes: what follows is the client's) and
/// returns the player's address, or the connection's own when the header names none.
pub async fn read_peer(stream: &mut TcpStream, own: SocketAddr) -> Result<SocketAddr, HeaderError> {
    let found = tokio::time::timeout(HEADER_WITHIN, async {
        // Peeked, not read, until the header is whole: only its own bytes are consumed.
        let mut buffer = vec![0u8; MOST];
        loop {
            let seen = stream.peek(&mut buffer).await?;
            if seen == 0 {
                return Err(HeaderError::Closed);
            }
            if let Some(found) = parse(&buffer[..seen])? {
                return Ok(found);
            }
            if seen >= MOST {
                return Err(HeaderError::TooLong);
            }
            // More is on its way; peek returns at once while the bytes are unchanged, so
            // wait a moment for the rest.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .map_err(|_| HeaderError::TooSlow)??;
    let (source, len) = found;
    let mut header = vec![0u8; len];
    stream.read_exact(&mut header).await?;
    Ok(source.unwrap_or(own))
}

/// The player's address for a connection on a listener with the PROXY protocol on; `None`
/// when the connection is to be dropped (no valid header, logged; or the proxy is stopping,
/// in which case a connection not yet a session is not carried over).
pub async fn player_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    shutdown: &mut crate::shutdown::Shutdown,
) -> Option<SocketAddr> {
    tokio::select! {
        read = read_peer(stream, peer) => match read {
            Ok(player) => Some(player),
            Err(error) => {
                tracing::info!(%peer, %error, "connection closed: no PROXY protocol header");
                None
            }
        },
        _ = shutdown.wait() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_versions_give_the_players_address_and_their_length() {
        let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 4000\r\nlook\r\n";
        let (source, len) = parse(v1).expect("valid").expect("complete");
        assert_eq!(source, Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(&v1[len..], b"look\r\n");

        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 4000\r\n";
        let (source, _) = parse(v6).expect("valid").expect("complete");
        assert_eq!(source, Some("[2001:db8::7]:51234".parse().unwrap()));

        let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        v2.extend([0x21, 0x11, 0, 12]);
        v2.extend([198, 51, 100, 9, 192, 0, 2, 1, 0x1f, 0x90, 0x0f, 0xa0]);
        v2.extend(b"rest");
        let (source, len) = parse(&v2).expect("valid").expect("complete");
        assert_eq!(source, Some("198.51.100.9:8080".parse().unwrap()));
        assert_eq!(&v2[len..], b"rest");

        let (source, _) = parse(b"PROXY UNKNOWN\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(source, None);
    }

    #[test]
    fn a_partial_header_waits_and_a_wrong_one_is_refused() {
        assert!(
            parse(b"PROXY TCP4 203.0.113.7")
                .expect("so far fine")
                .is_none()
        );
        assert!(parse(b"\r\n\r\n\0\r\n").expect("so far fine").is_none());
        assert!(matches!(
            parse(b"connect alice secret\r\n"),
            Err(HeaderError::Invalid)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 999.0.0.1 192.0.2.1 1 2\r\n"),
            Err(HeaderError::Invalid)
        ));
        assert!(parse(&[b'P'; MOST]).is_err());
    }
}
