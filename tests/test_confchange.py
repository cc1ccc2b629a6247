"""Tests for raftcore.confchange, after etcd's confchange/*_test.go."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcore.confchange import Changer, describe, restore, to_conf_change_single
from raftcore.errors import ConfChangeError
from raftcore.raftpb.types import ConfChangeSingle, ConfChangeType, ConfState
from raftcore.rafttest import confchange_runner
from raftcore.rafttest.datadriven import TestData as Directive
from raftcore.rafttest.datadriven import parse_directive, run_file
from raftcore.tracker import ProgressMap, ProgressTracker, TrackerConfig

SCRIPTS = Path(__file__).resolve().parents[2] / "shared/conformance/etcd-raft/confchange/testdata"

V = ConfChangeType.ConfChangeAddNode
L = ConfChangeType.ConfChangeAddLearnerNode
R = ConfChangeType.ConfChangeRemoveNode
U = ConfChangeType.ConfChangeUpdateNode


def _ccs(s: str) -> list[ConfChangeSingle]:
    return confchange_runner.parse_changes(s)


def _scripts() -> list[Path]:
    return sorted(SCRIPTS.glob("*.txt")) if SCRIPTS.is_dir() else []


@pytest.mark.skipif(not SCRIPTS.is_dir(), reason=f"etcd's scripts not found at {SCRIPTS}")
@pytest.mark.parametrize("path", _scripts(), ids=lambda p: p.name)
def test_datadriven(path: Path) -> None:
    res = run_file(path, confchange_runner.make_handler)
    assert res.error is None, res.error
    assert res.mismatch is None, res.mismatch.diff()
    assert res.passed == res.directives > 0


def _run(handler: Callable[[Directive], str], line: str, inp: str = "") -> str:
    cmd, args = parse_directive(line)
    return handler(Directive("t:1", cmd, args, inp, ""))


def test_runner_outputs_and_errors() -> None:
    h = confchange_runner.make_handler()
    assert _run(h, "simple", "v1 l2") == (
        "voters=(1) learners=(2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1 learner\n"
    )
    assert _run(h, "simple", "x") == "unknown token x"
    assert _run(h, "simple", "x1") == "unknown input: x1"
    assert _run(h, "simple", "vx") == 'strconv.ParseUint: parsing "x": invalid syntax'
    assert _run(h, "simple", "v-1") == 'strconv.ParseUint: parsing "-1": invalid syntax'
    assert _run(h, "simple", "v18446744073709551616") == (
        'strconv.ParseUint: parsing "18446744073709551616": value out of range'
    )
    assert _run(h, "leave-joint", "v3") == "this command takes no input\n"
    assert _run(h, "frobnicate") == "unknown command"
    # Every directive, failed or not, advances the changer's last index.
    assert _run(h, "enter-joint autoleave=true", "v3") == (
        "voters=(1 3)&&(1) learners=(2) autoleave\n"
        "1: StateProbe match=0 next=1\n"
        "2: StateProbe match=0 next=1 learner\n"
        "3: StateProbe match=0 next=8\n"
    )


def test_parse_changes() -> None:
    assert _ccs("") == []
    assert _ccs("  v1 l2 r3 u4  ") == [
        ConfChangeSingle(V, 1),
        ConfChangeSingle(L, 2),
        ConfChangeSingle(R, 3),
        ConfChangeSingle(U, 4),
    ]
    with pytest.raises(ValueError, match=r"^unknown token $"):
        _ccs("v1  v2")  # a double space makes an empty token, as in etcd
    with pytest.raises(ValueError, match=r'parsing "1\\tv2"'):
        _ccs("v1\tv2")


def _changer(last_index: int = 10, max_inflight: int = 10) -> Changer:
    return Changer(ProgressTracker(max_inflight, 0), last_index)


def _install(c: Changer, res: tuple[TrackerConfig, ProgressMap]) -> None:
    c.tracker.config, c.tracker.progress = res


def test_errors_leave_tracker_untouched() -> None:
    c = _changer()
    with pytest.raises(ConfChangeError, match=r"^can't make a zero-voter config joint$"):
        c.enter_joint(False, _ccs("v1"))
    with pytest.raises(ConfChangeError, match=r"^can't leave a non-joint config$"):
        c.leave_joint()
    with pytest.raises(ConfChangeError, match=r"^removed all voters$"):
        c.simple(_ccs("l1"))
    with pytest.raises(ConfChangeError, match=r"^more than one voter changed without entering"):
        c.simple(_ccs("v1 v2"))
    _install(c, c.simple(_ccs("v1")))
    before_cfg = c.tracker.config.clone()
    before_prs = {k: v.clone() for k, v in c.tracker.progress.items()}
    with pytest.raises(ConfChangeError, match=r"^removed all voters$"):
        c.simple(_ccs("l2 r1"))
    assert c.tracker.config == before_cfg
    assert c.tracker.progress == before_prs
    _install(c, c.enter_joint(True, _ccs("v2")))
    with pytest.raises(ConfChangeError, match=r"^config is already joint$"):
        c.enter_joint(False, [])
    with pytest.raises(
        ConfChangeError, match=r"^can't apply simple config change in joint config$"
    ):
        c.simple(_ccs("v3"))
    _install(c, c.leave_joint())
    assert str(c.tracker.config) == "voters=(1 2)"
    with pytest.raises(ConfChangeError, match=r"^unexpected conf type 7$"):
        c.simple([ConfChangeSingle(7, 5)])  # type: ignore[arg-type]


def test_changer_does_not_mutate_tracker() -> None:
    c = _changer()
    _install(c, c.simple(_ccs("v1")))
    _install(c, c.simple(_ccs("v2")))
    snapshot = (c.tracker.config.clone(), {k: v.clone() for k, v in c.tracker.progress.items()})
    cfg, trk = c.enter_joint(False, _ccs("l2 v3 r1"))
    assert str(cfg) == "voters=(3)&&(1 2) learners_next=(2)"
    assert c.tracker.config == snapshot[0]
    assert c.tracker.progress == snapshot[1]
    assert not c.tracker.progress[2].is_learner
    assert trk[1] is not c.tracker.progress[1]


def test_demotion_through_learners_next() -> None:
    c = _changer()
    for cc in ("v1", "v2", "v3"):
        _install(c, c.simple(_ccs(cc)))
    _install(c, c.enter_joint(False, _ccs("l3 v4")))
    assert str(c.tracker.config) == "voters=(1 2 4)&&(1 2 3) learners_next=(3)"
    assert not c.tracker.progress[3].is_learner
    _install(c, c.leave_joint())
    assert str(c.tracker.config) == "voters=(1 2 4) learners=(3)"
    assert c.tracker.progress[3].is_learner
    # Removed outgoing voters lose their progress on leaving.
    _install(c, c.enter_joint(True, _ccs("r2")))
    assert 2 in c.tracker.progress
    _install(c, c.leave_joint())
    assert 2 not in c.tracker.progress
    assert str(c.tracker.config) == "voters=(1 4) learners=(3)"


def test_new_progress() -> None:
    c = _changer(last_index=0, max_inflight=7)
    _cfg, trk = c.simple(_ccs("v1 l2"))
    pr = trk[1]
    assert (pr.match, pr.next, pr.recent_active, pr.is_learner) == (0, 1, True, False)
    assert pr.inflights.state()[3] == 7
    assert trk[2].is_learner
    c.last_index = 25
    _cfg2, trk2 = c.simple(_ccs("v1"))
    assert trk2[1].next == 25


def test_describe() -> None:
    assert describe(_ccs("v1 r2 l3 u4")) == (
        "ConfChangeAddNode(1) ConfChangeRemoveNode(2) ConfChangeAddLearnerNode(3) "
        "ConfChangeUpdateNode(4)"
    )
    assert describe([]) == ""


# --- etcd's TestConfChangeQuick: simple changes one at a time and a joint change (with
# either auto_leave) followed by leaving it arrive at the same config.

_types = st.sampled_from([V, R, U, L])
# ids 2..10: node 1 is left alone so that no config ever loses all its voters.
_conf_changes = st.lists(
    st.builds(ConfChangeSingle, _types, st.integers(2, 10)), min_size=1, max_size=9
)
_initial_changes = st.lists(
    st.builds(ConfChangeSingle, st.just(V), st.integers(1, 5)), min_size=1, max_size=5
).map(lambda ccs: [ConfChangeSingle(V, 1), *ccs])


def _with_simple(c: Changer, ccs: list[ConfChangeSingle]) -> None:
    for cc in ccs:
        _install(c, c.simple([cc]))


def _with_joint(c: Changer, ccs: list[ConfChangeSingle]) -> None:
    cfg, trk = c.enter_joint(False, ccs)
    cfg2a, trk2a = c.enter_joint(True, ccs)
    assert cfg2a.auto_leave
    cfg2a.auto_leave = False
    assert cfg == cfg2a
    assert trk == trk2a
    _install(c, (cfg, trk))
    cfg2b, trk2b = c.leave_joint()
    _install(c, (cfg, trk))
    cfg, trk = c.leave_joint()
    assert cfg == cfg2b
    assert trk == trk2b
    _install(c, (cfg, trk))


@settings(max_examples=1000)
@given(setup=_initial_changes, ccs=_conf_changes)
def test_quick_simple_equals_joint(
    setup: list[ConfChangeSingle], ccs: list[ConfChangeSingle]
) -> None:
    c1 = _changer()
    _with_simple(c1, setup)
    _with_simple(c1, ccs)
    c2 = _changer()
    _with_simple(c2, setup)
    _with_joint(c2, ccs)
    assert c1.tracker.config == c2.tracker.config
    assert c1.tracker.progress == c2.tracker.progress


# --- etcd's TestRestore.


def _check_restore(cs: ConfState) -> None:
    chg = _changer(last_index=10, max_inflight=20)
    cfg, trk = restore(chg, cs)
    chg.tracker.config, chg.tracker.progress = cfg, trk
    want = ConfState(
        voters=sorted(cs.voters),
        learners=sorted(cs.learners),
        voters_outgoing=sorted(cs.voters_outgoing),
        learners_next=sorted(cs.learners_next),
        auto_leave=cs.auto_leave,
    )
    got = chg.tracker.conf_state()
    assert got == want
    assert got.equivalent(cs)
    assert cs.equivalent(got)
    assert set(trk) == set(cs.voters) | set(cs.voters_outgoing) | set(cs.learners)
    for vid in cs.learners:
        assert trk[vid].is_learner
    for vid in cs.learners_next:
        assert not trk[vid].is_learner


@pytest.mark.parametrize(
    "cs",
    [
        ConfState(),
        ConfState(voters=[1, 2, 3]),
        ConfState(voters=[1, 2, 3], learners=[4, 5, 6]),
        ConfState(voters=[1, 2, 3], learners=[5], voters_outgoing=[1, 2, 4, 6], learners_next=[4]),
        ConfState(voters=[3, 1], voters_outgoing=[2], auto_leave=True),
    ],
)
def test_restore(cs: ConfState) -> None:
    _check_restore(cs)


def test_restore_leaves_changer_alone() -> None:
    chg = _changer()
    cfg, trk = restore(chg, ConfState(voters=[1, 2], voters_outgoing=[1, 3], auto_leave=True))
    assert str(cfg) == "voters=(1 2)&&(1 3) autoleave"
    assert sorted(trk) == [1, 2, 3]
    assert chg.tracker.config == TrackerConfig()
    assert chg.tracker.progress == {}


def test_restore_empty_returns_current() -> None:
    chg = _changer()
    cfg, trk = restore(chg, ConfState())
    assert cfg == TrackerConfig()
    assert trk == {}


def test_restore_invalid_conf_state() -> None:
    # A learner that is also a voter cannot be restored; the changer refuses it.
    with pytest.raises(ConfChangeError, match="removed all voters"):
        restore(_changer(), ConfState(voters=[1], learners=[1]))


def test_to_conf_change_single() -> None:
    cs = ConfState(voters=[1, 2, 3], learners=[5], voters_outgoing=[1, 2, 4, 6], learners_next=[4])
    out, inc = to_conf_change_single(cs)
    assert out == _ccs("v1 v2 v4 v6")
    assert inc == _ccs("r1 r2 r4 r6 v1 v2 v3 l5 l4")


@st.composite
def _rnd_conf_state(draw: st.DrawFn) -> ConfState:
    # etcd's generator: a valid, non-empty ConfState with disjoint voters, learners and
    # removed (outgoing-only) voters, some of which may be staged as learners.
    n_voters = draw(st.integers(1, 5))
    n_learners = draw(st.integers(0, 4))
    n_removed = draw(st.integers(0, 2))
    ids = [i + 1 for i in draw(st.permutations(range(2 * (n_voters + n_learners + n_removed))))]
    cs = ConfState(voters=ids[:n_voters])
    ids = ids[n_voters:]
    cs.learners = ids[:n_learners]
    ids = ids[n_learners:]
    n_retained = draw(st.integers(0, n_voters))
    if n_retained > 0 or n_removed > 0:
        cs.voters_outgoing = cs.voters[:n_retained] + ids[:n_removed]
    if n_removed > 0:
        cs.learners_next = ids[: draw(st.integers(0, n_removed))]
    cs.auto_leave = bool(cs.voters_outgoing) and draw(st.booleans())
    return cs


@settings(max_examples=1000)
@given(cs=_rnd_conf_state())
def test_quick_restore(cs: ConfState) -> None:
    _check_restore(cs)
