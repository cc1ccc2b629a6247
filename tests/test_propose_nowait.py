"""``propose_nowait``: queue a proposal without waiting, the verdict to a callback.

Both drivers. Checked: verdicts (taken, refused by raft, node stopped), order and
coalescing with other proposals, a callback that proposes again from inside the raft
loop (no deadlock, the chain commits), a failing callback that must not kill the loop,
and proposals parked while no leader is known.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest

from raft_testutil import new_test_config, new_test_memory_storage, with_peers
from raftcore.async_node import AsyncNode
from raftcore.errors import ProposalDroppedError, StoppedError
from raftcore.raftpb.types import Entry
from raftcore.rawnode import RawNode
from raftcore.storage import MemoryStorage
from test_node_coalescing import (
    PropSpy,
    async_drain,
    async_leader,
    names,
    payloads,
    run,
    thread_drain,
    thread_leader,
)

pytestmark = pytest.mark.timeout(10)

Verdicts = list[tuple[bytes, BaseException | None]]


def recorder(verdicts: Verdicts, data: bytes) -> Callable[[BaseException | None], None]:
    return lambda err: verdicts.append((data, err))


# --- AsyncNode ------------------------------------------------------------------------


def test_async_taken_in_order_and_coalesced(monkeypatch: pytest.MonkeyPatch) -> None:
    datas = names("n", 50)

    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        spy = PropSpy(monkeypatch, n._rn.raft)
        verdicts: Verdicts = []
        try:
            for d in datas:
                n.propose_nowait(d, recorder(verdicts, d))
            assert verdicts == []  # nothing waited: the loop has not run yet
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        assert verdicts == [(d, None) for d in datas]
        assert payloads(committed) == datas
        assert spy.datas == [datas]  # one MsgProp for the whole queue

    run(main)


def test_async_refused_by_raft_reports_the_error() -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s, max_uncommitted_entries_size=10)
        verdicts: Verdicts = []
        try:
            for d in (b"aaaa", b"bbbb", b"cccc"):
                n.propose_nowait(d, recorder(verdicts, d))
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        assert [d for d, e in verdicts if e is None] == [b"aaaa", b"bbbb"]
        dropped = [(d, e) for d, e in verdicts if e is not None]
        assert len(dropped) == 1 and dropped[0][0] == b"cccc"
        assert isinstance(dropped[0][1], ProposalDroppedError)
        assert payloads(committed) == [b"aaaa", b"bbbb"]

    run(main)


def test_async_callback_may_propose_again_from_the_loop() -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)
        verdicts: Verdicts = []

        def chain(k: int) -> Callable[[BaseException | None], None]:
            def cb(err: BaseException | None) -> None:
                verdicts.append((b"%d" % k, err))
                if k < 20:
                    n.propose_nowait(b"%d" % (k + 1), chain(k + 1))

            return cb

        try:
            n.propose_nowait(b"0", chain(0))
            committed = await async_drain(n, s)
        finally:
            await n.stop()
        want = [b"%d" % k for k in range(21)]
        assert verdicts == [(d, None) for d in want]
        assert payloads(committed) == want

    run(main)


def test_async_failing_callback_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        s = new_test_memory_storage(with_peers(1))
        n = await async_leader(s)

        def bad(err: BaseException | None) -> None:
            raise ValueError("application bug")

        try:
            with caplog.at_level(logging.ERROR):
                n.propose_nowait(b"x", bad)
                n.propose_nowait(b"y")
                committed = await async_drain(n, s)
            await n.propose(b"z", timeout=1)  # the loop is alive
            committed += await async_drain(n, s)
        finally:
            await n.stop()
        assert payloads(committed) == [b"x", b"y", b"z"]
        assert "proposal callback" in caplog.text and "application bug" in caplog.text

    run(main)


def test_async_stop_answers_parked_proposals_and_later_calls_raise() -> None:
    async def main() -> None:
        # No leader yet: the proposal is parked until one is known, then the stop
        # answers it.
        s = MemoryStorage()
        s.snap.metadata.conf_state.voters = [1, 2, 3]
        n = AsyncNode(RawNode(new_test_config(1, 10, 1, s)))
        verdicts: Verdicts = []
        n.propose_nowait(b"p", recorder(verdicts, b"p"))
        await asyncio.sleep(0.01)
        assert verdicts == []
        await n.stop()
        assert len(verdicts) == 1 and isinstance(verdicts[0][1], StoppedError)
        with pytest.raises(StoppedError):
            n.propose_nowait(b"q")

    run(main)


# --- Node (threads) ----------------------------------------------------------------------


def test_thread_taken_in_order_and_callback_on_the_loop_thread() -> None:
    s = new_test_memory_storage(with_peers(1))
    n = thread_leader(s)
    datas = names("t", 40)
    verdicts: Verdicts = []
    threads: set[str] = set()

    def cb_for(d: bytes) -> Callable[[BaseException | None], None]:
        def cb(err: BaseException | None) -> None:
            threads.add(threading.current_thread().name)
            verdicts.append((d, err))

        return cb

    try:
        for d in datas:
            n.propose_nowait(d, cb_for(d))
        committed = thread_drain(n, s)
    finally:
        n.stop()
    assert verdicts == [(d, None) for d in datas]
    assert payloads(committed) == datas
    assert threading.current_thread().name not in threads  # the raft loop's thread


def test_thread_callback_may_propose_again() -> None:
    s = new_test_memory_storage(with_peers(1))
    n = thread_leader(s)
    done = threading.Event()

    def chain(k: int) -> Callable[[BaseException | None], None]:
        def cb(err: BaseException | None) -> None:
            assert err is None
            if k < 10:
                n.propose_nowait(b"%d" % (k + 1), chain(k + 1))
            else:
                done.set()

        return cb

    try:
        n.propose_nowait(b"0", chain(0))
        committed: list[Entry] = []
        while not done.is_set() or len(committed) < 11:
            committed += thread_drain(n, s)
    finally:
        n.stop()
    assert payloads(committed) == [b"%d" % k for k in range(11)]
    with pytest.raises(StoppedError):
        n.propose_nowait(b"late")
