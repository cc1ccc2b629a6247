"""An in-process cluster of RawNodes, each with its simulated application and disk.

Every node has

* a *disk*: a :class:`~raftcore.storage.MemoryStorage` written only when the
  application persists a Ready (sync mode) or works off a ``MsgStorageAppend`` (async
  mode). It is the raft node's storage and survives crashes;
* volatile state: the :class:`~raftcore.RawNode`, the key-value state machine and its
  applied index, the async storage queues, outstanding client requests. A crash
  discards all of it; a restart builds a new RawNode over the disk and recovers the
  state machine from the disk's snapshot, with ``Config.applied`` at the snapshot
  index, as an application that keeps its state machine in memory does (raft then
  hands out the committed entries after the snapshot again).

Raft reads the disk through :class:`AppStorage`, whose ``snapshot()`` is the state
machine's current state (what etcd's server sends a lagging follower). A crash may be
a *bounce* (restart at once), so that messages already in flight reach the new
incarnation.

:class:`Cluster` executes :class:`Step` s. A step is self-contained (it names nodes,
links and arguments, never an internal object), so any subsequence of a recorded
trace can be replayed: a step that no longer applies (deliver on an empty link, tick
a crashed node) does nothing. After each step the nodes it touched are checked
against :class:`~raftcore.sim.invariants.Invariants`.

Membership, as etcd's transport handles it: once a node has applied the removal of a
member, it drops all traffic with that member (the list of removed members is
durable, like etcd's membership store). Removed ids are never added back. A removed
member is not shut down: members that have not applied its removal yet may still need
its vote (a joint configuration whose outgoing half loses two members at once cannot
elect a leader otherwise), so stopping it, as etcd's server does when it applies its
own removal, would make the simulator report the application's deadlock as raft's.
"""

from __future__ import annotations

import copy
import re
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from raftcore.confchange import Changer
from raftcore.config import Config
from raftcore.errors import (
    CompactedError,
    ConfChangeError,
    ProposalDroppedError,
    RaftError,
    RaftPanic,
    UnavailableError,
)
from raftcore.raft import StateType
from raftcore.raftpb.codec import decode_conf_change, decode_conf_change_v2
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.rawnode import RawNode, SnapshotStatus
from raftcore.read_only import ReadState
from raftcore.sim.invariants import Invariants
from raftcore.sim.model import KEYS, History, KVState, decode_command, encode_delete, encode_put
from raftcore.sim.network import Network
from raftcore.storage import MemoryStorage
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, clone_conf_state

__all__ = ["Cluster", "Node", "NullLogger", "SimParams", "Step"]

_Leader = StateType.StateLeader

# Steps after which a client gives up on a request (some 20 ticks).
CLIENT_TIMEOUT = 400
_MsgSnap = MessageType.MsgSnap
_EntryNormal = EntryType.EntryNormal
_EntryConfChange = EntryType.EntryConfChange
_EntryConfChangeV2 = EntryType.EntryConfChangeV2


class NullLogger:
    """A :class:`raftcore.logger.Logger` that discards everything but panics.

    Logging through :mod:`logging` would dominate the simulator's time.
    """

    __slots__ = ()

    def debug(self, msg: str, *args: object) -> None:
        pass

    def info(self, msg: str, *args: object) -> None:
        pass

    def warning(self, msg: str, *args: object) -> None:
        pass

    def error(self, msg: str, *args: object) -> None:
        pass

    def panic(self, msg: str, *args: object) -> NoReturn:
        raise RaftPanic(msg % args if args else msg)


NULL_LOGGER = NullLogger()


@dataclass(frozen=True, slots=True)
class SimParams:
    """Everything that shapes one run besides its steps; drawn from the seed."""

    voters: int = 3
    learners: int = 0
    spares: int = 0
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = False
    check_quorum: bool = False
    step_down_on_removal: bool = False
    async_nodes: frozenset[int] = frozenset()
    max_size_per_msg: int = 1 << 20
    max_committed_size_per_ready: int = 0
    max_uncommitted_entries_size: int = 0
    max_inflight_msgs: int = 256

    def ids(self) -> list[int]:
        return list(range(1, self.voters + self.learners + self.spares + 1))


