//! Commands: what a player types once in the game, and how a line finds its command.

use std::collections::HashMap;
use std::fmt;

use super::{Ctx, NotSaved};

/// What a command's handler returns: `Ok` when it did what it does (including telling the
/// player why not, if it decided so), or a [`CommandError`] the engine turns into words.
pub type CommandResult = Result<(), CommandError>;

pub(crate) type Handler = Box<dyn Fn(&mut Ctx<'_>, Args<'_>) -> CommandResult>;

/// Why a command did not do what was asked; the engine tells the player.
///
/// Handlers mostly return these through `?`: a failed [`Ctx::set`] is a [`NotSaved`], which
/// becomes [`CommandError::NotSaved`].
///
/// ```
/// use tether_engine::{Args, CommandError, CommandResult, Ctx};
///
/// fn shout(ctx: &mut Ctx, args: Args) -> CommandResult {
///     if args.is_empty() {
///         return Err(CommandError::Usage); // "Usage: shout <text>"
///     }
///     if args.text().len() > 80 {
///         return Err(CommandError::Refused("That is too much to shout.".into()));
///     }
///     // ...
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub enum CommandError {
    /// The arguments do not fit: the player is shown the command's usage line.
    Usage,
    /// The player is told this (markup) and nothing else happened.
    Refused(String),
    /// A change could not be saved, so it was not made; the engine says so.
    NotSaved(NotSaved),
}

impl From<NotSaved> for CommandError {
    fn from(error: NotSaved) -> Self {
        CommandError::NotSaved(error)
    }
}

/// Who may use a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Every player in the game.
    Everyone,
    /// Administrators only (made with `tether admin`); to anyone else the command does not
    /// exist, in help or when typed.
    Admin,
}

/// One command: its names, how it may be abbreviated, its help, who may use it and what it
/// does.
///
/// ```
/// use tether_engine::{Command, Rules};
///
/// let mut rules = Rules::new();
/// rules.command(
///     Command::new("smile")
///         .alias("grin")
///         .abbreviate(3) // "smi", "smil" work too
///         .usage("smile [at <name>]")
///         .summary("smile, at someone or at nobody in particular")
///         .run(|ctx, args| {
///             let me = ctx.me().expect("commands are typed by players");
///             let line = match args.text() {
///                 "" => format!("{} smiles.", ctx.name(me)),
///                 whom => format!("{} smiles {whom}.", ctx.name(me)),
///             };
///             let room = ctx.room_of(me).to_owned();
///             ctx.tell_room(&room, None, &tether_engine::escape(&line));
///             Ok(())
///         }),
/// );
/// ```
pub struct Command {
    pub(crate) name: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) shortcut: Option<char>,
    pub(crate) abbreviate: Option<usize>,
    pub(crate) usage: String,
    pub(crate) summary: String,
    pub(crate) help: String,
    pub(crate) access: Access,
    pub(crate) handler: Handler,
}

impl Command {
    /// A command typed as `name` (one word; matched without regard to case). Until
    /// [`Command::run`] gives it something to do, it tells the player it does nothing.
    pub fn new(name: &str) -> Command {
        Command {
            name: name.to_ascii_lowercase(),
            aliases: Vec::new(),
            shortcut: None,
            abbreviate: None,
            usage: name.to_ascii_lowercase(),
            summary: String::new(),
            help: String::new(),
            access: Access::Everyone,
            handler: Box::new(|_, _| Err(CommandError::Refused("That does nothing yet.".into()))),
        }
    }

    /// Another word for it, such as `l` for `look`.
    pub fn alias(mut self, alias: &str) -> Command {
        self.aliases.push(alias.to_ascii_lowercase());
        self
    }

    /// A character that runs it when a line starts with it, the rest of the line being the
    /// arguments: `'hello` for `say hello`.
    pub fn shortcut(mut self, first: char) -> Command {
        self.shortcut = Some(first);
        self
    }

    /// Any start of the name at least `min_letters` long also runs it (`inv` for
    /// `inventory`). Where two commands could be meant, the one registered first wins.
    pub fn abbreviate(mut self, min_letters: usize) -> Command {
        self.abbreviate = Some(min_letters.max(1));
        self
    }

    /// How it is typed, shown by `help` and after [`CommandError::Usage`]: `tell <name>
    /// <text>`.
    pub fn usage(mut self, usage: &str) -> Command {
        self.usage = usage.to_owned();
        self
    }

    /// One line for the list `help` shows.
    pub fn summary(mut self, summary: &str) -> Command {
        self.summary = summary.to_owned();
        self
    }

