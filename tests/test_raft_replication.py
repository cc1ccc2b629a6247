"""Log replication, commit rules, conflicts, proposals and flow control (from etcd's
raft_test.go). Each test is the port of the etcd test it is named after."""

from __future__ import annotations

import pytest

from raft_testutil import (
    NOP_STEPPER,
    BlackHole,
    add_node,
    advance_messages_after_append,
    expect_one_message,
    index_terms,
    ltoa,
    must_append_entry,
    new_log,
    new_network,
    new_test_config,
    new_test_learner_raft,
    new_test_memory_storage,
    new_test_raft,
    next_ents,
    read_messages,
    set_randomized_election_timeout,
    with_learners,
    with_peers,
)
from raftcore.describe import describe_message
from raftcore.errors import ProposalDroppedError
from raftcore.raft import Raft, StateType, step_candidate, step_follower, step_leader
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.storage import MemoryStorage
from raftcore.tracker import StateType as ProgressStateType
from raftcore.util import NONE, payload_size, payloads_size

MT = MessageType
SF = StateType.StateFollower
SC = StateType.StateCandidate
SL = StateType.StateLeader


def _hup(id_: int) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgHup)


def _prop(id_: int, data: bytes = b"") -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgProp, entries=[Entry(data=data)])


def _leader(*peers: int, election: int = 5, storage: MemoryStorage | None = None) -> Raft:
    s = storage if storage is not None else new_test_memory_storage(with_peers(*peers))
    r = new_test_raft(1, election, 1, s)
    r.become_candidate()
    r.become_leader()
    return r


# --------------------------------------------------------------------------- progress


def test_progress_leader() -> None:
    s = new_test_memory_storage(with_peers(1, 2))
    r = _leader(storage=s)
    r.trk.progress[2].become_replicate()

    # Send proposals to r1. The first 5 entries should be queued in the unstable log.
    for _ in range(5):
        r.step(_prop(1, b"foo"))

    assert r.trk.progress[1].match == 0

    ents = r.raft_log.next_unstable_ents()
    assert len(ents) == 6
    assert len(ents[0].data) == 0
    assert ents[5].data == b"foo"

    advance_messages_after_append(r)

    assert r.trk.progress[1].match == 6
    assert r.trk.progress[1].next == 7


def test_progress_resume_by_heartbeat_resp() -> None:
    """A heartbeat response unpauses the follower's progress."""
    r = _leader(1, 2)

    r.trk.progress[2].msg_app_flow_paused = True

    r.step(Message(from_=1, to=1, type=MT.MsgBeat))
    assert r.trk.progress[2].msg_app_flow_paused

    r.trk.progress[2].become_replicate()
    assert not r.trk.progress[2].msg_app_flow_paused
    r.trk.progress[2].msg_app_flow_paused = True
    r.step(Message(from_=2, to=1, type=MT.MsgHeartbeatResp))
    assert not r.trk.progress[2].msg_app_flow_paused


def test_progress_paused() -> None:
    r = _leader(1, 2)
    for _ in range(3):
        r.step(_prop(1, b"somedata"))

    assert len(read_messages(r)) == 1


def test_progress_flow_control() -> None:
    """In StateReplicate the leader sends as many appends as MaxInflightMsgs and
    MaxInflightBytes allow, each up to MaxSizePerMsg."""
    cfg = new_test_config(1, 5, 1, new_test_memory_storage(with_peers(1, 2)))
    cfg.max_inflight_msgs = 3
    cfg.max_size_per_msg = 2048
    cfg.max_inflight_bytes = 9000  # a little over max_inflight_msgs * max_size_per_msg
    r = Raft(cfg)
    r.become_candidate()
    r.become_leader()

    # Throw away all the messages relating to the initial election.
    read_messages(r)

    # While node 2 is in probe state, propose a bunch of entries.
    r.trk.progress[2].become_probe()
    blob = b"a" * 1000
    large = b"b" * 5000
    for i in range(22):
        data = large if 10 <= i < 16 else blob  # temporarily send large messages
        r.step(_prop(1, data))

    ms = read_messages(r)
    # The first append has two entries: the empty entry confirming the election and
    # the first proposal (only one proposal goes out in probe state).
    assert len(ms) == 1
    assert ms[0].type == MT.MsgApp
    assert len(ms[0].entries) == 2
    assert len(ms[0].entries[0].data) == 0
    assert len(ms[0].entries[1].data) == 1000

    def ack_and_verify(index: int, *exp_entries: int) -> int:
        r.step(Message(from_=2, to=1, type=MT.MsgAppResp, index=index))
        ms = read_messages(r)
        assert len(ms) == len(exp_entries)
        for i, m in enumerate(ms):
            assert m.type == MT.MsgApp, f"#{i}"
            assert len(m.entries) == exp_entries[i], f"#{i}"
        last = ms[-1].entries
        if len(last) == 0:
            return index
        return last[-1].index

    # When this append is acked, we change to replicate state and can send multiple
    # messages at once.
    index = ack_and_verify(ms[0].entries[1].index, 2, 2, 2)
    # Ack all three of those together and get another 3 messages. The third one holds
    # a single large entry, in contrast to 2 before.
    index = ack_and_verify(index, 2, 1, 1)
    # All subsequent messages contain one large entry, capped at 2 messages because
    # a third would overflow max_inflight_bytes.
    index = ack_and_verify(index, 1, 1)
    index = ack_and_verify(index, 1, 1)
    # Small messages again.
    index = ack_and_verify(index, 1, 2, 2)
    ack_and_verify(index, 2)


