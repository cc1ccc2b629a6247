"""Run etcd's datadriven scripts against raftcore and report, file by file.

    python -m raftcore.rafttest.conformance PATH... [-k SUBSTR] [--rewrite] [-q]

Each PATH is a script or a folder of them. The runner is chosen by where a file lives:
``quorum/testdata`` and ``confchange/testdata`` get their own, everything else the
interaction environment. One line per file (``pass`` or the first differing directive
with a diff), then ``N passed, M failed``; the exit status is 0 only if all passed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from raftcore.rafttest.datadriven import FileResult, Handler, rewrite_file, run_file, walk

__all__ = ["handler_factory_for", "main", "run_paths"]

_RUNNERS = {
    "quorum": "raftcore.rafttest.quorum_runner",
    "confchange": "raftcore.rafttest.confchange_runner",
    "interaction": "raftcore.rafttest.interaction",
}


def runner_kind(path: Path) -> str:
    parts = path.resolve().parts
    if len(parts) >= 2 and parts[-2] == "testdata":
        if len(parts) >= 3 and parts[-3] == "quorum":
            return "quorum"
        if len(parts) >= 3 and parts[-3] == "confchange":
            return "confchange"
    return "interaction"


def handler_factory_for(path: Path) -> Callable[[], Handler]:
    """The ``make_handler`` of the runner that serves ``path``."""
    module = importlib.import_module(_RUNNERS[runner_kind(path)])
    factory: Callable[[], Handler] = module.make_handler
    return factory


def script_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        files.extend(f for f in walk(p) if f.suffix == ".txt")
    return files


def run_paths(paths: Iterable[str | Path], keyword: str | None = None) -> list[FileResult]:
    results = []
    for f in script_files(paths):
        if keyword and keyword not in str(f):
            continue
        try:
            factory = handler_factory_for(f)
        except ImportError as exc:
            results.append(FileResult(str(f), 0, 0, error=f"runner unavailable: {exc}"))
            continue
        results.append(run_file(f, factory))
    return results


def _report(res: FileResult, quiet: bool) -> str:
    if res.ok:
        return f"pass  {res.path} ({res.directives} directives)"
    if res.error is not None:
        return f"FAIL  {res.path}: {res.error}"
    mm = res.mismatch
    assert mm is not None
    head = f"FAIL  {res.path}: {mm.pos}: {mm.directive} ({res.passed}/{res.directives} passed)"
    if quiet:
        return head
    return head + "\n" + mm.diff()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raftcore.rafttest.conformance")
    ap.add_argument("paths", nargs="+", help="script files or folders")
    ap.add_argument("-k", dest="keyword", help="only files whose path contains this")
    ap.add_argument("--rewrite", action="store_true", help="print actual outputs instead")
    ap.add_argument("-q", "--quiet", action="store_true", help="no diffs, one line a file")
    args = ap.parse_args(argv)
    if args.rewrite:
        for f in script_files(args.paths):
            if args.keyword and args.keyword not in str(f):
                continue
            sys.stdout.write(f"=== {f}\n")
            sys.stdout.write(rewrite_file(f, handler_factory_for(f)))
        return 0
    results = run_paths(args.paths, args.keyword)
    for r in results:
        print(_report(r, args.quiet))
    passed = sum(r.ok for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) and results else 1


if __name__ == "__main__":
    sys.exit(main())
