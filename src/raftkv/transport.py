"""Peer transport of raftkv: raft messages between peers over asyncio TCP (optionally mTLS).

Overview
========

Each peer runs one :class:`Transport`. It listens on one address and dials every other
peer. Two kinds of connection exist, both opened by the *sending* side:

* a **message stream** per peer and direction, long-lived, carrying raft messages;
* a **snapshot stream**, one connection per MsgSnap, so that streaming a big snapshot
  never delays the heartbeats and appends travelling on the message stream.

TLS
===

With :attr:`TransportConfig.tls` set, every connection is mutual TLS (see
:mod:`raftkv.tls`) before the first frame: the dialler verifies the listener's
certificate and name, the listener requires a client certificate from the same CA. A
failed TLS handshake is logged and counted like a refused handshake.

Frames
======

Every connection carries frames (see :mod:`raftkv.framing`)::

    uint32 length (big-endian, payload bytes only) | uint8 kind | payload

A receiver checks ``length`` against its maximum (:attr:`TransportConfig.max_frame_size`;
1 KiB for the first, handshake frame) before reading the payload, and closes the
connection, logging the reason, on an oversized frame, an unexpected frame kind, a
payload that is not valid protobuf (:class:`raftcore.errors.DecodeError`) or a message
whose ``from``/``to`` contradict the handshake. Other connections are not affected.

Handshake
=========

The dialling side sends ``HELLO``: magic ``b"RKVP"``, protocol version (uint16), stream
kind (uint8: 0 = messages, 1 = snapshot), cluster id, its own id, and the id it expects
the listener to have (three uint64). The listener answers ``HELLO_ACK`` (its version,
cluster id and id, which the dialler checks in turn) or ``REJECT`` with a UTF-8 reason,
and then closes. A listener refuses a wrong magic or version, another cluster's id, a
sender id that is not one of its peers, and a receiver id that is not its own; each
refusal is logged on both sides.

Message stream
==============

After the handshake the dialler sends ``MESSAGE`` frames, one protobuf-encoded raft
``Message`` each (:func:`raftcore.raftpb.codec.encode_message`, etcd's bytes); the
listener never answers, and the dialler treats anything it reads (including EOF) as
the end of the connection. :meth:`Transport.send` only appends to a bounded per-peer
queue; the peer's writer task wakes, encodes everything queued into one buffer (up to
:attr:`TransportConfig.max_batch_bytes`) and issues a single write per batch.

When a peer cannot be reached (connection refused or lost, handshake refused, TLS
failure) its queue is dropped and, until a new connection is up, :meth:`Transport.send`
drops that peer's messages at once; a full queue drops too. Each time messages are
dropped, ``report_unreachable(peer_id)`` is called, so the leader probes that follower
again later. The writer reconnects with capped, jittered exponential backoff.

Snapshot stream
===============

A MsgSnap opens its own connection (handshake with stream kind 1) and sends
``SNAP_HEAD`` (uint64 size of ``snapshot.data``, then the MsgSnap encoded with empty
data), ``SNAP_CHUNK`` frames with consecutive slices of the data, and ``SNAP_END``
(CRC-32 of the data). The receiver reassembles, checks size and checksum, hands the
whole MsgSnap to ``on_message``, and only then replies ``SNAP_ACK`` (status byte 0, or
non-zero followed by a reason). The sender reports
``report_snapshot(peer_id, SnapshotFinish)`` on a zero status and
``SnapshotFailure`` (after ``report_unreachable``) on any error, as etcd does.

Callbacks and threads
=====================

Everything runs on the event loop that called :meth:`Transport.start`;
:meth:`Transport.send` must be called on that loop's thread (from another thread use
``loop.call_soon_threadsafe(transport.send, msgs)``). ``on_message`` is awaited if it
returns an awaitable, which gives per-connection back-pressure. ``report_unreachable``
and ``report_snapshot`` may be plain functions or return awaitables (run as tracked
tasks); the ones triggered from :meth:`Transport.send` are deferred with ``call_soon``
so they never re-enter the raft loop that is sending. After :meth:`Transport.stop` no
callback is invoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import ssl
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from typing import Any, Final

from raftcore.errors import DecodeError
from raftcore.raftpb.codec import decode_message, encode_message
from raftcore.raftpb.types import Message, MessageType, Snapshot
from raftcore.rawnode import SnapshotStatus
from raftcore.util import is_local_msg
from raftkv.framing import (
    ACK,
    HEADER,
    HEADER_SIZE,
    MAX_HANDSHAKE_FRAME,
    PROTOCOL_VERSION,
    SNAP_END,
    SNAP_HEAD,
    FrameError,
    FrameKind,
    FrameReader,
    Hello,
    HelloAck,
    StreamKind,
    encode_frame,
)
from raftkv.tls import TLSConfig

__all__ = [
    "Address",
    "HandshakeError",
    "PeerMetrics",
    "PeerState",
    "SnapshotRejectedError",
    "Transport",
    "TransportConfig",
    "TransportMetrics",
    "backoff_delay",
]

log: Final = logging.getLogger("raftkv.transport")

Address = tuple[str, int]
OnMessage = Callable[[Message], object]
ReportUnreachable = Callable[[int], object]
ReportSnapshot = Callable[[int, SnapshotStatus], object]

_MSG_FRAME: Final = int(FrameKind.MESSAGE)
_MSG_SNAP: Final = MessageType.MsgSnap
_CLOSE_TIMEOUT: Final = 1.0


class HandshakeError(Exception):
    """The other side refused our handshake, or answered as a peer we did not expect."""


class SnapshotRejectedError(Exception):
    """The receiver acknowledged a snapshot stream with a failure status."""


class PeerState(IntEnum):
    """Where a peer's outgoing message stream stands."""

    #: Never connected yet: messages queue up and go out once the connection is up.
    CONNECTING = 0
    #: Handshake done: queued messages are written as they come.
    CONNECTED = 1
    #: Unreachable: messages are dropped (and reported) until a reconnect succeeds.
    DOWN = 2

    def __str__(self) -> str:
        return self.name


