"""One simulated run: parameters and steps drawn from a seed, then the heal phase.

A run is a function of its seed (and :class:`SimOptions`):

1. :func:`choose_params` draws the cluster's shape and the fault rates from
   ``random.Random(seed)``: 3, 5 or 7 voters (or ``--nodes``), learners, spare ids for
   membership changes, election timeout, pre-vote / check-quorum, message size and
   inflight limits, which nodes use async storage writes, drop/dup/reorder rates.
2. The *chaos phase*: :class:`Generator` draws ``steps`` :class:`~raftcore.sim.cluster.Step`
   s from a second seeded ``Random`` and the cluster executes each one. **A step is one
   scheduler decision**: deliver (or drop, or duplicate) one message of one link, handle
   one node's Ready, work off one item of a node's async append or apply queue, tick
   the clock, one client request (put/delete/get), or one fault (crash, restart,
   partition, one-way cut, heal, compaction, conf change, leader transfer, forced
   campaign). Work steps (Ready, messages, storage items) are chosen with weights
   proportional to the work pending, and the tick weight shrinks as work piles up, so
   a tick is "long" compared to a message hop, as in a real deployment: a run of
   5,000 steps has a few hundred ticks (tens of election timeouts). Steps are cheap
   (some 50,000 a second): ``--seeds 200 --steps 5000`` takes about 20 s on one core.
   Clients have at most ``client_cap`` (1-3) requests outstanding per key and give up
   after 400 steps (an unanswered write stays in the history, indeterminate).
3. The *heal phase*: every fault ends (network healed, crashed members restarted) and
   the cluster runs deterministically: each round ticks every node and then drains
   all work. A client write must be acknowledged within ``20 * election_tick + 20``
   ticks (liveness), then the recorded client history is checked for
   linearizability. Liveness is required of runs with pre-vote; without it raft can
   stall for good (a voter that missed a membership change campaigns in its stale
   configuration at ever higher terms that the voter able to win never hears of),
   which is counted as ``stalls-without-prevote`` unless ``strict_liveness``.

Randomness inside raft (the randomized election timeout) comes from a third
``Random`` seeded from the seed, swapped in for the duration of the run, so a run is
reproducible: the same seed gives the identical trace (:attr:`RunResult.trace_hash`),
and replaying a recorded trace (:func:`replay`) reproduces it without the generator.
"""

from __future__ import annotations

import hashlib
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import raftcore.raft as _raft_module
from raftcore.linearizability import Verdict, check
from raftcore.raft import StateType
from raftcore.raftpb.types import ConfChangeType
from raftcore.sim.cluster import Cluster, SimParams, Step
from raftcore.sim.invariants import Invariants, Violation
from raftcore.sim.model import KEYS

__all__ = [
    "FAULT_KINDS",
    "Generator",
    "Rates",
    "RunResult",
    "SimOptions",
    "choose_params",
    "replay",
    "replay_hash",
    "run_seed",
    "seeded_raft",
]

FAULT_KINDS: tuple[str, ...] = (
    "drop",
    "dup",
    "reorder",
    "partition",
    "crash",
    "snapshot",
    "confchange",
    "transfer",
    "async",
)

_ADD = int(ConfChangeType.ConfChangeAddNode)
_REMOVE = int(ConfChangeType.ConfChangeRemoveNode)
_ADD_LEARNER = int(ConfChangeType.ConfChangeAddLearnerNode)
_Leader = StateType.StateLeader

