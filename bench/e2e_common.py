"""Helpers shared by the end-to-end benchmarks (see bench/e2e.md).

Standard library only: :mod:`bench.pysyncobj_peer` imports this module from the
PySyncObj venv, where raftcore is not installed.

What is here: free loopback ports, latency summaries, the child-process harness every
benchmark uses (JSON lines on stdout, stdin closed to say "stop", killed for sure at
the end), the per-process election/lag record the children keep, a description of the
machine, and plain-text tables.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = [
    "HOST",
    "Child",
    "ChildGroup",
    "History",
    "Latency",
    "Table",
    "arm_deadline",
    "count_window",
    "die_with_parent_prefix",
    "emit",
    "fmt_ms",
    "fmt_rate",
    "fmt_ratio",
    "free_ports",
    "freeze_gc",
    "fsync_latency_ms",
    "machine_summary",
    "watch_stdin",
]

#: Loopback only: every benchmark binds and dials 127.0.0.1 and nothing else.
HOST = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- figures


@dataclass(slots=True)
class Latency:
    """Summary of latency samples, in seconds."""

    count: int = 0
    p50: float = math.nan
    p99: float = math.nan
    max: float = math.nan
    mean: float = math.nan

    @classmethod
    def of(cls, samples: list[float]) -> Latency:
        """Summarise ``samples`` (sorted in place)."""
        n = len(samples)
        if n == 0:
            return cls()
        samples.sort()
        return cls(
            count=n,
            p50=samples[_rank(n, 0.50)],
            p99=samples[_rank(n, 0.99)],
            max=samples[-1],
            mean=sum(samples) / n,
        )

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "p50": self.p50, "p99": self.p99, "max": self.max}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Latency:
        def num(k: str) -> float:
            v = d.get(k)
            return math.nan if v is None else float(v)

        return cls(int(d.get("count", 0)), num("p50"), num("p99"), num("max"))


def _rank(n: int, q: float) -> int:
    # Nearest-rank percentile: the smallest sample with at least q of them at or below.
    return min(n - 1, max(0, math.ceil(q * n) - 1))


def fmt_ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    ms = seconds * 1000.0
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def fmt_rate(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f}"


def fmt_ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or b <= 0:
        return "-"
    return f"{a / b:.2f}x"


class Table:
    """A plain-text table with right-aligned numeric columns."""

    def __init__(self, headers: Sequence[str], left: int = 1) -> None:
        self.headers = list(headers)
        self.left = left  # how many leading columns are left-aligned
        self.rows: list[list[str]] = []

    def add(self, row: Iterable[object]) -> None:
        self.rows.append([str(c) for c in row])

    def render(self) -> str:
        widths = [len(h) for h in self.headers]
        for r in self.rows:
            for i, c in enumerate(r):
                widths[i] = max(widths[i], len(c))

        def line(cells: Sequence[str]) -> str:
            out = []
            for i, c in enumerate(cells):
                out.append(c.ljust(widths[i]) if i < self.left else c.rjust(widths[i]))
            return "| " + " | ".join(out) + " |"

        sep = "|" + "|".join(
            ("-" * (w + 2)) if i < self.left else ("-" * (w + 1) + ":")
            for i, w in enumerate(widths)
        )
        return "\n".join([line(self.headers), sep + "|", *(line(r) for r in self.rows)])


# --------------------------------------------------------------------------- machine


def fsync_latency_ms(directory: str, rounds: int = 50) -> float:
    """Median latency of a 128-byte pwrite + fdatasync in ``directory``."""
    fd, path = tempfile.mkstemp(dir=directory)
    try:
        os.pwrite(fd, bytes(1 << 16), 0)
        os.fsync(fd)
        lat = []
        for i in range(rounds):
            t0 = time.perf_counter()
            os.pwrite(fd, b"x" * 128, (i * 128) % (1 << 16))
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
        lat.sort()
        return lat[len(lat) // 2] * 1000.0
    finally:
        os.close(fd)
        os.unlink(path)


def machine_summary(data_dir: str, fsync_ms: float | None = None) -> str:
    """One line: CPU model and count, memory, kernel, Python, fsync latency (measured
    here unless ``fsync_ms`` gives it)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for ln in f:
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    if fsync_ms is None:
        fsync_ms = fsync_latency_ms(data_dir)
    mem = ""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        kb = int(f.readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return (
        f"{cpu}, {os.cpu_count()} CPUs{mem}, Linux {platform.release()}, "
        f"Python {platform.python_version()}, fdatasync {fsync_ms:.2f} ms "
        f"(median, {data_dir})"
    )


# --------------------------------------------------------------------------- gc


def freeze_gc(period: float = 1.0) -> threading.Thread:
    """``gc.collect(); gc.freeze()`` now, then ``gc.freeze()`` every ``period`` seconds
    from a daemon thread for the rest of the process's life (``--gc freeze``).

    The raft log a benchmark member keeps in memory is hundreds of thousands of
    long-lived, acyclic objects; CPython's full collections rescan all of them and stop
    the process for tens of ms each time. Freezing moves the survivors into the
    permanent generation, out of the collector's reach (reference counting still frees
    them): the Instagram-style tuning of Python services. ``gc.freeze()`` is O(1) and
    safe from any thread.
    """
    gc.collect()
    gc.freeze()

    def run() -> None:
        while True:
            time.sleep(period)
            gc.freeze()

    t = threading.Thread(target=run, name="gc-freeze", daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------- children


def emit(obj: dict[str, Any]) -> None:
    """Write one JSON line to stdout (the child → benchmark channel)."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def watch_stdin(on_eof: Any) -> threading.Thread:
    """Call ``on_eof()`` (from a daemon thread) once stdin reaches end of file: the
    benchmark closes a child's stdin to stop it, and a dead benchmark closes it too."""

    def run() -> None:
        with contextlib.suppress(OSError, ValueError):
            fd = sys.stdin.fileno()
            while os.read(fd, 4096):
                pass
        on_eof()

    t = threading.Thread(target=run, name="stdin-watch", daemon=True)
    t.start()
    return t


def arm_deadline(seconds: float) -> None:
    """Hard stop: whatever happens, this process exits after ``seconds``."""

    def fire() -> None:
        sys.stderr.write(f"child {os.getpid()}: hard deadline of {seconds:.0f}s, exiting\n")
        sys.stderr.flush()
        os._exit(3)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def _pdeathsig_prefix() -> list[str]:
    # util-linux's setpriv makes the kernel SIGKILL the child when this process dies,
    # even by SIGKILL: no benchmark child can outlive the benchmark.
    exe = shutil.which("setpriv")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [exe, "--pdeathsig", "KILL"] if "--pdeathsig" in out else []


_PREFIX: list[str] | None = None


def die_with_parent_prefix() -> list[str]:
    global _PREFIX
    if _PREFIX is None:
        _PREFIX = _pdeathsig_prefix()
    return _PREFIX


class Child:
    """A child process speaking JSON lines on stdout; its stderr goes to ``log_path``.

    Non-JSON stdout lines are copied to the log too. Lines arrive on ``inbox`` as
    ``(name, dict)``; ``(name, None)`` marks the end of its output.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: str,
        inbox: queue.Queue[tuple[str, dict[str, Any] | None]],
        env: dict[str, str] | None = None,
        stdin: bool = True,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[str] = open(log_path, "a", buffering=1)  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [*die_with_parent_prefix(), *argv],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            bufsize=1,
            start_new_session=True,  # a Ctrl-C reaches the benchmark only; it stops us
        )
        self._inbox = inbox
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        with contextlib.suppress(OSError, ValueError):
            for ln in out:
                s = ln.strip()
                if s.startswith("{"):
                    try:
                        self._inbox.put((self.name, json.loads(s)))
                        continue
                    except ValueError:
                        pass
                with contextlib.suppress(OSError, ValueError):
                    self._log.write(f"[stdout] {ln}")
        self._inbox.put((self.name, None))

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def close(self, grace: float) -> None:
        """Close stdin, give the child ``grace`` seconds to exit, then SIGTERM, SIGKILL."""
        self.close_stdin()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(2)
        with contextlib.suppress(OSError):
            self._log.close()

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""


@dataclass
class ChildGroup:
    """Children started together; leaving the ``with`` block kills any still running."""

    inbox: queue.Queue[tuple[str, dict[str, Any] | None]] = field(default_factory=queue.Queue)
    children: dict[str, Child] = field(default_factory=dict)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_path: str,
        env: dict[str, str] | None = None,
        stdin: bool = True,
    ) -> Child:
        c = Child(name, argv, log_path, self.inbox, env, stdin)
        self.children[name] = c
        return c

    def events(self, deadline: float) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """Lines from any child until ``deadline`` (time.monotonic)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                yield self.inbox.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue

    def stop_all(self, grace: float = 10.0) -> None:
        for c in self.children.values():
            c.close_stdin()
        end = time.monotonic() + grace
        for c in self.children.values():
            c.close(max(0.1, end - time.monotonic()))

    def __enter__(self) -> ChildGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        for c in self.children.values():
            c.kill()
            with contextlib.suppress(OSError):
                c._log.close()


# --------------------------------------------------------------------------- history


@dataclass(slots=True)
class History:
    """What one cluster member saw, in ``time.monotonic`` seconds (one clock for all
    processes of the machine): terms, leaders and late ticks."""

    terms: list[tuple[float, int]] = field(default_factory=list)
    leads: list[tuple[float, int]] = field(default_factory=list)
    #: (time, seconds late) for every tick that fired more than LAG_NOTE late.
    lags: list[tuple[float, float]] = field(default_factory=list)

    LAG_NOTE = 0.05

    def term(self, t: float, term: int) -> None:
        if not self.terms or self.terms[-1][1] != term:
            self.terms.append((t, term))

    def lead(self, t: float, lead: int) -> None:
        if not self.leads or self.leads[-1][1] != lead:
            self.leads.append((t, lead))

    def lag(self, t: float, late: float) -> None:
        if late > self.LAG_NOTE:
            self.lags.append((t, late))

    def as_dict(self) -> dict[str, Any]:
        return {"terms": self.terms, "leads": self.leads, "lags": self.lags}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(
            [(float(t), int(v)) for t, v in d.get("terms", [])],
            [(float(t), int(v)) for t, v in d.get("leads", [])],
            [(float(t), float(v)) for t, v in d.get("lags", [])],
        )


def count_window(histories: Sequence[History], t0: float, t1: float) -> tuple[int, int, float]:
    """Over all members, in ``[t0, t1]``: elections (new terms), leader changes (as
    the member that saw most: a leader lost or replaced), and the latest tick
    (seconds late)."""
    base_term = 0
    top_term = 0
    for h in histories:
        for t, term in h.terms:
            if t < t0:
                base_term = max(base_term, term)
            elif t <= t1:
                top_term = max(top_term, term)
    elections = max(0, top_term - base_term) if top_term else 0
    changes = 0
    for h in histories:
        prev = 0
        n = 0
        for t, lead in h.leads:
            if t > t1:
                break
            if t >= t0 and prev != 0 and lead != prev:
                n += 1  # lost or replaced the leader it had
            prev = lead
        changes = max(changes, n)
    worst = 0.0
    for h in histories:
        for t, late in h.lags:
            if t0 <= t <= t1:
                worst = max(worst, late)
    return elections, changes, worst
