"""Tests for raftcore.quorum, after etcd's quorum/*_test.go (plus the datadriven files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcore.quorum import (
    MAX_INDEX,
    JointConfig,
    MajorityConfig,
    MapAckIndexer,
    VoteResult,
    index_str,
)
from raftcore.rafttest import quorum_runner
from raftcore.rafttest.datadriven import TestData as Directive
from raftcore.rafttest.datadriven import parse_directive, run_file

SCRIPTS = Path(__file__).resolve().parents[2] / "shared/conformance/etcd-raft/quorum/testdata"


def _scripts() -> list[Path]:
    return sorted(SCRIPTS.glob("*.txt")) if SCRIPTS.is_dir() else []


@pytest.mark.skipif(not SCRIPTS.is_dir(), reason=f"etcd's scripts not found at {SCRIPTS}")
@pytest.mark.parametrize("path", _scripts(), ids=lambda p: p.name)
def test_datadriven(path: Path) -> None:
    res = run_file(path, quorum_runner.make_handler)
    assert res.error is None, res.error
    assert res.mismatch is None, res.mismatch.diff()
    assert res.passed == res.directives > 0


def test_datadriven_scripts_present() -> None:
    if SCRIPTS.is_dir():
        assert [p.name for p in _scripts()] == [
            "joint_commit.txt",
            "joint_vote.txt",
            "majority_commit.txt",
            "majority_vote.txt",
        ]
    else:
        pytest.skip(f"etcd's scripts not found at {SCRIPTS}")


@pytest.mark.parametrize(
    ("indexes", "expected"),
    [
        pytest.param(
            {1: 101, 2: 102, 3: 103},
            "       idx\n>      101    (id=1)\nx>     102    (id=2)\nxx>    103    (id=3)\n",
            id="different commit index for each voter",
        ),
        pytest.param(
            {1: 100, 2: 100, 3: 100},
            "       idx\n>      100    (id=1)\n>      100    (id=2)\n>      100    (id=3)\n",
            id="same commit index for all voters",
        ),
        pytest.param(
            {1: 100, 2: 102, 3: 102},
            "       idx\n>      100    (id=1)\nx>     102    (id=2)\nx>     102    (id=3)\n",
            id="same commit index for part of the voters",
        ),
        pytest.param(
            {1: 101, 3: 103},
            "       idx\nx>     101    (id=1)\n?        0    (id=2)\nxx>    103    (id=3)\n",
            id="missing some commit indexes",
        ),
    ],
)
def test_describe(indexes: dict[int, int], expected: str) -> None:
    assert MajorityConfig({1, 2, 3}).describe(MapAckIndexer(indexes)) == expected


def test_describe_empty_and_hex_ids() -> None:
    assert MajorityConfig().describe(MapAckIndexer()) == "<empty majority quorum>"
    out = MajorityConfig({10, 255}).describe(MapAckIndexer({10: 7}))
    assert out == "      idx\nx>      7    (id=a)\n?       0    (id=ff)\n"
    assert JointConfig(MajorityConfig({1}), MajorityConfig({2})).describe(
        MapAckIndexer({1: 5, 2: 6})
    ) == MajorityConfig({1, 2}).describe(MapAckIndexer({1: 5, 2: 6}))


def test_strings() -> None:
    assert str(MajorityConfig()) == "()"
    assert str(MajorityConfig({3, 1, 10, 2})) == "(1 2 3 a)"
    assert MajorityConfig({3, 1, 2}).slice() == [1, 2, 3]
    assert str(JointConfig(MajorityConfig({2, 3, 4}), MajorityConfig({1, 2, 3}))) == (
        "(2 3 4)&&(1 2 3)"
    )
    assert str(JointConfig(MajorityConfig({1}))) == "(1)"
    assert str(JointConfig()) == "()"
    assert [str(r) for r in VoteResult] == ["VotePending", "VoteLost", "VoteWon"]
    assert f"{VoteResult.VoteWon}" == "VoteWon"
    assert [int(r) for r in VoteResult] == [1, 2, 3]
    assert index_str(MAX_INDEX) == "∞"
    assert index_str(12) == "12"


def test_joint_ids() -> None:
    j = JointConfig(MajorityConfig({1, 2}), MajorityConfig({2, 3}))
    ids = j.ids()
    assert ids == {1, 2, 3}
    ids.add(9)  # a fresh set: the config is untouched
    assert j.ids() == {1, 2, 3}


@pytest.mark.parametrize(
    ("voters", "acked", "want"),
    [
        (set(), {}, MAX_INDEX),
        ({1}, {}, 0),
        ({1}, {1: 5}, 5),
        ({1, 2}, {1: 5, 2: 7}, 5),
        ({1, 2, 3}, {1: 12, 2: 5}, 5),
        ({1, 2, 3}, {1: 12}, 0),
        ({1, 2, 3, 4}, {1: 9, 2: 8, 3: 7, 4: 6}, 7),
        ({1, 2, 3, 4, 5}, {1: 9, 2: 8, 3: 7, 4: 6, 5: 5}, 7),
        (set(range(1, 10)), {i: i for i in range(1, 10)}, 5),
        ({1, 2, 3}, {1: 3, 4: 100, 5: 100}, 0),  # acks of non-members do not count
    ],
)
def test_committed_index(voters: set[int], acked: dict[int, int], want: int) -> None:
    assert MajorityConfig(voters).committed_index(MapAckIndexer(acked)) == want


def test_joint_committed_index() -> None:
    l = MapAckIndexer({1: 10, 2: 20, 3: 30, 4: 40})  # noqa: E741
    inc = MajorityConfig({1, 2, 3})
    out = MajorityConfig({2, 3, 4})
    assert JointConfig(inc, out).committed_index(l) == 20
    assert JointConfig(out, inc).committed_index(l) == 20
    assert JointConfig(inc).committed_index(l) == inc.committed_index(l)
    assert JointConfig(MajorityConfig({4}), inc).committed_index(l) == 20
    assert JointConfig().committed_index(l) == MAX_INDEX


@pytest.mark.parametrize(
    ("voters", "votes", "want"),
    [
        (set(), {}, VoteResult.VoteWon),
        ({1}, {}, VoteResult.VotePending),
        ({1}, {1: True}, VoteResult.VoteWon),
        ({1}, {1: False}, VoteResult.VoteLost),
        ({1, 2}, {1: True}, VoteResult.VotePending),
        ({1, 2}, {1: True, 2: False}, VoteResult.VoteLost),
        ({1, 2, 3}, {1: True, 2: False}, VoteResult.VotePending),
        ({1, 2, 3}, {1: True, 2: True}, VoteResult.VoteWon),
        ({1, 2, 3}, {1: False, 2: False}, VoteResult.VoteLost),
        ({1, 2, 3}, {4: True, 5: True}, VoteResult.VotePending),
    ],
)
def test_vote_result(voters: set[int], votes: dict[int, bool], want: VoteResult) -> None:
    assert MajorityConfig(voters).vote_result(votes) == want


@pytest.mark.parametrize(
    ("r1_votes", "want"),
    [
        ({1: True, 2: True, 3: True, 4: True}, VoteResult.VoteWon),
        ({1: True, 2: True}, VoteResult.VotePending),  # incoming won, outgoing pending
        ({1: False, 2: False, 3: True, 4: True}, VoteResult.VoteLost),
        ({3: False, 4: False}, VoteResult.VoteLost),  # outgoing lost, incoming pending
        ({}, VoteResult.VotePending),
    ],
)
def test_joint_vote_result(r1_votes: dict[int, bool], want: VoteResult) -> None:
    j = JointConfig(MajorityConfig({1, 2, 3}), MajorityConfig({2, 3, 4}))
    assert j.vote_result(r1_votes) == want
    assert JointConfig(j.outgoing, j.incoming).vote_result(r1_votes) == want


# The generators of etcd's quick test: up to 9 distinct ids drawn from [0, 2n) with
# indexes in [0, n).
@st.composite
def _small_idx_map(draw: st.DrawFn) -> dict[int, int]:
    n = draw(st.integers(0, 9))
    ids = draw(st.permutations(range(2 * n)))[:n]
    return {i: draw(st.integers(0, max(n - 1, 0))) for i in ids}


@settings(max_examples=2000)
@given(members=_small_idx_map(), l=_small_idx_map())
def test_quick_committed_index_matches_alternative(
    members: dict[int, int],
    l: dict[int, int],  # noqa: E741
) -> None:
    c = MajorityConfig(members)
    idx = MapAckIndexer(l)
    assert c.committed_index(idx) == quorum_runner.alternative_majority_committed_index(c, idx)


@settings(max_examples=500)
@given(
    inc=st.sets(st.integers(1, 8), max_size=6),
    out=st.sets(st.integers(1, 8), max_size=6),
    acked=st.dictionaries(st.integers(1, 8), st.integers(0, 20)),
    votes=st.dictionaries(st.integers(1, 8), st.booleans()),
)
def test_quick_joint_symmetric_and_neutral_empty_half(
    inc: set[int], out: set[int], acked: dict[int, int], votes: dict[int, bool]
) -> None:
    l = MapAckIndexer(acked)  # noqa: E741
    a, b = MajorityConfig(inc), MajorityConfig(out)
    assert JointConfig(a, b).committed_index(l) == JointConfig(b, a).committed_index(l)
    assert JointConfig(a, b).vote_result(votes) == JointConfig(b, a).vote_result(votes)
    assert JointConfig(a).committed_index(l) == a.committed_index(l)
    assert JointConfig(a, a).committed_index(l) == a.committed_index(l)
    assert JointConfig(a).vote_result(votes) == a.vote_result(votes)


def test_runner_mismatched_input_error() -> None:
    cmd, args = parse_directive("committed cfg=(1,2) idx=(12)")
    out = quorum_runner.make_handler()(Directive("x:1", cmd, args, "", ""))
    assert out == "error: mismatched input (explicit or _) for voters map[1:{} 2:{}]: [12]"
