"""Elections: votes, pre-votes, terms, check-quorum and leases (from etcd's raft_test.go).

Each test is the port of the etcd test named in its name (snake_cased); a Go test
parameterised over vote/pre-vote becomes one pytest test with that parameter.
"""

from __future__ import annotations

import math

import pytest

from raft_testutil import (
    NOP_STEPPER,
    ConfigFunc,
    Network,
    add_node,
    advance_messages_after_append,
    ents_with_config,
    index_terms,
    ltoa,
    new_log,
    new_network,
    new_network_with_config,
    new_test_config,
    new_test_learner_raft,
    new_test_memory_storage,
    new_test_raft,
    pre_vote_config,
    read_messages,
    set_randomized_election_timeout,
    state_of,
    step_or_send,
    take_messages_after_append,
    voted_with_config,
    with_learners,
    with_peers,
)
from raftcore.errors import RaftPanic
from raftcore.raft import Raft, StateType, step_candidate, step_follower, step_leader
from raftcore.raftpb.types import (
    ConfChangeType,
    Entry,
    Message,
    MessageType,
)
from raftcore.storage import MemoryStorage
from raftcore.util import NONE, vote_resp_msg_type

MT = MessageType
SF = StateType.StateFollower
SC = StateType.StateCandidate
SL = StateType.StateLeader
SP = StateType.StatePreCandidate


def _hup(id_: int) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgHup)


def _prop(id_: int, data: bytes = b"") -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgProp, entries=[Entry(data=data)])


def _three(check_quorum: bool = False, pre_vote: bool = False) -> tuple[Raft, Raft, Raft]:
    rs = tuple(
        new_test_raft(i, 10, 1, new_test_memory_storage(with_peers(1, 2, 3))) for i in (1, 2, 3)
    )
    for r in rs:
        r.check_quorum = check_quorum
        r.pre_vote = pre_vote
    return rs[0], rs[1], rs[2]


def _set_step_fn(r: Raft, state: StateType) -> None:
    """What etcd's tests do with ``sm.state = x; sm.step = stepX``."""
    r.state = state
    if state == SF:
        r.step_fn = step_follower
    elif state in (SC, SP):
        r.step_fn = step_candidate
    else:
        r.step_fn = step_leader


# --------------------------------------------------------------------------- basics


def _test_leader_election(pre_vote: bool) -> None:
    """etcd: TestLeaderElection, TestLeaderElectionPreVote."""
    cfg: ConfigFunc | None = None
    cand_state = SC
    cand_term = 1
    if pre_vote:
        cfg = pre_vote_config
        # An election that fails to complete leaves a pre-candidate at its old term.
        cand_state = SP
        cand_term = 0
    tests: list[tuple[Network, StateType, int]] = [
        (new_network_with_config(cfg, None, None, None), SL, 1),
        (new_network_with_config(cfg, None, None, NOP_STEPPER), SL, 1),
        (new_network_with_config(cfg, None, NOP_STEPPER, NOP_STEPPER), cand_state, cand_term),
        (
            new_network_with_config(cfg, None, NOP_STEPPER, NOP_STEPPER, None),
            cand_state,
            cand_term,
        ),
        (new_network_with_config(cfg, None, NOP_STEPPER, NOP_STEPPER, None, None), SL, 1),
        # three logs further along than 0, but in the same term so rejections are
        # returned instead of the votes being ignored
        (
            new_network_with_config(
                cfg,
                None,
                ents_with_config(cfg, 1),
                ents_with_config(cfg, 1),
                ents_with_config(cfg, 1, 1),
                None,
            ),
            SF,
            1,
        ),
    ]
    for i, (nt, state, exp_term) in enumerate(tests):
        nt.send(_hup(1))
        sm = nt.raft(1)
        assert sm.state == state, f"#{i}"
        assert sm.term == exp_term, f"#{i}"


def test_leader_election() -> None:
    _test_leader_election(False)


def test_leader_election_pre_vote() -> None:
    _test_leader_election(True)


def test_learner_election_timeout() -> None:
    """A learner never campaigns, even when its election timeout passes."""
    n1 = new_test_learner_raft(1, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))
    n2 = new_test_learner_raft(2, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))

    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)

    set_randomized_election_timeout(n2, n2.election_timeout)
    for _ in range(n2.election_timeout):
        n2.tick()

    assert n2.state == SF


