//! Settings: the command line over the config file over the defaults.
//!
//! Merging is a pure function ([`merge`]) so the precedence rules can be tested without a
//! file system; [`Settings::resolve`] does the I/O around it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::cli::Options;
use crate::liveness::{DEFAULT_HANG_TIMEOUT, MIN_HANG_TIMEOUT};

pub const DEFAULT_TELNET: &str = "127.0.0.1:4000";
pub const DEFAULT_HTTP: &str = "127.0.0.1:4080";
pub const DEFAULT_DATA: &str = "data";
pub const PROXY_BIN: &str = "tether-proxy";
pub const CORE_BIN: &str = "tether-core";

const LINK_SOCKET: &str = "link.sock";
const CONTROL_SOCKET: &str = "control.sock";
/// Where the running proxy waits for a successor to take its connections over.
const HANDOVER_SOCKET: &str = "proxy.sock";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("cannot find this executable's path (needed for the default --proxy-bin/--core-bin)")]
    CurrentExe(#[source] std::io::Error),
}

/// The config file. Unknown keys are rejected so a typo does not silently fall back to a
/// default.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub telnet: Option<String>,
    pub http: Option<String>,
    pub data: Option<PathBuf>,
    pub world: Option<PathBuf>,
    pub watch: Option<bool>,
    /// Seconds a core may make no progress before it is replaced.
    pub hang_timeout: Option<f64>,
    /// `[limits]`: what players' connections may do; the proxy and the core have defaults.
    #[serde(default)]
    pub limits: Limits,
    /// Listeners behind a load balancer that sends the PROXY protocol: `["telnet", "http"]`.
    #[serde(default)]
    pub proxy_protocol: Vec<Listener>,
    /// Telnet over TLS (off unless given; needs `[tls]`).
    pub telnets: Option<String>,
    /// The web client over TLS, HTTPS and WSS (off unless given; needs `[tls]`).
    pub https: Option<String>,
    /// `[tls]`: the certificate chain and key, PEM files.
    pub tls: Option<TlsFiles>,
    /// `[link]`: proxies on other hosts.
    #[serde(default)]
    pub link: LinkTable,
}

/// The config file's `[link]` table: proxies on other hosts.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkTable {
    /// On the core's host: where proxies on other hosts attach.
    pub listen: Option<String>,
    /// On a proxy's host: the core's `listen` address; this host then runs no core.
    pub core: Option<String>,
    /// The link's certificates (default: DATA/link-tls).
    pub tls: Option<PathBuf>,
}

/// Where this supervisor's game core runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSite {
    /// Here, started and restarted by this supervisor; `listen`: it also takes proxies on
    /// other hosts there.
    Here { listen: Option<String> },
    /// Run by another supervisor: this one runs only a proxy (an edge host, or one more proxy
    /// on the core's own host).
    Elsewhere(CoreAt),
}

/// Where a core run by another supervisor takes proxies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreAt {
    /// Its `--link-listen`, on another host: TCP with the link's TLS.
    Tcp(String),
    /// Its link socket (DATA/link.sock), on this host: one more proxy beside the core's own,
    /// for more players than one process's open files allow. No TLS: the socket is owner-only.
    Unix(PathBuf),
}

impl CoreAt {
    /// A host:port never holds a `/`; a path to a socket always does.
    pub fn parse(text: &str) -> Self {
        if text.contains('/') {
            CoreAt::Unix(PathBuf::from(text))
        } else {
            CoreAt::Tcp(text.to_string())
        }
    }
}

impl std::fmt::Display for CoreAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreAt::Tcp(addr) => write!(f, "{addr}"),
            CoreAt::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The config file's `[tls]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A player listener, as the config file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listener {
    Telnet,
    Http,
}

