"""Commands that create nodes or drive one node through its RawNode API (HARNESS §2.6)."""

from __future__ import annotations

from dataclasses import replace

from raftcore.config import Config, ReadOnlyOption
from raftcore.describe import go_quote
from raftcore.raftpb.confchange import conf_changes_from_string
from raftcore.raftpb.types import (
    ConfChange,
    ConfChangeTransition,
    ConfChangeV2,
    ConfState,
    Snapshot,
    SnapshotMetadata,
)
from raftcore.rafttest.datadriven import HarnessError, TestData, parse_bool, parse_int, parse_uint
from raftcore.rafttest.interaction.env import (
    CommandError,
    InteractionEnv,
    Node,
    first_as_int,
    first_as_node_idx,
    node_idxs,
    parse_bool_go,
    returned_error,
    scan_arg,
)
from raftcore.rafttest.interaction.storage import SnapOverrideStorage
from raftcore.rawnode import RawNode
from raftcore.storage import MemoryStorage

__all__ = [
    "add_nodes",
    "config_stub",
    "handle_add_nodes",
    "handle_campaign",
    "handle_forget_leader",
    "handle_propose",
    "handle_propose_conf_change",
    "handle_report_unreachable",
    "handle_set_randomized_election_timeout",
    "handle_tick_election",
    "handle_tick_heartbeat",
    "handle_transfer_leadership",
]

_MAX_UINT64 = (1 << 64) - 1
_MAX_INT32 = (1 << 31) - 1


def config_stub() -> Config:
    """The template every node starts from: small ticks and no limits (HARNESS §2.4).

    Id, storage and logger are per node and filled in by :func:`add_nodes`.
    """
    return Config(
        election_tick=3,
        heartbeat_tick=1,
        max_size_per_msg=_MAX_UINT64,
        max_inflight_msgs=_MAX_INT32,
    )


def handle_add_nodes(env: InteractionEnv, d: TestData) -> None:
    n = first_as_int(d)
    cs = ConfState()
    meta = SnapshotMetadata(conf_state=cs)
    snap = Snapshot(metadata=meta)
    cfg = config_stub()
    for arg in d.cmd_args[1:]:
        key = arg.key
        # A key without values does nothing (a bare "prevote" is not "prevote=true").
        for val in arg.vals:
            if key == "voters":
                cs.voters.append(parse_uint(val, d.pos))
            elif key == "learners":
                cs.learners.append(parse_uint(val, d.pos))
            elif key == "inflight":
                cfg.max_inflight_msgs = parse_int(val, d.pos)
            elif key == "index":
                meta.index = parse_uint(val, d.pos)
                cfg.applied = meta.index
            elif key == "content":
                # Upstream scans this into a byte slice, which its scanner cannot do.
                raise HarnessError(f"{d.pos}: unsupported type []uint8 for content")
            elif key == "async-storage-writes":
                cfg.async_storage_writes = parse_bool(val, d.pos)
            elif key == "prevote":
                cfg.pre_vote = parse_bool(val, d.pos)
            elif key == "checkquorum":
                cfg.check_quorum = parse_bool(val, d.pos)
            elif key == "max-committed-size-per-ready":
                cfg.max_committed_size_per_ready = parse_uint(val, d.pos)
            elif key == "disable-conf-change-validation":
                cfg.disable_conf_change_validation = parse_bool(val, d.pos)
            elif key == "read-only":
                if val == "safe":
                    cfg.read_only_option = ReadOnlyOption.ReadOnlySafe
                elif val == "lease-based":
                    cfg.read_only_option = ReadOnlyOption.ReadOnlyLeaseBased
                else:
                    raise CommandError(f"invalid read-only option {go_quote(val)}")
            elif key == "step-down-on-removal":
                cfg.step_down_on_removal = parse_bool(val, d.pos)
            # Unknown keys are ignored, as upstream does.
    add_nodes(env, n, cfg, snap)


def _is_empty_snapshot(snap: Snapshot) -> bool:
    md = snap.metadata
    cs = md.conf_state
    return (
        not snap.data
        and md.index == 0
        and md.term == 0
        and not cs.voters
        and not cs.learners
        and not cs.voters_outgoing
        and not cs.learners_next
        and not cs.auto_leave
    )


def add_nodes(env: InteractionEnv, n: int, cfg: Config, snap: Snapshot) -> None:
    """Create ``n`` nodes with consecutive ids from template ``cfg`` and snapshot ``snap``.

    A non-empty ``snap`` bootstraps every node from it (the same object for all of them,
    as upstream shares one snapshot value); an empty one starts them blank.
    """
    bootstrap = not _is_empty_snapshot(snap)
    for _ in range(n):
        node_id = len(env.nodes) + 1
        mem = MemoryStorage()
        history = [snap]
        storage = SnapOverrideStorage(mem, history)
        if bootstrap:
            # MemoryStorage cannot bootstrap at index 1 and nothing is lost by refusing.
            if snap.metadata.index <= 1:
                raise CommandError("index must be specified as > 1 due to bootstrap")
            snap.metadata.term = 1
            storage.apply_snapshot(snap)
            fi = storage.first_index()
            exp = snap.metadata.index + 1
            if fi != exp:
                raise CommandError(f"failed to establish first index {exp}; got {fi}")
        node_cfg = replace(cfg, id=node_id, storage=storage)
        if env.options.on_config is not None:
            env.options.on_config(node_cfg)
            if node_cfg.id != node_id:
                raise CommandError("OnConfig must not change the ID")
        if node_cfg.logger is not None:
            raise CommandError("OnConfig must not set Logger")
        node_cfg.logger = env.output
        rn = RawNode(node_cfg)
        env.nodes.append(Node(raw_node=rn, storage=storage, config=node_cfg, history=history))


