"""A durable :class:`raftcore.storage.Storage`: MemoryStorage's semantics over a WAL.

:class:`DiskStorage` answers raft's reads from an in-memory copy of the log, exactly as
:class:`raftcore.storage.MemoryStorage` does (same results, same exceptions, same
panics), and writes every change through to a :class:`raftcore.wal.WAL` and snapshot
files in one directory before applying it in memory.

Durability contract
    * :meth:`DiskStorage.save` (the Ready path) writes the Ready's entries and hard
      state as one group commit and fsyncs iff ``must_sync``; when it returns with
      ``must_sync`` true, both survive any crash. Without it they survive a process
      crash but maybe not a power loss; a later sync covers them.
    * :meth:`append` and :meth:`set_hard_state` are the same with ``sync=True`` by
      default.
    * :meth:`apply_snapshot` and :meth:`create_snapshot` write the snapshot file
      (atomically) and then a snapshot marker into the WAL, synced; the marker is the
      commit point. :meth:`compact` writes a synced compaction marker and then deletes
      WAL segments that only held compacted entries.
    * A conflicting append (one that starts inside the log) is durable like any
      append; recovery replays the truncation because the batch carries its indices.

Recovery (:meth:`DiskStorage.open`) rebuilds exactly the last durable state: the hard
state, the entries after the compaction point (the snapshot's index after
``apply_snapshot``) and the snapshot, with its ConfState, that the WAL's last marker
names. Torn tails are cut; real damage raises
:class:`~raftcore.wal.errors.WALCorruptionError` or
:class:`~raftcore.wal.errors.SnapshotError`.

Threading: readers (raft) and one writer at a time (the application) may run
concurrently. Writers are serialized by their own lock and do their I/O without
holding the lock readers take, so a slow fsync never blocks raft's reads; the in-memory
state changes only after the write is done (and synced, when asked).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from types import TracebackType

from raftcore.errors import CompactedError, SnapOutOfDateError, UnavailableError
from raftcore.logger import Logger, default_logger
from raftcore.raftpb.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftcore.storage import term_in
from raftcore.util import clone_conf_state, clone_snapshot, limit_size
from raftcore.wal.errors import SnapshotError, WALDirectoryError
from raftcore.wal.log import DEFAULT_SEGMENT_SIZE, WAL, check_directory
from raftcore.wal.segment import parse_segment_name
from raftcore.wal.snapshot import SnapshotStore

__all__ = ["DiskStorage"]


class DiskStorage:
    """A crash-safe, thread-safe :class:`~raftcore.storage.Storage` kept in a directory.

    Create it with :meth:`open`. The directory must exist; an empty one becomes a new,
    empty store. Only one :class:`DiskStorage` may have a directory open at a time
    (enforced with a lock file).

    Reads of one value (``first_index``, ``last_index``, ``term`` and the
    :meth:`maybe_term` fast path raft prefers) take no lock, as in
    :class:`~raftcore.MemoryStorage`: writers never expose an intermediate state
    (``ents[0]`` of a list never changes, compaction and snapshots install a new list
    with one assignment, a save changes the tail with one slice assignment), so under
    the GIL such a read answers either as before or as after a concurrent write. This
    matters when the application saves in a worker thread while raft reads on its own.
    """

    __slots__ = (
        "_closed",
        "_lock",
        "_snaps",
        "_wal",
        "_wlock",
        "ents",
        "hard_state",
        "logger",
        "snap",
    )

    def __init__(
        self,
        wal: WAL,
        snaps: SnapshotStore,
        hard_state: HardState,
        snap: Snapshot,
        ents: list[Entry],
        logger: Logger,
    ) -> None:
        self._lock = threading.Lock()  # guards the in-memory state for readers
        self._wlock = threading.Lock()  # serializes writers (and their WAL I/O)
        self._wal = wal
        self._snaps = snaps
        self._closed = False
        self.hard_state = hard_state
        self.snap = snap
        # ents[0] is a dummy carrying the (index, term) of the compaction point, as in
        # MemoryStorage; ents[i] is the entry at index ents[0].index + i.
        self.ents = ents
        self.logger = logger

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        preallocate: bool = True,
        logger: Logger | None = None,
    ) -> DiskStorage:
        """Open the store in directory ``path`` (which must exist), recovering its state.

        ``segment_size`` is the size at which WAL segments rotate (and to which they
        are preallocated unless ``preallocate`` is false). Raises
        :class:`~raftcore.wal.errors.WALDirectoryError` for a missing or inaccessible
        directory, :class:`~raftcore.wal.errors.WALLockedError` if it is open
        elsewhere, :class:`~raftcore.wal.errors.WALCorruptionError` or
        :class:`~raftcore.wal.errors.SnapshotError` for damage recovery must not hide.
        """
        log = logger if logger is not None else default_logger()
        dir_path = os.fspath(path)
        check_directory(dir_path)
        snaps = SnapshotStore(dir_path, log)
        had_wal = _has_wal(dir_path)
        if not had_wal and snaps.list():
            raise WALDirectoryError(
                f"wal: {dir_path} holds snapshot files but no write-ahead log; refusing to "
                "start empty next to them"
            )
        wal, rec = WAL.open(
            dir_path, segment_size=segment_size, preallocate=preallocate, logger=log
        )
        try:
            snap = cls._recover_snapshot(snaps, rec.snapshot, log)
        except BaseException:
            wal.close()
            raise
        ents = [Entry(term=rec.base_term, index=rec.base_index)]
        ents.extend(rec.entries)
        return cls(wal, snaps, rec.hard_state, snap, ents, log)

    @staticmethod
    def _recover_snapshot(
        snaps: SnapshotStore, marker: tuple[int, int] | None, log: Logger
    ) -> Snapshot:
        # Files other than the one the WAL's last marker names are either newer (the
        # crash came between writing the file and committing its marker) or
        # superseded; both go, but only once the committed one has loaded.
        if marker is None:
            for term, index in snaps.list():
                log.info("wal: removing uncommitted snapshot term %d index %d", term, index)
                snaps.remove(term, index)
            return Snapshot()
        m_index, m_term = marker
        snap = snaps.load_newest(lambda t, i: (i, t) <= (m_index, m_term))
        if snap is None or (snap.metadata.index, snap.metadata.term) != marker:
            raise SnapshotError(
                f"wal: the snapshot at term {m_term} index {m_index} that the log refers to "
                f"is missing or damaged ({snaps.path(m_term, m_index)})"
            )
        for term, index in snaps.list():
            if (index, term) != marker:
                newer = (index, term) > marker
                log.info(
                    "wal: removing %s snapshot term %d index %d",
                    "uncommitted" if newer else "superseded",
                    term,
                    index,
                )
                snaps.remove(term, index)
        return snap

    def close(self) -> None:
        """Sync anything unsynced and release the directory. Reads keep working."""
        with self._wlock:
            if not self._closed:
                self._closed = True
                self._wal.close()

    def __enter__(self) -> DiskStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def wal(self) -> WAL:
        """The underlying log (for inspection and tests)."""
        return self._wal

    # -------------------------------------------------------- Storage protocol

    def initial_state(self) -> tuple[HardState, ConfState]:
        with self._lock:
            hs = self.hard_state
            return (
                HardState(hs.term, hs.vote, hs.commit),
                clone_conf_state(self.snap.metadata.conf_state),
            )

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        with self._lock:
            ents = self.ents
            offset = ents[0].index
            if lo <= offset:
                raise CompactedError()
            last = offset + len(ents) - 1
            if hi > last + 1:
                self.logger.panic("entries' hi(%d) is out of bound lastindex(%d)", hi, last)
            if len(ents) == 1:
                raise UnavailableError()
            return limit_size(ents[lo - offset : hi - offset], max_size)

    def term(self, i: int) -> int:
        # Lock-free (see the class doc): one list, read once.
        ents = self.ents
        offset = ents[0].index
        if i < offset:
            raise CompactedError()
        pos = i - offset
        if pos >= len(ents):
            raise UnavailableError()
        try:
            return ents[pos].term
        except IndexError:
            raise UnavailableError() from None  # truncated by a save meanwhile

    def maybe_term(self, i: int) -> int | None:
        """:meth:`term`, but ``None`` where it would raise (compacted or unavailable):
        the optional fast path of the Storage protocol (see :mod:`raftcore.storage`)."""
        return term_in(self.ents, i)

    def last_index(self) -> int:
        ents = self.ents
        return ents[0].index + len(ents) - 1

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            return clone_snapshot(self.snap)

    # ------------------------------------------------------------------ writes

    def _cut(self, entries: Sequence[Entry]) -> Sequence[Entry]:
        """MemoryStorage's append rules: what of ``entries`` the log takes (may be empty).

        Panics, before anything is written, on a gap after the last index.
        """
        if not entries:
            return entries
        ents = self.ents
        first = ents[0].index + 1
        start = entries[0].index
        if start + len(entries) - 1 < first:
            return ()
        if first > start:
            entries = entries[first - start :]
            start = first
        last = ents[0].index + len(ents) - 1
        if start > last + 1:
            self.logger.panic("missing log entry [last: %d, append at: %d]", last, start)
        return entries

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], must_sync: bool) -> None:
        """Persist one Ready: its entries and hard state, in one write and one fsync.

        ``hard_state`` may be ``None`` or empty (no change); ``entries`` follow
        :meth:`append`'s rules. The fsync happens iff ``must_sync`` (Ready.must_sync).
        """
        with self._wlock:
            batch = self._cut(entries)
            hs = hard_state
            if hs is not None and (hs.is_empty() or hs == self.hard_state):
                hs = None
            self._wal.save(hs, batch, must_sync)
            if not batch and hs is None:
                return
            with self._lock:
                if batch:
                    # In place is safe: readers only ever get copies (slices).
                    # One slice assignment: lock-free readers see before or after.
                    ents = self.ents
                    ents[batch[0].index - ents[0].index :] = batch
                if hs is not None:
                    self.hard_state = HardState(hs.term, hs.vote, hs.commit)

    def append(self, entries: Sequence[Entry], *, sync: bool = True) -> None:
        """Append ``entries`` like :meth:`MemoryStorage.append`, durably (if ``sync``)."""
        self.save(None, entries, sync)

    def set_hard_state(self, st: HardState, *, sync: bool = True) -> None:
        """Persist ``st`` (a copy is kept), durably if ``sync``."""
        with self._wlock:
            if st == self.hard_state:
                if sync:
                    self._wal.save(None, (), True)
                return
            self._wal.save(st, (), sync)
            with self._lock:
                self.hard_state = HardState(st.term, st.vote, st.commit)

    def sync(self) -> None:
        """Make every earlier write durable."""
        with self._wlock:
            self._wal.sync()

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the contents with ``snap``, as :meth:`MemoryStorage.apply_snapshot`.

        The snapshot file is written first, then the WAL marker that commits it.
        """
        with self._wlock:
            ms_index = self.snap.metadata.index
            md = snap.metadata
            if ms_index != 0 and ms_index >= md.index:
                raise SnapOutOfDateError()
            new = clone_snapshot(snap)
            old = self.snap.metadata
            self._snaps.save(new)
            self._wal.save_snapshot(md.index, md.term, reset=True)
            with self._lock:
                self.snap = new
                self.ents = [Entry(term=md.term, index=md.index)]
            if (old.index, old.term) != (md.index, md.term):
                self._snaps.remove(old.term, old.index)

    def create_snapshot(self, i: int, cs: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the state at ``i``, as :meth:`MemoryStorage.create_snapshot`."""
        with self._wlock:
            old = self.snap.metadata
            if i <= old.index:
                raise SnapOutOfDateError()
            ents = self.ents
            offset = ents[0].index
            last = offset + len(ents) - 1
            if i > last:
                self.logger.panic("snapshot %d is out of bound lastindex(%d)", i, last)
            if i < offset:
                # Go indexes below the slice and panics; say why instead.
                self.logger.panic("snapshot %d is out of bound compacted index(%d)", i, offset)
            conf_state = (
                clone_conf_state(cs) if cs is not None else clone_conf_state(old.conf_state)
            )
            term = ents[i - offset].term
            new = Snapshot(data=data, metadata=SnapshotMetadata(conf_state, i, term))
            self._snaps.save(new)
            self._wal.save_snapshot(i, term, reset=False)
            with self._lock:
                self.snap = new
            if (old.index, old.term) != (i, term):
                self._snaps.remove(old.term, old.index)
            return clone_snapshot(new)

    def compact(self, compact_index: int) -> None:
        """Drop the entries before ``compact_index``, as :meth:`MemoryStorage.compact`.

        The compaction is synced to the WAL, then WAL segments holding only compacted
        entries are deleted.
        """
        with self._wlock:
            ents = self.ents
            offset = ents[0].index
            if compact_index <= offset:
                raise CompactedError()
            last = offset + len(ents) - 1
            if compact_index > last:
                self.logger.panic("compact %d is out of bound lastindex(%d)", compact_index, last)
            k = compact_index - offset
            term = ents[k].term
            self._wal.save_compact(compact_index, term)
            new_ents = [Entry(term=term, index=compact_index)]
            new_ents.extend(ents[k + 1 :])
            with self._lock:
                self.ents = new_ents


def _has_wal(dir_path: str) -> bool:
    try:
        return any(parse_segment_name(n) is not None for n in os.listdir(dir_path))
    except OSError:
        return False
