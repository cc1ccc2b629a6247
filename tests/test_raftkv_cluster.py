"""raftkv as people run it: members as separate processes on 127.0.0.1.

Every test starts its own members (``python -m raftkv serve``) on free ports under
``tmp_path`` through :class:`raftkv.localcluster.LocalCluster`, which kills them all
when the test ends, passes or not; the members' logs are printed on the way out (pytest
shows them for failing tests). Each test is bounded well under 60 seconds.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from raftcore.raftpb.codec import encode_message
from raftcore.raftpb.types import Message, MessageType
from raftkv.client import ClientError, KVClient
from raftkv.cluster import parse_cluster_id
from raftkv.framing import HEADER, PROTOCOL_VERSION, FrameKind, Hello, StreamKind, encode_frame
from raftkv.localcluster import LocalCluster

pytestmark = pytest.mark.timeout(60)

TICK_MS = 30
CLUSTER_TOKEN = "raftkv-test"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(
        tmp_path,
        tick_ms=TICK_MS,
        election_ticks=10,
        request_timeout=4.0,
        cluster_id=CLUSTER_TOKEN,
    )
    try:
        yield c
    finally:
        c.close()
        for mid in sorted(c.members):
            print(f"----- member {mid} -----\n{c.log_text(mid)[-6000:]}")


def run(body: Callable[[], Awaitable[None]], timeout: float = 50.0) -> None:
    async def main() -> None:
        async with asyncio.timeout(timeout):
            await body()

    asyncio.run(main())


async def start_cluster(c: LocalCluster, ids: list[int]) -> int:
    for i in ids:
        c.define(i)
    for i in ids:
        c.start(i)
    leader, _ = await c.wait_for_leader(ids)
    return leader


async def put_all(client: KVClient, items: dict[str, bytes], endpoint: str | None = None) -> None:
    for k, v in items.items():
        await client.put(k, v, endpoint=endpoint)


async def check_all(
    client: KVClient, items: dict[str, bytes], endpoint: str, serializable: bool = False
) -> None:
    for k, v in items.items():
        got = await client.get(k, endpoint=endpoint, serializable=serializable)
        assert got is not None, f"{k} missing on {endpoint}"
        assert got["value"] == v, (k, got, endpoint)


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m is not None, f"{name} not in metrics"
    return float(m.group(1))


def raftkv_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run(
        [sys.executable, "-m", "raftkv", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


# --------------------------------------------------------------------------- tests


def test_three_members_write_and_read_linearizably(cluster: LocalCluster) -> None:
    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        eps = {i: cluster.members[i].endpoint for i in ids}
        async with cluster.client(ids) as client:
            # Writes through every member (followers hand them to the leader); each is
            # readable at once, linearizably, from every member.
            for n in range(15):
                writer = ids[n % 3]
                key, value = f"k{n}", f"v{n}".encode()
                res = await client.put(key, value, endpoint=eps[writer])
                for reader in ids:
                    got = await client.get(key, endpoint=eps[reader])
                    assert got is not None and got["value"] == value, (writer, reader, got)
                    assert got["mod_index"] == res["index"]
            # Overwrite on one member, read the new value on another immediately.
            follower = next(i for i in ids if i != leader)
            await client.put("k0", b"new", endpoint=eps[follower])
            other = next(i for i in ids if i not in (leader, follower))
            item = await client.get("k0", endpoint=eps[other])
            assert item is not None and item["value"] == b"new"
            assert await client.delete("k1", endpoint=eps[other])
            for i in ids:
                assert await client.get("k1", endpoint=eps[i]) is None
            assert not await client.delete("k1")
            # Concurrent reads and writes from many clients.
            await asyncio.gather(
                *(client.put(f"c{n}", b"x" * n, endpoint=eps[ids[n % 3]]) for n in range(30))
            )
            got_all = await asyncio.gather(
                *(client.get(f"c{n}", endpoint=eps[ids[(n + 1) % 3]]) for n in range(30))
            )
            assert [g["value"] for g in got_all if g is not None] == [b"x" * n for n in range(30)]
            members = await client.members()
            assert [m["id"] for m in members["members"]] == ids
            assert members["leader"] == leader
            text = await client.metrics(endpoint=eps[leader])
            assert metric(text, "raftkv_is_leader") == 1
            assert metric(text, "raftkv_entries_applied_total") >= 50
        # The command-line client against the running cluster.
        endpoints = ",".join(cluster.members[i].http_address for i in ids)
        r = raftkv_cli("put", "cli-key", "cli value", "--endpoints", endpoints)
        assert r.returncode == 0, r.stderr
        r = raftkv_cli("get", "cli-key", "--endpoints", endpoints)
        assert (r.returncode, r.stdout) == (0, "cli value"), r.stderr
        r = raftkv_cli("get", "missing", "--endpoints", endpoints)
        assert r.returncode == 1 and "key not found" in r.stderr
        r = raftkv_cli("members", "list", "--endpoints", endpoints)
        assert r.returncode == 0 and "(leader)" in r.stdout, r.stderr
        r = raftkv_cli("status", "--endpoints", endpoints)
        assert r.returncode == 0 and r.stdout.count("Follower") == 2, r.stdout + r.stderr

    run(body)


def test_leader_killed_new_leader_no_acknowledged_write_lost(cluster: LocalCluster) -> None:
    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        survivors = [i for i in ids if i != leader]
        acked: dict[str, bytes] = {}
        stop = asyncio.Event()

        async def writer(wid: int) -> None:
            # Retries across the survivors; counts only acknowledged writes.
            async with cluster.client(survivors, timeout=3) as wc:
                n = 0
                while not stop.is_set():
                    key, value = f"w{wid}/{n}", f"{wid}:{n}".encode()
                    try:
                        await wc.put(key, value)
                        acked[key] = value
                    except ClientError:
                        await asyncio.sleep(0.02)
                    n += 1

        tasks = [asyncio.create_task(writer(w)) for w in range(3)]
        try:
            await asyncio.sleep(0.8)
            before = len(acked)
            assert before > 0
            cluster.kill(leader)  # SIGKILL
            new_leader, _ = await cluster.wait_for_leader(survivors, exclude=leader)
            assert new_leader in survivors
            await asyncio.sleep(0.8)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert len(acked) > before, "no write succeeded after the leader was killed"
        async with cluster.client(survivors) as client:
            for i in survivors:
                await check_all(client, acked, cluster.members[i].endpoint)
            st = await client.status(endpoint=cluster.members[new_leader].endpoint)
            assert st["raft_state"] == "StateLeader"
            assert str(leader) in st["progress"]  # still a member, just down
            text = await client.metrics(endpoint=cluster.members[new_leader].endpoint)
            assert metric(text, "raftkv_elections_total") >= 1

    run(body)


def test_restarted_member_catches_up_and_cluster_survives_full_restart(
    cluster: LocalCluster,
) -> None:
    cluster.snapshot_count = 25
    cluster.snapshot_catchup_entries = 10

    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        follower = next(i for i in ids if i != leader)
        others = [i for i in ids if i != follower]
        first = {f"a{n}": f"first {n}".encode() for n in range(40)}
        second = {f"b{n}": f"second {n}".encode() for n in range(40)}
        async with cluster.client(ids) as client:
            await put_all(client, first)
            cluster.kill(follower)
            await put_all(client, second, endpoint=cluster.members[leader].endpoint)
            await client.delete("a0", endpoint=cluster.members[leader].endpoint)
            st = await client.status(endpoint=cluster.members[leader].endpoint)
            assert st["snapshot_index"] > 0 and st["first_index"] > 1
            cluster.start(follower)
            st2 = await cluster.wait_applied(follower, st["commit"])
            assert st2["lead"] == leader
            want = {**first, **second}
            del want["a0"]
            await check_all(client, want, cluster.members[follower].endpoint, serializable=True)
            assert await client.get("a0", endpoint=cluster.members[follower].endpoint) is None

            # Every member crashes at once; every acknowledged write survives.
            for i in ids:
                cluster.kill(i)
            for i in ids:
                cluster.start(i)
            await cluster.wait_for_leader(ids)
            await check_all(client, want, cluster.members[others[0]].endpoint)
            await client.put("after-restart", b"ok")
            item = await client.get("after-restart", endpoint=cluster.members[follower].endpoint)
            assert item is not None and item["value"] == b"ok"

    run(body)


def test_learner_added_promoted_then_member_removed(cluster: LocalCluster) -> None:
    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        data = {f"k{n}": f"v{n}".encode() for n in range(20)}
        async with cluster.client(ids) as client:
            await put_all(client, data)
            new = cluster.define(4)
            follower = next(i for i in ids if i != leader)
            res = await client.add_member(
                4,
                new.peer_address,
                new.http_address,
                learner=True,
                endpoint=cluster.members[follower].endpoint,
            )
            assert res["member"] == {
                "id": 4,
                "peer_address": new.peer_address,
                "http_address": new.http_address,
                "learner": True,
            }
            assert res["cluster"] == cluster.cluster_flag([1, 2, 3, 4])
            with pytest.raises(ClientError) as err:
                await client.add_member(4, new.peer_address)
            assert err.value.status == 409
            cluster.start(4, join=True, cluster=[1, 2, 3, 4])
            st = await client.status(endpoint=cluster.members[leader].endpoint)
            await cluster.wait_applied(4, st["commit"])
            await check_all(client, data, new.endpoint, serializable=True)
            st = await client.status(endpoint=cluster.members[leader].endpoint)
            assert st["voters"] == [1, 2, 3] and st["learners"] == [4]
            assert st["progress"]["4"]["learner"] is True
            st4 = await client.status(endpoint=new.endpoint)
            assert st4["raft_state"] == "StateFollower" and st4["lead"] == leader

            promoted = await client.promote_member(4)
            assert promoted["member"]["learner"] is False
            st = await client.status(endpoint=cluster.members[leader].endpoint)
            assert st["voters"] == [1, 2, 3, 4] and st["learners"] == []
            with pytest.raises(ClientError) as err:
                await client.promote_member(4)
            assert err.value.status == 409

            # Remove a follower other than the newcomer: it notices and exits by itself.
            victim = next(i for i in ids if i != leader)
            removed = await client.remove_member(victim, endpoint=cluster.members[leader].endpoint)
            assert [m["id"] for m in removed["members"]] == sorted({1, 2, 3, 4} - {victim})
            proc = cluster.members[victim].proc
            assert proc is not None
            rc = await asyncio.to_thread(proc.wait, 15)
            assert rc == 0
            assert "removed from the cluster" in cluster.log_text(victim)
            with pytest.raises(ClientError) as err:
                await client.remove_member(victim, endpoint=new.endpoint)
            assert err.value.status == 404

            remaining = sorted({1, 2, 3, 4} - {victim})
            async with cluster.client(remaining) as c2:
                await c2.put("after-removal", b"yes", endpoint=new.endpoint)
                for i in remaining:
                    got = await c2.get("after-removal", endpoint=cluster.members[i].endpoint)
                    assert got is not None and got["value"] == b"yes"
                st = await c2.status(endpoint=cluster.members[leader].endpoint)
                assert st["voters"] == remaining

            # Leadership moves to the promoted member on request.
            assert await client.transfer_leader(4, endpoint=cluster.members[leader].endpoint) == 4
            lead, _ = await cluster.wait_for_leader(remaining)
            assert lead == 4

            # Removing the leader itself: leadership moves away first, then it goes,
            # and the two members left form a working cluster.
            last = [i for i in remaining if i != 4]
            async with cluster.client(last) as c3:
                res = await c3.remove_member(4, endpoint=cluster.members[last[0]].endpoint)
                assert [m["id"] for m in res["members"]] == last
                proc4 = cluster.members[4].proc
                assert proc4 is not None
                assert await asyncio.to_thread(proc4.wait, 15) == 0
                lead, _ = await cluster.wait_for_leader(last)
                await c3.put("two-left", b"fine", endpoint=cluster.members[last[1]].endpoint)
                for i in last:
                    item = await c3.get("two-left", endpoint=cluster.members[i].endpoint)
                    assert item is not None and item["value"] == b"fine"

    run(body)


def test_member_removed_while_down_exits_when_restarted(cluster: LocalCluster) -> None:
    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        victim = next(i for i in ids if i != leader)
        rest = [i for i in ids if i != victim]
        async with cluster.client(rest) as client:
            # Wait until every member published its HTTP address (the restarted victim
            # asks the others over HTTP whether it is still a member).
            for _ in range(100):
                members = (await client.members())["members"]
                if all(m["http_address"] for m in members):
                    break
                await asyncio.sleep(0.05)
            assert cluster.stop(victim) == 0  # SIGTERM: a clean stop
            await client.remove_member(victim)
            await client.put("k", b"v")
        # It never hears of its removal from the log (nobody sends it anything now),
        # so it finds out by asking the others, and leaves.
        m = cluster.start(victim)
        assert m.proc is not None
        assert await asyncio.to_thread(m.proc.wait, 20) == 0
        assert "no longer a member of the cluster" in cluster.log_text(victim)
        async with cluster.client(rest) as client:
            item = await client.get("k")
            assert item is not None and item["value"] == b"v"

    run(body)


def test_new_member_catches_up_by_snapshot_after_compaction(cluster: LocalCluster) -> None:
    cluster.snapshot_count = 20
    cluster.snapshot_catchup_entries = 5

    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        data = {f"key-{n:03d}": os.urandom(64) for n in range(120)}
        async with cluster.client(ids) as client:
            await put_all(client, data)
            st = await client.status(endpoint=cluster.members[leader].endpoint)
            # The log no longer starts at 1: a newcomer cannot be caught up from it.
            assert st["snapshot_index"] >= 100 and st["first_index"] > 100
            new = cluster.define(4)
            await client.add_member(4, new.peer_address, new.http_address)
            cluster.start(4, join=True, cluster=[1, 2, 3, 4])
            st = await client.status(endpoint=cluster.members[leader].endpoint)
            st4 = await cluster.wait_applied(4, st["commit"])
            assert st4["snapshot_index"] > 0
            text4 = await client.metrics(endpoint=new.endpoint)
            assert metric(text4, "raftkv_snapshots_applied_total") >= 1
            assert metric(text4, "raftkv_keys") == len(data)
            await check_all(client, data, new.endpoint, serializable=True)
            text = await client.metrics(endpoint=cluster.members[leader].endpoint)
            assert metric(text, 'raftkv_transport_peer_snapshots_sent_total{peer="4"}') >= 1
            # The newcomer is a full voter: writes through it work.
            await client.put("via-4", b"ok", endpoint=new.endpoint)
            assert (
                await client.get("via-4", endpoint=cluster.members[leader].endpoint)
            ) is not None

    run(body)


def test_malformed_http_requests_get_json_errors(cluster: LocalCluster) -> None:
    async def body() -> None:
        import aiohttp

        ids = [1, 2, 3]
        await start_cluster(cluster, ids)
        ep = cluster.members[2].endpoint
        cases: list[tuple[str, str, bytes | None, int]] = [
            ("POST", "/members", b"{not json", 400),
            ("POST", "/members", b'{"id": -4, "peer_address": "127.0.0.1:1"}', 400),
            ("POST", "/members", b'{"id": 9, "peer_address": "127.0.0.1:99999"}', 400),
            ("POST", "/members", b'{"id": 9, "peer_address": "127.0.0.1:9", "learner": "no"}', 400),
            ("POST", "/members", b'{"id": 1, "peer_address": "127.0.0.1:9"}', 409),
            ("POST", "/leader", b'{"id": "two"}', 400),
            ("POST", "/leader", b"\x00\xff\x00", 400),
            ("DELETE", "/members/-1", None, 400),
            ("DELETE", "/members/8", None, 404),
            ("POST", "/members/2/promote", None, 409),
            ("GET", "/kv/", None, 400),
            ("GET", "/kv/x?serializable=banana", None, 400),
            ("GET", "/kv/never-written", None, 404),
            ("PUT", "/kv/" + "x" * 5000, b"v", 400),
            ("PUT", "/kv/huge", b"x" * (1024 * 1024 + 1), 413),
            ("PATCH", "/kv/x", b"v", 405),
            ("GET", "/../../etc/passwd", None, 404),
            ("GET", "/%00", None, 404),
        ]
        async with aiohttp.ClientSession() as session:
            for method, path, data, status in cases:
                url = ep + path
                async with session.request(method, url, data=data) as resp:
                    assert resp.status == status, (method, path, resp.status, await resp.text())
                    assert resp.content_type == "application/json", (path, resp.content_type)
                    body_json = await resp.json()
                    assert isinstance(body_json.get("error"), str) and body_json["error"], body_json
        # Non-HTTP bytes on the HTTP port: the connection is answered and closed.
        port = cluster.members[2].http_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x16\x03\x01 garbage garbage\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        writer.close()
        async with cluster.client(ids) as client:
            await client.put("still", b"serving", endpoint=ep)
            got = await client.get("still", endpoint=cluster.members[3].endpoint)
            assert got is not None and got["value"] == b"serving"
        assert all(cluster.members[i].running for i in ids)

    run(body)


def _frame_exchange(port: int, first: bytes, then: bytes = b"", timeout: float = 5.0) -> bytes:
    """Send ``first`` to a peer port; if ``then`` is given, wait for the handshake reply
    (a whole frame) and send ``then``; then half-close. Returns everything read until
    the member closes the connection (a member that hung would make this time out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(first)
        got = b""
        if then:
            while len(got) < HEADER.size or len(got) < HEADER.size + HEADER.unpack_from(got)[0]:
                chunk = s.recv(65536)
                assert chunk, f"closed during the handshake after {got!r}"
                got += chunk
            assert HEADER.unpack_from(got)[1] == FrameKind.HELLO_ACK, got
            s.sendall(then)
        # Half-close: a member waiting for the rest of a frame sees the end of the stream.
        s.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got


def test_malformed_peer_frames_close_the_connection(cluster: LocalCluster) -> None:
    async def body() -> None:
        ids = [1, 2, 3]
        await start_cluster(cluster, ids)
        target = cluster.members[1]
        cid = parse_cluster_id(CLUSTER_TOKEN)
        hello = Hello(PROTOCOL_VERSION, StreamKind.MESSAGE, cid, 2, 1).encode()
        bad_message = encode_message(Message(type=MessageType.MsgHeartbeat, to=1, from_=3, term=1))
        attempts: dict[str, bytes | tuple[bytes, bytes]] = {
            "not the protocol at all": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "oversized first frame": HEADER.pack(10_000_000, FrameKind.HELLO) + b"\x00" * 64,
            "wrong magic": encode_frame(FrameKind.HELLO, b"XXXX" + b"\x00" * 28),
            "another cluster": Hello(PROTOCOL_VERSION, StreamKind.MESSAGE, cid + 1, 2, 1).encode(),
            "unknown sender": Hello(PROTOCOL_VERSION, StreamKind.MESSAGE, cid, 77, 1).encode(),
            "garbage protobuf": (hello, encode_frame(FrameKind.MESSAGE, b"\xff\xff\xff\xff\x0f")),
            "frame too large": (hello, HEADER.pack(2**31, FrameKind.MESSAGE)),
            "unknown frame kind": (hello, encode_frame(200, b"zz")),
            "sender mismatch": (hello, encode_frame(FrameKind.MESSAGE, bad_message)),
            "truncated frame": (hello, HEADER.pack(100, FrameKind.MESSAGE) + b"abc"),
            "snapshot garbage": (
                Hello(PROTOCOL_VERSION, StreamKind.SNAPSHOT, cid, 2, 1).encode(),
                encode_frame(FrameKind.SNAP_HEAD, struct.pack(">Q", 5) + b"\x01\x02"),
            ),
        }
        async with cluster.client(ids) as client:
            before = await client.metrics(endpoint=target.endpoint)
            rejected_before = metric(before, "raftkv_transport_connections_rejected_total")
            refused_before = metric(before, "raftkv_transport_handshakes_refused_total")
            for name, payload in attempts.items():
                # Every attempt ends with the member closing the connection (the read
                # returns) instead of hanging or crashing.
                first, then = payload if isinstance(payload, tuple) else (payload, b"")
                got = await asyncio.to_thread(_frame_exchange, target.peer_port, first, then)
                assert isinstance(got, bytes), name
                await client.put(f"after-{name}", b"ok", endpoint=target.endpoint)
            after = await client.metrics(endpoint=target.endpoint)
            # Six attempts break the protocol after the handshake, five during it.
            assert (
                metric(after, "raftkv_transport_connections_rejected_total") >= rejected_before + 6
            )
            assert metric(after, "raftkv_transport_handshakes_refused_total") >= refused_before + 5
            for i in ids:
                item = await client.get(f"after-{name}", endpoint=cluster.members[i].endpoint)
                assert item is not None and item["value"] == b"ok"
        assert all(cluster.members[i].running for i in ids)
        assert "closing connection from" in cluster.log_text(1)

    run(body)


def _write_pki(d: Path) -> tuple[Path, Path, Path]:
    """A CA and one certificate for 127.0.0.1 signed by it (shared by all members)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "raftkv test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "member")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (d / "member.pem", d / "member.key", d / "ca.pem")
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


def test_peers_over_mutual_tls(cluster: LocalCluster, tmp_path: Path) -> None:
    cert, key, ca = _write_pki(tmp_path)
    cluster.extra_args = [
        "--peer-cert-file", str(cert), "--peer-key-file", str(key), "--peer-ca-file", str(ca)
    ]  # fmt: skip

    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        async with cluster.client(ids) as client:
            await client.put("secret", b"over TLS", endpoint=cluster.members[leader].endpoint)
            for i in ids:
                item = await client.get("secret", endpoint=cluster.members[i].endpoint)
                assert item is not None and item["value"] == b"over TLS"
            # A plain-TCP handshake is refused by the TLS listener; the member goes on.
            cid = parse_cluster_id(CLUSTER_TOKEN)
            hello = Hello(PROTOCOL_VERSION, StreamKind.MESSAGE, cid, 2, 1).encode()
            await asyncio.to_thread(_frame_exchange, cluster.members[1].peer_port, hello)
            text = await client.metrics(endpoint=cluster.members[1].endpoint)
            assert metric(text, "raftkv_transport_tls_handshakes_failed_total") >= 1
            await client.put("secret", b"still", endpoint=cluster.members[1].endpoint)
        assert "TLS handshake" in cluster.log_text(1)

    run(body)


def test_members_on_uvloop(cluster: LocalCluster) -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed (the 'fast' extra)")
    cluster.extra_args = ["--event-loop", "uvloop"]

    async def body() -> None:
        ids = [1, 2, 3]
        await start_cluster(cluster, ids)
        items = {f"k{i}": f"v{i}".encode() for i in range(20)}
        async with cluster.client(ids) as client:
            for i in ids:  # every member serves writes and linearizable reads
                await put_all(client, items, endpoint=cluster.members[i].endpoint)
                await check_all(client, items, endpoint=cluster.members[i].endpoint)
        for i in ids:
            assert "event loop uvloop.Loop" in cluster.log_text(i)

    run(body)


def test_members_writing_in_worker_threads(cluster: LocalCluster) -> None:
    # The default (--persist auto) writes on the event loop on a fast disk; this
    # covers the worker-thread path, with the leader sending before it writes.
    cluster.extra_args = ["--persist", "thread"]

    async def body() -> None:
        ids = [1, 2, 3]
        leader = await start_cluster(cluster, ids)
        items = {f"t{i}": f"w{i}".encode() for i in range(30)}
        async with cluster.client(ids) as client:
            await put_all(client, items, endpoint=cluster.members[leader].endpoint)
            for i in ids:
                await check_all(client, items, endpoint=cluster.members[i].endpoint)
        for i in ids:
            assert "writing raft output in a worker thread (--persist thread)" in (
                cluster.log_text(i)
            )

    run(body)


def test_demo_command_end_to_end(tmp_path: Path) -> None:
    r = raftkv_cli("demo", "--keys", "10", timeout=58)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for text in (
        "was elected leader",
        "with SIGKILL",
        "is the new leader",
        "no acknowledged write lost",
        "caught up",
        "cleaning up",
        "demo passed",
    ):
        assert text in out, text
    m = re.search(r"everything lives in (\S+)", out)
    assert m is not None and not Path(m.group(1)).exists()
