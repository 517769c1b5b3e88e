//! Telnet options through the real proxy and core, byte by byte: what a client that speaks
//! them sees, and that what negotiation learned survives a core reload.

use tether_tests::{RawClient, Tether, find};

const IAC: u8 = 255;
const WILL: u8 = 251;
const WONT: u8 = 252;
const DO: u8 = 253;
const DONT: u8 = 254;
const SB: u8 = 250;
const SE: u8 = 240;
const EOR: u8 = 239;
const ECHO: u8 = 1;
const TTYPE: u8 = 24;
const TELOPT_EOR: u8 = 25;
const NAWS: u8 = 31;
const GMCP: u8 = 201;

fn sb(option: u8, data: &[u8]) -> Vec<u8> {
    [&[IAC, SB, option][..], data, &[IAC, SE]].concat()
}

/// Answers the opening offers like a MUD client: EOR and GMCP on, a TTYPE cycle with MTTS,
/// a 100x40 window.
fn negotiate_like_a_mud_client(client: &mut RawClient) {
    client.expect(&[IAC, WILL, TELOPT_EOR]);
    client.send(&[
        IAC, DO, TELOPT_EOR, IAC, DO, GMCP, IAC, WILL, TTYPE, IAC, WILL, NAWS,
    ]);
    client.send(&sb(NAWS, &[0, 100, 0, 40]));
    client.send(&sb(GMCP, br#"Core.Supports.Set ["Room 1", "Char 1"]"#));
    // The cycle ends at the MTTS answer: no fourth request.
    for answer in ["TESTCLIENT", "XTERM-256COLOR", "MTTS 9"] {
        client.expect(&[IAC, SB, TTYPE, 1, IAC, SE]);
        client.send(&sb(TTYPE, &[&[0u8][..], answer.as_bytes()].concat()));
    }
}

#[test]
fn password_prompts_hide_input_and_nothing_else_does() {
    let tether = Tether::start();
    let mut client = RawClient::connect(tether.telnet);
    client.expect(b"login>");
    client.send_line("create Secretive");
    let before_prompt = client.expect(b"Choose a password: ");
    assert!(
        find(&before_prompt, &[IAC, WILL, ECHO]).is_some(),
        "WILL ECHO comes before the password prompt"
    );
    // A client agrees to the server echoing (that is, to not echoing itself).
    client.send(&[IAC, DO, ECHO]);
    client.send_line("hunter2hunter2");
    let after = client.expect(b"Your character has been created.");
    assert!(
        find(&after, &[IAC, WONT, ECHO]).is_some(),
        "WONT ECHO right after the password"
    );
    client.send(&[IAC, DONT, ECHO]);
    client.send_line("say not a secret");
    let rest = client.expect(b"You say, \"not a secret\"");
    assert!(find(&rest, &[IAC, WILL, ECHO]).is_none());
    assert!(
        find(&client.received, b"hunter2").is_none(),
        "never echoed back"
    );
}

#[test]
fn eor_gmcp_colour_and_window_reach_the_client_and_survive_a_reload() {
    let tether = Tether::start();
    let mut client = RawClient::connect(tether.telnet);
    negotiate_like_a_mud_client(&mut client);
    client.send_line("create Mapper mapper123");
    let login = client.expect(b"Exits");
    assert!(
        find(&login, b"\x1b[").is_some(),
        "colour for a 256-colour client"
    );
    client.expect(&[IAC, EOR]);
    client.send_line("north");
    let moved = client.expect(b"Room.Info");
    assert!(find(&moved, &[IAC, SB, GMCP]).is_some());
    client.expect(&[IAC, SE]);

    client.send_line("client");
    client.expect(b"100x40");
    tether.reload();
    // The new core never saw the negotiation: it learned it from the proxy at attach.
    client.send_line("client");
    let after = client.expect(b"100x40");
    assert!(find(&after, b"TESTCLIENT").is_some());
    assert!(find(&after, b"MTTS 9").is_some());
}

#[test]
fn mssp_request_in_plain_text_is_answered_with_live_numbers() {
    let tether = Tether::start();
    let mut player = tether.connect();
    player.create("Counted", "counted1");
    let mut client = RawClient::connect(tether.telnet);
    client.expect(b"login>");
    client.send_line("MSSP-REQUEST");
    let reply = client.expect(b"MSSP-REPLY-END");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("MSSP-REPLY-START"), "{text}");
    assert!(text.contains("PLAYERS\t1"), "{text}");
    assert!(text.contains("NAME\t"), "{text}");
    assert!(text.contains("UPTIME\t"), "{text}");
}

#[test]
fn a_screen_reader_gets_plain_text_and_players_cannot_inject_colour() {
    let tether = Tether::start();
    let mut reader = RawClient::connect(tether.telnet);
    reader.expect(&[IAC, WILL, TELOPT_EOR]);
    reader.send(&[IAC, WILL, TTYPE]);
    for answer in ["READER", "XTERM", "MTTS 65"] {
        reader.expect(&[IAC, SB, TTYPE, 1, IAC, SE]);
        reader.send(&sb(TTYPE, &[&[0u8][..], answer.as_bytes()].concat()));
    }
    reader.send_line("create Listener listener1");
    let login = reader.expect(b"Exits");
    assert!(
        find(&login, b"\x1b").is_none(),
        "no escapes for a screen reader"
    );

    let mut speaker = RawClient::connect(tether.telnet);
    negotiate_like_a_mud_client(&mut speaker);
    speaker.send_line("create Painter painter1");
    speaker.expect(b"Exits");
    speaker.send_line("say {red}fake{/} \x1b[31mred");
    let heard = reader.expect(b"Painter says");
    let line_end = reader.expect(b"\r\n");
    let line = [heard, line_end].concat();
    assert!(
        find(&line, b"\x1b").is_none(),
        "{:?}",
        String::from_utf8_lossy(&line)
    );
    assert!(
        find(&line, b"{red}fake{/}").is_some(),
        "markup typed by a player shows as typed: {:?}",
        String::from_utf8_lossy(&line)
    );
}
