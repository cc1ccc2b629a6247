"""Tests for raftcore.log (etcd's log_test.go cases plus log texts and properties)."""

from __future__ import annotations

from typing import NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcore.errors import CompactedError, RaftError, RaftPanic, UnavailableError
from raftcore.log import RaftLog
from raftcore.raftpb.codec import entry_size
from raftcore.raftpb.types import Entry, EntryType, Snapshot, SnapshotMetadata
from raftcore.storage import MemoryStorage
from raftcore.types import EntryID, LogSlice, pb_entry_id
from raftcore.util import NO_LIMIT, ents_size


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


def index_term_range(first: int, from_: int, to: int) -> list[Entry]:
    """Entries at indices from ``first`` with terms ``from_ .. to-1`` (Go's index(i).termRange).

    Go sets the entry type explicitly there, and proto2 counts a set field in the size
    (2 bytes) even at its zero value. raftcore's codec leaves zero-valued fields out, so a
    non-zero type stands in for it: the sizes, and so the expected batch cuts, match Go's.
    """
    t = EntryType.EntryConfChangeV2
    return [Entry(term=term, index=first + k, type=t) for k, term in enumerate(range(from_, to))]


def new_log(
    storage: MemoryStorage | None = None, max_size: int = NO_LIMIT
) -> tuple[RaftLog, RecordingLogger]:
    log = RecordingLogger()
    return RaftLog(storage if storage is not None else MemoryStorage(), log, max_size), log


def snap(index: int, term: int) -> Snapshot:
    return Snapshot(metadata=SnapshotMetadata(index=index, term=term))


# --------------------------------------------------------------------------- conflicts


@pytest.mark.parametrize(
    ("ents", "wconflict"),
    [
        # No conflict, empty entries.
        ([], 0),
        # No conflict.
        (index_terms(1, 1, 2, 3), 0),
        (index_terms(2, 2, 3), 0),
        (index_terms(3, 3), 0),
        # No conflict, but has new entries.
        (index_terms(1, 1, 2, 3, 4, 4), 4),
        (index_terms(2, 2, 3, 4, 5), 4),
        (index_terms(3, 3, 4, 4), 4),
        (index_terms(4, 4, 4), 4),
        # Conflicts with existing entries.
        (index_terms(1, 4, 4), 1),
        (index_terms(2, 1, 4, 4), 2),
        (index_terms(3, 1, 2, 4, 4), 3),
    ],
)
def test_find_conflict(ents: list[Entry], wconflict: int) -> None:
    raft_log, _ = new_log()
    raft_log.append(index_terms(1, 1, 2, 3))
    assert raft_log.find_conflict(ents) == wconflict


def test_find_conflict_log_line() -> None:
    raft_log, log = new_log()
    raft_log.append(index_terms(1, 1, 2, 3))
    assert raft_log.find_conflict(index_terms(2, 1, 4, 4)) == 2
    # A new entry past the end is not a conflict and is not logged.
    assert raft_log.find_conflict(index_terms(4, 4)) == 4
    assert log.lines == ["INFO found conflict at index 2 [existing term: 2, conflicting term: 1]"]


_FCBT_LOG1 = index_terms(0, 0, 2, 2, 5, 5, 5)
_FCBT_LOG2 = index_terms(10, 3, 3, 3, 4, 4, 4)


@pytest.mark.parametrize(
    ("ents", "index", "term", "want"),
    [
        # Log starts from index 1.
        (_FCBT_LOG1, 100, 2, 100),  # UnavailableError
        (_FCBT_LOG1, 5, 6, 5),
        (_FCBT_LOG1, 5, 5, 5),
        (_FCBT_LOG1, 5, 4, 2),
        (_FCBT_LOG1, 5, 2, 2),
        (_FCBT_LOG1, 5, 1, 0),
        (_FCBT_LOG1, 1, 2, 1),
        (_FCBT_LOG1, 1, 1, 0),
        (_FCBT_LOG1, 0, 0, 0),
        # Log with compacted entries.
        (_FCBT_LOG2, 30, 3, 30),  # UnavailableError
        (_FCBT_LOG2, 14, 9, 14),
        (_FCBT_LOG2, 14, 4, 14),
        (_FCBT_LOG2, 14, 3, 12),
        (_FCBT_LOG2, 14, 2, 9),
        (_FCBT_LOG2, 11, 5, 11),
        (_FCBT_LOG2, 10, 5, 10),
        (_FCBT_LOG2, 10, 3, 10),
        (_FCBT_LOG2, 10, 2, 9),
        (_FCBT_LOG2, 9, 2, 9),  # CompactedError
        (_FCBT_LOG2, 4, 2, 4),  # CompactedError
        (_FCBT_LOG2, 0, 0, 0),  # CompactedError
    ],
)
def test_find_conflict_by_term(ents: list[Entry], index: int, term: int, want: int) -> None:
    st_ = MemoryStorage()
    st_.apply_snapshot(snap(ents[0].index, ents[0].term))
    raft_log, _ = new_log(st_)
    raft_log.append(ents[1:])

    got_index, got_term = raft_log.find_conflict_by_term(index, term)
    assert got_index == want
    assert got_term == raft_log.zero_term_on_out_of_bounds(got_index)


