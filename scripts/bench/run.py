#!/usr/bin/env python3
"""Runs the benchmark scenarios of BENCHMARKS.md and writes their report.

    python3 scripts/bench/run.py                      # everything (about an hour)
    python3 scripts/bench/run.py --only roundtrip     # one scenario (see --help)
    python3 scripts/bench/run.py --no-evennia         # tether and the floor only
    python3 scripts/bench/run.py --only capacity --capacity-steps 10000 --repeat 3
                                                      # the run-to-run spread too

Every server is a real one on loopback, driven by `tether-bots` (release build) over telnet:

- the floor: `tether-echo`, which writes back every byte it reads (no game, no protocol);
- the two-process floor: the same echo behind a relay process and a Unix socket, as tether's
  proxy and core are placed, each on one thread (the least the split itself costs);
- tether: `tether up` (supervisor, proxy, core) in a fresh data directory;
- Evennia 5: installed into a virtualenv and set up by `evennia.py` beside this file.

Scenarios (names for --only):
  roundtrip  1, 100 and 1,000 sessions against both floors, tether, tether with its players
             on a proxy attached over the TCP+TLS link (as on another host), and Evennia
  reload     a planned reload, then a kill -9 of the game process, under 1,000 active
             sessions, against tether and Evennia; and tether alone under 10,000 players
             typing every 5 s in rooms of 20
  capacity   tether with players spread over rooms of about 20, each typing every 5 s,
             at growing session counts (past 15,000, on more proxies and bots processes),
             drawn as plots (target/bench/*.png, by matplotlib in a virtualenv of its own);
             proxy and core memory (from /proc) while the
             sessions are idle and while they play
  upgrade    a planned proxy upgrade (`tether upgrade-proxy`), and a kill -9 of the proxy,
             under 1,000 sessions typing every second and 10,000 typing every 5 s, in rooms
             of 20
  clients    the capacity scenario with every bot taking MCCP2 (inflating) and GMCP (with
             Mudlet's Core.Hello and Core.Supports.Set), as real clients do: what such a
             session costs the proxy
  cost       one session's command: context switches (/proc) and user-space instructions
             (callgrind, under valgrind) of the proxy and the core, per command
  faults     tether under 1,000 active sessions in rooms of 20: a core that hangs
             (kill -STOP, replaced after the hang timeout) and a poison command (one player's
             `fault panic`, caught, or `fault abort` or `fault hang`, which kill two cores
             before the line is quarantined);
             the poison needs the core's test-only fault injection, so this scenario builds
             `tether-core` with the `faults` profile (release code with debug assertions)

The report goes to target/bench/report.md, every run's raw tether-bots JSON to
target/bench/runs/. Nothing here asserts a time: the figures are for people to read.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
# A core whose fault injection can be switched on (TETHER_FAULTS=1): see Cargo.toml.
FAULTS_CORE = ROOT / "target" / "faults" / "tether-core"
OUT = ROOT / "target" / "bench"
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Round trip: sessions and seconds between one session's commands. The command rate is kept
# at 50/s for 100 and 1,000 sessions so that the difference is the number of players (every
# `say` is heard by the whole room), not the number of commands.
ROUNDTRIP = [(1, 0.2), (100, 2.0), (1000, 20.0)]
# Reload and crash: (sessions, seconds between commands, spread over rooms of ROOM_SIZE).
# The 1,000 active sessions in one room, as Evennia can be set up too; a lighter load
# that Evennia can carry, so that what a reload itself costs shows apart from overload; and
# tether alone with 1,000 sessions typing every second in rooms of 20, so that some command
# is always in flight when the core goes away; and tether alone with 10,000 players typing
# every 5 s in rooms of 20 (the capacity scenario's load), where a new core has the most to
# take over.
CAPACITY_RATE = 5.0
FAULTS_LOAD = (1000, 1.0, True)
DISRUPTIONS = [(1000, 20.0, False), (100, 10.0, False), FAULTS_LOAD, (10000, CAPACITY_RATE, True)]

# Players per proxy and per bots process: a process here may hold about 20,000 open files,
# and a proxy's supervisor (its keeper) holds a copy of every connection too.
PER_PROCESS = 15000


def processes_for(sessions: int) -> int:
    """Proxies, and bots processes, for `sessions` players: one per PER_PROCESS."""
    return -(-sessions // PER_PROCESS)


# `who` lists every player: at 10,000 sessions each one is a 10,000-line answer, and the
# default mix's 10 % of it alone would be two million lines a second. Capacity leaves it out.
CAPACITY_MIX = "say=50,look=35,move=15"
ROOM_SIZE = 20
WINDOW = 30.0
PROGRESS = re.compile(r"\[\s*\d+s\] (?P<phase>logging in|[a-z]+) ")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A free port below the kernel's ephemeral range, so that none of the bots' own
    connections can take it between now and the server's start."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(10000, low), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_for_port(port: int, what: str, process, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}) before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def rss_kib(pid: int) -> int:
    """Resident size of one process, from /proc (kernel-reported, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of one process, from /proc."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:  # a thread that ended
            continue
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split()[1])
    return total


def bots_cpu_seconds() -> float:
    """CPU time of every running tether-bots process (the load's own cost)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "tether-bots":
                total += cpu_seconds(int(entry.name))
        except OSError:
            continue
    return total


def children(pid: int) -> dict[str, int]:
    """Direct children of `pid` by program name."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The name is in parentheses and may contain spaces; the parent pid follows it.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found[name] = int(entry.name)
    return found


class Floor:
    name = "floor (tether-echo)"

    def __init__(self, port: int):
        self.port = port
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [RELEASE / "tether-echo", f"127.0.0.1:{self.port}"], stdout=subprocess.DEVNULL
        )
        wait_for_port(self.port, "tether-echo", self.process)

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait()


