//! The messages to and from Cap'n Proto: the only code that touches the generated builders
//! and readers.
//!
//! Encoding appends a whole serialized message to a byte buffer (the socket's next write);
//! the batch encoders take borrowed slices, so a side that keeps its batch in another shape
//! need not build a message value first. Decoding reads a message in place (see
//! `framing::MessageReader`) and borrows line texts from it.
//!
//! Unknown union members are how a newer peer speaks: an unknown *event* in a batch is
//! skipped, an unknown *message* is an error the caller may choose to ignore
//! ([`DecodeError::UnknownMessage`]).

use std::borrow::Cow;

use capnp::message::ReaderSegments;

use super::{
    Attach, Charset, ClientInfo, CoreEvent, CoreMessage, Delivery, DisplayPrefs, Hello,
    MsspVariable, Order, OrderAction, ProxyEvent, ProxyMessage, SessionEvent, SessionInfo,
    SessionSnapshot, Transport, Welcome,
};
use crate::framing;
use crate::link_capnp::{
    ColorChoice, client_info, core_event, core_message, order, proxy_event, proxy_message,
    session_info, session_snapshot,
};
use crate::markup::ColorDepth;

/// Why bytes that framed as a message are not one this side can use.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed link message: {0}")]
    Capnp(#[from] capnp::Error),
    #[error("link text is not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// A message this side does not know (a newer peer, or a broken one).
    #[error("unknown {side} message (union member {which})")]
    UnknownMessage { side: &'static str, which: u16 },
    /// A list that claims more elements than the message has words (only a list of empty
    /// structs can, and no side sends one): refused before it costs memory or time.
    #[error("a link message claims {count} {what} in {words} words")]
    Oversized {
        what: &'static str,
        count: u32,
        words: usize,
    },
    #[error("unknown charset {0:?}")]
    UnknownCharset(String),
    #[error("unknown transport {0:?}")]
    UnknownTransport(String),
}

impl From<capnp::NotInSchema> for DecodeError {
    fn from(error: capnp::NotInSchema) -> Self {
        DecodeError::Capnp(error.into())
    }
}

impl ProxyMessage<'_> {
    /// Appends this message, serialized, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ProxyMessage::Attach(attach) => encode_attach(attach, out),
            ProxyMessage::Submit(events) => encode_submit(events, out),
            ProxyMessage::Detach => {
                let mut message = framing::builder();
                message.init_root::<proxy_message::Builder>().set_detach(());
                framing::append(&message, out);
            }
        }
    }
}

impl<'m> ProxyMessage<'m> {
    /// Reads a message as received; line texts borrow from it.
    pub fn decode<S: ReaderSegments>(
        message: &'m capnp::message::Reader<S>,
    ) -> Result<ProxyMessage<'m>, DecodeError> {
        let root = message.get_root::<proxy_message::Reader<'m>>()?;
        let words = message.size_in_words();
        match root.which() {
            Ok(proxy_message::Attach(attach)) => {
                let attach = attach?;
                let hello = attach.get_hello()?;
                let snapshots = attach.get_sessions()?;
                let mut sessions =
                    Vec::with_capacity(checked_len(snapshots.len(), words, "sessions")?);
                for snapshot in snapshots {
                    sessions.push(read_snapshot(snapshot)?);
                }
                Ok(ProxyMessage::Attach(Attach {
                    hello: Hello {
                        protocol_version: hello.get_protocol_version(),
                        proxy_id: hello.get_proxy_id(),
                        proxy_name: owned(hello.get_proxy_name())?,
                    },
                    sessions,
                }))
            }
            Ok(proxy_message::Submit(events)) => {
                let events = events?;
                let mut decoded = Vec::with_capacity(checked_len(events.len(), words, "events")?);
                for event in events {
                    let session = event.get_session();
                    // Read in place, pushed once: this loop is the core's per-command cost.
                    let event = match event.which() {
                        Ok(proxy_event::Line(line)) => {
                            let line = line?;
                            SessionEvent::Line {
                                seq: line.get_seq(),
                                text: Cow::Borrowed(line.get_text()?.to_str()?),
                            }
                        }
                        Ok(proxy_event::Opened(info)) => SessionEvent::Opened(read_info(info?)?),
                        Ok(proxy_event::Closed(reason)) => SessionEvent::Closed(owned(reason)?),
                        Ok(proxy_event::Client(client)) => {
                            SessionEvent::Client(Box::new(read_client(client?)?))
                        }
                        Ok(proxy_event::Order(order)) => match read_order(order?)? {
                            Some(order) => SessionEvent::Order(Box::new(order)),
                            // An order this core does not know: the proxy's wait for an
                            // answer ends in its own time, saying the core may be older.
                            None => continue,
                        },
                        // From a newer proxy: what this core does not know, it cannot act on.
                        Err(capnp::NotInSchema(_)) => continue,
                    };
                    decoded.push(ProxyEvent { session, event });
                }
                Ok(ProxyMessage::Submit(decoded))
            }
            Ok(proxy_message::Detach(())) => Ok(ProxyMessage::Detach),
            Err(capnp::NotInSchema(which)) => Err(DecodeError::UnknownMessage {
                side: "proxy",
                which,
            }),
        }
    }
}

