//! The negotiation as a client sees it: bytes in, bytes and events out, one sub-protocol at a
//! time and whole sessions.

use tether_protocol::markup::ColorDepth;
use tether_protocol::message::{Charset, ClientInfo};

use super::environ::parse_environ;
use super::ttype::MAX_TTYPE_REQUESTS;
use super::*;
use crate::telnet::{DO, DONT, IAC, WILL, WONT};
use crate::telnet::{GA, SB, SE, TelnetParser};
use option::{
    CHARSET, ECHO, EOR, GMCP, LINEMODE, MCCP2, MCCP3, MSSP, MXP, NAWS, NEW_ENVIRON, SGA, TTYPE,
};

const MCCP1: u8 = 0x55;
const TTYPE_SEND: &[u8] = &[IAC, SB, TTYPE, 0x01, IAC, SE];
const ENVIRON_SEND: &[u8] = &[IAC, SB, NEW_ENVIRON, 0x01, 0x00, IAC, SE];
const CHARSET_REQUEST_UTF8: &[u8] = b"\xFF\xFA\x2A\x01;UTF-8\xFF\xF0";

/// Parses `input` as client bytes and hands every event to `neg`.
fn feed(neg: &mut Negotiation, input: &[u8]) -> (Vec<u8>, Vec<ClientEvent>) {
    let mut parsed = Vec::new();
    TelnetParser::new().feed(input, &mut parsed);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for event in &parsed {
        neg.handle(event, &mut out, &mut events);
    }
    (out, events)
}

fn started() -> Negotiation {
    let mut neg = Negotiation::new();
    let mut out = Vec::new();
    neg.start(&mut out);
    neg
}

fn cmd(verb: u8, opt: u8) -> Vec<u8> {
    telnet::negotiation(verb, opt).to_vec()
}

fn sb(opt: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    telnet::subnegotiation(opt, data, &mut out);
    out
}

fn ttype_is(text: &str) -> Vec<u8> {
    let mut data = vec![0x00];
    data.extend_from_slice(text.as_bytes());
    sb(TTYPE, &data)
}

fn gmcp(text: &str) -> Vec<u8> {
    sb(GMCP, text.as_bytes())
}

