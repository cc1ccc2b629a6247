#!/usr/bin/env python3
"""End-to-end service benchmark: a raftkv 3-member cluster vs etcd's, same HTTP load.

Run as ``.venv/bin/python bench/bench_e2e_service.py [--quick]`` after
``bash bench/setup_bench_env.sh`` (which installs Debian's etcd-server; without an
``etcd`` binary the etcd rows are skipped with a message). bench/e2e.md explains the
figures.

Clusters, each three processes on 127.0.0.1 with free ports and temporary data dirs:

* raftkv: ``python -m raftkv serve`` members (through :class:`raftkv.localcluster.
  LocalCluster`) with the service's defaults (100 ms ticks, election after 10, fsync on
  every Ready with entries, a snapshot every 10,000 entries);
* etcd: the ``etcd`` binary (3.4 from Debian), default settings (100 ms heartbeat,
  1 s election), reached through its HTTP/JSON gRPC gateway.

The load comes from a separate process (this file with ``--load``), stdlib asyncio
only: N clients (1, 16, 256), each with one keep-alive HTTP/1.1 connection, each
sending its next request as soon as the previous one is answered. Clients are spread
round-robin over the three members (``--target leader`` sends everything to the
leader). Operations:

* PUT of a 100 B or 1 KiB value: raftkv ``PUT /kv/{key}`` (the body is the value),
  etcd ``POST /v3/kv/put`` with ``{"key": base64, "value": base64}``; answered once
  committed and applied;
* linearizable GET of a 100 B value: raftkv ``GET /kv/{key}`` (ReadIndex through the
  leader), etcd ``POST /v3/kv/range`` with ``{"key": base64}`` (linearizable is etcd's
  default).

Keys cycle through 1,000 names (``bench-0000`` ...), written once before the GETs. Each
case runs ``--warmup`` seconds unmeasured, then ``--duration`` seconds: throughput is
the responses completed in that span, latency p50/p99/max is from request written to
response read. Non-2xx answers and connection errors are counted (``errors``).

Everything is bounded: the load process and etcd members are SIGKILLed if this process
dies (``setpriv --pdeathsig``), raftkv members stop on their own when their parent is
gone, and everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import io
import json
import math
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from e2e_common import (  # noqa: E402
    HOST,
    ChildGroup,
    Latency,
    Table,
    arm_deadline,
    die_with_parent_prefix,
    emit,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    free_ports,
    machine_summary,
)

NKEYS = 1000


def key_name(i: int) -> str:
    return f"bench-{i % NKEYS:04d}"


# ============================================================================ load


class HttpConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, minimal parsing
    (status line, Content-Length or chunked body): the driver must stay cheap so that
    it measures the servers, not itself."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        w = self.waiter
        if w is None or w.done():
            return
        status = self._parse()
        if status is not None:
            w.set_result(status)

    def _parse(self) -> int | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        body = end + 4
        i = head.find(b"\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r", i + 16)
            n = int(head[i + 16 : j if j >= 0 else len(head)])
            if len(buf) < body + n:
                return None
            del buf[: body + n]
            return status
        if b"transfer-encoding: chunked" in head:
            pos = body
            while True:
                k = buf.find(b"\r\n", pos)
                if k < 0:
                    return None
                size = int(bytes(buf[pos:k]).split(b";")[0], 16)
                if size == 0:
                    tail = buf.find(b"\r\n", k + 2)
                    if tail < 0:
                        return None
                    del buf[: tail + 2]
                    return status
                pos = k + 2 + size + 2
                if len(buf) < pos:
                    return None
        del buf[:body]  # no body (e.g. 204)
        return status

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.transport.write(data)
        return await self.waiter


@dataclass(slots=True)
class LoadSpec:
    kind: str  # "raftkv" or "etcd"
    targets: list[tuple[str, int]]
    op: str  # "put" or "get"
    clients: int
    size: int
    warmup: float
    duration: float


def build_requests(kind: str, op: str, size: int, host: str, port: int) -> list[bytes]:
    """The NKEYS requests a client cycles through, prebuilt."""
    value = (b"0123456789abcdefghijklmnopqrstuvwxyz" * (size // 36 + 1))[:size]
    hosthdr = f"Host: {host}:{port}\r\n".encode()
    reqs = []
    for i in range(NKEYS):
        key = key_name(i)
        if kind == "raftkv":
            if op == "put":
                reqs.append(
                    b"PUT /kv/%s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
                    % (key.encode(), hosthdr, len(value), value)
                )
            else:
                reqs.append(b"GET /kv/%s HTTP/1.1\r\n%s\r\n" % (key.encode(), hosthdr))
        else:
            k64 = base64.b64encode(key.encode()).decode()
            if op == "put":
                body = json.dumps({"key": k64, "value": base64.b64encode(value).decode()})
                path = "/v3/kv/put"
            else:
                body = json.dumps({"key": k64})
                path = "/v3/kv/range"
            b = body.encode()
            reqs.append(
                b"POST %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d"
                b"\r\n\r\n%s" % (path.encode(), hosthdr, len(b), b)
            )
    return reqs


async def run_load(spec: LoadSpec) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    per_target = {
        t: build_requests(spec.kind, spec.op, spec.size, t[0], t[1]) for t in spec.targets
    }
    t_start = time.monotonic()
    m0 = t_start + spec.warmup
    m1 = m0 + spec.duration
    lat: list[float] = []
    counts = {"ok": 0, "errors": 0, "in_window": 0}
    statuses: dict[int, int] = {}
    perf = time.monotonic

    async def client(i: int) -> None:
        target = spec.targets[i % len(spec.targets)]
        reqs = per_target[target]
        conn: HttpConn | None = None
        k = i
        while True:
            now = perf()
            if now >= m1:
                break
            try:
                if conn is None or conn.closed:
                    _, proto = await loop.create_connection(HttpConn, *target)
                    conn = proto
                t0 = perf()
                status = await conn.request(reqs[k % NKEYS])
                t1 = perf()
            except (OSError, ConnectionError, ValueError):
                counts["errors"] += 1
                statuses[0] = statuses.get(0, 0) + 1
                conn = None
                await asyncio.sleep(0.01)
                continue
            k += spec.clients
            if 200 <= status < 300:
                counts["ok"] += 1
                if m0 <= t1 <= m1:
                    counts["in_window"] += 1
                    lat.append(t1 - t0)
            else:
                counts["errors"] += 1
                statuses[status] = statuses.get(status, 0) + 1
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    async def cpu_window() -> float:
        # The driver's own CPU over the measured span: it shares the machine's cores
        # with the servers, so this says how much of them it took.
        await asyncio.sleep(max(0.0, m0 - time.monotonic()))
        c0 = time.process_time()
        await asyncio.sleep(max(0.0, m1 - time.monotonic()))
        return (time.process_time() - c0) / spec.duration

    cpu_task = asyncio.ensure_future(cpu_window())
    await asyncio.gather(*(client(i) for i in range(spec.clients)))
    driver_cpu = await cpu_task
    return {
        "kind": spec.kind,
        "op": spec.op,
        "clients": spec.clients,
        "size": spec.size,
        "throughput": counts["in_window"] / spec.duration,
        "latency": Latency.of(lat).as_dict(),
        "ok": counts["ok"],
        "errors": counts["errors"],
        "statuses": {str(k): v for k, v in statuses.items()},
        "driver_cpu": driver_cpu,
    }


async def preload(kind: str, targets: list[tuple[str, int]], size: int) -> int:
    """Write every key once (16 clients), so that GETs find them. Returns errors."""
    spec = LoadSpec(kind, targets, "put", 16, size, 0.0, 0.0)
    loop = asyncio.get_running_loop()
    reqs = build_requests(kind, "put", size, *targets[0])
    errors = 0

    async def writer(i: int) -> None:
        nonlocal errors
        _, conn = await loop.create_connection(HttpConn, *targets[0])
        for k in range(i, NKEYS, spec.clients):
            st = await conn.request(reqs[k])
            if not 200 <= st < 300:
                errors += 1
        assert conn.transport is not None
        conn.transport.close()

    await asyncio.gather(*(writer(i) for i in range(spec.clients)))
    return errors


def load_main(arg: str) -> None:
    """The load process: run each case in order, one JSON line per case."""
    job = json.loads(arg)
    arm_deadline(float(job["deadline"]))
    targets = [(h, int(p)) for h, p in job["targets"]]
    loaded: set[int] = set()
    for case in job["cases"]:
        if case["op"] == "get" and case["size"] not in loaded:
            errs = asyncio.run(preload(job["kind"], targets, case["size"]))
            loaded.add(case["size"])
            if errs:
                emit({"event": "warning", "why": f"{errs} preload PUTs failed"})
        spec = LoadSpec(
            job["kind"],
            targets,
            case["op"],
            case["clients"],
            case["size"],
            case["warmup"],
            case["duration"],
        )
        emit({"event": "result", **asyncio.run(run_load(spec))})
    emit({"event": "done"})


# ============================================================================ clusters


def http_get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class RaftKVCluster:
    """Three raftkv members through raftkv's own LocalCluster harness."""

    name = "raftkv"

    def __init__(self, base: str, profile: bool, loop: str = "asyncio") -> None:
        from raftkv.localcluster import LocalCluster

        self.base = base
        profile_dir = base if profile else ""

        class Cluster(LocalCluster):
            def command(self, mid: int, *, join: bool = False, cluster: Any = None) -> list[str]:
                cmd = super().command(mid, join=join, cluster=cluster)
                if profile_dir:
                    # python -m cProfile -o FILE -m raftkv serve ...: written at a clean stop.
                    out = os.path.join(profile_dir, f"profile-{mid}.pstats")
                    cmd = [cmd[0], "-m", "cProfile", "-o", out, *cmd[1:]]
                return cmd

        self.cluster = Cluster(
            Path(base),
            tick_ms=100,
            election_ticks=10,
            log_level="warning",
            wal_segment_size="64MiB",
        )
        if loop != "asyncio":
            self.cluster.extra_args = ["--event-loop", loop]
        self.leader = 0

    def start(self) -> list[tuple[str, int]]:
        c = self.cluster
        for i in (1, 2, 3):
            c.define(i)
        for i in (1, 2, 3):
            c.start(i)
        self.leader, _ = asyncio.run(c.wait_for_leader([1, 2, 3], timeout=30))
        return [(HOST, c.members[i].http_port) for i in (1, 2, 3)]

    def leader_target(self) -> tuple[str, int]:
        return (HOST, self.cluster.members[self.leader].http_port)

    def check_leader(self) -> int:
        try:
            st = http_get_json(f"{self.cluster.members[1].endpoint}/status")
            return int(st.get("term", 0))
        except (OSError, ValueError):
            return 0

    def stop(self) -> None:
        c = self.cluster
        for i in (1, 2, 3):
            with contextlib.suppress(Exception):
                c.stop(i, timeout=15)
        c.close()

    def log_tail(self) -> str:
        return "\n".join(self.cluster.log_text(i)[-1500:] for i in (1, 2, 3))


