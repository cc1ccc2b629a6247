"""What a leader knows about one follower's log, and how it replicates to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftcore.errors import RaftPanic
from raftcore.tracker.inflights import Inflights
from raftcore.tracker.state import StateType

__all__ = ["Progress", "ProgressMap"]

_PROBE = StateType.StateProbe
_REPLICATE = StateType.StateReplicate
_SNAPSHOT = StateType.StateSnapshot


def _no_inflights() -> Inflights:
    # etcd's zero Progress has no window at all; every real Progress is given one sized
    # from the config, so the default only serves hand-built values in tests.
    return Inflights(0, 0)


@dataclass(slots=True)
class Progress:
    """A follower's replication progress as the leader sees it.

    Invariant: ``0 <= match < next``. In ``StateSnapshot``,
    ``next == pending_snapshot + 1 == sent_commit + 1``.

    ``sent_commit`` is the highest commit index sent to the follower; it is a plain
    field, so etcd's ``SentCommit(c)`` is ``pr.sent_commit = c`` (or
    :meth:`set_sent_commit`).
    """

    match: int = 0  # highest index known to be in the follower's log
    next: int = 0  # index of the next entry to send; (match, next) is in flight
    sent_commit: int = 0
    state: StateType = StateType.StateProbe
    # The leader's last index when it decided a snapshot was needed; replication is
    # paused while it is set.
    pending_snapshot: int = 0
    # Heard from the follower lately (reset after each election timeout by CheckQuorum).
    recent_active: bool = False
    # Appends to the follower are throttled: in StateProbe after a probe was sent, in
    # StateReplicate while the in-flight window is full. A heartbeat response clears it.
    msg_app_flow_paused: bool = False
    inflights: Inflights = field(default_factory=_no_inflights)
    is_learner: bool = False

    def reset_state(self, state: StateType) -> None:
        """Enter ``state``, clearing the pause flag, the pending snapshot and the window."""
        self.msg_app_flow_paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        """Enter StateProbe; probing resumes after the match index, or after a snapshot
        that was just delivered when that is further ahead."""
        if self.state == _SNAPSHOT:
            pending = self.pending_snapshot
            self.reset_state(_PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self.reset_state(_PROBE)
            self.next = self.match + 1
        self.sent_commit = min(self.sent_commit, self.next - 1)

    def become_replicate(self) -> None:
        """Enter StateReplicate, sending from just after the match index."""
        self.reset_state(_REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshoti: int) -> None:
        """Enter StateSnapshot, waiting for the snapshot at index ``snapshoti``."""
        self.reset_state(_SNAPSHOT)
        self.pending_snapshot = snapshoti
        self.next = snapshoti + 1
        self.sent_commit = snapshoti

    def sent_entries(self, entries: int, nbytes: int) -> None:
        """Account for a MsgApp carrying ``entries`` entries (``nbytes`` bytes) from ``next``.

        Only valid in StateProbe and StateReplicate.
        """
        state = self.state
        if state == _REPLICATE:
            inflights = self.inflights
            if entries > 0:
                self.next += entries
                inflights.add(self.next - 1, nbytes)
            # A message that fills (or found full) the window counts as a probe: the flow
            # pauses until acks free it up.
            self.msg_app_flow_paused = inflights.full()
        elif state == _PROBE:
            if entries > 0:
                self.msg_app_flow_paused = True
        else:
            raise RaftPanic(f"sending append in unhandled state {state}")

    def can_bump_commit(self, index: int) -> bool:
        """True if sending commit index ``index`` may advance the follower's commit.

        Allowed unless a commit index already sent takes the follower all the way to
        ``next - 1`` (the most it can commit with what it has been sent).
        """
        # next >= 1 by invariant; a 0 would make etcd's unsigned next-1 the maximum.
        return index > self.sent_commit and (self.next == 0 or self.sent_commit < self.next - 1)

    def set_sent_commit(self, commit: int) -> None:
        """etcd's ``SentCommit``: record the commit index just sent."""
        self.sent_commit = commit

    def maybe_update(self, n: int) -> bool:
        """Apply an ack of index ``n``; False if it is stale (not above ``match``)."""
        if n <= self.match:
            return False
        self.match = n
        if self.next < n + 1:
            self.next = n + 1
        self.msg_app_flow_paused = False
        return True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Apply a rejection of the append at index ``rejected``; False if it is stale.

        In StateReplicate anything at or below ``match`` is stale, otherwise ``next``
        falls back to ``match + 1``. In the other states only a rejection of the last
        probe (``next - 1``) counts, and ``next`` moves down towards the follower's hint.
        """
        if self.state == _REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            self.sent_commit = min(self.sent_commit, self.next - 1)
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.sent_commit = min(self.sent_commit, self.next - 1)
        self.msg_app_flow_paused = False
        return True

    def is_paused(self) -> bool:
        """True if appends to this follower are throttled right now."""
        state = self.state
        if state in (_PROBE, _REPLICATE):
            return self.msg_app_flow_paused
        if state == _SNAPSHOT:
            return True
        raise RaftPanic("unexpected state")

    def clone(self) -> Progress:
        """A copy with its own in-flight window."""
        return Progress(
            self.match,
            self.next,
            self.sent_commit,
            self.state,
            self.pending_snapshot,
            self.recent_active,
            self.msg_app_flow_paused,
            self.inflights.clone(),
            self.is_learner,
        )

    def __str__(self) -> str:
        parts = [f"{self.state.name} match={self.match} next={self.next}"]
        if self.is_learner:
            parts.append(" learner")
        if self.is_paused():
            parts.append(" paused")
        if self.pending_snapshot > 0:
            parts.append(f" pendingSnap={self.pending_snapshot}")
        if not self.recent_active:
            parts.append(" inactive")
        n = self.inflights.count()
        if n > 0:
            parts.append(f" inflight={n}")
            if self.inflights.full():
                parts.append("[full]")
        return "".join(parts)


class ProgressMap(dict[int, Progress]):
    """Progress by node id; prints one ``{id}: {progress}`` line per node, ids ascending."""

    __slots__ = ()

    def __str__(self) -> str:
        return "".join([f"{i}: {self[i]}\n" for i in sorted(self)])
