"""Leadership transfer (MsgTransferLeader / MsgTimeoutNow), from etcd's raft_test.go.

Each test is the port of the etcd test it is named after.
"""

from __future__ import annotations

import pytest

from raft_testutil import (
    add_node,
    check_leader_transfer_state,
    new_network,
    new_test_memory_storage,
    new_test_raft,
    next_ents,
    set_randomized_election_timeout,
    with_peers,
)
from raftcore.errors import ProposalDroppedError
from raftcore.raft import StateType
from raftcore.raftpb.types import (
    ConfChangeSingle,
    ConfChangeType,
    ConfChangeV2,
    ConfState,
    Entry,
    Message,
    MessageType,
)

MT = MessageType
CCT = ConfChangeType
SF = StateType.StateFollower
SL = StateType.StateLeader


def _hup(id_: int) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgHup)


def _prop(id_: int) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgProp, entries=[Entry()])


def _transfer(from_: int, to: int) -> Message:
    return Message(from_=from_, to=to, type=MT.MsgTransferLeader)


def test_leader_transfer_to_up_to_date_node() -> None:
    """A transfer to a transferee with the most up-to-date log succeeds at once."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    lead = nt.raft(1)
    assert lead.lead == 1

    # Transfer leadership to 2.
    nt.send(_transfer(2, 1))

    check_leader_transfer_state(lead, SF, 2)

    # After some log replication, transfer leadership back to 1.
    nt.send(_prop(1))

    nt.send(_transfer(1, 2))

    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_to_up_to_date_node_from_follower() -> None:
    """As above, but every transfer request is sent to a follower, which forwards it."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    lead = nt.raft(1)
    assert lead.lead == 1

    # Transfer leadership to 2.
    nt.send(_transfer(2, 2))

    check_leader_transfer_state(lead, SF, 2)

    # After some log replication, transfer leadership back to 1.
    nt.send(_prop(1))

    nt.send(_transfer(1, 1))

    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_with_check_quorum() -> None:
    """A transfer works even while the leader still holds its lease."""
    nt = new_network(None, None, None)
    for i in (1, 2, 3):
        r = nt.raft(i)
        r.check_quorum = True
        set_randomized_election_timeout(r, r.election_timeout + i)

    # Let peer 2's election_elapsed reach the timeout so that it can vote for peer 1.
    f = nt.raft(2)
    for _ in range(f.election_timeout):
        f.tick()

    nt.send(_hup(1))

    lead = nt.raft(1)
    assert lead.state == SL

    # Transfer leadership to 2.
    nt.send(_transfer(2, 1))

    check_leader_transfer_state(lead, SF, 2)

    # After some log replication, transfer leadership back to 1.
    nt.send(_prop(1))

    nt.send(_transfer(1, 2))

    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_to_slow_follower() -> None:
    """A lagging transferee is caught up first, then gets MsgTimeoutNow."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.isolate(3)
    nt.send(_prop(1))

    nt.recover()
    lead = nt.raft(1)
    assert lead.trk.progress[3].match == 1

    # Transfer leadership to 3 while it lacks an entry.
    nt.send(_transfer(3, 1))

    check_leader_transfer_state(lead, SF, 3)


def test_leader_transfer_after_snapshot() -> None:
    """A transferee that needs a snapshot gets MsgTimeoutNow once it has applied it
    and acked."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.isolate(3)

    nt.send(_prop(1))
    lead = nt.raft(1)
    next_ents(lead, nt.storage[1])
    nt.storage[1].create_snapshot(
        lead.raft_log.applied, ConfState(voters=lead.trk.voter_nodes()), b""
    )
    nt.storage[1].compact(lead.raft_log.applied)

    nt.recover()
    assert lead.trk.progress[3].match == 1

    filtered: list[Message] = []

    # The snapshot must be applied before the MsgAppResp is sent.
    def hook(m: Message) -> bool:
        if m.type != MT.MsgAppResp or m.from_ != 3 or m.reject:
            return True
        filtered.append(m)
        return False

    nt.msg_hook = hook
    # Transfer leadership to 3 while it lacks the snapshot.
    nt.send(_transfer(3, 1))
    assert lead.state == SL
    assert filtered, "the MsgAppResp to the snapshot should have been held back"

    # Apply the snapshot and resume progress.
    follower = nt.raft(3)
    snap = follower.raft_log.next_unstable_snapshot()
    assert snap is not None
    nt.storage[3].apply_snapshot(snap)
    follower.applied_snap(snap)
    nt.msg_hook = None
    nt.send(filtered[-1])

    check_leader_transfer_state(lead, SF, 3)


