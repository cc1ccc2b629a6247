"""First tests of raftcore.raft: Raft objects stepping messages between each other.

A tiny in-memory network (after etcd's raft_test.go ``network``) delivers every queued
message in FIFO order. As there, ``msgs_after_append`` is treated as persisted at once:
responses to ourselves are stepped, the rest join the outgoing queue. The later port of
etcd's raft_test.go covers the long tail; these check elections, replication, commit,
conf changes, reads, transfers and the exact messages and log lines on the way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, NoReturn

import pytest

from raftcore.config import Config, ReadOnlyOption
from raftcore.errors import ConfigError, ProposalDroppedError, RaftPanic
from raftcore.raft import (
    CAMPAIGN_TRANSFER,
    Raft,
    StateType,
    step_candidate,
    step_follower,
    step_leader,
)
from raftcore.raftpb.codec import encode_conf_change
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
from raftcore.read_only import ReadOnly
from raftcore.storage import MemoryStorage
from raftcore.tracker import StateType as ProgressStateType
from raftcore.util import NO_LIMIT, NONE

MT = MessageType


class RecordingLogger:
    """Keeps every line as ``LEVEL text``, formatted the way the harness does."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _log(self, level: str, msg: str, args: tuple[object, ...]) -> None:
        self.lines.append(f"{level} {msg % args if args else msg}")

    def debug(self, msg: str, *args: object) -> None:
        self._log("DEBUG", msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._log("INFO", msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._log("WARN", msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._log("ERROR", msg, args)

    def panic(self, msg: str, *args: object) -> NoReturn:
        self._log("FATAL", msg, args)
        raise RaftPanic(msg % args if args else msg)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def new_storage(voters: Iterable[int] = (), learners: Iterable[int] = ()) -> MemoryStorage:
    s = MemoryStorage()
    s.snap.metadata.conf_state = ConfState(voters=list(voters), learners=list(learners))
    return s


def new_raft(
    id_: int,
    storage: MemoryStorage,
    logger: RecordingLogger | None = None,
    *,
    election: int = 10,
    heartbeat: int = 1,
    **kw: Any,
) -> Raft:
    cfg = Config(
        id=id_,
        election_tick=election,
        heartbeat_tick=heartbeat,
        storage=storage,
        max_size_per_msg=NO_LIMIT,
        max_inflight_msgs=256,
        logger=logger if logger is not None else RecordingLogger(),
    )
    for k, v in kw.items():
        setattr(cfg, k, v)
    return Raft(cfg)


def state_of(r: Raft) -> StateType:
    """r.state, read through a call so that mypy does not narrow it across steps."""
    return r.state


def advance_messages_after_append(r: Raft) -> None:
    """Treat the unstable state as persisted: release the held-back responses."""
    while r.msgs_after_append:
        msgs, r.msgs_after_append = r.msgs_after_append, []
        for m in msgs:
            if m.to == r.id:
                r.step(m)
            else:
                r.msgs.append(m)


def read_messages(r: Raft) -> list[Message]:
    advance_messages_after_append(r)
    msgs, r.msgs = r.msgs, []
    return msgs


def persist_and_apply(r: Raft, s: MemoryStorage) -> list[Entry]:
    """etcd's nextEnts: persist the unstable log, then apply all committed entries."""
    s.append(r.raft_log.next_unstable_ents())
    r.raft_log.stable_to(r.raft_log.last_entry_id())
    advance_messages_after_append(r)
    ents = r.raft_log.next_committed_ents(True)
    r.raft_log.applied_to(r.raft_log.committed, 0)
    return ents


class Network:
    """Delivers messages between Rafts in FIFO order; ``drop`` filters deliveries."""

    def __init__(self, n: int, **kw: Any) -> None:
        ids = list(range(1, n + 1))
        self.logger = RecordingLogger()
        self.storage = {i: new_storage(ids) for i in ids}
        self.peers = {i: new_raft(i, self.storage[i], self.logger, **kw) for i in ids}
        self.dropped: set[tuple[int, int]] = set()
        self.delivered: list[Message] = []

    def send(self, *msgs: Message) -> None:
        queue = list(msgs)
        while queue:
            m = queue.pop(0)
            if (m.from_, m.to) in self.dropped:
                continue
            p = self.peers[m.to]
            self.delivered.append(m)
            with contextlib.suppress(ProposalDroppedError):
                p.step(m)
            queue.extend(read_messages(p))

    def campaign(self, id_: int) -> None:
        self.send(Message(type=MT.MsgHup, from_=id_, to=id_))

    def propose(self, id_: int, data: bytes) -> None:
        self.send(Message(type=MT.MsgProp, from_=id_, to=id_, entries=[Entry(data=data)]))

    def isolate(self, id_: int) -> None:
        for other in self.peers:
            if other != id_:
                self.dropped.add((id_, other))
                self.dropped.add((other, id_))

    def heal(self) -> None:
        self.dropped.clear()


# --------------------------------------------------------------------------- creation


def test_new_raft_starts_as_follower_and_logs() -> None:
    log = RecordingLogger()
    r = new_raft(1, new_storage([1, 2, 3]), log)
    assert state_of(r) == StateType.StateFollower
    assert r.term == 0 and r.vote == NONE and r.lead == NONE
    assert r.step_fn is step_follower
    assert r.tick == r.tick_election
    assert 10 <= r.randomized_election_timeout < 20
    assert log.take() == [
        "INFO 1 switched to configuration voters=(1 2 3)",
        "INFO 1 became follower at term 0",
        "INFO newRaft 1 [peers: [1,2,3], term: 0, commit: 0, applied: 0, lastindex: 0, lastterm: 0]",
    ]


def test_new_raft_restores_hard_state_and_applied() -> None:
    s = new_storage([1, 2])
    s.append([Entry(term=1, index=1), Entry(term=2, index=2), Entry(term=2, index=3)])
    s.set_hard_state(HardState(term=2, vote=2, commit=2))
    log = RecordingLogger()
    r = Raft(
        Config(
            id=0xA,
            election_tick=10,
            heartbeat_tick=1,
            storage=s,
            applied=1,
            max_inflight_msgs=256,
            logger=log,
        )
    )
    assert (r.term, r.vote, r.raft_log.committed, r.raft_log.applied) == (2, 2, 2, 1)
    assert log.lines[-1] == (
        "INFO newRaft a [peers: [1,2], term: 2, commit: 2, applied: 1, lastindex: 3, lastterm: 2]"
    )


def test_new_raft_rejects_invalid_config() -> None:
    with pytest.raises(ConfigError, match="cannot use none as id"):
        new_raft(0, new_storage([1]))


def test_new_raft_panics_on_out_of_range_commit() -> None:
    s = new_storage([1])
    s.set_hard_state(HardState(term=1, commit=5))
    with pytest.raises(RaftPanic, match=r"1 state.commit 5 is out of range \[0, 0\]"):
        new_raft(1, s)


def test_state_type_prints_etcd_names() -> None:
    assert str(StateType.StateLeader) == "StateLeader"
    assert f"{StateType.StatePreCandidate}" == "StatePreCandidate"
    assert "%s" % StateType.StateFollower == "StateFollower"  # noqa: UP031 - as loggers format


# --------------------------------------------------------------------------- elections


def test_campaign_sends_votes_in_id_order_with_etcd_fields() -> None:
    log = RecordingLogger()
    r = new_raft(2, new_storage([3, 1, 2]), log)
    log.take()
    r.step(Message(type=MT.MsgHup))
    assert state_of(r) == StateType.StateCandidate and r.term == 1 and r.vote == 2
    assert r.step_fn is step_candidate
    # The self-vote waits for persistence; the requests go out at once.
    assert r.msgs_after_append == [Message(type=MT.MsgVoteResp, to=2, from_=2, term=1)]
    assert r.msgs == [
        Message(type=MT.MsgVote, to=1, from_=2, term=1, index=0, log_term=0),
        Message(type=MT.MsgVote, to=3, from_=2, term=1, index=0, log_term=0),
    ]
    assert log.take() == [
        "INFO 2 is starting a new election at term 0",
        "INFO 2 became candidate at term 1",
        "INFO 2 [logterm: 0, index: 0] sent MsgVote request to 1 at term 1",
        "INFO 2 [logterm: 0, index: 0] sent MsgVote request to 3 at term 1",
    ]
    advance_messages_after_append(r)
    assert log.take() == [
        "INFO 2 received MsgVoteResp from 2 at term 1",
        "INFO 2 has received 1 MsgVoteResp votes and 0 vote rejections",
    ]
    r.step(Message(type=MT.MsgVoteResp, from_=3, to=2, term=1))
    assert state_of(r) == StateType.StateLeader and r.lead == 2
    assert r.step_fn is step_leader
    assert r.tick == r.tick_heartbeat
    assert log.take() == [
        "INFO 2 received MsgVoteResp from 3 at term 1",
        "INFO 2 has received 2 MsgVoteResp votes and 0 vote rejections",
        "INFO 2 became leader at term 1",
    ]
    # The empty entry of the new term goes to both followers, probing from index 1.
    assert [(m.to, m.index, m.log_term, [e.index for e in m.entries]) for m in r.msgs[2:]] == [
        (1, 0, 0, [1]),
        (3, 0, 0, [1]),
    ]


def test_three_node_election_and_commit() -> None:
    nt = Network(3)
    nt.campaign(1)
    assert [p.state for p in nt.peers.values()] == [
        StateType.StateLeader,
        StateType.StateFollower,
        StateType.StateFollower,
    ]
    for p in nt.peers.values():
        assert p.term == 1 and p.lead == 1
        assert p.raft_log.committed == 1

    nt.propose(1, b"somedata")
    for i, p in nt.peers.items():
        assert p.raft_log.committed == 2, i
        ents = persist_and_apply(p, nt.storage[i])
        assert [(e.term, e.index, e.data) for e in ents] == [(1, 1, b""), (1, 2, b"somedata")]
    leader = nt.peers[1]
    assert leader.trk.progress[2].state == ProgressStateType.StateReplicate
    assert leader.trk.progress[2].match == 2


def test_follower_forwards_proposal_to_leader() -> None:
    nt = Network(3)
    nt.campaign(1)
    nt.delivered.clear()
    nt.propose(2, b"fwd")
    fwd = nt.delivered[1]
    assert (fwd.type, fwd.from_, fwd.to, fwd.term) == (MT.MsgProp, 2, 1, 0)
    assert all(p.raft_log.committed == 2 for p in nt.peers.values())


def test_proposal_dropped_without_leader() -> None:
    log = RecordingLogger()
    r = new_raft(1, new_storage([1, 2, 3]), log)
    log.take()
    with pytest.raises(ProposalDroppedError):
        r.step(Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"x")]))
    assert log.take() == ["INFO 1 no leader at term 0; dropping proposal"]
    r.become_candidate()
    with pytest.raises(ProposalDroppedError):
        r.step(Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"x")]))