def test_uncommitted_entry_limit() -> None:
    """Proposals beyond max_uncommitted_entries_size are dropped, except the first one
    into an empty tail (however large) and entries without payload; the size shrinks
    back as entries commit. Many entries guard against a miscounted size."""
    max_entries = 1024
    test_entry = Entry(data=b"testdata")
    max_entry_size = max_entries * payload_size(test_entry)

    assert payload_size(Entry(data=b"")) == 0

    cfg = new_test_config(1, 5, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    cfg.max_uncommitted_entries_size = max_entry_size
    cfg.max_inflight_msgs = 2 * 1024  # avoid interference
    r = Raft(cfg)
    r.become_candidate()
    r.become_leader()
    assert r.uncommitted_size == 0

    # Set the two followers to the replicate state. Commit to tail of log.
    num_followers = 2
    r.trk.progress[2].become_replicate()
    r.trk.progress[3].become_replicate()
    r.uncommitted_size = 0

    # Send proposals to r1. The first max_entries entries are appended to the log.
    def prop_msg() -> Message:
        return Message(from_=1, to=1, type=MT.MsgProp, entries=[test_entry])

    prop_ents = []
    for _ in range(max_entries):
        r.step(prop_msg())
        prop_ents.append(test_entry)

    # One more proposal is rejected.
    with pytest.raises(ProposalDroppedError):
        r.step(prop_msg())

    # Read messages and reduce the uncommitted size as if the entries had committed.
    ms = read_messages(r)
    assert len(ms) == max_entries * num_followers
    r.reduce_uncommitted_size(payloads_size(prop_ents))
    assert r.uncommitted_size == 0

    # A single large proposal is accepted although it pushes us above the limit,
    # because we were below it before.
    prop_ents = [test_entry] * (2 * max_entries)
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=list(prop_ents)))

    # One more proposal is rejected, again.
    with pytest.raises(ProposalDroppedError):
        r.step(prop_msg())

    # But an entry without data can always be appended: the leader's empty entry and
    # the automatic leave-joint proposal rely on it.
    r.step(Message(from_=1, to=1, type=MT.MsgProp, entries=[Entry()]))

    # Read messages and reduce the uncommitted size as if the entries had committed.
    ms = read_messages(r)
    assert len(ms) == 2 * num_followers
    r.reduce_uncommitted_size(payloads_size(prop_ents))
    assert r.uncommitted_size == 0


# --------------------------------------------------------------------------- replication


@pytest.mark.parametrize(
    ("msgs", "wcommitted"),
    [
        ([_prop(1, b"somedata")], 2),
        (
            [
                _prop(1, b"somedata"),
                Message(from_=1, to=2, type=MT.MsgHup),
                Message(from_=1, to=2, type=MT.MsgProp, entries=[Entry(data=b"somedata")]),
            ],
            4,
        ),
    ],
)
def test_log_replication(msgs: list[Message], wcommitted: int) -> None:
    tt = new_network(None, None, None)
    props = [m for m in msgs if m.type == MT.MsgProp]
    prop_data = [m.entries[0].data for m in props]

    tt.send(_hup(1))
    for m in msgs:
        tt.send(m)

    for j in tt.peers:
        sm = tt.raft(j)
        assert sm.raft_log.committed == wcommitted, f"#{j}"

        ents = [e for e in next_ents(sm, tt.storage[j]) if e.data]
        for k, data in enumerate(prop_data):
            assert ents[k].data == data, f"#{j}.{k}"


