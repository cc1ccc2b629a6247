"""Restoring snapshots at the Raft level and sending them (from etcd's raft_test.go).

Each test is the port of the etcd test it is named after.
"""

from __future__ import annotations

from raft_testutil import (
    index_terms,
    new_network,
    new_test_learner_raft,
    new_test_memory_storage,
    new_test_raft,
    next_ents,
    read_messages,
    set_randomized_election_timeout,
    with_learners,
    with_peers,
)
from raftcore.raft import StateType
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

MT = MessageType
SF = StateType.StateFollower


def _snap(cs: ConfState, index: int = 11, term: int = 11) -> Snapshot:
    # index and term 11 are magic numbers, past everything the tests append
    return Snapshot(metadata=SnapshotMetadata(index=index, term=term, conf_state=cs))


def test_restore() -> None:
    s = _snap(ConfState(voters=[1, 2, 3]))

    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    assert sm.restore(s)

    assert sm.raft_log.last_index() == s.metadata.index
    assert sm.raft_log.term(s.metadata.index) == s.metadata.term
    assert sm.trk.voter_nodes() == s.metadata.conf_state.voters

    assert not sm.restore(s)
    # It does not campaign before the snapshot is applied.
    for _ in range(sm.randomized_election_timeout):
        sm.tick()
    assert sm.state == SF


def test_restore_with_learner() -> None:
    """A snapshot whose configuration has learners restores them as learners."""
    s = _snap(ConfState(voters=[1, 2], learners=[3]))

    storage = new_test_memory_storage(with_peers(1, 2), with_learners(3))
    sm = new_test_learner_raft(3, 8, 2, storage)
    assert sm.restore(s)

    assert sm.raft_log.last_index() == s.metadata.index
    assert sm.raft_log.term(s.metadata.index) == s.metadata.term

    assert len(sm.trk.voter_nodes()) == len(s.metadata.conf_state.voters)
    assert len(sm.trk.learner_nodes()) == len(s.metadata.conf_state.learners)

    for n in s.metadata.conf_state.voters:
        assert not sm.trk.progress[n].is_learner
    for n in s.metadata.conf_state.learners:
        assert sm.trk.progress[n].is_learner

    assert not sm.restore(s)


def test_restore_with_voters_outgoing() -> None:
    """An outgoing voter of a joint configuration can receive and apply a snapshot."""
    s = _snap(ConfState(voters=[2, 3, 4], voters_outgoing=[1, 2, 3]))

    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    assert sm.restore(s)

    assert sm.raft_log.last_index() == s.metadata.index
    assert sm.raft_log.term(s.metadata.index) == s.metadata.term

    assert sm.trk.voter_nodes() == [1, 2, 3, 4]

    assert not sm.restore(s)

    # It does not campaign before actually applying the data.
    for _ in range(sm.randomized_election_timeout):
        sm.tick()
    assert sm.state == SF


def test_restore_voter_to_learner() -> None:
    """A voter accepts a snapshot that makes it a learner. Conf changes cannot demote
    a voter directly, but a snapshot may compress several changes (removed, then
    re-added as learner); refusing it would cut the node off from the log forever."""
    s = _snap(ConfState(voters=[1, 2], learners=[3]))

    sm = new_test_raft(3, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))

    assert not sm.is_learner
    assert sm.restore(s)


def test_restore_learner_promotion() -> None:
    """A learner becomes a voter by restoring a snapshot that says so."""
    s = _snap(ConfState(voters=[1, 2, 3]))

    storage = new_test_memory_storage(with_peers(1, 2), with_learners(3))
    sm = new_test_learner_raft(3, 10, 1, storage)

    assert sm.is_learner
    assert sm.restore(s)
    assert not sm.is_learner


