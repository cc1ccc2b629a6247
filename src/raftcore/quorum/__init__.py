"""Quorum decisions: which index is committed and who won a vote, for majority and
joint (two-majority) configurations."""

from raftcore.quorum.joint import JointConfig
from raftcore.quorum.majority import MajorityConfig, ids_str
from raftcore.quorum.quorum import MAX_INDEX, AckedIndexer, MapAckIndexer, VoteResult, index_str

__all__ = [
    "MAX_INDEX",
    "AckedIndexer",
    "JointConfig",
    "MajorityConfig",
    "MapAckIndexer",
    "VoteResult",
    "ids_str",
    "index_str",
]
