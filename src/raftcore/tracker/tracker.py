"""The leader's view of the cluster: the active configuration plus per-node progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from raftcore.quorum import MAX_INDEX, JointConfig, MajorityConfig, VoteResult, ids_str
from raftcore.raftpb.types import ConfState
from raftcore.tracker.progress import Progress, ProgressMap

__all__ = ["MatchAckIndexer", "ProgressTracker", "TrackerConfig"]


@dataclass(slots=True)
class TrackerConfig:
    """The membership configuration (etcd's ``tracker.Config``).

    Learners never overlap the voters of either half. Demoting a voter while it is
    still an outgoing voter of a joint config cannot make it a learner yet (it would be
    both); it is staged in ``learners_next`` and becomes a learner when the joint
    config is left.
    """

    voters: JointConfig = field(default_factory=JointConfig)
    # In a joint config: leave it automatically once possible, rather than waiting for
    # the application to ask.
    auto_leave: bool = False
    learners: set[int] = field(default_factory=set)
    learners_next: set[int] = field(default_factory=set)

    def __str__(self) -> str:
        # etcd prints the learner parts when the set exists; its config changer never
        # leaves an existing set empty, so "exists" and "non-empty" coincide.
        s = f"voters={self.voters}"
        if self.learners:
            s += f" learners={ids_str(self.learners)}"
        if self.learners_next:
            s += f" learners_next={ids_str(self.learners_next)}"
        if self.auto_leave:
            s += " autoleave"
        return s

    def clone(self) -> TrackerConfig:
        """A copy sharing no sets with this one."""
        return TrackerConfig(
            JointConfig(MajorityConfig(self.voters.incoming), MajorityConfig(self.voters.outgoing)),
            self.auto_leave,
            set(self.learners),
            set(self.learners_next),
        )


class MatchAckIndexer:
    """Presents each tracked node's match index as its acknowledged index."""

    __slots__ = ("_progress",)

    def __init__(self, progress: dict[int, Progress]) -> None:
        self._progress = progress

    def acked_index(self, voter_id: int) -> int | None:
        pr = self._progress.get(voter_id)
        return None if pr is None else pr.match


def _committed(cfg: MajorityConfig, prs: dict[int, Progress]) -> int:
    # MajorityConfig.committed_index specialised to match indexes, without a method call
    # per voter: this runs on every ack the leader receives.
    n = len(cfg)
    if n == 0:
        return MAX_INDEX
    if n == 1:
        for vid in cfg:
            pr = prs.get(vid)
            return 0 if pr is None else pr.match
    if n == 3:
        # The most common cluster size: the median of three, without building and
        # sorting a list.
        a, b, c = cfg
        pa = prs.get(a)
        pb = prs.get(b)
        pc = prs.get(c)
        if pa is not None and pb is not None and pc is not None:
            x = pa.match
            y = pb.match
            z = pc.match
            if x > y:
                x, y = y, x
            if z < y:
                y = z if z > x else x
            return y
    try:
        # Usually every voter is tracked; the comprehension is the fast path.
        known = [prs[vid].match for vid in cfg]
    except KeyError:
        known = [pr.match for pr in map(prs.get, cfg) if pr is not None]
    # Sorted ascending with untracked voters as zeros on the left, the answer is at
    # n - (n // 2 + 1); shifted by the number of untracked voters it indexes `known`.
    known.sort()
    pos = len(known) - (n // 2 + 1)
    return known[pos] if pos >= 0 else 0


class ProgressTracker:
    """The active configuration, the progress of every tracked node, and election votes.

    etcd embeds its ``Config`` in the tracker; here it is the ``config`` attribute, so
    etcd's ``trk.Voters`` is ``trk.config.voters``.
    """

    __slots__ = ("config", "max_inflight", "max_inflight_bytes", "progress", "votes")

    def __init__(self, max_inflight: int, max_inflight_bytes: int) -> None:
        self.config = TrackerConfig()
        self.progress = ProgressMap()
        self.votes: dict[int, bool] = {}
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes

    def conf_state(self) -> ConfState:
        """The active configuration as a ConfState (members sorted)."""
        cfg = self.config
        return ConfState(
            voters=sorted(cfg.voters.incoming),
            learners=sorted(cfg.learners),
            voters_outgoing=sorted(cfg.voters.outgoing),
            learners_next=sorted(cfg.learners_next),
            auto_leave=cfg.auto_leave,
        )

    def is_singleton(self) -> bool:
        """True if the only voter is a single node (which must be the leader)."""
        voters = self.config.voters
        return len(voters.incoming) == 1 and not voters.outgoing

    def committed(self) -> int:
        """The largest index the voters have acknowledged by (joint) quorum."""
        voters = self.config.voters
        prs = self.progress
        idx = _committed(voters.incoming, prs)
        if voters.outgoing:
            idx1 = _committed(voters.outgoing, prs)
            if idx1 < idx:
                return idx1
        return idx

    def visit(self, f: Callable[[int, Progress], None]) -> None:
        """Call ``f(id, progress)`` for every tracked node, ids ascending.

        Output and message order depend on this order, so it must not follow the
        dict's insertion order.
        """
        prs = self.progress
        for vid in sorted(prs):
            f(vid, prs[vid])

    def quorum_active(self) -> bool:
        """True if a quorum of voters was recently active (as CheckQuorum sees it)."""
        votes = {vid: pr.recent_active for vid, pr in self.progress.items() if not pr.is_learner}
        return self.config.voters.vote_result(votes) == VoteResult.VoteWon

    def voter_nodes(self) -> list[int]:
        """The voters of both halves, ascending."""
        return sorted(self.config.voters.ids())

    def learner_nodes(self) -> list[int]:
        """The learners, ascending."""
        return sorted(self.config.learners)

    def reset_votes(self) -> None:
        """Start a new round of vote counting."""
        self.votes = {}

    def record_vote(self, vid: int, v: bool) -> None:
        """Record node ``vid``'s vote for (True) or against us; a node's first vote stands."""
        if vid not in self.votes:
            self.votes[vid] = v

    def tally_votes(self) -> tuple[int, int, VoteResult]:
        """``(granted, rejected, result)``; the counts cover tracked voters only."""
        granted = 0
        rejected = 0
        votes = self.votes
        for vid, pr in self.progress.items():
            if pr.is_learner:
                continue
            v = votes.get(vid)
            if v is None:
                continue
            if v:
                granted += 1
            else:
                rejected += 1
        return granted, rejected, self.config.voters.vote_result(votes)
