"""Node, the thread driver: etcd's node_test.go cases, then 3-node clusters
(replication, membership, leadership transfer, ReadIndex, stress, stop/restart) in
both storage-write modes, then error handling and thread hygiene."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from cluster_util import ThreadCluster, wait_until
from raft_testutil import new_test_config, new_test_memory_storage, with_peers
from raftcore.errors import (
    NodeTimeoutError,
    ProposalDroppedError,
    RaftError,
    RaftPanic,
    StoppedError,
)
from raftcore.node import _PROP, _RECV, Node, restart_node, start_node
from raftcore.raft import Raft, StateType
from raftcore.raftpb.codec import entry_size
from raftcore.raftpb.confchange import marshal_conf_change, unmarshal_conf_change
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.rawnode import Peer, RawNode, Ready
from raftcore.storage import MemoryStorage
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NO_LIMIT, is_local_msg

pytestmark = pytest.mark.timeout(10)

CCT = ConfChangeType


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every test must leave no thread behind (Node.stop joins the raft loop)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked = set(threading.enumerate()) - before
    assert not leaked, f"leaked threads: {leaked}"


def new_node(storage: MemoryStorage, **overrides: object) -> Node:
    c = new_test_config(1, 10, 1, storage)
    for k, v in overrides.items():
        setattr(c, k, v)
    return Node(RawNode(c))


def become_leader(n: Node, s: MemoryStorage) -> None:
    """Campaign a single-node node and handle Readys until it leads (etcd's loop)."""
    n.campaign()
    while True:
        rd = n.ready(timeout=1)
        s.append(rd.entries)
        n.advance()
        if rd.soft_state is not None and rd.soft_state.lead == n.id:
            return


# --- etcd's node_test.go ------------------------------------------------------------


def test_node_step_routes_by_type(monkeypatch: pytest.MonkeyPatch) -> None:
    # TestNodeStep: proposals take the proposal path, local messages from the network
    # are ignored, the rest go to the receive path.
    n = new_node(new_test_memory_storage(with_peers(1)))
    try:
        seen: list[int] = []

        def submit(item: tuple[int, object, object], deadline: float | None) -> None:
            seen.append(item[0])

        def call(kind: int, arg: object, deadline: float | None) -> object:
            seen.append(kind)
            return None

        monkeypatch.setattr(n, "_submit", submit)
        monkeypatch.setattr(n, "_call", call)
        for t in MessageType:
            seen.clear()
            n.step(Message(type=t))
            if t == MessageType.MsgProp:
                assert seen == [_PROP], t
            elif is_local_msg(t):
                assert seen == [], t
            else:
                assert seen == [_RECV], t
        # Local messages from the local storage threads do get through.
        for frm in (LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD):
            seen.clear()
            n.step(Message(type=MessageType.MsgStorageAppendResp, from_=frm))
            assert seen == [_RECV]
    finally:
        monkeypatch.undo()
        n.stop()


def test_node_step_unblock() -> None:
    # TestNodeStepUnblock: a proposal blocked for want of a leader is released by stop
    # (StoppedError) or by its timeout (NodeTimeoutError).
    n = new_node(new_test_memory_storage(with_peers(1)))
    t0 = time.monotonic()
    with pytest.raises(NodeTimeoutError):
        n.propose(b"somedata", timeout=0.05)
    assert time.monotonic() - t0 < 1

    errs: list[BaseException] = []

    def blocked() -> None:
        try:
            n.propose(b"somedata")
        except BaseException as err:
            errs.append(err)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.02)
    assert not errs  # still blocked
    n.stop()
    t.join(1)
    assert not t.is_alive()
    assert len(errs) == 1 and isinstance(errs[0], StoppedError)


def test_node_propose() -> None:
    msgs: list[Message] = []

    def append_step(r: Raft, m: Message) -> None:
        if m.type == MessageType.MsgAppResp:
            return  # injected by raft on advance
        msgs.append(m)

    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    r = n._rn.raft
    n.campaign()
    while True:
        rd = n.ready(timeout=1)
        s.append(rd.entries)
        if rd.soft_state is not None and rd.soft_state.lead == r.id:
            r.step_fn = append_step  # the loop waits for advance: safe to swap
            n.advance()
            break
        n.advance()
    n.propose(b"somedata", timeout=1)
    n.stop()
    assert len(msgs) == 1
    assert msgs[0].type == MessageType.MsgProp
    assert msgs[0].entries[0].data == b"somedata"


