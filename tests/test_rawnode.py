"""RawNode: etcd's rawnode_test.go cases, bootstrap, async storage writes, status."""

from __future__ import annotations

import contextlib
import json

import pytest

from raftcore.config import Config
from raftcore.errors import RaftError, RaftPanic, StepLocalMsgError, StepPeerNotFoundError
from raftcore.quorum import JointConfig, MajorityConfig
from raftcore.raft import Raft, StateType
from raftcore.raftpb.codec import decode_conf_change, decode_conf_change_v2, entry_size
from raftcore.raftpb.confchange import marshal_conf_change
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
from raftcore.rawnode import (
    Peer,
    ProgressType,
    RawNode,
    Ready,
    SnapshotStatus,
    SoftState,
    is_empty_hard_state,
    is_empty_snap,
    must_sync,
)
from raftcore.read_only import ReadState
from raftcore.storage import MemoryStorage
from raftcore.tracker import Progress, TrackerConfig
from raftcore.tracker import StateType as ProgressStateType
from raftcore.util import (
    LOCAL_APPEND_THREAD,
    LOCAL_APPLY_THREAD,
    NO_LIMIT,
    is_local_msg,
    payload_size,
)

MT = MessageType
CCT = ConfChangeType
CCTr = ConfChangeTransition


# --- helpers (etcd's newTestConfig / newTestMemoryStorage) --------------------------


def new_test_config(id: int, election: int, heartbeat: int, storage: MemoryStorage) -> Config:
    return Config(
        id=id,
        election_tick=election,
        heartbeat_tick=heartbeat,
        storage=storage,
        max_size_per_msg=NO_LIMIT,
        max_inflight_msgs=256,
    )


def new_test_memory_storage(
    peers: tuple[int, ...] = (), learners: tuple[int, ...] = ()
) -> MemoryStorage:
    ms = MemoryStorage()
    ms.snap.metadata.conf_state.voters = list(peers)
    ms.snap.metadata.conf_state.learners = list(learners)
    return ms


def new_test_raw_node(id: int, election: int, heartbeat: int, storage: MemoryStorage) -> RawNode:
    return RawNode(new_test_config(id, election, heartbeat, storage))


def decode_cc(e: Entry) -> ConfChange | ConfChangeV2 | None:
    if e.type == EntryType.EntryConfChange:
        return decode_conf_change(e.data)
    if e.type == EntryType.EntryConfChangeV2:
        return decode_conf_change_v2(e.data)
    return None


def cc_data(cc: ConfChange | ConfChangeV2) -> bytes:
    return marshal_conf_change(cc)[1]


def campaign_until_leader(rn: RawNode, s: MemoryStorage) -> None:
    rn.campaign()
    while True:
        rd = rn.ready()
        s.append(rd.entries)
        rn.advance(rd)
        if rd.soft_state is not None and rd.soft_state.lead == rn.raft.id:
            return


class IgnoreSizeHintMemStorage(MemoryStorage):
    """A storage that returns more entries than the size limit asks for."""

    __slots__ = ()

    def entries(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        return MemoryStorage.entries(self, lo, hi, NO_LIMIT)


# --- TestRawNodeStep ----------------------------------------------------------------


@pytest.mark.parametrize("msgt", list(MessageType), ids=lambda t: t.name)
def test_raw_node_step(msgt: MessageType) -> None:
    s = MemoryStorage()
    s.set_hard_state(HardState(term=1, commit=1))
    s.append([Entry(term=1, index=1)])
    s.apply_snapshot(
        Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=[1]), index=1, term=1))
    )
    # The log holds an entry, so non-local messages such as vote requests are
    # processed (and may be refused) without tripping invariants.
    rn = RawNode(new_test_config(1, 10, 1, s))
    m = Message(type=msgt)
    if is_local_msg(msgt):
        with pytest.raises(StepLocalMsgError):
            rn.step(m)
        return
    try:
        rn.step(m)
    except RaftPanic:
        raise
    except RaftError:
        pass  # etcd only checks that nothing panics; errors are fine


def test_raw_node_step_accepts_local_messages_from_local_threads() -> None:
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    # A storage acknowledgement coming from the local threads is let through.
    rn.step(Message(type=MT.MsgStorageAppendResp, from_=LOCAL_APPEND_THREAD, to=1))
    rn.step(Message(type=MT.MsgStorageApplyResp, from_=LOCAL_APPLY_THREAD, to=1))
    # The same from a peer is refused.
    with pytest.raises(StepLocalMsgError):
        rn.step(Message(type=MT.MsgStorageAppendResp, from_=2, to=1))


