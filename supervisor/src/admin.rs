//! `tether admin`: the operator's hand on the accounts, on the server's host. The work is
//! `tether_engine::admin`'s; this is the command line around it: finding the data directory,
//! asking for passwords, saying what happened.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{Context, bail};
use tether_engine::admin::{
    Accounts, Ban, BanLength, BanTarget, Change, parse_ban_target, parse_span,
};

use crate::orders::{self, Outcome};

use crate::cli::{AdminAction, Options};

/// Runs one `tether admin` action; what it did goes to stdout.
pub fn run(options: &Options, action: &AdminAction) -> anyhow::Result<()> {
    let data = crate::config::client_data_dir(options)?;
    same_user_as(&data, "tether admin")?;
    // Opened only by the actions that need them: a proxy's host has no accounts.
    let actor = actor();
    let accounts = || {
        Accounts::open(&data, &actor)
            .with_context(|| format!("cannot open the accounts in {}", data.display()))
    };
    let mut out = std::io::stdout().lock();
    match action {
        AdminAction::Create { name, player } => {
            let password = new_password()?;
            let name = accounts()?.create(name, &password, !player)?;
            let role = if *player {
                "a player"
            } else {
                "an administrator"
            };
            writeln!(out, "created {name}, {role}; log in with `connect {name}`")?;
        }
        AdminAction::Promote { name } => {
            let said = match accounts()?.set_admin(name, true)? {
                Change::Made => "is now an administrator",
                Change::AlreadySo => "was already an administrator",
            };
            writeln!(out, "{} {said}", display_name(name))?;
        }
        AdminAction::Demote { name } => {
            let said = match accounts()?.set_admin(name, false)? {
                Change::Made => "is no longer an administrator",
                Change::AlreadySo => "was not an administrator",
            };
            writeln!(out, "{} {said}", display_name(name))?;
        }
        AdminAction::List => {
            let listed = accounts()?.list()?;
            if listed.is_empty() {
                writeln!(out, "no accounts yet")?;
            }
            for account in listed {
                let role = if account.is_admin { "admin " } else { "player" };
                let created = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(account.created_at.max(0) as u64);
                writeln!(
                    out,
                    "{:<20}  {role}  created {}",
                    account.name,
                    httpdate::fmt_http_date(created)
                )?;
            }
        }
        AdminAction::ResetPassword { name } => {
            let password = new_password()?;
            let name = accounts()?.reset_password(name, &password)?;
            writeln!(out, "{name} has a new password")?;
        }
        AdminAction::Ban {
            target,
            length,
            reason,
        } => {
            let target = ban_target(target)?;
            let Some(length) = BanLength::parse(length) else {
                bail!("{length:?} is not a time: use 30m, 12h, 7d, 2w or forever");
            };
            let seconds = match length {
                BanLength::Forever => 0,
                BanLength::For(span) => span.as_secs(),
            };
            let order = serde_json::json!({
                "order": "ban", "target": target_word(&target), "seconds": seconds, "reason": reason
            });
            // Through the running game, which also closes whatever the ban covers; straight
            // into the database when none runs.
            if let Some(said) = live(options, &data, &actor, order)? {
                writeln!(out, "{said}")?;
            } else {
                let ban = accounts()?.ban(&target, length, reason)?;
                writeln!(
                    out,
                    "banned {} (no game answered on this host's web listener: it holds from \
                     the next login)",
                    describe(&ban)
                )?;
            }
        }
        AdminAction::Unban { target } => {
            let target = ban_target(target)?;
            let order = serde_json::json!({"order": "unban", "target": target_word(&target)});
            if let Some(said) = live(options, &data, &actor, order)? {
                writeln!(out, "{said}")?;
            } else {
                let said = if accounts()?.unban(&target)? {
                    "the ban is lifted"
                } else {
                    "was not banned"
                };
                writeln!(out, "{target}: {said}")?;
            }
        }
        AdminAction::Kick { name, reason } => {
            let order = serde_json::json!({"order": "kick", "name": name, "reason": reason});
            writeln!(out, "{}", running(live(options, &data, &actor, order)?)?)?;
        }
        AdminAction::Wall { text } => {
            let order = serde_json::json!({"order": "wall", "text": text.join(" ")});
            writeln!(out, "{}", running(live(options, &data, &actor, order)?)?)?;
        }
        AdminAction::Shutdown { when, reason } => {
            let order = match when.to_ascii_lowercase().as_str() {
                "cancel" => serde_json::json!({"order": "cancel-shutdown"}),
                "now" => serde_json::json!({"order": "shutdown", "seconds": 0, "reason": reason}),
                _ => {
                    let Some(after) = parse_span(when, Some(std::time::Duration::from_secs(60)))
                    else {
                        bail!(
                            "{when:?} is not a time: use now, minutes (10), 90s, 15m, 2h or cancel"
                        );
                    };
                    let seconds = u32::try_from(after.as_secs()).unwrap_or(u32::MAX);
                    serde_json::json!({"order": "shutdown", "seconds": seconds, "reason": reason})
                }
            };
            writeln!(out, "{}", running(live(options, &data, &actor, order)?)?)?;
        }
        AdminAction::Bans => {
            let bans = accounts()?.bans()?;
            if bans.is_empty() {
                writeln!(out, "nobody is banned")?;
            }
            for ban in bans {
                writeln!(out, "{}", describe(&ban))?;
            }
        }
        AdminAction::Audit { last } => {
            let trail = accounts()?.audit_trail(*last)?;
            if trail.is_empty() {
                writeln!(out, "no administrator has done anything yet")?;
            }
            for entry in trail {
                write!(
                    out,
                    "{}  {:<16} {:<18} {}",
                    date(entry.at_ms),
                    entry.actor,
                    entry.action,
                    entry.target
                )?;
                if !entry.detail.is_empty() {
                    write!(out, " ({})", entry.detail)?;
                }
                writeln!(out)?;
            }
        }
        AdminAction::Token { rotate } => token(&data, *rotate)?,
    }
    Ok(())
}

