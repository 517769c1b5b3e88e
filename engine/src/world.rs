//! The static world: rooms and the exits between them, loaded from TOML.
//!
//! ```toml
//! name = "Tether Town"      # optional
//! start = "square"          # where new characters appear; or a list of rooms,
//!                           # ["gate", "dock"], to spread them over several
//!
//! [rooms.square]
//! name = "Town Square"
//! description = "..."
//! exits = { north = "tavern", east = "market" }
//! num = 1                   # optional: the room's number for client mappers
//! area = "Old Town"         # optional: defaults to the world's name
//! environment = "urban"     # optional: a terrain word mappers may colour by
//! ```
//!
//! Rooms are referred to by their key (`square`); characters store that key, so renaming a key
//! moves everyone who stood there to the start room on their next login.
//!
//! Room names and descriptions are colour markup (`{cyan}`, `{/}`; `{{` for a literal brace),
//! written by the world's author and shown as they are.
//!
//! Client mappers (GMCP `Room.Info`) know rooms by number and keep their maps across sessions,
//! so a room's number must not change when other rooms come or go. A room without an explicit
//! `num` gets one computed from its key alone (see [`derived_num`]), never from its position
//! among the other rooms; two rooms that end up with the same number are an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The world the binary uses when it is given no world file.
pub const DEFAULT_WORLD: &str = include_str!("../../world/default.toml");

/// Canonical order of compass exits in room listings; other exits follow alphabetically.
/// Each also has an abbreviation ([`expand_direction`]).
pub const COMPASS: [&str; 10] = [
    "north",
    "northeast",
    "east",
    "southeast",
    "south",
    "southwest",
    "west",
    "northwest",
    "up",
    "down",
];

/// A world file that cannot be used, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("cannot read world file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid world file {}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: Box<WorldError>,
    },
    #[error("the world is not valid TOML")]
    Toml(#[from] toml::de::Error),
    #[error("the world has no rooms")]
    NoRooms,
    #[error("the start room \"{0}\" is not defined")]
    UnknownStart(String),
    #[error("the start room list is empty")]
    NoStart,
    #[error("room \"{0}\" has an empty name")]
    EmptyRoomName(String),
    #[error("room \"{room}\": exit \"{exit}\" must be one lowercase word (a-z, 0-9, -)")]
    BadExitName { room: String, exit: String },
    #[error("room \"{0}\": num must be between 1 and {MAX_NUM}")]
    BadRoomNum(String),
    #[error("rooms \"{first}\" and \"{second}\" both have num {num}; give one of them another num")]
    DuplicateRoomNum {
        first: String,
        second: String,
        num: u32,
    },
    #[error("room \"{room}\": exit \"{exit}\" leads to \"{target}\", which is not a room")]
    UnknownExitTarget {
        room: String,
        exit: String,
        target: String,
    },
}

#[derive(Debug, Clone)]
pub struct World {
    name: String,
    /// Never empty.
    starts: Vec<String>,
    rooms: BTreeMap<String, Room>,
    /// Counted once: MSSP asks for it on every delivery.
    area_count: usize,
}

