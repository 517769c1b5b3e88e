//! The systemd notify protocol (`sd_notify(3)`), spoken directly: one datagram per message to
//! the socket named in `NOTIFY_SOCKET`, nothing at all when it is unset (runit, a terminal).
//!
//! It is a dozen lines of `AF_UNIX` datagrams, so no crate: the crates for it wrap the same
//! call and add nothing we use. What tether says and when is the supervisor's business; this
//! module only knows how to say it.
//!
//! - `READY=1` once the proxy listens and a core is attached, and again after each reload;
//! - `RELOADING=1` with `MONOTONIC_USEC` when a reload starts (as `Type=notify-reload` asks);
//! - `STOPPING=1` when shutting down;
//! - `STATUS=...` players online and the core's state, when it changes;
//! - `WATCHDOG=1` every half `WATCHDOG_USEC`, only while the supervisor's loop turns and the
//!   core (if one serves) is live.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tracing::{debug, warn};

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    status: String,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` and `WATCHDOG_USEC` (with `WATCHDOG_PID`, when it names us).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let address = socket_address(&path).map_err(|err| {
                warn!("NOTIFY_SOCKET {path:?} is not usable: {err}");
            });
            let socket = UnixDatagram::unbound().map_err(|err| {
                warn!("cannot make a socket to notify systemd: {err}");
            });
            Some((socket.ok()?, address.ok()?))
        });
        let for_us =
            std::env::var("WATCHDOG_PID").map_or(true, |pid| pid == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse().ok())
            .filter(|&usec| usec > 0 && for_us)
            .map(Duration::from_micros);
        Notifier {
            target,
            watchdog,
            status: String::new(),
        }
    }

    /// Whether anyone listens (tether runs under systemd's notify protocol).
    pub fn is_listening(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`, if systemd watches us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|timeout| timeout / 2)
    }

    pub fn ready(&self) {
        self.send("READY=1");
    }

    pub fn reloading(&self) {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|now| now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1000)
            .unwrap_or(0);
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// Sends `STATUS=` if it differs from the last one sent.
    pub fn status(&mut self, status: String) {
        if status != self.status {
            self.send(&format!("STATUS={status}"));
            self.status = status;
        }
    }

    fn send(&self, message: &str) {
        let Some((socket, address)) = &self.target else {
            return;
        };
        if let Err(err) = socket.send_to_addr(message.as_bytes(), address) {
            debug!("cannot notify systemd ({message:?}): {err}");
        }
    }
}

/// A path, or `@name` for an abstract socket.
fn socket_address(path: &std::ffi::OsStr) -> std::io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        None => SocketAddr::from_pathname(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_socket_and_repeated_status_is_sent_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let mut notifier = Notifier {
            target: Some((
                UnixDatagram::unbound().expect("socket"),
                socket_address(path.as_os_str()).expect("address"),
            )),
            watchdog: Some(Duration::from_secs(10)),
            status: String::new(),
        };
        notifier.ready();
        notifier.status("1 player".into());
        notifier.status("1 player".into());
        notifier.reloading();
        notifier.watchdog();
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(5)));

        listener.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = listener.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], "READY=1");
        assert_eq!(got[1], "STATUS=1 player");
        assert!(
            got[2].starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{}",
            got[2]
        );
        assert_eq!(got[3], "WATCHDOG=1");
    }

    #[test]
    fn abstract_names_are_understood() {
        let address = socket_address(std::ffi::OsStr::new("@tether/notify")).expect("address");
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(address.as_abstract_name(), Some(&b"tether/notify"[..]));
    }
}
