"""Tests for raftcore.tracker.Progress, after etcd's tracker/progress_test.go."""

from __future__ import annotations

import pytest

from raftcore.errors import RaftPanic
from raftcore.tracker import Inflights, Progress, ProgressMap, StateType

PROBE = StateType.StateProbe
REPLICATE = StateType.StateReplicate
SNAPSHOT = StateType.StateSnapshot


def test_state_type_names() -> None:
    assert [str(s) for s in StateType] == ["StateProbe", "StateReplicate", "StateSnapshot"]
    assert [int(s) for s in StateType] == [0, 1, 2]
    assert f"{StateType.StateReplicate}" == "StateReplicate"


def test_string() -> None:
    ins = Inflights(1, 0)
    ins.add(123, 1)
    pr = Progress(
        match=1,
        next=2,
        state=SNAPSHOT,
        pending_snapshot=123,
        recent_active=False,
        msg_app_flow_paused=True,
        is_learner=True,
        inflights=ins,
    )
    assert str(pr) == (
        "StateSnapshot match=1 next=2 learner paused pendingSnap=123 inactive inflight=1[full]"
    )


@pytest.mark.parametrize(
    ("pr", "want"),
    [
        (Progress(match=0, next=11, recent_active=True), "StateProbe match=0 next=11"),
        (
            Progress(match=0, next=11, msg_app_flow_paused=True),
            "StateProbe match=0 next=11 paused inactive",
        ),
        (
            Progress(match=0, next=9, recent_active=True, is_learner=True),
            "StateProbe match=0 next=9 learner",
        ),
        (
            Progress(match=0, next=12, state=SNAPSHOT, pending_snapshot=11, recent_active=True),
            "StateSnapshot match=0 next=12 paused pendingSnap=11",
        ),
    ],
)
def test_string_variants(pr: Progress, want: str) -> None:
    assert str(pr) == want


def test_string_replicate_full_window() -> None:
    pr = Progress(match=11, next=12, state=REPLICATE, recent_active=True, inflights=Inflights(3))
    pr.sent_entries(1, 10)
    pr.sent_entries(1, 10)
    assert str(pr) == "StateReplicate match=11 next=14 inflight=2"
    pr.sent_entries(1, 10)
    assert str(pr) == "StateReplicate match=11 next=15 paused inflight=3[full]"


def test_string_byte_limited_window() -> None:
    pr = Progress(match=1, next=2, state=REPLICATE, recent_active=True, inflights=Inflights(8, 5))
    pr.sent_entries(2, 7)
    assert str(pr) == "StateReplicate match=1 next=4 paused inflight=1[full]"


def test_progress_map_string() -> None:
    m = ProgressMap()
    m[12] = Progress(match=5, next=6, state=REPLICATE, recent_active=True)
    m[3] = Progress(match=0, next=1, is_learner=True)
    m[1] = Progress(match=5, next=6, state=REPLICATE, recent_active=True)
    assert str(m) == (
        "1: StateReplicate match=5 next=6\n"
        "3: StateProbe match=0 next=1 learner inactive\n"
        "12: StateReplicate match=5 next=6\n"
    )
    assert str(ProgressMap()) == ""


@pytest.mark.parametrize(
    ("state", "paused", "want"),
    [
        (PROBE, False, False),
        (PROBE, True, True),
        (REPLICATE, False, False),
        (REPLICATE, True, True),
        (SNAPSHOT, False, True),
        (SNAPSHOT, True, True),
    ],
)
def test_is_paused(state: StateType, paused: bool, want: bool) -> None:
    pr = Progress(state=state, msg_app_flow_paused=paused, inflights=Inflights(256, 0))
    assert pr.is_paused() == want


def test_resume() -> None:
    # maybe_decr_to and maybe_update both clear the pause.
    pr = Progress(next=2, msg_app_flow_paused=True)
    pr.maybe_decr_to(1, 1)
    assert not pr.msg_app_flow_paused
    pr.msg_app_flow_paused = True
    pr.maybe_update(2)
    assert not pr.msg_app_flow_paused


@pytest.mark.parametrize(
    ("pr", "wnext"),
    [
        (Progress(state=REPLICATE, match=1, next=5, inflights=Inflights(256, 0)), 2),
        # snapshot finished
        (
            Progress(
                state=SNAPSHOT, match=1, next=5, pending_snapshot=10, inflights=Inflights(256, 0)
            ),
            11,
        ),
        # snapshot failed
        (
            Progress(
                state=SNAPSHOT, match=1, next=5, pending_snapshot=0, inflights=Inflights(256, 0)
            ),
            2,
        ),
    ],
)
def test_become_probe(pr: Progress, wnext: int) -> None:
    pr.become_probe()
    assert pr.state == PROBE
    assert pr.match == 1
    assert pr.next == wnext


def test_become_probe_resets_state_and_lowers_sent_commit() -> None:
    inf = Inflights(4)
    inf.add(7, 1)
    pr = Progress(
        state=REPLICATE,
        match=3,
        next=8,
        sent_commit=7,
        msg_app_flow_paused=True,
        inflights=inf,
    )
    pr.become_probe()
    assert pr.next == 4
    assert pr.sent_commit == 3
    assert not pr.msg_app_flow_paused
    assert pr.inflights.count() == 0