def test_leader_transfer_to_self() -> None:
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    lead = nt.raft(1)

    # Transfer leadership to self: nothing happens.
    nt.send(_transfer(1, 1))
    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_to_non_existing_node() -> None:
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    lead = nt.raft(1)
    # Transfer leadership to a non-existing node: nothing happens.
    nt.send(_transfer(4, 1))
    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_timeout() -> None:
    """A transfer not completed within an election timeout is abandoned."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.isolate(3)

    lead = nt.raft(1)

    # Transfer leadership to the isolated node, and wait for the timeout.
    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    for _ in range(lead.heartbeat_timeout):
        lead.tick()
    assert lead.lead_transferee == 3

    for _ in range(lead.election_timeout - lead.heartbeat_timeout):
        lead.tick()

    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_ignore_proposal() -> None:
    """Proposals are dropped while a transfer is pending."""
    s = new_test_memory_storage(with_peers(1, 2, 3))
    r = new_test_raft(1, 10, 1, s)
    nt = new_network(r, None, None)
    nt.send(_hup(1))

    nt.isolate(3)

    lead = nt.raft(1)

    next_ents(r, s)  # handle the empty entry

    # Transfer leadership to the isolated node to keep the transfer pending, then
    # propose.
    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    nt.send(_prop(1))
    with pytest.raises(ProposalDroppedError):
        lead.step(_prop(1))

    assert lead.trk.progress[1].match == 1


def test_leader_transfer_receive_higher_term_vote() -> None:
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.isolate(3)

    lead = nt.raft(1)

    # Transfer leadership to the isolated node to keep the transfer pending.
    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    nt.send(Message(from_=2, to=2, type=MT.MsgHup, index=1, term=2))

    check_leader_transfer_state(lead, SF, 2)


def test_leader_transfer_remove_node() -> None:
    """Removing the transferee aborts the transfer."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.ignore(MT.MsgTimeoutNow)

    lead = nt.raft(1)

    # The transferee is removed while leadership is being transferred.
    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    add_node(lead, 3, CCT.ConfChangeRemoveNode)

    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_demote_node() -> None:
    """Demoting the transferee to learner aborts the transfer."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.ignore(MT.MsgTimeoutNow)

    lead = nt.raft(1)

    # The transferee is demoted while leadership is being transferred.
    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    lead.apply_conf_change(
        ConfChangeV2(
            changes=[
                ConfChangeSingle(type=CCT.ConfChangeRemoveNode, node_id=3),
                ConfChangeSingle(type=CCT.ConfChangeAddLearnerNode, node_id=3),
            ]
        )
    )

    # Make the Raft group commit the LeaveJoint entry.
    lead.apply_conf_change(ConfChangeV2())
    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_back() -> None:
    """Leadership can be transferred back to self while a transfer is pending."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.isolate(3)

    lead = nt.raft(1)

    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    # Transfer leadership back to self.
    nt.send(_transfer(1, 1))

    check_leader_transfer_state(lead, SL, 1)


def test_leader_transfer_second_transfer_to_another_node() -> None:
    """A second transfer to another node replaces a pending one."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.isolate(3)

    lead = nt.raft(1)

    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    # Transfer leadership to another node.
    nt.send(_transfer(2, 1))

    check_leader_transfer_state(lead, SF, 2)


def test_leader_transfer_second_transfer_to_same_node() -> None:
    """A second request for the same transferee does not extend the timeout."""
    nt = new_network(None, None, None)
    nt.send(_hup(1))

    nt.isolate(3)

    lead = nt.raft(1)

    nt.send(_transfer(3, 1))
    assert lead.lead_transferee == 3

    for _ in range(lead.heartbeat_timeout):
        lead.tick()
    # A second transfer request to the same node.
    nt.send(_transfer(3, 1))

    for _ in range(lead.election_timeout - lead.heartbeat_timeout):
        lead.tick()

    check_leader_transfer_state(lead, SL, 1)