@dataclass(frozen=True, slots=True)
class Step:
    """One scheduler decision. ``node`` is the acting node (a link's source),
    ``peer`` a second node (a link's destination, a transfer target), ``arg`` a small
    integer (message position on a link, key index, entries kept by compaction, conf
    change version), ``group`` one side of a partition, ``changes`` a conf change as
    (ConfChangeType, node id) pairs."""

    kind: str
    node: int = 0
    peer: int = 0
    arg: int = 0
    group: tuple[int, ...] = ()
    changes: tuple[tuple[int, int], ...] = field(default=())

    def __str__(self) -> str:
        k = self.kind
        if k in ("deliver", "drop", "dup"):
            pos = f" #{self.arg}" if self.arg else ""
            return f"{k} {self.node}->{self.peer}{pos}"
        if k == "tick-all" or k == "heal":
            return k
        if k in ("put", "delete", "get"):
            return f"{k} {KEYS[self.arg]} at {self.node}"
        if k == "transfer":
            return f"transfer at {self.node} to {self.peer}"
        if k == "partition":
            return f"partition {list(self.group)} | rest"
        if k == "oneway":
            return f"block {self.node}->{self.peer}"
        if k == "crash" and self.arg:
            return f"bounce {self.node}"
        if k == "compact":
            return f"compact {self.node} keep {self.arg}"
        if k == "confchange":
            names = {0: "add", 1: "remove", 2: "update", 3: "learner"}
            chs = " ".join(f"{names[t]}({i})" for t, i in self.changes)
            mode = {1: "v1", 2: "v2", 3: "v2-joint-auto", 4: "v2-joint-explicit"}[self.arg]
            return f"confchange at {self.node} {mode} {chs}"
        return f"{k} {self.node}"

    @classmethod
    def parse(cls, text: str) -> Step:
        """The step that ``str()`` printed as ``text`` (a leading step number, as in a
        printed trace, is skipped). Raises ValueError on anything else."""
        t = text.strip()
        m = _STEP_NUMBER.match(t)
        if m:
            t = t[m.end() :]
        for pattern, build in _STEP_PATTERNS:
            m = pattern.fullmatch(t)
            if m:
                return build(m)
        raise ValueError(f"not a step: {text!r}")


def _link_step(m: re.Match[str]) -> Step:
    return Step(m[1], int(m[2]), int(m[3]), int(m[4] or 0))


def _confchange_step(m: re.Match[str]) -> Step:
    modes = {"v1": 1, "v2": 2, "v2-joint-auto": 3, "v2-joint-explicit": 4}
    types = {"add": 0, "remove": 1, "update": 2, "learner": 3}
    changes = tuple((types[t], int(i)) for t, i in re.findall(r"(\w+)\((\d+)\)", m[3]))
    return Step("confchange", int(m[1]), arg=modes[m[2]], changes=changes)


_STEP_NUMBER = re.compile(r"\d+\s+(?=[a-z])")
_STEP_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Step]]] = [
    (re.compile(r"(deliver|drop|dup) (\d+)->(\d+)(?: #(\d+))?"), _link_step),
    (re.compile(r"(tick-all|heal)"), lambda m: Step(m[1])),
    (
        re.compile(r"(put|delete|get) (\w+) at (\d+)"),
        lambda m: Step(m[1], int(m[3]), arg=KEYS.index(m[2])),
    ),
    (re.compile(r"transfer at (\d+) to (\d+)"), lambda m: Step("transfer", int(m[1]), int(m[2]))),
    (
        re.compile(r"partition \[([\d, ]*)\] \| rest"),
        lambda m: Step("partition", group=tuple(int(x) for x in m[1].split(",") if x.strip())),
    ),
    (re.compile(r"block (\d+)->(\d+)"), lambda m: Step("oneway", int(m[1]), int(m[2]))),
    (re.compile(r"compact (\d+) keep (\d+)"), lambda m: Step("compact", int(m[1]), arg=int(m[2]))),
    (re.compile(r"bounce (\d+)"), lambda m: Step("crash", int(m[1]), arg=1)),
    (re.compile(r"confchange at (\d+) ([\w-]+) (.*)"), _confchange_step),
    (
        re.compile(r"(tick|ready|append|apply|leave|campaign|crash|restart) (\d+)"),
        lambda m: Step(m[1], int(m[2])),
    ),
]