/// A started negotiation whose client agreed to GMCP.
fn with_gmcp() -> Negotiation {
    let mut neg = started();
    let (out, _) = feed(&mut neg, &cmd(DO, GMCP));
    assert!(out.is_empty());
    neg
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

// ---- opening ----

#[test]
fn start_sends_the_exact_opening_offers() {
    let mut neg = Negotiation::new();
    let mut out = Vec::new();
    neg.start(&mut out);
    assert_eq!(
        out,
        [
            IAC,
            WILL,
            EOR,
            IAC,
            WILL,
            GMCP,
            IAC,
            WILL,
            MSSP,
            IAC,
            WILL,
            MCCP2, //
            IAC,
            DO,
            TTYPE,
            IAC,
            DO,
            NAWS,
            IAC,
            DO,
            NEW_ENVIRON,
            IAC,
            DO,
            CHARSET,
        ]
    );
    // Never MCCP v1, never ECHO or SGA at the start.
    for opt in [MCCP1, ECHO, SGA] {
        assert_eq!(count(&out, &cmd(WILL, opt)), 0, "offered {opt:#x}");
    }
    // Nothing is agreed until the client answers.
    assert!(!neg.local_enabled(GMCP) && !neg.remote_enabled(TTYPE));
    assert_eq!(neg.capabilities(), &Capabilities::default());
}

#[test]
fn start_twice_sends_nothing_more() {
    let mut neg = started();
    let mut out = Vec::new();
    neg.start(&mut out);
    assert!(out.is_empty());
}

// ---- RFC 1143 ----

#[test]
fn agreeing_to_our_offer_is_not_answered() {
    let mut neg = started();
    for input in [cmd(DO, EOR), cmd(DO, GMCP), cmd(WILL, NAWS)] {
        let (out, _) = feed(&mut neg, &input);
        assert!(out.is_empty(), "answered {input:?} with {out:?}");
    }
    assert!(neg.local_enabled(EOR) && neg.local_enabled(GMCP) && neg.remote_enabled(NAWS));
}

#[test]
fn no_answer_for_an_option_already_in_the_asked_state() {
    let mut neg = started();
    feed(&mut neg, &cmd(DO, EOR));
    feed(&mut neg, &cmd(WILL, NAWS));
    // Already on: repeats get no reply (answering is how loops start).
    for input in [cmd(DO, EOR), cmd(WILL, NAWS)] {
        assert!(feed(&mut neg, &input).0.is_empty());
    }
    // Already off (never asked for): WONT/DONT get no reply either.
    for opt in [ECHO, SGA, MXP, LINEMODE, MCCP1] {
        assert!(feed(&mut neg, &cmd(WONT, opt)).0.is_empty());
        assert!(feed(&mut neg, &cmd(DONT, opt)).0.is_empty());
    }
    // A refused request repeated is refused again, once per request.
    assert_eq!(feed(&mut neg, &cmd(WILL, MCCP3)).0, cmd(DONT, MCCP3));
    assert_eq!(feed(&mut neg, &cmd(WILL, MCCP3)).0, cmd(DONT, MCCP3));
}

#[test]
fn unknown_and_unwanted_options_are_refused() {
    let mut neg = started();
    assert_eq!(feed(&mut neg, &cmd(DO, MCCP1)).0, cmd(WONT, MCCP1));
    assert_eq!(feed(&mut neg, &cmd(DO, MXP)).0, cmd(WONT, MXP));
    assert_eq!(feed(&mut neg, &cmd(WILL, MCCP3)).0, cmd(DONT, MCCP3));
    assert_eq!(feed(&mut neg, &cmd(WILL, ECHO)).0, cmd(DONT, ECHO));
    assert_eq!(feed(&mut neg, &cmd(WILL, LINEMODE)).0, cmd(DONT, LINEMODE));
    assert_eq!(feed(&mut neg, &cmd(DO, TTYPE)).0, cmd(WONT, TTYPE));
    assert!(!neg.local_enabled(MCCP1) && !neg.local_enabled(MXP));
}

#[test]
fn refusal_of_our_offer_is_not_answered() {
    let mut neg = started();
    for input in [cmd(DONT, GMCP), cmd(WONT, TTYPE), cmd(WONT, CHARSET)] {
        let (out, _) = feed(&mut neg, &input);
        assert!(out.is_empty());
    }
    assert!(!neg.local_enabled(GMCP) && !neg.remote_enabled(TTYPE));
}

#[test]
fn renegotiation_is_allowed() {
    let mut neg = started();
    feed(&mut neg, &cmd(DO, EOR));
    assert!(neg.capabilities().eor);
    let (out, events) = feed(&mut neg, &cmd(DONT, EOR));
    assert_eq!(out, cmd(WONT, EOR));
    assert!(!neg.capabilities().eor);
    assert_eq!(events, vec![ClientEvent::CapabilitiesChanged]);
    // Later the client wants it back: agreed again.
    let (out, _) = feed(&mut neg, &cmd(DO, EOR));
    assert_eq!(out, cmd(WILL, EOR));
    assert!(neg.capabilities().eor);

    feed(&mut neg, &cmd(WILL, NAWS));
    assert_eq!(feed(&mut neg, &cmd(WONT, NAWS)).0, cmd(DONT, NAWS));
    assert_eq!(feed(&mut neg, &cmd(WILL, NAWS)).0, cmd(DO, NAWS));
    assert!(neg.remote_enabled(NAWS));
}

/// Converts our negotiation bytes into what a client sends back.
fn client_reaction(ours: &[u8], react: impl Fn(u8, u8) -> Option<[u8; 3]>) -> Vec<u8> {
    let mut parsed = Vec::new();
    TelnetParser::new().feed(ours, &mut parsed);
    let mut reply = Vec::new();
    for event in parsed {
        let (verb, opt) = match event {
            TelnetEvent::Will(o) => (WILL, o),
            TelnetEvent::Wont(o) => (WONT, o),
            TelnetEvent::Do(o) => (DO, o),
            TelnetEvent::Dont(o) => (DONT, o),
            _ => continue,
        };
        if let Some(bytes) = react(verb, opt) {
            reply.extend_from_slice(&bytes);
        }
    }
    reply
}

/// Plays `first` into `neg`, then keeps feeding the client's reactions
/// to our answers back; returns how many rounds produced output.
fn rounds_until_quiet(
    neg: &mut Negotiation,
    first: &[u8],
    react: &dyn Fn(u8, u8) -> Option<[u8; 3]>,
) -> usize {
    let mut input = first.to_vec();
    for round in 0..10 {
        let (out, _) = feed(neg, &input);
        input = client_reaction(&out, react);
        if input.is_empty() {
            return round;
        }
    }
    panic!("negotiation loop starting with {first:?}");
}

#[test]
fn no_loop_with_a_client_that_echoes_our_bytes_back() {
    let echo = |verb, opt| Some(telnet::negotiation(verb, opt));
    let mut neg = Negotiation::new();
    let mut opening = Vec::new();
    neg.start(&mut opening);
    assert!(rounds_until_quiet(&mut neg, &opening, &echo) <= 2);
    for opt in 0..=u8::MAX {
        for verb in [WILL, WONT, DO, DONT] {
            let mut neg = started();
            assert!(rounds_until_quiet(&mut neg, &cmd(verb, opt), &echo) <= 2);
        }
    }
}

#[test]
fn no_loop_with_a_client_that_acknowledges_everything() {
    // The naive client: WILL -> DO, DO -> WILL, WONT -> DONT, DONT -> WONT.
    // Without RFC 1143 a server answering acknowledgements bounces forever.
    let ack = |verb, opt| {
        let answer = match verb {
            WILL => DO,
            DO => WILL,
            WONT => DONT,
            _ => WONT,
        };
        Some(telnet::negotiation(answer, opt))
    };
    let mut neg = Negotiation::new();
    let mut opening = Vec::new();
    neg.start(&mut opening);
    assert!(rounds_until_quiet(&mut neg, &opening, &ack) <= 2);
    for opt in 0..=u8::MAX {
        for verb in [WILL, WONT, DO, DONT] {
            let mut neg = started();
            assert!(rounds_until_quiet(&mut neg, &cmd(verb, opt), &ack) <= 2);
        }
    }
    // Echo toggles against the same client settle too.
    let mut neg = started();
    let mut out = Vec::new();
    neg.hide_input(true, &mut out);
    neg.hide_input(false, &mut out);
    neg.hide_input(true, &mut out);
    assert!(rounds_until_quiet(&mut neg, &client_reaction(&out, ack), &ack) <= 3);
}

#[test]
fn no_loop_between_two_negotiations_wired_together() {
    let mut a = Negotiation::new();
    let mut b = Negotiation::new();
    let mut a_to_b = Vec::new();
    let mut b_to_a = Vec::new();
    a.start(&mut a_to_b);
    b.start(&mut b_to_a);
    for _ in 0..10 {
        if a_to_b.is_empty() && b_to_a.is_empty() {
            // Each refused the other's server offers; CHARSET, which
            // either side may enable, ended up on both ways.
            assert!(!a.local_enabled(GMCP) && !b.remote_enabled(GMCP));
            assert!(!a.remote_enabled(TTYPE) && !b.local_enabled(TTYPE));
            assert!(a.local_enabled(CHARSET) && a.remote_enabled(CHARSET));
            assert!(b.local_enabled(CHARSET) && b.remote_enabled(CHARSET));
            return;
        }
        let (next_b_to_a, _) = feed(&mut b, &a_to_b);
        let (next_a_to_b, _) = feed(&mut a, &b_to_a);
        a_to_b = next_a_to_b;
        b_to_a = next_b_to_a;
    }
    panic!("two negotiations never went quiet");
}

// ---- TTYPE / MTTS ----

#[test]
fn ttype_send_is_exactly_iac_sb_24_1_iac_se() {
    let mut neg = started();
    let (out, _) = feed(&mut neg, &cmd(WILL, TTYPE));
    assert_eq!(out, [0xFF, 0xFA, 0x18, 0x01, 0xFF, 0xF0]);
}

#[test]
fn mtts_cycle_tintin() {
    let mut neg = started();
    let mut sends = count(&feed(&mut neg, &cmd(WILL, TTYPE)).0, TTYPE_SEND);
    for reply in ["TINTIN++", "tmux-256color", "MTTS 271"] {
        let (out, _) = feed(&mut neg, &ttype_is(reply));
        sends += count(&out, TTYPE_SEND);
    }
    assert_eq!(sends, 3);
    let caps = neg.capabilities();
    assert_eq!(caps.client.client_name.as_deref(), Some("TINTIN++"));
    assert_eq!(caps.client.terminal_type.as_deref(), Some("tmux-256color"));
    assert_eq!(caps.client.mtts, Some(271));
    assert!(!caps.client.screen_reader);
    assert_eq!(caps.color_depth(), ColorDepth::TrueColor);
}

#[test]
fn mtts_cycle_stops_at_the_first_repeat() {
    // A client without MTTS that lists two names, then repeats.
    let mut neg = started();
    let mut sends = count(&feed(&mut neg, &cmd(WILL, TTYPE)).0, TTYPE_SEND);
    for (reply, expect_send) in [("FOO", 1), ("VT100", 1), ("VT100", 0)] {
        let (out, _) = feed(&mut neg, &ttype_is(reply));
        assert_eq!(count(&out, TTYPE_SEND), expect_send, "after {reply}");
        sends += count(&out, TTYPE_SEND);
    }
    assert_eq!(sends, 3);
    assert_eq!(
        neg.capabilities().client.client_name.as_deref(),
        Some("FOO")
    );
    assert_eq!(
        neg.capabilities().client.terminal_type.as_deref(),
        Some("VT100")
    );
    // Later unrequested replies change nothing.
    let (out, events) = feed(&mut neg, &ttype_is("OTHER"));
    assert!(out.is_empty() && events.is_empty());
}

#[test]
fn names_are_no_colour_guess_until_the_cycle_ends() {
    // A screen reader whose first names look like a terminal: its MTTS comes last, and
    // whatever the game sends in between must not be painted.
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, TTYPE));
    for reply in ["READER", "XTERM"] {
        feed(&mut neg, &ttype_is(reply));
        assert_eq!(
            neg.capabilities().color_depth(),
            ColorDepth::None,
            "after {reply}"
        );
        assert_eq!(
            neg.capabilities().client.terminal_type,
            None,
            "after {reply}"
        );
    }
    feed(&mut neg, &ttype_is("MTTS 65"));
    let caps = neg.capabilities();
    assert_eq!(caps.client.client_name.as_deref(), Some("READER"));
    assert_eq!(caps.client.terminal_type.as_deref(), Some("XTERM"));
    assert!(caps.client.screen_reader);
    assert_eq!(caps.color_depth(), ColorDepth::None);

    // A client that refuses TTYPE half way still gets a guess from what it said.
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, TTYPE));
    feed(&mut neg, &ttype_is("xterm-256color"));
    feed(&mut neg, &cmd(WONT, TTYPE));
    assert_eq!(neg.capabilities().color_depth(), ColorDepth::Ansi256);
}

