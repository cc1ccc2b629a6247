"""Tests of raftkv's peer transport (:mod:`raftkv.transport`, :mod:`raftkv.framing`).

Everything runs on 127.0.0.1 with real sockets, each test inside its own
``asyncio.run`` with a hard deadline well under five seconds, and each test ends by
checking that the transports it stopped left no task behind. Certificates for the
mutual-TLS tests are made at test time with the ``cryptography`` package.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import logging
import random
import socket
import ssl
import struct
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftcore.raftpb.codec import encode_message
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.rawnode import SnapshotStatus
from raftkv.framing import (
    ACK,
    HEADER,
    HELLO,
    MAX_HANDSHAKE_FRAME,
    PROTOCOL_VERSION,
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
from raftkv.transport import (
    PeerState,
    Transport,
    TransportConfig,
    backoff_delay,
)

pytestmark = pytest.mark.timeout(10)

DEADLINE = 4.5
CLUSTER = 0xC1


# ----------------------------------------------------------------------------- harness


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``body`` under a deadline, then check it left no task or socket open."""

    async def main() -> None:
        async with asyncio.timeout(DEADLINE):
            await body()
        me = asyncio.current_task()
        leaked = [t for t in asyncio.all_tasks() if t is not me]
        assert not leaked, f"tasks left running: {leaked}"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(main())
        gc.collect()  # unclosed sockets and transports warn when collected
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, f"resources left open: {unclosed}"


async def until(cond: Callable[[], bool], what: str = "condition", timeout: float = 3.0) -> None:
    """Poll ``cond`` until true; fail with ``what`` after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.002)
    assert cond(), what


class Node:
    """A transport plus everything its callbacks reported."""

    def __init__(self, node_id: int, cluster: int = CLUSTER, **cfg: Any) -> None:
        self.id = node_id
        self.received: list[Message] = []
        self.unreachable: list[int] = []
        self.snap_reports: list[tuple[int, SnapshotStatus]] = []
        cfg.setdefault("backoff_initial", 0.01)
        cfg.setdefault("backoff_max", 0.1)
        self.t = Transport(
            TransportConfig(id=node_id, cluster_id=cluster, **cfg),
            on_message=self.on_message,
            report_unreachable=self.unreachable.append,
            report_snapshot=lambda pid, st: self.snap_reports.append((pid, st)),
            rng=random.Random(node_id),
        )

    def on_message(self, m: Message) -> object:
        self.received.append(m)
        return None

    @property
    def addr(self) -> tuple[str, int]:
        return self.t.address

    def of_type(self, t: MessageType) -> list[Message]:
        return [m for m in self.received if m.type == t]


async def cluster(*nodes: Node) -> None:
    """Start ``nodes``, make them all peers, wait until every stream is up."""
    for n in nodes:
        await n.t.start()
    for n in nodes:
        for p in nodes:
            if p is not n:
                n.t.add_peer(p.id, p.addr)
    await until(
        lambda: all(n.t.is_connected(p.id) for n in nodes for p in nodes if p is not n),
        "all streams up",
    )


async def stop(*nodes: Node) -> None:
    for n in nodes:
        await n.t.stop()


def hb(frm: int, to: int, commit: int = 0, term: int = 1) -> Message:
    return Message(type=MessageType.MsgHeartbeat, from_=frm, to=to, term=term, commit=commit)


def app(frm: int, to: int, index: int, n: int) -> Message:
    ents = [Entry(term=2, index=index + 1 + k, data=b"x%d" % k) for k in range(n)]
    return Message(
        type=MessageType.MsgApp,
        from_=frm,
        to=to,
        term=2,
        log_term=2,
        index=index,
        commit=index,
        entries=ents,
    )


def snap_msg(frm: int, to: int, data: bytes, index: int = 100) -> Message:
    meta = SnapshotMetadata(conf_state=ConfState(voters=[1, 2, 3]), index=index, term=3)
    return Message(
        type=MessageType.MsgSnap,
        from_=frm,
        to=to,
        term=3,
        snapshot=Snapshot(data=data, metadata=meta),
    )


def wire(m: Message) -> bytes:
    return encode_message(m)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def raw_handshake(
    addr: tuple[str, int], sender: int, receiver: int, stream: StreamKind = StreamKind.MESSAGE
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
    """Dial like a peer would, by hand; return the streams and the reply frame."""
    reader, writer = await asyncio.open_connection(*addr)
    writer.write(Hello(PROTOCOL_VERSION, stream, CLUSTER, sender, receiver).encode())
    await writer.drain()
    kind, payload = await FrameReader(reader, MAX_HANDSHAKE_FRAME).read_frame()
    return reader, writer, kind, payload


class FakePeer:
    """A hand-written listener for protocol tests; ``close()`` ends its connections."""

    def __init__(
        self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> None:
        self._handler = handler
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._run, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def _run(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(r, w)
        except (asyncio.CancelledError, ConnectionError, EOFError, FrameError):
            pass
        finally:
            self._tasks.discard(task)
            w.transport.abort()

    async def close(self) -> None:
        assert self._server is not None
        # Same care as Transport.stop(): no accept may be in flight at close().
        loop = asyncio.get_running_loop()
        for sock in self._server.sockets:
            loop.remove_reader(sock.fileno())
        for _ in range(5):
            await asyncio.sleep(0)
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the aborted transports release their sockets


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the other side has closed (reads drain to EOF)."""
    async with asyncio.timeout(2):
        while await reader.read(65536):
            pass
    return True


