"""The storage an interaction node runs on: MemoryStorage, but snapshots come from history.

A node's MemoryStorage has its own notion of a snapshot, which moves with compaction and
with snapshots the node receives; neither is the state of the node's applied state
machine, which is what a snapshot sent to a peer must contain. The harness therefore
keeps a ``history`` of applied-state snapshots per node (HARNESS §2.5.4) and this wrapper
answers :meth:`snapshot` with its last element. Everything else goes to the
MemoryStorage unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from raftcore.raftpb.types import ConfState, Entry, HardState, Snapshot
from raftcore.storage import MemoryStorage

__all__ = ["SnapOverrideStorage"]


class SnapOverrideStorage:
    """A :class:`raftcore.storage.Storage` over a MemoryStorage with a history override.

    ``history`` is the node's own list (shared, not copied): the harness appends to it as
    the node applies entries, and :meth:`snapshot` always sees the latest element.
    """

    __slots__ = ("history", "mem")

    def __init__(self, mem: MemoryStorage, history: list[Snapshot]) -> None:
        self.mem = mem
        self.history = history

    # raftcore.storage.Storage ---------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.mem.initial_state()

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        return self.mem.entries(lo, hi, max_size)

    def term(self, i: int) -> int:
        return self.mem.term(i)

    def last_index(self) -> int:
        return self.mem.last_index()

    def first_index(self) -> int:
        return self.mem.first_index()

    def snapshot(self) -> Snapshot:
        # The object itself, as upstream hands out the stored pointer: history entries
        # are never mutated after they are recorded.
        return self.history[-1]

    # What the harness writes --------------------------------------------------------

    def set_hard_state(self, st: HardState) -> None:
        self.mem.set_hard_state(st)

    def apply_snapshot(self, snap: Snapshot) -> None:
        self.mem.apply_snapshot(snap)

    def compact(self, compact_index: int) -> None:
        self.mem.compact(compact_index)

    def append(self, entries: Sequence[Entry]) -> None:
        self.mem.append(entries)