/// The proxy's option for the listeners that take the PROXY protocol.
pub fn proxy_protocol_args(listeners: &[Listener]) -> Vec<std::ffi::OsString> {
    listeners
        .iter()
        .flat_map(|listener| {
            [
                "--proxy-protocol".into(),
                match listener {
                    Listener::Telnet => "telnet",
                    Listener::Http => "http",
                }
                .into(),
            ]
        })
        .collect()
}

/// The config file's `[limits]` table, passed on to the proxy and the core as options; a key
/// left out keeps their default.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Connections one address may hold at once (proxy; loopback is not counted).
    pub max_connections_per_address: Option<u32>,
    /// New connections per second one address may open (proxy).
    pub connections_per_second_per_address: Option<f64>,
    /// Seconds a connection may take to log in (core).
    pub login_timeout: Option<f64>,
    /// Seconds a connection may go without typing before it logs in (core).
    pub login_idle_timeout: Option<f64>,
}

impl Limits {
    /// The proxy's options for these limits.
    pub fn proxy_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        if let Some(n) = self.max_connections_per_address {
            args.extend(["--max-connections-per-address".into(), n.to_string().into()]);
        }
        if let Some(rate) = self.connections_per_second_per_address {
            args.extend([
                "--connections-per-second-per-address".into(),
                rate.to_string().into(),
            ]);
        }
        args
    }

    /// The core's options for these limits.
    pub fn core_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        if let Some(secs) = self.login_timeout {
            args.extend(["--login-timeout".into(), secs.to_string().into()]);
        }
        if let Some(secs) = self.login_idle_timeout {
            args.extend(["--login-idle-timeout".into(), secs.to_string().into()]);
        }
        args
    }
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Relative paths in the file are taken relative to the file's directory, so that a
    /// config in /etc/tether means the same thing whatever directory tether is started in.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = FileConfig::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.data = config.data.map(|p| base.join(p));
        config.world = config.world.map(|p| base.join(p));
        config.link.tls = config.link.tls.map(|dir| base.join(dir));
        config.tls = config.tls.map(|tls| TlsFiles {
            certificate: base.join(tls.certificate),
            key: base.join(tls.key),
        });
        Ok(config)
    }

    fn for_options(options: &Options) -> Result<FileConfig, ConfigError> {
        match &options.config {
            Some(path) => FileConfig::load(path),
            None => Ok(FileConfig::default()),
        }
    }
}

/// What applies when neither the command line nor the config file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub watch: bool,
    pub proxy_bin: PathBuf,
    pub core_bin: PathBuf,
}

