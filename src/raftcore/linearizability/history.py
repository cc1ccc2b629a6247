"""Histories of key-value operations: the record the checker reads.

An :class:`Operation` is one client request against a key-value map, with the time it
was invoked and the time its response arrived. An operation whose response never came
(a timeout, a crashed client) has ``ret=None``: it is *indeterminate* — it may have
taken effect at any moment after its invocation, or never.

Kinds, their arguments and results:

======== ========================== ============================================
kind     arguments                  result (``None`` while indeterminate)
======== ========================== ============================================
get      —                          the value read, ``None`` if the key was absent
put      ``value``: the new value   ``None``
delete   —                          ``None``
cas      ``expected`` (``None`` =   ``True`` if it swapped, ``False`` if not
         key absent), ``value``
======== ========================== ============================================

Values and keys are strings. Times are numbers on one clock shared by all clients
(wall-clock, virtual, or an event counter — only their order matters).

On disk a history is JSON lines, one operation per line::

    {"id": 3, "client": 1, "kind": "put", "key": "k", "value": "a", "result": null,
     "call": 10.5, "return": 12.0}

``expected`` appears on ``cas`` lines only. Every other field is required, so that a
truncated or hand-edited file fails loudly instead of being read with guessed defaults.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal, TypeAlias

__all__ = [
    "KINDS",
    "HistoryFormatError",
    "Kind",
    "Operation",
    "Recorder",
    "read_jsonl",
    "write_jsonl",
]

Kind: TypeAlias = Literal["get", "put", "delete", "cas"]
KINDS: tuple[Kind, ...] = ("get", "put", "delete", "cas")

# JSON field names, in the order write_jsonl emits them.
_FIELDS = ("id", "client", "kind", "key", "value", "expected", "result", "call", "return")
_REQUIRED = frozenset(_FIELDS) - {"expected"}


def _jtype(v: object) -> str:
    """Name a value the way the JSON file spells it, for error messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return "string " + json.dumps(v, ensure_ascii=False)
    if isinstance(v, int | float):
        return "number " + repr(v)
    if isinstance(v, list | tuple):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _is_time(v: object) -> bool:
    # bool is an int subclass; a ``true`` timestamp is certainly a mistake.
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _problem(op: Operation) -> str | None:
    """What is wrong with ``op``, or None. Shared by the constructor and the reader so a
    hand-built history and a file get the same, field-named diagnostics."""
    if not isinstance(op.id, int) or isinstance(op.id, bool):
        return f"'id' must be an integer, got {_jtype(op.id)}"
    if not isinstance(op.client, int) or isinstance(op.client, bool):
        return f"'client' must be an integer, got {_jtype(op.client)}"
    if op.kind not in KINDS:
        return f"'kind' must be one of get, put, delete, cas; got {_jtype(op.kind)}"
    if not isinstance(op.key, str):
        return f"'key' must be a string, got {_jtype(op.key)}"
    if not _is_time(op.call):
        return f"'call' must be a finite number, got {_jtype(op.call)}"
    if op.ret is not None:
        if not _is_time(op.ret):
            return f"'return' must be a finite number or null, got {_jtype(op.ret)}"
        if op.ret < op.call:
            return f"'return' ({op.ret!r}) is earlier than 'call' ({op.call!r})"
    kind = op.kind
    if kind in ("put", "cas"):
        if not isinstance(op.value, str):
            return f"{kind} needs a string 'value', got {_jtype(op.value)}"
    elif op.value is not None:
        return f"{kind} takes no 'value' (must be null), got {_jtype(op.value)}"
    if kind == "cas":
        if op.expected is not None and not isinstance(op.expected, str):
            return f"cas 'expected' must be a string or null (absent), got {_jtype(op.expected)}"
    elif op.expected is not None:
        return f"only cas takes 'expected', got {_jtype(op.expected)} on a {kind}"
    res = op.result
    if op.ret is None:
        if res is not None:
            return f"an operation without 'return' has no result; 'result' must be null, got {_jtype(res)}"
    elif kind == "get":
        if res is not None and not isinstance(res, str):
            return f"get 'result' must be the string read or null (absent), got {_jtype(res)}"
    elif kind == "cas":
        if not isinstance(res, bool):
            return f"a completed cas needs 'result' true or false, got {_jtype(res)}"
    elif res is not None:
        return f"{kind} 'result' must be null, got {_jtype(res)}"
    return None


