"""The simulated application: a key-value state machine and the client history.

Commands travel in the data of normal log entries as short ASCII records::

    p <op> <key> <value>     put
    d <op> <key>             delete

``<op>`` is the id of the client operation that proposed the command. The state
machine remembers every op id it has applied and applies each at most once: a
duplicated ``MsgProp`` (the network may duplicate a proposal forwarded to the leader)
can put the same command into the log twice, and a real application deduplicates
requests for exactly this reason. Without it the simulator would report
non-linearizable histories that are the application's fault, not raft's.

Reads do not go through the log; they use ReadIndex and are served from the state
machine (see :mod:`raftcore.sim.cluster`).
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass, field

from raftcore.linearizability import Kind, Operation

__all__ = ["KEYS", "Command", "History", "KVState", "decode_command", "encode_delete", "encode_put"]

# A handful of keys: enough for independent per-key histories, few enough that every
# key sees contention.
KEYS: tuple[str, ...] = ("a", "b", "c", "d")


@dataclass(frozen=True, slots=True)
class Command:
    """A decoded state-machine command; ``value`` is None for a delete."""

    op: int
    key: str
    value: str | None


def encode_put(op: int, key: str, value: str) -> bytes:
    return f"p {op} {key} {value}".encode()


def encode_delete(op: int, key: str) -> bytes:
    return f"d {op} {key}".encode()


def decode_command(data: bytes) -> Command:
    """Parse entry data written by :func:`encode_put` / :func:`encode_delete`."""
    parts = data.decode().split(" ")
    if parts[0] == "p" and len(parts) == 4:
        return Command(int(parts[1]), parts[2], parts[3])
    if parts[0] == "d" and len(parts) == 3:
        return Command(int(parts[1]), parts[2], None)
    raise ValueError(f"not a command: {data!r}")


@dataclass(slots=True)
class KVState:
    """The replicated map plus the set of op ids already applied (for deduplication)."""

    data: dict[str, str] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)

    def apply(self, cmd: Command) -> bool:
        """Apply ``cmd`` unless its op was applied before; True if it took effect."""
        if cmd.op in self.seen:
            return False
        self.seen.add(cmd.op)
        if cmd.value is None:
            self.data.pop(cmd.key, None)
        else:
            self.data[cmd.key] = cmd.value
        return True

    def encode(self) -> bytes:
        """Snapshot payload; deterministic (sorted) so equal states give equal bytes."""
        return json.dumps(
            {"kv": self.data, "seen": sorted(self.seen)}, sort_keys=True, separators=(",", ":")
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> KVState:
        d = json.loads(data)
        return cls(dict(d["kv"]), set(d["seen"]))


@dataclass(slots=True)
class _Rec:
    kind: str
    key: str
    value: str | None
    client: int
    call: int
    ret: int | None = None
    result: str | None = None


class History:
    """Client operations with logical timestamps, for the linearizability checker.

    Every invocation and every completion takes the next tick of one counter, so the
    timestamps are exactly the order in which the simulator saw the events. Reads that
    never got an answer are dropped (an unanswered read constrains nothing); writes
    that never got one stay in, indeterminate: they may have taken effect.
    """

    __slots__ = ("_clock", "_next", "_open", "_ops", "completed")

    def __init__(self) -> None:
        self._clock = 0
        self._next = 0
        self._ops: dict[int, _Rec] = {}
        self._open: set[int] = set()
        self.completed = 0

    def __len__(self) -> int:
        return len(self._ops)

    def invoke(self, client: int, kind: str, key: str, value: str | None = None) -> int:
        self._clock += 1
        op = self._next
        self._next += 1
        self._ops[op] = _Rec(kind, key, value, client, self._clock)
        self._open.add(op)
        return op

    def complete(self, op: int, result: str | None = None) -> None:
        if op not in self._open:
            return
        self._open.discard(op)
        self._clock += 1
        rec = self._ops[op]
        rec.ret = self._clock
        rec.result = result
        self.completed += 1

    @property
    def next_id(self) -> int:
        """The id the next :meth:`invoke` will return."""
        return self._next

    def cancel(self, op: int) -> None:
        """Withdraw a request the system refused outright (it cannot take effect)."""
        if op in self._open:
            self._open.discard(op)
            del self._ops[op]

    def abandon(self, op: int) -> None:
        """Forget an unanswered read (its client gave up)."""
        if op in self._open and self._ops[op].kind == "get":
            self._open.discard(op)
            del self._ops[op]

    def is_open(self, op: int) -> bool:
        return op in self._open

    def operations(self, took_effect: Container[int] | None = None) -> list[Operation]:
        """The history in the checker's format; unanswered reads are left out.

        With ``took_effect`` (the ops some node applied), unanswered writes that no node
        ever applied are left out too: no read can have seen them, and placing them
        after everything else is what the checker would try anyway. Dropping them
        keeps the search small (each indeterminate write may otherwise be placed
        anywhere after its call).
        """
        out: list[Operation] = []
        for op, r in self._ops.items():
            if r.ret is None and (
                r.kind == "get" or (took_effect is not None and op not in took_effect)
            ):
                continue
            kind: Kind = "get" if r.kind == "get" else "put" if r.kind == "put" else "delete"
            out.append(Operation(op, r.client, kind, r.key, r.value, r.result, r.call, r.ret))
        return out

    def digest(self) -> str:
        """A compact, deterministic summary (for trace hashes)."""
        return repr(sorted(self._ops.items()))
