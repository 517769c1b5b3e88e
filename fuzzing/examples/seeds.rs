//! Writes the hand-made seeds each target's corpus starts from: real client openings, every
//! link message, markup with every kind of tag, web frames, the shipped world. Run with
//! `cargo run -p tether-fuzzing --example seeds`; the fuzzer grows the corpus from these.

use std::path::Path;

use tether_protocol::message::*;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(format!("seed-{name}")), data).expect("seed");
}

/// The telnet target reads a length byte before each piece.
fn pieces(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        for chunk in part.chunks(255) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
    }
    out
}

fn main() {
    const IAC: u8 = 255;
    let sb = |opt: u8, data: &[u8]| [&[IAC, 250, opt][..], data, &[IAC, 240]].concat();
    // Mudlet: DO GMCP/EOR/MCCP2/MSSP, WILL TTYPE/NAWS/CHARSET, then its answers.
    let mudlet = [
        vec![IAC, 253, 201, IAC, 253, 25, IAC, 253, 86, IAC, 253, 70],
        vec![IAC, 251, 24, IAC, 251, 31, IAC, 251, 42, IAC, 252, 39],
        sb(31, &[0, 120, 0, 40]),
        sb(24, b"\x00MUDLET"),
        sb(24, b"\x00MUDLET"),
        sb(42, b"\x02UTF-8"),
        sb(201, br#"Core.Hello {"client":"Mudlet","version":"4.19.1"}"#),
        sb(
            201,
            br#"Core.Supports.Set ["Char 1","Room 1","Comm.Channel 1"]"#,
        ),
        b"create alice secret1\r\nlook\r\nsay hello {red}there\r\n".to_vec(),
    ];
    let parts: Vec<&[u8]> = mudlet.iter().map(Vec::as_slice).collect();
    write("telnet", "mudlet", &pieces(&parts));
    let tintin = [
        vec![IAC, 251, 24, IAC, 251, 39, IAC, 253, 25],
        sb(24, b"\x00TINTIN++"),
        sb(24, b"\x00XTERM-256COLOR"),
        sb(24, b"\x00MTTS 2825"),
        sb(
            39,
            b"\x00\x00CLIENT_NAME\x01TINTIN++\x00CHARSET\x01ISO-8859-1",
        ),
        sb(42, b"\x01;ISO-8859-1;UTF-8"),
        b"caf\xe9\r\n\x1b[31mred\r\nMSSP-REQUEST\r\n".to_vec(),
        vec![IAC, 254, 86, IAC, 253, 86, IAC, 241, IAC, 255],
    ];
    let parts: Vec<&[u8]> = tintin.iter().map(Vec::as_slice).collect();
    write("telnet", "tintin", &pieces(&parts));
    write(
        "telnet",
        "netcat",
        &pieces(&[b"look\nnorth\n\n", &[b'x'; 300]]),
    );

    // Every link message, both directions.
    let client = ClientInfo {
        client_name: Some("Mudlet".into()),
        width: Some(120),
        mtts: Some(2825),
        charset: Charset::Latin1,
        gmcp: true,
        ..ClientInfo::default()
    };
    let info = SessionInfo {
        transport: Transport::Telnet,
        remote_addr: "127.0.0.1:5000".into(),
    };
    let mut proxy = Vec::new();
    ProxyMessage::Attach(Attach {
        hello: Hello {
            protocol_version: tether_protocol::PROTOCOL_VERSION,
            proxy_id: 7,
            proxy_name: "proxy".into(),
        },
        sessions: vec![SessionSnapshot {
            session: 1,
            info: info.clone(),
            state: b"blob".to_vec(),
            acked_seq: 3,
            client: client.clone(),
        }],
    })
    .encode(&mut proxy);
    write("link", "attach", &proxy);
    let mut submit = Vec::new();
    encode_submit(
        &[
            ProxyEvent {
                session: 1,
                event: SessionEvent::Opened(info),
            },
            ProxyEvent {
                session: 1,
                event: SessionEvent::Line {
                    seq: 4,
                    text: "say hi".into(),
                },
            },
            ProxyEvent {
                session: 1,
                event: SessionEvent::Client(Box::new(client)),
            },
            ProxyEvent {
                session: 1,
                event: SessionEvent::Closed("eof".into()),
            },
        ],
        &mut submit,
    );
    write("link", "submit", &submit);
    let core = [
        CoreMessage::Welcome(Welcome {
            protocol_version: tether_protocol::PROTOCOL_VERSION,
            core_name: "core".into(),
            resumed: false,
        }),
        CoreMessage::Refused("no".into()),
        CoreMessage::Detached,
        CoreMessage::Accepted,
        CoreMessage::Declined("stopping".into()),
        CoreMessage::GameStatus(vec![MsspVariable {
            name: "NAME".into(),
            value: "tether".into(),
        }]),
        CoreMessage::Deliver(
            [
                Delivery::Output("{red}hi{/}".into()),
                Delivery::Ack(4),
                Delivery::State(b"blob".to_vec()),
                Delivery::Disconnect("bye".into()),
                Delivery::Prompt("> ".into()),
                Delivery::HideInput(true),
                Delivery::Gmcp {
                    package: "Room.Info".into(),
                    json: "{}".into(),
                },
                Delivery::Display(DisplayPrefs {
                    wrap: true,
                    color: Some(ColorDepth::Ansi256),
                }),
            ]
            .into_iter()
            .map(|delivery| CoreEvent {
                session: 1,
                delivery,
            })
            .collect(),
        ),
    ];
    for (i, message) in core.iter().enumerate() {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        write("link", &format!("core-{i}"), &bytes);
    }

    // Markup: the first byte is a wrap width.
    for (name, text) in [
        (
            "tags",
            "{red}red {bold}bold{/} {bg:blue}{#ff8000}rgb {c:202}idx{/}\nnext {{ line",
        ),
        (
            "unicode",
            "caf\u{e9} \u{1F600} \u{202e}rtl\u{202c} \u{200b}zw \u{7f}\u{9b}31m",
        ),
        ("broken", "{unknown} {#xyz} {c:999} {/} {{{ }} {red"),
    ] {
        write("markup", name, &[&[20u8][..], text.as_bytes()].concat());
    }

    // Web frames: a length byte, then a kind byte (even: text/GMCP, odd: binary/line).
    let frames: [(u8, &[u8]); 5] = [
        (0, br#"Core.Supports.Set ["Room 1"]"#),
        (0, br#"Core.Hello {"client":"browser"}"#),
        (1, b"look"),
        (1, b"say caf\xe9"),
        (0, b"Core.Ping"),
    ];
    let mut web = Vec::new();
    for (kind, body) in frames {
        web.push(body.len() as u8 + 1);
        web.push(kind);
        web.extend_from_slice(body);
    }
    write("web", "browser", &web);

    write("world", "default", tether_engine::DEFAULT_WORLD.as_bytes());
    write(
        "world",
        "small",
        b"name = \"x\"\nstart = \"a\"\n[[area]]\nname = \"A\"\n[[area.room]]\nid = \"a\"\nname = \"A\"\ndescription = \"d\"\nexits = { north = \"a\" }\n",
    );
}
