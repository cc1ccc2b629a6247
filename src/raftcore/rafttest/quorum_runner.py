"""The runner for etcd's ``quorum/testdata`` scripts (HARNESS.md §4.1).

``committed cfg=(…) [cfgj=(…)|cfgj=zero] idx=(…)`` prints the Describe table and the
committed index; ``vote cfg=(…) [cfgj=…] votes=(…)`` prints the vote result. Every
directive stands alone. As upstream does, each answer is cross-checked against
computations that must agree with it, and a disagreement adds a line to the output
(so a correct implementation prints none of them).
"""

from __future__ import annotations

from collections.abc import Callable

from raftcore.quorum import (
    MAX_INDEX,
    AckedIndexer,
    JointConfig,
    MajorityConfig,
    MapAckIndexer,
    index_str,
)
from raftcore.rafttest.datadriven import HarnessError, TestData, parse_uint

__all__ = ["alternative_majority_committed_index", "make_handler"]


def alternative_majority_committed_index(c: MajorityConfig, l: AckedIndexer) -> int:  # noqa: E741
    """The largest acked index that at least a majority of ``c`` acked (or exceeded).

    A deliberately different algorithm from :meth:`MajorityConfig.committed_index`,
    used to cross-check it.
    """
    if not c:
        return MAX_INDEX
    acked = [idx for idx in (l.acked_index(vid) for vid in c) if idx is not None]
    q = len(c) // 2 + 1
    best = 0
    for candidate in set(acked):
        if sum(1 for idx in acked if idx >= candidate) >= q and candidate > best:
            best = candidate
    return best


def _lookup(values: list[int], ids: list[int], idsj: list[int]) -> MapAckIndexer:
    # The n-th distinct voter (cfg first, then cfgj) gets the n-th value; 0 (from "_")
    # means "no information", which is different from an acked index of 0.
    m = MapAckIndexer()
    p = 0
    for vid in ids + idsj:
        if vid in m:
            continue
        if p < len(values):
            m[vid] = values[p]
            p += 1
    for vid in [k for k, v in m.items() if v == 0]:
        del m[vid]
    return m


def _overlay(c: MajorityConfig, l: AckedIndexer, vid: int, idx: int) -> MapAckIndexer:  # noqa: E741
    ll = MapAckIndexer()
    for iid in c:
        if iid == vid:
            ll[iid] = idx
        else:
            v = l.acked_index(iid)
            if v is not None:
                ll[iid] = v
    return ll


def _go_list(vals: list[int]) -> str:
    return "[" + " ".join(map(str, vals)) + "]"


def _handle(d: TestData) -> str:
    joint = False
    ids: list[int] = []
    idsj: list[int] = []
    idxs: list[int] = []
    votes: list[int] = []
    for arg in d.cmd_args:
        for val in arg.vals:
            key = arg.key
            if key == "cfg":
                ids.append(parse_uint(val, d.pos))
            elif key == "cfgj":
                joint = True
                if val == "zero":
                    if len(arg.vals) != 1:
                        raise HarnessError(f"{d.pos}: cannot mix 'zero' into configuration")
                else:
                    idsj.append(parse_uint(val, d.pos))
            elif key == "idx":
                n = 0
                if val != "_":
                    n = parse_uint(val, d.pos)
                    if n == 0:
                        raise HarnessError(f"{d.pos}: cannot use 0 as idx")
                idxs.append(n)
            elif key == "votes":
                if val == "y":
                    votes.append(2)
                elif val == "n":
                    votes.append(1)
                elif val == "_":
                    votes.append(0)
                else:
                    raise HarnessError(f"{d.pos}: unknown vote: {val}")
            else:
                raise HarnessError(f"{d.pos}: unknown arg {key}")

    c = MajorityConfig(ids)
    cj = MajorityConfig(idsj)

    inp = votes if d.cmd == "vote" else idxs
    voters = JointConfig(c, cj).ids()
    if len(voters) != len(inp):
        vm = " ".join(f"{v}:{{}}" for v in sorted(voters))
        return f"error: mismatched input (explicit or _) for voters map[{vm}]: {_go_list(inp)}"

    out: list[str] = []
    if d.cmd == "committed":
        l = _lookup(idxs, ids, idsj)  # noqa: E741
        if not joint:
            idx = c.committed_index(l)
            out.append(c.describe(l))
            a = alternative_majority_committed_index(c, l)
            if a != idx:
                out.append(f"{index_str(a)} <-- via alternative computation\n")
            a = JointConfig(c, MajorityConfig()).committed_index(l)
            if a != idx:
                out.append(f"{index_str(a)} <-- via zero-joint quorum\n")
            a = JointConfig(c, c).committed_index(l)
            if a != idx:
                out.append(f"{index_str(a)} <-- via self-joint quorum\n")
            for vid in c:
                iidx = l.acked_index(vid) or 0
                if idx > iidx > 0:
                    # Lowering an index already below the result must not change it.
                    a = c.committed_index(_overlay(c, l, vid, iidx - 1))
                    if a != idx:
                        # Upstream prints these two without a line feed.
                        out.append(f"{index_str(a)} <-- overlaying {vid}->{iidx}")
                    a = c.committed_index(_overlay(c, l, vid, 0))
                    if a != idx:
                        out.append(f"{index_str(a)} <-- overlaying {vid}->0")
            out.append(f"{index_str(idx)}\n")
        else:
            cc = JointConfig(c, cj)
            out.append(cc.describe(l))
            idx = cc.committed_index(l)
            a = JointConfig(cj, c).committed_index(l)
            if a != idx:
                out.append(f"{index_str(a)} <-- via symmetry\n")
            out.append(f"{index_str(idx)}\n")
    elif d.cmd == "vote":
        ll = _lookup(votes, ids, idsj)
        vl = {vid: v != 1 for vid, v in ll.items()}  # 1 = no, 2 = yes
        if not joint:
            out.append(f"{c.vote_result(vl)}\n")
        else:
            r = JointConfig(c, cj).vote_result(vl)
            ar = JointConfig(cj, c).vote_result(vl)
            if ar != r:
                out.append(f"{ar} <-- via symmetry\n")
            out.append(f"{r}\n")
    else:
        raise HarnessError(f"{d.pos}: unknown command: {d.cmd}")
    return "".join(out)


def make_handler() -> Callable[[TestData], str]:
    """The handler for one quorum script; it keeps no state between directives."""
    return _handle
