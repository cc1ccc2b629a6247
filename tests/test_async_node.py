"""AsyncNode, the asyncio driver: etcd's node_test.go cases, cancellation safety,
3-node clusters (replication, membership, leadership transfer, ReadIndex, stress,
stop/restart) in both storage-write modes, then errors and task hygiene."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from cluster_util import AsyncCluster, async_wait_until
from raft_testutil import new_test_config, new_test_memory_storage, with_peers
from raftcore.async_node import AsyncNode
from raftcore.errors import (
    NodeTimeoutError,
    ProposalDroppedError,
    RaftError,
    RaftPanic,
    StoppedError,
)
from raftcore.node import _PROP, _RECV
from raftcore.raft import Raft, StateType
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
from raftcore.util import LOCAL_APPEND_THREAD, NO_LIMIT, is_local_msg

pytestmark = pytest.mark.timeout(10)

CCT = ConfChangeType
MT = MessageType


def run_async(
    fn: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run an async test on a fresh event loop, then check that it left no task
    behind (AsyncNode.stop awaits the raft loop task)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def main() -> None:
            await fn(*args, **kwargs)
            leftover = asyncio.all_tasks() - {asyncio.current_task()}
            assert not leftover, f"leaked tasks: {leftover}"

        asyncio.run(main())

    return wrapper


def new_node(storage: MemoryStorage, **overrides: object) -> AsyncNode:
    c = new_test_config(1, 10, 1, storage)
    for k, v in overrides.items():
        setattr(c, k, v)
    return AsyncNode(RawNode(c))


async def become_leader(n: AsyncNode, s: MemoryStorage, swap: Any = None) -> None:
    """Campaign a single-node node and handle Readys until it leads; then optionally
    swap raft's step function (while the loop waits for advance)."""
    await n.campaign()
    while True:
        rd = await n.next_ready(timeout=1)
        s.append(rd.entries)
        if rd.soft_state is not None and rd.soft_state.lead == n.id:
            if swap is not None:
                n._rn.raft.step_fn = swap
            n.advance()
            return
        n.advance()


async def drain(n: AsyncNode, s: MemoryStorage, quiet: float = 0.05) -> list[bytes]:
    """Handle Readys (sync mode) until none comes for ``quiet`` seconds; returns the
    applied payloads."""
    seen: list[bytes] = []
    while True:
        try:
            rd = await n.next_ready(timeout=quiet)
        except NodeTimeoutError:
            return seen
        s.append(rd.entries)
        if rd.hard_state is not None:
            s.set_hard_state(rd.hard_state)
        seen += [e.data for e in rd.committed_entries if e.data and e.type == EntryType.EntryNormal]
        n.advance()


# --- etcd's node_test.go ------------------------------------------------------------


@run_async
async def test_node_step_routes_by_type() -> None:
    n = new_node(new_test_memory_storage(with_peers(1)))
    seen: list[int] = []

    async def submit(item: tuple[int, object, object], timeout: float | None) -> None:
        seen.append(item[0])

    async def call(kind: int, arg: object, timeout: float | None) -> object:
        seen.append(kind)
        return None

    real_submit, real_call = n._submit, n._call
    n._submit = submit  # type: ignore[method-assign]
    n._call = call  # type: ignore[method-assign]
    try:
        for t in MessageType:
            seen.clear()
            await n.step(Message(type=t))
            if t == MT.MsgProp:
                assert seen == [_PROP], t
            elif is_local_msg(t):
                assert seen == [], t
            else:
                assert seen == [_RECV], t
        seen.clear()
        await n.step(Message(type=MT.MsgStorageAppendResp, from_=LOCAL_APPEND_THREAD))
        assert seen == [_RECV]
    finally:
        n._submit, n._call = real_submit, real_call  # type: ignore[method-assign]
        await n.stop()


