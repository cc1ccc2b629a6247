"""Human-readable text forms of raft's types (etcd's ``Describe*`` in ``util.go``).

These are the exact texts etcd prints (the conformance scripts compare them byte for
byte), so they follow Go's formatting rules rather than Python's: integer lists print
as ``[1 2 3]``, booleans as ``true``/``false``, node ids in messages as lowercase hex,
and entry data through :func:`go_quote`, a port of Go's ``%q`` for byte strings.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from raftcore.errors import DecodeError
from raftcore.raftpb.codec import decode_conf_change, decode_conf_change_v2
from raftcore.raftpb.confchange import conf_changes_to_string
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    Snapshot,
)
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD

if TYPE_CHECKING:
    from raftcore.rawnode import Ready, SoftState
    from raftcore.read_only import ReadState

__all__ = [
    "EntryFormatter",
    "describe_conf_change",
    "describe_conf_state",
    "describe_entries",
    "describe_entry",
    "describe_hard_state",
    "describe_message",
    "describe_read_states",
    "describe_ready",
    "describe_snapshot",
    "describe_soft_state",
    "describe_target",
    "go_list",
    "go_quote",
]

EntryFormatter = Callable[[bytes], str]
"""Formats the data of a normal entry; ``None`` in its place means :func:`go_quote`."""


# --- Go's %q ---------------------------------------------------------------------------

# Bytes 0x20..0x7e print as themselves except the two that need a backslash; a string
# made only of these (the common case: ids, "foo", "prop_1_12") takes the fast path.
_PLAIN_ASCII = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\")}

_NAMED_ESCAPES = {
    0x07: "\\a",
    0x08: "\\b",
    0x0C: "\\f",
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
    0x0B: "\\v",
    0x22: '\\"',
    0x5C: "\\\\",
}


def _quote_rune(c: str) -> str:
    cp = ord(c)
    named = _NAMED_ESCAPES.get(cp)
    if named is not None:
        return named
    if 0xDC80 <= cp <= 0xDCFF:
        # A byte that is not part of valid UTF-8 (surrogateescape smuggles it through
        # the decoder as a lone surrogate); Go consumes it alone and prints it as \xHH.
        return f"\\x{cp - 0xDC00:02x}"
    if c == " " or unicodedata.category(c)[0] in "LMNPS":
        return c
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def go_quote(data: bytes | str) -> str:
    """``data`` as Go's ``fmt.Sprintf("%q", data)`` prints it, quotes included.

    Valid UTF-8 is decoded rune by rune; printable runes (Unicode L, M, N, P, S and the
    ASCII space) stay as they are, others get Go's escapes; every byte that does not
    start a valid UTF-8 sequence prints as ``\\xHH``. (Python's decoder and Go's agree
    on what is valid UTF-8, and both reject invalid bytes one at a time here because
    surrogateescape maps every rejected byte on its own.)
    """
    b = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    if _PLAIN_ASCII.issuperset(b):
        return '"' + b.decode("ascii") + '"'
    text = b.decode("utf-8", "surrogateescape")
    return '"' + "".join(map(_quote_rune, text)) + '"'


def go_list(values: Iterable[int]) -> str:
    """A list of integers as Go's ``%v`` prints it: ``[1 2 3]``, empty ``[]``."""
    return "[" + " ".join(map(str, values)) + "]"


def _go_bool(v: bool) -> str:
    return "true" if v else "false"


# --- state ---------------------------------------------------------------------------


def describe_hard_state(hs: HardState) -> str:
    """``Term:1 Vote:1 Commit:3``; the vote is left out when it is zero."""
    if hs.vote != 0:
        return f"Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}"
    return f"Term:{hs.term} Commit:{hs.commit}"


def describe_soft_state(ss: SoftState) -> str:
    """``Lead:1 State:StateLeader`` (the leader id in decimal)."""
    return f"Lead:{ss.lead} State:{ss.raft_state.name}"


def describe_conf_state(cs: ConfState) -> str:
    """All four member lists in stored order, then the auto-leave flag."""
    return (
        f"Voters:{go_list(cs.voters)} VotersOutgoing:{go_list(cs.voters_outgoing)} "
        f"Learners:{go_list(cs.learners)} LearnersNext:{go_list(cs.learners_next)} "
        f"AutoLeave:{_go_bool(cs.auto_leave)}"
    )


def describe_snapshot(snap: Snapshot) -> str:
    """The snapshot's metadata; its data is never printed."""
    m = snap.metadata
    return f"Index:{m.index} Term:{m.term} ConfState:{describe_conf_state(m.conf_state)}"


def describe_read_states(rss: Sequence[ReadState]) -> str:
    """Go's ``%v`` of a ``[]ReadState``: ``[{10 [102 111 111]} {11 []}]``."""
    return "[" + " ".join(f"{{{rs.index} {go_list(rs.request_ctx)}}}" for rs in rss) + "]"


