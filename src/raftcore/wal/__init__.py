"""raftcore's durable, crash-safe log store.

:class:`DiskStorage` is a :class:`raftcore.storage.Storage` with
:class:`~raftcore.storage.MemoryStorage`'s semantics whose every write goes first to
a write-ahead log (:class:`WAL`) of CRC-32C-framed records in segment files, with
snapshots in their own atomically written files (:class:`SnapshotStore`). The Ready
loop persists through :meth:`DiskStorage.save`: one write and, iff the Ready says it
must, one fsync.

The durability contract in short: what a synced call wrote survives any crash; a
group commit is all or nothing; recovery cuts a torn tail but never skips damage in
the middle (it raises :class:`WALCorruptionError` naming file and offset). Details in
:mod:`raftcore.wal.log` and :mod:`raftcore.wal.disk_storage`.

A Ready handler persists in this order (the snapshot first: it resets the log the
entries then extend)::

    storage = DiskStorage.open("/var/lib/node1")       # recovers; directory must exist
    ...
    if not rd.snapshot.is_empty():
        storage.apply_snapshot(rd.snapshot)
    storage.save(rd.hard_state, rd.entries, rd.must_sync)

Modules: :mod:`~raftcore.wal.record` (framing), :mod:`~raftcore.wal.segment` (segment
files), :mod:`~raftcore.wal.log` (the WAL and its recovery),
:mod:`~raftcore.wal.snapshot` (snapshot files), :mod:`~raftcore.wal.disk_storage`.
"""

from raftcore.wal.disk_storage import DiskStorage
from raftcore.wal.errors import (
    SnapshotError,
    WALCorruptionError,
    WALDirectoryError,
    WALError,
    WALLockedError,
)
from raftcore.wal.log import DEFAULT_SEGMENT_SIZE, WAL, Recovered
from raftcore.wal.snapshot import SnapshotStore

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "WAL",
    "DiskStorage",
    "Recovered",
    "SnapshotError",
    "SnapshotStore",
    "WALCorruptionError",
    "WALDirectoryError",
    "WALError",
    "WALLockedError",
]