_UTD_LAST = 3


@pytest.mark.parametrize(
    ("last_index", "term", "w_up_to_date"),
    [
        # Greater term, ignore last index.
        (_UTD_LAST - 1, 4, True),
        (_UTD_LAST, 4, True),
        (_UTD_LAST + 1, 4, True),
        # Smaller term, ignore last index.
        (_UTD_LAST - 1, 2, False),
        (_UTD_LAST, 2, False),
        (_UTD_LAST + 1, 2, False),
        # Equal term: an equal or larger last index wins.
        (_UTD_LAST - 1, 3, False),
        (_UTD_LAST, 3, True),
        (_UTD_LAST + 1, 3, True),
    ],
)
def test_is_up_to_date(last_index: int, term: int, w_up_to_date: bool) -> None:
    raft_log, _ = new_log()
    raft_log.append(index_terms(1, 1, 2, 3))
    assert raft_log.last_index() == _UTD_LAST
    assert raft_log.is_up_to_date(EntryID(term=term, index=last_index)) is w_up_to_date


# --------------------------------------------------------------------------- appending


@pytest.mark.parametrize(
    ("ents", "windex", "wents", "wunstable"),
    [
        ([], 2, index_terms(1, 1, 2), 3),
        (index_terms(3, 2), 3, index_terms(1, 1, 2, 2), 3),
        # Conflicts with index 1.
        (index_terms(1, 2), 1, index_terms(1, 2), 1),
        # Conflicts with index 2.
        (index_terms(2, 3, 3), 3, index_terms(1, 1, 3, 3), 2),
    ],
)
def test_append(ents: list[Entry], windex: int, wents: list[Entry], wunstable: int) -> None:
    storage = MemoryStorage()
    storage.append(index_terms(1, 1, 2))
    raft_log, _ = new_log(storage)
    assert raft_log.append(ents) == windex
    assert raft_log.entries(1, NO_LIMIT) == wents
    assert raft_log.unstable.offset == wunstable


def test_append_below_committed_panics() -> None:
    raft_log, log = new_log()
    raft_log.append(index_terms(1, 1, 2, 3))
    raft_log.commit_to(2)
    with pytest.raises(RaftPanic, match=r"^after\(1\) is out of range \[committed\(2\)\]$"):
        raft_log.append(index_terms(2, 4))
    assert log.lines[-1] == "FATAL after(1) is out of range [committed(2)]"


_LI, _LT, _COMMIT = 3, 3, 1

# (prev, committed, ents, wlasti, wappend, wcommit, wpanic)
_MAYBE_APPEND_CASES: list[tuple[EntryID, int, list[Entry], int, bool, int, bool]] = [
    # Not match: term is different.
    (EntryID(_LT - 1, _LI), _LI, index_terms(_LI + 1, 4), 0, False, _COMMIT, False),
    # Not match: index out of bound.
    (EntryID(_LT, _LI + 1), _LI, index_terms(_LI + 2, 4), 0, False, _COMMIT, False),
    # Match with the last existing entry.
    (EntryID(_LT, _LI), _LI, [], _LI, True, _LI, False),
    # Do not increase commit higher than lastnewi.
    (EntryID(_LT, _LI), _LI + 1, [], _LI, True, _LI, False),
    # Commit up to the commit in the message.
    (EntryID(_LT, _LI), _LI - 1, [], _LI, True, _LI - 1, False),
    # Commit does not decrease.
    (EntryID(_LT, _LI), 0, [], _LI, True, _COMMIT, False),
    (EntryID(), _LI, [], 0, True, _COMMIT, False),
    (EntryID(_LT, _LI), _LI, index_terms(_LI + 1, 4), _LI + 1, True, _LI, False),
    (EntryID(_LT, _LI), _LI + 1, index_terms(_LI + 1, 4), _LI + 1, True, _LI + 1, False),
    # Do not increase commit higher than lastnewi.
    (EntryID(_LT, _LI), _LI + 2, index_terms(_LI + 1, 4), _LI + 1, True, _LI + 1, False),
    (EntryID(_LT, _LI), _LI + 2, index_terms(_LI + 1, 4, 4), _LI + 2, True, _LI + 2, False),
    # Match with the entry in the middle.
    (EntryID(_LT - 1, _LI - 1), _LI, index_terms(_LI, 4), _LI, True, _LI, False),
    (EntryID(_LT - 2, _LI - 2), _LI, index_terms(_LI - 1, 4), _LI - 1, True, _LI - 1, False),
    # Conflict with an existing committed entry.
    (EntryID(_LT - 3, _LI - 3), _LI, index_terms(_LI - 2, 4), _LI - 2, True, _LI - 2, True),
    (EntryID(_LT - 2, _LI - 2), _LI, index_terms(_LI - 1, 4, 4), _LI, True, _LI, False),
]