def test_learner_promotion() -> None:
    """A learner does not campaign until it is promoted to voter; then it can win."""
    n1 = new_test_learner_raft(1, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))
    n2 = new_test_learner_raft(2, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))

    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)

    nt = new_network(n1, n2)

    assert n1.state != SL

    # n1 should become leader
    set_randomized_election_timeout(n1, n1.election_timeout)
    for _ in range(n1.election_timeout):
        n1.tick()
    advance_messages_after_append(n1)

    assert state_of(n1) == SL
    assert n2.state == SF

    nt.send(Message(from_=1, to=1, type=MT.MsgBeat))

    add_node(n1, 2)
    add_node(n2, 2)
    assert not n2.is_learner

    # n2 starts an election and should become leader
    set_randomized_election_timeout(n2, n2.election_timeout)
    for _ in range(n2.election_timeout):
        n2.tick()
    advance_messages_after_append(n2)

    nt.send(Message(from_=2, to=2, type=MT.MsgBeat))

    assert state_of(n1) == SF
    assert state_of(n2) == SL


def test_learner_can_vote() -> None:
    """A learner grants a valid vote request: it may have been promoted without
    knowing yet."""
    n2 = new_test_learner_raft(2, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))

    n2.become_follower(1, NONE)

    n2.step(Message(from_=1, to=2, term=2, type=MT.MsgVote, log_term=11, index=11))

    msgs = read_messages(n2)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgVoteResp
    assert not msgs[0].reject, "expected learner to not reject vote"


def _test_leader_cycle(pre_vote: bool) -> None:
    """Each node can campaign and win in turn: elections (pre-vote too) work when not
    starting from a clean slate. (etcd: TestLeaderCycle, TestLeaderCyclePreVote.)"""
    cfg = pre_vote_config if pre_vote else None
    n = new_network_with_config(cfg, None, None, None)
    for campaigner_id in (1, 2, 3):
        n.send(_hup(campaigner_id))

        for id_ in n.peers:
            sm = n.raft(id_)
            if sm.id == campaigner_id:
                assert sm.state == SL, f"campaigning node {sm.id}"
            else:
                assert sm.state == SF, f"campaigning node {campaigner_id}, node {sm.id}"


def test_leader_cycle() -> None:
    _test_leader_cycle(False)


def test_leader_cycle_pre_vote() -> None:
    _test_leader_cycle(True)


def _test_leader_election_overwrite_newer_logs(pre_vote: bool) -> None:
    """A newly elected leader without the newest (highest-term) entries overwrites the
    others' higher-term entries with its own. (etcd: TestLeaderElectionOverwriteNewerLogs,
    TestLeaderElectionOverwriteNewerLogsPreVote.)

    The cluster: node 1 won term 1 and got an entry to node 2 only; node 3 won term 2
    and wrote an entry nobody received; nodes 4 and 5 voted for 3 in term 2.
    """
    cfg = pre_vote_config if pre_vote else None
    n = new_network_with_config(
        cfg,
        ents_with_config(cfg, 1),  # node 1: won the first election
        ents_with_config(cfg, 1),  # node 2: got the entry from node 1
        ents_with_config(cfg, 2),  # node 3: won the second election
        voted_with_config(cfg, 3, 2),  # node 4: voted but got no entries
        voted_with_config(cfg, 3, 2),  # node 5: voted but got no entries
    )

    # Node 1 campaigns and fails: a quorum knows of term 2. Its term moves to 2.
    n.send(_hup(1))
    sm1 = n.raft(1)
    assert sm1.state == SF
    assert sm1.term == 2

    # Node 1 campaigns again, at a higher term, and wins.
    n.send(_hup(1))
    assert state_of(sm1) == SL
    assert sm1.term == 3

    # All nodes now agree on term 1 at index 1 and term 3 at index 2.
    for id_ in n.peers:
        entries = n.raft(id_).raft_log.all_entries()
        assert len(entries) == 2
        assert entries[0].term == 1
        assert entries[1].term == 3


def test_leader_election_overwrite_newer_logs() -> None:
    _test_leader_election_overwrite_newer_logs(False)


def test_leader_election_overwrite_newer_logs_pre_vote() -> None:
    _test_leader_election_overwrite_newer_logs(True)


def _test_vote_from_any_state(vt: MessageType, st: StateType) -> None:
    """A node in any state grants a (pre-)vote for a higher term to an up-to-date
    candidate; a real vote resets it to a follower in the new term, a pre-vote
    changes nothing. (etcd: TestVoteFromAnyState, TestPreVoteFromAnyState.)"""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    r.term = 1

    if st == SF:
        r.become_follower(r.term, 3)
    elif st == SP:
        r.become_pre_candidate()
    elif st == SC:
        r.become_candidate()
    else:
        r.become_candidate()
        r.become_leader()

    # Setting the state above may have advanced r.term past 1.
    orig_term = r.term
    new_term = r.term + 1

    r.step(Message(from_=2, to=1, type=vt, term=new_term, log_term=new_term, index=42))
    msgs = read_messages(r)
    assert len(msgs) == 1
    resp = msgs[0]
    assert resp.type == vote_resp_msg_type(vt)
    assert not resp.reject

    if vt == MT.MsgVote:
        # A real vote: state and term reset.
        assert r.state == SF
        assert r.term == new_term
        assert r.vote == 2
    else:
        # A pre-vote changes nothing.
        assert r.state == st
        assert r.term == orig_term
        # Followers and pre-candidates have not voted; candidates and leaders voted
        # for themselves.
        assert r.vote in (NONE, 1)


