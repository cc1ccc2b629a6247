"""Flow control of MsgApp towards a follower (etcd's raft_flow_control_test.go).

In StateReplicate the leader sends optimistically until the in-flight window is full;
then the follower's progress is paused until acks free slots, or a heartbeat response
lets one (empty) probe through.
"""

from __future__ import annotations

from raft_testutil import new_test_memory_storage, new_test_raft, read_messages, with_peers
from raftcore.raft import Raft
from raftcore.raftpb.types import Entry, Message, MessageType

MT = MessageType


def _leader_with_full_window() -> Raft:
    r = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(1, 2)))
    r.become_candidate()
    r.become_leader()
    # force the progress into replicate state
    r.trk.progress[2].become_replicate()
    return r


def _propose(r: Raft) -> None:
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(data=b"somedata")]))


def test_msg_app_flow_control_full() -> None:
    """Once the inflight window is full, the follower's progress is paused (1) and
    further proposals send nothing to it (2)."""
    r = _leader_with_full_window()
    pr2 = r.trk.progress[2]
    # fill in the inflights window
    for _ in range(r.trk.max_inflight):
        _propose(r)
        ms = read_messages(r)
        assert len(ms) == 1
        assert ms[0].type == MT.MsgApp

    # ensure 1
    assert pr2.is_paused()

    # ensure 2
    for _ in range(10):
        _propose(r)
        assert read_messages(r) == []


def test_msg_app_flow_control_move_forward() -> None:
    """An ack frees window slots up to its index: exactly one more MsgApp can go, and
    stale acks (lower indexes) free nothing."""
    r = _leader_with_full_window()
    pr2 = r.trk.progress[2]
    for _ in range(r.trk.max_inflight):
        _propose(r)
        read_messages(r)

    # 1 is the leader's empty entry, 2 the first proposal: start from 2.
    for tt in range(2, r.trk.max_inflight):
        # move the window forward
        r.step(Message(from_=2, to=1, type=MT.MsgAppResp, index=tt))
        read_messages(r)

        # fill the window again
        _propose(r)
        ms = read_messages(r)
        assert len(ms) == 1
        assert ms[0].type == MT.MsgApp

        # ensure 1
        assert pr2.is_paused()

        # ensure 2
        for i in range(tt):
            r.step(Message(from_=2, to=1, type=MT.MsgAppResp, index=i))
            assert pr2.is_paused()


def test_msg_app_flow_control_recv_heartbeat() -> None:
    """With a full window, each heartbeat response unpauses the progress just long
    enough for one empty MsgApp; without heartbeats nothing more is sent."""
    r = _leader_with_full_window()
    pr2 = r.trk.progress[2]
    for _ in range(r.trk.max_inflight):
        _propose(r)
        read_messages(r)

    for tt in range(1, 5):
        # receive tt heartbeat responses
        for _ in range(tt):
            assert pr2.is_paused()
            # Unpauses the progress, sends an empty MsgApp, and pauses it again.
            r.step(Message(from_=2, to=1, type=MT.MsgHeartbeatResp))
            ms = read_messages(r)
            assert len(ms) == 1
            assert ms[0].type == MT.MsgApp
            assert len(ms[0].entries) == 0

        # No more appends are sent if there are no heartbeats.
        for _ in range(10):
            assert pr2.is_paused()
            _propose(r)
            assert read_messages(r) == []

        # clear all pending messages
        r.step(Message(from_=2, to=1, type=MT.MsgHeartbeatResp))
        read_messages(r)