def test_proposal_forwarding_can_be_disabled() -> None:
    log = RecordingLogger()
    r = new_raft(1, new_storage([1, 2]), log, disable_proposal_forwarding=True)
    r.become_follower(1, 2)
    log.take()
    with pytest.raises(ProposalDroppedError):
        r.step(Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"x")]))
    assert log.take() == ["INFO 1 not forwarding to leader 2 at term 1; dropping proposal"]


def test_single_node_commits_alone() -> None:
    s = new_storage([1])
    r = new_raft(1, s)
    r.step(Message(type=MT.MsgHup))
    # The self-vote arrives once "persisted" and wins.
    advance_messages_after_append(r)
    assert state_of(r) == StateType.StateLeader
    r.step(Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"a")]))
    advance_messages_after_append(r)
    assert r.raft_log.committed == 2
    assert r.msgs == []


def test_vote_rejected_for_stale_log() -> None:
    log = RecordingLogger()
    s = new_storage([1, 2])
    s.append([Entry(term=2, index=1)])
    r = new_raft(1, s, log)
    log.take()
    r.step(Message(type=MT.MsgVote, from_=2, to=1, term=3, index=1, log_term=1))
    assert r.term == 3 and r.vote == NONE
    assert r.msgs_after_append == [Message(type=MT.MsgVoteResp, from_=1, to=2, term=3, reject=True)]
    assert log.take() == [
        "INFO 1 [term: 0] received a MsgVote message with higher term from 2 [term: 3]",
        "INFO 1 became follower at term 3",
        "INFO 1 [logterm: 2, index: 1, vote: 0] rejected MsgVote from 2 [logterm: 1, index: 1] at term 3",
    ]


