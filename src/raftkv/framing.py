"""Wire framing of raftkv's peer transport: frame header, handshake records, frame reader.

Every byte exchanged between two raftkv peers, after an optional TLS layer, is a
sequence of frames::

    +----------------+------------+---------------------+
    | length: uint32 | kind: uint8 | payload (length B)  |
    +----------------+------------+---------------------+

``length`` is big-endian and counts the payload only (not the 5-byte header). A
receiver refuses any frame whose length exceeds its configured maximum *before*
reading the payload, so a corrupt or hostile length cannot make it allocate memory.
Frame kinds are :class:`FrameKind`; payload layouts are documented on each member.

Fixed-size records (handshake, snapshot header, acknowledgements) are big-endian
``struct`` layouts; raft messages are etcd-compatible protobuf
(:func:`raftcore.raftpb.codec.encode_message`).

This module has no asyncio state of its own apart from :class:`FrameReader`; the
connection logic lives in :mod:`raftkv.transport`.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

__all__ = [
    "ACK",
    "HEADER",
    "HEADER_SIZE",
    "HELLO",
    "HELLO_ACK",
    "MAGIC",
    "MAX_HANDSHAKE_FRAME",
    "PROTOCOL_VERSION",
    "SNAP_END",
    "SNAP_HEAD",
    "FrameError",
    "FrameKind",
    "FrameReader",
    "Hello",
    "HelloAck",
    "StreamKind",
    "encode_frame",
]

#: Identifies the raftkv peer protocol in the handshake, so that a stray client (an
#: HTTP request sent to the peer port, say) is refused with a clear reason.
MAGIC: Final = b"RKVP"

#: Bumped on any incompatible change of framing, handshake or snapshot streaming.
PROTOCOL_VERSION: Final = 1

#: Frame header: payload length, frame kind.
HEADER: Final = struct.Struct(">IB")
HEADER_SIZE: Final = HEADER.size

#: Handshake frames are tiny; the first frame of a connection may not be larger than
#: this whatever the configured maximum, so an unauthenticated client cannot make the
#: server buffer megabytes.
MAX_HANDSHAKE_FRAME: Final = 1024

#: HELLO payload: magic, protocol version, stream kind, cluster id, sender id,
#: expected receiver id.
HELLO: Final = struct.Struct(">4sHBQQQ")

#: HELLO_ACK payload: protocol version, cluster id, receiver id.
HELLO_ACK: Final = struct.Struct(">HQQ")

#: SNAP_HEAD payload prefix: total size of the snapshot data in bytes; an encoded
#: MsgSnap with empty ``snapshot.data`` follows.
SNAP_HEAD: Final = struct.Struct(">Q")

#: SNAP_END payload: CRC-32 (zlib) of the snapshot data.
SNAP_END: Final = struct.Struct(">I")

#: SNAP_ACK payload prefix: status (0 = applied, anything else = refused); a UTF-8
#: reason may follow.
ACK: Final = struct.Struct(">B")


class FrameKind(IntEnum):
    """What a frame's payload is."""

    #: Client → server, first frame of every connection: :data:`HELLO` record.
    HELLO = 1
    #: Server → client: handshake accepted, :data:`HELLO_ACK` record.
    HELLO_ACK = 2
    #: Server → client: handshake refused; payload is the UTF-8 reason. The server
    #: closes the connection right after.
    REJECT = 3
    #: Message stream, client → server: one protobuf-encoded raft ``Message``.
    MESSAGE = 4
    #: Snapshot stream, client → server, once: :data:`SNAP_HEAD` + encoded MsgSnap
    #: whose ``snapshot.data`` is empty.
    SNAP_HEAD = 5
    #: Snapshot stream, client → server: the next slice of ``snapshot.data``.
    SNAP_CHUNK = 6
    #: Snapshot stream, client → server, once: :data:`SNAP_END` record.
    SNAP_END = 7
    #: Snapshot stream, server → client, once: :data:`ACK` record (+ reason), sent
    #: after the reassembled message was handed to the receiving node.
    SNAP_ACK = 8


class StreamKind(IntEnum):
    """The purpose of a connection, announced in the handshake."""

    #: Long-lived stream of raft messages, one per peer and direction.
    MESSAGE = 0
    #: One snapshot per connection, so a big transfer never delays heartbeats.
    SNAPSHOT = 1


class FrameError(ValueError):
    """The peer broke the framing or handshake protocol; the connection must close."""


