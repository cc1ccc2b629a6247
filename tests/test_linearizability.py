"""Tests for raftcore.linearizability: verdicts on hand-made histories, generated
histories (linearizable by construction, then corrupted), witness shrinking, budgets,
the JSON-lines format and the CLI."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftcore.linearizability import (
    KINDS,
    CheckResult,
    HistoryFormatError,
    Kind,
    Operation,
    Recorder,
    Verdict,
    check,
    check_key,
    format_witness,
    read_jsonl,
    write_jsonl,
)
from raftcore.linearizability.__main__ import main

# --------------------------------------------------------------------------------------
# Helpers: terse constructors for hand-made histories.


class H:
    """Builds a history: ``h.put("k", "a", 0, 1)`` adds a put called at 0, returning
    at 1 (``None``: no response). Ids count up; the client defaults to the id."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def _add(
        self,
        kind: Kind,
        key: str,
        value: str | None,
        result: str | bool | None,
        call: float,
        ret: float | None,
        expected: str | None = None,
        client: int | None = None,
    ) -> Operation:
        i = len(self.ops)
        op = Operation(
            i, i if client is None else client, kind, key, value, result, call, ret, expected
        )
        self.ops.append(op)
        return op

    def get(
        self,
        key: str,
        result: str | None,
        call: float,
        ret: float | None,
        client: int | None = None,
    ) -> Operation:
        return self._add(
            "get", key, None, result if ret is not None else None, call, ret, client=client
        )

    def put(
        self, key: str, value: str, call: float, ret: float | None, client: int | None = None
    ) -> Operation:
        return self._add("put", key, value, None, call, ret, client=client)

    def delete(self, key: str, call: float, ret: float | None) -> Operation:
        return self._add("delete", key, None, None, call, ret)

    def cas(
        self,
        key: str,
        expected: str | None,
        value: str,
        result: bool | None,
        call: float,
        ret: float | None,
    ) -> Operation:
        return self._add("cas", key, value, result, call, ret, expected)


def verdict(h: H) -> Verdict:
    return check(h.ops).verdict


def assert_witness_ok(res: CheckResult, history: list[Operation]) -> None:
    """A witness is a non-empty sub-history of one key that is illegal on its own."""
    assert res.verdict is Verdict.ILLEGAL
    assert res.witness
    assert {o.key for o in res.witness} == {res.key}
    assert set(res.witness) <= set(history)
    assert check_key(res.witness) is False


# --------------------------------------------------------------------------------------
# Hand-made histories.


def test_empty_history_is_linearizable() -> None:
    res = check([])
    assert res.verdict is Verdict.OK
    assert res.ok
    assert res.ops == 0 and res.keys == 0


def test_sequential_history() -> None:
    h = H()
    h.get("k", None, 0, 1)
    h.put("k", "a", 2, 3)
    h.get("k", "a", 4, 5)
    h.put("k", "b", 6, 7)
    h.get("k", "b", 8, 9)
    assert verdict(h) is Verdict.OK


def test_stale_read_after_completed_write() -> None:
    h = H()
    a = h.put("k", "a", 0, 1)
    b = h.put("k", "b", 2, 3)
    r = h.get("k", "a", 4, 5)
    h.get("k", "b", 6, 7)  # an innocent bystander
    h.put("other", "x", 0, 10)  # another key
    res = check(h.ops)
    assert res.verdict is Verdict.ILLEGAL
    assert res.key == "k"
    assert_witness_ok(res, h.ops)
    # The witness explains itself: the write that was read, the one that overwrote it,
    # and the stale read.
    assert sorted(o.id for o in res.witness) == sorted([a.id, b.id, r.id])


def test_read_concurrent_with_write_may_see_either_value() -> None:
    for seen in (None, "a"):
        h = H()
        h.put("k", "a", 0, 10)
        h.get("k", seen, 5, 6)
        assert verdict(h) is Verdict.OK


def test_concurrent_writes_reads_see_one_order_or_the_other() -> None:
    # Two overlapping writes; each ordering, observed consistently by two readers, is
    # fine, and so is the final value agreeing with the last write of the order.
    for first, second in (("a", "b"), ("b", "a")):
        h = H()
        h.put("k", "a", 0, 10)
        h.put("k", "b", 0, 10)
        h.get("k", first, 1, 2, client=3)
        h.get("k", second, 3, 4, client=3)
        h.get("k", first, 1, 2, client=4)
        h.get("k", second, 5, 6, client=4)
        h.get("k", second, 11, 12)
        assert verdict(h) is Verdict.OK


