#!/usr/bin/env python3
"""Draws the capacity scenario's curves as PNG files, with matplotlib.

    python3 scripts/bench/plot.py target/bench/capacity.json OUT_DIR   # run.py does this

Three figures, each against the number of players:
- PREFIX-latency.png     the round trip's p50 and p99 (the median run; with several runs, a
                         bar from the fastest to the slowest run), and issue 19's 100 ms line;
- PREFIX-memory.png      the proxies' and the core's resident memory, idle and playing;
- PREFIX-throughput.png  commands per second handled against offered.

The rest of the bench needs nothing outside Python's standard library; matplotlib is
installed (pinned) into a virtualenv of its own, target/bench/plot-venv, on first use, and
this file runs itself there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MATPLOTLIB = "matplotlib==3.9.2"
HERE = Path(__file__).resolve()
VENV = HERE.parents[2] / "target" / "bench" / "plot-venv"


def draw(results_file: Path, out_dir: Path) -> list[Path]:
    """Draws the figures of `results_file` (as run.py writes it) into `out_dir`; their
    paths."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    installed = subprocess.run(
        [str(python), "-c", "import matplotlib; print(matplotlib.__version__)"],
        capture_output=True, text=True,
    )
    if installed.stdout.strip() != MATPLOTLIB.split("==")[1]:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             MATPLOTLIB],
            check=True,
        )
    drawn = subprocess.run(
        [str(python), str(HERE), str(results_file), str(out_dir)],
        check=True, capture_output=True, text=True,
    )
    return [Path(line) for line in drawn.stdout.splitlines() if line]


def _figures(results_file: Path, out_dir: Path) -> None:
    """Inside the virtualenv: prints each file it wrote."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    saved = json.loads(results_file.read_text())
    title, steps = saved["title"], sorted(saved["steps"], key=lambda step: step["sessions"])
    prefix = saved["prefix"]
    players = [step["sessions"] for step in steps]
    out_dir.mkdir(parents=True, exist_ok=True)

    def finish(figure, axes, name: str, ylabel: str) -> None:
        axes.set_xlabel("players (each typing one command every 5 s, rooms of 20)")
        axes.set_ylabel(ylabel)
        axes.set_xticks(players)
        axes.set_xticklabels([f"{n // 1000}k" if n >= 1000 else str(n) for n in players])
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
        path = out_dir / f"{prefix}-{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        print(path)

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for key, colour in (("p50", "tab:blue"), ("p99", "tab:red")):
        axes.plot(players, [step[key] for step in steps], "o-", color=colour,
                  label=f"{key} (median run)")
        for step in steps:
            runs = [run[key] for run in step.get("runs", []) if run.get(key) is not None]
            if len(runs) > 1:
                axes.vlines(step["sessions"], min(runs), max(runs), color=colour, alpha=0.5,
                            linewidth=3)
    axes.axhline(100, color="grey", linestyle="--", label="p99 target, 100 ms")
    axes.set_yscale("log")
    finish(figure, axes, "latency", "round trip, ms (log scale)")

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for role, colour in (("proxy", "tab:purple"), ("core", "tab:green")):
        for state, style in (("active", "o-"), ("idle", "s--")):
            known = [(step["sessions"], step["rss"][state][role] / 1024) for step in steps
                     if state in step["rss"]]
            if known:
                axes.plot(*zip(*known), style, color=colour,
                          label=f"{'proxies' if role == 'proxy' else role}, {state}")
    finish(figure, axes, "memory", "resident memory, MiB")

    figure, axes = plt.subplots(figsize=(7, 4.2))
    offered = [step["offered_per_s"] for step in steps]
    axes.plot(players, offered, "--", color="grey", label="offered")
    axes.plot(players, [step["per_s"] for step in steps], "o-", color="tab:blue",
              label="handled (answered)")
    finish(figure, axes, "throughput", "commands per second")


if __name__ == "__main__":
    _figures(Path(sys.argv[1]), Path(sys.argv[2]))
