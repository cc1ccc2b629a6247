"""Text forms of raftcore.describe: etcd's util_test.go cases plus HARNESS.md §3 examples."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from raftcore.describe import (
    describe_conf_change,
    describe_conf_state,
    describe_entries,
    describe_entry,
    describe_hard_state,
    describe_message,
    describe_read_states,
    describe_ready,
    describe_snapshot,
    describe_soft_state,
    describe_target,
    go_list,
    go_quote,
)
from raftcore.raft import StateType
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
from raftcore.rawnode import Ready, SoftState
from raftcore.read_only import ReadState
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD

MT = MessageType
CCT = ConfChangeType


def _cc_entry(term: int, index: int, cc: ConfChange | ConfChangeV2 | None) -> Entry:
    typ, data = marshal_conf_change(cc)
    return Entry(term=term, index=index, type=typ, data=data)


def _snap(index: int, term: int, voters: list[int]) -> Snapshot:
    return Snapshot(
        metadata=SnapshotMetadata(conf_state=ConfState(voters=voters), index=index, term=term)
    )


# --- Go's %q ------------------------------------------------------------------------


def test_go_quote_examples() -> None:
    assert go_quote(b"foo") == '"foo"'
    assert go_quote(b"") == '""'
    assert go_quote(b'"foo"') == '"\\"foo\\""'
    assert go_quote(b"\x00") == '"\\x00"'
    assert go_quote("é".encode()) == '"é"'
    assert go_quote(b"a\\b") == '"a\\\\b"'
    assert go_quote(b"\x07\x08\x0c\n\r\t\x0b") == '"\\a\\b\\f\\n\\r\\t\\v"'
    assert go_quote(b"\x1f\x7f") == '"\\x1f\\x7f"'


def test_go_quote_invalid_utf8_byte_by_byte() -> None:
    # Truncated sequence, lone continuation byte, overlong form, encoded surrogate and
    # a code point above U+10FFFF: every offending byte prints alone.
    assert go_quote(b"\xe2\x82A") == '"\\xe2\\x82A"'
    assert go_quote(b"\x80") == '"\\x80"'
    assert go_quote(b"\xc0\x80") == '"\\xc0\\x80"'
    assert go_quote(b"\xed\xa0\x80") == '"\\xed\\xa0\\x80"'
    assert go_quote(b"\xf4\x90\x80\x80") == '"\\xf4\\x90\\x80\\x80"'
    assert go_quote(b"\xff") == '"\\xff"'


def test_go_quote_non_printable_code_points() -> None:
    assert go_quote("\u00a0".encode()) == '"\\u00a0"'  # no-break space: not printable
    assert go_quote("\u00ad".encode()) == '"\\u00ad"'  # soft hyphen (Cf)
    assert go_quote("\u3000".encode()) == '"\\u3000"'  # ideographic space (Zs)
    assert go_quote("\u2028".encode()) == '"\\u2028"'  # line separator (Zl)
    assert go_quote("\U000e0001".encode()) == '"\\U000e0001"'  # language tag (Cf)
    assert go_quote("\U0001f600".encode()) == '"\U0001f600"'  # emoji (So): printable
    assert go_quote("\ufffd".encode()) == '"\ufffd"'  # a real U+FFFD is printable
    assert go_quote("∞".encode()) == '"∞"'


def test_go_quote_of_str_is_quote_of_its_utf8() -> None:
    assert go_quote("lease-based") == '"lease-based"'
    assert go_quote('x"y') == '"x\\"y"'


_ESCAPE = re.compile(rb'\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[abfnrtv"\\])')
_NAMED = {b"a": 7, b"b": 8, b"f": 12, b"n": 10, b"r": 13, b"t": 9, b"v": 11, b'"': 34, b"\\": 92}


def _go_unquote(q: str) -> bytes:
    """Undo Go quoting (for the round-trip property only)."""
    assert q[0] == '"' and q[-1] == '"'
    raw = q[1:-1].encode()

    def sub(m: re.Match[bytes]) -> bytes:
        g = m.group(1)
        if g[:1] == b"x":
            return bytes([int(g[1:], 16)])
        if g[:1] in (b"u", b"U"):
            return chr(int(g[1:], 16)).encode()
        return bytes([_NAMED[g]])

    return _ESCAPE.sub(sub, raw)


@given(st.binary(max_size=64))
def test_go_quote_round_trips(data: bytes) -> None:
    q = go_quote(data)
    assert _go_unquote(q) == data
    # Nothing unescaped that Go would escape: no raw control characters or quotes.
    inner = q[1:-1]
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in inner)
    assert '"' not in inner.replace('\\"', "")


@given(st.text(alphabet=st.characters(categories=["L", "M", "N", "P", "S"]), max_size=32))
def test_go_quote_keeps_printable_text(text: str) -> None:
    expected = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert go_quote(text.encode()) == expected


def test_go_list() -> None:
    assert go_list([]) == "[]"
    assert go_list([1, 2, 3]) == "[1 2 3]"


# --- entries ------------------------------------------------------------------------


def test_describe_entry_etcd() -> None:
    # etcd's TestDescribeEntry.
    e = Entry(term=1, index=2, type=EntryType.EntryNormal, data=b"hello\x00world")
    assert describe_entry(e) == '1/2 EntryNormal "hello\\x00world"'
    assert describe_entry(e, lambda d: d.decode().upper()) == "1/2 EntryNormal HELLO\x00WORLD"


def test_describe_entry_normal() -> None:
    assert describe_entry(Entry(term=1, index=3)) == '1/3 EntryNormal ""'
    assert describe_entry(Entry(term=1, index=12, data=b"prop_1")) == '1/12 EntryNormal "prop_1"'
    # A formatter that returns nothing leaves no trailing space.
    assert describe_entry(Entry(term=1, index=3, data=b"x"), lambda _: "") == "1/3 EntryNormal"


def test_describe_entry_conf_changes() -> None:
    v1 = _cc_entry(1, 4, ConfChange(type=CCT.ConfChangeAddNode, node_id=2))
    assert describe_entry(v1) == "1/4 EntryConfChange v2"
    r1 = _cc_entry(1, 5, ConfChange(type=CCT.ConfChangeRemoveNode, node_id=1))
    assert describe_entry(r1) == "1/5 EntryConfChange r1"
    v2 = _cc_entry(
        1,
        4,
        ConfChangeV2(
            changes=[
                ConfChangeSingle(CCT.ConfChangeRemoveNode, 1),
                ConfChangeSingle(CCT.ConfChangeAddNode, 4),
                ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 12),
                ConfChangeSingle(CCT.ConfChangeUpdateNode, 5),
            ]
        ),
    )
    assert describe_entry(v2) == "1/4 EntryConfChangeV2 r1 v4 l12 u5"
    # Leaving a joint config: no changes, no payload, no trailing space — whether the
    # data is an empty V2 change or absent altogether.
    assert describe_entry(_cc_entry(2, 6, ConfChangeV2())) == "2/6 EntryConfChangeV2"
    assert describe_entry(_cc_entry(2, 6, None)) == "2/6 EntryConfChangeV2"
    assert describe_entry(Entry(type=EntryType.EntryConfChangeV2)) == "0/0 EntryConfChangeV2"
    # An empty V1 change decodes to "add node 0", as in etcd.
    assert describe_entry(Entry(type=EntryType.EntryConfChange)) == "0/0 EntryConfChange v0"


def test_describe_entry_undecodable_prints_error() -> None:
    out = describe_entry(Entry(term=1, index=1, type=EntryType.EntryConfChange, data=b"\xff"))
    assert out.startswith("1/1 EntryConfChange ")
    assert len(out) > len("1/1 EntryConfChange ")


def test_describe_entries() -> None:
    ents = [Entry(term=1, index=1), Entry(term=1, index=2, data=b"a")]
    assert describe_entries(ents) == '1/1 EntryNormal ""\n1/2 EntryNormal "a"\n'
    assert describe_entries([]) == ""


# --- state --------------------------------------------------------------------------


def test_describe_hard_state() -> None:
    assert describe_hard_state(HardState(term=1, vote=1, commit=3)) == "Term:1 Vote:1 Commit:3"
    assert describe_hard_state(HardState(term=1, commit=0)) == "Term:1 Commit:0"
    # Decimal, not hex.
    assert describe_hard_state(HardState(term=2, vote=12, commit=10)) == "Term:2 Vote:12 Commit:10"


def test_describe_soft_state() -> None:
    assert describe_soft_state(SoftState(1, StateType.StateLeader)) == "Lead:1 State:StateLeader"
    assert (
        describe_soft_state(SoftState(0, StateType.StatePreCandidate))
        == "Lead:0 State:StatePreCandidate"
    )
    assert describe_soft_state(SoftState(12, StateType.StateFollower)) == (
        "Lead:12 State:StateFollower"
    )


def test_describe_conf_state_and_snapshot() -> None:
    assert describe_conf_state(ConfState()) == (
        "Voters:[] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false"
    )
    cs = ConfState(
        voters=[3, 1, 2], learners=[4], voters_outgoing=[1], learners_next=[12], auto_leave=True
    )
    assert describe_conf_state(cs) == (
        "Voters:[3 1 2] VotersOutgoing:[1] Learners:[4] LearnersNext:[12] AutoLeave:true"
    )
    snap = _snap(4, 1, [1, 2])
    snap.data = b"ignored"
    assert describe_snapshot(snap) == (
        "Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] "
        "LearnersNext:[] AutoLeave:false"
    )


def test_describe_read_states() -> None:
    assert describe_read_states([ReadState(10, b"foo")]) == "[{10 [102 111 111]}]"
    assert describe_read_states([ReadState(1, b""), ReadState(2, b"\x01")]) == "[{1 []} {2 [1]}]"


# --- messages -----------------------------------------------------------------------


def test_describe_target() -> None:
    assert describe_target(0) == "None"
    assert describe_target(LOCAL_APPEND_THREAD) == "AppendThread"
    assert describe_target(LOCAL_APPLY_THREAD) == "ApplyThread"
    assert describe_target(1) == "1"
    assert describe_target(10) == "a"
    assert describe_target(255) == "ff"


def test_describe_message_simple() -> None:
    m = Message(
        type=MT.MsgApp,
        from_=1,
        to=2,
        term=1,
        log_term=1,
        index=2,
        commit=2,
        entries=[Entry(term=1, index=3)],
    )
    assert describe_message(m) == '1->2 MsgApp Term:1 Log:1/2 Commit:2 Entries:[1/3 EntryNormal ""]'
    rej = Message(type=MT.MsgAppResp, from_=2, to=1, term=1, index=3, reject=True, reject_hint=0)
    assert describe_message(rej) == "2->1 MsgAppResp Term:1 Log:0/3 Rejected (Hint: 0)"
    vote = Message(type=MT.MsgVote, from_=10, to=11, term=5, log_term=4, index=20, vote=12)
    # Ids in hex, vote in decimal.
    assert describe_message(vote) == "a->b MsgVote Term:5 Log:4/20 Vote:12"
    fwd = Message(type=MT.MsgProp, from_=4, to=1, entries=[_cc_entry(0, 0, ConfChangeV2())])
    assert describe_message(fwd) == "4->1 MsgProp Term:0 Log:0/0 Entries:[0/0 EntryConfChangeV2]"


def test_describe_message_multiple_entries_and_snapshot() -> None:
    m = Message(
        type=MT.MsgApp,
        from_=1,
        to=2,
        term=8,
        log_term=6,
        index=19,
        commit=18,
        entries=[Entry(term=6, index=20, data=b"prop_6_20"), Entry(term=8, index=21)],
    )
    assert describe_message(m) == (
        "1->2 MsgApp Term:8 Log:6/19 Commit:18 Entries:[\n"
        '  6/20 EntryNormal "prop_6_20"\n'
        '  8/21 EntryNormal ""\n'
        "]"
    )
    snap = Message(type=MT.MsgSnap, from_=1, to=2, term=1, snapshot=_snap(4, 1, [1, 2]))
    assert describe_message(snap) == (
        "1->2 MsgSnap Term:1 Log:0/0\n"
        "  Snapshot: Index:4 Term:1 ConfState:Voters:[1 2] VotersOutgoing:[] Learners:[] "
        "LearnersNext:[] AutoLeave:false"
    )
    # An empty snapshot is not printed.
    empty = Message(type=MT.MsgSnap, from_=1, to=2, term=1, snapshot=Snapshot())
    assert describe_message(empty) == "1->2 MsgSnap Term:1 Log:0/0"


def test_describe_message_responses() -> None:
    m = Message(
        type=MT.MsgStorageAppend,
        from_=1,
        to=LOCAL_APPEND_THREAD,
        commit=10,
        vote=1,
        term=1,
        responses=[Message(type=MT.MsgVoteResp, from_=1, to=1, term=1)],
    )
    assert describe_message(m) == (
        "1->AppendThread MsgStorageAppend Term:1 Log:0/0 Commit:10 Vote:1 Responses:[\n"
        "  1->1 MsgVoteResp Term:1 Log:0/0\n"
        "]"
    )
    m = Message(
        type=MT.MsgStorageAppend,
        from_=1,
        to=LOCAL_APPEND_THREAD,
        entries=[Entry(term=1, index=11)],
        responses=[
            Message(type=MT.MsgAppResp, from_=1, to=1, term=1, index=11),
            Message(
                type=MT.MsgStorageAppendResp,
                from_=LOCAL_APPEND_THREAD,
                to=1,
                term=1,
                log_term=1,
                index=11,
            ),
        ],
    )
    assert describe_message(m) == (
        '1->AppendThread MsgStorageAppend Term:0 Log:0/0 Entries:[1/11 EntryNormal ""] '
        "Responses:[\n"
        "  1->1 MsgAppResp Term:1 Log:0/11\n"
        "  AppendThread->1 MsgStorageAppendResp Term:1 Log:1/11\n"
        "]"
    )
    ents = [Entry(term=1, index=11)]
    m = Message(
        type=MT.MsgStorageApply,
        from_=1,
        to=LOCAL_APPLY_THREAD,
        entries=ents,
        responses=[
            Message(type=MT.MsgStorageApplyResp, from_=LOCAL_APPLY_THREAD, to=1, entries=ents)
        ],
    )
    assert describe_message(m) == (
        '1->ApplyThread MsgStorageApply Term:0 Log:0/0 Entries:[1/11 EntryNormal ""] '
        "Responses:[\n"
        '  ApplyThread->1 MsgStorageApplyResp Term:0 Log:0/0 Entries:[1/11 EntryNormal ""]\n'
        "]"
    )


def test_describe_message_nested_indentation() -> None:
    # Multi-entry lists and snapshots inside a response are indented one level deeper;
    # a Responses:[ after a snapshot line continues that line.
    inner = Message(
        type=MT.MsgStorageAppendResp,
        from_=LOCAL_APPEND_THREAD,
        to=1,
        term=2,
        entries=[Entry(term=1, index=1), Entry(term=1, index=2)],
        snapshot=_snap(5, 1, [1]),
    )
    outer = Message(
        type=MT.MsgStorageAppend,
        from_=1,
        to=LOCAL_APPEND_THREAD,
        snapshot=_snap(5, 1, [1]),
        responses=[inner],
    )
    cs = "ConfState:Voters:[1] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false"
    assert describe_message(outer) == (
        "1->AppendThread MsgStorageAppend Term:0 Log:0/0\n"
        f"  Snapshot: Index:5 Term:1 {cs} Responses:[\n"
        "  AppendThread->1 MsgStorageAppendResp Term:2 Log:0/0 Entries:[\n"
        '    1/1 EntryNormal ""\n'
        '    1/2 EntryNormal ""\n'
        "  ]\n"
        f"    Snapshot: Index:5 Term:1 {cs}\n"
        "]"
    )


def test_describe_message_formatter_applies_to_all_entries() -> None:
    def upper(d: bytes) -> str:
        return d.decode().upper()

    m = Message(
        type=MT.MsgStorageApply,
        from_=1,
        to=LOCAL_APPLY_THREAD,
        entries=[Entry(term=1, index=1, data=b"a")],
        responses=[
            Message(
                type=MT.MsgStorageApplyResp,
                from_=LOCAL_APPLY_THREAD,
                to=1,
                entries=[Entry(term=1, index=1, data=b"b")],
            )
        ],
    )
    out = describe_message(m, upper)
    assert "Entries:[1/1 EntryNormal A]" in out
    assert "Entries:[1/1 EntryNormal B]" in out


# --- conf changes -------------------------------------------------------------------


def test_describe_conf_change() -> None:
    v2 = ConfChangeV2(
        changes=[
            ConfChangeSingle(CCT.ConfChangeAddNode, 3),
            ConfChangeSingle(CCT.ConfChangeAddNode, 4),
        ]
    )
    assert describe_conf_change(v2) == (
        "transition:ConfChangeTransitionAuto changes:{type:ConfChangeAddNode node_id:3} "
        "changes:{type:ConfChangeAddNode node_id:4}"
    )
    assert describe_conf_change(ConfChangeV2()) == "transition:ConfChangeTransitionAuto"
    v1 = ConfChange(type=CCT.ConfChangeRemoveNode, node_id=12, context=b"ctx\x00")
    assert describe_conf_change(v1) == (
        "transition:ConfChangeTransitionAuto changes:{type:ConfChangeRemoveNode node_id:12} "
        'context:"ctx\\x00"'
    )
    explicit = ConfChangeV2(
        transition=ConfChangeTransition.ConfChangeTransitionJointExplicit,
        changes=[ConfChangeSingle(CCT.ConfChangeAddLearnerNode, 2)],
    )
    assert describe_conf_change(explicit) == (
        "transition:ConfChangeTransitionJointExplicit "
        "changes:{type:ConfChangeAddLearnerNode node_id:2}"
    )


# --- Ready --------------------------------------------------------------------------


def test_describe_ready_empty() -> None:
    assert describe_ready(Ready()) == "<empty Ready>"
    # MustSync alone, an empty hard state and an empty snapshot print nothing.
    assert describe_ready(Ready(hard_state=HardState(), snapshot=Snapshot(), must_sync=True)) == (
        "<empty Ready>"
    )


def test_describe_ready_harness_example() -> None:
    rd = Ready(
        soft_state=SoftState(1, StateType.StateLeader),
        entries=[
            Entry(term=1, index=3),
            _cc_entry(1, 4, ConfChange(type=CCT.ConfChangeAddNode, node_id=2)),
        ],
        must_sync=True,
    )
    assert describe_ready(rd) == (
        "Ready MustSync=true:\n"
        "Lead:1 State:StateLeader\n"
        "Entries:\n"
        '1/3 EntryNormal ""\n'
        "1/4 EntryConfChange v2\n"
    )


def test_describe_ready_all_parts_in_order() -> None:
    rd = Ready(
        soft_state=SoftState(0, StateType.StateFollower),
        hard_state=HardState(term=2, vote=1, commit=5),
        read_states=[ReadState(10, b"foo")],
        entries=[Entry(term=2, index=6, data=b"x")],
        snapshot=_snap(4, 1, [1]),
        committed_entries=[Entry(term=1, index=5)],
        messages=[
            Message(type=MT.MsgHeartbeat, from_=1, to=2, term=2),
            Message(type=MT.MsgHeartbeat, from_=1, to=3, term=2),
        ],
        must_sync=False,
    )
    assert describe_ready(rd) == (
        "Ready MustSync=false:\n"
        "Lead:0 State:StateFollower\n"
        "HardState Term:2 Vote:1 Commit:5\n"
        "ReadStates [{10 [102 111 111]}]\n"
        "Entries:\n"
        '2/6 EntryNormal "x"\n'
        "Snapshot Index:4 Term:1 ConfState:Voters:[1] VotersOutgoing:[] Learners:[] "
        "LearnersNext:[] AutoLeave:false\n"
        "CommittedEntries:\n"
        '1/5 EntryNormal ""\n'
        "Messages:\n"
        "1->2 MsgHeartbeat Term:2 Log:0/0\n"
        "1->3 MsgHeartbeat Term:2 Log:0/0\n"
    )


def test_describe_ready_formatter() -> None:
    rd = Ready(
        entries=[Entry(term=1, index=1, data=b"e")],
        committed_entries=[Entry(term=1, index=1, data=b"c")],
        messages=[Message(type=MT.MsgApp, from_=1, to=2, entries=[Entry(data=b"m")])],
    )
    out = describe_ready(rd, lambda d: "<" + d.decode() + ">")
    assert "1/1 EntryNormal <e>\n" in out
    assert "1/1 EntryNormal <c>\n" in out
    assert "Entries:[0/0 EntryNormal <m>]" in out