def test_concurrent_writes_readers_disagreeing_on_order() -> None:
    h = H()
    h.put("k", "a", 0, 10)
    h.put("k", "b", 0, 10)
    h.get("k", "a", 1, 2, client=3)
    h.get("k", "b", 3, 4, client=3)
    h.get("k", "b", 1, 2, client=4)
    h.get("k", "a", 3, 4, client=4)
    res = check(h.ops)
    assert_witness_ok(res, h.ops)


def test_final_value_must_match_last_write_of_the_order() -> None:
    h = H()
    h.put("k", "a", 0, 10)
    h.put("k", "b", 0, 10)
    h.get("k", "a", 11, 12)  # so a was last...
    h.get("k", "b", 13, 14)  # ...and then it flips back with no write
    assert_witness_ok(check(h.ops), h.ops)


def test_lost_write() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, 3)
    res = check(h.ops)
    assert_witness_ok(res, h.ops)
    assert len(res.witness) == 2


def test_lost_write_overwritten_value_returns() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    h.get("k", "b", 4, 5)
    h.get("k", "a", 6, 7)
    assert verdict(h) is Verdict.ILLEGAL


def test_indeterminate_write_seen() -> None:
    h = H()
    h.put("k", "a", 0, None)
    h.get("k", "a", 50, 51)
    assert verdict(h) is Verdict.OK


def test_indeterminate_write_not_seen() -> None:
    h = H()
    h.put("k", "a", 0, None)
    h.get("k", None, 50, 51)
    h.get("k", None, 100, 101)
    assert verdict(h) is Verdict.OK


def test_indeterminate_write_seen_late_after_being_missed() -> None:
    # It may take effect at any time after its call, including long after.
    h = H()
    h.put("k", "a", 0, None)
    h.get("k", None, 50, 51)
    h.get("k", "a", 100, 101)
    assert verdict(h) is Verdict.OK


def test_indeterminate_write_seen_then_unseen() -> None:
    h = H()
    h.put("k", "a", 0, None)
    h.get("k", "a", 50, 51)
    h.get("k", None, 100, 101)
    assert verdict(h) is Verdict.ILLEGAL


def test_indeterminate_write_seen_before_it_was_sent() -> None:
    h = H()
    h.get("k", "a", 0, 1)
    h.put("k", "a", 2, None)
    res = check(h.ops)
    assert_witness_ok(res, h.ops)
    assert [o.kind for o in res.witness] == ["get"]


def test_indeterminate_get_constrains_nothing() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, None)
    assert verdict(h) is Verdict.OK


def test_check_key_ignores_gets_without_response() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, None)
    assert check_key(h.ops) is True


def test_indeterminate_delete_seen_or_not() -> None:
    for later in (None, "a"):
        h = H()
        h.put("k", "a", 0, 1)
        h.delete("k", 2, None)
        h.get("k", later, 5, 6)
        assert verdict(h) is Verdict.OK


def test_read_of_deleted_key() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.delete("k", 2, 3)
    h.get("k", None, 4, 5)
    assert verdict(h) is Verdict.OK

    h = H()
    h.put("k", "a", 0, 1)
    h.delete("k", 2, 3)
    h.get("k", "a", 4, 5)
    res = check(h.ops)
    assert_witness_ok(res, h.ops)
    assert len(res.witness) == 3


def test_read_concurrent_with_delete() -> None:
    for seen in ("a", None):
        h = H()
        h.put("k", "a", 0, 1)
        h.delete("k", 2, 5)
        h.get("k", seen, 3, 4)
        assert verdict(h) is Verdict.OK


def test_key_never_written_reads_absent() -> None:
    h = H()
    h.get("nope", None, 0, 1)
    h.delete("nope", 2, 3)
    h.get("nope", None, 4, 5)
    assert verdict(h) is Verdict.OK


