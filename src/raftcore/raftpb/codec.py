"""Protobuf wire codec for the types in :mod:`raftcore.raftpb.types`.

Why hand-written: the protobuf runtime would need every raftcore object converted to and
from its own message classes on each call, which costs more than encoding directly
(``bench/bench_codec.py`` measures both). The bytes are the ones etcd's Go code
(google.golang.org/protobuf, proto2) produces, which the tests cross-check against the
installed ``google.protobuf`` runtime.

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
      the end, varints over 64 bits, invalid field numbers or wire types, a known field
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

from collections.abc import Callable
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

protobuf-go allows 10000; Python's own stack would not, and raft never nests more than
four levels (Message → responses → Message → snapshot → metadata → conf_state).
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
    once per entry on the hot path, hence the unrolled small-value branches.
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
# Writers append to one bytearray. Small values (< 128, the common case for types,
# ids, terms and short payloads) are appended inline; everything else goes through
# _put_varint. Keys are single bytes because every field number is below 16.


def _put_varint(buf: bytearray, v: int) -> None:
    if v < 0 or v >= _U64_LIMIT:
        raise ValueError(f"raftpb: {v} does not fit in uint64")
    while v >= 0x80:
        buf.append((v & 0x7F) | 0x80)
        v >>= 7
    buf.append(v)


def _put_uint(buf: bytearray, key: int, v: int) -> None:
    buf.append(key)
    if 0 <= v < 0x80:
        buf.append(v)
    else:
        _put_varint(buf, v)


def _put_bytes(buf: bytearray, key: int, d: bytes) -> None:
    buf.append(key)
    n = len(d)
    if n < 0x80:
        buf.append(n)
    else:
        _put_varint(buf, n)
    buf += d


def _key_varint(key: int, v: int) -> tuple[int, int]:
    """``key`` followed by the varint ``v``, as a little-endian int and its bit width."""
    if v < 0 or v >= _U64_LIMIT:
        raise ValueError(f"raftpb: {v} does not fit in uint64")
    x = key
    sh = 8
    while v >= 0x80:
        x |= ((v & 0x7F) | 0x80) << sh
        v >>= 7
        sh += 8
    return x | (v << sh), sh + 8


def _w_entries(buf: bytearray, ents: Any, key: int) -> None:
    """Write each entry as a length-delimited field; the hot part of MsgApp encoding.

    Per entry, the field headers (type, term, index, data length) are assembled into
    one little-endian integer ``h`` of ``sh`` bits and written with a single
    ``int.to_bytes``: far fewer interpreter steps than appending byte by byte. The
    unrolled branches cover values below 2**14 (terms, lengths) and 2**28 (indexes);
    larger values, and invalid ones, go through :func:`_key_varint`.
    """
    for e in ents:
        t = e.type
        term = e.term
        idx = e.index
        d = e.data
        if t:
            if not 0 < t < 0x80:
                raise ValueError(f"raftpb: invalid entry type {t!r}")
            h = 0x08 | (t << 8)
            sh = 16
        else:
            h = 0
            sh = 0
        if term:
            if 0 < term < 0x80:
                h |= (0x10 | (term << 8)) << sh
                sh += 16
            elif 0x80 <= term < 0x4000:
                h |= (0x8010 | ((term & 0x7F) << 8) | ((term >> 7) << 16)) << sh
                sh += 24
            else:
                x, w = _key_varint(0x10, term)
                h |= x << sh
                sh += w
        if idx:
            if 0 < idx < 0x80:
                h |= (0x18 | (idx << 8)) << sh
                sh += 16
            elif 0x80 <= idx < 0x4000:
                h |= (0x8018 | ((idx & 0x7F) << 8) | ((idx >> 7) << 16)) << sh
                sh += 24
            elif 0x4000 <= idx < 0x200000:
                h |= (
                    0x808018 | ((idx & 0x7F) << 8) | ((idx & 0x3F80) << 9) | ((idx >> 14) << 24)
                ) << sh
                sh += 32
            elif 0x200000 <= idx < 0x10000000:
                h |= (
                    0x80808018
                    | ((idx & 0x7F) << 8)
                    | ((idx & 0x3F80) << 9)
                    | ((idx & 0x1FC000) << 10)
                    | ((idx >> 21) << 32)
                ) << sh
                sh += 40
            else:
                x, w = _key_varint(0x18, idx)
                h |= x << sh
                sh += w
        if d:
            dl = len(d)
            if dl < 0x80:
                h |= (0x22 | (dl << 8)) << sh
                sh += 16
            elif dl < 0x4000:
                h |= (0x8022 | ((dl & 0x7F) << 8) | ((dl >> 7) << 16)) << sh
                sh += 24
            else:
                x, w = _key_varint(0x22, dl)
                h |= x << sh
                sh += w
            n = (sh >> 3) + dl
        else:
            n = sh >> 3
        # The field key and the body length go in front of the headers.
        if n < 0x80:
            buf += (key | (n << 8) | (h << 16)).to_bytes((sh >> 3) + 2, "little")
        elif n < 0x4000:
            buf += (key | 0x8000 | ((n & 0x7F) << 8) | ((n >> 7) << 16) | (h << 24)).to_bytes(
                (sh >> 3) + 3, "little"
            )
        else:
            x, w = _key_varint(key, n)
            buf += (x | (h << w)).to_bytes((w + sh) >> 3, "little")
        if d:
            buf += d


def _w_nested(buf: bytearray, key: int, body: bytearray) -> None:
    buf.append(key)
    n = len(body)
    if n < 0x80:
        buf.append(n)
    else:
        _put_varint(buf, n)
    buf += body


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
        _w_nested(buf, 0x0A, body)
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
        _w_nested(buf, 0x12, body)


def _w_message(buf: bytearray, m: Message) -> None:
    ap = buf.append
    v: int = m.type
    if v:
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
        _w_entries(buf, m.entries, 0x3A)
    v = m.commit
    if v:
        _put_uint(buf, 0x40, v)
    s = m.snapshot
    if s is not None:
        body = bytearray()
        _w_snapshot(body, s)
        _w_nested(buf, 0x4A, body)
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
        _w_nested(buf, 0x72, body)


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
        _w_nested(buf, 0x12, body)
    if cc.context:
        _put_bytes(buf, 0x1A, cc.context)


def encode_entry(e: Entry) -> bytes:
    """Wire encoding of an :class:`Entry` (``len(encode_entry(e)) == entry_size(e)``)."""
    buf = bytearray()
    _w_entry(buf, e)
    return bytes(buf)


def encode_message(m: Message) -> bytes:
    """Wire encoding of a :class:`Message`, nested entries/snapshot/responses included."""
    buf = bytearray()
    _w_message(buf, m)
    return bytes(buf)


def encode_hard_state(hs: HardState) -> bytes:
    """Wire encoding of a :class:`HardState`."""
    buf = bytearray()
    _w_hard_state(buf, hs)
    return bytes(buf)


def encode_conf_state(cs: ConfState) -> bytes:
    """Wire encoding of a :class:`ConfState` (``uint64`` lists unpacked)."""
    buf = bytearray()
    _w_conf_state(buf, cs)
    return bytes(buf)


def encode_snapshot_metadata(md: SnapshotMetadata) -> bytes:
    """Wire encoding of a :class:`SnapshotMetadata`."""
    buf = bytearray()
    _w_snapshot_metadata(buf, md)
    return bytes(buf)


def encode_snapshot(s: Snapshot) -> bytes:
    """Wire encoding of a :class:`Snapshot`."""
    buf = bytearray()
    _w_snapshot(buf, s)
    return bytes(buf)


def encode_conf_change(cc: ConfChange) -> bytes:
    """Wire encoding of a V1 :class:`ConfChange` (type and node id always written)."""
    buf = bytearray()
    _w_conf_change(buf, cc)
    return bytes(buf)


def encode_conf_change_single(cc: ConfChangeSingle) -> bytes:
    """Wire encoding of a :class:`ConfChangeSingle` (type and node id always written)."""
    buf = bytearray()
    _w_conf_change_single(buf, cc)
    return bytes(buf)


def encode_conf_change_v2(cc: ConfChangeV2) -> bytes:
    """Wire encoding of a :class:`ConfChangeV2` (transition always written)."""
    buf = bytearray()
    _w_conf_change_v2(buf, cc)
    return bytes(buf)


# ------------------------------------------------------------------------ decoding
#
# Every decoder reads data[pos:end] (end is the enclosing length-delimited field's end)
# without slicing, and returns the object. Offsets in errors are absolute positions in
# the caller's buffer. The common single-byte varint is read inline; the rest goes
# through _varint, which also reports truncation and overflow.

_WIRE_NAMES: Final = ("varint", "fixed64", "bytes", "start-group", "end-group", "fixed32")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a varint at ``pos``; return ``(value, new_pos)``."""
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


