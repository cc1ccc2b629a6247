"""The write-ahead log: an ordered, checksummed, crash-safe record of every change.

Durability contract
    A record is durable once the call that wrote it returned *and* a sync followed:
    :meth:`WAL.save` with ``sync=True``, a later :meth:`WAL.sync`, any marker write
    (snapshot and compaction markers always sync), a rotation or :meth:`WAL.close`.
    A group commit (:meth:`WAL.save`: entries and hard state of one Ready) is one
    write, so after a crash it is either wholly present or wholly absent, whatever was
    synced before it is present, and nothing after a missing record is present.

Recovery (:meth:`WAL.open`)
    Segments are read in order and their records replayed with the same rules
    :class:`raftcore.storage.MemoryStorage` applies to writes (an entries batch that
    starts inside the log replaces the suffix from there; a compaction marker drops the
    prefix; a snapshot marker with the reset flag empties the log), so conflict
    truncation needs no record of its own: the batch carries its indices.

    * An invalid record at the end of the *last* segment, with nothing valid after it,
      is a torn write from a crash: it is zeroed out (logged as a warning) and
      appending continues there.
    * An invalid record followed by a valid one, or an invalid record in any other
      segment (those were fsynced before the next one began), is damage: recovery
      raises :class:`~raftcore.wal.errors.WALCorruptionError` naming the file and byte
      offset and drops nothing. Caveat: after a *power loss*, a disk may have
      written a later page of the never-synced tail but not an earlier one; that is
      reported as corruption too, since telling it apart from bit rot is guesswork.

Segments and release
    A segment begins with a header recording the log's shape at that moment (base
    index/term, last index, latest snapshot) followed by the current hard state, so a
    replay can start at any segment whose predecessors are gone as long as the entries
    those predecessors held were later compacted away. Segments are deleted
    (``release``) exactly when that holds: after a durable compaction marker at or past
    the segment's starting last index, or a durable snapshot reset. Recovery checks it
    again and refuses (``WALCorruptionError``) if entries a replay needs are missing.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from raftcore.logger import Logger, default_logger
from raftcore.raftpb.types import Entry, HardState
from raftcore.wal.errors import WALCorruptionError, WALDirectoryError, WALError, WALLockedError
from raftcore.wal.fileutil import fsync_dir, zero_fill
from raftcore.wal.record import (
    Record,
    RecordKind,
    SegmentHeader,
    append_compact,
    append_entries,
    append_hard_state,
    append_header,
    append_snapshot,
    decode_compact,
    decode_entries,
    decode_hard_state,
    decode_header,
    decode_snapshot,
    find_frame,
    scan,
)
from raftcore.wal.segment import (
    TMP_SUFFIX,
    Preallocator,
    SegmentInfo,
    SegmentWriter,
    create_segment,
    open_segment_for_append,
    parse_segment_name,
    read_file,
    segment_name,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_SEGMENT_SIZE", "LOCK_NAME", "WAL", "Recovered", "check_directory"]

DEFAULT_SEGMENT_SIZE: Final = 64 * 1024 * 1024
LOCK_NAME: Final = "LOCK"


@dataclass(slots=True)
class Recovered:
    """The durable state a WAL replays to.

    ``entries`` are the entries after ``base_index`` (the compaction point, or the
    index of the snapshot the log was reset to), consecutive; ``snapshot`` is the
    ``(index, term)`` of the latest snapshot marker, ``None`` if there was none.
    """

    hard_state: HardState = field(default_factory=HardState)
    base_index: int = 0
    base_term: int = 0
    entries: list[Entry] = field(default_factory=list)
    snapshot: tuple[int, int] | None = None


@dataclass(slots=True)
class _Shape:
    """The log's shape as of the last record written: what a new header records."""

    hard_state: HardState
    base_index: int
    base_term: int
    last_index: int
    snapshot: tuple[int, int] | None

    def header(self, seq: int) -> SegmentHeader:
        si, st = self.snapshot if self.snapshot is not None else (0, 0)
        return SegmentHeader(
            seq, self.base_index, self.base_term, self.last_index, si, st, self.snapshot is not None
        )


