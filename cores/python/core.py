#!/usr/bin/env python3
"""A tether game core in Python: the reference for writing a core in any language.

It speaks the link protocol of ``protocol/schema/link.capnp`` through pycapnp, and nothing
else of tether's: the proxy keeps the players' connections, and this process can be
reloaded, or crash, while they stay connected. The game is deliberately small (create and
connect, say, look, who, quit, two rooms); what matters is the contract, which is all here:

The process (what the supervisor, ``tether``, expects of any core)
  - The link's listening Unix socket is inherited as descriptor 3 when ``TETHER_LINK_FD`` is
    set; run alone, the core binds ``--link`` itself. Proxies connect to it.
  - A page of shared memory is inherited as descriptor 4 when ``TETHER_WITNESS_FD`` is set: the
    core adds one to the 64-bit counter at byte 8 at least every 100 ms, or the supervisor
    takes it for hung (after ``--hang-timeout``, 5 s) and replaces it.
  - The core prints ``READY`` on a line of its own once it accepts proxies (or ``FAILED
    <reason>`` and exits).
  - SIGTERM is a planned reload: stop accepting, finish what is in hand, write everything
    queued, close. Lines a proxy sent that the core did not acknowledge go to the next core.
  - Unknown command-line options are ignored (the supervisor passes the Rust core's).

The link (see the schema's comments for every field)
  - A stream of Cap'n Proto messages each way, in the standard serialization with no framing
    of our own: ``ProxyMessage`` in, ``CoreMessage`` out.
  - ``attach`` (protocol version, proxy id, and a snapshot of every session the proxy holds:
    the state blob the core last asked it to keep, the last acknowledged line) is answered
    ``welcome`` (or ``refused`` with a reason). A core restores each session from its blob
    without a word to the player: to them nothing happened.
  - ``submit`` (a batch of events: a session opened, a line, a session closed, client info) is
    answered ``accepted`` once handled (or ``declined``: the proxy then offers the lines
    again, to this core or the next).
  - Output goes in ``deliver`` batches: text (markup), prompts, state blobs to keep, and
    ``ack(seq)`` once a line is handled and its output written. Nothing is lost because a
    proxy resends every line not yet acknowledged to whichever core comes next.
  - ``gameStatus`` gives the MSSP facts (players online, the game's name).
"""

import argparse
import json
import mmap
import os
import selectors
import signal
import socket
import struct
import sys
import time

import capnp
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, InvalidHashError

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "protocol", "schema", "link.capnp")
link = capnp.load(SCHEMA)

#: The largest message accepted (as the Rust side: 64 MiB); a bigger one closes the link.
MAX_MESSAGE_BYTES = 64 << 20
#: The witness page's progress counter (see ``tether_protocol::witness``).
WITNESS_PROGRESS_AT = 8

ROOMS = {
    "garden": (
        "{bold}{bright-cyan}The Python Garden{/}",
        "Neat rows of herbs grow between gravel paths. A greenhouse stands to the north.",
        {"north": "greenhouse"},
    ),
    "greenhouse": (
        "{bold}{bright-cyan}The Greenhouse{/}",
        "Warm, damp air and the smell of tomatoes. The garden is back to the south.",
        {"south": "garden"},
    ),
}
START = "garden"
PROMPT = "> "
HELP = (
    "Commands: say <text> (or '<text>), look, who, north/south (or n/s), quit.\n"
    "Before logging in: create <name> <password>, connect <name> <password>."
)


def escape(text):
    """Player text inside markup: braces doubled, so nobody can colour or fake a line."""
    return text.replace("{", "{{").replace("}", "}}")


def message_len(buf):
    """The length of the message at the start of ``buf`` once all of it is there, or None.

    The standard serialization: a 32-bit segment count minus one, a 32-bit size in words per
    segment, padding to 8 bytes, then the segments.
    """
    if len(buf) < 4:
        return None
    segments = struct.unpack_from("<I", buf, 0)[0] + 1
    if segments > 512:
        raise ValueError("too many segments")
    header = (4 + 4 * segments + 7) // 8 * 8
    if len(buf) < 4 + 4 * segments:
        return None
    total = header + 8 * sum(struct.unpack_from("<%dI" % segments, buf, 4))
    if total > MAX_MESSAGE_BYTES:
        raise ValueError("message too large")
    return total if len(buf) >= total else None