def test_cas() -> None:
    h = H()
    h.cas("k", None, "a", True, 0, 1)  # absent -> a
    h.cas("k", None, "b", False, 2, 3)  # no longer absent
    h.cas("k", "a", "b", True, 4, 5)
    h.get("k", "b", 6, 7)
    h.cas("k", "x", "y", None, 8, None)  # never matches: no effect either way
    h.get("k", "b", 10, 11)
    assert verdict(h) is Verdict.OK

    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "a", "b", False, 2, 3)  # must have swapped
    assert verdict(h) is Verdict.ILLEGAL

    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "z", "b", True, 2, 3)  # cannot have swapped
    assert verdict(h) is Verdict.ILLEGAL


def test_write_of_the_current_value_is_still_a_choice() -> None:
    # A delete of an absent key changes nothing now, but ordered after the concurrent
    # put it would erase it: the search must not linearize it eagerly like a read.
    h = H()
    h.put("k", "b", 6, 7)
    h.delete("k", 6, 6)
    h.cas("k", "b", "a", False, 9, 11)  # so the delete came second
    assert verdict(h) is Verdict.OK
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 5)
    h.put("k", "a", 2, 5)  # same value as now, but may come after the put of b
    h.get("k", "a", 6, 7)
    assert verdict(h) is Verdict.OK


def test_indeterminate_cas_may_apply() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "a", "b", None, 2, None)
    h.get("k", "b", 5, 6)
    assert verdict(h) is Verdict.OK


def test_touching_intervals_count_as_concurrent() -> None:
    # The read starts at the instant the write returns: they may be in either order.
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 1, 2)
    assert verdict(h) is Verdict.OK


def test_keys_are_independent() -> None:
    h = H()
    h.put("a", "1", 0, 1)
    h.get("b", None, 2, 3)
    h.get("a", "1", 2, 3)
    assert verdict(h) is Verdict.OK


def test_duplicate_ids_rejected() -> None:
    op = Operation(1, 0, "get", "k", None, None, 0, 1)
    with pytest.raises(ValueError, match="duplicate operation id 1"):
        check([op, op])


def test_no_shrink_reports_whole_key_history() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    h.get("k", "a", 4, 5)
    h.get("k", "b", 6, 7)
    res = check(h.ops, shrink=False)
    assert res.verdict is Verdict.ILLEGAL
    assert len(res.witness) == 4
    assert res.key_ops == 4


# --------------------------------------------------------------------------------------
# Budgets and performance.


def hard_history(n: int) -> H:
    """n concurrent writes then a read of a value nobody wrote: the search must try
    every subset of the writes before giving up."""
    h = H()
    for i in range(n):
        h.put("hard", f"v{i}", 0, 100)
    h.get("hard", "nobody", 200, 201)
    return h


def test_step_budget_gives_unknown() -> None:
    res = check(hard_history(18).ops, max_steps=2000)
    assert res.verdict is Verdict.UNKNOWN
    assert res.unknown_keys == ["hard"]
    assert res.steps <= 2000
    assert "unknown" in res.describe()


def test_time_budget_gives_unknown() -> None:
    res = check(hard_history(18).ops, timeout=0.0)
    assert res.verdict is Verdict.UNKNOWN
    assert res.unknown_keys == ["hard"]


def test_violation_on_cheap_key_beats_budget_on_hard_key() -> None:
    h = hard_history(18)
    h.put("easy", "a", 0, 1)
    h.get("easy", None, 2, 3)
    res = check(h.ops, max_steps=2000)
    assert res.verdict is Verdict.ILLEGAL
    assert res.key == "easy"
    assert res.unknown_keys == []


def test_unobserved_indeterminate_writes_do_not_blow_up() -> None:
    # 300 timed-out writes nobody reads would each stay pending to the end of the
    # history; they are dropped up front, so this stays a short search.
    h = H()
    for i in range(300):
        h.put("k", f"lost{i}", i, None)
        h.get("k", None, i + 0.5, i + 0.7)
    res = check(h.ops, max_steps=10_000)
    assert res.verdict is Verdict.OK