def test_learner_log_replication() -> None:
    """A learner receives (and learns the commit of) the leader's entries."""
    s1 = new_test_memory_storage(with_peers(1), with_learners(2))
    n1 = new_test_learner_raft(1, 10, 1, s1)
    n2 = new_test_learner_raft(2, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))

    nt = new_network(n1, n2)

    n1.become_follower(1, NONE)
    n2.become_follower(1, NONE)

    set_randomized_election_timeout(n1, n1.election_timeout)
    for _ in range(n1.election_timeout):
        n1.tick()
    advance_messages_after_append(n1)

    nt.send(Message(from_=1, to=1, type=MT.MsgBeat))

    # n1 is leader and n2 is learner
    assert n1.state == SL
    assert n2.is_learner

    next_committed = 2
    nt.send(_prop(1, b"somedata"))

    assert n1.raft_log.committed == next_committed
    assert n2.raft_log.committed == n1.raft_log.committed

    match = n1.trk.progress[2].match
    assert match == n2.raft_log.committed


def test_single_node_commit() -> None:
    s = new_test_memory_storage(with_peers(1))
    r = Raft(new_test_config(1, 10, 1, s))
    tt = new_network(r)
    tt.send(_hup(1))
    tt.send(_prop(1, b"some data"))
    tt.send(_prop(1, b"some data"))

    assert tt.raft(1).raft_log.committed == 3


def test_cannot_commit_without_new_term_entry() -> None:
    """§5.4.2 in a cluster: a new leader does not commit its predecessor's entries
    while its own (term) entry cannot be replicated."""
    tt = new_network(None, None, None, None, None)
    tt.send(_hup(1))

    # 1 cannot reach 3, 4, 5
    tt.cut(1, 3)
    tt.cut(1, 4)
    tt.cut(1, 5)

    tt.send(_prop(1, b"some data"))
    tt.send(_prop(1, b"some data"))

    assert tt.raft(1).raft_log.committed == 1

    # network recovery
    tt.recover()
    # avoid committing the new leader's empty entry
    tt.ignore(MT.MsgApp)

    # elect 2 as the new leader with term 2
    tt.send(_hup(2))

    # no log entries from the previous term are committed
    sm = tt.raft(2)
    assert sm.raft_log.committed == 1

    tt.recover()
    # send heartbeat; reset wait
    tt.send(Message(from_=2, to=2, type=MT.MsgBeat))
    # append an entry at the current term
    tt.send(_prop(2, b"some data"))
    # the commit index advances
    assert sm.raft_log.committed == 5


def test_commit_without_new_term_entry() -> None:
    """A new leader's empty entry commits its predecessor's entries without any new
    proposal."""
    tt = new_network(None, None, None, None, None)
    tt.send(_hup(1))

    # 1 cannot reach 3, 4, 5
    tt.cut(1, 3)
    tt.cut(1, 4)
    tt.cut(1, 5)

    tt.send(_prop(1, b"some data"))
    tt.send(_prop(1, b"some data"))

    sm = tt.raft(1)
    assert sm.raft_log.committed == 1

    # network recovery
    tt.recover()

    # Elect 2 as the new leader with term 2. Once its empty entry of the current term
    # is appended, all entries are committed.
    tt.send(_hup(2))

    assert sm.raft_log.committed == 4


def test_old_messages() -> None:
    """An append from an old leader (older term) is ignored."""
    tt = new_network(None, None, None)
    # make 1 leader @ term 3
    tt.send(_hup(1))
    tt.send(_hup(2))
    tt.send(_hup(1))
    # pretend we're an old leader trying to make progress; this entry is ignored
    tt.send(Message(from_=2, to=1, type=MT.MsgApp, term=2, entries=index_terms(3, 2)))
    # commit a new entry
    tt.send(_prop(1, b"somedata"))

    ents = index_terms(0, 0, 1, 2, 3, 3)
    ents[4].data = b"somedata"
    base = ltoa(new_log(MemoryStorage(ents=ents)))
    for id_ in tt.peers:
        assert ltoa(tt.raft(id_).raft_log) == base, f"#{id_}"


@pytest.mark.parametrize(
    ("peers", "success"),
    [
        ((None, None, None), True),
        ((None, None, NOP_STEPPER), True),
        ((None, NOP_STEPPER, NOP_STEPPER), False),
        ((None, NOP_STEPPER, NOP_STEPPER, None), False),
        ((None, NOP_STEPPER, NOP_STEPPER, None, None), True),
    ],
)
def test_proposal(peers: tuple[BlackHole | None, ...], success: bool) -> None:
    """A proposal is committed everywhere when a quorum is alive; otherwise no leader
    is elected and the proposal goes nowhere."""
    tt = new_network(*peers)
    data = b"somedata"

    # promote 1 to become leader
    tt.send(_hup(1))
    tt.send(_prop(1, data))
    r = tt.raft(1)

    want_log = new_log(MemoryStorage())
    if success:
        want_log = new_log(
            MemoryStorage(ents=[Entry(), Entry(term=1, index=1), Entry(term=1, index=2, data=data)])
        )
    base = ltoa(want_log)
    for id_, p in tt.peers.items():
        if isinstance(p, Raft):
            assert ltoa(p.raft_log) == base, f"peer {id_}"
    assert r.term == 1


