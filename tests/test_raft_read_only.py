"""Read-only queries (ReadIndex), safe and lease-based, from etcd's raft_test.go.

Each test is the port of the etcd test it is named after.
"""

from __future__ import annotations

from raft_testutil import (
    advance_messages_after_append,
    index_terms,
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
from raftcore.config import ReadOnlyOption
from raftcore.raft import Raft, StateType
from raftcore.raftpb.types import Entry, HardState, Message, MessageType

MT = MessageType
SL = StateType.StateLeader


def _prop(id_: int) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgProp, entries=[Entry()])


def _read_index(id_: int, ctx: bytes) -> Message:
    return Message(from_=id_, to=id_, type=MT.MsgReadIndex, entries=[Entry(data=ctx)])


def _three() -> tuple[Raft, Raft, Raft]:
    rs = [new_test_raft(i, 10, 1, new_test_memory_storage(with_peers(1, 2, 3))) for i in (1, 2, 3)]
    return rs[0], rs[1], rs[2]


def test_raft_frees_read_only_mem() -> None:
    """A confirmed read request is dropped from the leader's queue (etcd issue 7571)."""
    sm = new_test_raft(1, 5, 1, new_test_memory_storage(with_peers(1, 2)))
    sm.become_candidate()
    sm.become_leader()
    sm.raft_log.commit_to(sm.raft_log.last_index())

    req_ctx = b"ctx"

    # The leader starts a linearizable read (raft dissertation 6.4, step 2).
    sm.step(Message(from_=2, type=MT.MsgReadIndex, entries=[Entry(data=req_ctx)]))
    msgs = read_messages(sm)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgHeartbeat
    assert len(sm.read_only.unconfirmed_reads) == 1

    # Heartbeat responses from a majority of followers (1 here) acknowledge the
    # leader's authority (raft dissertation 6.4, step 3).
    sm.step(Message(from_=2, type=MT.MsgHeartbeatResp, context=msgs[0].context))
    assert len(sm.read_only.unconfirmed_reads) == 0


_READ_CASES = [
    (1, 10, 11, b"ctx1"),
    (2, 10, 21, b"ctx2"),
    (3, 10, 31, b"ctx3"),
    (1, 10, 41, b"ctx4"),
    (2, 10, 51, b"ctx5"),
    (3, 10, 61, b"ctx6"),
]


def _test_read_only_option(option: ReadOnlyOption) -> None:
    """Reads at the leader or at a follower (forwarded) get the commit index as their
    read index, with safe (heartbeat-confirmed) and lease-based reads alike.
    (etcd: TestReadOnlyOptionSafe, TestReadOnlyOptionLease.)"""
    a, b, c = _three()
    if option == ReadOnlyOption.ReadOnlyLeaseBased:
        for r in (a, b, c):
            r.read_only.option = ReadOnlyOption.ReadOnlyLeaseBased
            r.check_quorum = True

    nt = new_network(a, b, c)
    set_randomized_election_timeout(b, b.election_timeout + 1)

    for _ in range(b.election_timeout):
        b.tick()
    nt.send(Message(from_=1, to=1, type=MT.MsgHup))

    assert a.state == SL

    for i, (id_, proposals, wri, wctx) in enumerate(_READ_CASES):
        for _ in range(proposals):
            nt.send(_prop(1))

        nt.send(_read_index(id_, wctx))

        r = nt.raft(id_)
        assert r.read_states, f"#{i}"
        rs = r.read_states[0]
        assert rs.index == wri, f"#{i}"
        assert rs.request_ctx == wctx, f"#{i}"
        r.read_states = []


def test_read_only_option_safe() -> None:
    _test_read_only_option(ReadOnlyOption.ReadOnlySafe)


def test_read_only_option_lease() -> None:
    _test_read_only_option(ReadOnlyOption.ReadOnlyLeaseBased)


def test_read_only_with_learner() -> None:
    """A learner's read is forwarded to the leader and confirmed by the voters only."""
    s = new_test_memory_storage(with_peers(1), with_learners(2))
    a = new_test_learner_raft(1, 10, 1, s)
    b = new_test_learner_raft(2, 10, 1, new_test_memory_storage(with_peers(1), with_learners(2)))

    nt = new_network(a, b)
    set_randomized_election_timeout(b, b.election_timeout + 1)

    for _ in range(b.election_timeout):
        b.tick()
    nt.send(Message(from_=1, to=1, type=MT.MsgHup))

    assert a.state == SL

    cases = [(1, 10, 11, b"ctx1"), (2, 10, 21, b"ctx2"), (1, 10, 31, b"ctx3"), (2, 10, 41, b"ctx4")]
    for i, (id_, proposals, wri, wctx) in enumerate(cases):
        for _ in range(proposals):
            nt.send(_prop(1))
            next_ents(a, s)  # append the entries on the leader

        nt.send(_read_index(id_, wctx))

        r = nt.raft(id_)
        assert r.read_states, f"#{i}"
        rs = r.read_states[0]
        assert rs.index == wri, f"#{i}"
        assert rs.request_ctx == wctx, f"#{i}"
        r.read_states = []