@pytest.mark.parametrize("st", list(StateType), ids=str)
def test_vote_from_any_state(st: StateType) -> None:
    _test_vote_from_any_state(MT.MsgVote, st)


@pytest.mark.parametrize("st", list(StateType), ids=str)
def test_pre_vote_from_any_state(st: StateType) -> None:
    _test_vote_from_any_state(MT.MsgPreVote, st)


def test_dueling_candidates() -> None:
    a, b, c = _three()
    nt = new_network(a, b, c)
    nt.cut(1, 3)

    nt.send(_hup(1))
    nt.send(_hup(3))

    # 1 becomes leader since it receives votes from 1 and 2
    assert nt.raft(1).state == SL
    # 3 stays candidate since it receives a vote from 3 and a rejection from 2
    sm = nt.raft(3)
    assert sm.state == SC

    nt.recover()

    # Candidate 3 now increases its term and tries to vote again. It disrupts leader
    # 1 (higher term), but both 1 and 2 reject it as its log is too short, so it ends
    # up follower again.
    nt.send(_hup(3))
    assert state_of(sm) == SF

    for i, (r, state, term, last_index) in enumerate([(a, SF, 2, 1), (b, SF, 2, 1), (c, SF, 2, 0)]):
        assert r.state == state, f"#{i}"
        assert r.term == term, f"#{i}"
        assert r.raft_log.last_index() == last_index, f"#{i}"


def test_dueling_pre_candidates() -> None:
    cfgs = [
        new_test_config(i, 10, 1, new_test_memory_storage(with_peers(1, 2, 3))) for i in (1, 2, 3)
    ]
    for cfg in cfgs:
        cfg.pre_vote = True
    a, b, c = (Raft(cfg) for cfg in cfgs)

    nt = new_network(a, b, c)
    nt.cut(1, 3)

    nt.send(_hup(1))
    nt.send(_hup(3))

    # 1 becomes leader since it receives votes from 1 and 2
    assert nt.raft(1).state == SL
    # 3 campaigns then reverts to follower when its pre-vote is rejected
    assert nt.raft(3).state == SF

    nt.recover()

    # Candidate 3 tries again. With pre-vote it does not disrupt the leader.
    nt.send(_hup(3))

    for i, (r, state, term, last_index) in enumerate([(a, SL, 1, 1), (b, SF, 1, 1), (c, SF, 1, 0)]):
        assert r.state == state, f"#{i}"
        assert r.term == term, f"#{i}"
        assert r.raft_log.last_index() == last_index, f"#{i}"


def test_candidate_concede() -> None:
    """A candidate at the same term concedes to the leader that contacts it."""
    tt = new_network(None, None, None)
    tt.isolate(1)

    tt.send(_hup(1))
    tt.send(_hup(3))

    # heal the partition
    tt.recover()
    # send heartbeat; reset wait
    tt.send(Message(from_=3, to=3, type=MT.MsgBeat))

    data = b"force follower"
    # send a proposal to 3 to flush out a MsgApp to 1
    tt.send(_prop(3, data))
    # send heartbeat; flush out commit
    tt.send(Message(from_=3, to=3, type=MT.MsgBeat))

    a = tt.raft(1)
    assert a.state == SF
    assert a.term == 1

    want_log = ltoa(
        new_log(
            MemoryStorage(ents=[Entry(), Entry(term=1, index=1), Entry(term=1, index=2, data=data)])
        )
    )
    for id_ in tt.peers:
        assert ltoa(tt.raft(id_).raft_log) == want_log, f"#{id_}"


def _test_single_node_candidate(cfg: ConfigFunc | None) -> None:
    """A lone voter elects itself at once. (etcd: TestSingleNodeCandidate,
    TestSingleNodePreCandidate.)"""
    tt = new_network_with_config(cfg, None)
    tt.send(_hup(1))

    assert tt.raft(1).state == SL


def test_single_node_candidate() -> None:
    _test_single_node_candidate(None)


def test_single_node_pre_candidate() -> None:
    _test_single_node_candidate(pre_vote_config)


def test_past_election_timeout() -> None:
    """past_election_timeout is true with the probability the randomised timeout
    implies: never before et, always from 2*et, linearly in between."""
    tests = [
        (5, 0.0, False),
        (10, 0.1, True),
        (13, 0.4, True),
        (15, 0.6, True),
        (18, 0.9, True),
        (20, 1.0, False),
    ]
    for i, (elapse, wprobability, round_) in enumerate(tests):
        sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
        sm.election_elapsed = elapse
        c = 0
        for _ in range(10000):
            sm.reset_randomized_election_timeout()
            if sm.past_election_timeout():
                c += 1
        got = c / 10000.0
        if round_:
            got = math.floor(got * 10 + 0.5) / 10.0
        assert got == wprobability, f"#{i}"