def _field(data: bytes, pos: int, end: int, key: int, kpos: int, fields: dict[int, str]) -> int:
    """Handle a key no decoder branch matched: skip it if unknown, else a wire-type error.

    Decoders match only valid keys of known fields, so every invalid key lands here and
    is checked here, off the hot path.
    """
    _check_key(key, kpos)
    name = fields.get(key >> 3)
    if name is None:
        return _skip(data, pos, end, key, kpos)
    raise DecodeError(
        f"field {name} has wire type {_WIRE_NAMES[key & 7]}, "
        f"want {_FIELD_WIRE[name]} at offset {kpos}"
    )


_ENTRY_FIELDS: Final = {1: "Entry.Type", 2: "Entry.Term", 3: "Entry.Index", 4: "Entry.Data"}
_MESSAGE_FIELDS: Final = {
    1: "Message.type",
    2: "Message.to",
    3: "Message.from",
    4: "Message.term",
    5: "Message.logTerm",
    6: "Message.index",
    7: "Message.entries",
    8: "Message.commit",
    9: "Message.snapshot",
    10: "Message.reject",
    11: "Message.rejectHint",
    12: "Message.context",
    13: "Message.vote",
    14: "Message.responses",
}
_HARD_STATE_FIELDS: Final = {1: "HardState.term", 2: "HardState.vote", 3: "HardState.commit"}
_CONF_STATE_FIELDS: Final = {
    1: "ConfState.voters",
    2: "ConfState.learners",
    3: "ConfState.voters_outgoing",
    4: "ConfState.learners_next",
    5: "ConfState.auto_leave",
}
_SNAPSHOT_METADATA_FIELDS: Final = {
    1: "SnapshotMetadata.conf_state",
    2: "SnapshotMetadata.index",
    3: "SnapshotMetadata.term",
}
_SNAPSHOT_FIELDS: Final = {1: "Snapshot.data", 2: "Snapshot.metadata"}
_CONF_CHANGE_FIELDS: Final = {
    1: "ConfChange.id",
    2: "ConfChange.type",
    3: "ConfChange.node_id",
    4: "ConfChange.context",
}
_CONF_CHANGE_SINGLE_FIELDS: Final = {1: "ConfChangeSingle.type", 2: "ConfChangeSingle.node_id"}
_CONF_CHANGE_V2_FIELDS: Final = {
    1: "ConfChangeV2.transition",
    2: "ConfChangeV2.changes",
    3: "ConfChangeV2.context",
}