def test_vote_granted_records_vote_and_resets_election_timer() -> None:
    log = RecordingLogger()
    r = new_raft(1, new_storage([1, 2]), log)
    r.election_elapsed = 5
    log.take()
    r.step(Message(type=MT.MsgVote, from_=2, to=1, term=1, index=0, log_term=0))
    assert (r.vote, r.election_elapsed) == (2, 0)
    assert r.msgs_after_append == [Message(type=MT.MsgVoteResp, from_=1, to=2, term=1)]
    assert log.lines[-1] == (
        "INFO 1 [logterm: 0, index: 0, vote: 0] cast MsgVote for 2 [logterm: 0, index: 0] at term 1"
    )
    # A second candidate of the same term is refused.
    r.step(Message(type=MT.MsgVote, from_=3, to=1, term=1, index=5, log_term=1))
    assert r.msgs_after_append[-1].reject


def test_prevote_election() -> None:
    nt = Network(3, pre_vote=True)
    nt.campaign(1)
    assert state_of(nt.peers[1]) == StateType.StateLeader
    assert nt.peers[1].term == 1
    types = [m.type for m in nt.delivered]
    # Pre-votes first, at the next term, without bumping anyone's term. The first
    # grant wins the pre-vote; the second arrives at a candidate and is ignored.
    assert types[:7] == [
        MT.MsgHup,
        MT.MsgPreVote,
        MT.MsgPreVote,
        MT.MsgPreVoteResp,
        MT.MsgPreVoteResp,
        MT.MsgVote,
        MT.MsgVote,
    ]
    assert nt.delivered[1].term == 1
    assert any(line == "INFO 1 became pre-candidate at term 0" for line in nt.logger.lines)


