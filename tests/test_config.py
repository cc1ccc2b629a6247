"""Config.validate(): etcd's checks, messages, order and defaults."""

from __future__ import annotations

import pytest

from raftcore.config import Config, ReadOnlyOption
from raftcore.errors import ConfigError
from raftcore.logger import Logger, StdlibLogger, default_logger
from raftcore.storage import MemoryStorage
from raftcore.util import LOCAL_APPEND_THREAD, LOCAL_APPLY_THREAD, NO_LIMIT


def _valid(**kw: object) -> Config:
    c = Config(
        id=1,
        election_tick=10,
        heartbeat_tick=1,
        storage=MemoryStorage(),
        max_size_per_msg=NO_LIMIT,
        max_inflight_msgs=256,
    )
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_valid_config_passes() -> None:
    c = _valid()
    c.validate()
    assert c.id == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": 0}, "cannot use none as id"),
        ({"id": LOCAL_APPEND_THREAD}, "cannot use local target as id"),
        ({"id": LOCAL_APPLY_THREAD}, "cannot use local target as id"),
        ({"heartbeat_tick": 0}, "heartbeat tick must be greater than 0"),
        ({"heartbeat_tick": -1}, "heartbeat tick must be greater than 0"),
        ({"election_tick": 1}, "election tick must be greater than heartbeat tick"),
        (
            {"election_tick": 3, "heartbeat_tick": 5},
            "election tick must be greater than heartbeat tick",
        ),
        ({"storage": None}, "storage cannot be nil"),
        ({"max_inflight_msgs": 0}, "max inflight messages must be greater than 0"),
        ({"max_inflight_msgs": -3}, "max inflight messages must be greater than 0"),
        (
            {"max_size_per_msg": 1024, "max_inflight_bytes": 1023},
            "max inflight bytes must be >= max message size",
        ),
        (
            {"read_only_option": ReadOnlyOption.ReadOnlyLeaseBased},
            "CheckQuorum must be enabled when ReadOnlyOption is ReadOnlyLeaseBased",
        ),
    ],
)
def test_invalid_configs(changes: dict[str, object], message: str) -> None:
    c = _valid(**changes)
    with pytest.raises(ConfigError) as exc:
        c.validate()
    assert str(exc.value) == message


def test_checks_run_in_etcd_order() -> None:
    # Several problems at once: the first in etcd's order is reported.
    c = Config()
    with pytest.raises(ConfigError, match=r"^cannot use none as id$"):
        c.validate()
    c.id = 1
    with pytest.raises(ConfigError, match=r"^heartbeat tick must be greater than 0$"):
        c.validate()
    c.heartbeat_tick = 1
    with pytest.raises(ConfigError, match=r"^election tick must be greater than heartbeat tick$"):
        c.validate()
    c.election_tick = 2
    with pytest.raises(ConfigError, match=r"^storage cannot be nil$"):
        c.validate()
    c.storage = MemoryStorage()
    with pytest.raises(ConfigError, match=r"^max inflight messages must be greater than 0$"):
        c.validate()
    # Defaults applied before the failing check stay applied, as in etcd.
    assert c.max_uncommitted_entries_size == NO_LIMIT
    c.max_inflight_msgs = 1
    c.validate()


def test_defaults() -> None:
    c = _valid(max_size_per_msg=4096)
    c.validate()
    assert c.max_uncommitted_entries_size == NO_LIMIT
    assert c.max_committed_size_per_ready == 4096  # follows max_size_per_msg
    assert c.max_inflight_bytes == NO_LIMIT
    assert c.logger is default_logger()


def test_defaults_leave_set_values_alone() -> None:
    logger: Logger = StdlibLogger()
    c = _valid(
        max_size_per_msg=100,
        max_uncommitted_entries_size=7,
        max_committed_size_per_ready=9,
        max_inflight_bytes=100,
        logger=logger,
        read_only_option=ReadOnlyOption.ReadOnlyLeaseBased,
        check_quorum=True,
    )
    c.validate()
    assert c.max_uncommitted_entries_size == 7
    assert c.max_committed_size_per_ready == 9
    assert c.max_inflight_bytes == 100  # equal to the message size is allowed
    assert c.logger is logger


def test_zero_message_size_makes_zero_committed_limit() -> None:
    # etcd copies max_size_per_msg even when it is 0 ("one entry per message").
    c = _valid(max_size_per_msg=0)
    c.validate()
    assert c.max_committed_size_per_ready == 0
    assert c.max_inflight_bytes == NO_LIMIT


def test_validate_is_idempotent() -> None:
    c = _valid()
    c.validate()
    before = (c.max_uncommitted_entries_size, c.max_committed_size_per_ready, c.max_inflight_bytes)
    c.validate()
    after = (c.max_uncommitted_entries_size, c.max_committed_size_per_ready, c.max_inflight_bytes)
    assert before == after


def test_read_only_option_values() -> None:
    assert int(ReadOnlyOption.ReadOnlySafe) == 0
    assert int(ReadOnlyOption.ReadOnlyLeaseBased) == 1
    assert Config().read_only_option is ReadOnlyOption.ReadOnlySafe
