"""raftkv's replicated state machine: the key-value map, the member table, and the byte
formats of log entries, membership contexts and snapshots.

Everything here is deterministic: every member applies the same committed entries in
the same order and must end in the same state, so an entry is judged (applied,
refused, ignored) only from its bytes and the state before it, never from local facts
such as the clock, this node's id or its role.

Entry payloads (normal entries)
===============================

::

    version u8 (=1) | op u8 | request id (16 bytes) | op-specific body

* ``PUT``     (op 1): key length u32 | key (UTF-8) | value (the rest, raw bytes)
* ``DELETE``  (op 2): key length u32 | key (UTF-8)
* ``PUBLISH`` (op 3): member id u64 | HTTP address (the rest, UTF-8)

The request id is random; only the member that proposed an entry waits for it, and it
matches the applied entry back to its HTTP request by that id. Empty payloads are
raft's own (a new leader's empty entry, a refused conf change) and are skipped.

Membership context
==================

Conf-change entries carry a JSON object in their context: ``peer_address`` and
``http_address`` of a member being added, the proposer's ``request_id`` (hex), and the
membership ``epoch`` the proposer checked the request against (the index of the last
applied conf change). A change whose epoch is no longer current is refused: the
membership changed in between, so the request may no longer make sense. This makes
concurrent membership requests safe, and lets a proposer re-propose a change raft
dropped without risk of applying it twice. The founding members' entries carry just
their peer address, built from ``--cluster`` identically on every founding member
(the entries must be byte-identical everywhere).

Snapshot
========

::

    "RKVS" | version u8 (=1) | membership epoch u64 | member count u32 | members
           | key count u64 | items | crc32 u32

member: id u64 | learner u8 | len u16 | peer address | len u16 | HTTP address;
item: key length u32 | key | mod index u64 | value length u32 | value. The CRC-32 covers
everything before it.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Final

from raftcore.raftpb.types import ConfChange, ConfChangeType
from raftkv.cluster import Address, format_address, parse_address, parse_member_id

__all__ = [
    "ENTRY_VERSION",
    "MAX_KEY_BYTES",
    "OP_DELETE",
    "OP_PUBLISH",
    "OP_PUT",
    "REQUEST_ID_SIZE",
    "SNAPSHOT_MAGIC",
    "ApplyResult",
    "Command",
    "CommandDecodeError",
    "ConfChangeContext",
    "Delete",
    "Item",
    "KVStore",
    "Member",
    "Publish",
    "Put",
    "SnapshotDecodeError",
    "check_key",
    "decode_command",
    "decode_snapshot",
    "encode_command",
    "member_context",
    "parse_member_json",
]

ENTRY_VERSION: Final = 1
OP_PUT: Final = 1
OP_DELETE: Final = 2
OP_PUBLISH: Final = 3
REQUEST_ID_SIZE: Final = 16
#: Longest key, in UTF-8 bytes.
MAX_KEY_BYTES: Final = 4096

SNAPSHOT_MAGIC: Final = b"RKVS"
SNAPSHOT_VERSION: Final = 1

_HEAD: Final = struct.Struct(">BB16s")
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_SNAP_HEAD: Final = struct.Struct(">4sBQI")
_MEMBER_HEAD: Final = struct.Struct(">QB")
_U16: Final = struct.Struct(">H")
_ITEM_MID: Final = struct.Struct(">QI")


class CommandDecodeError(ValueError):
    """A normal entry's payload is not a raftkv command."""


class SnapshotDecodeError(ValueError):
    """Snapshot data is not a valid raftkv snapshot (damaged, truncated, foreign)."""


def check_key(key: str) -> bytes:
    """The UTF-8 bytes of ``key``, or ValueError with a reason it cannot be a key."""
    if not key:
        raise ValueError("key must not be empty")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("key is not valid UTF-8") from None
    if len(raw) > MAX_KEY_BYTES:
        raise ValueError(f"key is {len(raw)} bytes long; the limit is {MAX_KEY_BYTES}")
    return raw


# ------------------------------------------------------------------------- commands


@dataclass(slots=True, frozen=True)
class Put:
    request_id: bytes
    key: str
    value: bytes


@dataclass(slots=True, frozen=True)
class Delete:
    request_id: bytes
    key: str


@dataclass(slots=True, frozen=True)
class Publish:
    """A member announces the HTTP address it serves clients on."""

    request_id: bytes
    member_id: int
    http_address: str


Command = Put | Delete | Publish