class TwoProcessFloor:
    """tether's path with nothing done on it: `tether-echo --relay` in front (the proxy's
    place) passing bytes over a Unix socket to `tether-echo --unix` (the core's place)."""

    name = "two-process floor (tether-echo relay)"

    def __init__(self, work: Path, port: int):
        self.socket = work / "echo.sock"
        self.port = port
        self.processes = []

    def start(self) -> None:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        echo = subprocess.Popen(
            [RELEASE / "tether-echo", "--unix", self.socket], stdout=subprocess.PIPE, text=True
        )
        self.processes = [echo]
        if not echo.stdout.readline().startswith("listening"):
            raise RuntimeError(f"tether-echo --unix {self.socket} did not start")
        echo.stdout.close()
        relay = subprocess.Popen(
            [RELEASE / "tether-echo", f"127.0.0.1:{self.port}", "--relay", self.socket],
            stdout=subprocess.DEVNULL,
        )
        self.processes.append(relay)
        wait_for_port(self.port, "tether-echo --relay", relay)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            process.wait()
        self.processes = []


class Tether:
    name = "tether"

    def __init__(self, work: Path, port: int, world: Path | None = None, faults: bool = False):
        self.work = work
        self.port = port
        self.world = world
        self.faults = faults
        self.process = None
        # More options for `tether up`, and whether to keep what is in `work` (see
        # RemoteTether).
        self.extra: list[str] = []
        self.keep = False

    def command(self, *args: str) -> list[str]:
        return [str(RELEASE / "tether"), *args, "--data", str(self.work / "data")]

    def start(self) -> None:
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True, exist_ok=True)
        args = self.command("up", "--telnet", f"127.0.0.1:{self.port}", "--http", "off")
        args.append("--no-watch")
        args += self.extra
        if self.world:
            args += ["--world", str(self.world)]
        env = dict(os.environ)
        if self.faults:
            args += ["--core-bin", str(FAULTS_CORE)]
            env["TETHER_FAULTS"] = "1"
        self.log = open(self.work / "tether.log", "w")
        self.process = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        wait_for_port(self.port, f"tether (log: {self.work / 'tether.log'})", self.process)

    def pids(self) -> dict[str, int]:
        """The proxy's and the core's pids (no core for a `tether` that runs only a proxy)."""
        found = children(self.process.pid)
        roles = {"proxy": "tether-proxy", "core": "tether-core"}
        return {role: found[name] for role, name in roles.items() if name in found}

    def reload(self) -> None:
        subprocess.run(self.command("reload"), check=True, capture_output=True)

    def kill_core(self) -> None:
        os.kill(self.pids()["core"], signal.SIGKILL)

    def upgrade_proxy(self) -> None:
        subprocess.run(self.command("upgrade-proxy"), check=True, capture_output=True)

    def kill_proxy(self) -> None:
        """kill -9 of the proxy; returns once the one that carries its connections on runs
        (players are answered again once it has attached to the core, as the bots measure)."""
        old = self.pids()["proxy"]
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # A dead child stays listed (a zombie) until the supervisor reaps it.
            new = children(self.process.pid).get("tether-proxy")
            if new and new != old:
                return
            time.sleep(0.005)
        raise RuntimeError("no new proxy after a kill -9")

    def hang_core(self) -> None:
        """kill -STOP of the core: a hang as the supervisor sees it. Returns once a new core
        serves."""
        old = self.pids()["core"]
        os.kill(old, signal.SIGSTOP)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = subprocess.run(self.command("status"), capture_output=True, text=True)
            found = re.search(r"^core: pid (\d+)", status.stdout, re.M)
            if found and int(found[1]) != old:
                return
            time.sleep(0.05)
        raise RuntimeError("the stopped core was not replaced")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            subprocess.run(self.command("stop"), capture_output=True)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RemoteTether:
    """tether with its players on a proxy that reaches the core over TCP with the link's TLS,
    as a proxy on another host does (loopback here): a core host (`--link-listen`) and an
    edge host (`--core`), each its own `tether up` and data directory."""

    name = "tether, proxy over the TCP+TLS link"

    def __init__(self, work: Path, port: int):
        self.work = work
        self.port = port
        self.core_host = Tether(work / "core-host", free_port())
        self.edge = Tether(work / "edge", port)
        self.link_port = free_port()

    def start(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        core_data = str(self.work / "core-host" / "data")
        tether = str(RELEASE / "tether")
        # New certificates for every start, in a directory the core host's start keeps.
        self.core_host.work.mkdir(parents=True)
        subprocess.run([tether, "link-certs", "init", "--data", core_data], check=True,
                       capture_output=True)
        edge_files = self.work / "edge-link-tls"
        subprocess.run([tether, "link-certs", "proxy", "edge", "--data", core_data,
                        "--out", str(edge_files)], check=True, capture_output=True)
        self.core_host.extra = ["--link-listen", f"127.0.0.1:{self.link_port}"]
        self.core_host.keep = True
        self.core_host.start()
        self.edge.extra = ["--core", f"127.0.0.1:{self.link_port}", "--link-tls", str(edge_files)]
        self.edge.start()

    def stop(self) -> None:
        self.edge.stop()
        self.core_host.stop()


class Evennia:
    """Evennia 5 through `evennia.py`, with the same face as `Tether`."""

    def __init__(self, work: Path, port: int):
        import evennia  # beside this file; only Evennia runs need it

        self.module = evennia
        self.game = evennia.Evennia(work, port)
        self.port = port
        self.name = f"Evennia {evennia.EVENNIA_VERSION}"

    def install(self) -> None:
        self.game.install()

    def start(self) -> None:
        # A fresh game directory and database for every run, as tether gets; whatever an
        # earlier run left running goes first.
        self.game.stop()
        self.game.init()
        self.game.start()

    def pids(self) -> dict[str, int]:
        found = self.game.pids()
        return {"proxy": found["portal"], "core": found["server"]}

    def reload(self) -> None:
        self.game.reload()

    def kill_core(self) -> None:
        """kill -9 of the Server, then `evennia start` at once, as a supervisor would
        (Evennia restarts nothing by itself)."""
        self.game.kill_server()
        self.game.start()

    def stop(self) -> None:
        self.game.stop()

    def describe(self) -> str:
        return (
            f"{self.module.EVENNIA_REQUIREMENT} in a virtualenv, SQLite, telnet only; rate "
            "limits and throttles raised so that they do not limit the run "
            "(MAX_CONNECTION_RATE, MAX_COMMAND_RATE, MAX_CHAR_LIMIT, creation and login "
            "throttles, idle timeout), and MD5 password hashing so that 1,000 logins do not "
            "take 15 minutes (it changes login time only; every setting and why is in "
            "scripts/bench/evennia.py)."
        )


class Bots:
    """One tether-bots run; `on_progress(phase, seconds_in_phase)` is called once a second."""

    def __init__(self, label: str, port: int | list[int], sessions: int, rate: float, **options):
        """`port`: the server's telnet port, or several (one per proxy: sessions take them in
        turn)."""
        self.label = label
        ports = port if isinstance(port, list) else [port]
        self.args = [
            str(RELEASE / "tether-bots"),
            "--target", ",".join(f"127.0.0.1:{p}" for p in ports),
            "--sessions", str(sessions),
            "--rate", str(rate),
            "--duration", str(options.pop("duration", WINDOW)),
            "--json",
        ]
        for key, value in options.items():
            if value is True:
                self.args.append(f"--{key.replace('_', '-')}")
            elif value is not False:
                self.args += [f"--{key.replace('_', '-')}", str(value)]

    def run(self, on_progress=None) -> dict:
        log(f"{self.label}: {' '.join(self.args[1:])}")
        process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        tail: list[str] = []
        runs = OUT / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "-" for c in self.label.lower())
        # Every second's progress line, kept: where a run's spread comes from (a stall, a
        # queue that builds) shows in them, not in the window's percentiles.
        progress_log = (runs / f"{slug}.progress.txt").open("w")

        def follow() -> None:
            phase, since, last = "", time.monotonic(), 0.0
            for raw in iter(process.stderr.readline, b""):
                line = raw.decode(errors="replace")
                progress_log.write(line)
                tail.append(line)
                del tail[:-20]
                if time.monotonic() - last > 15:
                    log(f"  {line.strip()}")
                    last = time.monotonic()
                # "[   70s] measuring  logged in 1000/1000 ...": other lines are not progress.
                found = PROGRESS.match(line)
                if not found:
                    continue
                if found["phase"] != phase:
                    phase, since = found["phase"], time.monotonic()
                if on_progress:
                    on_progress(phase, time.monotonic() - since)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        stdout = process.stdout.read().decode()
        process.wait()
        reader.join(timeout=5)
        progress_log.close()
        if process.returncode != 0:
            raise RuntimeError(f"tether-bots failed ({process.returncode}):\n{''.join(tail)}")
        result = json.loads(stdout.strip().splitlines()[-1])
        (runs / f"{slug}.json").write_text(json.dumps(result, indent=1))
        return result


