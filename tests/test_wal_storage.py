"""DiskStorage: etcd's storage_test.go cases, persistence across reopen, and a
differential property test against MemoryStorage."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftcore.errors import (
    CompactedError,
    RaftPanic,
    SnapOutOfDateError,
    StorageError,
    UnavailableError,
)
from raftcore.raftpb.codec import entry_size
from raftcore.raftpb.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftcore.storage import MemoryStorage, Storage
from raftcore.util import NO_LIMIT
from raftcore.wal import DiskStorage, WALError

SEG = 4096  # small segments: every test crosses rotations


def index_terms(first: int, *terms: int) -> list[Entry]:
    """Entries at consecutive indices from ``first`` with the given terms (Go's index(i).terms)."""
    return [Entry(term=t, index=first + k) for k, t in enumerate(terms)]


def seeded(path: Path, ents: list[Entry]) -> DiskStorage:
    """A DiskStorage whose ``ents`` (dummy first) equal ``ents``, built through its API."""
    dummy = ents[0]
    s = DiskStorage.open(path, segment_size=SEG)
    if dummy.index > 0:
        prefix = [Entry(term=min(k, dummy.term), index=k) for k in range(1, dummy.index)]
        s.append([*prefix, Entry(term=dummy.term, index=dummy.index)])
        s.append(ents[1:])
        s.compact(dummy.index)
    else:
        s.append(ents[1:])
    assert s.ents == ents
    return s


Maker = Callable[[list[Entry]], DiskStorage]


@pytest.fixture(params=[False, True], ids=["fresh", "reopened"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Maker]:
    """Builds a seeded store; the "reopened" variant closes and recovers it first."""
    opened: list[DiskStorage] = []

    def _make(ents: list[Entry]) -> DiskStorage:
        s = seeded(tmp_path, ents)
        if request.param:
            s.close()
            s = DiskStorage.open(tmp_path, segment_size=SEG)
        opened.append(s)
        return s

    yield _make
    for s in opened:
        s.close()


def reopen(s: DiskStorage) -> DiskStorage:
    s.close()
    return DiskStorage.open(s.wal.dir, segment_size=SEG)


def test_disk_storage_is_a_storage(tmp_path: Path) -> None:
    with DiskStorage.open(tmp_path, segment_size=SEG) as s:
        st_: Storage = s
        assert isinstance(st_, Storage)
        assert s.first_index() == 1
        assert s.last_index() == 0
        assert s.initial_state() == (HardState(), ConfState())
        assert s.snapshot() == Snapshot()


@pytest.mark.parametrize(
    ("i", "werr", "wterm"),
    [(2, CompactedError, 0), (3, None, 3), (4, None, 4), (5, None, 5), (6, UnavailableError, 0)],
)
def test_storage_term(make: Maker, i: int, werr: type[StorageError] | None, wterm: int) -> None:
    s = make(index_terms(3, 3, 4, 5))
    if werr is not None:
        with pytest.raises(werr):
            s.term(i)
    else:
        assert s.term(i) == wterm


_ENTS4 = index_terms(3, 3, 4, 5, 6)
_SZ = [entry_size(e) for e in _ENTS4]


@pytest.mark.parametrize(
    ("lo", "hi", "max_size", "werr", "wentries"),
    [
        (2, 6, NO_LIMIT, CompactedError, []),
        (3, 4, NO_LIMIT, CompactedError, []),
        (4, 5, NO_LIMIT, None, index_terms(4, 4)),
        (4, 6, NO_LIMIT, None, index_terms(4, 4, 5)),
        (4, 7, NO_LIMIT, None, index_terms(4, 4, 5, 6)),
        (4, 7, 0, None, index_terms(4, 4)),
        (4, 7, _SZ[1] + _SZ[2], None, index_terms(4, 4, 5)),
        (4, 7, _SZ[1] + _SZ[2] + _SZ[3] // 2, None, index_terms(4, 4, 5)),
        (4, 7, _SZ[1] + _SZ[2] + _SZ[3] - 1, None, index_terms(4, 4, 5)),
        (4, 7, _SZ[1] + _SZ[2] + _SZ[3], None, index_terms(4, 4, 5, 6)),
    ],
)
def test_storage_entries(
    make: Maker,
    lo: int,
    hi: int,
    max_size: int,
    werr: type[StorageError] | None,
    wentries: list[Entry],
) -> None:
    s = make(list(_ENTS4))
    if werr is not None:
        with pytest.raises(werr):
            s.entries(lo, hi, max_size)
        return
    got = s.entries(lo, hi, max_size)
    assert got == wentries
    got.append(Entry(term=100, index=100))
    assert s.ents == _ENTS4


def test_storage_entries_only_dummy_and_out_of_bound(make: Maker) -> None:
    s = make([Entry()])
    with pytest.raises(UnavailableError):
        s.entries(1, 1, NO_LIMIT)


def test_storage_entries_hi_out_of_bound(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    with pytest.raises(RaftPanic, match=r"entries' hi\(7\) is out of bound lastindex\(5\)"):
        s.entries(4, 7, NO_LIMIT)


def test_storage_last_index(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    assert s.last_index() == 5
    s.append(index_terms(6, 5))
    assert s.last_index() == 6
    assert reopen(s).last_index() == 6


def test_storage_first_index(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    assert s.first_index() == 4
    s.compact(4)
    assert s.first_index() == 5
    s = reopen(s)
    assert s.first_index() == 5
    s.close()


@pytest.mark.parametrize(
    ("i", "werr", "windex", "wterm", "wlen"),
    [
        (2, CompactedError, 3, 3, 3),
        (3, CompactedError, 3, 3, 3),
        (4, None, 4, 4, 2),
        (5, None, 5, 5, 1),
    ],
)
def test_storage_compact(
    make: Maker, i: int, werr: type[StorageError] | None, windex: int, wterm: int, wlen: int
) -> None:
    s = make(index_terms(3, 3, 4, 5))
    if werr is not None:
        with pytest.raises(werr):
            s.compact(i)
    else:
        s.compact(i)
    for store in (s, reopen(s)):
        assert store.ents[0].index == windex
        assert store.ents[0].term == wterm
        assert len(store.ents) == wlen
    store.close()


def test_storage_compact_out_of_bound(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    with pytest.raises(RaftPanic, match=r"^compact 6 is out of bound lastindex\(5\)$"):
        s.compact(6)


@pytest.mark.parametrize("i", [4, 5])
def test_storage_create_snapshot(make: Maker, i: int) -> None:
    cs = ConfState(voters=[1, 2, 3])
    s = make(index_terms(3, 3, 4, 5))
    snap = s.create_snapshot(i, cs, b"data")
    want = Snapshot(
        data=b"data",
        metadata=SnapshotMetadata(index=i, term=i, conf_state=ConfState(voters=[1, 2, 3])),
    )
    assert snap == want
    cs.voters.append(4)
    snap.metadata.conf_state.voters.append(5)
    assert s.snapshot() == want
    s = reopen(s)
    assert s.snapshot() == want
    assert s.initial_state()[1] == ConfState(voters=[1, 2, 3])
    # Creating a snapshot does not compact.
    assert s.first_index() == 4
    s.close()


def test_storage_create_snapshot_errors(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    s.create_snapshot(4, ConfState(voters=[1]), b"")
    with pytest.raises(SnapOutOfDateError):
        s.create_snapshot(4, None, b"")
    with pytest.raises(RaftPanic, match=r"^snapshot 6 is out of bound lastindex\(5\)$"):
        s.create_snapshot(6, None, b"")
    snap = s.create_snapshot(5, None, b"x")
    assert snap.metadata.conf_state == ConfState(voters=[1])
    assert (snap.metadata.index, snap.metadata.term, snap.data) == (5, 5, b"x")
    s = reopen(s)
    assert s.snapshot() == snap
    # Only the committed snapshot file is kept.
    assert sorted(n for n in os.listdir(s.wal.dir) if n.endswith(".snap")) == [
        "0000000000000005-0000000000000005.snap"
    ]
    s.close()


def test_storage_create_snapshot_behind_compaction_panics(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    s.compact(5)
    with pytest.raises(RaftPanic, match=r"^snapshot 4 is out of bound compacted index\(5\)$"):
        s.create_snapshot(4, None, b"")


@pytest.mark.parametrize(
    ("entries", "wentries"),
    [
        (index_terms(1, 1, 2), index_terms(3, 3, 4, 5)),
        (index_terms(3, 3, 4, 5), index_terms(3, 3, 4, 5)),
        (index_terms(3, 3, 6, 6), index_terms(3, 3, 6, 6)),
        (index_terms(3, 3, 4, 5, 5), index_terms(3, 3, 4, 5, 5)),
        # Truncate incoming entries, truncate the existing entries and append.
        (index_terms(2, 3, 3, 5), index_terms(3, 3, 5)),
        # Truncate the existing entries and append.
        (index_terms(4, 5), index_terms(3, 3, 5)),
        # Direct append.
        (index_terms(6, 5), index_terms(3, 3, 4, 5, 5)),
    ],
)
def test_storage_append(make: Maker, entries: list[Entry], wentries: list[Entry]) -> None:
    s = make(index_terms(3, 3, 4, 5))
    s.append(entries)
    assert s.ents == wentries
    # The truncation is durable: recovery replays it.
    s = reopen(s)
    assert s.ents == wentries
    s.close()


def test_storage_append_gap_panics_before_writing(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    s.append([])
    assert s.ents == index_terms(3, 3, 4, 5)
    with pytest.raises(RaftPanic, match=r"^missing log entry \[last: 5, append at: 7\]$"):
        s.append(index_terms(7, 5))
    s = reopen(s)
    assert s.ents == index_terms(3, 3, 4, 5)
    s.close()


def test_storage_append_keeps_handed_out_lists(make: Maker) -> None:
    s = make(index_terms(3, 3, 4, 5))
    got = s.entries(4, 6, NO_LIMIT)
    s.append(index_terms(4, 6))
    assert got == index_terms(4, 4, 5)
    assert s.entries(4, 5, NO_LIMIT) == index_terms(4, 6)


_CS = ConfState(voters=[1, 2, 3])


def _snap(index: int, term: int) -> Snapshot:
    return Snapshot(data=b"data", metadata=SnapshotMetadata(index=index, term=term, conf_state=_CS))


@pytest.mark.parametrize(
    ("snapshots", "expected_error"),
    [
        pytest.param([_snap(4, 4)], None, id="normal case"),
        pytest.param([_snap(4, 4), _snap(3, 3)], SnapOutOfDateError, id="snapshot out of date"),
        pytest.param([_snap(0, 0)], None, id="bootstrap with confState"),
    ],
)
def test_storage_apply_snapshot(
    tmp_path: Path, snapshots: list[Snapshot], expected_error: type[StorageError] | None
) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    err: StorageError | None = None
    for sn in snapshots:
        try:
            s.apply_snapshot(sn)
        except StorageError as e:
            err = e
    if expected_error is None:
        assert err is None
    else:
        assert isinstance(err, expected_error)
    s = reopen(s)
    assert s.snapshot() == snapshots[0]
    assert s.initial_state()[1] == _CS
    assert s.first_index() == snapshots[0].metadata.index + 1
    s.close()


def test_storage_apply_snapshot_resets_log(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    s.append(index_terms(1, 1, 1, 2))
    s.set_hard_state(HardState(term=2, vote=1, commit=3))
    snap = _snap(10, 3)
    s.apply_snapshot(snap)
    for store in (s, reopen(s)):
        assert store.ents == [Entry(term=3, index=10)]
        assert store.first_index() == 11
        assert store.last_index() == 10
        assert store.term(10) == 3
        assert store.snapshot() == snap
        hs, cs = store.initial_state()
        assert hs == HardState(term=2, vote=1, commit=3)
        assert cs == _CS
    snap.metadata.conf_state.voters.append(9)
    assert store.snapshot().metadata.conf_state == ConfState(voters=[1, 2, 3])
    # The log continues after the snapshot, across a reopen.
    store.append(index_terms(11, 3, 3))
    store = reopen(store)
    assert store.ents == index_terms(10, 3, 3, 3)
    store.close()


def test_storage_initial_state_and_hard_state(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    hs, cs = s.initial_state()
    assert hs.is_empty()
    assert cs == ConfState()
    st_ = HardState(term=3, vote=2, commit=1)
    s.set_hard_state(st_)
    st_.term = 7
    assert s.initial_state()[0] == HardState(term=3, vote=2, commit=1)
    s = reopen(s)
    assert s.initial_state()[0] == HardState(term=3, vote=2, commit=1)
    s.close()


def test_save_group_commit_and_must_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One Ready = one write; fsync exactly when must_sync asks."""
    s = DiskStorage.open(tmp_path, segment_size=1 << 20, preallocate=False)
    writes: list[int] = []
    syncs: list[int] = []
    real_pwrite, real_pwritev, real_fdatasync = os.pwrite, os.pwritev, os.fdatasync

    def pwrite(fd: int, buf: bytes, off: int) -> int:
        writes.append(len(buf))
        return real_pwrite(fd, buf, off)

    def pwritev(fd: int, bufs: list[bytes], off: int) -> int:
        writes.append(sum(map(len, bufs)))
        return real_pwritev(fd, bufs, off)

    def fdatasync(fd: int) -> None:
        syncs.append(fd)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "pwritev", pwritev)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    ents = [Entry(term=1, index=i, data=b"x" * 100) for i in range(1, 257)]
    s.save(HardState(term=1, vote=1, commit=0), ents, must_sync=True)
    assert (len(writes), len(syncs)) == (1, 1)
    s.save(HardState(term=1, vote=1, commit=256), [], must_sync=False)
    assert (len(writes), len(syncs)) == (2, 1)
    # An unchanged or empty hard state and no entries write nothing.
    s.save(HardState(term=1, vote=1, commit=256), [], must_sync=False)
    s.save(HardState(), [], must_sync=False)
    s.save(None, [], must_sync=False)
    assert (len(writes), len(syncs)) == (2, 1)
    # A sync with nothing new to write only syncs what is pending.
    s.save(None, [], must_sync=True)
    assert (len(writes), len(syncs)) == (2, 2)
    s.save(None, [], must_sync=True)
    assert (len(writes), len(syncs)) == (2, 2)
    monkeypatch.undo()
    s = reopen(s)
    assert s.initial_state()[0] == HardState(term=1, vote=1, commit=256)
    assert s.entries(1, 257, NO_LIMIT) == ents
    s.close()


def test_rotation_and_release(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    term = 1
    for i in range(1, 2001, 10):
        s.save(
            HardState(term=term, vote=1, commit=i),
            [Entry(term=term, index=j, data=b"p" * 40) for j in range(i, i + 10)],
            must_sync=False,
        )
    assert len(s.wal.segment_paths) > 20
    s.create_snapshot(1900, ConfState(voters=[1]), b"state")
    s.compact(1900)
    # Only segments holding entries after 1900 (and the current one) remain.
    remaining = s.wal.segment_paths
    assert 1 <= len(remaining) <= 3
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(p) for p in remaining]
        + ["LOCK", "0000000000000001-000000000000076c.snap", "prealloc.wal.tmp"]
    )
    s = reopen(s)
    assert (s.first_index(), s.last_index()) == (1901, 2000)
    assert s.entries(1901, 2001, NO_LIMIT) == [
        Entry(term=1, index=j, data=b"p" * 40) for j in range(1901, 2001)
    ]
    assert s.snapshot().metadata.index == 1900
    assert s.initial_state() == (HardState(term=1, vote=1, commit=1991), ConfState(voters=[1]))
    s.close()


def test_apply_snapshot_releases_everything_older(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    for i in range(1, 500, 10):
        s.append([Entry(term=1, index=j, data=b"q" * 40) for j in range(i, i + 10)], sync=False)
    assert len(s.wal.segment_paths) > 3
    s.apply_snapshot(_snap(100, 5))
    assert len(s.wal.segment_paths) == 1
    s.append(index_terms(101, 5, 5))
    s = reopen(s)
    assert s.ents == index_terms(100, 5, 5, 5)
    s.close()


def test_oversized_batch_gets_its_own_segment(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    big = [Entry(term=1, index=i, data=os.urandom(3000)) for i in range(1, 6)]
    s.append(big[:1])
    s.append(big[1:])  # 12 KB in a 4 KB segment: one rotation, then it overflows
    s.append(index_terms(6, 1))
    s = reopen(s)
    assert s.entries(1, 6, NO_LIMIT) == big
    assert s.last_index() == 6
    s.close()


def test_closed_store_refuses_writes(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    s.append(index_terms(1, 1))
    s.close()
    s.close()  # idempotent
    assert s.last_index() == 1
    with pytest.raises(WALError, match="closed"):
        s.append(index_terms(2, 1))


def test_failed_write_poisons_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = DiskStorage.open(tmp_path, segment_size=SEG, preallocate=False)
    s.append(index_terms(1, 1))

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(WALError, match="Input/output error"):
        s.append(index_terms(2, 1))
    monkeypatch.undo()
    # The in-memory state did not move, and the store stays unusable.
    assert s.last_index() == 1
    with pytest.raises(WALError, match="unusable"):
        s.append(index_terms(2, 1))
    s.close()
    s = DiskStorage.open(tmp_path, segment_size=SEG)
    assert s.last_index() in (1, 2)  # the write itself may have reached the file
    s.close()


def test_concurrent_readers_during_writes(tmp_path: Path) -> None:
    s = DiskStorage.open(tmp_path, segment_size=1 << 16)
    n = 300
    errors: list[BaseException] = []

    def writer() -> None:
        for i in range(1, n + 1):
            s.save(HardState(term=1, commit=i), [Entry(term=1, index=i)], must_sync=i % 10 == 0)

    def reader() -> None:
        try:
            for _ in range(n):
                last = s.last_index()
                if last >= 1:
                    ents = s.entries(1, last + 1, NO_LIMIT)
                    assert len(ents) == last
                    assert ents[-1].index == last
        except BaseException as e:  # pragma: no cover - only on failure
            errors.append(e)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = reopen(s)
    assert s.last_index() == n
    s.close()


# ------------------------------------------------------------- differential test

_op = st.one_of(
    st.tuples(st.just("append"), st.integers(-3, 2), st.integers(1, 12), st.integers(0, 2)),
    st.tuples(st.just("save"), st.integers(-3, 2), st.integers(0, 12), st.booleans()),
    st.tuples(st.just("compact"), st.integers(0, 30), st.just(0), st.just(0)),
    st.tuples(st.just("snapshot"), st.integers(0, 30), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("apply"), st.integers(1, 40), st.integers(0, 3), st.just(0)),
    st.tuples(st.just("hardstate"), st.integers(0, 9), st.integers(0, 3), st.integers(0, 50)),
    st.tuples(st.just("reopen"), st.just(0), st.just(0), st.just(0)),
)


def _same(d: DiskStorage, m: MemoryStorage) -> None:
    assert d.ents == m.ents
    assert d.first_index() == m.first_index()
    assert d.last_index() == m.last_index()
    assert d.initial_state() == m.initial_state()
    assert d.snapshot() == m.snapshot()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=st.lists(_op, max_size=40), preallocate=st.booleans())
def test_disk_storage_matches_memory_storage(
    ops: list[tuple[str, int, int, int | bool]], preallocate: bool
) -> None:
    """Any sequence of writes and reopens leaves DiskStorage equal to MemoryStorage."""
    with tempfile.TemporaryDirectory() as tmp:

        def open_() -> DiskStorage:
            return DiskStorage.open(tmp, segment_size=SEG, preallocate=preallocate)

        d = open_()
        m = MemoryStorage()
        term = 1
        try:
            for op, a, b, c in ops:
                last = m.last_index()
                if op in ("append", "save"):
                    start = max(1, last + 1 + a)
                    term += int(c) if op == "append" else 0
                    ents = [
                        Entry(term=term, index=start + k, data=b"%d," % (start + k) * 40)
                        for k in range(b)
                    ]
                    if ents and start > last + 1:
                        with pytest.raises(RaftPanic):
                            d.append(ents, sync=False)
                        with pytest.raises(RaftPanic):
                            m.append(ents)
                        continue
                    if op == "append":
                        d.append(ents, sync=False)
                    else:
                        hs = HardState(term=term, vote=1, commit=min(last, b))
                        d.save(hs, ents, must_sync=bool(c))
                        if not hs.is_empty():
                            m.set_hard_state(hs)
                    m.append(ents)
                elif op == "compact":
                    i = m.ents[0].index + 1 + a
                    if i <= last:
                        d.compact(i)
                        m.compact(i)
                elif op == "snapshot":
                    i = max(m.snap.metadata.index, m.ents[0].index) + 1 + a
                    if i <= last:
                        cs = ConfState(voters=list(range(1, b + 2))) if c else None
                        assert d.create_snapshot(i, cs, b"s%d" % i) == m.create_snapshot(
                            i, cs, b"s%d" % i
                        )
                elif op == "apply":
                    i = m.snap.metadata.index + a
                    term = max(term, b + 1)
                    snap = Snapshot(
                        data=b"a%d" % i,
                        metadata=SnapshotMetadata(ConfState(learners=[b]), i, term),
                    )
                    d.apply_snapshot(snap)
                    m.apply_snapshot(snap)
                elif op == "hardstate":
                    hs = HardState(term=a, vote=b, commit=int(c))
                    d.set_hard_state(hs, sync=False)
                    m.set_hard_state(hs)
                else:
                    d.close()
                    d = open_()
                _same(d, m)
            d.close()
            d = open_()
            _same(d, m)
        finally:
            d.close()


# --- the lock-free read fast path ---------------------------------------------------


@pytest.mark.parametrize("i", range(-1, 9))
def test_maybe_term_answers_as_term_does(make: Maker, i: int) -> None:
    s = make(index_terms(3, 3, 4, 5))  # compacted at 3; entries 4 and 5
    try:
        want: int | None = s.term(i)
    except (CompactedError, UnavailableError):
        want = None
    assert s.maybe_term(i) == want


def test_raft_log_uses_disk_storage_maybe_term(tmp_path: Path) -> None:
    from raftcore.log import RaftLog

    with DiskStorage.open(tmp_path, segment_size=SEG) as s:
        log = RaftLog(s)
        assert log._storage_maybe_term is not None


def test_lock_free_reads_never_see_a_torn_save(tmp_path: Path) -> None:
    # A writer thread keeps replacing the tail (a new leader's conflicting entries);
    # a reader checks that every last index and term it reads belongs to a state
    # before or after a save, never one half-way through it.
    with DiskStorage.open(tmp_path, segment_size=1 << 20) as s:
        s.append([Entry(term=1, index=i) for i in range(1, 51)], sync=False)
        stop = threading.Event()
        errors: list[str] = []

        def writer() -> None:
            term = 1
            while not stop.is_set():
                term += 1
                s.save(None, [Entry(term=term, index=i) for i in range(26, 51)], False)

        w = threading.Thread(target=writer)
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
        w.start()
        try:
            end = time.monotonic() + 1.0
            while time.monotonic() < end and len(errors) < 10:
                last = s.last_index()
                if last != 50:
                    errors.append(f"last index {last}")
                if s.maybe_term(40) is None:
                    errors.append("term of 40 missing")
                if s.first_index() != 1:
                    errors.append("first index moved")
        finally:
            stop.set()
            w.join()
            sys.setswitchinterval(old_interval)
        assert errors == []