def test_raw_node_step_response_from_unknown_peer() -> None:
    s = new_test_memory_storage(peers=(1, 2))
    rn = new_test_raw_node(1, 10, 1, s)
    with pytest.raises(StepPeerNotFoundError) as exc:
        rn.step(Message(type=MT.MsgAppResp, from_=3, to=1, term=1))
    assert str(exc.value) == "raft: cannot step as peer not found"
    # A known peer's response is stepped.
    rn.step(Message(type=MT.MsgHeartbeatResp, from_=2, to=1, term=0))


# --- TestRawNodeProposeAndConfChange -------------------------------------------------

_PROPOSE_AND_CONF_CHANGE_CASES: list[
    tuple[ConfChange | ConfChangeV2, ConfState, ConfState | None]
] = [
    # V1 config change.
    (
        ConfChange(type=CCT.ConfChangeAddNode, node_id=2),
        ConfState(voters=[1, 2]),
        None,
    ),
    # The same as a V2 change works just the same, without entering a joint config.
    (
        ConfChangeV2(changes=[ConfChangeSingle(CCT.ConfChangeAddNode, 2)]),
        ConfState(voters=[1, 2]),
        None,
    ),
    # Ditto if we add it as a learner instead.
    (
        ConfChangeV2(changes=[ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 2)]),
        ConfState(voters=[1], learners=[2]),
        None,
    ),
    # Joint consensus on request.
    (
        ConfChangeV2(
            changes=[ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 2)],
            transition=CCTr.ConfChangeTransitionJointExplicit,
        ),
        ConfState(voters=[1], voters_outgoing=[1], learners=[2]),
        ConfState(voters=[1], learners=[2]),
    ),
    # Ditto, implicit transition.
    (
        ConfChangeV2(
            changes=[ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 2)],
            transition=CCTr.ConfChangeTransitionJointImplicit,
        ),
        ConfState(voters=[1], voters_outgoing=[1], learners=[2], auto_leave=True),
        ConfState(voters=[1], learners=[2]),
    ),
    # Add a node and demote n1: needs a joint config and LearnersNext.
    (
        ConfChangeV2(
            changes=[
                ConfChangeSingle(CCT.ConfChangeAddNode, 2),
                ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 1),
                ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 3),
            ]
        ),
        ConfState(
            voters=[2], voters_outgoing=[1], learners=[3], learners_next=[1], auto_leave=True
        ),
        ConfState(voters=[2], learners=[1, 3]),
    ),
    # Ditto explicit.
    (
        ConfChangeV2(
            changes=[
                ConfChangeSingle(CCT.ConfChangeAddNode, 2),
                ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 1),
                ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 3),
            ],
            transition=CCTr.ConfChangeTransitionJointExplicit,
        ),
        ConfState(voters=[2], voters_outgoing=[1], learners=[3], learners_next=[1]),
        ConfState(voters=[2], learners=[1, 3]),
    ),
    # Ditto implicit.
    (
        ConfChangeV2(
            changes=[
                ConfChangeSingle(CCT.ConfChangeAddNode, 2),
                ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 1),
                ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 3),
            ],
            transition=CCTr.ConfChangeTransitionJointImplicit,
        ),
        ConfState(
            voters=[2], voters_outgoing=[1], learners=[3], learners_next=[1], auto_leave=True
        ),
        ConfState(voters=[2], learners=[1, 3]),
    ),
]


@pytest.mark.parametrize(("cc", "exp", "exp2"), _PROPOSE_AND_CONF_CHANGE_CASES)
def test_raw_node_propose_and_conf_change(
    cc: ConfChange | ConfChangeV2, exp: ConfState, exp2: ConfState | None
) -> None:
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    rn.campaign()
    proposed = False
    ccdata = b""
    cs: ConfState | None = None
    # Propose the conf change, run until it applies, keep the resulting ConfState.
    while cs is None:
        rd = rn.ready()
        s.append(rd.entries)
        for ent in rd.committed_entries:
            c = decode_cc(ent)
            if c is not None:
                cs = rn.apply_conf_change(c)
        rn.advance(rd)
        # Once leader, propose a command and the conf change.
        if not proposed and rd.soft_state is not None and rd.soft_state.lead == rn.raft.id:
            rn.propose(b"somedata")
            v1 = cc.as_v1()
            if v1 is not None:
                ccdata = cc_data(v1)
                rn.propose_conf_change(v1)
            else:
                v2 = cc.as_v2()
                ccdata = cc_data(v2)
                rn.propose_conf_change(v2)
            proposed = True

    # The last stored entry is exactly the conf change, down to the bits (storage does
    # not yet show entries only the next Ready will hand out).
    last_index = s.last_index()
    entries = s.entries(last_index - 1, last_index + 1, NO_LIMIT)
    assert len(entries) == 2
    assert entries[0].data == b"somedata"
    typ = EntryType.EntryConfChange if cc.as_v1() is not None else EntryType.EntryConfChangeV2
    assert entries[1].type == typ
    assert entries[1].data == ccdata

    assert cs == exp

    auto_leave, use_joint = cc.as_v2().enter_joint()
    # An auto-leaving joint change has appended the (not yet stored) leave entry.
    maybe_plus_one = 1 if use_joint and auto_leave else 0
    assert rn.raft.pending_conf_index == last_index + maybe_plus_one

    # Move along. A simple change is done; a joint one is left automatically or by a
    # manual proposal of the leave-joint change.
    rd = rn.ready()
    context = b""
    if not exp.auto_leave:
        assert rd.entries == []
        rn.advance(rd)
        if exp2 is None:
            return
        context = b"manual"
        rn.propose_conf_change(ConfChangeV2(context=context))
        rd = rn.ready()

    # The right conf change comes out.
    assert len(rd.entries) == 1
    assert rd.entries[0].type == EntryType.EntryConfChangeV2
    leave = decode_conf_change_v2(rd.entries[0].data)
    assert leave == ConfChangeV2(context=context)
    # Pretend it applied (it cannot commit: the joint quorum needs the outgoing half).
    cs = rn.apply_conf_change(leave)
    assert cs == exp2
    rn.advance(rd)