def summary(result: dict) -> dict:
    """The figures the report uses from one tether-bots result."""
    everything = result["summary"]["all"]
    answered = everything["answered"] > 0
    return {
        "sessions": result["sessions"],
        "logged_in": result["logged_in"],
        "per_s": result["answered_per_s"],
        "sent": everything["sent"],
        "answered": everything["answered"],
        "lost": everything["lost"],
        "order": everything["out_of_order"],
        "dropped": result["dropped"],
        "p50": everything["p50_ms"] if answered else None,
        "p90": everything["p90_ms"] if answered else None,
        "p99": everything["p99_ms"] if answered else None,
        "max": everything["max_ms"] if answered else None,
        "failures": result.get("failures", {}),
        "compressed": result.get("compressed", 0),
        "gmcp_messages": result.get("gmcp_messages", 0),
    }


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "-"


def ring_world(rooms: int) -> str:
    """A ring of `rooms` rooms, every one a start room: newcomers spread evenly by name, and
    bots walking north then south come back where they were, so rooms stay about equal."""
    keys = [f"r{i}" for i in range(rooms)]
    lines = ['name = "Bench Ring"', f"start = {json.dumps(keys)}", ""]
    for i, key in enumerate(keys):
        lines += [
            f"[rooms.{key}]",
            f'name = "Ring room {i}"',
            'description = "One of many identical rooms around the benchmark ring."',
            f'exits = {{ north = "{keys[(i + 1) % rooms]}", south = "{keys[i - 1]}" }}',
            "",
        ]
    return "\n".join(lines)


# --- scenarios ------------------------------------------------------------------------------


def roundtrip(servers) -> dict:
    results = {}
    for server in servers:
        for sessions, rate in ROUNDTRIP:
            # A fresh server for every count: a slow server may still be working off the last
            # run's players (Evennia was, for minutes) and must not charge it to the next.
            server.start()
            try:
                label = f"roundtrip {server.name} {sessions}"
                bots = Bots(label, server.port, sessions, rate, ramp=50, login_timeout=120)
                results[(server.name, sessions)] = summary(bots.run())
            finally:
                server.stop()
    return results


class Poisoner:
    """One more player, logged in before the bots, who types a command that kills the core
    (the core's test-only fault injection) and waits to be told it was quarantined."""

    def __init__(self, port: int, fault: str):
        self.fault = fault
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.seen = b""
        self.send("create Poisoner poison123")
        self.expect(b"Your character has been created")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def expect(self, needle: bytes) -> None:
        while needle not in self.seen:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError(f"the poisoner was disconnected waiting for {needle!r}")
            self.seen += chunk
        self.seen = self.seen[self.seen.index(needle) + len(needle):]

    def poison(self) -> None:
        self.send(f"fault {self.fault}")
        if self.fault == "panic":
            # Caught in the core: the game never stops.
            self.expect(b"That command failed because of an error in the game")
        else:
            self.expect(b"stopped the game twice, so it was not run again")

    def close(self) -> None:
        self.sock.close()