def test_node_propose_config() -> None:
    msgs: list[Message] = []

    def append_step(r: Raft, m: Message) -> None:
        if m.type != MessageType.MsgAppResp:
            msgs.append(m)

    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    r = n._rn.raft
    n.campaign()
    while True:
        rd = n.ready(timeout=1)
        s.append(rd.entries)
        if rd.soft_state is not None and rd.soft_state.lead == r.id:
            r.step_fn = append_step
            n.advance()
            break
        n.advance()
    cc = ConfChange(type=CCT.ConfChangeAddNode, node_id=1)
    _, ccdata = marshal_conf_change(cc)
    n.propose_conf_change(cc, timeout=1)
    n.stop()
    assert len(msgs) == 1
    assert msgs[0].type == MessageType.MsgProp
    assert msgs[0].entries[0].data == ccdata


class _AppLoop:
    """A background application loop for one single-node Node (etcd's test goroutines):
    persists, applies conf changes, records committed entries, ticks."""

    def __init__(self, n: Node, s: MemoryStorage) -> None:
        self.n = n
        self.s = s
        self.committed: list[Entry] = []
        self.conf_states: list[ConfState] = []
        self.applied_cc = threading.Semaphore(0)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run)
        self._t.start()

    def _run(self) -> None:
        n = self.n
        try:
            last_tick = time.monotonic()
            while not self._stop.is_set():
                if time.monotonic() - last_tick > 0.05:
                    n.tick()
                    last_tick = time.monotonic()
                try:
                    rd = n.ready(timeout=0.01)
                except NodeTimeoutError:
                    continue
                self.s.append(rd.entries)
                applied = 0
                for e in rd.committed_entries:
                    self.committed.append(e)
                    if e.type != EntryType.EntryNormal:
                        cc = unmarshal_conf_change(e.type, e.data)
                        self.conf_states.append(n.apply_conf_change(cc, timeout=1))
                        applied += 1
                n.advance()
                for _ in range(applied):
                    self.applied_cc.release()
        except BaseException as err:
            self.errors.append(err)

    def wait_cc(self) -> None:
        assert self.applied_cc.acquire(timeout=5), "conf change not applied"

    def close(self) -> None:
        self._stop.set()
        self._t.join(5)
        assert not self.errors, self.errors


def test_node_propose_add_duplicate_node() -> None:
    s = new_test_memory_storage(with_peers(1))
    with new_node(s) as n:
        n.campaign()
        rd = n.ready(timeout=1)
        s.append(rd.entries)
        n.advance()
        loop = _AppLoop(n, s)
        try:
            cc1 = ConfChange(type=CCT.ConfChangeAddNode, node_id=1)
            _, ccdata1 = marshal_conf_change(cc1)
            n.propose_conf_change(cc1, timeout=1)
            loop.wait_cc()
            # Adding the same node again must not get in the way of the next change.
            n.propose_conf_change(cc1, timeout=1)
            loop.wait_cc()
            cc2 = ConfChange(type=CCT.ConfChangeAddNode, node_id=2)
            _, ccdata2 = marshal_conf_change(cc2)
            n.propose_conf_change(cc2, timeout=1)
            loop.wait_cc()
        finally:
            loop.close()
    ents = loop.committed
    assert len(ents) == 4
    assert ents[1].data == ccdata1
    assert ents[3].data == ccdata2


def test_block_proposal() -> None:
    # Proposals wait while no leader is known and go through once there is one.
    s = new_test_memory_storage(with_peers(1))
    with new_node(s) as n:
        errs: list[BaseException | None] = []

        def propose() -> None:
            try:
                n.propose(b"somedata", timeout=5)
                errs.append(None)
            except BaseException as err:
                errs.append(err)

        t = threading.Thread(target=propose)
        t.start()
        time.sleep(0.02)
        assert errs == []  # blocked
        n.campaign()
        rd = n.ready(timeout=1)
        s.append(rd.entries)
        n.advance()
        t.join(5)
        assert errs == [None]


