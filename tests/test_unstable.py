"""Tests for raftcore.unstable (etcd's log_unstable_test.go cases plus a few more)."""

from __future__ import annotations

from typing import NoReturn

import pytest

from raftcore.errors import RaftPanic
from raftcore.raftpb.types import Entry, Snapshot, SnapshotMetadata
from raftcore.types import EntryID
from raftcore.unstable import Unstable


class RecordingLogger:
    """Keeps every formatted line; panics raise like the real logger."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _log(self, level: str, msg: str, args: tuple[object, ...]) -> None:
        self.lines.append(f"{level} {msg % args if args else msg}")

    def debug(self, msg: str, *args: object) -> None:
        self._log("DEBUG", msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._log("INFO", msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._log("WARN", msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._log("ERROR", msg, args)

    def panic(self, msg: str, *args: object) -> NoReturn:
        self._log("FATAL", msg, args)
        raise RaftPanic(msg % args if args else msg)


def index_terms(first: int, *terms: int) -> list[Entry]:
    """Entries at consecutive indices from ``first`` with the given terms (Go's index(i).terms)."""
    return [Entry(term=t, index=first + k) for k, t in enumerate(terms)]


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(metadata=SnapshotMetadata(index=index, term=term))


def make(
    entries: list[Entry],
    offset: int,
    snapshot: Snapshot | None = None,
    offset_in_progress: int = 0,
    snapshot_in_progress: bool = False,
) -> Unstable:
    return Unstable(
        snapshot=snapshot,
        entries=entries,
        offset=offset,
        offset_in_progress=offset_in_progress,
        snapshot_in_progress=snapshot_in_progress,
        logger=RecordingLogger(),
    )


@pytest.mark.parametrize(
    ("entries", "offset", "snapshot", "windex"),
    [
        # No snapshot.
        (index_terms(5, 1), 5, None, None),
        ([], 0, None, None),
        # Has snapshot.
        (index_terms(5, 1), 5, snap(4, 1), 5),
        ([], 5, snap(4, 1), 5),
    ],
)
def test_unstable_maybe_first_index(
    entries: list[Entry], offset: int, snapshot: Snapshot | None, windex: int | None
) -> None:
    assert make(entries, offset, snapshot).maybe_first_index() == windex


@pytest.mark.parametrize(
    ("entries", "offset", "snapshot", "windex"),
    [
        # Last in entries.
        (index_terms(5, 1), 5, None, 5),
        (index_terms(5, 1), 5, snap(4, 1), 5),
        # Last in snapshot.
        ([], 5, snap(4, 1), 4),
        # Empty unstable.
        ([], 0, None, None),
    ],
)
def test_maybe_last_index(
    entries: list[Entry], offset: int, snapshot: Snapshot | None, windex: int | None
) -> None:
    assert make(entries, offset, snapshot).maybe_last_index() == windex


@pytest.mark.parametrize(
    ("entries", "offset", "snapshot", "index", "wterm"),
    [
        # Term from entries.
        (index_terms(5, 1), 5, None, 5, 1),
        (index_terms(5, 1), 5, None, 6, None),
        (index_terms(5, 1), 5, None, 4, None),
        (index_terms(5, 1), 5, snap(4, 1), 5, 1),
        (index_terms(5, 1), 5, snap(4, 1), 6, None),
        # Term from snapshot.
        (index_terms(5, 1), 5, snap(4, 1), 4, 1),
        (index_terms(5, 1), 5, snap(4, 1), 3, None),
        ([], 5, snap(4, 1), 5, None),
        ([], 5, snap(4, 1), 4, 1),
        ([], 0, None, 5, None),
    ],
)
def test_unstable_maybe_term(
    entries: list[Entry], offset: int, snapshot: Snapshot | None, index: int, wterm: int | None
) -> None:
    assert make(entries, offset, snapshot).maybe_term(index) == wterm


def test_unstable_maybe_term_zero_is_a_term() -> None:
    # A known term 0 is distinguishable from "unknown".
    assert make(index_terms(1, 0), 1).maybe_term(1) == 0
    assert make([], 1, snap(0, 0)).maybe_term(0) == 0


def test_unstable_restore() -> None:
    u = make(index_terms(5, 1), 5, snap(4, 1), offset_in_progress=6, snapshot_in_progress=True)
    s = snap(6, 2)
    u.restore(s)
    assert u.offset == s.metadata.index + 1
    assert u.offset_in_progress == s.metadata.index + 1
    assert len(u.entries) == 0
    assert u.snapshot == s
    assert u.snapshot is not s  # a copy is kept
    assert not u.snapshot_in_progress


@pytest.mark.parametrize(
    ("entries", "offset", "offset_in_progress", "wentries"),
    [
        # Nothing in progress.
        (index_terms(5, 1, 1), 5, 5, index_terms(5, 1, 1)),
        # Partially in progress.
        (index_terms(5, 1, 1), 5, 6, index_terms(6, 1)),
        # Everything in progress.
        (index_terms(5, 1, 1), 5, 7, []),
    ],
)
def test_unstable_next_entries(
    entries: list[Entry], offset: int, offset_in_progress: int, wentries: list[Entry]
) -> None:
    u = make(entries, offset, offset_in_progress=offset_in_progress)
    got = u.next_entries()
    assert got == wentries
    # The result is never the internal list.
    assert got is not u.entries


_S = snap(4, 1)


@pytest.mark.parametrize(
    ("snapshot", "in_progress", "want"),
    [
        # No unstable snapshot.
        (None, False, None),
        # Snapshot not in progress.
        (_S, False, _S),
        # Snapshot in progress.
        (_S, True, None),
    ],
)
def test_unstable_next_snapshot(
    snapshot: Snapshot | None, in_progress: bool, want: Snapshot | None
) -> None:
    u = Unstable(snapshot=snapshot, snapshot_in_progress=in_progress)
    got = u.next_snapshot()
    assert got == want
    if got is not None:
        assert got is not snapshot


@pytest.mark.parametrize(
    ("entries", "snapshot", "offset_in_progress", "snapshot_in_progress", "woip", "wsip"),
    [
        ([], None, 5, False, 5, False),  # no entries
        (index_terms(5, 1), None, 5, False, 6, False),  # entries not in progress
        (index_terms(5, 1, 1), None, 5, False, 7, False),  # entries not in progress
        (index_terms(5, 1, 1), None, 6, False, 7, False),  # in progress to the first entry
        (index_terms(5, 1, 1), None, 7, False, 7, False),  # in progress to the second entry
        # With snapshot.
        ([], _S, 5, False, 5, True),  # no entries
        (index_terms(5, 1), _S, 5, False, 6, True),  # entries not in progress
        (index_terms(5, 1, 1), _S, 5, False, 7, True),  # entries not in progress
        (index_terms(5, 1, 1), _S, 6, False, 7, True),  # in progress to the first entry
        (index_terms(5, 1, 1), _S, 7, False, 7, True),  # in progress to the second entry
        # Snapshot already in progress.
        ([], _S, 5, True, 5, True),
        (index_terms(5, 1), _S, 5, True, 6, True),
        (index_terms(5, 1, 1), _S, 5, True, 7, True),
        (index_terms(5, 1, 1), _S, 6, True, 7, True),
        (index_terms(5, 1, 1), _S, 7, True, 7, True),
    ],
)
def test_unstable_accept_in_progress(
    entries: list[Entry],
    snapshot: Snapshot | None,
    offset_in_progress: int,
    snapshot_in_progress: bool,
    woip: int,
    wsip: bool,
) -> None:
    u = Unstable(
        entries=list(entries),
        snapshot=snapshot,
        offset_in_progress=offset_in_progress,
        snapshot_in_progress=snapshot_in_progress,
    )
    u.accept_in_progress()
    assert u.offset_in_progress == woip
    assert u.snapshot_in_progress is wsip


@pytest.mark.parametrize(
    ("entries", "offset", "oip", "snapshot", "index", "term", "woffset", "woip", "wlen"),
    [
        ([], 0, 0, None, 5, 1, 0, 0, 0),
        (index_terms(5, 1), 5, 6, None, 5, 1, 6, 6, 0),  # stable to the first entry
        (index_terms(5, 1, 1), 5, 6, None, 5, 1, 6, 6, 1),  # stable to the first entry
        # Stable to the first entry and in-progress ahead.
        (index_terms(5, 1, 1), 5, 7, None, 5, 1, 6, 7, 1),
        # Stable to the first entry and term mismatch.
        (index_terms(6, 2), 6, 7, None, 6, 1, 6, 7, 1),
        (index_terms(5, 1), 5, 6, None, 4, 1, 5, 6, 1),  # stable to old entry
        (index_terms(5, 1), 5, 6, None, 4, 2, 5, 6, 1),  # stable to old entry
        # With snapshot.
        (index_terms(5, 1), 5, 6, snap(4, 1), 5, 1, 6, 6, 0),  # stable to the first entry
        (index_terms(5, 1, 1), 5, 6, snap(4, 1), 5, 1, 6, 6, 1),  # stable to the first entry
        # Stable to the first entry and in-progress ahead.
        (index_terms(5, 1, 1), 5, 7, snap(4, 1), 5, 1, 6, 7, 1),
        # Stable to the first entry and term mismatch.
        (index_terms(6, 2), 6, 7, snap(5, 1), 6, 1, 6, 7, 1),
        (index_terms(5, 1), 5, 6, snap(4, 1), 4, 1, 5, 6, 1),  # stable to snapshot
        (index_terms(5, 2), 5, 6, snap(4, 2), 4, 1, 5, 6, 1),  # stable to old entry
    ],
)
def test_unstable_stable_to(
    entries: list[Entry],
    offset: int,
    oip: int,
    snapshot: Snapshot | None,
    index: int,
    term: int,
    woffset: int,
    woip: int,
    wlen: int,
) -> None:
    u = make(list(entries), offset, snapshot, offset_in_progress=oip)
    u.stable_to(EntryID(term=term, index=index))
    assert u.offset == woffset
    assert u.offset_in_progress == woip
    assert len(u.entries) == wlen


def test_unstable_stable_to_log_lines() -> None:
    log = RecordingLogger()
    u = Unstable(entries=index_terms(5, 1), offset=5, offset_in_progress=6, logger=log)
    u.stable_to(EntryID(term=1, index=7))
    u.stable_to(EntryID(term=2, index=5))
    u.snapshot = snap(4, 1)
    u.stable_to(EntryID(term=1, index=4))
    assert log.lines == [
        "INFO entry at index 7 missing from unstable log; ignoring",
        "INFO entry at (index,term)=(5,2) mismatched with entry at (5,1) in unstable log; ignoring",
        "INFO entry at index 4 matched unstable snapshot; ignoring",
    ]


def test_unstable_stable_to_keeps_handed_out_lists() -> None:
    u = make(index_terms(5, 1, 1, 1), 5, offset_in_progress=5)
    out = u.next_entries()
    u.stable_to(EntryID(term=1, index=6))
    assert out == index_terms(5, 1, 1, 1)
    assert u.entries == index_terms(7, 1)


def test_unstable_stable_snap_to() -> None:
    u = Unstable(snapshot=snap(4, 1), snapshot_in_progress=True, offset=5, offset_in_progress=5)
    u.stable_snap_to(3)
    assert u.snapshot == snap(4, 1)
    assert u.snapshot_in_progress
    u.stable_snap_to(4)
    assert u.snapshot is None
    assert not u.snapshot_in_progress


@pytest.mark.parametrize(
    ("entries", "offset", "oip", "toappend", "woffset", "woip", "wentries"),
    [
        # Append to the end.
        (index_terms(5, 1), 5, 5, index_terms(6, 1, 1), 5, 5, index_terms(5, 1, 1, 1)),
        (index_terms(5, 1), 5, 6, index_terms(6, 1, 1), 5, 6, index_terms(5, 1, 1, 1)),
        # Replace the unstable entries.
        (index_terms(5, 1), 5, 5, index_terms(5, 2, 2), 5, 5, index_terms(5, 2, 2)),
        (index_terms(5, 1), 5, 5, index_terms(4, 2, 2, 2), 4, 4, index_terms(4, 2, 2, 2)),
        (index_terms(5, 1), 5, 6, index_terms(5, 2, 2), 5, 5, index_terms(5, 2, 2)),
        # Truncate the existing entries and append.
        (index_terms(5, 1, 1, 1), 5, 5, index_terms(6, 2), 5, 5, index_terms(5, 1, 2)),
        (index_terms(5, 1, 1, 1), 5, 5, index_terms(7, 2, 2), 5, 5, index_terms(5, 1, 1, 2, 2)),
        (index_terms(5, 1, 1, 1), 5, 6, index_terms(6, 2), 5, 6, index_terms(5, 1, 2)),
        (index_terms(5, 1, 1, 1), 5, 7, index_terms(6, 2), 5, 6, index_terms(5, 1, 2)),
    ],
)
def test_unstable_truncate_and_append(
    entries: list[Entry],
    offset: int,
    oip: int,
    toappend: list[Entry],
    woffset: int,
    woip: int,
    wentries: list[Entry],
) -> None:
    u = make(list(entries), offset, offset_in_progress=oip)
    handed_out = u.slice(offset, offset + len(entries))
    u.truncate_and_append(toappend)
    assert u.offset == woffset
    assert u.offset_in_progress == woip
    assert u.entries == wentries
    # Lists handed out earlier are unaffected, and the caller's list is not adopted.
    assert handed_out == entries
    assert u.entries is not toappend


def test_unstable_truncate_and_append_log_lines_and_gap() -> None:
    log = RecordingLogger()
    u = Unstable(entries=index_terms(5, 1, 1, 1), offset=5, offset_in_progress=5, logger=log)
    u.truncate_and_append(index_terms(6, 2))
    u.truncate_and_append(index_terms(4, 3))
    assert log.lines == [
        "INFO truncate the unstable entries before index 6",
        "INFO replace the unstable entries from index 4",
    ]
    with pytest.raises(RaftPanic, match=r"^unstable\.slice\[4,7\) out of bound \[4,5\]$"):
        u.truncate_and_append(index_terms(7, 3))


def test_unstable_slice() -> None:
    u = make(index_terms(5, 1, 2, 3), 5)
    assert u.slice(5, 5) == []
    assert u.slice(6, 8) == index_terms(6, 2, 3)
    with pytest.raises(RaftPanic, match=r"^invalid unstable\.slice 7 > 6$"):
        u.slice(7, 6)
    with pytest.raises(RaftPanic, match=r"^unstable\.slice\[4,6\) out of bound \[5,8\]$"):
        u.slice(4, 6)
    with pytest.raises(RaftPanic, match=r"^unstable\.slice\[6,9\) out of bound \[5,8\]$"):
        u.slice(6, 9)