def test_step_ignore_old_term_msg() -> None:
    """Step drops a message from an old term before the role's step function."""
    called = False

    def fake_step(_r: Raft, _m: Message) -> None:
        nonlocal called
        called = True

    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    sm.step_fn = fake_step
    sm.term = 2
    sm.step(Message(type=MT.MsgApp, term=sm.term - 1))
    assert not called


_RECV_MSG_VOTE_PARAMS = pytest.mark.parametrize(
    ("state", "index", "log_term", "vote_for", "wreject"),
    [
        (SF, 0, 0, NONE, True),
        (SF, 0, 1, NONE, True),
        (SF, 0, 2, NONE, True),
        (SF, 0, 3, NONE, False),
        (SF, 1, 0, NONE, True),
        (SF, 1, 1, NONE, True),
        (SF, 1, 2, NONE, True),
        (SF, 1, 3, NONE, False),
        (SF, 2, 0, NONE, True),
        (SF, 2, 1, NONE, True),
        (SF, 2, 2, NONE, False),
        (SF, 2, 3, NONE, False),
        (SF, 3, 0, NONE, True),
        (SF, 3, 1, NONE, True),
        (SF, 3, 2, NONE, False),
        (SF, 3, 3, NONE, False),
        (SF, 3, 2, 2, False),
        (SF, 3, 2, 1, True),
        (SL, 3, 3, 1, True),
        (SP, 3, 3, 1, True),
        (SC, 3, 3, 1, True),
    ],
)


def _test_recv_msg_vote(
    msg_type: MessageType,
    state: StateType,
    index: int,
    log_term: int,
    vote_for: int,
    wreject: bool,
) -> None:
    """A vote is granted only to a candidate whose log is at least as up to date and
    only if not already given to another in the term. (etcd: TestRecvMsgVote,
    TestRecvMsgPreVote.)"""
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    _set_step_fn(sm, state)
    sm.vote = vote_for
    sm.raft_log = new_log(MemoryStorage(ents=index_terms(0, 0, 2, 2)))

    # Both terms equal, at least the log's last term: only the log comparison and
    # the existing vote matter here, not term handling.
    term = max(sm.raft_log.last_entry_id().term, log_term)
    sm.term = term
    sm.step(Message(type=msg_type, term=term, from_=2, index=index, log_term=log_term))

    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == vote_resp_msg_type(msg_type)
    assert msgs[0].reject == wreject


@_RECV_MSG_VOTE_PARAMS
def test_recv_msg_vote(
    state: StateType, index: int, log_term: int, vote_for: int, wreject: bool
) -> None:
    _test_recv_msg_vote(MT.MsgVote, state, index, log_term, vote_for, wreject)


@_RECV_MSG_VOTE_PARAMS
def test_recv_msg_pre_vote(
    state: StateType, index: int, log_term: int, vote_for: int, wreject: bool
) -> None:
    _test_recv_msg_vote(MT.MsgPreVote, state, index, log_term, vote_for, wreject)


@pytest.mark.parametrize(
    ("from_", "to", "wallow", "wterm", "wlead"),
    [
        (SF, SF, True, 1, NONE),
        (SF, SP, True, 0, NONE),
        (SF, SC, True, 1, NONE),
        (SF, SL, False, 0, NONE),
        (SP, SF, True, 0, NONE),
        (SP, SP, True, 0, NONE),
        (SP, SC, True, 1, NONE),
        (SP, SL, True, 0, 1),
        (SC, SF, True, 0, NONE),
        (SC, SP, True, 0, NONE),
        (SC, SC, True, 1, NONE),
        (SC, SL, True, 0, 1),
        (SL, SF, True, 1, NONE),
        (SL, SP, False, 0, NONE),
        (SL, SC, False, 1, NONE),
        (SL, SL, True, 0, 1),
    ],
)
def test_state_transition(
    from_: StateType, to: StateType, wallow: bool, wterm: int, wlead: int
) -> None:
    """Allowed role transitions set term and leader as expected; forbidden ones
    (follower -> leader, leader -> (pre-)candidate) panic."""
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    sm.state = from_

    try:
        if to == SF:
            sm.become_follower(wterm, wlead)
        elif to == SP:
            sm.become_pre_candidate()
        elif to == SC:
            sm.become_candidate()
        else:
            sm.become_leader()
    except RaftPanic:
        assert not wallow
        return

    assert sm.term == wterm
    assert sm.lead == wlead


