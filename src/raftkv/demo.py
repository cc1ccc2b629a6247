"""``raftkv demo``: a three-member cluster on this machine, a leader crash, a recovery.

It starts three members as separate processes on 127.0.0.1 (free ports, a temporary
directory), writes and reads keys, kills the leader with SIGKILL while a client keeps
writing, shows that a new leader takes over and that every acknowledged write is
still there, restarts the killed member from its data directory and shows it catch
up. It narrates as it goes, cleans up whatever happens (Ctrl-C included), and exits 0
only if every check held.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Final, TextIO

from raftkv.client import ClientError, KVClient
from raftkv.localcluster import LocalCluster

__all__ = ["DemoFailed", "run_demo"]

#: The whole demo must finish within this many seconds.
DEADLINE: Final = 50.0


class DemoFailed(Exception):
    """A check did not hold; the message says which."""


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.t0 = time.monotonic()
        self.checks = 0

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {text}", file=self.out, flush=True)

    def check(self, ok: bool, text: str, failure: str) -> None:
        if not ok:
            self.say(f"FAILED: {failure}")
            raise DemoFailed(failure)
        self.checks += 1
        self.say(f"  ok: {text}")


async def _write(client: KVClient, key: str, value: bytes, endpoint: str | None = None) -> bool:
    try:
        await client.put(key, value, endpoint=endpoint)
    except ClientError:
        return False
    return True


async def _demo(cluster: LocalCluster, n: _Narrator, keys: int) -> None:
    say = n.say
    ids = [1, 2, 3]
    for i in ids:
        cluster.define(i)
    say("starting a 3-member cluster, one process per member:")
    for i in ids:
        m = cluster.start(i)
        say(
            f"  member {i}: pid {m.pid}, peers on {m.peer_address}, "
            f"HTTP on {m.endpoint}, data in {m.data_dir.name}/"
        )
    t = time.monotonic()
    leader, term = await cluster.wait_for_leader(ids, timeout=20)
    say(
        f"member {leader} was elected leader (term {term}), {time.monotonic() - t:.1f}s after start"
    )

    acked: dict[str, bytes] = {}
    async with cluster.client(ids) as client:
        # ---------------------------------------------------------------- phase 1
        say(f"writing {keys} keys, sending each to a different member in turn")
        say("  (followers hand writes to the leader; each answer comes once the write is applied)")
        for k in range(keys):
            key, value = f"greeting/{k:03d}", f"hello #{k}".encode()
            ep = cluster.members[ids[k % 3]].endpoint
            if await _write(client, key, value, ep):
                acked[key] = value
        n.check(
            len(acked) == keys,
            f"all {keys} writes acknowledged",
            f"only {len(acked)} of {keys} writes succeeded",
        )

        say("reading every key back from every member (linearizable reads)")
        mismatches = 0
        for i in ids:
            ep = cluster.members[i].endpoint
            for key, value in acked.items():
                item = await client.get(key, endpoint=ep)
                if item is None or item["value"] != value:
                    mismatches += 1
        n.check(
            mismatches == 0,
            f"{len(acked) * 3} reads, all return the written values",
            f"{mismatches} reads returned a wrong or missing value",
        )

        # ---------------------------------------------------------------- phase 2
        survivors = [i for i in ids if i != leader]
        say(
            f"starting a client that keeps writing through members {survivors[0]} and {survivors[1]}"
        )
        stop_writer = asyncio.Event()
        attempts = 0
        failed = 0

        async def writer() -> None:
            nonlocal attempts, failed
            async with cluster.client(survivors, timeout=3) as wc:
                k = 0
                while not stop_writer.is_set():
                    key, value = f"during-failover/{k:04d}", f"value {k}".encode()
                    attempts += 1
                    if await _write(wc, key, value):
                        acked[key] = value
                    else:
                        failed += 1
                        await asyncio.sleep(0.05)
                    k += 1

        wtask = asyncio.create_task(writer())
        try:
            await asyncio.sleep(0.7)
            victim = cluster.members[leader]
            say(f"killing the leader, member {leader} (pid {victim.pid}), with SIGKILL")
            t_kill = time.monotonic()
            cluster.kill(leader)
            new_leader, new_term = await cluster.wait_for_leader(
                survivors, timeout=20, exclude=leader
            )
            say(
                f"member {new_leader} is the new leader (term {new_term}), "
                f"elected {time.monotonic() - t_kill:.1f}s after the kill"
            )
            await asyncio.sleep(0.7)
        finally:
            stop_writer.set()
            await wtask
        during = sum(1 for key in acked if key.startswith("during-failover/"))
        say(
            f"the client tried {attempts} writes around the failover: {during} acknowledged, "
            f"{failed} failed (a failed write may or may not have happened; only "
            "acknowledged ones are promised)"
        )
        n.check(
            during > 0,
            "writes kept succeeding with one member down",
            "no write succeeded around the failover",
        )

        say(f"writing {keys} more keys while member {leader} is down")
        ok = 0
        for k in range(keys):
            key, value = f"after-failover/{k:03d}", f"still here #{k}".encode()
            if await _write(client, key, value):
                acked[key] = value
                ok += 1
        n.check(
            ok == keys,
            f"all {keys} acknowledged by the two remaining members",
            f"only {ok} of {keys} writes succeeded",
        )

        say(
            f"checking every acknowledged write ({len(acked)}) on members {survivors[0]} and {survivors[1]}"
        )
        lost = []
        for i in survivors:
            ep = cluster.members[i].endpoint
            for key, value in acked.items():
                item = await client.get(key, endpoint=ep)
                if item is None or item["value"] != value:
                    lost.append((i, key))
        n.check(
            not lost,
            f"no acknowledged write lost: all {len(acked)} read back from both members",
            f"{len(lost)} acknowledged writes missing or wrong, e.g. {lost[:3]}",
        )

        # ---------------------------------------------------------------- phase 3
        st = await cluster.status(new_leader)
        target = int(st["commit"]) if st else 0
        say(
            f"restarting member {leader} from its data directory (the cluster's commit index is {target})"
        )
        m = cluster.start(leader)
        say(f"  member {leader}: pid {m.pid}")
        t = time.monotonic()
        st2 = await cluster.wait_applied(leader, target, timeout=20)
        say(
            f"member {leader} caught up in {time.monotonic() - t:.1f}s: applied index "
            f"{st2['applied']}, following leader {st2['lead']} as {st2['raft_state']}"
        )
        ep = m.endpoint
        missing = 0
        for key, value in acked.items():
            item = await client.get(key, serializable=True, endpoint=ep)
            if item is None or item["value"] != value:
                missing += 1
        n.check(
            missing == 0,
            f"member {leader}'s own copy (serializable reads) holds all {len(acked)} acknowledged writes",
            f"member {leader} is missing {missing} acknowledged writes",
        )
        key = "demo/final"
        await client.put(key, b"written after the recovery", endpoint=ep)
        item = await client.get(key, endpoint=cluster.members[survivors[0]].endpoint)
        n.check(
            item is not None and item["value"] == b"written after the recovery",
            f"a write sent to member {leader} is visible on member {survivors[0]}",
            f"a write through member {leader} did not reach member {survivors[0]}",
        )


def run_demo(keys: int = 20, show_logs: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; returns 0 if every check held, 1 if one failed, 130 on Ctrl-C."""
    stream = out if out is not None else sys.stdout
    n = _Narrator(stream)
    base = Path(tempfile.mkdtemp(prefix="raftkv-demo-"))
    cluster = LocalCluster(base, tick_ms=50, election_ticks=10, request_timeout=3.0)
    n.say(f"raftkv demo: everything lives in {base} and is removed at the end")
    code = 1
    try:

        async def main() -> None:
            async with asyncio.timeout(DEADLINE):
                await _demo(cluster, n, keys)

        asyncio.run(main())
        code = 0
    except DemoFailed:
        code = 1
    except TimeoutError:
        n.say(f"FAILED: the demo did not finish within {DEADLINE:.0f}s")
        code = 1
    except KeyboardInterrupt:
        n.say("interrupted")
        code = 130
    except Exception as err:  # a harness failure: still clean up and say what happened
        n.say(f"FAILED: {type(err).__name__}: {err}")
        code = 1
    finally:
        running = cluster.running()
        n.say(f"cleaning up: stopping {len(running)} member process(es) and removing {base}")
        cluster.close()
        if show_logs or code not in (0, 130):
            for mid in sorted(cluster.members):
                text = cluster.log_text(mid)
                tail = text[-3000:] if code else text
                print(f"----- member {mid} log{' (tail)' if code else ''} -----", file=stream)
                print(tail, file=stream)
        shutil.rmtree(base, ignore_errors=True)
    if code == 0:
        n.say(f"demo passed: all {n.checks} checks held")
    elif code == 1:
        n.say("demo FAILED")
    return code
