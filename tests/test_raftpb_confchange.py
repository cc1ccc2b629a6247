"""Tests of :mod:`raftcore.raftpb.confchange` and of etcd's ``raftpb/*_test.go`` cases.

etcd tests ``ConfChangesFromString`` only through its datadriven scripts; the cases
here spell out the same behaviour (and Go's exact error texts) directly.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftcore.errors import ConfChangeError, DecodeError
from raftcore.raftpb import (
    ConfChange,
    ConfChangeI,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfChangeV2,
    ConfState,
    EntryType,
    conf_changes_from_string,
    conf_changes_to_string,
    marshal_conf_change,
    unmarshal_conf_change,
)

AddNode = ConfChangeType.ConfChangeAddNode
AddLearner = ConfChangeType.ConfChangeAddLearnerNode
Remove = ConfChangeType.ConfChangeRemoveNode
Update = ConfChangeType.ConfChangeUpdateNode
Auto = ConfChangeTransition.ConfChangeTransitionAuto
Implicit = ConfChangeTransition.ConfChangeTransitionJointImplicit
Explicit = ConfChangeTransition.ConfChangeTransitionJointExplicit


# ------------------------------------------------------------ text form: parsing


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("", []),
        ("   ", []),
        ("\n\t", []),
        ("v1", [ConfChangeSingle(AddNode, 1)]),
        (
            "v1 l2 r3 u4",
            [
                ConfChangeSingle(AddNode, 1),
                ConfChangeSingle(AddLearner, 2),
                ConfChangeSingle(Remove, 3),
                ConfChangeSingle(Update, 4),
            ],
        ),
        ("  v2 v3\n", [ConfChangeSingle(AddNode, 2), ConfChangeSingle(AddNode, 3)]),
        ("l007", [ConfChangeSingle(AddLearner, 7)]),
        ("r0", [ConfChangeSingle(Remove, 0)]),
        ("v18446744073709551615", [ConfChangeSingle(AddNode, 2**64 - 1)]),
    ],
)
def test_conf_changes_from_string(text: str, want: list[ConfChangeSingle]) -> None:
    assert conf_changes_from_string(text) == want


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("v", "unknown token v"),
        ("v1 x", "unknown token x"),
        # Splitting is on single spaces, so a double space yields an empty token.
        ("v1  v2", "unknown token "),
        ("x1", "unknown input: x1"),
        ("V1", "unknown input: V1"),
        ("v1 1v", "unknown input: 1v"),
        # A single two-byte character is long enough to be a token (Go counts bytes).
        ("é", "unknown input: é"),
        ("vx", 'strconv.ParseUint: parsing "x": invalid syntax'),
        ("v1x", 'strconv.ParseUint: parsing "1x": invalid syntax'),
        ("v-1", 'strconv.ParseUint: parsing "-1": invalid syntax'),
        ("v+1", 'strconv.ParseUint: parsing "+1": invalid syntax'),
        ("v1_000", 'strconv.ParseUint: parsing "1_000": invalid syntax'),
        ("v0x10", 'strconv.ParseUint: parsing "0x10": invalid syntax'),
        (
            "v18446744073709551616",
            'strconv.ParseUint: parsing "18446744073709551616": value out of range',
        ),
        (
            "v99999999999999999999",
            'strconv.ParseUint: parsing "99999999999999999999": value out of range',
        ),
        # Go reports the first problem it meets scanning left to right.
        (
            "v99999999999999999999x",
            'strconv.ParseUint: parsing "99999999999999999999x": value out of range',
        ),
        (
            "v1x99999999999999999999",
            'strconv.ParseUint: parsing "1x99999999999999999999": invalid syntax',
        ),
        # strconv.Quote escapes.
        ('v"', 'strconv.ParseUint: parsing "\\"": invalid syntax'),
        ("v\\", 'strconv.ParseUint: parsing "\\\\": invalid syntax'),
        ("v1\t2", 'strconv.ParseUint: parsing "1\\t2": invalid syntax'),
        ("v\x00", 'strconv.ParseUint: parsing "\\x00": invalid syntax'),
        ("v\x7f", 'strconv.ParseUint: parsing "\\x7f": invalid syntax'),
        ("v\u00a01", 'strconv.ParseUint: parsing "\\u00a01": invalid syntax'),
        ("v\u00a0", "unknown token v"),
        ("vé", 'strconv.ParseUint: parsing "é": invalid syntax'),
        ("v\U0001f600", 'strconv.ParseUint: parsing "\U0001f600": invalid syntax'),
        ("v\U000e0001", 'strconv.ParseUint: parsing "\\U000e0001": invalid syntax'),
        # A byte that is not UTF-8 (surrogate-escaped in Python) prints as \x.
        ("v\udcff", 'strconv.ParseUint: parsing "\\xff": invalid syntax'),
    ],
)
def test_conf_changes_from_string_errors(text: str, error: str) -> None:
    with pytest.raises(ConfChangeError) as info:
        conf_changes_from_string(text)
    assert str(info.value) == error


def test_trim_is_gos_trim_space() -> None:
    # Go's TrimSpace trims Unicode white space (NBSP included) but not U+001F, which
    # Python's str.strip() would remove.
    assert conf_changes_from_string("\u00a0v1\u3000") == [ConfChangeSingle(AddNode, 1)]
    with pytest.raises(ConfChangeError, match="unknown input: \x1f"):
        conf_changes_from_string("\x1fv1")


# ------------------------------------------------------------ text form: printing


def test_conf_changes_to_string() -> None:
    assert conf_changes_to_string([]) == ""
    ccs = [
        ConfChangeSingle(AddNode, 1),
        ConfChangeSingle(AddLearner, 12),
        ConfChangeSingle(Remove, 3),
        ConfChangeSingle(Update, 2**64 - 1),
    ]
    assert conf_changes_to_string(ccs) == "v1 l12 r3 u18446744073709551615"
    # Ids print in decimal, never hex.
    assert conf_changes_to_string([ConfChangeSingle(AddNode, 255)]) == "v255"


def test_conf_changes_to_string_unknown_type() -> None:
    odd = ConfChangeSingle(7, 3)  # type: ignore[arg-type]
    assert conf_changes_to_string([odd, ConfChangeSingle(AddNode, 1)]) == "unknown3 v1"


singles = st.builds(ConfChangeSingle, st.sampled_from(ConfChangeType), st.integers(0, 2**64 - 1))


@given(st.lists(singles, max_size=6))
def test_text_round_trip(ccs: list[ConfChangeSingle]) -> None:
    assert conf_changes_from_string(conf_changes_to_string(ccs)) == ccs


@given(st.text(max_size=12))
def test_parse_arbitrary_text(text: str) -> None:
    # Anything either parses or fails with ConfChangeError, never another exception.
    try:
        ccs = conf_changes_from_string(text)
    except ConfChangeError:
        return
    tokens = text.split()
    assert conf_changes_to_string(ccs) == " ".join(t[0] + str(int(t[1:])) for t in tokens)


# ------------------------------------------------------------- entry payloads


def test_marshal_v1() -> None:
    # Type and node id are always encoded (HARNESS Appendix A): 10 00 18 02.
    typ, data = marshal_conf_change(ConfChange(AddNode, 2))
    assert typ == EntryType.EntryConfChange
    assert data == bytes.fromhex("10001802")
    typ, data = marshal_conf_change(ConfChange(Remove, 300, b"c", 5))
    assert typ == EntryType.EntryConfChange
    assert data == bytes.fromhex("0805100118ac02220163")


def test_marshal_v2() -> None:
    cc = ConfChangeV2(Auto, [ConfChangeSingle(AddNode, 2)])
    typ, data = marshal_conf_change(cc)
    assert typ == EntryType.EntryConfChangeV2
    # 08 00 (transition, always) + 12 04 {08 00 10 02}: 8 bytes, as HARNESS says.
    assert data == bytes.fromhex("0800120408001002")
    # An explicitly proposed empty change still carries its transition: 2 bytes.
    assert marshal_conf_change(ConfChangeV2()) == (EntryType.EntryConfChangeV2, b"\x08\x00")
    typ, data = marshal_conf_change(ConfChangeV2(Explicit, [], b"ctx"))
    assert data == bytes.fromhex("08021a03637478")


def test_marshal_none_is_leave_joint_without_data() -> None:
    # The automatic leave-joint proposal: no payload at all.
    assert marshal_conf_change(None) == (EntryType.EntryConfChangeV2, b"")
    cc = unmarshal_conf_change(EntryType.EntryConfChangeV2, b"")
    assert cc == ConfChangeV2()
    assert isinstance(cc, ConfChangeV2)
    assert cc.leave_joint()


@pytest.mark.parametrize(
    "cc",
    [
        ConfChange(AddNode, 1),
        ConfChange(AddLearner, 2**64 - 1, b"context", 42),
        ConfChangeV2(),
        ConfChangeV2(Implicit, [ConfChangeSingle(AddNode, 1), ConfChangeSingle(Remove, 2)]),
        ConfChangeV2(Explicit, [ConfChangeSingle(Update, 9)], b"x"),
    ],
)
def test_marshal_round_trip(cc: ConfChangeI) -> None:
    typ, data = marshal_conf_change(cc)
    assert unmarshal_conf_change(typ, data) == cc


def test_unmarshal_errors() -> None:
    with pytest.raises(ValueError, match="carries no configuration change"):
        unmarshal_conf_change(EntryType.EntryNormal, b"")
    with pytest.raises(DecodeError):
        unmarshal_conf_change(EntryType.EntryConfChange, b"\x10\x09")
    with pytest.raises(DecodeError):
        unmarshal_conf_change(EntryType.EntryConfChangeV2, b"\x12\x05")


# ----------------------------------------- etcd raftpb/*_test.go (on the types)


@pytest.mark.parametrize(
    ("cc", "expected"),
    [
        # etcd TestLeaveJoint.
        (ConfChangeV2(), True),  # all zero values
        (ConfChangeV2(transition=Auto), True),  # auto transition set explicitly
        (ConfChangeV2(Auto, [], b"some context"), True),  # context is ignored
        (ConfChangeV2(Auto, [ConfChangeSingle(AddNode, 0)]), False),
        (ConfChangeV2(Implicit), False),
        (ConfChangeV2(Explicit), False),
        (
            ConfChangeV2(Auto, [ConfChangeSingle(AddNode, 0), ConfChangeSingle(Remove, 0)]),
            False,
        ),
    ],
)
def test_leave_joint(cc: ConfChangeV2, expected: bool) -> None:
    assert cc.leave_joint() is expected


@pytest.mark.parametrize(
    ("cc", "auto_leave", "use_joint"),
    [
        (ConfChangeV2(), False, False),
        (ConfChangeV2(Auto, [ConfChangeSingle(AddNode, 1)]), False, False),
        (
            ConfChangeV2(Auto, [ConfChangeSingle(AddNode, 1), ConfChangeSingle(AddNode, 2)]),
            True,
            True,
        ),
        (ConfChangeV2(Implicit, [ConfChangeSingle(AddNode, 1)]), True, True),
        (ConfChangeV2(Explicit, [ConfChangeSingle(AddNode, 1)]), False, True),
        (ConfChangeV2(Explicit), False, True),
    ],
)
def test_enter_joint(cc: ConfChangeV2, auto_leave: bool, use_joint: bool) -> None:
    assert cc.enter_joint() == (auto_leave, use_joint)


def test_as_v1_as_v2() -> None:
    v1 = ConfChange(AddLearner, 3, b"ctx")
    assert v1.as_v1() is v1
    assert v1.as_v2() == ConfChangeV2(Auto, [ConfChangeSingle(AddLearner, 3)], b"ctx")
    v2 = ConfChangeV2(Explicit)
    assert v2.as_v2() is v2
    assert v2.as_v1() is None


@pytest.mark.parametrize(
    ("cs", "cs2", "ok"),
    [
        # etcd TestConfState_Equivalent: reordered voters and learners.
        (
            ConfState([1, 2, 3], [5, 4, 6], [9, 8, 7], [10, 20, 15]),
            ConfState([1, 2, 3], [4, 5, 6], [7, 9, 8], [20, 10, 15]),
            True,
        ),
        (ConfState(voters=[]), ConfState(), True),
        (ConfState(voters=[1, 2, 3, 4]), ConfState(voters=[2, 1, 3]), False),
        (ConfState(voters=[1, 4, 3]), ConfState(voters=[2, 1, 3]), False),
        (ConfState(learners=[1, 2, 3, 4]), ConfState(learners=[2, 1, 3]), False),
        (ConfState(auto_leave=True), ConfState(), False),
    ],
)
def test_conf_state_equivalent(cs: ConfState, cs2: ConfState, ok: bool) -> None:
    assert cs.equivalent(cs2) is ok
    assert cs2.equivalent(cs) is ok