@pytest.mark.parametrize(
    ("state", "wstate", "wterm", "windex"),
    [(SF, SF, 3, 0), (SP, SF, 3, 0), (SC, SF, 3, 0), (SL, SF, 3, 1)],
)
def test_all_server_stepdown(state: StateType, wstate: StateType, wterm: int, windex: int) -> None:
    """Every role steps down to follower on a vote request or append of a higher
    term; only an append tells it who leads."""
    tterm = 3
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    if state == SF:
        sm.become_follower(1, NONE)
    elif state == SP:
        sm.become_pre_candidate()
    elif state == SC:
        sm.become_candidate()
    else:
        sm.become_candidate()
        sm.become_leader()

    for j, msg_type in enumerate([MT.MsgVote, MT.MsgApp]):
        sm.step(Message(from_=2, type=msg_type, term=tterm, log_term=tterm))

        assert sm.state == wstate, f"#{j}"
        assert sm.term == wterm, f"#{j}"
        assert sm.raft_log.last_index() == windex, f"#{j}"
        assert len(sm.raft_log.all_entries()) == windex, f"#{j}"
        wlead = NONE if msg_type == MT.MsgVote else 2
        assert sm.lead == wlead, f"#{j}"


def _test_candidate_reset_term(mt: MessageType) -> None:
    """A candidate receiving a heartbeat or append from the leader of its own term
    returns to follower. (etcd: TestCandidateResetTermMsgHeartbeat,
    TestCandidateResetTermMsgApp.)"""
    a, b, c = _three()
    nt = new_network(a, b, c)

    nt.send(_hup(1))

    assert a.state == SL
    assert b.state == SF
    assert c.state == SF

    # isolate 3 and increase term in rest
    nt.isolate(3)

    nt.send(_hup(2))
    nt.send(_hup(1))

    assert a.state == SL
    assert b.state == SF

    # trigger campaign in isolated c
    c.reset_randomized_election_timeout()
    for _ in range(c.randomized_election_timeout):
        c.tick()
    advance_messages_after_append(c)

    assert state_of(c) == SC

    nt.recover()

    # The leader's message makes the isolated candidate a follower again, at the
    # leader's term.
    nt.send(Message(from_=1, to=3, term=a.term, type=mt))

    assert state_of(c) == SF
    assert c.term == a.term


def test_candidate_reset_term_msg_heartbeat() -> None:
    _test_candidate_reset_term(MT.MsgHeartbeat)


def test_candidate_reset_term_msg_app() -> None:
    _test_candidate_reset_term(MT.MsgApp)


def _test_candidate_self_vote_after_lost_election(pre_vote: bool) -> None:
    """A (pre-)candidate's own vote, delivered after it learnt it lost, is ignored.
    (etcd: TestCandidateSelfVoteAfterLostElection,
    TestCandidateSelfVoteAfterLostElectionPreVote.)"""
    sm = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    sm.pre_vote = pre_vote

    # n1 calls an election.
    sm.step(_hup(1))
    steps = take_messages_after_append(sm)

    # n1 hears that n2 already won the election before it has had a chance to sync
    # its vote to disk and account for its self-vote. It becomes a follower.
    sm.step(Message(from_=2, to=1, term=sm.term, type=MT.MsgHeartbeat))
    assert sm.state == SF

    # n1 remains a follower even after its self-vote is delivered.
    step_or_send(sm, steps)
    assert sm.state == SF

    # Its self-vote does not make its way to its ProgressTracker.
    granted, _, _ = sm.trk.tally_votes()
    assert granted == 0


def test_candidate_self_vote_after_lost_election() -> None:
    _test_candidate_self_vote_after_lost_election(False)


def test_candidate_self_vote_after_lost_election_pre_vote() -> None:
    _test_candidate_self_vote_after_lost_election(True)


def test_candidate_delivers_pre_candidate_self_vote_after_becoming_candidate() -> None:
    sm = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    sm.pre_vote = True

    # n1 calls an election.
    sm.step(_hup(1))
    assert sm.state == SP
    steps = take_messages_after_append(sm)

    # n1 receives pre-votes from both other peers before voting for itself, and
    # becomes a candidate. Pre-vote messages carry the local term + 1.
    sm.step(Message(from_=2, to=1, term=sm.term + 1, type=MT.MsgPreVoteResp))
    sm.step(Message(from_=3, to=1, term=sm.term + 1, type=MT.MsgPreVoteResp))
    assert state_of(sm) == SC

    # n1 remains a candidate even after its delayed pre-vote self-vote is delivered.
    step_or_send(sm, steps)
    assert state_of(sm) == SC

    steps = take_messages_after_append(sm)

    # Its pre-vote self-vote does not make its way to its ProgressTracker.
    granted, _, _ = sm.trk.tally_votes()
    assert granted == 0

    # A single vote from n2 does not make n1 leader.
    sm.step(Message(from_=2, to=1, term=sm.term, type=MT.MsgVoteResp))
    assert state_of(sm) == SC

    # n1 becomes leader once its self-vote arrives and completes the quorum.
    step_or_send(sm, steps)
    assert state_of(sm) == SL