#[derive(Debug, Clone)]
pub struct Room {
    id: String,
    num: u32,
    area: Option<String>,
    environment: String,
    name: String,
    description: String,
    exits: Vec<Exit>,
    /// Things in the room a player can look at, lowercase key to markup.
    details: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Exit {
    name: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldFile {
    name: Option<String>,
    start: StartFile,
    rooms: BTreeMap<String, RoomFile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StartFile {
    One(String),
    Several(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomFile {
    name: String,
    description: String,
    #[serde(default)]
    exits: BTreeMap<String, String>,
    num: Option<u32>,
    area: Option<String>,
    environment: Option<String>,
    /// What `look <thing>` shows, by thing: `details = { fountain = "..." }`.
    #[serde(default)]
    details: BTreeMap<String, String>,
}

/// Mudlet keeps room numbers in a signed 32-bit integer and reserves 0 and below.
const MAX_NUM: u32 = i32::MAX as u32;

/// The number of a room whose file gives none: FNV-1a of its key, folded into `1..MAX_NUM`.
///
/// FNV-1a is spelled out here rather than taken from `std`'s hasher because that one is free
/// to change between Rust releases, and these numbers live on in players' saved maps.
pub fn derived_num(key: &str) -> u32 {
    1 + fnv1a(key) % (MAX_NUM - 1)
}

fn fnv1a(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn room_num(id: &str, room: &RoomFile) -> Result<u32, WorldError> {
    match room.num {
        Some(num) if (1..=MAX_NUM).contains(&num) => Ok(num),
        Some(_) => Err(WorldError::BadRoomNum(id.to_owned())),
        None => Ok(derived_num(id)),
    }
}

/// An optional text field: blank counts as absent.
fn non_blank(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl World {
    pub fn from_toml_str(source: &str) -> Result<World, WorldError> {
        let file: WorldFile = toml::from_str(source)?;
        if file.rooms.is_empty() {
            return Err(WorldError::NoRooms);
        }
        let starts = match file.start {
            StartFile::One(room) => vec![room],
            StartFile::Several(rooms) => rooms,
        };
        if starts.is_empty() {
            return Err(WorldError::NoStart);
        }
        if let Some(unknown) = starts.iter().find(|room| !file.rooms.contains_key(*room)) {
            return Err(WorldError::UnknownStart(unknown.clone()));
        }
        let mut rooms = BTreeMap::new();
        let mut owners: BTreeMap<u32, &str> = BTreeMap::new();
        for (id, room) in &file.rooms {
            let num = room_num(id, room)?;
            if let Some(first) = owners.insert(num, id) {
                return Err(WorldError::DuplicateRoomNum {
                    first: first.to_owned(),
                    second: id.clone(),
                    num,
                });
            }
            if room.name.trim().is_empty() {
                return Err(WorldError::EmptyRoomName(id.clone()));
            }
            let mut exits = Vec::with_capacity(room.exits.len());
            for (exit, target) in &room.exits {
                // Exits are typed as commands, so they must be a single word the player can
                // type exactly as listed.
                let well_formed = !exit.is_empty()
                    && exit
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !well_formed {
                    return Err(WorldError::BadExitName {
                        room: id.clone(),
                        exit: exit.clone(),
                    });
                }
                if !file.rooms.contains_key(target) {
                    return Err(WorldError::UnknownExitTarget {
                        room: id.clone(),
                        exit: exit.clone(),
                        target: target.clone(),
                    });
                }
                exits.push(Exit {
                    name: exit.clone(),
                    to: target.clone(),
                });
            }
            exits.sort_by(|a, b| exit_rank(&a.name).cmp(&exit_rank(&b.name)));
            rooms.insert(
                id.clone(),
                Room {
                    id: id.clone(),
                    num,
                    area: non_blank(&room.area),
                    environment: non_blank(&room.environment).unwrap_or_default(),
                    name: room.name.trim().to_owned(),
                    description: room.description.trim().to_owned(),
                    exits,
                    details: room
                        .details
                        .iter()
                        .map(|(thing, text)| (thing.trim().to_lowercase(), text.trim().to_owned()))
                        .collect(),
                },
            );
        }
        let name = file
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "Tether".to_owned());
        let areas: BTreeSet<&str> = rooms
            .values()
            .map(|room| room.area.as_deref().unwrap_or(&name))
            .collect();
        let area_count = areas.len();
        Ok(World {
            name,
            starts,
            rooms,
            area_count,
        })
    }

    pub fn load(path: &Path) -> Result<World, WorldError> {
        let source = std::fs::read_to_string(path).map_err(|source| WorldError::Read {
            path: path.to_owned(),
            source,
        })?;
        World::from_toml_str(&source).map_err(|e| WorldError::Invalid {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// The world's display name (markup), used in the banner.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key of the room where the named character appears when it is new or its room has
    /// left the world. With several start rooms the choice depends on the name alone, so a
    /// crowd of newcomers spreads out and a character always lands in the same one.
    pub fn start_for(&self, name: &str) -> &str {
        let index = fnv1a(&name.to_lowercase()) as usize % self.starts.len();
        &self.starts[index]
    }

    pub fn room(&self, id: &str) -> Option<&Room> {
        self.rooms.get(id)
    }

    pub fn rooms(&self) -> impl Iterator<Item = &Room> {
        self.rooms.values()
    }

    /// The area a room belongs to: its own, or else the world's name.
    pub fn area_of<'a>(&'a self, room: &'a Room) -> &'a str {
        room.area.as_deref().unwrap_or(&self.name)
    }

    /// How many distinct areas the rooms make up.
    pub fn area_count(&self) -> usize {
        self.area_count
    }
}

impl Room {
    /// The key the world file uses for this room.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stable number client mappers know this room by (see the module documentation).
    pub fn num(&self) -> u32 {
        self.num
    }

    /// A terrain word such as "urban" or "forest"; empty if the world file gives none.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Colour markup.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Colour markup.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Compass exits first in compass order, then the others alphabetically.
    pub fn exits(&self) -> &[Exit] {
        &self.exits
    }

    /// What the room's file says about `thing` (markup): matched whole (`notice board`) or by
    /// any one of its words (`board`), in any case.
    pub fn detail(&self, thing: &str) -> Option<&str> {
        let thing = thing.trim().to_lowercase();
        if thing.is_empty() {
            return None;
        }
        self.details
            .get(&thing)
            .or_else(|| {
                self.details
                    .iter()
                    .find(|(key, _)| key.split_whitespace().any(|word| word == thing))
                    .map(|(_, text)| text)
            })
            .map(String::as_str)
    }

    /// Finds an exit by its full name or by a compass abbreviation (`n` for `north`).
    pub fn exit(&self, typed: &str) -> Option<&Exit> {
        let typed = typed.to_ascii_lowercase();
        let find = |name: &str| self.exits.iter().find(|e| e.name == name);
        find(&typed).or_else(|| expand_direction(&typed).and_then(find))
    }
}

impl Exit {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key of the room this exit leads to.
    pub fn to(&self) -> &str {
        &self.to
    }
}

/// The compass word an abbreviation such as `ne` stands for.
pub fn expand_direction(abbreviation: &str) -> Option<&'static str> {
    Some(match abbreviation {
        "n" => "north",
        "s" => "south",
        "e" => "east",
        "w" => "west",
        "u" => "up",
        "d" => "down",
        "ne" => "northeast",
        "nw" => "northwest",
        "se" => "southeast",
        "sw" => "southwest",
        _ => return None,
    })
}

fn exit_rank(name: &str) -> (usize, &str) {
    let compass = COMPASS
        .iter()
        .position(|c| *c == name)
        .unwrap_or(COMPASS.len());
    (compass, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_ROOMS: &str = r#"
        start = "a"
        [rooms.a]
        name = "Room A"
        description = "The first room."
        exits = { up = "b", north = "b", door = "b" }
        [rooms.b]
        name = "Room B"
        description = "The second room."
        exits = { s = "a" }
    "#;

    #[test]
    fn default_world_is_valid() {
        let world = World::from_toml_str(DEFAULT_WORLD).expect("default world");
        assert!(world.rooms().count() >= 5);
        assert!(world.room(world.start_for("anyone")).is_some());
    }

    #[test]
    fn exits_are_ordered_and_abbreviations_work() {
        let world = World::from_toml_str(TWO_ROOMS).unwrap();
        let a = world.room("a").unwrap();
        let names: Vec<_> = a.exits().iter().map(Exit::name).collect();
        assert_eq!(names, ["north", "up", "door"]);
        assert_eq!(a.exit("N").unwrap().to(), "b");
        assert_eq!(a.exit("u").unwrap().name(), "up");
        assert!(a.exit("south").is_none());
        // An exit literally called "s" is found by that name, not expanded.
        assert_eq!(world.room("b").unwrap().exit("s").unwrap().to(), "a");
        assert_eq!(world.name(), "Tether");
    }

    #[test]
    fn bad_exit_target_names_room_and_exit() {
        let source = TWO_ROOMS.replace("door = \"b\"", "door = \"cellar\"");
        let err = World::from_toml_str(&source).unwrap_err();
        assert!(matches!(err, WorldError::UnknownExitTarget { .. }));
        let message = err.to_string();
        for part in ["\"a\"", "\"door\"", "\"cellar\""] {
            assert!(message.contains(part), "{message}");
        }
    }

    #[test]
    fn several_start_rooms_spread_newcomers_by_name() {
        let source = TWO_ROOMS.replace("start = \"a\"", "start = [\"a\", \"b\"]");
        let world = World::from_toml_str(&source).unwrap();
        let names: Vec<String> = (0..200).map(|i| format!("Newcomer{i}")).collect();
        let in_a = names.iter().filter(|n| world.start_for(n) == "a").count();
        assert!((50..150).contains(&in_a), "{in_a} of 200 in a");
        // The choice is the name's, whatever its case.
        assert_eq!(world.start_for("Newcomer7"), world.start_for("newcomer7"));
        let one = World::from_toml_str(TWO_ROOMS).unwrap();
        assert!(names.iter().all(|n| one.start_for(n) == "a"));
    }

    #[test]
    fn other_mistakes_are_reported() {
        let empty_list = TWO_ROOMS.replace("start = \"a\"", "start = []");
        assert!(matches!(
            World::from_toml_str(&empty_list),
            Err(WorldError::NoStart)
        ));
        let unknown_in_list = TWO_ROOMS.replace("start = \"a\"", "start = [\"a\", \"z\"]");
        assert!(matches!(
            World::from_toml_str(&unknown_in_list),
            Err(WorldError::UnknownStart(room)) if room == "z"
        ));
        let no_start = TWO_ROOMS.replace("start = \"a\"", "start = \"z\"");
        assert!(matches!(
            World::from_toml_str(&no_start),
            Err(WorldError::UnknownStart(s)) if s == "z"
        ));
        let bad_name = TWO_ROOMS.replace("door =", "\"Front Door\" =");
        assert!(matches!(
            World::from_toml_str(&bad_name),
            Err(WorldError::BadExitName { exit, .. }) if exit == "Front Door"
        ));
        assert!(matches!(
            World::from_toml_str("start = [1"),
            Err(WorldError::Toml(_))
        ));
        assert!(matches!(
            World::from_toml_str("start = \"a\"\n[rooms]"),
            Err(WorldError::NoRooms)
        ));
    }

    #[test]
    fn room_nums_are_explicit_or_derived_from_the_key_alone() {
        let world = World::from_toml_str(TWO_ROOMS).unwrap();
        let a = world.room("a").unwrap().num();
        assert_eq!(a, derived_num("a"));
        assert!((1..=MAX_NUM).contains(&a));
        // Adding a room that sorts first changes no other room's number.
        let more = format!("{TWO_ROOMS}\n[rooms.aa0]\nname = \"X\"\ndescription = \"x\"\n");
        let more = World::from_toml_str(&more).unwrap();
        assert_eq!(more.room("a").unwrap().num(), a);
        // Pinned values: a change here would scramble every player's saved map.
        assert_eq!(derived_num(""), 0x811c_9dc5 % (MAX_NUM - 1) + 1);
        assert_eq!(derived_num("square"), derived_num("square"));
        assert_ne!(derived_num("square"), derived_num("tavern"));

        let pinned = TWO_ROOMS.replace("name = \"Room B\"", "name = \"Room B\"\nnum = 7");
        let pinned = World::from_toml_str(&pinned).unwrap();
        assert_eq!(pinned.room("b").unwrap().num(), 7);
        let clash = TWO_ROOMS.replace(
            "name = \"Room B\"",
            &format!("name = \"Room B\"\nnum = {a}"),
        );
        assert!(matches!(
            World::from_toml_str(&clash),
            Err(WorldError::DuplicateRoomNum { num, .. }) if num == a
        ));
        let zero = TWO_ROOMS.replace("name = \"Room B\"", "name = \"Room B\"\nnum = 0");
        assert!(matches!(
            World::from_toml_str(&zero),
            Err(WorldError::BadRoomNum(room)) if room == "b"
        ));
    }

    #[test]
    fn areas_and_environments() {
        let source = TWO_ROOMS.replace(
            "name = \"Room B\"",
            "name = \"Room B\"\narea = \"Cellars\"\nenvironment = \"cave\"",
        );
        let world = World::from_toml_str(&source).unwrap();
        let (a, b) = (world.room("a").unwrap(), world.room("b").unwrap());
        assert_eq!((world.area_of(a), a.environment()), ("Tether", ""));
        assert_eq!((world.area_of(b), b.environment()), ("Cellars", "cave"));
        assert_eq!(world.area_count(), 2);
    }

    #[test]
    fn default_world_has_distinct_small_nums() {
        let world = World::from_toml_str(DEFAULT_WORLD).unwrap();
        let mut nums: Vec<u32> = world.rooms().map(Room::num).collect();
        nums.sort_unstable();
        nums.dedup();
        assert_eq!(nums.len(), world.rooms().count());
        assert!(nums.iter().all(|n| *n < 1000), "{nums:?}");
    }

    #[test]
    fn load_reports_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.toml");
        std::fs::write(&path, "start = \"x\"\n[rooms]").unwrap();
        let err = World::load(&path).unwrap_err();
        assert!(err.to_string().contains("w.toml"));
        let missing = World::load(&dir.path().join("none.toml")).unwrap_err();
        assert!(matches!(missing, WorldError::Read { .. }));
    }
}
