"""A thread-driven raft node (etcd's ``node.go``): :class:`Node`.

A :class:`Node` owns a :class:`~raftcore.RawNode` and runs it on a background thread,
the *raft loop* (etcd's ``node.run``). Every other thread talks to the loop through
thread-safe calls: :meth:`Node.tick`, :meth:`Node.propose`, :meth:`Node.step` ...
queue requests for it, and :meth:`Node.ready` hands out the work the loop has for the
application. The RawNode itself is only ever touched by the loop thread.

Starting a node::

    storage = MemoryStorage()
    config = Config(id=1, election_tick=10, heartbeat_tick=1, storage=storage,
                    max_size_per_msg=1 << 20, max_inflight_msgs=256)
    node = Node.start(config, [Peer(1), Peer(2), Peer(3)])   # a brand-new cluster
    node = Node.restart(config)                              # or: state from storage

The application loop (default, synchronous storage writes) does four things with
each :class:`~raftcore.Ready`, in this order::

    for rd in node.readies():                  # ends when the node is stopped
        # 1. Persist: snapshot, entries, hard state (durably if rd.must_sync).
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        # 2. Send: only now, after step 1 (a vote or an append acknowledgement
        #    must never leave before what it promises is on disk).
        for m in rd.messages:
            transport.send(m)                 # call node.report_snapshot() after a MsgSnap
        # 3. Apply committed entries in order; conf changes go back to the node.
        for e in rd.committed_entries:
            if e.type == EntryType.EntryNormal:
                state_machine.apply(e)
            else:
                conf_state = node.apply_conf_change(unmarshal_conf_change(e.type, e.data))
        # 4. Acknowledge. The node produces nothing new until then.
        node.advance()

Meanwhile another thread calls :meth:`Node.tick` at a fixed interval (the unit of
``election_tick`` and ``heartbeat_tick``), and the transport hands every message it
receives to :meth:`Node.step`. Clients call :meth:`Node.propose`.

With ``Config.async_storage_writes`` the loop changes: :meth:`Node.advance` is not
called (it raises), and the Ready's persistence and application work arrives as two
messages among ``rd.messages``, which the application routes by target::

    for rd in node.readies():
        for m in rd.messages:
            if m.to == LOCAL_APPEND_THREAD:
                append_queue.put(m)           # persist m.snapshot, m.entries, and the
                                              # hard state (m.term, m.vote, m.commit)
            elif m.to == LOCAL_APPLY_THREAD:
                apply_queue.put(m)            # apply m.entries
            else:
                transport.send(m)             # may go out at once

    # On each of the two storage threads, in order: do the work, then deliver every
    # message in m.responses (to this node with node.step, to others over the network).

Errors: a call on a stopped node raises :class:`~raftcore.errors.StoppedError` (whose
``__cause__`` is the exception that killed the raft loop, if one did); a call whose
``timeout`` (seconds; ``None`` waits forever) expires raises
:class:`~raftcore.errors.NodeTimeoutError` and had no effect. Always :meth:`Node.stop`
a node (or use it as a context manager): stop joins the loop thread.

Differences from etcd's node, all of them reporting more than etcd does:
:meth:`Node.propose_conf_change` waits for raft's verdict like :meth:`Node.propose`
(etcd discards it); :meth:`Node.status` and :meth:`Node.advance` on a stopped node
raise StoppedError (etcd returns an empty Status or does nothing); misusing
:meth:`Node.advance` raises RaftError (etcd blocks forever). Proposals are taken in
the order they were made; etcd's ``select`` takes its inputs in random order.
Proposals found queued back to back are stepped as one MsgProp (raft's verdict still
reaches each caller; see ``LoopCore``), and queued messages are stepped before the
ticks that piled up meanwhile (see docs/porting.md).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from time import monotonic
from types import TracebackType
from typing import Any, Final, Protocol

from raftcore.config import Config
from raftcore.errors import (
    NodeTimeoutError,
    RaftError,
    RaftPanic,
    StoppedError,
)
from raftcore.logger import Logger
from raftcore.raftpb.confchange import marshal_conf_change
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
)
from raftcore.rawnode import Peer, RawNode, Ready, SnapshotStatus
from raftcore.status import Status, get_status
from raftcore.util import (
    NONE,
    is_local_msg,
    is_local_msg_target,
    is_response_msg,
    payloads_size,
)

__all__ = ["Node", "restart_node", "start_node"]

# How many ticks may wait for a busy loop before further ones are dropped (etcd's
# buffered tick channel has the same capacity).
MAX_PENDING_TICKS: Final = 128
# Requests queued for the loop beyond which callers wait: the back-pressure etcd gets
# from its unbuffered channels, with room for a burst.
MAX_INBOX: Final = 4096

_MsgProp = MessageType.MsgProp
_EntryNormal = EntryType.EntryNormal

# Consecutive proposals the loop finds queued are stepped as one MsgProp (one append,
# one broadcast, one forwarded message) up to these bounds; raft sees the same entries
# in the same order, and a refused batch is retried proposal by proposal so that each
# caller still gets raft's own verdict.
MAX_COALESCED_PROPOSALS: Final = 4096
MAX_COALESCED_BYTES: Final = 1 << 20

# Request kinds, as queued for the loop: (kind, argument, completion or None).
_RECV: Final = 0  # a message to step; errors ignored (etcd's recvc)
_PROP: Final = 1  # a proposal; waits for a leader (etcd's propc)
_CONF: Final = 2  # apply a conf change; answers the ConfState
_STATUS: Final = 3  # answers a Status
_ADVANCE: Final = 4  # the application finished the last Ready

Item = tuple[int, Any, "Completion | None"]


class Completion(Protocol):
    """How the loop answers a request someone waits for (one per driver)."""

    def claim(self) -> bool:
        """Take the request for processing; False if the caller gave up on it."""

    def finish(self, value: object, error: BaseException | None) -> None:
        """Answer a claimed request."""

    def fail(self, error: BaseException) -> None:
        """Answer a request that will never be processed (the node stopped)."""


class LoopCore:
    """What the raft loop does with requests, shared by :class:`Node` and
    :class:`~raftcore.AsyncNode` (which differ only in how they wait and wake).

    Not thread-safe: only the loop calls it.
    """

    __slots__ = (
        "accept_props",
        "async_writes",
        "awaiting_advance",
        "batch",
        "current",
        "lead",
        "parked",
        "pending",
        "raft",
        "rn",
    )

    def __init__(self, rn: RawNode) -> None:
        self.rn = rn
        self.raft = rn.raft
        self.async_writes = rn.async_storage_writes
        # The leader last seen; proposals are taken only while one is known (etcd
        # sets propc to nil without one) and the node was not removed.
        self.lead = NONE
        self.accept_props = False
        # Proposals waiting for a leader, oldest first; their callers may give up.
        self.parked: deque[tuple[Message, Completion]] = deque()
        # Sync mode: a Ready was handed out and not yet advanced; nothing new is
        # offered meanwhile.
        self.awaiting_advance = False
        # The rest of the batch being processed and the request in hand, so that a
        # loop that dies mid-batch can still answer every caller.
        self.pending: deque[Item] = deque()
        self.current: Completion | None = None
        # The claimed callers of a coalesced proposal being stepped.
        self.batch: list[Completion] = []

    def track_leader(self) -> None:
        """Log leader changes and open/close the proposal path (top of etcd's loop)."""
        r = self.raft
        lead = r.lead
        if lead == self.lead:
            return
        if lead != NONE:
            if self.lead == NONE:
                r.logger.info("raft.node: %x elected leader %x at term %d", r.id, lead, r.term)
            else:
                r.logger.info(
                    "raft.node: %x changed leader from %x to %x at term %d",
                    r.id,
                    self.lead,
                    lead,
                    r.term,
                )
            self.accept_props = True
        else:
            r.logger.info("raft.node: %x lost leader %x at term %d", r.id, self.lead, r.term)
            self.accept_props = False
        self.lead = lead

    def process(self, items: deque[Item], ticks: int) -> None:
        """Apply the queued requests in order, then ``ticks`` ticks.

        Ticks come last: when the loop fell behind, the messages that queued up
        meanwhile (a leader's heartbeats, followers' acknowledgements) must count
        before the late ticks do, or a busy follower would time out a live leader
        and a busy leader would step down for lack of a quorum it actually has.
        """
        rn = self.rn
        r = self.raft
        self.pending = items
        popleft = items.popleft
        while items:
            kind, arg, call = popleft()
            if kind == _RECV:
                m: Message = arg
                if (
                    is_response_msg(m.type)
                    and not is_local_msg_target(m.from_)
                    and m.from_ not in r.trk.progress
                ):
                    continue  # a response from a node we do not know (any more)
                try:
                    r.step(m)
                except RaftPanic:
                    raise
                except RaftError:
                    pass  # etcd ignores Step's error here
            elif kind == _PROP:
                assert call is not None
                self.track_leader()
                if self.accept_props:
                    if self.parked:
                        self._drain_parked()
                    if items and items[0][0] == _PROP and _coalescable(arg):
                        self._step_props(arg, call, items)
                    else:
                        self._step_prop(arg, call)
                else:
                    self.parked.append((arg, call))
            elif kind == _ADVANCE:
                self.awaiting_advance = False
                rn.advance()
            elif kind == _CONF:
                assert call is not None
                if call.claim():
                    self.current = call
                    call.finish(self._apply_conf_change(arg), None)
                    self.current = None
            else:  # _STATUS
                assert call is not None
                if call.claim():
                    call.finish(get_status(r), None)
        for _ in range(ticks):
            rn.tick()
        self.track_leader()
        if self.parked and self.accept_props:
            self._drain_parked()

    def _step_prop(self, m: Message, call: Completion) -> None:
        if not call.claim():
            return  # the caller timed out or was cancelled: never proposed
        self._step_claimed(m, call)

    def _step_claimed(self, m: Message, call: Completion) -> None:
        self.current = call
        r = self.raft
        m.from_ = r.id
        try:
            r.step(m)
        except RaftPanic:
            raise
        except RaftError as err:
            call.finish(None, err)
        else:
            call.finish(None, None)
        self.current = None

    def _step_props(self, first: Message, call: Completion, items: deque[Item]) -> None:
        """Step ``first`` and the proposals queued right behind it as one MsgProp."""
        msgs: list[Message] = []
        calls: list[Completion] = []
        size = 0
        if call.claim():
            msgs.append(first)
            calls.append(call)
            size = payloads_size(first.entries)
        popleft = items.popleft
        while items and len(msgs) < MAX_COALESCED_PROPOSALS:
            kind, m, c = items[0]
            if kind != _PROP:
                break
            if not _coalescable(m):
                break
            n = payloads_size(m.entries)
            if msgs and size + n > MAX_COALESCED_BYTES:
                break
            popleft()
            assert c is not None
            if c.claim():
                msgs.append(m)
                calls.append(c)
                size += n
        if len(msgs) <= 1:
            if msgs:
                self._step_claimed(msgs[0], calls[0])
            return
        r = self.raft
        self.batch = calls
        if r.uncommitted_size + size > r.max_uncommitted_size:
            # Over the uncommitted budget as a whole. Raft always takes a proposal
            # when nothing is uncommitted, so the batch might be taken whole and
            # overshoot the budget by far more than one proposal ever can: let raft
            # judge each proposal instead, exactly as without coalescing.
            self._step_each(msgs, calls)
            return
        ents: list[Entry] = []
        for m in msgs:
            ents += m.entries
        try:
            r.step(Message(type=_MsgProp, from_=r.id, entries=ents))
        except RaftPanic:
            raise
        except RaftError:
            # Refused as a whole (no leader, a transfer under way): raft's checks
            # come before it appends anything, so nothing of the batch was taken.
            # Each proposal gets its own answer.
            self._step_each(msgs, calls)
            return
        self.batch = []
        for c in calls:
            c.finish(None, None)

    def _step_each(self, msgs: list[Message], calls: list[Completion]) -> None:
        # ``batch`` stays set meanwhile: if the loop dies, fail() skips the answered.
        for m, c in zip(msgs, calls, strict=True):
            self._step_claimed(m, c)
        self.batch = []

    def _drain_parked(self) -> None:
        parked = self.parked
        while parked and self.accept_props:
            m, call = parked.popleft()
            self._step_prop(m, call)

    def _apply_conf_change(self, cc: ConfChangeV2) -> ConfState:
        r = self.raft
        rid = r.id
        was_member = rid in r.trk.progress
        cs = r.apply_conf_change(cc)
        # A node removed from the configuration stops taking proposals (until it
        # sees a new leader, as in etcd). Only if it was a member before: a node
        # catching up may not know its membership yet.
        if (
            was_member
            and rid not in r.trk.progress
            and rid not in cs.voters
            and rid not in cs.voters_outgoing
        ):
            self.accept_props = False
        return cs

    def fail_all(self, make_error: Callable[[], BaseException]) -> None:
        """Answer every request still held (the loop is going away)."""
        if self.current is not None:
            self.current.fail(make_error())
            self.current = None
        for claimed in self.batch:
            claimed.fail(make_error())
        self.batch = []
        for _, _, call in self.pending:
            if call is not None:
                call.fail(make_error())
        self.pending = deque()
        for _, call in self.parked:
            call.fail(make_error())
        self.parked.clear()


class CallbackCall:
    """A proposal queued by ``propose_nowait`` (either driver): nobody waits for it,
    so it is always claimable; the verdict goes to the callback, if any."""

    __slots__ = ("cb", "logger")

    def __init__(self, cb: Callable[[BaseException | None], object] | None, logger: Logger) -> None:
        self.cb = cb
        self.logger = logger

    def claim(self) -> bool:
        return True

    def finish(self, value: object, error: BaseException | None) -> None:
        cb = self.cb
        if cb is None:
            return
        self.cb = None  # answered once, even if the loop dies and fail_all runs
        try:
            cb(error)
        except Exception as err:  # the raft loop must not die of an application bug
            self.logger.error("raft.node: proposal callback %r failed: %s", cb, err)

    def fail(self, error: BaseException) -> None:
        self.finish(None, error)


def bootstrapped(config: Config, peers: Sequence[Peer]) -> RawNode:
    """A RawNode for a new cluster of ``peers``: what etcd's ``StartNode`` does before
    it starts the loop (shared by both drivers). A storage that is not empty is only
    warned about, as in etcd."""
    if not peers:
        raise RaftError("no peers given; use RestartNode instead")
    rn = RawNode(config)
    try:
        rn.bootstrap(peers)
    except RaftPanic:
        raise
    except RaftError as err:
        rn.raft.logger.warning("error occurred during starting a new node: %s", err)
    return rn


def _new_prop(data: bytes) -> Message:
    # Positional: the keyword form of these constructors costs a third more, and this
    # runs once per proposal.
    return Message(_MsgProp, 0, 0, 0, 0, 0, [Entry(0, 0, _EntryNormal, data)])


def _coalescable(m: Message) -> bool:
    # Only plain entries: a conf change must stay alone in its MsgProp, as raft
    # judges (and may replace) it against the pending configuration.
    ents = m.entries
    if len(ents) == 1:  # what propose() makes: skip the generator
        return ents[0].type == _EntryNormal
    return all(e.type == _EntryNormal for e in ents)


# --- the thread driver ---------------------------------------------------------------

_PENDING: Final = 0
_CLAIMED: Final = 1
_DONE: Final = 2
_ABANDONED: Final = 3


class _Call:
    """A request an application thread waits on; state changes happen under the
    node's lock so that the loop's claim and the caller's timeout cannot both win."""

    __slots__ = ("done", "error", "mu", "state", "value")

    def __init__(self, mu: threading.Lock) -> None:
        self.mu = mu
        self.state = _PENDING
        self.value: object = None
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()  # released once answered

    def claim(self) -> bool:
        with self.mu:
            if self.state != _PENDING:
                return False
            self.state = _CLAIMED
            return True

    def finish(self, value: object, error: BaseException | None) -> None:
        # Only the loop touches a claimed call: no lock needed.
        self.value = value
        self.error = error
        self.state = _DONE
        self.done.release()

    def fail(self, error: BaseException) -> None:
        with self.mu:
            if self.state in (_DONE, _ABANDONED):
                return
            self.error = error
            self.state = _DONE
        self.done.release()


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - monotonic(), 0.0)