def test_leader_msg_app_self_ack_after_term_change() -> None:
    sm = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    sm.become_candidate()
    sm.become_leader()

    # n1 proposes a write.
    sm.step(_prop(1, b"somedata"))
    steps = take_messages_after_append(sm)

    # n1 hears that n2 is the new leader.
    sm.step(Message(from_=2, to=1, term=sm.term + 1, type=MT.MsgHeartbeat))
    assert sm.state == SF

    # n1 advances; the self-ack of its MsgApp carries an earlier term and is ignored.
    step_or_send(sm, steps)
    assert sm.state == SF


# --------------------------------------------------------------------------- check quorum


def test_leader_stepdown_when_quorum_active() -> None:
    sm = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    sm.check_quorum = True
    sm.become_candidate()
    sm.become_leader()

    for _ in range(sm.election_timeout + 1):
        sm.step(Message(from_=2, type=MT.MsgHeartbeatResp, term=sm.term))
        sm.tick()

    assert sm.state == SL


def test_leader_stepdown_when_quorum_lost() -> None:
    sm = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    sm.check_quorum = True
    sm.become_candidate()
    sm.become_leader()

    for _ in range(sm.election_timeout + 1):
        sm.tick()

    assert sm.state == SF


def test_leader_superseding_with_check_quorum() -> None:
    """With check-quorum, a follower that heard from the leader within the election
    timeout ignores a vote request; once the timeout passes it votes."""
    a, b, c = _three(check_quorum=True)
    nt = new_network(a, b, c)
    set_randomized_election_timeout(b, b.election_timeout + 1)

    for _ in range(b.election_timeout):
        b.tick()
    nt.send(_hup(1))

    assert a.state == SL
    assert c.state == SF

    nt.send(_hup(3))

    # b rejected c's vote since its election_elapsed had not reached election_timeout
    assert state_of(c) == SC

    # let b's election_elapsed reach election_timeout
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(_hup(3))

    assert state_of(c) == SL


def test_leader_election_with_check_quorum() -> None:
    a, b, c = _three(check_quorum=True)
    nt = new_network(a, b, c)
    set_randomized_election_timeout(a, a.election_timeout + 1)
    set_randomized_election_timeout(b, b.election_timeout + 2)

    # Immediately after creation, votes are cast regardless of the election timeout.
    nt.send(_hup(1))

    assert a.state == SL
    assert c.state == SF

    # The last state changes may have reset randomized_election_timeout to
    # election_timeout: set it above again.
    set_randomized_election_timeout(a, a.election_timeout + 1)
    set_randomized_election_timeout(b, b.election_timeout + 2)
    for _ in range(a.election_timeout):
        a.tick()
    for _ in range(b.election_timeout):
        b.tick()
    nt.send(_hup(3))

    assert state_of(a) == SF
    assert state_of(c) == SL


def test_free_stuck_candidate_with_check_quorum() -> None:
    """A candidate with a higher term can disrupt a leader that still holds its lease:
    the leader steps down and adopts the candidate's term."""
    a, b, c = _three(check_quorum=True)
    nt = new_network(a, b, c)
    set_randomized_election_timeout(b, b.election_timeout + 1)

    for _ in range(b.election_timeout):
        b.tick()
    nt.send(_hup(1))

    nt.isolate(1)
    nt.send(_hup(3))

    assert b.state == SF
    assert c.state == SC
    assert c.term == b.term + 1

    # Vote again for safety
    nt.send(_hup(3))

    assert b.state == SF
    assert c.state == SC
    assert c.term == b.term + 2

    nt.recover()
    nt.send(Message(from_=1, to=3, type=MT.MsgHeartbeat, term=a.term))

    # Disrupt the leader so that the stuck peer is freed
    assert a.state == SF
    assert c.term == a.term

    # Vote again, should become leader this time
    nt.send(_hup(3))

    assert state_of(c) == SL


def test_non_promotable_voter_with_check_quorum() -> None:
    a = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    b = new_test_raft(2, 10, 1, new_test_memory_storage(with_peers(1)))

    a.check_quorum = True
    b.check_quorum = True

    nt = new_network(a, b)
    set_randomized_election_timeout(b, b.election_timeout + 1)
    # Remove 2 again to make it non-promotable: new_network rebuilt its tracker.
    add_node(b, 2, ConfChangeType.ConfChangeRemoveNode)

    assert not b.promotable()

    for _ in range(b.election_timeout):
        b.tick()
    nt.send(_hup(1))

    assert a.state == SL
    assert b.state == SF
    assert b.lead == 1