def disruption(server, mode: str, sessions: int, rate: float, **bots_options) -> dict:
    """One run of `sessions` active sessions with one disruption a third into the window."""
    fired = threading.Event()
    seen = {}
    poisoner = None
    actions = {
        "reload": lambda: server.reload(),
        "kill": lambda: server.kill_core(),
        "upgrade": lambda: server.upgrade_proxy(),
        "proxy-kill": lambda: server.kill_proxy(),
        "hang": lambda: server.hang_core(),
        "poison-panic": lambda: poisoner.poison(),
        "poison-abort": lambda: poisoner.poison(),
        "poison-hang": lambda: poisoner.poison(),
    }

    def disrupt() -> None:
        started = time.monotonic()
        try:
            actions[mode]()
            seen["back_s"] = time.monotonic() - started
            log(f"  {mode}: back after {seen['back_s']:.2f} s")
        except Exception as error:  # reported, and the run goes on: the bots count the damage
            seen["error"] = str(error)
            log(f"  {mode} failed: {error}")

    disruptor = threading.Thread(target=disrupt, daemon=True)

    def on_progress(phase: str, seconds: float) -> None:
        if phase == "measuring" and seconds >= WINDOW / 3 and not fired.is_set():
            fired.set()
            disruptor.start()

    server.start()
    try:
        if mode.startswith("poison-"):
            poisoner = Poisoner(server.port, mode.removeprefix("poison-"))
        label = f"{mode} {server.name} {sessions} every {rate:g}s"
        options = {"ramp": 50, "login_timeout": 120, "drain": 30, **bots_options}
        bots = Bots(label, server.port, sessions, rate, **options)
        result = summary(bots.run(on_progress))
    finally:
        # A reload still under way would start a game process after the stop below.
        if fired.is_set():
            disruptor.join(timeout=300)
        if poisoner:
            poisoner.close()
        server.stop()
    result["disrupted"] = fired.is_set()
    result.update(seen)
    return result


def faults(sessions: int, rate: float) -> dict:
    results = {}
    for mode in ("hang", "poison-panic", "poison-abort", "poison-hang"):
        server = Tether(OUT / "tether", free_port(), ring(sessions), faults=mode.startswith("poison"))
        try:
            results[mode] = disruption(server, mode, sessions, rate)
        except Exception as error:  # one broken run must not lose the others
            log(f"  {mode} run failed: {error}")
            server.stop()
    return results


# One session typing every 0.2 s, as in the round trip: what each of its commands costs.
COST_RATE = 0.2


def cost() -> dict:
    """What one session's command costs tether's proxy and core: context switches (all
    threads, from /proc, in a normal run) and instructions executed in user space (callgrind,
    in a run with both under valgrind), over the middle of the measuring window, divided by
    the commands answered in it. The kernel's instructions are not counted: this machine's
    kernel offers no hardware counters (perf stat says `<not supported>`)."""
    results = {}

    def measure(server: Tether, start, stop) -> dict:
        """Runs one session; `start()` at the window's start and `stop()` at 80 % of it
        return per-process figures; their difference per command."""
        marks = {}

        def on_progress(phase: str, seconds: float) -> None:
            if phase == "measuring" and "from" not in marks:
                marks["from"] = (start(), time.monotonic())
            if phase == "measuring" and seconds >= WINDOW * 0.8 and "to" not in marks:
                marks["to"] = (stop(), time.monotonic())

        server.start()
        try:
            bots = Bots(f"cost {server.name}", server.port, 1, COST_RATE, ramp=50)
            result = summary(bots.run(on_progress))
        finally:
            server.stop()
        (before, since), (after, until) = marks["from"], marks["to"]
        commands = result["per_s"] * (until - since)
        return {
            "commands": commands,
            "p50": result["p50"],
            "per_command": {p: (after[p] - before[p]) / commands for p in ("proxy", "core")},
        }

    server = Tether(OUT / "tether", free_port())

    def switches() -> dict[str, int]:
        return {role: context_switches(pid) for role, pid in server.pids().items()}

    results["switches"] = measure(server, switches, switches)

    # The same under callgrind: each process writes its pid, then becomes valgrind.
    work = OUT / "callgrind"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for role in ("proxy", "core"):
        script = work / f"{role}.sh"
        script.write_text(
            "#!/bin/sh\n"
            f"echo $$ > {work / role}.pid\n"
            f"exec valgrind --tool=callgrind --callgrind-out-file={work / role}.%p.out "
            f"{RELEASE / ('tether-' + role)} \"$@\"\n"
        )
        script.chmod(0o755)
    server = Tether(OUT / "tether", free_port())
    # Valgrind runs them some 50 times slower: no hang timeout, and no watching.
    server.extra = ["--proxy-bin", str(work / "proxy.sh"), "--core-bin", str(work / "core.sh"),
                    "--hang-timeout", "3600"]

    def instructions(zero: bool) -> dict[str, int]:
        taken = {}
        for role in ("proxy", "core"):
            pid = (work / f"{role}.pid").read_text().strip()
            if zero:
                subprocess.run(["callgrind_control", "--zero", pid], check=True,
                               capture_output=True)
                taken[role] = 0
                continue
            dumped = set(work.glob(f"{role}.{pid}.out*"))
            subprocess.run(["callgrind_control", "--dump", pid], check=True, capture_output=True)
            fresh = sorted(set(work.glob(f"{role}.{pid}.out*")) - dumped,
                           key=lambda path: path.stat().st_mtime)
            # "summary: N": instructions (Ir) since the zeroing, all threads.
            found = re.search(r"^summary: (\d+)", fresh[-1].read_text(), re.M)
            taken[role] = int(found[1])
        return taken

    if shutil.which("valgrind") and shutil.which("callgrind_control"):
        results["instructions"] = measure(
            server, lambda: instructions(True), lambda: instructions(False)
        )
    else:
        log("  valgrind is not installed: no instruction counts")
    return results


