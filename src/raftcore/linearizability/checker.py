"""Is a key-value history linearizable? A Wing-Gong search with Lowe's refinements.

The search (after Wing & Gong, with the memoisation of Lowe's "just-in-time" checker,
the same shape as porcupine's) walks the history's call and return events in time
order, kept in a doubly linked list. At a call it tries to *linearize* that operation
next: apply it to the model state and, if the model accepts the recorded result, unlink
the operation's call and return and restart from the front. Meeting a return means the
operation returning there was not linearized in time, so the last choice is undone and
the walk moves on to the next candidate. Every (set of linearized operations, state)
pair reached is remembered; reaching one again cannot lead anywhere new, which is what
makes the common case near-linear. The set is a Python int used as a bitset, memoised
as (run of low ones, remaining bits) so keys stay small however long the history.

Pure operations (gets, failed cas) never need a choice: when one can be linearized it
is, first and without alternatives (see :func:`_forced_first`). That keeps the search
from branching over reads, which are most operations in most histories.

Keys are independent objects, so a history is linearizable exactly when each key's
sub-history is (P-compositionality); each key is searched on its own.

An indeterminate operation (no response) gets its return at +infinity: it may be
linearized at any point after its call, and linearizing it last of all is the same as it
never having taken effect.

Ties: when one operation's return and another's call carry the same timestamp, the two
are treated as concurrent. Clocks are coarse; calling that a real-time order would
produce violations that never happened.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from raftcore.linearizability.history import Operation

__all__ = ["CheckResult", "Verdict", "check", "check_key", "format_witness"]

_INF = math.inf

# Operation kinds as small ints: the hot loop compares these instead of strings.
_GET = 0
_PUT = 1
_DELETE = 2
_CAS = 3
_KIND_CODE = {"get": _GET, "put": _PUT, "delete": _DELETE, "cas": _CAS}

# A witness timeline is drawn only up to this many distinct timestamps (3 columns
# each); wider, it stops being readable.
_TIMELINE_MAX = 40
# A report lists at most this many witness operations (all are in CheckResult.witness).
_REPORT_MAX = 100

# How often (in steps) the search looks at the clock.
_CHECK_EVERY = 1024


class Verdict(enum.Enum):
    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class CheckResult:
    """The outcome of :func:`check`.

    ``verdict`` is OK (linearizable), ILLEGAL (not: ``key`` is a key whose sub-history
    has no linearization and ``witness`` a small sub-history of it that has none either),
    or UNKNOWN (no violation found, but the budget ran out on ``unknown_keys``).

    A witness is the history's own violation, not an artefact of shrinking: operations
    are dropped only where that cannot turn a linearizable history illegal, or where
    the failed search never looked; and each value a kept read saw comes with a write
    of it when the history has one.
    """

    verdict: Verdict
    key: str | None = None
    witness: list[Operation] = field(default_factory=list)
    key_ops: int = 0
    unknown_keys: list[str] = field(default_factory=list)
    ops: int = 0
    keys: int = 0
    steps: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def describe(self) -> str:
        """A report for humans: the verdict and, when illegal, the witness drawn on a
        timeline."""
        stats = (
            f"{_n(self.ops, 'operation')} on {_n(self.keys, 'key')}, "
            f"{_n(self.steps, 'search step')}, {self.elapsed:.3f} s"
        )
        if self.verdict is Verdict.OK:
            return f"ok: the history is linearizable ({stats})"
        if self.verdict is Verdict.UNKNOWN:
            keys = ", ".join(_q(k) for k in self.unknown_keys[:10])
            if len(self.unknown_keys) > 10:
                keys += f", ... ({len(self.unknown_keys)} in all)"
            which = "key" if len(self.unknown_keys) == 1 else "keys"
            return (
                f"unknown: the search budget ran out before {which} {keys} could be "
                f"decided; no violation was found elsewhere ({stats})"
            )
        assert self.key is not None
        return (
            f"illegal: the history is not linearizable ({stats})\n"
            f"key {_q(self.key)}: this sub-history ({len(self.witness)} of its "
            f"{_n(self.key_ops, 'operation')}) has no linearization: no order of it "
            "consistent with real time explains every result\n"
            + format_witness(self.witness, _REPORT_MAX)
        )

    def __str__(self) -> str:
        return self.describe()


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def format_witness(ops: Sequence[Operation], limit: int | None = None) -> str:
    """A table of ``ops`` in call order with a timeline column: ``|---|`` spans call to
    return on a rank-compressed time axis, ``|--->`` an operation with no response.
    At most ``limit`` rows are shown; the timeline only while it stays readable."""
    ops = sorted(ops, key=lambda o: (o.call, o.id))
    more = 0
    if limit is not None and len(ops) > limit:
        more = len(ops) - limit
        ops = ops[:limit]
    times = sorted({o.call for o in ops} | {o.ret for o in ops if o.ret is not None})
    col = {t: 3 * i for i, t in enumerate(times)}
    width = 3 * len(times)
    timeline = len(times) <= _TIMELINE_MAX
    rows = []
    for o in ops:
        c = col[o.call]
        if not timeline:
            bar = ""
        elif o.ret is None:
            bar = " " * c + "|" + "-" * max(width - c - 1, 1) + ">"
        else:
            e = col[o.ret]
            bar = " " * c + ("|" if e == c else "|" + "-" * (e - c - 1) + "|")
        rets = "-" if o.ret is None else f"{o.ret:g}"
        rows.append((str(o.id), str(o.client), o.describe(), f"{o.call:g}", rets, bar))
    head = ("id", "client", "operation", "call", "return", "timeline" if timeline else "")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
    out = []
    for row in [head, *rows]:
        cells = [
            row[0].rjust(widths[0]),
            row[1].rjust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].rjust(widths[3]),
            row[4].rjust(widths[4]),
            row[5],
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    if more:
        out.append(f"  ... and {more} more")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# The search over one key.


class _Budget:
    """Steps and wall-clock time left, shared by every search of one :func:`check`."""

    __slots__ = ("culprit", "deadline", "steps_left", "used")

    def __init__(self, max_steps: int | None, deadline: float | None) -> None:
        self.steps_left = max_steps
        self.deadline = deadline
        self.used = 0
        # After a search that found a violation: the operation whose return was the
        # latest event the search ever reached. Operations called after that return
        # were never looked at.
        self.culprit: Operation | None = None

    @property
    def frontier(self) -> float:
        c = self.culprit
        return -_INF if c is None else _INF if c.ret is None else c.ret


def _is_pure(op: Operation) -> bool:
    """Does ``op`` leave the value as it is, whatever it is? Gets, cas known to have
    failed, and cas that would write the value they expect. (A put of the current value
    does not count: elsewhere in the order it would overwrite something else.)"""
    return op.kind == "get" or (
        op.kind == "cas" and (op.result is False or op.expected == op.value)
    )


def _forced_first(
    entry: int,
    n: int,
    nxt: list[int],
    pure: list[bool],
    kind: list[int],
    expected: list[str | None],
    result: list[str | bool | None],
    state: str | None,
) -> int:
    """Where the search should start in a fresh configuration: at the first enabled
    operation (called before any pending return) that is pure and accepts ``state``,
    else at ``entry``, the front of the list.

    Linearizing such an operation is a *forced* move: if any linearization continues
    from here, moving the pure operation to its front keeps it valid — it sees the
    current state, and its absence later changes nothing. So there is no choice to
    make, and if the move leads nowhere, nothing does.
    """
    e = entry
    while e < n:
        if pure[e]:
            if kind[e] == _GET:
                if result[e] == state:
                    return e
            elif state == expected[e]:
                if result[e] is not False:
                    return e
            elif result[e] is not True:
                return e
        e = nxt[e]
    return entry


def _search(ops: Sequence[Operation], budget: _Budget) -> bool | None:
    """True if ``ops`` (all on one key) are linearizable, False if not, None if the
    budget ran out first. On False, ``budget.culprit`` is set."""
    # Bit i stands for the i-th operation in call order, so the linearized set is, at
    # any point, a run of low ones (everything long finished) plus a sparse window; the
    # memo stores it as (run length, the rest), keeping its keys small. Gets without a
    # response constrain nothing and are left out.
    ops = sorted((o for o in ops if o.ret is not None or o.kind != "get"), key=lambda o: o.call)
    n = len(ops)
    if n == 0:
        return True
    # Nodes 0..n-1 are calls, n..2n-1 the matching returns, then head and tail sentinels
    # (the sentinels spare the link/unlink code every end-of-list test).
    head = 2 * n
    tail = head + 1
    events = []
    for i, op in enumerate(ops):
        events.append((op.call, 0, i))
        events.append((_INF if op.ret is None else op.ret, 1, n + i))
    # Calls sort before returns at equal times: touching operations count as concurrent.
    events.sort()
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    pos = [0] * (2 * n)
    prev = head
    for p, (_, _, node) in enumerate(events):
        nxt[prev] = node
        prv[node] = prev
        pos[node] = p
        prev = node
    nxt[prev] = tail
    prv[tail] = prev

    kind = [_KIND_CODE[op.kind] for op in ops]
    value = [op.value for op in ops]
    expected = [op.expected for op in ops]
    result = [op.result for op in ops]
    pure = [_is_pure(op) for op in ops]

    steps_left = budget.steps_left
    deadline = budget.deadline
    # Steps are counted in one local int; the budget is consulted only at checkpoints.
    next_check = _CHECK_EVERY if steps_left is None else min(_CHECK_EVERY, steps_left)
    steps = 0

    state: str | None = None  # every key starts absent
    linearized = 0
    seen: set[tuple[int, int, str | None]] = set()
    # The path: operations linearized, the state before each, and whether it was a
    # forced move (see below), in parallel lists.
    stack_op: list[int] = []
    stack_state: list[str | None] = []
    stack_forced: list[bool] = []
    entry = _forced_first(nxt[head], n, nxt, pure, kind, expected, result, state)
    far = -1  # event position of the latest return reached
    verdict: bool | None = True
    while entry != tail:
        if steps == next_check:
            if (steps_left is not None and steps >= steps_left) or (
                deadline is not None and time.monotonic() > deadline
            ):
                verdict = None
                break
            next_check = steps + _CHECK_EVERY
            if steps_left is not None and next_check > steps_left:
                next_check = steps_left
        steps += 1
        if entry < n:
            # A call: try linearizing this operation now.
            i = entry
            k = kind[i]
            if k == _GET:
                if state != result[i]:
                    entry = nxt[entry]
                    continue
                new = state
            elif k == _PUT:
                new = value[i]
            elif k == _DELETE:
                new = None
            else:
                r = result[i]
                if state == expected[i]:
                    if r is False:
                        entry = nxt[entry]
                        continue
                    new = value[i]
                else:
                    if r is True:
                        entry = nxt[entry]
                        continue
                    new = state
            lin = linearized | (1 << i)
            low = ((lin + 1) & ~lin).bit_length() - 1  # the run of low ones
            memo = (low, lin >> low, new)
            forced = pure[i]
            if memo not in seen:
                seen.add(memo)
                stack_op.append(i)
                stack_state.append(state)
                stack_forced.append(forced)
                state = new
                linearized = lin
                # Unlink the call, then its return.
                p = prv[i]
                q = nxt[i]
                nxt[p] = q
                prv[q] = p
                ret = n + i
                p = prv[ret]
                q = nxt[ret]
                nxt[p] = q
                prv[q] = p
                entry = _forced_first(nxt[head], n, nxt, pure, kind, expected, result, state)
                continue
            if not forced:
                entry = nxt[entry]
                continue
            # A forced move into a configuration already known to fail: this one fails
            # too. Fall through to backing up.
        # A return whose operation is still unlinearized, or a failed forced move: back
        # up to the last real choice and try its next alternative.
        elif pos[entry] > far:
            far = pos[entry]
        while True:
            if not stack_op:
                verdict = False
                break
            i = stack_op.pop()
            state = stack_state.pop()
            forced = stack_forced.pop()
            linearized ^= 1 << i
            # Relink in the reverse order of unlinking; the nodes kept their neighbours.
            ret = n + i
            nxt[prv[ret]] = ret
            prv[nxt[ret]] = ret
            nxt[prv[i]] = i
            prv[nxt[i]] = i
            if not forced:
                entry = nxt[i]
                break
        if verdict is False:
            break
    budget.used += steps
    if budget.steps_left is not None:
        budget.steps_left = max(budget.steps_left - steps, 0)
    if verdict is False and far >= 0:  # a failure always reaches some return
        budget.culprit = ops[events[far][2] - n]
    return verdict


# --------------------------------------------------------------------------------------
# Sound removals: what may be dropped before searching, or while shrinking a witness.
#
# Dropping operation set R from a history H is *sound* when every linearization L of H,
# with R's operations deleted, is still a linearization of what is left, S. Reads
# change nothing, so deleting them never disturbs anyone. Deleting a write matters only
# to a kept operation o for which it was the latest write before o in L, and only if o
# depends on the value: a get that returned it, a successful cas that expected it, or a
# failed or indeterminate cas (those depend on "not the expected value", which removal
# can change). A write w cannot be that latest write when o returned before w was
# called, nor when some operation that surely wrote (a completed put, delete or
# successful cas) was called after w returned and returned before o was called — it
# sits between them in every linearization.
#
# A witness built by sound drops is the history's own violation: were the history
# linearizable, so would be the witness.


def _written(op: Operation) -> str | None:
    """The value a write leaves behind."""
    return None if op.kind == "delete" else op.value


def _may_write(op: Operation) -> bool:
    """Could ``op`` change the key's value? (A cas known to have failed cannot.)"""
    k = op.kind
    return k == "put" or k == "delete" or (k == "cas" and op.result is not False)


