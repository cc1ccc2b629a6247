"""Tests for raftcore.linearizability: the checker's verdicts on hand-made and generated
histories, witness soundness, the search budget, the JSON-lines format and the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftcore.linearizability import (
    HistoryFormatError,
    Kind,
    Operation,
    Recorder,
    Verdict,
    check,
    check_key,
    read_jsonl,
    write_jsonl,
)
from raftcore.linearizability.__main__ import EXIT_BAD_INPUT

# --------------------------------------------------------------------------------------
# Builders: hand-made histories read better as one call per operation.


class H:
    """Accumulates operations with automatic ids; times are given explicitly."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def _add(
        self,
        kind: Kind,
        key: str,
        call: float,
        ret: float | None,
        *,
        value: str | None = None,
        result: str | bool | None = None,
        expected: str | None = None,
        client: int | None = None,
    ) -> Operation:
        op = Operation(
            id=len(self.ops),
            client=len(self.ops) if client is None else client,
            kind=kind,
            key=key,
            value=value,
            result=result,
            call=call,
            ret=ret,
            expected=expected,
        )
        self.ops.append(op)
        return op

    def put(self, key: str, value: str, call: float, ret: float | None) -> Operation:
        return self._add("put", key, call, ret, value=value)

    def get(self, key: str, result: str | None, call: float, ret: float | None) -> Operation:
        return self._add("get", key, call, ret, result=result)

    def delete(self, key: str, call: float, ret: float | None) -> Operation:
        return self._add("delete", key, call, ret)

    def cas(
        self,
        key: str,
        expected: str | None,
        value: str,
        result: bool | None,
        call: float,
        ret: float | None,
    ) -> Operation:
        return self._add("cas", key, call, ret, value=value, expected=expected, result=result)


def verdict(h: H) -> Verdict:
    res = check(h.ops, timeout=5)
    if res.verdict is Verdict.ILLEGAL:
        # Every illegal verdict in this file must come with a witness that proves it.
        assert_witness_sound(h.ops, res.key, res.witness)
    return res.verdict


def assert_witness_sound(ops: list[Operation], key: str | None, witness: list[Operation]) -> None:
    assert key is not None
    assert witness, "an illegal verdict needs a non-empty witness"
    assert all(w.key == key for w in witness)
    # The witness is drawn from the history itself, unchanged.
    by_id = {o.id: o for o in ops}
    assert all(by_id[w.id] == w for w in witness)
    assert len({w.id for w in witness}) == len(witness)
    # And it is illegal on its own, both through the raw search and through check().
    assert check_key(witness) is False
    assert check(witness, shrink=False).verdict is Verdict.ILLEGAL


# --------------------------------------------------------------------------------------
# Hand-made histories.


def test_empty_history_is_ok() -> None:
    res = check([])
    assert res.verdict is Verdict.OK and res.ok
    assert res.ops == 0 and res.keys == 0
    assert check_key([]) is True


def test_sequential_put_get_is_ok() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", "a", 2, 3)
    h.put("k", "b", 4, 5)
    h.get("k", "b", 6, 7)
    assert verdict(h) is Verdict.OK


def test_stale_read_after_completed_write_is_illegal() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    stale = h.get("k", "a", 4, 5)
    res = check(h.ops)
    assert res.verdict is Verdict.ILLEGAL
    assert res.key == "k"
    assert res.key_ops == 3
    assert stale in res.witness
    assert_witness_sound(h.ops, res.key, res.witness)
    text = res.describe()
    assert text.startswith("illegal:")
    assert '"k"' in text and 'get("k") -> "a"' in text


def test_read_concurrent_with_write_may_see_old_or_new() -> None:
    for seen in ("a", "b"):
        h = H()
        h.put("k", "a", 0, 1)
        h.put("k", "b", 2, 6)
        h.get("k", seen, 3, 4)
        assert verdict(h) is Verdict.OK, seen


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_concurrent_writes_reads_may_see_either_order(order: tuple[str, str]) -> None:
    first, second = order
    h = H()
    h.put("k", "a", 0, 10)
    h.put("k", "b", 0, 10)
    h.get("k", first, 1, 2)
    h.get("k", second, 3, 4)
    h.get("k", second, 11, 12)
    assert verdict(h) is Verdict.OK