def test_prevote_lost_returns_to_follower() -> None:
    log = RecordingLogger()
    r = new_raft(1, new_storage([1, 2, 3]), log, pre_vote=True)
    r.step(Message(type=MT.MsgHup))
    assert state_of(r) == StateType.StatePreCandidate and r.term == 0
    advance_messages_after_append(r)
    # Rejections carry the rejecter's term (0 here, as ours).
    r.step(Message(type=MT.MsgPreVoteResp, from_=2, to=1, term=0, reject=True))
    assert state_of(r) == StateType.StatePreCandidate
    r.step(Message(type=MT.MsgPreVoteResp, from_=3, to=1, term=0, reject=True))
    assert state_of(r) == StateType.StateFollower and r.term == 0
    assert log.lines[-3:] == [
        "INFO 1 received MsgPreVoteResp rejection from 3 at term 0",
        "INFO 1 has received 1 MsgPreVoteResp votes and 2 vote rejections",
        "INFO 1 became follower at term 0",
    ]
    # A rejection from a higher term makes us follow at that term at once.
    r.step(Message(type=MT.MsgHup))
    r.step(Message(type=MT.MsgPreVoteResp, from_=2, to=1, term=4, reject=True))
    assert state_of(r) == StateType.StateFollower and r.term == 4


def test_lower_term_prevote_is_rejected_explicitly() -> None:
    log = RecordingLogger()
    r = new_raft(1, new_storage([1, 2]), log)
    r.become_follower(5, NONE)
    log.take()
    r.step(Message(type=MT.MsgPreVote, from_=2, to=1, term=3, index=0, log_term=0))
    assert r.msgs_after_append == [
        Message(type=MT.MsgPreVoteResp, from_=1, to=2, term=5, reject=True)
    ]
    assert log.take() == [
        "INFO 1 [logterm: 0, index: 0, vote: 0] rejected MsgPreVote from 2 [logterm: 0, index: 0] at term 5"
    ]


def test_lower_term_append_answered_with_check_quorum() -> None:
    r = new_raft(1, new_storage([1, 2]), check_quorum=True)
    r.become_follower(5, NONE)
    r.step(Message(type=MT.MsgApp, from_=2, to=1, term=3))
    assert r.msgs_after_append == [Message(type=MT.MsgAppResp, from_=1, to=2, term=5)]
    log = RecordingLogger()
    r2 = new_raft(1, new_storage([1, 2]), log)
    r2.become_follower(5, NONE)
    log.take()
    r2.step(Message(type=MT.MsgApp, from_=2, to=1, term=3))
    assert r2.msgs_after_append == []
    assert log.take() == [
        "INFO 1 [term: 5] ignored a MsgApp message with lower term from 2 [term: 3]"
    ]


def test_vote_ignored_within_leader_lease() -> None:
    nt = Network(3, check_quorum=True)
    # Let the lease expire on 1 so it can win its election.
    for p in nt.peers.values():
        p.election_elapsed = p.election_timeout
    nt.campaign(1)
    assert state_of(nt.peers[1]) == StateType.StateLeader
    nt.logger.take()
    # 2 heard from the leader just now: a vote request from 3 is ignored.
    r2 = nt.peers[2]
    r2.step(Message(type=MT.MsgVote, from_=3, to=2, term=2, index=1, log_term=1))
    assert r2.term == 1
    assert nt.logger.take() == [
        "INFO 2 [logterm: 1, index: 1, vote: 1] ignored MsgVote from 3 [logterm: 1, index: 1] "
        "at term 1: lease is not expired (remaining ticks: 10)"
    ]
    # Unless it is part of a leadership transfer.
    r2.step(
        Message(
            type=MT.MsgVote, from_=3, to=2, term=2, index=1, log_term=1, context=CAMPAIGN_TRANSFER
        )
    )
    assert r2.term == 2 and r2.vote == 3