# ---------------------------------------------------------------------- basic exchange


def test_two_transports_exchange_messages() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        to_b = [hb(1, 2, commit=5), app(1, 2, 5, 3), hb(1, 2, commit=8)]
        to_a = [Message(type=MessageType.MsgAppResp, from_=2, to=1, term=2, index=8)]
        a.t.send(to_b)
        b.t.send(to_a)
        await until(lambda: len(b.received) == 3 and len(a.received) == 1)
        assert [wire(m) for m in b.received] == [wire(m) for m in to_b]
        assert [wire(m) for m in a.received] == [wire(m) for m in to_a]
        ma, mb = a.t.metrics.peer(2), b.t.metrics.peer(1)
        assert ma.messages_sent == 3 and mb.messages_received == 3
        assert ma.bytes_sent == mb.bytes_received == sum(len(wire(m)) + 5 for m in to_b)
        assert ma.connects == 1 and ma.reconnects == 0 and ma.messages_dropped == 0
        assert a.unreachable == [] and b.unreachable == []
        assert a.t.metrics.as_dict()["peers"][2]["messages_sent"] == 3
        await stop(a, b)
        await a.t.stop()  # idempotent
        a.t.send([hb(1, 2)])  # no-op after stop

    run(body)


def test_three_transports_all_to_all() -> None:
    async def body() -> None:
        nodes = [Node(1), Node(2), Node(3)]
        await cluster(*nodes)
        for n in nodes:
            n.t.send([hb(n.id, p.id, commit=10 * n.id + p.id) for p in nodes if p is not n])
        await until(lambda: all(len(n.received) == 2 for n in nodes))
        for n in nodes:
            got = sorted((m.from_, m.commit) for m in n.received)
            assert got == sorted((p.id, 10 * p.id + n.id) for p in nodes if p is not n)
            assert all(m.to == n.id for m in n.received)
        await stop(*nodes)

    run(body)


def test_async_on_message_is_awaited_in_order() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        seen: list[int] = []

        async def slow(m: Message) -> None:
            await asyncio.sleep(0)
            seen.append(m.commit)

        b.t._on_message = slow
        await cluster(a, b)
        a.t.send([hb(1, 2, commit=i) for i in range(50)])
        await until(lambda: len(seen) == 50)
        assert seen == list(range(50))
        await stop(a, b)

    run(body)


def test_unknown_destination_is_counted_and_dropped() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        a.t.send([hb(1, 7), hb(1, 2)])
        await until(lambda: len(b.received) == 1)
        assert a.t.metrics.messages_unknown_peer == 1
        await asyncio.sleep(0)
        assert a.unreachable == []
        await stop(a, b)

    run(body)


# ------------------------------------------------------------------------------ batching


def test_batching_many_messages_in_few_writes() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        m = a.t.metrics.peer(2)
        writes0 = m.writes
        a.t.send([hb(1, 2, commit=i) for i in range(2000)])
        await until(lambda: len(b.received) == 2000)
        assert [x.commit for x in b.received] == list(range(2000))
        assert m.messages_sent == 2000
        assert m.writes - writes0 == 1  # one wake-up, one write

        # Several send() calls between two wake-ups of the writer share one write.
        writes1 = m.writes
        for k in range(10):
            a.t.send([hb(1, 2, commit=3000 + 100 * k + i) for i in range(100)])
        await until(lambda: len(b.received) == 3000)
        assert m.writes - writes1 == 1
        await stop(a, b)

    run(body)


