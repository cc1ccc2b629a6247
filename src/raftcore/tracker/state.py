"""The replication state a leader keeps for each follower."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["StateType"]


class StateType(IntEnum):
    """How the leader currently replicates to a follower.

    * ``StateProbe``: the follower's last index is unknown; the leader sends at most one
      append per heartbeat interval until it learns where the logs match.
    * ``StateReplicate``: steady state; appends are streamed optimistically.
    * ``StateSnapshot``: the follower needs entries the leader no longer has and waits
      for a snapshot; nothing else is sent meanwhile.
    """

    StateProbe = 0
    StateReplicate = 1
    StateSnapshot = 2

    # Python 3.11 prints IntEnum members as numbers; etcd's outputs print the names.
    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)