def encode_command(cmd: Command) -> bytes:
    """The entry payload for ``cmd`` (see the module docs for the layout)."""
    if isinstance(cmd, Put):
        key = check_key(cmd.key)
        return b"".join(
            (_HEAD.pack(ENTRY_VERSION, OP_PUT, cmd.request_id), _U32.pack(len(key)), key, cmd.value)
        )
    if isinstance(cmd, Delete):
        key = check_key(cmd.key)
        return b"".join(
            (_HEAD.pack(ENTRY_VERSION, OP_DELETE, cmd.request_id), _U32.pack(len(key)), key)
        )
    return b"".join(
        (
            _HEAD.pack(ENTRY_VERSION, OP_PUBLISH, cmd.request_id),
            _U64.pack(cmd.member_id),
            cmd.http_address.encode("utf-8"),
        )
    )


def decode_command(data: bytes) -> Command:
    """Parse an entry payload; :class:`CommandDecodeError` if it is not a command."""
    if len(data) < _HEAD.size:
        raise CommandDecodeError(f"entry of {len(data)} bytes is too short for a command")
    version, op, req = _HEAD.unpack_from(data)
    if version != ENTRY_VERSION:
        raise CommandDecodeError(f"unknown command version {version}")
    pos = _HEAD.size
    if op == OP_PUBLISH:
        if len(data) < pos + _U64.size:
            raise CommandDecodeError("truncated publish command")
        (mid,) = _U64.unpack_from(data, pos)
        try:
            http = data[pos + _U64.size :].decode("utf-8")
        except UnicodeDecodeError:
            raise CommandDecodeError("publish command address is not UTF-8") from None
        return Publish(req, mid, http)
    if op not in (OP_PUT, OP_DELETE):
        raise CommandDecodeError(f"unknown command op {op}")
    if len(data) < pos + _U32.size:
        raise CommandDecodeError("truncated command")
    (klen,) = _U32.unpack_from(data, pos)
    pos += _U32.size
    if klen == 0 or klen > MAX_KEY_BYTES or len(data) < pos + klen:
        raise CommandDecodeError("bad key length in command")
    try:
        key = data[pos : pos + klen].decode("utf-8")
    except UnicodeDecodeError:
        raise CommandDecodeError("command key is not UTF-8") from None
    pos += klen
    if op == OP_PUT:
        return Put(req, key, data[pos:])
    if pos != len(data):
        raise CommandDecodeError("trailing bytes after a delete command")
    return Delete(req, key)


# ------------------------------------------------------------------------ membership


@dataclass(slots=True)
class Member:
    """One member of the cluster as the state machine records it."""

    id: int
    peer_address: str
    http_address: str = ""
    learner: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "peer_address": self.peer_address,
            "http_address": self.http_address,
            "learner": self.learner,
        }

    @property
    def peer(self) -> Address:
        return parse_address(self.peer_address)


@dataclass(slots=True, frozen=True)
class ConfChangeContext:
    """What a conf-change entry's context says (all fields optional)."""

    peer_address: str = ""
    http_address: str = ""
    request_id: bytes = b""
    #: The membership epoch the request was checked against; None: no check.
    epoch: int | None = None

    def encode(self) -> bytes:
        obj: dict[str, str | int] = {}
        if self.peer_address:
            obj["peer_address"] = self.peer_address
        if self.http_address:
            obj["http_address"] = self.http_address
        if self.request_id:
            obj["request_id"] = self.request_id.hex()
        if self.epoch is not None:
            obj["epoch"] = self.epoch
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> ConfChangeContext | None:
        """The context, or ``None`` if the bytes are not one (never raises)."""
        if not data:
            return ConfChangeContext()
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(obj, dict):
            return None
        peer = obj.get("peer_address", "")
        http = obj.get("http_address", "")
        req = obj.get("request_id", "")
        epoch = obj.get("epoch")
        if not isinstance(peer, str) or not isinstance(http, str) or not isinstance(req, str):
            return None
        if epoch is not None and (type(epoch) is not int or epoch < 0):
            return None
        try:
            req_b = bytes.fromhex(req)
        except ValueError:
            return None
        return ConfChangeContext(peer, http, req_b, epoch)


@dataclass(slots=True, frozen=True)
class ApplyResult:
    """What applying one entry did, for the member waiting on its request id."""

    index: int
    #: For a delete: whether the key existed. For a put: always true.
    found: bool = True
    #: Set when the entry was refused (a conf change that does not fit the membership).
    error: str = ""


@dataclass(slots=True)
class Item:
    value: bytes
    #: The log index of the entry that last wrote the key.
    mod_index: int


