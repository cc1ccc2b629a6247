"""Membership changes at the Raft level: proposing and applying conf changes, joint
configurations, learners, and stepping down on removal (from etcd's raft_test.go).

Tests named after an etcd test are its port. The joint-configuration and
step-down-on-removal tests at the end have no counterpart in raft_test.go at our
commit (etcd exercises them through the interaction scripts confchange_v2_* and
confchange_v1_remove_leader{,_stepdown}); they check the same behaviour directly on
the state machine.
"""

from __future__ import annotations

import pytest

from raft_testutil import (
    add_node,
    advance_messages_after_append,
    new_network,
    new_test_learner_raft,
    new_test_memory_storage,
    new_test_raft,
    next_ents,
    read_messages,
    state_of,
    with_learners,
    with_peers,
)
from raftcore.errors import ProposalDroppedError, RaftPanic
from raftcore.raft import Raft, StateType
from raftcore.raftpb.codec import encode_conf_change, encode_conf_change_v2
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    Entry,
    EntryType,
    Message,
    MessageType,
)
from raftcore.util import NONE

MT = MessageType
CCT = ConfChangeType
SF = StateType.StateFollower
SC = StateType.StateCandidate
SL = StateType.StateLeader


def _hup(id_: int) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgHup)


def _leader(*peers: int) -> Raft:
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(*peers)))
    r.become_candidate()
    r.become_leader()
    return r


def _cc_entry(cc: ConfChange | ConfChangeV2) -> Entry:
    if isinstance(cc, ConfChange):
        return Entry(type=EntryType.EntryConfChange, data=encode_conf_change(cc))
    return Entry(type=EntryType.EntryConfChangeV2, data=encode_conf_change_v2(cc))


def _prop_cc(cc: ConfChange | ConfChangeV2, id_: int = 1) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgProp, entries=[_cc_entry(cc)])


# --------------------------------------------------------------------------- proposing


def test_step_config() -> None:
    """Stepping a MsgProp with a conf change entry appends it and records it as the
    pending conf change."""
    # a raft that cannot make progress
    r = _leader(1, 2)
    index = r.raft_log.last_index()
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(type=EntryType.EntryConfChange)]))
    assert r.raft_log.last_index() == index + 1
    assert r.pending_conf_index == index + 1


def test_step_ignore_config() -> None:
    """A second conf change proposed while the first is unapplied becomes an empty
    normal entry, and the pending index stays."""
    # a raft that cannot make progress
    r = _leader(1, 2)
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(type=EntryType.EntryConfChange)]))
    index = r.raft_log.last_index()
    pending_conf_index = r.pending_conf_index
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(type=EntryType.EntryConfChange)]))
    wents = [Entry(type=EntryType.EntryNormal, term=1, index=3, data=b"")]
    assert r.raft_log.entries(index + 1, 2**64 - 1) == wents
    assert r.pending_conf_index == pending_conf_index


@pytest.mark.parametrize(("add_entry", "wpending_index"), [(False, 0), (True, 1)])
def test_new_leader_pending_config(add_entry: bool, wpending_index: int) -> None:
    """A new leader sets its pending conf index to its last index (any uncommitted
    entry may be a conf change)."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    if add_entry:
        assert r.append_entry([Entry(type=EntryType.EntryNormal)])
    r.become_candidate()
    r.become_leader()
    assert r.pending_conf_index == wpending_index


# --------------------------------------------------------------------------- applying


def test_add_node() -> None:
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    add_node(r, 2)
    assert r.trk.voter_nodes() == [1, 2]


def test_add_learner() -> None:
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    # Add a new learner peer.
    add_node(r, 2, CCT.ConfChangeAddLearnerNode)
    assert not r.is_learner
    assert r.trk.learner_nodes() == [2]
    assert r.trk.progress[2].is_learner

    # Promote the peer to voter.
    add_node(r, 2)
    assert not r.trk.progress[2].is_learner

    # Demote r.
    add_node(r, 1, CCT.ConfChangeAddLearnerNode)
    assert r.trk.progress[1].is_learner
    assert r.is_learner

    # Promote r again.
    add_node(r, 1)
    assert not r.trk.progress[1].is_learner
    assert not r.is_learner


def test_add_node_check_quorum() -> None:
    """Adding a node does not make a check-quorum leader step down at the next quorum
    check; only a whole election timeout without hearing from it does."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    r.check_quorum = True

    r.become_candidate()
    r.become_leader()

    for _ in range(r.election_timeout - 1):
        r.tick()

    add_node(r, 2)

    # This tick reaches election_timeout, which triggers a quorum check.
    r.tick()

    # Node 1 is still leader after a single tick.
    assert r.state == SL

    # After another election_timeout ticks without hearing from node 2, node 1 steps
    # down.
    for _ in range(r.election_timeout):
        r.tick()

    assert state_of(r) == SF


