"""The few file-system primitives durability rests on, in one place.

Everything the store promises reduces to three facts:

* data written to a file is durable once :func:`fdatasync` on it returned;
* a file's name (creation, rename, unlink) is durable once :func:`fsync_dir` on its
  directory returned;
* ``rename`` replaces its target atomically, so a reader sees the old or the new file,
  never a mix.

macOS's ``fsync`` does not flush the drive's cache; ``F_FULLFSYNC`` does, so it is used
where it exists.
"""

from __future__ import annotations

import fcntl
import os
from typing import Final

__all__ = ["fdatasync", "fsync", "fsync_dir", "write_all", "write_parts", "zero_fill"]

_F_FULLFSYNC: Final[int | None] = getattr(fcntl, "F_FULLFSYNC", None)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_ZEROS: Final = memoryview(bytes(1 << 20))


def fsync(fd: int) -> None:
    """Flush ``fd``'s data and metadata (size included) to stable storage."""
    if _F_FULLFSYNC is not None:
        fcntl.fcntl(fd, _F_FULLFSYNC)
    else:
        os.fsync(fd)


if hasattr(os, "fdatasync") and _F_FULLFSYNC is None:

    def fdatasync(fd: int) -> None:
        """Flush ``fd``'s data (and the metadata needed to read it back)."""
        os.fdatasync(fd)

else:  # pragma: no cover - platform dependent
    fdatasync = fsync


def fsync_dir(path: str) -> None:
    """Make the directory entries of ``path`` (creations, renames, unlinks) durable."""
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, buf: bytes | memoryview, offset: int) -> None:
    """``pwrite`` all of ``buf`` at ``offset``; one syscall unless the kernel splits it."""
    n = os.pwrite(fd, buf, offset)
    if n == len(buf):
        return
    view = memoryview(buf)
    while n < len(view):
        w = os.pwrite(fd, view[n:], offset + n)
        if w <= 0:  # pragma: no cover - a regular file never does this without raising
            raise OSError(f"short write at offset {offset + n}")
        n += w


_HAS_PWRITEV: Final = hasattr(os, "pwritev")


def write_parts(fd: int, parts: list[bytes], offset: int) -> int:
    """Write the concatenation of ``parts`` at ``offset``; returns its length.

    One ``pwritev`` syscall gathers the parts straight from their buffers, so a
    group commit is never copied into one big string first (for a batch of large
    entries that copy, and the page faults of its fresh memory, are measurable).
    """
    total = sum(map(len, parts))
    if _HAS_PWRITEV:
        n = os.pwritev(fd, parts, offset)
        if n == total:
            return total
        # A short write (rare on a regular file): finish the rest the plain way.
        write_all(fd, memoryview(b"".join(parts))[n:], offset + n)
        return total
    write_all(fd, b"".join(parts), offset)  # pragma: no cover - platform dependent
    return total  # pragma: no cover


def zero_fill(fd: int, start: int, end: int) -> None:
    """Write zero bytes over ``[start, end)`` of ``fd``.

    Zeros are written rather than ``fallocate``d on purpose: on ext4 and XFS the first
    write into a ``fallocate``d (unwritten) extent turns it into a written one, a
    metadata change that each following ``fdatasync`` has to commit through the
    journal, which about doubles its latency. Blocks that already hold zeros are plain
    overwrites, so the hot-path ``fdatasync`` flushes data only.
    """
    pos = start
    while pos < end:
        chunk = min(len(_ZEROS), end - pos)
        write_all(fd, _ZEROS[:chunk], pos)
        pos += chunk
