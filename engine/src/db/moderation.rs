//! The tables of moderation: bans, the administrators' audit trail and a shutdown announced
//! for later. The game and `tether admin` both work through these, so a ban made on the host
//! holds at the next login without telling the game.

use std::net::IpAddr;

use rusqlite::{OptionalExtension, params};

use super::{Context, Db, DbError};

/// Who a ban keeps out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BanTarget {
    /// A character's name, as stored (capitalised); also keeps the name from being created.
    Name(String),
    /// Every connection from this address (the client's, as the proxy saw it or as a
    /// trusted PROXY header said).
    Address(IpAddr),
}

impl BanTarget {
    fn kind(&self) -> &'static str {
        match self {
            BanTarget::Name(_) => "name",
            BanTarget::Address(_) => "address",
        }
    }

    fn key(&self) -> String {
        match self {
            BanTarget::Name(name) => name.clone(),
            BanTarget::Address(address) => address.to_string(),
        }
    }

    fn from_row(kind: &str, target: &str) -> Option<BanTarget> {
        match kind {
            "name" => Some(BanTarget::Name(target.to_owned())),
            "address" => target.parse().ok().map(BanTarget::Address),
            _ => None,
        }
    }
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanTarget::Name(name) => f.write_str(name),
            BanTarget::Address(address) => write!(f, "address {address}"),
        }
    }
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub target: BanTarget,
    pub reason: String,
    /// The administrator who made it, as the audit trail names them.
    pub by: String,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it ends, in milliseconds since the Unix epoch; `None`: until it is lifted.
    pub expires_ms: Option<i64>,
}

/// What an administrator did, as the audit trail records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Kick,
    Ban,
    Unban,
    Wall,
    Shutdown,
    ShutdownCancelled,
    Reload,
    UpgradeProxy,
    Promote,
    Demote,
    CreateAccount,
    ResetPassword,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Kick => "kick",
            AuditAction::Ban => "ban",
            AuditAction::Unban => "unban",
            AuditAction::Wall => "wall",
            AuditAction::Shutdown => "shutdown",
            AuditAction::ShutdownCancelled => "shutdown-cancelled",
            AuditAction::Reload => "reload",
            AuditAction::UpgradeProxy => "upgrade-proxy",
            AuditAction::Promote => "promote",
            AuditAction::Demote => "demote",
            AuditAction::CreateAccount => "create-account",
            AuditAction::ResetPassword => "reset-password",
        }
    }
}

/// One line of the audit trail. The action is kept as it was written, so that a trail
/// written by a newer core still reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// A shutdown announced for later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedShutdown {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub reason: String,
    pub by: String,
}