@run_async
async def test_node_step_unblock() -> None:
    n = new_node(new_test_memory_storage(with_peers(1)))
    with pytest.raises(NodeTimeoutError):
        await n.propose(b"somedata", timeout=0.02)
    task = asyncio.create_task(n.propose(b"somedata"))
    await asyncio.sleep(0.02)
    assert not task.done()  # blocked: no leader
    await n.stop()
    with pytest.raises(StoppedError):
        await task


@run_async
async def test_node_propose() -> None:
    msgs: list[Message] = []

    def append_step(r: Raft, m: Message) -> None:
        if m.type != MT.MsgAppResp:
            msgs.append(m)

    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    await become_leader(n, s, append_step)
    await n.propose(b"somedata", timeout=1)
    cc = ConfChange(type=CCT.ConfChangeAddNode, node_id=1)
    _, ccdata = marshal_conf_change(cc)
    await n.propose_conf_change(cc, timeout=1)
    await n.stop()
    assert [m.type for m in msgs] == [MT.MsgProp, MT.MsgProp]
    assert msgs[0].entries[0].data == b"somedata"
    assert msgs[1].entries[0].data == ccdata


@run_async
async def test_node_propose_wait_dropped() -> None:
    msgs: list[Message] = []

    def drop_step(r: Raft, m: Message) -> None:
        if m.type == MT.MsgProp and any(b"test_dropping" in e.data for e in m.entries):
            raise ProposalDroppedError()
        if m.type != MT.MsgAppResp:
            msgs.append(m)

    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    await become_leader(n, s, drop_step)
    with pytest.raises(ProposalDroppedError):
        await n.propose(b"test_dropping", timeout=0.1)
    await n.stop()
    assert msgs == []


@run_async
async def test_block_proposal() -> None:
    s = new_test_memory_storage(with_peers(1))
    async with new_node(s) as n:
        task = asyncio.create_task(n.propose(b"somedata", timeout=5))
        await asyncio.sleep(0.02)
        assert not task.done()
        await n.campaign()
        rd = await n.next_ready(timeout=1)
        s.append(rd.entries)
        n.advance()
        await asyncio.wait_for(task, 5)


@run_async
async def test_node_tick() -> None:
    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    r = n._rn.raft
    elapsed = r.election_elapsed
    n.tick()
    await n.status(timeout=1)
    await n.stop()
    assert r.election_elapsed == elapsed + 1


@run_async
async def test_node_stop() -> None:
    n = new_node(new_test_memory_storage(with_peers(1)))
    assert (await n.status(timeout=1)).id == 1
    await n.stop()
    assert n.stopped and n._task.done()
    with pytest.raises(StoppedError):
        await n.status()
    await n.stop()  # idempotent


@run_async
async def test_node_start() -> None:
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
    async with AsyncNode.start(new_test_config(1, 10, 1, storage), [Peer(1)]) as n:
        rd = await n.next_ready(timeout=1)
        assert rd == wants[0]
        storage.append(rd.entries)
        n.advance()
        await n.campaign()
        for _ in range(2):
            rd = await n.next_ready(timeout=1)
            storage.append(rd.entries)
            n.advance()
        await n.propose(b"foo", timeout=1)
        for want in wants[1:]:
            rd = await n.next_ready(timeout=1)
            assert rd == want
            storage.append(rd.entries)
            n.advance()
        with pytest.raises(NodeTimeoutError):
            await n.next_ready(timeout=0.01)


@run_async
async def test_node_restart() -> None:
    entries = [Entry(term=1, index=1), Entry(term=1, index=2, data=b"foo")]
    st = HardState(term=1, commit=1)
    storage = MemoryStorage()
    storage.set_hard_state(st)
    storage.append(entries)
    async with AsyncNode.restart(new_test_config(1, 10, 1, storage)) as n:
        assert await n.next_ready(timeout=1) == Ready(committed_entries=entries[:1])
        n.advance()
        with pytest.raises(NodeTimeoutError):
            await n.next_ready(timeout=0.01)


