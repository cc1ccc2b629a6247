"""Identifiers of log entries and well-formed slices of a raft log.

An :class:`EntryID` (term, index) names one entry of the raft log: a leader never
issues two entries with the same index in one term, so the pair is unique.

A :class:`LogSlice` is a run of consecutive entries as seen by the leader of ``term``,
together with the id of the entry just before it. Well-formed slices satisfy:

1. ``entries[i].index == prev.index + 1 + i`` (contiguous),
2. ``prev.term <= entries[0].term`` and terms never decrease along the slice,
3. no entry has a term above ``term`` (a leader's log holds nothing from the future).

Code that receives a slice from outside (a message, storage, a test) checks these with
:meth:`LogSlice.valid`; code further down may assume them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from raftcore.raftpb.types import Entry

__all__ = ["EntryID", "LogSlice", "pb_entry_id"]


@dataclass(frozen=True, slots=True)
class EntryID:
    """The (term, index) pair that uniquely identifies a log entry."""

    term: int = 0
    index: int = 0

    def __str__(self) -> str:
        # Go's %+v of the struct; used in LogSlice.valid's error texts.
        return f"{{term:{self.term} index:{self.index}}}"


def pb_entry_id(entry: Entry) -> EntryID:
    """The id of ``entry``."""
    return EntryID(entry.term, entry.index)


@dataclass(slots=True)
class LogSlice:
    """Consecutive entries following ``prev``, as they appear in the log of leader ``term``."""

    term: int = 0
    prev: EntryID = field(default_factory=EntryID)
    entries: Sequence[Entry] = ()

    def last_index(self) -> int:
        """Index of the last entry, or ``prev.index`` when there are no entries."""
        return self.prev.index + len(self.entries)

    def last_entry_id(self) -> EntryID:
        """Id of the last entry, or ``prev`` when there are no entries."""
        if self.entries:
            last = self.entries[-1]
            return EntryID(last.term, last.index)
        return self.prev

    def valid(self) -> None:
        """Raise :class:`ValueError` unless the slice is well formed (see the module doc)."""
        prev_term, prev_index = self.prev.term, self.prev.index
        for e in self.entries:
            if e.term < prev_term or e.index != prev_index + 1:
                raise ValueError(
                    f"leader term {self.term}: entries "
                    f"{EntryID(prev_term, prev_index)} and {EntryID(e.term, e.index)} "
                    "not consistent"
                )
            prev_term, prev_index = e.term, e.index
        if self.term < prev_term:
            raise ValueError(
                f"leader term {self.term}: entry {EntryID(prev_term, prev_index)} has a newer term"
            )
