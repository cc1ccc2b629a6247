"""The unstable tail of the raft log: entries and a snapshot not yet known to be durable.

:class:`Unstable` holds new entries (and possibly an incoming snapshot) until the
application has persisted them, serving two purposes: it is what the next Ready hands
out for writing, and it keeps answering log queries for that data while the writes
are in flight, until they are acknowledged and storage can answer instead.

``entries[i]`` is the entry at log index ``offset + i``. ``offset`` may be below the
last index in storage: then the next storage write must truncate the stored log first.
Entries below ``offset_in_progress`` (and the snapshot, if ``snapshot_in_progress``)
have been handed to the application already and are not offered again.

The ``entries`` list is owned exclusively by this object (every list given out is a
fresh slice), which is what lets it be truncated and extended in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from raftcore.logger import Logger, default_logger
from raftcore.raftpb.types import Entry, Snapshot
from raftcore.types import EntryID
from raftcore.util import clone_snapshot

__all__ = ["Unstable"]


@dataclass(slots=True)
class Unstable:
    """Entries and snapshot that have not been written to stable storage yet."""

    #: The incoming snapshot, if any.
    snapshot: Snapshot | None = None
    #: Entries not yet written to storage; owned by this object.
    entries: list[Entry] = field(default_factory=list)
    #: Log index of ``entries[0]``.
    offset: int = 0
    #: True while the snapshot is being written to storage.
    snapshot_in_progress: bool = False
    #: Entries below this index (exclusive, like ``offset``) are being written.
    #: Invariant: ``offset <= offset_in_progress``.
    offset_in_progress: int = 0
    logger: Logger = field(default_factory=default_logger)

    def maybe_first_index(self) -> int | None:
        """The first index the log can hold after the snapshot, if there is one."""
        s = self.snapshot
        if s is not None:
            return s.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        """The last index held here (last entry, else the snapshot), if any."""
        n = len(self.entries)
        if n:
            return self.offset + n - 1
        s = self.snapshot
        if s is not None:
            return s.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        """The term of entry ``i`` if this object knows it."""
        offset = self.offset
        if i < offset:
            s = self.snapshot
            if s is not None and s.metadata.index == i:
                return s.metadata.term
            return None
        pos = i - offset
        ents = self.entries
        if pos < len(ents):
            return ents[pos].term
        # Beyond the entries; with none at all, Go's lastIndex may come from the
        # snapshot, but that index is below offset and was handled above.
        return None

    def next_entries(self) -> list[Entry]:
        """Entries not yet handed out for writing (empty if none)."""
        in_progress = self.offset_in_progress - self.offset
        ents = self.entries
        if len(ents) == in_progress:
            return []
        return ents[in_progress:]

    def next_snapshot(self) -> Snapshot | None:
        """A copy of the snapshot, unless there is none or it is already being written."""
        s = self.snapshot
        if s is None or self.snapshot_in_progress:
            return None
        return clone_snapshot(s)

    def accept_in_progress(self) -> None:
        """Mark everything held now as handed out for writing.

        Later additions are offered by :meth:`next_entries` / :meth:`next_snapshot`
        until the next call.
        """
        ents = self.entries
        if ents:
            self.offset_in_progress = ents[-1].index + 1
        if self.snapshot is not None:
            self.snapshot_in_progress = True

    def stable_to(self, id: EntryID) -> None:
        """Forget entries up to ``id``, which the application reports as durable.

        Callers guarantee an in-flight append cannot overwrite them any more. Reports
        that no longer match (entry gone, covered by the snapshot, or replaced by a
        different term) are ignored.
        """
        self._stable_to(id.term, id.index)

    def _stable_to(self, term: int, index: int) -> None:
        # stable_to without the EntryID: every append acknowledgement comes here.
        gt = self.maybe_term(index)
        if gt is None:
            self.logger.info("entry at index %d missing from unstable log; ignoring", index)
            return
        if index < self.offset:
            self.logger.info("entry at index %d matched unstable snapshot; ignoring", index)
            return
        if gt != term:
            # The unstable log was (partly) replaced while the write was in flight.
            self.logger.info(
                "entry at (index,term)=(%d,%d) mismatched with "
                "entry at (%d,%d) in unstable log; ignoring",
                index,
                term,
                index,
                gt,
            )
            return
        # In place: the list is ours alone, and this releases the references.
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1
        self.offset_in_progress = max(self.offset_in_progress, self.offset)

    def stable_snap_to(self, i: int) -> None:
        """Forget the snapshot if it is the one at index ``i`` (now durable)."""
        s = self.snapshot
        if s is not None and s.metadata.index == i:
            self.snapshot = None
            self.snapshot_in_progress = False

    def restore(self, s: Snapshot) -> None:
        """Replace everything with snapshot ``s`` (a copy is kept)."""
        self.offset = s.metadata.index + 1
        self.offset_in_progress = self.offset
        self.entries = []
        self.snapshot = clone_snapshot(s)
        self.snapshot_in_progress = False

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        """Append ``ents`` (non-empty), first dropping held entries at their indices or later."""
        from_index = ents[0].index
        offset = self.offset
        entries = self.entries
        if from_index == offset + len(entries):
            # Directly follows what we hold.
            entries.extend(ents)
        elif from_index <= offset:
            self.logger.info("replace the unstable entries from index %d", from_index)
            # Everything held is superseded.
            self.entries = list(ents)
            self.offset = from_index
            self.offset_in_progress = from_index
        else:
            self.logger.info("truncate the unstable entries before index %d", from_index)
            # Also catches a gap past the end, which is fatal.
            self._must_check_out_of_bounds(offset, from_index)
            del entries[from_index - offset :]
            entries.extend(ents)
            # Only writes below from_index are still meaningful.
            self.offset_in_progress = min(self.offset_in_progress, from_index)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """A new list of the entries in ``[lo, hi)``, all of which must be held here."""
        self._must_check_out_of_bounds(lo, hi)
        offset = self.offset
        return self.entries[lo - offset : hi - offset]

    def _must_check_out_of_bounds(self, lo: int, hi: int) -> None:
        # offset <= lo <= hi <= offset + len(entries)
        if lo > hi:
            self.logger.panic("invalid unstable.slice %d > %d", lo, hi)
        upper = self.offset + len(self.entries)
        if lo < self.offset or hi > upper:
            self.logger.panic(
                "unstable.slice[%d,%d) out of bound [%d,%d]", lo, hi, self.offset, upper
            )
