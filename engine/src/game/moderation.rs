//! What administrators do to keep a game in order: kick, ban by name or address (kept in
//! the database, with an expiry), lift bans, say something to everyone, and shut the server
//! down after a countdown with a reason. Every action goes into the audit trail.
//!
//! These are the game's verbs, whoever asks: the in-game `@` commands (`admin_commands`) call
//! them with the administrator's character as the actor, and an operator's [`Order`] from a
//! proxy's admin API (the dashboard, `tether admin`) with whoever the proxy vouched for.

use std::net::IpAddr;
use std::time::Duration;

use tether_protocol::SessionKey;
use tether_protocol::markup::plain;
use tether_protocol::message::{Delivery, Order, OrderAction};

use super::names::{NameError, normalize_name};
use super::{AdminRequest, Game, Outbox, chain, msg};
use crate::api::NotSaved;
use crate::db::{AuditAction, Ban, BanTarget, PlannedShutdown};

/// How long before a planned shutdown everyone is warned, longest first.
const SHUTDOWN_WARNINGS: [Duration; 9] = [
    Duration::from_secs(60 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(2 * 60),
    Duration::from_secs(60),
    Duration::from_secs(30),
    Duration::from_secs(10),
];

/// How long a ban lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanLength {
    Forever,
    For(Duration),
}

impl BanLength {
    /// `forever` (or `permanent`), or a [`parse_span`] with its unit.
    pub fn parse(word: &str) -> Option<BanLength> {
        match word.to_ascii_lowercase().as_str() {
            "forever" | "permanent" | "perm" => Some(BanLength::Forever),
            _ => parse_span(word, None).map(BanLength::For),
        }
    }

    /// When a ban of this length made at `now_ms` ends.
    pub fn expires_ms(self, now_ms: i64) -> Option<i64> {
        match self {
            BanLength::Forever => None,
            BanLength::For(span) => {
                Some(now_ms.saturating_add(i64::try_from(span.as_millis()).unwrap_or(i64::MAX)))
            }
        }
    }
}

/// How the audit trail describes a ban's length and reason.
pub(crate) fn ban_detail(length: BanLength, reason: &str) -> String {
    match length {
        BanLength::Forever => format!("forever: {reason}"),
        BanLength::For(span) => format!("for {}: {reason}", msg::span(span)),
    }
}

/// A span such as `30s`, `10m`, `2h`, `7d` or `2w`; a bare number is in `bare` units, or not
/// a span when `bare` is `None`.
pub fn parse_span(word: &str, bare: Option<Duration>) -> Option<Duration> {
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (number, unit) = word.split_at(digits);
    let number: u32 = number.parse().ok().filter(|n| *n > 0)?;
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" => bare?,
        "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Duration::from_secs(60),
        "h" | "hour" | "hours" => Duration::from_secs(60 * 60),
        "d" | "day" | "days" => Duration::from_secs(24 * 60 * 60),
        "w" | "week" | "weeks" => Duration::from_secs(7 * 24 * 60 * 60),
        _ => return None,
    };
    unit.checked_mul(number)
}

/// What a ban is aimed at, as an administrator types it: an IP address, or a character name.
pub fn parse_ban_target(word: &str) -> Result<BanTarget, NameError> {
    match word.parse::<IpAddr>() {
        Ok(address) => Ok(BanTarget::Address(address.to_canonical())),
        Err(_) => normalize_name(word).map(BanTarget::Name),
    }
}

/// Why a moderation action did not happen, in words for the administrator.
#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("{0} is not in the game.")]
    NotOnline(String),
    #[error("There is no character named {0}.")]
    NoSuchCharacter(String),
    #[error("{0}")]
    BadName(#[from] NameError),
    #[error("You cannot do that to yourself.")]
    Yourself,
    #[error("{0}")]
    NotSaved(NotSaved),
}

/// A shutdown counting down in this core (also in the database, for the next core).
pub(super) struct Countdown {
    plan: PlannedShutdown,
    /// The next of [`SHUTDOWN_WARNINGS`] to give.
    next_warning: usize,
}

