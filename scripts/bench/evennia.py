#!/usr/bin/env python3
"""Run Evennia 5 next to tether for benchmarks, from nothing to a game taking telnet players.

Standard library only. Everything lives under one work directory:

    DIR/venv      a virtualenv holding the pinned Evennia (``EVENNIA_REQUIREMENT``)
    DIR/game      the game directory (``evennia --init``), recreated by every ``init()``

Use from Python::

    ev = Evennia("target/bench/evennia", 4100)
    ev.install()       # venv + pip install, skipped when the pinned version is already there
    ev.init()          # fresh game dir, benchmark settings, migrations, superuser
    ev.start()         # Portal + Server, returns once the telnet port shows the login screen
    ev.pids()          # {"portal": 1234, "server": 1240}
    ev.reload()        # `evennia reload`: a new Server process, the Portal keeps the sockets
    ev.kill_server()   # kill -9 of the Server process only; see kill_server() for what follows
    ev.stop()

or by hand: ``python3 scripts/bench/evennia.py setup|start|stop|reload|kill-server DIR PORT``
(``setup`` is install + init).

Evennia is two processes: the Portal holds the player sockets (telnet) and talks over AMP
(a local TCP port) to the Server, which runs the game and the database (SQLite here). The
launcher (``evennia start``) daemonizes both and exits.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# Latest 5.x on PyPI (5.0.0 and 5.0.1 are the only 5.x releases; 6.x is out, the benchmark
# compares against 5).
EVENNIA_REQUIREMENT = "evennia==5.0.1"
EVENNIA_VERSION = EVENNIA_REQUIREMENT.split("==")[1]

# Evennia 5 requires Python >= 3.11.
MIN_PYTHON = (3, 11)

SUPERUSER = ("admin", "adminpass1")

# Appended to the generated settings.py. Every line differs from Evennia 5's
# evennia/settings_default.py (or states a default the benchmark depends on); why is in
# the comment above each. {port} and {amp_port} are filled in by init().
SETTINGS = '''
# ---- tether benchmark settings (written by scripts/bench/evennia.py) ----

# Telnet only, on loopback, on the port the benchmark asked for. tether-bots may bind its
# sockets to other 127.0.0.x source addresses; they still connect to 127.0.0.1.
TELNET_PORTS = [{port}]
TELNET_INTERFACES = ["127.0.0.1"]

# The web server (4001 and 4005 by default), the webclient and its websocket (4002) would
# take fixed ports that may clash with tether or a second Evennia; the bots use none of them.
WEBSERVER_ENABLED = False
WEBCLIENT_ENABLED = False
WEBSOCKET_CLIENT_ENABLED = False

# Portal <-> Server link, 4006 by default: a port of our own for the same reason.
AMP_PORT = {amp_port}

# The Portal queues new connections to 2 per second by default (a DoS guard); 1,000 bots
# would need 500 s just to get their sockets accepted.
MAX_CONNECTION_RATE = 1000000

# Per-session command limit (80/s by default, excess commands are dropped with a warning).
# A bot sends far fewer, but a command and its `say` arrive together; make sure no command
# is ever dropped by the limiter. (0 would mean "off" in the docs, but the Portal divides
# by it.)
MAX_COMMAND_RATE = 1000000

# Longest accepted input line, 6000 by default; 0 or less turns the check off.
MAX_CHAR_LIMIT = 0

# Per-IP throttles: by default 2 account creations per 10 min and 5 failed logins per
# 5 min from one address. All bots come from 127.0.0.x; None disables them.
CREATION_THROTTLE_LIMIT = None
CREATION_THROTTLE_TIMEOUT = None
LOGIN_THROTTLE_LIMIT = None
LOGIN_THROTTLE_TIMEOUT = None

# Defaults the bots rely on, stated so a changed default cannot silently break a run:
# no idle disconnect; one session per account; `create` makes an account plus a character
# of the same name, and `connect` puts the session in that character, so `say`, `look` and
# moves work right after `connect`.
IDLE_TIMEOUT = -1
MULTISESSION_MODE = 0
AUTO_CREATE_CHARACTER_WITH_ACCOUNT = True
AUTO_PUPPET_ON_LOGIN = True
MAX_NR_CHARACTERS = 1
NEW_ACCOUNT_REGISTRATION_ENABLED = True
'''

# Evennia hashes passwords with Django's PBKDF2 (1,000,000 iterations, ~0.45 s per hash on
# the 2-core dev machine), in the Server's single game thread. A bot's login hashes twice
# (`create`, then `connect`), so 1,000 logins block the game for ~15 minutes. Evennia's own
# load tester (evennia/server/profiling/settings_mixin.py) switches to MD5 for that reason.
# Logins are outside the bots' measuring window, so this changes login times only.
FAST_PASSWORDS = '''
# Fast password hashing, as in Evennia's profiling settings_mixin: login time only.
PASSWORD_HASHERS = ("django.contrib.auth.hashers.MD5PasswordHasher",)
'''


class EvenniaError(RuntimeError):
    pass


class Evennia:
    """One Evennia installation and game under ``workdir``, its telnet on 127.0.0.1:``port``.

    ``amp_port``: the Portal-Server link's port on 127.0.0.1, ``port + 1`` by default. A
    fixed port: one picked from the kernel's ephemeral range can be taken by a bot's
    outgoing connection by the time the Portal starts (seen here). ``fast_passwords``: see
    FAST_PASSWORDS above.
    """

    def __init__(self, workdir, port, *, amp_port=None, fast_passwords=True):
        self.workdir = Path(workdir).resolve()
        self.port = int(port)
        self.amp_port = int(amp_port) if amp_port else self.port + 1
        self.fast_passwords = fast_passwords
        self.venv = self.workdir / "venv"
        self.game = self.workdir / "game"

    # ---- installation -------------------------------------------------------------------

    def install(self):
        """Create the venv if missing and pip install the pinned Evennia; a no-op when the
        venv already has exactly that version."""
        if self._installed_version() == EVENNIA_VERSION:
            return
        if not (self.venv / "bin" / "python").exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            _run([_find_python(), "-m", "venv", str(self.venv)])
        _run([str(self.venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", EVENNIA_REQUIREMENT])
        if self._installed_version() != EVENNIA_VERSION:
            raise EvenniaError(f"{EVENNIA_REQUIREMENT} did not install into {self.venv}")

    def _installed_version(self):
        python = self.venv / "bin" / "python"
        if not python.exists():
            return None
        probe = subprocess.run(
            [str(python), "-c",
             "import importlib.metadata as m; print(m.version('evennia'))"],
            capture_output=True, text=True)
        return probe.stdout.strip() if probe.returncode == 0 else None

    # ---- game directory -----------------------------------------------------------------

    def init(self):
        """A new game directory (any previous one, its database included, is deleted),
        the benchmark settings, the database tables and the superuser (Account #1)."""
        if self.pids()["portal"] or self.pids()["server"]:
            raise EvenniaError(f"Evennia in {self.game} is running; stop() it first")
        shutil.rmtree(self.game, ignore_errors=True)
        self._evennia("--init", self.game.name, cwd=self.workdir)
        settings = SETTINGS.format(port=self.port, amp_port=self.amp_port)
        if self.fast_passwords:
            settings += FAST_PASSWORDS
        with open(self.game / "server" / "conf" / "settings.py", "a") as f:
            f.write(settings)
        self._evennia("migrate")
        # Any launcher command that checks the database creates Account #1 when it is
        # missing, from EVENNIA_SUPERUSER_* (see _env) instead of asking on the terminal;
        # `check` is Django's harmless system check.
        self._evennia("check")
        # The first start of a new database runs Evennia's initial setup (Limbo, the
        # superuser's character) and then restarts the Server by itself. Do it here, so
        # that start() is an ordinary start and its Server pid stays put.
        self.start()
        self.stop()

    # ---- processes ----------------------------------------------------------------------

    def start(self, timeout=120):
        """Start Portal and Server; return once the game answers on telnet."""
        self._evennia("start")
        self.wait_ready(timeout)

    def wait_ready(self, timeout=120):
        """Wait until a telnet connection gets the login screen. The Portal alone accepts
        connections; the screen itself comes from the Server, so this needs both."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if _login_screen(self.port, deadline):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise EvenniaError(f"no Evennia login screen on 127.0.0.1:{self.port} "
                                   f"after {timeout} s (logs: {self.game}/server/logs)")
            time.sleep(0.2)

    def stop(self, timeout=60):
        """`evennia stop` (Server, then Portal); kill -9 whatever is still alive after
        ``timeout`` s, e.g. a Portal whose Server was killed."""
        if not self.game.exists():
            return
        try:
            self._evennia("stop", timeout=timeout)
        except (EvenniaError, subprocess.TimeoutExpired):
            pass
        for pid in self.pids().values():
            if pid:
                _kill(pid, signal.SIGKILL)

    def reload(self, timeout=120):
        """`evennia reload`: the Portal stops the Server and starts a new one; players stay
        connected to the Portal and are put back in their characters. Returns when the new
        Server answers on telnet."""
        self._evennia("reload", timeout=timeout)
        self.wait_ready(timeout)

    def kill_server(self):
        """kill -9 of the Server process only; returns its pid.

        What Evennia 5.0.1 does then (measured): nothing restarts the Server. The Portal
        notices the lost AMP link, keeps every telnet connection open and says nothing to the
        players; what they type is swallowed without an answer, and new connections get the
        telnet negotiation but no login screen. start() afterwards starts just a Server
        (the launcher sees the Portal running); players then get "... Server restarted." and
        are logged out: still connected, but at the login screen, their commands answered
        "Command '<line>' is not available".
        """
        pid = self.pids()["server"]
        if not pid:
            raise EvenniaError("no Evennia Server process running")
        os.kill(pid, signal.SIGKILL)
        return pid

    def pids(self):
        """{"portal": pid, "server": pid}, from the pid files Evennia keeps in
        game/server/; None for a process that is not running."""
        return {name: _live_pid(self.game / "server" / f"{name}.pid")
                for name in ("portal", "server")}

    # ---- helpers ------------------------------------------------------------------------

    def _evennia(self, *args, cwd=None, timeout=600):
        _run([str(self.venv / "bin" / "evennia"), *args], cwd=cwd or self.game,
             env=self._env(), timeout=timeout)

    def _env(self):
        env = dict(os.environ)
        # The launcher starts twistd from the venv; keep the venv first on PATH as an
        # activated venv would.
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env.pop("PYTHONPATH", None)
        env["EVENNIA_SUPERUSER_USERNAME"], env["EVENNIA_SUPERUSER_PASSWORD"] = SUPERUSER
        env["EVENNIA_SUPERUSER_EMAIL"] = ""
        return env


def _run(cmd, cwd=None, env=None, timeout=600):
    done = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise EvenniaError(f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    return done.stdout


def _find_python():
    """This interpreter if it is new enough for Evennia, else the newest python3.1x on PATH."""
    if sys.version_info[:2] >= MIN_PYTHON:
        return sys.executable
    for minor in range(14, MIN_PYTHON[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    raise EvenniaError("Evennia 5 needs Python >= 3.11; none found on PATH")


def _login_screen(port, deadline):
    """Connect and read until the login screen's `connect` hint shows (True) or the server
    closes or the deadline passes (False). Telnet negotiation is left unanswered: Evennia
    gives up waiting for it after 2 s and sends the screen anyway."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        seen = b""
        while time.monotonic() < deadline:
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            if not data:
                return False
            seen += data
            if b"connect" in seen:
                return True
    return False


def _live_pid(pidfile):
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    # A pid file outlives a killed process; check the pid is still ours (not reused).
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if b"evennia" in cmdline or b"twistd" in cmdline else None


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["setup", "start", "stop", "reload", "kill-server"])
    parser.add_argument("dir", help="work directory, e.g. target/bench/evennia")
    parser.add_argument("port", type=int, help="telnet port on 127.0.0.1")
    args = parser.parse_args()
    ev = Evennia(args.dir, args.port)
    t0 = time.monotonic()
    if args.action == "setup":
        ev.install()
        print(f"installed {EVENNIA_REQUIREMENT} in {ev.venv} ({time.monotonic() - t0:.1f} s)")
        t1 = time.monotonic()
        ev.init()
        print(f"initialized {ev.game} ({time.monotonic() - t1:.1f} s)")
    elif args.action == "start":
        ev.start()
        print(f"started on 127.0.0.1:{ev.port} ({time.monotonic() - t0:.1f} s): {ev.pids()}")
    elif args.action == "stop":
        ev.stop()
        print(f"stopped ({time.monotonic() - t0:.1f} s)")
    elif args.action == "reload":
        ev.reload()
        print(f"reloaded ({time.monotonic() - t0:.1f} s): {ev.pids()}")
    elif args.action == "kill-server":
        print(f"killed Server pid {ev.kill_server()}")


if __name__ == "__main__":
    try:
        main()
    except EvenniaError as e:
        sys.exit(f"evennia.py: {e}")