class _Replay:
    """Rebuilds the log from records, applying MemoryStorage's write rules.

    A replay that starts at a segment whose predecessors were released does not know
    the entries ``(base_index, unknown_hi]`` that were live when that segment began;
    they must be compacted away (or reset by a snapshot) later in the log, else a
    segment that was still needed is missing. Known entries follow ``unknown_hi``.
    """

    __slots__ = ("base_index", "base_term", "ents", "hard_state", "snapshot", "unknown_hi")

    def __init__(self, h: SegmentHeader) -> None:
        self.base_index = h.base_index
        self.base_term = h.base_term
        self.unknown_hi = max(h.last_index, h.base_index)
        self.ents: list[Entry] = []
        self.hard_state = HardState()
        self.snapshot = (h.snap_index, h.snap_term) if h.has_snapshot else None

    def last_index(self) -> int:
        return self.unknown_hi + len(self.ents)

    def check_header(self, h: SegmentHeader) -> str | None:
        """Why header ``h`` does not continue the replayed log, or ``None``."""
        snap = (h.snap_index, h.snap_term) if h.has_snapshot else None
        if (h.base_index, h.base_term, h.last_index, snap) != (
            self.base_index,
            self.base_term,
            self.last_index(),
            self.snapshot,
        ):
            return (
                f"segment header (base {h.base_index}/{h.base_term}, last {h.last_index}, "
                f"snapshot {snap}) disagrees with the log before it (base "
                f"{self.base_index}/{self.base_term}, last {self.last_index()}, "
                f"snapshot {self.snapshot})"
            )
        return None

    def apply(self, rec: Record) -> None:
        """Apply one record; raises ``ValueError`` if it is inconsistent with the log."""
        kind = rec.kind
        if kind == RecordKind.ENTRIES:
            self._append(decode_entries(rec.payload))
        elif kind == RecordKind.HARD_STATE:
            self.hard_state = decode_hard_state(rec.payload)
        elif kind == RecordKind.COMPACT:
            self._compact(*decode_compact(rec.payload))
        elif kind == RecordKind.SNAPSHOT:
            index, term, reset = decode_snapshot(rec.payload)
            self.snapshot = (index, term)
            if reset:
                self.base_index = self.unknown_hi = index
                self.base_term = term
                self.ents = []
        else:
            raise ValueError(f"unexpected {kind.name} record inside a segment")

    def _append(self, batch: list[Entry]) -> None:
        first = self.base_index + 1
        start = batch[0].index
        if start + len(batch) - 1 < first:
            return
        if start < first:
            batch = batch[first - start :]
            start = first
        keep = start - 1 - self.unknown_hi
        if keep <= 0:
            self.unknown_hi = start - 1
            self.ents = batch
        elif keep <= len(self.ents):
            del self.ents[keep:]
            self.ents.extend(batch)
        else:
            raise ValueError(
                f"entries batch starts at {start}, after a gap (last index {self.last_index()})"
            )

    def _compact(self, index: int, term: int) -> None:
        if index <= self.base_index or index > self.last_index():
            raise ValueError(
                f"compaction to {index} outside the log ({self.base_index}, {self.last_index()}]"
            )
        if index >= self.unknown_hi:
            k = index - self.unknown_hi
            if k > 0 and self.ents[k - 1].term != term:
                raise ValueError(
                    f"compaction marker says term {term} at {index}, "
                    f"the log has {self.ents[k - 1].term}"
                )
            del self.ents[:k]
            self.unknown_hi = index
        self.base_index = index
        self.base_term = term