def test_concurrent_writes_order_cannot_flip_back() -> None:
    # Reads during the writes fix the order a-then-b; a later read of a is stale.
    h = H()
    h.put("k", "a", 0, 10)
    h.put("k", "b", 0, 10)
    h.get("k", "a", 1, 2)
    h.get("k", "b", 3, 4)
    h.get("k", "a", 11, 12)
    assert verdict(h) is Verdict.ILLEGAL


def test_lost_acknowledged_write_is_illegal() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, 3)  # the acknowledged write vanished
    assert verdict(h) is Verdict.ILLEGAL


def test_lost_write_among_clients_is_illegal() -> None:
    # Two writes both acknowledged; every later read sees the first, as if the second
    # (which completed after the first started) were lost.
    h = H()
    h.put("k", "a", 0, 2)
    h.put("k", "b", 3, 4)
    h.get("k", "a", 5, 6)
    h.get("k", "a", 7, 8)
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


def test_failed_cas_must_see_other_value() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "a", "b", False, 2, 3)  # the value was a: it must have swapped
    assert verdict(h) is Verdict.ILLEGAL
    ok = H()
    ok.put("k", "a", 0, 1)
    ok.cas("k", "x", "b", False, 2, 3)
    ok.cas("k", "a", "b", True, 4, 5)
    ok.get("k", "b", 6, 7)
    assert verdict(ok) is Verdict.OK


@pytest.mark.parametrize("seen", [True, False])
def test_indeterminate_write_seen_or_not_is_ok(seen: bool) -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, None)  # timed out: may or may not have happened
    h.get("k", "b" if seen else "a", 5, 6)
    h.get("k", "b" if seen else "a", 7, 8)
    assert verdict(h) is Verdict.OK


def test_indeterminate_write_once_seen_cannot_be_unseen() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, None)
    h.get("k", "b", 5, 6)
    h.get("k", "a", 7, 8)
    assert verdict(h) is Verdict.ILLEGAL


def test_indeterminate_write_cannot_be_seen_before_its_call() -> None:
    h = H()
    h.get("k", "a", 0, 1)
    h.put("k", "a", 2, None)
    assert verdict(h) is Verdict.ILLEGAL


def test_indeterminate_cas_and_delete() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.cas("k", "a", "b", None, 2, None)
    h.get("k", "b", 3, 4)
    assert verdict(h) is Verdict.OK
    h = H()
    h.put("k", "a", 0, 1)
    h.delete("k", 2, None)
    h.get("k", None, 3, 4)
    assert verdict(h) is Verdict.OK
    h = H()
    h.put("k", "a", 0, 1)
    h.delete("k", 2, None)
    h.get("k", "a", 3, 4)
    assert verdict(h) is Verdict.OK


def test_indeterminate_get_constrains_nothing() -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 2, None)
    assert verdict(h) is Verdict.OK


def test_reads_of_absent_keys() -> None:
    h = H()
    h.get("never", None, 0, 1)
    assert verdict(h) is Verdict.OK
    h = H()
    h.get("never", "x", 0, 1)  # nobody wrote x
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
    assert verdict(h) is Verdict.ILLEGAL


def test_touching_intervals_count_as_concurrent() -> None:
    # The get's call shares the put's return timestamp: the two may be in either order.
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", None, 1, 2)
    assert verdict(h) is Verdict.OK


def test_keys_are_independent_and_the_bad_key_is_named() -> None:
    h = H()
    h.put("x", "1", 0, 1)
    h.put("y", "1", 0, 1)
    h.get("x", "1", 2, 3)
    h.get("y", None, 2, 3)  # y lost its write; x is fine
    res = check(h.ops)
    assert res.verdict is Verdict.ILLEGAL
    assert res.key == "y"
    assert res.keys == 2 and res.ops == 4
    assert_witness_sound(h.ops, res.key, res.witness)


