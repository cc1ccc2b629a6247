"""Snapshots of a raft node's state for the application (etcd's ``status.go``).

:class:`BasicStatus` is cheap (a few integers); :class:`Status` adds copies of the
membership configuration and, on a leader, of every follower's progress, so the
caller can keep it while the node moves on.

:class:`SoftState` lives here rather than in :mod:`raftcore.rawnode` (which re-exports
it) because :class:`BasicStatus` embeds it and :mod:`raftcore.rawnode` builds on this
module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from raftcore.raft import StateType
from raftcore.raftpb.types import HardState
from raftcore.tracker import Progress, TrackerConfig

if TYPE_CHECKING:
    from raftcore.raft import Raft

__all__ = [
    "BasicStatus",
    "SoftState",
    "Status",
    "get_basic_status",
    "get_progress_copy",
    "get_status",
]

_StateLeader = StateType.StateLeader


@dataclass(slots=True)
class SoftState:
    """Volatile state worth showing the application: the known leader and the role.

    It is not persisted; a Ready carries it only when it changed.
    """

    lead: int
    raft_state: StateType


@dataclass(slots=True)
class BasicStatus:
    """A node's id, hard state, soft state, applied index and leadership transferee.

    Go embeds the hard and soft state; their fields are also reachable directly here
    (``status.term``, ``status.lead``, ...) for the same convenience.
    """

    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int = 0
    lead_transferee: int = 0

    @property
    def term(self) -> int:
        return self.hard_state.term

    @property
    def vote(self) -> int:
        return self.hard_state.vote

    @property
    def commit(self) -> int:
        return self.hard_state.commit

    @property
    def lead(self) -> int:
        return self.soft_state.lead

    @property
    def raft_state(self) -> StateType:
        return self.soft_state.raft_state


@dataclass(slots=True)
class Status(BasicStatus):
    """:class:`BasicStatus` plus the configuration and (leader only) the progress map.

    ``progress`` is empty on a node that is not the leader (etcd leaves it nil). Its
    ``str()`` is etcd's JSON form (:meth:`to_json`).
    """

    config: TrackerConfig = field(default_factory=TrackerConfig)
    progress: dict[int, Progress] = field(default_factory=dict)

    def to_json(self) -> str:
        """etcd's ``Status.MarshalJSON``: ids in hex, progress entries by ascending id.

        (etcd emits the progress entries in Go's random map order; sorting them makes
        the text deterministic without changing what it says.)
        """
        hs = self.hard_state
        parts = [
            f'{{"id":"{self.id:x}","term":{hs.term},"vote":"{hs.vote:x}",'
            f'"commit":{hs.commit},"lead":"{self.soft_state.lead:x}",'
            f'"raftState":"{self.soft_state.raft_state.name}","applied":{self.applied},'
            '"progress":{'
        ]
        prs = self.progress
        parts.append(
            ",".join(
                f'"{i:x}":{{"match":{prs[i].match},"next":{prs[i].next},'
                f'"state":"{prs[i].state.name}"}}'
                for i in sorted(prs)
            )
        )
        parts.append(f'}},"leadtransferee":"{self.lead_transferee:x}"}}')
        return "".join(parts)

    def __str__(self) -> str:
        return self.to_json()


def get_progress_copy(r: Raft) -> dict[int, Progress]:
    """A copy of the leader's progress map (each progress with its own in-flight window)."""
    prs = r.trk.progress
    return {i: prs[i].clone() for i in sorted(prs)}


def get_basic_status(r: Raft) -> BasicStatus:
    """The node's :class:`BasicStatus`; allocates nothing beyond the result."""
    return BasicStatus(
        r.id,
        HardState(r.term, r.vote, r.raft_log.committed),
        SoftState(r.lead, r.state),
        r.raft_log.applied,
        r.lead_transferee,
    )


def get_status(r: Raft) -> Status:
    """A full :class:`Status`; the progress map is copied only on a leader."""
    s = Status(
        r.id,
        HardState(r.term, r.vote, r.raft_log.committed),
        SoftState(r.lead, r.state),
        r.raft_log.applied,
        r.lead_transferee,
        r.trk.config.clone(),
    )
    if r.state == _StateLeader:
        s.progress = get_progress_copy(r)
    return s