# --- entries and messages ------------------------------------------------------------


def describe_target(id: int) -> str:
    """A message endpoint: ``None``, ``AppendThread``, ``ApplyThread`` or the id in hex."""
    if id == 0:
        return "None"
    if id == LOCAL_APPEND_THREAD:
        return "AppendThread"
    if id == LOCAL_APPLY_THREAD:
        return "ApplyThread"
    return f"{id:x}"


def describe_entry(e: Entry, f: EntryFormatter | None = None) -> str:
    """``{term}/{index} {type}`` followed by the formatted payload, if it is not empty.

    Normal entries format their data with ``f`` (default :func:`go_quote`, so even an
    empty payload prints as ``""``); conf changes print their changes as tokens
    (``v2 r3``); data that does not decode prints the decoder's error.
    """
    t = e.type
    formatted: str
    if t == EntryType.EntryNormal:
        formatted = go_quote(e.data) if f is None else f(e.data)
    elif t == EntryType.EntryConfChange:
        try:
            formatted = conf_changes_to_string(decode_conf_change(e.data).as_v2().changes)
        except DecodeError as err:
            formatted = str(err)
    else:
        try:
            formatted = conf_changes_to_string(decode_conf_change_v2(e.data).changes)
        except DecodeError as err:
            formatted = str(err)
    if formatted:
        return f"{e.term}/{e.index} {t.name} {formatted}"
    return f"{e.term}/{e.index} {t.name}"


def describe_entries(ents: Iterable[Entry], f: EntryFormatter | None = None) -> str:
    """:func:`describe_entry` of each entry, each followed by a line feed."""
    return "".join(describe_entry(e, f) + "\n" for e in ents)


def describe_message(m: Message, f: EntryFormatter | None = None) -> str:
    """One message (and, nested below it, its responses); no trailing line feed."""
    parts: list[str] = []
    _describe_message(parts, "", m, f)
    return "".join(parts)


def _describe_message(out: list[str], indent: str, m: Message, f: EntryFormatter | None) -> None:
    out.append(
        f"{indent}{describe_target(m.from_)}->{describe_target(m.to)} {m.type.name} "
        f"Term:{m.term} Log:{m.log_term}/{m.index}"
    )
    if m.reject:
        out.append(f" Rejected (Hint: {m.reject_hint})")
    if m.commit != 0:
        out.append(f" Commit:{m.commit}")
    if m.vote != 0:
        out.append(f" Vote:{m.vote}")
    ents = m.entries
    if len(ents) == 1:
        out.append(f" Entries:[{describe_entry(ents[0], f)}]")
    elif len(ents) > 1:
        out.append(" Entries:[")
        for e in ents:
            out.append(f"\n{indent}  {describe_entry(e, f)}")
        out.append(f"\n{indent}]")
    s = m.snapshot
    if s is not None and s.metadata.index != 0:
        out.append(f"\n{indent}  Snapshot: {describe_snapshot(s)}")
    if m.responses:
        out.append(" Responses:[")
        inner = indent + "  "
        for r in m.responses:
            out.append("\n")
            _describe_message(out, inner, r, f)
        out.append(f"\n{indent}]")


def describe_conf_change(cc: ConfChange | ConfChangeV2) -> str:
    """A conf change viewed as V2, as etcd logs it (deterministic, not proto text)."""
    v2 = cc.as_v2()
    parts = [f"transition:{v2.transition.name}"]
    for c in v2.changes:
        parts.append(f" changes:{{type:{c.type.name} node_id:{c.node_id}}}")
    if v2.context:
        parts.append(f" context:{go_quote(v2.context)}")
    return "".join(parts)


def describe_ready(rd: Ready, f: EntryFormatter | None = None) -> str:
    """Everything a Ready carries, or ``<empty Ready>`` (without a line feed)."""
    parts: list[str] = []
    if rd.soft_state is not None:
        parts.append(describe_soft_state(rd.soft_state) + "\n")
    hs = rd.hard_state
    if hs is not None and not hs.is_empty():
        parts.append(f"HardState {describe_hard_state(hs)}\n")
    if rd.read_states:
        parts.append(f"ReadStates {describe_read_states(rd.read_states)}\n")
    if rd.entries:
        parts.append("Entries:\n")
        parts.append(describe_entries(rd.entries, f))
    snap = rd.snapshot
    if snap is not None and snap.metadata.index != 0:
        parts.append(f"Snapshot {describe_snapshot(snap)}\n")
    if rd.committed_entries:
        parts.append("CommittedEntries:\n")
        parts.append(describe_entries(rd.committed_entries, f))
    if rd.messages:
        parts.append("Messages:\n")
        for m in rd.messages:
            parts.append(describe_message(m, f) + "\n")
    if parts:
        return f"Ready MustSync={_go_bool(rd.must_sync)}:\n" + "".join(parts)
    return "<empty Ready>"