def generated(n_ops: int, n_keys: int, n_clients: int, seed: int) -> list[Operation]:
    """A linearizable history: clients issue requests back to back, each taking effect
    at a random instant inside its interval, applied to a dict in that order."""
    import random

    rnd = random.Random(seed)
    free = [0.0] * n_clients
    raw = []
    for i in range(n_ops):
        c = i % n_clients
        call = free[c] + rnd.random()
        point = call + 2 * rnd.random()
        ret = point + 2 * rnd.random()
        free[c] = ret
        raw.append((point, i, c, call, ret))
    raw.sort()
    model: dict[str, str] = {}
    ops = []
    for _, i, c, call, ret in raw:
        key = f"k{rnd.randrange(n_keys)}"
        kind = rnd.choice(["get", "get", "put", "delete", "cas"])
        cur = model.get(key)
        if kind == "get":
            ops.append(Operation(i, c, "get", key, None, cur, call, ret))
        elif kind == "put":
            v = f"v{rnd.randrange(4)}"
            model[key] = v
            ops.append(Operation(i, c, "put", key, v, None, call, ret))
        elif kind == "delete":
            model.pop(key, None)
            ops.append(Operation(i, c, "delete", key, None, None, call, ret))
        else:
            exp = rnd.choice([None, "v0", "v1", "v2", "v3"])
            v = f"v{rnd.randrange(4)}"
            if cur == exp:
                model[key] = v
            ops.append(Operation(i, c, "cas", key, v, cur == exp, call, ret, exp))
    return ops


def test_medium_history_is_cheap() -> None:
    ops = generated(3000, 30, 8, seed=7)
    res = check(ops)
    assert res.verdict is Verdict.OK
    # Near-linear: a few steps per operation, no blow-up.
    assert res.steps < 5 * len(ops)


def test_stale_read_in_long_single_key_history_shrinks_small() -> None:
    ops = generated(600, 1, 8, seed=3)
    # Find a read that, answered with a value the key held some time before, is
    # illegal; the shrinker must get to a handful of operations.
    for j in range(len(ops) - 1, 0, -1):
        o = ops[j]
        if o.kind != "get":
            continue
        for v in ("v0", "v1", "v2", "v3", None):
            if v == o.result:
                continue
            bad = list(ops)
            bad[j] = dataclasses.replace(o, result=v)
            res = check(bad)
            if res.verdict is Verdict.ILLEGAL:
                assert_witness_ok(res, bad)
                assert bad[j] in res.witness
                assert len(res.witness) <= 6
                return
    pytest.fail("no illegal corruption found")


# --------------------------------------------------------------------------------------
# Generated histories.

VALUES = ("a", "b", "c")


@st.composite
def linearizable_histories(draw: st.DrawFn) -> list[Operation]:
    """Operations applied one by one to a sequential dict model at instants 0, 10, 20,
    ...; each gets an interval around its instant, wide enough to overlap neighbours.
    Some writes time out: those either took effect at their instant or never did."""
    n = draw(st.integers(1, 40))
    keys = draw(
        st.lists(st.sampled_from(["x", "y", "z", "w"]), min_size=1, max_size=4, unique=True)
    )
    model: dict[str, str] = {}
    ops: list[Operation] = []
    for i in range(n):
        point = 10 * i
        call = point - draw(st.integers(0, 25))
        ret: float | None = point + draw(st.integers(0, 25))
        key = draw(st.sampled_from(keys))
        kind = draw(st.sampled_from(KINDS))
        lost = kind != "get" and draw(st.integers(0, 9)) == 0
        applies = not lost or draw(st.booleans())
        cur = model.get(key)
        value: str | None = None
        expected: str | None = None
        result: str | bool | None = None
        if kind == "get":
            result = cur
            if draw(st.integers(0, 19)) == 0:
                ret, result = None, None
        elif kind == "put":
            value = draw(st.sampled_from(VALUES))
            if applies:
                model[key] = value
        elif kind == "delete":
            if applies:
                model.pop(key, None)
        else:
            expected = draw(st.sampled_from((None, *VALUES)))
            value = draw(st.sampled_from(VALUES))
            result = cur == expected
            if result and applies:
                model[key] = value
        if lost:
            ret, result = None, None
        ops.append(Operation(i, i % 5, kind, key, value, result, call, ret, expected))
    return ops


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linearizable_histories())
def test_generated_histories_are_linearizable(ops: list[Operation]) -> None:
    res = check(ops)
    assert res.verdict is Verdict.OK, res.describe()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linearizable_histories(), st.data())