@pytest.mark.parametrize(
    ("prev", "committed", "ents", "wlasti", "wappend", "wcommit", "wpanic"),
    _MAYBE_APPEND_CASES,
)
def test_log_maybe_append(
    prev: EntryID,
    committed: int,
    ents: list[Entry],
    wlasti: int,
    wappend: bool,
    wcommit: int,
    wpanic: bool,
) -> None:
    # A high enough leader term makes this a valid append message.
    app = LogSlice(term=100, prev=prev, entries=ents)
    app.valid()

    raft_log, log = new_log()
    raft_log.append(index_terms(1, 1, 2, 3))
    raft_log.committed = _COMMIT

    if wpanic:
        with pytest.raises(RaftPanic):
            raft_log.maybe_append(app, committed)
        assert log.lines[-1] == "FATAL entry 1 conflict with committed entry [committed(1)]"
        return
    glasti = raft_log.maybe_append(app, committed)
    if wappend:
        assert glasti == wlasti
    else:
        assert glasti is None
    assert raft_log.committed == wcommit
    if glasti is not None and ents:
        last = raft_log.last_index()
        assert raft_log.slice(last - len(ents) + 1, last + 1, NO_LIMIT) == ents


def test_compaction_side_effects() -> None:
    # 750 entries in stable storage and 250 in the unstable tail.
    last_index = 1000
    unstable_index = 750
    storage = MemoryStorage()
    storage.append(index_term_range(1, 1, unstable_index + 1))
    raft_log, _ = new_log(storage)
    raft_log.append(index_term_range(unstable_index + 1, unstable_index + 1, last_index + 1))

    assert raft_log.maybe_commit(raft_log.last_entry_id())
    raft_log.applied_to(raft_log.committed, 0)

    offset = 500
    storage.compact(offset)
    assert raft_log.last_index() == last_index

    for j in range(offset, raft_log.last_index() + 1):
        assert raft_log.term(j) == j
    for j in range(offset, raft_log.last_index() + 1):
        assert raft_log.match_term(EntryID(term=j, index=j))

    unstable_ents = raft_log.next_unstable_ents()
    assert len(unstable_ents) == 250
    assert unstable_ents[0].index == 751

    prev = raft_log.last_index()
    raft_log.append([Entry(index=raft_log.last_index() + 1, term=raft_log.last_index() + 1)])
    assert raft_log.last_index() == prev + 1

    ents = raft_log.entries(raft_log.last_index(), NO_LIMIT)
    assert len(ents) == 1


# --------------------------------------------------------------------------- applying


def _applying_log(max_size: int = NO_LIMIT) -> RaftLog:
    """Snapshot at 3 (term 1), entry 4 stable, 5..6 unstable, committed 5."""
    storage = MemoryStorage()
    storage.apply_snapshot(snap(3, 1))
    ents = index_terms(4, 1, 1, 1)
    storage.append(ents[:1])
    raft_log, _ = new_log(storage, max_size)
    raft_log.append(ents)
    raft_log.stable_to(EntryID(term=1, index=4))
    raft_log.maybe_commit(EntryID(term=1, index=5))
    return raft_log


# (applied, applying, allow_unstable, paused, snap, whas_next, wents)
_NEXT_COMMITTED_CASES: list[tuple[int, int, bool, bool, bool, bool, list[Entry]]] = [
    (3, 3, True, False, False, True, index_terms(4, 1, 1)),
    (3, 4, True, False, False, True, index_terms(5, 1)),
    (3, 5, True, False, False, False, []),
    (4, 4, True, False, False, True, index_terms(5, 1)),
    (4, 5, True, False, False, False, []),
    (5, 5, True, False, False, False, []),
    # Don't allow unstable entries.
    (3, 3, False, False, False, True, index_terms(4, 1)),
    (3, 4, False, False, False, False, []),
    (3, 5, False, False, False, False, []),
    (4, 4, False, False, False, False, []),
    (4, 5, False, False, False, False, []),
    (5, 5, False, False, False, False, []),
    # Paused.
    (3, 3, True, True, False, False, []),
    # With snapshot.
    (3, 3, True, False, True, False, []),
]


@pytest.mark.parametrize(
    ("applied", "applying", "allow_unstable", "paused", "with_snap", "whas_next", "wents"),
    _NEXT_COMMITTED_CASES,
)
def test_has_next_and_next_committed_ents(
    applied: int,
    applying: int,
    allow_unstable: bool,
    paused: bool,
    with_snap: bool,
    whas_next: bool,
    wents: list[Entry],
) -> None:
    raft_log = _applying_log()
    raft_log.applied_to(applied, 0)
    raft_log.accept_applying(applying, 0, allow_unstable)
    raft_log.applying_ents_paused = paused
    if with_snap:
        raft_log.restore(snap(4, 1))
    assert raft_log.has_next_committed_ents(allow_unstable) is whas_next
    assert raft_log.next_committed_ents(allow_unstable) == wents


_MAX = 100

# (index, allow_unstable, size, wpaused)
_ACCEPT_APPLYING_CASES = [
    (3, True, _MAX - 1, True),
    (3, True, _MAX, True),
    (3, True, _MAX + 1, True),
    (4, True, _MAX - 1, True),
    (4, True, _MAX, True),
    (4, True, _MAX + 1, True),
    (5, True, _MAX - 1, False),
    (5, True, _MAX, True),
    (5, True, _MAX + 1, True),
    # Don't allow unstable entries.
    (3, False, _MAX - 1, True),
    (3, False, _MAX, True),
    (3, False, _MAX + 1, True),
    (4, False, _MAX - 1, False),
    (4, False, _MAX, True),
    (4, False, _MAX + 1, True),
    (5, False, _MAX - 1, False),
    (5, False, _MAX, True),
    (5, False, _MAX + 1, True),
]


