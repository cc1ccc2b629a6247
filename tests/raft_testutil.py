"""Test scaffolding for the ports of etcd's raft_test.go family (the helpers those
files share: newTestRaft, newTestMemoryStorage, the ``network`` type, nextEnts ...).

The names are etcd's, snake_cased, so that a Go test reads across line by line. Where
etcd's helper is a method on ``*raft`` (``readMessages``, ``advanceMessagesAfterAppend``,
``stepOrSend``) it is a plain function taking the Raft here: those are test code, not
part of the state machine.

Two details of the Go helpers matter for faithfulness and are kept on purpose:

* ``advance_messages_after_append`` treats the unstable state as persisted at once:
  self-addressed responses are stepped, everything else joins ``r.msgs``. A step error
  drops the rest of that batch, exactly as ``stepOrSend``'s early return does.
* ``Network.send`` ignores step errors (Go discards them with ``_ =``) but lets panics
  through, so a RaftPanic still fails the test.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from raftcore.config import Config
from raftcore.errors import RaftError, RaftPanic
from raftcore.log import RaftLog
from raftcore.raft import Raft, StateType
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeType,
    Entry,
    HardState,
    Message,
    MessageType,
)
from raftcore.rawnode import RawNode
from raftcore.storage import MemoryStorage
from raftcore.tracker import Progress, ProgressTracker
from raftcore.util import NO_LIMIT, NONE

__all__ = [
    "NOP_STEPPER",
    "BlackHole",
    "ConfigFunc",
    "Network",
    "StorageOption",
    "accept_and_reply",
    "add_node",
    "advance_messages_after_append",
    "assert_messages_equal",
    "check_leader_transfer_state",
    "commit_noop_entry",
    "ents_with_config",
    "expect_one_message",
    "ids_by_size",
    "index_terms",
    "ltoa",
    "must_append_entry",
    "new_log",
    "new_network",
    "new_network_with_config",
    "new_test_config",
    "new_test_learner_raft",
    "new_test_memory_storage",
    "new_test_raft",
    "new_test_raw_node",
    "next_ents",
    "norm_message",
    "pre_vote_config",
    "read_messages",
    "set_randomized_election_timeout",
    "sort_messages",
    "state_of",
    "step_or_send",
    "take_messages_after_append",
    "try_step",
    "voted_with_config",
    "with_learners",
    "with_peers",
]

StorageOption = Callable[[MemoryStorage], None]
ConfigFunc = Callable[[Config], None]


# --------------------------------------------------------------------------- building


def with_peers(*peers: int) -> StorageOption:
    """Storage option: the initial ConfState's voters (etcd's ``withPeers``)."""

    def opt(ms: MemoryStorage) -> None:
        ms.snap.metadata.conf_state.voters = list(peers)

    return opt


def with_learners(*learners: int) -> StorageOption:
    """Storage option: the initial ConfState's learners (etcd's ``withLearners``)."""

    def opt(ms: MemoryStorage) -> None:
        ms.snap.metadata.conf_state.learners = list(learners)

    return opt


def new_test_memory_storage(*opts: StorageOption) -> MemoryStorage:
    ms = MemoryStorage()
    for o in opts:
        o(ms)
    return ms


def new_test_config(id_: int, election: int, heartbeat: int, storage: MemoryStorage) -> Config:
    return Config(
        id=id_,
        election_tick=election,
        heartbeat_tick=heartbeat,
        storage=storage,
        max_size_per_msg=NO_LIMIT,
        max_inflight_msgs=256,
    )


def new_test_raft(id_: int, election: int, heartbeat: int, storage: MemoryStorage) -> Raft:
    return Raft(new_test_config(id_, election, heartbeat, storage))


# etcd keeps a separate name for rafts whose storage lists learners; it builds the same.
new_test_learner_raft = new_test_raft


def new_test_raw_node(id_: int, election: int, heartbeat: int, storage: MemoryStorage) -> RawNode:
    """A RawNode over ``storage``; the peers come from the storage's ConfState."""
    return RawNode(new_test_config(id_, election, heartbeat, storage))


def pre_vote_config(c: Config) -> None:
    c.pre_vote = True


def new_log(storage: MemoryStorage) -> RaftLog:
    """etcd's ``newLog(storage, logger)``: a log without an applying-size limit."""
    return RaftLog(storage, None, NO_LIMIT)


def index_terms(first: int, *terms: int) -> list[Entry]:
    """etcd's ``index(first).terms(...)``: entries at consecutive indexes from ``first``
    with the given terms."""
    return [Entry(term=t, index=first + i) for i, t in enumerate(terms)]


def ids_by_size(size: int) -> list[int]:
    return list(range(1, size + 1))


def ents_with_config(config_func: ConfigFunc | None, *terms: int) -> Raft:
    """A raft (id 1, no peers) whose storage holds one entry per term in ``terms``."""
    storage = MemoryStorage()
    for i, term in enumerate(terms):
        storage.append([Entry(index=i + 1, term=term)])
    cfg = new_test_config(1, 5, 1, storage)
    if config_func is not None:
        config_func(cfg)
    sm = Raft(cfg)
    sm.reset(terms[-1])
    return sm


