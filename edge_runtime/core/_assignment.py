"""Cost-optimal assignment of waiting steps to free agents (docs/design.md §6 allocation policy).

Pure and deterministic: no state, no clock, no sets iterated. ``min_cost_assignment`` is
the shortest-augmenting-path Hungarian method (Jonker-Volgenant style, with potentials) on
a dense rectangular cost matrix, rows (steps) no more than columns (agents): O(n^2 m) in
the worst case, much less on the facility instances (``fleetflow bench alloc``: 200 x 200
in a few tens of milliseconds, where greedy-then-swap was within 5-10 % but not exact).

Pairs that may not be matched (the agent is not able, or ruled out by the step's policy)
have cost ``None``. They are given a cost larger than any feasible assignment's total, so
the optimum first matches as many steps as possible, then minimises the total; forbidden
pairs it still had to use are dropped from the result (those steps keep waiting).

Ties are broken by position: rows and columns come in a deterministic order (queue order,
agent ids), and among equal-cost alternatives the lower column is kept, so the same inputs
give the same assignment on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["min_cost_assignment"]

_INF = float("inf")


def min_cost_assignment(cost: Sequence[Sequence[float | None]]) -> list[int | None]:
    """For each row, the column it gets (``None``: left unmatched), minimising the total.

    ``cost[i][j]`` is the cost of row ``i`` taking column ``j`` (``None``: not allowed).
    Rows may outnumber columns; then the rows whose matching costs most stay unmatched.
    """
    n = len(cost)
    if n == 0:
        return []
    m = len(cost[0])
    if m == 0:
        return [None] * n
    if n > m:  # solve the transpose: every column gets a row
        cols = min_cost_assignment([[cost[i][j] for i in range(n)] for j in range(m)])
        rows: list[int | None] = [None] * n
        for j, i in enumerate(cols):
            if i is not None:
                rows[i] = j
        return rows
    top = 0.0
    for row in cost:
        worst = max((c for c in row if c is not None), default=0.0)
        top += abs(worst)
    forbidden = (top + 1.0) * (n + 1)
    """Dearer than any assignment of allowed pairs: every allowed pair comes first."""
    a = [[forbidden if c is None else c for c in row] for row in cost]
    u = [0.0] * (n + 1)  # row potentials (1-based; 0 is the virtual start)
    v = [0.0] * (m + 1)  # column potentials
    p = [0] * (m + 1)  # p[j]: row matched to column j (0: none)
    way = [0] * (m + 1)
    columns = range(1, m + 1)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = [_INF] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[j0] = True
            i0 = p[j0]
            row = a[i0 - 1]
            ui0 = u[i0]
            delta = _INF
            j1 = 0
            for j in columns:
                if not used[j]:
                    cur = row[j - 1] - ui0 - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    result: list[int | None] = [None] * n
    for j in columns:
        i = p[j]
        if i and cost[i - 1][j - 1] is not None:
            result[i - 1] = j - 1
    return result