class _Shadow:
    """For a history: after a write that returned at ``t``, the earliest return of an
    operation that surely wrote and was called after ``t``."""

    __slots__ = ("calls", "min_ret")

    def __init__(self, ops: Iterable[Operation]) -> None:
        ws = sorted(
            (o.call, o.ret)
            for o in ops
            if o.ret is not None and (o.kind in ("put", "delete") or o.result is True)
        )
        self.calls = [c for c, _ in ws]
        self.min_ret = [0.0] * len(ws)
        m = _INF
        for i in range(len(ws) - 1, -1, -1):
            r = ws[i][1]
            if r < m:
                m = r
            self.min_ret[i] = m

    def after(self, t: float | None) -> float:
        if t is None:
            return _INF
        i = bisect.bisect_right(self.calls, t)
        return self.min_ret[i] if i < len(self.calls) else _INF


class _Intervals:
    """(call, return) intervals; answers "does any have return >= a and call <= b"."""

    __slots__ = ("calls", "max_ret")

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        spans.sort()
        self.calls = [c for c, _ in spans]
        self.max_ret = list(itertools.accumulate((r for _, r in spans), max))

    def overlaps(self, a: float, b: float) -> bool:
        i = bisect.bisect_right(self.calls, b)
        return i > 0 and self.max_ret[i - 1] >= a


