"""The wire types of etcd's ``raft.proto`` as slotted Python classes.

Field names are etcd's, snake_cased (``Message.from_`` because ``from`` is a keyword).
Enum members keep etcd's names (``MessageType.MsgApp``) because those are the names the
conformance scripts print and every etcd user already knows.

Presence: etcd's proto2 messages track whether a field was set. raftcore does not carry
that bit; a field at its zero value is treated as absent by the codec, which is what
every proto2 and proto3 decoder reads back identically. Where etcd's behaviour depends
on presence (the encoded size of an entry), the codec's size functions follow etcd's
choices for the entries raft itself builds; see :mod:`raftcore.raftpb.codec`.

Repeated fields default to an empty tuple so that building a message allocates nothing
it does not need; code that fills them assigns a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "ConfChange",
    "ConfChangeSingle",
    "ConfChangeTransition",
    "ConfChangeType",
    "ConfChangeV2",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "Message",
    "MessageType",
    "Snapshot",
    "SnapshotMetadata",
]


class _NamedIntEnum(IntEnum):
    """An IntEnum that prints its name, like the Go enum's String(): log lines and
    error messages say ``MsgApp``, not ``3``. ``int()`` and ``%d`` still give the
    number."""

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return self.name if not spec else int.__format__(int(self), spec)


class EntryType(_NamedIntEnum):
    EntryNormal = 0
    EntryConfChange = 1
    EntryConfChangeV2 = 2


class MessageType(_NamedIntEnum):
    MsgHup = 0
    MsgBeat = 1
    MsgProp = 2
    MsgApp = 3
    MsgAppResp = 4
    MsgVote = 5
    MsgVoteResp = 6
    MsgSnap = 7
    MsgHeartbeat = 8
    MsgHeartbeatResp = 9
    MsgUnreachable = 10
    MsgSnapStatus = 11
    MsgCheckQuorum = 12
    MsgTransferLeader = 13
    MsgTimeoutNow = 14
    MsgReadIndex = 15
    MsgReadIndexResp = 16
    MsgPreVote = 17
    MsgPreVoteResp = 18
    MsgStorageAppend = 19
    MsgStorageAppendResp = 20
    MsgStorageApply = 21
    MsgStorageApplyResp = 22
    MsgForgetLeader = 23


class ConfChangeTransition(IntEnum):
    ConfChangeTransitionAuto = 0
    ConfChangeTransitionJointImplicit = 1
    ConfChangeTransitionJointExplicit = 2


class ConfChangeType(IntEnum):
    ConfChangeAddNode = 0
    ConfChangeRemoveNode = 1
    ConfChangeUpdateNode = 2
    ConfChangeAddLearnerNode = 3


@dataclass(slots=True)
class Entry:
    term: int = 0
    index: int = 0
    type: EntryType = EntryType.EntryNormal
    data: bytes = b""


@dataclass(slots=True)
class ConfState:
    voters: list[int] = field(default_factory=list)
    learners: list[int] = field(default_factory=list)
    voters_outgoing: list[int] = field(default_factory=list)
    learners_next: list[int] = field(default_factory=list)
    auto_leave: bool = False

    def equivalent(self, other: ConfState) -> bool:
        """True if both describe the same configuration, ignoring member order."""
        return (
            sorted(self.voters) == sorted(other.voters)
            and sorted(self.learners) == sorted(other.learners)
            and sorted(self.voters_outgoing) == sorted(other.voters_outgoing)
            and sorted(self.learners_next) == sorted(other.learners_next)
            and self.auto_leave == other.auto_leave
        )


@dataclass(slots=True)
class SnapshotMetadata:
    conf_state: ConfState = field(default_factory=ConfState)
    index: int = 0
    term: int = 0


@dataclass(slots=True)
class Snapshot:
    data: bytes = b""
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)

    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(slots=True)
class HardState:
    term: int = 0
    vote: int = 0
    commit: int = 0

    def is_empty(self) -> bool:
        return self.term == 0 and self.vote == 0 and self.commit == 0


@dataclass(slots=True)
class Message:
    type: MessageType = MessageType.MsgHup
    to: int = 0
    from_: int = 0
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: Sequence[Entry] = ()
    commit: int = 0
    vote: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    responses: Sequence[Message] = ()


@dataclass(slots=True)
class ConfChangeSingle:
    type: ConfChangeType = ConfChangeType.ConfChangeAddNode
    node_id: int = 0


@dataclass(slots=True)
class ConfChange:
    """A single membership change, the original (V1) form."""

    type: ConfChangeType = ConfChangeType.ConfChangeAddNode
    node_id: int = 0
    context: bytes = b""
    id: int = 0

    def as_v2(self) -> ConfChangeV2:
        return ConfChangeV2(
            changes=[ConfChangeSingle(self.type, self.node_id)], context=self.context
        )

    def as_v1(self) -> ConfChange | None:
        return self


@dataclass(slots=True)
class ConfChangeV2:
    """A set of membership changes applied atomically, possibly via joint consensus."""

    transition: ConfChangeTransition = ConfChangeTransition.ConfChangeTransitionAuto
    changes: list[ConfChangeSingle] = field(default_factory=list)
    context: bytes = b""

    def as_v2(self) -> ConfChangeV2:
        return self

    def as_v1(self) -> ConfChange | None:
        return None

    def enter_joint(self) -> tuple[bool, bool]:
        """Return ``(auto_leave, use_joint)``: whether this change needs joint consensus.

        Joint consensus is used for any explicit transition or for more than one change;
        only the explicit transition leaves the joint state to the application.
        """
        if (
            self.transition != ConfChangeTransition.ConfChangeTransitionAuto
            or len(self.changes) > 1
        ):
            auto_leave = self.transition != ConfChangeTransition.ConfChangeTransitionJointExplicit
            return auto_leave, True
        return False, False

    def leave_joint(self) -> bool:
        """True if this is the (empty) change that leaves a joint configuration."""
        return (
            self.transition == ConfChangeTransition.ConfChangeTransitionAuto
            and len(self.changes) == 0
        )