@pytest.mark.parametrize(("index", "allow_unstable", "size", "wpaused"), _ACCEPT_APPLYING_CASES)
def test_accept_applying(index: int, allow_unstable: bool, size: int, wpaused: bool) -> None:
    raft_log = _applying_log(_MAX)
    raft_log.applied_to(3, 0)
    raft_log.accept_applying(index, size, allow_unstable)
    assert raft_log.applying_ents_paused is wpaused


_OVERSHOOT = 5


@pytest.mark.parametrize(
    ("index", "size", "wapplying_size", "wpaused"),
    [
        # Apply some of the in-progress entries (applying = 5 below).
        (4, _OVERSHOOT - 1, _MAX + 1, True),
        (4, _OVERSHOOT, _MAX, True),
        (4, _OVERSHOOT + 1, _MAX - 1, False),
        # Apply all of the in-progress entries.
        (5, _OVERSHOOT - 1, _MAX + 1, True),
        (5, _OVERSHOOT, _MAX, True),
        (5, _OVERSHOOT + 1, _MAX - 1, False),
        # Apply all of the outstanding bytes.
        (4, _MAX + _OVERSHOOT, 0, False),
        # Apply more than the outstanding bytes: no underflow.
        (4, _MAX + _OVERSHOOT + 1, 0, False),
    ],
)
def test_applied_to(index: int, size: int, wapplying_size: int, wpaused: bool) -> None:
    raft_log = _applying_log(_MAX)
    raft_log.applied_to(3, 0)
    raft_log.accept_applying(5, _MAX + _OVERSHOOT, False)

    raft_log.applied_to(index, size)
    assert raft_log.applied == index
    assert raft_log.applying == 5
    assert raft_log.applying_ents_size == wapplying_size
    assert raft_log.applying_ents_paused is wpaused


def test_applying_range_panics() -> None:
    raft_log = _applying_log()
    with pytest.raises(
        RaftPanic, match=r"^applied\(6\) is out of range \[prevApplied\(3\), committed\(5\)\]$"
    ):
        raft_log.applied_to(6, 0)
    raft_log.applied_to(4, 0)
    with pytest.raises(
        RaftPanic, match=r"^applied\(3\) is out of range \[prevApplied\(4\), committed\(5\)\]$"
    ):
        raft_log.applied_to(3, 0)
    with pytest.raises(
        RaftPanic, match=r"^applying\(6\) is out of range \[prevApplying\(4\), committed\(5\)\]$"
    ):
        raft_log.accept_applying(6, 0, True)


def test_next_committed_ents_size_limit() -> None:
    """One entry per batch when the limit is tiny; pauses until applied."""
    storage = MemoryStorage()
    storage.append(index_terms(1, 1, 1, 1))
    raft_log, _ = new_log(storage, 1)
    raft_log.commit_to(3)
    got = raft_log.next_committed_ents(False)
    assert got == index_terms(1, 1)
    raft_log.accept_applying(1, ents_size(got), False)
    assert raft_log.applying_ents_paused
    assert raft_log.next_committed_ents(False) == []
    raft_log.applied_to(1, ents_size(got))
    assert not raft_log.applying_ents_paused
    assert raft_log.next_committed_ents(False) == index_terms(2, 1)


def test_next_committed_ents_zero_budget_panics() -> None:
    storage = MemoryStorage()
    storage.append(index_terms(1, 1, 1))
    raft_log, _ = new_log(storage, 10)
    raft_log.commit_to(2)
    raft_log.applying_ents_size = 10  # budget exhausted but (wrongly) not paused
    with pytest.raises(RaftPanic, match=r"^applying entry size \(10-10\)=0 not positive$"):
        raft_log.next_committed_ents(True)
    # Go's unsigned subtraction wraps; an over-used budget is then effectively unlimited.
    raft_log.applying_ents_size = 11
    assert raft_log.next_committed_ents(True) == index_terms(1, 1, 1)


# --------------------------------------------------------------------------- stable


@pytest.mark.parametrize(("unstable", "wents"), [(3, []), (1, index_terms(1, 1, 2))])
def test_next_unstable_ents(unstable: int, wents: list[Entry]) -> None:
    previous = index_terms(1, 1, 2)
    storage = MemoryStorage()
    storage.append(previous[: unstable - 1])
    raft_log, _ = new_log(storage)
    raft_log.append(previous[unstable - 1 :])

    assert raft_log.has_next_unstable_ents() is bool(wents)
    ents = raft_log.next_unstable_ents()
    if ents:
        raft_log.stable_to(pb_entry_id(ents[-1]))
    assert ents == wents
    assert raft_log.unstable.offset == previous[-1].index + 1
    assert not raft_log.has_next_unstable_ents()