class Node:
    """A raft node run by a background thread; see the module docs for the loop.

    Create it with :meth:`start` (new cluster) or :meth:`restart` (existing state in
    ``config.storage``), or wrap a prepared :class:`~raftcore.RawNode` with
    ``Node(raw_node)`` (the node takes it over; do not touch it afterwards). The raft
    loop thread starts at once. All methods are thread-safe.
    """

    def __init__(self, rn: RawNode) -> None:
        self._core = LoopCore(rn)
        self._rn = rn
        self._id: int = rn.raft.id
        self._logger = rn.raft.logger
        self._async_writes = rn.async_storage_writes
        self._mu = threading.Lock()
        # The loop waits on _loop_cond when idle; ready() waits on _ready_cond;
        # callers facing a full inbox wait on _space_cond.
        self._loop_cond = threading.Condition(self._mu)
        self._ready_cond = threading.Condition(self._mu)
        self._space_cond = threading.Condition(self._mu)
        self._idle = False
        self._inbox: deque[Item] = deque()
        self._ticks = 0
        # The Ready on offer (built by the loop, nothing changed since) and the one
        # just taken by the application (the loop accepts it before anything else).
        self._offer: Ready | None = None
        self._taken: Ready | None = None
        # Sync mode: a taken Ready waits for advance().
        self._outstanding = False
        self._stopping = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"raftcore-node-{self._id:x}", daemon=True
        )
        self._thread.start()

    # --- construction ----------------------------------------------------------------

    @classmethod
    def start(cls, config: Config, peers: Sequence[Peer]) -> Node:
        """Start a node for a new cluster whose initial members are ``peers``.

        The log starts with one ConfChangeAddNode entry per peer (etcd's
        ``StartNode``). Raises RaftError if ``peers`` is empty (use :meth:`restart`),
        ConfigError if ``config`` is invalid. If the storage is not empty the peers
        are ignored with a warning, as in etcd.
        """
        return cls(bootstrapped(config, peers))

    @classmethod
    def restart(cls, config: Config) -> Node:
        """Start a node from the state in ``config.storage`` (etcd's ``RestartNode``).

        The membership comes from the storage. Set ``config.applied`` to the last
        index the application's state machine has applied, if it kept one.
        """
        return cls(RawNode(config))

    @property
    def id(self) -> int:
        """This node's raft id."""
        return self._id

    # --- input ------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance the logical clock by one tick (election and heartbeat timeouts).

        Never blocks. Up to 128 ticks wait for a busy loop; beyond that a tick is
        dropped with a warning. Ignored once the node is stopped (so that a ticker
        thread may race with :meth:`stop`).
        """
        with self._mu:
            if self._stopping:
                return
            if self._ticks < MAX_PENDING_TICKS:
                self._ticks += 1
                if self._idle:
                    self._idle = False
                    self._loop_cond.notify()
                return
        self._logger.warning("%x A tick missed to fire. Node blocks too long!", self._id)

    def campaign(self, timeout: float | None = None) -> None:
        """Start an election (with a pre-vote phase if configured)."""
        self._submit((_RECV, Message(type=MessageType.MsgHup), None), _deadline(timeout))

    def propose(self, data: bytes, timeout: float | None = None) -> None:
        """Propose ``data`` for the log, waiting until the raft loop has taken it.

        Blocks while no leader is known. Raises ProposalDroppedError if raft refused
        the proposal (etcd's ``stepWait``), NodeTimeoutError if ``timeout`` expired
        first (not proposed), StoppedError. A proposal that was taken may still be
        lost (e.g. leadership changes before it commits): watch the committed
        entries, and retry if it does not show up.
        """
        msg = _new_prop(data)
        self._call(_PROP, msg, _deadline(timeout))

    def propose_nowait(
        self, data: bytes, callback: Callable[[BaseException | None], object] | None = None
    ) -> None:
        """Queue a proposal and return at once, without waiting for the raft loop.

        ``callback`` (if given) is called on the raft loop's thread with ``None`` once
        raft took the proposal, or with the error :meth:`propose` would raise
        (ProposalDroppedError, StoppedError). Keep it short and non-blocking; an
        exception it raises is logged and ignored. Without a callback a refused
        proposal is dropped silently, like one lost in forwarding. There is no
        back-pressure: the caller bounds its own proposals in flight. Raises
        StoppedError at once on a stopped node.
        """
        item = (_PROP, _new_prop(data), CallbackCall(callback, self._rn.raft.logger))
        with self._mu:
            if self._stopping:
                raise self._stopped_error()
            self._enqueue(item)

    def propose_conf_change(
        self, cc: ConfChange | ConfChangeV2 | None, timeout: float | None = None
    ) -> None:
        """Propose a membership change (V1 or V2; ``None`` leaves a joint config).

        Like :meth:`propose` (etcd returns without raft's verdict here; this waits for
        it, so a dropped change raises ProposalDroppedError). A change that cannot be
        taken because another is still pending is not an error: raft replaces it with
        an empty entry. Apply it with :meth:`apply_conf_change` once committed.
        """
        typ, data = marshal_conf_change(cc)
        msg = Message(type=_MsgProp, entries=[Entry(type=typ, data=data)])
        self._call(_PROP, msg, _deadline(timeout))

    def step(self, m: Message, timeout: float | None = None) -> None:
        """Hand a message received from a peer (or a local storage thread) to raft.

        Returns once the message is queued for the loop (a MsgProp: once the loop has
        taken it, which needs a known leader). Local message types from anywhere but
        the local storage threads are ignored, and so are responses from unknown
        nodes; raft's own errors are not reported (as in etcd). The node owns ``m``
        afterwards.
        """
        t = m.type
        if t == _MsgProp:
            try:
                self._call(_PROP, m, _deadline(timeout))
            except (StoppedError, NodeTimeoutError):
                raise
            except RaftError:
                pass  # raft's verdict on a forwarded proposal is not the sender's
            return
        if is_local_msg(t) and not is_local_msg_target(m.from_):
            return
        self._submit((_RECV, m, None), _deadline(timeout))

    def apply_conf_change(
        self, cc: ConfChange | ConfChangeV2, timeout: float | None = None
    ) -> ConfState:
        """Apply a committed membership change; returns the resulting ConfState.

        Call it for every conf change entry applied from ``committed_entries`` (in
        order, before :meth:`advance`), unless the application rejects the change,
        in which case do not call it. Record the ConfState in snapshots.
        """
        result = self._call(_CONF, cc.as_v2(), _deadline(timeout))
        assert isinstance(result, ConfState)
        return result

    def transfer_leadership(self, lead: int, transferee: int, timeout: float | None = None) -> None:
        """Ask leader ``lead`` to hand leadership to ``transferee`` (any node may ask)."""
        m = Message(type=MessageType.MsgTransferLeader, from_=transferee, to=lead)
        self._submit((_RECV, m, None), _deadline(timeout))

    def forget_leader(self, timeout: float | None = None) -> None:
        """Forget the current leader (followers only), staying in the same term.

        With pre-vote and check-quorum, a follower that forgot its leader grants
        pre-votes at once; see :meth:`raftcore.RawNode.forget_leader`.
        """
        self._submit((_RECV, Message(type=MessageType.MsgForgetLeader), None), _deadline(timeout))

    def read_index(self, rctx: bytes, timeout: float | None = None) -> None:
        """Request a read index for a linearizable read.

        The answer arrives in a later Ready's ``read_states`` as a ReadState carrying
        ``rctx``: once the application has applied up to its index, reads issued
        before this request may be served locally. The request can be lost without
        notice (e.g. no leader); retry after a while.
        """
        m = Message(type=MessageType.MsgReadIndex, entries=[Entry(data=rctx)])
        self._submit((_RECV, m, None), _deadline(timeout))

    def report_unreachable(self, id: int) -> None:
        """Report that the last message sent to ``id`` could not be delivered."""
        self._submit((_RECV, Message(type=MessageType.MsgUnreachable, from_=id), None), None)

    def report_snapshot(self, id: int, status: SnapshotStatus) -> None:
        """Report whether the snapshot sent to ``id`` (a MsgSnap) was delivered.

        The leader stops replicating to a follower that is being sent a snapshot,
        so a failure must be reported or the follower stays stuck.
        """
        m = Message(
            type=MessageType.MsgSnapStatus,
            from_=id,
            reject=status == SnapshotStatus.SnapshotFailure,
        )
        self._submit((_RECV, m, None), None)

    # --- output -----------------------------------------------------------------------

    def ready(self, timeout: float | None = None) -> Ready:
        """The next batch of work for the application (blocks until there is one).

        Handle it as the module docs describe. In sync mode no further Ready comes
        until :meth:`advance`; with async storage writes the next one may come at
        once. Everything in a Ready is read-only. Raises NodeTimeoutError after
        ``timeout`` seconds without work (nothing is lost), StoppedError.
        """
        deadline = _deadline(timeout)
        with self._mu:
            while True:
                if self._stopping:
                    raise self._stopped_error()
                rd = self._offer
                if rd is not None:
                    self._offer = None
                    self._taken = rd
                    if not self._async_writes:
                        self._outstanding = True
                    if self._idle:
                        self._idle = False
                        self._loop_cond.notify()
                    return rd
                if deadline is None:
                    self._ready_cond.wait()
                else:
                    left = deadline - monotonic()
                    if left <= 0:
                        raise NodeTimeoutError("raft: timed out waiting for a Ready")
                    self._ready_cond.wait(left)

    def readies(self) -> Iterator[Ready]:
        """Iterate over Readys until the node is stopped (then the iteration ends).

        If the raft loop died, the iteration raises StoppedError (``__cause__`` is
        the loop's exception) instead of ending quietly.
        """
        while True:
            try:
                rd = self.ready()
            except StoppedError:
                if self._failure is not None:
                    raise
                return
            yield rd

    def advance(self) -> None:
        """Acknowledge the last Ready: its writes are durable, its entries applied,
        its messages sent (sync mode only; raises RaftError with async storage
        writes or if no Ready is waiting for it)."""
        with self._mu:
            if self._stopping:
                raise self._stopped_error()
            if self._async_writes:
                raise RaftError("raft: advance must not be called when using async storage writes")
            if not self._outstanding:
                raise RaftError("raft: advance called without a Ready to acknowledge")
            self._outstanding = False
            self._inbox.append((_ADVANCE, None, None))
            if self._idle:
                self._idle = False
                self._loop_cond.notify()

    def status(self, timeout: float | None = None) -> Status:
        """A snapshot of the node's state (term, leader, configuration, progress)."""
        result = self._call(_STATUS, None, _deadline(timeout))
        assert isinstance(result, Status)
        return result

    # --- lifecycle --------------------------------------------------------------------

    def stop(self, timeout: float | None = None) -> None:
        """Stop the raft loop and wait for its thread to end (idempotent).

        Requests not yet processed fail with StoppedError; so do all later calls
        (except :meth:`tick`, which is ignored). The storage is left as it is, ready
        for :meth:`restart`.
        """
        with self._mu:
            if not self._stopping:
                self._stopping = True
                self._loop_cond.notify()
                self._ready_cond.notify_all()
                self._space_cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called or the raft loop died."""
        return self._stopping

    @property
    def failure(self) -> BaseException | None:
        """The exception that ended the raft loop, if one did (e.g. a RaftPanic)."""
        return self._failure

    def __enter__(self) -> Node:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- plumbing ---------------------------------------------------------------------

    def _stopped_error(self) -> StoppedError:
        err = StoppedError()
        err.__cause__ = self._failure
        return err

    def _submit(self, item: Item, deadline: float | None) -> None:
        with self._mu:
            if self._stopping:
                raise self._stopped_error()
            inbox = self._inbox
            while len(inbox) >= MAX_INBOX:
                if deadline is None:
                    self._space_cond.wait()
                else:
                    left = deadline - monotonic()
                    if left <= 0:
                        raise NodeTimeoutError("raft: timed out waiting for the raft loop")
                    self._space_cond.wait(left)
                if self._stopping:
                    raise self._stopped_error()
            self._enqueue(item)

    def _enqueue(self, item: Item) -> None:
        # Under self._mu: queue the item and wake the loop if it sleeps.
        self._inbox.append(item)
        if self._idle:
            self._idle = False
            self._loop_cond.notify()

    def _call(self, kind: int, arg: object, deadline: float | None) -> object:
        call = _Call(self._mu)
        self._submit((kind, arg, call), deadline)
        return self._wait(call, _remaining(deadline))

    def _wait(self, call: _Call, timeout: float | None) -> object:
        if not call.done.acquire(True, -1 if timeout is None else timeout):
            with self._mu:
                if call.state == _PENDING:
                    call.state = _ABANDONED
                    raise NodeTimeoutError()
            # Claimed meanwhile: the loop answers it right away.
            call.done.acquire()
        if call.error is not None:
            raise call.error
        return call.value

    def _run(self) -> None:
        core = self._core
        rn = self._rn
        mu = self._mu
        async_writes = self._async_writes
        offer: Ready | None = None
        failure: BaseException | None = None
        try:
            while True:
                # Build the Ready to offer outside the lock: only this thread changes
                # the RawNode, so it stays valid until the loop processes input.
                if offer is None and not core.awaiting_advance and rn.has_ready():
                    offer = rn.ready_without_accept()
                with mu:
                    if offer is not None:
                        self._offer = offer
                        self._ready_cond.notify()
                    while not (
                        self._inbox or self._ticks or self._taken is not None or self._stopping
                    ):
                        self._idle = True
                        self._loop_cond.wait()
                    self._idle = False
                    # Withdraw the offer before anything changes the RawNode.
                    self._offer = None
                    taken = self._taken
                    self._taken = None
                    items = self._inbox
                    if items:
                        self._inbox = deque()
                        if len(items) >= MAX_INBOX:
                            self._space_cond.notify_all()
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
        except BaseException as err:
            failure = err
            r = rn.raft
            r.logger.error("raft.node: %x raft loop failed: %s", r.id, err)
        finally:
            self._shutdown(failure)

    def _shutdown(self, failure: BaseException | None) -> None:
        with self._mu:
            self._stopping = True
            if failure is not None:
                self._failure = failure
            rest = self._inbox
            self._inbox = deque()
            self._offer = None
            self._taken = None
            self._ready_cond.notify_all()
            self._space_cond.notify_all()
        core = self._core
        core.pending.extend(rest)
        core.fail_all(self._stopped_error)


def start_node(config: Config, peers: Sequence[Peer]) -> Node:
    """etcd's ``StartNode``: same as :meth:`Node.start`."""
    return Node.start(config, peers)


def restart_node(config: Config) -> Node:
    """etcd's ``RestartNode``: same as :meth:`Node.restart`."""
    return Node.restart(config)