@run_async
async def test_node_restart_from_snapshot() -> None:
    snap = Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2]), index=2, term=1))
    entries = [Entry(term=1, index=3, data=b"foo")]
    s = MemoryStorage()
    s.set_hard_state(HardState(term=1, commit=3))
    s.apply_snapshot(snap)
    s.append(entries)
    async with AsyncNode.restart(new_test_config(1, 10, 1, s)) as n:
        assert await n.next_ready(timeout=1) == Ready(committed_entries=entries)
        n.advance()
        with pytest.raises(NodeTimeoutError):
            await n.next_ready(timeout=0.01)


@run_async
async def test_node_advance() -> None:
    storage = new_test_memory_storage(with_peers(1))
    async with new_node(storage) as n:
        await become_leader(n, storage)
        rd = await n.next_ready(timeout=1)  # the empty entry commits
        storage.append(rd.entries)
        n.advance()
        await n.propose(b"foo", timeout=1)
        rd = await n.next_ready(timeout=1)
        storage.append(rd.entries)
        with pytest.raises(NodeTimeoutError):
            await n.next_ready(timeout=0.02)
        n.advance()
        rd = await n.next_ready(timeout=0.1)
        assert [e.data for e in rd.committed_entries] == [b"foo"]


@run_async
async def test_node_propose_add_learner_node() -> None:
    s = new_test_memory_storage(with_peers(1))
    async with new_node(s) as n:
        await become_leader(n, s)
        await n.propose_conf_change(ConfChange(type=CCT.ConfChangeAddLearnerNode, node_id=2), 1)
        states: list[ConfState] = []
        while not states:
            rd = await n.next_ready(timeout=1)
            s.append(rd.entries)
            for e in rd.committed_entries:
                if e.type == EntryType.EntryConfChange:
                    cc = unmarshal_conf_change(e.type, e.data)
                    states.append(await n.apply_conf_change(cc, timeout=1))
            n.advance()
    assert states[0].learners == [2]
    assert states[0].voters == [1]


@run_async
async def test_commit_pagination_with_async_storage_writes() -> None:
    s = new_test_memory_storage(with_peers(1))
    async with new_node(s, max_committed_size_per_ready=2048, async_storage_writes=True) as n:

        async def handle(rd: Ready, apply_resps: list[Message] | None = None) -> list[MT]:
            kinds = []
            for m in rd.messages:
                kinds.append(m.type)
                if m.type == MT.MsgStorageAppend:
                    s.append(m.entries)
                    for resp in m.responses:
                        await n.step(resp)
                elif m.type == MT.MsgStorageApply and apply_resps is None:
                    await n.step(m.responses[0])
                elif m.type == MT.MsgStorageApply:
                    assert apply_resps is not None
                    apply_resps.append(m.responses[0])
                else:
                    raise AssertionError(m)
            return kinds

        await n.campaign()
        assert await handle(await n.next_ready(timeout=1)) == [MT.MsgStorageAppend]
        assert await handle(await n.next_ready(timeout=1)) == [MT.MsgStorageAppend]
        assert sorted(await handle(await n.next_ready(timeout=1))) == sorted(
            [MT.MsgStorageAppend, MT.MsgStorageApply]
        )
        blob = b"a" * 1024
        await n.propose(blob, timeout=1)
        await handle(await n.next_ready(timeout=1))
        applies: list[Message] = []
        for _ in range(2):
            await n.propose(blob, timeout=1)
            rd = await n.next_ready(timeout=1)
            assert len(rd.messages) == 2
            await handle(rd, applies)
        while True:
            try:
                rd = await n.next_ready(timeout=0.01)
            except NodeTimeoutError:
                break
            assert all(m.type != MT.MsgStorageApply for m in rd.messages)
        await n.step(applies.pop(0))
        rd = await n.next_ready(timeout=1)
        assert [m.type for m in rd.messages] == [MT.MsgStorageApply]
        applies.append(rd.messages[0].responses[0])
        for resp in applies:
            await n.step(resp)
        with pytest.raises(RaftError, match="async storage writes"):
            n.advance()


