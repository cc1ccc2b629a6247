"""Proposal coalescing in the raft loop (``LoopCore``), through both drivers.

Proposals the loop finds queued back to back are stepped into raft as one MsgProp
(``LoopCore._step_props``). These tests check that this is invisible to callers:
the same entries reach the log in the order they were proposed, a refused batch
falls back to raft's verdict per proposal, conf changes are never merged, callers
that gave up are never proposed, and a stop or a dying loop answers every caller.
They also check that ``LoopCore.process`` applies queued messages before late ticks.

How a batch is observed: ``Raft.step`` is wrapped (:class:`PropSpy`) to record every
MsgProp the loop steps into one raft, so a batch shows up as one step carrying many
entries. The thread driver's loop is held on a *gate* proposal (the spy blocks inside
its step) while the other proposals queue up behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import pytest

import raftcore.node as node_mod
from cluster_util import wait_until
from raft_testutil import (
    new_test_config,
    new_test_memory_storage,
    set_randomized_election_timeout,
    with_peers,
)
from raftcore.async_node import AsyncNode
from raftcore.errors import (
    NodeTimeoutError,
    ProposalDroppedError,
    RaftError,
    RaftPanic,
    StoppedError,
)
from raftcore.node import _PROP, _RECV, Item, LoopCore, Node
from raftcore.raft import Raft, StateType
from raftcore.raftpb.codec import decode_message, encode_message
from raftcore.raftpb.confchange import marshal_conf_change, unmarshal_conf_change
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
)
from raftcore.rawnode import RawNode
from raftcore.storage import MemoryStorage

pytestmark = pytest.mark.timeout(10)

MT = MessageType
ET = EntryType
GATE = b"gate"


# --- helpers --------------------------------------------------------------------------


class PropSpy:
    """Records every MsgProp stepped into ``raft`` as (type, data) per entry.

    ``fail`` may return an exception to raise instead of stepping a MsgProp (given
    the entries' data). A MsgProp whose first entry carries :data:`GATE` blocks its
    (loop) thread until :meth:`open_gate`.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, raft: Raft) -> None:
        self.raft = raft
        self.steps: list[list[tuple[EntryType, bytes]]] = []
        self.fail: Callable[[list[bytes]], BaseException | None] | None = None
        self.gate_entered = threading.Event()
        self._gate_open = threading.Event()
        real = Raft.step
        spy = self

        def step(r: Raft, m: Message) -> None:
            if r is spy.raft and m.type == MT.MsgProp:
                ents = [(e.type, e.data) for e in m.entries]
                spy.steps.append(ents)
                if ents and ents[0][1] == GATE:
                    spy.gate_entered.set()
                    assert spy._gate_open.wait(5), "gate never opened"
                if spy.fail is not None:
                    err = spy.fail([d for _, d in ents])
                    if err is not None:
                        raise err
            real(r, m)

        monkeypatch.setattr(Raft, "step", step)

    def open_gate(self) -> None:
        self._gate_open.set()

    @property
    def sizes(self) -> list[int]:
        """Entries per MsgProp step, in order."""
        return [len(s) for s in self.steps]

    @property
    def datas(self) -> list[list[bytes]]:
        return [[d for _, d in s] for s in self.steps]


class Caller:
    """A :class:`raftcore.node.Completion` for driving ``LoopCore`` directly; ``open``
    False is a caller that gave up (timed out, cancelled) before the loop got to it."""

    def __init__(self, open: bool = True) -> None:
        self.open = open
        self.claimed = False
        self.answers: list[BaseException | None] = []

    def claim(self) -> bool:
        assert not self.claimed, "claimed twice"
        if self.open:
            self.claimed = True
        return self.open

    def finish(self, value: object, error: BaseException | None) -> None:
        assert self.claimed, "answered without a claim"
        self.answers.append(error)

    def fail(self, error: BaseException) -> None:
        self.answers.append(error)


def prop(data: bytes) -> Message:
    return Message(type=MT.MsgProp, entries=[Entry(data=data)])


def prop_items(datas: Iterable[bytes], callers: Iterable[Caller]) -> deque[Item]:
    return deque((_PROP, prop(d), c) for d, c in zip(datas, callers, strict=True))


def payloads(ents: Iterable[Entry]) -> list[bytes]:
    """The data of the normal entries that carry some (not a leader's empty entry)."""
    return [e.data for e in ents if e.type == ET.EntryNormal and e.data]


