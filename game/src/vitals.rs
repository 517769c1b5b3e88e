//! Health and energy: what the prompt shows, `train` spends, `rest` and time restore.

use serde::{Deserialize, Serialize};
use tether_engine::{Attribute, Ctx, Who};

use crate::gmcp;

/// Kept per character, so that a tired character is still tired after a reload.
pub(crate) const VITALS: Attribute<Vitals> = Attribute::new("vitals");

/// What a regeneration tick gives back.
pub(crate) const REGEN: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Vitals {
    pub(crate) hp: u32,
    pub(crate) max_hp: u32,
    pub(crate) mp: u32,
    pub(crate) max_mp: u32,
}

impl Default for Vitals {
    fn default() -> Vitals {
        Vitals {
            hp: 100,
            max_hp: 100,
            mp: 100,
            max_mp: 100,
        }
    }
}

impl Vitals {
    pub(crate) fn is_full(&self) -> bool {
        self.hp >= self.max_hp && self.mp >= self.max_mp
    }

    /// One tick's regeneration.
    pub(crate) fn regenerated(self) -> Vitals {
        Vitals {
            hp: (self.hp + REGEN).min(self.max_hp),
            mp: (self.mp + REGEN).min(self.max_mp),
            ..self
        }
    }
}

/// Saves `who`'s vitals and shows them to a client with a gauge.
pub(crate) fn set(
    ctx: &mut Ctx<'_>,
    who: Who,
    vitals: Vitals,
) -> Result<(), tether_engine::NotSaved> {
    ctx.set(who, &VITALS, &vitals)?;
    gmcp::char_vitals(ctx, who, &vitals);
    Ok(())
}

/// The regeneration tick: everyone below full gets some back. Only they are written, so a
/// game of rested players costs a walk over the players and nothing more.
pub(crate) fn regenerate(ctx: &mut Ctx<'_>) {
    for who in ctx.players_online() {
        let vitals = ctx.get(who, &VITALS);
        if vitals.is_full() {
            continue;
        }
        if let Err(error) = set(ctx, who, vitals.regenerated()) {
            tracing::error!(%error, "cannot save regenerated vitals");
        }
    }
}