class AppStorage:
    """What raft reads: the node's disk, except that :meth:`snapshot` is the state
    machine's current state at its applied index.

    A snapshot sent to a lagging or new follower must contain the configuration that
    follower is part of; the disk's last snapshot may predate the conf change that
    added it (the follower would refuse it, forever). etcd's server likewise sends its
    current applied state ("merged snapshot") rather than an old stored one.
    """

    __slots__ = ("_cache", "disk", "node")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.disk = node.disk
        self._cache: Snapshot | None = None

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.disk.initial_state()

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        return self.disk.entries(lo, hi, max_size)

    def term(self, i: int) -> int:
        return self.disk.term(i)

    def last_index(self) -> int:
        return self.disk.last_index()

    def first_index(self) -> int:
        return self.disk.first_index()

    def snapshot(self) -> Snapshot:
        n = self.node
        disk = self.disk
        applied = n.applied
        if applied <= disk.snap.metadata.index:
            return disk.snapshot()
        c = self._cache
        if c is not None and c.metadata.index == applied:
            return c
        c = Snapshot(
            data=n.kv.encode(),
            metadata=SnapshotMetadata(
                conf_state=clone_conf_state(n.conf_state), index=applied, term=disk.term(applied)
            ),
        )
        self._cache = c
        return c


class Node:
    """One simulated server: disk (durable) plus RawNode and application (volatile)."""

    __slots__ = (
        "append_q",
        "applied",
        "apply_q",
        "async_writes",
        "checked",
        "conf_state",
        "disk",
        "id",
        "ignored",
        "kv",
        "local",
        "proposals",
        "reads",
        "rn",
        "up",
        "waiting",
    )

    def __init__(self, nid: int, disk: MemoryStorage, async_writes: bool) -> None:
        self.id = nid
        self.disk = disk
        self.async_writes = async_writes
        self.up = False
        # Members this node has seen removed (durable): their traffic is dropped.
        self.ignored: set[int] = set()
        self.rn: RawNode = None  # type: ignore[assignment]  # set by Cluster.start
        self.kv = KVState()
        self.applied = 0
        self.conf_state = ConfState()
        self.append_q: deque[Message] = deque()
        self.apply_q: deque[Message] = deque()
        # Messages the node sent to itself, stepped once the current handler is done.
        self.local: list[Message] = []
        # Client requests of this incarnation: proposals by op id, read contexts.
        self.proposals: set[int] = set()
        self.reads: dict[bytes, tuple[int, str]] = {}
        self.waiting: list[tuple[int, int, str]] = []
        # (term, highest committed index) last checked for leader completeness.
        self.checked: tuple[int, int] = (-1, -1)

    @property
    def live(self) -> bool:
        return self.up


def _members(cs: ConfState) -> set[int]:
    return {*cs.voters, *cs.learners, *cs.voters_outgoing, *cs.learners_next}


