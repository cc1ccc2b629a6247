"""The simulated network: one FIFO queue per directed link, plus blocked links.

A message waits in its link's queue until a scheduler step delivers, drops or
duplicates it, so delay is simply time spent waiting and reordering across links is
the scheduler's choice of link. Reordering within a link is a step that takes a
message other than the oldest. Partitions block directed links; a blocked message is
dropped when a step picks it (it was "lost on the wire"), which is when the sender's
transport would notice and report the peer unreachable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from raftcore.raftpb.types import Message

__all__ = ["Network"]

Link = tuple[int, int]


class Network:
    __slots__ = ("blocked", "count", "nonempty", "queues")

    def __init__(self) -> None:
        self.queues: dict[Link, deque[Message]] = {}
        # Links with queued messages, in the (deterministic) order they became so.
        self.nonempty: dict[Link, None] = {}
        self.blocked: set[Link] = set()
        # Messages queued on all links.
        self.count = 0

    def send(self, m: Message) -> None:
        key = (m.from_, m.to)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = deque()
        q.append(m)
        self.count += 1
        self.nonempty[key] = None

    def pending(self) -> int:
        return self.count

    def take(self, src: int, dst: int, k: int) -> Message | None:
        """Remove and return the ``k``-th oldest message on ``src -> dst`` (the
        youngest if fewer are queued), or None if the link is empty."""
        key = (src, dst)
        q = self.queues.get(key)
        if not q:
            return None
        self.count -= 1
        if k <= 0:
            m = q.popleft()
        else:
            if k >= len(q):
                k = len(q) - 1
            m = q[k]
            del q[k]
        if not q:
            del self.nonempty[key]
        return m

    def peek(self, src: int, dst: int, k: int) -> Message | None:
        q = self.queues.get((src, dst))
        if not q:
            return None
        return q[min(max(k, 0), len(q) - 1)]

    def is_blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self.blocked

    def partition(self, side: Iterable[int], others: Iterable[int]) -> None:
        """Cut every link between ``side`` and ``others``, both ways."""
        side = list(side)
        others = [o for o in others if o not in side]
        for a in side:
            for b in others:
                self.blocked.add((a, b))
                self.blocked.add((b, a))

    def block(self, src: int, dst: int) -> None:
        """Cut ``src -> dst`` only (a one-way partition)."""
        self.blocked.add((src, dst))

    def heal(self) -> None:
        self.blocked.clear()

    def drain_order(self) -> list[Link]:
        """Non-empty links in a fixed order, for the deterministic heal phase."""
        return sorted(self.nonempty)