#[test]
fn mudlet_style_cycle_restart_does_not_loop() {
    // Mudlet answers every SEND, cycling back to its name after MTTS.
    let cycle = ["MUDLET", "ANSI-TRUECOLOR", "MTTS 2349"];
    let mut neg = started();
    let (mut out, _) = feed(&mut neg, &cmd(WILL, TTYPE));
    let mut sends = 0;
    let mut at = 0;
    while count(&out, TTYPE_SEND) > 0 {
        sends += 1;
        assert!(sends <= MAX_TTYPE_REQUESTS, "TTYPE loop");
        out = feed(&mut neg, &ttype_is(cycle[at % cycle.len()])).0;
        at += 1;
    }
    assert_eq!(sends, 3);
    let caps = neg.capabilities();
    assert_eq!(caps.client.client_name.as_deref(), Some("MUDLET"));
    assert_eq!(caps.client.terminal_type.as_deref(), Some("ANSI-TRUECOLOR"));
    assert_eq!(caps.client.mtts, Some(2349));

    // Even without an MTTS entry, coming back to the first name ends it.
    let cycle = ["MUDLET", "ANSI-TRUECOLOR"];
    let mut neg = started();
    let (mut out, _) = feed(&mut neg, &cmd(WILL, TTYPE));
    let mut sends = 0;
    let mut at = 0;
    while count(&out, TTYPE_SEND) > 0 {
        sends += 1;
        assert!(sends <= MAX_TTYPE_REQUESTS, "TTYPE loop");
        out = feed(&mut neg, &ttype_is(cycle[at % cycle.len()])).0;
        at += 1;
    }
    assert_eq!(sends, 3);
}

#[test]
fn telnetlib3_same_answer_every_time_stops_after_the_repeat() {
    let mut neg = started();
    let mut sends = count(&feed(&mut neg, &cmd(WILL, TTYPE)).0, TTYPE_SEND);
    for _ in 0..2 {
        sends += count(&feed(&mut neg, &ttype_is("xterm-256color")).0, TTYPE_SEND);
    }
    assert_eq!(sends, 2);
    let caps = neg.capabilities();
    assert_eq!(caps.client.terminal_type.as_deref(), Some("xterm-256color"));
    assert_eq!(caps.client.mtts, None);
    assert_eq!(caps.color_depth(), ColorDepth::Ansi256);
}

#[test]
fn ttype_client_that_never_repeats_is_asked_a_bounded_number_of_times() {
    let mut neg = started();
    let (mut out, _) = feed(&mut neg, &cmd(WILL, TTYPE));
    let mut sends = 0;
    while count(&out, TTYPE_SEND) > 0 {
        sends += 1;
        assert!(sends <= 10, "TTYPE loop");
        out = feed(&mut neg, &ttype_is(&format!("NAME{sends}"))).0;
    }
    assert_eq!(sends, MAX_TTYPE_REQUESTS);
}

#[test]
fn ttype_renegotiation_restarts_the_cycle() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, TTYPE));
    feed(&mut neg, &ttype_is("MUDLET"));
    assert_eq!(feed(&mut neg, &cmd(WONT, TTYPE)).0, cmd(DONT, TTYPE));
    // The reply to the SEND that was out is no longer expected.
    assert!(feed(&mut neg, &ttype_is("ANSI-TRUECOLOR")).0.is_empty());
    let (out, _) = feed(&mut neg, &cmd(WILL, TTYPE));
    assert_eq!(out, [cmd(DO, TTYPE), TTYPE_SEND.to_vec()].concat());
    // "MUDLET" again is the start of the new cycle, not a repeat.
    assert_eq!(feed(&mut neg, &ttype_is("MUDLET")).0, TTYPE_SEND);
}

#[test]
fn ttype_before_will_or_malformed_is_ignored() {
    let mut neg = started();
    assert_eq!(feed(&mut neg, &ttype_is("SNEAKY")), (vec![], vec![]));
    feed(&mut neg, &cmd(WILL, TTYPE));
    // SEND instead of IS, and an empty SB: ignored without a panic.
    assert_eq!(feed(&mut neg, &sb(TTYPE, &[0x01])), (vec![], vec![]));
    assert_eq!(feed(&mut neg, &sb(TTYPE, &[])), (vec![], vec![]));
    assert_eq!(neg.capabilities().client.client_name, None);
}

#[test]
fn mtts_screen_reader_bit() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, TTYPE));
    for reply in ["MUDLET", "ANSI-TRUECOLOR", "MTTS 333"] {
        feed(&mut neg, &ttype_is(reply));
    }
    assert!(neg.capabilities().client.screen_reader);
    assert_eq!(neg.capabilities().color_depth(), ColorDepth::None);
}

// ---- NAWS ----