def test_corrupted_read_is_illegal(ops: list[Operation], data: st.DataObject) -> None:
    reads = [i for i, o in enumerate(ops) if o.kind == "get" and o.ret is not None]
    if not reads:
        reads = [len(ops)]
        ops = [*ops, Operation(len(ops), 0, "get", "x", None, None, 1000, 1001)]
    j = data.draw(st.sampled_from(reads))
    ops[j] = dataclasses.replace(ops[j], result="never-written")
    res = check(ops)
    assert_witness_ok(res, ops)
    # Nothing else is needed to show a read of a value nobody wrote.
    assert res.witness == [ops[j]]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linearizable_histories(), st.data())
def test_shrunk_witness_is_illegal_on_its_own(ops: list[Operation], data: st.DataObject) -> None:
    # Answer a read with some other value that exists; when that breaks the history,
    # the witness must be an illegal sub-history containing the altered read.
    reads = [i for i, o in enumerate(ops) if o.kind == "get" and o.ret is not None]
    if not reads:
        return
    j = data.draw(st.sampled_from(reads))
    other = data.draw(st.sampled_from([v for v in (None, *VALUES) if v != ops[j].result]))
    ops[j] = dataclasses.replace(ops[j], result=other)
    res = check(ops)
    if res.verdict is Verdict.ILLEGAL:
        assert_witness_ok(res, ops)
        # One-minimal: no read in it other than the altered one can go.
        for o in res.witness:
            if o.kind == "get" and o is not ops[j]:
                rest = [p for p in res.witness if p is not o]
                assert check_key(rest) is not False
    else:
        assert res.verdict is Verdict.OK


def brute_force(ops: list[Operation]) -> bool:
    """Linearizable by definition: some order of all operations that respects real time
    (an operation without response may go anywhere after its call, last meaning "never")
    under which a dict explains every result."""
    import itertools

    def end(o: Operation) -> float:
        return float("inf") if o.ret is None else o.ret

    for perm in itertools.permutations(ops):
        if any(end(b) < a.call for i, a in enumerate(perm) for b in perm[i + 1 :]):
            continue
        state: dict[str, str] = {}
        good = True
        for o in perm:
            cur = state.get(o.key)
            if o.kind == "get":
                good = o.ret is None or o.result == cur
            elif o.kind == "put":
                assert o.value is not None
                state[o.key] = o.value
            elif o.kind == "delete":
                state.pop(o.key, None)
            else:
                swapped = cur == o.expected
                good = o.result is None or o.result == swapped
                if swapped:
                    assert o.value is not None
                    state[o.key] = o.value
            if not good:
                break
        if good:
            return True
    return False


@st.composite
def arbitrary_histories(draw: st.DrawFn) -> list[Operation]:
    """Small histories with arbitrary results: mostly not linearizable."""
    ops = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(KINDS))
        key = draw(st.sampled_from(["x", "y"]))
        call = draw(st.integers(0, 10))
        ret = None if draw(st.integers(0, 5)) == 0 else call + draw(st.integers(0, 6))
        value = draw(st.sampled_from(VALUES[:2])) if kind in ("put", "cas") else None
        expected = draw(st.sampled_from((None, *VALUES[:2]))) if kind == "cas" else None
        result: str | bool | None = None
        if ret is not None and kind == "get":
            result = draw(st.sampled_from((None, *VALUES[:2])))
        elif ret is not None and kind == "cas":
            result = draw(st.booleans())
        ops.append(Operation(i, i, kind, key, value, result, call, ret, expected))
    return ops


@settings(max_examples=400, deadline=None)
@given(arbitrary_histories())
def test_agrees_with_brute_force(ops: list[Operation]) -> None:
    res = check(ops)
    assert res.ok == brute_force(ops), res.describe()
    if not res.ok:
        assert_witness_ok(res, ops)
        assert not brute_force(res.witness)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linearizable_histories(), st.data())
def test_shrinker_candidates_are_sound(ops: list[Operation], data: st.DataObject) -> None:
    # The shrinker's correctness rests on this: every candidate it would search (the
    # closure of any subset) of a linearizable history is linearizable. Otherwise a
    # witness could be an artefact of what was left out.
    from raftcore.linearizability.checker import _prepare, _Shrinker

    for key in {o.key for o in ops}:
        key_ops = _prepare([o for o in ops if o.key == key])
        shrinker = _Shrinker(key_ops, 10**6, float("inf"))
        keep = data.draw(st.lists(st.sampled_from(key_ops), unique_by=id)) if key_ops else []
        assert check_key(shrinker.close(keep)) is True