# The wire type each known field must use (by qualified name, for error messages).
_BYTES_FIELDS: Final = frozenset(
    {
        "Entry.Data",
        "Message.entries",
        "Message.snapshot",
        "Message.context",
        "Message.responses",
        "SnapshotMetadata.conf_state",
        "Snapshot.data",
        "Snapshot.metadata",
        "ConfChange.context",
        "ConfChangeV2.changes",
        "ConfChangeV2.context",
    }
)
_FIELD_WIRE: Final = {
    name: ("bytes" if name in _BYTES_FIELDS else "varint")
    for table in (
        _ENTRY_FIELDS,
        _MESSAGE_FIELDS,
        _HARD_STATE_FIELDS,
        _CONF_STATE_FIELDS,
        _SNAPSHOT_METADATA_FIELDS,
        _SNAPSHOT_FIELDS,
        _CONF_CHANGE_FIELDS,
        _CONF_CHANGE_SINGLE_FIELDS,
        _CONF_CHANGE_V2_FIELDS,
    )
    for name in table.values()
}
_FIELD_WIRE.update({k: "varint or bytes (packed)" for k in _CONF_STATE_FIELDS.values()})
_FIELD_WIRE["ConfState.auto_leave"] = "varint"

_E = TypeVar("_E")


def _enum(table: tuple[_E, ...], v: int, what: str, pos: int) -> _E:
    """Map a wire varint to an enum member the way protobuf reads an int32 enum."""
    k = v & 0xFFFFFFFF  # int32 truncation; negative values land above every member
    if k < len(table):
        return table[k]
    if k >= 0x80000000:
        k -= 1 << 32
    raise DecodeError(f"unknown {what} value {k} at offset {pos}")


