"""The runner for etcd's ``confchange/testdata`` scripts (HARNESS.md §4.2).

Commands ``simple``, ``enter-joint [autoleave=<bool>]`` and ``leave-joint`` take the
changes as input (``v1 l2 r3 u4``: voter, learner, remove, update) and print the
resulting tracker config and progress map, or the error. One tracker per file; the
changer's last index counts the directives run so far, failed ones included.
"""

from __future__ import annotations

import importlib
import unicodedata
from collections.abc import Callable
from typing import cast

from raftcore.confchange import Changer
from raftcore.errors import RaftError
from raftcore.raftpb.types import ConfChangeSingle, ConfChangeType
from raftcore.rafttest.datadriven import TestData
from raftcore.tracker import ProgressTracker

__all__ = ["make_handler", "parse_changes"]

_TOKEN_TYPES = {
    "v": ConfChangeType.ConfChangeAddNode,
    "l": ConfChangeType.ConfChangeAddLearnerNode,
    "r": ConfChangeType.ConfChangeRemoveNode,
    "u": ConfChangeType.ConfChangeUpdateNode,
}


class _ParseError(ValueError):
    pass


_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_quote(s: str) -> str:
    """Go's ``%q`` of a string (HARNESS §3.1), for the token quoted in a parse error."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == " " or (o > 0x20 and o != 0x7F and unicodedata.category(ch)[0] in "LMNPS"):
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def parse_changes(s: str) -> list[ConfChangeSingle]:
    """Parse ``v1 l2 r3 u4`` like etcd's ConfChangesFromString; raise with its texts."""
    toks = s.strip().split(" ")
    if toks[0] == "":
        return []
    ccs: list[ConfChangeSingle] = []
    for tok in toks:
        if len(tok) < 2:
            raise _ParseError(f"unknown token {tok}")
        typ = _TOKEN_TYPES.get(tok[0])
        if typ is None:
            raise _ParseError(f"unknown input: {tok}")
        num = tok[1:]
        if not (num.isascii() and num.isdigit()):
            raise _ParseError(f"strconv.ParseUint: parsing {_go_quote(num)}: invalid syntax")
        node_id = int(num)
        if node_id >= 1 << 64:
            raise _ParseError(f"strconv.ParseUint: parsing {_go_quote(num)}: value out of range")
        ccs.append(ConfChangeSingle(typ, node_id))
    return ccs


def _changes_parser() -> Callable[[str], list[ConfChangeSingle]]:
    # Prefer the shared parser of raftcore.raftpb.confchange; it is written in parallel
    # with this runner, so fall back to the local one while it is absent.
    try:
        mod = importlib.import_module("raftcore.raftpb.confchange")
    except ImportError:
        return parse_changes
    fn = getattr(mod, "conf_changes_from_string", None)
    if fn is None:
        return parse_changes
    return cast(Callable[[str], list[ConfChangeSingle]], fn)


def make_handler() -> Callable[[TestData], str]:
    """A handler with a fresh tracker (window of 10 messages, no byte limit)."""
    changer = Changer(ProgressTracker(10, 0), 0)
    parse = _changes_parser()

    def handle(d: TestData) -> str:
        try:
            return _handle(changer, parse, d)
        finally:
            changer.last_index += 1

    return handle


def _handle(changer: Changer, parse: Callable[[str], list[ConfChangeSingle]], d: TestData) -> str:
    try:
        ccs = parse(d.input)
    except (ValueError, RaftError) as exc:
        return str(exc)
    try:
        if d.cmd == "simple":
            cfg, trk = changer.simple(ccs)
        elif d.cmd == "enter-joint":
            auto_leave = d.scan_bool("autoleave") if d.cmd_args else False
            cfg, trk = changer.enter_joint(auto_leave, ccs)
        elif d.cmd == "leave-joint":
            if ccs:
                return "this command takes no input\n"
            cfg, trk = changer.leave_joint()
        else:
            return "unknown command"
    except RaftError as exc:
        return f"{exc}\n"
    tracker = changer.tracker
    tracker.config = cfg
    tracker.progress = trk
    return f"{cfg}\n{trk}"
