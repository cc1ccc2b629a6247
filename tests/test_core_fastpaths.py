"""The core's performance shortcuts are invisible: each agrees with the plain path.

The hot path takes shortcuts (see bench/README.md): an optional
``Storage.maybe_term``, lock-free MemoryStorage reads, lazily measured applying
sizes, a leader's own append acks coalesced on advance, proposals on a leader
without a MsgProp message, size limits that skip measuring when a batch clearly fits. Each test here pits a shortcut against the
general code path it replaces; the last one runs randomized clusters with and
without all of them and compares every Ready and every log line.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcore.config import Config
from raftcore.describe import describe_message, describe_ready
from raftcore.errors import CompactedError, RaftError, RaftPanic, UnavailableError
from raftcore.log import RaftLog
from raftcore.logger import StdlibLogger, debug_enabled
from raftcore.raft import Raft
from raftcore.raftpb.codec import entry_size
from raftcore.raftpb.confchange import unmarshal_conf_change
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.rawnode import RawNode
from raftcore.storage import MemoryStorage
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, ents_size, limit_size

# --- sizes -------------------------------------------------------------------------

_VALUES = st.sampled_from([0, 1, 5, 127, 128, 300, 16383, 16384, 2**21, 2**35, 2**63])


@st.composite
def _batches(draw: st.DrawFn) -> list[Entry]:
    """Entry lists, mostly shaped like log batches (one term, consecutive indexes,
    payloads of one length), sometimes mixed in any field."""
    n = draw(st.integers(0, 70))
    term = draw(_VALUES)
    first = draw(_VALUES)
    size = draw(st.sampled_from([0, 1, 16, 127, 128, 1024, 16384]))
    mixed = draw(st.sets(st.sampled_from(["term", "index", "type", "data"])))
    ents = []
    for i in range(n):
        ents.append(
            Entry(
                term=draw(_VALUES) if "term" in mixed else term,
                index=draw(_VALUES) if "index" in mixed else first + i,
                type=draw(st.sampled_from(list(EntryType)))
                if "type" in mixed
                else EntryType.EntryNormal,
                data=bytes(draw(st.sampled_from([0, 1, 127, 128, 200])))
                if "data" in mixed
                # Payloads need not be distinct objects.
                else bytes(size),
            )
        )
    return ents


def _limit_by_entry(ents: list[Entry], max_size: int) -> int:
    # limit_size's contract, one entry at a time: the longest prefix within the limit,
    # but at least one entry.
    if len(ents) <= 1:
        return len(ents)
    size = entry_size(ents[0])
    for k in range(1, len(ents)):
        size += entry_size(ents[k])
        if size > max_size:
            return k
    return len(ents)


@settings(max_examples=300, deadline=None)
@given(_batches(), st.integers(0, 2**22), st.booleans())
def test_limit_size_matches_entry_by_entry(ents: list[Entry], max_size: int, near: bool) -> None:
    if near and ents:
        # Limits right around the total, where the cut is decided by a few bytes.
        max_size = max(0, sum(map(entry_size, ents)) - max_size % 64)
    got = limit_size(ents, max_size)
    assert len(got) == _limit_by_entry(ents, max_size)
    assert got == ents[: len(got)]
    if len(got) == len(ents):
        assert got is ents  # no copy when nothing is cut


# --- storage and log lookups --------------------------------------------------------


class PlainStorage:
    """The Storage protocol only (no ``maybe_term``): RaftLog's general path."""

    def __init__(self, mem: MemoryStorage) -> None:
        self.mem = mem

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.mem.initial_state()

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        return self.mem.entries(lo, hi, max_size)

    def term(self, i: int) -> int:
        return self.mem.term(i)

    def last_index(self) -> int:
        return self.mem.last_index()

    def first_index(self) -> int:
        return self.mem.first_index()

    def snapshot(self) -> Snapshot:
        return self.mem.snapshot()


def _outcome(f: Callable[[], object]) -> object:
    try:
        return f()
    except (CompactedError, UnavailableError) as err:
        return type(err)


