"""Every exception raftcore raises, in one place.

etcd returns sentinel error values and panics on broken invariants; raftcore raises
instead. The sentinel errors become subclasses of :class:`RaftError` whose ``str()`` is
etcd's message text (the conformance scripts print some of them). Broken invariants,
where etcd panics, raise :class:`RaftPanic`: the node must not be used afterwards.
"""

from __future__ import annotations

__all__ = [
    "CompactedError",
    "ConfChangeError",
    "ConfigError",
    "DecodeError",
    "NodeTimeoutError",
    "ProposalDroppedError",
    "RaftError",
    "RaftPanic",
    "SnapOutOfDateError",
    "SnapshotTemporarilyUnavailableError",
    "StepLocalMsgError",
    "StepPeerNotFoundError",
    "StoppedError",
    "StorageError",
    "UnavailableError",
]


class RaftError(Exception):
    """Base class of every error raftcore raises on purpose."""


class RaftPanic(RaftError):
    """An invariant etcd's raft would panic on was broken; the node is unusable now."""


class ConfigError(RaftError, ValueError):
    """A :class:`raftcore.Config` (or another setting) is invalid."""


class DecodeError(RaftError, ValueError):
    """Bytes handed to the protobuf codec are not a valid encoding of the asked type."""


class ConfChangeError(RaftError, ValueError):
    """A configuration change cannot be applied to the current configuration."""


class StorageError(RaftError):
    """Base of the errors a :class:`raftcore.Storage` reports."""


class CompactedError(StorageError):
    def __init__(self) -> None:
        super().__init__("requested index is unavailable due to compaction")


class SnapOutOfDateError(StorageError):
    def __init__(self) -> None:
        super().__init__("requested index is older than the existing snapshot")


class UnavailableError(StorageError):
    def __init__(self) -> None:
        super().__init__("requested entry at index is unavailable")


class SnapshotTemporarilyUnavailableError(StorageError):
    def __init__(self) -> None:
        super().__init__("snapshot is temporarily unavailable")


class ProposalDroppedError(RaftError):
    def __init__(self) -> None:
        super().__init__("raft proposal dropped")


class StepLocalMsgError(RaftError):
    def __init__(self) -> None:
        super().__init__("raft: cannot step raft local message")


class StepPeerNotFoundError(RaftError):
    def __init__(self) -> None:
        super().__init__("raft: cannot step as peer not found")


class StoppedError(RaftError):
    def __init__(self) -> None:
        super().__init__("raft: stopped")


class NodeTimeoutError(RaftError, TimeoutError):
    """A blocking call on a :class:`raftcore.Node` or :class:`raftcore.AsyncNode` gave up.

    Raised when the call's ``timeout`` expires first (Go's ``ctx.Err()`` after a
    deadline). It is also a builtin :class:`TimeoutError`, so ``except TimeoutError``
    catches it. The call had no effect: the node takes a request entirely or not at
    all, so a proposal that timed out was never handed to raft.
    """

    def __init__(self, what: str = "raft: operation timed out") -> None:
        super().__init__(what)
