"""Segment files: naming, atomic creation with preallocation, and the active writer.

A segment is ``<seq as 16 hex digits>.wal``. It comes into existence complete: the
file is zero-filled to the segment size, its first records (the header and the
current hard state) are written and fsynced under a temporary name, and only then is
it renamed into place and the directory fsynced. Recovery can therefore rely on every
segment having a valid header; only the tail after it can be torn.

Preallocation writes real zeros (see :func:`raftcore.wal.fileutil.zero_fill` for why),
which takes time proportional to the segment size. A :class:`Preallocator` does that
for the *next* segment on a background thread while the current one fills up, so
rotation itself costs one small write, one fsync, a rename and a directory fsync.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Final

from raftcore.wal.fileutil import fdatasync, fsync, fsync_dir, write_all, write_parts, zero_fill
from raftcore.wal.record import SegmentHeader

__all__ = [
    "SEGMENT_SUFFIX",
    "TMP_SUFFIX",
    "Preallocator",
    "SegmentInfo",
    "SegmentWriter",
    "create_segment",
    "open_segment_for_append",
    "parse_segment_name",
    "read_file",
    "segment_name",
]

SEGMENT_SUFFIX: Final = ".wal"
TMP_SUFFIX: Final = ".tmp"
_PREALLOC_NAME: Final = "prealloc.wal.tmp"
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)


def segment_name(seq: int) -> str:
    return f"{seq:016x}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The sequence number of a segment file name, or ``None`` for other names."""
    if len(name) != 16 + len(SEGMENT_SUFFIX) or not name.endswith(SEGMENT_SUFFIX):
        return None
    try:
        return int(name[:16], 16)
    except ValueError:
        return None


@dataclass(slots=True)
class SegmentInfo:
    """A segment of the live log: where it is and how the log looked when it began."""

    seq: int
    path: str
    header: SegmentHeader


class SegmentWriter:
    """The open, active segment: positioned writes at the end of its valid data."""

    __slots__ = ("data_start", "fd", "offset", "path")

    def __init__(self, fd: int, path: str, offset: int, data_start: int) -> None:
        self.fd = fd
        self.path = path
        self.offset = offset
        # End of the records a segment is created with; a segment holding nothing
        # beyond them is never rotated away (that would loop on an oversized batch).
        self.data_start = data_start

    def write(self, parts: list[bytes]) -> None:
        """Append the concatenation of ``parts``: one gathered write."""
        self.offset += write_parts(self.fd, parts, self.offset)

    def sync(self) -> None:
        fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _new_zeroed_file(path: str, size: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644)
    try:
        zero_fill(fd, 0, size)
        fsync(fd)  # fsync, not fdatasync: the new size must be durable too
    except BaseException:
        os.close(fd)
        raise
    return fd


class Preallocator:
    """Prepares one zero-filled file of ``size`` bytes in the background.

    :meth:`take` waits for it and hands over its descriptor and temporary path; the
    next preparation starts with the next :meth:`start`. Failures are reported by
    :meth:`take` returning ``None`` (the caller then creates the file itself).
    """

    __slots__ = ("_dir", "_error", "_fd", "_size", "_thread")

    def __init__(self, dir_path: str, size: int) -> None:
        self._dir = dir_path
        self._size = size
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._error: BaseException | None = None

    @property
    def path(self) -> str:
        return os.path.join(self._dir, _PREALLOC_NAME)

    def start(self) -> None:
        if self._thread is not None or self._fd is not None:
            return
        self._error = None
        self._thread = threading.Thread(target=self._run, name="raftcore-wal-prealloc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._fd = _new_zeroed_file(self.path, self._size)
        except BaseException as err:  # reported through take()
            self._error = err

    def take(self) -> tuple[int, str] | None:
        """The prepared file's ``(fd, temporary path)``, or ``None`` if preparing failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        fd, self._fd = self._fd, None
        if fd is None:
            return None
        return fd, self.path

    def close(self) -> None:
        """Stop using the preallocator; the half-prepared or unused file is removed."""
        taken = self.take()
        if taken is not None:
            os.close(taken[0])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    @property
    def error(self) -> BaseException | None:
        return self._error


def create_segment(
    dir_path: str,
    seq: int,
    initial: bytes,
    size: int,
    prepared: tuple[int, str] | None = None,
) -> SegmentWriter:
    """Create segment ``seq`` holding the records ``initial``, atomically.

    ``size`` is the preallocation (0: none, the file grows as it is written);
    ``prepared`` is a zero-filled temporary file from a :class:`Preallocator` to use
    instead of preallocating here. On return the file, its contents and its name are
    durable, and the writer is positioned after ``initial``.
    """
    path = os.path.join(dir_path, segment_name(seq))
    if prepared is not None:
        fd, tmp = prepared
    else:
        tmp = path + TMP_SUFFIX
        if size > 0:
            fd = _new_zeroed_file(tmp, size)
        else:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _O_CLOEXEC, 0o644)
    try:
        write_all(fd, initial, 0)
        fsync(fd)
        os.rename(tmp, path)
        fsync_dir(dir_path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return SegmentWriter(fd, path, len(initial), len(initial))


def open_segment_for_append(path: str, offset: int, data_start: int) -> SegmentWriter:
    """Reopen the last segment of a recovered log, positioned at ``offset``."""
    fd = os.open(path, os.O_RDWR | _O_CLOEXEC)
    return SegmentWriter(fd, path, offset, data_start)


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
