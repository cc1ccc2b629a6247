"""The Raft state machine (etcd's ``raft.go``, minus ``Config``).

:class:`Raft` holds one node's protocol state and reacts to :meth:`Raft.step` (a
message) and :meth:`Raft.tick` (a unit of logical time). It never does I/O: everything
it wants sent is queued on ``msgs`` (may go out at once) or ``msgs_after_append`` (only
after the unstable log and hard state it depends on are durable); :mod:`raftcore.rawnode`
hands both to the application through ``Ready``.

The behaviour is etcd's to the letter: which messages go out, in which order, with which
fields, and every log line (text and level), because the conformance scripts compare
them byte for byte. The structure follows etcd as well, so that the two can be read side
by side: the role-specific part of message handling is a plain function held in
``step_fn`` (``step_leader``/``step_candidate``/``step_follower``), and ``tick`` holds
the role's tick method, both swapped by the ``become_*`` methods.

Errors that etcd returns from ``Step`` are raised (``ProposalDroppedError``); where etcd
panics, the logger's ``panic`` raises :class:`raftcore.errors.RaftPanic`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Final

from raftcore.confchange import Changer
from raftcore.confchange import restore as restore_conf
from raftcore.config import Config, ReadOnlyOption
from raftcore.describe import describe_conf_change
from raftcore.errors import (
    CompactedError,
    ConfChangeError,
    DecodeError,
    ProposalDroppedError,
    RaftError,
    RaftPanic,
    SnapshotTemporarilyUnavailableError,
    UnavailableError,
)
from raftcore.log import RaftLog
from raftcore.logger import Logger, debug_enabled, default_logger
from raftcore.quorum import VoteResult
from raftcore.raftpb import codec
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
)
from raftcore.read_only import ReadOnly, ReadState
from raftcore.tracker import Inflights, Progress, ProgressMap, ProgressTracker, TrackerConfig
from raftcore.tracker import StateType as ProgressStateType
from raftcore.types import EntryID
from raftcore.util import (
    NONE,
    assert_conf_states_equivalent,
    payloads_size,
    vote_resp_msg_type,
)

if TYPE_CHECKING:
    from raftcore.status import SoftState

__all__ = [
    "CAMPAIGN_ELECTION",
    "CAMPAIGN_PRE_ELECTION",
    "CAMPAIGN_TRANSFER",
    "CampaignType",
    "Raft",
    "StateType",
    "StepFunc",
    "leader_propose",
    "step_candidate",
    "step_follower",
    "step_leader",
]


class StateType(IntEnum):
    """The role of a node; printed with etcd's names (``StateFollower`` ...)."""

    StateFollower = 0
    StateCandidate = 1
    StateLeader = 2
    StatePreCandidate = 3

    def __str__(self) -> str:
        return self.name

    __format__ = object.__format__  # type: ignore[assignment]


# Why an election is being run. etcd uses the names as strings; the transfer one also
# travels in MsgVote.context, where it lets a vote through a leader's lease, so the
# constants are the bytes put on the wire.
CampaignType = bytes
CAMPAIGN_PRE_ELECTION: Final[CampaignType] = b"CampaignPreElection"
CAMPAIGN_ELECTION: Final[CampaignType] = b"CampaignElection"
CAMPAIGN_TRANSFER: Final[CampaignType] = b"CampaignTransfer"

StepFunc = Callable[["Raft", Message], None]

# Module-level aliases: enum member lookups are attribute lookups on the class, and
# these names are consulted for every message.
_MsgHup: Final = MessageType.MsgHup
_MsgBeat: Final = MessageType.MsgBeat
_MsgProp: Final = MessageType.MsgProp
_MsgApp: Final = MessageType.MsgApp
_MsgAppResp: Final = MessageType.MsgAppResp
_MsgVote: Final = MessageType.MsgVote
_MsgVoteResp: Final = MessageType.MsgVoteResp
_MsgSnap: Final = MessageType.MsgSnap
_MsgHeartbeat: Final = MessageType.MsgHeartbeat
_MsgHeartbeatResp: Final = MessageType.MsgHeartbeatResp
_MsgUnreachable: Final = MessageType.MsgUnreachable
_MsgSnapStatus: Final = MessageType.MsgSnapStatus
_MsgCheckQuorum: Final = MessageType.MsgCheckQuorum
_MsgTransferLeader: Final = MessageType.MsgTransferLeader
_MsgTimeoutNow: Final = MessageType.MsgTimeoutNow
_MsgReadIndex: Final = MessageType.MsgReadIndex
_MsgReadIndexResp: Final = MessageType.MsgReadIndexResp
_MsgPreVote: Final = MessageType.MsgPreVote
_MsgPreVoteResp: Final = MessageType.MsgPreVoteResp
_MsgStorageAppendResp: Final = MessageType.MsgStorageAppendResp
_MsgStorageApplyResp: Final = MessageType.MsgStorageApplyResp
_MsgForgetLeader: Final = MessageType.MsgForgetLeader

_EntryNormal: Final = EntryType.EntryNormal
_EntryConfChange: Final = EntryType.EntryConfChange
_EntryConfChangeV2: Final = EntryType.EntryConfChangeV2

_StateFollower: Final = StateType.StateFollower
_StateCandidate: Final = StateType.StateCandidate
_StateLeader: Final = StateType.StateLeader
_StatePreCandidate: Final = StateType.StatePreCandidate

_StateProbe: Final = ProgressStateType.StateProbe
_StateReplicate: Final = ProgressStateType.StateReplicate
_StateSnapshot: Final = ProgressStateType.StateSnapshot

_ReadOnlySafe: Final = ReadOnlyOption.ReadOnlySafe
_ReadOnlyLeaseBased: Final = ReadOnlyOption.ReadOnlyLeaseBased

# Every election message must carry a term; every other message gets the node's.
_CAMPAIGN_MSGS: Final = frozenset((_MsgVote, _MsgVoteResp, _MsgPreVote, _MsgPreVoteResp))
# Responses that vouch for local state and so may only leave once it is durable.
_AFTER_APPEND_MSGS: Final = frozenset((_MsgAppResp, _MsgVoteResp, _MsgPreVoteResp))
# Message types Raft.step handles itself, whatever the role; the rest go to step_fn.
_STEP_COMMON: Final = frozenset(
    (_MsgHup, _MsgStorageAppendResp, _MsgStorageApplyResp, _MsgVote, _MsgPreVote)
)

_randrange = random.randrange


