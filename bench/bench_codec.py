"""Encode/decode rates of raftcore's protobuf codec against the protobuf runtime.

Run as ``python bench/bench_codec.py [--quick]``. Needs the dev dependencies
(``protobuf``, ``hypothesis``): the library side uses the message classes and the
raftcore <-> library converters of ``tests/test_codec.py``, which the test suite checks
for byte-identical results, so both sides do the same job:

* ours:    ``encode_message(m)`` / ``decode_message(b)``;
* library: build the library message from ``m`` and ``SerializeToString()`` /
  ``FromString(b)`` and build the raftcore ``Message`` from it;
* library wire only: ``SerializeToString()`` of a prebuilt library message /
  ``FromString(b)`` alone: the floor the conversions add to.

Figures are the best of several interleaved runs, in messages per second.
"""

from __future__ import annotations

import argparse
import random
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from google.protobuf.internal import api_implementation

from raftcore.raftpb.codec import decode_message, encode_message
from raftcore.raftpb.types import Entry, Message, MessageType
from test_codec import (  # type: ignore[import-not-found, unused-ignore]
    PB,
    fill_message,
    message_from_pb,
)


def msg_app(sizes: list[int]) -> Message:
    first = 1_000_000
    ents = [Entry(term=5, index=first + i, data=bytes(n)) for i, n in enumerate(sizes)]
    return Message(
        type=MessageType.MsgApp,
        to=2,
        from_=1,
        term=5,
        log_term=5,
        index=first - 1,
        entries=ents,
        commit=first + 10,
    )


def cases() -> dict[str, Message]:
    rnd = random.Random(1)
    return {
        "MsgApp 64x128B": msg_app([128] * 64),
        # Same, with payload sizes varying from entry to entry (1..256 bytes).
        "MsgApp 64x1-256B": msg_app([rnd.randint(1, 256) for _ in range(64)]),
        "MsgHeartbeat": Message(
            type=MessageType.MsgHeartbeat, to=2, from_=1, term=5, commit=1_000_010
        ),
    }


def rates(fns: list[Callable[[], Any]], rounds: int, min_time: float) -> list[float]:
    """Best calls per second of each of ``fns``.

    The functions are timed in turns, ``rounds`` times over, so that a change in
    machine load during the benchmark affects all of them alike.
    """
    timers = [timeit.Timer(fn) for fn in fns]
    numbers = []
    for timer in timers:
        number = 1
        while timer.timeit(number) < min_time:
            number *= 2
        numbers.append(number)
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, (timer, number) in enumerate(zip(timers, numbers, strict=True)):
            best[i] = max(best[i], number / timer.timeit(number))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    args = parser.parse_args()
    repeat, min_time = (3, 0.05) if args.quick else (7, 0.2)

    pb_message = PB["Message"]
    print(f"protobuf runtime: {api_implementation.Type()}, Python {sys.version.split()[0]}")
    header = (
        f"{'case':<18} {'op':<7} {'ours':>12} {'library':>12} {'ours/lib':>9} {'lib wire only':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, m in cases().items():
        wire = encode_message(m)
        prebuilt = fill_message(pb_message(), m)
        assert prebuilt.SerializeToString() == wire
        assert message_from_pb(pb_message.FromString(wire)) == decode_message(wire) == m

        rows = {
            "encode": (
                lambda m=m: encode_message(m),
                lambda m=m: fill_message(pb_message(), m).SerializeToString(),
                prebuilt.SerializeToString,
            ),
            "decode": (
                lambda w=wire: decode_message(w),
                lambda w=wire: message_from_pb(pb_message.FromString(w)),
                lambda w=wire: pb_message.FromString(w),
            ),
        }
        for op, (ours, lib, lib_wire) in rows.items():
            r_ours, r_lib, r_wire = rates([ours, lib, lib_wire], repeat, min_time)
            print(
                f"{name:<18} {op:<7} {r_ours:>12,.0f} {r_lib:>12,.0f} "
                f"{r_ours / r_lib:>8.2f}x {r_wire:>14,.0f}"
            )
        print(f"{'':<18} ({len(wire)} bytes on the wire)")


if __name__ == "__main__":
    main()
