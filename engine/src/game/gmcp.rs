//! Every GMCP message the game sends, built in one place.
//!
//! The game sends them to every session; the proxy passes each one on only to clients that
//! negotiated GMCP and asked for its package (`Core.Supports.Set`). Values are plain text,
//! never markup: clients show them in their own widgets.
//!
//! Shapes follow what common clients read: `Char.*` and `Comm.Channel.Text` as IRE games send
//! them, `Room.Info` as Mudlet's generic mapper reads it.

use std::collections::BTreeMap;

use serde::Serialize;
use tether_protocol::markup::plain;

use crate::world::{Room, World};

use super::{Delivery, Player};

/// Characters have no levels yet; clients that show one get a constant.
const LEVEL: u32 = 1;

fn message(package: &str, body: &impl Serialize) -> Option<Delivery> {
    match serde_json::to_string(body) {
        Ok(json) => Some(Delivery::Gmcp {
            package: package.to_owned(),
            json,
        }),
        Err(error) => {
            tracing::error!(package, %error, "cannot encode a GMCP message");
            None
        }
    }
}

/// `Char.Name {"name":"Alice","fullname":"Alice the Brave"}`
pub(super) fn char_name(player: &Player) -> Option<Delivery> {
    #[derive(Serialize)]
    struct Body<'a> {
        name: &'a str,
        fullname: String,
    }
    let fullname = if player.title.is_empty() {
        player.name.clone()
    } else {
        format!("{} {}", player.name, player.title)
    };
    message(
        "Char.Name",
        &Body {
            name: &player.name,
            fullname,
        },
    )
}

/// `Char.Status {"level":1,"room":"Great Hall"}`
pub(super) fn char_status(world: &World, player: &Player) -> Option<Delivery> {
    #[derive(Serialize)]
    struct Body {
        level: u32,
        room: String,
    }
    let room = world
        .room(&player.room)
        .map(|room| plain(room.name()))
        .unwrap_or_default();
    message("Char.Status", &Body { level: LEVEL, room })
}

/// `Char.Vitals {"hp":100,"maxhp":100,"mp":100,"maxmp":100}`
pub(super) fn char_vitals(player: &Player) -> Option<Delivery> {
    #[derive(Serialize)]
    struct Body {
        hp: u32,
        maxhp: u32,
        mp: u32,
        maxmp: u32,
    }
    let v = player.vitals;
    message(
        "Char.Vitals",
        &Body {
            hp: v.hp,
            maxhp: v.max_hp,
            mp: v.mp,
            maxmp: v.max_mp,
        },
    )
}

/// `Room.Info {"num":1,"name":"Town Square","area":"Tether Town","environment":"urban",
/// "exits":{"north":2}}`
pub(super) fn room_info(world: &World, room: &Room) -> Option<Delivery> {
    #[derive(Serialize)]
    struct Body<'a> {
        num: u32,
        name: String,
        area: String,
        environment: &'a str,
        exits: BTreeMap<&'a str, u32>,
    }
    let exits = room
        .exits()
        .iter()
        .filter_map(|exit| Some((exit.name(), world.room(exit.to())?.num())))
        .collect();
    message(
        "Room.Info",
        &Body {
            num: room.num(),
            name: plain(room.name()),
            area: plain(world.area_of(room)),
            environment: room.environment(),
            exits,
        },
    )
}

/// `Comm.Channel.Text {"channel":"say","talker":"Alice","text":"Alice says, \"hi\""}`:
/// `line` is the markup the recipient was shown, sent as plain text so that a chat window
/// shows the same words.
pub(super) fn channel_text(channel: &str, talker: &str, line: &str) -> Option<Delivery> {
    #[derive(Serialize)]
    struct Body<'a> {
        channel: &'a str,
        talker: &'a str,
        text: String,
    }
    message(
        "Comm.Channel.Text",
        &Body {
            channel,
            talker,
            text: plain(line),
        },
    )
}