def test_batches_are_cut_at_max_batch_bytes() -> None:
    async def body() -> None:
        a, b = Node(1, max_batch_bytes=4096), Node(2)
        await cluster(a, b)
        m = a.t.metrics.peer(2)
        writes0 = m.writes
        msgs = [app(1, 2, 10 * i, 4) for i in range(200)]
        size = sum(len(wire(x)) + 5 for x in msgs)
        a.t.send(msgs)
        await until(lambda: len(b.received) == 200)
        writes = m.writes - writes0
        assert size // 4096 <= writes <= size // 4096 + 2
        await stop(a, b)

    run(body)


# ----------------------------------------------------------------- unreachable, reconnect


def test_peer_down_drops_and_reports_then_reconnects() -> None:
    async def body() -> None:
        port = free_port()
        a = Node(1)
        await a.t.start()
        a.t.add_peer(2, ("127.0.0.1", port))
        await until(lambda: a.t.peer_state(2) is PeerState.DOWN, "peer 2 marked down")
        await until(lambda: 2 in a.unreachable)
        n0 = len(a.unreachable)
        a.t.send([hb(1, 2), hb(1, 2)])
        ma = a.t.metrics.peer(2)
        assert ma.messages_dropped >= 2
        await asyncio.sleep(0)
        assert len(a.unreachable) >= n0 + 1 and set(a.unreachable) == {2}
        assert ma.connect_failures >= 1 and ma.connects == 0

        # The peer comes up on that port: the transport reconnects by itself.
        b = Node(2, port=port)
        await b.t.start()
        b.t.add_peer(1, a.addr)
        await until(lambda: a.t.is_connected(2), "reconnected to 2")
        a.t.send([hb(1, 2, commit=42)])
        await until(lambda: [m.commit for m in b.received] == [42])
        assert ma.connects == 1

        # It goes away again: detected without sending anything, then back once more.
        n1 = len(a.unreachable)
        await b.t.stop()
        await until(lambda: a.t.peer_state(2) is PeerState.DOWN, "loss detected")
        await until(lambda: len(a.unreachable) > n1)
        b2 = Node(2, port=port)
        await b2.t.start()
        b2.t.add_peer(1, a.addr)
        await until(lambda: a.t.is_connected(2), "reconnected again")
        a.t.send([hb(1, 2, commit=43)])
        await until(lambda: [m.commit for m in b2.received] == [43])
        assert ma.connects == 2 and ma.reconnects == 1
        await stop(a, b2)

    run(body)