@pytest.mark.parametrize("peers", [(None, None, None), (None, None, NOP_STEPPER)])
def test_proposal_by_proxy(peers: tuple[BlackHole | None, ...]) -> None:
    """A proposal made at a follower is forwarded to the leader and committed."""
    tt = new_network(*peers)
    data = b"somedata"
    # promote 1 the leader
    tt.send(_hup(1))

    # propose via follower
    tt.send(_prop(2, data))

    want_log = new_log(
        MemoryStorage(ents=[Entry(), Entry(term=1, index=1), Entry(term=1, index=2, data=data)])
    )
    base = ltoa(want_log)
    for id_, p in tt.peers.items():
        if isinstance(p, Raft):
            assert ltoa(p.raft_log) == base, f"peer {id_}"
    assert tt.raft(1).term == 1


@pytest.mark.parametrize(
    ("matches", "logs", "sm_term", "w"),
    [
        # single
        ([1], index_terms(1, 1), 1, 1),
        ([1], index_terms(1, 1), 2, 0),
        ([2], index_terms(1, 1, 2), 2, 2),
        ([1], index_terms(1, 2), 2, 1),
        # odd
        ([2, 1, 1], index_terms(1, 1, 2), 1, 1),
        ([2, 1, 1], index_terms(1, 1, 1), 2, 0),
        ([2, 1, 2], index_terms(1, 1, 2), 2, 2),
        ([2, 1, 2], index_terms(1, 1, 1), 2, 0),
        # even
        ([2, 1, 1, 1], index_terms(1, 1, 2), 1, 1),
        ([2, 1, 1, 1], index_terms(1, 1, 1), 2, 0),
        ([2, 1, 1, 2], index_terms(1, 1, 2), 1, 1),
        ([2, 1, 1, 2], index_terms(1, 1, 1), 2, 0),
        ([2, 1, 2, 2], index_terms(1, 1, 2), 2, 2),
        ([2, 1, 2, 2], index_terms(1, 1, 1), 2, 0),
    ],
)
def test_commit(matches: list[int], logs: list[Entry], sm_term: int, w: int) -> None:
    """maybe_commit commits the highest index a quorum has matched, and only if that
    entry is of the current term (§5.3, §5.4.2)."""
    storage = new_test_memory_storage(with_peers(1))
    storage.append(logs)
    storage.hard_state = HardState(term=sm_term)

    sm = new_test_raft(1, 10, 2, storage)
    for j, m in enumerate(matches):
        id_ = j + 1
        if id_ > 1:
            add_node(sm, id_)
        pr = sm.trk.progress[id_]
        pr.match, pr.next = m, m + 1
    sm.maybe_commit()
    assert sm.raft_log.committed == w


@pytest.mark.parametrize(
    ("m", "w_index", "w_commit", "w_reject"),
    [
        # Ensure 1: reject if the log has no entry at index with the given term
        (Message(type=MT.MsgApp, term=2, log_term=3, index=2, commit=3), 2, 0, True),
        (Message(type=MT.MsgApp, term=2, log_term=3, index=3, commit=3), 2, 0, True),
        # Ensure 2: delete conflicting entries, append new ones
        (Message(type=MT.MsgApp, term=2, log_term=1, index=1, commit=1), 2, 1, False),
        (
            Message(
                type=MT.MsgApp,
                term=2,
                log_term=0,
                index=0,
                commit=1,
                entries=[Entry(index=1, term=2)],
            ),
            1,
            1,
            False,
        ),
        (
            Message(
                type=MT.MsgApp,
                term=2,
                log_term=2,
                index=2,
                commit=3,
                entries=[Entry(index=3, term=2), Entry(index=4, term=2)],
            ),
            4,
            3,
            False,
        ),
        (
            Message(
                type=MT.MsgApp,
                term=2,
                log_term=2,
                index=2,
                commit=4,
                entries=[Entry(index=3, term=2)],
            ),
            3,
            3,
            False,
        ),
        (
            Message(
                type=MT.MsgApp,
                term=2,
                log_term=1,
                index=1,
                commit=4,
                entries=[Entry(index=2, term=2)],
            ),
            2,
            2,
            False,
        ),
        # Ensure 3: commit = min(leader commit, index of last new entry)
        # match entry 1, commit up to last new entry 1
        (Message(type=MT.MsgApp, term=1, log_term=1, index=1, commit=3), 2, 1, False),
        # match entry 1, commit up to last new entry 2
        (
            Message(
                type=MT.MsgApp,
                term=1,
                log_term=1,
                index=1,
                commit=3,
                entries=[Entry(index=2, term=2)],
            ),
            2,
            2,
            False,
        ),
        # match entry 2, commit up to last new entry 2
        (Message(type=MT.MsgApp, term=2, log_term=2, index=2, commit=3), 2, 2, False),
        # commit up to log.last()
        (Message(type=MT.MsgApp, term=2, log_term=2, index=2, commit=4), 2, 2, False),
    ],
)
def test_handle_msg_app(m: Message, w_index: int, w_commit: int, w_reject: bool) -> None:
    """AppendEntries (§5.3): 1. reply false if the log lacks an entry at prevLogIndex
    with prevLogTerm; 2. delete conflicting entries and append new ones; 3. if
    leaderCommit > commitIndex, commit min(leaderCommit, index of last new entry)."""
    storage = new_test_memory_storage(with_peers(1))
    storage.append(index_terms(1, 1, 2))
    sm = new_test_raft(1, 10, 1, storage)
    sm.become_follower(2, NONE)

    sm.handle_append_entries(m)
    assert sm.raft_log.last_index() == w_index
    assert sm.raft_log.committed == w_commit
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].reject == w_reject