def voted_with_config(config_func: ConfigFunc | None, vote: int, term: int) -> Raft:
    """A raft that voted for ``vote`` in ``term`` but holds no entries."""
    storage = MemoryStorage()
    storage.set_hard_state(HardState(term=term, vote=vote))
    cfg = new_test_config(1, 5, 1, storage)
    if config_func is not None:
        config_func(cfg)
    sm = Raft(cfg)
    sm.reset(term)
    return sm


def set_randomized_election_timeout(r: Raft | RawNode, v: int) -> None:
    """Fix the election timeout a test relies on (etcd's setRandomizedElectionTimeout,
    and SetRandomizedElectionTimeout for a RawNode)."""
    if isinstance(r, RawNode):
        r = r.raft
    r.randomized_election_timeout = v


def add_node(r: Raft, id_: int, typ: ConfChangeType = ConfChangeType.ConfChangeAddNode) -> None:
    """``r.applyConfChange(ConfChange{NodeId: id_, Type: typ}.AsV2())``."""
    r.apply_conf_change(ConfChange(type=typ, node_id=id_).as_v2())


def state_of(r: Raft) -> StateType:
    """``r.state`` read through a call, so that mypy does not narrow it across steps."""
    return r.state


# --------------------------------------------------------------------------- driving


def take_messages_after_append(r: Raft) -> list[Message]:
    msgs = r.msgs_after_append
    r.msgs_after_append = []
    return msgs


def step_or_send(r: Raft, msgs: Iterable[Message]) -> None:
    """Step the self-addressed messages, queue the others; stops at the first error
    (which propagates), like etcd's ``stepOrSend``."""
    for m in msgs:
        if m.to == r.id:
            r.step(m)
        else:
            r.msgs.append(m)


def advance_messages_after_append(r: Raft) -> None:
    """Pretend the unstable state is persisted: deliver ``msgs_after_append``."""
    while True:
        msgs = take_messages_after_append(r)
        if not msgs:
            break
        try:
            step_or_send(r, msgs)
        except RaftPanic:
            raise
        except RaftError:
            pass  # etcd ignores stepOrSend's error here (and loses the batch's rest)


def read_messages(r: Raft) -> list[Message]:
    advance_messages_after_append(r)
    msgs = r.msgs
    r.msgs = []
    return msgs


def try_step(r: Raft, m: Message) -> RaftError | None:
    """``r.Step(m)`` returning the error instead of raising it, as Go returns it.

    For call sites where etcd ignores Step's result; panics still propagate.
    """
    try:
        r.step(m)
    except RaftPanic:
        raise
    except RaftError as err:
        return err
    return None


def next_ents(r: Raft, s: MemoryStorage) -> list[Entry]:
    """Persist the unstable entries, run post-append steps, then return and apply
    every committed entry (etcd's ``nextEnts``)."""
    s.append(r.raft_log.next_unstable_ents())
    r.raft_log.stable_to(r.raft_log.last_entry_id())
    advance_messages_after_append(r)
    ents = r.raft_log.next_committed_ents(True)
    r.raft_log.applied_to(r.raft_log.committed, 0)
    return ents


def must_append_entry(r: Raft, *ents: Entry) -> None:
    if not r.append_entry(list(ents)):
        raise AssertionError("entry unexpectedly dropped")


def expect_one_message(r: Raft) -> Message:
    msgs = read_messages(r)
    assert len(msgs) == 1, f"expect one message, got {msgs}"
    return msgs[0]


def accept_and_reply(m: Message) -> Message:
    """The MsgAppResp a follower accepting MsgApp ``m`` in full would send."""
    assert m.type == MessageType.MsgApp, "type should be MsgApp"
    return Message(
        from_=m.to,
        to=m.from_,
        term=m.term,
        type=MessageType.MsgAppResp,
        index=m.index + len(m.entries),
    )


def commit_noop_entry(r: Raft, s: MemoryStorage) -> None:
    """Have every follower ack the leader's empty entry, then persist and apply it."""
    assert r.state == StateType.StateLeader, "it should only be used when it is the leader"
    r.bcast_append()
    # Simulate the responses to the MsgApps.
    for m in read_messages(r):
        if m.type != MessageType.MsgApp or len(m.entries) != 1 or m.entries[0].data:
            raise AssertionError("not a message to append noop entry")
        r.step(accept_and_reply(m))
    # Ignore the MsgApps that refresh the followers' commit index.
    read_messages(r)
    s.append(r.raft_log.next_unstable_ents())
    r.raft_log.applied_to(r.raft_log.committed, 0)
    r.raft_log.stable_to(r.raft_log.last_entry_id())


def check_leader_transfer_state(r: Raft, state: StateType, lead: int) -> None:
    assert r.state == state
    assert r.lead == lead
    assert r.lead_transferee == NONE


# --------------------------------------------------------------------------- comparing


def norm_message(m: Message) -> Message:
    """A copy of ``m`` with list-typed repeated fields, so that a message built with
    ``entries=[]`` equals one that carries the default ``()``."""
    return replace(m, entries=list(m.entries), responses=[norm_message(x) for x in m.responses])


