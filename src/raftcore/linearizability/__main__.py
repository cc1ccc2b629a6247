"""Check a recorded history offline.

    python -m raftcore.linearizability HISTORY.jsonl [--timeout S] [--max-steps N]
                                                     [--no-shrink] [--shrink-timeout S]

Prints the verdict (and, for a violation, the witness). Exit status: 0 linearizable,
1 not linearizable, 2 unknown (budget exhausted), 3 the input could not be read or the
command line is wrong — kept apart from 2 so a script can tell "undecided" from
"broken".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from raftcore.linearizability.checker import Verdict, check
from raftcore.linearizability.history import HistoryFormatError, read_jsonl

EXIT = {Verdict.OK: 0, Verdict.ILLEGAL: 1, Verdict.UNKNOWN: 2}
EXIT_BAD_INPUT = 3
_MAX_PROBLEMS = 20


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse's own status 2 would read as "unknown".
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = _Parser(
        prog="python -m raftcore.linearizability",
        description="Check a JSON-lines key-value history for linearizability.",
    )
    ap.add_argument("history", help="JSON-lines history file ('-' for stdin)")
    ap.add_argument("--timeout", type=float, default=None, help="search time budget, seconds")
    ap.add_argument("--max-steps", type=int, default=None, help="search step budget")
    ap.add_argument("--no-shrink", action="store_true", help="report the whole key's history")
    ap.add_argument(
        "--shrink-timeout", type=float, default=10.0, help="time for shrinking a witness"
    )
    args = ap.parse_args(argv)
    try:
        history = read_jsonl(args.history)
    except HistoryFormatError as e:
        for n, msg in e.problems[:_MAX_PROBLEMS]:
            print(f"error: {e.source}:{n}: {msg}", file=sys.stderr)
        if len(e.problems) > _MAX_PROBLEMS:
            print(f"error: ... and {len(e.problems) - _MAX_PROBLEMS} more", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        print(f"error: cannot read {args.history}: {e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnicodeDecodeError as e:
        print(f"error: {args.history} is not UTF-8 text: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = check(
        history,
        timeout=args.timeout,
        max_steps=args.max_steps,
        shrink=not args.no_shrink,
        shrink_timeout=args.shrink_timeout,
    )
    print(result.describe())
    return EXIT[result.verdict]


if __name__ == "__main__":
    sys.exit(main())
