"""Safety invariants, checked incrementally after every simulator step.

:class:`Invariants` keeps a global record of what the cluster has done (leaders per
term, every persisted entry, every committed index, every applied entry, every
persisted hard state) and each ``on_*``/``check_*`` method compares one new
observation against that record, raising :class:`Violation` at the first
inconsistency. The methods take plain values so that each check can be exercised on
hand-made states (see ``tests/test_sim.py``); :mod:`raftcore.sim.cluster` feeds them
from the running nodes.

The checks, by the name a violation carries:

``election-safety``
    at most one leader per term.
``vote-stability``
    a persisted hard state never lowers its term, and within a term never changes a
    vote once cast (a node that forgets its vote can elect two leaders).
``log-matching``
    two persisted entries with the same index and term carry the same data and follow
    an entry of the same term (so, inductively, the logs agree up to there).
``commit-quorum``
    when a leader advances its commit index, the entry there is durable on a quorum
    (both halves of a joint configuration) of its voters' disks.
``committed-lost``
    an index, once committed with some term, never commits (on any node) with another
    term, and no node installs a snapshot that disagrees with it.
``leader-completeness``
    a leader whose term is at least the term of the highest committed entry has that
    entry (and the few before it) in its log.
``state-machine-safety``
    every node applies the same entry at a given index, also across restarts.
``monotonic``
    per node, commit and applied indexes never go backwards and applied entries come
    one index at a time; a persisted commit index never goes backwards, also across
    restarts.

End-of-run checks live in :mod:`raftcore.sim.scheduler`: ``linearizability`` (the KV
history, through :mod:`raftcore.linearizability`) and ``liveness`` (a proposal commits
within a bounded number of ticks once faults heal). A Python exception or
:class:`~raftcore.errors.RaftPanic` escaping the core is reported as ``panic``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

__all__ = ["ALL_CHECKS", "Invariants", "Violation"]

ALL_CHECKS: frozenset[str] = frozenset(
    (
        "election-safety",
        "vote-stability",
        "log-matching",
        "commit-quorum",
        "committed-lost",
        "leader-completeness",
        "state-machine-safety",
        "monotonic",
        "linearizability",
        "liveness",
        "panic",
    )
)

# How many committed entries below the highest a new leader is checked for (the rest
# follows from log matching).
_COMPLETENESS_WINDOW = 8


class Violation(Exception):
    """A broken invariant: ``kind`` names the check, ``detail`` says what was seen.

    ``step`` is filled in by the runner: the index of the trace step after which the
    violation was found (the number of steps run, for end-of-run checks).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.step = -1

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable (results come back from worker processes) with the step.
        return (_violation, (self.kind, self.detail, self.step))


def _violation(kind: str, detail: str, step: int) -> Violation:
    v = Violation(kind, detail)
    v.step = step
    return v