def test_node_propose_wait_dropped() -> None:
    msgs: list[Message] = []
    dropping = b"test_dropping"

    def drop_step(r: Raft, m: Message) -> None:
        if m.type == MessageType.MsgProp and any(dropping in e.data for e in m.entries):
            raise ProposalDroppedError()
        if m.type == MessageType.MsgAppResp:
            return
        msgs.append(m)

    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    r = n._rn.raft
    n.campaign()
    while True:
        rd = n.ready(timeout=1)
        s.append(rd.entries)
        if rd.soft_state is not None and rd.soft_state.lead == r.id:
            r.step_fn = drop_step
            n.advance()
            break
        n.advance()
    t0 = time.monotonic()
    with pytest.raises(ProposalDroppedError):
        n.propose(dropping, timeout=0.1)
    assert time.monotonic() - t0 < 0.1  # reported at once, not at the timeout
    n.stop()
    assert msgs == []


def test_node_tick() -> None:
    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    r = n._rn.raft
    elapsed = r.election_elapsed
    n.tick()
    n.status(timeout=1)  # a round trip through the loop: the tick is processed
    n.stop()
    assert r.election_elapsed == elapsed + 1


def test_node_tick_overflow_warns(caplog: pytest.LogCaptureFixture) -> None:
    # Ticks beyond 128 waiting for a blocked loop are dropped with etcd's warning.
    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    r = n._rn.raft
    gate = threading.Event()
    inside = threading.Event()
    orig_tick = r.tick

    def blocking_tick() -> None:
        inside.set()
        gate.wait(5)
        orig_tick()

    r.tick = blocking_tick
    try:
        n.tick()
        assert inside.wait(1)
        with caplog.at_level(logging.WARNING, logger="raftcore"):
            for _ in range(130):
                n.tick()
        assert sum("A tick missed to fire" in rec.getMessage() for rec in caplog.records) == 2
    finally:
        gate.set()
        n.stop()


def test_node_stop() -> None:
    n = new_node(new_test_memory_storage(with_peers(1)))
    status = n.status(timeout=1)
    assert status.id == 1
    n.stop()
    assert n.stopped
    assert not n._thread.is_alive()
    with pytest.raises(StoppedError):
        n.status()
    n.stop()  # idempotent


def test_node_start() -> None:
    cc = ConfChange(type=CCT.ConfChangeAddNode, node_id=1)
    _, ccdata = marshal_conf_change(cc)
    wants = [
        Ready(
            hard_state=HardState(term=1, commit=1, vote=0),
            entries=[Entry(type=EntryType.EntryConfChange, term=1, index=1, data=ccdata)],
            committed_entries=[Entry(type=EntryType.EntryConfChange, term=1, index=1, data=ccdata)],
            must_sync=True,
        ),
        Ready(
            hard_state=HardState(term=2, commit=2, vote=1),
            entries=[Entry(term=2, index=3, data=b"foo")],
            committed_entries=[Entry(term=2, index=2)],
            must_sync=True,
        ),
        Ready(
            hard_state=HardState(term=2, commit=3, vote=1),
            committed_entries=[Entry(term=2, index=3, data=b"foo")],
            must_sync=False,
        ),
    ]
    storage = MemoryStorage()
    c = new_test_config(1, 10, 1, storage)
    with start_node(c, [Peer(1)]) as n:
        rd = n.ready(timeout=1)
        assert rd == wants[0]
        storage.append(rd.entries)
        n.advance()

        n.campaign()
        # Persist the vote, then append the empty entry.
        for _ in range(2):
            rd = n.ready(timeout=1)
            storage.append(rd.entries)
            n.advance()

        n.propose(b"foo", timeout=1)
        for want in wants[1:]:
            rd = n.ready(timeout=1)
            assert rd == want
            storage.append(rd.entries)
            n.advance()

        with pytest.raises(NodeTimeoutError):
            n.ready(timeout=0.01)


def test_node_restart() -> None:
    entries = [Entry(term=1, index=1), Entry(term=1, index=2, data=b"foo")]
    st = HardState(term=1, commit=1)
    want = Ready(hard_state=None, committed_entries=entries[: st.commit], must_sync=False)
    storage = MemoryStorage()
    storage.set_hard_state(st)
    storage.append(entries)
    c = new_test_config(1, 10, 1, storage)
    with restart_node(c) as n:
        assert n.ready(timeout=1) == want
        n.advance()
        with pytest.raises(NodeTimeoutError):
            n.ready(timeout=0.01)


