"""Tests for raftcore.linearizability, the Wing-Gong/Lowe checker for key-value histories.

Sections: helpers; the model (Operation validation, Recorder); checker verdicts (legal,
illegal, unknown under a budget, and properties over generated histories); per-key
partitioning; indeterminate operations; witnesses and shrinking; the JSON-lines format;
the command line; performance-shaped tests.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import random
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
from raftcore.linearizability.__main__ import EXIT_BAD_INPUT, main

# ======================================================================================
# Helpers.

# --------------------------------------------------------------------------------------
# Hand-made histories.


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
    res = check(h.ops, timeout=5)
    if res.verdict is Verdict.ILLEGAL:
        # Every illegal verdict in this file must come with a witness that proves it.
        assert_witness_sound(res, h.ops)
    return res.verdict


def assert_witness_sound(res: CheckResult, history: list[Operation]) -> None:
    """A witness is a non-empty sub-history of one key, drawn unchanged from the history,
    that is illegal on its own."""
    assert res.verdict is Verdict.ILLEGAL
    assert res.key is not None
    assert res.witness, "an illegal verdict needs a non-empty witness"
    assert {o.key for o in res.witness} == {res.key}
    by_id = {o.id: o for o in history}
    assert all(by_id.get(w.id) == w for w in res.witness)
    assert set(res.witness) <= set(history)
    assert len({w.id for w in res.witness}) == len(res.witness)
    # Illegal both through the raw search and through check().
    assert check_key(res.witness) is False
    assert check(res.witness, shrink=False).verdict is Verdict.ILLEGAL


def hard_history(n: int, *, read_during: bool = False) -> H:
    """n mutually concurrent puts on key "hard" and a read of a value nobody wrote,
    either after them all or overlapping them: the search must try every subset of the
    puts (2**n states) before giving up."""
    h = H()
    for i in range(n):
        h.put("hard", f"v{i}", 0, 100)
    if read_during:
        h.get("hard", NEVER_WRITTEN, 1, 50)
    else:
        h.get("hard", NEVER_WRITTEN, 200, 201)
    return h


# --------------------------------------------------------------------------------------
# Generated histories.

KEYS = ("x", "y", "z", "w")
VALUES = ("a", "b", "c", "d")
NEVER_WRITTEN = "never-written"


@st.composite
def linearizable_histories(draw: st.DrawFn) -> list[Operation]:
    """Operations applied one by one to a sequential dict model at instants 0, 10, 20,
    ...; each gets an interval around its instant, wide enough to overlap several
    neighbours, so the instants are a linearization. Some operations of every kind never
    get a response: a write among them either took effect at its instant or never did.
    The result is shuffled: the input order must not matter to the checker."""
    n = draw(st.integers(1, 40))
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    model: dict[str, str] = {}
    ops: list[Operation] = []
    for i in range(n):
        point = 10 * i
        call = point - draw(st.integers(0, 40))
        ret: float | None = point + draw(st.integers(0, 40))
        key = draw(st.sampled_from(keys))
        kind = draw(st.sampled_from(KINDS))
        lost = draw(st.integers(0, 9)) == 0
        applies = not lost or draw(st.booleans())
        cur = model.get(key)
        value: str | None = None
        expected: str | None = None
        result: str | bool | None = None
        if kind == "get":
            result = cur
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
        client = draw(st.integers(0, 7))
        ops.append(Operation(i, client, kind, key, value, result, call, ret, expected))
    return draw(st.permutations(ops))


@st.composite
def arbitrary_histories(draw: st.DrawFn) -> list[Operation]:
    """Small histories with arbitrary results: mostly not linearizable."""
    ops = []
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(KINDS))
        key = draw(st.sampled_from(KEYS[:2]))
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


def brute_force(ops: list[Operation]) -> bool:
    """Linearizable by definition: some order of all operations that respects real time
    (an operation without response may go anywhere after its call, last meaning "never")
    under which a dict explains every result."""

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


def random_history(n_ops: int, n_keys: int, n_clients: int, seed: int) -> list[Operation]:
    """A long linearizable history: clients issue requests back to back, each taking
    effect at a random instant inside its interval, applied to a dict in that order."""
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


# --------------------------------------------------------------------------------------
# JSON lines.


def sample_history() -> list[Operation]:
    """Linearizable, and exercising every kind, indeterminate operations, a fractional
    time and non-ASCII keys and values."""
    return [
        Operation(0, 1, "put", "k", "a", None, 0, 1.5),
        Operation(1, 2, "get", "k", None, "a", 2, 3),
        Operation(2, 2, "get", "absent", None, None, 2, 3),
        Operation(3, 3, "cas", "k", "b", True, 4, 5, expected="a"),
        Operation(4, 3, "cas", "k", "c", None, 6, None, expected=None),
        Operation(5, 1, "delete", "ключ", None, None, 7, None),
        Operation(6, 4, "put", "u", "ünïcode ✓", None, 8, 9),
        Operation(7, 4, "cas", "u", "b", False, 10, 11, expected=None),
        Operation(8, 5, "cas", "u", "b", None, 10, None, expected="ünïcode ✓"),
    ]


_DROP = object()


def line(**overrides: object) -> str:
    """One JSON line: a valid put with id 0, with fields replaced (``_DROP``: removed)."""
    d: dict[str, object] = {
        "id": 0,
        "client": 0,
        "kind": "put",
        "key": "k",
        "value": "a",
        "result": None,
        "call": 0,
        "return": 1,
    }
    for k, v in overrides.items():
        if v is _DROP:
            d.pop(k)
        else:
            d[k] = v
    return json.dumps(d)


def write(tmp_path: Path, ops: list[Operation]) -> str:
    path = tmp_path / "h.jsonl"
    write_jsonl(ops, path)
    return str(path)


# ======================================================================================
# The model: Operation validation, Recorder.


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
        (
            {"kind": "cas", "value": "b", "result": None},
            "completed cas needs 'result' true or false",
        ),
        ({"kind": "put", "value": "a", "result": "ok"}, "put 'result' must be null"),
        (
            {"ret": None, "result": "a"},
            "without 'return' has no result; 'result' must be null",
        ),
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
        "expected": None,
    }
    base.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        Operation(**base)  # type: ignore[arg-type]


def test_recorder() -> None:
    rec = Recorder()
    a = rec.invoke(1, "put", "k", "a")  # t=1
    b = rec.invoke(2, "get", "k")  # t=2
    rec.complete(a)  # t=3
    c = rec.invoke(3, "put", "k", "b")  # t=4, never answered
    rec.complete(b, "a")  # t=5
    d = rec.invoke(1, "cas", "k", "a", expected="a")
    rec.complete(d, True)
    assert list(rec.pending) == [c]
    ops = rec.history()
    assert [o.id for o in ops] == [a, b, c, d]
    assert ops[0].call == 1 and ops[0].ret == 3
    assert ops[1].result == "a" and ops[1].ret == 5
    assert ops[2].indeterminate and ops[2].result is None
    assert not ops[0].indeterminate
    assert check(ops).verdict is Verdict.OK

    clock = iter([10.0, 20.0])
    rec2 = Recorder(clock=lambda: next(clock))
    rec2.complete(rec2.invoke(0, "delete", "k"))
    assert (rec2.history()[0].call, rec2.history()[0].ret) == (10.0, 20.0)


# ======================================================================================
# Checker verdicts.

# --------------------------------------------------------------------------------------
# Legal and illegal hand-made histories.


def test_empty_history_is_ok() -> None:
    res = check([])
    assert res.verdict is Verdict.OK and res.ok
    assert res.ops == 0 and res.keys == 0
    assert check_key([]) is True


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
    assert res.key_ops == 4  # the key's operations only
    assert_witness_sound(res, h.ops)
    # The witness explains itself: the write that was read, the one that overwrote it,
    # and the stale read.
    assert sorted(o.id for o in res.witness) == sorted([a.id, b.id, r.id])
    text = res.describe()
    assert text.startswith("illegal:")
    assert '"k"' in text and 'get("k") -> "a"' in text


def test_read_concurrent_with_write_may_see_old_or_new() -> None:
    for seen in (None, "a"):  # the key was absent
        h = H()
        h.put("k", "a", 0, 10)
        h.get("k", seen, 5, 6)
        assert verdict(h) is Verdict.OK, seen
    for seen in ("a", "b"):  # the key held a
        h = H()
        h.put("k", "a", 0, 1)
        h.put("k", "b", 2, 6)
        h.get("k", seen, 3, 4)
        assert verdict(h) is Verdict.OK, seen


@pytest.mark.parametrize(("first", "second"), [("a", "b"), ("b", "a")])
def test_concurrent_writes_reads_see_one_order_or_the_other(first: str, second: str) -> None:
    # Two overlapping writes; each ordering, observed consistently by two readers, is
    # fine, and so is the final value agreeing with the last write of the order.
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
    assert_witness_sound(check(h.ops), h.ops)


def test_concurrent_writes_order_cannot_flip_back() -> None:
    # Reads during the writes fix the order a-then-b; a later read of a is stale.
    h = H()
    h.put("k", "a", 0, 10)
    h.put("k", "b", 0, 10)
    h.get("k", "a", 1, 2)
    h.get("k", "b", 3, 4)
    h.get("k", "a", 11, 12)
    assert verdict(h) is Verdict.ILLEGAL


def test_final_value_must_match_last_write_of_the_order() -> None:
    h = H()
    h.put("k", "a", 0, 10)
    h.put("k", "b", 0, 10)
    h.get("k", "a", 11, 12)  # so a was last...
    h.get("k", "b", 13, 14)  # ...and then it flips back with no write
    assert_witness_sound(check(h.ops), h.ops)


def test_lost_write() -> None:
    # An acknowledged write that the next read does not see.
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, 3)
    res = check(h.ops)
    assert_witness_sound(res, h.ops)
    assert len(res.witness) == 2
    # Two writes acknowledged one after the other; every later read sees the first, as
    # if the second were lost.
    h = H()
    h.put("k", "a", 0, 2)
    h.put("k", "b", 3, 4)
    h.get("k", "a", 5, 6)
    h.get("k", "a", 7, 8)
    assert verdict(h) is Verdict.ILLEGAL


def test_lost_write_overwritten_value_returns() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    h.get("k", "b", 4, 5)
    h.get("k", "a", 6, 7)
    assert verdict(h) is Verdict.ILLEGAL


def test_reads_of_absent_keys() -> None:
    h = H()
    h.get("nope", None, 0, 1)
    h.delete("nope", 2, 3)
    h.get("nope", None, 4, 5)
    assert verdict(h) is Verdict.OK
    h = H()
    h.get("nope", "x", 0, 1)  # nobody wrote x
    assert verdict(h) is Verdict.ILLEGAL


def test_reads_of_deleted_keys() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.delete("k", 2, 3)
    h.get("k", None, 4, 5)
    h.delete("k", 6, 7)  # deleting an absent key is fine
    h.get("k", None, 8, 9)
    h.cas("k", None, "b", True, 10, 11)
    h.get("k", "b", 12, 13)
    assert verdict(h) is Verdict.OK

    h = H()
    h.put("k", "a", 0, 1)
    h.delete("k", 2, 3)
    h.get("k", "a", 4, 5)
    res = check(h.ops)
    assert_witness_sound(res, h.ops)
    assert len(res.witness) == 3


def test_read_concurrent_with_delete() -> None:
    for seen in ("a", None):
        h = H()
        h.put("k", "a", 0, 1)
        h.delete("k", 2, 5)
        h.get("k", seen, 3, 4)
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
    h.cas("k", "x", "b", False, 2, 3)  # a failed cas saw another value...
    h.cas("k", "a", "b", True, 4, 5)
    h.get("k", "b", 6, 7)
    assert verdict(h) is Verdict.OK

    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "a", "b", False, 2, 3)  # ...so with the value a it must have swapped
    assert verdict(h) is Verdict.ILLEGAL

    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "z", "b", True, 2, 3)  # cannot have swapped
    assert verdict(h) is Verdict.ILLEGAL


def test_two_successful_cas_from_absent_is_illegal() -> None:
    h = H()
    h.cas("k", None, "a", True, 0, 1)
    h.cas("k", None, "b", True, 2, 3)
    assert verdict(h) is Verdict.ILLEGAL


def test_concurrent_cas_exactly_one_wins() -> None:
    h = H()
    h.cas("k", None, "a", True, 0, 5)
    h.cas("k", None, "b", False, 0, 5)
    h.get("k", "a", 6, 7)
    assert verdict(h) is Verdict.OK
    both = H()
    both.cas("k", None, "a", True, 0, 5)
    both.cas("k", None, "b", True, 0, 5)
    assert verdict(both) is Verdict.ILLEGAL


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


def test_touching_intervals_count_as_concurrent() -> None:
    # The read starts at the instant the write returns: they may be in either order.
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 1, 2)
    assert verdict(h) is Verdict.OK


# --------------------------------------------------------------------------------------
# Unknown: the search budget.


@pytest.mark.parametrize("read_during", [False, True])
def test_step_budget_gives_unknown(read_during: bool) -> None:
    ops = hard_history(18, read_during=read_during).ops
    res = check(ops, max_steps=2000)
    assert res.verdict is Verdict.UNKNOWN
    assert res.unknown_keys == ["hard"]
    assert res.witness == [] and res.key is None
    assert res.steps == 2000  # spent exactly, never overshot
    assert res.describe().startswith("unknown:")
    assert check_key(ops, max_steps=2000) is None


def test_time_budget_gives_unknown() -> None:
    res = check(hard_history(18).ops, timeout=0.0)
    assert res.verdict is Verdict.UNKNOWN
    assert res.unknown_keys == ["hard"]
    # A real deadline is honoured on a history far beyond reach (2**30 states).
    res = check(hard_history(30, read_during=True).ops, timeout=0.2)
    assert res.verdict is Verdict.UNKNOWN
    assert res.elapsed < 3


@pytest.mark.parametrize("read_during", [False, True])
def test_small_hard_history_is_decided_illegal(read_during: bool) -> None:
    ops = hard_history(6, read_during=read_during).ops
    res = check(ops, max_steps=1_000_000)
    assert_witness_sound(res, ops)


# --------------------------------------------------------------------------------------
# Properties over generated histories.


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linearizable_histories())
def test_generated_histories_are_linearizable(ops: list[Operation]) -> None:
    res = check(ops, timeout=5)
    assert res.verdict is Verdict.OK, res.describe()


@settings(max_examples=400, deadline=None)
@given(arbitrary_histories())
def test_agrees_with_brute_force(ops: list[Operation]) -> None:
    res = check(ops)
    assert res.ok == brute_force(ops), res.describe()
    if not res.ok:
        assert_witness_sound(res, ops)
        assert not brute_force(res.witness)


# ======================================================================================
# Partitioning per key.


def test_keys_are_independent_and_the_bad_key_is_named() -> None:
    h = H()
    h.put("a", "1", 0, 1)
    h.get("b", None, 2, 3)  # a write to another key is invisible here
    h.get("a", "1", 2, 3)
    assert verdict(h) is Verdict.OK

    h = H()
    h.put("x", "1", 0, 1)
    h.put("y", "1", 0, 1)
    h.get("x", "1", 2, 3)
    h.get("y", None, 2, 3)  # y lost its write; x is fine
    res = check(h.ops)
    assert res.verdict is Verdict.ILLEGAL
    assert res.key == "y"
    assert res.keys == 2 and res.ops == 4
    assert_witness_sound(res, h.ops)


def test_violation_on_cheap_key_beats_budget_on_hard_key() -> None:
    # Keys are searched smallest first, so the cheap violation on "easy" is found even
    # though the hard key alone would exhaust the budget.
    h = hard_history(18)
    h.put("easy", "a", 0, 1)
    h.get("easy", None, 2, 3)
    res = check(h.ops, max_steps=2000)
    assert res.verdict is Verdict.ILLEGAL
    assert res.key == "easy"
    assert res.unknown_keys == []


def test_check_rejects_duplicate_ids_and_check_key_rejects_many_keys() -> None:
    a = Operation(1, 1, "put", "k", "a", None, 0, 1)
    b = Operation(1, 2, "get", "k", None, "a", 2, 3)
    with pytest.raises(ValueError, match="duplicate operation id 1"):
        check([a, b])
    with pytest.raises(ValueError, match="duplicate operation id 1"):
        check([a, a])  # even the very same operation twice
    c = Operation(2, 2, "get", "other", None, None, 2, 3)
    with pytest.raises(ValueError, match="one key"):
        check_key([a, c])


# ======================================================================================
# Indeterminate operations (no response: may take effect at any time after the call,
# or never).

_INDETERMINATE_READS = {
    "seen": (("new", "new"), Verdict.OK),
    "never-seen": (("old", "old"), Verdict.OK),
    "seen-late-after-being-missed": (("old", "new"), Verdict.OK),
    "seen-then-unseen": (("new", "old"), Verdict.ILLEGAL),
}


@pytest.mark.parametrize("prior", [None, "a"], ids=["from-absent", "from-a"])
@pytest.mark.parametrize("reads", list(_INDETERMINATE_READS))
def test_indeterminate_write(prior: str | None, reads: str) -> None:
    pattern, expect = _INDETERMINATE_READS[reads]
    h = H()
    if prior is not None:
        h.put("k", prior, 0, 1)
    h.put("k", "b", 2, None)
    for i, r in enumerate(pattern):
        h.get("k", "b" if r == "new" else prior, 50 * (i + 1), 50 * (i + 1) + 1)
    assert verdict(h) is expect


def test_indeterminate_write_seen_before_it_was_sent() -> None:
    h = H()
    h.get("k", "a", 0, 1)
    h.put("k", "a", 2, None)
    res = check(h.ops)
    assert_witness_sound(res, h.ops)
    assert [o.kind for o in res.witness] == ["get"]


def test_indeterminate_get_constrains_nothing() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, None)
    assert verdict(h) is Verdict.OK
    assert check_key(h.ops) is True  # the raw search ignores it too


def test_indeterminate_delete_seen_or_not() -> None:
    for later in (None, "a"):
        h = H()
        h.put("k", "a", 0, 1)
        h.delete("k", 2, None)
        h.get("k", later, 5, 6)
        assert verdict(h) is Verdict.OK


def test_indeterminate_cas_may_apply() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "a", "b", None, 2, None)
    h.get("k", "b", 5, 6)
    assert verdict(h) is Verdict.OK


# ======================================================================================
# Witnesses, shrinking and reports.


def test_no_shrink_reports_whole_key() -> None:
    h = H()
    for i in range(10):
        h.put("k", str(i), 2 * i, 2 * i + 1)
    h.get("k", "0", 100, 101)
    res = check(h.ops, shrink=False)
    assert res.verdict is Verdict.ILLEGAL
    assert len(res.witness) == 11
    assert res.key_ops == 11
    shrunk = check(h.ops)
    assert len(shrunk.witness) < 11
    assert_witness_sound(shrunk, h.ops)


def test_describe_illegal_shows_witness_and_timeline() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    h.get("k", "a", 4, 5)
    res = check(h.ops)
    assert res.key_ops == 3
    text = str(res)
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


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(linearizable_histories(), st.data())
def test_corrupted_read_is_illegal_and_witnessed_alone(
    ops: list[Operation], data: st.DataObject
) -> None:
    reads = [i for i, o in enumerate(ops) if o.kind == "get" and o.ret is not None]
    if not reads:
        ops = [*ops, Operation(len(ops), 0, "get", "x", None, None, 1000, 1001)]
        reads = [len(ops) - 1]
    j = data.draw(st.sampled_from(reads))
    bad = dataclasses.replace(ops[j], result=NEVER_WRITTEN)
    corrupted = [*ops[:j], bad, *ops[j + 1 :]]
    res = check(corrupted, timeout=5, shrink_timeout=5)
    assert res.verdict is Verdict.ILLEGAL, res.describe()
    assert res.key == bad.key
    assert_witness_sound(res, corrupted)
    # Nothing else is needed to show a read of a value nobody wrote.
    assert res.witness == [bad]


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
    bad = dataclasses.replace(ops[j], result=other)
    altered = [*ops[:j], bad, *ops[j + 1 :]]
    res = check(altered)
    if res.verdict is Verdict.ILLEGAL:
        assert_witness_sound(res, altered)
        # One-minimal: no read in it other than the altered one can go.
        for o in res.witness:
            if o.kind == "get" and o.id != bad.id:
                rest = [p for p in res.witness if p is not o]
                assert check_key(rest) is not False
    else:
        assert res.verdict is Verdict.OK


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


# ======================================================================================
# JSON-lines history I/O.


def test_json_round_trip(tmp_path: Path) -> None:
    ops = sample_history()
    path = tmp_path / "h.jsonl"
    write_jsonl(ops, path)
    assert read_jsonl(path) == ops
    assert read_jsonl(str(path)) == ops
    buf = io.StringIO()
    write_jsonl(ops, buf)
    assert buf.getvalue() == path.read_text(encoding="utf-8")
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
    # Fields in a fixed order; only cas has "expected".
    assert list(json.loads(lines[0])) == [
        "id",
        "client",
        "kind",
        "key",
        "value",
        "result",
        "call",
        "return",
    ]
    assert list(json.loads(lines[3])) == [
        "id",
        "client",
        "kind",
        "key",
        "value",
        "expected",
        "result",
        "call",
        "return",
    ]
    # Blank lines are skipped.
    assert read_jsonl(io.StringIO(buf.getvalue() + "\n\n")) == ops


op_strategy = st.builds(
    lambda i, c, k, key, v, e, r, call, dur, lost: Operation(
        i,
        c,
        k,
        key,
        None if k in ("get", "delete") else v,
        None if lost else (r if k == "get" else (r is not None) if k == "cas" else None),
        call,
        None if lost else call + dur,
        e if k == "cas" else None,
    ),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(min_value=0, max_value=100),
    st.sampled_from(KINDS),
    st.text(max_size=8),
    st.text(max_size=8),
    st.none() | st.text(max_size=8),
    st.none() | st.text(max_size=8),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False) | st.integers(0, 10**9),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(op_strategy, max_size=20, unique_by=lambda o: o.id))
def test_jsonl_round_trip_arbitrary_operations(ops: list[Operation]) -> None:
    buf = io.StringIO()
    write_jsonl(ops, buf)
    assert buf.getvalue().count("\n") == len(ops)
    buf.seek(0)
    assert read_jsonl(buf) == ops


@pytest.mark.parametrize(
    ("bad", "msg"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got array"),
        (
            '{"id": 1}',
            "missing field(s) 'client', 'kind', 'key', 'value', 'result', 'call', 'return'",
        ),
        (line(call=_DROP), "missing field(s) 'call'"),
        (line(retrun=1), "unknown field(s) 'retrun'"),
        (line(call="soon"), "'call' must be a finite number, got string \"soon\""),
        (line(call=float("nan")), "NaN is not valid JSON"),
        (line(**{"return": -1}), "'return' (-1) is earlier than 'call' (0)"),
        (line(kind="cas", result=True), "cas needs an 'expected' field"),
        (line(kind="GET"), "'kind' must be one of get, put, delete, cas"),
        (line(id=1.5), "'id' must be an integer, got number 1.5"),
        (line(key=7), "'key' must be a string, got number 7"),
        (line(kind="get", value=None), "duplicate id 0 (first used on line 1)"),
    ],
)
def test_read_jsonl_rejects_malformed_lines(bad: str, msg: str) -> None:
    text = line() + "\n\n" + bad + "\n"  # blank line 2 is skipped, the bad one is line 3
    with pytest.raises(HistoryFormatError) as ei:
        read_jsonl(io.StringIO(text))
    assert isinstance(ei.value, ValueError)
    assert len(ei.value.problems) == 1
    assert ei.value.problems[0][0] == 3
    assert msg in ei.value.problems[0][1]
    assert str(ei.value).startswith("<history>:3: ")
    assert msg in str(ei.value)


def test_read_jsonl_reports_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                line(id=0),
                "oops",
                line(id=2),
                line(id=0, kind="get", value=None),
                line(id=4, key=1),
                line(id=5, client="x"),
                "",
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(HistoryFormatError) as ei:
        read_jsonl(path)
    problems = ei.value.problems
    assert [n for n, _ in problems] == [2, 4, 5, 6]
    assert problems[1][1] == "duplicate id 0 (first used on line 1)"
    assert "'key' must be a string, got number 1" in problems[2][1]
    assert ei.value.source == str(path)
    assert f"{path}:2: invalid JSON" in str(ei.value)
    assert f"{path}:6: 'client' must be an integer" in str(ei.value)


# ======================================================================================
# The command line: exit status 0 ok, 1 illegal, 2 unknown, 3 bad input or arguments.


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
    # Bad input has its own status, distinct from "unknown" (2): see __main__.
    assert EXIT_BAD_INPUT == 3
    path = tmp_path / "bad.jsonl"
    third = line(id=2, kind="get", value=None, result=7)
    fourth = line(id=3, call="soon")
    path.write_text(line(id=1) + "\n{\n" + third + "\n" + fourth + "\n", encoding="utf-8")
    assert main([str(path)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err[0].startswith(f"error: {path}:2: invalid JSON")
    assert err[1] == (
        f"error: {path}:3: get 'result' must be the string read or null (absent), got number 7"
    )
    assert err[2].startswith(f"error: {path}:4: 'call' must be a finite number")

    assert main([str(tmp_path / "missing.jsonl")]) == EXIT_BAD_INPUT
    assert "cannot read" in capsys.readouterr().err

    with pytest.raises(SystemExit) as ei:
        main([])
    assert ei.value.code == EXIT_BAD_INPUT
    assert "usage:" in capsys.readouterr().err


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
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("illegal:")
    assert 'get("k") -> "a"' in proc.stdout


# ======================================================================================
# Performance-shaped tests.


def test_unobserved_indeterminate_writes_do_not_blow_up() -> None:
    # 300 timed-out writes nobody reads would each stay pending to the end of the
    # history; they are dropped up front, so this stays a short search.
    h = H()
    for i in range(300):
        h.put("k", f"lost{i}", i, None)
        h.get("k", None, i + 0.5, i + 0.7)
    res = check(h.ops, max_steps=10_000)
    assert res.verdict is Verdict.OK


def test_medium_history_is_cheap() -> None:
    ops = random_history(3000, 30, 8, seed=7)
    res = check(ops)
    assert res.verdict is Verdict.OK
    # Near-linear: a few steps per operation, no blow-up.
    assert res.steps < 5 * len(ops)


def test_stale_read_in_long_single_key_history_shrinks_small() -> None:
    ops = random_history(600, 1, 8, seed=3)
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
                assert_witness_sound(res, bad)
                assert bad[j] in res.witness
                assert len(res.witness) <= 6
                return
    pytest.fail("no illegal corruption found")
