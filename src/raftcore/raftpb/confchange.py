"""Conf-change helpers: entry payloads and the compact text form of change lists.

Counterparts of etcd's ``raftpb/confchange.go``: ``marshal_conf_change`` picks the entry
type and payload for a proposed change, ``unmarshal_conf_change`` reads one back, and
``conf_changes_from_string`` / ``conf_changes_to_string`` translate the ``v1 l2 r3 u4``
notation the datadriven scripts use. Error texts are Go's, byte for byte, because the
conformance runners print them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from raftcore.errors import ConfChangeError
from raftcore.raftpb.codec import (
    decode_conf_change,
    decode_conf_change_v2,
    encode_conf_change,
    encode_conf_change_v2,
)
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfChangeV2,
    EntryType,
)

__all__ = [
    "ConfChangeI",
    "conf_changes_from_string",
    "conf_changes_to_string",
    "marshal_conf_change",
    "unmarshal_conf_change",
]

ConfChangeI = ConfChange | ConfChangeV2
"""Either form of configuration change (Go's ``ConfChangeI`` interface)."""


def marshal_conf_change(cc: ConfChangeI | None) -> tuple[EntryType, bytes]:
    """Entry type and payload for proposing ``cc``.

    ``None`` stands for the empty V2 change that leaves a joint configuration; it gets no
    payload at all (as in etcd), so its entry is smaller than an explicitly proposed
    empty V2 change, whose payload carries the transition field (``08 00``).
    """
    if cc is None:
        return EntryType.EntryConfChangeV2, b""
    v1 = cc.as_v1()
    if v1 is not None:
        return EntryType.EntryConfChange, encode_conf_change(v1)
    return EntryType.EntryConfChangeV2, encode_conf_change_v2(cc.as_v2())


def unmarshal_conf_change(t: EntryType, data: bytes) -> ConfChangeI:
    """Decode the payload of a conf-change entry of type ``t``.

    Empty data decodes to an empty change (for V2: the leave-joint change). Raises
    :class:`~raftcore.errors.DecodeError` for malformed data and :class:`ValueError`
    for an entry type that carries no configuration change.
    """
    if t == EntryType.EntryConfChange:
        return decode_conf_change(data)
    if t == EntryType.EntryConfChangeV2:
        return decode_conf_change_v2(data)
    raise ValueError(f"raftpb: entry type {t!s} carries no configuration change")


_TOKEN_TYPES = {
    "v": ConfChangeType.ConfChangeAddNode,
    "l": ConfChangeType.ConfChangeAddLearnerNode,
    "r": ConfChangeType.ConfChangeRemoveNode,
    "u": ConfChangeType.ConfChangeUpdateNode,
}
_TYPE_LETTERS = {t: letter for letter, t in _TOKEN_TYPES.items()}

# Go's strings.TrimSpace trims Unicode White_Space; Python's str.strip() also trims the
# separators U+001C..U+001F, which Go keeps.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def conf_changes_from_string(s: str) -> list[ConfChangeSingle]:
    """Parse a space-separated change list such as ``"v1 l2 r3 u4"``.

    ``vN`` makes N a voter, ``lN`` a learner, ``rN`` removes N, ``uN`` updates N. Like
    etcd, the input is trimmed and split on single spaces (so two spaces in a row make
    an empty token). Raises :class:`ConfChangeError` with etcd's text: ``unknown token
    {tok}`` (shorter than two characters), ``unknown input: {tok}`` (another letter), or
    Go's ``strconv.ParseUint`` error for a bad number.
    """
    s = s.strip(_GO_SPACE)
    if not s:
        return []
    out = []
    for tok in s.split(" "):
        if len(_go_bytes(tok)) < 2:  # Go counts bytes
            raise ConfChangeError(f"unknown token {tok}")
        typ = _TOKEN_TYPES.get(tok[0])
        if typ is None:
            raise ConfChangeError(f"unknown input: {tok}")
        out.append(ConfChangeSingle(typ, _parse_uint64(tok[1:])))
    return out


def conf_changes_to_string(ccs: Iterable[ConfChangeSingle]) -> str:
    """The inverse of :func:`conf_changes_from_string` (``"v1 l2"``; ``""`` if empty).

    A type outside the enum prints as ``unknown`` followed by the id, as in etcd.
    """
    return " ".join(f"{_TYPE_LETTERS.get(cc.type, 'unknown')}{cc.node_id}" for cc in ccs)


def _parse_uint64(s: str) -> int:
    """Go's ``strconv.ParseUint(s, 10, 64)``, including its error texts."""
    if not s:
        raise ConfChangeError(_num_error(s, "invalid syntax"))
    n = 0
    # Go scans bytes left to right and reports the first problem it meets: a
    # non-digit is a syntax error, an overflow a range error, whichever comes first.
    for c in _go_bytes(s):
        if not 0x30 <= c <= 0x39:
            raise ConfChangeError(_num_error(s, "invalid syntax"))
        n = n * 10 + (c - 0x30)
        if n >= 1 << 64:
            raise ConfChangeError(_num_error(s, "value out of range"))
    return n


def _go_bytes(s: str) -> bytes:
    """The bytes Go would hold for ``s``: UTF-8, surrogate escapes mapped back to bytes."""
    if s.isascii():
        return s.encode()
    out = bytearray()
    for ch in s:
        cp = ord(ch)
        if 0xDC80 <= cp <= 0xDCFF:
            out.append(cp - 0xDC00)
        else:
            out += ch.encode("utf-8", "surrogatepass")
    return bytes(out)


def _num_error(s: str, reason: str) -> str:
    return f"strconv.ParseUint: parsing {_go_quote(s)}: {reason}"


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` of the UTF-8 bytes of ``s``.

    Surrogate-escaped bytes (U+DC80..U+DCFF, from ``errors="surrogateescape"``) and any
    other lone surrogate are invalid UTF-8 to Go and print as ``\\xNN`` per byte.
    """
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            out.extend(f"\\x{b:02x}" for b in _go_bytes(ch))
        elif ch == " " or unicodedata.category(ch)[0] in "LMNPS":
            out.append(ch)
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)
