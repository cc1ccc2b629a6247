"""One PySyncObj member for bench/bench_e2e_lib.py (run by bench/.venv-peers/bin/python).

PySyncObj is not a project dependency: this file imports only it, the standard library
and bench/e2e_common.py (stdlib only). Usage (the benchmark does this)::

    bench/.venv-peers/bin/python bench/pysyncobj_peer.py '{"id": 1, "ports": [p1, p2, p3],
        "journal": "path or empty", "batch": true, "gc_freeze": true, "workloads": [...],
        "deadline": 300}'

Three of these form a cluster: ``SyncObj`` with a ``ReplDict`` consumer, PySyncObj's
defaults (autoTick thread, 0.4-1.4 s election timeout, 0.1 s append period) except the
two settings under test (``appendEntriesUseBatch``; ``journalFile``) and log compaction,
which is pushed out of the runs' reach as raftcore's side does none either. Every member
waits for a leader; the leader runs the workloads (same protocol as raftcore's members:
one JSON line per workload on stdout, then ``done``); every member prints its history
(terms, leaders) when its stdin closes, and exits.

A workload keeps W proposals in flight: each is ``ReplDict.set(key, value,
callback=cb)``; the callback (run by PySyncObj's tick thread when the entry is applied
on this member) records the latency and immediately submits the next proposal, which is
the cheapest way to feed PySyncObj (no thread hand-off per proposal). A top-up loop in
the main thread restores the window after failures (error callbacks).

``"gc_freeze": true`` (the benchmark's ``--gc freeze``, applied to raftcore's members
the same way): ``gc.collect(); gc.freeze()`` once started, then ``gc.freeze()`` every
second from a daemon thread (:func:`e2e_common.freeze_gc`).
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import os
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from e2e_common import HOST, History, Latency, arm_deadline, emit, freeze_gc, watch_stdin
from pysyncobj import (  # type: ignore[import-not-found,unused-ignore]
    FAIL_REASON,
    SyncObj,
    SyncObjConf,
)
from pysyncobj.batteries import ReplDict  # type: ignore[import-not-found,unused-ignore]

_SEQ = itertools.count(1)


class Peer:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        me = int(spec["id"])
        ports = [int(p) for p in spec["ports"]]
        self_addr = f"{HOST}:{ports[me - 1]}"
        partners = [f"{HOST}:{p}" for i, p in enumerate(ports, 1) if i != me]
        self.hist = History()
        self.hist_lock = threading.Lock()
        conf = SyncObjConf(
            appendEntriesUseBatch=bool(spec["batch"]),
            journalFile=spec["journal"] or None,
            dynamicMembershipChange=False,
            # No log compaction inside the runs (raftcore's members compact nothing).
            logCompactionMinEntries=10**9,
            logCompactionMinTime=10**6,
            onStateChanged=self._on_state,
        )
        self.d = ReplDict()
        self.obj = SyncObj(self_addr, partners, consumers=[self.d], conf=conf)
        self.addr_ids = {f"{HOST}:{p}": i for i, p in enumerate(ports, 1)}
        self.obj.addOnTickCallback(self._on_tick)

    # Called in PySyncObj's tick thread.
    def _on_state(self, _old: int, _new: int) -> None:
        self._on_tick()

    def _on_tick(self) -> None:
        now = time.monotonic()
        obj = self.obj
        leader = obj._getLeader()
        lid = self.addr_ids.get(str(leader.id), -1) if leader is not None else 0
        with self.hist_lock:
            self.hist.term(now, obj.raftCurrentTerm)
            self.hist.lead(now, lid)

    def wait_leader(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.obj._getLeader() is not None:
                return True
            time.sleep(0.02)
        return False

    def workload(
        self, window: int, size: int, warmup: float, duration: float, stall: float
    ) -> dict[str, Any]:
        d = self.d
        value = os.urandom(size)
        base = next(_SEQ) * 1_000_000_000
        seqs = itertools.count(base)
        pending: dict[int, float] = {}
        lat: list[float] = []
        counts = {"done": 0, "failed": 0, "replaced": 0}
        cpu = [0.0, 0.0]
        monotonic = time.monotonic
        t_start = monotonic()
        m0 = t_start + warmup
        m1 = m0 + duration
        stop_at = [m1]  # no new proposals after this (shared with the tick thread)

        def submit() -> None:
            seq = next(seqs)
            pending[seq] = monotonic()
            d.set(seq & 1023, value, callback=functools.partial(done, seq))

        def done(seq: int, _res: object, err: int) -> None:
            now = monotonic()
            t0 = pending.pop(seq, None)
            if t0 is None:
                return
            if err == FAIL_REASON.SUCCESS:
                counts["done"] += 1
                if m0 <= now <= m1:
                    lat.append(now - t0)
                if now < stop_at[0]:
                    submit()  # keep the window full: the next proposal, right away
            else:
                counts["failed"] += 1

        for _ in range(window):
            submit()
        at_m0 = at_m1 = 0
        measured0 = False
        while True:
            now = monotonic()
            if not measured0 and now >= m0:
                at_m0 = counts["done"]
                cpu[0] = time.process_time()
                measured0 = True
            if now >= m1:
                at_m1 = counts["done"]
                cpu[1] = time.process_time()
                break
            # Replace failed proposals (their callbacks do not resubmit).
            while counts["replaced"] < counts["failed"]:
                counts["replaced"] += 1
                submit()
            time.sleep(min(0.005, max(0.0, (m0 if not measured0 else m1) - now)))
        last = counts["done"]
        last_move = monotonic()
        while pending and monotonic() - last_move < stall:
            time.sleep(0.05)
            if counts["done"] != last:
                last = counts["done"]
                last_move = monotonic()
        t_end = monotonic()
        measured = at_m1 - at_m0
        return {
            "window": window,
            "size": size,
            "t_start": t_start,
            "t_end": t_end,
            "measured": measured,
            "seconds": duration,
            "throughput": measured / duration,
            "latency": Latency.of(lat).as_dict(),
            "issued": next(seqs) - base,
            "committed": counts["done"],
            "failed": counts["failed"],
            "lost": len(pending),
            "cpu_util": (cpu[1] - cpu[0]) / duration,
        }


def main() -> int:
    spec = json.loads(sys.argv[1])
    arm_deadline(float(spec.get("deadline", 600)))
    stop = threading.Event()
    watch_stdin(stop.set)
    peer = Peer(spec)
    gc_freeze = bool(spec.get("gc_freeze", False))
    if gc_freeze:
        freeze_gc(1.0)
    emit({"event": "started", "id": spec["id"]})
    if not peer.wait_leader(30):
        emit({"event": "error", "id": spec["id"], "why": "no leader after 30 s"})
    else:
        time.sleep(1.0)  # let the new leader settle (its benchmark waits 4 s)
        if peer.obj._isLeader():
            emit({"event": "leader", "id": spec["id"], "leads": True})
            gc.collect()  # as raftcore's leader does before its workloads
            if gc_freeze:
                gc.freeze()
            for w in spec["workloads"]:
                if stop.is_set():
                    break
                res = peer.workload(w["window"], w["size"], w["warmup"], w["duration"], w["stall"])
                emit({"event": "result", "id": spec["id"], **res})
            emit({"event": "done", "id": spec["id"]})
    stop.wait()
    with peer.hist_lock:
        hist = peer.hist.as_dict()
    emit({"event": "stats", "id": spec["id"], "history": hist})
    # destroy() stops the tick thread; exit hard so that nothing lingers.
    try:
        peer.obj.destroy()
    finally:
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
