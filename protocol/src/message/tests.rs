//! Every message and event survives the wire unchanged, including the edges of each field.

use super::*;
use crate::framing;

fn read(bytes: &[u8]) -> capnp::message::Reader<capnp::serialize::OwnedSegments> {
    assert_eq!(
        framing::message_len(bytes).expect("a valid header"),
        Some(bytes.len()),
        "exactly one whole message"
    );
    capnp::serialize::read_message(bytes, framing::reader_options()).expect("a message")
}

fn proxy_round_trip(sent: &ProxyMessage<'_>) {
    let mut bytes = Vec::new();
    sent.encode(&mut bytes);
    let message = read(&bytes);
    assert_eq!(&ProxyMessage::decode(&message).expect("decodes"), sent);
}

fn core_round_trip(sent: &CoreMessage) {
    let mut bytes = Vec::new();
    sent.encode(&mut bytes);
    let message = read(&bytes);
    assert_eq!(&CoreMessage::decode(&message).expect("decodes"), sent);
}

fn info(transport: Transport) -> SessionInfo {
    SessionInfo {
        transport,
        remote_addr: "[::1]:40000".into(),
    }
}

fn full_client() -> ClientInfo {
    ClientInfo {
        client_name: Some("Mudlet".into()),
        client_version: Some("4.19.1".into()),
        terminal_type: Some("XTERM-256COLOR".into()),
        mtts: Some(u32::MAX),
        width: Some(u16::MAX),
        height: Some(1),
        charset: Charset::Latin1,
        screen_reader: true,
        gmcp: true,
    }
}

#[test]
fn attach_with_sessions_round_trips() {
    proxy_round_trip(&ProxyMessage::Attach(Attach {
        hello: Hello {
            protocol_version: crate::PROTOCOL_VERSION,
            proxy_id: u64::MAX,
            proxy_name: "tether-proxy ünïcode".into(),
        },
        sessions: vec![
            SessionSnapshot {
                session: 1,
                info: info(Transport::Telnet),
                state: vec![0, 255, 7],
                acked_seq: u64::MAX,
                client: full_client(),
            },
            SessionSnapshot {
                session: u64::MAX,
                info: info(Transport::WebSocketTelnet),
                state: Vec::new(),
                acked_seq: 0,
                client: ClientInfo::default(),
            },
        ],
    }));
    proxy_round_trip(&ProxyMessage::Attach(Attach {
        hello: Hello {
            protocol_version: 0,
            proxy_id: 0,
            proxy_name: String::new(),
        },
        sessions: Vec::new(),
    }));
}

#[test]
fn every_session_event_round_trips() {
    let mut events = vec![
        ProxyEvent {
            session: 3,
            event: SessionEvent::Opened(info(Transport::WebSocket)),
        },
        ProxyEvent {
            session: 3,
            event: SessionEvent::Line {
                seq: 1,
                text: "say héllo {red}".into(),
            },
        },
        ProxyEvent {
            session: 3,
            event: SessionEvent::Line {
                seq: u64::MAX,
                text: "".into(),
            },
        },
        ProxyEvent {
            session: 3,
            event: SessionEvent::Client(Box::new(full_client())),
        },
        ProxyEvent {
            session: 3,
            event: SessionEvent::Client(Box::default()),
        },
        ProxyEvent {
            session: 3,
            event: SessionEvent::Closed("connection reset".into()),
        },
    ];
    for action in [
        OrderAction::Kick {
            name: "Bob".into(),
            reason: "spam".into(),
        },
        OrderAction::Ban {
            target: "203.0.113.9".into(),
            seconds: 3600,
            reason: String::new(),
        },
        OrderAction::Unban {
            target: "Bob".into(),
        },
        OrderAction::Wall {
            text: "Hello {red}all".into(),
        },
        OrderAction::Shutdown {
            seconds: 300,
            reason: "upgrade".into(),
        },
        OrderAction::CancelShutdown,
        OrderAction::Reload,
        OrderAction::UpgradeProxy,
    ] {
        events.push(ProxyEvent {
            session: 0,
            event: SessionEvent::Order(Box::new(Order {
                id: 7,
                actor: "host:ops".into(),
                action,
            })),
        });
    }
    proxy_round_trip(&ProxyMessage::Submit(events));
    proxy_round_trip(&ProxyMessage::Submit(Vec::new()));
    proxy_round_trip(&ProxyMessage::Detach);
}

