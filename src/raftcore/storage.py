"""Stable storage as raft sees it: the :class:`Storage` protocol and :class:`MemoryStorage`.

The application owns durable state; raft only reads it through :class:`Storage` (writes
happen in the application's Ready handling). Failures are reported by raising the
:mod:`raftcore.errors` storage exceptions; any other exception leaves the raft node
unusable, as in etcd.

:class:`MemoryStorage` keeps everything in memory. Its entry list starts with a dummy
entry carrying the (index, term) of the last compacted entry (or of the snapshot), so
``ents[i]`` sits at log index ``ents[0].index + i``. Entries are shared, never copied
and never mutated; lists handed out are always fresh lists.

Optional fast path: a storage may also offer ``maybe_term(i) -> int | None``, answering
like ``term(i)`` but with ``None`` wherever ``term`` would raise ``CompactedError`` or
``UnavailableError``. :class:`~raftcore.log.RaftLog` then asks it alone instead of
``first_index``, ``last_index`` and ``term``, and relies on ``maybe_term(last_index())``
being a term (``first_index() - 1 <= last_index()`` always, as the Storage contract
implies). :class:`MemoryStorage` offers it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from raftcore.errors import CompactedError, SnapOutOfDateError, UnavailableError
from raftcore.logger import Logger, default_logger
from raftcore.raftpb.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftcore.util import clone_conf_state, clone_snapshot, limit_size

__all__ = ["InMemStorageCallStats", "MemoryStorage", "Storage"]


@runtime_checkable
class Storage(Protocol):
    """Read access to the application's stable log and state.

    Errors are raised: :class:`~raftcore.errors.CompactedError`,
    :class:`~raftcore.errors.UnavailableError` and, from :meth:`snapshot`,
    :class:`~raftcore.errors.SnapshotTemporarilyUnavailableError`.
    """

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state (empty if none yet) and configuration."""
        ...

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """Entries in ``[lo, hi)``, size-limited to ``max_size`` but never empty.

        The caller owns the returned list and may modify it; the entries themselves
        must not be modified by anyone. Raises ``CompactedError`` if ``lo`` is
        compacted, ``UnavailableError`` if some entry in the range is missing.
        """
        ...

    def term(self, i: int) -> int:
        """Term of entry ``i``, for ``first_index() - 1 <= i <= last_index()``."""
        ...

    def last_index(self) -> int:
        """Index of the last entry in the log."""
        ...

    def first_index(self) -> int:
        """Index of the first entry possibly available through :meth:`entries`."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (raises ``SnapshotTemporarilyUnavailableError``
        if it is being prepared)."""
        ...


@dataclass(slots=True)
class InMemStorageCallStats:
    """How often each read method of a :class:`MemoryStorage` was called (benchmarks)."""

    initial_state: int = 0
    first_index: int = 0
    last_index: int = 0
    entries: int = 0
    term: int = 0
    snapshot: int = 0


def term_in(ents: list[Entry], i: int) -> int | None:
    """The term of index ``i`` in a dummy-first entry list, ``None`` if outside it.

    Safe without a lock when writers change ``ents`` only in ways a reader sees as
    before or after (see :class:`MemoryStorage`): the one race left, a truncation
    between the bounds check and the read, answers ``None`` like a read just after.
    """
    pos = i - ents[0].index
    if pos < 0 or pos >= len(ents):
        return None
    try:
        return ents[pos].term
    except IndexError:
        return None


