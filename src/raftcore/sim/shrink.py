"""Shrink a failing trace: delta debugging over the recorded steps.

Every step is self-contained (it names nodes and links, not objects), so any
subsequence of a trace is itself a valid trace that replays deterministically from
the same seed. :func:`shrink` looks for a small subsequence that still produces a
violation of the same kind:

1. cut the trace after the step that failed (a safety violation needs nothing later);
   for end-of-run violations (linearizability, liveness), bisect for a short prefix
   that still fails once the heal phase follows it;
2. try dropping every step of one kind at once (all reads, all compactions, ...);
3. Zeller's ddmin: remove ever smaller chunks while the violation persists, cutting
   again whenever a replay fails earlier than the end of its trace.

Replays are bounded by a time budget; the result is the smallest trace found so far.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from raftcore.sim.cluster import Step
from raftcore.sim.invariants import Violation
from raftcore.sim.scheduler import SimOptions, replay

__all__ = ["ShrinkResult", "shrink"]


class ShrinkResult:
    """The shrunk ``trace``, the ``violation`` it produces, and how many replays it
    took (``replays``) in ``elapsed`` seconds."""

    __slots__ = ("elapsed", "replays", "trace", "violation")

    def __init__(
        self, trace: list[Step], violation: Violation, replays: int, elapsed: float
    ) -> None:
        self.trace = trace
        self.violation = violation
        self.replays = replays
        self.elapsed = elapsed


def shrink(
    seed: int,
    opts: SimOptions,
    trace: Sequence[Step],
    violation: Violation,
    *,
    time_budget: float = 60.0,
) -> ShrinkResult:
    """Find a small sub-trace of ``trace`` that still fails with ``violation.kind``."""
    t0 = time.perf_counter()
    deadline = t0 + time_budget
    kind = violation.kind
    # End-of-run checks need the heal phase; safety checks fail during the steps.
    finish = kind in ("linearizability", "liveness") or violation.step >= len(trace)
    cur = list(trace if finish else trace[: violation.step + 1])
    best_v = violation
    replays = 0

    def attempt(sub: list[Step]) -> list[Step] | None:
        """The (possibly cut) sub-trace if it still fails the same way."""
        nonlocal replays, best_v
        replays += 1
        v = replay(seed, opts, sub, finish=finish, kinds=(kind,))
        if v is None or v.kind != kind:
            return None
        best_v = v
        if not finish and v.step < len(sub) - 1:
            return sub[: v.step + 1]
        return sub

    first = attempt(cur)
    if first is None:
        # Not reproducible by replay (should not happen): report the trace as is.
        return ShrinkResult(cur, violation, replays, time.perf_counter() - t0)
    cur = first

    if finish:
        # The shortest failing prefix, by bisection (failing is usually, not always,
        # monotonic in the prefix length; every candidate is verified by a replay).
        lo, hi = 0, len(cur)
        while lo + 1 < hi and time.perf_counter() < deadline:
            mid = (lo + hi) // 2
            if attempt(cur[:mid]) is not None:
                hi = mid
            else:
                lo = mid
        if hi < len(cur):
            cur = cur[:hi]

    for k in sorted({s.kind for s in cur}):
        if time.perf_counter() > deadline:
            break
        sub = [s for s in cur if s.kind != k]
        if len(sub) < len(cur):
            got = attempt(sub)
            if got is not None:
                cur = got

    n = 2
    while len(cur) >= 2 and time.perf_counter() < deadline:
        chunk = -(-len(cur) // n)
        reduced = False
        for start in range(0, len(cur), chunk):
            if time.perf_counter() > deadline:
                break
            sub = cur[:start] + cur[start + chunk :]
            if not sub:
                continue
            got = attempt(sub)
            if got is not None:
                cur = got
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if n >= len(cur):
                break
            n = min(len(cur), 2 * n)
    return ShrinkResult(cur, best_v, replays, time.perf_counter() - t0)
