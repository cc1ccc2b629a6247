"""The Raft paper's rules, checked against raftcore.raft (etcd's raft_paper_test.go).

Each test pins down a few sentences of the paper (https://raft.github.io/raft.pdf),
cited by section: it builds a state by hand, steps messages, and checks the messages
sent and the resulting state; these are the ports of etcd's tests, named after them.

The paper's safety properties (Figure 3) are covered explicitly at the end, beyond
etcd's file: election safety, log matching, leader completeness / state machine safety
as hypothesis properties over random runs of a 5-node cluster, plus one deterministic
scenario each for the situations those properties exist for, and the commit rule of
§5.4.2 (figure 8) as a scenario.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raft_testutil import (
    NOP_STEPPER,
    Network,
    accept_and_reply,
    advance_messages_after_append,
    assert_messages_equal,
    commit_noop_entry,
    ids_by_size,
    index_terms,
    ltoa,
    must_append_entry,
    new_network,
    new_test_memory_storage,
    new_test_raft,
    read_messages,
    sort_messages,
    state_of,
    with_peers,
)
from raftcore.raft import Raft, StateType
from raftcore.raftpb.types import Entry, HardState, Message, MessageType
from raftcore.util import NONE

MT = MessageType
SF = StateType.StateFollower
SC = StateType.StateCandidate
SL = StateType.StateLeader
SP = StateType.StatePreCandidate


def _prop(id_: int, data: bytes = b"") -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgProp, entries=[Entry(data=data)])


def _hup(id_: int) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgHup)


# --------------------------------------------------------------------------- §5.1


def _test_update_term_from_message(state: StateType) -> None:
    """§5.1: a server seeing a larger term adopts it; a candidate or leader that finds
    its term out of date reverts to follower at once. (etcd:
    TestFollowerUpdateTermFromMessage, TestCandidateUpdateTermFromMessage,
    TestLeaderUpdateTermFromMessage.)"""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    if state == SF:
        r.become_follower(1, 2)
    elif state == SC:
        r.become_candidate()
    else:
        r.become_candidate()
        r.become_leader()

    r.step(Message(type=MT.MsgApp, term=2))

    assert r.term == 2
    assert r.state == SF


def test_follower_update_term_from_message() -> None:
    _test_update_term_from_message(SF)


def test_candidate_update_term_from_message() -> None:
    _test_update_term_from_message(SC)


def test_leader_update_term_from_message() -> None:
    _test_update_term_from_message(SL)


def test_reject_stale_term_message() -> None:
    """§5.1: a request with a stale term is rejected (here: ignored before the
    role-specific step function sees it)."""
    called = False

    def fake_step(_r: Raft, _m: Message) -> None:
        nonlocal called
        called = True

    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    r.step_fn = fake_step
    r.load_state(HardState(term=2))

    r.step(Message(type=MT.MsgApp, term=r.term - 1))

    assert not called


# --------------------------------------------------------------------------- §5.2


def test_start_as_follower() -> None:
    """§5.2: servers start up as followers."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    assert r.state == SF


def test_leader_bcast_beat() -> None:
    """§5.2: on a heartbeat tick the leader sends every follower a MsgHeartbeat with no
    index, no log term and no entries."""
    hi = 1  # heartbeat interval
    r = new_test_raft(1, 10, hi, new_test_memory_storage(with_peers(1, 2, 3)))
    r.become_candidate()
    r.become_leader()
    for i in range(10):
        must_append_entry(r, Entry(index=i + 1))

    for _ in range(hi):
        r.tick()

    msgs = sort_messages(read_messages(r))
    assert_messages_equal(
        [
            Message(from_=1, to=2, term=1, type=MT.MsgHeartbeat, commit=0),
            Message(from_=1, to=3, term=1, type=MT.MsgHeartbeat, commit=0),
        ],
        msgs,
    )