_ENTRY_TYPES: Final = tuple(EntryType)
_MESSAGE_TYPES: Final = tuple(MessageType)
_CC_TYPES: Final = tuple(ConfChangeType)
_CC_TRANSITIONS: Final = tuple(ConfChangeTransition)


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
        if key == 0x10 or key == 0x18 or key == 0x08:
            vpos = pos
            if pos < end and data[pos] < 0x80:
                v = data[pos]
                pos += 1
            else:
                v, pos = _varint(data, pos, end)
            if key == 0x10:
                term = v
            elif key == 0x18:
                index = v
            else:
                etype = _enum(_ENTRY_TYPES, v, "EntryType", vpos)
        elif key == 0x22:
            dend, pos = _length(data, pos, end)
            d = data[pos:dend]
            pos = dend
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


def _d_message(data: bytes, pos: int, end: int, depth: int) -> Message:
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages nested deeper than {MAX_DEPTH} at offset {pos}")
    mtype = MessageType.MsgHup
    to = frm = term = log_term = index = commit = vote = reject_hint = 0
    reject = False
    context = b""
    entries: list[Entry] | None = None
    responses: list[Message] | None = None
    snapshot: Snapshot | None = None
    merge: _Merger | None = None
    d_entry = _d_entry
    while pos < end:
        kpos = pos
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(data, pos, end)
        if key == 0x3A:
            # Entries, inlined length read: the hot path of MsgApp decoding.
            if pos < end and data[pos] < 0x80:
                eend = pos + 1 + data[pos]
                pos += 1
                if eend > end:
                    raise DecodeError(
                        f"length {eend - pos} at offset {pos - 1} runs past the end of "
                        f"its enclosing data (offset {end})"
                    )
            else:
                eend, pos = _length(data, pos, end)
            e = d_entry(data, pos, eend)
            if entries is None:
                entries = [e]
            else:
                entries.append(e)
            pos = eend
        elif key & 7 == 0 and 0x08 <= key <= 0x68 and key != 0x38 and key != 0x48 and key != 0x60:
            vpos = pos
            if pos < end and data[pos] < 0x80:
                v = data[pos]
                pos += 1
            else:
                v, pos = _varint(data, pos, end)
            if key == 0x08:
                mtype = _enum(_MESSAGE_TYPES, v, "MessageType", vpos)
            elif key == 0x10:
                to = v
            elif key == 0x18:
                frm = v
            elif key == 0x20:
                term = v
            elif key == 0x28:
                log_term = v
            elif key == 0x30:
                index = v
            elif key == 0x40:
                commit = v
            elif key == 0x50:
                reject = v != 0
            elif key == 0x58:
                reject_hint = v
            else:
                vote = v
        elif key == 0x62:
            cend, pos = _length(data, pos, end)
            context = data[pos:cend]
            pos = cend
        elif key == 0x4A:
            send, pos = _length(data, pos, end)
            snapshot = _d_snapshot(data, pos, send, depth + 1)
            if merge is None:
                merge = _Merger()
            joined = merge.add(data, pos, send)
            if joined is not None:
                snapshot = _d_snapshot(joined, 0, len(joined), depth + 1)
            pos = send
        elif key == 0x72:
            rend, pos = _length(data, pos, end)
            r = _d_message(data, pos, rend, depth + 1)
            if responses is None:
                responses = [r]
            else:
                responses.append(r)
            pos = rend
        else:
            pos = _field(data, pos, end, key, kpos, _MESSAGE_FIELDS)
    return Message(
        mtype,
        to,
        frm,
        term,
        log_term,
        index,
        entries if entries is not None else (),
        commit,
        vote,
        snapshot,
        reject,
        reject_hint,
        context,
        responses if responses is not None else (),
    )


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


def _run(name: str, fn: Callable[[bytes, int, int], _T], data: _Buffer) -> _T:
    if type(data) is not bytes:
        data = bytes(data)
    try:
        return fn(data, 0, len(data))
    except DecodeError as err:
        raise DecodeError(f"raftpb: cannot decode {name}: {err}") from None


def decode_entry(data: _Buffer) -> Entry:
    """Decode an :class:`Entry`; raises :class:`DecodeError` on malformed input."""
    return _run("Entry", _d_entry, data)


def decode_message(data: _Buffer) -> Message:
    """Decode a :class:`Message`; ``snapshot`` is ``None`` iff the field is absent."""
    return _run("Message", lambda d, p, e: _d_message(d, p, e, 0), data)


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