@pytest.mark.parametrize(
    ("commit_delta", "w_commit"),
    [(1, 3), (-1, 2)],  # the second: never decrease the commit index
)
def test_handle_heartbeat(commit_delta: int, w_commit: int) -> None:
    """A follower commits up to the heartbeat's commit index."""
    commit = 2
    m = Message(from_=2, to=1, type=MT.MsgHeartbeat, term=2, commit=commit + commit_delta)
    storage = new_test_memory_storage(with_peers(1, 2))
    storage.append(index_terms(1, 1, 2, 3))
    sm = new_test_raft(1, 5, 1, storage)
    sm.become_follower(2, 2)
    sm.raft_log.commit_to(commit)
    sm.handle_heartbeat(m)
    assert sm.raft_log.committed == w_commit
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgHeartbeatResp


def test_handle_heartbeat_resp() -> None:
    """Heartbeat responses from a lagging follower make the leader resend entries."""
    storage = new_test_memory_storage(with_peers(1, 2))
    storage.append(index_terms(1, 1, 2, 3))
    sm = _leader(storage=storage)
    sm.raft_log.commit_to(sm.raft_log.last_index())

    # A heartbeat response from a node that is behind; re-send MsgApp
    sm.step(Message(from_=2, type=MT.MsgHeartbeatResp))
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgApp

    # A second heartbeat response generates another MsgApp re-send
    sm.step(Message(from_=2, type=MT.MsgHeartbeatResp))
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgApp

    # Once we have an MsgAppResp, heartbeats no longer send MsgApp.
    sm.step(Message(from_=2, type=MT.MsgAppResp, index=msgs[0].index + len(msgs[0].entries)))
    # Consume the message sent in response to MsgAppResp
    read_messages(sm)

    sm.step(Message(from_=2, type=MT.MsgHeartbeatResp))
    assert read_messages(sm) == []


def test_msg_app_resp_wait_reset() -> None:
    """A follower's MsgAppResp ends its probing wait: the next proposal goes to it at
    once, while a follower still waiting gets it only after its own ack."""
    s = new_test_memory_storage(with_peers(1, 2, 3))
    sm = _leader(storage=s)

    # Run n1, which includes sending a message like the one below to n2, but also
    # appending to its own log.
    next_ents(sm, s)

    # Node 2 acks the first entry, making it committed.
    sm.step(Message(from_=2, type=MT.MsgAppResp, index=1))
    assert sm.raft_log.committed == 1

    # Also consume the MsgApp messages that update commit on the followers.
    read_messages(sm)

    # A new command is now proposed on node 1.
    sm.step(Message(from_=1, type=MT.MsgProp, entries=[Entry()]))

    # The command is broadcast to all nodes not in the wait state. Node 2 left it with
    # its MsgAppResp, node 3 is still waiting.
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgApp
    assert msgs[0].to == 2
    assert len(msgs[0].entries) == 1
    assert msgs[0].entries[0].index == 2

    # Now node 3 acks the first entry. This releases the wait and entry 2 is sent.
    sm.step(Message(from_=3, type=MT.MsgAppResp, index=1))
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgApp
    assert msgs[0].to == 3
    assert len(msgs[0].entries) == 1
    assert msgs[0].entries[0].index == 2


