"""Tests for raftcore.util (size and message helpers of etcd's util_test.go)."""

from __future__ import annotations

from typing import NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftcore.errors import RaftPanic
from raftcore.raftpb.codec import entry_size
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    EntryType,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.util import (
    LOCAL_APPEND_THREAD,
    LOCAL_APPLY_THREAD,
    NO_LIMIT,
    NONE,
    assert_conf_states_equivalent,
    clone_snapshot,
    ents_size,
    ents_size_upper_bound,
    is_local_msg,
    is_local_msg_target,
    is_response_msg,
    limit_size,
    payload_size,
    payloads_size,
    vote_resp_msg_type,
)

M = MessageType

_ENTS = [Entry(index=4, term=4), Entry(index=5, term=5), Entry(index=6, term=6)]
_S0, _S1, _S2 = (entry_size(e) for e in _ENTS)


@pytest.mark.parametrize(
    ("max_size", "want_len"),
    [
        (NO_LIMIT, 3),  # all entries are returned
        # Even with a zero limit, the first entry is returned.
        (0, 1),
        # Limit to 2.
        (_S0 + _S1, 2),
        (_S0 + _S1 + _S2 // 2, 2),
        (_S0 + _S1 + _S2 - 1, 2),
        # All.
        (_S0 + _S1 + _S2, 3),
    ],
)
def test_limit_size(max_size: int, want_len: int) -> None:
    ents = list(_ENTS)
    got = limit_size(ents, max_size)
    assert got == _ENTS[:want_len]
    assert len(got) == 1 or ents_size(got) <= max_size
    assert ents == _ENTS  # the input is left alone


def test_limit_size_empty() -> None:
    assert limit_size([], 0) == []
    assert limit_size([], NO_LIMIT) == []


@given(
    sizes=st.lists(st.integers(0, 40), max_size=12),
    max_size=st.integers(0, 1500),
)
def test_limit_size_is_longest_fitting_prefix(sizes: list[int], max_size: int) -> None:
    ents = [Entry(term=1, index=i + 1, data=b"x" * n) for i, n in enumerate(sizes)]
    got = limit_size(ents, max_size)
    assert got == ents[: len(got)]
    if not ents:
        assert got == []
        return
    assert len(got) >= 1
    assert len(got) == 1 or ents_size(got) <= max_size
    if len(got) < len(ents):
        # One more entry would have gone over the limit.
        assert ents_size(ents[: len(got) + 1]) > max_size


def test_ents_size() -> None:
    assert ents_size([]) == 0
    assert ents_size(_ENTS) == _S0 + _S1 + _S2


_LOCAL = {
    M.MsgHup: True,
    M.MsgBeat: True,
    M.MsgUnreachable: True,
    M.MsgSnapStatus: True,
    M.MsgCheckQuorum: True,
    M.MsgTransferLeader: False,
    M.MsgProp: False,
    M.MsgApp: False,
    M.MsgAppResp: False,
    M.MsgVote: False,
    M.MsgVoteResp: False,
    M.MsgSnap: False,
    M.MsgHeartbeat: False,
    M.MsgHeartbeatResp: False,
    M.MsgTimeoutNow: False,
    M.MsgReadIndex: False,
    M.MsgReadIndexResp: False,
    M.MsgPreVote: False,
    M.MsgPreVoteResp: False,
    M.MsgStorageAppend: True,
    M.MsgStorageAppendResp: True,
    M.MsgStorageApply: True,
    M.MsgStorageApplyResp: True,
}


@pytest.mark.parametrize(("msgt", "is_local"), list(_LOCAL.items()), ids=lambda v: str(v))
def test_is_local_msg(msgt: MessageType, is_local: bool) -> None:
    assert is_local_msg(msgt) is is_local


_RESPONSE = {
    M.MsgHup: False,
    M.MsgBeat: False,
    M.MsgUnreachable: True,
    M.MsgSnapStatus: False,
    M.MsgCheckQuorum: False,
    M.MsgTransferLeader: False,
    M.MsgProp: False,
    M.MsgApp: False,
    M.MsgAppResp: True,
    M.MsgVote: False,
    M.MsgVoteResp: True,
    M.MsgSnap: False,
    M.MsgHeartbeat: False,
    M.MsgHeartbeatResp: True,
    M.MsgTimeoutNow: False,
    M.MsgReadIndex: False,
    M.MsgReadIndexResp: True,
    M.MsgPreVote: False,
    M.MsgPreVoteResp: True,
    M.MsgStorageAppend: False,
    M.MsgStorageAppendResp: True,
    M.MsgStorageApply: False,
    M.MsgStorageApplyResp: True,
}


@pytest.mark.parametrize(("msgt", "is_response"), list(_RESPONSE.items()), ids=lambda v: str(v))
def test_is_response_msg(msgt: MessageType, is_response: bool) -> None:
    assert is_response_msg(msgt) is is_response


def test_msg_predicates_out_of_range() -> None:
    # Types beyond the known ones are neither local nor responses (Go's bounds check).
    assert not is_local_msg(1000)
    assert not is_response_msg(1000)
    assert not is_local_msg(M.MsgForgetLeader)
    assert not is_response_msg(M.MsgForgetLeader)


def test_payload_size_of_empty_entry() -> None:
    # New leaders append an empty entry; it must not count toward the uncommitted quota.
    assert payload_size(Entry()) == 0
    assert payload_size(Entry(term=3, index=9, data=b"abc")) == 3
    assert payloads_size([Entry(data=b"ab"), Entry(), Entry(data=b"xyz")]) == 5
    assert payloads_size([]) == 0


def test_local_targets() -> None:
    assert NONE == 0
    assert LOCAL_APPEND_THREAD == 2**64 - 1
    assert LOCAL_APPLY_THREAD == 2**64 - 2
    assert is_local_msg_target(LOCAL_APPEND_THREAD)
    assert is_local_msg_target(LOCAL_APPLY_THREAD)
    assert not is_local_msg_target(NONE)
    assert not is_local_msg_target(1)


def test_vote_resp_msg_type() -> None:
    assert vote_resp_msg_type(M.MsgVote) is M.MsgVoteResp
    assert vote_resp_msg_type(M.MsgPreVote) is M.MsgPreVoteResp
    with pytest.raises(RaftPanic, match=r"^not a vote message: MsgApp$"):
        vote_resp_msg_type(M.MsgApp)


class _PanicLogger:
    def debug(self, msg: str, *args: object) -> None: ...
    def info(self, msg: str, *args: object) -> None: ...
    def warning(self, msg: str, *args: object) -> None: ...
    def error(self, msg: str, *args: object) -> None: ...

    def panic(self, msg: str, *args: object) -> NoReturn:
        raise RaftPanic(msg % args)


def test_assert_conf_states_equivalent() -> None:
    log = _PanicLogger()
    a = ConfState(voters=[3, 1, 2], learners=[5], voters_outgoing=[1], learners_next=[4])
    b = ConfState(voters=[1, 2, 3], learners=[5], voters_outgoing=[1], learners_next=[4])
    assert_conf_states_equivalent(log, a, b)
    with pytest.raises(RaftPanic, match="ConfStates not equivalent after sorting"):
        assert_conf_states_equivalent(log, a, ConfState(voters=[1, 2]))
    with pytest.raises(RaftPanic):
        assert_conf_states_equivalent(
            log, a, ConfState(voters=[1, 2, 3], learners=[5], voters_outgoing=[1], auto_leave=True)
        )


def test_clone_snapshot_shares_nothing_mutable() -> None:
    s = Snapshot(
        data=b"d",
        metadata=SnapshotMetadata(conf_state=ConfState(voters=[1, 2]), index=4, term=2),
    )
    c = clone_snapshot(s)
    assert c == s
    c.metadata.conf_state.voters.append(3)
    c.metadata.index = 9
    assert s.metadata.conf_state.voters == [1, 2]
    assert s.metadata.index == 4


@given(
    ents=st.lists(
        st.builds(
            Entry,
            term=st.integers(0, 2**64 - 1),
            index=st.integers(0, 2**64 - 1),
            type=st.sampled_from(list(EntryType)),
            data=st.binary(max_size=300),
        ),
        max_size=8,
    )
)
def test_ents_size_upper_bound_is_a_bound(ents: list[Entry]) -> None:
    assert ents_size(ents) <= ents_size_upper_bound(ents)
