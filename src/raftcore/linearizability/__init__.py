"""Linearizability checking for key-value histories.

Record what clients asked and when (an :class:`Operation` per request, or a
:class:`Recorder` while a test runs), then ask :func:`check`::

    result = check(history, timeout=10)
    if result.verdict is Verdict.ILLEGAL:
        print(result)          # the offending key and a small witness on a timeline

Histories persist as JSON lines (:func:`write_jsonl` / :func:`read_jsonl`) and can be
checked offline with ``python -m raftcore.linearizability HISTORY.jsonl``.
"""

from raftcore.linearizability.checker import (
    CheckResult,
    Verdict,
    check,
    check_key,
    format_witness,
)
from raftcore.linearizability.history import (
    KINDS,
    HistoryFormatError,
    Kind,
    Operation,
    Recorder,
    read_jsonl,
    write_jsonl,
)

__all__ = [
    "KINDS",
    "CheckResult",
    "HistoryFormatError",
    "Kind",
    "Operation",
    "Recorder",
    "Verdict",
    "check",
    "check_key",
    "format_witness",
    "read_jsonl",
    "write_jsonl",
]