impl Defaults {
    /// The children are looked for next to the running `tether`, which is where cargo and
    /// an install both put them.
    pub fn beside_current_exe(watch: bool) -> Result<Defaults, ConfigError> {
        let exe = std::env::current_exe().map_err(ConfigError::CurrentExe)?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        Ok(Defaults {
            watch,
            proxy_bin: dir.join(PROXY_BIN),
            core_bin: dir.join(CORE_BIN),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub telnet: String,
    /// The web client and WebSocket address, or "off".
    pub http: String,
    pub data: PathBuf,
    pub world: Option<PathBuf>,
    pub watch: bool,
    pub proxy_bin: PathBuf,
    pub core_bin: PathBuf,
    /// How long a core may make no progress before it is killed and replaced.
    pub hang_timeout: Duration,
    pub limits: Limits,
    pub proxy_protocol: Vec<Listener>,
    /// The TLS telnet address, if on.
    pub telnets: Option<String>,
    /// The HTTPS address, if on.
    pub https: Option<String>,
    pub tls: Option<TlsFiles>,
    pub core_site: CoreSite,
    /// The link's certificates, for proxies on other hosts.
    pub link_tls: PathBuf,
    /// The log format the command line chose, passed on to the proxy and the core (who
    /// otherwise inherit `TETHER_LOG_FORMAT`, as the supervisor read it).
    pub log_format: Option<tether_log::Format>,
}

impl Settings {
    pub fn resolve(options: &Options, defaults: Defaults) -> Result<Settings, ConfigError> {
        let file = FileConfig::for_options(options)?;
        Ok(merge(options, &file, defaults))
    }

    /// What the proxy and the core need in their environment besides what they inherit.
    pub fn child_env(&self) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        self.log_format
            .map(|format| (tether_log::FORMAT_VAR.into(), format.word().into()))
            .into_iter()
            .collect()
    }

    /// The proxy's options for TLS.
    pub fn tls_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        if let Some(tls) = &self.tls {
            args.extend([
                "--tls-cert".into(),
                tls.certificate.clone().into(),
                "--tls-key".into(),
                tls.key.clone().into(),
            ]);
            if let Some(addr) = &self.telnets {
                args.extend(["--telnets".into(), addr.into()]);
            }
            if let Some(addr) = &self.https {
                args.extend(["--https".into(), addr.into()]);
            }
        }
        args
    }

    pub fn link_socket(&self) -> PathBuf {
        self.data.join(LINK_SOCKET)
    }

    /// The core's options for proxies on other hosts.
    pub fn core_link_args(&self) -> Vec<std::ffi::OsString> {
        match &self.core_site {
            CoreSite::Here {
                listen: Some(listen),
            } => vec![
                "--link-listen".into(),
                listen.into(),
                "--link-tls".into(),
                self.link_tls.clone().into(),
            ],
            _ => Vec::new(),
        }
    }

    /// The proxy's options for reaching the core.
    pub fn proxy_link_args(&self) -> Vec<std::ffi::OsString> {
        match &self.core_site {
            CoreSite::Elsewhere(CoreAt::Tcp(addr)) => vec![
                "--core".into(),
                addr.into(),
                "--link-tls".into(),
                self.link_tls.clone().into(),
            ],
            CoreSite::Elsewhere(CoreAt::Unix(socket)) => vec!["--link".into(), socket.into()],
            CoreSite::Here { .. } => vec!["--link".into(), self.link_socket().into()],
        }
    }

    pub fn control_socket(&self) -> PathBuf {
        control_socket_in(&self.data)
    }

    pub fn handover_socket(&self) -> PathBuf {
        self.data.join(HANDOVER_SOCKET)
    }

    /// The admin token the proxy asks of `/metrics` and the dashboard (`tether admin token`).
    pub fn admin_token_file(&self) -> PathBuf {
        self.data.join(tether_protocol::admin_token::FILE_IN_DATA)
    }
}

pub fn merge(cli: &Options, file: &FileConfig, defaults: Defaults) -> Settings {
    Settings {
        telnet: cli
            .telnet
            .clone()
            .or_else(|| file.telnet.clone())
            .unwrap_or_else(|| DEFAULT_TELNET.to_string()),
        http: cli
            .http
            .clone()
            .or_else(|| file.http.clone())
            .unwrap_or_else(|| DEFAULT_HTTP.to_string()),
        data: data_dir(cli, file),
        world: cli.world.clone().or_else(|| file.world.clone()),
        watch: cli.watch_flag().or(file.watch).unwrap_or(defaults.watch),
        proxy_bin: cli.proxy_bin.clone().unwrap_or(defaults.proxy_bin),
        core_bin: cli.core_bin.clone().unwrap_or(defaults.core_bin),
        hang_timeout: cli
            .hang_timeout
            .or(file.hang_timeout)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            // The core shows progress at least every 100 ms; less than half a second would
            // take a busy moment for a hang.
            .map(|timeout| timeout.max(MIN_HANG_TIMEOUT))
            .unwrap_or(DEFAULT_HANG_TIMEOUT),
        limits: file.limits.clone(),
        proxy_protocol: file.proxy_protocol.clone(),
        telnets: cli.telnets.clone().or_else(|| file.telnets.clone()),
        https: cli.https.clone().or_else(|| file.https.clone()),
        tls: match (&cli.tls_cert, &cli.tls_key) {
            (Some(certificate), Some(key)) => Some(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
            }),
            _ => file.tls.clone(),
        },
        core_site: match cli.core.clone().or_else(|| file.link.core.clone()) {
            Some(addr) => CoreSite::Elsewhere(CoreAt::parse(&addr)),
            None => CoreSite::Here {
                listen: cli.link_listen.clone().or_else(|| file.link.listen.clone()),
            },
        },
        link_tls: cli
            .link_tls
            .clone()
            .or_else(|| file.link.tls.clone())
            .unwrap_or_else(|| data_dir(cli, file).join(tether_protocol::link_tls::DIR_IN_DATA)),
        log_format: cli.log_format,
    }
}

