#!/usr/bin/env python3
"""Plays one short session against a tether proxy with telnetlib3's client API.

Run by tests/clients.rs. It does not judge the server: it reports what it saw, one fact per
line on stdout (`<kind>\t<value>...`), and the Rust test asserts on those facts. telnetlib3's
own debug log (every option sent and received) goes to stderr, which the test keeps as evidence.

Every wait has a deadline and returns as soon as its condition holds: no fixed sleeps.
"""

import argparse
import asyncio
import json
import logging
import re
import subprocess
import sys
import time

import telnetlib3
from telnetlib3.accessories import get_version
from telnetlib3.client import TelnetClient
from telnetlib3.telopt import (
    CHARSET,
    CMD_EOR,
    ECHO,
    EOR,
    GA,
    GMCP,
    MCCP2_COMPRESS,
    MSSP,
    NAWS,
    NEW_ENVIRON,
    SGA,
    TTYPE,
)

# How long any single wait may take. Generous: the CI machines are shared and slow.
WAIT = 30.0

# The packages the game sends, spelled as the GMCP spec and Mudlet spell them.
SUPPORTS = ["Char 1", "Room 1", "Comm 1"]

# SGR escapes: ESC [ params m. A reset (`0` or empty) alone proves nothing about colour.
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def fact(kind, *values):
    """One fact for the Rust side; tabs separate fields, so none may contain one."""
    fields = [str(v).replace("\t", " ").replace("\n", "\\n") for v in values]
    print("\t".join([kind, *fields]), flush=True)


class RecordingClient(TelnetClient):
    """telnetlib3's client, recording GMCP messages and prompt ends in arrival order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gmcp = []  # (package, JSON text), in order
        self.prompt_ends = []  # "EOR" / "GA", in order

    def connection_made(self, transport):
        super().connection_made(transport)
        # telnetlib3 only logs EOR and GA; record them to see which one prompts end with.
        self.writer.set_iac_callback(CMD_EOR, lambda _cmd: self._prompt_end("EOR"))
        self.writer.set_iac_callback(GA, lambda _cmd: self._prompt_end("GA"))

    def _prompt_end(self, which):
        self.prompt_ends.append(which)

    def on_gmcp(self, package, data):
        # Serialised now: telnetlib3 keeps the first dict per package and merges later ones
        # into it, which would rewrite what we recorded.
        self.gmcp.append((package, json.dumps(data)))
        super().on_gmcp(package, data)


class Session:
    def __init__(self, reader, writer, client):
        self.reader = reader
        self.writer = writer
        self.client = client
        self.text = ""

    async def read_until(self, what, check):
        """Reads until check(self) is true; fails with `what` after WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while not check(self):
            remaining = deadline - time.monotonic()
            try:
                chunk = await asyncio.wait_for(self.reader.read(4096), max(remaining, 0))
            except asyncio.TimeoutError:
                raise TimeoutError(f"timed out waiting for {what}") from None
            if not chunk:
                raise ConnectionError(f"connection closed while waiting for {what}")
            self.text += chunk

    async def expect(self, needle):
        await self.read_until(repr(needle), lambda s: needle in s.text)

    async def round_trip(self, label):
        """Says something and waits for it to come back. The game answers lines in order, so
        everything it sent for the lines before (GMCP included, in whatever order it put
        text and GMCP) has arrived once this returns."""
        text = f"{label} done"
        self.send(f"say {text}")
        await self.expect(f'You say, "{text}"')

    def send(self, line):
        self.writer.write(line + "\r\n")

    def gmcp_packages(self):
        return [package for package, _ in self.client.gmcp]


def option_facts(writer):
    """What telnetlib3 itself believes was agreed, per option and direction."""
    names = {
        "ECHO": ECHO,
        "SGA": SGA,
        "EOR": EOR,
        "NAWS": NAWS,
        "TTYPE": TTYPE,
        "NEW_ENVIRON": NEW_ENVIRON,
        "CHARSET": CHARSET,
        "MSSP": MSSP,
        "MCCP2": MCCP2_COMPRESS,
        "GMCP": GMCP,
    }
    for name, opt in names.items():
        # remote = the server performs it (we said DO); local = we perform it (we said WILL).
        fact(
            "option",
            name,
            f"remote={writer.remote_option.enabled(opt)}",
            f"local={writer.local_option.enabled(opt)}",
        )


