"""The state of one interaction environment and the helpers every command shares.

An :class:`InteractionEnv` lives for one script file (HARNESS §2.1): the nodes, the
in-flight network and the shared output buffer. The command handlers are plain
functions over it, grouped by topic in the sibling modules; :mod:`.handler` dispatches.

Two kinds of failure are kept apart, as upstream does. A *returned error* (a Go handler
returning ``error``) is output: it is raised here as :class:`CommandError` or as one of
raftcore's error exceptions, and :func:`.handler.handle` prints its text. A *harness
failure* (Go's ``t.Fatal`` or a panic) aborts the file: it is a
:class:`~raftcore.rafttest.datadriven.HarnessError` or a :class:`~raftcore.errors.RaftPanic`
and is never caught.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from raftcore.config import Config
from raftcore.describe import go_quote
from raftcore.errors import ConfChangeError, ConfigError, RaftError, RaftPanic
from raftcore.raftpb.types import Message, Snapshot
from raftcore.rafttest.datadriven import HarnessError, TestData, parse_int
from raftcore.rafttest.interaction.logger import RedirectLogger
from raftcore.rafttest.interaction.storage import SnapOverrideStorage
from raftcore.rawnode import RawNode

__all__ = [
    "CommandError",
    "InteractionEnv",
    "InteractionOpts",
    "Node",
    "first_as_int",
    "first_as_node_idx",
    "node_idxs",
    "parse_bool_go",
    "parse_uint_go",
    "returned_error",
    "scan_arg",
]


class CommandError(Exception):
    """An error a command returns: its text becomes (the end of) the directive's output."""


# raftcore errors that stand for a Go panic (or a Go config error that panics in
# newRaft); they must abort the file rather than be printed.
_FATAL = (RaftPanic, ConfigError, ConfChangeError)


def returned_error(exc: BaseException) -> str | None:
    """The text to print for ``exc`` if upstream would have returned it, else None."""
    if isinstance(exc, CommandError):
        return str(exc)
    if isinstance(exc, RaftError) and not isinstance(exc, _FATAL):
        return str(exc)
    return None


def _set_randomized_election_timeout(rn: RawNode, timeout: int) -> None:
    rn.raft.randomized_election_timeout = timeout


@dataclass(slots=True)
class InteractionOpts:
    """Hooks upstream lets a test install; the defaults are what the scripts need.

    ``on_config`` may adjust each node's config before its RawNode is created (it must
    not change the id or set a logger). ``set_randomized_election_timeout`` backs the
    command of the same name.
    """

    on_config: Callable[[Config], None] | None = None
    set_randomized_election_timeout: Callable[[RawNode, int], None] = (
        _set_randomized_election_timeout
    )


@dataclass(slots=True, eq=False)
class Node:
    """One member of the group: its RawNode, storage, config and pending storage work."""

    raw_node: RawNode
    storage: SnapOverrideStorage
    config: Config
    # Snapshots of the applied state machine, oldest first (HARNESS §2.5.4).
    history: list[Snapshot]
    # MsgStorageAppend / MsgStorageApply messages waiting for their "thread" (async mode).
    append_work: deque[Message] = field(default_factory=deque)
    apply_work: deque[Message] = field(default_factory=deque)

    @property
    def id(self) -> int:
        return self.config.id


class InteractionEnv:
    """Nodes, in-flight messages and the output buffer of one script file."""

    __slots__ = ("messages", "nodes", "options", "output")

    def __init__(self, options: InteractionOpts | None = None) -> None:
        self.options = options if options is not None else InteractionOpts()
        self.nodes: list[Node] = []
        # The network: FIFO, never reordered; delivery removes what it selects.
        self.messages: list[Message] = []
        self.output = RedirectLogger()

    def node(self, idx: int) -> Node:
        """Node at 0-based ``idx``; a number with no node is a harness failure."""
        if not 0 <= idx < len(self.nodes):
            raise HarnessError(f"no node with id {idx + 1} (have {len(self.nodes)})")
        return self.nodes[idx]

    def with_indent(self, f: Callable[[], object]) -> None:
        """Run ``f`` with a fresh buffer, then copy its lines back indented by two spaces.

        The copy happens even when ``f`` raises, so that a returned error still follows
        what was printed before it (upstream's handlers return errors, they do not
        unwind).
        """
        out = self.output
        orig = out.parts
        out.parts = []
        try:
            f()
        finally:
            text = "".join(out.parts)
            out.parts = orig
            if text:
                lines = text.split("\n")
                if lines[-1] == "":
                    lines.pop()
                # Written straight into the saved buffer, as upstream does: under NONE
                # the inner buffer stayed empty anyway. Go's line scanner drops one CR.
                for ln in lines:
                    if ln.endswith("\r"):
                        ln = ln[:-1]
                    orig.append(f"  {ln}\n")


# -- argument helpers (HARNESS §2.5.1) -----------------------------------------------------


def first_as_int(d: TestData) -> int:
    if not d.cmd_args:
        raise HarnessError(f"{d.pos}: {d.cmd}: missing arguments")
    return parse_int(d.cmd_args[0].key, d.pos)


def first_as_node_idx(d: TestData) -> int:
    return first_as_int(d) - 1


def node_idxs(d: TestData) -> list[int]:
    """The 0-based node index of every bare argument, in order (``key=value`` skipped)."""
    return [parse_int(a.key, d.pos) - 1 for a in d.cmd_args if not a.vals]


def scan_arg(d: TestData, key: str) -> str:
    """The single value of the first argument named ``key`` (datadriven's ScanArgs)."""
    for a in d.cmd_args:
        if a.key == key:
            if len(a.vals) != 1:
                raise HarnessError(f"{d.pos}: {key}: got 1 destinations, but {len(a.vals)} values")
            return a.vals[0]
    raise HarnessError(f"{d.pos}: missing argument: {key}")


# -- Go's strconv, where its error texts reach the output -----------------------------------


def parse_uint_go(s: str) -> int:
    """``strconv.ParseUint(s, 10, 64)``; a failure raises its Go error text."""
    if not s:
        raise CommandError(f"strconv.ParseUint: parsing {go_quote(s)}: invalid syntax")
    n = 0
    for c in s:
        # Checked character by character like Go, so a bad character before an
        # overflow is a syntax error and an overflow before a bad character is not.
        if not "0" <= c <= "9":
            raise CommandError(f"strconv.ParseUint: parsing {go_quote(s)}: invalid syntax")
        n = n * 10 + (ord(c) - 48)
        if n >= 1 << 64:
            raise CommandError(f"strconv.ParseUint: parsing {go_quote(s)}: value out of range")
    return n


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool_go(s: str) -> bool:
    """``strconv.ParseBool(s)``; a failure raises its Go error text."""
    if s in _GO_TRUE:
        return True
    if s in _GO_FALSE:
        return False
    raise CommandError(f"strconv.ParseBool: parsing {go_quote(s)}: invalid syntax")
