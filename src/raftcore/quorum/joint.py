"""Joint quorums: two majority configs that must both agree (joint consensus)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from raftcore.quorum.majority import MajorityConfig
from raftcore.quorum.quorum import AckedIndexer, VoteResult

__all__ = ["JointConfig"]


@dataclass(slots=True)
class JointConfig:
    """The incoming and outgoing majority configs (etcd's ``Voters[0]`` / ``Voters[1]``).

    Outside of a joint configuration the outgoing half is empty, and an empty majority
    config is neutral in both commit and vote decisions, so a non-joint config behaves
    exactly like its incoming half.
    """

    incoming: MajorityConfig = field(default_factory=MajorityConfig)
    outgoing: MajorityConfig = field(default_factory=MajorityConfig)

    def __str__(self) -> str:
        if self.outgoing:
            return f"{self.incoming}&&{self.outgoing}"
        return str(self.incoming)

    def ids(self) -> set[int]:
        """Every voter of either half (a new set)."""
        return self.incoming | self.outgoing

    def describe(self, l: AckedIndexer) -> str:  # noqa: E741 - etcd's name for the lookup
        return MajorityConfig(self.ids()).describe(l)

    def committed_index(self, l: AckedIndexer) -> int:  # noqa: E741
        """The largest index committed in both halves."""
        idx0 = self.incoming.committed_index(l)
        if not self.outgoing:
            return idx0
        idx1 = self.outgoing.committed_index(l)
        return idx0 if idx0 < idx1 else idx1

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        """Won only if both halves won; lost if either lost; pending otherwise."""
        r1 = self.incoming.vote_result(votes)
        r2 = self.outgoing.vote_result(votes)
        if r1 == r2:
            return r1
        if r1 == VoteResult.VoteLost or r2 == VoteResult.VoteLost:
            return VoteResult.VoteLost
        return VoteResult.VotePending
