"""A leader sending snapshots to a follower (etcd's raft_snap_test.go).

While a snapshot is pending the follower's replication is paused; MsgSnapStatus
(success or failure) or an ack at or past the snapshot's index resumes it.
"""

from __future__ import annotations

from raft_testutil import new_test_memory_storage, new_test_raft, read_messages, with_peers
from raftcore.raft import Raft
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.tracker import StateType as ProgressStateType

MT = MessageType


def _testing_snap() -> Snapshot:
    # index and term 11: magic numbers, past everything the tests append
    return Snapshot(
        metadata=SnapshotMetadata(index=11, term=11, conf_state=ConfState(voters=[1, 2]))
    )


def _leader_from_snapshot(*peers: int) -> Raft:
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(*peers)))
    sm.restore(_testing_snap())
    sm.become_candidate()
    sm.become_leader()
    return sm


def test_sending_snapshot_set_pending_snapshot() -> None:
    """A follower rejecting an append whose predecessor is compacted gets a snapshot,
    and the leader records it as pending."""
    sm = _leader_from_snapshot(1)

    # force node 2's next so that it needs a snapshot
    sm.trk.progress[2].next = sm.raft_log.first_index()

    sm.step(
        Message(from_=2, to=1, type=MT.MsgAppResp, index=sm.trk.progress[2].next - 1, reject=True)
    )
    assert sm.trk.progress[2].pending_snapshot == 11


def test_pending_snapshot_pause_replication() -> None:
    sm = _leader_from_snapshot(1, 2)
    sm.trk.progress[2].become_snapshot(11)

    sm.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(data=b"somedata")]))
    assert read_messages(sm) == []


def test_snapshot_failure() -> None:
    """A failed snapshot is forgotten: probing resumes from the old next, after a
    pause."""
    sm = _leader_from_snapshot(1, 2)
    sm.trk.progress[2].next = 1
    sm.trk.progress[2].become_snapshot(11)

    sm.step(Message(from_=2, to=1, type=MT.MsgSnapStatus, reject=True))
    assert sm.trk.progress[2].pending_snapshot == 0
    assert sm.trk.progress[2].next == 1
    assert sm.trk.progress[2].msg_app_flow_paused


def test_snapshot_succeed() -> None:
    """A delivered snapshot moves probing past it, paused until the follower acks."""
    sm = _leader_from_snapshot(1, 2)
    sm.trk.progress[2].next = 1
    sm.trk.progress[2].become_snapshot(11)

    sm.step(Message(from_=2, to=1, type=MT.MsgSnapStatus, reject=False))
    assert sm.trk.progress[2].pending_snapshot == 0
    assert sm.trk.progress[2].next == 12
    assert sm.trk.progress[2].msg_app_flow_paused


def test_snapshot_abort() -> None:
    """An ack at or past the pending snapshot's index aborts the snapshot."""
    sm = _leader_from_snapshot(1, 2)
    sm.trk.progress[2].next = 1
    sm.trk.progress[2].become_snapshot(11)

    sm.step(Message(from_=2, to=1, type=MT.MsgAppResp, index=11))
    assert sm.trk.progress[2].pending_snapshot == 0
    # The follower entered StateReplicate and the leader sent it the empty entry it
    # appended at index 12 on becoming leader, optimistically: hence 13, not 12.
    assert sm.trk.progress[2].state == ProgressStateType.StateReplicate
    assert sm.trk.progress[2].next == 13
    assert sm.trk.progress[2].inflights.count() == 1
