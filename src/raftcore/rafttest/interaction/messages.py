"""The simulated network: delivering, dropping and injecting messages (HARNESS §2.5.8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raftcore.describe import describe_message
from raftcore.raftpb.types import Message, MessageType
from raftcore.rafttest.datadriven import HarnessError, TestData, parse_uint
from raftcore.rafttest.interaction.env import InteractionEnv, node_idxs, returned_error
from raftcore.util import is_local_msg_target

__all__ = [
    "Recipient",
    "deliver_msgs",
    "handle_deliver_msgs",
    "handle_send_snapshot",
    "send_snapshot",
    "split_msgs",
]


@dataclass(slots=True, frozen=True)
class Recipient:
    id: int
    drop: bool = False


def _is_local(m: Message) -> bool:
    """Messages that need reliable delivery and are never dropped: to self, or to/from
    a storage thread."""
    return m.from_ == m.to or is_local_msg_target(m.from_) or is_local_msg_target(m.to)


def split_msgs(
    msgs: Sequence[Message], to: int, typ: MessageType | None, drop: bool
) -> tuple[list[Message], list[Message]]:
    """Split ``msgs`` into those for ``to`` (of type ``typ``, any if None) and the rest.

    When dropping, local messages are never selected. Neither list is reordered.
    """
    selected: list[Message] = []
    rest: list[Message] = []
    for m in msgs:
        if m.to == to and not (drop and _is_local(m)) and (typ is None or m.type == typ):
            selected.append(m)
        else:
            rest.append(m)
    return selected, rest


def deliver_msgs(env: InteractionEnv, typ: MessageType | None, rs: Sequence[Recipient]) -> int:
    """Deliver (or drop) the queued messages for each recipient in turn.

    Each message is printed before it is stepped, so the recipient's log lines follow
    it; a step error is printed after them. Returns how many messages were handled.
    """
    out = env.output
    handled = 0
    for r in rs:
        msgs, env.messages = split_msgs(env.messages, r.id, typ, r.drop)
        handled += len(msgs)
        for m in msgs:
            if r.drop:
                # Dropping is allowed for ids that have no node yet.
                out.write("dropped: ")
                out.write(describe_message(m) + "\n")
                continue
            out.write(describe_message(m) + "\n")
            rn = env.node(m.to - 1).raw_node
            try:
                rn.step(m)
            except Exception as exc:
                text = returned_error(exc)
                if text is None:
                    raise
                out.write(text + "\n")
    return handled


def handle_deliver_msgs(env: InteractionEnv, d: TestData) -> None:
    typ: MessageType | None = None
    rs: list[Recipient] = []
    for arg in d.cmd_args:
        if not arg.vals:
            rs.append(Recipient(parse_uint(arg.key, d.pos)))
        for val in arg.vals:
            if arg.key == "drop":
                rid = parse_uint(val, d.pos)
                if any(r.id == rid for r in rs):
                    raise HarnessError(f"{d.pos}: can't both deliver and drop msgs to {rid}")
                rs.append(Recipient(rid, drop=True))
            elif arg.key == "type":
                t = MessageType.__members__.get(val)
                if t is None:
                    raise HarnessError(f"{d.pos}: unknown message type {val}")
                typ = t
    if deliver_msgs(env, typ, rs) == 0:
        env.output.write("no messages\n")


def send_snapshot(env: InteractionEnv, from_idx: int, to_idx: int) -> None:
    """Queue a MsgSnap carrying the sender's latest applied-state snapshot.

    Only the network sees it: the sender's progress tracking is not touched.
    """
    sender = env.node(from_idx)
    snap = sender.storage.snapshot()
    msg = Message(
        type=MessageType.MsgSnap,
        term=sender.raw_node.raft.term,
        from_=from_idx + 1,
        to=to_idx + 1,
        snapshot=snap,
    )
    env.messages.append(msg)
    env.output.write(describe_message(msg))


def handle_send_snapshot(env: InteractionEnv, d: TestData) -> None:
    idxs = node_idxs(d)
    if len(idxs) != 2:
        raise HarnessError(f"{d.pos}: send-snapshot needs exactly two node ids, got {len(idxs)}")
    send_snapshot(env, idxs[0], idxs[1])