@pytest.mark.parametrize(
    ("index", "reject", "wmatch", "wnext", "wmsg_num", "windex", "wcommitted"),
    [
        (3, True, 0, 3, 0, 0, 0),  # stale resp; no replies
        # denied resp; leader does not commit; decrease next and send probing msg
        (2, True, 0, 2, 1, 1, 0),
        # accept resp; leader commits; broadcast with commit index
        (2, False, 2, 4, 2, 2, 2),
        # The follower probes at 0 and acks 0 (its match): it moves to StateReplicate
        # and gets everything the leader has (1, 2 and 3), so next is 4.
        (0, False, 0, 4, 1, 0, 0),
    ],
)
def test_leader_app_resp(
    index: int,
    reject: bool,
    wmatch: int,
    wnext: int,
    wmsg_num: int,
    windex: int,
    wcommitted: int,
) -> None:
    # The leader's term is 1 once elected, so the last log term must be 1 to commit.
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    sm.raft_log = new_log(MemoryStorage(ents=index_terms(0, 0, 1, 1)))
    sm.become_candidate()
    sm.become_leader()
    read_messages(sm)
    sm.step(
        Message(
            from_=2,
            type=MT.MsgAppResp,
            index=index,
            term=sm.term,
            reject=reject,
            reject_hint=index,
        )
    )

    p = sm.trk.progress[2]
    assert p.match == wmatch
    assert p.next == wnext

    msgs = read_messages(sm)
    assert len(msgs) == wmsg_num
    for msg in msgs:
        assert msg.index == windex, describe_message(msg)
        assert msg.commit == wcommitted, describe_message(msg)


def test_bcast_beat() -> None:
    """A heartbeat carries no index, log term or entries, and tells each follower to
    commit no further than its match."""
    offset = 1000
    # a state machine whose log starts at 1000
    s = Snapshot(
        metadata=SnapshotMetadata(index=offset, term=1, conf_state=ConfState(voters=[1, 2, 3]))
    )
    storage = MemoryStorage()
    storage.apply_snapshot(s)
    sm = new_test_raft(1, 10, 1, storage)
    sm.term = 1

    sm.become_candidate()
    sm.become_leader()
    for i in range(10):
        must_append_entry(sm, Entry(index=i + 1))
    advance_messages_after_append(sm)

    # slow follower
    sm.trk.progress[2].match, sm.trk.progress[2].next = 5, 6
    # normal follower
    last = sm.raft_log.last_index()
    sm.trk.progress[3].match, sm.trk.progress[3].next = last, last + 1

    sm.step(Message(type=MT.MsgBeat))
    msgs = read_messages(sm)
    assert len(msgs) == 2

    want_commit = {
        2: min(sm.raft_log.committed, sm.trk.progress[2].match),
        3: min(sm.raft_log.committed, sm.trk.progress[3].match),
    }
    for i, m in enumerate(msgs):
        assert m.type == MT.MsgHeartbeat, f"#{i}"
        assert m.index == 0, f"#{i}"
        assert m.log_term == 0, f"#{i}"
        assert m.to in want_commit, f"#{i}"
        assert m.commit == want_commit.pop(m.to), f"#{i}"
        assert len(m.entries) == 0, f"#{i}"


@pytest.mark.parametrize(("state", "w_msg"), [(SL, 2), (SC, 0), (SF, 0)])
def test_recv_msg_beat(state: StateType, w_msg: int) -> None:
    """Only a leader answers MsgBeat (with heartbeats)."""
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2, 3)))
    sm.raft_log = new_log(MemoryStorage(ents=index_terms(0, 0, 1, 1)))
    sm.term = 1
    sm.state = state
    if state == SF:
        sm.step_fn = step_follower
    elif state == SC:
        sm.step_fn = step_candidate
    else:
        sm.step_fn = step_leader
    sm.step(Message(from_=1, to=1, type=MT.MsgBeat))

    msgs = read_messages(sm)
    assert len(msgs) == w_msg
    for m in msgs:
        assert m.type == MT.MsgHeartbeat


@pytest.mark.parametrize(
    ("state", "next_", "wnext"),
    [
        # replicate: optimistically increase next (previous entries + empty entry +
        # proposal + 1)
        (ProgressStateType.StateReplicate, 2, 3 + 1 + 1 + 1),
        # probe: next does not move
        (ProgressStateType.StateProbe, 2, 2),
    ],
)
def test_leader_increase_next(state: ProgressStateType, next_: int, wnext: int) -> None:
    previous_ents = index_terms(1, 1, 2, 3)
    sm = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    sm.raft_log.append(previous_ents)
    sm.become_candidate()
    sm.become_leader()
    sm.trk.progress[2].state = state
    sm.trk.progress[2].next = next_
    sm.step(_prop(1, b"somedata"))

    assert sm.trk.progress[2].next == wnext


