"""Snapshot files: written atomically, named by term and index, checksummed.

A snapshot lives in ``<term as 16 hex digits>-<index as 16 hex digits>.snap``::

    offset 0   8 bytes  magic b"raftcSNP"
    offset 8   u32      format version
    offset 12  u32      CRC-32C of the payload
    offset 16  u64      payload length
    offset 24  ...      payload: the protobuf encoding of the raftpb Snapshot

(little-endian). Writing goes to a temporary file that is fsynced, renamed over the
final name and followed by an fsync of the directory, so a snapshot file either exists
complete and durable or not at all. Files that fail any check (short, wrong magic or
version, CRC mismatch, undecodable, metadata disagreeing with the name) are skipped
with a warning by :meth:`SnapshotStore.load_newest`.

Which snapshot is *current* is decided by the write-ahead log's snapshot marker, not by
this module: :class:`raftcore.wal.DiskStorage` writes the file first and the marker
second, so a crash in between leaves an orphan that recovery removes.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable
from typing import Final

from raftcore.errors import DecodeError
from raftcore.logger import Logger, default_logger
from raftcore.raftpb.codec import decode_snapshot, encode_snapshot
from raftcore.raftpb.types import Snapshot
from raftcore.wal.errors import SnapshotError
from raftcore.wal.fileutil import fsync, fsync_dir, write_all
from raftcore.wal.record import crc32c

__all__ = ["SNAP_SUFFIX", "SnapshotStore", "parse_snapshot_name", "snapshot_name"]

SNAP_SUFFIX: Final = ".snap"
_MAGIC: Final = b"raftcSNP"
_VERSION: Final = 1
_HEADER: Final = struct.Struct("<8sIIQ")
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)


def snapshot_name(term: int, index: int) -> str:
    return f"{term:016x}-{index:016x}{SNAP_SUFFIX}"


def parse_snapshot_name(name: str) -> tuple[int, int] | None:
    """``(term, index)`` of a snapshot file name, ``None`` for any other name."""
    if len(name) != 33 + len(SNAP_SUFFIX) or not name.endswith(SNAP_SUFFIX) or name[16] != "-":
        return None
    try:
        return int(name[:16], 16), int(name[17:33], 16)
    except ValueError:
        return None


def _decode_file(path: str, term: int, index: int) -> Snapshot:
    """Read and verify one snapshot file; raises :class:`SnapshotError` on any defect."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise SnapshotError(f"wal: cannot read snapshot {path}: {err}") from None
    if len(data) < _HEADER.size:
        raise SnapshotError(f"wal: snapshot {path} is truncated ({len(data)} bytes)")
    magic, version, crc, n = _HEADER.unpack_from(data, 0)
    if magic != _MAGIC:
        raise SnapshotError(f"wal: {path} is not a raftcore snapshot (bad magic)")
    if version != _VERSION:
        raise SnapshotError(f"wal: snapshot {path} has unsupported version {version}")
    if len(data) != _HEADER.size + n:
        raise SnapshotError(
            f"wal: snapshot {path} is {len(data)} bytes, its header says {_HEADER.size + n}"
        )
    payload = memoryview(data)[_HEADER.size :]
    if crc32c(payload, 0) != crc:
        raise SnapshotError(f"wal: snapshot {path}: CRC mismatch")
    try:
        snap = decode_snapshot(payload)
    except DecodeError as err:
        raise SnapshotError(f"wal: snapshot {path}: {err}") from None
    md = snap.metadata
    if (md.term, md.index) != (term, index):
        raise SnapshotError(
            f"wal: snapshot {path} holds term {md.term} index {md.index}, not its name's"
        )
    return snap


class SnapshotStore:
    """The snapshot files of one directory."""

    __slots__ = ("_dir", "_logger")

    def __init__(self, dir_path: str | os.PathLike[str], logger: Logger | None = None) -> None:
        self._dir = os.fspath(dir_path)
        self._logger = logger if logger is not None else default_logger()

    def path(self, term: int, index: int) -> str:
        return os.path.join(self._dir, snapshot_name(term, index))

    def save(self, snap: Snapshot) -> str:
        """Write ``snap`` durably and atomically; returns its path.

        An existing file of the same term and index is replaced (atomically).
        """
        md = snap.metadata
        path = self.path(md.term, md.index)
        payload = encode_snapshot(snap)
        header = _HEADER.pack(_MAGIC, _VERSION, crc32c(payload, 0), len(payload))
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644)
        try:
            write_all(fd, header + payload, 0)
            fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, path)
        fsync_dir(self._dir)
        return path

    def list(self) -> list[tuple[int, int]]:
        """``(term, index)`` of every snapshot file, newest (highest index) first."""
        found: list[tuple[int, int]] = []
        for name in os.listdir(self._dir):
            parsed = parse_snapshot_name(name)
            if parsed is not None:
                found.append(parsed)
        found.sort(key=lambda ti: (ti[1], ti[0]), reverse=True)
        return found

    def load(self, term: int, index: int) -> Snapshot:
        """The snapshot ``(term, index)``; raises :class:`SnapshotError` if unusable."""
        return _decode_file(self.path(term, index), term, index)

    def load_newest(self, accept: Callable[[int, int], bool] | None = None) -> Snapshot | None:
        """The newest valid snapshot that ``accept(term, index)`` admits, or ``None``.

        Damaged files are skipped with a warning (a crash cannot produce them, since
        writes are atomic, but disks can).
        """
        for term, index in self.list():
            if accept is not None and not accept(term, index):
                continue
            try:
                return self.load(term, index)
            except SnapshotError as err:
                self._logger.warning("wal: skipping snapshot: %s", err)
        return None

    def remove(self, term: int, index: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(term, index))

    def remove_tmp(self) -> None:
        """Remove temporary files of writes that a crash interrupted."""
        for name in os.listdir(self._dir):
            if name.endswith(SNAP_SUFFIX + ".tmp"):
                os.unlink(os.path.join(self._dir, name))