def report_cost(results: dict) -> list[str]:
    lines = [
        "## One session's cost per command",
        "",
        f"One session typing one command every {COST_RATE:g} s (the default mix), against "
        "tether; over the middle of the window, divided by the commands answered in it. "
        "Context switches: every thread's voluntary and involuntary switches, from /proc. "
        "Instructions: user space only, counted by callgrind (both processes run under "
        "valgrind, so that run's round trip is not tether's); the kernel's share is not "
        "counted (no hardware counters on this machine).",
        "",
        "| measure | proxy | core | commands | p50 in that run |",
        "|---|---|---|---|---|",
    ]
    for key, name in (("switches", "context switches / command"),
                      ("instructions", "instructions (user) / command")):
        if key in results:
            r = results[key]
            lines.append(
                f"| {name} | {r['per_command']['proxy']:,.1f} | {r['per_command']['core']:,.1f} "
                f"| {r['commands']:.0f} | {ms(r['p50'])} |"
            )
    return lines + [""]


def ring(sessions: int) -> Path:
    """The ring world file for `sessions` players in rooms of about ROOM_SIZE."""
    rooms = max(1, round(sessions / ROOM_SIZE))
    world = OUT / f"ring-{rooms}.toml"
    world.write_text(ring_world(rooms))
    return world


# Proxy upgrades and crashes: (sessions, seconds between commands), spread over rooms of
# ROOM_SIZE.
UPGRADES = [(1000, 1.0), (10000, CAPACITY_RATE)]
PROXY_DISRUPTIONS = ["upgrade", "proxy-kill"]


def upgrades() -> dict:
    results = {}
    for sessions, rate in UPGRADES:
        for mode in PROXY_DISRUPTIONS:
            server = Tether(OUT / "tether", free_port(), ring(sessions))
            try:
                results[(mode, sessions, rate)] = disruption(
                    server, mode, sessions, rate, ramp=40, login_timeout=600,
                    processes=processes_for(sessions), mix=CAPACITY_MIX,
                )
            except Exception as error:  # one broken run must not lose the others
                log(f"  {mode} run failed: {error}")
                server.stop()
    return results