# --- TestRawNodeJointAutoLeave --------------------------------------------------------


def test_raw_node_joint_auto_leave() -> None:
    test_cc = ConfChangeV2(
        changes=[ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 2)],
        transition=CCTr.ConfChangeTransitionJointImplicit,
    )
    exp_cs = ConfState(voters=[1], voters_outgoing=[1], learners=[2], auto_leave=True)
    exp2_cs = ConfState(voters=[1], learners=[2], auto_leave=False)

    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    rn.campaign()
    proposed = False
    ccdata = b""
    cs: ConfState | None = None
    while cs is None:
        rd = rn.ready()
        s.append(rd.entries)
        for ent in rd.committed_entries:
            if ent.type == EntryType.EntryConfChangeV2:
                c = decode_conf_change_v2(ent.data)
                # Force the leader to step down before applying.
                rn.step(Message(type=MT.MsgHeartbeatResp, from_=1, term=rn.raft.term + 1))
                cs = rn.apply_conf_change(c)
        rn.advance(rd)
        if not proposed and rd.soft_state is not None and rd.soft_state.lead == rn.raft.id:
            rn.propose(b"somedata")
            ccdata = cc_data(test_cc)
            rn.propose_conf_change(test_cc)
            proposed = True

    last_index = s.last_index()
    entries = s.entries(last_index - 1, last_index + 1, NO_LIMIT)
    assert len(entries) == 2
    assert entries[0].data == b"somedata"
    assert entries[1].type == EntryType.EntryConfChangeV2
    assert entries[1].data == ccdata
    assert cs == exp_cs
    assert rn.raft.pending_conf_index == 0

    # A follower does not leave the joint config.
    rd = rn.ready_without_accept()
    assert rd.entries == []

    # Leader again: it leaves automatically once the apply index moves.
    rn.campaign()
    for _ in range(3):
        rd = rn.ready()
        s.append(rd.entries)
        rn.advance(rd)
    rd = rn.ready()
    s.append(rd.entries)
    assert len(rd.entries) == 1
    assert rd.entries[0].type == EntryType.EntryConfChangeV2
    leave = decode_conf_change_v2(rd.entries[0].data)
    assert leave == ConfChangeV2()
    cs = rn.apply_conf_change(leave)
    assert cs == exp2_cs


# --- TestRawNodeProposeAddDuplicateNode ----------------------------------------------


def test_raw_node_propose_add_duplicate_node() -> None:
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    rd = rn.ready()
    s.append(rd.entries)
    rn.advance(rd)
    campaign_until_leader(rn, s)

    def propose_conf_change_and_apply(cc: ConfChange) -> None:
        rn.propose_conf_change(cc)
        rd = rn.ready()
        s.append(rd.entries)
        for e in rd.committed_entries:
            if e.type == EntryType.EntryConfChange:
                rn.apply_conf_change(decode_conf_change(e.data))
        rn.advance(rd)

    cc1 = ConfChange(type=CCT.ConfChangeAddNode, node_id=1)
    propose_conf_change_and_apply(cc1)
    # Adding the same node again...
    propose_conf_change_and_apply(cc1)
    # ...does not get in the way of adding a new one.
    cc2 = ConfChange(type=CCT.ConfChangeAddNode, node_id=2)
    propose_conf_change_and_apply(cc2)

    last_index = s.last_index()
    # The last three entries are cc1, cc1, cc2.
    entries = s.entries(last_index - 2, last_index + 1, NO_LIMIT)
    assert len(entries) == 3
    assert entries[0].data == cc_data(cc1)
    assert entries[2].data == cc_data(cc2)