#[test]
fn naws_sizes_including_255_and_240() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, NAWS));
    let (out, events) = feed(&mut neg, &sb(NAWS, &[0, 80, 0, 24]));
    assert!(out.is_empty());
    assert_eq!(events, vec![ClientEvent::CapabilitiesChanged]);
    assert_eq!(neg.capabilities().client.width, Some(80));
    assert_eq!(neg.capabilities().client.height, Some(24));

    // Width 255: the client doubles the byte, the parser undoes it.
    let (_, events) = feed(&mut neg, &[IAC, SB, NAWS, 0, IAC, IAC, 0, 0xF0, IAC, SE]);
    assert_eq!(events, vec![ClientEvent::CapabilitiesChanged]);
    assert_eq!(neg.capabilities().client.width, Some(255));
    assert_eq!(neg.capabilities().client.height, Some(240));

    // 0xFFFF and an old client that does not double 255.
    feed(&mut neg, &sb(NAWS, &[0xFF, 0xFF, 0x01, 0x00]));
    assert_eq!(neg.capabilities().client.width, Some(0xFFFF));
    feed(&mut neg, &[IAC, SB, NAWS, 0, IAC, 0, 50, IAC, SE]);
    assert_eq!(neg.capabilities().client.width, Some(255));
    assert_eq!(neg.capabilities().client.height, Some(50));

    // Same size again: nothing changed, no event.
    assert!(
        feed(&mut neg, &[IAC, SB, NAWS, 0, IAC, IAC, 0, 50, IAC, SE])
            .1
            .is_empty()
    );
    // Zero is "unknown".
    feed(&mut neg, &sb(NAWS, &[0, 0, 0, 0]));
    assert_eq!(neg.capabilities().client.width, None);
    assert_eq!(neg.capabilities().client.height, None);
}

#[test]
fn naws_malformed_or_unagreed_is_ignored() {
    let mut neg = started();
    assert!(feed(&mut neg, &sb(NAWS, &[0, 80, 0, 24])).1.is_empty());
    assert_eq!(neg.capabilities().client.width, None);
    feed(&mut neg, &cmd(WILL, NAWS));
    assert!(feed(&mut neg, &sb(NAWS, &[0, 80, 0])).1.is_empty());
    assert!(feed(&mut neg, &sb(NAWS, &[0, 80, 0, 24, 0])).1.is_empty());
    assert_eq!(neg.capabilities().client.width, None);
}

// ---- NEW-ENVIRON / MNES ----

fn env_var(name: &str, value: &str) -> Vec<u8> {
    let mut data = vec![0x00];
    data.extend_from_slice(name.as_bytes());
    data.push(0x01);
    data.extend_from_slice(value.as_bytes());
    data
}

#[test]
fn gmcp_names_from_clients_are_matched_without_regard_to_case() {
    let mut neg = started();
    feed(&mut neg, &cmd(DO, GMCP));
    // As TinTin++ scripts and telnetlib3 send them.
    feed(
        &mut neg,
        &gmcp(r#"core.supports.set ["room 1","comm.channel 1"]"#),
    );
    let mut out = Vec::new();
    assert!(neg.gmcp_message("Room.Info", "{}", &mut out));
    assert!(neg.gmcp_message("Comm.Channel.Text", "{}", &mut out));
    assert!(!neg.gmcp_message("Char.Vitals", "{}", &mut out));
    // What goes out keeps the game's spelling.
    assert!(out.windows(9).any(|w| w == b"Room.Info"));
    let (answer, _) = feed(&mut neg, &gmcp("core.ping"));
    assert_eq!(
        answer,
        [&[IAC, SB, GMCP][..], b"Core.Ping", &[IAC, SE]].concat()
    );
}

#[test]
fn new_environ_send_bytes() {
    let mut neg = started();
    let (out, _) = feed(&mut neg, &cmd(WILL, NEW_ENVIRON));
    assert_eq!(out, [0xFF, 0xFA, 0x27, 0x01, 0x00, 0xFF, 0xF0]);
    assert_eq!(out, ENVIRON_SEND);
}

#[test]
fn new_environ_one_subnegotiation_per_variable_tintin() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, NEW_ENVIRON));
    for (name, value) in [
        ("CLIENT_NAME", "TINTIN++"),
        ("CLIENT_VERSION", "2.02.20"),
        ("CHARSET", "UTF-8"),
        ("MTTS", "271"),
        ("TERMINAL_TYPE", "tmux-256color"),
        ("IPADDRESS", "10.0.0.1"),
    ] {
        let mut data = vec![0x00];
        data.extend(env_var(name, value));
        feed(&mut neg, &sb(NEW_ENVIRON, &data));
    }
    let caps = neg.capabilities();
    assert_eq!(caps.client.client_name.as_deref(), Some("TINTIN++"));
    assert_eq!(caps.client.client_version.as_deref(), Some("2.02.20"));
    assert_eq!(caps.client.terminal_type.as_deref(), Some("tmux-256color"));
    assert_eq!(caps.client.mtts, Some(271));
    assert_eq!(caps.client.charset, Charset::Utf8);
}

#[test]
fn new_environ_many_variables_in_one_subnegotiation() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, NEW_ENVIRON));
    let mut data = vec![0x00];
    data.extend(env_var("CLIENT_NAME", "Mudlet"));
    data.extend(env_var("CLIENT_VERSION", "4.19.1"));
    // USERVAR, an undefined VAR (no VAL) and an empty value: harmless.
    data.extend_from_slice(b"\x03LANG\x01en_GB\x00TERMINAL_TYPE\x00MTTS\x01");
    // ESC makes marker bytes literal in a value.
    data.extend_from_slice(b"\x00USER\x01a\x02\x01b");
    let (_, events) = feed(&mut neg, &sb(NEW_ENVIRON, &data));
    assert_eq!(events, vec![ClientEvent::CapabilitiesChanged]);
    let caps = neg.capabilities();
    assert_eq!(caps.client.client_name.as_deref(), Some("Mudlet"));
    assert_eq!(caps.client.client_version.as_deref(), Some("4.19.1"));
    assert_eq!(caps.client.terminal_type, None);
    assert_eq!(caps.client.mtts, None);
    assert_eq!(
        parse_environ(b"\x00USER\x01a\x02\x01b\x00X"),
        vec![
            ("USER".to_string(), Some("a\x01b".to_string())),
            ("X".to_string(), None),
        ]
    );
    // A truncated ESC at the end and junk before the first VAR.
    assert_eq!(
        parse_environ(b"junk\x00A\x01b\x02"),
        vec![("A".to_string(), Some("b".to_string()))]
    );
}

#[test]
fn new_environ_info_updates_and_name_beats_ttype() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, NEW_ENVIRON));
    feed(&mut neg, &cmd(WILL, TTYPE));
    let mut data = vec![0x00];
    data.extend(env_var("CLIENT_NAME", "Blightmud"));
    feed(&mut neg, &sb(NEW_ENVIRON, &data));
    // TTYPE's first reply is only a guess at the name.
    feed(&mut neg, &ttype_is("BLIGHTMUD"));
    assert_eq!(
        neg.capabilities().client.client_name.as_deref(),
        Some("Blightmud")
    );

    let mut info = vec![0x02];
    info.extend(env_var("MTTS", "2831"));
    feed(&mut neg, &sb(NEW_ENVIRON, &info));
    assert_eq!(neg.capabilities().client.mtts, Some(2831));
    // A SEND from the client is not an answer.
    assert!(feed(&mut neg, &sb(NEW_ENVIRON, &[0x01])).1.is_empty());
}

