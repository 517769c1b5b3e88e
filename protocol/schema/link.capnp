# The tether link: how a proxy (which owns player connections) and a game core (which owns the
# world) talk to each other.
#
# The core listens on a Unix socket; each proxy connects, and from then on the two send each
# other a stream of Cap'n Proto messages in the standard serialization (segment table, then
# segments), one after another: `ProxyMessage`s from the proxy, `CoreMessage`s from the core.
# A core in another language needs its Cap'n Proto library's `readMessage`/`writeMessage`
# on a socket, and this file.
#
# 1. The proxy opens with `attach`: who it is and a snapshot of every live session. The core
#    answers `welcome`, or `refused` and closes.
# 2. The proxy `submit`s what players do, in batches, with one batch in flight: the next one
#    waits for the core's `accepted`, and what piles up meanwhile rides in it. A core that
#    cannot keep up with its output answers later, so input waits in the proxy's bounded
#    per-session queues instead of growing the core.
# 3. The core `deliver`s what players should see, in batches, whenever it has output. The
#    socket's own buffer is the flow control in that direction.
#
# Nothing a player types may be lost across a core restart, so input is acknowledged: each line
# carries a per-session sequence number and the proxy keeps it until the core acknowledges it in
# a `deliver` batch. Acknowledgements travel in the same batch as the output the line produced,
# so a line is either fully answered or will be submitted again to the next core.
#
# (Up to protocol version 2 this was a capnp-rpc interface with a call and a return per
# batch each way. The call machinery was more than half of the instructions a command cost
# each process, and capnp-rpc's `!Send` client pinned the proxy's link to a thread of its
# own, so every command crossed threads twice inside the proxy; see BENCHMARKS.md.)

@0xb8d3c0e6a1f25c47;

const protocolVersion :UInt32 = 3;
# Bumped whenever the meaning of this file changes. A proxy and a core that disagree refuse
# each other at `attach` with a message naming both versions.

struct ProxyMessage {
  union {
    attach @0 :Attach;
    # The first message on a connection, and only there.

    submit @1 :List(ProxyEvent);
    # What players did, in order. Sent only when no earlier batch waits for `accepted`.

    detach @2 :Void;
    # This proxy hands its sessions to a successor that will attach with the same proxy id:
    # answer whatever is in flight, then `detached`, and keep what is delivered after that for
    # the successor instead of dropping it. Sent by a proxy whose link cannot be passed to
    # another process as it is (TLS over TCP), after its last `submit`. A core that does not
    # know it closes the connection, and the successor attaches as after a lost link.
  }
}

struct CoreMessage {
  union {
    welcome @0 :Welcome;
    # The attach is accepted: submit away.

    refused @1 :Text;
    # The attach is refused for good (versions differ): the reason, for the operator's log.
    # The core closes the connection; trying again at once will not help.

    accepted @2 :Void;
    # The batch in flight was taken: handled, or held until every proxy of the previous core
    # is back. Handling is confirmed per line by `CoreEvent.ack`.

    declined @3 :Text;
    # The batch in flight (or the attach) was not taken and will not be: this core is stopping,
    # or a newer attach by the same proxy replaced this connection. The core delivers what it
    # has finished and closes; the proxy submits the unacknowledged lines, and announces the
    # sessions whose `opened` was declined, to the next core.

    deliver @4 :List(CoreEvent);
    # What the core wants done, in order.

    gameStatus @5 :List(MsspVariable);
    # Live facts about the game for MSSP (NAME, PLAYERS, ...), sent after `welcome` and
    # whenever they change. The proxy answers MSSP requests from the latest one and adds UPTIME
    # itself (the game, as players see it, has been up since the proxy started).

    detached @6 :Void;
    # The answer to `detach`, and the last message on this connection: everything before it
    # is all this connection carries. What the core delivers from now on waits for the next
    # attach by the same proxy id (for a while), which takes the sessions as they are in the
    # core instead of from its snapshots.
  }
}

struct Attach {
  hello @0 :Hello;
  sessions @1 :List(SessionSnapshot);
  # Every live session: the core re-attaches them all. A second attach with the same
  # `proxyId` replaces the first connection.
}

struct Hello {
  protocolVersion @0 :UInt32;
  proxyId @1 :UInt64;     # random per proxy process: tells a reconnect from a new proxy
  proxyName @2 :Text;     # for logs
}

struct Welcome {
  protocolVersion @0 :UInt32;
  coreName @1 :Text;      # for logs, e.g. "tether-core 0.1.0 pid 1234"
  resumed @2 :Bool;
  # This proxy `detach`ed from this core and the core kept its sessions: they carry on as
  # they are in the core (the attach's snapshots are not used), lines already submitted are
  # not submitted again, and what was delivered since the detach follows. False for every
  # other attach.
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

struct ProxyEvent {
  session @0 :UInt64;
  union {
    opened @1 :SessionInfo;   # a player connected
    line @2 :InputLine;       # a player sent a line
    closed @3 :Text;          # the connection ended; the text says why
    client @4 :ClientInfo;    # negotiation learned something new about the client
    order @5 :Order;          # an operator's order (session is 0); answered by orderDone
  }
}

struct Order {
  # What an operator asks of the game from outside it (the dashboard, `tether admin`), through
  # a proxy's admin API. A core that does not know `order`, or its action, skips it: the
  # proxy stops waiting for the answer after a while and says the core may be older.
  id @0 :UInt64;          # the proxy's, echoed in orderDone
  actor @1 :Text;         # who asked, for the audit trail ("host:ops", "dashboard")
  union {
    kick @2 :KickOrder;
    ban @3 :BanOrder;
    unban @4 :Text;       # a name or an address
    wall @5 :Text;        # said to everyone
    shutdown @6 :ShutdownOrder;
    cancelShutdown @7 :Void;
    reload @8 :Void;      # asked of the supervisor, as @reload does
    upgradeProxy @9 :Void;
  }
}

struct KickOrder {
  name @0 :Text;
  reason @1 :Text;
}

struct BanOrder {
  target @0 :Text;        # a character's name or an IP address
  seconds @1 :UInt64;     # 0: until lifted
  reason @2 :Text;
}

struct ShutdownOrder {
  seconds @0 :UInt32;     # 0: now
  reason @1 :Text;
}

struct OrderDone {
  id @0 :UInt64;
  ok @1 :Bool;
  said @2 :Text;          # plain text, for the operator
}

struct InputLine {
  seq @0 :UInt64;         # per session, starting at 1, without gaps
  text @1 :Text;          # one line, decoded to UTF-8, control characters removed
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
    playing @9 :Playing;      # the session plays this character (for the operator's view)
    loginFailed @10 :Void;    # a wrong password was given (for the operator's counters)
    orderDone @11 :OrderDone; # the answer to an operator's order (session is 0)
  }
}

struct Playing {
  # Sent when a session logs in (`fresh`), and again for every logged-in session to each
  # proxy that attaches (not `fresh`), so a proxy that started after the login knows too.
  # Only for what an operator sees (metrics, the dashboard): nothing a player gets depends on
  # it, and a core that never sends it loses nothing but that view.
  character @0 :Text;
  fresh @1 :Bool;
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
