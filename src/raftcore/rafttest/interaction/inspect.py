"""Commands that show or adjust state: raft-log, raft-state, status, compact, log-level."""

from __future__ import annotations

from raftcore.describe import describe_entries
from raftcore.raft import StateType
from raftcore.rafttest.datadriven import HarnessError, TestData
from raftcore.rafttest.interaction.env import (
    CommandError,
    InteractionEnv,
    first_as_node_idx,
    parse_uint_go,
)
from raftcore.rafttest.interaction.logger import level_from_name
from raftcore.rafttest.interaction.stabilize import LOG_LEVELS_ERROR
from raftcore.util import NO_LIMIT

__all__ = [
    "handle_compact",
    "handle_log_level",
    "handle_raft_log",
    "handle_raft_state",
    "handle_status",
    "raft_log",
]


def raft_log(env: InteractionEnv, idx: int) -> None:
    """Print the entries in the node's storage (not the unstable tail of its log)."""
    s = env.node(idx).storage
    fi = s.first_index()
    li = s.last_index()
    if li < fi:
        env.output.write(f"log is empty: first index={fi}, last index={li}")
        return
    env.output.write(describe_entries(s.entries(fi, li + 1, NO_LIMIT)))


def handle_raft_log(env: InteractionEnv, d: TestData) -> None:
    raft_log(env, first_as_node_idx(d))


def handle_compact(env: InteractionEnv, d: TestData) -> None:
    idx = first_as_node_idx(d)
    if len(d.cmd_args) < 2:
        raise HarnessError(f"{d.pos}: compact needs a node id and an index")
    new_first_index = parse_uint_go(d.cmd_args[1].key)
    env.node(idx).storage.compact(new_first_index)
    raft_log(env, idx)


def handle_raft_state(env: InteractionEnv, d: TestData) -> None:
    """One line per node, each from that node's own point of view (ids in decimal)."""
    out = env.output
    for n in env.nodes:
        r = n.raw_node.raft
        voter = "(Voter)" if r.id in r.trk.config.voters.ids() else "(Non-Voter)"
        out.write(f"{r.id}: {r.state.name} {voter} Term:{r.term} Lead:{r.lead}\n")


def handle_status(env: InteractionEnv, d: TestData) -> None:
    """The node's progress map; only a leader tracks progress, others print nothing."""
    r = env.node(first_as_node_idx(d)).raw_node.raft
    if r.state == StateType.StateLeader:
        env.output.write(str(r.trk.progress))


def handle_log_level(env: InteractionEnv, d: TestData) -> None:
    if not d.cmd_args:
        raise HarnessError(f"{d.pos}: log-level needs a level")
    lvl = level_from_name(d.cmd_args[0].key)
    if lvl is None:
        raise CommandError(LOG_LEVELS_ERROR)
    env.output.lvl = lvl
