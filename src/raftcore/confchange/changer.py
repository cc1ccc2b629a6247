"""Validated membership changes: simple (one voter at a time) and joint consensus."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from raftcore.errors import ConfChangeError
from raftcore.quorum import MajorityConfig
from raftcore.raftpb.types import ConfChangeSingle, ConfChangeType
from raftcore.tracker import Inflights, Progress, ProgressMap, ProgressTracker, TrackerConfig

__all__ = ["Changer", "describe"]

_ADD = ConfChangeType.ConfChangeAddNode
_ADD_LEARNER = ConfChangeType.ConfChangeAddLearnerNode
_REMOVE = ConfChangeType.ConfChangeRemoveNode
_UPDATE = ConfChangeType.ConfChangeUpdateNode


class Changer:
    """Computes the configuration and progress map that result from a change.

    The tracker is never modified: every method works on copies and returns
    ``(config, progress)`` for the caller to install, or raises
    :class:`~raftcore.errors.ConfChangeError` with etcd's message, so a refused change
    leaves nothing half-applied.
    """

    __slots__ = ("last_index", "tracker")

    def __init__(self, tracker: ProgressTracker, last_index: int) -> None:
        self.tracker = tracker
        # New nodes are probed from here (the leader's last index at the time).
        self.last_index = last_index

    def enter_joint(
        self, auto_leave: bool, ccs: Iterable[ConfChangeSingle] = ()
    ) -> tuple[TrackerConfig, ProgressMap]:
        """Enter a joint configuration: the current voters become the outgoing half and
        the changes are applied to the incoming half (the thesis' ``C_{new,old}``)."""
        cfg, trk = self._check_and_copy()
        voters = cfg.voters
        if voters.outgoing:
            raise ConfChangeError("config is already joint")
        if not voters.incoming:
            # An empty config may be populated (bootstrap, tests) but not made joint.
            raise ConfChangeError("can't make a zero-voter config joint")
        voters.outgoing = MajorityConfig(voters.incoming)
        self._apply(cfg, trk, ccs)
        cfg.auto_leave = auto_leave
        _check_invariants(cfg, trk)
        return cfg, trk

    def leave_joint(self) -> tuple[TrackerConfig, ProgressMap]:
        """Leave the joint configuration: the incoming half alone decides from now on
        (``C_new``), and the staged learners become learners."""
        cfg, trk = self._check_and_copy()
        voters = cfg.voters
        if not voters.outgoing:
            raise ConfChangeError("can't leave a non-joint config")
        for vid in cfg.learners_next:
            cfg.learners.add(vid)
            trk[vid].is_learner = True
        cfg.learners_next = set()
        incoming = voters.incoming
        learners = cfg.learners
        for vid in voters.outgoing:
            if vid not in incoming and vid not in learners:
                del trk[vid]
        voters.outgoing = MajorityConfig()
        cfg.auto_leave = False
        _check_invariants(cfg, trk)
        return cfg, trk

    def simple(self, ccs: Iterable[ConfChangeSingle] = ()) -> tuple[TrackerConfig, ProgressMap]:
        """Apply changes that, taken together, alter the voters by at most one node.

        Refused in a joint config, when the changes would remove every voter, or when
        more than one voter would change (that needs :meth:`enter_joint`).
        """
        cfg, trk = self._check_and_copy()
        if cfg.voters.outgoing:
            raise ConfChangeError("can't apply simple config change in joint config")
        self._apply(cfg, trk, ccs)
        if len(self.tracker.config.voters.incoming ^ cfg.voters.incoming) > 1:
            raise ConfChangeError("more than one voter changed without entering joint config")
        _check_invariants(cfg, trk)
        return cfg, trk

    def _apply(self, cfg: TrackerConfig, trk: ProgressMap, ccs: Iterable[ConfChangeSingle]) -> None:
        # Voter changes always go to the incoming half; the outgoing half, if any, keeps
        # the previous voters until the joint config is left.
        for cc in ccs:
            vid = cc.node_id
            if vid == 0:
                # etcd's server zeroes the id of a change it decided not to apply.
                continue
            t = cc.type
            if t == _ADD:
                self._make_voter(cfg, trk, vid)
            elif t == _ADD_LEARNER:
                self._make_learner(cfg, trk, vid)
            elif t == _REMOVE:
                _remove(cfg, trk, vid)
            elif t == _UPDATE:
                pass
            else:
                raise ConfChangeError(f"unexpected conf type {int(t)}")
        if not cfg.voters.incoming:
            raise ConfChangeError("removed all voters")

    def _make_voter(self, cfg: TrackerConfig, trk: ProgressMap, vid: int) -> None:
        pr = trk.get(vid)
        if pr is None:
            self._init_progress(cfg, trk, vid, is_learner=False)
            return
        pr.is_learner = False
        cfg.learners.discard(vid)
        cfg.learners_next.discard(vid)
        cfg.voters.incoming.add(vid)

    def _make_learner(self, cfg: TrackerConfig, trk: ProgressMap, vid: int) -> None:
        # A node that is still an outgoing voter cannot be a learner as well; it is
        # staged in learners_next and turns learner when the joint config is left.
        pr = trk.get(vid)
        if pr is None:
            self._init_progress(cfg, trk, vid, is_learner=True)
            return
        if pr.is_learner:
            return
        _remove(cfg, trk, vid)
        trk[vid] = pr  # keep the progress that _remove may have dropped
        if vid in cfg.voters.outgoing:
            cfg.learners_next.add(vid)
        else:
            pr.is_learner = True
            cfg.learners.add(vid)

    def _init_progress(
        self, cfg: TrackerConfig, trk: ProgressMap, vid: int, is_learner: bool
    ) -> None:
        if is_learner:
            cfg.learners.add(vid)
        else:
            cfg.voters.incoming.add(vid)
        tracker = self.tracker
        trk[vid] = Progress(
            match=0,
            # Probe from the last index (optimistic: a new node usually has nothing).
            next=max(self.last_index, 1),
            inflights=Inflights(tracker.max_inflight, tracker.max_inflight_bytes),
            is_learner=is_learner,
            # A new node counts as active, or CheckQuorum could depose the leader before
            # the node had a chance to respond.
            recent_active=True,
        )

    def _check_and_copy(self) -> tuple[TrackerConfig, ProgressMap]:
        tracker = self.tracker
        cfg = tracker.config.clone()
        # etcd's Config.Clone leaves AutoLeave out; every path sets it before returning.
        cfg.auto_leave = False
        # Only the learner flag of a copied Progress is ever changed, so a shallow copy
        # (sharing the in-flight window) is enough.
        trk = ProgressMap()
        for vid, pr in tracker.progress.items():
            trk[vid] = Progress(
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
        _check_invariants(cfg, trk)
        return cfg, trk


def _remove(cfg: TrackerConfig, trk: ProgressMap, vid: int) -> None:
    """Remove ``vid`` as a voter or learner of the incoming config."""
    if vid not in trk:
        return
    cfg.voters.incoming.discard(vid)
    cfg.learners.discard(vid)
    cfg.learners_next.discard(vid)
    # An outgoing voter still votes until the joint config is left: keep its progress.
    if vid not in cfg.voters.outgoing:
        del trk[vid]


def _check_invariants(cfg: TrackerConfig, trk: ProgressMap) -> None:
    """Raise if the config and the progress map disagree (etcd's checkInvariants).

    The empty config is allowed on purpose so that a first config can be built from it.
    Go's "must be nil" checks become "must be empty", the only distinction sets have.
    """
    voters = cfg.voters
    for ids in (voters.incoming, voters.outgoing, cfg.learners, cfg.learners_next):
        for vid in ids:
            if vid not in trk:
                raise ConfChangeError(f"no progress for {vid}")
    for vid in cfg.learners_next:
        if vid not in voters.outgoing:
            raise ConfChangeError(f"{vid} is in LearnersNext, but not Voters[1]")
        if trk[vid].is_learner:
            raise ConfChangeError(f"{vid} is in LearnersNext, but is already marked as learner")
    for vid in cfg.learners:
        if vid in voters.outgoing:
            raise ConfChangeError(f"{vid} is in Learners and Voters[1]")
        if vid in voters.incoming:
            raise ConfChangeError(f"{vid} is in Learners and Voters[0]")
        if not trk[vid].is_learner:
            raise ConfChangeError(f"{vid} is in Learners, but is not marked as learner")
    if not voters.outgoing:
        if cfg.learners_next:
            raise ConfChangeError("cfg.LearnersNext must be nil when not joint")
        if cfg.auto_leave:
            raise ConfChangeError("AutoLeave must be false when not joint")


def describe(ccs: Sequence[ConfChangeSingle]) -> str:
    """``ConfChangeAddNode(2) ConfChangeRemoveNode(3)``: the changes, for messages."""
    return " ".join([f"{ConfChangeType(cc.type).name}({cc.node_id})" for cc in ccs])