def test_check_quorum_leader_steps_down() -> None:
    nt = Network(3, check_quorum=True)
    for p in nt.peers.values():
        p.election_elapsed = p.election_timeout
    nt.campaign(1)
    leader = nt.peers[1]
    nt.logger.take()
    # Nobody answers for two election timeouts: the first check clears the activity
    # flags set by the election, the second finds no active quorum.
    for _ in range(2 * leader.election_timeout):
        leader.tick()
        read_messages(leader)
    assert state_of(leader) == StateType.StateFollower
    assert "WARN 1 stepped down to follower since quorum is not active" in nt.logger.lines


def test_tick_election_campaigns_after_timeout() -> None:
    r = new_raft(1, new_storage([1, 2, 3]))
    r.randomized_election_timeout = 12
    for _ in range(11):
        r.tick()
    assert state_of(r) == StateType.StateFollower
    r.tick()
    assert state_of(r) == StateType.StateCandidate


def test_tick_heartbeat_broadcasts() -> None:
    nt = Network(3)
    nt.campaign(1)
    leader = nt.peers[1]
    leader.tick()
    msgs = read_messages(leader)
    assert [(m.type, m.to, m.commit) for m in msgs] == [
        (MT.MsgHeartbeat, 2, 1),
        (MT.MsgHeartbeat, 3, 1),
    ]


def test_learner_cannot_campaign() -> None:
    log = RecordingLogger()
    r = new_raft(2, new_storage([1], learners=[2]), log)
    assert r.is_learner
    log.take()
    r.step(Message(type=MT.MsgHup))
    assert state_of(r) == StateType.StateFollower
    assert log.take() == ["WARN 2 is unpromotable and can not campaign"]


# --------------------------------------------------------------------------- replication


def test_rejected_append_probes_back() -> None:
    nt = Network(3)
    nt.campaign(1)
    nt.isolate(3)
    for i in range(3):
        nt.propose(1, b"x%d" % i)
    nt.heal()
    nt.logger.take()
    nt.delivered.clear()
    nt.propose(1, b"y")
    assert all(p.raft_log.committed == 5 for p in nt.peers.values())
    assert nt.peers[3].raft_log.last_index() == 5
    lines = nt.logger.take()
    # 3 was in StateReplicate and its appends went missing: it rejects the next one
    # and the leader falls back to probing.
    assert "DEBUG 3 [logterm: 0, index: 4] rejected MsgApp [logterm: 1, index: 4] from 1" in lines
    assert (
        "DEBUG 1 received MsgAppResp(rejected, hint: (index 1, term 1)) from 3 for index 4" in lines
    )
    # The progress is printed before it falls back from StateReplicate to StateProbe.
    assert "DEBUG 1 decreased progress of 3 to [StateReplicate match=1 next=2 inflight=4]" in lines
    assert nt.peers[1].trk.progress[3].state == ProgressStateType.StateReplicate


def test_heartbeat_commit_capped_by_match() -> None:
    nt = Network(3)
    nt.campaign(1)
    nt.isolate(3)
    nt.propose(1, b"x")
    leader = nt.peers[1]
    leader.bcast_heartbeat()
    msgs = read_messages(leader)
    assert [(m.to, m.commit) for m in msgs] == [(2, 2), (3, 1)]


def test_snapshot_sent_when_log_compacted() -> None:
    nt = Network(3)
    nt.campaign(1)
    nt.isolate(3)
    for i in range(3):
        nt.propose(1, b"x%d" % i)
    leader = nt.peers[1]
    s1 = nt.storage[1]
    persist_and_apply(leader, s1)
    s1.create_snapshot(4, ConfState(voters=[1, 2, 3]), b"snap")
    s1.compact(4)
    nt.heal()
    leader.trk.progress[3].become_probe()
    leader.trk.progress[3].next = 2
    nt.logger.take()
    nt.delivered.clear()
    leader.send_append(3)
    nt.send(*read_messages(leader))
    snap = nt.delivered[0]
    assert snap.type == MT.MsgSnap and snap.snapshot is not None
    assert snap.snapshot.metadata.index == 4
    r3 = nt.peers[3]
    assert r3.raft_log.committed == 4
    lines = nt.logger.take()
    assert lines[0] == (
        "DEBUG 1 [firstindex: 5, commit: 4] sent snapshot[index: 4, term: 1] to 3 "
        "[StateProbe match=1 next=2]"
    )
    assert lines[1] == (
        "DEBUG 1 paused sending replication messages to 3 "
        "[StateSnapshot match=1 next=5 paused pendingSnap=4]"
    )
    assert "INFO 3 [commit: 4] restored snapshot [index: 4, term: 1]" in lines


