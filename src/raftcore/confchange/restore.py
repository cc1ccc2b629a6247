"""Rebuilding a configuration from a ConfState (snapshots, restarts)."""

from __future__ import annotations

from raftcore.confchange.changer import Changer
from raftcore.raftpb.types import ConfChangeSingle, ConfChangeType, ConfState
from raftcore.tracker import ProgressMap, ProgressTracker, TrackerConfig

__all__ = ["restore", "to_conf_change_single"]

_ADD = ConfChangeType.ConfChangeAddNode
_ADD_LEARNER = ConfChangeType.ConfChangeAddLearnerNode
_REMOVE = ConfChangeType.ConfChangeRemoveNode


def to_conf_change_single(
    cs: ConfState,
) -> tuple[list[ConfChangeSingle], list[ConfChangeSingle]]:
    """The changes that rebuild ``cs`` from an empty config: ``(outgoing, incoming)``.

    ``outgoing`` adds the outgoing voters one at a time, producing the config that was
    active before the joint one. ``incoming``, applied on top of that while entering the
    joint state, removes those voters again and adds the incoming voters, the learners
    and the staged learners. Whether a learner already existed before the joint config
    cannot be told from a ConfState, and does not matter.

    For example voters=(1 2 3) learners=(5) outgoing=(1 2 4 6) learners_next=(4) gives
    outgoing: v1 v2 v4 v6, and incoming: r1 r2 r4 r6 v1 v2 v3 l5 l4.
    """
    out = [ConfChangeSingle(_ADD, vid) for vid in cs.voters_outgoing]
    inc = [ConfChangeSingle(_REMOVE, vid) for vid in cs.voters_outgoing]
    inc.extend(ConfChangeSingle(_ADD, vid) for vid in cs.voters)
    inc.extend(ConfChangeSingle(_ADD_LEARNER, vid) for vid in cs.learners)
    inc.extend(ConfChangeSingle(_ADD_LEARNER, vid) for vid in cs.learners_next)
    return out, inc


def restore(changer: Changer, cs: ConfState) -> tuple[TrackerConfig, ProgressMap]:
    """Enact ``cs`` starting from the (empty) configuration of ``changer``'s tracker.

    Returns the resulting ``(config, progress)``; raises
    :class:`~raftcore.errors.ConfChangeError` like the changer. The changer's own
    tracker is left as it was (etcd passes the changer by value); the steps run on a
    private tracker that shares only the settings.
    """
    outgoing, incoming = to_conf_change_single(cs)
    src = changer.tracker
    trk = ProgressTracker(src.max_inflight, src.max_inflight_bytes)
    trk.config = src.config
    trk.progress = src.progress
    trk.votes = src.votes
    chg = Changer(trk, changer.last_index)

    def install(result: tuple[TrackerConfig, ProgressMap]) -> None:
        trk.config, trk.progress = result

    if not outgoing:
        # Not joint: add the members one at a time.
        for cc in incoming:
            install(chg.simple([cc]))
    else:
        # Joint: first build the outgoing config as the only one, e.g. (2 3 4), then
        # enter the joint state, which moves it to the outgoing half and applies the
        # incoming changes, giving e.g. (1 2 3)&&(2 3 4).
        for cc in outgoing:
            install(chg.simple([cc]))
        install(chg.enter_joint(cs.auto_leave, incoming))
    return trk.config, trk.progress
