"""Tests for raftcore.storage (etcd's storage_test.go cases plus properties)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
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


def index_terms(first: int, *terms: int) -> list[Entry]:
    """Entries at consecutive indices from ``first`` with the given terms (Go's index(i).terms)."""
    return [Entry(term=t, index=first + k) for k, t in enumerate(terms)]


def _terms_of(ents: list[Entry]) -> list[tuple[int, int]]:
    return [(e.index, e.term) for e in ents]


def test_memory_storage_is_a_storage() -> None:
    s: Storage = MemoryStorage()
    assert isinstance(s, Storage)


@pytest.mark.parametrize(
    ("i", "werr", "wterm"),
    [
        (2, CompactedError, 0),
        (3, None, 3),
        (4, None, 4),
        (5, None, 5),
        (6, UnavailableError, 0),
    ],
)
def test_storage_term(i: int, werr: type[StorageError] | None, wterm: int) -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
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
        # Even with a zero limit, the first entry is returned.
        (4, 7, 0, None, index_terms(4, 4)),
        # Limit to 2.
        (4, 7, _SZ[1] + _SZ[2], None, index_terms(4, 4, 5)),
        (4, 7, _SZ[1] + _SZ[2] + _SZ[3] // 2, None, index_terms(4, 4, 5)),
        (4, 7, _SZ[1] + _SZ[2] + _SZ[3] - 1, None, index_terms(4, 4, 5)),
        # All.
        (4, 7, _SZ[1] + _SZ[2] + _SZ[3], None, index_terms(4, 4, 5, 6)),
    ],
)
def test_storage_entries(
    lo: int, hi: int, max_size: int, werr: type[StorageError] | None, wentries: list[Entry]
) -> None:
    s = MemoryStorage(ents=list(_ENTS4))
    if werr is not None:
        with pytest.raises(werr):
            s.entries(lo, hi, max_size)
        return
    got = s.entries(lo, hi, max_size)
    assert got == wentries
    # The caller owns the list: changing it leaves the storage alone.
    got.append(Entry(term=100, index=100))
    got[0] = Entry(term=100, index=100)
    assert s.ents == _ENTS4


def test_storage_entries_only_dummy_and_out_of_bound() -> None:
    s = MemoryStorage()
    with pytest.raises(UnavailableError):
        s.entries(1, 1, NO_LIMIT)
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    with pytest.raises(RaftPanic, match=r"entries' hi\(7\) is out of bound lastindex\(5\)"):
        s.entries(4, 7, NO_LIMIT)


def test_storage_last_index() -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    assert s.last_index() == 5
    s.append(index_terms(6, 5))
    assert s.last_index() == 6


def test_storage_first_index() -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    assert s.first_index() == 4
    s.compact(4)
    assert s.first_index() == 5


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
    i: int, werr: type[StorageError] | None, windex: int, wterm: int, wlen: int
) -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    if werr is not None:
        with pytest.raises(werr):
            s.compact(i)
    else:
        s.compact(i)
    assert s.ents[0].index == windex
    assert s.ents[0].term == wterm
    assert len(s.ents) == wlen


def test_storage_compact_out_of_bound() -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    with pytest.raises(RaftPanic, match=r"^compact 6 is out of bound lastindex\(5\)$"):
        s.compact(6)


def test_storage_compact_keeps_handed_out_entries() -> None:
    ents = index_terms(3, 3, 4, 5)
    s = MemoryStorage(ents=list(ents))
    got = s.entries(4, 6, NO_LIMIT)
    s.compact(4)
    # The dummy is a new entry; the one handed out is untouched.
    assert got == index_terms(4, 4, 5)
    assert s.ents[0] is not ents[1]
    assert (s.ents[0].index, s.ents[0].term, s.ents[0].data) == (4, 4, b"")


@pytest.mark.parametrize("i", [4, 5])
def test_storage_create_snapshot(i: int) -> None:
    cs = ConfState(voters=[1, 2, 3])
    data = b"data"
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    snap = s.create_snapshot(i, cs, data)
    want = Snapshot(
        data=data,
        metadata=SnapshotMetadata(index=i, term=i, conf_state=ConfState(voters=[1, 2, 3])),
    )
    assert snap == want
    assert s.snapshot() == want
    # Neither the argument nor the returned copy alias the stored snapshot.
    cs.voters.append(4)
    snap.metadata.conf_state.voters.append(5)
    assert s.snapshot() == want


def test_storage_create_snapshot_errors() -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    s.create_snapshot(4, ConfState(voters=[1]), b"")
    with pytest.raises(SnapOutOfDateError):
        s.create_snapshot(4, None, b"")
    with pytest.raises(RaftPanic, match=r"^snapshot 6 is out of bound lastindex\(5\)$"):
        s.create_snapshot(6, None, b"")
    # Without a ConfState the previous one is kept.
    snap = s.create_snapshot(5, None, b"x")
    assert snap.metadata.conf_state == ConfState(voters=[1])
    assert (snap.metadata.index, snap.metadata.term, snap.data) == (5, 5, b"x")


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
def test_storage_append(entries: list[Entry], wentries: list[Entry]) -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    s.append(entries)
    assert s.ents == wentries