# --- TestRawNodeReadIndex -------------------------------------------------------------


def test_raw_node_read_index() -> None:
    msgs: list[Message] = []

    def append_step(r: Raft, m: Message) -> None:
        msgs.append(m)

    wrs = [ReadState(index=1, request_ctx=b"somedata")]
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    rn.raft.read_states = list(wrs)
    # The read states can be read out...
    assert rn.has_ready()
    rd = rn.ready()
    assert rd.read_states == wrs
    s.append(rd.entries)
    rn.advance(rd)
    # ...and are gone afterwards.
    assert rn.raft.read_states == []

    wrequest_ctx = b"somedata2"
    campaign_until_leader(rn, s)
    # Once leader, a ReadIndex request reaches the role's step function.
    rn.raft.step_fn = append_step
    rn.read_index(wrequest_ctx)
    assert len(msgs) == 1
    assert msgs[0].type == MT.MsgReadIndex
    assert msgs[0].entries[0].data == wrequest_ctx


# --- TestRawNodeStart / Restart --------------------------------------------------------


def test_raw_node_start() -> None:
    entries = [Entry(term=1, index=2), Entry(term=1, index=3, data=b"foo")]
    storage = MemoryStorage()
    storage.ents[0].index = 1

    # Bootstrap by hand (what etcd recommends over Bootstrap): the log starts at index
    # 2 and a snapshot at index 1 holds the configuration, so followers cannot reach
    # it from position 1 and must pick up the ConfState.
    fi = storage.first_index()
    assert fi >= 2
    with pytest.raises(RaftError):
        storage.entries(fi, fi, NO_LIMIT)
    li = storage.last_index()
    with pytest.raises(RaftError):
        storage.entries(li, li, NO_LIMIT)
    hs, ics = storage.initial_state()
    assert is_empty_hard_state(hs)
    assert ics.voters == []
    storage.apply_snapshot(
        Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=[1]), index=1, term=0))
    )

    rn = RawNode(new_test_config(1, 10, 1, storage))
    assert not rn.has_ready()

    rn.campaign()
    rd = rn.ready()
    storage.append(rd.entries)
    rn.advance(rd)
    rn.propose(b"foo")
    assert rn.has_ready()

    rd = rn.ready()
    assert rd.entries == entries
    storage.append(rd.entries)
    rn.advance(rd)

    assert rn.has_ready()
    rd = rn.ready()
    assert rd.entries == []
    assert not rd.must_sync
    rn.advance(rd)

    rd.soft_state = None
    assert rd == Ready(
        hard_state=HardState(term=1, vote=1, commit=3),
        committed_entries=entries,
        must_sync=False,
    )
    assert not rn.has_ready()


def test_raw_node_restart() -> None:
    entries = [Entry(term=1, index=1), Entry(term=1, index=2, data=b"foo")]
    st = HardState(term=1, commit=1)
    storage = new_test_memory_storage(peers=(1,))
    storage.set_hard_state(st)
    storage.append(entries)
    rn = RawNode(new_test_config(1, 10, 1, storage))
    rd = rn.ready()
    # Committed up to the stored commit index; no hard state change.
    assert rd == Ready(committed_entries=entries[: st.commit], must_sync=False)
    rn.advance(rd)
    assert not rn.has_ready()


def test_raw_node_restart_from_snapshot() -> None:
    snap = Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2]), index=2, term=1))
    entries = [Entry(term=1, index=3, data=b"foo")]
    st = HardState(term=1, commit=3)
    s = MemoryStorage()
    s.set_hard_state(st)
    s.apply_snapshot(snap)
    s.append(entries)
    rn = RawNode(new_test_config(1, 10, 1, s))
    rd = rn.ready()
    assert rd == Ready(committed_entries=entries, must_sync=False)
    rn.advance(rd)
    assert not rn.has_ready()


# --- TestRawNodeStatus ----------------------------------------------------------------


def test_raw_node_status() -> None:
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    assert rn.status().progress == {}
    rn.campaign()
    rd = rn.ready()
    s.append(rd.entries)
    rn.advance(rd)
    status = rn.status()
    assert status.lead == 1
    assert status.raft_state == StateType.StateLeader
    live = rn.raft.trk.progress[1]
    assert status.progress[1] == live
    # A copy: changing it leaves the node alone.
    assert status.progress[1] is not live
    assert status.progress[1].inflights is not live.inflights
    exp_cfg = TrackerConfig(voters=JointConfig(MajorityConfig({1}), MajorityConfig()))
    assert status.config == exp_cfg
    assert status.config is not rn.raft.trk.config


