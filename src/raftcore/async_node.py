"""An asyncio-driven raft node: :class:`AsyncNode`, the coroutine twin of
:class:`raftcore.Node`.

An :class:`AsyncNode` owns a :class:`~raftcore.RawNode` and runs it in a task of
the running event loop, the *raft loop* (etcd's ``node.run``). Coroutines talk to it
through awaitable calls: ``await node.propose(data)``, ``await node.step(m)`` ...
queue requests for it, and ``node.ready()`` is an async iterator over the work it has
for the application. All calls must come from the event loop's thread.

Starting a node (inside a coroutine; the loop task needs a running loop)::

    node = AsyncNode.start(config, [Peer(1), Peer(2), Peer(3)])  # new cluster
    node = AsyncNode.restart(config)                             # state from storage

The application loop (default, synchronous storage writes) handles each
:class:`~raftcore.Ready` in this order::

    async for rd in node.ready():              # ends when the node is stopped
        # 1. Persist snapshot, entries, hard state (durably if rd.must_sync); run
        #    blocking disk work in a thread, e.g. await asyncio.to_thread(wal.save, rd).
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        # 2. Send the messages, only now.
        for m in rd.messages:
            transport.send(m)                 # node.report_snapshot() after a MsgSnap
        # 3. Apply committed entries in order; conf changes go back to the node.
        for e in rd.committed_entries:
            if e.type == EntryType.EntryNormal:
                state_machine.apply(e)
            else:
                cs = await node.apply_conf_change(unmarshal_conf_change(e.type, e.data))
        # 4. Acknowledge; nothing new comes until then.
        node.advance()

Alongside, a task calls :meth:`AsyncNode.tick` at a fixed interval and the transport
awaits :meth:`AsyncNode.step` for every message it receives. Clients ``await
node.propose(data)``; an application that keeps thousands of proposals in flight can
use :meth:`AsyncNode.propose_nowait` instead (no coroutine per proposal, raft's verdict
to a callback). Proposals queued together are stepped as one MsgProp. With
``Config.async_storage_writes``, :meth:`AsyncNode.advance` is not called; the
persistence and application work arrives as ``MsgStorageAppend`` (to
``LOCAL_APPEND_THREAD``) and ``MsgStorageApply`` (to ``LOCAL_APPLY_THREAD``) messages
in ``rd.messages``, to be handled in order by two worker tasks, each of which then
delivers the message's ``responses`` (``await node.step(r)`` for this node, the
network for others); see :mod:`raftcore.node` for the routing loop.

Cancellation is safe everywhere: a cancelled or timed-out call either took full
effect or none (a proposal cancelled after the raft loop took it may still commit,
exactly like a proposal whose acknowledgement got lost), and a cancelled wait for a
Ready loses nothing. ``timeout`` arguments (seconds) raise
:class:`~raftcore.errors.NodeTimeoutError`, and a call that raised it had no effect.
Calls on a stopped node raise :class:`~raftcore.errors.StoppedError`. Always
``await node.stop()`` (or use ``async with``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Final

from raftcore.config import Config
from raftcore.errors import (
    NodeTimeoutError,
    RaftError,
    StoppedError,
)
from raftcore.node import (
    _ADVANCE,
    _CONF,
    _PROP,
    _RECV,
    _STATUS,
    MAX_INBOX,
    MAX_PENDING_TICKS,
    CallbackCall,
    Item,
    LoopCore,
    _new_prop,
    bootstrapped,
)
from raftcore.raftpb.confchange import marshal_conf_change
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeV2,
    ConfState,
    Entry,
    Message,
    MessageType,
)
from raftcore.rawnode import Peer, RawNode, Ready, SnapshotStatus
from raftcore.status import Status
from raftcore.util import is_local_msg, is_local_msg_target

__all__ = ["AsyncNode"]

_MsgProp: Final = MessageType.MsgProp


class _AsyncCall:
    """A request a coroutine awaits. Everything runs on one thread, so the claim
    (the loop checks that the future is still open, then processes the request
    without awaiting) cannot interleave with a cancellation or a timeout."""

    __slots__ = ("fut",)

    def __init__(self, fut: asyncio.Future[object]) -> None:
        self.fut = fut

    def claim(self) -> bool:
        return not self.fut.done()

    def finish(self, value: object, error: BaseException | None) -> None:
        fut = self.fut
        if fut.done():
            return  # cancelled after the claim: the effect stands, the answer is dropped
        if error is None:
            fut.set_result(value)
        else:
            fut.set_exception(error)

    def fail(self, error: BaseException) -> None:
        self.finish(None, error)


def _expire(fut: asyncio.Future[object]) -> None:
    # The timer of a call with a timeout: answering the future closes it, so the
    # loop will not claim it any more.
    if not fut.done():
        fut.set_exception(NodeTimeoutError())


class AsyncNode:
    """A raft node run by an asyncio task; see the module docs for the loop.

    Create it with :meth:`start` or :meth:`restart` from a coroutine, or wrap a
    prepared :class:`~raftcore.RawNode` with ``AsyncNode(raw_node)`` (the node takes
    it over). The raft loop task starts at once on the running loop (RuntimeError if
    there is none). Not thread-safe: use it from the loop's thread only.
    """

    def __init__(self, rn: RawNode) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._core = LoopCore(rn)
        self._rn = rn
        self._id: int = rn.raft.id
        self._logger = rn.raft.logger
        self._async_writes = rn.async_storage_writes
        self._inbox: deque[Item] = deque()
        self._ticks = 0
        # The Ready on offer (nothing changed since it was built) and the one just
        # taken by the application, which the loop accepts before anything else.
        self._offer: Ready | None = None
        self._taken: Ready | None = None
        self._outstanding = False
        self._stopping = False
        self._failure: BaseException | None = None
        self._wake = asyncio.Event()  # input for the loop
        self._ready_evt = asyncio.Event()  # a Ready on offer, or stopped
        # Callers waiting for room in a full inbox, first come first served: the loop
        # admits as many as it freed room for (waking them all would make thousands
        # of them race for a few slots on every turn). Messages from peers and the
        # application's own calls (apply_conf_change, status ...) wait in their own
        # queue, admitted first: they must not sit behind thousands of proposals.
        self._space_waiters: deque[asyncio.Future[None]] = deque()  # proposals
        self._space_waiters_first: deque[asyncio.Future[None]] = deque()
        self._task = loop.create_task(self._run(), name=f"raftcore-node-{self._id:x}")

    # --- construction ----------------------------------------------------------------

    @classmethod
    def start(cls, config: Config, peers: Sequence[Peer]) -> AsyncNode:
        """Start a node for a new cluster of ``peers`` (etcd's ``StartNode``); see
        :meth:`raftcore.Node.start`. Must be called with an event loop running."""
        return cls(bootstrapped(config, peers))

    @classmethod
    def restart(cls, config: Config) -> AsyncNode:
        """Start a node from the state in ``config.storage`` (etcd's ``RestartNode``)."""
        return cls(RawNode(config))

    @property
    def id(self) -> int:
        """This node's raft id."""
        return self._id

    # --- input ------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance the logical clock by one tick. Never blocks; ignored once stopped;
        beyond 128 unprocessed ticks, dropped with a warning."""
        if self._stopping:
            return
        if self._ticks >= MAX_PENDING_TICKS:
            self._logger.warning("%x A tick missed to fire. Node blocks too long!", self._id)
            return
        self._ticks += 1
        self._wake.set()

    async def campaign(self, timeout: float | None = None) -> None:
        """Start an election (with a pre-vote phase if configured)."""
        await self._submit((_RECV, Message(type=MessageType.MsgHup), None), timeout)

    async def propose(self, data: bytes, timeout: float | None = None) -> None:
        """Propose ``data``, waiting until the raft loop has taken it (which needs a
        known leader). Raises ProposalDroppedError, NodeTimeoutError, StoppedError;
        see :meth:`raftcore.Node.propose`."""
        await self._call(_PROP, _new_prop(data), timeout)

    def propose_nowait(
        self, data: bytes, callback: Callable[[BaseException | None], object] | None = None
    ) -> None:
        """Queue a proposal and return at once, without waiting for the raft loop.

        For applications that keep many proposals in flight and would rather not spend a
        coroutine and two task switches on each: ``callback`` (if given) is called from
        the raft loop with ``None`` once raft took the proposal (as :meth:`propose`
        returns) or with the error :meth:`propose` would raise (ProposalDroppedError,
        StoppedError). It runs inside the raft loop: keep it short, do not block, and do
        not call back into this node except through ``*_nowait``/``tick``-style
        methods; an exception it raises is logged and ignored. Without a callback a
        refused proposal is dropped silently, like one lost in forwarding.

        There is no back-pressure: the caller bounds its own proposals in flight (a
        window, or raft's ``max_uncommitted_entries_size``). Raises StoppedError at once
        on a stopped node.
        """
        if self._stopping:
            raise self._stopped_error()
        m = _new_prop(data)
        self._inbox.append((_PROP, m, CallbackCall(callback, self._logger)))
        self._wake.set()

    async def propose_conf_change(
        self, cc: ConfChange | ConfChangeV2 | None, timeout: float | None = None
    ) -> None:
        """Propose a membership change (``None`` leaves a joint config); like
        :meth:`propose`. Apply it with :meth:`apply_conf_change` once committed."""
        typ, data = marshal_conf_change(cc)
        msg = Message(type=_MsgProp, entries=[Entry(type=typ, data=data)])
        await self._call(_PROP, msg, timeout)

    async def step(self, m: Message, timeout: float | None = None) -> None:
        """Hand a received message to raft; see :meth:`raftcore.Node.step`.

        Returns once queued (a MsgProp: once taken, which needs a known leader).
        """
        t = m.type
        if t == _MsgProp:
            try:
                await self._call(_PROP, m, timeout)
            except (StoppedError, NodeTimeoutError):
                raise
            except RaftError:
                pass  # raft's verdict on a forwarded proposal is not the sender's
            return
        if is_local_msg(t) and not is_local_msg_target(m.from_):
            return
        await self._submit((_RECV, m, None), timeout)

    async def apply_conf_change(
        self, cc: ConfChange | ConfChangeV2, timeout: float | None = None
    ) -> ConfState:
        """Apply a committed membership change; returns the resulting ConfState.

        Do not cancel it (a change applied by the loop stays applied even if the
        answer is lost); see :meth:`raftcore.Node.apply_conf_change`.
        """
        result = await self._call(_CONF, cc.as_v2(), timeout)
        assert isinstance(result, ConfState)
        return result

    async def transfer_leadership(
        self, lead: int, transferee: int, timeout: float | None = None
    ) -> None:
        """Ask leader ``lead`` to hand leadership to ``transferee``."""
        m = Message(type=MessageType.MsgTransferLeader, from_=transferee, to=lead)
        await self._submit((_RECV, m, None), timeout)

    async def forget_leader(self, timeout: float | None = None) -> None:
        """Forget the current leader (followers only), staying in the same term."""
        await self._submit((_RECV, Message(type=MessageType.MsgForgetLeader), None), timeout)

    async def read_index(self, rctx: bytes, timeout: float | None = None) -> None:
        """Request a read index; the answer arrives in a later Ready's
        ``read_states`` carrying ``rctx`` (see :meth:`raftcore.Node.read_index`)."""
        m = Message(type=MessageType.MsgReadIndex, entries=[Entry(data=rctx)])
        await self._submit((_RECV, m, None), timeout)

    def report_unreachable(self, id: int) -> None:
        """Report that the last message sent to ``id`` could not be delivered."""
        self._put((_RECV, Message(type=MessageType.MsgUnreachable, from_=id), None))

    def report_snapshot(self, id: int, status: SnapshotStatus) -> None:
        """Report whether the snapshot sent to ``id`` was delivered (a failure must
        be reported, or the follower stays stuck)."""
        m = Message(
            type=MessageType.MsgSnapStatus,
            from_=id,
            reject=status == SnapshotStatus.SnapshotFailure,
        )
        self._put((_RECV, m, None))

    # --- output -----------------------------------------------------------------------

    def ready(self) -> AsyncIterator[Ready]:
        """An async iterator over Readys; it ends when the node is stopped.

        ``async for rd in node.ready(): ...`` (one consumer at a time). If the raft
        loop died, the iteration raises StoppedError (``__cause__`` is the loop's
        exception). To wait for one Ready with a timeout use :meth:`next_ready`.
        """
        return _ReadyIterator(self)

    async def next_ready(self, timeout: float | None = None) -> Ready:
        """The next Ready (waits for one). NodeTimeoutError after ``timeout``
        seconds without one (nothing is lost), StoppedError once stopped."""
        if timeout is None:
            return await self._next_ready()
        try:
            async with asyncio.timeout(timeout):
                return await self._next_ready()
        except TimeoutError:
            raise NodeTimeoutError("raft: timed out waiting for a Ready") from None

    async def _next_ready(self) -> Ready:
        evt = self._ready_evt
        while True:
            if self._stopping:
                raise self._stopped_error()
            rd = self._offer
            if rd is not None:
                # Taken without awaiting: a cancellation can only strike before.
                self._offer = None
                self._taken = rd
                if not self._async_writes:
                    self._outstanding = True
                self._wake.set()
                return rd
            evt.clear()
            await evt.wait()

    def advance(self) -> None:
        """Acknowledge the last Ready (sync mode only; raises RaftError with async
        storage writes or if no Ready is waiting for it)."""
        if self._stopping:
            raise self._stopped_error()
        if self._async_writes:
            raise RaftError("raft: advance must not be called when using async storage writes")
        if not self._outstanding:
            raise RaftError("raft: advance called without a Ready to acknowledge")
        self._outstanding = False
        self._inbox.append((_ADVANCE, None, None))
        self._wake.set()

    async def status(self, timeout: float | None = None) -> Status:
        """A snapshot of the node's state (term, leader, configuration, progress)."""
        result = await self._call(_STATUS, None, timeout)
        assert isinstance(result, Status)
        return result

    # --- lifecycle --------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop the raft loop and wait for its task to end (idempotent).

        Pending requests fail with StoppedError, and so do later calls (except
        :meth:`tick`). Cancelling ``stop`` does not cancel the shutdown.
        """
        if not self._stopping:
            self._stopping = True
            self._wake.set()
            self._ready_evt.set()
            self._admit_all()
        task = self._task
        if not task.done():
            # wait() neither cancels the task if we are cancelled nor raises its
            # outcome (the loop records failures itself).
            await asyncio.wait((task,))

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called or the raft loop died."""
        return self._stopping

    @property
    def failure(self) -> BaseException | None:
        """The exception that ended the raft loop, if one did (e.g. a RaftPanic)."""
        return self._failure

    async def __aenter__(self) -> AsyncNode:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- plumbing ---------------------------------------------------------------------

    def _stopped_error(self) -> StoppedError:
        err = StoppedError()
        err.__cause__ = self._failure
        return err

    def _put(self, item: Item) -> None:
        if self._stopping:
            raise self._stopped_error()
        self._inbox.append(item)
        self._wake.set()

    async def _submit(self, item: Item, timeout: float | None) -> None:
        if len(self._inbox) >= MAX_INBOX or self._space_waiters_first:
            deadline = None if timeout is None else self._loop.time() + timeout
            await self._wait_for_space(deadline, self._space_waiters_first)
        self._put(item)

    async def _call(self, kind: int, arg: object, timeout: float | None) -> object:
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        if kind == _PROP:
            if len(self._inbox) >= MAX_INBOX or self._space_waiters or self._space_waiters_first:
                await self._wait_for_space(deadline, self._space_waiters)
        elif len(self._inbox) >= MAX_INBOX or self._space_waiters_first:
            await self._wait_for_space(deadline, self._space_waiters_first)
        if self._stopping:
            raise self._stopped_error()
        fut: asyncio.Future[object] = loop.create_future()
        self._inbox.append((kind, arg, _AsyncCall(fut)))
        self._wake.set()
        if deadline is None:
            return await fut
        # A timer answers the future instead of cancelling the caller: the loop then
        # sees it closed and skips it, so a timeout never races with the effect.
        timer = loop.call_at(deadline, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()

    async def _wait_for_space(
        self, deadline: float | None, queue: deque[asyncio.Future[None]]
    ) -> None:
        if self._stopping:
            return  # the caller raises StoppedError
        fut: asyncio.Future[None] = self._loop.create_future()
        queue.append(fut)
        timeout = None if deadline is None else max(deadline - self._loop.time(), 0.0)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except BaseException as err:
            # Gave up (timeout, cancellation): a slot granted meanwhile goes to the
            # next in line, or it would be lost and the queue could stall.
            if fut.done() and not fut.cancelled():
                self._admit(1)
            else:
                fut.cancel()  # _admit skips it
            if isinstance(err, TimeoutError):
                raise NodeTimeoutError("raft: timed out waiting for the raft loop") from None
            raise

    def _admit(self, n: int) -> None:
        """Let up to ``n`` callers waiting for room queue their requests: messages
        and application calls first, then proposals."""
        for waiters in (self._space_waiters_first, self._space_waiters):
            while n > 0 and waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(None)
                    n -= 1

    def _admit_all(self) -> None:
        self._admit(len(self._space_waiters_first) + len(self._space_waiters))

    async def _run(self) -> None:
        core = self._core
        rn = self._rn
        async_writes = self._async_writes
        wake = self._wake
        offer: Ready | None = None
        try:
            while True:
                if offer is None and not core.awaiting_advance and rn.has_ready():
                    offer = rn.ready_without_accept()
                if offer is not None:
                    self._offer = offer
                    self._ready_evt.set()
                while not (self._inbox or self._ticks or self._taken is not None or self._stopping):
                    wake.clear()
                    await wake.wait()
                # Withdraw the offer before anything changes the RawNode.
                self._offer = None
                taken = self._taken
                self._taken = None
                items = self._inbox
                if items:
                    self._inbox = deque()
                    if self._space_waiters or self._space_waiters_first:
                        self._admit(MAX_INBOX)
                ticks = self._ticks
                self._ticks = 0
                if self._stopping:
                    core.pending = items
                    break
                if taken is not None:
                    rn.accept_ready(taken)
                    if not async_writes:
                        core.awaiting_advance = True
                    offer = None
                if items or ticks:
                    offer = None
                    core.process(items, ticks)
        except asyncio.CancelledError:
            # The task itself was cancelled (e.g. the event loop is shutting down):
            # a stop, not a failure; the cancellation goes on.
            self._shutdown(None)
            raise
        except BaseException as err:
            failure = err
            r = rn.raft
            r.logger.error("raft.node: %x raft loop failed: %s", r.id, err)
            self._shutdown(failure)
            if not isinstance(err, Exception):
                raise  # KeyboardInterrupt and the like
        else:
            self._shutdown(None)

    def _shutdown(self, failure: BaseException | None) -> None:
        self._stopping = True
        if failure is not None:
            self._failure = failure
        rest = self._inbox
        self._inbox = deque()
        self._offer = None
        self._taken = None
        self._ready_evt.set()
        self._admit_all()
        core = self._core
        core.pending.extend(rest)
        core.fail_all(self._stopped_error)


class _ReadyIterator:
    """``async for rd in node.ready()``: Readys until the node stops."""

    __slots__ = ("_node",)

    def __init__(self, node: AsyncNode) -> None:
        self._node = node

    def __aiter__(self) -> _ReadyIterator:
        return self

    async def __anext__(self) -> Ready:
        node = self._node
        try:
            return await node._next_ready()
        except StoppedError:
            if node.failure is not None:
                raise
            raise StopAsyncIteration from None