@dataclass(slots=True, frozen=True)
class Hello:
    """The connecting side's handshake: who it is and whom it expects to reach."""

    version: int
    stream: StreamKind
    cluster_id: int
    sender_id: int
    receiver_id: int

    def encode(self) -> bytes:
        return encode_frame(
            FrameKind.HELLO,
            HELLO.pack(
                MAGIC,
                self.version,
                self.stream,
                self.cluster_id,
                self.sender_id,
                self.receiver_id,
            ),
        )

    @staticmethod
    def decode(payload: bytes) -> Hello:
        """Parse a HELLO payload; raises :class:`FrameError` if it is not one."""
        if len(payload) != HELLO.size:
            raise FrameError(f"handshake of {len(payload)} bytes, want {HELLO.size}")
        magic, version, stream, cluster_id, sender_id, receiver_id = HELLO.unpack(payload)
        if magic != MAGIC:
            raise FrameError(f"bad protocol magic {magic!r}")
        try:
            kind = StreamKind(stream)
        except ValueError:
            raise FrameError(f"unknown stream kind {stream}") from None
        return Hello(version, kind, cluster_id, sender_id, receiver_id)


@dataclass(slots=True, frozen=True)
class HelloAck:
    """The accepting side's answer: its version, cluster and id, checked by the client."""

    version: int
    cluster_id: int
    receiver_id: int

    def encode(self) -> bytes:
        return encode_frame(
            FrameKind.HELLO_ACK, HELLO_ACK.pack(self.version, self.cluster_id, self.receiver_id)
        )

    @staticmethod
    def decode(payload: bytes) -> HelloAck:
        if len(payload) != HELLO_ACK.size:
            raise FrameError(f"handshake reply of {len(payload)} bytes, want {HELLO_ACK.size}")
        return HelloAck(*HELLO_ACK.unpack(payload))


def encode_frame(kind: int, payload: bytes | bytearray | memoryview = b"") -> bytes:
    """One whole frame (header + payload) as bytes."""
    return HEADER.pack(len(payload), kind) + payload


class FrameReader:
    """Reads frames off a :class:`asyncio.StreamReader` with few awaits.

    It pulls whatever the socket has (up to ``read_size`` bytes) into its own buffer
    and cuts as many frames out of it as it can before touching the stream again,
    so a batch of a thousand small messages costs a handful of reads instead of two
    ``readexactly`` awaits per message. The length is checked against ``max_size``
    as soon as the header is in, before any payload is buffered.
    """

    __slots__ = ("_buf", "_pos", "_read_size", "_reader", "max_size")

    def __init__(
        self, reader: asyncio.StreamReader, max_size: int, read_size: int = 256 * 1024
    ) -> None:
        self._reader = reader
        self._buf = bytearray()
        self._pos = 0
        self._read_size = read_size
        self.max_size = max_size

    async def _fill(self, need: int) -> None:
        """Buffer at least ``need`` unread bytes; EOF before that raises."""
        buf = self._buf
        if self._pos and self._pos >= len(buf) // 2:
            # Drop consumed bytes before growing, keeping the buffer bounded by
            # about one frame plus one read.
            del buf[: self._pos]
            self._pos = 0
        while len(buf) - self._pos < need:
            chunk = await self._reader.read(max(self._read_size, need - (len(buf) - self._pos)))
            if not chunk:
                have = len(buf) - self._pos
                if have == 0:
                    raise EOFError("connection closed")
                raise FrameError(f"connection closed inside a frame ({have} of {need} bytes)")
            buf += chunk

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame as ``(kind, payload)``.

        Raises :class:`EOFError` on a clean close between frames and
        :class:`FrameError` on an oversized frame or a close inside one. The kind is
        returned as a plain int; validating it is the caller's business.
        """
        if len(self._buf) - self._pos < HEADER_SIZE:
            await self._fill(HEADER_SIZE)
        length, kind = HEADER.unpack_from(self._buf, self._pos)
        if length > self.max_size:
            raise FrameError(f"frame of {length} bytes exceeds the limit of {self.max_size}")
        end = HEADER_SIZE + length
        if len(self._buf) - self._pos < end:
            await self._fill(end)
        start = self._pos + HEADER_SIZE
        self._pos += end
        # One copy straight out of the buffer (slicing the bytearray would copy twice).
        return kind, bytes(memoryview(self._buf)[start : start + length])

    def buffered(self) -> int:
        """Bytes read from the socket but not yet returned as frames."""
        return len(self._buf) - self._pos