class EtcdCluster:
    """Three etcd members (the binary from Debian's etcd-server)."""

    name = "etcd"

    def __init__(self, base: str, etcd: str) -> None:
        self.base = base
        self.etcd = etcd
        self.procs: list[subprocess.Popen[bytes]] = []
        ports = free_ports(6)
        self.client_ports = ports[:3]
        self.peer_ports = ports[3:]
        self.leader = 0

    def start(self) -> list[tuple[str, int]]:
        initial = ",".join(f"m{i}=http://{HOST}:{p}" for i, p in enumerate(self.peer_ports, 1))
        for i in (1, 2, 3):
            cp, pp = self.client_ports[i - 1], self.peer_ports[i - 1]
            data = os.path.join(self.base, f"etcd-{i}")
            log = open(os.path.join(self.base, f"etcd-{i}.log"), "wb")  # noqa: SIM115
            cmd = [
                *die_with_parent_prefix(),
                self.etcd,
                "--name",
                f"m{i}",
                "--data-dir",
                data,
                "--listen-client-urls",
                f"http://{HOST}:{cp}",
                "--advertise-client-urls",
                f"http://{HOST}:{cp}",
                "--listen-peer-urls",
                f"http://{HOST}:{pp}",
                "--initial-advertise-peer-urls",
                f"http://{HOST}:{pp}",
                "--initial-cluster",
                initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                f"bench-{os.getpid()}",
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ]
            self.procs.append(
                subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
                )
            )
            log.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"etcd exited with {p.returncode}:\n{self.log_tail()}")
            leaders = set()
            ok = 0
            for cp in self.client_ports:
                try:
                    st = self._status(cp)
                except (OSError, ValueError):
                    continue
                ok += 1
                leaders.add(int(st["leader"]))
                if int(st["leader"]) == int(st["header"]["member_id"]):
                    self.leader = self.client_ports.index(cp) + 1
            if ok == 3 and len(leaders) == 1 and self.leader:
                return [(HOST, p) for p in self.client_ports]
            time.sleep(0.1)
        raise RuntimeError(f"etcd cluster did not come up within 30 s:\n{self.log_tail()}")

    @staticmethod
    def _status(port: int) -> dict[str, Any]:
        req = urllib.request.Request(
            f"http://{HOST}:{port}/v3/maintenance/status",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=2) as r:
            d: dict[str, Any] = json.loads(r.read())
            return d

    def leader_target(self) -> tuple[str, int]:
        return (HOST, self.client_ports[self.leader - 1])

    def check_leader(self) -> int:
        try:
            return int(self._status(self.client_ports[0])["raftTerm"])
        except (OSError, ValueError, KeyError):
            return 0

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def log_tail(self) -> str:
        out = []
        for i in (1, 2, 3):
            with contextlib.suppress(OSError), open(os.path.join(self.base, f"etcd-{i}.log")) as f:
                out.append(f.read()[-1500:])
        return "\n".join(out)