def test_no_shrink_reports_whole_key() -> None:
    h = H()
    for i in range(10):
        h.put("k", str(i), 2 * i, 2 * i + 1)
    h.get("k", "0", 100, 101)
    res = check(h.ops, shrink=False)
    assert res.verdict is Verdict.ILLEGAL
    assert len(res.witness) == 11
    shrunk = check(h.ops)
    assert shrunk.verdict is Verdict.ILLEGAL
    assert len(shrunk.witness) < 11
    assert_witness_sound(h.ops, shrunk.key, shrunk.witness)


def test_check_rejects_duplicate_ids_and_check_key_rejects_many_keys() -> None:
    a = Operation(1, 1, "put", "k", "a", None, 0, 1)
    b = Operation(1, 2, "get", "k", None, "a", 2, 3)
    with pytest.raises(ValueError, match="duplicate operation id 1"):
        check([a, b])
    c = Operation(2, 2, "get", "other", None, None, 2, 3)
    with pytest.raises(ValueError, match="one key"):
        check_key([a, c])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "nope"}, "'kind'"),
        ({"kind": "put", "value": None}, "needs a string 'value'"),
        ({"kind": "get", "value": "v"}, "takes no 'value'"),
        ({"call": 5.0, "ret": 4.0}, "earlier than 'call'"),
        ({"call": float("nan")}, "'call' must be a finite number"),
        ({"ret": None, "result": "a"}, "without 'return'"),
        ({"kind": "cas", "value": "v", "result": None}, "true or false"),
        ({"expected": "x"}, "only cas takes 'expected'"),
        ({"id": True}, "'id' must be an integer"),
    ],
)
def test_operation_validates_fields(kwargs: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {
        "id": 0,
        "client": 0,
        "kind": "get",
        "key": "k",
        "value": None,
        "result": None,
        "call": 0.0,
        "ret": 1.0,
        "expected": None,
    }
    fields.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Operation(**fields)  # type: ignore[arg-type]


def test_recorder_builds_history_with_indeterminate_pending() -> None:
    r = Recorder()
    w = r.invoke(1, "put", "k", "a")
    g = r.invoke(2, "get", "k")
    r.complete(w)
    pending = r.invoke(3, "put", "k", "b")
    r.complete(g, "a")
    assert list(r.pending) == [pending]
    hist = r.history()
    assert [o.id for o in hist] == [w, g, pending]
    assert hist[0].call == 1 and hist[0].ret == 3
    assert hist[1].result == "a" and hist[1].ret == 5
    assert hist[2].indeterminate and hist[2].result is None
    assert check(hist).verdict is Verdict.OK


# --------------------------------------------------------------------------------------
# Generated histories: run a sequential KV model at distinct linearization points, then
# widen each point into a random interval around it. Such a history is linearizable by
# construction (the points are a linearization).

KEYS = ("a", "b", "c")
VALUES = ("v0", "v1", "v2", "v3")
NEVER_WRITTEN = "never-written"


@st.composite
def linearizable_histories(draw: st.DrawFn) -> list[Operation]:
    n = draw(st.integers(min_value=1, max_value=40))
    state: dict[str, str] = {}
    ops: list[Operation] = []
    for i in range(n):
        point = 10.0 * i
        key = draw(st.sampled_from(KEYS))
        kind: Kind = draw(st.sampled_from(("get", "put", "delete", "cas")))
        call = point - draw(st.integers(min_value=0, max_value=40))
        # A few operations never get a response; whether they took effect is drawn.
        lost = draw(st.integers(min_value=0, max_value=9)) == 0
        takes_effect = not lost or draw(st.booleans())
        ret = None if lost else point + draw(st.integers(min_value=0, max_value=40))
        value: str | None = None
        expected: str | None = None
        result: str | bool | None = None
        cur = state.get(key)
        if kind == "get":
            result = cur
        elif kind == "put":
            value = draw(st.sampled_from(VALUES))
            if takes_effect:
                state[key] = value
        elif kind == "delete":
            if takes_effect:
                state.pop(key, None)
        else:
            value = draw(st.sampled_from(VALUES))
            expected = draw(st.sampled_from((None, *VALUES)))
            result = cur == expected
            if result and takes_effect:
                state[key] = value
        if ret is None:
            result = None
        client = draw(st.integers(min_value=0, max_value=7))
        ops.append(Operation(i, client, kind, key, value, result, call, ret, expected))
    # The input order must not matter to the checker.
    return draw(st.permutations(ops))


@settings(max_examples=200, deadline=None)
@given(linearizable_histories())
def test_generated_histories_are_linearizable(ops: list[Operation]) -> None:
    res = check(ops, timeout=5)
    assert res.verdict is Verdict.OK, res.describe()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(linearizable_histories(), st.data())
def test_generated_histories_with_corrupted_read_are_illegal(
    ops: list[Operation], data: st.DataObject
) -> None:
    reads = [i for i, o in enumerate(ops) if o.kind == "get" and o.ret is not None]
    if not reads:
        ops = [*ops, Operation(len(ops), 0, "get", "a", None, None, 1000.0, 1001.0)]
        reads = [len(ops) - 1]
    i = data.draw(st.sampled_from(reads))
    o = ops[i]
    bad = Operation(o.id, o.client, "get", o.key, None, NEVER_WRITTEN, o.call, o.ret)
    corrupted = [*ops[:i], bad, *ops[i + 1 :]]
    res = check(corrupted, timeout=5, shrink_timeout=5)
    assert res.verdict is Verdict.ILLEGAL, res.describe()
    assert res.key == o.key
    assert bad in res.witness
    assert_witness_sound(corrupted, res.key, res.witness)


# --------------------------------------------------------------------------------------
# The budget.


def pathological(n: int) -> list[Operation]:
    """``n`` mutually concurrent puts and a concurrent read of a value none wrote: the
    search must try every subset of the puts (2**n states) before giving up."""
    h = H()
    for i in range(n):
        h.put("k", f"v{i}", 0, 100)
    h.get("k", NEVER_WRITTEN, 1, 50)
    return h.ops


def test_step_budget_yields_unknown() -> None:
    ops = pathological(24)
    res = check(ops, max_steps=20_000)
    assert res.verdict is Verdict.UNKNOWN
    assert res.unknown_keys == ["k"]
    assert res.witness == [] and res.key is None
    assert 20_000 <= res.steps <= 20_000 + 1
    assert res.describe().startswith("unknown:")
    assert check_key(ops, max_steps=20_000) is None


def test_time_budget_yields_unknown() -> None:
    res = check(pathological(30), timeout=0.2)
    assert res.verdict is Verdict.UNKNOWN
    assert res.elapsed < 3


def test_small_pathological_history_is_decided_illegal() -> None:
    ops = pathological(6)
    res = check(ops, max_steps=1_000_000)
    assert res.verdict is Verdict.ILLEGAL
    assert_witness_sound(ops, res.key, res.witness)


def test_budget_spent_on_big_key_does_not_hide_cheap_violation() -> None:
    # Keys are searched smallest first, so the cheap violation on "z" is found even
    # though the pathological key "k" alone would exhaust the budget.
    ops = pathological(24)
    ops.append(Operation(1000, 0, "put", "z", "a", None, 0, 1))
    ops.append(Operation(1001, 0, "get", "z", None, None, 2, 3))
    res = check(ops, max_steps=20_000)
    assert res.verdict is Verdict.ILLEGAL
    assert res.key == "z"


# --------------------------------------------------------------------------------------
# JSON lines.

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
    st.sampled_from(("get", "put", "delete", "cas")),
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
def test_jsonl_round_trip(ops: list[Operation]) -> None:
    buf = io.StringIO()
    write_jsonl(ops, buf)
    assert buf.getvalue().count("\n") == len(ops)
    buf.seek(0)
    assert read_jsonl(buf) == ops


def test_jsonl_round_trip_through_file(tmp_path: Path) -> None:
    h = H()
    h.put("k", "ünïcode ✓", 0, 1.5)
    h.cas("k", None, "b", False, 2, 3)
    h.cas("k", "ünïcode ✓", "b", None, 2, None)
    h.delete("k", 4, 5)
    h.get("k", None, 6, 7)
    path = tmp_path / "h.jsonl"
    write_jsonl(h.ops, path)
    assert read_jsonl(path) == h.ops
    assert read_jsonl(str(path)) == h.ops
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    assert list(first) == ["id", "client", "kind", "key", "value", "result", "call", "return"]
    assert "expected" in json.loads(lines[1])


def line(**overrides: object) -> str:
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


_DROP = object()


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got array"),
        (line(call=_DROP), "missing field\\(s\\) 'call'"),
        (line(extra=1), "unknown field\\(s\\) 'extra'"),
        (line(kind="cas", result=True), "cas needs an 'expected' field"),
        (line(kind="teleport"), "'kind' must be one of"),
        (line(key=7), "'key' must be a string, got number 7"),
        (line(**{"return": -1}), "earlier than 'call'"),
        (
            '{"id": 0, "client": 0, "kind": "put", "key": "k", "value": "a", '
            '"result": null, "call": NaN, "return": 1}',
            "NaN is not valid JSON",
        ),
        (
            line(id=0, kind="get", value=None, result=None),
            "duplicate id 0 \\(first used on line 1\\)",
        ),
    ],
)
def test_read_jsonl_rejects_malformed_lines(bad: str, match: str) -> None:
    text = line() + "\n\n" + bad + "\n"  # blank line 2 is skipped, the bad one is line 3
    with pytest.raises(HistoryFormatError, match=match) as ei:
        read_jsonl(io.StringIO(text))
    assert ei.value.problems[0][0] == 3
    assert len(ei.value.problems) == 1
    assert isinstance(ei.value, ValueError)