def test_raw_node_status_json_and_basic_status() -> None:
    s = new_test_memory_storage(peers=(1, 2, 10))
    rn = new_test_raw_node(1, 10, 1, s)
    follower = rn.status()
    assert str(follower) == (
        '{"id":"1","term":0,"vote":"0","commit":0,"lead":"0","raftState":"StateFollower",'
        '"applied":0,"progress":{},"leadtransferee":"0"}'
    )
    rn.campaign()
    rd = rn.ready()
    s.append(rd.entries)
    rn.advance(rd)
    # Votes from 2 and 10 (hex "a") make it leader.
    rn.step(Message(type=MT.MsgVoteResp, from_=2, to=1, term=1))
    rn.step(Message(type=MT.MsgVoteResp, from_=10, to=1, term=1))
    st = rn.status()
    assert st.raft_state == StateType.StateLeader
    assert st.id == 1 and st.term == 1 and st.vote == 1 and st.commit == 0
    js = st.to_json()
    assert js == str(st)
    assert js == (
        '{"id":"1","term":1,"vote":"1","commit":0,"lead":"1","raftState":"StateLeader",'
        '"applied":0,"progress":{"1":{"match":0,"next":1,"state":"StateReplicate"},'
        '"2":{"match":0,"next":1,"state":"StateProbe"},'
        '"a":{"match":0,"next":1,"state":"StateProbe"}},"leadtransferee":"0"}'
    )
    assert json.loads(js)["progress"]["a"]["state"] == "StateProbe"
    bs = rn.basic_status()
    assert (bs.id, bs.term, bs.vote, bs.commit, bs.lead, bs.raft_state, bs.applied) == (
        1,
        1,
        1,
        0,
        1,
        StateType.StateLeader,
        0,
    )
    assert bs.soft_state == SoftState(1, StateType.StateLeader)
    assert bs.lead_transferee == 0


def test_raw_node_with_progress() -> None:
    s = new_test_memory_storage(peers=(1, 2), learners=(3,))
    rn = new_test_raw_node(1, 10, 1, s)
    seen: list[tuple[int, ProgressType, Progress]] = []
    rn.with_progress(lambda i, t, pr: seen.append((i, t, pr)))
    assert [(i, t) for i, t, _ in seen] == [
        (1, ProgressType.ProgressTypePeer),
        (2, ProgressType.ProgressTypePeer),
        (3, ProgressType.ProgressTypeLearner),
    ]
    for i, _, pr in seen:
        live = rn.raft.trk.progress[i]
        assert pr is not live
        assert (pr.match, pr.next, pr.state, pr.is_learner) == (
            live.match,
            live.next,
            live.state,
            live.is_learner,
        )


# --- TestRawNodeCommitPaginationAfterRestart ----------------------------------------


def test_raw_node_commit_pagination_after_restart() -> None:
    s = IgnoreSizeHintMemStorage()
    s.snap.metadata.conf_state.voters = [1]
    s.hard_state = HardState(term=1, vote=1, commit=10)
    ents = [Entry(term=1, index=i + 1, type=EntryType.EntryNormal, data=b"a") for i in range(10)]
    size = sum(entry_size(e) for e in ents)
    s.ents = [Entry(), *ents]

    cfg = new_test_config(1, 10, 1, s)
    # A message size limit that suggests leaving out the last committed entry; the
    # storage ignores it and returns it anyway (how commit index 10 came about).
    cfg.max_size_per_msg = size - entry_size(ents[-1]) - 1
    s.ents.append(Entry(term=1, index=11, type=EntryType.EntryNormal, data=b"boom"))
    rn = RawNode(cfg)

    highest_applied = 0
    while highest_applied != 11:
        rd = rn.ready()
        n = len(rd.committed_entries)
        assert n != 0, f"stopped applying entries at index {highest_applied}"
        nxt = rd.committed_entries[0].index
        assert highest_applied == 0 or highest_applied + 1 == nxt, (
            f"attempting to apply index {nxt} after index {highest_applied}, leaving a gap"
        )
        highest_applied = rd.committed_entries[-1].index
        rn.advance(rd)
        # Illegal (2 is not the leader), but it gets the commit index across.
        rn.step(Message(type=MT.MsgHeartbeat, to=1, from_=2, term=1, commit=11))


# --- TestRawNodeBoundedLogGrowthWithPartition ----------------------------------------