def test_disruptive_follower() -> None:
    """An isolated follower whose election times out campaigns at a higher term; its
    response to the leader's late heartbeat makes the leader step down."""
    n1, n2, n3 = _three(check_quorum=True)

    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)
    n3.become_follower(1, NONE)

    nt = new_network(n1, n2, n3)

    nt.send(_hup(1))

    assert n1.state == SL
    assert n2.state == SF
    assert n3.state == SF

    # etcd's server advances ticks for elections on restart to speed up a campaign
    # with long election timeouts, or the leader's messages are delayed while ticks
    # elapse: either way n3 times out.
    set_randomized_election_timeout(n3, n3.election_timeout + 2)
    for _ in range(n3.randomized_election_timeout - 1):
        n3.tick()

    # Ideally n3 hears from the leader before the last tick (resetting its
    # election_elapsed), but the tick may come first and start a campaign.
    n3.tick()

    # n1 is still leader; its heartbeat to candidate n3 is delayed.
    assert n1.state == SL
    assert n2.state == SF
    assert state_of(n3) == SC

    assert n1.term == 2
    assert n2.term == 2
    assert n3.term == 3

    # With n3's vote requests still queued, the leader's heartbeat finally arrives,
    # at a lower term than the candidate's.
    nt.send(Message(from_=1, to=3, term=n1.term, type=MT.MsgHeartbeat))

    # n3 answers with a higher-term MsgAppResp, and the leader steps down: the
    # candidate with the higher term can then be freed by a following election.
    assert state_of(n1) == SF
    assert n2.state == SF
    assert state_of(n3) == SC

    assert n1.term == 3
    assert n2.term == 2
    assert n3.term == 3


def test_disruptive_follower_pre_vote() -> None:
    """As test_disruptive_follower, but with pre-vote the isolated node (with a shorter
    log) never raises its term, so the leader is not disrupted."""
    n1, n2, n3 = _three(check_quorum=True)

    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)
    n3.become_follower(1, NONE)

    nt = new_network(n1, n2, n3)

    nt.send(_hup(1))

    assert n1.state == SL
    assert n2.state == SF
    assert n3.state == SF

    nt.isolate(3)
    for _ in range(3):
        nt.send(_prop(1, b"somedata"))
    n1.pre_vote = True
    n2.pre_vote = True
    n3.pre_vote = True
    nt.recover()
    nt.send(_hup(3))

    assert n1.state == SL
    assert n2.state == SF
    assert state_of(n3) == SP

    assert n1.term == 2
    assert n2.term == 2
    assert n3.term == 2

    # the delayed leader heartbeat does not force the current leader to step down
    nt.send(Message(from_=1, to=3, term=n1.term, type=MT.MsgHeartbeat))
    assert n1.state == SL


# --------------------------------------------------------------------------- pre-vote


def test_node_with_smaller_term_can_complete_election() -> None:
    """A node that fell behind in a partition rejoins as the leader is partitioned
    away: with pre-vote the cluster must still elect somebody."""
    n1, n2, n3 = _three()

    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)
    n3.become_follower(1, NONE)

    n1.pre_vote = True
    n2.pre_vote = True
    n3.pre_vote = True

    # cause a network partition to isolate node 3
    nt = new_network(n1, n2, n3)
    nt.cut(1, 3)
    nt.cut(2, 3)

    nt.send(_hup(1))

    assert n1.state == SL
    assert n2.state == SF

    nt.send(_hup(3))
    assert n3.state == SP

    nt.send(_hup(2))

    # check whether the term values are expected
    assert n1.term == 3
    assert n2.term == 3
    assert n3.term == 1

    # check state
    assert state_of(n1) == SF
    assert state_of(n2) == SL
    assert n3.state == SP

    # Recover the network, then immediately isolate b, the current leader, to
    # emulate its crash.
    nt.recover()
    nt.cut(2, 1)
    nt.cut(2, 3)

    # call for election
    nt.send(_hup(3))
    nt.send(_hup(1))

    # do we have a leader?
    assert state_of(n1) == SL or state_of(n3) == SL


def test_pre_vote_with_split_vote() -> None:
    """After a split vote, the next round completes the election."""
    n1, n2, n3 = _three(pre_vote=True)
    for r in (n1, n2, n3):
        r.become_follower(1, NONE)

    nt = new_network(n1, n2, n3)
    nt.send(_hup(1))

    # simulate leader down; the followers start a split vote
    nt.isolate(1)
    nt.send(_hup(2), _hup(3))

    assert n2.term == 3
    assert n3.term == 3

    assert n2.state == SC
    assert n3.state == SC

    # node 2 times out first
    nt.send(_hup(2))

    assert n2.term == 4
    assert n3.term == 4

    assert state_of(n2) == SL
    assert state_of(n3) == SF


def test_pre_vote_with_check_quorum() -> None:
    """A pre-candidate keeps check-quorum working: once the leader is isolated, a
    follower still elects a leader."""
    n1, n2, n3 = _three(check_quorum=True, pre_vote=True)
    for r in (n1, n2, n3):
        r.become_follower(1, NONE)

    nt = new_network(n1, n2, n3)
    nt.send(_hup(1))

    # isolate node 1. node 2 and node 3 have leader info
    nt.isolate(1)

    assert n1.state == SL
    assert n2.state == SF
    assert n3.state == SF

    # node 2 will ignore node 3's pre-vote
    nt.send(_hup(3))
    nt.send(_hup(2))

    # Do we have a leader?
    assert state_of(n2) == SL or state_of(n3) == SF


