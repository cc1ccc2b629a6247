"""A reader and runner for the datadriven script format etcd's raft tests use.

A script is a sequence of directives::

    command key=value key=(v1, v2) bare
    optional input lines
    ----
    expected output

A handler turns each directive into output text; the runner compares it, byte for byte,
with the expected block, and stops the file at the first mismatch because later
directives build on the state earlier ones left. ``rewrite`` mode re-emits the file with
the actual outputs instead, which is how new scripts are written.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CmdArg",
    "DirectiveMismatch",
    "FileResult",
    "HarnessError",
    "TestData",
    "parse_directive",
    "parse_text",
    "read_file",
    "rewrite_file",
    "rewrite_text",
    "run_file",
    "walk",
]


class HarnessError(Exception):
    """The script or its handler is malformed (etcd's test would abort the whole file)."""


@dataclass(slots=True)
class CmdArg:
    key: str
    vals: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.vals:
            return self.key
        if len(self.vals) == 1:
            return f"{self.key}={self.vals[0]}"
        return f"{self.key}=({', '.join(self.vals)})"


@dataclass(slots=True)
class TestData:
    """One directive: where it is, what it says and what it expects."""

    # Not a test class, although pytest would collect it by its name.
    __test__ = False

    pos: str
    cmd: str
    cmd_args: list[CmdArg]
    input: str
    expected: str
    # Every raw line the directive occupied before its expected block, for rewriting.
    lines: list[str] = field(default_factory=list)

    def has_arg(self, key: str) -> bool:
        return any(a.key == key for a in self.cmd_args)

    def arg(self, key: str) -> CmdArg | None:
        for a in self.cmd_args:
            if a.key == key:
                return a
        return None

    def scan_str(self, key: str, index: int = 0) -> str:
        a = self.arg(key)
        if a is None:
            raise HarnessError(f"{self.pos}: missing argument: {key}")
        if index >= len(a.vals):
            raise HarnessError(f"{self.pos}: {key}: expected at least {index + 1} values")
        return a.vals[index]

    def scan_int(self, key: str, index: int = 0) -> int:
        return parse_int(self.scan_str(key, index), self.pos)

    def scan_bool(self, key: str, index: int = 0) -> bool:
        return parse_bool(self.scan_str(key, index), self.pos)


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(s: str, pos: str = "") -> bool:
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise HarnessError(f"{pos}: invalid bool: {s!r}")


def parse_int(s: str, pos: str = "") -> int:
    """Go's strconv parsing: decimal, optional sign, no whitespace or underscores."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not body.isascii() or not body.isdigit():
        raise HarnessError(f"{pos}: invalid integer: {s!r}")
    v = int(s)
    if not -(1 << 63) <= v < 1 << 63:
        raise HarnessError(f"{pos}: value out of range: {s!r}")
    return v


def parse_uint(s: str, pos: str = "") -> int:
    if not s or not s.isascii() or not s.isdigit():
        raise HarnessError(f"{pos}: invalid unsigned integer: {s!r}")
    v = int(s)
    if v >= 1 << 64:
        raise HarnessError(f"{pos}: value out of range: {s!r}")
    return v


# Go's unicode.IsSpace, which strings.TrimSpace uses. (Python's str.isspace also counts
# the separators U+001C..U+001F, which Go does not.)
_GO_SPACE = (
    " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _trim(s: str) -> str:
    """Go's ``strings.TrimSpace``."""
    return s.strip(_GO_SPACE)


def parse_directive(line: str) -> tuple[str, list[CmdArg]]:
    """Split a directive line into its command and arguments (HARNESS §1.3).

    Follows datadriven's ``ParseLine`` step by step, so that whitespace handling and
    the column in a parse error come out the same. A blank line gives ``("", [])``.
    """
    line = _trim(line)
    if not line:
        return "", []
    orig = line

    def fail(rest: str) -> HarnessError:
        # Go reports the byte column where the unparsed remainder starts.
        column = len(orig.encode()) - len(rest.encode()) + 1
        return HarnessError(f"cannot parse directive at column {column}: {orig}")

    i = line.find(" ")
    cmd = line if i < 0 else line[:i]
    rest = _trim(line[len(cmd) :])
    args: list[CmdArg] = []
    while rest:
        j = 0
        n = len(rest)
        while j < n and rest[j] not in " =":
            j += 1
        key = rest[:j]
        rest = rest[j:]
        if not key:
            raise fail(rest)
        vals: list[str] = []
        if rest and rest[0] == "=":
            rest = rest[1:]
            if not rest or rest[0] == " ":
                vals.append("")
            elif rest[0] != "(":
                j = rest.find(" ")
                if j < 0:
                    j = len(rest)
                vals.append(rest[:j])
                rest = rest[j:]
            else:
                rest = rest[1:]
                while True:
                    # A value runs to a ',' or ')' outside nested parentheses.
                    pos, depth, n = 0, 0, len(rest)
                    while pos < n:
                        c = rest[pos]
                        if c == "(":
                            depth += 1
                        elif c == ")":
                            if depth == 0:
                                break
                            depth -= 1
                        elif c == "," and depth == 0:
                            break
                        pos += 1
                    if pos == n:
                        raise fail(rest)
                    vals.append(rest[:pos])
                    done = rest[pos] == ")"
                    rest = _trim(rest[pos + 1 :])
                    if done:
                        break
        args.append(CmdArg(key, vals))
        rest = _trim(rest)
    return cmd, args


def _blank(s: str) -> bool:
    return _trim(s) == ""


def _split_lines(text: str) -> list[str]:
    """Lines as Go's line scanner yields them: LF-separated, one trailing CR dropped."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def read_file(path: str | os.PathLike[str]) -> list[TestData]:
    """Parse a whole script file into its directives (HARNESS §1.2-§1.4)."""
    return parse_text(Path(path).read_text(encoding="utf-8"), os.fspath(path))


def parse_text(text: str, name: str = "<string>") -> list[TestData]:
    """Parse a script's text into its directives; ``name`` prefixes positions."""
    lines = _split_lines(text)
    out: list[TestData] = []
    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i]
        lineno = i + 1
        i += 1
        t = _trim(raw)
        if t.startswith("#"):
            continue
        consumed = [raw]
        while t.endswith("\\") and i < n:
            consumed.append(lines[i])
            t = t[:-1] + " " + _trim(lines[i])
            i += 1
        try:
            cmd, args = parse_directive(t)
        except HarnessError as exc:
            raise HarnessError(f"{name}:{lineno}: {exc}") from None
        if not cmd:
            continue
        if cmd == "subtest":
            raise HarnessError(f"{name}:{lineno}: subtests are not supported")
        input_lines: list[str] = []
        found_sep = False
        while i < n:
            ln = lines[i]
            i += 1
            if ln == "----":
                found_sep = True
                break
            input_lines.append(ln)
        consumed.extend(input_lines)
        expected = ""
        if found_sep:
            if i < n and lines[i] == "----":
                # Double-separator form: runs to a "----" line directly followed by another.
                i += 1
                buf: list[str] = []
                while i < n:
                    ln = lines[i]
                    if ln == "----" and i + 1 < n and lines[i + 1] == "----":
                        i += 2
                        if i < n:
                            # Exactly empty: upstream does not trim this one.
                            if lines[i] != "":
                                raise HarnessError(
                                    f"{name}:{i + 1}: non-blank line after end of double "
                                    "---- separator section"
                                )
                            i += 1
                        break
                    buf.append(ln + "\n")
                    i += 1
                expected = "".join(buf)
            else:
                buf = []
                while i < n:
                    ln = lines[i]
                    i += 1
                    if _blank(ln):
                        break
                    buf.append(ln + "\n")
                expected = "".join(buf)
        out.append(
            TestData(
                pos=f"{name}:{lineno}",
                cmd=cmd,
                cmd_args=args,
                input=_trim("\n".join(input_lines)),
                expected=expected,
                lines=consumed,
            )
        )
    return out


