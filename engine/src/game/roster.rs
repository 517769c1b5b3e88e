//! Who is where: an index of the characters in the game, kept beside the sessions.
//!
//! Without it every room message, `look`, move and login walked every session online; at
//! 10,000 players that walk was 44 % of the core's time and the core fell behind. With it
//! those cost the size of one room.

use std::collections::{BTreeSet, HashMap};

use tether_protocol::SessionKey;

/// Sessions holding a character, by room and by character id. Sessions on their way out
/// (closing) stay in it until they are gone or lose their character, as they stay in
/// `Game::sessions`; callers that want only present players filter on that.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Roster {
    rooms: HashMap<String, BTreeSet<SessionKey>>,
    characters: HashMap<i64, SessionKey>,
}

impl Roster {
    pub(super) fn add(&mut self, key: SessionKey, character: i64, room: &str) {
        self.rooms.entry(room.to_owned()).or_default().insert(key);
        if let Some(other) = self.characters.insert(character, key)
            && other != key
        {
            // The game detaches a character from its old session before giving it to a new
            // one; getting here means that order was broken somewhere.
            tracing::error!(session = %key, ?other, character, "character in two sessions");
        }
    }

    pub(super) fn remove(&mut self, key: SessionKey, character: i64, room: &str) {
        self.leave_room(key, room);
        if self.characters.get(&character) == Some(&key) {
            self.characters.remove(&character);
        }
    }

    pub(super) fn moved(&mut self, key: SessionKey, from: &str, to: &str) {
        self.leave_room(key, from);
        self.rooms.entry(to.to_owned()).or_default().insert(key);
    }

    /// The sessions whose character is in `room`, in key order.
    pub(super) fn in_room(&self, room: &str) -> impl Iterator<Item = SessionKey> + '_ {
        self.rooms.get(room).into_iter().flatten().copied()
    }

    /// The session playing a character, if any.
    pub(super) fn session_of(&self, character: i64) -> Option<SessionKey> {
        self.characters.get(&character).copied()
    }

    fn leave_room(&mut self, key: SessionKey, room: &str) {
        if let Some(keys) = self.rooms.get_mut(room) {
            keys.remove(&key);
            // Empty rooms are dropped so the map holds only occupied rooms.
            if keys.is_empty() {
                self.rooms.remove(room);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> SessionKey {
        SessionKey {
            proxy: 1,
            session: n,
        }
    }

    #[test]
    fn follows_arrivals_moves_and_departures() {
        let mut roster = Roster::default();
        roster.add(key(1), 10, "hall");
        roster.add(key(2), 20, "hall");
        roster.add(key(3), 30, "yard");
        assert_eq!(roster.in_room("hall").collect::<Vec<_>>(), [key(1), key(2)]);
        assert_eq!(roster.session_of(20), Some(key(2)));

        roster.moved(key(2), "hall", "yard");
        assert_eq!(roster.in_room("hall").collect::<Vec<_>>(), [key(1)]);
        assert_eq!(roster.in_room("yard").collect::<Vec<_>>(), [key(2), key(3)]);

        roster.remove(key(1), 10, "hall");
        assert_eq!(roster.in_room("hall").count(), 0);
        assert_eq!(roster.session_of(10), None);
        assert!(
            !roster.rooms.contains_key("hall"),
            "empty rooms are dropped"
        );
    }

    #[test]
    fn removing_a_stale_session_keeps_the_characters_new_one() {
        let mut roster = Roster::default();
        roster.add(key(1), 10, "hall");
        roster.remove(key(1), 10, "hall");
        roster.add(key(2), 10, "hall");
        // A second remove for the old session must not unlink the new one.
        roster.remove(key(1), 10, "hall");
        assert_eq!(roster.session_of(10), Some(key(2)));
        assert_eq!(roster.in_room("hall").collect::<Vec<_>>(), [key(2)]);
    }
}