def test_remove_node() -> None:
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    add_node(r, 2, CCT.ConfChangeRemoveNode)
    assert r.trk.voter_nodes() == [1]

    # Removing the remaining voter panics.
    with pytest.raises(RaftPanic):
        add_node(r, 1, CCT.ConfChangeRemoveNode)


def test_remove_learner() -> None:
    r = new_test_learner_raft(1, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))
    add_node(r, 2, CCT.ConfChangeRemoveNode)
    assert r.trk.voter_nodes() == [1]
    assert r.trk.learner_nodes() == []

    # Removing the remaining voter panics.
    with pytest.raises(RaftPanic):
        add_node(r, 1, CCT.ConfChangeRemoveNode)


@pytest.mark.parametrize(
    ("peers", "wp"), [((1,), True), ((1, 2, 3), True), ((), False), ((2, 3), False)]
)
def test_promotable(peers: tuple[int, ...], wp: bool) -> None:
    r = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(*peers)))
    assert r.promotable() == wp


@pytest.mark.parametrize(("ids", "wids"), [([1, 2, 3], [1, 2, 3]), ([3, 2, 1], [1, 2, 3])])
def test_raft_nodes(ids: list[int], wids: list[int]) -> None:
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(*ids)))
    assert r.trk.voter_nodes() == wids


def test_commit_after_remove_node() -> None:
    """Pending entries commit once a conf change lowers the quorum."""
    # A cluster with two nodes.
    s = new_test_memory_storage(with_peers(1, 2))
    r = new_test_raft(1, 5, 1, s)
    r.become_candidate()
    r.become_leader()

    # Begin to remove the second node.
    cc = ConfChange(type=CCT.ConfChangeRemoveNode, node_id=2)
    r.step(Message(type=MT.MsgProp, entries=[_cc_entry(cc)]))

    # Stabilize the log and make sure nothing is committed yet.
    assert next_ents(r, s) == []
    cc_index = r.raft_log.last_index()

    # While the config change is pending, make another proposal.
    r.step(Message(type=MT.MsgProp, entries=[Entry(type=EntryType.EntryNormal, data=b"hello")]))

    # Node 2 acknowledges the config change, committing it.
    r.step(Message(type=MT.MsgAppResp, from_=2, index=cc_index))
    ents = next_ents(r, s)
    assert len(ents) == 2
    assert ents[0].type == EntryType.EntryNormal
    assert ents[0].data == b""
    assert ents[1].type == EntryType.EntryConfChange

    # Apply the config change. This reduces the quorum, so the pending command can now
    # commit.
    r.apply_conf_change(cc.as_v2())
    ents = next_ents(r, s)
    assert len(ents) == 1
    assert ents[0].type == EntryType.EntryNormal
    assert ents[0].data == b"hello"


def _test_conf_change_check_before_campaign(v2: bool) -> None:
    """A node with a committed but unapplied conf change does not campaign, neither
    on election timeout nor on MsgTimeoutNow. (etcd: TestConfChangeCheckBeforeCampaign,
    TestConfChangeV2CheckBeforeCampaign.)"""
    nt = new_network(None, None, None)
    n1 = nt.raft(1)
    n2 = nt.raft(2)
    nt.send(_hup(1))
    assert n1.state == SL

    # Begin to remove the third node.
    cc = ConfChange(type=CCT.ConfChangeRemoveNode, node_id=2)
    nt.send(_prop_cc(cc.as_v2() if v2 else cc))

    # Trigger a campaign in node 2
    for _ in range(n2.randomized_election_timeout):
        n2.tick()
    # Still a follower: the committed conf change is not applied.
    assert n2.state == SF

    # Transfer leadership to peer 2.
    nt.send(Message(from_=2, to=1, type=MT.MsgTransferLeader))
    assert n1.state == SL
    # Still a follower: the committed conf change is not applied.
    assert n2.state == SF

    # Abort the transfer
    for _ in range(n1.election_timeout):
        n1.tick()

    # Advance apply
    next_ents(n2, nt.storage[2])

    # Transfer leadership to peer 2 again.
    nt.send(Message(from_=2, to=1, type=MT.MsgTransferLeader))
    assert state_of(n1) == SF
    assert state_of(n2) == SL

    next_ents(n1, nt.storage[1])
    # Trigger a campaign in node 1
    for _ in range(n1.randomized_election_timeout):
        n1.tick()
    assert state_of(n1) == SC


