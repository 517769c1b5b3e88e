//! Every GMCP message the demo sends, built in one place.
//!
//! Shapes follow what common clients read: `Char.*` and `Comm.Channel.Text` as IRE games send
//! them, `Room.Info` as Mudlet's generic mapper reads it. Values are plain text, never
//! markup: clients show them in their own widgets.

use std::collections::BTreeMap;

use serde::Serialize;
use tether_engine::{Ctx, Who};
use tether_protocol::markup::plain;

use crate::vitals::Vitals;

/// Characters have no levels yet; clients that show one get a constant.
const LEVEL: u32 = 1;

/// `Char.Status {"level":1,"room":"Great Hall"}`
pub(crate) fn char_status(ctx: &mut Ctx<'_>, who: Who) {
    #[derive(Serialize)]
    struct Body {
        level: u32,
        room: String,
    }
    if !ctx.speaks_gmcp(who) {
        return;
    }
    let room = ctx
        .world()
        .room(ctx.room_of(who))
        .map(|room| plain(room.name()))
        .unwrap_or_default();
    ctx.gmcp(who, "Char.Status", &Body { level: LEVEL, room });
}

/// `Char.Vitals {"hp":100,"maxhp":100,"mp":100,"maxmp":100}`
pub(crate) fn char_vitals(ctx: &mut Ctx<'_>, who: Who, vitals: &Vitals) {
    #[derive(Serialize)]
    struct Body {
        hp: u32,
        maxhp: u32,
        mp: u32,
        maxmp: u32,
    }
    if !ctx.speaks_gmcp(who) {
        return;
    }
    let body = Body {
        hp: vitals.hp,
        maxhp: vitals.max_hp,
        mp: vitals.mp,
        maxmp: vitals.max_mp,
    };
    ctx.gmcp(who, "Char.Vitals", &body);
}

/// `Room.Info {"num":1,"name":"Town Square","area":"Tether Town","environment":"urban",
/// "exits":{"north":2}}`
pub(crate) fn room_info(ctx: &mut Ctx<'_>, who: Who) {
    #[derive(Serialize)]
    struct Body {
        num: u32,
        name: String,
        area: String,
        environment: String,
        exits: BTreeMap<String, u32>,
    }
    if !ctx.speaks_gmcp(who) {
        return;
    }
    let world = ctx.world();
    let Some(room) = world.room(ctx.room_of(who)) else {
        return;
    };
    let body = Body {
        num: room.num(),
        name: plain(room.name()),
        area: plain(world.area_of(room)),
        environment: room.environment().to_owned(),
        exits: room
            .exits()
            .iter()
            .filter_map(|exit| Some((exit.name().to_owned(), world.room(exit.to())?.num())))
            .collect(),
    };
    ctx.gmcp(who, "Room.Info", &body);
}

/// `Comm.Channel.Text {"channel":"say","talker":"Alice","text":"Alice says, \"hi\""}`:
/// `line` is the markup the recipient was shown, sent as plain text so that a chat window
/// shows the same words.
pub(crate) fn channel_text(ctx: &mut Ctx<'_>, to: Who, channel: &str, talker: &str, line: &str) {
    #[derive(Serialize)]
    struct Body<'a> {
        channel: &'a str,
        talker: &'a str,
        text: String,
    }
    if !ctx.speaks_gmcp(to) {
        return;
    }
    let body = Body {
        channel,
        talker,
        text: plain(line),
    };
    ctx.gmcp(to, "Comm.Channel.Text", &body);
}