async def play(args):
    reader, writer = await telnetlib3.open_connection(
        args.host,
        args.port,
        # An explicit factory: telnetlib3 would pick its terminal client if stdin were a tty.
        client_factory=RecordingClient,
        encoding="utf8",
        term="xterm-256color",
        cols=100,
        rows=40,
        # None accepts the server's MCCP2 offer (telnetlib3's default); False answers DONT.
        compression=None if args.mccp else False,
        connect_minwait=0.2,
        connect_maxwait=5.0,
        connect_timeout=WAIT,
    )
    client = writer.protocol
    session = Session(reader, writer, client)
    try:
        await converse(args, session)
    finally:
        # On failure too: the text so far is what explains it.
        fact("transcript", session.text[-4000:])
        for package, data in client.gmcp:
            fact("gmcp", package, data)
        fact("prompt_ends", json.dumps(client.prompt_ends))
        fact("mccp2_active", writer.mccp2_active)
        option_facts(writer)
        writer.close()


async def converse(args, session):
    client, writer = session.client, session.writer
    await session.expect("connect <name>")
    fact("banner", "seen")

    session.send(f"create {args.name} {args.password}")
    await session.expect("Your character has been created.")
    # telnetlib3 answered WILL GMCP with its own Core.Hello and a Core.Supports.Set whose
    # module names it lowercases ("char 1", "room 1"): record what that alone brought.
    await session.round_trip("login")
    fact("gmcp_phase", "login", json.dumps(session.gmcp_packages()))
    mark = len(client.gmcp)

    if args.supports:
        writer.send_gmcp("Core.Supports.Set", SUPPORTS)
        fact("sent", "Core.Supports.Set " + json.dumps(SUPPORTS))

    # Proxy upgrades (when asked): each hands this connection to a new proxy mid-session,
    # with a line typed while it happens. Everything below then checks the state survived.
    for n in range(args.upgrades):
        session.send(f"say typed during upgrade {n}")
        done = await asyncio.to_thread(
            subprocess.run, args.upgrade_command, shell=True, capture_output=True, text=True
        )
        fact("upgrade", done.returncode, (done.stdout + done.stderr).strip())
        if done.returncode != 0:
            raise RuntimeError(f"the upgrade command failed: {done.stdout}{done.stderr}")
        await session.expect(f'You say, "typed during upgrade {n}"')
        await session.round_trip(f"upgrade {n}")

    text = f"hello from telnetlib3 {args.name}"
    session.send(f"say {text}")
    await session.expect(f'You say, "{text}"')
    fact("say_echoed", text)

    session.send("north")
    await session.round_trip("north")
    fact("gmcp_phase", "play", json.dumps(session.gmcp_packages()[mark:]))

    # The plain-text MSSP fallback, answered by the proxy itself.
    session.send("MSSP-REQUEST")
    await session.expect("MSSP-REPLY-END")
    block = session.text[session.text.index("MSSP-REPLY-START") :]
    for line in block.splitlines()[1:]:
        if line.startswith("MSSP-REPLY-END"):
            break
        name, _, value = line.partition("\t")
        fact("mssp_text", name, value)

    colours = sorted({params for params in SGR.findall(session.text) if params not in ("", "0")})
    fact("sgr", json.dumps(colours))
    session.send("quit")
    fact("done", "ok")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--name", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--no-mccp", dest="mccp", action="store_false")
    parser.add_argument(
        "--no-supports",
        dest="supports",
        action="store_false",
        help="rely on telnetlib3's own Core.Supports.Set only",
    )
    parser.add_argument("--upgrades", type=int, default=0, help="proxy upgrades mid-session")
    parser.add_argument("--upgrade-command", help="the shell command that upgrades the proxy")
    args = parser.parse_args()
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG,
        format="%(relativeCreated)7.0fms %(name)s %(message)s",
    )
    fact("telnetlib3", get_version())
    try:
        asyncio.run(play(args))
    except Exception as error:  # reported as a fact so the test shows it with the log
        fact("error", f"{type(error).__name__}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
