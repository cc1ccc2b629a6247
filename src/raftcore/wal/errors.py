"""The exceptions of the durable log store.

All of them derive from :class:`raftcore.errors.StorageError`, so an application that
already handles storage failures from raft's point of view handles these too. None of
them is ever raised for a condition recovery can repair on its own (a torn tail is
repaired silently, apart from a log line); they all mean "a human has to look".
"""

from __future__ import annotations

from raftcore.errors import StorageError

__all__ = [
    "SnapshotError",
    "WALCorruptionError",
    "WALDirectoryError",
    "WALError",
    "WALLockedError",
]


class WALError(StorageError):
    """Base of every error of :mod:`raftcore.wal`.

    Also raised on its own when a write or fsync failed: the store is unusable after
    that (the state of the file is unknown, and retrying an fsync that failed may
    report success for data the kernel already dropped), and must be reopened.
    """


class WALCorruptionError(WALError):
    """Bytes on disk that recovery must not silently drop or repair.

    ``path`` names the file and ``offset`` the byte offset in it where the damaged or
    inconsistent record starts; ``reason`` says what is wrong.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"wal: corrupt record in {path} at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class WALDirectoryError(WALError):
    """The store's directory is missing, is not a directory, or is not accessible."""


class WALLockedError(WALError):
    """Another process (or another open store in this process) holds the directory."""


class SnapshotError(WALError):
    """The snapshot the write-ahead log refers to is missing or damaged."""
