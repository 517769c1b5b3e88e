#!/usr/bin/env python3
"""Flattens the JSON `telnetlib3-fingerprint --save-json` wrote into one fact per line.

Run by tests/clients.rs, which has no JSON parser of its own. Output lines are
`<kind>\t<name>[\t<value>]`, with the names telnetlib3 uses (EOR, GMCP, MSSP, MCCP2,
NEW_ENVIRON, ...). Keys missing from the file are simply not reported, so the test can tell
"absent" from "empty".
"""

import json
import sys


def fact(*fields):
    print("\t".join(str(f).replace("\t", " ").replace("\n", "\\n") for f in fields))


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        data = json.load(file)
    probe = data.get("server-probe", {})
    fingerprint = probe.get("fingerprint-data", {})
    session = probe.get("session_data", {})

    # After the probe: every option the server agreed to perform (its own offers plus the
    # ones it accepted when telnetlib3 asked), the ones it asked us to perform, and refusals.
    for key, kind in [
        ("offered-options", "offered"),
        ("requested-options", "requested"),
        ("refused-options", "refused"),
        ("looped-negotiation", "looped"),
        ("wrong-direction-offered", "wrong_direction"),
        ("directional-refusals", "directional_refusal"),
    ]:
        for name in fingerprint.get(key, []):
            fact(kind, name)

    # Before the probe: what the server sent on its own when the client connected.
    states = session.get("option_states", {})
    for name, value in sorted(states.get("server_offered", {}).items()):
        fact("server_offered", name, value)
    for name, value in sorted(states.get("server_requested", {}).items()):
        fact("server_requested", name, value)

    if "mssp" in session:
        for name, value in sorted(session["mssp"].items()):
            fact("mssp", name, value if isinstance(value, str) else json.dumps(value))
    if "encoding" in session:
        fact("encoding", session["encoding"])
    if "banner_before_return" in session:
        fact("banner", session["banner_before_return"])
    fact("done", "ok")


if __name__ == "__main__":
    main()
