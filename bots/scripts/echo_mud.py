#!/usr/bin/env python3
"""A stand-in MUD for testing tether-bots itself past one server process's open-files limit.

tether's proxy holds every player socket in one process, so on a machine where a process
may have at most ~20,000 open files, tether cannot take more sessions than that, whatever
the bots do. This server can: it forks WORKERS processes that share one listening port
(SO_REUSEPORT), each with its own file limit. It speaks just enough of a MUD for the bots:
a banner with colour and telnet negotiation, `create`/`connect` log in at once, `say`
echoes `You say, "..."`, `look`/`who`/moves answer something, and every answer ends in a
prompt with IAC GA. Nobody hears anyone else, so its cost does not grow with the number of
players: it measures the bots and the kernel, not a game.

    python3 bots/scripts/echo_mud.py PORT [WORKERS]
"""

import asyncio
import os
import resource
import signal
import socket
import sys

IAC, DONT, DO, WONT, WILL, SB, GA, SE = 255, 254, 253, 252, 251, 250, 249, 240


def strip_telnet(data: bytes) -> bytes:
    """Drops the bots' 3-byte negotiation answers (IAC WONT/DONT x)."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == IAC and i + 1 < len(data) and data[i + 1] in (DO, DONT, WILL, WONT):
            i += 3
        elif data[i] == IAC:
            i += 2
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


async def player(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Two answers in a row (a command's, then the say's) must not wait for Nagle.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(bytes([IAC, DO, 31, IAC, WILL, 1]) + b"\x1b[1;33mWelcome to Echo!\x1b[0m\r\n")
    name = None
    try:
        while True:
            raw = await reader.readline()
            if not raw:
                break
            line = strip_telnet(raw).decode("utf-8", "replace").strip()
            verb, _, rest = line.partition(" ")
            if verb in ("create", "connect"):
                name = rest.split(" ")[0]
                answer = f"Welcome, {name}."
            elif name is None:
                answer = "You are not logged in."
            elif verb == "say":
                answer = f'You say, "{rest}"'
            elif verb == "look":
                answer = "\x1b[36mA Plain Room\x1b[0m\r\nNothing to see."
            elif verb == "who":
                answer = "Players online: lots."
            elif verb in ("north", "south", "east", "west"):
                answer = f"You walk {verb}."
            else:
                answer = "Huh?"
            writer.write(answer.encode() + b"\r\n> " + bytes([IAC, GA]))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    server = await asyncio.start_server(player, sock=sock)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            asyncio.run(serve(port))
            os._exit(0)
        children.append(pid)
    print(f"echo_mud: {workers} workers on 127.0.0.1:{port}", flush=True)

    def stop(*_):
        for pid in children:
            os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
