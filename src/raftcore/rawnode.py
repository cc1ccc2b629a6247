"""The application-facing raft node (etcd's ``rawnode.go``, ``bootstrap.go``, ``node.go`` types).

A :class:`RawNode` wraps the raft state machine. The application drives it: it feeds
in ticks, proposals and messages from peers, and repeatedly collects a :class:`Ready`
(state to persist, entries to apply, messages to send), handles it, and acknowledges
it. Two ways to acknowledge exist, as in etcd:

* synchronous (default): persist and apply what the Ready holds, send its messages,
  then call :meth:`RawNode.advance`;
* ``Config.async_storage_writes``: the Ready's messages include ``MsgStorageAppend``
  (to ``LOCAL_APPEND_THREAD``) and ``MsgStorageApply`` (to ``LOCAL_APPLY_THREAD``)
  requests; the application performs them in order on its storage threads and steps
  the responses they carry back into the node; ``advance`` must not be called.

A RawNode is not thread-safe. Ready objects share their entries and messages with the
node (nothing is copied): treat everything in a Ready as read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from raftcore.config import Config
from raftcore.errors import (
    RaftError,
    RaftPanic,
    StepLocalMsgError,
    StepPeerNotFoundError,
)
from raftcore.raft import Raft, leader_propose, step_leader
from raftcore.raftpb.confchange import marshal_conf_change
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeType,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
)
from raftcore.read_only import ReadState
from raftcore.status import (
    BasicStatus,
    SoftState,
    Status,
    get_basic_status,
    get_status,
)
from raftcore.tracker import Progress
from raftcore.util import (
    LOCAL_APPEND_THREAD,
    LOCAL_APPLY_THREAD,
    is_local_msg,
    is_response_msg,
)

__all__ = [
    "Peer",
    "ProgressType",
    "RawNode",
    "Ready",
    "SnapshotStatus",
    "SoftState",
    "is_empty_hard_state",
    "is_empty_snap",
    "must_sync",
    "need_storage_append_msg",
    "need_storage_append_resp_msg",
    "need_storage_apply_msg",
    "new_storage_append_msg",
    "new_storage_append_resp_msg",
    "new_storage_apply_msg",
    "new_storage_apply_resp_msg",
]

# util's is_local_msg / is_response_msg, as sets: a lookup instead of a call per message.
_LOCAL_MSGS = frozenset(t for t in MessageType if is_local_msg(t))
_RESPONSE_MSGS = frozenset(t for t in MessageType if is_response_msg(t))
_MsgProp = MessageType.MsgProp
_MsgAppResp = MessageType.MsgAppResp
_EntryNormal = EntryType.EntryNormal
_MsgStorageAppend = MessageType.MsgStorageAppend
_MsgStorageAppendResp = MessageType.MsgStorageAppendResp
_MsgStorageApply = MessageType.MsgStorageApply
_MsgStorageApplyResp = MessageType.MsgStorageApplyResp


class SnapshotStatus(IntEnum):
    """Outcome of sending a snapshot, reported through :meth:`RawNode.report_snapshot`."""

    SnapshotFinish = 1
    SnapshotFailure = 2


class ProgressType(IntEnum):
    """What kind of replica a progress passed to :meth:`RawNode.with_progress` belongs to."""

    ProgressTypePeer = 0
    ProgressTypeLearner = 1


@dataclass(slots=True)
class Peer:
    """A member to start a new cluster with (see :meth:`RawNode.bootstrap`)."""

    id: int = 0
    context: bytes = b""


@dataclass(slots=True)
class Ready:
    """Work the application must do: persist, apply, send.

    ``soft_state`` and ``hard_state`` are ``None`` when unchanged since the previous
    Ready, ``snapshot`` when there is none to persist (etcd's nil pointers). In sync
    mode, ``hard_state``, ``entries`` and ``snapshot`` must be durable before
    ``messages`` are sent; in async mode the same work arrives as a
    ``MsgStorageAppend`` in ``messages`` and these fields are informational.
    ``must_sync`` says whether the write must be durable (fsync) or may be lazy.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: list[ReadState] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    must_sync: bool = False


def is_empty_hard_state(st: HardState | None) -> bool:
    """True if ``st`` is absent or all zero (etcd's ``IsEmptyHardState``)."""
    return st is None or (st.term == 0 and st.vote == 0 and st.commit == 0)


def is_empty_snap(sp: Snapshot | None) -> bool:
    """True if ``sp`` is absent or at index 0 (etcd's ``IsEmptySnap``)."""
    return sp is None or sp.metadata.index == 0


def must_sync(st: HardState, prevst: HardState, entsnum: int) -> bool:
    """Whether persisting this state needs a durable (synchronous) write.

    Raft's persistent state is the term, the vote and the log; only the commit index
    changing may be written lazily, since it can be recovered from peers.
    """
    return entsnum != 0 or st.vote != prevst.vote or st.term != prevst.term


# --- local storage messages (async storage writes) ---------------------------------


def need_storage_append_msg(r: Raft, rd: Ready) -> bool:
    """Whether a MsgStorageAppend is needed: something to persist, or messages that
    may only go out once everything handed out before is durable."""
    return (
        bool(rd.entries)
        or not is_empty_hard_state(rd.hard_state)
        or not is_empty_snap(rd.snapshot)
        or bool(r.msgs_after_append)
    )


def need_storage_append_resp_msg(r: Raft, rd: Ready) -> bool:
    """Whether raft must hear back about stabilized entries or an applied snapshot.

    The unstable log is checked as a whole (not ``rd.entries``): entries handed out by
    an earlier Ready may still be waiting for an acknowledgement that raft accepts.
    """
    return r.raft_log.has_next_or_in_progress_unstable_ents() or not is_empty_snap(rd.snapshot)


def new_storage_append_msg(r: Raft, rd: Ready) -> Message:
    """The request to the append thread: persist this Ready's entries, hard state and
    snapshot, then deliver the attached responses."""
    m = Message(type=_MsgStorageAppend, to=LOCAL_APPEND_THREAD, from_=r.id, entries=rd.entries)
    hs = rd.hard_state
    if hs is not None and not (hs.term == 0 and hs.vote == 0 and hs.commit == 0):
        # Without a HardState update these stay zero, so that the hard state read back
        # from the message is empty and the append thread skips writing it.
        m.term = hs.term
        m.vote = hs.vote
        m.commit = hs.commit
    if not is_empty_snap(rd.snapshot):
        m.snapshot = rd.snapshot
    # The self-addressed MsgAppResp in msgs_after_append must be stepped before the
    # MsgStorageAppendResp: it can then still find the new entries in the unstable log.
    responses: list[Message] = r.msgs_after_append
    if need_storage_append_resp_msg(r, rd):
        # A new list: the node's own list must stay as it is until the Ready is accepted.
        responses = [*responses, new_storage_append_resp_msg(r, rd)]
    m.responses = responses
    return m


def new_storage_append_resp_msg(r: Raft, rd: Ready) -> Message:
    """The acknowledgement the append thread sends back once the write is durable.

    It carries the current term and, when the unstable log holds entries, the id of
    its last entry (not of ``rd.entries``' last). Raft truncates the unstable log only
    if that id still matches and the term has not changed meanwhile, which protects
    against a slower, older write landing after a newer one rewrote the same indexes;
    attesting the whole unstable log on every response (also hard-state-only ones
    after a term change) guarantees that some response is eventually accepted.
    """
    u = r.raft_log.unstable
    ents = u.entries
    snap = rd.snapshot
    # (type, to, from_, term, log_term, index, entries, commit, vote, snapshot); with
    # unstable entries the log's last entry is the last of them.
    return Message(
        _MsgStorageAppendResp,
        r.id,
        LOCAL_APPEND_THREAD,
        r.term,
        ents[-1].term if ents else 0,
        u.offset + len(ents) - 1 if ents else 0,
        (),
        0,
        0,
        snap if snap is not None and snap.metadata.index != 0 else None,
    )


def need_storage_apply_msg(rd: Ready) -> bool:
    """Whether a MsgStorageApply is needed: there are committed entries to apply."""
    return bool(rd.committed_entries)


def new_storage_apply_msg(r: Raft, rd: Ready) -> Message:
    """The request to the apply thread: apply these committed entries, then deliver
    the attached response. (Term 0: applying does not happen under a term.)"""
    ents = rd.committed_entries
    return Message(
        type=_MsgStorageApply,
        to=LOCAL_APPLY_THREAD,
        from_=r.id,
        term=0,
        entries=ents,
        responses=[new_storage_apply_resp_msg(r, ents)],
    )


def new_storage_apply_resp_msg(r: Raft, ents: Sequence[Entry]) -> Message:
    """The acknowledgement that ``ents`` (and everything before) have been applied."""
    # (type, to, from_, term, log_term, index, entries)
    return Message(_MsgStorageApplyResp, r.id, LOCAL_APPLY_THREAD, 0, 0, 0, ents)


def _step_ignoring_errors(r: Raft, m: Message) -> None:
    # etcd discards the error Step returns for these internal messages; a panic (a
    # broken invariant) must still escape.
    try:
        r.step(m)
    except RaftPanic:
        raise
    except RaftError:
        pass


class RawNode:
    """A raft node driven by the application through Ready/advance (not thread-safe).

    Construct it from a :class:`~raftcore.Config` (validated here; an invalid config
    raises :class:`~raftcore.errors.ConfigError`). The state is restored from
    ``config.storage``; a brand-new cluster is either prepared in the storage (a
    snapshot with the initial configuration) or created with :meth:`bootstrap`.
    """

    __slots__ = ("async_storage_writes", "prev_hard_st", "prev_soft_st", "raft", "steps_on_advance")

    def __init__(self, config: Config) -> None:
        r = Raft(config)
        self.raft = r
        self.async_storage_writes: bool = config.async_storage_writes
        self.prev_soft_st = SoftState(r.lead, r.state)
        self.prev_hard_st = HardState(r.term, r.vote, r.raft_log.committed)
        # Self-addressed messages to step on advance (sync mode): the node's own
        # responses that had to wait until the Ready's writes were durable.
        self.steps_on_advance: list[Message] = []

    # --- input -------------------------------------------------------------------

    def tick(self) -> None:
        """Advance the logical clock by one tick (elections, heartbeats)."""
        self.raft.tick()

    def tick_quiesced(self) -> None:
        """Advance the election clock only, skipping all other tick processing.

        For groups known to be idle and in sync; misuse subverts raft. Deprecated in
        etcd, kept for parity.
        """
        self.raft.election_elapsed += 1

    def campaign(self) -> None:
        """Start an election (with a pre-vote phase if configured)."""
        self.raft.step(Message(type=MessageType.MsgHup))

    def propose(self, data: bytes) -> None:
        """Propose ``data`` for the log; raises ProposalDroppedError if refused.

        A proposal that is not refused may still be lost; the application retries.
        """
        r = self.raft
        # Positional forms (term, index, type, data) and (type, to, from_, term,
        # log_term, index, entries): the keyword forms cost markedly more.
        ents = [Entry(0, 0, _EntryNormal, data)]
        if r.step_fn is step_leader:
            # All that stepping the MsgProp comes to on a leader, minus the message.
            leader_propose(r, ents, None)
        else:
            r.step(Message(_MsgProp, 0, r.id, 0, 0, 0, ents))

    def propose_conf_change(self, cc: ConfChange | ConfChangeV2 | None) -> None:
        """Propose a membership change (V1 or V2; ``None`` = leave a joint config)."""
        typ, data = marshal_conf_change(cc)
        self.raft.step(Message(type=MessageType.MsgProp, entries=[Entry(type=typ, data=data)]))

    def apply_conf_change(self, cc: ConfChange | ConfChangeV2) -> ConfState:
        """Apply a committed membership change; returns the resulting ConfState.

        Must be called for every conf change entry the application applies (and not
        for ones it decides to reject).
        """
        return self.raft.apply_conf_change(cc.as_v2())

    def step(self, m: Message) -> None:
        """Step a message received from a peer (or from a local storage thread).

        Local message types are refused unless they come from a local storage thread
        (StepLocalMsgError); responses from nodes without progress, e.g. removed ones,
        are refused with StepPeerNotFoundError.
        """
        frm = m.from_
        r = self.raft
        if frm != LOCAL_APPEND_THREAD and frm != LOCAL_APPLY_THREAD:
            t = m.type
            if t in _LOCAL_MSGS:
                raise StepLocalMsgError()
            if t in _RESPONSE_MSGS and frm not in r.trk.progress:
                raise StepPeerNotFoundError()
        r.step(m)

    # --- Ready -------------------------------------------------------------------

    def ready(self) -> Ready:
        """The outstanding work; the caller must handle it (and, in sync mode, call
        :meth:`advance` before the next Ready)."""
        rd = self.ready_without_accept()
        self.accept_ready(rd)
        return rd

    def ready_without_accept(self) -> Ready:
        """The outstanding work, without committing to handle it (no state changes).

        The Ready may share lists with the node until it is accepted.
        """
        r = self.raft
        log = r.raft_log
        async_writes = self.async_storage_writes

        prev_ss = self.prev_soft_st
        soft_st: SoftState | None = None
        if r.lead != prev_ss.lead or r.state != prev_ss.raft_state:
            soft_st = SoftState(r.lead, r.state)

        prev_hs = self.prev_hard_st
        term = r.term
        vote = r.vote
        commit = log.committed
        hard_st: HardState | None = None
        if term != prev_hs.term or vote != prev_hs.vote or commit != prev_hs.commit:
            hard_st = HardState(term, vote, commit)

        # log.next_unstable_ents() and log.next_unstable_snapshot(), inlined.
        u = log.unstable
        u_ents = u.entries
        in_progress = u.offset_in_progress - u.offset
        entries = u_ents[in_progress:] if len(u_ents) != in_progress else []
        rd = Ready(
            soft_st,
            hard_st,
            r.read_states if r.read_states else [],
            entries,
            u.next_snapshot() if u.snapshot is not None else None,
            log.next_committed_ents(not async_writes),
            r.msgs,
            bool(entries) or vote != prev_hs.vote or term != prev_hs.term,
        )

        if async_writes:
            # The storage work goes to the local threads as messages, after the
            # network messages.
            extra: list[Message] = []
            if need_storage_append_msg(r, rd):
                extra.append(new_storage_append_msg(r, rd))
            if rd.committed_entries:
                extra.append(new_storage_apply_msg(r, rd))
            if extra:
                rd.messages = rd.messages + extra if rd.messages else extra
        else:
            # The messages that had to wait for the writes can go out with this Ready
            # (its contract already says: send after persisting); the node's own
            # responses are stepped on advance instead.
            after = r.msgs_after_append
            if after:
                rid = r.id
                out = [m for m in after if m.to != rid]
                if out:
                    rd.messages = rd.messages + out if rd.messages else out
        return rd

    def accept_ready(self, rd: Ready) -> None:
        """Commit to handling ``rd``: hand its state over and prepare :meth:`advance`.

        Nothing may change the node between building ``rd`` and this call.
        """
        r = self.raft
        if rd.soft_state is not None:
            self.prev_soft_st = rd.soft_state
        hs = rd.hard_state
        if hs is not None and (hs.term != 0 or hs.vote != 0 or hs.commit != 0):
            self.prev_hard_st = hs
        if rd.read_states:
            r.read_states = []
        if not self.async_storage_writes:
            steps = self.steps_on_advance
            if steps:
                r.logger.panic("two accepted Ready structs without call to Advance")
            rid = r.id
            for m in r.msgs_after_append:
                if m.to == rid:
                    steps.append(m)
            if r.raft_log.unstable.entries or not is_empty_snap(rd.snapshot):
                # (need_storage_append_resp_msg, inlined)
                steps.append(new_storage_append_resp_msg(r, rd))
            if rd.committed_entries:
                steps.append(new_storage_apply_resp_msg(r, rd.committed_entries))
        # Fresh lists: the Ready keeps the old ones.
        r.msgs = []
        r.msgs_after_append = []
        log = r.raft_log
        # log.accept_unstable(), inlined.
        u = log.unstable
        if u.entries:
            u.offset_in_progress = u.entries[-1].index + 1
        if u.snapshot is not None:
            u.snapshot_in_progress = True
        ents = rd.committed_entries
        if ents:
            # accept_applying(ents[-1].index, ents_size(ents), ...), measuring the
            # entries only if needed; their MsgStorageApplyResp brings the list back.
            log._accept_applying_ents(ents[-1].index, ents, not self.async_storage_writes)

    def has_ready(self) -> bool:
        """Whether :meth:`ready` would return any work (cheap; builds nothing)."""
        r = self.raft
        prev_ss = self.prev_soft_st
        if r.lead != prev_ss.lead or r.state != prev_ss.raft_state:
            return True
        term = r.term
        vote = r.vote
        log = r.raft_log
        commit = log.committed
        prev_hs = self.prev_hard_st
        if (term != 0 or vote != 0 or commit != 0) and (
            term != prev_hs.term or vote != prev_hs.vote or commit != prev_hs.commit
        ):
            return True
        if log.has_next_unstable_snapshot():
            return True
        if r.msgs or r.msgs_after_append:
            return True
        if log.has_next_unstable_ents() or log.has_next_committed_ents(
            not self.async_storage_writes
        ):
            return True
        return bool(r.read_states)

    def advance(self, rd: Ready | None = None) -> None:
        """Acknowledge the last Ready (sync mode only): its writes are durable and its
        committed entries applied. ``rd`` is accepted for etcd compatibility and unused.

        Steps the node's own deferred responses (self-votes, own append
        acknowledgements, storage acknowledgements), which may e.g. win an election.
        """
        r = self.raft
        if self.async_storage_writes:
            r.logger.panic("Advance must not be called when using AsyncStorageWrites")
        steps = self.steps_on_advance
        if not steps:
            return
        # Detach first, so that a step that panics cannot leave them to be re-stepped.
        self.steps_on_advance = []
        rid = r.id
        n = len(steps)
        i = 0
        while i < n:
            m = steps[i]
            i += 1
            if m.type == _MsgAppResp and m.from_ == rid:
                # A run of acks of our own appends (one per proposal): when provably
                # equivalent, step only its last (see Raft._own_acks_coalesce).
                j = i
                while j < n and steps[j].type == _MsgAppResp and steps[j].from_ == rid:
                    j += 1
                if j > i and r._own_acks_coalesce(steps[i - 1 : j]):
                    m = steps[j - 1]
                    i = j
            # _step_ignoring_errors(r, m), inlined.
            try:
                r.step(m)
            except RaftPanic:
                raise
            except RaftError:
                pass

    # --- introspection -----------------------------------------------------------

    def status(self) -> Status:
        """A copy of the node's state, with configuration and (on a leader) progress."""
        return get_status(self.raft)

    def basic_status(self) -> BasicStatus:
        """The node's state without configuration and progress (cheaper)."""
        return get_basic_status(self.raft)

    def with_progress(self, visitor: Callable[[int, ProgressType, Progress], None]) -> None:
        """Call ``visitor(id, type, progress)`` for every tracked node, ids ascending.

        Each progress is a shallow copy that shares the in-flight window with the node
        (etcd hands out none); do not modify it.
        """
        peer = ProgressType.ProgressTypePeer
        learner = ProgressType.ProgressTypeLearner
        prs = self.raft.trk.progress
        for i in sorted(prs):
            pr = prs[i]
            visitor(i, learner if pr.is_learner else peer, _shallow_progress(pr))

    # --- reports and requests ------------------------------------------------------

    def report_unreachable(self, id: int) -> None:
        """Report that the last message to ``id`` could not be sent."""
        _step_ignoring_errors(self.raft, Message(type=MessageType.MsgUnreachable, from_=id))

    def report_snapshot(self, id: int, status: SnapshotStatus) -> None:
        """Report whether the snapshot sent to ``id`` arrived."""
        rej = status == SnapshotStatus.SnapshotFailure
        _step_ignoring_errors(
            self.raft, Message(type=MessageType.MsgSnapStatus, from_=id, reject=rej)
        )

    def transfer_leader(self, transferee: int) -> None:
        """Ask the leader to hand leadership to ``transferee``."""
        _step_ignoring_errors(
            self.raft, Message(type=MessageType.MsgTransferLeader, from_=transferee)
        )

    def forget_leader(self) -> None:
        """Forget the current leader (followers only), keeping the term.

        With pre-vote and check-quorum this lets the follower grant pre-votes at once,
        e.g. when the application knows the leader is gone.
        """
        self.raft.step(Message(type=MessageType.MsgForgetLeader))

    def read_index(self, rctx: bytes) -> None:
        """Request a read index; the answer arrives as a ReadState carrying ``rctx``."""
        _step_ignoring_errors(
            self.raft, Message(type=MessageType.MsgReadIndex, entries=[Entry(data=rctx)])
        )

    # --- bootstrap -----------------------------------------------------------------

    def bootstrap(self, peers: Sequence[Peer]) -> None:
        """Initialize an empty node as a member of a new cluster of ``peers``.

        Writes one ConfChangeAddNode entry per peer (term 1, indexes 1..n) to the
        unstable log, marks them committed and applies them to the configuration, so
        that the node can campaign at once; the entries come out in the first Ready
        to be persisted and applied (applying them again is harmless). Raises
        RaftError if ``peers`` is empty or the storage is not empty.

        Preferred instead: prepare the storage with a snapshot holding the initial
        ConfState at an index > 1.
        """
        if not peers:
            raise RaftError("must provide at least one peer to Bootstrap")
        r = self.raft
        if r.raft_log.storage.last_index() != 0:
            raise RaftError("can't bootstrap a nonempty Storage")
        # Nothing is persisted yet: start from an empty HardState so that the first
        # Ready carries the (non-empty) one to write.
        self.prev_hard_st = HardState()
        r.become_follower(1, 0)
        add = ConfChangeType.ConfChangeAddNode
        ents: list[Entry] = []
        for i, peer in enumerate(peers):
            _, data = marshal_conf_change(
                ConfChange(type=add, node_id=peer.id, context=peer.context)
            )
            ents.append(Entry(term=1, index=i + 1, type=EntryType.EntryConfChange, data=data))
        r.raft_log.append(ents)
        # The entries stay unstable although committed; applied stays 0 so that the
        # application sees them all in committed_entries. The nodes are added after
        # the append so that their progress is initialized against the new last index
        # (raft must never try to append these already-committed entries).
        r.raft_log.committed = len(ents)
        for peer in peers:
            r.apply_conf_change(ConfChange(type=add, node_id=peer.id).as_v2())


def _shallow_progress(pr: Progress) -> Progress:
    return Progress(
        pr.match,
        pr.next,
        pr.sent_commit,
        pr.state,
        pr.pending_snapshot,
        pr.recent_active,
        pr.msg_app_flow_paused,
        pr.inflights,
        pr.is_learner,
    )
