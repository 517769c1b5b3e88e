//! Sessions that are not playing yet: creating characters and logging in.

use tether_protocol::SessionKey;

use super::{
    Delivery, Game, Outbox, Player, Purpose, SecretFor, StateBlob, chain, gmcp, msg, split_word,
};
use crate::api::{Ctx, Event, Who};
use crate::db::{BanTarget, CharacterRecord, DbError};
use crate::password::{Outcome, Password, Work};

use super::names::normalize_name;
use super::throttle::{self, Subject};

/// The log target of failed and throttled logins: fixed, not the module's path, because
/// operators' fail2ban filters match it (`scripts/fail2ban/`), and code moves.
const LOGIN_LOG: &str = "tether::login";

// `quit` at a password prompt leaves rather than being taken for a password.
const _: () = assert!(msg::MIN_PASSWORD > "quit".len());

pub(super) fn guest(game: &mut Game, key: SessionKey, seq: u64, text: &str, out: &mut Outbox) {
    let (verb, rest) = split_word(text);
    match verb.to_ascii_lowercase().as_str() {
        "" => {}
        "create" => create(game, key, seq, rest, out),
        "connect" => connect(game, key, seq, rest, out),
        "help" => out.text(key, msg::guest_help()),
        "client" => out.text(key, msg::client_info(&game.client(key))),
        "quit" => quit(game, key, out),
        _ => out.text(key, msg::guest_hint()),
    }
}

fn quit(game: &mut Game, key: SessionKey, out: &mut Outbox) {
    game.disconnect(key, &msg::farewell(None), out);
}

/// `<name> [password]`; the password is the rest of the line so that it may contain spaces.
/// `None` without a name.
fn credentials(rest: &str) -> Option<(&str, Option<&str>)> {
    let (name, password) = split_word(rest);
    (!name.is_empty()).then_some((name, Some(password).filter(|p| !p.is_empty())))
}

fn create(game: &mut Game, key: SessionKey, seq: u64, rest: &str, out: &mut Outbox) {
    let Some((name, password)) = credentials(rest) else {
        return out.text(key, msg::usage_create());
    };
    let name = match normalize_name(name) {
        Ok(name) => name,
        Err(error) => return out.text(key, msg::bad_name(error)),
    };
    match password {
        Some(password) => create_with(game, key, seq, name, Password::new(password), out),
        // Checked before asking, so nobody types a password for a name they cannot have.
        None if name_free(game, key, &name, out) => {
            game.ask_secret(key, SecretFor::Create(name), out);
        }
        None => {}
    }
}

/// Says why not if the name cannot be had.
fn name_free(game: &Game, key: SessionKey, name: &str, out: &mut Outbox) -> bool {
    if game
        .ban_holding(&BanTarget::Name(name.to_owned()))
        .is_some()
    {
        out.text(key, msg::name_banned(name));
        return false;
    }
    match game.db.name_taken(name) {
        Ok(false) => true,
        Ok(true) => {
            out.text(key, msg::name_taken(name));
            false
        }
        Err(error) => {
            tracing::error!(session = %key, error = %chain(&error), "cannot check a name");
            out.text(key, msg::internal_error());
            false
        }
    }
}

fn create_with(
    game: &mut Game,
    key: SessionKey,
    seq: u64,
    name: String,
    password: Password,
    out: &mut Outbox,
) {
    if password.len() < msg::MIN_PASSWORD {
        return out.text(key, msg::password_too_short());
    }
    if password.len() > msg::MAX_PASSWORD {
        return out.text(key, msg::password_too_long());
    }
    // Checked now to spare the player the hashing wait; the insert checks again.
    if !name_free(game, key, &name, out) {
        return;
    }
    game.start_job(
        key,
        seq,
        Purpose::Create { name },
        Work::Hash(password),
        out,
    );
}

fn connect(game: &mut Game, key: SessionKey, seq: u64, rest: &str, out: &mut Outbox) {
    let Some((name, password)) = credentials(rest) else {
        return out.text(key, msg::usage_connect());
    };
    let name = match normalize_name(name) {
        Ok(name) => name,
        Err(error) => return out.text(key, msg::bad_name(error)),
    };
    match password {
        Some(password) => connect_with(game, key, seq, &name, Password::new(password), out),
        // Asked whether or not the name exists, so that the prompt gives nothing away.
        None => game.ask_secret(key, SecretFor::Connect(name), out),
    }
}

