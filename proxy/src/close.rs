//! Why a session ended, as one type from where it happens (the client, the game, the proxy)
//! down to the log line and the WebSocket close code, so no layer has to guess from text.

use axum::extract::ws::close_code;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the connection.
    ClientClosed,
    /// Reading from the client failed.
    ReadFailed(String),
    /// Writing to the client failed, or it stopped reading for too long.
    WriteFailed(String),
    /// A WebSocket frame over the size limit (bytes).
    FrameTooLarge(usize),
    /// The client broke the WebSocket protocol.
    WebSocketError(String),
    /// The client kept sending after being told to slow down.
    Flood,
    /// The client did not read its output fast enough: the session's queue overflowed.
    OutputOverflow,
    /// The game closed the session; what it told the player.
    Game(String),
    /// The proxy is shutting down.
    Shutdown,
    /// The link task is gone (it lives as long as the process, so this is a bug).
    LinkGone,
}

/// What the player is told when a flood ends their session.
pub const FLOOD_NOTICE: &str = "Disconnected: too much input (flood).";
/// What the player is told when their client stopped reading.
pub const OVERFLOW_NOTICE: &str = "Disconnected: output was not being read fast enough.";

impl CloseReason {
    /// The WebSocket close code (RFC 6455, section 7.4.1).
    pub fn websocket_code(&self) -> u16 {
        match self {
            CloseReason::Shutdown => close_code::AWAY,
            CloseReason::FrameTooLarge(_) => close_code::SIZE,
            CloseReason::WebSocketError(_) => close_code::PROTOCOL,
            CloseReason::Flood => close_code::POLICY,
            CloseReason::LinkGone => close_code::ERROR,
            CloseReason::ClientClosed
            | CloseReason::ReadFailed(_)
            | CloseReason::WriteFailed(_)
            | CloseReason::OutputOverflow
            | CloseReason::Game(_) => close_code::NORMAL,
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::ClientClosed => f.write_str("connection closed by client"),
            CloseReason::ReadFailed(error) => write!(f, "read error: {error}"),
            CloseReason::WriteFailed(error) => write!(f, "write error: {error}"),
            CloseReason::FrameTooLarge(limit) => write!(f, "frame larger than {limit} bytes"),
            CloseReason::WebSocketError(error) => write!(f, "websocket error: {error}"),
            CloseReason::Flood => f.write_str(FLOOD_NOTICE),
            CloseReason::OutputOverflow => f.write_str(OVERFLOW_NOTICE),
            CloseReason::Game(reason) => f.write_str(reason),
            CloseReason::Shutdown => f.write_str("proxy shutting down"),
            CloseReason::LinkGone => f.write_str("link gone"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_reason_not_its_wording() {
        assert_eq!(CloseReason::Shutdown.websocket_code(), 1001);
        assert_eq!(CloseReason::FrameTooLarge(65536).websocket_code(), 1009);
        assert_eq!(CloseReason::Flood.websocket_code(), 1008);
        // A game reason that happens to read like a shutdown is still the game's.
        assert_eq!(
            CloseReason::Game("proxy shutting down".into()).websocket_code(),
            1000
        );
    }
}