@st.composite
def _logs(draw: st.DrawFn) -> tuple[MemoryStorage, list[Entry], Snapshot | None]:
    """A storage (maybe compacted) plus unstable entries and maybe a snapshot."""
    compacted = draw(st.integers(0, 5))
    stable = draw(st.integers(0, 6))
    mem = MemoryStorage(ents=[Entry(term=1, index=compacted)])
    terms = sorted(draw(st.lists(st.integers(1, 4), min_size=stable, max_size=stable)))
    mem.append([Entry(term=t, index=compacted + 1 + i) for i, t in enumerate(terms)])
    last = compacted + stable
    # Unstable entries continue the log, or replace part of its tail.
    start = draw(st.integers(compacted + 1, last + 1))
    n = draw(st.integers(0, 4))
    unstable = [Entry(term=5, index=start + i) for i in range(n)]
    snap = None
    if draw(st.booleans()) and not unstable:
        idx = last + draw(st.integers(1, 3))
        snap = Snapshot(
            metadata=SnapshotMetadata(conf_state=ConfState(voters=[1]), index=idx, term=6)
        )
    return mem, unstable, snap


def _twin_logs(
    mem: MemoryStorage, unstable: list[Entry], snap: Snapshot | None
) -> tuple[RaftLog, RaftLog]:
    logs = []
    for storage in (mem, PlainStorage(mem)):
        log = RaftLog(storage)
        if snap is not None:
            log.restore(snap)
        if unstable:
            log.committed = unstable[0].index - 1
            log.append(unstable)
        logs.append(log)
    return logs[0], logs[1]


@settings(max_examples=300, deadline=None)
@given(_logs())
def test_raft_log_lookups_agree_with_and_without_maybe_term(
    log_parts: tuple[MemoryStorage, list[Entry], Snapshot | None],
) -> None:
    fast, plain = _twin_logs(*log_parts)
    assert fast._storage_maybe_term is not None
    assert plain._storage_maybe_term is None
    last = plain.last_index()
    assert fast.last_index() == last
    assert fast.last_entry_id() == plain.last_entry_id()
    if fast._last_term_known():
        assert isinstance(plain.term(last), int)
    for i in range(0, last + 3):
        assert _outcome(partial(fast.term, i)) == _outcome(partial(plain.term, i)), i
        assert fast._term_or_none(i) == plain._term_or_none(i)
        assert fast.zero_term_on_out_of_bounds(i) == plain.zero_term_on_out_of_bounds(i)
        for t in range(0, 7):
            assert fast.find_conflict_by_term(i, t) == plain.find_conflict_by_term(i, t)
        if i <= last + 1:
            assert _outcome(partial(fast.entries, i, 2**64 - 1)) == _outcome(
                partial(plain.entries, i, 2**64 - 1)
            )


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 6), st.integers(0, 8), st.integers(-2, 20))
def test_memory_storage_maybe_term_matches_term(compacted: int, n: int, i: int) -> None:
    mem = MemoryStorage(ents=[Entry(term=2, index=compacted)])
    mem.append([Entry(term=3 + k % 2, index=compacted + 1 + k) for k in range(n)])
    want = _outcome(lambda: mem.term(i))
    got = mem.maybe_term(i)
    assert got == (None if isinstance(want, type) else want)


def test_memory_storage_lock_free_reads_never_see_a_torn_append() -> None:
    # A writer keeps replacing the tail (truncating appends); a reader checks that
    # every last index and term it reads belongs to a state before or after a write.
    mem = MemoryStorage()
    mem.append([Entry(term=1, index=i) for i in range(1, 51)])
    stop = threading.Event()
    errors: list[str] = []

    def writer() -> None:
        term = 1
        while not stop.is_set():
            term += 1
            mem.append([Entry(term=term, index=i) for i in range(26, 51)])

    def reader() -> None:
        for _ in range(20000):
            last = mem.last_index()
            if last != 50:
                errors.append(f"last index {last}")
            t = mem.maybe_term(40)
            if t is None:
                errors.append("term of 40 missing")

    w = threading.Thread(target=writer)
    w.start()
    try:
        reader()
    finally:
        stop.set()
        w.join()
    assert errors == []


# --- lazily measured applying sizes --------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([600, 2000, 2**64 - 1]),
    st.lists(st.tuples(st.integers(1, 8), st.booleans()), min_size=1, max_size=12),
)
def test_lazy_applying_size_matches_measured(max_size: int, ops: list[tuple[int, bool]]) -> None:
    # The same handing out / applying sequence, through the lazy internal calls and
    # through accept_applying/applied_to with measured sizes.
    def new_log() -> RaftLog:
        mem = MemoryStorage()
        mem.append([Entry(term=1, index=i, data=bytes(100)) for i in range(1, 200)])
        log = RaftLog(mem, max_applying_ents_size=max_size)
        log.committed = 199
        return log

    lazy, measured = new_log(), new_log()
    outstanding: list[list[Entry]] = []
    next_index = 1
    for n, apply_first in ops:
        if apply_first and outstanding:
            ents = outstanding.pop(0)
            i = max(ents[-1].index, lazy.applied)
            lazy._applied_to_ents(i, ents)
            measured.applied_to(i, ents_size(ents))
        else:
            ents = [Entry(term=1, index=next_index + k, data=bytes(100)) for k in range(n)]
            next_index += n
            lazy._accept_applying_ents(ents[-1].index, ents, True)
            measured.accept_applying(ents[-1].index, ents_size(ents), True)
            outstanding.append(ents)
        assert lazy.applying_ents_paused == measured.applying_ents_paused
        assert (lazy.applied, lazy.applying) == (measured.applied, measured.applying)
    assert lazy.applying_ents_size == measured.applying_ents_size


