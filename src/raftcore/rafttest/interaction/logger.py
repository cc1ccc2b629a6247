"""The output buffer every node of an environment logs into (HARNESS §2.2).

One object plays two roles, as upstream's ``RedirectLogger`` does: it is the
:class:`raftcore.logger.Logger` of every node, and it is the buffer the harness writes its
own text to. Sharing it is what makes log lines interleave with harness output in call
order, which the scripts record.

The level doubles as a mute switch: at ``NONE`` every write is dropped, harness text
included, so that chatty setup directives print ``ok``.
"""

from __future__ import annotations

from typing import NoReturn

from raftcore.errors import RaftPanic

__all__ = [
    "DEBUG",
    "ERROR",
    "FATAL",
    "INFO",
    "LEVEL_NAMES",
    "NONE",
    "WARN",
    "RedirectLogger",
    "level_from_name",
]

DEBUG, INFO, WARN, ERROR, FATAL, NONE = range(6)
LEVEL_NAMES = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL", "NONE")
# The prefixes are built once: a log line is prefix + message (+ LF).
_PREFIX = tuple(name + " " for name in LEVEL_NAMES)


def _fold_equal(a: str, b: str) -> bool:
    """Go's ``strings.EqualFold``: equal under simple per-character case folding."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x != y and x.lower() != y.lower() and x.upper() != y.upper():
            return False
    return True


def level_from_name(name: str) -> int | None:
    """The level called ``name`` (case-insensitively), or None if there is none."""
    for lvl, s in enumerate(LEVEL_NAMES):
        if _fold_equal(s, name):
            return lvl
    return None


class RedirectLogger:
    """A :class:`raftcore.logger.Logger` that writes into a swappable text buffer.

    ``parts`` is the current buffer; :meth:`InteractionEnv.with_indent` swaps in a fresh
    list to capture (and then indent) what a nested operation prints. Empty strings are
    never stored, so an empty list means nothing was written.
    """

    __slots__ = ("lvl", "parts")

    def __init__(self, lvl: int = DEBUG) -> None:
        self.lvl = lvl
        self.parts: list[str] = []

    # -- buffer -------------------------------------------------------------------------

    def quiet(self) -> bool:
        return self.lvl == NONE

    def write(self, s: str) -> None:
        if s and self.lvl != NONE:
            self.parts.append(s)

    def reset(self) -> None:
        self.parts.clear()

    def is_empty(self) -> bool:
        return not self.parts

    def text(self) -> str:
        return "".join(self.parts)

    # -- raftcore.logger.Logger ---------------------------------------------------------

    def _log(self, lvl: int, msg: str, args: tuple[object, ...]) -> None:
        # The level test comes first so that nothing is formatted when it is off.
        if self.lvl <= lvl:
            parts = self.parts
            parts.append(_PREFIX[lvl])
            parts.append(msg % args if args else msg)
            # Go's printf-style logging ends the line unless the format already does.
            if msg and msg[-1] != "\n":
                parts.append("\n")

    def debug(self, msg: str, *args: object) -> None:
        if self.lvl <= DEBUG:
            self._log(DEBUG, msg, args)

    def info(self, msg: str, *args: object) -> None:
        if self.lvl <= INFO:
            self._log(INFO, msg, args)

    def warning(self, msg: str, *args: object) -> None:
        if self.lvl <= WARN:
            self._log(WARN, msg, args)

    def error(self, msg: str, *args: object) -> None:
        if self.lvl <= ERROR:
            self._log(ERROR, msg, args)

    def fatal(self, msg: str, *args: object) -> NoReturn:
        self.panic(msg, *args)

    def panic(self, msg: str, *args: object) -> NoReturn:
        """Log at FATAL (if enabled), then abort: a harness failure, never output."""
        self._log(FATAL, msg, args)
        raise RaftPanic(msg % args if args else msg)