def test_node_restart_from_snapshot() -> None:
    snap = Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2]), index=2, term=1))
    entries = [Entry(term=1, index=3, data=b"foo")]
    st = HardState(term=1, commit=3)
    want = Ready(hard_state=None, committed_entries=entries, must_sync=False)
    s = MemoryStorage()
    s.set_hard_state(st)
    s.apply_snapshot(snap)
    s.append(entries)
    with Node.restart(new_test_config(1, 10, 1, s)) as n:
        assert n.ready(timeout=1) == want
        n.advance()
        with pytest.raises(NodeTimeoutError):
            n.ready(timeout=0.01)


def test_node_advance() -> None:
    storage = new_test_memory_storage(with_peers(1))
    with new_node(storage) as n:
        n.campaign()
        for _ in range(2):  # persist the vote, append the empty entry
            rd = n.ready(timeout=1)
            storage.append(rd.entries)
            n.advance()
        n.propose(b"foo", timeout=1)
        rd = n.ready(timeout=1)
        storage.append(rd.entries)
        # Nothing new until advance, then the commit of "foo".
        with pytest.raises(NodeTimeoutError):
            n.ready(timeout=0.02)
        n.advance()
        rd = n.ready(timeout=0.1)
        assert [e.data for e in rd.committed_entries] == [b"foo"]


def test_node_propose_add_learner_node() -> None:
    s = new_test_memory_storage(with_peers(1))
    with new_node(s) as n:
        n.campaign()
        loop = _AppLoop(n, s)
        try:
            wait_until(lambda: n.status().lead == 1, 2, "leadership")
            n.propose_conf_change(ConfChange(type=CCT.ConfChangeAddLearnerNode, node_id=2), 1)
            loop.wait_cc()
        finally:
            loop.close()
    cs = loop.conf_states[-1]
    assert cs.learners == [2]
    assert cs.voters == [1]


def test_commit_pagination() -> None:
    s = new_test_memory_storage(with_peers(1))
    with new_node(s, max_committed_size_per_ready=2048) as n:
        n.campaign()
        for _ in range(2):  # persist the vote, append the empty entry
            rd = n.ready(timeout=1)
            s.append(rd.entries)
            n.advance()
        rd = n.ready(timeout=1)  # apply the empty entry
        assert len(rd.committed_entries) == 1
        s.append(rd.entries)
        n.advance()

        blob = b"a" * 1000
        for _ in range(3):
            n.propose(blob, timeout=1)
        # First the three proposals are appended ...
        rd = n.ready(timeout=1)
        assert len(rd.entries) == 3
        s.append(rd.entries)
        n.advance()
        # ... then they commit in two batches.
        for want in (2, 1):
            rd = n.ready(timeout=1)
            assert len(rd.committed_entries) == want
            s.append(rd.entries)
            n.advance()


def _handle_async(
    n: Node, s: MemoryStorage, rd: Ready, apply_resps: list[Message] | None = None
) -> list[MessageType]:
    """Handle the local storage messages of an async-writes Ready as etcd's test does;
    apply responses are stepped at once unless ``apply_resps`` collects them."""
    kinds = []
    for m in rd.messages:
        kinds.append(m.type)
        if m.type == MessageType.MsgStorageAppend:
            s.append(m.entries)
            for resp in m.responses:
                n.step(resp)
        elif m.type == MessageType.MsgStorageApply:
            assert len(m.responses) == 1
            if apply_resps is None:
                n.step(m.responses[0])
            else:
                apply_resps.append(m.responses[0])
        else:
            raise AssertionError(f"unexpected message {m}")
    return kinds