@dataclass(slots=True)
class TransportConfig:
    """Identity, listen address and limits of one :class:`Transport`."""

    #: This peer's raft id (non-zero).
    id: int
    #: Shared by all members; a peer presenting another cluster id is refused.
    cluster_id: int
    host: str = "127.0.0.1"
    #: 0 picks a free port; read the bound one from :attr:`Transport.address`.
    port: int = 0
    #: Mutual TLS on every connection, both directions, when set.
    tls: TLSConfig | None = None
    #: Largest accepted frame payload; larger frames close the connection.
    max_frame_size: int = 16 * 1024 * 1024
    #: Messages waiting for one peer's writer; beyond that they are dropped.
    queue_size: int = 4096
    #: A batch is cut after this many encoded bytes (one write each).
    max_batch_bytes: int = 4 * 1024 * 1024
    #: Size of the slices a snapshot is streamed in (at most ``max_frame_size``).
    snapshot_chunk_size: int = 512 * 1024
    #: Largest snapshot a receiver accepts (and a sender attempts).
    max_snapshot_size: int = 4 * 1024 * 1024 * 1024
    #: TCP connect plus TLS handshake.
    connect_timeout: float = 3.0
    #: Reading the peer's handshake frame, either side.
    handshake_timeout: float = 3.0
    #: Longest silence inside a snapshot stream before the receiver gives up.
    snapshot_idle_timeout: float = 30.0
    #: How long the sender waits for the receiver's acknowledgement after the last
    #: chunk (the receiver acknowledges once its node has taken the snapshot).
    snapshot_ack_timeout: float = 60.0
    #: Reconnect delay after the first failure; doubles per failure up to the cap.
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    #: Fraction of each delay that is randomised (0 = none, 1 = anywhere in [0, d]).
    backoff_jitter: float = 0.5

    def validate(self) -> None:
        """Raise :class:`ValueError` on a setting the transport cannot work with."""
        if self.id == 0:
            raise ValueError("transport id must be non-zero")
        if self.max_frame_size < MAX_HANDSHAKE_FRAME:
            raise ValueError(f"max_frame_size must be at least {MAX_HANDSHAKE_FRAME}")
        if self.snapshot_chunk_size <= 0:
            raise ValueError("snapshot_chunk_size must be positive")
        if self.queue_size <= 0 or self.max_batch_bytes <= 0:
            raise ValueError("queue_size and max_batch_bytes must be positive")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if not 0.0 <= self.backoff_jitter <= 1.0:
            raise ValueError("backoff_jitter must be in [0, 1]")


