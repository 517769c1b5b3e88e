//! The game's ticks and timers (see `api::Rules::every` and `Rules::timer`), and how they
//! outlive the core: a tick's last run and every pending timer are in the database, in
//! wall-clock milliseconds, so the next core carries on where this one stopped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Game, Outbox, chain};
use crate::api::{Ctx, NotSaved, Who};
use crate::db::TimerRow;

/// How often login limits are checked: a walk over every session, so not at every tick.
const LIMITS_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Clock {
    /// When each of the rules' ticks is next due, in their order; worked out at the first
    /// [`Game::tick`], the first moment the game knows the time.
    next_ticks: Option<Vec<Instant>>,
    /// Pending timers by (due, id).
    timers: BTreeMap<(i64, i64), TimerRow>,
    last_limits: Option<Instant>,
}

impl Clock {
    pub(super) fn new(timers: Vec<TimerRow>) -> Clock {
        Clock {
            next_ticks: None,
            timers: timers
                .into_iter()
                .map(|timer| ((timer.due_ms, timer.id), timer))
                .collect(),
            last_limits: None,
        }
    }

    /// Whether it is time to check login limits again (and if so, notes that it is done).
    pub(super) fn limits_due(&mut self, now: Instant) -> bool {
        let due = self
            .last_limits
            .is_none_or(|last| now.saturating_duration_since(last) >= LIMITS_EVERY);
        if due {
            self.last_limits = Some(now);
        }
        due
    }
}

impl Game {
    pub(super) fn run_ticks(&mut self, out: &mut Outbox) {
        let rules = self.rules.clone();
        if rules.ticks.is_empty() {
            return;
        }
        let (now, unix_ms) = (self.now, self.unix_ms);
        let mut next = match self.clock.next_ticks.take() {
            Some(next) => next,
            None => rules
                .ticks
                .iter()
                .map(|tick| now + self.first_wait(&tick.name, tick.period))
                .collect(),
        };
        for (tick, due) in rules.ticks.iter().zip(next.iter_mut()) {
            if now < *due {
                continue;
            }
            // A core that was stopped for longer than a period runs the tick once, not once
            // for every period missed.
            *due = now + tick.period;
            if let Err(error) = self.db.set_tick_last_run(&tick.name, unix_ms) {
                tracing::error!(tick = %tick.name, error = %chain(&error), "cannot save a tick's run");
            }
            let mut ctx = Ctx::new(self, out, None);
            super::isolated("a tick", || (tick.hook)(&mut ctx));
        }
        self.clock.next_ticks = Some(next);
    }

    /// How long the tick `name` waits before its first run in this core: what was left of
    /// its period when the last core stopped.
    fn first_wait(&mut self, name: &str, period: Duration) -> Duration {
        match self.db.tick_last_run(name) {
            Ok(Some(last_ms)) => {
                let since = u64::try_from(self.unix_ms.saturating_sub(last_ms)).unwrap_or(0);
                period.saturating_sub(Duration::from_millis(since))
            }
            Ok(None) => {
                // Counted from now, and saved, so a game that is reloaded more often than the
                // period still gets its tick.
                if let Err(error) = self.db.set_tick_last_run(name, self.unix_ms) {
                    tracing::error!(tick = name, error = %chain(&error), "cannot save a tick's start");
                }
                period
            }
            Err(error) => {
                tracing::error!(tick = name, error = %chain(&error), "cannot read a tick's last run");
                period
            }
        }
    }

    pub(super) fn run_timers(&mut self, out: &mut Outbox) {
        let rules = self.rules.clone();
        while let Some(entry) = self.clock.timers.first_entry() {
            if entry.key().0 > self.unix_ms {
                break;
            }
            let timer = entry.remove();
            // Forgotten before it runs: a core that dies while it runs does not run it again.
            if let Err(error) = self.db.delete_timer(timer.id) {
                tracing::error!(timer = %timer.name, error = %chain(&error), "cannot remove a fired timer");
            }
            let Some(hook) = rules.timers.get(&timer.name) else {
                tracing::warn!(timer = %timer.name, "a timer fired that the game has no handler for");
                continue;
            };
            let data = serde_json::from_str(&timer.data).unwrap_or_else(|error| {
                tracing::error!(timer = %timer.name, %error, "a timer's data does not read");
                serde_json::Value::Null
            });
            let me = timer.character.and_then(|id| {
                let session = self.session_of(id)?;
                Some(Who {
                    session,
                    character: id,
                })
            });
            let mut ctx = Ctx::new(self, out, me);
            super::isolated("a timer", || hook(&mut ctx, &data));
        }
    }

    pub(crate) fn start_timer(
        &mut self,
        delay: Duration,
        name: &str,
        character: Option<i64>,
        data: String,
    ) -> Result<(), NotSaved> {
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        let due_ms = self.unix_ms.saturating_add(delay_ms);
        let id = self
            .db
            .add_timer(due_ms, name, character, &data)
            .map_err(|error| self.not_saved_error(error))?;
        self.clock.timers.insert(
            (due_ms, id),
            TimerRow {
                id,
                due_ms,
                name: name.to_owned(),
                character,
                data,
            },
        );
        Ok(())
    }
}