def test_commit_pagination_with_async_storage_writes() -> None:
    s = new_test_memory_storage(with_peers(1))
    MT = MessageType
    with new_node(s, max_committed_size_per_ready=2048, async_storage_writes=True) as n:
        n.campaign()
        # Persist the vote; append the empty entry; apply it.
        assert _handle_async(n, s, n.ready(timeout=1)) == [MT.MsgStorageAppend]
        assert _handle_async(n, s, n.ready(timeout=1)) == [MT.MsgStorageAppend]
        kinds = _handle_async(n, s, n.ready(timeout=1))
        assert sorted(kinds) == sorted([MT.MsgStorageAppend, MT.MsgStorageApply])

        blob = b"a" * 1024
        n.propose(blob, timeout=1)
        rd = n.ready(timeout=1)
        assert [len(m.entries) for m in rd.messages] == [1]
        _handle_async(n, s, rd)

        applies: list[Message] = []
        # Second and third entries: appended; the first two are applied late.
        for _ in range(2):
            n.propose(blob, timeout=1)
            rd = n.ready(timeout=1)
            assert len(rd.messages) == 2
            _handle_async(n, s, rd, applies)
        # The third entry is not handed out for applying until the first is acked.
        while True:
            try:
                rd = n.ready(timeout=0.01)
            except NodeTimeoutError:
                break
            assert all(m.type != MT.MsgStorageApply for m in rd.messages)
        n.step(applies.pop(0))
        rd = n.ready(timeout=1)
        assert len(rd.messages) == 1
        assert rd.messages[0].type == MT.MsgStorageApply
        assert len(rd.messages[0].entries) == 1
        applies.append(rd.messages[0].responses[0])
        for resp in applies:
            n.step(resp)
        with pytest.raises(RaftError, match="async storage writes"):
            n.advance()


class _IgnoreSizeHintStorage(MemoryStorage):
    __slots__ = ()

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        return super().entries(lo, hi, NO_LIMIT)


def test_node_commit_pagination_after_restart() -> None:
    # The storage returns more than raft's size limit asks for; the commit index in
    # the first Ready must still not regress below the persisted one.
    s = _IgnoreSizeHintStorage()
    with_peers(1)(s)
    persisted = HardState(term=1, vote=1, commit=10)
    s.hard_state = persisted
    ents = [Entry(term=1, index=i + 1, type=EntryType.EntryNormal, data=b"a") for i in range(10)]
    s.ents = [Entry(), *ents]
    size = sum(entry_size(e) for e in ents)
    c = new_test_config(1, 10, 1, s)
    c.max_size_per_msg = size - entry_size(ents[-1]) - 1
    with Node(RawNode(c)) as n:
        rd = n.ready(timeout=1)
        assert rd.hard_state is None or rd.hard_state.commit >= persisted.commit


# --- errors and lifecycle -------------------------------------------------------------


def test_start_node_needs_peers() -> None:
    with pytest.raises(RaftError, match="no peers given"):
        Node.start(new_test_config(1, 10, 1, MemoryStorage()), [])


def test_start_node_on_nonempty_storage_warns(caplog: pytest.LogCaptureFixture) -> None:
    s = MemoryStorage()
    s.append([Entry(term=1, index=1)])
    with caplog.at_level(logging.WARNING, logger="raftcore"):
        n = Node.start(new_test_config(1, 10, 1, s), [Peer(1)])
    n.stop()
    assert any(
        "error occurred during starting a new node" in r.getMessage() for r in caplog.records
    )


def test_calls_after_stop() -> None:
    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    become_leader(n, s)
    n.stop()
    with pytest.raises(StoppedError):
        n.propose(b"x")
    with pytest.raises(StoppedError):
        n.propose_conf_change(ConfChange(type=CCT.ConfChangeAddNode, node_id=2))
    with pytest.raises(StoppedError):
        n.step(Message(type=MessageType.MsgHeartbeat, from_=2, term=5))
    with pytest.raises(StoppedError):
        n.campaign()
    with pytest.raises(StoppedError):
        n.read_index(b"ctx")
    with pytest.raises(StoppedError):
        n.apply_conf_change(ConfChange(type=CCT.ConfChangeAddNode, node_id=2))
    with pytest.raises(StoppedError):
        n.ready(timeout=1)
    with pytest.raises(StoppedError):
        n.advance()
    with pytest.raises(StoppedError):
        n.status()
    n.tick()  # ignored, never raises
    assert list(n.readies()) == []


def test_timeouts() -> None:
    s = new_test_memory_storage(with_peers(1))
    with new_node(s) as n:
        with pytest.raises(NodeTimeoutError):
            n.ready(timeout=0)  # nothing to do yet
        with pytest.raises(TimeoutError):  # builtin TimeoutError catches it too
            n.propose(b"x", timeout=0.01)  # no leader
        # A timed-out proposal was never proposed: it does not show up later.
        become_leader(n, s)
        n.propose(b"y", timeout=1)
        seen: list[bytes] = []
        while True:
            try:
                rd = n.ready(timeout=0.05)
            except NodeTimeoutError:
                break
            s.append(rd.entries)
            seen += [e.data for e in rd.committed_entries if e.data]
            n.advance()
        assert seen == [b"y"]


