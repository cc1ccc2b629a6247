"""Dispatch of one directive and what its output becomes (HARNESS §2.3)."""

from __future__ import annotations

from collections.abc import Callable

from raftcore.rafttest.datadriven import TestData
from raftcore.rafttest.interaction import inspect, messages, nodes, ready, stabilize
from raftcore.rafttest.interaction.env import InteractionEnv, returned_error

__all__ = ["COMMANDS", "handle"]

CommandHandler = Callable[[InteractionEnv, TestData], None]


def _breakpoint(env: InteractionEnv, d: TestData) -> None:
    """A no-op to hang a debugger breakpoint on while reading a long script."""


COMMANDS: dict[str, CommandHandler] = {
    "_breakpoint": _breakpoint,
    "add-nodes": nodes.handle_add_nodes,
    "campaign": nodes.handle_campaign,
    "compact": inspect.handle_compact,
    "deliver-msgs": messages.handle_deliver_msgs,
    "process-ready": ready.handle_process_ready,
    "process-append-thread": ready.handle_process_append_thread,
    "process-apply-thread": ready.handle_process_apply_thread,
    "log-level": inspect.handle_log_level,
    "raft-log": inspect.handle_raft_log,
    "raft-state": inspect.handle_raft_state,
    "set-randomized-election-timeout": nodes.handle_set_randomized_election_timeout,
    "stabilize": stabilize.handle_stabilize,
    "status": inspect.handle_status,
    "tick-election": nodes.handle_tick_election,
    "tick-heartbeat": nodes.handle_tick_heartbeat,
    "transfer-leadership": nodes.handle_transfer_leadership,
    "forget-leader": nodes.handle_forget_leader,
    "send-snapshot": messages.handle_send_snapshot,
    "propose": nodes.handle_propose,
    "propose-conf-change": nodes.handle_propose_conf_change,
    "report-unreachable": nodes.handle_report_unreachable,
}


def handle(env: InteractionEnv, d: TestData) -> str:
    """Run one directive against ``env`` and return its output text.

    A returned error ends the output (without a line feed of its own); under log level
    NONE it is the whole output. Nothing written at all reads ``ok``.
    """
    out = env.output
    out.reset()
    err: str | None = None
    fn = COMMANDS.get(d.cmd)
    if fn is None:
        err = "unknown command"
    else:
        try:
            fn(env, d)
        except Exception as exc:
            err = returned_error(exc)
            if err is None:
                raise
    if err is not None:
        if out.quiet():
            return err
        out.write(err)
    if out.is_empty():
        return "ok"
    return out.text()
