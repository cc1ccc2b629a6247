"""Snapshot files: atomic writes, naming, verification, newest-valid selection."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from raftcore.raftpb.types import ConfState, Snapshot, SnapshotMetadata
from raftcore.wal import SnapshotError, SnapshotStore
from raftcore.wal.snapshot import parse_snapshot_name, snapshot_name


def snap(index: int, term: int, data: bytes = b"state") -> Snapshot:
    return Snapshot(
        data=data,
        metadata=SnapshotMetadata(ConfState(voters=[1, 2], learners=[3]), index, term),
    )


def test_names() -> None:
    assert snapshot_name(2, 300) == "0000000000000002-000000000000012c.snap"
    assert parse_snapshot_name("0000000000000002-000000000000012c.snap") == (2, 300)
    for bad in (
        "x.snap",
        "0000000000000002_000000000000012c.snap",
        "zz" * 8 + "-" + "0" * 16 + ".snap",
    ):
        assert parse_snapshot_name(bad) is None


def test_save_and_load(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    s = snap(10, 2, os.urandom(5000))
    path = store.save(s)
    assert os.path.basename(path) == snapshot_name(2, 10)
    assert store.load(2, 10) == s
    assert store.list() == [(2, 10)]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    # Saving again replaces the file atomically.
    s2 = snap(10, 2, b"other")
    store.save(s2)
    assert store.load(2, 10) == s2


def test_load_newest_orders_by_index_and_honours_accept(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    for index, term in ((5, 1), (20, 2), (12, 3)):
        store.save(snap(index, term))
    assert store.list() == [(2, 20), (3, 12), (1, 5)]
    newest = store.load_newest()
    assert newest is not None and newest.metadata.index == 20
    older = store.load_newest(lambda term, index: index < 20)
    assert older is not None and older.metadata.index == 12
    assert store.load_newest(lambda term, index: False) is None


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) - 3]
    elif how == "short":
        data = data[:10]
    elif how == "flip":
        data[-1] ^= 0x01
    elif how == "magic":
        data[0:8] = b"notasnap"
    elif how == "version":
        data[8] = 9
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncate", "header says"),
        ("short", "truncated"),
        ("flip", "CRC mismatch"),
        ("magic", "bad magic"),
        ("version", "unsupported version 9"),
    ],
)
def test_damaged_files_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str, message: str
) -> None:
    store = SnapshotStore(tmp_path)
    good = snap(5, 1)
    store.save(good)
    bad_path = Path(store.save(snap(9, 1)))
    _damage(bad_path, how)
    with pytest.raises(SnapshotError, match=message):
        store.load(1, 9)
    with caplog.at_level(logging.WARNING, logger="raftcore"):
        assert store.load_newest() == good
    assert message in caplog.text


def test_name_must_match_contents(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    path = Path(store.save(snap(7, 2)))
    path.rename(tmp_path / snapshot_name(2, 8))
    with pytest.raises(SnapshotError, match="not its name's"):
        store.load(2, 8)


def test_undecodable_payload(tmp_path: Path) -> None:
    import struct

    from raftcore.wal.record import crc32c

    payload = b"\xff\xff\xff"
    header = struct.pack("<8sIIQ", b"raftcSNP", 1, crc32c(payload, 0), len(payload))
    (tmp_path / snapshot_name(1, 1)).write_bytes(header + payload)
    with pytest.raises(SnapshotError, match="cannot decode"):
        SnapshotStore(tmp_path).load(1, 1)


def test_remove_and_remove_tmp(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    store.save(snap(3, 1))
    (tmp_path / (snapshot_name(1, 4) + ".tmp")).write_bytes(b"partial")
    store.remove_tmp()
    store.remove(1, 3)
    store.remove(1, 3)  # removing what is gone is fine
    assert os.listdir(tmp_path) == []