#[test]
fn new_environ_latin1_charset_applies_until_a_charset_exchange() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, NEW_ENVIRON));
    let mut data = vec![0x00];
    data.extend(env_var("CHARSET", "ISO-8859-1"));
    let (_, events) = feed(&mut neg, &sb(NEW_ENVIRON, &data));
    assert_eq!(
        events,
        vec![
            ClientEvent::CharsetDecided(Charset::Latin1),
            ClientEvent::CapabilitiesChanged
        ]
    );
    // The CHARSET exchange is authoritative.
    feed(&mut neg, &cmd(WILL, CHARSET));
    feed(&mut neg, &sb(CHARSET, b"\x02UTF-8"));
    assert_eq!(neg.capabilities().client.charset, Charset::Utf8);
    assert!(feed(&mut neg, &sb(NEW_ENVIRON, &data)).1.is_empty());
    assert_eq!(neg.capabilities().client.charset, Charset::Utf8);
}

// ---- CHARSET ----

#[test]
fn charset_request_bytes_after_will() {
    let mut neg = started();
    let (out, _) = feed(&mut neg, &cmd(WILL, CHARSET));
    assert_eq!(
        out,
        [
            0xFF, 0xFA, 0x2A, 0x01, b';', b'U', b'T', b'F', b'-', b'8', 0xFF, 0xF0
        ]
    );
    assert_eq!(out, CHARSET_REQUEST_UTF8);
    // A DO from the client too does not ask twice.
    let (out, _) = feed(&mut neg, &cmd(DO, CHARSET));
    assert_eq!(out, cmd(WILL, CHARSET));
}

#[test]
fn charset_accepted_is_utf8() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, CHARSET));
    let (out, events) = feed(
        &mut neg,
        &[
            IAC, SB, CHARSET, 0x02, b'U', b'T', b'F', b'-', b'8', IAC, SE,
        ],
    );
    assert!(out.is_empty());
    assert_eq!(events, vec![ClientEvent::CharsetDecided(Charset::Utf8)]);
    assert_eq!(neg.capabilities().client.charset, Charset::Utf8);
    // A second answer to the same request is ignored.
    assert!(feed(&mut neg, &sb(CHARSET, &[0x03])).1.is_empty());
    assert_eq!(neg.capabilities().client.charset, Charset::Utf8);
}

#[test]
fn charset_rejected_falls_back_to_latin1() {
    let mut neg = started();
    feed(&mut neg, &cmd(WILL, CHARSET));
    let (out, events) = feed(&mut neg, &[IAC, SB, CHARSET, 0x03, IAC, SE]);
    assert!(out.is_empty());
    assert_eq!(
        events,
        vec![
            ClientEvent::CharsetDecided(Charset::Latin1),
            ClientEvent::CapabilitiesChanged
        ]
    );
    assert_eq!(neg.capabilities().client.charset, Charset::Latin1);
}

#[test]
fn charset_refused_altogether_keeps_utf8() {
    let mut neg = started();
    let (out, events) = feed(&mut neg, &cmd(WONT, CHARSET));
    assert!(out.is_empty() && events.is_empty());
    assert_eq!(neg.capabilities().client.charset, Charset::Utf8);
    // And answers to a request never made are ignored.
    assert!(feed(&mut neg, &sb(CHARSET, &[0x03])).1.is_empty());
    assert_eq!(neg.capabilities().client.charset, Charset::Utf8);
}

#[test]
fn charset_request_from_the_client() {
    // The client asks first (it sent DO CHARSET), listing its charsets.
    let mut neg = Negotiation::new();
    assert_eq!(
        feed(&mut neg, &cmd(DO, CHARSET)).0,
        [cmd(WILL, CHARSET), CHARSET_REQUEST_UTF8.to_vec()].concat()
    );
    // While ours is out, the server's request wins: theirs is ignored.
    assert!(
        feed(&mut neg, &sb(CHARSET, b"\x01 ISO-8859-1"))
            .0
            .is_empty()
    );
    feed(&mut neg, &sb(CHARSET, b"\x03"));
    assert_eq!(neg.capabilities().client.charset, Charset::Latin1);

    // Now nothing is outstanding: a request is answered.
    let (out, events) = feed(&mut neg, &sb(CHARSET, b"\x01;ISO-8859-1;utf-8"));
    assert_eq!(out, sb(CHARSET, b"\x02utf-8"));
    assert_eq!(events[0], ClientEvent::CharsetDecided(Charset::Utf8));
    let (out, events) = feed(&mut neg, &sb(CHARSET, b"\x01[TTABLE]\x01 KOI8-R latin1"));
    assert_eq!(out, sb(CHARSET, b"\x02latin1"));
    assert_eq!(events[0], ClientEvent::CharsetDecided(Charset::Latin1));
    let (out, events) = feed(&mut neg, &sb(CHARSET, b"\x01;KOI8-R;SHIFT_JIS"));
    assert_eq!(out, sb(CHARSET, b"\x03"));
    assert!(events.is_empty());
    let (out, _) = feed(&mut neg, &sb(CHARSET, b"\x01"));
    assert_eq!(out, sb(CHARSET, b"\x03"));
}

#[test]
fn charset_encode() {
    let mut out = Vec::new();
    encode_text(
        Charset::Latin1,
        "caf\u{e9} \u{20ac}5 \u{ff}\nok\r\n",
        &mut out,
    );
    assert_eq!(out, b"caf\xE9 ?5 \xFF\xFF\r\nok\r\n");

    let mut out = Vec::new();
    encode_text(Charset::Utf8, "caf\u{e9}\n", &mut out);
    assert_eq!(out, "caf\u{e9}\r\n".as_bytes());
}

// ---- EOR / GA / SGA ----

#[test]
fn prompt_end_eor_vs_ga_vs_sga() {
    let mut neg = started();
    assert_eq!(neg.prompt_end(), [IAC, GA]);
    feed(&mut neg, &cmd(DO, EOR));
    assert_eq!(neg.prompt_end(), [IAC, 0xEF]);
    feed(&mut neg, &cmd(DONT, EOR));
    assert_eq!(neg.prompt_end(), [0xFF, 0xF9]);

    // SGA is not offered, but a client asking for it gets it...
    let (out, _) = feed(&mut neg, &cmd(DO, SGA));
    assert_eq!(out, cmd(WILL, SGA));
    // ...and then no GA at all.
    assert_eq!(neg.prompt_end(), b"");
    // EOR still wins when both are agreed.
    feed(&mut neg, &cmd(DO, EOR));
    assert_eq!(neg.prompt_end(), [IAC, 0xEF]);
}

