#!/usr/bin/env python3
"""Project tasks that work on a fresh clone with nothing but python3 and pip.

    python3 tasks.py demo         the main job: a local 3-node raftkv cluster, narrated
    python3 tasks.py test         everything CI checks: ruff, mypy --strict, pytest, simulator
    python3 tasks.py conformance  the etcd conformance report alone

Each task first makes sure ``.venv`` exists and holds the project with its dev
dependencies; it reinstalls only when ``pyproject.toml`` changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".raftcore-install-stamp"
CONFORMANCE = ROOT.parent / "shared" / "conformance" / "etcd-raft"


def _run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def bootstrap() -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    _run(PY, "-m", "pip", "install", "-q", "--upgrade", "pip")
    _run(PY, "-m", "pip", "install", "-q", "-e", ".[dev]")
    STAMP.write_text(want)


def conformance_args() -> list[str]:
    if CONFORMANCE.is_dir():
        return [str(CONFORMANCE)]
    print(f"conformance scripts not found at {CONFORMANCE}; skipping the report")
    return []


def demo() -> None:
    _run(PY, "-m", "raftkv", "demo")


def conformance() -> None:
    args = conformance_args()
    if args:
        _run(PY, "-m", "raftcore.rafttest.conformance", "-q", *args)


def test() -> None:
    _run(BIN / "ruff", "check", "src", "tests", "bench", "tasks.py")
    _run(BIN / "ruff", "format", "--check", "src", "tests", "bench", "tasks.py")
    _run(BIN / "mypy")
    _run(PY, "-m", "pytest", "-q", *sys.argv[2:])
    # The simulator's safety soak: deterministic seeds, every fault kind (~30 s).
    _run(PY, "-m", "raftcore.sim", "--seeds", "200", "--steps", "5000", "--progress", "50")


TASKS = {"demo": demo, "test": test, "conformance": conformance}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        sys.exit(2)
    bootstrap()
    try:
        TASKS[sys.argv[1]]()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode or 1)