def backoff_delay(
    attempt: int, initial: float, maximum: float, jitter: float, rng: random.Random
) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based) after a failure.

    Exponential (``initial * 2**attempt``) capped at ``maximum``, then reduced by a
    random fraction of up to ``jitter`` so that peers which lost each other at the
    same moment do not retry in lock-step.
    """
    d = min(maximum, initial * (2.0 ** min(attempt, 62)))
    return d * (1.0 - jitter * rng.random())


@dataclass(slots=True)
class PeerMetrics:
    """Counters for one peer; ``*_sent``/``writes``/``*connect*`` are about our stream to
    it, ``*_received`` about its streams to us."""

    messages_sent: int = 0
    messages_received: int = 0
    messages_dropped: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    #: Socket writes on the message stream (one per batch).
    writes: int = 0
    #: Message-stream sessions established (handshake done).
    connects: int = 0
    #: Sessions established after an earlier one was lost.
    reconnects: int = 0
    connect_failures: int = 0
    snapshots_sent: int = 0
    snapshots_failed: int = 0
    snapshots_received: int = 0
    snapshot_bytes_sent: int = 0
    snapshot_bytes_received: int = 0


@dataclass(slots=True)
class TransportMetrics:
    """All counters of a transport, for the service's ``/metrics``."""

    peers: dict[int, PeerMetrics] = field(default_factory=dict)
    connections_accepted: int = 0
    #: Handshakes this side refused (wrong cluster, unknown sender, ...).
    handshakes_refused: int = 0
    #: Inbound TLS handshakes that failed (untrusted or missing client certificate).
    tls_handshakes_failed: int = 0
    #: Established inbound connections closed for a protocol error (bad frame,
    #: undecodable message, ...).
    connections_rejected: int = 0
    #: Messages handed to :meth:`Transport.send` for an id that is not a peer.
    messages_unknown_peer: int = 0

    def peer(self, peer_id: int) -> PeerMetrics:
        m = self.peers.get(peer_id)
        if m is None:
            m = self.peers[peer_id] = PeerMetrics()
        return m

    def as_dict(self) -> dict[str, Any]:
        """Plain-data copy: totals at the top, per-peer counters under ``peers``."""
        out: dict[str, Any] = {
            "connections_accepted": self.connections_accepted,
            "handshakes_refused": self.handshakes_refused,
            "tls_handshakes_failed": self.tls_handshakes_failed,
            "connections_rejected": self.connections_rejected,
            "messages_unknown_peer": self.messages_unknown_peer,
        }
        names = [f.name for f in fields(PeerMetrics)]
        out["peers"] = {
            pid: {n: getattr(m, n) for n in names} for pid, m in sorted(self.peers.items())
        }
        return out


class _Peer:
    """Outgoing side of one peer: address, bounded queue, writer task."""

    __slots__ = (
        "address",
        "broken",
        "id",
        "metrics",
        "overflowing",
        "queue",
        "state",
        "task",
        "wake",
    )

    def __init__(self, peer_id: int, address: Address, metrics: PeerMetrics) -> None:
        self.id = peer_id
        self.address = address
        self.metrics = metrics
        self.queue: deque[Message] = deque()
        self.state = PeerState.CONNECTING
        self.wake = asyncio.Event()
        #: Set (to a reason) by the EOF watcher when the live connection ends.
        self.broken: str | None = None
        self.task: asyncio.Task[None] | None = None
        #: The queue overflowed and has not drained since (logged once per episode).
        self.overflowing = False


