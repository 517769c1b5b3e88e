//! What each fuzz target does with its bytes, and the invariants it checks. The coverage-guided
//! runs (`libfuzzer/`, cargo-fuzz on a nightly toolchain) call these; so does a plain test on
//! stable (`tests/corpus.rs`), which replays every committed corpus input and every crash
//! regression, so the targets build and pass in every `cargo test`.
//!
//! Each target takes bytes from strangers in the product: a telnet client, a web client, a
//! peer on the link, a world file.

use tether_protocol::framing;
use tether_protocol::markup::{self, ColorDepth};
use tether_protocol::message::{CoreMessage, ProxyMessage};

/// What a target is: bytes in; it panics if an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name its corpus directory and libFuzzer binary have.
pub const TARGETS: [(&str, Target); 5] = [
    ("telnet", telnet),
    ("link", link),
    ("markup", markup),
    ("web", web),
    ("world", world),
];

/// The telnet decoder driven through the whole negotiation and a session's input path.
pub fn telnet(data: &[u8]) {
    tether_proxy::fuzz::telnet_session(data);
}

/// The web client's frames: typed lines and GMCP text.
pub fn web(data: &[u8]) {
    tether_proxy::fuzz::web_session(data);
}

/// Link framing and message decoding, both directions: whatever a peer sends is refused or
/// decoded, never a panic, and what decodes encodes back to the same message.
pub fn link(data: &[u8]) {
    let Ok(Some(len)) = framing::message_len(data) else {
        return;
    };
    let mut bytes = &data[..len];
    let Ok(message) =
        capnp::serialize::read_message_from_flat_slice(&mut bytes, framing::reader_options())
    else {
        return;
    };
    if let Ok(decoded) = ProxyMessage::decode(&message) {
        let mut again = Vec::new();
        decoded.encode(&mut again);
        let reread = capnp::serialize::read_message(&again[..], framing::reader_options())
            .expect("our own encoding reads back");
        assert_eq!(
            ProxyMessage::decode(&reread).expect("our own encoding decodes"),
            decoded
        );
    }
    if let Ok(decoded) = CoreMessage::decode(&message) {
        let mut again = Vec::new();
        decoded.encode(&mut again);
        let reread = capnp::serialize::read_message(&again[..], framing::reader_options())
            .expect("our own encoding reads back");
        assert_eq!(
            CoreMessage::decode(&reread).expect("our own encoding decodes"),
            decoded
        );
    }
}

const DEPTHS: [ColorDepth; 4] = [
    ColorDepth::None,
    ColorDepth::Ansi16,
    ColorDepth::Ansi256,
    ColorDepth::TrueColor,
];

/// The markup renderer at every depth and as HTML. The first byte picks a wrap width; the rest
/// is text, used twice: as game markup (anything may come out, nothing may panic) and as
/// player text, escaped, which must never produce an escape byte, a tag or an HTML element.
pub fn markup(data: &[u8]) {
    let Some((&width, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let width = usize::from(width);

    // As the game's markup.
    for markup_text in [text.as_ref(), &markup::wrap(&text, width)] {
        for depth in DEPTHS {
            let ansi = markup::render_ansi(markup_text, depth);
            if depth == ColorDepth::None {
                assert_eq!(ansi, markup::plain(markup_text));
            }
        }
        let _ = markup::render_html(markup_text);
    }

    // As a player's text.
    let escaped = markup::escape(&text);
    let readable: String = markup::plain(&escaped);
    assert!(
        !readable.chars().any(char::is_control),
        "escaped text kept a control character: {readable:?}"
    );
    for shown in [escaped.clone(), markup::wrap(&escaped, width)] {
        for depth in DEPTHS {
            let ansi = markup::render_ansi(&shown, depth);
            assert!(
                !ansi.contains('\x1b'),
                "escaped player text made an escape: {ansi:?}"
            );
        }
        let html = markup::render_html(&shown);
        assert!(
            !html.contains('<'),
            "escaped player text made HTML: {html:?}"
        );
    }
    // Escaping loses only the unsafe characters: it reads as the text did.
    assert_eq!(markup::plain(&escaped), readable);
    let kept: String = text
        .chars()
        .filter(|c| markup::plain(&markup::escape(&c.to_string())).len() == c.len_utf8())
        .collect();
    assert_eq!(readable, kept);
}

/// The world file loader: any TOML (or not) is a world or an error, never a panic.
pub fn world(data: &[u8]) {
    if let Ok(source) = std::str::from_utf8(data) {
        let _ = tether_engine::World::from_toml_str(source);
    }
}