def assert_messages_equal(expected: Sequence[Message], actual: Sequence[Message]) -> None:
    assert [norm_message(m) for m in actual] == [norm_message(m) for m in expected]


def sort_messages(msgs: Iterable[Message]) -> list[Message]:
    """etcd's ``messageSlice`` order: by recipient, then type, then sender."""
    return sorted(msgs, key=lambda m: (m.to, int(m.type), m.from_))


def ltoa(log: RaftLog) -> str:
    """A printable summary of a log (etcd's ``ltoa``), for comparing two logs."""
    lines = [
        f"lastIndex: {log.last_index()}",
        f"applied:  {log.applied}",
        f"applying:  {log.applying}",
    ]
    lines.extend(
        f"#{i}: term={e.term} index={e.index} type={e.type.name} data={e.data!r}"
        for i, e in enumerate(log.all_entries())
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- network


class BlackHole:
    """A peer that swallows everything and never says anything (etcd's ``blackHole``)."""

    def step(self, m: Message) -> None:
        pass


NOP_STEPPER = BlackHole()

Peer = Raft | BlackHole


@dataclass
class Network:
    """Peers exchanging messages synchronously, with lossy links (etcd's ``network``).

    ``send`` delivers a message and then, transitively, every message it causes, in
    FIFO order, until the network is quiet.
    """

    peers: dict[int, Peer]
    storage: dict[int, MemoryStorage]
    dropm: dict[tuple[int, int], float] = field(default_factory=dict)
    ignorem: set[MessageType] = field(default_factory=set)
    # Called for each message sent; returns False to drop it.
    msg_hook: Callable[[Message], bool] | None = None

    def raft(self, id_: int) -> Raft:
        p = self.peers[id_]
        assert isinstance(p, Raft)
        return p

    def send(self, *msgs: Message) -> None:
        queue = list(msgs)
        i = 0
        while i < len(queue):
            m = queue[i]
            i += 1
            p = self.peers[m.to]
            if isinstance(p, Raft):
                try_step(p, m)
                advance_messages_after_append(p)
                queue.extend(self.filter(read_messages(p)))
            else:
                p.step(m)

    def drop(self, from_: int, to: int, perc: float) -> None:
        self.dropm[(from_, to)] = perc

    def cut(self, one: int, other: int) -> None:
        self.drop(one, other, 2.0)  # always drop
        self.drop(other, one, 2.0)  # always drop

    def isolate(self, id_: int) -> None:
        for i in range(len(self.peers)):
            nid = i + 1
            if nid != id_:
                self.drop(id_, nid, 1.0)  # always drop
                self.drop(nid, id_, 1.0)  # always drop

    def ignore(self, t: MessageType) -> None:
        self.ignorem.add(t)

    def recover(self) -> None:
        self.dropm = {}
        self.ignorem = set()

    def filter(self, msgs: Iterable[Message]) -> list[Message]:
        mm: list[Message] = []
        for m in msgs:
            if m.type in self.ignorem:
                continue
            if m.type == MessageType.MsgHup:
                # Hups never go over the network.
                raise AssertionError("unexpected msgHup")
            perc = self.dropm.get((m.from_, m.to), 0.0)
            if random.random() < perc:
                continue
            if self.msg_hook is not None and not self.msg_hook(m):
                continue
            mm.append(m)
        return mm


def new_network(*peers: Peer | None) -> Network:
    return new_network_with_config(None, *peers)


def new_network_with_config(config_func: ConfigFunc | None, *peers: Peer | None) -> Network:
    """A network of ``len(peers)`` nodes with ids 1..n.

    ``None`` becomes a fresh raft (election 10, heartbeat 1) whose storage lists all
    nodes as voters, adjusted by ``config_func``. A given Raft is renumbered and its
    tracker rebuilt for the n nodes, keeping whichever of them it had as learners.
    """
    size = len(peers)
    peer_addrs = ids_by_size(size)
    npeers: dict[int, Peer] = {}
    nstorage: dict[int, MemoryStorage] = {}

    for j, p in enumerate(peers):
        id_ = peer_addrs[j]
        if p is None:
            nstorage[id_] = new_test_memory_storage(with_peers(*peer_addrs))
            cfg = new_test_config(id_, 10, 1, nstorage[id_])
            if config_func is not None:
                config_func(cfg)
            npeers[id_] = Raft(cfg)
        elif isinstance(p, Raft):
            learners = set(p.trk.config.learners)
            p.id = id_
            p.trk = ProgressTracker(p.trk.max_inflight, p.trk.max_inflight_bytes)
            for pid in peer_addrs:
                pr = Progress()
                if pid in learners:
                    pr.is_learner = True
                    p.trk.config.learners.add(pid)
                else:
                    p.trk.config.voters.incoming.add(pid)
                p.trk.progress[pid] = pr
            p.reset(p.term)
            npeers[id_] = p
        else:
            npeers[id_] = p
    return Network(peers=npeers, storage=nstorage)