    /// The longer text `help <name>` shows under the usage (markup).
    pub fn help(mut self, help: &str) -> Command {
        self.help = help.to_owned();
        self
    }

    /// Only administrators may use it.
    pub fn admin_only(mut self) -> Command {
        self.access = Access::Admin;
        self
    }

    /// What it does. The handler runs isolated: if it panics, the player is told the
    /// command failed, the error is logged and the game goes on.
    pub fn run(
        mut self,
        handler: impl Fn(&mut Ctx<'_>, Args<'_>) -> CommandResult + 'static,
    ) -> Command {
        self.handler = Box::new(handler);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn access(&self) -> Access {
        self.access
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("name", &self.name)
            .field("aliases", &self.aliases)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// The rest of the line after the command's word, trimmed, with the usual ways of taking it
/// apart.
///
/// ```
/// # use tether_engine::Args;
/// let args = Args::new("  alice   the  rest ");
/// assert_eq!(args.text(), "alice   the  rest");
/// let (first, rest) = args.split_first();
/// assert_eq!((first, rest.text()), ("alice", "the  rest"));
/// assert_eq!(args.words().collect::<Vec<_>>(), ["alice", "the", "rest"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    text: &'a str,
}

impl<'a> Args<'a> {
    pub fn new(text: &'a str) -> Args<'a> {
        Args { text: text.trim() }
    }

    /// All of it, trimmed.
    pub fn text(&self) -> &'a str {
        self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The first word, and the arguments after it.
    pub fn split_first(&self) -> (&'a str, Args<'a>) {
        match self.text.split_once(char::is_whitespace) {
            Some((word, rest)) => (word, Args::new(rest)),
            None => (self.text, Args::new("")),
        }
    }

    /// The first word, if there is one.
    pub fn first(&self) -> Option<&'a str> {
        Some(self.split_first().0).filter(|word| !word.is_empty())
    }

    pub fn words(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.text.split_whitespace()
    }

    /// Without a leading `word` (any case) and the space after it: `look at fountain` gives
    /// `fountain` for `strip_word("at")`.
    pub fn strip_word(&self, word: &str) -> Args<'a> {
        match self.split_first() {
            (first, rest) if first.eq_ignore_ascii_case(word) && !rest.is_empty() => rest,
            _ => *self,
        }
    }
}

/// Every command a game has, found by the word a player typed.
#[derive(Default)]
pub(crate) struct Commands {
    list: Vec<Command>,
    /// Names and aliases, lowercase, to their index in `list`.
    words: HashMap<String, usize>,
}

impl Commands {
    /// Adds a command; one with the same name replaces the earlier one (so a game can
    /// replace the engine's own), keeping its place in the order.
    pub(crate) fn add(&mut self, command: Command) {
        let index = match self.list.iter().position(|c| c.name == command.name) {
            Some(index) => {
                let old = &self.list[index];
                for word in std::iter::once(&old.name).chain(&old.aliases) {
                    self.words.remove(word);
                }
                self.list[index] = command;
                index
            }
            None => {
                self.list.push(command);
                self.list.len() - 1
            }
        };
        let command = &self.list[index];
        for word in std::iter::once(&command.name).chain(&command.aliases) {
            self.words.insert(word.clone(), index);
        }
    }

    /// The command a line starts with, and the rest of the line: by shortcut character, then
    /// name or alias, then abbreviation.
    pub(crate) fn find<'l>(&self, line: &'l str) -> Option<(&Command, Args<'l>)> {
        let line = line.trim();
        let first = line.chars().next()?;
        if !first.is_alphanumeric()
            && let Some(command) = self.list.iter().find(|c| c.shortcut == Some(first))
        {
            return Some((command, Args::new(&line[first.len_utf8()..])));
        }
        let (word, rest) = Args::new(line).split_first();
        let command = self.lookup(word)?;
        Some((command, rest))
    }

    pub(crate) fn lookup(&self, word: &str) -> Option<&Command> {
        let found = if word.bytes().any(|b| b.is_ascii_uppercase()) {
            self.words.get(&word.to_ascii_lowercase())
        } else {
            self.words.get(word)
        };
        if let Some(index) = found {
            return Some(&self.list[*index]);
        }
        self.list.iter().find(|command| {
            command.abbreviate.is_some_and(|min| {
                word.len() >= min
                    && word.len() < command.name.len()
                    && command.name.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            })
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Command> {
        self.list.iter()
    }
}
