"""raftcore: etcd's Raft consensus core, in Python.

The public API, re-exported from the modules that define it::

    from raftcore import Config, MemoryStorage, RawNode

The names are resolved on first use, so that importing one layer (say
``raftcore.quorum``) does not load the whole library, and so that the package's own
modules can import each other through it without import cycles.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from raftcore import errors
from raftcore.logger import Logger, StdlibLogger

if TYPE_CHECKING:
    from raftcore.async_node import AsyncNode
    from raftcore.config import Config, ReadOnlyOption
    from raftcore.errors import (
        CompactedError,
        ConfChangeError,
        ConfigError,
        NodeTimeoutError,
        ProposalDroppedError,
        RaftError,
        RaftPanic,
        SnapOutOfDateError,
        SnapshotTemporarilyUnavailableError,
        StepLocalMsgError,
        StepPeerNotFoundError,
        StoppedError,
        UnavailableError,
    )
    from raftcore.node import Node, restart_node, start_node
    from raftcore.raft import StateType
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
    from raftcore.rawnode import (
        Peer,
        ProgressType,
        RawNode,
        Ready,
        SnapshotStatus,
        SoftState,
        is_empty_hard_state,
        is_empty_snap,
    )
    from raftcore.read_only import ReadState
    from raftcore.status import BasicStatus, Status
    from raftcore.storage import MemoryStorage, Storage

__all__ = [
    "AsyncNode",
    "BasicStatus",
    "CompactedError",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeSingle",
    "ConfChangeTransition",
    "ConfChangeType",
    "ConfChangeV2",
    "ConfState",
    "Config",
    "ConfigError",
    "Entry",
    "EntryType",
    "HardState",
    "Logger",
    "MemoryStorage",
    "Message",
    "MessageType",
    "Node",
    "NodeTimeoutError",
    "Peer",
    "ProgressType",
    "ProposalDroppedError",
    "RaftError",
    "RaftPanic",
    "RawNode",
    "ReadOnlyOption",
    "ReadState",
    "Ready",
    "SnapOutOfDateError",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotStatus",
    "SnapshotTemporarilyUnavailableError",
    "SoftState",
    "StateType",
    "Status",
    "StdlibLogger",
    "StepLocalMsgError",
    "StepPeerNotFoundError",
    "StoppedError",
    "Storage",
    "UnavailableError",
    "errors",
    "is_empty_hard_state",
    "is_empty_snap",
    "restart_node",
    "start_node",
]

# Where each lazily exported name is defined.
_LAZY: dict[str, str] = {
    "Config": "raftcore.config",
    "ReadOnlyOption": "raftcore.config",
    "StateType": "raftcore.raft",
    "ReadState": "raftcore.read_only",
    "BasicStatus": "raftcore.status",
    "Status": "raftcore.status",
    "MemoryStorage": "raftcore.storage",
    "Storage": "raftcore.storage",
    "Node": "raftcore.node",
    "start_node": "raftcore.node",
    "restart_node": "raftcore.node",
    "AsyncNode": "raftcore.async_node",
    **dict.fromkeys(
        (
            "Peer",
            "ProgressType",
            "RawNode",
            "Ready",
            "SnapshotStatus",
            "SoftState",
            "is_empty_hard_state",
            "is_empty_snap",
        ),
        "raftcore.rawnode",
    ),
    **dict.fromkeys(
        (
            "ConfChange",
            "ConfChangeSingle",
            "ConfChangeTransition",
            "ConfChangeType",
            "ConfChangeV2",
            "ConfState",
            "Entry",
            "EntryType",
            "HardState",
            "Message",
            "MessageType",
            "Snapshot",
            "SnapshotMetadata",
        ),
        "raftcore.raftpb.types",
    ),
    **dict.fromkeys(
        (
            "CompactedError",
            "ConfChangeError",
            "ConfigError",
            "NodeTimeoutError",
            "ProposalDroppedError",
            "RaftError",
            "RaftPanic",
            "SnapOutOfDateError",
            "SnapshotTemporarilyUnavailableError",
            "StepLocalMsgError",
            "StepPeerNotFoundError",
            "StoppedError",
            "UnavailableError",
        ),
        "raftcore.errors",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raftcore' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # resolve once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