def test_restore_ignores_stale_and_fast_forwards() -> None:
    log = RecordingLogger()
    s = new_storage([1, 2])
    s.append([Entry(term=1, index=1), Entry(term=1, index=2)])
    r = new_raft(1, s, log)
    snap = Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2]), index=2, term=1))
    # Matching entry: only the commit index moves.
    assert not r.restore(snap)
    assert r.raft_log.committed == 2
    # Now stale.
    assert not r.restore(snap)
    # Not a member: refused.
    other = Snapshot(metadata=SnapshotMetadata(conf_state=ConfState(voters=[2]), index=5, term=2))
    assert not r.restore(other)
    good = Snapshot(
        metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2, 3]), index=5, term=2)
    )
    assert r.restore(good)
    assert r.raft_log.last_index() == 5 and r.raft_log.committed == 5
    assert sorted(r.trk.progress) == [1, 2, 3]
    assert not r.promotable()  # a snapshot is pending application


# --------------------------------------------------------------------------- conf changes


def cc_entry(cc: ConfChange) -> Entry:
    return Entry(type=EntryType.EntryConfChange, data=encode_conf_change(cc))


def test_conf_change_add_node() -> None:
    nt = Network(3)
    nt.campaign(1)
    leader = nt.peers[1]
    cc = ConfChange(type=ConfChangeType.ConfChangeAddLearnerNode, node_id=4)
    nt.send(Message(type=MT.MsgProp, from_=1, to=1, entries=[cc_entry(cc)]))
    assert leader.pending_conf_index == 2
    # A second change is refused while the first is unapplied, and becomes an empty
    # normal entry.
    nt.logger.take()
    cc5 = ConfChange(type=ConfChangeType.ConfChangeAddNode, node_id=5)
    nt.send(Message(type=MT.MsgProp, from_=1, to=1, entries=[cc_entry(cc5)]))
    assert nt.logger.take()[0] == (
        "INFO 1 ignoring conf change transition:ConfChangeTransitionAuto "
        "changes:{type:ConfChangeAddNode node_id:5} at config voters=(1 2 3): "
        "possible unapplied conf change at index 2 (applied to 0)"
    )
    assert leader.raft_log.last_index() == 3
    assert leader.raft_log.term(3) == 1
    last = leader.raft_log.entries(3, NO_LIMIT)[0]
    assert (last.type, last.data) == (EntryType.EntryNormal, b"")

    for i, p in nt.peers.items():
        for e in persist_and_apply(p, nt.storage[i]):
            if e.type == EntryType.EntryConfChange:
                cs = p.apply_conf_change(
                    ConfChangeV2(
                        changes=[ConfChangeSingle(ConfChangeType.ConfChangeAddLearnerNode, 4)]
                    )
                )
                assert cs == ConfState(voters=[1, 2, 3], learners=[4])
    assert 4 in leader.trk.progress and leader.trk.progress[4].is_learner
    # The leader probed the new learner right away.
    msgs = read_messages(leader)
    assert [(m.type, m.to) for m in msgs] == [(MT.MsgApp, 4)]


def test_conf_change_remove_leader_steps_down_when_configured() -> None:
    for step_down in (False, True):
        r = new_raft(1, new_storage([1, 2]), step_down_on_removal=step_down)
        r.become_candidate()
        r.become_leader()
        r.apply_conf_change(
            ConfChangeV2(changes=[ConfChangeSingle(ConfChangeType.ConfChangeRemoveNode, 1)])
        )
        expected = StateType.StateFollower if step_down else StateType.StateLeader
        assert state_of(r) == expected
        with pytest.raises(ProposalDroppedError):
            r.step(Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"x")]))