#[test]
fn every_core_message_and_delivery_round_trips() {
    core_round_trip(&CoreMessage::Welcome(Welcome {
        protocol_version: crate::PROTOCOL_VERSION,
        core_name: "tether-core 0.1.0 (pid 1)".into(),
        resumed: false,
    }));
    core_round_trip(&CoreMessage::Welcome(Welcome {
        protocol_version: crate::PROTOCOL_VERSION,
        core_name: String::new(),
        resumed: true,
    }));
    core_round_trip(&CoreMessage::Refused("versions differ".into()));
    core_round_trip(&CoreMessage::Accepted);
    core_round_trip(&CoreMessage::Declined(String::new()));
    core_round_trip(&CoreMessage::Detached);
    core_round_trip(&CoreMessage::GameStatus(vec![
        MsspVariable {
            name: "NAME".into(),
            value: "tether".into(),
        },
        MsspVariable {
            name: "PLAYERS".into(),
            value: "0".into(),
        },
    ]));
    let mut deliveries = vec![
        Delivery::Output("{bold}You see{/} a\nroom".into()),
        Delivery::Output(String::new()),
        Delivery::Ack(u64::MAX),
        Delivery::State(vec![1, 2, 3]),
        Delivery::State(Vec::new()),
        Delivery::Disconnect("Goodbye.".into()),
        Delivery::Prompt("> ".into()),
        Delivery::HideInput(true),
        Delivery::HideInput(false),
        Delivery::Gmcp {
            package: "Room.Info".into(),
            json: r#"{"num":1}"#.into(),
        },
        Delivery::Playing {
            character: "Ærwen".into(),
            fresh: true,
        },
        Delivery::Playing {
            character: "Bob".into(),
            fresh: false,
        },
        Delivery::LoginFailed,
        Delivery::OrderDone {
            id: 7,
            ok: false,
            said: "Bob is not in the game.".into(),
        },
    ];
    for color in [
        None,
        Some(ColorDepth::None),
        Some(ColorDepth::Ansi16),
        Some(ColorDepth::Ansi256),
        Some(ColorDepth::TrueColor),
    ] {
        for wrap in [false, true] {
            deliveries.push(Delivery::Display(DisplayPrefs { wrap, color }));
        }
    }
    let events = deliveries
        .into_iter()
        .enumerate()
        .map(|(i, delivery)| CoreEvent {
            session: i as u64,
            delivery,
        })
        .collect();
    core_round_trip(&CoreMessage::Deliver(events));
}

#[test]
fn a_full_deliver_batch_fits_a_message() {
    // The core cuts batches at 8,192 events; the largest outputs a game sends are a few KiB.
    let text = "x".repeat(4096);
    let events: Vec<CoreEvent> = (0..8192)
        .map(|session| CoreEvent {
            session,
            delivery: Delivery::Output(text.clone()),
        })
        .collect();
    let mut bytes = Vec::new();
    encode_deliver(&events, &mut bytes);
    assert!(bytes.len() < framing::MAX_MESSAGE_BYTES);
    let message = read(&bytes);
    assert_eq!(
        CoreMessage::decode(&message).expect("decodes"),
        CoreMessage::Deliver(events)
    );
}