def test_accept_unstable() -> None:
    raft_log, _ = new_log()
    raft_log.append(index_terms(1, 1, 1))
    assert raft_log.has_next_unstable_ents()
    raft_log.accept_unstable()
    assert not raft_log.has_next_unstable_ents()
    assert raft_log.has_next_or_in_progress_unstable_ents()
    assert raft_log.next_unstable_ents() == []
    raft_log.append(index_terms(3, 1))
    assert raft_log.next_unstable_ents() == index_terms(3, 1)


@pytest.mark.parametrize(
    ("commit", "wcommit", "wpanic"), [(3, 3, False), (1, 2, False), (4, 0, True)]
)
def test_commit_to(commit: int, wcommit: int, wpanic: bool) -> None:
    raft_log, _ = new_log()
    raft_log.append(index_terms(1, 1, 2, 3))
    raft_log.committed = 2
    if wpanic:
        with pytest.raises(
            RaftPanic,
            match=r"^tocommit\(4\) is out of range \[lastIndex\(3\)\]\. "
            r"Was the raft log corrupted, truncated, or lost\?$",
        ):
            raft_log.commit_to(commit)
        return
    raft_log.commit_to(commit)
    assert raft_log.committed == wcommit


@pytest.mark.parametrize(
    ("stablei", "stablet", "wunstable"),
    [
        (1, 1, 2),
        (2, 2, 3),
        (2, 1, 1),  # bad term
        (3, 1, 1),  # bad index
    ],
)
def test_stable_to(stablei: int, stablet: int, wunstable: int) -> None:
    raft_log, _ = new_log()
    raft_log.append(index_terms(1, 1, 2))
    raft_log.stable_to(EntryID(term=stablet, index=stablei))
    assert raft_log.unstable.offset == wunstable


_SI, _ST = 5, 2


@pytest.mark.parametrize(
    ("stablei", "stablet", "new_ents", "wunstable"),
    [
        (_SI + 1, _ST, [], _SI + 1),
        (_SI, _ST, [], _SI + 1),
        (_SI - 1, _ST, [], _SI + 1),
        (_SI + 1, _ST + 1, [], _SI + 1),
        (_SI, _ST + 1, [], _SI + 1),
        (_SI - 1, _ST + 1, [], _SI + 1),
        (_SI + 1, _ST, index_terms(_SI + 1, _ST), _SI + 2),
        (_SI, _ST, index_terms(_SI + 1, _ST), _SI + 1),
        (_SI - 1, _ST, index_terms(_SI + 1, _ST), _SI + 1),
        (_SI + 1, _ST + 1, index_terms(_SI + 1, _ST), _SI + 1),
        (_SI, _ST + 1, index_terms(_SI + 1, _ST), _SI + 1),
        (_SI - 1, _ST + 1, index_terms(_SI + 1, _ST), _SI + 1),
    ],
)
def test_stable_to_with_snap(
    stablei: int, stablet: int, new_ents: list[Entry], wunstable: int
) -> None:
    s = MemoryStorage()
    s.apply_snapshot(snap(_SI, _ST))
    raft_log, _ = new_log(s)
    raft_log.append(new_ents)
    raft_log.stable_to(EntryID(term=stablet, index=stablei))
    assert raft_log.unstable.offset == wunstable


def test_stable_snap_to() -> None:
    raft_log, _ = new_log()
    raft_log.restore(snap(5, 2))
    assert raft_log.has_next_unstable_snapshot()
    assert raft_log.has_next_or_in_progress_snapshot()
    assert raft_log.next_unstable_snapshot() == snap(5, 2)
    raft_log.accept_unstable()
    assert not raft_log.has_next_unstable_snapshot()
    assert raft_log.next_unstable_snapshot() is None
    assert raft_log.has_next_or_in_progress_snapshot()
    raft_log.stable_snap_to(4)
    assert raft_log.has_next_or_in_progress_snapshot()
    raft_log.stable_snap_to(5)
    assert not raft_log.has_next_or_in_progress_snapshot()


# --------------------------------------------------------------------------- compaction


@pytest.mark.parametrize(
    ("last_index", "compact", "wleft", "wallow"),
    [
        # Out of upper bound.
        (1000, [1001], [-1], False),
        (1000, [300, 500, 800, 900], [700, 500, 200, 100], True),
        # Out of lower bound.
        (1000, [300, 299], [700, -1], False),
    ],
)
def test_compaction(last_index: int, compact: list[int], wleft: list[int], wallow: bool) -> None:
    storage = MemoryStorage()
    storage.append(index_term_range(1, 1, last_index + 1))
    raft_log, _ = new_log(storage)
    raft_log.maybe_commit(EntryID(term=0, index=last_index))  # a no-op: term 0 never matches
    raft_log.applied_to(raft_log.committed, 0)
    for c, left in zip(compact, wleft, strict=True):
        try:
            storage.compact(c)
        except (CompactedError, RaftPanic):
            assert not wallow
            continue
        assert len(raft_log.all_entries()) == left


def test_log_restore() -> None:
    index = term = 1000
    storage = MemoryStorage()
    storage.apply_snapshot(snap(index, term))
    raft_log, _ = new_log(storage)

    assert len(raft_log.all_entries()) == 0
    assert raft_log.first_index() == index + 1
    assert raft_log.committed == index
    assert raft_log.unstable.offset == index + 1
    assert raft_log.term(index) == term


