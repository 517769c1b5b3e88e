//! GMCP with one client, whatever carries it (telnet subnegotiations or WebSocket text
//! frames): reading what the client sends, the `Core.*` package the proxy answers itself, and
//! which packages the client asked for. Both transports use this one set of rules.
//!
//! Names are case-insensitive coming in (TinTin++ scripts send `core.supports.set`,
//! telnetlib3 `"room 1"`); what the game sends keeps its canonical spelling, which Mudlet
//! needs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use tether_protocol::message::ClientInfo;

/// Which packages a client receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gmcp {
    /// `None`: every package (until the client says otherwise). Otherwise the packages from
    /// Core.Supports.Set/Add minus Remove, lowercase, with versions.
    supports: Option<BTreeMap<String, u32>>,
}

/// What a client's message asks of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Core.Hello: the client's name and version are in its `ClientInfo` now. `named`: the
    /// message carried a name (which beats guesses from TTYPE).
    Hello { named: bool },
    /// Core.Supports.*: what the client receives changed.
    Supports,
    /// Core.Ping: answer with an empty `Core.Ping`.
    Ping,
    /// Anything else is for the game. `json` is valid JSON when present.
    ForGame {
        package: String,
        json: Option<String>,
    },
}

/// Why a client's message was ignored (for the debug log; the client is not told).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("no valid package name")]
    BadName,
    #[error("malformed JSON: {0}")]
    BadJson(String),
    #[error("Core.Hello without a JSON object")]
    HelloNotObject,
    #[error("Core.Supports without a JSON array")]
    SupportsNotArray,
}

#[derive(Debug, Clone, Copy)]
enum SupportsChange {
    Set,
    Add,
    Remove,
}

impl Gmcp {
    /// A client that receives only what it asks for (telnet clients: they say).
    pub fn listed() -> Gmcp {
        Gmcp {
            supports: Some(BTreeMap::new()),
        }
    }

    /// A client that receives every package until it lists some (tether's browser client).
    pub fn everything() -> Gmcp {
        Gmcp { supports: None }
    }

    /// GMCP (re)started: the client announces its packages afresh.
    pub fn restart(&mut self) {
        if let Some(supports) = &mut self.supports {
            supports.clear();
        }
    }

    /// Whether the client receives `package`: a valid name it asked for (or a parent of it);
    /// `Core.*` always.
    pub fn wants(&self, package: &str) -> bool {
        valid_name(package)
            && (package == "Core"
                || package.starts_with("Core.")
                || self
                    .supports
                    .as_ref()
                    .is_none_or(|supports| covers(supports, package)))
    }

    /// A message from the client, `Package.Name <json>`, as raw bytes.
    pub fn receive_bytes(
        &mut self,
        data: &[u8],
        client: &mut ClientInfo,
    ) -> Result<Received, Ignored> {
        let text = std::str::from_utf8(data).map_err(|_| Ignored::NotUtf8)?;
        self.receive(text, client)
    }

    /// A message from the client, `Package.Name <json>`.
    pub fn receive(&mut self, text: &str, client: &mut ClientInfo) -> Result<Received, Ignored> {
        let text = text.trim();
        let (package, payload) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let payload = payload.trim();
        if !valid_name(package) {
            return Err(Ignored::BadName);
        }
        let json = if payload.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<serde_json::Value>(payload)
                    .map_err(|error| Ignored::BadJson(error.to_string()))?,
            )
        };
        Ok(match package.to_ascii_lowercase().as_str() {
            "core.hello" => hello(json, client)?,
            "core.supports.set" => self.change(json, SupportsChange::Set)?,
            "core.supports.add" => self.change(json, SupportsChange::Add)?,
            "core.supports.remove" => self.change(json, SupportsChange::Remove)?,
            "core.ping" => Received::Ping,
            _ => Received::ForGame {
                package: package.to_string(),
                json: json.map(|_| payload.to_string()),
            },
        })
    }

    fn change(
        &mut self,
        json: Option<serde_json::Value>,
        change: SupportsChange,
    ) -> Result<Received, Ignored> {
        let Some(serde_json::Value::Array(items)) = json else {
            return Err(Ignored::SupportsNotArray);
        };
        let entries = items.iter().filter_map(|item| {
            let entry = item.as_str().and_then(parse_supports_entry);
            if entry.is_none() {
                tracing::debug!(%item, "ignoring malformed Core.Supports entry");
            }
            entry
        });
        let supports = self.supports.get_or_insert_default();
        match change {
            SupportsChange::Set => *supports = entries.collect(),
            SupportsChange::Add => supports.extend(entries),
            SupportsChange::Remove => {
                for (name, _) in entries {
                    supports.remove(&name);
                }
            }
        }
        Ok(Received::Supports)
    }
}

/// `Package.Name <json>`, the text of a message to the client (`json` may be empty).
pub fn message_text(package: &str, json: &str) -> String {
    let json = json.trim();
    if json.is_empty() {
        package.to_string()
    } else {
        format!("{package} {json}")
    }
}