/// The line after a password prompt: `secret` says whose password it is. It is never shown,
/// logged or kept; only its hash is stored.
pub(super) fn secret_line(
    game: &mut Game,
    key: SessionKey,
    seq: u64,
    secret: SecretFor,
    line: &str,
    out: &mut Outbox,
) {
    // First, so that whatever follows starts on a line of its own in a client that is
    // echoing again.
    game.reveal_input(key, out);
    let password = line.trim();
    if password.is_empty() {
        return out.text(key, msg::login_cancelled());
    }
    // Too short to be anyone's password, so it can only mean what it says.
    if password.eq_ignore_ascii_case("quit") {
        return quit(game, key, out);
    }
    let password = Password::new(password);
    let blob = StateBlob {
        password_for: Some(secret.clone()),
        checking: true,
        ..StateBlob::default()
    };
    match secret {
        SecretFor::Connect(name) => connect_with(game, key, seq, &name, password, out),
        SecretFor::Create(name) => create_with(game, key, seq, name, password, out),
    }
    // Until the check is done the line is not acknowledged, so a restarted core gets it again:
    // it must still read it as this password, but know that input is already showing.
    if game.sessions.get(&key).is_some_and(|s| s.pending.is_some()) {
        out.push(key, Delivery::State(blob.encode()));
    }
}

fn connect_with(
    game: &mut Game,
    key: SessionKey,
    seq: u64,
    name: &str,
    password: Password,
    out: &mut Outbox,
) {
    if let Some((seconds, subject)) = login_wait(game, key, name) {
        tracing::warn!(
            target: LOGIN_LOG,
            account = %name,
            address = %peer_shown(game, key),
            seconds,
            "login throttled"
        );
        out.text(key, msg::login_throttled(&subject, seconds));
        // Waiting attempts count against the connection too: retrying in a loop ends it.
        return count_against_connection(game, key, out);
    }
    let found = match game.db.credentials(name) {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(session = %key, error = %chain(&error), "cannot look up an account");
            return out.text(key, msg::internal_error());
        }
    };
    let (character_id, stored_hash) = match found {
        Some(found) => (Some(found.character_id), Some(found.password_hash)),
        None => (None, None),
    };
    game.start_job(
        key,
        seq,
        Purpose::Connect {
            name: name.to_owned(),
            character_id,
        },
        Work::Verify(password, stored_hash),
        out,
    );
}

/// What a login from this session for `name` is counted against.
fn subjects(game: &Game, key: SessionKey, name: &str) -> Vec<Subject> {
    let address = game
        .sessions
        .get(&key)
        .and_then(|s| s.peer)
        .and_then(|ip| throttle::counted_address(&ip.to_string()));
    address
        .map(Subject::Address)
        .into_iter()
        .chain(std::iter::once(Subject::Account(name.to_owned())))
        .collect()
}

/// The longest wait any subject of this login still has, if any.
fn login_wait(game: &Game, key: SessionKey, name: &str) -> Option<(i64, Subject)> {
    let now = crate::db::unix_now();
    subjects(game, key, name)
        .into_iter()
        .filter_map(|subject| {
            let (failures, last_at) = match game.db.login_failures(&subject.key()) {
                Ok(found) => found?,
                Err(error) => {
                    tracing::error!(session = %key, error = %chain(&error), "cannot read failed logins");
                    return None;
                }
            };
            throttle::wait(subject.policy(), failures, last_at, now).map(|s| (s, subject))
        })
        .max_by_key(|(seconds, _)| *seconds)
}

