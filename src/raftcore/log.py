"""The raft log: stable storage plus the unstable tail, with commit and apply cursors.

:class:`RaftLog` presents one contiguous log over two halves: the entries the
application has persisted (read through :class:`~raftcore.storage.Storage`) and the
:class:`~raftcore.unstable.Unstable` tail not yet written. The unstable half always
wins where they overlap, since it may have replaced a suffix of storage that the next
write will truncate.

Cursors, with ``applied <= applying <= committed``:

* ``committed``: highest index known durable on a quorum;
* ``applying``: highest index handed to the application for applying;
* ``applied``: highest index the application reports as applied.

Handing out committed entries is limited in bytes (``max_applying_ents_size``): once the
bytes handed out but not yet applied reach the limit, or a batch had to be cut short,
no more are handed out until application catches up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from raftcore.errors import CompactedError, RaftError, StorageError, UnavailableError
from raftcore.logger import Logger, default_logger
from raftcore.raftpb.types import Entry, Snapshot
from raftcore.storage import Storage
from raftcore.types import EntryID, LogSlice
from raftcore.unstable import Unstable
from raftcore.util import (
    NO_LIMIT,
    clone_snapshot,
    ents_size,
    ents_size_upper_bound,
    limit_size,
)

__all__ = ["RaftLog"]

_MOD64 = 2**64


class RaftLog:
    """The log of one raft node (Go's ``raftLog``; the constructor is ``newLogWithSize``).

    Starts out at the state of storage's last compaction/snapshot: everything up to
    ``first_index - 1`` is considered committed and applied.
    """

    __slots__ = (
        "_applying_size",
        "_storage_maybe_term",
        "_unmeasured",
        "_unmeasured_bound",
        "applied",
        "applying",
        "applying_ents_paused",
        "committed",
        "logger",
        "max_applying_ents_size",
        "storage",
        "unstable",
    )

    def __init__(
        self,
        storage: Storage,
        logger: Logger | None = None,
        max_applying_ents_size: int = NO_LIMIT,
    ) -> None:
        if logger is None:
            logger = default_logger()
        first_index = storage.first_index()
        last_index = storage.last_index()
        self.storage = storage
        # Storage.maybe_term is an optional fast path (see raftcore.storage): one call
        # in place of first_index + last_index + term. ``storage`` is fixed for life.
        self._storage_maybe_term: Callable[[int], int | None] | None = getattr(
            storage, "maybe_term", None
        )
        self.unstable = Unstable(
            offset=last_index + 1, offset_in_progress=last_index + 1, logger=logger
        )
        self.committed = first_index - 1
        self.applying = first_index - 1
        self.applied = first_index - 1
        self.logger = logger
        #: Limit on bytes handed out by next_committed_ents and not yet applied.
        self.max_applying_ents_size = max_applying_ents_size
        # applying_ents_size (a property) is _applying_size plus the sizes of the
        # batches in _unmeasured: batches handed out by RawNode whose size nobody has
        # needed yet. In the usual Ready cycle a batch is handed out and applied
        # without its size ever mattering, so it is never measured (see
        # _accept_applying_ents). _unmeasured_bound bounds their total size from
        # above, cheaply.
        self._applying_size = 0
        self._unmeasured: list[Sequence[Entry]] = []
        self._unmeasured_bound = 0
        #: True while handing out committed entries waits for application progress.
        self.applying_ents_paused = False

    def __str__(self) -> str:
        u = self.unstable
        return (
            f"committed={self.committed}, applied={self.applied}, "
            f"applying={self.applying}, unstable.offset={u.offset}, "
            f"unstable.offsetInProgress={u.offset_in_progress}, "
            f"len(unstable.Entries)={len(u.entries)}"
        )

    # Appending ------------------------------------------------------------------

    def maybe_append(self, a: LogSlice, committed: int) -> int | None:
        """Append the leader's slice ``a`` if it connects to our log.

        Returns the index of the last entry of ``a`` (its ``prev.index`` when empty),
        or ``None`` if ``a.prev`` does not match our log. Also advances ``committed``
        up to ``min(committed, that index)``.
        """
        prev = a.prev
        return self._maybe_append(prev.term, prev.index, a.entries, committed)

    def _maybe_append(
        self, prev_term: int, prev_index: int, entries: Sequence[Entry], committed: int
    ) -> int | None:
        # maybe_append with the slice taken apart: the follower's hot path calls this
        # straight from a MsgApp, without building a LogSlice and an EntryID.
        if self._term_or_none(prev_index) != prev_term:
            return None
        lastnewi = prev_index + len(entries)
        ci = self.find_conflict(entries) if entries else 0
        if ci == 0:
            pass
        elif ci <= self.committed:
            self.logger.panic(
                "entry %d conflict with committed entry [committed(%d)]", ci, self.committed
            )
        else:
            start = ci - (prev_index + 1)
            if start > len(entries):
                self.logger.panic("index, %d, is out of range [%d]", start, len(entries))
            # The common case appends the whole message: no need to copy it first.
            self.append(entries[start:] if start else entries)
        if committed > lastnewi:
            committed = lastnewi
        if self.committed < committed:
            self.commit_to(committed)
        return lastnewi

    def append(self, ents: Sequence[Entry]) -> int:
        """Append ``ents`` to the unstable tail (truncating what they overlap).

        Returns the new last index. Overwriting committed entries is fatal.
        """
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            self.logger.panic("after(%d) is out of range [committed(%d)]", after, self.committed)
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """Index of the first entry of ``ents`` that is not already in our log.

        That is the first entry whose term differs from ours at its index (a conflict,
        which is logged) or that lies past our last index. Returns 0 if all of
        ``ents`` is already in the log. ``ents`` must have consecutive indices.
        """
        term_or_none = self._term_or_none
        for e in ents:
            index = e.index
            if term_or_none(index) != e.term:
                if index <= self.last_index():
                    self.logger.info(
                        "found conflict at index %d [existing term: %d, conflicting term: %d]",
                        index,
                        self.zero_term_on_out_of_bounds(index),
                        e.term,
                    )
                return index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Best guess at where our log stops matching a log that has ``term`` at ``index``.

        Returns ``(guess, term(guess))``: the largest ``guess <= index`` whose term is
        ``<= term`` or unknown (compacted or missing; the term returned is then 0).
        Used on both sides of a rejected append to skip a whole term at a time.
        """
        while index > 0:
            our_term = self._term_or_none(index)
            if our_term is None:
                # Unknown (compacted or missing): possibly a match.
                return index, 0
            if our_term <= term:
                return index, our_term
            index -= 1
        return 0, 0

    # Unstable entries and snapshot ---------------------------------------------

    def next_unstable_ents(self) -> list[Entry]:
        """Unstable entries not yet handed out for writing."""
        return self.unstable.next_entries()

    def has_next_unstable_ents(self) -> bool:
        """Whether :meth:`next_unstable_ents` would return anything (without copying)."""
        u = self.unstable
        return len(u.entries) > u.offset_in_progress - u.offset

    def has_next_or_in_progress_unstable_ents(self) -> bool:
        """Whether there are unstable entries to write or being written."""
        return len(self.unstable.entries) > 0

    def next_unstable_snapshot(self) -> Snapshot | None:
        """The unstable snapshot, unless there is none or it is being written."""
        return self.unstable.next_snapshot()

    def has_next_unstable_snapshot(self) -> bool:
        """Whether :meth:`next_unstable_snapshot` would return one (without copying)."""
        u = self.unstable
        return u.snapshot is not None and not u.snapshot_in_progress

    def has_next_or_in_progress_snapshot(self) -> bool:
        """Whether a snapshot is waiting to be written or being written."""
        return self.unstable.snapshot is not None

    # Committed entries ----------------------------------------------------------

    def next_committed_ents(self, allow_unstable: bool) -> list[Entry]:
        """Committed entries to hand to the application now (maybe none).

        With ``allow_unstable`` entries not yet durable locally may be included (they
        are committed on a quorum already); otherwise only stable ones.
        """
        if self.applying_ents_paused:
            # Too many bytes are being applied already.
            return []
        u = self.unstable
        if u.snapshot is not None:
            # See has_next_committed_ents.
            return []
        lo = self.applying + 1
        # max_appliable_index(allow_unstable) + 1, inlined:
        hi = self.committed
        if not allow_unstable and hi > u.offset - 1:
            hi = u.offset - 1
        hi += 1
        if lo >= hi:
            return []
        # Go subtracts unsigned sizes: keep its wrap-around, so that only an exact
        # zero budget is fatal.
        max_size = (self.max_applying_ents_size - self.applying_ents_size) % _MOD64
        if max_size == 0:
            self.logger.panic(
                "applying entry size (%d-%d)=%d not positive",
                self.max_applying_ents_size,
                self.applying_ents_size,
                max_size,
            )
        try:
            return self.slice(lo, hi, max_size)
        except CompactedError as err:
            self.logger.panic("unexpected error when getting unapplied entries (%s)", err)

    def has_next_committed_ents(self, allow_unstable: bool) -> bool:
        """Cheap check whether :meth:`next_committed_ents` would return anything."""
        if self.applying_ents_paused:
            return False
        if self.has_next_or_in_progress_snapshot():
            # A pending snapshot goes first; mixing it with entries would leave the
            # order of application unclear.
            return False
        return self.applying < self.max_appliable_index(allow_unstable)

    def max_appliable_index(self, allow_unstable: bool) -> int:
        """The highest committed index that may be handed out for applying."""
        hi = self.committed
        if not allow_unstable:
            hi = min(hi, self.unstable.offset - 1)
        return hi

    def snapshot(self) -> Snapshot:
        """The latest snapshot: the unstable one (a copy) if any, else storage's."""
        s = self.unstable.snapshot
        if s is not None:
            return clone_snapshot(s)
        return self.storage.snapshot()

    # Indices and terms ----------------------------------------------------------

    def first_index(self) -> int:
        s = self.unstable.snapshot
        if s is not None:
            return s.metadata.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        u = self.unstable
        n = len(u.entries)
        if n:
            return u.offset + n - 1
        s = u.snapshot
        if s is not None:
            return s.metadata.index
        return self.storage.last_index()

    def commit_to(self, tocommit: int) -> None:
        """Advance ``committed`` to ``tocommit`` (never backwards)."""
        if self.committed < tocommit:
            if self.last_index() < tocommit:
                self.logger.panic(
                    "tocommit(%d) is out of range [lastIndex(%d)]. "
                    "Was the raft log corrupted, truncated, or lost?",
                    tocommit,
                    self.last_index(),
                )
            self.committed = tocommit

    @property
    def applying_ents_size(self) -> int:
        """Bytes handed out by next_committed_ents and not yet applied."""
        unmeasured = self._unmeasured
        if unmeasured:
            # Someone needs the exact figure: measure what was deferred.
            self._applying_size += sum(map(ents_size, unmeasured))
            unmeasured.clear()
            self._unmeasured_bound = 0
        return self._applying_size

    @applying_ents_size.setter
    def applying_ents_size(self, size: int) -> None:
        self._unmeasured.clear()
        self._unmeasured_bound = 0
        self._applying_size = size

    def _accept_applying_ents(self, i: int, ents: Sequence[Entry], allow_unstable: bool) -> None:
        # accept_applying(i, ents_size(ents), allow_unstable), measuring ents only if
        # the pause decision needs it. RawNode calls this with the committed entries
        # of the Ready it hands out (ents ends at i); _applied_to_ents takes the same
        # list back.
        bound = ents_size_upper_bound(ents)
        max_size = self.max_applying_ents_size
        if self._applying_size + self._unmeasured_bound + bound >= max_size:
            # The budget may be used up: decide on exact sizes.
            self.accept_applying(i, ents_size(ents), allow_unstable)
            return
        if self.committed < i:
            self.logger.panic(
                "applying(%d) is out of range [prevApplying(%d), committed(%d)]",
                i,
                self.applying,
                self.committed,
            )
        self.applying = i
        self._unmeasured.append(ents)
        self._unmeasured_bound += bound
        # The total stays below the budget, so only a cut batch pauses.
        self.applying_ents_paused = i < self.max_appliable_index(allow_unstable)

    def _applied_to_ents(self, i: int, ents: Sequence[Entry]) -> None:
        # applied_to(i, ents_size(ents)) for a batch that _accept_applying_ents may
        # have left unmeasured: then it is just dropped from the total (which
        # contains it, so the subtraction cannot go below zero either).
        unmeasured = self._unmeasured
        for k in range(len(unmeasured)):
            if unmeasured[k] is ents:
                break
        else:
            self.applied_to(i, ents_size(ents))
            return
        if self.committed < i or i < self.applied:
            self.logger.panic(
                "applied(%d) is out of range [prevApplied(%d), committed(%d)]",
                i,
                self.applied,
                self.committed,
            )
        self.applied = i
        self.applying = max(self.applying, i)
        del unmeasured[k]
        if unmeasured:
            self._unmeasured_bound -= ents_size_upper_bound(ents)
            if self._applying_size + self._unmeasured_bound < self.max_applying_ents_size:
                self.applying_ents_paused = False
                return
        else:
            self._unmeasured_bound = 0
        self.applying_ents_paused = self.applying_ents_size >= self.max_applying_ents_size

    def applied_to(self, i: int, size: int) -> None:
        """The application has applied up to ``i``, releasing ``size`` bytes."""
        if self.committed < i or i < self.applied:
            self.logger.panic(
                "applied(%d) is out of range [prevApplied(%d), committed(%d)]",
                i,
                self.applied,
                self.committed,
            )
        self.applied = i
        self.applying = max(self.applying, i)
        if self.applying_ents_size > size:
            self.applying_ents_size -= size
        else:
            # Never below zero, even if the caller over-reports.
            self.applying_ents_size = 0
        self.applying_ents_paused = self.applying_ents_size >= self.max_applying_ents_size

    def accept_applying(self, i: int, size: int, allow_unstable: bool) -> None:
        """Entries up to ``i`` (``size`` bytes) were handed to the application."""
        if self.committed < i:
            self.logger.panic(
                "applying(%d) is out of range [prevApplying(%d), committed(%d)]",
                i,
                self.applying,
                self.committed,
            )
        self.applying = i
        self.applying_ents_size += size
        # Pause when the budget is used up, or when the batch stopped short of what
        # could have been handed out: then it was cut by the size limit, and the next
        # entry would overflow it.
        self.applying_ents_paused = (
            self.applying_ents_size >= self.max_applying_ents_size
            or i < self.max_appliable_index(allow_unstable)
        )

    def stable_to(self, id: EntryID) -> None:
        self.unstable._stable_to(id.term, id.index)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def accept_unstable(self) -> None:
        """The application started persisting the current unstable entries/snapshot."""
        self.unstable.accept_in_progress()

    def last_entry_id(self) -> EntryID:
        """The id of the last entry in the log."""
        u = self.unstable
        ents = u.entries
        if ents:
            # The usual case on a leader: no storage access needed.
            return EntryID(ents[-1].term, u.offset + len(ents) - 1)
        index = self.last_index()
        try:
            t = self.term(index)
        except StorageError as err:
            self.logger.panic("unexpected error when getting the last term at %d: %s", index, err)
        return EntryID(t, index)

    def term(self, i: int) -> int:
        """The term of entry ``i``.

        Valid for ``first_index() - 1 <= i <= last_index()`` (the entry just before the
        first is compacted but its term is kept for matching). Raises
        :class:`CompactedError` below and :class:`UnavailableError` above that range.
        """
        # The unstable tail first: a hit there needs no storage access at all.
        u = self.unstable
        ents = u.entries
        pos = i - u.offset
        if pos >= 0 and pos < len(ents):
            return ents[pos].term
        if u.snapshot is None and (pos < 0 or not ents):
            # Only storage can answer: one maybe_term call when it has one. A miss
            # falls through to the checks below, which raise the right error.
            mt = self._storage_maybe_term
            if mt is not None:
                t = mt(i)
                if t is not None:
                    return t
        return self._term_slow(i)

    def _term_slow(self, i: int) -> int:
        # term() through the Storage protocol alone.
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        if i + 1 < self.first_index():
            raise CompactedError()
        if i > self.last_index():
            raise UnavailableError()
        return self.storage.term(i)

    def _term_or_none(self, i: int) -> int | None:
        """Like :meth:`term`, but ``None`` instead of raising for a missing entry.

        The hot paths probe entries that are often missing (the first new entry of an
        append); raising and catching would cost far more than the lookup.
        """
        u = self.unstable
        ents = u.entries
        pos = i - u.offset
        if pos >= 0:
            if pos < len(ents):
                return ents[pos].term
            if ents:
                return None  # past the last index
        if u.snapshot is None:
            # Storage's range: maybe_term answers None exactly where the checks
            # below would.
            mt = self._storage_maybe_term
            if mt is not None:
                return mt(i)
        t = u.maybe_term(i)
        if t is not None:
            return t
        if i + 1 < self.first_index() or i > self.last_index():
            return None
        try:
            return self.storage.term(i)
        except (CompactedError, UnavailableError):
            return None

    def zero_term_on_out_of_bounds(self, i: int) -> int:
        """The term of entry ``i``, or 0 if it is compacted or past the end.

        Go passes ``l.term(i)``'s (term, err) pair to this helper; here it takes the
        index and makes the call itself.
        """
        t = self._term_or_none(i)
        return 0 if t is None else t

    def entries(self, i: int, max_size: int) -> list[Entry]:
        """Entries from ``i`` to the end, size-limited (empty if ``i`` is past the end)."""
        last = self.last_index()
        if i > last:
            return []
        # slice(i, last + 1) without recomputing the bounds just established; only
        # the compaction check remains.
        if i < self.first_index():
            raise CompactedError()
        return self._slice(i, last + 1, max_size)

    def all_entries(self) -> list[Entry]:
        """Every entry in the log."""
        while True:
            try:
                return self.entries(self.first_index(), NO_LIMIT)
            except CompactedError:
                # Storage was compacted concurrently; try again.
                continue

    def is_up_to_date(self, their: EntryID) -> bool:
        """Whether a log ending at ``their`` is at least as up to date as ours.

        A later last term wins; with equal last terms, the longer log wins; equal logs
        count as up to date.
        """
        our = self.last_entry_id()
        return their.term > our.term or (their.term == our.term and their.index >= our.index)

    def match_term(self, id: EntryID) -> bool:
        """Whether our log has an entry with ``id``."""
        return self._match_term(id.term, id.index)

    def _match_term(self, term: int, index: int) -> bool:
        return self._term_or_none(index) == term

    def maybe_commit(self, at: EntryID) -> bool:
        """Commit up to ``at`` if it is in our log and advances ``committed``.

        A zero term never matches: a leader always has term 1 or higher.
        """
        return self._maybe_commit(at.term, at.index)

    def _maybe_commit(self, term: int, index: int) -> bool:
        # maybe_commit without the EntryID: the leader calls it on every ack.
        if term != 0 and index > self.committed and self._term_or_none(index) == term:
            # commit_to(index) without its range check: index is in the log (its term
            # was found), so it cannot be past the last index.
            self.committed = index
            return True
        return False

    def _last_term_known(self) -> bool:
        # True if term(last_index()) is sure to succeed without asking: the last
        # entry is unstable, or storage answers maybe_term, whose contract covers
        # its last index. (Lets the leader skip a lookup when there is nothing to
        # send.)
        u = self.unstable
        return bool(u.entries) or (u.snapshot is None and self._storage_maybe_term is not None)

    def restore(self, s: Snapshot) -> None:
        """Reset the log to snapshot ``s``, which becomes the unstable snapshot."""
        self.logger.info(
            "log [%s] starts to restore snapshot [index: %d, term: %d]",
            self,
            s.metadata.index,
            s.metadata.term,
        )
        self.committed = s.metadata.index
        self.unstable.restore(s)

    def scan(
        self,
        lo: int,
        hi: int,
        page_size: int,
        v: Callable[[list[Entry]], bool | None],
    ) -> None:
        """Feed all entries in ``[lo, hi)`` to ``v``, in pages of about ``page_size`` bytes.

        Each page holds consecutive entries and stays within ``page_size`` unless it is
        a single larger entry. ``v`` returning a true value stops the scan early (Go's
        ``errBreak``); exceptions raised by ``v`` propagate. The range must exist:
        ``CompactedError`` is raised otherwise (maybe after some pages were fed).
        """
        while lo < hi:
            ents = self.slice(lo, hi, page_size)
            if not ents:
                raise RaftError(f"got 0 entries in [{lo}, {hi})")
            if v(ents):
                return
            lo += len(ents)

    def slice(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        """A new list of the entries in ``[lo, hi)``, size-limited but never empty.

        Raises :class:`CompactedError` if ``lo`` is compacted; a range past the end is
        fatal.
        """
        self.must_check_out_of_bounds(lo, hi)
        if lo == hi:
            return []
        return self._slice(lo, hi, max_size)

    def _slice(self, lo: int, hi: int, max_size: int) -> list[Entry]:
        # slice() once the bounds are known to be good and lo < hi.
        u = self.unstable
        offset = u.offset
        if lo >= offset:
            # Entirely in the unstable tail; the slice is already a fresh list.
            u_ents = u.entries
            if hi - offset <= len(u_ents):
                # u.slice(lo, hi) without its (passing) bounds check.
                ents = u_ents[lo - offset : hi - offset]
            else:
                ents = u.slice(lo, hi)  # panics
            if len(ents) <= 1 or max_size >= NO_LIMIT:
                return ents
            return limit_size(ents, max_size)

        cut = min(hi, offset)
        try:
            ents = self.storage.entries(lo, cut, max_size)
        except UnavailableError:
            self.logger.panic("entries[%d:%d) is unavailable from storage", lo, cut)
        if hi <= offset:
            return ents

        # Storage returned fewer entries than asked: the size limit was hit already.
        if len(ents) < cut - lo:
            return ents
        tail = u.slice(offset, hi)
        if max_size >= NO_LIMIT or (
            ents_size_upper_bound(ents) + ents_size_upper_bound(tail) <= max_size
        ):
            # Everything clearly fits (the exact path below would agree); skip measuring.
            ents.extend(tail)
            return ents
        size = ents_size(ents)
        if size >= max_size:
            return ents
        tail = limit_size(tail, max_size - size)
        # limit_size may return a single entry exceeding the remaining budget; then
        # it does not belong in this batch.
        if len(tail) == 1 and size + ents_size(tail) > max_size:
            return ents
        ents.extend(tail)
        return ents

    def must_check_out_of_bounds(self, lo: int, hi: int) -> None:
        """Check ``first_index <= lo <= hi <= last_index + 1``.

        Raises :class:`CompactedError` if ``lo`` is compacted; anything else out of
        range is fatal.
        """
        if lo > hi:
            self.logger.panic("invalid slice %d > %d", lo, hi)
        fi = self.first_index()
        if lo < fi:
            raise CompactedError()
        last = self.last_index()
        if hi > last + 1:
            self.logger.panic("slice[%d,%d) out of bound [%d,%d]", lo, hi, fi, last)
