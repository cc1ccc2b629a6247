"""Record framing: encoding, scanning, damage detection, payload decoding."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftcore.raftpb.codec import decode_message, encode_entry
from raftcore.raftpb.types import Entry, EntryType, HardState, Message
from raftcore.wal.record import (
    FRAME_SIZE,
    RecordKind,
    SegmentHeader,
    append_compact,
    append_entries,
    append_hard_state,
    append_header,
    append_snapshot,
    crc32c,
    decode_compact,
    decode_entries,
    decode_hard_state,
    decode_header,
    decode_snapshot,
    find_frame,
    scan,
)


def test_crc32c_is_castagnoli() -> None:
    # The standard check value of CRC-32C, and incremental use.
    assert crc32c(b"123456789", 0) == 0xE3069283
    assert crc32c(b"6789", crc32c(b"12345", 0)) == 0xE3069283


def _all_kinds() -> bytes:
    parts: list[bytes] = []
    append_header(parts, SegmentHeader(7, 10, 2, 15, 10, 2, True))
    append_hard_state(parts, HardState(term=3, vote=1, commit=12))
    append_entries(parts, [Entry(term=3, index=16, data=b"a"), Entry(term=3, index=17)])
    append_snapshot(parts, 12, 3, reset=False)
    append_compact(parts, 12, 3)
    append_snapshot(parts, 20, 4, reset=True)
    return b"".join(parts)


def test_round_trip_of_every_kind() -> None:
    data = _all_kinds() + bytes(100)  # preallocated zeros after the records
    res = scan(data)
    assert res.bad_offset is None
    assert res.end == len(data) - 100
    kinds = [r.kind for r in res.records]
    assert kinds == [
        RecordKind.HEADER,
        RecordKind.HARD_STATE,
        RecordKind.ENTRIES,
        RecordKind.SNAPSHOT,
        RecordKind.COMPACT,
        RecordKind.SNAPSHOT,
    ]
    r = res.records
    assert decode_header(r[0].payload) == SegmentHeader(7, 10, 2, 15, 10, 2, True)
    assert decode_hard_state(r[1].payload) == HardState(term=3, vote=1, commit=12)
    assert decode_entries(r[2].payload) == [
        Entry(term=3, index=16, data=b"a"),
        Entry(term=3, index=17),
    ]
    assert decode_snapshot(r[3].payload) == (12, 3, False)
    assert decode_compact(r[4].payload) == (12, 3)
    assert decode_snapshot(r[5].payload) == (20, 4, True)
    for a, b in itertools.pairwise(r):
        assert a.end == b.offset


def test_frame_layout() -> None:
    parts: list[bytes] = []
    append_hard_state(parts, HardState(term=1, vote=2, commit=3))
    frame = b"".join(parts)
    crc, n, kind = struct.unpack_from("<IIB", frame)
    payload = struct.pack("<QQQ", 1, 2, 3)
    assert (n, kind) == (24, RecordKind.HARD_STATE)
    assert frame[FRAME_SIZE:] == payload
    assert crc == crc32c(frame[4:FRAME_SIZE], crc32c(payload, 0))


def test_entries_payload_is_a_protobuf_message_with_entries() -> None:
    ents = [
        Entry(term=2, index=5, type=EntryType.EntryConfChange, data=b"cc"),
        Entry(term=2, index=6, data=b"x" * 300),
    ]
    parts: list[bytes] = []
    append_entries(parts, ents)
    payload = b"".join(parts)[FRAME_SIZE:]
    # Field 7 (entries), length-delimited, once per entry: Message{entries: ...}.
    assert payload == b"".join(
        b"\x3a" + _varint(len(encode_entry(e))) + encode_entry(e) for e in ents
    )
    assert decode_message(payload) == Message(entries=ents)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@given(
    st.lists(
        st.tuples(st.integers(0, 2**64 - 1), st.sampled_from(EntryType), st.binary(max_size=300)),
        min_size=1,
        max_size=20,
    ),
    st.integers(1, 2**63),
)
def test_entries_round_trip(specs: list[tuple[int, EntryType, bytes]], first: int) -> None:
    ents = [Entry(term=t, index=first + k, type=ty, data=d) for k, (t, ty, d) in enumerate(specs)]
    parts: list[bytes] = []
    append_entries(parts, ents)
    res = scan(b"".join(parts))
    assert res.bad_offset is None
    assert decode_entries(res.records[0].payload) == ents


def test_every_single_bit_flip_is_detected() -> None:
    data = _all_kinds()
    for pos in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[pos] ^= 1 << bit
            res = scan(bytes(damaged))
            assert res.bad_offset is not None, (pos, bit)
            assert res.bad_offset <= pos


@pytest.mark.parametrize("cut", [1, 5, 8, 9, 20, 40])
def test_truncated_frames_are_reported(cut: int) -> None:
    data = _all_kinds()
    res = scan(data[:-cut])
    assert res.bad_offset is not None
    assert res.bad_reason in ("truncated frame header", "CRC mismatch") or "runs past" in (
        res.bad_reason
    )
    assert find_frame(data[:-cut], res.bad_offset + 1, res.data_end) is None


def test_zeros_are_never_a_record() -> None:
    res = scan(bytes(4096))
    assert (res.records, res.end, res.bad_offset) == ([], 0, None)
    assert find_frame(bytes(4096), 0, 4096) is None


def test_find_frame_locates_the_next_valid_record() -> None:
    data = bytearray(_all_kinds())
    res = scan(bytes(data))
    second = res.records[1]
    data[second.offset + 12] ^= 0x40
    damaged = scan(bytes(data))
    assert damaged.bad_offset == second.offset
    assert find_frame(bytes(data), second.offset + 1, damaged.data_end) == res.records[2].offset


def test_unknown_kind_is_invalid() -> None:
    payload = b"x"
    crc = crc32c(struct.pack("<IB", 1, 9), crc32c(payload, 0))
    res = scan(struct.pack("<IIB", crc, 1, 9) + payload)
    assert res.bad_reason == "unknown record kind 9"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"\x08\x03", "empty"),  # a Message without entries
        (b"\x3a\x09\x08", "cannot decode"),
        (b"\x3a\x02\x10\xff", "cannot decode"),
    ],
)
def test_bad_entries_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_entries(payload)


def test_entries_batch_must_be_consecutive() -> None:
    parts: list[bytes] = []
    append_entries(parts, [Entry(term=1, index=4), Entry(term=1, index=6)])
    payload = b"".join(parts)[FRAME_SIZE:]
    with pytest.raises(ValueError, match="index 6 where 5 was expected"):
        decode_entries(payload)


def test_fixed_payload_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="hard state: 3 bytes"):
        decode_hard_state(b"abc")
    with pytest.raises(ValueError, match="snapshot marker"):
        decode_snapshot(b"")
    with pytest.raises(ValueError, match="compaction marker"):
        decode_compact(b"x" * 17)
    with pytest.raises(ValueError, match="bad magic"):
        decode_header(b"raftcXXX" + bytes(56))
    with pytest.raises(ValueError, match="expected"):
        decode_header(b"raftcWAL" + struct.pack("<I", 1))