def test_become_replicate() -> None:
    pr = Progress(state=PROBE, match=1, next=5, inflights=Inflights(256, 0))
    pr.become_replicate()
    assert pr.state == REPLICATE
    assert pr.match == 1
    assert pr.next == pr.match + 1


def test_become_snapshot() -> None:
    pr = Progress(state=PROBE, match=1, next=5, inflights=Inflights(256, 0))
    pr.become_snapshot(10)
    assert pr.state == SNAPSHOT
    assert pr.match == 1
    assert pr.pending_snapshot == 10
    assert pr.next == 11
    assert pr.sent_commit == 10


@pytest.mark.parametrize(
    ("update", "wm", "wn", "wok"),
    [
        (2, 3, 5, False),  # do not decrease match, next
        (3, 3, 5, False),  # do not decrease next
        (4, 4, 5, True),  # increase match, do not decrease next
        (5, 5, 6, True),  # increase match, next
    ],
)
def test_update(update: int, wm: int, wn: int, wok: bool) -> None:
    pr = Progress(match=3, next=5)
    assert pr.maybe_update(update) == wok
    assert pr.match == wm
    assert pr.next == wn


@pytest.mark.parametrize(
    ("state", "m", "n", "rejected", "last", "w", "wn"),
    [
        # replicate: a rejection at or below match is stale
        (REPLICATE, 5, 10, 5, 5, False, 10),
        (REPLICATE, 5, 10, 4, 4, False, 10),
        # replicate: otherwise straight back to match+1
        (REPLICATE, 5, 10, 9, 9, True, 6),
        # probe: a rejection of anything but next-1 is stale
        (PROBE, 0, 0, 0, 0, False, 0),
        (PROBE, 0, 10, 5, 5, False, 10),
        # probe: next goes down by one
        (PROBE, 0, 10, 9, 9, True, 9),
        (PROBE, 0, 2, 1, 1, True, 1),
        # probe: never below 1
        (PROBE, 0, 1, 0, 0, True, 1),
        # probe: down to min(rejected, hint+1)
        (PROBE, 0, 10, 9, 2, True, 3),
        (PROBE, 0, 10, 9, 0, True, 1),
    ],
)
def test_maybe_decr(
    state: StateType, m: int, n: int, rejected: int, last: int, w: bool, wn: int
) -> None:
    pr = Progress(state=state, match=m, next=n)
    assert pr.maybe_decr_to(rejected, last) == w
    assert pr.match == m
    assert pr.next == wn


def test_maybe_decr_lowers_sent_commit() -> None:
    pr = Progress(state=REPLICATE, match=5, next=10, sent_commit=9)
    assert pr.maybe_decr_to(9, 9)
    assert pr.sent_commit == 5
    pr = Progress(state=PROBE, match=0, next=10, sent_commit=9, msg_app_flow_paused=True)
    assert pr.maybe_decr_to(9, 2)
    assert pr.sent_commit == 2
    assert not pr.msg_app_flow_paused


def test_sent_entries() -> None:
    pr = Progress(state=PROBE, match=0, next=5, inflights=Inflights(2))
    pr.sent_entries(0, 0)
    assert not pr.msg_app_flow_paused  # an empty probe does not pause
    pr.sent_entries(3, 30)
    assert pr.msg_app_flow_paused
    assert pr.next == 5  # probing does not advance next
    pr.become_replicate()
    pr.sent_entries(2, 20)
    assert (pr.next, pr.inflights.count(), pr.msg_app_flow_paused) == (3, 1, False)
    pr.sent_entries(0, 0)
    assert not pr.msg_app_flow_paused
    pr.sent_entries(1, 10)
    assert (pr.next, pr.inflights.count(), pr.msg_app_flow_paused) == (4, 2, True)
    pr.become_snapshot(9)
    with pytest.raises(RaftPanic, match="sending append in unhandled state StateSnapshot"):
        pr.sent_entries(1, 1)


@pytest.mark.parametrize(
    ("sent_commit", "next_", "index", "want"),
    [
        (0, 5, 3, True),
        (3, 5, 3, False),  # nothing new to send
        (4, 5, 6, False),  # already sent a commit covering next-1
        (2, 5, 6, True),
        (0, 1, 1, False),
    ],
)
def test_can_bump_commit(sent_commit: int, next_: int, index: int, want: bool) -> None:
    pr = Progress(sent_commit=sent_commit, next=next_)
    assert pr.can_bump_commit(index) == want
    pr.set_sent_commit(index)
    assert pr.sent_commit == index


def test_clone_has_own_window() -> None:
    pr = Progress(state=REPLICATE, match=1, next=2, inflights=Inflights(4))
    c = pr.clone()
    assert c == pr
    c.sent_entries(1, 1)
    assert pr.inflights.count() == 0
    assert c.inflights.count() == 1