def names(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}{i:03d}".encode() for i in range(n)]


class RawCluster:
    """RawNodes wired together by hand, for ``LoopCore``-level tests: :meth:`settle`
    runs every node's Ready (persist, apply, advance) and delivers the messages
    (copied through the codec) until nothing is left to do."""

    def __init__(self, ids: Iterable[int], **overrides: object) -> None:
        ids = list(ids)
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RawNode] = {}
        self.committed: dict[int, list[Entry]] = {}
        for i in ids:
            s = new_test_memory_storage(with_peers(*ids))
            c = new_test_config(i, 10, 1, s)
            for k, v in overrides.items():
                setattr(c, k, v)
            self.storages[i] = s
            self.nodes[i] = RawNode(c)
            self.committed[i] = []

    def settle(self, drop: Callable[[Message], bool] = lambda m: False) -> list[Message]:
        """Run until quiet; returns the messages that ``drop`` kept from delivery."""
        dropped: list[Message] = []
        busy = True
        while busy:
            busy = False
            for i, rn in self.nodes.items():
                if not rn.has_ready():
                    continue
                busy = True
                rd = rn.ready()
                s = self.storages[i]
                s.append(rd.entries)
                if rd.hard_state is not None:
                    s.set_hard_state(rd.hard_state)
                for e in rd.committed_entries:
                    self.committed[i].append(e)
                    if e.type != ET.EntryNormal:
                        rn.apply_conf_change(unmarshal_conf_change(e.type, e.data))
                rn.advance()
                for m in rd.messages:
                    if drop(m):
                        dropped.append(m)
                    elif m.to in self.nodes:
                        with contextlib.suppress(RaftError):  # e.g. an unknown sender
                            self.nodes[m.to].step(decode_message(encode_message(m)))
        return dropped


