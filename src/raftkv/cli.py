"""The ``raftkv`` command: run a member, talk to a cluster, or watch the demo.

::

    raftkv serve --id 1 --cluster 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \\
                 --http 127.0.0.1:8001 --data-dir /var/lib/raftkv/1
    raftkv put KEY VALUE            raftkv get KEY        raftkv delete KEY
    raftkv members list|add|remove|promote ...
    raftkv leader ID                raftkv status         raftkv demo

Client commands take ``--endpoints`` (comma-separated ``host:port``; default from
``$RAFTKV_ENDPOINTS``, else ``127.0.0.1:8001``). Exit codes: 0 success, 1 the request
failed (the reason goes to stderr; for ``get``/``delete``: key not found), 2 bad
usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, TypeVar

from raftkv.cluster import (
    Address,
    format_address,
    parse_address,
    parse_cluster,
    parse_cluster_id,
    parse_member_id,
)

__all__ = ["build_parser", "main"]

DEFAULT_ENDPOINT: Final = "127.0.0.1:8001"
ENDPOINTS_ENV: Final = "RAFTKV_ENDPOINTS"

_T = TypeVar("_T")


def _arg(fn: Callable[[str], _T]) -> Callable[[str], _T]:
    """Turn a parser's ValueError into argparse's error (message shown as is)."""

    def wrapped(text: str) -> _T:
        try:
            return fn(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    wrapped.__name__ = fn.__name__
    return wrapped


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if n <= 0:
        raise ValueError(f"must be positive, got {n}")
    return n


def _non_negative_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None
    if n < 0:
        raise ValueError(f"must not be negative, got {n}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not x > 0 or x == float("inf"):
        raise ValueError(f"must be a positive number, got {text}")
    return x


_SIZE_UNITS: Final = {
    "": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
}


def _size(text: str) -> int:
    """``1048576``, ``512KiB``, ``4MiB``, ``1g``."""
    s = text.strip().lower()
    num = s.rstrip("kmgib")
    unit = s[len(num) :]
    if unit not in _SIZE_UNITS or not num.isdigit():
        raise ValueError(f"{text!r} is not a size (examples: 65536, 512KiB, 4MiB)")
    n = int(num) * _SIZE_UNITS[unit]
    if n <= 0:
        raise ValueError("size must be positive")
    return n


def _endpoints(text: str) -> list[str]:
    from raftkv.client import normalize_endpoint

    out = [normalize_endpoint(p) for p in text.split(",") if p.strip()]
    if not out:
        raise ValueError("no endpoints given")
    return out


def _http_address(text: str) -> Address:
    return parse_address(text, what="HTTP address", allow_port_zero=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raftkv",
        description="A replicated key-value store on raftcore (etcd's Raft, in Python).",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # --------------------------------------------------------------------- serve
    s = sub.add_parser(
        "serve",
        help="run a member",
        description="Run one member of a raftkv cluster until SIGINT/SIGTERM.",
    )
    s.add_argument("--id", required=True, type=_arg(parse_member_id), help="this member's id")
    s.add_argument(
        "--cluster",
        required=True,
        type=_arg(parse_cluster),
        metavar="ID=HOST:PORT,...",
        help="peer addresses: for a new cluster all founding members (the same list on each); "
        "with --join the current members plus this one",
    )
    s.add_argument(
        "--http",
        required=True,
        type=_arg(_http_address),
        metavar="HOST:PORT",
        help="HTTP API address",
    )
    s.add_argument(
        "--data-dir", required=True, metavar="DIR", help="where the log and snapshots live"
    )
    s.add_argument(
        "--join",
        action="store_true",
        help="join an existing cluster (add the member with POST /members first)",
    )
    s.add_argument(
        "--cluster-id",
        type=_arg(parse_cluster_id),
        default=parse_cluster_id(None),
        metavar="ID",
        help="number or token shared by all members; peers of another cluster id are refused",
    )
    s.add_argument(
        "--snapshot-count",
        type=_arg(_positive_int),
        default=10_000,
        metavar="N",
        help="snapshot every N applied entries (default 10000)",
    )
    s.add_argument(
        "--snapshot-catchup-entries",
        type=_arg(_non_negative_int),
        default=None,
        metavar="N",
        help="entries kept behind a snapshot for slow followers "
        "(default: min(5000, snapshot-count))",
    )
    s.add_argument(
        "--tick-ms",
        type=_arg(_positive_int),
        default=100,
        metavar="MS",
        help="raft tick interval (default 100)",
    )
    s.add_argument(
        "--election-ticks",
        type=_arg(_positive_int),
        default=10,
        metavar="N",
        help="election timeout in ticks (default 10)",
    )
    s.add_argument(
        "--heartbeat-ticks",
        type=_arg(_positive_int),
        default=1,
        metavar="N",
        help="heartbeat interval in ticks (default 1)",
    )
    s.add_argument(
        "--request-timeout",
        type=_arg(_positive_float),
        default=5.0,
        metavar="S",
        help="how long a request may wait for raft (default 5)",
    )
    s.add_argument(
        "--max-value-size",
        type=_arg(_size),
        default=1 << 20,
        metavar="BYTES",
        help="largest value accepted (default 1MiB)",
    )
    s.add_argument(
        "--advertise-http",
        type=_arg(parse_address),
        default=None,
        metavar="HOST:PORT",
        help="HTTP address announced to the cluster (default: --http)",
    )
    s.add_argument(
        "--listen-peer",
        type=_arg(parse_address),
        default=None,
        metavar="HOST:PORT",
        help="bind the peer listener here (default: this member's --cluster address)",
    )
    s.add_argument(
        "--wal-segment-size",
        type=_arg(_size),
        default=64 << 20,
        metavar="BYTES",
        help="WAL segment size (default 64MiB)",
    )
    tls = s.add_argument_group(
        "peer TLS", "mutual TLS between members (all three files, or none for plain TCP)"
    )
    tls.add_argument("--peer-cert-file", metavar="PEM", help="this member's certificate chain")
    tls.add_argument("--peer-key-file", metavar="PEM", help="this member's private key")
    tls.add_argument(
        "--peer-ca-file", metavar="PEM", help="the CA bundle peers are checked against"
    )
    tls.add_argument(
        "--peer-no-hostname-check",
        action="store_true",
        help="do not check peer certificates' names against the dialled addresses",
    )
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--access-log", action="store_true", help="log every HTTP request")
    s.add_argument(
        "--persist",
        choices=["auto", "inline", "thread"],
        default="auto",
        help="write each batch of raft output on the event loop (inline) or in a worker "
        "thread; auto (default): inline while the disk syncs in under 0.5 ms",
    )
    s.add_argument(
        "--event-loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the event loop implementation: asyncio's own, or uvloop's (needs the "
        "uvloop package, e.g. pip install 'raftcore[fast]'; about a third more "
        "throughput under load, see bench/e2e.md)",
    )
    s.set_defaults(func=_cmd_serve)

    # ------------------------------------------------------------- client commands
    def client(name: str, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        _client_opts(c)
        return c

    c = client("put", "write a key")
    c.add_argument("key")
    c.add_argument("value", nargs="?", default=None, help="the value (omitted or '-': read stdin)")
    c.set_defaults(func=_cmd_put)

    c = client("get", "read a key (linearizable unless --serializable)")
    c.add_argument("key")
    c.add_argument(
        "--serializable",
        action="store_true",
        help="read the contacted member's state without asking the leader",
    )
    c.add_argument("--json", action="store_true", help="print the JSON answer")
    c.set_defaults(func=_cmd_get)

    c = client("delete", "delete a key")
    c.add_argument("key")
    c.set_defaults(func=_cmd_delete)

    m = sub.add_parser("members", help="list or change the membership")
    msub = m.add_subparsers(dest="members_command", metavar="ACTION", required=True)
    c = msub.add_parser("list", help="list the members")
    _client_opts(c)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_members_list)
    c = msub.add_parser("add", help="add a member (a voter, or a learner with --learner)")
    _client_opts(c)
    c.add_argument("id", type=_arg(parse_member_id))
    c.add_argument("peer_address", type=_arg(parse_address), metavar="PEER_HOST:PORT")
    c.add_argument("--http-address", type=_arg(parse_address), default=None, metavar="HOST:PORT")
    c.add_argument("--learner", action="store_true")
    c.set_defaults(func=_cmd_members_add)
    c = msub.add_parser("remove", help="remove a member")
    _client_opts(c)
    c.add_argument("id", type=_arg(parse_member_id))
    c.set_defaults(func=_cmd_members_remove)
    c = msub.add_parser("promote", help="promote a learner to voter")
    _client_opts(c)
    c.add_argument("id", type=_arg(parse_member_id))
    c.set_defaults(func=_cmd_members_promote)

    c = client("leader", "transfer leadership to a member")
    c.add_argument("id", type=_arg(parse_member_id))
    c.set_defaults(func=_cmd_leader)

    c = client("status", "show every endpoint's raft status")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_status)

    d = sub.add_parser(
        "demo",
        help="run a local 3-node cluster, kill its leader, watch it recover",
        description="Start three members as local processes, write and read, kill the "
        "leader with SIGKILL, check that a new leader is elected and no acknowledged write "
        "is lost, restart the killed member and watch it catch up. Cleans up after itself.",
    )
    d.add_argument("--keys", type=_arg(_positive_int), default=20, help="keys written per phase")
    d.add_argument(
        "--keep-logs",
        action="store_true",
        help="print the members' logs at the end (they are deleted with the temp dir)",
    )
    d.set_defaults(func=_cmd_demo)
    return p


def _client_opts(p: argparse.ArgumentParser) -> None:
    default = os.environ.get(ENDPOINTS_ENV, DEFAULT_ENDPOINT)
    p.add_argument(
        "--endpoints",
        type=_arg(_endpoints),
        default=None,
        metavar="HOST:PORT,...",
        help=f"members to talk to (default ${ENDPOINTS_ENV} or {default})",
    )
    p.add_argument(
        "--timeout",
        type=_arg(_positive_float),
        default=10.0,
        metavar="S",
        help="per-request timeout in seconds (default 10)",
    )


def _client_endpoints(args: argparse.Namespace) -> list[str]:
    if args.endpoints is not None:
        return list(args.endpoints)
    return _endpoints(os.environ.get(ENDPOINTS_ENV, DEFAULT_ENDPOINT))


# -------------------------------------------------------------------------- commands


def _cmd_serve(args: argparse.Namespace) -> int:
    from raftkv.server import ServerConfig

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    tls_files = (args.peer_cert_file, args.peer_key_file, args.peer_ca_file)
    peer_tls = None
    if any(tls_files):
        if not all(tls_files):
            print(
                "raftkv serve: error: --peer-cert-file, --peer-key-file and --peer-ca-file "
                "go together",
                file=sys.stderr,
            )
            return 2
        from raftkv.tls import TLSConfig

        peer_tls = TLSConfig(
            args.peer_cert_file,
            args.peer_key_file,
            args.peer_ca_file,
            check_hostname=not args.peer_no_hostname_check,
        )
    catchup = args.snapshot_catchup_entries
    if catchup is None:
        catchup = min(5000, args.snapshot_count)
    cfg = ServerConfig(
        id=args.id,
        cluster=args.cluster,
        http=args.http,
        data_dir=args.data_dir,
        join=args.join,
        cluster_id=args.cluster_id,
        snapshot_count=args.snapshot_count,
        snapshot_catchup_entries=catchup,
        tick_interval=args.tick_ms / 1000.0,
        election_ticks=args.election_ticks,
        heartbeat_ticks=args.heartbeat_ticks,
        request_timeout=args.request_timeout,
        max_value_size=args.max_value_size,
        advertise_http=format_address(args.advertise_http) if args.advertise_http else "",
        listen_peer=args.listen_peer,
        wal_segment_size=args.wal_segment_size,
        peer_tls=peer_tls,
        persist=args.persist,
    )
    try:
        cfg.validate()
    except ValueError as err:
        print(f"raftkv serve: error: {err}", file=sys.stderr)
        return 2
    try:
        loop_factory = event_loop_factory(args.event_loop)
    except ValueError as err:
        print(f"raftkv serve: error: {err}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_serve(cfg, args.access_log))
    except KeyboardInterrupt:
        return 0


async def _serve(cfg: Any, access_log: bool) -> int:
    from raftkv.service import run_member

    loop = asyncio.get_running_loop()
    logging.getLogger("raftkv").info(
        "raftkv: event loop %s.%s", type(loop).__module__, type(loop).__qualname__
    )
    return await run_member(cfg, access_log=access_log)


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``--event-loop NAME`` (None: asyncio's default).

    ValueError with what to do when the choice is unknown or not installed.
    """
    if name == "asyncio":
        return None
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ValueError(
                "--event-loop uvloop needs the uvloop package, which is not installed "
                "(pip install 'raftcore[fast]' or pip install uvloop)"
            ) from None
        return uvloop.new_event_loop
    raise ValueError(f"unknown event loop {name!r} (choose asyncio or uvloop)")