def test_conf_change_check_before_campaign() -> None:
    _test_conf_change_check_before_campaign(False)


def test_conf_change_v2_check_before_campaign() -> None:
    _test_conf_change_check_before_campaign(True)


# --------------------------------------------------------------------------- joint configs


def _joint(*changes: tuple[CCT, int], explicit: bool = False) -> ConfChangeV2:
    transition = (
        ConfChangeTransition.ConfChangeTransitionJointExplicit
        if explicit
        else ConfChangeTransition.ConfChangeTransitionAuto
    )
    return ConfChangeV2(transition=transition, changes=[ConfChangeSingle(t, n) for t, n in changes])


def test_joint_config_refuses_other_changes_until_left() -> None:
    """In a joint configuration only the empty change that leaves it is accepted; out
    of one, an empty change is refused. A refused change stays in the log as an empty
    normal entry."""
    r = _leader(1, 2, 3)
    r.apply_conf_change(_joint((CCT.ConfChangeAddNode, 4), (CCT.ConfChangeRemoveNode, 3)))
    assert r.trk.config.voters.outgoing
    assert r.trk.voter_nodes() == [1, 2, 3, 4]

    last = r.raft_log.last_index()
    r.step(_prop_cc(ConfChange(type=CCT.ConfChangeAddNode, node_id=5)))
    assert r.raft_log.last_index() == last + 1
    assert r.raft_log.entries(last + 1, 2**64 - 1) == [
        Entry(term=r.term, index=last + 1, type=EntryType.EntryNormal)
    ]
    assert r.pending_conf_index < last + 1

    r.step(_prop_cc(ConfChangeV2()))
    assert r.pending_conf_index == last + 2
    assert r.raft_log.entries(last + 2, 2**64 - 1)[0].type == EntryType.EntryConfChangeV2

    r.apply_conf_change(ConfChangeV2())
    assert not r.trk.config.voters.outgoing
    assert r.trk.voter_nodes() == [1, 2, 4]

    # Not joint now: an empty change (leave-joint) is refused.
    s = r.raft_log.last_index()
    r.pending_conf_index = 0  # as if the leave-joint entry were applied
    r.step(_prop_cc(ConfChangeV2()))
    assert r.raft_log.entries(s + 1, 2**64 - 1)[0].type == EntryType.EntryNormal


def test_joint_config_disable_validation() -> None:
    """With disable_conf_change_validation the leader appends conf changes without
    checking the pending index or the joint state."""
    r = _leader(1, 2)
    r.disable_conf_change_validation = True
    r.step(_prop_cc(ConfChange(type=CCT.ConfChangeAddNode, node_id=3)))
    r.step(_prop_cc(ConfChange(type=CCT.ConfChangeAddNode, node_id=4)))
    r.step(_prop_cc(ConfChangeV2()))
    types = [e.type for e in r.raft_log.all_entries()[1:]]
    assert types == [
        EntryType.EntryConfChange,
        EntryType.EntryConfChange,
        EntryType.EntryConfChangeV2,
    ]
    assert r.pending_conf_index == r.raft_log.last_index()