class KVStore:
    """The replicated state: keys → values, and the member table.

    Not thread-safe; the server applies entries and serves reads on its event loop.
    """

    __slots__ = ("conf_epoch", "data", "members")

    def __init__(self) -> None:
        self.data: dict[str, Item] = {}
        self.members: dict[int, Member] = {}
        #: Index of the last applied membership change (0: none yet).
        self.conf_epoch = 0

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: str) -> Item | None:
        return self.data.get(key)

    # ------------------------------------------------------------------ normal entries

    def apply(self, cmd: Command, index: int) -> ApplyResult:
        """Apply one decoded command committed at ``index``."""
        if isinstance(cmd, Put):
            self.data[cmd.key] = Item(cmd.value, index)
            return ApplyResult(index)
        if isinstance(cmd, Delete):
            return ApplyResult(index, found=self.data.pop(cmd.key, None) is not None)
        m = self.members.get(cmd.member_id)
        if m is None:
            return ApplyResult(index, found=False, error=f"member {cmd.member_id} is not a member")
        m.http_address = cmd.http_address
        return ApplyResult(index)

    # -------------------------------------------------------------------- conf changes

    def voters(self) -> list[int]:
        return sorted(i for i, m in self.members.items() if not m.learner)

    def check_conf_change(self, cc: ConfChange, ctx: ConfChangeContext | None) -> str:
        """Why ``cc`` cannot be applied to the current membership ("" if it can).

        Refused changes are skipped identically on every member, so raft's
        configuration and the member table stay in step. This also keeps raft from
        panicking on a change such as removing the last voter.
        """
        nid = cc.node_id
        m = self.members.get(nid)
        t = cc.type
        if nid == 0:
            return "conf change names no member"
        if ctx is not None and ctx.epoch is not None and ctx.epoch != self.conf_epoch:
            return (
                "the membership changed while the request was pending (it was checked "
                f"against the membership as of index {ctx.epoch}, now {self.conf_epoch}); "
                "check GET /members and retry"
            )
        if t == ConfChangeType.ConfChangeAddNode:
            if m is not None:
                return "" if m.learner else f"member {nid} is already a voter"
            return _check_new_member_context(nid, ctx)
        if t == ConfChangeType.ConfChangeAddLearnerNode:
            if m is not None:
                kind = "learner" if m.learner else "voter"
                return f"member {nid} is already a {kind}"
            return _check_new_member_context(nid, ctx)
        if t == ConfChangeType.ConfChangeRemoveNode:
            if m is None:
                return f"member {nid} is not a member"
            if not m.learner and self.voters() == [nid]:
                return f"member {nid} is the last voter; it cannot be removed"
            return ""
        return f"unsupported conf change type {t.name}"

    def apply_conf_change(self, cc: ConfChange, ctx: ConfChangeContext | None, index: int) -> None:
        """Record ``cc``, committed at ``index``, in the member table; call only after
        :meth:`check_conf_change` found nothing wrong."""
        self.conf_epoch = index
        nid = cc.node_id
        t = cc.type
        if t == ConfChangeType.ConfChangeRemoveNode:
            self.members.pop(nid, None)
            return
        m = self.members.get(nid)
        if m is not None:  # promotion of a learner
            m.learner = False
            return
        assert ctx is not None
        self.members[nid] = Member(
            nid,
            ctx.peer_address,
            ctx.http_address,
            learner=t == ConfChangeType.ConfChangeAddLearnerNode,
        )

    # ----------------------------------------------------------------------- snapshots

    def encode_snapshot(self) -> bytes:
        """The whole state as snapshot data."""
        parts: list[bytes] = [
            _SNAP_HEAD.pack(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, self.conf_epoch, len(self.members))
        ]
        for mid in sorted(self.members):
            m = self.members[mid]
            peer = m.peer_address.encode("utf-8")
            http = m.http_address.encode("utf-8")
            parts += (
                _MEMBER_HEAD.pack(mid, 1 if m.learner else 0),
                _U16.pack(len(peer)),
                peer,
                _U16.pack(len(http)),
                http,
            )
        parts.append(_U64.pack(len(self.data)))
        u32 = _U32.pack
        mid_pack = _ITEM_MID.pack
        for key, item in self.data.items():
            k = key.encode("utf-8")
            parts += (u32(len(k)), k, mid_pack(item.mod_index, len(item.value)), item.value)
        body = b"".join(parts)
        return body + _U32.pack(zlib.crc32(body))

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the snapshot ``data`` (all or nothing)."""
        epoch, members, items = decode_snapshot(data)
        self.conf_epoch = epoch
        self.members = members
        self.data = items


def decode_snapshot(data: bytes) -> tuple[int, dict[int, Member], dict[str, Item]]:
    """Parse snapshot data into (membership epoch, members, items);
    :class:`SnapshotDecodeError` on anything malformed."""
    view = memoryview(data)
    if len(data) < _SNAP_HEAD.size + _U64.size + _U32.size:
        raise SnapshotDecodeError(f"snapshot of {len(data)} bytes is too short")
    (crc,) = _U32.unpack_from(data, len(data) - _U32.size)
    end = len(data) - _U32.size
    if zlib.crc32(view[:end]) != crc:
        raise SnapshotDecodeError("snapshot checksum mismatch")
    magic, version, epoch, nmembers = _SNAP_HEAD.unpack_from(data)
    if magic != SNAPSHOT_MAGIC:
        raise SnapshotDecodeError("not a raftkv snapshot (bad magic)")
    if version != SNAPSHOT_VERSION:
        raise SnapshotDecodeError(f"unsupported snapshot version {version}")
    pos = _SNAP_HEAD.size

    def need(n: int) -> None:
        if pos + n > end:
            raise SnapshotDecodeError(f"snapshot truncated at byte {pos}")

    def text(raw: memoryview) -> str:
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise SnapshotDecodeError(f"invalid UTF-8 in snapshot near byte {pos}") from None

    members: dict[int, Member] = {}
    for _ in range(nmembers):
        need(_MEMBER_HEAD.size + _U16.size)
        mid, learner = _MEMBER_HEAD.unpack_from(data, pos)
        pos += _MEMBER_HEAD.size
        (plen,) = _U16.unpack_from(data, pos)
        pos += _U16.size
        need(plen + _U16.size)
        peer = text(view[pos : pos + plen])
        pos += plen
        (hlen,) = _U16.unpack_from(data, pos)
        pos += _U16.size
        need(hlen)
        http = text(view[pos : pos + hlen])
        pos += hlen
        if mid == 0 or mid in members or learner > 1:
            raise SnapshotDecodeError(f"bad member record for id {mid}")
        members[mid] = Member(mid, peer, http, bool(learner))
    need(_U64.size)
    (nitems,) = _U64.unpack_from(data, pos)
    pos += _U64.size
    items: dict[str, Item] = {}
    u32_from = _U32.unpack_from
    mid_from = _ITEM_MID.unpack_from
    for _ in range(nitems):
        need(_U32.size)
        (klen,) = u32_from(data, pos)
        pos += _U32.size
        need(klen + _ITEM_MID.size)
        key = text(view[pos : pos + klen])
        pos += klen
        mod_index, vlen = mid_from(data, pos)
        pos += _ITEM_MID.size
        need(vlen)
        items[key] = Item(bytes(view[pos : pos + vlen]), mod_index)
        pos += vlen
    if pos != end:
        raise SnapshotDecodeError(f"{end - pos} unexpected bytes at the end of the snapshot")
    return epoch, members, items


def _check_new_member_context(nid: int, ctx: ConfChangeContext | None) -> str:
    if ctx is None:
        return f"conf change adding member {nid} has an unreadable context"
    try:
        parse_address(ctx.peer_address)
    except ValueError as err:
        return f"conf change adding member {nid}: {err}"
    return ""


def member_context(peer: Address) -> ConfChangeContext:
    """The context of a founding member's bootstrap entry (no request, no epoch)."""
    return ConfChangeContext(format_address(peer))


def parse_member_json(obj: object) -> tuple[int, Address, str, bool]:
    """``POST /members`` body → (id, peer address, HTTP address text, learner).

    Raises ValueError with a message for the client.
    """
    if not isinstance(obj, dict):
        raise ValueError("request body must be a JSON object")
    allowed = {"id", "peer_address", "peer_url", "http_address", "http_url", "learner"}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    if "id" not in obj:
        raise ValueError("missing field: id")
    mid = parse_member_id(obj["id"], what="id")
    if "peer_address" in obj and "peer_url" in obj:
        raise ValueError("give either peer_address or peer_url, not both")
    peer_raw = obj.get("peer_address", obj.get("peer_url"))
    if peer_raw is None:
        raise ValueError("missing field: peer_address")
    peer = parse_address(peer_raw, what="peer_address")
    if "http_address" in obj and "http_url" in obj:
        raise ValueError("give either http_address or http_url, not both")
    http_raw = obj.get("http_address", obj.get("http_url"))
    http = ""
    if http_raw is not None and http_raw != "":
        http = format_address(parse_address(http_raw, what="http_address"))
    learner = obj.get("learner", False)
    if not isinstance(learner, bool):
        raise ValueError("learner must be true or false")
    return mid, peer, http, learner
