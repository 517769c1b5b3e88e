//! Telnet and web sessions follow the same rules: the same input cases run through a telnet
//! speaker and a web speaker must give the same lines for the core, the same notices for the
//! player, the same closes and the same GMCP decisions.

use tether_protocol::message::Delivery;

use crate::close::CloseReason;
use crate::line::MAX_LINE_BYTES;
use crate::relay::ToSession;
use crate::session::{Context, Speaker, TelnetSpeaker};
use crate::telnet::{IAC, TelnetEvent, TelnetParser, option};
use crate::web::{Frame, WebSpeaker};

/// One client, as the cases see it.
trait Client {
    fn line(&mut self, bytes: &[u8]) -> Result<Vec<String>, CloseReason>;
    fn gmcp(&mut self, text: &str) -> Result<Vec<String>, CloseReason>;
    fn deliver(&mut self, message: ToSession);
    /// What reached the player since the last look: notices, then GMCP messages.
    fn seen(&mut self) -> (Vec<String>, Vec<String>);
    fn named(&mut self) -> Option<String>;
}

struct Telnet(TelnetSpeaker, TelnetParser);

impl Telnet {
    fn new() -> Telnet {
        let mut speaker = TelnetSpeaker::new(1, Context::unlinked());
        speaker.greet();
        // A client that agrees to GMCP, as every GMCP client does.
        speaker
            .input(vec![IAC, crate::telnet::DO, option::GMCP])
            .expect("negotiation");
        let mut telnet = Telnet(speaker, TelnetParser::new());
        telnet.seen();
        telnet.named();
        telnet
    }
}

impl Client for Telnet {
    fn line(&mut self, bytes: &[u8]) -> Result<Vec<String>, CloseReason> {
        let mut typed = bytes.to_vec();
        typed.extend_from_slice(b"\r\n");
        self.0.input(typed)
    }

    fn gmcp(&mut self, text: &str) -> Result<Vec<String>, CloseReason> {
        let mut bytes = Vec::new();
        crate::telnet::subnegotiation(option::GMCP, text.as_bytes(), &mut bytes);
        self.0.input(bytes)
    }

    fn deliver(&mut self, message: ToSession) {
        self.0.message(message).expect("delivered");
    }

    fn seen(&mut self) -> (Vec<String>, Vec<String>) {
        let mut events = Vec::new();
        for bytes in self.0.take_output() {
            self.1.feed(&bytes, &mut events);
        }
        let mut text = Vec::new();
        let mut gmcp = Vec::new();
        for event in events {
            match event {
                TelnetEvent::Data(data) => text.extend_from_slice(&data),
                TelnetEvent::Subnegotiation {
                    option: option::GMCP,
                    data,
                } => gmcp.push(String::from_utf8(data).expect("UTF-8 GMCP")),
                _ => {}
            }
        }
        let notices = String::from_utf8(text)
            .expect("UTF-8 text")
            .split("\r\n")
            .filter_map(|line| line.strip_prefix("[tether] "))
            .map(str::to_string)
            .collect();
        (notices, gmcp)
    }

    fn named(&mut self) -> Option<String> {
        self.0
            .client_changed()
            .and_then(|client| client.client_name)
    }
}

struct Web(WebSpeaker);

impl Web {
    fn new() -> Web {
        let mut web = Web(WebSpeaker::new());
        web.0.greet();
        web.named();
        web
    }
}

impl Client for Web {
    fn line(&mut self, bytes: &[u8]) -> Result<Vec<String>, CloseReason> {
        self.0.input(Frame::Binary(bytes.to_vec()))
    }

    fn gmcp(&mut self, text: &str) -> Result<Vec<String>, CloseReason> {
        self.0.input(Frame::Text(text.to_string()))
    }

    fn deliver(&mut self, message: ToSession) {
        self.0.message(message).expect("delivered");
    }

    fn seen(&mut self) -> (Vec<String>, Vec<String>) {
        let mut notices = Vec::new();
        let mut gmcp = Vec::new();
        for frame in self.0.take_output() {
            let Frame::Text(text) = frame else { continue };
            match text.strip_prefix("Tether.Notice ") {
                Some(json) => {
                    let value: serde_json::Value = serde_json::from_str(json).expect("JSON");
                    notices.push(value["text"].as_str().expect("text").to_string());
                }
                None => gmcp.push(text),
            }
        }
        (notices, gmcp)
    }