@dataclass(slots=True)
class DirectiveMismatch:
    pos: str
    directive: str
    expected: str
    actual: str

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.expected.splitlines(keepends=True),
                self.actual.splitlines(keepends=True),
                fromfile="expected",
                tofile="actual",
            )
        )


@dataclass(slots=True)
class FileResult:
    path: str
    directives: int
    passed: int
    mismatch: DirectiveMismatch | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch is None and self.error is None


Handler = Callable[[TestData], str]


def _normalise(actual: str) -> str:
    if actual and not actual.endswith("\n"):
        actual += "\n"
    return actual


def run_file(path: str | os.PathLike[str], make_handler: Callable[[], Handler]) -> FileResult:
    """Run every directive of one script against a fresh handler; stop at a mismatch."""
    name = os.fspath(path)
    try:
        directives = read_file(path)
    except HarnessError as exc:
        return FileResult(name, 0, 0, error=str(exc))
    handler = make_handler()
    passed = 0
    for d in directives:
        try:
            actual = _normalise(handler(d))
        except Exception as exc:  # any failure of the port is reported, not raised
            return FileResult(
                name,
                len(directives),
                passed,
                error=f"{d.pos}: {d.lines[0].strip()}: {type(exc).__name__}: {exc}",
            )
        if actual != d.expected:
            return FileResult(
                name,
                len(directives),
                passed,
                mismatch=DirectiveMismatch(d.pos, d.lines[0].strip(), d.expected, actual),
            )
        passed += 1
    return FileResult(name, len(directives), passed)