class Raft:
    """One node's Raft state machine (etcd's unexported ``raft`` struct)."""

    __slots__ = (
        "check_quorum",
        "disable_conf_change_validation",
        "disable_proposal_forwarding",
        "election_elapsed",
        "election_timeout",
        "heartbeat_elapsed",
        "heartbeat_timeout",
        "id",
        "is_learner",
        "lead",
        "lead_transferee",
        "logger",
        "max_msg_size",
        "max_uncommitted_size",
        "msgs",
        "msgs_after_append",
        "pending_conf_index",
        "pending_read_index_messages",
        "pre_vote",
        "raft_log",
        "randomized_election_timeout",
        "read_only",
        "read_states",
        "state",
        "step_down_on_removal",
        "step_fn",
        "term",
        "tick",
        "trk",
        "uncommitted_size",
        "vote",
    )

    id: int
    term: int
    vote: int
    read_states: list[ReadState]
    raft_log: RaftLog
    max_msg_size: int
    max_uncommitted_size: int
    trk: ProgressTracker
    state: StateType
    is_learner: bool
    # Messages to other nodes that may be sent right away.
    msgs: list[Message]
    # Responses (MsgAppResp, Msg(Pre)VoteResp, possibly to ourselves) that must wait
    # until the unstable state they acknowledge has been persisted.
    msgs_after_append: list[Message]
    lead: int
    lead_transferee: int
    # Index up to which a conf change may still be unapplied; a new one is refused
    # until applied reaches it, so at most one is ever in flight.
    pending_conf_index: int
    disable_conf_change_validation: bool
    # Payload bytes of the leader's uncommitted tail (an underestimate, never over).
    uncommitted_size: int
    read_only: ReadOnly
    election_elapsed: int
    heartbeat_elapsed: int
    check_quorum: bool
    pre_vote: bool
    heartbeat_timeout: int
    election_timeout: int
    # Redrawn from [election_timeout, 2*election_timeout) on every reset so that
    # followers rarely time out together.
    randomized_election_timeout: int
    disable_proposal_forwarding: bool
    step_down_on_removal: bool
    tick: Callable[[], None]
    step_fn: StepFunc
    logger: Logger
    # MsgReadIndex requests that reached a new leader before it committed an entry of
    # its own term; answered as soon as it does.
    pending_read_index_messages: list[Message]

    def __init__(self, c: Config) -> None:
        c.validate()
        storage = c.storage
        assert storage is not None  # validate() refuses a config without storage
        logger = c.logger if c.logger is not None else default_logger()
        raft_log = RaftLog(storage, logger, c.max_committed_size_per_ready)
        hs, cs = storage.initial_state()

        self.id = c.id
        self.term = 0
        self.vote = NONE
        self.read_states = []
        self.raft_log = raft_log
        self.max_msg_size = c.max_size_per_msg
        self.max_uncommitted_size = c.max_uncommitted_entries_size
        self.trk = ProgressTracker(c.max_inflight_msgs, c.max_inflight_bytes)
        self.state = _StateFollower
        self.is_learner = False
        self.msgs = []
        self.msgs_after_append = []
        self.lead = NONE
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.disable_conf_change_validation = c.disable_conf_change_validation
        self.uncommitted_size = 0
        self.read_only = ReadOnly(c.read_only_option)
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.check_quorum = c.check_quorum
        self.pre_vote = c.pre_vote
        self.heartbeat_timeout = c.heartbeat_tick
        self.election_timeout = c.election_tick
        self.randomized_election_timeout = 0
        self.disable_proposal_forwarding = c.disable_proposal_forwarding
        self.step_down_on_removal = c.step_down_on_removal
        self.tick = self.tick_election
        self.step_fn = step_follower
        self.logger = logger
        self.pending_read_index_messages = []

        last_id = raft_log.last_entry_id()
        try:
            cfg, prs = restore_conf(Changer(self.trk, last_id.index), cs)
        except ConfChangeError as err:
            logger.panic("%s", err)
        assert_conf_states_equivalent(logger, cs, self.switch_to_config(cfg, prs))

        if not hs.is_empty():
            self.load_state(hs)
        if c.applied > 0:
            raft_log.applied_to(c.applied, 0)
        self.become_follower(self.term, NONE)

        logger.info(
            "newRaft %x [peers: [%s], term: %d, commit: %d, applied: %d, lastindex: %d, lastterm: %d]",
            self.id,
            ",".join(format(n, "x") for n in self.trk.voter_nodes()),
            self.term,
            raft_log.committed,
            raft_log.applied,
            last_id.index,
            last_id.term,
        )

    # ------------------------------------------------------------------ state views

    def has_leader(self) -> bool:
        return self.lead != NONE

    def soft_state(self) -> SoftState:
        # status imports this module (for StateType), hence the late import.
        from raftcore.status import SoftState

        return SoftState(self.lead, self.state)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.raft_log.committed)

    # ------------------------------------------------------------------ sending

    def send(self, m: Message) -> None:
        """Queue ``m`` for sending, filling in ``from_`` and (mostly) ``term``.

        Election messages must arrive with their term set by the caller (it is not
        always the node's term); proposals and read-index requests are forwarded
        without a term, as if local; everything else is stamped with the current term.
        """
        if m.from_ == NONE:
            m.from_ = self.id
        t = m.type
        if t in _CAMPAIGN_MSGS:
            if m.term == 0:
                self.logger.panic("term should be set when sending %s", t.name)
        else:
            if m.term != 0:
                self.logger.panic("term should not be set when sending %s (was %d)", t.name, m.term)
            if t != _MsgProp and t != _MsgReadIndex:
                m.term = self.term
        if t in _AFTER_APPEND_MSGS:
            # Acks of log appends and of votes must not leave before what they
            # acknowledge is on disk, even rejections (conservatively).
            self.msgs_after_append.append(m)
        else:
            if m.to == self.id:
                self.logger.panic("message should not be self-addressed when sending %s", t.name)
            self.msgs.append(m)

    def send_append(self, to: int) -> None:
        """Send ``to`` a MsgApp with whatever it lacks (possibly none) and our commit."""
        self.maybe_send_append(to, True)

    def maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send ``to`` a MsgApp unless its flow is paused (or it would be empty and
        ``send_if_empty`` is false); fall back to a snapshot when the log it needs has
        been compacted. True if a message went out."""
        pr = self.trk.progress[to]
        # pr.is_paused(), inlined for the two usual states.
        state = pr.state
        if state in (_StateReplicate, _StateProbe):
            if pr.msg_app_flow_paused:
                return False
        elif pr.is_paused():
            return False

        raft_log = self.raft_log
        prev_index = pr.next - 1
        if (
            not send_if_empty
            and prev_index == raft_log.last_index()
            and raft_log._last_term_known()
        ):
            # Caught up: there is nothing to send and the term lookup below is sure
            # to succeed, so the answer is no, found cheaply (the leader asks this
            # after every ack).
            return False
        # None exactly where term() raises CompactedError/UnavailableError, without
        # the cost of raising.
        prev_term = raft_log._term_or_none(prev_index)
        if prev_term is None:
            # The entries the follower needs next are gone from our log.
            return self.maybe_send_snapshot(to, pr)

        ents: Sequence[Entry] = ()
        failed = False
        # A full window in StateReplicate still sends an empty MsgApp so that lost
        # appends cannot stall the follower forever: its ack or rejection frees it.
        if pr.state != _StateReplicate or not pr.inflights.full():
            try:
                ents = raft_log.entries(pr.next, self.max_msg_size)
            except CompactedError:
                failed = True
        if not ents and not send_if_empty:
            return False
        if failed:
            return self.maybe_send_snapshot(to, pr)

        committed = raft_log.committed
        self_id = self.id
        if to == self_id:
            self.send(Message(type=_MsgApp, to=to))  # refused: panics
        # What send() makes of this message, queued directly. Positional (type, to,
        # from_, term, log_term, index, entries, commit): the keyword form costs
        # markedly more, and this is the busiest constructor.
        self.msgs.append(
            Message(_MsgApp, to, self_id, self.term, prev_term, prev_index, ents, committed)
        )
        pr.sent_entries(len(ents), payloads_size(ents) if ents else 0)
        pr.sent_commit = committed
        return True

    def maybe_send_snapshot(self, to: int, pr: Progress) -> bool:
        """Send ``to`` the current snapshot; True iff it was sent."""
        if not pr.recent_active:
            self.logger.debug("ignore sending snapshot to %x since it is not recently active", to)
            return False

        raft_log = self.raft_log
        try:
            snapshot = raft_log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            self.logger.debug(
                "%x failed to send snapshot to %x because snapshot is temporarily unavailable",
                self.id,
                to,
            )
            return False
        if snapshot.is_empty():
            self.logger.panic("need non-empty snapshot")
        sindex = snapshot.metadata.index
        sterm = snapshot.metadata.term
        if debug_enabled(self.logger):
            self.logger.debug(
                "%x [firstindex: %d, commit: %d] sent snapshot[index: %d, term: %d] to %x [%s]",
                self.id,
                raft_log.first_index(),
                raft_log.committed,
                sindex,
                sterm,
                to,
                pr,
            )
        pr.become_snapshot(sindex)
        self.logger.debug("%x paused sending replication messages to %x [%s]", self.id, to, pr)

        self.send(Message(type=_MsgSnap, to=to, snapshot=snapshot))
        return True

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        pr = self.trk.progress[to]
        # Never tell a follower to commit past what it is known to hold.
        commit = min(pr.match, self.raft_log.committed)
        self.send(Message(type=_MsgHeartbeat, to=to, commit=commit, context=ctx))
        pr.sent_commit = commit

    def bcast_append(self) -> None:
        """send_append to every other tracked node, in ascending id order."""
        self_id = self.id
        prs = self.trk.progress
        for id_ in sorted(prs):
            if id_ != self_id:
                pr = prs[id_]
                if pr.msg_app_flow_paused and pr.state in (_StateReplicate, _StateProbe):
                    # maybe_send_append would return at once (a full window, or a
                    # probe in flight); the usual case while proposals stream in.
                    continue
                self.maybe_send_append(id_, True)

    def bcast_heartbeat(self) -> None:
        self.bcast_heartbeat_with_ctx(self.read_only.heartbeat_ctx())

    def bcast_heartbeat_with_ctx(self, ctx: bytes) -> None:
        self_id = self.id
        for id_ in sorted(self.trk.progress):
            if id_ != self_id:
                self.send_heartbeat(id_, ctx)

    # ------------------------------------------------------------------ applying

    def applied_to(self, index: int, size: int) -> None:
        """Record that entries up to ``index`` (``size`` bytes) have been applied.

        A leader in an auto-leave joint configuration proposes leaving it as soon as
        the entry that entered it is applied; it retries on every later call until the
        proposal is accepted (it is refused during a leadership transfer).
        """
        raft_log = self.raft_log
        new_applied = max(index, raft_log.applied)
        raft_log.applied_to(new_applied, size)
        self._maybe_auto_leave(new_applied)

    def _maybe_auto_leave(self, new_applied: int) -> None:
        # The second half of applied_to.
        if (
            self.trk.config.auto_leave
            and new_applied >= self.pending_conf_index
            and self.state == _StateLeader
        ):
            # An empty ConfChangeV2 (no data at all: it has zero payload size, so the
            # uncommitted-size limit can never refuse it).
            m = Message(type=_MsgProp, entries=[Entry(type=_EntryConfChangeV2)])
            try:
                self.step(m)
            except RaftPanic:
                raise
            except RaftError as err:
                self.logger.debug(
                    "not initiating automatic transition out of joint configuration %s: %s",
                    self.trk.config,
                    err,
                )
            else:
                self.logger.info(
                    "initiating automatic transition out of joint configuration %s",
                    self.trk.config,
                )

    def applied_snap(self, snap: Snapshot) -> None:
        index = snap.metadata.index
        self.raft_log.stable_snap_to(index)
        self.applied_to(index, 0)

    def maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum has acked, if that is an entry of
        this term (Raft only commits earlier terms' entries indirectly). Leader only."""
        return self.raft_log._maybe_commit(self.term, self.trk.committed())

    def _own_acks_coalesce(self, msgs: Sequence[Message]) -> bool:
        """Whether stepping only the last of ``msgs``, a run of the leader's
        acknowledgements of its own appends (MsgAppResp from and to itself, as
        RawNode.advance steps them), has exactly the effect of stepping them all in
        order. Changes nothing.

        A leader taking proposals one by one acknowledges each to itself; stepping
        them one by one dominates the cost of a Ready round. Each such ack, in
        StateReplicate and with increasing indexes, marks us active, raises our match
        (and next) to its index, frees in-flight appends up to it (a no-op for
        ourselves), and tries to commit; a commit is the only effect that depends on
        the acks in between, and it cannot happen anywhere in the run if it would
        not happen at its end: the quorum index grows with our match. So the run
        coalesces when the quorum index with our match at the last index does not
        exceed the commit index (the steady state: followers ack the same entries
        only later). Otherwise, or if anything is unusual, the caller steps them all.
        """
        if self.state != _StateLeader or len(msgs) < 2:
            return False
        self_id = self.id
        pr = self.trk.progress.get(self_id)
        if pr is None or pr.state != _StateReplicate or self.lead_transferee == self_id:
            return False
        term = self.term
        last = pr.match
        for m in msgs:
            if (
                m.type != _MsgAppResp
                or m.from_ != self_id
                or m.term != term
                or m.reject
                or m.index <= last
            ):
                return False
            last = m.index
        match = pr.match
        pr.match = last
        try:
            c = self.trk.committed()
        finally:
            pr.match = match
        return c <= self.raft_log.committed

    # ------------------------------------------------------------------ role changes

    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE

        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()

        self.abort_leader_transfer()

        trk = self.trk
        trk.reset_votes()
        last_index = self.raft_log.last_index()
        max_inflight = trk.max_inflight
        max_bytes = trk.max_inflight_bytes
        self_id = self.id
        # Reset in place (etcd overwrites *pr), keeping only the learner flag.
        for id_, pr in trk.progress.items():
            pr.match = last_index if id_ == self_id else 0
            pr.next = last_index + 1
            pr.sent_commit = 0
            pr.state = _StateProbe
            pr.pending_snapshot = 0
            pr.recent_active = False
            pr.msg_app_flow_paused = False
            pr.inflights = Inflights(max_inflight, max_bytes)

        self.pending_conf_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly(self.read_only.option)

    def append_entry(self, es: Sequence[Entry]) -> bool:
        """Append ``es`` to the leader's log at the current term; False if dropped for
        exceeding the uncommitted-size limit."""
        raft_log = self.raft_log
        u = raft_log.unstable
        u_ents = u.entries
        # raft_log.last_index(), with the usual unstable tail answered here.
        li = u.offset + len(u_ents) - 1 if u_ents else raft_log.last_index()
        term = self.term
        # Fresh entries: the proposer's objects may be shared, ours must not change.
        if len(es) == 1:
            # One proposal at a time is the usual case; skip the comprehension.
            e = es[0]
            cloned = [Entry(term, li + 1, e.type, e.data)]
            size = len(e.data)
        else:
            cloned = [Entry(term, li + 1 + i, e.type, e.data) for i, e in enumerate(es)]
            size = payloads_size(cloned)
        # increase_uncommitted_size(cloned), inlined.
        usize = self.uncommitted_size
        if usize > 0 and size > 0 and usize + size > self.max_uncommitted_size:
            self.logger.warning(
                "%x appending new entries to log would exceed uncommitted entry size limit; dropping proposal",
                self.id,
            )
            return False
        self.uncommitted_size = usize + size

        if li + 1 == u.offset + len(u_ents) and li >= raft_log.committed:
            # What raft_log.append(cloned) does when the entries directly follow the
            # unstable tail (as a leader's always do), without its three calls.
            u_ents.extend(cloned)
            li += len(cloned)
        else:
            li = raft_log.append(cloned)
        # The leader acks its own entries through the same path as followers, once
        # they are durable (it sends itself no MsgApp). This is what send() would
        # make of Message(type=MsgAppResp, to=self.id, index=li), queued directly:
        # (type, to, from_, term, log_term, index).
        self_id = self.id
        self.msgs_after_append.append(Message(_MsgAppResp, self_id, self_id, term, 0, li))
        return True

    def tick_election(self) -> None:
        """Followers' and candidates' tick: campaign once the election timeout passes."""
        self.election_elapsed += 1

        if self.election_elapsed >= self.randomized_election_timeout and self.promotable():
            self.election_elapsed = 0
            try:
                self.step(Message(type=_MsgHup, from_=self.id))
            except RaftPanic:
                raise
            except RaftError as err:
                self.logger.debug("error occurred during election: %s", err)

    def tick_heartbeat(self) -> None:
        """The leader's tick: heartbeats, quorum checks and leadership-transfer expiry."""
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1

        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                try:
                    self.step(Message(type=_MsgCheckQuorum, from_=self.id))
                except RaftPanic:
                    raise
                except RaftError as err:
                    self.logger.debug("error occurred during checking sending heartbeat: %s", err)
            # A transfer that did not finish within an election timeout is abandoned.
            if self.state == _StateLeader and self.lead_transferee != NONE:
                self.abort_leader_transfer()

        if self.state != _StateLeader:
            return

        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            try:
                self.step(Message(type=_MsgBeat, from_=self.id))
            except RaftPanic:
                raise
            except RaftError as err:
                self.logger.debug("error occurred during checking sending heartbeat: %s", err)

    def become_follower(self, term: int, lead: int) -> None:
        self.step_fn = step_follower
        self.reset(term)
        self.tick = self.tick_election
        self.lead = lead
        self.state = _StateFollower
        self.logger.info("%x became follower at term %d", self.id, self.term)

    def become_candidate(self) -> None:
        if self.state == _StateLeader:
            self.logger.panic("invalid transition [leader -> candidate]")
        self.step_fn = step_candidate
        self.reset(self.term + 1)
        self.tick = self.tick_election
        self.vote = self.id
        self.state = _StateCandidate
        self.logger.info("%x became candidate at term %d", self.id, self.term)

    def become_pre_candidate(self) -> None:
        if self.state == _StateLeader:
            self.logger.panic("invalid transition [leader -> pre-candidate]")
        # Only the role changes: the term and vote stay as they are until the
        # pre-vote is won.
        self.step_fn = step_candidate
        self.trk.reset_votes()
        self.tick = self.tick_election
        self.lead = NONE
        self.state = _StatePreCandidate
        self.logger.info("%x became pre-candidate at term %d", self.id, self.term)

    def become_leader(self) -> None:
        if self.state == _StateFollower:
            self.logger.panic("invalid transition [follower -> leader]")
        self.step_fn = step_leader
        self.reset(self.term)
        self.tick = self.tick_heartbeat
        self.lead = self.id
        self.state = _StateLeader
        # The leader trivially replicates to itself, and always counts as active.
        pr = self.trk.progress[self.id]
        pr.become_replicate()
        pr.recent_active = True

        # Whether or not a conf change is pending somewhere in the uncommitted tail,
        # refusing new ones until all of it is applied is safe and saves a scan.
        self.pending_conf_index = self.raft_log.last_index()

        if not self.append_entry([Entry()]):
            # Cannot happen: reset() just cleared the uncommitted size.
            self.logger.panic("empty entry was dropped")
        # The empty entry has no payload, so uncommitted_size is still 0 here.
        self.logger.info("%x became leader at term %d", self.id, self.term)

    def hup(self, t: CampaignType) -> None:
        if self.state == _StateLeader:
            self.logger.debug("%x ignoring MsgHup because already leader", self.id)
            return
        if not self.promotable():
            self.logger.warning("%x is unpromotable and can not campaign", self.id)
            return
        if self.has_unapplied_conf_changes():
            self.logger.warning(
                "%x cannot campaign at term %d since there are still pending configuration changes to apply",
                self.id,
                self.term,
            )
            return

        self.logger.info("%x is starting a new election at term %d", self.id, self.term)
        self.campaign(t)

    def has_unapplied_conf_changes(self) -> bool:
        """True if a committed but unapplied entry is a conf change.

        The scan goes page by page (pages of the apply size limit) so that a long
        unapplied tail is never loaded at once.
        """
        raft_log = self.raft_log
        if raft_log.applied >= raft_log.committed:
            return False
        lo0 = lo = raft_log.applied + 1
        hi = raft_log.committed + 1
        page_size = raft_log.max_applying_ents_size
        try:
            while lo < hi:
                ents = raft_log.slice(lo, hi, page_size)
                if not ents:
                    self.logger.panic(
                        "error scanning unapplied entries [%d, %d): got 0 entries in [%d, %d)",
                        lo0,
                        hi,
                        lo,
                        hi,
                    )
                for e in ents:
                    et = e.type
                    if et in (_EntryConfChange, _EntryConfChangeV2):
                        return True
                lo += len(ents)
        except (CompactedError, UnavailableError) as err:
            self.logger.panic("error scanning unapplied entries [%d, %d): %s", lo0, hi, err)
        return False

    def campaign(self, t: CampaignType) -> None:
        """Become (pre-)candidate and ask every voter for its vote."""
        if not self.promotable():
            # Callers check first; this only guards against a bug.
            self.logger.warning("%x is unpromotable; campaign() should have been called", self.id)
        if t == CAMPAIGN_PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg = _MsgPreVote
            # Pre-votes ask about the term we would campaign in, not the current one.
            term = self.term + 1
        else:
            self.become_candidate()
            vote_msg = _MsgVote
            term = self.term
        self_id = self.id
        ctx = t if t == CAMPAIGN_TRANSFER else b""
        for id_ in sorted(self.trk.config.voters.ids()):
            if id_ == self_id:
                # Our own vote counts once it is durable, via msgs_after_append.
                self.send(Message(type=vote_resp_msg_type(vote_msg), to=id_, term=term))
                continue
            last = self.raft_log.last_entry_id()
            self.logger.info(
                "%x [logterm: %d, index: %d] sent %s request to %x at term %d",
                self_id,
                last.term,
                last.index,
                vote_msg.name,
                id_,
                self.term,
            )
            self.send(
                Message(
                    type=vote_msg,
                    to=id_,
                    term=term,
                    index=last.index,
                    log_term=last.term,
                    context=ctx,
                )
            )

    def poll(self, id_: int, t: MessageType, v: bool) -> tuple[int, int, VoteResult]:
        if v:
            self.logger.info("%x received %s from %x at term %d", self.id, t.name, id_, self.term)
        else:
            self.logger.info(
                "%x received %s rejection from %x at term %d", self.id, t.name, id_, self.term
            )
        self.trk.record_vote(id_, v)
        return self.trk.tally_votes()

    # ------------------------------------------------------------------ Step

    def step(self, m: Message) -> None:
        """Advance the state machine by one message.

        Raises ProposalDroppedError when a proposal cannot be taken. The caller must
        not touch ``m`` afterwards: it may be forwarded or stored as is.
        """
        mterm = m.term
        if mterm == 0:
            pass  # a local message
        elif mterm > self.term:
            t = m.type
            if t in (_MsgVote, _MsgPreVote):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # Heard from a live leader within the minimum election timeout:
                    # neither bump the term nor grant the vote.
                    last = self.raft_log.last_entry_id()
                    self.logger.info(
                        "%x [logterm: %d, index: %d, vote: %x] ignored %s from %x [logterm: %d, index: %d] at term %d: lease is not expired (remaining ticks: %d)",
                        self.id,
                        last.term,
                        last.index,
                        self.vote,
                        t.name,
                        m.from_,
                        m.log_term,
                        m.index,
                        self.term,
                        self.election_timeout - self.election_elapsed,
                    )
                    return
            if t == _MsgPreVote:
                pass  # a pre-vote never changes our term
            elif t == _MsgPreVoteResp and not m.reject:
                # A granted pre-vote carries the term we are about to campaign in;
                # we move to it only once a quorum grants.
                pass
            else:
                self.logger.info(
                    "%x [term: %d] received a %s message with higher term from %x [term: %d]",
                    self.id,
                    self.term,
                    t.name,
                    m.from_,
                    mterm,
                )
                if t in (_MsgApp, _MsgHeartbeat, _MsgSnap):
                    self.become_follower(mterm, m.from_)
                else:
                    self.become_follower(mterm, NONE)
        elif mterm < self.term:
            self._step_lower_term(m)
            return

        t = m.type
        if t not in _STEP_COMMON:
            self.step_fn(self, m)
        elif t == _MsgHup:
            self.hup(CAMPAIGN_PRE_ELECTION if self.pre_vote else CAMPAIGN_ELECTION)
        elif t == _MsgStorageAppendResp:
            if m.index != 0:
                self.raft_log.unstable._stable_to(m.log_term, m.index)
            if m.snapshot is not None:
                self.applied_snap(m.snapshot)
        elif t == _MsgStorageApplyResp:
            ents = m.entries
            if ents:
                # applied_to(ents[-1].index, ents_size(ents)), where the log may
                # know the list (handed out by RawNode) and not need its size.
                raft_log = self.raft_log
                new_applied = max(ents[-1].index, raft_log.applied)
                raft_log._applied_to_ents(new_applied, ents)
                self._maybe_auto_leave(new_applied)
                if self.uncommitted_size:
                    # (With nothing tracked the result is 0 whatever the size.)
                    self.reduce_uncommitted_size(payloads_size(ents))
        else:  # MsgVote, MsgPreVote
            self._handle_vote_request(m)

    def _step_lower_term(self, m: Message) -> None:
        t = m.type
        if (self.check_quorum or self.pre_vote) and (t in (_MsgHeartbeat, _MsgApp)):
            # A leader of an older term is still talking to us. With check-quorum or
            # pre-vote our higher term may never reach it through votes (those are
            # ignored or never sent), so tell it about our term with an (empty)
            # response; this also lets a node stuck at a higher term rejoin.
            self.send(Message(type=_MsgAppResp, to=m.from_))
        elif t == _MsgPreVote:
            # Reject explicitly rather than ignore: a pre-candidate with a stale term
            # would otherwise wait forever, which can deadlock a cluster that enabled
            # pre-vote while a higher-term candidate with a shorter log was around.
            last = self.raft_log.last_entry_id()
            self.logger.info(
                "%x [logterm: %d, index: %d, vote: %x] rejected %s from %x [logterm: %d, index: %d] at term %d",
                self.id,
                last.term,
                last.index,
                self.vote,
                t.name,
                m.from_,
                m.log_term,
                m.index,
                self.term,
            )
            self.send(Message(type=_MsgPreVoteResp, to=m.from_, term=self.term, reject=True))
        elif t == _MsgStorageAppendResp:
            if m.index != 0:
                # Entries appended under an older term may since have been replaced
                # in the unstable log; they cannot be marked stable.
                self.logger.info(
                    "%x [term: %d] ignored entry appends from a %s message with lower term [term: %d]",
                    self.id,
                    self.term,
                    t.name,
                    m.term,
                )
            if m.snapshot is not None:
                # A snapshot holds committed state, valid whatever the term.
                self.applied_snap(m.snapshot)
        else:
            self.logger.info(
                "%x [term: %d] ignored a %s message with lower term from %x [term: %d]",
                self.id,
                self.term,
                t.name,
                m.from_,
                m.term,
            )

    def _handle_vote_request(self, m: Message) -> None:
        t = m.type
        from_ = m.from_
        # We can vote for a candidate we already voted for, or if we have not voted
        # and know of no leader in this term, or (pre-votes) for any future term...
        can_vote = (
            self.vote == from_
            or (self.vote == NONE and self.lead == NONE)
            or (t == _MsgPreVote and m.term > self.term)
        )
        last_id = self.raft_log.last_entry_id()
        cand_last_id = EntryID(m.log_term, m.index)
        # ...provided its log is at least as up to date as ours. Learners vote too: a
        # candidate asking us may know we have been promoted before we do.
        if can_vote and self.raft_log.is_up_to_date(cand_last_id):
            self.logger.info(
                "%x [logterm: %d, index: %d, vote: %x] cast %s for %x [logterm: %d, index: %d] at term %d",
                self.id,
                last_id.term,
                last_id.index,
                self.vote,
                t.name,
                from_,
                cand_last_id.term,
                cand_last_id.index,
                self.term,
            )
            # Answer with the message's term, not ours: for a pre-vote ours may be
            # older, and the pre-candidate would drop a response from the past.
            self.send(Message(type=vote_resp_msg_type(t), to=from_, term=m.term))
            if t == _MsgVote:
                # Only real votes are recorded.
                self.election_elapsed = 0
                self.vote = from_
        else:
            self.logger.info(
                "%x [logterm: %d, index: %d, vote: %x] rejected %s from %x [logterm: %d, index: %d] at term %d",
                self.id,
                last_id.term,
                last_id.index,
                self.vote,
                t.name,
                from_,
                cand_last_id.term,
                cand_last_id.index,
                self.term,
            )
            self.send(Message(type=vote_resp_msg_type(t), to=from_, term=self.term, reject=True))

    # ------------------------------------------------------------------ follower side

    def handle_append_entries(self, m: Message) -> None:
        raft_log = self.raft_log
        # etcd builds a LogSlice(m.term, (m.log_term, m.index), m.entries) here; the
        # parts are passed as they are instead.
        if m.index < raft_log.committed:
            self.send(Message(type=_MsgAppResp, to=m.from_, index=raft_log.committed))
            return
        mlast_index = raft_log._maybe_append(m.log_term, m.index, m.entries, m.commit)
        if mlast_index is not None:
            # send(Message(type=MsgAppResp, to=m.from_, index=mlast_index)), queued
            # directly: (type, to, from_, term, log_term, index).
            self.msgs_after_append.append(
                Message(_MsgAppResp, m.from_, self.id, self.term, 0, mlast_index)
            )
            return
        if debug_enabled(self.logger):
            # (The term lookup is only worth doing when the line is printed.)
            self.logger.debug(
                "%x [logterm: %d, index: %d] rejected MsgApp [logterm: %d, index: %d] from %x",
                self.id,
                self.raft_log.zero_term_on_out_of_bounds(m.index),
                m.index,
                m.log_term,
                m.index,
                m.from_,
            )

        # Hint the leader at the largest (index, term) at which our logs may agree:
        # the last entry at or below m.index whose term is at most m.log_term. This
        # skips over a divergent uncommitted tail of higher terms in one round trip.
        # m.index >= committed here, so the search stays within the valid range.
        hint_index = min(m.index, raft_log.last_index())
        hint_index, hint_term = raft_log.find_conflict_by_term(hint_index, m.log_term)
        self.send(
            Message(
                type=_MsgAppResp,
                to=m.from_,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def handle_heartbeat(self, m: Message) -> None:
        self.raft_log.commit_to(m.commit)
        self.send(Message(type=_MsgHeartbeatResp, to=m.from_, context=m.context))

    def handle_snapshot(self, m: Message) -> None:
        # A MsgSnap always carries a snapshot; a missing one counts as empty.
        s = m.snapshot if m.snapshot is not None else Snapshot()
        sindex = s.metadata.index
        sterm = s.metadata.term
        if self.restore(s):
            self.logger.info(
                "%x [commit: %d] restored snapshot [index: %d, term: %d]",
                self.id,
                self.raft_log.committed,
                sindex,
                sterm,
            )
            self.send(Message(type=_MsgAppResp, to=m.from_, index=self.raft_log.last_index()))
        else:
            self.logger.info(
                "%x [commit: %d] ignored snapshot [index: %d, term: %d]",
                self.id,
                self.raft_log.committed,
                sindex,
                sterm,
            )
            self.send(Message(type=_MsgAppResp, to=m.from_, index=self.raft_log.committed))

    def restore(self, s: Snapshot) -> bool:
        """Reset the log and configuration to snapshot ``s``; False if it was ignored
        (stale, or only moved the commit index forward, or unusable)."""
        raft_log = self.raft_log
        meta = s.metadata
        if meta.index <= raft_log.committed:
            return False
        if self.state != _StateFollower:
            # Never expected (only followers get here); step down rather than let a
            # leader apply a snapshot without changing term.
            self.logger.warning(
                "%x attempted to restore snapshot as leader; should never happen", self.id
            )
            self.become_follower(self.term + 1, NONE)
            return False

        # Much of the code assumes we are in our own tracker; refuse a snapshot whose
        # configuration does not contain us (learners_next implies voters_outgoing).
        cs = meta.conf_state
        self_id = self.id
        if (
            self_id not in cs.voters
            and self_id not in cs.learners
            and self_id not in cs.voters_outgoing
        ):
            self.logger.warning(
                "%x attempted to restore snapshot but it is not in the ConfState %s; should never happen",
                self_id,
                cs,
            )
            return False

        sid = EntryID(meta.term, meta.index)
        if raft_log.match_term(sid):
            # We already have the snapshot's last entry: just commit up to it.
            last = raft_log.last_entry_id()
            self.logger.info(
                "%x [commit: %d, lastindex: %d, lastterm: %d] fast-forwarded commit to snapshot [index: %d, term: %d]",
                self_id,
                raft_log.committed,
                last.index,
                last.term,
                sid.index,
                sid.term,
            )
            raft_log.commit_to(meta.index)
            return False

        raft_log.restore(s)

        # Rebuild the tracker from scratch for the snapshot's configuration.
        self.trk = ProgressTracker(self.trk.max_inflight, self.trk.max_inflight_bytes)
        try:
            cfg, prs = restore_conf(Changer(self.trk, raft_log.last_index()), cs)
        except ConfChangeError as err:
            self.logger.panic("unable to restore config %s: %s", cs, err)

        assert_conf_states_equivalent(self.logger, cs, self.switch_to_config(cfg, prs))

        last = raft_log.last_entry_id()
        self.logger.info(
            "%x [commit: %d, lastindex: %d, lastterm: %d] restored snapshot [index: %d, term: %d]",
            self_id,
            raft_log.committed,
            last.index,
            last.term,
            sid.index,
            sid.term,
        )
        return True

    def promotable(self) -> bool:
        """True if this node may campaign: a voter in its config with no snapshot
        pending application."""
        pr = self.trk.progress.get(self.id)
        return (
            pr is not None
            and not pr.is_learner
            and not self.raft_log.has_next_or_in_progress_snapshot()
        )

    # ------------------------------------------------------------------ configuration

    def apply_conf_change(self, cc: ConfChangeV2) -> ConfState:
        changer = Changer(self.trk, self.raft_log.last_index())
        try:
            if cc.leave_joint():
                cfg, prs = changer.leave_joint()
            else:
                auto_leave, use_joint = cc.enter_joint()
                if use_joint:
                    cfg, prs = changer.enter_joint(auto_leave, cc.changes)
                else:
                    cfg, prs = changer.simple(cc.changes)
        except ConfChangeError as err:
            self.logger.panic("%s", err)
        return self.switch_to_config(cfg, prs)

    def switch_to_config(self, cfg: TrackerConfig, prs: ProgressMap) -> ConfState:
        """Install a new configuration (from a snapshot or a conf change) and react to
        it: step down if removed (when so configured), commit what the new quorum
        allows, probe new members, abort a transfer to a removed node."""
        trk = self.trk
        trk.config = cfg
        trk.progress = prs

        self.logger.info("%x switched to configuration %s", self.id, trk.config)
        cs = trk.conf_state()
        pr = prs.get(self.id)

        # Removal makes us a non-learner too.
        self.is_learner = pr is not None and pr.is_learner

        if (pr is None or self.is_learner) and self.state == _StateLeader:
            # Removed or demoted while leading. Demotion is refused at proposal time
            # today, but is handled like removal.
            if self.step_down_on_removal:
                self.become_follower(self.term, NONE)
            return cs

        # The rest concerns a leader with other voters only.
        if self.state != _StateLeader or len(cs.voters) == 0:
            return cs

        if self.maybe_commit():
            # The new quorum committed more: tell everyone.
            self.bcast_append()
        else:
            # Probe new members now rather than at the next heartbeat or proposal.
            self_id = self.id
            for id_ in sorted(trk.progress):
                if id_ != self_id:
                    self.maybe_send_append(id_, False)
        if self.lead_transferee != NONE and self.lead_transferee not in trk.config.voters.ids():
            self.abort_leader_transfer()

        return cs

    def load_state(self, state: HardState) -> None:
        raft_log = self.raft_log
        if state.commit < raft_log.committed or state.commit > raft_log.last_index():
            self.logger.panic(
                "%x state.commit %d is out of range [%d, %d]",
                self.id,
                state.commit,
                raft_log.committed,
                raft_log.last_index(),
            )
        raft_log.committed = state.commit
        self.term = state.term
        self.vote = state.vote

    # ------------------------------------------------------------------ timers, misc

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def reset_randomized_election_timeout(self) -> None:
        self.randomized_election_timeout = self.election_timeout + _randrange(self.election_timeout)

    def send_timeout_now(self, to: int) -> None:
        self.send(Message(type=_MsgTimeoutNow, to=to))

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    def committed_entry_in_current_term(self) -> bool:
        # A leader's term is never 0, so an unknown term (0) never matches.
        return self.raft_log.zero_term_on_out_of_bounds(self.raft_log.committed) == self.term

    def response_to_read_index_req(self, req: Message, read_index: int) -> Message | None:
        """The MsgReadIndexResp answering ``req``, or None when ``req`` is our own (then
        the answer is recorded in ``read_states`` instead)."""
        if req.from_ == NONE or req.from_ == self.id:
            self.read_states.append(ReadState(read_index, req.entries[0].data))
            return None
        return Message(type=_MsgReadIndexResp, to=req.from_, index=read_index, entries=req.entries)

    def increase_uncommitted_size(self, ents: Sequence[Entry]) -> bool:
        """Account for ``ents`` in the uncommitted tail; False if that would exceed the
        limit. An empty tail admits anything, and payload-less entries (a new leader's
        empty entry, the auto-leave proposal) are always admitted."""
        s = payloads_size(ents)
        if (
            self.uncommitted_size > 0
            and s > 0
            and self.uncommitted_size + s > self.max_uncommitted_size
        ):
            return False
        self.uncommitted_size += s
        return True

    def reduce_uncommitted_size(self, s: int) -> None:
        """Release ``s`` bytes of committed payload, saturating at zero (the tracked
        size may underestimate the tail, never overestimate it)."""
        if s > self.uncommitted_size:
            self.uncommitted_size = 0
        else:
            self.uncommitted_size -= s


# ---------------------------------------------------------------------- step functions


def step_leader(r: Raft, m: Message) -> None:
    t = m.type
    # MsgAppResp first: it is by far the most frequent message a leader sees.
    if t == _MsgAppResp:
        pr = r.trk.progress.get(m.from_)
        if pr is None:
            r.logger.debug("%x no progress available for %x", r.id, m.from_)
            return
        _leader_handle_app_resp(r, m, pr)
        return
    if t == _MsgBeat:
        r.bcast_heartbeat()
        return
    if t == _MsgCheckQuorum:
        trk = r.trk
        if not trk.quorum_active():
            r.logger.warning("%x stepped down to follower since quorum is not active", r.id)
            r.become_follower(r.term, NONE)
        # Everyone but us must prove activity again before the next check.
        self_id = r.id
        for id_, pr in r.trk.progress.items():
            if id_ != self_id:
                pr.recent_active = False
        return
    if t == _MsgProp:
        _leader_handle_prop(r, m)
        return
    if t == _MsgReadIndex:
        if r.trk.is_singleton() and r.id in r.trk.config.voters.incoming:
            # We are the only voter: the read is confirmed by definition. (etcd checks
            # only that there is one voter; a leader that removed or demoted itself
            # would then answer from its own possibly stale commit index. The
            # simulator found that stale read; see docs/porting.md.)
            resp = r.response_to_read_index_req(m, r.raft_log.committed)
            if resp is not None:
                r.send(resp)
            return
        # Until an entry of our term is committed we do not know the true commit
        # index; hold the request until then.
        if not r.committed_entry_in_current_term():
            r.pending_read_index_messages.append(m)
            return
        _send_msg_read_index_response(r, m)
        return
    if t == _MsgForgetLeader:
        return  # nothing to forget on the leader

    # Everything else concerns a particular peer, which must be tracked.
    pr = r.trk.progress.get(m.from_)
    if pr is None:
        r.logger.debug("%x no progress available for %x", r.id, m.from_)
        return
    if t == _MsgHeartbeatResp:
        pr.recent_active = True
        pr.msg_app_flow_paused = False

        # Send an append (maybe empty) if the follower lags, even with a full window
        # (the messages filling it may all have been lost), or if it is probing
        # while caught up (e.g. after being reported unreachable), so that its ack
        # moves it back to StateReplicate. In StateSnapshot this sends nothing.
        if pr.match < r.raft_log.last_index() or pr.state == _StateProbe:
            r.send_append(m.from_)

        if r.read_only.option != _ReadOnlySafe or len(m.context) == 0:
            return

        ro = r.read_only
        ro.recv_ack(m.from_, m.context)
        for rs in ro.maybe_advance(r.trk.config.voters):
            resp = r.response_to_read_index_req(rs.req, rs.index)
            if resp is not None:
                r.send(resp)
    elif t == _MsgSnapStatus:
        if pr.state != _StateSnapshot:
            return
        if not m.reject:
            pr.become_probe()
            r.logger.debug(
                "%x snapshot succeeded, resumed sending replication messages to %x [%s]",
                r.id,
                m.from_,
                pr,
            )
        else:
            # Forget the snapshot before probing, or probing would start from its
            # index although it was never applied.
            pr.pending_snapshot = 0
            pr.become_probe()
            r.logger.debug(
                "%x snapshot failed, resumed sending replication messages to %x [%s]",
                r.id,
                m.from_,
                pr,
            )
        # After success, wait for the follower's MsgAppResp before the next MsgApp;
        # after failure, wait for a heartbeat interval before retrying.
        pr.msg_app_flow_paused = True
    elif t == _MsgUnreachable:
        # An optimistic MsgApp to an unreachable peer was most likely lost.
        if pr.state == _StateReplicate:
            pr.become_probe()
        r.logger.debug(
            "%x failed to send message to %x because it is unreachable [%s]", r.id, m.from_, pr
        )
    elif t == _MsgTransferLeader:
        _leader_handle_transfer(r, m, pr)


def _leader_handle_app_resp(r: Raft, m: Message, pr: Progress) -> None:
    # This path also acks the leader's own appends (stepped back at advance).
    pr.recent_active = True
    from_ = m.from_
    raft_log = r.raft_log

    if m.reject:
        # reject_hint is where the follower suggests probing next (we will send
        # reject_hint+1 onwards) and log_term its term there (0 if unknown).
        r.logger.debug(
            "%x received MsgAppResp(rejected, hint: (index %d, term %d)) from %x for index %d",
            r.id,
            m.reject_hint,
            m.log_term,
            from_,
            m.index,
        )
        next_probe_idx = m.reject_hint
        if m.log_term > 0:
            # Every index of ours whose term exceeds the follower's term at the hint
            # cannot match (terms only grow along a log), so skip straight to the
            # last index with a term <= it: one probe per term instead of per entry.
            next_probe_idx = raft_log.find_conflict_by_term(m.reject_hint, m.log_term)[0]
        if pr.maybe_decr_to(m.index, next_probe_idx):
            r.logger.debug("%x decreased progress of %x to [%s]", r.id, from_, pr)
            if pr.state == _StateReplicate:
                pr.become_probe()
            r.send_append(from_)
        return

    # Update on a higher match, or when an ack at the current match can move a
    # probing peer back to StateReplicate. (Not for StateSnapshot: there the
    # pending snapshot must be acked first.)
    index = m.index
    # pr.maybe_update(index), inlined: this runs for every ack.
    updated = index > pr.match
    if updated:
        pr.match = index
        if pr.next < index + 1:
            pr.next = index + 1
        pr.msg_app_flow_paused = False
    if updated or (pr.match == index and pr.state == _StateProbe):
        state = pr.state
        if state == _StateProbe:
            pr.become_replicate()
        elif state == _StateSnapshot and pr.match + 1 >= raft_log.first_index():
            # Whatever the snapshot, the follower can now be caught up from the log.
            r.logger.debug(
                "%x recovered from needing snapshot, resumed sending replication messages to %x [%s]",
                r.id,
                from_,
                pr,
            )
            # Via StateProbe, which accounts for the pending snapshot, so that the
            # status is consistent right away rather than after the next append.
            pr.become_probe()
            pr.become_replicate()
        elif state == _StateReplicate:
            pr.inflights.free_le(m.index)

        self_id = r.id
        if raft_log._maybe_commit(r.term, r.trk.committed()):  # r.maybe_commit()
            # The commit index moved in our term: pending reads can be answered.
            _release_pending_read_index_messages(r)
            r.bcast_append()
        elif self_id != from_ and pr.can_bump_commit(raft_log.committed):
            # Tell the follower the commit index now rather than at the next
            # heartbeat.
            r.send_append(from_)
        # Flow control may have opened up (probe -> replicate, freed inflights):
        # send as many non-empty appends as it allows.
        if self_id != from_:
            while r.maybe_send_append(from_, False):
                pass
        if from_ == r.lead_transferee and pr.match == raft_log.last_index():
            r.logger.info("%x sent MsgTimeoutNow to %x after received MsgAppResp", self_id, from_)
            r.send_timeout_now(from_)


def _leader_handle_prop(r: Raft, m: Message) -> None:
    leader_propose(r, m.entries, m)


def leader_propose(r: Raft, ents: Sequence[Entry], m: Message | None) -> None:
    """A leader's handling of MsgProp ``m`` carrying ``ents``.

    RawNode.propose calls this directly on a leader (with ``m`` None and a fresh list
    of one entry), which is all that stepping a MsgProp comes to there, without
    building the message. ``m``, when given, gets a copy of ``ents`` if one has to
    be modified and is not a list.
    """
    if not ents:
        r.logger.panic("%x stepped empty MsgProp", r.id)
    if r.id not in r.trk.progress:
        # Removed from the configuration while leading: take no new proposals.
        raise ProposalDroppedError()
    if r.lead_transferee != NONE:
        r.logger.debug(
            "%x [term %d] transfer leadership to %x is in progress; dropping proposal",
            r.id,
            r.term,
            r.lead_transferee,
        )
        raise ProposalDroppedError()

    # Conf changes need checking; a single normal entry (the usual proposal) does not.
    for i in range(len(ents)) if len(ents) != 1 or ents[0].type != _EntryNormal else ():
        e = ents[i]
        et = e.type
        cc: ConfChange | ConfChangeV2
        try:
            if et == _EntryConfChange:
                cc = codec.decode_conf_change(e.data)
            elif et == _EntryConfChangeV2:
                cc = codec.decode_conf_change_v2(e.data)
            else:
                continue
        except DecodeError as err:
            r.logger.panic("%s", err)

        already_pending = r.pending_conf_index > r.raft_log.applied
        already_joint = len(r.trk.config.voters.outgoing) > 0
        wants_leave_joint = len(cc.as_v2().changes) == 0

        failed_check = ""
        if already_pending:
            failed_check = (
                f"possible unapplied conf change at index {r.pending_conf_index} "
                f"(applied to {r.raft_log.applied})"
            )
        elif already_joint and not wants_leave_joint:
            failed_check = "must transition out of joint config first"
        elif not already_joint and wants_leave_joint:
            failed_check = "not in joint state; refusing empty conf change"

        if failed_check and not r.disable_conf_change_validation:
            r.logger.info(
                "%x ignoring conf change %s at config %s: %s",
                r.id,
                describe_conf_change(cc),
                r.trk.config,
                failed_check,
            )
            # The refused change still takes its slot in the log, as an empty entry.
            if not isinstance(ents, list):
                ents = list(ents)
                if m is not None:
                    m.entries = ents
            ents[i] = Entry(type=_EntryNormal)
        else:
            r.pending_conf_index = r.raft_log.last_index() + i + 1

    if not r.append_entry(ents):
        raise ProposalDroppedError()
    r.bcast_append()


def _leader_handle_transfer(r: Raft, m: Message, pr: Progress) -> None:
    if pr.is_learner:
        r.logger.debug("%x is learner. Ignored transferring leadership", r.id)
        return
    lead_transferee = m.from_
    last_lead_transferee = r.lead_transferee
    if last_lead_transferee != NONE:
        if last_lead_transferee == lead_transferee:
            r.logger.info(
                "%x [term %d] transfer leadership to %x is in progress, ignores request to same node %x",
                r.id,
                r.term,
                lead_transferee,
                lead_transferee,
            )
            return
        r.abort_leader_transfer()
        r.logger.info(
            "%x [term %d] abort previous transferring leadership to %x",
            r.id,
            r.term,
            last_lead_transferee,
        )
    if lead_transferee == r.id:
        r.logger.debug("%x is already leader. Ignored transferring leadership to self", r.id)
        return
    r.logger.info("%x [term %d] starts to transfer leadership to %x", r.id, r.term, lead_transferee)
    # The transfer must finish within an election timeout, counted from now.
    r.election_elapsed = 0
    r.lead_transferee = lead_transferee
    if pr.match == r.raft_log.last_index():
        r.send_timeout_now(lead_transferee)
        r.logger.info(
            "%x sends MsgTimeoutNow to %x immediately as %x already has up-to-date log",
            r.id,
            lead_transferee,
            lead_transferee,
        )
    else:
        r.send_append(lead_transferee)


def step_candidate(r: Raft, m: Message) -> None:
    """Shared by StateCandidate and StatePreCandidate; only the vote-response type
    they count differs (a candidate may still get stale pre-vote responses)."""
    t = m.type
    if t == _MsgProp:
        r.logger.info("%x no leader at term %d; dropping proposal", r.id, r.term)
        raise ProposalDroppedError()
    if t == _MsgApp:
        r.become_follower(m.term, m.from_)  # m.term == r.term here
        r.handle_append_entries(m)
    elif t == _MsgHeartbeat:
        r.become_follower(m.term, m.from_)
        r.handle_heartbeat(m)
    elif t == _MsgSnap:
        r.become_follower(m.term, m.from_)
        r.handle_snapshot(m)
    elif t == (_MsgPreVoteResp if r.state == _StatePreCandidate else _MsgVoteResp):
        gr, rj, res = r.poll(m.from_, t, not m.reject)
        r.logger.info("%x has received %d %s votes and %d vote rejections", r.id, gr, t.name, rj)
        if res == VoteResult.VoteWon:
            if r.state == _StatePreCandidate:
                r.campaign(CAMPAIGN_ELECTION)
            else:
                r.become_leader()
                r.bcast_append()
        elif res == VoteResult.VoteLost:
            # A rejecting pre-vote response carries a future term; stay at ours.
            r.become_follower(r.term, NONE)
    elif t == _MsgTimeoutNow:
        r.logger.debug(
            "%x [term %d state %s] ignored MsgTimeoutNow from %x", r.id, r.term, r.state, m.from_
        )


def step_follower(r: Raft, m: Message) -> None:
    t = m.type
    if t == _MsgApp:
        r.election_elapsed = 0
        r.lead = m.from_
        r.handle_append_entries(m)
    elif t == _MsgHeartbeat:
        r.election_elapsed = 0
        r.lead = m.from_
        r.handle_heartbeat(m)
    elif t == _MsgProp:
        if r.lead == NONE:
            r.logger.info("%x no leader at term %d; dropping proposal", r.id, r.term)
            raise ProposalDroppedError()
        if r.disable_proposal_forwarding:
            r.logger.info(
                "%x not forwarding to leader %x at term %d; dropping proposal",
                r.id,
                r.lead,
                r.term,
            )
            raise ProposalDroppedError()
        m.to = r.lead
        r.send(m)
    elif t == _MsgSnap:
        r.election_elapsed = 0
        r.lead = m.from_
        r.handle_snapshot(m)
    elif t == _MsgTransferLeader:
        if r.lead == NONE:
            r.logger.info("%x no leader at term %d; dropping leader transfer msg", r.id, r.term)
            return
        m.to = r.lead
        r.send(m)
    elif t == _MsgForgetLeader:
        if r.read_only.option == _ReadOnlyLeaseBased:
            r.logger.error("ignoring MsgForgetLeader due to ReadOnlyLeaseBased")
            return
        if r.lead != NONE:
            r.logger.info("%x forgetting leader %x at term %d", r.id, r.lead, r.term)
            r.lead = NONE
    elif t == _MsgTimeoutNow:
        r.logger.info(
            "%x [term %d] received MsgTimeoutNow from %x and starts an election to get leadership.",
            r.id,
            r.term,
            m.from_,
        )
        # A transfer target is known to be reachable: skip the pre-vote round.
        r.hup(CAMPAIGN_TRANSFER)
    elif t == _MsgReadIndex:
        if r.lead == NONE:
            r.logger.info("%x no leader at term %d; dropping index reading msg", r.id, r.term)
            return
        m.to = r.lead
        r.send(m)
    elif t == _MsgReadIndexResp:
        if len(m.entries) != 1:
            r.logger.error(
                "%x invalid format of MsgReadIndexResp from %x, entries count: %d",
                r.id,
                m.from_,
                len(m.entries),
            )
            return
        r.read_states.append(ReadState(m.index, m.entries[0].data))


def _release_pending_read_index_messages(r: Raft) -> None:
    if not r.pending_read_index_messages:
        # The common case; skips the term lookup below.
        return
    if not r.committed_entry_in_current_term():
        r.logger.error(
            "pending MsgReadIndex should be released only after first commit in current term"
        )
        return

    msgs = r.pending_read_index_messages
    r.pending_read_index_messages = []
    for m in msgs:
        _send_msg_read_index_response(r, m)


def _send_msg_read_index_response(r: Raft, m: Message) -> None:
    option = r.read_only.option
    if option == _ReadOnlySafe:
        # Confirm leadership with a heartbeat round; we ack our own request.
        ro = r.read_only
        ro.add_request(r.raft_log.committed, m)
        ro.recv_ack(r.id, ro.heartbeat_ctx())
        r.bcast_heartbeat()
    elif option == _ReadOnlyLeaseBased:
        resp = r.response_to_read_index_req(m, r.raft_log.committed)
        if resp is not None:
            r.send(resp)
