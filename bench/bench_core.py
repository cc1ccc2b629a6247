"""Throughput of the raft core alone: an in-process cluster of RawNodes, no I/O.

Run as ``python bench/bench_core.py`` (the whole default matrix takes about a minute)
or narrow it down, e.g. ``python bench/bench_core.py --nodes 3 --sizes 128 --batches 1024``.
``--profile`` runs one configuration (the first of each chosen list) under cProfile and
prints the 25 functions with the most own time.

The cluster: ``--nodes`` voters, each a :class:`~raftcore.RawNode` over its own
:class:`~raftcore.MemoryStorage` that starts from a snapshot holding the configuration.
Node 1 campaigns and leads. Every *round* the leader takes ``batch`` proposals of
``size`` bytes, then every node with work handles one Ready the synchronous way
(persist snapshot, entries and hard state to its storage, collect the messages, "apply"
the committed entries, ``advance``), then every collected message is stepped into its
recipient. Rounds repeat until ``--duration`` seconds have passed; then rounds without
proposals run until the cluster is quiet, so that everything proposed is counted.

Figures:

* committed/s: entries committed *and applied on every node* (the smallest applied
  index gained over all nodes), divided by the wall time including the final drain;
* CPU µs/entry: process CPU time (``time.process_time``) over the same span, per
  such entry: all nodes' work for one entry, since they share one process;
* rounds: Ready rounds run (with batch 1, one entry per round at steady state).

"Applying" is recording the last committed index: the figures measure raft, not a
state machine. Storage is compacted to the cluster-wide applied index now and then
to keep memory flat; proposals share one payload object (raft never copies payloads).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from raftcore.config import Config
from raftcore.raft import StateType
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.rawnode import RawNode
from raftcore.storage import MemoryStorage

#: Entries kept in a storage below the cluster-wide applied index before compacting.
COMPACT_SLACK = 20_000

SIZE_NAMES = {16: "16 B", 128: "128 B", 1024: "1 KiB"}


class Cluster:
    """``n`` RawNodes (ids 1..n) wired by direct message passing."""

    def __init__(self, n: int, max_size_per_msg: int, max_inflight_msgs: int) -> None:
        ids = list(range(1, n + 1))
        self.ids = ids
        self.nodes: dict[int, RawNode] = {}
        self.storages: dict[int, MemoryStorage] = {}
        #: Last index each node has been handed to apply.
        self.applied: dict[int, int] = {}
        for i in ids:
            st = MemoryStorage()
            # Start from a snapshot that holds the configuration (etcd's recommended
            # way to create a cluster), at index 1 term 1.
            st.apply_snapshot(
                Snapshot(
                    metadata=SnapshotMetadata(conf_state=ConfState(voters=ids), index=1, term=1)
                )
            )
            cfg = Config(
                id=i,
                election_tick=10,
                heartbeat_tick=1,
                storage=st,
                max_size_per_msg=max_size_per_msg,
                max_inflight_msgs=max_inflight_msgs,
            )
            self.nodes[i] = RawNode(cfg)
            self.storages[i] = st
            self.applied[i] = 1
        self.rounds = 0

    def round(self) -> bool:
        """One Ready per node with work, then deliver what they sent. False if idle."""
        nodes = self.nodes
        storages = self.storages
        applied = self.applied
        out: list[Message] = []
        busy = False
        for i, rn in nodes.items():
            if not rn.has_ready():
                continue
            busy = True
            rd = rn.ready()
            st = storages[i]
            if rd.snapshot is not None:
                st.apply_snapshot(rd.snapshot)
            if rd.entries:
                st.append(rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            if rd.messages:
                out.extend(rd.messages)
            ce = rd.committed_entries
            if ce:
                applied[i] = ce[-1].index
            rn.advance()
        for m in out:
            nodes[m.to].step(m)
        self.rounds += 1
        return busy or bool(out)

    def settle(self, max_rounds: int = 1_000_000) -> None:
        """Run rounds until nothing happens any more."""
        for _ in range(max_rounds):
            if not self.round():
                return
        raise RuntimeError("cluster did not settle")

    def elect(self, leader: int) -> RawNode:
        rn = self.nodes[leader]
        rn.campaign()
        self.settle()
        if rn.raft.state != StateType.StateLeader:
            raise RuntimeError(f"node {leader} failed to become leader")
        return rn

    def min_applied(self) -> int:
        return min(self.applied.values())

    def compact(self) -> None:
        """Drop entries every node has applied (keeps memory flat on long runs)."""
        upto = self.min_applied()
        for st in self.storages.values():
            if upto - st.first_index() > COMPACT_SLACK:
                st.compact(upto)


@dataclass(slots=True)
class Result:
    nodes: int
    size: int
    batch: int
    committed: int
    wall: float
    cpu: float
    rounds: int

    @property
    def rate(self) -> float:
        return self.committed / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_us_per_entry(self) -> float:
        return self.cpu / self.committed * 1e6 if self.committed else float("nan")


def run(
    nodes: int,
    size: int,
    batch: int,
    duration: float,
    *,
    one_msg: bool = False,
    max_size_per_msg: int = 1 << 20,
    max_inflight_msgs: int = 256,
) -> Result:
    """Run one configuration for about ``duration`` seconds (plus the drain)."""
    c = Cluster(nodes, max_size_per_msg, max_inflight_msgs)
    leader = c.elect(1)
    payload = bytes(size)  # one object shared by every proposal
    propose = leader.propose
    batch_entries = [Entry(data=payload) for _ in range(batch)]
    prop_type = MessageType.MsgProp
    step = leader.step
    do_round = c.round
    start = c.min_applied()
    compact_every = max(1, 16384 // batch)

    gc.collect()
    perf = time.perf_counter
    t0 = perf()
    c0 = time.process_time()
    deadline = t0 + duration
    rounds = 0
    while True:
        if one_msg:
            # The application batched the proposals into one MsgProp.
            step(Message(type=prop_type, from_=1, entries=list(batch_entries)))
        else:
            for _ in range(batch):
                propose(payload)
        do_round()
        rounds += 1
        if rounds % compact_every == 0:
            c.compact()
        if perf() >= deadline:
            break
    c.settle()
    wall = perf() - t0
    cpu = time.process_time() - c0
    return Result(nodes, size, batch, c.min_applied() - start, wall, cpu, c.rounds)


def fmt_table(results: Sequence[Result]) -> str:
    head = (
        "| nodes | size  | batch | committed | wall s | committed/s | CPU µs/entry | rounds |",
        "|------:|------:|------:|----------:|-------:|------------:|-------------:|-------:|",
    )
    rows = [
        f"| {r.nodes:5d} | {SIZE_NAMES.get(r.size, f'{r.size} B'):>5} | {r.batch:5d} "
        f"| {r.committed:9d} | {r.wall:6.2f} | {r.rate:11,.0f} "
        f"| {r.cpu_us_per_entry:12.1f} | {r.rounds:6d} |"
        for r in results
    ]
    return "\n".join([*head, *rows])


def machine() -> str:
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({platform.machine()}, {platform.system()})"
    )


def int_list(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        part = part.strip().lower()
        mult = 1
        if part.endswith("kib") or part.endswith("k"):
            mult = 1024
            part = part.removesuffix("kib").removesuffix("k")
        elif part.endswith("b"):
            part = part[:-1]
        out.append(int(part) * mult)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int_list, default=[3, 5], help="voters (default 3,5)")
    p.add_argument(
        "--sizes", type=int_list, default=[16, 128, 1024], help="payload bytes (default 16,128,1k)"
    )
    p.add_argument(
        "--batches",
        type=int_list,
        default=[1, 64, 1024],
        help="proposals per Ready round (default 1,64,1024)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=2.5,
        help="seconds of proposing per configuration (default 2.5)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each configuration N times and keep the fastest (for noisy machines)",
    )
    p.add_argument(
        "--one-msg",
        action="store_true",
        help="step each round's batch as one MsgProp instead of one propose() per entry",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile the first chosen configuration and print the top 25 by tottime",
    )
    p.add_argument("--profile-top", type=int, default=25, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    print(f"# bench_core: {machine()}", flush=True)
    if args.profile:
        n, size, batch = args.nodes[0], args.sizes[0], args.batches[0]
        print(f"# profiling nodes={n} size={size} batch={batch} for {args.duration}s", flush=True)
        prof = cProfile.Profile()
        prof.enable()
        r = run(n, size, batch, args.duration, one_msg=args.one_msg)
        prof.disable()
        print(fmt_table([r]))
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(args.profile_top)
        print(s.getvalue())
        return 0

    results = []
    for n in args.nodes:
        for size in args.sizes:
            for batch in args.batches:
                r = max(
                    (
                        run(n, size, batch, args.duration, one_msg=args.one_msg)
                        for _ in range(max(1, args.repeat))
                    ),
                    key=lambda res: res.rate,
                )
                results.append(r)
                print(
                    f"# nodes={n} size={size} batch={batch}: {r.rate:,.0f} committed/s, "
                    f"{r.cpu_us_per_entry:.1f} CPU µs/entry",
                    file=sys.stderr,
                    flush=True,
                )
    print(fmt_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