def test_read_jsonl_reports_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join([line(id=0), "oops", line(id=2), line(id=3, client="x"), ""]),
        encoding="utf-8",
    )
    with pytest.raises(HistoryFormatError) as ei:
        read_jsonl(path)
    assert [n for n, _ in ei.value.problems] == [2, 4]
    assert ei.value.source == str(path)
    assert f"{path}:2: invalid JSON" in str(ei.value)
    assert f"{path}:4: 'client' must be an integer" in str(ei.value)


# --------------------------------------------------------------------------------------
# The command line.


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftcore.linearizability", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(tmp_path: Path, ops: list[Operation]) -> str:
    path = tmp_path / "history.jsonl"
    write_jsonl(ops, path)
    return str(path)


def test_cli_ok(tmp_path: Path) -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.get("k", "a", 2, 3)
    p = run_cli(write(tmp_path, h.ops))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok:")


def test_cli_illegal(tmp_path: Path) -> None:
    h = H()
    h.put("k", "a", 0, 1)
    h.put("k", "b", 2, 3)
    h.get("k", "a", 4, 5)
    p = run_cli(write(tmp_path, h.ops))
    assert p.returncode == 1, p.stderr
    assert p.stdout.startswith("illegal:")
    assert 'get("k") -> "a"' in p.stdout


def test_cli_unknown(tmp_path: Path) -> None:
    p = run_cli(write(tmp_path, pathological(24)), "--max-steps", "5000")
    assert p.returncode == 2, p.stderr
    assert p.stdout.startswith("unknown:")


def test_cli_malformed_line_names_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line(id=0) + "\n" + line(id=1, call="soon") + "\n", encoding="utf-8")
    p = run_cli(str(path))
    # Bad input has its own status (3), distinct from "unknown" (2): see __main__.
    assert p.returncode == EXIT_BAD_INPUT == 3
    assert f"{path}:2: 'call' must be a finite number" in p.stderr
    assert p.stdout == ""


def test_cli_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    p = run_cli(str(tmp_path / "nope.jsonl"))
    assert p.returncode == EXIT_BAD_INPUT
    assert "cannot read" in p.stderr
    p = run_cli()
    assert p.returncode == EXIT_BAD_INPUT
    assert "usage:" in p.stderr
