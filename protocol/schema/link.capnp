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

const protocolVersion :UInt32 = 2;
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
  client @4 :ClientInfo;  # what negotiation learned about the player's client so far
}

struct ClientInfo {
  # What the proxy learned from telnet negotiation (TTYPE/MTTS, NAWS, CHARSET, NEW-ENVIRON,
  # GMCP). Unknown text fields are empty; unknown numbers are 0.
  clientName @0 :Text;
  clientVersion @1 :Text;
  terminalType @2 :Text;
  mtts @3 :UInt32;        # the MTTS bit field (1 ANSI, 4 UTF-8, 8 256 colours, 64 screen reader, 256 truecolor, ...)
  width @4 :UInt16;       # NAWS
  height @5 :UInt16;
  charset @6 :Text;       # "UTF-8" or "ISO-8859-1"
  screenReader @7 :Bool;
  gmcp @8 :Bool;          # the client speaks GMCP
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
    client @4 :ClientInfo;    # negotiation learned something new about the client
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

  gameStatus @1 (mssp :List(MsspVariable));
  # Live facts about the game for MSSP (NAME, PLAYERS, ...), sent at attach and whenever they
  # change. The proxy answers MSSP requests from the latest one and adds UPTIME itself (the
  # game, as players see it, has been up since the proxy started).
}

struct MsspVariable {
  name @0 :Text;
  value @1 :Text;
}

struct CoreEvent {
  session @0 :UInt64;
  union {
    output @1 :Text;          # markup for the player (see MARKUP.md); lines separated by "\n"
    ack @2 :UInt64;           # every line up to this seq is handled and its output sent
    state @3 :Data;           # keep this blob for the session and hand it back at attach
    disconnect @4 :Text;      # close the connection after showing this reason
    prompt @5 :Text;          # markup shown without a line end; the proxy ends it with EOR or GA
    hideInput @6 :Bool;       # true: stop the client echoing (password entry); false: echo again
    gmcp @7 :GmcpMessage;     # sent only if the client supports the package
    display @8 :DisplayPrefs; # the player's display settings; the proxy keeps them
  }
}

struct GmcpMessage {
  package @0 :Text;           # e.g. "Room.Info"; case-sensitive
  json @1 :Text;
}

struct DisplayPrefs {
  wrap @0 :Bool;              # word-wrap output to the client's width (NAWS)
  color @1 :ColorChoice;
}

enum ColorChoice {
  auto @0;                    # what the client announced
  none @1;
  ansi16 @2;
  ansi256 @3;
  trueColor @4;
}