def single_leader(**overrides: object) -> tuple[RawNode, MemoryStorage]:
    """A single-voter RawNode that leads, its empty entry committed and applied."""
    s = new_test_memory_storage(with_peers(1))
    c = new_test_config(1, 10, 1, s)
    for k, v in overrides.items():
        setattr(c, k, v)
    rn = RawNode(c)
    rn.campaign()
    while rn.has_ready():
        rd = rn.ready()
        s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        rn.advance()
    assert rn.raft.state == StateType.StateLeader
    return rn, s


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` on a fresh event loop; it must leave no task behind."""

    async def wrapper() -> None:
        await main()
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"leaked tasks: {leftover}"

    asyncio.run(wrapper())


async def async_leader(s: MemoryStorage, **overrides: object) -> AsyncNode:
    c = new_test_config(1, 10, 1, s)
    for k, v in overrides.items():
        setattr(c, k, v)
    n = AsyncNode(RawNode(c))
    await n.campaign()
    while True:
        rd = await n.next_ready(timeout=1)
        s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        n.advance()
        if rd.soft_state is not None and rd.soft_state.lead == n.id:
            return n


async def async_drain(n: AsyncNode, s: MemoryStorage, quiet: float = 0.05) -> list[Entry]:
    """Handle Readys (persist, apply conf changes, advance) until none comes for
    ``quiet`` seconds; returns the committed entries."""
    committed: list[Entry] = []
    while True:
        try:
            rd = await n.next_ready(timeout=quiet)
        except NodeTimeoutError:
            return committed
        s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        for e in rd.committed_entries:
            committed.append(e)
            if e.type != ET.EntryNormal:
                await n.apply_conf_change(unmarshal_conf_change(e.type, e.data))
        n.advance()


def thread_leader(s: MemoryStorage) -> Node:
    n = Node(RawNode(new_test_config(1, 10, 1, s)))
    n.campaign()
    while True:
        rd = n.ready(timeout=1)
        s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        n.advance()
        if rd.soft_state is not None and rd.soft_state.lead == n.id:
            return n


def thread_drain(n: Node, s: MemoryStorage, quiet: float = 0.05) -> list[Entry]:
    committed: list[Entry] = []
    while True:
        try:
            rd = n.ready(timeout=quiet)
        except NodeTimeoutError:
            return committed
        s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        committed += rd.committed_entries
        n.advance()


class Proposer(threading.Thread):
    """``n.propose(data, timeout)`` on its own thread; keeps the outcome."""

    def __init__(self, n: Node, data: bytes, timeout: float | None = None) -> None:
        super().__init__(daemon=True)
        self.n = n
        self.data = data
        self.timeout = timeout
        self.error: BaseException | None = None
        self.returned = False

    def run(self) -> None:
        try:
            self.n.propose(self.data, timeout=self.timeout)
            self.returned = True
        except BaseException as err:
            self.error = err


def hold_loop(n: Node, spy: PropSpy) -> Proposer:
    """Propose :data:`GATE`; returns once the raft loop is blocked stepping it."""
    gate = Proposer(n, GATE)
    gate.start()
    assert spy.gate_entered.wait(2), "the loop never stepped the gate proposal"
    assert not n._inbox
    return gate


def _queued(n: Node, k: int) -> bool:
    return len(n._inbox) >= k


def queue_proposers(
    n: Node, datas: Iterable[bytes], timeout: float | None = None
) -> list[Proposer]:
    """Start one proposer per payload, each queued (in this order) before the next."""
    ps: list[Proposer] = []
    base = len(n._inbox)
    for d in datas:
        p = Proposer(n, d, timeout)
        p.start()
        ps.append(p)
        wait_until(functools.partial(_queued, n, base + len(ps)), 2, f"{d!r} queued")
    return ps


def join_all(threads: Iterable[threading.Thread]) -> None:
    for t in threads:
        t.join(5)
        assert not t.is_alive(), f"{t} hangs"


async def queue_tasks(n: AsyncNode, coros: Iterable[Awaitable[None]]) -> list[asyncio.Task[None]]:
    """Start the calls as tasks and let each queue its request; the raft loop has not
    run since (checked), so they form one batch."""

    async def call(c: Awaitable[None]) -> None:
        await c

    tasks = [asyncio.create_task(call(c)) for c in coros]
    await asyncio.sleep(0)
    assert len(n._inbox) == len(tasks), "the raft loop ran before the batch was queued"
    return tasks


# --- 1. many proposals, one MsgProp, log order = proposal order ------------------------


def test_async_concurrent_proposals_coalesce_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    datas = names("p", 200)

    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        spy = PropSpy(monkeypatch, n._rn.raft)
        try:
            results = await asyncio.gather(*(n.propose(d, timeout=2) for d in datas))
            assert results == [None] * len(datas)
            # All issued in one event-loop turn: one MsgProp, entries in issue order.
            assert spy.datas == [datas]
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        assert payloads(committed) == datas  # each exactly once, in order
        indexes = [e.index for e in committed]
        assert indexes == sorted(set(indexes))

    run(main)


def test_thread_queued_proposals_coalesce_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_test_memory_storage(with_peers(1))
    n = thread_leader(s)
    spy = PropSpy(monkeypatch, n._rn.raft)
    datas = names("t", 30)
    try:
        gate = hold_loop(n, spy)
        ps = queue_proposers(n, datas, timeout=5)
        spy.open_gate()
        join_all([gate, *ps])
        assert all(p.returned and p.error is None for p in [gate, *ps])
        committed = thread_drain(n, s)
    finally:
        spy.open_gate()
        n.stop()
    assert spy.datas == [[GATE], datas]
    assert payloads(committed) == [GATE, *datas]


def test_batch_goes_out_as_one_msgapp_and_commits_everywhere() -> None:
    c = RawCluster([1, 2, 3])
    c.nodes[1].campaign()
    c.settle()
    leader = c.nodes[1]
    assert leader.raft.state == StateType.StateLeader
    last = leader.raft.raft_log.last_index()
    datas = names("m", 50)
    callers = [Caller() for _ in datas]
    LoopCore(leader).process(prop_items(datas, callers), 0)
    assert [cl.answers for cl in callers] == [[None]] * len(datas)
    rd = leader.ready()
    apps = [m for m in rd.messages if m.type == MT.MsgApp]
    assert sorted(m.to for m in apps) == [2, 3]
    for m in apps:
        assert m.index == last and [e.data for e in m.entries] == datas
    assert [e.index for e in rd.entries] == list(range(last + 1, last + 1 + len(datas)))
    s = c.storages[1]
    s.append(rd.entries)
    if rd.hard_state is not None:
        s.set_hard_state(rd.hard_state)
    leader.advance()
    for m in rd.messages:
        c.nodes[m.to].step(decode_message(encode_message(m)))
    c.settle()
    for i in (1, 2, 3):
        assert payloads(c.committed[i]) == datas, i


def test_follower_forwards_a_batch_as_one_msgprop() -> None:
    c = RawCluster([1, 2, 3])
    c.nodes[1].campaign()
    c.settle()
    follower = c.nodes[3]
    assert follower.raft.lead == 1
    datas = names("f", 20)
    callers = [Caller() for _ in datas]
    LoopCore(follower).process(prop_items(datas, callers), 0)
    assert [cl.answers for cl in callers] == [[None]] * len(datas)
    rd = follower.ready()
    fwd = [m for m in rd.messages if m.type == MT.MsgProp]
    assert len(fwd) == 1
    assert fwd[0].to == 1 and fwd[0].from_ == 3
    assert [e.data for e in fwd[0].entries] == datas
    follower.advance()
    c.nodes[1].step(decode_message(encode_message(fwd[0])))
    c.settle()
    for i in (1, 2, 3):
        assert payloads(c.committed[i]) == datas, i


def test_batch_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    rn, _ = single_leader()
    spy = PropSpy(monkeypatch, rn.raft)
    core = LoopCore(rn)
    monkeypatch.setattr(node_mod, "MAX_COALESCED_PROPOSALS", 3)
    datas = names("c", 7)
    core.process(prop_items(datas, [Caller() for _ in datas]), 0)
    assert spy.datas == [datas[0:3], datas[3:6], datas[6:7]]

    monkeypatch.setattr(node_mod, "MAX_COALESCED_PROPOSALS", 4096)
    monkeypatch.setattr(node_mod, "MAX_COALESCED_BYTES", 10)
    spy.steps.clear()
    sized = [b"aaaa", b"bbbbbb", b"cc", b"d" * 12, b"e", b"ffffffffff"]
    core.process(prop_items(sized, [Caller() for _ in sized]), 0)
    # 4+6 fit; "cc"+12 does not; an oversized proposal still goes (alone, first).
    assert spy.datas == [[b"aaaa", b"bbbbbb"], [b"cc"], [b"d" * 12], [b"e"], [b"ffffffffff"]]
    assert payloads(rn.raft.raft_log.unstable.entries) == datas + sized


# --- 2. a refused batch falls back per proposal ----------------------------------------


def test_uncommitted_budget_refuses_batch_then_admits_what_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s, max_uncommitted_entries_size=10)
        spy = PropSpy(monkeypatch, n._rn.raft)
        try:
            # Not committed until the next Ready is handled: 4 bytes of the 10.
            await n.propose(b"aaaa", timeout=1)
            assert n._rn.raft.uncommitted_size == 4
            datas = [b"bbbb", b"cccc", b"dd", b"eee"]
            results = await asyncio.gather(
                *(n.propose(d, timeout=1) for d in datas), return_exceptions=True
            )
            # 4+4=8 fits, +4 does not, 8+2=10 fits, +3 does not.
            assert results[0] is None and results[2] is None
            assert isinstance(results[1], ProposalDroppedError)
            assert isinstance(results[3], ProposalDroppedError)
            # Over the budget as a whole (4 + 13 > 10): raft judged each proposal.
            assert spy.datas == [[b"aaaa"], *[[d] for d in datas]]
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        assert payloads(committed) == [b"aaaa", b"bbbb", b"dd"]

    run(main)


def test_batch_on_empty_uncommitted_tail_keeps_the_budget() -> None:
    # Raft admits anything into an empty uncommitted tail; a batch over the budget
    # must not be taken whole there, but judged proposal by proposal.
    datas = [b"xxxx"] * 5
    # Reference: the same proposals stepped one at a time.
    ref, _ = single_leader(max_uncommitted_entries_size=10)
    expected: list[type[BaseException] | None] = []
    for d in datas:
        try:
            ref.raft.step(prop(d))
            expected.append(None)
        except ProposalDroppedError:
            expected.append(ProposalDroppedError)
    assert expected == [
        None,
        None,
        ProposalDroppedError,
        ProposalDroppedError,
        ProposalDroppedError,
    ]

    rn, _ = single_leader(max_uncommitted_entries_size=10)
    assert rn.raft.uncommitted_size == 0
    callers = [Caller() for _ in datas]
    LoopCore(rn).process(prop_items(datas, callers), 0)
    got = [None if c.answers == [None] else type(c.answers[0]) for c in callers]
    assert got == expected
    assert rn.raft.uncommitted_size <= 10


async def assert_batch_dropped(
    monkeypatch: pytest.MonkeyPatch, rn: RawNode, datas: list[bytes]
) -> None:
    """Proposing ``datas`` at once through an AsyncNode over ``rn``: raft refuses the
    batch, then each proposal alone, and every caller gets ProposalDroppedError."""
    spy = PropSpy(monkeypatch, rn.raft)
    n = AsyncNode(rn)
    try:
        results = await asyncio.gather(
            *(n.propose(d, timeout=1) for d in datas), return_exceptions=True
        )
    finally:
        await n.stop()
    assert all(isinstance(r, ProposalDroppedError) for r in results), results
    assert spy.datas == [datas, *[[d] for d in datas]]


def test_leader_transfer_in_progress_drops_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        c = RawCluster([1, 2, 3])
        c.nodes[1].campaign()
        c.settle()
        leader = c.nodes[1]
        leader.transfer_leader(2)
        # Hold back the MsgTimeoutNow: the transfer stays in progress.
        held = c.settle(drop=lambda m: m.type == MT.MsgTimeoutNow)
        assert [m.to for m in held] == [2]
        assert leader.raft.lead_transferee == 2
        last = leader.raft.raft_log.last_index()
        await assert_batch_dropped(monkeypatch, leader, names("x", 5))
        assert leader.raft.raft_log.last_index() == last

    run(main)


def test_follower_without_forwarding_drops_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        c = RawCluster([1, 2, 3])
        c.nodes[1].campaign()
        c.settle()
        follower = c.nodes[2]
        follower.raft.disable_proposal_forwarding = True
        assert follower.raft.lead == 1
        await assert_batch_dropped(monkeypatch, follower, names("y", 4))
        assert not any(m.type == MT.MsgProp for m in follower.raft.msgs)

    run(main)


def test_no_leader_drops_every_caller_of_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    # The drivers park proposals while no leader is known, so drive the loop
    # directly: the leader is lost between the loop's check and the batch.
    c = RawCluster([1, 2, 3])
    c.nodes[1].campaign()
    c.settle()
    follower = c.nodes[3]
    core = LoopCore(follower)
    core.track_leader()
    assert core.accept_props
    follower.raft.lead = 0
    spy = PropSpy(monkeypatch, follower.raft)
    monkeypatch.setattr(LoopCore, "track_leader", lambda self: None)
    datas = names("z", 3)
    callers = [Caller() for _ in datas]
    core.process(prop_items(datas, callers), 0)
    assert all(len(cl.answers) == 1 for cl in callers)
    assert all(isinstance(cl.answers[0], ProposalDroppedError) for cl in callers)
    assert spy.datas == [datas, *[[d] for d in datas]]


# --- 3. conf changes are never merged ---------------------------------------------------


def test_conf_change_between_proposals_is_not_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    cc = ConfChange(type=ConfChangeType.ConfChangeAddLearnerNode, node_id=2)
    cc_type, cc_data = marshal_conf_change(cc)

    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        spy = PropSpy(monkeypatch, n._rn.raft)
        try:
            results = await asyncio.gather(
                n.propose(b"a", timeout=1),
                n.propose(b"b", timeout=1),
                n.propose_conf_change(cc, timeout=1),
                n.propose(b"c", timeout=1),
                n.propose(b"d", timeout=1),
            )
            assert list(results) == [None] * 5
            assert spy.steps == [
                [(ET.EntryNormal, b"a"), (ET.EntryNormal, b"b")],
                [(cc_type, cc_data)],
                [(ET.EntryNormal, b"c"), (ET.EntryNormal, b"d")],
            ]
            committed = await async_drain(n, s)
            st = await n.status(timeout=1)
        finally:
            await n.stop()
        got = [(e.type, e.data) for e in committed if e.data]
        assert got == [
            (ET.EntryNormal, b"a"),
            (ET.EntryNormal, b"b"),
            (cc_type, cc_data),
            (ET.EntryNormal, b"c"),
            (ET.EntryNormal, b"d"),
        ]
        assert cc_type == ET.EntryConfChange
        assert st.config.learners == {2}
        assert sorted(st.config.voters.ids()) == [1]

    run(main)


def test_conf_change_first_in_queue_is_not_merged(monkeypatch: pytest.MonkeyPatch) -> None:
    rn, _ = single_leader()
    spy = PropSpy(monkeypatch, rn.raft)
    cc = ConfChange(type=ConfChangeType.ConfChangeAddLearnerNode, node_id=2)
    cc_type, cc_data = marshal_conf_change(cc)
    items: deque[Item] = deque()
    callers = [Caller() for _ in range(4)]
    items.append(
        (_PROP, Message(type=MT.MsgProp, entries=[Entry(type=cc_type, data=cc_data)]), callers[0])
    )
    items.append((_PROP, prop(b"a"), callers[1]))
    items.append((_PROP, prop(b"b"), callers[2]))
    # A second conf change while the first is unapplied: raft keeps its slot as an
    # empty normal entry (and must see it alone to do so).
    items.append(
        (_PROP, Message(type=MT.MsgProp, entries=[Entry(type=cc_type, data=cc_data)]), callers[3])
    )
    LoopCore(rn).process(items, 0)
    assert [cl.answers for cl in callers] == [[None]] * 4
    assert spy.sizes == [1, 2, 1]
    got = [(e.type, e.data) for e in rn.raft.raft_log.unstable.entries]
    assert got == [
        (cc_type, cc_data),
        (ET.EntryNormal, b"a"),
        (ET.EntryNormal, b"b"),
        (ET.EntryNormal, b""),
    ]


# --- 4. callers that gave up are not proposed -------------------------------------------


def test_loopcore_skips_callers_that_gave_up(monkeypatch: pytest.MonkeyPatch) -> None:
    rn, _ = single_leader()
    spy = PropSpy(monkeypatch, rn.raft)
    datas = [b"gone0", b"p1", b"gone2", b"gone3", b"p4", b"gone5"]
    callers = [Caller(open=not d.startswith(b"gone")) for d in datas]
    LoopCore(rn).process(prop_items(datas, callers), 0)
    assert spy.datas == [[b"p1", b"p4"]]
    for d, cl in zip(datas, callers, strict=True):
        assert cl.answers == ([] if d.startswith(b"gone") else [None]), d
    assert payloads(rn.raft.raft_log.unstable.entries) == [b"p1", b"p4"]


def test_thread_timed_out_caller_is_not_proposed(monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_test_memory_storage(with_peers(1))
    n = thread_leader(s)
    spy = PropSpy(monkeypatch, n._rn.raft)
    try:
        gate = hold_loop(n, spy)
        (a,) = queue_proposers(n, [b"a"])
        (b,) = queue_proposers(n, [b"b-timed-out"], timeout=0.05)
        (c,) = queue_proposers(n, [b"c"])
        # b gives up while the loop is still held: it must never be proposed.
        b.join(2)
        assert isinstance(b.error, NodeTimeoutError)
        assert len(n._inbox) == 3  # still queued, between a and c
        spy.open_gate()
        join_all([gate, a, c])
        assert gate.returned and a.returned and c.returned
        committed = thread_drain(n, s)
    finally:
        spy.open_gate()
        n.stop()
    assert spy.datas == [[GATE], [b"a", b"c"]]
    assert payloads(committed) == [GATE, b"a", b"c"]


def test_async_cancelled_caller_is_not_proposed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        spy = PropSpy(monkeypatch, n._rn.raft)
        try:
            datas = [b"a", b"cancelled1", b"b", b"cancelled2", b"c"]
            tasks = await queue_tasks(n, [n.propose(d) for d in datas])
            tasks[1].cancel()
            tasks[3].cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            assert done[0] is None and done[2] is None and done[4] is None
            assert isinstance(done[1], asyncio.CancelledError)
            assert isinstance(done[3], asyncio.CancelledError)
            assert spy.datas == [[b"a", b"b", b"c"]]
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        assert payloads(committed) == [b"a", b"b", b"c"]

    run(main)


# --- 5. queued messages count before late ticks -----------------------------------------


def stalled_follower() -> tuple[RawNode, Message]:
    """Follower 2 of leader 1 (term 1) whose election clock is one tick short of its
    timeout, and a heartbeat from the leader that has been waiting meanwhile."""
    rn = RawNode(new_test_config(2, 10, 1, new_test_memory_storage(with_peers(1, 2, 3))))
    rn.step(Message(type=MT.MsgHeartbeat, from_=1, to=2, term=1))
    assert (rn.raft.state, rn.raft.term, rn.raft.lead) == (StateType.StateFollower, 1, 1)
    set_randomized_election_timeout(rn, 15)
    for _ in range(14):
        rn.tick()
    assert rn.raft.state == StateType.StateFollower
    assert rn.raft.election_elapsed == 14
    return rn, Message(type=MT.MsgHeartbeat, from_=1, to=2, term=1)


def test_queued_heartbeat_counts_before_late_ticks() -> None:
    rn, hb = stalled_follower()
    # Ticks first would reach the timeout on the first tick and campaign.
    LoopCore(rn).process(deque([(_RECV, hb, None)]), ticks=14)
    r = rn.raft
    assert r.state == StateType.StateFollower
    assert (r.term, r.lead) == (1, 1)
    assert r.election_elapsed == 14
    assert not any(m.type in (MT.MsgVote, MT.MsgPreVote) for m in r.msgs)


def test_late_ticks_alone_do_time_out_the_leader() -> None:
    # Control: without the heartbeat the same ticks start an election.
    rn, _ = stalled_follower()
    LoopCore(rn).process(deque(), ticks=14)
    assert rn.raft.state == StateType.StateCandidate
    assert rn.raft.term >= 2


# --- 6. stop (or a dying loop) answers every caller of a batch --------------------------


def test_thread_stop_with_batch_queued_answers_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_test_memory_storage(with_peers(1))
    n = thread_leader(s)
    spy = PropSpy(monkeypatch, n._rn.raft)
    try:
        gate = hold_loop(n, spy)
        ps = queue_proposers(n, names("s", 10))
        stopper = threading.Thread(target=n.stop, daemon=True)
        stopper.start()
        wait_until(lambda: n.stopped, 2, "stop requested")
        spy.open_gate()
        join_all([stopper, gate, *ps])
    finally:
        spy.open_gate()
        n.stop()
    assert gate.returned and gate.error is None
    assert all(isinstance(p.error, StoppedError) and not p.returned for p in ps)
    assert spy.datas == [[GATE]]  # the queued batch was never stepped


def test_async_stop_with_batch_queued_answers_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        spy = PropSpy(monkeypatch, n._rn.raft)
        tasks = await queue_tasks(n, [n.propose(d) for d in names("s", 10)])
        await n.stop()  # (not wrapped in a task: stops before the loop runs again)
        done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2)
        assert all(isinstance(r, StoppedError) for r in done), done
        assert spy.steps == []

    run(main)


def test_thread_loop_dying_in_batch_step_answers_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    s = new_test_memory_storage(with_peers(1))
    n = thread_leader(s)
    spy = PropSpy(monkeypatch, n._rn.raft)
    boom = RaftPanic("boom")
    spy.fail = lambda ds: boom if len(ds) > 1 else None
    try:
        gate = hold_loop(n, spy)
        ps = queue_proposers(n, names("k", 6))
        spy.open_gate()
        join_all([gate, *ps])
    finally:
        spy.open_gate()
        n.stop()
    assert gate.returned
    assert spy.sizes == [1, 6]
    for p in ps:
        assert isinstance(p.error, StoppedError)
        assert p.error.__cause__ is boom
    assert n.failure is boom


def test_async_loop_dying_in_fallback_answers_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    # The batch is refused, the first proposal is taken alone, then the loop dies
    # stepping the second: the first keeps its answer, the rest get StoppedError.
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        spy = PropSpy(monkeypatch, n._rn.raft)
        boom = RaftPanic("boom")
        datas = names("q", 5)

        def fail(ds: list[bytes]) -> BaseException | None:
            if len(ds) > 1:
                return ProposalDroppedError()
            return boom if ds == [datas[1]] else None

        spy.fail = fail
        try:
            done = await asyncio.wait_for(
                asyncio.gather(*(n.propose(d) for d in datas), return_exceptions=True), 2
            )
        finally:
            await n.stop()
        assert done[0] is None
        for r in done[1:]:
            assert isinstance(r, StoppedError), done
            assert r.__cause__ is boom
        assert spy.datas == [datas, [datas[0]], [datas[1]]]
        assert n.failure is boom

    run(main)
