"""Majority quorums: a plain set of voter ids deciding by simple majority."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from raftcore.quorum.quorum import MAX_INDEX, AckedIndexer, VoteResult

__all__ = ["MajorityConfig", "ids_str"]


def ids_str(ids: Iterable[int]) -> str:
    """``(1 2 a)``: ids ascending, in lowercase hex, as etcd prints a majority config."""
    return "(" + " ".join([format(i, "x") for i in sorted(ids)]) + ")"


class MajorityConfig(set[int]):
    """A set of voter ids that decides by majority (more than half of its members)."""

    __slots__ = ()

    def __str__(self) -> str:
        return ids_str(self)

    def __repr__(self) -> str:
        return f"MajorityConfig({ids_str(self)})"

    def slice(self) -> list[int]:
        """The members in ascending order."""
        return sorted(self)

    def describe(self, l: AckedIndexer) -> str:  # noqa: E741 - etcd's name for the lookup
        """A table of every member's acked index with a bar showing its rank.

        The member with the i-th smallest index gets a bar of length i, except that
        equal indexes share the bar of the first of them; unknown members get ``?``.
        """
        n = len(self)
        if n == 0:
            return "<empty majority quorum>"
        rows: list[tuple[int, int, bool]] = []
        for vid in self:
            idx = l.acked_index(vid)
            rows.append((0 if idx is None else idx, vid, idx is not None))
        rows.sort()  # by (index, id)
        bars: dict[int, int] = {}
        bar = 0
        for i, (idx, vid, _) in enumerate(rows):
            if i > 0 and rows[i - 1][0] < idx:
                bar = i
            bars[vid] = bar
        rows.sort(key=lambda r: r[1])
        out = [" " * n + "    idx\n"]
        for idx, vid, known in rows:
            b = bars[vid]
            lead = "?" + " " * n if not known else "x" * b + ">" + " " * (n - b)
            out.append(f"{lead} {idx:5d}    (id={vid:x})\n")
        return "".join(out)

    def committed_index(self, l: AckedIndexer) -> int:  # noqa: E741
        """The largest index acknowledged by a majority of the members.

        An empty config answers :data:`MAX_INDEX` so that it is neutral in a joint config.
        Members that acked nothing count as 0. This is on the commit path, so the common
        sizes avoid the general sort.
        """
        n = len(self)
        if n == 0:
            return MAX_INDEX
        acked = l.acked_index
        if n == 1:
            for vid in self:
                idx = acked(vid)
                return 0 if idx is None else idx
        known = [idx for idx in map(acked, self) if idx is not None]
        return quorum_index(known, n)

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        """Won if a majority voted yes, lost if that can no longer happen, else pending.

        An empty config wins by convention, which makes a joint config with an empty
        half behave like its other half.
        """
        n = len(self)
        if n == 0:
            return VoteResult.VoteWon
        yes = 0
        missing = 0
        get = votes.get
        for vid in self:
            v = get(vid)
            if v is None:
                missing += 1
            elif v:
                yes += 1
        q = n // 2 + 1
        if yes >= q:
            return VoteResult.VoteWon
        if yes + missing >= q:
            return VoteResult.VotePending
        return VoteResult.VoteLost


def quorum_index(known: list[int], n: int) -> int:
    """The majority-acked index of ``n`` voters of which ``known`` reported (others: 0).

    ``known`` is sorted in place. Sorted ascending with the silent voters as zeros on the
    left, the answer sits at position ``n - (n // 2 + 1)``; shifting that position by the
    number of silent voters indexes ``known`` directly (a negative position means a
    majority has acknowledged nothing).
    """
    known.sort()
    pos = len(known) - (n // 2 + 1)
    return known[pos] if pos >= 0 else 0