# --- cancellation ---------------------------------------------------------------------


@run_async
async def test_cancelled_propose_is_never_proposed() -> None:
    s = new_test_memory_storage(with_peers(1))
    async with new_node(s) as n:
        # Blocked for want of a leader, then cancelled: it must not be proposed later.
        task = asyncio.create_task(n.propose(b"cancelled"))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Timed out the same way.
        with pytest.raises(NodeTimeoutError):
            await n.propose(b"timed-out", timeout=0.01)
        await become_leader(n, s)
        await n.propose(b"kept", timeout=1)
        assert await drain(n, s) == [b"kept"]


@run_async
async def test_cancelled_ready_wait_loses_nothing() -> None:
    s = new_test_memory_storage(with_peers(1))
    async with new_node(s) as n:
        await become_leader(n, s)
        await drain(n, s)
        for _ in range(20):  # waits cancelled with nothing to hand out
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(n.next_ready(), 0.001)
        # A Ready that appears while consumers get cancelled is still delivered.
        waiter = asyncio.create_task(n.next_ready())
        await asyncio.sleep(0)
        await n.propose(b"v", timeout=1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await drain(n, s) == [b"v"]


@run_async
async def test_cancellation_storm_keeps_node_consistent() -> None:
    # Proposer tasks are cancelled at random points. Acknowledged proposals are
    # applied exactly once; cancelled ones at most once; the node keeps working.
    rng = random.Random(7)
    async with await AsyncCluster.create() as c:
        lead = await c.elect(1)
        acked: list[bytes] = []

        async def proposer(p: int) -> None:
            n = c.node(sorted(c.members)[p % 3])
            for i in range(50):
                data = b"c%d-%d" % (p, i)
                await n.propose(data, timeout=5)
                acked.append(data)

        tasks = [asyncio.create_task(proposer(p)) for p in range(8)]
        for _ in range(20):
            await asyncio.sleep(rng.random() * 0.005)
            rng.choice(tasks).cancel()
        await asyncio.wait(tasks)
        for t in tasks:
            assert t.cancelled() or t.exception() is None
        await c.node(lead).propose(b"final", timeout=2)
        await c.wait_applied([*acked, b"final"], timeout=10)
        logs = [c.sm(i).copy_applied() for i in sorted(c.members)]
        assert all(log == logs[0] for log in logs)
        assert len(logs[0]) == len(set(logs[0]))
        assert sum(t.cancelled() for t in tasks) > 0


# --- errors and lifecycle -------------------------------------------------------------


@run_async
async def test_start_needs_peers_and_loop() -> None:
    with pytest.raises(RaftError, match="no peers given"):
        AsyncNode.start(new_test_config(1, 10, 1, MemoryStorage()), [])


def test_start_outside_event_loop() -> None:
    with pytest.raises(RuntimeError):
        AsyncNode.start(new_test_config(1, 10, 1, MemoryStorage()), [Peer(1)])


@run_async
async def test_calls_after_stop() -> None:
    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)
    await become_leader(n, s)
    await n.stop()
    for coro in (
        n.propose(b"x"),
        n.propose_conf_change(ConfChange(type=CCT.ConfChangeAddNode, node_id=2)),
        n.step(Message(type=MT.MsgHeartbeat, from_=2, term=5)),
        n.campaign(),
        n.read_index(b"ctx"),
        n.forget_leader(),
        n.transfer_leadership(1, 2),
        n.apply_conf_change(ConfChange(type=CCT.ConfChangeAddNode, node_id=2)),
        n.next_ready(timeout=1),
        n.status(),
    ):
        with pytest.raises(StoppedError):
            await coro
    with pytest.raises(StoppedError):
        n.advance()
    with pytest.raises(StoppedError):
        n.report_unreachable(2)
    n.tick()  # ignored
    assert [rd async for rd in n.ready()] == []


@run_async
async def test_advance_misuse() -> None:
    s = new_test_memory_storage(with_peers(1))
    async with new_node(s) as n:
        with pytest.raises(RaftError, match="without a Ready"):
            n.advance()