def check_directory(path: str) -> None:
    """Raise :class:`WALDirectoryError` unless ``path`` is a usable directory."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise WALDirectoryError(f"wal: directory {path} does not exist") from None
    except PermissionError as err:
        raise WALDirectoryError(f"wal: cannot access directory {path}: {err.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise WALDirectoryError(f"wal: {path} is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise WALDirectoryError(
            f"wal: directory {path} is not readable, writable and searchable by this process"
        )


def _lock_directory(path: str) -> int:
    lock_path = os.path.join(path, LOCK_NAME)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except PermissionError as err:
        raise WALDirectoryError(f"wal: cannot create {lock_path}: {err.strerror}") from None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WALLockedError(f"wal: {path} is in use by another process") from None
            raise
    return fd


class WAL:
    """An open write-ahead log in a directory (see the module docstring).

    Not thread-safe on its own: :class:`raftcore.wal.DiskStorage` serializes writers.
    After a failed write or fsync every further call raises :class:`WALError`.
    """

    __slots__ = (
        "_dir",
        "_dirty",
        "_failed",
        "_lock_fd",
        "_logger",
        "_prealloc",
        "_release_seq",
        "_segment_size",
        "_segments",
        "_shape",
        "_writer",
    )

    def __init__(
        self,
        dir_path: str,
        lock_fd: int,
        segments: list[SegmentInfo],
        writer: SegmentWriter,
        shape: _Shape,
        segment_size: int,
        preallocate: bool,
        logger: Logger,
    ) -> None:
        self._dir = dir_path
        self._lock_fd: int | None = lock_fd
        self._segments = segments
        self._writer: SegmentWriter | None = writer
        self._shape = shape
        self._segment_size = segment_size
        self._logger = logger
        self._dirty = False
        self._failed: BaseException | None = None
        self._release_seq = 0
        self._prealloc = Preallocator(dir_path, segment_size) if preallocate else None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        dir_path: str | os.PathLike[str],
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        preallocate: bool = True,
        logger: Logger | None = None,
    ) -> tuple[WAL, Recovered]:
        """Open (creating it if the directory holds none) the WAL in ``dir_path``.

        The directory must exist. Returns the log, positioned for appending, and the
        state it replays to. Raises :class:`WALDirectoryError`, :class:`WALLockedError`
        or :class:`WALCorruptionError`.
        """
        if segment_size < 4096:
            raise ValueError(f"wal: segment size {segment_size} is below 4096 bytes")
        path = os.fspath(dir_path)
        log = logger if logger is not None else default_logger()
        check_directory(path)
        lock_fd = _lock_directory(path)
        try:
            return cls._open_locked(path, lock_fd, segment_size, preallocate, log)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _open_locked(
        cls, path: str, lock_fd: int, segment_size: int, preallocate: bool, log: Logger
    ) -> tuple[WAL, Recovered]:
        seqs: list[int] = []
        try:
            names = os.listdir(path)
        except PermissionError as err:
            raise WALDirectoryError(f"wal: cannot list {path}: {err.strerror}") from None
        for name in names:
            if name.endswith(TMP_SUFFIX):
                # A segment or preallocation that never got renamed into place.
                os.unlink(os.path.join(path, name))
                continue
            seq = parse_segment_name(name)
            if seq is not None:
                seqs.append(seq)
        seqs.sort()
        prealloc_size = segment_size if preallocate else 0
        if not seqs:
            shape = _Shape(HardState(), 0, 0, 0, None)
            try:
                writer = create_segment(path, 1, _initial_records(shape, 1), prealloc_size)
            except PermissionError as err:
                raise WALDirectoryError(f"wal: cannot create a segment in {path}: {err}") from None
            info = SegmentInfo(1, writer.path, shape.header(1))
            wal = cls(path, lock_fd, [info], writer, shape, segment_size, preallocate, log)
            wal._start_prealloc()
            return wal, Recovered()

        # Only the newest run of consecutive sequence numbers is the log; anything
        # older is what an interrupted release left behind (checked below: if the run
        # does not replay completely, that is reported, not papered over).
        first = len(seqs) - 1
        while first > 0 and seqs[first - 1] == seqs[first] - 1:
            first -= 1
        stale = seqs[:first]
        run = seqs[first:]

        replay: _Replay | None = None
        segments: list[SegmentInfo] = []
        release_seq = 0
        end = data_start = 0
        torn: tuple[int, int, str] | None = None
        for k, seq in enumerate(run):
            seg_path = os.path.join(path, segment_name(seq))
            try:
                data = read_file(seg_path)
            except PermissionError as err:
                raise WALDirectoryError(f"wal: cannot read {seg_path}: {err.strerror}") from None
            res = scan(data)
            records = res.records
            if res.bad_offset is not None:
                # Damage is judged before anything else so that its report names
                # the damaged record rather than a consequence of it.
                reason = res.bad_reason
                if res.bad_offset == 0:
                    reason = f"bad segment header: {reason}"
                if k != len(run) - 1:
                    raise WALCorruptionError(
                        seg_path,
                        res.bad_offset,
                        f"{reason} in a segment that was complete before the next began",
                    )
                follow = find_frame(data, res.bad_offset + 1, res.data_end)
                if follow is not None:
                    raise WALCorruptionError(
                        seg_path,
                        res.bad_offset,
                        f"{reason}, yet a valid record follows at offset {follow}",
                    )
                torn = (res.bad_offset, res.data_end, reason)
            if not records or records[0].kind != RecordKind.HEADER:
                reason = res.bad_reason or "segment does not start with a header"
                raise WALCorruptionError(seg_path, 0, f"bad segment header: {reason}")
            try:
                header = decode_header(records[0].payload)
            except ValueError as err:
                raise WALCorruptionError(seg_path, 0, str(err)) from None
            if header.seq != seq:
                raise WALCorruptionError(
                    seg_path, 0, f"header says segment {header.seq}, file name says {seq}"
                )
            if len(records) < 2 or records[1].kind != RecordKind.HARD_STATE:
                raise WALCorruptionError(
                    seg_path, records[0].end, "segment lacks the hard state it begins with"
                )
            if replay is None:
                replay = _Replay(header)
            else:
                mismatch = replay.check_header(header)
                if mismatch is None:
                    try:
                        initial_hs = decode_hard_state(records[1].payload)
                    except ValueError as err:
                        raise WALCorruptionError(seg_path, records[1].offset, str(err)) from None
                    if initial_hs != replay.hard_state:
                        mismatch = (
                            f"segment begins with hard state {initial_hs}, the log before "
                            f"it ends with {replay.hard_state}"
                        )
                if mismatch is not None:
                    raise WALCorruptionError(seg_path, 0, mismatch)
            segments.append(SegmentInfo(seq, seg_path, header))
            release_seq = _release_after_header(header, release_seq)
            for rec in records[1:]:
                try:
                    replay.apply(rec)
                except ValueError as err:
                    raise WALCorruptionError(seg_path, rec.offset, str(err)) from None
                if rec.kind == RecordKind.COMPACT:
                    release_seq = _release_after_compact(segments, replay.base_index, release_seq)
                elif rec.kind == RecordKind.SNAPSHOT and decode_snapshot(rec.payload)[2]:
                    release_seq = seq
            # The records a segment is created with: its header and the hard state.
            data_start = records[1].end
            end = res.end
        assert replay is not None
        if replay.unknown_hi > replay.base_index:
            raise WALCorruptionError(
                segments[0].path,
                0,
                f"log entries {replay.base_index + 1}..{replay.unknown_hi} are missing: "
                f"segments before {segments[0].seq} were removed while still needed",
            )

        writer = open_segment_for_append(segments[-1].path, end, data_start)
        try:
            if torn is not None:
                log.warning(
                    "wal: %s: torn write at offset %d (%s); discarding %d bytes",
                    writer.path,
                    torn[0],
                    torn[2],
                    torn[1] - torn[0],
                )
                # Zeros, not ftruncate: the file keeps its preallocation, and no stale
                # bytes of the torn write can ever resurface behind a later record.
                zero_fill(writer.fd, torn[0], torn[1])
            # What was replayed becomes durable before anything relies on it (older
            # segments may be released below because of markers in this one).
            writer.sync()
        except BaseException:
            writer.close()
            raise
        shape = _Shape(
            replay.hard_state,
            replay.base_index,
            replay.base_term,
            replay.last_index(),
            replay.snapshot,
        )
        wal = cls(path, lock_fd, segments, writer, shape, segment_size, preallocate, log)
        for seq in stale:
            log.warning("wal: removing segment %d, left over by an interrupted release", seq)
            try:
                os.unlink(os.path.join(path, segment_name(seq)))
            except OSError as err:
                log.warning("wal: cannot remove segment %d: %s", seq, err)
        wal._release_seq = release_seq
        wal._release()
        wal._start_prealloc()
        recovered = Recovered(
            replay.hard_state, replay.base_index, replay.base_term, replay.ents, replay.snapshot
        )
        return wal, recovered

    # ------------------------------------------------------------------ writing

    def _check(self) -> SegmentWriter:
        if self._failed is not None:
            raise WALError(f"wal: unusable after an earlier I/O failure: {self._failed}")
        if self._writer is None:
            raise WALError("wal: closed")
        return self._writer

    def _fail(self, err: OSError) -> WALError:
        self._failed = err
        return WALError(f"wal: write to {self._dir} failed: {err}")

    def _write(self, parts: list[bytes], sync: bool) -> None:
        w = self._check()
        size = sum(map(len, parts))
        try:
            if w.offset + size > self._segment_size and w.offset > w.data_start:
                w = self._rotate(w)
            w.write(parts)
            if sync:
                w.sync()
                self._dirty = False
            else:
                self._dirty = True
        except OSError as err:
            raise self._fail(err) from err

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], sync: bool) -> None:
        """Group commit: ``entries`` then ``hard_state``, one write, fsync iff ``sync``.

        The records' frame headers and payloads go to the file in one ``pwritev``.

        ``entries`` must already be cut to what the log accepts (none at or before the
        base index, no gap); either part may be empty/``None``.
        """
        parts: list[bytes] = []
        if entries:
            append_entries(parts, entries)
        if hard_state is not None:
            append_hard_state(parts, hard_state)
        if not parts:
            if sync and self._dirty:
                self.sync()
            return
        self._write(parts, sync)
        shape = self._shape
        if entries:
            shape.last_index = entries[-1].index
        if hard_state is not None:
            shape.hard_state = HardState(hard_state.term, hard_state.vote, hard_state.commit)

    def save_snapshot(self, index: int, term: int, reset: bool) -> None:
        """Record (durably) that the snapshot ``(index, term)`` is the latest one.

        With ``reset`` the log is emptied to a base of ``(index, term)``, as
        ``apply_snapshot`` does, and every older segment is released.
        """
        parts: list[bytes] = []
        append_snapshot(parts, index, term, reset)
        self._write(parts, True)
        shape = self._shape
        shape.snapshot = (index, term)
        if reset:
            shape.base_index = shape.last_index = index
            shape.base_term = term
            self._release_seq = self._segments[-1].seq
            self._release()

    def save_compact(self, index: int, term: int) -> None:
        """Record (durably) that entries up to ``index`` are gone; release old segments."""
        parts: list[bytes] = []
        append_compact(parts, index, term)
        self._write(parts, True)
        shape = self._shape
        shape.base_index = index
        shape.base_term = term
        self._release_seq = _release_after_compact(self._segments, index, self._release_seq)
        self._release()

    def sync(self) -> None:
        """Make everything written so far durable."""
        w = self._check()
        try:
            w.sync()
        except OSError as err:
            raise self._fail(err) from err
        self._dirty = False

    # --------------------------------------------------------- segments, release

    def _start_prealloc(self) -> None:
        if self._prealloc is not None:
            self._prealloc.start()

    def _rotate(self, w: SegmentWriter) -> SegmentWriter:
        # The finished segment is synced first: only the last segment may ever hold
        # a torn write, which is what lets recovery treat damage elsewhere as fatal.
        w.sync()
        self._dirty = False
        seq = self._segments[-1].seq + 1
        header = self._shape.header(seq)
        prepared = None
        if self._prealloc is not None:
            prepared = self._prealloc.take()
            if prepared is None and self._prealloc.error is not None:
                self._logger.warning(
                    "wal: background preallocation failed (%s); preallocating inline",
                    self._prealloc.error,
                )
        size = self._segment_size if self._prealloc is not None else 0
        new = create_segment(self._dir, seq, _initial_records(self._shape, seq), size, prepared)
        w.close()
        self._writer = new
        self._segments.append(SegmentInfo(seq, new.path, header))
        self._release_seq = _release_after_header(header, self._release_seq)
        self._release()
        self._start_prealloc()
        return new

    def _release(self) -> None:
        """Delete the segments a replay no longer needs (see the module docstring).

        Oldest first, and never raising: the record that made them unnecessary is
        already durable, so a failed unlink only leaves a file behind (the next
        release or recovery removes it); it must not make the caller's write fail.
        """
        segs = self._segments
        if len(segs) < 2 or segs[0].seq >= self._release_seq:
            return
        removed = 0
        for s in segs[:-1]:
            if s.seq >= self._release_seq:
                break
            try:
                os.unlink(s.path)
            except FileNotFoundError:
                pass
            except OSError as err:
                self._logger.warning("wal: cannot remove released segment %s: %s", s.path, err)
                break
            removed += 1
        if not removed:
            return
        del segs[:removed]
        try:
            fsync_dir(self._dir)
        except OSError as err:
            self._logger.warning("wal: cannot sync directory %s: %s", self._dir, err)

    @property
    def segments(self) -> list[SegmentInfo]:
        """The live segments, oldest first (a copy of the list)."""
        return list(self._segments)

    @property
    def segment_paths(self) -> list[str]:
        """Paths of the live segments, oldest first."""
        return [s.path for s in self._segments]

    @property
    def dir(self) -> str:
        return self._dir

    def close(self) -> None:
        """Sync what was written, then release the files and the directory lock."""
        w = self._writer
        if w is None:
            return
        try:
            if self._dirty and self._failed is None:
                w.sync()
        finally:
            self._writer = None
            w.close()
            if self._prealloc is not None:
                self._prealloc.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _initial_records(shape: _Shape, seq: int) -> bytes:
    """What segment ``seq`` begins with: its header, then the current hard state.

    The hard state is written even when empty so that recovery can tell it from a
    later record and check it against the log before.
    """
    parts: list[bytes] = []
    append_header(parts, shape.header(seq))
    append_hard_state(parts, shape.hard_state)
    return b"".join(parts)


def _release_after_header(h: SegmentHeader, release_seq: int) -> int:
    # A segment begun with every live entry compacted replays on its own.
    return max(release_seq, h.seq) if h.base_index >= h.last_index else release_seq


def _release_after_compact(segments: list[SegmentInfo], index: int, release_seq: int) -> int:
    # Replaying from segment s lacks the entries that were live when s began (up to
    # its header's last index); a durable compaction at or past that makes them moot.
    for s in segments:
        if s.header.last_index <= index and s.seq > release_seq:
            release_seq = s.seq
    return release_seq
