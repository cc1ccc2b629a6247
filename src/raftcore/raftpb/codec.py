"""Protobuf wire codec for the types in :mod:`raftcore.raftpb.types`.

The bytes are the ones etcd's Go code (google.golang.org/protobuf, proto2) produces;
the tests cross-check them against the installed ``google.protobuf`` runtime.

Why hand-written rather than on top of that runtime: raftcore has no runtime
dependencies, and the codec needs control the runtime does not offer: etcd's presence
choices (below), strict decoding, error messages with offsets, and no conversion
between raftcore's classes and generated ones. Speed is about even, not better:
``bench/bench_codec.py`` measures against upb *including* that conversion and finds
small messages and MsgApp encoding on par, while decoding an entry-heavy MsgApp runs at
about half upb's rate (upb parses in C; per-entry parsing in Python costs more than
per-entry attribute copying). :func:`entry_size`, the one function raft calls on its
hot path, involves no encoding at all.

Encoding rules
    * Fields are written in ascending field-number order, as protobuf-go does (so
      ``Message.vote`` = 13 comes after ``context`` = 12).
    * A scalar is written iff it is non-zero, a bytes field iff it is non-empty, a
      repeated field once per element (``uint64`` lists unpacked, proto2's default), a
      nested message iff its own encoding is non-empty.
    * Exceptions follow what etcd's Go code actually sets: ``Message.snapshot`` is
      written whenever it is not ``None`` (even if empty); ``ConfChange.type`` and
      ``node_id``, ``ConfChangeSingle.type`` and ``node_id`` and
      ``ConfChangeV2.transition`` are always written, because etcd always sets them and
      their bytes feed the entry sizes raft's flow control depends on.
    * An integer outside ``0 .. 2**64-1`` raises :class:`ValueError`.

Decoding rules
    * Any valid proto2 wire data is accepted: fields in any order, repeated ``uint64``
      packed or unpacked, unknown fields (including groups) skipped, last value wins for
      scalars, repeated occurrences of a singular nested message merged (by decoding
      their concatenation, which is protobuf's definition of merging).
    * Malformed input raises :class:`~raftcore.errors.DecodeError` (only that), naming
      the problem and its byte offset in the input: truncated varints or lengths past
      the end, varints over 64 bits, invalid field numbers (0, above 2**29-1) or wire
      types, a known field
      with the wrong wire type, unbalanced groups, nesting deeper than
      :data:`MAX_DEPTH`.
    * Enum fields are read as protobuf's int32 (the low 32 bits of the varint). A value
      that is not a member of the Python enum raises :class:`DecodeError`. Deliberate:
      protobuf's closed-enum rule would move such a field into the unknown fields and
      leave the default (``EntryNormal``, ``MsgHup`` ...), silently turning for instance
      a conf-change entry of a future type into a normal entry.
    * Likewise a known field carrying the wrong wire type is an error here, where the
      protobuf runtimes treat it as an unknown field: dropping a known field silently
      is never what raft wants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

from raftcore.errors import DecodeError
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

__all__ = [
    "MAX_DEPTH",
    "decode",
    "decode_conf_change",
    "decode_conf_change_single",
    "decode_conf_change_v2",
    "decode_conf_state",
    "decode_entry",
    "decode_hard_state",
    "decode_message",
    "decode_snapshot",
    "decode_snapshot_metadata",
    "encode",
    "encode_conf_change",
    "encode_conf_change_single",
    "encode_conf_change_v2",
    "encode_conf_state",
    "encode_entry",
    "encode_hard_state",
    "encode_message",
    "encode_snapshot",
    "encode_snapshot_metadata",
    "entry_size",
    "varint_size",
]

MAX_DEPTH: Final = 100
"""Deepest nesting of messages (and of groups inside unknown fields) ``decode_*`` accept.

