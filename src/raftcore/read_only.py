"""Linearizable read-only requests (etcd's ``read_only.go``).

A leader answers a ReadIndex request only once it knows it still leads: under
``ReadOnlySafe`` it records the request with the commit index of the moment and
confirms it through a round of heartbeats. Heartbeats carry, as their context, the
position (1-based, counted over the lifetime of this :class:`ReadOnly`) of the last
request queued so far, encoded as 8 little-endian bytes. A follower echoes the context;
once a quorum has acknowledged position *p*, every request up to *p* is confirmed.
Counting positions instead of keeping one entry per request context means a single
heartbeat round confirms any number of queued reads, and acknowledgements are plain
integers that a quorum computation can take a "committed index" of.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from raftcore.config import ReadOnlyOption
from raftcore.errors import RaftPanic
from raftcore.quorum import JointConfig
from raftcore.raftpb.types import Message

__all__ = ["ReadIndexRequest", "ReadOnly", "ReadState"]

_U64 = struct.Struct("<Q")


@dataclass(slots=True)
class ReadState:
    """A confirmed read: the application may serve the read once it has applied ``index``.

    ``request_ctx`` is the context the application attached to its ReadIndex call, so it
    can tell which of its requests this answers.
    """

    index: int = 0
    request_ctx: bytes = b""


@dataclass(slots=True)
class ReadIndexRequest:
    """A read request waiting for heartbeat confirmation, with the commit index it saw."""

    req: Message
    index: int


@dataclass(slots=True)
class ReadOnly:
    """The leader's queue of read requests awaiting quorum confirmation."""

    option: ReadOnlyOption
    # Highest read position each peer has acknowledged through a heartbeat response.
    acks: dict[int, int] = field(default_factory=dict)
    unconfirmed_reads: list[ReadIndexRequest] = field(default_factory=list)
    # How many requests were confirmed (and dropped from the front of the queue) so
    # far; together with len(unconfirmed_reads) it gives the position of the last one.
    confirmed_reads: int = 0

    def add_request(self, commit_index: int, req: Message) -> None:
        """Queue ``req``, which arrived when the leader's commit index was ``commit_index``."""
        self.unconfirmed_reads.append(ReadIndexRequest(req, commit_index))

    def recv_ack(self, from_: int, ctx: bytes) -> None:
        """Record that ``from_`` acknowledged the heartbeat carrying context ``ctx``."""
        if len(ctx) == 0:
            return
        if len(ctx) < 8:
            # etcd decodes the context unchecked and would crash on a short one.
            raise RaftPanic(f"runtime error: index out of range [7] with length {len(ctx)}")
        pos = _U64.unpack_from(ctx)[0]
        acks = self.acks
        if pos > acks.get(from_, 0):
            acks[from_] = pos

    def acked_index(self, voter_id: int) -> int | None:
        """The quorum package's AckedIndexer view of the acknowledgements."""
        return self.acks.get(voter_id)

    def maybe_advance(self, c: JointConfig) -> list[ReadIndexRequest]:
        """Pop and return every request a quorum of ``c`` has now confirmed, oldest first."""
        newly_confirmed = c.committed_index(self)
        if newly_confirmed <= self.confirmed_reads:
            return []
        n = newly_confirmed - self.confirmed_reads
        unconfirmed = self.unconfirmed_reads
        if n > len(unconfirmed):
            # etcd slices out of range and crashes here (only reachable with an empty
            # configuration, whose "committed index" is unbounded).
            raise RaftPanic(
                f"runtime error: slice bounds out of range [:{n}] with capacity {len(unconfirmed)}"
            )
        ready = unconfirmed[:n]
        del unconfirmed[:n]
        self.confirmed_reads = newly_confirmed
        return ready

    def heartbeat_ctx(self) -> bytes:
        """The heartbeat context that would confirm every queued request (empty if none)."""
        if not self.unconfirmed_reads:
            return b""
        return _U64.pack(self.confirmed_reads + len(self.unconfirmed_reads))
