"""Tests for raftcore.tracker's TrackerConfig and ProgressTracker.

etcd has no tracker_test.go; these cover the behaviour the raft core and the
conformance outputs rely on (text forms, ordering, the commit fast path).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raftcore.quorum import MAX_INDEX, JointConfig, MajorityConfig, VoteResult
from raftcore.raftpb.types import ConfState
from raftcore.tracker import (
    Inflights,
    MatchAckIndexer,
    Progress,
    ProgressTracker,
    TrackerConfig,
)


def _cfg(
    inc: set[int],
    out: set[int] | None = None,
    learners: set[int] | None = None,
    learners_next: set[int] | None = None,
    auto_leave: bool = False,
) -> TrackerConfig:
    return TrackerConfig(
        JointConfig(MajorityConfig(inc), MajorityConfig(out or set())),
        auto_leave,
        set(learners or ()),
        set(learners_next or ()),
    )


def _tracker(cfg: TrackerConfig, matches: dict[int, int]) -> ProgressTracker:
    trk = ProgressTracker(10, 0)
    trk.config = cfg
    for vid, m in matches.items():
        trk.progress[vid] = Progress(
            match=m,
            next=m + 1,
            inflights=Inflights(10),
            is_learner=vid in cfg.learners,
        )
    return trk


def test_config_string() -> None:
    assert str(_cfg({1, 2, 3})) == "voters=(1 2 3)"
    assert str(TrackerConfig()) == "voters=()"
    assert str(_cfg({1}, {1}, learners={2, 3})) == "voters=(1)&&(1) learners=(2 3)"
    assert str(_cfg({3}, {1}, learners={2}, learners_next={1})) == (
        "voters=(3)&&(1) learners=(2) learners_next=(1)"
    )
    assert str(_cfg({1, 2, 3}, {1}, auto_leave=True)) == "voters=(1 2 3)&&(1) autoleave"
    assert str(_cfg({1, 2, 3}, {1, 2}, {4}, {5}, True)) == (
        "voters=(1 2 3)&&(1 2) learners=(4) learners_next=(5) autoleave"
    )
    assert str(_cfg({10, 11}, learners={12})) == "voters=(a b) learners=(c)"


def test_config_clone_is_deep() -> None:
    cfg = _cfg({1, 2}, {1}, {3}, {4}, True)
    c = cfg.clone()
    assert c == cfg
    c.voters.incoming.add(9)
    c.voters.outgoing.add(9)
    c.learners.add(9)
    c.learners_next.add(9)
    assert cfg == _cfg({1, 2}, {1}, {3}, {4}, True)
    assert isinstance(c.voters.incoming, MajorityConfig)


def test_new_tracker() -> None:
    trk = ProgressTracker(256, 1024)
    assert trk.max_inflight == 256
    assert trk.max_inflight_bytes == 1024
    assert trk.config == TrackerConfig()
    assert trk.progress == {}
    assert trk.votes == {}
    assert str(trk.progress) == ""


def test_conf_state() -> None:
    trk = _tracker(_cfg({3, 1, 2}, {4, 1}, {6, 5}, {4}, True), {})
    assert trk.conf_state() == ConfState(
        voters=[1, 2, 3],
        learners=[5, 6],
        voters_outgoing=[1, 4],
        learners_next=[4],
        auto_leave=True,
    )
    assert ProgressTracker(1, 0).conf_state() == ConfState()


def test_is_singleton() -> None:
    assert _tracker(_cfg({1}), {1: 0}).is_singleton()
    assert not _tracker(_cfg({1, 2}), {}).is_singleton()
    assert not _tracker(_cfg({1}, {2}), {}).is_singleton()
    assert not _tracker(_cfg(set()), {}).is_singleton()
    assert _tracker(_cfg({1}, learners={2}), {}).is_singleton()


def test_committed() -> None:
    assert _tracker(_cfg({1, 2, 3}), {1: 5, 2: 3, 3: 9}).committed() == 5
    assert _tracker(_cfg({1, 2, 3}), {1: 5}).committed() == 0  # others unknown
    assert _tracker(_cfg({1}), {1: 7}).committed() == 7
    assert _tracker(_cfg({1}), {}).committed() == 0
    assert _tracker(_cfg(set()), {}).committed() == MAX_INDEX
    # Joint: the smaller of the two halves' answers.
    assert _tracker(_cfg({1, 2, 3}, {3, 4, 5}), {1: 9, 2: 9, 3: 4, 4: 2, 5: 1}).committed() == 2
    # Learners do not count.
    assert _tracker(_cfg({1}, learners={2}), {1: 3, 2: 9}).committed() == 3


@settings(max_examples=500)
@given(
    inc=st.sets(st.integers(1, 12), max_size=9),
    out=st.sets(st.integers(1, 12), max_size=9),
    matches=st.dictionaries(st.integers(1, 14), st.integers(0, 30)),
)
def test_committed_fast_path_matches_quorum(
    inc: set[int], out: set[int], matches: dict[int, int]
) -> None:
    trk = _tracker(_cfg(inc, out), matches)
    assert trk.committed() == trk.config.voters.committed_index(MatchAckIndexer(trk.progress))


def _visited_ids(trk: ProgressTracker) -> list[int]:
    seen: list[int] = []
    trk.visit(lambda vid, pr: seen.append(vid))
    return seen


def test_visit_ascending() -> None:
    for n in (0, 1, 3, 7, 8, 20):
        ids = list(range(n, 0, -1))
        trk = _tracker(_cfg(set(ids)), dict.fromkeys(ids, 0))
        assert _visited_ids(trk) == sorted(ids)
    trk = _tracker(_cfg({1}), {1: 4})
    got: list[Progress] = []
    trk.visit(lambda vid, pr: got.append(pr))
    assert got == [trk.progress[1]]


def test_quorum_active() -> None:
    trk = _tracker(_cfg({1, 2, 3}, learners={4}), {1: 0, 2: 0, 3: 0, 4: 0})
    trk.progress[1].recent_active = True
    trk.progress[4].recent_active = True
    assert not trk.quorum_active()  # only one voter and a learner
    trk.progress[2].recent_active = True
    assert trk.quorum_active()
    # Joint: both halves need a quorum.
    trk = _tracker(_cfg({1, 2, 3}, {3, 4, 5}), dict.fromkeys(range(1, 6), 0))
    for vid in (1, 2):
        trk.progress[vid].recent_active = True
    assert not trk.quorum_active()
    trk.progress[4].recent_active = True
    trk.progress[5].recent_active = True
    assert trk.quorum_active()


def test_voter_and_learner_nodes() -> None:
    trk = _tracker(_cfg({3, 1}, {5, 1}, {9, 7}), {})
    assert trk.voter_nodes() == [1, 3, 5]
    assert trk.learner_nodes() == [7, 9]
    assert _tracker(_cfg({1}), {}).learner_nodes() == []


def test_votes() -> None:
    trk = _tracker(_cfg({1, 2, 3}, learners={4}), {1: 0, 2: 0, 3: 0, 4: 0})
    assert trk.tally_votes() == (0, 0, VoteResult.VotePending)
    trk.record_vote(1, True)
    trk.record_vote(1, False)  # the first vote stands
    trk.record_vote(4, True)  # a learner's vote is not counted
    trk.record_vote(9, False)  # nor an untracked node's
    assert trk.votes[1] is True
    assert trk.tally_votes() == (1, 0, VoteResult.VotePending)
    trk.record_vote(2, False)
    assert trk.tally_votes() == (1, 1, VoteResult.VotePending)
    trk.record_vote(3, True)
    assert trk.tally_votes() == (2, 1, VoteResult.VoteWon)
    trk.reset_votes()
    assert trk.votes == {}
    trk.record_vote(2, False)
    trk.record_vote(3, False)
    assert trk.tally_votes() == (0, 2, VoteResult.VoteLost)


def test_match_ack_indexer() -> None:
    trk = _tracker(_cfg({1, 2}), {1: 5})
    idx = MatchAckIndexer(trk.progress)
    assert idx.acked_index(1) == 5
    assert idx.acked_index(2) is None
