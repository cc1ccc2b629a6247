"""Recovery of the WAL: torn tails are cut, damage is reported, never skipped.

The torn-tail tests cut the last group commit at every byte offset (both as a shorter
file and as zeros over a preallocated one) and flip every bit of the last record; the
damage tests flip bits in records that valid records follow, break segment headers,
remove segments and break snapshots.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from raftcore.raftpb.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftcore.util import NO_LIMIT
from raftcore.wal import (
    DiskStorage,
    SnapshotError,
    SnapshotStore,
    WALCorruptionError,
    WALDirectoryError,
    WALLockedError,
)
from raftcore.wal.record import Record, RecordKind, SegmentHeader, append_header, scan
from raftcore.wal.segment import read_file

SEG = 16384


def reopen(d: Path) -> DiskStorage:
    # No preallocation of a next segment: these tests reopen hundreds of times.
    return DiskStorage.open(d, segment_size=SEG, preallocate=False)


State = tuple[list[Entry], HardState, Snapshot]


def state(s: DiskStorage) -> State:
    return list(s.ents), s.initial_state()[0], s.snapshot()


def batch(first: int, n: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [
        Entry(term=term, index=i, data=(b"%d." % i * size)[:size]) for i in range(first, first + n)
    ]


def segments(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.name.endswith(".wal"))


def records(p: Path) -> list[Record]:
    return scan(read_file(str(p))).records


def fresh_copy(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def flip(p: Path, offset: int, bit: int) -> None:
    with open(p, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ (1 << bit)]))


def zero(p: Path, start: int, end: int) -> None:
    with open(p, "r+b") as f:
        f.seek(start)
        f.write(bytes(end - start))


@pytest.fixture
def three_commits(tmp_path: Path) -> tuple[Path, State, State, State]:
    """A store with three group commits; returns the states before/within/after the last.

    "mid" is the state where the last commit's entries record survived but its hard
    state record did not.
    """
    base = tmp_path / "base"
    base.mkdir()
    s = DiskStorage.open(base, segment_size=SEG)
    s.save(HardState(term=1, vote=1, commit=0), batch(1, 4), must_sync=True)
    s.save(HardState(term=1, vote=1, commit=4), batch(5, 3), must_sync=True)
    before = state(s)
    s.save(HardState(term=2, vote=1, commit=7), batch(8, 3, term=2), must_sync=True)
    after = state(s)
    mid = (after[0], before[1], after[2])
    s.close()
    # The last group commit is an entries record then a hard state record.
    recs = records(segments(base)[-1])
    assert [r.kind for r in recs[-2:]] == [RecordKind.ENTRIES, RecordKind.HARD_STATE]
    return base, before, mid, after


@pytest.mark.parametrize("mode", ["truncate", "zero"])
def test_cut_at_every_offset_of_the_last_records(
    tmp_path: Path, three_commits: tuple[Path, State, State, State], mode: str
) -> None:
    base, before, mid, after = three_commits
    seg = segments(base)[-1]
    ents_rec, hs_rec = records(seg)[-2:]
    # Zeroing bytes that were zeros already changes nothing: the record is whole.
    last_nonzero = len(seg.read_bytes()[: hs_rec.end].rstrip(b"\x00"))
    for cut in range(ents_rec.offset, hs_rec.end + 1):
        work = fresh_copy(base, tmp_path / "work")
        p = segments(work)[-1]
        if mode == "truncate":
            os.truncate(p, cut)
        else:
            zero(p, cut, hs_rec.end)
        s = reopen(work)
        c = hs_rec.end if mode == "zero" and cut >= last_nonzero else cut
        want = before if c < ents_rec.end else mid if c < hs_rec.end else after
        assert state(s) == want, f"cut at {cut}"
        # The store can be appended to, and no stale byte of the cut write resurfaces.
        last = s.last_index()
        s.save(HardState(term=3, vote=1, commit=last), batch(last + 1, 1, term=3, size=1), True)
        s.close()
        s = reopen(work)
        assert s.last_index() == last + 1
        assert s.ents[:-1] == want[0]
        assert s.initial_state()[0] == HardState(term=3, vote=1, commit=last)
        s.close()


def test_every_bit_flip_in_the_last_record_drops_it(
    tmp_path: Path,
    three_commits: tuple[Path, State, State, State],
    caplog: pytest.LogCaptureFixture,
) -> None:
    base, _, mid, _ = three_commits
    hs_rec = records(segments(base)[-1])[-1]
    for offset in range(hs_rec.offset, hs_rec.end):
        for bit in range(8):
            work = fresh_copy(base, tmp_path / "work")
            flip(segments(work)[-1], offset, bit)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="raftcore"):
                s = reopen(work)
            assert state(s) == mid, f"flip at {offset} bit {bit}"
            assert "torn write" in caplog.text
            s.close()


def test_bit_flip_in_a_last_entries_record_drops_it(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    s = DiskStorage.open(base, segment_size=SEG)
    s.append(batch(1, 2))
    want = state(s)
    s.append(batch(3, 2, size=3))
    s.close()
    rec = records(segments(base)[-1])[-1]
    assert rec.kind == RecordKind.ENTRIES
    for offset in range(rec.offset, rec.end):
        bit = offset % 8
        work = fresh_copy(base, tmp_path / "work")
        flip(segments(work)[-1], offset, bit)
        s = reopen(work)
        assert state(s) == want, f"flip at {offset} bit {bit}"
        s.close()


def test_bit_flip_followed_by_valid_records_is_corruption(
    tmp_path: Path, three_commits: tuple[Path, State, State, State]
) -> None:
    base = three_commits[0]
    seg = segments(base)[-1]
    recs = records(seg)
    for rec in recs[1:-1]:  # everything a valid record follows, header excluded
        for offset in range(rec.offset, rec.end):
            work = fresh_copy(base, tmp_path / "work")
            p = segments(work)[-1]
            flip(p, offset, offset % 8)
            with pytest.raises(WALCorruptionError) as exc:
                reopen(work)
            assert exc.value.path == str(p)
            assert exc.value.offset == rec.offset
            assert str(p) in str(exc.value)
            assert f"byte offset {rec.offset}" in str(exc.value)
            assert "valid record follows" in str(exc.value)


def test_zeroed_middle_is_corruption(
    tmp_path: Path, three_commits: tuple[Path, State, State, State]
) -> None:
    base = three_commits[0]
    recs = records(segments(base)[-1])
    p = segments(base)[-1]
    zero(p, recs[2].offset, recs[2].end)
    with pytest.raises(WALCorruptionError, match=f"byte offset {recs[2].offset}"):
        DiskStorage.open(base, segment_size=SEG)


def test_damaged_segment_header_is_corruption(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    s.append(batch(1, 3))
    s.close()
    p = segments(tmp_path)[0]
    flip(p, 20, 2)
    with pytest.raises(WALCorruptionError, match="bad segment header") as exc:
        DiskStorage.open(tmp_path, segment_size=SEG)
    assert exc.value.offset == 0


def _rewrite_header(p: Path, h: SegmentHeader, magic: bytes | None = None) -> None:
    parts: list[bytes] = []
    append_header(parts, h)
    raw = bytearray(b"".join(parts))
    if magic is not None:
        raw[9:17] = magic
        from raftcore.wal.record import crc32c

        crc = crc32c(bytes(raw[4:9]), crc32c(bytes(raw[9:]), 0))
        raw[0:4] = crc.to_bytes(4, "little")
    data = bytearray(p.read_bytes())
    old = records(p)[0]
    assert old.end == len(raw)
    data[: len(raw)] = raw
    p.write_bytes(bytes(data))


def test_foreign_file_and_wrong_version_are_refused(tmp_path: Path) -> None:
    DiskStorage.open(tmp_path, segment_size=SEG).close()
    p = segments(tmp_path)[0]
    _rewrite_header(p, SegmentHeader(1, 0, 0, 0), magic=b"notawal!")
    with pytest.raises(WALCorruptionError, match="bad magic"):
        DiskStorage.open(tmp_path, segment_size=SEG)
    import struct

    from raftcore.wal import record

    orig = record.VERSION
    try:
        record.VERSION = 7  # type: ignore[misc]
        _rewrite_header(p, SegmentHeader(1, 0, 0, 0))
    finally:
        record.VERSION = orig  # type: ignore[misc]
    with pytest.raises(WALCorruptionError, match="unsupported WAL version 7"):
        DiskStorage.open(tmp_path, segment_size=SEG)
    assert struct.calcsize("<8sIIQQQQQQ") == len(records(p)[0].payload)
    # A header whose sequence number disagrees with the file name.
    _rewrite_header(p, SegmentHeader(2, 0, 0, 0))
    with pytest.raises(WALCorruptionError, match="header says segment 2"):
        DiskStorage.open(tmp_path, segment_size=SEG)


def _many_segments(d: Path, n_batches: int = 60) -> DiskStorage:
    s = DiskStorage.open(d, segment_size=4096)
    for i in range(n_batches):
        s.save(HardState(term=1, vote=1, commit=i * 5), batch(i * 5 + 1, 5, size=100), False)
    assert len(s.wal.segment_paths) >= 4
    return s


def test_damage_in_an_earlier_segment_is_corruption(tmp_path: Path) -> None:
    _many_segments(tmp_path).close()
    first = segments(tmp_path)[0]
    rec = records(first)[-1]
    # Even the last record of a segment that is not the last one is never "torn".
    flip(first, rec.offset + 12, 0)
    with pytest.raises(WALCorruptionError, match="complete before the next began") as exc:
        DiskStorage.open(tmp_path, segment_size=4096)
    assert exc.value.path == str(first)
    assert exc.value.offset == rec.offset


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (RecordKind.HARD_STATE, "begins with hard state"),
        (RecordKind.ENTRIES, "disagrees with the log before it"),
    ],
)
def test_lost_tail_of_an_earlier_segment_is_caught_by_the_next_header(
    tmp_path: Path, kind: RecordKind, message: str
) -> None:
    _many_segments(tmp_path).close()
    first = segments(tmp_path)[0]
    # Wipe the segment's tail from its last record of that kind on: the segment
    # itself then ends cleanly, and only the next one's header can tell.
    rec = [r for r in records(first) if r.kind == kind][-1]
    zero(first, rec.offset, records(first)[-1].end)
    with pytest.raises(WALCorruptionError, match=message) as exc:
        DiskStorage.open(tmp_path, segment_size=4096)
    assert exc.value.path == str(segments(tmp_path)[1])


def test_missing_segment_is_reported_not_skipped(tmp_path: Path) -> None:
    _many_segments(tmp_path).close()
    segs = segments(tmp_path)
    segs[1].unlink()
    with pytest.raises(WALCorruptionError, match="are missing"):
        DiskStorage.open(tmp_path, segment_size=4096)
    assert segs[0].exists()  # nothing was deleted on the way


def test_replay_from_a_segment_whose_predecessors_were_released(tmp_path: Path) -> None:
    """The first surviving segment began with live entries its predecessors held."""
    s = _many_segments(tmp_path)
    want_last = s.last_index()
    # Compact exactly to the second segment's starting last index: the first one is
    # released, and the second, which began with live entries it does not hold, is
    # where replay starts.
    second = s.wal.segments[1].header
    assert second.base_index < second.last_index
    s.compact(second.last_index)
    assert s.wal.segments[0].header == second
    s.append(batch(want_last + 1, 2), sync=True)
    want = state(s)
    s.close()
    s = DiskStorage.open(tmp_path, segment_size=4096)
    assert state(s) == want
    s.close()


def test_stale_segments_of_an_interrupted_release_are_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = _many_segments(tmp_path)
    old = tmp_path / "old.copy"
    shutil.copy(s.wal.segment_paths[0], old)
    old_name = os.path.basename(s.wal.segment_paths[0])
    s.compact(s.last_index() - 3)
    assert not (tmp_path / old_name).exists()
    want = state(s)
    s.close()
    old.rename(tmp_path / old_name)  # as if its unlink never reached the disk
    with caplog.at_level(logging.WARNING, logger="raftcore"):
        s = DiskStorage.open(tmp_path, segment_size=4096)
    assert "interrupted release" in caplog.text
    assert state(s) == want
    assert not (tmp_path / old_name).exists()
    s.close()


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    s.append(batch(1, 2))
    s.close()
    for name in ("0000000000000002.wal.tmp", "prealloc.wal.tmp", "x-y.snap.tmp"):
        (tmp_path / name).write_bytes(b"partial")
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    assert s.last_index() == 2
    s.close()
    assert not any(n.endswith(".tmp") and n != "prealloc.wal.tmp" for n in os.listdir(tmp_path))


# --------------------------------------------------------------------- snapshots

_CS = ConfState(voters=[1, 2, 3])


def test_damaged_committed_snapshot_is_an_error(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    s.append(batch(1, 5))
    s.create_snapshot(4, _CS, b"state")
    s.close()
    snap = tmp_path / "0000000000000001-0000000000000004.snap"
    flip(snap, 30, 1)
    with pytest.raises(SnapshotError, match="term 1 index 4"):
        DiskStorage.open(tmp_path, segment_size=SEG)
    snap.unlink()
    with pytest.raises(SnapshotError, match="missing or damaged"):
        DiskStorage.open(tmp_path, segment_size=SEG)


def test_uncommitted_snapshot_file_is_ignored_and_removed(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    s.append(batch(1, 5))
    committed = s.create_snapshot(3, _CS, b"old")
    s.close()
    # The crash came after writing the newer file, before its WAL marker.
    SnapshotStore(tmp_path).save(
        Snapshot(data=b"new", metadata=SnapshotMetadata(ConfState(voters=[9]), 5, 1))
    )
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    assert s.snapshot() == committed
    assert s.initial_state()[1] == _CS
    assert SnapshotStore(tmp_path).list() == [(1, 3)]
    s.close()


def test_uncommitted_first_snapshot_is_removed(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    s.append(batch(1, 5))
    s.close()
    SnapshotStore(tmp_path).save(Snapshot(data=b"x", metadata=SnapshotMetadata(_CS, 5, 1)))
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    assert s.snapshot() == Snapshot()
    assert SnapshotStore(tmp_path).list() == []
    s.close()


def test_snapshot_files_without_a_wal_are_refused(tmp_path: Path) -> None:
    SnapshotStore(tmp_path).save(Snapshot(data=b"x", metadata=SnapshotMetadata(_CS, 5, 1)))
    with pytest.raises(WALDirectoryError, match="no write-ahead log"):
        DiskStorage.open(tmp_path)


# --------------------------------------------------------------------- directory


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(WALDirectoryError, match="does not exist"):
        DiskStorage.open(tmp_path / "nope")


def test_path_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(WALDirectoryError, match="is not a directory"):
        DiskStorage.open(f)


def test_inaccessible_directory_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Permission bits do not bind root, so the check itself is exercised directly.
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(WALDirectoryError, match="not readable, writable and searchable"):
        DiskStorage.open(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_unwritable_directory(tmp_path: Path) -> None:  # pragma: no cover - non-root only
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        with pytest.raises(WALDirectoryError):
            DiskStorage.open(d)
    finally:
        d.chmod(0o700)


def test_directory_is_locked_while_open(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    with pytest.raises(WALLockedError, match="in use"):
        DiskStorage.open(tmp_path, segment_size=SEG)
    s.close()
    DiskStorage.open(tmp_path, segment_size=SEG).close()


def test_entries_survive_many_reopens(tmp_path: Path) -> None:
    want: list[Entry] = []
    for k in range(10):
        s = DiskStorage.open(tmp_path, segment_size=4096)
        assert s.entries(1, s.last_index() + 1, NO_LIMIT) == want if want else True
        new = batch(len(want) + 1, 7, term=k + 1, size=150)
        s.append(new)
        want.extend(new)
        s.close()
    s = DiskStorage.open(tmp_path, segment_size=4096)
    assert s.entries(1, s.last_index() + 1, NO_LIMIT) == want
    s.close()