/// Prints the admin token, making one if there is none (or a new one if `rotate`). Only the
/// token goes to stdout, so `tether admin token > file` gives a scraper its credentials file;
/// what happened goes to stderr.
fn token(data: &Path, rotate: bool) -> anyhow::Result<()> {
    let (token, said) = token_in(data, rotate)?;
    if let Some(said) = said {
        eprintln!("{said}");
    }
    writeln!(std::io::stdout().lock(), "{token}")?;
    Ok(())
}

/// The admin token of `data`, made if there is none (or made anew if `rotate`), and what
/// was done, if anything. A proxy reads the file at each request: a new one counts at once.
pub(crate) fn token_in(data: &Path, rotate: bool) -> anyhow::Result<(String, Option<String>)> {
    use tether_protocol::admin_token;
    let path = data.join(admin_token::FILE_IN_DATA);
    let kept = admin_token::read(&path)
        .with_context(|| format!("cannot read the admin token at {}", path.display()))?;
    match kept {
        Some(token) if !rotate => Ok((token, None)),
        kept => {
            std::fs::create_dir_all(data)
                .with_context(|| format!("cannot create {}", data.display()))?;
            let token = admin_token::generate()?;
            admin_token::write(&path, &token)
                .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
            let said = if kept.is_some() {
                "a new admin token replaces the old one, which no longer works"
            } else {
                "made an admin token"
            };
            Ok((
                token,
                Some(format!("{said}; it is kept in {}", path.display())),
            ))
        }
    }
}

/// Who the audit trail says made a change from this host: `host:<user>`.
fn actor() -> String {
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |user| user.name);
    format!("host:{user}")
}

/// Posts an order to the running game: what it said, or `None` when no game runs here.
/// A refusal (not online, a bad name) or a proxy without a core is an error.
fn live(
    options: &Options,
    data: &Path,
    actor: &str,
    order: serde_json::Value,
) -> anyhow::Result<Option<String>> {
    let Some(web) = crate::config::client_web_address(options)? else {
        bail!(
            "orders to a running game go through the proxy's web listener, and `http` is off \
             here; use the in-game @ commands"
        );
    };
    match orders::send(&web, data, actor, order)? {
        Outcome::Done(said) => Ok(Some(said)),
        Outcome::Refused(said) | Outcome::NoCore(said) => bail!("{said}"),
        Outcome::NoGame => Ok(None),
    }
}

/// What an order that needs a running game says, or why there is none.
fn running(said: Option<String>) -> anyhow::Result<String> {
    said.ok_or_else(|| {
        anyhow::anyhow!(
            "no game answers on this host's web listener (give --http or --config if it \
             listens elsewhere)"
        )
    })
}

/// How the game's admin API spells a ban's target.
fn target_word(target: &BanTarget) -> String {
    match target {
        BanTarget::Name(name) => name.clone(),
        BanTarget::Address(address) => address.to_string(),
    }
}

fn ban_target(word: &str) -> anyhow::Result<BanTarget> {
    parse_ban_target(word).with_context(|| format!("{word:?} is neither an IP address nor a name"))
}

/// One ban on one line: whom, until when, by whom, why.
fn describe(ban: &Ban) -> String {
    let until = match ban.expires_ms {
        None => "until lifted".to_owned(),
        Some(at) => format!("until {}", date(at)),
    };
    let mut line = format!("{:<24} {until}, by {}", ban.target.to_string(), ban.by);
    if !ban.reason.is_empty() {
        line.push_str(&format!(": {}", ban.reason));
    }
    line
}

/// A time kept in Unix milliseconds, as an HTTP date (UTC, unambiguous).
fn date(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

/// Names are stored capitalised; say it the way the game will.
fn display_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// Files written by another user (`sudo tether admin ...` beside a game run as `tether`)
/// would leave the game unable to use them (its database, its link keys): refused, with the
/// way to do it. `command` is what the user ran.
pub(crate) fn same_user_as(data: &Path, command: &str) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::metadata(data) else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "{} belongs to uid {}, and this is uid {me}: run `{command}` as the user the \
             game runs as (for example `sudo -u <that user> {command} ...`), so that the \
             game can use what it writes",
            data.display(),
            meta.uid()
        );
    }
    Ok(())
}

/// A new password: asked twice on the terminal without showing it, or the first line of a
/// standard input that is not a terminal (`echo ... | tether admin create NAME`, scripts).
fn new_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("no password on standard input; nothing was changed");
        }
        Ok(password)
    }
}