def handle_campaign(env: InteractionEnv, d: TestData) -> None:
    env.node(first_as_node_idx(d)).raw_node.campaign()


def _tick(env: InteractionEnv, idx: int, num: int) -> None:
    rn = env.node(idx).raw_node
    for _ in range(num):
        rn.tick()


def handle_tick_election(env: InteractionEnv, d: TestData) -> None:
    idx = first_as_node_idx(d)
    _tick(env, idx, env.node(idx).config.election_tick)


def handle_tick_heartbeat(env: InteractionEnv, d: TestData) -> None:
    idx = first_as_node_idx(d)
    _tick(env, idx, env.node(idx).config.heartbeat_tick)


def handle_forget_leader(env: InteractionEnv, d: TestData) -> None:
    rn = env.node(first_as_node_idx(d)).raw_node
    try:
        rn.forget_leader()
    except Exception as exc:
        # Upstream discards the error ForgetLeader returns; anything else is a failure.
        if returned_error(exc) is None:
            raise


def handle_transfer_leadership(env: InteractionEnv, d: TestData) -> None:
    frm = parse_uint(scan_arg(d, "from"), d.pos)
    to = parse_uint(scan_arg(d, "to"), d.pos)
    n = len(env.nodes)
    if frm == 0 or frm > n:
        raise HarnessError(f'{d.pos}: expected valid "from" argument')
    if to == 0 or to > n:
        raise HarnessError(f'{d.pos}: expected valid "to" argument')
    env.nodes[frm - 1].raw_node.transfer_leader(to)


def handle_report_unreachable(env: InteractionEnv, d: TestData) -> None:
    idxs = node_idxs(d)
    if len(idxs) != 2:
        raise CommandError(
            "must specify exactly two node indexes: node on which to report, and reported node"
        )
    reporter = env.node(idxs[0])
    reported = env.node(idxs[1])
    reporter.raw_node.report_unreachable(reported.config.id)


def handle_set_randomized_election_timeout(env: InteractionEnv, d: TestData) -> None:
    idx = first_as_node_idx(d)
    timeout = parse_int(scan_arg(d, "timeout"), d.pos)
    if timeout == 0:
        raise HarnessError(f"{d.pos}: timeout must not be zero")
    env.options.set_randomized_election_timeout(env.node(idx).raw_node, timeout)


def handle_propose(env: InteractionEnv, d: TestData) -> None:
    idx = first_as_node_idx(d)
    if len(d.cmd_args) != 2 or d.cmd_args[1].vals:
        raise HarnessError(f"{d.pos}: expected exactly one key with no vals: {d.cmd_args[1:]}")
    # The token is the data, verbatim (quotes included if the script wrote any).
    env.node(idx).raw_node.propose(d.cmd_args[1].key.encode("utf-8"))


_TRANSITIONS = {
    "auto": ConfChangeTransition.ConfChangeTransitionAuto,
    "implicit": ConfChangeTransition.ConfChangeTransitionJointImplicit,
    "explicit": ConfChangeTransition.ConfChangeTransitionJointExplicit,
}


def handle_propose_conf_change(env: InteractionEnv, d: TestData) -> None:
    idx = first_as_node_idx(d)
    v1 = False
    transition = ConfChangeTransition.ConfChangeTransitionAuto
    for arg in d.cmd_args[1:]:
        for val in arg.vals:
            if arg.key == "v1":
                v1 = parse_bool_go(val)
            elif arg.key == "transition":
                t = _TRANSITIONS.get(val)
                if t is None:
                    raise CommandError(f"unknown transition {val}")
                transition = t
            else:
                raise CommandError(f"unknown command {arg.key}")
    try:
        ccs = conf_changes_from_string(d.input)
    except (ValueError, CommandError) as exc:
        raise CommandError(str(exc)) from exc
    cc: ConfChange | ConfChangeV2
    if v1:
        if len(ccs) > 1 or transition != ConfChangeTransition.ConfChangeTransitionAuto:
            raise CommandError("v1 conf change can only have one operation and no transition")
        if not ccs:
            # Upstream indexes the empty list and panics.
            raise HarnessError(f"{d.pos}: v1 conf change needs exactly one operation")
        cc = ConfChange(type=ccs[0].type, node_id=ccs[0].node_id)
    else:
        cc = ConfChangeV2(transition=transition, changes=ccs)
    env.node(idx).raw_node.propose_conf_change(cc)