class Accounts:
    """Characters in a JSON file in the data directory, passwords hashed with argon2.

    Written whole to a temporary file and renamed over the old one, so a crash leaves the old
    file or the new one, never half of one.
    """

    def __init__(self, data):
        self.path = os.path.join(data, "python-core-accounts.json")
        self.hasher = PasswordHasher()
        try:
            with open(self.path, encoding="utf-8") as f:
                self.accounts = json.load(f)
        except FileNotFoundError:
            self.accounts = {}

    def create(self, name, password):
        if name.lower() in self.accounts:
            return False
        self.accounts[name.lower()] = {"name": name, "hash": self.hasher.hash(password)}
        tmp = self.path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(self.accounts, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return True

    def check(self, name, password):
        """The character's name as created, if the password is right."""
        account = self.accounts.get(name.lower())
        if account is None:
            # As slow as a real check, so a wrong name and a wrong password look the same.
            self.hasher.hash(password)
            return None
        try:
            self.hasher.verify(account["hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        return account["name"]


class Session:
    def __init__(self, name=None, room=START):
        self.name = name
        self.room = room

    def blob(self):
        """What the proxy keeps for us: enough to carry the session into the next core."""
        if self.name is None:
            return b""
        return json.dumps({"name": self.name, "room": self.room}).encode()


class Proxy:
    """One proxy's connection: its bytes in and out, and its sessions' events to deliver."""

    def __init__(self, sock):
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.events = []  # (session, kind, value) for the next deliver
        self.proxy_id = None


class Core:
    def __init__(self, listener, data, witness):
        self.listener = listener
        self.accounts = Accounts(data)
        self.witness = witness
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.proxies = {}  # socket -> Proxy
        self.sessions = {}  # (proxy id, session) -> Session
        self.stopping = False
        self.players_sent = None

    # ---- the process ----

    def run(self):
        print("READY", flush=True)
        last_beat = 0.0
        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.05):
                if key.fileobj is self.listener:
                    self.accept()
                else:
                    self.readable(key.fileobj)
            now = time.monotonic()
            if now - last_beat >= 0.05:
                self.beat()
                last_beat = now
        self.drain()

    def beat(self):
        """Shows the supervisor this core's loop is turning."""
        if self.witness is not None:
            count = struct.unpack_from("<Q", self.witness, WITNESS_PROGRESS_AT)[0]
            struct.pack_into("<Q", self.witness, WITNESS_PROGRESS_AT, count + 1)

    def drain(self):
        """A planned stop: nothing more is taken; what was answered is written; then close.

        Batches not handled yet are simply not answered: their lines were never acknowledged,
        so the proxy offers them to the next core.
        """
        self.selector.unregister(self.listener)
        self.listener.close()
        for proxy in list(self.proxies.values()):
            proxy.sock.setblocking(True)
            try:
                proxy.sock.sendall(proxy.outbox)
                proxy.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            proxy.sock.close()

    def accept(self):
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.proxies[sock] = Proxy(sock)
        self.selector.register(sock, selectors.EVENT_READ)

    def readable(self, sock):
        proxy = self.proxies[sock]
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(proxy)
            return
        proxy.inbox += data
        try:
            while True:
                n = message_len(proxy.inbox)
                if n is None:
                    break
                raw = bytes(proxy.inbox[:n])
                del proxy.inbox[:n]
                with link.ProxyMessage.from_bytes(
                    raw, traversal_limit_in_words=MAX_MESSAGE_BYTES // 8
                ) as message:
                    self.handle(proxy, message)
        except (ValueError, capnp.KjException) as error:
            print(f"closing a proxy link that sent a bad message: {error}", file=sys.stderr)
            self.drop(proxy)
            return
        self.flush_all()

    def drop(self, proxy):
        """The proxy went away: its sessions wait in the proxy, not here."""
        self.selector.unregister(proxy.sock)
        proxy.sock.close()
        del self.proxies[proxy.sock]
        for key in [k for k in self.sessions if k[0] == proxy.proxy_id]:
            del self.sessions[key]

    # ---- the link ----

    def handle(self, proxy, message):
        kind = message.which()
        if kind == "attach":
            self.attach(proxy, message.attach)
        elif kind == "submit":
            if proxy.proxy_id is None:
                self.answer(proxy, "declined", "attach first")
                return
            for event in message.submit:
                self.event(proxy, event)
            self.answer(proxy, "accepted", None)
        elif kind == "detach":
            # A proxy handing over to a successor on another host: nothing is parked here; the
            # successor attaches with snapshots and the sessions are restored from them.
            self.answer(proxy, "detached", None)

    def attach(self, proxy, attach):
        version = attach.hello.protocolVersion
        if version != link.protocolVersion:
            self.answer(
                proxy, "refused", f"protocol {version}; this core speaks {link.protocolVersion}"
            )
            return
        proxy.proxy_id = attach.hello.proxyId
        for snapshot in attach.sessions:
            session = Session()
            blob = bytes(snapshot.state)
            if blob:
                try:
                    kept = json.loads(blob)
                    room = kept.get("room", START)
                    session = Session(kept["name"], room if room in ROOMS else START)
                except (ValueError, KeyError, TypeError):
                    pass  # unreadable: the player is logged out, not crashed
            self.sessions[(proxy.proxy_id, snapshot.session)] = session
        message = link.CoreMessage.new_message()
        welcome = message.init("welcome")
        welcome.protocolVersion = link.protocolVersion
        welcome.coreName = f"python core pid {os.getpid()}"
        welcome.resumed = False
        proxy.outbox += message.to_bytes()
        self.players_sent = None

    def answer(self, proxy, kind, text):
        message = link.CoreMessage.new_message()
        if text is None:
            setattr(message, kind, None)
        else:
            setattr(message, kind, text)
        proxy.outbox += message.to_bytes()

    def event(self, proxy, event):
        key = (proxy.proxy_id, event.session)
        kind = event.which()
        if kind == "opened":
            self.sessions[key] = Session()
            self.send(key, "output", "Welcome to the {bold}Python Garden{/}!\n" + HELP)
            self.send(key, "prompt", PROMPT)
        elif kind == "line":
            session = self.sessions.setdefault(key, Session())
            self.line(key, session, event.line.text)
            self.send(key, "prompt", PROMPT)
            self.send(key, "ack", event.line.seq)
        elif kind == "closed":
            session = self.sessions.pop(key, None)
            if session is not None and session.name is not None:
                self.tell_room(session.room, None, f"{escape(session.name)} has left the game.")

    def send(self, key, kind, value):
        proxy = next((p for p in self.proxies.values() if p.proxy_id == key[0]), None)
        if proxy is not None:
            proxy.events.append((key[1], kind, value))

    def flush_all(self):
        """Writes each proxy's answers and its deliver batch, and the MSSP facts if changed."""
        players = sum(1 for s in self.sessions.values() if s.name is not None)
        for proxy in self.proxies.values():
            if proxy.proxy_id is not None and players != self.players_sent:
                message = link.CoreMessage.new_message()
                facts = message.init("gameStatus", 2)
                facts[0].name, facts[0].value = "NAME", "Python Garden"
                facts[1].name, facts[1].value = "PLAYERS", str(players)
                proxy.outbox += message.to_bytes()
            if proxy.events:
                message = link.CoreMessage.new_message()
                batch = message.init("deliver", len(proxy.events))
                for slot, (session, kind, value) in zip(batch, proxy.events):
                    slot.session = session
                    setattr(slot, kind, value)
                proxy.outbox += message.to_bytes()
                proxy.events.clear()
            if proxy.outbox:
                try:
                    sent = proxy.sock.send(proxy.outbox)
                    del proxy.outbox[:sent]
                except BlockingIOError:
                    pass
                except OSError:
                    pass
                if proxy.outbox:
                    # A proxy slower than us: finish the write before reading more from anyone.
                    proxy.sock.setblocking(True)
                    try:
                        proxy.sock.sendall(proxy.outbox)
                        proxy.outbox.clear()
                    except OSError:
                        pass
                    proxy.sock.setblocking(False)
        self.players_sent = players

    # ---- the game ----

    def line(self, key, session, text):
        verb, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if text.startswith("'"):
            verb, rest = "say", text[1:].strip()
        verb = verb.lower()
        if verb == "":
            return
        if verb == "quit":
            self.send(key, "disconnect", "Goodbye!")
            return
        if verb == "help":
            self.send(key, "output", HELP)
            return
        if session.name is None:
            self.guest(key, session, verb, rest)
            return
        if verb == "say":
            if not rest:
                self.send(key, "output", "Say what?")
                return
            self.send(key, "output", f'{{bright-yellow}}You say, "{escape(rest)}"{{/}}')
            heard = f'{{bright-yellow}}{escape(session.name)} says, "{escape(rest)}"{{/}}'
            self.tell_room(session.room, key, heard)
        elif verb in ("look", "l"):
            self.look(key, session)
        elif verb == "who":
            names = sorted(s.name for s in self.sessions.values() if s.name is not None)
            self.send(key, "output", "Players online: " + escape(", ".join(names)))
        elif verb in ("north", "n", "south", "s"):
            direction = {"n": "north", "s": "south"}.get(verb, verb)
            to = ROOMS[session.room][2].get(direction)
            if to is None:
                self.send(key, "output", "You can't go that way.")
                return
            self.tell_room(session.room, key, f"{escape(session.name)} leaves {direction}.")
            session.room = to
            self.send(key, "state", session.blob())
            self.tell_room(session.room, key, f"{escape(session.name)} arrives.")
            self.look(key, session)
        else:
            self.send(key, "output", 'Huh? Type "help" for commands.')

    def guest(self, key, session, verb, rest):
        name, _, password = rest.partition(" ")
        if verb not in ("create", "connect") or not name or not password:
            self.send(key, "output", HELP)
            return
        if not name.isalpha() or not 3 <= len(name) <= 20:
            self.send(key, "output", "Names are 3 to 20 letters.")
            return
        name = name.capitalize()
        if verb == "create":
            if not self.accounts.create(name, password):
                self.send(key, "output", f"The name {name} is taken.")
                return
        else:
            name = self.accounts.check(name, password)
            if name is None:
                self.send(key, "output", "Wrong name or password.")
                return
        session.name, session.room = name, START
        # Kept by the proxy before anything the player sees: a core restarted right after
        # this still finds them logged in.
        self.send(key, "state", session.blob())
        self.send(key, "output", f"Welcome, {escape(name)}.")
        self.tell_room(session.room, key, f"{escape(name)} has entered the game.")
        self.look(key, session)

    def look(self, key, session):
        title, description, exits = ROOMS[session.room]
        others = sorted(
            s.name for k, s in self.sessions.items()
            if k != key and s.name is not None and s.room == session.room
        )
        text = f"{title}\n{description}\n{{green}}Exits: {', '.join(exits)}.{{/}}"
        for name in others:
            text += f"\n{{yellow}}{escape(name)} is here.{{/}}"
        self.send(key, "output", text)

    def tell_room(self, room, except_key, text):
        for key, session in self.sessions.items():
            if key != except_key and session.name is not None and session.room == room:
                self.send(key, "output", text)


def listener(path):
    if "TETHER_LINK_FD" in os.environ:
        sock = socket.socket(fileno=int(os.environ["TETHER_LINK_FD"]))
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            sock.listen(64)
        finally:
            os.umask(old)
    sock.setblocking(False)
    return sock


def witness():
    fd = os.environ.get("TETHER_WITNESS_FD")
    if fd is None:
        return None
    return mmap.mmap(int(fd), 4096)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data")
    parser.add_argument("--link", default="data/link.sock")
    args, _ignored = parser.parse_known_args()
    try:
        os.makedirs(args.data, mode=0o700, exist_ok=True)
        core = Core(listener(args.link), args.data, witness())
    except Exception as error:  # the supervisor shows this line to whoever asked for the core
        print(f"FAILED {error}", flush=True)
        return 1

    def stop(_signum, _frame):
        core.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    core.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
