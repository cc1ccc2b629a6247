"""Ready handling and the storage "threads" of a node (HARNESS §2.5.2 to §2.5.7).

In sync mode ``process-ready`` persists and applies what a Ready hands out and then
advances the node. In async-storage-writes mode the Ready only carries MsgStorageAppend
and MsgStorageApply messages, which queue up on the node and are worked off, one per
call, by ``process-append-thread`` and ``process-apply-thread``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from raftcore.describe import describe_message, describe_ready
from raftcore.raftpb.codec import decode_conf_change, decode_conf_change_v2
from raftcore.raftpb.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.rafttest.datadriven import HarnessError, TestData
from raftcore.rafttest.interaction.env import CommandError, InteractionEnv, Node, node_idxs
from raftcore.util import is_local_msg_target

__all__ = [
    "handle_process_append_thread",
    "handle_process_apply_thread",
    "handle_process_ready",
    "process_append",
    "process_append_thread",
    "process_apply",
    "process_apply_thread",
    "process_ready",
]


def process_append(
    n: Node, hs: HardState | None, ents: Sequence[Entry], snap: Snapshot | None
) -> None:
    """Persist a hard state, entries or a snapshot to the node's MemoryStorage."""
    s = n.storage
    if hs is not None and not (hs.term == 0 and hs.vote == 0 and hs.commit == 0):
        s.set_hard_state(hs)
    if snap is not None and snap.metadata.index != 0:
        if ents:
            raise CommandError("can't apply snapshot and entries at the same time")
        s.apply_snapshot(snap)
        return
    s.append(ents)


def process_apply(n: Node, ents: Sequence[Entry]) -> None:
    """Apply committed entries: conf changes go to the RawNode, and every entry extends
    the node's history with the state machine after it (an "appender" of entry data).
    """
    history = n.history
    rn = n.raw_node
    for e in ents:
        cs: ConfState | None = None
        if e.type == EntryType.EntryConfChange:
            cc = decode_conf_change(e.data)
            update = cc.context
            cs = rn.apply_conf_change(cc)
        elif e.type == EntryType.EntryConfChangeV2:
            cc2 = decode_conf_change_v2(e.data)
            cs = rn.apply_conf_change(cc2)
            update = cc2.context
        else:
            update = e.data
        last = history[-1]
        if cs is None:
            cs = last.metadata.conf_state
        history.append(
            Snapshot(
                data=last.data + update,
                metadata=SnapshotMetadata(conf_state=cs, index=e.index, term=e.term),
            )
        )


def process_ready(env: InteractionEnv, idx: int) -> None:
    """Handle one Ready of node ``idx``: print it, persist/apply (sync), route messages."""
    n = env.node(idx)
    rn = n.raw_node
    rd = rn.ready()
    env.output.write(describe_ready(rd))
    sync = not n.config.async_storage_writes
    if sync:
        process_append(n, rd.hard_state, rd.entries, rd.snapshot)
        process_apply(n, rd.committed_entries)
    messages = env.messages
    for m in rd.messages:
        if is_local_msg_target(m.to):
            if sync:
                raise HarnessError("unexpected local msg target")
            if m.type == MessageType.MsgStorageAppend:
                n.append_work.append(m)
            elif m.type == MessageType.MsgStorageApply:
                n.apply_work.append(m)
            else:
                raise HarnessError(f"unexpected message type {m.type.name}")
        else:
            messages.append(m)
    if sync:
        rn.advance(rd)


def process_append_thread(env: InteractionEnv, idx: int) -> None:
    """Work off one MsgStorageAppend of node ``idx`` and queue its responses."""
    n = env.node(idx)
    out = env.output
    if not n.append_work:
        out.write("no append work to perform")
        return
    m = n.append_work.popleft()
    resps = m.responses
    m.responses = ()
    out.write("Processing:\n")
    out.write(describe_message(m) + "\n")
    # The hard state travels in the message's own fields; all zero means unchanged.
    process_append(n, HardState(term=m.term, vote=m.vote, commit=m.commit), m.entries, m.snapshot)
    _respond(env, resps)


def process_apply_thread(env: InteractionEnv, idx: int) -> None:
    """Work off one MsgStorageApply of node ``idx`` and queue its responses."""
    n = env.node(idx)
    out = env.output
    if not n.apply_work:
        out.write("no apply work to perform")
        return
    m = n.apply_work.popleft()
    resps = m.responses
    m.responses = ()
    out.write("Processing:\n")
    out.write(describe_message(m) + "\n")
    process_apply(n, m.entries)
    _respond(env, resps)


def _respond(env: InteractionEnv, resps: Sequence[Message]) -> None:
    out = env.output
    out.write("Responses:\n")
    for r in resps:
        out.write(describe_message(r) + "\n")
    env.messages.extend(resps)


def _for_each_node(
    env: InteractionEnv, d: TestData, header: str, f: Callable[[InteractionEnv, int], None]
) -> None:
    """Run ``f`` per listed node; with more than one, under a header and indented."""
    idxs = node_idxs(d)
    if len(idxs) == 1:
        f(env, idxs[0])
        return
    for idx in idxs:
        env.output.write(f"> {idx + 1} {header}\n")
        env.with_indent(partial(f, env, idx))


def handle_process_ready(env: InteractionEnv, d: TestData) -> None:
    _for_each_node(env, d, "handling Ready", process_ready)


def handle_process_append_thread(env: InteractionEnv, d: TestData) -> None:
    _for_each_node(env, d, "processing append thread", process_append_thread)


def handle_process_apply_thread(env: InteractionEnv, d: TestData) -> None:
    _for_each_node(env, d, "processing apply thread", process_apply_thread)