def _run_client(args: argparse.Namespace, body: Callable[[Any], Coroutine[Any, Any, int]]) -> int:
    from raftkv.client import ClientError, KVClient

    async def go() -> int:
        async with KVClient(_client_endpoints(args), timeout=args.timeout) as client:
            return await body(client)

    try:
        return asyncio.run(go())
    except ClientError as err:
        where = f" ({err.endpoint})" if err.endpoint and err.status else ""
        print(f"raftkv: error{where}: {err.message}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"raftkv: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _cmd_put(args: argparse.Namespace) -> int:
    if args.value is None or args.value == "-":
        value = sys.stdin.buffer.read()
    else:
        value = os.fsencode(args.value)

    async def body(c: Any) -> int:
        res = await c.put(args.key, value)
        print(f"OK (index {res['index']})")
        return 0

    return _run_client(args, body)


def _cmd_get(args: argparse.Namespace) -> int:
    async def body(c: Any) -> int:
        item = await c.get(args.key, serializable=args.serializable)
        if item is None:
            print(f"raftkv: key not found: {args.key}", file=sys.stderr)
            return 1
        if args.json:
            value: bytes = item["value"]
            try:
                item["value"] = value.decode("utf-8")
            except UnicodeDecodeError:
                import base64

                item["value"] = base64.b64encode(value).decode("ascii")
            print(json.dumps(item, indent=2))
        else:
            out = sys.stdout.buffer
            out.write(item["value"])
            if sys.stdout.isatty():
                out.write(b"\n")
            out.flush()
        return 0

    return _run_client(args, body)


def _cmd_delete(args: argparse.Namespace) -> int:
    async def body(c: Any) -> int:
        if await c.delete(args.key):
            print("OK")
            return 0
        print(f"raftkv: key not found: {args.key}", file=sys.stderr)
        return 1

    return _run_client(args, body)


def _print_members(body: dict[str, Any]) -> None:
    lead = body.get("leader", 0)
    rows = [("ID", "ROLE", "PEER ADDRESS", "HTTP ADDRESS")]
    for m in body.get("members", []):
        role = "learner" if m.get("learner") else "voter"
        if m.get("id") == lead:
            role += " (leader)"
        rows.append(
            (str(m.get("id")), role, m.get("peer_address", ""), m.get("http_address") or "-")
        )
    _print_table(rows)


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _cmd_members_list(args: argparse.Namespace) -> int:
    async def body(c: Any) -> int:
        res = await c.members()
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            _print_members(res)
        return 0

    return _run_client(args, body)


def _cmd_members_add(args: argparse.Namespace) -> int:
    async def body(c: Any) -> int:
        http = format_address(args.http_address) if args.http_address else ""
        res = await c.add_member(args.id, format_address(args.peer_address), http, args.learner)
        kind = "learner" if args.learner else "voter"
        print(f"added member {args.id} as a {kind}")
        print("start it with:")
        print(
            f"  raftkv serve --id {args.id} --join --cluster {res['cluster']} "
            f"--http {http or 'HOST:PORT'} --data-dir DIR"
        )
        return 0

    return _run_client(args, body)


def _cmd_members_remove(args: argparse.Namespace) -> int:
    async def body(c: Any) -> int:
        await c.remove_member(args.id)
        print(f"removed member {args.id}")
        return 0

    return _run_client(args, body)


def _cmd_members_promote(args: argparse.Namespace) -> int:
    async def body(c: Any) -> int:
        await c.promote_member(args.id)
        print(f"promoted member {args.id} to voter")
        return 0

    return _run_client(args, body)


def _cmd_leader(args: argparse.Namespace) -> int:
    async def body(c: Any) -> int:
        lead = await c.transfer_leader(args.id)
        print(f"member {lead} is the leader")
        return 0

    return _run_client(args, body)


def _cmd_status(args: argparse.Namespace) -> int:
    from raftkv.client import ClientError

    async def body(c: Any) -> int:
        results = await c.status_all()
        if args.json:
            out = {
                ep: (r if not isinstance(r, ClientError) else {"error": r.message})
                for ep, r in results.items()
            }
            print(json.dumps(out, indent=2))
        else:
            rows = [("ENDPOINT", "ID", "STATE", "TERM", "LEADER", "COMMIT", "APPLIED", "KEYS")]
            errors = []
            for ep, r in results.items():
                if isinstance(r, ClientError):
                    rows.append((ep, "-", "unreachable", "-", "-", "-", "-", "-"))
                    errors.append(r.message)
                    continue
                rows.append(
                    (
                        ep,
                        str(r["id"]),
                        str(r["raft_state"]).removeprefix("State"),
                        str(r["term"]),
                        str(r["lead"]),
                        str(r["commit"]),
                        str(r["applied"]),
                        str(r["keys"]),
                    )
                )
            _print_table(rows)
            for e in errors:
                print(e, file=sys.stderr)
        return 0 if all(not isinstance(r, ClientError) for r in results.values()) else 1

    return _run_client(args, body)


def _cmd_demo(args: argparse.Namespace) -> int:
    from raftkv.demo import run_demo

    return run_demo(keys=args.keys, show_logs=args.keep_logs)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``raftkv`` and ``python -m raftkv``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