# ============================================================================ driver


@dataclass(slots=True)
class Case:
    op: str
    size: int
    clients: int

    @property
    def label(self) -> str:
        return (
            f"{self.op.upper()} {self.size} B" if self.size < 1024 else f"{self.op.upper()} 1 KiB"
        )


@dataclass(slots=True)
class Result:
    system: str
    case: Case
    throughput: float = math.nan
    latency: Latency = field(default_factory=Latency)
    errors: int = 0
    elections: int = 0
    note: str = ""


def run_system(
    cluster: RaftKVCluster | EtcdCluster,
    cases: list[Case],
    warmup: float,
    duration: float,
    target_mode: str,
    work: str,
    verbose: bool,
) -> tuple[list[Result], str]:
    targets = cluster.start()
    if target_mode == "leader":
        targets = [cluster.leader_target()]
    term0 = cluster.check_leader()
    budget = 60 + len(cases) * (warmup + duration + 20)
    job: dict[str, Any] = {
        "kind": "raftkv" if cluster.name == "raftkv" else "etcd",
        "targets": targets,
        "cases": [
            {
                "op": c.op,
                "size": c.size,
                "clients": c.clients,
                "warmup": warmup,
                "duration": duration,
            }
            for c in cases
        ],
        "deadline": budget,
    }
    results: list[Result] = []
    note = ""
    deadline = time.monotonic() + budget
    with ChildGroup() as group:
        group.start(
            "load",
            [sys.executable, str(Path(__file__).resolve()), "--load", json.dumps(job)],
            os.path.join(work, f"load-{cluster.name}.log"),
            stdin=False,
        )
        it = iter(cases)
        for _name, ev in group.events(deadline):
            if ev is None:
                note = "load process exited early: " + group.children["load"].log_tail(1500)
                break
            if ev.get("event") == "warning":
                note = ev["why"]
            if ev.get("event") == "result":
                case = next(it)
                r = Result(
                    cluster.name,
                    case,
                    float(ev["throughput"]),
                    Latency.from_dict(ev["latency"]),
                    int(ev["errors"]),
                )
                results.append(r)
                if verbose:
                    print(
                        f"  {cluster.name}: {case.label} x{case.clients}: "
                        f"{r.throughput:,.0f}/s, p99 {fmt_ms(r.latency.p99)} ms, "
                        f"{r.errors} errors {ev['statuses'] or ''}, "
                        f"load driver CPU {ev['driver_cpu']:.0%}",
                        file=sys.stderr,
                        flush=True,
                    )
            if ev.get("event") == "done":
                break
        else:
            note = note or "time budget exceeded"
        group.stop_all(grace=2)
    term1 = cluster.check_leader()
    if term0 and term1 and term1 != term0:
        note = (note + "; " if note else "") + f"term changed {term0} -> {term1} during the run"
    return results, note