def test_advance_misuse() -> None:
    s = new_test_memory_storage(with_peers(1))
    with new_node(s) as n:
        with pytest.raises(RaftError, match="without a Ready"):
            n.advance()
        n.campaign()
        n.ready(timeout=1)
        n.advance()
        with pytest.raises(RaftError, match="without a Ready"):
            n.advance()


def test_loop_failure_surfaces() -> None:
    # A panic in raft kills the loop; callers see StoppedError caused by it.
    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    become_leader(n, s)
    r = n._rn.raft

    def panicking(r: Raft, m: Message) -> None:
        raise RaftPanic("boom")

    r.step_fn = panicking
    with pytest.raises(StoppedError) as info:
        n.propose(b"x", timeout=1)
    assert isinstance(info.value.__cause__, RaftPanic)
    assert isinstance(n.failure, RaftPanic)
    with pytest.raises(StoppedError):
        list(n.readies())
    n.stop()
    assert not n._thread.is_alive()


# --- 3-node clusters ------------------------------------------------------------------

MODES = [pytest.param(False, id="sync"), pytest.param(True, id="async-writes")]


def _propose_all(c: ThreadCluster, lead: int, payloads: list[bytes]) -> None:
    for p in payloads:
        c.node(lead).propose(p, timeout=2)


@pytest.mark.parametrize("async_writes", MODES)
def test_cluster_replicates(async_writes: bool) -> None:
    with ThreadCluster(async_writes=async_writes) as c:
        lead = c.elect(1)
        payloads = [b"v%d" % i for i in range(50)]
        _propose_all(c, lead, payloads)
        # Proposals through followers are forwarded to the leader.
        follower = next(i for i in c.members if i != lead)
        more = [b"f%d" % i for i in range(10)]
        _propose_all(c, follower, more)
        c.wait_applied(payloads + more)
        logs = [c.sm(i).copy_applied() for i in c.members]
        assert logs[0][:50] == payloads
        assert all(log == logs[0] for log in logs)
        st = c.node(lead).status()
        assert st.raft_state == StateType.StateLeader
        assert sorted(st.progress) == [1, 2, 3]


@pytest.mark.parametrize("async_writes", MODES)
def test_cluster_membership(async_writes: bool) -> None:
    with ThreadCluster(async_writes=async_writes) as c:
        lead = c.elect(1)
        first = [b"a%d" % i for i in range(10)]
        _propose_all(c, lead, first)
        c.wait_applied(first)
        c.node(lead).propose_conf_change(
            ConfChange(type=CCT.ConfChangeAddLearnerNode, node_id=4), 2
        )
        wait_until(
            lambda: all(c.sm(i).conf_state.learners == [4] for i in c.members),
            5,
            "learner 4 added",
        )
        # Compact every log: the new member can only catch up through a snapshot
        # (which must postdate its addition: raft refuses a snapshot without itself).
        for i in c.members:
            c.sm(i).compact(c.members[i].storage)
        c.join(4)
        c.wait_applied(first, ids=[4])
        assert c.node(lead).status().progress[4].is_learner
        assert c.node(4).status().raft_state == StateType.StateFollower

        c.node(lead).propose_conf_change(ConfChange(type=CCT.ConfChangeAddNode, node_id=4), 2)
        wait_until(
            lambda: all(sorted(c.sm(i).conf_state.voters) == [1, 2, 3, 4] for i in c.members),
            5,
            "4 promoted everywhere",
        )
        assert not c.node(lead).status().progress[4].is_learner

        gone = next(i for i in (1, 2, 3) if i != lead)
        c.node(lead).propose_conf_change(ConfChange(type=CCT.ConfChangeRemoveNode, node_id=gone), 2)
        rest = [i for i in c.members if i != gone]
        wait_until(
            lambda: all(gone not in c.sm(i).conf_state.voters for i in rest),
            5,
            f"{gone} removed",
        )
        c.stop_member(gone)
        assert sorted(c.node(lead).status().progress) == sorted(rest)

        second = [b"b%d" % i for i in range(10)]
        _propose_all(c, lead, second)
        c.wait_applied(first + second)
        logs = [c.sm(i).copy_applied() for i in rest]
        assert all(log == first + second for log in logs)