def test_queue_overflow_drops_and_reports(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        a, b = Node(1, queue_size=10), Node(2)
        await cluster(a, b)
        a.t.send([hb(1, 2, commit=i) for i in range(50)])
        m = a.t.metrics.peer(2)
        assert m.messages_dropped == 40
        assert a.unreachable == []  # deferred, never called inside send()
        await until(lambda: len(b.received) == 10)
        assert [x.commit for x in b.received] == list(range(10))
        assert a.unreachable == [2]  # once per send() call, not per message
        assert a.t.is_connected(2)  # overflow does not tear the stream down
        # After the queue drained, sending works again.
        a.t.send([hb(1, 2, commit=99)])
        await until(lambda: len(b.received) == 11)
        await stop(a, b)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    assert sum("send queue to 2 full" in r.getMessage() for r in caplog.records) == 1


def test_remove_peer_closes_both_directions(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        a.t.remove_peer(2)
        assert a.t.peer_state(2) is None
        # b's stream to a is closed by a, and b's redial is refused: a forgot it.
        await until(lambda: b.t.peer_state(1) is PeerState.DOWN)
        await until(lambda: a.t.metrics.handshakes_refused >= 1)
        b.t.send([hb(2, 1)])
        await asyncio.sleep(0.05)
        assert a.received == []
        await stop(a, b)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    assert any("unknown sender id 2" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- snapshots


def test_snapshot_streamed_in_chunks_without_stalling_messages() -> None:
    async def body() -> None:
        a, b = Node(1, snapshot_chunk_size=64 * 1024), Node(2)
        order: list[MessageType] = []

        def record(m: Message) -> None:
            order.append(m.type)
            b.received.append(m)

        b.t._on_message = record
        await cluster(a, b)
        data = random.Random(7).randbytes(4 * 1024 * 1024 + 123)
        a.t.send([snap_msg(1, 2, data), hb(1, 2, commit=1)])
        await until(lambda: a.snap_reports != [], "snapshot reported", timeout=4)
        assert a.snap_reports == [(2, SnapshotStatus.SnapshotFinish)]
        snaps = b.of_type(MessageType.MsgSnap)
        assert len(snaps) == 1
        got = snaps[0]
        assert got.snapshot is not None and got.snapshot.data == data
        assert wire(got) == wire(snap_msg(1, 2, data))
        # The heartbeat sent after the snapshot did not wait for it.
        assert order == [MessageType.MsgHeartbeat, MessageType.MsgSnap]
        ma, mb = a.t.metrics.peer(2), b.t.metrics.peer(1)
        assert ma.snapshots_sent == 1 and ma.snapshot_bytes_sent == len(data)
        assert mb.snapshots_received == 1 and mb.snapshot_bytes_received == len(data)
        assert a.unreachable == []
        await stop(a, b)

    run(body)


def test_empty_snapshot_data_round_trips() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        a.t.send([snap_msg(1, 2, b"")])
        await until(lambda: a.snap_reports != [])
        assert a.snap_reports == [(2, SnapshotStatus.SnapshotFinish)]
        assert wire(b.of_type(MessageType.MsgSnap)[0]) == wire(snap_msg(1, 2, b""))
        await stop(a, b)

    run(body)


def test_snapshot_failure_when_receiver_dies_mid_stream() -> None:
    """A fake peer takes the handshake and the first chunk, then drops dead."""

    async def body() -> None:
        got_chunk = asyncio.Event()

        async def fake_peer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            fr = FrameReader(r, 1 << 24)
            kind, payload = await fr.read_frame()
            hello = Hello.decode(payload)
            w.write(HelloAck(PROTOCOL_VERSION, CLUSTER, 2).encode())
            if hello.stream is StreamKind.SNAPSHOT:
                kind, _ = await fr.read_frame()
                assert kind == FrameKind.SNAP_HEAD
                kind, _ = await fr.read_frame()
                assert kind == FrameKind.SNAP_CHUNK
                got_chunk.set()
                return  # FakePeer aborts the connection
            await r.read()  # message stream: idle until closed

        fake = FakePeer(fake_peer)
        addr = await fake.start()
        a = Node(1, snapshot_chunk_size=32 * 1024)
        await a.t.start()
        a.t.add_peer(2, addr)
        await until(lambda: a.t.is_connected(2))
        a.t.send([snap_msg(1, 2, bytes(3 * 1024 * 1024))])
        await asyncio.wait_for(got_chunk.wait(), 2)
        await until(lambda: a.snap_reports != [])
        assert a.snap_reports == [(2, SnapshotStatus.SnapshotFailure)]
        assert 2 in a.unreachable
        m = a.t.metrics.peer(2)
        assert m.snapshots_failed == 1 and m.snapshots_sent == 0
        await a.t.stop()
        await fake.close()

    run(body)


def test_snapshot_failure_when_receiver_stops_before_acknowledging() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        taken = asyncio.Event()
        never = asyncio.Event()

        async def hang_on_snapshot(m: Message) -> None:
            if m.type == MessageType.MsgSnap:
                taken.set()
                await never.wait()

        b.t._on_message = hang_on_snapshot
        await cluster(a, b)
        a.t.send([snap_msg(1, 2, bytes(1024 * 1024))])
        await asyncio.wait_for(taken.wait(), 2)
        await b.t.stop()
        await until(lambda: a.snap_reports != [])
        assert a.snap_reports == [(2, SnapshotStatus.SnapshotFailure)]
        await a.t.stop()

    run(body)


def test_snapshot_refused_by_receiving_node() -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)

        def refuse(m: Message) -> None:
            raise RuntimeError("node stopped")

        b.t._on_message = refuse
        await cluster(a, b)
        a.t.send([snap_msg(1, 2, b"abc" * 1000)])
        await until(lambda: a.snap_reports != [])
        assert a.snap_reports == [(2, SnapshotStatus.SnapshotFailure)]
        assert a.t.metrics.peer(2).snapshots_failed == 1
        await stop(a, b)

    run(body)


def test_snapshot_to_unreachable_peer_fails() -> None:
    async def body() -> None:
        a = Node(1)
        await a.t.start()
        a.t.add_peer(2, ("127.0.0.1", free_port()))
        a.t.send([snap_msg(1, 2, b"data")])
        await until(lambda: a.snap_reports != [])
        assert a.snap_reports == [(2, SnapshotStatus.SnapshotFailure)]
        await a.t.stop()

    run(body)


def test_snapshot_receiver_rejects_corrupt_stream(caplog: pytest.LogCaptureFixture) -> None:
    """Checksum, size and framing are checked before the snapshot reaches the node."""

    async def send_stream(addr: tuple[str, int], frames: list[bytes]) -> tuple[int, bytes]:
        r, w, kind, _ = await raw_handshake(addr, 2, 1, StreamKind.SNAPSHOT)
        assert kind == FrameKind.HELLO_ACK
        for f in frames:
            w.write(f)
        await w.drain()
        reply = await FrameReader(r, 1 << 20).read_frame()
        w.close()
        return reply

    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        head = encode_frame(
            FrameKind.SNAP_HEAD,
            SNAP_HEAD.pack(4) + wire(snap_msg(2, 1, b"")),
        )
        chunk = encode_frame(FrameKind.SNAP_CHUNK, b"abcd")
        bad_crc = encode_frame(FrameKind.SNAP_END, struct.pack(">I", 12345))
        too_much = encode_frame(FrameKind.SNAP_CHUNK, b"abcde")
        for frames, why in [
            ([head, chunk, bad_crc], "checksum mismatch"),
            ([head, too_much], "exceeds the announced"),
            ([encode_frame(FrameKind.MESSAGE, wire(hb(2, 1)))], "expected a snapshot header"),
        ]:
            kind, payload = await send_stream(a.addr, frames)
            assert kind == FrameKind.SNAP_ACK and payload[0] != 0
            assert why in payload[ACK.size :].decode()
        assert a.of_type(MessageType.MsgSnap) == []
        assert a.t.metrics.connections_rejected == 3
        await stop(a, b)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)


# ---------------------------------------------------------------------------- handshake


def test_handshake_refuses_other_cluster(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        a, c = Node(1), Node(2, cluster=0x99)
        await a.t.start()
        await c.t.start()
        a.t.add_peer(2, c.addr)
        c.t.add_peer(1, a.addr)
        await until(lambda: 1 in c.unreachable and 2 in a.unreachable)
        await until(lambda: a.t.metrics.handshakes_refused >= 1)
        await until(lambda: c.t.metrics.handshakes_refused >= 1)
        c.t.send([hb(2, 1)])
        a.t.send([hb(1, 2)])
        await asyncio.sleep(0.05)
        assert a.received == [] and c.received == []
        assert not a.t.is_connected(2) and not c.t.is_connected(1)
        await stop(a, c)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(
        "refused connection" in m and "cluster id mismatch: got 99, want c1" in m for m in msgs
    )
    assert any("refused by peer: cluster id mismatch" in m for m in msgs)


def test_handshake_refuses_unknown_sender_and_wrong_receiver(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        a = Node(1)
        await a.t.start()
        d = Node(3)  # a does not know 3
        await d.t.start()
        d.t.add_peer(1, a.addr)
        e = Node(4)  # e believes peer 5 lives at a's address
        await e.t.start()
        a.t.add_peer(4, e.addr)
        e.t.add_peer(5, a.addr)
        await until(lambda: 1 in d.unreachable and 5 in e.unreachable)
        await until(lambda: a.t.metrics.handshakes_refused >= 2)
        d.t.send([hb(3, 1)])
        e.t.send([hb(4, 5)])
        await asyncio.sleep(0.05)
        assert a.received == []
        await stop(a, d, e)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    msgs = [r.getMessage() for r in caplog.records]
    assert any("unknown sender id 3" in m for m in msgs)
    assert any("receiver id mismatch: sender expects 5, this is 1" in m for m in msgs)


@pytest.mark.parametrize(
    ("first_bytes", "why"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "exceeds the limit of 1024"),
        (encode_frame(FrameKind.MESSAGE, b""), "expected a handshake"),
        (encode_frame(FrameKind.HELLO, b"\x00" * HELLO.size), "bad protocol magic"),
        (
            Hello(PROTOCOL_VERSION + 1, StreamKind.MESSAGE, CLUSTER, 2, 1).encode(),
            "protocol version",
        ),
    ],
)
def test_handshake_refuses_garbage(
    first_bytes: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        r, w = await asyncio.open_connection(*a.addr)
        w.write(first_bytes)
        await w.drain()
        kind, payload = await FrameReader(r, MAX_HANDSHAKE_FRAME).read_frame()
        assert kind == FrameKind.REJECT and why in payload.decode()
        assert await closed_by_peer(r)
        w.close()
        # The legitimate stream is untouched.
        b.t.send([hb(2, 1, commit=3)])
        await until(lambda: [m.commit for m in a.received] == [3])
        assert a.t.metrics.handshakes_refused == 1
        await stop(a, b)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    assert any(why in r.getMessage() for r in caplog.records)


def test_dialler_checks_the_listener_identity(caplog: pytest.LogCaptureFixture) -> None:
    """A listener answering as another id than the one dialled is not trusted."""

    async def body() -> None:
        async def impostor(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await FrameReader(r, MAX_HANDSHAKE_FRAME).read_frame()
            w.write(HelloAck(PROTOCOL_VERSION, CLUSTER, 9).encode())
            await r.read()

        fake = FakePeer(impostor)
        addr = await fake.start()
        a = Node(1)
        await a.t.start()
        a.t.add_peer(2, addr)
        await until(lambda: 2 in a.unreachable)
        assert a.t.peer_state(2) is PeerState.DOWN
        await a.t.stop()
        await fake.close()

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    assert any("peer is 9 of cluster c1, expected 2" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------- malformed frames


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (encode_frame(FrameKind.MESSAGE, b"\x08\xff\xff"), "cannot decode Message"),
        (encode_frame(FrameKind.MESSAGE, b"\x0a\x05ab"), "cannot decode Message"),
        (HEADER.pack(64 * 1024 + 1, FrameKind.MESSAGE), "exceeds the limit of 65536"),
        (HEADER.pack(0xFFFFFFFF, FrameKind.MESSAGE), "exceeds the limit"),
        (encode_frame(99, b"zz"), "unexpected frame kind 99"),
        (encode_frame(FrameKind.MESSAGE, wire(hb(3, 1))), "from 3 to 1 on the stream from 2"),
        (encode_frame(FrameKind.MESSAGE, wire(hb(2, 4))), "from 2 to 4 on the stream from 2"),
        (
            encode_frame(FrameKind.MESSAGE, wire(Message(type=MessageType.MsgHup, from_=2, to=1))),
            "local message",
        ),
    ],
)
def test_malformed_frame_closes_only_that_connection(
    frame: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        a, b = Node(1, max_frame_size=64 * 1024), Node(2)
        await cluster(a, b)
        # A second stream claiming to be peer 2, which then misbehaves.
        r, w, kind, _ = await raw_handshake(a.addr, 2, 1)
        assert kind == FrameKind.HELLO_ACK
        w.write(encode_frame(FrameKind.MESSAGE, wire(hb(2, 1, commit=1))) + frame)
        await w.drain()
        assert await closed_by_peer(r)
        w.close()
        assert [m.commit for m in a.received] == [1]  # the good frame before it counted
        assert a.t.metrics.connections_rejected == 1
        # The real stream from b, and a's stream to b, carry on.
        b.t.send([hb(2, 1, commit=2)])
        a.t.send([hb(1, 2, commit=3)])
        await until(lambda: [m.commit for m in a.received] == [1, 2])
        await until(lambda: [m.commit for m in b.received] == [3])
        assert a.t.is_connected(2) and b.t.is_connected(1)
        await stop(a, b)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    assert any(
        "closing connection from peer 2" in r.getMessage() and why in r.getMessage()
        for r in caplog.records
    )


def test_truncated_frame_then_close(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        a, b = Node(1), Node(2)
        await cluster(a, b)
        _, w, _, _ = await raw_handshake(a.addr, 2, 1)
        w.write(HEADER.pack(100, FrameKind.MESSAGE) + b"abc")
        await w.drain()
        w.close()
        await until(lambda: a.t.metrics.connections_rejected == 1)
        b.t.send([hb(2, 1, commit=5)])
        await until(lambda: [m.commit for m in a.received] == [5])
        await stop(a, b)

    with caplog.at_level(logging.WARNING, logger="raftkv.transport"):
        run(body)
    assert any("inside a frame (8 of 105 bytes)" in r.getMessage() for r in caplog.records)


def test_oversized_outgoing_message_is_dropped_not_sent() -> None:
    async def body() -> None:
        a, b = Node(1, max_frame_size=2048), Node(2)
        await cluster(a, b)
        big = Message(
            type=MessageType.MsgApp, from_=1, to=2, entries=[Entry(index=1, data=bytes(4096))]
        )
        a.t.send([big, hb(1, 2, commit=7)])
        await until(lambda: len(b.received) == 1)
        assert b.received[0].commit == 7
        assert a.t.metrics.peer(2).messages_dropped == 1
        await stop(a, b)

    run(body)


# -------------------------------------------------------------------------- mutual TLS


@dataclass
class PKI:
    ca: Path
    certs: dict[str, tuple[Path, Path]]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path, ca_name: str, leaves: list[str]) -> PKI:
    """A CA and leaf certificates for 127.0.0.1/localhost, usable as server and client."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / f"{ca_name}.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs: dict[str, tuple[Path, Path]] = {}
    for leaf in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(leaf))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path = directory / f"{ca_name}-{leaf}.crt"
        key_path = directory / f"{ca_name}-{leaf}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        certs[leaf] = (cert_path, key_path)
    return PKI(ca_path, certs)


@pytest.fixture(scope="module")
def pkis(tmp_path_factory: pytest.TempPathFactory) -> tuple[PKI, PKI]:
    d = tmp_path_factory.mktemp("pki")
    return make_pki(d, "ca-one", ["n1", "n2"]), make_pki(d, "ca-two", ["n2"])


def tls_for(pki: PKI, leaf: str) -> TLSConfig:
    cert, key = pki.certs[leaf]
    return TLSConfig(str(cert), str(key), str(pki.ca))


def test_mutual_tls_exchange(pkis: tuple[PKI, PKI]) -> None:
    one, _ = pkis

    async def body() -> None:
        a = Node(1, tls=tls_for(one, "n1"))
        b = Node(2, tls=tls_for(one, "n2"))
        await cluster(a, b)
        a.t.send([app(1, 2, 0, 2)])
        b.t.send([hb(2, 1, commit=9)])
        await until(lambda: len(a.received) == 1 and len(b.received) == 1)
        assert wire(b.received[0]) == wire(app(1, 2, 0, 2))
        data = bytes(range(256)) * 4096
        a.t.send([snap_msg(1, 2, data)])
        await until(lambda: a.snap_reports != [])
        assert a.snap_reports == [(2, SnapshotStatus.SnapshotFinish)]
        snap = b.of_type(MessageType.MsgSnap)[0].snapshot
        assert snap is not None and snap.data == data
        await stop(a, b)

    run(body)


def test_mutual_tls_fails_with_wrong_ca(pkis: tuple[PKI, PKI]) -> None:
    one, two = pkis

    async def body() -> None:
        a = Node(1, tls=tls_for(one, "n1"))
        b = Node(2, tls=tls_for(two, "n2"))  # signed by, and trusting, another CA
        await a.t.start()
        await b.t.start()
        a.t.add_peer(2, b.addr)
        b.t.add_peer(1, a.addr)
        await until(lambda: 2 in a.unreachable and 1 in b.unreachable)
        assert a.t.metrics.peer(2).connect_failures >= 1
        assert b.t.metrics.peer(1).connect_failures >= 1
        a.t.send([hb(1, 2)])
        b.t.send([hb(2, 1)])
        await asyncio.sleep(0.05)
        assert a.received == [] and b.received == []
        assert a.t.metrics.peer(2).connects == 0 and b.t.metrics.peer(1).connects == 0
        await stop(a, b)

    run(body)


def test_tls_listener_refuses_plain_tcp_and_certless_clients(pkis: tuple[PKI, PKI]) -> None:
    one, _ = pkis

    async def body() -> None:
        a = Node(1, tls=tls_for(one, "n1"))
        b = Node(2)  # no TLS at all
        await a.t.start()
        await b.t.start()
        b.t.add_peer(1, a.addr)
        a.t.add_peer(2, b.addr)
        await until(lambda: 1 in b.unreachable and 2 in a.unreachable)
        # A TLS client that presents no certificate is refused too (with TLS 1.3 the
        # client learns it only when it reads).
        ctx = ssl.create_default_context(cafile=str(one.ca))
        w: asyncio.StreamWriter | None = None
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            r, w = await asyncio.open_connection(*a.addr, ssl=ctx, server_hostname="127.0.0.1")
            w.write(Hello(PROTOCOL_VERSION, StreamKind.MESSAGE, CLUSTER, 2, 1).encode())
            await w.drain()
            await r.readexactly(1)
        if w is not None:
            w.transport.abort()
        assert a.received == []
        await stop(a, b)

    run(body)


# ------------------------------------------------------------------------ unit-level bits


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(1)
    for attempt in range(200):
        d = backoff_delay(attempt, 0.1, 5.0, 0.5, rng)
        full = min(5.0, 0.1 * 2**attempt)
        assert full * 0.5 <= d <= full
    no_jitter = [backoff_delay(k, 0.1, 1.0, 0.0, rng) for k in range(6)]
    assert no_jitter == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    # Jitter actually spreads peers apart.
    assert len({backoff_delay(3, 0.1, 5.0, 0.5, rng) for _ in range(20)}) > 1


def test_hello_round_trip_and_rejects() -> None:
    h = Hello(PROTOCOL_VERSION, StreamKind.SNAPSHOT, 2**64 - 1, 7, 9)
    frame = h.encode()
    length, kind = HEADER.unpack_from(frame)
    assert kind == FrameKind.HELLO and length == len(frame) - 5
    assert Hello.decode(frame[5:]) == h
    with pytest.raises(FrameError, match="magic"):
        Hello.decode(b"XXXX" + frame[9:])
    with pytest.raises(FrameError, match="stream kind"):
        Hello.decode(frame[5:11] + b"\x07" + frame[12:])
    with pytest.raises(FrameError, match="handshake of 3 bytes"):
        Hello.decode(b"abc")
    ack = HelloAck(1, 2, 3)
    assert HelloAck.decode(ack.encode()[5:]) == ack
    with pytest.raises(FrameError):
        HelloAck.decode(b"")


def test_frame_reader_splits_coalesced_and_fragmented_input() -> None:
    async def body() -> None:
        reader = asyncio.StreamReader()
        frames = [encode_frame(FrameKind.MESSAGE, bytes([i]) * i) for i in range(40)]
        blob = b"".join(frames)
        for k in range(0, len(blob), 7):  # awkward fragment boundaries
            reader.feed_data(blob[k : k + 7])
        reader.feed_eof()
        fr = FrameReader(reader, 1024, read_size=16)
        for i in range(40):
            assert await fr.read_frame() == (FrameKind.MESSAGE, bytes([i]) * i)
        with pytest.raises(EOFError):
            await fr.read_frame()

        over = asyncio.StreamReader()
        over.feed_data(HEADER.pack(1025, 4))
        with pytest.raises(FrameError, match="exceeds the limit of 1024"):
            await FrameReader(over, 1024).read_frame()

    run(body)


def test_config_validation() -> None:
    for bad in (
        {"id": 0},
        {"max_frame_size": 10},
        {"snapshot_chunk_size": 0},
        {"queue_size": 0},
        {"backoff_initial": 0.0},
        {"backoff_initial": 2.0, "backoff_max": 1.0},
        {"backoff_jitter": 1.5},
    ):
        kw: dict[str, Any] = {"id": 1, "cluster_id": 1, **bad}
        with pytest.raises(ValueError):
            TransportConfig(**kw).validate()
    TransportConfig(id=1, cluster_id=1).validate()


def test_add_peer_rejects_self_and_zero() -> None:
    async def body() -> None:
        a = Node(1)
        with pytest.raises(ValueError):
            a.t.add_peer(1, ("127.0.0.1", 1))
        with pytest.raises(ValueError):
            a.t.add_peer(0, ("127.0.0.1", 1))
        await a.t.start()
        with pytest.raises(RuntimeError):
            await a.t.start()
        await a.t.stop()

    run(body)