def render(results: Sequence[Result]) -> str:
    t = Table(
        [
            "operation",
            "clients",
            "raftkv ops/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "err",
            "etcd ops/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "err",
            "raftkv/etcd",
        ],
        left=1,
    )
    keys: list[tuple[str, int, int]] = []
    for r in results:
        k = (r.case.op, r.case.size, r.case.clients)
        if k not in keys:
            keys.append(k)
    for k in keys:
        rk = next((r for r in results if r.system == "raftkv" and _key(r) == k), None)
        et = next((r for r in results if r.system == "etcd" and _key(r) == k), None)
        cells: list[object] = [
            Case(k[0], k[1], k[2]).label,
            k[2],
        ]
        for res in (rk, et):
            if res is None:
                cells += ["-", "-", "-", "-", "-"]
            else:
                cells += [
                    fmt_rate(res.throughput),
                    fmt_ms(res.latency.p50),
                    fmt_ms(res.latency.p99),
                    fmt_ms(res.latency.max),
                    res.errors,
                ]
        cells.append(
            fmt_ratio(rk.throughput, et.throughput) if rk is not None and et is not None else "-"
        )
        t.add(cells)
    return t.render()


def _key(r: Result) -> tuple[str, int, int]:
    return (r.case.op, r.case.size, r.case.clients)