# --------------------------------------------------------------------------------------
# Reports.


def test_describe_illegal_shows_witness_and_timeline() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    h.get("k", "a", 4, 5)
    text = str(check(h.ops))
    assert text.startswith("illegal:")
    assert 'key "k": this sub-history (3 of its 3 operations) has no linearization' in text
    assert 'put("k", "a") -> ok' in text
    assert 'get("k") -> "a"' in text
    assert "|--|" in text


def test_format_witness_marks_indeterminate_and_limits_rows() -> None:
    ops = [
        Operation(0, 1, "put", "k", "a", None, 0, None),
        Operation(1, 2, "get", "k", None, "a", 1, 2),
        Operation(2, 2, "cas", "k", "b", True, 3, 4, expected="a"),
    ]
    text = format_witness(ops)
    assert "? (no response)" in text
    assert ">" in text.splitlines()[1]
    assert 'cas("k", "a" -> "b") -> swapped' in text
    short = format_witness(ops, limit=1)
    assert "... and 2 more" in short
    assert len(short.splitlines()) == 3


def test_describe_ok() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    assert str(check(h.ops)).startswith("ok: the history is linearizable (1 operation on 1 key, ")


# --------------------------------------------------------------------------------------
# Operation validation, Recorder.


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"kind": "incr"}, "'kind' must be one of"),
        ({"kind": "put", "value": None}, "put needs a string 'value'"),
        ({"value": "x"}, "get takes no 'value'"),
        ({"ret": 0.5, "call": 1}, "earlier than 'call'"),
        ({"call": float("nan")}, "'call' must be a finite number"),
        ({"id": True}, "'id' must be an integer"),
        ({"key": 3}, "'key' must be a string"),
        ({"expected": "a"}, "only cas takes 'expected'"),
        ({"kind": "cas", "value": "b", "result": None}, "completed cas needs 'result'"),
        ({"kind": "put", "value": "a", "result": "ok"}, "put 'result' must be null"),
        ({"ret": None, "result": "a"}, "'result' must be null"),
        ({"result": 3}, "get 'result' must be the string read or null"),
    ],
)
def test_operation_validation(kwargs: dict[str, object], msg: str) -> None:
    base: dict[str, object] = {
        "id": 1,
        "client": 0,
        "kind": "get",
        "key": "k",
        "value": None,
        "result": None,
        "call": 0,
        "ret": 1,
    }
    base.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        Operation(**base)  # type: ignore[arg-type]


def test_recorder() -> None:
    rec = Recorder()
    a = rec.invoke(1, "put", "k", "a")
    b = rec.invoke(2, "get", "k")
    rec.complete(a)
    rec.complete(b, "a")
    c = rec.invoke(3, "put", "k", "b")  # never answered
    d = rec.invoke(1, "cas", "k", "a", expected="a")
    rec.complete(d, True)
    assert list(rec.pending) == [c]
    ops = rec.history()
    assert [o.id for o in ops] == [a, b, c, d]
    assert ops[0].call == 1 and ops[0].ret == 3
    assert ops[2].indeterminate and not ops[0].indeterminate
    assert check(ops).verdict is Verdict.OK

    clock = iter([10.0, 20.0])
    rec2 = Recorder(clock=lambda: next(clock))
    rec2.complete(rec2.invoke(0, "delete", "k"))
    assert (rec2.history()[0].call, rec2.history()[0].ret) == (10.0, 20.0)


# --------------------------------------------------------------------------------------
# JSON lines.


def sample_history() -> list[Operation]:
    return [
        Operation(0, 1, "put", "k", "a", None, 0, 1.5),
        Operation(1, 2, "get", "k", None, "a", 2, 3),
        Operation(2, 2, "get", "absent", None, None, 2, 3),
        Operation(3, 3, "cas", "k", "b", True, 4, 5, expected="a"),
        Operation(4, 3, "cas", "k", "c", None, 6, None, expected=None),
        Operation(5, 1, "delete", "ключ", None, None, 7, None),
    ]