    fn named(&mut self) -> Option<String> {
        self.0
            .client_changed()
            .and_then(|client| client.client_name)
    }
}

/// Runs every case on `client` and returns what happened, for comparison.
/// (How many flood lines got in depends on the clock, so it is returned apart.)
fn run_cases(client: &mut dyn Client) -> (Vec<String>, usize) {
    let mut log = Vec::new();
    let mut record = |what: &str, result: String, client: &mut dyn Client| {
        let (notices, gmcp) = client.seen();
        log.push(format!(
            "{what}: {result} | notices {notices:?} | gmcp {gmcp:?}"
        ));
    };

    let cases: [(&str, Vec<u8>); 5] = [
        ("plain", b"look".to_vec()),
        ("overlong", vec![b'x'; MAX_LINE_BYTES + 10]),
        ("invalid UTF-8", b"say caf\xe9".to_vec()),
        ("control characters", b"say \x1b[31mred\x07".to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let result = client.line(&bytes);
        record(what, format!("{result:?}"), client);
    }

    // GMCP: what the client lists decides what it gets; Core.* is answered by the proxy.
    let room = || {
        ToSession::Core(Delivery::Gmcp {
            package: "Room.Info".into(),
            json: "{}".into(),
        })
    };
    let vitals = || {
        ToSession::Core(Delivery::Gmcp {
            package: "Char.Vitals".into(),
            json: "{}".into(),
        })
    };
    let result = client.gmcp(r#"core.supports.set ["room 1"]"#);
    client.deliver(room());
    client.deliver(vitals());
    record("supports", format!("{result:?}"), client);
    for (what, text) in [
        ("bad JSON", "Core.Supports.Set [\"Char 1\""),
        ("no name", "{\"a\": 1}"),
        ("ping", "Core.Ping"),
    ] {
        let result = client.gmcp(text);
        client.deliver(vitals());
        record(what, format!("{result:?}"), client);
    }
    let result = client.gmcp(r#"Core.Hello {"client": "Mudlet", "version": "4.19"}"#);
    let named = client.named();
    record("hello", format!("{result:?} named {named:?}"), client);

    // A flood: the same budget, the same words, the same end.
    let mut accepted = 0;
    let mut refused = 0;
    let end = loop {
        match client.line(b"north") {
            Ok(lines) if lines.is_empty() => refused += 1,
            Ok(_) => accepted += 1,
            Err(reason) => break reason,
        }
        assert!(accepted + refused < 10_000, "the flood never ended");
    };
    let (notices, _) = client.seen();
    log.push(format!(
        "flood: {refused} refused, then {end:?} ({}) | notices {:?}",
        end.websocket_code(),
        notices
            .iter()
            // The wait hint depends on the clock.
            .map(|notice| notice.split(" (try again").next().unwrap_or(notice))
            .collect::<Vec<_>>()
    ));
    (log, accepted)
}

#[test]
fn telnet_and_web_sessions_follow_the_same_rules() {
    let (telnet, telnet_accepted) = run_cases(&mut Telnet::new());
    let (web, web_accepted) = run_cases(&mut Web::new());
    // The bucket holds 200 and refills at 50 a second while the loop runs: a slow machine
    // lets a few more through, on both sides alike.
    for accepted in [telnet_accepted, web_accepted] {
        assert!(
            (190..=260).contains(&accepted),
            "{accepted} flood lines accepted"
        );
    }
    for (telnet, web) in telnet.iter().zip(&web) {
        assert_eq!(telnet, web);
    }
    assert_eq!(telnet.len(), web.len());
    // And the rules are the ones we mean.
    let expect = |what: &str, needle: &str| {
        let line = telnet
            .iter()
            .find(|line| line.starts_with(what))
            .expect(what);
        assert!(line.contains(needle), "{line}");
    };
    expect("plain", r#"Ok(["look"])"#);
    expect("overlong", "longer than 8192 bytes");
    expect("invalid UTF-8", "not valid UTF-8");
    expect("control characters", r#"Ok(["say red"])"#);
    expect("supports", r#"gmcp ["Room.Info {}"]"#);
    expect("bad JSON", "gmcp []");
    expect("ping", r#"gmcp ["Core.Ping"]"#);
    expect("hello", r#"named Some("Mudlet")"#);
    expect("flood", "then Flood (1008)");
    expect(
        "flood",
        "You are sending too fast; lines are refused until you slow down",
    );
}
