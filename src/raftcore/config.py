"""The parameters a raft node is started with (etcd's ``raft.Config``).

Every field keeps etcd's name, snake_cased, and its Go zero value as default, so a
``Config`` built with only the required fields behaves like etcd's ``Config{...}`` literal
with the same fields set. :meth:`Config.validate` is etcd's ``validate()``: it rejects the
same configurations with the same messages and fills in the same defaults (it mutates
the config, as etcd does, so that the caller sees the effective values).

etcd's ``TraceLogger`` (a build-tag-only state tracer) has no counterpart here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from raftcore.errors import ConfigError
from raftcore.logger import Logger, default_logger
from raftcore.util import NO_LIMIT, is_local_msg_target

if TYPE_CHECKING:
    from raftcore.storage import Storage

__all__ = ["Config", "ReadOnlyOption"]


class ReadOnlyOption(IntEnum):
    """How a leader serves read-only (ReadIndex) requests.

    ``ReadOnlySafe`` confirms leadership with a quorum round for every request;
    ``ReadOnlyLeaseBased`` trusts the leader lease instead, which is only sound with
    ``check_quorum`` and bounded clock drift.
    """

    ReadOnlySafe = 0
    ReadOnlyLeaseBased = 1


@dataclass(slots=True)
class Config:
    """What a :class:`raftcore.RawNode` needs to start; see etcd's ``raft.Config``.

    Sizes are byte counts of encoded entries (``max_size_per_msg``,
    ``max_committed_size_per_ready``, ``max_inflight_bytes``) or of entry payloads
    (``max_uncommitted_entries_size``); ``NO_LIMIT`` (2**64-1) means unlimited. A zero
    in ``max_uncommitted_entries_size``, ``max_committed_size_per_ready`` or
    ``max_inflight_bytes`` is replaced by :meth:`validate` with its default.
    """

    id: int = 0
    election_tick: int = 0
    heartbeat_tick: int = 0
    storage: Storage | None = None
    applied: int = 0
    async_storage_writes: bool = False
    max_size_per_msg: int = 0
    max_committed_size_per_ready: int = 0
    max_uncommitted_entries_size: int = 0
    max_inflight_msgs: int = 0
    max_inflight_bytes: int = 0
    check_quorum: bool = False
    pre_vote: bool = False
    read_only_option: ReadOnlyOption = ReadOnlyOption.ReadOnlySafe
    logger: Logger | None = None
    disable_proposal_forwarding: bool = False
    disable_conf_change_validation: bool = False
    step_down_on_removal: bool = False

    def validate(self) -> None:
        """Check the config and apply etcd's defaults in place.

        Raises :class:`raftcore.errors.ConfigError` with etcd's message on the first
        problem found, in etcd's order (defaults applied before the failing check stay
        applied, as in etcd).
        """
        if self.id == 0:
            raise ConfigError("cannot use none as id")
        if is_local_msg_target(self.id):
            raise ConfigError("cannot use local target as id")
        if self.heartbeat_tick <= 0:
            raise ConfigError("heartbeat tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ConfigError("election tick must be greater than heartbeat tick")
        if self.storage is None:
            raise ConfigError("storage cannot be nil")
        if self.max_uncommitted_entries_size == 0:
            self.max_uncommitted_entries_size = NO_LIMIT
        # The two limits used to be one setting; an unset committed-size limit keeps
        # the old behaviour of following the message size limit.
        if self.max_committed_size_per_ready == 0:
            self.max_committed_size_per_ready = self.max_size_per_msg
        if self.max_inflight_msgs <= 0:
            raise ConfigError("max inflight messages must be greater than 0")
        if self.max_inflight_bytes == 0:
            self.max_inflight_bytes = NO_LIMIT
        elif self.max_inflight_bytes < self.max_size_per_msg:
            raise ConfigError("max inflight bytes must be >= max message size")
        if self.logger is None:
            self.logger = default_logger()
        if self.read_only_option == ReadOnlyOption.ReadOnlyLeaseBased and not self.check_quorum:
            raise ConfigError(
                "CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased"
            )