def test_joint_auto_leave_proposed_on_apply() -> None:
    log = RecordingLogger()
    s = new_storage([1])
    r = new_raft(1, s, log)
    r.become_candidate()
    r.become_leader()
    persist_and_apply(r, s)
    cc = ConfChangeV2(
        transition=ConfChangeTransition.ConfChangeTransitionJointImplicit,
        changes=[ConfChangeSingle(ConfChangeType.ConfChangeAddLearnerNode, 2)],
    )
    r.apply_conf_change(cc)
    assert r.trk.config.auto_leave
    log.take()
    r.applied_to(r.raft_log.committed, 0)
    assert log.take()[-1] == (
        "INFO initiating automatic transition out of joint configuration "
        "voters=(1)&&(1) learners=(2) autoleave"
    )
    last = r.raft_log.entries(r.raft_log.last_index(), NO_LIMIT)[0]
    assert (last.type, last.data) == (EntryType.EntryConfChangeV2, b"")


def test_campaign_refused_with_unapplied_conf_change() -> None:
    log = RecordingLogger()
    s = new_storage([1, 2])
    s.append([Entry(term=1, index=1), Entry(term=1, index=2, type=EntryType.EntryConfChange)])
    s.set_hard_state(HardState(term=1, commit=2))
    r = new_raft(1, s, log)
    log.take()
    r.step(Message(type=MT.MsgHup))
    assert state_of(r) == StateType.StateFollower
    assert log.take() == [
        "WARN 1 cannot campaign at term 1 since there are still pending configuration "
        "changes to apply"
    ]


# --------------------------------------------------------------------------- transfers


def test_leader_transfer() -> None:
    nt = Network(3)
    nt.campaign(1)
    nt.logger.take()
    nt.send(Message(type=MT.MsgTransferLeader, from_=2, to=1))
    assert state_of(nt.peers[2]) == StateType.StateLeader
    assert state_of(nt.peers[1]) == StateType.StateFollower
    lines = nt.logger.take()
    assert lines[:3] == [
        "INFO 1 [term 1] starts to transfer leadership to 2",
        "INFO 1 sends MsgTimeoutNow to 2 immediately as 2 already has up-to-date log",
        "INFO 2 [term 1] received MsgTimeoutNow from 1 and starts an election to get leadership.",
    ]


def test_leader_transfer_drops_proposals_and_expires() -> None:
    nt = Network(3)
    nt.campaign(1)
    nt.isolate(3)
    nt.propose(1, b"x")
    leader = nt.peers[1]
    leader.step(Message(type=MT.MsgTransferLeader, from_=3, to=1))
    assert leader.lead_transferee == 3
    with pytest.raises(ProposalDroppedError):
        leader.step(Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"y")]))
    for _ in range(leader.election_timeout):
        leader.tick()
    assert leader.lead_transferee == NONE


def test_forget_leader() -> None:
    log = RecordingLogger()
    r = new_raft(1, new_storage([1, 2]), log)
    r.become_follower(1, 2)
    log.take()
    r.step(Message(type=MT.MsgForgetLeader))
    assert r.lead == NONE
    assert log.take() == ["INFO 1 forgetting leader 2 at term 1"]

    log2 = RecordingLogger()
    r2 = new_raft(
        1,
        new_storage([1, 2]),
        log2,
        check_quorum=True,
        read_only_option=ReadOnlyOption.ReadOnlyLeaseBased,
    )
    r2.become_follower(1, 2)
    log2.take()
    r2.step(Message(type=MT.MsgForgetLeader))
    assert r2.lead == 2
    assert log2.take() == ["ERROR ignoring MsgForgetLeader due to ReadOnlyLeaseBased"]


# --------------------------------------------------------------------------- reads


def test_read_index_safe_confirms_with_heartbeat_round() -> None:
    nt = Network(3)
    nt.campaign(1)
    leader = nt.peers[1]
    nt.send(Message(type=MT.MsgReadIndex, from_=1, to=1, entries=[Entry(data=b"ctx1")]))
    assert [(rs.index, rs.request_ctx) for rs in leader.read_states] == [(1, b"ctx1")]
    # A follower's request is forwarded and answered with a MsgReadIndexResp.
    nt.send(Message(type=MT.MsgReadIndex, from_=2, to=2, entries=[Entry(data=b"ctx2")]))
    assert [(rs.index, rs.request_ctx) for rs in nt.peers[2].read_states] == [(1, b"ctx2")]


