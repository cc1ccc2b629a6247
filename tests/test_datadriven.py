"""Tests for the datadriven script reader, runner and rewriter (HARNESS §1)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from raftcore.rafttest.datadriven import (
    CmdArg,
    Handler,
    HarnessError,
    parse_bool,
    parse_directive,
    parse_int,
    parse_text,
    parse_uint,
    rewrite_file,
    rewrite_text,
    run_file,
    walk,
)
from raftcore.rafttest.datadriven import (
    TestData as Directive,
)

SCRIPTS = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "etcd-raft"


def args(line: str) -> list[tuple[str, list[str]]]:
    _, parsed = parse_directive(line)
    return [(a.key, a.vals) for a in parsed]


# -- directive lines (§1.3) ----------------------------------------------------------------


def test_command_only() -> None:
    assert parse_directive("raft-state") == ("raft-state", [])


def test_blank_line_is_no_directive() -> None:
    assert parse_directive("   ") == ("", [])


def test_bare_keys() -> None:
    assert args("stabilize 1 2") == [("1", []), ("2", [])]


def test_bare_key_keeps_quotes() -> None:
    assert args('propose 1 "foo"') == [("1", []), ('"foo"', [])]


def test_single_values() -> None:
    assert args("add-nodes 3 index=5 read-only=lease-based") == [
        ("3", []),
        ("index", ["5"]),
        ("read-only", ["lease-based"]),
    ]


def test_comma_list_vs_space_list() -> None:
    assert args("cmd a=(1, 2, 3)") == [("a", ["1", "2", "3"])]
    assert args("cmd a=(1 2 3)") == [("a", ["1 2 3"])]


def test_spaces_only_skipped_after_commas() -> None:
    assert args("cmd a=( 1,2)") == [("a", [" 1", "2"])]
    assert args("cmd a=(1 ,  2)") == [("a", ["1 ", "2"])]


def test_empty_parens_give_one_empty_value() -> None:
    assert args("cmd a=()") == [("a", [""])]


def test_equals_then_space_or_end_is_empty_value() -> None:
    assert args("cmd a= b") == [("a", [""]), ("b", [])]
    assert args("cmd a=") == [("a", [""])]


def test_nested_parens() -> None:
    assert args("cmd exprs=(a + (b + c), d + f)") == [("exprs", ["a + (b + c)", "d + f"])]
    assert args("cmd x=((1,2),(3))") == [("x", ["(1,2)", "(3)"])]


def test_argument_right_after_closing_paren() -> None:
    assert args("cmd a=(1,2)b") == [("a", ["1", "2"]), ("b", [])]


def test_repeated_keys_keep_order() -> None:
    assert args("deliver-msgs 1 drop=2 drop=(3,4)") == [
        ("1", []),
        ("drop", ["2"]),
        ("drop", ["3", "4"]),
    ]


def test_double_quote_is_ordinary() -> None:
    assert args('cmd a="x y"') == [("a", ['"x']), ('y"', [])]


def test_go_whitespace_between_arguments() -> None:
    # strings.TrimSpace between arguments trims tabs too; inside a key only ' ' and '='
    # end it.
    assert args("cmd a \tb") == [("a", []), ("b", [])]
    assert args("cmd a\tb") == [("a\tb", [])]


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("cmd =x", 5),
        ("cmd a=(1, 2", 11),
        ("cmd a=(b(c)", 8),
        ("cmd a b =", 9),
    ],
)
def test_parse_errors(line: str, column: int) -> None:
    with pytest.raises(HarnessError, match=rf"cannot parse directive at column {column}: "):
        parse_directive(line)


def test_cmd_arg_str() -> None:
    assert str(CmdArg("a")) == "a"
    assert str(CmdArg("a", ["1"])) == "a=1"
    assert str(CmdArg("a", ["1", "2"])) == "a=(1, 2)"


# -- typed scanning ------------------------------------------------------------------------


@pytest.mark.parametrize("s", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(s: str) -> None:
    assert parse_bool(s) is True


@pytest.mark.parametrize("s", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(s: str) -> None:
    assert parse_bool(s) is False


@pytest.mark.parametrize("s", ["", "yes", "tRUE", " true"])
def test_parse_bool_rejects(s: str) -> None:
    with pytest.raises(HarnessError):
        parse_bool(s)


def test_parse_int() -> None:
    assert parse_int("42") == 42
    assert parse_int("-7") == -7
    assert parse_int("+7") == 7
    assert parse_int(str(2**63 - 1)) == 2**63 - 1
    for bad in ["", "-", "1_000", " 1", "0x10", "\u0661", str(2**63)]:
        with pytest.raises(HarnessError):
            parse_int(bad)


def test_parse_uint() -> None:
    assert parse_uint("0") == 0
    assert parse_uint(str(2**64 - 1)) == 2**64 - 1
    for bad in ["", "-1", "+1", "1.0", str(2**64)]:
        with pytest.raises(HarnessError):
            parse_uint(bad)


def test_scan_helpers() -> None:
    (d,) = parse_text("cmd n=5 flag=true name=x list=(1, 2)\n----\nok\n")
    assert d.scan_int("n") == 5
    assert d.scan_bool("flag") is True
    assert d.scan_str("name") == "x"
    assert d.scan_int("list", 1) == 2
    assert d.has_arg("list") and not d.has_arg("missing")
    with pytest.raises(HarnessError):
        d.scan_str("missing")
    with pytest.raises(HarnessError):
        d.scan_str("list", 2)


# -- blocks (§1.2, §1.4) -------------------------------------------------------------------


def test_single_separator_block() -> None:
    text = "cmd 1\n----\n  indented\ntrailing  \n \nnext\n----\nok\n"
    d1, d2 = parse_text(text)
    assert d1.expected == "  indented\ntrailing  \n"
    assert (d2.cmd, d2.expected) == ("next", "ok\n")


def test_empty_expected_block() -> None:
    d1, d2 = parse_text("a\n----\n\nb\n----\n")
    assert d1.expected == ""
    assert d2.expected == ""


def test_no_separator_at_end_of_file() -> None:
    (d,) = parse_text("a\ninput line\n")
    assert (d.input, d.expected) == ("input line", "")


def test_input_block_is_stripped() -> None:
    (d,) = parse_text("propose-conf-change 1\n  v2 v3  \n\n----\nok\n")
    assert d.input == "v2 v3"
    assert d.lines == ["propose-conf-change 1", "  v2 v3  ", ""]


def test_double_separator_block() -> None:
    text = "cmd\n----\n----\nline 1\n\n----\nkept\n----\n----\n\nnext\n----\nok\n"
    d1, d2 = parse_text(text)
    assert d1.expected == "line 1\n\n----\nkept\n"
    assert d2.expected == "ok\n"


def test_double_separator_unterminated_keeps_text() -> None:
    (d,) = parse_text("cmd\n----\n----\na\n\nb\n")
    assert d.expected == "a\n\nb\n"


def test_double_separator_needs_blank_after_close() -> None:
    with pytest.raises(HarnessError, match="non-blank line after end of double"):
        parse_text("cmd\n----\n----\na\n----\n----\nnext\n")
    # Upstream wants that line exactly empty, not merely whitespace.
    with pytest.raises(HarnessError, match="non-blank line after end of double"):
        parse_text("cmd\n----\n----\na\n----\n----\n  \n")


def test_comments_only_between_cases() -> None:
    text = "# leading\n  # indented comment\ncmd\n# input\n----\n# expected\n\n# between\nnext\n"
    d1, d2 = parse_text(text)
    assert d1.input == "# input"
    assert d1.expected == "# expected\n"
    assert d2.cmd == "next"


def test_continuation_lines() -> None:
    (d,) = parse_text("cmd a=1 \\\n   b=2\n----\nok\n")
    assert [(a.key, a.vals) for a in d.cmd_args] == [("a", ["1"]), ("b", ["2"])]
    assert d.lines == ["cmd a=1 \\", "   b=2"]


def test_positions_and_errors_name_the_line() -> None:
    d1, d2 = parse_text("\n# c\na\n----\nok\n\nb\n", "f.txt")
    assert (d1.pos, d2.pos) == ("f.txt:3", "f.txt:7")
    with pytest.raises(HarnessError, match=r"^f.txt:5: cannot parse directive at column 5"):
        parse_text("ok\n----\nok\n\ncmd =x\n", "f.txt")


def test_subtest_is_refused() -> None:
    with pytest.raises(HarnessError, match="subtest"):
        parse_text("subtest foo\n")


# -- running and rewriting (§1.5, §1.6) ----------------------------------------------------


def _const(*outputs: str) -> Callable[[], Handler]:
    def make() -> Handler:
        it = iter(outputs)
        return lambda d: next(it)

    return make


def test_run_file_appends_one_line_feed(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("a\n----\nok\n\nb\n----\nx\ny\n")
    res = run_file(f, _const("ok", "x\ny\n"))
    assert res.ok and (res.directives, res.passed) == (2, 2)


def test_run_file_stops_at_first_mismatch(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("a\n----\nok\n\nb\n----\nok\n\nc\n----\nok\n")
    calls: list[str] = []

    def make() -> Handler:
        def h(d: Directive) -> str:
            calls.append(d.cmd)
            return "ok" if d.cmd != "b" else "nope"

        return h

    res = run_file(f, make)
    assert not res.ok and res.passed == 1
    assert res.mismatch is not None and res.mismatch.actual == "nope\n"
    assert "-ok" in res.mismatch.diff() and "+nope" in res.mismatch.diff()
    assert calls == ["a", "b"]


def test_run_file_reports_handler_exceptions(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("boom\n----\nok\n")

    def make() -> Handler:
        def h(d: Directive) -> str:
            raise HarnessError("bad script")

        return h

    res = run_file(f, make)
    assert res.error is not None and "bad script" in res.error


def test_rewrite_chooses_separator_form() -> None:
    text = "# c\na\n----\nold\n\n\nb\nin\n----\n----\nold\n\n----\n----\n\nc\n----\nold\n"
    out = rewrite_text(text, _const("new", "x\n\ny", ""))
    assert out == "# c\na\n----\nnew\n\n\nb\nin\n----\n----\nx\n\ny\n----\n----\n\nc\n----\n"


def _echo() -> Handler:
    return lambda d: d.expected


def _script_files() -> list[Path]:
    if not SCRIPTS.is_dir():
        return []
    return [f for f in walk(SCRIPTS) if f.suffix == ".txt"]


@pytest.mark.skipif(not SCRIPTS.is_dir(), reason=f"conformance scripts not found at {SCRIPTS}")
def test_published_scripts_count() -> None:
    files = _script_files()
    assert len(files) == 41
    assert sum(len(parse_text(f.read_text(), str(f))) for f in files) == 743


@pytest.mark.skipif(not SCRIPTS.is_dir(), reason=f"conformance scripts not found at {SCRIPTS}")
@pytest.mark.parametrize("path", _script_files(), ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_rewrite_reproduces_published_script(path: Path) -> None:
    assert rewrite_file(path, _echo) == path.read_text(encoding="utf-8")


def test_walk_order_and_skips(tmp_path: Path) -> None:
    for name in ["b.txt", "a.txt", ".hidden", "x~", "#tmp#", "B.txt"]:
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in walk(tmp_path)] == [
        "B.txt",
        "a.txt",
        "b.txt",
        "sub/c.txt",
    ]
    assert list(walk(tmp_path / "a.txt")) == [tmp_path / "a.txt"]
