"""Record framing of the write-ahead log: how bytes on disk become records and back.

Frame layout (all integers little-endian)::

    offset 0  u32  crc     CRC-32C (Castagnoli) over the payload, continued over
                           bytes 4-8 (length and kind)
    offset 4  u32  length  payload length in bytes
    offset 8  u8   kind    a RecordKind, never 0
    offset 9  ...  payload

The CRC covers the length and the kind as well as the payload, so a flipped bit in
either is caught like one in the data. Kind 0 is never valid: segment files are
preallocated with zeros, and a zeroed region must never parse as a record.

Payloads (``Q`` = u64, ``I`` = u32):

* ``HEADER`` (first record of every segment): magic ``b"raftcWAL"``, version ``I``,
  flags ``I`` (bit 0: a snapshot exists), then ``Q`` seq, base index, base term, last
  index, snapshot index, snapshot term: the log's shape when the segment was begun,
  which lets recovery start at this segment once older ones are deleted.
* ``ENTRIES``: a batch of consecutive entries as the protobuf encoding of a raftpb
  ``Message`` with only ``entries`` set (repeated field 7, what
  :func:`raftcore.raftpb.codec.encode_message` writes), so any raft.proto decoder
  reads it, and the codec's batch path encodes it.
* ``HARD_STATE``: ``Q`` term, vote, commit.
* ``SNAPSHOT``: ``Q`` index, term, ``I`` flags (bit 0: the log was reset to the
  snapshot, as ``apply_snapshot`` does; clear for ``create_snapshot``).
* ``COMPACT``: ``Q`` index, term: entries up to index were discarded.

Encoding appends frame headers and payloads to a list that the writer hands to one
gathered write (``pwritev``), so a whole group commit is one batch encode, one write
and (when asked) one fsync; no per-entry syscall happens anywhere.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from raftcore.errors import DecodeError
from raftcore.raftpb.codec import decode_message, encode_message
from raftcore.raftpb.types import Entry, HardState, Message

__all__ = [
    "FRAME_SIZE",
    "MAGIC",
    "MAX_PAYLOAD",
    "VERSION",
    "Record",
    "RecordKind",
    "ScanResult",
    "SegmentHeader",
    "append_compact",
    "append_entries",
    "append_hard_state",
    "append_header",
    "append_snapshot",
    "crc32c",
    "decode_compact",
    "decode_entries",
    "decode_hard_state",
    "decode_header",
    "decode_snapshot",
    "find_frame",
    "scan",
]


def _load_crc32c() -> Callable[[bytes | memoryview, int], int]:
    """The CRC-32C function: a C implementation or nothing.

    A pure-Python CRC would cost more than everything else on the write path
    together, so its absence is an import error rather than a silent slowdown.
    """
    try:
        import crc32c as _crc32c_mod

        fn: Callable[[bytes | memoryview, int], int] = _crc32c_mod.crc32c
        return fn
    except ImportError:
        pass
    try:
        import google_crc32c  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "raftcore.wal needs a C CRC-32C: pip install crc32c (or google-crc32c)"
        ) from None

    def _google(data: bytes | memoryview, value: int = 0) -> int:  # pragma: no cover
        result: int = google_crc32c.extend(value, data)
        return result

    return _google  # pragma: no cover


crc32c: Final = _load_crc32c()
"""``crc32c(data, seed) -> int``: CRC-32C of ``data`` continuing from ``seed``."""


class RecordKind(IntEnum):
    HEADER = 1
    ENTRIES = 2
    HARD_STATE = 3
    SNAPSHOT = 4
    COMPACT = 5


MAGIC: Final = b"raftcWAL"
VERSION: Final = 1
FRAME_SIZE: Final = 9
MAX_PAYLOAD: Final = (1 << 32) - 1
"""The length field is a u32; a group commit larger than this is refused."""

SNAPSHOT_RESET: Final = 1
HEADER_HAS_SNAPSHOT: Final = 1

_FRAME: Final = struct.Struct("<IIB")
_LEN_KIND: Final = struct.Struct("<IB")
_U32: Final = struct.Struct("<I")
_HARD_STATE: Final = struct.Struct("<QQQ")
_SNAPSHOT: Final = struct.Struct("<QQI")
_COMPACT: Final = struct.Struct("<QQ")
_HEADER: Final = struct.Struct("<8sIIQQQQQQ")
_KINDS: Final = frozenset(int(k) for k in RecordKind)
_ZERO_CHUNK: Final = 1 << 16


@dataclass(slots=True)
class SegmentHeader:
    """The shape of the log when a segment was begun (see the module docstring)."""

    seq: int
    base_index: int
    base_term: int
    last_index: int
    snap_index: int = 0
    snap_term: int = 0
    has_snapshot: bool = False


@dataclass(slots=True)
class Record:
    """One valid record of a segment: its kind, where its frame starts, its payload."""

    kind: RecordKind
    offset: int
    payload: bytes

    @property
    def end(self) -> int:
        """Offset just past this record's frame."""
        return self.offset + FRAME_SIZE + len(self.payload)