def rewrite_file(path: str | os.PathLike[str], make_handler: Callable[[], Handler]) -> str:
    """Re-emit a script with the actual outputs in place of the expected ones (§1.6)."""
    text = Path(path).read_text(encoding="utf-8")
    return rewrite_text(text, make_handler, os.fspath(path))


def rewrite_text(text: str, make_handler: Callable[[], Handler], name: str = "<string>") -> str:
    """:func:`rewrite_file` for a script given as text."""
    handler = make_handler()
    parts: list[str] = []
    directives = iter(parse_text(text, name))
    # Re-read the file line by line so comments and blank lines between cases survive.
    lines = _split_lines(text)
    i = 0
    n = len(lines)
    for d in directives:
        first = d.lines[0]
        while i < n and lines[i] != first:
            parts.append(lines[i] + "\n")
            i += 1
        for ln in d.lines:
            parts.append(ln + "\n")
        i += len(d.lines)
        i = _skip_old_expected(lines, i)
        actual = _normalise(handler(d))
        parts.append("----\n")
        if any(_blank(ln) for ln in actual.split("\n")[:-1]):
            parts.append("----\n" + actual + "----\n----\n\n")
        else:
            parts.append(actual + "\n")
    while i < n:
        parts.append(lines[i] + "\n")
        i += 1
    out = "".join(parts)
    if len(out) > 2 and out.endswith("\n\n"):
        out = out[:-1]
    return out


def _skip_old_expected(lines: list[str], i: int) -> int:
    """Skip a ``----`` line and the expected block after it, starting at line ``i``."""
    n = len(lines)
    if i >= n or lines[i] != "----":
        return i
    i += 1
    if i < n and lines[i] == "----":
        i += 1
        while i < n:
            if lines[i] == "----" and i + 1 < n and lines[i + 1] == "----":
                i += 2
                if i < n:
                    i += 1
                return i
            i += 1
        return i
    while i < n:
        blank = _blank(lines[i])
        i += 1
        if blank:
            break
    return i


def walk(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Script files under ``root`` (or ``root`` itself), in lexical order of names."""
    p = Path(root)
    if p.is_file():
        yield p
        return
    for entry in sorted(p.iterdir(), key=lambda e: e.name.encode()):
        nm = entry.name
        if nm.startswith(".") or nm.endswith("~") or (nm.startswith("#") and nm.endswith("#")):
            continue
        if entry.is_dir():
            yield from walk(entry)
        elif entry.is_file():
            yield entry