#[test]
fn borrowed_lines_can_be_kept() {
    let mut bytes = Vec::new();
    encode_submit(
        &[ProxyEvent {
            session: 1,
            event: SessionEvent::Line {
                seq: 1,
                text: "look".into(),
            },
        }],
        &mut bytes,
    );
    let kept: Vec<ProxyEvent<'static>> = {
        let message = read(&bytes);
        let ProxyMessage::Submit(events) = ProxyMessage::decode(&message).expect("decodes") else {
            panic!("not a submit");
        };
        events.into_iter().map(ProxyEvent::into_owned).collect()
    };
    assert_eq!(
        kept[0].event,
        SessionEvent::Line {
            seq: 1,
            text: "look".into()
        }
    );
}

#[test]
fn unknown_names_are_refused_not_guessed() {
    let mut message = framing::builder();
    let mut list = message
        .init_root::<crate::link_capnp::proxy_message::Builder>()
        .init_submit(1);
    let mut event = list.reborrow().get(0);
    event.set_session(1);
    let mut opened = event.init_opened();
    opened.set_transport("carrier-pigeon");
    let mut bytes = Vec::new();
    framing::append(&message, &mut bytes);
    let message = read(&bytes);
    assert!(matches!(
        ProxyMessage::decode(&message),
        Err(DecodeError::UnknownTransport(name)) if name == "carrier-pigeon"
    ));

    let mut message = framing::builder();
    let mut list = message
        .init_root::<crate::link_capnp::proxy_message::Builder>()
        .init_submit(1);
    list.reborrow().get(0).init_client().set_charset("EBCDIC");
    let mut bytes = Vec::new();
    framing::append(&message, &mut bytes);
    let message = read(&bytes);
    assert!(matches!(
        ProxyMessage::decode(&message),
        Err(DecodeError::UnknownCharset(name)) if name == "EBCDIC"
    ));
}

#[test]
fn a_message_for_the_other_side_is_not_mistaken_for_one() {
    // A core message read as a proxy message: the union tags differ in meaning, so decoding
    // either fails or yields a message; it must never panic. (The fuzz targets try far more.)
    let mut bytes = Vec::new();
    CoreMessage::Declined("stopping".into()).encode(&mut bytes);
    let message = read(&bytes);
    let _ = ProxyMessage::decode(&message);
}

#[test]
fn names_round_trip() {
    for transport in [
        Transport::Telnet,
        Transport::WebSocket,
        Transport::WebSocketTelnet,
    ] {
        assert_eq!(Transport::from_name(transport.name()), Some(transport));
    }
    for charset in [Charset::Utf8, Charset::Latin1] {
        assert_eq!(Charset::from_name(charset.name()), Some(charset));
    }
    assert_eq!(Charset::from_name("utf-8"), Some(Charset::Utf8));
}

/// A submit whose event list is a million empty structs in no room at all: capnp's bounds
/// checks allow it, decoding it would cost hundreds of megabytes. Found by fuzzing.
fn empty_struct_flood(count: u64, discriminant: u64) -> Vec<u8> {
    let words: [u64; 3] = [
        // Root: a struct pointer to the next word, one data word and one pointer.
        (1 << 32) | (1 << 48),
        // The union's discriminant (submit, or deliver on the core side).
        discriminant,
        // A list pointer: offset 0, element size "void", `count` elements.
        1 | (count << 35),
    ];
    let mut bytes = vec![0, 0, 0, 0, 3, 0, 0, 0];
    for word in words {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes
}

#[test]
fn a_list_claiming_more_elements_than_the_message_holds_is_refused() {
    for (discriminant, proxy_side) in [(1, true), (4, false)] {
        let bytes = empty_struct_flood(1 << 20, discriminant);
        let message = read(&bytes);
        let decoded = if proxy_side {
            ProxyMessage::decode(&message).map(|_| ())
        } else {
            CoreMessage::decode(&message).map(|_| ())
        };
        assert!(
            matches!(decoded, Err(DecodeError::Oversized { count, .. }) if count == 1 << 20),
            "{decoded:?}"
        );
    }
}