def test_storage_append_gap_and_empty() -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    s.append([])
    assert s.ents == index_terms(3, 3, 4, 5)
    with pytest.raises(RaftPanic, match=r"^missing log entry \[last: 5, append at: 7\]$"):
        s.append(index_terms(7, 5))


def test_storage_append_keeps_handed_out_lists() -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
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
    snapshots: list[Snapshot], expected_error: type[StorageError] | None
) -> None:
    s = MemoryStorage()
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


def test_storage_apply_snapshot_resets_log() -> None:
    s = MemoryStorage()
    s.append(index_terms(1, 1, 1, 2))
    snap = _snap(10, 3)
    s.apply_snapshot(snap)
    assert s.ents == [Entry(term=3, index=10)]
    assert s.first_index() == 11
    assert s.last_index() == 10
    assert s.term(10) == 3
    assert s.snapshot() == snap
    hs, cs = s.initial_state()
    assert hs == HardState()
    assert cs == _CS
    # Stored copies are independent of the caller's objects.
    snap.metadata.conf_state.voters.append(9)
    assert s.snapshot().metadata.conf_state == ConfState(voters=[1, 2, 3])


def test_storage_initial_state_and_hard_state() -> None:
    s = MemoryStorage()
    hs, cs = s.initial_state()
    assert hs.is_empty()
    assert cs == ConfState()
    st_ = HardState(term=3, vote=2, commit=1)
    s.set_hard_state(st_)
    st_.term = 7
    hs, _ = s.initial_state()
    assert hs == HardState(term=3, vote=2, commit=1)


def test_storage_call_stats() -> None:
    s = MemoryStorage(ents=index_terms(3, 3, 4, 5))
    s.initial_state()
    s.first_index()
    s.first_index()
    s.last_index()
    s.entries(4, 5, NO_LIMIT)
    s.term(4)
    s.snapshot()
    cs = s.call_stats
    assert (cs.initial_state, cs.first_index, cs.last_index) == (1, 2, 1)
    assert (cs.entries, cs.term, cs.snapshot) == (1, 1, 1)


def test_storage_concurrent_append_and_read() -> None:
    """Appends on one thread and reads on another never see a torn state."""
    s = MemoryStorage()
    n = 2000
    errors: list[BaseException] = []

    def writer() -> None:
        for i in range(1, n + 1):
            s.append([Entry(term=1, index=i)])

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
    assert s.last_index() == n


class _Model:
    """A plain reference model of the stored log: index -> term, plus the dummy."""

    def __init__(self) -> None:
        self.dummy = (0, 0)  # (index, term)
        self.terms: list[int] = []

    def last(self) -> int:
        return self.dummy[0] + len(self.terms)


@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 30), st.integers(1, 5), st.integers(1, 9)),
            st.tuples(st.just("compact"), st.integers(0, 30), st.just(0), st.just(0)),
        ),
        max_size=25,
    )
)
def test_storage_matches_model(ops: list[tuple[str, int, int, int]]) -> None:
    s = MemoryStorage()
    m = _Model()
    for op, at, n, term in ops:
        if op == "append":
            ents = [Entry(term=term, index=at + k) for k in range(n)]
            first = m.dummy[0] + 1
            if at > m.last() + 1 and at + n - 1 >= first:
                with pytest.raises(RaftPanic):
                    s.append(ents)
                continue
            s.append(ents)
            for e in ents:
                if e.index < first:
                    continue
                pos = e.index - first
                del m.terms[pos:]
                m.terms.append(e.term)
        else:
            if at <= m.dummy[0]:
                with pytest.raises(CompactedError):
                    s.compact(at)
                continue
            if at > m.last():
                with pytest.raises(RaftPanic):
                    s.compact(at)
                continue
            s.compact(at)
            pos = at - m.dummy[0] - 1
            m.dummy = (at, m.terms[pos])
            m.terms = m.terms[pos + 1 :]
        assert s.first_index() == m.dummy[0] + 1
        assert s.last_index() == m.last()
        assert s.term(m.dummy[0]) == m.dummy[1]
        for k, t in enumerate(m.terms):
            assert s.term(m.dummy[0] + 1 + k) == t
        if m.terms:
            got = s.entries(m.dummy[0] + 1, m.last() + 1, NO_LIMIT)
            assert [e.term for e in got] == m.terms


def test_create_snapshot_below_compaction_point_panics() -> None:
    ms = MemoryStorage()
    ms.append([Entry(term=i, index=i) for i in range(1, 8)])
    ms.compact(5)
    with pytest.raises(RaftPanic, match="behind the compacted index 5"):
        ms.create_snapshot(4, None, b"")
