//! GMCP messages: how any is built (for `api::Ctx::gmcp`), and the one the engine sends
//! itself, `Char.Name`, since the name and title are the engine's.
//!
//! The proxy passes each message on only to clients that negotiated GMCP and asked for its
//! package (`Core.Supports.Set`). Values are plain text, never markup: clients show them in
//! their own widgets.

use serde::Serialize;

use super::{Delivery, Player};

/// A GMCP message with `body` as its JSON; `None` (logged) if it cannot be encoded.
pub(crate) fn message(package: &str, body: &impl Serialize) -> Option<Delivery> {
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
pub(crate) fn char_name(player: &Player) -> Option<Delivery> {
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