def targets_report(results: Sequence[Result]) -> list[str]:
    out = []
    for op, size in sorted({(r.case.op, r.case.size) for r in results}):
        rk = next(
            (r for r in results if r.system == "raftkv" and _key(r) == (op, size, 256)),
            None,
        )
        et = next((r for r in results if r.system == "etcd" and _key(r) == (op, size, 256)), None)
        if rk is None or et is None or et.throughput <= 0:
            continue
        ratio = rk.throughput / et.throughput
        out.append(
            f"[{Case(op, size, 256).label}, 256 clients] raftkv >= 50% of etcd: "
            f"{'met' if ratio >= 0.5 else 'MISSED'} - {fmt_rate(rk.throughput)}/s vs "
            f"{fmt_rate(et.throughput)}/s = {ratio:.0%}"
        )
    return out


def print_profiles(base: str) -> None:
    for i in (1, 2, 3):
        path = os.path.join(base, f"profile-{i}.pstats")
        if os.path.exists(path):
            out = io.StringIO()
            pstats.Stats(path, stream=out).sort_stats("tottime").print_stats(25)
            print(f"\n--- profile of raftkv member {i}: top 25 by own time ---")
            print(out.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--load", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="short runs (< 1 min)")
    p.add_argument("--clients", default="", help="comma list (default 1,16,256)")
    p.add_argument(
        "--ops", default="", help="comma list of put100, put1k, get100 (default: all three)"
    )
    p.add_argument("--duration", type=float, help="measured seconds per case")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each case")
    p.add_argument("--systems", default="raftkv,etcd", help="comma list: raftkv, etcd")
    p.add_argument(
        "--target",
        choices=("all", "leader"),
        default="all",
        help="spread clients over all members (default) or send all to the leader",
    )
    p.add_argument("--profile", action="store_true", help="cProfile the raftkv members")
    p.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="raftkv members' event loop (raftkv serve --event-loop); auto (default): "
        "uvloop if installed (pip install 'raftcore[fast]')",
    )
    p.add_argument("--dir", default=None, help="where data lives (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    p.add_argument("--json", help="also write the results as JSON to this file")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.load:
        load_main(args.load)
        return 0

    quick = args.quick
    clients = [int(x) for x in args.clients.split(",") if x] or [1, 16, 256]
    ops = [x for x in args.ops.split(",") if x] or ["put100", "put1k", "get100"]
    op_cases = {"put100": ("put", 100), "put1k": ("put", 1024), "get100": ("get", 100)}
    cases = [Case(*op_cases[o], c) for o in ops for c in clients]
    warmup = args.warmup if args.warmup is not None else (0.3 if quick else 1.0)
    duration = args.duration if args.duration is not None else (1.2 if quick else 4.0)
    base = args.dir or tempfile.mkdtemp(prefix="bench-e2e-service-")
    os.makedirs(base, exist_ok=True)
    verbose = not args.quiet
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    if args.loop == "auto":
        args.loop = "uvloop" if have_uvloop else "asyncio"
    elif args.loop == "uvloop" and not have_uvloop:
        p.error("--loop uvloop: uvloop is not installed (pip install 'raftcore[fast]')")
    print(f"machine: {machine_summary(base)}, load average {os.getloadavg()[0]:.2f}")
    print(f"raftkv event loop: {args.loop}")
    print(
        f"plan: {len(cases)} cases per system, {warmup:g}s warm-up + {duration:g}s measured "
        f"each; clients {'spread over all members' if args.target == 'all' else 'on the leader'}"
    )
    t_all = time.monotonic()
    results: list[Result] = []
    notes: list[str] = []
    try:
        for system in [s for s in args.systems.split(",") if s]:
            work = os.path.join(base, system)
            os.makedirs(work, exist_ok=True)
            cluster: RaftKVCluster | EtcdCluster
            if system == "raftkv":
                cluster = RaftKVCluster(work, args.profile, args.loop)
            elif system == "etcd":
                etcd = shutil.which("etcd")
                if etcd is None:
                    msg = "etcd skipped: no etcd binary (run `bash bench/setup_bench_env.sh`)"
                    print(msg, file=sys.stderr)
                    notes.append(msg)
                    continue
                cluster = EtcdCluster(work, etcd)
            else:
                p.error(f"unknown system {system!r}")
            if verbose:
                print(f"running {system} ...", file=sys.stderr)
            try:
                got, note = run_system(cluster, cases, warmup, duration, args.target, work, verbose)
            except (RuntimeError, TimeoutError) as err:
                got, note = [], f"did not start: {err}"
            finally:
                cluster.stop()
            results += got
            if note:
                notes.append(f"{system}: {note}")
            if system == "raftkv" and args.profile:
                print_profiles(work)
    finally:
        if not args.dir and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(render(results))
    print()
    for ln in targets_report(results):
        print(ln)
    for n in notes:
        print(f"note: {n}")
    print(f"total time {time.monotonic() - t_all:.0f}s, load average {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                [
                    {
                        "system": r.system,
                        "op": r.case.op,
                        "size": r.case.size,
                        "clients": r.case.clients,
                        "throughput": r.throughput,
                        "latency": r.latency.as_dict(),
                        "errors": r.errors,
                    }
                    for r in results
                ],
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