def test_raw_node_bounded_log_growth_with_partition() -> None:
    max_entries = 16
    data = b"testdata"
    max_entry_size = max_entries * payload_size(Entry(data=data))

    s = new_test_memory_storage(peers=(1,))
    cfg = new_test_config(1, 10, 1, s)
    cfg.max_uncommitted_entries_size = max_entry_size
    rn = RawNode(cfg)

    # Become leader and apply the empty entry.
    rn.campaign()
    while True:
        rd = rn.ready()
        s.append(rd.entries)
        rn.advance(rd)
        if rd.committed_entries:
            break

    # Partitioned: nothing commits, and proposals must not grow the log unboundedly.
    for _ in range(1024):
        with contextlib.suppress(RaftError):
            rn.propose(data)
    assert rn.raft.uncommitted_size == max_entry_size

    # Recover: the uncommitted tail disappears as entries commit.
    rd = rn.ready()
    assert len(rd.entries) == max_entries
    s.append(rd.entries)
    rn.advance(rd)
    # Appended, not yet applied.
    assert rn.raft.uncommitted_size == max_entry_size

    rd = rn.ready()
    assert rd.entries == []
    assert len(rd.committed_entries) == max_entries
    rn.advance(rd)
    assert rn.raft.uncommitted_size == 0


# --- TestRawNodeConsumeReady ---------------------------------------------------------


def test_raw_node_consume_ready() -> None:
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 3, 1, s)
    m1 = Message(context=b"foo")
    m2 = Message(context=b"bar")

    # Visible through ready_without_accept, which leaves it in place...
    rn.raft.msgs.append(m1)
    rd = rn.ready_without_accept()
    assert rd.messages == [m1]
    assert rn.raft.msgs == [m1]

    # ...while ready() moves it into the Ready.
    rd = rn.ready()
    assert rn.raft.msgs == []
    assert rd.messages == [m1]
    assert rd.messages[0] is m1  # not copied

    # advance() keeps messages queued after the Ready.
    rn.raft.msgs.append(m2)
    rn.advance(rd)
    assert rn.raft.msgs == [m2]


# --- Ready invariants ----------------------------------------------------------------


def test_ready_shares_entries_and_messages() -> None:
    s = new_test_memory_storage(peers=(1, 2))
    rn = new_test_raw_node(1, 10, 1, s)
    rn.campaign()
    rd = rn.ready()
    vote_reqs = [m for m in rd.messages if m.type == MT.MsgVote]
    assert len(vote_reqs) == 1
    rn.advance(rd)
    rn.step(Message(type=MT.MsgVoteResp, from_=2, to=1, term=1))
    rd = rn.ready()
    # The leader's empty entry goes out in the MsgApp as the very object in the log.
    app = next(m for m in rd.messages if m.type == MT.MsgApp)
    assert app.entries[0] is rd.entries[0]


def test_two_readys_without_advance_panic() -> None:
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    rn.campaign()
    rn.ready()  # holds the self-vote to step on advance
    with pytest.raises(RaftPanic):
        rn.ready()


def test_must_sync() -> None:
    hs = HardState(term=1, vote=1, commit=1)
    assert not must_sync(HardState(term=1, vote=1, commit=5), hs, 0)
    assert must_sync(HardState(term=2, vote=1, commit=1), hs, 0)
    assert must_sync(HardState(term=1, vote=2, commit=1), hs, 0)
    assert must_sync(HardState(term=1, vote=1, commit=1), hs, 1)


def test_is_empty_helpers() -> None:
    assert is_empty_hard_state(None)
    assert is_empty_hard_state(HardState())
    assert not is_empty_hard_state(HardState(commit=1))
    assert is_empty_snap(None)
    assert is_empty_snap(Snapshot())
    assert not is_empty_snap(Snapshot(metadata=SnapshotMetadata(index=1)))


def test_tick_and_tick_quiesced() -> None:
    s = new_test_memory_storage(peers=(1,))
    rn = new_test_raw_node(1, 10, 1, s)
    rn.tick_quiesced()
    rn.tick_quiesced()
    assert rn.raft.election_elapsed == 2
    assert rn.raft.state == StateType.StateFollower
    # Enough real ticks start an election in a single-node cluster.
    for _ in range(2 * 10):
        rn.tick()
    assert rn.raft.state in (StateType.StateCandidate, StateType.StateLeader)


def test_reports_and_transfer_do_not_raise() -> None:
    s = new_test_memory_storage(peers=(1, 2))
    rn = new_test_raw_node(1, 10, 1, s)
    # On a follower these are ignored (etcd drops the errors too).
    rn.report_unreachable(2)
    rn.report_snapshot(2, SnapshotStatus.SnapshotFailure)
    rn.report_snapshot(2, SnapshotStatus.SnapshotFinish)
    rn.transfer_leader(2)
    rn.read_index(b"ctx")
    rn.forget_leader()
    assert rn.raft.lead == 0


def test_report_unreachable_moves_replicating_follower_to_probe() -> None:
    s = new_test_memory_storage(peers=(1, 2))
    rn = new_test_raw_node(1, 10, 1, s)
    rn.campaign()
    rd = rn.ready()
    rn.advance(rd)
    rn.step(Message(type=MT.MsgVoteResp, from_=2, to=1, term=1))
    rd = rn.ready()
    s.append(rd.entries)
    rn.advance(rd)
    rn.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=1, index=rn.raft.raft_log.last_index()))
    states = [rn.raft.trk.progress[2].state]
    rn.report_unreachable(2)
    states.append(rn.raft.trk.progress[2].state)
    assert states == [ProgressStateType.StateReplicate, ProgressStateType.StateProbe]