def test_read_only_for_new_leader() -> None:
    """A new leader answers reads only once it has committed an entry of its term;
    a read arriving earlier is held and answered then."""
    node_configs = [
        # id, committed, applied, compact index
        (1, 1, 1, 0),
        (2, 2, 2, 2),
        (3, 2, 2, 2),
    ]
    peers: list[Raft | None] = []
    for id_, committed, applied, compact_index in node_configs:
        storage = new_test_memory_storage(with_peers(1, 2, 3))
        storage.append(index_terms(1, 1, 1))
        storage.set_hard_state(HardState(term=1, commit=committed))
        if compact_index != 0:
            storage.compact(compact_index)
        cfg = new_test_config(id_, 10, 1, storage)
        cfg.applied = applied
        peers.append(Raft(cfg))
    nt = new_network(*peers)

    # Drop MsgApp so that peer 1 cannot commit an entry of its term once leader.
    nt.ignore(MT.MsgApp)
    # Force peer 1 to become leader.
    nt.send(Message(from_=1, to=1, type=MT.MsgHup))

    sm = nt.raft(1)
    assert sm.state == SL

    # The read is held back.
    windex = 4
    wctx = b"ctx"
    nt.send(_read_index(1, wctx))
    assert sm.read_states == []

    nt.recover()

    # Force peer 1 to commit an entry of its term.
    for _ in range(sm.heartbeat_timeout):
        sm.tick()
    nt.send(_prop(1))
    assert sm.raft_log.committed == 4
    last_log_term = sm.raft_log.zero_term_on_out_of_bounds(sm.raft_log.committed)
    assert last_log_term == sm.term

    # The postponed read was answered after that commit.
    assert len(sm.read_states) == 1
    rs = sm.read_states[0]
    assert rs.index == windex
    assert rs.request_ctx == wctx

    # Reads are now answered directly.
    nt.send(_read_index(1, wctx))
    assert len(sm.read_states) == 2
    rs = sm.read_states[1]
    assert rs.index == windex
    assert rs.request_ctx == wctx


def test_read_only_duplicate_request() -> None:
    """Duplicate ReadIndex requests with the same context (network or client retries)
    never yield a read index too small for linearizability."""
    r1, r2, r3 = _three()
    net = new_network(r1, r2, r3)

    # Delayed until a new leader gets elected and commits a new entry.
    delayed_msgs: list[Message] = []

    # A hook that delays (but does not duplicate) only heartbeat responses.
    def delay_heartbeat_resps(m: Message) -> bool:
        if m.type == MT.MsgHeartbeatResp:
            delayed_msgs.append(m)
            return False
        return True

    # elect r1 as leader
    net.send(Message(from_=1, to=1, type=MT.MsgHup))

    # Read A: its eventual read index must be at least read_index_minimum_a.
    read_index_msg_a = Message(from_=2, to=1, type=MT.MsgReadIndex, entries=[Entry(data=b"A")])
    read_index_minimum_a = r1.raft_log.committed

    # Duplicate read A for later, as the network or a retrying client would.
    delayed_msgs.append(read_index_msg_a)

    # Process the read, but delay the heartbeats until the end of this test.
    net.msg_hook = delay_heartbeat_resps
    net.send(read_index_msg_a)
    net.msg_hook = None  # stop delaying

    # Tick and send whatever raft wants to send; this finishes processing read A.
    r1.tick()
    advance_messages_after_append(r1)
    msgs = r1.msgs
    r1.msgs = []
    net.send(*msgs)

    net.isolate(r1.id)

    # Elect r2 as leader, and commit a new entry.
    net.send(Message(from_=2, to=2, type=MT.MsgHup))
    net.send(Message(from_=2, to=2, type=MT.MsgProp, entries=[Entry(data=b"someOp")]))

    # Read B from the disconnected, stale leader r1: its eventual read index must be
    # at least read_index_minimum_b.
    read_index_msg_b = Message(from_=1, to=1, type=MT.MsgReadIndex, entries=[Entry(data=b"B")])
    read_index_minimum_b = r2.raft_log.committed

    net.send(read_index_msg_b)
    net.recover()
    # Send the delayed read A first, then the delayed heartbeats. This must not
    # confirm B.
    net.send(*delayed_msgs)

    # The read indexes are not too small (which would violate linearizability).
    for rd in [*r1.read_states, *r2.read_states, *r3.read_states]:
        if rd.request_ctx == b"A":
            assert rd.index >= read_index_minimum_a
        elif rd.request_ctx == b"B":
            assert rd.index >= read_index_minimum_b