@pytest.mark.parametrize("async_writes", MODES)
def test_cluster_transfer_leadership(async_writes: bool) -> None:
    with ThreadCluster(async_writes=async_writes) as c:
        lead = c.elect(1)
        _propose_all(c, lead, [b"before"])
        c.wait_applied([b"before"])
        target = next(i for i in c.members if i != lead)
        c.node(lead).transfer_leadership(lead, target)
        wait_until(lambda: c.leader() == target, 5, f"leadership moving to {target}")
        _propose_all(c, target, [b"after"])
        c.wait_applied([b"before", b"after"])
        assert c.node(target).status().term > 1


@pytest.mark.parametrize("async_writes", MODES)
def test_cluster_read_index(async_writes: bool) -> None:
    with ThreadCluster(async_writes=async_writes) as c:
        lead = c.elect(1)
        _propose_all(c, lead, [b"x%d" % i for i in range(5)])
        seen_commit = max(c.node(i).status().commit for i in c.members)
        for i in c.members:
            c.node(i).read_index(b"read-%d" % i)
        wait_until(
            lambda: all(b"read-%d" % i in c.sm(i).read_states for i in c.members),
            5,
            "read states",
        )
        for i in c.members:
            assert c.sm(i).read_states[b"read-%d" % i] >= seen_commit


@pytest.mark.parametrize("async_writes", MODES)
def test_cluster_stress_concurrent_proposers(async_writes: bool) -> None:
    # 8 proposer threads x 200 proposals, each proposer on a fixed member (leader or
    # follower). Every acknowledged proposal must be applied exactly once, in the same
    # order everywhere, each proposer's in its own order.
    with ThreadCluster(async_writes=async_writes, election_tick=50) as c:
        c.elect(1)
        ids = sorted(c.members)
        acked: list[list[bytes]] = [[] for _ in range(8)]
        errors: list[BaseException] = []

        def proposer(p: int) -> None:
            n = c.node(ids[p % len(ids)])
            try:
                for i in range(200):
                    data = b"p%d-%03d-" % (p, i) + b"x" * 32
                    n.propose(data, timeout=5)
                    acked[p].append(data)
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=proposer, args=(p,)) for p in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors, errors
        all_acked = [d for a in acked for d in a]
        assert len(all_acked) == 1600
        c.wait_applied(all_acked, timeout=10)
        logs = {i: c.sm(i).copy_applied() for i in ids}
        ref = logs[ids[0]]
        assert all(log == ref for log in logs.values())
        assert len(ref) == len(set(ref)) == 1600
        for p in range(8):
            assert [d for d in ref if d.startswith(b"p%d-" % p)] == acked[p]


@pytest.mark.parametrize("async_writes", MODES)
def test_cluster_stop_restart(async_writes: bool) -> None:
    with ThreadCluster(async_writes=async_writes) as c:
        lead = c.elect(1)
        first = [b"a%d" % i for i in range(20)]
        _propose_all(c, lead, first)
        c.wait_applied(first)
        victim = next(i for i in c.members if i != lead)
        storage = c.stop_member(victim)
        hs = storage.initial_state()[0]
        last = storage.last_index()
        log = storage.entries(storage.first_index(), last + 1, NO_LIMIT)

        second = [b"b%d" % i for i in range(20)]
        _propose_all(c, lead, second)  # the two others still make a quorum
        c.wait_applied(first + second)

        # Restart cut off from the network: the node comes back with exactly the
        # persisted hard state and log.
        c.network.isolate(victim)
        n = c.restart_member(victim, storage)
        st = n.status()
        assert (st.term, st.vote, st.commit) == (hs.term, hs.vote, hs.commit)
        assert n._rn.raft.raft_log.last_index() == last
        assert storage.entries(storage.first_index(), last + 1, NO_LIMIT) == log
        wait_until(lambda: c.sm(victim).copy_applied() == first, 5, "replay of the log")

        c.network.heal(victim)
        c.wait_applied(first + second)
        assert c.sm(victim).copy_applied() == first + second