fn hello(json: Option<serde_json::Value>, client: &mut ClientInfo) -> Result<Received, Ignored> {
    let Some(serde_json::Value::Object(fields)) = json else {
        return Err(Ignored::HelloNotObject);
    };
    let mut named = false;
    // Mudlet sends "client"/"version", the spec shows "Client"/"Version".
    for (key, value) in &fields {
        let text = match value {
            serde_json::Value::String(text) => text.trim().to_string(),
            serde_json::Value::Number(number) => number.to_string(),
            _ => continue,
        };
        if text.is_empty() {
            continue;
        }
        if key.eq_ignore_ascii_case("client") {
            client.client_name = Some(text);
            named = true;
        } else if key.eq_ignore_ascii_case("version") {
            client.client_version = Some(text);
        }
    }
    Ok(Received::Hello { named })
}

/// Whether a client's Core.Supports list covers `package`: "Char" covers "Char.Vitals", so
/// the name is tried, then each parent. Entries are stored lowercase (see
/// [`parse_supports_entry`]), names from clients differ in case.
fn covers(supports: &BTreeMap<String, u32>, package: &str) -> bool {
    let package = package.to_ascii_lowercase();
    let mut name = package.as_str();
    loop {
        if supports.contains_key(name) {
            return true;
        }
        match name.rfind('.') {
            Some(dot) => name = &name[..dot],
            None => return false,
        }
    }
}

/// `"Char 1"` -> ("char", 1). Remove sends names without versions; a missing or unreadable
/// version counts as 1, the only one most packages have.
fn parse_supports_entry(entry: &str) -> Option<(String, u32)> {
    let mut parts = entry.split_whitespace();
    let name = parts.next().filter(|name| valid_name(name))?;
    let version = parts.next().and_then(|v| v.parse().ok()).unwrap_or(1);
    Some((name.to_ascii_lowercase(), version))
}

/// Package names look like `Char.Vitals` or `External.Discord.Hello`: a letter first, then
/// letters, digits, dots, `_` or `-`. Anything else is a broken message (a payload without a
/// name, say), not a package.
pub fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(gmcp: &mut Gmcp, text: &str) -> Result<Received, Ignored> {
        gmcp.receive(text, &mut ClientInfo::default())
    }

    #[test]
    fn supports_are_matched_by_parent_and_without_regard_to_case() {
        let mut gmcp = Gmcp::listed();
        assert!(!gmcp.wants("Room.Info"));
        assert!(gmcp.wants("Core.Goodbye"), "Core.* always goes");
        received(
            &mut gmcp,
            r#"core.supports.set ["room 1", "Char.Vitals 1"]"#,
        )
        .unwrap();
        assert!(gmcp.wants("Room.Info"));
        assert!(gmcp.wants("Char.Vitals"));
        assert!(!gmcp.wants("Char.Items"));
        received(&mut gmcp, r#"Core.Supports.Remove ["Room"]"#).unwrap();
        assert!(!gmcp.wants("Room.Info"));
        received(&mut gmcp, r#"Core.Supports.Add ["Char 1"]"#).unwrap();
        assert!(gmcp.wants("Char.Items"));
        gmcp.restart();
        assert!(!gmcp.wants("Char.Items"));
    }

    #[test]
    fn a_client_that_takes_everything_narrows_it_by_listing() {
        let mut gmcp = Gmcp::everything();
        assert!(gmcp.wants("Room.Info"));
        assert!(!gmcp.wants("not a name"));
        received(&mut gmcp, r#"Core.Supports.Set ["Char 1"]"#).unwrap();
        assert!(!gmcp.wants("Room.Info"));
        assert!(gmcp.wants("Char.Vitals"));
    }

    #[test]
    fn broken_messages_are_ignored_with_a_reason() {
        let mut gmcp = Gmcp::listed();
        assert_eq!(received(&mut gmcp, "{\"a\":1}"), Err(Ignored::BadName));
        assert!(matches!(
            received(&mut gmcp, "Char.Login {nope"),
            Err(Ignored::BadJson(_))
        ));
        assert_eq!(
            received(&mut gmcp, "Core.Hello [1]"),
            Err(Ignored::HelloNotObject)
        );
        assert_eq!(
            received(&mut gmcp, "Core.Supports.Set {}"),
            Err(Ignored::SupportsNotArray)
        );
        assert_eq!(
            gmcp.receive_bytes(b"Core.Ping \xff", &mut ClientInfo::default()),
            Err(Ignored::NotUtf8)
        );
    }

    #[test]
    fn hello_names_the_client_and_the_rest_goes_to_the_game() {
        let mut gmcp = Gmcp::listed();
        let mut client = ClientInfo::default();
        let hello = gmcp.receive(
            r#"Core.Hello {"Client":" Mudlet ","version":4.19}"#,
            &mut client,
        );
        assert_eq!(hello, Ok(Received::Hello { named: true }));
        assert_eq!(client.client_name.as_deref(), Some("Mudlet"));
        assert_eq!(client.client_version.as_deref(), Some("4.19"));
        assert_eq!(received(&mut gmcp, "core.ping"), Ok(Received::Ping));
        assert_eq!(
            received(&mut gmcp, r#"Char.Login {"name":"x"}"#),
            Ok(Received::ForGame {
                package: "Char.Login".into(),
                json: Some(r#"{"name":"x"}"#.into())
            })
        );
        assert_eq!(message_text("Core.Ping", " "), "Core.Ping");
        assert_eq!(message_text("Room.Info", "{}"), "Room.Info {}");
    }
}
