//! Entry points for the fuzz targets (`fuzzing/`), which live outside this crate: whole
//! sessions driven from arbitrary bytes, with the invariants that must hold for any input.
//! Not an API: nothing else should call these.

use tether_protocol::message::Delivery;

use crate::relay::ToSession;
use crate::session::{Context, Speaker, TelnetSpeaker};
use crate::web::{Frame, WebSpeaker};

/// Splits `data` into the pieces a client's reads might deliver: each piece's length comes
/// from the byte before it, so the fuzzer controls where reads end.
fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let len = usize::from(len).min(tail.len());
        let (piece, tail) = tail.split_at(len);
        rest = tail;
        Some(piece)
    })
}

/// What the game sends back to every line, so output paths (markup, prompts, GMCP, MCCP2)
/// run too.
fn answers(line: &str) -> [ToSession; 3] {
    [
        ToSession::Core(Delivery::Output(format!("{{red}}You typed{{/}} {line}"))),
        ToSession::Core(Delivery::Gmcp {
            package: "Room.Info".into(),
            json: r#"{"num":1}"#.into(),
        }),
        ToSession::Core(Delivery::Prompt("{bold}>{/} ".into())),
    ]
}

/// Checks each line the core would receive and answers it as the game would; `false` once
/// the session has closed.
fn answer(speaker: &mut impl Speaker, lines: &[String]) -> bool {
    for line in lines {
        check_line(line);
        for answer in answers(line) {
            if speaker.message(answer).is_err() {
                return false;
            }
        }
    }
    true
}

/// A line the core may receive: bounded, and free of control characters.
fn check_line(line: &str) {
    // The cap is on raw bytes; each invalid byte may become a 3-byte U+FFFD.
    assert!(
        line.len() <= 3 * crate::line::MAX_LINE_BYTES,
        "overlong line"
    );
    assert!(
        !line.chars().any(char::is_control),
        "control character in {line:?}"
    );
}

/// A telnet session (the codec, the whole negotiation, line assembly, the flood guard, the
/// wire with MCCP2) fed `data` in pieces.
pub fn telnet_session(data: &[u8]) {
    let mut speaker = TelnetSpeaker::new(1, Context::unlinked());
    speaker.greet();
    let mut written = speaker.take_output().concat().len();
    for piece in pieces(data) {
        let Ok(lines) = speaker.input(piece.to_vec()) else {
            return;
        };
        if !answer(&mut speaker, &lines) {
            return;
        }
        written += speaker.take_output().concat().len();
    }
    speaker.closing();
    written += speaker.take_output().concat().len();
    // What we write is bounded by what came in (the answers to a line are ~100 bytes plus
    // the line): no input makes the proxy talk without end.
    assert!(written <= 4096 + 256 * data.len(), "{written} bytes out");
}

/// A web-client session: each piece is a frame, text (GMCP) or binary (a line) by its first
/// byte's low bit.
pub fn web_session(data: &[u8]) {
    let mut speaker = WebSpeaker::new();
    speaker.greet();
    for piece in pieces(data) {
        let Some((&kind, body)) = piece.split_first() else {
            continue;
        };
        let frame = if kind & 1 == 0 {
            Frame::Text(String::from_utf8_lossy(body).into_owned())
        } else {
            Frame::Binary(body.to_vec())
        };
        let Ok(lines) = speaker.input(frame) else {
            return;
        };
        if !answer(&mut speaker, &lines) {
            return;
        }
        for frame in speaker.take_output() {
            if let Frame::Binary(html) = frame {
                // Game text reaches the browser as HTML made by the renderer only.
                let html = String::from_utf8(html).expect("HTML is UTF-8");
                assert!(!html.contains("<script"), "{html}");
            }
        }
    }
}