class _Observers:
    """Which kept operations depend on the key's value, indexed for the soundness test:
    by the value they need (gets, successful cas) or, for failed and indeterminate cas,
    in one "blind" group that any write may disturb."""

    __slots__ = ("blind", "by_value")

    def __init__(self, kept: Iterable[Operation]) -> None:
        by_value: dict[str | None, list[tuple[float, float]]] = {}
        blind: list[tuple[float, float]] = []
        for o in kept:
            if o.kind == "get":
                r = o.result
                if o.ret is not None and not isinstance(r, bool):
                    by_value.setdefault(r, []).append((o.call, o.ret))
            elif o.kind == "cas":
                end = _INF if o.ret is None else o.ret
                if o.result is True:
                    by_value.setdefault(o.expected, []).append((o.call, end))
                else:
                    blind.append((o.call, end))
        self.by_value = {v: _Intervals(spans) for v, spans in by_value.items()}
        self.blind = _Intervals(blind)

    def need(self, w: Operation, shadow: _Shadow) -> bool:
        """Would dropping write ``w`` be unsound? True when some observer o could have
        w as its latest write: o.ret >= w.call and o.call <= (earliest return of a sure
        write called after w returned)."""
        last = shadow.after(w.ret)
        iv = self.by_value.get(_written(w))
        return (iv is not None and iv.overlaps(w.call, last)) or self.blind.overlaps(w.call, last)


