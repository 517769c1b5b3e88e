# The tether link: how a proxy (which owns player connections) and a game core (which owns the
# world) talk to each other.
#
# The core listens; each proxy connects and calls `Core.attach`, handing over a callback
# (`Proxy`) and a snapshot of every live session. The core answers with a `Link` on which the
# proxy submits what players do. Everything the core wants a player to see comes back through
# `Proxy.deliver`.
#
# Nothing a player types may be lost across a core restart, so input is acknowledged: each line
# carries a per-session sequence number and the proxy keeps it until the core acknowledges it in
# a `deliver` batch. Acknowledgements travel in the same batch as the output the line produced,
# so a line is either fully answered or will be submitted again to the next core.
#
# Both directions are batched (one call carries many events) and each side has at most one call
# in flight per direction: what piles up while a call travels goes into the next one.

@0xb8d3c0e6a1f25c47;

const protocolVersion :UInt32 = 1;
# Bumped whenever the meaning of this file changes. A proxy and a core that disagree refuse
# each other at `attach` with a message naming both versions.

interface Core {
  # The bootstrap capability served on the core's link socket.

  attach @0 (hello :Hello, proxy :Proxy, sessions :List(SessionSnapshot))
         -> (welcome :Welcome, link :Link);
  # Attach a proxy and re-attach every session it holds. A proxy calls this each time it
  # (re)connects. Fails with a clear reason if the versions do not match. A second attach
  # with the same `proxyId` replaces the first.
}

struct Hello {
  protocolVersion @0 :UInt32;
  proxyId @1 :UInt64;     # random per proxy process: tells a reconnect from a new proxy
  proxyName @2 :Text;     # for logs
}

struct Welcome {
  protocolVersion @0 :UInt32;
  coreName @1 :Text;      # for logs, e.g. "tether-core 0.1.0 pid 1234"
}

struct SessionInfo {
  transport @0 :Text;     # "telnet"
  remoteAddr @1 :Text;
}

struct SessionSnapshot {
  # One live session as the proxy knows it, handed to a (new) core at attach.
  session @0 :UInt64;
  info @1 :SessionInfo;
  state @2 :Data;         # the last blob the core asked to keep (`CoreEvent.state`); empty if none
  ackedSeq @3 :UInt64;    # the last line a core acknowledged; lines after it will be submitted again
}

interface Link {
  submit @0 (events :List(ProxyEvent));
  # What players did, in order. Returning means the core has received the batch, not that it
  # handled it: handling is confirmed per line by `CoreEvent.ack`. A core that is shutting down
  # fails the call (disconnected) without handling anything; the proxy then submits the
  # unacknowledged lines, and announces sessions whose `opened` it could not deliver, to the
  # next core.
}

struct ProxyEvent {
  session @0 :UInt64;
  union {
    opened @1 :SessionInfo;   # a player connected
    line @2 :InputLine;       # a player sent a line
    closed @3 :Text;          # the connection ended; the text says why
  }
}

struct InputLine {
  seq @0 :UInt64;         # per session, starting at 1, without gaps
  text @1 :Text;          # one line, decoded to UTF-8, control characters removed
}

interface Proxy {
  # The callback a proxy passes in `attach`.

  deliver @0 (events :List(CoreEvent));
  # What the core wants done, in order. Returning means the proxy has routed every event.
}

struct CoreEvent {
  session @0 :UInt64;
  union {
    output @1 :Text;          # text for the player; lines separated by "\n"
    ack @2 :UInt64;           # every line up to this seq is handled and its output sent
    state @3 :Data;           # keep this blob for the session and hand it back at attach
    disconnect @4 :Text;      # close the connection after showing this reason
  }
}