# --- Bootstrap (etcd's TestNodeStart, through a RawNode) ------------------------------


def test_raw_node_bootstrap() -> None:
    cc = ConfChange(type=CCT.ConfChangeAddNode, node_id=1)
    ccdata = cc_data(cc)
    # etcd's encoding of the bootstrap entry: type and node id always present.
    assert ccdata == b"\x10\x00\x18\x01"
    bootstrap_entry = Entry(type=EntryType.EntryConfChange, term=1, index=1, data=ccdata)
    wants = [
        Ready(
            hard_state=HardState(term=1, commit=1, vote=0),
            entries=[bootstrap_entry],
            committed_entries=[bootstrap_entry],
            must_sync=True,
        ),
        Ready(
            hard_state=HardState(term=2, commit=2, vote=1),
            entries=[Entry(term=2, index=3, data=b"foo")],
            committed_entries=[Entry(term=2, index=2)],
            must_sync=True,
        ),
        Ready(
            hard_state=HardState(term=2, commit=3, vote=1),
            committed_entries=[Entry(term=2, index=3, data=b"foo")],
            must_sync=False,
        ),
    ]
    storage = MemoryStorage()
    rn = RawNode(new_test_config(1, 10, 1, storage))
    rn.bootstrap([Peer(id=1)])
    # Applied right away, so the node can campaign at once.
    assert rn.raft.trk.config.voters.incoming == {1}

    rd = rn.ready()
    assert rd == wants[0]
    storage.append(rd.entries)
    for e in rd.committed_entries:
        c = decode_cc(e)
        assert c is not None
        rn.apply_conf_change(c)  # applying it again is harmless
    rn.advance(rd)

    rn.campaign()
    # Persist the vote; then append the empty entry.
    for _ in range(2):
        rd = rn.ready()
        storage.append(rd.entries)
        rn.advance(rd)

    rn.propose(b"foo")
    for want in wants[1:]:
        rd = rn.ready()
        assert rd == want
        storage.append(rd.entries)
        rn.advance(rd)
    assert not rn.has_ready()


def test_raw_node_bootstrap_with_context_and_several_peers() -> None:
    storage = MemoryStorage()
    rn = RawNode(new_test_config(1, 10, 1, storage))
    rn.bootstrap([Peer(id=1, context=b"ctx"), Peer(id=2), Peer(id=3)])
    rd = rn.ready()
    assert [(e.term, e.index, e.type) for e in rd.entries] == [
        (1, i, EntryType.EntryConfChange) for i in (1, 2, 3)
    ]
    assert rd.entries[0].data == b"\x10\x00\x18\x01\x22\x03ctx"
    assert decode_conf_change(rd.entries[0].data) == ConfChange(
        type=CCT.ConfChangeAddNode, node_id=1, context=b"ctx"
    )
    assert rd.committed_entries == rd.entries
    assert rd.hard_state == HardState(term=1, commit=3)
    assert rn.raft.trk.config.voters.incoming == {1, 2, 3}
    # Progress was created after the append: it knows the bootstrap entries exist.
    assert all(pr.next == 3 for pr in rn.raft.trk.progress.values())


def test_raw_node_bootstrap_errors() -> None:
    storage = MemoryStorage()
    rn = RawNode(new_test_config(1, 10, 1, storage))
    with pytest.raises(RaftError, match=r"^must provide at least one peer to Bootstrap$"):
        rn.bootstrap([])

    nonempty = new_test_memory_storage(peers=(1,))
    nonempty.append([Entry(term=1, index=1)])
    rn = RawNode(new_test_config(1, 10, 1, nonempty))
    with pytest.raises(RaftError, match=r"^can't bootstrap a nonempty Storage$"):
        rn.bootstrap([Peer(id=1)])


# --- Async storage writes (etcd's TestCommitPaginationWithAsyncStorageWrites) --------


def _handle_append(s: MemoryStorage, rn: RawNode, m: Message) -> None:
    assert m.type == MT.MsgStorageAppend
    assert m.to == LOCAL_APPEND_THREAD
    if m.term or m.vote or m.commit:
        s.set_hard_state(HardState(m.term, m.vote, m.commit))
    s.append(m.entries)
    for resp in m.responses:
        rn.step(resp)