def test_json_round_trip(tmp_path: Path) -> None:
    ops = sample_history()
    path = tmp_path / "h.jsonl"
    write_jsonl(ops, path)
    assert read_jsonl(path) == ops
    buf = io.StringIO()
    write_jsonl(ops, buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == len(ops)
    assert json.loads(lines[3]) == {
        "id": 3,
        "client": 3,
        "kind": "cas",
        "key": "k",
        "value": "b",
        "expected": "a",
        "result": True,
        "call": 4,
        "return": 5,
    }
    assert "expected" not in json.loads(lines[0])
    assert read_jsonl(io.StringIO(buf.getvalue() + "\n\n")) == ops


@settings(max_examples=30, deadline=None)
@given(linearizable_histories())
def test_json_round_trip_generated(ops: list[Operation]) -> None:
    buf = io.StringIO()
    write_jsonl(ops, buf)
    buf.seek(0)
    assert read_jsonl(buf) == ops


GOOD = '{"id": 1, "client": 0, "kind": "get", "key": "k", "value": null, "result": null, "call": 0, "return": 1}'


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got array"),
        (
            '{"id": 1}',
            "missing field(s) 'client', 'kind', 'key', 'value', 'result', 'call', 'return'",
        ),
        (GOOD[:-1] + ', "retrun": 1}', "unknown field(s) 'retrun'"),
        (
            GOOD.replace('"call": 0', '"call": "soon"'),
            "'call' must be a finite number, got string \"soon\"",
        ),
        (GOOD.replace('"call": 0', '"call": NaN'), "NaN is not valid JSON"),
        (GOOD.replace('"return": 1', '"return": -1'), "'return' (-1) is earlier than 'call' (0)"),
        (GOOD.replace('"kind": "get"', '"kind": "cas"'), "cas needs an 'expected' field"),
        (
            GOOD.replace('"kind": "get"', '"kind": "GET"'),
            "'kind' must be one of get, put, delete, cas",
        ),
        (GOOD.replace('"id": 1', '"id": 1.5'), "'id' must be an integer, got number 1.5"),
    ],
)
def test_malformed_lines(line: str, msg: str) -> None:
    with pytest.raises(HistoryFormatError) as ei:
        read_jsonl(io.StringIO(GOOD.replace('"id": 1', '"id": 0') + "\n" + line + "\n"))
    assert ei.value.problems[0][0] == 2
    assert msg in ei.value.problems[0][1]
    assert str(ei.value).startswith("<history>:2: ")


def test_all_malformed_lines_reported_and_duplicate_ids() -> None:
    text = "\n".join([GOOD, "oops", GOOD, GOOD.replace('"key": "k"', '"key": 1')])
    with pytest.raises(HistoryFormatError) as ei:
        read_jsonl(io.StringIO(text))
    problems = ei.value.problems
    assert [n for n, _ in problems] == [2, 3, 4]
    assert problems[1][1] == "duplicate id 1 (first used on line 1)"
    assert "'key' must be a string, got number 1" in problems[2][1]


# --------------------------------------------------------------------------------------
# CLI.


def write(tmp_path: Path, ops: list[Operation]) -> str:
    path = tmp_path / "h.jsonl"
    write_jsonl(ops, path)
    return str(path)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([write(tmp_path, sample_history())]) == 0
    assert capsys.readouterr().out.startswith("ok:")

    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, 3)
    assert main([write(tmp_path, h.ops)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("illegal:") and 'get("k") -> absent' in out

    assert main([write(tmp_path, hard_history(18).ops), "--max-steps", "500"]) == 2
    assert capsys.readouterr().out.startswith("unknown:")


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    third = GOOD.replace('"id": 1', '"id": 2').replace('"result": null', '"result": 7')
    path.write_text(GOOD + "\n{\n" + third + "\n")
    assert main([str(path)]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {path}:2: invalid JSON")
    assert err[1] == (
        f"error: {path}:3: get 'result' must be the string read or null (absent), got number 7"
    )
    assert main([str(tmp_path / "missing.jsonl")]) == 3
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        main([])
    assert ei.value.code == 3


def test_cli_as_module(tmp_path: Path) -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    h.get("k", "a", 4, 5)
    proc = subprocess.run(
        [sys.executable, "-m", "raftcore.linearizability", write(tmp_path, h.ops)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "illegal" in proc.stdout