def test_debug_enabled() -> None:
    class Bare:
        pass

    import logging

    log = logging.getLogger("raftcore.test_fastpaths")
    log.setLevel(logging.INFO)
    assert debug_enabled(Bare()) is True  # type: ignore[arg-type]
    assert debug_enabled(StdlibLogger(log)) is False
    log.setLevel(logging.DEBUG)
    assert debug_enabled(StdlibLogger(log)) is True


# --- whole clusters ------------------------------------------------------------------


class _Recorder:
    """A Logger writing every line, whatever the level, into a transcript."""

    def __init__(self, nid: int, out: list[str]) -> None:
        self.nid = nid
        self.out = out

    def _rec(self, level: str, msg: str, args: tuple[object, ...]) -> None:
        self.out.append(f"[{self.nid} {level}] " + (msg % args if args else msg))

    def debug(self, msg: str, *args: object) -> None:
        self._rec("D", msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._rec("I", msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._rec("W", msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._rec("E", msg, args)

    def panic(self, msg: str, *args: object) -> NoReturn:
        self._rec("P", msg, args)
        raise RaftPanic(msg % args if args else msg)


def _run_cluster(seed: int, steps: int, async_writes: bool, plain: bool) -> list[str]:
    """A randomized cluster (proposals one by one and in batches, reordered and lost
    messages, ticks, compaction, conf changes, transfers, reads); the transcript of
    every Ready, log line and error. ``plain`` wraps storage without maybe_term."""
    random.seed(seed)  # raft's randomized election timeouts
    rng = random.Random(seed)
    out: list[str] = []
    n = (2, 3, 5)[seed % 3]
    ids = list(range(1, n + 1))
    learner = n
    mems: dict[int, MemoryStorage] = {}
    nodes: dict[int, RawNode] = {}
    applied: dict[int, int] = {}
    confs: dict[int, ConfState] = {}
    for i in ids:
        mem = MemoryStorage()
        cs = ConfState(voters=ids[:-1], learners=[learner])
        mem.apply_snapshot(Snapshot(metadata=SnapshotMetadata(conf_state=cs, index=1, term=1)))
        mems[i], applied[i], confs[i] = mem, 1, cs
        max_msg = rng.choice([1, 300, 4096, 1 << 20])
        nodes[i] = RawNode(
            Config(
                id=i,
                election_tick=10,
                heartbeat_tick=1,
                storage=PlainStorage(mem) if plain else mem,
                max_size_per_msg=max_msg,
                max_inflight_msgs=rng.choice([1, 4, 256]),
                max_committed_size_per_ready=rng.choice([0, 500, 1 << 20]),
                max_uncommitted_entries_size=rng.choice([0, 0, 2000]),
                check_quorum=rng.random() < 0.5,
                pre_vote=rng.random() < 0.5,
                async_storage_writes=async_writes,
                logger=_Recorder(i, out),
            )
        )
    net: list[Message] = []
    local: dict[int, list[Message]] = {i: [] for i in ids}

    def apply(i: int, ents: list[Entry] | tuple[Entry, ...]) -> None:
        for e in ents:
            if e.type != EntryType.EntryNormal:
                cc = unmarshal_conf_change(e.type, e.data)
                if cc is not None:
                    confs[i] = nodes[i].apply_conf_change(cc)
        if ents:
            applied[i] = ents[-1].index

    def persist(i: int, snap: Snapshot | None, ents: object, hs: HardState | None) -> None:
        if snap is not None and snap.metadata.index:
            mems[i].apply_snapshot(snap)
            applied[i] = snap.metadata.index
            confs[i] = snap.metadata.conf_state
        if ents:
            mems[i].append(ents)  # type: ignore[arg-type]
        if hs is not None:
            mems[i].set_hard_state(hs)

    def ready(i: int) -> None:
        rn = nodes[i]
        if not rn.has_ready():
            return
        rd = rn.ready()
        out.append(f"READY {i}\n{describe_ready(rd)}")
        if async_writes:
            for m in rd.messages:
                is_local = m.to in (LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD)
                (local[i] if is_local else net).append(m)
            return
        persist(i, rd.snapshot, rd.entries, rd.hard_state)
        net.extend(rd.messages)
        apply(i, rd.committed_entries)
        rn.advance()

    def run_local(i: int) -> None:
        if not local[i]:
            return
        m = local[i].pop(0)
        if m.type == MessageType.MsgStorageAppend:
            hs = HardState(m.term, m.vote, m.commit) if m.term or m.vote or m.commit else None
            persist(i, m.snapshot, m.entries, hs)
        else:
            apply(i, list(m.entries))
        for resp in m.responses:
            step(resp)

    def step(m: Message) -> None:
        try:
            nodes[m.to].step(m)
        except RaftPanic:
            raise
        except RaftError as err:
            out.append(f"step error {type(err).__name__}")

    payloads = [b"", b"x", bytes(100), bytes(1000)]
    try:
        for k in range(steps):
            x = rng.random()
            i = rng.choice(ids)
            rn = nodes[i]
            try:
                if x < 0.10:
                    rn.tick()
                elif x < 0.25:
                    count = rng.choice([1, 1, 2, 5, 20])
                    if rng.random() < 0.3:
                        ents = [Entry(data=rng.choice(payloads)) for _ in range(count)]
                        rn.step(Message(type=MessageType.MsgProp, from_=i, entries=ents))
                    else:
                        for _ in range(count):
                            rn.propose(rng.choice(payloads))
                elif x < 0.45 or (x < 0.55 and not async_writes):
                    ready(i)
                elif x < 0.55:
                    for _ in range(4):
                        run_local(i)
                elif x < 0.88:
                    for _ in range(rng.randrange(1, 6)):
                        if net:
                            m = net.pop(rng.randrange(len(net)) if rng.random() < 0.3 else 0)
                            if rng.random() < 0.05:
                                out.append("drop " + describe_message(m))
                            else:
                                step(m)
                elif x < 0.90:
                    a = applied[i]
                    if a > mems[i].first_index() + 3:
                        mems[i].create_snapshot(a, confs[i], b"snap")
                        mems[i].compact(a - rng.randrange(3))
                elif x < 0.91:
                    rn.campaign()
                elif x < 0.92:
                    rn.transfer_leader(rng.choice(ids))
                elif x < 0.93:
                    rn.report_unreachable(rng.choice(ids))
                elif x < 0.94:
                    rn.read_index(b"ctx%d" % k)
                elif x < 0.945:
                    t = rng.choice(
                        [ConfChangeType.ConfChangeAddNode, ConfChangeType.ConfChangeAddLearnerNode]
                    )
                    rn.propose_conf_change(ConfChange(type=t, node_id=learner))
                else:
                    ready(i)
            except RaftPanic:
                raise
            except RaftError as err:
                out.append(f"error {type(err).__name__}")
    except RaftPanic as p:
        out.append(f"PANIC {p}")
    for i in ids:
        r = nodes[i].raft
        out.append(f"{i}: {r.state} term={r.term} commit={r.raft_log.committed}")
    return out


@contextmanager
def _shortcuts_off(mp: pytest.MonkeyPatch) -> Iterator[None]:
    # The coalescing of own acks and the direct leader proposal; plain storage is
    # chosen by _run_cluster.
    with mp.context() as m:
        m.setattr(Raft, "_own_acks_coalesce", lambda self, msgs: False)

        def propose(self: RawNode, data: bytes) -> None:
            r = self.raft
            r.step(Message(type=MessageType.MsgProp, from_=r.id, entries=[Entry(data=data)]))

        m.setattr(RawNode, "propose", propose)
        yield


@pytest.mark.parametrize("async_writes", [False, True])
def test_cluster_runs_identically_without_shortcuts(
    async_writes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[bool] = []
    coalesce = Raft._own_acks_coalesce

    def counting(self: Raft, msgs: list[Message]) -> bool:
        taken.append(coalesce(self, msgs))
        return taken[-1]

    for seed in range(6):
        with monkeypatch.context() as m:
            m.setattr(Raft, "_own_acks_coalesce", counting)
            fast = _run_cluster(seed, 2500, async_writes, plain=False)
        with _shortcuts_off(monkeypatch):
            slow = _run_cluster(seed, 2500, async_writes, plain=True)
        assert len(fast) > 100
        assert fast == slow, f"seed {seed}"
    if not async_writes:
        # Both outcomes of the coalescing decision were exercised.
        assert any(taken)
        assert not all(taken)
