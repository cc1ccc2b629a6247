"""Small helpers shared by the log layer and the raft state machine.

Sizes: raft limits batches of entries by their encoded (protobuf) size and limits
in-flight and uncommitted data by payload size. Both are plain ``int`` here; Go keeps
them in distinct unsigned types, which only matters for wrap-around, and the callers
make wrap-around explicit where etcd relies on it.

Message predicates classify :class:`MessageType` values the same way etcd does, and
the two ``LOCAL_*_THREAD`` ids address the local storage goroutines of etcd's
asynchronous-storage mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import TypeVar

from raftcore.errors import RaftPanic
from raftcore.logger import Logger
from raftcore.raftpb.codec import entry_size
from raftcore.raftpb.types import ConfState, Entry, MessageType, Snapshot, SnapshotMetadata

__all__ = [
    "LOCAL_APPEND_THREAD",
    "LOCAL_APPLY_THREAD",
    "NONE",
    "NO_LIMIT",
    "assert_conf_states_equivalent",
    "clone_conf_state",
    "clone_snapshot",
    "ents_size",
    "ents_size_upper_bound",
    "is_local_msg",
    "is_local_msg_target",
    "is_response_msg",
    "limit_size",
    "payload_size",
    "payloads_size",
    "vote_resp_msg_type",
]

#: Go's ``math.MaxUint64``: "no size limit". Any real batch is far smaller, which lets
#: the size helpers skip measuring entries when handed this value.
NO_LIMIT = 2**64 - 1

#: The placeholder node id meaning "no node" (no leader, no vote).
NONE = 0

#: Target id of messages addressed to the local append (log persistence) thread.
LOCAL_APPEND_THREAD = 2**64 - 1

#: Target id of messages addressed to the local apply (state machine) thread.
LOCAL_APPLY_THREAD = 2**64 - 2

_LOCAL_MSGS = frozenset(
    {
        MessageType.MsgHup,
        MessageType.MsgBeat,
        MessageType.MsgUnreachable,
        MessageType.MsgSnapStatus,
        MessageType.MsgCheckQuorum,
        MessageType.MsgStorageAppend,
        MessageType.MsgStorageAppendResp,
        MessageType.MsgStorageApply,
        MessageType.MsgStorageApplyResp,
    }
)

_RESPONSE_MSGS = frozenset(
    {
        MessageType.MsgAppResp,
        MessageType.MsgVoteResp,
        MessageType.MsgHeartbeatResp,
        MessageType.MsgUnreachable,
        MessageType.MsgReadIndexResp,
        MessageType.MsgPreVoteResp,
        MessageType.MsgStorageAppendResp,
        MessageType.MsgStorageApplyResp,
    }
)


def is_local_msg(msgt: int) -> bool:
    """True for message types that never leave the node (ticks, local storage, ...)."""
    return msgt in _LOCAL_MSGS


def is_response_msg(msgt: int) -> bool:
    """True for message types that answer another message."""
    return msgt in _RESPONSE_MSGS


def is_local_msg_target(id: int) -> bool:
    """True if ``id`` names one of the local storage threads rather than a peer."""
    return id in (LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD)


def vote_resp_msg_type(msgt: MessageType) -> MessageType:
    """The response type for a (pre-)vote request type; anything else is a bug."""
    if msgt == MessageType.MsgVote:
        return MessageType.MsgVoteResp
    if msgt == MessageType.MsgPreVote:
        return MessageType.MsgPreVoteResp
    name = msgt.name if isinstance(msgt, MessageType) else str(int(msgt))
    raise RaftPanic(f"not a vote message: {name}")


_DATA = attrgetter("data")


def ents_size(ents: Sequence[Entry]) -> int:
    """Total encoded size of ``ents``."""
    return sum(map(entry_size, ents))


#: Most bytes an entry's encoding can take besides its payload: four one-byte keys,
#: three varints of at most 10 bytes (type, term, index; uint64) and the payload's
#: length varint (at most 10 bytes).
_MAX_ENTRY_OVERHEAD = 4 + 10 + 10 + 10 + 10


def ents_size_upper_bound(ents: Sequence[Entry]) -> int:
    """A cheap bound on :func:`ents_size`: never below it, computed without encoding.

    Lets the size-limiting paths skip measuring every entry when a batch clearly fits,
    which is the common case with a generous limit.
    """
    return _MAX_ENTRY_OVERHEAD * len(ents) + sum(map(len, map(_DATA, ents)))


_S = TypeVar("_S", bound=Sequence[Entry])


def limit_size(ents: _S, max_size: int) -> _S:
    """The longest prefix of ``ents`` whose encoded size stays within ``max_size``.

    The first entry is always kept, even when it alone is larger than the limit, so
    that progress is possible with any limit. When everything fits, ``ents`` itself
    is returned (no copy); otherwise a slice of it.
    """
    n = len(ents)
    if n <= 1 or max_size >= NO_LIMIT or ents_size_upper_bound(ents) <= max_size:
        # Nothing to cut, or everything clearly fits: skip measuring.
        return ents
    size = entry_size(ents[0])
    for limit in range(1, n):
        size += entry_size(ents[limit])
        if size > max_size:
            return ents[:limit]  # type: ignore[return-value]
    return ents


def payload_size(e: Entry) -> int:
    """Size of an entry's payload; an entry without data counts as zero."""
    return len(e.data)


def payloads_size(ents: Sequence[Entry]) -> int:
    """Total payload size of ``ents``."""
    if len(ents) == 1:
        # Messages and proposals of one entry are the most frequent.
        return len(ents[0].data)
    return sum(map(len, map(_DATA, ents)))


def clone_conf_state(cs: ConfState) -> ConfState:
    """A copy of ``cs`` that shares no mutable list with it."""
    return ConfState(
        voters=list(cs.voters),
        learners=list(cs.learners),
        voters_outgoing=list(cs.voters_outgoing),
        learners_next=list(cs.learners_next),
        auto_leave=cs.auto_leave,
    )


def clone_snapshot(s: Snapshot) -> Snapshot:
    """A copy of ``s`` that shares nothing mutable with it (etcd's ``proto.Clone``).

    Snapshots cross ownership boundaries (storage, unstable log, Ready) where etcd
    clones them; the data bytes are immutable and therefore shared.
    """
    m = s.metadata
    return Snapshot(
        data=s.data,
        metadata=SnapshotMetadata(
            conf_state=clone_conf_state(m.conf_state), index=m.index, term=m.term
        ),
    )


def _sorted_conf_state(cs: ConfState) -> ConfState:
    return ConfState(
        voters=sorted(cs.voters),
        learners=sorted(cs.learners),
        voters_outgoing=sorted(cs.voters_outgoing),
        learners_next=sorted(cs.learners_next),
        auto_leave=cs.auto_leave,
    )


def assert_conf_states_equivalent(logger: Logger, cs1: ConfState, cs2: ConfState) -> None:
    """Panic through ``logger`` unless both describe the same configuration.

    etcd prints both states with Go's ``%+#v``, which Python cannot reproduce; the
    text here carries the same information in dataclass form.
    """
    if cs1.equivalent(cs2):
        return
    logger.panic(
        "ConfStates not equivalent after sorting:\n%r\n%r\nInputs were:\n%r\n%r",
        _sorted_conf_state(cs1),
        _sorted_conf_state(cs2),
        cs1,
        cs2,
    )