def test_send_append_for_progress_probe() -> None:
    """In StateProbe one MsgApp goes out, then the follower is paused until a
    heartbeat response."""
    r = _leader(1, 2, election=10)
    read_messages(r)
    r.trk.progress[2].become_probe()

    # each round is a heartbeat
    for i in range(3):
        if i == 0:
            # Only one MsgApp goes out in the first round; then the follower is
            # paused until a heartbeat response arrives.
            must_append_entry(r, Entry(data=b"somedata"))
            r.send_append(2)
            msg = read_messages(r)
            assert len(msg) == 1
            assert msg[0].index == 0

        assert r.trk.progress[2].msg_app_flow_paused
        for _ in range(10):
            must_append_entry(r, Entry(data=b"somedata"))
            r.send_append(2)
            assert read_messages(r) == []

        # do a heartbeat
        for _ in range(r.heartbeat_timeout):
            r.step(Message(from_=1, to=1, type=MT.MsgBeat))
        assert r.trk.progress[2].msg_app_flow_paused

        # consume the heartbeat
        msg = read_messages(r)
        assert len(msg) == 1
        assert msg[0].type == MT.MsgHeartbeat

    # a heartbeat response allows another message to be sent
    r.step(Message(from_=2, to=1, type=MT.MsgHeartbeatResp))
    msg = read_messages(r)
    assert len(msg) == 1
    assert msg[0].index == 0
    assert r.trk.progress[2].msg_app_flow_paused


def test_send_append_for_progress_replicate() -> None:
    r = _leader(1, 2, election=10)
    read_messages(r)
    r.trk.progress[2].become_replicate()

    for i in range(10):
        must_append_entry(r, Entry(data=b"somedata"))
        r.send_append(2)
        assert len(read_messages(r)) == 1, f"#{i}"


def test_send_append_for_progress_snapshot() -> None:
    r = _leader(1, 2, election=10)
    read_messages(r)
    r.trk.progress[2].become_snapshot(10)

    for i in range(10):
        must_append_entry(r, Entry(data=b"somedata"))
        r.send_append(2)
        assert read_messages(r) == [], f"#{i}"


def test_recv_msg_unreachable() -> None:
    """MsgUnreachable moves a replicating follower back to probing from its match."""
    s = new_test_memory_storage(with_peers(1, 2))
    s.append(index_terms(1, 1, 2, 3))
    r = _leader(storage=s)
    read_messages(r)
    # set node 2 to state replicate
    r.trk.progress[2].match = 3
    r.trk.progress[2].become_replicate()
    r.trk.progress[2].next = 6

    r.step(Message(from_=2, to=1, type=MT.MsgUnreachable))

    assert r.trk.progress[2].state == ProgressStateType.StateProbe
    assert r.trk.progress[2].next == r.trk.progress[2].match + 1


# --------------------------------------------------------------------------- conflicts