# Offsets that derive the generator's and raft's random streams from the seed.
_GEN_SALT = 0x5EED_0001
_RAFT_SALT = 0x5EED_0002


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-step probabilities of each kind of non-work step, and per-message ones."""

    client: float = 0.04
    # Requests a key may have outstanding at once (clients wait for answers).
    client_cap: int = 2
    crash: float = 0.0
    restart: float = 0.0
    partition: float = 0.0
    compact: float = 0.0
    confchange: float = 0.0
    transfer: float = 0.0
    drop: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0


@dataclass(frozen=True, slots=True)
class SimOptions:
    """What the caller fixes; everything else comes from the seed.

    ``checks`` limits the invariants that may fail (None: all, see
    :data:`raftcore.sim.invariants.ALL_CHECKS`); ``bug`` plants a known bug
    (``"forget-vote"``: restarted nodes forget their vote) to prove the checks work.
    ``params`` replaces the cluster shape drawn from the seed (the fault rates are
    still drawn); ``rates`` replaces the fault rates. ``strict_liveness`` makes a stall after healing a violation also in
    runs without pre-vote (see :func:`_finish`). ``avoid_known_bugs`` keeps the
    application away from a known core bug so that a soak can look for others: it
    never demotes or removes the leader unless ``step_down_on_removal`` is set (a
    leader that stays in charge after demoting itself, with one other voter left,
    answers ReadIndex requests without a quorum), and its async apply thread does
    not apply conf changes that a snapshot raft already restored has superseded (raft
    switched to the snapshot's configuration while they were in flight; applying them
    panics). Both are etcd behaviour, reported, not fixed here.
    """

    steps: int = 5000
    nodes: int | None = None
    faults: frozenset[str] = frozenset(FAULT_KINDS)
    checks: frozenset[str] | None = None
    bug: str = ""
    lin_timeout: float = 10.0
    params: SimParams | None = None
    rates: Rates | None = None
    strict_liveness: bool = False
    avoid_known_bugs: bool = False


def choose_params(seed: int, opts: SimOptions) -> tuple[SimParams, Rates]:
    """The cluster shape and fault rates of ``seed``."""
    rng = random.Random(seed)
    f = opts.faults
    voters = opts.nodes if opts.nodes is not None else rng.choice((3, 3, 5, 5, 7))
    learners = rng.choice((0, 0, 1, 2))
    spares = 2 if "confchange" in f else 0
    n = voters + learners + spares
    async_nodes: frozenset[int] = frozenset()
    if "async" in f:
        chosen = {i for i in range(1, n + 1) if rng.random() < 0.5}
        if not chosen:
            chosen = {rng.randrange(1, n + 1)}
        async_nodes = frozenset(chosen)
    max_size_per_msg = rng.choice((0, 100, 1 << 20))
    # etcd quirk: a zero MaxCommittedSizePerReady defaults to MaxSizePerMsg, and a zero
    # apply budget pauses entry application for good after the first batch (etcd's
    # raftLog.applyingEntsPaused). With MaxSizePerMsg=0 ("one entry per message")
    # that stalls every node, so the two are never both zero here.
    committed_size = rng.choice((0, 0, 150))
    if max_size_per_msg == 0 and committed_size == 0:
        committed_size = 1 << 20
    params = SimParams(
        voters=voters,
        learners=learners,
        spares=spares,
        election_tick=rng.choice((3, 5, 5, 10)),
        heartbeat_tick=1,
        pre_vote=rng.random() < 0.5,
        check_quorum=rng.random() < 0.5,
        step_down_on_removal=rng.random() < 0.5,
        async_nodes=async_nodes,
        max_size_per_msg=max_size_per_msg,
        max_committed_size_per_ready=committed_size,
        max_uncommitted_entries_size=rng.choice((0, 0, 0, 300)),
        max_inflight_msgs=rng.choice((1, 4, 256)),
    )

    def rate(kind: str, lo: float, hi: float) -> float:
        return rng.uniform(lo, hi) if kind in f else 0.0

    rates = Rates(
        client=rng.uniform(0.02, 0.06),
        client_cap=rng.choice((1, 2, 3)),
        crash=rate("crash", 0.0005, 0.003),
        restart=rate("crash", 0.002, 0.01),
        partition=rate("partition", 0.0005, 0.002),
        compact=rate("snapshot", 0.001, 0.006),
        confchange=rate("confchange", 0.0005, 0.003),
        transfer=rate("transfer", 0.0003, 0.002),
        drop=rate("drop", 0.01, 0.15),
        dup=rate("dup", 0.005, 0.05),
        reorder=rate("reorder", 0.05, 0.3),
    )
    if opts.params is not None:
        params = opts.params
    if opts.rates is not None:
        rates = opts.rates
    return params, rates


@contextmanager
def seeded_raft(seed: int) -> Iterator[None]:
    """Make raft's election-timeout randomness a function of ``seed`` while inside."""
    saved = _raft_module._randrange
    _raft_module._randrange = random.Random(seed * 1_000_003 + _RAFT_SALT).randrange
    try:
        yield
    finally:
        _raft_module._randrange = saved


