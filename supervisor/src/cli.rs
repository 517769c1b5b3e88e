//! The command line. Every option is global so that `tether status --data DIR` and
//! `tether --data DIR status` both work; options a subcommand does not need are ignored.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tether",
    version,
    about = "Runs the tether MUD: starts the proxy and the game core, restarts them, hot-deploys the core",
    long_about = "Runs the tether MUD in the foreground: the proxy owns the players' telnet \
                  connections, the core runs the game. The core can be replaced (`tether reload`, \
                  SIGHUP, or a rebuilt binary with --watch) without disconnecting anyone, and so \
                  can the proxy (`tether upgrade-proxy`, SIGUSR2, or a rebuilt binary with \
                  --watch).\n\n\
                  Without a subcommand, `tether` means `tether up`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub options: Options,
}

impl Cli {
    pub fn subcommand(&self) -> Command {
        self.command.clone().unwrap_or(Command::Up)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Start the proxy and the core and keep them running (the default)
    Up,
    /// Replace the running core with a new one; players stay connected
    Reload,
    /// Start a new proxy (the current binary) that takes every connection over from the
    /// running one; players stay connected
    UpgradeProxy,
    /// Replace the running supervisor by the `tether` binary on disk, in place (same pid);
    /// the proxy and the core run on and players stay connected
    UpgradeSupervisor,
    /// Show the running supervisor, proxy and core
    Status,
    /// Stop the proxy (players are told) and then the core
    Stop,
    /// Manage accounts on this host: make the first administrator, list, promote, demote,
    /// reset a password (works with the game running or not)
    #[command(subcommand)]
    Admin(AdminAction),
    /// Make the certificates that let proxies on other hosts attach to this game's core
    /// (`--link-listen` on the core's host, `--core` on a proxy's)
    #[command(subcommand)]
    LinkCerts(LinkCertsAction),
}

/// `tether link-certs ...`, run on the core's host.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum LinkCertsAction {
    /// Make this game's link authority and the core's certificate, in DATA/link-tls
    Init,
    /// Sign a certificate for one proxy host: writes a directory to copy to that host as its
    /// DATA/link-tls (the authority's key stays here)
    Proxy {
        /// The proxy's name, as the core's logs will show it
        name: String,
        /// Where to write it [default: DATA/link-tls/proxies/NAME]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `tether admin ...`. A password is asked on the terminal (twice, not shown), or read as
/// the first line of standard input when that is not a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AdminAction {
    /// Create a character that is an administrator (the game never makes one by itself)
    Create {
        name: String,
        /// Make an ordinary player instead
        #[arg(long)]
        player: bool,
    },
    /// Make an existing character an administrator
    Promote { name: String },
    /// Make an administrator an ordinary player again
    Demote { name: String },
    /// List every account and who is an administrator
    List,
    /// Give a character a new password
    ResetPassword { name: String },
    /// Disconnect a player from the running game, telling them why
    Kick {
        name: String,
        /// Why, as the player is told
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Say something to everyone in the running game
    Wall {
        #[arg(required = true, num_args = 1.., trailing_var_arg = true)]
        text: Vec<String>,
    },
    /// Shut the running game down after a countdown everyone hears (warnings at 60, 30, 15,
    /// 10, 5, 2 and 1 minutes, 30 and 10 seconds), now, or call a countdown off
    Shutdown {
        /// now, minutes (10), a time (90s, 15m, 2h), or cancel
        when: String,
        /// Why, as everyone is told
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Keep a character (by name) or an address out, and disconnect whoever it covers in the
    /// running game; with no game running it holds from the next start. Recorded in the
    /// audit trail
    Ban {
        /// A character's name, or an IP address
        target: String,
        /// How long: 30m, 12h, 7d, 2w, or forever
        #[arg(long = "for", value_name = "TIME", default_value = "forever")]
        length: String,
        /// Why, as the banned player is told
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a ban
    Unban {
        /// A character's name, or an IP address
        target: String,
    },
    /// List the bans that hold, and until when
    Bans,
    /// Show the latest administrators' actions (in the game and here)
    Audit {
        /// How many
        #[arg(long, short = 'n', default_value_t = 20)]
        last: usize,
    },
    /// Show the admin token (made if there is none) that `/metrics` and the dashboard ask
    /// for; it is kept in DATA/admin-token, readable by the game's user only
    Token {
        /// Make a new token; the old one stops working at once
        #[arg(long)]
        rotate: bool,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct Options {
    /// TOML file with the keys telnet, http, data, world, watch, hang_timeout (command-line
    /// options win)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address the proxy listens on for players [default: 127.0.0.1:4000]
    #[arg(long, global = true, value_name = "ADDR")]
    pub telnet: Option<String>,

    /// Address for telnet over TLS [default: off; needs a certificate and key]
    #[arg(long, global = true, value_name = "ADDR")]
    pub telnets: Option<String>,

    /// Address for the web client over TLS, HTTPS and WSS [default: off; needs a
    /// certificate and key]
    #[arg(long, global = true, value_name = "ADDR")]
    pub https: Option<String>,

    /// The TLS certificate chain, a PEM file (or `[tls] certificate` in the config)
    #[arg(long, global = true, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The TLS private key, a PEM file only its owner can read (or `[tls] key`)
    #[arg(long, global = true, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Address for the web client and WebSocket players, or "off" [default: 127.0.0.1:4080]
    #[arg(long, global = true, value_name = "ADDR")]
    pub http: Option<String>,

    /// Directory for the game's data and the sockets (created if missing) [default: ./data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// World file for the core [default: the core's built-in world]
    #[arg(long, global = true, value_name = "FILE")]
    pub world: Option<PathBuf>,

    /// Reload the core, or upgrade the proxy, whenever its binary changes [default: on under
    /// `cargo run`, else off]
    #[arg(long, global = true, overrides_with = "no_watch")]
    pub watch: bool,

    /// Do not watch the core binary
    #[arg(long = "no-watch", global = true, overrides_with = "watch")]
    pub no_watch: bool,

    /// The proxy executable [default: tether-proxy next to this executable]
    #[arg(long, global = true, value_name = "PATH")]
    pub proxy_bin: Option<PathBuf>,

    /// The core executable [default: tether-core next to this executable]
    #[arg(long, global = true, value_name = "PATH")]
    pub core_bin: Option<PathBuf>,

    /// Seconds a running core may make no progress (a command that never returns, a
    /// deadlock) before it is killed and replaced; at least 0.5 [default: 5]
    #[arg(long, global = true, value_name = "SECS")]
    pub hang_timeout: Option<f64>,

    /// Also take proxies on other hosts on this address, over TCP with the link's TLS (or
    /// `[link] listen`; needs `tether link-certs init`) [default: off]
    #[arg(long, global = true, value_name = "ADDR", conflicts_with = "core")]
    pub link_listen: Option<String>,

    /// Run only a proxy, for a game core another `tether` runs: at ADDR on another host (its
    /// --link-listen), or at its link socket on this host (a path: DATA/link.sock), or
    /// `[link] core` [default: the core runs here]
    #[arg(long, global = true, value_name = "ADDR")]
    pub core: Option<String>,

    /// The link's certificates, for --link-listen or --core (or `[link] tls`)
    /// [default: DATA/link-tls]
    #[arg(long, global = true, value_name = "DIR")]
    pub link_tls: Option<PathBuf>,

    /// How every tether process writes its log to stderr: `text`, or `json` (one object per
    /// line) for a log shipper [default: $TETHER_LOG_FORMAT, else text]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<tether_log::Format>,
}

impl Options {
    /// `Some` only when the command line decided; `None` lets the config file or default decide.
    pub fn watch_flag(&self) -> Option<bool> {
        match (self.watch, self.no_watch) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["tether"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("valid command line")
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn up_is_the_default() {
        assert_eq!(parse(&[]).subcommand(), Command::Up);
        assert_eq!(parse(&["--telnet", "0.0.0.0:23"]).subcommand(), Command::Up);
    }

    #[test]
    fn options_are_accepted_after_the_subcommand() {
        let cli = parse(&["status", "--data", "/srv/tether"]);
        assert_eq!(cli.subcommand(), Command::Status);
        assert_eq!(cli.options.data, Some(PathBuf::from("/srv/tether")));
    }

    #[test]
    fn admin_actions_take_a_name() {
        assert_eq!(
            parse(&["admin", "create", "Root"]).subcommand(),
            Command::Admin(AdminAction::Create {
                name: "Root".into(),
                player: false
            })
        );
        assert_eq!(
            parse(&["admin", "reset-password", "bob", "--data", "/d"]).subcommand(),
            Command::Admin(AdminAction::ResetPassword { name: "bob".into() })
        );
        assert!(Cli::try_parse_from(["tether", "admin", "promote"]).is_err());
        assert_eq!(
            parse(&["admin", "ban", "1.2.3.4", "--for", "7d", "--reason", "bots"]).subcommand(),
            Command::Admin(AdminAction::Ban {
                target: "1.2.3.4".into(),
                length: "7d".into(),
                reason: "bots".into()
            })
        );
        assert_eq!(
            parse(&["admin", "wall", "back", "in", "5"]).subcommand(),
            Command::Admin(AdminAction::Wall {
                text: vec!["back".into(), "in".into(), "5".into()]
            })
        );
        assert_eq!(
            parse(&["admin", "shutdown", "10m", "--reason", "upgrade"]).subcommand(),
            Command::Admin(AdminAction::Shutdown {
                when: "10m".into(),
                reason: "upgrade".into()
            })
        );
        assert_eq!(
            parse(&["admin", "audit", "-n", "5"]).subcommand(),
            Command::Admin(AdminAction::Audit { last: 5 })
        );
        assert_eq!(
            parse(&["admin", "token", "--rotate"]).subcommand(),
            Command::Admin(AdminAction::Token { rotate: true })
        );
    }

    #[test]
    fn link_certs_are_made_on_the_cores_host() {
        assert_eq!(
            parse(&["link-certs", "init"]).subcommand(),
            Command::LinkCerts(LinkCertsAction::Init)
        );
        assert_eq!(
            parse(&["link-certs", "proxy", "edge-1", "--out", "/tmp/e"]).subcommand(),
            Command::LinkCerts(LinkCertsAction::Proxy {
                name: "edge-1".into(),
                out: Some(PathBuf::from("/tmp/e"))
            })
        );
        assert!(
            Cli::try_parse_from(["tether", "--core", "a:1", "--link-listen", "b:2"]).is_err(),
            "a host that runs no core takes no proxies"
        );
    }

    #[test]
    fn the_last_watch_flag_wins() {
        assert_eq!(parse(&[]).options.watch_flag(), None);
        assert_eq!(parse(&["--watch"]).options.watch_flag(), Some(true));
        assert_eq!(parse(&["--no-watch"]).options.watch_flag(), Some(false));
        assert_eq!(
            parse(&["--watch", "--no-watch"]).options.watch_flag(),
            Some(false)
        );
        assert_eq!(
            parse(&["--no-watch", "--watch"]).options.watch_flag(),
            Some(true)
        );
    }
}
