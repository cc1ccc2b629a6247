"""Tests for raftcore.tracker.Inflights, after etcd's tracker/inflights_test.go."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftcore.errors import RaftPanic
from raftcore.tracker import Inflights


def _buffer(indices: list[int], sizes: list[int]) -> list[tuple[int, int]]:
    return list(zip(indices, sizes, strict=True))


def test_add_without_rotation() -> None:
    inf = Inflights.with_buffer(10, start=0, buffer_len=10)
    for i in range(5):
        inf.add(i, 100 + i)
    assert inf.state() == (
        0,
        5,
        510,
        10,
        0,
        _buffer([0, 1, 2, 3, 4, 0, 0, 0, 0, 0], [100, 101, 102, 103, 104, 0, 0, 0, 0, 0]),
    )
    for i in range(5, 10):
        inf.add(i, 100 + i)
    assert inf.state() == (0, 10, 1045, 10, 0, _buffer(list(range(10)), list(range(100, 110))))


def test_add_with_rotation() -> None:
    inf = Inflights.with_buffer(10, start=5, buffer_len=10)
    for i in range(5):
        inf.add(i, 100 + i)
    assert inf.state() == (
        5,
        5,
        510,
        10,
        0,
        _buffer([0, 0, 0, 0, 0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 0, 100, 101, 102, 103, 104]),
    )
    for i in range(5, 10):
        inf.add(i, 100 + i)
    assert inf.state() == (
        5,
        10,
        1045,
        10,
        0,
        _buffer(
            [5, 6, 7, 8, 9, 0, 1, 2, 3, 4],
            [105, 106, 107, 108, 109, 100, 101, 102, 103, 104],
        ),
    )


def test_free_le() -> None:
    inf = Inflights(10, 0)
    for i in range(10):
        inf.add(i, 100 + i)
    full_buf = _buffer(list(range(10)), list(range(100, 110)))

    inf.free_le(0)
    assert inf.state() == (1, 9, 945, 10, 0, full_buf)
    inf.free_le(4)
    assert inf.state() == (5, 5, 535, 10, 0, full_buf)
    inf.free_le(8)
    assert inf.state() == (9, 1, 109, 10, 0, full_buf)

    # Wrapping around the end of the ring.
    for i in range(10, 15):
        inf.add(i, 100 + i)
    inf.free_le(12)
    rotated = _buffer(
        [10, 11, 12, 13, 14, 5, 6, 7, 8, 9],
        [110, 111, 112, 113, 114, 105, 106, 107, 108, 109],
    )
    assert inf.state() == (3, 2, 227, 10, 0, rotated)
    # Emptying the window resets the start.
    inf.free_le(14)
    assert inf.state() == (0, 0, 0, 10, 0, rotated)


def test_free_le_left_of_window_and_empty() -> None:
    inf = Inflights(4, 0)
    inf.free_le(100)  # empty: nothing happens
    assert inf.count() == 0
    inf.add(5, 1)
    inf.add(6, 1)
    inf.free_le(4)
    assert inf.count() == 2
    inf.free_le(5)
    assert inf.count() == 1
    assert inf.total_bytes() == 1


def test_buffer_grows_by_doubling_up_to_size() -> None:
    inf = Inflights(5, 0)
    lengths = []
    for i in range(5):
        inf.add(i, 1)
        lengths.append(len(inf.state()[5]))
    assert lengths == [1, 2, 4, 4, 5]
    # After emptying, the ring restarts at 0 and does not grow further.
    inf.free_le(4)
    for i in range(5, 10):
        inf.add(i, 1)
    assert len(inf.state()[5]) == 5


@pytest.mark.parametrize(
    ("size", "max_bytes", "full_at", "free_le", "again_at"),
    [
        pytest.param(0, 0, 0, 0, 0, id="always-full"),
        pytest.param(1, 0, 1, 1, 2, id="single-entry"),
        pytest.param(1, 10, 1, 1, 2, id="single-entry-overflow"),
        pytest.param(15, 0, 15, 6, 22, id="multi-entry"),
        pytest.param(8, 400, 4, 2, 7, id="slight-overflow"),
        pytest.param(8, 406, 4, 3, 8, id="exact-max-bytes"),
        pytest.param(15, 408, 5, 1, 6, id="larger-overflow"),
    ],
)
def test_full(size: int, max_bytes: int, full_at: int, free_le: int, again_at: int) -> None:
    inf = Inflights(size, max_bytes)

    def add_until_full(begin: int, end: int) -> None:
        for i in range(begin, end):
            assert not inf.full(), f"full at {i}, want {end}"
            inf.add(i, 100 + i)
        assert inf.full(), f"not full at {end}"

    add_until_full(0, full_at)
    inf.free_le(free_le)
    add_until_full(full_at, again_at)
    with pytest.raises(RaftPanic, match="cannot add into a Full inflights"):
        inf.add(100, 1024)


def test_reset() -> None:
    inf = Inflights(10, 1000)
    # A flow that is reset to empty now and then: bytes must not leak across resets.
    index = 0
    for _ in range(100):
        inf.reset()
        for _ in range(5):
            assert not inf.full()
            index += 1
            inf.add(index, 16)
        inf.free_le(index - 2)
        assert not inf.full()
        assert inf.count() == 2
    inf.free_le(index)
    assert inf.count() == 0


def test_clone_is_independent() -> None:
    inf = Inflights(3, 100)
    inf.add(1, 10)
    c = inf.clone()
    assert c == inf
    c.add(2, 10)
    assert inf.count() == 1
    assert c.count() == 2
    assert c != inf


@settings(max_examples=300)
@given(
    size=st.integers(1, 12),
    max_bytes=st.integers(0, 300),
    ops=st.lists(st.tuples(st.sampled_from(["add", "free", "reset"]), st.integers(0, 60))),
)
def test_matches_simple_queue_model(size: int, max_bytes: int, ops: list[tuple[str, int]]) -> None:
    inf = Inflights(size, max_bytes)
    model: deque[tuple[int, int]] = deque()
    last = 0
    for op, arg in ops:
        if op == "add":
            model_full = len(model) == size or (
                max_bytes != 0 and sum(b for _, b in model) >= max_bytes
            )
            assert inf.full() == model_full
            if model_full:
                continue
            last += 1 + arg % 3
            inf.add(last, arg)
            model.append((last, arg))
        elif op == "free":
            to = last - arg % 5
            inf.free_le(to)
            while model and model[0][0] <= to:
                model.popleft()
        else:
            inf.reset()
            model.clear()
        assert inf.count() == len(model)
        assert inf.total_bytes() == sum(b for _, b in model)
        start, count, _, _, _, buf = inf.state()
        live = [buf[(start + i) % size] for i in range(count)]
        assert live == list(model)
        assert len(buf) <= size
