"""Run raftkv members as local processes: the demo's and the tests' harness.

A :class:`LocalCluster` owns a base directory, hands out free 127.0.0.1 ports, starts
members as ``python -m raftkv serve ...`` child processes (each logging to its own file),
kills them (SIGKILL) or stops them (SIGTERM), and always cleans up in :meth:`close`.
Children also exit on their own if this process dies (they watch their parent), so a
crashed test or demo leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from raftkv.client import ClientError, KVClient
from raftkv.service import PARENT_ENV

__all__ = ["LocalCluster", "LocalMember", "free_ports"]


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free on 127.0.0.1 a moment ago."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(slots=True)
class LocalMember:
    id: int
    peer_port: int
    http_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    starts: int = 0

    @property
    def peer_address(self) -> str:
        return f"127.0.0.1:{self.peer_port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0


@dataclass
class LocalCluster:
    """Members as child processes under ``base_dir``; use as a context manager."""

    base_dir: Path
    tick_ms: int = 50
    election_ticks: int = 10
    snapshot_count: int = 10_000
    snapshot_catchup_entries: int | None = None
    request_timeout: float = 5.0
    cluster_id: str = "raftkv-local"
    log_level: str = "info"
    wal_segment_size: str = "1MiB"
    extra_args: Sequence[str] = ()
    python: str = sys.executable
    members: dict[int, LocalMember] = field(default_factory=dict)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ processes

    def define(self, mid: int) -> LocalMember:
        """Reserve ports and a data directory for member ``mid`` (no process yet)."""
        m = self.members.get(mid)
        if m is None:
            peer, http = free_ports(2)
            m = LocalMember(
                mid,
                peer,
                http,
                self.base_dir / f"member-{mid}",
                self.base_dir / f"member-{mid}.log",
            )
            self.members[mid] = m
        return m

    def cluster_flag(self, ids: Iterable[int]) -> str:
        return ",".join(f"{i}={self.define(i).peer_address}" for i in sorted(ids))

    def command(
        self, mid: int, *, join: bool = False, cluster: Iterable[int] | None = None
    ) -> list[str]:
        m = self.define(mid)
        ids = sorted(set(cluster) | {mid}) if cluster is not None else sorted(self.members)
        cmd = [
            self.python,
            "-m",
            "raftkv",
            "serve",
            "--id",
            str(mid),
            "--cluster",
            self.cluster_flag(ids),
            "--http",
            m.http_address,
            "--data-dir",
            str(m.data_dir),
            "--cluster-id",
            self.cluster_id,
            "--tick-ms",
            str(self.tick_ms),
            "--election-ticks",
            str(self.election_ticks),
            "--snapshot-count",
            str(self.snapshot_count),
            "--request-timeout",
            str(self.request_timeout),
            "--wal-segment-size",
            self.wal_segment_size,
            "--log-level",
            self.log_level,
        ]
        if self.snapshot_catchup_entries is not None:
            cmd += ["--snapshot-catchup-entries", str(self.snapshot_catchup_entries)]
        if join:
            cmd.append("--join")
        cmd += self.extra_args
        return cmd

    def start(
        self, mid: int, *, join: bool = False, cluster: Iterable[int] | None = None
    ) -> LocalMember:
        """Start member ``mid`` (again, if it ran before: same ports and data dir)."""
        m = self.define(mid)
        if m.running:
            raise RuntimeError(f"member {mid} is already running")
        self._close_log(m)
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env[PARENT_ENV] = str(os.getpid())
        env["PYTHONUNBUFFERED"] = "1"
        m.log_file = open(m.log_path, "ab")  # noqa: SIM115 - closed in _close_log
        m.starts += 1
        m.log_file.write(f"===== start #{m.starts} of member {mid} =====\n".encode())
        m.log_file.flush()
        m.proc = subprocess.Popen(
            self.command(mid, join=join, cluster=cluster),
            stdin=subprocess.DEVNULL,
            stdout=m.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            # Not in our process group: a Ctrl-C on the terminal reaches only us, and we
            # stop the children ourselves.
            start_new_session=True,
        )
        return m

    def kill(self, mid: int, sig: int = signal.SIGKILL, timeout: float = 10.0) -> int | None:
        """Send ``sig`` (default SIGKILL) to member ``mid`` and wait for it to exit."""
        m = self.members[mid]
        proc = m.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(timeout)
        self._close_log(m)
        return rc

    def stop(self, mid: int, timeout: float = 10.0) -> int | None:
        """Stop member ``mid`` gracefully (SIGTERM), killing it if it does not exit."""
        return self.kill(mid, signal.SIGTERM, timeout)

    def close(self) -> None:
        """Kill every child that still runs; idempotent, never raises."""
        for m in self.members.values():
            proc = m.proc
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
        for m in self.members.values():
            if m.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    m.proc.wait(10)
            self._close_log(m)

    def _close_log(self, m: LocalMember) -> None:
        if m.log_file is not None:
            m.log_file.close()
            m.log_file = None

    def log_text(self, mid: int) -> str:
        try:
            return self.members[mid].log_path.read_text(errors="replace")
        except OSError:
            return ""

    def running(self) -> list[int]:
        return sorted(i for i, m in self.members.items() if m.running)

    # -------------------------------------------------------------------- queries

    def endpoints(self, ids: Iterable[int] | None = None) -> list[str]:
        ids = self.running() if ids is None else ids
        return [self.members[i].endpoint for i in ids]

    def client(self, ids: Iterable[int] | None = None, timeout: float = 10.0) -> KVClient:
        return KVClient(self.endpoints(ids), timeout=timeout)

    async def status(self, mid: int, timeout: float = 2.0) -> dict[str, Any] | None:
        """Member ``mid``'s ``/status``, or None if it does not answer."""
        async with KVClient([self.members[mid].endpoint], timeout=timeout) as c:
            try:
                return await c.status()
            except ClientError:
                return None

    async def wait_for_leader(
        self, ids: Sequence[int], timeout: float = 15.0, exclude: int = 0
    ) -> tuple[int, int]:
        """Wait until members ``ids`` all answer and agree on a leader among them
        (other than ``exclude``), and that leader says it leads; returns (leader, term)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for mid in ids:
                m = self.members[mid]
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(
                        f"member {mid} exited with code {m.proc.returncode}; its log:\n"
                        + self.log_text(mid)[-4000:]
                    )
            sts = await asyncio.gather(*(self.status(i) for i in ids))
            last = sts
            if all(s is not None for s in sts):
                leads = {s["lead"] for s in sts if s is not None}
                if len(leads) == 1:
                    lead = leads.pop()
                    if lead in ids and lead != exclude:
                        ls = sts[list(ids).index(lead)]
                        if ls is not None and ls["raft_state"] == "StateLeader":
                            return lead, int(ls["term"])
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no agreed leader among {list(ids)} after {timeout}s; last: {last}")

    async def wait_applied(self, mid: int, index: int, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until member ``mid`` applied at least ``index``; returns its status."""
        deadline = time.monotonic() + timeout
        st: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            st = await self.status(mid)
            if st is not None and st["applied"] >= index:
                return st
            await asyncio.sleep(0.05)
        raise TimeoutError(f"member {mid} did not apply index {index} within {timeout}s: {st}")