def _prepare(ops: Sequence[Operation]) -> list[Operation]:
    """Drop what cannot affect the answer: gets without a response (they constrain
    nothing) and indeterminate writes whose removal is sound. Linearizing such a write
    last of all ("it never happened") is always possible, so dropping it loses nothing
    either way. Kept, these writes would stay pending to the end and multiply the
    states the search explores."""
    ops = [o for o in ops if not (o.ret is None and o.kind == "get")]
    shadow = _Shadow(ops)
    drop = [o for o in ops if o.ret is None]
    while drop:
        drop_ids = {id(o) for o in drop}
        obs = _Observers(o for o in ops if id(o) not in drop_ids)
        still = [o for o in drop if not obs.need(o, shadow)]
        if len(still) == len(drop):
            break
        # Keeping an indeterminate cas adds an observer; re-check the rest against it.
        drop = still
    drop_ids = {id(o) for o in drop}
    return [o for o in ops if id(o) not in drop_ids]


# --------------------------------------------------------------------------------------
# Shrinking a violation to a witness.


def _needed_value(op: Operation) -> str | None:
    """The value a completed get or successful cas saw, when it is not "absent"."""
    if op.kind == "get":
        return op.result if isinstance(op.result, str) and op.ret is not None else None
    if op.kind == "cas" and op.result is True:
        return op.expected
    return None