@pytest.mark.parametrize("explicit", [False, True], ids=["auto", "explicit"])
def test_joint_config_auto_leave(explicit: bool) -> None:
    """A leader in an auto-leave joint configuration proposes leaving it (an empty
    ConfChangeV2) as soon as the entry that entered it is applied; with an explicit
    transition it waits for the application."""
    s = new_test_memory_storage(with_peers(1))
    r = new_test_raft(1, 10, 1, s)
    r.become_candidate()
    r.become_leader()
    next_ents(r, s)

    cc = _joint((CCT.ConfChangeAddLearnerNode, 2), (CCT.ConfChangeAddNode, 3), explicit=explicit)
    r.step(_prop_cc(cc))
    ents = next_ents(r, s)
    assert [e.type for e in ents] == [EntryType.EntryConfChangeV2]
    cs = r.apply_conf_change(cc)
    assert cs.voters == [1, 3]
    assert cs.voters_outgoing == [1]
    assert cs.learners == [2]
    assert cs.auto_leave != explicit

    last = r.raft_log.last_index()
    r.applied_to(ents[-1].index, 0)
    if explicit:
        assert r.raft_log.last_index() == last
        return
    # The leave-joint proposal, with no data at all.
    assert r.raft_log.last_index() == last + 1
    leave = r.raft_log.entries(last + 1, 2**64 - 1)
    assert leave == [Entry(term=r.term, index=last + 1, type=EntryType.EntryConfChangeV2)]
    assert r.pending_conf_index == last + 1

    # It is proposed only once: applying again does not repeat it while pending.
    r.applied_to(ents[-1].index, 0)
    assert r.raft_log.last_index() == last + 1


def test_joint_config_auto_leave_waits_for_leader_transfer() -> None:
    """The auto-leave proposal is dropped while a leadership transfer is in progress
    and retried at the next applied_to."""
    s = new_test_memory_storage(with_peers(1, 2))
    r = new_test_raft(1, 10, 1, s)
    r.become_candidate()
    r.become_leader()
    cc = _joint((CCT.ConfChangeAddNode, 3), (CCT.ConfChangeAddNode, 4))
    r.apply_conf_change(cc)
    assert r.trk.config.auto_leave
    r.lead_transferee = 2
    last = r.raft_log.last_index()
    r.applied_to(r.raft_log.applied, 0)
    assert r.raft_log.last_index() == last
    r.lead_transferee = NONE
    r.applied_to(r.raft_log.applied, 0)
    assert r.raft_log.last_index() == last + 1


def test_joint_config_election_needs_both_majorities() -> None:
    """An election in a joint configuration needs a majority of both halves."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    r.apply_conf_change(_joint((CCT.ConfChangeRemoveNode, 3), (CCT.ConfChangeAddNode, 4)))
    assert r.trk.config.voters.incoming == {1, 2, 4}
    assert r.trk.config.voters.outgoing == {1, 2, 3}
    r.step(_hup(1))
    advance_messages_after_append(r)
    assert sorted(m.to for m in read_messages(r)) == [2, 3, 4]
    # 3 and 4 each complete one half only.
    r.step(Message(from_=3, to=1, term=r.term, type=MT.MsgVoteResp))
    assert r.state == SC
    r.step(Message(from_=4, to=1, term=r.term, type=MT.MsgVoteResp))
    assert state_of(r) == SL


# --------------------------------------------------------------------------- step down


@pytest.mark.parametrize("step_down", [False, True], ids=["stay", "stepdown"])
def test_leader_removed_steps_down_only_when_configured(step_down: bool) -> None:
    """A leader that applies its own removal steps down if step_down_on_removal is set;
    otherwise it stays leader (but refuses proposals, not being in the config)."""
    r = _leader(1, 2, 3)
    r.step_down_on_removal = step_down
    term = r.term
    add_node(r, 1, CCT.ConfChangeRemoveNode)
    assert r.trk.voter_nodes() == [2, 3]
    assert not r.is_learner
    if step_down:
        assert r.state == SF
        assert r.term == term
        assert r.lead == NONE
    else:
        assert r.state == SL
        with pytest.raises(ProposalDroppedError):
            r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry(data=b"x")]))


@pytest.mark.parametrize("step_down", [False, True], ids=["stay", "stepdown"])
def test_leader_demoted_in_joint_config_steps_down_only_when_configured(step_down: bool) -> None:
    """Replacing the leader with a joint change demotes it to learner once the joint
    configuration is left; it then steps down if so configured."""
    r = _leader(1, 2, 3)
    r.step_down_on_removal = step_down
    r.apply_conf_change(
        _joint(
            (CCT.ConfChangeRemoveNode, 1),
            (CCT.ConfChangeAddLearnerNode, 1),
            (CCT.ConfChangeAddNode, 4),
        )
    )
    # Still a voter of the outgoing half: leading goes on.
    assert r.state == SL
    assert not r.is_learner
    r.apply_conf_change(ConfChangeV2())
    assert r.is_learner
    assert r.trk.learner_nodes() == [1]
    assert state_of(r) == (SF if step_down else SL)
