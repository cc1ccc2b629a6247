"""Storage-write acknowledgements at the Raft level (async storage writes).

etcd's raft_test.go has no dedicated tests for these at our commit: it covers them
through the interaction scripts async_storage_writes*.txt and the RawNode tests. These
check the state machine's side of that contract directly, following etcd's ``Step``:

* responses that vouch for local state (MsgAppResp, MsgVoteResp, MsgPreVoteResp) wait
  in ``msgs_after_append`` until that state is durable, the node's own included;
* MsgStorageAppendResp marks entries stable only if it is of the current term (a
  lower-term one may describe entries since replaced), while a snapshot it carries is
  applied whatever the term;
* MsgStorageApplyResp advances the applied index and releases uncommitted size.
"""

from __future__ import annotations

from raft_testutil import (
    advance_messages_after_append,
    new_test_memory_storage,
    new_test_raft,
    read_messages,
    step_or_send,
    take_messages_after_append,
    with_peers,
)
from raftcore.raft import Raft, StateType
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, payloads_size

MT = MessageType


def _leader(*peers: int) -> Raft:
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(*peers)))
    r.become_candidate()
    r.become_leader()
    return r


def _append_resp(r: Raft, term: int, index: int, log_term: int) -> Message:
    return Message(
        type=MT.MsgStorageAppendResp,
        from_=LOCAL_APPEND_THREAD,
        to=r.id,
        term=term,
        index=index,
        log_term=log_term,
    )


def test_responses_wait_for_durable_state() -> None:
    r = new_test_raft(2, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))

    # A vote response waits.
    r.step(Message(from_=1, to=2, term=1, type=MT.MsgVote))
    assert r.msgs == []
    assert [m.type for m in r.msgs_after_append] == [MT.MsgVoteResp]
    take_messages_after_append(r)

    # So does an append response (acceptance and rejection alike).
    r.step(
        Message(from_=1, to=2, term=1, type=MT.MsgApp, entries=[Entry(term=1, index=1)], commit=0)
    )
    r.step(Message(from_=1, to=2, term=1, type=MT.MsgApp, index=5, log_term=1))
    assert r.msgs == []
    resps = take_messages_after_append(r)
    assert [(m.type, m.reject) for m in resps] == [(MT.MsgAppResp, False), (MT.MsgAppResp, True)]

    # A heartbeat response does not: it vouches for nothing on disk.
    r.step(Message(from_=1, to=2, term=1, type=MT.MsgHeartbeat))
    assert [m.type for m in r.msgs] == [MT.MsgHeartbeatResp]
    assert r.msgs_after_append == []


def test_self_vote_and_self_ack_wait_for_durable_state() -> None:
    """A candidate's own vote and a leader's own ack of its entries count only once
    delivered from msgs_after_append."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    r.step(Message(from_=1, to=1, type=MT.MsgHup))
    # A single voter: the election is won only with its own (durable) vote.
    assert r.state == StateType.StateCandidate
    assert [(m.type, m.to) for m in r.msgs_after_append] == [(MT.MsgVoteResp, 1)]
    step_or_send(r, take_messages_after_append(r))
    assert r.state == StateType.StateLeader  # type: ignore[comparison-overlap]

    # The leader's empty entry commits only once the leader acks it to itself.
    assert r.raft_log.committed == 0
    assert [(m.type, m.to, m.index) for m in r.msgs_after_append] == [(MT.MsgAppResp, 1, 1)]
    advance_messages_after_append(r)
    assert r.raft_log.committed == 1


def test_storage_append_resp_marks_entries_stable() -> None:
    r = _leader(1, 2)
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(data=b"a")]))
    assert [e.index for e in r.raft_log.unstable.entries] == [1, 2]

    r.step(_append_resp(r, r.term, 1, r.term))
    assert [e.index for e in r.raft_log.unstable.entries] == [2]
    r.step(_append_resp(r, r.term, 2, r.term))
    assert r.raft_log.unstable.entries == []


def test_storage_append_resp_with_mismatched_term_is_ignored() -> None:
    """An ack naming an entry of another term (replaced since the write started)
    does not make the entry now at that index stable."""
    r = _leader(1, 2)
    r.step(_append_resp(r, r.term, 1, r.term + 1))
    assert [e.index for e in r.raft_log.unstable.entries] == [1]


def test_storage_append_resp_of_lower_term_is_ignored() -> None:
    """Entries appended under an older term may have been overwritten since, so a
    lower-term ack does not mark anything stable."""
    r = _leader(1, 2)
    old_term = r.term
    r.step(Message(from_=2, to=1, term=old_term + 1, type=MT.MsgHeartbeat))
    assert r.state == StateType.StateFollower
    r.step(_append_resp(r, old_term, 1, old_term))
    assert [e.index for e in r.raft_log.unstable.entries] == [1]


def test_storage_append_resp_applies_snapshot_whatever_the_term() -> None:
    """A snapshot holds committed state: its write acknowledgement counts even when it
    comes from an older term."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    snap = Snapshot(
        metadata=SnapshotMetadata(index=11, term=11, conf_state=ConfState(voters=[1, 2]))
    )
    r.step(Message(from_=2, to=1, term=11, type=MT.MsgSnap, snapshot=snap))
    assert r.raft_log.unstable.snapshot is not None
    read_messages(r)
    # The term moves on before the snapshot write is acknowledged.
    r.step(Message(from_=2, to=1, term=12, type=MT.MsgHeartbeat))
    assert r.term == 12

    ack = _append_resp(r, 11, 0, 0)
    ack.snapshot = snap
    r.step(ack)
    assert r.raft_log.unstable.snapshot is None
    assert r.raft_log.applied == 11


def test_storage_apply_resp_advances_applied_and_uncommitted_size() -> None:
    r = _leader(1)
    advance_messages_after_append(r)
    ents = [Entry(data=b"aaaa"), Entry(data=b"bb")]
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=ents))
    assert r.uncommitted_size == payloads_size(ents)
    advance_messages_after_append(r)
    assert r.raft_log.committed == 3

    applied = r.raft_log.next_committed_ents(True)
    r.step(
        Message(
            type=MT.MsgStorageApplyResp,
            from_=LOCAL_APPLY_THREAD,
            to=1,
            term=0,
            entries=applied,
        )
    )
    assert r.raft_log.applied == 3
    assert r.uncommitted_size == 0