impl CoreMessage {
    /// Appends this message, serialized, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let CoreMessage::Deliver(events) = self {
            return encode_deliver(events, out);
        }
        let mut message = framing::builder();
        let mut root = message.init_root::<core_message::Builder>();
        match self {
            CoreMessage::Welcome(welcome) => {
                let mut builder = root.init_welcome();
                builder.set_protocol_version(welcome.protocol_version);
                builder.set_core_name(welcome.core_name.as_str());
                builder.set_resumed(welcome.resumed);
            }
            CoreMessage::Refused(reason) => root.set_refused(reason.as_str()),
            CoreMessage::Accepted => root.set_accepted(()),
            CoreMessage::Declined(reason) => root.set_declined(reason.as_str()),
            CoreMessage::Detached => root.set_detached(()),
            CoreMessage::Deliver(_) => unreachable!("encoded above"),
            CoreMessage::GameStatus(vars) => {
                let mut list = root.init_game_status(vars.len() as u32);
                for (i, var) in vars.iter().enumerate() {
                    let mut entry = list.reborrow().get(i as u32);
                    entry.set_name(var.name.as_str());
                    entry.set_value(var.value.as_str());
                }
            }
        }
        framing::append(&message, out);
    }

    /// Reads a message as received.
    pub fn decode<S: ReaderSegments>(
        message: &capnp::message::Reader<S>,
    ) -> Result<CoreMessage, DecodeError> {
        let root = message.get_root::<core_message::Reader>()?;
        let words = message.size_in_words();
        Ok(match root.which() {
            Ok(core_message::Welcome(welcome)) => {
                let welcome = welcome?;
                CoreMessage::Welcome(Welcome {
                    protocol_version: welcome.get_protocol_version(),
                    core_name: owned(welcome.get_core_name())?,
                    resumed: welcome.get_resumed(),
                })
            }
            Ok(core_message::Refused(reason)) => CoreMessage::Refused(owned(reason)?),
            Ok(core_message::Accepted(())) => CoreMessage::Accepted,
            Ok(core_message::Declined(reason)) => CoreMessage::Declined(owned(reason)?),
            Ok(core_message::Detached(())) => CoreMessage::Detached,
            Ok(core_message::Deliver(events)) => {
                let events = events?;
                let mut decoded = Vec::with_capacity(checked_len(events.len(), words, "events")?);
                for event in events {
                    if let Some(event) = read_core_event(event)? {
                        decoded.push(event);
                    }
                }
                CoreMessage::Deliver(decoded)
            }
            Ok(core_message::GameStatus(vars)) => {
                let vars = vars?;
                let mut decoded = Vec::with_capacity(checked_len(vars.len(), words, "variables")?);
                for var in vars {
                    decoded.push(MsspVariable {
                        name: owned(var.get_name())?,
                        value: owned(var.get_value())?,
                    });
                }
                CoreMessage::GameStatus(decoded)
            }
            Err(capnp::NotInSchema(which)) => {
                return Err(DecodeError::UnknownMessage {
                    side: "core",
                    which,
                });
            }
        })
    }
}

