"""``stabilize``: run Ready handling, delivery and storage work to a fixed point (§2.7)."""

from __future__ import annotations

from functools import partial

from raftcore.rafttest.datadriven import TestData
from raftcore.rafttest.interaction.env import (
    CommandError,
    InteractionEnv,
    Node,
    node_idxs,
    returned_error,
)
from raftcore.rafttest.interaction.logger import LEVEL_NAMES, level_from_name
from raftcore.rafttest.interaction.messages import Recipient, deliver_msgs
from raftcore.rafttest.interaction.ready import (
    process_append_thread,
    process_apply_thread,
    process_ready,
)

__all__ = ["LOG_LEVELS_ERROR", "handle_stabilize", "stabilize"]

LOG_LEVELS_ERROR = "log levels must be either of [" + " ".join(LEVEL_NAMES) + "]"


def handle_stabilize(env: InteractionEnv, d: TestData) -> None:
    idxs = node_idxs(d)  # key=value arguments are skipped
    out = env.output
    old = out.lvl
    try:
        for arg in d.cmd_args:
            if arg.key == "log-level":
                # Only for the duration of the command; restored below, even on error,
                # and before the dispatcher decides whether output is muted.
                for val in arg.vals:
                    lvl = level_from_name(val)
                    if lvl is None:
                        raise CommandError(LOG_LEVELS_ERROR)
                    out.lvl = lvl
        stabilize(env, idxs)
    finally:
        out.lvl = old


def _apply_all(env: InteractionEnv, node: Node) -> None:
    """Work off one apply item; errors are ignored here, as upstream does."""
    try:
        process_apply_thread(env, node.id - 1)
    except Exception as exc:
        if returned_error(exc) is None:
            raise


def stabilize(env: InteractionEnv, idxs: list[int]) -> None:
    """Repeat rounds of the four phases over the chosen nodes until a round does nothing.

    Deliveries in one round cannot feed each other: stepped messages wait inside the
    RawNode until the next round's Ready handling.
    """
    nodes = [env.node(i) for i in idxs] if idxs else list(env.nodes)
    out = env.output
    while True:
        done = True
        for n in nodes:
            if n.raw_node.has_ready():
                idx = n.id - 1
                out.write(f"> {idx + 1} handling Ready\n")
                env.with_indent(partial(process_ready, env, idx))
                done = False
        for n in nodes:
            nid = n.id
            if any(m.to == nid for m in env.messages):
                out.write(f"> {nid} receiving messages\n")
                env.with_indent(partial(deliver_msgs, env, None, (Recipient(nid),)))
                done = False
        for n in nodes:
            if n.append_work:
                idx = n.id - 1
                out.write(f"> {idx + 1} processing append thread\n")
                while n.append_work:
                    env.with_indent(partial(process_append_thread, env, idx))
                done = False
        for n in nodes:
            if n.apply_work:
                out.write(f"> {n.id} processing apply thread\n")
                while n.apply_work:
                    env.with_indent(partial(_apply_all, env, n))
                done = False
        if done:
            return