impl Db {
    /// Makes or replaces the ban on `ban.target`.
    pub fn add_ban(&self, ban: &Ban) -> Result<(), DbError> {
        self.check_file()?;
        self.conn
            .prepare_cached(
                "INSERT INTO bans (kind, target, reason, by_whom, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (kind, target) DO UPDATE SET reason = excluded.reason,
                   by_whom = excluded.by_whom, created_ms = excluded.created_ms,
                   expires_ms = excluded.expires_ms",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    ban.target.kind(),
                    ban.target.key(),
                    ban.reason,
                    ban.by,
                    ban.created_ms,
                    ban.expires_ms
                ])
            })
            .context("saving a ban")?;
        Ok(())
    }

    /// Lifts the ban on `target`; whether there was one (expired or not).
    pub fn remove_ban(&self, target: &BanTarget) -> Result<bool, DbError> {
        self.check_file()?;
        let removed = self
            .conn
            .prepare_cached("DELETE FROM bans WHERE kind = ?1 AND target = ?2")
            .and_then(|mut statement| statement.execute(params![target.kind(), target.key()]))
            .context("lifting a ban")?;
        Ok(removed > 0)
    }

    /// The ban on `target` that holds at `now_ms`, if any.
    pub fn ban_on(&self, target: &BanTarget, now_ms: i64) -> Result<Option<Ban>, DbError> {
        self.conn
            .prepare_cached(
                "SELECT reason, by_whom, created_ms, expires_ms FROM bans
                 WHERE kind = ?1 AND target = ?2 AND (expires_ms IS NULL OR expires_ms > ?3)",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![target.kind(), target.key(), now_ms], |row| {
                        Ok(Ban {
                            target: target.clone(),
                            reason: row.get(0)?,
                            by: row.get(1)?,
                            created_ms: row.get(2)?,
                            expires_ms: row.get(3)?,
                        })
                    })
                    .optional()
            })
            .context("checking for a ban")
    }

    /// Every ban that holds at `now_ms`, names first, then addresses, each sorted.
    pub fn bans(&self, now_ms: i64) -> Result<Vec<Ban>, DbError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT kind, target, reason, by_whom, created_ms, expires_ms FROM bans
                 WHERE expires_ms IS NULL OR expires_ms > ?1 ORDER BY kind DESC, target",
            )
            .context("listing bans")?;
        let rows = statement
            .query_map([now_ms], |row| {
                let kind: String = row.get(0)?;
                let target: String = row.get(1)?;
                Ok((
                    BanTarget::from_row(&kind, &target),
                    Ban {
                        target: BanTarget::Name(String::new()),
                        reason: row.get(2)?,
                        by: row.get(3)?,
                        created_ms: row.get(4)?,
                        expires_ms: row.get(5)?,
                    },
                ))
            })
            .context("listing bans")?;
        let mut bans = Vec::new();
        for row in rows {
            // A kind this core does not know (written by a newer one) is not shown.
            if let (Some(target), ban) = row.context("listing bans")? {
                bans.push(Ban { target, ..ban });
            }
        }
        Ok(bans)
    }

    /// Adds a line to the audit trail.
    pub fn audit(
        &self,
        at_ms: i64,
        actor: &str,
        action: AuditAction,
        target: &str,
        detail: &str,
    ) -> Result<(), DbError> {
        self.check_file()?;
        self.conn
            .prepare_cached(
                "INSERT INTO admin_audit (at_ms, actor, action, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut statement| {
                statement.execute(params![at_ms, actor, action.as_str(), target, detail])
            })
            .context("recording an administrator's action")?;
        Ok(())
    }

    /// The last `limit` lines of the audit trail, oldest first.
    pub fn audit_trail(&self, limit: usize) -> Result<Vec<AuditEntry>, DbError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT at_ms, actor, action, target, detail FROM
                   (SELECT * FROM admin_audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
            )
            .context("reading the audit trail")?;
        let rows = statement
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                Ok(AuditEntry {
                    at_ms: row.get(0)?,
                    actor: row.get(1)?,
                    action: row.get(2)?,
                    target: row.get(3)?,
                    detail: row.get(4)?,
                })
            })
            .context("reading the audit trail")?;
        rows.collect::<Result<_, _>>()
            .context("reading the audit trail")
    }

    /// The shutdown announced for later, if one is.
    pub fn planned_shutdown(&self) -> Result<Option<PlannedShutdown>, DbError> {
        self.conn
            .query_row(
                "SELECT at_ms, reason, by_whom FROM scheduled_shutdown WHERE only = 1",
                [],
                |row| {
                    Ok(PlannedShutdown {
                        at_ms: row.get(0)?,
                        reason: row.get(1)?,
                        by: row.get(2)?,
                    })
                },
            )
            .optional()
            .context("reading the planned shutdown")
    }

    /// Plans a shutdown (replacing any), or with `None` calls it off.
    pub fn set_planned_shutdown(&self, plan: Option<&PlannedShutdown>) -> Result<(), DbError> {
        self.check_file()?;
        match plan {
            Some(plan) => self.conn.execute(
                "INSERT INTO scheduled_shutdown (only, at_ms, reason, by_whom)
                 VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (only) DO UPDATE SET at_ms = excluded.at_ms,
                   reason = excluded.reason, by_whom = excluded.by_whom",
                params![plan.at_ms, plan.reason, plan.by],
            ),
            None => self
                .conn
                .execute("DELETE FROM scheduled_shutdown WHERE only = 1", []),
        }
        .context("saving the planned shutdown")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_hold_until_they_expire_or_are_lifted() {
        let db = Db::open_in_memory().expect("db");
        let name = BanTarget::Name("Mallory".into());
        let address = BanTarget::Address("203.0.113.9".parse().expect("ip"));
        db.add_ban(&Ban {
            target: name.clone(),
            reason: "spam".into(),
            by: "Root".into(),
            created_ms: 1_000,
            expires_ms: Some(5_000),
        })
        .expect("ban");
        db.add_ban(&Ban {
            target: address.clone(),
            reason: "bots".into(),
            by: "Root".into(),
            created_ms: 1_000,
            expires_ms: None,
        })
        .expect("ban");
        assert_eq!(
            db.ban_on(&name, 4_999).expect("check").map(|b| b.reason),
            Some("spam".into())
        );
        assert_eq!(db.ban_on(&name, 5_000).expect("check"), None, "expired");
        assert!(db.ban_on(&address, i64::MAX).expect("check").is_some());
        let listed: Vec<BanTarget> = db
            .bans(2_000)
            .expect("list")
            .into_iter()
            .map(|b| b.target)
            .collect();
        assert_eq!(listed, [name.clone(), address.clone()]);
        assert_eq!(db.bans(6_000).expect("list").len(), 1);
        assert!(db.remove_ban(&address).expect("unban"));
        assert!(!db.remove_ban(&address).expect("again"));
        assert_eq!(db.ban_on(&address, 2_000).expect("check"), None);
    }

    #[test]
    fn the_audit_trail_keeps_the_latest_in_order() {
        let db = Db::open_in_memory().expect("db");
        for n in 0..5 {
            db.audit(n, "Root", AuditAction::Kick, &format!("p{n}"), "")
                .expect("audit");
        }
        let last: Vec<String> = db
            .audit_trail(2)
            .expect("trail")
            .into_iter()
            .map(|e| e.target)
            .collect();
        assert_eq!(last, ["p3", "p4"]);
    }

    #[test]
    fn a_planned_shutdown_is_kept_replaced_and_called_off() {
        let db = Db::open_in_memory().expect("db");
        assert_eq!(db.planned_shutdown().expect("read"), None);
        let plan = PlannedShutdown {
            at_ms: 10,
            reason: "upgrade".into(),
            by: "Root".into(),
        };
        db.set_planned_shutdown(Some(&plan)).expect("plan");
        let later = PlannedShutdown { at_ms: 20, ..plan };
        db.set_planned_shutdown(Some(&later)).expect("replan");
        assert_eq!(db.planned_shutdown().expect("read"), Some(later));
        db.set_planned_shutdown(None).expect("cancel");
        assert_eq!(db.planned_shutdown().expect("read"), None);
    }
}