def test_log_restore_log_line_and_str() -> None:
    raft_log, log = new_log()
    raft_log.append(index_terms(1, 1, 1))
    raft_log.commit_to(1)
    assert str(raft_log) == (
        "committed=1, applied=0, applying=0, unstable.offset=1, "
        "unstable.offsetInProgress=1, len(unstable.Entries)=2"
    )
    raft_log.restore(snap(10, 3))
    assert log.lines == [
        "INFO log [committed=1, applied=0, applying=0, unstable.offset=1, "
        "unstable.offsetInProgress=1, len(unstable.Entries)=2] "
        "starts to restore snapshot [index: 10, term: 3]"
    ]
    assert raft_log.committed == 10
    assert raft_log.first_index() == 11
    assert raft_log.last_index() == 10
    assert raft_log.last_entry_id() == EntryID(term=3, index=10)
    assert raft_log.snapshot() == snap(10, 3)
    assert raft_log.snapshot() is not raft_log.unstable.snapshot


_OOB_OFFSET, _OOB_NUM = 100, 100
_OOB_FIRST = _OOB_OFFSET + 1


@pytest.mark.parametrize(
    ("lo", "hi", "wpanic", "w_err_compacted"),
    [
        (_OOB_FIRST - 2, _OOB_FIRST + 1, False, True),
        (_OOB_FIRST - 1, _OOB_FIRST + 1, False, True),
        (_OOB_FIRST, _OOB_FIRST, False, False),
        (_OOB_FIRST + _OOB_NUM // 2, _OOB_FIRST + _OOB_NUM // 2, False, False),
        (_OOB_FIRST + _OOB_NUM - 1, _OOB_FIRST + _OOB_NUM - 1, False, False),
        (_OOB_FIRST + _OOB_NUM, _OOB_FIRST + _OOB_NUM, False, False),
        (_OOB_FIRST + _OOB_NUM, _OOB_FIRST + _OOB_NUM + 1, True, False),
        (_OOB_FIRST + _OOB_NUM + 1, _OOB_FIRST + _OOB_NUM + 1, True, False),
    ],
)
def test_is_out_of_bounds(lo: int, hi: int, wpanic: bool, w_err_compacted: bool) -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(_OOB_OFFSET, 0))
    raft_log, _ = new_log(storage)
    raft_log.append(index_term_range(_OOB_OFFSET + 1, _OOB_OFFSET + 1, _OOB_OFFSET + _OOB_NUM + 1))
    if wpanic:
        with pytest.raises(RaftPanic, match=r"^slice\[\d+,\d+\) out of bound \[101,200\]$"):
            raft_log.must_check_out_of_bounds(lo, hi)
    elif w_err_compacted:
        with pytest.raises(CompactedError):
            raft_log.must_check_out_of_bounds(lo, hi)
    else:
        raft_log.must_check_out_of_bounds(lo, hi)


def test_is_out_of_bounds_inverted() -> None:
    raft_log, _ = new_log()
    raft_log.append(index_terms(1, 1, 1))
    with pytest.raises(RaftPanic, match=r"^invalid slice 2 > 1$"):
        raft_log.must_check_out_of_bounds(2, 1)


# --------------------------------------------------------------------------- terms

_T_OFFSET, _T_NUM = 100, 100


@pytest.mark.parametrize(
    ("idx", "term", "err"),
    [
        (_T_OFFSET - 1, 0, CompactedError),
        (_T_OFFSET, 1, None),
        (_T_OFFSET + _T_NUM // 2, _T_NUM // 2, None),
        (_T_OFFSET + _T_NUM - 1, _T_NUM - 1, None),
        (_T_OFFSET + _T_NUM, 0, UnavailableError),
    ],
)
def test_term(idx: int, term: int, err: type[RaftError] | None) -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(_T_OFFSET, 1))
    raft_log, _ = new_log(storage)
    raft_log.append(index_term_range(_T_OFFSET + 1, 1, _T_NUM))
    if err is not None:
        with pytest.raises(err):
            raft_log.term(idx)
        assert raft_log.zero_term_on_out_of_bounds(idx) == 0
    else:
        assert raft_log.term(idx) == term
        assert raft_log.zero_term_on_out_of_bounds(idx) == term


_STORAGE_SNAPI = 100
_UNSTABLE_SNAPI = _STORAGE_SNAPI + 5


@pytest.mark.parametrize(
    ("idx", "term", "err"),
    [
        # Cannot get the term from storage.
        (_STORAGE_SNAPI, 0, CompactedError),
        # Cannot get the term from the gap between storage and the unstable snapshot.
        (_STORAGE_SNAPI + 1, 0, CompactedError),
        (_UNSTABLE_SNAPI - 1, 0, CompactedError),
        # The term at the unstable snapshot index.
        (_UNSTABLE_SNAPI, 1, None),
        # The log beyond the unstable snapshot is empty.
        (_UNSTABLE_SNAPI + 1, 0, UnavailableError),
    ],
)
def test_term_with_unstable_snapshot(idx: int, term: int, err: type[RaftError] | None) -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(_STORAGE_SNAPI, 1))
    raft_log, _ = new_log(storage)
    raft_log.restore(snap(_UNSTABLE_SNAPI, 1))
    if err is not None:
        with pytest.raises(err):
            raft_log.term(idx)
    else:
        assert raft_log.term(idx) == term


