"""The vocabulary shared by the quorum types: vote outcomes and acked-index lookups."""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

__all__ = ["MAX_INDEX", "AckedIndexer", "MapAckIndexer", "VoteResult", "index_str"]

# What an empty majority config reports as its committed index (Go's math.MaxUint64):
# it lets a joint config whose outgoing half is empty behave like its incoming half,
# because the joint result is the minimum of the two.
MAX_INDEX = (1 << 64) - 1


def index_str(idx: int) -> str:
    """A log index as etcd's ``quorum.Index`` prints it: ``∞`` stands for :data:`MAX_INDEX`."""
    return "∞" if idx == MAX_INDEX else str(idx)


class AckedIndexer(Protocol):
    """Looks up the log index a voter has acknowledged (``None`` when nothing is known)."""

    def acked_index(self, voter_id: int) -> int | None: ...


class MapAckIndexer(dict[int, int]):
    """An :class:`AckedIndexer` over a plain ``{id: index}`` mapping (tests, runners)."""

    __slots__ = ()

    def acked_index(self, voter_id: int) -> int | None:
        return self.get(voter_id)


class VoteResult(IntEnum):
    """The outcome of a vote; the numbering is etcd's (it starts at 1)."""

    VotePending = 1  # neither a "yes" nor a "no" quorum has been reached yet
    VoteLost = 2  # a quorum voted "no"
    VoteWon = 3  # a quorum voted "yes"

    # Python 3.11 prints IntEnum members as numbers; etcd's outputs print the names.
    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)
