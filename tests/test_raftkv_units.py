"""In-process tests of raftkv's pieces: parsing, the state machine and its byte formats,
metrics, the CLI's argument checking, and the HTTP API of a one-member cluster run
inside the test's event loop (the multi-process tests are in test_raftkv_cluster.py)."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcore.raftpb.types import ConfChange, ConfChangeType
from raftkv.cli import build_parser, main
from raftkv.client import KVClient, normalize_endpoint
from raftkv.cluster import (
    MAX_MEMBER_ID,
    format_address,
    format_cluster,
    parse_address,
    parse_cluster,
    parse_cluster_id,
    parse_member_id,
)
from raftkv.http_api import HttpApi
from raftkv.kvstore import (
    MAX_KEY_BYTES,
    CommandDecodeError,
    ConfChangeContext,
    Delete,
    Item,
    KVStore,
    Member,
    Publish,
    Put,
    SnapshotDecodeError,
    decode_command,
    decode_snapshot,
    encode_command,
    parse_member_json,
)
from raftkv.localcluster import free_ports
from raftkv.metrics import Registry
from raftkv.server import RaftKVServer, ServerConfig, StartupError

pytestmark = pytest.mark.timeout(60)

# ------------------------------------------------------------------------ parsing


def test_parse_member_id() -> None:
    assert parse_member_id("7") == 7
    assert parse_member_id(7) == 7
    assert parse_member_id(" 12 ") == 12
    assert parse_member_id(str(MAX_MEMBER_ID)) == MAX_MEMBER_ID
    for bad in ("0", "-1", "abc", "1.5", "", "٣", str(MAX_MEMBER_ID + 1), "9" * 30):
        with pytest.raises(ValueError):
            parse_member_id(bad)
    for bad_obj in (True, False, 1.0, None, [1], 0, -3, 2**64):
        with pytest.raises(ValueError):
            parse_member_id(bad_obj)


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:7001") == ("127.0.0.1", 7001)
    assert parse_address("http://localhost:80/") == ("localhost", 80)
    assert parse_address("tcp://[::1]:7001") == ("::1", 7001)
    assert parse_address("host:0", allow_port_zero=True) == ("host", 0)
    assert format_address(("::1", 7001)) == "[::1]:7001"
    assert format_address(("10.0.0.1", 1)) == "10.0.0.1:1"
    bad = [
        "nope",
        ":7001",
        "host:",
        "host:0",
        "host:65536",
        "host:x1",
        "::1:7001",
        "[::1]7001",
        "[zz]:1",
        "https://host:1",
        "ftp://host:1",
        "ho st:1",
        "a/b:1",
        12,
        None,
    ]
    for b in bad:
        with pytest.raises(ValueError):
            parse_address(b)


def test_parse_cluster() -> None:
    spec = "2=127.0.0.1:7002, 1=127.0.0.1:7001"
    c = parse_cluster(spec)
    assert c == {1: ("127.0.0.1", 7001), 2: ("127.0.0.1", 7002)}
    assert format_cluster(c) == "1=127.0.0.1:7001,2=127.0.0.1:7002"
    msgs = {
        "": "cluster must list",
        "1=a:1,": "empty member entry",
        "1": "not of the form",
        "x=a:1": "member id",
        "1=a:1,1=b:2": "appears twice",
        "1=a:1,2=a:1": "share the peer address",
        "1=a": "has no port",
    }
    for text, want in msgs.items():
        with pytest.raises(ValueError, match=want):
            parse_cluster(text)


def test_parse_cluster_id() -> None:
    assert parse_cluster_id("42") == 42
    assert parse_cluster_id("0x2a") == 42
    token = parse_cluster_id("my-cluster")
    assert token == parse_cluster_id("my-cluster") != parse_cluster_id("other")
    assert 1 <= token < 2**64
    assert parse_cluster_id(None) == parse_cluster_id("raftkv")
    for bad in ("", "0", str(2**64)):
        with pytest.raises(ValueError):
            parse_cluster_id(bad)


# ------------------------------------------------------------------ state machine

keys = st.text(min_size=1, max_size=40).filter(
    lambda k: (
        len(k.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in k)
    )
)
req_ids = st.binary(min_size=16, max_size=16)
commands = st.one_of(
    st.builds(Put, req_ids, keys, st.binary(max_size=200)),
    st.builds(Delete, req_ids, keys),
    st.builds(
        Publish,
        req_ids,
        st.integers(1, 2**64 - 1),
        st.text(max_size=30).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
    ),
)


@given(commands)
def test_command_round_trip(cmd: Put | Delete | Publish) -> None:
    assert decode_command(encode_command(cmd)) == cmd


@given(st.binary(max_size=64))
def test_decode_command_is_exact_or_refuses(data: bytes) -> None:
    # Arbitrary bytes either decode to a command that encodes back to exactly them,
    # or are refused with CommandDecodeError (never another exception).
    try:
        cmd = decode_command(data)
    except CommandDecodeError:
        return
    assert encode_command(cmd) == data


def test_decode_command_rejects() -> None:
    good = encode_command(Delete(b"r" * 16, "k"))
    for bad in (b"", good[:10], b"\x02" + good[1:], good[:1] + b"\x09" + good[2:], good + b"x"):
        with pytest.raises(CommandDecodeError):
            decode_command(bad)
    with pytest.raises(ValueError, match="empty"):
        encode_command(Put(b"r" * 16, "", b"v"))


stores = st.builds(
    lambda items, members: (items, members),
    st.dictionaries(
        keys, st.tuples(st.binary(max_size=50), st.integers(0, 2**64 - 1)), max_size=20
    ),
    st.dictionaries(
        st.integers(1, 2**64 - 3),
        st.tuples(
            st.sampled_from(["127.0.0.1:7001", "[::1]:9", "h:1"]),
            st.sampled_from(["", "h:80"]),
            st.booleans(),
        ),
        max_size=5,
    ),
)


def _store(spec: tuple[dict[str, tuple[bytes, int]], dict[int, tuple[str, str, bool]]]) -> KVStore:
    kv = KVStore()
    items, members = spec
    kv.conf_epoch = len(items) * 7
    kv.data = {k: Item(v, i) for k, (v, i) in items.items()}
    kv.members = {i: Member(i, p, h, lr) for i, (p, h, lr) in members.items()}
    return kv


@given(stores)
def test_snapshot_round_trip(spec: Any) -> None:
    kv = _store(spec)
    other = KVStore()
    other.restore(kv.encode_snapshot())
    assert other.data == kv.data
    assert other.members == kv.members
    assert other.conf_epoch == kv.conf_epoch


@settings(max_examples=200)
@given(stores, st.data())
def test_damaged_snapshot_is_refused(spec: Any, data: st.DataObject) -> None:
    blob = bytearray(_store(spec).encode_snapshot())
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SnapshotDecodeError):
        decode_snapshot(bytes(blob))
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(SnapshotDecodeError):
        decode_snapshot(bytes(blob[:cut]))


def test_snapshot_with_valid_checksum_but_bad_structure() -> None:
    # A foreign blob with a matching CRC must still be refused, never crash.
    for body in (
        b"XXXX\x01\x00\x00\x00\x00" + b"\x00" * 8,
        b"RKVS\x09" + b"\x00" * 12,
        b"RKVS\x01\x00\x00\x00\x05" + b"\x00" * 8,
    ):
        blob = body + zlib.crc32(body).to_bytes(4, "big")
        with pytest.raises(SnapshotDecodeError):
            decode_snapshot(blob)


def test_apply_commands() -> None:
    kv = KVStore()
    kv.members[1] = Member(1, "h:1")
    assert kv.apply(Put(b"a" * 16, "k", b"v1"), 5).index == 5
    assert kv.get("k") == Item(b"v1", 5)
    assert kv.apply(Delete(b"b" * 16, "k"), 6).found
    assert not kv.apply(Delete(b"c" * 16, "k"), 7).found
    assert kv.get("k") is None
    assert not kv.apply(Publish(b"d" * 16, 1, "h:80"), 8).error
    assert kv.members[1].http_address == "h:80"
    assert kv.apply(Publish(b"e" * 16, 9, "h:80"), 9).error


def cc(t: ConfChangeType, nid: int) -> ConfChange:
    return ConfChange(type=t, node_id=nid)


def test_conf_change_checks() -> None:
    add, learner = ConfChangeType.ConfChangeAddNode, ConfChangeType.ConfChangeAddLearnerNode
    remove, update = ConfChangeType.ConfChangeRemoveNode, ConfChangeType.ConfChangeUpdateNode
    kv = KVStore()
    ctx = ConfChangeContext("127.0.0.1:7001")
    assert kv.check_conf_change(cc(add, 1), ctx) == ""
    kv.apply_conf_change(cc(add, 1), ctx, 1)
    assert "already a voter" in kv.check_conf_change(cc(add, 1), ctx)
    assert "already a voter" in kv.check_conf_change(cc(learner, 1), ctx)
    assert "last voter" in kv.check_conf_change(cc(remove, 1), None)
    assert "not a member" in kv.check_conf_change(cc(remove, 2), None)
    assert "unreadable context" in kv.check_conf_change(cc(learner, 2), None)
    assert "no port" in kv.check_conf_change(cc(learner, 2), ConfChangeContext("bad"))
    assert "unsupported" in kv.check_conf_change(cc(update, 1), ctx)
    assert "names no member" in kv.check_conf_change(cc(add, 0), ctx)
    kv.apply_conf_change(cc(learner, 2), ConfChangeContext("127.0.0.1:7002", "h:2"), 5)
    assert kv.conf_epoch == 5
    assert kv.members[2] == Member(2, "127.0.0.1:7002", "h:2", learner=True)
    assert "already a learner" in kv.check_conf_change(cc(learner, 2), ctx)
    # Removing a learner is fine even with one voter; promoting works.
    assert kv.check_conf_change(cc(remove, 2), None) == ""
    assert kv.check_conf_change(cc(add, 2), None) == ""
    kv.apply_conf_change(cc(add, 2), None, 9)
    assert kv.voters() == [1, 2]
    assert kv.check_conf_change(cc(remove, 1), None) == ""
    # A request checked against an older membership is refused, a current one is not.
    assert kv.check_conf_change(cc(remove, 1), ConfChangeContext(epoch=9)) == ""
    assert "membership changed" in kv.check_conf_change(cc(remove, 1), ConfChangeContext(epoch=5))


def test_conf_change_context() -> None:
    c = ConfChangeContext("h:1", "h:2", b"\x01\x02", 17)
    assert ConfChangeContext.decode(c.encode()) == c
    assert ConfChangeContext.decode(ConfChangeContext(epoch=0).encode()) == ConfChangeContext(
        epoch=0
    )
    assert ConfChangeContext.decode(b"") == ConfChangeContext()
    for bad in (
        b"{",
        b"[]",
        b'{"peer_address": 1}',
        b'{"request_id": "zz"}',
        b"\xff",
        b'{"epoch": -1}',
        b'{"epoch": true}',
        b'{"epoch": "3"}',
    ):
        assert ConfChangeContext.decode(bad) is None


def test_parse_member_json() -> None:
    assert parse_member_json({"id": 4, "peer_address": "h:1"}) == (4, ("h", 1), "", False)
    assert parse_member_json(
        {"id": "4", "peer_url": "http://h:1", "http_url": "h:2", "learner": True}
    ) == (4, ("h", 1), "h:2", True)
    cases: dict[str, Any] = {
        "JSON object": [],
        "missing field: id": {},
        "missing field: peer_address": {"id": 4},
        "unknown field": {"id": 4, "peer_address": "h:1", "zzz": 1},
        "either peer_address or peer_url": {"id": 4, "peer_address": "h:1", "peer_url": "h:1"},
        "learner must be": {"id": 4, "peer_address": "h:1", "learner": "yes"},
        "http_address": {"id": 4, "peer_address": "h:1", "http_address": "x"},
    }
    for want, body in cases.items():
        with pytest.raises(ValueError, match=want):
            parse_member_json(body)


# ------------------------------------------------------------------------ metrics


def test_metrics_render() -> None:
    r = Registry()
    c = r.counter("x_total", "An x.", ("kind",))
    c.inc(labels=("a",))
    c.inc(2, labels=('b"\\',))
    r.gauge("g", "A gauge.", fn=lambda: 1.5)
    h = r.histogram("lat_seconds", "Latency.", buckets=(0.1, 1.0))
    for v in (0.05, 0.5, 5.0):
        h.observe(v)
    r.add_collector(
        lambda: ["# HELP extra_total E.", "# TYPE extra_total counter", "extra_total 3"]
    )
    text = r.render()
    assert 'x_total{kind="a"} 1\n' in text
    assert 'x_total{kind="b\\"\\\\"} 2\n' in text
    assert "g 1.5\n" in text
    assert 'lat_seconds_bucket{le="0.1"} 1\n' in text
    assert 'lat_seconds_bucket{le="1"} 2\n' in text
    assert 'lat_seconds_bucket{le="+Inf"} 3\n' in text
    assert "lat_seconds_count 3\n" in text
    assert "extra_total 3\n" in text
    with pytest.raises(ValueError):
        c.inc(-1, labels=("a",))
    with pytest.raises(ValueError):
        c.inc(labels=())
    with pytest.raises(ValueError):
        r.counter("x_total", "again")
    # Every sample line is NAME{labels} VALUE.
    for line in text.splitlines():
        if not line.startswith("#"):
            assert re.fullmatch(r'[a-z_]+(\{.*\})? [-+0-9.e]+|[a-z_]+\{le="\+Inf"\} \d+', line), (
                line
            )


# ---------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["serve"], "required"),
        (
            ["serve", "--id", "0", "--cluster", "1=h:1", "--http", "h:2", "--data-dir", "d"],
            "between 1",
        ),
        (["serve", "--id", "1", "--cluster", "1=h", "--http", "h:2", "--data-dir", "d"], "no port"),
        (
            ["serve", "--id", "1", "--cluster", "1=h:1", "--http", "h", "--data-dir", "d"],
            "HTTP address",
        ),
        (
            [
                "serve",
                "--id",
                "1",
                "--cluster",
                "1=h:1",
                "--http",
                "h:2",
                "--data-dir",
                "d",
                "--snapshot-count",
                "0",
            ],
            "positive",
        ),
        (
            [
                "serve",
                "--id",
                "1",
                "--cluster",
                "1=h:1",
                "--http",
                "h:2",
                "--data-dir",
                "d",
                "--max-value-size",
                "lots",
            ],
            "not a size",
        ),
        (["get"], "required"),
        (["get", "k", "--endpoints", "nope"], "no port"),
        (["members", "add", "x", "h:1"], "member id"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_cli_usage_errors(argv: list[str], want: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert want in capsys.readouterr().err


def test_cli_serve_checks_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "serve",
            "--id",
            "3",
            "--cluster",
            "1=127.0.0.1:1",
            "--http",
            "127.0.0.1:2",
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert rc == 2
    assert "member 3 is not in the cluster list" in capsys.readouterr().err


def test_cli_client_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    (port,) = free_ports(1)
    rc = main(["get", "k", "--endpoints", f"127.0.0.1:{port}", "--timeout", "2"])
    assert rc == 1
    assert "cannot reach" in capsys.readouterr().err


def test_normalize_endpoint() -> None:
    assert normalize_endpoint("127.0.0.1:8001") == "http://127.0.0.1:8001"
    assert normalize_endpoint("http://[::1]:8001/") == "http://[::1]:8001"
    with pytest.raises(ValueError):
        KVClient([])


# --------------------------------------------------------- one member, in process


@asynccontextmanager
async def one_member(
    tmp_path: Path, **kw: Any
) -> AsyncIterator[tuple[RaftKVServer, TestClient[Any, Any]]]:
    peer, http = free_ports(2)
    cfg = ServerConfig(
        id=1,
        cluster={1: ("127.0.0.1", peer)},
        http=("127.0.0.1", http),
        data_dir=str(tmp_path / "m1"),
        tick_interval=0.01,
        wal_segment_size=256 * 1024,
        **kw,
    )
    server = RaftKVServer(cfg)
    await server.start()
    client: TestClient[Any, Any] | None = None
    try:
        client = TestClient(TestServer(HttpApi(server).app))
        await client.start_server()
        async with asyncio.timeout(10):
            while not server.lead:
                await asyncio.sleep(0.01)
        yield server, client
    finally:
        if client is not None:
            await client.close()
        await server.stop()


def run(coro: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        async with asyncio.timeout(45):
            await coro()

    asyncio.run(main())


async def _chunks(n: int) -> AsyncIterator[bytes]:
    for _ in range(n // 1000):
        yield b"x" * 1000


def chunked(n: int) -> Any:
    """A body without Content-Length (sent chunked), so only reading can find its size."""
    return _chunks(n)


def test_http_api_keys_and_errors(tmp_path: Path) -> None:
    async def body() -> None:
        async with one_member(tmp_path, max_value_size=1024) as (server, c):

            async def call(method: str, path: str, **kw: Any) -> tuple[int, Any]:
                resp = await c.request(method, path, **kw)
                assert resp.content_type == "application/json", (path, resp.content_type)
                return resp.status, await resp.json()

            st, put = await call("PUT", "/kv/a%2Fb", data=b"v1")
            assert st == 200 and put["key"] == "a/b" and put["index"] >= 3
            st, got = await call("GET", "/kv/a%2Fb")
            assert (st, got["value"], got["encoding"]) == (200, "v1", "utf-8")
            assert got["mod_index"] == put["index"] <= got["index"]
            st, got = await call("GET", "/kv/a%2Fb?serializable=true")
            assert (st, got["value"]) == (200, "v1")
            await call("PUT", "/kv/bin", data=b"\xff\x00")
            assert (await call("GET", "/kv/bin"))[1]["encoding"] == "base64"
            st, put = await call("PUT", "/kv/empty", data=b"")
            assert st == 200 and put["key"] == "empty"
            assert (await call("GET", "/kv/empty"))[1]["value"] == ""
            assert (await call("DELETE", "/kv/a%2Fb"))[1]["deleted"] is True

            errors: list[tuple[str, str, dict[str, Any], int, str]] = [
                ("GET", "/kv/a%2Fb", {}, 404, "key not found"),
                ("DELETE", "/kv/a%2Fb", {}, 404, "key not found"),
                ("GET", "/kv/", {}, 400, "missing key"),
                ("PUT", "/kv", {}, 400, "missing key"),
                ("GET", "/kv/x?serializable=perhaps", {}, 400, "true or false"),
                ("GET", "/kv/x?serializable=1&serializable=0", {}, 400, "more than once"),
                ("GET", "/kv/x?bogus=1", {}, 400, "unknown query parameter"),
                ("PUT", "/kv/x?bogus=1", {}, 400, "unknown query parameter"),
                ("GET", "/kv/" + "k" * (MAX_KEY_BYTES + 1), {}, 400, "limit is"),
                ("PUT", "/kv/big", {"data": b"x" * 1025}, 413, "exceeds the limit"),
                ("PUT", "/kv/big", {"data": b"x" * 70_000}, 413, "exceeds the limit"),
                ("PUT", "/kv/big", {"data": chunked(70_000)}, 413, "too large"),
                ("POST", "/kv/x", {}, 405, "not allowed"),
                ("GET", "/nowhere", {}, 404, "no such endpoint"),
                ("POST", "/members", {"data": b"{nope"}, 400, "not valid JSON"),
                ("POST", "/members", {"data": b""}, 400, "got nothing"),
                ("POST", "/members", {"data": b"\xff\xfe"}, 400, "request body"),
                ("POST", "/members", {"data": b"[1,2]"}, 400, "JSON object"),
                ("POST", "/members", {"data": b" " * 70_000}, 413, "too large"),
                (
                    "POST",
                    "/members",
                    {"json": {"id": 1, "peer_address": "127.0.0.1:9"}},
                    409,
                    "already exists",
                ),
                (
                    "POST",
                    "/members",
                    {
                        "json": {
                            "id": 2,
                            "peer_address": server.cfg.cluster[1][0]
                            + f":{server.cfg.cluster[1][1]}",
                        }
                    },
                    409,
                    "already used",
                ),
                ("POST", "/members", {"json": {"id": 2}}, 400, "missing field"),
                ("DELETE", "/members/abc", {}, 400, "decimal integer"),
                ("DELETE", "/members/7", {}, 404, "not a member"),
                ("DELETE", "/members/1", {}, 409, "last voter"),
                ("POST", "/members/1/promote", {}, 409, "already a voter"),
                ("POST", "/members/9/promote", {}, 404, "not a member"),
                ("POST", "/leader", {"json": {"id": 9}}, 404, "not a member"),
                ("POST", "/leader", {"json": {"id": 1, "x": 2}}, 400, "unknown field"),
                ("POST", "/leader", {"json": {}}, 400, "missing field"),
                ("POST", "/leader", {"json": "1"}, 400, "JSON object"),
                ("GET", "/status?x=1", {}, 400, "unknown query parameter"),
            ]
            for method, path, kw, status, want in errors:
                st, got = await call(method, path, **kw)
                assert st == status, (method, path, st, got)
                assert want in got["error"], (method, path, got)
            # Methods no route takes get a JSON 405 and are counted per method.
            for verb in ("PATCH", "OPTIONS"):
                st, got = await call(verb, "/kv/x")
                assert st == 405 and "not allowed" in got["error"]
            text = server.metrics.render()
            assert 'raftkv_http_requests_total{method="PATCH",code="405"} 1' in text
            # Still serving.
            assert (await call("PUT", "/kv/after", data=b"ok"))[0] == 200
            assert (await call("POST", "/leader", json={"id": 1})) == (200, {"leader": 1})

    run(body)


def test_http_api_status_members_metrics(tmp_path: Path) -> None:
    async def body() -> None:
        async with one_member(tmp_path, snapshot_count=5, snapshot_catchup_entries=2) as (
            server,
            c,
        ):
            for i in range(12):
                resp = await c.put(f"/kv/k{i}", data=b"v")
                assert resp.status == 200
            # The member publishes its HTTP address through the log.
            async with asyncio.timeout(5):
                while server.kv.members[1].http_address != server.advertise_http:
                    await asyncio.sleep(0.02)
            st = await (await c.get("/status")).json()
            assert st["id"] == 1 and st["lead"] == 1 and st["raft_state"] == "StateLeader"
            assert st["voters"] == [1] and st["learners"] == []
            assert st["applied"] >= 15 and st["snapshot_index"] >= 10
            assert st["first_index"] > 1  # compacted behind the snapshot
            assert st["progress"]["1"]["state"] == "StateReplicate"
            members = await (await c.get("/members")).json()
            assert members["leader"] == 1
            assert members["members"] == [
                {
                    "id": 1,
                    "peer_address": format_address(server.cfg.cluster[1]),
                    "http_address": server.advertise_http,
                    "learner": False,
                }
            ]
            health = await c.get("/health")
            assert health.status == 200
            resp = await c.get("/metrics")
            assert resp.content_type == "text/plain"
            text = await resp.text()
            for name in (
                "raftkv_proposals_total",
                "raftkv_entries_applied_total",
                "raftkv_leader_changes_total 1",
                "raftkv_elections_total",
                "raftkv_apply_duration_seconds_bucket",
                "raftkv_wal_fsync_duration_seconds_count",
                "raftkv_snapshots_created_total",
                "raftkv_is_leader 1",
                'raftkv_http_requests_total{method="PUT",code="200"} 12',
                "raftkv_transport_connections_accepted_total",
            ):
                assert name in text, name
            assert json.loads(json.dumps(st)) == st

    run(body)


def test_member_restart_keeps_state_and_refuses_foreign_data_dir(tmp_path: Path) -> None:
    async def body() -> None:
        async with one_member(tmp_path, snapshot_count=4, snapshot_catchup_entries=1) as (_, c):
            for i in range(10):
                assert (await c.put(f"/kv/k{i}", data=f"v{i}".encode())).status == 200
            await c.delete("/kv/k0")
        async with one_member(tmp_path, snapshot_count=4) as (server, c):
            assert server.snapshot_index > 0  # restored from the snapshot, then the log
            resp = await c.get("/kv/k9")
            assert (await resp.json())["value"] == "v9"
            assert (await c.get("/kv/k0")).status == 404
            assert len(server.kv) == 9

        peer, http = free_ports(2)
        other = RaftKVServer(
            ServerConfig(
                id=2,
                cluster={2: ("127.0.0.1", peer)},
                http=("127.0.0.1", http),
                data_dir=str(tmp_path / "m1"),
            )
        )
        with pytest.raises(StartupError, match="belongs to member 1, not 2"):
            await other.start()
        await other.stop()

    run(body)


def test_server_config_validation() -> None:
    base: dict[str, Any] = {"id": 1, "cluster": {1: ("h", 1)}, "http": ("h", 2), "data_dir": "d"}
    cases: dict[str, dict[str, Any]] = {
        "not in the cluster list": {"id": 2},
        "snapshot-count": {"snapshot_count": 0},
        "election-ticks must be greater": {"election_ticks": 1, "heartbeat_ticks": 1},
        "tick-ms": {"tick_interval": 0},
        "request-timeout": {"request_timeout": 0},
        "wal-segment-size": {"wal_segment_size": 1000},
        "catchup": {"snapshot_catchup_entries": -1},
        "--persist must be one of auto, inline, thread, got 'fast'": {"persist": "fast"},
    }
    for want, change in cases.items():
        with pytest.raises(ValueError, match=want):
            ServerConfig(**{**base, **change}).validate()


# --- event loop choice -----------------------------------------------------------------


def test_event_loop_factory_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from raftkv.cli import event_loop_factory

    assert event_loop_factory("asyncio") is None
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        event_loop_factory("trio")
    # Without the package: a clear error naming what to install, not an ImportError.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ValueError, match=r"pip install 'raftcore\[fast\]'"):
        event_loop_factory("uvloop")


def test_event_loop_factory_uvloop_makes_a_uvloop_loop() -> None:
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (the 'fast' extra)")
    from raftkv.cli import event_loop_factory

    factory = event_loop_factory("uvloop")
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, "ok")) == "ok"
    finally:
        loop.close()


# --- where Readys are written ----------------------------------------------------------


def test_probe_sync_latency_measures_and_leaves_nothing(tmp_path: Path) -> None:
    from raftkv.server import probe_sync_latency

    (tmp_path / ".sync-probe-left-by-a-crash").write_bytes(b"x")
    (tmp_path / "0000000000000001.wal").write_bytes(b"keep")
    took = probe_sync_latency(tmp_path, rounds=4)
    assert 0 < took < 5.0
    assert [p.name for p in tmp_path.iterdir()] == ["0000000000000001.wal"]


@pytest.mark.parametrize("mode", ["auto", "inline", "thread"])
def test_persist_modes_write_durably(tmp_path: Path, mode: str) -> None:
    async def body() -> None:
        async with one_member(tmp_path, persist=mode) as (server, client):
            if mode == "thread":
                assert not server._persist_inline
            elif mode == "inline":
                assert server._persist_inline
            for i in range(20):
                r = await client.put(f"/kv/k{i}", data=f"v{i}".encode())
                assert r.status == 200, await r.text()
            assert server.storage is not None
            assert server.storage.last_index() >= server.applied >= 20
            r = await client.get("/kv/k19")
            assert (await r.json())["value"] == "v19"

    run(body)


def test_persist_auto_moves_writes_off_the_loop_when_syncs_get_slow(tmp_path: Path) -> None:
    async def body() -> None:
        async with one_member(tmp_path, persist="auto") as (server, _client):
            server._persist_inline = True
            server._sync_ewma = 0.0001
            for _ in range(5):
                server._watch_inline_sync(0.0002)  # fast syncs: stays inline
            assert server._persist_inline
            for _ in range(200):
                server._watch_inline_sync(0.010)  # the disk became slow
                if not server._persist_inline:
                    break
            assert not server._persist_inline
            assert server._sync_ewma > 0.002

    run(body)