/// The player's address for the log (fail2ban reads it there), or `unknown`.
fn peer_shown(game: &Game, key: SessionKey) -> String {
    game.sessions
        .get(&key)
        .and_then(|s| s.peer)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Counts a failed login everywhere it counts, says so in the log in the one format
/// fail2ban's filter (`scripts/fail2ban/`) matches, and closes a connection that has failed
/// too often.
fn login_failed(game: &mut Game, key: SessionKey, name: &str, known: bool, out: &mut Outbox) {
    tracing::warn!(target: LOGIN_LOG, account = %name, address = %peer_shown(game, key), "login failed");
    let now = crate::db::unix_now();
    for subject in subjects(game, key, name) {
        // A name that is nobody's is not counted: a guesser could fill the table with them.
        if matches!(subject, Subject::Account(_)) && !known {
            continue;
        }
        let policy = subject.policy();
        if let Err(error) = game
            .db
            .record_login_failure(&subject.key(), now, policy.forget_after)
        {
            tracing::error!(session = %key, error = %chain(&error), "cannot record a failed login");
        }
    }
    out.push(key, Delivery::LoginFailed);
    out.text(key, msg::wrong_login());
    count_against_connection(game, key, out);
}

/// One more refused login on this connection; the last one allowed closes it.
fn count_against_connection(game: &mut Game, key: SessionKey, out: &mut Outbox) {
    let Some(session) = game.sessions.get_mut(&key) else {
        return;
    };
    session.failed_logins += 1;
    if session.failed_logins >= throttle::PER_CONNECTION {
        game.disconnect(key, msg::too_many_failed_logins(), out);
    }
}

/// Completes a create or connect once its password work is done.
pub(super) fn finish(
    game: &mut Game,
    key: SessionKey,
    purpose: Purpose,
    outcome: Outcome,
    out: &mut Outbox,
) {
    match (purpose, outcome) {
        (Purpose::Create { name }, Outcome::Hashed(Ok(hash))) => {
            let start = game.world.start_for(&name).to_owned();
            match game.db.create_account(&name, &hash, &start, false) {
                Ok(record) => {
                    tracing::info!(session = %key, character = %record.name, address = %peer_shown(game, key), "character created");
                    let greeting = msg::created(game.world.name(), &record.name);
                    enter(game, key, record, greeting, out);
                }
                Err(DbError::NameTaken(_)) => out.text(key, msg::name_taken(&name)),
                Err(error @ DbError::Lost { .. }) => {
                    tracing::error!(session = %key, error = %chain(&error), "cannot create an account");
                    let error = game.not_saved_error(error);
                    out.text(key, game.not_saved(&error));
                }
                Err(error) => {
                    tracing::error!(session = %key, error = %chain(&error), "cannot create an account");
                    out.text(key, msg::internal_error());
                }
            }
        }
        (
            Purpose::Connect {
                character_id: Some(id),
                ..
            },
            Outcome::Verified(Ok(true)),
        ) => {
            match game.db.character(id) {
                Ok(Some(record)) => {
                    // Checked once the password is right, so that only the character's owner
                    // learns of the ban and its reason.
                    if let Some(ban) = game.ban_holding(&BanTarget::Name(record.name.clone())) {
                        tracing::info!(session = %key, character = %record.name, address = %peer_shown(game, key), "refused a banned character");
                        let farewell = msg::banned(&ban, game.unix_ms);
                        return game.disconnect(key, &farewell, out);
                    }
                    tracing::info!(session = %key, character = %record.name, address = %peer_shown(game, key), "logged in");
                    let account = Subject::Account(record.name.clone()).key();
                    if let Err(error) = game.db.clear_login_failures(&account) {
                        tracing::error!(session = %key, error = %chain(&error), "cannot clear failed logins");
                    }
                    enter(game, key, record, String::new(), out);
                }
                // Deleted while the password was being checked.
                Ok(None) => out.text(key, msg::wrong_login()),
                Err(error) => {
                    tracing::error!(session = %key, error = %chain(&error), "cannot load a character");
                    out.text(key, msg::internal_error());
                }
            }
        }
        (Purpose::Connect { name, character_id }, Outcome::Verified(Ok(_))) => {
            login_failed(game, key, &name, character_id.is_some(), out);
        }
        (_, Outcome::Hashed(Err(error)) | Outcome::Verified(Err(error))) => {
            tracing::error!(session = %key, error = %chain(&error), "password check failed");
            out.text(key, msg::internal_error());
        }
        (_, _) => {
            tracing::error!(session = %key, "password result does not match the job it was for");
            out.text(key, msg::internal_error());
        }
    }
}

/// Puts a freshly logged-in character into the world. An empty `greeting` means a returning
/// player, greeted according to whether they took over another connection.
fn enter(
    game: &mut Game,
    key: SessionKey,
    record: CharacterRecord,
    greeting: String,
    out: &mut Outbox,
) {
    let new = !greeting.is_empty();
    let player: Player = match game.player_from_record(record) {
        Ok(player) => player,
        Err(error) => {
            tracing::error!(session = %key, error = %chain(&error), "cannot load a character to log in");
            return out.text(key, msg::internal_error());
        }
    };
    // A session that already said goodbye is not "taken over": nobody is playing it any more.
    let took_over = match game.session_of(player.id).filter(|k| *k != key) {
        Some(other) => {
            let active = game.sessions.get(&other).is_some_and(|s| !s.closing);
            game.detach(other, out);
            active
        }
        None => false,
    };
    let blob = StateBlob {
        character: Some(player.id),
        ..StateBlob::default()
    };
    // The proxy records the state before anything the player sees, so a restart right after
    // this point still finds them logged in.
    out.push(key, Delivery::State(blob.encode()));
    out.push(key, Delivery::Display(player.display));
    out.push(
        key,
        Delivery::Playing {
            character: player.name.clone(),
            fresh: true,
        },
    );
    if game.speaks_gmcp(key) {
        out.gmcp(key, gmcp::char_name(&player));
    }
    let greeting = if greeting.is_empty() {
        msg::welcome_back(&player.name, took_over)
    } else {
        greeting
    };
    out.text(key, greeting);
    if !took_over {
        game.tell_room(&player.room, key, &msg::entered_game(&player.name), out);
    }
    let who = Who {
        session: key,
        character: player.id,
    };
    let room = player.room.clone();
    game.set_player(key, Some(player));
    if let Some(session) = game.sessions.get_mut(&key) {
        // The character blob replaced any password-prompt blob.
        session.secret_in_blob = false;
    }
    let mut ctx = Ctx::new(game, out, Some(who));
    ctx.fire_for(who, &Event::LoggedIn { new });
    ctx.fire_for(who, &Event::Entered { room, from: None });
}
