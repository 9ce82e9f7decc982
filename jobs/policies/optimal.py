"""The omniscient optimum: exact dynamic programming over a whole timeline — the lower bound.

State at step t: the mode (idle, on-demand, spot in zone z) and the progress in steps; the
value is the least money that reaches it. A (re)start is a jump of ``overhead`` steps, billed,
without progress (a spot start needs its zone up for all of them); a running step adds one
step of progress. Knowing the future, the optimum never loses work to a preemption (it would
checkpoint just before it), so the bound holds whatever the checkpoint interval. One forward
pass answers every deadline up to the horizon.

Cost: O(horizon × modes × work) — vectorised over progress with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spotrain.jobs.traces import Timeline

from .base import Policy, register

INF = np.inf


@dataclass(frozen=True)
class Optimum:
    done_by: np.ndarray  # done_by[t]: least cost to finish all the work by step t (inf: impossible)

    def cost(self, deadline: int) -> float:
        return float(self.done_by[deadline])

    def finish(self, deadline: int) -> int | None:
        """The earliest step at which the least cost for ``deadline`` is reached."""
        c = self.done_by[deadline]
        if not np.isfinite(c):
            return None
        return int(np.flatnonzero(self.done_by[: deadline + 1] <= c + 1e-12)[0])


def solve(tl: Timeline, horizon: int | None = None) -> Optimum:
    """Least cost to finish by every step up to ``horizon``.

    Works in lag coordinates: lag = elapsed steps − progress steps (time spent idle or
    restarting). A running step keeps the lag, idling or restarting adds to it, and a state can
    still finish by the horizon only while lag ≤ horizon − work, which bounds the arrays.
    """
    H = tl.horizon if horizon is None else horizon
    Z, W, k = tl.up.shape[0], tl.work, tl.overhead
    M = 2 + Z
    done_by = np.full(H + 1, INF)
    L = H - W  # largest useful lag
    if L < 0:
        return Optimum(done_by)
    step_h = tl.step_s / 3600
    cs = tl.spot_price[:, :H] * step_h
    co = tl.od_price * step_h
    up = tl.up[:, :H]
    if k:  # can a spot start at t survive its k overhead steps, and what do they cost
        c_up = np.concatenate([np.zeros((Z, 1)), np.cumsum(up, axis=1)], axis=1)
        c_cs = np.concatenate([np.zeros((Z, 1)), np.cumsum(cs, axis=1)], axis=1)
        end = np.minimum(np.arange(H) + k, H)
        start_ok = (c_up[:, end] - c_up[:, :H]) == k
        start_cost = c_cs[:, end] - c_cs[:, :H]
    A = np.full((M, L + 1), INF)
    new = np.full((M, L + 1), INF)
    A[0, 0] = 0.0
    pend = np.full((k + 1, M, L + 1), INF)
    lo = np.empty(L + 1)
    pre = np.empty((M, L + 1))
    suf = np.empty((M, L + 1))
    tmp = np.empty(L + 1)
    best = INF
    for t in range(H + 1):
        if k:
            slot = pend[t % (k + 1)]
            np.minimum(A, slot, out=A)
            slot.fill(INF)
        else:  # zero overhead: a start is free and immediate
            A.min(axis=0, out=lo)
            np.minimum(A[1:], lo, out=A[1:])
        if 0 <= t - W <= L:
            best = min(best, float(A[:, t - W].min()))
        done_by[t] = best
        if t == H:
            break
        A.min(axis=0, out=lo)
        new[0, 0] = INF
        new[0, 1:] = lo[:-1]
        np.add(A[1], co, out=new[1])
        for z in range(Z):
            if up[z, t]:
                np.add(A[2 + z], cs[z, t], out=new[2 + z])
            else:
                new[2 + z].fill(INF)
        if k and t + k <= H and k <= L:
            tgt = pend[(t + k) % (k + 1)]
            # least cost over every mode but m, for each m: prefix and suffix minima
            pre[0] = A[0]
            suf[M - 1] = A[M - 1]
            for m in range(1, M):  # row by row: numpy's accumulate along axis 0 is far slower
                np.minimum(pre[m - 1], A[m], out=pre[m])
                np.minimum(suf[M - m], A[M - 1 - m], out=suf[M - 1 - m])
            np.minimum(pre[0], suf[2], out=tmp)
            tmp += k * co
            np.minimum(tgt[1, k:], tmp[: L + 1 - k], out=tgt[1, k:])
            for z in range(Z):
                if start_ok[z, t]:
                    m = 2 + z
                    if m + 1 == M:
                        np.add(pre[m - 1], start_cost[z, t], out=tmp)
                    else:
                        np.minimum(pre[m - 1], suf[m + 1], out=tmp)
                        tmp += start_cost[z, t]
                    np.minimum(tgt[m, k:], tmp[: L + 1 - k], out=tgt[m, k:])
        A, new = new, A
    return Optimum(done_by)


@register
class Optimal(Policy):
    """Listed with the policies; it cannot decide online — the simulator solves it with ``solve``."""

    name = "optimal"
    deadline_safe = True
    multi_zone = True
    omniscient = True

    def decide(self, job, at, zones):  # pragma: no cover - guarded by the simulator
        raise RuntimeError(
            "the optimal policy needs the whole trace: use spotrain.jobs.policies.optimal.solve"
        )
