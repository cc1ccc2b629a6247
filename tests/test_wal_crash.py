"""Crash tests with real processes: ``kill -9`` a writer at random moments, many times.

A child Python process opens the store, then loops: it announces each operation on a
pipe (``B ...``), performs it (appends are fsynced group commits, sometimes
conflicting with the log's tail; compactions and snapshots are synced by design) and
reports it done (``D``) once it returned. The parent kills it at a random moment,
reopens the store and checks that what recovery produced is exactly the state after
the last reported operation, or after the one in flight: every synced entry is
present, a group commit is all or nothing, nothing follows a gap. Then the parent
appends a batch itself and hands the store to the next child.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from raftcore.raftpb.types import ConfState, Entry, HardState
from raftcore.wal import DiskStorage

SEGMENT_SIZE = 8192
KILLS = 30

CHILD = r"""
import os, random, sys
from raftcore.raftpb.types import ConfState, Entry, HardState
from raftcore.wal import DiskStorage

def payload(index, term):
    return (b"%d/%d;" % (index, term)) * (1 + index % 9)

def main():
    d, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    out = sys.stdout.fileno()
    def say(line):
        os.write(out, line.encode() + b"\n")
    say("OPENING")
    s = DiskStorage.open(d, segment_size=int(sys.argv[3]))
    say("READY")
    term = max(1, s.initial_state()[0].term, s.term(s.last_index()))
    while True:
        first, last = s.first_index(), s.last_index()
        snap_index = s.snapshot().metadata.index
        r = rng.random()
        if r < 0.04 and last >= first + 10:
            i = rng.randint(first, last - 5)
            say("B C %d" % i)
            s.compact(i)
        elif r < 0.08 and last > max(snap_index, first - 1):
            i = rng.randint(max(snap_index + 1, first - 1), last)
            say("B S %d" % i)
            s.create_snapshot(i, ConfState(voters=[1, 2, i % 5 + 3]), b"snap%d" % i)
        else:
            start = last + 1
            if r < 0.25 and last >= first + 3:
                start -= rng.randint(1, 3)
                term += 1
            n = rng.randint(1, 16)
            say("B A %d %d %d" % (start, n, term))
            ents = [Entry(term=term, index=i, data=payload(i, term)) for i in range(start, start + n)]
            s.save(HardState(term=term, vote=1, commit=start - 1), ents, must_sync=True)
        say("D")

main()
"""


def payload(index: int, term: int) -> bytes:
    return (b"%d/%d;" % (index, term)) * (1 + index % 9)


@dataclass(slots=True)
class Model:
    """What the store must hold: MemoryStorage's rules applied to the reported ops."""

    offset: int = 0
    offset_term: int = 0
    terms: list[int] = field(default_factory=list)  # terms of offset+1, offset+2, ...
    hs: HardState = field(default_factory=HardState)
    snap: tuple[int, int, list[int]] | None = None  # index, term, voters

    def last(self) -> int:
        return self.offset + len(self.terms)

    def term(self, i: int) -> int:
        return self.offset_term if i == self.offset else self.terms[i - self.offset - 1]

    def apply(self, op: list[int | str]) -> Model:
        m = replace(self, terms=list(self.terms))
        if op[0] == "A":
            start, n, term = int(op[1]), int(op[2]), int(op[3])
            assert self.offset < start <= self.last() + 1
            del m.terms[start - self.offset - 1 :]
            m.terms.extend([term] * n)
            m.hs = HardState(term=term, vote=1, commit=start - 1)
        elif op[0] == "C":
            i = int(op[1])
            m.offset_term = self.term(i)
            m.terms = m.terms[i - self.offset :]
            m.offset = i
        else:
            i = int(op[1])
            m.snap = (i, self.term(i), [1, 2, i % 5 + 3])
        return m

    def matches(self, s: DiskStorage) -> bool:
        ents = s.ents
        want_ents = [Entry(term=self.offset_term, index=self.offset)] + [
            Entry(term=t, index=self.offset + 1 + k, data=payload(self.offset + 1 + k, t))
            for k, t in enumerate(self.terms)
        ]
        snap = s.snapshot()
        if self.snap is None:
            want_snap: tuple[int, int, list[int]] = (0, 0, [])
        else:
            want_snap = self.snap
        got_snap = (snap.metadata.index, snap.metadata.term, snap.metadata.conf_state.voters)
        return bool(
            ents == want_ents
            and s.initial_state()[0] == self.hs
            and got_snap == want_snap
            and (self.snap is None or snap.data == b"snap%d" % self.snap[0])
        )


