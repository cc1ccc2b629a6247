#!/usr/bin/env python3
"""Throughput of durable appends: DiskStorage.save(..., must_sync=True) per Ready.

Each configuration (batch of 1, 16 or 256 entries of 128 B or 4 KiB) runs for a fixed
time on a fresh store; every batch is one group commit (one write, one fsync), the
way a Ready with new entries is persisted. The log is compacted as it grows so memory
stays flat and segment release is part of the steady state. For context the run also
prints the latency of a bare pwrite+fdatasync on the same file system and, per case,
the throughput of the same loop without fsync (the CPU-side ceiling: encoding,
framing, write syscalls). Default total: ~20 s.

    .venv/bin/python bench/bench_wal.py [--seconds-per-case 3] [--dir PATH]

``--dir`` should be on the file system you care about (the default is a temporary
directory, often tmpfs or a VM disk whose fsync is cheaper than real hardware's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from raftcore.raftpb.types import Entry, HardState
from raftcore.wal import DiskStorage

BATCHES = (1, 16, 256)
SIZES = (128, 4096)
KEEP = 20_000  # entries kept in the cache before compacting


def raw_fdatasync_ms(root: str, seconds: float) -> float:
    """Latency of a bare 128-byte pwrite + fdatasync: the floor under every synced row."""
    fd, path = tempfile.mkstemp(dir=root)
    try:
        os.pwrite(fd, bytes(1 << 20), 0)
        os.fsync(fd)
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.pwrite(fd, b"x" * 128, (n * 128) % (1 << 20))
            os.fdatasync(fd)
            n += 1
        return (time.perf_counter() - start) / n * 1e3
    finally:
        os.close(fd)
        os.unlink(path)


def run_case(
    root: str, batch: int, size: int, seconds: float, sync: bool = True
) -> dict[str, float]:
    d = tempfile.mkdtemp(prefix=f"wal-b{batch}-s{size}-", dir=root)
    try:
        # The no-fsync runs measure CPU only: skip zero-filling 64 MiB segments.
        s = DiskStorage.open(d, preallocate=sync)
        data = os.urandom(size)
        index = 1
        n_batches = 0
        lat: list[float] = []
        # Warm-up: first segment creation and preallocation are not steady state.
        s.save(HardState(term=1, vote=1), [Entry(term=1, index=index, data=data)], True)
        index += 1
        # Throughput counts time spent inside the store only (save and compact), not
        # building the Entry objects of the next batch.
        busy = 0.0
        deadline = time.perf_counter() + seconds
        now = 0.0
        while now < deadline:
            ents = [Entry(term=1, index=index + k, data=data) for k in range(batch)]
            t0 = time.perf_counter()
            s.save(HardState(term=1, vote=1, commit=index - 1), ents, must_sync=sync)
            now = time.perf_counter()
            lat.append(now - t0)
            busy += now - t0
            index += batch
            n_batches += 1
            if index - s.first_index() > KEEP:
                t0 = time.perf_counter()
                s.compact(index - KEEP // 2)
                busy += time.perf_counter() - t0
        elapsed = busy
        s.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    n_entries = n_batches * batch
    lat.sort()
    return {
        "batches_s": n_batches / elapsed,
        "entries_s": n_entries / elapsed,
        "mib_s": n_entries * size / elapsed / (1 << 20),
        "mean_ms": statistics.fmean(lat) * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds-per-case", type=float, default=2.5)
    ap.add_argument("--dir", default=None, help="where to create the stores")
    args = ap.parse_args()
    root = args.dir or tempfile.gettempdir()
    print(f"durable appends (save with must_sync=True) in {root}")
    print(f"raw 128-byte pwrite+fdatasync here: {raw_fdatasync_ms(root, 1.0):.3f} ms")
    print("(last column: the same loop without fsync, i.e. the CPU-side ceiling)")
    header = (
        f"{'batch':>5} {'entry':>6} {'batches/s':>10} {'entries/s':>10} "
        f"{'MiB/s':>7} {'mean ms':>8} {'p99 ms':>7} {'nosync entries/s':>17}"
    )
    print(header)
    print("-" * len(header))
    for size in SIZES:
        for batch in BATCHES:
            r = run_case(root, batch, size, args.seconds_per_case)
            cpu = run_case(root, batch, size, args.seconds_per_case / 5, sync=False)
            label = f"{size} B" if size < 1024 else f"{size // 1024} KiB"
            print(
                f"{batch:>5} {label:>6} {r['batches_s']:>10.0f} {r['entries_s']:>10.0f} "
                f"{r['mib_s']:>7.1f} {r['mean_ms']:>8.3f} {r['p99_ms']:>7.3f} "
                f"{cpu['entries_s']:>17.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
