"""AsyncNode's back-pressure: a full inbox makes callers wait, first come first served,
with messages and the application's own calls admitted before waiting proposals.

``MAX_INBOX`` is patched down so that a handful of concurrent callers fill it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

import raftcore.async_node as async_node_mod
from raft_testutil import new_test_memory_storage, with_peers
from raftcore.errors import StoppedError
from raftcore.node import _PROP, _RECV, _STATUS, LoopCore
from test_node_coalescing import async_drain, async_leader, names, payloads, run

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def small_inbox(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """MAX_INBOX = 4, and a record of the request kinds of every batch the loop takes."""
    monkeypatch.setattr(async_node_mod, "MAX_INBOX", 4)
    batches: list[list[int]] = []
    real = LoopCore.process

    def process(self: LoopCore, items: deque[Any], ticks: int) -> None:
        batches.append([kind for kind, _, _ in items])
        real(self, items, ticks)

    monkeypatch.setattr(LoopCore, "process", process)
    return batches


def test_waiting_proposers_are_admitted_in_arrival_order(small_inbox: list[list[int]]) -> None:
    datas = names("w", 14)

    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        small_inbox.clear()
        try:
            await asyncio.gather(*(n.propose(d) for d in datas))
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        assert payloads(committed) == datas  # arrival order, each once
        prop_batches = [b for b in small_inbox if _PROP in b]
        assert len(prop_batches) >= 3  # 4 + 4 + 4 + 2: the bound was kept
        assert all(len(b) <= 4 for b in prop_batches)

    run(main)


def test_messages_and_calls_go_before_waiting_proposals(small_inbox: list[list[int]]) -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        small_inbox.clear()
        try:
            props = [asyncio.ensure_future(n.propose(d)) for d in names("p", 10)]
            await asyncio.sleep(0)  # 4 proposals queued, 6 waiting for room
            # A MsgHup through the message path (a leader ignores it).
            beat = asyncio.ensure_future(n.campaign())
            status = asyncio.ensure_future(n.status())
            await asyncio.gather(*props, beat, status)
            await async_drain(n, s)
        finally:
            await n.stop()
        kinds = [k for b in small_inbox for k in b]
        # Everything after the first full batch: the message and the status call come
        # before every proposal that was already waiting when they arrived.
        after_first = kinds[kinds.index(_PROP) + 4 :]
        assert after_first[:2] == [_RECV, _STATUS], small_inbox
        assert after_first[2:8] == [_PROP] * 6

    run(main)


def test_admitted_caller_that_gives_up_passes_its_slot_on(
    small_inbox: list[list[int]],
) -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        try:
            first = [asyncio.ensure_future(n.propose(d)) for d in names("f", 4)]
            quitter = asyncio.ensure_future(n.propose(b"quitter"))
            stayer = asyncio.ensure_future(n.propose(b"stayer"))
            await asyncio.sleep(0)
            assert len(n._space_waiters) == 2
            # The quitter is granted a slot and cancelled before it could use it.
            n._admit(1)
            quitter.cancel()
            await asyncio.gather(*first, stayer)
            with pytest.raises(asyncio.CancelledError):
                await quitter
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        got = payloads(committed)
        assert b"stayer" in got and b"quitter" not in got

    run(main)


def test_stop_releases_waiting_callers(small_inbox: list[list[int]]) -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        calls = [asyncio.ensure_future(n.propose(d)) for d in names("s", 10)]
        await asyncio.sleep(0)
        assert len(n._space_waiters) == 6
        await n.stop()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(r is None or isinstance(r, StoppedError) for r in results), results
        assert sum(isinstance(r, StoppedError) for r in results) >= 6

    run(main)