#[test]
fn ga_is_never_sent_for_an_agreed_sga() {
    let mut neg = started();
    feed(&mut neg, &cmd(DONT, EOR));
    feed(&mut neg, &cmd(DO, SGA));
    assert!(!neg.prompt_end().contains(&GA));
    // The client's own SGA is irrelevant to what we send.
    let mut neg = started();
    assert_eq!(feed(&mut neg, &cmd(WILL, SGA)).0, cmd(DO, SGA));
    assert_eq!(neg.prompt_end(), [IAC, GA]);
}

// ---- ECHO ----

#[test]
fn hide_then_show_never_leaves_will_echo_on() {
    let mut neg = started();
    let mut out = Vec::new();
    neg.hide_input(true, &mut out);
    assert_eq!(out, [0xFF, 0xFB, 0x01]);
    // Asking again while in flight or on sends nothing.
    out.clear();
    neg.hide_input(true, &mut out);
    assert!(out.is_empty());
    assert!(feed(&mut neg, &cmd(DO, ECHO)).0.is_empty());
    assert!(neg.local_enabled(ECHO));
    neg.hide_input(true, &mut out);
    assert!(out.is_empty());

    neg.hide_input(false, &mut out);
    assert_eq!(out, [0xFF, 0xFC, 0x01]);
    assert!(feed(&mut neg, &cmd(DONT, ECHO)).0.is_empty());
    assert!(!neg.local_enabled(ECHO));
    out.clear();
    neg.hide_input(false, &mut out);
    assert!(out.is_empty());
}

#[test]
fn show_before_the_client_answered_is_queued() {
    let mut neg = started();
    let mut out = Vec::new();
    neg.hide_input(true, &mut out);
    neg.hide_input(false, &mut out);
    // Only the WILL went out; the WONT waits for the client's answer.
    assert_eq!(out, cmd(WILL, ECHO));
    let (out, _) = feed(&mut neg, &cmd(DO, ECHO));
    assert_eq!(out, cmd(WONT, ECHO));
    assert!(!neg.local_enabled(ECHO));
    assert!(feed(&mut neg, &cmd(DONT, ECHO)).0.is_empty());
    assert!(!neg.local_enabled(ECHO));

    // Same with a refusal: nothing more is sent, echo stays off.
    let mut neg = started();
    let mut out = Vec::new();
    neg.hide_input(true, &mut out);
    neg.hide_input(false, &mut out);
    assert!(feed(&mut neg, &cmd(DONT, ECHO)).0.is_empty());
    assert!(!neg.local_enabled(ECHO));
}

#[test]
fn rapid_toggling_collapses_to_one_exchange() {
    let mut neg = started();
    let mut out = Vec::new();
    for _ in 0..5 {
        neg.hide_input(true, &mut out);
        neg.hide_input(false, &mut out);
    }
    neg.hide_input(true, &mut out);
    assert_eq!(out, cmd(WILL, ECHO));
    // Hide wins in the end: the client's DO is accepted silently.
    assert!(feed(&mut neg, &cmd(DO, ECHO)).0.is_empty());
    assert!(neg.local_enabled(ECHO));

    // Show while hiding is being turned off, then hide again: queued.
    let mut out = Vec::new();
    neg.hide_input(false, &mut out);
    neg.hide_input(true, &mut out);
    neg.hide_input(false, &mut out);
    assert_eq!(out, cmd(WONT, ECHO));
    assert!(feed(&mut neg, &cmd(DONT, ECHO)).0.is_empty());
    assert!(!neg.local_enabled(ECHO));
}

#[test]
fn unsolicited_do_echo_is_refused() {
    let mut neg = started();
    assert_eq!(feed(&mut neg, &cmd(DO, ECHO)).0, cmd(WONT, ECHO));
    assert!(!neg.local_enabled(ECHO));
    // But while a password prompt is up, a client asking for it gets it.
    let mut out = Vec::new();
    neg.hide_input(true, &mut out);
    feed(&mut neg, &cmd(DONT, ECHO));
    assert_eq!(feed(&mut neg, &cmd(DO, ECHO)).0, cmd(WILL, ECHO));
    neg.hide_input(false, &mut out);
    assert!(out.ends_with(&cmd(WONT, ECHO)));
}

// ---- GMCP ----