def report_upgrades(results: dict) -> list[str]:
    lines = [
        "## Proxy upgrade and proxy kill -9 under load",
        "",
        f"Sessions spread over rooms of about {ROOM_SIZE}, each typing one command every "
        "`rate` seconds; a third into the window, one `tether upgrade-proxy` (a new proxy "
        "takes the listeners, the link to the core and every connection with its state) or "
        "one kill -9 of the proxy (the supervisor's keeper holds every connection, and a new "
        "proxy carries each on from its checkpoint). "
        "`max` is the longest any player waited for an answer in the window; lost are "
        "commands never answered; back is when `tether upgrade-proxy` returned, or when the "
        "replacement of the killed proxy was running.",
        "",
        "| disruption | sessions | rate | logged in | p50 | p99 | max (longest wait) | lost "
        "| out of order | dropped | back |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (mode, sessions, rate), r in results.items():
        back = f"{r['back_s']:.2f} s" if "back_s" in r else r.get("error", "-")
        lines.append(
            f"| {mode} | {sessions:,} | {rate:g} s | {r['logged_in']:,} | {ms(r['p50'])} "
            f"| {ms(r['p99'])} | {ms(r['max'])} | {r['lost']} of {r['sent']} | {r['order']} "
            f"| {r['dropped']} | {back} |"
        )
    return lines + [""]


def capacity(steps: list[int], tether_work: Path, clients: bool = False, repeat: int = 1) -> dict:
    """Each step `repeat` times. A step's result is its median run (by p50), with every run
    in `runs` for the spread. `clients`: every bot takes MCCP2 and GMCP as Mudlet does."""
    results = {}
    for sessions in steps:
        runs = []
        for attempt in range(repeat):
            label = f"{'clients' if clients else 'capacity'} {sessions}" + (
                f" run {attempt + 1}" if repeat > 1 else ""
            )
            runs.append(capacity_run(sessions, tether_work, clients, label))
        ranked = sorted(runs, key=lambda r: r["p50"] if r["p50"] is not None else float("inf"))
        results[sessions] = {**ranked[(len(ranked) - 1) // 2], "runs": runs}
    return results




def capacity_run(sessions: int, tether_work: Path, clients: bool, label: str) -> dict:
    rooms = max(1, round(sessions / ROOM_SIZE))
    server = Tether(tether_work, free_port(), ring(sessions))
    # Past one proxy's open files, more proxies on the core's link socket, each its own
    # `tether up --core DATA/link.sock` (README: "More proxies on one host").
    more = [
        Tether(tether_work.with_name(f"{tether_work.name}-proxy-{n}"), free_port())
        for n in range(2, processes_for(sessions) + 1)
    ]
    servers = [server, *more]
    samples = {}
    cpu = {}

    def pids() -> list[tuple[str, int]]:
        return [(role, pid) for each in servers for role, pid in each.pids().items()]

    def rss_now() -> dict[str, int]:
        """Every process of a role added up: all proxies are the proxy."""
        taken = {"proxy": 0, "core": 0}
        for role, pid in pids():
            taken[role] += rss_kib(pid)
        return taken

    def cpu_now() -> dict[str, float]:
        taken = {"proxy": 0.0, "core": 0.0}
        for role, pid in pids():
            taken[role] += cpu_seconds(pid)
        return {**taken, "bots": bots_cpu_seconds(), "at": time.monotonic()}

    def on_progress(phase: str, seconds: float) -> None:
        key = {"idle": ("idle", 5), "measuring": ("active", WINDOW / 2)}.get(phase)
        if key and seconds >= key[1] and key[0] not in samples:
            samples[key[0]] = rss_now()
        # CPU over most of the window (its edges are a progress line, a second, apart).
        if phase == "measuring" and "from" not in cpu:
            cpu["from"] = cpu_now()
        if phase == "measuring" and seconds >= WINDOW * 0.8 and "to" not in cpu:
            cpu["to"] = cpu_now()

    try:
        server.start()
        for proxy in more:
            proxy.extra = ["--core", str(tether_work / "data" / "link.sock")]
            proxy.start()
        time.sleep(1)
        samples["empty"] = rss_now()
        # argon2 hashes about 40 logins a second here (two CPUs); started faster, logins
        # queue for minutes and the core closes those past its 300 s login limit (42 of
        # 40,000 were, at 100 a second).
        bots = Bots(
            label, [each.port for each in servers], sessions, CAPACITY_RATE, ramp=40,
            login_timeout=1200, idle=15, processes=processes_for(sessions),
            mix=CAPACITY_MIX, mccp2=clients, gmcp=clients,
        )
        result = summary(bots.run(on_progress))
    finally:
        for each in reversed(servers):
            each.stop()
    result["proxies"] = len(servers)
    result["offered_per_s"] = sessions / CAPACITY_RATE
    result["rooms"] = rooms
    result["rss"] = samples
    if "to" in cpu:
        wall = cpu["to"]["at"] - cpu["from"]["at"]
        # Each process's share of one CPU over the window, and its CPU per command.
        result["cpu"] = {
            name: {
                "busy": (cpu["to"][name] - cpu["from"][name]) / wall,
                "per_command_us": (cpu["to"][name] - cpu["from"][name])
                / (wall * result["per_s"]) * 1e6 if result["per_s"] else None,
            }
            for name in ("proxy", "core", "bots")
        }
    return result


# --- report ---------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown CPU",
    )
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {int(memory) // 1024 // 1024} GiB, "
        f"{platform.system()} {platform.release()}, {rustc}, Python {platform.python_version()}"
    )


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report_roundtrip(results: dict, servers: list[str]) -> list[str]:
    lines = [
        "## Round trip (scenario 1)",
        "",
        "Every session logged in, then one command per session every "
        + ", ".join(f"{rate:g} s at {n:,}" for n, rate in ROUNDTRIP)
        + f" sessions (default mix), {WINDOW:.0f} s window. Ratios are to the floor; the last"
        " ratio is the p50's to the two-process floor's.",
        "",
        "| sessions | server | logged in | commands/s | p50 | p99 | max | p50 ratio | p99 ratio "
        "| p50 ratio to two-process | lost | dropped |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sessions, _ in ROUNDTRIP:
        floor = results.get((Floor.name, sessions))
        split = results.get((TwoProcessFloor.name, sessions))
        for name in servers:
            r = results.get((name, sessions))
            if not r:
                continue
            lines.append(
                f"| {sessions:,} | {name} | {r['logged_in']:,} | {r['per_s']:.0f} "
                f"| {ms(r['p50'])} | {ms(r['p99'])} "
                f"| {ms(r['max'])} | {ratio(r['p50'], floor and floor['p50'])} "
                f"| {ratio(r['p99'], floor and floor['p99'])} "
                f"| {ratio(r['p50'], split and split['p50'])} | {r['lost']} of {r['sent']} "
                f"| {r['dropped']} |"
            )
    return lines + [""]


def report_disruption(results: dict) -> list[str]:
    lines = [
        "## Reload and crash under load (scenario 3)",
        "",
        "Every session typing one command every `rate` seconds, all in one room or spread over "
        f"rooms of about {ROOM_SIZE}; a third into the window, one planned reload (`tether reload`, "
        "`evennia reload`) or one kill -9 of the game process (tether's core, restarted by "
        "its supervisor; Evennia's Server, started again at once with `evennia start`). "
        "`max` is the longest any player waited for an answer in the window; lost are "
        "commands never answered; back is when the reload or restart command returned.",
        "",
        "| sessions | rate | rooms | server | logged in | event | p50 | p99 | max (longest wait) "
        "| lost | out of order | dropped | back |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, sessions, rate, spread, mode), r in results.items():
        back = f"{r['back_s']:.2f} s" if "back_s" in r else r.get("error", "-")
        lines.append(
            f"| {sessions:,} | {rate:g} s | {f'of ~{ROOM_SIZE}' if spread else 'one'} | {name} "
            f"| {r['logged_in']:,} | {mode} | {ms(r['p50'])} "
            f"| {ms(r['p99'])} "
            f"| {ms(r['max'])} | {r['lost']} of {r['sent']} | {r['order']} | {r['dropped']} "
            f"| {back} |"
        )
    return lines + [""]


def report_faults(results: dict, sessions: int, rate: float) -> list[str]:
    lines = [
        "## A hung core and a poison command under load",
        "",
        f"{sessions:,} sessions in rooms of about {ROOM_SIZE}, each typing one command every "
        f"{rate:g} s; a third into the window: `hang` stops the core (kill -STOP), which the "
        "supervisor replaces once it has made no progress for the hang timeout (5 s, the "
        "default); `poison-panic` has one more player type `fault panic`, which the core "
        "catches; `poison-abort` and `poison-hang` have that player type `fault abort` "
        "or `fault hang`, which kills the core (an abort; a hang the supervisor ends), is "
        "run once more by the next core, which dies the same way (a core stuck in that same "
        "line gets 1 s, not the whole hang timeout again), and is then quarantined. "
        "`max` is the longest any bot waited; back is when the stopped core was replaced, or "
        "when the poisoner was told its command failed or was quarantined.",
        "",
        "| event | logged in | p50 | p99 | max (longest wait) | lost | out of order | dropped "
        "| back |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, r in results.items():
        back = f"{r['back_s']:.2f} s" if "back_s" in r else r.get("error", "-")
        lines.append(
            f"| {mode} | {r['logged_in']:,} | {ms(r['p50'])} | {ms(r['p99'])} | {ms(r['max'])} "
            f"| {r['lost']} of {r['sent']} | {r['order']} | {r['dropped']} | {back} |"
        )
    return lines + [""]


def cpu_share(run: dict, process: str) -> str:
    cpu = run.get("cpu")
    return f"{cpu[process]['busy'] * 100:.0f} %" if cpu else "-"


def spread_of(values: list[float | None]) -> str:
    """min / median / max of one figure over several runs."""
    known = sorted(v for v in values if v is not None)
    if not known:
        return "-"
    return " / ".join(ms(v) for v in (known[0], statistics.median(known), known[-1]))


def clients_line(results: dict) -> str:
    """That the bots really were compressed and heard GMCP, per session count."""
    said = [
        f"{sessions:,}: {r['compressed']:,} sessions compressed, "
        f"{r['gmcp_messages']:,} GMCP messages received"
        for sessions, r in results.items()
    ]
    return "Every bot took MCCP2 and GMCP as Mudlet does (" + "; ".join(said) + ").\n"


def plots(results: dict, prefix: str, title: str) -> list[str]:
    """The capacity results as JSON beside the report (OUT/PREFIX.json) and, with two session
    counts or more, drawn as PNG curves (plot.py); the report's lines that show them."""
    saved = OUT / f"{prefix}.json"
    steps = [{"sessions": sessions, **r} for sessions, r in results.items()]
    saved.write_text(json.dumps({"prefix": prefix, "title": title, "steps": steps}, indent=1))
    if len(steps) < 2:
        return []
    import plot  # beside this file

    try:
        drawn = plot.draw(saved, OUT)
    except (OSError, subprocess.CalledProcessError) as error:  # the figures are still in the tables
        log(f"  plotting failed: {error}")
        return [f"(The plots could not be drawn: {error}.)", ""]
    return [f"![{path.stem}]({path.name})" for path in drawn] + [""]


def report_capacity(results: dict) -> list[str]:
    lines = [
        "## Capacity and memory (scenarios 2 and 4)",
        "",
        f"tether with a ring of rooms, about {ROOM_SIZE} players in each, every player "
        f"typing one command every {CAPACITY_RATE:g} s ({CAPACITY_MIX}: no `who`, whose "
        f"answer lists every player). One proxy per {PER_PROCESS:,} players (a process here "
        "may hold about 20,000 open files): the others are more `tether up --core "
        "DATA/link.sock` on the core's link socket, the bots spread over them and over one "
        f"process per {PER_PROCESS:,}; the proxy's figures add all proxies up. Memory is VmRSS from /proc: before the "
        "sessions, after 5 s of all sessions logged in and silent (idle), and halfway through "
        "the window (active); per session = growth over the empty server / sessions (the "
        "core's growth includes its argon2 working memory, 19 MiB per concurrent hash, kept "
        "for the next login; the marginal figure between two session counts leaves it out).",
        "",
        "| sessions | proxies | logged in | rooms | commands/s offered / handled | p50 | p99 "
        "| max | lost | dropped | proxy idle / session | proxy active / session "
        "| core idle / session | core active / session |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sessions, r in results.items():
        rss = r["rss"]

        def per(process: str, state: str) -> str:
            if state not in rss:
                return "-"
            grown = rss[state][process] - rss["empty"][process]
            return f"{grown / sessions:.1f} KiB"

        lines.append(
            f"| {sessions:,} | {r.get('proxies', 1)} | {r['logged_in']:,} | {r['rooms']} "
            f"| {sessions / CAPACITY_RATE:.0f} / {r['per_s']:.0f} | {ms(r['p50'])} | {ms(r['p99'])} | {ms(r['max'])} | {r['lost']} | {r['dropped']} "
            f"| {per('proxy', 'idle')} | {per('proxy', 'active')} | {per('core', 'idle')} "
            f"| {per('core', 'active')} |"
        )
    counts = sorted(results)
    for low, high in zip(counts, counts[1:]):
        for state in ("idle", "active"):
            if state in results[low]["rss"] and state in results[high]["rss"]:
                # Growth over each run's own empty server: the two may differ in proxies.
                def growth(r: dict, p: str) -> int:
                    return r["rss"][state][p] - r["rss"]["empty"][p]

                grown = {
                    p: (growth(results[high], p) - growth(results[low], p)) / (high - low)
                    for p in ("proxy", "core")
                }
                lines.append(
                    f"\nMarginal, {low:,} to {high:,} sessions, {state}: proxy "
                    f"{grown['proxy']:.1f} KiB, core {grown['core']:.1f} KiB per session."
                )
    lines += [
        "",
        "CPU during the window (user + system time from /proc, over its middle 80 %; one CPU ="
        " 100 %), and per command handled:",
        "",
        "| sessions | proxy | core | bots | proxy / command | core / command | bots / command |",
        "|---|---|---|---|---|---|---|",
    ]
    for sessions, r in results.items():
        cpu = r.get("cpu")
        if not cpu:
            continue
        busy = " | ".join(cpu_share(r, p) for p in ("proxy", "core", "bots"))
        each = " | ".join(
            "-" if cpu[p]["per_command_us"] is None else f"{cpu[p]['per_command_us']:.0f} µs"
            for p in ("proxy", "core", "bots")
        )
        lines.append(f"| {sessions:,} | {busy} | {each} |")
    if any(len(r.get("runs", [])) > 1 for r in results.values()):
        lines += [
            "",
            "Run to run: each session count was run several times; the table above shows the "
            "median run (by p50). Every run, then min / median / max over the runs:",
            "",
            "| sessions | run | p50 | p99 | max | lost | dropped | proxy CPU | core CPU |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for sessions, r in results.items():
            runs = r.get("runs", [])
            for number, run in enumerate(runs, 1):
                lines.append(
                    f"| {sessions:,} | {number} | {ms(run['p50'])} | {ms(run['p99'])} "
                    f"| {ms(run['max'])} | {run['lost']} | {run['dropped']} "
                    f"| {cpu_share(run, 'proxy')} | {cpu_share(run, 'core')} |"
                )
            spread = {
                key: spread_of([run[key] for run in runs]) for key in ("p50", "p99", "max")
            }
            lines.append(
                f"| {sessions:,} | min / median / max | {spread['p50']} | {spread['p99']} "
                f"| {spread['max']} | {sum(run['lost'] for run in runs)} "
                f"| {sum(run['dropped'] for run in runs)} | | |"
            )
    lines += ["", "Resident sizes (KiB):", "", "| sessions | state | proxy | core |", "|---|---|---|---|"]
    for sessions, r in results.items():
        for state, sizes in r["rss"].items():
            lines.append(f"| {sessions:,} | {state} | {sizes['proxy']:,} | {sizes['core']:,} |")
    return lines + [""]


def main() -> int:
    global ROUNDTRIP, DISRUPTIONS, FAULTS_LOAD, UPGRADES, WINDOW, PROXY_DISRUPTIONS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="roundtrip,cost,reload,upgrade,capacity,clients,faults",
                        help="comma-separated scenarios: roundtrip, cost, reload, upgrade, "
                        "capacity, clients, faults")
    parser.add_argument("--no-evennia", action="store_true", help="leave Evennia out")
    parser.add_argument("--quick", action="store_true",
                        help="a tenth of the sessions and 10 s windows: checks the setup only")
    parser.add_argument("--capacity-steps", default="1000,10000",
                        help="session counts for the capacity scenario")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each capacity step, reported each and as min/median/max")
    parser.add_argument("--upgrade-steps", default=None,
                        help="session counts for the upgrade scenario (default: 1000,10000)")
    parser.add_argument("--reload-steps", default=None,
                        help="session counts of the reload scenario's loads to run "
                        "(default: all, 1000,100,1000,10000)")
    parser.add_argument("--upgrade-modes", default=",".join(PROXY_DISRUPTIONS),
                        help="what the upgrade scenario does to the proxy: upgrade, proxy-kill")
    args = parser.parse_args()
    PROXY_DISRUPTIONS = args.upgrade_modes.split(",")
    if args.upgrade_steps:
        rates = dict(UPGRADES)
        UPGRADES = [(n, rates.get(n, CAPACITY_RATE)) for n in map(int, args.upgrade_steps.split(","))]
    if args.reload_steps:
        counts = {int(n) for n in args.reload_steps.split(",")}
        DISRUPTIONS = [load for load in DISRUPTIONS if load[0] in counts]
    if args.quick:
        ROUNDTRIP = [(n // 10 or 1, rate) for n, rate in ROUNDTRIP]
        DISRUPTIONS = [(n // 10, rate, spread) for n, rate, spread in DISRUPTIONS]
        FAULTS_LOAD = (FAULTS_LOAD[0] // 10, *FAULTS_LOAD[1:])
        UPGRADES = [(n // 10, rate) for n, rate in UPGRADES]
        WINDOW = 10.0
    wanted = set(args.only.split(","))

    log("building release binaries")
    subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT, check=True)
    if "faults" in wanted:
        log("building the core with fault injection (the faults profile)")
        subprocess.run(
            ["cargo", "build", "--profile", "faults", "-p", "tether-core"], cwd=ROOT, check=True,
        )
    OUT.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = loadavg()

    game = None
    if not args.no_evennia and wanted & {"roundtrip", "reload"}:
        game = Evennia(OUT / "evennia", free_port())
        log("installing Evennia")
        game.install()

    sections = []
    if "roundtrip" in wanted:
        servers = [
            Floor(free_port()),
            TwoProcessFloor(OUT / "relay", free_port()),
            Tether(OUT / "tether", free_port()),
            RemoteTether(OUT / "remote", free_port()),
        ]
        if game:
            servers.append(game)
        results = roundtrip(servers)
        sections += report_roundtrip(results, [s.name for s in servers])
    if "reload" in wanted:
        results = {}
        for sessions, rate, spread in DISRUPTIONS:
            servers = [Tether(OUT / "tether", free_port(), ring(sessions) if spread else None)]
            if game and not spread:
                servers.append(game)
            # Past 1,000 players: logins as fast as argon2 hashes them here, the capacity
            # scenario's mix (no `who`) and one bots process per PER_PROCESS, as in the
            # upgrade scenario.
            big = {
                "ramp": 40, "login_timeout": 600, "processes": processes_for(sessions),
                "mix": CAPACITY_MIX,
            } if sessions > 1000 else {}
            for server in servers:
                for mode in ("reload", "kill"):
                    try:
                        result = disruption(server, mode, sessions, rate, **big)
                    except Exception as error:  # one broken run must not lose the others
                        log(f"  {mode} run failed: {error}")
                        server.stop()
                        continue
                    results[(server.name, sessions, rate, spread, mode)] = result
        sections += report_disruption(results)
    if "cost" in wanted:
        sections += report_cost(cost())
    if "faults" in wanted:
        sessions, rate, _ = FAULTS_LOAD
        sections += report_faults(faults(sessions, rate), sessions, rate)
    if "upgrade" in wanted:
        sections += report_upgrades(upgrades())
    steps = [int(n) for n in args.capacity_steps.split(",")]
    if "capacity" in wanted:
        results = capacity(steps, OUT / "tether", repeat=args.repeat)
        sections += report_capacity(results)
        sections += plots(results, "capacity", "tether: players in rooms of 20")
    if "clients" in wanted:
        results = capacity(steps, OUT / "tether", clients=True, repeat=args.repeat)
        report = report_capacity(results)
        report[0] += ", every bot with MCCP2 and GMCP"
        report.insert(2, clients_line(results))
        sections += report
        sections += plots(results, "clients", "tether: players with MCCP2 and GMCP, rooms of 20")

    minutes = (datetime.datetime.now(datetime.timezone.utc) - started).seconds // 60
    header = [
        "# tether benchmark report",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC, {minutes} min, by "
        f"`python3 scripts/bench/run.py {' '.join(sys.argv[1:])}`.",
        "",
        f"Machine: {machine()}. Load average before: {load_before}; after: {loadavg()}.",
        "",
    ]
    if game:
        header += [f"Evennia: {game.describe()}", ""]
    report = "\n".join(header + sections)
    (OUT / "report.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