def test_learner_campaign() -> None:
    """A learner never campaigns, on MsgHup or on MsgTimeoutNow."""
    n1 = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1)))
    add_node(n1, 2, ConfChangeType.ConfChangeAddLearnerNode)
    n2 = new_test_raft(2, 10, 1, new_test_memory_storage(with_peers(1)))
    add_node(n2, 2, ConfChangeType.ConfChangeAddLearnerNode)
    nt = new_network(n1, n2)
    nt.send(_hup(2))

    assert n2.is_learner
    assert n2.state == SF

    nt.send(_hup(1))
    assert n1.state == SL
    assert n1.lead == 1

    # MsgTransferLeader checks that the target is no learner, but it may have become
    # one since: the MsgTimeoutNow it then gets is ignored.
    nt.send(Message(from_=1, to=2, type=MT.MsgTimeoutNow))
    assert n2.state == SF


def _new_pre_vote_migration_cluster() -> Network:
    """A rolling update enabling pre-vote: n1 leads at term 2, n2 follows at term 2,
    n3 (partitioned, with a shorter log) is a candidate at term 4, and has pre-vote
    enabled only as the network recovers."""
    n1, n2, n3 = _three()
    for r in (n1, n2, n3):
        r.become_follower(1, NONE)

    n1.pre_vote = True
    n2.pre_vote = True
    # n3 deliberately has no pre-vote yet: a mixed cluster during a rolling restart.

    nt = new_network(n1, n2, n3)
    nt.send(_hup(1))

    # Partition n3 away.
    nt.isolate(3)
    nt.send(_prop(1, b"some data"))
    nt.send(_hup(3))
    nt.send(_hup(3))

    assert n1.state == SL
    assert n2.state == SF
    assert n3.state == SC

    assert n1.term == 2
    assert n2.term == 2
    assert n3.term == 4

    # Enable pre-vote on n3, then recover the network.
    n3.pre_vote = True
    nt.recover()
    return nt


def test_pre_vote_migration_can_complete_election() -> None:
    nt = _new_pre_vote_migration_cluster()
    n2 = nt.raft(2)
    n3 = nt.raft(3)

    # simulate leader down
    nt.isolate(1)

    # Call for elections from both n2 and n3.
    nt.send(_hup(3))
    nt.send(_hup(2))

    assert n2.state == SF
    assert n3.state == SP

    nt.send(_hup(3))
    nt.send(_hup(2))

    # Do we have a leader?
    assert state_of(n2) == SL or state_of(n3) == SF


def test_pre_vote_migration_with_free_stuck_pre_candidate() -> None:
    nt = _new_pre_vote_migration_cluster()
    n1 = nt.raft(1)
    n2 = nt.raft(2)
    n3 = nt.raft(3)

    nt.send(_hup(3))

    assert n1.state == SL
    assert n2.state == SF
    assert n3.state == SP

    # Pre-vote again for safety
    nt.send(_hup(3))

    assert n1.state == SL
    assert n2.state == SF
    assert n3.state == SP

    nt.send(Message(from_=1, to=3, type=MT.MsgHeartbeat, term=n1.term))

    # Disrupt the leader so that the stuck peer is freed
    assert state_of(n1) == SF
    assert n3.term == n1.term


def _test_campaign_while_leader(pre_vote: bool) -> None:
    """MsgHup at a leader changes nothing. (etcd: TestCampaignWhileLeader,
    TestPreCampaignWhileLeader.)"""
    cfg = new_test_config(1, 5, 1, new_test_memory_storage(with_peers(1)))
    cfg.pre_vote = pre_vote
    r = Raft(cfg)
    assert r.state == SF
    # Not campaign() directly: the state check comes before it.
    r.step(_hup(1))
    advance_messages_after_append(r)
    assert state_of(r) == SL

    term = r.term
    r.step(_hup(1))
    advance_messages_after_append(r)
    assert state_of(r) == SL
    assert r.term == term


def test_campaign_while_leader() -> None:
    _test_campaign_while_leader(False)


def test_pre_campaign_while_leader() -> None:
    _test_campaign_while_leader(True)


def test_transfer_non_member() -> None:
    """MsgTimeoutNow at a node removed from the group does nothing (it used to panic
    on becoming leader when it then also got votes)."""
    r = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(2, 3, 4)))
    r.step(Message(from_=2, to=1, type=MT.MsgTimeoutNow))

    r.step(Message(from_=2, to=1, type=MT.MsgVoteResp))
    r.step(Message(from_=3, to=1, type=MT.MsgVoteResp))
    assert r.state == SF