class Cluster:
    """The nodes, the network, the client history and the invariant record."""

    def __init__(
        self, params: SimParams, inv: Invariants, bug: str = "", avoid_known_bugs: bool = False
    ) -> None:
        self.params = params
        self.inv = inv
        self.bug = bug
        self.avoid_known_bugs = avoid_known_bugs
        self.net = Network()
        self.history = History()
        self.stats: Counter[str] = Counter()
        self.ids = params.ids()
        self.nodes: dict[int, Node] = {}
        # Nodes that may have a Ready (touched since their last one), in order.
        self.dirty: dict[int, None] = {}
        # Nodes that are (or were proposed to become) members: only these are ticked.
        self.activated: dict[int, None] = {}
        self.touched: list[Node] = []
        self.ever_member: set[int] = set()
        # Ids some node has seen removed: never proposed for addition again.
        self.ever_removed: set[int] = set()
        # Client requests awaiting an answer: op -> (key, node, give-up step), and how
        # many there are per key. Clients give up after CLIENT_TIMEOUT steps.
        self.inflight: dict[int, tuple[str, int, int]] = {}
        self.busy: Counter[str] = Counter()
        self.step_no = 0
        # The node that last persisted a new term or vote (crashes like to strike
        # right after such a write).
        self.last_hs_node = 0
        # Client ops some node applied (took effect), for the history.
        self.applied_ops: set[int] = set()
        # Crashed nodes, in crash order.
        self.down: dict[int, None] = {}

        voters = list(range(1, params.voters + 1))
        learners = list(range(params.voters + 1, params.voters + params.learners + 1))
        for nid in self.ids:
            disk = MemoryStorage(logger=NULL_LOGGER)
            if nid <= params.voters + params.learners:
                # A new cluster: every initial member's disk holds a snapshot with the
                # initial configuration and the empty state machine.
                disk.apply_snapshot(
                    Snapshot(
                        data=KVState().encode(),
                        metadata=SnapshotMetadata(
                            conf_state=ConfState(voters=voters, learners=learners),
                            index=1,
                            term=1,
                        ),
                    )
                )
                disk.set_hard_state(HardState(term=1, commit=1))
                self.activated[nid] = None
                self.ever_member.add(nid)
            n = Node(nid, disk, nid in params.async_nodes)
            self.nodes[nid] = n
            self.start(n)
        self.inv.committed[1] = 1
        self.inv.max_committed = 1

        self._dispatch: dict[str, Callable[[Step], None]] = {
            "tick": self._x_tick,
            "tick-all": self._x_tick_all,
            "deliver": self._x_deliver,
            "drop": self._x_drop,
            "dup": self._x_dup,
            "ready": self._x_ready,
            "append": self._x_append,
            "apply": self._x_apply,
            "put": self._x_put,
            "delete": self._x_put,
            "get": self._x_get,
            "confchange": self._x_confchange,
            "leave": self._x_leave,
            "transfer": self._x_transfer,
            "campaign": self._x_campaign,
            "crash": self._x_crash,
            "restart": self._x_restart,
            "partition": self._x_partition,
            "oneway": self._x_oneway,
            "heal": self._x_heal,
            "compact": self._x_compact,
        }

    # --- node lifecycle --------------------------------------------------------------

    def start(self, n: Node) -> None:
        """(Re)start ``n`` from its disk."""
        disk = n.disk
        if self.bug == "forget-vote":
            # Planted bug: the restarted node forgets whom it voted for in its term.
            hs = disk.hard_state
            disk.hard_state = HardState(hs.term, 0, hs.commit)
        snap = disk.snap
        si = snap.metadata.index
        if si > 0:
            n.kv = KVState.decode(snap.data)
            n.conf_state = clone_conf_state(snap.metadata.conf_state)
        else:
            n.kv = KVState()
            n.conf_state = ConfState()
        n.applied = si
        p = self.params
        cfg = Config(
            id=n.id,
            election_tick=p.election_tick,
            heartbeat_tick=p.heartbeat_tick,
            storage=AppStorage(n),
            applied=si,
            async_storage_writes=n.async_writes,
            max_size_per_msg=p.max_size_per_msg,
            max_committed_size_per_ready=p.max_committed_size_per_ready,
            max_uncommitted_entries_size=p.max_uncommitted_entries_size,
            max_inflight_msgs=p.max_inflight_msgs,
            check_quorum=p.check_quorum,
            pre_vote=p.pre_vote,
            logger=NULL_LOGGER,
            step_down_on_removal=p.step_down_on_removal,
        )
        n.rn = RawNode(cfg)
        n.up = True
        self.down.pop(n.id, None)
        n.checked = (-1, -1)
        self.inv.reset_node(n.id, n.rn.raft.raft_log.committed, si)
        self._touch(n)

    def crash(self, n: Node) -> None:
        """Lose everything volatile: the RawNode, unpersisted work, client state."""
        n.up = False
        n.rn = None  # type: ignore[assignment]
        n.append_q.clear()
        n.apply_q.clear()
        n.local.clear()
        hist = self.history
        for op, _ in n.reads.values():
            hist.abandon(op)
            self._done(op)
        for _, op, _ in n.waiting:
            hist.abandon(op)
            self._done(op)
        n.reads.clear()
        n.waiting.clear()
        # Proposals stay open in the history: they may still take effect.
        for op in n.proposals:
            self._done(op)
        n.proposals.clear()
        self.dirty.pop(n.id, None)
        self.down[n.id] = None

    # --- step execution ------------------------------------------------------------------

    def execute(self, step: Step) -> None:
        """Run one step, then check the invariants on the nodes it touched."""
        self._dispatch[step.kind](step)
        self.after_step()
        self.step_no += 1
        if self.inflight:
            self._expire()

    # --- clients -------------------------------------------------------------------------

    def _track(self, op: int, key: str, n: Node) -> None:
        self.inflight[op] = (key, n.id, self.step_no + CLIENT_TIMEOUT)
        self.busy[key] += 1

    def _done(self, op: int) -> None:
        req = self.inflight.pop(op, None)
        if req is not None:
            self.busy[req[0]] -= 1

    def _expire(self) -> None:
        """Clients give up on requests older than CLIENT_TIMEOUT steps: an unanswered
        read is forgotten, an unanswered write stays in the history, indeterminate."""
        now = self.step_no
        late = [op for op, (_, _, dl) in self.inflight.items() if dl <= now]
        for op in late:
            _, nid, _ = self.inflight[op]
            self._done(op)
            n = self.nodes[nid]
            if op in n.proposals:
                n.proposals.discard(op)
            else:
                self.history.abandon(op)
                n.reads.pop(b"%d" % op, None)
                n.waiting = [w for w in n.waiting if w[1] != op]
            self.stats["client-timeouts"] += 1

    def after_step(self) -> None:
        touched = self.touched
        if touched:
            seen: set[int] = set()
            for n in touched:
                if n.id not in seen:
                    seen.add(n.id)
                    if n.live:
                        self._observe(n)
            touched.clear()

    def _touch(self, n: Node) -> None:
        self.touched.append(n)
        self.dirty[n.id] = None

    def _observe(self, n: Node) -> None:
        inv = self.inv
        r = n.rn.raft
        log = r.raft_log
        is_leader = r.state == _Leader
        if is_leader:
            inv.observe_leader(n.id, r.term)

        def term_or_none(i: int) -> int | None:
            try:
                return log.term(i)
            except (CompactedError, UnavailableError):
                return None

        c = log.committed
        if inv.observe_commit(n.id, c, term_or_none) and is_leader:
            t = term_or_none(c)
            if t is not None:
                cfg = r.trk.config.voters
                inv.check_commit_quorum(n.id, c, t, (cfg.incoming, cfg.outgoing), self._disk_has)
        if is_leader:
            key = (r.term, inv.max_committed)
            if key != n.checked:
                n.checked = key

                def term_or_missing(i: int) -> int | None:
                    try:
                        return log.term(i)
                    except CompactedError:
                        return None
                    except UnavailableError:
                        return -1

                inv.check_leader_log(n.id, r.term, term_or_missing)

    def _disk_has(self, nid: int, index: int, term: int) -> bool:
        n = self.nodes.get(nid)
        if n is None:
            return False
        try:
            return n.disk.term(index) == term
        except CompactedError:
            return True
        except UnavailableError:
            return False

    # --- message plumbing ------------------------------------------------------------------

    def _send(self, n: Node, m: Message) -> None:
        to = m.to
        if to == n.id:
            n.local.append(m)
        elif to not in n.ignored:
            self.net.send(m)

    def _step(self, n: Node, m: Message) -> None:
        try:
            n.rn.step(m)
        except RaftPanic:
            raise
        except RaftError:
            pass
        self._touch(n)

    def _drain_local(self, n: Node) -> None:
        while n.local and n.live:
            msgs = n.local
            n.local = []
            for m in msgs:
                self._step(n, m)

    def _deliver(self, m: Message) -> None:
        src = m.from_
        dst = m.to
        n = self.nodes.get(dst)
        if n is None or not n.live or (src, dst) in self.net.blocked:
            self._lost(m, True)
            return
        if src in n.ignored:
            # The receiver has applied the sender's removal: its transport refuses.
            self.stats["rejected-removed"] += 1
            return
        s = self.nodes.get(src)
        self.stats["delivered"] += 1
        self._step(n, m)
        self._drain_local(n)
        if m.type == _MsgSnap:
            self.stats["snapshots-delivered"] += 1
            if s is not None and s.live:
                s.rn.report_snapshot(dst, SnapshotStatus.SnapshotFinish)
                self._touch(s)

    def _lost(self, m: Message, unreachable: bool) -> None:
        """``m`` never arrived; tell the sender's raft what its transport would."""
        s = self.nodes.get(m.from_)
        if s is None or not s.live:
            return
        if m.type == _MsgSnap:
            s.rn.report_snapshot(m.to, SnapshotStatus.SnapshotFailure)
            self._touch(s)
        elif unreachable:
            s.rn.report_unreachable(m.to)
            self._touch(s)

    # --- Ready handling ----------------------------------------------------------------------

    def handle_ready(self, n: Node) -> None:
        rn = n.rn
        rd = rn.ready()
        self._touch(n)
        if n.async_writes:
            for m in rd.messages:
                to = m.to
                if to == LOCAL_APPEND_THREAD:
                    n.append_q.append(m)
                elif to == LOCAL_APPLY_THREAD:
                    n.apply_q.append(m)
                else:
                    self._send(n, m)
            if rd.read_states:
                self._read_states(n, rd.read_states)
                self._serve_reads(n)
            self._drain_local(n)
            return
        hs = rd.hard_state
        self._persist(n, hs, rd.snapshot, rd.entries)
        for m in rd.messages:
            self._send(n, m)
        if rd.committed_entries:
            self._apply(n, rd.committed_entries)
        if rd.read_states:
            self._read_states(n, rd.read_states)
        if n.waiting:
            self._serve_reads(n)
        if n.live:
            rn.advance()
            self._drain_local(n)

    def _persist(
        self, n: Node, hs: HardState | None, snap: Snapshot | None, ents: Sequence[Entry]
    ) -> None:
        disk = n.disk
        inv = self.inv
        nid = n.id
        if hs is not None and (hs.term != 0 or hs.vote != 0 or hs.commit != 0):
            old = disk.hard_state
            inv.on_persist_hard_state(nid, hs.term, hs.vote, hs.commit)
            disk.set_hard_state(hs)
            if hs.vote != old.vote or hs.term != old.term:
                self.last_hs_node = nid
        if snap is not None and snap.metadata.index != 0:
            md = snap.metadata
            inv.on_persist_snapshot(nid, md.index, md.term)
            disk.apply_snapshot(snap)
            self._restore(n, snap)
        if ents:
            disk.append(ents)
            self.stats["entries-persisted"] += len(ents)
            try:
                prev = disk.term(ents[0].index - 1)
            except (CompactedError, UnavailableError):
                prev = -1
            for e in ents:
                inv.on_persist_entry(nid, e.index, e.term, e.type, e.data, prev)
                prev = e.term

    def _restore(self, n: Node, snap: Snapshot) -> None:
        md = snap.metadata
        self.inv.on_restore(n.id, md.index)
        n.kv = KVState.decode(snap.data)
        n.applied = md.index
        self._set_conf(n, clone_conf_state(md.conf_state))
        self.stats["snapshots-restored"] += 1

    def _apply(self, n: Node, ents: Sequence[Entry]) -> None:
        inv = self.inv
        nid = n.id
        for e in ents:
            idx = e.index
            if idx <= n.applied:
                # Async mode: older apply work that a snapshot restore overtook.
                continue
            inv.on_apply(nid, idx, e.term, e.data)
            n.applied = idx
            et = e.type
            if et == _EntryNormal:
                if e.data:
                    cmd = decode_command(e.data)
                    n.kv.apply(cmd)
                    self.applied_ops.add(cmd.op)
                    if cmd.op in n.proposals:
                        n.proposals.discard(cmd.op)
                        self.history.complete(cmd.op)
                        self._done(cmd.op)
            else:
                if self.avoid_known_bugs and idx < n.rn.raft.raft_log.first_index():
                    # Async apply thread, late: raft already restored a snapshot past
                    # this entry and switched to its configuration; applying the
                    # change again would panic or regress it (a known core hazard,
                    # see the project report). The snapshot carries its effect.
                    self.stats["confchanges-superseded"] += 1
                    continue
                cc: ConfChange | ConfChangeV2
                if et == _EntryConfChange:
                    cc = decode_conf_change(e.data)
                else:
                    cc = decode_conf_change_v2(e.data)
                self._set_conf(n, n.rn.apply_conf_change(cc))
                self.stats["confchanges-applied"] += 1
        self.stats["entries-applied"] += len(ents)

    def _set_conf(self, n: Node, cs: ConfState) -> None:
        new = _members(cs)
        gone = _members(n.conf_state) - new
        n.conf_state = cs
        self.ever_member |= new
        for nid in sorted(gone):
            if nid != n.id:
                n.ignored.add(nid)
            if nid not in self.ever_removed:
                self.ever_removed.add(nid)
                self.stats["removed"] += 1

    def _read_states(self, n: Node, rss: list[ReadState]) -> None:
        for rs in rss:
            req = n.reads.pop(rs.request_ctx, None)
            if req is not None:
                n.waiting.append((rs.index, req[0], req[1]))

    def _serve_reads(self, n: Node) -> None:
        applied = n.applied
        keep: list[tuple[int, int, str]] = []
        for item in n.waiting:
            index, op, key = item
            if index <= applied:
                self.history.complete(op, n.kv.data.get(key))
                self._done(op)
                self.stats["reads-served"] += 1
            else:
                keep.append(item)
        n.waiting = keep

    # --- async storage threads ------------------------------------------------------------

    def process_append(self, n: Node) -> None:
        m = n.append_q.popleft()
        self.stats["async-appends"] += 1
        hs = None
        if m.term != 0 or m.vote != 0 or m.commit != 0:
            hs = HardState(m.term, m.vote, m.commit)
        self._persist(n, hs, m.snapshot, m.entries)
        if n.waiting:
            self._serve_reads(n)
        for r in m.responses:
            if r.to == n.id:
                self._step(n, r)
            else:
                self._send(n, r)
        self._touch(n)
        self._drain_local(n)

    def process_apply(self, n: Node) -> None:
        m = n.apply_q.popleft()
        self.stats["async-applies"] += 1
        self._apply(n, m.entries)
        if n.waiting:
            self._serve_reads(n)
        if n.live:
            for r in m.responses:
                self._step(n, r)
            self._drain_local(n)

    # --- executors -------------------------------------------------------------------------

    def _live(self, nid: int) -> Node | None:
        n = self.nodes.get(nid)
        if n is None or not n.up:
            return None
        return n

    def _x_tick(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None:
            n.rn.tick()
            self._touch(n)

    def _x_tick_all(self, s: Step) -> None:
        for nid in self.activated:
            n = self._live(nid)
            if n is not None:
                n.rn.tick()
                self._touch(n)

    def _x_deliver(self, s: Step) -> None:
        m = self.net.take(s.node, s.peer, s.arg)
        if m is not None:
            if s.arg:
                self.stats["reordered"] += 1
            self._deliver(m)

    def _x_drop(self, s: Step) -> None:
        m = self.net.take(s.node, s.peer, s.arg)
        if m is not None:
            self.stats["dropped"] += 1
            self._lost(m, False)

    def _x_dup(self, s: Step) -> None:
        m = self.net.peek(s.node, s.peer, s.arg)
        if m is not None:
            self.stats["duplicated"] += 1
            self._deliver(copy.copy(m))

    def _x_ready(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None and n.rn.has_ready():
            self.handle_ready(n)

    def _x_append(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None and n.append_q:
            self.process_append(n)

    def _x_apply(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None and n.apply_q:
            self.process_apply(n)

    def propose_put(self, n: Node, key: str, delete: bool = False) -> int | None:
        """A client write at ``n``; returns its op id, or None if raft refused it."""
        hist = self.history
        if delete:
            op = hist.invoke(n.id, "delete", key)
            data = encode_delete(op, key)
        else:
            op = hist.invoke(n.id, "put", key, f"v{hist.next_id}")
            data = encode_put(op, key, f"v{op}")
        try:
            n.rn.propose(data)
        except ProposalDroppedError:
            hist.cancel(op)
            self.stats["proposals-dropped"] += 1
            return None
        finally:
            self._touch(n)
        n.proposals.add(op)
        self._track(op, key, n)
        self.stats["proposals"] += 1
        return op

    def _x_put(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None:
            self.propose_put(n, KEYS[s.arg], s.kind == "delete")

    def _x_get(self, s: Step) -> None:
        n = self._live(s.node)
        if n is None:
            return
        key = KEYS[s.arg]
        op = self.history.invoke(n.id, "get", key)
        ctx = b"%d" % op
        n.reads[ctx] = (op, key)
        self._track(op, key, n)
        n.rn.read_index(ctx)
        self.stats["reads"] += 1
        self._touch(n)

    def _x_confchange(self, s: Step) -> None:
        n = self._live(s.node)
        if n is None or n.rn.raft.state != _Leader:
            return
        if any(
            t != ConfChangeType.ConfChangeRemoveNode and i in self.ever_removed
            for t, i in s.changes
        ):
            return
        singles = [ConfChangeSingle(ConfChangeType(t), i) for t, i in s.changes]
        cc: ConfChange | ConfChangeV2
        if s.arg == 1:
            cc = ConfChange(type=singles[0].type, node_id=singles[0].node_id)
        else:
            trans = {
                2: ConfChangeTransition.ConfChangeTransitionAuto,
                3: ConfChangeTransition.ConfChangeTransitionJointImplicit,
                4: ConfChangeTransition.ConfChangeTransitionJointExplicit,
            }[s.arg]
            cc = ConfChangeV2(transition=trans, changes=singles)
        # Only changes that the current configuration accepts: the application must
        # not make raft apply an invalid change (raft would panic, as etcd does).
        r = n.rn.raft
        ch = Changer(r.trk, r.raft_log.last_index())
        v2 = cc.as_v2()
        try:
            auto_leave, joint = v2.enter_joint()
            if joint:
                ch.enter_joint(auto_leave, v2.changes)
            else:
                ch.simple(v2.changes)
        except ConfChangeError:
            return
        for _, i in s.changes:
            self.activated[i] = None
        try:
            n.rn.propose_conf_change(cc)
            self.stats["confchanges-proposed"] += 1
        except ProposalDroppedError:
            pass
        self._touch(n)

    def _x_leave(self, s: Step) -> None:
        n = self._live(s.node)
        if n is None or n.rn.raft.state != _Leader or not n.rn.raft.trk.config.voters.outgoing:
            return
        try:
            n.rn.propose_conf_change(None)
            self.stats["leave-joint-proposed"] += 1
        except ProposalDroppedError:
            pass
        self._touch(n)

    def _x_transfer(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None:
            n.rn.transfer_leader(s.peer)
            self.stats["transfers"] += 1
            self._touch(n)

    def _x_campaign(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None:
            try:
                n.rn.campaign()
            except RaftPanic:
                raise
            except RaftError:
                pass
            self.stats["campaigns"] += 1
            self._touch(n)

    def _x_crash(self, s: Step) -> None:
        n = self._live(s.node)
        if n is not None:
            self.crash(n)
            self.stats["crashes"] += 1
            if s.arg:
                # A bounce: the process restarts at once (from its disk), so messages
                # already on their way still reach it.
                self.start(n)
                self.stats["bounces"] += 1

    def _x_restart(self, s: Step) -> None:
        n = self.nodes.get(s.node)
        if n is not None and not n.up:
            self.start(n)
            self.stats["restarts"] += 1

    def _x_partition(self, s: Step) -> None:
        self.net.partition(s.group, self.ids)
        self.stats["partitions"] += 1

    def _x_oneway(self, s: Step) -> None:
        self.net.block(s.node, s.peer)
        self.stats["oneway-partitions"] += 1

    def _x_heal(self, s: Step) -> None:
        self.net.heal()

    def _x_compact(self, s: Step) -> None:
        n = self._live(s.node)
        if n is None:
            return
        disk = n.disk
        idx = n.applied
        if n.async_writes and disk.hard_state.commit < idx:
            # The snapshot would be ahead of the durable commit index, which a restart
            # could not load; wait until the append thread catches up.
            return
        if idx <= disk.snap.metadata.index or idx > disk.last_index():
            return
        disk.create_snapshot(idx, n.conf_state, n.kv.encode())
        self.stats["snapshots-created"] += 1
        target = idx - s.arg
        if target >= disk.first_index():
            disk.compact(target)
            self.stats["compactions"] += 1

    # --- the heal phase ------------------------------------------------------------------

    def heal_all(self) -> None:
        """End every fault: heal the network, restart every crashed member."""
        self.net.heal()
        for nid in self.ids:
            n = self.nodes[nid]
            if not n.up:
                self.start(n)
        self.after_step()

    def tick_all(self) -> None:
        self._x_tick_all(Step("tick-all"))
        self.after_step()

    def drain(self, limit: int = 20_000) -> None:
        """Run the cluster to quiescence in a fixed order, without faults: every
        Ready, every storage work item, every message (oldest first per link)."""
        for _ in range(limit):
            busy = False
            for nid in self.ids:
                n = self.nodes[nid]
                if not n.live:
                    continue
                while n.live and (n.rn.has_ready() or n.append_q or n.apply_q):
                    busy = True
                    if n.rn.has_ready():
                        self.handle_ready(n)
                    while n.live and n.append_q:
                        self.process_append(n)
                    while n.live and n.apply_q:
                        self.process_apply(n)
                    self.after_step()
            for src, dst in self.net.drain_order():
                m = self.net.take(src, dst, 0)
                while m is not None:
                    busy = True
                    self._deliver(m)
                    self.after_step()
                    m = self.net.take(src, dst, 0)
            if not busy:
                return

    def leader(self) -> Node | None:
        """The live leader with the highest term (lowest id on ties), if any; removed
        members (possibly still leading a term of their own) do not count."""
        best: Node | None = None
        for nid in self.ids:
            n = self.nodes[nid]
            if (
                n.live
                and n.rn.raft.state == _Leader
                and nid not in self.ever_removed
                and (best is None or n.rn.raft.term > best.rn.raft.term)
            ):
                best = n
        return best

    def digest(self) -> str:
        """The observable end state, for trace hashes."""
        parts = []
        for nid in self.ids:
            n = self.nodes[nid]
            hs = n.disk.hard_state
            parts.append(
                f"{nid}:{int(n.up)}:{hs.term}/{hs.vote}/{hs.commit}:"
                f"{n.disk.last_index()}:{n.applied}:{sorted(n.kv.data.items())}"
            )
        return ";".join(parts)