# --------------------------------------------------------------------------- slicing

_SL_OFFSET, _SL_NUM = 100, 100
_SL_LAST = _SL_OFFSET + _SL_NUM
_SL_HALF = _SL_OFFSET + _SL_NUM // 2
_HALFE = entry_size(Entry(index=_SL_HALF, term=_SL_HALF, type=EntryType.EntryConfChangeV2))


def _sl(lo: int, hi: int) -> list[Entry]:
    return index_term_range(lo, lo, hi)


def _slice_log() -> RaftLog:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(_SL_OFFSET, 0))
    storage.append(_sl(_SL_OFFSET + 1, _SL_HALF))
    raft_log, _ = new_log(storage)
    raft_log.append(_sl(_SL_HALF, _SL_LAST))
    return raft_log


OFF, H, L = _SL_OFFSET, _SL_HALF, _SL_LAST

# (lo, hi, lim, w, wpanic)
_SLICE_CASES: list[tuple[int, int, int, list[Entry], bool]] = [
    # CompactedError.
    (OFF - 1, OFF + 1, NO_LIMIT, [], False),
    (OFF, OFF + 1, NO_LIMIT, [], False),
    # Panics.
    (H, H - 1, NO_LIMIT, [], True),  # lo and hi inverted
    (L, L + 1, NO_LIMIT, [], True),  # hi out of bounds
    # No limit.
    (OFF + 1, OFF + 1, NO_LIMIT, [], False),
    (OFF + 1, H - 1, NO_LIMIT, _sl(OFF + 1, H - 1), False),
    (OFF + 1, H, NO_LIMIT, _sl(OFF + 1, H), False),
    (OFF + 1, H + 1, NO_LIMIT, _sl(OFF + 1, H + 1), False),
    (OFF + 1, L, NO_LIMIT, _sl(OFF + 1, L), False),
    (H - 1, H, NO_LIMIT, _sl(H - 1, H), False),
    (H - 1, H + 1, NO_LIMIT, _sl(H - 1, H + 1), False),
    (H - 1, L, NO_LIMIT, _sl(H - 1, L), False),
    (H, H + 1, NO_LIMIT, _sl(H, H + 1), False),
    (H, L, NO_LIMIT, _sl(H, L), False),
    (L - 1, L, NO_LIMIT, _sl(L - 1, L), False),
    # At least one entry is always returned.
    (OFF + 1, L, 0, _sl(OFF + 1, OFF + 2), False),
    (H - 1, H + 1, 0, _sl(H - 1, H), False),
    (H, L, 0, _sl(H, H + 1), False),
    (H + 1, L, 0, _sl(H + 1, H + 2), False),
    # Low limit.
    (OFF + 1, L, _HALFE - 1, _sl(OFF + 1, OFF + 2), False),
    (H - 1, H + 1, _HALFE - 1, _sl(H - 1, H), False),
    (H, L, _HALFE - 1, _sl(H, H + 1), False),
    # Just enough for one.
    (OFF + 1, L, _HALFE, _sl(OFF + 1, OFF + 2), False),
    (H - 1, H + 1, _HALFE, _sl(H - 1, H), False),
    (H, L, _HALFE, _sl(H, H + 1), False),
    # Not enough for two.
    (OFF + 1, L, _HALFE + 1, _sl(OFF + 1, OFF + 2), False),
    (H - 1, H + 1, _HALFE + 1, _sl(H - 1, H), False),
    (H, L, _HALFE + 1, _sl(H, H + 1), False),
    # Enough for two.
    (OFF + 1, L, _HALFE * 2, _sl(OFF + 1, OFF + 3), False),
    (H - 2, H + 1, _HALFE * 2, _sl(H - 2, H), False),
    (H - 1, H + 1, _HALFE * 2, _sl(H - 1, H + 1), False),
    (H, L, _HALFE * 2, _sl(H, H + 2), False),
    # Not enough for three.
    (H - 2, H + 1, _HALFE * 3 - 1, _sl(H - 2, H), False),
    # Enough for three.
    (H - 1, H + 2, _HALFE * 3, _sl(H - 1, H + 2), False),
]


@pytest.mark.parametrize(("lo", "hi", "lim", "w", "wpanic"), _SLICE_CASES)
def test_slice(lo: int, hi: int, lim: int, w: list[Entry], wpanic: bool) -> None:
    raft_log = _slice_log()
    if wpanic:
        with pytest.raises(RaftPanic):
            raft_log.slice(lo, hi, lim)
        return
    if lo <= _SL_OFFSET:
        with pytest.raises(CompactedError):
            raft_log.slice(lo, hi, lim)
        return
    got = raft_log.slice(lo, hi, lim)
    assert got == w
    # The result is a fresh list: changing it leaves the log alone.
    got.append(Entry(term=1000, index=1000))
    assert raft_log.slice(lo, hi, lim) == w