@run_async
async def test_loop_failure_surfaces() -> None:
    s = new_test_memory_storage(with_peers(1))
    n = new_node(s)

    def panicking(r: Raft, m: Message) -> None:
        raise RaftPanic("boom")

    await become_leader(n, s, panicking)
    with pytest.raises(StoppedError) as info:
        await n.propose(b"x", timeout=1)
    assert isinstance(info.value.__cause__, RaftPanic)
    with pytest.raises(StoppedError):
        async for _ in n.ready():
            pass
    await n.stop()


@run_async
async def test_cancelled_loop_task_acts_as_stop() -> None:
    n = new_node(new_test_memory_storage(with_peers(1)))
    pending = asyncio.create_task(n.propose(b"x"))  # waits for a leader
    await asyncio.sleep(0.01)
    n._task.cancel()
    with pytest.raises(StoppedError):
        await pending
    assert n.stopped and n.failure is None
    await n.stop()


# --- 3-node clusters ------------------------------------------------------------------

MODES = [pytest.param(False, id="sync"), pytest.param(True, id="async-writes")]


async def _propose_all(c: AsyncCluster, via: int, payloads: list[bytes]) -> None:
    for p in payloads:
        await c.node(via).propose(p, timeout=2)


@pytest.mark.parametrize("async_writes", MODES)
@run_async
async def test_cluster_replicates(async_writes: bool) -> None:
    async with await AsyncCluster.create(async_writes=async_writes) as c:
        lead = await c.elect(1)
        payloads = [b"v%d" % i for i in range(50)]
        await _propose_all(c, lead, payloads)
        follower = next(i for i in c.members if i != lead)
        more = [b"f%d" % i for i in range(10)]
        await _propose_all(c, follower, more)
        await c.wait_applied(payloads + more)
        logs = [c.sm(i).copy_applied() for i in c.members]
        assert logs[0][:50] == payloads
        assert all(log == logs[0] for log in logs)
        st = await c.node(lead).status()
        assert st.raft_state == StateType.StateLeader
        assert sorted(st.progress) == [1, 2, 3]


@pytest.mark.parametrize("async_writes", MODES)
@run_async
async def test_cluster_membership(async_writes: bool) -> None:
    async with await AsyncCluster.create(async_writes=async_writes) as c:
        lead = await c.elect(1)
        first = [b"a%d" % i for i in range(10)]
        await _propose_all(c, lead, first)
        await c.wait_applied(first)
        await c.node(lead).propose_conf_change(
            ConfChange(type=CCT.ConfChangeAddLearnerNode, node_id=4), 2
        )
        await async_wait_until(
            lambda: all(c.sm(i).conf_state.learners == [4] for i in c.members),
            5,
            "learner 4 added",
        )
        for i in c.members:  # catch-up only through a snapshot
            c.sm(i).compact(c.members[i].storage)
        c.join(4)
        await c.wait_applied(first, ids=[4])
        assert (await c.node(lead).status()).progress[4].is_learner

        await c.node(lead).propose_conf_change(ConfChange(type=CCT.ConfChangeAddNode, node_id=4), 2)
        await async_wait_until(
            lambda: all(sorted(c.sm(i).conf_state.voters) == [1, 2, 3, 4] for i in c.members),
            5,
            "4 promoted everywhere",
        )
        gone = next(i for i in (1, 2, 3) if i != lead)
        await c.node(lead).propose_conf_change(
            ConfChange(type=CCT.ConfChangeRemoveNode, node_id=gone), 2
        )
        rest = [i for i in c.members if i != gone]
        await async_wait_until(
            lambda: all(gone not in c.sm(i).conf_state.voters for i in rest), 5, "removal"
        )
        await c.stop_member(gone)
        assert sorted((await c.node(lead).status()).progress) == sorted(rest)
        second = [b"b%d" % i for i in range(10)]
        await _propose_all(c, lead, second)
        await c.wait_applied(first + second)
        assert all(c.sm(i).copy_applied() == first + second for i in rest)


