"""A bounded window of the appends sent to a follower but not yet acknowledged."""

from __future__ import annotations

from raftcore.errors import RaftPanic

__all__ = ["Inflights"]


class Inflights:
    """Tracks in-flight MsgApps by the index of their last entry and their byte size.

    The window is full when it holds ``size`` messages, or when ``max_bytes`` is non-zero
    and the held bytes reached it (the byte limit is soft: one message may push the total
    from below the limit to above it). Callers check :meth:`full` before :meth:`add`, add
    in increasing index order, and release with :meth:`free_le` as acks arrive.

    The storage is a ring buffer, as in etcd, that grows by doubling up to ``size`` on
    demand: a process may host many raft groups, most of them idle, so nothing is
    preallocated. Indexes and sizes live in two parallel lists to avoid a tuple per
    message.
    """

    __slots__ = ("_buf_bytes", "_buf_index", "_bytes", "_count", "_max_bytes", "_size", "_start")

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        self._start = 0  # ring position of the oldest message
        self._count = 0  # messages held
        self._bytes = 0  # bytes held
        self._size = size  # most messages allowed
        self._max_bytes = max_bytes  # most bytes allowed (0: no limit)
        self._buf_index: list[int] = []
        self._buf_bytes: list[int] = []

    @property
    def size(self) -> int:
        """The most messages the window admits."""
        return self._size

    @property
    def max_bytes(self) -> int:
        """The soft byte limit (0: none)."""
        return self._max_bytes

    def total_bytes(self) -> int:
        """The total size of the messages held."""
        return self._bytes

    def clone(self) -> Inflights:
        """An independent copy."""
        c = Inflights(self._size, self._max_bytes)
        c._start = self._start
        c._count = self._count
        c._bytes = self._bytes
        c._buf_index = self._buf_index.copy()
        c._buf_bytes = self._buf_bytes.copy()
        return c

    def add(self, index: int, nbytes: int) -> None:
        """Record a message whose last entry is ``index`` and whose entries weigh ``nbytes``."""
        count = self._count
        size = self._size
        if count == size or (self._max_bytes != 0 and self._bytes >= self._max_bytes):
            # (full(), inlined)
            raise RaftPanic("cannot add into a Full inflights")
        nxt = self._start + count
        if nxt >= size:
            nxt -= size
        if nxt >= len(self._buf_index):
            self._grow()
        self._buf_index[nxt] = index
        self._buf_bytes[nxt] = nbytes
        self._count = count + 1
        self._bytes += nbytes

    def _grow(self) -> None:
        # Double the ring (from 1), capped at the window size. Growth only happens while
        # the ring has not wrapped yet, so the live region stays where it is.
        cur = len(self._buf_index)
        new = 1 if cur == 0 else min(cur * 2, self._size)
        extra = [0] * (new - cur)
        self._buf_index.extend(extra)
        self._buf_bytes.extend(extra)

    def free_le(self, to: int) -> None:
        """Release every message whose last index is ``<= to``."""
        count = self._count
        if count == 0:
            return
        buf_index = self._buf_index
        idx = self._start
        if to < buf_index[idx]:
            return  # left of the window: nothing to free
        buf_bytes = self._buf_bytes
        size = self._size
        freed = 0
        nbytes = 0
        while freed < count:
            if to < buf_index[idx]:
                break
            nbytes += buf_bytes[idx]
            freed += 1
            idx += 1
            if idx >= size:
                idx -= size
        self._count = count - freed
        self._bytes -= nbytes
        # An empty window restarts at 0 so that the ring need not grow further.
        self._start = idx if self._count else 0

    def full(self) -> bool:
        """True if no further message may be sent now."""
        return self._count == self._size or (
            self._max_bytes != 0 and self._bytes >= self._max_bytes
        )

    def count(self) -> int:
        """The number of messages in flight."""
        return self._count

    def reset(self) -> None:
        """Forget every message in flight."""
        self._start = 0
        self._count = 0
        self._bytes = 0

    def state(self) -> tuple[int, int, int, int, int, list[tuple[int, int]]]:
        """``(start, count, bytes, size, max_bytes, buffer)``: the full internal state, so
        tests can compare it against etcd's expectations."""
        return (
            self._start,
            self._count,
            self._bytes,
            self._size,
            self._max_bytes,
            list(zip(self._buf_index, self._buf_bytes, strict=True)),
        )

    @classmethod
    def with_buffer(cls, size: int, start: int = 0, buffer_len: int = 0) -> Inflights:
        """A window whose ring is preallocated to ``buffer_len`` and starts at ``start``
        (for tests that exercise wrap-around from a given position)."""
        inf = cls(size)
        inf._start = start
        inf._buf_index = [0] * buffer_len
        inf._buf_bytes = [0] * buffer_len
        return inf

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inflights):
            return NotImplemented
        return self.state() == other.state()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"Inflights(size={self._size}, max_bytes={self._max_bytes}, "
            f"start={self._start}, count={self._count}, bytes={self._bytes})"
        )
