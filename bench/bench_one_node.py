"""Throughput of one raft node through the drivers (etcd's BenchmarkOneNode).

Run as ``python bench/bench_one_node.py [-n PROPOSALS] [--quick]``.

A single-voter node elects itself, then proposers push ``-n`` proposals of 128 bytes
while the application loop handles every Ready the etcd way: append the entries to a
MemoryStorage, simulate a 1 ms fsync, advance. The run ends when the last proposal
is committed. Reported: proposals per second, Readys per second, and entries per
Ready (how much the 1 ms fsync lets the node batch).

Rows: :class:`raftcore.Node` (threads) and :class:`raftcore.AsyncNode` (tasks), with
one proposer (etcd's benchmark) and with eight. The fsync is ``time.sleep(0.001)``;
for AsyncNode it is either that call made right in the event loop (blocking it, as a
naive application would) or the same sleep run through ``asyncio.to_thread`` (what an
asyncio application does with disk I/O).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from dataclasses import dataclass

from raftcore import AsyncNode, Config, MemoryStorage, Node, RawNode
from raftcore.util import NO_LIMIT

PAYLOAD = bytes(range(128))
FSYNC = 0.001


@dataclass(slots=True)
class Result:
    driver: str
    proposers: int
    fsync: str
    proposals: int
    seconds: float
    readys: int

    def row(self) -> str:
        return (
            f"{self.driver:<10} {self.proposers:>9} {self.fsync:<10} {self.proposals:>9} "
            f"{self.proposals / self.seconds:>12,.0f} {self.readys / self.seconds:>10,.0f} "
            f"{self.proposals / max(self.readys, 1):>12.1f}"
        )


def new_config(storage: MemoryStorage) -> Config:
    storage.snap.metadata.conf_state.voters = [1]
    return Config(
        id=1,
        election_tick=10,
        heartbeat_tick=1,
        storage=storage,
        max_size_per_msg=NO_LIMIT,
        max_inflight_msgs=256,
    )


def bench_node(n_props: int, proposers: int) -> Result:
    s = MemoryStorage()
    n = Node(RawNode(new_config(s)))
    try:
        n.campaign()
        while True:  # elect: persist the vote, become leader
            rd = n.ready(timeout=5)
            s.append(rd.entries)
            n.advance()
            if rd.soft_state is not None and rd.soft_state.lead == 1:
                break
        # The empty entry of the new term is index 1; proposals follow.
        target = 1 + n_props
        share = [n_props // proposers + (i < n_props % proposers) for i in range(proposers)]

        def propose(k: int) -> None:
            for _ in range(k):
                n.propose(PAYLOAD)

        threads = [threading.Thread(target=propose, args=(k,)) for k in share]
        readys = 0
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        while True:
            rd = n.ready(timeout=30)
            readys += 1
            s.append(rd.entries)
            time.sleep(FSYNC)  # a reasonable disk sync latency
            n.advance()
            if rd.hard_state is not None and rd.hard_state.commit >= target:
                break
        elapsed = time.perf_counter() - t0
        for t in threads:
            t.join()
    finally:
        n.stop()
    return Result("Node", proposers, "sleep", n_props, elapsed, readys)


async def _bench_async_node(n_props: int, proposers: int, to_thread: bool) -> Result:
    s = MemoryStorage()
    n = AsyncNode(RawNode(new_config(s)))
    try:
        await n.campaign()
        while True:
            rd = await n.next_ready(timeout=5)
            s.append(rd.entries)
            n.advance()
            if rd.soft_state is not None and rd.soft_state.lead == 1:
                break
        target = 1 + n_props
        share = [n_props // proposers + (i < n_props % proposers) for i in range(proposers)]

        async def propose(k: int) -> None:
            for _ in range(k):
                await n.propose(PAYLOAD)

        readys = 0
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(propose(k)) for k in share]
        async for rd in n.ready():
            readys += 1
            s.append(rd.entries)
            if to_thread:
                await asyncio.to_thread(time.sleep, FSYNC)
            else:
                time.sleep(FSYNC)
            n.advance()
            if rd.hard_state is not None and rd.hard_state.commit >= target:
                break
        elapsed = time.perf_counter() - t0
        await asyncio.gather(*tasks)
    finally:
        await n.stop()
    return Result(
        "AsyncNode", proposers, "to_thread" if to_thread else "sleep", n_props, elapsed, readys
    )


def bench_async_node(n_props: int, proposers: int, to_thread: bool) -> Result:
    return asyncio.run(_bench_async_node(n_props, proposers, to_thread))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="proposals per run")
    parser.add_argument("--quick", action="store_true", help="2,000 proposals per run")
    args = parser.parse_args()
    n_props = 2_000 if args.quick else args.n

    print(f"Python {sys.version.split()[0]}, 128 B proposals, 1 ms simulated fsync per Ready")
    header = (
        f"{'driver':<10} {'proposers':>9} {'fsync':<10} {'proposals':>9} "
        f"{'proposals/s':>12} {'Readys/s':>10} {'props/Ready':>12}"
    )
    print(header)
    print("-" * len(header))
    for proposers in (1, 8):
        print(bench_node(n_props, proposers).row(), flush=True)
    for proposers in (1, 8):
        for to_thread in (False, True):
            print(bench_async_node(n_props, proposers, to_thread).row(), flush=True)


if __name__ == "__main__":
    main()
