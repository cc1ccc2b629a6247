"""Command line: run many seeds of the simulator and report violations.

    python -m raftcore.sim --seeds 200 --steps 5000
    python -m raftcore.sim --seeds 1 --seed-start 1234 --print-trace
    python -m raftcore.sim --seeds 50 --faults crash,partition --nodes 5 --jobs 2
    python -m raftcore.sim --seed-start 1234 --replay TRACE.txt

Each seed is one run (see :mod:`raftcore.sim.scheduler`; a step is one scheduler
decision). A violating seed is printed with its shrunk trace and the command that
reproduces it. The last line is ``N seeds, V violations``; the exit status is 1 if
any seed violated an invariant.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence

from raftcore.sim.cluster import Step
from raftcore.sim.invariants import ALL_CHECKS
from raftcore.sim.scheduler import FAULT_KINDS, RunResult, SimOptions, replay, run_seed
from raftcore.sim.shrink import shrink

# Stats worth a line in the summary, in this order (the rest follow sorted).
_SUMMARY_KEYS = (
    "crashes",
    "bounces",
    "restarts",
    "partitions",
    "oneway-partitions",
    "dropped",
    "duplicated",
    "reordered",
    "snapshots-created",
    "compactions",
    "snapshots-delivered",
    "snapshots-restored",
    "confchanges-proposed",
    "confchanges-applied",
    "leave-joint-proposed",
    "removed",
    "transfers",
    "campaigns",
    "async-appends",
    "async-applies",
    "delivered",
    "proposals",
    "proposals-dropped",
    "reads",
    "reads-served",
    "entries-applied",
    "stalls-without-prevote",
    "lin-unknown",
)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m raftcore.sim",
        description="Deterministic fault-injection simulation of raftcore clusters.",
    )
    p.add_argument("--seeds", type=int, default=20, help="number of seeds to run")
    p.add_argument("--steps", type=int, default=5000, help="chaos steps per seed")
    p.add_argument("--seed-start", type=int, default=0, help="first seed")
    p.add_argument("--nodes", type=int, default=None, help="voters (default: 3, 5 or 7)")
    p.add_argument(
        "--faults",
        default=",".join(FAULT_KINDS),
        help=f"comma-separated fault kinds (default all: {','.join(FAULT_KINDS)}); "
        "'none' for a fault-free run",
    )
    p.add_argument(
        "--checks",
        default=None,
        help=f"comma-separated invariants that may fail (default all: {','.join(sorted(ALL_CHECKS))})",
    )
    p.add_argument("--bug", default="", help="plant a bug: forget-vote")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--shrink-time", type=float, default=60.0, help="seconds to shrink a failing trace"
    )
    p.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--print-trace", action="store_true", help="print every seed's full trace")
    p.add_argument(
        "--strict-liveness",
        action="store_true",
        help="also require liveness of runs without pre-vote",
    )
    p.add_argument("--progress", type=int, default=None, help="a progress line every N seeds")
    p.add_argument(
        "--stop-on-violation", action="store_true", help="stop at the first violating seed"
    )
    p.add_argument(
        "--avoid-known-bugs",
        action="store_true",
        help="keep the application away from known core bugs (to look for others)",
    )
    p.add_argument(
        "--replay",
        metavar="FILE",
        default=None,
        help="replay the trace printed in FILE (one step a line) on --seed-start's cluster",
    )
    return p.parse_args(argv)


def _options(a: argparse.Namespace) -> SimOptions:
    faults: frozenset[str] = frozenset()
    if a.faults != "none":
        faults = frozenset(f.strip() for f in a.faults.split(",") if f.strip())
    unknown = faults - set(FAULT_KINDS)
    if unknown:
        raise SystemExit(f"unknown fault kind(s): {', '.join(sorted(unknown))}")
    checks = None
    if a.checks:
        checks = frozenset(c.strip() for c in a.checks.split(",") if c.strip())
        bad = checks - ALL_CHECKS
        if bad:
            raise SystemExit(f"unknown check(s): {', '.join(sorted(bad))}")
    if a.bug not in ("", "forget-vote"):
        raise SystemExit(f"unknown bug {a.bug!r}")
    return SimOptions(
        steps=a.steps,
        nodes=a.nodes,
        faults=faults,
        checks=checks,
        bug=a.bug,
        strict_liveness=a.strict_liveness,
        avoid_known_bugs=a.avoid_known_bugs,
    )


def _repro(a: argparse.Namespace, seed: int) -> str:
    parts = [
        "python -m raftcore.sim",
        f"--seed-start {seed} --seeds 1 --steps {a.steps}",
        f"--faults {a.faults}",
    ]
    if a.nodes is not None:
        parts.append(f"--nodes {a.nodes}")
    if a.checks:
        parts.append(f"--checks {a.checks}")
    if a.bug:
        parts.append(f"--bug {a.bug}")
    if a.strict_liveness:
        parts.append("--strict-liveness")
    if a.avoid_known_bugs:
        parts.append("--avoid-known-bugs")
    return " ".join(parts)


def _replay_file(a: argparse.Namespace, opts: SimOptions) -> int:
    """Replay a printed trace: lines that parse as steps, others ignored."""
    trace: list[Step] = []
    with open(a.replay, encoding="utf-8") as f:
        for line in f:
            try:
                trace.append(Step.parse(line))
            except ValueError:
                continue
    v = replay(a.seed_start, opts, trace)
    print(f"replayed {len(trace)} steps on seed {a.seed_start}")
    if v is None:
        print("1 seeds, 0 violations")
        return 0
    print(f"VIOLATION seed {a.seed_start} after step {v.step}: {v.kind}")
    print(f"  {v.detail}")
    print("1 seeds, 1 violations")
    return 1


_OPTS: SimOptions | None = None


def _init_worker(opts: SimOptions) -> None:
    global _OPTS
    _OPTS = opts


def _work(seed: int) -> RunResult:
    assert _OPTS is not None
    return run_seed(seed, _OPTS)


def _results(seeds: range, opts: SimOptions, jobs: int) -> Iterator[RunResult]:
    if jobs <= 1:
        for seed in seeds:
            yield run_seed(seed, opts)
        return
    ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(opts,)) as pool:
        yield from pool.imap(_work, seeds, chunksize=1)


def _describe(r: RunResult) -> str:
    p = r.params
    flags = []
    if p.pre_vote:
        flags.append("prevote")
    if p.check_quorum:
        flags.append("checkquorum")
    if p.async_nodes:
        flags.append(f"async={sorted(p.async_nodes)}")
    return (
        f"voters={p.voters} learners={p.learners} spares={p.spares} "
        f"election={p.election_tick} {' '.join(flags)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    a = _parse(argv)
    opts = _options(a)
    if a.replay:
        return _replay_file(a, opts)
    every = a.progress or max(1, a.seeds // 20)
    seeds = range(a.seed_start, a.seed_start + a.seeds)
    t0 = time.perf_counter()
    totals: Counter[str] = Counter()
    done = 0
    violations = 0
    steps = 0
    for r in _results(seeds, opts, a.jobs):
        done += 1
        steps += len(r.trace)
        totals.update(r.stats)
        if r.lin == "unknown":
            totals["lin-unknown"] += 1
        if a.print_trace:
            print(f"seed {r.seed} trace ({_describe(r)}):")
            for i, s in enumerate(r.trace):
                print(f"  {i:5d} {s}")
            print(f"seed {r.seed} trace hash {r.trace_hash}")
        v = r.violation
        if v is not None:
            violations += 1
            print(f"VIOLATION seed {r.seed} after step {v.step}: {v.kind}")
            print(f"  {v.detail}")
            print(f"  cluster: {_describe(r)}")
            print(f"  reproduce: {_repro(a, r.seed)}")
            if a.shrink_time > 0:
                sr = shrink(r.seed, opts, r.trace, v, time_budget=a.shrink_time)
                print(
                    f"  shrunk trace: {len(sr.trace)} of {len(r.trace)} steps "
                    f"({sr.replays} replays, {sr.elapsed:.1f}s); it fails with:"
                )
                print(f"  {sr.violation.kind}: {sr.violation.detail}")
                for i, s in enumerate(sr.trace):
                    print(f"    {i:5d} {s}")
            sys.stdout.flush()
        if done % every == 0 or done == a.seeds:
            el = time.perf_counter() - t0
            print(
                f"[{done}/{a.seeds}] seed {r.seed}: "
                f"{'VIOLATION' if v else 'ok'} ({_describe(r)}; {len(r.trace)} steps, "
                f"{r.ops} ops, lin {r.lin or '-'}, {r.elapsed:.2f}s) "
                f"| {violations} violations, {el:.0f}s elapsed",
                flush=True,
            )
        if v is not None and a.stop_on_violation:
            break
        if a.time_limit is not None and time.perf_counter() - t0 > a.time_limit:
            print(f"time limit reached after {done} seeds")
            break
    el = time.perf_counter() - t0
    keys = [k for k in _SUMMARY_KEYS if totals.get(k)] + sorted(
        k for k in totals if k not in _SUMMARY_KEYS
    )
    print(f"steps: {steps} chaos steps in {el:.1f}s ({steps / max(el, 1e-9):.0f} steps/s)")
    print("totals: " + ", ".join(f"{k}={totals[k]}" for k in keys))
    print(f"{done} seeds, {violations} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