fn data_dir(cli: &Options, file: &FileConfig) -> PathBuf {
    cli.data
        .clone()
        .or_else(|| file.data.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA))
}

fn control_socket_in(data: &Path) -> PathBuf {
    data.join(CONTROL_SOCKET)
}

/// Where `tether reload|status|stop` find the supervisor: only `--data` and `--config`
/// matter. Nothing is created.
pub fn client_control_socket(options: &Options) -> Result<PathBuf, ConfigError> {
    Ok(control_socket_in(&client_data_dir(options)?))
}

/// The data directory a client command works on, absolute so that messages about it are
/// unambiguous.
pub fn client_data_dir(options: &Options) -> Result<PathBuf, ConfigError> {
    let file = FileConfig::for_options(options)?;
    let data = data_dir(options, &file);
    Ok(std::path::absolute(&data).unwrap_or(data))
}

/// Where a client command reaches the proxy's web listener, on this host: the `http`
/// address with an unspecified IP (`0.0.0.0`, `::`) made the loopback one. `None`: it is off.
pub fn client_web_address(options: &Options) -> Result<Option<String>, ConfigError> {
    let file = FileConfig::for_options(options)?;
    let http = options
        .http
        .clone()
        .or_else(|| file.http.clone())
        .unwrap_or_else(|| DEFAULT_HTTP.to_string());
    if http == "off" {
        return Ok(None);
    }
    Ok(Some(match http.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => {
            let loopback: std::net::IpAddr = if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            std::net::SocketAddr::new(loopback, addr.port()).to_string()
        }
        _ => http,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            watch: false,
            proxy_bin: PathBuf::from("/opt/tether/tether-proxy"),
            core_bin: PathBuf::from("/opt/tether/tether-core"),
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_said() {
        let settings = merge(&Options::default(), &FileConfig::default(), defaults());
        assert_eq!(
            settings,
            Settings {
                telnet: "127.0.0.1:4000".into(),
                http: "127.0.0.1:4080".into(),
                data: PathBuf::from("data"),
                world: None,
                watch: false,
                proxy_bin: PathBuf::from("/opt/tether/tether-proxy"),
                core_bin: PathBuf::from("/opt/tether/tether-core"),
                hang_timeout: DEFAULT_HANG_TIMEOUT,
                limits: Limits::default(),
                proxy_protocol: Vec::new(),
                telnets: None,
                https: None,
                tls: None,
                core_site: CoreSite::Here { listen: None },
                link_tls: PathBuf::from("data/link-tls"),
                log_format: None,
            }
        );
        assert!(
            settings.child_env().is_empty(),
            "children inherit the environment"
        );
    }

    #[test]
    fn the_log_format_on_the_command_line_reaches_the_children() {
        let options = Options {
            log_format: Some(tether_log::Format::Json),
            ..Options::default()
        };
        let settings = merge(&options, &FileConfig::default(), defaults());
        assert_eq!(
            settings.child_env(),
            [(
                std::ffi::OsString::from(tether_log::FORMAT_VAR),
                std::ffi::OsString::from("json")
            )]
        );
    }

    #[test]
    fn the_link_table_places_the_core_here_or_elsewhere() {
        let file = FileConfig::parse("[link]\nlisten = \"0.0.0.0:4100\"\n").expect("valid");
        let settings = merge(&Options::default(), &file, defaults());
        assert_eq!(
            settings.core_link_args(),
            [
                "--link-listen",
                "0.0.0.0:4100",
                "--link-tls",
                "data/link-tls"
            ]
        );
        assert_eq!(settings.proxy_link_args(), ["--link", "data/link.sock"]);

        let file = FileConfig::parse("[link]\ncore = \"core.example:4100\"\ntls = \"/etc/t\"\n")
            .expect("valid");
        let settings = merge(&Options::default(), &file, defaults());
        assert!(settings.core_link_args().is_empty());
        assert_eq!(
            settings.proxy_link_args(),
            ["--core", "core.example:4100", "--link-tls", "/etc/t"]
        );
        let cli = Options {
            core: Some("other:1".into()),
            ..Options::default()
        };
        assert_eq!(
            merge(&cli, &file, defaults()).core_site,
            CoreSite::Elsewhere(CoreAt::Tcp("other:1".into())),
            "the command line wins"
        );

        // One more proxy on the core's host: its link socket, no TLS.
        let cli = Options {
            core: Some("/var/lib/tether/link.sock".into()),
            ..Options::default()
        };
        let settings = merge(&cli, &FileConfig::default(), defaults());
        assert_eq!(
            settings.core_site,
            CoreSite::Elsewhere(CoreAt::Unix("/var/lib/tether/link.sock".into()))
        );
        assert_eq!(
            settings.proxy_link_args(),
            ["--link", "/var/lib/tether/link.sock"]
        );
    }

    #[test]
    fn limits_pass_to_the_proxy_and_the_core_as_options() {
        let file = FileConfig::parse(
            "[limits]\nmax_connections_per_address = 8\nconnections_per_second_per_address = 0.5\n\
             login_timeout = 60\nlogin_idle_timeout = 30\n",
        )
        .expect("valid config");
        let settings = merge(&Options::default(), &file, defaults());
        assert_eq!(
            settings.limits.proxy_args(),
            [
                "--max-connections-per-address",
                "8",
                "--connections-per-second-per-address",
                "0.5"
            ]
        );
        assert_eq!(
            settings.limits.core_args(),
            ["--login-timeout", "60", "--login-idle-timeout", "30"]
        );
        assert!(FileConfig::parse("[limits]\nmax_conections = 1\n").is_err());
        let behind = FileConfig::parse("proxy_protocol = [\"telnet\", \"http\"]\n").expect("valid");
        assert_eq!(
            proxy_protocol_args(&behind.proxy_protocol),
            ["--proxy-protocol", "telnet", "--proxy-protocol", "http"]
        );
        assert!(FileConfig::parse("proxy_protocol = [\"ssh\"]\n").is_err());
    }

    #[test]
    fn tls_goes_to_the_proxy_with_its_files_beside_the_config() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tether.toml");
        std::fs::write(
            &path,
            "telnets = \"0.0.0.0:4443\"\n[tls]\ncertificate = \"fullchain.pem\"\nkey = \"privkey.pem\"\n",
        )
        .expect("write");
        let file = FileConfig::load(&path).expect("valid config");
        let settings = merge(&Options::default(), &file, defaults());
        assert_eq!(
            settings.tls_args(),
            [
                std::ffi::OsString::from("--tls-cert"),
                dir.path().join("fullchain.pem").into(),
                "--tls-key".into(),
                dir.path().join("privkey.pem").into(),
                "--telnets".into(),
                "0.0.0.0:4443".into(),
            ]
        );
        assert!(
            FileConfig::parse("[tls]\ncertificate = \"a\"\n").is_err(),
            "a key is needed"
        );
        assert!(FileConfig::default().limits.proxy_args().is_empty());
    }

    #[test]
    fn the_file_beats_the_defaults() {
        let file = FileConfig::parse(
            "telnet = \"0.0.0.0:23\"\nhttp = \"off\"\ndata = \"/var/lib/tether\"\nworld = \"w.toml\"\nwatch = true\nhang_timeout = 2.5\n",
        )
        .expect("valid config");
        let settings = merge(&Options::default(), &file, defaults());
        assert_eq!(settings.telnet, "0.0.0.0:23");
        assert_eq!(settings.http, "off");
        assert_eq!(settings.data, PathBuf::from("/var/lib/tether"));
        assert_eq!(settings.world, Some(PathBuf::from("w.toml")));
        assert!(settings.watch);
        assert_eq!(settings.hang_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn the_command_line_beats_the_file() {
        let file = FileConfig {
            telnet: Some("0.0.0.0:23".into()),
            http: Some("0.0.0.0:80".into()),
            data: Some("/var/lib/tether".into()),
            world: Some("file-world.toml".into()),
            watch: Some(true),
            hang_timeout: Some(20.0),
            limits: Limits::default(),
            proxy_protocol: Vec::new(),
            telnets: None,
            https: None,
            tls: None,
            link: LinkTable::default(),
        };
        let cli = Options {
            telnet: Some("127.0.0.1:5000".into()),
            http: Some("127.0.0.1:5080".into()),
            data: Some("/tmp/d".into()),
            world: Some("cli-world.toml".into()),
            no_watch: true,
            core_bin: Some("/x/core".into()),
            hang_timeout: Some(1.5),
            ..Options::default()
        };
        let settings = merge(&cli, &file, defaults());
        assert_eq!(settings.telnet, "127.0.0.1:5000");
        assert_eq!(settings.http, "127.0.0.1:5080");
        assert_eq!(settings.data, PathBuf::from("/tmp/d"));
        assert_eq!(settings.world, Some(PathBuf::from("cli-world.toml")));
        assert!(!settings.watch);
        assert_eq!(settings.core_bin, PathBuf::from("/x/core"));
        assert_eq!(settings.hang_timeout, Duration::from_millis(1500));
        let hasty = Options {
            hang_timeout: Some(0.0),
            ..Options::default()
        };
        assert_eq!(
            merge(&hasty, &file, defaults()).hang_timeout,
            MIN_HANG_TIMEOUT
        );
        assert_eq!(
            settings.proxy_bin,
            PathBuf::from("/opt/tether/tether-proxy")
        );
    }

    #[test]
    fn watch_defaults_follow_dev_mode() {
        let dev = Defaults {
            watch: true,
            ..defaults()
        };
        assert!(merge(&Options::default(), &FileConfig::default(), dev.clone()).watch);
        let off = FileConfig {
            watch: Some(false),
            ..FileConfig::default()
        };
        assert!(!merge(&Options::default(), &off, dev).watch);
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        assert!(FileConfig::parse("telent = \"x\"").is_err());
        assert!(FileConfig::parse("watch = \"yes\"").is_err());
        assert_eq!(FileConfig::parse("").ok(), Some(FileConfig::default()));
    }

    #[test]
    fn relative_paths_in_the_file_are_relative_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tether.toml");
        std::fs::write(&path, "data = \"state\"\nworld = \"/abs/world.toml\"\n").expect("write");
        let config = FileConfig::load(&path).expect("load");
        assert_eq!(config.data, Some(dir.path().join("state")));
        assert_eq!(config.world, Some(PathBuf::from("/abs/world.toml")));
    }

    #[test]
    fn clients_find_the_socket_from_data_or_config() {
        let cli = Options {
            data: Some("/srv/t".into()),
            ..Options::default()
        };
        assert_eq!(
            client_control_socket(&cli).expect("path"),
            PathBuf::from("/srv/t/control.sock")
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tether.toml");
        std::fs::write(&path, "data = \"/srv/from-file\"\n").expect("write");
        let cli = Options {
            config: Some(path),
            ..Options::default()
        };
        assert_eq!(
            client_control_socket(&cli).expect("path"),
            PathBuf::from("/srv/from-file/control.sock")
        );
    }
}