class Invariants:
    """The cluster-wide record that every observation is checked against.

    ``enabled`` restricts which checks may raise (all by default); disabled checks
    still keep their records, so enabling a subset changes nothing else.
    """

    __slots__ = (
        "applied",
        "committed",
        "enabled",
        "entries",
        "hard_states",
        "leader_of_term",
        "max_committed",
        "node_applied",
        "node_commit",
    )

    def __init__(self, enabled: Collection[str] | None = None) -> None:
        self.enabled: frozenset[str] = ALL_CHECKS if enabled is None else frozenset(enabled)
        self.leader_of_term: dict[int, int] = {}
        # (index, term) -> (entry type, data, term of the entry before it or -1)
        self.entries: dict[tuple[int, int], tuple[int, bytes, int]] = {}
        # index -> term of the entry committed there
        self.committed: dict[int, int] = {}
        self.max_committed = 0
        # index -> (term, data) of the entry applied there
        self.applied: dict[int, tuple[int, bytes]] = {}
        # node -> last persisted (term, vote, commit)
        self.hard_states: dict[int, tuple[int, int, int]] = {}
        # node -> commit / applied index of its current incarnation
        self.node_commit: dict[int, int] = {}
        self.node_applied: dict[int, int] = {}

    def fail(self, kind: str, detail: str) -> None:
        if kind in self.enabled:
            raise Violation(kind, detail)

    # --- elections ------------------------------------------------------------------

    def observe_leader(self, node: int, term: int) -> None:
        """``node`` is leader at ``term``."""
        cur = self.leader_of_term.setdefault(term, node)
        if cur != node:
            self.fail("election-safety", f"two leaders in term {term}: {cur} and {node}")

    # --- persistence ------------------------------------------------------------------

    def on_persist_hard_state(self, node: int, term: int, vote: int, commit: int) -> None:
        """``node`` durably wrote this hard state."""
        prev = self.hard_states.get(node)
        if prev is not None:
            pterm, pvote, pcommit = prev
            if term < pterm:
                self.fail("vote-stability", f"node {node} persisted term {term} after term {pterm}")
            elif term == pterm and pvote != 0 and vote != pvote:
                self.fail(
                    "vote-stability",
                    f"node {node} persisted vote {vote} in term {term} after voting {pvote}",
                )
            if commit < pcommit:
                self.fail(
                    "monotonic", f"node {node} persisted commit {commit} after commit {pcommit}"
                )
        self.hard_states[node] = (term, vote, commit)

    def on_persist_entry(
        self, node: int, index: int, term: int, etype: int, data: bytes, prev_term: int
    ) -> None:
        """``node`` durably wrote this entry; ``prev_term`` is the term of the entry
        before it on the same disk (-1 if compacted away).

        (A node may well persist an entry that conflicts with a committed one: a
        deposed leader or a lagging follower does not know about the commit yet. What
        raft forbids is committing or applying it, which the other checks cover.)
        """
        key = (index, term)
        known = self.entries.get(key)
        if known is None:
            self.entries[key] = (etype, data, prev_term)
            return
        ktype, kdata, kprev = known
        if ktype != etype or kdata != data:
            self.fail(
                "log-matching",
                f"node {node} persisted entry {index}/{term} with data {data!r}, "
                f"another node has {kdata!r}",
            )
        if kprev >= 0 and prev_term >= 0 and kprev != prev_term:
            self.fail(
                "log-matching",
                f"node {node} has entry {index}/{term} after an entry of term {prev_term}, "
                f"another node after one of term {kprev}",
            )
        elif kprev < 0 <= prev_term:
            self.entries[key] = (ktype, kdata, prev_term)

    def on_persist_snapshot(self, node: int, index: int, term: int) -> None:
        """``node`` durably installed a snapshot ending at ``index``/``term``."""
        ct = self.committed.get(index)
        if ct is not None and ct != term:
            self.fail(
                "committed-lost",
                f"node {node} installed a snapshot at {index}/{term}, "
                f"but term {ct} was committed there",
            )

    # --- commit -----------------------------------------------------------------------

    def reset_node(self, node: int, commit: int, applied: int) -> None:
        """``node`` (re)started with these indexes."""
        self.node_commit[node] = commit
        self.node_applied[node] = applied

    def observe_commit(self, node: int, commit: int, term_of: Callable[[int], int | None]) -> bool:
        """``node``'s commit index is now ``commit``; ``term_of(i)`` is the term of its
        entry ``i`` (None if compacted). Returns whether the index advanced."""
        old = self.node_commit.get(node, 0)
        if commit == old:
            return False
        if commit < old:
            self.fail("monotonic", f"node {node} commit went back from {old} to {commit}")
            self.node_commit[node] = commit
            return False
        self.node_commit[node] = commit
        committed = self.committed
        for i in range(old + 1, commit + 1):
            t = term_of(i)
            if t is None:
                continue
            ct = committed.get(i)
            if ct is None:
                committed[i] = t
            elif ct != t:
                self.fail(
                    "committed-lost",
                    f"node {node} committed index {i} with term {t}, "
                    f"but term {ct} was committed there before",
                )
        if commit > self.max_committed and commit in committed:
            self.max_committed = commit
        return True

    def check_commit_quorum(
        self,
        leader: int,
        index: int,
        term: int,
        voter_sets: Iterable[Collection[int]],
        has_entry: Callable[[int, int, int], bool],
    ) -> None:
        """``leader`` committed ``index``/``term``: it must be durable on a majority of
        each voter set (one set, or the two halves of a joint configuration).
        ``has_entry(node, index, term)`` asks a node's disk."""
        for voters in voter_sets:
            if not voters:
                continue
            holders = [v for v in voters if has_entry(v, index, term)]
            if 2 * len(holders) <= len(voters):
                self.fail(
                    "commit-quorum",
                    f"leader {leader} committed {index}/{term} but only "
                    f"{sorted(holders)} of voters {sorted(voters)} have it on disk",
                )

    def check_leader_log(self, node: int, term: int, term_of: Callable[[int], int | None]) -> None:
        """``node`` leads ``term``: it must hold the highest committed entry (and the
        few below it) if that entry's term is not newer than ``term``.

        ``term_of(i)`` gives the term of its entry ``i``: None if compacted (covered by
        a snapshot), -1 if the log does not reach ``i``.
        """
        k = self.max_committed
        if k == 0:
            return
        committed = self.committed
        kt = committed.get(k)
        if kt is None or kt > term:
            return
        for i in range(k, max(k - _COMPLETENESS_WINDOW, 0), -1):
            ct = committed.get(i)
            if ct is None:
                continue
            t = term_of(i)
            if t is None:
                return
            if t != ct:
                have = "nothing" if t < 0 else f"term {t}"
                self.fail(
                    "leader-completeness",
                    f"leader {node} of term {term} has {have} at index {i}, "
                    f"where term {ct} was committed",
                )

    # --- apply --------------------------------------------------------------------------

    def on_apply(self, node: int, index: int, term: int, data: bytes) -> None:
        """``node`` applied this entry to its state machine."""
        prev = self.node_applied.get(node, 0)
        if index != prev + 1:
            self.fail("monotonic", f"node {node} applied index {index} right after index {prev}")
        self.node_applied[node] = index
        ct = self.committed.get(index)
        if ct is not None and ct != term:
            self.fail(
                "state-machine-safety",
                f"node {node} applied index {index} of term {term}, "
                f"but term {ct} was committed there",
            )
        known = self.applied.get(index)
        if known is None:
            self.applied[index] = (term, data)
        elif known[0] != term or known[1] != data:
            self.fail(
                "state-machine-safety",
                f"node {node} applied {data!r} (term {term}) at index {index}, "
                f"another node applied {known[1]!r} (term {known[0]})",
            )

    def on_restore(self, node: int, index: int) -> None:
        """``node``'s state machine was replaced by a snapshot at ``index``."""
        prev = self.node_applied.get(node, 0)
        if index < prev:
            self.fail(
                "monotonic", f"node {node} restored a snapshot at {index} after applying {prev}"
            )
        self.node_applied[node] = index