@dataclass(frozen=True, slots=True)
class Operation:
    """One request: see the module docstring for what each kind's fields mean.

    ``ret is None`` marks an indeterminate operation. Construction validates the fields
    (raising ``ValueError``) because a malformed operation would otherwise surface as a
    baffling verdict deep inside the search.
    """

    id: int
    client: int
    kind: Kind
    key: str
    value: str | None
    result: str | bool | None
    call: float
    ret: float | None
    expected: str | None = None

    def __post_init__(self) -> None:
        msg = _problem(self)
        if msg is not None:
            raise ValueError(msg)

    @property
    def indeterminate(self) -> bool:
        return self.ret is None

    def describe(self) -> str:
        """``put("k", "a") -> ok``: the request and its outcome, for humans."""
        q = _quote
        if self.kind == "get":
            req = f"get({q(self.key)})"
        elif self.kind == "put":
            req = f"put({q(self.key)}, {q(self.value)})"
        elif self.kind == "delete":
            req = f"delete({q(self.key)})"
        else:
            req = f"cas({q(self.key)}, {q(self.expected)} -> {q(self.value)})"
        if self.ret is None:
            out = "? (no response)"
        elif self.kind == "get":
            out = q(self.result) if isinstance(self.result, str) else "absent"
        elif self.kind == "cas":
            out = "swapped" if self.result else "not swapped"
        else:
            out = "ok"
        return f"{req} -> {out}"

    def __str__(self) -> str:
        return f"#{self.id} client {self.client}: {self.describe()}"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "client": self.client,
            "kind": self.kind,
            "key": self.key,
            "value": self.value,
        }
        if self.kind == "cas":
            d["expected"] = self.expected
        d["result"] = self.result
        d["call"] = self.call
        d["return"] = self.ret
        return d

    @classmethod
    def from_json(cls, d: object) -> Operation:
        """Build from one decoded JSON line; ``ValueError`` says what is wrong."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {_jtype(d)}")
        missing = [f for f in _FIELDS if f in _REQUIRED and f not in d]
        if missing:
            raise ValueError("missing field(s) " + ", ".join(repr(f) for f in missing))
        unknown = sorted(str(f) for f in d if f not in _FIELDS)
        if unknown:
            raise ValueError("unknown field(s) " + ", ".join(repr(f) for f in unknown))
        if d["kind"] == "cas" and "expected" not in d:
            raise ValueError("cas needs an 'expected' field (null means the key is absent)")
        return cls(
            id=d["id"],
            client=d["client"],
            kind=d["kind"],
            key=d["key"],
            value=d["value"],
            result=d["result"],
            call=d["call"],
            ret=d["return"],
            expected=d.get("expected"),
        )


def _quote(s: object) -> str:
    return "absent" if s is None else json.dumps(s, ensure_ascii=False)


class HistoryFormatError(ValueError):
    """A history file is malformed. ``problems`` lists ``(line number, message)`` for
    every bad line (line numbers count from 1), so one run reports them all."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}:{n}: {msg}" for n, msg in problems))


def _parse(lines: Iterable[str], source: str) -> list[Operation]:
    ops: list[Operation] = []
    problems: list[tuple[int, str]] = []
    first_line: dict[int, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue  # blank lines (a trailing newline, hand-made files) carry nothing
        try:
            d = json.loads(line, parse_constant=_reject_constant)
        except ValueError as e:
            problems.append((n, f"invalid JSON: {e}"))
            continue
        try:
            op = Operation.from_json(d)
        except ValueError as e:
            problems.append((n, str(e)))
            continue
        if op.id in first_line:
            problems.append((n, f"duplicate id {op.id} (first used on line {first_line[op.id]})"))
            continue
        first_line[op.id] = n
        ops.append(op)
    if problems:
        raise HistoryFormatError(source, problems)
    return ops


def _reject_constant(name: str) -> object:
    # Python's json accepts NaN/Infinity; no timestamp or value should be one.
    raise ValueError(f"{name} is not valid JSON")


def read_jsonl(src: str | os.PathLike[str] | IO[str]) -> list[Operation]:
    """Read a JSON-lines history from a path (``"-"`` is stdin) or an open text file.

    Raises :class:`HistoryFormatError` listing every malformed line."""
    if isinstance(src, str | os.PathLike):
        if str(src) == "-":
            return _parse(sys.stdin, "<stdin>")
        with open(src, encoding="utf-8") as f:
            return _parse(f, str(src))
    return _parse(src, getattr(src, "name", "<history>"))


def write_jsonl(history: Iterable[Operation], dst: str | os.PathLike[str] | IO[str]) -> None:
    """Write ``history`` as JSON lines, one operation per line, in the given order."""
    if isinstance(dst, str | os.PathLike):
        with open(dst, "w", encoding="utf-8") as f:
            _write(history, f)
    else:
        _write(history, dst)


def _write(history: Iterable[Operation], f: IO[str]) -> None:
    for op in history:
        f.write(json.dumps(op.to_json(), ensure_ascii=False, allow_nan=False))
        f.write("\n")


class Recorder:
    """Builds a history as a system under test runs: ``invoke`` when a request is sent,
    ``complete`` when its response arrives. Requests never completed come out of
    :meth:`history` indeterminate.

    Times come from ``clock``; without one, every invoke/complete event gets the next
    integer, so the history is exactly the order in which events were recorded (the
    natural choice for a single-threaded simulator). Not thread-safe.
    """

    __slots__ = ("_clock", "_done", "_next_id", "_pending", "_tick")

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._tick = 0
        self._next_id = 0
        self._pending: dict[int, Operation] = {}
        self._done: list[Operation] = []

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        self._tick += 1
        return self._tick

    def invoke(
        self,
        client: int,
        kind: Kind,
        key: str,
        value: str | None = None,
        expected: str | None = None,
    ) -> int:
        """Record that ``client`` sent a request; returns the operation id to complete."""
        op_id = self._next_id
        self._next_id += 1
        self._pending[op_id] = Operation(
            op_id, client, kind, key, value, None, self._now(), None, expected
        )
        return op_id

    def complete(self, op_id: int, result: str | bool | None = None) -> None:
        """Record the response to ``op_id``: the value a get read (None: absent), a cas's
        success flag, nothing for put/delete."""
        op = self._pending.pop(op_id)
        self._done.append(
            Operation(
                op.id,
                op.client,
                op.kind,
                op.key,
                op.value,
                result,
                op.call,
                self._now(),
                op.expected,
            )
        )

    @property
    def pending(self) -> Iterator[int]:
        """Ids of requests still awaiting a response."""
        return iter(self._pending)

    def history(self) -> list[Operation]:
        """Every operation so far, by id; those still pending are indeterminate."""
        ops = self._done + list(self._pending.values())
        ops.sort(key=lambda o: o.id)
        return ops
