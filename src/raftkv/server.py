"""One raftkv member: the raft node, its durable log, the peer transport and the
key-value state machine, driven on one asyncio event loop.

The Ready loop
==============

For every :class:`~raftcore.Ready` the node offers, in this order:

1. **persist** — a received snapshot first (``DiskStorage.apply_snapshot``), then the
   new entries and hard state in one group commit (``DiskStorage.save``, fsync iff
   ``must_sync``). Where: ``--persist inline`` blocks the event loop for the write,
   ``thread`` runs it in a worker thread so the loop keeps serving meanwhile, and
   ``auto`` (the default) writes inline while the disk syncs in under half a
   millisecond (probed at start, watched after every sync) and in a thread otherwise:
   on a fast disk the hand-off to a thread costs more than the sync it hides;
2. **send** the messages (only now: a vote or an entry must be durable before a
   peer can count on it). A **leader** sends *before* persisting: its followers then
   write in parallel with it (Raft thesis §10.2.1, etcd's server does the same); this
   is safe because raft counts the leader's own copy only once it is persisted (on
   ``advance``), and a leader's term and vote were made durable before it could win;
3. **apply** — a received snapshot replaces the state machine; committed entries are
   applied in order; conf changes are checked against the member table and handed to
   raft (refused ones are skipped identically on every member);
4. **read states** — answered ReadIndex requests are released;
5. **snapshot** — every ``snapshot_count`` applied entries, and after every applied
   membership change, the state machine is written to a snapshot and the log is
   compacted, keeping ``snapshot_catchup_entries`` entries for slow followers (further
   behind, a follower gets the snapshot, streamed by the transport);
6. **advance**.

Requests
========

Any member serves any request: writes are proposed locally and raft forwards them to
the leader; a linearizable read asks raft for a read index (forwarded to the leader,
which confirms its leadership with a quorum) and waits until this member has applied
up to it. A write returns once this member applied it: a proposal carries a random
request id, and applying the entry completes the waiting request. Concurrent
linearizable reads share one ReadIndex round.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import aiohttp

from raftcore.async_node import AsyncNode
from raftcore.config import Config
from raftcore.errors import (
    DecodeError,
    NodeTimeoutError,
    ProposalDroppedError,
    RaftError,
    StoppedError,
)
from raftcore.logger import StdlibLogger
from raftcore.raft import StateType
from raftcore.raftpb.confchange import unmarshal_conf_change
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryType,
    Message,
    Snapshot,
)
from raftcore.rawnode import Peer, Ready, SnapshotStatus, SoftState
from raftcore.wal import DiskStorage
from raftkv.cluster import Address, format_address, parse_address
from raftkv.errors import APIError, Conflict, Gone, NotFound, TooLarge, Unavailable
from raftkv.kvstore import (
    ApplyResult,
    CommandDecodeError,
    ConfChangeContext,
    Delete,
    Item,
    KVStore,
    Member,
    Publish,
    Put,
    SnapshotDecodeError,
    check_key,
    decode_command,
    encode_command,
    member_context,
)
from raftkv.metrics import Registry, labelled_counter_lines
from raftkv.tls import TLSConfig
from raftkv.transport import Transport, TransportConfig

__all__ = [
    "MAX_VALUE_SIZE",
    "META_FILE",
    "RAFT_DIR",
    "RaftKVServer",
    "ServerConfig",
    "StartupError",
]

log: Final = logging.getLogger("raftkv.server")

#: Identity of the member a data directory belongs to.
META_FILE: Final = "member.json"
#: Where the WAL and snapshot files live inside the data directory.
RAFT_DIR: Final = "raft"

_T = TypeVar("_T")

#: Largest value: an entry travels in one transport frame (16 MiB by default), and a
#: proposal may not exceed raft's uncommitted-size limit either.
MAX_VALUE_SIZE: Final = 8 * 1024 * 1024


class StartupError(Exception):
    """The member cannot start; the message says why (bad data dir, port in use ...)."""


@dataclass(slots=True)
class ServerConfig:
    """Everything ``raftkv serve`` takes; :meth:`validate` explains bad values."""

    id: int
    #: Peer addresses of the members this one knows at start: on a new cluster, all
    #: founding members (identical on each); when joining, the current members plus
    #: this one. Must contain ``id``.
    cluster: dict[int, Address]
    #: Where the HTTP API listens.
    http: Address
    data_dir: str
    join: bool = False
    cluster_id: int = 1
    snapshot_count: int = 10_000
    snapshot_catchup_entries: int = 5_000
    tick_interval: float = 0.1
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    request_timeout: float = 5.0
    max_value_size: int = 1024 * 1024
    #: The HTTP address other members and clients are told (default: ``http``).
    advertise_http: str = ""
    #: Bind the peer listener here instead of this member's ``cluster`` address.
    listen_peer: Address | None = None
    wal_segment_size: int = 64 * 1024 * 1024
    max_size_per_msg: int = 1024 * 1024
    max_inflight_msgs: int = 256
    #: Raft drops proposals beyond this many bytes of uncommitted payload.
    max_uncommitted_size: int = 64 * 1024 * 1024
    #: Where Readys are written: "auto", "inline" or "thread" (see the module doc).
    persist: str = "auto"
    #: Mutual TLS between peers (certificate, key, CA bundle), or None for plain TCP.
    peer_tls: TLSConfig | None = None
    #: Extra settings for the transport (tests make reconnects faster).
    transport_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.id not in self.cluster:
            raise ValueError(
                f"member {self.id} is not in the cluster list; add {self.id}=HOST:PORT "
                "(its own peer address) to --cluster"
            )
        positive = {
            "snapshot-count": self.snapshot_count,
            "election-ticks": self.election_ticks,
            "heartbeat-ticks": self.heartbeat_ticks,
            "max-value-size": self.max_value_size,
            "wal-segment-size": self.wal_segment_size,
        }
        for name, v in positive.items():
            if v <= 0:
                raise ValueError(f"--{name} must be positive, got {v}")
        if self.snapshot_catchup_entries < 0:
            raise ValueError("--snapshot-catchup-entries must not be negative")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ValueError("--election-ticks must be greater than --heartbeat-ticks")
        if not 0.001 <= self.tick_interval <= 10:
            raise ValueError("--tick-ms must be between 1 and 10000")
        if not 0 < self.request_timeout <= 3600:
            raise ValueError("--request-timeout must be between 0 and 3600 seconds")
        if self.wal_segment_size < 64 * 1024:
            raise ValueError("--wal-segment-size must be at least 64 KiB")
        if self.max_value_size > MAX_VALUE_SIZE:
            raise ValueError(
                f"--max-value-size must be at most {MAX_VALUE_SIZE} bytes (an entry must fit "
                "in one peer frame)"
            )
        if self.peer_tls is not None:
            for what, path in (
                ("--peer-cert-file", self.peer_tls.cert_file),
                ("--peer-key-file", self.peer_tls.key_file),
                ("--peer-ca-file", self.peer_tls.ca_file),
            ):
                if not os.path.isfile(path):
                    raise ValueError(f"{what} {path!r} does not exist or is not a file")
        if self.persist not in PERSIST_MODES:
            raise ValueError(
                f"--persist must be one of {', '.join(PERSIST_MODES)}, got {self.persist!r}"
            )
        if not 1 <= self.cluster_id < 2**64:
            raise ValueError("cluster id must be between 1 and 2**64-1")

    @property
    def peer_address(self) -> Address:
        return self.cluster[self.id]

    @property
    def election_timeout(self) -> float:
        return self.tick_interval * self.election_ticks


PERSIST_MODES: Final = ("auto", "inline", "thread")
_PROBE_PREFIX: Final = ".sync-probe-"
#: persist=auto writes inline while syncs take less than this (seconds, smoothed).
INLINE_SYNC_LIMIT: Final = 0.0005


def probe_sync_latency(directory: str | Path, rounds: int = 16) -> float:
    """Median seconds of a small write + fdatasync of a scratch file in ``directory``
    (scratch files a crash left behind are removed first)."""
    for stale in Path(directory).glob(_PROBE_PREFIX + "*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, path = tempfile.mkstemp(dir=directory, prefix=_PROBE_PREFIX)
    try:
        os.pwrite(fd, bytes(4096), 0)
        os.fsync(fd)
        lat = []
        for i in range(rounds):
            t0 = time.perf_counter()
            os.pwrite(fd, b"x" * 128, (i * 128) % 4096)
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t0)
        lat.sort()
        return lat[len(lat) // 2]
    finally:
        os.close(fd)
        os.unlink(path)


def _soft_state_name(st: StateType) -> str:
    return st.name.removeprefix("State")


class RaftKVServer:
    """One member. ``await start()``, serve requests through the coroutine methods
    (each raises :class:`~raftkv.errors.APIError` subclasses for the HTTP layer),
    ``await stop()``. :attr:`done` is set once the member stopped, on its own (removed
    from the cluster, fatal error; see :attr:`exit_code`) or by :meth:`stop`.
    """

    def __init__(self, cfg: ServerConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.id = cfg.id
        self.advertise_http = cfg.advertise_http or format_address(cfg.http)
        self.kv = KVStore()
        self.storage: DiskStorage | None = None
        self.transport: Transport | None = None
        self.node: AsyncNode | None = None
        self.applied = 0
        self.snapshot_index = 0
        self.conf_state = ConfState()
        self.lead = 0
        self.raft_state = StateType.StateFollower
        self.term = 0
        self.commit = 0
        self.done = asyncio.Event()
        self.exit_code = 0
        self.exit_reason = ""
        self.removed = False
        self._stopping = False
        self._started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_task: asyncio.Task[None] | None = None
        # Requests waiting for their entry to be applied, by request id.
        self._waiters: dict[bytes, asyncio.Future[ApplyResult]] = {}
        # Requests waiting for the applied index to reach a value: (index, seq, future).
        self._apply_heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        # Linearizable reads waiting for the next ReadIndex round, and the rounds'
        # contexts in flight.
        self._read_pending: list[asyncio.Future[int]] = []
        self._read_wake = asyncio.Event()
        self._read_states: dict[bytes, asyncio.Future[int]] = {}
        self._lead_changed = asyncio.Event()
        self._no_leader_since: float | None = time.monotonic()
        self._conf_inflight = False
        # A membership change was applied in this Ready: snapshot at once, so that the
        # snapshot raft sends to a new member includes that member (a member refuses
        # a snapshot whose configuration does not contain it).
        self._conf_changed = False
        self._addresses: dict[int, Address] = {}
        # persist=auto: whether Readys are written on the loop, and the smoothed
        # duration of the inline syncs that decides it.
        self._persist_inline = cfg.persist == "inline"
        self._sync_ewma = 0.0
        self.metrics = Registry()
        self._init_metrics()

    # ------------------------------------------------------------------ metrics

    def _init_metrics(self) -> None:
        r = self.metrics
        self.m_proposals = r.counter("raftkv_proposals_total", "Proposals made by this member.")
        self.m_proposals_failed = r.counter(
            "raftkv_proposals_failed_total",
            "Proposals that failed or timed out (result unknown for timeouts).",
        )
        self.m_committed = r.counter(
            "raftkv_entries_committed_total", "Committed entries handed to this member."
        )
        self.m_applied = r.counter("raftkv_entries_applied_total", "Entries applied.")
        r.gauge("raftkv_commit_index", "Highest index known committed.", fn=lambda: self.commit)
        r.gauge("raftkv_applied_index", "Highest index applied.", fn=lambda: self.applied)
        r.gauge("raftkv_term", "Current raft term.", fn=lambda: self.term)
        r.gauge(
            "raftkv_is_leader",
            "1 if this member is the leader.",
            fn=lambda: 1 if self.raft_state == StateType.StateLeader else 0,
        )
        r.gauge("raftkv_has_leader", "1 if a leader is known.", fn=lambda: 1 if self.lead else 0)
        r.gauge("raftkv_keys", "Keys in the store.", fn=lambda: len(self.kv))
        r.gauge("raftkv_members", "Members in the member table.", fn=lambda: len(self.kv.members))
        self.m_leader_changes = r.counter(
            "raftkv_leader_changes_total", "Times this member saw a new leader."
        )
        self.m_elections = r.counter(
            "raftkv_elections_total", "Times this member started an election (became candidate)."
        )
        self.m_apply_latency = r.histogram(
            "raftkv_apply_duration_seconds", "Time to apply one batch of committed entries."
        )
        self.m_proposal_latency = r.histogram(
            "raftkv_proposal_duration_seconds", "Write latency: proposal to applied on this member."
        )
        self.m_fsync_latency = r.histogram(
            "raftkv_wal_fsync_duration_seconds", "Synced WAL writes (write plus fsync)."
        )
        self.m_snapshots = r.counter("raftkv_snapshots_created_total", "Snapshots created.")
        self.m_snapshots_applied = r.counter(
            "raftkv_snapshots_applied_total", "Snapshots received from the leader and applied."
        )
        self.m_read_index = r.counter(
            "raftkv_read_index_rounds_total", "ReadIndex rounds (shared by concurrent reads)."
        )
        self.m_http = r.counter(
            "raftkv_http_requests_total", "HTTP requests by method and status.", ("method", "code")
        )
        r.add_collector(self._transport_metric_lines)

    def _transport_metric_lines(self) -> list[str]:
        t = self.transport
        if t is None:
            return []
        d = t.metrics.as_dict()
        lines: list[str] = []
        for key in (
            "connections_accepted",
            "handshakes_refused",
            "tls_handshakes_failed",
            "connections_rejected",
            "messages_unknown_peer",
        ):
            name = f"raftkv_transport_{key}_total"
            lines += [f"# HELP {name} Transport counter {key}.", f"# TYPE {name} counter"]
            lines.append(f"{name} {d[key]}")
        peers: dict[int, dict[str, int]] = d["peers"]
        if peers:
            for key in next(iter(peers.values())):
                values = {str(pid): float(pm[key]) for pid, pm in peers.items()}
                lines += labelled_counter_lines(
                    f"raftkv_transport_peer_{key}_total",
                    f"Transport counter {key}, per peer.",
                    "counter",
                    "peer",
                    values,
                )
        return lines

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the data directory, start transport and raft node and the loops.

        Raises :class:`StartupError` with a clear message if the member cannot start.
        """
        cfg = self.cfg
        data = Path(cfg.data_dir)
        try:
            (data / RAFT_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StartupError(f"cannot create data directory {data}: {err}") from err
        self._check_meta(data)
        try:
            storage = await asyncio.to_thread(
                DiskStorage.open,
                data / RAFT_DIR,
                segment_size=cfg.wal_segment_size,
                logger=StdlibLogger(logging.getLogger("raftcore.wal")),
            )
        except (RaftError, OSError) as err:
            raise StartupError(f"cannot open the raft log in {data / RAFT_DIR}: {err}") from err
        self.storage = storage
        if cfg.persist == "auto":
            try:
                sync = await asyncio.to_thread(probe_sync_latency, data / RAFT_DIR)
            except OSError as err:
                log.warning(
                    "member %d: cannot probe the disk (%s); writing in a thread", self.id, err
                )
                sync = float("inf")
            self._persist_inline = sync < INLINE_SYNC_LIMIT
            self._sync_ewma = sync if self._persist_inline else 0.0
            why = f"--persist auto, fdatasync {sync * 1000:.2f} ms"
        else:
            why = f"--persist {cfg.persist}"
        log.info(
            "member %d: writing raft output %s (%s)",
            self.id,
            "on the event loop" if self._persist_inline else "in a worker thread",
            why,
        )
        try:
            await self._start_with(storage, data)
        except BaseException:
            await self._teardown()
            raise
        self._started = True

    async def _start_with(self, storage: DiskStorage, data: Path) -> None:
        cfg = self.cfg
        hs, cs = storage.initial_state()
        snap = storage.snapshot()
        fresh = hs.is_empty() and storage.last_index() == 0 and snap.metadata.index == 0
        if not snap.is_empty():
            try:
                self.kv.restore(snap.data)
            except SnapshotDecodeError as err:
                raise StartupError(
                    f"the snapshot in {data / RAFT_DIR} is unreadable: {err}"
                ) from err
            self.applied = self.snapshot_index = snap.metadata.index
        self.conf_state = cs
        self.term, self.commit = hs.term, hs.commit
        self._write_meta(data)

        # Peers the transport must know (it refuses connections from strangers): the
        # seeds from --cluster, the member table of the snapshot, and every member
        # added by a conf change still in the log.
        self._addresses = {i: a for i, a in cfg.cluster.items() if i != self.id}
        for m in self.kv.members.values():
            self._remember_member(m)
        if storage.last_index() >= storage.first_index():
            self._learn_addresses(
                storage.entries(storage.first_index(), storage.last_index() + 1, 2**64 - 1)
            )

        host, port = cfg.listen_peer or cfg.peer_address
        tcfg = TransportConfig(
            id=self.id,
            cluster_id=cfg.cluster_id,
            host=host,
            port=port,
            tls=cfg.peer_tls,
            **cfg.transport_options,
        )
        try:
            transport = Transport(
                tcfg,
                on_message=self._on_peer_message,
                report_unreachable=self._report_unreachable,
                report_snapshot=self._report_snapshot,
                peers=self._addresses,
            )
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
            raise StartupError(f"cannot set up the peer transport: {err}") from err
        try:
            await transport.start()
        except OSError as err:
            raise StartupError(
                f"cannot listen for peers on {format_address((host, port))}: {err.strerror or err}"
            ) from err
        self.transport = transport

        rcfg = Config(
            id=self.id,
            election_tick=cfg.election_ticks,
            heartbeat_tick=cfg.heartbeat_ticks,
            storage=storage,
            applied=self.applied,
            max_size_per_msg=cfg.max_size_per_msg,
            max_inflight_msgs=cfg.max_inflight_msgs,
            max_uncommitted_entries_size=cfg.max_uncommitted_size,
            check_quorum=True,
            pre_vote=True,
            step_down_on_removal=True,
            logger=StdlibLogger(logging.getLogger("raftcore")),
        )
        if fresh and not cfg.join:
            # Founding member: the bootstrap entries must be byte-identical on every
            # founding member, so they are built from --cluster alone, ids ascending.
            peers = [Peer(i, member_context(cfg.cluster[i]).encode()) for i in sorted(cfg.cluster)]
            log.info(
                "member %d: bootstrapping a new cluster of %d members (%s)",
                self.id,
                len(peers),
                ", ".join(str(p.id) for p in peers),
            )
            self.node = AsyncNode.start(rcfg, peers)
        else:
            if fresh:
                log.info("member %d: joining an existing cluster; waiting for its leader", self.id)
            else:
                log.info(
                    "member %d: restarting from %s (term %d, commit %d, snapshot at %d, "
                    "log %d..%d)",
                    self.id,
                    data,
                    hs.term,
                    hs.commit,
                    snap.metadata.index,
                    storage.first_index(),
                    storage.last_index(),
                )
            self.node = AsyncNode.restart(rcfg)
        loop = asyncio.get_running_loop()
        for coro, name in (
            (self._ready_loop(), "ready"),
            (self._ticker(), "ticker"),
            (self._read_loop(), "read-index"),
            (self._publish_loop(), "publish"),
            (self._removal_watch(), "removal-watch"),
        ):
            self._tasks.append(loop.create_task(coro, name=f"raftkv-{self.id}-{name}"))

    def _check_meta(self, data: Path) -> None:
        path = data / META_FILE
        try:
            raw = path.read_text()
        except FileNotFoundError:
            return
        except OSError as err:
            raise StartupError(f"cannot read {path}: {err}") from err
        try:
            meta = json.loads(raw)
            mid, cid = int(meta["id"]), int(meta["cluster_id"])
        except (ValueError, KeyError, TypeError) as err:
            raise StartupError(f"{path} is damaged ({err}); is this a raftkv data dir?") from err
        if mid != self.id:
            raise StartupError(
                f"data directory {data} belongs to member {mid}, not {self.id}; "
                f"start it with --id {mid} or use another --data-dir"
            )
        if cid != self.cfg.cluster_id:
            raise StartupError(
                f"data directory {data} belongs to cluster id {cid:#x}, not {self.cfg.cluster_id:#x}"
            )

    def _write_meta(self, data: Path) -> None:
        path = data / META_FILE
        if path.exists():
            return
        tmp = path.with_suffix(".tmp")
        body = json.dumps({"id": self.id, "cluster_id": self.cfg.cluster_id}) + "\n"
        try:
            with open(tmp, "w") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            raise StartupError(f"cannot write {path}: {err}") from err

    async def stop(self) -> None:
        """Stop everything (idempotent); pending requests fail with 503."""
        if self._stopping:
            await self.done.wait()
            return
        self._stopping = True
        self._fail_waiters(Unavailable("member is shutting down", retryable=False))
        await self._teardown()
        self.done.set()

    async def _teardown(self) -> None:
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        if self.node is not None:
            await self.node.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.transport is not None:
            await self.transport.stop()
        if self.storage is not None:
            storage = self.storage
            try:
                await asyncio.to_thread(storage.close)
            except (RaftError, OSError) as err:
                log.error("member %d: closing the raft log failed: %s", self.id, err)

    def _finish(self, code: int, reason: str) -> None:
        """Stop on our own (removal, fatal error); :attr:`done` is set when stopped."""
        if self._stopping:
            return
        self.exit_code = code
        self.exit_reason = reason
        if code:
            log.critical("member %d: %s", self.id, reason)
        else:
            log.warning("member %d: %s", self.id, reason)
        self._stop_task = asyncio.get_running_loop().create_task(self.stop())

    def _fail_waiters(self, err: APIError) -> None:
        """Answer every waiting request with ``err`` (we are stopping or removed)."""
        futs: list[asyncio.Future[Any]] = [
            *self._waiters.values(),
            *self._read_pending,
            *self._read_states.values(),
            *(f for _, _, f in self._apply_heap),
        ]
        for fut in futs:
            if not fut.done():
                fut.set_exception(err)
                # Its waiter may be gone already: retrieve the exception so asyncio
                # does not log it as never retrieved.
                fut.add_done_callback(_consume)

    # ----------------------------------------------------------- transport glue

    async def _on_peer_message(self, m: Message) -> None:
        node = self.node
        if node is None or self._stopping:
            return
        with contextlib.suppress(StoppedError):
            await node.step(m)

    def _report_unreachable(self, peer_id: int) -> None:
        if self.node is not None:
            with contextlib.suppress(StoppedError):
                self.node.report_unreachable(peer_id)

    def _report_snapshot(self, peer_id: int, status: SnapshotStatus) -> None:
        if self.node is not None:
            with contextlib.suppress(StoppedError):
                self.node.report_snapshot(peer_id, status)

    def _remember_member(self, m: Member) -> None:
        if m.id == self.id:
            return
        try:
            addr = parse_address(m.peer_address)
        except ValueError:
            log.error("member %d has an invalid peer address %r", m.id, m.peer_address)
            return
        self._add_peer(m.id, addr)

    def _add_peer(self, mid: int, addr: Address) -> None:
        if mid == self.id:
            return
        self._addresses[mid] = addr
        if self.transport is not None:
            self.transport.add_peer(mid, addr)

    def _learn_addresses(self, entries: Sequence[Entry]) -> None:
        """Add the peers that conf changes in ``entries`` add, as soon as the entries
        are persisted: a member that lags behind must accept its new leader's
        connection even before it applied the change that added that leader."""
        for e in entries:
            if e.type == EntryType.EntryNormal:
                continue
            try:
                cc = _as_simple(unmarshal_conf_change(e.type, e.data))
            except (DecodeError, ValueError):
                continue
            if cc is None or cc.type not in (
                ConfChangeType.ConfChangeAddNode,
                ConfChangeType.ConfChangeAddLearnerNode,
            ):
                continue
            ctx = ConfChangeContext.decode(cc.context)
            if ctx is None or not ctx.peer_address:
                continue
            try:
                addr = parse_address(ctx.peer_address)
            except ValueError:
                continue
            if cc.node_id not in self._addresses or self._addresses[cc.node_id] != addr:
                self._add_peer(cc.node_id, addr)

    # --------------------------------------------------------------- raft loops

    async def _ticker(self) -> None:
        node = self.node
        assert node is not None
        loop = asyncio.get_running_loop()
        interval = self.cfg.tick_interval
        next_at = loop.time()
        while True:
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -10 * interval:
                next_at = loop.time()  # far behind (a stall): do not fire a burst
            node.tick()

    async def _ready_loop(self) -> None:
        node = self.node
        assert node is not None
        try:
            async for rd in node.ready():
                await self._handle_ready(rd)
                node.advance()
            if not self._stopping:
                self._finish(2, "raft node stopped unexpectedly")
        except asyncio.CancelledError:
            raise
        except StoppedError as err:
            cause = err.__cause__
            self._finish(2, f"raft node failed: {cause!r}")
        except Exception as err:
            log.exception("member %d: fatal error in the ready loop", self.id)
            self._finish(2, f"fatal error handling raft output: {err}")

    async def _handle_ready(self, rd: Ready) -> None:
        storage = self.storage
        transport = self.transport
        assert storage is not None and transport is not None
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        hs = rd.hard_state
        if hs is not None:
            self.term = hs.term
            self.commit = hs.commit
        snap = rd.snapshot
        if snap is not None and snap.metadata.index == 0:
            snap = None
        # A leader's messages go out first: the followers' writes overlap its own.
        sent = False
        if rd.messages and self.raft_state == StateType.StateLeader:
            transport.send(rd.messages)
            sent = True
        # 1. persist
        if snap is not None:
            await asyncio.to_thread(storage.apply_snapshot, snap)
        if rd.entries or hs is not None:
            inline = self._persist_inline
            if inline and sent and rd.must_sync:
                # One loop turn for the transport to put the messages on the wire
                # before the loop blocks in fdatasync.
                await asyncio.sleep(0)
            t0 = time.perf_counter()
            if inline:
                storage.save(hs, rd.entries, rd.must_sync)
            else:
                await asyncio.to_thread(storage.save, hs, rd.entries, rd.must_sync)
            if rd.must_sync:
                took = time.perf_counter() - t0
                self.m_fsync_latency.observe(took)
                if inline and self.cfg.persist == "auto":
                    self._watch_inline_sync(took)
            if rd.entries:
                self._learn_addresses(rd.entries)
        # 2. send
        if rd.messages and not sent:
            transport.send(rd.messages)
        # 3. apply
        if snap is not None:
            self._restore_snapshot(snap)
        if rd.committed_entries:
            await self._apply_entries(rd.committed_entries)
        # 4. reads
        for rs in rd.read_states:
            fut = self._read_states.pop(bytes(rs.request_ctx), None)
            if fut is not None and not fut.done():
                fut.set_result(rs.index)
        # 5. snapshot
        if self.applied > self.snapshot_index and (
            self._conf_changed or self.applied - self.snapshot_index >= self.cfg.snapshot_count
        ):
            await self._snapshot()
        self._conf_changed = False

    def _watch_inline_sync(self, took: float) -> None:
        # Smoothed over ~20 syncs: one slow sync does not move writes off the loop, a
        # disk that became slow does (for good: a thread is the safe choice there).
        self._sync_ewma += (took - self._sync_ewma) * 0.05
        if self._sync_ewma > INLINE_SYNC_LIMIT * 4:
            self._persist_inline = False
            log.warning(
                "member %d: syncs take %.1f ms on average; writing in a worker thread from now on",
                self.id,
                self._sync_ewma * 1000,
            )

    def _on_soft_state(self, ss: SoftState) -> None:
        if (
            ss.raft_state == StateType.StateCandidate
            and self.raft_state != StateType.StateCandidate
        ):
            self.m_elections.inc()
        self.raft_state = ss.raft_state
        if ss.lead != self.lead:
            if ss.lead:
                self.m_leader_changes.inc()
                self._no_leader_since = None
                log.info("member %d: leader is now %d", self.id, ss.lead)
            else:
                self._no_leader_since = time.monotonic()
            self.lead = ss.lead
            self._lead_changed.set()
            self._lead_changed = asyncio.Event()

    def _restore_snapshot(self, snap: Snapshot) -> None:
        md = snap.metadata
        try:
            self.kv.restore(snap.data)
        except SnapshotDecodeError as err:
            # Raft already replaced our log with it; there is no consistent way on.
            raise RaftError(
                f"snapshot at index {md.index} from the leader is unreadable: {err}"
            ) from err
        log.info(
            "member %d: applied snapshot at index %d (term %d): %d keys, %d members",
            self.id,
            md.index,
            md.term,
            len(self.kv),
            len(self.kv.members),
        )
        self.applied = self.snapshot_index = md.index
        self.conf_state = md.conf_state
        for m in self.kv.members.values():
            self._remember_member(m)
        self.m_snapshots_applied.inc()
        self._wake_applied()

    async def _apply_entries(self, ents: Sequence[Entry]) -> None:
        t0 = time.perf_counter()
        kv = self.kv
        waiters = self._waiters
        applied_n = 0
        self.m_committed.inc(len(ents))
        for e in ents:
            if e.index <= self.applied:
                continue
            if e.type == EntryType.EntryNormal:
                if e.data:
                    try:
                        cmd = decode_command(e.data)
                    except CommandDecodeError as err:
                        log.error("member %d: skipping entry %d: %s", self.id, e.index, err)
                    else:
                        res = kv.apply(cmd, e.index)
                        fut = waiters.pop(cmd.request_id, None)
                        if fut is not None and not fut.done():
                            fut.set_result(res)
            else:
                await self._apply_conf_entry(e)
            self.applied = e.index
            applied_n += 1
        if applied_n:
            self.m_applied.inc(applied_n)
            self.m_apply_latency.observe(time.perf_counter() - t0)
            self._wake_applied()

    async def _apply_conf_entry(self, e: Entry) -> None:
        node = self.node
        assert node is not None
        try:
            cc = _as_simple(unmarshal_conf_change(e.type, e.data))
        except (DecodeError, ValueError) as err:
            log.error("member %d: skipping unreadable conf change at %d: %s", self.id, e.index, err)
            return
        if cc is None:
            log.error("member %d: skipping unsupported joint conf change at %d", self.id, e.index)
            return
        ctx = ConfChangeContext.decode(cc.context)
        reason = self.kv.check_conf_change(cc, ctx)
        if reason:
            log.warning("member %d: refusing conf change at index %d: %s", self.id, e.index, reason)
            result = ApplyResult(e.index, found=False, error=reason)
        else:
            self.conf_state = await node.apply_conf_change(cc)
            self.kv.apply_conf_change(cc, ctx, e.index)
            self._conf_changed = True
            self._on_member_change(cc, e.index)
            result = ApplyResult(e.index)
        if ctx is not None and ctx.request_id:
            fut = self._waiters.pop(ctx.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(result)

    def _on_member_change(self, cc: ConfChange, index: int) -> None:
        nid = cc.node_id
        if cc.type == ConfChangeType.ConfChangeRemoveNode:
            log.info("member %d: member %d removed at index %d", self.id, nid, index)
            if nid == self.id:
                self.removed = True
                self._fail_waiters(Gone(f"member {self.id} was removed from the cluster"))
                # Leave a moment for the response to the request that removed us.
                asyncio.get_running_loop().call_later(
                    0.5, self._finish, 0, f"member {self.id} was removed from the cluster; exiting"
                )
            else:
                self._addresses.pop(nid, None)
                if self.transport is not None:
                    self.transport.remove_peer(nid)
            return
        m = self.kv.members[nid]
        what = "learner" if m.learner else "voter"
        log.info(
            "member %d: member %d is a %s (peer %s) as of index %d",
            self.id,
            nid,
            what,
            m.peer_address,
            index,
        )
        self._remember_member(m)

    async def _snapshot(self) -> None:
        storage = self.storage
        assert storage is not None
        index = self.applied
        data = self.kv.encode_snapshot()
        await asyncio.to_thread(storage.create_snapshot, index, self.conf_state, data)
        self.snapshot_index = index
        self.m_snapshots.inc()
        compact_to = index - self.cfg.snapshot_catchup_entries
        first = storage.first_index()
        if compact_to >= first:
            await asyncio.to_thread(storage.compact, compact_to)
        log.info(
            "member %d: snapshot at index %d (%d bytes); log now starts at %d",
            self.id,
            index,
            len(data),
            storage.first_index(),
        )

    def _wake_applied(self) -> None:
        heap = self._apply_heap
        applied = self.applied
        while heap and heap[0][0] <= applied:
            _, _, fut = heapq.heappop(heap)
            if not fut.done():
                fut.set_result(None)

    async def _wait_applied(self, index: int, deadline: float) -> None:
        if self.applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._apply_heap, (index, next(self._seq), fut))
        try:
            async with asyncio.timeout_at(deadline):
                await fut
        except TimeoutError:
            raise Unavailable(
                f"timed out waiting for member {self.id} to apply up to index {index} "
                f"(applied {self.applied})",
                retryable=True,
            ) from None

    # ---------------------------------------------------------- linearizable reads

    async def _read_loop(self) -> None:
        """Serve waiting linearizable reads in rounds: one ReadIndex per round.

        A read joins the next round to start, never one already in flight: the index
        it gets is then confirmed by the leader after the read arrived, which is what
        makes it linearizable.
        """
        node = self.node
        assert node is not None
        retry = max(0.5, self.cfg.election_timeout)
        while True:
            await self._read_wake.wait()
            self._read_wake.clear()
            batch = [f for f in self._read_pending if not f.done()]
            self._read_pending = []
            while batch:
                if self.lead == 0:
                    await self._wait_leader_change(retry)
                else:
                    ctx = os.urandom(16)
                    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                    self._read_states[ctx] = fut
                    self.m_read_index.inc()
                    try:
                        await node.read_index(ctx, timeout=retry)
                        async with asyncio.timeout(retry):
                            index = await fut
                    except (TimeoutError, NodeTimeoutError):
                        # Dropped on the way (leader change, no leader yet): try again.
                        log.debug("member %d: ReadIndex round timed out; retrying", self.id)
                    except (StoppedError, APIError):
                        return
                    else:
                        for f in batch:
                            if not f.done():
                                f.set_result(index)
                        break
                    finally:
                        self._read_states.pop(ctx, None)
                batch = [f for f in batch if not f.done()]

    async def _wait_leader_change(self, timeout: float) -> None:
        evt = self._lead_changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await evt.wait()

    async def read_barrier(self, deadline: float) -> int:
        """Wait until a linearizable read may be served locally; return the read index."""
        self._check_serving()
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._read_pending.append(fut)
        self._read_wake.set()
        try:
            async with asyncio.timeout_at(deadline):
                index = await fut
        except TimeoutError:
            what = "no leader" if self.lead == 0 else "the leader did not confirm the read"
            raise Unavailable(
                f"linearizable read timed out after {self.cfg.request_timeout:g}s ({what})",
                retryable=True,
            ) from None
        await self._wait_applied(index, deadline)
        return index

    # ------------------------------------------------------------- client operations

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.cfg.request_timeout

    def _check_serving(self) -> None:
        if self.removed:
            raise Gone(f"member {self.id} was removed from the cluster")
        if self._stopping or not self._started:
            raise Unavailable(f"member {self.id} is not running", retryable=True)

    async def get(self, key: str, serializable: bool = False) -> tuple[Item | None, int]:
        """The key's item (or None) and the index the read reflects."""
        check_key(key)
        if serializable:
            self._check_serving()
            return self.kv.get(key), self.applied
        await self.read_barrier(self._deadline())
        return self.kv.get(key), self.applied

    async def put(self, key: str, value: bytes) -> ApplyResult:
        if len(value) > self.cfg.max_value_size:
            raise TooLarge(
                f"value of {len(value)} bytes exceeds the limit of {self.cfg.max_value_size}"
            )
        return await self._propose(Put(os.urandom(16), key, value))

    async def delete(self, key: str) -> ApplyResult:
        return await self._propose(Delete(os.urandom(16), key))

    async def _propose(self, cmd: Put | Delete | Publish) -> ApplyResult:
        self._check_serving()
        node = self.node
        assert node is not None
        data = encode_command(cmd)
        loop = asyncio.get_running_loop()
        deadline = self._deadline()
        t0 = time.perf_counter()
        fut: asyncio.Future[ApplyResult] = loop.create_future()
        self._waiters[cmd.request_id] = fut
        self.m_proposals.inc()
        ok = False
        try:
            await self._submit(node.propose(data, timeout=self.cfg.request_timeout))
            try:
                async with asyncio.timeout_at(deadline):
                    res = await fut
            except TimeoutError:
                raise Unavailable(
                    f"timed out after {self.cfg.request_timeout:g}s waiting for the write to "
                    "commit; it may or may not take effect",
                    retryable=False,
                ) from None
            ok = True
            self.m_proposal_latency.observe(time.perf_counter() - t0)
            return res
        finally:
            if not ok:
                self.m_proposals_failed.inc()
            self._waiters.pop(cmd.request_id, None)

    async def _submit(self, call: Awaitable[_T]) -> _T:
        """Await a proposal hand-off to raft, translating raft's refusals."""
        try:
            return await call
        except NodeTimeoutError:
            raise Unavailable(
                f"no leader: the proposal was not accepted within {self.cfg.request_timeout:g}s",
                retryable=True,
            ) from None
        except ProposalDroppedError:
            raise Unavailable(
                "proposal dropped by raft (leadership changing, or too much uncommitted data); "
                "retry",
                retryable=True,
            ) from None
        except StoppedError:
            raise Unavailable(f"member {self.id} is shutting down", retryable=True) from None

    # ------------------------------------------------------------------- membership

    def members(self) -> list[Member]:
        return [self.kv.members[i] for i in sorted(self.kv.members)]

    async def add_member(self, mid: int, peer: Address, http: str, learner: bool) -> Member:
        self._check_serving()
        if mid in self.kv.members:
            raise Conflict(f"member {mid} already exists")
        peer_s = format_address(peer)
        for m in self.kv.members.values():
            if m.peer_address == peer_s:
                raise Conflict(f"peer address {peer_s} is already used by member {m.id}")
        req = os.urandom(16)
        cc = ConfChange(
            type=(
                ConfChangeType.ConfChangeAddLearnerNode
                if learner
                else ConfChangeType.ConfChangeAddNode
            ),
            node_id=mid,
            context=ConfChangeContext(peer_s, http, req, self.kv.conf_epoch).encode(),
        )
        await self._propose_conf_change(cc, req)
        return self.kv.members[mid]

    async def remove_member(self, mid: int) -> None:
        self._check_serving()
        m = self.kv.members.get(mid)
        if m is None:
            raise NotFound(f"member {mid} is not a member")
        voters = self.kv.voters()
        if not m.learner and voters == [mid]:
            raise Conflict(f"member {mid} is the last voter; it cannot be removed")
        if mid == self.lead:
            # A leader that removes itself stops leading as soon as it applies the
            # change, possibly before the others learn that the change committed; they
            # still count it as a voter, and a two-member cluster could then never
            # elect anyone. Hand leadership over first.
            target = await self._transfer_target(mid, voters)
            log.info(
                "member %d: moving leadership from %d to %d before removing %d",
                self.id,
                mid,
                target,
                mid,
            )
            await self.transfer_leader(target)
        req = os.urandom(16)
        cc = ConfChange(
            type=ConfChangeType.ConfChangeRemoveNode,
            node_id=mid,
            context=ConfChangeContext(request_id=req, epoch=self.kv.conf_epoch).encode(),
        )
        await self._propose_conf_change(cc, req)

    async def _transfer_target(self, leaving: int, voters: list[int]) -> int:
        """The voter best placed to take over from ``leaving``: the most up-to-date
        one if this member leads (it knows everyone's progress), else this member if
        it is a voter (it hears from the leader), else any other voter."""
        others = [v for v in voters if v != leaving]
        if self.raft_state == StateType.StateLeader and self.node is not None:
            try:
                st = await self.node.status(timeout=self.cfg.request_timeout)
            except (NodeTimeoutError, StoppedError):
                st = None
            if st is not None and st.progress:
                return max(others, key=lambda v: st.progress[v].match if v in st.progress else -1)
        if self.id in others:
            return self.id
        return others[0]

    async def promote_member(self, mid: int) -> Member:
        self._check_serving()
        m = self.kv.members.get(mid)
        if m is None:
            raise NotFound(f"member {mid} is not a member")
        if not m.learner:
            raise Conflict(f"member {mid} is already a voter")
        req = os.urandom(16)
        cc = ConfChange(
            type=ConfChangeType.ConfChangeAddNode,
            node_id=mid,
            context=ConfChangeContext(request_id=req, epoch=self.kv.conf_epoch).encode(),
        )
        await self._propose_conf_change(cc, req)
        return self.kv.members[mid]

    async def _propose_conf_change(self, cc: ConfChange, req: bytes) -> ApplyResult:
        """Propose ``cc`` and wait for it to be applied (or refused) here.

        Raft silently drops a conf change while an earlier one is not applied yet on
        the leader, so a change not applied within a short while is proposed again,
        with the same request id and epoch: whichever copy commits first takes effect
        (or is refused), and the epoch check refuses every later copy.
        """
        node = self.node
        assert node is not None
        if self._conf_inflight:
            raise Conflict(
                "another membership change is in progress on this member; retry once it is done"
            )
        self._conf_inflight = True
        loop = asyncio.get_running_loop()
        deadline = self._deadline()
        retry = max(1.0, 2 * self.cfg.election_timeout)
        fut: asyncio.Future[ApplyResult] = loop.create_future()
        self._waiters[req] = fut
        try:
            attempt = 0
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise Unavailable(
                        f"membership change not applied within {self.cfg.request_timeout:g}s; "
                        "check GET /members before retrying"
                    )
                if attempt:
                    log.info(
                        "member %d: conf change %s %d not applied yet; proposing it again",
                        self.id,
                        cc.type.name,
                        cc.node_id,
                    )
                try:
                    await self._submit(node.propose_conf_change(cc, timeout=remaining))
                except Unavailable as err:
                    # Only the first proposal decides whether the request had no effect.
                    err.retryable = err.retryable and attempt == 0
                    raise
                attempt += 1
                try:
                    async with asyncio.timeout(min(retry, max(deadline - loop.time(), 0.0))):
                        res = await asyncio.shield(fut)
                    break
                except TimeoutError:
                    continue
        finally:
            self._waiters.pop(req, None)
            self._conf_inflight = False
        if res.error:
            raise Conflict(res.error)
        return res

    async def transfer_leader(self, target: int) -> int:
        """Make ``target`` the leader; returns once it is (as this member sees it)."""
        self._check_serving()
        node = self.node
        assert node is not None
        m = self.kv.members.get(target)
        if m is None:
            raise NotFound(f"member {target} is not a member")
        if m.learner:
            raise Conflict(f"member {target} is a learner; only voters can lead")
        loop = asyncio.get_running_loop()
        deadline = self._deadline()
        if self.lead == target:
            return target
        if self.lead == 0:
            raise Unavailable("no leader to transfer leadership from; retry", retryable=True)
        try:
            await node.transfer_leadership(self.lead, target, timeout=self.cfg.request_timeout)
        except (NodeTimeoutError, StoppedError) as err:
            raise Unavailable(f"leadership transfer not started: {err}", retryable=True) from None
        while self.lead != target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(
                    f"leadership transfer to {target} did not complete within "
                    f"{self.cfg.request_timeout:g}s (leader is {self.lead or 'unknown'})",
                    retryable=True,
                )
            await self._wait_leader_change(remaining)
        return target

    async def status(self) -> dict[str, Any]:
        self._check_serving()
        node = self.node
        storage = self.storage
        assert node is not None and storage is not None
        try:
            st = await node.status(timeout=self.cfg.request_timeout)
        except (NodeTimeoutError, StoppedError) as err:
            raise Unavailable(f"status unavailable: {err}", retryable=True) from None
        progress = {
            str(pid): {
                "match": pr.match,
                "next": pr.next,
                "state": str(pr.state),
                "recent_active": pr.recent_active,
                "paused": pr.msg_app_flow_paused,
                "learner": pr.is_learner,
                "pending_snapshot": pr.pending_snapshot,
            }
            for pid, pr in sorted(st.progress.items())
        }
        transport = self.transport
        return {
            "id": self.id,
            "cluster_id": f"{self.cfg.cluster_id:x}",
            "term": st.term,
            "vote": st.vote,
            "lead": st.lead,
            "raft_state": st.raft_state.name,
            "commit": st.commit,
            "applied": self.applied,
            "lead_transferee": st.lead_transferee,
            "voters": sorted(st.config.voters.ids()),
            "learners": sorted(st.config.learners),
            "progress": progress,
            "snapshot_index": self.snapshot_index,
            "first_index": storage.first_index(),
            "last_index": storage.last_index(),
            "keys": len(self.kv),
            "peer_address": format_address(self.cfg.peer_address),
            "http_address": self.advertise_http,
            "peers_connected": (
                sorted(p for p in transport.peers if transport.is_connected(p))
                if transport is not None
                else []
            ),
        }

    # ---------------------------------------------------------------- background

    async def _publish_loop(self) -> None:
        """Make sure the member table carries this member's HTTP address."""
        while True:
            await asyncio.sleep(0.2)
            m = self.kv.members.get(self.id)
            if m is None or m.http_address == self.advertise_http or self.lead == 0:
                continue
            try:
                res = await self._propose(Publish(os.urandom(16), self.id, self.advertise_http))
            except APIError as err:
                log.debug("member %d: publishing the HTTP address failed: %s", self.id, err)
                await asyncio.sleep(1.0)
                continue
            if not res.error:
                log.info("member %d: published HTTP address %s", self.id, self.advertise_http)

    async def _removal_watch(self) -> None:
        """Notice that this member was removed while it could not hear about it.

        A member removed while cut off from the leader never applies its own
        removal: the leader stops talking to it. When it has had no leader for a
        while, it asks the other members (at the HTTP addresses they published) for
        the member list; if two checks in a row find a member with a leader that does
        not list it, it stops, as etcd does when its peers call it removed.
        """
        period = max(2.0, 3 * self.cfg.election_timeout)
        strikes = 0
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await asyncio.sleep(period)
                since = self._no_leader_since
                if since is None or time.monotonic() - since < period:
                    strikes = 0
                    continue
                verdict = await self._ask_membership(session)
                if verdict is None:
                    strikes = 0
                    continue
                if verdict:
                    strikes = 0
                    continue
                strikes += 1
                if strikes >= 2:
                    self.removed = True
                    self._fail_waiters(Gone(f"member {self.id} is not a member of the cluster"))
                    self._finish(
                        0,
                        f"member {self.id} is no longer a member of the cluster (removed "
                        "while it was cut off); exiting",
                    )
                    return

    async def _ask_membership(self, session: aiohttp.ClientSession) -> bool | None:
        """True/False: whether a member with a leader lists us; None: nobody could say."""
        urls = [
            f"http://{m.http_address}/members"
            for m in self.members()
            if m.id != self.id and m.http_address
        ]
        for url in urls:
            try:
                async with session.get(url) as resp:
                    if resp.status != 200:
                        continue
                    body = await resp.json()
            except Exception:
                continue
            if not isinstance(body, dict) or not body.get("leader"):
                continue
            ids = {m.get("id") for m in body.get("members", []) if isinstance(m, dict)}
            if body.get("id") == self.id:
                continue
            return self.id in ids
        return None


def _as_simple(cc: ConfChange | ConfChangeV2) -> ConfChange | None:
    """A conf change as one simple (V1) change, or None for a joint one."""
    if isinstance(cc, ConfChange):
        return cc
    if len(cc.changes) == 1 and cc.transition == ConfChangeTransition.ConfChangeTransitionAuto:
        ch = cc.changes[0]
        return ConfChange(type=ch.type, node_id=ch.node_id, context=cc.context)
    return None


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