@pytest.mark.parametrize(
    (
        "leader_log",
        "follower_log",
        "follower_compact",
        "reject_hint_term",
        "reject_hint_index",
        "next_append_term",
        "next_append_index",
    ),
    [
        # The leader finds the conflict index quickly: it first appends at (index 7,
        # term 4) and, after the rejection, at (index 3, term 2).
        (index_terms(1, 1, 2, 2, 4, 4, 4, 4), index_terms(1, 1, 2, 2, *[3] * 8), 0, 3, 7, 2, 3),
        # The leader appends at (8, 5), then at (4, 3).
        (
            index_terms(1, 1, 2, 2, 3, 4, 4, 4, 5),
            index_terms(1, 1, 2, 2, *[3] * 8),
            0,
            3,
            8,
            3,
            4,
        ),
        # The follower finds the conflict index quickly: the leader appends at (4, 1),
        # then at (1, 1).
        (index_terms(1, 1, 1, 1, 1), index_terms(1, 1, 2, 2, 4), 0, 1, 1, 1, 1),
        # As above, with a longer uncommitted tail on the leader: (6, 1), then (1, 1).
        (index_terms(1, 1, 1, 1, 1, 1, 1), index_terms(1, 1, 2, 2, 4), 0, 1, 1, 1, 1),
        # As above, with a longer uncommitted tail on the follower: (4, 1), then (1, 1).
        (index_terms(1, 1, 1, 1, 1), index_terms(1, 1, 2, 2, 4, 4, 4), 0, 1, 1, 1, 1),
        # No conflict: the leader appends at (5, 5), then at (4, 4).
        (index_terms(1, 1, 1, 1, 4, 5), index_terms(1, 1, 1, 1, 4), 0, 4, 4, 4, 4),
        # The example in the leader's handling of rejections.
        (index_terms(1, 2, *[5] * 8), index_terms(1, 2, 4, 4, 4, 4, 4), 0, 4, 6, 2, 1),
        # The example in the follower's handling of appends.
        (index_terms(1, 2, 2, 2, 2, 2), index_terms(1, 2, *[4] * 7), 0, 2, 1, 2, 1),
        # A stale MsgApp (index 3, term 3, entries [(term 3, index 4)]) reaches a
        # follower that compacted past index 3. It rejects at index 3 with log term
        # 0; the leader backs off by one entry and appends at (2, 1).
        (index_terms(1, 1, 1, 3), index_terms(1, 1, 1, 3, 3, 3), 5, 0, 3, 1, 2),
    ],
)
def test_fast_log_rejection(
    leader_log: list[Entry],
    follower_log: list[Entry],
    follower_compact: int,
    reject_hint_term: int,
    reject_hint_index: int,
    next_append_term: int,
    next_append_index: int,
) -> None:
    """A follower's rejection hint lets the leader skip a whole divergent term per
    round trip, in both directions."""
    s1 = MemoryStorage()
    s1.snap.metadata.conf_state = ConfState(voters=[1, 2, 3])
    s1.append(leader_log)
    last = leader_log[-1]
    s1.set_hard_state(HardState(term=last.term - 1, commit=last.index))
    n1 = new_test_raft(1, 10, 1, s1)
    n1.become_candidate()  # bumps the term to last.term
    n1.become_leader()

    s2 = MemoryStorage()
    s2.snap.metadata.conf_state = ConfState(voters=[1, 2, 3])
    s2.append(follower_log)
    s2.set_hard_state(HardState(term=last.term, vote=1, commit=0))
    n2 = new_test_raft(2, 10, 1, s2)
    if follower_compact != 0:
        # n2's state is not realistic after this (its commit index is still 0); it
        # exercises a "doesn't happen" edge case in case it happens some other way.
        s2.compact(follower_compact)

    n2.step(Message(from_=1, to=2, type=MT.MsgHeartbeat))
    msgs = read_messages(n2)
    assert len(msgs) == 1, "can't read 1 message from peer 2"
    assert msgs[0].type == MT.MsgHeartbeatResp

    n1.step(msgs[0])
    msgs = read_messages(n1)
    assert len(msgs) == 1, "can't read 1 message from peer 1"
    assert msgs[0].type == MT.MsgApp

    n2.step(msgs[0])
    msgs = read_messages(n2)
    assert len(msgs) == 1, "can't read 1 message from peer 2"
    assert msgs[0].type == MT.MsgAppResp
    assert msgs[0].reject, "expected rejected append response from peer 2"
    assert msgs[0].log_term == reject_hint_term, "hint log term mismatch"
    assert msgs[0].reject_hint == reject_hint_index, "hint log index mismatch"

    n1.step(msgs[0])
    msgs = read_messages(n1)
    assert msgs[0].log_term == next_append_term
    assert msgs[0].index == next_append_index


def test_log_replication_with_reordered_message() -> None:
    """A delayed rejection arriving after the follower acked more must not take the
    leader's probe below the follower's match."""
    r1 = new_test_raft(1, 10, 1, new_test_memory_storage(with_peers(1, 2)))
    r1.become_candidate()
    r1.become_leader()
    read_messages(r1)
    r1.trk.progress[2].become_replicate()

    r2 = new_test_raft(2, 10, 1, new_test_memory_storage(with_peers(1, 2)))

    # r1 sends 2 MsgApp messages to r2.
    must_append_entry(r1, Entry(data=b"somedata"))
    r1.send_append(2)
    req1 = expect_one_message(r1)
    must_append_entry(r1, Entry(data=b"somedata"))
    r1.send_append(2)
    req2 = expect_one_message(r1)

    # r2 receives the second MsgApp first due to reordering.
    r2.step(req2)
    resp2 = expect_one_message(r2)
    # r2 rejects req2
    assert resp2.reject
    assert resp2.reject_hint == 0
    assert resp2.index == 2

    # r2 handles the first MsgApp and responds to r1, which updates its match.
    r2.step(req1)
    m = expect_one_message(r2)
    assert not m.reject
    assert m.index == 2
    r1.step(m)
    expect_one_message(r1)
    assert r1.trk.progress[2].match == 2

    # r1 observes a transient network issue to r2, hence moves it to probe state.
    r1.step(Message(from_=2, to=1, type=MT.MsgUnreachable))
    assert r1.trk.progress[2].state == ProgressStateType.StateProbe

    # now r1 receives the delayed resp2.
    r1.step(resp2)
    m = expect_one_message(r1)
    # r1 resends from the match index although resp2's hint is below it.
    assert m.index == r1.trk.progress[2].match