protobuf-go allows 10000; Python's own stack would not, and raft's messages never nest
more than a handful of levels (Message → responses → Message → snapshot → metadata →
conf_state).
"""

_U64_LIMIT: Final = 1 << 64


# --------------------------------------------------------------------------- sizes


def varint_size(v: int) -> int:
    """Bytes the unsigned varint encoding of ``v`` takes (1 to 10)."""
    if v < 0x80:
        return 1
    if v < 0x4000:
        return 2
    if v < 0x200000:
        return 3
    if v < 0x10000000:
        return 4
    return (v.bit_length() + 6) // 7


def entry_size(e: Entry) -> int:
    """Encoded size of ``e``, each field counted iff non-zero / non-empty.

    This is the number raft's size limits add up (etcd's ``proto.Size``); it is called
    once per entry on the hot path, hence the unrolled small-value branches. It equals
    etcd's size for every entry raft builds except one that carries no presence bit
    here: the normal entry replacing a refused conf change, where etcd sets ``Type`` to
    0 explicitly (2 bytes more in etcd).
    """
    n = 2 if e.type else 0  # every EntryType value is below 128
    v: int = e.term
    if v:
        n += 2 if v < 0x80 else 3 if v < 0x4000 else 1 + varint_size(v)
    v = e.index
    if v:
        n += 2 if v < 0x80 else 3 if v < 0x4000 else 1 + varint_size(v)
    d = e.data
    if d:
        v = len(d)
        n += v + (2 if v < 0x80 else 3 if v < 0x4000 else 1 + varint_size(v))
    return n


# ------------------------------------------------------------------------ encoding
#
# Writers append to one bytearray. Keys are single bytes because every field number
# is below 16. A varint of up to three bytes is assembled as an integer (key in the
# low byte) and written with one int.to_bytes: far fewer interpreter steps than a
# byte-at-a-time loop, which only longer values and out-of-range ones take.


def _key_varint(key: int, v: int) -> bytes:
    """``key`` followed by the varint ``v`` (checked to be a uint64)."""
    if v < 0 or v >= _U64_LIMIT:
        raise ValueError(f"raftpb: {v} does not fit in uint64")
    out = bytearray((key,))
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _put_uint(buf: bytearray, key: int, v: int) -> None:
    """Write field ``key`` with the varint ``v``."""
    if 0 <= v < 0x80:
        buf.append(key)
        buf.append(v)
    elif 0x80 <= v < 0x4000:
        buf += (key | 0x8000 | ((v & 0x7F) << 8) | ((v >> 7) << 16)).to_bytes(3, "little")
    elif 0x4000 <= v < 0x200000:
        buf += (
            key | 0x808000 | ((v & 0x7F) << 8) | ((v & 0x3F80) << 9) | ((v >> 14) << 24)
        ).to_bytes(4, "little")
    else:
        buf += _key_varint(key, v)


def _put_bytes(buf: bytearray, key: int, d: bytes | bytearray) -> None:
    """Write the length-delimited field ``key`` holding ``d``."""
    _put_uint(buf, key, len(d))
    buf += d


# Lazily filled caches of the two length headers every entry of a MsgApp carries: the
# entry's own (Message.entries key 0x3A + body length) and its data field's (key 0x22 +
# data length). Lengths below _LEN_CACHED only: a few hundred kilobytes at most, while
# longer entries are dominated by copying their data anyway.
_LEN_CACHED: Final = 0x800
_ENTRY_LEN_B: Final[list[bytes | None]] = [None] * _LEN_CACHED
_DATA_LEN_B: Final[list[bytes | None]] = [None] * _LEN_CACHED
_DATA_LEN_B[0] = b""  # no data, no field


def _entries_bytes(ents: Sequence[Entry]) -> bytes:
    """All of ``ents`` as ``Message.entries`` fields: the hot part of MsgApp encoding.

    Each entry is written as five pieces joined once at the end: the length prefix and
    the data field header (from the caches above), the term field (rebuilt only when
    the term changes, which within one message it rarely does), the index field
    (assembled as an integer and written with one ``int.to_bytes``) and the data.
    """
    parts: list[bytes] = []
    add = parts.extend
    kv = _key_varint
    entry_len_b = _ENTRY_LEN_B
    data_len_b = _DATA_LEN_B
    cached = _LEN_CACHED
    term_b = data_b = len_b = b""
    last_term = last_dl = last_n = -1
    tw = dw = 0
    for e in ents:
        term = e.term
        idx = e.index
        d = e.data
        if e.type:
            # Conf-change entries are rare: the general writer handles them.
            body = bytearray()
            _w_entry(body, e)
            add((kv(0x3A, len(body)), bytes(body)))
            continue
        if term != last_term:
            term_b = kv(0x10, term) if term else b""
            tw = len(term_b)
            last_term = term
        if 0x4000 <= idx < 0x200000:
            idx_b = (
                0x808018 | ((idx & 0x7F) << 8) | ((idx & 0x3F80) << 9) | ((idx >> 14) << 24)
            ).to_bytes(4, "little")
            n = 4
        elif 0x200000 <= idx < 0x10000000:
            idx_b = (
                0x80808018
                | ((idx & 0x7F) << 8)
                | ((idx & 0x3F80) << 9)
                | ((idx & 0x1FC000) << 10)
                | ((idx >> 21) << 32)
            ).to_bytes(5, "little")
            n = 5
        else:
            idx_b = kv(0x18, idx) if idx else b""
            n = len(idx_b)
        dl = len(d)
        if dl != last_dl:
            if dl < cached:
                data_b = data_len_b[dl]  # type: ignore[assignment]
                if data_b is None:
                    data_b = data_len_b[dl] = kv(0x22, dl)
            else:
                data_b = kv(0x22, dl)
            dw = len(data_b)
            last_dl = dl
        n += tw + dw + dl
        if n != last_n:
            if n < cached:
                len_b = entry_len_b[n]  # type: ignore[assignment]
                if len_b is None:
                    len_b = entry_len_b[n] = kv(0x3A, n)
            else:
                len_b = kv(0x3A, n)
            last_n = n
        add((len_b, term_b, idx_b, data_b, d))
    return b"".join(parts)


def _w_entry(buf: bytearray, e: Entry) -> None:
    if e.type:
        _put_uint(buf, 0x08, e.type)
    if e.term:
        _put_uint(buf, 0x10, e.term)
    if e.index:
        _put_uint(buf, 0x18, e.index)
    if e.data:
        _put_bytes(buf, 0x22, e.data)


def _w_conf_state(buf: bytearray, cs: ConfState) -> None:
    for key, ids in (
        (0x08, cs.voters),
        (0x10, cs.learners),
        (0x18, cs.voters_outgoing),
        (0x20, cs.learners_next),
    ):
        for v in ids:
            _put_uint(buf, key, v)
    if cs.auto_leave:
        buf += b"\x28\x01"


def _w_snapshot_metadata(buf: bytearray, md: SnapshotMetadata) -> None:
    body = bytearray()
    _w_conf_state(body, md.conf_state)
    if body:
        _put_bytes(buf, 0x0A, body)
    if md.index:
        _put_uint(buf, 0x10, md.index)
    if md.term:
        _put_uint(buf, 0x18, md.term)


def _w_snapshot(buf: bytearray, s: Snapshot) -> None:
    if s.data:
        _put_bytes(buf, 0x0A, s.data)
    body = bytearray()
    _w_snapshot_metadata(body, s.metadata)
    if body:
        _put_bytes(buf, 0x12, body)


def _w_message(buf: bytearray, m: Message) -> None:
    ap = buf.append
    v: int = m.type
    if v:
        if 0 < v < 0x80:
            ap(0x08)
            ap(v)
        else:
            _put_uint(buf, 0x08, v)
    v = m.to
    if v:
        if 0 < v < 0x80:
            ap(0x10)
            ap(v)
        else:
            _put_uint(buf, 0x10, v)
    v = m.from_
    if v:
        if 0 < v < 0x80:
            ap(0x18)
            ap(v)
        else:
            _put_uint(buf, 0x18, v)
    v = m.term
    if v:
        if 0 < v < 0x80:
            ap(0x20)
            ap(v)
        else:
            _put_uint(buf, 0x20, v)
    v = m.log_term
    if v:
        _put_uint(buf, 0x28, v)
    v = m.index
    if v:
        _put_uint(buf, 0x30, v)
    if m.entries:
        buf += _entries_bytes(m.entries)
    v = m.commit
    if v:
        _put_uint(buf, 0x40, v)
    s = m.snapshot
    if s is not None:
        body = bytearray()
        _w_snapshot(body, s)
        _put_bytes(buf, 0x4A, body)
    if m.reject:
        buf += b"\x50\x01"
    v = m.reject_hint
    if v:
        _put_uint(buf, 0x58, v)
    if m.context:
        _put_bytes(buf, 0x62, m.context)
    v = m.vote
    if v:
        _put_uint(buf, 0x68, v)
    for r in m.responses:
        body = bytearray()
        _w_message(body, r)
        _put_bytes(buf, 0x72, body)


def _w_hard_state(buf: bytearray, hs: HardState) -> None:
    if hs.term:
        _put_uint(buf, 0x08, hs.term)
    if hs.vote:
        _put_uint(buf, 0x10, hs.vote)
    if hs.commit:
        _put_uint(buf, 0x18, hs.commit)


def _w_conf_change(buf: bytearray, cc: ConfChange) -> None:
    if cc.id:
        _put_uint(buf, 0x08, cc.id)
    _put_uint(buf, 0x10, cc.type)
    _put_uint(buf, 0x18, cc.node_id)
    if cc.context:
        _put_bytes(buf, 0x22, cc.context)


def _w_conf_change_single(buf: bytearray, cc: ConfChangeSingle) -> None:
    _put_uint(buf, 0x08, cc.type)
    _put_uint(buf, 0x10, cc.node_id)


def _w_conf_change_v2(buf: bytearray, cc: ConfChangeV2) -> None:
    _put_uint(buf, 0x08, cc.transition)
    for c in cc.changes:
        body = bytearray()
        _w_conf_change_single(body, c)
        _put_bytes(buf, 0x12, body)
    if cc.context:
        _put_bytes(buf, 0x1A, cc.context)


def _encode(writer: Callable[[bytearray, _T], None], obj: _T) -> bytes:
    buf = bytearray()
    writer(buf, obj)
    return bytes(buf)


def encode_entry(e: Entry) -> bytes:
    """Wire encoding of an :class:`Entry` (``len(encode_entry(e)) == entry_size(e)``)."""
    return _encode(_w_entry, e)


def encode_message(m: Message) -> bytes:
    """Wire encoding of a :class:`Message`, nested entries/snapshot/responses included."""
    return _encode(_w_message, m)


def encode_hard_state(hs: HardState) -> bytes:
    """Wire encoding of a :class:`HardState`."""
    return _encode(_w_hard_state, hs)


def encode_conf_state(cs: ConfState) -> bytes:
    """Wire encoding of a :class:`ConfState` (``uint64`` lists unpacked)."""
    return _encode(_w_conf_state, cs)


def encode_snapshot_metadata(md: SnapshotMetadata) -> bytes:
    """Wire encoding of a :class:`SnapshotMetadata`."""
    return _encode(_w_snapshot_metadata, md)


def encode_snapshot(s: Snapshot) -> bytes:
    """Wire encoding of a :class:`Snapshot`."""
    return _encode(_w_snapshot, s)


def encode_conf_change(cc: ConfChange) -> bytes:
    """Wire encoding of a V1 :class:`ConfChange` (type and node id always written)."""
    return _encode(_w_conf_change, cc)


def encode_conf_change_single(cc: ConfChangeSingle) -> bytes:
    """Wire encoding of a :class:`ConfChangeSingle` (type and node id always written)."""
    return _encode(_w_conf_change_single, cc)


def encode_conf_change_v2(cc: ConfChangeV2) -> bytes:
    """Wire encoding of a :class:`ConfChangeV2` (transition always written)."""
    return _encode(_w_conf_change_v2, cc)


# ------------------------------------------------------------------------ decoding
#
# Every decoder reads data[pos:end] (end is the enclosing length-delimited field's end)
# without slicing, and returns the object. Offsets in errors are absolute positions in
# the caller's buffer. The common single-byte varint is read inline; the rest goes
# through _varint, which also reports truncation and overflow.

_WIRE_NAMES: Final = ("varint", "fixed64", "bytes", "start-group", "end-group", "fixed32")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a varint at ``pos``; return ``(value, new_pos)``.

    Values up to four bytes (below 2**28: every realistic index and term) take the
    unrolled path; the loop handles the rest and every error.
    """
    if pos + 4 <= end:
        b = data[pos]
        if b < 0x80:
            return b, pos + 1
        v = b & 0x7F
        b = data[pos + 1]
        if b < 0x80:
            return v | (b << 7), pos + 2
        v |= (b & 0x7F) << 7
        b = data[pos + 2]
        if b < 0x80:
            return v | (b << 14), pos + 3
        v |= (b & 0x7F) << 14
        b = data[pos + 3]
        if b < 0x80:
            return v | (b << 21), pos + 4
    start = pos
    result = 0
    shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        if b < 0x80:
            if shift == 63 and b > 1:
                raise DecodeError(f"varint overflows 64 bits at offset {start}")
            return result | (b << shift), pos
        if shift == 63:
            raise DecodeError(f"varint overflows 64 bits at offset {start}")
        result |= (b & 0x7F) << shift
        shift += 7
    raise DecodeError(f"truncated varint at offset {start}")