def _test_nonleader_start_election(state: StateType) -> None:
    """§5.2: a follower hearing nothing for an election timeout, or a candidate that
    did not win within one, starts an election: it increments its term, becomes
    candidate, votes for itself and asks every other server for its vote.
    (etcd: TestFollowerStartElection, TestCandidateStartNewElection.)"""
    et = 10  # election timeout
    r = new_test_raft(1, et, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    if state == SF:
        r.become_follower(1, 2)
    else:
        r.become_candidate()

    for _ in range(1, 2 * et):
        r.tick()
    advance_messages_after_append(r)

    assert r.term == 2
    assert r.state == SC
    assert r.trk.votes[r.id]

    msgs = sort_messages(read_messages(r))
    assert_messages_equal(
        [
            Message(from_=1, to=2, term=2, type=MT.MsgVote, index=0, log_term=0),
            Message(from_=1, to=3, term=2, type=MT.MsgVote, index=0, log_term=0),
        ],
        msgs,
    )


def test_follower_start_election() -> None:
    _test_nonleader_start_election(SF)


def test_candidate_start_new_election() -> None:
    _test_nonleader_start_election(SC)


@pytest.mark.parametrize(
    ("size", "votes", "state"),
    [
        # win the election when receiving votes from a majority of the servers
        (1, {}, SL),
        (3, {2: True, 3: True}, SL),
        (3, {2: True}, SL),
        (5, {2: True, 3: True, 4: True, 5: True}, SL),
        (5, {2: True, 3: True, 4: True}, SL),
        (5, {2: True, 3: True}, SL),
        # return to follower state if it receives vote denial from a majority
        (3, {2: False, 3: False}, SF),
        (5, {2: False, 3: False, 4: False, 5: False}, SF),
        (5, {2: True, 3: False, 4: False, 5: False}, SF),
        # stay in candidate if it does not obtain the majority
        (3, {}, SC),
        (5, {2: True}, SC),
        (5, {2: False, 3: False}, SC),
        (5, {}, SC),
    ],
)
def test_leader_election_in_one_round_rpc(
    size: int, votes: dict[int, bool], state: StateType
) -> None:
    """§5.2: after one round of RequestVote a candidate has won, lost, or does not
    know yet."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(*ids_by_size(size))))

    r.step(_hup(1))
    advance_messages_after_append(r)
    for id_, vote in votes.items():
        r.step(Message(from_=id_, to=1, term=r.term, type=MT.MsgVoteResp, reject=not vote))

    assert r.state == state
    assert r.term == 1


@pytest.mark.parametrize(
    ("vote", "nvote", "wreject"),
    [
        (NONE, 2, False),
        (NONE, 3, False),
        (2, 2, False),
        (3, 3, False),
        (2, 3, True),
        (3, 2, True),
    ],
)
def test_follower_vote(vote: int, nvote: int, wreject: bool) -> None:
    """§5.2: a follower votes for at most one candidate per term, first come first
    served."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    r.load_state(HardState(term=1, vote=vote))

    r.step(Message(from_=nvote, to=1, term=1, type=MT.MsgVote))

    expected = Message(from_=1, to=nvote, term=1, type=MT.MsgVoteResp, reject=wreject)
    assert_messages_equal([expected], r.msgs_after_append)


@pytest.mark.parametrize("term", [1, 2])
def test_candidate_fallback(term: int) -> None:
    """§5.2: a candidate receiving AppendEntries from a leader whose term is at least
    its own recognises that leader and returns to follower."""
    m = Message(from_=2, to=1, term=term, type=MT.MsgApp)
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    r.step(_hup(1))
    assert r.state == SC

    r.step(m)

    assert state_of(r) == SF
    assert r.term == term


def _test_nonleader_election_timeout_randomized(state: StateType) -> None:
    """§5.2: followers' and candidates' election timeouts are randomised, covering
    every tick count in [et, 2*et). (etcd: TestFollowerElectionTimeoutRandomized,
    TestCandidateElectionTimeoutRandomized.)"""
    et = 10
    r = new_test_raft(1, et, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    timeouts: set[int] = set()
    for _ in range(50 * et):
        if state == SF:
            r.become_follower(r.term + 1, 2)
        else:
            r.become_candidate()

        time = 0
        while not read_messages(r):
            r.tick()
            time += 1
        timeouts.add(time)

    for d in range(et, 2 * et):
        assert d in timeouts, f"timeout in {d} ticks should happen"


def test_follower_election_timeout_randomized() -> None:
    _test_nonleader_election_timeout_randomized(SF)


def test_candidate_election_timeout_randomized() -> None:
    _test_nonleader_election_timeout_randomized(SC)


def _test_nonleaders_election_timeout_nonconflict(state: StateType) -> None:
    """§5.2: mostly a single server times out first, which makes split votes rare.
    (etcd: TestFollowersElectionTimeoutNonconflict,
    TestCandidatesElectionTimeoutNonconflict.)"""
    et = 10
    size = 5
    ids = ids_by_size(size)
    rs = [new_test_raft(i, et, 1, new_test_memory_storage(with_peers(*ids))) for i in ids]
    conflicts = 0
    rounds = 1000
    for _ in range(rounds):
        for r in rs:
            if state == SF:
                r.become_follower(r.term + 1, NONE)
            else:
                r.become_candidate()

        timeout_num = 0
        while timeout_num == 0:
            for r in rs:
                r.tick()
                if read_messages(r):
                    timeout_num += 1
        # several rafts time out at the same tick
        if timeout_num > 1:
            conflicts += 1

    assert conflicts / rounds <= 0.3


def test_followers_election_timeout_nonconflict() -> None:
    _test_nonleaders_election_timeout_nonconflict(SF)


def test_candidates_election_timeout_nonconflict() -> None:
    _test_nonleaders_election_timeout_nonconflict(SC)


# --------------------------------------------------------------------------- §5.3


def test_leader_start_replication() -> None:
    """§5.3: the leader appends a proposal to its log, then sends AppendEntries to
    every follower carrying the index and term of the entry preceding the new ones;
    the new entry is bound for stable storage."""
    s = new_test_memory_storage(with_peers(1, 2, 3))
    r = new_test_raft(1, 10, 1, s)
    r.become_candidate()
    r.become_leader()
    commit_noop_entry(r, s)
    li = r.raft_log.last_index()

    r.step(_prop(1, b"some data"))

    assert r.raft_log.last_index() == li + 1
    assert r.raft_log.committed == li
    msgs = sort_messages(read_messages(r))
    wents = [Entry(index=li + 1, term=1, data=b"some data")]
    assert_messages_equal(
        [
            Message(
                from_=1,
                to=2,
                term=1,
                type=MT.MsgApp,
                index=li,
                log_term=1,
                entries=wents,
                commit=li,
            ),
            Message(
                from_=1,
                to=3,
                term=1,
                type=MT.MsgApp,
                index=li,
                log_term=1,
                entries=wents,
                commit=li,
            ),
        ],
        msgs,
    )
    assert r.raft_log.next_unstable_ents() == [Entry(index=li + 1, term=1, data=b"some data")]


def test_leader_commit_entry() -> None:
    """§5.3: once an entry is safely replicated the leader hands it out for applying,
    and tells the followers the new commit index in later AppendEntries."""
    s = new_test_memory_storage(with_peers(1, 2, 3))
    r = new_test_raft(1, 10, 1, s)
    r.become_candidate()
    r.become_leader()
    commit_noop_entry(r, s)
    li = r.raft_log.last_index()
    r.step(_prop(1, b"some data"))

    for m in read_messages(r):
        r.step(accept_and_reply(m))

    assert r.raft_log.committed == li + 1
    assert r.raft_log.next_committed_ents(True) == [Entry(index=li + 1, term=1, data=b"some data")]
    msgs = sort_messages(read_messages(r))
    for i, m in enumerate(msgs):
        assert m.to == i + 2
        assert m.type == MT.MsgApp
        assert m.commit == li + 1


@pytest.mark.parametrize(
    ("size", "non_leader_acceptors", "wack"),
    [
        (1, set(), True),
        (3, set(), False),
        (3, {2}, True),
        (3, {2, 3}, True),
        (5, set(), False),
        (5, {2}, False),
        (5, {2, 3}, True),
        (5, {2, 3, 4}, True),
        (5, {2, 3, 4, 5}, True),
    ],
)
def test_leader_acknowledge_commit(size: int, non_leader_acceptors: set[int], wack: bool) -> None:
    """§5.3: an entry is committed once the leader that created it has replicated it on
    a majority of the servers."""
    s = new_test_memory_storage(with_peers(*ids_by_size(size)))
    r = new_test_raft(1, 10, 1, s)
    r.become_candidate()
    r.become_leader()
    commit_noop_entry(r, s)
    li = r.raft_log.last_index()
    r.step(_prop(1, b"some data"))
    advance_messages_after_append(r)
    for m in list(r.msgs):
        if m.to in non_leader_acceptors:
            r.step(accept_and_reply(m))

    assert (r.raft_log.committed > li) == wack


@pytest.mark.parametrize(
    "ents",
    [
        [],
        [Entry(term=2, index=1)],
        [Entry(term=1, index=1), Entry(term=2, index=2)],
        [Entry(term=1, index=1)],
    ],
)
def test_leader_commit_preceding_entries(ents: list[Entry]) -> None:
    """§5.3: committing an entry commits every entry before it in the leader's log,
    those of earlier leaders included, and they are applied in log order."""
    storage = new_test_memory_storage(with_peers(1, 2, 3))
    storage.append(ents)
    r = new_test_raft(1, 10, 1, storage)
    r.load_state(HardState(term=2))
    r.become_candidate()
    r.become_leader()
    r.step(_prop(1, b"some data"))

    for m in read_messages(r):
        r.step(accept_and_reply(m))

    li = len(ents)
    assert r.raft_log.next_committed_ents(True) == [
        *ents,
        Entry(term=3, index=li + 1),
        Entry(term=3, index=li + 2, data=b"some data"),
    ]


@pytest.mark.parametrize(
    ("ents", "commit"),
    [
        ([Entry(term=1, index=1, data=b"some data")], 1),
        (
            [Entry(term=1, index=1, data=b"some data"), Entry(term=1, index=2, data=b"some data2")],
            2,
        ),
        (
            [Entry(term=1, index=1, data=b"some data2"), Entry(term=1, index=2, data=b"some data")],
            2,
        ),
        (
            [Entry(term=1, index=1, data=b"some data"), Entry(term=1, index=2, data=b"some data2")],
            1,
        ),
    ],
)
def test_follower_commit_entry(ents: list[Entry], commit: int) -> None:
    """§5.3: a follower that learns an entry is committed applies it (in log order)."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    r.become_follower(1, 2)

    r.step(Message(from_=2, to=1, type=MT.MsgApp, term=1, entries=list(ents), commit=commit))

    assert r.raft_log.committed == commit
    assert r.raft_log.next_committed_ents(True) == ents[:commit]


_CHECK_ENTS = [Entry(term=1, index=1), Entry(term=2, index=2)]


@pytest.mark.parametrize(
    ("term", "index", "windex", "wreject", "wreject_hint", "wlogterm"),
    [
        # match with committed entries
        (0, 0, 1, False, 0, 0),
        (_CHECK_ENTS[0].term, _CHECK_ENTS[0].index, 1, False, 0, 0),
        # match with uncommitted entries
        (_CHECK_ENTS[1].term, _CHECK_ENTS[1].index, 2, False, 0, 0),
        # unmatch with existing entry
        (_CHECK_ENTS[0].term, _CHECK_ENTS[1].index, _CHECK_ENTS[1].index, True, 1, 1),
        # unexisting entry
        (_CHECK_ENTS[1].term + 1, _CHECK_ENTS[1].index + 1, _CHECK_ENTS[1].index + 1, True, 2, 2),
    ],
)
def test_follower_check_msg_app(
    term: int, index: int, windex: int, wreject: bool, wreject_hint: int, wlogterm: int
) -> None:
    """§5.3: a follower without an entry matching AppendEntries' (index, term) refuses
    the new entries; otherwise it accepts them."""
    storage = new_test_memory_storage(with_peers(1, 2, 3))
    storage.append(list(_CHECK_ENTS))
    r = new_test_raft(1, 10, 1, storage)
    r.load_state(HardState(commit=1))
    r.become_follower(2, 2)

    r.step(Message(from_=2, to=1, type=MT.MsgApp, term=2, log_term=term, index=index))

    expected = Message(from_=1, to=2, type=MT.MsgAppResp, term=2, index=windex)
    if wreject:
        expected.reject = True
        expected.reject_hint = wreject_hint
        expected.log_term = wlogterm
    assert_messages_equal([expected], read_messages(r))


@pytest.mark.parametrize(
    ("index", "term", "ents", "wents", "wunstable"),
    [
        (2, 2, index_terms(3, 3), index_terms(1, 1, 2, 3), index_terms(3, 3)),
        (1, 1, index_terms(2, 3, 4), index_terms(1, 1, 3, 4), index_terms(2, 3, 4)),
        (0, 0, index_terms(1, 1), index_terms(1, 1, 2), []),
        (0, 0, index_terms(1, 3), index_terms(1, 3), index_terms(1, 3)),
    ],
)
def test_follower_append_entries(
    index: int, term: int, ents: list[Entry], wents: list[Entry], wunstable: list[Entry]
) -> None:
    """§5.3: on a valid AppendEntries a follower deletes a conflicting entry and all
    that follow it, appends the entries it lacks, and stages them for stable storage."""
    storage = new_test_memory_storage(with_peers(1, 2, 3))
    storage.append([Entry(term=1, index=1), Entry(term=2, index=2)])
    r = new_test_raft(1, 10, 1, storage)
    r.become_follower(2, 2)

    r.step(Message(from_=2, to=1, type=MT.MsgApp, term=2, log_term=term, index=index, entries=ents))

    assert r.raft_log.all_entries() == wents
    assert r.raft_log.next_unstable_ents() == wunstable


@pytest.mark.parametrize(
    "follower_terms",
    [
        (0, 1, 1, 1, 4, 4, 5, 5, 6, 6),
        (0, 1, 1, 1, 4, 4),
        (0, 1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6),
        (0, 1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
        (0, 1, 1, 1, 4, 4, 4, 4),
        (0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
    ],
)
def test_leader_sync_follower_log(follower_terms: tuple[int, ...]) -> None:
    """§5.3, figure 7: the leader brings each of the figure's followers' logs into
    agreement with its own."""
    ents = index_terms(0, 0, 1, 1, 1, 4, 4, 5, 5, 6, 6, 6)
    term = 8
    lead_storage = new_test_memory_storage(with_peers(1, 2, 3))
    lead_storage.append(ents)
    lead = new_test_raft(1, 10, 1, lead_storage)
    lead.load_state(HardState(commit=lead.raft_log.last_index(), term=term))
    follower_storage = new_test_memory_storage(with_peers(1, 2, 3))
    follower_storage.append(index_terms(0, *follower_terms))
    follower = new_test_raft(2, 10, 1, follower_storage)
    follower.load_state(HardState(term=term - 1))
    # A three-node cluster: the follower's log may be more up to date than the
    # leader's, so the leader needs node 3's vote to win.
    n = new_network(lead, follower, NOP_STEPPER)
    n.send(_hup(1))
    # The election happens in the term after the one loaded above.
    n.send(Message(from_=3, to=1, type=MT.MsgVoteResp, term=term + 1))

    n.send(_prop(1))

    assert ltoa(lead.raft_log) == ltoa(follower.raft_log)


# --------------------------------------------------------------------------- §5.4


@pytest.mark.parametrize(
    ("ents", "wterm"),
    [(index_terms(1, 1), 2), (index_terms(1, 1, 2), 3)],
)
def test_vote_request(ents: list[Entry], wterm: int) -> None:
    """§5.4.1: vote requests carry the candidate's last log index and term and go to
    every other node."""
    r = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    r.step(
        Message(from_=2, to=1, type=MT.MsgApp, term=wterm - 1, log_term=0, index=0, entries=ents)
    )
    read_messages(r)

    for _ in range(1, r.election_timeout * 2):
        r.tick_election()

    msgs = sort_messages(read_messages(r))
    assert len(msgs) == 2
    for i, m in enumerate(msgs):
        assert m.type == MT.MsgVote
        assert m.to == i + 2
        assert m.term == wterm
        assert m.index == ents[-1].index
        assert m.log_term == ents[-1].term


@pytest.mark.parametrize(
    ("ents", "logterm", "index", "wreject"),
    [
        # same logterm
        (index_terms(1, 1), 1, 1, False),
        (index_terms(1, 1), 1, 2, False),
        (index_terms(1, 1, 1), 1, 1, True),
        # candidate higher logterm
        (index_terms(1, 1), 2, 1, False),
        (index_terms(1, 1), 2, 2, False),
        (index_terms(1, 1, 1), 2, 1, False),
        # voter higher logterm
        (index_terms(1, 2), 1, 1, True),
        (index_terms(1, 2), 1, 2, True),
        (index_terms(1, 2, 2), 1, 1, True),
        (index_terms(1, 1, 1), 1, 1, True),
    ],
)
def test_voter(ents: list[Entry], logterm: int, index: int, wreject: bool) -> None:
    """§5.4.1: a voter denies its vote to a candidate whose log is less up to date
    than its own."""
    storage = new_test_memory_storage(with_peers(1, 2))
    storage.append(ents)
    r = new_test_raft(1, 10, 1, storage)

    r.step(Message(from_=2, to=1, type=MT.MsgVote, term=3, log_term=logterm, index=index))

    msgs = read_messages(r)
    assert len(msgs) == 1
    m = msgs[0]
    assert m.type == MT.MsgVoteResp
    assert m.reject == wreject


@pytest.mark.parametrize(
    ("index", "wcommit"),
    [
        # do not commit log entries in previous terms
        (1, 0),
        (2, 0),
        # commit log in current term
        (3, 3),
    ],
)
def test_leader_only_commits_log_from_current_term(index: int, wcommit: int) -> None:
    """§5.4.2: only entries of the leader's current term are committed by counting
    replicas."""
    ents = [Entry(term=1, index=1), Entry(term=2, index=2)]
    storage = new_test_memory_storage(with_peers(1, 2))
    storage.append(ents)
    r = new_test_raft(1, 10, 1, storage)
    r.load_state(HardState(term=2))
    # become leader at term 3
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    # propose an entry in the current term
    r.step(_prop(1))

    r.step(Message(from_=2, to=1, type=MT.MsgAppResp, term=r.term, index=index))
    advance_messages_after_append(r)
    assert r.raft_log.committed == wcommit


# --------------------------------------------------------------------------- the safety
# properties of §5.2-§5.4 (Figure 3), checked with hypothesis over runs of a 5-node
# cluster: random campaigns, proposals, ticks, partitions and heals, with or without
# pre-vote and check-quorum. Every run starts with node 1 campaigning, so that there is
# something to check from the start.

# (kind, a, b): hup a, propose at a, tick a b times, isolate a, cut a-b, drop all
# MsgApps, recover.
_Action = tuple[str, int, int]
_ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["hup", "hup", "prop", "prop", "tick", "isolate", "cut", "cut", "drop_apps", "recover"]
        ),
        st.integers(1, 5),
        st.integers(1, 25),
    ),
    min_size=5,
    max_size=60,
)
_SAFETY_SETTINGS = settings(max_examples=100, deadline=None)


def _cluster(pre_vote: bool, check_quorum: bool) -> Network:
    n = new_network(None, None, None, None, None)
    for id_ in n.peers:
        n.raft(id_).pre_vote = pre_vote
        n.raft(id_).check_quorum = check_quorum
    n.send(_hup(1))
    return n


def _apply(n: Network, step: int, action: _Action) -> None:
    kind, a, b = action
    if kind == "hup":
        n.send(_hup(a))
    elif kind == "prop":
        n.send(_prop(a, b"p%d" % step))
    elif kind == "tick":
        r = n.raft(a)
        for _ in range(b):
            r.tick()
        n.send(*n.filter(read_messages(r)))
    elif kind == "isolate":
        n.isolate(a)
    elif kind == "drop_apps":
        n.ignore(MT.MsgApp)
    elif kind == "cut":
        if a != b % 5 + 1:
            n.cut(a, b % 5 + 1)
    else:
        n.recover()


@_SAFETY_SETTINGS
@given(actions=_ACTIONS, pre_vote=st.booleans(), check_quorum=st.booleans())
def test_election_safety(actions: list[_Action], pre_vote: bool, check_quorum: bool) -> None:
    """§5.2 Election Safety: at most one leader can be elected in a given term."""
    n = _cluster(pre_vote, check_quorum)
    leaders: dict[int, set[int]] = {}

    def record() -> None:
        for pid in n.peers:
            r = n.raft(pid)
            if r.state == SL:
                leaders.setdefault(r.term, set()).add(pid)

    record()
    for step, action in enumerate(actions):
        _apply(n, step, action)
        record()
    assert leaders[1] == {1}
    for term, ids in leaders.items():
        assert len(ids) == 1, f"term {term} had leaders {ids}"


@_SAFETY_SETTINGS
@given(actions=_ACTIONS, pre_vote=st.booleans(), check_quorum=st.booleans())
def test_log_matching(actions: list[_Action], pre_vote: bool, check_quorum: bool) -> None:
    """§5.3 Log Matching: if two logs contain an entry with the same index and term,
    the logs are identical in all entries up through that index."""
    n = _cluster(pre_vote, check_quorum)
    for step, action in enumerate(actions):
        _apply(n, step, action)
        logs = [n.raft(id_).raft_log.all_entries() for id_ in n.peers]
        for a in logs:
            for b in logs:
                # The highest index at which both have the same term decides.
                common = [ea.index for ea, eb in zip(a, b, strict=False) if ea.term == eb.term]
                if common:
                    assert a[: common[-1]] == b[: common[-1]]


@_SAFETY_SETTINGS
@given(actions=_ACTIONS, pre_vote=st.booleans(), check_quorum=st.booleans())
def test_leader_completeness_and_state_machine_safety(
    actions: list[_Action], pre_vote: bool, check_quorum: bool
) -> None:
    """§5.4 Leader Completeness: an entry committed in a term is in the log of every
    leader of a later term. Checked as the run goes: an entry first seen committed by
    a node at term t must be in the log of any leader whose term exceeds t. And no two
    nodes ever commit different entries at one index (State Machine Safety, §5.4.3)."""
    n = _cluster(pre_vote, check_quorum)
    # index -> (entry, lowest term at which some node knew it committed)
    committed: dict[int, tuple[Entry, int]] = {}

    def check() -> None:
        for pid in n.peers:
            r = n.raft(pid)
            for e in r.raft_log.all_entries()[: r.raft_log.committed]:
                prev, t = committed.setdefault(e.index, (e, r.term))
                assert prev == e, f"index {e.index} committed as {prev} and {e}"
                if r.term < t:
                    committed[e.index] = (e, r.term)
        for pid in n.peers:
            r = n.raft(pid)
            if r.state != SL:
                continue
            ents = r.raft_log.all_entries()
            for idx, (e, t) in committed.items():
                if r.term > t:
                    assert idx <= len(ents), f"leader {pid} (term {r.term}) lacks {e}"
                    assert ents[idx - 1] == e, f"leader {pid} (term {r.term}) lacks {e}"

    check()
    for step, action in enumerate(actions):
        _apply(n, step, action)
        check()
    assert 1 in committed, "the initial election commits the leader's empty entry"


def test_election_safety_two_candidates_in_one_term() -> None:
    """§5.2 Election Safety, the case that needs it: two candidates campaign in the
    same term (they cannot hear each other) and the winner's appends are lost, so the
    second candidate's log is as up to date as anybody's. The voters already voted in
    that term, so the second candidate cannot win."""
    for pre_vote in (False, True):
        n = _cluster(pre_vote, False)
        n.cut(3, 4)
        n.ignore(MT.MsgApp)
        n.send(_hup(3))
        assert n.raft(3).state == SL
        assert n.raft(3).term == 2
        n.send(_hup(4))
        four = n.raft(4)
        assert four.state != SL
        leaders = {(n.raft(i).term, i) for i in n.peers if n.raft(i).state == SL}
        assert len({t for t, _ in leaders}) == len(leaders), leaders


def test_leader_completeness_stale_candidate_cannot_win() -> None:
    """§5.4.1 Leader Completeness, the case that needs it: a node that missed
    committed entries cannot be elected, since a majority holding them refuses to vote
    for its less up-to-date log; the next leader holds every committed entry."""
    for pre_vote in (False, True):
        n = _cluster(pre_vote, False)
        n.isolate(5)
        n.send(_prop(1, b"committed"))
        committed = n.raft(1).raft_log.committed
        assert committed == 2
        want = n.raft(1).raft_log.all_entries()[:committed]
        n.recover()
        n.send(_hup(5))
        assert n.raft(5).state != SL
        n.send(_hup(2))
        assert n.raft(2).state == SL
        for id_ in n.peers:
            r = n.raft(id_)
            if r.state == SL:
                assert r.raft_log.all_entries()[:committed] == want


def test_commit_rule_counts_replicas_only_in_current_term() -> None:
    """§5.4.2, figure 8: an entry of an earlier term is never committed by counting
    replicas, even once a majority stores it; it commits only together with an entry
    of the leader's own term (and then everything before it commits too, §5.3)."""
    n = new_network(None, None, None, None, None)
    n.send(_hup(1))
    # Leader 1 (term 1) gets entry 2 to node 2 only.
    n.isolate(1)
    n.drop(1, 2, 0.0)
    n.drop(2, 1, 0.0)
    n.send(_prop(1, b"term1"))
    assert n.raft(2).raft_log.last_index() == 2
    assert n.raft(1).raft_log.committed == 1
    # Node 5 wins term 2 with 3 and 4, and writes an entry nobody else gets.
    n.recover()
    n.isolate(5)
    for other in (3, 4):
        n.drop(5, other, 0.0)
        n.drop(other, 5, 0.0)
    n.ignore(MT.MsgApp)
    n.send(_hup(5))
    assert n.raft(5).state == SL
    assert n.raft(5).term == 2
    # Node 1 hears of term 2 (and steps down), then wins term 3 with 2, 3 and 4.
    n.recover()
    n.isolate(5)
    n.ignore(MT.MsgApp)
    n.send(Message(from_=5, to=1, type=MT.MsgHeartbeat, term=2))
    assert n.raft(1).state == SF
    n.send(_hup(1))
    lead = n.raft(1)
    assert lead.state == SL
    assert lead.term == 3
    # Copy the term-1 entry (and only it) to 2 and 3: it is now on a majority.
    e2 = lead.raft_log.all_entries()[1]
    assert (e2.term, e2.index) == (1, 2)
    for to in (2, 3):
        n.send(
            Message(
                from_=1, to=to, type=MT.MsgApp, term=3, index=1, log_term=1, entries=[e2], commit=1
            )
        )
    assert lead.trk.progress[2].match == 2
    assert lead.trk.progress[3].match == 2
    assert lead.raft_log.committed == 1
    # Once the term-3 entry reaches a majority, both commit at once.
    n.recover()
    n.isolate(5)
    n.send(Message(from_=1, to=1, type=MT.MsgBeat))
    assert lead.raft_log.committed == 3
    n.send(_prop(1, b"term3"))
    assert lead.raft_log.committed == 4
    assert [e.term for e in lead.raft_log.all_entries()] == [1, 1, 3, 3]
    # Node 5's term-2 entry was never committed anywhere and is gone once 5 catches up.
    n.recover()
    n.send(Message(from_=1, to=1, type=MT.MsgBeat))
    assert ltoa(n.raft(5).raft_log) == ltoa(lead.raft_log)