@pytest.mark.parametrize("async_writes", MODES)
@run_async
async def test_cluster_transfer_leadership(async_writes: bool) -> None:
    async with await AsyncCluster.create(async_writes=async_writes) as c:
        lead = await c.elect(1)
        await _propose_all(c, lead, [b"before"])
        await c.wait_applied([b"before"])
        target = next(i for i in c.members if i != lead)
        await c.node(lead).transfer_leadership(lead, target)

        async def moved() -> bool:
            return await c.leader() == target

        await async_wait_until(moved, 5, f"leadership moving to {target}")
        await _propose_all(c, target, [b"after"])
        await c.wait_applied([b"before", b"after"])


@pytest.mark.parametrize("async_writes", MODES)
@run_async
async def test_cluster_read_index(async_writes: bool) -> None:
    async with await AsyncCluster.create(async_writes=async_writes) as c:
        lead = await c.elect(1)
        await _propose_all(c, lead, [b"x%d" % i for i in range(5)])
        seen_commit = max([(await c.node(i).status()).commit for i in c.members])
        for i in c.members:
            await c.node(i).read_index(b"read-%d" % i)
        await async_wait_until(
            lambda: all(b"read-%d" % i in c.sm(i).read_states for i in c.members),
            5,
            "read states",
        )
        for i in c.members:
            assert c.sm(i).read_states[b"read-%d" % i] >= seen_commit


@pytest.mark.parametrize("async_writes", MODES)
@run_async
async def test_cluster_stress_concurrent_proposers(async_writes: bool) -> None:
    async with await AsyncCluster.create(async_writes=async_writes, election_tick=50) as c:
        await c.elect(1)
        ids = sorted(c.members)
        acked: list[list[bytes]] = [[] for _ in range(8)]

        async def proposer(p: int) -> None:
            n = c.node(ids[p % len(ids)])
            for i in range(200):
                data = b"p%d-%03d-" % (p, i) + b"x" * 32
                await n.propose(data, timeout=5)
                acked[p].append(data)

        await asyncio.gather(*(proposer(p) for p in range(8)))
        all_acked = [d for a in acked for d in a]
        assert len(all_acked) == 1600
        await c.wait_applied(all_acked, timeout=10)
        logs = {i: c.sm(i).copy_applied() for i in ids}
        ref = logs[ids[0]]
        assert all(log == ref for log in logs.values())
        assert len(ref) == len(set(ref)) == 1600
        for p in range(8):
            assert [d for d in ref if d.startswith(b"p%d-" % p)] == acked[p]


@pytest.mark.parametrize("async_writes", MODES)
@run_async
async def test_cluster_stop_restart(async_writes: bool) -> None:
    async with await AsyncCluster.create(async_writes=async_writes) as c:
        lead = await c.elect(1)
        first = [b"a%d" % i for i in range(20)]
        await _propose_all(c, lead, first)
        await c.wait_applied(first)
        victim = next(i for i in c.members if i != lead)
        storage = await c.stop_member(victim)
        hs = storage.initial_state()[0]
        last = storage.last_index()
        log = storage.entries(storage.first_index(), last + 1, NO_LIMIT)

        second = [b"b%d" % i for i in range(20)]
        await _propose_all(c, lead, second)
        await c.wait_applied(first + second)

        c.network.isolate(victim)
        n = c.restart_member(victim, storage)
        st = await n.status()
        assert (st.term, st.vote, st.commit) == (hs.term, hs.vote, hs.commit)
        assert n._rn.raft.raft_log.last_index() == last
        assert storage.entries(storage.first_index(), last + 1, NO_LIMIT) == log
        await async_wait_until(lambda: c.sm(victim).copy_applied() == first, 5, "replay")
        c.network.heal(victim)
        await c.wait_applied(first + second)
        assert c.sm(victim).copy_applied() == first + second