def _length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a length prefix at ``pos``; return ``(end_of_payload, payload_start)``."""
    start = pos
    if pos < end and data[pos] < 0x80:
        n = data[pos]
        pos += 1
    else:
        n, pos = _varint(data, pos, end)
    if n > end - pos:
        raise DecodeError(
            f"length {n} at offset {start} runs past the end of its enclosing data (offset {end})"
        )
    return pos + n, pos


def _check_key(key: int, kpos: int) -> None:
    """Reject keys with field number 0, above 2**29-1, or wire type 6/7."""
    num = key >> 3
    if num == 0 or num > 0x1FFFFFFF:
        raise DecodeError(f"invalid field number {num} at offset {kpos}")
    if (key & 7) > 5:
        raise DecodeError(f"invalid wire type {key & 7} at offset {kpos}")


def _skip(data: bytes, pos: int, end: int, key: int, kpos: int) -> int:
    """Skip the value of an unknown field whose (checked) key at ``kpos`` was just read."""
    wt = key & 7
    if wt == 0:
        return _varint(data, pos, end)[1]
    if wt == 2:
        return _length(data, pos, end)[0]
    if wt == 1 or wt == 5:
        npos = pos + (8 if wt == 1 else 4)
        if npos > end:
            raise DecodeError(f"truncated {_WIRE_NAMES[wt]} value at offset {pos}")
        return npos
    if wt == 3:
        # Groups are deprecated but valid proto2; skip them without recursion.
        stack = [key >> 3]
        while stack:
            if pos >= end:
                raise DecodeError(f"unterminated group (field {stack[-1]}) at offset {kpos}")
            k2pos = pos
            k2, pos = _varint(data, pos, end)
            _check_key(k2, k2pos)
            w2 = k2 & 7
            if w2 == 3:
                if len(stack) >= MAX_DEPTH:
                    raise DecodeError(f"groups nested deeper than {MAX_DEPTH} at offset {k2pos}")
                stack.append(k2 >> 3)
            elif w2 == 4:
                if stack.pop() != k2 >> 3:
                    raise DecodeError(f"mismatched end-group (field {k2 >> 3}) at offset {k2pos}")
            else:
                pos = _skip(data, pos, end, k2, k2pos)
        return pos
    raise DecodeError(f"unexpected end-group (field {key >> 3}) at offset {kpos}")


def _field(
    data: bytes, pos: int, end: int, key: int, kpos: int, fields: dict[int, tuple[str, str]]
) -> int:
    """Handle a key no decoder branch matched: skip it if unknown, else a wire-type error.

    Decoders match only valid keys of known fields, so every invalid key lands here and
    is checked here, off the hot path.
    """
    _check_key(key, kpos)
    known = fields.get(key >> 3)
    if known is None:
        return _skip(data, pos, end, key, kpos)
    name, want = known
    raise DecodeError(
        f"field {name} has wire type {_WIRE_NAMES[key & 7]}, want {want} at offset {kpos}"
    )


# Known fields per message, by number: (name for error messages, wire type expected).
_V, _B, _P = "varint", "bytes", "varint or bytes (packed)"
_ENTRY_FIELDS: Final = {
    1: ("Entry.Type", _V),
    2: ("Entry.Term", _V),
    3: ("Entry.Index", _V),
    4: ("Entry.Data", _B),
}
_MESSAGE_FIELDS: Final = {
    1: ("Message.type", _V),
    2: ("Message.to", _V),
    3: ("Message.from", _V),
    4: ("Message.term", _V),
    5: ("Message.logTerm", _V),
    6: ("Message.index", _V),
    7: ("Message.entries", _B),
    8: ("Message.commit", _V),
    9: ("Message.snapshot", _B),
    10: ("Message.reject", _V),
    11: ("Message.rejectHint", _V),
    12: ("Message.context", _B),
    13: ("Message.vote", _V),
    14: ("Message.responses", _B),
}
_HARD_STATE_FIELDS: Final = {
    1: ("HardState.term", _V),
    2: ("HardState.vote", _V),
    3: ("HardState.commit", _V),
}
_CONF_STATE_FIELDS: Final = {
    1: ("ConfState.voters", _P),
    2: ("ConfState.learners", _P),
    3: ("ConfState.voters_outgoing", _P),
    4: ("ConfState.learners_next", _P),
    5: ("ConfState.auto_leave", _V),
}
_SNAPSHOT_METADATA_FIELDS: Final = {
    1: ("SnapshotMetadata.conf_state", _B),
    2: ("SnapshotMetadata.index", _V),
    3: ("SnapshotMetadata.term", _V),
}
_SNAPSHOT_FIELDS: Final = {1: ("Snapshot.data", _B), 2: ("Snapshot.metadata", _B)}
_CONF_CHANGE_FIELDS: Final = {
    1: ("ConfChange.id", _V),
    2: ("ConfChange.type", _V),
    3: ("ConfChange.node_id", _V),
    4: ("ConfChange.context", _B),
}
_CONF_CHANGE_SINGLE_FIELDS: Final = {
    1: ("ConfChangeSingle.type", _V),
    2: ("ConfChangeSingle.node_id", _V),
}
_CONF_CHANGE_V2_FIELDS: Final = {
    1: ("ConfChangeV2.transition", _V),
    2: ("ConfChangeV2.changes", _B),
    3: ("ConfChangeV2.context", _B),
}

_E = TypeVar("_E")


def _enum(table: tuple[_E, ...], v: int, what: str, pos: int) -> _E:
    """Map a wire varint to an enum member the way protobuf reads an int32 enum."""
    k = v & 0xFFFFFFFF  # int32 truncation; negative values land above every member
    if k < len(table):
        return table[k]
    if k >= 0x80000000:
        k -= 1 << 32
    raise DecodeError(f"unknown {what} value {k} at offset {pos}")


# Enum members indexed by value (every raft enum runs 0, 1, 2, ... without gaps).
_ENTRY_TYPES: Final = tuple(EntryType)
_MESSAGE_TYPES: Final = tuple(MessageType)
_CC_TYPES: Final = tuple(ConfChangeType)
_CC_TRANSITIONS: Final = tuple(ConfChangeTransition)
assert all(
    int(member) == i
    for table in (_ENTRY_TYPES, _MESSAGE_TYPES, _CC_TYPES, _CC_TRANSITIONS)
    for i, member in enumerate(table)
)


def _d_entry(data: bytes, pos: int, end: int) -> Entry:
    etype = EntryType.EntryNormal
    term = index = 0
    d = b""
    while pos < end:
        kpos = pos
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(data, pos, end)
        if key == 0x10:
            term, pos = _varint(data, pos, end)
        elif key == 0x18:
            index, pos = _varint(data, pos, end)
        elif key == 0x22:
            dend, pos = _length(data, pos, end)
            d = data[pos:dend]
            pos = dend
        elif key == 0x08:
            vpos = pos
            v, pos = _varint(data, pos, end)
            etype = _enum(_ENTRY_TYPES, v, "EntryType", vpos)
        else:
            pos = _field(data, pos, end, key, kpos, _ENTRY_FIELDS)
    return Entry(term, index, etype, d)


def _d_conf_state(data: bytes, pos: int, end: int) -> ConfState:
    lists: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
    auto_leave = False
    while pos < end:
        kpos = pos
        key, pos = _varint(data, pos, end)
        num = key >> 3
        wt = key & 7
        if 1 <= num <= 4 and wt == 0:
            v, pos = _varint(data, pos, end)
            lists[num - 1].append(v)
        elif 1 <= num <= 4 and wt == 2:
            pend, pos = _length(data, pos, end)
            out = lists[num - 1]
            while pos < pend:
                v, pos = _varint(data, pos, pend)
                out.append(v)
        elif key == 0x28:
            v, pos = _varint(data, pos, end)
            auto_leave = v != 0
        else:
            pos = _field(data, pos, end, key, kpos, _CONF_STATE_FIELDS)
    return ConfState(lists[0], lists[1], lists[2], lists[3], auto_leave)


class _Merger:
    """Collects repeated occurrences of a singular nested message field.

    protobuf merges such occurrences; decoding the concatenation of their payloads is
    exactly that merge. Each occurrence is decoded on its own first (so errors report
    offsets in the caller's buffer); only a second occurrence costs a copy.
    """

    __slots__ = ("first", "joined")

    def __init__(self) -> None:
        self.first: tuple[int, int] | None = None
        self.joined: bytes | None = None

    def add(self, data: bytes, pos: int, end: int) -> bytes | None:
        """Record ``data[pos:end]``; return the concatenation once there are two or more."""
        if self.first is None:
            self.first = (pos, end)
            return None
        if self.joined is None:
            s, e = self.first
            self.joined = data[s:e]
        self.joined += data[pos:end]
        return self.joined


def _d_snapshot_metadata(data: bytes, pos: int, end: int, depth: int) -> SnapshotMetadata:
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages nested deeper than {MAX_DEPTH} at offset {pos}")
    cs: ConfState | None = None
    merge: _Merger | None = None
    index = term = 0
    while pos < end:
        kpos = pos
        key, pos = _varint(data, pos, end)
        if key == 0x0A:
            cend, pos = _length(data, pos, end)
            cs = _d_conf_state(data, pos, cend)
            if merge is None:
                merge = _Merger()
            joined = merge.add(data, pos, cend)
            if joined is not None:
                cs = _d_conf_state(joined, 0, len(joined))
            pos = cend
        elif key == 0x10:
            index, pos = _varint(data, pos, end)
        elif key == 0x18:
            term, pos = _varint(data, pos, end)
        else:
            pos = _field(data, pos, end, key, kpos, _SNAPSHOT_METADATA_FIELDS)
    return SnapshotMetadata(cs if cs is not None else ConfState(), index, term)


def _d_snapshot(data: bytes, pos: int, end: int, depth: int) -> Snapshot:
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages nested deeper than {MAX_DEPTH} at offset {pos}")
    d = b""
    md: SnapshotMetadata | None = None
    merge: _Merger | None = None
    while pos < end:
        kpos = pos
        key, pos = _varint(data, pos, end)
        if key == 0x0A:
            dend, pos = _length(data, pos, end)
            d = data[pos:dend]
            pos = dend
        elif key == 0x12:
            mend, pos = _length(data, pos, end)
            md = _d_snapshot_metadata(data, pos, mend, depth + 1)
            if merge is None:
                merge = _Merger()
            joined = merge.add(data, pos, mend)
            if joined is not None:
                md = _d_snapshot_metadata(joined, 0, len(joined), depth + 1)
            pos = mend
        else:
            pos = _field(data, pos, end, key, kpos, _SNAPSHOT_FIELDS)
    return Snapshot(d, md if md is not None else SnapshotMetadata())


# Message decoding collects the constructor's positional arguments in a list.
# _MSG_UINT maps the single-byte key of each plain uint64 field to its argument slot
# (0: not such a field); the other fields have their own branches.
_MSG_DEFAULTS: Final[list[Any]] = [
    MessageType.MsgHup,  # 0 type
    0,  # 1 to
    0,  # 2 from_
    0,  # 3 term
    0,  # 4 log_term
    0,  # 5 index
    (),  # 6 entries
    0,  # 7 commit
    0,  # 8 vote
    None,  # 9 snapshot
    False,  # 10 reject
    0,  # 11 reject_hint
    b"",  # 12 context
    (),  # 13 responses
]
_MSG_UINT: Final = [0] * 0x80
for _key, _slot in ((0x10, 1), (0x18, 2), (0x20, 3), (0x28, 4), (0x30, 5), (0x40, 7), (0x68, 8)):
    _MSG_UINT[_key] = _slot
_MSG_UINT[0x58] = 11
del _key, _slot


def _d_message(data: bytes, pos: int, end: int, depth: int) -> Message:
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages nested deeper than {MAX_DEPTH} at offset {pos}")
    vals = _MSG_DEFAULTS.copy()
    uint = _MSG_UINT
    varint = _varint
    merge: _Merger | None = None
    while pos < end:
        kpos = pos
        key = data[pos]
        pos += 1
        if key >= 0x80:
            # A multi-byte key: a field numbered 16 or more (unknown), an invalid key,
            # or an over-long encoding of a small key, handled like the short one.
            key, pos = varint(data, kpos, end)
            if key >= 0x80:
                pos = _field(data, pos, end, key, kpos, _MESSAGE_FIELDS)
                continue
        slot = uint[key]
        if slot:
            if pos < end and data[pos] < 0x80:
                vals[slot] = data[pos]
                pos += 1
            else:
                vals[slot], pos = varint(data, pos, end)
        elif key == 0x3A:
            pos = _d_entries(data, pos, end, vals)
        elif key == 0x08:
            vpos = pos
            v, pos = varint(data, pos, end)
            vals[0] = _enum(_MESSAGE_TYPES, v, "MessageType", vpos)
        elif key == 0x50:
            v, pos = varint(data, pos, end)
            vals[10] = v != 0
        elif key == 0x62:
            cend, pos = _length(data, pos, end)
            vals[12] = data[pos:cend]
            pos = cend
        elif key == 0x4A:
            send, pos = _length(data, pos, end)
            vals[9] = _d_snapshot(data, pos, send, depth + 1)
            if merge is None:
                merge = _Merger()
            joined = merge.add(data, pos, send)
            if joined is not None:
                vals[9] = _d_snapshot(joined, 0, len(joined), depth + 1)
            pos = send
        elif key == 0x72:
            rend, pos = _length(data, pos, end)
            r = _d_message(data, pos, rend, depth + 1)
            if vals[13]:
                vals[13].append(r)
            else:
                vals[13] = [r]
            pos = rend
        else:
            pos = _field(data, pos, end, key, kpos, _MESSAGE_FIELDS)
    return Message(*vals)


def _d_entries(data: bytes, pos: int, end: int, vals: list[Any]) -> int:
    """Decode a run of consecutive ``Message.entries`` fields into ``vals[6]``.

    ``pos`` is just past the first entry's key; returns the position after the run.
    MsgApp decoding spends nearly all its time here, so the canonical layout (term,
    index, data in this order, each at most once, type absent) is parsed with unrolled
    straight-line code that may read past the entry, or even fail, on other input: its
    result is used only when it consumed exactly the entry's bytes. Anything else (a
    type, an unknown field, a duplicate, malformed data) is decoded again by
    :func:`_d_entry`, which knows every rule and reports every error.
    """
    ents = vals[6]
    if not ents:
        ents = vals[6] = []
    append = ents.append
    varint = _varint
    new_entry = Entry
    normal = EntryType.EntryNormal
    while True:
        if pos < end and data[pos] < 0x80:
            eend = pos + 1 + data[pos]
            pos += 1
            if eend > end:
                _length(data, pos - 1, end)  # raises with the full message
        else:
            eend, pos = _length(data, pos, end)
        p = pos
        term = index = 0
        d = b""
        try:
            if data[p] == 0x10:
                term = data[p + 1]
                p += 2
                if term >= 0x80:
                    term, p = varint(data, p - 1, end)
            if data[p] == 0x18:
                index = data[p + 1]
                p += 2
                if index >= 0x80:
                    c = data[p]
                    p += 1
                    index = (index & 0x7F) | (c << 7)
                    if c >= 0x80:
                        c = data[p]
                        p += 1
                        index = (index & 0x3FFF) | (c << 14)
                        if c >= 0x80:
                            index, p = varint(data, p - 3, end)
            if data[p] == 0x22:
                n = data[p + 1]
                p += 2
                if n >= 0x80:
                    c = data[p]
                    p += 1
                    n = (n & 0x7F) | (c << 7)
                    if c >= 0x80:
                        n, p = varint(data, p - 2, end)
                d = data[p : p + n]
                p += n
        except (IndexError, DecodeError):
            p = -1
        if p == eend:
            append(new_entry(term, index, normal, d))
        else:
            append(_d_entry(data, pos, eend))
        pos = eend
        if pos < end and data[pos] == 0x3A:
            pos += 1
        else:
            return pos


def _d_hard_state(data: bytes, pos: int, end: int) -> HardState:
    vals = [0, 0, 0]
    while pos < end:
        kpos = pos
        key, pos = _varint(data, pos, end)
        if key == 0x08 or key == 0x10 or key == 0x18:
            vals[(key >> 3) - 1], pos = _varint(data, pos, end)
        else:
            pos = _field(data, pos, end, key, kpos, _HARD_STATE_FIELDS)
    return HardState(vals[0], vals[1], vals[2])


def _d_conf_change(data: bytes, pos: int, end: int) -> ConfChange:
    cc = ConfChange()
    while pos < end:
        kpos = pos
        key, pos = _varint(data, pos, end)
        if key == 0x08:
            cc.id, pos = _varint(data, pos, end)
        elif key == 0x10:
            vpos = pos
            v, pos = _varint(data, pos, end)
            cc.type = _enum(_CC_TYPES, v, "ConfChangeType", vpos)
        elif key == 0x18:
            cc.node_id, pos = _varint(data, pos, end)
        elif key == 0x22:
            cend, pos = _length(data, pos, end)
            cc.context = data[pos:cend]
            pos = cend
        else:
            pos = _field(data, pos, end, key, kpos, _CONF_CHANGE_FIELDS)
    return cc


def _d_conf_change_single(data: bytes, pos: int, end: int) -> ConfChangeSingle:
    cc = ConfChangeSingle()
    while pos < end:
        kpos = pos
        key, pos = _varint(data, pos, end)
        if key == 0x08:
            vpos = pos
            v, pos = _varint(data, pos, end)
            cc.type = _enum(_CC_TYPES, v, "ConfChangeType", vpos)
        elif key == 0x10:
            cc.node_id, pos = _varint(data, pos, end)
        else:
            pos = _field(data, pos, end, key, kpos, _CONF_CHANGE_SINGLE_FIELDS)
    return cc


def _d_conf_change_v2(data: bytes, pos: int, end: int) -> ConfChangeV2:
    cc = ConfChangeV2()
    while pos < end:
        kpos = pos
        key, pos = _varint(data, pos, end)
        if key == 0x08:
            vpos = pos
            v, pos = _varint(data, pos, end)
            cc.transition = _enum(_CC_TRANSITIONS, v, "ConfChangeTransition", vpos)
        elif key == 0x12:
            cend, pos = _length(data, pos, end)
            cc.changes.append(_d_conf_change_single(data, pos, cend))
            pos = cend
        elif key == 0x1A:
            cend, pos = _length(data, pos, end)
            cc.context = data[pos:cend]
            pos = cend
        else:
            pos = _field(data, pos, end, key, kpos, _CONF_CHANGE_V2_FIELDS)
    return cc


_Buffer = bytes | bytearray | memoryview
_T = TypeVar("_T")


def _error(name: str, err: DecodeError) -> DecodeError:
    return DecodeError(f"raftpb: cannot decode {name}: {err}")


def _run(name: str, fn: Callable[[bytes, int, int], _T], data: _Buffer) -> _T:
    if type(data) is not bytes:
        data = bytes(data)
    try:
        return fn(data, 0, len(data))
    except DecodeError as err:
        raise _error(name, err) from None


def decode_entry(data: _Buffer) -> Entry:
    """Decode an :class:`Entry`; raises :class:`DecodeError` on malformed input."""
    return _run("Entry", _d_entry, data)


def decode_message(data: _Buffer) -> Message:
    """Decode a :class:`Message`; ``snapshot`` is ``None`` iff the field is absent."""
    if type(data) is not bytes:
        data = bytes(data)
    try:
        return _d_message(data, 0, len(data), 0)
    except DecodeError as err:
        raise _error("Message", err) from None


def decode_hard_state(data: _Buffer) -> HardState:
    """Decode a :class:`HardState`."""
    return _run("HardState", _d_hard_state, data)


def decode_conf_state(data: _Buffer) -> ConfState:
    """Decode a :class:`ConfState` (repeated ids packed or not)."""
    return _run("ConfState", _d_conf_state, data)


def decode_snapshot_metadata(data: _Buffer) -> SnapshotMetadata:
    """Decode a :class:`SnapshotMetadata`."""
    return _run("SnapshotMetadata", lambda d, p, e: _d_snapshot_metadata(d, p, e, 0), data)


def decode_snapshot(data: _Buffer) -> Snapshot:
    """Decode a :class:`Snapshot`."""
    return _run("Snapshot", lambda d, p, e: _d_snapshot(d, p, e, 0), data)


def decode_conf_change(data: _Buffer) -> ConfChange:
    """Decode a V1 :class:`ConfChange`."""
    return _run("ConfChange", _d_conf_change, data)


def decode_conf_change_single(data: _Buffer) -> ConfChangeSingle:
    """Decode a :class:`ConfChangeSingle`."""
    return _run("ConfChangeSingle", _d_conf_change_single, data)


def decode_conf_change_v2(data: _Buffer) -> ConfChangeV2:
    """Decode a :class:`ConfChangeV2`."""
    return _run("ConfChangeV2", _d_conf_change_v2, data)


# ------------------------------------------------------------------------- generic

_ENCODERS: Final[dict[type, Callable[[Any], bytes]]] = {
    Entry: encode_entry,
    Message: encode_message,
    HardState: encode_hard_state,
    ConfState: encode_conf_state,
    SnapshotMetadata: encode_snapshot_metadata,
    Snapshot: encode_snapshot,
    ConfChange: encode_conf_change,
    ConfChangeSingle: encode_conf_change_single,
    ConfChangeV2: encode_conf_change_v2,
}
_DECODERS: Final[dict[type, Callable[[_Buffer], Any]]] = {
    Entry: decode_entry,
    Message: decode_message,
    HardState: decode_hard_state,
    ConfState: decode_conf_state,
    SnapshotMetadata: decode_snapshot_metadata,
    Snapshot: decode_snapshot,
    ConfChange: decode_conf_change,
    ConfChangeSingle: decode_conf_change_single,
    ConfChangeV2: decode_conf_change_v2,
}

_W = TypeVar(
    "_W",
    Entry,
    Message,
    HardState,
    ConfState,
    SnapshotMetadata,
    Snapshot,
    ConfChange,
    ConfChangeSingle,
    ConfChangeV2,
)


def encode(obj: _W) -> bytes:
    """Wire encoding of any raftpb object (dispatches to the ``encode_*`` functions)."""
    try:
        enc = _ENCODERS[type(obj)]
    except KeyError:
        raise TypeError(f"raftpb: cannot encode {type(obj).__name__}") from None
    return enc(obj)


def decode(cls: type[_W], data: _Buffer) -> _W:
    """Decode ``data`` as a ``cls`` (one of the raftpb wire types)."""
    try:
        dec = _DECODERS[cls]
    except KeyError:
        raise TypeError(f"raftpb: cannot decode {cls.__name__}") from None
    result: _W = dec(data)
    return result