# ----------------------------------------------------------------------- encoding


def _append_frame(parts: list[bytes], kind: RecordKind, payload: bytes) -> None:
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueError(f"wal: record of {n} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    crc = crc32c(_LEN_KIND.pack(n, kind), crc32c(payload, 0))
    parts.append(_FRAME.pack(crc, n, kind))
    parts.append(payload)


def append_entries(parts: list[bytes], entries: Sequence[Entry]) -> None:
    """Append the frame of an ``ENTRIES`` record holding ``entries`` to ``parts``.

    The payload comes from the codec's batch encoder in one call and is checksummed
    with one C call.
    """
    _append_frame(parts, RecordKind.ENTRIES, encode_message(Message(entries=entries)))


def append_hard_state(parts: list[bytes], hs: HardState) -> None:
    _append_frame(parts, RecordKind.HARD_STATE, _HARD_STATE.pack(hs.term, hs.vote, hs.commit))


def append_snapshot(parts: list[bytes], index: int, term: int, reset: bool) -> None:
    flags = SNAPSHOT_RESET if reset else 0
    _append_frame(parts, RecordKind.SNAPSHOT, _SNAPSHOT.pack(index, term, flags))


def append_compact(parts: list[bytes], index: int, term: int) -> None:
    _append_frame(parts, RecordKind.COMPACT, _COMPACT.pack(index, term))


def append_header(parts: list[bytes], h: SegmentHeader) -> None:
    payload = _HEADER.pack(
        MAGIC,
        VERSION,
        HEADER_HAS_SNAPSHOT if h.has_snapshot else 0,
        h.seq,
        h.base_index,
        h.base_term,
        h.last_index,
        h.snap_index,
        h.snap_term,
    )
    _append_frame(parts, RecordKind.HEADER, payload)


# ----------------------------------------------------------------------- decoding
#
# The decoders get payloads whose CRC already matched, so a failure here means a
# writer bug or a format mismatch, never a torn write; they raise ValueError and the
# caller turns it into a WALCorruptionError naming file and offset.


def decode_entries(payload: bytes) -> list[Entry]:
    """The entries of an ``ENTRIES`` payload, checked to be consecutive."""
    try:
        msg = decode_message(payload)
    except DecodeError as err:
        raise ValueError(f"entries batch: {err}") from None
    out = list(msg.entries)
    if not out:
        raise ValueError("entries batch: empty")
    first = out[0].index
    for k, e in enumerate(out):
        if e.index != first + k:
            raise ValueError(f"entries batch: index {e.index} where {first + k} was expected")
    return out


def _exact(s: struct.Struct, payload: bytes, what: str) -> tuple[int, ...]:
    if len(payload) != s.size:
        raise ValueError(f"{what}: {len(payload)} bytes, expected {s.size}")
    values: tuple[int, ...] = s.unpack(payload)
    return values


def decode_hard_state(payload: bytes) -> HardState:
    term, vote, commit = _exact(_HARD_STATE, payload, "hard state")
    return HardState(term=term, vote=vote, commit=commit)


def decode_snapshot(payload: bytes) -> tuple[int, int, bool]:
    """``(index, term, reset)`` of a ``SNAPSHOT`` payload."""
    index, term, flags = _exact(_SNAPSHOT, payload, "snapshot marker")
    return index, term, bool(flags & SNAPSHOT_RESET)


def decode_compact(payload: bytes) -> tuple[int, int]:
    """``(index, term)`` of a ``COMPACT`` payload."""
    index, term = _exact(_COMPACT, payload, "compaction marker")
    return index, term


def decode_header(payload: bytes) -> SegmentHeader:
    if len(payload) < 8 or payload[:8] != MAGIC:
        raise ValueError("not a raftcore WAL segment (bad magic)")
    if len(payload) >= 12:
        (version,) = _U32.unpack_from(payload, 8)
        if version != VERSION:
            raise ValueError(f"unsupported WAL version {version} (this build reads {VERSION})")
    if len(payload) != _HEADER.size:
        raise ValueError(f"segment header: {len(payload)} bytes, expected {_HEADER.size}")
    _, _, flags, seq, bi, bt, li, si, st = _HEADER.unpack(payload)
    return SegmentHeader(seq, bi, bt, li, si, st, bool(flags & HEADER_HAS_SNAPSHOT))


# ----------------------------------------------------------------------- scanning


@dataclass(slots=True)
class ScanResult:
    """What :func:`scan` found in one segment's bytes.

    ``records`` are the valid records from the start up to ``end``. If ``bad_offset``
    is ``None`` the rest of the file after ``end`` is zeros (a clean end); otherwise a
    frame starting at ``bad_offset`` (== ``end``) is invalid for ``bad_reason``, and
    ``data_end`` (one past the last non-zero byte) bounds where anything written can be.
    """

    records: list[Record]
    end: int
    data_end: int
    bad_offset: int | None = None
    bad_reason: str = ""


def _frame_error(data: bytes, pos: int, size: int) -> str | None:
    """Why the frame at ``pos`` is invalid, or ``None`` if it is valid."""
    if pos + FRAME_SIZE > size:
        return "truncated frame header"
    crc, n, kind = _FRAME.unpack_from(data, pos)
    if kind not in _KINDS:
        return f"unknown record kind {kind}"
    end = pos + FRAME_SIZE + n
    if end > size:
        return f"record length {n} runs past the end of the file"
    view = memoryview(data)
    if crc32c(view[pos + 4 : pos + FRAME_SIZE], crc32c(view[pos + FRAME_SIZE : end], 0)) != crc:
        return "CRC mismatch"
    return None


def _end_of_data(data: bytes, start: int) -> int:
    """One past the last non-zero byte of ``data[start:]`` (``start`` if all zeros).

    Works backwards in chunks with ``bytes.count`` so that a mostly preallocated
    segment is checked at C speed without copying it.
    """
    hi = len(data)
    while hi > start:
        lo = max(start, hi - _ZERO_CHUNK)
        if data.count(b"\x00", lo, hi) != hi - lo:
            return lo + len(data[lo:hi].rstrip(b"\x00"))
        hi = lo
    return start


def scan(data: bytes, start: int = 0) -> ScanResult:
    """Parse consecutive frames of ``data`` from ``start`` until a clean end or a bad one.

    The end is clean where only zero bytes (preallocation) or nothing follow.
    """
    size = len(data)
    records: list[Record] = []
    ap = records.append
    unpack = _FRAME.unpack_from
    pos = start
    while pos < size:
        reason = _frame_error(data, pos, size)
        if reason is not None:
            data_end = _end_of_data(data, pos)
            if data_end == pos:
                break
            return ScanResult(records, pos, data_end, pos, reason)
        _, n, kind = unpack(data, pos)
        end = pos + FRAME_SIZE + n
        ap(Record(RecordKind(kind), pos, data[pos + FRAME_SIZE : end]))
        pos = end
    return ScanResult(records, pos, pos)


def find_frame(data: bytes, start: int, stop: int) -> int | None:
    """Offset of some valid frame starting in ``[start, stop)``, or ``None``.

    Used only after an invalid frame, to tell a torn tail (nothing valid follows)
    from damage in the middle (valid records follow). Candidates are found through
    their kind byte with ``bytes.find``, so zeroed or text-like regions cost little.
    """
    size = len(data)
    for kind in _KINDS:
        needle = bytes((kind,))
        p = data.find(needle, start + 8, stop + 8)
        while p != -1:
            if _frame_error(data, p - 8, size) is None:
                return p - 8
            p = data.find(needle, p + 1, stop + 8)
    return None