class _Shrinker:
    """Shrinks one key's non-linearizable history. Every candidate it tries is
    *closed*: it keeps whatever its removals would otherwise make unsound, and, so the
    witness reads as an explanation rather than a puzzle, for every kept operation that
    saw a value some write in the history had written by then, one such write. (Without
    that rule a stale read would shrink to a lone read of a value "nobody wrote".)"""

    __slots__ = ("cur", "deadline", "shadow", "step_cap", "writers")

    def __init__(self, ops: list[Operation], step_cap: int, deadline: float) -> None:
        self.step_cap = step_cap
        self.deadline = deadline
        self.cur: list[Operation] = []
        self.shadow = _Shadow(())
        self.writers: dict[str | None, tuple[list[float], list[Operation]]] = {}
        self._set(sorted(ops, key=lambda o: (o.call, o.id)))

    def _set(self, cur: list[Operation]) -> None:
        self.cur = cur
        self.shadow = _Shadow(cur)
        by_value: dict[str | None, list[Operation]] = {}
        for o in cur:  # in call order
            if _may_write(o) and o.kind != "delete":
                by_value.setdefault(o.value, []).append(o)
        self.writers = {v: ([w.call for w in ws], ws) for v, ws in by_value.items()}

    def close(self, keep: Iterable[Operation]) -> list[Operation]:
        """The smallest closed sub-history of ``cur`` containing ``keep``, in call order."""
        kept = {id(o) for o in keep}
        cur = self.cur
        while True:
            add: list[Operation] = []
            obs = _Observers(o for o in cur if id(o) in kept)
            # Per value, the two earliest-called kept writes of it: an operation that
            # both expects and writes v (a cas) does not explain itself.
            first: dict[str | None, list[Operation]] = {}
            for o in cur:
                if id(o) in kept:
                    if _may_write(o) and o.kind != "delete":
                        two = first.setdefault(o.value, [])
                        if len(two) < 2:
                            two.append(o)
                elif _may_write(o) and obs.need(o, self.shadow):
                    add.append(o)
            for o in cur:
                if id(o) not in kept:
                    continue
                v = _needed_value(o)
                if v is None:
                    continue
                end = _INF if o.ret is None else o.ret
                if any(w is not o and w.call <= end for w in first.get(v, ())):
                    continue
                calls, ws = self.writers.get(v, ([], []))
                i = bisect.bisect_right(calls, end)
                while i and ws[i - 1] is o:
                    i -= 1
                if i:
                    add.append(ws[i - 1])  # the latest write of v that o could have seen
            fresh = [o for o in add if id(o) not in kept]
            if not fresh:
                return [o for o in cur if id(o) in kept]
            kept.update(id(o) for o in fresh)

    def attempt(self, keep: Iterable[Operation]) -> bool:
        """Adopt the closure of ``keep`` if it is smaller and still illegal; then also
        drop what that failed search never reached."""
        cand = self.close(keep)
        if len(cand) >= len(self.cur):
            return False
        budget = _Budget(self.step_cap, self.deadline)
        if _search(cand, budget) is not False:
            return False
        self._set(cand)
        if budget.culprit is not None:
            self.trim(budget.frontier)
        return True

    def trim(self, frontier: float) -> None:
        """Drop what a failed search of ``cur`` never reached. The closure adds back
        only operations called after ``frontier``, which the search does not reach
        either, so the trimmed history fails exactly as ``cur`` did."""
        self._set(self.close(o for o in self.cur if o.call <= frontier))

    def seed(self, culprit: Operation) -> None:
        """Try the culprit alone (closed): often it, and what it needs to be explained,
        is the whole story — a read of a value never written, a lost write."""
        if any(o is culprit for o in self.cur):
            self.attempt([culprit])

    def windows(self) -> None:
        """Try the last 16, 64, 256, ... operations (closed): violations are usually
        local, and a small window is far cheaper to search than what precedes it."""
        m = 16
        while m < len(self.cur) and time.monotonic() < self.deadline:
            if self.attempt(self.cur[-m:]):
                return
            m *= 4

    def ddmin(self, pick: Callable[[Operation], bool]) -> None:
        """Delta debugging over the operations ``pick`` selects: try dropping halves,
        quarters, ... single operations, keeping every drop that stays illegal."""
        n = 2
        while time.monotonic() < self.deadline:
            cands = [o for o in self.cur if pick(o)]
            if not cands:
                return
            n = min(n, len(cands))
            size = -(-len(cands) // n)
            reduced = False
            for start in range(0, len(cands), size):
                if time.monotonic() > self.deadline:
                    return
                gone = {id(o) for o in cands[start : start + size]}
                if self.attempt(o for o in self.cur if id(o) not in gone):
                    n = max(n - 1, 2)
                    reduced = True
                    break
            if not reduced:
                if n >= len(cands):
                    return
                n = min(2 * n, len(cands))


def _is_read(op: Operation) -> bool:
    return op.kind == "get" or (op.kind == "cas" and op.result is False)


def _shrink(
    ops: list[Operation], culprit: Operation | None, step_cap: int, deadline: float
) -> list[Operation]:
    """Shrink a non-linearizable ``ops`` to a small non-linearizable sub-history.

    ``culprit`` is the operation whose return the failed search could not get past.
    First drop every operation called after that return: the search never got that
    far, so without them it fails the same way. Then try the culprit on its own, then
    small windows before it, then delta-debug over the reads (cheap to drop, and they
    are what pin the writes down) and finally over everything. Ends 1-minimal
    among closed candidates, or at ``deadline`` with the best found so far. Candidates
    undecided within ``step_cap`` steps count as legal.
    """
    s = _Shrinker(ops, step_cap, deadline)
    if culprit is not None:
        s.trim(_INF if culprit.ret is None else culprit.ret)
        s.seed(culprit)
    s.windows()
    s.ddmin(_is_read)
    s.ddmin(lambda o: True)
    return s.cur


# --------------------------------------------------------------------------------------
# Entry points.


def check_key(ops: Sequence[Operation], *, max_steps: int | None = None) -> bool | None:
    """Search one key's operations as given (no preprocessing, no shrinking): True if
    linearizable, False if not, None if ``max_steps`` ran out. Useful to confirm that a
    witness is illegal on its own."""
    keys = {o.key for o in ops}
    if len(keys) > 1:
        raise ValueError(f"check_key takes one key's operations, got {len(keys)} keys")
    return _search(ops, _Budget(max_steps, None))


def check(
    history: Iterable[Operation],
    *,
    timeout: float | None = None,
    max_steps: int | None = None,
    shrink: bool = True,
    shrink_timeout: float = 10.0,
) -> CheckResult:
    """Decide whether ``history`` is linearizable for a key-value map whose keys all
    start absent.

    ``timeout`` (seconds) and ``max_steps`` bound the search over all keys together;
    when either runs out before a violation is found the verdict is UNKNOWN. Keys are
    searched smallest first, so a cheap violation is found even if a large key would
    exhaust the budget. On a violation the offending key's history is shrunk (within
    ``shrink_timeout`` seconds, unless ``shrink`` is False) to a small witness.

    Raises ``ValueError`` if two operations share an id.
    """
    start = time.monotonic()
    ops = list(history)
    by_key: dict[str, list[Operation]] = {}
    ids: set[int] = set()
    for op in ops:
        if op.id in ids:
            raise ValueError(f"duplicate operation id {op.id}")
        ids.add(op.id)
        by_key.setdefault(op.key, []).append(op)
    budget = _Budget(max_steps, None if timeout is None else start + timeout)
    res = CheckResult(Verdict.OK, ops=len(ops), keys=len(by_key))
    for key in sorted(by_key, key=lambda k: (len(by_key[k]), k)):
        key_ops = _prepare(by_key[key])
        before = budget.used
        verdict = _search(key_ops, budget)
        if verdict is None:
            res.unknown_keys.append(key)
            res.verdict = Verdict.UNKNOWN
        elif verdict is False:
            res.verdict = Verdict.ILLEGAL
            res.key = key
            res.key_ops = len(by_key[key])
            res.unknown_keys.clear()
            if shrink:
                cap = max(10_000, 4 * (budget.used - before))
                res.witness = _shrink(
                    key_ops, budget.culprit, cap, time.monotonic() + shrink_timeout
                )
            else:
                res.witness = sorted(key_ops, key=lambda o: (o.call, o.id))
            break
    res.steps = budget.used
    res.elapsed = time.monotonic() - start
    return res
