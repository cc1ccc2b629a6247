"""A deterministic fault-injection simulator for raftcore.

Runs in-process clusters of :class:`~raftcore.RawNode` s under a seeded scheduler that
interleaves ticks, client requests (a key-value state machine: put/delete through the
log, get through ReadIndex), membership changes, leader transfers and faults (message
drop, delay, reorder and duplication, symmetric and one-way partitions, crashes that
lose unpersisted state, snapshots and compaction, async storage writes), checking
raft's safety invariants after every step and linearizability and liveness at the end.
A failing run is reproducible from its seed and is shrunk to a small trace.

``python -m raftcore.sim --seeds N --steps M`` runs many seeds; see
:mod:`raftcore.sim.scheduler` for what a step is, :mod:`raftcore.sim.invariants` for the
checks.
"""

from raftcore.sim.cluster import Cluster, SimParams, Step
from raftcore.sim.invariants import ALL_CHECKS, Invariants, Violation
from raftcore.sim.scheduler import (
    FAULT_KINDS,
    RunResult,
    SimOptions,
    choose_params,
    replay,
    replay_hash,
    run_seed,
)
from raftcore.sim.shrink import shrink

__all__ = [
    "ALL_CHECKS",
    "FAULT_KINDS",
    "Cluster",
    "Invariants",
    "RunResult",
    "SimOptions",
    "SimParams",
    "Step",
    "Violation",
    "choose_params",
    "replay",
    "replay_hash",
    "run_seed",
    "shrink",
]
