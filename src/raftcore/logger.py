"""The logging seam between the raft core and the application.

The core logs through a :class:`Logger`: printf-style messages (``%d``, ``%x``, ``%s``)
with their arguments passed separately, so that nothing is formatted unless the level
is on. Message texts are etcd's, because the conformance scripts print them.

:class:`StdlibLogger`, the default, hands every call to a :mod:`logging` logger (named
``raftcore`` unless you pass another), which formats lazily in the same way.

Optional fast path: a logger may have a ``debug_enabled`` attribute (or property) that
is false when debug lines are dropped. The core then skips the few debug calls whose
arguments cost something to compute (a log lookup, say). Loggers without it are
assumed to want everything, so existing :class:`Logger` implementations keep working
unchanged; :class:`StdlibLogger` has it.
"""

from __future__ import annotations

import logging
from typing import NoReturn, Protocol, runtime_checkable

from raftcore.errors import RaftPanic

__all__ = ["Logger", "StdlibLogger", "debug_enabled", "default_logger"]


@runtime_checkable
class Logger(Protocol):
    """What the raft core needs from a logger.

    ``msg`` is a %-format string; when ``args`` is empty it is printed as is. ``panic``
    logs and then raises :class:`raftcore.errors.RaftPanic`; it never returns.
    """

    def debug(self, msg: str, *args: object) -> None: ...
    def info(self, msg: str, *args: object) -> None: ...
    def warning(self, msg: str, *args: object) -> None: ...
    def error(self, msg: str, *args: object) -> None: ...
    def panic(self, msg: str, *args: object) -> NoReturn: ...


class StdlibLogger:
    """A :class:`Logger` over :mod:`logging`; panics log at CRITICAL and raise."""

    __slots__ = ("_log",)

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log if log is not None else logging.getLogger("raftcore")

    @property
    def debug_enabled(self) -> bool:
        """Whether debug lines get through (see the module doc)."""
        return self._log.isEnabledFor(logging.DEBUG)

    def debug(self, msg: str, *args: object) -> None:
        self._log.debug(msg, *args)

    def info(self, msg: str, *args: object) -> None:
        self._log.info(msg, *args)

    def warning(self, msg: str, *args: object) -> None:
        self._log.warning(msg, *args)

    def error(self, msg: str, *args: object) -> None:
        self._log.error(msg, *args)

    def panic(self, msg: str, *args: object) -> NoReturn:
        text = msg % args if args else msg
        self._log.critical("%s", text)
        raise RaftPanic(text)


def debug_enabled(logger: Logger) -> bool:
    """False only if ``logger`` says it drops debug lines (``debug_enabled``)."""
    return bool(getattr(logger, "debug_enabled", True))


_DEFAULT = StdlibLogger()


def default_logger() -> Logger:
    """The logger used when a :class:`raftcore.Config` names none."""
    return _DEFAULT
