"""Tests for raftcore.types (etcd's types_test.go cases plus properties)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftcore.raftpb.types import Entry
from raftcore.types import EntryID, LogSlice, pb_entry_id


def test_entry_id() -> None:
    assert EntryID(term=5, index=10) == EntryID(term=5, index=10)
    assert EntryID(term=4, index=10) != EntryID(term=5, index=10)
    assert EntryID(term=5, index=9) != EntryID(term=5, index=10)
    # Hashable and immutable: usable as a dict key.
    assert {EntryID(1, 2): 1}[EntryID(1, 2)] == 1
    with pytest.raises(AttributeError):
        EntryID(1, 2).term = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("entry", "want"),
    [
        (Entry(), EntryID(term=0, index=0)),
        (Entry(term=1, index=2, data=b"data"), EntryID(term=1, index=2)),
        (Entry(term=10, index=123), EntryID(term=10, index=123)),
    ],
)
def test_pb_entry_id(entry: Entry, want: EntryID) -> None:
    assert pb_entry_id(entry) == want


def _id(index: int, term: int) -> EntryID:
    return EntryID(term=term, index=index)


def _e(index: int, term: int) -> Entry:
    return Entry(term=term, index=index)


# (term, prev, entries, not_ok, last)
_LOG_SLICE_CASES: list[tuple[int, EntryID, list[Entry], bool, EntryID]] = [
    # Empty "dummy" slice at the (0, 0) origin of the log.
    (0, EntryID(), [], False, _id(0, 0)),
    # Empty slice with a given prev: valid only if term >= prev.term.
    (0, _id(123, 10), [], True, EntryID()),
    (9, _id(123, 10), [], True, EntryID()),
    (10, _id(123, 10), [], False, _id(123, 10)),
    (11, _id(123, 10), [], False, _id(123, 10)),
    # A single entry.
    (0, EntryID(), [_e(1, 1)], True, EntryID()),
    (1, EntryID(), [_e(1, 1)], False, _id(1, 1)),
    (2, EntryID(), [_e(1, 1)], False, _id(1, 1)),
    # Multiple entries.
    (2, EntryID(), [_e(2, 1), _e(3, 1), _e(4, 2)], True, EntryID()),
    (1, _id(1, 1), [_e(2, 1), _e(3, 1), _e(4, 2)], True, EntryID()),
    (2, _id(1, 1), [_e(2, 1), _e(3, 1), _e(4, 2)], False, _id(4, 2)),
    # First entry inconsistent with prev.
    (10, _id(123, 5), [_e(111, 5)], True, EntryID()),
    (10, _id(123, 5), [_e(124, 4)], True, EntryID()),
    (10, _id(123, 5), [_e(234, 6)], True, EntryID()),
    (10, _id(123, 5), [_e(124, 6)], False, _id(124, 6)),
    # Inconsistent entries.
    (10, _id(12, 2), [_e(13, 2), _e(12, 2)], True, EntryID()),
    (10, _id(12, 2), [_e(13, 2), _e(15, 2)], True, EntryID()),
    (10, _id(12, 2), [_e(13, 2), _e(14, 1)], True, EntryID()),
    (10, _id(12, 2), [_e(13, 2), _e(14, 3)], False, _id(14, 3)),
]


@pytest.mark.parametrize(("term", "prev", "entries", "not_ok", "last"), _LOG_SLICE_CASES)
def test_log_slice(
    term: int, prev: EntryID, entries: list[Entry], not_ok: bool, last: EntryID
) -> None:
    s = LogSlice(term=term, prev=prev, entries=entries)
    if not_ok:
        with pytest.raises(ValueError):
            s.valid()
        return
    s.valid()
    got = s.last_entry_id()
    assert got == last
    assert s.last_index() == got.index


def test_log_slice_defaults() -> None:
    s = LogSlice()
    assert s.term == 0
    assert s.prev == EntryID()
    assert list(s.entries) == []
    s.valid()


def test_log_slice_error_texts() -> None:
    with pytest.raises(ValueError) as exc:
        LogSlice(term=10, prev=_id(123, 5), entries=[_e(124, 4)]).valid()
    assert str(exc.value) == (
        "leader term 10: entries {term:5 index:123} and {term:4 index:124} not consistent"
    )
    with pytest.raises(ValueError) as exc:
        LogSlice(term=9, prev=_id(123, 10)).valid()
    assert str(exc.value) == "leader term 9: entry {term:10 index:123} has a newer term"


@given(
    prev_index=st.integers(0, 1000),
    prev_term=st.integers(0, 50),
    bumps=st.lists(st.integers(0, 3), max_size=20),
    extra=st.integers(0, 5),
)
def test_log_slice_well_formed_is_valid(
    prev_index: int, prev_term: int, bumps: list[int], extra: int
) -> None:
    """Any contiguous slice with non-decreasing terms up to ``term`` is valid."""
    entries = []
    t = prev_term
    for i, b in enumerate(bumps):
        t += b
        entries.append(Entry(term=t, index=prev_index + 1 + i))
    s = LogSlice(term=t + extra, prev=EntryID(prev_term, prev_index), entries=entries)
    s.valid()
    assert s.last_index() == prev_index + len(bumps)
    assert s.last_entry_id() == (
        EntryID(entries[-1].term, entries[-1].index) if entries else s.prev
    )