class Generator:
    """Draws the next step from the cluster's current state and a seeded Random.

    It only reads the cluster (the executor does everything), so a recorded trace
    replays identically without it.
    """

    __slots__ = (
        "_event_makers",
        "_events",
        "avoid_known_bugs",
        "cluster",
        "params",
        "rates",
        "rng",
    )

    def __init__(
        self,
        rng: random.Random,
        cluster: Cluster,
        params: SimParams,
        rates: Rates,
        avoid_known_bugs: bool = False,
    ) -> None:
        self.avoid_known_bugs = avoid_known_bugs
        self.rng = rng
        self.cluster = cluster
        self.params = params
        self.rates = rates
        # Cumulative thresholds of the non-work step kinds.
        acc = 0.0
        ev: list[tuple[float, str]] = []
        for name in ("client", "crash", "partition", "compact", "confchange", "transfer"):
            p = getattr(rates, name)
            if p > 0:
                acc += p
                ev.append((acc, name))
        self._events = ev
        self._event_makers: dict[str, Callable[[], Step | None]] = {
            "client": self._client,
            "crash": self._crash,
            "partition": self._partition,
            "compact": self._compact,
            "confchange": self._confchange,
            "transfer": self._transfer,
        }

    def next(self) -> Step:
        rng = self.rng
        down = self.cluster.down
        if down and rng.random() < self.rates.restart * len(down):
            return Step("restart", rng.choice(list(down)))
        r = rng.random()
        for threshold, name in self._events:
            if r < threshold:
                s: Step | None = self._event_makers[name]()
                if s is not None:
                    return s
                break
        return self._work()

    # --- helpers ---------------------------------------------------------------------

    def _live(self) -> list[int]:
        c = self.cluster
        return [i for i in c.activated if c.nodes[i].live]

    def _members(self) -> list[int]:
        """Live nodes not known to be removed: where clients send requests."""
        c = self.cluster
        return [i for i in c.activated if c.nodes[i].live and i not in c.ever_removed]

    def _leader(self) -> int | None:
        c = self.cluster
        for i in c.activated:
            n = c.nodes[i]
            if n.live and n.rn.raft.state == _Leader and i not in c.ever_removed:
                return i
        return None

    # --- work ------------------------------------------------------------------------

    def _work(self) -> Step:
        rng = self.rng
        c = self.cluster
        nodes = c.nodes
        ready: list[int] = []
        stale: list[int] = []
        for nid in c.dirty:
            n = nodes[nid]
            if n.live and n.rn.has_ready():
                ready.append(nid)
            else:
                stale.append(nid)
        for nid in stale:
            del c.dirty[nid]
        storage: list[Step] = []
        for nid in self.params.async_nodes:
            n = nodes[nid]
            if n.live:
                if n.append_q:
                    storage.append(Step("append", nid))
                if n.apply_q:
                    storage.append(Step("apply", nid))
        links = list(c.net.nonempty)
        w_ready = 8.0 * len(ready)
        w_storage = 6.0 * len(storage)
        w_links = 5.0 * min(len(links), 8)
        # Ticks slow down as work piles up, so that a tick stays long compared with a
        # message hop and the cluster keeps up with its own heartbeats.
        backlog = c.net.count + len(ready) + len(storage)
        total = w_ready + w_storage + w_links + 12.0 / (4 + backlog)
        x = rng.random() * total
        if x < w_ready:
            return Step("ready", ready[rng.randrange(len(ready))])
        x -= w_ready
        if x < w_storage:
            return storage[rng.randrange(len(storage))]
        x -= w_storage
        if x < w_links:
            src, dst = links[rng.randrange(len(links))]
            rates = self.rates
            k = 0
            if rates.reorder and rng.random() < rates.reorder:
                q = c.net.queues[(src, dst)]
                k = rng.randrange(min(len(q), 4))
            if rates.drop and rng.random() < rates.drop:
                return Step("drop", src, dst, k)
            if rates.dup and rng.random() < rates.dup:
                return Step("dup", src, dst, k)
            return Step("deliver", src, dst, k)
        if rng.random() < 0.8:
            return Step("tick-all")
        live = self._live()
        if not live:
            return Step("tick-all")
        return Step("tick", live[rng.randrange(len(live))])

    # --- client requests -------------------------------------------------------------

    def _client(self) -> Step | None:
        rng = self.rng
        live = self._members()
        if not live:
            return None
        busy = self.cluster.busy
        cap = self.rates.client_cap
        keys = [i for i, k in enumerate(KEYS) if busy[k] < cap]
        if not keys:
            return None
        lead = self._leader()
        nid = lead if lead is not None and rng.random() < 0.5 else rng.choice(live)
        key = keys[rng.randrange(len(keys))]
        x = rng.random()
        kind = "put" if x < 0.45 else "delete" if x < 0.55 else "get"
        return Step(kind, nid, arg=key)

    # --- faults ------------------------------------------------------------------------

    def _crash(self) -> Step | None:
        rng = self.rng
        c = self.cluster
        live = self._live()
        if not live:
            return None
        # Mostly keep a majority of the original voters up, so that the cluster makes
        # progress between faults; sometimes take it down.
        # Half the time strike the node that just made something durable (a vote, a
        # term): recovery bugs live right after a write.
        target = c.last_hs_node
        if target not in live or rng.random() < 0.5:
            target = rng.choice(live)
        if rng.random() < 0.4:
            return Step("crash", target, arg=1)
        if 2 * len(c.down) + 1 >= self.params.voters and rng.random() < 0.8:
            return None
        return Step("crash", target)

    def _partition(self) -> Step | None:
        rng = self.rng
        c = self.cluster
        ids = list(c.activated)
        x = rng.random()
        if c.net.blocked and x < 0.4:
            return Step("heal")
        if len(ids) < 2:
            return None
        if x < 0.75:
            size = rng.randint(1, max(1, len(ids) // 2))
            side = tuple(sorted(rng.sample(ids, size)))
            return Step("partition", group=side)
        a, b = rng.sample(ids, 2)
        return Step("oneway", a, b)

    def _compact(self) -> Step | None:
        live = self._live()
        if not live:
            return None
        return Step("compact", self.rng.choice(live), arg=self.rng.choice((0, 0, 1, 3, 10)))

    def _confchange(self) -> Step | None:
        rng = self.rng
        c = self.cluster
        lead = self._leader()
        if lead is None:
            return None
        cfg = c.nodes[lead].rn.raft.trk.config
        if cfg.voters.outgoing:
            return Step("leave", lead)
        voters = sorted(cfg.voters.incoming)
        learners = sorted(cfg.learners)
        members = set(voters) | set(learners)
        addable = [
            i
            for i in c.ids
            if i not in members and i not in c.ever_removed and i not in c.ever_member
        ]
        opts: list[tuple[int, int]] = []
        for i in addable:
            opts += [(_ADD_LEARNER, i), (_ADD, i)]
        for i in learners:
            opts += [(_ADD, i), (_REMOVE, i)]
        # A change that demotes or removes the leader itself must leave a majority of
        # the current voters untouched (checked per proposal below, see _leader_safe).
        # Otherwise the voters left behind keep the old (or joint) configuration
        # until they learn the change committed, need a vote from the old leader or
        # the other demoted nodes, and do not get it if those have longer logs (they
        # appended past the change) while, as learners, they cannot campaign: no
        # leader ever again. A hazard of raft's apply-time membership changes that
        # etcd leaves to the application ("we prevent demotions", etcd-io/raft#83).
        demotable = voters
        if self.avoid_known_bugs and not self.params.step_down_on_removal:
            demotable = [v for v in voters if v != lead]
        if len(voters) >= 2:
            opts += [(_ADD_LEARNER, v) for v in demotable]
        if len(voters) > max(2, self.params.voters - 1):
            opts += [(_REMOVE, v) for v in demotable]
        if not opts:
            return None
        x = rng.random()
        if x < 0.6:
            change = rng.choice(opts)
            if not _leader_safe((change,), voters, lead):
                return None
            return Step("confchange", lead, arg=1 if x < 0.35 else 2, changes=(change,))
        rng.shuffle(opts)
        picked: list[tuple[int, int]] = []
        for t, i in opts:
            if all(i != j for _, j in picked) and _leader_safe((*picked, (t, i)), voters, lead):
                picked.append((t, i))
            if len(picked) == 3 or (len(picked) == 2 and rng.random() < 0.7):
                break
        if not picked:
            return None
        return Step("confchange", lead, arg=rng.choice((2, 3, 4)), changes=tuple(picked))

    def _transfer(self) -> Step | None:
        rng = self.rng
        c = self.cluster
        live = self._live()
        if not live:
            return None
        lead = self._leader()
        if lead is None or rng.random() < 0.25:
            return Step("campaign", rng.choice(live))
        voters = sorted(c.nodes[lead].rn.raft.trk.config.voters.ids())
        others = [v for v in voters if v != lead]
        if others and rng.random() < 0.85:
            return Step("transfer", lead, rng.choice(others))
        return Step("transfer", lead, rng.choice(c.ids))


def _leader_safe(changes: Sequence[tuple[int, int]], voters: Sequence[int], lead: int) -> bool:
    """Whether ``changes`` keep the cluster able to elect a leader if they demote or
    remove ``lead``: a majority of ``voters`` must stay voters."""
    hit = {i for t, i in changes if t in (_ADD_LEARNER, _REMOVE) and i in voters}
    if lead not in hit:
        return True
    return 2 * (len(voters) - len(hit)) > len(voters)


@dataclass(slots=True)
class RunResult:
    seed: int
    params: SimParams
    trace: list[Step]
    violation: Violation | None
    stats: Counter[str] = field(default_factory=Counter)
    trace_hash: str = ""
    elapsed: float = 0.0
    ops: int = 0
    lin: str = ""


def _panic(e: BaseException) -> Violation:
    tb = traceback.extract_tb(e.__traceback__)
    where = " <- ".join(f"{fr.name}:{fr.lineno}" for fr in reversed(tb[-4:]))
    return Violation("panic", f"{type(e).__name__}: {e} (at {where})")


def _finish(cluster: Cluster, params: SimParams, opts: SimOptions) -> str:
    """Heal phase, liveness and linearizability; returns the checker's verdict."""
    cluster.heal_all()
    cluster.drain()
    et = params.election_tick
    bound = 20 * et + 20
    op: int | None = None
    proposed_at = 0
    hist = cluster.history
    done = False
    for t in range(bound):
        cluster.tick_all()
        cluster.drain()
        if op is not None and not hist.is_open(op):
            done = True
            break
        if op is None or t - proposed_at > 4 * et:
            # (Re)propose: the previous one may have been lost with a leader change.
            lead = cluster.leader()
            if lead is not None:
                op = cluster.propose_put(lead, KEYS[0])
                proposed_at = t
                cluster.after_step()
                cluster.drain()
                if op is not None and not hist.is_open(op):
                    done = True
                    break
    cluster.stats["heal-ticks"] += t + 1
    if not done:
        lead = cluster.leader()
        if params.pre_vote or opts.strict_liveness:
            cluster.inv.fail(
                "liveness",
                f"no proposal committed within {bound} ticks after healing "
                f"(leader: {lead.id if lead else 'none'})",
            )
        else:
            # Without pre-vote raft does not promise progress: a voter that missed a
            # configuration change can campaign in its stale configuration at ever
            # higher terms that never reach the voter that could win (its lower-term
            # MsgVotes are ignored, not answered). Counted, not a violation.
            cluster.stats["stalls-without-prevote"] += 1
    res = check(hist.operations(cluster.applied_ops), timeout=opts.lin_timeout)
    if res.verdict is Verdict.ILLEGAL:
        cluster.inv.fail("linearizability", res.describe())
    return str(res.verdict)


def _hash(trace: Sequence[Step], cluster: Cluster) -> str:
    h = hashlib.sha256()
    for s in trace:
        h.update(repr(s).encode())
        h.update(b"\n")
    h.update(cluster.digest().encode())
    h.update(cluster.history.digest().encode())
    return h.hexdigest()


def _execute(cluster: Cluster, s: Step) -> None:
    try:
        cluster.execute(s)
    except Violation:
        raise
    except Exception as e:
        raise _panic(e) from e


def run_seed(seed: int, opts: SimOptions) -> RunResult:
    """Run one seed: chaos phase, heal phase, end-of-run checks."""
    t0 = time.perf_counter()
    params, rates = choose_params(seed, opts)
    inv = Invariants(opts.checks)
    trace: list[Step] = []
    violation: Violation | None = None
    lin = ""
    with seeded_raft(seed):
        cluster = Cluster(params, inv, opts.bug, opts.avoid_known_bugs)
        gen = Generator(
            random.Random(seed * 1_000_003 + _GEN_SALT),
            cluster,
            params,
            rates,
            opts.avoid_known_bugs,
        )
        try:
            for _ in range(opts.steps):
                s = gen.next()
                trace.append(s)
                try:
                    _execute(cluster, s)
                except Violation as v:
                    v.step = len(trace) - 1
                    raise
            try:
                lin = _finish(cluster, params, opts)
            except Violation as v:
                v.step = len(trace)
                raise
            except Exception as e:
                pv = _panic(e)
                pv.step = len(trace)
                raise pv from e
        except Violation as v:
            violation = v
    res = RunResult(seed, params, trace, violation, cluster.stats)
    res.trace_hash = _hash(trace, cluster)
    res.elapsed = time.perf_counter() - t0
    res.ops = len(cluster.history)
    res.lin = lin
    return res


def replay(
    seed: int,
    opts: SimOptions,
    trace: Sequence[Step],
    *,
    finish: bool = True,
    kinds: Collection[str] | None = None,
) -> Violation | None:
    """Run ``trace`` (any list of steps) on the cluster of ``seed``; returns the first
    violation (of one of ``kinds``, if given; others are ignored), or None.

    ``finish`` adds the heal phase and end-of-run checks.
    """
    params, _ = choose_params(seed, opts)
    checks = opts.checks
    if kinds is not None:
        checks = frozenset(kinds) if checks is None else checks & frozenset(kinds)
    inv = Invariants(checks)
    with seeded_raft(seed):
        try:
            cluster = Cluster(params, inv, opts.bug, opts.avoid_known_bugs)
            for i, s in enumerate(trace):
                try:
                    _execute(cluster, s)
                except Violation as v:
                    v.step = i
                    raise
            if finish:
                try:
                    _finish(cluster, params, opts)
                except Violation as v:
                    v.step = len(trace)
                    raise
                except Exception as e:
                    raise _panic(e) from e
        except Violation as v:
            return v
    return None


def replay_hash(seed: int, opts: SimOptions, trace: Sequence[Step]) -> str:
    """The trace hash a replay of ``trace`` ends with (equals the run's own hash)."""
    params, _ = choose_params(seed, opts)
    with seeded_raft(seed):
        cluster = Cluster(params, Invariants(opts.checks), opts.bug, opts.avoid_known_bugs)
        try:
            for s in trace:
                _execute(cluster, s)
            _finish(cluster, params, opts)
        except Violation:
            pass
    return _hash(trace, cluster)