class Transport:
    """Sends raft messages to peers and hands received ones to ``on_message``.

    Lifecycle: construct, ``await start()``, :meth:`add_peer` (or pass ``peers``),
    :meth:`send` from the raft loop, ``await stop()``.
    """

    def __init__(
        self,
        config: TransportConfig,
        *,
        on_message: OnMessage,
        report_unreachable: ReportUnreachable,
        report_snapshot: ReportSnapshot,
        peers: Mapping[int, Address] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.id = config.id
        self.metrics = TransportMetrics()
        self._on_message = on_message
        self._report_unreachable = report_unreachable
        self._report_snapshot = report_snapshot
        self._rng = rng if rng is not None else random.Random()
        self._peers: dict[int, _Peer] = {}
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._stopped = False
        #: Inbound connection handlers → the peer id they serve (0 before handshake).
        self._inbound: dict[asyncio.Task[Any], int] = {}
        #: Snapshot senders and awaitables returned by report_* callbacks.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server_ssl: ssl.SSLContext | None = None
        self._client_ssl: ssl.SSLContext | None = None
        if config.tls is not None:
            self._server_ssl = config.tls.server_context()
            self._client_ssl = config.tls.client_context()
        for pid, addr in (peers or {}).items():
            self.add_peer(pid, addr)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the listener and start dialling the peers known so far."""
        if self._started:
            raise RuntimeError("transport already started")
        self._loop = asyncio.get_running_loop()
        cfg = self.config
        # TLS is started inside _serve rather than by the server, so that the TLS
        # handshake runs in a task stop() knows about, under our timeout and logging.
        self._server = await asyncio.start_server(self._serve, cfg.host, cfg.port)
        self._started = True
        log.info("raftkv transport %x listening on %s:%d", self.id, *self.address)
        for peer in self._peers.values():
            self._start_peer(peer)

    @property
    def address(self) -> Address:
        """The address actually bound (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("transport not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def stop(self) -> None:
        """Close the listener and every connection, cancel every task; idempotent.

        In-flight snapshots are abandoned without a report: the node is going away.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            await _close_server(self._server)
        tasks: list[asyncio.Task[Any]] = [p.task for p in self._peers.values() if p.task]
        tasks += self._inbound
        tasks += self._tasks
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for p in self._peers.values():
            p.queue.clear()
            p.task = None
        log.info("raftkv transport %x stopped", self.id)

    # ---------------------------------------------------------------------- peers

    def add_peer(self, peer_id: int, address: Address) -> None:
        """Start talking to ``peer_id`` at ``address`` (and accept its connections).

        Re-adding a known peer with a new address reconnects there; with the same
        address it is a no-op.
        """
        if peer_id == 0 or peer_id == self.id:
            raise ValueError(f"invalid peer id {peer_id:x}")
        if self._stopped:
            raise RuntimeError("transport stopped")
        old = self._peers.get(peer_id)
        if old is not None:
            if old.address == tuple(address):
                return
            self._cancel_peer(old)
        peer = _Peer(peer_id, (address[0], address[1]), self.metrics.peer(peer_id))
        self._peers[peer_id] = peer
        if self._started:
            self._start_peer(peer)

    def remove_peer(self, peer_id: int) -> None:
        """Forget ``peer_id``: close our stream to it and its streams to us."""
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            self._cancel_peer(peer)
        for task, pid in self._inbound.items():
            if pid == peer_id:
                task.cancel()

    def peer_state(self, peer_id: int) -> PeerState | None:
        peer = self._peers.get(peer_id)
        return peer.state if peer is not None else None

    def is_connected(self, peer_id: int) -> bool:
        peer = self._peers.get(peer_id)
        return peer is not None and peer.state is PeerState.CONNECTED

    @property
    def peers(self) -> dict[int, Address]:
        return {pid: p.address for pid, p in self._peers.items()}

    def _start_peer(self, peer: _Peer) -> None:
        peer.task = asyncio.get_running_loop().create_task(
            self._run_peer(peer), name=f"raftkv-peer-{self.id:x}-{peer.id:x}"
        )

    def _cancel_peer(self, peer: _Peer) -> None:
        if peer.task is not None:
            # Tracked so that stop() still waits for it to unwind.
            self._tasks.add(peer.task)
            peer.task.add_done_callback(self._tasks.discard)
            peer.task.cancel()
            peer.task = None
        peer.metrics.messages_dropped += len(peer.queue)
        peer.queue.clear()

    # ----------------------------------------------------------------------- send

    def send(self, msgs: Iterable[Message]) -> None:
        """Queue ``msgs`` for their peers; never blocks, never raises for a bad peer.

        Messages to an unknown id are counted and dropped. MsgSnap goes out on its own
        stream. For a peer that is down, or whose queue is full, the message is
        dropped and ``report_unreachable`` is called (once per peer per call).
        """
        if self._stopped:
            return
        peers = self._peers
        limit = self.config.queue_size
        unreachable: set[int] | None = None
        for m in msgs:
            peer = peers.get(m.to)
            if peer is None:
                self.metrics.messages_unknown_peer += 1
                log.debug(
                    "raftkv transport %x: dropped %s to unknown peer %x", self.id, m.type, m.to
                )
                continue
            if m.type == _MSG_SNAP:
                self._spawn(self._send_snapshot(peer, m), f"raftkv-snap-{self.id:x}-{peer.id:x}")
                continue
            q = peer.queue
            if peer.state is PeerState.DOWN or len(q) >= limit:
                peer.metrics.messages_dropped += 1
                if unreachable is None:
                    unreachable = set()
                unreachable.add(peer.id)
                if peer.state is not PeerState.DOWN and not peer.overflowing:
                    peer.overflowing = True
                    log.warning(
                        "raftkv transport %x: send queue to %x full (%d messages), dropping",
                        self.id,
                        peer.id,
                        limit,
                    )
                continue
            q.append(m)
            peer.wake.set()
        if unreachable:
            for pid in unreachable:
                self._defer(self._report_unreachable, pid)

    # ------------------------------------------------------------ callbacks, tasks

    def _defer(self, fn: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # send() before start(), outside any loop: no one to tell
                return
        loop.call_soon(self._invoke, fn, *args)

    def _invoke(self, fn: Callable[..., object], *args: Any) -> None:
        if self._stopped:
            return
        try:
            res = fn(*args)
        except Exception:
            log.exception("raftkv transport %x: callback %r failed", self.id, fn)
            return
        if inspect.isawaitable(res):
            self._spawn(_await(res), f"raftkv-callback-{self.id:x}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            log.error("raftkv transport %x: task %s failed: %r", self.id, task.get_name(), err)

    # -------------------------------------------------------------- dialling side

    async def _dial(
        self, peer: _Peer, stream: StreamKind
    ) -> tuple[asyncio.StreamWriter, FrameReader]:
        """Connect to ``peer`` and complete the handshake for ``stream``."""
        cfg = self.config
        host, port = peer.address
        async with asyncio.timeout(cfg.connect_timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=self._client_ssl,
                server_hostname=host if self._client_ssl is not None else None,
            )
        try:
            writer.write(Hello(PROTOCOL_VERSION, stream, cfg.cluster_id, self.id, peer.id).encode())
            fr = FrameReader(reader, MAX_HANDSHAKE_FRAME)
            async with asyncio.timeout(cfg.handshake_timeout):
                await writer.drain()
                kind, payload = await fr.read_frame()
            if kind == FrameKind.REJECT:
                raise HandshakeError("refused by peer: " + payload.decode("utf-8", "replace"))
            if kind != FrameKind.HELLO_ACK:
                raise FrameError(f"expected a handshake reply, got frame kind {kind}")
            ack = HelloAck.decode(payload)
            if ack.version != PROTOCOL_VERSION:
                raise HandshakeError(f"peer speaks protocol version {ack.version}")
            if ack.cluster_id != cfg.cluster_id or ack.receiver_id != peer.id:
                raise HandshakeError(
                    f"peer is {ack.receiver_id:x} of cluster {ack.cluster_id:x}, "
                    f"expected {peer.id:x} of cluster {cfg.cluster_id:x}"
                )
        except BaseException:
            writer.transport.abort()
            raise
        fr.max_size = cfg.max_frame_size
        return writer, fr

    async def _run_peer(self, peer: _Peer) -> None:
        """Keep a message stream to ``peer`` up for as long as it is a peer."""
        cfg = self.config
        attempt = 0
        host, port = peer.address
        while True:
            try:
                writer, fr = await self._dial(peer, StreamKind.MESSAGE)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                peer.metrics.connect_failures += 1
                self._peer_down(peer, "cannot connect to %s:%d: %s", host, port, _why(err))
                delay = backoff_delay(
                    attempt, cfg.backoff_initial, cfg.backoff_max, cfg.backoff_jitter, self._rng
                )
                attempt += 1
                await asyncio.sleep(delay)
                continue
            attempt = 0
            m = peer.metrics
            if m.connects:
                m.reconnects += 1
            m.connects += 1
            peer.state = PeerState.CONNECTED
            log.info(
                "raftkv transport %x: connected to peer %x at %s:%d", self.id, peer.id, host, port
            )
            reason = await self._pump(peer, writer, fr)
            self._peer_down(peer, "connection to %s:%d lost: %s", host, port, reason)
            await asyncio.sleep(
                backoff_delay(
                    0, cfg.backoff_initial, cfg.backoff_max, cfg.backoff_jitter, self._rng
                )
            )

    def _peer_down(self, peer: _Peer, fmt: str, *args: object) -> None:
        dropped = len(peer.queue)
        peer.queue.clear()
        peer.metrics.messages_dropped += dropped
        if peer.state is not PeerState.DOWN:
            log.warning(
                "raftkv transport %x: peer %x unreachable (" + fmt + "), dropping its messages",
                self.id,
                peer.id,
                *args,
            )
            peer.state = PeerState.DOWN
            self._defer(self._report_unreachable, peer.id)
        else:
            log.debug(
                "raftkv transport %x: peer %x still unreachable (" + fmt + ")",
                self.id,
                peer.id,
                *args,
            )
            if dropped:
                self._defer(self._report_unreachable, peer.id)

    async def _pump(self, peer: _Peer, writer: asyncio.StreamWriter, fr: FrameReader) -> str:
        """Write ``peer``'s queue in batches until the connection ends; return why."""
        max_frame = self.config.max_frame_size
        max_batch = self.config.max_batch_bytes
        q = peer.queue
        wake = peer.wake
        metrics = peer.metrics
        pack = HEADER.pack
        peer.broken = None
        wake.set()  # flush whatever was queued while connecting
        watcher = asyncio.get_running_loop().create_task(self._watch_eof(peer, fr))
        try:
            while True:
                await wake.wait()
                wake.clear()
                while q:
                    if peer.broken is not None:
                        return peer.broken
                    buf = bytearray()
                    n = 0
                    while q and len(buf) < max_batch:
                        m = q.popleft()
                        data = encode_message(m)
                        if len(data) > max_frame:
                            metrics.messages_dropped += 1
                            log.warning(
                                "raftkv transport %x: dropped %s to %x: %d bytes exceed max frame size %d",
                                self.id,
                                m.type,
                                peer.id,
                                len(data),
                                max_frame,
                            )
                            continue
                        buf += pack(len(data), _MSG_FRAME)
                        buf += data
                        n += 1
                    if n:
                        writer.write(buf)
                        metrics.writes += 1
                        metrics.messages_sent += n
                        metrics.bytes_sent += len(buf)
                        await writer.drain()
                peer.overflowing = False
                if peer.broken is not None:
                    return peer.broken
        except Exception as err:
            return f"write failed: {_why(err)}"
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await _close(writer)

    async def _watch_eof(self, peer: _Peer, fr: FrameReader) -> None:
        """The listener never writes on a message stream: any read result ends it."""
        try:
            kind, _ = await fr.read_frame()
            reason = f"unexpected frame kind {kind} from the listener"
        except EOFError:
            reason = "closed by peer"
        except (OSError, FrameError) as err:
            reason = _why(err)
        peer.broken = reason
        peer.wake.set()

    async def _send_snapshot(self, peer: _Peer, m: Message) -> None:
        """Stream one MsgSnap to ``peer`` and report the outcome."""
        cfg = self.config
        metrics = peer.metrics
        snap = m.snapshot if m.snapshot is not None else Snapshot()
        data = snap.data
        index = snap.metadata.index
        writer: asyncio.StreamWriter | None = None
        ok = False
        try:
            if len(data) > cfg.max_snapshot_size:
                raise ValueError(
                    f"snapshot of {len(data)} bytes exceeds max_snapshot_size {cfg.max_snapshot_size}"
                )
            head = SNAP_HEAD.pack(len(data)) + encode_message(
                replace(m, snapshot=replace(snap, data=b""))
            )
            if len(head) > cfg.max_frame_size:
                raise ValueError(f"snapshot header of {len(head)} bytes exceeds max frame size")
            log.info(
                "raftkv transport %x: sending snapshot [index %d, %d bytes] to %x",
                self.id,
                index,
                len(data),
                peer.id,
            )
            writer, fr = await self._dial(peer, StreamKind.SNAPSHOT)
            writer.write(encode_frame(FrameKind.SNAP_HEAD, head))
            view = memoryview(data)
            step = min(cfg.snapshot_chunk_size, cfg.max_frame_size)
            crc = 0
            for off in range(0, len(data), step):
                piece = view[off : off + step]
                crc = zlib.crc32(piece, crc)
                writer.write(HEADER.pack(len(piece), FrameKind.SNAP_CHUNK))
                writer.write(piece)
                # Draining per chunk bounds what sits in our buffers; drain() does not
                # yield while the socket keeps up, so yield explicitly to let the
                # message streams (and the raft loop) run between chunks.
                await writer.drain()
                await asyncio.sleep(0)
                metrics.snapshot_bytes_sent += len(piece)
            writer.write(encode_frame(FrameKind.SNAP_END, SNAP_END.pack(crc)))
            await writer.drain()
            async with asyncio.timeout(cfg.snapshot_ack_timeout):
                kind, payload = await fr.read_frame()
            if kind != FrameKind.SNAP_ACK or len(payload) < ACK.size:
                raise FrameError(f"expected a snapshot acknowledgement, got frame kind {kind}")
            if payload[0] != 0:
                raise SnapshotRejectedError(
                    "receiver refused the snapshot: "
                    + payload[ACK.size :].decode("utf-8", "replace")
                )
            ok = True
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning(
                "raftkv transport %x: failed to send snapshot [index %d] to %x: %s",
                self.id,
                index,
                peer.id,
                _why(err),
            )
        finally:
            if writer is not None:
                await _close(writer)
        if ok:
            metrics.snapshots_sent += 1
            log.info(
                "raftkv transport %x: snapshot [index %d] delivered to %x", self.id, index, peer.id
            )
            self._invoke(self._report_snapshot, peer.id, SnapshotStatus.SnapshotFinish)
        else:
            metrics.snapshots_failed += 1
            self._invoke(self._report_unreachable, peer.id)
            self._invoke(self._report_snapshot, peer.id, SnapshotStatus.SnapshotFailure)

    # -------------------------------------------------------------- listening side

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Handle one inbound connection: handshake, then its stream, then close."""
        if self._stopped:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._inbound[task] = 0
        self.metrics.connections_accepted += 1
        remote = writer.get_extra_info("peername")
        who = f"{remote[0]}:{remote[1]}" if isinstance(remote, tuple) else str(remote)
        try:
            if self._server_ssl is not None:
                try:
                    async with asyncio.timeout(self.config.connect_timeout):
                        await writer.start_tls(self._server_ssl)
                except (OSError, TimeoutError) as err:  # ssl.SSLError is an OSError
                    self.metrics.tls_handshakes_failed += 1
                    log.warning(
                        "raftkv transport %x: TLS handshake with %s failed: %s",
                        self.id,
                        who,
                        _why(err),
                    )
                    return
            hello = await self._accept(reader, writer, who)
            if hello is None:
                return
            self._inbound[task] = hello.sender_id
            who = f"peer {hello.sender_id:x} at {who}"
            fr = FrameReader(reader, self.config.max_frame_size)
            try:
                if hello.stream is StreamKind.MESSAGE:
                    await self._serve_messages(hello.sender_id, fr)
                else:
                    await self._serve_snapshot(hello.sender_id, fr, writer)
            except EOFError:
                log.debug("raftkv transport %x: %s closed its connection", self.id, who)
            except (FrameError, DecodeError, TimeoutError) as err:
                self.metrics.connections_rejected += 1
                log.warning(
                    "raftkv transport %x: closing connection from %s: %s", self.id, who, _why(err)
                )
            except OSError as err:
                log.info(
                    "raftkv transport %x: connection from %s failed: %s", self.id, who, _why(err)
                )
        except asyncio.CancelledError:
            # Cancelled by stop()/remove_peer(). Returning normally keeps asyncio's
            # start_server from reporting the cancellation as an error.
            pass
        except Exception:
            log.exception("raftkv transport %x: error serving %s", self.id, who)
        finally:
            # Still listed in _inbound while closing, so that stop() waits for it.
            with contextlib.suppress(asyncio.CancelledError):
                await _close(writer)
            self._inbound.pop(task, None)

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, who: str
    ) -> Hello | None:
        """Read and check the handshake; answer it. ``None`` if refused or closed."""
        cfg = self.config
        fr = FrameReader(reader, MAX_HANDSHAKE_FRAME, read_size=MAX_HANDSHAKE_FRAME)
        try:
            async with asyncio.timeout(cfg.handshake_timeout):
                kind, payload = await fr.read_frame()
            if kind != FrameKind.HELLO:
                raise FrameError(f"expected a handshake, got frame kind {kind}")
            hello = Hello.decode(payload)
        except EOFError:
            log.debug("raftkv transport %x: %s closed before the handshake", self.id, who)
            return None
        except (FrameError, TimeoutError, OSError) as err:
            await self._refuse(writer, who, f"bad handshake: {_why(err)}")
            return None
        if fr.buffered():
            # A dialler waits for our reply before sending anything else.
            await self._refuse(writer, who, "data sent before the handshake completed")
            return None
        if hello.version != PROTOCOL_VERSION:
            reason = f"protocol version {hello.version} not supported (want {PROTOCOL_VERSION})"
        elif hello.cluster_id != cfg.cluster_id:
            reason = f"cluster id mismatch: got {hello.cluster_id:x}, want {cfg.cluster_id:x}"
        elif hello.receiver_id != self.id:
            reason = (
                f"receiver id mismatch: sender expects {hello.receiver_id:x}, this is {self.id:x}"
            )
        elif hello.sender_id not in self._peers:
            reason = f"unknown sender id {hello.sender_id:x}"
        else:
            writer.write(HelloAck(PROTOCOL_VERSION, cfg.cluster_id, self.id).encode())
            await writer.drain()
            log.debug(
                "raftkv transport %x: accepted %s stream from %x (%s)",
                self.id,
                hello.stream.name.lower(),
                hello.sender_id,
                who,
            )
            return hello
        await self._refuse(writer, who, reason)
        return None

    async def _refuse(self, writer: asyncio.StreamWriter, who: str, reason: str) -> None:
        self.metrics.handshakes_refused += 1
        log.warning("raftkv transport %x: refused connection from %s: %s", self.id, who, reason)
        with contextlib.suppress(OSError):
            writer.write(encode_frame(FrameKind.REJECT, reason.encode()))
            await writer.drain()

    async def _serve_messages(self, sender: int, fr: FrameReader) -> None:
        """Deliver ``sender``'s messages until its stream ends or misbehaves."""
        metrics = self.metrics.peer(sender)
        on_message = self._on_message
        my_id = self.id
        while True:
            kind, payload = await fr.read_frame()
            if kind != _MSG_FRAME:
                raise FrameError(f"unexpected frame kind {kind} on a message stream")
            msg = decode_message(payload)
            if msg.from_ != sender or msg.to != my_id:
                raise FrameError(
                    f"message {msg.type} from {msg.from_:x} to {msg.to:x} on the stream "
                    f"from {sender:x} to {my_id:x}"
                )
            if is_local_msg(msg.type):
                raise FrameError(f"local message {msg.type} sent over the network")
            metrics.messages_received += 1
            metrics.bytes_received += HEADER_SIZE + len(payload)
            try:
                res = on_message(msg)
                if res is not None and inspect.isawaitable(res):
                    await res
            except Exception:
                # The node's problem, not the peer's: keep the connection.
                log.exception("raftkv transport %x: on_message failed for %s", my_id, msg.type)

    async def _serve_snapshot(
        self, sender: int, fr: FrameReader, writer: asyncio.StreamWriter
    ) -> None:
        """Receive one snapshot, deliver it, acknowledge it."""
        cfg = self.config
        metrics = self.metrics.peer(sender)
        idle = cfg.snapshot_idle_timeout
        try:
            async with asyncio.timeout(idle):
                kind, payload = await fr.read_frame()
            if kind != FrameKind.SNAP_HEAD or len(payload) < SNAP_HEAD.size:
                raise FrameError(f"expected a snapshot header, got frame kind {kind}")
            (total,) = SNAP_HEAD.unpack_from(payload)
            if total > cfg.max_snapshot_size:
                raise FrameError(
                    f"snapshot of {total} bytes exceeds max_snapshot_size {cfg.max_snapshot_size}"
                )
            msg = decode_message(memoryview(payload)[SNAP_HEAD.size :])
            if msg.type != _MSG_SNAP or msg.snapshot is None:
                raise FrameError(f"snapshot stream carries {msg.type}, not a snapshot")
            if msg.from_ != sender or msg.to != self.id:
                raise FrameError(
                    f"snapshot from {msg.from_:x} to {msg.to:x} on a stream from {sender:x}"
                )
            buf = bytearray()
            crc = 0
            while True:
                async with asyncio.timeout(idle):
                    kind, payload = await fr.read_frame()
                if kind == FrameKind.SNAP_CHUNK:
                    if len(buf) + len(payload) > total:
                        raise FrameError(f"snapshot data exceeds the announced {total} bytes")
                    buf += payload
                    crc = zlib.crc32(payload, crc)
                    metrics.snapshot_bytes_received += len(payload)
                elif kind == FrameKind.SNAP_END:
                    if len(payload) != SNAP_END.size:
                        raise FrameError("malformed snapshot trailer")
                    if len(buf) != total:
                        raise FrameError(f"snapshot ended after {len(buf)} of {total} bytes")
                    if SNAP_END.unpack(payload)[0] != crc:
                        raise FrameError("snapshot checksum mismatch")
                    break
                else:
                    raise FrameError(f"unexpected frame kind {kind} in a snapshot stream")
        except (FrameError, DecodeError) as err:
            # Tell the sender why, so it reports failure now rather than at a timeout.
            await _try_write(writer, _snap_ack(1, _why(err)))
            raise
        msg.snapshot.data = bytes(buf)
        del buf
        try:
            res = self._on_message(msg)
            if res is not None and inspect.isawaitable(res):
                await res
        except Exception as err:
            log.exception("raftkv transport %x: on_message failed for a snapshot", self.id)
            await _try_write(writer, _snap_ack(1, f"receiver failed to take the snapshot: {err!r}"))
            return
        metrics.snapshots_received += 1
        metrics.messages_received += 1
        log.info(
            "raftkv transport %x: received snapshot [index %d, %d bytes] from %x",
            self.id,
            msg.snapshot.metadata.index,
            len(msg.snapshot.data),
            sender,
        )
        writer.write(_snap_ack(0, ""))
        await writer.drain()


async def _close_server(server: asyncio.Server) -> None:
    """Stop accepting, let connections already accepted reach their handler, close.

    An accepted connection needs a few loop turns (accept task, ``connection_made``,
    handler task) before its handler runs. On Python 3.11, closing the server inside
    that window makes the accept task fail an assertion and leak the socket; and a
    handler that does start finds the transport stopped and closes at once. So the
    listening sockets stop being polled first, the loop turns a few times, and only
    then is the server closed.
    """
    loop = asyncio.get_running_loop()
    for sock in server.sockets:
        loop.remove_reader(sock.fileno())
    for _ in range(5):
        await asyncio.sleep(0)
    server.close()


def _snap_ack(status: int, reason: str) -> bytes:
    return encode_frame(FrameKind.SNAP_ACK, ACK.pack(status) + reason.encode())


async def _try_write(writer: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(OSError):
        writer.write(data)
        await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a stream without hanging on a dead peer or a TLS shutdown."""
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()
    except asyncio.CancelledError:
        # A TLS close waits for the peer's close_notify; nobody waits for us now.
        writer.transport.abort()
        raise


async def _await(aw: Awaitable[object]) -> None:
    await aw


def _why(err: BaseException) -> str:
    """A one-line reason for logs: the message, or the class name when it has none."""
    text = str(err)
    return text if text else type(err).__name__