@settings(max_examples=200, deadline=None)
@given(
    lo=st.integers(_SL_OFFSET + 1, _SL_LAST),
    span=st.integers(0, 30),
    lim=st.one_of(st.just(NO_LIMIT), st.integers(0, 200), st.integers(200, 2000)),
)
def test_slice_matches_reference(lo: int, span: int, lim: int) -> None:
    """slice() equals the longest fitting prefix of the whole range (first entry always).

    Except at the stable/unstable seam, where Go drops a single unstable entry that
    would overflow, which is exactly what the longest-prefix rule does too.
    """
    raft_log = _slice_log()
    hi = min(lo + span, _SL_LAST)
    got = raft_log.slice(lo, hi, lim)
    full = _sl(lo, hi)
    assert got == full[: len(got)]
    if full:
        assert len(got) >= 1
        assert len(got) == 1 or ents_size(got) <= lim
        if len(got) < len(full):
            assert ents_size(full[: len(got) + 1]) > lim


def test_entries_and_all_entries() -> None:
    raft_log = _slice_log()
    assert raft_log.entries(_SL_LAST, NO_LIMIT) == []
    assert raft_log.entries(_SL_LAST - 1, NO_LIMIT) == _sl(_SL_LAST - 1, _SL_LAST)
    assert raft_log.all_entries() == _sl(_SL_OFFSET + 1, _SL_LAST)


class _Break(Exception):
    pass


def test_scan() -> None:
    offset, num = 47, 20
    last = offset + num
    half = offset + num // 2

    def entries(lo: int, hi: int) -> list[Entry]:
        return index_term_range(lo, lo, hi)

    entry_sz = ents_size(entries(half, half + 1))

    storage = MemoryStorage()
    storage.apply_snapshot(snap(offset, 0))
    storage.append(entries(offset + 1, half))
    raft_log, _ = new_log(storage)
    raft_log.append(entries(half, last))

    # scan() returns the same entries as slice() on all inputs.
    for page_size in (0, 1, 10, 100, entry_sz, entry_sz + 1):
        for lo in range(offset + 1, last):
            for hi in range(lo, last + 1):
                got: list[Entry] = []

                def visit(e: list[Entry], got: list[Entry] = got, ps: int = page_size) -> None:
                    got.extend(e)
                    assert len(e) == 1 or ents_size(e) <= ps

                raft_log.scan(lo, hi, page_size, visit)
                assert got == raft_log.slice(lo, hi, NO_LIMIT), (lo, hi, page_size)

    # A true return value stops the scan (Go's errBreak).
    iters = 0

    def stop_second(_: list[Entry]) -> bool:
        nonlocal iters
        iters += 1
        return iters == 2

    raft_log.scan(offset + 1, half, 0, stop_second)
    assert iters == 2

    # Exceptions from the callback propagate.
    iters = 0

    def raise_second(_: list[Entry]) -> None:
        nonlocal iters
        iters += 1
        if iters == 2:
            raise _Break

    with pytest.raises(_Break):
        raft_log.scan(offset + 1, half, 0, raise_second)
    assert iters == 2

    # The limit is maxed out, not one entry per page (the range length is even).
    def two_per_page(ents: list[Entry]) -> None:
        assert len(ents) == 2
        assert ents_size(ents) == entry_sz * 2

    raft_log.scan(offset + 1, offset + 11, entry_sz * 2, two_per_page)

    # A compacted range is an error.
    with pytest.raises(CompactedError):
        raft_log.scan(offset, half, NO_LIMIT, lambda _: None)


def test_zero_term_on_out_of_bounds_and_match_term() -> None:
    raft_log, _ = new_log()
    raft_log.append(index_terms(1, 1, 2))
    assert raft_log.zero_term_on_out_of_bounds(0) == 0  # the dummy entry's term
    assert raft_log.zero_term_on_out_of_bounds(2) == 2
    assert raft_log.zero_term_on_out_of_bounds(3) == 0
    assert raft_log.match_term(EntryID(term=2, index=2))
    assert not raft_log.match_term(EntryID(term=1, index=2))
    assert not raft_log.match_term(EntryID(term=2, index=3))
    assert not raft_log.maybe_commit(EntryID(term=1, index=2))  # term mismatch
    assert raft_log.maybe_commit(EntryID(term=2, index=2))
    assert not raft_log.maybe_commit(EntryID(term=2, index=2))  # not an advance
    assert raft_log.committed == 2


def test_new_log_from_storage() -> None:
    storage = MemoryStorage()
    storage.apply_snapshot(snap(10, 2))
    storage.append(index_terms(11, 2, 3))
    raft_log, _ = new_log(storage)
    assert (raft_log.committed, raft_log.applying, raft_log.applied) == (10, 10, 10)
    assert raft_log.unstable.offset == 13
    assert raft_log.unstable.offset_in_progress == 13
    assert raft_log.last_entry_id() == EntryID(term=3, index=12)
    assert raft_log.first_index() == 11
    assert raft_log.snapshot() == snap(10, 2)
    # The constructor's defaults.
    plain = RaftLog(MemoryStorage())
    assert plain.max_applying_ents_size == NO_LIMIT
    assert plain.applying_ents_size == 0
    assert not plain.applying_ents_paused