class MemoryStorage:
    """A thread-safe, in-memory :class:`Storage`, also writable by the application.

    ``ents`` seeds the entry list, first element being the dummy entry (Go's
    ``&MemoryStorage{ents: ...}`` in tests); the storage takes ownership of the list.
    By default the log is empty: a single dummy at index 0, term 0.

    Locking: every write, and every read that looks at more than one entry, holds the
    lock. The one-value reads raft makes all the time (``first_index``,
    ``last_index``, ``term``, ``maybe_term``) do not: taking the lock would cost more
    than the read itself, and under the GIL they are atomic anyway, because writers
    never expose an intermediate state: ``ents[0]`` of a list never changes (compaction
    and snapshots install a new list, with one assignment), and ``append`` changes the
    list in one slice assignment. A read racing with a write answers either as
    before or as after it. (Their ``call_stats`` counts may then miss an increment.)
    """

    __slots__ = ("_lock", "call_stats", "ents", "hard_state", "logger", "snap")

    def __init__(self, *, ents: list[Entry] | None = None, logger: Logger | None = None) -> None:
        self._lock = threading.Lock()
        self.hard_state = HardState()
        self.snap = Snapshot()
        self.ents: list[Entry] = ents if ents is not None else [Entry()]
        self.call_stats = InMemStorageCallStats()
        # etcd panics through its package-global logger here.
        self.logger: Logger = logger if logger is not None else default_logger()

    # Storage protocol -----------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        with self._lock:
            self.call_stats.initial_state += 1
            hs = self.hard_state
            return (
                HardState(hs.term, hs.vote, hs.commit),
                clone_conf_state(self.snap.metadata.conf_state),
            )

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        with self._lock:
            self.call_stats.entries += 1
            ents = self.ents
            offset = ents[0].index
            if lo <= offset:
                raise CompactedError()
            last = offset + len(ents) - 1
            if hi > last + 1:
                self.logger.panic("entries' hi(%d) is out of bound lastindex(%d)", hi, last)
            if len(ents) == 1:
                # Only the dummy entry is left.
                raise UnavailableError()
            # The slice is a new list; the caller can do with it what it likes.
            return limit_size(ents[lo - offset : hi - offset], max_size)

    def term(self, i: int) -> int:
        # Lock-free (see the class doc).
        self.call_stats.term += 1
        ents = self.ents
        offset = ents[0].index
        if i < offset:
            raise CompactedError()
        try:
            if i - offset >= len(ents):
                raise UnavailableError()
            return ents[i - offset].term
        except IndexError:
            # Truncated by an append between the check and the read.
            raise UnavailableError() from None

    def maybe_term(self, i: int) -> int | None:
        """:meth:`term`, but ``None`` where it would raise (compacted or unavailable).

        An optional extension of the :class:`Storage` protocol. :class:`RaftLog`
        uses it when the storage has it, in place of ``first_index``, ``last_index``
        and ``term`` (three lock round trips, and an exception for the frequent probe
        past the end). A storage providing it must answer exactly as :meth:`term`
        does: a term for ``first_index() - 1 <= i <= last_index()``, else ``None``.
        Counted as a ``term`` call.
        """
        # Lock-free (see the class doc).
        self.call_stats.term += 1
        return term_in(self.ents, i)

    def last_index(self) -> int:
        # Lock-free (see the class doc): one list, read once.
        self.call_stats.last_index += 1
        ents = self.ents
        return ents[0].index + len(ents) - 1

    def first_index(self) -> int:
        # Lock-free (see the class doc).
        self.call_stats.first_index += 1
        return self.ents[0].index + 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            self.call_stats.snapshot += 1
            return clone_snapshot(self.snap)

    # Application-side writes ----------------------------------------------------

    def _last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1

    def set_hard_state(self, st: HardState) -> None:
        """Persist ``st`` (a copy is kept)."""
        with self._lock:
            self.hard_state = HardState(st.term, st.vote, st.commit)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole contents with ``snap``.

        Raises :class:`SnapOutOfDateError` if ``snap`` is not newer than the current
        snapshot. A current snapshot at index 0 (only a ConfState set, as bootstrapping
        applications do) never blocks.
        """
        with self._lock:
            ms_index = self.snap.metadata.index
            snap_index = snap.metadata.index
            if ms_index != 0 and ms_index >= snap_index:
                raise SnapOutOfDateError()
            self.snap = clone_snapshot(snap)
            self.ents = [Entry(term=snap.metadata.term, index=snap_index)]

    def create_snapshot(self, i: int, cs: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the state at index ``i`` and return it.

        ``cs`` is the configuration at ``i`` if it changed since the last snapshot
        (``None`` keeps the previous one). Raises :class:`SnapOutOfDateError` if ``i``
        is not past the current snapshot.
        """
        with self._lock:
            if i <= self.snap.metadata.index:
                raise SnapOutOfDateError()
            offset = self.ents[0].index
            if i > self._last_index():
                self.logger.panic(
                    "snapshot %d is out of bound lastindex(%d)", i, self._last_index()
                )
            if i < offset:
                # Go indexes its slice out of range here and panics; a negative Python
                # index would silently read the wrong entry instead.
                self.logger.panic("snapshot %d is behind the compacted index %d", i, offset)
            conf_state = clone_conf_state(cs) if cs is not None else self.snap.metadata.conf_state
            self.snap = Snapshot(
                data=data,
                metadata=SnapshotMetadata(
                    conf_state=conf_state, index=i, term=self.ents[i - offset].term
                ),
            )
            return clone_snapshot(self.snap)

    def compact(self, compact_index: int) -> None:
        """Drop the entries before ``compact_index``; it becomes the new dummy entry.

        Raises :class:`CompactedError` if that index is already compacted. The caller
        must not compact past what the application has applied.
        """
        with self._lock:
            ents = self.ents
            offset = ents[0].index
            if compact_index <= offset:
                raise CompactedError()
            if compact_index > self._last_index():
                self.logger.panic(
                    "compact %d is out of bound lastindex(%d)", compact_index, self._last_index()
                )
            i = compact_index - offset
            # A fresh list: lists handed out earlier are copies anyway, and the old
            # entries stay valid for whoever still holds them.
            new_ents = [Entry(term=ents[i].term, index=ents[i].index)]
            new_ents.extend(ents[i + 1 :])
            self.ents = new_ents

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries``, replacing any stored suffix they overlap.

        Entries at or before the compaction point are skipped; a gap after the last
        stored entry is fatal.
        """
        if not entries:
            return
        with self._lock:
            ents = self.ents
            first = ents[0].index + 1
            start = entries[0].index
            last = start + len(entries) - 1
            if last < first:
                # Everything is already compacted.
                return
            if first > start:
                entries = entries[first - start :]
                start = first
            offset = start - ents[0].index
            n = len(ents)
            if n >= offset:
                # In place, truncating what the new entries replace, in one slice
                # assignment so that lock-free readers never see the list in between
                # (nobody outside holds this list).
                ents[offset:] = entries
            else:
                self.logger.panic(
                    "missing log entry [last: %d, append at: %d]", self._last_index(), start
                )