def test_learner_receive_snapshot() -> None:
    """A learner can receive a snapshot from the leader."""
    # Restore the state machine from a snapshot so it has a compacted log and a
    # snapshot.
    s = _snap(ConfState(voters=[1], learners=[2]))

    store = new_test_memory_storage(with_peers(1), with_learners(2))
    n1 = new_test_learner_raft(1, 10, 1, store)
    n2 = new_test_learner_raft(2, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))

    n1.restore(s)
    snap = n1.raft_log.next_unstable_snapshot()
    assert snap is not None
    store.apply_snapshot(snap)
    n1.applied_snap(snap)

    nt = new_network(n1, n2)

    set_randomized_election_timeout(n1, n1.election_timeout)
    for _ in range(n1.election_timeout):
        n1.tick()

    nt.send(Message(from_=1, to=1, type=MT.MsgBeat))

    assert n2.raft_log.committed == n1.raft_log.committed


def test_restore_ignore_snapshot() -> None:
    """A snapshot at or below the commit index is ignored; one whose last entry we
    already hold only fast-forwards the commit index."""
    previous_ents = index_terms(1, 1, 1, 1)
    commit = 1
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    sm.raft_log.append(previous_ents)
    sm.raft_log.commit_to(commit)

    s = _snap(ConfState(voters=[1, 2]), index=commit, term=1)

    # ignore snapshot
    assert not sm.restore(s)
    assert sm.raft_log.committed == commit

    # ignore snapshot and fast forward commit
    s.metadata.index = commit + 1
    assert not sm.restore(s)
    assert sm.raft_log.committed == commit + 1


def test_provide_snap() -> None:
    """A follower whose next entries are compacted away gets a snapshot."""
    s = _snap(ConfState(voters=[1, 2]))
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    sm.restore(s)

    sm.become_candidate()
    sm.become_leader()

    # force node 2's next so that it needs a snapshot
    sm.trk.progress[2].next = sm.raft_log.first_index()
    sm.step(
        Message(from_=2, to=1, type=MT.MsgAppResp, index=sm.trk.progress[2].next - 1, reject=True)
    )

    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgSnap


def test_ignore_providing_snap() -> None:
    """No snapshot is sent to a follower that has not been recently active."""
    s = _snap(ConfState(voters=[1, 2]))
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    sm.restore(s)

    sm.become_candidate()
    sm.become_leader()

    # Force node 2's next so that it needs a snapshot, and make it inactive: node 1
    # must not send it the snapshot.
    sm.trk.progress[2].next = sm.raft_log.first_index() - 1
    sm.trk.progress[2].recent_active = False

    sm.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(data=b"somedata")]))

    assert read_messages(sm) == []


def test_restore_from_snap_msg() -> None:
    """A MsgSnap of a higher term makes its sender the known leader."""
    s = _snap(ConfState(voters=[1, 2]))
    m = Message(type=MT.MsgSnap, from_=1, term=2, snapshot=s)

    sm = new_test_raft(2, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    sm.step(m)

    assert sm.lead == 1


def test_slow_node_restore() -> None:
    """A follower that fell behind a compaction catches up through a snapshot and
    then commits with the others."""
    nt = new_network(None, None, None)
    nt.send(Message(from_=1, to=1, type=MT.MsgHup))

    nt.isolate(3)
    for _ in range(101):
        nt.send(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry()]))
    lead = nt.raft(1)
    next_ents(lead, nt.storage[1])
    nt.storage[1].create_snapshot(
        lead.raft_log.applied, ConfState(voters=lead.trk.voter_nodes()), b""
    )
    nt.storage[1].compact(lead.raft_log.applied)

    nt.recover()
    # Heartbeats make the leader see everyone active; node 3 counts as active only
    # once node 1 hears back from it.
    while True:
        nt.send(Message(from_=1, to=1, type=MT.MsgBeat))
        if lead.trk.progress[3].recent_active:
            break

    # trigger a snapshot
    nt.send(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry()]))

    follower = nt.raft(3)

    # trigger a commit
    nt.send(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry()]))
    assert follower.raft_log.committed == lead.raft_log.committed
