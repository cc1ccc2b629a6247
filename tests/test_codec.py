"""Tests of :mod:`raftcore.raftpb.codec`.

The reference is the installed ``google.protobuf`` runtime, fed message classes built
here from a ``FileDescriptorProto`` that mirrors etcd's ``raftpb/raft.proto`` (no protoc
involved). Both codecs must produce the same bytes for the same object and read the
same objects back; bytes only the library produces (packed repeated fields, merged
duplicates, unknown fields) must decode the same way. Hand-derived golden vectors pin
the encoding independently of either implementation, and fuzzing checks that arbitrary
bytes either decode or raise :class:`DecodeError`.

``bench/bench_codec.py`` imports the message classes and converters from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from raftcore.errors import DecodeError
from raftcore.raftpb import codec
from raftcore.raftpb.codec import (
    MAX_DEPTH,
    decode,
    decode_conf_change,
    decode_conf_change_single,
    decode_conf_change_v2,
    decode_conf_state,
    decode_entry,
    decode_hard_state,
    decode_message,
    decode_snapshot,
    decode_snapshot_metadata,
    encode,
    encode_conf_change,
    encode_conf_change_single,
    encode_conf_change_v2,
    encode_conf_state,
    encode_entry,
    encode_hard_state,
    encode_message,
    encode_snapshot,
    encode_snapshot_metadata,
    entry_size,
    varint_size,
)
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

# ------------------------------------------------------------- reference classes

_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_U64, _BOOL, _BYTES, _ENUM, _MSG = (
    _F.TYPE_UINT64,
    _F.TYPE_BOOL,
    _F.TYPE_BYTES,
    _F.TYPE_ENUM,
    _F.TYPE_MESSAGE,
)

# raft.proto, message by message, fields in declaration order:
# (name, number, label, type, type name for enums and messages).
_RAFT_PROTO: dict[str, list[tuple[str, int, int, int, str]]] = {
    "Entry": [
        ("Term", 2, _OPT, _U64, ""),
        ("Index", 3, _OPT, _U64, ""),
        ("Type", 1, _OPT, _ENUM, "EntryType"),
        ("Data", 4, _OPT, _BYTES, ""),
    ],
    "SnapshotMetadata": [
        ("conf_state", 1, _OPT, _MSG, "ConfState"),
        ("index", 2, _OPT, _U64, ""),
        ("term", 3, _OPT, _U64, ""),
    ],
    "Snapshot": [
        ("data", 1, _OPT, _BYTES, ""),
        ("metadata", 2, _OPT, _MSG, "SnapshotMetadata"),
    ],
    "Message": [
        ("type", 1, _OPT, _ENUM, "MessageType"),
        ("to", 2, _OPT, _U64, ""),
        ("from", 3, _OPT, _U64, ""),
        ("term", 4, _OPT, _U64, ""),
        ("logTerm", 5, _OPT, _U64, ""),
        ("index", 6, _OPT, _U64, ""),
        ("entries", 7, _REP, _MSG, "Entry"),
        ("commit", 8, _OPT, _U64, ""),
        ("vote", 13, _OPT, _U64, ""),
        ("snapshot", 9, _OPT, _MSG, "Snapshot"),
        ("reject", 10, _OPT, _BOOL, ""),
        ("rejectHint", 11, _OPT, _U64, ""),
        ("context", 12, _OPT, _BYTES, ""),
        ("responses", 14, _REP, _MSG, "Message"),
    ],
    "HardState": [
        ("term", 1, _OPT, _U64, ""),
        ("vote", 2, _OPT, _U64, ""),
        ("commit", 3, _OPT, _U64, ""),
    ],
    "ConfState": [
        ("voters", 1, _REP, _U64, ""),
        ("learners", 2, _REP, _U64, ""),
        ("voters_outgoing", 3, _REP, _U64, ""),
        ("learners_next", 4, _REP, _U64, ""),
        ("auto_leave", 5, _OPT, _BOOL, ""),
    ],
    "ConfChange": [
        ("type", 2, _OPT, _ENUM, "ConfChangeType"),
        ("node_id", 3, _OPT, _U64, ""),
        ("context", 4, _OPT, _BYTES, ""),
        ("id", 1, _OPT, _U64, ""),
    ],
    "ConfChangeSingle": [
        ("type", 1, _OPT, _ENUM, "ConfChangeType"),
        ("node_id", 2, _OPT, _U64, ""),
    ],
    "ConfChangeV2": [
        ("transition", 1, _OPT, _ENUM, "ConfChangeTransition"),
        ("changes", 2, _REP, _MSG, "ConfChangeSingle"),
        ("context", 3, _OPT, _BYTES, ""),
    ],
}
_ENUMS = (EntryType, MessageType, ConfChangeTransition, ConfChangeType)


def build_pb_classes(packed: bool = False) -> dict[str, Any]:
    """Message classes for raft.proto from the protobuf runtime, by message name.

    ``packed=True`` builds a variant whose repeated ``uint64`` fields are packed, to
    produce the packed wire form the decoder must also accept.
    """
    fdp = descriptor_pb2.FileDescriptorProto(
        name="raftcore_test/raft_packed.proto" if packed else "raftcore_test/raft.proto",
        package="raftpb",
        syntax="proto2",
    )
    for enum in _ENUMS:
        ed = fdp.enum_type.add(name=enum.__name__)
        for member in enum:
            ed.value.add(name=member.name, number=int(member))
    for msg_name, fields in _RAFT_PROTO.items():
        md = fdp.message_type.add(name=msg_name)
        for name, number, label, ftype, type_name in fields:
            fd = md.field.add(name=name, number=number, label=label, type=ftype)
            if type_name:
                fd.type_name = ".raftpb." + type_name
            if packed and label == _REP and ftype == _U64:
                fd.options.packed = True
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName("raftpb." + name))
        for name in _RAFT_PROTO
    }


PB = build_pb_classes()
PB_PACKED = build_pb_classes(packed=True)


# Converters between raftcore objects and library messages. A field is set on the
# library message exactly when the raftcore codec writes it (non-zero values, plus the
# always-present fields documented in the codec), so equal bytes are expected.


def fill_entry(p: Any, e: Entry) -> Any:
    if e.type:
        p.Type = e.type
    if e.term:
        p.Term = e.term
    if e.index:
        p.Index = e.index
    if e.data:
        p.Data = e.data
    return p


def fill_conf_state(p: Any, cs: ConfState) -> Any:
    if cs.voters:
        p.voters.extend(cs.voters)
    if cs.learners:
        p.learners.extend(cs.learners)
    if cs.voters_outgoing:
        p.voters_outgoing.extend(cs.voters_outgoing)
    if cs.learners_next:
        p.learners_next.extend(cs.learners_next)
    if cs.auto_leave:
        p.auto_leave = True
    return p


def fill_snapshot_metadata(p: Any, md: SnapshotMetadata) -> Any:
    cs = md.conf_state
    if cs.voters or cs.learners or cs.voters_outgoing or cs.learners_next or cs.auto_leave:
        fill_conf_state(p.conf_state, cs)
    if md.index:
        p.index = md.index
    if md.term:
        p.term = md.term
    return p


def fill_snapshot(p: Any, s: Snapshot) -> Any:
    p.SetInParent()
    if s.data:
        p.data = s.data
    fill_snapshot_metadata(p.metadata, s.metadata)
    return p


def fill_message(p: Any, m: Message) -> Any:
    if m.type:
        p.type = m.type
    if m.to:
        p.to = m.to
    if m.from_:
        setattr(p, "from", m.from_)
    if m.term:
        p.term = m.term
    if m.log_term:
        p.logTerm = m.log_term
    if m.index:
        p.index = m.index
    if m.entries:
        add = p.entries.add
        for e in m.entries:
            fill_entry(add(), e)
    if m.commit:
        p.commit = m.commit
    if m.vote:
        p.vote = m.vote
    if m.snapshot is not None:
        fill_snapshot(p.snapshot, m.snapshot)
    if m.reject:
        p.reject = True
    if m.reject_hint:
        p.rejectHint = m.reject_hint
    if m.context:
        p.context = m.context
    for r in m.responses:
        fill_message(p.responses.add(), r)
    return p


def fill_hard_state(p: Any, hs: HardState) -> Any:
    if hs.term:
        p.term = hs.term
    if hs.vote:
        p.vote = hs.vote
    if hs.commit:
        p.commit = hs.commit
    return p


def fill_conf_change(p: Any, cc: ConfChange) -> Any:
    if cc.id:
        p.id = cc.id
    p.type = cc.type
    p.node_id = cc.node_id
    if cc.context:
        p.context = cc.context
    return p


def fill_conf_change_single(p: Any, cc: ConfChangeSingle) -> Any:
    p.type = cc.type
    p.node_id = cc.node_id
    return p


def fill_conf_change_v2(p: Any, cc: ConfChangeV2) -> Any:
    p.transition = cc.transition
    for c in cc.changes:
        fill_conf_change_single(p.changes.add(), c)
    if cc.context:
        p.context = cc.context
    return p


_ENTRY_TYPES = tuple(EntryType)
_MESSAGE_TYPES = tuple(MessageType)


def entry_from_pb(p: Any) -> Entry:
    return Entry(p.Term, p.Index, _ENTRY_TYPES[p.Type], p.Data)


def conf_state_from_pb(p: Any) -> ConfState:
    return ConfState(
        list(p.voters),
        list(p.learners),
        list(p.voters_outgoing),
        list(p.learners_next),
        p.auto_leave,
    )


def snapshot_metadata_from_pb(p: Any) -> SnapshotMetadata:
    return SnapshotMetadata(conf_state_from_pb(p.conf_state), p.index, p.term)


def snapshot_from_pb(p: Any) -> Snapshot:
    return Snapshot(p.data, snapshot_metadata_from_pb(p.metadata))


def message_from_pb(p: Any) -> Message:
    return Message(
        _MESSAGE_TYPES[p.type],
        p.to,
        getattr(p, "from"),
        p.term,
        p.logTerm,
        p.index,
        [entry_from_pb(e) for e in p.entries] if p.entries else (),
        p.commit,
        p.vote,
        snapshot_from_pb(p.snapshot) if p.HasField("snapshot") else None,
        p.reject,
        p.rejectHint,
        p.context,
        [message_from_pb(r) for r in p.responses] if p.responses else (),
    )


def hard_state_from_pb(p: Any) -> HardState:
    return HardState(p.term, p.vote, p.commit)


def conf_change_from_pb(p: Any) -> ConfChange:
    return ConfChange(ConfChangeType(p.type), p.node_id, p.context, p.id)


def conf_change_single_from_pb(p: Any) -> ConfChangeSingle:
    return ConfChangeSingle(ConfChangeType(p.type), p.node_id)


def conf_change_v2_from_pb(p: Any) -> ConfChangeV2:
    return ConfChangeV2(
        ConfChangeTransition(p.transition),
        [conf_change_single_from_pb(c) for c in p.changes],
        p.context,
    )


class Kind:
    """Everything the cross-checks need to know about one wire type."""

    def __init__(
        self,
        cls: type,
        pb_name: str,
        enc: Callable[[Any], bytes],
        dec: Callable[[bytes], Any],
        fill: Callable[[Any, Any], Any],
        from_pb: Callable[[Any], Any],
    ) -> None:
        self.cls = cls
        self.pb_name = pb_name
        self.enc = enc
        self.dec = dec
        self.fill = fill
        self.from_pb = from_pb

    def to_pb(self, obj: Any, classes: dict[str, Any] = PB) -> Any:
        return self.fill(classes[self.pb_name](), obj)

    def __repr__(self) -> str:
        return self.pb_name


KINDS = {
    k.pb_name: k
    for k in (
        Kind(Entry, "Entry", encode_entry, decode_entry, fill_entry, entry_from_pb),
        Kind(Message, "Message", encode_message, decode_message, fill_message, message_from_pb),
        Kind(
            HardState,
            "HardState",
            encode_hard_state,
            decode_hard_state,
            fill_hard_state,
            hard_state_from_pb,
        ),
        Kind(
            ConfState,
            "ConfState",
            encode_conf_state,
            decode_conf_state,
            fill_conf_state,
            conf_state_from_pb,
        ),
        Kind(
            SnapshotMetadata,
            "SnapshotMetadata",
            encode_snapshot_metadata,
            decode_snapshot_metadata,
            fill_snapshot_metadata,
            snapshot_metadata_from_pb,
        ),
        Kind(
            Snapshot, "Snapshot", encode_snapshot, decode_snapshot, fill_snapshot, snapshot_from_pb
        ),
        Kind(
            ConfChange,
            "ConfChange",
            encode_conf_change,
            decode_conf_change,
            fill_conf_change,
            conf_change_from_pb,
        ),
        Kind(
            ConfChangeSingle,
            "ConfChangeSingle",
            encode_conf_change_single,
            decode_conf_change_single,
            fill_conf_change_single,
            conf_change_single_from_pb,
        ),
        Kind(
            ConfChangeV2,
            "ConfChangeV2",
            encode_conf_change_v2,
            decode_conf_change_v2,
            fill_conf_change_v2,
            conf_change_v2_from_pb,
        ),
    )
}


# ------------------------------------------------------------------- strategies

_EDGES = [0, 1, 127, 128, 255, 16383, 16384, 2**21 - 1, 2**21, 2**28, 2**35, 2**63, 2**64 - 1]
u64 = st.one_of(st.integers(0, 200), st.integers(0, 2**64 - 1), st.sampled_from(_EDGES))
small_bytes = st.one_of(st.binary(max_size=20), st.binary(min_size=120, max_size=300))
ids = st.lists(u64, max_size=5)


def _seq(strategy: st.SearchStrategy[Any], max_size: int) -> st.SearchStrategy[Sequence[Any]]:
    """A list, or the empty tuple the decoder returns for an empty repeated field."""
    return st.lists(strategy, max_size=max_size).map(lambda xs: xs or ())


entries = st.builds(Entry, u64, u64, st.sampled_from(EntryType), small_bytes)
conf_states = st.builds(ConfState, ids, ids, ids, ids, st.booleans())
snapshot_metadatas = st.builds(SnapshotMetadata, conf_states, u64, u64)
snapshots = st.builds(Snapshot, small_bytes, snapshot_metadatas)
hard_states = st.builds(HardState, u64, u64, u64)
conf_change_singles = st.builds(ConfChangeSingle, st.sampled_from(ConfChangeType), u64)
conf_changes = st.builds(ConfChange, st.sampled_from(ConfChangeType), u64, small_bytes, u64)
conf_change_v2s = st.builds(
    ConfChangeV2,
    st.sampled_from(ConfChangeTransition),
    st.lists(conf_change_singles, max_size=4),
    small_bytes,
)


def _message(responses: st.SearchStrategy[Sequence[Message]]) -> st.SearchStrategy[Message]:
    return st.builds(
        Message,
        st.sampled_from(MessageType),
        u64,
        u64,
        u64,
        u64,
        u64,
        _seq(entries, 4),
        u64,
        u64,
        st.none() | snapshots,
        st.booleans(),
        u64,
        small_bytes,
        responses,
    )


messages: st.SearchStrategy[Message] = st.deferred(
    lambda: _message(st.just(())) | _message(_seq(messages, 2))
)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "Entry": entries,
    "Message": messages,
    "HardState": hard_states,
    "ConfState": conf_states,
    "SnapshotMetadata": snapshot_metadatas,
    "Snapshot": snapshots,
    "ConfChange": conf_changes,
    "ConfChangeSingle": conf_change_singles,
    "ConfChangeV2": conf_change_v2s,
}


def _tagged(name: str) -> st.SearchStrategy[tuple[Kind, Any]]:
    kind = KINDS[name]
    return STRATEGIES[name].map(lambda obj: (kind, obj))


any_object = st.one_of(*(_tagged(name) for name in STRATEGIES))

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------- cross-checks (library)


@_SETTINGS
@given(any_object)
def test_encode_matches_library(ko: tuple[Kind, Any]) -> None:
    kind, obj = ko
    ours = kind.enc(obj)
    assert ours == kind.to_pb(obj).SerializeToString()
    assert encode(obj) == ours


@_SETTINGS
@given(any_object)
def test_round_trip_both_ways(ko: tuple[Kind, Any]) -> None:
    kind, obj = ko
    data = kind.enc(obj)
    assert kind.dec(data) == obj
    assert decode(kind.cls, data) == obj
    assert kind.from_pb(PB[kind.pb_name].FromString(data)) == obj
    lib = kind.to_pb(obj).SerializeToString()
    assert kind.dec(lib) == obj


@st.composite
def entry_runs(draw: st.DrawFn) -> list[Entry]:
    """Entries as raft sends them: consecutive indexes, few terms, repeated sizes.

    Starts near the varint width boundaries so a run crosses them, and mixes in the
    occasional conf-change entry: this exercises the encoder's per-run header caching.
    """
    start = draw(
        st.sampled_from([1, 120, 16380, 2**21 - 3, 2**28 - 3, 2**35 - 3, 2**64 - 40])
    ) + draw(st.integers(0, 3))
    terms = draw(st.lists(st.sampled_from([1, 2, 127, 128, 2**20, 2**40]), min_size=1, max_size=2))
    sizes = draw(
        st.lists(st.sampled_from([0, 1, 100, 127, 128, 2000, 2048, 20000]), min_size=1, max_size=3)
    )
    n = draw(st.integers(1, 30))
    out = []
    for i in range(n):
        typ = (
            draw(st.sampled_from(EntryType))
            if draw(st.integers(0, 9)) == 0
            else EntryType.EntryNormal
        )
        term = terms[min(i * len(terms) // n, len(terms) - 1)]
        out.append(Entry(term, start + i, typ, b"x" * draw(st.sampled_from(sizes))))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry_runs())
def test_entry_runs_match_library(ents: list[Entry]) -> None:
    m = Message(MessageType.MsgApp, to=2, from_=1, entries=ents)
    wire = encode_message(m)
    assert wire == KINDS["Message"].to_pb(m).SerializeToString()
    assert decode_message(wire) == m
    assert sum(entry_size(e) + 1 + varint_size(entry_size(e)) for e in ents) + 6 == len(wire)


@_SETTINGS
@given(conf_states)
def test_decode_packed_repeated(cs: ConfState) -> None:
    packed = KINDS["ConfState"].to_pb(cs, PB_PACKED).SerializeToString()
    if cs.voters:
        assert packed[0] == 0x0A  # really the packed form
    assert decode_conf_state(packed) == cs


@_SETTINGS
@given(snapshots)
def test_decode_packed_nested(s: Snapshot) -> None:
    packed = KINDS["Snapshot"].to_pb(s, PB_PACKED).SerializeToString()
    assert decode_snapshot(packed) == s


@_SETTINGS
@given(st.data())
def test_decode_concatenation_merges_like_library(data: st.DataObject) -> None:
    # Concatenated encodings are a valid encoding of the merged message: scalars take
    # the last value, repeated fields append, singular nested messages merge.
    kind = data.draw(st.sampled_from(list(KINDS.values())))
    parts = data.draw(st.lists(STRATEGIES[kind.pb_name], min_size=2, max_size=3))
    wire = b"".join(kind.enc(p) for p in parts)
    lib = PB[kind.pb_name]()
    lib.MergeFromString(wire)
    assert kind.dec(wire) == kind.from_pb(lib)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


unknown_fields = st.one_of(
    st.tuples(st.integers(15, 2**29 - 1), u64).map(lambda t: _key(t[0], 0) + _varint(t[1])),
    st.tuples(st.integers(15, 2**29 - 1), st.binary(min_size=8, max_size=8)).map(
        lambda t: _key(t[0], 1) + t[1]
    ),
    st.tuples(st.integers(15, 2**29 - 1), st.binary(max_size=10)).map(
        lambda t: _key(t[0], 2) + _varint(len(t[1])) + t[1]
    ),
    st.tuples(st.integers(15, 2**29 - 1), st.binary(min_size=4, max_size=4)).map(
        lambda t: _key(t[0], 5) + t[1]
    ),
    st.tuples(st.integers(15, 2**29 - 1), st.integers(15, 200), u64).map(
        # A group holding a varint and an empty nested group.
        lambda t: (
            _key(t[0], 3)
            + _key(t[1], 0)
            + _varint(t[2])
            + _key(t[1], 3)
            + _key(t[1], 4)
            + _key(t[0], 4)
        )
    ),
)


@_SETTINGS
@given(st.data())
def test_unknown_fields_are_skipped_like_library(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(list(KINDS.values())))
    obj = data.draw(STRATEGIES[kind.pb_name])
    wire = kind.enc(obj)
    junk = data.draw(st.lists(unknown_fields, min_size=1, max_size=3))
    # Unknown fields are inserted between top-level fields of the encoding: splitting
    # the concatenation of single-field encodings is safe, at the start and the end.
    wire = b"".join(junk[:1]) + wire + b"".join(junk[1:])
    assert kind.dec(wire) == obj
    assert kind.from_pb(PB[kind.pb_name].FromString(wire)) == obj


@_SETTINGS
@given(st.data())
def test_fields_in_any_order(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(list(KINDS.values())))
    obj = data.draw(STRATEGIES[kind.pb_name])
    fields = _split_fields(kind.enc(obj))
    shuffled = data.draw(st.permutations(fields))
    wire = b"".join(shuffled)
    lib = PB[kind.pb_name].FromString(wire)
    assert kind.dec(wire) == kind.from_pb(lib)


def _split_fields(wire: bytes) -> list[bytes]:
    """Split a (known-valid) encoding into its top-level fields."""
    out = []
    pos = 0
    while pos < len(wire):
        start = pos
        key, pos = codec._varint(wire, pos, len(wire))
        if key & 7 == 0:
            _, pos = codec._varint(wire, pos, len(wire))
        else:
            assert key & 7 == 2
            n, pos = codec._varint(wire, pos, len(wire))
            pos += n
        out.append(wire[start:pos])
    return out


# ------------------------------------------------------------------ golden bytes


def test_golden_msg_app_with_two_entries() -> None:
    m = Message(
        type=MessageType.MsgApp,
        to=2,
        from_=1,
        term=3,
        log_term=2,
        index=5,
        entries=[Entry(term=3, index=6, data=b"ab"), Entry(term=3, index=7)],
        commit=5,
    )
    golden = bytes.fromhex(
        "0803"  # field 1 (type) varint: (1<<3)|0 = 0x08, MsgApp = 3
        "1002"  # field 2 (to): 0x10, 2
        "1801"  # field 3 (from): 0x18, 1
        "2003"  # field 4 (term): 0x20, 3
        "2802"  # field 5 (logTerm): 0x28, 2
        "3005"  # field 6 (index): 0x30, 5
        # field 7 (entries) length-delimited: (7<<3)|2 = 0x3a. First entry body:
        # Term 10 03, Index 18 06, Data 22 02 'a' 'b' -> 8 bytes; Type 0 omitted.
        "3a08"
        "1003"
        "1806"
        "22026162"
        # Second entry: Term 10 03, Index 18 07 -> 4 bytes, no data.
        "3a04"
        "1003"
        "1807"
        "4005"  # field 8 (commit): 0x40, 5
    )
    assert encode_message(m) == golden
    assert decode_message(golden) == m
    assert PB["Message"].FromString(golden).entries[0].Data == b"ab"


def test_golden_field_order_vote_after_context() -> None:
    # vote is field 13, context 12, snapshot 9: the wire order is by number, not by
    # declaration order in raft.proto (where vote precedes snapshot).
    m = Message(
        type=MessageType.MsgVote,
        vote=7,
        context=b"x",
        snapshot=Snapshot(),
        reject=True,
        reject_hint=300,
    )
    golden = bytes.fromhex(
        "0805"  # type MsgVote = 5
        "4a00"  # field 9 (snapshot): (9<<3)|2 = 0x4a, empty but present
        "5001"  # field 10 (reject): 0x50, true
        "58ac02"  # field 11 (rejectHint): 0x58, 300 = 0b10_0101100 -> ac 02
        "620178"  # field 12 (context): 0x62, len 1, 'x'
        "6807"  # field 13 (vote): 0x68, 7
    )
    assert encode_message(m) == golden
    assert decode_message(golden) == m


def test_golden_hard_state() -> None:
    hs = HardState(term=1, vote=2, commit=2**64 - 1)
    golden = bytes.fromhex(
        "0801"  # term
        "1002"  # vote
        # commit: 64 one-bits = nine bytes of 7 ones with continuation (ff) and a tenth
        # byte holding the last bit (01).
        "18"
        "ffffffffffffffffff01"
    )
    assert encode_hard_state(hs) == golden
    assert decode_hard_state(golden) == hs
    assert encode_hard_state(HardState()) == b""


def test_golden_conf_change_v2() -> None:
    cc = ConfChangeV2(
        transition=ConfChangeTransition.ConfChangeTransitionJointExplicit,
        changes=[
            ConfChangeSingle(ConfChangeType.ConfChangeAddNode, 2),
            ConfChangeSingle(ConfChangeType.ConfChangeAddLearnerNode, 200),
        ],
    )
    golden = bytes.fromhex(
        "0802"  # transition JointExplicit = 2
        # change 1: 12 = (2<<3)|2; body type 08 00 (AddNode, always written), node 10 02
        "1204"
        "0800"
        "1002"
        # change 2: AddLearnerNode = 3; node 200 = 0b1_1001000 -> c8 01
        "1205"
        "0803"
        "10c801"
    )
    assert encode_conf_change_v2(cc) == golden
    assert decode_conf_change_v2(golden) == cc
    # Auto transition and no changes: still the transition field (HARNESS Appendix A).
    assert encode_conf_change_v2(ConfChangeV2()) == bytes.fromhex("0800")


def test_golden_conf_change_v1() -> None:
    # Type and node id always written, id and context only when set.
    assert encode_conf_change(ConfChange(ConfChangeType.ConfChangeAddNode, 2)) == bytes.fromhex(
        "10001802"
    )
    cc = ConfChange(ConfChangeType.ConfChangeRemoveNode, 3, b"ctx", 9)
    golden = bytes.fromhex("0809100118032203637478")
    assert encode_conf_change(cc) == golden
    assert decode_conf_change(golden) == cc


def test_golden_conf_state_and_snapshot() -> None:
    s = Snapshot(
        data=b"d",
        metadata=SnapshotMetadata(
            ConfState(voters=[1, 2], learners_next=[3], auto_leave=True), 10, 4
        ),
    )
    golden = bytes.fromhex(
        "0a0164"  # data
        # metadata (field 2): conf_state 0a 08 {voters 08 01 08 02 (unpacked),
        # learners_next 20 03, auto_leave 28 01}, index 10 0a, term 18 04
        "120e"
        "0a08"
        "0801"
        "0802"
        "2003"
        "2801"
        "100a"
        "1804"
    )
    assert encode_snapshot(s) == golden
    assert decode_snapshot(golden) == s
    # The packed form of the same voters list decodes identically.
    packed_cs = bytes.fromhex("0a02010220032801")
    assert decode_conf_state(packed_cs) == s.metadata.conf_state


def test_decode_fields_present_at_zero() -> None:
    # etcd sets some fields to zero explicitly; reading them back gives the defaults.
    # The entry that replaces a refused conf change: Type 0 present, Term 1, Index 5.
    assert decode_entry(bytes.fromhex("080010011805")) == Entry(1, 5)
    assert entry_size(Entry(1, 5)) == 4  # two bytes less than etcd's (documented)
    # EnsureSnapshot(nil): metadata{conf_state{auto_leave: false}, index: 0, term: 0}.
    wire = bytes.fromhex("12080a02280010001800")
    assert decode_snapshot(wire) == Snapshot()
    assert decode_snapshot(wire).is_empty()
    assert decode_hard_state(bytes.fromhex("080010001800")) == HardState()


def test_message_snapshot_presence() -> None:
    assert encode_message(Message(snapshot=None)) == b""
    assert encode_message(Message(snapshot=Snapshot())) == b"\x4a\x00"
    assert decode_message(b"").snapshot is None
    assert decode_message(b"\x4a\x00").snapshot == Snapshot()


# ---------------------------------------------------------------------- sizes


@given(u64)
@example(0)
@example(2**64 - 1)
def test_varint_size(v: int) -> None:
    assert varint_size(v) == len(_varint(v))


@_SETTINGS
@given(entries)
def test_entry_size(e: Entry) -> None:
    assert entry_size(e) == len(encode_entry(e)) == KINDS["Entry"].to_pb(e).ByteSize()


def test_entry_size_examples() -> None:
    # HARNESS Appendix A: a proposal of 3 bytes at term 1 index 12 is 2+2+5 = 9 bytes;
    # the automatic leave-joint entry (type 2, no data) is 2+2+2 = 6.
    assert entry_size(Entry(term=1, index=12, data=b"foo")) == 9
    assert entry_size(Entry(1, 12, EntryType.EntryConfChangeV2)) == 6
    assert entry_size(Entry()) == 0
    assert entry_size(Entry(term=1, index=1, data=bytes(128))) == 2 + 2 + 1 + 2 + 128


# -------------------------------------------------------------- encode errors


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_encode_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        encode_hard_state(HardState(term=bad))
    with pytest.raises(ValueError):
        encode_message(Message(entries=[Entry(index=bad)]))
    with pytest.raises(ValueError):
        encode_message(Message(to=bad))


def test_generic_dispatch_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        encode(object())  # type: ignore[type-var]
    with pytest.raises(TypeError):
        decode(int, b"")  # type: ignore[type-var]


# -------------------------------------------------------------- decode errors


@pytest.mark.parametrize(
    ("kind", "data", "text"),
    [
        ("Message", b"\x10", "truncated varint at offset 1"),
        ("Message", b"\x10\x80\x80", "truncated varint at offset 1"),
        ("Message", b"\x80", "truncated varint at offset 0"),
        ("HardState", b"\x08" + b"\xff" * 9 + b"\x02", "varint overflows 64 bits at offset 1"),
        ("HardState", b"\x08" + b"\xff" * 10 + b"\x01", "varint overflows 64 bits at offset 1"),
        ("Message", b"\x3a\x05\x10\x01", "length 5 at offset 1 runs past the end"),
        ("Message", b"\x3a\x02\x22\x05\x00", "length 5 at offset 3 runs past the end"),
        ("Entry", b"\x22\x01", "length 1 at offset 1 runs past the end"),
        ("Message", b"\x12\x00", "field Message.to has wire type bytes, want varint at offset 0"),
        ("Message", b"\x38\x00", "field Message.entries has wire type varint, want bytes"),
        ("Entry", b"\x08\x03", "unknown EntryType value 3 at offset 1"),
        ("Message", b"\x08\x18", "unknown MessageType value 24 at offset 1"),
        ("ConfChange", b"\x10\x04", "unknown ConfChangeType value 4 at offset 1"),
        ("ConfChangeV2", b"\x08\x03", "unknown ConfChangeTransition value 3 at offset 1"),
        ("Entry", b"\x08" + b"\xff" * 9 + b"\x01", "unknown EntryType value -1 at offset 1"),
        ("Entry", b"\x00\x00", "invalid field number 0 at offset 0"),
        ("Entry", b"\x7e", "invalid wire type 6 at offset 0"),
        ("Entry", b"\x7f", "invalid wire type 7 at offset 0"),
        ("Entry", b"\x7c", "unexpected end-group (field 15) at offset 0"),
        ("Entry", b"\x7b\x84\x01", "mismatched end-group (field 16) at offset 1"),
        ("Entry", b"\x7b\x78\x00", "unterminated group (field 15) at offset 0"),
        ("Entry", b"\x79\x00", "truncated fixed64 value at offset 1"),
        ("Entry", b"\x7d\x00\x00\x00", "truncated fixed32 value at offset 1"),
        ("ConfState", b"\x0a\x02\x80\x80", "truncated varint at offset 2"),
        ("Snapshot", b"\x12\x02\x0a\x05", "length 5 at offset 3 runs past the end"),
        ("ConfChangeV2", b"\x12\x02\x08\x07", "unknown ConfChangeType value 7 at offset 3"),
        ("Message", b"\x72\x02\x08\x63", "unknown MessageType value 99 at offset 3"),
    ],
)
def test_decode_errors(kind: str, data: bytes, text: str) -> None:
    with pytest.raises(DecodeError) as info:
        KINDS[kind].dec(data)
    assert text in str(info.value)
    assert str(info.value).startswith(f"raftpb: cannot decode {kind}: ")


def test_decode_enum_is_int32() -> None:
    # Enum varints are read as int32: the low 32 bits count (protobuf's rule).
    assert decode_entry(_key(1, 0) + _varint(2**32 + 1)).type == EntryType.EntryConfChange


def test_decode_error_offsets_in_nested_data_are_absolute() -> None:
    good = encode_message(Message(entries=[Entry(1, 1, data=b"abc")]))
    bad = good + b"\x3a\x02\x08\x09"
    with pytest.raises(DecodeError, match=f"at offset {len(good) + 3}"):
        decode_message(bad)


def test_decode_depth_limit() -> None:
    wire = b""
    for _ in range(MAX_DEPTH + 2):
        wire = b"\x72" + _varint(len(wire)) + wire
    with pytest.raises(DecodeError, match="nested deeper than"):
        decode_message(wire)
    wire = b""
    for _ in range(MAX_DEPTH - 1):
        wire = b"\x72" + _varint(len(wire)) + wire
    m = decode_message(wire)
    depth = 0
    while m.responses:
        m = m.responses[0]
        depth += 1
    assert depth == MAX_DEPTH - 1
    groups = b"\x7b" * (MAX_DEPTH + 1) + b"\x7c" * (MAX_DEPTH + 1)
    with pytest.raises(DecodeError, match="groups nested deeper"):
        decode_entry(groups)
    assert decode_entry(b"\x7b" * MAX_DEPTH + b"\x7c" * MAX_DEPTH) == Entry()


def test_decode_accepts_buffers() -> None:
    wire = encode_message(Message(MessageType.MsgApp, entries=[Entry(1, 2, data=b"x")]))
    expect = decode_message(wire)
    assert decode_message(bytearray(wire)) == expect
    assert decode_message(memoryview(wire)) == expect
    assert type(decode_message(bytearray(wire)).entries[0].data) is bytes


def test_decode_non_minimal_keys_and_values() -> None:
    # Over-long (but in-range) varints are valid wire data.
    wire = b"\x90\x00\x82\x80\x00" + b"\xba\x00\x03\x10\x81\x00"
    assert decode_message(wire) == Message(to=2, entries=[Entry(term=1)])
    assert PB["Message"].FromString(wire).to == 2


def test_decode_bool_any_varint() -> None:
    assert decode_message(b"\x50\x02").reject is True
    assert decode_conf_state(b"\x28\x80\x01").auto_leave is True
    assert decode_message(b"\x50\x01\x50\x00").reject is False


# ---------------------------------------------------------------------- fuzzing

_DECODERS = [k.dec for k in KINDS.values()]


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(list(KINDS.values())))
def test_fuzz_arbitrary_bytes(data: bytes, kind: Kind) -> None:
    try:
        obj = kind.dec(data)
    except DecodeError:
        return
    # Whatever we accept, the library accepts too and reads the same object.
    assert kind.from_pb(PB[kind.pb_name].FromString(data)) == obj


def _mutations(wire: bytes) -> st.SearchStrategy[bytes]:
    n = len(wire)
    return st.one_of(
        st.integers(0, n).map(lambda i: wire[:i]),
        st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 255)).map(
            lambda t: wire[: t[0]] + bytes([t[1]]) + wire[t[0] + 1 :]
        ),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=4)).map(
            lambda t: wire[: t[0]] + t[1] + wire[t[0] :]
        ),
    )


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_encodings(data: st.DataObject) -> None:
    kind, obj = data.draw(any_object)
    wire = data.draw(_mutations(kind.enc(obj)))
    try:
        got = kind.dec(wire)
    except DecodeError:
        return
    assert kind.from_pb(PB[kind.pb_name].FromString(wire)) == got