#[test]
fn gmcp_core_hello_lowercase_and_capitalised_keys() {
    let mut neg = with_gmcp();
    let (out, events) = feed(
        &mut neg,
        &gmcp(r#"Core.Hello {"client":"Mudlet","version":"4.19.1"}"#),
    );
    assert!(out.is_empty());
    assert_eq!(events, vec![ClientEvent::CapabilitiesChanged]);
    assert_eq!(
        neg.capabilities().client.client_name.as_deref(),
        Some("Mudlet")
    );
    assert_eq!(
        neg.capabilities().client.client_version.as_deref(),
        Some("4.19.1")
    );

    let mut neg = with_gmcp();
    feed(
        &mut neg,
        &gmcp(r#"Core.Hello { "Client": "MUSHclient", "Version": 5.07 }"#),
    );
    assert_eq!(
        neg.capabilities().client.client_name.as_deref(),
        Some("MUSHclient")
    );
    assert_eq!(
        neg.capabilities().client.client_version.as_deref(),
        Some("5.07")
    );
}

#[test]
fn gmcp_supports_set_add_remove_filtering() {
    let mut neg = with_gmcp();
    let mut out = Vec::new();
    // Before Core.Supports only Core.* goes out.
    assert!(!neg.gmcp_message("Char.Vitals", r#"{"hp":1}"#, &mut out));
    assert!(neg.gmcp_message("Core.Goodbye", "", &mut out));
    out.clear();

    feed(
        &mut neg,
        &gmcp(r#"Core.Supports.Set ["Char 1", "Room 1", "Comm.Channel 1"]"#),
    );
    assert!(neg.gmcp_message("Char.Vitals", r#"{"hp":1}"#, &mut out));
    assert!(neg.gmcp_message("Char", "{}", &mut out));
    assert!(neg.gmcp_message("Room.Info", "{}", &mut out));
    assert!(neg.gmcp_message("Comm.Channel.Text", "{}", &mut out));
    assert!(!neg.gmcp_message("Comm.Other", "{}", &mut out));
    // Matched without regard to case (clients differ), and "Char" does not cover "Charm".
    assert!(neg.gmcp_message("char.Vitals", "{}", &mut out));
    assert!(!neg.gmcp_message("Charm", "{}", &mut out));

    feed(&mut neg, &gmcp(r#"Core.Supports.Add ["Client.GUI 2"]"#));
    assert!(neg.gmcp_message("Client.GUI", "{}", &mut out));

    feed(&mut neg, &gmcp(r#"Core.Supports.Remove ["Room"]"#));
    assert!(!neg.gmcp_message("Room.Info", "{}", &mut out));
    assert!(neg.gmcp_message("Char.Vitals", "{}", &mut out));

    // Set replaces the whole list.
    feed(&mut neg, &gmcp(r#"Core.Supports.Set ["Room 1"]"#));
    assert!(!neg.gmcp_message("Char.Vitals", "{}", &mut out));
    assert!(neg.gmcp_message("Room.Info", "{}", &mut out));
    assert!(!neg.gmcp_message("Client.GUI", "{}", &mut out));
}

#[test]
fn gmcp_message_bytes_with_ff_escaped() {
    let mut neg = with_gmcp();
    feed(&mut neg, &gmcp(r#"Core.Supports.Set ["Room 1"]"#));
    let mut out = Vec::new();
    assert!(neg.gmcp_message("Room.Info", r#"{"num":1,"name":"\u00ff"}"#, &mut out));
    assert_eq!(
        out,
        [
            &[IAC, SB, GMCP][..],
            br#"Room.Info {"num":1,"name":"\u00ff"}"#,
            &[IAC, SE]
        ]
        .concat()
    );
    // Raw UTF-8 never contains 0xFF, but a payload byte 0xFF is doubled anyway.
    let mut out = Vec::new();
    assert!(neg.gmcp_message("Core.Ping", "", &mut out));
    assert_eq!(out, b"\xFF\xFA\xC9Core.Ping\xFF\xF0");
    let mut out = Vec::new();
    let mut expected = Vec::new();
    telnet::subnegotiation(GMCP, "Room.Info \"\u{ff}\"".as_bytes(), &mut expected);
    assert!(neg.gmcp_message("Room.Info", "\"\u{ff}\"", &mut out));
    assert_eq!(out, expected);
    let mut escaped = Vec::new();
    telnet::subnegotiation(GMCP, &[b'x', 0xFF], &mut escaped);
    assert_eq!(escaped, [IAC, SB, GMCP, b'x', IAC, IAC, IAC, SE]);
}

#[test]
fn gmcp_not_sent_before_the_client_agreed() {
    let mut neg = started();
    let mut out = Vec::new();
    assert!(!neg.gmcp_message("Core.Ping", "", &mut out));
    feed(&mut neg, &cmd(DO, GMCP));
    feed(&mut neg, &gmcp(r#"Core.Supports.Set ["Char 1"]"#));
    assert!(neg.gmcp_message("Char.Vitals", "{}", &mut out));
    feed(&mut neg, &cmd(DONT, GMCP));
    assert!(!neg.capabilities().client.gmcp);
    assert!(!neg.gmcp_message("Char.Vitals", "{}", &mut out));
    // Re-enabled GMCP starts without the old package list.
    feed(&mut neg, &cmd(DO, GMCP));
    assert!(!neg.gmcp_message("Char.Vitals", "{}", &mut out));
    // Package names with spaces or nothing are never written.
    assert!(!neg.gmcp_message("", "{}", &mut out));
    assert!(!neg.gmcp_message("Core. Ping", "{}", &mut out));
}

#[test]
fn gmcp_core_ping_is_answered_with_a_bare_ping() {
    let mut neg = with_gmcp();
    let (out, events) = feed(&mut neg, &gmcp("Core.Ping"));
    assert_eq!(out, b"\xFF\xFA\xC9Core.Ping\xFF\xF0");
    assert!(events.is_empty());
    let (out, _) = feed(&mut neg, &gmcp("Core.Ping 120"));
    assert_eq!(out, b"\xFF\xFA\xC9Core.Ping\xFF\xF0");
    // No answer before GMCP was agreed.
    let mut neg = started();
    assert!(feed(&mut neg, &gmcp("Core.Ping")).0.is_empty());
}

#[test]
fn malformed_gmcp_is_ignored() {
    let mut neg = with_gmcp();
    feed(&mut neg, &gmcp(r#"Core.Supports.Set ["Char 1"]"#));
    let before = neg.capabilities().clone();
    for bad in [
        &b"Core.Hello {\"client\":"[..],
        b"Core.Hello [\"Mudlet\"]",
        b"Core.Hello \"Mudlet\"",
        b"Core.Supports.Set {\"Room\":1}",
        b"Core.Supports.Set Room 1",
        b"Core.Supports.Remove",
        b"Char.Login {not json}",
        b"Char.Login {\"name\":\"a\"} trailing",
        b"\xFF\xFE not utf-8",
        b"",
        b"   ",
        b" {\"a\":1}",
        b"Bad\x01Name {}",
    ] {
        let (out, events) = feed(&mut neg, &sb(GMCP, bad));
        assert!(out.is_empty(), "{bad:?}");
        assert!(events.is_empty(), "{bad:?}: {events:?}");
    }
    assert_eq!(neg.capabilities(), &before);
    // Bad entries in an otherwise good list are skipped one by one.
    feed(
        &mut neg,
        &gmcp(r#"Core.Supports.Add ["Room 1", 5, "", "Comm x"]"#),
    );
    let mut out = Vec::new();
    for package in ["Char.Vitals", "Comm.Channel", "Room.Info"] {
        assert!(neg.gmcp_message(package, "{}", &mut out), "{package}");
    }
    assert!(!neg.gmcp_message("Client.GUI", "{}", &mut out));
}

#[test]
fn gmcp_other_packages_go_to_the_game() {
    let mut neg = with_gmcp();
    let (out, events) = feed(&mut neg, &gmcp("Char.Login {\"name\": \"Bob\"} "));
    assert!(out.is_empty());
    assert_eq!(
        events,
        vec![ClientEvent::Gmcp {
            package: "Char.Login".to_string(),
            json: Some("{\"name\": \"Bob\"}".to_string()),
        }]
    );
    let (_, events) = feed(&mut neg, &gmcp("External.Discord.Hello"));
    assert_eq!(
        events,
        vec![ClientEvent::Gmcp {
            package: "External.Discord.Hello".to_string(),
            json: None,
        }]
    );
    // Before DO GMCP the client's messages are not acted on.
    let mut neg = started();
    assert!(feed(&mut neg, &gmcp("Char.Login {}")).1.is_empty());
}

// ---- MSSP ----

#[test]
fn mssp_requested_and_reply_bytes() {
    let mut neg = started();
    let (out, events) = feed(&mut neg, &cmd(DO, MSSP));
    assert!(out.is_empty());
    assert_eq!(events, vec![ClientEvent::MsspRequested]);
    // A repeated DO is no new request.
    assert!(feed(&mut neg, &cmd(DO, MSSP)).1.is_empty());

    let mut out = Vec::new();
    Negotiation::mssp_reply(
        &vars(&[("NAME", "x"), ("PLAYERS", "3"), ("UPTIME", "1700000000")]),
        &mut out,
    );
    assert_eq!(
        out,
        [
            &[0xFF, 0xFA, 0x46][..],
            b"\x01NAME\x02x\x01PLAYERS\x023\x01UPTIME\x021700000000",
            &[0xFF, 0xF0]
        ]
        .concat()
    );
    // Marker bytes inside values would split fields: dropped.
    let mut out = Vec::new();
    Negotiation::mssp_reply(&vars(&[("NAME", "a\u{1}b\u{2}c")]), &mut out);
    assert_eq!(out, b"\xFF\xFA\x46\x01NAME\x02abc\xFF\xF0");
}

#[test]
fn mssp_plain_text_fallback() {
    let text = Negotiation::mssp_plain(&vars(&[
        ("NAME", "tether"),
        ("PLAYERS", "3"),
        ("UPTIME", "1700000000"),
        ("CODEBASE", "a\tb\nc"),
    ]));
    assert_eq!(
        text,
        "MSSP-REPLY-START\nNAME\ttether\nPLAYERS\t3\nUPTIME\t1700000000\nCODEBASE\ta b c\nMSSP-REPLY-END\n"
    );
    let mut wire = Vec::new();
    encode_text(Charset::Utf8, &text, &mut wire);
    assert!(wire.starts_with(b"MSSP-REPLY-START\r\nNAME\ttether\r\n"));
    assert_eq!(MSSP_REQUEST, "MSSP-REQUEST");
}

// ---- MCCP2 ----

#[test]
fn mccp2_start_in_one_write_and_dont_stops() {
    let mut neg = started();
    let (out, events) = feed(&mut neg, &cmd(DO, MCCP2));
    assert!(out.is_empty());
    assert_eq!(events, vec![ClientEvent::StartCompression]);
    assert!(neg.local_enabled(MCCP2));
    // The session's start: the whole marker in one buffer, then zlib.
    let mut write = out;
    let mut compressor = crate::mccp::Compressor::start(&mut write).expect("a stream");
    assert_eq!(write, [0xFF, 0xFA, 0x56, 0xFF, 0xF0]);
    compressor.compress(b"hello\r\n", &mut write);
    // A zlib header (deflate, 4 KiB window), not raw deflate.
    assert_eq!(write[5], 0x48);

    // A repeated DO does not restart it.
    assert!(feed(&mut neg, &cmd(DO, MCCP2)).1.is_empty());

    let (out, events) = feed(&mut neg, &cmd(DONT, MCCP2));
    assert_eq!(out, cmd(WONT, MCCP2));
    assert_eq!(events, vec![ClientEvent::StopCompression]);
    assert!(!neg.local_enabled(MCCP2));
    let mut tail = Vec::new();
    compressor.finish(&mut tail);
    assert!(!tail.is_empty());
}

#[test]
fn mccp_v1_is_never_offered_nor_accepted() {
    let mut neg = Negotiation::new();
    let mut out = Vec::new();
    neg.start(&mut out);
    assert!(!out.windows(3).any(|w| w == cmd(WILL, MCCP1)));
    let (out, events) = feed(&mut neg, &cmd(DO, MCCP1));
    assert_eq!(out, cmd(WONT, MCCP1));
    assert!(events.is_empty());
}

// ---- colour ----

#[test]
fn color_depth_hints() {
    let caps = |mtts: Option<u32>, terminal: Option<&str>, client: Option<&str>| Capabilities {
        client: ClientInfo {
            mtts,
            terminal_type: terminal.map(str::to_string),
            client_name: client.map(str::to_string),
            ..ClientInfo::default()
        },
        ..Capabilities::default()
    };
    use ColorDepth as C;
    for (c, expected) in [
        (caps(None, None, None), C::None),
        (caps(Some(1), None, None), C::Ansi16),
        (caps(Some(9), None, None), C::Ansi256),
        (caps(Some(271), None, None), C::TrueColor),
        (caps(Some(0), Some("xterm-256color"), None), C::None),
        (caps(Some(256 | 64), None, None), C::None),
        (caps(None, Some("xterm-256color"), None), C::Ansi256),
        (caps(None, Some("tmux-256color"), None), C::Ansi256),
        (caps(None, Some("xterm-truecolor"), None), C::TrueColor),
        (caps(None, Some("ANSI-TRUECOLOR"), None), C::TrueColor),
        (caps(None, Some("xterm-direct"), None), C::TrueColor),
        (caps(None, Some("XTERM"), None), C::Ansi16),
        (caps(None, Some("ANSI"), None), C::Ansi16),
        (caps(None, Some("dumb"), None), C::None),
        (caps(None, Some("WHATEVER"), None), C::Ansi16),
        (caps(None, None, Some("MUDLET")), C::TrueColor),
        (caps(None, None, Some("TinTin++")), C::TrueColor),
        (caps(None, Some("ANSI"), Some("MUSHclient")), C::Ansi256),
    ] {
        assert_eq!(c.color_depth(), expected, "{c:?}");
    }
    let mut reader = caps(None, Some("xterm-256color"), None);
    reader.client.screen_reader = true;
    assert_eq!(reader.color_depth(), C::None);
}

// ---- a whole session ----

#[test]
fn tintin_like_session_transcript() {
    let mut neg = Negotiation::new();
    let mut opening = Vec::new();
    neg.start(&mut opening);
    // TinTin++ 2.02.20 refuses GMCP by default and accepts the rest.
    let answer = [
        cmd(DO, EOR),
        cmd(DONT, GMCP),
        cmd(DO, MSSP),
        cmd(DO, MCCP2),
        cmd(WILL, TTYPE),
        cmd(WILL, NAWS),
        sb(NAWS, &[0, 200, 0, 50]),
        cmd(WILL, NEW_ENVIRON),
        cmd(WILL, CHARSET),
    ]
    .concat();
    let (out, events) = feed(&mut neg, &answer);
    assert_eq!(
        out,
        [TTYPE_SEND, ENVIRON_SEND, CHARSET_REQUEST_UTF8].concat()
    );
    assert_eq!(
        events,
        vec![
            // eor, then the window size.
            ClientEvent::CapabilitiesChanged,
            ClientEvent::MsspRequested,
            ClientEvent::StartCompression,
            ClientEvent::CapabilitiesChanged,
        ]
    );
    let (out, events) = feed(&mut neg, &sb(CHARSET, b"\x02UTF-8"));
    assert!(out.is_empty());
    assert_eq!(events, vec![ClientEvent::CharsetDecided(Charset::Utf8)]);
    for reply in ["TINTIN++", "tmux-256color", "MTTS 271"] {
        feed(&mut neg, &ttype_is(reply));
    }
    let caps = neg.capabilities();
    assert!(caps.eor && !caps.client.gmcp && neg.local_enabled(MCCP2));
    assert_eq!(
        (caps.client.width, caps.client.height),
        (Some(200), Some(50))
    );
    assert_eq!(caps.client.client_name.as_deref(), Some("TINTIN++"));
    assert_eq!(neg.prompt_end(), [IAC, 0xEF]);
}
