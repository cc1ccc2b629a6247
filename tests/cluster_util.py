"""In-memory raft clusters run through :class:`raftcore.Node` (threads) and
:class:`raftcore.AsyncNode` (asyncio tasks), for the driver tests.

The counterpart of etcd's ``rafttest/node.go`` and ``network.go``. Every member has a
:class:`MemoryStorage`, a tiny :class:`StateMachine` (the applied payloads, in order)
and the application loop the driver docs prescribe: persist, send, apply, advance; or,
with ``async_storage_writes``, route the Ready's messages to an append worker and an
apply worker that deliver the responses once done. Messages cross a :class:`Network`
that copies them through the codec (as etcd's test network does, so that no two nodes
share a message) and that can cut members off. A ticker drives all clocks.

Both cluster flavours have the same methods (coroutines in :class:`AsyncCluster`);
the tests read the same for either driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from raftcore.async_node import AsyncNode
from raftcore.config import Config
from raftcore.errors import NodeTimeoutError, StoppedError
from raftcore.node import Node
from raftcore.raft import StateType
from raftcore.raftpb.codec import decode_message, encode_message
from raftcore.raftpb.confchange import unmarshal_conf_change
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
)
from raftcore.rawnode import Peer, Ready, SnapshotStatus
from raftcore.read_only import ReadState
from raftcore.storage import MemoryStorage
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD

__all__ = [
    "AsyncCluster",
    "Network",
    "StateMachine",
    "ThreadCluster",
    "async_wait_until",
    "make_config",
    "wait_until",
]

TICK_INTERVAL = 0.01
# How long a transport waits for a node to take a forwarded proposal (it needs a known
# leader) before dropping it, like a lossy network would.
STEP_TIMEOUT = 0.5


def make_config(
    id: int,
    storage: MemoryStorage,
    *,
    async_writes: bool = False,
    election_tick: int = 20,
    **overrides: Any,
) -> Config:
    """etcd's rafttest config, with pre-vote and check-quorum so that members that
    were removed or restarted cannot disrupt a healthy leader."""
    c = Config(
        id=id,
        election_tick=election_tick,
        heartbeat_tick=1,
        storage=storage,
        max_size_per_msg=1024 * 1024,
        max_inflight_msgs=256,
        max_uncommitted_entries_size=1 << 30,
        async_storage_writes=async_writes,
        pre_vote=True,
        check_quorum=True,
    )
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


async def async_wait_until(
    pred: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ok = pred()
        if not isinstance(ok, bool):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


# --- the state machine ----------------------------------------------------------------


@dataclass(slots=True)
class StateMachine:
    """The applied payloads of one member, plus what snapshots need.

    Shared by the member's workers and the test thread, hence the lock.
    """

    applied: list[bytes] = field(default_factory=list)
    applied_index: int = 0
    conf_state: ConfState = field(default_factory=ConfState)
    read_states: dict[bytes, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def apply_normal(self, e: Entry) -> None:
        with self.lock:
            if e.index <= self.applied_index:
                return  # covered by a snapshot restored meanwhile
            if e.data:
                self.applied.append(e.data)
            self.applied_index = e.index

    def needs(self, e: Entry) -> bool:
        with self.lock:
            return e.index > self.applied_index

    def conf_applied(self, e: Entry, cs: ConfState) -> None:
        with self.lock:
            self.conf_state = cs
            self.applied_index = max(self.applied_index, e.index)

    def record_reads(self, rss: Sequence[ReadState]) -> None:
        if rss:
            with self.lock:
                for rs in rss:
                    self.read_states[rs.request_ctx] = rs.index

    def snapshot_data(self) -> bytes:
        return b"".join(struct.pack(">I", len(d)) + d for d in self.applied)

    def restore(self, snap: Snapshot) -> None:
        data = snap.data
        out: list[bytes] = []
        pos = 0
        while pos < len(data):
            (n,) = struct.unpack_from(">I", data, pos)
            out.append(bytes(data[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        with self.lock:
            self.applied = out
            self.applied_index = snap.metadata.index
            self.conf_state = snap.metadata.conf_state

    def copy_applied(self) -> list[bytes]:
        with self.lock:
            return list(self.applied)

    def compact(self, storage: MemoryStorage) -> int:
        """Snapshot the state machine into ``storage`` and drop the log before it."""
        with self.lock:
            i = self.applied_index
            if i <= storage.snapshot().metadata.index:
                return i
            storage.create_snapshot(i, self.conf_state, self.snapshot_data())
            storage.compact(i)
            return i


def persist(
    storage: MemoryStorage,
    sm: StateMachine,
    snap: Snapshot | None,
    ents: Sequence[Entry],
    hs: HardState | None,
) -> None:
    """Step 1 of the Ready loop (or the append worker's job)."""
    if snap is not None and not snap.is_empty():
        storage.apply_snapshot(snap)
        sm.restore(snap)
    if ents:
        storage.append(ents)
    if hs is not None and not hs.is_empty():
        storage.set_hard_state(hs)


# --- the network ----------------------------------------------------------------------


class Network:
    """Delivers copies of messages to members' inboxes; isolated members are cut off."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._inboxes: dict[int, Callable[[Message], None]] = {}
        self._isolated: set[int] = set()

    def attach(self, id: int, deliver: Callable[[Message], None]) -> None:
        with self._mu:
            self._inboxes[id] = deliver

    def detach(self, id: int) -> None:
        with self._mu:
            self._inboxes.pop(id, None)

    def isolate(self, id: int) -> None:
        with self._mu:
            self._isolated.add(id)

    def heal(self, id: int) -> None:
        with self._mu:
            self._isolated.discard(id)

    def send(self, m: Message) -> None:
        with self._mu:
            deliver = self._inboxes.get(m.to)
            if m.to in self._isolated or m.from_ in self._isolated:
                deliver = None
        if deliver is not None:
            deliver(decode_message(encode_message(m)))


# --- thread cluster -------------------------------------------------------------------


class ThreadMember:
    """One member: a Node plus its application thread, transport thread and (async
    storage writes) append and apply threads."""

    def __init__(
        self, cluster: ThreadCluster, id: int, storage: MemoryStorage, sm: StateMachine, node: Node
    ) -> None:
        self.cluster = cluster
        self.id = id
        self.storage = storage
        self.sm = sm
        self.node = node
        self.async_writes = cluster.async_writes
        self.inbound: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self.append_q: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self.apply_q: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self.errors: list[BaseException] = []
        targets: list[Callable[[], None]] = [self._app_loop, self._transport_loop]
        if self.async_writes:
            targets += [self._append_loop, self._apply_loop]
        self.threads = [
            threading.Thread(target=self._guard(t), name=f"member-{id}-{t.__name__}", daemon=True)
            for t in targets
        ]
        for t in self.threads:
            t.start()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except StoppedError:
                pass
            except BaseException as err:
                self.errors.append(err)

        return run

    def stop(self) -> None:
        self.node.stop()
        for q in (self.inbound, self.append_q, self.apply_q):
            q.put(None)
        for t in self.threads:
            t.join(5)
            assert not t.is_alive(), f"{t.name} did not stop"
        if self.node.failure is not None:
            self.errors.append(self.node.failure)

    # The application loop of the Node docs.
    def _app_loop(self) -> None:
        node = self.node
        for rd in node.readies():
            if self.async_writes:
                self._route(rd)
            else:
                persist(self.storage, self.sm, rd.snapshot, rd.entries, rd.hard_state)
                self._send(rd.messages)
                self._apply(rd.committed_entries)
                self.sm.record_reads(rd.read_states)
                node.advance()

    def _route(self, rd: Ready) -> None:
        for m in rd.messages:
            if m.to == LOCAL_APPEND_THREAD:
                self.append_q.put(m)
            elif m.to == LOCAL_APPLY_THREAD:
                self.apply_q.put(m)
            else:
                self._send((m,))
        self.sm.record_reads(rd.read_states)

    def _send(self, msgs: Iterable[Message]) -> None:
        for m in msgs:
            self.cluster.network.send(m)
            if m.type == MessageType.MsgSnap:
                self.node.report_snapshot(m.to, SnapshotStatus.SnapshotFinish)

    def _apply(self, ents: Sequence[Entry]) -> None:
        sm = self.sm
        for e in ents:
            if e.type == EntryType.EntryNormal:
                sm.apply_normal(e)
            elif sm.needs(e):
                cs = self.node.apply_conf_change(unmarshal_conf_change(e.type, e.data))
                sm.conf_applied(e, cs)

    def _deliver(self, responses: Iterable[Message]) -> None:
        for r in responses:
            if r.to == self.id:
                self.node.step(r)
            else:
                self._send((r,))

    def _append_loop(self) -> None:
        while (m := self.append_q.get()) is not None:
            hs = HardState(m.term, m.vote, m.commit)
            persist(self.storage, self.sm, m.snapshot, m.entries, hs)
            self._deliver(m.responses)

    def _apply_loop(self) -> None:
        while (m := self.apply_q.get()) is not None:
            self._apply(m.entries)
            self._deliver(m.responses)

    def _transport_loop(self) -> None:
        while (m := self.inbound.get()) is not None:
            # A proposal for a node without a leader times out: lost, as on a network.
            with contextlib.suppress(NodeTimeoutError):
                self.node.step(m, timeout=STEP_TIMEOUT)


class ThreadCluster:
    """A cluster of :class:`Node` members, all in this process."""

    def __init__(
        self,
        ids: Sequence[int] = (1, 2, 3),
        *,
        async_writes: bool = False,
        election_tick: int = 20,
        **overrides: Any,
    ) -> None:
        self.async_writes = async_writes
        self.election_tick = election_tick
        self.overrides = overrides
        self.network = Network()
        self.members: dict[int, ThreadMember] = {}
        self.errors: list[BaseException] = []
        self._closing = threading.Event()
        peers = [Peer(i) for i in ids]
        for i in ids:
            storage = MemoryStorage()
            self._add(i, storage, StateMachine(), Node.start(self.config(i, storage), peers))
        self._ticker = threading.Thread(target=self._tick_loop, name="cluster-ticker", daemon=True)
        self._ticker.start()

    def config(self, id: int, storage: MemoryStorage) -> Config:
        return make_config(
            id,
            storage,
            async_writes=self.async_writes,
            election_tick=self.election_tick,
            **self.overrides,
        )

    def _add(self, id: int, storage: MemoryStorage, sm: StateMachine, node: Node) -> ThreadMember:
        member = ThreadMember(self, id, storage, sm, node)
        self.members[id] = member
        self.network.attach(id, member.inbound.put)
        return member

    def _tick_loop(self) -> None:
        while not self._closing.wait(TICK_INTERVAL):
            for member in list(self.members.values()):
                member.node.tick()

    # --- membership and lifecycle -----------------------------------------------------

    def node(self, id: int) -> Node:
        return self.members[id].node

    def sm(self, id: int) -> StateMachine:
        return self.members[id].sm

    def join(self, id: int) -> Node:
        """Start a new, empty member; it takes part once the cluster adds it."""
        storage = MemoryStorage()
        return self._add(id, storage, StateMachine(), Node.restart(self.config(id, storage))).node

    def stop_member(self, id: int) -> MemoryStorage:
        """Stop a member (its storage survives, as on disk); returns the storage."""
        self.network.detach(id)
        member = self.members.pop(id)
        member.stop()
        self.errors += member.errors
        return member.storage

    def restart_member(self, id: int, storage: MemoryStorage) -> Node:
        """Restart a stopped member from its storage; the state machine is rebuilt
        from the storage's snapshot and the log."""
        sm = StateMachine()
        snap = storage.snapshot()
        if not snap.is_empty():
            sm.restore(snap)
        return self._add(id, storage, sm, Node.restart(self.config(id, storage))).node

    def close(self) -> None:
        self._closing.set()
        self._ticker.join(5)
        for id in list(self.members):
            self.stop_member(id)
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> ThreadCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- observation ------------------------------------------------------------------

    def leader(self, among: Iterable[int] | None = None) -> int:
        """The leader every member in ``among`` (default: all) agrees on, or 0."""
        ids = list(self.members) if among is None else list(among)
        leads = {self.node(i).status(timeout=2).lead for i in ids}
        if len(leads) != 1:
            return 0
        lead = leads.pop()
        if lead not in self.members:
            return 0
        if self.node(lead).status(timeout=2).raft_state != StateType.StateLeader:
            return 0
        return lead

    def elect(self, id: int, timeout: float = 5.0) -> int:
        """Make ``id`` campaign once it has applied the bootstrap entries (raft
        refuses to campaign with conf changes unapplied); returns the leader."""
        n = self.node(id)
        wait_until(lambda: n.status().applied >= len(self.members), timeout, "bootstrap")
        n.campaign()
        return self.wait_leader(timeout=timeout)

    def wait_leader(self, among: Iterable[int] | None = None, timeout: float = 5.0) -> int:
        ids = None if among is None else list(among)
        found = [0]

        def agreed() -> bool:
            found[0] = self.leader(ids)
            return found[0] != 0

        wait_until(agreed, timeout, "a leader")
        return found[0]

    def wait_applied(
        self, payloads: Iterable[bytes], ids: Iterable[int] | None = None, timeout: float = 5.0
    ) -> None:
        """Wait until every member in ``ids`` (default: all) has applied ``payloads``."""
        want = set(payloads)
        members = [self.members[i] for i in (self.members if ids is None else ids)]
        wait_until(
            lambda: all(want <= set(m.sm.copy_applied()) for m in members),
            timeout,
            f"{len(want)} payloads applied on {[m.id for m in members]}",
        )


# --- asyncio cluster ------------------------------------------------------------------


class AsyncMember:
    """One member: an AsyncNode plus its application, transport and (async storage
    writes) append and apply tasks."""

    def __init__(
        self,
        cluster: AsyncCluster,
        id: int,
        storage: MemoryStorage,
        sm: StateMachine,
        node: AsyncNode,
    ) -> None:
        self.cluster = cluster
        self.id = id
        self.storage = storage
        self.sm = sm
        self.node = node
        self.async_writes = cluster.async_writes
        self.inbound: asyncio.Queue[Message | None] = asyncio.Queue()
        self.append_q: asyncio.Queue[Message | None] = asyncio.Queue()
        self.apply_q: asyncio.Queue[Message | None] = asyncio.Queue()
        self.errors: list[BaseException] = []
        coros: list[Callable[[], Awaitable[None]]] = [self._app_loop, self._transport_loop]
        if self.async_writes:
            coros += [self._append_loop, self._apply_loop]
        self.tasks = [asyncio.create_task(self._guard(c)) for c in coros]

    async def _guard(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except StoppedError:
            pass
        except Exception as err:
            self.errors.append(err)

    async def stop(self) -> None:
        await self.node.stop()
        for q in (self.inbound, self.append_q, self.apply_q):
            q.put_nowait(None)
        _, pending = await asyncio.wait(self.tasks, timeout=5)
        assert not pending, f"member {self.id}: tasks did not stop"
        if self.node.failure is not None:
            self.errors.append(self.node.failure)

    async def _app_loop(self) -> None:
        node = self.node
        async for rd in node.ready():
            if self.async_writes:
                self._route(rd)
            else:
                persist(self.storage, self.sm, rd.snapshot, rd.entries, rd.hard_state)
                self._send(rd.messages)
                await self._apply(rd.committed_entries)
                self.sm.record_reads(rd.read_states)
                node.advance()

    def _route(self, rd: Ready) -> None:
        for m in rd.messages:
            if m.to == LOCAL_APPEND_THREAD:
                self.append_q.put_nowait(m)
            elif m.to == LOCAL_APPLY_THREAD:
                self.apply_q.put_nowait(m)
            else:
                self._send((m,))
        self.sm.record_reads(rd.read_states)

    def _send(self, msgs: Iterable[Message]) -> None:
        for m in msgs:
            self.cluster.network.send(m)
            if m.type == MessageType.MsgSnap:
                self.node.report_snapshot(m.to, SnapshotStatus.SnapshotFinish)

    async def _apply(self, ents: Sequence[Entry]) -> None:
        sm = self.sm
        for e in ents:
            if e.type == EntryType.EntryNormal:
                sm.apply_normal(e)
            elif sm.needs(e):
                cs = await self.node.apply_conf_change(unmarshal_conf_change(e.type, e.data))
                sm.conf_applied(e, cs)

    async def _deliver(self, responses: Iterable[Message]) -> None:
        for r in responses:
            if r.to == self.id:
                await self.node.step(r)
            else:
                self._send((r,))

    async def _append_loop(self) -> None:
        while (m := await self.append_q.get()) is not None:
            hs = HardState(m.term, m.vote, m.commit)
            persist(self.storage, self.sm, m.snapshot, m.entries, hs)
            await self._deliver(m.responses)

    async def _apply_loop(self) -> None:
        while (m := await self.apply_q.get()) is not None:
            await self._apply(m.entries)
            await self._deliver(m.responses)

    async def _transport_loop(self) -> None:
        while (m := await self.inbound.get()) is not None:
            with contextlib.suppress(NodeTimeoutError):
                await self.node.step(m, timeout=STEP_TIMEOUT)


class AsyncCluster:
    """A cluster of :class:`AsyncNode` members on the running event loop. Create it
    with ``await AsyncCluster.create(...)``."""

    def __init__(
        self, *, async_writes: bool, election_tick: int, overrides: dict[str, Any]
    ) -> None:
        self.async_writes = async_writes
        self.election_tick = election_tick
        self.overrides = overrides
        self.network = Network()
        self.members: dict[int, AsyncMember] = {}
        self.errors: list[BaseException] = []
        self._ticker: asyncio.Task[None] | None = None

    @classmethod
    async def create(
        cls,
        ids: Sequence[int] = (1, 2, 3),
        *,
        async_writes: bool = False,
        election_tick: int = 20,
        **overrides: Any,
    ) -> AsyncCluster:
        c = cls(async_writes=async_writes, election_tick=election_tick, overrides=overrides)
        peers = [Peer(i) for i in ids]
        for i in ids:
            storage = MemoryStorage()
            c._add(i, storage, StateMachine(), AsyncNode.start(c.config(i, storage), peers))
        c._ticker = asyncio.create_task(c._tick_loop())
        return c

    def config(self, id: int, storage: MemoryStorage) -> Config:
        return make_config(
            id,
            storage,
            async_writes=self.async_writes,
            election_tick=self.election_tick,
            **self.overrides,
        )

    def _add(
        self, id: int, storage: MemoryStorage, sm: StateMachine, node: AsyncNode
    ) -> AsyncMember:
        member = AsyncMember(self, id, storage, sm, node)
        self.members[id] = member
        self.network.attach(id, member.inbound.put_nowait)
        return member

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            for member in list(self.members.values()):
                member.node.tick()

    def node(self, id: int) -> AsyncNode:
        return self.members[id].node

    def sm(self, id: int) -> StateMachine:
        return self.members[id].sm

    def join(self, id: int) -> AsyncNode:
        storage = MemoryStorage()
        return self._add(
            id, storage, StateMachine(), AsyncNode.restart(self.config(id, storage))
        ).node

    async def stop_member(self, id: int) -> MemoryStorage:
        self.network.detach(id)
        member = self.members.pop(id)
        await member.stop()
        self.errors += member.errors
        return member.storage

    def restart_member(self, id: int, storage: MemoryStorage) -> AsyncNode:
        sm = StateMachine()
        snap = storage.snapshot()
        if not snap.is_empty():
            sm.restore(snap)
        return self._add(id, storage, sm, AsyncNode.restart(self.config(id, storage))).node

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.wait((self._ticker,))
        for id in list(self.members):
            await self.stop_member(id)
        if self.errors:
            raise self.errors[0]

    async def __aenter__(self) -> AsyncCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def leader(self, among: Iterable[int] | None = None) -> int:
        ids = list(self.members) if among is None else list(among)
        leads = {(await self.node(i).status(timeout=2)).lead for i in ids}
        if len(leads) != 1:
            return 0
        lead = leads.pop()
        if lead not in self.members:
            return 0
        if (await self.node(lead).status(timeout=2)).raft_state != StateType.StateLeader:
            return 0
        return lead

    async def elect(self, id: int, timeout: float = 5.0) -> int:
        """See :meth:`ThreadCluster.elect`."""
        n = self.node(id)

        async def bootstrapped() -> bool:
            return (await n.status()).applied >= len(self.members)

        await async_wait_until(bootstrapped, timeout, "bootstrap")
        await n.campaign()
        return await self.wait_leader(timeout=timeout)

    async def wait_leader(self, among: Iterable[int] | None = None, timeout: float = 5.0) -> int:
        ids = None if among is None else list(among)
        found = [0]

        async def agreed() -> bool:
            found[0] = await self.leader(ids)
            return found[0] != 0

        await async_wait_until(agreed, timeout, "a leader")
        return found[0]

    async def wait_applied(
        self, payloads: Iterable[bytes], ids: Iterable[int] | None = None, timeout: float = 5.0
    ) -> None:
        want = set(payloads)
        members = [self.members[i] for i in (self.members if ids is None else ids)]
        await async_wait_until(
            lambda: all(want <= set(m.sm.copy_applied()) for m in members),
            timeout,
            f"{len(want)} payloads applied on {[m.id for m in members]}",
        )