def test_commit_pagination_with_async_storage_writes() -> None:
    s = new_test_memory_storage(peers=(1,))
    cfg = new_test_config(1, 10, 1, s)
    cfg.max_committed_size_per_ready = 2048
    cfg.async_storage_writes = True
    rn = RawNode(cfg)
    rn.campaign()

    # Persist the vote.
    rd = rn.ready()
    assert len(rd.messages) == 1
    _handle_append(s, rn, rd.messages[0])
    # Append the empty entry.
    rd = rn.ready()
    assert len(rd.messages) == 1
    _handle_append(s, rn, rd.messages[0])
    # Apply the empty entry.
    rd = rn.ready()
    assert len(rd.messages) == 2
    for m in rd.messages:
        if m.type == MT.MsgStorageAppend:
            _handle_append(s, rn, m)
        else:
            assert m.type == MT.MsgStorageApply
            assert len(m.entries) == 1
            assert len(m.responses) == 1
            rn.step(m.responses[0])

    blob = b"a" * 1024
    # First entry: append.
    rn.propose(blob)
    rd = rn.ready()
    assert len(rd.messages) == 1
    assert len(rd.messages[0].entries) == 1
    _handle_append(s, rn, rd.messages[0])

    apply_resps: list[Message] = []

    def append_and_hold_apply() -> None:
        rd = rn.ready()
        assert len(rd.messages) == 2
        for m in rd.messages:
            if m.type == MT.MsgStorageAppend:
                _handle_append(s, rn, m)
            else:
                assert m.type == MT.MsgStorageApply
                assert len(m.entries) == 1
                assert len(m.responses) == 1
                apply_resps.append(m.responses[0])

    # Second entry: append, first entry not applied yet.
    rn.propose(blob)
    append_and_hold_apply()
    # Third entry: append, second entry not applied yet.
    rn.propose(blob)
    append_and_hold_apply()

    # The third entry is not handed out for application until the first one's
    # application is acknowledged.
    while rn.has_ready():
        rd = rn.ready()
        assert all(m.type != MT.MsgStorageApply for m in rd.messages)
        for m in rd.messages:
            if m.type == MT.MsgStorageAppend:
                _handle_append(s, rn, m)

    rn.step(apply_resps.pop(0))
    rd = rn.ready()
    assert len(rd.messages) == 1
    m = rd.messages[0]
    assert m.type == MT.MsgStorageApply
    assert len(m.entries) == 1
    apply_resps.append(m.responses[0])
    for resp in apply_resps:
        rn.step(resp)


def test_async_storage_messages_shape() -> None:
    s = new_test_memory_storage(peers=(1,))
    cfg = new_test_config(1, 10, 1, s)
    cfg.async_storage_writes = True
    rn = RawNode(cfg)
    rn.campaign()
    rd = rn.ready()
    # The vote must be durable before the self-vote counts.
    (app,) = rd.messages
    assert app.type == MT.MsgStorageAppend
    assert (app.from_, app.to, app.term, app.vote, app.commit) == (1, LOCAL_APPEND_THREAD, 1, 1, 0)
    assert [(r.type, r.from_, r.to) for r in app.responses] == [(MT.MsgVoteResp, 1, 1)]
    for r in app.responses:
        rn.step(r)

    rd = rn.ready()
    assert rd.soft_state == SoftState(1, StateType.StateLeader)
    (app,) = rd.messages
    # No hard state change: no term/vote/commit on the message.
    assert (app.term, app.vote, app.commit) == (0, 0, 0)
    assert app.entries == [Entry(term=1, index=1)]
    assert app.entries is rd.entries
    resp_types = [(r.type, r.from_, r.to, r.term, r.log_term, r.index) for r in app.responses]
    assert resp_types == [
        (MT.MsgAppResp, 1, 1, 1, 0, 1),
        (MT.MsgStorageAppendResp, LOCAL_APPEND_THREAD, 1, 1, 1, 1),
    ]
    # advance() is for sync mode only.
    with pytest.raises(RaftPanic):
        rn.advance(rd)


def test_async_storage_apply_message_shape() -> None:
    s = new_test_memory_storage(peers=(1,))
    cfg = new_test_config(1, 10, 1, s)
    cfg.async_storage_writes = True
    rn = RawNode(cfg)
    rn.campaign()
    while True:
        rd = rn.ready()
        apply = [m for m in rd.messages if m.type == MT.MsgStorageApply]
        for m in rd.messages:
            if m.type == MT.MsgStorageAppend:
                _handle_append(s, rn, m)
        if apply:
            break
    (m,) = apply
    assert (m.from_, m.to, m.term) == (1, LOCAL_APPLY_THREAD, 0)
    assert m.entries is rd.committed_entries
    (resp,) = m.responses
    assert (resp.type, resp.from_, resp.to, resp.term) == (
        MT.MsgStorageApplyResp,
        LOCAL_APPLY_THREAD,
        1,
        0,
    )
    assert resp.entries is rd.committed_entries
    # The apply message follows the append message when both are present.
    assert rd.messages[-1] is m