def parse(out: bytes) -> tuple[list[list[int | str]], list[int | str] | None]:
    """The completed operations and the one in flight (announced, never reported done)."""
    done: list[list[int | str]] = []
    pending: list[int | str] | None = None
    for line in out.decode().splitlines():
        if line.startswith("B "):
            assert pending is None
            pending = list(line.split()[1:])
        elif line == "D":
            assert pending is not None
            done.append(pending)
            pending = None
    return done, pending


def test_kill_9_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(20240517)
    d = tmp_path / "store"
    d.mkdir()
    model = Model()
    inflight_seen = completed = 0
    started = time.monotonic()
    for k in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(d), str(rng.randrange(1 << 30)), str(SEGMENT_SIZE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,  # unbuffered: communicate() must see every byte readline() did not
        )
        assert proc.stdout is not None
        head = proc.stdout.readline()
        assert head == b"OPENING\n", proc.communicate()[1].decode()
        if k % 5 == 4:
            # Now and then, kill it while it is still recovering.
            time.sleep(rng.uniform(0, 0.005))
        else:
            ready = proc.stdout.readline()
            assert ready == b"READY\n", proc.communicate()[1].decode()
            time.sleep(rng.uniform(0.002, 0.06))
        proc.kill()  # SIGKILL
        out, err = proc.communicate()
        assert proc.returncode == -9, err.decode()
        done, pending = parse(out)
        for op in done:
            model = model.apply(op)
        completed += len(done)

        s = DiskStorage.open(d, segment_size=SEGMENT_SIZE)
        if not model.matches(s):
            assert pending is not None, f"kill {k}: recovered state lost a synced operation"
            after = model.apply(pending)
            assert after.matches(s), f"kill {k}: recovered state matches neither side of {pending}"
            model = after
            inflight_seen += 1
        # The recovered store takes appends, and they survive the next reopen.
        last = s.last_index()
        term = max(1, model.hs.term, model.term(last))
        s.save(
            HardState(term=term, vote=1, commit=last),
            [Entry(term=term, index=last + 1, data=payload(last + 1, term))],
            must_sync=True,
        )
        model = model.apply(["A", last + 1, 1, term])
        model.hs = HardState(term=term, vote=1, commit=last)
        s.close()
    s = DiskStorage.open(d, segment_size=SEGMENT_SIZE)
    assert model.matches(s)
    s.close()
    elapsed = time.monotonic() - started
    # The run did real work: many synced operations, across several segments.
    assert completed > KILLS * 3, completed
    assert model.last() > 200
    print(
        f"{KILLS} kills, {completed} ops, {inflight_seen} in-flight ops recovered, {elapsed:.1f}s"
    )


def test_child_script_writes_what_the_model_expects(tmp_path: Path) -> None:
    """The parent's model and the child agree on a run that is not killed mid-way."""
    s = DiskStorage.open(tmp_path, segment_size=SEGMENT_SIZE)
    s.save(HardState(term=1, vote=1), [Entry(term=1, index=1, data=payload(1, 1))], True)
    s.create_snapshot(1, ConfState(voters=[1, 2, 4]), b"snap1")
    s.close()
    m = Model().apply(["A", 1, 1, 1])
    m.hs = HardState(term=1, vote=1)
    m = m.apply(["S", 1])
    s = DiskStorage.open(tmp_path, segment_size=SEGMENT_SIZE)
    assert m.matches(s)
    s.close()