impl Countdown {
    /// Picks up `plan` at `now_ms`: warnings whose time has passed were given by whoever
    /// planned it (or by the core before this one).
    pub(super) fn new(plan: PlannedShutdown, now_ms: i64) -> Countdown {
        let left = ms_to_duration(plan.at_ms.saturating_sub(now_ms));
        let next_warning = SHUTDOWN_WARNINGS
            .iter()
            .position(|warning| *warning < left)
            .unwrap_or(SHUTDOWN_WARNINGS.len());
        Countdown { plan, next_warning }
    }
}

fn ms_to_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn duration_ms(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl Game {
    /// Adds a line to the audit trail; a failure is logged, not shown (the action itself
    /// already told its actor whether it happened).
    pub(crate) fn record(&self, actor: &str, action: AuditAction, target: &str, detail: &str) {
        tracing::info!(
            actor,
            action = action.as_str(),
            target,
            detail,
            "admin action"
        );
        if let Err(error) = self.db.audit(self.unix_ms, actor, action, target, detail) {
            tracing::error!(error = %chain(&error), "cannot record an administrator's action");
        }
    }

    /// The ban that keeps `target` out now, if any. A database that cannot answer keeps
    /// nobody out (and says so in the log): a broken ban list must not lock every player out.
    pub(super) fn ban_holding(&self, target: &BanTarget) -> Option<Ban> {
        match self.db.ban_on(target, self.unix_ms) {
            Ok(ban) => ban,
            Err(error) => {
                tracing::error!(%target, error = %chain(&error), "cannot check for a ban");
                None
            }
        }
    }

    /// The ban on the address session `key` comes from, if any.
    pub(super) fn address_ban(&self, key: SessionKey) -> Option<Ban> {
        let address = self.sessions.get(&key)?.peer?;
        self.ban_holding(&BanTarget::Address(address.to_canonical()))
    }

    /// Disconnects the player called `name`, telling them why.
    pub fn kick(
        &mut self,
        actor: &str,
        name: &str,
        reason: &str,
        out: &mut Outbox,
    ) -> Result<String, ModerationError> {
        let name = normalize_name(name)?;
        if name.eq_ignore_ascii_case(actor) {
            return Err(ModerationError::Yourself);
        }
        let who = self
            .find_online(&name)
            .ok_or_else(|| ModerationError::NotOnline(name.clone()))?;
        let name = self.player_of(who).map_or(name, |p| p.name.clone());
        self.disconnect(who.session, &msg::kicked(reason), out);
        self.record(actor, AuditAction::Kick, &name, reason);
        Ok(name)
    }

    /// Bans `target` for `length`; whoever it matches in the game now is disconnected.
    /// `actor_session` is the administrator's own, which an address ban must not cover.
    /// Returns how many connections were closed.
    pub fn ban(
        &mut self,
        actor: &str,
        actor_session: Option<SessionKey>,
        target: BanTarget,
        length: BanLength,
        reason: &str,
        out: &mut Outbox,
    ) -> Result<usize, ModerationError> {
        let hits = self.matching(&target);
        let covers_actor = match &target {
            BanTarget::Name(name) => name.eq_ignore_ascii_case(actor),
            BanTarget::Address(_) => actor_session.is_some_and(|key| hits.contains(&key)),
        };
        if covers_actor {
            return Err(ModerationError::Yourself);
        }
        let ban = Ban {
            target,
            reason: reason.to_owned(),
            by: actor.to_owned(),
            created_ms: self.unix_ms,
            expires_ms: length.expires_ms(self.unix_ms),
        };
        if let Err(error) = self.db.add_ban(&ban) {
            return Err(ModerationError::NotSaved(self.not_saved_error(error)));
        }
        let detail = ban_detail(length, reason);
        self.record(actor, AuditAction::Ban, &ban.target.to_string(), &detail);
        let farewell = msg::banned(&ban, self.unix_ms);
        for key in &hits {
            self.disconnect(*key, &farewell, out);
        }
        Ok(hits.len())
    }

    /// The sessions a ban on `target` would close now.
    fn matching(&self, target: &BanTarget) -> Vec<SessionKey> {
        match target {
            BanTarget::Name(name) => self
                .find_online(name)
                .map(|who| who.session)
                .into_iter()
                .collect(),
            BanTarget::Address(address) => self
                .sessions
                .iter()
                .filter(|(_, s)| !s.closing && s.peer.map(|p| p.to_canonical()) == Some(*address))
                .map(|(key, _)| *key)
                .collect(),
        }
    }

    /// Lifts the ban on `target`; whether there was one.
    pub fn unban(&mut self, actor: &str, target: &BanTarget) -> Result<bool, ModerationError> {
        let lifted = match self.db.remove_ban(target) {
            Ok(lifted) => lifted,
            Err(error) => return Err(ModerationError::NotSaved(self.not_saved_error(error))),
        };
        if lifted {
            self.record(actor, AuditAction::Unban, &target.to_string(), "");
        }
        Ok(lifted)
    }

    /// Says `text` to everyone connected.
    pub fn wall(&mut self, actor: &str, text: &str, out: &mut Outbox) {
        let said = msg::wall(actor, text);
        self.tell_everyone(&said, out);
        self.record(actor, AuditAction::Wall, "everyone", text);
    }

    fn tell_everyone(&self, text: &str, out: &mut Outbox) {
        for (key, session) in &self.sessions {
            if !session.closing {
                out.text(*key, text);
            }
        }
    }

    /// Makes `name` an administrator (`admin`) or a player again; whether it changed.
    pub fn set_admin(
        &mut self,
        actor: &str,
        name: &str,
        admin: bool,
    ) -> Result<(String, bool), ModerationError> {
        let name = normalize_name(name)?;
        if !admin && name.eq_ignore_ascii_case(actor) {
            // The host's `tether admin demote` can; in the game it would be a slip.
            return Err(ModerationError::Yourself);
        }
        match self.db.set_admin(&name, admin) {
            Ok(None) => Err(ModerationError::NoSuchCharacter(name)),
            Ok(Some(was)) => {
                let changed = was != admin;
                if changed {
                    let action = if admin {
                        AuditAction::Promote
                    } else {
                        AuditAction::Demote
                    };
                    self.record(actor, action, &name, "");
                }
                Ok((name, changed))
            }
            Err(error) => Err(ModerationError::NotSaved(self.not_saved_error(error))),
        }
    }

    /// The shutdown counting down, if one is: when (Unix milliseconds), why and by whom.
    pub fn planned_shutdown(&self) -> Option<&PlannedShutdown> {
        self.countdown.as_ref().map(|c| &c.plan)
    }

    /// Shuts the server down in `after` (now, for zero), telling everyone; a countdown
    /// replaces any earlier one. `requester` hears if the supervisor refuses.
    pub fn shut_down(
        &mut self,
        actor: &str,
        requester: Option<SessionKey>,
        after: Duration,
        reason: &str,
        out: &mut Outbox,
    ) -> Result<(), ModerationError> {
        let plan = PlannedShutdown {
            at_ms: self.unix_ms.saturating_add(duration_ms(after)),
            reason: reason.to_owned(),
            by: actor.to_owned(),
        };
        let detail = if after.is_zero() {
            format!("now: {reason}")
        } else {
            format!("in {}: {reason}", msg::span(after))
        };
        self.record(actor, AuditAction::Shutdown, "server", &detail);
        if after.is_zero() {
            self.countdown = None;
            if let Err(error) = self.db.set_planned_shutdown(None) {
                tracing::error!(error = %chain(&error), "cannot clear the planned shutdown");
            }
            self.tell_everyone(&msg::shutdown_now(reason), out);
            out.requests.push((requester, AdminRequest::Shutdown));
            return Ok(());
        }
        if let Err(error) = self.db.set_planned_shutdown(Some(&plan)) {
            return Err(ModerationError::NotSaved(self.not_saved_error(error)));
        }
        self.tell_everyone(&msg::shutdown_in(after, reason), out);
        self.countdown = Some(Countdown::new(plan, self.unix_ms));
        Ok(())
    }

    /// Calls off the planned shutdown; whether there was one.
    pub fn cancel_shutdown(
        &mut self,
        actor: &str,
        out: &mut Outbox,
    ) -> Result<bool, ModerationError> {
        if self.countdown.is_none() {
            return Ok(false);
        }
        if let Err(error) = self.db.set_planned_shutdown(None) {
            return Err(ModerationError::NotSaved(self.not_saved_error(error)));
        }
        self.countdown = None;
        self.record(actor, AuditAction::ShutdownCancelled, "server", "");
        self.tell_everyone(msg::shutdown_cancelled(), out);
        Ok(true)
    }

    /// At each tick: the countdown's warnings, and the shutdown itself when it is due.
    pub(super) fn run_countdown(&mut self, out: &mut Outbox) {
        let Some(countdown) = &mut self.countdown else {
            return;
        };
        let left_ms = countdown.plan.at_ms.saturating_sub(self.unix_ms);
        if left_ms <= 0 {
            let plan = countdown.plan.clone();
            self.countdown = None;
            // Cleared first: a server that comes back must not shut down again at once.
            if let Err(error) = self.db.set_planned_shutdown(None) {
                tracing::error!(error = %chain(&error), "cannot clear the planned shutdown");
            }
            tracing::info!(by = %plan.by, reason = %plan.reason, "planned shutdown is due");
            self.tell_everyone(&msg::shutdown_now(&plan.reason), out);
            out.requests.push((None, AdminRequest::Shutdown));
            return;
        }
        let left = ms_to_duration(left_ms);
        let mut due = None;
        while let Some(warning) = SHUTDOWN_WARNINGS.get(countdown.next_warning)
            && left <= *warning
        {
            due = Some(*warning);
            countdown.next_warning += 1;
        }
        if let Some(warning) = due {
            let text = msg::shutdown_in(warning, &countdown.plan.reason);
            self.tell_everyone(&text, out);
        }
    }

    /// Picks up a countdown a previous core started (see [`Game::new`]).
    pub(super) fn resume_countdown(&mut self) {
        match self.db.planned_shutdown() {
            Ok(plan) => self.countdown = plan.map(|plan| Countdown::new(plan, self.unix_ms)),
            Err(error) => {
                tracing::error!(error = %chain(&error), "cannot read the planned shutdown")
            }
        }
    }
}

impl Game {
    /// Carries out an operator's order from proxy `proxy` and answers it there.
    pub(crate) fn order(&mut self, proxy: u64, order: Order, out: &mut Outbox) {
        let Order { id, actor, action } = order;
        // Whatever the operator's tool sent, players get it as any player's text would be.
        let clean = |text: String| crate::text::sanitize_player_text(&text);
        let action = match action {
            OrderAction::Kick { name, reason } => OrderAction::Kick {
                name,
                reason: clean(reason),
            },
            OrderAction::Ban {
                target,
                seconds,
                reason,
            } => OrderAction::Ban {
                target,
                seconds,
                reason: clean(reason),
            },
            OrderAction::Wall { text } => OrderAction::Wall { text: clean(text) },
            OrderAction::Shutdown { seconds, reason } => OrderAction::Shutdown {
                seconds,
                reason: clean(reason),
            },
            other => other,
        };
        let mark = out.events.len();
        let done: Result<String, ModerationError> = match action {
            OrderAction::Kick { name, reason } => self
                .kick(&actor, &name, &reason, out)
                .map(|name| msg::kick_done(&name)),
            OrderAction::Ban {
                target,
                seconds,
                reason,
            } => parse_ban_target(&target)
                .map_err(ModerationError::from)
                .and_then(|target| {
                    let length = match seconds {
                        0 => BanLength::Forever,
                        seconds => BanLength::For(Duration::from_secs(seconds)),
                    };
                    let closed = self.ban(&actor, None, target.clone(), length, &reason, out)?;
                    Ok(msg::ban_done(&target, length, closed))
                }),
            OrderAction::Unban { target } => parse_ban_target(&target)
                .map_err(ModerationError::from)
                .and_then(|target| {
                    let lifted = self.unban(&actor, &target)?;
                    Ok(msg::unbanned(&target, lifted))
                }),
            OrderAction::Wall { text } => {
                self.wall(&actor, &text, out);
                Ok("Said to everyone.".to_owned())
            }
            OrderAction::Shutdown { seconds, reason } => self
                .shut_down(
                    &actor,
                    None,
                    Duration::from_secs(seconds.into()),
                    &reason,
                    out,
                )
                .map(|()| msg::shutdown_status(self.planned_shutdown(), self.unix_ms)),
            OrderAction::CancelShutdown => self.cancel_shutdown(&actor, out).map(|cancelled| {
                if cancelled {
                    msg::shutdown_cancelled().to_owned()
                } else {
                    msg::shutdown_status(None, self.unix_ms)
                }
            }),
            OrderAction::Reload | OrderAction::UpgradeProxy => {
                let (request, audit, said) = if action == OrderAction::Reload {
                    (AdminRequest::Reload, AuditAction::Reload, msg::reloading())
                } else {
                    (
                        AdminRequest::UpgradeProxy,
                        AuditAction::UpgradeProxy,
                        msg::upgrading_proxy(),
                    )
                };
                self.record(&actor, audit, "server", "");
                out.requests.push((None, request));
                Ok(said.to_owned())
            }
        };
        let (ok, said) = match done {
            Ok(said) => (true, said),
            Err(ModerationError::NotSaved(error)) => (false, self.not_saved(&error)),
            Err(error) => (false, error.to_string()),
        };
        out.push(
            SessionKey { proxy, session: 0 },
            Delivery::OrderDone {
                id,
                ok,
                said: plain(&said),
            },
        );
        self.prompt_bystanders(mark, None, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_lengths_read_the_way_admins_write_them() {
        assert_eq!(parse_span("30s", None), Some(Duration::from_secs(30)));
        assert_eq!(parse_span("10m", None), Some(Duration::from_secs(600)));
        assert_eq!(parse_span("2h", None), Some(Duration::from_secs(7200)));
        assert_eq!(parse_span("7d", None), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(
            parse_span("5", None),
            None,
            "a bare number needs a unit here"
        );
        assert_eq!(
            parse_span("5", Some(Duration::from_secs(60))),
            Some(Duration::from_secs(300))
        );
        for bad in ["", "m", "0m", "-5m", "5x", "spam", "99999999999d"] {
            assert_eq!(parse_span(bad, None), None, "{bad}");
        }
        assert_eq!(BanLength::parse("forever"), Some(BanLength::Forever));
        assert_eq!(BanLength::parse("spam"), None);
        assert_eq!(
            BanLength::For(Duration::from_secs(2)).expires_ms(1_000),
            Some(3_000)
        );
    }

    #[test]
    fn a_target_is_an_address_or_a_name() {
        assert_eq!(
            parse_ban_target("203.0.113.7").unwrap(),
            BanTarget::Address("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            parse_ban_target("::ffff:203.0.113.7").unwrap(),
            BanTarget::Address("203.0.113.7".parse().unwrap()),
            "an IPv4 address seen through an IPv6 socket is the same address"
        );
        assert_eq!(
            parse_ban_target("mALLory").unwrap(),
            BanTarget::Name("Mallory".into())
        );
        assert!(parse_ban_target("m4llory").is_err());
    }

    #[test]
    fn a_resumed_countdown_skips_the_warnings_already_given() {
        let plan = |at_ms| PlannedShutdown {
            at_ms,
            reason: String::new(),
            by: String::new(),
        };
        // 4 minutes left: the 5-minute warning was given, the 2-minute one is next.
        let countdown = Countdown::new(plan(240_000), 0);
        assert_eq!(
            SHUTDOWN_WARNINGS[countdown.next_warning],
            Duration::from_secs(120)
        );
        assert_eq!(
            Countdown::new(plan(5_000), 0).next_warning,
            SHUTDOWN_WARNINGS.len()
        );
        assert_eq!(Countdown::new(plan(i64::MAX), 0).next_warning, 0);
    }
}