def test_read_index_postponed_until_commit_in_term() -> None:
    s = new_storage([1, 2, 3])
    r = new_raft(1, s)
    r.become_candidate()
    r.become_leader()
    read_messages(r)
    r.step(Message(type=MT.MsgReadIndex, from_=2, entries=[Entry(data=b"c")]))
    assert len(r.pending_read_index_messages) == 1
    assert r.msgs == []
    r.step(Message(type=MT.MsgAppResp, from_=2, to=1, term=1, index=1))
    assert r.pending_read_index_messages == []
    # The release goes through a heartbeat round (ReadOnlySafe), carrying the read's
    # position; then the new commit index is broadcast.
    msgs = read_messages(r)
    assert [(m.type, m.to) for m in msgs] == [
        (MT.MsgHeartbeat, 2),
        (MT.MsgHeartbeat, 3),
        (MT.MsgApp, 2),
        (MT.MsgApp, 3),
    ]
    assert msgs[0].context == (1).to_bytes(8, "little")


def test_read_index_lease_based_answers_at_once() -> None:
    nt = Network(3, check_quorum=True, read_only_option=ReadOnlyOption.ReadOnlyLeaseBased)
    for p in nt.peers.values():
        p.election_elapsed = p.election_timeout
    nt.campaign(1)
    leader = nt.peers[1]
    leader.step(Message(type=MT.MsgReadIndex, from_=2, to=1, entries=[Entry(data=b"c")]))
    assert read_messages(leader) == [
        Message(
            type=MT.MsgReadIndexResp,
            to=2,
            from_=1,
            term=1,
            index=1,
            entries=[Entry(data=b"c")],
        )
    ]


def test_read_only_positions() -> None:
    ro = ReadOnly(ReadOnlyOption.ReadOnlySafe)
    assert ro.heartbeat_ctx() == b""
    ro.add_request(5, Message(entries=[Entry(data=b"a")]))
    ro.add_request(6, Message(entries=[Entry(data=b"b")]))
    assert ro.heartbeat_ctx() == (2).to_bytes(8, "little")
    ro.recv_ack(1, (1).to_bytes(8, "little"))
    ro.recv_ack(1, b"")  # ignored
    assert ro.acked_index(1) == 1 and ro.acked_index(2) is None
    # Acks never go backwards.
    ro.recv_ack(1, (0).to_bytes(8, "little"))
    assert ro.acked_index(1) == 1


# --------------------------------------------------------------------------- invariants


def test_send_panics_on_bad_messages() -> None:
    r = new_raft(1, new_storage([1, 2]))
    with pytest.raises(RaftPanic, match="term should be set when sending MsgVote"):
        r.send(Message(type=MT.MsgVote, to=2))
    with pytest.raises(RaftPanic, match=r"term should not be set when sending MsgApp \(was 3\)"):
        r.send(Message(type=MT.MsgApp, to=2, term=3))
    with pytest.raises(RaftPanic, match="message should not be self-addressed when sending MsgApp"):
        r.send(Message(type=MT.MsgApp, to=1))


def test_invalid_transitions_panic() -> None:
    r = new_raft(1, new_storage([1]))
    with pytest.raises(RaftPanic, match=r"invalid transition \[follower -> leader\]"):
        r.become_leader()
    r.become_candidate()
    r.become_leader()
    with pytest.raises(RaftPanic, match=r"invalid transition \[leader -> candidate\]"):
        r.become_candidate()
    with pytest.raises(RaftPanic, match=r"invalid transition \[leader -> pre-candidate\]"):
        r.become_pre_candidate()


def test_empty_proposal_panics() -> None:
    r = new_raft(1, new_storage([1]))
    r.become_candidate()
    r.become_leader()
    with pytest.raises(RaftPanic, match="1 stepped empty MsgProp"):
        r.step(Message(type=MT.MsgProp, from_=1))


def test_uncommitted_size_limit() -> None:
    r = new_raft(1, new_storage([1, 2]), max_uncommitted_entries_size=10)
    r.become_candidate()
    r.become_leader()
    prop = Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"123456")])
    r.step(prop)  # an empty tail admits anything
    with pytest.raises(ProposalDroppedError):
        r.step(Message(type=MT.MsgProp, from_=1, entries=[Entry(data=b"123456")]))
    assert r.uncommitted_size == 6
    r.reduce_uncommitted_size(100)
    assert r.uncommitted_size == 0


def test_hard_and_soft_state() -> None:
    r = new_raft(1, new_storage([1]))
    r.become_candidate()
    assert r.hard_state() == HardState(term=1, vote=1, commit=0)
    ss = r.soft_state()
    assert (ss.lead, ss.raft_state) == (NONE, StateType.StateCandidate)
