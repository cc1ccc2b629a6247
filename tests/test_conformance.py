"""etcd's own datadriven scripts, one test per file, run through raftcore.

The scripts live outside the repository, in ``shared/conformance/etcd-raft`` next to it
(HARNESS.md describes them); each file runs with the runner the conformance CLI picks for
its folder and must reproduce every expected output byte for byte.

Files that do not pass yet are listed in ``KNOWN_FAILING`` with the reason. They are
strict xfails: a file that starts passing fails the suite until it is taken off the list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from raftcore.rafttest.conformance import handler_factory_for
from raftcore.rafttest.datadriven import FileResult, run_file, walk

SCRIPTS = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "etcd-raft"

# Path relative to SCRIPTS -> why it fails today.
KNOWN_FAILING: dict[str, str] = {}


def _params() -> list[object]:
    if not SCRIPTS.is_dir():
        return [
            pytest.param(
                None,
                id="no-scripts",
                marks=pytest.mark.skip(reason=f"conformance scripts not found at {SCRIPTS}"),
            )
        ]
    params: list[object] = []
    for f in walk(SCRIPTS):
        if f.suffix != ".txt":
            continue
        rel = f.relative_to(SCRIPTS).as_posix()
        reason = KNOWN_FAILING.get(rel)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(f, id=rel, marks=marks))
    return params


def _explain(res: FileResult) -> str:
    if res.error is not None:
        return f"{res.path}: {res.error}"
    mm = res.mismatch
    assert mm is not None
    return (
        f"{mm.pos}: {mm.directive} ({res.passed}/{res.directives} directives passed)\n{mm.diff()}"
    )


@pytest.mark.parametrize("path", _params())
def test_script(path: Path) -> None:
    res = run_file(path, handler_factory_for(path))
    assert res.ok, _explain(res)


@pytest.mark.skipif(not SCRIPTS.is_dir(), reason=f"conformance scripts not found at {SCRIPTS}")
def test_known_failing_names_real_files() -> None:
    # A stale entry would otherwise go unnoticed (it matches no test).
    missing = [rel for rel in KNOWN_FAILING if not (SCRIPTS / rel).is_file()]
    assert not missing