fn encode_attach(attach: &Attach, out: &mut Vec<u8>) {
    let mut message = framing::builder();
    let mut root = message.init_root::<proxy_message::Builder>().init_attach();
    let mut hello = root.reborrow().init_hello();
    hello.set_protocol_version(attach.hello.protocol_version);
    hello.set_proxy_id(attach.hello.proxy_id);
    hello.set_proxy_name(attach.hello.proxy_name.as_str());
    let mut list = root.init_sessions(attach.sessions.len() as u32);
    for (i, snapshot) in attach.sessions.iter().enumerate() {
        write_snapshot(list.reborrow().get(i as u32), snapshot);
    }
    framing::append(&message, out);
}

/// Appends a `submit` of `events`, serialized, to `out`.
pub fn encode_submit(events: &[ProxyEvent<'_>], out: &mut Vec<u8>) {
    let mut message = framing::builder();
    let mut list = message
        .init_root::<proxy_message::Builder>()
        .init_submit(events.len() as u32);
    for (i, event) in events.iter().enumerate() {
        write_proxy_event(list.reborrow().get(i as u32), event);
    }
    framing::append(&message, out);
}

/// Appends a `deliver` of `events`, serialized, to `out`.
pub fn encode_deliver(events: &[CoreEvent], out: &mut Vec<u8>) {
    let mut message = framing::builder();
    let mut list = message
        .init_root::<core_message::Builder>()
        .init_deliver(events.len() as u32);
    for (i, event) in events.iter().enumerate() {
        write_core_event(list.reborrow().get(i as u32), event);
    }
    framing::append(&message, out);
}

fn write_proxy_event(mut builder: proxy_event::Builder, event: &ProxyEvent<'_>) {
    builder.set_session(event.session);
    match &event.event {
        SessionEvent::Opened(info) => write_info(builder.init_opened(), info),
        SessionEvent::Line { seq, text } => {
            let mut line = builder.init_line();
            line.set_seq(*seq);
            line.set_text(text.as_ref());
        }
        SessionEvent::Closed(reason) => builder.set_closed(reason.as_str()),
        SessionEvent::Client(client) => write_client(builder.init_client(), client),
        SessionEvent::Order(order) => write_order(builder.init_order(), order),
    }
}

fn write_order(mut builder: order::Builder, order: &Order) {
    builder.set_id(order.id);
    builder.set_actor(order.actor.as_str());
    match &order.action {
        OrderAction::Kick { name, reason } => {
            let mut kick = builder.init_kick();
            kick.set_name(name.as_str());
            kick.set_reason(reason.as_str());
        }
        OrderAction::Ban {
            target,
            seconds,
            reason,
        } => {
            let mut ban = builder.init_ban();
            ban.set_target(target.as_str());
            ban.set_seconds(*seconds);
            ban.set_reason(reason.as_str());
        }
        OrderAction::Unban { target } => builder.set_unban(target.as_str()),
        OrderAction::Wall { text } => builder.set_wall(text.as_str()),
        OrderAction::Shutdown { seconds, reason } => {
            let mut shutdown = builder.init_shutdown();
            shutdown.set_seconds(*seconds);
            shutdown.set_reason(reason.as_str());
        }
        OrderAction::CancelShutdown => builder.set_cancel_shutdown(()),
        OrderAction::Reload => builder.set_reload(()),
        OrderAction::UpgradeProxy => builder.set_upgrade_proxy(()),
    }
}

/// `None` for an action this side does not know (from a newer proxy).
fn read_order(order: order::Reader<'_>) -> Result<Option<Order>, DecodeError> {
    let action = match order.which() {
        Ok(order::Kick(kick)) => {
            let kick = kick?;
            OrderAction::Kick {
                name: owned(kick.get_name())?,
                reason: owned(kick.get_reason())?,
            }
        }
        Ok(order::Ban(ban)) => {
            let ban = ban?;
            OrderAction::Ban {
                target: owned(ban.get_target())?,
                seconds: ban.get_seconds(),
                reason: owned(ban.get_reason())?,
            }
        }
        Ok(order::Unban(target)) => OrderAction::Unban {
            target: owned(target)?,
        },
        Ok(order::Wall(text)) => OrderAction::Wall { text: owned(text)? },
        Ok(order::Shutdown(shutdown)) => {
            let shutdown = shutdown?;
            OrderAction::Shutdown {
                seconds: shutdown.get_seconds(),
                reason: owned(shutdown.get_reason())?,
            }
        }
        Ok(order::CancelShutdown(())) => OrderAction::CancelShutdown,
        Ok(order::Reload(())) => OrderAction::Reload,
        Ok(order::UpgradeProxy(())) => OrderAction::UpgradeProxy,
        Err(capnp::NotInSchema(_)) => return Ok(None),
    };
    Ok(Some(Order {
        id: order.get_id(),
        actor: owned(order.get_actor())?,
        action,
    }))
}

fn write_core_event(mut builder: core_event::Builder, event: &CoreEvent) {
    builder.set_session(event.session);
    match &event.delivery {
        Delivery::Output(text) => builder.set_output(text.as_str()),
        Delivery::Ack(seq) => builder.set_ack(*seq),
        Delivery::State(blob) => builder.set_state(blob),
        Delivery::Disconnect(reason) => builder.set_disconnect(reason.as_str()),
        Delivery::Prompt(text) => builder.set_prompt(text.as_str()),
        Delivery::HideInput(hide) => builder.set_hide_input(*hide),
        Delivery::Gmcp { package, json } => {
            let mut gmcp = builder.init_gmcp();
            gmcp.set_package(package.as_str());
            gmcp.set_json(json.as_str());
        }
        Delivery::Display(prefs) => {
            let mut display = builder.init_display();
            display.set_wrap(prefs.wrap);
            display.set_color(match prefs.color {
                None => ColorChoice::Auto,
                Some(ColorDepth::None) => ColorChoice::None,
                Some(ColorDepth::Ansi16) => ColorChoice::Ansi16,
                Some(ColorDepth::Ansi256) => ColorChoice::Ansi256,
                Some(ColorDepth::TrueColor) => ColorChoice::TrueColor,
            });
        }
        Delivery::Playing { character, fresh } => {
            let mut playing = builder.init_playing();
            playing.set_character(character.as_str());
            playing.set_fresh(*fresh);
        }
        Delivery::LoginFailed => builder.set_login_failed(()),
        Delivery::OrderDone { id, ok, said } => {
            let mut done = builder.init_order_done();
            done.set_id(*id);
            done.set_ok(*ok);
            done.set_said(said.as_str());
        }
    }
}

fn read_core_event(event: core_event::Reader<'_>) -> Result<Option<CoreEvent>, DecodeError> {
    let session = event.get_session();
    let delivery = match event.which() {
        Ok(core_event::Output(text)) => Delivery::Output(owned(text)?),
        Ok(core_event::Ack(seq)) => Delivery::Ack(seq),
        Ok(core_event::State(blob)) => Delivery::State(blob?.to_vec()),
        Ok(core_event::Disconnect(reason)) => Delivery::Disconnect(owned(reason)?),
        Ok(core_event::Prompt(text)) => Delivery::Prompt(owned(text)?),
        Ok(core_event::HideInput(hide)) => Delivery::HideInput(hide),
        Ok(core_event::Gmcp(gmcp)) => {
            let gmcp = gmcp?;
            Delivery::Gmcp {
                package: owned(gmcp.get_package())?,
                json: owned(gmcp.get_json())?,
            }
        }
        Ok(core_event::Display(prefs)) => {
            let prefs = prefs?;
            Delivery::Display(DisplayPrefs {
                wrap: prefs.get_wrap(),
                // A colour choice from a newer core falls back to what the client announced.
                color: match prefs.get_color() {
                    Ok(ColorChoice::Auto) | Err(_) => None,
                    Ok(ColorChoice::None) => Some(ColorDepth::None),
                    Ok(ColorChoice::Ansi16) => Some(ColorDepth::Ansi16),
                    Ok(ColorChoice::Ansi256) => Some(ColorDepth::Ansi256),
                    Ok(ColorChoice::TrueColor) => Some(ColorDepth::TrueColor),
                },
            })
        }
        Ok(core_event::Playing(playing)) => {
            let playing = playing?;
            Delivery::Playing {
                character: owned(playing.get_character())?,
                fresh: playing.get_fresh(),
            }
        }
        Ok(core_event::LoginFailed(())) => Delivery::LoginFailed,
        Ok(core_event::OrderDone(done)) => {
            let done = done?;
            Delivery::OrderDone {
                id: done.get_id(),
                ok: done.get_ok(),
                said: owned(done.get_said())?,
            }
        }
        // From a newer core: what this proxy does not know, it cannot act on.
        Err(capnp::NotInSchema(_)) => return Ok(None),
    };
    Ok(Some(CoreEvent { session, delivery }))
}

fn write_snapshot(mut builder: session_snapshot::Builder, snapshot: &SessionSnapshot) {
    builder.set_session(snapshot.session);
    builder.set_acked_seq(snapshot.acked_seq);
    builder.set_state(&snapshot.state);
    write_client(builder.reborrow().init_client(), &snapshot.client);
    write_info(builder.init_info(), &snapshot.info);
}

fn read_snapshot(snapshot: session_snapshot::Reader<'_>) -> Result<SessionSnapshot, DecodeError> {
    Ok(SessionSnapshot {
        session: snapshot.get_session(),
        info: read_info(snapshot.get_info()?)?,
        state: snapshot.get_state()?.to_vec(),
        acked_seq: snapshot.get_acked_seq(),
        client: if snapshot.has_client() {
            read_client(snapshot.get_client()?)?
        } else {
            ClientInfo::default()
        },
    })
}

fn write_info(mut builder: session_info::Builder, info: &SessionInfo) {
    builder.set_transport(info.transport.name());
    builder.set_remote_addr(info.remote_addr.as_str());
}

fn read_info(info: session_info::Reader<'_>) -> Result<SessionInfo, DecodeError> {
    let transport = info.get_transport()?.to_str()?;
    Ok(SessionInfo {
        transport: Transport::from_name(transport)
            .ok_or_else(|| DecodeError::UnknownTransport(transport.to_string()))?,
        remote_addr: owned(info.get_remote_addr())?,
    })
}

/// Unknown text is empty on the wire and unknown numbers are 0, as the schema says.
fn write_client(mut builder: client_info::Builder, client: &ClientInfo) {
    fn text(field: &Option<String>) -> &str {
        field.as_deref().unwrap_or("")
    }
    builder.set_client_name(text(&client.client_name));
    builder.set_client_version(text(&client.client_version));
    builder.set_terminal_type(text(&client.terminal_type));
    builder.set_mtts(client.mtts.unwrap_or(0));
    builder.set_width(client.width.unwrap_or(0));
    builder.set_height(client.height.unwrap_or(0));
    builder.set_charset(client.charset.name());
    builder.set_screen_reader(client.screen_reader);
    builder.set_gmcp(client.gmcp);
}

fn read_client(client: client_info::Reader<'_>) -> Result<ClientInfo, DecodeError> {
    let text = |field: capnp::Result<capnp::text::Reader>| -> Result<Option<String>, DecodeError> {
        let field = field?.to_str()?;
        Ok((!field.is_empty()).then(|| field.to_string()))
    };
    let nonzero = |n: u16| (n != 0).then_some(n);
    let charset = client.get_charset()?.to_str()?;
    Ok(ClientInfo {
        client_name: text(client.get_client_name())?,
        client_version: text(client.get_client_version())?,
        terminal_type: text(client.get_terminal_type())?,
        mtts: (client.get_mtts() != 0).then_some(client.get_mtts()),
        width: nonzero(client.get_width()),
        height: nonzero(client.get_height()),
        charset: match charset {
            // Not negotiated (yet).
            "" => Charset::default(),
            name => {
                Charset::from_name(name).ok_or_else(|| DecodeError::UnknownCharset(name.into()))?
            }
        },
        screen_reader: client.get_screen_reader(),
        gmcp: client.get_gmcp(),
    })
}

/// The length of a list, if the message can hold it. Every element either side writes takes at
/// least a word, but capnp lets a list of empty structs claim millions of elements in no room
/// at all (its traversal limit allows 8 million): decoding those would make a small message
/// cost hundreds of megabytes. Found by the `link` fuzz target.
fn checked_len(count: u32, words: usize, what: &'static str) -> Result<usize, DecodeError> {
    if count as usize > words {
        return Err(DecodeError::Oversized { what, count, words });
    }
    Ok(count as usize)
}

fn owned(text: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, DecodeError> {
    Ok(text?.to_str()?.to_string())
}
